"""File names for new blog posts."""

from textutils import slugify


def post_filename(date, title):
    """`2025-11-29`, `Hello World` -> `2025-11-29-hello-world.md`."""
    return f"{date}-{slugify(title)}.md"
