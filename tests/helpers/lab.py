"""A real ``jupyter lab`` on loopback for the browser tests, started once it listens.

A port found free can be taken by another process before the server binds it; the server
then exits saying so, and it is started again on another port (``PORT_ATTEMPTS`` in all).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

#: How long the server may take to listen before the test fails (never a wait that elapses).
BOUND_S = 90
PORT_ATTEMPTS = 5

# `python -m jupyterlab`, saying so once it listens: jupyter_server logs its URL before it
# binds the port (in its event loop's first callback) and logs nothing after, so a test
# would have to poll a port that refuses connections until then.
LISTENING = "fleetlab-test: listening"
LAUNCH_LAB = f"""
import sys
from jupyter_server.serverapp import ServerApp
from jupyterlab.labapp import main

bind = ServerApp._bind_http_server

def bind_and_say(self):
    bind(self)
    self.log.info("{LISTENING} on %s:%s", self.ip, self.port)

ServerApp._bind_http_server = bind_and_say
sys.exit(main())
"""
PORT_TAKEN = b"is already in use"  # jupyter_server's words when it cannot bind the port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_lab(
    root_dir: Path, token: str, env: Mapping[str, str], log: Path, args: Sequence[str] = ()
) -> Iterator[str]:
    """JupyterLab serving ``root_dir`` with ``token``, its output appended to ``log``; yields
    its URL once it answers, and stops it on exit."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [
                sys.executable, "-c", LAUNCH_LAB, "--ip=127.0.0.1", f"--port={port}",
                "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
                "--no-browser", "--allow-root", f"--ServerApp.root_dir={root_dir}",
                "--LabApp.expose_app_in_browser=True", *args,
            ],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        listening = f"{LISTENING} on 127.0.0.1:{port}".encode()
        ready, said, copier = _follow_log(proc, log, listening)
        try:
            if not ready.wait(BOUND_S):
                pytest.fail(f"jupyter lab did not start within {BOUND_S}s:\n{log.read_text()}")
            if listening not in said:  # its output ended: it exited, or is exiting
                proc.wait(BOUND_S)
                copier.join(BOUND_S)
                if PORT_TAKEN in said and attempt < PORT_ATTEMPTS:
                    continue  # another process took the port first
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()}")
            # it listens: one request shows the API answers
            status = f"{url}/api/status?token={token}"
            with urllib.request.urlopen(status, timeout=BOUND_S) as answer:
                assert answer.status == 200
            yield url
            return
        finally:
            _stop(proc, copier)
    raise AssertionError("unreachable: the last attempt yields or fails")


def _follow_log(
    proc: subprocess.Popen[bytes], log: Path, ready_line: bytes
) -> tuple[threading.Event, bytearray, threading.Thread]:
    """Append the server's output to ``log`` (and to the returned buffer) on a thread; the
    event is set when a line contains ``ready_line`` or the output ends (the server exited)."""
    ready = threading.Event()
    said = bytearray()
    assert proc.stdout is not None
    stdout = proc.stdout

    def copy() -> None:
        with log.open("ab") as out:
            for line in stdout:
                out.write(line)
                out.flush()
                said.extend(line)
                if ready_line in line:
                    ready.set()
        ready.set()

    copier = threading.Thread(target=copy, name="jupyter-log", daemon=True)
    copier.start()
    return ready, said, copier


def _stop(proc: subprocess.Popen[bytes], copier: threading.Thread) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    copier.join(BOUND_S)  # it reached the end of the output
    assert proc.stdout is not None
    proc.stdout.close()
