"""shapes is a package with one module per shape, re-exporting them, and main still runs."""

import importlib
from pathlib import Path

assert not Path("shapes.py").exists(), "shapes.py still exists"
assert Path("shapes/__init__.py").is_file(), "shapes/__init__.py is missing"

import shapes  # noqa: E402

homes = {"Circle": "circle", "Rect": "rect", "Triangle": "triangle", "total_area": "total"}
for name, module_name in homes.items():
    module = importlib.import_module(f"shapes.{module_name}")
    assert hasattr(module, name), f"shapes/{module_name}.py does not define {name}"
    obj = getattr(module, name)
    assert obj.__module__ == f"shapes.{module_name}", f"{name} is not defined in shapes/{module_name}.py"
    assert getattr(shapes, name, None) is obj, f"shapes does not re-export {name}"

assert round(shapes.Circle(2).area(), 4) == 12.5664, "Circle.area changed"
assert shapes.Rect(2, 3).area() == 6, "Rect.area changed"
assert shapes.Triangle(4, 5).area() == 10, "Triangle.area changed"
assert repr(shapes.Rect(2, 3)) == "Rect(2, 3)", "Rect.__repr__ changed"
assert shapes.total_area([shapes.Circle(1), shapes.Rect(1, 1)]) == 4.14, "total_area changed"

import main  # noqa: E402

got = main.run()
assert got == "3 shapes, total area 19.14", f"main.run() returned {got!r}"
