"""A small read-only file system for the tests of what a command says when it cannot write."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def read_only_disk(folder: Path, fill: Callable[[Path], object]) -> Iterator[Path]:
    """A tmpfs mounted at ``folder`` (made here) holding what ``fill`` writes in it, then
    remounted read-only; unmounted at the end. Mounting needs root: the test skips without."""
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(folder)], check=True, capture_output=True)
    try:
        fill(folder)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)
