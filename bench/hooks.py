#!/usr/bin/env python3
"""Benchmark: clp's pacman hooks, `clp hook` start-up, and snapshots against etckeeper.

Three measurements, each against a reference taken in the same run (medians of several rounds):

1. `pacman -U` upgrading a typical package (300 files, 8 MiB, 5 under etc/) in a sandbox root
   with clp's hooks, against an identical root without them. Both roots are HookRoots (same
   namespace and bind mounts); the reference one has its hook files removed. Goal: <= 1.10x.
2. `chroot ROOT /usr/bin/clp hook pre-transaction </dev/null` against `chroot ROOT python -S -c
   pass` (Python as the launcher starts it, without site), many times from one mount namespace
   (its set-up is not counted). Goal: < 80 ms.
3. SnapshotStore.take of a 10,000-file /etc-like tree against `etckeeper commit` (git) of a copy:
   first run, second run on the unchanged tree, third after changing 10 files; time and bytes
   added. Goal: the second clp run takes < 10% of the first's time and adds < 1% of its bytes.

4. What the two hooks add to a transaction of tiny packages (each one small file under etc/),
   hooked root against an identical one without hooks, interleaved rounds: <= 45 ms for one
   package, and flat within 10% from 1 to 50 packages, from 100 to 10,000 files in /etc and
   from 50 to 5,000 recorded transactions (HistoryLimit above that, so that none is pruned).
   Beside it in the same rounds, for 1 and 50 packages and 100 and 10,000 files in /etc: the
   same on a btrfs loop image, clp's hook files with a global option first (`clp --root /
   hook`: goal within 10% of without), etckeeper's hooks and snapper with snap-pac's (btrfs
   only; bench/peers.py), each against a root without hooks on its file system; clp's added
   cost over theirs is shown (issue 13: a third of snapper+snap-pac's, a fifth of etckeeper's).
   `--no-peers` leaves them out; a tool or btrfs missing is left out with an INFO line.

Wall time decides the goals; CPU time (of this process or of waited-for children) is shown
beside it because it moves less when other work shares the machine. Every measured operation
starts after sync(), so that no side pays for flushing another's writes. Python runs with a
byte-code cache inside the root, as an installed clp would (a row shows the cost without).

Runs as root (namespaces, chroot, loop devices); needs pacman, unshare, zstd, busybox-static,
etckeeper, and for section 4's peers btrfs-progs and snapper (`bash tools/setup.sh --test`).
Exit status: 0 if every goal is met, 1 if one is missed, 2 if the benchmark itself failed.

    .venv/bin/python -m bench.hooks [--rounds 7] [--files 300] [--size-mb 8] [--starts 30]
                                       [--tree-files 10000] [--dir /var/tmp] [--importtime]
                                       [--no-peers]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import site
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import clp_alpm
from bench import peers
from clp_alpm.store.model import Snapshot
from clp_alpm.store.observe import RACY_MARGIN_NS
from clp_alpm.store.snapshots import SnapshotStore
from tests.kits import pkgkit, rootkit
from tests.kits.hookkit import HookRoot

HERE = Path(__file__).resolve().parent

PKG = "demo"
ETC_FILES = 5
HOOK_GOAL_RATIO = 1.10
START_GOAL_MS = 80.0
ADDED_GOAL_MS = 45.0
FLAT_GOAL = 1.10
SECOND_TIME_GOAL = 0.10
SECOND_BYTES_GOAL = 0.01
CHANGED_FILES = 10
PYCACHE = "/var/cache/clp-bench-pycache"  # inside the root
WORDS = ("the", "option", "value", "path", "user", "group", "allow", "deny", "listen", "port",
         "enable", "disable", "include", "default", "timeout", "host", "address", "interface",
         "server", "client", "cache", "log", "level", "module", "key", "file")  # fmt: skip


class BenchError(Exception):
    """The benchmark could not measure what it set out to (not a missed goal)."""


@dataclass
class Goal:
    name: str
    passed: bool | None  # None: shown for information, not a goal
    detail: str


@dataclass
class Report:
    goals: list[Goal] = field(default_factory=list)

    def goal(self, name: str, passed: bool, detail: str) -> None:
        self.goals.append(Goal(name, passed, detail))

    def info(self, name: str, detail: str) -> None:
        self.goals.append(Goal(name, None, detail))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def mib(size: int) -> str:
    return f"{size / (1 << 20):8.2f} MiB"


def text_bytes(rng: random.Random, size: int, first_line: str) -> bytes:
    """Config-file-like text of exactly `size` bytes."""
    lines = [first_line]
    length = len(first_line) + 1
    while length < size:
        line = (
            f"{rng.choice(WORDS)}_{rng.choice(WORDS)} = {rng.choice(WORDS)} {rng.randrange(1000)}"
        )
        lines.append(line)
        length += len(line) + 1
    return ("\n".join(lines) + "\n").encode()[:size]


# --------------------------------------------------------------------- 1. pacman -U with hooks


def package_files(version: int, files: int, size_mb: int) -> dict[str, bytes]:
    """A typical package: libraries and data (half random, half text, so compression does
    some work and some is left), docs, and ETC_FILES config files that change every version.
    Only the config files and a VERSION file differ between versions, as in a point release."""
    rng = random.Random(42)
    data_files = files - ETC_FILES - 1
    weights = [rng.lognormvariate(0, 1.2) for _ in range(data_files)]
    total = size_mb << 20
    contents: dict[str, bytes] = {}
    for number, weight in enumerate(weights):
        size = max(64, int(total * weight / sum(weights)))
        text = text_bytes(rng, size // 2, f"# {PKG} file {number}")
        where = "usr/lib/demo" if number % 3 else "usr/share/demo"
        contents[f"{where}/part{number:04d}.dat"] = rng.randbytes(size - len(text)) + text
    for number in range(ETC_FILES):
        config = random.Random(number * 1000 + version)
        contents[f"etc/demo/conf{number}.conf"] = text_bytes(config, 1500, f"# version {version}")
    contents["usr/share/demo/VERSION"] = f"{version}\n".encode()
    return contents


def build_packages(directory: Path, versions: int, files: int, size_mb: int) -> list[Path]:
    """versions 1..`versions` as .pkg.tar.zst, like Arch's packages (zstd, built in threads:
    the compressor is a subprocess)."""

    def build(version: int) -> Path:
        contents = package_files(version, files, size_mb)
        return pkgkit.make_package_arch(
            directory, PKG, f"{version}.0-1", "any", contents, extension=".pkg.tar.zst"
        )

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        directory.mkdir(parents=True, exist_ok=True)
        return list(pool.map(build, range(1, versions + 1)))


def make_hook_root(directory: Path, with_hooks: bool) -> HookRoot:
    """A HookRoot in its own directory (HookRoot.pacman writes its pacman.host.conf beside the
    root); without hooks, the same root with the hook files taken out again."""
    directory.mkdir(parents=True)
    hroot = HookRoot(rootkit.make_sandbox_root(directory / "root"))
    if not with_hooks:
        for hook in (hroot.root / "usr/share/libalpm/hooks").glob("*.hook"):
            hook.unlink()
    return hroot


def bytecode_cache(hroot: HookRoot) -> dict[str, str]:
    """Environment for a byte-code cache inside the root, as an installed clp has (Arch ships
    the .pyc files). This environment may set PYTHONDONTWRITEBYTECODE and the checkout is
    mounted read-only inside the root: without this, every start would compile clp_alpm."""
    (hroot.root / PYCACHE.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return {"PYTHONPYCACHEPREFIX": PYCACHE, "PYTHONDONTWRITEBYTECODE": ""}


def children_cpu() -> float:
    """CPU seconds of every waited-for descendant so far (pacman, its hooks, etckeeper, git)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_pacman(hroot: HookRoot, package: Path, hooked: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one `pacman -U`, hooks included."""
    cpu = children_cpu()
    start = time.perf_counter()
    result = hroot.pacman("-U", package, env=bytecode_cache(hroot))
    elapsed = time.perf_counter() - start
    cpu = children_cpu() - cpu
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise BenchError(f"pacman -U {package.name} failed:\n{output}")
    if "warning: clp" in output:
        raise BenchError(f"clp's hooks warned during pacman -U {package.name}:\n{output}")
    if hooked and f"changed {ETC_FILES} configuration file(s)" not in result.stdout:
        raise BenchError(f"no clp transaction summary in pacman's output:\n{output}")
    return elapsed, cpu


def recorded_transactions(hroot: HookRoot) -> list[dict]:
    result = hroot.clp("transactions", "--json")
    if result.returncode != 0:
        raise BenchError(f"clp transactions --json failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def bench_pacman(work: Path, args: argparse.Namespace, report: Report) -> None:
    print(f"== 1. pacman -U, {args.files} files / {args.size_mb} MiB, {ETC_FILES} under etc/")
    start = time.perf_counter()
    packages = build_packages(work / "packages", args.rounds + 1, args.files, args.size_mb)
    sizes = ", ".join(f"{p.stat().st_size / (1 << 20):.1f}" for p in packages[:2])
    print(
        f"   built {len(packages)} .pkg.tar.zst ({sizes} ... MiB) in "
        f"{time.perf_counter() - start:.1f} s"
    )
    plain = make_hook_root(work / "plain", with_hooks=False)
    hooked = make_hook_root(work / "hooked", with_hooks=True)
    timed_pacman(plain, packages[0], hooked=False)
    timed_pacman(hooked, packages[0], hooked=True)
    # Each transaction starts with nothing dirty in the page cache: the hooks' syncfs() must
    # not pay for the other side's writes. "sync after" is what flushing the plain
    # transaction costs, for comparison (pacman itself does not sync; clp's hooks do).
    names = ("without hooks", "sync after", "with clp hooks", "namespace")
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for number, package in enumerate(packages[1:]):
        sides = [("without hooks", plain, False), ("with clp hooks", hooked, True)]
        for name, hroot, is_hooked in sides if number % 2 == 0 else reversed(sides):
            os.sync()
            wall, used = timed_pacman(hroot, package, is_hooked)
            times[name].append(wall)
            cpu[name].append(used)
            if not is_hooked:
                start = time.perf_counter()
                os.sync()
                times["sync after"].append(time.perf_counter() - start)
                cpu["sync after"].append(0.0)
        used = children_cpu()
        start = time.perf_counter()
        plain.run("true")
        times["namespace"].append(time.perf_counter() - start)
        cpu["namespace"].append(children_cpu() - used)

    records = recorded_transactions(hooked)
    expected = len(packages)
    done = [r for r in records if r["status"] == "done" and r["changed_files"]]
    if len(records) != expected or len(done) != expected:
        raise BenchError(
            f"hooked root recorded {len(records)} transactions ({len(done)} done "
            f"with changed files); expected {expected}"
        )
    if (plain.root / "var/lib/clp").exists():
        raise BenchError("the root without hooks has clp state: its hooks ran")

    plain_s = statistics.median(times["without hooks"])
    hooked_s = statistics.median(times["with clp hooks"])
    namespace_s = statistics.median(times["namespace"])
    ratio = hooked_s / plain_s
    net_ratio = (hooked_s - namespace_s) / (plain_s - namespace_s)
    print(f"   {'':<28} {'median':>11} {'min':>11} {'max':>11} {'median CPU':>11}")
    labels = {
        "without hooks": "pacman -U without hooks",
        "sync after": "  then sync",
        "with clp hooks": "pacman -U with clp hooks",
        "namespace": "namespace set-up (true)",
    }
    for name, values in times.items():
        label = labels[name]
        print(
            f"   {label:<28} {ms(statistics.median(values))} {ms(min(values))} "
            f"{ms(max(values))} {ms(statistics.median(cpu[name]))}"
        )
    print(
        f"   hooks add {(hooked_s - plain_s) * 1000:.1f} ms per transaction; ratio "
        f"{ratio:.3f}x (without the namespace set-up both pay: {net_ratio:.3f}x); against "
        f"pacman -U and sync: {hooked_s / (plain_s + statistics.median(times['sync after'])):.3f}x"
    )
    plain_cpu, hooked_cpu = (
        statistics.median(cpu["without hooks"]),
        statistics.median(cpu["with clp hooks"]),
    )
    print(
        f"   CPU time (steadier when the machine is busy): hooks add "
        f"{(hooked_cpu - plain_cpu) * 1000:.1f} ms, ratio {hooked_cpu / plain_cpu:.3f}x"
    )
    print(
        f"   hooked root: {len(records)} transactions recorded, all done, "
        f"{ETC_FILES} configuration files each; no 'warning: clp' in pacman's output"
    )
    report.goal(
        f"pacman -U with hooks <= {HOOK_GOAL_RATIO:.2f}x without",
        net_ratio <= HOOK_GOAL_RATIO,
        f"{ratio:.3f}x ({net_ratio:.3f}x without the namespace set-up); "
        f"+{(hooked_s - plain_s) * 1000:.0f} ms on {plain_s * 1000:.0f} ms",
    )


# --------------------------------------------------------------------- 2. clp hook start-up

# Runs inside the HookRoot's namespace, so that its set-up is paid once and not counted.
TIMING_SCRIPT = """\
import json, os, resource, subprocess, sys, time
root, runs, python, dirs = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
cached = dict(os.environ)
compiling = {k: v for k, v in cached.items() if k != "PYTHONPYCACHEPREFIX"}
compiling["PYTHONDONTWRITEBYTECODE"] = "1"
commands = {
    # Python as /usr/bin/clp starts it for a hook: without site, clp's directories on its path
    "python": (["chroot", root, python, "-S", "-c", "pass"], cached),
    # ...and the hook path imported as clp_alpm/cli/entry.py imports it for a hook
    "imports": (["chroot", root, python, "-S", "-c", f"import sys; sys.path.extend({dirs!r}); "
                 "from clp_alpm.cli import entry; entry._pause_collection(); "
                 "entry._import_lean_sqlite(); import clp_alpm.cli.hook, clp_alpm.ops.hooks"],
                cached),
    # `clp hook` without its argument: the real entry point started and the hook path
    # imported, then a usage warning and exit 0 (nothing recorded): the start-up alone
    "start-up": (["chroot", root, "/usr/bin/clp", "hook"], cached),
    "clp": (["chroot", root, "/usr/bin/clp", "hook", "pre-transaction"], cached),
    "clp, no .pyc": (["chroot", root, "/usr/bin/clp", "hook", "pre-transaction"], compiling),
}
# each pre-transaction run is followed (untimed) by its post-transaction, as in pacman: else
# every run would also close the previous run's record as interrupted
post = ["chroot", root, "/usr/bin/clp", "hook", "post-transaction"]
expected_stderr = {"start-up": b"warning: usage: clp hook"}
times = {name: [] for name in commands}
cpu = {name: [] for name in commands}
problems = []

def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

for number in range(runs + 2):  # the first two rounds fill the caches, not counted
    order = list(commands.items())
    for name, (argv, env) in order if number % 2 == 0 else reversed(order):
        with open("/dev/null", "rb") as devnull:
            used = children_cpu()
            start = time.perf_counter()
            result = subprocess.run(argv, stdin=devnull, capture_output=True, env=env)
            elapsed = time.perf_counter() - start
            used = children_cpu() - used
        allowed = expected_stderr.get(name)
        stderr_ok = result.stderr.startswith(allowed) if allowed else not result.stderr
        if result.returncode != 0 or not stderr_ok:
            problems.append(f"{name}: exit {result.returncode}: {result.stderr.decode()!r}")
        if argv[-1] == "pre-transaction":
            with open("/dev/null", "rb") as devnull:
                closed = subprocess.run(post, stdin=devnull, capture_output=True, env=env)
            if closed.returncode != 0 or closed.stderr:
                problems.append(f"post-transaction: {closed.stderr.decode()!r}")
        if number >= 2:
            times[name].append(elapsed)
            cpu[name].append(used)
print(json.dumps({"times": times, "cpu": cpu, "problems": problems}))
"""


def import_profile(hroot: HookRoot, top: int) -> list[str]:
    """`python -X importtime` of the hook path, the `top` biggest cumulative imports."""
    argv = ["chroot", hroot.root, sys.executable, "-X", "importtime", "/usr/bin/clp", "hook"]
    result = hroot.run(*argv, "pre-transaction", env=bytecode_cache(hroot))
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative_us), int(self_us), name.rstrip()))
    rows.sort(reverse=True)
    total_self = sum(r[1] for r in rows)
    lines = [f"all imports: {total_self / 1000:.1f} ms self time, {len(rows)} modules"]
    lines += [
        f"{cumulative / 1000:7.1f} ms cumulative {own / 1000:6.1f} ms self  {name}"
        for cumulative, own, name in rows[:top]
    ]
    return lines


def bench_startup(work: Path, args: argparse.Namespace, report: Report) -> None:
    print(f"== 2. clp hook pre-transaction start-up, {args.starts} runs each, one namespace")
    hroot = make_hook_root(work / "startup", with_hooks=True)
    script = work / "startup-timing.py"
    script.write_text(TIMING_SCRIPT)
    dirs = [str(Path(clp_alpm.__file__).resolve().parent.parent), *site.getsitepackages()]
    argv = [sys.executable, script, hroot.root, str(args.starts), sys.executable, json.dumps(dirs)]
    result = hroot.run(*argv, env=bytecode_cache(hroot), timeout=600)
    if result.returncode != 0:
        raise BenchError(f"start-up timing failed: {result.stderr.strip()}")
    measured = json.loads(result.stdout)
    if measured["problems"]:
        raise BenchError("start-up runs failed: " + "; ".join(measured["problems"][:3]))
    clp_s = statistics.median(measured["times"]["clp"])
    start_s = statistics.median(measured["times"]["start-up"])
    python_s = statistics.median(measured["times"]["python"])
    records = recorded_transactions(hroot)
    if len(records) != 2 * (args.starts + 2) or any(r["status"] != "done" for r in records):
        raise BenchError(f"{len(records)} transactions recorded by {2 * (args.starts + 2)} runs")
    print(f"   {'':<46} {'median':>11} {'min':>11} {'median CPU':>11}")
    labels = {
        "python": "chroot R python -S -c pass",
        "imports": "chroot R python -S -c 'import clp_alpm.ops.hooks'",
        "start-up": "chroot R clp hook (start-up: no argument)",
        "clp": "chroot R clp hook pre-transaction (recording)",
        "clp, no .pyc": "  the same, compiling clp_alpm (no .pyc)",
    }
    for name, label in labels.items():
        values = measured["times"][name]
        used = statistics.median(measured["cpu"][name])
        print(f"   {label:<46} {ms(statistics.median(values))} {ms(min(values))} {ms(used)}")
    imports_s = statistics.median(measured["times"]["imports"])
    print(
        f"   clp hook costs {(clp_s - python_s) * 1000:.1f} ms more than starting Python "
        f"({clp_s / python_s:.2f}x): {(imports_s - python_s) * 1000:.1f} ms importing the "
        f"hook path, {(clp_s - imports_s) * 1000:.1f} ms recording (with its lazy imports); "
        "every run recorded a transaction"
    )
    passed = start_s * 1000 < START_GOAL_MS
    report.goal(
        f"clp hook start-up < {START_GOAL_MS:.0f} ms",
        passed,
        f"{start_s * 1000:.1f} ms (python -S -c pass: {python_s * 1000:.1f} ms; a whole "
        f"pre-transaction run with its recording: {clp_s * 1000:.1f} ms)",
    )
    if not passed or args.importtime:
        print("   python -X importtime, hook path (biggest cumulative first):")
        for line in import_profile(hroot, top=15):
            print(f"     {line}")


# --------------------------------------------------------------------- 3. snapshots vs etckeeper


def write_tree(etc: Path, count: int) -> list[Path]:
    """An /etc-like tree: `count` text files, mostly 100 B - 4 KiB, a few bigger, in
    directories up to four levels deep (e.g. etc/d07/s3/t1/file.conf)."""
    rng = random.Random(7)
    tops = [f"d{number:02d}.d" for number in range(60)]
    dirs = [Path(top) for top in tops]
    for _ in range(140):
        parent = rng.choice(dirs)
        if len(parent.parts) < 4:
            dirs.append(parent / f"s{len(dirs)}")
    written = []
    for number in range(count):
        roll = rng.random()
        if roll < 0.001:
            size = rng.randrange(64 << 10, 256 << 10)
        elif roll < 0.02:
            size = rng.randrange(4 << 10, 64 << 10)
        else:
            size = int(10 ** rng.uniform(2, 3.6))  # 100 B .. 4 KiB, log-uniform
        path = etc / rng.choice(dirs) / f"file{number:05d}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text_bytes(rng, size, f"# {path.name}"))
        written.append(path)
    return written


def usage(directory: Path) -> tuple[int, int]:
    """(disk usage, apparent size) in bytes of everything under `directory`, hard links once."""
    seen: set[tuple[int, int]] = set()
    disk = apparent = 0
    for parent, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(parent, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            disk += st.st_blocks * 512
            apparent += st.st_size
    return disk, apparent


@dataclass
class Run:
    seconds: float
    cpu: float
    disk: int
    apparent: int
    hashed: int | None = None


def clp_snapshot(
    root: Path, store: SnapshotStore, previous: Snapshot | None
) -> tuple[Run, Snapshot]:
    """SnapshotStore.take of every file and directory under root/etc (the walk counts too:
    etckeeper walks the tree itself)."""
    before = usage(store.directory) if Path(store.directory).exists() else (0, 0)
    hashed = store.bytes_hashed
    os.sync()  # take() ends with syncfs(): it must not pay for the tree's own unwritten pages
    cpu = time.process_time()
    start = time.perf_counter()
    paths = []
    for parent, _dirs, filenames in os.walk(root / "etc"):
        relative = "/" + os.path.relpath(parent, root)
        paths.append(relative)
        paths += [f"{relative}/{name}" for name in filenames]
    snapshot = store.take(root, paths, previous=previous)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    after = usage(store.directory)
    added = (after[0] - before[0], after[1] - before[1])
    run = Run(seconds, cpu, *added, hashed=store.bytes_hashed - hashed)
    return run, snapshot


def etckeeper_env() -> dict[str, str]:
    """A committer identity, and git's automatic gc in the foreground: etckeeper asks for gc
    ten times as often as git's default, and a detached gc would leave its work uncounted
    and the repository still changing while we measure it."""
    identity = {
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@localhost",
    }
    config = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "gc.autoDetach",
        "GIT_CONFIG_VALUE_0": "false",
    }
    return dict(os.environ) | identity | config


def run_etckeeper(command: list[str], ok: tuple[int, ...] = (0,)) -> int:
    result = subprocess.run(
        command, capture_output=True, text=True, env=etckeeper_env(), stdin=subprocess.DEVNULL
    )
    if result.returncode not in ok:
        output = (result.stdout + result.stderr).strip()
        raise BenchError(f"{' '.join(command[:2])} failed (exit {result.returncode}): {output}")
    return result.returncode


def etckeeper(tree: Path, message: str, first: bool = False) -> Run:
    """The first time `etckeeper init` and `commit`; then what etckeeper's daily job does:
    `etckeeper unclean`, and `commit` only if that finds changes."""
    git = tree / ".git"
    before = usage(git) if git.exists() else (0, 0)
    os.sync()
    cpu = children_cpu()
    start = time.perf_counter()
    if first:
        run_etckeeper(["etckeeper", "init", "-d", str(tree)])
        unclean = True
    else:
        unclean = run_etckeeper(["etckeeper", "unclean", "-d", str(tree)], ok=(0, 1)) == 0
    if unclean:
        run_etckeeper(["etckeeper", "commit", "-d", str(tree), message])
    seconds = time.perf_counter() - start
    cpu = children_cpu() - cpu
    after = usage(git)
    return Run(seconds, cpu, after[0] - before[0], after[1] - before[1])


def git_objects(tree: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(tree), "count-objects", "-v"], capture_output=True, text=True
    )
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    return f"{fields.get('count', '?')} loose objects, {fields.get('in-pack', '?')} packed"


def wait_until_older_than_racy_margin(files: list[Path]) -> float:
    """Sleep until every file's ctime is RACY_MARGIN_NS in the past (as in a real /etc, whose
    files are older than any snapshot): the second snapshot may then trust their stat data."""
    newest = max(os.stat(path).st_ctime_ns for path in files)
    wait = (newest + RACY_MARGIN_NS + 200_000_000 - time.time_ns()) / 1e9
    if wait > 0:
        time.sleep(wait)
    return max(wait, 0.0)


def change_files(files: list[Path], count: int) -> None:
    for path in random.Random(11).sample(files, count):
        with path.open("a") as conf:
            conf.write("changed_by = bench\n")


def bench_snapshots(work: Path, args: argparse.Namespace, report: Report) -> None:
    if shutil.which("etckeeper") is None:
        raise BenchError("etckeeper is not installed (Debian: apt-get install etckeeper)")
    print(f"== 3. snapshot of a {args.tree_files}-file /etc-like tree: clp vs etckeeper (git)")
    root = work / "snap/root"
    files = write_tree(root / "etc", args.tree_files)
    tree_bytes = sum(path.stat().st_size for path in files)
    copy = work / "snap/etckeeper-etc"
    subprocess.run(["cp", "-a", str(root / "etc"), str(copy)], check=True)
    waited = wait_until_older_than_racy_margin(files + list(copy.rglob("*")))
    print(
        f"   tree: {len(files)} files, {tree_bytes / (1 << 20):.1f} MiB in files; waited "
        f"{waited:.2f} s for its ctimes to age past RACY_MARGIN ({RACY_MARGIN_NS / 1e9:.1f} s)"
    )

    store = SnapshotStore(work / "snap/store")
    runs: dict[str, dict[str, Run]] = {"clp": {}, "etckeeper": {}}
    runs["clp"]["first"], first = clp_snapshot(root, store, None)
    runs["etckeeper"]["first"] = etckeeper(copy, "first", first=True)
    runs["clp"]["unchanged"], second = clp_snapshot(root, store, first)
    runs["etckeeper"]["unchanged"] = etckeeper(copy, "unchanged")
    change_files(files, CHANGED_FILES)
    change_files(sorted(copy.rglob("*.conf")), CHANGED_FILES)
    runs["clp"][f"{CHANGED_FILES} changed"], _ = clp_snapshot(root, store, second)
    runs["etckeeper"][f"{CHANGED_FILES} changed"] = etckeeper(copy, "changed")

    # The same tree, snapshotted right after it was written: nothing can be trusted yet.
    fresh = work / "snap/fresh"
    subprocess.run(["cp", "-a", str(root), str(fresh)], check=True)
    fresh_store = SnapshotStore(work / "snap/fresh-store")
    _, fresh_first = clp_snapshot(fresh, fresh_store, None)
    fresh_second, _ = clp_snapshot(fresh, fresh_store, fresh_first)

    print(
        f"   {'':<24} {'time':>11} {'vs first':>9} {'CPU':>11} {'vs first':>9} "
        f"{'added on disk':>14} {'vs first':>9} {'added apparent':>14} {'re-hashed':>11}"
    )
    for tool, by_run in runs.items():
        first_run = by_run["first"]
        for name, run in by_run.items():
            hashed = mib(run.hashed) if run.hashed is not None else f"{'-':>12}"
            print(
                f"   {tool + ' ' + name:<24} {ms(run.seconds)} "
                f"{run.seconds / first_run.seconds:8.1%} {ms(run.cpu)} "
                f"{run.cpu / first_run.cpu:8.1%} {mib(run.disk):>14} "
                f"{run.disk / first_run.disk:8.2%} {mib(run.apparent):>14} {hashed:>11}"
            )
    fresh_ratio = fresh_second.seconds / runs["clp"]["first"].seconds
    print(
        f"   {'clp unchanged, racy':<24} {ms(fresh_second.seconds)} {fresh_ratio:8.1%} "
        f"{ms(fresh_second.cpu)} {'':>9} {mib(fresh_second.disk):>14} {'':>9} "
        f"{mib(fresh_second.apparent):>14} {mib(fresh_second.hashed or 0):>11}"
    )
    print(
        "   (racy: a second copy snapshotted twice right after it was written, its ctimes "
        "within RACY_MARGIN of the first snapshot, so every file is read again)"
    )
    print(f"   etckeeper's repository: {git_objects(copy)}")
    clp_first, git_first = runs["clp"]["first"], runs["etckeeper"]["first"]
    print(
        f"   clp's first snapshot vs etckeeper's: {clp_first.seconds / git_first.seconds:.2f}x "
        f"time, {clp_first.disk / git_first.disk:.2f}x disk"
    )

    first_run, unchanged = runs["clp"]["first"], runs["clp"]["unchanged"]
    time_share = unchanged.seconds / first_run.seconds
    disk_share = unchanged.disk / first_run.disk
    apparent_share = unchanged.apparent / first_run.apparent
    report.goal(
        f"second snapshot of an unchanged tree < {SECOND_TIME_GOAL:.0%} of the first's time",
        time_share < SECOND_TIME_GOAL,
        f"{time_share:.1%} ({unchanged.seconds * 1000:.0f} ms vs "
        f"{first_run.seconds * 1000:.0f} ms; CPU {unchanged.cpu / first_run.cpu:.1%})",
    )
    report.goal(
        f"second snapshot of an unchanged tree < {SECOND_BYTES_GOAL:.0%} of the first's bytes",
        disk_share < SECOND_BYTES_GOAL and apparent_share < SECOND_BYTES_GOAL,
        f"{disk_share:.3%} on disk, {apparent_share:.3%} apparent "
        f"({unchanged.apparent} of {first_run.apparent} bytes)",
    )


# --------------------------------------------------------------------- 4. what the hooks add


def tiny_packages(directory: Path, count: int, version: int) -> list[Path]:
    """`count` tiny packages at `version`: one config file under etc/ and one data file. Each
    version's files differ in size: both versions are built within the same second, and git's
    index (etckeeper) would take a same-size file with the same mtime for unchanged."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        pkgkit.make_package(directory, f"tiny{number:02d}", f"{version}.0-1", {
            f"etc/tiny/{number:02d}.conf":
                f"version = {version}\nnumber = {number}\n{'#' * version}\n".encode(),
            f"usr/share/tiny/{number:02d}": f"{version}\n".encode(),
        })
        for number in range(count)
    ]  # fmt: skip


def fill_etc(hroot: HookRoot, count: int) -> None:
    """`count` unrelated files under etc/, as a big /etc has (no hook looks at them)."""
    for number in range(count):
        path = hroot.root / f"etc/filler/d{number % 50:02d}/f{number:05d}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"filler {number}\n")


def add_records(hroot: HookRoot, count: int) -> None:
    """`count` finished transactions in the hooked root's state, with HistoryLimit above them
    (the hooks then prune none: the cost measured is the records', not the pruning's)."""
    import sqlite3

    from clp_alpm.store.state import StateDB

    (hroot.root / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (hroot.root / "etc/CLP/clp.conf").write_text(f"[options]\nHistoryLimit = {count + 1000}\n")
    state_dir = hroot.root / "var/lib/clp"
    StateDB(state_dir).close()
    packages = json.dumps([{"name": "old", "from": "1-1", "to": "2-1"}])
    rows = [("done", 1.7e9 + n, 1.7e9 + n + 1, "pacman", packages, "[]", "[]", 1, "pacman -Syu")
            for n in range(count)]  # fmt: skip
    with sqlite3.connect(state_dir / StateDB.FILENAME) as conn:
        conn.executemany(
            "INSERT INTO transactions (status, started, finished, origin, packages, paths, "
            "changed, pacman_pid, command) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)  # fmt: skip


@dataclass
class Scenario:
    name: str
    packages: int
    etc_files: int = 0
    records: int = 0
    peers: bool = True  # measure the other tools too (the table's rows)


# The table's columns: (tool, file system) -> heading. "base" is the file system of --dir.
PLAIN, CLP, CLP_OPTION, ETCKEEPER, SNAPPER = (
    "no hooks", "clp", "clp --root /", "etckeeper", "snapper+snap-pac")  # fmt: skip


@dataclass
class Side:
    """One root of a scenario: the tool whose hooks its pacman runs, on which file system."""

    tool: str
    fs: str
    hroot: HookRoot
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    snapper_config: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.tool, self.fs


@dataclass
class Peers:
    """What section 4 can measure besides clp on --dir's file system, found out once."""

    base_fs: str
    enabled: bool  # not --no-peers
    btrfs: Path | None  # the loop image's mount point
    etckeeper: bool
    snapper: bool
    configs: peers.SnapperConfigs = field(default_factory=peers.SnapperConfigs)

    @property
    def peer_fs(self) -> str:
        return "btrfs" if self.btrfs else self.base_fs

    def columns(self) -> list[tuple[str, str]]:
        """Every (tool, fs) measured in a peers scenario, in the table's order."""
        columns = [(CLP, self.base_fs)]
        if not self.enabled:
            return columns
        if self.btrfs:
            columns.append((CLP, "btrfs"))
        columns.append((CLP_OPTION, self.peer_fs))
        if self.etckeeper:
            columns.append((ETCKEEPER, self.peer_fs))
        if self.snapper and self.btrfs:
            columns.append((SNAPPER, "btrfs"))
        return columns


def with_global_option(hroot: HookRoot) -> None:
    """clp's hook files with a global option before `hook`: `clp --root / hook ...`."""
    for hook in (hroot.root / peers.HOOK_DIR).glob("*.hook"):
        text = hook.read_text()
        changed = text.replace("Exec = /usr/bin/clp hook ", "Exec = /usr/bin/clp --root / hook ")
        if changed == text:
            raise BenchError(f"{hook.name}: no 'Exec = /usr/bin/clp hook' line to change")
        hook.write_text(changed)


def make_side(where: Path, tool: str, fs: str) -> Side:
    """The root for `tool` on `fs` in its own directory of `where` (on that file system)."""
    directory = where / f"{tool.replace(' ', '').replace('/', '').replace('+', '-')}"
    if tool in (PLAIN, CLP, CLP_OPTION):
        hroot = make_hook_root(directory, with_hooks=tool != PLAIN)
        if tool == CLP_OPTION:
            with_global_option(hroot)
        return Side(tool, fs, hroot)
    directory.mkdir(parents=True)
    if tool == ETCKEEPER:
        return Side(tool, fs, peers.PeerRoot(rootkit.make_sandbox_root(directory / "root"),
                                             peers.ETCKEEPER_HOOKS))  # fmt: skip
    peers.make_subvolume(directory / "root")  # snapper snapshots a subvolume
    hroot = peers.PeerRoot(rootkit.make_sandbox_root(directory / "root"), peers.SNAP_PAC_HOOKS)
    return Side(tool, fs, hroot)


def timed_transaction(side: Side, packages: list[Path], scenario: Scenario) -> tuple[float, float]:
    """Wall and CPU seconds of one `pacman -U packages` in the side's root, hooks included."""
    hroot = side.hroot
    os.sync()
    cpu = children_cpu()
    start = time.perf_counter()
    result = hroot.pacman("-U", *packages, env=bytecode_cache(hroot) | {"HOME": "/root"})
    elapsed = time.perf_counter() - start
    cpu = children_cpu() - cpu
    output = result.stdout + result.stderr
    if result.returncode != 0 or "warning: clp" in output or "error" in result.stderr.lower():
        raise BenchError(f"pacman -U ({scenario.name}, {side.tool} on {side.fs}):\n{output}")
    return elapsed, cpu


def check_sides(sides: list[Side], scenario: Scenario, transactions: int) -> str:
    """That each tool really ran in every transaction (clp recorded it, etckeeper committed
    it, snapper made its pre/post pair) and nothing ran without hooks; what was found."""
    found = []
    for side in sides:
        what = f"{side.tool} on {side.fs}"
        if side.tool == PLAIN:
            if (side.hroot.root / "var/lib/clp").exists():
                raise BenchError(f"{scenario.name}: the root without hooks has clp state")
        elif side.tool in (CLP, CLP_OPTION):
            records = recorded_transactions(side.hroot)
            done = [r for r in records[scenario.records :] if r["status"] == "done"]
            if len(records) != scenario.records + transactions or len(done) != transactions:
                raise BenchError(f"{scenario.name}, {what}: {len(records)} transactions "
                                 f"recorded ({len(done)} done), expected "
                                 f"{scenario.records + transactions}")  # fmt: skip
            found.append(f"{what}: {len(done)} transactions recorded")
        elif side.tool == ETCKEEPER:
            assert isinstance(side.hroot, peers.PeerRoot)
            subjects = peers.etckeeper_commits(side.hroot)
            by_pacman = [s for s in subjects if s.startswith("committing changes in /etc")]
            if len(by_pacman) != transactions or len(subjects) != transactions + 1:
                raise BenchError(f"{scenario.name}, {what}: git log of etc/ has "
                                 f"{len(by_pacman)} post-install commits of {len(subjects)}, "
                                 f"expected {transactions} of {transactions + 1}")  # fmt: skip
            found.append(f"{what}: {len(by_pacman)} commits by post-install")
        else:
            pres, posts, paired = peers.SnapperConfigs.pairs(side.snapper_config)
            if (pres, posts, paired) != (transactions,) * 3:
                raise BenchError(f"{scenario.name}, {what}: snapper list shows {pres} pre and "
                                 f"{posts} post snapshots, {paired} paired; expected "
                                 f"{transactions} pairs")  # fmt: skip
            found.append(f"{what}: {paired} pre/post pairs in snapper list")
    return "; ".join(found)


def added_cost(
    work: Path, scenario: Scenario, rounds: int, found: Peers
) -> tuple[dict[tuple[str, str], tuple[float, float]], str]:
    """Median wall and CPU seconds of `pacman -U` in each side's root (the roots without hooks
    too), every side once per round in a rotating order; and what check_sides found."""
    slug = scenario.name.replace(" ", "-").replace(",", "")
    where = work / slug
    versions = [tiny_packages(where / f"v{v}", scenario.packages, v) for v in (1, 2)]
    wanted = [(PLAIN, found.base_fs), (CLP, found.base_fs)]
    if scenario.peers:
        wanted += [(tool, fs) for tool, fs in found.columns() if (tool, fs) not in wanted]
        if found.btrfs:
            wanted.insert(2, (PLAIN, "btrfs"))
    sides = []
    for tool, fs in wanted:
        on = found.btrfs / slug if fs == "btrfs" and found.btrfs else where / fs
        side = make_side(on, tool, fs)
        fill_etc(side.hroot, scenario.etc_files)
        if tool == ETCKEEPER:
            assert isinstance(side.hroot, peers.PeerRoot)
            peers.setup_etckeeper(side.hroot)
        elif tool == SNAPPER:
            assert isinstance(side.hroot, peers.PeerRoot)
            side.snapper_config = found.configs.create(side.hroot)
        elif tool == CLP and scenario.records:
            add_records(side.hroot, scenario.records)
        sides.append(side)
    for side in sides:  # the first installation: not measured
        timed_transaction(side, versions[0], scenario)
    for number in range(rounds):
        packages = versions[(number + 1) % 2]  # 2, 1, 2, ...: an upgrade, a downgrade, ...
        shift = number % len(sides)
        for side in sides[shift:] + sides[:shift]:
            wall, cpu = timed_transaction(side, packages, scenario)
            side.times.append(wall)
            side.cpu.append(cpu)
    checked = check_sides(sides, scenario, rounds + 1)
    medians = {s.key: (statistics.median(s.times), statistics.median(s.cpu)) for s in sides}
    return medians, checked


def find_peers(work: Path, args: argparse.Namespace, stack: contextlib.ExitStack) -> Peers:
    """What this machine can run besides clp, with an INFO line for each tool it cannot; the
    btrfs loop image mounted (and its snapper configs deleted again) within `stack`."""
    found = Peers(peers.fs_type(work), not args.no_peers, None, False, False)
    if args.no_peers:
        print("   INFO  --no-peers: clp on this file system only")
        return found
    missing = peers.btrfs_missing()
    if missing:
        print(f"   INFO  no btrfs loop image ({missing}): clp on btrfs and snapper left out")
    else:
        found.btrfs = stack.enter_context(peers.btrfs_image(work / "btrfs"))
        stack.callback(close_configs, found.configs)
    found.etckeeper = shutil.which("etckeeper") is not None and shutil.which("git") is not None
    if not found.etckeeper:
        print("   INFO  etckeeper or git is not installed (Debian: etckeeper): left out")
    found.snapper = shutil.which("snapper") is not None
    if not found.snapper and found.btrfs:
        print("   INFO  snapper is not installed (Debian: snapper): left out")
    return found


def close_configs(configs: peers.SnapperConfigs) -> None:
    for left in configs.close():
        print(f"   warning: snapper config not deleted cleanly: {left}", file=sys.stderr)


def bench_added(work: Path, args: argparse.Namespace, report: Report) -> None:
    print(f"== 4. what the two hooks add to a transaction of tiny packages, {args.rounds} rounds")
    with contextlib.ExitStack() as stack:
        found = find_peers(work, args, stack)
        measure_added(work, args, report, found)


def measure_added(work: Path, args: argparse.Namespace, report: Report, found: Peers) -> None:
    scenarios = [
        Scenario("1 package", 1),
        Scenario("50 packages", 50),
        Scenario("1 package, 100 files in /etc", 1, etc_files=100),
        Scenario("1 package, 10000 files in /etc", 1, etc_files=10000),
        Scenario("1 package, 50 records", 1, records=50, peers=False),
        Scenario("1 package, 5000 records", 1, records=5000, peers=False),
    ]
    columns = found.columns()
    if found.enabled:
        print(
            "   hooks run chrooted into each root, as libalpm runs them (etckeeper, snapper and "
            "the snap-pac\n   stand-in of bench/peers.py with the host's /usr/bin bind-mounted "
            "there); each cell: the median\n   ms a tool adds over a root without hooks on the "
            "same file system (first columns: that root's own)"
        )
    plain_fs = [found.base_fs] + (["btrfs"] if found.btrfs else [])
    keys = [(PLAIN, fs) for fs in plain_fs] + columns
    widths = [max(10, len(tool) + 2, len(fs) + 2) for tool, fs in keys]

    def table_row(label: str, cells: list[str]) -> str:
        return f"   {label:<32}" + "".join(
            f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True))  # fmt: skip

    def cells(medians: dict[tuple[str, str], float]) -> list[str]:
        shown = []
        for tool, fs in keys:
            if (tool, fs) not in medians:
                shown.append("-")
            elif tool == PLAIN:
                shown.append(f"{medians[(tool, fs)] * 1000:.1f}")
            else:
                shown.append(f"{(medians[(tool, fs)] - medians[(PLAIN, fs)]) * 1000:+.1f}")
        return shown

    print(table_row("wall time", [tool for tool, _ in keys]))
    print(table_row("", [fs for _, fs in keys]))
    added: dict[str, dict[tuple[str, str], float]] = {}
    cpu_rows = []
    checks = []
    for scenario in scenarios:
        medians, checked = added_cost(work, scenario, args.rounds, found)
        checks.append(f"{scenario.name}: {checked}")
        wall = {key: value[0] for key, value in medians.items()}
        added[scenario.name] = {
            key: wall[key] - wall[(PLAIN, key[1])] for key in wall if key[0] != PLAIN
        }
        print(table_row(scenario.name, cells(wall)))
        cpu_rows.append(table_row(scenario.name, cells({k: v[1] for k, v in medians.items()})))
    print(table_row("CPU time (steadier under load)", [""] * len(keys)))
    for line in cpu_rows:
        print(line)
    print("   each tool ran in every measured transaction (and once before, not measured):")
    for line in checks:
        print(f"     {line}")

    base = (CLP, found.base_fs)
    one = added["1 package"][base] * 1000
    report.goal(f"the two hooks add <= {ADDED_GOAL_MS:.0f} ms to a 1-package transaction",
                one <= ADDED_GOAL_MS, f"{one:.1f} ms ({found.base_fs})")  # fmt: skip
    for low, high, what in (
        ("1 package", "50 packages", "from 1 to 50 packages"),
        ("1 package, 100 files in /etc", "1 package, 10000 files in /etc",
         "from 100 to 10,000 files in /etc"),
        ("1 package, 50 records", "1 package, 5000 records",
         "from 50 to 5,000 recorded transactions"),
    ):  # fmt: skip
        ratio = added[high][base] / added[low][base] if added[low][base] > 0 else float("inf")
        low_ms, high_ms = added[low][base] * 1000, added[high][base] * 1000
        detail = f"{ratio:.2f}x ({low_ms:.1f} -> {high_ms:.1f} ms)"
        report.goal(f"what the hooks add stays flat {what} (<= {FLAT_GOAL:.2f}x)",
                    ratio <= FLAT_GOAL, detail)  # fmt: skip
    if not found.enabled:
        return
    rows = ["1 package", "50 packages", "1 package, 100 files in /etc",
            "1 package, 10000 files in /etc"]  # fmt: skip
    clp_peer = (CLP, found.peer_fs)
    with_option = sum(added[row][(CLP_OPTION, found.peer_fs)] for row in rows)
    without = sum(added[row][clp_peer] for row in rows)
    ratio = with_option / without if without > 0 else float("inf")
    report.goal(
        f"clp with a global option first (clp --root / hook) adds <= {FLAT_GOAL:.2f}x what "
        "clp hook adds",
        ratio <= FLAT_GOAL,
        f"{ratio:.2f}x over the table's four rows ({found.peer_fs}; "
        + ", ".join(f"{added[row][(CLP_OPTION, found.peer_fs)] * 1000:.0f}/"
                    f"{added[row][clp_peer] * 1000:.0f} ms" for row in rows) + ")",
    )  # fmt: skip
    for tool, share in ((SNAPPER, 1 / 3), (ETCKEEPER, 1 / 5)):
        key = (tool, "btrfs" if tool == SNAPPER else found.peer_fs)
        if key not in added["1 package"]:
            continue
        mine = (CLP, key[1])
        ratios = [added[row][mine] / added[row][key] if added[row][key] > 0 else float("inf")
                  for row in rows]  # fmt: skip
        report.info(
            f"clp's added cost / {tool}'s on {key[1]} (issue 13 asks <= {share:.2f}x)",
            ", ".join(f"{name.removeprefix('1 package, ')} {r:.2f}x"
                      for name, r in zip(rows, ratios, strict=True)),
        )  # fmt: skip


# --------------------------------------------------------------------- main


def check_environment() -> None:
    if os.geteuid() != 0:
        raise BenchError("run as root: the benchmark uses mount namespaces and chroot")
    for tool in ("pacman", "unshare", "chroot", "zstd"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="pacman -U upgrades per side")
    parser.add_argument("--files", type=int, default=300, help="files in the package")
    parser.add_argument("--size-mb", type=int, default=8, help="package payload in MiB")
    parser.add_argument("--starts", type=int, default=30, help="clp hook start-up runs")
    parser.add_argument("--tree-files", type=int, default=10000, help="files in the /etc tree")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("/var/tmp"),
        help="where the sandbox roots, the tree and the stores go (default /var/tmp; "
        "/dev/shm takes the disk out of the numbers)",
    )
    parser.add_argument(
        "--only",
        choices=("pacman", "startup", "snapshots", "added"),
        action="append",
        help="run only these parts (default: all)",
    )
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="section 4: clp on --dir's file system only (no btrfs image, etckeeper, snapper)",
    )
    parser.add_argument(
        "--importtime",
        action="store_true",
        help="show the import profile even when the start-up goal is met",
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.rounds < 1 or args.files <= ETC_FILES + 1 or args.tree_files < CHANGED_FILES:
        parser.error("need --rounds >= 1, --files > 6 and --tree-files >= 10")

    # a kill ends as Ctrl-C does: the btrfs image unmounted, snapper's configs deleted
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="clp-bench-hooks-", dir=args.dir))
    started = time.perf_counter()
    steps: list[Callable[[Path, argparse.Namespace, Report], None]] = [
        bench_pacman,
        bench_startup,
        bench_snapshots,
        bench_added,
    ]
    try:
        check_environment()
        for step in steps:
            if args.only and step.__name__.removeprefix("bench_") not in args.only:
                continue
            step(work, args, report)
            print()
    except BenchError as err:
        print(f"bench/hooks.py: {err}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - exit status 1 means a missed goal, not a crash
        traceback.print_exc()
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"goals: (whole run {time.perf_counter() - started:.0f} s)")
    for goal in report.goals:
        verdict = {True: "PASS", False: "MISS", None: "INFO"}[goal.passed]
        print(f"  {verdict}  {goal.name}: {goal.detail}")
    return 0 if all(goal.passed is not False for goal in report.goals) else 1


if __name__ == "__main__":
    sys.exit(main())
