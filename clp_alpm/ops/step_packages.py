"""Step handlers that change packages and pins: `pacman -U`, `pacman -R`, the IgnorePkg pins.

pacman runs with HELD_ENV set to this process: the hooks it fires then record the transaction
without waiting for the lock clp holds (waiting would deadlock).
"""

from __future__ import annotations

import os
from pathlib import Path

from clp_alpm.ops.steps import Handler, StepKind
from clp_alpm.paths import HELD_ENV
from clp_alpm.store.journal import StepRun
from clp_alpm.system import pins
from clp_alpm.system.localdb import installed_versions
from clp_alpm.system.pacman import pacman_remove, pacman_upgrade


def _held() -> dict[str, str]:
    """The hooks pacman fires must not wait for the lock this process holds."""
    return {HELD_ENV: str(os.getpid())}


class PacmanUpgradeStep(Handler):
    """One `pacman -U` of the planned files; undo installs the previous versions from the cache."""

    def do(self, run: StepRun) -> None:
        self._install([Path(f) for f in run.args["files"]])

    def undo(self, run: StepRun) -> None:
        previous = run.args["previous"]
        installed = installed_versions(self.config.host_dbpath, list(previous))
        changed = [name for name, version in previous.items() if installed.get(name) != version]
        back = [Path(run.args["previous_files"][n]) for n in changed if previous[n] is not None]
        if back:
            self._install(back)
        absent_before = [name for name in changed if previous[name] is None]
        if absent_before:  # a package this step installed that was not there before
            pacman_remove(self.session.pacman(), absent_before, env=_held())

    def _install(self, files: list[Path]) -> None:
        pacman_upgrade(self.session.pacman(), files, env=_held())


class PacmanRemoveStep(Handler):
    """`pacman -R` of packages a transaction installed; undo installs them again."""

    def do(self, run: StepRun) -> None:
        pacman_remove(self.session.pacman(), run.args["names"], env=_held())

    def undo(self, run: StepRun) -> None:
        files = run.args["previous_files"]
        installed = installed_versions(self.config.host_dbpath, list(files))
        missing = [Path(files[name]) for name in files if installed.get(name) is None]
        if missing:
            pacman_upgrade(self.session.pacman(), missing, env=_held())


class PinStep(Handler):
    def do(self, run: StepRun) -> None:
        current = pins.read_pins(self.config)
        run.save(previous=[p.__dict__ for p in current])
        wanted = [pins.Pin(**p) for p in run.args["pins"]]
        names = {p.name for p in wanted}
        pins.write_pins(self.config, [p for p in current if p.name not in names] + wanted)

    def undo(self, run: StepRun) -> None:
        if "previous" in run.data:
            pins.write_pins(self.config, [pins.Pin(**p) for p in run.data["previous"]])


class UnpinStep(PinStep):
    def do(self, run: StepRun) -> None:
        current = pins.read_pins(self.config)
        run.save(previous=[p.__dict__ for p in current])
        names = set(run.args["names"])
        pins.write_pins(self.config, [p for p in current if p.name not in names])


HANDLERS: dict[StepKind, type[Handler]] = {
    StepKind.PACMAN_UPGRADE: PacmanUpgradeStep,
    StepKind.PACMAN_REMOVE: PacmanRemoveStep,
    StepKind.PIN: PinStep,
    StepKind.UNPIN: UnpinStep,
}
