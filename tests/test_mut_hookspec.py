"""Change hooks, pure part: every validation message, boundary and merge rule asserted exactly
(mutation testing, issue 15)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.hookspec import (
    DEFAULT_TIMEOUT_S,
    MAX_ARGV,
    MAX_HOOKS,
    MAX_TEXT,
    MAX_TIMEOUT_S,
    Change,
    Expanded,
    HookError,
    HookSpec,
    PendingChange,
    after_run,
    describe,
    expand,
    next_pending,
    parse_hook,
    parse_hooks,
    resolve_headers,
)

W = "config key jobs.j.on_change[2]"
URL = "http://h/"


def error_of(raw: object, placeholders: tuple[str, ...] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        if placeholders is None:
            parse_hook("j", 2, raw)
        else:
            parse_hook("j", 2, raw, placeholders)
    return str(caught.value)


def test_constants() -> None:
    assert (DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, MAX_HOOKS, MAX_ARGV, MAX_TEXT) == (30.0, 3600.0, 20, 256, 4096)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], f"{W} must be a table, got list"),
        ({}, f"{W} must have exactly one of command and url"),
        ({"command": ["a"], "url": URL}, f"{W} must have exactly one of command and url"),
        (
            {"url": URL, "zeta": 1, "alpha": 1},
            f"{W}.alpha is unknown (known: command, headers, method, timeout_seconds, url)",
        ),
        ({"command": ["a"], "method": "GET"}, f"{W}.method applies only to url hooks"),
        ({"command": ["a"], "headers": {}}, f"{W}.headers applies only to url hooks"),
        # command
        ({"command": "ls -l"}, f"{W}.command must be an array of strings (argv, no shell)"),
        ({"command": []}, f"{W}.command must not be empty"),
        ({"command": ["a"] * 257}, f"{W}.command has more than 256 items"),
        ({"command": [1]}, f"{W}.command[0] must be a string, got int"),
        ({"command": ["a", None]}, f"{W}.command[1] must be a string, got NoneType"),
        ({"command": ["a", "b\x00"]}, f"{W}.command[1] must not contain NUL or exceed 4096 characters"),
        ({"command": ["a", "x" * 4097]}, f"{W}.command[1] must not contain NUL or exceed 4096 characters"),
        ({"command": [""]}, f"{W}.command[0] (the program) must not be empty"),
        # url
        ({"url": 5}, f"{W}.url must be a string, got int"),
        ({"url": ""}, f"{W}.url must be a non-empty string of at most 4096 characters"),
        (
            {"url": URL + "a" * (4097 - len(URL))},
            f"{W}.url must be a non-empty string of at most 4096 characters",
        ),
        ({"url": URL + "\x1f"}, f"{W}.url must not contain control characters"),
        ({"url": URL + "\x7f"}, f"{W}.url must not contain control characters"),
        ({"url": "\x00" + URL}, f"{W}.url must not contain control characters"),
        ({"url": URL + " a"}, f"{W}.url must not contain whitespace"),
        ({"url": URL + "\u00a0"}, f"{W}.url must not contain whitespace"),
        (
            {"url": URL + "{nope}"},
            f"{W}.url: unknown placeholder {{nope}} (allowed: {{job_id}}, {{patch}}, {{previous_patch}})",
        ),
        (
            {"url": URL + "{}"},
            f"{W}.url: unknown placeholder {{}} (allowed: {{job_id}}, {{patch}}, {{previous_patch}})",
        ),
        ({"url": URL + "{"}, f"{W}.url has an unbalanced '{{' or '}}'"),
        ({"url": URL + "}{patch}"}, f"{W}.url has an unbalanced '{{' or '}}'"),
        ({"url": "http://h:99999/"}, f"{W}.url is not a valid URL"),
        ({"url": "http://[::1/"}, f"{W}.url is not a valid URL"),
        ({"url": "ftp://h/"}, f"{W}.url must be an http:// or https:// URL"),
        ({"url": "h/path"}, f"{W}.url must be an http:// or https:// URL"),
        ({"url": "http:///path"}, f"{W}.url has no host"),
        (
            {"url": "http://u:p@h/"},
            f'{W}.url must not carry credentials (user:password@); use headers = {{ Name = "env:VARIABLE" }}',
        ),
        (
            {"url": "http://u@h/"},
            f'{W}.url must not carry credentials (user:password@); use headers = {{ Name = "env:VARIABLE" }}',
        ),
        ({"url": URL + "#x"}, f"{W}.url must not have a #fragment"),
        # method
        (
            {"url": URL, "method": "FETCH"},
            f"{W}.method must be one of GET, POST, PUT, PATCH, DELETE, got 'FETCH'",
        ),
        ({"url": URL, "method": 3}, f"{W}.method must be one of GET, POST, PUT, PATCH, DELETE, got 'int'"),
        # headers
        ({"url": URL, "headers": "x"}, f"{W}.headers must be a table of header names to strings"),
        (
            {"url": URL, "headers": {"bad name": "v"}},
            f"{W}.headers.bad name: 'bad name' is not a valid header name",
        ),
        ({"url": URL, "headers": {"": "v"}}, f"{W}.headers.: '' is not a valid header name"),
        (
            {"url": URL, "headers": {"X-A": "1", "x-a": "2"}},
            f"{W}.headers.x-a: header given twice (names are case-insensitive)",
        ),
        ({"url": URL, "headers": {"A": 1}}, f"{W}.headers.A must be a string, got int"),
        *(
            (
                {"url": URL, "headers": {"A": bad}},
                f"{W}.headers.A must be a non-empty string without control characters "
                "(at most 4096 characters)",
            )
            for bad in ("", "x" * 4097, "a\x1f", "a\x7f", "\x00")
        ),
        *(
            (
                {"url": URL, "headers": {"A": bad}},
                f"{W}.headers.A: after 'env:' must come an environment variable name",
            )
            for bad in ("env:", "env:1BAD", "env:A-B", "env:A B")
        ),
        # timeout
        ({"url": URL, "timeout_seconds": True}, f"{W}.timeout_seconds must be a number of seconds, got bool"),
        (
            {"command": ["a"], "timeout_seconds": "3"},
            f"{W}.timeout_seconds must be a number of seconds, got str",
        ),
        ({"url": URL, "timeout_seconds": 0}, f"{W}.timeout_seconds must be > 0 and <= 3600, got 0"),
        ({"url": URL, "timeout_seconds": -1.5}, f"{W}.timeout_seconds must be > 0 and <= 3600, got -1.5"),
        ({"url": URL, "timeout_seconds": 3600.5}, f"{W}.timeout_seconds must be > 0 and <= 3600, got 3600.5"),
        (
            {"url": URL, "timeout_seconds": float("nan")},
            f"{W}.timeout_seconds must be > 0 and <= 3600, got nan",
        ),
        (
            {"url": URL, "timeout_seconds": float("inf")},
            f"{W}.timeout_seconds must be > 0 and <= 3600, got inf",
        ),
    ],
)
def test_parse_hook_refuses_with_the_exact_message(raw: object, message: str) -> None:
    assert error_of(raw) == message


def test_long_messages_are_cut_at_300_characters() -> None:
    long_key = "k" * 400
    unknown = error_of({"url": URL, long_key: 1})
    assert unknown == f"{W}.{long_key}"[:300] and len(unknown) == 300
    method = error_of({"url": URL, "method": "M" * 400})
    assert method == f"{W}.method must be one of GET, POST, PUT, PATCH, DELETE, got '{'M' * 400}'"[:300]
    assert len(method) == 300
    name = "bad name" + "n" * 400
    header = error_of({"url": URL, "headers": {name: "v"}})
    assert header == f"{W}.headers.{name}: {name!r} is not a valid header name"[:300] and len(header) == 300


def test_placeholders_can_be_narrowed() -> None:
    assert error_of({"url": URL + "{patch}"}, ("job_id",)) == (
        f"{W}.url: unknown placeholder {{patch}} (allowed: {{job_id}})"
    )
    assert (
        error_of({"url": URL + "{job_id}"}, ()) == f"{W}.url: unknown placeholder {{job_id}} (allowed: none)"
    )
    assert parse_hook("j", 0, {"url": URL + "{job_id}"}, ("job_id",)).url == URL + "{job_id}"


def test_parse_command_hook() -> None:
    assert parse_hook("j", 2, {"command": ["systemctl", "restart", "x y"]}) == HookSpec(
        index=2, command=("systemctl", "restart", "x y"), url=None, method="POST", headers=(), timeout_s=30.0
    )
    spec = parse_hook("j", 0, {"command": ["a", "", "x" * 4096], "timeout_seconds": 5})
    assert spec == HookSpec(index=0, command=("a", "", "x" * 4096), timeout_s=5.0)
    assert type(spec.timeout_s) is float
    assert parse_hook("j", 0, {"command": ["a"] * 256}).command == ("a",) * 256


def test_parse_url_hook_defaults_and_everything_given() -> None:
    assert parse_hook("j", 1, {"url": URL}) == HookSpec(
        index=1, command=None, url=URL, method="POST", headers=(), timeout_s=30.0
    )
    full = {
        "url": "https://h:8443/models/{patch}/{previous_patch}?job={job_id}#",
        "method": "patch",
        "headers": {"X-Key": "env:API_KEY_1", "Accept": "a b\x80", "_x": "env:_"},
        "timeout_seconds": 3600,
    }
    assert parse_hook("j", 3, full) == HookSpec(
        index=3,
        url="https://h:8443/models/{patch}/{previous_patch}?job={job_id}#",
        method="PATCH",
        headers=(("X-Key", "env:API_KEY_1"), ("Accept", "a b\x80"), ("_x", "env:_")),
        timeout_s=3600.0,
    )
    assert parse_hook("j", 0, {"url": URL, "timeout_seconds": 0.001}).timeout_s == 0.001
    assert parse_hook("j", 0, {"url": URL + "a" * (4096 - len(URL))}).url == URL + "a" * (4096 - len(URL))
    assert parse_hook("j", 0, {"url": URL, "headers": {"A": "x" * 4096}}).headers == (("A", "x" * 4096),)
    assert parse_hook("j", 0, {"url": URL, "headers": {"A": "ENV:1 x"}}).headers == (("A", "ENV:1 x"),)
    assert parse_hook("j", 0, {"url": URL, "headers": {}}).headers == ()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "delete"):
        assert parse_hook("j", 0, {"url": URL, "method": method}).method == method.upper()


def test_headers_are_not_in_the_repr() -> None:
    spec = parse_hook("j", 0, {"url": URL, "headers": {"A": "literal-secret"}})
    assert "literal-secret" not in repr(spec)


def test_parse_hooks() -> None:
    assert parse_hooks("j", None) == ()
    assert parse_hooks("j", []) == ()
    two = parse_hooks("j", [{"command": ["a"]}, {"url": URL}])
    assert two == (HookSpec(index=0, command=("a",)), HookSpec(index=1, url=URL))
    assert len(parse_hooks("j", [{"command": ["a"]}] * 20)) == 20
    with pytest.raises(ConfigError) as caught:
        parse_hooks("j", [{"command": ["a"]}] * 21)
    assert str(caught.value) == "config key jobs.j.on_change has 21 hooks (at most 20)"
    with pytest.raises(ConfigError) as caught:
        parse_hooks("j", {"command": ["a"]})
    assert str(caught.value) == (
        "config key jobs.j.on_change must be an array of tables: "
        "write [[jobs.j.on_change]], not [jobs.j.on_change]"
    )
    with pytest.raises(ConfigError) as caught:
        parse_hooks("j", "x")
    assert str(caught.value) == "config key jobs.j.on_change must be an array of tables, got str"
    with pytest.raises(ConfigError) as caught:
        parse_hooks("j", [{"command": ["a"]}, {"url": URL + "{patch}"}], ("job_id",))
    assert (
        str(caught.value)
        == "config key jobs.j.on_change[1].url: unknown placeholder {patch} (allowed: {job_id})"
    )
    assert parse_hooks("j", [{"url": URL + "{patch}"}]) == (HookSpec(index=0, url=URL + "{patch}"),)


def test_describe_and_key() -> None:
    command = HookSpec(index=4, command=("systemctl", "restart", "my app"))
    assert describe(command) == "command systemctl restart 'my app'"
    assert command.key == "4:command systemctl restart 'my app'"
    url = HookSpec(index=0, url=URL + "{patch}", method="PUT", headers=(("A", "secret"),))
    assert describe(url) == "PUT http://h/{patch}"
    assert url.key == "0:PUT http://h/{patch}"


def test_expand_url_quotes_every_field() -> None:
    hook = HookSpec(index=0, url="http://h/{patch}/{previous_patch}?j={job_id}&x={job_id}")
    fields = {"patch": "16.1/a b", "previous_patch": "16.0&?", "job_id": "j"}
    assert expand(hook, fields, ("p1",)) == Expanded(url="http://h/16.1%2Fa%20b/16.0%26%3F?j=j&x=j", env={})
    assert expand(hook, {}) == Expanded(url="http://h//?j=&x=", env={})


def test_expand_command_env() -> None:
    hook = HookSpec(index=0, command=("a",))
    fields = {"job_id": "refresh", "patch": "16.2", "previous_patch": "16.1"}
    assert expand(hook, fields, ("a/b", "c")) == Expanded(
        url=None,
        env={
            "STRATMANCER_JOB_ID": "refresh",
            "STRATMANCER_CHANGED_PATHS": f"a/b{os.pathsep}c",
            "STRATMANCER_PATCH": "16.2",
            "STRATMANCER_PREVIOUS_PATCH": "16.1",
        },
    )
    assert expand(hook, {}) == Expanded(
        url=None, env={"STRATMANCER_JOB_ID": "", "STRATMANCER_CHANGED_PATHS": ""}
    )
    assert expand(hook, {"previous_patch": ""}, ("x",)) == Expanded(
        url=None,
        env={"STRATMANCER_JOB_ID": "", "STRATMANCER_CHANGED_PATHS": "x", "STRATMANCER_PREVIOUS_PATCH": ""},
    )


def test_resolve_headers() -> None:
    hook = HookSpec(
        index=0,
        url=URL,
        headers=(("A", "env:KEY"), ("B", "literal-xx"), ("C", "env:OTHER"), ("D", "env:KEY")),
    )
    env = {"KEY": "s3", "OTHER": "longest-secret"}
    assert resolve_headers(hook, env) == (
        (("A", "s3"), ("B", "literal-xx"), ("C", "longest-secret"), ("D", "s3")),
        ("longest-secret", "literal-xx", "s3"),
    )
    assert resolve_headers(HookSpec(index=0, url=URL), {}) == ((), ())
    with pytest.raises(HookError) as caught:
        resolve_headers(hook, {"OTHER": "x"})
    assert str(caught.value) == "header A: environment variable KEY is not set"
    with pytest.raises(HookError) as caught:
        resolve_headers(hook, {"KEY": "k", "OTHER": ""})
    assert str(caught.value) == "header C: environment variable OTHER is empty"


PENDING = PendingChange(
    job_id="j",
    paths=("a", "c"),
    fields={"patch": "16.1"},
    first_seen="2026-01-01T00:00:00+00:00",
    attempts=2,
    last_error="boom",
    succeeded=("0:command a",),
)


def test_pending_defaults_and_json_round_trip() -> None:
    assert PendingChange(job_id="j", paths=(), fields={}, first_seen=None) == PendingChange(
        "j", (), {}, None, 0, None, ()
    )
    data = PENDING.to_json()
    assert data == {
        "job_id": "j",
        "paths": ["a", "c"],
        "fields": {"patch": "16.1"},
        "first_seen": "2026-01-01T00:00:00+00:00",
        "attempts": 2,
        "last_error": "boom",
        "succeeded": ["0:command a"],
    }
    assert PendingChange.from_json(data, "j") == PENDING
    assert PendingChange.from_json(data, "other") == PendingChange(
        "other", ("a", "c"), {"patch": "16.1"}, "2026-01-01T00:00:00+00:00", 2, "boom", ("0:command a",)
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("garbage", PendingChange("j", (), {}, None, 0, None, ())),
        ({}, PendingChange("j", (), {}, None, 0, None, ())),
        (
            {
                "paths": ["a", 1, "b"],
                "fields": {"x": "1", "y": 2, 3: "z"},
                "first_seen": 5,
                "attempts": True,
                "last_error": ["x"],
                "succeeded": ["k", 1],
            },
            PendingChange("j", ("a", "b"), {"x": "1"}, None, 0, None, ()),
        ),
        (
            {"paths": "a", "fields": [1], "attempts": -1, "succeeded": "k"},
            PendingChange("j", (), {}, None, 0, None, ()),
        ),
        ({"attempts": 0, "succeeded": []}, PendingChange("j", (), {}, None, 0, None, ())),
        ({"attempts": 1, "succeeded": ["k"]}, PendingChange("j", (), {}, None, 1, None, ("k",))),
        ({"attempts": 2.0}, PendingChange("j", (), {}, None, 0, None, ())),
    ],
)
def test_pending_from_json_tolerates_garbage(raw: Any, expected: PendingChange | None) -> None:
    assert PendingChange.from_json(raw, "j") == expected


def change(paths: tuple[str, ...], seen: str = "2026-02-01T00:00:00+00:00") -> Change:
    return Change(job_id="j2", paths=paths, fields={"patch": "16.2"}, seen_at=seen)


def test_next_pending_rules() -> None:
    assert next_pending(None, None) is None
    assert next_pending(PENDING, None) is PENDING
    assert next_pending(None, change(("b", "a", "b"))) == PendingChange(
        job_id="j2",
        paths=("a", "b"),
        fields={"patch": "16.2"},
        first_seen="2026-02-01T00:00:00+00:00",
        attempts=0,
        last_error=None,
        succeeded=(),
    )
    assert next_pending(PENDING, change(("b", "a"))) == PendingChange(
        job_id="j2",
        paths=("a", "b", "c"),
        fields={"patch": "16.2"},
        first_seen="2026-01-01T00:00:00+00:00",
        attempts=2,
        last_error="boom",
        succeeded=(),
    )
    no_first = PendingChange("j", ("z",), {}, None, 1, None, ("k",))
    assert next_pending(no_first, change(())) == PendingChange(
        "j2", ("z",), {"patch": "16.2"}, "2026-02-01T00:00:00+00:00", 1, None, ()
    )


def test_next_pending_copies_the_fields() -> None:
    fields = {"patch": "16.2"}
    made = next_pending(None, Change("j", ("a",), fields, "t"))
    assert made is not None
    fields["patch"] = "changed"
    assert made.fields == {"patch": "16.2"}


def test_after_run_rules() -> None:
    assert after_run(PENDING, ["1:x"], None) is None
    assert after_run(PENDING, ["1:x", "0:command a", "2:y", "1:x"], "bad") == PendingChange(
        job_id="j",
        paths=("a", "c"),
        fields={"patch": "16.1"},
        first_seen="2026-01-01T00:00:00+00:00",
        attempts=3,
        last_error="bad",
        succeeded=("0:command a", "1:x", "2:y"),
    )
    assert after_run(PendingChange("j", (), {}, None), [], "e") == PendingChange(
        "j", (), {}, None, 1, "e", ()
    )
