"""Tests for ``hookspec``: parsing, expansion, header resolution, descriptions and pending changes."""

from __future__ import annotations

import os
import tomllib
from typing import Any

import pytest

from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.hookspec import (
    Change,
    HookError,
    HookSpec,
    PendingChange,
    after_run,
    describe,
    expand,
    next_pending,
    parse_hooks,
    resolve_headers,
)

JOB = "refresh_model_registry"
EXAMPLE = """
[[jobs.refresh_model_registry.on_change]]
url = "http://127.0.0.1:8000/models/registry/reload"
headers = { X-STRATMANCER-KEY = "env:STRATMANCER_API_KEY" }

[[jobs.refresh_model_registry.on_change]]
command = ["systemctl", "restart", "stratmancer-api"]
timeout_seconds = 60
"""


def _bad(raw: Any, job: str = JOB) -> str:
    """The ConfigError message for an invalid ``on_change`` value."""
    with pytest.raises(ConfigError) as caught:
        parse_hooks(job, raw)
    return caught.value.message


def test_parse_issue_example() -> None:
    """The issue's TOML example parses into a URL hook and a command hook with the right defaults."""
    raw = tomllib.loads(EXAMPLE)["jobs"][JOB]["on_change"]
    assert parse_hooks(JOB, raw) == (
        HookSpec(
            index=0,
            url="http://127.0.0.1:8000/models/registry/reload",
            method="POST",
            headers=(("X-STRATMANCER-KEY", "env:STRATMANCER_API_KEY"),),
            timeout_s=30.0,
        ),
        HookSpec(index=1, command=("systemctl", "restart", "stratmancer-api"), timeout_s=60.0),
    )


def test_parse_absent_and_empty() -> None:
    """No ``on_change`` key and an empty array both mean no hooks."""
    assert parse_hooks(JOB, None) == ()
    assert parse_hooks(JOB, []) == ()


def test_parse_method_is_normalised_and_placeholders_allowed() -> None:
    """A lower-case method is upper-cased; the patch placeholders are accepted in a URL."""
    raw = [{"url": "https://app.example/meta/refresh?patch={patch}&from={previous_patch}", "method": "put"}]
    (hook,) = parse_hooks("refresh_patch_meta", raw)
    assert (hook.method, hook.url) == (
        "PUT",
        "https://app.example/meta/refresh?patch={patch}&from={previous_patch}",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"url": "http://x"},
            f"config key jobs.{JOB}.on_change must be an array of tables: write "
            f"[[jobs.{JOB}.on_change]], not [jobs.{JOB}.on_change]",
        ),
        ("http://x", f"config key jobs.{JOB}.on_change must be an array of tables, got str"),
        ([{"url": "http://x"}] * 21, f"config key jobs.{JOB}.on_change has 21 hooks (at most 20)"),
        (["x"], f"config key jobs.{JOB}.on_change[0] must be a table, got str"),
        ([{}], f"config key jobs.{JOB}.on_change[0] must have exactly one of command and url"),
        (
            [{"url": "http://x"}, {"url": "http://x", "command": ["a"]}],
            f"config key jobs.{JOB}.on_change[1] must have exactly one of command and url",
        ),
        (
            [{"url": "http://x", "retries": 3}],
            f"config key jobs.{JOB}.on_change[0].retries is unknown "
            "(known: command, headers, method, timeout_seconds, url)",
        ),
        ([{"command": []}], f"config key jobs.{JOB}.on_change[0].command must not be empty"),
        (
            [{"command": "systemctl restart x"}],
            f"config key jobs.{JOB}.on_change[0].command must be an array of strings (argv, no shell)",
        ),
        ([{"command": ["a", 1]}], f"config key jobs.{JOB}.on_change[0].command[1] must be a string, got int"),
        (
            [{"command": [""]}],
            f"config key jobs.{JOB}.on_change[0].command[0] (the program) must not be empty",
        ),
        (
            [{"command": ["a\x00b"]}],
            f"config key jobs.{JOB}.on_change[0].command[0] must not contain NUL or exceed 4096 characters",
        ),
        (
            [{"command": ["a"], "method": "GET"}],
            f"config key jobs.{JOB}.on_change[0].method applies only to url hooks",
        ),
        (
            [{"command": ["a"], "headers": {}}],
            f"config key jobs.{JOB}.on_change[0].headers applies only to url hooks",
        ),
        ([{"url": 5}], f"config key jobs.{JOB}.on_change[0].url must be a string, got int"),
        (
            [{"url": ""}],
            f"config key jobs.{JOB}.on_change[0].url must be a non-empty string of at most 4096 characters",
        ),
        (
            [{"url": "ftp://x/y"}],
            f"config key jobs.{JOB}.on_change[0].url must be an http:// or https:// URL",
        ),
        (
            [{"url": "file:///etc/passwd"}],
            f"config key jobs.{JOB}.on_change[0].url must be an http:// or https:// URL",
        ),
        (
            [{"url": "127.0.0.1:8000/x"}],
            f"config key jobs.{JOB}.on_change[0].url must be an http:// or https:// URL",
        ),
        ([{"url": "http:///path"}], f"config key jobs.{JOB}.on_change[0].url has no host"),
        ([{"url": "http://x:99999/"}], f"config key jobs.{JOB}.on_change[0].url is not a valid URL"),
        ([{"url": "http://a b/"}], f"config key jobs.{JOB}.on_change[0].url must not contain whitespace"),
        (
            [{"url": "http://x/\n"}],
            f"config key jobs.{JOB}.on_change[0].url must not contain control characters",
        ),
        (
            [{"url": "http://u:pw@x/"}],
            f"config key jobs.{JOB}.on_change[0].url must not carry credentials "
            '(user:password@); use headers = { Name = "env:VARIABLE" }',
        ),
        ([{"url": "http://x/#a"}], f"config key jobs.{JOB}.on_change[0].url must not have a #fragment"),
        (
            [{"url": "http://x/{elo}"}],
            f"config key jobs.{JOB}.on_change[0].url: unknown placeholder {{elo}} "
            "(allowed: {job_id}, {patch}, {previous_patch})",
        ),
        (
            [{"url": "http://x/{patch"}],
            f"config key jobs.{JOB}.on_change[0].url has an unbalanced '{{' or '}}'",
        ),
        (
            [{"url": "http://x", "method": "TRACE"}],
            f"config key jobs.{JOB}.on_change[0].method must be one "
            "of GET, POST, PUT, PATCH, DELETE, got 'TRACE'",
        ),
        (
            [{"url": "http://x", "method": 1}],
            f"config key jobs.{JOB}.on_change[0].method must be one of "
            "GET, POST, PUT, PATCH, DELETE, got 'int'",
        ),
        (
            [{"url": "http://x", "headers": "k"}],
            f"config key jobs.{JOB}.on_change[0].headers must be a table of header names to strings",
        ),
        (
            [{"url": "http://x", "headers": {"Bad Name": "v"}}],
            f"config key jobs.{JOB}.on_change[0].headers.Bad Name: 'Bad Name' is not a valid header name",
        ),
        (
            [{"url": "http://x", "headers": {"A": "1", "a": "2"}}],
            f"config key jobs.{JOB}.on_change[0].headers.a: header given twice (names are case-insensitive)",
        ),
        (
            [{"url": "http://x", "headers": {"A": 5}}],
            f"config key jobs.{JOB}.on_change[0].headers.A must be a string, got int",
        ),
        (
            [{"url": "http://x", "headers": {"A": "v\r\nX: y"}}],
            f"config key jobs.{JOB}.on_change[0].headers.A "
            "must be a non-empty string without control characters (at most 4096 characters)",
        ),
        (
            [{"url": "http://x", "headers": {"A": "env:1BAD"}}],
            f"config key jobs.{JOB}.on_change[0].headers.A: "
            "after 'env:' must come an environment variable name",
        ),
        (
            [{"url": "http://x", "timeout_seconds": 0}],
            f"config key jobs.{JOB}.on_change[0].timeout_seconds must be > 0 and <= 3600, got 0",
        ),
        (
            [{"url": "http://x", "timeout_seconds": -1.5}],
            f"config key jobs.{JOB}.on_change[0].timeout_seconds must be > 0 and <= 3600, got -1.5",
        ),
        (
            [{"url": "http://x", "timeout_seconds": float("inf")}],
            f"config key jobs.{JOB}.on_change[0].timeout_seconds must be > 0 and <= 3600, got inf",
        ),
        (
            [{"url": "http://x", "timeout_seconds": float("nan")}],
            f"config key jobs.{JOB}.on_change[0].timeout_seconds must be > 0 and <= 3600, got nan",
        ),
        (
            [{"url": "http://x", "timeout_seconds": 3601}],
            f"config key jobs.{JOB}.on_change[0].timeout_seconds must be > 0 and <= 3600, got 3601",
        ),
        (
            [{"url": "http://x", "timeout_seconds": True}],
            f"config key jobs.{JOB}.on_change[0].timeout_seconds must be a number of seconds, got bool",
        ),
        (
            [{"url": "http://x", "timeout_seconds": "5"}],
            f"config key jobs.{JOB}.on_change[0].timeout_seconds must be a number of seconds, got str",
        ),
    ],
)
def test_parse_rejects_with_the_key(raw: Any, message: str) -> None:
    """Every bad value is a ConfigError naming the full key."""
    assert _bad(raw) == message


def test_header_value_never_in_config_errors() -> None:
    """A literal header value that is invalid is never echoed in the error."""
    message = _bad([{"url": "http://x", "headers": {"X-Key": "s3cr3t-value\x07"}}])
    assert "s3cr3t" not in message


def test_placeholders_can_be_narrowed_per_job() -> None:
    """A job without a patch can be given only ``job_id`` as a placeholder."""
    with pytest.raises(ConfigError, match=r"unknown placeholder \{patch\} \(allowed: \{job_id\}\)"):
        parse_hooks(JOB, [{"url": "http://x/{patch}"}], placeholders=("job_id",))


def test_describe_never_shows_header_values() -> None:
    """Descriptions are the method and URL, or the quoted argv; no header value appears."""
    url_hook = HookSpec(
        0, url="http://127.0.0.1:8000/models/registry/reload", headers=(("X-K", "literal-secret"),)
    )
    cmd_hook = HookSpec(1, command=("systemctl", "restart", "stratmancer api"))
    assert describe(url_hook) == "POST http://127.0.0.1:8000/models/registry/reload"
    assert describe(cmd_hook) == "command systemctl restart 'stratmancer api'"
    assert url_hook.key == "0:POST http://127.0.0.1:8000/models/registry/reload"
    assert "literal-secret" not in repr(url_hook)


def test_expand_url_placeholders_are_quoted() -> None:
    """URL placeholders are filled URL-quoted; a missing field becomes empty."""
    hook = HookSpec(0, url="http://h/meta/refresh?patch={patch}&prev={previous_patch}&job={job_id}")
    expanded = expand(hook, {"patch": "16.23", "job_id": "refresh patch/x"}, ["/a"])
    assert expanded.url == "http://h/meta/refresh?patch=16.23&prev=&job=refresh%20patch%2Fx"
    assert expanded.env == {}


def test_expand_command_env() -> None:
    """A command gets the job id, the os.pathsep-joined paths and the patch fields it has."""
    hook = HookSpec(0, command=("true",))
    full = expand(
        hook, {"job_id": "refresh_patch_meta", "patch": "16.23", "previous_patch": "16.22"}, ["/r/a", "/r/b"]
    )
    assert full.url is None
    assert full.env == {
        "STRATMANCER_JOB_ID": "refresh_patch_meta",
        "STRATMANCER_CHANGED_PATHS": f"/r/a{os.pathsep}/r/b",
        "STRATMANCER_PATCH": "16.23",
        "STRATMANCER_PREVIOUS_PATCH": "16.22",
    }
    assert expand(hook, {"job_id": "j"}).env == {"STRATMANCER_JOB_ID": "j", "STRATMANCER_CHANGED_PATHS": ""}


def test_resolve_headers_env_and_literal() -> None:
    """``env:NAME`` values come from the given env; every value is a secret, longest first."""
    hook = HookSpec(0, url="http://x", headers=(("X-Key", "env:API_KEY"), ("X-Lit", "abc")))
    headers, secrets = resolve_headers(hook, {"API_KEY": "key-123456"})
    assert headers == (("X-Key", "key-123456"), ("X-Lit", "abc"))
    assert secrets == ("key-123456", "abc")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "header X-Key: environment variable API_KEY is not set"),
        ({"API_KEY": ""}, "header X-Key: environment variable API_KEY is empty"),
    ],
)
def test_resolve_headers_missing_variable(env: dict[str, str], message: str) -> None:
    """A missing or empty variable is a HookError naming the header and the variable."""
    hook = HookSpec(0, url="http://x", headers=(("X-Key", "env:API_KEY"),))
    with pytest.raises(HookError) as caught:
        resolve_headers(hook, env)
    assert caught.value.message == message


# --- pending changes -----------------------------------------------------------------------------------


def _change(paths: tuple[str, ...], patch: str, when: str) -> Change:
    """A change of the patch job."""
    return Change("refresh_patch_meta", paths, {"patch": patch}, when)


def test_next_pending_nothing() -> None:
    """No pending change and no new change: nothing pending."""
    assert next_pending(None, None) is None


def test_next_pending_new_change() -> None:
    """A first change becomes a pending change with no hook succeeded yet."""
    assert next_pending(
        None, _change(("/b", "/a", "/a"), "16.23", "2026-01-01T00:00:00+00:00")
    ) == PendingChange(
        job_id="refresh_patch_meta",
        paths=("/a", "/b"),
        fields={"patch": "16.23"},
        first_seen="2026-01-01T00:00:00+00:00",
    )


def test_next_pending_unchanged_run_keeps_pending() -> None:
    """Without a new change the unfinished pending change is kept as it was."""
    old = PendingChange("j", ("/a",), {"patch": "1"}, "t0", attempts=2, last_error="e", succeeded=("0:x",))
    assert next_pending(old, None) is old


def test_next_pending_merges_and_reruns_every_hook() -> None:
    """A new change on top of a pending one unions paths, takes new fields and forgets past successes."""
    old = PendingChange(
        "refresh_patch_meta",
        ("/b",),
        {"patch": "16.22", "previous_patch": "16.21"},
        "t0",
        attempts=2,
        last_error="boom",
        succeeded=("0:POST http://x",),
    )
    merged = next_pending(old, _change(("/a", "/b"), "16.23", "t1"))
    assert merged == PendingChange(
        job_id="refresh_patch_meta",
        paths=("/a", "/b"),
        fields={"patch": "16.23"},
        first_seen="t0",
        attempts=2,
        last_error="boom",
        succeeded=(),
    )


def test_after_run_clears_on_success_and_records_failure() -> None:
    """All hooks done clears the pending change; a failure adds an attempt, the error and the successes."""
    pending = PendingChange("j", ("/a",), {}, "t0", attempts=1, succeeded=("0:a",))
    assert after_run(pending, ["1:b"], None) is None
    assert after_run(pending, ["1:b", "0:a"], "hook on_change[2] failed") == PendingChange(
        "j", ("/a",), {}, "t0", attempts=2, last_error="hook on_change[2] failed", succeeded=("0:a", "1:b")
    )


def test_pending_json_round_trip() -> None:
    """to_json and from_json are inverse for a well-formed pending change."""
    pending = PendingChange("j", ("/a", "/b"), {"patch": "16.23"}, "t0", 3, "err", ("0:a", "1:b"))
    assert pending.to_json() == {
        "job_id": "j",
        "paths": ["/a", "/b"],
        "fields": {"patch": "16.23"},
        "first_seen": "t0",
        "attempts": 3,
        "last_error": "err",
        "succeeded": ["0:a", "1:b"],
    }
    assert PendingChange.from_json(pending.to_json(), "j") == pending


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("garbage", PendingChange("j", (), {}, None)),
        (17, PendingChange("j", (), {}, None)),
        ([], PendingChange("j", (), {}, None)),
        (
            {
                "paths": ["/a", 3],
                "fields": {"patch": "1", "x": 2},
                "first_seen": 5,
                "attempts": True,
                "last_error": ["x"],
                "succeeded": ["0:a", None],
                "job_id": "other",
            },
            PendingChange("j", ("/a",), {"patch": "1"}, None, 0, None, ()),
        ),
        ({"paths": "/a", "fields": [], "attempts": -1, "succeeded": "0:a"}, PendingChange("j", (), {}, None)),
        ({"attempts": 4, "succeeded": ["0:a"]}, PendingChange("j", (), {}, None, 4, None, ("0:a",))),
    ],
)
def test_pending_from_garbage(raw: object, expected: PendingChange | None) -> None:
    """Stored garbage never crashes: bad fields become empty/None, and a bad success list reruns all."""
    assert PendingChange.from_json(raw, "j") == expected
