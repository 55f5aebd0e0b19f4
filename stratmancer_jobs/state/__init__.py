"""The job state file: one JSON document, read-modify-written only under a sibling FileLock.

The public face of the state package: ``records`` (the typed records and their limits), ``codec``
(validation, decoding and encoding of the JSON document), ``store`` (the file, its lock and its
quarantine) and ``transitions`` (the pure record updates the runner applies).
"""

from stratmancer_jobs.state.codec import decode, encodable, encode, load_state, read_state
from stratmancer_jobs.state.records import (
    FIELDS,
    MAX_CLOCK_SKEW_S,
    RECENT_RUNS,
    SCHEMA_VERSION,
    JobRecord,
    RunEntry,
    RunMarker,
    State,
    counted_success,
    empty_record,
    empty_state,
    first_recorded,
    in_the_future,
    wall_clock_note,
)
from stratmancer_jobs.state.store import FILE_MODE, Committed, StateStore
from stratmancer_jobs.state.transitions import (
    last_completed_status,
    mark_failed_unrun,
    mark_finished,
    mark_interrupted,
    mark_skipped,
    mark_started,
)

__all__ = [
    "FIELDS",
    "FILE_MODE",
    "MAX_CLOCK_SKEW_S",
    "RECENT_RUNS",
    "SCHEMA_VERSION",
    "Committed",
    "JobRecord",
    "RunEntry",
    "RunMarker",
    "State",
    "StateStore",
    "counted_success",
    "decode",
    "empty_record",
    "empty_state",
    "encodable",
    "encode",
    "first_recorded",
    "in_the_future",
    "last_completed_status",
    "load_state",
    "mark_failed_unrun",
    "mark_finished",
    "mark_interrupted",
    "mark_skipped",
    "mark_started",
    "read_state",
    "wall_clock_note",
]
