"""Word statistics for plain text."""

import math
import re
from collections import Counter

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def words(text):
    """The lower-cased words of `text`, in order."""
    return _WORD.findall(text.lower())


def top_words(text, n):
    """The `n` most frequent words as (word, count), most frequent first, ties by word."""
    counts = Counter(words(text))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def reading_time(text, wpm=200):
    """Whole minutes to read `text` at `wpm` words per minute, rounded up."""
    return math.ceil(len(words(text)) / wpm)
