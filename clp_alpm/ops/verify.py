"""Verifying a patch file: its signature over the whole file, then its structure.

The file is read once: gpg checks the signature over the bytes as they are read, and for an
apply a zip's entries are written into a private staging dir from those same bytes. What was
verified is what gets extracted, whoever can write the original meanwhile.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from clp_alpm.config import Config
from clp_alpm.errors import ClpError, PatchFormatError, SignatureError, UsageError
from clp_alpm.formats.archive import CONTAINER_ZIP, DEFAULT_LIMITS, PatchArchive
from clp_alpm.formats.extract import Unpacker, extract_patch
from clp_alpm.formats.inspect import inspect_patch
from clp_alpm.formats.meta import PatchMeta
from clp_alpm.system.signature import (
    SignatureInfo,
    StreamedVerification,
    check_signature,
    signature_wanted,
)

# What a missing signature on the feed's side lets the administrator do (clpctl's feeds are
# unsigned).
FEED_HINT = (
    " (an unsigned feed, as clpctl's, is accepted with 'FeedSigLevel = Never' in the "
    "[options] of /etc/CLP/clp.conf; local patch files keep SigLevel)"
)


@dataclass(frozen=True)
class VerifiedPatch:
    """A patch file that passed the signature and structure checks, read once."""

    source: Path  # what the user named
    archive: PatchArchive  # what the one read found
    signer: SignatureInfo | None
    siglevel: str
    # with `unpack`: the private directory its entries were written to from the bytes checked
    unpacked: Path | None = None

    @property
    def meta(self) -> PatchMeta:
        return self.archive.meta

    def to_dict(self) -> dict[str, Any]:
        report = signature_report(self.siglevel, self.signer, None, self.source)
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
    config: Config, path: Path, staging: Path, *, from_feed: bool = False, unpack: bool = False
) -> VerifiedPatch:
    """The one check `clp verify` and `clp apply` (and the feed's updates) make of a patch
    file, so that they cannot disagree. The file is read once, front to back: each piece is
    handed to gpg checking the detached signature over it (`gpg --verify SIG -`), hashed,
    and checked as part of the archive (every entry's layout, size and CRC-32, the metadata
    and the declared paths). With `unpack` (an apply), a zip's entries are written into
    `staging/patch` from the bytes the check reads, so that what was checked is what gets
    extracted, whoever can write the original meanwhile (a gzip'd tar is extracted once its
    signature is good, read again and its hash checked). Whatever fails, nothing is left
    in `staging` but the copy of the signature. A bad signature is reported before a bad
    archive. A patch downloaded from the feed is held to FeedSigLevel, a local file to
    SigLevel."""
    if from_feed:
        level, setting, hint = config.feed_level, "FeedSigLevel", FEED_HINT
    else:
        level, setting, hint = config.siglevel, "SigLevel", ""
    _open_patch(path).close()  # the one-line errors for a missing or special file
    staged_sig = staging / f"{path.name}.sig"
    _copy_signature(path, Path(f"{path}.sig"), staged_sig, staging)
    verifier = None
    if signature_wanted(path.name, staged_sig, level, setting=setting, hint=hint):
        verifier = StreamedVerification(path.name, staged_sig, config.host_keyring)
    unpacked = _unpack_dir(path, staging) if unpack else None
    try:
        try:
            archive = _read_once(path, verifier, unpacked)
        except ClpError:
            if verifier is not None:
                verifier.abandon()
                _signature_first(config, path, staged_sig, level, setting, hint)
            raise
        except BaseException:
            if verifier is not None:
                verifier.abandon()
            raise
        signer = _finish(verifier) if verifier is not None else None
        if unpacked is not None and archive.container != CONTAINER_ZIP:
            extract_patch(archive, unpacked)
    except BaseException:
        if unpacked is not None:
            shutil.rmtree(unpacked, ignore_errors=True)
        raise
    return VerifiedPatch(path, archive, signer, level, unpacked)


def _finish(verifier: StreamedVerification) -> SignatureInfo:
    """gpg's verdict; gpg is stopped if anything but the verdict ends the wait (an interrupt)."""
    try:
        return verifier.finish()
    except SignatureError:
        raise
    except BaseException:
        verifier.abandon()
        raise


def _unpack_dir(path: Path, staging: Path) -> Path:
    unpacked = staging / "patch"
    try:
        unpacked.mkdir(mode=0o700)
    except OSError as err:
        raise ClpError(f"{path}: cannot unpack the patch in {staging} ({err.strerror})") from None
    return unpacked


def _read_once(
    path: Path, verifier: StreamedVerification | None, unpacked: Path | None
) -> PatchArchive:
    """The one read of the file: inspected, every byte to gpg, a zip unpacked meanwhile."""
    if unpacked is None:
        return inspect_patch(path, tee=verifier)
    with Unpacker(unpacked, path.name) as sink:
        try:
            return inspect_patch(path, tee=verifier, sink=sink)
        except BaseException:
            sink.discard()
            raise


def _signature_first(
    config: Config, path: Path, staged_sig: Path, level: str, setting: str, hint: str
) -> None:
    """The archive was refused: when its signature is bad too, say that instead (as a
    signature is checked before anything else is believed). Nothing is extracted after
    this, so the file itself is verified, read once more."""
    check_signature(path, level, config.host_keyring, staged_sig, setting=setting, hint=hint)


def _open_patch(path: Path) -> IO[bytes]:
    """The patch file `path`, open for reading once it is known to be a regular file within
    the size limit (O_NONBLOCK: a FIFO swapped in meanwhile cannot hang the open)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise UsageError(f"{path}: not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such patch file") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read the patch file ({err.strerror})") from None
    source = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        source.close()
        raise UsageError(f"{path}: not a regular file")
    if st.st_size > DEFAULT_LIMITS.max_total_size:
        source.close()
        raise PatchFormatError(
            f"{path}: the file is larger than {DEFAULT_LIMITS.max_total_size} bytes"
        )
    return source


def _copy_signature(path: Path, signature: Path, staged_sig: Path, staging: Path) -> None:
    try:
        if signature.is_file():
            shutil.copyfile(signature, staged_sig)
    except OSError as err:
        raise ClpError(f"{path}: cannot copy the patch to {staging} ({err.strerror})") from None


def describe_patch_file(config: Config, path: Path) -> dict[str, Any]:
    """What `clp info FILE` shows: the archive and its metadata, and the signature's verdict,
    from one read of the file as verify makes it: gpg checks the bytes the inspection reads,
    against a private copy of the signature (a regular file, as verify takes it; gpg never
    opens what the user's directory holds). The patch itself is not copied, whatever its size.

    A bad signature does not hide the metadata here (info changes nothing); `verify` refuses.
    """
    _open_patch(path).close()  # the one-line errors for a missing or special file
    with tempfile.TemporaryDirectory(prefix="clp-info-") as staging:
        signature = Path(staging) / f"{path.name}.sig"
        _copy_signature(path, Path(f"{path}.sig"), signature, Path(staging))
        signer, error, verifier = None, None, None
        try:
            if signature_wanted(path.name, signature, config.siglevel):
                verifier = StreamedVerification(path.name, signature, config.host_keyring)
        except SignatureError as err:
            error = str(err)
        try:
            archive = inspect_patch(path, tee=verifier)
        except BaseException:
            if verifier is not None:
                verifier.abandon()
            raise
        if verifier is not None:
            try:
                signer = _finish(verifier)
            except SignatureError as err:
                error = str(err)
        report = signature_report(config.siglevel, signer, error, Path(staging) / path.name)
    return archive.to_dict() | {"path": str(path), "signature": report}
