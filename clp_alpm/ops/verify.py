"""Verifying a patch file: its signature over the whole file, then its structure.

The file is copied into a private staging dir, gpg checking the signature over the bytes as
they are copied: what was verified is what gets extracted, whoever can write the original
meanwhile, and the original is read once.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from clp_alpm.config import Config
from clp_alpm.errors import ClpError, PatchFormatError, SignatureError, UsageError
from clp_alpm.formats.archive import CHUNK_SIZE, DEFAULT_LIMITS, PatchArchive
from clp_alpm.formats.inspect import file_identity, inspect_patch
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
    """The one check `clp verify` and `clp apply` (and the feed's updates) make of a patch
    file, so that they cannot disagree. The file is read once, front to back: each piece is
    written to a private copy in `staging`, handed to gpg checking the detached signature
    over it (`gpg --verify SIG -`), hashed, and checked as part of the archive (every
    entry's layout, size and CRC-32, the metadata and the declared paths). What was checked
    is the copy that gets extracted, whoever can write the original meanwhile. A bad
    signature is reported before a bad archive. A patch downloaded from the feed is held to
    FeedSigLevel, a local file to SigLevel."""
    if from_feed:
        level, setting, hint = config.feed_level, "FeedSigLevel", FEED_HINT
    else:
        level, setting, hint = config.siglevel, "SigLevel", ""
    _open_patch(path).close()  # the one-line errors for a missing or special file
    staged = staging / path.name
    staged_sig = Path(f"{staged}.sig")
    _copy_signature(path, Path(f"{path}.sig"), staged_sig, staging)
    verifier = None
    if signature_wanted(path.name, staged_sig, level, setting=setting, hint=hint):
        verifier = StreamedVerification(staged.name, staged_sig, config.host_keyring)
    try:
        with _StagedCopy(path, staged, staging, verifier) as copy:
            archive = inspect_patch(path, tee=copy)
            identity = copy.finish(archive.size)
    except ClpError:
        if verifier is not None:
            verifier.abandon()
            _signature_first(config, path, staged, staging, level, setting, hint)
        raise
    signer = verifier.finish() if verifier is not None else None
    return VerifiedPatch(
        path, replace(archive, path=staged, staged_identity=identity), signer, level
    )


def _signature_first(
    config: Config, path: Path, staged: Path, staging: Path, level: str, setting: str, hint: str
) -> None:
    """The archive was refused: when its signature is bad too, say that instead (as a
    signature is checked before anything else is believed)."""
    staged.unlink(missing_ok=True)
    _copy_body(_open_patch(path), path, staged, staging, None)
    check_signature(staged, level, config.host_keyring, setting=setting, hint=hint)


class _StagedCopy:
    """The tee of the inspection: every piece read goes to the private copy and to gpg."""

    def __init__(
        self, path: Path, staged: Path, staging: Path, verifier: StreamedVerification | None
    ) -> None:
        self._path = path
        self._staging = staging
        self._verifier = verifier
        try:
            self._out = open(staged, "xb")  # noqa: SIM115 - closed by __exit__
        except OSError as err:
            raise self._failed(err) from None
        self.written = 0

    def __enter__(self) -> _StagedCopy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._out.close()

    def update(self, data: bytes, /) -> None:
        try:
            self._out.write(data)
        except OSError as err:
            raise self._failed(err) from None
        self.written += len(data)
        if self._verifier is not None:
            self._verifier.feed(data)

    def finish(self, size: int) -> tuple[int, int, int, int, int]:
        """The copy's identity, once it is whole (`size` bytes) and on disk."""
        try:
            self._out.flush()
        except OSError as err:
            raise self._failed(err) from None
        if self.written != size:  # every reader reads to the end: a short copy is a bug
            raise ClpError(f"{self._path}: the staged copy is incomplete")
        return file_identity(os.fstat(self._out.fileno()))

    def _failed(self, err: OSError) -> ClpError:
        return ClpError(f"{self._path}: cannot copy the patch to {self._staging} ({err.strerror})")


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


def _copy_body(
    source: IO[bytes],
    path: Path,
    staged: Path,
    staging: Path,
    verifier: StreamedVerification | None,
) -> None:
    try:
        with source, open(staged, "xb") as out:
            while chunk := source.read(CHUNK_SIZE):
                out.write(chunk)
                if verifier is not None:
                    verifier.feed(chunk)
    except OSError as err:
        raise ClpError(f"{path}: cannot copy the patch to {staging} ({err.strerror})") from None


def stage_patch(path: Path, staging: Path) -> Path:
    """A private copy of `path` (and `path.sig`), so that nobody can swap the file between
    the checks and the extraction."""
    source = _open_patch(path)
    staged = staging / path.name
    _copy_signature(path, Path(f"{path}.sig"), Path(f"{staged}.sig"), staging)
    _copy_body(source, path, staged, staging, None)
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
