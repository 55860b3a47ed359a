"""Legacy logging helper. Deprecated: use `logkit.get_logger(__name__)` instead."""

import sys


def log_msg(level, msg):
    print(f"[{level}] {msg}", file=sys.stderr)
