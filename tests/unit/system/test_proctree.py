"""The pacman command line a hook records, read from /proc: up from the hook's parent to the
first process named pacman, bounded, never raising."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clp_alpm.system.proctree import MAX_LENGTH, MAX_STEPS, pacman_command_line, render


def process(proc: Path, pid: int, comm: str, parent: int, *argv: str) -> None:
    """One /proc/PID as the kernel lays it out: comm, stat (name in parentheses), cmdline."""
    directory = proc / str(pid)
    directory.mkdir(parents=True)
    (directory / "comm").write_text(comm + "\n")
    (directory / "stat").write_text(f"{pid} ({comm}) S {parent} {pid} {pid} 0 -1 4194560\n")
    (directory / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))


def test_the_hooks_parent_pacman_gives_its_command_line(tmp_path: Path) -> None:
    process(tmp_path, 200, "pacman", 100, "pacman", "-Syu")
    assert pacman_command_line(200, str(tmp_path)) == "pacman -Syu"


def test_the_walk_goes_up_through_helpers_to_pacman(tmp_path: Path) -> None:
    """yay runs `sudo pacman -S ...`; a name with ')' does not confuse the stat parser."""
    process(tmp_path, 100, "yay", 1, "yay", "-S", "foo")
    process(tmp_path, 200, "sudo", 100, "sudo", "pacman", "-S", "foo")
    process(tmp_path, 300, "pacman", 200, "pacman", "-S", "--", "foo")
    process(tmp_path, 400, "sh) (x", 300, "/bin/sh", "-c", "clp hook post-transaction")
    assert pacman_command_line(400, str(tmp_path)) == "pacman -S -- foo"


def test_no_pacman_above_is_no_command_line(tmp_path: Path) -> None:
    process(tmp_path, 100, "pamac-daemon", 1, "/usr/bin/pamac-daemon")
    process(tmp_path, 200, "clp", 100, "clp", "hook", "pre-transaction")
    assert pacman_command_line(200, str(tmp_path)) is None
    assert pacman_command_line(999, str(tmp_path)) is None  # gone
    assert pacman_command_line(200, str(tmp_path / "no-proc")) is None  # a chroot without /proc


def test_the_walk_is_bounded_even_through_a_loop(tmp_path: Path) -> None:
    process(tmp_path, 10, "a", 11, "a")
    process(tmp_path, 11, "b", 10, "b")
    assert pacman_command_line(10, str(tmp_path)) is None
    chain = range(100, 100 + MAX_STEPS + 1)
    for pid in chain:
        process(tmp_path, pid, "pacman" if pid == chain[-1] else "x", pid + 1, "pacman", "-Q")
    assert pacman_command_line(chain[0], str(tmp_path)) is None  # too far up


def test_words_are_quoted_as_a_shell_reads_them_back_and_long_lines_cut() -> None:
    assert render(["pacman", "-U", "/tmp/a b.pkg.tar.zst", "it's", ""]) == (
        "pacman -U '/tmp/a b.pkg.tar.zst' 'it'\\''s' ''"
    )
    assert render(["pacman", "-S", "a\nb"]) == "pacman -S 'a?b'"
    long = render(["pacman", "-S", *["package"] * 1000])
    assert len(long) == MAX_LENGTH and long.endswith("...")


def test_the_real_proc_of_a_process_without_pacman_above(tmp_path: Path) -> None:
    assert pacman_command_line(os.getpid()) is None
    pacman = tmp_path / "pacman"  # a process whose name is pacman, as the kernel shows it
    pacman.symlink_to(sys.executable)
    code = (
        "import os, sys; from clp_alpm.system.proctree import pacman_command_line as f\n"
        "if os.fork() == 0: print(f(os.getppid())); sys.stdout.flush(); os._exit(0)\n"
        "os.wait()"
    )
    run = subprocess.run([str(pacman), "-c", code, "-Syu"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{pacman} -c {render([code])} -Syu"
