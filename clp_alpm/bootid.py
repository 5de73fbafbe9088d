"""Which boot this is: the kernel's boot id, which changes at every boot.

Tests stand for a sequence of boots without rebooting by setting CLP_BOOT_ID (for tests only:
on a real system the kernel's value is the truth). A value that is not a plain identifier is
refused, since it is stored and shown.
"""

from __future__ import annotations

import os

from clp_alpm.errors import UsageError

BOOT_ID_ENV = "CLP_BOOT_ID"  # for tests only
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
_BOOT_ID_MAX = 64
_BOOT_ID_MARKS = "._-"  # allowed besides ASCII letters and digits, never first


def current_boot_id() -> str:
    """This boot's id; UsageError for a CLP_BOOT_ID that is not one, or none readable."""
    given = os.environ.get(BOOT_ID_ENV)
    if given is not None:
        if not _is_boot_id(given):
            shown = given.encode("unicode_escape").decode("ascii")[:80]
            raise UsageError(
                f"{BOOT_ID_ENV}='{shown}' is not a boot id "
                "(letters, digits, '.', '_' and '-', at most 64)"
            )
        return given
    try:
        with open(BOOT_ID_FILE, encoding="ascii") as source:
            value = source.read(100).strip()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{BOOT_ID_FILE}: cannot read the boot id ({err})") from None
    if not _is_boot_id(value):
        raise UsageError(f"{BOOT_ID_FILE}: '{value[:80]}' is not a boot id")
    return value


def _is_boot_id(text: str) -> bool:
    """A plain identifier: an ASCII letter or digit, then up to 63 of those or '.', '_', '-'.
    (String tests, not re: the post-transaction hook asks after every upgrade.)"""
    return (
        0 < len(text) <= _BOOT_ID_MAX
        and text.isascii()
        and text[0].isalnum()
        and all(char.isalnum() or char in _BOOT_ID_MARKS for char in text)
    )


def boot_id_or_none() -> str | None:
    """This boot's id, or None when it cannot be told (the hooks never fail for it)."""
    try:
        return current_boot_id()
    except UsageError:
        return None
