#!/usr/bin/env python3
"""Every benchmark of bench/, one after the other, and one verdict: what `bench/run` runs.

Each benchmark measures clp against its reference in the same run and prints its goals as
`PASS`/`MISS` lines; this prints the load average before and after each one (a loaded machine
makes every ratio worse), then every goal line together. Exit status: 0 when every goal is met,
1 when one is missed, 2 when a benchmark itself failed.

    bench/run [--quick]     (as root; --quick: smaller inputs, for a first look)
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
    reference: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()


BENCHMARKS = (
    Benchmark("bench.hooks", "pacman without hooks, python -c pass, etckeeper",
              quick=("--rounds", "3", "--tree-files", "2000", "--starts", "20")),
    Benchmark("bench.revert", "pacman -U of the cached package", quick=("--rounds", "3")),
    Benchmark("bench.patch_apply", "gpg --verify + bsdtar -xf",
              quick=("--size-mb", "128", "--runs", "2")),
    Benchmark("bench.hook_import", "the hook path at an earlier commit", quick=("--runs", "20")),
    Benchmark("bench.snapshots", "git status and git's first commit", quick=("--rounds", "3")),
)  # fmt: skip


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def run(benchmark: Benchmark, quick: bool) -> tuple[int, list[str], float]:
    """Run one benchmark, its output shown as it comes; its status, goal lines and seconds."""
    args = benchmark.quick if quick else benchmark.full
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
    args = parser.parse_args()
    results = []
    for benchmark in BENCHMARKS:
        print(f"\n==== {benchmark.module} (against {benchmark.reference}); {load()}", flush=True)
        results.append((benchmark, *run(benchmark, args.quick)))
    print(f"\n==== every goal; {load()}")
    worst = 0
    for benchmark, status, goals, seconds in results:
        state = {0: "ok", 1: "goal missed"}.get(status, f"failed (exit {status})")
        print(f"{benchmark.module}: {state}, {seconds:.0f} s")
        for goal in goals:
            print(f"    {goal}")
        worst = max(worst, 2 if status not in (0, 1) else status)
    return worst


if __name__ == "__main__":
    sys.exit(main())
