"""Plane shapes and their areas."""

from shapes.circle import Circle
from shapes.rect import Rect
from shapes.total import total_area
from shapes.triangle import Triangle

__all__ = ["Circle", "Rect", "Triangle", "total_area"]
