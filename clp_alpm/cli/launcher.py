"""`/usr/bin/clp` as the package installs it, written by this module (see PKGBUILD).

pacman starts `clp hook` twice in every transaction and waits for it. The script a wheel
installer writes imports `re` and runs Python's `site` (its .pth files, sitecustomize) before
clp's first line; this one starts Python with -S and, for `clp hook`, the listings, `--help`
and `clp revert` (with whatever global options), only puts clp's own directories on sys.path
(the package's site-packages, which holds pyalpm, lxml and click as well). Every other
command runs `site` first, as any Python program does. `clp_alpm.cli.entry` then takes their
fast paths (no click).

    python -m clp_alpm.cli.launcher --python /usr/bin/python --site-dir DIR [...] OUTPUT
"""

from __future__ import annotations

import argparse
import os
import sys

_TEMPLATE = """#!{python} -S
# Core LivePatch: /usr/bin/clp, written by clp_alpm/cli/launcher.py. Python starts without
# `site`: pacman waits for `clp hook` on every transaction, the listings and --help should
# answer as fast as pacman -Q, and a revert as fast as downgrade; they need only clp's own
# directories. Every other command runs `site` first, as any Python program does. The
# script's own directory (/usr/bin) leaves sys.path: no module comes from there, and listing
# it costs each start a millisecond.
import sys

if not getattr(sys.flags, "safe_path", False):
    del sys.path[0]
if {{"hook", "list", "pins", "transactions", "status", "revert", "--help", "-h"}} & set(
    sys.argv[1:]
):
    sys.path.extend({site_dirs!r})
else:
    import site

    site.main()
from clp_alpm.cli.entry import main

sys.exit(main())
"""


def render(python: str, site_dirs: list[str]) -> str:
    """The launcher's text: `python` runs it; `site_dirs` hold clp_alpm (and its imports)."""
    return _TEMPLATE.format(python=python, site_dirs=list(dict.fromkeys(site_dirs)))


def write(output: str, python: str, site_dirs: list[str]) -> None:
    """Write the launcher to `output`, mode 0755."""
    with open(output, "w", encoding="utf-8") as script:
        script.write(render(python, site_dirs))
    os.chmod(output, 0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the interpreter (its absolute path)")
    parser.add_argument("--site-dir", action="append", required=True, dest="site_dirs",
                        help="a directory holding clp_alpm or what it imports")  # fmt: skip
    parser.add_argument("output")
    args = parser.parse_args(argv)
    if not os.path.isabs(args.python):
        parser.error("--python must be an absolute path")
    write(args.output, args.python, args.site_dirs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
