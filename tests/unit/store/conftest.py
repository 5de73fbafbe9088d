"""Fixtures of the snapshot store's tests: an empty root to snapshot, and a store beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from clp_alpm.store.snapshots import SnapshotStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "store")
