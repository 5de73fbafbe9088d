"""The one exception hierarchy of clp. Messages are written for users: one or two plain lines."""

from __future__ import annotations

# Exit codes, as DESIGN.md fixes them.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3


class ClpError(Exception):
    """Base of every error clp reports to a user. `exit_code` is what the command exits with."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ClpError):
    """Bad input or usage; nothing was changed."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """clp.conf or pacman.conf cannot be read or holds a bad value."""


class PatchFormatError(UsageError):
    """A .clp archive or its PKGINFO.meta is malformed or hostile."""


class MetadataError(PatchFormatError):
    """PKGINFO.meta does not parse or does not match the schema."""


class SignatureError(UsageError):
    """A detached signature is missing, bad, or made by a key the keyring does not trust."""


class NotApplicableError(UsageError):
    """The patch does not apply to this system (architecture, AppliesTo, already applied)."""


class NotRootError(UsageError):
    """A mutating command against / run by a user who is not root."""


class LockError(ClpError):
    """Another clp (or pacman) holds the lock."""

    exit_code = EXIT_LOCKED


class OperationFailed(ClpError):
    """An operation failed and what it had done was rolled back."""

    exit_code = EXIT_FAILED


class ConflictError(ClpError):
    """A managed file was changed by someone else; clp refuses to overwrite it without --force."""

    exit_code = EXIT_FAILED
