#!/usr/bin/env python3
"""Benchmark: the cost of importing the hook path, this checkout against an earlier commit.

pacman waits for `clp hook` on every transaction, and most of its start-up is importing the
modules the hook needs. This compares that import in this checkout with the same import at
REV (checked out into a temporary git worktree), each in a fresh Python with byte code cached
as an installed clp has it:

- instructions counted by `valgrind --tool=callgrind` (repeatable whatever else the machine
  does; skipped when valgrind is missing), and
- wall time, the median of alternating runs, beside `python -S -c pass` as the floor.

Python starts with -S, as /usr/bin/clp starts it for a hook, and the hook path is imported as
clp_alpm/cli/entry.py imports it (after its lean stdlib imports, where the tree has them).
`--python` measures another interpreter (Arch's is newer than this machine's).

    .venv/bin/python -m bench.hook_import [--against 7f89797] [--runs 60] [--python PATH]

Exit status: 0 if this checkout counts no more than 1% more instructions than REV (or, without
valgrind, its median is no more than 5% slower), 1 if it does, 2 if the benchmark failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the hook's module before and after the layered layout (the default REV, 7f89797, is the
# commit before the hook path lost dataclasses, tempfile and OpenSSL's sha256)
HOOK_MODULES = ("clp_alpm/ops/hooks.py", "clp_alpm/hooks.py")


def hook_module(tree: Path) -> str:
    for relative in HOOK_MODULES:
        if (tree / relative).is_file():
            return relative[: -len(".py")].replace("/", ".")
    raise SystemExit(f"bench: no hook module in {tree}")


def hook_import(tree: Path) -> str:
    """The code importing the hook path of `tree` as its entry point does for `clp hook`."""
    entry = tree / "clp_alpm/cli/entry.py"
    text = entry.read_text() if entry.is_file() else ""
    lean = [n for n in ("_import_lean_sqlite", "_import_lean_stdlib") if f"def {n}(" in text]
    prelude = f"from clp_alpm.cli import entry; entry.{lean[0]}(); " if lean else ""
    return f"{prelude}import {hook_module(tree)}"


def environment(cache: Path) -> dict[str, str]:
    dropped = ("PYTHONDONTWRITEBYTECODE", "PYTHONSAFEPATH", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return env | {"PYTHONPYCACHEPREFIX": str(cache)}


PYTHON = [sys.executable]  # --python replaces it


def run(tree: Path, code: str, env: dict[str, str]) -> None:
    # cwd first on sys.path: the tree's own clp_alpm is the one imported
    subprocess.run([*PYTHON, "-S", "-c", code], cwd=tree, env=env, check=True)


def instructions(tree: Path, code: str, env: dict[str, str]) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         *PYTHON, "-S", "-c", code],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit("bench: callgrind printed no instruction count")
    return int(found.group(1))


def wall_medians(cases: dict[str, tuple[Path, str]], env: dict[str, str], runs: int) -> dict:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (tree, code) in cases.items():
            start = time.perf_counter()
            run(tree, code, env)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="7f89797", help="the earlier commit")
    parser.add_argument("--runs", type=int, default=60, help="wall-time runs per case")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    args = parser.parse_args()
    PYTHON[:] = [os.path.abspath(shutil.which(args.python) or args.python)]  # runs in the trees
    scratch = Path(tempfile.mkdtemp(prefix="clp-bench-import-"))
    earlier = scratch / "earlier"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(earlier),
                    args.against], check=True)  # fmt: skip
    try:
        # both trees on the same file system: stat() and open() of the modules cost alike
        current = scratch / "current"
        shutil.copytree(REPO / "clp_alpm", current / "clp_alpm")
        env = environment(scratch / "pycache")
        cases = {
            "python -S -c pass": (scratch, "pass"),
            f"{args.against}: import {hook_module(earlier)}": (earlier, hook_import(earlier)),
            f"this checkout: import {hook_module(REPO)}": (current, hook_import(REPO)),
        }  # fmt: skip
        for tree, code in cases.values():
            run(tree, code, env)  # byte code compiled and cached before anything is measured
        medians = wall_medians(cases, env, args.runs)
        counts = None
        if shutil.which("valgrind"):
            counts = {name: instructions(tree, code, env) for name, (tree, code) in cases.items()}
        print(f"== importing the hook path: {args.runs} alternating runs each, {args.python}")
        for name in cases:
            count = f"{counts[name] / 1e6:8.1f} M instructions" if counts else ""
            print(f"   {name:48} {medians[name]:7.1f} ms median  {count}")
        before, now = list(cases)[1:]
        wall_ratio = medians[now] / medians[before]
        print(f"   this checkout / {args.against}: {wall_ratio:.3f}x wall", end="")
        if counts is None:
            print(" (valgrind not found: no instruction counts)")
            passed = wall_ratio <= 1.05
            print(f"  {'PASS' if passed else 'MISS'}  hook import <= 1.05x {args.against}'s wall")
            return 0 if passed else 1
        floor = counts["python -S -c pass"]
        ratio = counts[now] / counts[before]
        own = (counts[now] - floor) / (counts[before] - floor)
        print(f", {ratio:.4f}x instructions ({own:.4f}x of what clp itself adds to Python's)")
        passed = ratio <= 1.01
        verdict = "PASS" if passed else "MISS"
        print(f"  {verdict}  hook import <= 1.01x {args.against}'s instructions: {ratio:.4f}x")
        return 0 if passed else 1
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(earlier)],
                       check=False)  # fmt: skip
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (subprocess.CalledProcessError, OSError) as err:
        print(f"bench/hook_import.py: {err}", file=sys.stderr)
        sys.exit(2)
