"""A full disk at each place clp writes: the operation fails, says so, and changes nothing."""

from __future__ import annotations

import json
import os

from tests.kits.clpkit import INSTALL_OK, apply_args, make_patch, tree
from tests.kits.smallfs import run_with_small_fs


def test_full_patch_dir(tmp_path, sandbox, keyring, app_conf, clp):
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK, payload={"big.bin": os.urandom(600_000)})
    result = run_with_small_fs(sandbox / "opt/CLP", "256k", *apply_args(sandbox, patch))
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree(sandbox) == before
    listed = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [p["state"] for p in listed] == ["failed"]


def test_full_state_dir_while_staging(tmp_path, sandbox, keyring, app_conf, clp):
    before = tree(sandbox)
    patch = make_patch(tmp_path, keyring, INSTALL_OK, payload={"big.bin": os.urandom(600_000)})
    result = run_with_small_fs(sandbox / "var/lib/clp", "256k", *apply_args(sandbox, patch))
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert tree(sandbox) == before


def test_full_state_dir_while_snapshotting(tmp_path, sandbox, keyring, app_conf, clp):
    big = sandbox / "etc/big.conf"
    big.write_bytes(os.urandom(600_000))
    before = tree(sandbox)
    install = "echo x > /etc/big.conf\n"
    patch = make_patch(tmp_path, keyring, install, files=("/etc/big.conf",))
    result = run_with_small_fs(sandbox / "var/lib/clp", "400k", *apply_args(sandbox, patch))
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert "rolled back" in result.stderr
    assert tree(sandbox) == before
