"""Calls the partner API."""

from settings import API_BASE_URL, API_TIMEOUT


def request_plan(path):
    """What a GET of `path` would use: (url, timeout in seconds)."""
    return (f"{API_BASE_URL}/{path.lstrip('/')}", API_TIMEOUT)
