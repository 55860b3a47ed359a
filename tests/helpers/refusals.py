"""What a refused command must leave behind: one line on stderr, and every file as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).parents[2]


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: a file's bytes, or what else it is (folder, FIFO...)."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            entries[name] = f"symlink to {os.readlink(path)}"
        elif path.is_dir():
            entries[name] = "folder"
        elif path.is_file():
            entries[name] = path.read_bytes()
        else:
            entries[name] = "special file"
    return entries


def one_error_line(err: str, out: str = "") -> str:
    """The only non-empty line of ``err``; fails if there is none or several, or a traceback."""
    assert "Traceback" not in err + out, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def run_cli(
    argv: Sequence[str], *, cwd: Path, timeout: float = 120, memory_bytes: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m fleetlab.cli ARGV`` in a real process (optionally with an address-space
    limit, so a regression that allocates without bound fails instead of eating the host)."""

    def limit() -> None:
        import resource

        assert memory_bytes is not None
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    env = {k: v for k, v in os.environ.items() if k not in ("FLEETLAB_DB", "ANTHROPIC_API_KEY")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "fleetlab.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=None if memory_bytes is None else limit,
    )
