"""clp's own pacman package for tests: built by makepkg as an unprivileged user from a copy of
the checkout, read with bsdtar, and run inside a root that real pacman installed it into.

makepkg refuses to run as root, and pytest's temporary directories are private to root, so the
build happens in a directory of its own under the system's temporary directory, owned by the
user `nobody`. The Python running inside the root is the host's: its interpreter, standard
library, shared libraries and click are bind-mounted read-only into the root in a private mount
namespace, and nothing of the checkout or of the test virtualenv is.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
PACKAGE_EXTENSION = ".pkg.tar.zst"
BUILD_USER = "nobody"

# What makepkg needs on a Debian host, by the command or module that is missing.
BUILD_REQUIREMENTS = {
    "makepkg": "makepkg",
    "fakeroot": "fakeroot",
    "bsdtar": "libarchive-tools",
    "zstd": "zstd",
    "python": "python-is-python3",
    "git": "git",
}
PYTHON_BUILD_MODULES = {
    "build": "python3-build",
    "installer": "python3-installer",
    "setuptools": "python3-setuptools",
    "wheel": "python3-wheel",
}


def missing_build_requirements() -> list[str]:
    """The Debian packages makepkg would miss to build clp ('' when none is missing)."""
    missing = [
        package
        for command, package in BUILD_REQUIREMENTS.items()
        if shutil.which(command, path=SYSTEM_PATH) is None
    ]
    python = shutil.which("python", path=SYSTEM_PATH)
    if python is not None:
        for module, package in PYTHON_BUILD_MODULES.items():
            probe = subprocess.run(
                [python, "-I", "-c", f"import {module}"], capture_output=True, timeout=30
            )
            if probe.returncode != 0:
                missing.append(package)
    return missing


def source_files(repo: Path) -> list[str]:
    """The checkout's files as git sees them: tracked ones and untracked, not ignored ones."""
    listing = subprocess.run(
        ["git", "-C", str(repo), "-c", f"safe.directory={repo}", "ls-files", "-z", "--cached",
         "--others", "--exclude-standard"],
        check=True, capture_output=True, timeout=30,
    ).stdout  # fmt: skip
    names = [name for name in listing.decode().split("\0") if name]
    # A file deleted in the work tree but not yet in the index is still listed: skip it.
    return [name for name in names if os.path.lexists(repo / name)]


def copy_source_tree(repo: Path, destination: Path) -> None:
    for name in source_files(repo):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target, follow_symlinks=False)


@dataclass(frozen=True)
class BuildDir:
    """A build area owned by BUILD_USER: the source copy, HOME, and makepkg's directories."""

    path: Path
    uid: int
    gid: int

    @property
    def source(self) -> Path:
        return self.path / "src"

    @property
    def packages(self) -> Path:
        return self.path / "packages"

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def make_build_dir(repo: Path) -> BuildDir:
    """A fresh directory outside pytest's root-only tree holding a copy of the checkout."""
    user = pwd.getpwnam(BUILD_USER)
    path = Path(tempfile.mkdtemp(prefix="clp-makepkg-"))
    build_dir = BuildDir(path, user.pw_uid, user.pw_gid)
    for name in ("home", "packages", "sources", "build"):
        (path / name).mkdir()
    copy_source_tree(repo, build_dir.source)
    for parent, dirs, files in os.walk(path):
        for name in (parent, *(os.path.join(parent, entry) for entry in dirs + files)):
            os.lchown(name, build_dir.uid, build_dir.gid)
    return build_dir


def makepkg(build_dir: BuildDir, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`makepkg -d --noconfirm` in the source copy, as BUILD_USER with a clean environment.

    DEB_PYTHON_INSTALL_LAYOUT=deb makes Debian's Python install into its system layout
    (/usr/bin, /usr/lib/python3/dist-packages) instead of /usr/local; other Pythons ignore it.
    """
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": str(build_dir.path / "home"),
        "LANG": "C.UTF-8",
        "PKGDEST": str(build_dir.packages),
        "SRCDEST": str(build_dir.path / "sources"),
        "BUILDDIR": str(build_dir.path / "build"),
        "PKGEXT": PACKAGE_EXTENSION,
        "PACKAGER": "clp tests <tests@localhost>",
        "DEB_PYTHON_INSTALL_LAYOUT": "deb",
    }
    return subprocess.run(
        ["setpriv", f"--reuid={build_dir.uid}", f"--regid={build_dir.gid}", "--clear-groups",
         "makepkg", "-d", "--noconfirm", "--nocolor"],
        cwd=build_dir.source, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def package_listing(package: Path) -> list[str]:
    """`bsdtar -tvf` lines: mode, links, owner, group, size, date, name."""
    return subprocess.run(
        ["bsdtar", "-tvf", str(package)], check=True, capture_output=True, text=True, timeout=60
    ).stdout.splitlines()


def package_members(package: Path) -> list[str]:
    """The member names, directories without their trailing slash."""
    listing = subprocess.run(
        ["bsdtar", "-tf", str(package)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [line.rstrip("/") for line in listing.splitlines() if line]


def pkginfo(package: Path) -> dict[str, list[str]]:
    """The package's .PKGINFO as {key: [values in order]}."""
    text = subprocess.run(
        ["bsdtar", "-xOf", str(package), ".PKGINFO"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or " = " not in line:
            continue
        key, value = line.split(" = ", 1)
        fields.setdefault(key, []).append(value)
    return fields


def pacman(
    root: Path, config: Path, *args: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Real pacman on `root`, with the root's own database, cache and log."""
    return subprocess.run(
        ["pacman", "--noconfirm", "--root", str(root), "--dbpath", str(root / "var/lib/pacman"),
         "--config", str(config), "--cachedir", str(root / "var/cache/pacman/pkg"), *args],
        capture_output=True, text=True, timeout=120, check=check, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def shebang_interpreter(script: Path) -> str:
    """The absolute interpreter path on a script's #! line (no arguments expected but the
    -S of clp's launcher)."""
    first = script.read_bytes().split(b"\n", 1)[0].decode()
    words = first[2:].split()
    if not first.startswith("#!/") or words[1:] not in ([], ["-S"]):
        raise ValueError(f"{script}: unexpected first line {first!r}")
    return words[0]


@dataclass(frozen=True)
class HostPython:
    """Where the host's interpreter keeps what it needs to run: all absolute host paths."""

    executable: Path
    stdlib: Path
    library_dirs: tuple[Path, ...]
    click: Path


_PROBE = """\
import json, sysconfig, click, os
multiarch = sysconfig.get_config_var("MULTIARCH") or ""
print(json.dumps({"stdlib": sysconfig.get_paths()["stdlib"], "multiarch": multiarch,
                  "click": os.path.dirname(click.__file__)}))
"""


def host_python(interpreter: str) -> HostPython:
    """Ask the host's `interpreter` (isolated from the environment) where its parts are."""
    probe = subprocess.run(
        [interpreter, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        raise RuntimeError(f"{interpreter} cannot import click (python3-click): {probe.stderr}")
    found = json.loads(probe.stdout)
    if not found["multiarch"]:
        raise RuntimeError(f"{interpreter} has no multiarch library directory (not Debian?)")
    library_dirs = [Path("/usr/lib") / found["multiarch"], Path("/usr/lib64")]
    return HostPython(
        executable=Path(os.path.realpath(interpreter)),
        stdlib=Path(os.path.realpath(found["stdlib"])),
        library_dirs=tuple(Path(os.path.realpath(d)) for d in library_dirs if d.exists()),
        click=Path(os.path.realpath(found["click"])),
    )


def python_binds(python: HostPython, interpreter: str) -> list[tuple[Path, str]]:
    """(host path, path in the root) pairs that let `interpreter` run inside a root."""
    binds: list[tuple[Path, str]] = [(python.executable, interpreter)]
    binds += [(directory, str(directory)) for directory in python.library_dirs]
    binds.append((python.stdlib, str(python.stdlib)))
    binds.append((python.click, str(python.click)))
    return binds


def prepare_mount_points(root: Path, binds: Sequence[tuple[Path, str]]) -> None:
    """Create each bind's mount point in `root`, refusing to hide anything already there."""
    for usr_link, target in (("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if not os.path.lexists(root / usr_link):
            (root / usr_link).symlink_to(target)
    for host, inside in binds:
        point = root / inside.lstrip("/")
        if host.is_dir():
            if point.exists() and any(point.iterdir()):
                raise RuntimeError(f"binding {host} on {point} would hide the root's files")
            point.mkdir(parents=True, exist_ok=True)
        else:
            if point.exists() and point.stat().st_size:
                raise RuntimeError(f"binding {host} on {point} would hide the root's file")
            point.parent.mkdir(parents=True, exist_ok=True)
            point.touch()


_CHROOT_SCRIPT = """\
root=$1; shift
while [ "$1" != -- ]; do mount -o bind,ro "$1" "$root$2"; shift 2; done
shift
exec chroot "$root" "$@"
"""


def run_chrooted(
    root: Path, binds: Sequence[tuple[Path, str]], argv: Sequence[str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `argv` chrooted into `root` in a private mount namespace with `binds` read-only.

    The mounts vanish with the namespace when the command ends; the environment is minimal so
    that nothing of the caller's (PYTHONPATH, a virtualenv) reaches the program.
    """
    prepare_mount_points(root, binds)
    pairs = [part for host, inside in binds for part in (str(host), inside)]
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-euc", _CHROOT_SCRIPT, "sh",
         str(root), *pairs, "--", *argv],
        env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
