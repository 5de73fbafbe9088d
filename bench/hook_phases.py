#!/usr/bin/env python3
"""Where the pacman hooks spend their time, by phase, at 1 and at 50 tiny packages.

A diagnostic beside bench/hooks.py's section 4 (which measures what the hooks add to pacman
against a root without them, and is noisy where the disk is): here the hooks' own processes
time their phases. In a sandbox root (bench/hooks.py's, tiny packages upgraded and downgraded
in turn), `/usr/bin/clp` is the launcher with a few functions of the hook path wrapped in
timers; each hook appends its times to a file in the root as it exits. Printed: the median of
each phase per hook and package count, and what the hooks' own work (main(): imports and
recording, without starting Python) grows by from the fewest packages to the most. No goal:
bench/run does not run it.

    .venv/bin/python -m bench.hook_phases [--packages 1 50] [--rounds 15] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.hooks import bytecode_cache, make_hook_root, tiny_packages

TIMES = "tmp/clp-hook-phases"  # in the root: one JSON line a hook run
# (module, attribute, method or None, phase): what the wrapped launcher times
PHASES = [
    ("clp_alpm.ops.hooks", "_record", None, "record (all of the hook's work)"),
    ("clp_alpm.store.manifests", "Manifests", "load", "  loading the previous snapshot"),
    ("clp_alpm.store.snapshots", "SnapshotStore", "take", "  taking the snapshot"),
    ("clp_alpm.store.observe", "Observer", "observe_paths", "    observing the paths"),
    ("clp_alpm.store.manifests", "Manifests", "_store_chunks", "    encoding chunks"),
    ("clp_alpm.store.objects", "ObjectStore", "flush", "    syncing and naming objects"),
    ("clp_alpm.ops.hooks", "_prune_history", None, "  pruning the history"),
    ("clp_alpm.ops.hooks", "_refresh_completion_index", None, "  the completion index"),
]
# Run by the launcher before clp's main: the wrapping, and the times written at os._exit
# (the hooks end with it).
_PRELUDE = """
import time as _time, os as _os
_started = _time.perf_counter()
_spent = {}
_real_exit = _os._exit
def _exit(code):
    _spent["main"] = _time.perf_counter() - _started
    import json as _json
    with open(%(times)r, "a") as _out:
        _out.write(_json.dumps([sys.argv[2], _spent]) + "\\n")
    _real_exit(code)
_os._exit = _exit
import importlib as _importlib
def _timed(owner, name, phase):
    real = getattr(owner, name)
    def timed(*args, **kwargs):
        start = _time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            _spent[phase] = _spent.get(phase, 0.0) + _time.perf_counter() - start
    setattr(owner, name, timed)
for _module, _attribute, _method, _phase in %(phases)r:
    _owner = _importlib.import_module(_module)
    if _method is None:
        _timed(_owner, _attribute, _phase)
    else:
        _timed(getattr(_owner, _attribute), _method, _phase)
"""


def instrument(launcher: Path) -> None:
    """Wrap the hook path's phases in timers in the root's /usr/bin/clp."""
    text = launcher.read_text()
    entry = "from clp_alpm.cli.entry import main\n"
    if entry not in text:
        raise SystemExit(f"bench: {launcher} has no line {entry.strip()!r}")
    prelude = _PRELUDE % {"times": "/" + TIMES, "phases": PHASES}
    launcher.write_text(text.replace(entry, entry + prelude))


def measure(work: Path, packages: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median ms of each phase of each hook, over `rounds` transactions of `packages`."""
    hroot = make_hook_root(work / f"root-{packages}", with_hooks=True)
    instrument(hroot.root / "usr/bin/clp")
    versions = [tiny_packages(work / f"v{v}-{packages}", packages, v) for v in (1, 2)]
    env = bytecode_cache(hroot) | {"HOME": "/root"}
    times = hroot.root / TIMES
    for number in range(rounds + 1):  # 1, 2, 1, ...: the first installs, and is not counted
        result = hroot.pacman("-U", *versions[number % 2], env=env)
        if result.returncode != 0 or "warning: clp" in result.stdout + result.stderr:
            raise SystemExit(f"bench: pacman -U failed:\n{result.stdout}{result.stderr}")
        if number == 0:
            times.unlink(missing_ok=True)
    runs: dict[str, dict[str, list[float]]] = {}
    for line in times.read_text().splitlines():
        hook, spent = json.loads(line)
        for phase, seconds in spent.items():
            runs.setdefault(hook, {}).setdefault(phase, []).append(seconds * 1000)
    for hook, phases in runs.items():
        if len(phases["main"]) != rounds:
            raise SystemExit(f"bench: {hook} ran {len(phases['main'])} times, not {rounds}")
    return {
        hook: {phase: statistics.median(values) for phase, values in phases.items()}
        for hook, phases in runs.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/hook_phases.py: run as root (namespaces, chroot)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="clp-bench-phases-", dir=args.dir))
    try:
        medians = {count: measure(work, count, args.rounds) for count in args.packages}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts = args.packages
    print(f"== the hooks' phases, median ms over {args.rounds} transactions")
    print(f"   {'':<40}" + "".join(f"{f'{count} pkg':>10}" for count in counts))
    for hook in ("pre-transaction", "post-transaction"):
        print(f"   {hook}")
        for phase in ["main", *(phase for *_, phase in PHASES)]:
            cells = [medians[count][hook].get(phase) for count in counts]
            if any(cell is not None for cell in cells):
                label = "main() (imports and recording)" if phase == "main" else phase
                shown = [f"{cell:10.2f}" if cell is not None else f"{'-':>10}" for cell in cells]
                print(f"     {label:<38}" + "".join(shown))
    low, high = min(counts), max(counts)
    grown = sum(medians[high][hook]["main"] - medians[low][hook]["main"] for hook in medians[low])
    print(f"   both hooks' main() grow by {grown:.1f} ms from {low} to {high} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
