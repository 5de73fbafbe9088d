"""Fixtures shared by the end-to-end tests: a sandbox root, a trusted keyring, the clp command."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import gpgkit  # noqa: E402
import rootkit  # noqa: E402

CLP = Path(sys.executable).parent / "clp"


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


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """A static web server on 127.0.0.1 serving `directory` (a mirror, an archive); its URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_clp(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run the installed `clp` command as a user would, in its own process."""
    full_env = dict(os.environ) | (env or {})
    return subprocess.run(
        [str(CLP), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


@pytest.fixture
def clp():
    return run_clp
