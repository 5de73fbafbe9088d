"""The names the store and the hooks check without re (digests, pack names, snapshot ids,
boot ids) are accepted exactly where the patterns they replaced accepted them, except that a
snapshot id's digits are ASCII only (the pattern's \\d took any script's digits)."""

from __future__ import annotations

import random
import re

import pytest

from clp_alpm.bootid import BOOT_ID_ENV, current_boot_id
from clp_alpm.errors import UsageError
from clp_alpm.store.manifests import is_snapshot_id
from clp_alpm.store.model import is_digest, is_lower_hex

REPLACED = {
    "digest": (re.compile(r"[0-9a-f]{64}"), is_digest),
    "pack": (re.compile(r"[0-9a-f]{32}"), lambda text: is_lower_hex(text, 32)),
    "hex": (re.compile(r"(?:[0-9a-f]{2})*"), is_lower_hex),
    "snapshot": (re.compile(r"\d{8}T\d{6}\.\d{6}-[0-9a-f]{8}", re.ASCII), is_snapshot_id),
    "boot": (re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}"), None),
}
SAMPLES = {
    "digest": "a" * 64,
    "pack": "0123456789abcdef" * 2,
    "hex": "00ff",
    "snapshot": "20261204T183412.343058-897eb991",
    "boot": "3f2c0f6e-8c1d-4b5e-9a63-0e4c6f1d2a7b",
}


def boot_id_accepted(text: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setenv(BOOT_ID_ENV, text)
    try:
        return current_boot_id() == text
    except UsageError:
        return False


def mutations(sample: str, rng: random.Random) -> list[str]:
    """`sample` with one character changed, dropped or added, or cut short, many times."""
    alphabet = "09afAFgzZ.-_T \n\u0660\u00e9\x00"
    found = [sample, "", sample + "\n", sample.upper(), sample * 2, sample[:-1], 65 * "a"]
    for _ in range(3000):
        at = rng.randrange(len(sample) + 1)
        char = rng.choice(alphabet)
        found += [sample[:at] + char + sample[at + 1 :], sample[:at] + char + sample[at:],
                  sample[:at] + sample[at + 1 :]]  # fmt: skip
    return found


@pytest.mark.parametrize("kind", sorted(REPLACED))
def test_a_name_is_accepted_where_its_old_pattern_accepted_it(kind, monkeypatch):
    pattern, check = REPLACED[kind]
    rng = random.Random(kind)
    for text in mutations(SAMPLES[kind], rng):
        if check is None and "\x00" in text:
            continue  # no environment variable holds one
        expected = pattern.fullmatch(text) is not None
        got = boot_id_accepted(text, monkeypatch) if check is None else check(text)
        assert got == expected, repr(text)


def test_a_snapshot_id_with_other_scripts_digits_is_refused():
    assert not is_snapshot_id("\u0662" + "0261204T183412.343058-897eb991")
    assert not is_snapshot_id(None) and not is_digest(64) and not is_lower_hex(b"00")
