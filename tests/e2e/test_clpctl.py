"""Moving from clpctl: the patches clpctl installed are adopted, rolled back as clpctl
uninstalled them, never installed twice; clpctl's and clp's commands point at each other."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clp_alpm.store.journal import FAULT_ENV
from tests.kits.clpctlkit import (
    CLPCTL_SERVICE,
    SCRIPTS_TIMER,
    ini_meta,
    leave_installed,
    pack_clpctl,
    pack_zip,
)
from tests.kits.clpkit import make_patch, static_server

INSTALL = b"echo ran >> /etc/install-runs\necho installing\n"
REMOVE = b"echo ran >> /etc/remove-runs\necho removing\n"


def clpctl_files(name: str, remove: bytes = REMOVE) -> dict[str, bytes]:
    return {
        "PKGINFO.meta": ini_meta(name),
        "Install-Patch.ps1": INSTALL,
        "Remove-Patch.ps1": remove,
        "tmp/example-patch/new-file.txt": b"a new file\n",
    }


def clpctl_patch(tmp: Path, name: str, remove: bytes = REMOVE) -> Path:
    """A patch as clpctl 2.0 packs it (tar.gz)."""
    return pack_clpctl(tmp / f"{name}.CLP", clpctl_files(name, remove))


@pytest.fixture
def left(sandbox: Path, tmp_path: Path) -> Path:
    """A root where clpctl 2.0's `update` left CLPR1251124/ (a tar.gz extracted) and clpctl
    2.1's `install CLPR2251124.clp` left CLPR2251124.clp/ (a zip extracted), each after
    running its Install script once."""
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/clp.conf").write_text("[options]\nSigLevel = Never\n")
    patches = sandbox / "opt/CLP"
    leave_installed(patches, clpctl_patch(tmp_path, "CLPR1251124"), "CLPR1251124")
    zipped = pack_zip(tmp_path / "CLPR2251124.clp", clpctl_files("CLPR2251124"))
    leave_installed(patches, zipped, "CLPR2251124.clp")
    (sandbox / "etc/install-runs").write_text("ran\nran\n")
    return sandbox


def listed(clp, root: Path) -> list[dict]:
    result = clp("--root", str(root), "list", "--json")
    assert result.returncode == 0, result.stderr
    return [item for item in json.loads(result.stdout) if item["kind"] == "patch"]


def test_first_run_adopts_what_clpctl_left(clp, left: Path) -> None:
    patches = listed(clp, left)
    assert [(p["id"], p["state"], p["origin"]) for p in patches] == [
        ("CLPR1251124", "applied", "clpctl"),
        ("CLPR2251124", "applied", "clpctl"),
    ]
    text = clp("--root", str(left), "list").stdout
    assert "CLPR2251124" in text and "installed by clpctl" in text
    # nothing ran: clpctl ran the Install scripts already
    assert (left / "etc/install-runs").read_text() == "ran\nran\n"
    info = clp("--root", str(left), "info", "CLPR2251124").stdout
    assert "Installed By  : clpctl\n" in info
    assert "Source        : /opt/CLP/CLPR2251124.clp\n" in info
    shown = json.loads(clp("--root", str(left), "info", "CLPR2251124", "--json").stdout)
    assert (shown["origin"], shown["patch_dir"]) == ("clpctl", "/opt/CLP/CLPR2251124.clp")
    again = clp("--root", str(left), "adopt")
    assert again.returncode == 0 and "nothing to adopt" in again.stdout


def test_clp_adopt_reports_in_json(clp, left: Path) -> None:
    result = clp("--root", str(left), "adopt", "--json")
    assert result.returncode == 0, result.stderr
    adopted = json.loads(result.stdout)["adopted"]
    assert [(p["id"], p["origin"]) for p in adopted] == [
        ("CLPR1251124", "clpctl"),
        ("CLPR2251124", "clpctl"),
    ]


def test_rollback_of_an_adopted_patch_runs_its_remove_script(clp, left: Path) -> None:
    result = clp("--root", str(left), "rollback", "CLPR2251124", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removing" in result.stdout
    assert (left / "etc/remove-runs").read_text() == "ran\n"
    assert not (left / "opt/CLP/CLPR2251124.clp").exists()
    assert not (left / "opt/CLP/.trash").exists()
    states = {p["id"]: p["state"] for p in listed(clp, left)}
    assert states == {"CLPR1251124": "applied", "CLPR2251124": "rolled-back"}


def test_a_failing_remove_script_leaves_the_adopted_patch_applied(
    clp, left: Path, tmp_path: Path
) -> None:
    leave_installed(
        left / "opt/CLP", clpctl_patch(tmp_path, "CLPR3251124", b"exit 3\n"), "CLPR3251124"
    )
    result = clp("--root", str(left), "rollback", "CLPR3251124", "--noconfirm")
    assert result.returncode == 1
    assert "Remove-Patch.ps1" in result.stderr
    assert (left / "opt/CLP/CLPR3251124/Install-Patch.ps1").is_file()
    states = {p["id"]: p["state"] for p in listed(clp, left)}
    assert states["CLPR3251124"] == "applied"


def test_apply_of_a_patch_clpctl_installed_does_not_run_it_again(
    clp, left: Path, tmp_path: Path
) -> None:
    (tmp_path / "again").mkdir()
    again = clpctl_patch(tmp_path / "again", "CLPR1251124")
    result = clp("--root", str(left), "apply", str(again), "--noconfirm")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "clpctl installed it" in result.stderr
    assert "clp rollback CLPR1251124" in result.stderr
    assert (left / "etc/install-runs").read_text() == "ran\nran\n"


def test_a_directory_without_scripts_is_not_a_patch(clp, sandbox: Path) -> None:
    (sandbox / "opt/CLP/notes").mkdir(parents=True)
    (sandbox / "opt/CLP/notes/README").write_text("x\n")
    (sandbox / "opt/CLP/new-file.txt").write_text("the seed's example file\n")
    assert listed(clp, sandbox) == []


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        ("install", "clp apply FILE"),
        ("uninstall", "clp rollback ID"),
        ("create", "clp build DIR"),
    ],
)
def test_clpctl_command_names_say_what_to_use(clp, command: str, hint: str) -> None:
    result = clp(command, "X")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: clp has no '{command}' command")
    assert f"use '{hint}'" in result.stderr


CLPCTL = Path(sys.executable).parent / "clpctl"


def clpctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLPCTL), *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_clpctl_install_applies_through_clp(sandbox: Path, tmp_path: Path, clp) -> None:
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/clp.conf").write_text("[options]\nSigLevel = Never\n")
    patch = clpctl_patch(tmp_path, "CLPR4251124")
    result = clpctl("--root", str(sandbox), "install", str(patch))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.splitlines()[0] == (
        "clpctl: 'clpctl install' is now 'clp apply FILE'; use that from now on"
    )
    assert "CLPR4251124 applied" in result.stdout
    assert (sandbox / "etc/install-runs").read_text() == "ran\n"
    assert [(p["id"], p["origin"]) for p in listed(clp, sandbox)] == [("CLPR4251124", "clp")]

    shown = clpctl("--root", str(sandbox), "list")
    assert shown.returncode == 0
    assert shown.stderr == "clpctl: 'clpctl list' is now 'clp list'; use that from now on\n"
    assert shown.stdout.startswith("CLPR4251124 ")

    removed = clpctl("--root", str(sandbox), "uninstall", "CLPR4251124.clp")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "'clp rollback ID'" in removed.stderr.splitlines()[0]
    assert (sandbox / "etc/remove-runs").read_text() == "ran\n"
    assert not (sandbox / "opt/CLP/CLPR4251124").exists()


def test_clpctl_uninstall_of_what_clpctl_installed(left: Path) -> None:
    result = clpctl("--root", str(left), "uninstall", "CLPR2251124.clp")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (left / "etc/remove-runs").read_text() == "ran\n"
    assert not (left / "opt/CLP/CLPR2251124.clp").exists()


def test_clpctl_create_builds_through_clp(tmp_path: Path) -> None:
    source = tmp_path / "CLPRYYMMDD"
    source.mkdir()
    (source / "PKGINFO.meta").write_bytes(ini_meta("CLPRYYMMDD"))
    (source / "Install-Patch.ps1").write_bytes(INSTALL)
    (source / "Remove-Patch.ps1").write_bytes(REMOVE)
    result = subprocess.run(
        [str(CLPCTL), "create", str(source), "CLPRYYMMDD"], cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "'clp build DIR -o NAME.clp'" in result.stderr
    assert (tmp_path / "CLPRYYMMDD.clp").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "clpctl: usage: clpctl {install FILE"),
        (["frobnicate"], "clpctl: unknown command 'frobnicate'; usage:"),
        (["install"], "clpctl: install takes FILE; usage:"),
        (["list", "extra"], "clpctl: list takes no argument; usage:"),
        (["--bogus", "list"], "clpctl: unknown option; usage:"),
    ],
)
def test_clpctl_bad_input(args: list[str], message: str) -> None:
    result = clpctl(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1


def test_update_and_clpctl_update_skip_what_clpctl_installed(
    left: Path, tmp_path: Path, keyring, clp
) -> None:
    """A signed feed listing CLPR1251124 (installed by clpctl) and a new patch: `clpctl
    update` applies the new one only; CLPR1251124's Install script does not run again."""
    (left / "etc/CLP/clp.conf").write_text("[options]\nSigLevel = Required\n")
    feed = tmp_path / "feed/CLP"
    feed.mkdir(parents=True)
    for name in ("CLPR1251124", "CLPR5251124"):
        work = tmp_path / f"work-{name}"
        work.mkdir()
        built = make_patch(work, keyring, "echo ran >> /etc/install-runs\n", name=name, files=())
        built.rename(feed / built.name)
        Path(f"{built}.sig").rename(feed / f"{built.name}.sig")
    published = clp("repo-add", str(feed), "--sign", keyring.packager_fpr,
                    "--gpg-homedir", str(keyring.signer_home))  # fmt: skip
    assert published.returncode == 0, published.stderr
    with static_server(tmp_path / "feed") as url:
        (left / "etc/CLP/mirrors").write_text(f"Server = {url}/CLP\n")
        check = clp("--root", str(left), "update", "--check", "--json")
        assert check.returncode == 0, check.stderr
        reasons = {
            p["name"]: (p["action"], p["reason"]) for p in json.loads(check.stdout)["patches"]
        }
        assert reasons["CLPR1251124"] == ("skip", "already applied (installed by clpctl)")
        assert reasons["CLPR5251124"][0] == "apply"
        result = clpctl("--root", str(left), "update")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.startswith("clpctl: 'clpctl update' is now 'clp update'")
    assert (left / "etc/install-runs").read_text() == "ran\nran\nran\n"  # CLPR5251124 only
    states = {p["id"]: (p["state"], p["origin"]) for p in listed(clp, left)}
    assert states == {
        "CLPR1251124": ("applied", "clpctl"),
        "CLPR2251124": ("applied", "clpctl"),
        "CLPR5251124": ("applied", "clp"),
    }


def test_status_names_units_that_shadow_clps(sandbox: Path, clp) -> None:
    """Vincent OS's `scripts` package puts clpctl-era copies of both units in /etc."""
    admin = sandbox / "etc/systemd/system"
    admin.mkdir(parents=True)
    (admin / "core-livepatch-update.timer").write_bytes(SCRIPTS_TIMER)
    (admin / "core-livepatch-update.service").write_bytes(CLPCTL_SERVICE)
    result = clp("--root", str(sandbox), "status")
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert warnings == [
        "warning: /etc/systemd/system/core-livepatch-update.service overrides clp's "
        "/usr/lib/systemd/system/core-livepatch-update.service (ExecStart=/usr/bin/clpctl "
        "update); fix: rm /etc/systemd/system/core-livepatch-update.service && "
        "systemctl daemon-reload",
        "warning: /etc/systemd/system/core-livepatch-update.timer overrides clp's "
        "/usr/lib/systemd/system/core-livepatch-update.timer (OnCalendar=*-*-*12:00:00); "
        "fix: rm /etc/systemd/system/core-livepatch-update.timer && systemctl daemon-reload "
        "&& systemctl reenable core-livepatch-update.timer",
    ]
    report = json.loads(clp("--root", str(sandbox), "status", "--json").stdout)
    units = {u["unit"]: u for u in report["shadowed_units"]}
    assert set(units) == {"core-livepatch-update.service", "core-livepatch-update.timer"}
    assert units["core-livepatch-update.timer"]["lines"] == ["OnCalendar=*-*-*12:00:00"]
    assert units["core-livepatch-update.service"]["fix"].startswith("rm /etc/systemd/system/")


def test_status_masked_or_linked_units(sandbox: Path, clp) -> None:
    admin = sandbox / "etc/systemd/system"
    admin.mkdir(parents=True)
    (admin / "core-livepatch-update.timer").symlink_to("/dev/null")
    (admin / "core-livepatch-update.service").symlink_to(
        "/usr/lib/systemd/system/core-livepatch-update.service"
    )
    (admin / "core-livepatch-update.service.d").mkdir()
    (admin / "core-livepatch-update.service.d/override.conf").write_text("[Service]\nNice=5\n")
    result = clp("--root", str(sandbox), "status")
    assert result.stderr.splitlines() == [
        "warning: /etc/systemd/system/core-livepatch-update.timer masks clp's "
        "core-livepatch-update.timer: it never runs; "
        "fix: systemctl unmask core-livepatch-update.timer"
    ]
    (admin / "core-livepatch-update.timer").unlink()
    clean = json.loads(clp("--root", str(sandbox), "status", "--json").stdout)
    assert clean["shadowed_units"] == []


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", ["snapshot-after", "record"])
def test_a_killed_adoption_is_recovered_then_done_again(
    clp, left: Path, step: str, when: str
) -> None:
    """The adoption is journaled: SIGKILL at each of its steps, the next command recovers
    the operation and adopts again; nothing ran, the directories are untouched."""
    before = sorted(str(p.relative_to(left)) for p in (left / "opt/CLP").rglob("*"))
    killed = clp("--root", str(left), "adopt", env={FAULT_ENV: f"{step}:{when}"})
    assert killed.returncode == -signal.SIGKILL
    result = clp("--root", str(left), "list", "--json")
    assert result.returncode == 0, result.stderr
    assert "recovering from an interrupted" in result.stderr
    patches = [p for p in json.loads(result.stdout) if p["kind"] == "patch"]
    assert [(p["id"], p["state"], p["origin"]) for p in patches] == [
        ("CLPR1251124", "applied", "clpctl"),
        ("CLPR2251124", "applied", "clpctl"),
    ]
    assert (left / "etc/install-runs").read_text() == "ran\nran\n"
    assert sorted(str(p.relative_to(left)) for p in (left / "opt/CLP").rglob("*")) == before


def test_an_unreadable_name_is_not_adopted(clp, sandbox: Path, tmp_path: Path) -> None:
    """A directory whose PKGINFO.meta names no valid ID and whose own name is none either."""
    target = sandbox / "opt/CLP/-bad name"
    target.mkdir(parents=True)
    (target / "Install-Patch.ps1").write_bytes(INSTALL)
    (target / "PKGINFO.meta").write_bytes(b"garbage")
    result = clp("--root", str(sandbox), "adopt")
    assert result.returncode == 0
    assert result.stderr == (
        f"warning: {target}: no patch ID in its name or PKGINFO.meta; not adopted\n"
    )
    assert "nothing to adopt" in result.stdout


def test_a_directory_named_like_a_revert_is_not_adopted(clp, sandbox: Path) -> None:
    """clpctl left /opt/CLP/R1: as a patch it would shadow revert R1 (`clp rollback R1`)."""
    target = sandbox / "opt/CLP/R1"
    target.mkdir(parents=True)
    (target / "Install-Patch.ps1").write_bytes(INSTALL)
    (target / "Remove-Patch.ps1").write_bytes(INSTALL)
    (target / "PKGINFO.meta").write_bytes(b"[Package]\nName=R1\nVersion=1\n")
    result = clp("--root", str(sandbox), "adopt")
    assert result.returncode == 0
    assert result.stderr == (
        f"warning: {target}: its name is spelled as a revert's ID or a transaction's number, "
        "which a patch would shadow; not adopted (rename it)\n"
    )
    assert "nothing to adopt" in result.stdout


def test_apply_over_a_directory_that_is_no_patch_is_refused(
    clp, sandbox: Path, tmp_path: Path
) -> None:
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/clp.conf").write_text("[options]\nSigLevel = Never\n")
    (sandbox / "opt/CLP/CLPR6251124").mkdir(parents=True)
    (sandbox / "opt/CLP/CLPR6251124/notes.txt").write_text("mine\n")
    result = clp("--root", str(sandbox), "apply", str(clpctl_patch(tmp_path, "CLPR6251124")),
                 "--noconfirm")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {sandbox}/opt/CLP/CLPR6251124 already exists and holds no patch clp could "
        "adopt (no Install or Remove script); move it away first\n"
    )
    assert not (sandbox / "etc/install-runs").exists()
    assert (sandbox / "opt/CLP/CLPR6251124/notes.txt").read_text() == "mine\n"
