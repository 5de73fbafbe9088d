"""`clp update`: read the signed patch feed from the mirrors, decide, download, apply in order.

FeedSigLevel (default: SigLevel) is what the index and the patches downloaded from the feed
need; local patch files keep SigLevel. Unsigned content (an index, or a patch the signed
index does not bind by SHA256) is accepted only over https:// or file:// (or from a server on
127.0.0.1, as the tests run), and every unsigned index accepted says so in a warning.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clp_alpm.errors import ClpError, DownloadError, FeedError, FeedUnavailable, UsageError
from clp_alpm.formats.feed import (
    INDEX_NAME,
    MAX_INDEX_BYTES,
    FeedEntry,
    FeedIndex,
    applicable_edition,
    check_timely,
    expand_server,
    in_the_future,
    newer_than,
    parse_index,
    read_variant_id,
)
from clp_alpm.formats.meta import PatchMeta
from clp_alpm.ops.apply import (
    applies_to_mismatch,
    apply,
    architecture_mismatch,
    plan_apply,
    restart_services,
)
from clp_alpm.ops.session import LOG_TAG, Session
from clp_alpm.ops.verify import FEED_HINT
from clp_alpm.store.records import PatchOrigin, PatchState
from clp_alpm.system.download import download, fetch_bytes, timeouts_of
from clp_alpm.system.localdb import installed_versions
from clp_alpm.system.pacman import refuse_if_pacman_runs
from clp_alpm.system.signature import MAX_SIGNATURE_BYTES, check_signature

LAST_INDEX_SETTING = "feed.generated"


@dataclass(frozen=True)
class Decision:
    entry: FeedEntry
    apply: bool
    reason: str  # why it is applied or skipped, in a few words

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.entry.name, "version": self.entry.version,
                "patch_version": self.entry.listed_version, "edition": self.entry.edition,
                "action": "apply" if self.apply else "skip", "reason": self.reason}  # fmt: skip


@dataclass(frozen=True)
class UpdatePlan:
    mirror: str
    index: FeedIndex
    decisions: tuple[Decision, ...]
    signed: bool = True  # the index's signature was verified

    @property
    def to_apply(self) -> list[FeedEntry]:
        return [decision.entry for decision in self.decisions if decision.apply]

    def to_dict(self) -> dict[str, Any]:
        return {"mirror": self.mirror, "generated": self.index.generated,
                "expires": self.index.expires,
                "format": self.index.format, "signed": self.signed,
                "patches": [decision.to_dict() for decision in self.decisions]}  # fmt: skip


class OutcomeResult(StrEnum):
    APPLIED = "applied"
    FAILED = "failed"


@dataclass
class Outcome:
    name: str
    result: OutcomeResult
    message: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "result": self.result, "message": self.message}


@dataclass
class UpdateReport:
    plan: UpdatePlan
    outcomes: list[Outcome] = field(default_factory=list)
    lifted_pins: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.result == OutcomeResult.FAILED]

    def to_dict(self) -> dict[str, Any]:
        return self.plan.to_dict() | {
            "results": [o.to_dict() for o in self.outcomes],
            "lifted_pins": self.lifted_pins,
        }


# -- reading the feed ----------------------------------------------------------------------


def mirror_urls(session: Session) -> list[str]:
    config = session.config
    if not config.servers:
        raise UsageError(
            "no patch feed is configured: add 'Server = https://…/CLP/' lines to "
            "/etc/CLP/mirrors (included from /etc/CLP/clp.conf)"
        )
    return [expand_server(server, config.architecture).rstrip("/") for server in config.servers]


def read_feed(session: Session) -> tuple[str, FeedIndex, bool]:
    """The newest good index, and whether its signature was verified: mirrors are tried in
    order, and one that is down, serves a bad signature or an index older than the last one
    seen (a stale mirror, a replay), stamped in the future or expired is passed."""
    last_seen = session.state.get_setting(LAST_INDEX_SETTING) or None
    if last_seen is not None and in_the_future(last_seen):
        # an index from a signer whose clock ran ahead, accepted by a clp that did not check:
        # kept, it would make every correct index look like a replay
        session.events.warning(
            f"the last index seen was stamped {last_seen}, in the future: that stamp is "
            "forgotten, and the next correct index is accepted"
        )
        last_seen = None
    problems = []
    mirrors = mirror_urls(session)
    for number, mirror in enumerate(mirrors, 1):
        try:
            index, signed = _read_index_from(session, mirror)
            _check_fresh(session, index, last_seen)
        except ClpError as err:
            problems.append(f"{mirror}: {err}")
            if number < len(mirrors):
                _report_passed_mirror(session, mirror, err)
            continue
        if not signed:
            session.events.warning(
                f"{mirror}/{INDEX_NAME} is not signed; accepted as FeedSigLevel = "
                f"{session.config.feed_level} allows"
            )
        return mirror, index, signed
    raise FeedUnavailable("no mirror gave a usable patch index: " + "; ".join(problems))


def _report_passed_mirror(session: Session, mirror: str, err: ClpError) -> None:
    """An unreachable mirror is news; a bad signature, a stale or replayed index or a damaged
    one is a security event the administrator must see, even when the next mirror is good."""
    if isinstance(err, DownloadError):
        session.events.info(f"{mirror}: {err}; trying the next mirror")
    else:
        session.events.warning(f"{mirror} passed over: {err}")


def _check_fresh(session: Session, index: FeedIndex, last_seen: str | None) -> None:
    """Refuse an index older than the last one accepted: a stale mirror or a replay. Once
    a stamped index was seen, an unstamped one could be any age: refused too (unless unsigned
    feeds are allowed at all, FeedSigLevel = Never). An index stamped in the future or past
    its expiry is refused too, and none of its stamps is kept."""
    check_timely(index)
    if index.generated is None:
        if last_seen is not None and session.config.feed_level != "Never":
            raise FeedError(f"the index has no 'generated' stamp; the last one had {last_seen}")
        return
    try:
        fresh = newer_than(index.generated, last_seen)
    except FeedError:
        fresh = None  # an unreadable stored stamp is forgotten, not fatal
    if fresh is False:
        raise FeedError(
            f"index generated {index.generated} is older than the one seen before "
            f"({last_seen}): a stale mirror or a replayed index"
        )


def _read_index_from(session: Session, mirror: str) -> tuple[FeedIndex, bool]:
    """The index of `mirror` and whether its signature was verified (FeedSigLevel)."""
    config = session.config
    level = config.feed_level
    waits = timeouts_of(config)
    url, data = fetch_bytes([f"{mirror}/{INDEX_NAME}"], max_size=MAX_INDEX_BYTES, timeout=waits)
    with tempfile.TemporaryDirectory(prefix="clp-feed-") as staging:
        staged = Path(staging) / INDEX_NAME
        staged.write_bytes(data)
        if level != "Never":
            try:
                _, signature = fetch_bytes(
                    [f"{url}.sig"], max_size=MAX_SIGNATURE_BYTES, timeout=waits
                )
                Path(f"{staged}.sig").write_bytes(signature)
            except DownloadError:
                pass  # check_signature says whether a missing signature is acceptable
        signer = check_signature(
            staged, level, config.host_keyring, setting="FeedSigLevel", hint=FEED_HINT
        )
    if signer is None:
        require_private_transport(url, INDEX_NAME)
    return parse_index(data, f"{mirror}/{INDEX_NAME}"), signer is not None


def require_private_transport(url: str, what: str) -> None:
    """Unsigned content is accepted only where nobody on the way can change it: https://,
    file://, or a server on this machine (127.0.0.1, as a test serves)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("https", "file") or (scheme == "http" and parts.hostname == "127.0.0.1"):
        return
    raise FeedError(
        f"{what} from {url} is not signed and came over {scheme}://, which anyone on the way "
        "can change: unsigned content is accepted only over https:// or file://"
    )


# -- deciding ------------------------------------------------------------------------------


def plan_update(session: Session) -> UpdatePlan:
    """Read the feed and decide, for every patch it lists, whether it is due. Changes nothing."""
    mirror, index, signed = read_feed(session)
    return UpdatePlan(mirror, index, tuple(decide(session, index)), signed)


def decide(session: Session, index: FeedIndex) -> list[Decision]:
    """A verdict for every patch. A patch only supersedes another when it is applied or will be
    applied itself: one that cannot apply here must not hide the older fix."""
    config = session.config
    variant = read_variant_id(Path(config.root))
    entries = _for_this_edition(
        sorted(index.entries, key=lambda e: (e.date or "", e.name)), variant
    )
    packages = sorted({rule.name for entry in entries for rule in entry.applies_to})
    installed = installed_versions(config.host_dbpath, packages) if packages else {}
    verdicts = {e.name: _verdict(session, e, variant, installed) for e in entries}
    replaced = _superseded_by(session, entries, verdicts)
    return [
        Decision(entry, False, f"superseded by {replaced[entry.name]}")
        if entry.name in replaced and verdicts[entry.name][0]
        else Decision(entry, *verdicts[entry.name])
        for entry in entries
    ]


def _for_this_edition(entries: list[FeedEntry], variant: str | None) -> list[FeedEntry]:
    """One entry per patch: an index for clpctl 2.1 lists a patch once for each edition
    (`clp repo-add --edition`); the one for this edition is kept, else the first."""
    chosen: dict[str, FeedEntry] = {}
    for entry in entries:
        kept = chosen.get(entry.name)
        if kept is None or (
            not applicable_edition(kept, variant) and applicable_edition(entry, variant)
        ):
            chosen[entry.name] = entry
    return [entry for entry in entries if chosen[entry.name] is entry]


def _superseded_by(
    session: Session, entries: list[FeedEntry], verdicts: dict[str, tuple[bool, str]]
) -> dict[str, str]:
    """Patch id -> the id of a patch replacing it: applied here, or due in this run."""
    replaced: dict[str, str] = {}
    for entry in entries:
        if verdicts[entry.name][0]:
            for old in entry.supersedes:
                replaced.setdefault(old, entry.name)
    for record in session.state.list_patches():
        if record.state == PatchState.APPLIED:
            for old in record.meta.supersedes:
                replaced.setdefault(old, record.id)
    return replaced


def _verdict(
    session: Session,
    entry: FeedEntry,
    variant: str | None,
    installed: dict[str, str | None],
) -> tuple[bool, str]:
    if entry.architecture is not None:
        wrong_architecture = architecture_mismatch(session.config, entry.architecture)
        if wrong_architecture is not None:
            return False, wrong_architecture.describe()
    if not applicable_edition(entry, variant):
        return False, f"for the {entry.edition} edition (this is {variant or 'no edition'})"
    record = session.state.get_patch(entry.name)
    if record is not None and record.state == PatchState.APPLIED:
        if record.origin == PatchOrigin.CLPCTL:
            return False, "already applied (installed by clpctl)"
        return False, "already applied"
    if record is not None and record.state == PatchState.ROLLED_BACK:
        return False, "rolled back by the administrator (apply it by hand to have it again)"
    if record is not None and record.state == PatchState.FAILED:
        if record.sha256 == entry.sha256:
            return False, "failed before; the feed has no newer build of it"
        if entry.sha256 is None:
            return False, "failed before; the index gives no SHA256 to tell a newer build"
    mismatch = applies_to_mismatch(entry.applies_to, installed)
    if mismatch is not None:
        return False, mismatch.describe()
    return True, entry.description or "due"


# -- applying ------------------------------------------------------------------------------


def run_update(
    session: Session,
    plan: UpdatePlan,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> UpdateReport:
    """Download and apply every due patch in order. One failure does not stop the others."""
    if plan.index.generated:
        session.state.set_setting(LAST_INDEX_SETTING, plan.index.generated)
    if plan.to_apply:
        refuse_if_pacman_runs(session.config.host_dbpath)  # exit 3 before any download
    report = UpdateReport(plan)
    downloads = Path(session.config.host_in_state_dir("downloads"))
    downloads.mkdir(parents=True, exist_ok=True, mode=0o700)
    for entry in plan.to_apply:
        try:
            path = _download_patch(session, plan, entry, downloads, progress)
            expect = functools.partial(_check_matches_index, entry)
            record = apply(session, plan_apply(session, path, expect, from_feed=True))
            restarts = [f"{r.unit} {r.status}" for r in restart_services(session, record)]
            message = "; ".join([record.description, *restarts])
            report.outcomes.append(Outcome(entry.name, OutcomeResult.APPLIED, message))
        except ClpError as err:
            report.outcomes.append(Outcome(entry.name, OutcomeResult.FAILED, str(err)))
        finally:
            # a complete download is not kept; a .part left by a network failure is, to resume
            for done in (downloads / f"{entry.name}.clp", downloads / f"{entry.name}.clp.sig"):
                done.unlink(missing_ok=True)
    return report


def _check_matches_index(entry: FeedEntry, meta: PatchMeta) -> None:
    """The file a mirror served must be the patch the signed index describes."""
    differs = [
        what
        for what, listed, inside in (
            ("name", entry.name, meta.name),
            ("architecture", entry.architecture, meta.architecture),
            ("version", entry.listed_version, meta.version),
        )
        if listed is not None and listed != inside
    ]
    if differs:
        raise FeedError(
            f"{entry.name}.clp from the mirror is not the patch the index lists "
            f"(its {', '.join(differs)} differ): refused"
        )


def _download_patch(
    session: Session,
    plan: UpdatePlan,
    entry: FeedEntry,
    directory: Path,
    progress: Callable[[str, int, int | None], None] | None,
) -> Path:
    """The patch and its signature, from the mirror the index came from first, then others.
    Each mirror is asked for `<Name>.clp`, then for the `<Name>.CLP` that clpctl publishes.
    A patch the index gives no SHA256 for is hashed on download and the hash logged (and
    recorded with the patch)."""
    first_mirror = plan.mirror
    mirrors = [first_mirror] + [m for m in mirror_urls(session) if m != first_mirror]
    name = f"{entry.name}.clp"
    result = download(
        [url for m in mirrors for url in (f"{m}/{name}", f"{m}/{entry.name}.CLP")],
        directory / name,
        expected_size=entry.size,
        expected_sha256=entry.sha256,
        timeout=timeouts_of(session.config),
        progress=(lambda done, total: progress(name, done, total)) if progress else None,
    )
    path = result.path
    bound = plan.signed and entry.sha256 is not None  # the signed index vouches for the bytes
    if entry.sha256 is None:
        session.log.write(
            LOG_TAG,
            f"{entry.name}: downloaded from {result.url}, {result.size} bytes, "
            f"sha256 {result.sha256} (the index lists no SHA256)",
        )
    if session.config.feed_level != "Never":
        # a missing signature is plan_apply's to judge, under SigLevel
        with contextlib.suppress(DownloadError):
            download(
                [url for m in mirrors for url in (f"{m}/{name}.sig", f"{m}/{entry.name}.CLP.sig")],
                directory / f"{name}.sig",
                max_size=MAX_SIGNATURE_BYTES,
                timeout=timeouts_of(session.config),
            )
    if not bound and not Path(f"{path}.sig").is_file():
        require_private_transport(result.url, name)
    return path
