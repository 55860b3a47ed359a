from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import fleetlab


def test_all_is_honest() -> None:
    for name in fleetlab.__all__:
        assert hasattr(fleetlab, name), name
    exported = {
        n
        for n in dir(fleetlab)
        if not n.startswith("_") and not isinstance(getattr(fleetlab, n), type(fleetlab))
    }
    assert exported <= set(fleetlab.__all__), exported - set(fleetlab.__all__)


def test_every_module_imports_and_declares_all() -> None:
    for info in pkgutil.walk_packages(fleetlab.__path__, "fleetlab."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        names = getattr(module, "__all__", None)
        if names is None:
            continue
        for name in names:
            assert hasattr(module, name), f"{info.name}.__all__ names missing {name}"


def test_time_is_read_only_through_the_clock() -> None:
    package = Path(fleetlab.__file__).parent
    pattern = re.compile(r"datetime\.(now|utcnow|today)\(|time\.time\(\)|date\.today\(\)")
    offenders = [
        f"{path.relative_to(package)}:{n}"
        for path in package.rglob("*.py")
        if path.name != "clock.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
