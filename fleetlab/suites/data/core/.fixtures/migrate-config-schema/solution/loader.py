"""Reads config.json (schema version 2) into the settings the app uses."""

import json


def load(path="config.json"):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    database = raw["database"]
    return {
        "dsn": f"postgres://{database['host']}:{database['port']}/{database['name']}",
        "cache_ttl": raw["cache"]["ttl"],
        "debug": raw["debug"],
    }
