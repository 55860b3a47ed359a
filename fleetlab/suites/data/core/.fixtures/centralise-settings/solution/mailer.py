"""Sends notification mail (the transport is faked in this project)."""

from settings import SMTP_HOST, SMTP_PORT


def server():
    """Where mail goes: (host, port)."""
    return (SMTP_HOST, SMTP_PORT)
