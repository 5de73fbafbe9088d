"""The front end of `clp hook pre-transaction|post-transaction`, which pacman's hook files run.

No click here: pacman waits for this process on every transaction. Messages go to pacman's
output (and so to its log); a hook never fails the transaction, whatever happens.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # pacman waits for this process: no typing import at run time
if TYPE_CHECKING:
    from typing import Any


def _info(text: str) -> None:
    print(text, flush=True)


def _warning(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def run_hook_command(
    args: list[str], values: dict[str, Any] | None = None, process_ends: bool = False
) -> int:
    """`clp hook pre-transaction|post-transaction`, targets on stdin, with the global options'
    `values` (as the option table names them). Always exits 0. `process_ends`: this process
    is the hook, and ends with os._exit once this returns."""
    from clp_alpm.cli.argv import config_arguments
    from clp_alpm.ops.hooks import Output, run_hook

    if len(args) != 1:
        _warning("usage: clp hook pre-transaction|post-transaction (targets on stdin)")
        return 0
    # paths are bytes on Linux: one that is not UTF-8 must not cost the transaction its record
    raw = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    stdin = os.fsdecode(raw)
    root, config_file, overrides = config_arguments(values or {})
    output = Output(info=_info, warning=_warning, output=_info)
    run_hook(args[0], stdin, output, root, config_file, overrides, process_ends)
    return 0
