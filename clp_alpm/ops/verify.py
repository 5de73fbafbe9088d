"""Verifying a patch file: its signature over the whole file first, then its structure.

The file is first copied into a private staging dir: what was verified is what gets extracted,
whoever can write the original meanwhile.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clp_alpm.config import Config
from clp_alpm.errors import ClpError, PatchFormatError, SignatureError, UsageError
from clp_alpm.formats.archive import DEFAULT_LIMITS, PatchArchive
from clp_alpm.formats.inspect import inspect_patch
from clp_alpm.formats.meta import PatchMeta
from clp_alpm.system.signature import SignatureInfo, check_signature

# What a missing signature on the feed's side lets the administrator do (clpctl's feeds are
# unsigned).
FEED_HINT = (
    " (an unsigned feed, as clpctl's, is accepted with 'FeedSigLevel = Never' in the "
    "[options] of /etc/CLP/clp.conf; local patch files keep SigLevel)"
)


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


def verify_patch(
    config: Config, path: Path, staging: Path, *, from_feed: bool = False
) -> VerifiedPatch:
    """Copy the patch and its signature into `staging` (a private dir), then check the
    signature over the whole copy first, and the archive's structure after. A patch
    downloaded from the feed is held to FeedSigLevel, a local file to SigLevel."""
    staged = stage_patch(path, staging)
    if from_feed:
        level = config.feed_level
        signer = check_signature(
            staged, level, config.host_keyring, setting="FeedSigLevel", hint=FEED_HINT
        )
    else:
        level = config.siglevel
        signer = check_signature(staged, level, config.host_keyring)
    return VerifiedPatch(path, inspect_patch(staged), signer, level)


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
