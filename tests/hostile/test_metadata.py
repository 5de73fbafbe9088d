"""Malformed PKGINFO.meta in a signed patch: DTDs and entities (billion laughs, external
entities), processing instructions, huge attributes, encodings other than UTF-8, duplicate
elements, and declared paths with '..', '//', a trailing '/', NUL, or under /proc, /sys and
/dev. Each is refused by `clp apply` and `clp verify` alike."""

from __future__ import annotations

import pytest

from tests.kits import gpgkit
from tests.kits.hostilekit import assert_apply_and_verify_refuse
from tests.kits.patchkit import METADATA_CASES


@pytest.mark.parametrize("case", METADATA_CASES, ids=lambda case: case.id)
def test_malformed_metadata_is_refused(tmp_path, sandbox, keyring, clp, fence, case):
    patch = tmp_path / "CLPR261125.clp"
    case.build(patch)
    gpgkit.sign(keyring, patch, keyring.packager_fpr)
    fence.close()

    line = assert_apply_and_verify_refuse(clp, sandbox, patch, fence, case.match)

    assert "PKGINFO.meta" in line
