"""Plan/commit executor: every step writes its intent, acts, then writes done.

A step that fails undoes the started steps before it, in reverse. A process killed mid-commit
leaves an operation in state 'running'; `recover()` finishes it in the next run: it undoes the
started steps the same way, unless the operation had passed a step marked `forward` (after it,
the way back is forward: the remaining planned steps are run). Steps are named kinds with JSON
arguments and the whole plan is journaled, so a new process can do either from the journal
alone. An operation whose undo or roll-forward failed is 'stuck': every recovery retries it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from clp_alpm import stops
from clp_alpm.errors import ClpError, Interrupted, OperationFailed
from clp_alpm.store.records import EntryStatus, JournalEntry, Operation, OperationStatus
from clp_alpm.store.state import StateDB

TYPE_CHECKING = False  # no dataclasses (inspect, ast) at run time: see clp_alpm/plaindata.py
if TYPE_CHECKING:
    from dataclasses import dataclass, field
else:
    from clp_alpm.plaindata import dataclass, field

# For tests only (the crash tests, tests/crash/): SIGKILL this process at one point of its
# journal. "KIND:before", "KIND:after", "KIND:undo": at the first step of that kind;
# "@N:before", "@N:after": at the N-th step this process starts (counted over all its
# operations, 1 first); "@N:undo": at the N-th step it undoes.
FAULT_ENV = "CLP_FAULT_KILL"
_fault_counts = {"step": 0, "undo": 0}


@dataclass(frozen=True)
class Step:
    """One planned action. `kind` names its handler; `args` must be JSON-serialisable.

    `forward`: once this step has started, an interrupted operation is finished, not undone.
    """

    kind: str
    args: dict[str, Any]
    description: str
    forward: bool = False

    def to_dict(self) -> dict[str, Any]:
        """As the journal keeps it (`Step(**d)` makes it again)."""
        return {"kind": self.kind, "args": self.args, "description": self.description,
                "forward": self.forward}  # fmt: skip


@dataclass
class StepRun:
    """What a handler sees while it runs or undoes one step."""

    args: dict[str, Any]
    data: dict[str, Any]
    earlier: dict[str, dict[str, Any]]  # data of the operation's earlier steps, by kind
    _save: Callable[[dict[str, Any]], None] = field(repr=False, default=lambda data: None)

    def save(self, **values: Any) -> None:
        """Record values in the journal before acting on them (e.g. a marker, a temp path)."""
        self.data.update(values)
        self._save(self.data)


class StepHandler(Protocol):
    def do(self, run: StepRun) -> None: ...

    def undo(self, run: StepRun) -> None: ...


class _StepFailed(Exception):
    def __init__(self, step: Step, error: BaseException) -> None:
        super().__init__(_describe(error))
        self.step = step
        self.error = error


class Journal:
    def __init__(
        self,
        state: StateDB,
        handlers: Mapping[str, StepHandler],
        on_step: Callable[[int, int, Step], None] | None = None,
    ) -> None:
        self.state = state
        self.handlers = handlers
        self.on_step = on_step

    def commit(self, kind: str, target: str, steps: list[Step]) -> int:
        """Run `steps` in order; on any failure undo what started and raise OperationFailed."""
        plan = [step.to_dict() for step in steps]
        op_id = self.state.begin_operation(kind, target, os.getpid(), plan)
        try:
            self._run_steps(self.state.operation(op_id), steps)
        except _StepFailed as failure:
            # Ctrl-C, SIGTERM and bugs undo too; only what the user can act on is rewritten.
            with stops.deferred() as held:  # a second Ctrl-C must not cut the undo short
                undo_errors = self._undo(self.state.operation(op_id))
                self._finish(op_id, str(failure), undo_errors)
            stopped = isinstance(failure.error, KeyboardInterrupt) or held.received
            if stopped or isinstance(failure.error, (ClpError, OSError)):
                message = _failure_message(target, str(failure), undo_errors)
                error = Interrupted if stopped and not undo_errors else OperationFailed
                raise error(message) from failure.error
            raise failure.error from None
        self.state.finish_operation(op_id, OperationStatus.DONE)
        return op_id

    def recover(self, operation: Operation) -> list[str]:
        """Finish an operation a killed process left (or a stuck one): roll it forward if it
        passed a `forward` step, else undo it. Returns the errors left (empty: clean)."""
        steps = [Step(**step) for step in operation.plan]
        if self._passed_forward_step(operation, steps):
            try:
                self._run_steps(operation, steps)
            except _StepFailed as failure:
                errors = [f"finishing '{failure.step.kind}': {failure}"]
                self._finish(operation.id, "interrupted", errors)
                return errors
            self.state.finish_operation(
                operation.id, OperationStatus.DONE, "interrupted; finished by recovery"
            )
            return []
        errors = self._undo(operation)
        self._finish(operation.id, "interrupted", errors)
        return errors

    @staticmethod
    def _passed_forward_step(operation: Operation, steps: list[Step]) -> bool:
        started = {e.seq for e in operation.entries if e.status != EntryStatus.UNDONE}
        return any(step.forward and seq in started for seq, step in enumerate(steps))

    def _run_steps(self, operation: Operation, steps: list[Step]) -> None:
        """Run every step not yet done, in order (all of them for a new operation)."""
        entries = {entry.seq: entry for entry in operation.entries}
        earlier = {e.kind: e.data for e in operation.entries if e.status == EntryStatus.DONE}
        for seq, step in enumerate(steps):
            entry = entries.get(seq)
            if entry is not None and entry.status == EntryStatus.DONE:
                continue
            if self.on_step is not None:
                self.on_step(seq + 1, len(steps), step)
            if entry is None:
                self.state.add_entry(operation.id, seq, step.kind, step.args)
            run = self._step_run(operation.id, seq, step.args, dict(entry.data) if entry else {},
                                 earlier)  # fmt: skip
            _maybe_die(step.kind, "before")
            try:
                self.handlers[step.kind].do(run)
            except BaseException as err:
                self.state.update_entry(operation.id, seq, status=EntryStatus.FAILED)
                raise _StepFailed(step, err) from err
            _maybe_die(step.kind, "after")
            self.state.update_entry(operation.id, seq, status=EntryStatus.DONE)
            earlier[step.kind] = run.data

    def _undo(self, operation: Operation) -> list[str]:
        self.state.finish_operation(operation.id, OperationStatus.UNDOING)
        earlier = {e.kind: e.data for e in operation.entries}
        errors: list[str] = []
        for entry in reversed(operation.entries):
            if entry.status == EntryStatus.UNDONE:  # an undo that failed before is tried again
                continue
            if errors and getattr(self.handlers[entry.kind], "undo_last", False):
                continue  # left for the retry, to run after the undos that failed
            errors.extend(self._undo_entry(entry, earlier))
        return errors

    def _undo_entry(self, entry: JournalEntry, earlier: dict[str, dict[str, Any]]) -> list[str]:
        run = self._step_run(entry.op_id, entry.seq, entry.args, dict(entry.data), earlier)
        _maybe_die(entry.kind, "undo")
        try:
            self.handlers[entry.kind].undo(run)
        except Exception as err:  # one failing undo must not stop the others
            self.state.update_entry(entry.op_id, entry.seq, status=EntryStatus.UNDO_FAILED)
            return [f"undoing '{entry.kind}': {_describe(err)}"]
        self.state.update_entry(entry.op_id, entry.seq, status=EntryStatus.UNDONE)
        return []

    def _finish(self, op_id: int, reason: str, errors: list[str]) -> None:
        status = OperationStatus.STUCK if errors else OperationStatus.UNDONE
        self.state.finish_operation(op_id, status, "; ".join([reason, *errors]))

    def _step_run(
        self,
        op_id: int,
        seq: int,
        args: dict[str, Any],
        data: dict[str, Any],
        earlier: dict[str, dict[str, Any]],
    ) -> StepRun:
        def save(values: dict[str, Any]) -> None:
            self.state.update_entry(op_id, seq, data=values)

        return StepRun(args=args, data=data, earlier=earlier, _save=save)


def _describe(err: BaseException) -> str:
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}"
    return str(err)


def _failure_message(target: str, reason: str, undo_errors: list[str]) -> str:
    if undo_errors:
        return (
            f"{target}: {reason}; rolling back was incomplete: {'; '.join(undo_errors)}. "
            "Fix the cause, then run 'clp recover'"
        )
    return f"{target}: {reason}; everything was rolled back"


def _maybe_die(kind: str, when: str) -> None:
    fault = os.environ.get(FAULT_ENV)
    if not fault:
        return
    counter = "undo" if when == "undo" else "step"
    if when != "after":  # "after" is the point after the step "before" counted
        _fault_counts[counter] += 1
    if fault in (f"{kind}:{when}", f"@{_fault_counts[counter]}:{when}"):
        os.kill(os.getpid(), signal.SIGKILL)
