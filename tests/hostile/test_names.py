"""Names that mislead: bidi overrides, zero-width and other invisible characters in entry
names, declared paths and metadata text, and patch IDs spelled like clp's other records (R1
is a revert). Each is refused by `clp apply` and `clp verify` alike, the error naming the
character as U+XXXX and never printing it."""

from __future__ import annotations

import pytest

from tests.kits import gpgkit
from tests.kits.hostilekit import assert_apply_and_verify_refuse, assert_shown_escaped
from tests.kits.patchkit import NAME_CASES, make_zip, patch_files, zip_items


@pytest.mark.parametrize("case", NAME_CASES, ids=lambda case: case.id)
def test_misleading_name_is_refused(tmp_path, sandbox, keyring, clp, fence, case):
    patch = tmp_path / "CLPR261125.clp"
    case.build(patch)
    gpgkit.sign(keyring, patch, keyring.packager_fpr)
    fence.close()

    assert_apply_and_verify_refuse(clp, sandbox, patch, fence, case.match)


def test_a_patch_file_named_with_an_override_is_shown_escaped(tmp_path, sandbox, keyring, clp):
    patch = tmp_path / "CLPR261125\u202egpj.clp"
    make_zip(patch, zip_items(patch_files()))
    gpgkit.sign(keyring, patch, keyring.packager_fpr)

    result = clp("--root", str(sandbox), "verify", str(patch))

    assert result.returncode == 0, result.stderr
    assert "CLPR261125<U+202E>gpj.clp: OK" in result.stdout
    assert_shown_escaped(result)


def test_clp_new_refuses_a_revert_id(tmp_path, clp):
    result = clp("new", "R3", "-C", str(tmp_path))

    assert result.returncode == 2, result.stderr
    assert "shadow" in result.stderr
    assert not (tmp_path / "R3").exists()
