"""Calls the partner API."""

API_BASE_URL = "https://api.example.com/v1"
API_TIMEOUT = 30


def request_plan(path):
    """What a GET of `path` would use: (url, timeout in seconds)."""
    return (f"{API_BASE_URL}/{path.lstrip('/')}", API_TIMEOUT)
