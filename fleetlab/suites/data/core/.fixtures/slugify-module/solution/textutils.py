"""Text helpers shared by the blog tools."""

import re


def slugify(text):
    """The slug of `text`: lower-case a-z and 0-9 runs joined by hyphens, or `untitled`."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "untitled"
