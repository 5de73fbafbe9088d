"""A sandbox root where real pacman runs clp's real hook files, chrooted.

libalpm runs hooks chrooted into the root, so `/usr/bin/clp` must work in there: every command
runs in a private mount namespace (`unshare --mount --propagation private`) in which the
host's libraries, this Python and this checkout are bind-mounted read-only at their own paths
inside the root. `R/usr/bin/clp` is clp's launcher as the package writes it (-S, no site for
`clp hook`: clp_alpm/cli/launcher.py), naming the venv's Python, this checkout and the venv's
site-packages. The namespace, and with it every mount, ends with the command.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import clp_alpm
from clp_alpm.cli import launcher
from tests.kits.paths import REPO
from tests.kits.pkgkit import CACHE

HOOKS = REPO / "hooks"
CLP = Path(sys.executable).parent / "clp"


def _read_only_dirs() -> list[Path]:
    """What Python and clp need inside the root, outermost first, without nested repeats. A
    distribution's Python (prefix /usr, as the package runs on) brings its library only: the
    root's own /usr stays, and the interpreter is bound as a file (_interpreter_chain)."""
    wanted = [Path("/usr/lib"), Path("/lib64"), Path(sysconfig.get_paths()["stdlib"]),
              Path(clp_alpm.__file__).resolve().parent.parent]  # fmt: skip
    wanted += [prefix for prefix in {Path(sys.base_prefix), Path(sys.prefix)}
               if prefix.resolve() not in (Path("/usr"), Path("/"))]  # fmt: skip
    result: list[Path] = []
    for path in sorted({p.resolve() for p in wanted if p.exists()}, key=lambda p: len(p.parts)):
        if not any(path == kept or kept in path.parents for kept in result):
            result.append(path)
    return result


def _interpreter_chain() -> tuple[list[tuple[str, str]], str | None]:
    """The links from this Python's executable to the interpreter that lie outside the
    mounted directories (a venv's bin/python -> /usr/bin/python3 -> python3.11), and that
    interpreter when it lies outside them too: made in the root as links and a file bind."""
    mounted = _read_only_dirs()

    def outside(path: str) -> bool:
        return not any(Path(path) == d or d in Path(path).parents for d in mounted)

    links: list[tuple[str, str]] = []
    path = sys.executable
    for _hop in range(40):
        if not os.path.islink(path):
            break
        target = os.readlink(path)
        if outside(path):
            links.append((path, target))
        path = os.path.join(os.path.dirname(path), target)
    return links, (path if outside(path) else None)


def _site_dirs() -> list[str]:
    """Where clp_alpm and what it imports live, for the launcher's hook path."""
    return [str(Path(clp_alpm.__file__).resolve().parent.parent), *site.getsitepackages()]


class HookRoot:
    """A root with clp's hook files installed, and helpers that run commands against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        hook_dir = root / "usr/share/libalpm/hooks"
        hook_dir.mkdir(parents=True, exist_ok=True)
        for hook in sorted(HOOKS.glob("*.hook")):
            shutil.copy2(hook, hook_dir / hook.name)
        # /usr/bin/clp as the package makes it (clp_alpm/cli/launcher.py), for this checkout
        # and this venv's Python
        launcher.write(str(root / "usr/bin/clp"), sys.executable, _site_dirs())
        links, interpreter = _interpreter_chain()
        for link, target in links:
            inside = root / link.lstrip("/")
            inside.parent.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(inside):
                inside.symlink_to(target)
        if interpreter is not None:  # a mount point for the file bind (see _mounts)
            inside = root / interpreter.lstrip("/")
            inside.parent.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(inside):
                inside.touch(mode=0o755)
        for top in ("lib", "lib64"):  # as on the host: links into /usr (merged /usr) or dirs
            host = Path("/") / top
            if host.is_symlink() and not os.path.lexists(root / top):
                (root / top).symlink_to(os.readlink(host))
        (root / CACHE).mkdir(parents=True, exist_ok=True)
        (root / "proc").mkdir(exist_ok=True)
        if not (root / "etc/pacman.conf").exists():
            (root / "etc/pacman.conf").write_text(
                "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n"
            )

    def _mounts(self) -> list[str]:
        lines = []
        for directory in _read_only_dirs():
            target = self.root / str(directory).lstrip("/")
            if target.is_symlink():
                continue
            target.mkdir(parents=True, exist_ok=True)
            quoted_source, quoted_target = shlex.quote(str(directory)), shlex.quote(str(target))
            lines.append(f"mount --bind {quoted_source} {quoted_target}")
            lines.append(f"mount -o remount,bind,ro {quoted_target}")
        interpreter = _interpreter_chain()[1]
        if interpreter is not None:
            quoted_source = shlex.quote(interpreter)
            quoted_target = shlex.quote(str(self.root / interpreter.lstrip("/")))
            lines.append(f"mount --bind {quoted_source} {quoted_target}")
            lines.append(f"mount -o remount,bind,ro {quoted_target}")
        lines.append(f"mount -t proc proc {shlex.quote(str(self.root / 'proc'))}")
        return lines

    def run(
        self,
        *command: str | Path,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` on the host, in a namespace where the root's hooks can run."""
        return subprocess.run(
            self._namespaced(command),
            capture_output=True,
            text=True,
            env=dict(os.environ) | (env or {}),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            timeout=timeout,
        )

    def start(self, *command: str | Path) -> subprocess.Popen[str]:
        """Start `command` as `run` does, without waiting: its pid is the command's own (the
        namespace's shell execs it), its output goes to files of the root's parent."""
        out = (self.root.parent / "started.out").open("w")
        with out:
            return subprocess.Popen(self._namespaced(command), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, text=True)  # fmt: skip

    def _namespaced(self, command: tuple[str | Path, ...]) -> list[str]:
        script = "set -e\n" + "\n".join(self._mounts()) + "\nexec " + shlex.join(map(str, command))
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    def pacman(self, *args: str | Path, env: dict[str, str] | None = None):
        return self.run(*self.pacman_command(*args), env=env)

    def pacman_command(self, *args: str | Path) -> list[str]:
        """Real pacman on the root. pacman globs Include on the host, so it reads a copy of the
        root's pacman.conf whose Include lines point into the root."""
        root = self.root
        host_conf = root.parent / "pacman.host.conf"
        host_conf.write_text((root / "etc/pacman.conf").read_text().replace(
            "Include = /etc/", f"Include = {root}/etc/"))  # fmt: skip
        return [str(arg) for arg in (
            "pacman", "--noconfirm", "--root", root, "--dbpath", root / "var/lib/pacman",
            "--config", host_conf, "--cachedir", root / CACHE, *args)]  # fmt: skip

    def clp(self, *args: str | Path, env: dict[str, str] | None = None, input: str | None = None):
        return self.run(CLP, "--root", self.root, *args, env=env, input=input)

    def installed(self, name: str) -> str | None:
        result = self.pacman("-Q", name)
        return result.stdout.split()[1] if result.returncode == 0 else None


def install(hroot: HookRoot, *paths: Path) -> str:
    """`pacman -U paths` in the root, which must succeed without a word of clp's hooks."""
    result = hroot.pacman("-U", *paths)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: clp" not in result.stdout and "error" not in result.stderr, result.stdout
    return result.stdout


def transactions(hroot: HookRoot) -> list[dict]:
    """`clp transactions --json` in the root."""
    result = hroot.clp("transactions", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
