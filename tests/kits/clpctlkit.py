"""What clpctl leaves on a machine, made the way clpctl's own code makes it.

clpctl 2.0 (Vincent-OS/clpctl, src/CLP.Packager/ClpPackager.cs) packs a patch directory as a
gzip'd tar, the top-level files at the top; `clpctl update` extracts a feed patch with
`tar -xzf PATCH -C /opt/CLP/<Name>`, `clpctl install FILE` with `tar -xzf FILE -C
/opt/CLP/<FILE>`, and both run Install-Patch.ps1 there. clpctl keeps no other state.
The package is the stand-in for clpctl 2.1.0-2 of Vincent-OS/repo: its file list, with
contents of our own (no .NET here): the two units, the hook that enables the timer, and
/etc/CLP/mirrors with the two servers clpctl 2.1's UpdateCommand.cs lists.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

# clpctl 2.1's servers (src/CLP.CLI/Commands/UpdateCommand.cs: serversList)
CLPCTL_SERVERS = (
    "https://repo.v38armageddon.net/vincent-os/CLP/",
    "https://repo-fallback.v38armageddon.net/vincent-os/CLP/",
)
CLPCTL_VERSION = "2.1.0-2"
CLPCTL_FILES = (
    "usr/bin/clpctl",
    "etc/CLP/mirrors",
    "usr/lib/systemd/system/core-livepatch-update.service",
    "usr/lib/systemd/system/core-livepatch-update.timer",
    "usr/share/libalpm/hooks/90-core-livepatch.hook",
)
CLPCTL_SERVICE = (
    b"[Unit]\nDescription=Core LivePatch Update Service\nAfter=network.target\n\n"
    b"[Service]\nType=oneshot\nExecStart=/usr/bin/clpctl update\nUser=root\n\n"
    b"[Install]\nWantedBy=multi-user.target\n"
)
CLPCTL_TIMER = (
    b"[Unit]\nDescription=Core LivePatch Update Scheduler\n\n"
    b"[Timer]\nOnCalendar=*-*-* 12:00:00\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
)
CLPCTL_HOOK = (
    b"[Trigger]\nType = Package\nOperation = Install\nOperation = Upgrade\nTarget = clpctl\n\n"
    b"[Action]\nDescription = Enabling Core LivePatch systemd timer...\n"
    b"When = PostTransaction\nExec = /usr/bin/systemctl enable core-livepatch-update.timer\n"
)
# What the `scripts` package of Vincent OS puts in /etc/systemd/system (src/systemd/)
SCRIPTS_TIMER = (
    b"[Unit]\nDescription=Core LivePatch Update Scheduler\n\n"
    b"[Timer]\nOnCalendar=*-*-*12:00:00\nPersistent=true\n\n[Install]\nWantedBy=timers.target"
)


def clpctl_package(directory: Path) -> Path:
    """The stand-in clpctl 2.1.0-2 package (its mirrors file is not a backup file)."""
    mirrors = "".join(f"Server = {server}\n" for server in CLPCTL_SERVERS).encode()
    contents = {
        "usr/bin/clpctl": b"#!/bin/sh\necho 'clpctl 2.1 stand-in'\n",
        "etc/CLP/mirrors": mirrors,
        "usr/lib/systemd/system/core-livepatch-update.service": CLPCTL_SERVICE,
        "usr/lib/systemd/system/core-livepatch-update.timer": CLPCTL_TIMER,
        "usr/share/libalpm/hooks/90-core-livepatch.hook": CLPCTL_HOOK,
    }
    assert tuple(contents) == CLPCTL_FILES
    pkginfo = (
        f"pkgname = clpctl\npkgbase = clpctl\npkgver = {CLPCTL_VERSION}\n"
        f"pkgdesc = CLI Interface for Core LivePatch\nurl = https://github.com/Vincent-OS/clpctl\n"
        f"builddate = {int(time.time())}\npackager = Tests <tests@localhost>\n"
        f"size = {sum(map(len, contents.values()))}\narch = any\nlicense = MS-PL\n"
    ).encode()
    path = directory / f"clpctl-{CLPCTL_VERSION}-any.pkg.tar.xz"
    with tarfile.open(path, "w:xz") as archive:
        for name, data in [(".PKGINFO", pkginfo), *contents.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(time.time())
            info.mode = 0o755 if name == "usr/bin/clpctl" else 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def pack_clpctl(path: Path, files: dict[str, bytes]) -> Path:
    """A .CLP as clpctl 2.0's CreateClpFile makes it: tar.gz, top-level files at the top."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return path


def pack_zip(path: Path, files: dict[str, bytes]) -> Path:
    """A .clp as clpctl 2.1 reads it (a plain zip; clpctl 2.1 itself makes none)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def leave_installed(patch_dir_root: Path, archive: Path, dir_name: str) -> Path:
    """Extract `archive` into /opt/CLP/<dir_name> as clpctl does: up to 2.0 with
    `tar -xzf ARCHIVE -C DIR`, 2.1 with ZipFile.ExtractToDirectory (a zip)."""
    target = patch_dir_root / dir_name
    target.mkdir(parents=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(target)
    else:
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(target)], check=True)
    return target


def ini_meta(name: str, description: str = "Example CLP Patch") -> bytes:
    """PKGINFO.meta as clpctl's example has it (the INI form, no trailing newline)."""
    return (
        f"[Package]\nName={name}\nVersion=1\nArchitecture=any\nDescription={description}"
    ).encode()
