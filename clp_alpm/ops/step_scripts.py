"""Step handlers that run a patch's programs: the Install and Remove scripts, its health check.

Each run gets a fresh marker in its environment, journaled before it starts: recovery finds
(and stops) every process a killed clp left running by that marker, before touching files.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from clp_alpm.config import Config
from clp_alpm.errors import ClpError
from clp_alpm.ops.session import LOG_TAG
from clp_alpm.ops.step_files import earlier_snapshot, restore_exactly
from clp_alpm.ops.steps import Handler, StepKind
from clp_alpm.store.journal import StepRun
from clp_alpm.system import scripts


class ScriptStep(Handler):
    """Run a patch script; undo kills what may still run and puts the files back."""

    restore_from = StepKind.SNAPSHOT_BEFORE

    def do(self, run: StepRun) -> None:
        script = Path(run.args["script"]).name
        result = self._run(run, script, run.args["action"], "script")
        if not result.ok:
            raise ClpError(f"{script} {result.describe()}")

    def _run(self, run: StepRun, script: str, action: str, key: str) -> scripts.ProcessResult:
        """Run one of the patch's scripts. Its marker is journaled before it starts, so that
        recovery can find it and all it spawned if clp is killed meanwhile."""
        args = run.args
        if self.session.recovering:  # the command the user ran is not what waits here
            self.session.events.warning(
                f"running {script} again for the recovery "
                f"(it may take up to {self.config.script_timeout} s)"
            )
        result = scripts.run_script(
            self.config.interpreter,
            f"{args['patch_dir']}/{script}",
            root=self.config.root,
            cwd=args["patch_dir"],
            env=marked_environment(self.config, run, action, f"{key}_marker"),
            timeout=self.config.script_timeout,
            on_output=self.session.events.output,
            log=self.session.log,
            log_tag=f"{LOG_TAG}:{args['patch_id']}",
            on_start=lambda pid: run.save(**{f"{key}_started": True}),
        )
        self.session.check_own_paths(script)  # it ran as root in the root: links swapped in?
        return result

    def undo(self, run: StepRun) -> None:
        kill_leftover_scripts(run)
        snapshot = earlier_snapshot(self.session, run, self.restore_from)
        try:
            if run.data.get("script_started"):  # give the patch's own Remove script a go
                self._run_remove_script(run)
        except (ClpError, OSError) as err:
            self.session.events.warning(f"{run.args['remove_script']} could not run: {err}")
        finally:
            if snapshot is not None:
                restore_exactly(self.session, snapshot)

    def _run_remove_script(self, run: StepRun) -> None:
        remove_name = run.args["remove_script"]
        self.session.events.info(f"running {remove_name}")
        result = self._run(run, remove_name, "remove", "remove")
        if not result.ok:
            self.session.events.warning(
                f"{remove_name} {result.describe()}; restoring the files from CLP's snapshot"
            )


class RemoveScriptStep(ScriptStep):
    """Rollback's Remove script: its failure is a warning, CLP's snapshot is the authority."""

    restore_from = StepKind.SNAPSHOT_CURRENT

    def do(self, run: StepRun) -> None:
        kill_leftover_scripts(run)  # when recovery runs it again after a crash
        try:
            super().do(run)
        except ClpError as err:
            if run.args.get("strict"):  # no snapshot of before the patch to fall back on
                raise
            self.session.events.warning(f"{err}; restoring the files from CLP's snapshot")

    def undo(self, run: StepRun) -> None:
        kill_leftover_scripts(run)
        snapshot = earlier_snapshot(self.session, run, self.restore_from)
        if snapshot is not None:
            restore_exactly(self.session, snapshot)


class HealthCheckStep(Handler):
    def do(self, run: StepRun) -> None:
        args = run.args
        result = scripts.run_health_check(
            args["command"],
            root=self.config.root,
            env=marked_environment(self.config, run, "health-check", "script_marker"),
            timeout=args["timeout"],
            on_output=self.session.events.output,
            log=self.session.log,
            log_tag=f"{LOG_TAG}:{args['patch_id']}",
        )
        self.session.check_own_paths("the health check")
        if not result.ok:
            raise ClpError(f"health check '{args['command']}' {result.describe()}")

    def undo(self, run: StepRun) -> None:
        kill_leftover_scripts(run)


HANDLERS: dict[StepKind, type[Handler]] = {
    StepKind.INSTALL_SCRIPT: ScriptStep,
    StepKind.REMOVE_SCRIPT: RemoveScriptStep,
    StepKind.HEALTH_CHECK: HealthCheckStep,
}


def marked_environment(config: Config, run: StepRun, action: str, key: str) -> dict[str, str]:
    """The script environment plus a fresh marker, journaled (under `key`) before the start."""
    marker = uuid.uuid4().hex
    run.save(**{key: marker})
    return scripts.script_environment(
        run.args["patch_id"],
        run.args["patch_dir"],
        config.root,
        action,
        {scripts.RUN_MARKER_ENV: marker},
    )


def kill_leftover_scripts(run: StepRun) -> None:
    """Scripts a killed clp started may still run: stop them before touching their files."""
    for key in ("script_marker", "remove_marker"):
        if key in run.data:
            scripts.kill_marked_processes(run.data[key])
