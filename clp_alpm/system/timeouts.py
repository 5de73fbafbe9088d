"""How long a mirror may keep clp waiting: clp.conf's ConnectTimeout and ReadTimeout.

Apart from the HTTP client (`download.py`) so that what only passes them on (a revert from the
cache, the plan of an update) does not load http, ssl and email with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from clp_alpm.config import Config


@dataclass(frozen=True)
class Timeouts:
    """How long a mirror may keep clp waiting, in seconds: `connect` for the connection and
    the server's answer, `read` for each byte of the body (clp.conf's ConnectTimeout and
    ReadTimeout; the defaults are pacman's)."""

    connect: float = 10.0
    read: float = 10.0

    @classmethod
    def of(cls, value: Timeouts | float) -> Timeouts:
        return value if isinstance(value, Timeouts) else cls(float(value), float(value))


DEFAULT_TIMEOUTS = Timeouts()


def timeouts_of(config: Config) -> Timeouts:
    """The waits clp.conf allows (ConnectTimeout, ReadTimeout)."""
    return Timeouts(float(config.connect_timeout), float(config.read_timeout))
