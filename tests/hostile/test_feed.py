"""Hostile feed indexes and HTTP behaviours: one mirror on 127.0.0.1 serves each, and
`clp update` refuses it with exit 1 (no mirror gave a usable index: nothing was changed), one
`error:` line naming the problem, no traceback, and nothing changed in the root or outside it."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kits import gpgkit
from tests.kits.clpkit import make_patch
from tests.kits.hostilekit import assert_refused
from tests.kits.httpkit import Answer, mirror_server

INDEX = "/CLP/CLP.db"
SIG = "/CLP/CLP.db.sig"
MIB = 1024 * 1024


@dataclass
class Published:
    """A good feed (one signed patch and its signed index), and a way to sign other bytes."""

    index: bytes
    signature: bytes
    patch: bytes
    sign: Callable[[bytes], bytes]
    sign_untrusted: Callable[[bytes], bytes]


@dataclass(frozen=True)
class FeedCase:
    id: str
    answers: Callable[[Published], dict[str, Answer]]
    naming: str | tuple[str, ...]
    conf: str = ""


def signed(body: bytes, **answer: object) -> Callable[[Published], dict[str, Answer]]:
    """The mirror serves `body` as the index, validly signed by the trusted packager."""
    return lambda feed: {INDEX: Answer(body, **answer), SIG: Answer(feed.sign(body))}  # type: ignore[arg-type]


def index_xml(generated: str = "2026-11-25T12:00:00Z", extra: str = "", body: str = "") -> bytes:
    package = (
        "<Package><Name>CLPR261101</Name><Version>1</Version>"
        "<Architecture>any</Architecture></Package>"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Database generated="{generated}" '
        f'version="1"{extra}>{body or package}</Database>\n'
    ).encode()


def good_index(**answer: object) -> Callable[[Published], dict[str, Answer]]:
    return lambda feed: {INDEX: Answer(feed.index, **answer), SIG: Answer(feed.signature)}  # type: ignore[arg-type]


LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE Database [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<Database><Package><Name>&c;</Name><Version>1</Version>"
    b"<Architecture>any</Architecture></Package></Database>\n"
)

CASES = [
    FeedCase("unsigned-index", lambda f: {INDEX: Answer(f.index)}, "no signature"),
    FeedCase(
        "signed-by-an-untrusted-key",
        lambda f: {INDEX: Answer(f.index), SIG: Answer(f.sign_untrusted(f.index))},
        "untrusted",
    ),
    FeedCase(
        "signature-of-another-file",
        lambda f: {INDEX: Answer(f.index), SIG: Answer(f.sign(f.patch))},
        "signature",
    ),
    FeedCase(
        "garbage-signature",
        lambda f: {INDEX: Answer(f.index), SIG: Answer(b"\x89PNG not a signature" * 10)},
        "signature",
    ),
    FeedCase(
        "index-changed-after-signing",
        lambda f: {
            INDEX: Answer(f.index.replace(b"CLPR261101", b"CLPR261109")),
            SIG: Answer(f.signature),
        },  # fmt: skip
        "signature",
    ),
    FeedCase("truncated-index", lambda f: signed(f.index[: len(f.index) // 2])(f), "CLP.db:"),
    FeedCase(
        "announced-larger-than-16-MiB",
        good_index(length=17 * MIB),
        "exceeds the limit",
    ),
    FeedCase(
        "endless-index-without-a-length",
        lambda f: {INDEX: Answer(b"<" * (17 * MIB), length=-1)},
        "more than the limit",
    ),
    FeedCase(
        "gzip-bomb",
        signed(gzip.compress(b"\0" * (64 * MIB)), headers={"Content-Encoding": "gzip"}),
        "UTF-8",
    ),
    FeedCase("billion-laughs", signed(LAUGHS), ("DTD", "entit", "DOCTYPE")),
    FeedCase(
        "redirect-loop",
        lambda f: {INDEX: Answer(status=302, location=INDEX)},
        "a redirect loop: HTTP 302",
    ),
    FeedCase(
        "redirect-to-file-url",
        lambda f: {INDEX: Answer(status=302, location="file:///etc/shadow")},
        "redirect to unsupported URL file:///etc/shadow",
    ),
    FeedCase("404-everywhere", lambda f: {}, "HTTP 404"),
    FeedCase("server-error", lambda f: {INDEX: Answer(b"oops", status=500)}, "HTTP 500"),
    FeedCase(
        "content-length-larger-than-the-body",
        good_index(length=100_000),
        "truncated",
    ),
    FeedCase(
        "bad-content-length",
        lambda f: {INDEX: Answer(f.index, length=-1, headers={"Content-Length": "12abc"})},
        "Content-Length",
    ),
    FeedCase(
        "partial-answer-to-a-plain-request",
        lambda f: {INDEX: Answer(f.index, status=206, headers={"Content-Range": "bytes x"})},
        "Content-Range",
    ),
    FeedCase(
        "html-error-page-served-with-200",
        signed(b"<html><body><h1>Mirror maintenance</h1></body></html>\n"),
        "not a patch index",
    ),
    FeedCase("not-utf-8", signed(index_xml().replace(b"any", b"\xff\xfe")), "UTF-8"),
    FeedCase(
        "a-patch-listed-twice",
        signed(
            index_xml(
                body=(
                    "<Package><Name>CLPR261101</Name><Version>1</Version><Architecture>any"
                    "</Architecture></Package>"
                )
                * 2
            )
        ),  # fmt: skip
        "listed twice",
    ),
    FeedCase(
        "unknown-index-format",
        signed(index_xml().replace(b'version="1"', b'version="7"')),
        "not supported",
    ),
    FeedCase(
        "signed-in-the-far-future",
        signed(index_xml(generated="2199-01-01T00:00:00Z")),
        "lies in the future",
    ),
    FeedCase(
        "expired",
        signed(
            index_xml(generated="2020-01-01T00:00:00Z", extra=' expires="2020-01-08T00:00:00Z"')
        ),
        "expired on 2020-01-08",
    ),
    FeedCase(
        "expiry-before-generation",
        signed(index_xml(extra=' expires="2026-01-01T00:00:00Z"')),
        "not later than generated",
    ),
    FeedCase(
        "headers-then-five-bytes-then-nothing",
        good_index(stall_after=5),
        "too slow",
        conf="LowSpeedTimeout = 1\n",
    ),
    FeedCase(
        "trickle",
        good_index(trickle=0.5),
        "too slow",
        conf="LowSpeedTimeout = 2\n",
    ),
    FeedCase(
        "header-lines-trickled-for-ever",
        good_index(header_trickle=0.2),
        "no answer within 2 s",
        conf="ConnectTimeout = 2\n",
    ),
    FeedCase(
        "bad-architecture-in-the-index",
        signed(index_xml().replace(b"<Architecture>any", b"<Architecture>x86 64; rm")),
        "architecture",
    ),
]


def publish(tmp_path: Path, keyring) -> Published:
    patch = make_patch(tmp_path, keyring, "true\n", name="CLPR261101")
    feed = tmp_path / "feed"
    feed.mkdir()
    patch.rename(feed / patch.name)
    from tests.kits.clpkit import run_clp

    done = run_clp("repo-add", str(feed), "--sign", keyring.packager_fpr,
                   "--gpg-homedir", str(keyring.signer_home))  # fmt: skip
    assert done.returncode == 0, done.stderr
    counter = iter(range(1000))

    def sign_with(fpr: str) -> Callable[[bytes], bytes]:
        def sign(data: bytes) -> bytes:
            path = tmp_path / f"to-sign-{next(counter)}"
            path.write_bytes(data)
            return gpgkit.sign(keyring, path, fpr).read_bytes()

        return sign

    return Published(
        (feed / "CLP.db").read_bytes(),
        (feed / "CLP.db.sig").read_bytes(),
        (feed / patch.name).read_bytes(),
        sign_with(keyring.packager_fpr),
        sign_with(keyring.untrusted_fpr),
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_hostile_feed_is_refused_by_update(tmp_path, sandbox, keyring, clp, fence, case):
    published = publish(tmp_path, keyring)
    (sandbox / "etc/app.conf").write_text("untouched\n")
    with mirror_server(case.answers(published)) as mirror:
        (sandbox / "etc/CLP").mkdir(parents=True, exist_ok=True)
        (sandbox / "etc/CLP/mirrors").write_text(f"Server = {mirror.url}/CLP\n")
        (sandbox / "etc/CLP/clp.conf").write_text(
            f"[options]\n{case.conf}Include = /etc/CLP/mirrors\n"
        )
        fence.close()
        result: subprocess.CompletedProcess[str] = clp(
            "--root", str(sandbox), "update", "--noconfirm", timeout=60
        )
    assert_refused(result, fence, naming=case.naming, code=1)
    assert "no mirror gave a usable patch index" in result.stderr
