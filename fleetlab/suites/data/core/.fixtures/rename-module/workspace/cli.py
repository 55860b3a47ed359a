import sys

import helpers


def main(argv):
    return helpers.whisper(" ".join(argv)) if argv else "nothing to say"


if __name__ == "__main__":
    print(main(sys.argv[1:]))
