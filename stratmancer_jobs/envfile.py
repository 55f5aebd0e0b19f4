"""Secrets from a file: ``KEY=value`` lines read the way systemd's ``EnvironmentFile=`` reads them.

cron and systemd start a job with an almost empty environment, so a hook's ``env:NAME`` header or
``RIOT_API_KEY`` must come from somewhere the scheduler does not see: ``config/stratmancer.env`` (or the
file ``env_file`` names). The generated systemd units load the same file with ``EnvironmentFile=-``,
so both read one file with one syntax:

* blank lines and lines starting with ``#`` or ``;`` are comments;
* ``NAME=value``; blanks around the name and the value are dropped, blanks inside a value are kept;
* a value in single quotes is taken verbatim; in double quotes ``\\"``, ``\\\\``, ``\\$`` and ``\\```
  are unescaped; unquoted, a backslash keeps the next character and a backslash at the end of a line
  joins the next line.

Every value is a secret. This module never puts a value (nor the text of a line) in an error message.
The file must not be readable or writable by group or others: ``chmod 600`` it.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from stratmancer_jobs.errors import ConfigError

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_ENV_FILE_BYTES = 1024 * 1024
_BLANKS = " \t\r"


def check_permissions(path: Path, mode: int) -> None:
    """ConfigError naming the file and the fix when group or others may read or write it."""
    if mode & 0o066:
        raise ConfigError(
            f"env file {path} is readable or writable by others (mode {stat.S_IMODE(mode):04o}); "
            f"it holds secrets: run `chmod 600 {path}`"
        )


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of ``path``; ConfigError (exit 2) for a file others may read, or a bad line."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"cannot read env file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"env file {path} is not a regular file")
        check_permissions(path, info.st_mode)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_ENV_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read env file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_ENV_FILE_BYTES:
        raise ConfigError(f"env file {path} is larger than {MAX_ENV_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"env file {path} is not UTF-8") from None
    return parse_env(text, str(path))


def parse_env(text: str, where: str) -> dict[str, str]:
    """``NAME=value`` assignments of an EnvironmentFile text; ``where`` names it in errors."""
    result: dict[str, str] = {}
    pos, line_no = 0, 1
    n = len(text)
    while pos < n:
        # skip leading blanks of a line
        while pos < n and text[pos] in _BLANKS:
            pos += 1
        if pos >= n:
            break
        if text[pos] == "\n":
            pos, line_no = pos + 1, line_no + 1
            continue
        if text[pos] in "#;":
            end = text.find("\n", pos)
            pos, line_no = (n, line_no) if end < 0 else (end + 1, line_no + 1)
            continue
        start_line = line_no
        eq = text.find("=", pos)
        newline = text.find("\n", pos)
        if eq < 0 or (0 <= newline < eq):
            raise ConfigError(f"env file {where} line {start_line}: not a NAME=value line")
        name = text[pos:eq].strip(_BLANKS)
        if not NAME_RE.fullmatch(name):
            raise ConfigError(f"env file {where} line {start_line}: the name is not a valid variable name")
        value, pos, line_no = _value(text, eq + 1, line_no, where, start_line)
        result[name] = value
    return result


def _value(text: str, pos: int, line_no: int, where: str, start_line: int) -> tuple[str, int, int]:
    """One value from ``pos`` (after the ``=``); the value, the position after its line, the line number."""
    n = len(text)
    while pos < n and text[pos] in _BLANKS:
        pos += 1
    out: list[str] = []
    quote: str | None = None
    last_kept = 0  # length of ``out`` up to its last character not to be trimmed
    while pos < n:
        ch = text[pos]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                out.append(ch)
                line_no += ch == "\n"
            last_kept = len(out)
            pos += 1
            continue
        if quote == '"':
            if ch == '"':
                quote = None
            elif ch == "\\" and pos + 1 < n and text[pos + 1] in '"\\$`\n':
                pos += 1
                if text[pos] == "\n":
                    line_no += 1
                else:
                    out.append(text[pos])
            else:
                out.append(ch)
                line_no += ch == "\n"
            last_kept = len(out)
            pos += 1
            continue
        if ch == "\n":
            return "".join(out[:last_kept]), pos + 1, line_no + 1
        if ch in "'\"" and not out:
            quote = ch
            pos += 1
            continue
        if ch == "\\" and pos + 1 < n:
            pos += 1
            if text[pos] == "\n":
                line_no += 1
            else:
                out.append(text[pos])
                last_kept = len(out)
            pos += 1
            continue
        out.append(ch)
        if ch not in _BLANKS:
            last_kept = len(out)
        pos += 1
    if quote is not None:
        raise ConfigError(f"env file {where} line {start_line}: a quote is not closed")
    return "".join(out[:last_kept]), pos, line_no
