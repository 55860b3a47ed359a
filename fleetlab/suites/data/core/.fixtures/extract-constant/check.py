"""app.py names 86400 once, as SECONDS_PER_DAY, and behaves as before."""

import ast
from pathlib import Path

import app

tree = ast.parse(Path("app.py").read_text(encoding="utf-8"))
literals = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == 86400]
assert len(literals) == 1, f"86400 appears {len(literals)} times in app.py, expected once"
assigned = [
    n
    for n in tree.body
    if isinstance(n, ast.Assign)
    and any(isinstance(t, ast.Name) and t.id == "SECONDS_PER_DAY" for t in n.targets)
]
assert assigned, "app.py has no module-level assignment to SECONDS_PER_DAY"
assert app.SECONDS_PER_DAY == 86400, f"SECONDS_PER_DAY is {app.SECONDS_PER_DAY!r}"
assert app.session_ttl(2) == 172800, "session_ttl(2) changed"
assert app.is_expired(86401) is True, "is_expired(86401) changed"
assert app.is_expired(86400) is False, "is_expired(86400) changed"
assert app.hours_left(3600) == 23, "hours_left(3600) changed"
assert app.hours_left(90000) == 0, "hours_left(90000) changed"
