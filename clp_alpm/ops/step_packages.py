"""Step handlers that change packages and pins: `pacman -U`, `pacman -R`, the IgnorePkg pins.

pacman runs with HELD_ENV set to this process: the hooks it fires then record the transaction
without waiting for the lock clp holds (waiting would deadlock).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from clp_alpm.atomicfile import fsync_directory
from clp_alpm.errors import LockError, UsageError
from clp_alpm.ops.steps import Handler, StepKind
from clp_alpm.paths import HELD_ENV
from clp_alpm.store.journal import StepRun
from clp_alpm.system import pins
from clp_alpm.system.localdb import installed_versions
from clp_alpm.system.pacman import (
    PACMAN_LOCK,
    clear_stale_lock,
    is_pacman,
    pacman_remove,
    pacman_upgrade,
    wait_for_pacman,
)
from clp_alpm.system.pkgsource import sha256_of


def _held() -> dict[str, str]:
    """The hooks pacman fires must not wait for the lock this process holds."""
    return {HELD_ENV: str(os.getpid())}


class _PacmanStep(Handler):
    """A step that runs pacman: the pid of each pacman it starts is journaled, so that a
    recovery (its clp was killed, its pacman lives on) first waits for that pacman to finish,
    and then takes the lock a killed pacman left for what it is: stale."""

    def _started(self, run: StepRun) -> Callable[[int], None]:
        return lambda pid: run.save(pacman_pid=pid)

    def _remove(self, run: StepRun, names: list[str]) -> None:
        self._after_earlier_pacman(run)
        settings = self.session.pacman()
        pacman_remove(settings, names, env=_held(), on_start=self._started(run))

    def _after_earlier_pacman(self, run: StepRun) -> None:
        pid = run.data.get("pacman_pid")
        if pid is None:
            return
        events = self.session.events
        if is_pacman(pid):
            events.warning(f"waiting for pacman (pid {pid}), started by the interrupted clp")
            if not wait_for_pacman(pid):
                raise LockError(f"pacman (pid {pid}) is still running; run 'clp recover' later")
        dbpath = self.session.pacman().dbpath
        if clear_stale_lock(dbpath):
            events.warning(
                f"removed {dbpath / PACMAN_LOCK}: the pacman clp had started (pid {pid}) is "
                "gone and no other pacman runs"
            )


class PacmanUpgradeStep(_PacmanStep):
    """One `pacman -U` of the planned files; undo installs the previous versions from the cache."""

    def do(self, run: StepRun) -> None:
        self._install(run, [Path(f) for f in run.args["files"]])

    def undo(self, run: StepRun) -> None:
        previous = run.args["previous"]
        installed = installed_versions(self.config.host_dbpath, list(previous))
        changed = [name for name, version in previous.items() if installed.get(name) != version]
        files = run.args["previous_files"]
        lost = [f"{n} {previous[n]}" for n in changed if previous[n] is not None and n not in files]
        if lost:
            raise UsageError(
                f"no package file of {', '.join(lost)} to install again (the revert went on "
                "without a rollback copy)"
            )
        back = [Path(files[n]) for n in changed if previous[n] is not None]
        if back:
            self._install(run, back)
        absent_before = [name for name in changed if previous[name] is None]
        if absent_before:  # a package this step installed that was not there before
            self._remove(run, absent_before)

    def _install(self, run: StepRun, files: list[Path]) -> None:
        self._after_earlier_pacman(run)
        options = run.args.get("pacman_options", [])  # absent in journals of older versions
        settings = self.session.pacman()
        pacman_upgrade(settings, files, env=_held(), options=options, on_start=self._started(run))


class PacmanRemoveStep(_PacmanStep):
    """`pacman -R` of packages a transaction installed; undo installs them again."""

    def do(self, run: StepRun) -> None:
        self._remove(run, run.args["names"])

    def undo(self, run: StepRun) -> None:
        files = run.args["previous_files"]
        self._after_earlier_pacman(run)
        installed = installed_versions(self.config.host_dbpath, list(files))
        missing = [Path(files[name]) for name in files if installed.get(name) is None]
        if missing:
            settings = self.session.pacman()
            pacman_upgrade(settings, missing, env=_held(), on_start=self._started(run))


class CachePackageStep(Handler):
    """A checked package file (and its .sig) copied into pacman's cache; undo removes what it
    added. A file already there with the same content is left as it is, and kept on undo."""

    def do(self, run: StepRun) -> None:
        source, dest = Path(run.args["source"]), Path(run.args["dest"])
        pairs = [(source, dest)]
        if run.args["signature"]:
            pairs.append((Path(f"{source}.sig"), Path(f"{dest}.sig")))
        if sha256_of(source) != run.args["sha256"]:
            raise UsageError(f"{source}: changed since its signature was checked")
        dest.parent.mkdir(parents=True, exist_ok=True)
        created: list[str] = []
        for src, dst in pairs:
            if os.path.lexists(dst):
                if _same_content(src, dst):
                    continue
                raise UsageError(f"{dst} already exists with other content: move it away first")
            created.append(str(dst))
            run.save(created=created)
            _write_new(dst, functools.partial(_copy_into, src))

    def undo(self, run: StepRun) -> None:
        _remove_created(run)


class RebuildPackageStep(Handler):
    """A package file made from the installed files of a package; undo removes it."""

    def do(self, run: StepRun) -> None:
        from clp_alpm.system import repackage  # (and tarfile) for this step only

        dest = Path(run.args["dest"])
        installed = repackage.installed_package(
            self.config.root,
            self.config.host_dbpath,
            run.args["name"],
            run.args["version"],
        )
        if os.path.lexists(dest):
            raise UsageError(f"{dest} already exists: move it away first")
        dest.parent.mkdir(parents=True, exist_ok=True)
        run.save(created=[str(dest)])
        _write_new(dest, lambda out: repackage.write_package(self.config.root, installed, out))

    def undo(self, run: StepRun) -> None:
        _remove_created(run)


def _part(path: Path) -> Path:
    return path.parent / f".{path.name}.clp-part"


def _write_new(dest: Path, write: Callable[[BinaryIO], None]) -> None:
    """`dest` written whole or not at all: a part file beside it (a name the undo knows),
    fsynced, renamed, the directory fsynced."""
    part = _part(dest)
    with open(part, "wb") as out:
        write(out)
        out.flush()
        os.fchmod(out.fileno(), 0o644)
        os.fsync(out.fileno())
    os.replace(part, dest)
    fsync_directory(dest.parent)


def _remove_created(run: StepRun) -> None:
    for name in run.data.get("created", []):
        for path in (Path(name), _part(Path(name))):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _copy_into(source: Path, out: BinaryIO) -> None:
    import shutil  # (and bz2, lzma) for a downloaded package only

    with open(source, "rb") as data:
        shutil.copyfileobj(data, out, 1024 * 1024)


def _same_content(a: Path, b: Path) -> bool:
    return os.path.isfile(b) and not os.path.islink(b) and sha256_of(a) == sha256_of(b)


class PinStep(Handler):
    """Pins written to the pins file; undo puts the file back byte for byte (or removes it)."""

    def do(self, run: StepRun) -> None:
        current = self._saved(run)
        wanted = [pins.Pin(**p) for p in run.args["pins"]]
        names = {p.name for p in wanted}
        pins.write_pins(self.config, [p for p in current if p.name not in names] + wanted)

    def _saved(self, run: StepRun) -> list[pins.Pin]:
        current = pins.read_pins(self.config)
        text = pins.read_pins_file(self.config)
        run.save(previous=[p.__dict__ for p in current], previous_text=text)
        return current

    def undo(self, run: StepRun) -> None:
        if "previous_text" in run.data:
            pins.restore_pins_file(self.config, run.data["previous_text"])
        elif "previous" in run.data:  # a journal of an older clp
            pins.write_pins(self.config, [pins.Pin(**p) for p in run.data["previous"]])


class UnpinStep(PinStep):
    def do(self, run: StepRun) -> None:
        current = self._saved(run)
        names = set(run.args["names"])
        pins.write_pins(self.config, [p for p in current if p.name not in names])


HANDLERS: dict[StepKind, type[Handler]] = {
    StepKind.PACMAN_UPGRADE: PacmanUpgradeStep,
    StepKind.PACMAN_REMOVE: PacmanRemoveStep,
    StepKind.CACHE_PACKAGE: CachePackageStep,
    StepKind.REBUILD_PACKAGE: RebuildPackageStep,
    StepKind.PIN: PinStep,
    StepKind.UNPIN: UnpinStep,
}
