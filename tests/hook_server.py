"""A recording HTTP server on 127.0.0.1 for hook tests: any method, scripted statuses per path.

Each path (without its query string) has a list of ``HookReply`` served in order, the last one
repeating; unscripted paths answer 200. Every request is recorded with method, raw path (with query),
headers and body.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.scripted_server import ScriptedServer


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


class HookServer(ScriptedServer[HookReply, HookRequest]):
    """A scripted server that records every request; unscripted paths answer 200."""

    thread_name = "hook-test"

    def _next(self, request: HookRequest) -> HookReply:
        return self._take(request, urlsplit(request.path).path) or HookReply()

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


@contextlib.contextmanager
def hook_server() -> Iterator[HookServer]:
    """A started HookServer, shut down afterwards."""
    with HookServer() as server:
        yield server
