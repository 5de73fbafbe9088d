"""The one exception hierarchy of clp. Messages are written for users: one plain line.

This module imports nothing from the rest of clp, so that every layer can raise these. How an
error ends the process (its exit status) is the front end's business: `clp_alpm.cli.exits`.

    ClpError                      an operation failed; what it had done was rolled back
      UsageError                  bad input or usage; nothing was changed
        ConfigError               clp.conf or pacman.conf
        PatchFormatError          a .clp archive
          MetadataError           its PKGINFO.meta
        FeedError                 a feed index (CLP.db) or what a mirror served
        SignatureError            a detached signature
        NotApplicableError        a patch that does not apply to this system
        NotRootError              a mutating command run by a user who is not root
        PathEscapeError           a path under the root leads out of it (or is a dangling link)
      LockError                   another clp holds the lock, or pacman is running
      OperationFailed             an operation failed and was rolled back
        Interrupted               a stop signal ended it, and it was rolled back
      ConflictError               a managed file changed since; --force overwrites it
      Declined                    the user said no at the prompt
      FeedUnavailable             no mirror gave a usable patch index
      UpdateFailed                some patches of `clp update` were not applied
      DownloadError               a download failed on every mirror
      SnapshotError               a snapshot cannot be taken, read or restored
        UnsafePathError           a path leads outside the root or holds what clp must not touch
          SpecialFileError        a device, fifo or socket
        CorruptStoreError         a damaged or missing object or manifest in the store
      StateDamaged              the state database is damaged (`clp recover --rebuild-state`)
"""

from __future__ import annotations


class ClpError(Exception):
    """Base of every error clp reports to a user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ClpError):
    """Bad input or usage; nothing was changed."""


class ConfigError(UsageError):
    """clp.conf or pacman.conf cannot be read or holds a bad value."""


class PatchFormatError(UsageError):
    """A .clp archive or its PKGINFO.meta is malformed or hostile."""


class MetadataError(PatchFormatError):
    """PKGINFO.meta does not parse or does not match the schema."""


class ArchiveDamageError(PatchFormatError):
    """A container reader met damage; the message lacks the file's name, which the caller adds.

    Deliberately not a tarfile.HeaderError, so that tarfile passes it on instead of treating it
    as the end of the archive."""


class FeedError(UsageError):
    """A feed index is malformed, or a mirror served something it does not describe."""


class SignatureError(UsageError):
    """A detached signature is missing, bad, or made by a key the keyring does not trust."""


class NotApplicableError(UsageError):
    """The patch does not apply to this system (architecture, AppliesTo, already applied)."""


class NotRootError(UsageError):
    """A mutating command against / run by a user who is not root."""


class PathEscapeError(UsageError):
    """A path under --root runs through a symbolic link that leads out of the root, or a
    dangling one, or is a link where clp needs a directory of its own."""


class LockError(ClpError):
    """Another clp (or pacman) holds the lock."""


class OperationFailed(ClpError):
    """An operation failed and what it had done was rolled back."""


class Interrupted(OperationFailed):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) ended an operation, and all it had done was
    rolled back."""


class ConflictError(ClpError):
    """A managed file was changed by someone else; clp refuses to overwrite it without --force."""


class Declined(ClpError):
    """The user answered no at the prompt: nothing was changed."""

    def __init__(self) -> None:
        super().__init__("nothing was changed")


class FeedUnavailable(ClpError):
    """No mirror gave a good index (nothing was changed; try again later)."""


class UpdateFailed(ClpError):
    """Some patches of an update were not applied (each said why); the others were."""

    def __init__(self, failed: int, total: int, reported: bool) -> None:
        super().__init__(f"{failed} of {total} patches were not applied (see above)")
        self.reported = reported  # the JSON report already holds the failures


class DownloadError(ClpError):
    """No mirror delivered the file, or the file could not be written locally."""


class SnapshotError(ClpError):
    """A snapshot cannot be taken, read or restored."""


class StateDamaged(ClpError):
    """The state database is damaged (a torn page, garbage, truncation): the message names it
    and the command that rebuilds it."""


class UnsafePathError(SnapshotError):
    """A path leads outside the root, or holds something clp must not touch."""


class SpecialFileError(UnsafePathError):
    """A path is a device, fifo or socket; clp neither reads nor records those."""


class CorruptStoreError(SnapshotError):
    """The snapshot store holds a damaged or missing object or manifest."""
