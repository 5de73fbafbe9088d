#!/usr/bin/env bash
# Install what clp needs to build and test: system packages (Debian or Arch) and a venv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if command -v apt-get >/dev/null 2>&1; then
    packages=(pacman-package-manager libalpm-dev libarchive-dev libcurl4-openssl-dev libgpgme-dev
              pkg-config libarchive-tools gnupg zstd busybox-static python3-venv python3-dev gcc
              time systemd
              # building the package as a user would (tests/e2e/test_package.py)
              makepkg fakeroot python-is-python3 python3-build python3-installer
              python3-setuptools python3-wheel python3-click git
              # checking the man pages and the shell completions (tests/e2e/test_docs.py)
              mandoc groff-base man-db zsh fish)
    missing=()
    for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo ":: Installing system packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
elif command -v pacman >/dev/null 2>&1; then
    as_root pacman -S --needed --noconfirm python pyalpm python-lxml python-click libarchive gnupg \
        zstd busybox base-devel
else
    echo "error: neither apt-get nor pacman found; install libalpm, gnupg, busybox by hand" >&2
    exit 1
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo ":: Creating .venv"
    "$python" -m venv .venv
fi
echo ":: Installing clp and its test tools into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
