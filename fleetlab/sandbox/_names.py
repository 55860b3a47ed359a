"""Names and text an agent chooses: how a file system may read a name, and storable text."""

from __future__ import annotations

import unicodedata

# Code points HFS+ ignores in names, so ".g\u200cit" names ".git" on macOS (git's own
# is_hfs_dotgit list), and the trailing dots and spaces Windows drops from names.
_IGNORED_IN_NAMES = dict.fromkeys(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)


def folded_name(name: str) -> str:
    """``name`` as a case-insensitive file system may see it."""
    folded = unicodedata.normalize("NFC", name.translate(_IGNORED_IN_NAMES)).casefold()
    return folded.rstrip(". ")


def is_git_dir_name(name: str) -> bool:
    """Whether a file system (case-insensitive ones included) may take ``name`` for ``.git``."""
    return folded_name(name) in (".git", "git~1")  # git~1: the 8.3 short name NTFS gives .git


def printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode escaped, so it can be stored and printed.

    File names that are not UTF-8 reach Python as lone surrogates (``os.fsdecode``): the byte
    0xff of ``b"junk\\xff.txt"`` becomes ``"\\udcff"``. Such a byte is shown as ``\\xff``,
    any other lone surrogate as ``\\udxxx``; valid text is returned unchanged.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape carries it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
