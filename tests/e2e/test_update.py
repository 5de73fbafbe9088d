"""`clp update` against a real feed: `clp repo-add` output served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.clpkit import make_patch, silent_server, static_server, tree
from tests.kits.smallfs import run_with_small_fs


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "feed"
    directory.mkdir()
    return directory


@pytest.fixture
def mirror(feed_dir: Path) -> Iterator[str]:
    """A static web server on 127.0.0.1 serving the feed directory."""
    with static_server(feed_dir) as url:
        yield f"{url}/CLP"


@pytest.fixture
def dead_mirror() -> str:
    """A port nothing listens on: connection refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/CLP"


@pytest.fixture
def app_conf(sandbox: Path) -> Path:
    conf = sandbox / "etc/app.conf"
    conf.write_text("one\n")
    return conf


def serve(feed_dir: Path) -> Path:
    """The mirror's /CLP/ directory."""
    clp_dir = feed_dir / "CLP"
    clp_dir.mkdir(exist_ok=True)
    return clp_dir


def add_patch(tmp_path, feed_dir, keyring, name, install, extra="", files=("/etc/app.conf",)):
    work = tmp_path / f"work-{name}"
    work.mkdir()
    built = make_patch(work, keyring, install, name=name, extra=extra, files=files)
    target = serve(feed_dir) / built.name
    built.rename(target)
    Path(f"{built}.sig").rename(f"{target}.sig")
    return target


def publish(clp, feed_dir, keyring) -> None:
    result = clp("repo-add", str(serve(feed_dir)), "--sign", keyring.packager_fpr,
                 "--gpg-homedir", str(keyring.signer_home))  # fmt: skip
    assert result.returncode == 0, result.stderr


def use_mirrors(sandbox: Path, *servers: str) -> None:
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/mirrors").write_text("".join(f"Server = {s}\n" for s in servers))


def update(clp, sandbox, *args):
    return clp("--root", str(sandbox), "update", "--noconfirm", *args)


def listed(clp, sandbox) -> dict[str, str]:
    result = clp("--root", str(sandbox), "list", "--json")
    return {p["id"]: p["state"] for p in json.loads(result.stdout)}


def test_update_applies_due_patches_in_order_with_a_dead_first_mirror(
    tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, dead_mirror, clp
):
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "echo two >> /etc/app.conf\n",
              extra="<Date>2026-11-01</Date>")  # fmt: skip
    add_patch(tmp_path, feed_dir, keyring, "CLPR261102", "echo three >> /etc/app.conf\n",
              extra="<Date>2026-11-02</Date>", files=("/etc/app.conf", "/etc/x"))  # fmt: skip
    publish(clp, feed_dir, keyring)
    use_mirrors(sandbox, dead_mirror, mirror)

    check = clp("--root", str(sandbox), "update", "--check", "--json")
    assert check.returncode == 0, check.stderr
    actions = [(p["name"], p["action"]) for p in json.loads(check.stdout)["patches"]]
    assert actions == [("CLPR261101", "apply"), ("CLPR261102", "apply")]
    assert app_conf.read_text() == "one\n"  # --check changed nothing

    result = update(clp, sandbox)
    assert result.returncode == 0, result.stderr
    assert app_conf.read_text() == "one\ntwo\nthree\n"  # in date order
    assert listed(clp, sandbox) == {"CLPR261101": "applied", "CLPR261102": "applied"}

    again = update(clp, sandbox)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_one_failing_patch_is_rolled_back_and_the_others_apply(
    tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp
):
    before = app_conf.read_bytes()
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "echo broken > /etc/app.conf\nexit 5\n")
    add_patch(tmp_path, feed_dir, keyring, "CLPR261102", "touch /etc/ok\n", files=("/etc/ok",))
    publish(clp, feed_dir, keyring)
    use_mirrors(sandbox, mirror)
    result = update(clp, sandbox)
    assert result.returncode == 1
    assert "exited with status 5" in result.stderr and "1 of 2 patches were not" in result.stderr
    assert app_conf.read_bytes() == before
    assert (sandbox / "etc/ok").exists()
    assert listed(clp, sandbox) == {"CLPR261101": "failed", "CLPR261102": "applied"}
    # the failed build is not retried every day; the feed must publish a new one
    assert "failed before" in clp("--root", str(sandbox), "update", "--check").stdout


def test_skips_say_why(tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp):
    other = "aarch64" if os.uname().machine != "aarch64" else "x86_64"
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "true\n")
    add_patch(tmp_path, feed_dir, keyring, "CLPR261102", "true\n",
              extra="<Supersedes><Patch>CLPR261101</Patch></Supersedes>")  # fmt: skip
    add_patch(tmp_path, feed_dir, keyring, "CLPR261103", "true\n",
              extra='<AppliesTo><Pkg name="openssh"/></AppliesTo>')  # fmt: skip
    work = tmp_path / "arch"
    work.mkdir()
    built = make_patch(work, keyring, "true\n", name="CLPR261104", arch=other)
    built.rename(serve(feed_dir) / built.name)
    publish(clp, feed_dir, keyring)
    use_mirrors(sandbox, mirror)
    plan = json.loads(clp("--root", str(sandbox), "update", "--check", "--json").stdout)
    reasons = {p["name"]: (p["action"], p["reason"]) for p in plan["patches"]}
    assert reasons["CLPR261101"] == ("skip", "superseded by CLPR261102")
    assert reasons["CLPR261102"][0] == "apply"
    assert reasons["CLPR261103"] == ("skip", "openssh is not installed")
    assert reasons["CLPR261104"] == ("skip", f"built for {other}")


def test_editions_follow_os_release(tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp):
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "true\n")
    publish(clp, feed_dir, keyring)
    index = serve(feed_dir) / "CLP.db"
    index.write_text(index.read_text().replace("<Version>1</Version>", "<Version>server</Version>"))
    Path(f"{index}.sig").unlink()
    gpgkit.sign(keyring, index, keyring.packager_fpr)
    use_mirrors(sandbox, mirror)
    (sandbox / "etc/os-release").write_text('NAME="Vincent OS"\nVARIANT_ID="workstation"\n')
    plan = json.loads(clp("--root", str(sandbox), "update", "--check", "--json").stdout)
    assert (
        plan["patches"][0]["action"] == "skip" and "server edition" in plan["patches"][0]["reason"]
    )


def test_a_replayed_older_index_is_refused(
    tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp
):
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed_dir, keyring)
    use_mirrors(sandbox, mirror)
    assert update(clp, sandbox).returncode == 0
    state = tree(sandbox)
    # an attacker (or a stale mirror) serves a validly signed index from the past
    index = serve(feed_dir) / "CLP.db"
    text = index.read_text()
    start = text.index('generated="') + len('generated="')
    index.write_text(text[:start] + "2020-01-01T00:00:00Z" + text[start + 20 :])
    Path(f"{index}.sig").unlink()
    gpgkit.sign(keyring, index, keyring.packager_fpr)
    result = update(clp, sandbox)
    assert result.returncode == 1
    assert "older than the one seen before" in result.stderr
    assert tree(sandbox) == state


@pytest.mark.parametrize("fault", ["bad-index-signature", "corrupt-patch", "unsigned-index"])
def test_faults_leave_the_system_unchanged(
    tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp, fault
):
    patch = add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed_dir, keyring)
    index = serve(feed_dir) / "CLP.db"
    if fault == "bad-index-signature":
        gpgkit.sign(keyring, index, keyring.untrusted_fpr)
    elif fault == "unsigned-index":
        Path(f"{index}.sig").unlink()
    else:
        data = bytearray(patch.read_bytes())
        data[-30] ^= 0xFF  # the mirror serves a damaged copy: sha256 no longer matches
        patch.write_bytes(bytes(data))
    use_mirrors(sandbox, mirror)
    before = tree(sandbox)
    result = update(clp, sandbox)
    assert result.returncode == 1, result.stderr
    words = {"bad-index-signature": "untrusted", "unsigned-index": "no signature",
             "corrupt-patch": "sha256"}[fault]  # fmt: skip
    assert words in result.stderr
    assert tree(sandbox) == before
    assert all(state != "applied" for state in listed(clp, sandbox).values())


def test_no_mirror_reachable(tmp_path, sandbox, app_conf, dead_mirror, clp):
    use_mirrors(sandbox, dead_mirror)
    before = tree(sandbox)
    result = update(clp, sandbox)
    assert result.returncode == 1
    assert "no mirror gave a usable patch index" in result.stderr
    assert tree(sandbox) == before


def test_no_feed_configured_is_bad_usage(sandbox, clp):
    result = update(clp, sandbox)
    assert result.returncode == 2 and "Server =" in result.stderr


def test_full_disk_while_downloading(tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp):
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    big = tmp_path / "big"
    big.mkdir()
    built = make_patch(big, keyring, "true\n", name="CLPR261102", files=("/etc/y",),
                       payload={"blob.bin": os.urandom(300_000)})  # fmt: skip
    built.rename(serve(feed_dir) / built.name)
    Path(f"{built}.sig").rename(serve(feed_dir) / f"{built.name}.sig")
    publish(clp, feed_dir, keyring)
    use_mirrors(sandbox, mirror)
    result = run_with_small_fs(sandbox / "var/lib/clp/downloads", "128k",
                               "--root", str(sandbox), "update", "--noconfirm")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert listed(clp, sandbox) == {"CLPR261101": "applied"}  # the other never got to apply
    assert not (sandbox / "etc/y").exists()


def test_regressions_from_review(tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp):
    """A superseding patch that cannot apply here does not hide the older fix; --json gives
    one document even when a patch fails; the index stamp is kept when nothing is due."""
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "exit 3\n")
    add_patch(tmp_path, feed_dir, keyring, "CLPR261102", "true\n",
              extra='<Supersedes><Patch>CLPR261101</Patch></Supersedes>'
                    '<AppliesTo><Pkg name="openssh"/></AppliesTo>')  # fmt: skip
    publish(clp, feed_dir, keyring)
    use_mirrors(sandbox, mirror)
    result = update(clp, sandbox, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)  # exactly one document
    actions = {p["name"]: p["action"] for p in report["patches"]}
    assert actions == {"CLPR261101": "apply", "CLPR261102": "skip"}
    assert [r["result"] for r in report["results"]] == ["failed"]


def test_a_served_file_must_be_the_patch_the_index_lists(
    tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp
):
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    add_patch(tmp_path, feed_dir, keyring, "CLPR261102", "echo three >> /etc/app.conf\n")
    publish(clp, feed_dir, keyring)
    clp_dir = serve(feed_dir)
    # the mirror serves a validly signed, but different, patch under the second name
    index = clp_dir / "CLP.db"
    one, two = clp_dir / "CLPR261101.clp", clp_dir / "CLPR261102.clp"
    text = index.read_text()
    import hashlib

    text = text.replace(hashlib.sha256(two.read_bytes()).hexdigest(),
                        hashlib.sha256(one.read_bytes()).hexdigest())  # fmt: skip
    text = text.replace(f"<Size>{two.stat().st_size}</Size>", f"<Size>{one.stat().st_size}</Size>")
    index.write_text(text)
    Path(f"{index}.sig").unlink()
    gpgkit.sign(keyring, index, keyring.packager_fpr)
    two.write_bytes(one.read_bytes())
    Path(f"{two}.sig").write_bytes(Path(f"{one}.sig").read_bytes())
    use_mirrors(sandbox, mirror)
    result = update(clp, sandbox)
    assert result.returncode == 1
    assert "not the patch the index lists" in result.stderr
    assert listed(clp, sandbox) == {"CLPR261101": "applied"}


def test_repo_add_accepts_clpctl_upper_case_names(tmp_path, feed_dir, keyring, clp):
    patch = add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "true\n")
    patch.rename(patch.with_suffix(".CLP"))
    result = clp("repo-add", str(serve(feed_dir)))
    assert result.returncode == 0, result.stderr
    index = (serve(feed_dir) / "CLP.db").read_text()
    assert "<Name>CLPR261101</Name>" in index and "<SHA256>" in index
    # clpctl 2.1 asks for <Name>.clp only: the publisher is told to serve both names
    assert result.stderr.splitlines() == [
        "warning: CLPR261101.CLP: clpctl 2.1 clients ask for CLPR261101.clp; serve both "
        "names (ln -s CLPR261101.CLP CLPR261101.clp)"
    ]
    (serve(feed_dir) / "CLPR261101.clp").symlink_to("CLPR261101.CLP")
    again = clp("repo-add", str(serve(feed_dir)))
    assert again.returncode == 0 and again.stderr == ""
    assert (serve(feed_dir) / "CLP.db").read_text().count("<Package>") == 1


def test_repo_add_refuses_both_names_of_one_patch(tmp_path, feed_dir, keyring, clp):
    patch = add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "true\n")
    (serve(feed_dir) / "CLPR261101.CLP").write_bytes(patch.read_bytes())
    result = clp("repo-add", str(serve(feed_dir)))
    assert result.returncode == 2
    assert "CLPR261101.CLP and CLPR261101.clp are both here: keep one of them" in result.stderr
    assert not (serve(feed_dir) / "CLP.db").exists()


def test_a_clpctl_mirror_serving_upper_case_names_works(
    tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp
):
    patch = add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed_dir, keyring)
    patch.rename(patch.with_suffix(".CLP"))  # clpctl's file name on the mirror
    Path(f"{patch}.sig").rename(f"{patch.with_suffix('.CLP')}.sig")
    use_mirrors(sandbox, mirror)
    result = update(clp, sandbox)
    assert result.returncode == 0, result.stderr
    assert app_conf.read_text().endswith("two\n")


def test_a_mirror_passed_over_for_its_signature_is_a_warning(
    tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, dead_mirror, clp
):
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed_dir, keyring)
    forged = tmp_path / "forged"
    (forged / "CLP").mkdir(parents=True)
    for item in serve(feed_dir).iterdir():
        (forged / "CLP" / item.name).write_bytes(item.read_bytes())
    index = forged / "CLP" / "CLP.db"
    Path(f"{index}.sig").unlink()
    gpgkit.sign(keyring, index, keyring.untrusted_fpr)  # a key pacman's keyring does not trust
    with static_server(forged) as forged_url:
        use_mirrors(sandbox, dead_mirror, f"{forged_url}/CLP", mirror)
        result = update(clp, sandbox)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert f"{forged_url}/CLP passed over" in warnings[0] and "untrusted" in warnings[0]
    assert f"{dead_mirror}:" in result.stdout and "trying the next mirror" in result.stdout
    assert app_conf.read_text() == "one\ntwo\n"  # the good mirror's patch applied


def test_a_mirror_that_never_answers_costs_connect_timeout_and_one_line(
    tmp_path, sandbox, keyring, app_conf, feed_dir, mirror, clp
):
    add_patch(tmp_path, feed_dir, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed_dir, keyring)
    with silent_server() as hung:
        use_mirrors(sandbox, f"{hung}/CLP", mirror)
        (sandbox / "etc/CLP/clp.conf").write_text("[options]\nConnectTimeout = 1\n")
        started = time.monotonic()
        result = clp("--root", str(sandbox), "update", "--check")
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert f"{hung}/CLP: CLP.db: download failed: {hung}/CLP/CLP.db: no answer within 1 s" in (
        result.stdout
    )
    assert "CLPR261101" in result.stdout
    assert elapsed < 8  # one second for the hung mirror, not 30 s per attempt
