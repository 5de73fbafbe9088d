"""The fuzzing run's tally (tests/fuzz/): how many cases each target ran, for the summary."""

from __future__ import annotations

CASES: dict[str, int] = {}


def count(target: str) -> None:
    CASES[target] = CASES.get(target, 0) + 1
