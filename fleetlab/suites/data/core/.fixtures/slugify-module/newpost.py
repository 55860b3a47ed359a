"""File names for new blog posts."""


def _slug(title):
    return title.lower().replace(" ", "-")


def post_filename(date, title):
    """`2025-11-29`, `Hello World` -> `2025-11-29-hello-world.md`."""
    return f"{date}-{_slug(title)}.md"
