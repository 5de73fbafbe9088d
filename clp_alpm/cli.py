"""The `clp` command: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import EXIT_FAILED, EXIT_USAGE, ClpError

# -- global options, accepted before or after the command name (as pacman accepts them) ----

_GLOBAL_KEY = "clp.options"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value not in (None, False):
        ctx.meta.setdefault(_GLOBAL_KEY, {})[param.name] = value
    return value


def _global(*names: str, **kwargs: Any) -> Callable:
    return click.option(*names, expose_value=False, callback=_remember, **kwargs)


_GLOBAL_OPTIONS = [
    _global("--root", "-r", type=click.Path(file_okay=False), help="Target system root."),
    _global("--config", type=click.Path(dir_okay=False), help="clp.conf to read (host path)."),
    _global(
        "--dbpath", "-b", type=click.Path(file_okay=False), help="pacman database dir (host path)."
    ),
    _global("--noconfirm", is_flag=True, help="Do not ask for confirmation."),
    _global("--json", "json_output", is_flag=True, help="Machine-readable output."),
    _global("--color", type=click.Choice(["auto", "always", "never"]), help="Colorize output."),
    _global("--debug", is_flag=True, help="Show tracebacks of internal errors."),
]


def global_options(function: Callable) -> Callable:
    for option in reversed(_GLOBAL_OPTIONS):
        function = option(function)
    return function


def command(name: str, **kwargs: Any) -> Callable:
    def decorate(function: Callable) -> click.Command:
        return cli.command(name, **kwargs)(global_options(function))

    return decorate


class Options:
    """The merged global options of this invocation."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.root: str = values.get("root") or "/"
        self.config: str | None = values.get("config")
        self.dbpath: str | None = values.get("dbpath")
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
        return opts.color == "always" or (opts.color == "auto" and stream.isatty())

    def _style(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.color else text

    def _style_err(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.color_err else text

    def section(self, text: str) -> None:
        if not self.json:
            click.echo(self._style("::", fg="blue", bold=True) + " " + self._style(text, bold=True))

    def item(self, text: str) -> None:
        if not self.json:
            click.echo(text)

    def arrow(self, text: str) -> None:
        if not self.json:
            click.echo(self._style("->", fg="blue", bold=True) + " " + text)

    def step(self, number: int, total: int, text: str) -> None:
        if not self.json:
            click.echo(f"({number}/{total}) {text}")

    def output(self, line: str) -> None:
        # script output: to stderr under --json so that stdout stays parseable
        click.echo(line, err=self.json)

    def warning(self, text: str) -> None:
        click.echo(self._style_err("warning:", fg="yellow", bold=True) + " " + text, err=True)

    def error(self, text: str) -> None:
        click.echo(self._style_err("error:", fg="red", bold=True) + " " + text, err=True)

    def data(self, value: Any) -> None:
        click.echo(json.dumps(value, indent=2, sort_keys=True))


def _events(printer: Printer):
    from .patches import Events

    return Events(
        output=printer.output, info=printer.arrow, warning=printer.warning, step=printer.step
    )


def _config():
    from .config import load_config

    opts = options()
    overrides = {"dbpath_override": Path(opts.dbpath).absolute() if opts.dbpath else None}
    return load_config(opts.root, opts.config, overrides)


def _session(printer: Printer, write: bool = True):
    from .patches import Session, require_root

    if write:
        require_root()
    config = _config()
    for warning in config.warnings:
        printer.warning(warning)
    return Session(config, _events(printer), write=write)


def _confirm(printer: Printer, question: str) -> None:
    if options().noconfirm:
        return
    if not sys.stdin.isatty():
        raise ClpError(
            "cannot ask for confirmation: standard input is not a terminal (use --noconfirm)"
        )
    prompt = printer._style("::", fg="blue", bold=True) + " " + printer._style(question, bold=True)
    if not click.confirm(prompt, default=True, prompt_suffix=" "):
        raise Declined()


class Declined(ClpError):
    def __init__(self) -> None:
        super().__init__("operation cancelled; nothing was changed")


# -- commands ------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="clp")
@global_options
def cli() -> None:
    """Core LivePatch: apply signed live patches and roll them back, without a reboot."""


@command("verify")
@click.argument("patch_file", type=click.Path(dir_okay=False))
def verify_command(patch_file: str) -> None:
    """Check a patch's signature and structure; change nothing."""
    from .patches import verify_patch

    printer = Printer(options())
    with tempfile.TemporaryDirectory(prefix="clp-verify-") as staging:
        patch = verify_patch(_config(), Path(patch_file), Path(staging))
    if printer.json:
        printer.data(patch.to_dict())
        return
    signer = _describe_signer(patch)
    printer.item(f"{patch_file}: OK ({patch.archive.container}, {signer})")


@command("info")
@click.argument("patch")
def info_command(patch: str) -> None:
    """Show a patch file's metadata, or what clp knows of an applied patch ID."""
    printer = Printer(options())
    if patch.endswith(".clp") or os.path.isfile(patch):
        _info_file(printer, Path(patch))
    else:
        _info_record(printer, patch)


def _info_file(printer: Printer, path: Path) -> None:
    from .patches import describe_patch_file

    info = describe_patch_file(_config(), path)
    if printer.json:
        printer.data(info)
        return
    meta = info["meta"]
    rows = _meta_rows(meta) + [
        ("Container", info["container"]),
        ("Scripts", f"{info['install_script']}, {info['remove_script']}"),
        (
            "Payload",
            f"{len(info['entries'])} entries, {_size(sum(e['size'] for e in info['entries']))}",
        ),
        ("SHA-256", info["sha256"]),
        ("Signature", info["signature"]["status"]),
    ]
    _print_rows(rows)


def _info_record(printer: Printer, patch_id: str) -> None:
    from .patches import describe_record

    with _session(printer, write=False) as session:
        info = describe_record(session, patch_id)
    if printer.json:
        printer.data(info)
        return
    rows = _meta_rows(info["meta"]) + [
        ("State", info["state"]),
        ("Applied", info["applied_at"] or "-"),
        ("Rolled back", info["rolled_back_at"] or "-"),
        ("Failed", info["failed_at"] or "-"),
        ("Source", info["source"] or "-"),
        ("Signed by", info["signer"] or "-"),
        ("Changed since", ", ".join(info["changed_since_apply"]) or "-"),
        ("Message", info["message"] or "-"),
    ]
    _print_rows(rows)


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


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        lines = str(value).splitlines() or ["-"]
        click.echo(f"{label:<{width}} : {lines[0]}")
        for line in lines[1:]:
            click.echo(f"{'':<{width}}   {line}")


@command("apply")
@click.argument("patch_file", type=click.Path(dir_okay=False))
def apply_command(patch_file: str) -> None:
    """Verify, plan and apply a .clp patch; roll it back by itself if anything fails."""
    from .patches import apply, plan_apply

    printer = Printer(options())
    with _session(printer) as session:
        plan = plan_apply(session, Path(patch_file))
        _show_apply_plan(printer, plan)
        _confirm(printer, "Proceed with apply?")
        record = apply(session, plan)
    if printer.json:
        printer.data({"plan": plan.to_dict(), "patch": record.to_dict()})
    else:
        printer.section(f"{record.id} applied")


def _show_apply_plan(printer: Printer, plan) -> None:
    meta = plan.meta
    printer.section(f"Patch {meta.name} {meta.version}: {meta.description}")
    rows = [("Signature", _describe_signer(plan.patch))]
    rows.append(("Files", "\n".join(meta.files) or "(none declared)"))
    rows.append(("Scripts", f"{plan.patch.archive.install_script} via {plan.interpreter}"))
    if meta.health_check:
        rows.append(("Health Check", meta.health_check.command))
    if not printer.json:
        _print_rows(rows)
        for note in plan.notes:
            printer.warning(note)
        click.echo()


def _describe_signer(patch) -> str:
    if patch.signer is None:
        return f"not checked (SigLevel = {patch.siglevel})"
    who = patch.signer.uid or "unknown user id"
    return f"signed by {who} ({patch.signer.fingerprint})"


@command("list")
def list_command() -> None:
    """List applied, rolled-back and failed patches."""
    printer = Printer(options())
    with _session(printer, write=False) as session:
        records = session.state.list_patches()
    if printer.json:
        printer.data([record.to_dict() for record in records])
        return
    for record in records:
        info = record.to_dict()
        when = (info["applied_at"] if record.state == "applied" else info["updated_at"]) or ""
        when = when[:16].replace("T", " ")
        printer.item(
            f"{record.id:<16} {record.version:<6} {record.state:<12} {when:<16}  "
            f"{record.description}"
        )


@command("rollback")
@click.argument("patch_id")
@click.option("--force", is_flag=True, help="Overwrite files changed since the patch was applied.")
def rollback_command(patch_id: str, force: bool) -> None:
    """Undo an applied patch: run its Remove script, then restore CLP's snapshot."""
    from .patches import plan_rollback, rollback

    printer = Printer(options())
    with _session(printer) as session:
        plan = plan_rollback(session, patch_id, force=force)
        printer.section(f"Rolling back {patch_id}")
        if not printer.json:
            _print_rows([("Files", "\n".join(plan.record.meta.get("files", [])) or "(none)")])
            for path in plan.overwritten:
                printer.warning(
                    f"{path} was changed since {patch_id} was applied; --force overwrites it"
                )
            click.echo()
        _confirm(printer, "Proceed with rollback?")
        record = rollback(session, plan)
    if printer.json:
        printer.data({"plan": plan.to_dict(), "patch": record.to_dict()})
    else:
        printer.section(f"{patch_id} rolled back")


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
@click.option(
    "-C",
    "--directory",
    type=click.Path(file_okay=False),
    default=".",
    help="Where to create the patch directory.",
)
def new_command(patch_id: str, directory: str) -> None:
    """Write a patch directory with template metadata and scripts."""
    from .patchfile import write_template

    dest = Path(directory) / patch_id
    write_template(dest, patch_id)
    Printer(options()).item(
        f"created {dest}: edit PKGINFO.meta and the scripts, then 'clp build {dest}'"
    )


@command("build")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output .clp file.")
@click.option("--sign", "sign_key", help="Sign with this gpg key id.")
@click.option("--gpg-homedir", type=click.Path(file_okay=False), help="gpg home for --sign.")
def build_command(
    directory: str, output: str | None, sign_key: str | None, gpg_homedir: str | None
) -> None:
    """Validate a patch directory and pack it into a .clp (and sign it)."""
    from .patchfile import build_patch
    from .signature import sign_detached

    printer = Printer(options())
    src = Path(directory)
    out = Path(output) if output else Path(f"{src.absolute().name}.clp")
    archive = build_patch(src, out)
    sig = (
        sign_detached(out, sign_key, Path(gpg_homedir) if gpg_homedir else None)
        if sign_key
        else None
    )
    if printer.json:
        printer.data(archive.to_dict() | {"signature": str(sig) if sig else None})
        return
    printer.item(f"built {out} ({archive.meta.name} {archive.meta.version}, {_size(archive.size)})")
    if sig:
        printer.item(f"signed {sig}")


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
    # SIGTERM (systemctl stop, a timeout) undoes like Ctrl-C instead of leaving a half state
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="clp", standalone_mode=False)
        return 0
    except ClpError as err:
        Printer(_last_options).error(str(err))
        return err.exit_code
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.UsageError as err:
        where = (
            f"clp {err.ctx.command_path.split(' ', 1)[1]}"
            if err.ctx and " " in err.ctx.command_path
            else "clp"
        )
        Printer(_last_options).error(f"{_lower_first(err.format_message())} (see '{where} --help')")
        return EXIT_USAGE
    except click.ClickException as err:
        Printer(_last_options).error(_lower_first(err.format_message()))
        return EXIT_USAGE
    except click.Abort:
        Printer(_last_options).error("aborted; nothing was changed")
        return EXIT_FAILED
    except KeyboardInterrupt:
        Printer(_last_options).error("interrupted")
        return 130
    except Exception as err:  # a bug: say so in one line unless --debug
        if debug:
            raise
        Printer(_last_options).error(
            f"internal error: {type(err).__name__}: {err} (run with --debug for details)"
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
