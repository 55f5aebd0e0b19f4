"""Reading a small input file safely: the configuration, meta.json, and any other file a person edits.

Whatever sits at the path, the read ends quickly with the bytes or one clear error: only a regular file
is opened (a FIFO would block every command, ``/dev/zero`` would fill the memory, a device may act on
being opened), never one larger than a limit, always without blocking. JSON and TOML parsed from it are
bounded too: nesting that would exhaust the parser's recursion and a dotted key of thousands of parts
(quadratic in tomllib) are refused with the line they are on.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

from stratmancer_jobs.errors import StratmancerError

MAX_SMALL_BYTES = 1024 * 1024  # 1 MiB: far above any hand-written configuration
MAX_NESTING = 64  # arrays and tables inside one another
MAX_KEY_PARTS = 64  # parts of one dotted TOML key (a.b.c)

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO (named pipe)", "a directory", ...)."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


def _open_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symlink loop"
    if exc.errno == errno.ENAMETOOLONG:
        return "has a name too long for the file system"
    if exc.errno == errno.ENOTDIR:
        return "cannot be read: a part of its path is not a directory"
    return f"cannot be read: {exc.strerror or type(exc).__name__}"


def read_small_file(
    path: Path, *, what: str, error: type[StratmancerError], limit: int = MAX_SMALL_BYTES
) -> bytes | None:
    """The bytes of ``path``, or None when nothing is there (a dangling symlink is an error, not nothing).

    Raises ``error`` with one line, "{what} {path} ...", when the path is not a regular file (a symlink
    to one is followed), is larger than ``limit`` or cannot be read. The file is inspected before it is
    opened, opened without blocking and inspected again through the open descriptor, and at most
    ``limit + 1`` bytes are read, so a file that changes in between is caught too.
    """
    path = Path(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {path} is {file_kind(info.st_mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise error(f"{what} {path} is a symlink to {target!r}, which does not exist") from None
        return None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = _open_problem(path, exc) if isinstance(exc, OSError) else "is not a valid path"
        raise error(f"{what} {path} {reason}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced between the check and the open
            raise error(f"{what} {path} is {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise error(f"{what} {path} is larger than {_size(limit)} ({info.st_size} bytes)")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise error(f"{what} {path} {_open_problem(path, exc)}") from None
    finally:
        os.close(fd)
    if total > limit:
        raise error(f"{what} {path} is larger than {_size(limit)} (it grew while being read)")
    return b"".join(chunks)


_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in ``raw`` (strings skipped), without parsing it."""
    depth = deepest = 0
    for match in _JSON_TOKEN.finditer(raw):
        mark = match.group()
        if mark in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif mark in (b"]", b"}"):
            depth = max(depth - 1, 0)
    return deepest


def loads_json(raw: bytes, *, max_nesting: int = MAX_NESTING) -> Any:
    """``json.loads`` of at most ``max_nesting`` levels; too deep is a ValueError like any bad JSON
    (the parser would raise RecursionError, and writing such a document back would too)."""
    if json_depth(raw) > max_nesting:
        raise ValueError(f"nested more than {max_nesting} levels deep")
    try:
        return json.loads(raw)
    except RecursionError:  # pragma: no cover - bounded above
        raise ValueError("nested too deeply") from None


# TOML scanning: only what is needed to find brackets and dots outside strings and comments
_TOKEN = re.compile(r"\"\"\"|'''|[\"'#\[\]{}.,=\n]")
_STRING_END = {
    '"""': re.compile(r'(?:[^\\"]|\\[\s\S]|"(?!""))*"""(?:""?)?'),
    "'''": re.compile(r"[\s\S]*?'''(?:''?)?"),
    '"': re.compile(r'(?:[^\\"\n]|\\.)*"'),
    "'": re.compile(r"[^'\n]*'"),
}


def toml_shape_problem(
    text: str, *, max_nesting: int = MAX_NESTING, max_parts: int = MAX_KEY_PARTS
) -> str | None:
    """Why ``text`` is too deeply nested or has too long a dotted key for tomllib to be safe, or None.

    A cheap scan before parsing: tomllib recurses once per nested array or inline table (100,000
    levels raise RecursionError) and keeps every prefix of a dotted key (20,000 parts take 1.6 GB).
    Unterminated strings are left to tomllib to report.
    """
    depth = dots = 0
    line = 1
    pos = 0
    while (match := _TOKEN.search(text, pos)) is not None:
        mark = match.group()
        pos = match.end()
        if mark in _STRING_END:
            end = _STRING_END[mark].match(text, pos)
            if end is None:
                return None
            line += text.count("\n", pos, end.end())
            pos = end.end()
        elif mark == "#":
            newline = text.find("\n", pos)
            pos = len(text) if newline < 0 else newline
        elif mark == ".":
            dots += 1
            if dots >= max_parts:
                return f"line {line}: a dotted key of more than {max_parts} parts"
        else:
            dots = 0
            if mark == "\n":
                line += 1
            elif mark in "[{":
                depth += 1
                if depth > max_nesting:
                    return f"line {line}: nested more than {max_nesting} levels deep"
            elif mark in "]}":
                depth = max(depth - 1, 0)
    return None


def loads_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads`` bounded by ``toml_shape_problem``; every problem is a ValueError with a reason
    (a 5000-digit integer too: tomllib raises ValueError for it)."""
    problem = toml_shape_problem(text)
    if problem is not None:
        raise ValueError(problem)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except ValueError:  # only int() of a decimal integer, whose message suggests a Python call
        raise ValueError("an integer with too many digits (more than 4300)") from None
    except RecursionError:  # pragma: no cover - the scan above bounds the nesting
        raise ValueError("nested too deeply") from None
