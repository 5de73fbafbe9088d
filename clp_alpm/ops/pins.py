"""Pins as operations: lifting the ones whose fix has arrived, and unpinning by hand.

Both go through the journal like every other change (the pins file is written atomically,
and undo puts the earlier one back); the journal is imported only to lift or unpin, since the
post hook asks `fixes_offered` on every transaction while a pin waits for its fix.

Whether a fix has arrived is read from pacman's sync databases as its last `-Sy` left them and
from clp's private copy of them (`system/syncdb.py`), which `clp update` and `clp pins` refresh
first without touching pacman's own; the post hook reads pacman's alone, which the `pacman
-Syu` it runs in has just refreshed.
"""

from __future__ import annotations

import os

from clp_alpm.config import Config
from clp_alpm.errors import ClpError, UsageError
from clp_alpm.system import pins

TYPE_CHECKING = False  # no typing at run time: see clp_alpm.cli.entry
if TYPE_CHECKING:
    from collections.abc import Sequence
    from dataclasses import dataclass

    from clp_alpm.ops.session import Events, Session
    from clp_alpm.system.pacmanconf import PacmanSettings
else:  # the listings start without dataclasses (inspect, ast), see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass


@dataclass(frozen=True)
class Lift:
    """A pin whose fix a repository offers: lifted, or to lift."""

    name: str
    until: str
    offered: str  # the newest version a repository offers
    installed: str | None

    @property
    def upgrade_waits(self) -> bool:
        """The fix is not installed yet: the next `pacman -Syu` installs it."""
        return self.installed is None or not pins.until_reached(self.installed, self.until)

    def describe(self) -> str:
        return f"{self.name} (a repository offers {pins.describe_until(self.until)})"


def unpin(session: Session, names: Sequence[str]) -> None:
    """Let pacman upgrade these pinned packages again (UsageError for one not pinned)."""
    from clp_alpm.ops import steps
    from clp_alpm.ops.commit import commit
    from clp_alpm.ops.session import LOG_TAG
    from clp_alpm.ops.steps import OperationKind

    pinned = {pin.name for pin in pins.read_pins(session.config)}
    for name in names:
        if name not in pinned:
            raise UsageError(f"{name} is not pinned (see 'clp pins')")
    step = steps.unpin(names)
    commit(session, OperationKind.UNPIN, ",".join(names), [step])
    session.log.write(LOG_TAG, step.description)


def fixes_offered(
    config: Config,
    settings: PacmanSettings,
    pinned: Sequence[pins.Pin],
    private_copy: bool = True,
) -> list[Lift]:
    """The pins of `pinned` with an `until` version that a repository offers (that version or
    a newer one), read from the databases on disk: pacman's, and clp's private copy unless
    `private_copy` is False. No network, no change."""
    from clp_alpm.system.localdb import installed_versions
    from clp_alpm.system.syncdb import offered_versions, private_dbpath

    waiting = [pin for pin in pinned if pin.until]
    if not waiting:
        return []
    dbpaths = [settings.dbpath, *([private_dbpath(config)] if private_copy else [])]
    offered = offered_versions(config, settings, [pin.name for pin in waiting], dbpaths)
    reached = pins.pins_to_lift(waiting, offered)
    installed = installed_versions(config.host_dbpath, [pin.name for pin in reached])
    return [
        Lift(pin.name, pin.until or "", offered[pin.name][0], installed.get(pin.name))
        for pin in reached
    ]


def refresh_sync_copy(config: Config, settings: PacmanSettings, events: Events) -> None:
    """Refresh clp's private copy of the sync databases when clp may write its state (as
    root); a failure is a warning, and the copies on disk are read as they are."""
    from clp_alpm.system.syncdb import refresh_private_copy

    if not settings.repos or not os.access(config.host_state_dir, os.W_OK):
        return
    try:
        refresh_private_copy(config, settings)
    except (ClpError, OSError) as err:
        events.warning(
            f"could not refresh clp's copy of the sync databases ({err}); "
            "pins are checked against the databases on disk"
        )


def pins_to_lift(session: Session, refresh: bool = False, private_copy: bool = True) -> list[Lift]:
    """The pins whose fix a repository offers; with `refresh`, after refreshing clp's private
    copy of the sync databases (a download, bounded in time). Changes no pin."""
    config = session.config
    pinned = [pin for pin in pins.read_pins(config) if pin.until]
    if not pinned:
        return []
    settings = session.pacman()
    if refresh and private_copy:
        refresh_sync_copy(config, settings, session.events)
    return fixes_offered(config, settings, pinned, private_copy)


def lift_satisfied_pins(
    session: Session, refresh: bool = False, private_copy: bool = True
) -> list[Lift]:
    """Lift every pin whose `until` version a repository now offers: the fix has arrived, so
    pacman may upgrade again. Returns what was lifted, for the report."""
    lifted = pins_to_lift(session, refresh, private_copy)
    if lifted:
        from clp_alpm.ops import steps
        from clp_alpm.ops.commit import commit
        from clp_alpm.ops.session import LOG_TAG
        from clp_alpm.ops.steps import OperationKind

        names = [lift.name for lift in lifted]
        step = steps.unpin(names, ": the fix has arrived")
        commit(session, OperationKind.UNPIN, ",".join(names), [step])
        offers = ", ".join(f"{lift.name} {lift.offered}" for lift in lifted)
        session.log.write(LOG_TAG, f"{step.description} (a repository offers {offers})")
    return lifted
