"""pacman's questions: `[Y/n]` and the numbered choice, from the terminal or a pipe.

Read by hand, not with click's prompts: those turn Ctrl-C into an ordinary "no", and Ctrl-C
at a question must end clp as an interruption (exit status 130), as everywhere else.
"""

from __future__ import annotations

import sys

from clp_alpm.cli.options import options
from clp_alpm.cli.output import Printer, echo
from clp_alpm.errors import Declined, UsageError

YES = ("", "y", "yes")


def confirm(printer: Printer, question: str) -> None:
    """Enter or y proceeds; anything else (or end of input at a terminal) raises Declined.
    An answer may come from a pipe; --noconfirm proceeds without asking."""
    if options().noconfirm:
        return
    line = _ask(printer, f"{printer.question(question)} [Y/n] ")
    if line is None:
        if not sys.stdin.isatty():
            raise UsageError(
                "no answer on standard input (use --noconfirm to proceed without asking)"
            )
        raise Declined()
    if line.strip().lower() not in YES:
        raise Declined()


def choose_number(printer: Printer, count: int, default: int) -> int:
    """pacman's `Enter a number (default=N):` over a list shown before: 1..count, asked again
    after an answer out of range."""
    while True:
        prompt = f"{printer.question('Enter a number', bold=False)} (default={default}): "
        line = _ask(printer, prompt)
        if line is None:
            raise Declined()
        answer = line.strip()
        if not answer:
            return default
        if answer.isdigit() and 1 <= int(answer) <= count:
            return int(answer)
        printer.error(f"'{answer}' is not a number from 1 to {count}")
        if not sys.stdin.isatty():
            raise UsageError(f"'{answer}' is not a number from 1 to {count}")


def _ask(printer: Printer, prompt: str) -> str | None:
    """Show `prompt` and read one line; None at end of input. From a pipe the answer is
    echoed, so that a log shows what was answered. Under --json the question goes to
    standard error: standard output stays the JSON document."""
    echo(prompt, nl=False, err=printer.json)
    line = sys.stdin.readline()
    if not sys.stdin.isatty():
        echo(line.strip(), err=printer.json)
    elif not line:
        echo(err=printer.json)  # the cursor leaves the question's line
    return line or None
