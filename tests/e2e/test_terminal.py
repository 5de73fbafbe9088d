"""clp at a terminal: the plan, the pacman-style question, the answer, colour only on a tty."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.kits.clpkit import CLP, INSTALL_OK, make_patch


def run_in_terminal(
    args: list[str],
    answer: bytes | None,
    timeout: float = 60,
    answers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, str]:
    """Run clp with a pseudo-terminal as stdin/stdout/stderr; type `answer` at the [Y/n]
    question (and each of `answers`, (what the screen shows, what to type), in order)."""
    pending = list(answers or []) + ([(b"[Y/n]", answer)] if answer is not None else [])
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen([str(CLP), *args], stdin=follower, stdout=follower,
                               stderr=follower, close_fds=True)  # fmt: skip
    os.close(follower)
    output = b""
    typed_upto = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: clp has exited
                break
            if not chunk:
                break
            output += chunk
        if pending and pending[0][0] in output[typed_upto:]:
            marker, text = pending.pop(0)
            typed_upto = output.index(marker, typed_upto) + len(marker)
            os.write(leader, text)
        if process.poll() is not None and not ready:
            break
    process.wait(timeout=10)
    os.close(leader)
    return process.returncode, output.decode(errors="replace")


def test_answering_no_changes_nothing(tmp_path, sandbox, keyring, app_conf):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    code, screen = run_in_terminal(["--root", str(sandbox), "apply", str(patch)], b"n\n")
    assert code == 1
    assert ":: Patch CLPR261125 1: Test patch" in strip_colour(screen)
    assert "/etc/app.conf" in screen and "Proceed with apply? [Y/n]" in strip_colour(screen)
    assert "nothing was changed" in screen
    assert app_conf.read_text() == "MACs hmac-sha1\n"
    assert not (sandbox / "opt/CLP/CLPR261125").exists()


def test_answering_yes_applies_and_shows_steps_and_output(tmp_path, sandbox, keyring, app_conf):
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    code, screen = run_in_terminal(["--root", str(sandbox), "apply", str(patch)], b"y\n")
    assert code == 0, screen
    text = strip_colour(screen)
    assert "(3/5) run Install-Script.ps1" in text
    assert "installing CLPR261125" in text
    assert ":: CLPR261125 applied" in text
    assert app_conf.read_text() == "MACs hmac-sha2\n"


def test_colour_on_a_terminal_and_never_in_a_pipe(tmp_path, sandbox, keyring, app_conf, clp):
    """As pacman: colour on a terminal only when pacman.conf says Color (or --color always)."""
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    _, screen = run_in_terminal(["--root", str(sandbox), "apply", str(patch)], b"n\n")
    assert "\x1b[" not in screen  # no pacman.conf: no Color
    (sandbox / "etc/pacman.conf").write_text("[options]\nColor\nSigLevel = Never\n")
    _, screen = run_in_terminal(["--root", str(sandbox), "apply", str(patch)], b"n\n")
    assert "\x1b[" in screen
    (sandbox / "etc/pacman.conf").write_text("[options]\n#Color\nSigLevel = Never\n")
    _, screen = run_in_terminal(["--root", str(sandbox), "apply", str(patch)], b"n\n")
    assert "\x1b[" not in screen
    _, screen = run_in_terminal(["--root", str(sandbox), "--color", "always", "apply",
                                 str(patch)], b"n\n")  # fmt: skip
    assert "\x1b[" in screen
    (sandbox / "etc/pacman.conf").write_text("[options]\nColor\n")
    _, screen = run_in_terminal(["--root", str(sandbox), "--color", "never", "apply", str(patch)],
                                b"n\n")  # fmt: skip
    assert "\x1b[" not in screen
    piped = clp("--root", str(sandbox), "apply", str(patch), "--noconfirm")
    assert "\x1b[" not in piped.stdout + piped.stderr


def strip_colour(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text).replace("\r\n", "\n")


def test_revert_asks_which_version_with_a_numbered_list(sandbox, tmp_path):
    from tests.kits.pkgkit import CACHE, build, installed, pacman

    (sandbox / CACHE).mkdir(parents=True)
    (sandbox / "etc/pacman.d/clp-pins.conf").write_text("")
    (sandbox / "etc/pacman.conf").write_text(
        "[options]\nArchitecture = auto\nSigLevel = Never\nInclude = /etc/pacman.d/clp-pins.conf\n"
    )
    for version in ("1.0-1", "1.5-1", "2.0-1"):
        pacman(sandbox, "-U", str(build(sandbox / CACHE, "demo", version)))
    code, screen = run_in_terminal(
        ["--root", str(sandbox), "revert", "demo"], b"y\n",
        answers=[(b"Enter a number", b"2\n")],
    )  # fmt: skip
    text = strip_colour(screen)
    assert code == 0, text
    assert ":: Versions of demo (installed 2.0-1):" in text
    # the installed version is not on offer: picking it could only fail
    assert "1) 1.5-1" in text and "2) 1.0-1" in text and ") 2.0-1" not in text
    assert "Enter a number (default=1):" in text  # pacman's wording; the newest older one
    assert installed(sandbox, "demo") == "1.0-1"


def test_ctrl_c_at_the_question_in_a_real_terminal_exits_130(tmp_path, sandbox, keyring, app_conf):
    """In tmux, as a person would: Ctrl-C at `[Y/n]` is an interruption (130), not a "no"."""
    patch = make_patch(tmp_path, keyring, INSTALL_OK)
    status = tmp_path / "status"
    command = f"{CLP} --root {sandbox} apply {patch}; echo $? > {status}; sleep 600"
    with tmux_session(tmp_path, command) as tmux:
        screen = tmux.wait_for("[Y/n]")
        assert "Proceed with apply? [Y/n]" in screen
        tmux.keys("C-c")
        deadline = time.monotonic() + 30
        while not status.exists() or not status.read_text():
            assert time.monotonic() < deadline, tmux.screen()
            time.sleep(0.05)
        assert status.read_text().strip() == "130", tmux.screen()
        assert "error: interrupted" in tmux.screen()
    assert app_conf.read_text() == "MACs hmac-sha1\n"
    assert not (sandbox / "opt/CLP/CLPR261125").exists()


class Tmux:
    """One tmux server of our own (its own socket), running one window."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "test")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "test", *keys)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in (screen := self.screen()):
            assert time.monotonic() < deadline, screen
            time.sleep(0.05)
        return screen


@contextmanager
def tmux_session(tmp_path: Path, command: str) -> Iterator[Tmux]:
    tmux = Tmux(tmp_path / "tmux.sock")
    tmux.run("new-session", "-d", "-s", "test", "-x", "160", "-y", "40", command)
    try:
        yield tmux
    finally:
        subprocess.run(["tmux", "-S", str(tmux.socket), "kill-server"],
                       capture_output=True, timeout=30)  # fmt: skip


def test_an_empty_list_says_so_on_a_terminal_and_nothing_in_a_pipe(sandbox, clp):
    code, screen = run_in_terminal(["--root", str(sandbox), "list"], None)
    assert code == 0 and "no patches, reverts or pins" in screen
    piped = clp("--root", str(sandbox), "list")
    assert piped.returncode == 0 and piped.stdout == ""
    code, screen = run_in_terminal(["--root", str(sandbox), "pins"], None)
    assert code == 0 and "no pins" in screen
    piped = clp("--root", str(sandbox), "pins")
    assert piped.returncode == 0 and piped.stdout == ""


def test_a_long_error_is_broken_into_lines_the_terminal_shows(sandbox):
    """Three dead mirrors make an error of some 300 characters: on an 80-column terminal each
    line fits, and no mirror's reason is lost."""
    import socket

    ports = []
    for _ in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    servers = [f"http://127.0.0.1:{port}/a/rather/long/path/to/the/feed" for port in ports]
    (sandbox / "etc/CLP/mirrors").write_text("".join(f"Server = {s}\n" for s in servers))
    code, screen = run_in_terminal(["--root", str(sandbox), "update", "--check"], None)
    lines = [line for line in strip_colour(screen).splitlines() if line.strip()]
    error_at = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    error_lines = lines[error_at:]
    assert code == 1, screen
    assert len(error_lines) >= 3 and all(len(line) <= 80 for line in error_lines), error_lines
    joined = " ".join(line.strip() for line in error_lines)
    assert all(server in joined for server in servers)
