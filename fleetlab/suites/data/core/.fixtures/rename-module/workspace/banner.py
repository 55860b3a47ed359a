import helpers as h
from app import greet


def banner(name):
    line = "=" * 20
    return f"{line}\n{greet(name)}\n{h.whisper('welcome back')}\n{line}"
