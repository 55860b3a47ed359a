"""Data-file lookup (``fleetlab.resources``): the user's copy, the wheel's, then the checkout's.

Layouts are built in temporary folders: an installed wheel (``site-packages/fleetlab/_data/``,
no ``pyproject.toml`` beside the package) and a checkout (``pyproject.toml`` beside it, the
repository's ``experiments/`` and ``notebooks/``). The package's root is pointed at them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlab import prompts, resources
from fleetlab.errors import NotFoundError

ROOT = Path(__file__).resolve().parents[1]

VARIANT = """\
name = "{name}"
description = "{description}"
text = '''Score this task: {{task}}'''
"""


def _variant(folder: Path, name: str, description: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(VARIANT.format(name=name, description=description), encoding="utf-8")
    return path


def _wheel(base: Path) -> Path:
    """An installed package: ``base/site-packages/fleetlab`` with its ``_data``."""
    package = base / "site-packages" / "fleetlab"
    _variant(package / "_data" / "prompts", "default", "shipped in the wheel")
    (package / "_data" / "notebooks").mkdir(parents=True)
    (package / "_data" / "notebooks" / "weekly_digest.ipynb").write_text("{}", encoding="utf-8")
    return package


def _checkout(base: Path, *, with_data: bool = False) -> Path:
    """A repository: ``base/repo`` with pyproject.toml, the package, experiments/, notebooks/."""
    repo = base / "repo"
    (repo / "fleetlab").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\nname = 'fleetlab'\n", encoding="utf-8")
    _variant(repo / "experiments" / "prompts", "default", "the checkout's")
    (repo / "notebooks").mkdir()
    (repo / "notebooks" / "weekly_digest.ipynb").write_text("{}", encoding="utf-8")
    if with_data:
        _variant(repo / "fleetlab" / "_data" / "prompts", "default", "built into the checkout")
    return repo / "fleetlab"


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("FLEETLAB_PROMPTS", raising=False)
    return cwd


def _package_at(monkeypatch: pytest.MonkeyPatch, package: Path) -> None:
    monkeypatch.setattr(resources, "_package_root", lambda: package)


def test_this_checkout_is_found_from_any_folder(empty_cwd: Path) -> None:
    assert resources.find("notebooks", "weekly_digest.ipynb") == (
        ROOT / "notebooks" / "weekly_digest.ipynb"
    )
    assert resources.folders("prompts") == [ROOT / "experiments" / "prompts"]
    shipped = {p.stem for p in (ROOT / "experiments" / "prompts").glob("*.toml")}
    assert shipped >= {"default", "strict"}
    assert set(prompts.list_variants()) == shipped
    assert prompts.load_variant("default").path == ROOT / "experiments" / "prompts" / "default.toml"


def test_an_installed_wheel_uses_its_package_data(
    tmp_path: Path, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = _wheel(tmp_path)
    _package_at(monkeypatch, package)
    assert resources.find("notebooks", "weekly_digest.ipynb") == (
        package / "_data" / "notebooks" / "weekly_digest.ipynb"
    )
    # site-packages is no checkout: nothing beside the package is searched
    assert resources.folders("prompts") == [package / "_data" / "prompts"]
    assert prompts.load_variant("default").description == "shipped in the wheel"


def test_an_editable_install_uses_the_checkout(
    tmp_path: Path, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = _checkout(tmp_path)
    _package_at(monkeypatch, package)
    assert resources.find("notebooks", "weekly_digest.ipynb") == (
        tmp_path / "repo" / "notebooks" / "weekly_digest.ipynb"
    )
    assert prompts.load_variant("default").description == "the checkout's"


def test_package_data_comes_before_the_checkout(
    tmp_path: Path, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = _checkout(tmp_path, with_data=True)
    _package_at(monkeypatch, package)
    assert resources.folders("prompts") == [
        package / "_data" / "prompts",
        tmp_path / "repo" / "experiments" / "prompts",
    ]
    assert prompts.load_variant("default").description == "built into the checkout"


def test_the_users_copies_override_the_shipped_ones(
    tmp_path: Path, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package_at(monkeypatch, _wheel(tmp_path))
    _variant(empty_cwd / "experiments" / "prompts", "default", "edited here")
    _variant(empty_cwd / "experiments" / "prompts", "mine", "a new one")
    (empty_cwd / "notebooks").mkdir()
    (empty_cwd / "notebooks" / "weekly_digest.ipynb").write_text("{}", encoding="utf-8")
    assert prompts.load_variant("default").description == "edited here"
    assert set(prompts.list_variants()) == {"default", "mine"}
    assert resources.find("notebooks", "weekly_digest.ipynb") == (
        empty_cwd / "notebooks" / "weekly_digest.ipynb"
    )
    # $FLEETLAB_PROMPTS comes first of all, each of its folders in order
    first, second = tmp_path / "env1", tmp_path / "env2"
    _variant(second, "default", "from the second env folder")
    _variant(first, "other", "only in the first")
    monkeypatch.setenv("FLEETLAB_PROMPTS", f"{first}:{second}")
    assert prompts.load_variant("default").description == "from the second env folder"
    assert resources.folders("prompts")[:3] == [
        first,
        second,
        empty_cwd / "experiments" / "prompts",
    ]


def test_a_folder_named_twice_is_searched_once(
    tmp_path: Path, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package_at(monkeypatch, _wheel(tmp_path))
    _variant(empty_cwd / "experiments" / "prompts", "default", "edited here")
    monkeypatch.setenv("FLEETLAB_PROMPTS", "experiments/prompts")
    assert len(resources.folders("prompts")) == 2


def test_a_missing_file_names_every_place_searched(
    tmp_path: Path, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = _wheel(tmp_path)
    _package_at(monkeypatch, package)
    with pytest.raises(NotFoundError) as caught:
        resources.find("notebooks", "nope.ipynb")
    message = str(caught.value)
    assert "\n" not in message
    assert "nope.ipynb" in message
    assert str(empty_cwd / "notebooks") in message
    assert str(package / "_data" / "notebooks") in message
    assert "./notebooks/" in message


def test_a_variant_missing_everywhere_lists_none(
    tmp_path: Path, empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site-packages" / "fleetlab"
    package.mkdir(parents=True)
    _package_at(monkeypatch, package)
    with pytest.raises(NotFoundError, match=r"known variants are none \(add experiments/prompts"):
        prompts.load_variant("default")


@pytest.mark.parametrize("name", ["", "../weekly_digest.ipynb", "sub/weekly_digest.ipynb"])
def test_only_bare_file_names_are_looked_up(empty_cwd: Path, name: str) -> None:
    with pytest.raises(NotFoundError, match="expected a file name without folders"):
        resources.find("notebooks", name)


def test_an_unknown_kind_says_which_there_are(empty_cwd: Path) -> None:
    with pytest.raises(NotFoundError, match="use one of prompts, notebooks, experiments"):
        resources.find("charts", "x.json")


def test_an_experiment_by_name_is_found_from_any_folder(empty_cwd: Path) -> None:
    """``ab run decomposition_ab`` from an empty folder runs the shipped file (here: the
    checkout's, since the package is installed in editable mode); a wrong name lists the names
    there are."""
    from fleetlab.experiments._run import resolve_experiment

    exp = resolve_experiment("decomposition_ab")
    assert exp.path is not None
    assert exp.path.resolve() == ROOT / "experiments" / "decomposition_ab.toml"
    with pytest.raises(NotFoundError) as caught:
        resolve_experiment("decompositon_ab")
    shipped = sorted(p.stem for p in (ROOT / "experiments").glob("*.toml"))
    assert f"one of {', '.join(shipped)}" in str(caught.value)
