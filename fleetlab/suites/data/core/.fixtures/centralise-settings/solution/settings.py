"""Deployment settings, read from the environment with defaults."""

import os

SMTP_HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
SMTP_PORT = int(os.environ.get("SMTP_PORT", "587"))
BUCKET = os.environ.get("BUCKET", "uploads-prod")
API_BASE_URL = os.environ.get("API_BASE_URL", "https://api.example.com/v1")
API_TIMEOUT = int(os.environ.get("API_TIMEOUT", "30"))
