"""clp_alpm.system's pacman modules (pacmanconf, localdb, syncdb, depcheck, pacman) against real
pacman, repo-add and pyalpm in throwaway roots."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from clp_alpm.config import Config
from clp_alpm.errors import ConfigError, LockError, OperationFailed, UsageError
from clp_alpm.system.depcheck import DependencyProblem, check_revert_set, suggest_together
from clp_alpm.system.libalpm import installed_package
from clp_alpm.system.localdb import installed_versions
from clp_alpm.system.pacman import pacman_upgrade, refuse_if_pacman_runs
from clp_alpm.system.pacmanconf import pacman_settings, read_pacman_conf
from clp_alpm.system.syncdb import (
    offered_versions,
    private_dbpath,
    refresh_private_copy,
    sync_versions,
)
from tests.kits import rootkit
from tests.kits.pkgkit import make_package, pacman_install


def build_package(
    directory: Path,
    name: str,
    version: str,
    depends: tuple[str, ...] = (),
    provides: tuple[str, ...] = (),
    conflicts: tuple[str, ...] = (),
    files: dict[str, bytes] | None = None,
) -> Path:
    """Like pkgkit.make_package, with depend/provides/conflict lines in .PKGINFO."""
    files = files or {}
    lines = [
        f"pkgname = {name}", f"pkgbase = {name}", f"pkgver = {version}", "pkgdesc = test",
        f"builddate = {int(time.time())}", "packager = Tests <tests@localhost>",
        f"size = {sum(len(data) for data in files.values())}", "arch = any",
        *(f"depend = {item}" for item in depends),
        *(f"provides = {item}" for item in provides),
        *(f"conflict = {item}" for item in conflicts),
    ]  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-any.pkg.tar.xz"
    with tarfile.open(path, "w:xz") as archive:
        for member, data in [(".PKGINFO", ("\n".join(lines) + "\n").encode()), *files.items()]:
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return path


def simple_package(
    directory: Path, name: str, version: str, files: dict[str, bytes] | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return make_package(directory, name, version, files)


def make_root(path: Path, conf: str = "[options]\nSigLevel = Never\n") -> Path:
    (path / "var/lib/pacman").mkdir(parents=True)
    (path / "etc/pacman.d").mkdir(parents=True)
    (path / "var/log").mkdir(parents=True)
    if conf is not None:
        (path / "etc/pacman.conf").write_text(conf)
    return path


def query(root: Path) -> dict[str, str]:
    """What `pacman -Q` says is installed (it exits 1 when nothing is)."""
    result = subprocess.run(
        ["pacman", "-Q", "--root", str(root), "--dbpath", str(root / "var/lib/pacman")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0 or not result.stdout, result.stderr
    return dict(line.split() for line in result.stdout.splitlines())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root")


@pytest.fixture
def config(root: Path) -> Config:
    return Config(root=root)


# --- pacman.conf ---------------------------------------------------------------------------------


def test_settings_read_cache_gpg_siglevels_and_ignore(root: Path, config: Config) -> None:
    (root / "etc/pacman.conf").write_text(
        "# comment\n[options]\nCacheDir = /srv/cache/ /var/cache/pacman/pkg/\n"
        "CacheDir = /mnt/more\nGPGDir = /etc/keys\nSigLevel = Required DatabaseOptional\n"
        "LocalFileSigLevel = Optional\nRemoteFileSigLevel = Required\n"
        "IgnorePkg = linux nvidia-utils\nIgnorePkg = mesa\nColor\n\n[core]\n"
        "Server = https://mirror.example/$repo/os/$arch\n[extra]\nServer = file:///srv\n"
    )
    extra = Path("/host/extra-cache")
    settings = pacman_settings(config, extra_cache_dirs=[extra])
    assert settings.conf == root / "etc/pacman.conf"
    assert settings.root == root and settings.dbpath == root / "var/lib/pacman"
    assert settings.cache_dirs == (
        extra, root / "srv/cache", root / "var/cache/pacman/pkg", root / "mnt/more",
    )  # fmt: skip
    assert settings.gpgdir == root / "etc/keys"
    assert settings.siglevel == "Required DatabaseOptional"
    assert settings.local_file_siglevel == "Optional"
    assert settings.remote_file_siglevel == "Required"
    assert settings.ignore_pkgs == ("linux", "nvidia-utils", "mesa")
    assert settings.repos == ("core", "extra")
    assert settings.hook_dirs == (root / "etc/pacman.d/hooks",)


def test_the_list_options_are_pycmans(root: Path, config: Config) -> None:
    """clp keeps its own copy of the names (pycman's package loads libalpm and its commands):
    the same names, and each one accumulates over lines, split on whitespace."""
    from pycman.config import LIST_OPTIONS as PYCMANS

    from clp_alpm.system.pacmanconf import LIST_OPTIONS

    assert frozenset(PYCMANS) == LIST_OPTIONS
    (root / "etc/pacman.conf").write_text(
        "[options]\nHookDir = /etc/a /etc/b\nHookDir = /etc/c\nIgnorePkg = x\nIgnorePkg = y z\n"
        "GPGDir = /etc/k1\nGPGDir = /etc/k2\n"
    )
    settings = pacman_settings(config)
    assert settings.hook_dirs == (root / "etc/a", root / "etc/b", root / "etc/c")
    assert settings.ignore_pkgs == ("x", "y", "z")
    assert settings.gpgdir == root / "etc/k2"  # a single option: the last line counts


def test_missing_pacman_conf_means_defaults(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", conf=None)
    settings = pacman_settings(Config(root=root))
    assert settings.cache_dirs == (root / "var/cache/pacman/pkg",)
    assert settings.gpgdir == root / "etc/pacman.d/gnupg"
    assert (settings.local_file_siglevel, settings.remote_file_siglevel) == ("", "")
    assert settings.ignore_pkgs == () and settings.includes == () and settings.repos == ()
    with pytest.raises(ConfigError, match="nowhere.conf: file not found"):
        pacman_settings(Config(root=root), pacman_conf=tmp_path / "nowhere.conf")


def test_include_is_resolved_under_the_root_not_on_the_host(root: Path, config: Config) -> None:
    name = f"clp-test-{os.getpid()}"
    assert not Path(f"/etc/pacman.d/{name}-a.conf").exists()
    (root / "etc/pacman.conf").write_text(
        f"[options]\nIgnorePkg = first\nInclude = /etc/pacman.d/{name}-*.conf\n"
        "IgnorePkg = last\n[core]\nInclude = /etc/pacman.d/mirrorlist\n"
    )
    (root / f"etc/pacman.d/{name}-b.conf").write_text("IgnorePkg = from-b\n")
    (root / f"etc/pacman.d/{name}-a.conf").write_text("# pins\nIgnorePkg = from-a\n")
    (root / "etc/pacman.d/mirrorlist").write_text("Server = file:///srv/$repo\n")
    settings = pacman_settings(config)
    assert settings.ignore_pkgs == ("first", "from-a", "from-b", "last")
    assert settings.includes == (f"/etc/pacman.d/{name}-*.conf",)
    assert settings.repos == ("core",)
    servers = [
        e.value for e in read_pacman_conf(root, root / "etc/pacman.conf") if e.section == "core"
    ]
    assert servers == ["/etc/pacman.d/mirrorlist", "file:///srv/$repo"]


def test_a_section_opened_in_an_include_stays_open_as_in_pacman(root: Path, config: Config) -> None:
    (root / "etc/pacman.conf").write_text(
        "[options]\nInclude = /etc/pacman.d/repo.conf\nIgnorePkg = after\n"
    )
    (root / "etc/pacman.d/repo.conf").write_text("[testing]\nServer = file:///x\n")
    settings = pacman_settings(config)
    assert settings.ignore_pkgs == () and settings.repos == ("testing",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("IgnorePkg = x\n[options]\n", "pacman.conf:1: 'IgnorePkg' is outside any section"),
        (
            "[options]\nInclude = /etc/none-*.conf\n",
            "pacman.conf:2: Include /etc/none-\\*.conf: no",
        ),
        ("[options]\nInclude = relative.conf\n", "pacman.conf:2: Include needs an absolute path"),
        ("[options]\nInclude = /etc/../../x\n", "pacman.conf:2: .*must not contain '..'"),
        ("[]\n", "pacman.conf:1: empty section name"),
    ],
)
def test_bad_pacman_conf_names_file_and_line(
    root: Path, config: Config, text: str, message: str
) -> None:
    (root / "etc/pacman.conf").write_text(text)
    with pytest.raises(ConfigError, match=message):
        pacman_settings(config)


def test_include_loops_and_non_utf8_are_refused(root: Path, config: Config) -> None:
    (root / "etc/pacman.conf").write_text("[options]\nInclude = /etc/pacman.conf\n")
    with pytest.raises(ConfigError, match="nested more than 10 deep"):
        pacman_settings(config)
    (root / "etc/pacman.conf").write_bytes(b"[options]\nIgnorePkg = caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        pacman_settings(config)


def test_glob_characters_in_the_root_path_are_not_globs(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root[1]", conf="[options]\nInclude = /etc/pacman.d/*.conf\n")
    (root / "etc/pacman.d/pins.conf").write_text("IgnorePkg = pinned\n")
    assert pacman_settings(Config(root=root)).ignore_pkgs == ("pinned",)


# --- the local database --------------------------------------------------------------------------


def test_installed_package_with_depends_and_required_by(
    root: Path, config: Config, tmp_path: Path
) -> None:
    pkgs = tmp_path / "pkgs"
    pacman_install(
        root,
        build_package(pkgs, "libfoo", "2.0-1", provides=("libfoo.so=2-64",)),
        build_package(pkgs, "app", "1.0-1", depends=("libfoo>=2.0",)),
        build_package(pkgs, "tool", "3-1", depends=("libfoo.so=2-64",)),
    )
    libfoo = installed_package(config, "libfoo")
    assert libfoo is not None
    assert (libfoo.name, libfoo.version, libfoo.depends) == ("libfoo", "2.0-1", ())
    assert libfoo.provides == ("libfoo.so=2-64",)
    assert libfoo.required_by == ("app", "tool")
    app = installed_package(config, "app")
    assert app is not None and app.depends == ("libfoo>=2.0",) and app.required_by == ()
    assert installed_package(config, "missing") is None
    assert installed_versions(config.host_dbpath, ["app", "missing"]) == {
        "app": "1.0-1",
        "missing": None,
    }


def test_no_database_means_nothing_installed(tmp_path: Path) -> None:
    config = Config(root=tmp_path)
    assert installed_versions(config.host_dbpath, ["a"]) == {"a": None}
    assert installed_package(config, "a") is None


# --- planning a revert ---------------------------------------------------------------------------


@pytest.fixture
def nvidia(root: Path, tmp_path: Path) -> Path:
    """Installed: nvidia-utils 550 (provides libgl), settings =550, xorg needing >=550."""
    pkgs = tmp_path / "pkgs"
    pacman_install(
        root,
        build_package(pkgs, "nvidia-utils", "550.78-1", provides=("libgl", "opencl-driver=3")),
        build_package(pkgs, "nvidia-settings", "550.78-1", depends=("nvidia-utils=550.78",)),
        build_package(pkgs, "xorg-server", "21.1-1", depends=("nvidia-utils>=550", "libgl")),
    )
    return tmp_path / "old"


def test_a_clean_downgrade_has_no_problems(root: Path, config: Config, tmp_path: Path) -> None:
    pkgs = tmp_path / "pkgs"
    pacman_install(
        root,
        build_package(pkgs, "libfoo", "2.0-1"),
        build_package(pkgs, "app", "1.0-1", depends=("libfoo>=1.0", "libfoo<3")),
    )
    old = build_package(tmp_path / "old", "libfoo", "1.5-1")
    assert check_revert_set(config, [old]) == []


def test_an_installed_package_needing_the_newer_version(config: Config, nvidia: Path) -> None:
    old = build_package(nvidia, "nvidia-utils", "545.29-1", provides=("libgl",))
    problems = check_revert_set(config, [old])
    assert [p.describe() for p in problems] == [
        "nvidia-settings needs nvidia-utils=550.78 but the revert brings 545.29-1",
        "xorg-server needs nvidia-utils>=550 but the revert brings 545.29-1",
    ]
    assert problems[0] == DependencyProblem(
        package="nvidia-settings", needs="nvidia-utils=550.78", offered="545.29-1",
        reverted=("nvidia-utils", "545.29-1"), installed="550.78-1",
    )  # fmt: skip


def test_a_provides_satisfies_a_dependency(root: Path, config: Config, tmp_path: Path) -> None:
    pkgs = tmp_path / "pkgs"
    pacman_install(
        root,
        build_package(pkgs, "nvidia-utils", "550.78-1", provides=("libgl",)),
        build_package(pkgs, "mesa-demos", "9-1", depends=("libgl",)),
    )
    # mesa-demos needs `libgl`, which only nvidia-utils provides
    keeps = build_package(tmp_path / "a", "nvidia-utils", "545.29-1", provides=("libgl",))
    assert check_revert_set(config, [keeps]) == []
    drops = build_package(tmp_path / "b", "nvidia-utils", "540.1-1")
    assert [p.describe() for p in check_revert_set(config, [drops])] == [
        "mesa-demos needs libgl, which nvidia-utils 540.1-1 does not provide"
    ]


def test_a_versioned_provides_is_compared(root: Path, config: Config, tmp_path: Path) -> None:
    pkgs = tmp_path / "pkgs"
    pacman_install(
        root,
        build_package(pkgs, "ocl-icd", "2.3-1", provides=("opencl-icd-loader=2.3",)),
        build_package(pkgs, "gpu-tool", "1-1", depends=("opencl-icd-loader>=2",)),
    )
    ok = build_package(tmp_path / "a", "ocl-icd", "2.2-1", provides=("opencl-icd-loader=2.2",))
    assert check_revert_set(config, [ok]) == []
    too_old = build_package(tmp_path / "b", "ocl-icd", "1.9-1", provides=("opencl-icd-loader=1.9",))
    unversioned = build_package(tmp_path / "c", "ocl-icd", "1.8-1", provides=("opencl-icd-loader",))
    assert [p.describe() for p in check_revert_set(config, [too_old])] == [
        "gpu-tool needs opencl-icd-loader>=2 but the revert brings "
        "opencl-icd-loader=1.9 (from ocl-icd)"
    ]
    assert [p.describe() for p in check_revert_set(config, [unversioned])] == [
        "gpu-tool needs opencl-icd-loader>=2 but the revert brings "
        "opencl-icd-loader without a version (from ocl-icd)"
    ]


def test_a_reverted_package_needing_what_the_system_lacks(
    root: Path, config: Config, tmp_path: Path
) -> None:
    pkgs = tmp_path / "pkgs"
    pacman_install(
        root, build_package(pkgs, "libbar", "2.1-1"), build_package(pkgs, "libfoo", "2-1")
    )
    old = build_package(tmp_path / "old", "libfoo", "1-1", depends=("libbar<2", "nothere>=1"))
    problems = check_revert_set(config, [old])
    assert [p.describe() for p in problems] == [
        "libfoo 1-1 needs libbar<2 but the system would have libbar 2.1-1",
        "libfoo 1-1 needs nothere>=1, which nothing installed provides",
    ]
    assert all(p.in_revert for p in problems)
    assert suggest_together(problems, {"libbar": ["1.9-1", "1.8-1", "2.0-1"]}) is None
    fixable = problems[:1]
    assert suggest_together(fixable, {"libbar": ["1.8-1", "1.9-1", "2.0-1"]}) == (
        "clp revert libfoo=1-1 libbar=1.9-1"
    )


def test_the_pair_reverted_together_is_clean(config: Config, nvidia: Path) -> None:
    utils = build_package(nvidia, "nvidia-utils", "545.29-1", provides=("libgl",))
    problems = check_revert_set(config, [utils])
    line = suggest_together(problems, {"nvidia-settings": ["545.29-1", "550.78-1"],
                                       "xorg-server": ["21.0-1", "21.1-1"]})  # fmt: skip
    assert line == "clp revert nvidia-utils=545.29-1 nvidia-settings=545.29-1 xorg-server=21.0-1"
    assert suggest_together(problems, {"nvidia-settings": ["545.29-1"]}) is None
    settings = build_package(
        nvidia, "nvidia-settings", "545.29-1", depends=("nvidia-utils=545.29",)
    )
    xorg = build_package(nvidia, "xorg-server", "21.0-1", depends=("nvidia-utils", "libgl"))
    assert check_revert_set(config, [utils, settings, xorg]) == []


def test_a_system_broken_before_the_revert_is_not_blamed_on_it(
    root: Path, config: Config, tmp_path: Path
) -> None:
    pkgs = tmp_path / "pkgs"
    pacman_install(root, build_package(pkgs, "libfoo", "2-1"))
    subprocess.run(
        ["pacman", "-U", "--noconfirm", "--nodeps", "--nodeps", "--root", str(root), "--dbpath",
         str(root / "var/lib/pacman"), "--config", str(root / "etc/pacman.conf"),
         str(build_package(pkgs, "app", "1-1", depends=("gone",)))],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert check_revert_set(config, [build_package(tmp_path / "old", "libfoo", "1-1")]) == []


def test_unreadable_or_duplicate_package_files_are_refused(
    root: Path, config: Config, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pkg.tar.xz"
    garbage.write_bytes(b"not a package")
    with pytest.raises(UsageError, match="garbage.pkg.tar.xz: cannot load the package"):
        check_revert_set(config, [garbage])
    with pytest.raises(UsageError, match="missing.pkg.tar.xz: cannot load the package"):
        check_revert_set(config, [tmp_path / "missing.pkg.tar.xz"])
    one = build_package(tmp_path / "a", "libfoo", "1-1")
    two = build_package(tmp_path / "b", "libfoo", "2-1")
    with pytest.raises(UsageError, match="a second package file for libfoo"):
        check_revert_set(config, [one, two])
    assert check_revert_set(config, []) == []


def children() -> list[str]:
    """The commands of this process's children, living or not yet waited for."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rfind(")") + 2 :].split()[1]) == os.getpid():
            found.append(text[text.find("(") + 1 : text.rfind(")")])
    return found


def test_the_package_files_are_read_while_libalpm_loads_and_each_error_stays_its_own(
    tmp_path: Path,
) -> None:
    """bsdtar reads .PKGINFO while libalpm loads the local database: a database libalpm
    refuses is still the error named (not the package bsdtar could not read), and no bsdtar
    is left behind, whichever fails."""
    root = make_root(tmp_path / "root")
    (root / "var/lib/pacman/local/foo-1-1").mkdir(parents=True)  # no ALPM_DB_VERSION: refused
    garbage = tmp_path / "garbage.pkg.tar.xz"
    garbage.write_bytes(b"not a package")
    good = build_package(tmp_path / "pkgs", "libfoo", "1-1")
    for files in ([garbage], [good], [good, garbage]):
        with pytest.raises(ConfigError, match="cannot open the pacman database"):
            check_revert_set(Config(root=root), files)
        assert "bsdtar" not in children()
    (root / "var/lib/pacman/local/foo-1-1").rmdir()
    with pytest.raises(UsageError, match="garbage.pkg.tar.xz: cannot load the package"):
        check_revert_set(Config(root=root), [good, garbage, good])
    assert "bsdtar" not in children()
    assert check_revert_set(Config(root=root), [good]) == []


# --- the commit ----------------------------------------------------------------------------------


def test_pacman_upgrade_downgrades(root: Path, config: Config, tmp_path: Path) -> None:
    pkgs = tmp_path / "pkgs"
    pacman_install(root, simple_package(pkgs, "nvidia-utils", "550.78-1", {"usr/lib/nv": b"550"}))
    old = simple_package(tmp_path / "old", "nvidia-utils", "545.29-1", {"usr/lib/nv": b"545"})
    pacman_upgrade(pacman_settings(config), [old])
    assert query(root) == {"nvidia-utils": "545.29-1"}
    assert installed_versions(config.host_dbpath, ["nvidia-utils"]) == {"nvidia-utils": "545.29-1"}
    assert (root / "usr/lib/nv").read_bytes() == b"545"
    assert (root / "var/log/pacman.log").is_file()  # pacman's log inside the root


def test_a_file_conflict_fails_with_pacmans_words(
    root: Path, config: Config, tmp_path: Path
) -> None:
    pkgs = tmp_path / "pkgs"
    pacman_install(
        root,
        simple_package(pkgs, "libfoo", "2-1", {"usr/lib/foo": b"2"}),
        simple_package(pkgs, "other", "1-1", {"usr/lib/other": b"o"}),
    )
    old = simple_package(tmp_path / "old", "libfoo", "1-1", {"usr/lib/other": b"mine"})
    with pytest.raises(OperationFailed) as failure:
        pacman_upgrade(pacman_settings(config), [old])
    message = str(failure.value)
    assert message.startswith("pacman -U failed: failed to commit transaction (conflicting files)")
    assert (
        "libfoo: " in message and "usr/lib/other exists in filesystem (owned by other)" in message
    )
    assert "\n" not in message
    assert query(root) == {"libfoo": "2-1", "other": "1-1"}
    assert (root / "usr/lib/other").read_bytes() == b"o"
    assert not (Path(config.host_dbpath) / "db.lck").exists()


def test_a_missing_dependency_fails_and_keeps_the_installed_version(
    root: Path, config: Config, tmp_path: Path
) -> None:
    pacman_install(root, build_package(tmp_path / "pkgs", "libfoo", "2-1"))
    old = build_package(tmp_path / "old", "libfoo", "1-1", depends=("nothere>=1",))
    with pytest.raises(OperationFailed, match=(
        r"failed to prepare transaction \(could not satisfy dependencies\).*"
        r"unable to satisfy dependency 'nothere>=1' required by libfoo"
    )):  # fmt: skip
        pacman_upgrade(pacman_settings(config), [old])
    assert query(root) == {"libfoo": "2-1"}


def test_pacman_upgrade_refuses_missing_files_and_a_held_lock(
    root: Path, config: Config, tmp_path: Path
) -> None:
    settings = pacman_settings(config)
    with pytest.raises(UsageError, match="no package files"):
        pacman_upgrade(settings, [])
    with pytest.raises(UsageError, match="gone.pkg.tar.xz: no such package file"):
        pacman_upgrade(settings, [tmp_path / "gone.pkg.tar.xz"])
    refuse_if_pacman_runs(settings.dbpath)
    (root / "var/lib/pacman/db.lck").touch()
    package = simple_package(tmp_path, "x", "1-1")
    running = f"{root}/var/lib/pacman/db.lck exists but no pacman is running"
    with pytest.raises(LockError, match=re.escape(running)):
        pacman_upgrade(settings, [package])
    assert query(root) == {}


def test_pacman_upgrade_under_a_root_uses_the_roots_includes_and_hooks(tmp_path: Path) -> None:
    """With --root, pacman itself would glob Include and look for /etc/pacman.d/hooks on the
    host: the target's pins file and its initramfs hooks are what must count."""
    root = rootkit.make_sandbox_root(tmp_path / "root", interpreter=None)
    (root / "etc/pacman.d/hooks").mkdir(parents=True)
    (root / "etc/pacman.conf").write_text(
        "[options]\nSigLevel = Never\nInclude = /etc/pacman.d/clp-pins.conf\n"
    )
    (root / "etc/pacman.d/clp-pins.conf").write_text("IgnorePkg = nvidia-utils\n")
    (root / "etc/pacman.d/hooks/90-initramfs.hook").write_text(
        "[Trigger]\nOperation = Install\nOperation = Upgrade\nType = Package\n"
        "Target = nvidia-utils\n\n[Action]\nWhen = PostTransaction\n"
        "Exec = /usr/bin/touch /initramfs-rebuilt\n"
    )
    package = simple_package(tmp_path / "pkgs", "nvidia-utils", "545.29-1")
    pacman_upgrade(pacman_settings(Config(root=root)), [package])
    assert query(root) == {"nvidia-utils": "545.29-1"}
    assert (root / "initramfs-rebuilt").is_file()


def test_pacman_upgrade_passes_the_environment(tmp_path: Path) -> None:
    root = rootkit.make_sandbox_root(tmp_path / "root", interpreter=None)
    (root / "usr/share/libalpm/hooks").mkdir(parents=True)
    (root / "usr/share/libalpm/hooks/env.hook").write_text(
        "[Trigger]\nOperation = Install\nType = Package\nTarget = *\n\n[Action]\n"
        "When = PostTransaction\nExec = /bin/sh -c 'echo \"$CLP_TEST_MARK\" > /mark'\n"
    )
    pacman_upgrade(
        pacman_settings(Config(root=root)), [simple_package(tmp_path, "x", "1-1")],
        env={"CLP_TEST_MARK": "from-clp"},
    )  # fmt: skip
    assert (root / "mark").read_text() == "from-clp\n"


def test_pacman_upgrade_that_runs_too_long_is_interrupted(tmp_path: Path) -> None:
    root = rootkit.make_sandbox_root(tmp_path / "root", interpreter=None)
    (root / "usr/share/libalpm/hooks").mkdir(parents=True)
    (root / "usr/share/libalpm/hooks/slow.hook").write_text(
        "[Trigger]\nOperation = Install\nType = Package\nTarget = *\n\n[Action]\n"
        "When = PreTransaction\nExec = /usr/bin/sleep 3\n"
    )
    started = time.monotonic()
    with pytest.raises(OperationFailed, match="did not finish within 0.5 s"):
        pacman_upgrade(
            pacman_settings(Config(root=root)), [simple_package(tmp_path, "x", "1-1")], timeout=0.5
        )
    assert time.monotonic() - started < 20
    assert "x" not in query(root)
    assert not (root / "var/lib/pacman/db.lck").exists()


# --- sync databases ------------------------------------------------------------------------------


def test_sync_versions_reads_the_sync_dbs_without_network(
    root: Path, config: Config, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, version in (("nvidia-utils", "555.58-2"), ("other", "1-1")):
        subprocess.run(
            ["repo-add", "-q", str(repo / "testrepo.db.tar.gz"),
             str(simple_package(repo, name, version))],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    subprocess.run(
        ["repo-add", "-q", str(repo / "extra.db.tar.gz"),
         str(simple_package(repo / "x", "nvidia-utils", "556.1-1"))],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (root / "etc/pacman.conf").write_text(
        "[options]\nSigLevel = Never\n[testrepo]\nServer = file:///nonexistent\n"
        "[extra]\nServer = file:///nonexistent\n[absent]\nServer = file:///nonexistent\n"
    )
    settings = pacman_settings(config)
    assert sync_versions(config, settings, "nvidia-utils") == []  # no database yet
    (root / "var/lib/pacman/sync").mkdir()
    shutil.copy(repo / "testrepo.db.tar.gz", root / "var/lib/pacman/sync/testrepo.db")
    shutil.copy(repo / "extra.db.tar.gz", root / "var/lib/pacman/sync/extra.db")
    assert sync_versions(config, settings, "nvidia-utils") == ["556.1-1", "555.58-2"]
    assert sync_versions(config, settings, "other") == ["1-1"]
    assert sync_versions(config, settings, "missing") == []
    (root / "var/lib/pacman/sync/extra.db").write_bytes(b"corrupt")
    assert sync_versions(config, settings, "nvidia-utils") == ["555.58-2"]


def publish(repo: Path, name: str, version: str, stamp: float) -> None:
    """Add a package to `repo`'s testrepo database, dated `stamp` (pacman asks a mirror only
    for a database newer than its own, to the second)."""
    database = repo / "testrepo.db.tar.gz"
    subprocess.run(["repo-add", "-q", str(database), str(simple_package(repo, name, version))],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    for path in (database, repo / "testrepo.db"):
        os.utime(path, (stamp, stamp))


def sync_files(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def test_offered_versions_reads_pacmans_databases_and_clps_copy(
    root: Path, config: Config, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (root / "etc/pacman.conf").write_text(
        f"[options]\nSigLevel = Never\n[testrepo]\nServer = file://{repo}\n"
    )
    settings = pacman_settings(config)
    publish(repo, "demo", "2.0-1", time.time())
    (root / "var/lib/pacman/sync").mkdir()
    shutil.copy(repo / "testrepo.db.tar.gz", root / "var/lib/pacman/sync/testrepo.db")
    publish(repo, "demo", "3.0-1", time.time())
    publish(repo, "other", "1-1", time.time())
    private = private_dbpath(config)
    assert private == root / "var/lib/clp/sync"
    (private / "sync").mkdir(parents=True)
    shutil.copy(repo / "testrepo.db.tar.gz", private / "sync/testrepo.db")
    names = ["demo", "other", "missing"]
    assert offered_versions(config, settings, names, [settings.dbpath]) == {"demo": ["2.0-1"]}
    assert offered_versions(config, settings, names, [settings.dbpath, private]) == {
        "demo": ["3.0-1", "2.0-1"],
        "other": ["1-1"],
    }
    assert offered_versions(config, settings, names, [tmp_path / "nowhere"]) == {}


def test_the_private_refresh_leaves_pacmans_databases_alone(
    root: Path, config: Config, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    conf = f"[options]\nSigLevel = Never\n[testrepo]\nServer = file://{repo}\n"
    (root / "etc/pacman.conf").write_text(conf)
    settings = pacman_settings(config)
    publish(repo, "demo", "2.0-1", time.time() - 100)
    (root / "var/lib/pacman/sync").mkdir()
    shutil.copy2(repo / "testrepo.db.tar.gz", root / "var/lib/pacman/sync/testrepo.db")
    before = sync_files(root / "var/lib/pacman/sync")
    publish(repo, "demo", "3.0-1", time.time())
    private = refresh_private_copy(config, settings)
    assert sync_files(root / "var/lib/pacman/sync") == before
    assert offered_versions(config, settings, ["demo"], [private]) == {"demo": ["3.0-1"]}
    assert [p.name for p in private.iterdir() if p.name.startswith("refresh-")] == []
    assert not (root / "var/log/pacman.log").exists()  # a private refresh is not logged

    copied = sync_files(private / "sync")
    (root / "etc/pacman.conf").write_text(conf.replace(str(repo), f"{repo}-gone"))
    with pytest.raises(OperationFailed, match="pacman -Sy failed: .*testrepo"):
        refresh_private_copy(config, pacman_settings(config))
    assert sync_files(private / "sync") == copied  # a failed refresh keeps the copy as it was


def test_a_private_refresh_is_bounded_in_time(root: Path, config: Config) -> None:
    """A mirror that accepts the connection and never answers: pacman is interrupted."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        (root / "etc/pacman.conf").write_text(
            f"[options]\nSigLevel = Never\n[testrepo]\nServer = http://127.0.0.1:{port}/\n"
        )
        started = time.monotonic()
        with pytest.raises(OperationFailed, match="did not finish within 1 s"):
            refresh_private_copy(config, pacman_settings(config), timeout=1)
    assert time.monotonic() - started < 20
    assert not (private_dbpath(config) / "sync/testrepo.db").exists()


def test_local_db_read_directly_agrees_with_libalpm(tmp_path: Path) -> None:
    """The hooks read installed versions with a listdir; libalpm must agree, epochs and
    dashed names included, and stray entries (ALPM_DB_VERSION) must not count."""
    import pyalpm

    from clp_alpm.system.localdb import installed_versions as read_local
    from tests.kits.pkgkit import make_package, pacman_install

    root = tmp_path / "root"
    (root / "var/lib/pacman").mkdir(parents=True)
    (root / "etc").mkdir()
    packages = [make_package(tmp_path, "lib32-gcc-libs", "13.2.1-3"),
                make_package(tmp_path, "python-click", "1:8.1.7-2"),
                make_package(tmp_path, "a", "0.1rc1-1.1")]  # fmt: skip
    pacman_install(root, *packages)
    dbpath = root / "var/lib/pacman"
    names = ["lib32-gcc-libs", "python-click", "a", "gcc-libs", "python", "ALPM_DB_VERSION"]
    localdb = pyalpm.Handle(str(root), str(dbpath)).get_localdb()
    expected = {n: (p.version if (p := localdb.get_pkg(n)) else None) for n in names}
    assert read_local(dbpath, names) == expected
    assert expected["python-click"] == "1:8.1.7-2" and expected["python"] is None
    assert read_local(tmp_path / "nowhere", ["a"]) == {"a": None}
    (dbpath / "local/stray-1.0-1").write_text("")  # a file is no package, for libalpm too
    assert read_local(dbpath, ["stray"]) == {"stray": None}
