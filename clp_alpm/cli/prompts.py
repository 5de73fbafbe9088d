"""pacman's questions: `[Y/n]` and the numbered choice, from the terminal or a pipe."""

from __future__ import annotations

import sys

import click

from clp_alpm.cli.options import options
from clp_alpm.cli.output import Printer
from clp_alpm.errors import Declined, UsageError


def confirm(printer: Printer, question: str) -> None:
    """Enter or y proceeds; anything else raises Declined. An answer may come from a pipe;
    --noconfirm proceeds without asking."""
    if options().noconfirm:
        return
    prompt = printer.question(question)
    if sys.stdin.isatty():
        try:
            answer = click.confirm(prompt, default=True, prompt_suffix=" ")
        except click.Abort:
            click.echo(err=True)
            raise Declined() from None
        if not answer:
            raise Declined()
        return
    click.echo(f"{prompt} [Y/n] ", nl=False, err=printer.json)  # stdout stays the JSON
    line = sys.stdin.readline()
    click.echo(line.strip(), err=printer.json)
    if not line:
        raise UsageError("no answer on standard input (use --noconfirm to proceed without asking)")
    if line.strip().lower() not in ("", "y", "yes"):
        raise Declined()


def choose_number(printer: Printer, count: int, default: int) -> int:
    """pacman's `Enter a number` question over a list shown before: 1..count."""
    answer: int = click.prompt(
        printer.question("Enter a number", bold=False),
        default=default,
        type=click.IntRange(1, count),
    )
    return answer
