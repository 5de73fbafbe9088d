"""The time stamps the records show (`clp list --json`, `clp transactions`): made with the time
module, they are what datetime wrote, in every time zone, to the second and its rounding."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from clp_alpm.store.records import _iso

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
         "America/St_Johns", "Africa/Monrovia", "Pacific/Chatham"]  # fmt: skip
EDGES = [0.0, 1.5, 1.9999999, 1.0000005, 1.0000015, -1.5, -0.0000004, 1e9 + 0.9999995,
         1e9 + 0.9999994, 1711846799.9999996, 1711846800.0, 1730595600.5, -2208988800.0,
         2e11 + 0.5]  # fmt: skip


@pytest.fixture
def zone(request: pytest.FixtureRequest) -> Iterator[str]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if saved is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.parametrize("zone", ZONES, indirect=True)
def test_a_stamp_is_what_datetime_wrote(zone):
    rng = random.Random(zone)
    stamps = EDGES + [rng.uniform(-3e9, 4e9) for _ in range(3000)]
    stamps += [rng.randrange(0, 2**31) + rng.choice([0.0, 0.5, 0.9999995, 0.0000005])
               for _ in range(3000)]  # fmt: skip
    for stamp in stamps:
        expected = datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")
        assert _iso(stamp) == expected, (zone, stamp)


def test_no_stamp_is_none():
    assert _iso(None) is None
