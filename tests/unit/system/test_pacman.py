"""Is pacman running? `refuse_if_pacman_runs` against a real db.lck in a throwaway DBPath; and
waiting for the pacman clp started, woken when it ends."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clp_alpm.cli.exits import EXIT_LOCKED, exit_code_for
from clp_alpm.errors import LockError
from clp_alpm.paths import HELD_ENV
from clp_alpm.system.pacman import (
    PACMAN_LOCK,
    _wait_for_exit,
    clear_stale_lock,
    lock_holders,
    refuse_if_pacman_runs,
    wait_for_pacman,
)


@pytest.fixture
def dbpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(HELD_ENV, raising=False)  # as a clp started by a user
    path = tmp_path / "var/lib/pacman"
    (path / "local").mkdir(parents=True)
    return path


def test_no_lock_file_passes(dbpath: Path) -> None:
    refuse_if_pacman_runs(dbpath)


def test_no_database_at_all_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HELD_ENV, raising=False)
    refuse_if_pacman_runs(tmp_path / "nowhere")


def test_a_lock_file_no_pacman_holds_is_refused_as_stale_in_one_line(dbpath: Path) -> None:
    (dbpath / PACMAN_LOCK).write_bytes(b"")
    with pytest.raises(LockError) as refused:
        refuse_if_pacman_runs(dbpath)
    message = str(refused.value)
    assert message == (
        f"{dbpath}/db.lck exists but no pacman is running (no process holds it): a killed "
        "pacman left it; remove it"
    )
    assert "\n" not in message
    assert exit_code_for(refused.value) == EXIT_LOCKED


@pytest.fixture
def a_running_pacman(tmp_path: Path, dbpath: Path) -> Iterator[int]:
    """A pacman at work, as libalpm is: db.lck created and held open until it is done; its
    process is named pacman (a copy of sleep)."""
    fake = tmp_path / "pacman"
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", fake)
    lock = dbpath / PACMAN_LOCK
    with lock.open("w") as held:
        process = subprocess.Popen([str(fake), "60"], stdout=held)
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_lock_file_while_a_pacman_runs_says_to_wait(dbpath: Path, a_running_pacman: int) -> None:
    lock = dbpath / PACMAN_LOCK
    assert lock_holders(lock) == [a_running_pacman]
    with pytest.raises(LockError, match=r"pacman is running \(.*db.lck exists\); wait for it"):
        refuse_if_pacman_runs(dbpath)
    assert not clear_stale_lock(dbpath)  # in use: never removed
    assert lock.exists()
    assert not wait_for_pacman(a_running_pacman, timeout=0.3)


def test_a_stale_lock_is_cleared_and_a_pacman_that_ended_is_waited_for(dbpath: Path) -> None:
    (dbpath / PACMAN_LOCK).write_bytes(b"")
    assert clear_stale_lock(dbpath)
    assert not (dbpath / PACMAN_LOCK).exists()
    assert not clear_stale_lock(dbpath)  # nothing left to clear
    assert wait_for_pacman(os.getpid(), timeout=0.3)  # not a pacman: nothing to wait for


def test_inside_a_pacman_that_clp_runs_its_lock_is_not_refused(
    dbpath: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HELD_ENV in the environment: the lock is that pacman's, taken on clp's behalf."""
    (dbpath / PACMAN_LOCK).write_bytes(b"")
    monkeypatch.setenv(HELD_ENV, "4194000")
    refuse_if_pacman_runs(dbpath)


def test_the_variable_alone_without_a_lock_file_passes(
    dbpath: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HELD_ENV, "1")
    refuse_if_pacman_runs(dbpath)


class CountingPopen(subprocess.Popen[bytes]):
    """A process whose every look at "has it ended?" is counted."""

    looks = 0

    def poll(self) -> int | None:
        self.looks += 1
        return super().poll()


def test_the_wait_for_pacman_wakes_when_it_ends_without_polling() -> None:
    """Popen.wait(timeout) looks every few ms, then every 50 ms: up to 50 ms idle after each
    pacman. The wait clp uses sleeps on the process's pidfd until it ends, looking twice."""
    process = CountingPopen(["sh", "-c", "sleep 0.4; exit 3"])
    started = time.monotonic()
    _wait_for_exit(process, timeout=30)
    assert time.monotonic() - started >= 0.4
    assert process.returncode == 3  # reaped, with its status
    assert process.looks <= 3


def test_the_wait_for_pacman_times_out_and_leaves_it_running() -> None:
    process = subprocess.Popen(["sleep", "30"])
    try:
        started = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            _wait_for_exit(process, timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 10
        assert process.poll() is None  # still running: the caller decides (one SIGINT)
    finally:
        process.kill()
        process.wait()


def test_without_a_pidfd_the_wait_is_popens(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    process = subprocess.Popen(["sh", "-c", "exit 4"])
    _wait_for_exit(process, timeout=30)
    assert process.returncode == 4
    slow = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            _wait_for_exit(slow, timeout=0.2)
    finally:
        slow.kill()
        slow.wait()
