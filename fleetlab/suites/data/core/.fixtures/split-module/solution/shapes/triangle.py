"""Triangles."""


class Triangle:
    def __init__(self, base, height):
        self.base = base
        self.height = height

    def area(self):
        return self.base * self.height / 2

    def __repr__(self):
        return f"Triangle({self.base}, {self.height})"
