"""wordstats follows SPEC.md and cli.main prints the three summary lines."""

import contextlib
import io

import cli
import wordstats

cases = [
    ("words(\"Don't PANIC -- it's 42 o'clock!\")", ["don't", "panic", "it's", "o'clock"]),
    ("words(\"'quoted' rock'n'roll\")", ["quoted", "rock'n'roll"]),
    ("words('')", []),
    ("top_words('b a b c a b', 2)", [("b", 3), ("a", 2)]),
    ("top_words('z y x', 5)", [("x", 1), ("y", 1), ("z", 1)]),
    ("reading_time('word ' * 200)", 1),
    ("reading_time('word ' * 201)", 2),
    ("reading_time('word ' * 30, wpm=10)", 3),
    ("reading_time('...')", 0),
]
for call, want in cases:
    got = eval(f"wordstats.{call}")  # the calls are the literal cases above
    assert got == want, f"wordstats.{call} returned {got!r}, expected {want!r}"

out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    status = cli.main(["sample.txt"])
assert status == 0, f"cli.main(['sample.txt']) returned {status!r}"
want = "words: 42\nreading time: 1 min\ntop: the (6), and (2), a (1)\n"
assert out.getvalue() == want, f"cli.main(['sample.txt']) printed {out.getvalue()!r}"

out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    status = cli.main(["missing.txt"])
assert status == 2, f"cli.main(['missing.txt']) returned {status!r}, expected 2"
assert "error: no such file: missing.txt" in err.getvalue(), f"stderr was {err.getvalue()!r}"
