"""All of clp's printing, in pacman's conventions: `::` sections, `->` items, `(n/N)` steps,
`warning:`/`error:` on standard error, colour as pacman decides it, one JSON document with
`--json` (script output then goes to standard error, so that standard output stays JSON)."""

from __future__ import annotations

import functools
import sys

from clp_alpm.cli.options import Options
from clp_alpm.errors import ClpError

TYPE_CHECKING = False  # the listings start without typing (see clp_alpm.cli.entry)
if TYPE_CHECKING:
    from typing import Any, TextIO

    from clp_alpm.ops.pins import Lift


class Printer:
    def __init__(self, opts: Options) -> None:
        self.json = opts.json
        self.quiet = opts.quiet  # -q: results, warnings and errors only
        self.color = self._wants_color(opts, sys.stdout) and not opts.json
        self.color_err = self._wants_color(opts, sys.stderr)

    @staticmethod
    def _wants_color(opts: Options, stream: TextIO) -> bool:
        """pacman's rule: --color always, or auto on a terminal when pacman.conf says Color."""
        if opts.color != "auto":
            return opts.color == "always"
        return stream.isatty() and _pacman_wants_color(opts.root, opts.pacman_conf)

    def _style(self, text: str, fg: str | None = None, bold: bool = False) -> str:
        return styled(text, fg, bold) if self.color else text

    def _echo(self, text: str = "") -> None:
        echo(visible(text, keep="\n\t\x1b"), color=self.color)  # ESC: the styling

    def _echo_err(self, label: str, colour: str, text: str) -> None:
        label_shown = styled(label, colour, bold=True) if self.color_err else label
        text = visible(text)
        lines = _fitted(text, len(label) + 1) if sys.stderr.isatty() else [text]
        echo(f"{label_shown} {lines[0]}", err=True, color=self.color_err)
        for line in lines[1:]:
            echo(f"{'':<{len(label)}}  {line}", err=True)

    def question(self, text: str, bold: bool = True) -> str:
        """A prompt as pacman shows it: `:: text` (bold on a colour terminal)."""
        return self._style("::", fg="blue", bold=True) + " " + self._style(text, bold=bold)

    def section(self, text: str) -> None:
        if not self.json:
            self._echo(self.question(text))

    def item(self, text: str = "") -> None:
        if not self.json:
            self._echo(text)

    def nothing(self, text: str) -> None:
        """An empty listing: said on a terminal; a pipe (and -q) gets no line at all."""
        if not (self.json or self.quiet) and sys.stdout.isatty():
            self._echo(text)

    def arrow(self, text: str) -> None:
        if not (self.json or self.quiet):
            self._echo(self._style("->", fg="blue", bold=True) + " " + text)

    def step(self, number: int, total: int, text: str) -> None:
        if not (self.json or self.quiet):
            self._echo(f"({number}/{total}) {text}")

    def waiting(self, text: str) -> None:
        if not (self.json or self.quiet):
            self._echo(f":: {text}")

    def output(self, line: str) -> None:
        # script output goes to stderr under --json, so that stdout stays one JSON document
        echo(line, err=self.json)

    def progress(self, name: str, done: int, total: int | None) -> None:
        """A download's progress, redrawn in place on a terminal; nothing in a pipe or --json."""
        self._bar(name, size(done), done, total)

    def counting(self, name: str, done: int, total: int) -> None:
        """A long snapshot's progress in files, drawn like a download's."""
        self._bar(name, f"{done}/{total}", done, total)

    def _bar(self, name: str, amount: str, done: int, total: int | None) -> None:
        if self.json or self.quiet or not sys.stdout.isatty():
            return
        width = 30
        if total:
            filled = min(width, done * width // total)
            bar = f"[{'#' * filled}{'-' * (width - filled)}] {done * 100 // total:3d}%"
        else:
            bar = ""
        echo(f"\r {name:<24} {amount:>10} {bar}", nl=False)
        if total and done >= total:
            echo()

    def rows(self, rows: list[tuple[str, str]], err: bool = False) -> None:
        """`Label : value` lines, as pacman -Qi; on standard error when `err` (then under
        --json too)."""
        if self.json and not err:
            return
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            lines = visible(str(value)).splitlines() or ["-"]
            echo(f"{label:<{width}} : {lines[0]}", err=err, color=self.color)
            for line in lines[1:]:
                echo(f"{'':<{width}}   {line}", err=err, color=self.color)

    def diff_line(self, line: str) -> None:
        colour = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1])
        if line.startswith(("+++", "---")):
            colour = None
        self._echo(self._style(line, fg=colour) if colour else line)

    def warning(self, text: str) -> None:
        self._echo_err("warning:", "yellow", text)

    def error(self, text: str) -> None:
        self._echo_err("error:", "red", text)

    def data(self, value: Any) -> None:
        import json  # (and re with it) only for --json

        echo(json.dumps(value, indent=2, sort_keys=True))


# What a terminal would not show as itself: controls, format characters (bidi overrides,
# zero-width ones), surrogates, unassigned code points, line and paragraph separators.
_INVISIBLE = frozenset(("Cc", "Cf", "Cs", "Cn", "Zl", "Zp"))


_COLOURS = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "cyan": 36}


def styled(text: str, fg: str | None = None, bold: bool = False) -> str:
    """`text` in a terminal colour and weight (ANSI SGR codes, as pacman writes them)."""
    codes = ([f"\x1b[{_COLOURS[fg]}m"] if fg else []) + (["\x1b[1m"] if bold else [])
    return "".join(codes) + text + "\x1b[0m" if codes else text


def echo(text: str = "", err: bool = False, color: bool | None = None, nl: bool = True) -> None:
    """Write one line to standard output (or error) at once. Without colour (by default: on
    anything but a terminal) escape sequences are taken out, as a pipe or a log wants."""
    stream = sys.stderr if err else sys.stdout
    if "\x1b" in text and not (stream.isatty() if color is None else color):
        import re

        text = re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]", "", text)
    stream.write(text + "\n" if nl else text)
    stream.flush()


def visible(text: str, keep: str = "\n\t") -> str:
    """`text` with every character a terminal would not show as itself (but those in `keep`)
    written as its code point, <U+202E>: no name, path or message can reorder or hide what is
    printed around it."""
    if text.isprintable():
        return text
    import unicodedata

    return "".join(
        f"<U+{ord(char):04X}>"
        if char not in keep and unicodedata.category(char) in _INVISIBLE
        else char
        for char in text
    )


def _fitted(text: str, indent: int) -> list[str]:
    """A message too long for the terminal, broken where its parts meet ("; ") and, in a
    part still too long, between words, so that each line fits (a word longer than the line,
    a long URL, stays whole); a pipe or a log gets it on one line, for grep."""
    import shutil  # (and bz2, lzma with it) not for every command

    width = shutil.get_terminal_size().columns - indent
    if len(text) <= width:
        return [text]
    import textwrap

    lines: list[str] = []
    for number, part in enumerate(text.split("; ")):
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += "; " + part
            continue
        if number:
            lines[-1] += ";"
        lines += textwrap.wrap(part, width, break_long_words=False, break_on_hyphens=False)
    return lines


@functools.lru_cache(maxsize=4)
def _pacman_wants_color(root: str, pacman_conf: str | None) -> bool:
    from clp_alpm.paths import under_root
    from clp_alpm.system.pacmanconf import read_pacman_conf

    conf = pacman_conf or under_root(root, "/etc/pacman.conf")
    try:
        entries = read_pacman_conf(root, conf, strict=False)
    except (ClpError, OSError):
        return False
    return any(entry.section == "options" and entry.key == "Color" for entry in entries)


def size(count: int) -> str:
    """A byte count as pacman shows one: 512 B, 1.5 KiB, 3.0 MiB."""
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{count} B"


def when(stamp: str) -> str:
    """An ISO time stamp as a fixed-width 'YYYY-MM-DD HH:MM' column."""
    return f"{stamp[:16].replace('T', ' '):<16}"


def signature_text(report: dict[str, Any], name: str) -> str:
    """One line for a signature verdict (the JSON shape of ops.verify.signature_report)."""
    status = report["status"]
    if status == "verified":
        return f"signed by {report['uid'] or 'unknown user id'} ({report['fingerprint']})"
    if status == "invalid":
        return f"INVALID: {report['message']}"
    if status in ("unsigned", "missing"):
        verdict = "apply refuses it" if report["siglevel"] == "Required" else "accepted"
        return f"none ({name}.sig missing; SigLevel = {report['siglevel']}: {verdict})"
    return f"not checked (SigLevel = {report['siglevel']})"


def lifted_pin(lift: Lift) -> str:
    """The line for a pin lifted because its fix has arrived."""
    then = "the next 'pacman -Syu' upgrades it" if lift.upgrade_waits else "it is installed"
    return f"pin lifted: {lift.describe()}; {then}"
