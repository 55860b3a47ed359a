"""A TCP port another process holds, for the tests of what a server does when the free port
it picked is taken before it binds it."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port that is bound and listening until the block ends."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def taken_first(busy: int, real: Callable[..., int]) -> tuple[Callable[..., int], list[int]]:
    """A stand-in for a free-port picker that gives ``busy`` first, then what ``real`` gives;
    and the list of the ports it gave."""
    picks: list[int] = []

    def pick(*args: Any) -> int:
        picks.append(busy if not picks else real(*args))
        return picks[-1]

    return pick, picks
