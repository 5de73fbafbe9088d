"""The step registry, and committing a plan through the journal.

Each domain declares its handlers (`HANDLERS` in step_files, step_scripts, step_packages,
step_records); this module merges them, so that any process — the one that planned an
operation or a later one recovering it — can run or undo every step kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from clp_alpm.ops import step_files, step_health, step_packages, step_records, step_scripts
from clp_alpm.ops.steps import Handler, OperationKind, StepKind
from clp_alpm.store.journal import Journal, Step, StepHandler

if TYPE_CHECKING:
    from clp_alpm.ops.session import Session

REGISTRY: dict[StepKind, type[Handler]] = {
    **step_files.HANDLERS,
    **step_scripts.HANDLERS,
    **step_packages.HANDLERS,
    **step_records.HANDLERS,
    **step_health.HANDLERS,
}


def journal(session: Session) -> Journal:
    """A journal whose steps run with `session`, reporting each step to its events."""
    handlers: dict[str, StepHandler] = {kind: cls(session) for kind, cls in REGISTRY.items()}

    def on_step(number: int, total: int, step: Step) -> None:
        session.events.step(number, total, step.description)

    return Journal(session.state, handlers, on_step)


def commit(session: Session, kind: OperationKind, target: str, steps: Sequence[Step]) -> int:
    """Run `steps` as one operation; on failure everything is undone (OperationFailed)."""
    return journal(session).commit(kind, target, list(steps))
