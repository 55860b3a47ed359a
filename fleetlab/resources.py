"""Data files the commands need, found the same way in a checkout and in an installed wheel.

Each kind of data file has a place in the repository, which stays the user-editable copy, and
a copy shipped in the wheel under ``fleetlab/_data/`` (pyproject.toml's ``force-include``: the
repository holds each file once). A lookup tries, in order:

1. the user's folders: ``$FLEETLAB_PROMPTS`` (``:``-separated) for prompts, then the kind's
   folder under the current directory (``./experiments/prompts``, ``./notebooks``,
   ``./experiments``);
2. the wheel's package data (``importlib.resources``);
3. the checkout beside the package source (an editable install has no ``_data`` folder).

::

    from fleetlab import resources
    notebook = resources.find("notebooks", "weekly_digest.ipynb")   # a Path
    for folder in resources.folders("prompts"): ...                 # earlier folders win
"""

from __future__ import annotations

import os
from importlib import resources as _importlib_resources
from pathlib import Path
from typing import Literal

from fleetlab.errors import NotFoundError

__all__ = ["CHECKOUT_PATHS", "ENV_VARS", "Kind", "find", "folders"]

Kind = Literal["prompts", "notebooks", "experiments"]

# where each kind lives in the repository (and under the current directory); the wheel holds
# the same files under fleetlab/_data/<kind>/
CHECKOUT_PATHS: dict[str, str] = {
    "prompts": "experiments/prompts",
    "notebooks": "notebooks",
    "experiments": "experiments",
}
# environment variables naming more user folders, searched before the current directory
ENV_VARS: dict[str, str] = {"prompts": "FLEETLAB_PROMPTS"}


def _kind(kind: str) -> str:
    if kind not in CHECKOUT_PATHS:
        raise NotFoundError(
            f"unknown kind of data file {kind!r}: use one of {', '.join(CHECKOUT_PATHS)}"
        )
    return CHECKOUT_PATHS[kind]


def _package_root() -> Path:
    # fleetlab is a regular package, so importlib.resources gives a real folder (pip unpacks
    # wheels; nothing here supports running from a zip file)
    return Path(str(_importlib_resources.files("fleetlab")))


def _checkout_root() -> Path | None:
    """The repository holding this package's source, when it is one (an editable install)."""
    root = _package_root().resolve().parent
    return root if (root / "pyproject.toml").is_file() else None


def _candidates(kind: str) -> list[Path]:
    rel = _kind(kind)
    env = ENV_VARS.get(kind)
    dirs = (
        [Path(p).expanduser() for p in os.environ.get(env, "").split(os.pathsep) if p]
        if env
        else []
    )
    dirs.append(Path.cwd() / rel)
    dirs.append(_package_root() / "_data" / kind)
    checkout = _checkout_root()
    if checkout is not None:
        dirs.append(checkout / rel)
    return dirs


def folders(kind: Kind | str) -> list[Path]:
    """The existing folders holding files of ``kind``, most specific first (the user's
    folders, then the wheel's package data, then the checkout), each folder once."""
    seen: list[Path] = []
    resolved: set[Path] = set()
    for folder in _candidates(kind):
        if folder.is_dir() and folder.resolve() not in resolved:
            resolved.add(folder.resolve())
            seen.append(folder)
    return seen


def find(kind: Kind | str, name: str) -> Path:
    """The file ``name`` of ``kind`` from the first folder that has it.

    Raises:
        NotFoundError: no folder has it; the message names the folders searched and where a
            user copy would go.
    """
    if not name or Path(name).name != name:
        raise NotFoundError(f"{name!r}: expected a file name without folders")
    for folder in folders(kind):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(p) for p in _candidates(kind))
    raise NotFoundError(
        f"cannot find {name} ({kind}): looked in {searched}; "
        f"put a copy in ./{_kind(kind)}/ or reinstall fleetlab"
    )
