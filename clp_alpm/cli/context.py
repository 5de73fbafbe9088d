"""How a command reaches the library: the configuration its options name, and a session whose
events the printer renders (the front end's half of the handle)."""

from __future__ import annotations

import os

from clp_alpm.cli.options import options
from clp_alpm.cli.output import Printer

TYPE_CHECKING = False  # the listings start without typing (see clp_alpm.cli.entry)
if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from clp_alpm.config import Config
    from clp_alpm.ops.session import Events, Session


def config() -> Config:
    """clp.conf under --sysroot, with the host paths the options give."""
    from clp_alpm.cli.argv import config_arguments
    from clp_alpm.config import load_config

    opts = options()
    settings = load_config(*config_arguments(opts.values))
    if opts.verbose:
        _show_paths(Printer(opts), settings)
    return settings


def _show_paths(printer: Printer, settings: Config) -> None:
    """`-v`, as pacman's: the paths this run uses, before anything else (once a run)."""
    global _shown
    if _shown:
        return
    _shown = True
    from clp_alpm.system.pacmanconf import pacman_settings

    pacman = pacman_settings(settings, settings.pacman_conf, settings.extra_cache_dirs)
    printer.rows([
        ("Root", str(settings.root)),
        ("Conf File", str(settings.config_file)),
        ("Pacman Conf", str(pacman.conf)),
        ("DB Path", str(settings.host_dbpath)),
        ("Cache Dirs", "  ".join(str(d) for d in pacman.cache_dirs)),
        ("Hook Dirs", "  ".join(str(d) for d in pacman.hook_dirs)),
        ("Patch Dir", str(settings.host_patch_dir)),
        ("State Dir", str(settings.host_state_dir)),
        ("Log File", str(settings.host_log_file)),
        ("GPG Dir", str(settings.host_keyring)),
    ], err=printer.json)  # fmt: skip


_shown = False


def events(printer: Printer) -> Events:
    """Every library callback, rendered by `printer`."""
    from clp_alpm.ops.session import Events

    return Events(
        output=printer.output,
        info=printer.arrow,
        warning=printer.warning,
        step=printer.step,
        waiting=printer.waiting,
        counting=printer.counting,
    )


def session(printer: Printer, write: bool = True) -> AbstractContextManager[Session]:
    """A session for this command: writing ones need root, take the lock and recover first."""
    from clp_alpm.ops.session import require_root
    from clp_alpm.ops.startup import open_session

    if write:
        require_root()
    settings = config()
    for warning in settings.warnings:
        printer.warning(warning)
    return open_session(settings, events(printer), write=write)


def config_checking_recovery(printer: Printer) -> Config:
    """For commands that read no state: root still rolls back what a killed clp left."""
    if os.geteuid() != 0:
        return config()
    with session(printer, write=False) as opened:
        return opened.config
