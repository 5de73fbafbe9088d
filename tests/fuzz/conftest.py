"""The fuzzing profiles, and the count of cases run.

`ci` (the default) keeps the whole directory under a minute; `long` runs each target for
thousands of cases: `.venv/bin/python -m pytest tests/fuzz --hypothesis-profile=long` (or
CLP_FUZZ=long). The number of cases that ran is printed at the end of the run.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.kits.fuzzkit import CASES

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def pytest_configure(config: pytest.Config) -> None:
    """`--hypothesis-profile` first, then CLP_FUZZ, else `ci`."""
    chosen = config.getoption("hypothesis_profile", None) or os.environ.get("CLP_FUZZ", "ci")
    settings.load_profile(chosen)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CASES:
        parts = ", ".join(f"{name} {number}" for name, number in sorted(CASES.items()))
        terminalreporter.write_line(f"fuzz: {sum(CASES.values())} cases ran ({parts})")
