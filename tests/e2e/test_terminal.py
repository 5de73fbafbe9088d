"""clp at a terminal: the plan, the pacman-style question, the answer, colour only on a tty."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

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
    assert "Enter a number [1]" in text  # the newest older version is the default
    assert installed(sandbox, "demo") == "1.0-1"
