"""Transactions as snapper users expect them, with real pacman running clp's hooks: the pacman
command line of each transaction, the history limit, `clp diff N M`, and the world-readable
index the shell completions read."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.kits.clpkit import make_patch
from tests.kits.hookkit import HookRoot, install, transactions
from tests.kits.pkgkit import CACHE, make_package

PKG = "demo"

INDEX_PATH = "/var/cache/clp/completion-index"  # inside the root: the hooks run chrooted
INDEX = INDEX_PATH.lstrip("/")


@pytest.fixture
def hroot(sandbox: Path) -> HookRoot:
    return HookRoot(sandbox)


def package(root: HookRoot, version: str, conf: str, name: str = PKG) -> Path:
    """A package owning /etc/<name>.conf and a data file."""
    files = {f"etc/{name}.conf": conf.encode(), f"usr/share/{name}/VERSION": version.encode()}
    return make_package(root.root / CACHE, name, version, files)


def apply_patch(hroot: HookRoot, tmp_path: Path, keyring, name: str = "CLPR1") -> None:
    patch = make_patch(tmp_path, keyring, "echo patched >> /etc/demo.conf\n",
                       files=("/etc/demo.conf",), name=name)  # fmt: skip
    result = hroot.clp("apply", patch, "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pacman_command_line_is_recorded_and_shown(hroot):
    path = package(hroot, "1.0-1", "port=1\n")
    install(hroot, path)
    (record,) = transactions(hroot)
    words = record["command"].split()
    assert words[0] == "pacman" and words[-2:] == ["-U", str(path)]
    assert f"--root {hroot.root}" in record["command"]
    text = hroot.clp("transactions").stdout
    assert f"   command: {record['command']}\n" in text


def test_history_limit_keeps_the_newest_transactions_and_drops_their_snapshots(hroot):
    (hroot.root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (hroot.root / "etc/CLP/clp.conf").write_text("[options]\nHistoryLimit = 2\n")
    for version in ("1.0-1", "2.0-1", "3.0-1"):
        install(hroot, package(hroot, version, f"version={version}\n"))
    snapshots = hroot.root / "var/lib/clp/snapshots/snapshots"
    # the post hook itself forgot transaction 1 and deleted its snapshots
    assert [r["id"] for r in transactions(hroot)] == [2, 3]
    assert len(list(snapshots.iterdir())) == 4
    gone = hroot.clp("diff", "1")
    assert gone.returncode == 2 and "there is no transaction 1" in gone.stderr
    assert hroot.clp("recover").returncode == 0  # a writing command collects the rest
    assert [r["id"] for r in transactions(hroot)] == [2, 3]
    assert len(list(snapshots.iterdir())) == 4
    assert hroot.clp("diff", "2", "3").returncode == 0


def test_the_post_hook_forgets_a_few_transactions_a_run_down_to_the_limit(hroot):
    """A machine that only runs pacman keeps HistoryLimit transactions; a lowered limit is
    reached a few records a transaction (PRUNE_PER_RUN), so no transaction pays for all."""
    from clp_alpm.ops.record import PRUNE_PER_RUN
    from clp_alpm.store.records import Origin, TransactionRecord, TransactionStatus
    from clp_alpm.store.state import StateDB

    state = StateDB(hroot.root / "var/lib/clp")
    for number in range(20):
        state.add_transaction(TransactionRecord(
            id=0, status=TransactionStatus.DONE, started=1_700_000_000.0 + number,
            origin=Origin.PACMAN, packages=({"name": "old", "from": None, "to": "1-1"},),
            paths=(), finished=1_700_000_001.0 + number,
        ))  # fmt: skip
    state.close()
    (hroot.root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (hroot.root / "etc/CLP/clp.conf").write_text("[options]\nHistoryLimit = 3\n")
    counts = []
    for version in ("1.0-1", "2.0-1", "3.0-1", "4.0-1"):
        install(hroot, package(hroot, version, f"version={version}\n"))
        ids = [r["id"] for r in transactions(hroot)]
        assert ids == sorted(ids) and ids[-1] == 20 + len(counts) + 1  # the newest stay
        counts.append(len(ids))
    assert PRUNE_PER_RUN == 8
    assert counts == [21 - 8, 14 - 8, 3, 3]


def test_a_bad_history_limit_stops_clp_with_one_line_and_never_pacman(hroot):
    (hroot.root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (hroot.root / "etc/CLP/clp.conf").write_text("[options]\nHistoryLimit = none\n")
    result = hroot.clp("transactions")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("HistoryLimit must be a whole number from 1 to 100000")
    assert hroot.pacman("-U", package(hroot, "1.0-1", "port=1\n")).returncode == 0


# -- the completion index ----------------------------------------------------------------------


def index_lines(hroot) -> list[str]:
    text = (hroot.root / INDEX).read_text()
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_the_post_hook_and_writing_commands_keep_the_index_world_readable(hroot, tmp_path, keyring):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    index = hroot.root / INDEX
    assert stat.S_IMODE(index.stat().st_mode) == 0o644
    assert stat.S_IMODE(index.parent.stat().st_mode) == 0o755
    assert index_lines(hroot) == ["transaction 1 done"]

    apply_patch(hroot, tmp_path, keyring)
    assert index_lines(hroot) == ["patch CLPR1 applied", "transaction 1 done"]
    assert hroot.clp("rollback", "CLPR1", "--noconfirm").returncode == 0
    assert index_lines(hroot) == ["patch CLPR1 rolled-back", "transaction 1 done"]
    text = index.read_text()
    assert "demo" not in text and "/etc" not in text and "port" not in text  # names only


def test_a_missing_index_is_written_again_by_the_next_writing_command(hroot):
    install(hroot, package(hroot, "1.0-1", "port=1\n"))
    (hroot.root / INDEX).unlink()
    assert hroot.clp("transactions").returncode == 0  # reading commands write nothing
    assert not (hroot.root / INDEX).exists()
    assert hroot.clp("recover").returncode == 0
    assert index_lines(hroot) == ["transaction 1 done"]


def test_an_index_that_cannot_be_written_is_a_warning_and_pacman_goes_on(hroot):
    cache = hroot.root / "var/cache/clp"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not a directory\n")
    result = hroot.pacman("-U", package(hroot, "1.0-1", "port=1\n"))
    assert result.returncode == 0 and hroot.installed(PKG) == "1.0-1"
    output = result.stdout  # pacman shows what its hooks print, stderr too
    assert f"warning: {INDEX_PATH}: cannot update the completion index" in output
    assert "could not record" not in output
    (record,) = transactions(hroot)
    assert record["status"] == "done"
    recover = hroot.clp("recover")
    assert recover.returncode == 0
    assert f"warning: {hroot.root / INDEX}: cannot update the completion index" in recover.stderr


# -- clp diff N M ------------------------------------------------------------------------------


@pytest.fixture
def four(hroot: HookRoot) -> HookRoot:
    """1: demo 1.0-1 installed; 2: demo -> 2.0-1; 3: other 1.0-1 installed; 4: demo -> 3.0-1."""
    install(hroot, package(hroot, "1.0-1", "port=1\nhost=a\n"))
    install(hroot, package(hroot, "2.0-1", "port=2\nhost=a\n"))
    install(hroot, package(hroot, "1.0-1", "x=1\n", name="other"))
    install(hroot, package(hroot, "3.0-1", "port=3\nhost=a\n"))
    return hroot


def diff_json(hroot: HookRoot, *args: str) -> dict:
    result = hroot.clp("diff", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_diff_between_two_transactions_shows_what_came_after_the_first(four):
    document = diff_json(four, "1", "4")
    assert (document["from"], document["to"]) == (1, 4)
    assert document["packages"] == [
        {"name": "demo", "from": "1.0-1", "to": "3.0-1"},
        {"name": "other", "from": None, "to": "1.0-1"},
    ]
    files = {f["path"]: f for f in document["files"]}
    assert sorted(files) == ["/etc/demo.conf", "/etc/other.conf"]
    assert files["/etc/demo.conf"]["summary"] == "content changed"
    assert "-port=1\n+port=3\n host=a" in files["/etc/demo.conf"]["diff"]
    assert files["/etc/other.conf"]["summary"] == "created"
    assert diff_json(four, "1..4") == document  # as snapper writes it

    text = four.clp("diff", "1", "4").stdout
    assert ":: Packages (after transaction 1 -> after 4)\n" in text
    assert "-> demo 1.0-1 -> 3.0-1\n" in text and "-> other 1.0-1 (installed)\n" in text
    assert "--- a/etc/demo.conf\tafter transaction 1\n" in text
    assert "+++ b/etc/demo.conf\tafter transaction 4\n" in text


def test_diff_leaves_out_the_first_transactions_own_changes(four):
    document = diff_json(four, "3", "4")
    assert document["packages"] == [{"name": "demo", "from": "2.0-1", "to": "3.0-1"}]
    assert [f["path"] for f in document["files"]] == ["/etc/demo.conf"]
    assert "-port=2\n+port=3" in document["files"][0]["diff"]
    # N-1 N is N's own change: what `clp diff N` shows
    assert (
        diff_json(four, "1", "2")["files"][0]["diff"].split("\n", 2)[2]
        == (diff_json(four, "2")["files"][0]["diff"].split("\n", 2)[2])
    )


def test_diff_the_other_way_round_reverses_the_changes(four):
    document = diff_json(four, "4", "1")
    assert document["packages"] == [
        {"name": "demo", "from": "3.0-1", "to": "1.0-1"},
        {"name": "other", "from": "1.0-1", "to": None},
    ]
    files = {f["path"]: f for f in document["files"]}
    assert "-port=3\n+port=1" in files["/etc/demo.conf"]["diff"]
    assert "--- a/etc/demo.conf\tafter transaction 4" in files["/etc/demo.conf"]["diff"]
    assert files["/etc/other.conf"]["summary"] == "deleted"
    text = four.clp("diff", "4", "1").stdout
    assert "-> other 1.0-1 (removed)" in text


def test_diff_of_a_transaction_with_itself_shows_nothing(four):
    assert diff_json(four, "2", "2") == {"from": 2, "to": 2, "packages": [], "files": []}
    result = four.clp("diff", "2", "2")
    assert result.returncode == 0
    assert result.stdout == "nothing recorded changed from transaction 2 to 2\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("1", "9"), "there is no transaction 9 (see 'clp transactions')"),
        (("1..",), "'1..' is not a range of transactions (N..M)"),
        (("..4",), "'..4' is not a range of transactions (N..M)"),
        (("one", "4"), "'one' is not a transaction number"),
        (("1", "x"), "'x' is not a transaction number"),
    ],
)
def test_diff_of_a_bad_range_is_one_line_and_exit_2(four, args, message):
    result = four.clp("diff", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: {message}\n"
    document = json.loads(four.clp("diff", *args, "--json").stdout)
    assert document == {"error": message, "exit_code": 2}


def test_diff_to_a_transaction_still_open_is_refused(four):
    pre = four.run("chroot", four.root, "/usr/bin/clp", "hook", "pre-transaction",
                   input=f"{PKG}\netc/demo.conf\n")  # fmt: skip
    assert pre.returncode == 0 and not pre.stderr, pre.stderr
    with (four.root / "var/lib/pacman/db.lck").open("w"):  # its pacman at work holds the lock
        result = four.clp("diff", "4", "5")
    assert result.returncode == 2
    assert result.stderr == (
        "error: transaction 5 is not finished (its post-transaction hook has not run)\n"
    )
