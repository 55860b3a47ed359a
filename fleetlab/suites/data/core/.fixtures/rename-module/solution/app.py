from strutil import shout


def greet(name):
    return shout(f"hello {name}")
