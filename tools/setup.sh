#!/usr/bin/env bash
# Install what clp needs: system packages (Debian or Arch) and a venv in .venv.
#   bash tools/setup.sh          what clp and the demo need
#   bash tools/setup.sh --test   that, and the tools of the test suite, the linters and the
#                                documentation checks (tools/test.sh and .ci/run ask for it)
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=false
case "${1:-}" in
    --test) with_tests=true ;;
    "") ;;
    *) echo "usage: bash tools/setup.sh [--test]" >&2; exit 2 ;;
esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if command -v apt-get >/dev/null 2>&1; then
    # clp and pyalpm's build, and the demo's sandbox (busybox, gpg, pacman for its hooks)
    packages=(pacman-package-manager libalpm-dev libarchive-dev libcurl4-openssl-dev libgpgme-dev
              pkg-config libarchive-tools gnupg zstd busybox-static python3-venv python3-dev gcc)
    if $with_tests; then
        packages+=(time systemd
                   # building the package as a user would (tests/e2e/test_package.py)
                   makepkg fakeroot python-is-python3 python3-build python3-installer
                   python3-setuptools python3-wheel python3-click git
                   # checking the man pages and the shell completions (tests/e2e/test_docs.py)
                   mandoc groff-base man-db zsh fish
                   # the tools bench/hooks.py measures clp's hooks against, on a btrfs image
                   etckeeper btrfs-progs snapper)
    fi
    missing=()
    for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo ":: Installing system packages: ${missing[*]}"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
elif command -v pacman >/dev/null 2>&1; then
    packages=(python pyalpm python-lxml python-click libarchive gnupg zstd busybox)
    if $with_tests; then
        packages+=(base-devel git mandoc zsh fish etckeeper btrfs-progs snapper)
    fi
    as_root pacman -S --needed --noconfirm "${packages[@]}"
else
    echo "error: neither apt-get nor pacman found; install libalpm, gnupg, busybox by hand" >&2
    exit 1
fi

# The distribution's Python, which the package runs on (Arch's python, Debian's python3): the
# venv's Python is what the pacman hooks and the benchmarks start, and a distribution's build
# starts and loads its C modules faster than a locally built one (pyenv's: 9 ms a
# transaction's hooks, bench/hooks.py). PYTHON=... picks another.
python=${PYTHON:-}
if [ -z "$python" ]; then
    python=python3
    [ -x /usr/bin/python3 ] && python=/usr/bin/python3
fi
if [ ! -x .venv/bin/python ]; then
    echo ":: Creating .venv"
    "$python" -m venv .venv
fi
target=.
if $with_tests; then
    target='.[test]'
    echo ":: Installing clp and its test tools into .venv"
else
    echo ":: Installing clp into .venv"
fi
# setuptools warns about every editable install in a box of asterisks; the advice (a folder
# named like the package shadows it) does not apply to a checkout installed in place
export PYTHONWARNINGS="ignore:Editable installation"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e "$target"
if $with_tests; then
    # tools/test.sh: the test tools are here, for this pyproject.toml (a new entry point or
    # dependency there installs again)
    sha256sum pyproject.toml > .venv/.clp-test-tools
fi
