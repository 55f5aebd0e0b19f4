"""Decoding and validating match records; pure (bytes in, records and skip counts out).

The fast path decodes a whole JSON array with a schema-aware msgspec decoder that only builds the four
fields the index needs and skips everything else (``champion_stats`` and friends are most of the bytes).
Only when that typed decode rejects something does the slow path run, element by element, to find out
which records are bad and why.
"""

from __future__ import annotations

import operator
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Final

import msgspec

from stratmancer_jobs.jobs.history.filestat import Buf

# Skip reasons, as counted in the sidecar and the summary.
NOT_OBJECT: Final = "not_object"
BAD_PICKS: Final = "bad_picks"
REPEATED_CHAMPION: Final = "repeated_champion"
BAD_BLUE_WIN: Final = "bad_blue_win"
BAD_JSON_LINE: Final = "bad_json_line"
DUPLICATE: Final = "duplicate_match_id"
INVALID_REASONS: Final = (NOT_OBJECT, BAD_PICKS, REPEATED_CHAMPION, BAD_BLUE_WIN, BAD_JSON_LINE)
ALL_REASONS: Final = (*INVALID_REASONS, DUPLICATE)

Team = tuple[int, int, int, int, int]


class Match(msgspec.Struct, gc=False):
    """The part of a collected match the index needs; unknown fields are skipped, not built."""

    blue_picks: Team
    red_picks: Team
    blue_win: bool
    match_id: str | int | None = None
    # read for the freshness checks only, never validated here: any JSON value is accepted (a record
    # with an odd one still counts), and ``counts`` keeps only an int creation time and a str patch
    game_creation: Any = None
    patch: Any = None


class _Loose(msgspec.Struct, gc=False):
    """Any JSON object, for finding out why a record failed the typed decode."""

    blue_picks: Any = msgspec.UNSET
    red_picks: Any = msgspec.UNSET
    blue_win: Any = msgspec.UNSET
    match_id: Any = None
    game_creation: Any = None
    patch: Any = None


class RecordsError(ValueError):
    """The bytes are not what the file kind promises (not JSON, not an array); the caller names the file."""


@dataclass
class Decoded:
    """Records that passed validation, in file order, and how many were skipped per reason."""

    records: list[Match] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    counted: int = 0  # records already handed on (a streamed file's batches), not in ``records``


_ARRAY: Final = msgspec.json.Decoder(list[Match])
_RAW_ARRAY: Final = msgspec.json.Decoder(list[msgspec.Raw])
_ONE: Final = msgspec.json.Decoder(Match)
_LOOSE: Final = msgspec.json.Decoder(_Loose)
_ANY: Final = msgspec.json.Decoder()


def _is_team(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 5
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    )


VECTOR_MIN: Final = 20_000  # records checked and counted with numpy from this many up (tests lower it)
VECTOR_SMALL: Final = 256  # ... or from this many once numpy is imported (a run that counts large files)
VECTOR_CHUNK: Final = 32_768  # records numpy checks or counts at a time (~25 MB of arrays at most)
_BLUE: Final = operator.attrgetter("blue_picks")
_RED: Final = operator.attrgetter("red_picks")


def vectorise(n: int) -> bool:
    """Whether ``n`` records are worth numpy (here and in ``counts``): from ``VECTOR_MIN`` up, when
    importing it (~0.1 s) pays for itself, or from ``VECTOR_SMALL`` up when it is imported already (a
    full rebuild: its small tier files then take the same path as the large ones, ~5x faster)."""
    return n >= VECTOR_MIN or (n >= VECTOR_SMALL and "numpy" in sys.modules)


def _distinct(match: Match) -> bool:
    return len({*match.blue_picks, *match.red_picks}) == 10


def _all_distinct(matches: list[Match]) -> list[Match]:
    """The matches whose 10 picks are distinct, checked ``VECTOR_CHUNK`` rows at a time (numpy) when the keys
    fit."""
    n = len(matches)
    if not vectorise(n):  # a small append: one set per match beats importing numpy
        return [m for m in matches if _distinct(m)]
    if n > VECTOR_CHUNK:
        parts = [_all_distinct(matches[i : i + VECTOR_CHUNK]) for i in range(0, n, VECTOR_CHUNK)]
        if sum(map(len, parts)) == n:  # none dropped: the list as it was
            return matches
        return [m for part in parts for m in part]
    import numpy as np  # imported on first use: a no-change run does not pay for it

    try:
        blue = np.fromiter(chain.from_iterable(map(_BLUE, matches)), np.int64, 5 * n).reshape(n, 5)
        red = np.fromiter(chain.from_iterable(map(_RED, matches)), np.int64, 5 * n).reshape(n, 5)
    except (OverflowError, ValueError):  # a key beyond 64 bits: one set per match
        return [m for m in matches if _distinct(m)]
    picks = np.concatenate((blue, red), axis=1)
    picks.sort(axis=1)
    ok = (picks[:, 1:] != picks[:, :-1]).all(axis=1)
    if ok.all():
        return matches
    return [m for m, good in zip(matches, ok.tolist(), strict=True) if good]


def classify(raw: bytes | msgspec.Raw) -> Match | str:
    """Decode one record: the Match when it counts, else the skip reason (first failing rule)."""
    try:
        match = _ONE.decode(raw)
    except msgspec.ValidationError:
        pass
    else:
        return match if _distinct(match) else REPEATED_CHAMPION
    try:
        loose = _LOOSE.decode(raw)
    except msgspec.ValidationError:
        return NOT_OBJECT
    if not (_is_team(loose.blue_picks) and _is_team(loose.red_picks)):
        return BAD_PICKS
    if len({*loose.blue_picks, *loose.red_picks}) != 10:
        return REPEATED_CHAMPION
    if not isinstance(loose.blue_win, bool):
        return BAD_BLUE_WIN
    mid = loose.match_id
    if not isinstance(mid, str | int) or isinstance(mid, bool):
        mid = None  # an id of another type cannot be deduplicated; the record still counts
    return Match(
        tuple(loose.blue_picks), tuple(loose.red_picks), loose.blue_win, mid, loose.game_creation, loose.patch
    )


# A JSON string (skipped over whole, so that nothing inside one is touched) or one of the tokens
# Python's ``json.dump`` writes for non-finite floats by default (``allow_nan=True``).
_NONFINITE_OR_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|-?Infinity|NaN', re.DOTALL)


def _null(match: re.Match[bytes]) -> bytes:
    token = match[0]
    return token if token[:1] == b'"' else b"null"


def finite(buf: Buf) -> bytes | None:
    """``buf`` with Python's ``NaN``/``Infinity``/``-Infinity`` tokens read as ``null``; None if it has none.

    Only run after msgspec (strict JSON) rejected the bytes, so the normal path pays nothing. ``null``
    gives every rule the answer ``json.load``'s float would: in an ignored field nothing changes, as
    ``blue_win`` or a pick it is not a bool / int, as ``match_id`` it is not an id, as a record it is
    not an object. Invalid JSON stays invalid (``xNaN`` becomes ``xnull``).
    """
    if buf.find(b"NaN") < 0 and buf.find(b"Infinity") < 0:
        return None
    return _NONFINITE_OR_STRING.sub(_null, bytes(buf))


def decode_array(buf: Buf | memoryview, *, distinct: bool = True) -> Decoded:
    """Decode a whole JSON array of records; RecordsError when it is not valid JSON or not an array.

    ``distinct=False`` leaves the repeated-champion check of the fast path to the caller
    (``keep_distinct``), for records decoded in batches and checked at once.
    """
    try:
        return _decode_array(buf, distinct)
    except RecordsError:
        cleaned = finite(buf.tobytes() if isinstance(buf, memoryview) else buf)
        if cleaned is None:
            raise
        return _decode_array(cleaned, distinct)


def keep_distinct(out: Decoded) -> None:
    """Drop the records whose 10 picks are not distinct, counting them as skipped."""
    valid = _all_distinct(out.records)
    if len(valid) != len(out.records):
        out.skipped[REPEATED_CHAMPION] += len(out.records) - len(valid)
    out.records = valid


def _decode_array(buf: Buf | memoryview, distinct: bool = True) -> Decoded:
    try:
        matches = _ARRAY.decode(buf)
    except msgspec.ValidationError:
        return _decode_array_slow(buf)
    except (msgspec.DecodeError, RecursionError) as exc:  # malformed, or nested too deeply
        raise RecordsError(f"not valid JSON ({exc})") from None
    out = Decoded(matches)
    if distinct:
        keep_distinct(out)
    return out


def _decode_array_slow(buf: Buf | memoryview) -> Decoded:
    try:
        raws = _RAW_ARRAY.decode(buf)
    except msgspec.ValidationError:
        raise RecordsError("the top level is not a JSON array") from None
    except (msgspec.DecodeError, RecursionError) as exc:  # an element nested too deeply
        raise RecordsError(f"not valid JSON ({exc})") from None
    out = Decoded()
    for raw in raws:
        result = classify(raw)
        if isinstance(result, str):
            out.skipped[result] += 1
        else:
            out.records.append(result)
    return out


@dataclass
class LinesResult:
    """Decoded JSONL records from ``start`` up to ``end`` (the offset to resume from next time)."""

    decoded: Decoded
    end: int
    unterminated: bool  # the last consumed line had no newline: the next append must start with one


# Line terminators: ``\n``, ``\r\n`` and a lone ``\r``, as Python's universal newlines read a file.
LINE_ENDS: Final = (b"\n", b"\r")


def split_lines(buf: Buf, start: int) -> tuple[list[bytes], int]:
    """The non-blank complete lines of ``buf[start:]`` and the offset just past their last terminator.

    The one line-splitting rule of both the full and the incremental path, so that a line is the same
    line however the file was read (a checkpoint may fall between ``\r`` and ``\n``: the empty line
    that this makes is blank, hence dropped).
    """
    end = max(buf.rfind(b"\n", start), buf.rfind(b"\r", start), start - 1) + 1
    chunk = buf[start:end]
    if b"\r" in chunk:
        chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return [line for line in chunk.split(b"\n") if line.strip()], end


def _classify_line(line: bytes) -> Match | str:
    """``classify`` for one JSONL line; a line that is not JSON (even read as Python's) is a bad line."""
    try:
        return classify(line)
    except (msgspec.DecodeError, RecursionError):
        pass
    cleaned = finite(line)
    if cleaned is not None:
        try:
            return classify(cleaned)
        except (msgspec.DecodeError, RecursionError):
            pass
    return BAD_JSON_LINE


def _complete(line: bytes) -> bool:
    """Whether ``line`` is one whole JSON value (Python's non-finite tokens allowed)."""
    for candidate in (line, finite(line)):
        if candidate is None:
            break
        try:
            _ANY.decode(candidate)
        except (msgspec.DecodeError, RecursionError):
            continue
        return True
    return False


def decode_lines(buf: Buf, start: int) -> LinesResult:
    """Decode JSONL from ``start``: a bad complete line is skipped, an unfinished last line left for later."""
    lines, end = split_lines(buf, start)
    out = Decoded()
    try:
        matches = [_ONE.decode(line) for line in lines]
    except (msgspec.MsgspecError, RecursionError):
        for line in lines:
            result = _classify_line(line)
            if isinstance(result, str):
                out.skipped[result] += 1
            else:
                out.records.append(result)
    else:
        valid = [m for m in matches if _distinct(m)]
        if len(valid) != len(matches):
            out.skipped[REPEATED_CHAMPION] += len(matches) - len(valid)
        out.records = valid
    unterminated = False
    rest = buf[end:]
    if rest.strip():
        if not _complete(rest):
            # The collector is still writing this line: leave it for the next run.
            return LinesResult(out, end, False)
        result = _classify_line(rest)
        if isinstance(result, str):
            out.skipped[result] += 1
        else:
            out.records.append(result)
        end = len(buf)
        unterminated = True
    elif rest:
        end = len(buf)
    return LinesResult(out, end, unterminated)
