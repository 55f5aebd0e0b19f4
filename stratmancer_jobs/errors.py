"""The one exception family of stratmancer-jobs.

Core code raises these; the CLI turns them into one line on stderr and an exit code.
The exit code contract (also in the README):

* 0 -- success, or a run skipped because the same job is already running
* 1 -- the job ran and failed (bad input, network failure, storage failure, ...)
* 2 -- usage or configuration error (bad flag, bad ``config/jobs.toml`` value, unknown job)
* 143 -- the run was stopped by SIGTERM (128 + 15, as a shell reports it): recorded, change kept owed
"""

from __future__ import annotations

from collections.abc import Mapping

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TERMINATED = 143


class StratmancerError(Exception):
    """Base of every error the tool raises on purpose; ``exit_code`` tells the CLI what to return."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(StratmancerError):
    """A configuration value or command-line usage is wrong; the message names the key."""

    exit_code = EXIT_USAGE


class JobError(StratmancerError):
    """A job could not do its work (its input or an external source is bad or missing)."""


class InputError(JobError):
    """An input file is unreadable or malformed; the message names the file."""


class FetchError(JobError):
    """A network source failed after every permitted attempt; the message names the URL."""


class StorageError(StratmancerError):
    """Writing or reading one of the tool's own files failed; the message names the path."""


class StateError(StorageError):
    """The job state file is corrupt or unreadable; the message names the file."""


class JobTimeout(JobError):
    """A job ran past its maximum run time."""


class JobTerminated(JobError):
    """The run was stopped by SIGTERM (a supervisor stopping it): recorded as failed, no more hooks run."""

    exit_code = EXIT_TERMINATED


class PartialFailure(JobError):
    """The job did part of its work (e.g. the other tiers were updated) but must be recorded as failed.

    Carries what was done, so that the run's summary and metrics are recorded beside the error. An
    output the partial run committed was announced before it was written (``JobContext.before_commit``),
    so its change hooks still run.
    """

    def __init__(
        self,
        message: str,
        *,
        summary: str,
        metrics: Mapping[str, float | str] | None = None,
        inputs: object | None = None,
    ) -> None:
        super().__init__(message)
        self.summary = summary
        self.metrics: Mapping[str, float | str] = dict(metrics or {})
        self.inputs = inputs  # a freshness.Observed (what the partial run saw of its inputs), or None
