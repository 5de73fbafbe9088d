"""Running patch scripts and health checks: chroot, environment, streaming, timeouts, cleanup."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clp_alpm.errors import OperationFailed, UsageError
from clp_alpm.logfile import LogFile
from clp_alpm.system.scripts import (
    MAX_LINE_BYTES,
    ProcessResult,
    find_interpreter,
    kill_marked_processes,
    run_health_check,
    run_process,
    run_script,
    script_argv,
    script_environment,
)
from tests.kits.paths import REPO
from tests.kits.rootkit import STAND_IN_PWSH, make_host_stand_in, make_sandbox_root

PATCH_ID = "CLPR261125"
PATCH_DIR = f"/opt/CLP/{PATCH_ID}"
PWSH = "/usr/bin/pwsh"


STARTED: list[int] = []


@pytest.fixture(autouse=True)
def _kill_what_a_failed_test_left() -> Iterator[None]:
    """A failing test must not leave its script's processes running on the machine."""
    yield
    while STARTED:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(STARTED.pop(), signal.SIGKILL)


def record_start(on_start: Callable[[int], None] | None = None) -> Callable[[int], None]:
    def started(pid: int) -> None:
        STARTED.append(pid)
        if on_start is not None:
            on_start(pid)

    return started


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = make_sandbox_root(tmp_path / "root")
    (root / PATCH_DIR.lstrip("/")).mkdir(parents=True)
    return root


def write_script(root: Path, body: str, name: str = "Install-Script.ps1") -> str:
    """Put a script (POSIX sh, for the stand-in) in the patch dir; return its target path."""
    (root / PATCH_DIR.lstrip("/") / name).write_text(textwrap.dedent(body))
    return f"{PATCH_DIR}/{name}"


def run(root: Path, body: str, **kwargs) -> tuple[ProcessResult, list[str]]:
    lines: list[str] = []
    kwargs.setdefault("timeout", 10)
    kwargs["on_start"] = record_start(kwargs.get("on_start"))
    result = run_script(
        PWSH,
        write_script(root, body),
        root=root,
        cwd=PATCH_DIR,
        env=script_environment(PATCH_ID, PATCH_DIR, root, "install"),
        on_output=lines.append,
        **kwargs,
    )
    return result, lines


def live_group_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that still run (zombies do not count)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry))
    return members


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def wait_until(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- environment and argv ----------------------------------------------------------------------


def test_script_argv_is_what_pwsh_expects() -> None:
    assert script_argv(PWSH, "/opt/CLP/X/Install-Script.ps1") == [
        PWSH,
        "-NoProfile",
        "-NonInteractive",
        "-File",
        "/opt/CLP/X/Install-Script.ps1",
    ]


def test_script_environment_is_clean_and_names_the_patch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLP_TEST_SECRET", "leak")
    env = script_environment(PATCH_ID, PATCH_DIR + "/", tmp_path, "remove", {"EXTRA": "1"})
    assert "CLP_TEST_SECRET" not in env
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin"
    assert env["HOME"] == "/root" and env["TERM"] == "dumb" and env["LANG"] == "C.UTF-8"
    assert env["CLP_PATCH_ID"] == PATCH_ID
    assert env["CLP_PATCH_DIR"] == PATCH_DIR
    assert env["CLP_ROOT"] == "/"
    assert env["CLP_HOST_ROOT"] == str(tmp_path.resolve())
    assert env["CLP_ACTION"] == "remove"
    assert env["EXTRA"] == "1"
    with pytest.raises(ValueError):
        script_environment(PATCH_ID, PATCH_DIR, tmp_path, "upgrade")
    with pytest.raises(UsageError):
        script_environment(PATCH_ID, "opt/relative", tmp_path, "install")


# --- chroot ------------------------------------------------------------------------------------


def test_chrooted_script_runs_in_patch_dir_with_clean_env(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLP_TEST_SECRET", "leak")
    old_umask = os.umask(0o077)
    try:
        result, lines = run(
            root,
            """\
            { pwd; echo "$CLP_PATCH_ID"; echo "$CLP_ROOT"; echo "$CLP_ACTION"; } > /tmp/seen
            env > /tmp/env
            touch created
            echo done
            """,
        )
    finally:
        os.umask(old_umask)
    assert result.ok and result.exit_code == 0, lines
    assert lines == ["done"]
    seen = (root / "tmp/seen").read_text().splitlines()
    assert seen == [PATCH_DIR, PATCH_ID, "/", "install"]
    env = (root / "tmp/env").read_text()
    assert f"CLP_HOST_ROOT={root.resolve()}" in env
    assert "CLP_TEST_SECRET" not in env
    created = root / PATCH_DIR.lstrip("/") / "created"
    assert created.stat().st_mode & 0o777 == 0o644  # umask 022, not the caller's 077


def test_chrooted_script_cannot_see_host_files(root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "host-only-marker"
    marker.write_text("host\n")
    body = f"""\
    if test -e {marker}; then echo visible; exit 0; fi
    echo hidden; exit 5
    """
    result, lines = run(root, body)
    assert (result.exit_code, lines) == (5, ["hidden"])

    # The same check at root "/" does see the file: the chroot is what hides it.
    interpreter = make_host_stand_in(tmp_path / "host-bin")
    patch_dir = tmp_path / "patch"
    patch_dir.mkdir()
    (patch_dir / "check.ps1").write_text(textwrap.dedent(body))
    seen: list[str] = []
    host = run_script(
        str(interpreter),
        str(patch_dir / "check.ps1"),
        root=Path("/"),
        cwd=str(patch_dir),
        env=script_environment(PATCH_ID, str(patch_dir), Path("/"), "install"),
        timeout=10,
        on_output=seen.append,
    )
    assert (host.exit_code, seen) == (0, ["visible"])


def test_host_run_uses_cwd_and_env(tmp_path: Path) -> None:
    interpreter = make_host_stand_in(tmp_path / "bin")
    patch_dir = tmp_path / "patch"
    patch_dir.mkdir()
    (patch_dir / "s.ps1").write_text('pwd; echo "$CLP_PATCH_DIR"\n')
    lines: list[str] = []
    result = run_script(
        str(interpreter),
        "s.ps1",
        root=Path("/"),
        cwd=str(patch_dir),
        env=script_environment(PATCH_ID, str(patch_dir), Path("/"), "install"),
        timeout=10,
        on_output=lines.append,
    )
    assert result.ok
    assert lines == [str(patch_dir), str(patch_dir)]


def test_stand_in_refuses_other_arguments(root: Path) -> None:
    lines: list[str] = []
    result = run_process(
        [PWSH, "-Command", "echo hi"],
        root=root,
        cwd="/",
        env=script_environment(PATCH_ID, PATCH_DIR, root, "install"),
        timeout=10,
        on_output=lines.append,
    )
    assert result.exit_code == 64
    assert "expected -NoProfile" in lines[0]
    assert "exec /bin/sh" in STAND_IN_PWSH


def test_missing_working_directory_is_an_operation_failure(root: Path) -> None:
    with pytest.raises(OperationFailed, match="/opt/CLP/NOPE"):
        run_process(
            ["/bin/sh", "-c", "true"],
            root=root,
            cwd="/opt/CLP/NOPE",
            env={},
            timeout=5,
        )


WITHOUT_CHROOT_CAPABILITY = """
import sys
from pathlib import Path
from clp_alpm.errors import OperationFailed
from clp_alpm.system.scripts import run_script

try:
    run_script("/usr/bin/pwsh", sys.argv[2], root=Path(sys.argv[1]), cwd=sys.argv[3], env={},
               timeout=10)
except OperationFailed as error:
    print(error)
"""


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed")
def test_chroot_refused_is_an_operation_failure(root: Path) -> None:
    script = write_script(root, "echo should not run\n")
    done = subprocess.run(
        ["setpriv", "--bounding-set", "-sys_chroot", "--inh-caps", "-sys_chroot", sys.executable]
        + ["-c", WITHOUT_CHROOT_CAPABILITY, str(root), script, PATCH_DIR],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"cannot run /usr/bin/pwsh chrooted into {root.resolve()}")


# --- output ------------------------------------------------------------------------------------


def test_output_is_streamed_while_the_script_runs(root: Path) -> None:
    stamped: list[tuple[float, str]] = []
    result = run_script(
        PWSH,
        write_script(root, "echo first\nsleep 1\necho second\n"),
        root=root,
        cwd=PATCH_DIR,
        env=script_environment(PATCH_ID, PATCH_DIR, root, "install"),
        timeout=10,
        on_output=lambda line: stamped.append((time.monotonic(), line)),
    )
    ended = time.monotonic()
    assert result.ok
    assert [line for _, line in stamped] == ["first", "second"]
    assert ended - stamped[0][0] >= 0.7, "the first line arrived only when the script ended"
    assert stamped[1][0] - stamped[0][0] >= 0.7


def test_output_lines_are_appended_to_the_log(root: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "var-log" / "CLP.log"
    log_path.parent.mkdir()
    log_path.write_text("[earlier] [CLP] kept\n")
    result, _ = run(root, "echo hello\necho oops >&2\n", log=LogFile(log_path), log_tag=PATCH_ID)
    assert result.ok
    logged = log_path.read_text().splitlines()
    assert logged[0] == "[earlier] [CLP] kept"
    assert re.fullmatch(rf"\[[^]]+\] \[{PATCH_ID}\] hello", logged[1])
    assert re.fullmatch(rf"\[[^]]+\] \[{PATCH_ID}\] oops", logged[2])


def test_a_huge_line_without_newline_is_split(root: Path) -> None:
    (root / PATCH_DIR.lstrip("/") / "big").write_bytes(b"a" * 200_000)
    text = "a" + "\u00e9" * 40_000  # a cut at 64 KiB would fall inside a two-byte character
    (root / PATCH_DIR.lstrip("/") / "utf8").write_bytes(text.encode())
    result, lines = run(root, "cat big\necho\necho after\ncat utf8\n")
    assert result.ok
    assert [len(line) for line in lines[:5]] == [MAX_LINE_BYTES] * 3 + [200_000 - 3 * 65536, 5]
    assert lines[4] == "after"
    assert all(len(line.encode()) <= MAX_LINE_BYTES for line in lines)
    assert "".join(lines[5:]) == text
    assert len(lines) > 6


def test_invalid_utf8_is_replaced_not_fatal(root: Path) -> None:
    (root / PATCH_DIR.lstrip("/") / "bad").write_bytes(b"caf\xe9\n")
    result, lines = run(root, "cat bad\n")
    assert result.ok and lines == ["caf\ufffd"]


# --- exit status -------------------------------------------------------------------------------


def test_nonzero_exit_code_is_reported(root: Path) -> None:
    result, lines = run(root, "echo failing\nexit 3\n")
    assert not result.ok
    assert (result.exit_code, result.signal, result.timed_out) == (3, None, False)
    assert result.describe() == "exited with status 3"
    assert lines == ["failing"]


def test_a_script_killed_by_a_signal_is_described_as_such(root: Path) -> None:
    result, _ = run(root, "ulimit -c 0\nkill -SEGV $$\nsleep 5\n")
    assert not result.ok
    assert result.exit_code is None
    assert result.signal == signal.SIGSEGV
    assert result.describe() == "was killed by SIGSEGV"


def test_hanging_script_times_out_and_its_whole_group_is_killed(root: Path) -> None:
    pids: list[int] = []
    started = time.monotonic()
    result, lines = run(
        root,
        "sleep 1000 &\necho $! > /tmp/bg\necho started\nsleep 1000\n",
        timeout=1,
        kill_grace=0.5,
        on_start=pids.append,
    )
    assert time.monotonic() - started < 4
    assert result.timed_out and not result.ok
    assert result.exit_code is None
    assert result.describe() == "timed out after 1 s"
    assert lines[0] == "started"
    assert any("timed out" in line for line in lines)
    (pgid,) = pids
    background = int((root / "tmp/bg").read_text())
    assert wait_until(lambda: not live_group_members(pgid), 2), live_group_members(pgid)
    assert not is_running(background)
    with pytest.raises(ProcessLookupError):
        os.kill(pgid, 0)


def test_timeout_sigterm_comes_first(root: Path) -> None:
    result, lines = run(
        root,
        "trap 'echo got TERM; exit 9' TERM\necho ready\nwhile :; do sleep 0.1; done\n",
        timeout=0.5,
        kill_grace=3,
    )
    assert result.timed_out and result.exit_code is None
    assert "got TERM" in lines
    assert result.duration < 2.5  # it exited on SIGTERM, without waiting for the grace


def test_background_children_of_a_successful_script_are_killed(root: Path) -> None:
    pids: list[int] = []
    script = """\
    sleep 1000 &
    echo $! > /tmp/bg
    i=0
    while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done
    exit 0
    """
    result, lines = run(root, script, on_start=pids.append)
    assert result.ok
    assert result.duration < 3, "waited for the background child's pipe"
    background = int((root / "tmp/bg").read_text())
    assert wait_until(lambda: not is_running(background), 2)
    assert not live_group_members(pids[0])
    # Everything the script printed comes first, then clp says what it killed.
    assert lines[:-1] == [f"line {i}" for i in range(3000)]
    assert "left running" in lines[-1] and str(background) in lines[-1]


def test_a_process_that_escapes_the_group_does_not_hang_clp(root: Path) -> None:
    started = time.monotonic()
    result, lines = run(root, "setsid sleep 1000 &\necho $! > /tmp/escaped\nsleep 0.3\necho bye\n")
    escaped = int((root / "tmp/escaped").read_text())
    try:
        assert result.ok
        assert time.monotonic() - started < 5
        assert lines[0] == "bye"
        assert "still holds its output" in lines[-1]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(escaped, signal.SIGKILL)


def test_a_failing_callback_does_not_leave_the_script_running(root: Path) -> None:
    pids: list[int] = []

    def explode(line: str) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        run_script(
            PWSH,
            write_script(root, "echo x\nsleep 1000\n"),
            root=root,
            cwd=PATCH_DIR,
            env={},
            timeout=30,
            on_output=explode,
            on_start=record_start(pids.append),
        )
    assert wait_until(lambda: not live_group_members(pids[0]), 2)


# --- the interpreter ---------------------------------------------------------------------------


def test_interpreter_is_found_inside_the_root(root: Path) -> None:
    assert find_interpreter(root, PWSH) == root.resolve() / "usr/bin/pwsh"


def test_interpreter_symlinks_resolve_inside_the_root(root: Path) -> None:
    real = root / "opt/microsoft/powershell/7/pwsh"
    real.parent.mkdir(parents=True)
    (root / "usr/bin/pwsh").rename(real)
    (root / "usr/bin/pwsh").symlink_to("/opt/microsoft/powershell/7/pwsh")
    assert find_interpreter(root, PWSH) == real.resolve()
    result, lines = run(root, "echo via symlink\n")
    assert result.ok and lines == ["via symlink"]

    # An absolute link to a file the host has but the root lacks is not found.
    (root / "usr/bin/pwsh").unlink()
    (root / "usr/bin/pwsh").symlink_to(sys.executable)
    with pytest.raises(UsageError):
        find_interpreter(root, PWSH)


def test_missing_interpreter(tmp_path: Path) -> None:
    root = make_sandbox_root(tmp_path / "bare", interpreter=None)
    (root / PATCH_DIR.lstrip("/")).mkdir(parents=True)
    with pytest.raises(UsageError) as error:
        find_interpreter(root, PWSH)
    assert str(error.value) == (
        f"interpreter /usr/bin/pwsh not found in {root.resolve()} "
        "(set Interpreter= in /etc/CLP/clp.conf)"
    )
    with pytest.raises(UsageError, match="absolute"):
        find_interpreter(root, "pwsh")
    result, lines = run(root, "echo never\n")
    assert result.exit_code == 127 and not result.ok
    assert result.describe() == "exited with status 127"
    assert lines == [
        f"clp: cannot run /usr/bin/pwsh in {root.resolve()}: No such file or directory"
    ]


def test_interpreter_that_cannot_be_executed(root: Path) -> None:
    (root / "usr/bin/pwsh").chmod(0o644)
    with pytest.raises(UsageError, match="not found"):
        find_interpreter(root, PWSH)
    result, lines = run(root, "echo never\n")
    assert result.exit_code == 126
    assert "Permission denied" in lines[0]


def test_interpreter_whose_shebang_is_missing_in_the_root(root: Path) -> None:
    (root / "usr/bin/pwsh").write_text("#!/no/such/shell\n")
    result, lines = run(root, "echo never\n")
    assert result.exit_code == 127
    assert "#! interpreter" in lines[0]


# --- health check ------------------------------------------------------------------------------


def test_health_check_runs_chrooted(root: Path) -> None:
    env = script_environment(PATCH_ID, PATCH_DIR, root, "health-check")
    lines: list[str] = []
    good = run_health_check(
        'test -d /opt/CLP && pwd && echo "$CLP_ACTION"',
        root=root,
        env=env,
        timeout=5,
        on_output=lines.append,
    )
    assert good.ok and lines == ["/", "health-check"]
    bad = run_health_check("exit 1", root=root, env=env, timeout=5)
    assert bad.exit_code == 1 and not bad.ok
    slow = run_health_check("sleep 100", root=root, env=env, timeout=0.3, kill_grace=0.2)
    assert slow.timed_out and slow.describe() == "timed out after 0.3 s"


# --- process groups and crashes ----------------------------------------------------------------


def test_kill_marked_processes_finds_children_and_spares_others(tmp_path: Path) -> None:
    marked_env = dict(os.environ, CLP_RUN_ID="abc123")
    marked = subprocess.Popen(["sh", "-c", "sleep 1000 & sleep 1000"], env=marked_env)
    other = subprocess.Popen(["sleep", "1000"], env=dict(os.environ, CLP_RUN_ID="other"))
    try:
        time.sleep(0.2)  # let the shell start its background child
        killed = kill_marked_processes("abc123")
        assert marked.pid in killed and len(killed) == 3  # the shell and its two sleeps
        assert marked.wait(timeout=5) == -signal.SIGKILL
        assert other.poll() is None
        assert kill_marked_processes("abc123") == []
    finally:
        for process in (marked, other):
            process.kill()
            process.wait()


CRASHING_CALLER = """
import sys
from pathlib import Path
from clp_alpm.system.scripts import run_script

root = Path(sys.argv[1])
run_script(
    "/usr/bin/pwsh", sys.argv[2], root=root, cwd=sys.argv[3], env={"CLP_RUN_ID": sys.argv[4]},
    timeout=60,
    on_start=lambda pid: print(pid, flush=True),
)
"""


def test_interpreter_dies_with_a_killed_clp(root: Path) -> None:
    script = write_script(root, "sleep 1000\necho not reached\n")
    caller = subprocess.Popen(
        [sys.executable, "-c", CRASHING_CALLER, str(root), script, PATCH_DIR, "m-42"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    try:
        assert caller.stdout is not None
        pgid = int(caller.stdout.readline())
        STARTED.append(pgid)
        assert wait_until(lambda: len(live_group_members(pgid)) == 2, 5)  # sh and its sleep
        caller.kill()
        caller.wait()
        assert wait_until(lambda: not is_running(pgid), 5), "interpreter survived clp"
        # Its child (the sleep) survives the interpreter: recovery finds it by its marker.
        assert live_group_members(pgid)
        assert len(kill_marked_processes("m-42")) == 1
        assert wait_until(lambda: not live_group_members(pgid), 5)
    finally:
        caller.kill()
        caller.wait()
        if caller.stdout is not None:
            caller.stdout.close()


# --- the real PowerShell -----------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("pwsh") is None, reason="pwsh not installed")
def test_real_pwsh_runs_a_script(tmp_path: Path) -> None:
    pwsh = shutil.which("pwsh")
    assert pwsh is not None
    (tmp_path / "Install-Script.ps1").write_text(
        'Write-Output "hello $env:CLP_PATCH_ID from $((Get-Location).Path)"\nexit 3\n'
    )
    lines: list[str] = []
    result = run_script(
        str(Path(pwsh).resolve()),
        "Install-Script.ps1",
        root=Path("/"),
        cwd=str(tmp_path),
        env=script_environment(PATCH_ID, str(tmp_path), Path("/"), "install"),
        timeout=60,
        on_output=lines.append,
    )
    assert result.exit_code == 3
    assert f"hello {PATCH_ID} from {tmp_path}" in lines
