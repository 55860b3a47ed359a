"""The digest's parameters are checked before any work, each mistake one ``UserError`` line:
parameters of the wrong type (as papermill's ``-p`` makes them: ``-p db 5`` is an int), an
output folder that cannot be made, and a week that has not started (refused, not reported as
"in progress"), by ``validate_params`` and by ``fleetlab digest``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetlab.cli import main
from fleetlab.digest import validate_params
from fleetlab.errors import UserError
from tests.helpers.populate import populate


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("params") / "fleet.db"
    populate(str(db), roots=4)
    return db


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("db", 5, "db is the int 5, not a path"),
        ("db", 2.5, "db is the float 2.5, not a path"),
        ("out_dir", 7, "out_dir is the int 7"),
        ("out_dir", "   ", "out_dir '   ' is blank"),  # would make a folder named "   "
        ("out_dir", Path("\t"), "out_dir '\\t' is blank"),
        ("week", 202648, "week is the int 202648"),
        ("week", 0, "week is the int 0"),  # not "" (the default week) in disguise
        ("tz", 1, "tz is the int 1"),
        ("now", True, "now is the bool True"),
    ],
)
def test_a_parameter_of_the_wrong_type_is_one_line(
    param: str, value: object, message: str, fleet_db: Path
) -> None:
    given: dict[str, object] = {
        "db": str(fleet_db),
        "week": "2026-W47",
        "now": "2026-11-30T07:00:00Z",
    }
    given[param] = value
    with pytest.raises(UserError) as caught:
        validate_params(**given)  # type: ignore[arg-type]
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_an_out_dir_under_a_file_is_refused(fleet_db: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"notes\.txt.* is a file"):
        validate_params(db=str(fleet_db), week="2026-W47", out_dir=str(blocker / "reports"))
    with pytest.raises(UserError, match="exists and is not a folder"):
        validate_params(db=str(fleet_db), week="2026-W47", out_dir=str(blocker))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_out_dir_that_cannot_be_made_is_refused(fleet_db: Path) -> None:
    # /proc takes no new folders, even for root (os.access says it is writable for root)
    with pytest.raises(UserError, match="out_dir '/proc/nope' cannot be made"):
        validate_params(db=str(fleet_db), week="2026-W47", out_dir="/proc/nope")


def test_a_creatable_out_dir_passes_and_nothing_is_left(fleet_db: Path, tmp_path: Path) -> None:
    params = validate_params(db=str(fleet_db), week="2026-W47", out_dir=tmp_path / "a" / "b")
    assert params.out_dir == tmp_path / "a" / "b"
    assert os.listdir(tmp_path) == []  # checked by making a folder and removing it


# ISO week 2026-W50 starts on Monday 7 December 2026 (1 January 2026 is a Thursday, so W01
# starts Monday 29 December 2025; 49 weeks later is 7 December).
@pytest.mark.parametrize(
    ("now", "started"),
    [
        ("2026-12-03T09:00:00Z", False),
        ("2026-12-06T23:59:59Z", False),
        ("2026-12-07T00:00:00Z", True),  # the week in progress is reported as such
        ("2026-12-20T00:00:00Z", True),
    ],
)
def test_a_week_that_has_not_started_is_refused(now: str, started: bool, fleet_db: Path) -> None:
    if started:
        assert validate_params(db=str(fleet_db), week="2026-W50", now=now).week == "2026-W50"
        return
    with pytest.raises(UserError, match="week 2026-W50 has not started: it begins 2026-12-07"):
        validate_params(db=str(fleet_db), week="2026-W50", now=now)


def test_a_week_starts_at_local_midnight_of_its_zone(fleet_db: Path) -> None:
    # 2026-12-06T23:30Z is already Monday 7 December 08:30 in Tokyo (UTC+9), still Sunday in UTC
    now = "2026-12-06T23:30:00Z"
    assert validate_params(db=str(fleet_db), week="2026-W50", tz="Asia/Tokyo", now=now)
    with pytest.raises(UserError, match="has not started"):
        validate_params(db=str(fleet_db), week="2026-W50", tz="UTC", now=now)


def test_fleetlab_digest_refuses_a_future_week_and_writes_nothing(
    fleet_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    code = main(["digest", "--week", "9998-W10", "--db", str(fleet_db), "--out", str(reports)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: week 9998-W10 has not started")
    assert captured.out == ""
    assert not reports.exists()
