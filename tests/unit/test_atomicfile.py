"""atomicfile.write_atomically: the old content or the new, the mode asked for, no temp file
left; synced unless the file is a cache (`durable=False`, the completion index)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clp_alpm import atomicfile


@pytest.mark.parametrize("durable", [True, False])
def test_the_new_content_replaces_the_old(tmp_path: Path, monkeypatch, durable: bool) -> None:
    target = tmp_path / "index"
    target.write_text("old\n")
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:  # the real sync, counted
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    atomicfile.write_atomically(target, b"new\n", mode=0o640, durable=durable)
    assert target.read_text() == "new\n"
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    assert len(synced) == (2 if durable else 0)  # the file and its directory


def test_a_failed_write_leaves_the_old_content_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "index"
    target.write_text("old\n")
    with pytest.raises(TypeError):
        atomicfile.write_atomically(target, "not bytes", durable=False)  # type: ignore[arg-type]
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
