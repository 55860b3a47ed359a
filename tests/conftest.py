from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetlab.clock import FakeClock
from fleetlab.store import Store, open_store
from fleetlab.store.postgres.cluster import ClusterUnavailable, TempCluster
from tests.helpers.browser import CHROMIUM
from tests.helpers.simulated_week import simulate_week

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


# --- backends ------------------------------------------------------------------------
# A module (or test) marked ``both_backends`` runs each test that uses ``db_url`` or
# ``store`` once on SQLite and once on PostgreSQL (a throwaway cluster the tests start:
# one per session, a new empty database per test). ``sqlite_only`` opts a test out: it
# checks something only the file backend has, or behaviour no engine changes (it says why).

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (a CI timeout, ``kill``) stops the run as Ctrl-C does, so the session's fixtures
    # still tear down: no throwaway PostgreSQL cluster is left running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files holding a slow test go first, each keeping its order: `make test`'s workers
    take a whole file at a time, so the long ones start early and short ones fill in last."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    both = metafunc.definition.get_closest_marker("both_backends") is not None
    only = metafunc.definition.get_closest_marker("sqlite_only") is not None
    metafunc.parametrize("backend", BACKENDS if both and not only else BACKENDS[:1])


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TempCluster]:
    """A throwaway PostgreSQL cluster (Debian's binaries, initdb into a temp folder)."""
    try:
        cluster = TempCluster()
    except ClusterUnavailable as exc:
        require_dependency(False, f"PostgreSQL test: {exc}")
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


def _server_database(request: pytest.FixtureRequest) -> str:
    """A new database of the session's cluster. A fleet on a server keeps its workspaces in
    the folder it runs from: the test runs from its own temporary folder, so none lands in
    the checkout."""
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
    cluster: TempCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def db_url(backend: str, db_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a test's fleet lives: a SQLite file, or a new empty PostgreSQL database."""
    if backend == "postgresql":
        return _server_database(request)
    return str(db_path)


@pytest.fixture
def fresh_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], str]:
    """Makes another new, empty database on the test's backend each time it is called."""
    made = itertools.count(1)

    def make() -> str:
        if backend == "postgresql":
            return _server_database(request)
        return str(tmp_path / f"fleet-{next(made)}.db")

    return make


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[Store]:
    with open_store(db_url, clock=clock) as s:
        yield s


@pytest.fixture(scope="session")
def _user_data_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg-data-home")


@pytest.fixture(autouse=True)
def _no_ambient_config(
    monkeypatch: pytest.MonkeyPatch,
    _user_data_home: Path,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Tests never talk to a real API or a real OpenTelemetry collector, and never touch the
    user's default database (``$XDG_DATA_HOME/fleetlab``) or its log. Each runs in a folder
    of its own (a test marked ``in_checkout`` in the checkout's root), so what a command
    writes to its working folder (the checkout's ``fleet.db.log``, ``workspaces/``) never
    lands in the checkout."""
    if request.node.get_closest_marker("in_checkout") is None:
        monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for name in ("ANTHROPIC_API_KEY", "FLEETLAB_DB"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):  # the traces endpoint too: a dead collector stalls every commit
        if name.startswith("OTEL_EXPORTER_OTLP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(_user_data_home))
    # the kernels tests start keep their history here, not in the user's ~/.ipython (shared
    # by every test process at once)
    monkeypatch.setenv("IPYTHONDIR", str(_user_data_home / "ipython"))


@pytest.fixture(scope="session")
def simulated_week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The db of tests/helpers/simulated_week.py's week, simulated once per session. Never
    written to: a module takes ``copy_week`` of it (the copy is its own to change)."""
    return simulate_week(tmp_path_factory.mktemp("simulated-week"))
