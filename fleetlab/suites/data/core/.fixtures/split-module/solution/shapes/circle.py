"""Circles."""

import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius**2

    def __repr__(self):
        return f"Circle({self.radius})"
