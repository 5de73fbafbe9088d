"""The .clp patch lifecycle: verify, plan, apply, roll back, recover — through the journal."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clp_alpm.config import Config
from clp_alpm.errors import (
    ClpError,
    ConflictError,
    LockError,
    NotApplicableError,
    NotRootError,
    OperationFailed,
    PatchFormatError,
    SignatureError,
    UsageError,
)
from clp_alpm.formats.meta import PatchMeta
from clp_alpm.formats.patchfile import DEFAULT_LIMITS, PatchArchive, extract_patch, inspect_patch
from clp_alpm.logfile import LogFile
from clp_alpm.ops.transactions import forget_old_transactions
from clp_alpm.store.journal import Journal, Step, StepRun
from clp_alpm.store.lock import HELD_ENV, StateLock
from clp_alpm.store.snapshots import FileState, Snapshot, SnapshotStore
from clp_alpm.store.state import Operation, PatchRecord, StateDB
from clp_alpm.system import scripts
from clp_alpm.system.alpm import installed_versions
from clp_alpm.system.signature import SignatureInfo, check_signature

if TYPE_CHECKING:
    from clp_alpm.system.alpm import PacmanSettings

LOG_TAG = "CLP"


def _ignore(_: str) -> None:
    return None


@dataclass
class Events:
    """How the library tells the front end what happens. Every callback defaults to silence."""

    output: Callable[[str], None] = _ignore  # a line a script printed
    info: Callable[[str], None] = _ignore  # a step begins
    warning: Callable[[str], None] = _ignore
    step: Callable[[int, int, str], None] = lambda number, total, description: None
    waiting: Callable[[str], None] = _ignore  # the lock is held by someone else, for now
    # a long snapshot: what, files done, files in all
    counting: Callable[[str, int, int], None] = lambda what, done, total: None


# -- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedPatch:
    """A patch whose private staged copy passed the signature and structure checks."""

    source: Path  # what the user named
    archive: PatchArchive  # the staged copy: what was verified is what gets extracted
    signer: SignatureInfo | None
    siglevel: str

    @property
    def meta(self) -> PatchMeta:
        return self.archive.meta

    def to_dict(self) -> dict[str, Any]:
        report = signature_report(self.siglevel, self.signer, None, self.archive.path)
        return self.archive.to_dict() | {"path": str(self.source), "signature": report}


def signature_report(
    siglevel: str, signer: SignatureInfo | None, error: str | None, staged: Path
) -> dict[str, Any]:
    """The one JSON shape of a patch's signature verdict (verify, info, build)."""
    present = Path(f"{staged}.sig").is_file()
    if error is not None:
        status = "invalid" if present else "missing"
    elif signer is not None:
        status = "verified"
    else:
        status = "not-checked" if present else "unsigned"
    return {
        "siglevel": siglevel,
        "status": status,
        "fingerprint": signer.fingerprint if signer else None,
        "uid": signer.uid if signer else None,
        "message": error,
    }


def verify_patch(config: Config, path: Path, staging: Path) -> VerifiedPatch:
    """Copy the patch and its signature into `staging` (a private dir), then check the
    signature over the whole copy first, and the archive's structure after."""
    staged = stage_patch(path, staging)
    signer = check_signature(staged, config.siglevel, config.host_keyring)
    return VerifiedPatch(path, inspect_patch(staged), signer, config.siglevel)


def stage_patch(path: Path, staging: Path) -> Path:
    """A private copy of `path` (and `path.sig`), so that nobody can swap the file between
    the checks and the extraction."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UsageError(f"{path}: no such patch file") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read the patch file ({err.strerror})") from None
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file")
    if size > DEFAULT_LIMITS.max_total_size:
        raise PatchFormatError(
            f"{path}: the file is larger than {DEFAULT_LIMITS.max_total_size} bytes"
        )
    staged = staging / path.name
    try:
        shutil.copyfile(path, staged)
        signature = Path(f"{path}.sig")
        if signature.is_file():
            shutil.copyfile(signature, Path(f"{staged}.sig"))
    except OSError as err:
        raise ClpError(f"{path}: cannot copy the patch to {staging} ({err.strerror})") from None
    return staged


def describe_patch_file(config: Config, path: Path) -> dict[str, Any]:
    """What `clp info FILE` shows: the archive and its metadata, and the signature's verdict.

    A bad signature does not hide the metadata here (info changes nothing); `verify` refuses.
    """
    with tempfile.TemporaryDirectory(prefix="clp-info-") as staging:
        staged = stage_patch(path, Path(staging))
        archive = inspect_patch(staged)
        signer, error = None, None
        try:
            signer = check_signature(staged, config.siglevel, config.host_keyring)
        except SignatureError as err:
            error = str(err)
        report = signature_report(config.siglevel, signer, error, staged)
    return archive.to_dict() | {"path": str(path), "signature": report}


def describe_record(session: Session, patch_id: str) -> dict[str, Any]:
    """What `clp info ID` shows: the state record and which declared files changed since."""
    record = _known_record(session, patch_id)
    changed = _changes_since_apply(session, record)
    return record.to_dict() | {"meta": record.meta, "changed_since_apply": changed}


# -- session: lock, state, recovery ------------------------------------------------------


class Session:
    """Everything one clp command needs: config, state, snapshot store, log and the lock.

    A writing session holds the lock and first rolls back whatever a killed clp left behind.
    """

    def __init__(
        self,
        config: Config,
        events: Events | None = None,
        write: bool = True,
    ) -> None:
        self.config = config
        self.events = events or Events()
        self.write = write
        self.log = LogFile(config.host_log_file)
        self.store = SnapshotStore(config.host_state_dir / "snapshots")
        self.recovered: list[str] = []
        # staged patch copies this session inspected, so a commit need not read them again
        self.inspected: dict[str, PatchArchive] = {}
        self._pacman: PacmanSettings | None = None
        self._lock = StateLock(config.host_state_dir, on_wait=self.events.waiting)
        self._locked = False
        self.state: StateDB

    def __enter__(self) -> Session:
        if self.write:
            require_root()
            self._lock.acquire()
            self._locked = True
            try:
                self.state = StateDB(self.config.host_state_dir)
                self.recover()
                self._reapply_pending()  # before this command looks at any patch's files
            except BaseException:
                self.close()
                raise
        else:
            self.state = StateDB(self.config.host_state_dir, readonly=True)
            self._recover_if_abandoned()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if self._locked and exc_type is None:
                self._reapply_pending()
            if self._locked:
                self._collect_garbage()
        finally:
            self.close()

    def _reapply_pending(self) -> None:
        """Patches whose files a pacman transaction replaced, waiting for a clp with the lock
        (this session's own pacman run, or one whose post hook could not run them)."""
        from clp_alpm.ops.hooks import run_pending

        run_pending(self)

    def _collect_garbage(self) -> None:
        """Drop snapshots no patch or transaction record needs (failed applies, finished
        rollbacks, replaced records, transactions beyond TRANSACTION_HISTORY): they hold
        copies of configuration files. Never while recovery is pending."""
        if self.state.unfinished_operations():
            return
        try:
            forget_old_transactions(self.state)
            self.store.prune(self.state.snapshots_in_use())
        except (ClpError, OSError) as err:
            self.events.warning(f"could not clean up old snapshots: {err}")

    def close(self) -> None:
        if self._locked:
            shutil.rmtree(self.config.host_state_dir / "incoming", ignore_errors=True)
        if getattr(self, "state", None) is not None:
            self.state.close()
        if self._locked:
            self._lock.release()
            self._locked = False

    def _recover_if_abandoned(self) -> None:
        """A read-only command still rolls back an interrupted operation when it can."""
        if not self.state.unfinished_operations():
            return
        if os.geteuid() != 0:
            self.events.warning(
                "an interrupted clp operation needs recovery: run 'clp recover' as root"
            )
            return
        probe = StateLock(self.config.host_state_dir, wait=0.5)
        try:
            probe.acquire()
        except ClpError:
            return  # its owner is alive: an operation in progress, not an abandoned one
        try:
            self.state.close()
            self.state = StateDB(self.config.host_state_dir)
            self.recover()
        except OperationFailed as err:
            self.events.warning(str(err))  # a listing still lists; writing commands refuse
        finally:
            self.state.close()
            self.state = StateDB(self.config.host_state_dir, readonly=True)
            probe.release()

    def incoming(self) -> Path:
        """A fresh private dir under StateDir for staged patch copies (emptied at the end)."""
        base = self.config.host_state_dir / "incoming"
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Path(tempfile.mkdtemp(dir=base))

    def pacman(self) -> PacmanSettings:
        """pacman's settings for this root (read once per session)."""
        from clp_alpm.system.alpm import pacman_settings

        if self._pacman is None:
            self._pacman = pacman_settings(
                self.config, self.config.pacman_conf, self.config.extra_cache_dirs
            )
        return self._pacman

    def journal(self) -> Journal:
        def on_step(number: int, total: int, step: Step) -> None:
            self.events.step(number, total, step.description)

        return Journal(self.state, _handlers(self), on_step)

    def recover(self) -> list[str]:
        """Roll back every operation a killed process left unfinished; say so."""
        reports = [self._recover_one(op) for op in self.state.unfinished_operations()]
        self.recovered.extend(reports)
        empty_trash(self.config)  # nothing unfinished is left that could need it
        return reports

    def _recover_one(self, operation: Operation) -> str:
        what = f"{operation.kind} of {operation.target} (pid {operation.pid})"
        if operation.status == "stuck":
            self.events.warning(f"retrying the recovery of the {what}")
        else:
            self.events.warning(f"recovering from an interrupted {what}")
        self.log.write(LOG_TAG, f"recovering {what}")
        errors = self.journal().recover(operation)
        finished = self.state.operation(operation.id).status == "done"
        if operation.kind == "apply" and operation.entries:
            _record_failure(
                self,
                operation.target,
                "interrupted; rolled back by recovery",
                operation.entries[0].args.get("record"),
            )
        if errors:
            message = (
                f"the {what} could not be recovered: {'; '.join(errors)}. "
                "Fix the cause, then run 'clp recover'"
            )
            self.log.write(LOG_TAG, message)
            raise OperationFailed(message)
        outcome = "finished" if finished else "rolled back"
        self.log.write(LOG_TAG, f"{what} {outcome}")
        self.events.warning(f"the interrupted {what} was {outcome}")
        return f"{what} {outcome}"


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError("you cannot perform this operation unless you are root.")


# -- apply -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyPlan:
    patch: VerifiedPatch
    patch_dir: str
    interpreter: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def meta(self) -> PatchMeta:
        return self.patch.meta

    def to_dict(self) -> dict[str, Any]:
        return {
            "patch": self.meta.name,
            "patch_dir": self.patch_dir,
            "files": list(self.meta.files),
            "scripts": {
                "install": self.patch.archive.install_script,
                "remove": self.patch.archive.remove_script,
            },
            "health_check": self.meta.to_dict()["health_check"],
            "steps": [step.description for step in self.steps],
            "notes": list(self.notes),
        }


def plan_apply(
    session: Session, path: Path, expect: Callable[[PatchMeta], None] | None = None
) -> ApplyPlan:
    """Decide everything `apply` will do, changing nothing. `expect` may refuse the verified
    metadata before anything else is looked at (the feed checks the file is the one listed)."""
    config = session.config
    patch = verify_patch(config, path, session.incoming())
    session.inspected[str(patch.archive.path)] = patch.archive
    meta = patch.meta
    if expect is not None:
        expect(meta)
    _check_applicable(session, meta)
    patch_dir = config.patch_path(meta.name)
    if config.host(patch_dir).exists():
        raise NotApplicableError(
            f"{config.host(patch_dir)} already exists but clp has no record of applying "
            f"{meta.name} (left by clpctl?); roll it back or move it away first"
        )
    scripts.find_interpreter(config.root, config.interpreter)
    archive = patch.archive
    files = list(meta.files)
    steps = [
        Step(
            "extract",
            {
                "archive": str(patch.archive.path),
                "sha256": archive.sha256,
                "patch_dir": patch_dir,
                "record": _applied_record(patch),
            },
            f"extract {path.name} to {patch_dir}",
        ),
        *_revert_steps(session, meta),
        Step("snapshot-before", {"files": files}, f"snapshot {len(files)} declared file(s)"),
        Step(
            "install-script",
            _script_args(
                meta.name, patch_dir, archive.install_script, "install", archive.remove_script
            ),
            f"run {archive.install_script}",
        ),
    ]
    if meta.health_check is not None:
        steps.append(
            _health_check_step(
                meta.name, patch_dir, meta.health_check.command, meta.health_check.timeout
            )
        )
    steps += [
        Step("snapshot-after", {"files": files}, "snapshot the patched files"),
        Step(
            "record",
            {"patch_id": meta.name, "state": "applied", "record": _applied_record(patch)},
            f"record {meta.name} as applied",
        ),
    ]
    notes = []
    if meta.restart:
        notes.append("afterwards, systemctl try-restart " + " ".join(meta.restart))
    return ApplyPlan(patch, patch_dir, config.interpreter, tuple(steps), tuple(notes))


def _health_check_step(patch_id: str, patch_dir: str, command: str, timeout: float) -> Step:
    return Step(
        "health-check",
        {"patch_id": patch_id, "patch_dir": patch_dir, "command": command, "timeout": timeout},
        f"health check '{command}'",
    )


def restart_services(session: Session, record: PatchRecord) -> list[Any]:
    """`systemctl try-restart` the services the patch names (after apply or re-apply); not
    part of the journal: a restart cannot be undone, and a failed one changes no file."""
    from clp_alpm.system.services import try_restart

    units = list(record.meta.get("restart", []))
    if not units:
        return []
    results = try_restart(units, session.config.root)
    for result in results:
        session.log.write(LOG_TAG, f"{record.id}: {result.unit} {result.status}: {result.message}")
    return results


# -- re-apply after an upgrade -----------------------------------------------------------


def plan_reapply(
    session: Session, patch_id: str, reason: str, replaced: list[str]
) -> tuple[Step, ...]:
    """Run an applied patch's Install script again. The files an upgrade `replaced` become
    what a rollback restores (the others keep their state from before the patch); the
    patched files become what it compares with."""
    record = _known_record(session, patch_id)
    if record.state != "applied":
        raise UsageError(f"patch '{patch_id}' is {record.state}, not applied")
    config = session.config
    patch_dir = config.patch_path(patch_id)
    if not config.host(patch_dir).is_dir():
        raise ClpError(
            f"{config.host(patch_dir)} is missing: {patch_id}'s Install script cannot run again"
        )
    meta = record.meta
    files = list(meta.get("files", []))
    install = meta.get("install_script", "Install-Script.ps1")
    remove = meta.get("remove_script", "Remove-Script.ps1")
    steps = [
        Step("snapshot-before", {"files": files}, f"snapshot {len(files)} declared file(s)"),
        Step(
            "install-script",
            _script_args(patch_id, patch_dir, install, "install", remove),
            f"run {install} again",
        ),
    ]
    check = meta.get("health_check")
    if check:
        steps.append(_health_check_step(patch_id, patch_dir, check["command"], check["timeout"]))
    steps += [
        Step("snapshot-after", {"files": files}, "snapshot the patched files"),
        Step(
            "record",
            {"patch_id": patch_id, "state": "reapplied", "reason": reason, "replaced": replaced},
            f"record {patch_id} as re-applied",
        ),
    ]
    return tuple(steps)


def reapply(session: Session, patch_id: str, reason: str, replaced: list[str]) -> PatchRecord:
    """Commit plan_reapply. On failure the upgraded files are back, a rollback would restore
    them (not the files from before the upgrade), and the record says the patch is no
    longer in force."""
    steps = plan_reapply(session, patch_id, reason, replaced)
    try:
        return _commit(session, "reapply", patch_id, steps, reason)
    except OperationFailed as err:
        record = session.state.get_patch(patch_id)
        if record is not None and record.state == "applied":
            now_files = session.store.take(session.config.root, record.meta.get("files", []))
            session.state.put_patch(
                replace(
                    record,
                    snapshot_before=_rebased_before(session, record, now_files, replaced).id,
                    snapshot_after=now_files.id,
                    message=f"not in force: re-applying after an upgrade failed ({err})",
                    updated_at=time.time(),
                )
            )
        raise


def _rebased_before(
    session: Session, record: PatchRecord, fresh: Snapshot, replaced: list[str]
) -> Snapshot:
    """The patch's state from before it was applied, with the `replaced` files as `fresh`
    has them: what a rollback must restore after an upgrade replaced them."""
    if not record.snapshot_before:
        return fresh
    old = session.store.load(record.snapshot_before)
    renewed = set(replaced)
    files = [
        (fresh.get(state.path) or state) if state.path in renewed else state for state in old.files
    ]
    return session.store.compose(files, min(old.created, fresh.created))


def _check_applicable(session: Session, meta: PatchMeta) -> None:
    config = session.config
    if meta.architecture not in ("any", config.architecture):
        raise NotApplicableError(
            f"{meta.name} is built for {meta.architecture}, this system is {config.architecture}"
        )
    existing = session.state.get_patch(meta.name)
    if existing is not None and existing.state == "applied":
        raise NotApplicableError(
            f"{meta.name} is already applied (since {existing.to_dict()['applied_at']}); "
            f"roll it back first with 'clp rollback {meta.name}'"
        )
    _check_own_files(config, meta)
    _check_applies_to(config, meta)
    check_pacman_lock(config)


def _revert_steps(session: Session, meta: PatchMeta) -> tuple[Step, ...]:
    """The patch's package reverts, in the same journal: a failing script undoes them too."""
    if not meta.reverts:
        return ()
    from clp_alpm.ops.revert import Request, plan_revert

    requests = [Request(r.name, version=r.to, until=r.until) for r in meta.reverts]
    return plan_revert(session, requests, reason=f"patch {meta.name}", patch=meta.name).steps


def _check_own_files(config: Config, meta: PatchMeta) -> None:
    """A patch may not manage clp's own files: restoring them would pull the state, the lock
    or the snapshots from under clp (and the log would stop every rollback)."""
    own = {
        "StateDir": config.state_dir,
        "PatchDir": config.patch_dir,
        "LogFile": config.log_file,
        "Keyring": config.keyring,
        "DBPath": config.dbpath,
    }
    for path in meta.files:
        for setting, mine in own.items():
            if path == mine or path.startswith(mine + "/") or mine.startswith(path + "/"):
                raise NotApplicableError(
                    f"{meta.name} declares {path}, which is clp's own ({setting} = {mine}); "
                    "a patch cannot manage it"
                )


def check_pacman_lock(config: Config) -> None:
    """Another package transaction in progress: patching under it is a race (exit 3)."""
    lock = config.host_dbpath / "db.lck"
    if lock.exists() and HELD_ENV not in os.environ:
        raise LockError(
            f"pacman is running ({lock} exists); wait for it to finish, "
            "or remove the file if no pacman is running"
        )


def _check_applies_to(config: Config, meta: PatchMeta) -> None:
    if not meta.applies_to:
        return
    installed = installed_versions(config, [rule.name for rule in meta.applies_to])
    for rule in meta.applies_to:
        version = installed[rule.name]
        if version is None:
            raise NotApplicableError(f"{meta.name} applies to {rule.name}, which is not installed")
        if rule.constraint is not None and not rule.constraint.matches(version):
            raise NotApplicableError(
                f"{meta.name} applies to {rule.name}{rule.constraint.op}"
                f"{rule.constraint.version}; installed is {version}"
            )


def _script_args(
    patch_id: str, patch_dir: str, script: str, action: str, remove_script: str
) -> dict[str, Any]:
    return {
        "patch_id": patch_id,
        "patch_dir": patch_dir,
        "script": f"{patch_dir}/{script}",
        "action": action,
        "remove_script": remove_script,
    }


def _applied_record(patch: VerifiedPatch) -> dict[str, Any]:
    return {
        "version": patch.meta.version,
        "description": patch.meta.description,
        "meta": patch.meta.to_dict()
        | {
            "install_script": patch.archive.install_script,
            "remove_script": patch.archive.remove_script,
        },
        "source": str(patch.source.absolute()),
        "sha256": patch.archive.sha256,
        "signer": patch.signer.fingerprint if patch.signer else None,
    }


def apply(session: Session, plan: ApplyPlan) -> PatchRecord:
    """Commit an apply plan. On failure everything is undone and the patch recorded failed."""
    patch_id = plan.meta.name
    try:
        return _commit(session, "apply", patch_id, plan.steps, plan.patch.archive.sha256)
    except OperationFailed as err:
        _record_failure(session, patch_id, str(err), plan.steps[0].args["record"])
        raise


def _commit(
    session: Session, kind: str, patch_id: str, steps: tuple[Step, ...], detail: str = ""
) -> PatchRecord:
    """Run an operation's steps through the journal, logging its start and its outcome."""
    session.log.write(LOG_TAG, f"{kind} {patch_id} {detail}".rstrip())
    try:
        session.journal().commit(kind, patch_id, list(steps))
    except OperationFailed as err:
        session.log.write(LOG_TAG, f"{kind} {patch_id} failed: {err}")
        raise
    session.log.write(LOG_TAG, f"{kind} {patch_id} done")
    record = session.state.get_patch(patch_id)
    assert record is not None, "the record step always leaves a record"
    return record


def _record_failure(
    session: Session, patch_id: str, message: str, values: dict[str, Any] | None
) -> None:
    """Mark a patch failed; an applied one stays applied (only a re-apply could have failed)."""
    now = time.time()
    previous = session.state.get_patch(patch_id)
    if previous is not None and previous.state == "applied":
        return
    if previous is not None:
        update = dict(values or {})  # the failed version's metadata, not the earlier one's
        session.state.put_patch(
            replace(
                previous, state="failed", failed_at=now, updated_at=now, message=message, **update
            )  # fmt: skip
        )
    elif values is not None:
        session.state.put_patch(
            PatchRecord(
                id=patch_id,
                state="failed",
                failed_at=now,
                updated_at=now,
                message=message,
                **values,
            )
        )


# -- rollback ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackPlan:
    record: PatchRecord
    steps: tuple[Step, ...]
    overwritten: tuple[str, ...]  # files changed by someone else, overwritten because of --force

    def to_dict(self) -> dict[str, Any]:
        return {
            "patch": self.record.id,
            "files": list(self.record.meta.get("files", [])),
            "steps": [step.description for step in self.steps],
            "overwritten": list(self.overwritten),
        }


def plan_rollback(session: Session, patch_id: str, force: bool = False) -> RollbackPlan:
    record = _known_record(session, patch_id)
    if record.state != "applied":
        raise UsageError(f"patch '{patch_id}' is {record.state}, not applied: nothing to roll back")
    files = list(record.meta.get("files", []))
    changed = _changes_since_apply(session, record)
    if changed and not force:
        raise ConflictError(
            f"rollback of {patch_id} stopped: changed since the patch was applied: "
            f"{'; '.join(changed)}. Look at the changes, then run "
            f"'clp rollback --force {patch_id}' to overwrite them"
        )
    patch_dir = session.config.patch_path(patch_id)
    remove_script = record.meta.get("remove_script", "Remove-Script.ps1")
    steps = (
        Step("snapshot-current", {"files": files}, f"snapshot {len(files)} declared file(s)"),
        Step(
            "remove-script",
            _script_args(patch_id, patch_dir, remove_script, "remove", remove_script),
            f"run {remove_script}",
            forward=True,  # once the Remove script ran, finishing the rollback is the way back
        ),
        Step(
            "restore-files",
            {"snapshot": record.snapshot_before},
            "restore the declared files as they were before the patch",
        ),
        *_revert_rollback_steps(session, patch_id),
        Step("retire-patch-dir", {"patch_dir": patch_dir}, f"remove {patch_dir}"),
        Step(
            "record",
            {"patch_id": patch_id, "state": "rolled-back", "record": {}},
            f"record {patch_id} as rolled back",
        ),
    )
    return RollbackPlan(record, steps, tuple(changed))


def _revert_rollback_steps(session: Session, patch_id: str) -> tuple[Step, ...]:
    from clp_alpm.ops.revert import plan_revert_rollback

    steps: tuple[Step, ...] = ()
    for revert in session.state.list_reverts():
        if revert.patch == patch_id and revert.state == "applied":
            steps += plan_revert_rollback(session, revert)
    return steps


def _known_record(session: Session, patch_id: str) -> PatchRecord:
    record = session.state.get_patch(patch_id)
    if record is not None:
        return record
    hint = "see 'clp list'"
    if patch_id.endswith(".clp"):
        hint = f"patches are named by their ID, e.g. '{Path(patch_id).name[:-4]}'"
    raise UsageError(f"patch '{patch_id}' is not known to clp ({hint})")


def _changes_since_apply(session: Session, record: PatchRecord) -> list[str]:
    """Each declared file someone changed after the patch was applied, with what changed."""
    if record.state != "applied" or not record.snapshot_after:
        return []
    return changes_since(session, session.store.load(record.snapshot_after))


def changes_since(session: Session, snapshot: Snapshot) -> list[str]:
    """Each file that differs now from `snapshot`, with what changed ("/etc/x (deleted)")."""
    root = session.config.root
    return [
        f"{path} ({describe_change(snapshot.get(path), session.store.current_state(root, path))})"
        for path in session.store.changed_paths(root, snapshot)
    ]


def describe_change(then: FileState | None, now: FileState) -> str:
    """In a few words, how a file differs from what clp recorded."""
    if then is None or then.kind == "absent":
        return "created"
    if now.kind == "absent":
        return "deleted"
    if then.kind != now.kind:
        return f"{then.kind} replaced by a {now.kind}"
    changes = []
    if (then.digest, then.target) != (now.digest, now.target):
        changes.append("content changed")
    if then.mode != now.mode:
        changes.append(f"mode {then.mode:o} -> {now.mode:o}")
    if (then.uid, then.gid) != (now.uid, now.gid):
        changes.append(f"owner {then.uid}:{then.gid} -> {now.uid}:{now.gid}")
    return ", ".join(changes) or "changed"


def rollback(session: Session, plan: RollbackPlan) -> PatchRecord:
    record = _commit(session, "rollback", plan.record.id, plan.steps)
    empty_trash(session.config)
    return record


def _trash_dir(config: Config) -> Path:
    return config.host_patch_dir / ".trash"


def empty_trash(config: Config) -> None:
    """Delete patch dirs retired by finished rollbacks and staging dirs of killed extractions
    (only ever called under the lock, with no operation left unfinished)."""
    shutil.rmtree(_trash_dir(config), ignore_errors=True)
    if config.host_patch_dir.is_dir():
        for leftover in config.host_patch_dir.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)


# -- step handlers ------------------------------------------------------------------------


class _Handler:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.config = session.config

    def undo(self, run: StepRun) -> None:
        return None


class ExtractStep(_Handler):
    """Extract into a private staging dir inside PatchDir, then rename into place."""

    def do(self, run: StepRun) -> None:
        final = self.config.host(run.args["patch_dir"])
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if final.exists():
            raise ClpError(f"{final} already exists")
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=final.parent))
        run.save(staging=str(staging), final=str(final))
        archive = self.session.inspected.get(run.args["archive"]) or inspect_patch(
            Path(run.args["archive"])
        )
        if archive.sha256 != run.args["sha256"]:
            raise ClpError(f"{run.args['archive']} changed after it was verified")
        extract_patch(archive, staging)
        os.chmod(staging, 0o755)
        os.rename(staging, final)

    def undo(self, run: StepRun) -> None:
        for key in ("staging", "final"):
            if key in run.data and os.path.lexists(run.data[key]):
                shutil.rmtree(run.data[key])


class SnapshotStep(_Handler):
    def do(self, run: StepRun) -> None:
        files = run.args["files"]
        snapshot = self.session.store.take(
            self.config.root,
            files,
            progress=lambda done: self.session.events.counting("snapshot", done, len(files)),
        )
        run.save(snapshot=snapshot.id)


class RestorePointStep(SnapshotStep):
    """A snapshot whose undo restores it. As an operation's first step it is undone last,
    after every later step's undo (a pacman reinstall rewrites files): the files end exactly
    as they were before the operation. When a later undo fails, the journal leaves this one
    for the retry (`undo_last`), so that it still comes after that reinstall."""

    undo_last = True

    def undo(self, run: StepRun) -> None:
        if run.data.get("snapshot"):
            _restore_exactly(self.session, self.session.store.load(run.data["snapshot"]))


class ScriptStep(_Handler):
    """Run a patch script; undo kills what may still run and puts the files back."""

    restore_from = "snapshot-before"

    def do(self, run: StepRun) -> None:
        script = Path(run.args["script"]).name
        result = self._run(run, script, run.args["action"], "script")
        if not result.ok:
            raise ClpError(f"{script} {result.describe()}")

    def _run(self, run: StepRun, script: str, action: str, key: str) -> scripts.ProcessResult:
        """Run one of the patch's scripts. Its marker is journaled before it starts, so that
        recovery can find it and all it spawned if clp is killed meanwhile."""
        args = run.args
        return scripts.run_script(
            self.config.interpreter,
            f"{args['patch_dir']}/{script}",
            root=self.config.root,
            cwd=args["patch_dir"],
            env=_marked_environment(self.config, run, action, f"{key}_marker"),
            timeout=self.config.script_timeout,
            on_output=self.session.events.output,
            log=self.session.log,
            log_tag=f"{LOG_TAG}:{args['patch_id']}",
            on_start=lambda pid: run.save(**{f"{key}_started": True}),
        )

    def undo(self, run: StepRun) -> None:
        _kill_leftover_scripts(run)
        snapshot = _earlier_snapshot(self.session, run, self.restore_from)
        try:
            if run.data.get("script_started"):  # give the patch's own Remove script a go
                self._run_remove_script(run)
        except (ClpError, OSError) as err:
            self.session.events.warning(f"{run.args['remove_script']} could not run: {err}")
        finally:
            if snapshot is not None:
                _restore_exactly(self.session, snapshot)

    def _run_remove_script(self, run: StepRun) -> None:
        remove_name = run.args["remove_script"]
        self.session.events.info(f"running {remove_name}")
        result = self._run(run, remove_name, "remove", "remove")
        if not result.ok:
            self.session.events.warning(
                f"{remove_name} {result.describe()}; restoring the files from CLP's snapshot"
            )


class RemoveScriptStep(ScriptStep):
    """Rollback's Remove script: its failure is a warning, CLP's snapshot is the authority."""

    restore_from = "snapshot-current"

    def do(self, run: StepRun) -> None:
        _kill_leftover_scripts(run)  # when recovery runs it again after a crash
        try:
            super().do(run)
        except ClpError as err:
            self.session.events.warning(f"{err}; restoring the files from CLP's snapshot")

    def undo(self, run: StepRun) -> None:
        _kill_leftover_scripts(run)
        snapshot = _earlier_snapshot(self.session, run, self.restore_from)
        if snapshot is not None:
            _restore_exactly(self.session, snapshot)


class HealthCheckStep(_Handler):
    def do(self, run: StepRun) -> None:
        args = run.args
        result = scripts.run_health_check(
            args["command"],
            root=self.config.root,
            env=_marked_environment(self.config, run, "health-check", "script_marker"),
            timeout=args["timeout"],
            on_output=self.session.events.output,
            log=self.session.log,
            log_tag=f"{LOG_TAG}:{args['patch_id']}",
        )
        if not result.ok:
            raise ClpError(f"health check '{args['command']}' {result.describe()}")

    def undo(self, run: StepRun) -> None:
        _kill_leftover_scripts(run)


class RestoreFilesStep(_Handler):
    """Restore a snapshot: all of it, or the "paths" given."""

    def do(self, run: StepRun) -> None:
        if run.args["snapshot"]:
            snapshot = self.session.store.load(run.args["snapshot"])
            if run.args.get("paths") is not None:
                snapshot = snapshot.only(run.args["paths"])
            _restore_exactly(self.session, snapshot)

    def undo(self, run: StepRun) -> None:
        snapshot = _earlier_snapshot(self.session, run, "snapshot-current")
        if snapshot is not None:
            _restore_exactly(self.session, snapshot)


class RetirePatchDirStep(_Handler):
    """Move the patch dir into PatchDir/.trash (same file system: a rename, never a copy),
    so that undo can put it back; the trash is emptied once the rollback is done."""

    def do(self, run: StepRun) -> None:
        source = self.config.host(run.args["patch_dir"])
        trash = _trash_dir(self.config)
        trash.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = trash / f"{int(time.time() * 1000)}-{source.name}"
        run.save(source=str(source), trash=str(target))
        if source.exists():
            os.rename(source, target)

    def undo(self, run: StepRun) -> None:
        trash, source = run.data.get("trash"), run.data.get("source")
        if trash and source and os.path.lexists(trash) and not os.path.lexists(source):
            os.rename(trash, source)


class RecordStep(_Handler):
    def do(self, run: StepRun) -> None:
        state = self.session.state
        previous = state.get_patch(run.args["patch_id"])
        run.save(previous=_record_to_json(previous))
        state.put_patch(self._new_record(run, previous))

    def _new_record(self, run: StepRun, previous: PatchRecord | None) -> PatchRecord:
        now = time.time()
        patch_id, target_state = run.args["patch_id"], run.args["state"]
        if target_state == "applied":
            values = dict(run.args["record"])
            return PatchRecord(
                id=patch_id,
                state="applied",
                applied_at=now,
                updated_at=now,
                snapshot_before=run.earlier["snapshot-before"]["snapshot"],
                snapshot_after=run.earlier["snapshot-after"]["snapshot"],
                **values,
            )
        assert previous is not None
        if target_state == "reapplied":
            fresh = self.session.store.load(run.earlier["snapshot-before"]["snapshot"])
            before = _rebased_before(self.session, previous, fresh, run.args["replaced"])
            return replace(
                previous,
                updated_at=now,
                message=f"re-applied: {run.args['reason']}",
                snapshot_before=before.id,
                snapshot_after=run.earlier["snapshot-after"]["snapshot"],
            )
        # a rolled-back patch needs no snapshot: a new apply takes its own
        return replace(
            previous,
            state=target_state,
            rolled_back_at=now,
            updated_at=now,
            message=None,
            snapshot_before=None,
            snapshot_after=None,
        )

    def undo(self, run: StepRun) -> None:
        if "previous" not in run.data:
            return
        previous = run.data["previous"]
        if previous is None:
            self.session.state.delete_patch(run.args["patch_id"])
        else:
            self.session.state.put_patch(PatchRecord(**previous))


def _marked_environment(config: Config, run: StepRun, action: str, key: str) -> dict[str, str]:
    """The script environment plus a fresh marker, journaled (under `key`) before the start."""
    marker = uuid.uuid4().hex
    run.save(**{key: marker})
    return scripts.script_environment(
        run.args["patch_id"],
        run.args["patch_dir"],
        config.root,
        action,
        {scripts.RUN_MARKER_ENV: marker},
    )


def _kill_leftover_scripts(run: StepRun) -> None:
    """Scripts a killed clp started may still run: stop them before touching their files."""
    for key in ("script_marker", "remove_marker"):
        if key in run.data:
            scripts.kill_marked_processes(run.data[key])


def _record_to_json(record: PatchRecord | None) -> dict[str, Any] | None:
    return None if record is None else dict(record.__dict__)


def _earlier_snapshot(session: Session, run: StepRun, kind: str) -> Snapshot | None:
    snapshot_id = run.earlier.get(kind, {}).get("snapshot")
    return session.store.load(snapshot_id) if snapshot_id else None


def _restore_exactly(session: Session, snapshot: Snapshot) -> None:
    """Restore a snapshot and check that every file now matches it."""
    session.store.restore(session.config.root, snapshot)
    different = session.store.changed_paths(session.config.root, snapshot)
    if different:
        raise ClpError(
            "files still differ from the snapshot after restoring: " + ", ".join(different)
        )


def _handlers(session: Session) -> dict[str, Any]:
    from clp_alpm.ops import revert as reverts
    from clp_alpm.ops import transactions

    snapshot = SnapshotStep(session)
    return (
        reverts.handlers(session)
        | transactions.handlers(session)
        | {
            "extract": ExtractStep(session),
            "snapshot-before": snapshot,
            "snapshot-after": snapshot,
            "snapshot-current": snapshot,
            "restore-point": RestorePointStep(session),
            "install-script": ScriptStep(session),
            "health-check": HealthCheckStep(session),
            "remove-script": RemoveScriptStep(session),
            "restore-files": RestoreFilesStep(session),
            "retire-patch-dir": RetirePatchDirStep(session),
            "record": RecordStep(session),
        }
    )
