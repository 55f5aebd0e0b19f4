"""Decoding and validating match records (pure: bytes in, records and skip reasons out)."""

from __future__ import annotations

import json

import pytest

from stratmancer_jobs.jobs.history import records
from stratmancer_jobs.jobs.history.records import RecordsError, decode_array, decode_lines
from tests.history_fixtures import match

BLUE = [1, 2, 3, 4, 5]
RED = [6, 7, 8, 9, 10]


def _array(items: list[object]) -> bytes:
    return json.dumps(items, indent=2).encode()


def test_valid_records_keep_only_the_needed_fields() -> None:
    """A valid array decodes to Match objects with picks as tuples, in file order."""
    out = decode_array(_array([match("A", BLUE, RED, True), match("B", RED, BLUE, False)]))
    assert [m.match_id for m in out.records] == ["A", "B"]
    assert out.records[0].blue_picks == (1, 2, 3, 4, 5)
    assert out.records[1].blue_win is False
    assert not out.skipped


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (["not", "an", "object"], records.NOT_OBJECT),
        (42, records.NOT_OBJECT),
        ({"red_picks": RED, "blue_win": True}, records.BAD_PICKS),
        (match("x", [1, 2, 3, 4], RED, True), records.BAD_PICKS),
        (match("x", [1, 2, 3, 4, 5, 11], RED, True), records.BAD_PICKS),
        (match("x", [1, 2, 3, 4, "5"], RED, True), records.BAD_PICKS),
        (match("x", [1, 2, 3, 4, True], RED, True), records.BAD_PICKS),
        (match("x", [1, 2, 3, 4, 5.0], RED, True), records.BAD_PICKS),
        (match("x", BLUE, "6,7,8,9,10", True), records.BAD_PICKS),
        (match("x", BLUE, [5, 7, 8, 9, 10], True), records.REPEATED_CHAMPION),
        (match("x", [1, 1, 3, 4, 5], RED, True), records.REPEATED_CHAMPION),
        (match("x", BLUE, RED, 1), records.BAD_BLUE_WIN),
        (match("x", BLUE, RED, "true"), records.BAD_BLUE_WIN),
        (match("x", BLUE, RED, None), records.BAD_BLUE_WIN),
    ],
)
def test_each_skip_reason(record: object, reason: str) -> None:
    """A bad record among good ones is skipped and counted under its reason; the good ones stay."""
    out = decode_array(_array([match("A", BLUE, RED, True), record, match("B", BLUE, RED, False)]))
    assert [m.match_id for m in out.records] == ["A", "B"]
    assert dict(out.skipped) == {reason: 1}


def test_repeated_champion_on_the_fast_path() -> None:
    """Well-typed records with a champion on both teams are skipped without the slow path."""
    out = decode_array(_array([match("A", BLUE, [1, 7, 8, 9, 10], True), match("B", BLUE, RED, True)]))
    assert [m.match_id for m in out.records] == ["B"]
    assert dict(out.skipped) == {records.REPEATED_CHAMPION: 1}


def test_odd_match_ids_still_count_without_deduplication() -> None:
    """A match_id that is not a string or int is dropped (None), the record still counts."""
    out = decode_array(_array([match("A", BLUE, RED, True, match_id=[1]), match(None, BLUE, RED, True)]))
    assert [m.match_id for m in out.records] == [None, None]
    assert not out.skipped


def test_integer_match_ids_are_kept() -> None:
    """Integer ids are valid ids."""
    out = decode_array(_array([match("A", BLUE, RED, True, match_id=123)]))
    assert out.records[0].match_id == 123


@pytest.mark.parametrize("text", [b"", b"[", b'[{"blue_picks": [1,2', b"[1,2,,3]", b"[] x"])
def test_malformed_json_is_an_error(text: bytes) -> None:
    """Invalid JSON (e.g. a collector caught mid-write) raises RecordsError."""
    with pytest.raises(RecordsError, match="not valid JSON"):
        decode_array(text)


def test_top_level_must_be_an_array() -> None:
    """A JSON object at the top level is an error, not zero records."""
    with pytest.raises(RecordsError, match="not a JSON array"):
        decode_array(b'{"matches": []}')


def test_jsonl_lines_and_reasons() -> None:
    """JSONL: good lines count, blank lines are ignored, a broken complete line is a skipped record."""
    text = (
        json.dumps(match("A", BLUE, RED, True))
        + "\n\n{not json\n"
        + json.dumps(match("B", BLUE, [1, 7, 8, 9, 10], True))
        + "\n"
        + json.dumps(match("C", RED, BLUE, False))
        + "\n"
    ).encode()
    out = decode_lines(text, 0)
    assert [m.match_id for m in out.decoded.records] == ["A", "C"]
    assert dict(out.decoded.skipped) == {records.BAD_JSON_LINE: 1, records.REPEATED_CHAMPION: 1}
    assert out.end == len(text)
    assert out.unterminated is False


def test_jsonl_unfinished_last_line_is_left_for_later() -> None:
    """An unterminated last line that does not parse is not consumed and not counted."""
    first = json.dumps(match("A", BLUE, RED, True)) + "\n"
    text = (first + json.dumps(match("B", BLUE, RED, True))[:30]).encode()
    out = decode_lines(text, 0)
    assert [m.match_id for m in out.decoded.records] == ["A"]
    assert out.end == len(first)
    assert not out.decoded.skipped


def test_jsonl_complete_last_line_without_newline_counts() -> None:
    """A last line that parses counts even without a newline; the checkpoint remembers it."""
    text = (json.dumps(match("A", BLUE, RED, True)) + "\n" + json.dumps(match("B", RED, BLUE, True))).encode()
    out = decode_lines(text, 0)
    assert [m.match_id for m in out.decoded.records] == ["A", "B"]
    assert out.end == len(text)
    assert out.unterminated is True


def test_jsonl_resumes_from_an_offset() -> None:
    """Decoding from a checkpoint only sees the lines after it."""
    first = (json.dumps(match("A", BLUE, RED, True)) + "\n").encode()
    text = first + (json.dumps(match("B", BLUE, RED, True)) + "\n").encode()
    out = decode_lines(text, len(first))
    assert [m.match_id for m in out.decoded.records] == ["B"]
