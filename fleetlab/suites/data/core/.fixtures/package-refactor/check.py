"""inventory.py became the inv package (one concern per module) and everything still works."""

import contextlib
import importlib
import io
import re
import shutil
import tempfile
from pathlib import Path

assert not Path("inventory.py").exists(), "inventory.py still exists"
for path in sorted(Path().rglob("*.py")):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import|from)\s+inventory\b", text, re.M), f"{path} imports inventory"

import inv  # noqa: E402

homes = {
    "Item": "models",
    "load_items": "storage",
    "save_items": "storage",
    "restock": "service",
    "low_stock": "service",
}
for name, module_name in homes.items():
    module = importlib.import_module(f"inv.{module_name}")
    obj = getattr(module, name, None)
    assert obj is not None, f"inv/{module_name}.py does not define {name}"
    assert obj.__module__ == f"inv.{module_name}", f"{name} is not defined in inv/{module_name}.py"
    assert getattr(inv, name, None) is obj, f"inv does not re-export {name}"

cli = importlib.import_module("inv.cli")
items = inv.load_items("data/items.csv")
assert [i.sku for i in inv.low_stock(items)] == ["B-7", "A-2", "D-9"], "low_stock order changed"

out = io.StringIO()
with contextlib.redirect_stdout(out):
    status = cli.main(["data/items.csv", "report"])
want = "B-7 Washer: 3/20\nA-2 Nut: 15/50\nD-9 Spring: 9/10\n"
assert status == 0 and out.getvalue() == want, f"inv.cli report printed {out.getvalue()!r}"

with tempfile.TemporaryDirectory() as folder:
    copy = Path(folder) / "items.csv"
    shutil.copy("data/items.csv", copy)
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main([str(copy), "restock", "B-7", "30"])
    assert status == 0, "inv.cli restock failed"
    again = {i.sku: i.qty for i in inv.load_items(copy)}
    assert again["B-7"] == 33 and again["A-1"] == 120, f"restock saved {again}"

import run  # noqa: E402

got = run.nightly("data/items.csv")
assert got == want.rstrip("\n"), f"run.nightly returned {got!r}"
readme = Path("README.md").read_text(encoding="utf-8")
assert "python -m inv.cli" in readme, "README.md does not show `python -m inv.cli`"
assert "inventory.py" not in readme, "README.md still mentions inventory.py"
