"""`clp new`: the skeleton of a patch directory, ready for `clp build`.

A PKGINFO.meta, an install and a remove script that work as they are (they install and remove
one example file), and that payload; the scripts' header says what clp gives a script.
"""

from __future__ import annotations

import datetime
import os
from contextlib import suppress
from pathlib import Path

from clp_alpm.errors import OperationFailed, UsageError
from clp_alpm.formats.archive import META_NAME, SCRIPT_PAIRS
from clp_alpm.formats.meta import PatchMeta, names_other_record, patch_id_is_valid
from clp_alpm.formats.pkginfo import render_meta

TEMPLATE_TARGET = "/etc/clp-example.conf"
TEMPLATE_TARGET_IN_ROOT = TEMPLATE_TARGET.lstrip("/")
TEMPLATE_PAYLOAD = "files/etc/clp-example.conf"

_TEMPLATE_HEADER = """\
#!/usr/bin/env pwsh
# {script} of patch {patch_id}, run by clp as root, chrooted into the system it patches.
#
# clp sets:
#   CLP_PATCH_ID   the patch id ({patch_id})
#   CLP_PATCH_DIR  where the patch was extracted (its payload, e.g. {payload}, is there)
#   CLP_ROOT       the root of the system being patched, as this script sees it (/)
#
# Before Install-Script.ps1 runs, clp snapshots every path listed in <Files> of PKGINFO.meta
# and restores them exactly on rollback or failure: no backup logic is needed here.
# Stop with a non-zero exit code on any error. A failing Install-Script.ps1 rolls the patch
# back; a failing Remove-Script.ps1 is a warning (clp restores the files from its snapshot).
# Install-Script.ps1 runs again when a pacman upgrade replaces a declared file: keep it safe
# to run twice.

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

foreach ($name in 'CLP_PATCH_ID', 'CLP_PATCH_DIR', 'CLP_ROOT') {{
    if (-not [Environment]::GetEnvironmentVariable($name)) {{
        throw "$name is not set: run this patch through clp"
    }}
}}

$target = Join-Path $env:CLP_ROOT '{target_in_root}'
"""

_TEMPLATE_INSTALL = """\
$source = Join-Path $env:CLP_PATCH_DIR '{payload}'

Write-Host "[$env:CLP_PATCH_ID] installing $target"
New-Item -ItemType Directory -Force -Path (Split-Path -Parent $target) | Out-Null
Copy-Item -LiteralPath $source -Destination $target -Force
Write-Host "[$env:CLP_PATCH_ID] installed $target"
exit 0
"""

_TEMPLATE_REMOVE = """\
if (Test-Path -LiteralPath $target) {{
    Remove-Item -LiteralPath $target -Force
    Write-Host "[$env:CLP_PATCH_ID] removed $target"
}} else {{
    Write-Host "[$env:CLP_PATCH_ID] $target is already gone"
}}
exit 0
"""

_TEMPLATE_CONF = """\
# Installed by the example patch {patch_id} (created with 'clp new').
# Replace this payload, PKGINFO.meta's <Files> and the scripts with your own.
example = true
"""


def write_template(dest: Path, patch_id: str) -> None:
    """Create the patch directory `dest` for `clp new`: PKGINFO.meta, working template scripts
    and an example payload. Refuses an invalid id and an existing non-empty `dest`."""
    if not patch_id_is_valid(patch_id):
        raise UsageError(
            f"{patch_id!r} is not a valid patch id: use 1 to 64 letters, digits, '.', '_', '+' "
            "or '-', starting with a letter or digit (e.g. CLPR261125)"
        )
    if names_other_record(patch_id):
        raise UsageError(
            f"{patch_id!r} is spelled as a revert's ID (R1) or a transaction's number and would "
            "shadow that record: give the patch a name with letters in it (e.g. CLPR261125)"
        )
    dest = Path(dest)
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise UsageError(f"{dest}: exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        raise UsageError(f"{dest}: exists and is not empty")
    files = _template_files(patch_id)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for name, (data, mode) in files.items():
            path = dest / name
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            written.append(path)
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                os.fchmod(stream.fileno(), mode)
    except OSError as e:
        _remove_template(dest, written, created)
        raise OperationFailed(f"{dest}: cannot write the template: {e.strerror}") from None


def _template_files(patch_id: str) -> dict[str, tuple[bytes, int]]:
    meta = PatchMeta(
        name=patch_id,
        version="1",
        architecture="any",
        description=f"Example patch {patch_id}: installs {TEMPLATE_TARGET}",
        date=datetime.date.today().isoformat(),
        files=(TEMPLATE_TARGET,),
    )
    fields = {
        "patch_id": patch_id,
        "payload": TEMPLATE_PAYLOAD,
        "target_in_root": TEMPLATE_TARGET_IN_ROOT,
    }
    install_name, remove_name = SCRIPT_PAIRS[0]
    install = _TEMPLATE_HEADER.format(script=install_name, **fields) + "\n"
    install += _TEMPLATE_INSTALL.format(**fields)
    remove = _TEMPLATE_HEADER.format(script=remove_name, **fields) + "\n"
    remove += _TEMPLATE_REMOVE.format(**fields)
    return {
        META_NAME: (render_meta(meta), 0o644),
        install_name: (install.encode("utf-8"), 0o755),
        remove_name: (remove.encode("utf-8"), 0o755),
        TEMPLATE_PAYLOAD: (_TEMPLATE_CONF.format(**fields).encode("utf-8"), 0o644),
    }


def _remove_template(dest: Path, written: list[Path], created: bool) -> None:
    for path in written:
        path.unlink(missing_ok=True)
    directories = sorted({p for w in written for p in w.parents if dest in p.parents}, reverse=True)
    for directory in [*directories, *([dest] if created else [])]:
        with suppress(OSError):
            directory.rmdir()
