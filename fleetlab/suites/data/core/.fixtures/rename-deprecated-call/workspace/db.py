"""Database access (connections are faked in this project)."""

import warnings

_POOL = {}


def connect(name="main"):
    """Return the connection called `name`, opening it on first use."""
    return _POOL.setdefault(name, {"name": name, "open": True})


def get_conn(name="main"):
    """Deprecated: use connect()."""
    warnings.warn("get_conn() is deprecated, use connect()", DeprecationWarning, stacklevel=2)
    return connect(name)
