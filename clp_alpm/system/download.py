"""Download files of the patch feed from plain HTTP(S) or file:// mirrors, with failover.

A download streams into `<dest>.part` beside `dest`, resumes that file with a Range request when
it already exists, checks size and SHA-256, and only then renames it over `dest`. Mirrors are
tried in order; a mirror that fails transiently is retried with exponential backoff first.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import http.client
import io
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from clp_alpm import __version__
from clp_alpm.atomicfile import fsync_directory
from clp_alpm.errors import DownloadError
from clp_alpm.system.timeouts import DEFAULT_TIMEOUTS, Timeouts, timeouts_of

__all__ = ["DEFAULT_TIMEOUTS", "Timeouts", "download", "fetch_bytes", "timeouts_of"]

USER_AGENT = f"clp/{__version__}"

CHUNK_SIZE = 64 * 1024
PROGRESS_INTERVAL = 0.1  # seconds between two progress calls while bytes stream in
SUPPORTED_SCHEMES = ("http", "https", "file")

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class DownloadResult:
    url: str
    path: Path
    size: int
    sha256: str
    resumed: bool


# --- how one attempt at one mirror can end ------------------------------------------------------


class _MirrorFailed(Exception):
    """This mirror cannot deliver the file (HTTP 404, bad URL...): go to the next mirror."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Transient(_MirrorFailed):
    """Worth retrying on the same mirror: connection trouble, timeout, HTTP 5xx, truncation."""


class _Stalled(_MirrorFailed):
    """The body stopped or slowed to a trickle: not retried, and the mirror's other files are
    not asked for either (pacman gives such a mirror up for the next)."""


class _BadFile(_MirrorFailed):
    """The mirror sent the wrong file (size, hash, over the limit): the .part is worthless."""


class _RangeRejected(Exception):
    """The mirror cannot serve the requested range (HTTP 416): start again from zero."""


class _DiskFailure(Exception):
    """Writing the local file failed; no mirror can fix that."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(str(error))
        self.path = path
        self.error = error


# --- public API ---------------------------------------------------------------------------------


def download(
    urls: Sequence[str],
    dest: Path,
    *,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    max_size: int = 2 * 1024**3,
    timeout: Timeouts | float = DEFAULT_TIMEOUTS,
    retries: int = 2,
    backoff: float = 0.5,
    progress: Progress | None = None,
) -> DownloadResult:
    """Download the file that every URL in `urls` names (one per mirror) to `dest`.

    Raises DownloadError naming each mirror and why it failed, or naming `dest` and the OS
    error when the file cannot be written (then no other mirror is tried).
    """
    dest = Path(dest)
    timeouts = Timeouts.of(timeout)
    want_sha = expected_sha256.lower() if expected_sha256 is not None else None
    limit = max_size if expected_size is None else min(max_size, expected_size)
    failures: list[tuple[str, str]] = []
    part_path = dest.with_name(dest.name + ".part")
    try:
        part = _PartFile(part_path)
    except OSError as err:
        raise _disk_error(dest, part_path, err) from None
    try:
        if part.size > limit:
            part.restart()
        stalled: set[str] = set()
        for url in urls:
            host = _host_of(url)
            if host in stalled:
                failures.append((url, "skipped (this mirror stalled)"))
                continue
            try:
                result = _download_from_mirror(
                    url, part, dest, want_sha, expected_size, max_size,
                    timeouts, retries, backoff, progress,
                )  # fmt: skip
            except _MirrorFailed as failure:
                failures.append((url, failure.reason))
                if isinstance(failure, _Stalled):
                    stalled.add(host)
                continue
            return result
    except _DiskFailure as failure:
        part.remove()
        raise _disk_error(dest, failure.path, failure.error) from None
    except BaseException:
        part.close()
        raise
    # Every mirror failed. A .part holding bytes is kept so that the next run resumes it; an
    # empty one (a bad file was thrown away, or nothing arrived) is removed.
    if part.size == 0:
        part.remove()
    else:
        part.close()
    raise DownloadError(_failure_message(dest.name, failures))


def fetch_bytes(
    urls: Sequence[str],
    *,
    max_size: int,
    timeout: Timeouts | float = DEFAULT_TIMEOUTS,
    retries: int = 2,
    backoff: float = 0.5,
) -> tuple[str, bytes]:
    """Fetch a small file (the index, a signature) into memory from the first mirror that has it.

    Returns (the URL it came from, its bytes). Reading stops as soon as the data would exceed
    `max_size`.
    """
    timeouts = Timeouts.of(timeout)
    failures: list[tuple[str, str]] = []
    for url in urls:
        attempt = 0
        while True:
            try:
                return url, _fetch_once(url, max_size, timeouts)
            except _BadFile as failure:
                failures.append((url, failure.reason))
                break
            except _Transient as failure:
                if attempt < retries:
                    time.sleep(backoff * 2**attempt)
                    attempt += 1
                    continue
                failures.append((url, _with_attempts(failure.reason, attempt + 1)))
                break
            except _MirrorFailed as failure:
                failures.append((url, failure.reason))
                break
    name = _url_basename(urls[0]) if urls else "file"
    raise DownloadError(_failure_message(name, failures))


# --- one mirror ---------------------------------------------------------------------------------


def _download_from_mirror(
    url: str,
    part: _PartFile,
    dest: Path,
    want_sha: str | None,
    expected_size: int | None,
    max_size: int,
    timeout: Timeouts,
    retries: int,
    backoff: float,
    progress: Progress | None,
) -> DownloadResult:
    """Try one mirror, with retries. Raises _MirrorFailed with the last reason."""
    attempt = 0
    clean_retry_left = True
    while True:
        offset = part.size
        try:
            _transfer(url, part, expected_size, max_size, timeout, progress)
            _check_complete(part, expected_size, want_sha)
        except _RangeRejected:
            part.restart()  # offset is 0 now, so this cannot repeat
            continue
        except _BadFile:
            part.restart()
            # A resumed file mixes old bytes with new ones; the old ones may be the bad part,
            # so the mirror deserves one clean try before it is blamed.
            if offset > 0 and clean_retry_left:
                clean_retry_left = False
                continue
            raise
        except _Transient as failure:
            if attempt < retries:
                time.sleep(backoff * 2**attempt)
                attempt += 1
                continue
            raise _Transient(_with_attempts(failure.reason, attempt + 1)) from None
        part.commit_to(dest)
        return DownloadResult(
            url=url, path=dest, size=part.size, sha256=part.hexdigest(), resumed=part.resumed
        )


def _transfer(
    url: str,
    part: _PartFile,
    expected_size: int | None,
    max_size: int,
    timeout: Timeouts,
    progress: Progress | None,
) -> None:
    """One request: stream the body into the .part, resuming it when it holds bytes."""
    offset = part.size
    stream = _open_stream(url, offset, timeout)
    try:
        if stream.start == 0:
            if offset > 0:
                part.restart()  # the mirror ignored our Range and sends the whole file
        else:
            part.prepare_append()
        total = stream.total
        _check_announced_size(total, expected_size, max_size)
        if total is None:
            total = expected_size
        reporter = _ProgressReporter(progress, total)
        reporter.update(part.size)
        while True:
            chunk = stream.read(CHUNK_SIZE)
            if not chunk:
                break
            _check_growth(part.size + len(chunk), expected_size, max_size)
            part.append(chunk)
            reporter.update(part.size)
        if stream.total is not None and part.size < stream.total:
            raise _Transient(stream.truncated_reason())
        reporter.finish(part.size)
    finally:
        stream.close()


def _host_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}"


def _fetch_once(url: str, max_size: int, timeout: Timeouts) -> bytes:
    stream = _open_stream(url, 0, timeout)
    try:
        _check_announced_size(stream.total, None, max_size)
        data = bytearray()
        while True:
            # Ask for at most one byte past the limit: enough to tell that the file is too big.
            chunk = stream.read(min(CHUNK_SIZE, max_size + 1 - len(data)))
            if not chunk:
                break
            _check_growth(len(data) + len(chunk), None, max_size)
            data += chunk
        if stream.total is not None and len(data) < stream.total:
            raise _Transient(stream.truncated_reason())
        return bytes(data)
    finally:
        stream.close()


def _check_announced_size(total: int | None, expected_size: int | None, max_size: int) -> None:
    if total is None:
        return
    if total > max_size:
        raise _BadFile(f"size {total} bytes exceeds the limit of {max_size} bytes")
    if expected_size is not None and total != expected_size:
        raise _BadFile(f"size {total} bytes, expected {expected_size}")


def _check_growth(size: int, expected_size: int | None, max_size: int) -> None:
    if size > max_size:
        raise _BadFile(f"more than the limit of {max_size} bytes")
    if expected_size is not None and size > expected_size:
        raise _BadFile(f"more than the expected {expected_size} bytes")


def _check_complete(part: _PartFile, expected_size: int | None, want_sha: str | None) -> None:
    if expected_size is not None and part.size != expected_size:
        raise _BadFile(f"size {part.size} bytes, expected {expected_size}")
    if want_sha is not None and part.hexdigest() != want_sha:
        raise _BadFile("sha256 mismatch")


# --- the .part file -----------------------------------------------------------------------------


class _PartFile:
    """`<dest>.part`, with a running SHA-256 of what it holds. Every OSError is a _DiskFailure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        self.fd: int | None = os.open(path, flags, 0o644)
        try:
            self.size = os.fstat(self.fd).st_size
        except OSError:
            self.close()
            raise
        self.resumed = False
        # Hashing an existing .part is deferred until a mirror agrees to resume it.
        self._hash: hashlib._Hash | None = hashlib.sha256() if self.size == 0 else None

    @contextmanager
    def _disk(self) -> Iterator[int]:
        """Yield the open descriptor; turn any OSError into a _DiskFailure."""
        assert self.fd is not None, "the .part file is closed"
        try:
            yield self.fd
        except OSError as err:
            raise _DiskFailure(self.path, err) from None

    def restart(self) -> None:
        with self._disk() as fd:
            os.ftruncate(fd, 0)
        self.size = 0
        self.resumed = False
        self._hash = hashlib.sha256()

    def prepare_append(self) -> None:
        """Hash the bytes already there (once), so that the final digest covers the whole file."""
        if self._hash is None:
            digest = hashlib.sha256()
            done = 0
            with self._disk() as fd:
                while done < self.size:
                    chunk = os.pread(fd, min(CHUNK_SIZE, self.size - done), done)
                    if not chunk:
                        raise OSError(errno.EIO, "the file shrank while it was read")
                    digest.update(chunk)
                    done += len(chunk)
            self._hash = digest
        if self.size > 0:
            self.resumed = True

    def append(self, data: bytes) -> None:
        assert self._hash is not None
        view = memoryview(data)
        with self._disk() as fd:
            while view:
                written = os.pwrite(fd, view, self.size)
                self._hash.update(view[:written])
                self.size += written
                view = view[written:]

    def hexdigest(self) -> str:
        assert self._hash is not None
        return self._hash.hexdigest()

    def commit_to(self, dest: Path) -> None:
        """Make the finished file durable under its final name."""
        with self._disk() as fd:
            os.fsync(fd)
            self.close()
            os.replace(self.path, dest)
            fsync_directory(dest.parent)

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def remove(self) -> None:
        self.close()
        with suppress(OSError):  # the caller is already reporting a worse error, or none
            os.unlink(self.path)


class _ProgressReporter:
    def __init__(self, callback: Progress | None, total: int | None) -> None:
        self.callback = callback
        self.total = total
        self.last_call = 0.0

    def update(self, done: int) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if now - self.last_call >= PROGRESS_INTERVAL:
            self.last_call = now
            self.callback(done, self.total)

    def finish(self, done: int) -> None:
        if self.callback is not None:
            self.callback(done, done)


# --- opening a URL ------------------------------------------------------------------------------


@dataclass
class _Stream:
    """A response body positioned at byte `start` of a file of `total` bytes (None: unknown).

    `length` is how many bytes this body announced; ending short of it is a truncation.
    """

    body: io.BufferedIOBase  # an HTTPResponse, a file opened "rb" or a BytesIO: all have read1
    start: int
    total: int | None
    length: int | None
    received: int = 0
    window_start: float = field(default_factory=time.monotonic)
    window_bytes: int = 0
    sock: socket.socket | _DeadlineSocket | None = (
        None  # an HTTP body's: each read sets its timeout
    )
    timeouts: Timeouts = DEFAULT_TIMEOUTS

    def read(self, size: int) -> bytes:
        # read1, not read: read() waits for `size` bytes, and a timeout then loses the bytes
        # that did arrive, which a resume could have kept.
        slow_window = self._arm_timeout()
        try:
            chunk = self.body.read1(size)
        except http.client.IncompleteRead as err:
            raise _Transient(self.truncated_reason()) from err
        except TimeoutError:
            if slow_window:
                raise self._too_slow() from None
            raise _Stalled("timed out") from None
        except (OSError, http.client.HTTPException) as err:
            raise _network_failure(err) from err
        self.received += len(chunk)
        if not chunk and size > 0 and self.length is not None and self.received < self.length:
            raise _Transient(self.truncated_reason())
        self._check_speed(len(chunk))
        return chunk

    def _arm_timeout(self) -> bool:
        """Let the next read wait ReadTimeout, or only until the low-speed window closes while
        the window has not yet seen its bytes; True in that second case."""
        if self.sock is None:
            return False
        wait = self.timeouts.read
        needed = self.timeouts.speed_limit * self.timeouts.speed_time
        left = self.window_start + self.timeouts.speed_time - time.monotonic()
        slow_window = self.window_bytes < needed and left < wait
        if slow_window:
            wait = max(left, 0.01)
        with suppress(OSError):
            self.sock.settimeout(wait)
        return slow_window

    def _too_slow(self) -> _Stalled:
        limit, span = self.timeouts.speed_limit, self.timeouts.speed_time
        return _Stalled(f"too slow (under {limit} bytes/s for {span:g} s)")

    def _check_speed(self, count: int) -> None:
        """The low-speed rule: a mirror slower than LowSpeedLimit over LowSpeedTimeout is given
        up (each single read has its own timeout, but a trickle would keep clp, and its lock,
        there for ever)."""
        self.window_bytes += count
        elapsed = time.monotonic() - self.window_start
        if elapsed < self.timeouts.speed_time:
            return
        if self.window_bytes < self.timeouts.speed_limit * elapsed:
            raise self._too_slow()
        self.window_start, self.window_bytes = time.monotonic(), 0

    def truncated_reason(self) -> str:
        got = self.start + self.received
        if self.total is None:
            return f"connection closed early (truncated body after {got} bytes)"
        return f"connection closed early (truncated body: {got} of {self.total} bytes)"

    def close(self) -> None:
        with suppress(OSError, http.client.HTTPException):
            self.body.close()


def _open_stream(url: str, offset: int, timeout: Timeouts) -> _Stream:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return _open_http(url, offset, timeout)
    if scheme == "file":
        return _open_file(url, offset)
    shown = f"'{scheme}'" if scheme else "none"
    raise _MirrorFailed(f"unsupported URL scheme {shown} (use http, https or file)")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect to ftp://; a mirror may only send us to http(s)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            fp.close()
            raise _MirrorFailed(f"redirect to unsupported URL {_redact(newurl)}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _DeadlineSocket:
    """A connected socket whose reads, until `deadline` is cleared, never wait past it: the
    request and the response's headers get ConnectTimeout in all, not per read (a server
    trickling its header lines a byte at a time would otherwise hold clp for ever)."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._seconds = seconds
        self.deadline: float | None = time.monotonic() + seconds

    def _arm(self) -> None:
        if self.deadline is None:
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self._sock.settimeout(min(self._seconds, left))

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._arm()
        return self._sock.recv(size, flags)

    def makefile(self, mode: str = "rb", buffering: int | None = None) -> io.BufferedReader:
        # as socket.makefile does, but reading through this object
        self._sock._io_refs += 1  # type: ignore[attr-defined]
        raw = socket.SocketIO(self, "rb")  # type: ignore[arg-type]
        return io.BufferedReader(raw, buffering or io.DEFAULT_BUFFER_SIZE)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _HTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self.timeout)  # type: ignore[arg-type]


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self.timeout)  # type: ignore[arg-type]


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects, _HTTPHandler, _HTTPSHandler)


def _open_http(url: str, offset: int, timeout: Timeouts) -> _Stream:
    plain_url, authorization = _split_credentials(url)
    request = urllib.request.Request(
        plain_url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    )
    if authorization is not None:
        # Unredirected: a redirect to another host must not carry the mirror's password.
        request.add_unredirected_header("Authorization", authorization)
    if offset > 0:
        request.add_header("Range", f"bytes={offset}-")
    try:
        # the connect timeout bounds the connect and the wait for the response's headers
        response = _OPENER.open(request, timeout=timeout.connect)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset > 0:
            if _unsatisfied_range_total(err.headers.get("Content-Range")) == offset:
                # The .part already holds the whole file (a run died before the rename).
                return _Stream(io.BytesIO(), offset, offset, 0)
            raise _RangeRejected() from None
        if err.code >= 500:
            raise _Transient(f"HTTP {err.code}") from None
        if 300 <= err.code < 400:
            raise _redirect_failure(plain_url, err) from None
        raise _MirrorFailed(f"HTTP {err.code}") from None
    except (OSError, http.client.HTTPException, ValueError) as err:
        # URLError is an OSError; ValueError is a URL urllib cannot parse (bad port...).
        failure = _network_failure(err)
        if failure.reason == "timed out":  # a server that does not answer will not: next one
            raise _MirrorFailed(f"no answer within {timeout.connect:g} s") from None
        raise failure from None
    try:
        stream = _http_stream(response, offset)
        # from here on each read of the body waits ReadTimeout at most for a byte, and the
        # low-speed rule bounds a trickle
        sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
        if isinstance(sock, _DeadlineSocket):
            sock.deadline = None  # the headers are in: the body has its own rules
        stream.sock = sock if isinstance(sock, (socket.socket, _DeadlineSocket)) else None
        stream.timeouts = timeout
        stream.window_start = time.monotonic()
        return stream
    except BaseException:
        response.close()
        raise


def _http_stream(response: http.client.HTTPResponse, offset: int) -> _Stream:
    length = _parse_content_length(response.headers.get("Content-Length"))
    if response.status == 200:
        return _Stream(response, 0, length, length)
    if response.status == 206:
        start, end, total = _parse_content_range(response.headers.get("Content-Range"))
        if start != offset:
            raise _MirrorFailed(f"asked for bytes from {offset}, got a range from {start}")
        if length is not None and length != end - start + 1:
            raise _MirrorFailed("Content-Range and Content-Length disagree")
        return _Stream(response, start, total, end - start + 1)
    raise _MirrorFailed(f"unexpected HTTP {response.status}")


def _redirect_failure(url: str, err: urllib.error.HTTPError) -> _MirrorFailed:
    """urllib refuses a redirect loop and a redirect to another scheme itself: say which."""
    target = (err.headers.get("Location") or "") if err.headers is not None else ""
    scheme = urllib.parse.urlsplit(urllib.parse.urljoin(url, target)).scheme.lower()
    if target and scheme not in ("http", "https"):
        return _MirrorFailed(
            f"redirect to unsupported URL {_redact(target)[:200]}: HTTP {err.code}"
        )
    if "loop" in str(err.reason):
        return _MirrorFailed(f"a redirect loop: HTTP {err.code}")
    return _MirrorFailed(f"HTTP {err.code}")


def _split_credentials(url: str) -> tuple[str, str | None]:
    """`https://user:pw@host/x` (as pacman accepts) -> the URL without them, a Basic header."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    header = "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), header


def _parse_content_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise _MirrorFailed(f"bad Content-Length {value[:40]!r}")
    return int(value)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _parse_content_range(value: str | None) -> tuple[int, int, int | None]:
    raw = (value or "").strip()
    match = _CONTENT_RANGE.fullmatch(raw)
    if not match:
        raise _MirrorFailed(f"HTTP 206 with bad Content-Range {raw[:60]!r}")
    start, end = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if end < start or (total is not None and end >= total):
        raise _MirrorFailed(f"HTTP 206 with bad Content-Range {raw[:60]!r}")
    return start, end, total


def _unsatisfied_range_total(value: str | None) -> int | None:
    """The file size that a 416 answer states (`bytes */N`), if it states one."""
    match = re.fullmatch(r"bytes \*/(\d+)", (value or "").strip())
    return int(match.group(1)) if match else None


def _open_file(url: str, offset: int) -> _Stream:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise _MirrorFailed(f"file URL names a remote host {parts.netloc!r}")
    path = urllib.request.url2pathname(parts.path)
    try:
        body = open(path, "rb")  # noqa: SIM115 - the _Stream closes it
    except FileNotFoundError:
        raise _MirrorFailed("no such file") from None
    except OSError as err:
        raise _MirrorFailed(err.strerror or str(err)) from None
    try:
        size = os.fstat(body.fileno()).st_size
        if offset > size:
            raise _RangeRejected()
        body.seek(offset)
    except BaseException:
        body.close()
        raise
    return _Stream(body, offset, size, size - offset)


def _network_failure(err: BaseException) -> _MirrorFailed:
    """Classify an exception from urllib or a socket read."""
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, ssl.SSLCertVerificationError):
        return _MirrorFailed(f"TLS certificate not trusted: {reason.verify_message}")
    if isinstance(reason, TimeoutError):
        return _Transient("timed out")
    if isinstance(reason, ConnectionRefusedError):
        return _Transient("connection refused")
    if isinstance(reason, ConnectionResetError):
        return _Transient("connection reset")
    if isinstance(reason, http.client.RemoteDisconnected):
        return _Transient("connection closed without a response")
    if isinstance(reason, OSError) and reason.strerror:
        return _Transient(reason.strerror)
    if isinstance(reason, ValueError):
        return _MirrorFailed(f"bad URL: {reason}")
    return _Transient(str(reason) or type(reason).__name__)


# --- messages -----------------------------------------------------------------------------------


def _failure_message(name: str, failures: list[tuple[str, str]]) -> str:
    if not failures:
        return f"{name}: download failed: no mirror to download from"
    listed = "; ".join(f"{_redact(url)}: {reason}" for url, reason in failures)
    return _one_line(f"{name}: download failed: {listed}")


def _disk_error(dest: Path, path: Path, err: OSError) -> DownloadError:
    detail = err.strerror or str(err)
    return DownloadError(_one_line(f"{dest.name}: download failed: cannot write {path}: {detail}"))


def _with_attempts(reason: str, attempts: int) -> str:
    return reason if attempts == 1 else f"{reason} ({attempts} attempts)"


def _redact(url: str) -> str:
    """Drop user:password from a URL before it goes into a message."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _url_basename(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(path.rstrip("/").rpartition("/")[2]) or url


def _one_line(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)
