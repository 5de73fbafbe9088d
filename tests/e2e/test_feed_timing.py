"""Feed timing against real HTTP servers on 127.0.0.1 that misbehave: a mirror that stalls
after the headers and a few bytes, or trickles, is given up after the low-speed time for the
next one; a validly signed index stamped in the far future is refused without freezing the feed
for the correct index after it; an expired index (a mirror frozen on an old one) is reported."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.clpkit import make_patch, static_server
from tests.kits.httpkit import Answer, mirror_server


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    """The published directory: the mirror serves it as /CLP/."""
    directory = tmp_path / "feed/CLP"
    directory.mkdir(parents=True)
    return directory


def add_patch(tmp_path: Path, feed: Path, keyring, name: str, install: str) -> Path:
    work = tmp_path / f"work-{name}"
    work.mkdir()
    built = make_patch(work, keyring, install, name=name)
    target = feed / built.name
    built.rename(target)
    Path(f"{built}.sig").rename(f"{target}.sig")
    return target


def publish(clp, feed: Path, keyring, *args: str) -> dict:
    result = clp("repo-add", str(feed), "--sign", keyring.packager_fpr,
                 "--gpg-homedir", str(keyring.signer_home), "--json", *args)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def restamp(feed: Path, keyring, generated: str, expires: str | None) -> None:
    """The index re-stamped and validly signed again (a signer's clock, an old index)."""
    index = feed / "CLP.db"
    text = re.sub(r' expires="[^"]*"', "", index.read_text())
    stamp = f'generated="{generated}"' + (f' expires="{expires}"' if expires else "")
    index.write_text(re.sub(r'generated="[^"]*"', stamp, text))
    Path(f"{index}.sig").unlink()
    gpgkit.sign(keyring, index, keyring.packager_fpr)


def configure(sandbox: Path, *servers: str, conf: str = "") -> None:
    (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
    (sandbox / "etc/CLP/mirrors").write_text("".join(f"Server = {s}\n" for s in servers))
    (sandbox / "etc/CLP/clp.conf").write_text(f"[options]\n{conf}Include = /etc/CLP/mirrors\n")


def update(clp, sandbox: Path, *args: str):
    return clp("--root", str(sandbox), "update", "--noconfirm", *args)


def errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture
def app_conf(sandbox: Path) -> Path:
    conf = sandbox / "etc/app.conf"
    conf.write_text("one\n")
    return conf


def test_a_mirror_stalling_after_five_bytes_costs_the_low_speed_time_once(
    tmp_path, sandbox, keyring, feed, app_conf, clp
):
    add_patch(tmp_path, feed, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed, keyring)
    index = (feed / "CLP.db").read_bytes()
    with (
        mirror_server({"/CLP/CLP.db": Answer(index, stall_after=5)}) as stalled,
        static_server(feed.parent) as good,
    ):
        configure(sandbox, f"{stalled.url}/CLP", f"{good}/CLP")  # the defaults: pacman's 10 s
        started = time.monotonic()
        result = update(clp, sandbox)
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert f"{stalled.url}/CLP/CLP.db: too slow (under 100 bytes/s for 10 s)" in result.stdout
    assert app_conf.read_text() == "one\ntwo\n"  # from the next mirror
    assert 9 < elapsed < 25  # the low-speed time once: not 3 attempts, not the .sig again
    assert stalled.requests == ["/CLP/CLP.db"]


def test_a_trickling_mirror_is_given_up(tmp_path, sandbox, keyring, feed, app_conf, clp):
    add_patch(tmp_path, feed, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed, keyring)
    index = (feed / "CLP.db").read_bytes()
    with (
        mirror_server({"/CLP/CLP.db": Answer(index, trickle=1.0)}) as slow,
        static_server(feed.parent) as good,
    ):
        configure(sandbox, f"{slow.url}/CLP", f"{good}/CLP", conf="LowSpeedTimeout = 3\n")
        started = time.monotonic()
        result = update(clp, sandbox)
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert f"{slow.url}/CLP/CLP.db: too slow (under 100 bytes/s for 3 s)" in result.stdout
    assert elapsed < 12
    assert app_conf.read_text() == "one\ntwo\n"


def test_a_patch_stalling_on_one_mirror_comes_from_the_next(
    tmp_path, sandbox, keyring, feed, app_conf, clp
):
    patch = add_patch(tmp_path, feed, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed, keyring)
    answers = {
        "/CLP/CLP.db": Answer((feed / "CLP.db").read_bytes()),
        "/CLP/CLP.db.sig": Answer((feed / "CLP.db.sig").read_bytes()),
        "/CLP/CLPR261101.clp": Answer(patch.read_bytes(), stall_after=5),
    }
    with mirror_server(answers) as stalled, static_server(feed.parent) as good:
        configure(sandbox, f"{stalled.url}/CLP", f"{good}/CLP", conf="LowSpeedTimeout = 2\n")
        started = time.monotonic()
        result = update(clp, sandbox)
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert app_conf.read_text() == "one\ntwo\n"
    assert elapsed < 10
    # the stalled mirror is not asked for clpctl's name of the file, nor retried
    assert stalled.requests.count("/CLP/CLPR261101.clp") == 1
    assert "/CLP/CLPR261101.CLP" not in stalled.requests


def test_a_future_dated_index_is_refused_and_the_correct_one_after_it_accepted(
    tmp_path, sandbox, keyring, feed, app_conf, clp
):
    add_patch(tmp_path, feed, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed, keyring)
    restamp(feed, keyring, "2099-01-01T00:00:00Z", "2099-02-01T00:00:00Z")
    with static_server(feed.parent) as url:
        configure(sandbox, f"{url}/CLP")
        refused = update(clp, sandbox)
        assert refused.returncode == 1
        assert len(errors(refused)) == 1, refused.stderr
        assert "index generated 2099-01-01T00:00:00Z lies in the future" in errors(refused)[0]
        assert app_conf.read_text() == "one\n"
        publish(clp, feed, keyring)  # the publisher's clock fixed: a correct index
        accepted = update(clp, sandbox)
    assert accepted.returncode == 0, accepted.stderr
    assert app_conf.read_text() == "one\ntwo\n"


def test_a_future_stamp_kept_by_an_older_clp_does_not_freeze_the_feed(
    tmp_path, sandbox, keyring, feed, app_conf, clp
):
    add_patch(tmp_path, feed, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed, keyring)
    with static_server(feed.parent) as url:
        configure(sandbox, f"{url}/CLP")
        assert update(clp, sandbox).returncode == 0
        db = sqlite3.connect(sandbox / "var/lib/clp/clp.db")
        with db:
            db.execute("UPDATE settings SET value = '2099-01-01T00:00:00Z' "
                       "WHERE key = 'feed.generated'")  # fmt: skip
        db.close()
        add_patch(tmp_path, feed, keyring, "CLPR261102", "echo three >> /etc/app.conf\n")
        publish(clp, feed, keyring)
        result = update(clp, sandbox)
        again = update(clp, sandbox)
    assert result.returncode == 0, result.stderr
    assert "stamped 2099-01-01T00:00:00Z, in the future: that stamp is forgotten" in result.stderr
    assert app_conf.read_text() == "one\ntwo\nthree\n"
    assert again.returncode == 0 and "forgotten" not in again.stderr  # the correct stamp kept


def test_an_expired_index_is_reported_with_its_date(
    tmp_path, sandbox, keyring, feed, app_conf, clp
):
    add_patch(tmp_path, feed, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed, keyring)
    restamp(feed, keyring, "2020-01-01T00:00:00Z", "2020-01-31T00:00:00Z")
    with static_server(feed.parent) as url:
        configure(sandbox, f"{url}/CLP")
        result = update(clp, sandbox, "--check")
    assert result.returncode == 1
    assert len(errors(result)) == 1, result.stderr
    assert (
        "index expired on 2020-01-31T00:00:00Z (generated 2020-01-01T00:00:00Z): the mirror "
        "is frozen on an old index" in errors(result)[0]
    )
    assert app_conf.read_text() == "one\n"


def test_a_frozen_mirror_is_passed_over_with_a_warning(
    tmp_path, sandbox, keyring, feed, app_conf, clp
):
    add_patch(tmp_path, feed, keyring, "CLPR261101", "echo two >> /etc/app.conf\n")
    publish(clp, feed, keyring, "--expires", "7")
    frozen = tmp_path / "frozen/CLP"
    frozen.mkdir(parents=True)
    for item in feed.iterdir():
        (frozen / item.name).write_bytes(item.read_bytes())
    restamp(frozen, keyring, "2021-03-01T00:00:00Z", "2021-03-08T00:00:00Z")
    with static_server(frozen.parent) as old, static_server(feed.parent) as good:
        configure(sandbox, f"{old}/CLP", f"{good}/CLP")
        result = update(clp, sandbox)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert f"{old}/CLP passed over: index expired on 2021-03-08T00:00:00Z" in warnings[0]
    assert app_conf.read_text() == "one\ntwo\n"


def test_repo_add_writes_an_expiry_and_update_shows_it(tmp_path, sandbox, keyring, feed, clp):
    add_patch(tmp_path, feed, keyring, "CLPR261101", "true\n")
    written = publish(clp, feed, keyring)
    generated = time.strptime(written["generated"], "%Y-%m-%dT%H:%M:%SZ")
    expires = time.strptime(written["expires"], "%Y-%m-%dT%H:%M:%SZ")
    import calendar

    assert calendar.timegm(expires) - calendar.timegm(generated) == 30 * 86400
    assert f'expires="{written["expires"]}"' in (feed / "CLP.db").read_text()
    with static_server(feed.parent) as url:
        configure(sandbox, f"{url}/CLP")
        shown = update(clp, sandbox, "--check")
    assert shown.returncode == 0, shown.stderr
    assert f"expires {written['expires']})" in shown.stdout
    never = publish(clp, feed, keyring, "--expires", "0")
    assert never["expires"] is None and "expires=" not in (feed / "CLP.db").read_text()
    bad = clp("repo-add", str(feed), "--expires", "-1")
    assert bad.returncode == 2 and "--expires" in bad.stderr
