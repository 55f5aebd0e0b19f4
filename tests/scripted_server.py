"""The scaffolding both test servers share: a ThreadingHTTPServer on an ephemeral 127.0.0.1 port, run in
a thread, serving scripted replies per path (the last one repeats) and recording every request.

Subclasses (``ddragon_server.DDragonServer``, ``hook_server.HookServer``) give the reply and request
types and the handler class that answers.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, Self, TypeVar

ReplyT = TypeVar("ReplyT")
RequestT = TypeVar("RequestT")


class _QuietServer(ThreadingHTTPServer):
    """Daemon handler threads; a client hanging up mid-reply (timeouts under test) is not an error."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class ScriptedServer(Generic[ReplyT, RequestT]):
    """Started by ``with``; ``requests`` lists what it received, ``script`` sets what it answers."""

    thread_name = "scripted-test-server"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: dict[str, list[ReplyT]] = {}
        self.requests: list[RequestT] = []
        self._stop = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=self.thread_name,
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def script(self, path: str, *replies: ReplyT) -> None:
        """Serve ``replies`` in order at ``path`` (the last one repeats)."""
        with self._lock:
            self._script[path] = list(replies)

    def _take(self, request: RequestT, path: str) -> ReplyT | None:
        """Record ``request``; the next reply scripted for ``path``, or None when there is none."""
        with self._lock:
            self.requests.append(request)
            replies = self._script.get(path)
            if not replies:
                return None
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
