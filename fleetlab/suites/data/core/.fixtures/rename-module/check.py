"""helpers.py is now strutil.py, nothing imports helpers, and the callers still work."""

import re
from pathlib import Path

assert not Path("helpers.py").exists(), "helpers.py still exists"
for path in sorted(Path().glob("*.py")):
    assert not re.search(r"\bhelpers\b", path.read_text(encoding="utf-8")), f"{path} mentions helpers"

import banner  # noqa: E402
import cli  # noqa: E402
import strutil  # noqa: E402

assert strutil.shout("hi") == "HI!", "strutil.shout changed"
assert cli.main(["Quiet", "Please"]) == "quiet please...", "cli.main changed"
want = "=" * 20 + "\nHELLO ADA!\nwelcome back...\n" + "=" * 20
got = banner.banner("Ada")
assert got == want, f"banner.banner('Ada') returned {got!r}"
