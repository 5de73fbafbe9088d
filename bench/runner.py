#!/usr/bin/env python3
"""Every benchmark of bench/, one after the other, and one verdict: what `bench/run` runs.

Each benchmark measures clp against its reference in the same run and prints its goals as
`PASS`/`MISS` lines, each with its ratio; this prints the load average before each one (a loaded
machine makes every ratio worse) and after the last, then every goal line together, each
benchmark's with the load it started under. Exit status: 0 when every goal is met, 1 when one
is missed, 2 when a benchmark itself failed.

    bench/run [--quick] [--only MODULE]...   (as root; --quick: smaller inputs, for a first look)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Benchmark:
    module: str
    reference: str  # what it is measured against, in the same run
    quick: str = ""  # its arguments under --quick
    full: str = ""  # its arguments otherwise


# One line each: module, reference, --quick arguments.
BENCHMARKS = [
    Benchmark("bench.commands", "python3 -I -S -c pass", "--rounds 7"),
    Benchmark("bench.hooks", "pacman bare, etckeeper, snapper+snap-pac on btrfs",
              "--rounds 3 --tree-files 2000 --starts 20", "--rounds 15"),  # 7: ±5 ms a row
    Benchmark("bench.revert", "pacman -U of the cached package", "--rounds 3 --files 300"),
    Benchmark("bench.patch_apply", "gpg --verify + bsdtar -xf", "--size-mb 128 --runs 2"),
    Benchmark("bench.hook_import", "the hook path at an earlier commit", "--runs 20"),
    Benchmark("bench.snapshots", "git status and git's first commit", "--rounds 3"),
]  # fmt: skip


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def run(benchmark: Benchmark, quick: bool) -> tuple[int, list[str], float]:
    """Run one benchmark, its output shown as it comes; its status, goal lines and seconds."""
    args = (benchmark.quick if quick else benchmark.full).split()
    command = [sys.executable, "-m", benchmark.module, *args]
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    goals = []
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.strip().startswith(("PASS ", "MISS ", "INFO ")):
            goals.append(line.strip())
    return process.wait(), goals, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer rounds")
    parser.add_argument("--only", action="append", metavar="MODULE", default=[],
                        help="only this benchmark (e.g. bench.commands); repeatable")  # fmt: skip
    args = parser.parse_args()
    known = {benchmark.module for benchmark in BENCHMARKS}
    unknown = [name for name in args.only if name not in known]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    chosen = [b for b in BENCHMARKS if not args.only or b.module in args.only]
    results = []
    for benchmark in chosen:
        started_under = load()
        print(f"\n==== {benchmark.module} (against {benchmark.reference}); {started_under}",
              flush=True)  # fmt: skip
        results.append((benchmark, started_under, *run(benchmark, args.quick)))
    print(f"\n==== every goal; {load()}")
    worst = 0
    for benchmark, started_under, status, goals, seconds in results:
        state = {0: "ok", 1: "goal missed"}.get(status, f"failed (exit {status})")
        print(f"{benchmark.module}: {state}, {seconds:.0f} s; started under {started_under}")
        for goal in goals:
            print(f"    {goal}")
        worst = max(worst, 2 if status not in (0, 1) else status)
    return worst


if __name__ == "__main__":
    sys.exit(main())
