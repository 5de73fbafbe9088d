"""The other tools' pacman hooks, for bench/hooks.py section 4, and a btrfs loop image for them.

Neither etckeeper's pacman hooks nor snap-pac are packaged on Debian: the hook files here are
written after what Arch's packages install (etckeeper: `etckeeper pre-install` before and
`etckeeper post-install` after every transaction; snap-pac: a snapper pre snapshot before and
a post snapshot after, for every config in /etc/conf.d/snapper, the pre snapshot's number kept
in a file of /tmp between the two). The snap-pac stand-in is a small Python script, as snap-pac
is, so that it pays for an interpreter start as snap-pac does. The packages' hooks also say
`Depends = etckeeper` / `snap-pac`, which libalpm checks against the root's packages: left out,
as no package in these roots provides the tools.

libalpm runs hooks chrooted into the root, so a PeerRoot also bind-mounts the host's /usr/bin
(etckeeper is a shell script calling git, perl, ps, pacman ...; snapper; python3) and the data
directories perl and git read, read-only, over the root's own (busybox) /usr/bin.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.kits.hookkit import HookRoot

HOOK_DIR = "usr/share/libalpm/hooks"

_TRIGGER = """\
[Trigger]
Operation = Install
Operation = Upgrade
Operation = Remove
Type = Package
Target = *
"""

ETCKEEPER_HOOKS = {
    "05-etckeeper-pre-install.hook": _TRIGGER + """
[Action]
Description = etckeeper: pre transaction commit
When = PreTransaction
Exec = /usr/bin/etckeeper pre-install
AbortOnFail
""",
    "zz-etckeeper-post-install.hook": _TRIGGER + """
[Action]
Description = etckeeper: post transaction commit
When = PostTransaction
Exec = /usr/bin/etckeeper post-install
""",
}  # fmt: skip

SNAP_PAC_SCRIPT_PATH = "usr/share/libalpm/scripts/snap-pac"

SNAP_PAC_HOOKS = {
    "05-snap-pac-pre.hook": _TRIGGER + f"""
[Action]
Description = Performing snapper pre snapshots for the following configurations...
When = PreTransaction
Exec = /{SNAP_PAC_SCRIPT_PATH} pre
AbortOnFail
NeedsTargets
""",
    "zz-snap-pac-post.hook": _TRIGGER + f"""
[Action]
Description = Performing snapper post snapshots for the following configurations...
When = PostTransaction
Exec = /{SNAP_PAC_SCRIPT_PATH} post
NeedsTargets
""",
}  # fmt: skip

# What snap-pac does, written for this benchmark (no line of snap-pac's own).
SNAP_PAC_SCRIPT = """\
#!/usr/bin/python3
# snap-pac stand-in (clp's bench/peers.py): `pre` makes a snapper pre snapshot for every config
# of /etc/conf.d/snapper and keeps its number in /tmp; `post` makes the matching post snapshot.
import os
import subprocess
import sys
from pathlib import Path


def configs():
    for line in Path("/etc/conf.d/snapper").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "SNAPPER_CONFIGS":
            return value.strip().strip('"').split()
    return []


def main():
    when = sys.argv[1]
    sys.stdin.read()  # NeedsTargets: the transaction's packages
    pacman = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    description = pacman.replace(b"\\0", b" ").decode(errors="replace").strip()[:72]
    for config in configs():
        kept = Path(f"/tmp/snap-pac-pre_{config}")
        command = ["snapper", "--no-dbus", "-c", config, "create", "--type", when,
                   "--cleanup-algorithm", "number", "--print-number",
                   "--description", description]
        if when == "post":
            if not kept.exists():
                print(f"==> {config}: no pre snapshot to pair with", file=sys.stderr)
                continue
            command += ["--pre-number", kept.read_text().strip()]
        number = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        if when == "pre":
            kept.write_text(number.strip() + "\\n")
        else:
            kept.unlink()
        print(f"==> {config}: {number.strip()}")


main()
"""


def host_binds() -> list[Path]:
    """What etckeeper, snapper and the snap-pac stand-in need of the host in the root."""
    wanted = ["/usr/bin", "/usr/share/perl", "/usr/share/perl5", "/usr/share/git-core",
              "/dev/urandom", "/dev/random"]  # fmt: skip
    return [Path(path) for path in wanted if Path(path).exists()]


class PeerRoot(HookRoot):
    """A HookRoot whose pacman runs another tool's hooks instead of clp's."""

    def __init__(self, root: Path, hooks: dict[str, str]) -> None:
        super().__init__(root)
        hook_dir = root / HOOK_DIR
        for hook in hook_dir.glob("*.hook"):
            hook.unlink()
        for name, text in hooks.items():
            (hook_dir / name).write_text(text)
        self.binds = host_binds()
        for host in self.binds:  # mount points for them
            target = root / str(host).lstrip("/")
            if host.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()

    def _mounts(self) -> list[str]:
        lines = super()._mounts()
        for directory in self.binds:
            source = shlex.quote(str(directory))
            target = shlex.quote(str(self.root / str(directory).lstrip("/")))
            lines += [f"mount --bind {source} {target}", f"mount -o remount,bind,ro {target}"]
        return lines

    def chroot(self, *command: str, env: dict[str, str] | None = None) -> str:
        """`command` chrooted into the root, as its hooks run; its stdout, or a RuntimeError."""
        result = self.run("chroot", self.root, *command, env=env)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise RuntimeError(f"{' '.join(command)} in {self.root} failed: {output}")
        return result.stdout


# --------------------------------------------------------------------- etckeeper

GIT_CONFIG = """\
[user]
\tname = Bench
\temail = bench@localhost
[gc]
\tautoDetach = false
"""


def etckeeper_env() -> dict[str, str]:
    """pacman's environment for an etckeeper root: HOME is the root's /root (its .gitconfig)."""
    return {"HOME": "/root"}


def setup_etckeeper(hroot: PeerRoot) -> None:
    """etckeeper as Arch installs it (its configuration with pacman as the package manager) and
    a repository in etc/, packed, as a long-used one is. A committer identity and git's
    automatic gc in the foreground (else its work would leak into the next measurement)."""
    etc = hroot.root / "etc"
    shutil.copytree("/etc/etckeeper", etc / "etckeeper", symlinks=True)
    conf = etc / "etckeeper/etckeeper.conf"
    lines = []
    for line in conf.read_text().splitlines():
        if line.startswith(("HIGHLEVEL_PACKAGE_MANAGER=", "LOWLEVEL_PACKAGE_MANAGER=")):
            line = line.split("=", 1)[0] + "=pacman"
        lines.append(line)
    conf.write_text("\n".join(lines) + "\n")
    (hroot.root / "root/.gitconfig").write_text(GIT_CONFIG)
    env = etckeeper_env()
    hroot.chroot("etckeeper", "init", env=env)
    hroot.chroot("etckeeper", "commit", "initial commit", env=env)
    hroot.chroot("git", "-C", "/etc", "gc", "--quiet", env=env)


def etckeeper_commits(hroot: PeerRoot) -> list[str]:
    """The subjects of the root's etc/ repository, newest first."""
    log = hroot.chroot("git", "-C", "/etc", "log", "--format=%s", env=etckeeper_env())
    return log.splitlines()


# --------------------------------------------------------------------- snapper on btrfs


def btrfs_missing() -> str | None:
    """Why there can be no btrfs loop image here, or None."""
    for tool in ("mkfs.btrfs", "btrfs", "losetup", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: btrfs-progs, mount)"
    if "btrfs" not in Path("/proc/filesystems").read_text():
        return "the kernel has no btrfs"
    return None


@contextlib.contextmanager
def btrfs_image(directory: Path, size_gib: int = 4) -> Iterator[Path]:
    """A sparse btrfs image in `directory`, loop-mounted at directory/mnt for the block: its
    mount point. Unmounted, detached and removed afterwards, whatever happened (Ctrl-C too)."""
    image = directory / "btrfs.img"
    mount_point = directory / "mnt"
    mount_point.mkdir(parents=True)
    with image.open("wb") as sparse:
        sparse.truncate(size_gib << 30)
    device = ""
    mounted = False
    try:
        subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
        device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                                capture_output=True, text=True).stdout.strip()  # fmt: skip
        subprocess.run(["mount", device, str(mount_point)], check=True, capture_output=True)
        mounted = True
        yield mount_point
    finally:
        if mounted and subprocess.run(["umount", str(mount_point)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount_point)])
        if device:
            subprocess.run(["losetup", "--detach", device])
        image.unlink(missing_ok=True)


def make_subvolume(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["btrfs", "subvolume", "create", str(path)], check=True, capture_output=True)


class SnapperConfigs:
    """The snapper configs this run creates on the host (/etc/snapper/configs, SNAPPER_CONFIGS
    in /etc/default/snapper), each deleted again by close() with its snapshots."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self, hroot: PeerRoot) -> str:
        """A snapper config for the root (a btrfs subvolume), the host's made by `snapper
        create-config` and the root's own a copy of it naming "/" (as the hooks see the root
        chrooted); the snap-pac stand-in and its hooks in the root. Its name."""
        name = f"clpbench{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        subprocess.run(["snapper", "--no-dbus", "-c", name, "create-config", str(hroot.root)],
                       check=True, capture_output=True, text=True)  # fmt: skip
        # only the hooks' snapshots: none by the timeline (were snapper's timers running)
        subprocess.run(["snapper", "--no-dbus", "-c", name, "set-config", "TIMELINE_CREATE=no"],
                       check=True, capture_output=True, text=True)  # fmt: skip
        configs = hroot.root / "etc/snapper/configs"
        configs.mkdir(parents=True, exist_ok=True)
        text = Path(f"/etc/snapper/configs/{name}").read_text()
        (configs / name).write_text(text.replace(f'SUBVOLUME="{hroot.root}"', 'SUBVOLUME="/"'))
        (hroot.root / "etc/conf.d").mkdir(parents=True, exist_ok=True)
        (hroot.root / "etc/conf.d/snapper").write_text(f'SNAPPER_CONFIGS="{name}"\n')
        script = hroot.root / SNAP_PAC_SCRIPT_PATH
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(SNAP_PAC_SCRIPT)
        script.chmod(0o755)
        return name

    @staticmethod
    def pairs(name: str) -> tuple[int, int, int]:
        """(pre snapshots, post snapshots, post snapshots naming an existing pre) of config
        `name`, as the host's `snapper list` shows them."""
        listed = subprocess.run(
            ["snapper", "--no-dbus", "--csvout", "-c", name, "list", "--columns",
             "number,type,pre-number"], check=True, capture_output=True, text=True,
        ).stdout.splitlines()[1:]  # fmt: skip
        rows = [line.split(",") for line in listed]
        pres = {number for number, kind, _ in rows if kind == "pre"}
        posts = [pre for _, kind, pre in rows if kind == "post"]
        return len(pres), len(posts), sum(pre in pres for pre in posts)

    def close(self) -> list[str]:
        """Delete every config created (and its snapshots); what could not be deleted."""
        left = []
        for name in self.names:
            deleted = subprocess.run(["snapper", "--no-dbus", "-c", name, "delete-config"],
                                     capture_output=True, text=True)  # fmt: skip
            if deleted.returncode != 0:  # its subvolume gone: take the host's entries out
                Path(f"/etc/snapper/configs/{name}").unlink(missing_ok=True)
                for sysconfig in (Path("/etc/default/snapper"), Path("/etc/conf.d/snapper")):
                    if sysconfig.exists():
                        text = sysconfig.read_text()
                        sysconfig.write_text(re.sub(rf"(SNAPPER_CONFIGS=\"[^\"]*)\b{name}\b ?",
                                                    r"\1", text))  # fmt: skip
                left.append(f"{name}: snapper delete-config: {deleted.stderr.strip()}")
        self.names.clear()
        return left


def fs_type(path: Path) -> str:
    """The file system `path` is on, as findmnt names it (ext4, btrfs, tmpfs ...)."""
    result = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)],
                            capture_output=True, text=True)  # fmt: skip
    return result.stdout.strip() or os.path.basename(str(path))
