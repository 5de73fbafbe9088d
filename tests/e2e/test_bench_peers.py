"""The roots bench/hooks.py section 4 measures clp against, each in a tiny root with real pacman:
etckeeper's hooks commit /etc after every transaction, the snap-pac stand-in makes one snapper
pre/post pair on a btrfs loop image (and the image and the config are gone afterwards), and
clp's hook files with a global option before `hook` still record the transaction."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import peers
from bench.hooks import make_hook_root, recorded_transactions, tiny_packages, with_global_option
from tests.kits import rootkit


def test_etckeeper_hooks_commit_what_each_transaction_changed(tmp_path: Path) -> None:
    if shutil.which("etckeeper") is None or shutil.which("git") is None:
        pytest.skip("etckeeper is not installed")
    hroot = peers.PeerRoot(rootkit.make_sandbox_root(tmp_path / "root"), peers.ETCKEEPER_HOOKS)
    peers.setup_etckeeper(hroot)
    for version in (1, 2):
        result = hroot.pacman("-U", *tiny_packages(tmp_path / f"v{version}", 1, version),
                              env=peers.etckeeper_env())  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "etckeeper: pre transaction commit" in result.stdout
        assert "etckeeper: post transaction commit" in result.stdout
    subjects = peers.etckeeper_commits(hroot)
    assert len(subjects) == 3 and subjects[-1] == "initial commit"
    assert all(s.startswith("committing changes in /etc made by") for s in subjects[:2])
    committed = hroot.chroot("git", "-C", "/etc", "show", "HEAD:tiny/00.conf")
    assert committed.startswith("version = 2\n")


def test_snap_pac_stand_in_makes_one_pre_post_pair_per_transaction(tmp_path: Path) -> None:
    missing = peers.btrfs_missing() or (shutil.which("snapper") is None and "no snapper")
    if missing:
        pytest.skip(str(missing))
    configs = peers.SnapperConfigs()
    with peers.btrfs_image(tmp_path / "btrfs", size_gib=1) as mount:
        try:
            peers.make_subvolume(mount / "root")
            hroot = peers.PeerRoot(rootkit.make_sandbox_root(mount / "root"), peers.SNAP_PAC_HOOKS)
            name = configs.create(hroot)
            config = (hroot.root / f"etc/snapper/configs/{name}").read_text()
            assert 'SUBVOLUME="/"' in config and 'TIMELINE_CREATE="no"' in config
            result = hroot.pacman("-U", *tiny_packages(tmp_path / "v1", 1, 1))
            assert result.returncode == 0, result.stdout + result.stderr
            assert configs.pairs(name) == (1, 1, 1)
            assert not (hroot.root / f"tmp/snap-pac-pre_{name}").exists()  # post took it
        finally:
            assert configs.close() == []
    assert not Path(f"/etc/snapper/configs/{name}").exists()
    assert name not in Path("/etc/default/snapper").read_text()


def test_btrfs_image_is_unmounted_detached_and_removed_when_the_block_fails(
    tmp_path: Path,
) -> None:
    if peers.btrfs_missing():
        pytest.skip(str(peers.btrfs_missing()))
    with pytest.raises(KeyboardInterrupt), peers.btrfs_image(tmp_path, size_gib=1) as mount:
        assert os.path.ismount(mount)
        raise KeyboardInterrupt
    assert not os.path.ismount(tmp_path / "mnt")
    assert not (tmp_path / "btrfs.img").exists()
    loops = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert str(tmp_path) not in loops


def test_clp_hook_files_with_a_global_option_first_still_record(tmp_path: Path) -> None:
    hroot = make_hook_root(tmp_path / "clp", with_hooks=True)
    with_global_option(hroot)
    hooks = sorted((hroot.root / peers.HOOK_DIR).glob("*.hook"))
    assert len(hooks) == 2
    assert all("Exec = /usr/bin/clp --root / hook " in hook.read_text() for hook in hooks)
    result = hroot.pacman("-U", *tiny_packages(tmp_path / "v1", 1, 1))
    assert result.returncode == 0 and "warning: clp" not in result.stdout + result.stderr
    records = recorded_transactions(hroot)
    assert [r["status"] for r in records] == ["done"]
