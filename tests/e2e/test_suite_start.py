"""The suite runs the same however it is started: under `nohup … &` from a script (SIGHUP,
SIGINT and SIGQUIT ignored, inherited by every process it starts) the tests that stop clp
with a signal still pass, and nothing is left running."""

from __future__ import annotations

import subprocess
import sys

from tests.kits import reaper
from tests.kits.paths import REPO

SIGNAL_TESTS = [
    "tests/e2e/test_crash.py::test_a_stop_signal_mid_script_rolls_back_at_once",
    "tests/unit/system/test_scripts.py",
]


def test_the_signal_tests_pass_under_nohup_in_the_background(tmp_path):
    log = tmp_path / "pytest.log"
    selection = " ".join(SIGNAL_TESTS)
    script = (
        f"cd {REPO} && nohup {sys.executable} -m pytest -q -p no:cacheprovider "
        f"--basetemp={tmp_path / 'inner'} -k 'default or not inherited' {selection} "
        f"> {log} 2>&1 & wait $!"
    )
    before = reaper.descendants()
    result = subprocess.run(["sh", "-c", script], timeout=600, stdin=subprocess.DEVNULL)
    output = log.read_text()
    assert result.returncode == 0, output[-3000:]
    assert " passed" in output and "failed" not in output, output[-3000:]
    assert not reaper.descendants() - before  # the inner suite left nothing behind
