"""Sends notification mail (the transport is faked in this project)."""

SMTP_HOST = "smtp.example.com"
SMTP_PORT = 587


def server():
    """Where mail goes: (host, port)."""
    return (SMTP_HOST, SMTP_PORT)
