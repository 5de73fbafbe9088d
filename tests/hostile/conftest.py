"""The corpus's fixture: a fence around a fresh sandbox root and a canary directory outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kits.hostilekit import Fence


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A directory outside the root holding a file, where a hostile link would lead clp."""
    directory = tmp_path / "canary"
    (directory / "etc").mkdir(parents=True)
    (directory / "etc/keep").write_text("the host's file\n")
    return directory


@pytest.fixture
def fence(sandbox: Path, canary: Path) -> Fence:
    """Set up the input, `fence.close()`, run clp, then `assert_refused(result, fence, …)`."""
    return Fence(sandbox, canary)
