"""The `clp` executable. `clp hook ...` skips the click front end: pacman waits for it on
every transaction, so it must start fast (see bench/hooks.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["hook"]:
        return run_hook_command(args[1:])
    from clp_alpm.cli.app import main as cli_main

    return cli_main(args)


def run_hook_command(args: list[str], root: Path = Path("/")) -> int:
    """`clp hook pre-transaction|post-transaction`, targets on stdin. Always exits 0."""
    from clp_alpm.ops.hooks import Output, run_hook

    def info(text: str) -> None:
        print(text, flush=True)

    def warning(text: str) -> None:
        print(f"warning: {text}", file=sys.stderr, flush=True)

    if len(args) != 1:
        warning("usage: clp hook pre-transaction|post-transaction (targets on stdin)")
        return 0
    # paths are bytes on Linux: one that is not UTF-8 must not cost the transaction its record
    raw = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    stdin = os.fsdecode(raw)
    run_hook(args[0], stdin, Output(info=info, warning=warning, output=info), root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
