"""A fleet database named by a path or a URL: ``--db``, ``$FLEETLAB_DB``, the digest's ``db``.

The expectations are written out by hand from the URL grammar (RFC 3986 and libpq's
connection URIs), not taken from the code: the user part ends at the last ``@`` before the
host, a password follows the first ``:`` of the user part, ``password=`` in the query is a
password too, and anything without ``scheme://`` is a file path.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from fleetlab.clock import Clock
from fleetlab.errors import UserError
from fleetlab.store import Store, open_store, url
from tests.helpers.refusals import one_error_line, run_cli, snapshot

# --- resolve ------------------------------------------------------------------------

#: The default inside a checkout (the tests run from this one): its root's fleet.db.
CHECKOUT_DB = str(Path(__file__).resolve().parents[1] / "fleet.db")


@pytest.mark.parametrize(
    ("where", "env", "expected"),
    [
        (None, None, CHECKOUT_DB),
        (None, "  /data/env.db \n", "/data/env.db"),
        ("", "/data/env.db", "/data/env.db"),
        ("   ", None, CHECKOUT_DB),
        ("  my fleet.db\t", "/data/env.db", "my fleet.db"),
        (Path("/srv/a@b.db"), None, "/srv/a@b.db"),
        (" postgresql://u:pw@db.lan/fleet ", None, "postgresql://u:pw@db.lan/fleet"),
        (None, "postgres://db.lan/fleet", "postgres://db.lan/fleet"),
        ("sqlite:///abs/path/fleet.db", None, "/abs/path/fleet.db"),
        ("sqlite:///abs/with%20space.db", None, "/abs/with space.db"),
    ],
)
@pytest.mark.in_checkout  # the default in a checkout: its root's fleet.db
def test_resolve(
    where: str | Path | None, env: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env is None:
        monkeypatch.delenv("FLEETLAB_DB", raising=False)
    else:
        monkeypatch.setenv("FLEETLAB_DB", env)
    assert url.resolve(where) == expected


@pytest.mark.parametrize(
    ("where", "server"),
    [
        ("postgresql://h/db", True),
        ("postgres://h/db", True),
        ("PostgreSQL://h/db", True),
        ("fleet.db", False),
        ("/srv/postgresql/fleet.db", False),
        ("postgresql:/h/db", False),  # one slash: a relative path, not a URL
        ("user@host:fleet.db", False),
        (":memory:", False),
        ("mysql://h/db", False),
    ],
)
def test_is_server_url(where: str, server: bool) -> None:
    assert url.is_server_url(where) is server


# --- redacted -----------------------------------------------------------------------

REDACTED = [
    # a password in the user part
    ("postgresql://ann:s3cret@db.lan:5432/fleet", "postgresql://ann:***@db.lan:5432/fleet"),
    ("postgres://ann:s3cret@db.lan/fleet", "postgres://ann:***@db.lan/fleet"),
    # an empty password is still the password field
    ("postgresql://ann:@db.lan/fleet", "postgresql://ann:***@db.lan/fleet"),
    # '@' and ':' inside the password (unescaped): the user part ends at the last '@'
    ("postgresql://ann:p@ss:w0rd@db.lan/fleet", "postgresql://ann:***@db.lan/fleet"),
    # percent-encoded password
    ("postgresql://ann:p%40ss@db.lan/fleet", "postgresql://ann:***@db.lan/fleet"),
    # a '/' in an unescaped password pushes the '@' past the first '/': still masked
    ("postgresql://ann:pa/ss@db.lan/fleet", "postgresql://ann:***@db.lan/fleet"),
    # in the query, alone, first or among other parameters
    (
        "postgresql://db.lan/fleet?password=s3cret",
        "postgresql://db.lan/fleet?password=***",
    ),
    (
        "postgresql://ann@db.lan/fleet?sslmode=require&password=s3cret&connect_timeout=5",
        "postgresql://ann@db.lan/fleet?sslmode=require&password=***&connect_timeout=5",
    ),
    (
        "postgresql://ann:one@db.lan/fleet?password=two",
        "postgresql://ann:***@db.lan/fleet?password=***",
    ),
    ("postgresql://db.lan/fleet?sslpassword=k3y", "postgresql://db.lan/fleet?sslpassword=***"),
    # no password: unchanged
    ("postgresql://ann@db.lan/fleet", "postgresql://ann@db.lan/fleet"),
    ("postgresql:///fleet?host=/run/postgresql", "postgresql:///fleet?host=/run/postgresql"),
    ("postgresql://h1:5432,h2:5433/fleet", "postgresql://h1:5432,h2:5433/fleet"),
    # an unknown scheme is masked the same way (its error message shows it)
    ("mysql://root:hunter2@h/db", "mysql://root:***@h/db"),
    # paths are never changed, whatever they hold
    ("fleet.db", "fleet.db"),
    ("/srv/ann:s3cret@db.lan/fleet.db", "/srv/ann:s3cret@db.lan/fleet.db"),
    ("user:pw@host.db", "user:pw@host.db"),
    ("dir/password=x.db", "dir/password=x.db"),
]


@pytest.mark.parametrize(("where", "expected"), REDACTED)
def test_redacted(where: str, expected: str) -> None:
    assert url.redacted(where) == expected


@pytest.mark.parametrize(
    "where",
    [w for w, shown in REDACTED if "***" in shown],
)
def test_redacted_url_holds_no_password(where: str) -> None:
    shown = url.redacted(where)
    for secret in ("s3cret", "p@ss:w0rd", "p%40ss", "pa/ss", "one", "two", "k3y", "hunter2"):
        if secret in where:
            assert secret not in shown


def test_redacted_never_raises() -> None:
    for text in ("postgresql://[::1", "postgresql://u:pw@[bad/db", "x://", "://", "", "@"):
        assert "pw" not in url.redacted(text)


def test_passwords() -> None:
    assert url.passwords("postgresql://ann:p%40ss@h/db?password=two") in (
        ["p@ss", "p%40ss", "two"],
        ["p%40ss", "p@ss", "two"],
    )
    assert url.passwords("postgresql://ann@h/db") == []
    assert url.passwords("ann:pw@h.db") == []


# --- check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        "fleet.db",
        "/srv/a@b:c.db",
        ":memory:",
        "sqlite:///abs/fleet.db",
        "postgresql://ann:pw@db.lan/fleet",
        "postgresql://ann:pw@db.lan:5432/fleet",
        "postgres://db.lan:1/fleet",
        "postgresql://db.lan:65535/fleet",
        "postgresql:///fleet?host=/run/postgresql",
        "postgresql://[::1]:5432/fleet",
        "postgresql://[::1]/fleet",
        "postgresql://h1:5432,h2:5433/fleet",
        "postgresql://",
    ],
)
def test_check_accepts(where: str) -> None:
    url.check(where)


@pytest.mark.parametrize(
    ("where", "says", "shown"),
    [
        ("mysql://u:pw7@h/db", "unknown scheme 'mysql://'", "mysql://u:***@h/db"),
        ("http://h/db", "unknown scheme 'http://'", "http://h/db"),
        ("sqlite://host/x.db", "sqlite:///PATH", "sqlite://host/x.db"),
        ("postgresql://u:pw7@h:99999/db", "bad port", "postgresql://u:***@h:99999/db"),
        ("postgresql://u:pw7@h:0/db", "bad port", "postgresql://u:***@h:0/db"),
        ("postgresql://u:pw7@h:54x/db", "bad port", "postgresql://u:***@h:54x/db"),
        ("postgresql://u:pw7@h:/db", "bad port", "postgresql://u:***@h:/db"),
        ("postgresql://h1:5432,h2:x/db", "bad port", "postgresql://h1:5432,h2:x/db"),
        ("postgresql://u:pw7@[::1/db", "malformed", "postgresql://u:***@[::1/db"),
        ("postgresql://u:pw7@[::1]x/db", "':PORT'", "postgresql://u:***@[::1]x/db"),
        ("postgresql://u:p/w7@h/db", "percent-encode", "postgresql://u:***@h/db"),
        ("postgresql://u:pw7@h/my db", "space", "postgresql://u:***@h/my db"),
    ],
)
def test_check_refuses(where: str, says: str, shown: str) -> None:
    with pytest.raises(UserError) as caught:
        url.check(where)
    message = str(caught.value)
    assert "\n" not in message
    assert says in message
    assert repr(shown) in message
    assert "pw7" not in message


def test_open_store_refuses_a_bad_url_before_touching_anything(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match="unknown scheme"):
        open_store("mysql://u:pw7@h/db")
    assert snapshot(tmp_path) == before


# --- the command line ---------------------------------------------------------------


def _fleet(path: Path, titles: list[str]) -> None:
    with open_store(path) as store:
        for title in titles:
            store.create_task(title)


@pytest.fixture
def two_fleets(tmp_path: Path) -> tuple[Path, Path]:
    """Two databases that ``status`` tells apart: 1 and 3 queued goals."""
    one, three = tmp_path / "one.db", tmp_path / "three.db"
    _fleet(one, ["a"])
    _fleet(three, ["a", "b", "c"])
    return one, three


def _spawned(proc_stdout: str) -> int:
    return int(json.loads(proc_stdout)["spawned"])


@pytest.mark.parametrize(
    "argv",
    [
        ["--db", "{db}", "status", "--json"],
        ["status", "--db", "{db}", "--json"],
        ["status", "--json", "--db", "{db}"],
        ["--db", "{other}", "status", "--json", "--db", "{db}"],  # the later one wins
    ],
)
def test_db_before_or_after_the_command(
    argv: list[str], two_fleets: tuple[Path, Path], tmp_path: Path
) -> None:
    for db, other, expected in (
        (two_fleets[0], two_fleets[1], 1),
        (two_fleets[1], two_fleets[0], 3),
    ):
        args = [a.format(db=db, other=other) for a in argv]
        proc = run_cli(args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert _spawned(proc.stdout) == expected


def test_db_after_other_commands(two_fleets: tuple[Path, Path], tmp_path: Path) -> None:
    _, three = two_fleets
    proc = run_cli(["tasks", "--json", "--db", str(three)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(t["title"] for t in json.loads(proc.stdout)) == ["a", "b", "c"]
    proc = run_cli(["submit", "d", "--db", str(three)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open_store(three) as store:
        assert sorted(t.title for t in store.tasks()) == ["a", "b", "c", "d"]
    assert not (tmp_path / "fleet.db").exists()


def test_sqlite_url_is_the_path(two_fleets: tuple[Path, Path], tmp_path: Path) -> None:
    _, three = two_fleets
    proc = run_cli(["status", "--json", "--db", f"sqlite://{three}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _spawned(proc.stdout) == 3


# A short password is never registered for redaction (it would match ordinary text), so
# these show that the messages themselves leave it out; the long one shows the same for a
# password the CLI does register.
PASSWORDS = ("pw7", "Zq8-long-s3cret-value")


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    "argv",
    [
        ["--db", "mysql://ann:{pw}@db.lan/fleet", "status"],
        ["status", "--db", "mysql://ann:{pw}@db.lan/fleet"],
        ["submit", "a goal", "--db", "postgresql://ann:{pw}@db.lan:70000/fleet"],
        ["digest", "--db", "mysql://ann:{pw}@db.lan/fleet", "--week", "2026-W45"],
        ["--db", "postgresql://ann@db.lan/fleet?password={pw}&port=x y", "tasks"],
    ],
)
def test_bad_url_is_one_line_without_the_password(
    argv: list[str],
    password: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In process, as a fresh process starts: no key registered, no $FLEETLAB_DB."""
    from fleetlab import telemetry
    from fleetlab.cli import main

    monkeypatch.setattr(telemetry, "_registered", ())
    monkeypatch.delenv("FLEETLAB_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = main([a.format(pw=password) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2
    line = one_error_line(err, out)
    assert line.startswith("error: db ")
    assert password not in err + out
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("password", PASSWORDS)
def test_bad_url_through_the_real_command(password: str, tmp_path: Path) -> None:
    """The same refusal from a real process (the cases above run in process)."""
    before = snapshot(tmp_path)
    proc = run_cli(["--db", f"mysql://ann:{password}@db.lan/fleet", "status"], cwd=tmp_path)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr, proc.stdout)
    assert line.startswith("error: db ")
    assert password not in proc.stderr + proc.stdout
    assert snapshot(tmp_path) == before


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("where", ["before", "after"])
def test_unreachable_server_is_one_line_without_the_password(
    password: str, where: str, tmp_path: Path
) -> None:
    db = f"postgresql://ann:{password}@127.0.0.1:{_closed_port()}/fleet?connect_timeout=5"
    argv = ["--db", db, "status"] if where == "before" else ["status", "--db", db]
    before = snapshot(tmp_path)
    proc = run_cli(argv, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr, proc.stdout)
    assert "127.0.0.1" in line
    assert password not in proc.stderr + proc.stdout
    assert snapshot(tmp_path) == before


def test_fleetlab_db_env_url_is_checked(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.helpers.refusals import REPO

    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = str(REPO)
    env["FLEETLAB_DB"] = "mysql://ann:pw7@db.lan/fleet"
    proc = subprocess.run(
        [sys.executable, "-m", "fleetlab.cli", "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    line = one_error_line(proc.stderr, proc.stdout)
    assert "unknown scheme 'mysql://'" in line
    assert "pw7" not in proc.stderr + proc.stdout


# --- the digest's db parameter ------------------------------------------------------


def test_digest_db_path_is_absolute(
    two_fleets: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetlab.digest import validate_params

    one, _ = two_fleets
    monkeypatch.chdir(one.parent)
    params = validate_params(week="2026-W45", db=one.name)
    assert params.db == str(one.resolve())
    assert params.location == str(one.resolve())


def test_digest_masked_password_needs_the_whole_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetlab.digest import validate_params

    monkeypatch.delenv("FLEETLAB_DB", raising=False)
    with pytest.raises(UserError, match="password masked") as caught:
        validate_params(week="2026-W45", db="postgresql://ann:***@127.0.0.1:1/fleet")
    assert "\n" not in str(caught.value)
    # $FLEETLAB_DB holding another URL does not stand in for it either
    monkeypatch.setenv("FLEETLAB_DB", "postgresql://bob:pw7@127.0.0.1:1/fleet")
    with pytest.raises(UserError, match="password masked") as caught:
        validate_params(week="2026-W45", db="postgresql://ann:***@127.0.0.1:1/fleet")
    assert "pw7" not in str(caught.value)


def test_digest_bad_url_is_refused() -> None:
    from fleetlab.digest import validate_params

    with pytest.raises(UserError) as caught:
        validate_params(week="2026-W45", db="mysql://ann:pw7@db.lan/fleet")
    assert "pw7" not in str(caught.value)
    assert "mysql://ann:***@db.lan/fleet" in str(caught.value)


# --- the digest on PostgreSQL, with a password --------------------------------------

DIGEST_WEEK = "2026-W45"


def test_digest_on_postgresql_writes_no_password(pg_cluster: Any, tmp_path: Path) -> None:
    """The report of a database reached with a password: the run works (the kernel got the
    whole URL), and no file of the report, nor the command's output, holds the password.

    The password is short so that nothing registers it for redaction: this shows that it
    is never written, not that it is masked afterwards.
    """
    import asyncio

    from fleetlab.clock import parse_week
    from fleetlab.simulate import simulate

    password = "pw7x"
    db = pg_cluster.password_url(password)
    shown = db.replace(f":{password}@", ":***@")
    start = parse_week(DIGEST_WEEK).start
    stores: list[Store] = []

    def factory(clock: Clock) -> Store:
        stores.append(open_store(db, clock=clock))
        return stores[-1]

    try:
        asyncio.run(simulate(factory, start, days=1, tasks_per_day=3, seed=3))
    finally:
        for store in stores:
            store.close()
    proc = run_cli(
        ["digest", "--week", DIGEST_WEEK, "--db", db, "--out", "reports"], cwd=tmp_path, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert password not in proc.stdout + proc.stderr
    report = tmp_path / "reports" / DIGEST_WEEK
    files = [p for p in report.rglob("*") if p.is_file()]
    assert {"metrics.json", "digest.md", "index.html", "weekly_digest.ipynb"} <= {
        p.name for p in files
    }
    for path in files:
        assert password.encode() not in path.read_bytes(), path.name
    notebook = json.loads((report / "weekly_digest.ipynb").read_text("utf-8"))
    [injected] = [
        "".join(c["source"])
        for c in notebook["cells"]
        if "injected-parameters" in c.get("metadata", {}).get("tags", [])
    ]
    assert f"db = {shown!r}" in injected or f'db = "{shown}"' in injected
