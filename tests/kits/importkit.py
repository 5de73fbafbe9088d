"""Which modules a clp command loads: the command run in its own process as `clp` runs it,
writing `sys.modules` to a file when it exits (the import rule of the short commands, issue 13).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# What a read-only command (`clp list`, `pins`, `transactions`, `status`, `--help`) never loads.
FORBIDDEN = {
    "archive code": ("clp_alpm.formats.archive", "clp_alpm.formats.members",
                     "clp_alpm.formats.zipread", "clp_alpm.formats.tarread",
                     "clp_alpm.formats.inspect", "clp_alpm.formats.extract", "zipfile", "tarfile"),
    "XML": ("lxml", "clp_alpm.formats.meta", "clp_alpm.formats.pkginfo"),
    "download code": ("clp_alpm.system.download", "http", "ssl", "email", "urllib.request"),
}  # fmt: skip

# The modules of the command groups (clp_alpm/cli/main.py's COMMANDS point into them).
COMMAND_MODULES = ("clp_alpm.cli.patch", "clp_alpm.cli.revert", "clp_alpm.cli.transactions",
                   "clp_alpm.cli.feed", "clp_alpm.cli.system", "clp_alpm.cli.health")  # fmt: skip

READ_ONLY_COMMANDS = ("list", "pins", "transactions", "status")

_PROBE = """import atexit, os, sys
atexit.register(lambda: open(os.environ["CLP_MODULES_FILE"], "w").write("\\n".join(sys.modules)))
from clp_alpm.cli.entry import main
sys.exit(main(sys.argv[1:]))
"""


def run_listing_modules(
    *args: str, listing: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `clp ARGS` (this Python, the installed package) and the modules it had loaded."""
    full_env = dict(os.environ) | (env or {}) | {"CLP_MODULES_FILE": str(listing)}
    argv = [sys.executable, "-c", _PROBE, *args]
    result = subprocess.run(
        argv, capture_output=True, text=True, env=full_env, stdin=subprocess.DEVNULL, timeout=120
    )
    return result, set(listing.read_text().split())


def _matches(module: str, names: tuple[str, ...]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in names)


def forbidden_loaded(modules: set[str]) -> dict[str, list[str]]:
    """The forbidden modules among `modules`, by what they are."""
    found = {what: sorted(m for m in modules if _matches(m, names))
             for what, names in FORBIDDEN.items()}  # fmt: skip
    return {what: names for what, names in found.items() if names}
