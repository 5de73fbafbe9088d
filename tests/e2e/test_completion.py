"""Completing what clp knows in real shells, from a clean system state made by real pacman and
clp: installed package names (from pacman's local database, as pacman's own completion reads
them), patch and revert IDs and transaction numbers (from the world-readable index clp keeps)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits import gpgkit, rootkit
from tests.kits.clpkit import make_patch
from tests.kits.hookkit import HookRoot
from tests.kits.paths import REPO
from tests.kits.pkgkit import CACHE, make_package
from tests.kits.shellkit import bash_complete, fish_complete, results, tmux_bash, zsh_complete

COMPLETIONS = REPO / "completions"
BASH = COMPLETIONS / "clp.bash"
PACKAGES = [("openssh", "9.9p1-1"), ("openssl", "3.4.0-1"), ("nvidia-utils", "550.78-1"),
            ("lib32-nvidia-utils", "550.78-1")]  # fmt: skip


def pacman(hroot: HookRoot, *args: str | Path) -> None:
    result = hroot.pacman(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def clp(hroot: HookRoot, *args: str | Path) -> None:
    result = hroot.clp(*args, "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, keyring) -> Iterator[HookRoot]:
    """Four packages installed, a fifth installed then undone, CLPR1 applied, CLPR2 rolled back:
    transactions 1 (openssh, openssl), 2 (demo, undone), 3 (clp's undo of 2), 4 (nvidia)."""
    base = tmp_path_factory.mktemp("completion")
    root = rootkit.make_sandbox_root(base / "root")
    (root / "etc/pacman.d").mkdir(parents=True, exist_ok=True)
    gpgkit.copy_ring(keyring, root / "etc/pacman.d/gnupg")
    hroot = HookRoot(root)

    def build(name: str, version: str) -> Path:
        files = {f"etc/{name}.conf": b"x=1\n", f"usr/share/{name}/VERSION": version.encode()}
        return make_package(root / CACHE, name, version, files)

    (ssh, ssh_version), (ssl, ssl_version), (nv, nv_version), (lib32, lib32_version) = PACKAGES
    pacman(hroot, "-U", build(ssh, ssh_version), build(ssl, ssl_version))
    pacman(hroot, "-U", build("demo", "1.0-1"))
    clp(hroot, "undo-transaction", "2")
    pacman(hroot, "-U", build(nv, nv_version), build(lib32, lib32_version))
    for name in ("CLPR1", "CLPR2"):
        patch = make_patch(base, keyring, "echo patched >> /etc/openssh.conf\n",
                           files=("/etc/openssh.conf",), name=name)  # fmt: skip
        clp(hroot, "apply", patch)
    clp(hroot, "rollback", "CLPR2")
    yield hroot
    gpgkit.kill_agent(root / "etc/pacman.d/gnupg")


def test_bash_completes_installed_package_names_in_an_interactive_shell(system, tmp_path):
    root = str(system.root)
    screen = tmux_bash(
        BASH,
        [
            ["clp --root ", root, " revert nvi", "Tab", "550.78-1", "Enter"],
            ["clp -r ", root, " revert lib32-nvidia-utils=550.78-1 op", "Tab", "Enter"],
            ["clp -r ", root, " revert openss", "Tab", "Tab", "Enter"],
            ["clp unpin --root ", root, " openssh", "Tab", "Enter"],
            ["clp --root ", root, " revert de", "Tab", "Enter"],  # demo was undone: not installed
        ],
        tmp_path,
    )
    assert results(screen) == [
        f"--root {root} revert nvidia-utils 550.78-1",  # the name, then a space
        f"-r {root} revert lib32-nvidia-utils=550.78-1 openss",  # what the two share
        f"-r {root} revert openss",
        f"unpin --root {root} openssh",
        f"--root {root} revert de",
    ]
    listing = [line.split() for line in screen.splitlines()]
    assert ["openssh", "openssl"] in listing  # a second Tab lists both


def test_bash_completes_ids_and_numbers_from_clps_index(system, tmp_path):
    root = str(system.root)
    (tmp_path / "CLPR9.clp").write_bytes(b"")
    offered = bash_complete(
        BASH,
        [
            ["clp", "--root", root, "rollback", ""],
            ["clp", "--root", root, "info", "CLPR"],
            ["clp", "--root", root, "diff", ""],
            ["clp", "--root", root, "diff", "1", ""],
            ["clp", "--root", "=", root, "undo-transaction", ""],
            ["clp", f"--root={root}", "revert", "open"],
            ["clp", "-b", f"{root}/var/lib/pacman", "unpin", "nv"],
            ["clp", "--root", f"{root}/nowhere", "rollback", ""],
        ],
        cwd=tmp_path,
    )
    assert offered[0] == ["CLPR1"]  # applied only: CLPR2 was rolled back, no revert in force
    assert sorted(offered[1]) == ["CLPR1", "CLPR2", "CLPR9.clp"]
    assert offered[2] == ["1", "2", "3", "4"] and offered[3] == ["1", "2", "3", "4"]
    assert offered[4] == ["1", "3", "4"]  # 2 was undone
    assert offered[5] == ["openssh", "openssl"]
    assert offered[6] == ["nvidia-utils"]
    assert offered[7] == []  # no index there: nothing, and no error


def test_a_user_who_cannot_read_clps_state_still_completes(system):
    """The state directory is root's only; the index and pacman's database are not: a copy of
    the two with their modes, where nobody can reach it (pytest's own directory is 0700)."""
    assert (system.root / "var/lib/clp").stat().st_mode & 0o777 == 0o700
    with tempfile.TemporaryDirectory(dir="/tmp") as temporary:
        copy = Path(temporary) / "root"
        for part in ("var/cache/clp", "var/lib/pacman/local"):
            shutil.copytree(system.root / part, copy / part)  # modes copied too
        shutil.copy(BASH, Path(temporary) / "clp.bash")
        Path(temporary).chmod(0o755)
        script = (
            f"source {temporary}/clp.bash; COMP_WORDS=(clp --root {copy} rollback ''); "
            'COMP_CWORD=4; _clp; echo "${COMPREPLY[*]}"; '
            f'COMP_WORDS=(clp --root {copy} revert nv); _clp; echo "${{COMPREPLY[*]}}"'
        )
        run = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "bash", "--norc", "--noprofile", "-c", script],
            capture_output=True, text=True, cwd="/",
        )  # fmt: skip
    assert run.returncode == 0 and not run.stderr, run.stderr
    assert run.stdout.splitlines() == ["CLPR1", "nvidia-utils"]


def test_a_hostile_index_is_only_ever_read_as_words(system, tmp_path):
    """Whatever the file holds, the completion runs nothing from it."""
    root = tmp_path / "root"
    (root / "var/cache/clp").mkdir(parents=True)
    marker = tmp_path / "ran"
    (root / "var/cache/clp/completion-index").write_text(
        f"patch $(touch${{IFS}}{marker}) applied\npatch `touch${{IFS}}{marker}` applied\n"
        "patch * applied\ntransaction ; done\ntransaction 7 done\n"
    )
    lines = [["clp", "--root", str(root), "rollback", ""], ["clp", "--root", str(root), "diff", ""]]
    offered = bash_complete(BASH, lines, cwd=tmp_path)
    assert not marker.exists()
    assert sorted(offered[0]) == sorted(  # literal words, never expanded
        [f"$(touch${{IFS}}{marker})", f"`touch${{IFS}}{marker}`", "*"]
    )
    assert offered[1] == [";", "7"]


missing = {tool: shutil.which(tool) is None for tool in ("zsh", "fish")}


@pytest.mark.skipif(missing["zsh"], reason="zsh not installed (Debian: zsh)")
def test_zsh_completes_packages_ids_and_numbers(system, tmp_path):
    root = str(system.root)
    assert zsh_complete(
        COMPLETIONS,
        [
            f"clp --root {root} revert nvi",
            f"clp -r {root} rollback CL",
            f"clp --root={root} undo-transaction 3",
            f"clp --root {root} info CLPR2",
        ],
        cwd=tmp_path,
    ) == [
        f"--root {root} revert nvidia-utils",
        f"-r {root} rollback CLPR1",
        f"--root={root} undo-transaction 3",
        f"--root {root} info CLPR2",
    ]


@pytest.mark.skipif(missing["fish"], reason="fish not installed (Debian: fish)")
def test_fish_completes_packages_ids_and_numbers(system, tmp_path):
    root = str(system.root)
    offered = fish_complete(
        COMPLETIONS / "clp.fish",
        [
            f"clp --root {root} revert open",
            f"clp --root={root} rollback ",
            f"clp -r {root} undo-transaction ",
            f"clp -r {root} diff 1 ",
        ],
        cwd=tmp_path,
    )
    assert offered == [["openssh", "openssl"], ["CLPR1"], ["1", "3", "4"], ["1", "2", "3", "4"]]
