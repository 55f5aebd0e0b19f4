"""refresh-patch: version choice, meta.json rules, fallbacks, cross-check and secrets, over real HTTP."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from stratmancer_jobs.config import PatchSettings, load_settings
from stratmancer_jobs.errors import FetchError, PartialFailure
from stratmancer_jobs.jobs import JobContext
from stratmancer_jobs.jobs.patch.job import PatchOutcome, refresh_patch, run, summarize
from stratmancer_jobs.jobs.patch.meta import build_meta, choose_version, interpret_meta
from stratmancer_jobs.jobtable import find_job
from stratmancer_jobs.patchver import latest_version
from tests.ddragon_server import DDragonServer, Reply, Waits, closed_port_url, json_reply

VERSIONS = "/api/versions.json"
REALM = "/realms/na.json"
NOW = datetime(2026, 11, 28, 3, 0, 5, tzinfo=UTC)
LOG = logging.getLogger("test.patch")
SECRET = "RGAPI-planted-0123456789-secret"


@pytest.fixture
def meta(tmp_path: Path) -> Path:
    return tmp_path / "config" / "meta.json"


def settings_for(base_url: str, **overrides: Any) -> PatchSettings:
    """Fast settings pointed at the test server."""
    base = PatchSettings(
        base_url=base_url,
        default_patch="15.20",
        connect_timeout_s=1.0,
        read_timeout_s=0.3,
        max_attempts=3,
        max_bytes=20_000,
    )
    return replace(base, **overrides)


def refresh(meta: Path, session: requests.Session, settings: PatchSettings) -> PatchOutcome:
    return refresh_patch(meta, session, settings, NOW, LOG, sleep=Waits())


def write_meta(path: Path, data: Any) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = (json.dumps(data) if not isinstance(data, bytes) else data.decode()).encode()
    path.write_bytes(raw)
    return raw


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# --- pure ---------------------------------------------------------------------------------------------


def test_choose_version_integer_order_not_string_order() -> None:
    """16.15 beats 16.9 although it sorts lower as a string, whatever the list order."""
    assert choose_version(["16.9.1", "16.15.1", "16.10.2"]) == ("16.15.1", "16.15")
    assert choose_version(["16.2.1", "16.10.1"]) == ("16.10.1", "16.10")


def test_choose_version_skips_legacy_and_garbage() -> None:
    """lolpatch_* entries, non-strings and malformed versions are ignored."""
    payload = ["lolpatch_7.20", "lolpatch_3.7", 17, None, "17.1", "x.y.z", "99.1.1\n", "16.23.1", "0.151.2"]
    assert choose_version(payload) == ("16.23.1", "16.23")


def test_choose_version_rejects_empty_and_wrong_types() -> None:
    """An empty list, a list of garbage, or a non-list is a FetchError saying what was wrong."""
    with pytest.raises(FetchError, match="among 0 entries"):
        choose_version([])
    with pytest.raises(FetchError, match="among 2 entries"):
        choose_version(["lolpatch_7.20", "banana"])
    with pytest.raises(FetchError, match="got a JSON object"):
        choose_version({"versions": ["16.23.1"]})


def test_latest_version_tie_keeps_first() -> None:
    """Two entries with the same numeric version keep the first as published."""
    assert latest_version(["16.23.1", "16.23.1-hotfix"]) == ("16.23.1", (16, 23, 1))


def test_interpret_meta_cases() -> None:
    """Missing, corrupt, non-object, patch-less and valid meta.json are told apart."""
    assert interpret_meta(None).patch is None and interpret_meta(None).problem is None
    assert interpret_meta(b"{not json").problem == "is not valid JSON"
    assert interpret_meta(b"[1]").problem == "is not a JSON object"
    assert interpret_meta(b'{"patch": "banana"}').problem == "holds no valid patch"
    good = interpret_meta(b'{"patch": "16.22", "x": 1}')
    assert (good.patch, good.problem, good.data["x"]) == ("16.22", None, 1)


def test_build_meta_keeps_unknown_keys_and_refuses_invalid_patch() -> None:
    """Unknown keys survive, our keys are replaced, and an invalid patch is never produced."""
    meta = build_meta(
        {"owner": "web", "patch": "16.22", "cross_check": {}},
        patch="16.23",
        version="16.23.1",
        source="ddragon",
        previous_patch="16.22",
        now=NOW,
        cross_check=None,
    )
    assert meta == {
        "owner": "web",
        "patch": "16.23",
        "version": "16.23.1",
        "last_updated": "2026-11-28T03:00:05+00:00",
        "source": "ddragon",
        "previous_patch": "16.22",
        "patch_changed": True,
    }
    with pytest.raises(ValueError, match="invalid patch"):
        build_meta({}, patch="16", version=None, source="x", previous_patch=None, now=NOW, cross_check=None)


# --- the job over real HTTP ---------------------------------------------------------------------------


def test_normal_list_writes_meta(server: DDragonServer, session: requests.Session, meta: Path) -> None:
    """A normal newest-first list writes exactly the documented meta.json."""
    server.script(VERSIONS, json_reply(["16.23.1", "16.22.1", "16.21.1", "lolpatch_3.7"]))
    outcome = refresh(meta, session, settings_for(server.base_url))
    assert outcome.error is None
    assert read(meta) == {
        "patch": "16.23",
        "version": "16.23.1",
        "last_updated": "2026-11-28T03:00:05+00:00",
        "source": "ddragon",
        "previous_patch": None,
        "patch_changed": False,
    }
    assert summarize(outcome) == "Patch metadata refreshed: 16.23 (16.23.1), first valid patch"


def test_unordered_list_over_http(server: DDragonServer, session: requests.Session, meta: Path) -> None:
    """An unordered list served over HTTP still yields the numerically highest version."""
    server.script(VERSIONS, json_reply(["16.9.1", "16.15.2", "16.10.1", "15.24.1"]))
    assert refresh(meta, session, settings_for(server.base_url)).version == "16.15.2"
    assert read(meta)["patch"] == "16.15"


def test_legacy_and_garbage_over_http(server: DDragonServer, session: requests.Session, meta: Path) -> None:
    """Legacy and garbage entries in the served list are skipped."""
    server.script(VERSIONS, json_reply(["lolpatch_7.20", {"v": 1}, "99", "16.23.1", "16.x.1", ""]))
    refresh(meta, session, settings_for(server.base_url))
    assert read(meta)["version"] == "16.23.1"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (json_reply([]), "no valid MAJOR.MINOR.PATCH version among 0 entries"),
        (Reply(body=b"<html>oops</html>"), "did not return JSON"),
        (json_reply({"latest": "16.23.1"}), "expected a JSON array"),
    ],
    ids=["empty-list", "non-json", "wrong-json-type"],
)
def test_bad_bodies_fall_back_on_first_run(
    server: DDragonServer, session: requests.Session, meta: Path, reply: Reply, message: str
) -> None:
    """An empty list, a non-JSON body or the wrong JSON type is an error naming the URL; fallback written."""
    server.script(VERSIONS, reply)
    outcome = refresh(meta, session, settings_for(server.base_url))
    assert outcome.error is not None
    assert message in outcome.error
    assert server.base_url + VERSIONS in outcome.error
    assert read(meta)["source"] == "fallback"


def test_500_then_200_succeeds(server: DDragonServer, session: requests.Session, meta: Path) -> None:
    """A transient 500 is retried and the run succeeds."""
    server.script(VERSIONS, Reply(status=500), json_reply(["16.23.1"]))
    outcome = refresh(meta, session, settings_for(server.base_url))
    assert outcome.error is None
    assert server.hits(VERSIONS) == 2


def test_429_retry_after_waits_as_asked(server: DDragonServer, session: requests.Session, meta: Path) -> None:
    """A 429 with Retry-After makes the job wait that long (recorded, not slept) and then succeed."""
    server.script(VERSIONS, Reply(status=429, headers={"Retry-After": "12"}), json_reply(["16.23.1"]))
    waits = Waits()
    outcome = refresh_patch(meta, session, settings_for(server.base_url), NOW, LOG, sleep=waits)
    assert outcome.error is None
    assert waits.waits == [12.0]


def test_existing_meta_kept_on_failure(server: DDragonServer, session: requests.Session, meta: Path) -> None:
    """When every attempt fails, a valid meta.json stays byte-for-byte the same and the run is an error."""
    raw = write_meta(meta, {"patch": "16.22", "version": "16.22.1", "owner": "web"})
    server.script(VERSIONS, Reply(status=503))
    outcome = refresh(meta, session, settings_for(server.base_url))
    assert meta.read_bytes() == raw
    assert outcome.source == "kept"
    assert outcome.error is not None
    assert "HTTP 503" in outcome.error and "left unchanged (patch 16.22)" in outcome.error
    assert server.hits(VERSIONS) == 3


def test_first_run_falls_back_when_unreachable(session: requests.Session, meta: Path) -> None:
    """With no meta.json and a refused connection, the default patch is written as fallback; an error."""
    outcome = refresh(meta, session, settings_for(closed_port_url()))
    data = read(meta)
    assert data["patch"] == "15.20"
    assert data["source"] == "fallback"
    assert data["version"] is None
    assert data["patch_changed"] is False
    assert outcome.error is not None
    assert "Connection refused" in outcome.error and "wrote fallback patch 15.20" in outcome.error
    assert summarize(outcome).startswith("Patch metadata NOT refreshed")


def test_stall_past_read_timeout_keeps_meta(
    server: DDragonServer, session: requests.Session, meta: Path
) -> None:
    """A server that stalls past the read timeout makes the run fail fast and leaves meta.json alone."""
    raw = write_meta(meta, {"patch": "16.22"})
    server.script(VERSIONS, Reply(delay_s=3.0, body=b"[]"))
    outcome = refresh(meta, session, settings_for(server.base_url, max_attempts=2))
    assert outcome.error is not None and "read timeout" in outcome.error
    assert meta.read_bytes() == raw


def test_oversized_body_refused(server: DDragonServer, session: requests.Session, meta: Path) -> None:
    """A versions list larger than the cap is refused and never parsed."""
    server.script(VERSIONS, json_reply([f"16.{i}.1" for i in range(5000)]))
    outcome = refresh(meta, session, settings_for(server.base_url, max_bytes=2000))
    assert outcome.error is not None and "too large" in outcome.error
    assert read(meta)["source"] == "fallback"


def test_patch_change_detected_and_logged(
    server: DDragonServer, session: requests.Session, meta: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A new patch is logged as 'Patch changed: 16.22 -> 16.23', recorded in meta.json, extra keys kept."""
    write_meta(meta, {"patch": "16.22", "version": "16.22.1", "owner": "web", "source": "ddragon"})
    server.script(VERSIONS, json_reply(["16.23.1", "16.22.1"]))
    with caplog.at_level(logging.INFO, logger=LOG.name):
        outcome = refresh(meta, session, settings_for(server.base_url))
    assert "Patch changed: 16.22 -> 16.23" in caplog.messages
    data = read(meta)
    assert (data["patch"], data["previous_patch"], data["patch_changed"]) == ("16.23", "16.22", True)
    assert data["owner"] == "web"
    assert summarize(outcome) == "Patch metadata refreshed: 16.23 (16.23.1), changed from 16.22"


def test_same_patch_is_unchanged(
    server: DDragonServer, session: requests.Session, meta: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same patch again is not a change and logs no 'Patch changed' line."""
    write_meta(meta, {"patch": "16.23", "version": "16.23.1"})
    server.script(VERSIONS, json_reply(["16.23.1"]))
    with caplog.at_level(logging.INFO, logger=LOG.name):
        outcome = refresh(meta, session, settings_for(server.base_url))
    assert not any("Patch changed" in m for m in caplog.messages)
    assert read(meta)["patch_changed"] is False
    assert summarize(outcome).endswith("16.23 (16.23.1), unchanged")


def test_realms_disagreement_is_recorded_and_warned(
    server: DDragonServer, session: requests.Session, meta: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When realms/na.json lags, versions.json is used, a warning is logged, and meta.json says so."""
    server.script(VERSIONS, json_reply(["16.23.1", "16.22.1"]))
    server.script(REALM, json_reply({"v": "16.22.1", "n": {"champion": "16.22.1"}}))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        outcome = refresh(meta, session, settings_for(server.base_url, cross_check=True))
    assert outcome.error is None
    assert read(meta)["patch"] == "16.23"
    assert read(meta)["cross_check"] == {
        "region": "na",
        "realm_version": "16.22.1",
        "agrees": False,
        "used": "api/versions.json",
    }
    assert any("realms/na.json says 16.22.1" in m for m in caplog.messages)
    assert "realms/na.json says 16.22.1" in summarize(outcome)


def test_realms_agreement_and_failure(server: DDragonServer, session: requests.Session, meta: Path) -> None:
    """An agreeing realm is recorded as such; a failing realm is only a warning, not a failed run."""
    server.script(VERSIONS, json_reply(["16.23.1"]))
    server.script(REALM, json_reply({"v": "16.23.1"}))
    assert refresh(meta, session, settings_for(server.base_url, cross_check=True)).error is None
    assert read(meta)["cross_check"]["agrees"] is True
    server.script(REALM, Reply(status=404))
    assert refresh(meta, session, settings_for(server.base_url, cross_check=True)).error is None
    check = read(meta)["cross_check"]
    assert check["agrees"] is None and "HTTP 404" in check["error"]
    refresh(meta, session, settings_for(server.base_url, cross_check=False))
    assert "cross_check" not in read(meta)


def test_corrupt_meta_is_preserved_then_replaced(
    server: DDragonServer, session: requests.Session, meta: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A corrupt meta.json is copied aside with a warning before the fresh one replaces it."""
    write_meta(meta, b'{"patch": "16.2')
    server.script(VERSIONS, json_reply(["16.23.1"]))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        outcome = refresh(meta, session, settings_for(server.base_url))
    copy = meta.with_name("meta.json.corrupt-20261128T030005Z")
    assert copy.read_bytes() == b'{"patch": "16.2'
    assert outcome.preserved_copy == copy
    assert any("is not valid JSON" in m for m in caplog.messages)
    assert read(meta)["patch"] == "16.23"
    assert read(meta)["previous_patch"] is None


def test_corrupt_meta_and_failure_writes_fallback_and_keeps_copy(
    session: requests.Session, meta: Path
) -> None:
    """A corrupt meta.json plus an unreachable source: the fallback is written and the old bytes kept."""
    write_meta(meta, b"\x00garbage")
    outcome = refresh(meta, session, settings_for(closed_port_url()))
    assert outcome.source == "fallback" and outcome.error is not None
    assert read(meta)["patch"] == "15.20"
    assert outcome.preserved_copy is not None and outcome.preserved_copy.read_bytes() == b"\x00garbage"


# --- the job through the runner and the CLI, with a planted secret ------------------------------------


def _env(tmp_path: Path, base_url: str) -> dict[str, str]:
    return {
        "STRATMANCER_HOME": str(tmp_path),
        "STRATMANCER_DDRAGON_URL": base_url,
        "STRATMANCER_RETRY_INSTANT": "1",
        "STRATMANCER_TZ": "UTC",
        "RIOT_API_KEY": SECRET,
    }


def test_run_returns_metrics_and_raises_partial_failure(server: DDragonServer, tmp_path: Path) -> None:
    """run(ctx) returns metrics on success and raises PartialFailure with them when Data Dragon fails."""
    settings = load_settings(tmp_path, _env(tmp_path, server.base_url))
    ctx = JobContext(settings=settings, now=NOW, log=LOG)
    server.script(VERSIONS, json_reply(["16.23.1"]))
    ok = run(ctx)
    assert ok.metrics == {"patch": "16.23", "patch_changed": 0, "fetch_ok": 1, "fallback": 0}
    server.script(VERSIONS, Reply(status=500))
    with pytest.raises(PartialFailure) as failed:
        run(ctx)
    assert "HTTP 500" in failed.value.message
    assert failed.value.summary == "Patch metadata NOT refreshed: Data Dragon failed, kept 16.23"
    assert failed.value.metrics["fetch_ok"] == 0
    assert read(settings.layout.meta_file)["patch"] == "16.23"


def test_cli_exit_codes_and_planted_secret_never_leaks(
    server: DDragonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A planted RIOT_API_KEY appears in no request, log line, message, meta file or state, pass or fail."""
    from typer.testing import CliRunner

    from stratmancer_jobs.cli import app

    env = _env(tmp_path, server.base_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "jobs.toml").write_text("[patch]\ncross_check = true\n")
    runner = CliRunner()
    server.script(VERSIONS, json_reply(["16.23.1"]))
    server.script(REALM, json_reply({"v": "16.22.1"}))
    ok = runner.invoke(app, ["refresh-patch"])
    assert ok.exit_code == 0, ok.output
    assert "Patch metadata refreshed: 16.23 (16.23.1)" in ok.output
    assert "realms/na.json says 16.22.1" in ok.output

    server.script(VERSIONS, Reply(status=503))
    failed = runner.invoke(app, ["refresh-patch"])
    assert failed.exit_code == 1, failed.output
    assert "HTTP 503" in failed.output  # stderr is captured too, so the checks below see the log lines

    # a base URL carrying the key as user-info must not leak it through messages either
    monkeypatch.setenv("STRATMANCER_DDRAGON_URL", closed_port_url().replace("//", f"//u:{SECRET}@"))
    refused = runner.invoke(app, ["refresh-patch"])
    assert refused.exit_code == 1, refused.output
    status = runner.invoke(app, ["status", "--json"])
    assert status.exit_code == 0, status.output
    record = next(j for j in json.loads(status.stdout)["jobs"] if j["id"] == find_job("refresh-patch").id)
    assert record["error_count"] == 2 and record["success_count"] == 1
    assert "Connection refused" in record["last_error_message"]

    texts = [ok.output, failed.output, refused.output, status.output, caplog.text]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    texts += [f"{r.path} {r.headers}" for r in server.requests]
    assert server.requests, "the server was never asked"
    for text in texts:
        assert SECRET not in text


def test_secret_in_base_url_is_stripped_at_the_source(
    server: DDragonServer, session: requests.Session, meta: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the runner's redaction, a key in the URL's user-info still reaches no message or exception."""
    from stratmancer_jobs.http import get_json

    server.script(VERSIONS, Reply(status=500))
    base = server.base_url.replace("//", f"//u:{SECRET}@")
    with caplog.at_level(logging.DEBUG):
        outcome = refresh(meta, session, settings_for(base))
        with pytest.raises(FetchError) as info:
            get_json(session, base + VERSIONS, settings_for(base), LOG, sleep=Waits())
    assert outcome.error is not None and server.base_url in outcome.error
    for text in (outcome.error, summarize(outcome), str(info.value), repr(info.value), caplog.text):
        assert SECRET not in text
    assert SECRET not in meta.read_text()


def test_runner_timeout_interrupts_a_stalled_fetch(
    server: DDragonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's --timeout stops a fetch stuck in a long read; the retry loop does not swallow it.

    One request only: had the time limit not cut the read, it would have ended in a read timeout
    (20 s, before the server's 60 s stall) and been retried."""
    from typer.testing import CliRunner

    from stratmancer_jobs.cli import app

    for key, value in _env(tmp_path, server.base_url).items():
        monkeypatch.setenv(key, value)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "jobs.toml").write_text("[patch]\nread_timeout_s = 20.0\n")
    server.script(VERSIONS, Reply(delay_s=60.0, body=b'["16.23.1"]'))
    result = CliRunner().invoke(app, ["refresh-patch", "--timeout", "0.5"])
    assert result.exit_code == 1, result.output
    assert "timed out after 0.5 s" in result.output
    assert server.hits(VERSIONS) == 1


@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 9)), min_size=1), st.randoms()
)
def test_choose_version_is_order_independent(parts: list[tuple[int, int, int]], rnd: Any) -> None:
    """Whatever the order, the chosen version is the integer maximum and its patch is MAJOR.MINOR."""
    entries = [f"{a}.{b}.{c}" for a, b, c in parts] + ["lolpatch_9.9"]
    rnd.shuffle(entries)
    version, patch = choose_version(entries)
    top = max(parts)
    assert version == "{}.{}.{}".format(*top)
    assert patch == f"{top[0]}.{top[1]}"


def test_version_parsing_is_ascii_and_exact() -> None:
    """Non-ASCII digits and trailing newlines are not versions; leading zeros normalise the patch."""
    assert choose_version(["\u0661\u0666.1.1", "16.1.1\n", "16.09.1"]) == ("16.09.1", "16.9")
