from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetlab.clock import FakeClock
from fleetlab.store import Store, open_store
from tests.helpers.browser import CHROMIUM

#: Set (to 1) by `make unit`: a test whose system dependency is missing fails instead of
#: skipping, so `make test` cannot pass with the browser or sandbox tests silently skipped.
REQUIRE_DEPS_ENV = "FLEETLAB_REQUIRE_DEPS"


def require_dependency(present: bool, reason: str) -> None:
    """Go on when ``present``; else fail with ``reason`` when ``FLEETLAB_REQUIRE_DEPS=1``
    (as in `make test`), or skip with it (a developer running pytest by hand)."""
    if present:
        return
    if os.environ.get(REQUIRE_DEPS_ENV, "") == "1":
        pytest.fail(f"{reason} ({REQUIRE_DEPS_ENV}=1: a missing dependency fails the run)")
    pytest.skip(reason)


def find_chromium(path: Path = CHROMIUM) -> Path:
    """``path`` when chromium is there; else fails or skips, saying why."""
    require_dependency(
        path.is_file() and os.access(path, os.X_OK),
        f"browser test: {path} is missing: `make browser-deps` installs it as root on Debian "
        "(apt-get install chromium)",
    )
    return path


def find_bwrap(bwrap: str | None = None) -> None:
    """Returns when sandboxes can run (bubblewrap at ``bwrap``, default ``$FLEETLAB_BWRAP``
    or PATH); else fails or skips, saying why."""
    from fleetlab import sandbox

    found = sandbox.availability(bwrap)
    require_dependency(
        found.available,
        f"sandbox test: {found.reason} (`make sandbox-deps` installs bubblewrap as root)",
    )


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium for a browser test (fails or skips without it: `require_dependency`)."""
    return find_chromium()


@pytest.fixture
def bwrap() -> None:
    """Bubblewrap for a sandbox test (fails or skips without it: `require_dependency`)."""
    find_bwrap()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "fleet.db"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[Store]:
    with open_store(db_path, clock=clock) as s:
        yield s


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never talk to a real API or a real OpenTelemetry collector."""
    for name in ("ANTHROPIC_API_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT", "FLEETLAB_DB"):
        monkeypatch.delenv(name, raising=False)
