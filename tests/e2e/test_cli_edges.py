"""The front end's edges as a user meets them: usage errors under --json, non-root users,
an empty state database, names that are both a patch ID and a directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits.clpkit import CLP


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           str(CLP), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def test_a_usage_error_under_json_is_a_json_document(clp):
    for args in (["--json", "frobnicate"], ["list", "--json", "--bogus"], ["--json", "apply"]):
        result = clp(*args)
        assert result.returncode == 2, args
        document = json.loads(result.stdout)
        assert document["exit_code"] == 2 and document["error"] in result.stderr


def test_status_refuses_a_user_who_would_see_only_their_own_processes(sandbox):
    result = as_nobody("--root", str(sandbox), "status")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: you cannot perform this operation unless you are root."
    assert "no running process" not in result.stdout


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A root other users may enter (pytest's own temporary dirs are root's only)."""
    root = Path(tempfile.mkdtemp(prefix="clp-edges-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


def test_reading_the_state_as_a_user_says_run_as_root(open_root, clp):
    assert clp("--root", str(open_root), "recover").returncode == 0  # makes the 0700 state dir
    for command in ("list", "transactions"):
        result = as_nobody("--root", str(open_root), command)
        assert result.returncode == 2, result.stderr
        assert "Permission denied); run as root" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_root_the_user_cannot_enter_is_one_line(sandbox):
    result = as_nobody("--root", str(sandbox), "list")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "internal error" not in result.stderr


def test_an_empty_state_database_reads_as_nothing_recorded(sandbox, clp):
    state = sandbox / "var/lib/clp"
    state.mkdir(parents=True, mode=0o700)
    (state / "clp.db").write_bytes(b"")
    listed = clp("--root", str(sandbox), "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert json.loads(clp("--root", str(sandbox), "transactions", "--json").stdout) == []


def test_info_of_an_id_beside_a_directory_of_that_name(tmp_path, sandbox, clp):
    (tmp_path / "CLPR261125").mkdir()  # what 'clp new CLPR261125' leaves in the cwd
    result = clp("--root", str(sandbox), "info", "CLPR261125", cwd=tmp_path)
    assert result.returncode == 2
    assert "patch 'CLPR261125' is not known to clp" in result.stderr


def test_a_transaction_that_is_not_a_number_is_one_line(sandbox, clp):
    for command in ("diff", "undo-transaction"):
        result = clp("--root", str(sandbox), command, "abc", "--noconfirm")
        assert result.returncode == 2, result.stderr
        assert result.stderr == "error: 'abc' is not a transaction number\n"
