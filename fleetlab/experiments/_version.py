"""The code version an experiment's results were produced with.

``code_version()`` is fleetlab's version plus a digest of the source that can change a
trial's outcome: every ``.py`` and data file of the installed package (so it works the same
from a checkout, with uncommitted edits, and from a wheel), except the parts that only show
results (charts, widgets, the digest, the CLI, the benchmarks, the A/B report). Results
recorded with other code are refused rather than resumed (``ResultsDB.bind``).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["code_version"]

_PACKAGE = Path(__file__).resolve().parents[1]

#: Folders and files that never change a trial's outcome, relative to the package.
_PRESENTATION = (
    "bench/",
    "charts/",
    "cli/",
    "digest/",
    "trace/",
    "widgets/",
    "experiments/_compare.py",
    "experiments/_pairs.py",
    "experiments/_progress.py",
    "experiments/_report.py",
    "experiments/_worlds.py",  # the worlds' manifest, loading and report tables
)
_SUFFIXES = (".py", ".toml", ".json", ".txt", ".md")


@functools.cache
def code_version() -> str:
    """``"<version>+src.<12 hex digits>"``: fleetlab's version and a digest of its source."""
    from fleetlab import __version__

    digest = hashlib.blake2b(digest_size=6)
    for path in sorted(_PACKAGE.rglob("*")):
        rel = path.relative_to(_PACKAGE).as_posix()
        if (
            not path.is_file()
            or path.suffix not in _SUFFIXES
            or "__pycache__" in rel
            or rel.startswith(_PRESENTATION)
        ):
            continue
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{__version__}+src.{digest.hexdigest()}"
