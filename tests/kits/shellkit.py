"""Driving the shell completions as users meet them: bash's completion function with the words
of a command line (COMP_WORDS), an interactive bash in tmux with real Tab presses, an
interactive zsh on a pty, and fish's `complete -C`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

from tests.kits.paths import REPO


def bash_complete(script: Path, lines: list[list[str]], cwd: Path = REPO) -> list[list[str]]:
    """COMPREPLY of `_clp` for each command line (its words; the last one is being completed)."""
    calls = "\n".join("_t " + " ".join(shlex.quote(w) for w in words) for words in lines)
    program = f"""
source {shlex.quote(str(script))}
[[ $(complete -p clp) == "complete -F _clp clp" ]] || {{ echo "not registered" >&2; exit 9; }}
_t() {{
    COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
    COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=()
    _clp clp "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
    printf '%s\\n' "${{COMPREPLY[@]}}"; printf '%s\\n' '--end--'
}}
{calls}
"""
    chunks = _answers(["bash", "--norc", "--noprofile", "-c", program], cwd)
    return [[w for w in chunk.split("\n") if w] for chunk in chunks]


def _answers(argv: list[str], cwd: Path) -> list[str]:
    """Run a shell that prints `--end--` after each command line's candidates; the output of
    each line. The shell must succeed and say nothing on stderr."""
    run = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and not run.stderr, run.stderr
    return run.stdout.split("--end--\n")[:-1]


def fish_complete(script: Path, lines: list[str], cwd: Path = REPO) -> list[list[str]]:
    """The candidates fish offers for each command line (descriptions dropped)."""
    program = (
        f"source {shlex.quote(str(script))}; for l in $argv; complete -C $l; echo --end--; end"
    )
    chunks = _answers(["fish", "--no-config", "-c", program, *lines], cwd)
    return [[c.split("\t")[0] for c in chunk.splitlines()] for chunk in chunks]


def zsh_complete(completions: Path, lines: list[str], cwd: Path) -> list[str]:
    """Each line after one Tab in an interactive zsh (a pty) with the completion loaded."""
    program = r"""
zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z "PS1='> '; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'clp() { print -r -- "RESULT:$*:END" }'
for line in "${@[2,-1]}"; do zpty -w -n z "$line"$'\t\n'; done
zpty -w z exit
out=''
while zpty -r z chunk; do out+=$chunk; done
zpty -d z
print -r -- $out
"""
    run = subprocess.run(
        ["zsh", "-f", "-c", program, "zsh", str(completions), *lines],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "HOME": str(cwd), "TERM": "dumb"},
    )
    results = re.findall(r"RESULT:(.*?):END", run.stdout.replace("\r", ""))
    return [r for r in results if r != "$*"]  # the definition echoed back is no result


def tmux_bash(script: Path, keys: list[list[str]], work: Path, timeout: float = 20) -> str:
    """What an interactive bash in tmux shows after each list of keys (tmux key names: "Tab",
    "Enter"; anything else is typed as is), with `script` sourced and `clp` a function that
    prints its arguments between "RESULT:" and ":END". Every list must end in "Enter"."""
    socket = work / "tmux.socket"
    rc = work / "bashrc"
    rc.write_text(
        "PS1='$ '\n"
        f"source {shlex.quote(str(script))}\n"
        "clp() { printf 'RESULT:%s:END\\n' \"$*\"; }\n"
        "echo READY\n"
    )
    env = {**os.environ, "INPUTRC": "/dev/null", "HOME": str(work), "TERM": "xterm"}
    tmux = ["tmux", "-S", str(socket)]
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "220", "-y", "60",
         "bash", "--noprofile", "--rcfile", str(rc), "-i"],
        check=True, env=env,
    )  # fmt: skip
    try:
        _wait(tmux, lambda text: "READY" in text, timeout)
        for number, sequence in enumerate(keys, start=1):
            for key in sequence:
                if key in ("Tab", "Enter"):
                    subprocess.run([*tmux, "send-keys", key], check=True)
                    time.sleep(0.3 if key == "Tab" else 0)
                else:
                    subprocess.run([*tmux, "send-keys", "-l", key], check=True)
            _wait(tmux, lambda text, n=number: text.count("RESULT:") >= n, timeout)
        return _capture(tmux)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)


def _capture(tmux: list[str]) -> str:
    done = subprocess.run(
        [*tmux, "capture-pane", "-p", "-J", "-S", "-"], capture_output=True, text=True, check=True
    )
    return done.stdout


def _wait(tmux: list[str], ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        text = _capture(tmux)
        if ready(text):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"tmux: the shell did not get there; it shows:\n{text}")
        time.sleep(0.1)


def results(screen: str) -> list[str]:
    """The command lines the `clp` function saw, in order."""
    return re.findall(r"RESULT:(.*?):END", screen)
