"""The handle and what opening it does: lock, recovery from the journal, the step registry."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clp_alpm.config import load_config
from clp_alpm.errors import LockError
from clp_alpm.ops import step_files, step_health, step_packages, step_records, step_scripts, steps
from clp_alpm.ops.commit import DOMAINS, REGISTRY
from clp_alpm.ops.session import Events
from clp_alpm.ops.startup import open_session
from clp_alpm.store.journal import FAULT_ENV
from clp_alpm.store.lock import StateLock
from clp_alpm.store.records import OperationStatus
from clp_alpm.store.state import StateDB


def test_every_step_kind_has_exactly_one_handler():
    domains = [step_files, step_scripts, step_packages, step_records, step_health]
    registered = [kind for domain in domains for kind in domain.HANDLERS]
    assert len(registered) == len(set(registered)), "a step kind registered by two domains"
    assert set(REGISTRY) == set(steps.StepKind)


def test_each_step_kind_loads_the_domain_that_handles_it():
    domains = [step_files, step_scripts, step_packages, step_records, step_health]
    for domain in domains:
        for kind, handler in domain.HANDLERS.items():
            assert DOMAINS[kind]() is domain.HANDLERS, kind
            assert REGISTRY[kind] is handler


def test_each_builder_makes_a_step_of_its_own_kind():
    built = [
        (steps.snapshot_before(["/etc/a"]), steps.StepKind.SNAPSHOT_BEFORE),
        (steps.restore_point(["/etc/a"]), steps.StepKind.RESTORE_POINT),
        (steps.unpin(["foo"], "lifted"), steps.StepKind.UNPIN),
        (steps.record_rolled_back("P1"), steps.StepKind.RECORD),
        (steps.pacman_remove(["foo"], {}), steps.StepKind.PACMAN_REMOVE),
    ]
    for step, kind in built:
        assert step.kind == kind and step.description


KILLED_APPLY = textwrap.dedent(
    """
    import sys
    from clp_alpm.config import load_config
    from clp_alpm.ops import steps
    from clp_alpm.ops.commit import commit
    from clp_alpm.ops.startup import open_session
    from clp_alpm.ops.steps import OperationKind
    with open_session(load_config(sys.argv[1])) as session:
        plan = [steps.restore_point(["/etc/app.conf"]), steps.snapshot_current(["/etc/app.conf"])]
        commit(session, OperationKind.ROLLBACK, "P1", plan)
    """
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/app.conf").write_text("original\n")
    return root


def kill_mid_operation(root: Path) -> None:
    env = dict(os.environ, **{FAULT_ENV: "snapshot-current:before"})
    done = subprocess.run(
        [sys.executable, "-c", KILLED_APPLY, str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, done.stderr


def test_opening_a_session_recovers_what_a_killed_clp_left(root):
    kill_mid_operation(root)
    (root / "etc/app.conf").write_text("half-done change\n")
    warnings: list[str] = []
    config = load_config(root)
    with open_session(config, Events(warning=warnings.append)) as session:
        # by the time the command sees the session, the operation is rolled back
        assert (root / "etc/app.conf").read_text() == "original\n"
        assert session.state.unfinished_operations() == []
        assert session.recovered and "rolled back" in session.recovered[0]
        assert session.locked
    assert any("recovering from an interrupted rollback of P1" in w for w in warnings)
    state = StateDB(config.host_state_dir, readonly=True)
    assert state.operation(1).status == OperationStatus.UNDONE
    state.close()


def test_a_read_only_session_takes_no_lock(root):
    config = load_config(root)
    with (
        StateLock(config.host_state_dir),
        open_session(config, write=False) as session,
    ):
        assert not session.locked


def test_a_writing_session_waits_for_the_lock_then_refuses(root):
    config = load_config(root)
    waited: list[str] = []
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """
            import sys, time
            from pathlib import Path
            from clp_alpm.store.lock import StateLock
            StateLock(Path(sys.argv[1])).acquire()
            print("held", flush=True)
            time.sleep(60)
            """
        ), str(config.host_state_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LockError), open_session(config, Events(waiting=waited.append)):
            pass
        assert waited and str(holder.pid) in waited[0]
    finally:
        holder.kill()
        holder.wait(timeout=10)
