"""fleetlab works outside the checkout: the built wheel, installed into a fresh venv, runs the
newcomer's commands from an empty folder.

The wheel is built by pip from this checkout with this venv's hatchling (the build backend, a dev
dependency), so no build environment is fetched. The fresh venv gets only the wheel; its
dependencies come from this venv through a ``.pth`` line (installing them again would take
minutes), added after the wheel so pip never sees another fleetlab. Jupyter's data files
(nbconvert templates) are linked the same way, except its kernel specs: this venv's names this
venv's python, where a fresh install's kernel runs the fresh venv's python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from fleetlab.store import open_store

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

TINY_EXPERIMENT = """\
name = "tiny"
kind = "agents"
model = "sim:instant"
suites = ["core"]
trials = 1
seed = 1
concurrency = 2

[tasks]
include = ["core:rename-readme", "core:fix-config-typo"]

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "threshold4"
policy = "threshold:4"
prompt = "default"
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    home: Path  # an empty folder: the commands' current directory

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("FLEETLAB_", "PYTHON", "JUPYTER")) and k != "VIRTUAL_ENV"
        }
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env["XDG_DATA_HOME"] = str(self.home.parent / "data")  # the default db's folder here
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``fleetlab ARGS`` from the empty folder; fails the test, with its output, unless it
        exits 0 with no traceback."""
        done = subprocess.run(
            [str(self.venv / "bin" / "fleetlab"), *args],
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        out = f"$ fleetlab {' '.join(args)}\n{done.stdout}\n{done.stderr}"
        assert done.returncode == 0, out
        assert "Traceback" not in done.stderr, out
        assert "fleetlab.errors." not in done.stdout + done.stderr, out
        return done

    def python_says(self, code: str) -> str:
        done = subprocess.run(
            [str(self.python), "-c", code],
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()


def _build_wheel(out: Path) -> Path:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--quiet", "-w", str(out)]
    subprocess.run([*command, str(ROOT)], check=True, timeout=300, capture_output=True)
    (wheel,) = out.glob("fleetlab-*.whl")
    return wheel


def _fresh_venv(venv: Path, wheel: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_fleetlab_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    shared = Path(sys.prefix) / "share" / "jupyter"
    (venv / "share" / "jupyter").mkdir(parents=True)
    for entry in shared.iterdir():
        if entry.name != "kernels":
            (venv / "share" / "jupyter" / entry.name).symlink_to(entry)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(base / "dist")
    _fresh_venv(base / "venv", wheel)
    (base / "home").mkdir()
    return Installed(wheel=wheel, venv=base / "venv", home=base / "home")


def _tracked(folder: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", folder], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def test_the_wheel_holds_the_package_and_the_data_files_once(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    # every file of the package, suites and their hidden fixtures included
    assert {n for n in _tracked("fleetlab") if "__pycache__" not in n} <= names
    # the repository's data files, under fleetlab/_data/ (the lookup's second place)
    expected = {
        f"fleetlab/_data/prompts/{Path(n).name}" for n in _tracked("experiments/prompts")
    } | {
        "fleetlab/_data/notebooks/weekly_digest.ipynb",
        "fleetlab/_data/experiments/decomposition_ab.toml",
        "fleetlab/_data/experiments/scoring_calibration.toml",
    }
    assert "fleetlab/_data/prompts/default.toml" in expected
    assert expected <= names
    # nothing else: no copy of the notebooks' databases, outputs or checkpoints
    assert {n for n in names if n.startswith("fleetlab/_data/")} == expected
    for name in expected:
        source = {
            "prompts": ROOT / "experiments" / "prompts",
            "notebooks": ROOT / "notebooks",
            "experiments": ROOT / "experiments",
        }[name.split("/")[2]] / Path(name).name
        assert zipfile.ZipFile(installed.wheel).read(name) == source.read_bytes(), name


def test_the_fresh_venv_runs_the_wheel_not_the_checkout(installed: Installed) -> None:
    where = Path(installed.python_says("import fleetlab; print(fleetlab.__file__)"))
    assert installed.venv in where.parents
    variant = installed.python_says(
        "from fleetlab.prompts import load_variant; print(load_variant('default').path)"
    )
    assert installed.venv in Path(variant).parents
    # the digest's kernel runs the fresh venv's python, as after a real install
    argv = json.loads(
        installed.python_says(
            "import json; from jupyter_client.kernelspec import KernelSpecManager; "
            "print(json.dumps(KernelSpecManager().get_kernel_spec('python3').argv))"
        )
    )
    assert argv[0] == "python" or installed.venv in Path(argv[0]).parents, argv


def test_a_newcomers_commands_run_from_an_empty_folder(installed: Installed) -> None:
    home = installed.home
    submitted = json.loads(installed.run("submit", "--task", "core:rename-readme", "--json").stdout)
    (goal,) = submitted
    installed.run("fleet", "run", "--until-idle", "--quiet", "--policy", "threshold:4")

    # outside a checkout the default database is the user's ($XDG_DATA_HOME/fleetlab/fleet.db)
    assert not (home / "fleet.db").exists()
    with open_store(home.parent / "data" / "fleetlab" / "fleet.db") as store:
        task = store.get_task(goal["task_id"])
        scored = [
            e.attrs
            for e in store.events(task_id=task.id, kind="model.call")
            if "prompt_variant" in e.attrs
        ]
    assert task.status == "completed", task.error
    assert [s["prompt_variant"] for s in scored] == ["default"]

    year, week, _ = task.created_at.isocalendar()
    iso_week = f"{year}-W{week:02d}"
    installed.run("digest", "--week", iso_week, timeout=300)
    report = home / "reports" / iso_week
    assert (report / "digest.md").stat().st_size > 0
    assert "<html" in (report / "index.html").read_text(encoding="utf-8").lower()

    (home / "tiny.toml").write_text(TINY_EXPERIMENT, encoding="utf-8")
    installed.run("ab", "run", "tiny.toml", "--quiet", timeout=300)
    results = pl.read_parquet(home / "reports" / "experiments" / "tiny" / "results.parquet")
    assert results.height == 2 * 2  # two variants x two tasks x one trial
    installed.run("ab", "report", "tiny", timeout=300)
    assert (home / "reports" / "experiments" / "tiny" / "report.html").stat().st_size > 0
    # nothing of the checkout was needed: the folder holds only what the commands wrote
    assert not (home / "experiments").exists()
    assert not (home / "notebooks").exists()
