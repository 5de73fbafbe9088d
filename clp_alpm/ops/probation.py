"""The machine's probation, as `clp status` tells it: the transactions waiting for a boot to
pass its health checks, and the failed boots in a row. Light on purpose (no undo, no
journal): `clp status` reads it without loading what `clp boot-check` needs (ops/health.py).
"""

from __future__ import annotations

from clp_alpm.ops.session import Session
from clp_alpm.store.records import (
    ON_PROBATION,
    BootRecord,
    BootVerdict,
    Health,
    TransactionRecord,
    TransactionStatus,
)

TYPE_CHECKING = False  # no typing at run time: see clp_alpm.cli.entry
if TYPE_CHECKING:
    from typing import Any


def on_probation(
    session: Session,
    boot_id: str | None = None,
    records: list[TransactionRecord] | None = None,
) -> list[TransactionRecord]:
    """The transactions whose probation is open: not undone, and (with `boot_id`) not made
    in that very boot, whose checks ran before it. Among `records` when given (read once)."""
    return [
        record
        for record in (session.state.list_transactions() if records is None else records)
        if record.health in ON_PROBATION
        and record.status != TransactionStatus.UNDONE
        and (boot_id is None or record.boot != boot_id)
    ]


def failed_in_row(boots: list[BootRecord], since: float | None) -> int:
    """Failed probation boots in a row, newest first, among those seen after `since` (a
    boot still pending, as the one running now, does not count)."""
    count = 0
    for boot in reversed(boots):
        if since is not None and boot.seen < since:
            break
        if boot.verdict == BootVerdict.PENDING:
            continue
        if boot.verdict != BootVerdict.FAILED or not boot.probation:
            break
        count += 1
    return count


def summary(session: Session) -> dict[str, Any]:
    """The health part of `clp status`: probation, the boots, the last automatic undo."""
    records = session.state.list_transactions()
    waiting = on_probation(session, records=records)
    boots = session.state.list_boots()
    since = min((r.started for r in waiting), default=None)
    undone = [r for r in records if r.health == Health.UNDONE_AFTER_FAILED_BOOTS]
    return {
        "probation": [r.id for r in waiting],
        "health_boots": session.config.health_boots,
        "failed_boots_in_row": failed_in_row(boots, since) if waiting else 0,
        "last_boot": boots[-1].to_dict() if boots else None,
        "undone_after_failed_boots": [{"transaction": r.id, "message": r.message} for r in undone],
    }
