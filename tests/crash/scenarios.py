"""The crash matrix's table: one row per operation. Adding an operation to the matrix is one
more `Scenario`: a function that prepares the root as it is before the operation and returns
the clp command's arguments, and the phases it has (a patch script, a pacman run)."""

from __future__ import annotations

from tests.crash.matrix import SCRIPT_PAUSE, Scenario, Workshop
from tests.kits.clpctlkit import ini_meta, leave_installed, pack_clpctl, pack_zip
from tests.kits.clpkit import INSTALL_OK, PATCH_ID, make_patch
from tests.kits.pkgkit import CACHE, make_package

HEALTH = '<HealthCheck timeout="5">grep -q sha2 /etc/app.conf</HealthCheck>'


def _app_conf(ws: Workshop) -> None:
    conf = ws.root.root / "etc/app.conf"
    conf.write_text("MACs hmac-sha1\n")
    conf.chmod(0o640)


def _patch(ws: Workshop, name: str = PATCH_ID, extra: str = HEALTH):
    """A patch changing /etc/app.conf and creating /etc/extra.conf, whose scripts stop where
    the matrix arms them, with a health check."""
    install = INSTALL_OK + SCRIPT_PAUSE + "touch /etc/extra.conf\n"
    remove = SCRIPT_PAUSE + "echo removing\n"
    directory = ws.work / f"patch-{name}"
    directory.mkdir(exist_ok=True)
    files = ("/etc/app.conf", "/etc/extra.conf")
    return make_patch(directory, ws.keyring, install, remove, files=files, extra=extra, name=name)


def prepare_apply(ws: Workshop) -> list[str]:
    _app_conf(ws)
    return ["apply", str(_patch(ws)), "--noconfirm"]


def prepare_rollback(ws: Workshop) -> list[str]:
    _app_conf(ws)
    ws.clp("apply", str(_patch(ws)), "--noconfirm")
    return ["rollback", PATCH_ID, "--noconfirm"]


def _two_versions(ws: Workshop) -> None:
    """`demo` 1.0-1 then 2.0-1 installed (both in the cache), each owning /etc/demo.conf, with
    clp's pins included by pacman.conf; the hooks record both transactions."""
    root = ws.root.root
    (root / "etc/pacman.conf").write_text(
        "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"
        "Include = /etc/pacman.d/clp-pins.conf\n"
    )
    (root / "etc/pacman.d/clp-pins.conf").write_text("")
    for version in ("1.0-1", "2.0-1"):
        files = {"etc/demo.conf": f"port={version}\n".encode(),
                 "usr/share/demo/VERSION": version.encode()}  # fmt: skip
        ws.pacman("-U", make_package(root / CACHE, "demo", version, files))


def prepare_revert(ws: Workshop) -> list[str]:
    _two_versions(ws)
    return ["revert", "--noconfirm", "demo", "1.0-1"]


def prepare_revert_rollback(ws: Workshop) -> list[str]:
    _two_versions(ws)
    ws.clp("revert", "--noconfirm", "demo", "1.0-1")
    return ["rollback", "R1", "--noconfirm"]


def prepare_undo_transaction(ws: Workshop) -> list[str]:
    _two_versions(ws)
    return ["undo-transaction", "2", "--noconfirm"]


def prepare_update(ws: Workshop) -> list[str]:
    """A feed on 127.0.0.1 with one signed patch the system does not have."""
    from tests.kits.clpkit import run_clp

    _app_conf(ws)
    feed = ws.work / "feed/CLP"
    feed.mkdir(parents=True)
    built = _patch(ws, extra="")
    built.rename(feed / built.name)
    (built.parent / f"{built.name}.sig").rename(feed / f"{built.name}.sig")
    published = run_clp("repo-add", str(feed), "--sign", ws.keyring.packager_fpr,
                        "--gpg-homedir", str(ws.keyring.signer_home))  # fmt: skip
    assert published.returncode == 0, published.stderr
    url = ws.serve(feed.parent)
    (ws.root.root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (ws.root.root / "etc/CLP/mirrors").write_text(f"Server = {url}/CLP\n")
    return ["update", "--noconfirm"]


def prepare_adopt(ws: Workshop) -> list[str]:
    """What clpctl 2.0 and 2.1 left in /opt/CLP (tests/kits/clpctlkit.py)."""
    root = ws.root.root
    (root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (root / "etc/CLP/clp.conf").write_text("[options]\nSigLevel = Never\n")
    for name, pack in (("CLPR1251124", pack_clpctl), ("CLPR2251124", pack_zip)):
        files = {"PKGINFO.meta": ini_meta(name), "Install-Patch.ps1": b"echo ran\n",
                 "Remove-Patch.ps1": b"echo removing\n"}  # fmt: skip
        archive = pack(ws.work / f"{name}.{'CLP' if pack is pack_clpctl else 'clp'}", files)
        leave_installed(root / "opt/CLP", archive, name if pack is pack_clpctl else f"{name}.clp")
    return ["adopt"]


def prepare_boot_undo(ws: Workshop) -> list[str]:
    """demo 1.0-1 through a good boot, then 2.0-1 on probation after pacman upgraded it (the
    hooks recorded it), a required health check that fails, HealthBoots = 1 and one failed
    boot: the next boot's early check undoes the upgrade by itself."""
    root = ws.root.root
    (root / "etc/pacman.conf").write_text(
        "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"
        "Include = /etc/pacman.d/clp-pins.conf\n"
    )
    (root / "etc/pacman.d/clp-pins.conf").write_text("")
    (root / "run").mkdir(exist_ok=True)  # a running system's /run, for the motd
    (root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (root / "etc/CLP/clp.conf").write_text("[options]\nHealthBoots = 1\n")
    for version, boot_id in (("1.0-1", "boot0"), ("2.0-1", None)):
        files = {"etc/demo.conf": f"port={version}\n".encode(),
                 "usr/share/demo/VERSION": version.encode()}  # fmt: skip
        ws.pacman("-U", make_package(root / CACHE, "demo", version, files))
        if boot_id is not None:  # the machine was fine with 1.0-1: its probation is over
            good = ws.root.clp("boot-check", env={"CLP_BOOT_ID": boot_id})
            assert good.returncode == 0, good.stdout + good.stderr
    checks = root / "etc/CLP/health.d/required.d"
    checks.mkdir(parents=True)
    (checks / "50-display").write_text("#!/bin/sh\nexit 1\n")
    (checks / "50-display").chmod(0o755)
    failed = ws.root.clp("boot-check", env={"CLP_BOOT_ID": "boot1"})
    assert failed.returncode == 1, failed.stdout + failed.stderr
    return ["boot-check", "--early"]


SCENARIOS = (
    Scenario("apply", prepare_apply, phases=("script",)),
    Scenario("rollback", prepare_rollback, phases=("script",)),
    Scenario("revert", prepare_revert, phases=("pacman",)),
    Scenario("revert-rollback", prepare_revert_rollback, phases=("pacman",)),
    Scenario("update", prepare_update, phases=("script",)),
    Scenario("undo-transaction", prepare_undo_transaction, phases=("pacman",)),
    Scenario("adopt", prepare_adopt, changes_root=False),
    Scenario("boot-undo", prepare_boot_undo, phases=("pacman",), env=(("CLP_BOOT_ID", "boot2"),)),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
