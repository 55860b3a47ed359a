"""The digest's parameters (week, zone, db, model, output folder), checked before any work.

Bad input raises ``UserError`` with one line that says what was wrong and what to do, so the
notebook's first cell fails fast and ``fleetlab digest`` prints it without a traceback.
``one_line_errors`` makes the notebook's kernel show such an error as that one line too.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from fleetlab.clock import (
    Clock,
    FakeClock,
    SystemClock,
    WeekWindow,
    check_started,
    ensure_utc,
    get_zone,
    last_complete_week,
    parse_week,
)
from fleetlab.errors import UserError, one_line_errors
from fleetlab.models.registry import get_model
from fleetlab.store import Store, open_store, url
from fleetlab.telemetry import register_secret

__all__ = ["DigestParams", "one_line_errors", "validate_params"]

_MASKED = "***"  # what ``url.redacted`` puts in place of a password


@dataclass(frozen=True, slots=True)
class DigestParams:
    """Validated digest parameters."""

    window: WeekWindow
    #: the fleet database: an absolute file path, or a URL (with its password: show
    #: ``location``, never this)
    db: str
    model: str
    out_dir: Path | None
    now: datetime | None = None
    kind: Literal["digest_params"] = field(default="digest_params", repr=False)

    @property
    def week(self) -> str:
        return self.window.label

    @property
    def tz(self) -> str:
        return self.window.zone

    @property
    def location(self) -> str:
        """The database, safe to show (a URL's password masked)."""
        return url.redacted(self.db)

    def clock(self) -> Clock:
        """The clock the report reads: fixed at ``now`` when given, else the system clock."""
        return FakeClock(self.now) if self.now is not None else SystemClock()

    def open_store(self) -> Store:
        """The fleet database, on this report's clock."""
        return open_store(self.db, create=False, clock=self.clock())


def _kind(value: object) -> str:
    """What a parameter of the wrong type is, for a message: ``the int 5``."""
    return f"the {type(value).__name__} {value!r}"


def _parse_now(now: str | datetime | None) -> datetime | None:
    if now is None or now == "":
        return None
    if isinstance(now, datetime):
        return ensure_utc(now, "now")
    try:
        value = datetime.fromisoformat(str(now).replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"now {now!r} is not an ISO 8601 instant, e.g. 2026-11-30T07:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise UserError(f"now {now!r} has no time zone: add Z or an offset")
    return ensure_utc(value)


def _database(db: str | Path | None) -> str:
    """The checked database ``db`` names: an absolute path, or a URL the store opened.

    A URL whose password is masked (``***``, as reports and the executed notebook show it)
    is the one in ``$FLEETLAB_DB`` when that is the same URL with its password: this is how
    ``run_digest`` hands the notebook's kernel a password without writing it in the
    notebook.
    """
    if db is not None and not isinstance(db, str | os.PathLike):
        raise UserError(
            f"db is {_kind(db)}, not a path: give the fleet database as a file path or a"
            " postgresql:// URL (papermill: -r db NAME passes it as text)"
        )
    target = url.resolve(db)
    url.check(target)
    if not url.is_server_url(target):
        path = Path(target)
        if not path.exists():
            raise UserError(
                f"no fleet database at {str(path)!r}: give the fleet's database (--db PATH,"
                " the notebook's db, or $FLEETLAB_DB), e.g. after `fleetlab fleet simulate`"
            )
        if not path.is_file():
            raise UserError(f"db {str(path)!r} is not a file: give the fleet's SQLite database")
        # an empty file is refused by ``open_store(create=False)`` below: a digest only reads
    elif _MASKED in url.passwords(target):
        env = url.resolve(None)
        if env == target or url.redacted(env) != target:
            raise UserError(
                f"db {target!r} has its password masked: give the full URL, or set"
                " FLEETLAB_DB to it"
            )
        target = env
    for secret in url.passwords(target):
        register_secret(secret)  # masked in whatever this process writes from now on
    # Refuses, with one line, databases that are not fleetlab's, are damaged or cannot be
    # reached: the whole file is checked (up to a size limit) since a report reads all of a
    # week's rows.
    open_store(target, create=False, check="thorough").close()
    # The notebook runs in another folder: a file is passed on by its absolute path.
    return target if url.is_server_url(target) else str(Path(target).resolve())


def validate_params(
    *,
    week: str | None = None,
    tz: str = "UTC",
    db: str | Path | None = None,
    model: str = "sim:default",
    out_dir: str | Path | None = None,
    now: str | datetime | None = None,
) -> DigestParams:
    """Check the digest's parameters and resolve the defaults.

    Args:
        week: ISO week (``2026-W48``); empty or None means the last complete week in ``tz``.
            A week that has not started by ``now`` is refused.
        tz: IANA zone whose local Mondays bound the week.
        db: the fleet database, a file path or a ``postgresql://`` URL; empty or None means
            ``$FLEETLAB_DB``, else ``fleet.db`` at the root of the fleetlab checkout (see
            ``fleetlab.store.url.default_db``). It must exist and not be empty: a digest
            only reads.
        model: the digest agent's model: ``sim:*`` (offline template) or ``anthropic:<id>``.
        out_dir: where the report's files go (empty or None: write nothing): an existing
            folder, or one that can be made (the nearest existing folder above it accepts
            new files).
        now: the current instant (ISO 8601); empty or None means the system clock.

    Raises:
        UserError: one line naming the bad parameter and what to do (``CorruptDatabase`` for
            a damaged db).
    """
    if not isinstance(tz, str):
        raise UserError(f"tz is {_kind(tz)}: give an IANA zone such as Europe/London or UTC")
    if not tz.strip():
        raise UserError("tz is empty: give an IANA zone such as Europe/London or UTC")
    zone = tz.strip()
    get_zone(zone)
    if week is not None and not isinstance(week, str):
        raise UserError(f"week is {_kind(week)}: give an ISO week as text, e.g. 2026-W48")
    if now is not None and not isinstance(now, str | datetime):
        raise UserError(f"now is {_kind(now)}: give an ISO 8601 instant, e.g. 2026-11-30T07:00:00Z")
    instant = _parse_now(now)
    clock = FakeClock(instant) if instant else SystemClock()
    if week:
        window = parse_week(week, zone)
        check_started(window, clock.now())
    else:
        window = last_complete_week(clock, zone)
    target = _database(db)
    if not isinstance(model, str) or ":" not in model:
        raise UserError(
            f"model {model!r} is malformed: use sim:default (offline) or anthropic:<model-id>"
        )
    get_model(model)  # an unknown backend or a missing API key fails here, not at the end
    folder = _out_dir(out_dir)
    return DigestParams(window=window, db=target, model=model, out_dir=folder, now=instant)


def _out_dir(out_dir: object) -> Path | None:
    """The report's folder, checked before any work: an existing folder, or one that can
    be made (the nearest existing folder above it accepts a new folder, tried and removed
    at once). Nothing is left behind."""
    if out_dir is None or out_dir == "":
        return None
    if not isinstance(out_dir, str | os.PathLike):
        raise UserError(f'out_dir is {_kind(out_dir)}: give a folder path, or "" to write nothing')
    if not str(os.fspath(out_dir)).strip():  # a folder named "   ": a slip
        raise UserError(
            f'out_dir {str(out_dir)!r} is blank: give a folder path, or "" to write nothing'
        )
    folder = Path(out_dir)
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        if existing == folder.absolute():
            raise UserError(f"out_dir {str(folder)!r} exists and is not a folder")
        raise UserError(f"out_dir {str(folder)!r} cannot be made: {str(existing)!r} is a file")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fleetlab-probe-", dir=existing))
    except OSError as exc:
        where = "cannot be written" if existing == folder.absolute() else "cannot be made"
        raise UserError(
            f"out_dir {str(folder)!r} {where}: the folder {str(existing)!r} takes no new"
            f" files ({exc.strerror}); give a folder you can write in"
        ) from None
    return folder
