"""The one path walk under a root (clp_alpm.paths): `resolve_inside` for what clp opens itself,
`resolve_in_root` for what a chrooted process would see. Real links in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clp_alpm import paths
from clp_alpm.errors import PathEscapeError, UsageError
from clp_alpm.paths import (
    open_dir_inside,
    refuse_symlink,
    resolve_in_root,
    resolve_inside,
    target_of,
)
from tests.kits.paths import REPO


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/clp").mkdir(parents=True)
    (root / "srv/state").mkdir(parents=True)
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    return directory


def test_a_plain_path_is_the_root_joined_with_it(root):
    assert resolve_inside(root, "/var/lib/clp") == str(root / "var/lib/clp")
    assert resolve_inside(root, "/") == str(root)


def test_missing_components_are_appended_as_they_are(root):
    assert resolve_inside(root, "/var/lib/clp/new/deeper") == str(root / "var/lib/clp/new/deeper")
    assert resolve_inside(root, "/nowhere/at/all") == str(root / "nowhere/at/all")


def test_a_relative_link_that_stays_inside_is_followed(root):
    (root / "var/log").symlink_to("../srv/state")
    assert resolve_inside(root, "/var/log/CLP.log") == str(root / "srv/state/CLP.log")


def test_an_absolute_link_into_the_roots_own_host_path_is_followed(root):
    (root / "var/log").symlink_to(root / "srv/state")
    assert resolve_inside(root, "/var/log/CLP.log") == str(root / "srv/state/CLP.log")


def test_chained_links_inside_are_followed(root):
    (root / "a").symlink_to("var")
    (root / "srv/b").symlink_to("../a/lib")
    assert resolve_inside(root, "/srv/b/clp") == str(root / "var/lib/clp")


@pytest.mark.parametrize("where", ["var", "var/lib", "var/lib/clp"])
def test_an_absolute_link_out_is_refused_naming_it(root, outside, where):
    _replace_with_link(root / where, str(outside))
    message = rf"^{root / where} is a symbolic link to .*out of the root"
    with pytest.raises(PathEscapeError, match=message):
        resolve_inside(root, "/var/lib/clp/clp.db")
    assert list(outside.iterdir()) == []


def test_a_relative_link_climbing_out_is_refused(root, outside):
    _replace_with_link(root / "var/lib/clp", "../../../outside")
    assert (root / "var/lib/clp").resolve() == outside  # where a plain open would go
    with pytest.raises(PathEscapeError, match="leads out of the root"):
        resolve_inside(root, "/var/lib/clp/lock")


def test_a_link_out_and_back_in_is_refused(root, tmp_path):
    (root / "srv/hop").symlink_to(f"../../{root.name}/srv/state")
    with pytest.raises(PathEscapeError, match="srv/hop is a symbolic link"):
        resolve_inside(root, "/srv/hop/x")


def test_a_dangling_link_is_refused_unless_allowed(root):
    (root / "srv/gone").symlink_to("missing/dir")
    with pytest.raises(PathEscapeError, match=r"srv/gone is a dangling symbolic link"):
        resolve_inside(root, "/srv/gone/file")
    assert resolve_inside(root, "/srv/gone/file", dangling_ok=True) == str(
        root / "srv/missing/dir/file"
    )


def test_a_link_as_the_last_component_is_refused_with_follow_last_off(root):
    (root / "srv/ID").symlink_to("state")
    assert resolve_inside(root, "/srv/ID") == str(root / "srv/state")
    with pytest.raises(PathEscapeError, match=r"srv/ID is a symbolic link \(to 'state'\)"):
        resolve_inside(root, "/srv/ID", follow_last=False)


def test_a_link_loop_is_refused(root):
    (root / "srv/a").symlink_to("b")
    (root / "srv/b").symlink_to("a")
    with pytest.raises(PathEscapeError, match="too many levels of symbolic links"):
        resolve_inside(root, "/srv/a/x")


def test_a_file_in_the_middle_leaves_the_rest_for_the_caller_to_fail_on(root):
    (root / "srv/file").write_text("x")
    assert resolve_inside(root, "/srv/file/below") == str(root / "srv/file/below")


def test_with_the_root_at_slash_nothing_is_out(tmp_path):
    (tmp_path / "link").symlink_to("/")
    assert resolve_inside(Path("/"), f"{tmp_path}/link/etc") == str(Path("/etc"))


@pytest.mark.parametrize("bad", ["", "relative/path", "/a/../b", "/a\0b"])
def test_a_bad_target_path_is_a_usage_error(root, bad):
    with pytest.raises(UsageError):
        resolve_inside(root, bad)


def test_resolve_in_root_follows_links_as_a_chroot_does(root):
    (root / "srv/abs").symlink_to("/var/lib")
    (root / "srv/up").symlink_to("../../../../var")
    assert resolve_in_root(root, "/srv/abs/clp") == str(root / "var/lib/clp")
    assert resolve_in_root(root, "/srv/up/lib") == str(root / "var/lib")
    assert resolve_in_root(root, "/srv/missing") is None


def test_refuse_symlink_names_the_link_and_passes_anything_else(root, outside):
    (root / "var/lib/clp/clp.db").symlink_to(outside / "db")
    with pytest.raises(PathEscapeError, match=r"clp\.db is a symbolic link"):
        refuse_symlink(root / "var/lib/clp/clp.db")
    refuse_symlink(root / "var/lib/clp")
    refuse_symlink(root / "absent")


def test_target_of_inverts_the_join(root):
    assert target_of(root, root / "var/lib") == "/var/lib"
    assert target_of(root, root) == "/"
    assert target_of(root, root.parent / "elsewhere") is None


def _replace_with_link(path: Path, target: str) -> None:
    if path.is_dir():
        os.rename(path, path.with_name(path.name + ".moved"))
    path.symlink_to(target)


def test_open_dir_inside_reaches_the_directory_the_name_resolves_to(root):
    (root / "var/log").symlink_to("../srv/state")
    (root / "srv/state/marker").write_text("here\n")
    fd = open_dir_inside(root, "/var/log")
    try:
        assert os.listdir(f"/proc/self/fd/{fd}") == ["marker"]
        assert os.stat(fd).st_ino == os.stat(root / "srv/state").st_ino
    finally:
        os.close(fd)


def test_open_dir_inside_keeps_its_directory_when_a_link_is_swapped_in_after(root, outside):
    fd = open_dir_inside(root, "/var/lib/clp")
    try:
        os.rename(root / "var/lib/clp", root / "var/lib/clp.old")
        (root / "var/lib/clp").symlink_to(outside)
        os.mkdir("made-here", dir_fd=fd)
    finally:
        os.close(fd)
    assert (root / "var/lib/clp.old/made-here").is_dir()
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (lambda root, out: (root / "srv/x").symlink_to(out), PathEscapeError),
        (lambda root, out: (root / "srv/x").symlink_to("../../outside"), PathEscapeError),
        (lambda root, out: (root / "srv/x").symlink_to("gone"), PathEscapeError),
        (lambda root, out: (root / "srv/x").write_text("a file"), NotADirectoryError),
        (lambda root, out: None, FileNotFoundError),
    ],
    ids=["absolute-out", "climbing-out", "dangling", "a-file", "missing"],
)
def test_open_dir_inside_refuses_what_resolve_inside_refuses(root, outside, setup, error):
    setup(root, outside)
    with pytest.raises(error):
        os.close(open_dir_inside(root, "/srv/x"))


# ----------------------------------------------- the look-ups that stand in for pathlib's


@pytest.fixture
def kinds(tmp_path: Path) -> Path:
    """A directory, a file, links to each, a dangling link, a link loop and a file in the way."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "to-dir").symlink_to("dir")
    (tmp_path / "to-file").symlink_to("file")
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "loop").symlink_to("loop")
    return tmp_path


NAMES = ["dir", "file", "to-dir", "to-file", "dangling", "loop", "file/below", "missing", "dir/x"]


@pytest.mark.parametrize("name", NAMES)
def test_the_lookups_answer_as_pathlib_does(kinds, name):
    path = kinds / name
    assert paths.exists(str(path)) == path.exists()
    assert paths.is_dir(str(path)) == path.is_dir()
    assert paths.is_file(str(path)) == path.is_file()
    assert paths.is_symlink(str(path)) == path.is_symlink()


# as another user (root may enter any directory): each look-up below a 0700 directory
AS_USER = """
import sys
from clp_alpm import paths
for name in ("exists", "is_dir", "is_file", "is_symlink"):
    try:
        print(name, getattr(paths, name)(sys.argv[1]))
    except PermissionError:
        print(name, "PermissionError")
"""


def test_a_lookup_this_user_may_not_make_raises_and_is_not_taken_for_absence(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "clp.db").write_text("")
    os.chmod(tmp_path, 0o755)
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                             sys.executable, "-c", AS_USER, str(private / "clp.db")],
                            capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [f"{name} PermissionError" for name in
                     ("exists", "is_dir", "is_file", "is_symlink")]  # fmt: skip


@pytest.mark.parametrize(
    ("given", "clean"),
    [("/", "/"), ("/a//b/./c/", "/a/b/c"), ("/a/../b", "/a/../b"), ("//a", "/a"), ("/./", "/")],
)
def test_a_host_path_is_made_clean_and_keeps_its_dotdot(given, clean):
    assert paths.clean_host_path(given) == clean


def test_a_relative_host_path_is_made_absolute_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.clean_host_path("rel/./x/") == f"{tmp_path}/rel/x"
    assert paths.clean_host_path(".") == str(tmp_path)
