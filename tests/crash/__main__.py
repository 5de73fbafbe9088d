"""The whole crash matrix from the command line (see tests/README.md):

    .venv/bin/python -m tests.crash [--ci] [SCENARIO ...]

runs every kill point of every scenario (or of those named), prints one line per point and a
count, and exits 1 when a point left the system between its states. `--ci` runs the subset
the test suite runs (tests/crash/test_matrix.py). Needs root, pacman, gpg and busybox, as the
end-to-end tests do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.crash.matrix import Matrix
from tests.crash.scenarios import BY_NAME, SCENARIOS
from tests.kits import gpgkit, reaper


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.crash", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--ci", action="store_true", help="only the test suite's subset")
    parser.add_argument("scenarios", nargs="*", choices=[[], *BY_NAME], metavar="SCENARIO",
                        help=f"one of: {', '.join(BY_NAME)} (default: all)")  # fmt: skip
    options = parser.parse_args(argv)
    reaper.reset_stop_signals()
    reaper.become_subreaper()
    chosen = [BY_NAME[name] for name in options.scenarios] or list(SCENARIOS)
    total = failed = 0
    with tempfile.TemporaryDirectory(prefix="clp-crash-") as top:
        keyring = gpgkit.make_keyring(Path(top) / "gpg")
        try:
            for scenario in chosen:
                work = Path(top) / scenario.name
                work.mkdir()
                with Matrix(scenario, keyring, work) as prepared:
                    points = prepared.ci_points() if options.ci else prepared.points()
                    for point in points:
                        outcome = prepared.run(point)
                        total += 1
                        verdict = f"ok ({outcome.ended})" if outcome.ok else "FAIL"
                        print(f"{scenario.name}: {point.label}: {verdict}", flush=True)
                        for problem in outcome.problems:
                            failed += 1
                            print(f"    {problem}", flush=True)
        finally:
            keyring.cleanup()
    print(f"{total} kill points, {failed} problem(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
