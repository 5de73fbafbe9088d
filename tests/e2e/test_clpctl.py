"""Moving from clpctl: the patches clpctl installed are adopted, rolled back as clpctl
uninstalled them, never installed twice; clpctl's and clp's commands point at each other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.kits.clpctlkit import ini_meta, leave_installed, pack_clpctl

INSTALL = b"echo ran >> /etc/install-runs\necho installing\n"
REMOVE = b"echo ran >> /etc/remove-runs\necho removing\n"


def clpctl_patch(tmp: Path, name: str, remove: bytes = REMOVE) -> Path:
    return pack_clpctl(
        tmp / f"{name}.CLP",
        {
            "PKGINFO.meta": ini_meta(name),
            "Install-Patch.ps1": INSTALL,
            "Remove-Patch.ps1": remove,
            "tmp/example-patch/new-file.txt": b"a new file\n",
        },
    )


@pytest.fixture
def left(sandbox: Path, tmp_path: Path) -> Path:
    """A root where clpctl `update` left CLPR1251124/ and `install CLPR2251124.clp` left
    CLPR2251124.clp/, each after running its Install script once."""
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/clp.conf").write_text("[options]\nSigLevel = Never\n")
    patches = sandbox / "opt/CLP"
    leave_installed(patches, clpctl_patch(tmp_path, "CLPR1251124"), "CLPR1251124")
    leave_installed(patches, clpctl_patch(tmp_path, "CLPR2251124"), "CLPR2251124.clp")
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
