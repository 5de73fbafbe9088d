"""The `clp` command: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from clp_alpm import __version__
from clp_alpm.errors import EXIT_FAILED, EXIT_USAGE, ClpError, UsageError

EPILOG = (
    "Exit status: 0 success; 1 the operation failed (and was rolled back) or was declined; "
    "2 bad input or usage, nothing changed; 3 another clp holds the lock."
)

# -- global options, accepted before or after the command name (as pacman accepts them) ----

_GLOBAL_KEY = "clp.options"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value not in (None, False, ()):
        ctx.meta.setdefault(_GLOBAL_KEY, {})[param.name] = value
    return value


def _global_options(hidden: bool) -> list[Callable]:
    def option(*names: str, **kwargs: Any) -> Callable:
        return click.option(*names, expose_value=False, callback=_remember, hidden=hidden, **kwargs)

    return [
        option("--root", "-r", type=click.Path(file_okay=False), help="Target system root."),
        option("--config", type=click.Path(dir_okay=False), help="clp.conf to read (host path)."),
        option(
            "--dbpath",
            "-b",
            type=click.Path(file_okay=False),
            help="pacman database directory (host path).",
        ),  # fmt: skip
        option(
            "--pacman-conf",
            type=click.Path(dir_okay=False),
            help="pacman.conf to read (host path).",
        ),  # fmt: skip
        option(
            "--cachedir",
            type=click.Path(file_okay=False),
            multiple=True,
            help="Extra package cache directory (host path), searched first.",
        ),  # fmt: skip
        option("--noconfirm", is_flag=True, help="Do not ask for confirmation."),
        option("--json", "json_output", is_flag=True, help="Machine-readable output."),
        option(
            "--color",
            type=click.Choice(["auto", "always", "never"]),
            help="Colour: auto (on a terminal, when pacman.conf says Color), always, never.",
        ),
        option("--debug", is_flag=True, help="Show tracebacks of internal errors."),
    ]


def with_global_options(function: Callable, hidden: bool) -> Callable:
    for option in reversed(_global_options(hidden)):
        function = option(function)
    return function


def command(name: str, **kwargs: Any) -> Callable:
    """A subcommand that also accepts every global option (listed in `clp --help` only)."""

    def decorate(function: Callable) -> click.Command:
        return cli.command(name, epilog="Global options: see 'clp --help'.", **kwargs)(
            with_global_options(function, hidden=True)
        )

    return decorate


class Options:
    """The merged global options of this invocation."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.root: str = values.get("root") or "/"
        self.config: str | None = values.get("config")
        self.dbpath: str | None = values.get("dbpath")
        self.pacman_conf: str | None = values.get("pacman_conf")
        self.cachedir: tuple[str, ...] = tuple(values.get("cachedir") or ())
        self.noconfirm: bool = values.get("noconfirm", False)
        self.json: bool = values.get("json_output", False)
        self.color: str = values.get("color") or "auto"
        self.debug: bool = values.get("debug", False)


_last_options = Options({})


def options() -> Options:
    global _last_options
    _last_options = Options(click.get_current_context().meta.get(_GLOBAL_KEY, {}))
    return _last_options


# -- output in pacman's conventions -----------------------------------------------------


class Printer:
    def __init__(self, opts: Options) -> None:
        self.json = opts.json
        self.color = self._wants_color(opts, sys.stdout) and not opts.json
        self.color_err = self._wants_color(opts, sys.stderr)

    @staticmethod
    def _wants_color(opts: Options, stream: Any) -> bool:
        """pacman's rule: --color always, or auto on a terminal when pacman.conf says Color."""
        if opts.color != "auto":
            return opts.color == "always"
        return stream.isatty() and _pacman_wants_color(opts.root, opts.pacman_conf)

    def _style(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.color else text

    def _echo(self, text: str = "") -> None:
        click.echo(text, color=self.color)

    def _echo_err(self, label: str, colour: str, text: str) -> None:
        styled = click.style(label, fg=colour, bold=True) if self.color_err else label
        click.echo(f"{styled} {text}", err=True, color=self.color_err)

    def section(self, text: str) -> None:
        if not self.json:
            self._echo(self._style("::", fg="blue", bold=True) + " " + self._style(text, bold=True))

    def item(self, text: str = "") -> None:
        if not self.json:
            self._echo(text)

    def arrow(self, text: str) -> None:
        if not self.json:
            self._echo(self._style("->", fg="blue", bold=True) + " " + text)

    def step(self, number: int, total: int, text: str) -> None:
        if not self.json:
            self._echo(f"({number}/{total}) {text}")

    def output(self, line: str) -> None:
        # script output goes to stderr under --json, so that stdout stays one JSON document
        click.echo(line, err=self.json)

    def progress(self, name: str, done: int, total: int | None) -> None:
        """A download's progress, redrawn in place on a terminal; nothing in a pipe or --json."""
        self._bar(name, _size(done), done, total)

    def counting(self, name: str, done: int, total: int) -> None:
        """A long snapshot's progress in files, drawn like a download's."""
        self._bar(name, f"{done}/{total}", done, total)

    def _bar(self, name: str, amount: str, done: int, total: int | None) -> None:
        if self.json or not sys.stdout.isatty():
            return
        width = 30
        if total:
            filled = min(width, done * width // total)
            bar = f"[{'#' * filled}{'-' * (width - filled)}] {done * 100 // total:3d}%"
        else:
            bar = ""
        click.echo(f"\r {name:<24} {amount:>10} {bar}", nl=False)
        if total and done >= total:
            click.echo()

    def rows(self, rows: list[tuple[str, str]]) -> None:
        if self.json:
            return
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            lines = str(value).splitlines() or ["-"]
            self._echo(f"{label:<{width}} : {lines[0]}")
            for line in lines[1:]:
                self._echo(f"{'':<{width}}   {line}")

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
        click.echo(json.dumps(value, indent=2, sort_keys=True))


@functools.lru_cache(maxsize=4)
def _pacman_wants_color(root: str, pacman_conf: str | None) -> bool:
    from clp_alpm.paths import under_root
    from clp_alpm.system.alpm import read_pacman_conf

    conf = Path(pacman_conf) if pacman_conf else under_root(Path(root), "/etc/pacman.conf")
    try:
        entries = read_pacman_conf(Path(root), conf, strict=False)
    except (ClpError, OSError):
        return False
    return any(entry.section == "options" and entry.key == "Color" for entry in entries)


def _events(printer: Printer):
    from clp_alpm.ops.patches import Events

    return Events(
        output=printer.output,
        info=printer.arrow,
        warning=printer.warning,
        step=printer.step,
        waiting=lambda text: printer.item(f":: {text}") if not printer.json else None,
        counting=printer.counting,
    )


def _config():
    from clp_alpm.config import load_config

    opts = options()
    overrides = {
        "dbpath_override": Path(opts.dbpath).absolute() if opts.dbpath else None,
        "pacman_conf": Path(opts.pacman_conf).absolute() if opts.pacman_conf else None,
        "extra_cache_dirs": tuple(Path(d).absolute() for d in opts.cachedir) or None,
    }
    return load_config(opts.root, opts.config, overrides)


def _session(printer: Printer, write: bool = True):
    from clp_alpm.ops.patches import Session, require_root

    if write:
        require_root()
    config = _config()
    for warning in config.warnings:
        printer.warning(warning)
    return Session(config, _events(printer), write=write)


def _config_checking_recovery(printer: Printer):
    """For commands that read no state: root still rolls back what a killed clp left."""
    if os.geteuid() != 0:
        return _config()
    with _session(printer, write=False) as session:
        return session.config


class Declined(ClpError):
    def __init__(self) -> None:
        super().__init__("nothing was changed")


def _confirm(printer: Printer, question: str) -> None:
    """pacman's question: Enter or y proceeds; an answer may also come from a pipe."""
    if options().noconfirm:
        return
    prompt = printer._style("::", fg="blue", bold=True) + " " + printer._style(question, bold=True)
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


# -- commands ------------------------------------------------------------------------------


def _main_group() -> None:
    """Core LivePatch: apply signed live patches and roll them back, without a reboot.

    Global options may stand before or after the command, as in pacman.
    """


cli = click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)(
    click.version_option(__version__, "-V", "--version", prog_name="clp")(
        with_global_options(_main_group, hidden=False)
    )
)


def _signature_text(report: dict[str, Any], name: str) -> str:
    status = report["status"]
    if status == "verified":
        return f"signed by {report['uid'] or 'unknown user id'} ({report['fingerprint']})"
    if status == "invalid":
        return f"INVALID: {report['message']}"
    if status in ("unsigned", "missing"):
        verdict = "apply refuses it" if report["siglevel"] == "Required" else "accepted"
        return f"none ({name}.sig missing; SigLevel = {report['siglevel']}: {verdict})"
    return f"not checked (SigLevel = {report['siglevel']})"


@command("verify")
@click.argument("patch_file", type=click.Path(dir_okay=False))
def verify_command(patch_file: str) -> None:
    """Check a patch's signature and structure; change nothing."""
    from clp_alpm.ops.patches import verify_patch

    printer = Printer(options())
    config = _config_checking_recovery(printer)
    with tempfile.TemporaryDirectory(prefix="clp-verify-") as staging:
        patch = verify_patch(config, Path(patch_file), Path(staging))
        report = patch.to_dict()
    if printer.json:
        printer.data(report)
        return
    signature = _signature_text(report["signature"], Path(patch_file).name)
    printer.item(f"{patch_file}: OK ({patch.archive.container}, {signature})")


@command("info")
@click.argument("patch")
def info_command(patch: str) -> None:
    """Show a patch file's metadata, or what clp knows of the patch with that ID."""
    printer = Printer(options())
    # a directory named like the patch is what 'clp new' made: the ID is meant, not the dir
    if patch.endswith(".clp") or "/" in patch or os.path.isfile(patch):
        _info_file(printer, Path(patch))
    else:
        _info_record(printer, patch)


def _info_file(printer: Printer, path: Path) -> None:
    from clp_alpm.ops.patches import describe_patch_file

    info = describe_patch_file(_config_checking_recovery(printer), path)
    if printer.json:
        printer.data(info)
        return
    payload = sum(entry["size"] for entry in info["entries"])
    printer.rows(
        _meta_rows(info["meta"])
        + [
            ("Container", info["container"]),
            ("Scripts", f"{info['scripts']['install']}, {info['scripts']['remove']}"),
            ("Payload", f"{len(info['entries'])} entries, {_size(payload)}"),
            ("SHA-256", info["sha256"]),
            ("Signature", _signature_text(info["signature"], path.name)),
        ]
    )


def _info_record(printer: Printer, patch_id: str) -> None:
    from clp_alpm.ops.patches import describe_record

    with _session(printer, write=False) as session:
        info = describe_record(session, patch_id)
    if printer.json:
        printer.data(info)
        return
    printer.rows(
        _meta_rows(info["meta"])
        + [
            ("State", info["state"]),
            ("Applied", info["applied_at"] or "-"),
            ("Rolled Back", info["rolled_back_at"] or "-"),
            ("Failed", info["failed_at"] or "-"),
            ("Source", info["source"] or "-"),
            ("Signature", f"signed by {info['signer']}" if info["signer"] else "not checked"),
            ("Changed Since", "\n".join(info["changed_since_apply"]) or "-"),
            ("Message", info["message"] or "-"),
        ]
    )


def _meta_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    applies = [
        f"{a['name']}{a.get('op') or ''}{a.get('version') or ''}"
        for a in meta.get("applies_to", [])
    ]
    health = meta.get("health_check") or {}
    return [
        ("Name", meta["name"]),
        ("Version", meta["version"]),
        ("Description", meta["description"]),
        ("Architecture", meta["architecture"]),
        ("Date", meta.get("date") or "-"),
        ("Packager", meta.get("packager") or "-"),
        ("Severity", meta.get("severity") or "-"),
        ("References", "  ".join(r["value"] for r in meta.get("references", [])) or "-"),
        ("Applies To", "  ".join(applies) or "-"),
        ("Files", "\n".join(meta.get("files", [])) or "-"),
        ("Restart", "  ".join(meta.get("restart", [])) or "-"),
        ("Health Check", health.get("command", "-")),
    ]


@command("apply")
@click.argument("patch_file", type=click.Path(dir_okay=False))
def apply_command(patch_file: str) -> None:
    """Verify, plan and apply a .clp patch; roll it back by itself if anything fails."""
    from clp_alpm.ops.patches import apply, plan_apply, restart_services

    printer = Printer(options())
    with _session(printer) as session:
        plan = plan_apply(session, Path(patch_file))
        _show_apply_plan(printer, plan)
        _confirm(printer, "Proceed with apply?")
        record = apply(session, plan)
        restarts = restart_services(session, record)
    for result in restarts:
        say = printer.arrow if result.status == "restarted" else printer.warning
        say(f"{result.unit}: {result.status}: {result.message}")
    if printer.json:
        printer.data({"plan": plan.to_dict(), "patch": record.to_dict(),
                      "restarts": [result.to_dict() for result in restarts]})  # fmt: skip
    else:
        printer.section(f"{record.id} applied")


def _report_patch(printer: Printer, plan, record, done: str) -> None:
    """The outcome of apply or rollback: the plan and the record as JSON, or one line."""
    if printer.json:
        printer.data({"plan": plan.to_dict(), "patch": record.to_dict()})
    else:
        printer.section(f"{record.id} {done}")


def _show_apply_plan(printer: Printer, plan) -> None:
    meta = plan.meta
    printer.section(f"Patch {meta.name} {meta.version}: {meta.description}")
    signature = plan.patch.to_dict()["signature"]
    rows = [
        ("Signature", _signature_text(signature, plan.patch.source.name)),
        ("Files", "\n".join(meta.files) or "(none declared)"),
        ("Scripts", f"{plan.patch.archive.install_script} via {plan.interpreter}"),
    ]
    if meta.health_check:
        rows.append(("Health Check", meta.health_check.command))
    printer.rows(rows)
    for note in plan.notes:
        printer.warning(note)
    printer.item()


@command("list")
def list_command() -> None:
    """List patches (applied, rolled back, failed), package reverts and pins."""
    from clp_alpm.system.pins import read_pins

    printer = Printer(options())
    with _session(printer, write=False) as session:
        records = session.state.list_patches()
        reverts = session.state.list_reverts()
        pins = read_pins(session.config)
    if printer.json:
        printer.data(
            [{"kind": "patch"} | r.to_dict() for r in records]
            + [{"kind": "revert"} | r.to_dict() for r in reverts]
            + [{"kind": "pin", "id": p.name, "state": "pinned"} | p.__dict__ for p in pins]
        )
        return
    for record in records:
        info = record.to_dict()
        when = (info["applied_at"] if record.state == "applied" else info["updated_at"]) or ""
        printer.item(
            f"{record.id:<16} {record.version:<6} {record.state:<12} {_when(when)}  "
            f"{record.description}"
        )
    for revert in reverts:
        moves = ", ".join(f"{p['name']} {p['from']} -> {p['to']}" for p in revert.packages)
        when = _when(revert.to_dict()["updated_at"] or "")
        printer.item(f"{revert.id:<16} {'revert':<6} {revert.state:<12} {when}  {moves}")
    for pin in pins:
        until = f" until {pin.until}" if pin.until else ""
        printer.item(f"{pin.name:<16} {'pin':<6} {'pinned':<12} {'':<16}  {pin.version}{until}")


def _when(stamp: str) -> str:
    return f"{stamp[:16].replace('T', ' '):<16}"


@command("rollback")
@click.argument("patch_id")
@click.option("--force", is_flag=True, help="Overwrite files changed since the patch was applied.")
def rollback_command(patch_id: str, force: bool) -> None:
    """Undo an applied patch (Remove script, then CLP's snapshot) or a package revert."""
    from clp_alpm.ops.patches import plan_rollback, rollback
    from clp_alpm.ops.revert import find_revert, rollback_revert

    printer = Printer(options())
    with _session(printer) as session:
        revert = None if session.state.get_patch(patch_id) else find_revert(session, patch_id)
        if revert is not None:
            printer.section(f"Rolling back revert {revert.id}")
            for package in revert.packages:
                printer.arrow(f"{package['name']} {package['to']} -> {package['from']}")
            _confirm(printer, "Proceed with rollback?")
            result = rollback_revert(session, revert)
            if printer.json:
                printer.data({"revert": result.to_dict()})
            else:
                printer.section(f"{revert.id} rolled back")
            return
        plan = plan_rollback(session, patch_id, force=force)
        printer.section(f"Rolling back {patch_id}")
        printer.rows([("Files", "\n".join(plan.record.meta.get("files", [])) or "(none)")])
        for change in plan.overwritten:
            printer.warning(f"{change} since {patch_id} was applied; --force overwrites it")
        printer.item()
        _confirm(printer, "Proceed with rollback?")
        record = rollback(session, plan)
    _report_patch(printer, plan, record, "rolled back")


@command("revert")
@click.argument("targets", nargs=-1, required=True, metavar="PKG [VERSION] | PKG=VER... | FILE|URL")
@click.option("--list", "list_only", is_flag=True, help="Only list the versions to be had.")
@click.option("--allow-upgrade", is_flag=True, help="Accept a version newer than installed.")
@click.option("--until", metavar="VERSION", help="Lift the pin once a repository has VERSION.")
def revert_command(
    targets: tuple[str, ...], list_only: bool, allow_upgrade: bool, until: str | None
) -> None:
    """Bring packages back to earlier versions (cache, archive or file), then pin them."""
    from clp_alpm.ops.revert import list_versions, plan_revert, revert

    printer = Printer(options())
    requests = _revert_requests(targets, until)
    if list_only:
        with _session(printer, write=False) as session:
            listings = [list_versions(session, r.name, r.given) for r in requests]
        if printer.json:
            printer.data([listing.to_dict() for listing in listings])
        for listing in listings:
            _show_versions(printer, listing)
        return
    with _session(printer) as session:
        if len(requests) == 1 and not requests[0].version and not requests[0].given:
            requests = [_ask_version(printer, session, requests[0])]
        plan = plan_revert(session, requests, allow_upgrade=allow_upgrade,
                           progress=printer.progress)  # fmt: skip
        printer.section("Packages to revert:")
        for choice in plan.choices:
            printer.arrow(f"{choice.name} {choice.installed} -> {choice.available.version} "
                          f"from {choice.available.describe()}")  # fmt: skip
        if not plan.pins_included:
            from clp_alpm.system.pins import include_line

            printer.warning(
                "pacman.conf does not include clp's pins, so 'pacman -Syu' would undo this "
                f"revert: add '{include_line()}' under [options]"
            )
        _confirm(printer, "Proceed with revert?")
        record = revert(session, plan)
    if printer.json:
        printer.data({"plan": plan.to_dict(), "revert": record.to_dict()})
    else:
        printer.section(f"{record.id}: reverted and pinned (undo with 'clp rollback {record.id}')")


def _revert_requests(targets: tuple[str, ...], until: str | None):
    from clp_alpm.ops.revert import Request
    from clp_alpm.system.pkgsource import parse_package_filename

    def is_file(arg: str) -> bool:
        return "/" in arg or ".pkg.tar" in arg

    if len(targets) == 2 and not any("=" in t or is_file(t) for t in targets):
        return [Request(targets[0], version=targets[1], until=until)]
    requests = []
    for target in targets:
        if is_file(target):
            ref = parse_package_filename(target.rsplit("/", 1)[-1])
            if ref is None:
                raise UsageError(f"{target}: not a package file name (name-version-arch.pkg.tar.*)")
            requests.append(Request(ref.name, given=target, until=until))
        elif "=" in target:
            name, _, version = target.partition("=")
            if not name or not version:
                raise UsageError(f"'{target}': write PKG=VERSION")
            requests.append(Request(name, version=version, until=until))
        else:
            requests.append(Request(target, until=until))
    return requests


def _show_versions(printer: Printer, listing) -> None:
    printer.section(f"Versions of {listing.name} (installed {listing.installed}):")
    for number, available in enumerate(listing.versions, start=1):
        mark = " (installed)" if available.version == listing.installed else ""
        printer.item(f" {number:>3}) {available.version:<20} {available.describe()}{mark}")
    if not listing.versions:
        printer.item(f"   none found (searched: {', '.join(listing.searched) or 'nowhere'})")
    for problem in listing.problems:
        printer.warning(problem)


def _ask_version(printer: Printer, session, request):
    """pacman's numbered question: which version? --noconfirm takes the newest older one."""
    from clp_alpm.ops.revert import Request, list_versions, pick_default

    listing = list_versions(session, request.name, request.given)
    default = pick_default(listing)
    if default is None:
        _show_versions(printer, listing)
        raise UsageError(f"no version of {request.name} older than {listing.installed} was found")
    if options().noconfirm:
        return Request(request.name, version=default.version, until=request.until)
    _show_versions(printer, listing)
    number = listing.versions.index(default) + 1
    answer = click.prompt(
        printer._style("::", fg="blue", bold=True) + " Enter a number",
        default=number, type=click.IntRange(1, len(listing.versions)),
    )  # fmt: skip
    return Request(request.name, version=listing.versions[answer - 1].version, until=request.until)


@command("pins")
def pins_command() -> None:
    """List the packages clp keeps pacman from upgrading."""
    from clp_alpm.system.pins import pins_included, read_pins

    printer = Printer(options())
    config = _config()
    pins = read_pins(config)
    if printer.json:
        printer.data([pin.__dict__ for pin in pins])
        return
    for pin in pins:
        until = f" until {pin.until}" if pin.until else ""
        printer.item(f"{pin.name} {pin.version}{until} ({pin.reason})")
    if pins and not pins_included(config, config.pacman_conf):
        from clp_alpm.system.pins import include_line

        printer.warning(f"pacman.conf does not include these pins: add '{include_line()}'")


@command("unpin")
@click.argument("package")
def unpin_command(package: str) -> None:
    """Let pacman upgrade a pinned package again."""
    from clp_alpm.store.journal import Step
    from clp_alpm.system.pins import read_pins

    printer = Printer(options())
    with _session(printer) as session:
        if package not in {pin.name for pin in read_pins(session.config)}:
            raise UsageError(f"{package} is not pinned (see 'clp pins')")
        step = Step("unpin", {"names": [package]}, f"unpin {package}")
        session.journal().commit("unpin", package, [step])
    if printer.json:
        printer.data({"unpinned": package})
    else:
        printer.section(f"{package} unpinned: the next 'pacman -Syu' may upgrade it")


@command("transactions")
def transactions_command() -> None:
    """List the pacman transactions the hooks recorded, with versions and changed files."""
    from clp_alpm.ops.transactions import describe_packages

    printer = Printer(options())
    with _session(printer, write=False) as session:
        records = session.state.list_transactions()
    if printer.json:
        printer.data([record.to_dict() for record in records])
        return
    if not records:
        printer.item("no transactions recorded (are clp's pacman hooks installed?)")
    for record in records:
        info = record.to_dict()
        status = "" if record.status == "done" else f" [{record.status}]"
        by = " by clp" if record.origin == "clp" else ""
        files = f", {len(record.changed)} file(s) changed" if record.changed else ""
        printer.section(f"{record.id}  {_when(info['started'] or '')}{by}{status}{files}")
        for line in describe_packages(record.packages):
            printer.arrow(line)
        for path in record.changed:
            printer.item(f"   {path}")


@command("diff")
@click.argument("transaction")
def diff_command(transaction: str) -> None:
    """Show what a pacman transaction changed in configuration files, as unified diffs."""
    from clp_alpm.ops.transactions import diff, get

    printer = Printer(options())
    with _session(printer, write=False) as session:
        record = get(session.state, transaction)
        diffs = diff(session.store, record)
    if printer.json:
        printer.data({"transaction": record.id, "files": [d.to_dict() for d in diffs]})
        return
    if not diffs:
        printer.item(f"transaction {record.id} changed no configuration file")
    for file_diff in diffs:
        printer.section(f"{file_diff.path}: {file_diff.summary}")
        for line in file_diff.diff.splitlines():
            printer.diff_line(line)


@command("undo-transaction")
@click.argument("transaction")
@click.option("--force", is_flag=True, help="Overwrite files changed since the transaction.")
def undo_transaction_command(transaction: str, force: bool) -> None:
    """Reverse a pacman transaction: earlier package versions, then its files restored."""
    from clp_alpm.ops.transactions import plan_undo, undo

    printer = Printer(options())
    with _session(printer) as session:
        plan = plan_undo(session, transaction, force=force)
        printer.section(f"Undoing transaction {plan.record.id}")
        rows = [("Packages", "\n".join(plan.moves) or "(none)"),
                ("Files", "\n".join(plan.files) or "(none)")]  # fmt: skip
        if plan.left_to_patches:
            rows.append(
                (
                    "Patched files",
                    "\n".join(plan.left_to_patches)
                    + "\n(left to their patches: re-applied on the earlier version)",
                )
            )
        printer.rows(rows)
        for change in plan.overwritten:
            printer.warning(f"{change} since the transaction; --force overwrites it")
        printer.item()
        _confirm(printer, "Proceed with undo?")
        record = undo(session, plan)
    if printer.json:
        printer.data({"plan": plan.to_dict(), "transaction": record.to_dict()})
    else:
        printer.section(f"transaction {record.id} undone")


@command("status")
def status_command() -> None:
    """List running processes that still use files pacman deleted or replaced."""
    from clp_alpm.ops.patches import require_root
    from clp_alpm.system.processes import find_stale_processes, group_by_unit

    printer = Printer(options())
    require_root()  # anyone else sees only their own processes: an all-clear would be false
    config = _config_checking_recovery(printer)
    stale = find_stale_processes(config.root)
    if printer.json:
        printer.data({"processes": [process.to_dict() for process in stale]})
        return
    if not stale:
        printer.item("no running process uses deleted or replaced files")
        return
    for unit, processes in sorted(group_by_unit(stale).items(), key=lambda kv: kv[0] or "~"):
        printer.section(unit or "Processes outside any service")
        for process in processes:
            files = ", ".join(process.files[:3]) + (" ..." if len(process.files) > 3 else "")
            printer.arrow(f"{process.pid} {process.command}: {files}")
    units = sorted(unit for unit in group_by_unit(stale) if unit and unit.endswith(".service"))
    if units:
        printer.item()
        printer.item(f"restart them with: systemctl try-restart {' '.join(units)}")


@command("hook", hidden=True)
@click.argument("when", type=click.Choice(["pre-transaction", "post-transaction"]))
def hook_command(when: str) -> None:
    """Run by clp's pacman hooks (targets on stdin); never fails the transaction."""
    from clp_alpm.cli.entry import run_hook_command

    run_hook_command([when], Path(options().root))


@command("recover")
def recover_command() -> None:
    """Roll back what a killed clp left unfinished (every command does this first)."""
    printer = Printer(options())
    with _session(printer) as session:
        reports = session.recovered
    if printer.json:
        printer.data({"recovered": reports})
    elif not reports:
        printer.item("nothing to recover")


@command("new")
@click.argument("patch_id")
@click.option("-C", "--directory", type=click.Path(file_okay=False, exists=True), default=".",
              help="Existing directory to create the patch directory in.")  # fmt: skip
def new_command(patch_id: str, directory: str) -> None:
    """Write a patch directory with template metadata and scripts."""
    from clp_alpm.formats.patchfile import write_template

    printer = Printer(options())
    dest = Path(directory) / patch_id
    write_template(dest, patch_id)
    if printer.json:
        printer.data({"created": str(dest)})
        return
    printer.item(f"created {dest}: edit PKGINFO.meta and the scripts, then")
    printer.item(f"  clp build {dest} -o {patch_id}.clp --sign YOUR-KEY-ID")


@command("build")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Output .clp file (default: DIRECTORY's name + .clp, here).",
)
@click.option("--sign", "sign_key", metavar="KEYID", help="Sign with this gpg key.")
@click.option("--gpg-homedir", type=click.Path(file_okay=False), help="gpg home for --sign.")
def build_command(
    directory: str, output: str | None, sign_key: str | None, gpg_homedir: str | None
) -> None:
    """Validate a patch directory and pack it into a .clp (and sign it)."""
    from clp_alpm.formats.patchfile import build_patch
    from clp_alpm.system.signature import sign_detached

    printer = Printer(options())
    src = Path(directory)
    if not src.is_dir():
        raise UsageError(f"{src}: no such patch directory")
    out = Path(output) if output else Path(f"{src.absolute().name}.clp")
    if not out.absolute().parent.is_dir():
        raise UsageError(f"{out.absolute().parent}: no such directory for the output")
    archive = build_patch(src, out)
    signature = Path(f"{out}.sig")
    signature.unlink(missing_ok=True)  # a signature of an earlier build would not match
    if sign_key:
        try:
            sign_detached(out, sign_key, Path(gpg_homedir) if gpg_homedir else None)
        except ClpError:
            out.unlink(missing_ok=True)  # nothing half-made: no unsigned patch left behind
            raise
    if printer.json:
        printer.data(archive.to_dict() | {"signature_file": str(signature) if sign_key else None})
        return
    printer.item(f"built {out} ({archive.meta.name} {archive.meta.version}, {_size(archive.size)})")
    if sign_key:
        printer.item(f"signed {signature}")
    if out.name != f"{archive.meta.name}.clp":
        printer.warning(f"the patch is named {archive.meta.name}: call the file "
                        f"{archive.meta.name}.clp, as the patch feed does")  # fmt: skip


@command("update")
@click.option("--check", is_flag=True, help="Only report what would be done; change nothing.")
def update_command(check: bool) -> None:
    """Read the patch feed and apply every patch that is due (what the daily timer runs)."""
    from clp_alpm.ops.revert import lift_satisfied_pins
    from clp_alpm.ops.update import plan_update, run_update

    printer = Printer(options())
    with _session(printer, write=not check) as session:
        # pins first: they wait for the repositories, not for the feed (which may be unset)
        lifted = [] if check else lift_satisfied_pins(session)
        for pin in lifted:
            printer.arrow(f"pin lifted: {pin}")
        printer.section("Synchronizing the patch feed...")
        plan = plan_update(session)
        _show_update_plan(printer, plan)
        due = plan.to_apply
        if check:
            if printer.json:
                printer.data(plan.to_dict())
            return
        if due:
            _confirm(printer, f"Proceed with {len(due)} patch{'es' if len(due) > 1 else ''}?")
        else:
            printer.item(" there is nothing to do")
        report = run_update(session, plan, progress=printer.progress)
        report.lifted_pins = lifted
    if printer.json:
        printer.data(report.to_dict())  # the one JSON document, failures included
    failures = [outcome for outcome in report.outcomes if outcome.result == "failed"]
    for failure in failures:
        printer.error(failure.message if failure.name in failure.message
                      else f"{failure.name}: {failure.message}")  # fmt: skip
    if failures:
        raise UpdateFailed(len(failures), len(report.outcomes), printer.json)


class UpdateFailed(ClpError):
    """Some patches of an update were not applied (each said why); the others were."""

    def __init__(self, failed: int, total: int, reported: bool) -> None:
        super().__init__(f"{failed} of {total} patches were not applied (see above)")
        self.reported = reported  # the JSON report already holds the failures


def _show_update_plan(printer: Printer, plan) -> None:
    printer.arrow(f"index from {plan.mirror} (generated {plan.index.generated or 'unknown'})")
    for decision in plan.decisions:
        entry = decision.entry
        mark = "apply" if decision.apply else "skip "
        printer.item(f" {mark} {entry.name:<16} {entry.severity or '':<8} {decision.reason}")


@command("repo-add")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--sign", "sign_key", metavar="KEYID", help="Sign CLP.db with this gpg key.")
@click.option("--gpg-homedir", type=click.Path(file_okay=False), help="gpg home for --sign.")
def repo_add_command(directory: str, sign_key: str | None, gpg_homedir: str | None) -> None:
    """Write the feed index CLP.db for a directory of .clp files (and sign it)."""
    from clp_alpm.formats.feed import build_index, write_index
    from clp_alpm.system.signature import sign_detached

    printer = Printer(options())
    folder = Path(directory)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such directory")
    index = build_index(folder)
    path = write_index(folder, index)
    if sign_key:
        sign_detached(path, sign_key, Path(gpg_homedir) if gpg_homedir else None)
    if printer.json:
        printer.data(index.to_dict() | {"path": str(path), "signed": bool(sign_key)})
        return
    for entry in index.entries:
        printer.arrow(f"{entry.name} {entry.version} ({entry.architecture})")
    signed = f", signed {path}.sig" if sign_key else ""
    count = len(index.entries)
    printer.section(f"wrote {path}: {count} patch{'' if count == 1 else 'es'}{signed}")


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


# -- entry point ---------------------------------------------------------------------------


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:].rstrip(".")


def _terminate(signum: int, frame: Any) -> None:
    # SIGTERM/SIGHUP undo like Ctrl-C instead of leaving a half state for the next run
    raise KeyboardInterrupt


def _fail(message: str, code: int) -> int:
    printer = Printer(_last_options)
    printer.error(message)
    if _last_options.json:
        printer.data({"error": message, "exit_code": code})
    return code


def main(argv: list[str] | None = None) -> int:
    for signum in (signal.SIGTERM, signal.SIGHUP):  # a stop, a lost ssh session: undo
        signal.signal(signum, _terminate)
    global _last_options
    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    if "--json" in args:  # a usage error comes before the options are parsed: still JSON
        _last_options = Options({"json_output": True})
    try:
        cli.main(args=argv, prog_name="clp", standalone_mode=False)
        return 0
    except Declined as declined:
        Printer(_last_options).item(str(declined))
        return EXIT_FAILED
    except ClpError as err:
        if getattr(err, "reported", False):  # already in the --json document
            Printer(_last_options).error(str(err))
            return err.exit_code
        return _fail(str(err), err.exit_code)
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.UsageError as err:
        path = err.ctx.command_path if err.ctx else "clp"
        where = "clp" + path[len(path.split(" ")[0]) :]
        return _fail(f"{_lower_first(err.format_message())} (see '{where} --help')", EXIT_USAGE)
    except click.ClickException as err:
        return _fail(_lower_first(err.format_message()), EXIT_USAGE)
    except (click.Abort, KeyboardInterrupt):
        click.echo(err=True)
        return _fail("interrupted", 130)
    except Exception as err:  # a bug: say so in one line unless --debug
        if debug:
            raise
        return _fail(f"internal error: {type(err).__name__}: {err} (run with --debug)", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
