#!/usr/bin/env python3
"""Benchmark: `clp revert` against `pacman -U` of the same cached package, in the same run.

Two sandbox roots, each with a package installed at 2.0-1 and 1.0-1 in its cache: a small one
(3 files) and a large one (1,000 files of 32 KiB, as a driver or a library). Each round times
`pacman -U <cached 1.0-1>` (then puts 2.0-1 back) and `clp revert --noconfirm demo 1.0-1` (then
`clp rollback`), alternating, after one round that is not counted (it writes clp's byte code
and warms the page cache, as on an installed system, which ships the .pyc files), and reports
the medians. clp runs as its package installs it: through the launcher /usr/bin/clp is. Goals
(issue 13): the small revert costs at most `pacman -U` + 60 ms — the stated stand-in for "at
most 1.1x `downgrade`", which is an AUR script that is not installed here — and the large one
at most 1.1x `pacman -U`. The output also says whether the revert loaded the download stack (it
must not, from the cache).

    .venv/bin/python -m bench.revert [--rounds 7] [--files 1000] [--size 32768]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import site
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import clp_alpm
from clp_alpm.cli import launcher
from tests.kits import rootkit
from tests.kits.pkgkit import CACHE, pacman

SMALL_FILES, SMALL_SIZE = 3, 1024
SMALL_GOAL_MS = 60.0  # over pacman -U
LARGE_GOAL_RATIO = 1.1
DOWNLOAD_MODULES = ("http", "ssl", "email", "urllib.request", "clp_alpm.system.download")

# Run as `clp`, and write the names of the loaded modules where CLP_BENCH_MODULES says.
PROBE = """import atexit, os, sys
atexit.register(lambda: open(os.environ["CLP_BENCH_MODULES"], "w").write("\\n".join(sys.modules)))
from clp_alpm.cli.entry import main
sys.exit(main(sys.argv[1:]))
"""


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {result.stderr.strip()}")
    return elapsed


def build_package(directory: Path, version: str, files: int, size: int) -> Path:
    """A package of `files` files of `size` bytes (random, so compression does real work),
    as .pkg.tar.xz."""
    pkginfo = (f"pkgname = demo\npkgbase = demo\npkgver = {version}\npkgdesc = bench\n"
               f"builddate = {int(time.time())}\npackager = Bench <b@localhost>\n"
               f"size = {files * size}\narch = any\n").encode()  # fmt: skip
    path = directory / f"demo-{version}-any.pkg.tar.xz"
    with tarfile.open(path, "w:xz", preset=1) as archive:
        members = [(".PKGINFO", pkginfo)]
        members += [(f"usr/share/demo/{i:05d}.dat", os.urandom(size)) for i in range(files)]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return path


def make_root(work: Path, files: int, size: int) -> Path:
    root = rootkit.make_sandbox_root(work / "root")
    (root / CACHE).mkdir(parents=True)
    (root / "etc/pacman.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/pacman.d/clp-pins.conf").write_text("")
    (root / "etc/pacman.conf").write_text(
        "[options]\nArchitecture = auto\nSigLevel = Never\nInclude = /etc/pacman.d/clp-pins.conf\n"
    )
    for version in ("1.0-1", "2.0-1"):
        pacman(root, "-U", str(build_package(root / CACHE, version, files, size)))
    return root


def installed_clp(work: Path) -> str:
    """/usr/bin/clp as the package writes it (clp_alpm/cli/launcher.py), for this checkout and
    this Python: what a user runs, not the development script of the venv (which runs site
    and its .pth files of an editable install, and no system has)."""
    path = work / "bin/clp"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        checkout = str(Path(clp_alpm.__file__).resolve().parent.parent)
        launcher.write(str(path), sys.executable, [checkout, *site.getsitepackages()])
    return str(path)


class Case:
    """One root and its two commands: pacman -U of the cached old version, clp revert to it."""

    def __init__(self, work: Path, files: int, size: int) -> None:
        self.root = root = make_root(work, files, size)
        self.old = str(root / CACHE / "demo-1.0-1-any.pkg.tar.xz")
        self.new = str(root / CACHE / "demo-2.0-1-any.pkg.tar.xz")
        pacman(root, "-Q")  # writes pacman.host.conf
        host_conf = root.parent / "pacman.host.conf"
        self.pacman = ["pacman", "--noconfirm", "--root", str(root), "--dbpath",
                       str(root / "var/lib/pacman"), "--config", str(host_conf),
                       "--cachedir", str(root / CACHE), "-U"]  # fmt: skip
        self.clp = [installed_clp(work), "--root", str(root), "--noconfirm"]
        self.plain: list[float] = []
        self.ours: list[float] = []

    def round(self) -> None:
        self.plain.append(timed([*self.pacman, self.old]))
        timed([*self.pacman, self.new])
        self.ours.append(timed([*self.clp, "revert", "demo", "1.0-1"]))
        timed([*self.clp, "rollback", "demo"])

    def modules(self, work: Path) -> list[str]:
        """The modules a revert from the cache loads (one more revert, then its rollback)."""
        listing = work / "modules"
        env = dict(os.environ, CLP_BENCH_MODULES=str(listing))
        argv = [sys.executable, "-c", PROBE, *self.clp[1:], "revert", "demo", "1.0-1"]
        result = subprocess.run(argv, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise SystemExit(f"clp revert failed: {result.stderr.strip()}")
        timed([*self.clp, "rollback", "demo"])
        return listing.read_text().split()

    def medians(self) -> tuple[float, float]:
        return statistics.median(self.plain) * 1000, statistics.median(self.ours) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--files", type=int, default=1000, help="files in the large package")
    parser.add_argument("--size", type=int, default=32768, help="bytes per file (large)")
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: byte code is cached
    work = Path(tempfile.mkdtemp(prefix="clp-bench-revert-", dir="/var/tmp"))
    try:
        small = Case(work / "small", SMALL_FILES, SMALL_SIZE)
        large = Case(work / "large", args.files, args.size)
        for case in (small, large):  # warm: byte code, page cache (not counted)
            case.round()
            case.plain.clear()
            case.ours.clear()
        for _ in range(args.rounds):  # interleaved: a busy moment hits both sides alike
            small.round()
            large.round()
        loaded = small.modules(work)
        downgrade = "installed, not run (it works on / only)" if shutil.which("downgrade") else (
            "not installed")  # fmt: skip
        print(f"rounds: {args.rounds}; downgrade: {downgrade}; small goal: pacman -U + 60 ms")
        results = []
        for name, case, files, size in (("small", small, SMALL_FILES, SMALL_SIZE),
                                        ("large", large, args.files, args.size)):  # fmt: skip
            pacman_ms, clp_ms = case.medians()
            print(f"{name} package ({files} files x {size} bytes):")
            print(f"  pacman -U (cached package)   median {pacman_ms:7.1f} ms")
            print(f"  clp revert (same package)    median {clp_ms:7.1f} ms")
            results.append((pacman_ms, clp_ms))
        (small_pacman, small_clp), (large_pacman, large_clp) = results
        extra = small_clp - small_pacman
        ratio = large_clp / large_pacman
        download = sorted(m for m in loaded if m.split(".")[0] in DOWNLOAD_MODULES[:3]
                          or m in DOWNLOAD_MODULES)  # fmt: skip
        goals = [
            (extra <= SMALL_GOAL_MS,
             f"clp revert (small) <= pacman -U + {SMALL_GOAL_MS:.0f} ms: +{extra:.1f} ms "
             f"({small_clp / small_pacman:.2f}x)"),
            (ratio <= LARGE_GOAL_RATIO,
             f"clp revert (large) <= {LARGE_GOAL_RATIO}x pacman -U: {ratio:.2f}x"),
            (not download,
             "a revert from the cache loads no download code: "
             + (", ".join(download) if download else "none loaded")),
        ]  # fmt: skip
        for passed, text in goals:
            print(f"  {'PASS' if passed else 'MISS'}  {text}")
        return 0 if all(passed for passed, _ in goals) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
