"""The state lock: one holder, a bounded wait that names the holder, freed when the holder dies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clp_alpm.errors import ClpError, LockError
from clp_alpm.store.lock import LOCK_NAME, StateLock, lock_holder

HOLD = """
import sys, time
from pathlib import Path
from clp_alpm.store.lock import StateLock
lock = StateLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path: Path):
    """Another process that holds the lock on tmp_path/state until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_second_holder_waits_then_fails_naming_the_first(tmp_path, holder):
    messages: list[str] = []
    lock = StateLock(tmp_path / "state", wait=0.3, on_wait=messages.append)
    started = time.monotonic()
    with pytest.raises(LockError, match=f"another clp process \\(pid {holder.pid}\\) is running"):
        lock.acquire()
    assert 0.3 <= time.monotonic() - started < 5
    assert messages == [f"waiting for the lock held by pid {holder.pid} ({lock.path})"]
    assert lock_holder(tmp_path / "state") == holder.pid


def test_the_kernel_frees_the_lock_of_a_killed_holder(tmp_path, holder):
    holder.kill()
    holder.wait(timeout=10)
    assert lock_holder(tmp_path / "state") is None
    with StateLock(tmp_path / "state", wait=1.0) as lock:
        assert lock_holder(tmp_path / "state") == os.getpid()
        assert Path(lock.path).read_text() == f"{os.getpid()}\n"
    assert lock_holder(tmp_path / "state") is None


def test_a_symlink_in_place_of_the_lock_is_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("keep me\n")
    (state / LOCK_NAME).symlink_to(target)
    with pytest.raises(ClpError, match="cannot open the lock"):
        StateLock(state, wait=0.1).acquire()
    assert target.read_text() == "keep me\n"
