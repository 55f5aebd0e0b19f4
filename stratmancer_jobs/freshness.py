"""Are the predictions fresh? The input checks: data age, collector format, model patch drift, feature
assets. Pure: the jobs that read the inputs record what they saw (``Observed``, stored with the run);
``evaluate`` judges it at a given ``now`` against the ``[freshness]`` thresholds, so that an index whose
newest match was fine an hour ago turns stale in ``status`` without any job running.

* ``data_age`` (refresh-history): per tier and elo group, now minus the newest counted record's
  ``game_creation``; "unknown" when no record carries one.
* ``collector_format`` (refresh-history): the share of invalid records among those the last read of a
  tier read; a warning above ``invalid_warn_ratio`` once at least ``MIN_READ`` records were read.
* ``model_patch`` (refresh-registry): patches between the served model's card ``source_patch`` and the
  current patch, in Data Dragon's version order (kept by refresh-patch), so 15.24 -> 16.1 is 1.
* ``feature_assets`` (refresh-registry): a ``rich`` model's priors / matchups for the current patch and
  its embeddings, named when missing with the command that builds them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from stratmancer_jobs.errors import ConfigError
from stratmancer_jobs.patchver import normalize_patch, parse_patch

HISTORY_JOB: Final = "refresh_history_index"
REGISTRY_JOB: Final = "refresh_model_registry"
PATCH_JOB: Final = "refresh_patch_meta"

DATA_AGE: Final = "data_age"
COLLECTOR: Final = "collector_format"
MODEL_PATCH: Final = "model_patch"
ASSETS: Final = "feature_assets"
CHECKS: Final = (DATA_AGE, COLLECTOR, MODEL_PATCH, ASSETS)

OK, WARN, ERROR, UNKNOWN = "ok", "warn", "error", "unknown"
LEVELS: Final = {OK: 0, UNKNOWN: 0, WARN: 1, ERROR: 2}

MIN_READ: Final = 100  # fewer records read than this say nothing about the collector's format
RECENT_PATCHES: Final = 100  # patches of Data Dragon's order refresh-patch keeps (newest first)
# the subjects a data-age override may name: the tiers and elo groups of jobs/history/tiers.py (a test
# checks that they agree; this core module cannot import a job)
TIER_NAMES: Final = (
    "IRON", "BRONZE", "SILVER", "GOLD", "PLATINUM",
    "EMERALD", "DIAMOND", "MASTER", "GRANDMASTER", "CHALLENGER",
)  # fmt: skip
GROUP_NAMES: Final = ("LOW", "MID", "HIGH")
MAX_DURATION_S: Final = 365 * 86400
MAX_PATCHES: Final = 1000
MAX_BUILD_TIMEOUT_S: Final = 7 * 24 * 3600

# --- settings ([freshness] in config/jobs.toml) -----------------------------------------------------


@dataclass(frozen=True)
class AgeLimits:
    """Data older than ``warn_s`` warns, older than ``error_s`` is an error; None turns either off."""

    warn_s: int | None = 12 * 3600
    error_s: int | None = 48 * 3600


@dataclass(frozen=True)
class FreshnessSettings:
    data: AgeLimits = field(default_factory=AgeLimits)
    data_overrides: Mapping[str, AgeLimits] = field(default_factory=dict)  # tier or group -> limits
    model_warn_patches_behind: int | None = 1
    model_error_patches_behind: int | None = 3
    invalid_warn_ratio: float | None = 0.05
    # argv run for each missing (elo, patch) of a rich model's assets; {elo} and {patch} filled in
    build_assets_command: tuple[str, ...] = ()
    build_assets_timeout_s: int = 180

    def data_limits(self, subject: str) -> AgeLimits:
        return self.data_overrides.get(subject, self.data)


_DURATION_RE: Final = re.compile(r"^([0-9]{1,9})(s|m|h|d)$", re.ASCII)
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object, key: str) -> int | None:
    """``"90m"``, ``"12h"``, ``"2d"`` (or ``"30s"``) in seconds; ``"off"`` is None. ConfigError naming
    ``key`` otherwise."""
    if value == "off":
        return None
    match = _DURATION_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(
            f'config key {key} must be a duration like "90m", "12h" or "2d" (or "off"), got {value!r}'
        )
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if not 0 < seconds <= MAX_DURATION_S:
        raise ConfigError(f"config key {key} must be more than 0 and at most 365d, got {value!r}")
    return seconds


def _patches_behind(value: object, key: str) -> int | None:
    if value == "off":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PATCHES:
        raise ConfigError(f'config key {key} must be a whole number 1..{MAX_PATCHES} or "off", got {value!r}')
    return value


def _limits(table: Mapping[str, Any], where: str, base: AgeLimits) -> AgeLimits:
    warn = (
        parse_duration(table["data_warn_after"], where + "data_warn_after")
        if "data_warn_after" in table
        else base.warn_s
    )
    error = (
        parse_duration(table["data_error_after"], where + "data_error_after")
        if "data_error_after" in table
        else base.error_s
    )
    if warn is not None and error is not None and warn > error:
        raise ConfigError(
            f"config key {where}data_warn_after must not be longer than {where}data_error_after"
        )
    return AgeLimits(warn, error)


def _reject_unknown(table: Mapping[str, Any], where: str, known: Iterable[str]) -> None:
    names = sorted(known)
    for key in table:
        if key not in names:
            raise ConfigError(f"config key {where}{key} is unknown (known: {', '.join(names)})")


_KEYS: Final = (
    "data_warn_after",
    "data_error_after",
    "model_warn_patches_behind",
    "model_error_patches_behind",
    "invalid_warn_ratio",
    "build_assets_command",
    "build_assets_timeout_seconds",
    "tiers",
)


def parse_freshness(table: Mapping[str, Any]) -> FreshnessSettings:
    """``[freshness]`` as settings; ConfigError naming the key on any bad value."""
    w = "freshness."
    _reject_unknown(table, w, _KEYS)
    data = _limits(table, w, AgeLimits())
    overrides_table = table.get("tiers", {})
    if not isinstance(overrides_table, dict):
        raise ConfigError("config key freshness.tiers must be a table of tiers or elo groups")
    overrides: dict[str, AgeLimits] = {}
    for name, sub in overrides_table.items():
        where = f"{w}tiers.{name}."
        if name not in (*TIER_NAMES, *GROUP_NAMES):
            valid = ", ".join((*TIER_NAMES, *GROUP_NAMES))
            raise ConfigError(f"config key {w}tiers.{name}: not a tier or elo group (valid: {valid})")
        if not isinstance(sub, dict):
            raise ConfigError(f"config key {w}tiers.{name} must be a table")
        _reject_unknown(sub, where, ("data_warn_after", "data_error_after"))
        overrides[name] = _limits(sub, where, data)
    d = FreshnessSettings()
    warn = (
        _patches_behind(table["model_warn_patches_behind"], w + "model_warn_patches_behind")
        if "model_warn_patches_behind" in table
        else d.model_warn_patches_behind
    )
    error = (
        _patches_behind(table["model_error_patches_behind"], w + "model_error_patches_behind")
        if "model_error_patches_behind" in table
        else d.model_error_patches_behind
    )
    if warn is not None and error is not None and warn > error:
        raise ConfigError(
            f"config key {w}model_warn_patches_behind must not exceed {w}model_error_patches_behind"
        )
    ratio: float | None = d.invalid_warn_ratio
    if "invalid_warn_ratio" in table:
        raw = table["invalid_warn_ratio"]
        if raw == "off":
            ratio = None
        elif (
            isinstance(raw, bool)
            or not isinstance(raw, int | float)
            or not (math.isfinite(raw) and 0 <= raw < 1)
        ):
            raise ConfigError(
                f'config key {w}invalid_warn_ratio must be a number in [0, 1) or "off", got {raw!r}'
            )
        else:
            ratio = float(raw)
    command = table.get("build_assets_command", [])
    if (
        not isinstance(command, list)
        or not all(isinstance(a, str) and a for a in command)
        or ("build_assets_command" in table and not command)
    ):
        raise ConfigError(
            f"config key {w}build_assets_command must be a non-empty list of strings (argv, no shell), "
            f"got {command!r}"
        )
    timeout = table.get("build_assets_timeout_seconds", d.build_assets_timeout_s)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= MAX_BUILD_TIMEOUT_S:
        raise ConfigError(
            f"config key {w}build_assets_timeout_seconds must be a whole number 1..{MAX_BUILD_TIMEOUT_S}, "
            f"got {timeout!r}"
        )
    return FreshnessSettings(data, overrides, warn, error, ratio, tuple(command), timeout)


# --- what the jobs saw, stored with their runs --------------------------------------------------------


@dataclass(frozen=True)
class ReadShare:
    """The last read of a tier: records read (valid or not), the invalid ones, the commonest reason."""

    records: int
    invalid: int
    top_reason: str | None = None


@dataclass(frozen=True)
class ServedModel:
    """The served model's card facts for one elo (None in ``Observed.models``: no card)."""

    card: str
    source_patch: str | None


@dataclass(frozen=True)
class AssetsState:
    """A rich model's feature assets for the current patch: the missing files, the build command and
    the last build run for this (elo, patch) (None: none ran)."""

    patch: str
    missing: tuple[str, ...]
    command: str
    build: str | None = None


@dataclass(frozen=True)
class Observed:
    """What a job saw of its inputs in its last run that read them; empty fields were not looked at."""

    newest_ms: Mapping[str, int | None] = field(default_factory=dict)  # tier/group -> game_creation
    read: Mapping[str, ReadShare] = field(default_factory=dict)  # tier -> its last read
    current_patch: str | None = None  # config/meta.json's patch, as refresh-registry read it
    models: Mapping[str, ServedModel | None] = field(default_factory=dict)  # elo -> served card
    assets: Mapping[str, AssetsState] = field(default_factory=dict)  # elo (rich models only)
    versions: tuple[str, ...] = ()  # refresh-patch: Data Dragon's recent patches, newest first

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.newest_ms:
            out["newest_game_creation_ms"] = dict(self.newest_ms)
        if self.read:
            out["read"] = {k: [r.records, r.invalid, r.top_reason] for k, r in self.read.items()}
        if self.current_patch is not None or self.models:
            out["current_patch"] = self.current_patch
            out["models"] = {
                elo: None if m is None else {"card": m.card, "source_patch": m.source_patch}
                for elo, m in self.models.items()
            }
        if self.assets:
            out["assets"] = {
                elo: {"patch": a.patch, "missing": list(a.missing), "command": a.command, "build": a.build}
                for elo, a in self.assets.items()
            }
        if self.versions:
            out["versions"] = list(self.versions)
        return out

    @classmethod
    def from_json(cls, value: object) -> Observed | None:
        """The stored object read back; anything malformed is left out (never an error: the next run
        that reads the inputs records them again)."""
        if not isinstance(value, dict):
            return None
        return cls(
            newest_ms={
                k: v
                for k, v in _items(value.get("newest_game_creation_ms"))
                if v is None or (type(v) is int and abs(v) < 2**63)
            },
            read={
                k: ReadShare(v[0], v[1], v[2] if isinstance(v[2], str) else None)
                for k, v in _items(value.get("read"))
                if isinstance(v, list) and len(v) == 3 and all(type(n) is int and n >= 0 for n in v[:2])
            },
            current_patch=_str(value.get("current_patch")),
            models={
                k: None if v is None else ServedModel(str(v.get("card")), _str(v.get("source_patch")))
                for k, v in _items(value.get("models"))
                if v is None or isinstance(v, dict)
            },
            assets={
                k: AssetsState(
                    str(v.get("patch")),
                    tuple(str(m) for m in v.get("missing") or () if isinstance(m, str)),
                    str(v.get("command")),
                    _str(v.get("build")),
                )
                for k, v in _items(value.get("assets"))
                if isinstance(v, dict)
            },
            versions=tuple(p for p in value.get("versions") or () if normalize_patch(p) == p)
            if isinstance(value.get("versions"), list)
            else (),
        )


def _items(value: object) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in value.items()] if isinstance(value, dict) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def recent_patches(versions: Iterable[object], keep: int = RECENT_PATCHES) -> tuple[str, ...]:
    """Data Dragon's versions (newest first, as ``api/versions.json`` lists them) as distinct patches in
    that order, the newest ``keep``; legacy and malformed entries skipped."""
    out: list[str] = []
    seen: set[str] = set()
    for entry in versions:
        if not isinstance(entry, str):
            continue
        patch = normalize_patch(".".join(entry.split(".")[:2]))
        if patch is None or patch in seen or not re.match(r"^\d+\.\d+\.\d+", entry):
            continue
        seen.add(patch)
        out.append(patch)
        if len(out) == keep:
            break
    return tuple(out)


def patches_between(source: str, current: str, order: tuple[str, ...]) -> tuple[int, bool] | None:
    """How many patches ``source`` is behind ``current`` and whether that is exact: by the version
    order (newest first) when it lists both, at least the rest of the list when ``source`` is older
    than all of it, by minor numbers within one season; None when it cannot be told."""
    s, c = normalize_patch(source), normalize_patch(current)
    if s is None or c is None:
        return None
    if s == c:
        return 0, True
    if s in order and c in order:
        return max(0, order.index(s) - order.index(c)), True
    ps, pc = parse_patch(s), parse_patch(c)
    assert ps is not None and pc is not None
    if ps > pc:
        return 0, True
    if c in order and order and all(ps < (parse_patch(p) or (0, 0)) for p in order):
        return len(order) - order.index(c), False
    if ps[0] == pc[0]:
        return pc[1] - ps[1], True
    return None


# --- judging ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One check's verdict: which job saw it, what about (a tier, an elo), its state, figure and reason."""

    job_id: str
    check: str
    subject: str
    state: str  # ok, warn, error or unknown (the data cannot tell: never an error)
    figure: float | None  # age in seconds, ratio, patches behind or files missing
    reason: str

    @property
    def level(self) -> int:
        return LEVELS[self.state]

    def line(self) -> str:
        return f"{self.check} {self.subject}: {self.state}: {self.reason}"

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "check": self.check,
            "subject": self.subject,
            "state": self.state,
            "figure": self.figure,
            "reason": self.reason,
        }


def human_age(seconds: float) -> str:
    """``3d 2h``, ``6h 05m``, ``45m``, ``30s``."""
    s = max(0, int(seconds))
    if s >= 86400:
        return f"{s // 86400}d {s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m"
    return f"{s}s"


def _over(value: float, warn: float | None, error: float | None) -> str:
    if error is not None and value >= error:
        return ERROR
    if warn is not None and value >= warn:
        return WARN
    return OK


def _data_age(observed: Observed, settings: FreshnessSettings, now: datetime) -> list[Check]:
    out: list[Check] = []
    for subject, newest in observed.newest_ms.items():
        if newest is None:
            out.append(
                Check(HISTORY_JOB, DATA_AGE, subject, UNKNOWN, None, "no record carries game_creation")
            )
            continue
        age = max(0.0, now.timestamp() - newest / 1000)
        limits = settings.data_limits(subject)
        state = OK
        if limits.error_s is not None and age > limits.error_s:
            state = ERROR
        elif limits.warn_s is not None and age > limits.warn_s:
            state = WARN
        when = datetime.fromtimestamp(newest / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
        off = " (check off)" if limits.warn_s is None and limits.error_s is None else ""
        out.append(
            Check(
                HISTORY_JOB,
                DATA_AGE,
                subject,
                state,
                round(age, 3),
                f"newest match {human_age(age)} old ({when}){off}",
            )
        )
    return out


def _collector(observed: Observed, settings: FreshnessSettings) -> list[Check]:
    out: list[Check] = []
    for tier, share in observed.read.items():
        ratio = share.invalid / share.records if share.records else 0.0
        bad = (
            settings.invalid_warn_ratio is not None
            and share.records >= MIN_READ
            and ratio > settings.invalid_warn_ratio
        )
        reason = f"{share.invalid:,} of {share.records:,} records read were invalid ({ratio:.1%})"
        if share.top_reason and share.invalid:
            reason += f", most: {share.top_reason}"
        out.append(Check(HISTORY_JOB, COLLECTOR, tier, WARN if bad else OK, round(ratio, 6), reason))
    return out


def _model_patch(observed: Observed, versions: tuple[str, ...], settings: FreshnessSettings) -> list[Check]:
    out: list[Check] = []
    current = observed.current_patch
    for elo, model in observed.models.items():
        if model is None:
            out.append(Check(REGISTRY_JOB, MODEL_PATCH, elo, UNKNOWN, None, "the served model has no card"))
            continue
        if model.source_patch is None or current is None:
            missing = (
                "its card has no source_patch"
                if model.source_patch is None
                else "no current patch in meta.json"
            )
            out.append(Check(REGISTRY_JOB, MODEL_PATCH, elo, UNKNOWN, None, f"{model.card}: {missing}"))
            continue
        behind = patches_between(model.source_patch, current, versions)
        if behind is None:
            why = f"{model.card}: patch {model.source_patch} vs {current}: order unknown (run refresh-patch)"
            out.append(Check(REGISTRY_JOB, MODEL_PATCH, elo, UNKNOWN, None, why))
            continue
        n, exact = behind
        state = _over(n, settings.model_warn_patches_behind, settings.model_error_patches_behind)
        count = f"{'' if exact else 'at least '}{n} patch{'es' if n != 1 else ''} behind"
        off = (
            " (check off)"
            if settings.model_warn_patches_behind is None and settings.model_error_patches_behind is None
            else ""
        )
        reason = f"{model.card} trained on {model.source_patch}, current {current}: {count}{off}"
        out.append(Check(REGISTRY_JOB, MODEL_PATCH, elo, state, float(n), reason))
    return out


def _assets(observed: Observed) -> list[Check]:
    out: list[Check] = []
    for elo, assets in observed.assets.items():
        if not assets.missing:
            out.append(
                Check(REGISTRY_JOB, ASSETS, elo, OK, 0.0, f"rich model's assets for {assets.patch} present")
            )
            continue
        reason = (
            f"rich model has no feature assets for {assets.patch}: {', '.join(assets.missing)} missing "
            f"(build: {assets.command})"
        )
        if assets.build:
            reason += f"; {assets.build}"
        out.append(Check(REGISTRY_JOB, ASSETS, elo, WARN, float(len(assets.missing)), reason))
    return out


def evaluate(
    observed: Mapping[str, Observed | None], settings: FreshnessSettings, now: datetime
) -> list[Check]:
    """Every check of every job's last observation at ``now`` (``observed``: job id -> what it saw)."""
    history = observed.get(HISTORY_JOB)
    registry = observed.get(REGISTRY_JOB)
    patch = observed.get(PATCH_JOB)
    out: list[Check] = []
    if history is not None:
        out += _data_age(history, settings, now)
        out += _collector(history, settings)
    if registry is not None:
        out += _model_patch(registry, patch.versions if patch is not None else (), settings)
        out += _assets(registry)
    return out
