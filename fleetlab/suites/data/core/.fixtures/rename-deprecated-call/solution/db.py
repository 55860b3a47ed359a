"""Database access (connections are faked in this project)."""

_POOL = {}


def connect(name="main"):
    """Return the connection called `name`, opening it on first use."""
    return _POOL.setdefault(name, {"name": name, "open": True})
