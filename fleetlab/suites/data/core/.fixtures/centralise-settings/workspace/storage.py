"""Stores uploaded files."""

BUCKET = "uploads-prod"


def object_url(key):
    return f"s3://{BUCKET}/{key}"
