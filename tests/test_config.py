"""Configuration: defaults, precedence, the example file, and errors that name the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stratmancer_jobs.config import load_settings
from stratmancer_jobs.errors import ConfigError
from tests.conftest import REPO


def test_defaults_without_config_file(root: Path) -> None:
    """No config file gives the documented schedules, graces and thresholds."""
    s = load_settings(root, {"TZ": "Europe/Paris"})
    assert not s.config_file_found
    assert s.jobs["refresh_history_index"].schedule == "0 * * * *"
    assert s.jobs["refresh_model_registry"].grace_s == 60
    assert s.jobs["refresh_patch_meta"].grace_s == 3600
    assert s.history.min_champ_games == 5
    assert s.timezone.key == "Europe/Paris"
    assert s.metrics_file is None


def test_example_config_equals_defaults(root: Path) -> None:
    """config/jobs.toml.example, copied into place, gives exactly the built-in defaults."""
    shutil.copy(REPO / "config/jobs.toml.example", root / "config/jobs.toml")
    from_file = load_settings(root, {"TZ": "UTC"})
    (root / "config/jobs.toml").unlink()
    defaults = load_settings(root, {"TZ": "UTC"})
    assert from_file.config_file_found
    assert from_file.jobs == defaults.jobs
    assert from_file.history == defaults.history and from_file.patch == defaults.patch
    assert from_file.registry == defaults.registry and from_file.hooks == defaults.hooks == {}
    assert from_file.deploy == defaults.deploy


def test_precedence_env_over_file(root: Path) -> None:
    """Environment beats the config file, which beats the default; the flag beats both."""
    (root / "config/jobs.toml").write_text(
        'timezone = "Asia/Tokyo"\nmetrics_file = "m/file.prom"\n[patch]\nbase_url = "http://127.0.0.1:1"\n'
    )
    s = load_settings(root, {})
    assert s.timezone.key == "Asia/Tokyo" and s.patch.base_url == "http://127.0.0.1:1"
    assert s.metrics_file == root / "m/file.prom"
    env = {
        "STRATMANCER_TZ": "America/New_York",
        "STRATMANCER_DDRAGON_URL": "http://127.0.0.1:2/",
        "STRATMANCER_METRICS_FILE": str(root / "env.prom"),
    }
    s = load_settings(root, env)
    assert s.timezone.key == "America/New_York" and s.patch.base_url == "http://127.0.0.1:2"
    assert s.metrics_file == root / "env.prom"
    s = load_settings(root, env, metrics_file=root / "flag.prom")
    assert s.metrics_file == root / "flag.prom"


def test_home_env_sets_root(root: Path) -> None:
    """STRATMANCER_HOME is the root when no flag is given."""
    assert load_settings(None, {"STRATMANCER_HOME": str(root)}).layout.root == root.resolve()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("timezone = 3", "config key timezone must be str"),
        ('timezone = "Mars/Olympus"', "unknown timezone 'Mars/Olympus'"),
        ('[jobs.refresh_history_index]\nschedule = "every hour"', "jobs.refresh_history_index.schedule"),
        ('[jobs.refresh_history_index]\nschedule = "61 * * * *"', "invalid cron expression"),
        ("[jobs.refresh_history_index]\ngrace_seconds = -5", "grace_seconds must be >= 0"),
        ("[jobs.refresh_history_index]\ntimeout_seconds = true", "timeout_seconds must be int"),
        ('[jobs.nightly]\nschedule = "0 1 * * *"', "jobs.nightly: unknown job"),
        ("[history]\nmin_pair_games = 0", "history.min_pair_games must be >= 1"),
        ("[history]\nmin_games = 4", "history.min_games is unknown"),
        ('[patch]\nbase_url = "ftp://x"', "patch.base_url must be an http(s) URL"),
        ('[patch]\ndefault_patch = "sixteen"', "patch.default_patch must look like 16.23"),
        ("[patch]\nmax_attempts = 0", "patch.max_attempts must be >= 1"),
        ('[patch]\nregion = "../x"', "patch.region must be alphanumeric"),
        ("colour = true", "config key colour is unknown"),
        ("this is = not toml", "is not valid TOML"),
    ],
)
def test_bad_values_name_the_key(root: Path, toml: str, message: str) -> None:
    """Every bad config value is a ConfigError (exit 2) whose message names the key."""
    (root / "config/jobs.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(root, {})
    assert message in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[jobs.refresh_history_index]\ntimeout_seconds = 9300000000",
            "timeout_seconds must be >= 0 and <= 604800",
        ),
        (
            "[jobs.refresh_history_index]\ntimeout_seconds = 604801",
            "timeout_seconds must be >= 0 and <= 604800",
        ),
        (
            "[jobs.refresh_patch_meta]\ngrace_seconds = 9300000000",
            "grace_seconds must be >= 0 and <= 2678400",
        ),
        (
            "[history]\nmin_champ_games = 9223372036854775807",
            "min_champ_games must be >= 1 and <= 1000000000",
        ),
        ("[patch]\nconnect_timeout_s = inf", "patch.connect_timeout_s must be > 0 and <= 3600, got inf"),
        ("[patch]\nread_timeout_s = nan", "patch.read_timeout_s must be > 0 and <= 3600, got nan"),
        ("[patch]\nread_timeout_s = 1e20", "patch.read_timeout_s must be > 0 and <= 3600"),
        ("[patch]\nbackoff_base_s = nan", "patch.backoff_base_s must be >= 0 and <= 86400, got nan"),
        ("[patch]\nmax_backoff_s = inf", "patch.max_backoff_s must be >= 0 and <= 86400, got inf"),
        ("[patch]\nmax_retry_after_s = 1e300", "patch.max_retry_after_s must be >= 0 and <= 86400"),
        ("[patch]\nmax_attempts = 9300000000", "patch.max_attempts must be >= 1 and <= 100"),
        ("[patch]\nmax_bytes = 9223372036854775807", "patch.max_bytes must be >= 1 and <= 1073741824"),
    ],
)
def test_inf_nan_and_huge_numbers_are_refused(root: Path, toml: str, message: str) -> None:
    """inf, nan and values past each numeric key's maximum are a ConfigError (exit 2) naming the key."""
    (root / "config/jobs.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(root, {})
    assert message in str(info.value)
    assert info.value.exit_code == 2


def test_numeric_maximums_themselves_are_accepted(root: Path) -> None:
    """Each numeric key at exactly its maximum loads (the bounds are inclusive)."""
    (root / "config/jobs.toml").write_text(
        "[jobs.refresh_history_index]\ntimeout_seconds = 604800\ngrace_seconds = 2678400\n"
        "[history]\nmin_pair_games = 1000000000\n"
        "[patch]\nconnect_timeout_s = 3600\nmax_backoff_s = 86400\nmax_attempts = 100\n"
        "max_bytes = 1073741824\n"
    )
    s = load_settings(root, {})
    assert s.jobs["refresh_history_index"].timeout_s == 604800
    assert s.patch.max_attempts == 100 and s.patch.max_bytes == 1024**3


def test_secret_values_are_collected_but_not_in_repr(root: Path) -> None:
    """Secret-looking environment values are known for redaction and hidden from repr()."""
    s = load_settings(root, {"RIOT_API_KEY": "RGAPI-abcdef-123456", "HOME": "/root"})
    assert s.redact_values == ("RGAPI-abcdef-123456",)
    assert "RGAPI" not in repr(s)


def test_relative_metrics_path_cannot_climb_out_of_root(root: Path) -> None:
    """A relative metrics_file with '..' leaving the root is refused; an absolute one is explicit."""
    (root / "config/jobs.toml").write_text('metrics_file = "../../etc/evil.prom"\n')
    with pytest.raises(ConfigError, match="points outside the deployment root"):
        load_settings(root, {})
    (root / "config/jobs.toml").write_text('metrics_file = "/var/lib/node_exporter/sj.prom"\n')
    assert load_settings(root, {}).metrics_file == Path("/var/lib/node_exporter/sj.prom")
