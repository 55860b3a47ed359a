"""The browser tests' JupyterLab (tests/helpers/lab.py) starts again on another port when
another process took the one it was given before it could bind it."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import lab as lab_module
from tests.helpers.ports import taken_first, taken_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_port_taken_before_the_server_binds_it_gives_another_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with taken_port() as busy:
        pick, picks = taken_first(busy, lab_module.free_port)
        monkeypatch.setattr(lab_module, "free_port", pick)
        env = os.environ | {"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
        log = tmp_path / "lab.log"
        with lab_module.running_lab(tmp_path, "t0ken", env, log) as url:
            assert url == f"http://127.0.0.1:{picks[-1]}"
            assert picks[0] == busy
            with urllib.request.urlopen(f"{url}/api/status?token=t0ken", timeout=30) as answer:
                assert answer.status == 200
        assert f"The port {busy} is already in use" in log.read_text()
