"""Applying a patch: plan (verify, decide every step, change nothing), then commit.

The plan verifies the file, unpacking it into a private dir in the same read; the commit moves
that dir into place, reverts the packages the patch names, snapshots every
declared file, runs the Install script (and the health check), snapshots again and records the
patch. A failure anywhere undoes everything before it, in reverse, and the patch is recorded
as failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clp_alpm.config import Config
from clp_alpm.errors import NotApplicableError, OperationFailed
from clp_alpm.formats.meta import AppliesTo, PatchMeta, VersionConstraint
from clp_alpm.ops import steps
from clp_alpm.ops.commit import commit
from clp_alpm.ops.revert import Request, plan_revert
from clp_alpm.ops.session import LOG_TAG, Session
from clp_alpm.ops.steps import OperationKind
from clp_alpm.ops.verify import VerifiedPatch, verify_patch
from clp_alpm.paths import exists, is_dir, is_symlink, resolve_inside, target_of
from clp_alpm.store.journal import Step
from clp_alpm.store.records import PatchOrigin, PatchRecord, PatchState
from clp_alpm.system import scripts
from clp_alpm.system.localdb import installed_versions
from clp_alpm.system.pacman import refuse_if_pacman_runs
from clp_alpm.system.services import RestartResult, try_restart


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
    session: Session,
    path: Path,
    expect: Callable[[PatchMeta], None] | None = None,
    *,
    from_feed: bool = False,
) -> ApplyPlan:
    """Decide everything `apply` will do, changing nothing. `expect` may refuse the verified
    metadata before anything else is looked at (the feed checks the file is the one listed);
    a patch `from_feed` is held to FeedSigLevel."""
    config = session.config
    patch = verify_patch(config, path, Path(session.incoming()), from_feed=from_feed, unpack=True)
    meta = patch.meta
    for warning in meta.warnings:
        session.events.warning(warning)
    if expect is not None:
        expect(meta)
    check_applicable(session, meta)
    patch_dir = config.patch_path(meta.name)
    host_patch_dir = config.host(patch_dir, follow_last=False)
    if exists(host_patch_dir):
        raise NotApplicableError(
            f"{host_patch_dir} already exists and holds no patch clp could adopt "
            f"(no Install or Remove script); move it away first"
        )
    scripts.find_interpreter(config.root, config.interpreter)
    archive = patch.archive
    files = list(meta.files)
    record = applied_record(patch)
    assert patch.unpacked is not None  # verify_patch(unpack=True) unpacked it
    plan = [
        steps.extract(str(patch.unpacked), archive.sha256, patch_dir, record, path.name),
        *_revert_steps(session, meta),
        steps.snapshot_before(files),
        steps.install_script(meta.name, patch_dir, archive.install_script, archive.remove_script),
    ]
    if meta.health_check is not None:
        check = meta.health_check
        plan.append(steps.health_check(meta.name, patch_dir, check.command, check.timeout))
    plan += [steps.snapshot_after(files), steps.record_applied(meta.name, record)]
    notes = []
    if meta.restart:
        notes.append("afterwards, systemctl try-restart " + " ".join(meta.restart))
    return ApplyPlan(patch, patch_dir, config.interpreter, tuple(plan), tuple(notes))


def apply(session: Session, plan: ApplyPlan) -> PatchRecord:
    """Commit an apply plan. On failure everything is undone and the patch recorded failed."""
    patch_id = plan.meta.name
    try:
        return commit_patch_operation(
            session, OperationKind.APPLY, patch_id, plan.steps, plan.patch.archive.sha256
        )
    except OperationFailed as err:
        record_failure(session, patch_id, str(err), plan.steps[0].args["record"])
        raise


def commit_patch_operation(
    session: Session, kind: OperationKind, patch_id: str, plan: Sequence[Step], detail: str = ""
) -> PatchRecord:
    """Run a patch operation's steps through the journal, logging its start and its outcome."""
    session.log.write(LOG_TAG, f"{kind} {patch_id} {detail}".rstrip())
    try:
        commit(session, kind, patch_id, plan)
    except OperationFailed as err:
        session.log.write(LOG_TAG, f"{kind} {patch_id} failed: {err}")
        raise
    session.log.write(LOG_TAG, f"{kind} {patch_id} done")
    record = session.state.get_patch(patch_id)
    assert record is not None, "the record step always leaves a record"
    return record


def restart_services(session: Session, record: PatchRecord) -> list[RestartResult]:
    """`systemctl try-restart` the services the patch names (after apply or re-apply); not
    part of the journal: a restart cannot be undone, and a failed one changes no file."""
    units = list(record.meta.restart)
    if not units:
        return []
    results = try_restart(units, session.config.root)
    for result in results:
        session.log.write(LOG_TAG, f"{record.id}: {result.unit} {result.status}: {result.message}")
    return results


# -- does the patch apply here? -----------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """Why a patch does not apply to this system: its architecture, or an AppliesTo rule."""

    architecture: str | None = None  # the patch's, when that is the reason
    package: str | None = None  # the AppliesTo package, when that is the reason
    installed: str | None = None  # its installed version (None: not installed)
    constraint: VersionConstraint | None = None

    def describe(self) -> str:
        """A few words, as `clp update` lists them beside a skipped patch."""
        if self.architecture is not None:
            return f"built for {self.architecture}"
        if self.installed is None:
            return f"{self.package} is not installed"
        return f"needs {self.package}{self.constraint}, installed is {self.installed}"


def architecture_mismatch(config: Config, architecture: str) -> Mismatch | None:
    """Why a patch built for `architecture` does not run here, or None."""
    if architecture in ("any", config.architecture):
        return None
    return Mismatch(architecture=architecture)


def applies_to_mismatch(
    rules: Sequence[AppliesTo], installed: Mapping[str, str | None]
) -> Mismatch | None:
    """The first AppliesTo rule the installed versions (of the rules' packages) break."""
    for rule in rules:
        version = installed.get(rule.name)
        if version is None:
            return Mismatch(package=rule.name)
        if rule.constraint is not None and not rule.constraint.matches(version):
            return Mismatch(package=rule.name, installed=version, constraint=rule.constraint)
    return None


def check_applicable(session: Session, meta: PatchMeta) -> None:
    """Refuse (NotApplicableError) a patch that does not apply here or is applied already;
    LockError while pacman runs."""
    config = session.config
    if architecture_mismatch(config, meta.architecture) is not None:
        raise NotApplicableError(
            f"{meta.name} is built for {meta.architecture}, this system is {config.architecture}"
        )
    existing = session.state.get_patch(meta.name)
    if existing is not None and existing.state == PatchState.APPLIED:
        if existing.origin == PatchOrigin.CLPCTL:
            raise NotApplicableError(
                f"{meta.name} is already applied: clpctl installed it (in "
                f"{existing.patch_dir or config.patch_path(meta.name)}); its Install script is "
                f"not run again. Roll it back first with 'clp rollback {meta.name}'"
            )
        raise NotApplicableError(
            f"{meta.name} is already applied (since {existing.to_dict()['applied_at']}); "
            f"roll it back first with 'clp rollback {meta.name}'"
        )
    _check_own_files(session, meta)
    rules = [rule.name for rule in meta.applies_to]
    installed = installed_versions(config.host_dbpath, rules) if rules else {}
    mismatch = applies_to_mismatch(meta.applies_to, installed)
    if mismatch is not None:
        raise NotApplicableError(_mismatch_message(meta.name, mismatch))
    refuse_if_pacman_runs(config.host_dbpath)  # patching under a transaction races it


def _mismatch_message(patch_id: str, mismatch: Mismatch) -> str:
    if mismatch.installed is None:
        return f"{patch_id} applies to {mismatch.package}, which is not installed"
    assert mismatch.constraint is not None
    return (
        f"{patch_id} applies to {mismatch.package}{mismatch.constraint.op}"
        f"{mismatch.constraint.version}; installed is {mismatch.installed}"
    )


def _check_own_files(session: Session, meta: PatchMeta) -> None:
    """A patch may not manage clp's own files: restoring them would pull the state, the lock
    or the snapshots from under clp (and the log would stop every rollback). Under PatchDir
    only the patch directories, the trash and the staging directories are clp's: a file
    directly under it (clpctl's example installs /opt/CLP/new-file.txt) may be declared.

    Both the spelling and what it resolves to count (a parent that is a symbolic link inside
    the root is followed; one leading out of it is refused), compared with clp's paths as
    configured and as resolved; the snapshot store checks again when it takes and restores."""
    config = session.config
    own = [
        ("StateDir", config.state_dir),
        ("PatchDir", config.patch_dir),
        ("LogFile", config.log_file),
        ("Keyring", config.keyring),
        ("DBPath", config.dbpath),
    ]
    for setting, host in config.own_paths().items():
        resolved = target_of(config.root, host)
        if resolved is not None and (setting, resolved) not in own:
            own.append((setting, resolved))
    for path in meta.files:
        for spelled in dict.fromkeys((path, _resolved_target(config, path))):
            for setting, mine in own:
                if (
                    spelled == mine
                    or spelled.startswith(mine + "/")
                    or mine.startswith(spelled + "/")
                ):
                    if setting == "PatchDir" and _beside_patch_dirs(session, meta, spelled):
                        continue
                    through = "" if spelled == path else f" (through a symbolic link: {spelled})"
                    raise NotApplicableError(
                        f"{meta.name} declares {path}{through}, which is clp's own "
                        f"({setting} = {mine}); a patch cannot manage it"
                    )


def _resolved_target(config: Config, path: str) -> str:
    """The target path `path` names once its parent's symbolic links are followed inside the
    root (PathEscapeError for one leading out); its last component is never followed, as the
    snapshots never follow it."""
    parent, _, name = path.rpartition("/")
    host_parent = resolve_inside(config.root, parent or "/", dangling_ok=True)
    target = target_of(config.root, host_parent)
    return path if target is None else target.rstrip("/") + "/" + name


def _beside_patch_dirs(session: Session, meta: PatchMeta, path: str) -> bool:
    """True when `path` is a file directly under PatchDir that is no patch's directory (this
    patch's, one clp knows, or a directory there already, as clpctl leaves them), nor the
    trash or a staging directory (hidden names)."""
    config = session.config
    parent, _, name = path.rpartition("/")
    if parent != config.patch_dir.rstrip("/") or not name or name.startswith("."):
        return False
    if name == meta.name or session.state.get_patch(name) is not None:
        return False
    host = config.host(path)
    return not (is_dir(host) and not is_symlink(host))


def _revert_steps(session: Session, meta: PatchMeta) -> tuple[Step, ...]:
    """The patch's package reverts, in the same journal: a failing script undoes them too."""
    if not meta.reverts:
        return ()
    requests = [Request(r.name, version=r.to, until=r.until) for r in meta.reverts]
    return plan_revert(session, requests, reason=f"patch {meta.name}", patch=meta.name).steps


# -- the patch's record ---------------------------------------------------------------------


def applied_record(patch: VerifiedPatch) -> dict[str, Any]:
    """The fields of the record an apply writes (JSON: they are journaled with the plan)."""
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


def record_failure(
    session: Session, patch_id: str, message: str, values: dict[str, Any] | None
) -> None:
    """Mark a patch failed; an applied one stays applied (only a re-apply could have failed)."""
    now = time.time()
    previous = session.state.get_patch(patch_id)
    if previous is not None and previous.state == PatchState.APPLIED:
        return
    failed = {"state": PatchState.FAILED, "failed_at": now, "updated_at": now, "message": message}
    if previous is not None:
        # the failed version's metadata, not the earlier one's
        stored = previous.stored() | (values or {}) | failed
        session.state.put_patch(PatchRecord.from_stored(stored))
    elif values is not None:
        session.state.put_patch(PatchRecord.from_stored(values | {"id": patch_id} | failed))
