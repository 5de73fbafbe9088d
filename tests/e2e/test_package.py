"""The PKGBUILD as a user meets it: makepkg builds the package from the checkout, real pacman
installs it into a sandbox root, and the installed `clp` runs there on its own files."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from clp_alpm.config import load_config
from tests.kits import clpctlkit, clpkit, packagekit, rootkit
from tests.kits.paths import REPO

pytestmark = pytest.mark.slow


VERSION = "0.1.0-1"
DEPENDS = ["python", "pyalpm", "python-lxml", "python-click", "powershell-bin", "gnupg"]
MAKEDEPENDS = ["python-build", "python-installer", "python-setuptools", "python-wheel"]
HEALTH_CHECKS = [
    "etc/CLP/health.d/required.d/10-services-back",
    "etc/CLP/health.d/required.d/20-display-manager",
    "etc/CLP/health.d/required.d/30-no-failed-unit-of-the-upgrade",
    "etc/CLP/health.d/wanted.d/50-system-running",
    "etc/CLP/health.d/green.d/90-remember-active-units",
]
BACKUP = ["etc/CLP/clp.conf", "etc/CLP/mirrors", *HEALTH_CHECKS]

# Installed path -> file in the checkout it is a copy of.
INSTALLED_COPIES = {
    "etc/CLP/clp.conf": "etc/clp.conf",
    "etc/CLP/mirrors": "etc/mirrors",
    "usr/share/libalpm/hooks/05-clp-pre.hook": "hooks/05-clp-pre.hook",
    "usr/share/libalpm/hooks/zz-clp-post.hook": "hooks/zz-clp-post.hook",
    "usr/lib/systemd/system/core-livepatch-update.service":
        "systemd/core-livepatch-update.service",
    "usr/lib/systemd/system/core-livepatch-update.timer": "systemd/core-livepatch-update.timer",
    "usr/lib/systemd/system/clp-boot-early.service": "systemd/clp-boot-early.service",
    "usr/lib/systemd/system/clp-boot-check.service": "systemd/clp-boot-check.service",
    **{path: path.replace("etc/CLP/", "", 1) for path in HEALTH_CHECKS},
    "usr/share/bash-completion/completions/clp": "completions/clp.bash",
    "usr/share/zsh/site-functions/_clp": "completions/_clp",
    "usr/share/fish/vendor_completions.d/clp.fish": "completions/clp.fish",
    "usr/share/licenses/clp/LICENSE": "LICENSE",
}  # fmt: skip
MAN_PAGES = ("usr/share/man/man8/clp.8", "usr/share/man/man5/clp.conf.5",
             "usr/share/man/man5/clp-patch.5")  # fmt: skip
EMPTY_DIRS = {"opt/CLP": 0o755, "var/lib/clp": 0o700, "var/cache/clp": 0o755,
              "etc/CLP/health.d/red.d": 0o755}  # fmt: skip
TOP_LEVEL = {"etc", "opt", "usr", "var"}


@pytest.fixture(scope="module")
def package() -> Iterator[Path]:
    """clp's package, built once by makepkg as `nobody` from a copy of the checkout."""
    missing = packagekit.missing_build_requirements()
    if missing:
        pytest.fail(f"makepkg cannot build clp here; install {' '.join(missing)}")
    build_dir = packagekit.make_build_dir(REPO)
    try:
        result = packagekit.makepkg(build_dir)
        assert result.returncode == 0, f"makepkg failed:\n{result.stdout}\n{result.stderr}"
        built = sorted(build_dir.packages.glob(f"*{packagekit.PACKAGE_EXTENSION}"))
        assert [p.name for p in built] == [f"clp-{VERSION}-any{packagekit.PACKAGE_EXTENSION}"]
        yield built[0]
    finally:
        build_dir.cleanup()


@pytest.fixture(scope="module")
def members(package: Path) -> list[str]:
    return packagekit.package_members(package)


@pytest.fixture(scope="module")
def purelib(members: list[str]) -> str:
    """The directory the package installs clp_alpm into (e.g. usr/lib/python3/dist-packages)."""
    inits = [name for name in members if name.endswith("/clp_alpm/__init__.py")]
    assert len(inits) == 1, inits
    return inits[0].removesuffix("/clp_alpm/__init__.py")


@pytest.fixture(scope="module")
def installed(package: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A sandbox root with the package installed by `pacman -U`: (root, its pacman.conf)."""
    base = tmp_path_factory.mktemp("package")
    root = rootkit.make_sandbox_root(base / "root", interpreter=None)
    (root / "var/cache/pacman/pkg").mkdir(parents=True)
    config = base / "pacman.conf"
    config.write_text("[options]\nArchitecture = auto\nSigLevel = Never\n")
    # -dd: python, pyalpm and the rest are not pacman packages in this root. The package's
    # post-transaction hook runs /usr/bin/clp, which cannot start here (no Python in the
    # root yet); pacman reports that and goes on, as the hook does not abort anything.
    result = packagekit.pacman(root, config, "-U", "-dd", str(package))
    assert result.returncode == 0, f"pacman -U failed:\n{result.stdout}\n{result.stderr}"
    return root, config


def man_page(members: list[str], page: str) -> str | None:
    """The member holding `page`, compressed by makepkg or not."""
    return next((name for name in (page, page + ".gz") if name in members), None)


def test_package_holds_every_file(members: list[str], purelib: str) -> None:
    for path in [*INSTALLED_COPIES, "usr/bin/clp", "usr/bin/clpctl", *EMPTY_DIRS]:
        assert path in members, path
    for page in MAN_PAGES:
        assert man_page(members, page), page
    package_dir = REPO / "clp_alpm"
    sources = sorted(str(p.relative_to(package_dir)) for p in package_dir.rglob("*.py"))
    schemas = sorted(str(p.relative_to(package_dir)) for p in package_dir.rglob("*.xsd"))
    assert schemas, "the checkout has no schema to package"
    packaged = [name.removeprefix(f"{purelib}/clp_alpm/") for name in members]
    assert set(sources) <= set(packaged)
    assert set(schemas) <= set(packaged)
    # Nothing but the package's metadata outside the file system's own directories.
    stray = [n for n in members if not n.startswith(".") and n.split("/")[0] not in TOP_LEVEL]
    assert stray == []
    assert not any(name.startswith("usr/local") for name in members)


def test_package_files_belong_to_root(package: Path) -> None:
    for line in packagekit.package_listing(package):
        mode, _links, owner, group, *_size_and_date, name = line.split()
        assert (owner, group) == ("root", "root"), line
        name = name.rstrip("/")
        if name in EMPTY_DIRS:
            assert mode[0] == "d" and _permission_bits(mode) == EMPTY_DIRS[name], line
        if name in ("usr/bin/clp", "usr/bin/clpctl", *HEALTH_CHECKS):
            assert mode == "-rwxr-xr-x", line


def _permission_bits(mode: str) -> int:
    """'drwx------' -> 0o700 (bsdtar -tv shows no setuid, setgid or sticky bits here)."""
    bits = 0
    for char in mode[1:10]:
        bits = bits << 1 | (char != "-")
    return bits


def test_pkginfo_declares_dependencies_and_backups(package: Path) -> None:
    info = packagekit.pkginfo(package)
    assert info["pkgname"] == ["clp"]
    assert info["pkgver"] == [VERSION]
    assert info["arch"] == ["any"]
    assert info["depend"] == DEPENDS
    assert info["makedepend"] == MAKEDEPENDS
    assert info["backup"] == BACKUP
    for field in ("provides", "conflict", "replaces"):
        assert info[field] == ["clpctl"], field


def test_pacman_installs_the_package(installed: tuple[Path, Path], members: list[str]):
    root, config = installed
    assert packagekit.pacman(root, config, "-Q", "clp").stdout == f"clp {VERSION}\n"
    check = packagekit.pacman(root, config, "-Qk", "clp")
    assert check.returncode == 0 and " 0 missing files" in check.stdout, check.stdout
    for installed_path, source in INSTALLED_COPIES.items():
        assert (root / installed_path).read_bytes() == (REPO / source).read_bytes(), source
    for page in MAN_PAGES:
        assert (root / man_page(members, page)).is_file(), page
    for directory, mode in EMPTY_DIRS.items():
        info = (root / directory).stat()
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == mode, directory
        assert (info.st_uid, info.st_gid) == (0, 0), directory
    details = packagekit.pacman(root, config, "-Qii", "clp").stdout
    for path in BACKUP:  # -Qii: pacman tracks the file as a backup file, still unmodified
        assert f"UNMODIFIED\t{root}/{path}\n" in details, details
    assert f"installed clp ({VERSION})" in (root / "var/log/pacman.log").read_text()


def test_installed_clp_runs_inside_the_root(installed: tuple[Path, Path], purelib: str):
    root = installed[0]
    interpreter = packagekit.shebang_interpreter(root / "usr/bin/clp")
    python = packagekit.host_python(interpreter)
    binds = packagekit.python_binds(python, interpreter)
    for host, _inside in binds:
        assert not host.is_relative_to(REPO), f"{host}: the checkout must not reach the root"

    version = packagekit.run_chrooted(root, binds, ["/usr/bin/clp", "--version"])
    assert version.returncode == 0, version.stderr
    assert version.stdout == "clp, version 0.1.0\n"

    where = packagekit.run_chrooted(
        root, binds, [interpreter, "-c", "import clp_alpm; print(clp_alpm.__file__)"]
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout == f"/{purelib}/clp_alpm/__init__.py\n"


# -- over clpctl -------------------------------------------------------------------------------

TIMER = "core-livepatch-update.timer"
ENABLED = f"etc/systemd/system/timers.target.wants/{TIMER}"
ADMIN_SERVER = "https://mirror.example.org/vincent-os/CLP/"


def clpctl_root(base: Path) -> tuple[Path, Path]:
    """A root with the stand-in clpctl 2.1.0-2 installed by pacman, its timer enabled (the
    link `systemctl enable` makes), its mirrors edited, and a patch it installed in /opt/CLP."""
    root = rootkit.make_sandbox_root(base / "root", interpreter=None)
    (root / "var/cache/pacman/pkg").mkdir(parents=True)
    config = base / "pacman.conf"
    config.write_text("[options]\nArchitecture = auto\nSigLevel = Never\n")
    installed = packagekit.pacman(root, config, "-U", str(clpctlkit.clpctl_package(base)))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    (root / ENABLED).parent.mkdir(parents=True)
    (root / ENABLED).symlink_to(f"/usr/lib/systemd/system/{TIMER}")
    mirrors = root / "etc/CLP/mirrors"
    mirrors.write_text(f"Server = {ADMIN_SERVER}\n" + mirrors.read_text())
    archive = clpctlkit.pack_clpctl(
        base / "CLPR1251124.CLP",
        {"PKGINFO.meta": clpctlkit.ini_meta("CLPR1251124"),
         "Install-Patch.ps1": b"true\n", "Remove-Patch.ps1": b"true\n"},
    )  # fmt: skip
    clpctlkit.leave_installed(root / "opt/CLP", archive, "CLPR1251124")
    return root, config


def pacman_over_clpctl(root: Path, config: Path, package: Path):
    """`pacman -U clp`, answering pacman's question "Remove clpctl?" with yes, as a user does
    (--noconfirm alone takes the default, no)."""
    return packagekit.pacman(root, config, "-U", "-dd", "--ask=4", str(package))


def test_pacman_replaces_clpctl(package: Path, tmp_path: Path) -> None:
    root, config = clpctl_root(tmp_path)
    # the administrator kept a copy, as README's "Moving from clpctl" says
    shutil.copy2(root / "etc/CLP/mirrors", root / "etc/CLP/mirrors.clpctl")
    result = pacman_over_clpctl(root, config, package)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removing clpctl" in result.stdout
    # clpctl is gone; what provides it now is clp
    assert packagekit.pacman(root, config, "-Q", "clpctl").stdout == f"clp {VERSION}\n"
    assert packagekit.pacman(root, config, "-Qq").stdout == "clp\n"
    assert packagekit.pacman(root, config, "-Qk", "clp").returncode == 0
    # clp's files where clpctl's were
    for unit in ("core-livepatch-update.service", TIMER):
        assert (root / f"usr/lib/systemd/system/{unit}").read_bytes() == (
            REPO / f"systemd/{unit}"
        ).read_bytes()
    assert (root / "usr/bin/clpctl").is_file()
    assert not (root / "usr/share/libalpm/hooks/90-core-livepatch.hook").exists()
    # the enabled timer stays enabled: the link leads to clp's unit
    link = root / ENABLED
    assert link.is_symlink()
    assert (root / os.readlink(link).lstrip("/")).read_bytes() == (
        REPO / f"systemd/{TIMER}"
    ).read_bytes()
    # the administrator's server is kept; both of clpctl's are clp's defaults
    configured = load_config(root).servers
    assert configured[0] == "https://repo.v38armageddon.net/vincent-os/CLP"
    assert configured[1] == "https://repo-fallback.v38armageddon.net/vincent-os/CLP"
    assert ADMIN_SERVER in configured
    assert f":: clp: kept the server {ADMIN_SERVER}" in result.stdout
    assert ":: clp: the patches clpctl installed in /opt/CLP are adopted" in result.stdout
    # the patch clpctl installed is adopted by the first clp run
    listed = clpkit.run_clp("--root", str(root), "list", "--json")
    assert listed.returncode == 0, listed.stderr
    patches = [(p["id"], p["state"], p["origin"]) for p in json.loads(listed.stdout)]
    assert patches == [("CLPR1251124", "applied", "clpctl")]


def test_pacman_over_clpctl_names_shadowing_units(package: Path, tmp_path: Path) -> None:
    root, config = clpctl_root(tmp_path)
    admin = root / "etc/systemd/system"
    (admin / TIMER).write_bytes(clpctlkit.SCRIPTS_TIMER)  # as Vincent OS's scripts package
    result = pacman_over_clpctl(root, config, package)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f":: clp: /etc/systemd/system/{TIMER} overrides clp's /usr/lib/systemd/system/{TIMER}\n"
        f"   fix: rm /etc/systemd/system/{TIMER} && systemctl daemon-reload && "
        f"systemctl reenable {TIMER}\n"
    ) in result.stdout
    assert "core-livepatch-update.service overrides" not in result.stdout


def test_noconfirm_alone_keeps_clpctl(package: Path, tmp_path: Path) -> None:
    """pacman's default answer to "Remove clpctl?" is no: nothing changes."""
    root, config = clpctl_root(tmp_path)
    result = packagekit.pacman(root, config, "-U", "-dd", str(package))
    assert result.returncode == 1
    assert "clp and clpctl are in conflict" in result.stdout + result.stderr
    assert packagekit.pacman(root, config, "-Q", "clpctl").stdout == "clpctl 2.1.0-2\n"
    assert ADMIN_SERVER in (root / "etc/CLP/mirrors").read_text()
