"""The throwaway PostgreSQL cluster of tests and benchmarks: a TCP port found free can be
taken by another process before the server binds it, and the cluster then starts on another
port instead of failing the run."""

from __future__ import annotations

import socket
import subprocess

import psycopg
import pytest

from fleetlab.store.postgres import cluster as cluster_module
from fleetlab.store.postgres.cluster import TempCluster


def test_a_port_taken_before_the_server_binds_it_gives_another_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        picks: list[int] = []
        real = cluster_module._free_port

        def first_the_taken_one(host: str) -> int:
            port = busy if not picks else real(host)
            picks.append(port)
            return port

        monkeypatch.setattr(cluster_module, "_free_port", first_the_taken_one)
        with TempCluster(listen="127.0.0.1") as cluster:
            assert picks == [busy, cluster.port]
            with psycopg.connect(cluster.tcp_url(), connect_timeout=10) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_port_asked_for_is_not_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        with pytest.raises(subprocess.CalledProcessError, match="pg_ctl"):
            TempCluster(listen="127.0.0.1", port=busy).stop()  # stopped if it ever starts
