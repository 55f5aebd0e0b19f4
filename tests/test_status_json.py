"""`status --json` as monitoring reads it: everything `status JOB` shows, through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import Result

from tests.conftest import write_card
from tests.hook_server import HookReply, hook_server

Invoke = Callable[..., Result]
REGISTRY = "refresh_model_registry"


def _job(cli: Invoke, job_id: str) -> Any:
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    return next(j for j in json.loads(result.stdout)["jobs"] if j["id"] == job_id)


def test_json_shows_the_pending_change_and_the_hooks_still_owed(cli: Invoke, root: Path) -> None:
    """A change whose second hook fails: --json gives since, attempts, the last error and only the hook
    still owed; after the hook succeeds pending_change is null."""
    write_card(root, "mid", "20251101_164237")
    with hook_server() as server:
        server.script("/bad", HookReply(500, b"boom"))
        hooks = "".join(
            f'[[jobs.{REGISTRY}.on_change]]\nurl = "{server.base_url}{path}"\n' for path in ("/good", "/bad")
        )
        (root / "config/jobs.toml").write_text("[patch]\nmax_attempts = 1\n" + hooks)
        assert _job(cli, REGISTRY)["pending_change"] is None
        first = cli("refresh-registry")
        assert first.exit_code == 1, first.output + str(server.requests)
        pending = _job(cli, REGISTRY)["pending_change"]
        assert pending["since"] and pending["since"].endswith("+00:00")
        assert pending["attempts"] == 1 and "HTTP 500" in pending["last_error"]
        assert pending["hooks_owed"] == [f"POST {server.base_url}/bad"]
        assert pending["paths"] == [str(root / "ml_pipeline/model_registry.json")]
        detail = cli("status", "refresh-registry").stdout
        assert f"owed by: POST {server.base_url}/bad" in detail
        server.script("/bad", HookReply(200))
        assert cli("refresh-registry").exit_code == 0
        assert _job(cli, REGISTRY)["pending_change"] is None
