"""The step registry, and committing a plan through the journal.

Each domain declares its handlers (`HANDLERS` in step_files, step_scripts, step_packages,
step_records); this module merges them, so that any process — the one that planned an
operation or a later one recovering it — can run or undo every step kind. A domain's module
loads when a step of its kinds runs: a package revert never loads the archive code that
extracting a patch needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from clp_alpm.ops.steps import Handler, OperationKind, StepKind
from clp_alpm.store.journal import Journal, Step, StepHandler

if TYPE_CHECKING:
    from clp_alpm.ops.session import Session

Handlers = Mapping[StepKind, type[Handler]]


def _files() -> Handlers:
    from clp_alpm.ops import step_files

    return step_files.HANDLERS


def _scripts() -> Handlers:
    from clp_alpm.ops import step_scripts

    return step_scripts.HANDLERS


def _packages() -> Handlers:
    from clp_alpm.ops import step_packages

    return step_packages.HANDLERS


def _records() -> Handlers:
    from clp_alpm.ops import step_records

    return step_records.HANDLERS


def _health() -> Handlers:
    from clp_alpm.ops import step_health

    return step_health.HANDLERS


# step kind -> the domain that handles it (tests/unit/ops/test_session.py checks this against
# each domain's HANDLERS)
DOMAINS: dict[StepKind, Callable[[], Handlers]] = {
    StepKind.EXTRACT: _files,
    StepKind.SNAPSHOT_BEFORE: _files,
    StepKind.SNAPSHOT_AFTER: _files,
    StepKind.SNAPSHOT_CURRENT: _files,
    StepKind.RESTORE_POINT: _files,
    StepKind.RESTORE_FILES: _files,
    StepKind.RETIRE_PATCH_DIR: _files,
    StepKind.INSTALL_SCRIPT: _scripts,
    StepKind.REMOVE_SCRIPT: _scripts,
    StepKind.HEALTH_CHECK: _scripts,
    StepKind.PACMAN_UPGRADE: _packages,
    StepKind.PACMAN_REMOVE: _packages,
    StepKind.CACHE_PACKAGE: _packages,
    StepKind.REBUILD_PACKAGE: _packages,
    StepKind.PIN: _packages,
    StepKind.UNPIN: _packages,
    StepKind.RECORD: _records,
    StepKind.RECORD_REVERT: _records,
    StepKind.RECORD_TRANSACTION: _records,
    StepKind.MOTD: _health,
}


class _Registry(Mapping[StepKind, type[Handler]]):
    """Every step kind and its handler class, the class loaded when it is looked up."""

    def __getitem__(self, kind: StepKind) -> type[Handler]:
        return DOMAINS[kind]()[kind]

    def __iter__(self) -> Iterator[StepKind]:
        return iter(DOMAINS)

    def __len__(self) -> int:
        return len(DOMAINS)


REGISTRY: Handlers = _Registry()


class _SessionHandlers(Mapping[str, StepHandler]):
    """One handler per step kind, made with the session when a step of that kind runs."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._made: dict[str, StepHandler] = {}

    def __getitem__(self, kind: str) -> StepHandler:
        if kind not in DOMAINS:
            raise KeyError(kind)
        if kind not in self._made:
            self._made[kind] = REGISTRY[StepKind(kind)](self._session)
        return self._made[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(DOMAINS)

    def __len__(self) -> int:
        return len(DOMAINS)


def journal(session: Session) -> Journal:
    """A journal whose steps run with `session`, reporting each step to its events."""
    handlers = _SessionHandlers(session)

    def on_step(number: int, total: int, step: Step) -> None:
        session.events.step(number, total, step.description)

    return Journal(session.state, handlers, on_step)


def commit(session: Session, kind: OperationKind, target: str, steps: Sequence[Step]) -> int:
    """Run `steps` as one operation; on failure everything is undone (OperationFailed)."""
    return journal(session).commit(kind, target, list(steps))
