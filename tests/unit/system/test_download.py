"""The feed downloader against real HTTP servers on 127.0.0.1 that misbehave on request."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clp_alpm import __version__
from clp_alpm.cli.exits import exit_code_for
from clp_alpm.errors import DownloadError
from clp_alpm.system.download import download, fetch_bytes
from tests.kits.paths import REPO

NAME = "CLPR261125.clp"
PATH = f"/CLP/{NAME}"
DATA = os.urandom(300_000)  # several 64 KiB chunks
SHA = hashlib.sha256(DATA).hexdigest()
FAST = {"backoff": 0.01, "timeout": 5.0}


# --- a mirror that can be told to misbehave -----------------------------------------------------


@dataclass
class Fault:
    status: int | None = None  # answer every request with this status and no body
    fail_first: int = 0  # answer the first N requests with HTTP 500
    truncate_after: int | None = None  # announce the full length, send K bytes, close
    truncate_times: int = 1_000_000  # ... for the first N requests only
    extra_length: int = 0  # announce a Content-Length larger than the body
    no_length: bool = False  # no Content-Length: the body ends when the connection closes
    hang: float = 0.0  # sleep before answering
    stall_after: int | None = None  # send K bytes of the body, then sleep `stall`
    stall: float = 0.0
    ignore_range: bool = False  # always answer 200 with the whole file
    redirect: str | None = None  # answer 302 to this location


@dataclass
class Seen:
    path: str
    range: str | None
    headers: dict[str, str]


@dataclass
class Feed:
    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path: str = PATH) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]


class FeedHandler(BaseHTTPRequestHandler):
    server: FeedServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        feed = self.server.feed
        with feed.lock:
            feed.seen.append(Seen(self.path, self.headers.get("Range"), dict(self.headers)))
            count = sum(1 for s in feed.seen if s.path == self.path)
        fault = feed.faults.get(self.path, Fault())
        if fault.hang:
            time.sleep(fault.hang)
        if fault.redirect is not None:
            self.send_response(302)
            self.send_header("Location", fault.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = fault.status or (500 if count <= fault.fail_first else None)
        if status is None and self.path not in feed.files:
            status = 404
        if status is not None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_file(feed.files[self.path], fault, count)

    def send_file(self, data: bytes, fault: Fault, count: int) -> None:
        body, status = data, 200
        asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if asked and not fault.ignore_range:
            start = int(asked.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body, status = data[start:], 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if not fault.no_length:
            self.send_header("Content-Length", str(len(body) + fault.extra_length))
        self.end_headers()
        if fault.truncate_after is not None and count <= fault.truncate_times:
            body = body[: fault.truncate_after]
        if fault.stall_after is not None:
            self.wfile.write(body[: fault.stall_after])
            self.wfile.flush()
            time.sleep(fault.stall)
            body = body[fault.stall_after :]
        self.wfile.write(body)


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, feed: Feed) -> None:
        super().__init__(("127.0.0.1", 0), FeedHandler)
        self.feed = feed
        feed.port = self.server_address[1]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hung up on a stalled or oversized answer: expected here


def start_feed() -> tuple[Feed, FeedServer]:
    feed = Feed(files={PATH: DATA})
    server = FeedServer(feed)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return feed, server


@pytest.fixture
def mirror() -> Iterator[Feed]:
    feed, server = start_feed()
    yield feed
    server.shutdown()
    server.server_close()


@pytest.fixture
def mirror2() -> Iterator[Feed]:
    feed, server = start_feed()
    yield feed
    server.shutdown()
    server.server_close()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "cache" / NAME


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def closed_port_url() -> str:
    """A URL on a port nobody listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{PATH}"


# --- the plain path -----------------------------------------------------------------------------


def test_download_checks_size_and_sha256(mirror, dest):
    result = download([mirror.url()], dest, expected_size=len(DATA), expected_sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert (result.url, result.path, result.size, result.sha256) == (
        mirror.url(), dest, len(DATA), SHA,
    )  # fmt: skip
    assert not result.resumed
    assert sorted(p.name for p in dest.parent.iterdir()) == [NAME]
    (seen,) = mirror.requests()
    assert seen.range is None
    assert seen.headers["User-Agent"] == f"clp/{__version__}"


def test_sha256_is_compared_case_insensitively(mirror, dest):
    download([mirror.url()], dest, expected_sha256=SHA.upper(), **FAST)
    assert dest.read_bytes() == DATA


def test_existing_dest_is_replaced(mirror, dest):
    dest.write_bytes(b"old copy")
    download([mirror.url()], dest, expected_sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA


def test_progress_reaches_the_total(mirror, dest):
    calls: list[tuple[int, int | None]] = []
    download([mirror.url()], dest, progress=lambda done, total: calls.append((done, total)), **FAST)
    assert calls[-1] == (len(DATA), len(DATA))
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert all(total == len(DATA) for _, total in calls)


def test_progress_total_comes_from_expected_size_without_content_length(mirror, dest):
    mirror.faults[PATH] = Fault(no_length=True)
    calls: list[tuple[int, int | None]] = []
    download(
        [mirror.url()], dest, expected_size=len(DATA),
        progress=lambda done, total: calls.append((done, total)), **FAST,
    )  # fmt: skip
    assert dest.read_bytes() == DATA
    assert calls[0][1] == len(DATA)
    assert calls[-1] == (len(DATA), len(DATA))


# --- failover -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_fault", "reason", "first_requests"),
    [
        ("refused", "connection refused (3 attempts)", None),
        (Fault(status=404), "HTTP 404", 1),
        (Fault(status=403), "HTTP 403", 1),
        (Fault(status=410), "HTTP 410", 1),
        (Fault(status=503), "HTTP 503 (3 attempts)", 3),
        ("wrong", "sha256 mismatch", 1),
    ],
)
def test_second_mirror_is_used_when_the_first_fails(
    mirror, mirror2, dest, first_fault, reason, first_requests
):
    if first_fault == "refused":
        first = closed_port_url()
    elif first_fault == "wrong":
        mirror.files[PATH] = os.urandom(len(DATA))
        first = mirror.url()
    else:
        mirror.faults[PATH] = first_fault
        first = mirror.url()
    result = download([first, mirror2.url()], dest, expected_sha256=SHA, **FAST)
    assert result.url == mirror2.url()
    assert dest.read_bytes() == DATA
    assert not part_of(dest).exists()
    if first_requests is not None:
        assert len(mirror.requests()) == first_requests
    # the reason the first mirror failed shows when the second fails too
    mirror2.faults[PATH] = Fault(status=404)
    dest.unlink()
    with pytest.raises(DownloadError) as failed:
        download([first, mirror2.url()], dest, expected_sha256=SHA, **FAST)
    assert f"{first}: {reason}; " in str(failed.value)


def test_all_mirrors_failing_lists_each_in_one_line(mirror, mirror2, dest):
    mirror.faults[PATH] = Fault(status=404)
    mirror2.files[PATH] = b"not the patch"
    with pytest.raises(DownloadError) as failed:
        download([mirror.url(), mirror2.url()], dest, expected_sha256=SHA, **FAST)
    assert str(failed.value) == (
        f"{NAME}: download failed: {mirror.url()}: HTTP 404; {mirror2.url()}: sha256 mismatch"
    )
    assert exit_code_for(failed.value) == 1
    assert list(dest.parent.iterdir()) == []  # a bad file leaves no .part behind


def test_no_mirror_at_all(dest):
    with pytest.raises(DownloadError, match="no mirror"):
        download([], dest, **FAST)
    assert list(dest.parent.iterdir()) == []


def test_retry_succeeds_after_two_500s(mirror, dest):
    mirror.faults[PATH] = Fault(fail_first=2)
    result = download([mirror.url()], dest, expected_sha256=SHA, retries=2, **FAST)
    assert result.url == mirror.url()
    assert dest.read_bytes() == DATA
    assert len(mirror.requests()) == 3


def test_retries_are_bounded(mirror, dest):
    mirror.faults[PATH] = Fault(fail_first=2)
    with pytest.raises(DownloadError) as failed:
        download([mirror.url()], dest, retries=1, **FAST)
    assert str(failed.value).endswith(f"{mirror.url()}: HTTP 500 (2 attempts)")
    assert len(mirror.requests()) == 2
    assert not dest.exists()


def test_backoff_doubles_between_retries(mirror, dest):
    mirror.faults[PATH] = Fault(status=500)
    started = time.monotonic()
    with pytest.raises(DownloadError):
        download([mirror.url()], dest, retries=2, backoff=0.1, timeout=5.0)
    assert time.monotonic() - started >= 0.1 + 0.2


# --- resuming -----------------------------------------------------------------------------------


def test_resume_from_an_existing_part(mirror, dest):
    part_of(dest).write_bytes(DATA[:100_000])
    result = download([mirror.url()], dest, expected_size=len(DATA), expected_sha256=SHA, **FAST)
    assert [s.range for s in mirror.requests()] == ["bytes=100000-"]
    assert result.resumed
    assert result.sha256 == SHA
    assert dest.read_bytes() == DATA
    assert not part_of(dest).exists()


def test_resumed_part_with_bad_bytes_is_downloaded_again_from_zero(mirror, dest):
    part_of(dest).write_bytes(b"x" * 100_000)
    result = download([mirror.url()], dest, expected_sha256=SHA, **FAST)
    assert [s.range for s in mirror.requests()] == ["bytes=100000-", None]
    assert not result.resumed
    assert dest.read_bytes() == DATA


def test_complete_part_is_finished_without_downloading_again(mirror, dest):
    part_of(dest).write_bytes(DATA)  # a run that died between the last byte and the rename
    result = download([mirror.url()], dest, expected_sha256=SHA, **FAST)
    assert [s.range for s in mirror.requests()] == [f"bytes={len(DATA)}-"]
    assert result.resumed
    assert dest.read_bytes() == DATA


def test_part_larger_than_the_expected_size_is_discarded(mirror, dest):
    part_of(dest).write_bytes(DATA + b"junk")
    download([mirror.url()], dest, expected_size=len(DATA), expected_sha256=SHA, **FAST)
    assert [s.range for s in mirror.requests()] == [None]
    assert dest.read_bytes() == DATA


def test_server_ignoring_range_restarts_from_zero(mirror, dest):
    mirror.faults[PATH] = Fault(ignore_range=True)
    part_of(dest).write_bytes(DATA[:100_000])
    result = download([mirror.url()], dest, expected_sha256=SHA, **FAST)
    assert [s.range for s in mirror.requests()] == ["bytes=100000-"]
    assert not result.resumed
    assert dest.read_bytes() == DATA  # not the first 100,000 bytes twice


def test_truncated_body_is_retried_and_completed(mirror, dest):
    mirror.faults[PATH] = Fault(truncate_after=100_000, truncate_times=1)
    result = download([mirror.url()], dest, expected_sha256=SHA, **FAST)
    assert [s.range for s in mirror.requests()] == [None, "bytes=100000-"]
    assert result.resumed
    assert dest.read_bytes() == DATA


def test_content_length_larger_than_the_body_is_a_truncation(mirror, dest):
    mirror.faults[PATH] = Fault(extra_length=1000)  # announces 1000 bytes it never sends
    result = download([mirror.url()], dest, expected_sha256=SHA, **FAST)
    # the resume finds the .part complete (HTTP 416, bytes */N) and only checks it
    assert [s.range for s in mirror.requests()] == [None, f"bytes={len(DATA)}-"]
    assert result.resumed
    assert dest.read_bytes() == DATA


def test_network_failure_everywhere_keeps_the_part_for_the_next_run(mirror, dest):
    mirror.faults[PATH] = Fault(truncate_after=100_000)  # every answer stops after 100,000 bytes
    with pytest.raises(DownloadError) as failed:
        download([mirror.url()], dest, expected_sha256=SHA, retries=1, **FAST)
    assert str(failed.value).endswith(
        f"{mirror.url()}: connection closed early (truncated body: 200000 of {len(DATA)} bytes)"
        " (2 attempts)"
    )
    assert part_of(dest).read_bytes() == DATA[:200_000]
    assert not dest.exists()
    # the next run resumes it
    mirror.faults.clear()
    result = download([mirror.url()], dest, expected_sha256=SHA, **FAST)
    assert mirror.requests()[-1].range == "bytes=200000-"
    assert result.resumed
    assert dest.read_bytes() == DATA


# --- sizes --------------------------------------------------------------------------------------


def test_content_length_over_max_size_is_refused(mirror, dest):
    part_of(dest).write_bytes(DATA[:1000])
    with pytest.raises(DownloadError) as failed:
        download([mirror.url()], dest, max_size=200_000, **FAST)
    assert "exceeds the limit of 200000 bytes" in str(failed.value)
    assert list(dest.parent.iterdir()) == []


def test_lying_server_over_max_size_is_cut_off(mirror, dest):
    mirror.faults[PATH] = Fault(no_length=True)
    with pytest.raises(DownloadError) as failed:
        download([mirror.url()], dest, max_size=200_000, **FAST)
    assert f"{mirror.url()}: more than the limit of 200000 bytes" in str(failed.value)
    assert list(dest.parent.iterdir()) == []


def test_more_bytes_than_expected_is_refused(mirror, dest):
    mirror.faults[PATH] = Fault(no_length=True)
    with pytest.raises(DownloadError) as failed:
        download([mirror.url()], dest, expected_size=1000, **FAST)
    assert "more than the expected 1000 bytes" in str(failed.value)
    assert list(dest.parent.iterdir()) == []


def test_announced_size_other_than_expected_is_refused(mirror, mirror2, dest):
    mirror.files[PATH] = DATA + b"!"
    result = download([mirror.url(), mirror2.url()], dest, expected_size=len(DATA), **FAST)
    assert result.url == mirror2.url()
    assert dest.read_bytes() == DATA


def test_short_file_without_length_is_a_size_mismatch(mirror, dest):
    mirror.faults[PATH] = Fault(no_length=True)
    with pytest.raises(DownloadError) as failed:
        download([mirror.url()], dest, expected_size=len(DATA) + 5, **FAST)
    assert f"size {len(DATA)} bytes, expected {len(DATA) + 5}" in str(failed.value)
    assert list(dest.parent.iterdir()) == []


# --- timeouts -----------------------------------------------------------------------------------


def test_hanging_mirror_times_out_and_the_next_is_used(mirror, mirror2, dest):
    mirror.faults[PATH] = Fault(hang=1.5)
    started = time.monotonic()
    result = download(
        [mirror.url(), mirror2.url()], dest, expected_sha256=SHA, timeout=0.5, retries=0,
        backoff=0.01,
    )  # fmt: skip
    assert time.monotonic() - started < 1.4
    assert result.url == mirror2.url()
    assert dest.read_bytes() == DATA


def test_stalled_body_times_out_and_keeps_the_part(mirror, dest):
    mirror.faults[PATH] = Fault(stall_after=70_000, stall=1.5)
    started = time.monotonic()
    with pytest.raises(DownloadError) as failed:
        download([mirror.url()], dest, timeout=0.5, retries=0, backoff=0.01)
    assert time.monotonic() - started < 1.4
    assert str(failed.value).endswith(f"{mirror.url()}: timed out")
    assert part_of(dest).read_bytes() == DATA[:70_000]


# --- schemes, redirects, credentials ------------------------------------------------------------


def test_file_url(tmp_path, dest):
    source = tmp_path / "mirror" / "CLP" / NAME
    source.parent.mkdir(parents=True)
    source.write_bytes(DATA)
    result = download([source.as_uri()], dest, expected_size=len(DATA), expected_sha256=SHA)
    assert result.url == source.as_uri()
    assert dest.read_bytes() == DATA


def test_file_url_resumes(tmp_path, dest):
    source = tmp_path / NAME
    source.write_bytes(DATA)
    part_of(dest).write_bytes(DATA[:100_000])
    result = download([source.as_uri()], dest, expected_sha256=SHA)
    assert result.resumed
    assert dest.read_bytes() == DATA


def test_missing_file_url_goes_to_the_next_mirror(tmp_path, mirror, dest):
    missing = (tmp_path / "nowhere" / NAME).as_uri()
    result = download([missing, mirror.url()], dest, expected_sha256=SHA, **FAST)
    assert result.url == mirror.url()
    with pytest.raises(DownloadError, match=f"{re.escape(missing)}: no such file"):
        download([missing], dest, **FAST)


def test_unsupported_scheme_is_refused(dest):
    with pytest.raises(DownloadError) as failed:
        download([f"ftp://mirror.example/CLP/{NAME}"], dest, **FAST)
    assert "unsupported URL scheme 'ftp' (use http, https or file)" in str(failed.value)
    assert list(dest.parent.iterdir()) == []


def test_redirect_within_http_is_followed(mirror, dest):
    mirror.files["/moved/" + NAME] = DATA
    mirror.faults[PATH] = Fault(redirect=mirror.url("/moved/" + NAME))
    download([mirror.url()], dest, expected_sha256=SHA, **FAST)
    assert dest.read_bytes() == DATA


def test_redirect_to_a_local_file_is_refused(tmp_path, mirror, dest):
    secret = tmp_path / "secret"
    secret.write_bytes(b"root's secret")
    mirror.faults[PATH] = Fault(redirect=secret.as_uri())
    with pytest.raises(DownloadError) as failed:
        download([mirror.url()], dest, **FAST)
    assert str(failed.value).endswith(
        f"{mirror.url()}: redirect to unsupported URL {secret.as_uri()}: HTTP 302"
    )
    assert list(dest.parent.iterdir()) == []


def test_credentials_in_url_are_sent_and_never_shown(mirror, dest):
    mirror.faults[PATH] = Fault(status=404)
    url = f"http://clp:s3cret@127.0.0.1:{mirror.port}{PATH}"
    with pytest.raises(DownloadError) as failed:
        download([url], dest, **FAST)
    assert "s3cret" not in str(failed.value)
    assert f"http://127.0.0.1:{mirror.port}{PATH}: HTTP 404" in str(failed.value)
    (seen,) = mirror.requests()
    assert seen.headers["Authorization"] == "Basic Y2xwOnMzY3JldA=="  # clp:s3cret


# --- local disk errors --------------------------------------------------------------------------


def test_unwritable_dest_stops_without_trying_other_mirrors(tmp_path, mirror, mirror2):
    blocker = tmp_path / "cache" / "not-a-dir"
    blocker.write_text("a regular file where a directory should be")
    dest = blocker / NAME
    with pytest.raises(DownloadError) as failed:
        download([mirror.url(), mirror2.url()], dest, **FAST)
    message = str(failed.value)
    assert str(dest) in message
    assert "Not a directory" in message
    assert mirror.requests() == [] and mirror2.requests() == []


DOWNLOAD_IN_SUBPROCESS = """
import json, sys
from pathlib import Path
from clp_alpm.errors import DownloadError
from clp_alpm.system.download import download
dest = Path(sys.argv[1])
try:
    download(sys.argv[2:], dest, backoff=0.01, timeout=5.0)
    out = {"error": None}
except DownloadError as err:
    out = {"error": str(err)}
out["left"] = sorted(p.name for p in dest.parent.iterdir())
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    ("mount_options", "os_error"),
    [("size=64k", "No space left on device"), ("ro", "Read-only file system")],
)
def test_disk_errors_stop_at_once_and_leave_no_part(
    tmp_path, mirror, mirror2, mount_options, os_error
):
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    dest = mountpoint / NAME
    script = 'mount -t tmpfs -o "$1" tmpfs "$2" && shift 2 && exec "$@"'
    argv = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
        mount_options, str(mountpoint), sys.executable, "-c", DOWNLOAD_IN_SUBPROCESS,
        str(dest), mirror.url(), mirror2.url(),
    ]  # fmt: skip
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["error"] == f"{NAME}: download failed: cannot write {dest}.part: {os_error}"
    assert out["left"] == []
    assert len(mirror.requests()) <= 1 and mirror2.requests() == []


# --- fetch_bytes --------------------------------------------------------------------------------


def test_fetch_bytes_uses_the_first_mirror_that_has_the_file(mirror, mirror2):
    mirror2.files["/CLP/CLP.db"] = b"<Packages/>"
    url, data = fetch_bytes([mirror.url("/CLP/CLP.db"), mirror2.url("/CLP/CLP.db")], max_size=1000)
    assert (url, data) == (mirror2.url("/CLP/CLP.db"), b"<Packages/>")


def test_fetch_bytes_retries_a_truncated_answer(mirror):
    mirror.faults[PATH] = Fault(truncate_after=1000, truncate_times=1)
    url, data = fetch_bytes([mirror.url()], max_size=len(DATA), backoff=0.01)
    assert data == DATA
    assert [s.range for s in mirror.requests()] == [None, None]


def test_fetch_bytes_exactly_max_size_is_fine(mirror):
    _, data = fetch_bytes([mirror.url()], max_size=len(DATA))
    assert data == DATA


@pytest.mark.parametrize("fault", [Fault(), Fault(no_length=True)], ids=["announced", "lying"])
def test_fetch_bytes_refuses_more_than_max_size(mirror, fault):
    mirror.faults[PATH] = fault
    with pytest.raises(DownloadError) as failed:
        fetch_bytes([mirror.url()], max_size=len(DATA) - 1, backoff=0.01)
    assert str(failed.value).startswith(f"{NAME}: download failed: {mirror.url()}: ")
    assert "limit" in str(failed.value)
    assert len(mirror.requests()) == 1  # a file too big is not retried


def test_fetch_bytes_all_failing(mirror):
    with pytest.raises(DownloadError) as failed:
        fetch_bytes([mirror.url("/CLP/CLP.db.sig"), closed_port_url()], max_size=100, retries=0)
    assert str(failed.value).startswith(
        f"CLP.db.sig: download failed: {mirror.url('/CLP/CLP.db.sig')}: HTTP 404; http://127.0.0.1:"
    )
    assert str(failed.value).endswith(": connection refused")


def test_a_trickling_mirror_is_given_up_for_the_next(tmp_path, monkeypatch):
    """A mirror sending a byte now and then never times out a single read; pacman's low-speed
    rule (1 byte/s over 10 s, shortened here) moves on to the next mirror."""
    import http.server
    import threading

    import clp_alpm.system.download as download_module
    import clp_alpm.system.timeouts as timeouts_module

    monkeypatch.setattr(timeouts_module, "LOW_SPEED_TIME", 2.0)
    payload = b"x" * 1000

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            for byte in payload[:8]:  # a byte every 1.5 s: under 1 byte/s
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(1.5)

        def log_message(self, *args):
            return None

    class Good(Trickle):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (Trickle, Good)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        urls = [f"http://127.0.0.1:{s.server_address[1]}/f" for s in servers]
        started = time.monotonic()
        result = download_module.download(urls, tmp_path / "f", timeout=5, backoff=0.01)
        assert result.url == urls[1]
        assert (tmp_path / "f").read_bytes() == payload
        assert time.monotonic() - started < 8  # not 3 attempts x 12 s of trickle
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
