"""Stores uploaded files."""

from settings import BUCKET


def object_url(key):
    return f"s3://{BUCKET}/{key}"
