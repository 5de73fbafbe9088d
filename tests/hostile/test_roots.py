"""Symlinked roots: with `--root R`, clp's own directories (and their parents) as links out of
R, dangling links, a link in place of the trash or a patch directory, and declared paths whose
parent is a link onto clp's own files. Every case is refused with one line naming the path, and
nothing changes in R nor in the canary outside it, where a followed link would have led."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kits.clpkit import INSTALL_OK, PATCH_ID, make_patch
from tests.kits.hookkit import HookRoot
from tests.kits.hostilekit import Fence, assert_refused
from tests.kits.pkgkit import CACHE, make_package


def link(root: Path, rel: str, target: str) -> None:
    """Put a symbolic link to `target` at R/rel, in place of whatever is there."""
    path = root / rel
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def climbing_out(rel: str) -> str:
    """A relative link at R/rel to the canary beside R: up past the root, then across."""
    return "../" * (rel.count("/") + 1) + "canary"


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Path, Path], None]  # (root, canary)
    command: tuple[str, ...]  # after --root R; "PATCH" is the signed patch's path
    naming: str | tuple[str, ...]
    applied_first: bool = False  # apply the good patch before the hostile setup
    files: tuple[str, ...] = ("/etc/app.conf",)
    code: int = 2


def out(rel: str, where: str = "") -> Callable[[Path, Path], None]:
    return lambda root, canary: link(root, rel, str(canary / where) if where else str(canary))


def up(rel: str) -> Callable[[Path, Path], None]:
    return lambda root, canary: link(root, rel, climbing_out(rel))


def inside(rel: str, target: str) -> Callable[[Path, Path], None]:
    return lambda root, canary: link(root, rel, target)


APPLY = ("apply", "PATCH", "--noconfirm")
ROLLBACK = ("rollback", PATCH_ID, "--noconfirm")

OWN_DIRS_OUT = [
    Case("PatchDir-absolute", out("opt/CLP"), APPLY, "opt/CLP is a symbolic link"),
    Case("PatchDir-parent-absolute", out("opt"), APPLY, "/opt is a symbolic link"),
    Case("PatchDir-climbing-out", up("opt/CLP"), APPLY, "opt/CLP is a symbolic link"),
    Case("StateDir-absolute", out("var/lib/clp"), APPLY, "var/lib/clp is a symbolic link"),
    Case("StateDir-climbing-out", up("var/lib/clp"), APPLY, "var/lib/clp is a symbolic link"),
    Case("StateDir-parent-absolute", out("var/lib"), APPLY, "var/lib is a symbolic link"),
    Case("StateDir-grandparent-climbing", up("var"), APPLY, "/var is a symbolic link"),
    Case("snapshot-store-absolute", out("var/lib/clp/snapshots"), APPLY, "snapshots is a symbolic"),
    Case("state-db-to-a-host-file", out("var/lib/clp/clp.db", "etc/keep"), APPLY, "clp.db is a"),
    Case("state-wal-to-a-host-file", out("var/lib/clp/clp.db-wal", "etc/keep"), APPLY, "db-wal"),
    Case("log-dir-absolute", out("var/log"), APPLY, "var/log is a symbolic link"),
    Case("log-dir-climbing-out", up("var/log"), APPLY, "var/log is a symbolic link"),
    Case("log-dir-dangling", inside("var/log", "../nowhere/log"), APPLY, "dangling symbolic"),
    Case("cache-dir-absolute", out("var/cache/clp"), APPLY, "var/cache/clp is a symbolic link"),
    Case("cache-parent-climbing", up("var/cache"), APPLY, "var/cache is a symbolic link"),
    Case("pacman-db-absolute", out("var/lib/pacman"), APPLY, "var/lib/pacman is a symbolic"),
    Case("keyring-absolute", out("etc/pacman.d/gnupg"), APPLY, "gnupg is a symbolic link"),
    Case("config-dir-absolute", out("etc/CLP"), APPLY, "etc/CLP is a symbolic link"),
    Case("config-file-to-a-host-file", out("etc/CLP/clp.conf", "etc/keep"), APPLY, "clp.conf"),
    Case("patch-dir-dangling", inside(f"opt/CLP/{PATCH_ID}", "gone"), APPLY, PATCH_ID),
    Case("patch-dir-absolute", out(f"opt/CLP/{PATCH_ID}"), APPLY, PATCH_ID),
]

READ_ONLY = [
    Case("list-StateDir-absolute", out("var/lib/clp"), ("list",), "var/lib/clp is a symbolic"),
    Case("list-state-db-to-a-host-file", out("var/lib/clp/clp.db", "etc/x"), ("list",), "clp.db"),
    Case("status-log-dir-absolute", out("var/log"), ("status",), "var/log is a symbolic link"),
    Case("list-PatchDir-climbing-out", up("opt/CLP"), ("list", "--json"), "opt/CLP is a symbolic"),
    Case("transactions-cache-absolute", out("var/cache/clp"), ("transactions",), "var/cache/clp"),
]

# every other writing command opens the same session, which resolves clp's paths first
OTHER_COMMANDS = [
    Case(
        "revert-StateDir-absolute",
        out("var/lib/clp"),
        ("revert", "demo", "1.0-1", "--noconfirm"),
        "var/lib/clp is a symbolic",
    ),  # fmt: skip
    Case(
        "undo-transaction-log-climbing",
        up("var/log"),
        ("undo-transaction", "1", "--noconfirm"),
        "var/log is a symbolic",
    ),  # fmt: skip
    Case("recover-PatchDir-absolute", out("opt/CLP"), ("recover",), "opt/CLP is a symbolic"),
    Case("diff-StateDir-climbing", up("var/lib/clp"), ("diff", "1"), "var/lib/clp is a symbolic"),
]


def _moved_patch_dir(root: Path, canary: Path) -> None:
    """The applied patch's directory moved inside the root, a relative link left in its place."""
    (root / "srv").mkdir(exist_ok=True)
    os.rename(root / "opt/CLP" / PATCH_ID, root / "srv" / PATCH_ID)
    (root / "opt/CLP" / PATCH_ID).symlink_to(f"../../srv/{PATCH_ID}")


def on_rollback(case_id: str, setup: Callable[[Path, Path], None], naming: str) -> Case:
    return Case(case_id, setup, ROLLBACK, naming, applied_first=True)


def conf(rel: str, text: str, linked: str, to: str = "etc/keep") -> Callable[[Path, Path], None]:
    """R/rel holding `text`, whose R/linked is a link to the canary's `to`."""

    def setup(root: Path, canary: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        link(root, linked, str(canary / to))

    return setup


PACMAN_CONF_INCLUDE = "[options]\nInclude = /etc/pacman.d/extra.conf\n"
PACMAN_CACHE_DIR = "[options]\nCacheDir = /var/cache/pacman/pkg/\n"
CLP_CONF_INCLUDE = "[options]\nInclude = /etc/CLP/more.conf\n"
CONFIGURATION = [
    Case(
        "pacman-conf-include-out",
        conf("etc/pacman.conf", PACMAN_CONF_INCLUDE, "etc/pacman.d/extra.conf"),
        ("-v", "list"),
        "extra.conf is a symbolic",
    ),  # fmt: skip
    Case(
        "pacman-cache-dir-out",
        conf("etc/pacman.conf", PACMAN_CACHE_DIR, "var/cache/pacman/pkg", "etc"),
        ("-v", "list"),
        "pkg is a symbolic link",
    ),  # fmt: skip
    Case(
        "clp-conf-include-out",
        conf("etc/CLP/clp.conf", CLP_CONF_INCLUDE, "etc/CLP/more.conf"),
        ("list",),
        "more.conf is a symbolic link",
    ),  # fmt: skip
]

ROLLBACKS = [
    on_rollback("trash-absolute", out("opt/CLP/.trash", "etc"), ".trash is a symbolic link"),
    on_rollback("trash-inside", inside("opt/CLP/.trash", "../../etc"), ".trash is a symbolic"),
    on_rollback("trash-dangling", inside("opt/CLP/.trash", "nowhere"), ".trash is a symbolic"),
    on_rollback("patch-dir-swapped-absolute", out(f"opt/CLP/{PATCH_ID}"), PATCH_ID),
    on_rollback("patch-dir-swapped-inside", _moved_patch_dir, PATCH_ID),
    on_rollback("rollback-StateDir-absolute", out("var/lib/clp"), "var/lib/clp is a symbolic"),
]

OWN = "which is clp's own"


def alias(case_id: str, target: str, declared: str) -> Case:
    """A patch declaring `declared`, below /srv/x, a link inside the root to `target`."""
    return Case(case_id, inside("srv/x", target), APPLY, OWN, files=(declared,))


def _chain(root: Path, canary: Path) -> None:
    link(root, "srv/a", "x")
    link(root, "srv/x", "../var")


ALIASES = [
    alias("alias-state-db", "../var/lib/clp", "/srv/x/clp.db"),
    alias("alias-lock", "../var/lib/clp", "/srv/x/lock"),
    alias("alias-snapshot", "../var/lib/clp/snapshots", "/srv/x/objects/aa/bb"),
    alias("alias-state-grandparent", "../var", "/srv/x/lib/clp/clp.db"),
    alias("alias-log", "../var/log", "/srv/x/CLP.log"),
    alias("alias-pacman-lock", "../var/lib/pacman", "/srv/x/db.lck"),
    alias("alias-pacman-local-db", "../var/lib/pacman/local", "/srv/x/ALPM_DB_VERSION"),
    alias("alias-patch-dir", "../opt/CLP", f"/srv/x/{PATCH_ID}/Install-Script.ps1"),
    alias("alias-trash", "../opt/CLP", "/srv/x/.trash"),
    alias("alias-keyring", "../etc/pacman.d/gnupg", "/srv/x/pubring.gpg"),
    alias("alias-completion-index", "../var/cache/clp", "/srv/x/completion-index"),
    Case("alias-through-a-chain", _chain, APPLY, OWN, files=("/srv/a/lib/clp/clp.db",)),
    Case(
        "declared-parent-out",
        out("srv/x"),
        APPLY,
        "srv/x is a symbolic link",
        files=("/srv/x/app.conf",),
    ),  # fmt: skip
    Case(
        "declared-parent-climbing-out",
        up("srv/x"),
        APPLY,
        "srv/x is a symbolic link",
        files=("/srv/x/app.conf",),
    ),  # fmt: skip
]

CASES = OWN_DIRS_OUT + READ_ONLY + OTHER_COMMANDS + CONFIGURATION + ROLLBACKS + ALIASES


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_symlinked_root_is_refused(tmp_path, sandbox, keyring, clp, fence, app_conf, case):
    patch = make_patch(tmp_path, keyring, INSTALL_OK, files=case.files)
    if case.applied_first:
        applied = clp("--root", str(sandbox), *_args(APPLY, patch))
        assert applied.returncode == 0, applied.stderr
    case.setup(sandbox, fence.canary)
    fence.close()

    result = clp("--root", str(sandbox), *_args(case.command, patch))

    assert_refused(result, fence, naming=case.naming, code=case.code)


def _args(command: tuple[str, ...], patch: Path) -> list[str]:
    return [str(patch) if arg == "PATCH" else arg for arg in command]


# -- a link swapped in after the plan -----------------------------------------------------


def test_a_link_onto_the_state_made_by_the_install_script_is_refused(
    tmp_path, sandbox, keyring, clp, fence, app_conf
):
    """The plan saw /srv/x/clp.db as a plain absent file; the Install script turns /srv/x into
    a link onto StateDir. The snapshot after the script refuses the path, and so does the undo,
    which would delete it: the live state database is neither overwritten nor deleted, and once
    the link is gone `clp recover` finishes the undo."""
    (sandbox / "srv").mkdir(exist_ok=True)
    install = "ln -s ../var/lib/clp /srv/x\n"
    patch = make_patch(tmp_path, keyring, install, files=("/srv/x/clp.db",))
    fence.close()

    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert f"/srv/x/clp.db: resolves to {sandbox}/var/lib/clp/clp.db, {OWN}" in result.stderr
    assert "run 'clp recover'" in result.stderr
    assert [c for c in fence.changes() if c.startswith("canary")] == []
    os.unlink(sandbox / "srv/x")  # the cause fixed
    recovered = clp("--root", str(sandbox), "recover")
    assert recovered.returncode == 0, recovered.stderr
    listed = clp("--root", str(sandbox), "list", "--json")
    assert listed.returncode == 0, listed.stderr  # the state database is whole
    assert [(p["id"], p["state"]) for p in json.loads(listed.stdout)] == [(PATCH_ID, "failed")]
    assert not (sandbox / "opt/CLP" / PATCH_ID).exists()
    assert [c for c in fence.changes() if c.startswith("canary")] == []


@pytest.mark.parametrize("own", ["var/log", "var/lib/clp", "opt/CLP"])
def test_an_own_dir_swapped_for_a_link_out_by_the_install_script_is_refused(
    tmp_path, sandbox, keyring, clp, fence, app_conf, own
):
    """The Install script (root, in the root) moves one of clp's directories away and leaves a
    link out of the root in its place: clp notices once the script is done, writes nothing
    through the link (no log line, no snapshot, no trash), and undoes the patch's changes."""
    (sandbox / own).mkdir(parents=True, exist_ok=True)
    install = INSTALL_OK + f"mv /{own} /{own}.moved && ln -s {fence.canary} /{own}\n"
    patch = make_patch(tmp_path, keyring, install)
    before = app_conf.read_bytes()
    fence.close()

    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert f"{sandbox}/{own} is a symbolic link to '{fence.canary}'" in result.stderr
    assert [c for c in fence.changes() if c.startswith("canary")] == []
    if own != "var/lib/clp":  # with the store out of reach, the undo waits for 'clp recover'
        assert app_conf.read_bytes() == before
    os.unlink(sandbox / own)
    os.rename(sandbox / f"{own}.moved", sandbox / own)
    recovered = clp("--root", str(sandbox), "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert app_conf.read_bytes() == before
    assert [c for c in fence.changes() if c.startswith("canary")] == []


def test_a_link_onto_the_state_swapped_in_before_rollback_is_refused(
    tmp_path, sandbox, keyring, clp, fence, app_conf
):
    """Applied while /srv/x was a plain directory; /srv/x then becomes a link onto StateDir.
    Rollback would delete /srv/x/clp.db (absent before the patch): refused, nothing changed."""
    (sandbox / "srv/x").mkdir(parents=True)
    install = "echo patched > /srv/x/clp.db\n"
    patch = make_patch(tmp_path, keyring, install, files=("/srv/x/clp.db",))
    applied = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert applied.returncode == 0, applied.stderr
    shutil.rmtree(sandbox / "srv/x")
    (sandbox / "srv/x").symlink_to("../var/lib/clp")
    fence.close()

    result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm", "--force")

    assert_refused(result, fence, naming=OWN, code=1)


def test_a_link_inside_the_root_is_followed_for_clps_own_dirs(
    tmp_path, sandbox, keyring, clp, fence, app_conf
):
    """As a chroot would: StateDir and the log dir as relative links that stay in the root."""
    fence.close()
    (sandbox / "srv/state").mkdir(parents=True)
    (sandbox / "srv/log").mkdir(parents=True)
    link(sandbox, "var/lib/clp", "../../srv/state")
    link(sandbox, "var/log", "../srv/log")
    patch = make_patch(tmp_path, keyring, INSTALL_OK)

    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")

    assert result.returncode == 0, result.stderr
    assert (sandbox / "srv/state/clp.db").is_file()
    assert "CLPR261125" in (sandbox / "srv/log/CLP.log").read_text()
    assert [c for c in fence.changes() if c.startswith("canary")] == []


# -- the hooks: harmless, and nothing recorded out of the root ------------------------------


@pytest.mark.parametrize(
    ("rel", "target"),
    [
        ("var/lib/clp", "CANARY"),
        ("var/lib/clp", "../../../nowhere"),
        ("var/log", "CANARY"),
        ("var/cache/clp", "CANARY"),
        ("var/lib/clp/snapshots", "CANARY"),
    ],
    ids=["StateDir-absolute", "StateDir-dangling", "log-absolute", "cache-absolute", "store"],
)
def test_the_hooks_stay_harmless_with_a_symlinked_root(sandbox: Path, canary: Path, rel, target):
    hroot = HookRoot(sandbox)
    (sandbox / "var/lib/clp").mkdir(parents=True, exist_ok=True)
    link(sandbox, rel, str(canary) if target == "CANARY" else target)
    fence = Fence(sandbox, canary).close()
    package = make_package(sandbox / CACHE, "demo", "1.0-1", {"etc/demo.conf": b"port=1\n"})

    result = hroot.pacman("-U", package)

    assert result.returncode == 0, result.stdout + result.stderr
    assert hroot.installed("demo") == "1.0-1"
    assert "could not record this transaction" in result.stdout + result.stderr
    # pacman itself writes its own log through a linked /var/log: that one is not clp's doing
    outside = [c for c in fence.changes() if c.startswith("canary")]
    assert outside in ([], ["canary: pacman.log added"]), outside


def test_undo_transaction_refuses_a_recorded_path_now_aliasing_the_state(sandbox: Path, canary):
    """The transaction recorded /etc/x/clp.db under a plain /etc/x; /etc/x is now a link onto
    StateDir. Undoing would write the old content over the live state: refused."""
    hroot = HookRoot(sandbox)
    for version, content in (("1.0-1", b"one\n"), ("2.0-1", b"two\n")):
        package = make_package(sandbox / CACHE, "demo", version, {"etc/x/clp.db": content})
        installed = hroot.pacman("-U", package)
        assert installed.returncode == 0, installed.stdout + installed.stderr
    shutil.rmtree(sandbox / "etc/x")
    (sandbox / "etc/x").symlink_to("../var/lib/clp")
    fence = Fence(sandbox, canary).close()

    result = hroot.clp("undo-transaction", "2", "--noconfirm")

    assert_refused(result, fence, naming=OWN, code=1)
    assert hroot.installed("demo") == "2.0-1"
