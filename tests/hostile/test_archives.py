"""Every hostile archive, signed by a trusted key, given to `clp apply` as a user would:
exit 2, a one-line error naming the problem, and nothing changed in the root (PatchDir and
clp's records included) or outside it; `clp verify` refuses it alike (the same one check)."""

from __future__ import annotations

import json
import re

import pytest

from tests.kits import gpgkit
from tests.kits.hostilekit import assert_refused, error_line
from tests.kits.patchkit import HOSTILE_CASES

CLI_CASES = [case for case in HOSTILE_CASES if case.limits is None]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda case: case.id)
def test_hostile_archive_is_refused_by_apply(tmp_path, sandbox, keyring, clp, fence, case):
    (sandbox / "etc/app.conf").write_text("untouched\n")
    patch = tmp_path / "CLPR261125.clp"
    case.build(patch)
    gpgkit.sign(keyring, patch, keyring.packager_fpr)
    fence.close()

    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")

    assert_refused(result, fence, naming="")
    assert re.search(case.match, result.stderr), (case.match, result.stderr)
    verified = clp("--root", str(sandbox), "verify", str(patch))
    assert_refused(verified, fence, naming="")
    assert error_line(verified) == error_line(result)
    listed = clp("--root", str(sandbox), "list", "--json")
    assert json.loads(listed.stdout) == []
