"""PatchMeta, the model: to_dict and from_dict are inverses, and the model imports no lxml.

The state database stores `meta.to_dict()` as JSON and reads it back with `PatchMeta.from_dict`,
so every meta clp can parse must come back equal, including those an older clp stored with
fewer keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from clp_alpm.formats.meta import (
    HealthCheck,
    PatchMeta,
)
from clp_alpm.formats.pkginfo import parse_meta
from tests.kits.patchkit import FULL_META

# Every element PKGINFO.meta may hold, with the optional parts of each both present and absent.
FULL_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<Package>
  <Name>CLPR261125</Name>
  <Version>2</Version>
  <Architecture>x86_64</Architecture>
  <Description>Harden sshd MACs</Description>
  <Date>2026-11-25</Date>
  <Packager>Vincent OS Security &lt;security@example.org&gt;</Packager>
  <Severity>high</Severity>
  <References><CVE>CVE-2026-0001</CVE><URL>https://example.org/advisory</URL></References>
  <Supersedes><Patch>CLPR261101</Patch><Patch>CLPR261015</Patch></Supersedes>
  <AppliesTo><Pkg name="openssh" version="&lt;9.9p2-1"/><Pkg name="openssl"/></AppliesTo>
  <Files><File path="/etc/ssh/sshd_config"/><File path="/etc/ssh/sshd_config.d/50-clp.conf"/></Files>
  <Revert>
    <Pkg name="nvidia-utils" to="550.78-1" until="555.58-2"/>
    <Pkg name="mesa" to="1:24.1.0-1"/>
  </Revert>
  <Trigger><Pkg name="openssh"/><Pkg name="linux"/></Trigger>
  <Restart><Service>sshd.service</Service><Service>sshd.socket</Service></Restart>
  <HealthCheck timeout="45">systemctl is-active sshd.service</HealthCheck>
</Package>
"""  # noqa: E501 (one element per line)

FULL_DICT: dict[str, Any] = {
    "name": "CLPR261125",
    "version": "2",
    "architecture": "x86_64",
    "description": "Harden sshd MACs",
    "date": "2026-11-25",
    "packager": "Vincent OS Security <security@example.org>",
    "severity": "high",
    "references": [
        {"kind": "CVE", "value": "CVE-2026-0001"},
        {"kind": "URL", "value": "https://example.org/advisory"},
    ],
    "applies_to": [
        {"name": "openssh", "op": "<", "version": "9.9p2-1"},
        {"name": "openssl", "op": None, "version": None},
    ],
    "files": ["/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/50-clp.conf"],
    "reverts": [
        {"name": "nvidia-utils", "to": "550.78-1", "until": "555.58-2"},
        {"name": "mesa", "to": "1:24.1.0-1", "until": None},
    ],
    "triggers": ["openssh", "linux"],
    "restart": ["sshd.service", "sshd.socket"],
    "health_check": {"command": "systemctl is-active sshd.service", "timeout": 45},
    "legacy": False,
    "supersedes": ["CLPR261101", "CLPR261015"],
}


# clpctl's example/CLPRYYMMDD/PKGINFO.meta, the legacy INI form.
LEGACY_INI = (
    b"[Package]\nName=CLPRYYMMDD\nVersion=1\nArchitecture=x86_64\nDescription=Example CLP Patch"
)

# Only the four values every stored record has, the way an older clp may have stored one.
REQUIRED_ONLY = {
    "name": "CLPR250101",
    "version": "1",
    "architecture": "any",
    "description": "An old record",
}


def stored(meta: PatchMeta) -> dict[str, Any]:
    """`meta` as the state database gives it back: to_dict through JSON text."""
    result: dict[str, Any] = json.loads(json.dumps(meta.to_dict()))
    return result


def test_full_xml_meta_to_dict_has_exact_values() -> None:
    meta = parse_meta(FULL_XML)
    assert meta == FULL_META
    assert meta.to_dict() == FULL_DICT


def test_full_xml_meta_round_trips() -> None:
    meta = parse_meta(FULL_XML)
    assert PatchMeta.from_dict(meta.to_dict()) == meta
    assert PatchMeta.from_dict(stored(meta)) == meta
    assert PatchMeta.from_dict(FULL_DICT) == FULL_META


def test_legacy_ini_meta_round_trips_with_exact_values() -> None:
    meta = parse_meta(LEGACY_INI)
    assert meta.to_dict() == {
        "name": "CLPRYYMMDD",
        "version": "1",
        "architecture": "x86_64",
        "description": "Example CLP Patch",
        "date": None,
        "packager": None,
        "severity": None,
        "references": [],
        "applies_to": [],
        "files": [],
        "reverts": [],
        "triggers": [],
        "restart": [],
        "health_check": None,
        "legacy": True,
        "supersedes": [],
    }
    assert PatchMeta.from_dict(meta.to_dict()) == meta
    assert PatchMeta.from_dict(stored(meta)) == meta


def test_a_record_with_only_the_required_keys_takes_the_defaults() -> None:
    meta = PatchMeta.from_dict(REQUIRED_ONLY)
    assert meta == PatchMeta(
        name="CLPR250101",
        version="1",
        architecture="any",
        description="An old record",
        date=None,
        packager=None,
        severity=None,
        references=(),
        applies_to=(),
        files=(),
        reverts=(),
        triggers=(),
        restart=(),
        health_check=None,
        legacy=False,
        supersedes=(),
    )
    assert PatchMeta.from_dict(meta.to_dict()) == meta
    assert PatchMeta.from_dict(stored(meta)) == meta


def test_a_stored_health_check_without_timeout_takes_the_default() -> None:
    record = REQUIRED_ONLY | {"health_check": {"command": "true"}}
    assert PatchMeta.from_dict(record).health_check == HealthCheck("true", 30)


def test_the_model_module_does_not_load_lxml() -> None:
    code = (
        "import sys\n"
        "import clp_alpm.formats.meta\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'lxml'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
