"""A scripted HTTP server on 127.0.0.1 for tests that need real HTTP (no mocking of requests).

Each path has a list of ``Reply`` objects served in order; the last one repeats. Every request is recorded
with its headers. Use as a context manager or through the ``ddragon`` fixture in the tests.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.scripted_server import ScriptedServer


@dataclass(frozen=True)
class Reply:
    """One scripted response: status, headers, body (bytes, text, or any JSON value) and timing faults.

    ``delay_s`` stalls before the status line; ``stall_after_headers_s`` stalls between headers and body.
    ``length=False`` omits Content-Length and closes the connection to end the body. ``drop=True``
    closes the connection without answering. ``truncate_to`` sends only that many body bytes while
    declaring the full length.
    """

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    stall_after_headers_s: float = 0.0
    length: bool = True
    drop: bool = False
    truncate_to: int | None = None

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


def json_reply(value: Any, status: int = 200, **kwargs: Any) -> Reply:
    """A Reply carrying ``value`` as JSON with the right Content-Type."""
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return Reply(status=status, body=json.dumps(value).encode(), headers=headers, **kwargs)


@dataclass(frozen=True)
class Recorded:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]


class DDragonServer(ScriptedServer[Reply, Recorded]):
    """A scripted server for the Data Dragon tests; unscripted paths answer 404."""

    thread_name = "ddragon-test"

    def hits(self, path: str) -> int:
        """How many requests ``path`` received."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

    def _next(self, method: str, path: str, headers: dict[str, str]) -> Reply | None:
        return self._take(Recorded(method, path, headers), path)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                reply = server._next("GET", self.path, dict(self.headers.items()))
                with contextlib.suppress(OSError):
                    self._answer(reply)

            def _answer(self, reply: Reply | None) -> None:
                if reply is None:
                    reply = Reply(status=404, body=b"not scripted")
                if reply.delay_s and server._stop.wait(reply.delay_s):
                    return
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body = reply.payload()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.flush()
                if reply.stall_after_headers_s and server._stop.wait(reply.stall_after_headers_s):
                    return
                if reply.truncate_to is not None:
                    self.wfile.write(body[: reply.truncate_to])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        return Handler


@contextlib.contextmanager
def running_server() -> Iterator[DDragonServer]:
    """A started DDragonServer, shut down afterwards."""
    with DDragonServer() as server:
        yield server


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Waits:
    """An injected sleep that records every requested wait instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
