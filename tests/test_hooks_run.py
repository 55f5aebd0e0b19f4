"""Tests for ``hooks.run``: real HTTP hooks against 127.0.0.1 and real command hooks."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratmancer_jobs.hooks.run import HookHttpSettings, HookResult, run_hooks
from stratmancer_jobs.hookspec import PendingChange, after_run, parse_hooks
from tests.hook_server import HookReply, HookServer, hook_server

SECRET = "hook-secret-7f3a9c21d0"
LOG = logging.getLogger("stratmancer_jobs.test_hooks")
INSTANT = HookHttpSettings(instant_retries=True, max_attempts=3)


@pytest.fixture
def server() -> Iterator[HookServer]:
    """A recording hook server on 127.0.0.1."""
    with hook_server() as srv:
        yield srv


def _pending(job_id: str = "refresh_patch_meta", **fields: str) -> PendingChange:
    """A pending change with two paths and the given fields."""
    return PendingChange(
        job_id, ("/root/config/meta.json", "/root/x"), dict(fields), "2026-01-01T00:00:00+00:00"
    )


def _env(**extra: str) -> dict[str, str]:
    """The process environment for command hooks, plus ``extra``."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


def _closed_port() -> str:
    """A base URL where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_url_hook_fires_with_method_path_placeholders_and_headers(server: HookServer) -> None:
    """The hook sends the configured method to the expanded URL with the env-resolved header."""
    (hook,) = parse_hooks(
        "refresh_patch_meta",
        [
            {
                "url": server.base_url + "/meta/refresh?patch={patch}&job={job_id}",
                "headers": {"X-STRATMANCER-KEY": "env:STRATMANCER_API_KEY"},
            }
        ],
    )
    report = run_hooks(
        [hook], _pending(patch="16.23"), env={"STRATMANCER_API_KEY": SECRET}, log=LOG, http=INSTANT
    )
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/meta/refresh?patch=16.23&job=refresh_patch_meta")
    ]
    assert server.requests[0].headers["X-STRATMANCER-KEY"] == SECRET
    assert server.requests[0].body == b""
    assert report.results == (
        HookResult(0, hook.key, hook.key[2:], "ok", "HTTP 200 OK", report.results[0].duration_s),
    )
    assert report.ok and report.error is None
    assert report.succeeded_keys == (hook.key,)


def test_url_hook_other_method(server: HookServer) -> None:
    """A configured PUT is sent as PUT."""
    (hook,) = parse_hooks("j", [{"url": server.base_url + "/x", "method": "PUT"}])
    assert run_hooks([hook], _pending("j"), env={}, log=LOG, http=INSTANT).ok
    assert [r.method for r in server.requests] == ["PUT"]


def test_500_then_success_within_retries(server: HookServer, caplog: pytest.LogCaptureFixture) -> None:
    """A 500 is retried under the http.py rules and the second attempt succeeds."""
    server.script("/models/registry/reload", HookReply(500, b"boom"), HookReply(200))
    (hook,) = parse_hooks(JOB, [{"url": server.base_url + "/models/registry/reload"}])
    waits: list[float] = []
    policy = HookHttpSettings(max_attempts=3, backoff_base_s=0.5, max_backoff_s=0.5)
    with caplog.at_level(logging.INFO, logger=LOG.name):
        report = run_hooks(
            [hook], _pending(JOB), env={}, log=LOG, http=policy, sleep=waits.append, rng=lambda: 0.0
        )
    assert len(server.requests) == 2
    assert report.results[0].status == "ok"
    assert report.results[0].message == "HTTP 200 OK (attempt 2)"
    assert waits == [0.25]
    assert (
        f"hook on_change[0] POST {server.base_url}/models/registry/reload failed: "
        "HTTP 500 Internal Server Error (attempt 1 of 3); retrying in 0.2 s (backoff)"
    ) in caplog.messages


def test_retry_after_is_honoured_and_capped(server: HookServer) -> None:
    """A 429 with Retry-After waits that long, capped at max_retry_after_s."""
    server.script("/r", HookReply(429, headers={"Retry-After": "50"}), HookReply(200))
    (hook,) = parse_hooks(JOB, [{"url": server.base_url + "/r"}])
    waits: list[float] = []
    policy = HookHttpSettings(max_attempts=2, max_retry_after_s=7.0)
    assert run_hooks([hook], _pending(JOB), env={}, log=LOG, http=policy, sleep=waits.append).ok
    assert waits == [7.0]


JOB = "refresh_model_registry"


def test_always_failing_server_never_leaks_the_header(
    server: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Every attempt fails: an error naming the hook, and the header value appears nowhere."""
    server.script("/reload", HookReply(503, SECRET.encode()))
    (hook,) = parse_hooks(JOB, [{"url": server.base_url + "/reload", "headers": {"X-Key": "env:API_TOKEN"}}])
    with caplog.at_level(logging.DEBUG, logger=LOG.name):
        report = run_hooks([hook], _pending(JOB), env={"API_TOKEN": SECRET}, log=LOG, http=INSTANT)
    assert len(server.requests) == 3
    assert all(r.headers["X-Key"] == SECRET for r in server.requests)
    assert not report.ok
    assert report.error == (
        f"hook on_change[0] (POST {server.base_url}/reload) failed: HTTP 503 Service Unavailable "
        "(gave up after 3 attempts)"
    )
    assert report.succeeded_keys == ()
    assert len(caplog.records) == 3
    assert SECRET not in caplog.text
    still = after_run(_pending(JOB), report.succeeded_keys, report.error)
    assert still is not None and still.attempts == 1
    assert SECRET not in json.dumps(still.to_json())


def test_4xx_body_is_shown_redacted_and_not_retried(server: HookServer) -> None:
    """A 401 fails at once; its body is quoted with any header value (literal too) redacted."""
    server.script("/reload", HookReply(401, f'{{"detail": "bad key {SECRET}"}}'.encode()))
    (hook,) = parse_hooks(JOB, [{"url": server.base_url + "/reload", "headers": {"X-Key": SECRET}}])
    report = run_hooks([hook], _pending(JOB), env={}, log=LOG, http=INSTANT)
    assert len(server.requests) == 1
    assert report.results[0].message == (
        'HTTP 401 Unauthorized; not retried; body: {"detail": "bad key [REDACTED]"}'
    )


def test_redirect_is_not_followed(server: HookServer) -> None:
    """A 307 is an error: the secret header is not sent on to another address."""
    server.script("/reload", HookReply(307, headers={"Location": "http://127.0.0.1:9/steal"}))
    (hook,) = parse_hooks(JOB, [{"url": server.base_url + "/reload"}])
    report = run_hooks([hook], _pending(JOB), env={}, log=LOG, http=INSTANT)
    assert report.results[0].message == (
        "HTTP 307 Temporary Redirect: redirect not followed (the hook's headers stay with its URL)"
    )
    assert [r.path for r in server.requests] == ["/reload"]


def test_connection_refused_is_retried_then_fails() -> None:
    """Nothing listening: each attempt is a connection error, then a clear failure."""
    (hook,) = parse_hooks(JOB, [{"url": _closed_port() + "/reload"}])
    report = run_hooks([hook], _pending(JOB), env={}, log=LOG, http=INSTANT)
    assert report.results[0].message == "connection failed (Connection refused) (gave up after 3 attempts)"


def test_read_timeout_uses_the_hook_timeout(server: HookServer) -> None:
    """A server slower than timeout_seconds is a read timeout after one attempt (had the timeout not cut
    it, the server's 200 would have come after its 30 s stall)."""
    server.script("/slow", HookReply(200, delay_s=30))
    (hook,) = parse_hooks(JOB, [{"url": server.base_url + "/slow", "timeout_seconds": 0.3}])
    report = run_hooks(
        [hook], _pending(JOB), env={}, log=LOG, http=HookHttpSettings(instant_retries=True, max_attempts=1)
    )
    assert [r.path for r in server.requests] == ["/slow"]
    assert report.results[0].message == "read timeout (no answer within 0.3 s) (gave up after 1 attempts)"


def test_missing_env_variable_is_an_error_without_a_request(server: HookServer) -> None:
    """An unset header variable fails that hook by name; later hooks still run."""
    hooks = parse_hooks(
        JOB,
        [
            {"url": server.base_url + "/a", "headers": {"X-Key": "env:STRATMANCER_API_KEY"}},
            {"url": server.base_url + "/b"},
        ],
    )
    report = run_hooks(hooks, _pending(JOB), env={}, log=LOG, http=INSTANT)
    assert [r.status for r in report.results] == ["error", "ok"]
    assert report.results[0].message == "header X-Key: environment variable STRATMANCER_API_KEY is not set"
    assert [r.path for r in server.requests] == ["/b"]


def test_succeeded_hooks_are_skipped(server: HookServer) -> None:
    """A hook already recorded as succeeded for this change is not run again."""
    hooks = parse_hooks(JOB, [{"url": server.base_url + "/a"}, {"url": server.base_url + "/b"}])
    pending = PendingChange(JOB, ("/p",), {}, "t0", attempts=1, last_error="x", succeeded=(hooks[0].key,))
    report = run_hooks(hooks, pending, env={}, log=LOG, http=INSTANT)
    assert [r.status for r in report.results] == ["skipped", "ok"]
    assert [r.path for r in server.requests] == ["/b"]
    assert after_run(pending, report.succeeded_keys, report.error) is None


def test_redact_values_are_scrubbed(server: HookServer) -> None:
    """Extra secrets passed in (e.g. RIOT_API_KEY's value) are scrubbed from results too."""
    server.script("/a", HookReply(400, b"echo RGAPI-planted-value"))
    (hook,) = parse_hooks(JOB, [{"url": server.base_url + "/a"}])
    report = run_hooks(
        [hook], _pending(JOB), env={}, log=LOG, http=INSTANT, redact_values=["RGAPI-planted-value"]
    )
    assert report.results[0].message == "HTTP 400 Bad Request; not retried; body: echo [REDACTED]"


# --- command hooks -------------------------------------------------------------------------------------


def test_command_hook_receives_its_env(tmp_path: Path) -> None:
    """A command gets STRATMANCER_* variables and the caller's environment, run without a shell."""
    out = tmp_path / "seen.json"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os, sys\n"
        "keys = ['STRATMANCER_JOB_ID', 'STRATMANCER_CHANGED_PATHS', 'STRATMANCER_PATCH',\n"
        "        'STRATMANCER_PREVIOUS_PATCH', 'FROM_CALLER']\n"
        "json.dump({k: os.environ.get(k) for k in keys} | {'argv': sys.argv[1:]}, open(sys.argv[1], 'w'))\n",
        encoding="utf-8",
    )
    (hook,) = parse_hooks(
        "refresh_patch_meta", [{"command": [sys.executable, str(script), str(out), "$HOME;x"]}]
    )
    report = run_hooks(
        [hook], _pending(patch="16.23", previous_patch="16.22"), env=_env(FROM_CALLER="yes"), log=LOG
    )
    assert report.results[0].status == "ok"
    assert report.results[0].message == "exit status 0"
    assert json.loads(out.read_text(encoding="utf-8")) == {
        "STRATMANCER_JOB_ID": "refresh_patch_meta",
        "STRATMANCER_CHANGED_PATHS": f"/root/config/meta.json{os.pathsep}/root/x",
        "STRATMANCER_PATCH": "16.23",
        "STRATMANCER_PREVIOUS_PATCH": "16.22",
        "FROM_CALLER": "yes",
        "argv": [str(out), "$HOME;x"],
    }


def test_command_failure_reports_status_and_output_tail(tmp_path: Path) -> None:
    """A non-zero exit is an error with the exit status and the redacted tail of its output."""
    (hook,) = parse_hooks(
        JOB,
        [
            {
                "command": [
                    sys.executable,
                    "-c",
                    "import sys; print('x' * 5000); print('token', sys.argv[1]); sys.exit(3)",
                    SECRET,
                ]
            }
        ],
    )
    report = run_hooks(
        [hook], _pending(JOB), env=_env(), log=LOG, redact_values=[SECRET], output_tail_bytes=40
    )
    message = report.results[0].message
    assert message.startswith("exit status 3; output: ...")
    assert message.endswith("token [REDACTED]")
    assert len(message) < 80
    assert report.results[0].description.endswith("sys.exit(3)' [REDACTED]")
    assert SECRET not in (report.error or "") + report.results[0].key


def test_command_not_found() -> None:
    """A program that does not exist is a clear error."""
    (hook,) = parse_hooks(JOB, [{"command": ["/nonexistent/stratmancer-hook"]}])
    report = run_hooks([hook], _pending(JOB), env=_env(), log=LOG)
    assert (
        report.results[0].message == "cannot start '/nonexistent/stratmancer-hook': No such file or directory"
    )


def test_command_killed_by_signal(tmp_path: Path) -> None:
    """A command that dies of a signal says which."""
    (hook,) = parse_hooks(
        JOB, [{"command": [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]}]
    )
    report = run_hooks([hook], _pending(JOB), env=_env(), log=LOG)
    assert report.results[0].message == "killed by signal SIGKILL"


def test_hanging_command_is_stopped_by_its_timeout(tmp_path: Path) -> None:
    """``sleep 30`` with a 0.5 s timeout is killed with its process group (had it not been, it would have
    exited 0 and the hook succeeded)."""
    (hook,) = parse_hooks(JOB, [{"command": ["sleep", "30"], "timeout_seconds": 0.5}])
    report = run_hooks([hook], _pending(JOB), env=_env(), log=LOG)
    assert report.results[0].message == "timed out after 0.5 s; process group killed"


def test_timeout_kills_the_whole_group_even_if_term_is_ignored(tmp_path: Path) -> None:
    """A command ignoring SIGTERM that forked a child: both are gone after the timeout (SIGKILL)."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(30)\n"
    )
    (hook,) = parse_hooks(JOB, [{"command": [sys.executable, "-c", code], "timeout_seconds": 1}])
    report = run_hooks([hook], _pending(JOB), env=_env(), log=LOG, kill_grace_s=0.3)
    assert report.results[0].message == "timed out after 1 s; process group killed; output: started"
    child = int(pid_file.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat", encoding="ascii") as handle:
                if handle.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"child {child} of the timed-out hook is still alive")


def test_mixed_hooks_run_in_order_and_continue_after_failure(server: HookServer, tmp_path: Path) -> None:
    """A failing first hook does not stop the next; results keep the configured order."""
    server.script("/a", HookReply(404))
    hooks = parse_hooks(
        JOB, [{"url": server.base_url + "/a"}, {"command": ["true"]}, {"url": server.base_url + "/b"}]
    )
    report = run_hooks(hooks, _pending(JOB), env=_env(), log=LOG, http=INSTANT)
    assert [(r.index, r.status) for r in report.results] == [(0, "error"), (1, "ok"), (2, "ok")]
    assert [r.path for r in server.requests] == ["/a", "/b"]
    assert report.succeeded_keys == (hooks[1].key, hooks[2].key)
    assert report.error == (
        f"hook on_change[0] (POST {server.base_url}/a) failed: HTTP 404 Not Found; not retried; "
        'body: {"ok": true}'
    )
