"""Stop signals (SIGINT, SIGTERM, SIGHUP) and the work they must not cut short.

The front end turns a stop signal into KeyboardInterrupt, so that the operation running undoes
what it changed. The undo itself must not be interrupted in turn: a second Ctrl-C there would
leave the half state the first one was meant to clean up. Inside `deferred()` a stop signal is
only noted; the block runs to its end and then says whether one came.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_received: list[int] = []


class Deferred:
    """What `deferred()` saw: the stop signals that came while its block ran."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    @property
    def received(self) -> bool:
        return bool(self.signals)


@contextmanager
def deferred() -> Iterator[Deferred]:
    """Hold stop signals until the block ends (nested blocks end with the outermost)."""
    global _depth
    seen = Deferred()
    start = len(_received)
    _depth += 1
    try:
        yield seen
    finally:
        _depth -= 1
        seen.signals = _received[start:]
        if _depth == 0:
            _received.clear()


def stop_now(signum: int) -> bool:
    """Called by the signal handler: True to interrupt now, False when the signal was noted
    for a `deferred()` block that is running."""
    if _depth == 0:
        return True
    _received.append(signum)
    return False
