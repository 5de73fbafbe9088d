"""Is pacman running? `refuse_if_pacman_runs` against a real db.lck in a throwaway DBPath."""

from __future__ import annotations

from pathlib import Path

import pytest

from clp_alpm.cli.exits import EXIT_LOCKED, exit_code_for
from clp_alpm.errors import LockError
from clp_alpm.paths import HELD_ENV
from clp_alpm.system.pacman import PACMAN_LOCK, refuse_if_pacman_runs


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


def test_a_lock_file_is_refused_in_one_line_that_names_it(dbpath: Path) -> None:
    (dbpath / PACMAN_LOCK).write_bytes(b"")
    with pytest.raises(LockError) as refused:
        refuse_if_pacman_runs(dbpath)
    message = str(refused.value)
    assert message == (
        f"pacman is running ({dbpath}/db.lck exists); wait for it to finish, "
        "or remove the file if no pacman is running"
    )
    assert "\n" not in message
    assert exit_code_for(refused.value) == EXIT_LOCKED


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
