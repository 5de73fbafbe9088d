"""How a command reaches the library: the configuration its options name, and a session whose
events the printer renders (the front end's half of the handle)."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from clp_alpm.cli.options import options
from clp_alpm.cli.output import Printer

if TYPE_CHECKING:
    from clp_alpm.config import Config
    from clp_alpm.ops.session import Events, Session


def config() -> Config:
    """clp.conf under --root, with the host paths the options give."""
    from clp_alpm.config import load_config

    opts = options()
    overrides = {
        "dbpath_override": Path(opts.dbpath).absolute() if opts.dbpath else None,
        "pacman_conf": Path(opts.pacman_conf).absolute() if opts.pacman_conf else None,
        "extra_cache_dirs": tuple(Path(d).absolute() for d in opts.cachedir) or None,
    }
    return load_config(opts.root, opts.config, overrides)


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
