"""A damaged state database (a torn page, garbage over a page, a truncated file, an overwritten
header, a corrupt -wal): every command says what is wrong and what to run in one line, the
hooks never stop pacman, and `clp recover --rebuild-state` salvages what SQLite can read,
rebuilds the rest from disk and deletes no snapshot."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.kits.clpkit import PATCH_ID, make_patch
from tests.kits.hookkit import HookRoot
from tests.kits.pkgkit import CACHE, make_package

PAGE = 4096
FORMS = ["torn-page", "garbage-page", "truncated", "header", "zeroed-header"]
DAMAGE_WORDS = "clp's state database is damaged"
REBUILD = "clp recover --rebuild-state"


def state_db(root: Path) -> Path:
    return root / "var/lib/clp/clp.db"


def settle(db: Path) -> None:
    """Everything in the main file, no -wal beside it (as after a clean exit)."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def root_page(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                                (table,)).fetchone()[0])  # fmt: skip
    finally:
        conn.close()


def damage(db: Path, form: str) -> None:
    settle(db)
    data = bytearray(db.read_bytes())
    if form == "torn-page":  # a power loss: the second half of the patches' page never written
        start = (root_page(db, "patches") - 1) * PAGE
        data[start + PAGE // 2 : start + PAGE] = bytes(PAGE // 2)
    elif form == "garbage-page":  # a disk error: garbage over the journal's page
        start = (root_page(db, "journal") - 1) * PAGE
        data[start : start + PAGE] = os.urandom(PAGE)
    elif form == "truncated":  # the file cut short after its first pages
        del data[3 * PAGE :]
    elif form == "header":
        data[:100] = os.urandom(100)
    else:
        data[:100] = bytes(100)
    db.write_bytes(bytes(data))


def applied(tmp_path: Path, sandbox: Path, keyring, clp) -> Path:
    (sandbox / "etc/app.conf").write_text("one\n")
    patch = make_patch(tmp_path, keyring, "echo two >> /etc/app.conf\n")
    result = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert result.returncode == 0, result.stderr
    return patch


def assert_one_line_or_fine(result, *, must_fail: bool = False) -> bool:
    """Exit 0; or one error line, which names the damage and the command to run when it is
    the damage that stopped the command (another refusal, exit 2, is its own). True when the
    damage was named."""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    if result.returncode == 0 and not must_fail:
        return False
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    if must_fail or result.returncode == 1:
        assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
        assert DAMAGE_WORDS in errors[0] and REBUILD in errors[0], errors[0]
        return True
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    return DAMAGE_WORDS in errors[0]


def commands(sandbox: Path, patch: Path) -> list[list[str]]:
    root = ["--root", str(sandbox)]
    return [
        [*root, "list"],
        [*root, "list", "--json"],
        [*root, "info", PATCH_ID],
        [*root, "transactions"],
        [*root, "pins"],
        [*root, "adopt"],
        [*root, "recover"],
        [*root, "rollback", PATCH_ID, "--noconfirm"],
        [*root, "apply", str(patch), "--noconfirm"],
        [*root, "undo-transaction", "1", "--noconfirm"],
        [*root, "update", "--check"],
    ]


@pytest.mark.parametrize("form", FORMS)
def test_every_command_says_the_database_is_damaged_in_one_line(
    tmp_path, sandbox, keyring, clp, form
):
    patch = applied(tmp_path, sandbox, keyring, clp)
    damage(state_db(sandbox), form)
    conf = (sandbox / "etc/app.conf").read_text()
    failed = 0
    for args in commands(sandbox, patch):
        failed += assert_one_line_or_fine(clp(*args))
    # the patches' records are unreadable; with the journal's page gone, writing one is not
    refused = ["rollback", PATCH_ID, "--noconfirm"] if form == "garbage-page" else ["list"]
    assert_one_line_or_fine(clp("--root", str(sandbox), *refused), must_fail=True)
    assert failed >= 1
    assert (sandbox / "etc/app.conf").read_text() == conf  # nothing was changed


@pytest.mark.parametrize("form", FORMS)
def test_rebuild_state_salvages_rebuilds_and_keeps_every_snapshot(
    tmp_path, sandbox, keyring, clp, form
):
    applied(tmp_path, sandbox, keyring, clp)
    snapshots = sandbox / "var/lib/clp/snapshots/snapshots"
    kept_before = sorted(p.name for p in snapshots.iterdir())
    assert kept_before
    damage(state_db(sandbox), form)
    damaged_bytes = state_db(sandbox).read_bytes()

    result = clp("--root", str(sandbox), "recover", "--rebuild-state")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "the damaged database is kept as" in result.stdout
    asides = list(state_db(sandbox).parent.glob("clp.db.damaged-*"))
    assert [p.read_bytes() for p in asides if not p.name.endswith(("-wal", "-shm"))] == [
        damaged_bytes
    ]
    assert set(kept_before) <= {p.name for p in snapshots.iterdir()}  # none deleted
    listed = clp("--root", str(sandbox), "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {p["id"]: p["state"] for p in json.loads(listed.stdout)} == {PATCH_ID: "applied"}
    for args in (["list"], ["transactions"], ["pins"], ["recover"]):
        again = clp("--root", str(sandbox), *args)
        assert again.returncode == 0, again.stderr
        assert "warning" not in again.stderr, again.stderr
    # a second writing command's garbage collection keeps them too
    assert set(kept_before) <= {p.name for p in snapshots.iterdir()}


@pytest.mark.parametrize("form", ["header", "zeroed-header", "garbage-page"])
def test_a_salvaged_patch_rolls_back_with_its_snapshot(tmp_path, sandbox, keyring, clp, form):
    applied(tmp_path, sandbox, keyring, clp)
    damage(state_db(sandbox), form)
    assert clp("--root", str(sandbox), "recover", "--rebuild-state").returncode == 0
    listed = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [(p["id"], p["origin"]) for p in listed] == [(PATCH_ID, "clp")]
    result = clp("--root", str(sandbox), "rollback", PATCH_ID, "--noconfirm")
    assert result.returncode == 0, result.stderr
    assert (sandbox / "etc/app.conf").read_text() == "one\n"


def test_rebuild_state_reports_in_json(tmp_path, sandbox, keyring, clp):
    applied(tmp_path, sandbox, keyring, clp)
    damage(state_db(sandbox), "torn-page")
    result = clp("--root", str(sandbox), "recover", "--rebuild-state", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    tables = {t["table"]: t for t in report["rebuilt"]["tables"]}
    assert tables["patches"]["unreadable"] or tables["patches"]["kept"] == 0
    assert tables["operations"]["kept"] >= 1
    assert report["rebuilt"]["aside"].startswith(str(state_db(sandbox)) + ".damaged-")


def test_without_a_database_there_is_nothing_to_rebuild(sandbox, clp):
    result = clp("--root", str(sandbox), "recover", "--rebuild-state")
    assert result.returncode == 2
    assert "there is no state database to rebuild" in result.stderr


def test_a_corrupt_wal_is_harmless(tmp_path, sandbox, keyring, clp):
    patch = applied(tmp_path, sandbox, keyring, clp)
    db = state_db(sandbox)
    settle(db)
    Path(f"{db}-wal").write_bytes(os.urandom(3 * PAGE))  # a -wal left corrupt by a crash
    for args in commands(sandbox, patch)[:5]:
        result = clp(*args)
        assert_one_line_or_fine(result)
        assert result.returncode == 0, result.stderr
    listed = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [p["id"] for p in listed] == [PATCH_ID]


@pytest.mark.parametrize("form", ["torn-page", "header"])
def test_the_hooks_never_stop_pacman_and_say_one_line(tmp_path, sandbox, keyring, clp, form):
    hroot = HookRoot(sandbox)
    applied(tmp_path, sandbox, keyring, clp)
    damage(state_db(sandbox), form)
    package = make_package(sandbox / CACHE, "demo", "1.0-1", {"etc/demo.conf": b"port=1\n"})

    result = hroot.pacman("-U", package)

    assert result.returncode == 0, result.stdout + result.stderr
    assert hroot.installed("demo") == "1.0-1"
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    said = [line for line in output.splitlines() if "clp" in line and "damaged" in line]
    assert len(said) == 2, output  # the pre- and the post-transaction hook, a line each
    assert all(REBUILD in line for line in said), said
    # rebuilt, the next transaction is recorded again
    assert clp("--root", str(sandbox), "recover", "--rebuild-state").returncode == 0
    upgrade = make_package(sandbox / CACHE, "demo", "2.0-1", {"etc/demo.conf": b"port=2\n"})
    again = hroot.pacman("-U", upgrade)
    assert again.returncode == 0 and "warning: clp" not in again.stdout + again.stderr, again
    records = json.loads(clp("--root", str(sandbox), "transactions", "--json").stdout)
    assert any(p["name"] == "demo" for r in records for p in r["packages"])
