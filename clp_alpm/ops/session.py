"""The handle of one clp command: configuration, state, snapshot store, log, lock and events.

As `alpm_handle_t` is to libalpm, a `Session` is what every operation is given. It is plain:
opening one (taking the lock, recovering, re-applying what is pending) and closing one
(garbage collection) are `clp_alpm.ops.startup.open_session`'s duties, one layer up.
"""

from __future__ import annotations

import os

from clp_alpm.config import Config
from clp_alpm.errors import NotRootError, PathEscapeError
from clp_alpm.logfile import LogFile
from clp_alpm.store.state import StateDB

TYPE_CHECKING = False  # as in store/records.py: no typing import at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from dataclasses import dataclass

    from clp_alpm.store.lock import StateLock
    from clp_alpm.store.snapshots import SnapshotStore
    from clp_alpm.system.pacmanconf import PacmanSettings
else:  # the listings start without dataclasses (inspect, ast), see clp_alpm/plaindata.py
    from clp_alpm.plaindata import dataclass

LOG_TAG = "CLP"


def _ignore(_: str) -> None:
    return None


def _ignore_step(number: int, total: int, description: str) -> None:
    return None


def _ignore_count(what: str, done: int, total: int) -> None:
    return None


@dataclass
class Events:
    """How the library tells the front end what happens. Every callback defaults to silence."""

    output: Callable[[str], None] = _ignore  # a line a script printed
    info: Callable[[str], None] = _ignore  # a step begins
    warning: Callable[[str], None] = _ignore
    step: Callable[[int, int, str], None] = _ignore_step
    waiting: Callable[[str], None] = _ignore  # the lock is held by someone else, for now
    # a long snapshot: what, files done, files in all
    counting: Callable[[str, int, int], None] = _ignore_count


class Session:
    """Everything one clp command needs. `lock` is held for a writing session, None else."""

    def __init__(
        self, config: Config, events: Events, state: StateDB, lock: StateLock | None
    ) -> None:
        self.config = config
        self.events = events
        self.state = state
        self.lock = lock
        self.log = LogFile(config.host_log_file, lambda: config.host_log_file)
        self.own_paths = self._resolve_own_paths()
        self._store: SnapshotStore | None = None
        self.recovered: list[str] = []  # what recovery did when the session opened
        self.adopted: list[str] = []  # the patches clpctl left, adopted when it opened
        self.recovering = False  # inside recovery: a script that runs is news, even in --json
        self._pacman: PacmanSettings | None = None

    def _resolve_own_paths(self, store_only: bool = False) -> dict[str, str]:
        store = {
            "StateDir": self.config.host_state_dir,
            "the snapshot store": self.config.host_snapshot_dir,
        }
        return store if store_only else self.config.own_paths() | store

    def check_own_paths(self, after: str = "", store_only: bool = False) -> None:
        """PathEscapeError unless clp's own paths (with `store_only`, StateDir and the store,
        which snapshots and restores go through) still resolve where they did when the session
        opened: a patch's script (`after`) may have swapped a link in on the way. Checked after
        every script, and before the store is written or read."""
        since = f" since {after} ran" if after else ""
        for setting, now in self._resolve_own_paths(store_only).items():
            then = self.own_paths[setting]
            if now != then:
                raise PathEscapeError(
                    f"{setting} resolves to {now}{since}, not to {then}: "
                    "a link was put on the way; refusing to use it"
                )

    @property
    def store(self) -> SnapshotStore:
        """The snapshot store (opened on first use: a listing never needs it)."""
        from clp_alpm.store.snapshots import SnapshotStore

        if self._store is None:
            self._store = SnapshotStore(self.config.host_snapshot_dir, self.config.own_paths())
        return self._store

    @property
    def locked(self) -> bool:
        return self.lock is not None

    def incoming(self) -> str:
        """A fresh private dir under StateDir for staged patch copies (emptied at the end)."""
        base = self.config.host_in_state_dir("incoming")
        os.makedirs(base, 0o700, exist_ok=True)
        import tempfile  # (and random with it) not for a listing

        return tempfile.mkdtemp(dir=base)

    def pacman(self) -> PacmanSettings:
        """pacman's settings for this root (read once per session)."""
        from clp_alpm.system.pacmanconf import pacman_settings

        if self._pacman is None:
            self._pacman = pacman_settings(
                self.config, self.config.pacman_conf, self.config.extra_cache_dirs
            )
        return self._pacman

    def reopen_state(self, readonly: bool) -> None:
        """Swap the state connection (a read-only session that recovers needs a writable one)."""
        self.state.close()
        self.state = StateDB(self.config.host_state_dir, readonly=readonly)

    def close(self) -> None:
        if self.lock is not None:
            try:  # by name: only while StateDir is still where it was
                self.check_own_paths(store_only=True)
                incoming = self.config.host_in_state_dir("incoming")
                if os.path.lexists(incoming):  # shutil (and bz2, lzma) only then
                    import shutil

                    shutil.rmtree(incoming, ignore_errors=True)
            except PathEscapeError:
                pass
        self.state.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError("you cannot perform this operation unless you are root.")
