"""Running clp as a user would: the command, a static mirror, test patches, trees."""

from __future__ import annotations

import functools
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from clp_alpm.formats.build import build_patch
from tests.kits import gpgkit

CLP = Path(sys.executable).parent / "clp"


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


@contextmanager
def silent_server() -> Iterator[str]:
    """A server on 127.0.0.1 that takes connections and never answers (a hung web server);
    its URL."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes the connections; nobody reads them
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def run_clp(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run the installed `clp` command as a user would, in its own process."""
    full_env = dict(os.environ) | (env or {})
    if "input" not in kwargs:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        [str(CLP), *args], capture_output=True, text=True, env=full_env, timeout=timeout, **kwargs
    )


PATCH_ID = "CLPR261125"


def meta_xml(files: list[str], extra: str = "", name: str = PATCH_ID, arch: str = "any") -> str:
    file_elements = "".join(f'<File path="{path}"/>' for path in files)
    return (
        f"<Package><Name>{name}</Name><Version>1</Version><Architecture>{arch}</Architecture>"
        f"<Description>Test patch</Description><Files>{file_elements}</Files>{extra}</Package>"
    )


def make_patch(
    tmp: Path,
    keyring: gpgkit.Keyring | None,
    install: str,
    remove: str = "exit 0\n",
    files: tuple[str, ...] = ("/etc/app.conf",),
    extra: str = "",
    name: str = PATCH_ID,
    arch: str = "any",
    payload: dict[str, bytes] | None = None,
) -> Path:
    """Write a patch directory, build it with clp's builder and sign it with the packager key."""
    src = tmp / f"src-{name}"
    src.mkdir()
    for relpath, data in (payload or {}).items():
        (src / relpath).parent.mkdir(parents=True, exist_ok=True)
        (src / relpath).write_bytes(data)
    (src / "PKGINFO.meta").write_text(meta_xml(list(files), extra, name, arch))
    (src / "Install-Script.ps1").write_text(install)
    (src / "Remove-Script.ps1").write_text(remove)
    out = tmp / f"{name}.clp"
    build_patch(src, out)
    if keyring is not None:
        gpgkit.sign(keyring, out, keyring.packager_fpr)
    return out


def file_state(path: Path) -> tuple | None:
    """What a user compares: content, mode, owner and mtime (or absence)."""
    if not os.path.lexists(path):
        return None
    info = os.lstat(path)
    content = os.readlink(path) if stat.S_ISLNK(info.st_mode) else path.read_bytes()
    return (content, info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns)


CLP_OWN = ("var/lib/clp", "etc/pacman.d/gnupg", "var/cache/clp", "var/log/CLP.log", "opt/CLP")


def tree(root: Path) -> dict[str, tuple | str | None]:
    """Every file under root, for before/after comparison. clp's own state (its database and
    snapshots, and the copy of their names the shell completions read), its log and the
    PatchDir directory itself are left out (PatchDir's contents are not)."""
    result: dict[str, tuple | str | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel in CLP_OWN or rel.startswith(CLP_OWN[:3]):
                continue
            is_dir = path.is_dir() and not path.is_symlink()
            result[rel] = "dir" if is_dir else file_state(path)
    return result


INSTALL_OK = "echo installing $CLP_PATCH_ID\nsed -i s/sha1/sha2/ /etc/app.conf\n"


def apply_args(sandbox: Path, patch: Path) -> list[str]:
    return ["--root", str(sandbox), "apply", str(patch), "--noconfirm"]


# Each failing install also scribbles on the declared file first, and the Remove script is broken:
# it exits non-zero and damages the file more. CLP's own snapshot must still win.
SCRIBBLE = "echo broken > /etc/app.conf\nchmod 777 /etc/app.conf\nchown 1234 /etc/app.conf\n"


BROKEN_REMOVE = "echo worse > /etc/app.conf\nexit 9\n"
