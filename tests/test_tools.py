"""Tests for the sandboxed workspace tools: each tool, confinement, limits and arg validation."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlab import tools
from fleetlab.errors import ConfigError
from fleetlab.tools import TOOL_SPECS, ToolOutcome, Workspace

TOOL_NAMES = ("list_dir", "read_file", "write_file", "move", "delete", "make_dir", "search")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspace holding a secret the model must never reach."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("TOP SECRET")
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


def ok(ws: Workspace, name: str, **args: object) -> str:
    outcome = ws.run_tool(name, args)
    assert not outcome.is_error, outcome.content
    return outcome.content


def err(ws: Workspace, name: str, **args: object) -> str:
    outcome = ws.run_tool(name, args)
    assert outcome.is_error, outcome.content
    return outcome.content


# -- specs and argument validation ----------------------------------------------------------


def test_tool_specs_have_strict_json_schemas() -> None:
    assert tuple(spec.name for spec in TOOL_SPECS) == TOOL_NAMES
    for spec in TOOL_SPECS:
        schema = spec.input_schema
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])
        assert spec.description
        json.dumps(spec.to_dict())  # handed to the API as JSON
    required = {spec.name: set(spec.input_schema["required"]) for spec in TOOL_SPECS}
    assert required == {
        "list_dir": set(),
        "read_file": {"path"},
        "write_file": {"path", "content"},
        "move": {"src", "dst"},
        "delete": {"path"},
        "make_dir": {"path"},
        "search": {"pattern"},
    }


def test_unknown_tool_lists_the_available_ones(ws: Workspace) -> None:
    outcome = ws.run_tool("rm_rf", {"path": "."})
    assert outcome == ToolOutcome(outcome.content, is_error=True)
    assert "unknown tool 'rm_rf'" in outcome.content
    assert "read_file" in outcome.content


def test_non_string_tool_name_is_a_tool_error(ws: Workspace) -> None:
    assert ws.run_tool(None, {}).is_error  # type: ignore[arg-type]  # a model could send anything


def test_missing_required_argument(ws: Workspace) -> None:
    message = err(ws, "write_file", path="a.txt")
    assert "missing required argument 'content'" in message
    assert "write_file(path: string, content: string)" in message


def test_wrong_argument_type(ws: Workspace) -> None:
    message = err(ws, "read_file", path=["a.txt"])
    assert "argument 'path' must be a string, got array" in message


def test_bool_is_not_accepted_as_a_string_or_number(ws: Workspace) -> None:
    assert "got boolean" in err(ws, "make_dir", path=True)


def test_extra_argument(ws: Workspace) -> None:
    message = err(ws, "list_dir", path=".", recursive=True)
    assert "unexpected argument 'recursive'" in message
    assert "list_dir(path: string = '.')" in message


@pytest.mark.parametrize("args", [None, [], "a.txt", 3, ["path", "a.txt"]])
def test_arguments_that_are_not_an_object(ws: Workspace, args: object) -> None:
    outcome = ws.run_tool("read_file", args)
    assert outcome.is_error
    assert "arguments must be a JSON object" in outcome.content


def test_every_problem_is_named_at_once(ws: Workspace) -> None:
    message = err(ws, "move", src=1, extra="x")
    assert "unexpected argument 'extra'" in message
    assert "missing required argument 'dst'" in message
    assert "argument 'src' must be a string, got integer" in message


# -- the tools ------------------------------------------------------------------------------


def test_root_is_created(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "a" / "b")
    assert ws.root.is_dir()
    assert ws.root == (tmp_path / "a" / "b").resolve()


def test_list_dir_sorted_with_directory_slashes(ws: Workspace) -> None:
    ws.seed({"b.txt": "", "a/x.txt": "", "c/d/e.txt": "", "A.txt": ""})
    assert ok(ws, "list_dir") == "A.txt\na/\nb.txt\nc/"
    assert ok(ws, "list_dir", path="c") == "d/"
    assert ok(ws, "list_dir", path="./c/d/") == "e.txt"


def test_list_dir_empty_missing_and_file(ws: Workspace) -> None:
    assert "is empty" in ok(ws, "list_dir")
    assert "no such directory: 'nope'" in err(ws, "list_dir", path="nope")
    ws.seed({"f.txt": "x"})
    assert "'f.txt' is a file, not a directory" in err(ws, "list_dir", path="f.txt")


def test_list_dir_caps_long_listings(ws: Workspace) -> None:
    ws.seed({f"f{i:04}.txt": "" for i in range(tools.MAX_LIST_ENTRIES + 5)})
    lines = ok(ws, "list_dir").splitlines()
    assert len(lines) == tools.MAX_LIST_ENTRIES + 1
    assert lines[-1] == "[5 more entries not shown]"


def test_write_then_read_round_trips_unicode(ws: Workspace) -> None:
    text = "héllo\nwörld ✓\n\x00nul is text too\n"
    assert ok(ws, "write_file", path="notes/a.txt", content=text).startswith("created")
    assert ok(ws, "read_file", path="notes/a.txt") == text
    assert (ws.root / "notes" / "a.txt").read_text(encoding="utf-8") == text


def test_write_overwrites_and_leaves_no_temp_files(ws: Workspace) -> None:
    ok(ws, "write_file", path="a.txt", content="one")
    assert ok(ws, "write_file", path="a.txt", content="").startswith("overwrote")
    assert ok(ws, "read_file", path="a.txt") == ""
    assert os.listdir(ws.root) == ["a.txt"]


def test_write_refuses_directories_and_file_parents(ws: Workspace) -> None:
    ws.seed({"d/x.txt": "", "f.txt": ""})
    assert "'d' is a directory" in err(ws, "write_file", path="d", content="x")
    assert "'f.txt' is a file, not a directory" in err(
        ws, "write_file", path="f.txt/y.txt", content="x"
    )
    assert "not its root" in err(ws, "write_file", path=".", content="x")


def test_write_refuses_lone_surrogates(ws: Workspace) -> None:
    assert "not valid Unicode" in err(ws, "write_file", path="a.txt", content="\ud800")
    assert not (ws.root / "a.txt").exists()


def test_read_missing_directory_and_binary(ws: Workspace) -> None:
    ws.seed({"d/x.txt": ""})
    (ws.root / "bin.dat").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert "no such file: 'nope.txt'" in err(ws, "read_file", path="nope.txt")
    assert "no such directory: 'nope'" in err(ws, "read_file", path="nope/x.txt")
    assert "'d' is a directory; use list_dir" in err(ws, "read_file", path="d")
    assert "binary" in err(ws, "read_file", path="bin.dat")


def test_move_file_and_directory_creating_parents(ws: Workspace) -> None:
    ws.seed({"a.txt": "A", "src/x.txt": "X"})
    assert ok(ws, "move", src="a.txt", dst="b.txt") == "moved 'a.txt' to 'b.txt'"
    ok(ws, "move", src="src", dst="lib/pkg")
    assert ws.snapshot() == {"b.txt": "A", "lib/pkg/x.txt": "X"}


def test_move_refuses_existing_destination(ws: Workspace) -> None:
    ws.seed({"a.txt": "A", "b.txt": "B", "d/keep.txt": "", "e/x.txt": ""})
    assert "'b.txt' already exists" in err(ws, "move", src="a.txt", dst="b.txt")
    ok(ws, "make_dir", path="empty")
    assert "'empty' already exists" in err(ws, "move", src="d", dst="empty")
    assert "already exists" in err(ws, "move", src="a.txt", dst="a.txt")
    assert ws.snapshot() == {"a.txt": "A", "b.txt": "B", "d/keep.txt": "", "e/x.txt": ""}


def test_move_refuses_missing_source_root_and_into_itself(ws: Workspace) -> None:
    ws.seed({"d/x.txt": ""})
    assert "no such file or directory: 'nope'" in err(ws, "move", src="nope", dst="b")
    assert "not its root" in err(ws, "move", src=".", dst="b")
    assert "inside itself" in err(ws, "move", src="d", dst="d/sub")
    assert not (ws.root / "b").exists()


def test_delete_file_and_empty_directory(ws: Workspace) -> None:
    ws.seed({"a.txt": ""})
    ok(ws, "make_dir", path="empty")
    assert ok(ws, "delete", path="a.txt") == "deleted file 'a.txt'"
    assert ok(ws, "delete", path="empty") == "deleted empty directory 'empty'"
    assert os.listdir(ws.root) == []


def test_delete_refuses_non_empty_directory_missing_and_root(ws: Workspace) -> None:
    ws.seed({"d/x.txt": "keep"})
    assert "directory 'd' is not empty" in err(ws, "delete", path="d")
    assert "no such file or directory: 'nope'" in err(ws, "delete", path="nope")
    assert "not its root" in err(ws, "delete", path=".")
    assert "not its root" in err(ws, "delete", path="d/..")
    assert ws.snapshot() == {"d/x.txt": "keep"}


def test_make_dir_is_mkdir_p(ws: Workspace) -> None:
    assert ok(ws, "make_dir", path="a/b/c") == "created directory 'a/b/c'"
    assert (ws.root / "a" / "b" / "c").is_dir()
    assert "already exists" in ok(ws, "make_dir", path="a/b")
    assert "already exists" in ok(ws, "make_dir", path=".")
    ws.seed({"f.txt": ""})
    assert "'f.txt' exists and is not a directory" in err(ws, "make_dir", path="f.txt")
    assert "'f.txt' is a file, not a directory" in err(ws, "make_dir", path="f.txt/sub")


def test_search_lines_with_relative_paths(ws: Workspace) -> None:
    ws.seed({"a.py": "import os\nx = 1\n", "pkg/b.py": "def f():\n    import re\n", "c.md": ""})
    assert ok(ws, "search", pattern=r"^\s*import") == "a.py:1:import os\npkg/b.py:2:    import re"
    assert ok(ws, "search", pattern="import", path="pkg") == "pkg/b.py:2:    import re"
    assert ok(ws, "search", pattern="x", path="a.py") == "a.py:2:x = 1"


def test_search_no_match_missing_path_and_bad_regex(ws: Workspace) -> None:
    ws.seed({"a.txt": "abc"})
    assert ok(ws, "search", pattern="zzz") == "no matches for 'zzz' in '.'"
    assert "no such file or directory: 'nope'" in err(ws, "search", pattern="a", path="nope")
    assert "invalid regular expression '(unclosed'" in err(ws, "search", pattern="(unclosed")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("a{99999999999}", "unroll to more than 10000 steps"),
        ("(" * 501 + ")" * 501, "1002 characters long; the limit is 1000"),
        ("(" * 400 + ")" * 399, "invalid regular expression"),
    ],
)
def test_search_regexes_that_break_the_compiler_are_tool_errors(
    ws: Workspace, pattern: str, expected: str
) -> None:
    assert expected in err(ws, "search", pattern=pattern)


def test_search_is_capped_and_says_so(ws: Workspace) -> None:
    ws.seed({"many.txt": "hit\n" * 500, "z.txt": "hit\n"})
    lines = ok(ws, "search", pattern="hit").splitlines()
    assert len(lines) == tools.MAX_SEARCH_MATCHES + 1
    assert lines[-1].startswith(f"[truncated at {tools.MAX_SEARCH_MATCHES} matches")


def test_search_exactly_at_the_cap_is_not_truncated(ws: Workspace) -> None:
    ws.seed({"a.txt": "hit\n" * tools.MAX_SEARCH_MATCHES})
    assert "truncated" not in ok(ws, "search", pattern="hit")


def test_search_clips_long_lines_and_skips_binary_and_large_files(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", max_read_bytes=2_000)
    ws.seed({"long.txt": "needle" + "x" * 1_000, "big.txt": "needle\n" * 400})
    (ws.root / "bin.dat").write_bytes(b"needle\xff\xfe")
    lines = ok(ws, "search", pattern="needle").splitlines()
    assert lines[0] == "long.txt:1:needle" + "x" * 294
    assert lines[1] == "[skipped 1 files over 2000 bytes]"
    assert len(lines) == 2


# -- confinement ----------------------------------------------------------------------------

ESCAPES = ["../outside/secret.txt", "a/../../outside/secret.txt", "./../x", ".."]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("tool", ["list_dir", "read_file", "delete", "make_dir", "search"])
def test_dotdot_escapes_are_refused(ws: Workspace, outside: Path, tool: str, path: str) -> None:
    args = {"pattern": "."} if tool == "search" else {}
    assert "leads outside the workspace" in err(ws, tool, path=path, **args)
    assert (outside / "secret.txt").read_text() == "TOP SECRET"


@pytest.mark.parametrize("path", ESCAPES)
def test_dotdot_escapes_are_refused_for_writes_and_moves(
    ws: Workspace, outside: Path, path: str
) -> None:
    ws.seed({"a.txt": "A"})
    assert "outside" in err(ws, "write_file", path=path, content="pwned")
    assert "outside" in err(ws, "move", src="a.txt", dst=path)
    assert "outside" in err(ws, "move", src=path, dst="stolen.txt")
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert ws.snapshot() == {"a.txt": "A"}


def test_dotdot_inside_the_workspace_is_fine(ws: Workspace) -> None:
    ok(ws, "write_file", path="a/b/../c.txt", content="x")
    assert ws.snapshot() == {"a/c.txt": "x"}


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_absolute_paths_are_refused(ws: Workspace, outside: Path, tool: str) -> None:
    target = str(outside / "secret.txt")
    args = {
        "list_dir": {"path": str(outside)},
        "read_file": {"path": target},
        "write_file": {"path": target, "content": "pwned"},
        "move": {"src": target, "dst": "stolen.txt"},
        "delete": {"path": target},
        "make_dir": {"path": str(outside / "new")},
        "search": {"pattern": "SECRET", "path": target},
    }[tool]
    assert "is absolute" in err(ws, tool, **args)
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert not (outside / "new").exists()


@pytest.mark.parametrize("tool", ["list_dir", "read_file", "delete", "make_dir"])
def test_nul_bytes_in_paths_are_refused(ws: Workspace, tool: str) -> None:
    assert "NUL byte" in err(ws, tool, path="a\x00b")


@pytest.mark.parametrize("tool", TOOL_NAMES)
def test_paths_that_are_not_valid_unicode_are_refused_naming_the_rule(
    ws: Workspace, tool: str
) -> None:
    """A lone surrogate (JSON allows one, as ``\\udcff``) would make a name that is not
    UTF-8, and then a tool result or verdict nobody can store."""
    path = json.loads('"junk\\udcff.txt"')
    args = {"src": path, "dst": "b"} if tool == "move" else {"path": path}
    if tool == "write_file":
        args["content"] = "x"
    if tool == "search":
        args["pattern"] = "x"
    message = err(ws, tool, **args)
    assert "'junk\\udcff.txt' is not valid Unicode text" in message
    assert "file names in a workspace must be UTF-8" in message
    assert os.listdir(ws.root) == []


def test_names_that_are_not_utf8_are_shown_escaped(ws: Workspace) -> None:
    """Code run in the sandbox can make such a name: listings and searches show its bytes
    escaped (\\xff), so every tool result can be stored as UTF-8."""
    (ws.root / os.fsdecode(b"junk\xff.txt")).write_text("needle\n")
    assert ok(ws, "list_dir") == "junk\\xff.txt"
    assert ok(ws, "search", pattern="needle") == "junk\\xff.txt:1:needle"


def test_nul_bytes_in_move_and_search(ws: Workspace) -> None:
    assert "NUL byte" in err(ws, "move", src="a\x00", dst="b")
    assert "NUL byte" in err(ws, "search", pattern="x", path="\x00")
    assert "NUL byte" in err(ws, "write_file", path="a\x00.txt", content="")


def test_too_deep_paths_are_refused(ws: Workspace) -> None:
    deep = "/".join(["d"] * (tools.MAX_DEPTH + 1))
    assert "levels deep" in err(ws, "make_dir", path=deep)
    assert not (ws.root / "d").exists()


def test_files_at_the_depth_limit_are_usable_and_in_snapshots(ws: Workspace) -> None:
    deepest = "/".join(["d"] * (tools.MAX_DEPTH - 1) + ["f.txt"])
    ok(ws, "write_file", path=deepest, content="deep")
    assert ws.snapshot() == {deepest: "deep"}
    assert ok(ws, "search", pattern="deep") == f"{deepest}:1:deep"


def test_move_cannot_nest_a_tree_past_the_depth_limit(ws: Workspace) -> None:
    inner = "/".join(["d"] * 10 + ["f.txt"])  # 11 levels inside "a"
    ws.seed({f"a/{inner}": "x"})
    too_deep = "/".join(["b"] * (tools.MAX_DEPTH - 10))
    assert "levels deep" in err(ws, "move", src="a", dst=too_deep)
    just_fits = "/".join(["b"] * (tools.MAX_DEPTH - 11))
    ok(ws, "move", src="a", dst=just_fits)
    assert ws.snapshot() == {f"{just_fits}/{inner}": "x"}


def test_os_errors_become_tool_errors(ws: Workspace) -> None:
    assert "File name too long" in err(ws, "write_file", path="x" * 300, content="")


def test_symlinked_file_pointing_outside_is_refused(ws: Workspace, outside: Path) -> None:
    os.symlink(outside / "secret.txt", ws.root / "link.txt")
    assert "symbolic link" in err(ws, "read_file", path="link.txt")
    assert "symbolic link" in err(ws, "write_file", path="link.txt", content="pwned")
    assert "symbolic link" in err(ws, "delete", path="link.txt")
    assert "symbolic link" in err(ws, "move", src="link.txt", dst="moved.txt")
    assert "symbolic link" in err(ws, "search", pattern="SECRET", path="link.txt")
    assert "no matches" in ok(ws, "search", pattern="SECRET")
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert (ws.root / "link.txt").is_symlink()


def test_symlinked_directory_in_the_middle_of_a_path_is_refused(
    ws: Workspace, outside: Path
) -> None:
    os.symlink(outside, ws.root / "linkdir")
    ws.seed({"real/ok.txt": ""})
    os.symlink(outside, ws.root / "real" / "inner")
    for path in ("linkdir/secret.txt", "real/inner/secret.txt"):
        assert "symbolic link" in err(ws, "read_file", path=path)
        assert "symbolic link" in err(ws, "write_file", path=path, content="pwned")
        assert "symbolic link" in err(ws, "delete", path=path)
    assert "symbolic link" in err(ws, "write_file", path="linkdir/new.txt", content="x")
    assert "symbolic link" in err(ws, "make_dir", path="linkdir/new")
    assert "symbolic link" in err(ws, "list_dir", path="linkdir")
    assert "symbolic link" in err(ws, "search", pattern=".", path="linkdir")
    assert "symbolic link" in err(ws, "move", src="real/ok.txt", dst="linkdir/ok.txt")
    assert "no matches" in ok(ws, "search", pattern="SECRET")
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "TOP SECRET"


def test_symlinks_pointing_inside_are_refused_too(ws: Workspace) -> None:
    # Following none keeps the rule simple; the tools never create links themselves.
    ws.seed({"real.txt": "x"})
    os.symlink("real.txt", ws.root / "alias.txt")
    assert "symbolic link" in err(ws, "read_file", path="alias.txt")


def test_list_dir_marks_symlinks_and_special_files(ws: Workspace, outside: Path) -> None:
    os.symlink(outside, ws.root / "link")
    os.mkfifo(ws.root / "pipe")
    assert ok(ws, "list_dir") == "link@ (symlink, not followed)\npipe (special file)"


def test_open_refuses_links_even_when_the_check_is_raced(
    ws: Workspace, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate a link swapped in between the lstat check and the open: the check is fooled,
    # O_NOFOLLOW on the open is what must still refuse.
    os.symlink(outside / "secret.txt", ws.root / "link.txt")
    os.symlink(outside, ws.root / "linkdir")
    monkeypatch.setattr(tools, "_kind", lambda name, dir_fd: "dir" if "dir" in name else "file")
    for path in ("link.txt", "linkdir/secret.txt"):
        outcome = ws.run_tool("read_file", {"path": path})
        assert outcome.is_error
        assert "SECRET" not in outcome.content
    assert ws.run_tool("write_file", {"path": "linkdir/x.txt", "content": "pwned"}).is_error
    ok(ws, "write_file", path="link.txt", content="replaced the link, not its target")
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_fifo_is_refused_without_blocking(ws: Workspace) -> None:
    os.mkfifo(ws.root / "pipe")
    assert "not a regular file or directory" in err(ws, "read_file", path="pipe")
    assert "not a regular file or directory" in err(ws, "write_file", path="pipe", content="x")
    assert "not a regular file or directory" in err(ws, "delete", path="pipe")
    assert "not a regular file or directory" in err(ws, "move", src="pipe", dst="p2")
    assert "not a regular file or directory" in err(ws, "list_dir", path="pipe")
    assert "no matches" in ok(ws, "search", pattern="x")
    assert ws.snapshot() == {}


def test_fifo_swapped_in_after_the_check_is_refused(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkfifo(ws.root / "pipe")
    monkeypatch.setattr(tools, "_kind", lambda name, dir_fd: "file")
    assert "not a regular file" in err(ws, "read_file", path="pipe")


def test_unix_socket_is_refused(ws: Workspace) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(ws.root / "sock"))
        assert "not a regular file or directory" in err(ws, "read_file", path="sock")
        assert "not a regular file or directory" in err(ws, "write_file", path="sock", content="")
    finally:
        sock.close()


def test_oversized_read_is_refused(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", max_read_bytes=10)
    ws.seed({"small.txt": "0123456789", "big.txt": "0123456789A"})
    assert ok(ws, "read_file", path="small.txt") == "0123456789"
    message = err(ws, "read_file", path="big.txt")
    assert "11 bytes" in message
    assert "read limit is 10 bytes" in message


def test_oversized_write_is_refused(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", max_write_bytes=10)
    ok(ws, "write_file", path="ok.txt", content="0123456789")
    message = err(ws, "write_file", path="new/big.txt", content="é" * 6)  # 12 UTF-8 bytes
    assert "12 bytes" in message
    assert "write limit is 10 bytes" in message
    # too many characters is refused before encoding them (a model can send megabytes)
    message = err(ws, "write_file", path="long.txt", content="x" * 11)
    assert message.startswith("content is 11 characters; the write limit is 10 bytes")
    assert ws.snapshot() == {"ok.txt": "0123456789"}
    assert not (ws.root / "new").exists()


def test_too_many_files_is_refused(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", max_files=3)
    ok(ws, "write_file", path="a.txt", content="")
    ok(ws, "make_dir", path="d")
    # A file in two new directories needs three entries: refused before anything is created.
    assert "too many files" in err(ws, "write_file", path="x/y/z.txt", content="")
    assert not (ws.root / "x").exists()
    ok(ws, "write_file", path="d/b.txt", content="")
    message = err(ws, "write_file", path="c.txt", content="")
    assert "holds 3 files and directories and the limit is 3" in message
    assert "too many files" in err(ws, "make_dir", path="e")
    assert "too many files" in err(ws, "move", src="a.txt", dst="newdir/a.txt")
    ok(ws, "write_file", path="a.txt", content="overwriting adds nothing")
    ok(ws, "move", src="a.txt", dst="d/a.txt")  # moving adds nothing either
    ok(ws, "delete", path="d/a.txt")
    ok(ws, "write_file", path="c.txt", content="")
    assert sorted(ws.snapshot()) == ["c.txt", "d/b.txt"]


# -- snapshot, restore, seed ----------------------------------------------------------------


def test_snapshot_holds_every_regular_text_file(ws: Workspace, outside: Path) -> None:
    ws.seed({"a.txt": "A", "d/e/f.txt": "F"})
    ok(ws, "make_dir", path="empty")
    (ws.root / "bin.dat").write_bytes(b"\xff")
    os.symlink(outside / "secret.txt", ws.root / "link.txt")
    os.symlink(outside, ws.root / "linkdir")
    os.mkfifo(ws.root / "pipe")
    assert ws.snapshot() == {"a.txt": "A", "d/e/f.txt": "F"}


def test_restore_makes_the_workspace_hold_exactly_the_files(ws: Workspace, outside: Path) -> None:
    ws.seed({"keep.txt": "old", "gone.txt": "x", "dir/gone.txt": "x"})
    os.symlink(outside, ws.root / "linkdir")
    os.symlink(outside / "secret.txt", ws.root / "dir" / "link.txt")
    os.mkfifo(ws.root / "pipe")
    files = {"keep.txt": "new", "src/app.py": "print()\n"}
    ws.restore(files)
    assert ws.snapshot() == files
    assert sorted(os.listdir(ws.root)) == ["keep.txt", "src"]
    assert sorted(os.listdir(outside)) == ["secret.txt"]  # links removed, never followed
    assert (outside / "secret.txt").read_text() == "TOP SECRET"


def test_snapshot_restore_round_trip(ws: Workspace, tmp_path: Path) -> None:
    ok(ws, "write_file", path="a/b.txt", content="B")
    ok(ws, "write_file", path="c.txt", content="C ✓")
    saved = ws.snapshot()
    ok(ws, "delete", path="c.txt")
    ok(ws, "write_file", path="a/new.txt", content="N")
    ws.restore(saved)
    assert ws.snapshot() == saved
    other = Workspace(tmp_path / "other")
    other.restore(json.loads(json.dumps(saved)))  # as from a stored checkpoint
    assert other.snapshot() == saved


def test_restore_with_a_bad_path_changes_nothing(ws: Workspace) -> None:
    ws.seed({"a.txt": "A"})
    with pytest.raises(ConfigError, match="outside the workspace"):
        ws.restore({"ok.txt": "x", "../evil.txt": "x"})
    assert ws.snapshot() == {"a.txt": "A"}
    assert not (ws.root.parent / "evil.txt").exists()


@pytest.mark.parametrize("path", ["../evil.txt", "/tmp/evil.txt", "a\x00b", ".", ""])
def test_seed_is_confined(ws: Workspace, path: str) -> None:
    with pytest.raises(ConfigError, match="workspace file"):
        ws.seed({path: "x"})
    assert ws.snapshot() == {}


def test_seed_refuses_symlinks(ws: Workspace, outside: Path) -> None:
    os.symlink(outside, ws.root / "linkdir")
    with pytest.raises(ConfigError, match="symbolic link"):
        ws.seed({"linkdir/x.txt": "x"})
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_seed_ignores_limits(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", max_write_bytes=1, max_files=1)
    ws.seed({"a/b.txt": "trusted and long", "c.txt": "also"})
    assert ws.snapshot() == {"a/b.txt": "trusted and long", "c.txt": "also"}


# -- never raises -----------------------------------------------------------------------------

_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["..", "../x", "/etc/passwd", "a/../..", "link/x", "pipe", "d", "."]),
    st.integers(),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
)
_args = st.one_of(
    st.dictionaries(st.sampled_from(["path", "content", "src", "dst", "pattern", "x"]), _values),
    _values,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=st.one_of(st.sampled_from(TOOL_NAMES), st.text(max_size=8)), args=_args)
def test_execute_never_raises_and_never_leaves_the_workspace(
    tmp_path: Path, name: str, args: object
) -> None:
    ws = Workspace(tmp_path / "fuzz", max_files=50, max_write_bytes=1_000)
    outside = tmp_path / "fuzz-outside"
    if not outside.exists():
        outside.mkdir()
        (outside / "secret.txt").write_text("TOP SECRET")
        ws.seed({"d/f.txt": "hello"})
        os.symlink(outside, ws.root / "link")
        os.mkfifo(ws.root / "pipe")
    outcome = ws.run_tool(name, args)
    assert isinstance(outcome, ToolOutcome)
    assert isinstance(outcome.content, str)
    assert "TOP SECRET" not in outcome.content
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert sorted(os.listdir(tmp_path)) == ["fuzz", "fuzz-outside"]


# -- bounded search -------------------------------------------------------------------------

CATASTROPHIC = "(a+)+$"  # backtracks 2^n ways on a run of n a's that ends in something else


def _slow_line_ws(tmp_path: Path, **limits: float) -> Workspace:
    ws = Workspace(tmp_path / "ws", **limits)  # type: ignore[arg-type]  # floats for search_time_s
    ws.seed({"notes.txt": "fine\n" + "a" * 5_000 + "b\n", "other.txt": "a" * 5_000 + "b\n"})
    return ws


@pytest.mark.timeout(30)  # without the limit this search would not end in our lifetime
def test_a_catastrophic_pattern_is_a_one_line_tool_error_within_its_limit(
    tmp_path: Path,
) -> None:
    ws = _slow_line_ws(tmp_path, search_time_s=0.05)
    started = time.thread_time()  # this thread's CPU time: a busy machine does not inflate it
    message = err(ws, "search", pattern=CATASTROPHIC)
    elapsed = time.thread_time() - started
    assert message.startswith("pattern too slow: search stopped after 50 ms (at notes.txt line 2)")
    assert "simplify the pattern '(a+)+$'" in message
    assert "\n" not in message
    # 50 ms of matching (of this thread's CPU) plus reading two small files: well under 1 s
    # of this thread's CPU; an unbounded search takes forever
    assert elapsed < 1.0


def test_the_time_limit_covers_the_whole_call_not_each_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clock that moves 1 ms per reading: 300 lines and 3 files cost over 300 ms of it,
    # so a limit per line (or per file) would let the search finish; one deadline cannot.
    ws = Workspace(tmp_path / "ws", search_time_s=0.05)
    ws.seed({f"f{n}.txt": "hay\n" * 100 for n in range(3)})
    assert ok(ws, "search", pattern="needle") == "no matches for 'needle' in '.'"
    readings = iter(range(10**6))
    monkeypatch.setattr(tools, "_now", lambda: next(readings) / 1000)
    message = err(ws, "search", pattern="needle")
    assert message.startswith("pattern too slow: search stopped after 50 ms (at f0.txt line ")
    assert next(readings) < 60  # it stopped at the deadline, not after the last line


def test_running_out_of_time_between_files_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace(tmp_path / "ws", search_time_s=0.05)
    ws.seed({f"f{n}.txt": "" for n in range(100)})  # no lines: only files take time
    readings = iter(range(0, 10**6, 10))  # 10 ms per reading
    monkeypatch.setattr(tools, "_now", lambda: next(readings) / 1000)
    message = err(ws, "search", pattern="needle")
    assert message.startswith("too much to search: search stopped after 50 ms (")
    assert message.endswith("files searched, more left in '.'); search a narrower path")


def test_time_the_search_did_not_spend_does_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A busy machine pauses the process: here each file read stalls 100 ms of wall time
    # (sleeping, no CPU), twice the limit. A wall-clock limit failed this search, so a
    # simulated trial's outcome depended on the load beside it.
    ws = Workspace(tmp_path / "ws", search_time_s=0.05)
    ws.seed({"a.txt": "hit\n", "b.txt": "miss\nhit\n"})
    read = tools._read_regular

    def stalled(name: str, dir_fd: int, limit: int | None, shown: str) -> bytes:
        time.sleep(0.1)
        return read(name, dir_fd, limit, shown)

    monkeypatch.setattr(tools, "_read_regular", stalled)
    assert ok(ws, "search", pattern="hit").splitlines() == ["a.txt:1:hit", "b.txt:2:hit"]


def test_a_line_the_engine_gave_up_on_while_paused_is_matched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # regex's own timeout is wall time: a pause in the middle of a line times it out with
    # CPU left in the budget. The line is matched again, not reported as too slow.
    ws = Workspace(tmp_path / "ws", search_time_s=0.05)
    ws.seed({"a.txt": "one\nhit two\n"})
    compile_ = tools._compile
    paused = {"times": 0}

    class PausedOnce:
        def __init__(self, pattern: str) -> None:
            self.compiled = compile_(pattern)

        def search(self, line: str, timeout: float) -> object:
            if line.startswith("hit") and not paused["times"]:
                paused["times"] += 1
                raise TimeoutError("regex timed out")
            return self.compiled.search(line, timeout=timeout)

    monkeypatch.setattr(tools, "_compile", PausedOnce)
    assert ok(ws, "search", pattern="hit") == "a.txt:2:hit two"
    assert paused["times"] == 1


@pytest.mark.timeout(30)
async def test_a_catastrophic_search_does_not_stall_other_coroutines(tmp_path: Path) -> None:
    """Tools run on the event loop: a ticker beside an agent's slow searches keeps ticking."""
    ws = _slow_line_ws(tmp_path)  # the default limit
    done = asyncio.Event()
    outcomes: list[ToolOutcome] = []
    gaps: list[float] = []

    async def agent() -> None:
        for _ in range(3):  # one turn's worth of tool calls, then the next turn
            outcomes.append(ws.run_tool("search", {"pattern": CATASTROPHIC}))
            await asyncio.sleep(0)  # a yield to the loop (no time passes): a turn boundary
        done.set()

    async def ticker() -> None:
        # gaps in this thread's CPU time: what the searches cost, not how busy the machine is
        last = time.thread_time()
        while not done.is_set():
            await asyncio.sleep(0)  # a yield to the loop (no time passes): one tick
            now = time.thread_time()
            gaps.append(now - last)
            last = now

    await asyncio.gather(ticker(), agent())
    assert [o.is_error for o in outcomes] == [True, True, True]
    assert all(o.content.startswith("pattern too slow") for o in outcomes)
    assert len(gaps) >= 3
    assert max(gaps) < 0.5


@pytest.mark.parametrize(
    "pattern", ["((a{100}){100}){100}", "x{20000}", "(?:ab){5001}", "[ab]{10001}"]
)
def test_patterns_that_unroll_too_far_are_refused_before_compiling(
    ws: Workspace, pattern: str
) -> None:
    # ((a{100}){100}){100} unrolls to a million steps: compiling it takes seconds (of CPU)
    # and GBs; refusing it takes microseconds. This thread's CPU time ignores a busy machine.
    started = time.thread_time()
    message = err(ws, "search", pattern=pattern)
    assert "unroll to more than 10000 steps" in message
    assert time.thread_time() - started < 0.5


@pytest.mark.parametrize(
    ("pattern", "line"),
    [
        (r"\d{4}-\d{2}-\d{2}", "2026-11-23"),
        ("(a{100}){100}", "a" * 10_000),  # exactly at the limit
        (r"\{99999\}", "{99999}"),  # escaped braces are not a repeat
        ("[{]{3}", "{{{"),
        ("x{1,100000}", "xx"),  # only the minimum is unrolled
    ],
)
def test_counted_repeats_within_the_limit_work(ws: Workspace, pattern: str, line: str) -> None:
    ws.seed({"a.txt": line + "\n"})
    assert ok(ws, "search", pattern=pattern) == f"a.txt:1:{line[:300]}"


def test_overlong_paths_are_refused_without_splitting_them(ws: Workspace) -> None:
    message = err(ws, "read_file", path="a/" * 50_000)
    assert message == f"path is 100000 characters long; the limit is {tools.MAX_PATH_CHARS}"


# -- git ------------------------------------------------------------------------------------

GIT_WRITES = [
    ("write_file", {"path": ".git/config", "content": '[core]\n\tfsmonitor = "touch pwned"\n'}),
    ("write_file", {"path": "sub/.git/hooks/pre-commit", "content": "#!/bin/sh\n"}),
    ("write_file", {"path": ".GIT/config", "content": ""}),  # macOS: the same directory
    ("write_file", {"path": ".g\u200cit/config", "content": ""}),  # HFS+ ignores U+200C
    ("write_file", {"path": ".git./config", "content": ""}),  # Windows drops the dot
    ("write_file", {"path": "GIT~1/config", "content": ""}),  # NTFS short name
    ("write_file", {"path": "sub/.git", "content": "gitdir: ../../elsewhere\n"}),
    ("write_file", {"path": "repo/.git/config", "content": ""}),  # over a seeded one
    ("make_dir", {"path": ".git/hooks"}),
    ("make_dir", {"path": "x/.Git"}),
    ("move", {"src": "staged", "dst": ".git"}),
    ("move", {"src": "staged/config", "dst": "repo/.git/config2"}),
    ("move", {"src": "repo/.git/config", "dst": "config"}),
    ("delete", {"path": "repo/.git/config"}),
]


@pytest.mark.parametrize(("tool", "args"), GIT_WRITES, ids=lambda v: str(v)[:40])
def test_writes_into_git_are_refused(ws: Workspace, tool: str, args: dict[str, str]) -> None:
    ws.seed({"repo/.git/config": "[core]\n", "staged/config": "[core]\n\tpager = evil\n"})
    before = ws.snapshot()
    message = err(ws, tool, **args)
    assert "touches .git" in message
    assert "writing inside .git is refused in a workspace" in message
    assert "\n" not in message
    assert ws.snapshot() == before
    assert sorted(os.listdir(ws.root)) == ["repo", "staged"]


def test_git_rule_leaves_look_alike_names_and_reading_alone(ws: Workspace) -> None:
    ws.seed({"repo/.git/config": "[core]\n"})  # seeds are trusted suite data
    assert ok(ws, "read_file", path="repo/.git/config") == "[core]\n"
    assert ok(ws, "search", pattern="core") == "repo/.git/config:1:[core]"
    for name in (".gitignore", ".github/workflows/ci.yml", "git/config", ".git2/x", "x.git"):
        ok(ws, "write_file", path=name, content="fine")


def test_a_bare_repository_shape_cannot_be_completed(ws: Workspace) -> None:
    ok(ws, "write_file", path="r/HEAD", content="ref: refs/heads/main\n")
    ok(ws, "make_dir", path="r/objects")
    for tool, args in [
        ("make_dir", {"path": "r/refs"}),
        ("make_dir", {"path": "r/REFS"}),
        ("write_file", {"path": "r/refs/heads/main", "content": "0" * 40}),
        ("write_file", {"path": "r/refs", "content": ""}),
    ]:
        assert "the shape of a bare git repository" in err(ws, tool, **args)
    ok(ws, "make_dir", path="r/refz")
    assert "bare git repository" in err(ws, "move", src="r/refz", dst="r/refs")
    assert sorted(os.listdir(ws.root / "r")) == ["HEAD", "objects", "refz"]
    ok(ws, "make_dir", path="other/refs")  # two of the three elsewhere are fine


def test_fleetlab_never_runs_git() -> None:
    """No module starts a ``git`` process: a workspace's .git is the agent's to plant."""
    import ast

    import fleetlab

    package = Path(fleetlab.__file__).parent
    runners = {"run", "Popen", "call", "check_call", "check_output", "system", "popen"}
    runners |= {"create_subprocess_exec", "create_subprocess_shell", "execv", "execvp"}
    offenders = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in runners:
                continue
            words = [
                word
                for arg in ast.walk(node)
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                for word in arg.value.split()
            ]
            if "git" in words or any(w.endswith("/git") for w in words):
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert offenders == []
