"""The crash matrix's engine: one operation of clp, SIGKILLed at each of its kill points, then
`clp recover`; the system must then be as it was before the operation or as the operation
leaves it, never in between, with pacman's database consistent and no lock left.

A scenario (tests/crash/scenarios.py) prepares a root once, as a template, and names the clp
command of its operation. A dry run on a copy of the template finds the kill points: each
journal step the command runs, killed before it and after it (`CLP_FAULT_KILL=@N:before`,
`@N:after`, read by store/journal.py for tests only), and the scenario's phases: in a patch
script (the stand-in pwsh running a script that sleeps) and in the pacman run (a pacman hook
that sleeps, clp killed meanwhile: pacman must finish, the recovery wait for it). Every kill
point then runs on a fresh copy of the template.

The state compared: every file under the root (type, mode, owner, size, content; directory
sizes left out), minus clp's own state, logs, /tmp and pacman's database directory, plus the
installed packages and versions as `pacman -Q` lists them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from clp_alpm.store.journal import FAULT_ENV
from tests.kits import gpgkit, reaper, rootkit
from tests.kits.clpkit import CLP, static_server
from tests.kits.crashkit import killed, scripts_still_running
from tests.kits.hookkit import HookRoot
from tests.kits.hostilekit import fingerprint

# What is not the system's state: clp's own (the database, snapshots, caches, the keyring
# gpg writes in), the logs, scratch space and the markers of this matrix, pacman's database
# directory (its install dates; the versions are compared through `pacman -Q`).
NOT_COMPARED = ("var/lib/clp", "var/cache/clp", "var/log", "etc/pacman.d/gnupg", "tmp", "proc",
                "var/lib/pacman")  # fmt: skip
PATCH_DIR = "opt/CLP"
ARM = "tmp/crash-arm"  # present: the next script or pacman hook of the matrix stops...
HERE = "tmp/crash-here"  # ...and says so with this file
# A line for a patch script: stops (sleeping) when the matrix armed it.
SCRIPT_PAUSE = (
    "if [ -e /tmp/crash-arm ]; then rm /tmp/crash-arm; touch /tmp/crash-here; sleep 600; fi\n"
)
PACMAN_PAUSE_SECONDS = 3  # pacman's hook sleeps this long: the recovery must wait for it
PACMAN_HOOK = (
    "[Trigger]\nOperation = Install\nOperation = Upgrade\nOperation = Remove\nType = Package\n"
    "Target = *\n\n[Action]\nDescription = the crash matrix's pause\nWhen = PostTransaction\n"
    "Exec = /bin/sh -c 'if [ -e /tmp/crash-arm ]; then rm /tmp/crash-arm; "
    f"touch /tmp/crash-here; sleep {PACMAN_PAUSE_SECONDS}; fi'\n"
)

State = dict[str, object]


@dataclass
class Workshop:
    """What a scenario prepares its template with: the root, the keyring, a directory
    outside the root for patches and feeds, and web servers that live as long as the run."""

    root: HookRoot
    keyring: gpgkit.Keyring
    work: Path
    stack: contextlib.ExitStack

    def serve(self, directory: Path) -> str:
        return self.stack.enter_context(static_server(directory))

    def clp(self, *args: str) -> None:
        result = self.root.clp(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)

    def pacman(self, *args: str | Path) -> None:
        result = self.root.pacman(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)


@dataclass(frozen=True)
class Scenario:
    """One row of the matrix. `prepare` builds the root (as the system is before the
    operation) and returns the arguments of the clp command that runs the operation;
    `phases` are the kill points besides the journal steps: "script", "pacman"."""

    name: str
    prepare: Callable[[Workshop], list[str]]
    phases: tuple[str, ...] = ()
    changes_root: bool = True  # False: only clp's own state changes (an adoption)
    env: tuple[tuple[str, str], ...] = ()  # the operation's environment (CLP_BOOT_ID: a boot)


@dataclass(frozen=True)
class KillPoint:
    label: str  # "step 3 (install-script) before", "in a script", "in pacman"
    fault: str | None = None  # CLP_FAULT_KILL's value, for a journal step
    phase: str | None = None
    recovery_fault: str | None = None  # and the first recovery killed there too


@dataclass
class Outcome:
    point: KillPoint
    problems: list[str] = field(default_factory=list)
    ended: str = ""  # "before" or "after": the state the recovery left

    @property
    def ok(self) -> bool:
        return not self.problems


def system_state(hroot: HookRoot) -> State:
    state: State = {}
    for name, entry in fingerprint(hroot.root, NOT_COMPARED).items():
        mode = entry[0]
        assert isinstance(mode, int)
        state[name] = entry[:3] + (None,) + entry[4:] if (mode & 0o170000) == 0o040000 else entry
    if state.get(PATCH_DIR, (0,))[0] & 0o170000 == 0o040000:  # type: ignore[index]
        del state[PATCH_DIR]  # made by the first clp that runs; its contents count
    listing = hroot.pacman("-Q")
    state["pacman -Q"] = listing.stdout
    return state


def describe_difference(a: State, b: State) -> list[str]:
    return sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))


class Matrix:
    """One scenario's template, its dry run and its kill points."""

    def __init__(self, scenario: Scenario, keyring: gpgkit.Keyring, work: Path) -> None:
        self.scenario = scenario
        self.keyring = keyring
        self.work = work
        self.stack = contextlib.ExitStack()
        self.runs = 0
        self.argv: list[str] = []
        self.before: State = {}
        self.after: State = {}
        self.steps: list[str] = []

    def __enter__(self) -> Matrix:
        template = self.work / "template" / "root"
        rootkit.make_sandbox_root(template)
        gpgkit.copy_ring(self.keyring, template / "etc/pacman.d/gnupg")
        hroot = HookRoot(template)
        (template / "usr/share/libalpm/hooks/50-crash-pause.hook").write_text(PACMAN_HOOK)
        workshop = Workshop(hroot, self.keyring, self.work, self.stack)
        self.argv = self.scenario.prepare(workshop)
        hroot.run("true")  # the mount points of the namespace are made once, here
        gpgkit.kill_agent(template / "etc/pacman.d/gnupg")
        self._dry_run()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def fresh(self) -> HookRoot:
        """A copy of the template, with everything as it is (owners, modes, devices)."""
        self.runs += 1
        top = self.work / f"run-{self.runs}"
        top.mkdir()
        subprocess.run(["cp", "-a", str(self.work / "template" / "root"), str(top / "root")],
                       check=True, timeout=120)  # fmt: skip
        for socket in (top / "root/etc/pacman.d/gnupg").glob("S.*"):
            socket.unlink()
        return HookRoot(top / "root")

    def discard(self, hroot: HookRoot) -> None:
        gpgkit.kill_agent(hroot.root / "etc/pacman.d/gnupg")
        shutil.rmtree(hroot.root.parent, ignore_errors=True)

    def _dry_run(self) -> None:
        hroot = self.fresh()
        self.before = system_state(hroot)
        known = _last_operation(hroot)
        result = hroot.clp(*self.argv, env=dict(self.scenario.env))
        assert result.returncode == 0, (self.argv, result.stdout, result.stderr)
        self.after = system_state(hroot)
        if self.scenario.changes_root:
            assert self.after != self.before, f"{self.scenario.name}: nothing changed"
        self.steps = _steps_since(hroot, known)
        self.discard(hroot)

    def points(self) -> list[KillPoint]:
        found = []
        for number, kind in enumerate(self.steps, 1):
            for when in ("before", "after"):
                label = f"step {number} ({kind}) {when}"
                found.append(KillPoint(label, fault=f"@{number}:{when}"))
        found += [KillPoint(f"in {phase}", phase=phase) for phase in self.scenario.phases]
        # the recovery of a kill before the last step undoes every earlier one: killed at
        # each of those undos in turn, the next recovery must still end before or after
        last = len(self.steps)
        for number in range(1, last + 1):
            label = f"step {last} before, then its recovery at undo {number}"
            undo = f"@{number}:undo"
            found.append(KillPoint(label, fault=f"@{last}:before", recovery_fault=undo))
        return found

    def ci_points(self) -> list[KillPoint]:
        """The CI-sized subset: a step in the middle once done, the last step before it
        starts, and every phase."""
        every = [point for point in self.points() if point.fault and not point.recovery_fault]
        chosen = {len(every) // 2 + 1, len(every) - 2} if every else set()
        picked = [every[index] for index in sorted(chosen) if 0 <= index < len(every)]
        return picked + [point for point in self.points() if point.phase]

    def run(self, point: KillPoint) -> Outcome:
        outcome = Outcome(point)
        hroot = self.fresh()
        try:
            self._kill(hroot, point, outcome)
            if outcome.ok:
                self._check_recovery(hroot, outcome)
        finally:
            self.discard(hroot)
        return outcome

    def _kill(self, hroot: HookRoot, point: KillPoint, outcome: Outcome) -> None:
        if point.fault is not None:
            result = hroot.clp(*self.argv, env=dict(self.scenario.env) | {FAULT_ENV: point.fault})
            if not killed(result):
                outcome.problems.append(f"not killed (exit {result.returncode}): "
                                        f"{result.stderr.strip()[-300:]}")  # fmt: skip
            return
        (hroot.root / ARM).touch()
        process = hroot.start("env", *(f"{k}={v}" for k, v in self.scenario.env), CLP,
                              "--root", hroot.root, *self.argv)  # fmt: skip
        here = hroot.root / HERE
        deadline = time.monotonic() + 60
        while not here.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                outcome.problems.append(f"never reached {point.phase} (exit {process.returncode})")
                return
            time.sleep(0.02)
        if point.phase == "pacman":
            outcome.problems += _shared_fate(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        here.unlink()

    def _check_recovery(self, hroot: HookRoot, outcome: Outcome) -> None:
        problems = outcome.problems
        if outcome.point.recovery_fault is not None:
            first = hroot.clp("recover", env={FAULT_ENV: outcome.point.recovery_fault})
            if killed(first):
                outcome.ended = "recovery killed, then "
            elif first.returncode != 0:  # not killed: a roll-forward, which undoes nothing
                problems.append(f"the recovery to kill: exit {first.returncode}: {first.stderr}")
        recovered = hroot.clp("recover")
        if recovered.returncode != 0:
            problems.append(f"clp recover: exit {recovered.returncode}: {recovered.stderr.strip()}")
        if "Traceback" in recovered.stderr or "internal error" in recovered.stderr:
            problems.append(f"clp recover: {recovered.stderr.strip()}")
        if outcome.point.phase == "pacman" and "waiting for pacman" not in recovered.stderr:
            problems.append("the recovery did not wait for the pacman clp had started")
        now = system_state(hroot)
        if now == self.before:
            outcome.ended += "before"
        elif now == self.after:
            outcome.ended += "after"
        else:
            from_before = ", ".join(describe_difference(self.before, now))
            from_after = ", ".join(describe_difference(self.after, now))
            problems.append(f"between: differs from before in {from_before}; after in {from_after}")
        check = hroot.pacman("-Dk")
        if check.returncode != 0:
            problems.append(f"pacman -Dk: {(check.stdout + check.stderr).strip()}")
        if (hroot.root / "var/lib/pacman/db.lck").exists():
            problems.append("db.lck left behind")
        if scripts_still_running(hroot.root):
            problems.append("processes still running in the root")


def _shared_fate(clp_pid: int) -> list[str]:
    """What the pacman clp runs shares with clp, that would end it with clp: a session (a
    hang-up, a kill of the process group), a pipe (SIGPIPE once clp is gone). That it has no
    death signal is what the kill that follows shows: pacman finishes."""
    pacmans = [pid for pid in reaper.descendants(clp_pid) if _comm(pid) == "pacman"]
    if not pacmans:
        return ["no pacman below clp while its hook ran"]
    problems = []
    for pid in pacmans:
        if os.getsid(pid) == os.getsid(clp_pid):
            problems.append(f"pacman (pid {pid}) is in clp's session")
        for fd in (0, 1, 2):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("pipe:"):
                problems.append(f"pacman (pid {pid}) has a pipe as its fd {fd}")
    return problems


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _database(hroot: HookRoot) -> Path:
    return hroot.root / "var/lib/clp/clp.db"


def _last_operation(hroot: HookRoot) -> int:
    if not _database(hroot).exists():
        return 0
    with contextlib.closing(sqlite3.connect(_database(hroot))) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM operations").fetchone()[0])


def _steps_since(hroot: HookRoot, known: int) -> list[str]:
    """The kinds of the journal steps the operations after `known` ran, in the order run."""
    with contextlib.closing(sqlite3.connect(_database(hroot))) as conn:
        rows = conn.execute(
            "SELECT kind FROM journal WHERE op_id > ? ORDER BY op_id, seq", (known,)
        ).fetchall()
    return [kind for (kind,) in rows]


@contextlib.contextmanager
def matrix(scenario: Scenario, keyring: gpgkit.Keyring, work: Path) -> Iterator[Matrix]:
    with Matrix(scenario, keyring, work) as prepared:
        yield prepared
