"""Plane shapes and their areas."""

import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius**2

    def __repr__(self):
        return f"Circle({self.radius})"


class Rect:
    def __init__(self, width, height):
        self.width = width
        self.height = height

    def area(self):
        return self.width * self.height

    def __repr__(self):
        return f"Rect({self.width}, {self.height})"


class Triangle:
    def __init__(self, base, height):
        self.base = base
        self.height = height

    def area(self):
        return self.base * self.height / 2

    def __repr__(self):
        return f"Triangle({self.base}, {self.height})"


def total_area(shapes):
    """Sum of the areas of `shapes`, rounded to 2 decimals."""
    return round(sum(shape.area() for shape in shapes), 2)
