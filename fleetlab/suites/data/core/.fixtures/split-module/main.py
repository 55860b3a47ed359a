from shapes import Circle, Rect, Triangle, total_area


def run():
    shapes = [Circle(1), Rect(2, 3), Triangle(4, 5)]
    return f"{len(shapes)} shapes, total area {total_area(shapes)}"


if __name__ == "__main__":
    print(run())
