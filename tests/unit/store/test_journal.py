"""The journal on its own: real SQLite, handlers that write real files, real SIGKILLs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from clp_alpm.errors import OperationFailed
from clp_alpm.store.journal import FAULT_ENV, Journal, Step, StepRun
from clp_alpm.store.records import EntryStatus, OperationStatus
from clp_alpm.store.state import StateDB


class WriteFile:
    """A step that creates `path`; its undo removes it. `fail` makes `do` raise after writing."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def do(self, run: StepRun) -> None:
        path = Path(run.args["path"])
        path.write_text("x")
        self.log.append(f"do {path.name}")
        if run.args.get("fail"):
            raise OSError(5, "Input/output error", str(path))

    def undo(self, run: StepRun) -> None:
        path = Path(run.args["path"])
        path.unlink(missing_ok=True)
        self.log.append(f"undo {path.name}")


class BrokenUndo(WriteFile):
    def undo(self, run: StepRun) -> None:
        self.log.append("undo failed")
        raise OSError(13, "Permission denied", run.args["path"])


def write(path: Path, fail: bool = False, forward: bool = False, kind: str = "write") -> Step:
    return Step(kind, {"path": str(path), "fail": fail}, f"write {path.name}", forward=forward)


@pytest.fixture
def state(tmp_path: Path):
    db = StateDB(tmp_path / "state")
    yield db
    db.close()


def test_a_plan_runs_in_order_and_is_recorded_done(tmp_path, state):
    log: list[str] = []
    journal = Journal(state, {"write": WriteFile(log)})
    op_id = journal.commit("apply", "P1", [write(tmp_path / "a"), write(tmp_path / "b")])
    assert log == ["do a", "do b"]
    operation = state.operation(op_id)
    assert operation.status == OperationStatus.DONE
    assert [e.status for e in operation.entries] == [EntryStatus.DONE, EntryStatus.DONE]
    assert state.unfinished_operations() == []


def test_a_failing_step_undoes_every_started_step_in_reverse(tmp_path, state):
    log: list[str] = []
    journal = Journal(state, {"write": WriteFile(log)})
    steps = [write(tmp_path / "a"), write(tmp_path / "b"), write(tmp_path / "c", fail=True)]
    with pytest.raises(OperationFailed, match="everything was rolled back"):
        journal.commit("apply", "P1", steps)
    assert log == ["do a", "do b", "do c", "undo c", "undo b", "undo a"]
    assert not any((tmp_path / name).exists() for name in "abc")
    (operation,) = [state.operation(1)]
    assert operation.status == OperationStatus.UNDONE


def test_an_undo_that_fails_leaves_the_operation_stuck_and_names_it(tmp_path, state):
    log: list[str] = []
    journal = Journal(state, {"write": WriteFile(log), "broken": BrokenUndo(log)})
    steps = [write(tmp_path / "a", kind="broken"), write(tmp_path / "b", fail=True)]
    with pytest.raises(OperationFailed, match="rolling back was incomplete.*clp recover"):
        journal.commit("apply", "P1", steps)
    assert state.operation(1).status == OperationStatus.STUCK
    assert [op.id for op in state.unfinished_operations()] == [1]


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from clp_alpm.store.journal import Journal, Step
    from clp_alpm.store.state import StateDB

    class Touch:
        def do(self, run):
            Path(run.args["path"]).write_text("x")

        def undo(self, run):
            Path(run.args["path"]).unlink(missing_ok=True)

    state = StateDB(Path(sys.argv[1]))
    work, forward = Path(sys.argv[2]), sys.argv[3] == "forward"
    steps = [
        Step("write", {"path": str(work / "a"), "fail": False}, "write a"),
        Step("mark", {"path": str(work / "b"), "fail": False}, "write b", forward=forward),
        Step("write", {"path": str(work / "c"), "fail": False}, "write c"),
    ]
    Journal(state, {"write": Touch(), "mark": Touch()}).commit("apply", "P1", steps)
    """
)


def run_killed(tmp_path: Path, fault: str, forward: bool) -> subprocess.CompletedProcess[str]:
    args = [str(tmp_path / "state"), str(tmp_path), "forward" if forward else "back"]
    env = dict(os.environ, **{FAULT_ENV: fault})
    return subprocess.run(
        [sys.executable, "-c", KILLED_RUN, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("forward", [False, True], ids=["undo", "roll-forward"])
def test_a_process_killed_mid_plan_is_finished_from_the_journal_alone(tmp_path, forward):
    killed = run_killed(tmp_path, "mark:after", forward)
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "a").exists() and (tmp_path / "b").exists()
    state = StateDB(tmp_path / "state")
    (operation,) = state.unfinished_operations()
    assert operation.status == OperationStatus.RUNNING
    log: list[str] = []
    errors = Journal(state, {"write": WriteFile(log), "mark": WriteFile(log)}).recover(operation)
    assert errors == []
    if forward:  # past the point of no return: the rest of the plan runs
        # b acted but was killed before its 'done': it runs again (handlers are idempotent)
        assert log == ["do b", "do c"]
        assert all((tmp_path / name).exists() for name in "abc")
        assert state.operation(operation.id).status == OperationStatus.DONE
    else:
        assert log == ["undo b", "undo a"]
        assert not any((tmp_path / name).exists() for name in "abc")
        assert state.operation(operation.id).status == OperationStatus.UNDONE
    assert state.unfinished_operations() == []
    state.close()


def test_the_plan_is_stored_as_json_a_new_process_can_read(tmp_path, state):
    journal = Journal(state, {"write": WriteFile([])})
    journal.commit("apply", "P1", [write(tmp_path / "a")])
    row = state._conn.execute("SELECT plan FROM operations WHERE id = 1").fetchone()
    plan: list[dict[str, Any]] = json.loads(row[0])
    assert plan == [
        {"kind": "write", "args": {"path": str(tmp_path / "a"), "fail": False},
         "description": "write a", "forward": False}
    ]  # fmt: skip
