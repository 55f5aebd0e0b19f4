"""Every path the tool reads or writes, all under the deployment root, defined here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_RELPATH = Path("config") / "jobs.toml"
ENV_FILE_RELPATH = Path("config") / "stratmancer.env"
LOG_RELPATH = Path("logs") / "stratmancer-jobs.log"


def lock_beside(path: Path) -> Path:
    """The sibling lock file of a data file (the data file itself is never locked, never deleted)."""
    return path.with_name(path.name + ".lock")


def contained(path: Path, directory: Path, root: Path) -> bool:
    """True when ``path``, an entry of ``directory``, resolves inside the real location of that
    directory or of the deployment root ``root``: the one containment rule of every job.

    Directory symlinks are the operator's layout (``ml_pipeline/`` or ``data/`` on another disk) and
    are followed; a file symlink leading anywhere else is refused (a loop counts as outside).
    """
    try:
        real = path.resolve()
        return real.is_relative_to(directory.resolve()) or real.is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return False


@dataclass(frozen=True)
class Layout:
    """The deployment root and every file and folder under it that the jobs read, write or lock."""

    root: Path

    def looks_deployed(self) -> bool:
        """Whether the root holds any of state/, config/, data/ or ml_pipeline/ (else it is likely the
        wrong directory)."""
        return any((self.root / name).is_dir() for name in ("state", "config", "data", "ml_pipeline"))

    # inputs
    @property
    def processed_dir(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def models_dir(self) -> Path:
        return self.root / "ml_pipeline" / "models"

    @property
    def modelcards_dir(self) -> Path:
        return self.models_dir / "modelcards"

    @property
    def trained_dir(self) -> Path:
        return self.models_dir / "trained"

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_RELPATH

    @property
    def env_file(self) -> Path:
        """The default secrets file (``env_file`` in jobs.toml may name another)."""
        return self.root / ENV_FILE_RELPATH

    # outputs
    @property
    def history_index(self) -> Path:
        return self.root / "ml_pipeline" / "history_index.json"

    @property
    def history_sidecar(self) -> Path:
        """Games counts, skip reasons and input fingerprints: beside the index, never inside it."""
        return self.root / "ml_pipeline" / "history_index.meta.json"

    @property
    def registry_file(self) -> Path:
        return self.root / "ml_pipeline" / "model_registry.json"

    @property
    def meta_file(self) -> Path:
        return self.root / "config" / "meta.json"

    @property
    def log_file(self) -> Path:
        """Where the generated schedules (crontab) append each run's output."""
        return self.root / LOG_RELPATH

    # the tool's own files
    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "jobs_state.json"

    @property
    def lock_dir(self) -> Path:
        return self.state_dir / "locks"

    def job_lock(self, job_id: str) -> Path:
        """One lock per job: a second run of the same job is skipped while it is held."""
        return self.lock_dir / f"{job_id}.lock"

    def job_warnings(self, job_id: str) -> Path:
        """The warnings a job's last run logged (hashes only), so an unchanged one is not logged again."""
        return self.state_dir / "warnings" / f"{job_id}.json"

    def job_progress(self, job_id: str) -> Path:
        """A running job's progress (files and bytes done of total), for ``status --watch``; read without a
        lock, written atomically at most once a second and removed when the run ends."""
        return self.state_dir / "progress" / f"{job_id}.json"

    @property
    def history_cache_dir(self) -> Path:
        return self.state_dir / "history_cache"

    @property
    def history_manifest(self) -> Path:
        return self.history_cache_dir / "manifest.json"

    def history_group_cache(self, group: str) -> Path:
        """One elo group's counts and file checkpoints (binary, rebuilt when missing or bad)."""
        return self.history_cache_dir / f"group_{group}.bin"
