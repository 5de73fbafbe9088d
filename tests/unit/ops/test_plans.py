"""Planning is pure: a plan decides everything and changes nothing until it is committed."""

from __future__ import annotations

from pathlib import Path

from clp_alpm.config import load_config
from clp_alpm.ops.apply import apply, plan_apply
from clp_alpm.ops.rollback import plan_rollback
from clp_alpm.ops.startup import open_session
from clp_alpm.ops.steps import StepKind
from tests.kits.clpkit import INSTALL_OK, PATCH_ID, make_patch, tree


def _recorded(session) -> tuple[list, list]:
    patches = [record.stored() for record in session.state.list_patches()]
    return patches, session.state.unfinished_operations()


def test_planning_an_apply_changes_nothing(tmp_path: Path, sandbox, keyring, app_conf) -> None:
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    before = tree(sandbox)
    with open_session(load_config(sandbox)) as session:
        plan = plan_apply(session, patch)
        assert _recorded(session) == ([], [])
        kinds = [step.kind for step in plan.steps]
    assert kinds[0] == StepKind.EXTRACT and kinds[-1] == StepKind.RECORD
    assert StepKind.INSTALL_SCRIPT in kinds
    assert tree(sandbox) == before
    assert app_conf.read_text() == "MACs hmac-sha1\n"


def test_planning_a_rollback_changes_nothing(tmp_path: Path, sandbox, keyring, app_conf) -> None:
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    with open_session(load_config(sandbox)) as session:
        apply(session, plan_apply(session, patch))
    after_apply = tree(sandbox)
    with open_session(load_config(sandbox)) as session:
        recorded = _recorded(session)
        plan = plan_rollback(session, PATCH_ID)
        assert _recorded(session) == recorded
    assert plan.record.id == PATCH_ID and plan.record.meta.files == ("/etc/app.conf",)
    assert tree(sandbox) == after_apply
    assert app_conf.read_text() == "MACs hmac-sha2\n"


def _demo_root(sandbox: Path) -> Path:
    """demo 2.0-1 installed with real pacman, its package file not in the cache."""
    from tests.kits.pkgkit import CACHE, build, pacman

    (sandbox / CACHE).mkdir(parents=True)
    (sandbox / "etc/pacman.conf").write_text(
        "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"
    )
    package = build(sandbox / CACHE, "demo", "2.0-1")
    pacman(sandbox, "-U", str(package))
    package.unlink()
    return sandbox


def test_planning_a_revert_changes_nothing_and_copies_come_first(tmp_path: Path, sandbox) -> None:
    from clp_alpm.ops.revert import Request, plan_revert
    from tests.kits.pkgkit import build

    root = _demo_root(sandbox)
    package = build(tmp_path, "demo", "1.0-1")
    before = tree(root)
    with open_session(load_config(root)) as session:
        plan = plan_revert(session, [Request("demo", given=str(package))])
    kinds = [step.kind for step in plan.steps]
    assert kinds == [StepKind.CACHE_PACKAGE, StepKind.REBUILD_PACKAGE, StepKind.PACMAN_UPGRADE,
                     StepKind.PIN, StepKind.RECORD_REVERT]  # fmt: skip
    assert plan.rollback_copies == ("the installed files",)
    assert tree(root) == before


def test_a_file_changed_after_its_check_is_not_copied(tmp_path: Path, sandbox) -> None:
    from clp_alpm.errors import OperationFailed
    from clp_alpm.ops.revert import Request, plan_revert, revert
    from tests.kits.pkgkit import build, installed

    root = _demo_root(sandbox)
    package = build(tmp_path, "demo", "1.0-1")
    before = tree(root)
    with open_session(load_config(root)) as session:
        plan = plan_revert(session, [Request("demo", given=str(package))])
        build(tmp_path, "demo", "1.0-1", content=b"swapped after the check")
        try:
            revert(session, plan)
        except OperationFailed as err:
            assert "changed since its signature was checked" in str(err)
        else:
            raise AssertionError("the revert went on with a changed file")
    assert installed(root, "demo") == "2.0-1"
    assert tree(root) == before
