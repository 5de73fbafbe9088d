#!/usr/bin/env python3
"""Benchmark: `clp revert` against `pacman -U` of the same cached package, in the same run.

A sandbox root gets a package installed at 2.0-1 with 1.0-1 in its cache; each round times
`pacman -U <cached 1.0-1>` (then puts 2.0-1 back) and `clp revert --noconfirm pkg 1.0-1` (then
`clp rollback`), alternating, and reports the medians and their ratio (goal: at most 1.2x).

    .venv/bin/python -m bench.revert [--rounds 7] [--files 1000] [--size 32768]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.kits import rootkit
from tests.kits.pkgkit import CACHE, pacman

HERE = Path(__file__).resolve().parent

CLP = Path(sys.executable).parent / "clp"


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {result.stderr.strip()}")
    return elapsed


def build_package(directory: Path, version: str, files: int, size: int) -> Path:
    """A package the size of a typical driver or library: `files` files of `size` bytes
    (random, so compression does real work), as .pkg.tar.xz."""
    import io
    import os
    import tarfile

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


GOAL_RATIO = 1.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--files", type=int, default=1000, help="files in the package")
    parser.add_argument("--size", type=int, default=32768, help="bytes per file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clp-bench-revert-", dir="/var/tmp"))
    try:
        root = make_root(work, args.files, args.size)
        print(f"package: {args.files} files x {args.size} bytes")
        old = str(root / CACHE / "demo-1.0-1-any.pkg.tar.xz")
        new = str(root / CACHE / "demo-2.0-1-any.pkg.tar.xz")
        host_conf = root.parent / "pacman.host.conf"
        base = ["pacman", "--noconfirm", "--root", str(root), "--dbpath",
                str(root / "var/lib/pacman"), "--config", str(host_conf),
                "--cachedir", str(root / CACHE), "-U"]  # fmt: skip
        pacman(root, "-Q")  # writes pacman.host.conf
        clp = [str(CLP), "--root", str(root), "--noconfirm"]
        plain, ours = [], []
        for _ in range(args.rounds):
            plain.append(timed([*base, old]))
            timed([*base, new])
            ours.append(timed([*clp, "revert", "demo", "1.0-1"]))
            timed([*clp, "rollback", "demo"])
        pacman_s, clp_s = statistics.median(plain), statistics.median(ours)
        print(f"rounds: {args.rounds}")
        print(f"pacman -U (cached package)   median {pacman_s * 1000:7.1f} ms")
        print(f"clp revert (same package)    median {clp_s * 1000:7.1f} ms")
        ratio = clp_s / pacman_s
        verdict = "PASS" if ratio <= GOAL_RATIO else "MISS"
        print(f"ratio clp/pacman: {ratio:.2f}x (goal <= {GOAL_RATIO}x)")
        print(f"  {verdict}  clp revert <= {GOAL_RATIO}x pacman -U: {ratio:.2f}x")
        return 0 if verdict == "PASS" else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
