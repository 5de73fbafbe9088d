"""A web server on 127.0.0.1 that misbehaves on purpose: each path answers as its `Answer`
says (a status, headers, a body; stalling after some bytes, trickling, redirecting, lying
about its length). The feed tests and the hostile corpus serve mirrors with it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None  # the Content-Length announced; None: len(body); -1: none at all
    stall_after: int | None = None  # send this many bytes of the body, then nothing
    trickle: float | None = None  # seconds between two bytes of the body
    location: str | None = None  # a redirect's target
    header_trickle: float | None = None  # seconds between two bytes of endless header lines


@dataclass
class Mirror:
    url: str
    answers: dict[str, Answer]
    requests: list[str] = field(default_factory=list)

    def serve(self, path: str, answer: Answer) -> None:
        self.answers[path] = answer


def _handler(mirror: Mirror, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            mirror.requests.append(self.path)
            answer = mirror.answers.get(self.path, Answer(b"not found\n", 404))
            if answer.header_trickle is not None:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                line = b"X-Slow: a\r\n"
                sent = 0
                while not stop.is_set():  # header lines that never end, a byte at a time
                    try:
                        self.wfile.write(line[sent % len(line) : sent % len(line) + 1])
                        self.wfile.flush()
                    except OSError:
                        return
                    sent += 1
                    time.sleep(answer.header_trickle)
                return
            self.send_response(answer.status)
            if answer.location is not None:
                self.send_header("Location", answer.location)
            length = len(answer.body) if answer.length is None else answer.length
            if length >= 0:
                self.send_header("Content-Length", str(length))
            else:
                self.send_header("Connection", "close")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            body = answer.body
            if answer.stall_after is not None:
                self.wfile.write(body[: answer.stall_after])
                self.wfile.flush()
                stop.wait(120)  # nothing more, until the test ends
                return
            if answer.trickle is not None:
                for byte in body:
                    if stop.is_set():
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(answer.trickle)
                return
            self.wfile.write(body)
            if length < 0 or length != len(body):
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@contextmanager
def mirror_server(answers: dict[str, Answer] | None = None) -> Iterator[Mirror]:
    """A misbehaving mirror on 127.0.0.1; `Mirror.url` is its address."""
    stop = threading.Event()
    mirror = Mirror("", dict(answers or {}))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror, stop))
    server.daemon_threads = True
    mirror.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield mirror
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
