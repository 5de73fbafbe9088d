"""Adopting what clpctl left: every patch directory clpctl extracted under PatchDir becomes a
record in state applied, origin clpctl, through the journal like every other change.

clpctl kept no state but its directories: `clpctl update` extracted a feed patch to
`PatchDir/<Name>/`, `clpctl install FILE` to `PatchDir/<FILE>/` (e.g. `CLPR251124.clp/`), and
ran the Install script in it. A directory counts as clpctl's when it is not hidden (clp's trash
and staging dirs are), holds a pair of scripts, and no applied record claims it. Its ID is the
`Name` of its PKGINFO.meta when that reads, else the directory's name without `.clp`/`.CLP`.
"""

from __future__ import annotations

import os

from clp_alpm.errors import ClpError
from clp_alpm.ops.session import LOG_TAG, Session
from clp_alpm.store.records import PatchOrigin, PatchRecord, PatchState

# Reading and adopting a patch directory needs the metadata model and the journal; what a
# read-only command asks first (`may_have_leftovers`) needs neither, so they load on use (and
# typing and dataclasses do not load for it: see clp_alpm.cli.entry).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass
    from pathlib import Path
    from typing import Any

    from clp_alpm.formats.meta import PatchMeta
    from clp_alpm.store.journal import Step
else:
    from clp_alpm.plaindata import dataclass

META_LIMIT = 1024 * 1024  # PKGINFO.meta larger than this is not read


@dataclass(frozen=True)
class Leftover:
    """One directory clpctl left: the patch it holds and the record adopting it writes."""

    patch_id: str
    patch_dir: str  # target path
    installed_at: float  # when clpctl extracted it (the directory's mtime)
    record: dict[str, Any]
    steps: tuple[Step, ...]


def may_have_leftovers(session: Session) -> bool:
    """Whether PatchDir holds a directory no applied record claims (cheap: reads no patch)."""
    return bool(_unclaimed(session)[1])


def _unclaimed(session: Session) -> tuple[set[str], list[tuple[Path, str]]]:
    """The IDs of the applied patches, and PatchDir's directories (with their target paths)
    that none of them claims; hidden ones are clp's own (trash, staging)."""
    config = session.config
    top = config.host_patch_dir
    try:
        with os.scandir(top) as listing:  # strings: every listing and transaction asks
            names = sorted(
                entry.name
                for entry in listing
                if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
            )
    except (FileNotFoundError, NotADirectoryError):
        return set(), []
    from clp_alpm.ops.records import record_patch_dir  # not for `clp transactions`, `status`

    records = session.state.list_patches()
    claimed = {record_patch_dir(config, r) for r in records if r.state == PatchState.APPLIED}
    applied = {r.id for r in records if r.state == PatchState.APPLIED}
    targets = {name: f"{config.patch_dir.rstrip('/')}/{name}" for name in names}
    unclaimed = [(name, target) for name, target in targets.items() if target not in claimed]
    if not unclaimed:
        return applied, []
    from pathlib import Path

    return applied, [(Path(top, name), target) for name, target in unclaimed]


def find_leftovers(session: Session) -> tuple[list[Leftover], list[str]]:
    """clpctl's patch directories no record claims, and a warning for each one skipped."""
    applied, unclaimed = _unclaimed(session)
    if not unclaimed:
        return [], []
    from clp_alpm.formats.archive import META_NAME
    from clp_alpm.formats.meta import names_other_record

    found: list[Leftover] = []
    warnings: list[str] = []
    for entry, target in unclaimed:
        try:
            pair = _script_pair({p.name for p in entry.iterdir() if p.is_file()})
            installed_at = entry.stat().st_mtime
        except OSError as err:
            warnings.append(f"{entry}: cannot be read ({err.strerror}); not adopted")
            continue
        if pair is None:
            continue  # not a patch directory: nobody's business here
        meta = _read_meta(entry / META_NAME, entry.name)
        if meta is None and names_other_record(_stem(entry.name)):
            warnings.append(
                f"{entry}: its name is spelled as a revert's ID or a transaction's number, "
                "which a patch would shadow; not adopted (rename it)"
            )
            continue
        if meta is None:
            warnings.append(f"{entry}: no patch ID in its name or PKGINFO.meta; not adopted")
            continue
        if meta.name in applied or any(item.patch_id == meta.name for item in found):
            warnings.append(f"{entry}: {meta.name} is applied already; not adopted")
            continue
        found.append(_leftover(meta, target, pair, installed_at))
    return found, warnings


def _script_pair(files: set[str]) -> tuple[str, str] | None:
    from clp_alpm.formats.archive import SCRIPT_PAIRS

    for install, remove in SCRIPT_PAIRS:
        if install in files and remove in files:
            return install, remove
    for install, remove in SCRIPT_PAIRS:  # clpctl ran what there was
        if install in files or remove in files:
            return install, remove
    return None


def _stem(name: str) -> str:
    for suffix in (".clp", ".CLP"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_meta(path: Path, dir_name: str) -> PatchMeta | None:
    """PKGINFO.meta as the patch author wrote it (clpctl never checked it), else what the
    directory's name says."""
    from clp_alpm.formats.meta import PatchMeta, names_other_record, patch_id_is_valid
    from clp_alpm.formats.pkginfo import parse_meta

    try:
        if path.is_file() and path.stat().st_size <= META_LIMIT:
            meta = parse_meta(path.read_bytes(), str(path))
            if patch_id_is_valid(meta.name):
                return meta
    except (ClpError, OSError, ValueError):
        pass
    name = _stem(dir_name)
    if not patch_id_is_valid(name) or names_other_record(name):  # R1 is a revert's name
        return None
    return PatchMeta(name=name, version="0", architecture="any", description="installed by clpctl")


def _leftover(
    meta: PatchMeta, patch_dir: str, pair: tuple[str, str], installed_at: float
) -> Leftover:
    from clp_alpm.ops import steps

    record = {
        "version": meta.version,
        "description": meta.description,
        "meta": meta.to_dict()
        | {
            "install_script": pair[0],
            "remove_script": pair[1],
            "origin": str(PatchOrigin.CLPCTL),
            "patch_dir": patch_dir,
        },
        "source": None,
        "sha256": None,
        "signer": None,
    }
    files = list(meta.files)
    plan = (
        steps.snapshot_after(files),
        steps.record_adopted(meta.name, record, installed_at),
    )
    return Leftover(meta.name, patch_dir, installed_at, record, plan)


def adopt(session: Session, leftover: Leftover) -> PatchRecord:
    """Record one clpctl patch as applied (one journaled operation; nothing runs)."""
    from clp_alpm.ops.commit import commit
    from clp_alpm.ops.steps import OperationKind

    session.log.write(LOG_TAG, f"adopt {leftover.patch_id} {leftover.patch_dir}")
    commit(session, OperationKind.ADOPT, leftover.patch_id, leftover.steps)
    record = session.state.get_patch(leftover.patch_id)
    assert record is not None, "the record step always leaves a record"
    return record


def adopt_all(session: Session) -> list[PatchRecord]:
    """Adopt every clpctl leftover (what every writing session does first); warnings for the
    directories that cannot be."""
    leftovers, warnings = find_leftovers(session)
    for warning in warnings:
        session.events.warning(warning)
    adopted = []
    for leftover in leftovers:
        adopted.append(adopt(session, leftover))
        session.adopted.append(leftover.patch_id)
        session.events.info(
            f"adopted {leftover.patch_id}: installed by clpctl in {leftover.patch_dir}"
        )
    return adopted
