"""Plan/commit executor: every step writes its intent, acts, then writes done.

A step that fails undoes the started steps before it, in reverse. A process killed mid-commit
leaves an operation in state 'running'; `recover()` undoes it the same way in the next run.
Steps are named kinds with JSON arguments, so a new process can undo them from the journal alone.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ClpError, OperationFailed
from .state import JournalEntry, Operation, StateDB

# Test hook: "KIND:before", "KIND:after", "KIND:undo" SIGKILLs the process at that point.
FAULT_ENV = "CLP_FAULT_KILL"


@dataclass(frozen=True)
class Step:
    """One planned action. `kind` names its handler; `args` must be JSON-serialisable."""

    kind: str
    args: dict[str, Any]
    description: str


@dataclass
class StepRun:
    """What a handler sees while it runs or undoes one step."""

    args: dict[str, Any]
    data: dict[str, Any]
    earlier: dict[str, dict[str, Any]]  # data of the operation's earlier steps, by kind
    _save: Callable[[dict[str, Any]], None] = field(repr=False, default=lambda data: None)

    def save(self, **values: Any) -> None:
        """Record values in the journal before acting on them (e.g. a pid, a temp path)."""
        self.data.update(values)
        self._save(self.data)


class StepHandler(Protocol):
    def do(self, run: StepRun) -> None: ...

    def undo(self, run: StepRun) -> None: ...


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
        op_id = self.state.begin_operation(kind, target, os.getpid())
        earlier: dict[str, dict[str, Any]] = {}
        for seq, step in enumerate(steps):
            if self.on_step is not None:
                self.on_step(seq + 1, len(steps), step)
            self.state.add_entry(op_id, seq, step.kind, step.args)
            run = self._step_run(op_id, seq, step.args, {}, earlier)
            _maybe_die(step.kind, "before")
            try:
                self.handlers[step.kind].do(run)
            except BaseException as err:
                # Ctrl-C, SIGTERM and bugs undo too; only what the user can act on is rewritten.
                reason = _describe(err)
                self.state.update_entry(op_id, seq, status="failed")
                undo_errors = self._undo(self.state.operation(op_id))
                self._finish_undone(op_id, reason, undo_errors)
                if isinstance(err, (ClpError, OSError, KeyboardInterrupt)):
                    raise OperationFailed(_failure_message(step, reason, undo_errors)) from err
                raise
            _maybe_die(step.kind, "after")
            self.state.update_entry(op_id, seq, status="done")
            earlier[step.kind] = run.data
        self.state.finish_operation(op_id, "done")
        return op_id

    def recover(self, operation: Operation) -> list[str]:
        """Undo an operation a killed process left running. Returns undo errors (empty: clean)."""
        errors = self._undo(operation)
        self._finish_undone(operation.id, "interrupted", errors)
        return errors

    def _undo(self, operation: Operation) -> list[str]:
        self.state.finish_operation(operation.id, "undoing")
        earlier = {e.kind: e.data for e in operation.entries}
        errors: list[str] = []
        for entry in reversed(operation.entries):
            if entry.status in ("undone", "undo-failed"):
                continue
            errors.extend(self._undo_entry(entry, earlier))
        return errors

    def _undo_entry(self, entry: JournalEntry, earlier: dict[str, dict[str, Any]]) -> list[str]:
        run = self._step_run(entry.op_id, entry.seq, entry.args, dict(entry.data), earlier)
        _maybe_die(entry.kind, "undo")
        try:
            self.handlers[entry.kind].undo(run)
        except Exception as err:  # one failing undo must not stop the others
            self.state.update_entry(entry.op_id, entry.seq, status="undo-failed")
            return [f"undoing '{entry.kind}': {_describe(err)}"]
        self.state.update_entry(entry.op_id, entry.seq, status="undone")
        return []

    def _finish_undone(self, op_id: int, reason: str, undo_errors: list[str]) -> None:
        status = "undo-failed" if undo_errors else "undone"
        self.state.finish_operation(op_id, status, "; ".join([reason, *undo_errors]))

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


def _failure_message(step: Step, reason: str, undo_errors: list[str]) -> str:
    if undo_errors:
        return f"{step.description} failed: {reason}; rolling back was incomplete: " + "; ".join(
            undo_errors
        )
    return f"{step.description} failed: {reason}; everything was rolled back"


def _maybe_die(kind: str, when: str) -> None:
    if os.environ.get(FAULT_ENV) == f"{kind}:{when}":
        os.kill(os.getpid(), signal.SIGKILL)
