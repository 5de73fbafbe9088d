"""Step handlers of boot health: the message of the day that tells what clp did by itself.

The file is written whole (atomically) and undo puts back what was there before, removing
the file, and the directory clp made for it, when there was none.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from clp_alpm.atomicfile import write_atomically
from clp_alpm.errors import ClpError
from clp_alpm.ops.steps import Handler, StepKind
from clp_alpm.paths import normalize_target_path
from clp_alpm.store.journal import StepRun

MOTD_DIRS = ("/run/motd.d", "/etc/motd.d")  # pam_motd(8) reads both


class MotdStep(Handler):
    def do(self, run: StepRun) -> None:
        path = normalize_target_path(run.args["path"])
        host = Path(self.config.host(path))
        parent = host.parent
        _check_not_a_link(self.config.host(os.path.dirname(os.path.dirname(path))))
        made_dir = not parent.exists()
        previous = None
        if not made_dir:
            _check_not_a_link(parent)
            with contextlib.suppress(FileNotFoundError):
                _check_not_a_link(host)
                previous = host.read_text(encoding="utf-8", errors="replace")
        run.save(previous=previous, made_dir=made_dir)
        try:
            if made_dir:
                parent.mkdir(mode=0o755)
            write_atomically(host, run.args["text"].encode("utf-8"))
        except OSError as err:
            raise ClpError(
                f"{host}: cannot write the message of the day ({err.strerror})"
            ) from None

    def undo(self, run: StepRun) -> None:
        if "made_dir" not in run.data:
            return
        host = Path(self.config.host(normalize_target_path(run.args["path"])))
        previous = run.data["previous"]
        if previous is not None:
            write_atomically(host, previous.encode("utf-8"))
            return
        with contextlib.suppress(FileNotFoundError):
            host.unlink()
        if run.data["made_dir"]:
            with contextlib.suppress(OSError):
                host.parent.rmdir()


def _check_not_a_link(path: os.PathLike[str] | str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise ClpError(f"{path} is a symbolic link: clp writes no message of the day through it")


HANDLERS: dict[StepKind, type[Handler]] = {StepKind.MOTD: MotdStep}
