"""Every page of site/ matches the reference build, ignoring whitespace between tags."""

import json
import os
import re
from pathlib import Path

REFERENCE = Path(os.environ["FLEETLAB_SUITE_DIR"]) / ".fixtures/static-site/solution/site"


def normalise(html):
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", html)).strip()


for expected in sorted(REFERENCE.rglob("*")):
    if not expected.is_file():
        continue
    relative = expected.relative_to(REFERENCE).as_posix()
    got_path = Path("site") / relative
    assert got_path.is_file(), f"site/{relative} is missing"
    got = got_path.read_text(encoding="utf-8")
    want = expected.read_text(encoding="utf-8")
    if relative.endswith(".json"):
        try:
            parsed = json.loads(got)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"site/{relative} is not valid JSON: {exc}") from None
        assert parsed == json.loads(want), f"site/{relative} differs from the expected feed"
        continue
    got_n, want_n = normalise(got), normalise(want)
    if got_n != want_n:
        at = next((i for i, (a, b) in enumerate(zip(got_n, want_n)) if a != b), min(len(got_n), len(want_n)))
        raise AssertionError(
            f"site/{relative} differs near {want_n[max(0, at - 30):at + 30]!r}: "
            f"got {got_n[max(0, at - 30):at + 30]!r}"
        )
