"""`systemd` and `kubernetes` commands: the same job table and config as `crontab`, the exit-code contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from typer.testing import Result

NAMES = [
    f"stratmancer-{c}.{k}"
    for c in ("refresh-history", "refresh-registry", "refresh-patch")
    for k in ("service", "timer")
]


def test_systemd_writes_a_service_and_a_timer_per_job(root: Path, cli: Callable[..., Result]) -> None:
    """`systemd --output DIR` writes six units and says how to enable them."""
    out = root / "units"
    result = cli("systemd", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)
    assert "systemctl daemon-reload && systemctl enable --now stratmancer-*.timer" in result.output
    service = (out / "stratmancer-refresh-patch.service").read_text().splitlines()
    assert "Type=oneshot" in service
    assert f'Environment="STRATMANCER_HOME={root}"' in service
    assert any(line.startswith("ExecStart=") and line.endswith(" refresh-patch") for line in service)


def test_systemd_user_units_and_config_delay(root: Path, cli: Callable[..., Result]) -> None:
    """`--user` prints user units; `[deploy] randomized_delay_seconds` reaches every timer."""
    (root / "config/jobs.toml").write_text(
        "[deploy]\nrandomized_delay_seconds = 120\naccuracy_seconds = 30\n"
    )
    result = cli("systemd", "--user")
    assert result.exit_code == 0, result.output
    assert result.output.count("RandomizedDelaySec=120s") == 3
    assert result.output.count("AccuracySec=30s") == 3
    assert "systemctl --user daemon-reload" in result.output


def test_systemd_refuses_a_schedule_oncalendar_cannot_express(root: Path, cli: Callable[..., Result]) -> None:
    """Day-of-month and day-of-week both restricted (cron ORs them) is a clear usage error, exit 2."""
    (root / "config/jobs.toml").write_text('[jobs.refresh_patch_meta]\nschedule = "0 3 1 * MON"\n')
    result = cli("systemd")
    assert result.exit_code == 2
    assert "0 3 1 * MON" in result.output
    assert "Traceback" not in result.output


def test_kubernetes_flags_override_config(root: Path, cli: Callable[..., Result]) -> None:
    """`[deploy]` gives namespace, image, claim and secret; flags win; every document parses."""
    (root / "config/jobs.toml").write_text(
        '[deploy]\nnamespace = "ml"\nimage = "reg.example/sj:1.2"\npvc = "shared"\nsecret = "sj-secrets"\n'
    )
    result = cli("kubernetes", "--image", "reg.example/sj:2.0", "--with-pvc")
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "CronJob", "CronJob", "CronJob"]
    assert {d["metadata"]["namespace"] for d in docs} == {"ml"}
    job = docs[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = job["containers"][0]
    assert container["image"] == "reg.example/sj:2.0"
    assert container["envFrom"] == [{"secretRef": {"name": "sj-secrets", "optional": True}}]
    assert job["volumes"][0]["persistentVolumeClaim"]["claimName"] == "shared"


def test_bad_deploy_key_is_a_config_error(root: Path, cli: Callable[..., Result]) -> None:
    """An unknown `[deploy]` key or a negative delay names the key, exit 2."""
    (root / "config/jobs.toml").write_text("[deploy]\nrandomized_delay = 5\n")
    result = cli("systemd")
    assert result.exit_code == 2 and "deploy.randomized_delay" in result.output
    (root / "config/jobs.toml").write_text("[deploy]\nrandomized_delay_seconds = -1\n")
    result = cli("kubernetes")
    assert result.exit_code == 2 and "deploy.randomized_delay_seconds" in result.output
