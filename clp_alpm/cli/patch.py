"""Patch commands: verify, info, apply, list, rollback, new, build."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from clp_alpm.cli import context, listings
from clp_alpm.cli.options import command, options
from clp_alpm.cli.output import Printer, signature_text, size
from clp_alpm.cli.prompts import confirm
from clp_alpm.errors import ClpError, UsageError

if TYPE_CHECKING:
    from clp_alpm.ops.apply import ApplyPlan
    from clp_alpm.ops.rollback import RollbackPlan
    from clp_alpm.store.records import PatchRecord


@command("verify")
@click.argument("patch_file", type=click.Path(dir_okay=False))
def verify_command(patch_file: str) -> None:
    """Check a patch's signature and structure; change nothing."""
    import tempfile

    from clp_alpm.ops.verify import verify_patch

    printer = Printer(options())
    config = context.config_checking_recovery(printer)
    with tempfile.TemporaryDirectory(prefix="clp-verify-") as staging:
        patch = verify_patch(config, Path(patch_file), Path(staging))
        report = patch.to_dict()
    for warning in report["warnings"]:
        printer.warning(warning)
    if printer.json:
        printer.data(report)
        return
    signature = signature_text(report["signature"], Path(patch_file).name)
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
    from clp_alpm.ops.verify import describe_patch_file

    info = describe_patch_file(context.config_checking_recovery(printer), path)
    for warning in info["warnings"]:
        printer.warning(warning)
    if printer.json:
        printer.data(info)
        return
    payload = sum(entry["size"] for entry in info["entries"])
    printer.rows(
        _meta_rows(info["meta"])
        + [
            ("Container", info["container"]),
            ("Scripts", f"{info['scripts']['install']}, {info['scripts']['remove']}"),
            ("Payload", f"{len(info['entries'])} entries, {size(payload)}"),
            ("SHA-256", info["sha256"]),
            ("Signature", signature_text(info["signature"], path.name)),
        ]
    )


def _info_record(printer: Printer, patch_id: str) -> None:
    from clp_alpm.ops.records import describe_record

    with context.session(printer, write=False) as session:
        info = describe_record(session, patch_id)
    if printer.json:
        printer.data(info)
        return
    printer.rows(
        _meta_rows(info["meta"])
        + [
            ("State", listings.state_text(info)),
            ("Applied", info["applied_at"] or "-"),
            ("Rolled Back", info["rolled_back_at"] or "-"),
            ("Failed", info["failed_at"] or "-"),
            ("Installed By", info["origin"]),
            ("Source", info["source"] or info.get("patch_dir") or "-"),
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
    from clp_alpm.ops.apply import apply, plan_apply, restart_services

    printer = Printer(options())
    with context.session(printer) as session:
        plan = plan_apply(session, Path(patch_file))
        _show_apply_plan(printer, plan)
        confirm(printer, "Proceed with apply?")
        record = apply(session, plan)
        restarts = restart_services(session, record)
    for result in restarts:
        say = printer.arrow if result.status == "restarted" else printer.warning
        say(f"{result.unit}: {result.status}: {result.message}")
    if printer.json:
        printer.data(
            {
                "plan": plan.to_dict(),
                "patch": record.to_dict(),
                "restarts": [result.to_dict() for result in restarts],
            }
        )
    else:
        printer.section(f"{record.id} applied")


def _show_apply_plan(printer: Printer, plan: ApplyPlan) -> None:
    meta = plan.meta
    printer.section(f"Patch {meta.name} {meta.version}: {meta.description}")
    signature = plan.patch.to_dict()["signature"]
    rows = [
        ("Signature", signature_text(signature, plan.patch.source.name)),
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
    listings.show_list()


@command("adopt")
def adopt_command() -> None:
    """Record the patches clpctl installed in PatchDir as applied (every command does this
    first, as root)."""
    printer = Printer(options())
    with context.session(printer) as session:
        adopted = [session.state.get_patch(patch_id) for patch_id in session.adopted]
    records = [record for record in adopted if record is not None]
    if printer.json:
        printer.data({"adopted": [record.to_dict() for record in records]})
    elif not records:
        printer.item("nothing to adopt: no patch left by clpctl in PatchDir")


@command("rollback")
@click.argument("patch_id")
@click.option("--force", is_flag=True, help="Overwrite files changed since the patch was applied.")
def rollback_command(patch_id: str, force: bool) -> None:
    """Undo an applied patch (Remove script, then CLP's snapshot) or a package revert."""
    from clp_alpm.formats.meta import names_other_record
    from clp_alpm.ops.revert import find_revert, plan_revert_rollback, rollback_revert
    from clp_alpm.ops.rollback import plan_rollback, rollback

    printer = Printer(options())
    with context.session(printer) as session:
        # R<n> names a revert (no patch may be named so); any other word a patch first, then
        # the newest revert of a package of that name
        patch_first = not names_other_record(patch_id)
        found = patch_first and session.state.get_patch(patch_id) is not None
        revert = None if found else find_revert(session, patch_id)
        if revert is not None:
            steps = plan_revert_rollback(session, revert)  # an error comes before any plan
            printer.section(f"Rolling back revert {revert.id}")
            for package in revert.packages:
                printer.arrow(f"{package['name']} {package['to']} -> {package['from']}")
            confirm(printer, "Proceed with rollback?")
            result = rollback_revert(session, revert, steps)
            if printer.json:
                printer.data({"revert": result.to_dict()})
            else:
                printer.section(f"{revert.id} rolled back")
            return
        plan = plan_rollback(session, patch_id, force=force)
        printer.section(f"Rolling back {patch_id}")
        printer.rows([("Files", "\n".join(plan.record.meta.files) or "(none)")])
        for change in plan.overwritten:
            printer.warning(f"{change} since {patch_id} was applied; --force overwrites it")
        printer.item()
        confirm(printer, "Proceed with rollback?")
        record = rollback(session, plan)
    _report_patch(printer, plan, record, "rolled back")


def _report_patch(printer: Printer, plan: RollbackPlan, record: PatchRecord, done: str) -> None:
    """The outcome of a rollback: the plan and the record as JSON, or one line."""
    if printer.json:
        printer.data({"plan": plan.to_dict(), "patch": record.to_dict()})
    else:
        printer.section(f"{record.id} {done}")


@command("new")
@click.argument("patch_id")
@click.option(
    "-C",
    "--directory",
    type=click.Path(file_okay=False, exists=True),
    default=".",
    help="Existing directory to create the patch directory in.",
)
def new_command(patch_id: str, directory: str) -> None:
    """Write a patch directory with template metadata and scripts."""
    from clp_alpm.formats.template import write_template

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
    from clp_alpm.formats.build import build_patch
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
    printer.item(f"built {out} ({archive.meta.name} {archive.meta.version}, {size(archive.size)})")
    if sign_key:
        printer.item(f"signed {signature}")
    if out.name != f"{archive.meta.name}.clp":
        printer.warning(
            f"the patch is named {archive.meta.name}: call the file "
            f"{archive.meta.name}.clp, as the patch feed does"
        )
