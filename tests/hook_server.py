"""A recording HTTP server on 127.0.0.1 for hook tests: any method, scripted statuses per path.

Each path (without its query string) has a list of ``HookReply`` served in order, the last one
repeating; unscripted paths answer 200. Every request is recorded with method, raw path (with query),
headers and body.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class HookReply:
    """One scripted answer: status, headers, body, and a delay before answering."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class HookRequest:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-reply is not an error in these tests."""


class HookServer:
    """A ThreadingHTTPServer on an ephemeral 127.0.0.1 port that records every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: dict[str, list[HookReply]] = {}
        self.requests: list[HookRequest] = []
        self._stop = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="hook-test", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def script(self, path: str, *replies: HookReply) -> None:
        """Serve ``replies`` in order at ``path`` (the last one repeats)."""
        with self._lock:
            self._script[path] = list(replies)

    def _next(self, request: HookRequest) -> HookReply:
        with self._lock:
            self.requests.append(request)
            replies = self._script.get(urlsplit(request.path).path)
            if not replies:
                return HookReply()
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = server._next(HookRequest(self.command, self.path, dict(self.headers.items()), body))
                if reply.delay_s and server._stop.wait(reply.delay_s):
                    return
                with contextlib.suppress(OSError):
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        return Handler

    def __enter__(self) -> HookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def hook_server() -> Iterator[HookServer]:
    """A started HookServer, shut down afterwards."""
    with HookServer() as server:
        yield server
