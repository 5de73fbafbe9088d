"""How long a mirror may keep clp waiting: clp.conf's ConnectTimeout, ReadTimeout,
LowSpeedLimit and LowSpeedTimeout.

Apart from the HTTP client (`download.py`) so that what only passes them on (a revert from the
cache, the plan of an update) does not load http, ssl and email with them.
"""

from __future__ import annotations

from clp_alpm.config import Config

TYPE_CHECKING = False  # no dataclasses (inspect, ast) at run time: see clp_alpm/plaindata.py
if TYPE_CHECKING:
    from dataclasses import dataclass
else:
    from clp_alpm.plaindata import dataclass

LOW_SPEED_LIMIT = 100  # bytes per second: under it for LOW_SPEED_TIME, a mirror is given up
LOW_SPEED_TIME = 10.0  # seconds, as pacman's (libcurl's) low-speed time


@dataclass(frozen=True)
class Timeouts:
    """How long a mirror may keep clp waiting, in seconds: `connect` for the connection and
    the server's answer, `read` for each byte of the body, and the low-speed rule: a body that
    arrives slower than `low_speed_limit` bytes/s for `low_speed_time` seconds is given up
    (clp.conf's ConnectTimeout, ReadTimeout, LowSpeedLimit and LowSpeedTimeout; the waits are
    pacman's). A mirror given up for a stall is not retried: the next one is tried."""

    connect: float = 10.0
    read: float = 10.0
    low_speed_limit: int | None = None  # None: LOW_SPEED_LIMIT
    low_speed_time: float | None = None  # None: LOW_SPEED_TIME

    @classmethod
    def of(cls, value: Timeouts | float) -> Timeouts:
        return value if isinstance(value, Timeouts) else cls(float(value), float(value))

    @property
    def speed_limit(self) -> int:
        return LOW_SPEED_LIMIT if self.low_speed_limit is None else self.low_speed_limit

    @property
    def speed_time(self) -> float:
        return LOW_SPEED_TIME if self.low_speed_time is None else self.low_speed_time


DEFAULT_TIMEOUTS = Timeouts()


def timeouts_of(config: Config) -> Timeouts:
    """The waits clp.conf allows (ConnectTimeout, ReadTimeout, LowSpeedLimit,
    LowSpeedTimeout)."""
    return Timeouts(
        float(config.connect_timeout),
        float(config.read_timeout),
        config.low_speed_limit,
        float(config.low_speed_timeout),
    )
