"""`clp build`: pack a patch directory into a .clp, checked as inspection would check it.

The zip is deterministic (entries sorted, fixed timestamps, modes 0644 or 0755), written to a
temporary file beside the output and renamed into place, then inspected like any other patch.
"""

from __future__ import annotations

import os
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from clp_alpm.atomicfile import fsync_directory
from clp_alpm.errors import OperationFailed, UsageError
from clp_alpm.formats.archive import (
    CHUNK_SIZE,
    DEFAULT_LIMITS,
    META_NAME,
    SCRIPT_PAIRS,
    Limits,
    PatchArchive,
    choose_scripts,
)
from clp_alpm.formats.inspect import inspect_patch
from clp_alpm.formats.members import (
    Member,
    Scan,
    check_meta_size,
    check_name,
    describe_mode_type,
    read_meta,
    require_file,
    type_refusal,
)
from clp_alpm.formats.pkginfo import parse_meta

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIP_UNIX = 3


@dataclass(frozen=True)
class _SourceItem:
    name: str  # relative POSIX path
    path: Path
    is_dir: bool
    size: int
    mode: int


def build_patch(src_dir: Path, out: Path) -> PatchArchive:
    """Check the patch directory `src_dir` and pack it into the zip `out`, deterministically
    (sorted entries, fixed timestamps, modes 0644/0755) and atomically. Returns its inspection.
    """
    src = Path(src_dir)
    label = str(src)
    if not src.is_dir():
        raise UsageError(f"{src}: not a directory")
    out = Path(out)
    out_abs = out.parent.resolve() / out.name
    skip = _output_inside_source(src.resolve(), out_abs, out)
    try:
        items = _collect_sources(src, label, DEFAULT_LIMITS, skip)
        _check_sources(items, label)
        _write_zip_atomically(items, out_abs)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        raise OperationFailed(f"{out}: cannot build the patch: {where}{e.strerror or e}") from None
    return inspect_patch(out)


def _output_inside_source(src_real: Path, out_abs: Path, out: Path) -> str | None:
    """The output's name if it lies at the top of the source (it is left out of the archive)."""
    try:
        relative = out_abs.relative_to(src_real)
    except ValueError:
        return None
    if len(relative.parts) != 1 or not out.name.endswith(".clp"):
        raise UsageError(
            f"{out}: the output is inside the patch directory {src_real} and would overwrite "
            "or join its contents; write it elsewhere (or as NAME.clp at its top)"
        )
    return out.name


def _collect_sources(src: Path, label: str, limits: Limits, skip: str | None) -> list[_SourceItem]:
    """Every directory and regular file under `src`, sorted, checked as an archive would be."""
    items: list[_SourceItem] = []
    scan = Scan(label, limits)

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as listing:
            children = sorted(listing, key=lambda e: e.name)
        for child in children:
            name = prefix + child.name
            st = child.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if name == skip and not is_dir:
                continue
            if not is_dir and not stat.S_ISREG(st.st_mode):
                raise type_refusal(label, name, describe_mode_type(stat.S_IFMT(st.st_mode)))
            scan.count()
            parts = check_name(name, label, limits, is_dir=is_dir)
            executable = not is_dir and bool(st.st_mode & 0o111)
            size = 0 if is_dir else st.st_size
            scan.add(Member(name, parts, size, is_dir, executable))
            mode = 0o755 if is_dir or executable else 0o644
            items.append(_SourceItem(name, Path(child.path), is_dir, size, mode))
            if is_dir:
                walk(Path(child.path), name + "/")

    walk(src, "")
    return items


def _check_sources(items: list[_SourceItem], label: str) -> None:
    files = {i.name for i in items if not i.is_dir}
    dirs = {i.name for i in items if i.is_dir}
    require_file(META_NAME, files, dirs, label, "write one, e.g. with 'clp new'")
    meta_item = next(i for i in items if i.name == META_NAME)
    check_meta_size(meta_item.size, label)
    with open(meta_item.path, "rb") as stream:
        meta_data = read_meta(stream, label)
    parse_meta(meta_data, f"{label}/{META_NAME}")
    choose_scripts(files, dirs, label)


def _write_zip_atomically(items: list[_SourceItem], out_abs: Path) -> None:
    scripts = {name for pair in SCRIPT_PAIRS for name in pair}
    fd, temp_name = tempfile.mkstemp(prefix=f".{out_abs.name}.", suffix=".tmp", dir=out_abs.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w+b") as raw:
            with zipfile.ZipFile(raw, "w") as archive:
                for item in items:
                    if item.is_dir:
                        archive.writestr(_zip_dir_info(item.name), b"")
                    else:
                        mode = 0o755 if item.name in scripts else item.mode
                        _add_zip_file(archive, item, mode)
            raw.flush()
            os.fchmod(raw.fileno(), 0o644)
            os.fsync(raw.fileno())
        os.replace(temp, out_abs)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(out_abs.parent)


def _zip_dir_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name + "/", date_time=ZIP_EPOCH)
    info.create_system = _ZIP_UNIX
    info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10  # 0x10: MS-DOS directory bit
    info.compress_type = zipfile.ZIP_STORED
    return info


def _add_zip_file(archive: zipfile.ZipFile, item: _SourceItem, mode: int) -> None:
    info = zipfile.ZipInfo(item.name, date_time=ZIP_EPOCH)
    info.create_system = _ZIP_UNIX
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size = item.size
    fd = os.open(item.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as source, archive.open(info, "w") as target:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{item.path}: changed while the patch was being built")
        count = 0
        while chunk := source.read(CHUNK_SIZE):
            count += len(chunk)
            target.write(chunk)
        if count != item.size:
            raise UsageError(f"{item.path}: changed while the patch was being built")
