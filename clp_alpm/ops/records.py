"""Reading what clp knows of a patch: its record, and the declared files changed since."""

from __future__ import annotations

from clp_alpm.config import Config
from clp_alpm.errors import UsageError
from clp_alpm.ops.pending import pending
from clp_alpm.ops.session import Session
from clp_alpm.store.records import PatchRecord, PatchState

TYPE_CHECKING = False  # the listings start without typing (see clp_alpm.cli.entry)
if TYPE_CHECKING:
    from typing import Any

    from clp_alpm.store.model import Snapshot


def known_record(session: Session, patch_id: str) -> PatchRecord:
    """The record of `patch_id`, or a UsageError that says where to look."""
    record = session.state.get_patch(patch_id)
    if record is not None:
        return record
    hint = "see 'clp list'"
    if patch_id.endswith(".clp"):
        hint = f"patches are named by their ID, e.g. '{patch_id.rpartition('/')[2][:-4]}'"
    raise UsageError(f"patch '{patch_id}' is not known to clp ({hint})")


def record_patch_dir(config: Config, record: PatchRecord) -> str:
    """Target path of a patch's directory: PatchDir/<id>, or where clpctl left an adopted one."""
    return record.patch_dir or config.patch_path(record.id)


def describe_record(session: Session, patch_id: str) -> dict[str, Any]:
    """What `clp info ID` shows: the state record and which declared files changed since."""
    record = known_record(session, patch_id)
    changed = changes_since_apply(session, record)
    return listed(session, [record])[0] | {
        "patch_dir": record_patch_dir(session.config, record),
        "meta": record.stored()["meta"],
        "changed_since_apply": changed,
    }


def listed(session: Session, records: list[PatchRecord]) -> list[dict[str, Any]]:
    """Each record as `clp list` and `clp info` show it. `in_force` is false for an applied
    patch whose re-apply after an upgrade failed, or that waits to be re-applied (an upgrade
    replaced its files and no clp has run since)."""
    waiting = {item.patch: item.reason for item in pending(session.state)}
    shown = []
    for record in records:
        info = record.to_dict()
        if info["in_force"] and record.id in waiting:
            info["in_force"] = False
            info["message"] = f"not in force: waiting to be re-applied ({waiting[record.id]})"
        shown.append(info)
    return shown


def changes_since_apply(session: Session, record: PatchRecord) -> list[str]:
    """Each declared file someone changed after the patch was applied, with what changed."""
    if record.state != PatchState.APPLIED or not record.snapshot_after:
        return []
    return changes_since(session, session.store.load(record.snapshot_after))


def changes_since(session: Session, snapshot: Snapshot) -> list[str]:
    """Each file that differs now from `snapshot`, with what changed ("/etc/x (deleted)")."""
    from clp_alpm.store.model import describe_change  # not for `clp list`

    root = session.config.root
    return [
        f"{path} ({describe_change(snapshot.get(path), session.store.current_state(root, path))})"
        for path in session.store.changed_paths(root, snapshot)
    ]
