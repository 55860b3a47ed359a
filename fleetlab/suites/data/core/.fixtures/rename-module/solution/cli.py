import sys

import strutil


def main(argv):
    return strutil.whisper(" ".join(argv)) if argv else "nothing to say"


if __name__ == "__main__":
    print(main(sys.argv[1:]))
