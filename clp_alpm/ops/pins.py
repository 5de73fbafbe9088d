"""Pins as operations: lifting the ones whose fix has arrived, and unpinning by hand.

Both go through the journal like every other change (the pins file is written atomically,
and undo puts the earlier one back).
"""

from __future__ import annotations

from collections.abc import Sequence

from clp_alpm.errors import UsageError
from clp_alpm.ops import steps
from clp_alpm.ops.commit import commit
from clp_alpm.ops.session import Session
from clp_alpm.ops.steps import OperationKind
from clp_alpm.system import pins
from clp_alpm.system.syncdb import sync_versions


def unpin(session: Session, names: Sequence[str]) -> None:
    """Let pacman upgrade these pinned packages again (UsageError for one not pinned)."""
    pinned = {pin.name for pin in pins.read_pins(session.config)}
    for name in names:
        if name not in pinned:
            raise UsageError(f"{name} is not pinned (see 'clp pins')")
    commit(session, OperationKind.UNPIN, ",".join(names), [steps.unpin(names)])


def lift_satisfied_pins(session: Session) -> list[str]:
    """Lift every pin whose `until` version a repository now offers (after `pacman -Sy`):
    the fix has arrived, so pacman may upgrade again. Returns what was lifted, for the report."""
    pinned = [pin for pin in pins.read_pins(session.config) if pin.until]
    if not pinned:
        return []
    settings = session.pacman()
    offered = {pin.name: sync_versions(session.config, settings, pin.name) for pin in pinned}
    lifted = pins.pins_to_lift(pinned, offered)
    if not lifted:
        return []
    names = [pin.name for pin in lifted]
    step = steps.unpin(names, ": the fix has arrived")
    commit(session, OperationKind.UNPIN, ",".join(names), [step])
    return [f"{pin.name} (a repository offers {pin.until} or newer)" for pin in lifted]
