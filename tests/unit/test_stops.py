"""A stop signal inside `deferred()` waits for the block's end; outside, it stops at once."""

from __future__ import annotations

import signal

from clp_alpm import stops


def test_outside_a_block_a_stop_signal_interrupts_now():
    assert stops.stop_now(signal.SIGINT)


def test_inside_a_block_it_is_noted_and_reported_when_the_block_ends():
    with stops.deferred() as held:
        assert not stops.stop_now(signal.SIGINT)
        assert not stops.stop_now(signal.SIGTERM)
    assert held.signals == [signal.SIGINT, signal.SIGTERM]
    assert stops.stop_now(signal.SIGINT)  # and the next one stops at once again


def test_nested_blocks_hold_until_the_outermost_ends():
    with stops.deferred() as outer:
        with stops.deferred() as inner:
            pass
        assert not inner.received
        assert not stops.stop_now(signal.SIGHUP)
    assert outer.signals == [signal.SIGHUP]
    with stops.deferred() as later:
        pass
    assert not later.received
