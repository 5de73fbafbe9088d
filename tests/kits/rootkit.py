"""Minimal sandbox roots for tests and the demo: a static busybox and a stand-in for pwsh.

A root built here works chrooted without any bind mounts: everything in it is a static busybox
and its applet links. PowerShell cannot be installed on these machines, so the interpreter is a
stand-in that runs the *.ps1 body with /bin/sh: test scripts named *.ps1 contain POSIX sh.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
from pathlib import Path

STAND_IN_PWSH = """\
#!/bin/sh
# Stand-in for PowerShell in clp's tests: runs the script body with /bin/sh.
# Accepts exactly what clp passes: -NoProfile -NonInteractive -File SCRIPT [ARGS...]
if [ "$#" -lt 4 ] || [ "$1" != "-NoProfile" ] || [ "$2" != "-NonInteractive" ] \\
        || [ "$3" != "-File" ]; then
    echo "pwsh stand-in: expected -NoProfile -NonInteractive -File SCRIPT, got: $*" >&2
    exit 64
fi
shift 3
exec /bin/sh "$@"
"""

APPLETS = (
    "sh", "cat", "cp", "mv", "rm", "mkdir", "echo", "printf", "sleep", "test", "[", "chmod",
    "chown", "ln", "touch", "ls", "grep", "sed", "head", "tail", "true", "false", "env", "stat",
    "readlink", "kill", "id", "wc", "sha256sum", "cmp", "diff",
    # a few more that scripts commonly reach for
    "pwd", "basename", "dirname", "tr", "cut", "sort", "date", "mktemp", "setsid", "uname",
)  # fmt: skip

_BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
_PT_INTERP = 3


def busybox_path() -> Path:
    """The host's statically linked busybox (Debian: busybox-static)."""
    for candidate in _BUSYBOX_CANDIDATES:
        if candidate.is_file() and _is_static_elf(candidate):
            return candidate
    raise FileNotFoundError(
        "no statically linked busybox at /bin/busybox or /usr/bin/busybox "
        "(install the busybox-static package)"
    )


def _is_static_elf(path: Path) -> bool:
    """True for an ELF file without a program interpreter (runs in an empty chroot)."""
    with path.open("rb") as elf:
        header = elf.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF":
            return False
        order = "<" if header[5] == 1 else ">"
        if header[4] == 2:  # 64-bit
            (phoff,) = struct.unpack_from(order + "Q", header, 32)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
        else:
            (phoff,) = struct.unpack_from(order + "I", header, 28)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 42)
        elf.seek(phoff)
        table = elf.read(phentsize * phnum)
    if len(table) < phentsize * phnum:
        return False
    return all(
        struct.unpack_from(order + "I", table, i * phentsize)[0] != _PT_INTERP for i in range(phnum)
    )


def has_real_pwsh() -> bool:
    return shutil.which("pwsh") is not None


def write_stand_in(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STAND_IN_PWSH)
    path.chmod(0o755)
    return path


def make_host_stand_in(directory: Path) -> Path:
    """The stand-in interpreter for tests with root "/": pass the returned path as interpreter."""
    return write_stand_in(Path(directory) / "pwsh")


def make_sandbox_root(path: Path, interpreter: str | None = "/usr/bin/pwsh") -> Path:
    """Build a minimal root at `path` that works chrooted; the stand-in goes at `interpreter`.

    With interpreter=None no stand-in is installed. /dev/null is a real device node when the
    file system allows one, an ordinary empty file otherwise (scripts' stdin does not depend on
    it: clp opens /dev/null on the host before the chroot).
    """
    root = Path(path)
    usr_bin = root / "usr" / "bin"
    usr_bin.mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox_path(), usr_bin / "busybox")
    for applet in APPLETS:
        (usr_bin / applet).symlink_to("busybox")
    (root / "bin").symlink_to("usr/bin")
    (root / "sbin").symlink_to("usr/bin")
    (root / "usr" / "sbin").symlink_to("bin")
    for directory in ("etc", "var/log", "var/lib/pacman", "opt", "root", "dev"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "root").chmod(0o700)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    _make_dev_null(root / "dev" / "null")
    if interpreter is not None:
        if not interpreter.startswith("/"):
            raise ValueError(f"interpreter {interpreter!r} must be an absolute path")
        write_stand_in(root / interpreter.lstrip("/"))
    return root


def _make_dev_null(node: Path) -> None:
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.chmod(node, 0o666)
        with node.open("w") as probe:  # fails on a file system mounted nodev
            probe.write("")
        return
    except OSError:
        node.unlink(missing_ok=True)
    node.touch(mode=0o666)
