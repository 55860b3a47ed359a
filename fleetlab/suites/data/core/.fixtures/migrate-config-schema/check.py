"""loader.load reads version-2 configs and gives the app the same settings as before."""

import json
import tempfile
from pathlib import Path

import loader

got = loader.load("config.json")
want = {"dsn": "postgres://localhost:5432/shop", "cache_ttl": 300, "debug": False}
assert got == want, f"loader.load('config.json') returned {got!r}, expected {want!r}"

other = {
    "version": 2,
    "database": {"host": "db.internal", "port": 6543, "name": "orders"},
    "cache": {"ttl": 60},
    "debug": True,
}
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "config.json"
    path.write_text(json.dumps(other), encoding="utf-8")
    got = loader.load(str(path))
want = {"dsn": "postgres://db.internal:6543/orders", "cache_ttl": 60, "debug": True}
assert got == want, f"loader.load(<another v2 config>) returned {got!r}, expected {want!r}"
