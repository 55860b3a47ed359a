"""Settings come from settings.py (environment first, then defaults) and .env.example lists them."""

import ast
import importlib
import os
from pathlib import Path

DEFAULTS = {
    "SMTP_HOST": "smtp.example.com",
    "SMTP_PORT": "587",
    "BUCKET": "uploads-prod",
    "API_BASE_URL": "https://api.example.com/v1",
    "API_TIMEOUT": "30",
}
LITERALS = {"smtp.example.com", 587, "uploads-prod", "https://api.example.com/v1", 30}

for name in ("mailer.py", "storage.py", "api.py"):
    tree = ast.parse(Path(name).read_text(encoding="utf-8"))
    found = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in LITERALS]
    assert not found, f"{name} still hard-codes {found[0]!r}"
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name for n in imports for a in n.names} | {
        n.module for n in imports if isinstance(n, ast.ImportFrom)
    }
    assert "settings" in names, f"{name} does not import settings"

env_example = {}
for line in Path(".env.example").read_text(encoding="utf-8").splitlines():
    if line.strip() and not line.lstrip().startswith("#"):
        key, _, value = line.partition("=")
        env_example[key.strip()] = value.strip()
assert env_example == DEFAULTS, f".env.example lists {env_example}, expected {DEFAULTS}"

for key in DEFAULTS:
    os.environ.pop(key, None)
import api  # noqa: E402
import mailer  # noqa: E402
import settings  # noqa: E402
import storage  # noqa: E402

assert mailer.server() == ("smtp.example.com", 587), f"default mailer.server() is {mailer.server()}"
assert storage.object_url("a.txt") == "s3://uploads-prod/a.txt", "default storage.object_url changed"
want = ("https://api.example.com/v1/users", 30)
assert api.request_plan("/users") == want, f"default api.request_plan is {api.request_plan('/users')}"

os.environ.update(
    SMTP_HOST="mail.test",
    SMTP_PORT="2525",
    BUCKET="test-bucket",
    API_BASE_URL="http://localhost:9000",
    API_TIMEOUT="5",
)
for module in (settings, mailer, storage, api):
    importlib.reload(module)
assert mailer.server() == ("mail.test", 2525), f"with SMTP_* set, mailer.server() is {mailer.server()}"
assert storage.object_url("a.txt") == "s3://test-bucket/a.txt", "BUCKET from the environment is ignored"
got = api.request_plan("users")
assert got == ("http://localhost:9000/users", 5), f"with API_* set, api.request_plan is {got}"
