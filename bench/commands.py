#!/usr/bin/env python3
"""Benchmark: the short commands against the interpreter floor, in the same run.

`clp --help`, `clp list`, `clp pins`, `clp transactions` and `clp status` (on a sandbox root
with a revert and a pin recorded, so that each lists something) against `python3 -I -S -c
pass`, interleaved round by round; medians. Goals (issue 13): each command at most 4x the
floor, and no read-only command loads the archive, XML or download code (tests/kits/importkit.py
names those modules). `python -c pass` (with site, as `clp` starts) is shown beside them.

    .venv/bin/python -m bench.commands [--rounds 21]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.revert import make_root
from clp_alpm.cli import launcher
from tests.kits.importkit import READ_ONLY_COMMANDS, forbidden_loaded, run_listing_modules

GOAL_RATIO = 4.0


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return elapsed


def packaged_clp(path: Path) -> Path:
    """`/usr/bin/clp` as the PKGBUILD writes it (clp_alpm/cli/launcher.py), for this checkout
    and this interpreter's site-packages: what a user runs."""
    import site

    path.parent.mkdir(parents=True, exist_ok=True)
    checkout = str(Path(__file__).resolve().parents[1])
    launcher.write(str(path), sys.executable, [checkout, *site.getsitepackages()])
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: byte code is cached
    work = Path(tempfile.mkdtemp(prefix="clp-bench-commands-", dir="/var/tmp"))
    try:
        root = make_root(work, 3, 1024)
        installed = packaged_clp(work / "bin/clp")
        clp = [str(installed), "--root", str(root)]
        subprocess.run([*clp, "--noconfirm", "revert", "demo", "1.0-1"], check=True,
                       capture_output=True)  # fmt: skip
        floor = [sys.executable, "-I", "-S", "-c", "pass"]
        with_site = [sys.executable, "-c", "pass"]
        commands = {"clp --help": [str(installed), "--help"]}
        commands |= {f"clp {name}": [*clp, name] for name in READ_ONLY_COMMANDS}
        runs: dict[str, list[float]] = {name: [] for name in ("floor", "site", *commands)}
        for argv in (floor, with_site, *commands.values()):  # warm: byte code, page cache
            timed(argv)
        for _ in range(args.rounds):
            runs["floor"].append(timed(floor))
            runs["site"].append(timed(with_site))
            for name, argv in commands.items():
                runs[name].append(timed(argv))
        medians = {name: statistics.median(times) * 1000 for name, times in runs.items()}
        base = medians["floor"]
        print(f"rounds: {args.rounds} (interleaved); medians")
        print(f"  python3 -I -S -c pass        {base:7.1f} ms   (the floor)")
        print(f"  python3 -c pass              {medians['site']:7.1f} ms   "
              f"{medians['site'] / base:5.2f}x  (site, as clp starts)")  # fmt: skip
        for name in commands:
            print(f"  {name:<28} {medians[name]:7.1f} ms   {medians[name] / base:5.2f}x")
        goals = []
        for name in commands:
            ratio = medians[name] / base
            goals.append((ratio <= GOAL_RATIO, f"{name} <= {GOAL_RATIO:.0f}x the floor: "
                          f"{ratio:.2f}x ({medians[name]:.1f} ms)"))  # fmt: skip
        for name in READ_ONLY_COMMANDS:
            _, modules = run_listing_modules(*clp[1:], name, listing=work / "modules")
            found = forbidden_loaded(modules)
            said = "; ".join(f"{what}: {', '.join(names)}" for what, names in found.items())
            goals.append((not found, f"clp {name} loads no archive, XML or download code"
                          + (f" ({said})" if said else "")))  # fmt: skip
        for passed, text in goals:
            print(f"  {'PASS' if passed else 'MISS'}  {text}")
        return 0 if all(passed for passed, _ in goals) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
