"""Ambiguous archives: zips whose local headers, central directory and end records do not
describe exactly the same entries or leave bytes that belong to none of them, and gzip'd tars
with something after the archive. Readers disagree on such files (what a reviewer saw with one
tool is not what clp would run): each is refused by `clp apply` and by `clp verify`, alike."""

from __future__ import annotations

import json

import pytest

from tests.kits import gpgkit
from tests.kits.hostilekit import assert_apply_and_verify_refuse
from tests.kits.patchkit import ZIP_STRUCTURE_CASES, good_zip_items, zip_bytes


@pytest.mark.parametrize("case", ZIP_STRUCTURE_CASES, ids=lambda case: case.id)
def test_ambiguous_archive_is_refused(tmp_path, sandbox, keyring, clp, fence, case):
    (sandbox / "etc/app.conf").write_text("untouched\n")
    patch = tmp_path / "CLPR261125.clp"
    case.build(patch)
    gpgkit.sign(keyring, patch, keyring.packager_fpr)
    fence.close()

    assert_apply_and_verify_refuse(clp, sandbox, patch, fence, case.match)

    listed = clp("--root", str(sandbox), "list", "--json")
    assert json.loads(listed.stdout) == []


def test_a_bad_signature_is_named_before_a_bad_archive(tmp_path, sandbox, keyring, clp, fence):
    """Bytes appended after signing: the archive is ambiguous and the signature broken; the
    signature is what is reported (nothing in the file is believed before it)."""
    patch = tmp_path / "CLPR261125.clp"
    patch.write_bytes(zip_bytes(good_zip_items()))
    gpgkit.sign(keyring, patch, keyring.packager_fpr)
    with patch.open("ab") as out:
        out.write(b"appended after signing")
    fence.close()

    line = assert_apply_and_verify_refuse(clp, sandbox, patch, fence, "signature")

    assert "invalid" in line
