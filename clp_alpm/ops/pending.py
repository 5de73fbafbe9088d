"""Patches waiting to be re-applied after a pacman transaction replaced their files.

The post hook works out which applied patches a transaction touched and stores them in the
state; whichever clp holds the lock next (the post hook itself, or the clp that ran pacman)
re-applies them. An entry leaves the list only once its re-apply was tried. Light on purpose:
the hooks import this module.
"""

from __future__ import annotations

from clp_alpm.plainjson import dumps, loads
from clp_alpm.store.records import PatchState, TransactionRecord
from clp_alpm.store.state import StateDB

TYPE_CHECKING = False  # as in store/records.py: no typing import at run time
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any
else:  # the pacman hook's path: no dataclasses, see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

PENDING_SETTING = "pending-reapply"


@dataclass(frozen=True)
class Reapply:
    """A patch whose Install script must run again, why, and the declared files replaced."""

    patch: str
    reason: str
    replaced: list[str]


def patches_to_reapply(state: StateDB, record: TransactionRecord) -> list[Reapply]:
    """Applied patches whose files the transaction replaced (or wrote a .pacnew beside), and
    patches whose <Trigger> package it installed or upgraded."""
    changed = set(record.changed)
    present = {p["name"]: p for p in record.packages if p["to"] is not None}
    found = []
    for patch in state.list_patches():
        if patch.state != PatchState.APPLIED:
            continue
        files = list(patch.meta.files)
        hit = [path for path in files if path in changed]
        hit += [path + ".pacnew" for path in files if path + ".pacnew" in changed]
        triggers = [name for name in patch.meta.triggers if name in present]
        replaced = [path for path in files if path in changed]
        if hit:
            reason = f"transaction {record.id} replaced {', '.join(hit)}"
            found.append(Reapply(patch.id, reason, replaced))
        elif triggers:
            moves = ", ".join(_move(present[name]) for name in triggers)
            found.append(Reapply(patch.id, f"transaction {record.id} {moves}", []))
    return found


def _move(package: dict[str, Any]) -> str:
    if package["from"] is None:
        return f"installed {package['name']} {package['to']}"
    return f"upgraded {package['name']} {package['from']} -> {package['to']}"


def pending(state: StateDB) -> list[Reapply]:
    try:
        entries = loads(state.get_setting(PENDING_SETTING) or "[]")
        return [Reapply(str(e["patch"]), str(e["reason"]), list(e["replaced"])) for e in entries]
    except (ValueError, KeyError, TypeError):
        return []  # a damaged list is dropped rather than blocking every clp command


def add_pending(state: StateDB, reapplies: list[Reapply]) -> None:
    if not reapplies:
        return
    merged: dict[str, Reapply] = {item.patch: item for item in pending(state)}
    for item in reapplies:
        earlier = merged.get(item.patch)
        if earlier is not None:
            replaced = list(dict.fromkeys(earlier.replaced + item.replaced))
            item = Reapply(item.patch, f"{earlier.reason}; {item.reason}", replaced)
        merged[item.patch] = item
    _store_pending(state, list(merged.values()))


def _store_pending(state: StateDB, items: list[Reapply]) -> None:
    entries = [{"patch": i.patch, "reason": i.reason, "replaced": i.replaced} for i in items]
    state.set_setting(PENDING_SETTING, dumps(entries))


def mark_done(state: StateDB, item: Reapply) -> None:
    """`item` was tried: it leaves the list."""
    _store_pending(state, [other for other in pending(state) if other.patch != item.patch])
