"""The lean imports of the listings and hooks (clp_alpm/cli/entry.py): pathlib without re
(before Python 3.12) or urllib.parse, the state database without sqlite3's datetime; whoever
imports those later gets the real modules, and pathlib, fnmatch and sqlite3 work with them as
usual."""

from __future__ import annotations

import subprocess
import sys

from tests.kits.paths import REPO

PROBE = """
import sys, warnings
from clp_alpm.cli import entry
entry._import_lean_stdlib()
from clp_alpm.store import state
patterns = ("re", "enum") if sys.version_info < entry.PATHLIB_COMPILES_PATTERNS else ()
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
"""


def test_pathlib_and_sqlite3_load_alone_and_the_others_stay_real():
    env = {"PYTHONPATH": str(REPO)}  # -S: no site, as the launcher starts
    result = subprocess.run([sys.executable, "-S", "-c", PROBE], capture_output=True,
                            text=True, timeout=60, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[]",
        "['pathlib']",
        "file:///a%20b/c",
        "False True",
        "True True True",
        "host True",
        "UTC True",
        "2020-01-02",
        "True",
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
