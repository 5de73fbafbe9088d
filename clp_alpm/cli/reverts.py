"""`clp revert`'s work, without click: the click command (`clp_alpm.cli.revert`) and the
command line read by hand (`clp_alpm.cli.entry`, for the plain forms) both run `run_revert`.

A revert from the cache is what a user waits for next to `pacman -U` (bench/revert.py): click
alone costs a start about 20 ms, so a command line of the global options, revert's own
options and its targets (`parse_revert_command`) runs without it; anything else on it (--help,
an unknown or malformed option, no target) goes to click, which parses it and says what is
wrong.
"""

from __future__ import annotations

from clp_alpm.cli import context
from clp_alpm.cli.argv import parse_command_with_options
from clp_alpm.cli.options import options, pacman_options
from clp_alpm.cli.output import Printer
from clp_alpm.cli.prompts import choose_number, confirm
from clp_alpm.errors import UsageError

TYPE_CHECKING = False  # no typing import at run time (see clp_alpm.cli.entry)
if TYPE_CHECKING:
    from typing import Any

    from clp_alpm.ops.revert import Request, VersionList
    from clp_alpm.ops.session import Session
    from clp_alpm.system.pkgsource import Available

# revert's own options: spelling -> (parameter of run_revert, takes a value); the click
# command declares the same (tests/unit/cli/test_revert_argv.py holds them equal)
REVERT_OPTIONS = {
    "--list": ("list_only", False),
    "--allow-upgrade": ("allow_upgrade", False),
    "--until": ("until", True),
    "--no-rollback-copy": ("no_rollback_copy", False),
}


def parse_revert_command(args: list[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The arguments of run_revert and the global options of a plain `clp ... revert ...`
    command line (what follows `--` taken out already); None for any other, which click
    parses (and says what is wrong with)."""
    call = parse_command_with_options(args, "revert", REVERT_OPTIONS)
    if call is None:
        return None
    targets, values, own = call
    if not targets:
        return None  # click says that a target is missing
    arguments: dict[str, Any] = {"list_only": False, "allow_upgrade": False, "until": None,
                                 "no_rollback_copy": False}  # fmt: skip
    return arguments | own | {"targets": tuple(targets)}, values


def run_revert(
    targets: tuple[str, ...],
    list_only: bool,
    allow_upgrade: bool,
    until: str | None,
    no_rollback_copy: bool,
) -> None:
    """`clp revert`: the versions listed (`list_only`), or the packages reverted and pinned."""
    from clp_alpm.ops.revert import plan_revert, revert

    printer = Printer(options())
    requests = _revert_requests(targets, until)
    if list_only:
        _list_only(printer, requests)
        return
    with context.session(printer) as session:
        if len(requests) == 1 and not requests[0].version and not requests[0].given:
            requests = [_ask_version(printer, session, requests[0])]
        plan = plan_revert(
            session,
            requests,
            allow_upgrade=allow_upgrade,
            progress=printer.progress,
            no_rollback_copy=no_rollback_copy,
            pacman_options=pacman_options(),
        )
        printer.section("Packages to revert:")
        for choice, copy in zip(plan.choices, plan.rollback_copies, strict=True):
            printer.arrow(
                f"{choice.name} {choice.installed} -> {choice.available.version} "
                f"from {choice.available.describe()}"
            )
            if copy == "the installed files":
                printer.item(f"   copy of {choice.name} {choice.installed} made from its files")
        if pacman_options():
            printer.item(f"   pacman options: {' '.join(pacman_options())}")
        for warning in plan.warnings:
            printer.warning(warning)
        for lost in plan.no_way_back:
            printer.warning(f"no copy of {lost}")
        if not plan.pins_included:
            from clp_alpm.system.pins import include_line

            printer.warning(
                "pacman.conf does not include clp's pins, so 'pacman -Syu' would undo this "
                f"revert: add '{include_line()}' under [options]"
            )
        if plan.no_way_back:
            printer.warning(
                "without that copy this revert cannot be rolled back (clp rollback will refuse), "
                "and if it is interrupted once pacman has started, it is finished, not undone"
            )
            confirm(printer, "Proceed with a revert that cannot be rolled back?")
        else:
            confirm(printer, "Proceed with revert?")
        record = revert(session, plan)
    if printer.json:
        printer.data({"plan": plan.to_dict(), "revert": record.to_dict()})
    elif plan.no_way_back:
        printer.section(f"{record.id}: reverted and pinned (no rollback copy: no rollback)")
    else:
        printer.section(f"{record.id}: reverted and pinned (undo with 'clp rollback {record.id}')")


def _revert_requests(targets: tuple[str, ...], until: str | None) -> list[Request]:
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


def _list_only(printer: Printer, requests: list[Request]) -> None:
    """`clp revert --list`: what the caches hold at once, then what each archive lists (it
    says which server it is asking while it waits)."""
    from clp_alpm.ops.revert import list_versions

    shown: dict[str, list[Available]] = {}

    def show_cached(listing: VersionList) -> None:
        shown[listing.name] = _show_versions(printer, listing, complete=False)

    with context.session(printer, write=False) as session:
        on_cached = None if printer.json else show_cached
        listings = [list_versions(session, r.name, r.given, on_cached) for r in requests]
    if printer.json:
        printer.data([listing.to_dict() for listing in listings])
        return
    for listing in listings:
        _show_versions(printer, listing, already=shown.get(listing.name, []))


def _show_versions(
    printer: Printer,
    listing: VersionList,
    offer_installed: bool = True,
    complete: bool = True,
    already: list[Available] | None = None,
) -> list[Available]:
    """The versions, numbered, under one line per source (newest first within each); the
    installed one is marked, or left out when it is not on offer. Returns them numbered.

    The header is printed unless `already` holds what an earlier, incomplete call (the
    caches, known at once) showed: then the rest follows, its numbers going on. Only the
    complete listing says "none found" and the servers that could not be read."""
    if already is None:
        printer.section(f"Versions of {listing.name} (installed {listing.installed}):")
    earlier = already or []
    shown = [
        a for a in listing.versions
        if (offer_installed or a.version != listing.installed) and a not in earlier
    ]  # fmt: skip
    groups: dict[str, list[Available]] = {}
    for available in shown:
        groups.setdefault(available.describe(), []).append(available)
    numbered = earlier + [available for group in groups.values() for available in group]
    number = len(earlier)
    for source, group in groups.items():
        printer.item(f" {source}:")
        for available in group:
            number += 1
            mark = " (installed)" if available.version == listing.installed else ""
            printer.item(f" {number:>3}) {available.version}{mark}")
    if complete and not numbered:
        printer.item(f"   none found (searched: {', '.join(listing.searched) or 'nowhere'})")
    for problem in listing.problems if complete else ():
        printer.warning(problem)
    return numbered


def _ask_version(printer: Printer, session: Session, request: Request) -> Request:
    """pacman's numbered question: which version? The installed one is not on offer;
    --noconfirm takes the newest older one."""
    from clp_alpm.ops.revert import Request, list_versions, pick_default

    listing = list_versions(session, request.name, request.given)
    default = pick_default(listing)
    if default is None:
        _show_versions(printer, listing, offer_installed=False)
        raise UsageError(f"no version of {request.name} older than {listing.installed} was found")
    if options().noconfirm:
        return Request(request.name, version=default.version, until=request.until)
    numbered = _show_versions(printer, listing, offer_installed=False)
    answer = choose_number(printer, len(numbered), numbered.index(default) + 1)
    return Request(request.name, version=numbered[answer - 1].version, until=request.until)
