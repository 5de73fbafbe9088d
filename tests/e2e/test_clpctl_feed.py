"""`clp update` against clpctl's feeds, served over HTTP on 127.0.0.1 as clpctl's mirrors serve
them: unsigned, without SHA256 or Size, each generation of CLP.db with its own file names.

The indexes are written the way each clpctl generation reads them (Vincent-OS/clpctl:
UpdateCommand.cs of 1.x, 2.0 and 2.1); the patches are gzip'd tars of a patch directory, as
clpctl's ClpPackager.CreateClpFile makes them (the entries of the directory at the top, INI
PKGINFO.meta, Install-Patch.ps1 and Remove-Patch.ps1).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits.clpkit import static_server

PATCH = "CLPR261201"

# CLP.db as each generation of clpctl reads it, and the file name it then asks the mirror for.
GENERATIONS = {
    # 1.x: serverDbContent.Split('\n'), line.StartsWith("Name="), "{patchName}.CLP"
    "clpctl-1": (f"# Core LivePatch database\r\nName={PATCH}\r\n".encode(), f"{PATCH}.CLP"),
    # 2.0: root.SelectSingleNode("Name"), "{patchName}.CLP"
    "clpctl-2.0": (
        f'<?xml version="1.0" encoding="utf-8"?>\n<CLP>\n  <Name>{PATCH}</Name>\n</CLP>\n'.encode(),
        f"{PATCH}.CLP",
    ),
    # 2.1: SelectNodes("//Package") at any depth, Version = the edition, "{Name}.clp"
    "packages": (
        (
            '<?xml version="1.0" encoding="utf-8"?>\n<CLP><Patches>\n'
            f"  <Package><Name>{PATCH}</Name><Version>Workstation</Version>"
            "<Architecture>any</Architecture></Package>\n</Patches></CLP>\n"
        ).encode(),
        f"{PATCH}.clp",
    ),
}

INSTALL = b"echo installed-by-feed >> /etc/app.conf\n"
REMOVE = b"exit 0\n"


def clpctl_archive(name: str = PATCH, install: bytes = INSTALL) -> bytes:
    """A .CLP as clpctl's CreateClpFile writes one: a gzip'd tar of the patch directory's
    files, at the top of the archive."""
    files = {
        "PKGINFO.meta": (
            f"[Package]\nName={name}\nVersion=1\nArchitecture=any\nDescription=From the feed"
        ).encode(),
        "Install-Patch.ps1": install,
        "Remove-Patch.ps1": REMOVE,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def app_conf(sandbox: Path) -> Path:
    conf = sandbox / "etc/app.conf"
    conf.write_text("one\n")
    return conf


@pytest.fixture
def workstation(sandbox: Path) -> Path:
    (sandbox / "etc/os-release").write_text('NAME="Vincent OS"\nVARIANT_ID=workstation\n')
    return sandbox


def publish(directory: Path, generation: str) -> Path:
    index, file_name = GENERATIONS[generation]
    (directory / "CLP").mkdir(parents=True, exist_ok=True)
    (directory / "CLP/CLP.db").write_bytes(index)
    patch = directory / "CLP" / file_name
    patch.write_bytes(clpctl_archive())
    return patch


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    return tmp_path / "feed"


@pytest.fixture
def mirror(feed: Path) -> Iterator[str]:
    feed.mkdir()
    with static_server(feed) as url:
        yield f"{url}/CLP"


def configure(sandbox: Path, server: str, options: str = "") -> None:
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/clp.conf").write_text(f"[options]\n{options}Server = {server}\n")


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize("generation", list(GENERATIONS))
def test_each_clpctl_generation_applies_with_feed_siglevel_never(
    generation, sandbox, workstation, app_conf, feed, mirror, clp
):
    patch = publish(feed, generation)
    configure(sandbox, mirror, "FeedSigLevel = Never\n")

    check = clp("--root", str(sandbox), "update", "--check", "--json")
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["format"] == generation and report["signed"] is False
    assert [(p["name"], p["action"]) for p in report["patches"]] == [(PATCH, "apply")]
    assert len(warnings_of(check.stderr)) == 1, check.stderr
    assert "CLP.db is not signed" in check.stderr and "FeedSigLevel = Never" in check.stderr
    assert app_conf.read_text() == "one\n"  # --check changed nothing

    result = clp("--root", str(sandbox), "update", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(warnings_of(result.stderr)) == 1, result.stderr
    assert app_conf.read_text() == "one\ninstalled-by-feed\n"
    listing = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [(p["id"], p["state"]) for p in listing] == [(PATCH, "applied")]
    # the index gave no SHA256: the download was hashed and the hash recorded
    digest = hashlib.sha256(patch.read_bytes()).hexdigest()
    log = (sandbox / "var/log/CLP.log").read_text()
    assert f"{PATCH}: downloaded from {mirror}/{patch.name}" in log and digest in log
    info = json.loads(clp("--root", str(sandbox), "info", PATCH, "--json").stdout)
    assert digest in json.dumps(info)

    again = clp("--root", str(sandbox), "update", "--noconfirm")
    assert again.returncode == 0 and app_conf.read_text() == "one\ninstalled-by-feed\n"


@pytest.mark.parametrize("generation", list(GENERATIONS))
def test_the_default_refuses_an_unsigned_clpctl_feed_and_names_feed_siglevel(
    generation, sandbox, workstation, app_conf, feed, mirror, clp
):
    publish(feed, generation)
    configure(sandbox, mirror)
    result = clp("--root", str(sandbox), "update", "--check", "--json")
    assert result.returncode != 0
    assert "CLP.db.sig missing" in result.stderr
    assert "FeedSigLevel is Required" in result.stderr
    assert "'FeedSigLevel = Never'" in result.stderr  # what the administrator can do
    assert app_conf.read_text() == "one\n"


def test_feed_siglevel_optional_applies_an_unsigned_feed(
    sandbox, workstation, app_conf, feed, mirror, clp
):
    publish(feed, "clpctl-1")
    configure(sandbox, mirror, "FeedSigLevel = Optional\n")
    result = clp("--root", str(sandbox), "update", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FeedSigLevel = Optional" in warnings_of(result.stderr)[0]
    assert app_conf.read_text() == "one\ninstalled-by-feed\n"


def test_local_patch_files_keep_siglevel(tmp_path, sandbox, app_conf, feed, mirror, clp):
    configure(sandbox, mirror, "SigLevel = Required\nFeedSigLevel = Never\n")
    local = tmp_path / f"{PATCH}.CLP"
    local.write_bytes(clpctl_archive())
    result = clp("--root", str(sandbox), "apply", str(local), "--noconfirm")
    assert result.returncode != 0
    assert "no signature" in result.stderr and "SigLevel is Required" in result.stderr
    assert "FeedSigLevel" not in result.stderr
    assert app_conf.read_text() == "one\n"


def test_feed_siglevel_default_is_siglevel(sandbox, workstation, app_conf, feed, mirror, clp):
    publish(feed, "clpctl-2.0")
    configure(sandbox, mirror, "SigLevel = Never\n")
    result = clp("--root", str(sandbox), "update", "--check", "--json")
    assert result.returncode == 0, result.stderr
    assert len(warnings_of(result.stderr)) == 1


def test_unsigned_content_over_plain_http_to_another_host_is_refused(
    sandbox, workstation, app_conf, feed, mirror, clp
):
    publish(feed, "clpctl-1")
    # the same server, named as any other host would be: plain http, not 127.0.0.1
    configure(sandbox, mirror.replace("127.0.0.1", "localhost"), "FeedSigLevel = Never\n")
    result = clp("--root", str(sandbox), "update", "--check", "--json")
    assert result.returncode != 0
    assert "is not signed and came over http://" in result.stderr
    assert "only over https:// or file://" in result.stderr
    assert app_conf.read_text() == "one\n"


def test_a_file_server_is_private_enough(tmp_path, sandbox, workstation, app_conf, clp):
    feed = tmp_path / "local-feed"
    publish(feed, "packages")
    configure(sandbox, f"file://{feed}/CLP", "FeedSigLevel = Never\n")
    result = clp("--root", str(sandbox), "update", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert app_conf.read_text() == "one\ninstalled-by-feed\n"


def test_a_clpctl_21_patch_for_another_edition_is_skipped(sandbox, app_conf, feed, mirror, clp):
    publish(feed, "packages")
    (sandbox / "etc/os-release").write_text("VARIANT_ID=server\n")
    configure(sandbox, mirror, "FeedSigLevel = Never\n")
    result = clp("--root", str(sandbox), "update", "--check", "--json")
    assert result.returncode == 0, result.stderr
    (patch,) = json.loads(result.stdout)["patches"]
    assert patch["action"] == "skip" and "Workstation edition" in patch["reason"]


def clpctl_21_selects(index: bytes, edition: str, arch: str) -> list[str]:
    """The patches clpctl 2.1's UpdateCommand applies from `index`: every //Package whose
    Name is set, whose Version equals the edition and whose Architecture equals the machine's,
    both ignoring case (it then fetches `<Name>.clp`)."""
    from xml.etree import ElementTree

    selected = []
    for package in ElementTree.fromstring(index).iter("Package"):
        name = (package.findtext("Name") or "").strip()
        version = package.findtext("Version") or ""
        architecture = package.findtext("Architecture") or ""
        if name and version.lower() == edition.lower() and architecture.lower() == arch.lower():
            selected.append(name)
    return selected


def test_repo_add_serves_clpctl_21_clients_and_clp_alike(
    tmp_path, sandbox, workstation, app_conf, feed, mirror, keyring, clp
):
    import os
    import urllib.request

    from tests.kits.clpkit import make_patch

    machine = os.uname().machine
    served = feed / "CLP"
    served.mkdir()
    built = make_patch(tmp_path, keyring, INSTALL.decode(), name=PATCH, arch=machine)
    built.rename(served / built.name)
    os.rename(f"{built}.sig", served / f"{built.name}.sig")
    published = clp(
        "repo-add", str(served), "--edition", "workstation", "--edition", "server",
        "--sign", keyring.packager_fpr, "--gpg-homedir", str(keyring.signer_home),
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert f"{PATCH} 1 ({machine}) for the workstation edition" in published.stdout
    index = (served / "CLP.db").read_bytes()

    # a clpctl 2.1 client of each edition finds the patch and the file it asks for
    for edition in ("Workstation", "server"):
        assert clpctl_21_selects(index, edition, machine) == [PATCH]
    assert clpctl_21_selects(index, "gaming", machine) == []
    with urllib.request.urlopen(f"{mirror}/{PATCH}.clp") as answer:
        assert answer.status == 200

    # clp reads it fully: its own fields beside, the patch version in <PatchVersion>
    configure(sandbox, mirror)  # the default FeedSigLevel: the index and the patch are signed
    check = clp("--root", str(sandbox), "update", "--check", "--json")
    assert check.returncode == 0, check.stderr
    assert warnings_of(check.stderr) == []
    report = json.loads(check.stdout)
    assert report["signed"] is True
    assert [(p["name"], p["edition"], p["patch_version"], p["action"])
            for p in report["patches"]] == [(PATCH, "workstation", "1", "apply")]  # fmt: skip
    result = clp("--root", str(sandbox), "update", "--noconfirm")
    assert result.returncode == 0, result.stdout + result.stderr
    assert app_conf.read_text() == "one\ninstalled-by-feed\n"


def test_repo_add_refuses_a_bad_edition(tmp_path, feed, clp):
    (feed / "CLP").mkdir(parents=True)
    for edition in ("1.2", "../x", ""):
        result = clp("repo-add", str(feed / "CLP"), "--edition", edition)
        assert result.returncode == 2, result.stderr
        assert f"edition '{edition}' is not valid" in result.stderr
        assert "(e.g. workstation)" in result.stderr and "not a version number" in result.stderr
        assert not (feed / "CLP/CLP.db").exists()


def test_a_failed_patch_the_index_gives_no_hash_for_is_not_run_again_daily(
    sandbox, workstation, app_conf, feed, mirror, clp
):
    publish(feed, "clpctl-1")
    failing = clpctl_archive(install=b"echo broken >> /etc/app.conf\nexit 3\n")
    (feed / "CLP" / f"{PATCH}.CLP").write_bytes(failing)
    configure(sandbox, mirror, "FeedSigLevel = Never\n")
    first = clp("--root", str(sandbox), "update", "--noconfirm")
    assert first.returncode == 1, first.stdout + first.stderr
    listing = json.loads(clp("--root", str(sandbox), "list", "--json").stdout)
    assert [(p["id"], p["state"]) for p in listing] == [(PATCH, "failed")]
    check = clp("--root", str(sandbox), "update", "--check", "--json")
    (decision,) = json.loads(check.stdout)["patches"]
    assert decision["action"] == "skip"
    assert decision["reason"] == "failed before; the index gives no SHA256 to tell a newer build"
