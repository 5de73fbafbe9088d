"""The crash matrix's CI-sized subset: for every operation of the table (scenarios.py), a kill
before its first journal step, one in the middle and one after its last, and one in each of
its phases (a patch script, the pacman run); each followed by `clp recover` and the check
that the system is as it was before or as the operation leaves it (matrix.py).

`CLP_CRASH_MATRIX=full` runs every kill point instead, as `python -m tests.crash` does.
"""

from __future__ import annotations

import os

import pytest

from tests.crash.matrix import Matrix
from tests.crash.scenarios import SCENARIOS


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
def test_every_kill_point_recovers_to_before_or_after(tmp_path, keyring, scenario):
    full = os.environ.get("CLP_CRASH_MATRIX") == "full"
    with Matrix(scenario, keyring, tmp_path) as prepared:
        points = prepared.points() if full else prepared.ci_points()
        assert points, "no kill point found"
        failures = []
        for point in points:
            outcome = prepared.run(point)
            failures += [f"{point.label}: {problem}" for problem in outcome.problems]
    assert failures == []
