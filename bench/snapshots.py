#!/usr/bin/env python3
"""Benchmark: clp's snapshot store against git on the same 10,000-file /etc-like tree.

Measured in one run, on the same tree (bench/hooks.py's generator), its ctimes aged past
RACY_MARGIN as a real /etc's are:

1. a second snapshot of the unchanged tree (SnapshotStore.take with the first snapshot as
   `previous`, the walk of the tree included) against `git status` on a repository holding
   the tree committed: medians of interleaved rounds. Goal: <= 1.5x.
2. the disk the first snapshot adds against the disk of git's first commit (`git init`,
   `git add -A`, `git commit`, with git's automatic gc in the foreground as it runs after a
   commit of that many objects). Goal: <= 2x.

Wall time decides; CPU time is shown beside it. Loading the previous snapshot from disk (as
the pacman hook does) is shown on its own line.

    .venv/bin/python -m bench.snapshots [--tree-files 10000] [--rounds 9] [--dir /var/tmp]

Exit status: 0 if every goal is met, 1 if one is missed, 2 if the benchmark itself failed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.hooks import mib, ms, usage, wait_until_older_than_racy_margin, write_tree
from clp_alpm.store.snapshots import SnapshotStore

SECOND_GOAL = 1.5
DISK_GOAL = 2.0


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def git_env() -> dict[str, str]:
    return dict(os.environ) | {
        "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@localhost",
        "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "gc.autoDetach",
        "GIT_CONFIG_VALUE_0": "false",
    }  # fmt: skip


def git(tree: Path, *args: str) -> tuple[float, float, str]:
    """Wall and CPU seconds of one git command in `tree`, and its output."""
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                          env=git_env(), stdin=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench: git {' '.join(args)} failed: {done.stderr.strip()}")
    return wall, children_cpu() - cpu, done.stdout


def paths_of(root: Path) -> list[str]:
    paths = []
    for parent, _dirs, filenames in os.walk(root / "etc"):
        relative = "/" + os.path.relpath(parent, root)
        paths.append(relative)
        paths += [f"{relative}/{name}" for name in filenames]
    return paths


def take(store: SnapshotStore, root: Path, previous: object = None) -> tuple[float, float, object]:
    """Wall and CPU seconds of one snapshot of root/etc, the walk included."""
    cpu = time.process_time()
    start = time.perf_counter()
    snapshot = store.take(root, paths_of(root), previous=previous)  # type: ignore[arg-type]
    return time.perf_counter() - start, time.process_time() - cpu, snapshot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree-files", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if shutil.which("git") is None:
        print("bench/snapshots.py: git is not installed", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="clp-bench-snapshots-", dir=args.dir))
    try:
        return run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> int:
    print(f"== snapshots of a {args.tree_files}-file /etc-like tree: clp against git; {load()}")
    root = work / "root"
    files = write_tree(root / "etc", args.tree_files)
    repo = work / "git"
    subprocess.run(["cp", "-a", str(root / "etc"), str(repo)], check=True)
    waited = wait_until_older_than_racy_margin(files + list(repo.rglob("*")))
    size = sum(path.stat().st_size for path in files)
    print(f"   tree: {len(files)} files, {size / (1 << 20):.1f} MiB; waited {waited:.1f} s")

    os.sync()
    git_first = time.perf_counter()
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    git_first = time.perf_counter() - git_first
    git_disk, git_apparent = usage(repo / ".git")
    git(repo, "status", "--porcelain")  # the index is refreshed once, as after any commit

    store = SnapshotStore(work / "store")
    os.sync()
    first_wall, first_cpu, first = take(store, root)
    clp_disk, clp_apparent = usage(store.directory)
    os.sync()

    seconds: dict[str, list[float]] = {"git status": [], "clp second": [], "clp load": []}
    cpu: dict[str, list[float]] = {name: [] for name in seconds}
    for number in range(args.rounds):
        sides = ["git", "clp"] if number % 2 == 0 else ["clp", "git"]
        for side in sides:
            if side == "git":
                wall, used, out = git(repo, "status", "--porcelain")
                if out.strip():
                    raise SystemExit(f"bench: git status found changes: {out[:200]}")
                seconds["git status"].append(wall)
                cpu["git status"].append(used)
            else:
                start, used = time.perf_counter(), time.process_time()
                previous = store.load(first.id)  # type: ignore[attr-defined]
                seconds["clp load"].append(time.perf_counter() - start)
                cpu["clp load"].append(time.process_time() - used)
                wall, used, second = take(store, root, previous)
                seconds["clp second"].append(wall)
                cpu["clp second"].append(used)
                if second.files != previous.files:  # type: ignore[attr-defined]
                    raise SystemExit("bench: the second snapshot differs from the first")
                store.delete(second.id)  # type: ignore[attr-defined]
    if store.bytes_hashed != size:
        raise SystemExit(f"bench: clp read {store.bytes_hashed} bytes again, not {size}")

    print(f"   {'':<40} {'median':>11} {'min':>11} {'median CPU':>11}")
    labels = {
        "git status": "git status (unchanged tree)",
        "clp second": "clp second snapshot (unchanged tree)",
        "clp load": "  clp loading the first snapshot",
    }
    for name, label in labels.items():
        values = seconds[name]
        print(f"   {label:<40} {ms(statistics.median(values))} {ms(min(values))} "
              f"{ms(statistics.median(cpu[name]))}")  # fmt: skip
    print(f"   {'first: git init + add + commit':<40} {ms(git_first)}   "
          f"{mib(git_disk)} on disk, {mib(git_apparent)} apparent")  # fmt: skip
    print(f"   {'first: clp snapshot':<40} {ms(first_wall)}   {mib(clp_disk)} on disk, "
          f"{mib(clp_apparent)} apparent (CPU {ms(first_cpu).strip()})")  # fmt: skip
    second_ratio = statistics.median(seconds["clp second"]) / statistics.median(
        seconds["git status"]
    )
    disk_ratio = clp_disk / git_disk
    with_load = (
        statistics.median(seconds["clp second"]) + statistics.median(seconds["clp load"])
    ) / statistics.median(seconds["git status"])
    goals = [
        (f"second snapshot of an unchanged tree <= {SECOND_GOAL}x git status",
         second_ratio <= SECOND_GOAL,
         f"{second_ratio:.2f}x ({statistics.median(seconds['clp second']) * 1000:.0f} ms vs "
         f"{statistics.median(seconds['git status']) * 1000:.0f} ms; with loading the "
         f"previous snapshot {with_load:.2f}x)"),
        (f"first snapshot's disk <= {DISK_GOAL}x git's first commit",
         disk_ratio <= DISK_GOAL,
         f"{disk_ratio:.2f}x ({clp_disk / (1 << 20):.1f} MiB vs {git_disk / (1 << 20):.1f} MiB)"),
    ]  # fmt: skip
    print(f"goals: ({load()})")
    for name, passed, detail in goals:
        print(f"  {'PASS' if passed else 'MISS'}  {name}: {detail}")
    return 0 if all(passed for _, passed, _ in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
