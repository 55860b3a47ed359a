"""Reads config.json into the settings the app uses."""

import json


def load(path="config.json"):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    return {
        "dsn": f"postgres://{raw['db_host']}:{raw['db_port']}/{raw['db_name']}",
        "cache_ttl": raw["cache_ttl"],
        "debug": raw["debug"],
    }
