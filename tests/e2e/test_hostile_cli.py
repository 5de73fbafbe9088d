"""Every hostile archive, signed by a trusted key, given to `clp apply` as a user would:
exit 2, a one-line error, and nothing changed in the root (PatchDir and state included)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.clpkit import tree
from tests.kits.patchkit import HOSTILE_CASES

CLI_CASES = [case for case in HOSTILE_CASES if case.limits is None]


def everything(root: Path) -> dict[str, tuple]:
    """The whole root, clp's state dir included, except the database files SQLite may create."""
    found = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.parent.name == "clp" or "gnupg" in path.parts:
                continue
            found[str(path.relative_to(root))] = (path.read_bytes(), os.lstat(path).st_mode)
    return found


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda case: case.id)
def test_hostile_archive_is_refused_by_apply(tmp_path, sandbox, keyring, clp, case):
    (sandbox / "etc/app.conf").write_text("untouched\n")
    patch = tmp_path / "CLPR261125.clp"
    case.build(patch)
    gpgkit.sign(keyring, patch, keyring.packager_fpr)
    before, files_before = tree(sandbox), everything(sandbox)

    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert tree(sandbox) == before
    assert everything(sandbox) == files_before
    patch_dir = sandbox / "opt/CLP"
    assert not patch_dir.exists() or not any(patch_dir.iterdir())
    listed = clp("--root", str(sandbox), "list", "--json")
    assert json.loads(listed.stdout) == []
