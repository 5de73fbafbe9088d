"""The lean imports of the listings and hooks (clp_alpm/cli/entry.py): pathlib without re
(before Python 3.12), urllib.parse or functools (nor collections with it), the state database
without sqlite3's datetime; whoever imports those later gets the real modules, and pathlib,
fnmatch and sqlite3 work with them as usual: SQLite's statement cache and fnmatch's pattern
cache are functools' own C cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.kits import pythons
from tests.kits.paths import REPO

PROBE = """
import sys, warnings
from clp_alpm.cli import entry
entry._import_lean_stdlib()
from clp_alpm.store import state
# from Python 3.12, pathlib's re and enum (and 3.13's glob) load functools and the others
for_patterns = ("re", "enum", "functools", "collections", "contextlib")
patterns = for_patterns if sys.version_info < entry.PATHLIB_COMPILES_PATTERNS else ()
print(sorted(m for m in ("urllib.parse", "ipaddress", "datetime", "json", *patterns)
             if m in sys.modules))
print(sorted(m for m in ("pathlib", "sqlite3") if m in sys.modules))
import pathlib, fnmatch
print(pathlib.Path("/a b/c").as_uri())
print(pathlib.PurePath("x/b.py").match("*.PY"), fnmatch.fnmatchcase("a.c", "*.[ch]"))
import re
print(re.compile("a+").fullmatch("aa") is not None, sys.modules["re"] is re, "enum" in sys.modules)
import urllib.parse, datetime
print(urllib.parse.urlsplit("http://host/p").netloc, hasattr(urllib.parse, "quote"))
print(datetime.UTC, datetime.date is sys.modules["_datetime"].date)
import sqlite3
warnings.simplefilter("ignore", DeprecationWarning)
connection = sqlite3.connect(":memory:")
print(connection.execute("SELECT ?", (datetime.date(2020, 1, 2),)).fetchone()[0])
print(sqlite3.Date is datetime.date)
import functools, _functools
print(sys.modules["functools"] is functools, functools.reduce(max, [3, 9, 4]),
      type(fnmatch._compile_pattern) is _functools._lru_cache_wrapper)
before = fnmatch._compile_pattern.cache_info()
fnmatch.fnmatch("b.conf", "*.conf"); fnmatch.fnmatch("c.conf", "*.conf")
after = fnmatch._compile_pattern.cache_info()
print(after[0] - before[0], after[1] - before[1], fnmatch._compile_pattern.__name__)
state_db = state.StateDB(__import__("pathlib").Path(sys.argv[1]))
for _ in range(3):
    state_db.set_setting("k", "v")
print(state_db.get_setting("k"))
"""


def run_probe(python: str, probe: str, state_dir: Path) -> list[str]:
    """What `probe` prints, run by `python` without site (as the launcher starts it)."""
    result = subprocess.run([python, "-S", "-c", probe, str(state_dir)], capture_output=True,
                            text=True, timeout=60, env={"PYTHONPATH": str(REPO)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("python", pythons.each_version())
def test_pathlib_and_sqlite3_load_alone_and_the_others_stay_real(python, tmp_path):
    assert run_probe(python, PROBE, tmp_path) == [
        "[]",
        "['pathlib']",
        "file:///a%20b/c",
        "False True",
        "True True True",
        "host True",
        "UTC True",
        "2020-01-02",
        "True",
        "True 9 True",
        "1 1 _compile_pattern",  # a hit and a miss
        "v",
    ]


def test_nothing_is_stood_in_for_once_it_is_loaded():
    code = (
        "import sys, urllib.parse, re\nfrom clp_alpm.cli import entry\n"
        "real = sys.modules['urllib.parse'], sys.modules['re']\nentry._import_lean_stdlib()\n"
        "import pathlib\nprint((sys.modules['urllib.parse'], pathlib.re) == real,"
        " 'sqlite3' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


HOOK_PROBE = """
import sys
from clp_alpm.cli import entry
entry._import_lean_sqlite()
import clp_alpm.cli.argv, clp_alpm.cli.hook, clp_alpm.ops.hooks, clp_alpm.store.completion
from clp_alpm.store import state
print(sorted(m for m in ("pathlib", "fnmatch", "re", "enum", "functools", "collections",
                         "contextlib", "urllib.parse", "ipaddress", "datetime", "json",
                         "typing", "dataclasses", "sqlite3") if m in sys.modules))
state_db = state.StateDB(sys.argv[1])
for _ in range(3):
    state_db.set_setting("k", "v")
print(state_db.get_setting("k"))
import functools, sqlite3
print(sys.modules["functools"] is functools, functools.reduce(max, [3, 9, 4]),
      sqlite3.connect(":memory:").execute("SELECT 2").fetchone()[0])
"""


@pytest.mark.parametrize("python", pythons.each_version())
def test_the_hooks_path_loads_sqlite_alone_and_no_pathlib(python, tmp_path):
    assert run_probe(python, HOOK_PROBE, tmp_path) == ["[]", "v", "True 9 2"]
