"""Adding up areas."""


def total_area(shapes):
    """Sum of the areas of `shapes`, rounded to 2 decimals."""
    return round(sum(shape.area() for shape in shapes), 2)
