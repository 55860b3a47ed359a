"""A throwaway PostgreSQL cluster from Debian's binaries, for tests and benchmarks.

``initdb`` into a temporary folder, ``fsync`` on, listening on a unix socket in that folder
(and, when asked, on a TCP address). PostgreSQL refuses to run as root, so as root the
cluster runs as the ``postgres`` user (via ``runuser``). Nothing outside the folder changes;
``stop()`` removes it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

__all__ = ["PASSWORD_ROLE", "ClusterUnavailable", "TempCluster", "find_bindir"]

#: The one role that must log in with a password (``TempCluster.add_password_role``).
PASSWORD_ROLE = "fleetlab_pw"
_PORT_ATTEMPTS = 5  # server starts on a new free TCP port when another took the last


class ClusterUnavailable(RuntimeError):
    """PostgreSQL's server binaries are missing, or cannot run as this user."""


def find_bindir() -> Path:
    """The folder holding ``initdb``/``pg_ctl`` (Debian: /usr/lib/postgresql/<v>/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise ClusterUnavailable(
        "PostgreSQL's server binaries (initdb) are missing: install Debian's postgresql"
        " package (make test does)"
    )


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class TempCluster:
    """A running throwaway cluster. ``url(db)`` connects over the socket; ``tcp_url(db)``
    over TCP when started with ``listen``."""

    def __init__(self, *, listen: str | None = None, port: int | None = None) -> None:
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="fleetlab-pg-"))
        self.data = self.root / "data"
        self.listen = listen
        self._pick_port = listen is not None and port is None
        self.port = port or (_free_port(listen) if listen else 5432)
        self._user = self._run_as()
        self._dbs = 0
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise ClusterUnavailable(
                "running as root, and there is no postgres user to run the server as: install"
                " Debian's postgresql package"
            ) from None
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        return "postgres"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self._user, "--", *args] if self._user else list(args)

    def _start(self) -> None:
        subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
            ),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        options = [
            f"-k {self.root}",
            f"-c listen_addresses='{self.listen or ''}'",
            "-c fsync=on",
            "-c max_connections=200",
            "-c shared_buffers=128MB",
        ]
        # Everyone is trusted but ``PASSWORD_ROLE``, which must give its password (so tests
        # can check what a wrong one does); first match wins, so its lines go first.
        hba = self.data / "pg_hba.conf"
        rules = [f"local all {PASSWORD_ROLE} scram-sha-256"]
        if self.listen:
            rules += [
                f"host all {PASSWORD_ROLE} 0.0.0.0/0 scram-sha-256",
                "host all all 0.0.0.0/0 trust",
            ]
        hba.write_text("\n".join(rules) + "\n" + hba.read_text())
        log = self.root / "log"
        for attempt in range(_PORT_ATTEMPTS):
            seen = log.stat().st_size if log.exists() else 0
            started = subprocess.run(
                self._cmd(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(log),
                    "-w", "-t", "60", "-o", " ".join([*options, f"-p {self.port}"]), "start",
                ),
                capture_output=True, text=True,
            )  # fmt: skip
            if started.returncode == 0:
                return
            # A port found free can be taken before the server binds it: pick another.
            lost_port = False
            if log.exists():
                with log.open("rb") as said:
                    said.seek(seen)
                    lost_port = b"could not bind" in said.read()
            if not (self._pick_port and lost_port) or attempt == _PORT_ATTEMPTS - 1:
                started.check_returncode()
            self.port = _free_port(self.listen or "")

    def url(self, db: str = "postgres") -> str:
        host = urllib.parse.quote(str(self.root), safe="")
        return f"postgresql://postgres@{host}:{self.port}/{db}"

    def tcp_url(self, db: str = "postgres", host: str | None = None) -> str:
        return f"postgresql://postgres@{host or self.listen}:{self.port}/{db}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its (socket) URL."""
        self._dbs += 1
        name = name or f"fleet_{os.getpid()}_{self._dbs}"
        subprocess.run(
            [str(self.bindir / "createdb"), "-h", str(self.root), "-p", str(self.port),
             "-U", "postgres", name],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return self.url(name)

    def _psql(self, script: str, *variables: str) -> str:
        args = [
            str(self.bindir / "psql"),
            "-h",
            str(self.root),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
        ]
        for variable in variables:
            args += ["-v", variable]
        done = subprocess.run(args, input=script, check=True, capture_output=True, text=True)
        return done.stdout.strip()  # fmt: skip

    def add_password_role(self, password: str) -> None:
        """Make ``PASSWORD_ROLE`` (a superuser) log in with ``password`` (created or changed)."""
        exists = self._psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{PASSWORD_ROLE}';\n")
        verb = "ALTER" if exists == "1" else "CREATE"
        self._psql(
            f"{verb} ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD :'pw';\n", f"pw={password}"
        )

    def password_url(self, password: str) -> str:
        """A new database, reached as ``PASSWORD_ROLE`` with ``password`` in the URL."""
        self.add_password_role(password)
        name = self.create_database().rpartition("/")[2]
        host = urllib.parse.quote(str(self.root), safe="")
        secret = urllib.parse.quote(password, safe="")
        return f"postgresql://{PASSWORD_ROLE}:{secret}@{host}:{self.port}/{name}"

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(
                    self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                              "-w", "stop"),
                    check=False, capture_output=True, timeout=60,
                )  # fmt: skip
        for _ in range(3):
            shutil.rmtree(self.root, ignore_errors=True)
            if not self.root.exists():
                break
            time.sleep(0.1)

    def __enter__(self) -> TempCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
