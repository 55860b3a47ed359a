"""python cli.py FILE: word count, reading time and top words of a text file."""

import sys
from pathlib import Path

import wordstats


def main(argv):
    if len(argv) != 1:
        print("usage: python cli.py FILE", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"error: no such file: {argv[0]}", file=sys.stderr)
        return 2
    text = path.read_text(encoding="utf-8")
    top = ", ".join(f"{word} ({count})" for word, count in wordstats.top_words(text, 3))
    print(f"words: {len(wordstats.words(text))}")
    print(f"reading time: {wordstats.reading_time(text)} min")
    print(f"top: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
