"""textutils.slugify follows SPEC.md and newpost uses it instead of its own helper."""

import newpost
from textutils import slugify

cases = {
    "Hello, World!": "hello-world",
    "  Déjà vu  ": "d-j-vu",
    "***": "untitled",
    "": "untitled",
    "Release 2.0 -- notes": "release-2-0-notes",
    "already-a-slug": "already-a-slug",
    "MiXeD_Case__Title": "mixed-case-title",
}
for text, want in cases.items():
    got = slugify(text)
    assert got == want, f"slugify({text!r}) returned {got!r}, expected {want!r}"

assert not hasattr(newpost, "_slug"), "newpost.py still defines its own _slug helper"
assert newpost.slugify is slugify, "newpost.py does not use textutils.slugify"
got = newpost.post_filename("2025-11-29", "Hello, World!")
assert got == "2025-11-29-hello-world.md", f"post_filename returned {got!r}"
