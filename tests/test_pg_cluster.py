"""The throwaway PostgreSQL cluster of tests and benchmarks: a TCP port found free can be
taken by another process before the server binds it, and the cluster then starts on another
port instead of failing the run."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from fleetlab.store.postgres import cluster as cluster_module
from fleetlab.store.postgres.cluster import TempCluster
from tests.helpers.ports import taken_first, taken_port


def test_a_port_taken_before_the_server_binds_it_gives_another_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with taken_port() as busy:
        pick, picks = taken_first(busy, cluster_module._free_port)
        monkeypatch.setattr(cluster_module, "_free_port", pick)
        with TempCluster(listen="127.0.0.1") as cluster:
            assert picks == [busy, cluster.port]
            with psycopg.connect(cluster.tcp_url(), connect_timeout=10) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_port_asked_for_is_not_replaced() -> None:
    with (
        taken_port() as busy,
        pytest.raises(subprocess.CalledProcessError, match="pg_ctl"),
    ):
        TempCluster(listen="127.0.0.1", port=busy).stop()  # stopped if it ever starts
