"""The argparse types every command line shares (tune.search, tune.train, tune.predict, the benchmarks): whole
numbers with a least value, and numbers of videos that may be "all". argparse names the flag before the message:
`argument --batch-size: must be a whole number >= 1, got '0'`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

ALL = "all"  # a number of videos: every one


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text!r}")
        return value

    return parse


def videos(low: int) -> Callable[[str], int | str]:
    """An argparse type: a number of videos >= `low`, or "all" (kept as the word: "all" given is not "not given")."""
    number = at_least(low)

    def parse(text: str) -> int | str:
        if text == ALL:
            return ALL
        try:
            return number(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"takes a number of videos >= {low}, or all; got {text!r}") from None

    return parse
