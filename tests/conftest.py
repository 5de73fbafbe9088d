"""Fixtures shared by the end-to-end tests: a sandbox root, a trusted keyring, the clp command."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits import gpgkit, reaper, rootkit
from tests.kits.clpkit import run_clp


def pytest_configure(config: pytest.Config) -> None:
    """The suite runs the same however it was started (nohup, `&` in a script, a terminal)."""
    reaper.reset_stop_signals()
    reaper.become_subreaper()


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Whatever a test started and left running (it failed before its cleanup, a daemon
    forked away) is killed when it ends."""
    before = reaper.descendants()
    yield
    reaper.kill_all(reaper.descendants() - before)


@pytest.fixture(scope="session")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gpgkit.Keyring]:
    ring = gpgkit.make_keyring(tmp_path_factory.mktemp("gpg"))
    yield ring
    ring.cleanup()


@pytest.fixture
def sandbox(tmp_path: Path, keyring: gpgkit.Keyring) -> Iterator[Path]:
    """A chroot-able root with busybox, the stand-in pwsh and pacman's keyring trusting
    the test packager key (lsigned by the keyring's master key, as pacman-key does)."""
    root = rootkit.make_sandbox_root(tmp_path / "root")
    (root / "etc/pacman.d").mkdir(parents=True, exist_ok=True)
    gpgkit.copy_ring(keyring, root / "etc/pacman.d/gnupg")
    yield root
    gpgkit.kill_agent(root / "etc/pacman.d/gnupg")


@pytest.fixture
def app_conf(sandbox: Path) -> Path:
    """The configuration file most test patches change: root-owned, mode 0640."""
    conf = sandbox / "etc/app.conf"
    conf.write_text("MACs hmac-sha1\n")
    os.chown(conf, 0, 0)
    conf.chmod(0o640)
    return conf


@pytest.fixture
def clp():
    return run_clp
