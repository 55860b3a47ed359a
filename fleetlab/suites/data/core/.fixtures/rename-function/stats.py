"""Small statistics helpers."""


def calc_avg(values):
    """Arithmetic mean of a non-empty list."""
    return sum(values) / len(values)


def spread(values):
    return max(values) - min(values)
