from stats import mean, spread


def summary(values):
    return f"avg={mean(values):.1f} spread={spread(values)}"
