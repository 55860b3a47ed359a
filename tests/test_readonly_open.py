"""A command that only reads never creates a database: an empty (0-byte) file, like a missing
one, is refused with one line naming it and is left exactly as it was (SQLite would otherwise
write fleetlab's schema into it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlab.cli import main
from fleetlab.digest import validate_params
from fleetlab.errors import UserError
from fleetlab.store import open_store


def _untouched(db: Path) -> None:
    assert db.stat().st_size == 0
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]  # no -wal, -shm or log


@pytest.mark.parametrize(
    "command",
    [["status"], ["status", "--week", "2026-W47"], ["tasks"], ["trace", "abc123"]],
)
def test_a_reading_command_refuses_an_empty_file(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "zero.db"
    db.touch()
    assert main([*command, "--db", str(db)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [
        f"error: db '{db}' is an empty file (0 bytes), not a fleet database: give the fleet's"
        " database, or delete this file first if a new fleet should start there"
    ]
    assert captured.out == ""
    _untouched(db)


def test_the_digest_refuses_an_empty_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "zero.db"
    db.touch()
    with pytest.raises(UserError, match=r"zero\.db' is an empty file \(0 bytes\)"):
        validate_params(db=str(db), week="2026-W47")
    _untouched(db)
    out = tmp_path.parent / f"{tmp_path.name}-reports"
    assert main(["digest", "--week", "2026-W47", "--db", str(db), "--out", str(out)]) == 2
    assert "is an empty file" in capsys.readouterr().err
    _untouched(db)


def test_open_store_without_create(tmp_path: Path) -> None:
    empty, missing = tmp_path / "empty.db", tmp_path / "missing.db"
    empty.touch()
    with pytest.raises(UserError, match="is an empty file"):
        open_store(empty, create=False)
    with pytest.raises(UserError, match="no fleet database at"):
        open_store(missing, create=False)
    assert empty.stat().st_size == 0
    assert not missing.exists()
    # a writer may still start a fleet in an empty file; then it is a database readers open
    open_store(empty).close()
    assert empty.stat().st_size > 0
    with open_store(empty, create=False) as store:
        assert [tuple(r) for r in store.query("SELECT COUNT(*) FROM tasks")] == [(0,)]
