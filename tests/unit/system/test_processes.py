"""Finding processes that still use deleted or replaced files: real processes, and a fake /proc
for the kernel's corner cases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clp_alpm.system.processes import (
    StaleProcess,
    find_stale_processes,
    group_by_unit,
    unit_from_cgroup,
)

MAPPER = """
import mmap, sys
held = []
for name in sys.argv[1:]:
    with open(name, "rb") as f:
        held.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
print("ready", flush=True)
sys.stdin.read()
"""

Start = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def start_mapper() -> Iterator[Start]:
    """Starts a python process that maps the given files and waits until its stdin closes."""
    started: list[subprocess.Popen[str]] = []

    def start(*files: Path) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", MAPPER, *map(str, files)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(child)
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        return child

    yield start
    for child in started:
        child.kill()
        child.wait()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    for name in ("libdemo.so.1", "libother.so.1", "libkept.so.1"):
        (root / "usr/lib" / name).write_bytes(name.encode() * 512)
    return root


def replace_by_rename(path: Path) -> None:
    """Install a new copy as pacman does: write beside it, rename over it."""
    new = path.with_name(path.name + ".new")
    new.write_bytes(b"new build" * 512)
    os.rename(new, path)


def stale_of(pid: int, root: Path, proc: Path = Path("/proc")) -> StaleProcess | None:
    return next((p for p in find_stale_processes(root, proc) if p.pid == pid), None)


# -- real processes --------------------------------------------------------------------------


def test_a_file_replaced_by_rename_is_listed_inside_the_root(root: Path, start_mapper: Start):
    child = start_mapper(root / "usr/lib/libdemo.so.1", root / "usr/lib/libkept.so.1")
    assert stale_of(child.pid, root) is None

    replace_by_rename(root / "usr/lib/libdemo.so.1")

    stale = stale_of(child.pid, root)
    assert stale is not None
    assert stale.files == ("/usr/lib/libdemo.so.1",)
    assert stale.command == os.path.basename(sys.executable)
    assert stale.unit == unit_from_cgroup(Path(f"/proc/{child.pid}/cgroup").read_text())


def test_a_deleted_file_is_listed(root: Path, start_mapper: Start) -> None:
    child = start_mapper(root / "usr/lib/libdemo.so.1", root / "usr/lib/libother.so.1")
    (root / "usr/lib/libother.so.1").unlink()
    replace_by_rename(root / "usr/lib/libdemo.so.1")

    stale = stale_of(child.pid, root)
    assert stale is not None
    assert stale.files == ("/usr/lib/libdemo.so.1", "/usr/lib/libother.so.1")


def test_a_process_with_unchanged_files_is_not_listed(root: Path, start_mapper: Start) -> None:
    changed = start_mapper(root / "usr/lib/libdemo.so.1")
    unchanged = start_mapper(root / "usr/lib/libkept.so.1")
    replace_by_rename(root / "usr/lib/libdemo.so.1")

    pids = [p.pid for p in find_stale_processes(root)]
    assert changed.pid in pids
    assert unchanged.pid not in pids


def test_a_file_rewritten_in_place_keeps_its_identity(root: Path, start_mapper: Start) -> None:
    """Only a new file (a new inode) makes a process stale; pacman always writes new files."""
    child = start_mapper(root / "usr/lib/libkept.so.1")
    with open(root / "usr/lib/libkept.so.1", "r+b") as f:
        f.write(b"patched")
    assert stale_of(child.pid, root) is None


def test_only_files_under_the_root_count(root: Path, tmp_path: Path, start_mapper: Start):
    other_root = tmp_path / "other"
    (other_root / "usr/lib").mkdir(parents=True)
    child = start_mapper(root / "usr/lib/libdemo.so.1")
    replace_by_rename(root / "usr/lib/libdemo.so.1")

    assert stale_of(child.pid, other_root) is None
    # With root "/", the file lies under /tmp, where pacman never installs anything.
    if str(root).startswith("/tmp/"):
        assert stale_of(child.pid, Path("/")) is None


def test_the_root_may_be_given_through_a_symlink(root: Path, tmp_path: Path, start_mapper: Start):
    link = tmp_path / "root-link"
    link.symlink_to(root)
    child = start_mapper(root / "usr/lib/libdemo.so.1")
    (root / "usr/lib/libdemo.so.1").unlink()
    stale = stale_of(child.pid, link)
    assert stale is not None
    assert stale.files == ("/usr/lib/libdemo.so.1",)


def test_a_replaced_executable_is_listed(root: Path) -> None:
    sleep = root / "usr/bin/sleep"
    sleep.parent.mkdir(parents=True)
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", sleep)
    child = subprocess.Popen([str(sleep), "30"])
    try:
        assert stale_of(child.pid, root) is None
        new = sleep.with_name("sleep.new")
        shutil.copy2(sleep, new)
        os.rename(new, sleep)
        stale = stale_of(child.pid, root)
        assert stale is not None
        assert stale.command == "sleep"
        assert stale.files == ("/usr/bin/sleep",)
    finally:
        child.kill()
        child.wait()


NAMESPACE_MOUNT_POINT = next((d for d in ("/mnt", "/srv", "/opt") if os.path.isdir(d)), None)


@pytest.mark.skipif(
    shutil.which("unshare") is None or NAMESPACE_MOUNT_POINT is None,
    reason="needs unshare(1) and an empty-enough /mnt, /srv or /opt to mount over",
)
def test_a_process_in_another_mount_namespace_is_judged_by_what_it_sees(tmp_path: Path) -> None:
    """A sandboxed service sees its own files: its /usr/bin/env is another file than ours, and
    its MOUNT_POINT/ holds what only it sees. Neither may be mistaken for a replaced file, but a
    file replaced in its view must be found."""
    own_env = tmp_path / "env-copy"
    own_env.write_bytes(b"not our env")
    private = tmp_path / "private"
    private.mkdir()
    (private / "libsandboxed.so").write_bytes(b"v1" * 512)
    mount_point = NAMESPACE_MOUNT_POINT
    shell = (
        f"mount --bind {own_env} /usr/bin/env && mount --bind {private} {mount_point} && "
        f'exec "$0" -c "$1" /usr/bin/env {mount_point}/libsandboxed.so'
    )
    child = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell]
        + [sys.executable, MAPPER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        assert os.readlink(f"/proc/{child.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert stale_of(child.pid, Path("/")) is None

        replace_by_rename(private / "libsandboxed.so")
        stale = stale_of(child.pid, Path("/"))
        assert stale is not None
        assert stale.files == (f"{mount_point}/libsandboxed.so",)
        # Its paths are not paths of this host: another root leaves it out.
        assert stale_of(child.pid, tmp_path) is None
    finally:
        child.kill()
        child.wait()


def test_processes_that_come_and_go_during_scans_do_no_harm(root: Path, start_mapper: Start):
    child = start_mapper(root / "usr/lib/libdemo.so.1")
    (root / "usr/lib/libdemo.so.1").unlink()
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            subprocess.run(["true"], check=False)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(20):
            assert [p.pid for p in find_stale_processes(root)] == [child.pid]
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_a_process_that_exited_before_it_was_read_is_skipped(tmp_path: Path) -> None:
    """A pid listed but gone when read: a fake /proc whose entry points at a reaped process."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / str(gone.pid)).symlink_to(f"/proc/{gone.pid}")
    live = fake_process(proc, 50, ["/usr/lib/libgone.so (deleted)"])
    assert [p.pid for p in find_stale_processes(Path("/"), proc)] == [live]


def test_the_real_proc_scan_returns_well_formed_results() -> None:
    for process in find_stale_processes():
        assert process.pid > 0
        assert process.files == tuple(sorted(set(process.files)))
        assert all(f.startswith("/") for f in process.files)
        assert not any(f.startswith(("/tmp/", "/proc/", "/dev/", "/memfd:")) for f in process.files)


# -- a fake /proc for the kernel's corner cases ------------------------------------------------


def maps_line(path: str, device: str = "08:01", inode: int = 4242, perms: str = "r--p") -> str:
    return f"7f0000000000-7f0000001000 {perms} 00000000 {device} {inode}                   {path}"


def fake_process(
    proc: Path,
    pid: int,
    paths: list[str] | None = None,
    *,
    lines: list[str] | None = None,
    comm: str = "demo",
    cmdline: bytes = b"/usr/bin/demo\0--serve\0",
    cgroup: str = "0::/system.slice/demo.service\n",
    exe: str | None = None,
) -> int:
    """A /proc/PID directory with maps (one line per path, plus `lines` as they are), comm,
    cmdline, cgroup and optionally an exe symlink."""
    pid_dir = proc / str(pid)
    pid_dir.mkdir(parents=True)
    text = [maps_line(path) for path in paths or []] + (lines or [])
    (pid_dir / "maps").write_bytes(os.fsencode("\n".join(text) + "\n"))
    (pid_dir / "comm").write_text(comm + "\n")
    (pid_dir / "cmdline").write_bytes(cmdline)
    (pid_dir / "cgroup").write_text(cgroup)
    if exe is not None:
        (pid_dir / "exe").symlink_to(exe)
    return pid


def identity(path: Path) -> tuple[str, int]:
    st = os.stat(path)
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino


def test_fake_deleted_files_under_slash_and_what_is_never_reported(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    pid = fake_process(
        proc,
        321,
        [
            "/usr/lib/libssl.so.3 (deleted)",
            "/usr/lib/libssl.so.3 (deleted)",
            "/usr/lib/libcrypto.so.3 (deleted)",
            "/memfd:wayland-shm (deleted)",
            "/memfd:name/with/slashes (deleted)",
            "/dev/shm/pulse-shm-1 (deleted)",
            "/dev/zero (deleted)",
            "/SYSV00000000 (deleted)",
            "/drm mm object (deleted)",
            "/[aio] (deleted)",
            "/anon_hugepage (deleted)",
            "/tmp/jit-cache (deleted)",
            "/var/tmp/x (deleted)",
            "/run/user/1000/x (deleted)",
            "/home/alice/.cache/mesa/index (deleted)",
            "/proc/1/x (deleted)",
            "/sys/fs/x (deleted)",
        ],
        lines=[
            "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ",
            "7f0000000000-7f0000001000 rw-p 00000000 00:00 0                  [heap]",
            "7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0                  [stack]",
            "7f0000000000-7f0000001000 rw-s 00000000 00:0f 77      anon_inode:[io_uring]",
            "7f0000000000-7f0000001000 r--p 00000000 00:00 0                  /usr/lib/zero-inode",
        ],
    )
    [stale] = find_stale_processes(Path("/"), proc)
    assert stale == StaleProcess(
        pid, "demo", "demo.service", ("/usr/lib/libcrypto.so.3", "/usr/lib/libssl.so.3")
    )


def test_fake_paths_with_spaces_newlines_and_odd_bytes(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    root = tmp_path / "root"
    fake_process(
        proc,
        7,
        [
            f"{root}/opt/My App/lib core.so (deleted)",
            f"{root}/opt/app/trailing space.so  (deleted)",
            f"{root}/opt/app/line\\012break.so (deleted)",
            f"{root}/opt/app/café.so (deleted)",
        ],
    )
    (proc / "7/maps").write_bytes(
        (proc / "7/maps").read_bytes()
        + maps_line(f"{root}/opt/app/").encode()
        + b"bad\xff.so (deleted)\n"
    )
    [stale] = find_stale_processes(root, proc)
    assert stale.files == (
        "/opt/My App/lib core.so",
        "/opt/app/bad\udcff.so",
        "/opt/app/café.so",
        "/opt/app/line\nbreak.so",
        "/opt/app/trailing space.so ",
    )


def test_fake_garbage_lines_are_ignored(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(
        proc,
        8,
        ["/usr/lib/libreal.so (deleted)"],
        lines=[
            "garbage",
            "",
            "   ",
            "7f00-7f01 r--p 00000000 zz:01 55 /usr/lib/bad-device.so (deleted)",
            "7f00-7f01 r--p 00000000 0801 55 /usr/lib/no-colon.so (deleted)",
            "7f00-7f01 r--p 00000000 08:01 abc /usr/lib/bad-inode.so (deleted)",
            "7f00-7f01 r--p 00000000 08:01 /usr/lib/missing-field.so (deleted)",
            "7f00-7f01 r--p 00000000 08:01 55",
            "\x00\x01\x02",
        ],
    )
    [stale] = find_stale_processes(Path("/"), proc)
    assert stale.files == ("/usr/lib/libreal.so",)


def test_fake_replaced_file_is_found_by_its_inode(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lib = root / "usr/lib/libz.so.1"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"zlib")
    device, inode = identity(lib)
    proc = tmp_path / "proc"
    fake_process(proc, 1, lines=[maps_line(str(lib), device, inode)])
    fake_process(proc, 2, lines=[maps_line(str(lib), device, inode + 1)])
    fake_process(proc, 3, lines=[maps_line(str(lib), "00:99", inode)])
    fake_process(proc, 4, lines=[maps_line(f"{root}/usr/lib/moved-away.so", device, 5)])

    # 3: same inode, the device differs but one side is anonymous (as btrfs and overlayfs show).
    # 4: a path that is gone without "(deleted)" proves nothing.
    assert [(p.pid, p.files) for p in find_stale_processes(root, proc)] == [
        (2, ("/usr/lib/libz.so.1",))
    ]


def test_fake_other_block_device_with_the_same_inode_is_replaced(tmp_path: Path) -> None:
    lib = tmp_path / "root/usr/lib/libz.so.1"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"zlib")
    st = os.stat(lib)
    if os.major(st.st_dev) == 0:
        pytest.skip("the temporary directory is on a file system with an anonymous device")
    other_major = os.major(st.st_dev) + 1
    proc = tmp_path / "proc"
    fake_process(proc, 1, lines=[maps_line(str(lib), f"{other_major:02x}:00", st.st_ino)])
    assert [p.pid for p in find_stale_processes(tmp_path / "root", proc)] == [1]


def test_fake_file_whose_name_really_ends_in_deleted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    odd = root / "usr/lib/odd (deleted)"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(b"odd")
    device, inode = identity(odd)
    proc = tmp_path / "proc"
    fake_process(proc, 1, lines=[maps_line(str(odd), device, inode)])
    fake_process(proc, 2, lines=[maps_line(str(odd), device, inode + 1)])
    assert [(p.pid, p.files) for p in find_stale_processes(root, proc)] == [(2, ("/usr/lib/odd",))]


def test_fake_deleted_executable_is_listed(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 10, exe="/usr/bin/sshd (deleted)", cgroup="0::/system.slice/sshd.service")
    fake_process(proc, 11, exe="/usr/bin/env")
    fake_process(proc, 12, exe="/tmp/scratch/tool (deleted)")
    assert find_stale_processes(Path("/"), proc) == [
        StaleProcess(10, "demo", "sshd.service", ("/usr/bin/sshd",))
    ]


def test_fake_results_are_sorted_by_pid_and_skip_what_is_not_a_process(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid in (100, 9, 10):
        fake_process(proc, pid, ["/usr/lib/libold.so (deleted)"])
    (proc / "self").mkdir()
    (proc / "1a").mkdir()
    (proc / "sys").mkdir()
    (proc / "20").mkdir()  # no maps: a kernel thread or gone
    (proc / "21/maps").mkdir(parents=True)  # unreadable maps
    fake_process(proc, 22, ["/usr/lib/libold.so (deleted)"])
    (proc / "22/cgroup").unlink()  # exited between reading maps and cgroup
    assert [p.pid for p in find_stale_processes(Path("/"), proc)] == [9, 10, 100]


def test_a_missing_proc_gives_nothing(tmp_path: Path) -> None:
    assert find_stale_processes(Path("/"), tmp_path / "no-proc") == []


@pytest.mark.parametrize(
    ("comm", "cmdline", "command"),
    [
        ("sshd", b"sshd: alice [priv]\0", "sshd"),
        ("systemd-journal", b"/usr/lib/systemd/systemd-journald\0", "systemd-journald"),
        (
            "gnome-shell-cal",
            b"/usr/libexec/gnome-shell-calendar-server\0",
            "gnome-shell-calendar-server",
        ),
        ("postgres: walwr", b"postgres: walwriter\0", "postgres: walwriter"),
        ("kworker-longnam", b"other\0", "kworker-longnam"),
        ("", b"/usr/bin/tool\0-x\0", "tool"),
        ("", b"", "?"),
    ],
)
def test_fake_command_names(tmp_path: Path, comm: str, cmdline: bytes, command: str) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 5, ["/usr/lib/libold.so (deleted)"], comm=comm, cmdline=cmdline)
    [stale] = find_stale_processes(Path("/"), proc)
    assert stale.command == command


# -- units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("0::/system.slice/sshd.service\n", "sshd.service"),
        ("0::/system.slice/system-getty.slice/getty@tty1.service\n", "getty@tty1.service"),
        (
            "0::/system.slice/system-systemd\\x2dfsck.slice/systemd-fsck@dev-sda1.service\n",
            "systemd-fsck@dev-sda1.service",
        ),
        ("0::/system.slice/docker.service/payload/inner\n", "docker.service"),
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service\n", "foo.service"),
        ("0::/user.slice/user-1000.slice/user@1000.service/init.scope\n", "user@1000.service"),
        ("0::/user.slice/user-1000.slice/session-3.scope\n", None),
        ("0::/init.scope\n", None),
        ("0::/system.slice/docker-0123abcd.scope\n", None),
        ("0::/\n", None),
        ("0::/system.slice/gone.service (deleted)\n", "gone.service"),
        ("1:name=systemd:/system.slice/cron.service\n", "cron.service"),
        (
            "12:pids:/system.slice/other.service\n"
            "4:cpu,cpuacct:/system.slice/other.service\n"
            "1:name=systemd:/system.slice/cron.service\n",
            "cron.service",
        ),
        ("4:cpu,cpuacct:/system.slice/other.service\n", None),
        ("1:name=systemd:/system.slice/nginx.service\n0::/\n", "nginx.service"),
        ("0::/system.slice/-bad.service\n", None),
        ("0::/system.slice/evil;reboot.service\n", None),
        ("0::/system.slice/sshd.socket\n", None),
        ("", None),
        ("garbage\n", None),
        ("0::", None),
        ("0:", None),
    ],
)
def test_unit_from_cgroup(text: str, unit: str | None) -> None:
    assert unit_from_cgroup(text) == unit


def test_group_by_unit_puts_units_in_order_and_no_unit_last() -> None:
    processes = [
        StaleProcess(30, "b", "b.service", ("/usr/lib/x",)),
        StaleProcess(5, "none", None, ("/usr/lib/x",)),
        StaleProcess(12, "a", "a.service", ("/usr/lib/x",)),
        StaleProcess(4, "b", "b.service", ("/usr/lib/x",)),
    ]
    groups = group_by_unit(processes)
    assert list(groups) == ["a.service", "b.service", None]
    assert [p.pid for p in groups["b.service"]] == [4, 30]
    assert [p.pid for p in groups[None]] == [5]
    assert group_by_unit([]) == {}


def test_stale_process_serialises_to_json() -> None:
    process = StaleProcess(42, "sshd", "sshd.service", ("/usr/bin/sshd", "/usr/lib/libssl.so.3"))
    assert json.loads(json.dumps(process.to_dict())) == {
        "pid": 42,
        "command": "sshd",
        "unit": "sshd.service",
        "files": ["/usr/bin/sshd", "/usr/lib/libssl.so.3"],
    }
