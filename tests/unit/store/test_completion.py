"""The completion index: names and numbers only, plain words only, rewritten all or nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from clp_alpm.store.completion import HEADER, INDEXED_TRANSACTIONS, render_index, write_index
from clp_alpm.store.records import (
    Origin,
    RevertRecord,
    RevertState,
    TransactionRecord,
    TransactionStatus,
)
from clp_alpm.store.state import StateDB


@pytest.fixture
def state(tmp_path: Path):
    db = StateDB(tmp_path / "state")
    yield db
    db.close()


def revert(revert_id: str) -> RevertRecord:
    moved = {"name": "n", "from": "2", "to": "1", "source": "cache"}
    return RevertRecord(id=revert_id, state=RevertState.APPLIED, created_at=1.0, updated_at=1.0,
                        packages=(moved,))  # fmt: skip


def transaction() -> TransactionRecord:
    return TransactionRecord(id=0, status=TransactionStatus.DONE, started=1.0,
                             origin=Origin.PACMAN, packages=(), paths=("/etc/shadow",))  # fmt: skip


def test_the_index_lists_reverts_and_transactions_in_order(state: StateDB) -> None:
    for revert_id in ("R10", "R2"):
        state.put_revert(revert(revert_id))
    for _ in range(3):
        state.add_transaction(transaction())
    assert render_index(state) == HEADER + (
        "revert R2 applied\nrevert R10 applied\n"
        "transaction 1 done\ntransaction 2 done\ntransaction 3 done\n"
    )


def test_the_index_holds_the_newest_transactions_only(state: StateDB) -> None:
    """The post hook rewrites it on every transaction: its size must not grow with the
    history (HistoryLimit may keep thousands)."""
    state.put_revert(revert("R1"))
    for _ in range(INDEXED_TRANSACTIONS + 5):
        state.add_transaction(transaction())
    lines = render_index(state)[len(HEADER) :].splitlines()
    assert lines[0] == "revert R1 applied"
    numbers = [int(line.split()[1]) for line in lines[1:]]
    assert numbers == list(range(6, INDEXED_TRANSACTIONS + 6))


@pytest.mark.parametrize("bad", ["R$(reboot)", "R1 x", "-R1", "R1\nR2", "R`id`", "R1;ls"])
def test_a_name_a_shell_could_read_as_more_than_a_word_is_left_out(state, bad) -> None:
    state.put_revert(revert(bad))
    state.put_revert(revert("R3"))
    assert render_index(state) == HEADER + "revert R3 applied\n"


def test_written_0644_only_when_it_changed(state: StateDB, tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    target = tmp_path / "cache/clp/completion-index"
    assert write_index(state, target) is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755
    assert write_index(state, target) is False  # same names: not rewritten
    state.add_transaction(transaction())
    assert write_index(state, target) is True
    assert target.read_text().endswith("\ntransaction 1 done\n")
    assert [p.name for p in target.parent.iterdir()] == ["completion-index"]  # no temp file


def test_a_directory_that_cannot_be_made_is_an_oserror(state: StateDB, tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file where the directory should be\n")
    with pytest.raises(OSError):
        write_index(state, tmp_path / "cache/clp/completion-index")
    assert (tmp_path / "cache").read_text() == "a file where the directory should be\n"


def test_a_root_without_var_cache_gets_no_index(state: StateDB, tmp_path: Path) -> None:
    state.add_transaction(transaction())
    assert write_index(state, tmp_path / "var/cache/clp/completion-index") is False
    assert list(tmp_path.iterdir()) == [tmp_path / "state"]
