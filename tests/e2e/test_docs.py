"""The man pages and shell completions: generated from the code, committed, valid, working.

tools/gen_docs.py writes them from the click commands, config.py, pkginfo.xsd and scripts.py.
These tests check the committed files against the code they describe (read here directly, not
through the generator), lint the roff, and run the completions in real shells.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from lxml import etree

from clp_alpm import __version__
from clp_alpm import config as config_module
from clp_alpm.cli import exits
from clp_alpm.cli import main as cli_module
from clp_alpm.formats.pkginfo import parse_meta
from clp_alpm.system import scripts
from tests.kits.paths import REPO
from tests.kits.shellkit import bash_complete, fish_complete, zsh_complete

GENERATOR = REPO / "tools" / "gen_docs.py"
MAN = REPO / "man"
COMPLETIONS = REPO / "completions"
PAGES = ("clp.8", "clp.conf.5", "clp-patch.5")


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_docs", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen_docs = load_generator()


# -- reading the pages -----------------------------------------------------------------------

_ROFF_ESCAPES = {"\\-": "-", "\\e": "\\", "\\&": "", "\\(aq": "'", "\\(ga": "`", "\\(dq": '"'}


def unroff(line: str) -> str:
    """A roff line as text: fonts dropped, escapes resolved."""
    line = re.sub(r"\\f[BIRP]", "", line)
    return re.sub(r"\\-|\\e|\\&|\\\(aq|\\\(ga|\\\(dq", lambda m: _ROFF_ESCAPES[m.group(0)], line)


def page_source(name: str) -> str:
    return (MAN / name).read_text(encoding="utf-8")


def sections(source: str, macro: str = "SH") -> dict[str, str]:
    """The text of each .SH (or .SS) section of a page, by title, unescaped."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in source.splitlines():
        if line.startswith(f".{macro} "):
            current = found.setdefault(line[4:].strip('"'), [])
        elif line.startswith(".SH "):  # the end of the last .SS
            current = None
        elif current is not None:
            current.append(unroff(line))
    return {title: "\n".join(lines) for title, lines in found.items()}


def examples(source: str, section: str) -> list[str]:
    """The .EX/.EE blocks of one .SH section, unescaped."""
    title = f'"{section}"' if " " in section else section
    text = source.split(f".SH {title}\n", 1)[1].split("\n.SH ", 1)[0]
    return [
        "\n".join(unroff(line) for line in block.split("\n.EE", 1)[0].splitlines()) + "\n"
        for block in text.split(".EX\n")[1:]
    ]


# -- the click tree, read here without the generator ----------------------------------------


def root_group() -> click.Group:
    return cli_module.cli


def root_context() -> click.Context:
    group = root_group()
    return click.Context(group, info_name="clp", **group.context_settings)


def names_of(params) -> set[str]:
    return {n for p in params if isinstance(p, click.Option) for n in (*p.opts, *p.secondary_opts)}


def root_option_names() -> set[str]:
    ctx = root_context()
    return names_of(p for p in root_group().get_params(ctx) if not getattr(p, "hidden", False))


def commands(hidden: bool = False) -> Iterator[tuple[str, click.Command, click.Context]]:
    group, ctx = root_group(), root_context()
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command.hidden == hidden:
            yield name, command, click.Context(command, info_name=name, parent=ctx)


def own_options(command: click.Command, ctx: click.Context) -> set[str]:
    """The visible options of a command that are its own (not the global ones)."""
    visible = names_of(p for p in command.get_params(ctx) if not getattr(p, "hidden", False))
    return visible - root_option_names()


def accepted_options(command: click.Command, ctx: click.Context) -> set[str]:
    """What completion offers after the command: its own options and the global ones."""
    params = command.get_params(ctx)
    accepted = names_of(params)
    return own_options(command, ctx) | (accepted & root_option_names())


VISIBLE = [name for name, _, _ in commands()]
HIDDEN = [name for name, _, _ in commands(hidden=True)]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A directory with a patch file, another file and a subdirectory."""
    (tmp_path / "CLPR261125.clp").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "work").mkdir()
    return tmp_path


missing = {tool: shutil.which(tool) is None for tool in ("zsh", "fish", "mandoc", "groff", "man")}


def skip_without(tool: str, package: str):
    return pytest.mark.skipif(missing[tool], reason=f"{tool} not installed (Debian: {package})")


# -- generated == committed ------------------------------------------------------------------


def test_committed_files_are_what_the_generator_writes() -> None:
    run = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, f"stale generated files, run tools/gen_docs.py:\n{run.stderr}"


def test_check_names_each_file_that_differs(tmp_path: Path) -> None:
    write = subprocess.run(
        [sys.executable, str(GENERATOR), "--dir", str(tmp_path)], capture_output=True, text=True
    )
    assert write.returncode == 0, write.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == (
        sorted(gen_docs.OUTPUTS)
    )
    (tmp_path / "man/clp.8").write_text(page_source("clp.8").replace("rollback", "rollbak"))
    (tmp_path / "completions/_clp").unlink()
    check = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1
    named = {line.split(":")[0] for line in check.stderr.splitlines() if "differs" in line}
    assert named == {"man/clp.8", "completions/_clp"}


def test_pages_carry_the_version_and_the_fixed_date() -> None:
    for name in PAGES:
        th = next(line for line in page_source(name).splitlines() if line.startswith(".TH "))
        assert f'"clp {__version__}"' in th
        assert gen_docs.MANUAL_DATE in th


# -- clp(8) ----------------------------------------------------------------------------------


def test_clp_8_documents_every_visible_command_with_its_options() -> None:
    source = page_source("clp.8")
    commands_section = sections(source.split(".SH COMMANDS", 1)[1].split("\n.SH ", 1)[0], "SS")
    assert sorted(commands_section) == sorted(f"clp {name}" for name in VISIBLE)
    synopsis = sections(source)["SYNOPSIS"]
    for name, command, ctx in commands():
        text = commands_section[f"clp {name}"]
        assert f"clp {name}" in synopsis
        assert " ".join(command.help.split()).split(".")[0] in " ".join(text.split())
        for option in own_options(command, ctx):
            assert re.search(rf"(^|[ ,]){re.escape(option)}\b", text, re.M), f"{name} {option}"
        for argument in (p for p in command.params if isinstance(p, click.Argument)):
            assert (argument.metavar or argument.name.upper()) in text


def test_clp_8_documents_the_global_options_once() -> None:
    source = page_source("clp.8")
    text = sections(source)["GLOBAL OPTIONS"]
    for option in root_option_names():
        assert re.search(rf"(^|[ ,]){re.escape(option)}\b", text, re.M), option
    commands_text = source.split(".SH COMMANDS", 1)[1].split("\n.SH ", 1)[0].splitlines()
    headings = [
        unroff(commands_text[i + 1]) for i, line in enumerate(commands_text) if line == ".TP"
    ]
    assert headings  # the commands' own options
    for heading in headings:  # the global ones are not repeated under every command
        assert not root_option_names() & set(re.split(r"[ ,]+", heading)), heading


def test_hidden_commands_are_left_out_of_docs_and_completions() -> None:
    if not HIDDEN:
        pytest.skip("cli.py has no hidden command (test_generator_follows_any_click_tree has one)")
    for name in HIDDEN:
        assert f"clp {name}" not in unroff(page_source("clp.8"))
        bash = (COMPLETIONS / "clp.bash").read_text()
        assert f" {name} " not in re.search(r"cmds='([^']*)'", bash).group(0).replace("'", " ")
        assert f"'{name}:" not in (COMPLETIONS / "_clp").read_text()
        assert f"-a '{name}'" not in (COMPLETIONS / "clp.fish").read_text()


def test_clp_8_lists_every_exit_status_of_the_front_end() -> None:
    text = sections(page_source("clp.8"))["EXIT STATUS"]
    listed = {int(line) for line in text.splitlines() if line.strip().isdigit()}
    constants = {v for n, v in vars(exits).items() if n.startswith("EXIT_")}
    assert constants <= listed
    assert 130 in listed  # interrupted


def test_clp_8_names_the_files_clp_installs_and_uses() -> None:
    text = sections(page_source("clp.8"))["FILES"]
    config = config_module.Config(architecture="any")
    paths = [
        config_module.DEFAULT_CONFIG,
        config_module.DEFAULT_MIRRORS,
        config.patch_dir,
        config.state_dir,
        config.log_file,
        "/etc/pacman.d/clp-pins.conf",
        "/var/cache/clp/completion-index",
    ]
    paths += [f"/usr/share/libalpm/hooks/{p.name}" for p in (REPO / "hooks").glob("*.hook")]
    paths += [f"/usr/lib/systemd/system/{p.name}" for p in (REPO / "systemd").iterdir()]
    assert len(paths) >= 10
    for path in paths:
        assert path in text.splitlines(), path
    see_also = sections(page_source("clp.8"))["SEE ALSO"]
    for ref in ("clp.conf(5)", "clp-patch(5)", "pacman(8)", "pacman.conf(5)", "alpm-hooks(5)"):
        assert ref in see_also


# -- clp.conf(5) -----------------------------------------------------------------------------


def test_clp_conf_5_documents_every_option_config_py_reads() -> None:
    text = sections(page_source("clp.conf.5"))["OPTIONS"]
    headings = {line.split(" =")[0] for line in text.splitlines() if " = " in line}
    assert set(config_module._OPTIONS) | {"Include"} <= headings
    defaults = config_module.Config(architecture="any")
    for key, (field, kind) in config_module._OPTIONS.items():
        value = getattr(defaults, field)
        if kind != "list" and key != "Architecture":
            assert f"Default: {value}" in " ".join(text.split()), key


def test_clp_conf_5_example_is_a_configuration_clp_reads(tmp_path: Path) -> None:
    conf = examples(page_source("clp.conf.5"), "EXAMPLE")[0]
    mirrors = examples(page_source("clp.conf.5"), "THE MIRRORS FILE")[0]
    (tmp_path / "etc/CLP").mkdir(parents=True)
    (tmp_path / "etc/CLP/clp.conf").write_text(conf)
    (tmp_path / "etc/CLP/mirrors").write_text(mirrors)
    config = config_module.load_config(tmp_path)
    assert config.warnings == ()
    assert config.script_timeout == 900
    assert config.archive_servers == ("https://archive.archlinux.org",)
    assert len(config.servers) == 2  # from the included mirrors file


# -- clp-patch(5) ----------------------------------------------------------------------------


def test_clp_patch_5_describes_every_element_of_the_schema() -> None:
    schema = etree.parse(str(REPO / "clp_alpm/formats/pkginfo.xsd"))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    names = {e.get("name") for e in schema.iter(f"{xs}element")}
    attributes = {a.get("name") for a in schema.iter(f"{xs}attribute")}
    text = sections(page_source("clp-patch.5"))["PKGINFO.META"]
    assert {"Package", "Name", "Files", "HealthCheck"} <= names
    for name in names:
        assert f"<{name}>" in text, name
    for attribute in attributes:
        assert f'{attribute}="..."' in text, attribute
    assert "<Trigger>" in text and "Install script again" in " ".join(text.split())


def test_clp_patch_5_examples_are_metadata_clp_reads() -> None:
    xml, ini = examples(page_source("clp-patch.5"), "PKGINFO.META")
    meta = parse_meta(xml.encode())
    assert meta.name == "CLPR261125" and meta.triggers == ("openssh",) and meta.files
    legacy = parse_meta(ini.encode())
    assert legacy.legacy and legacy.architecture == "x86_64"


def test_clp_patch_5_lists_the_script_environment() -> None:
    text = sections(page_source("clp-patch.5"))["SCRIPTS"]
    env = scripts.script_environment("X", "/opt/CLP/X", Path("/"), "install")
    for variable in [*env, scripts.RUN_MARKER_ENV]:
        assert re.search(rf"^{variable}$", text, re.MULTILINE), variable
    for fact in ("/dev/null", "chroot", "600 seconds", "SIGKILL", "126 and 127"):
        assert fact in " ".join(text.split()), fact


# -- roff ------------------------------------------------------------------------------------


@skip_without("mandoc", "mandoc")
@pytest.mark.parametrize("name", PAGES)
def test_page_lints_clean_with_mandoc(name: str) -> None:
    run = subprocess.run(
        ["mandoc", "-T", "lint", "-W", "warning", str(MAN / name)], capture_output=True, text=True
    )
    assert run.returncode == 0 and not (run.stdout + run.stderr), run.stdout + run.stderr


@skip_without("groff", "groff-base")
@pytest.mark.parametrize("name", PAGES)
def test_page_formats_without_warnings_with_groff(name: str) -> None:
    run = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(MAN / name)], capture_output=True, text=True
    )
    assert run.returncode == 0 and not run.stderr, run.stderr


@skip_without("man", "man-db")
def test_man_renders_the_page_a_user_reads() -> None:
    run = subprocess.run(
        ["man", "--warnings", "-l", str(MAN / "clp.8")],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"},
    )
    assert run.returncode == 0 and not run.stderr, run.stderr
    text = re.sub(r".\x08", "", run.stdout)
    assert "clp rollback [OPTIONS] PATCH_ID" in text
    assert "--color auto|always|never" in text


# -- bash ------------------------------------------------------------------------------------


BASH = COMPLETIONS / "clp.bash"


def test_bash_completes_commands_options_and_choices() -> None:
    results = bash_complete(
        BASH,
        [
            ["clp", "ro"],
            ["clp", "--color", ""],
            ["clp", "--color=al"],
            ["clp", "--color", "=", "ne"],
            ["clp", "--root", "/mnt", "ap"],
            ["clp", "-r", "/mnt", "--cachedir", "/c", "rollback", "--f"],
            ["clp", ""],
            ["clp", "rollback", "X", ""],
        ],
    )
    assert results[0] == ["rollback"]
    assert results[1] == ["auto", "always", "never"]
    assert results[2] == ["--color=always"]
    assert results[3] == ["never"]
    assert results[4] == ["apply"]
    assert results[5] == ["--force"]
    assert sorted(results[6]) == sorted(VISIBLE)
    assert results[7] == []


def test_bash_completes_patch_files_and_directories(files: Path) -> None:
    results = bash_complete(
        BASH,
        [["clp", "apply", ""], ["clp", "new", "-C", ""], ["clp", "build", "-o", ""]],
        cwd=files,
    )
    assert sorted(results[0]) == ["CLPR261125.clp", "work"]
    assert results[1] == ["work"]
    assert sorted(results[2]) == ["CLPR261125.clp", "notes.txt", "work"]


def test_bash_offers_every_option_of_every_command() -> None:
    lines = [["clp", "-"]] + [["clp", name, "-"] for name in VISIBLE]
    results = bash_complete(BASH, lines)
    assert set(results[0]) == root_option_names()
    for (name, command, ctx), offered in zip(commands(), results[1:], strict=True):
        assert set(offered) == accepted_options(command, ctx), name


# -- zsh -------------------------------------------------------------------------------------


@skip_without("zsh", "zsh")
def test_zsh_script_is_valid_and_names_every_option() -> None:
    script = COMPLETIONS / "_clp"
    run = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr, run.stderr
    text = script.read_text()
    assert text.startswith("#compdef clp\n")
    for name, command, ctx in commands():
        function = "_clp_" + re.sub(r"\W", "_", name)
        body = text.split(f"\n{function}() {{\n", 1)[1].split("\n}\n", 1)[0]
        for option in accepted_options(command, ctx):
            assert re.search(rf"[)'*]{re.escape(option)}[=+\[]", body), f"{name} {option}"
        assert f"'{name}:" in text


@skip_without("zsh", "zsh")
def test_zsh_completes_in_an_interactive_shell(tmp_path: Path) -> None:
    (tmp_path / "CLPR261125.clp").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    results = zsh_complete(
        COMPLETIONS,
        [
            "clp ro",
            "clp --color al",
            "clp apply ",
            "clp --root /tmp rollback --fo",
            "clp build --sign KEY --gpg-h",  # --gpgdir starts the same
        ],
        cwd=tmp_path,
    )
    assert results == [
        "rollback",
        "--color always",
        "apply CLPR261125.clp",
        "--root /tmp rollback --force",
        "build --sign KEY --gpg-homedir",
    ]


# -- fish ------------------------------------------------------------------------------------


FISH = COMPLETIONS / "clp.fish"


@skip_without("fish", "fish")
def test_fish_script_is_valid() -> None:
    run = subprocess.run(["fish", "--no-config", "-n", str(FISH)], capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr, run.stderr


@skip_without("fish", "fish")
def test_fish_completes_commands_options_and_files(files: Path) -> None:
    lines = ["clp ro", "clp --color ", "clp --root /mnt ap", "clp new -C ", "clp apply "]
    lines += [f"clp {name} --" for name in VISIBLE]
    results = fish_complete(FISH, lines, cwd=files)
    assert results[0] == ["rollback"]
    assert sorted(results[1]) == ["always", "auto", "never"]
    assert results[2] == ["apply"]
    assert results[3] == ["work/"]
    assert results[4][0] == "CLPR261125.clp"
    for (name, command, ctx), offered in zip(commands(), results[5:], strict=True):
        expected = {o for o in accepted_options(command, ctx) if o.startswith("--")}
        assert set(offered) == expected, name


# -- the generator over any click tree -------------------------------------------------------


def demo_group() -> click.Group:
    """A tree with what clp's may grow: a nested group, hidden parts, a choice argument."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--root", type=click.Path(file_okay=False), help="Target root.")
    @click.option("--mode", type=click.Choice(["fast", "safe"]), help="How.")
    def demo() -> None:
        """Demo tool.

        Options go anywhere.
        """

    @demo.command("apply")
    @click.option("--root", type=click.Path(file_okay=False), hidden=True)
    @click.option("--internal", is_flag=True, hidden=True)
    @click.argument("patch_file", type=click.Path(dir_okay=False))
    def apply(patch_file: str, root: str, internal: bool) -> None:
        """Apply a patch.

        \b
        keep   these
        lines  as they are
        """

    @demo.command("hook", hidden=True)
    def hook() -> None:
        """Not for people."""

    @demo.group("pins")
    def pins() -> None:
        """Manage pins."""

    @pins.command("drop")
    @click.option("--keep", type=click.Path(file_okay=False), help="Keep here.")
    @click.argument("level", type=click.Choice(["low", "high"]))
    def drop(keep: str, level: str) -> None:
        """Drop a pin."""

    return demo


def test_generator_follows_any_click_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(gen_docs, "find_root_group", demo_group)
    monkeypatch.setattr(gen_docs, "EXAMPLES", ())
    monkeypatch.setattr(gen_docs, "GLOBAL_OPTION_DETAILS", {})
    tree = gen_docs.command_tree()
    man = gen_docs.clp_8(tree)
    text = unroff(man)
    assert '.SS "clp pins drop"' in man and "--keep DIR" in text
    assert "clp pins drop [OPTIONS] low|high" in text
    assert "keep   these\nlines  as they are" in text
    assert "clp hook" not in text and "--internal" not in text
    assert "--mode fast|safe" in sections(man)["GLOBAL OPTIONS"]

    bash = tmp_path / "demo.bash"
    bash.write_text(gen_docs.bash_completion(tree))
    results = bash_complete(
        bash,
        [
            ["clp", ""],
            ["clp", "pins", ""],
            ["clp", "--mode", "safe", "pins", "drop", "--"],
            ["clp", "pins", "drop", ""],
            ["clp", "apply", "--"],
        ],
    )
    assert sorted(results[0]) == ["apply", "pins"]
    assert results[1] == ["drop"]
    assert sorted(results[2]) == ["--help", "--keep"]  # drop does not take --root, --mode
    assert results[3] == ["low", "high"]
    assert sorted(results[4]) == ["--help", "--root"]  # global --root, no hidden --internal

    if not missing["zsh"]:
        zsh = tmp_path / "_clp"
        zsh.write_text(gen_docs.zsh_completion(tree))
        assert subprocess.run(["zsh", "-n", str(zsh)]).returncode == 0
        assert zsh_complete(tmp_path, ["clp pins drop h", "clp pins dr"], cwd=tmp_path) == [
            "pins drop high",
            "pins drop",
        ]
    if not missing["fish"]:
        fish = tmp_path / "demo.fish"
        fish.write_text(gen_docs.fish_completion(tree))
        results = fish_complete(fish, ["clp pins ", "clp pins drop --"], cwd=tmp_path)
        assert results[0] == ["drop"]
        assert sorted(results[1]) == ["--help", "--keep"]


def test_generation_fails_when_the_code_knows_what_the_tables_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = dict(config_module._OPTIONS, NewOption=("new_option", "word"))
    monkeypatch.setattr(config_module, "_OPTIONS", options)
    with pytest.raises(gen_docs.GenerationError, match="NewOption"):
        gen_docs.clp_conf_5()
    monkeypatch.setattr(exits, "EXIT_TIMEOUT", 4, raising=False)
    with pytest.raises(gen_docs.GenerationError, match="EXIT_TIMEOUT"):
        gen_docs.clp_8(gen_docs.command_tree())


def test_generation_fails_for_an_element_the_schema_gains(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    schema = (REPO / "clp_alpm/formats/pkginfo.xsd").read_text()
    grown = schema.replace(
        '<xs:element name="Supersedes"',
        '<xs:element name="Reboot" type="nonEmptyToken" minOccurs="0"/>\n'
        '        <xs:element name="Supersedes"',
    )
    assert grown != schema
    (tmp_path / "pkginfo.xsd").write_text(grown)
    monkeypatch.setattr(gen_docs, "XSD_PATH", tmp_path / "pkginfo.xsd")
    with pytest.raises(gen_docs.GenerationError, match="Reboot"):
        gen_docs.clp_patch_5()


def test_generation_fails_when_a_completion_source_names_no_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = gen_docs.ARGUMENT_SOURCES
    sources = {**real, ("rollback", "patch"): "applied"}
    monkeypatch.setattr(gen_docs, "ARGUMENT_SOURCES", sources)
    with pytest.raises(gen_docs.GenerationError, match=r"\('rollback', 'patch'\)"):
        gen_docs.generate()
    sources = {**real, ("unpin", "package"): "pinned"}
    monkeypatch.setattr(gen_docs, "ARGUMENT_SOURCES", sources)
    with pytest.raises(gen_docs.GenerationError, match="pinned"):
        gen_docs.generate()
