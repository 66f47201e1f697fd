"""The ``.env`` file, read by modbot itself.

python-dotenv (what pydantic-settings would read it with) skips a line it cannot read
with a warning (the setting on it is then silently not set), keeps a UTF-8 byte-order
mark as part of the first name, and ends in a traceback on a UTF-16 file (what Windows
PowerShell's ``>`` writes). Here each of these is one error naming the file and line.

The format is python-dotenv's usual subset: ``NAME=value`` lines, optionally after
``export``; blank lines and ``#`` comments; a value in single quotes is taken as
written, one in double quotes understands ``\\n``, ``\\t``, ``\\"`` and ``\\\\``; an
unquoted value ends before `` #``. ``${NAME}`` and ``${NAME:-default}`` in unquoted and
double-quoted values are replaced by an earlier line's value or the environment's.
A value spans one line.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from modbot.errors import ConfigError

_ASSIGNMENT = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)")
_SINGLE = re.compile(r"'((?:\\.|[^'\\])*)'\s*(?:#.*)?")
_DOUBLE = re.compile(r'"((?:\\.|[^"\\])*)"\s*(?:#.*)?')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)")
_VARIABLE = re.compile(r"\$\{([^}:]*)(?::-([^}]*))?\}")

Lookup = Callable[[str], str | None]


@dataclass(frozen=True)
class EnvLine:
    """One ``NAME=value`` of the file and where it stands."""

    number: int
    name: str
    value: str


def read_env_file(path: Path) -> list[EnvLine]:
    """Every assignment in ``path`` (none when there is no such file), in order."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from exc
    return parse_env(_text(raw, path), path, os.environ)


def parse_env(text: str, path: Path | str, environment: Mapping[str, str]) -> list[EnvLine]:
    """The assignments of ``text``; ``environment`` fills ``${NAME}`` that no earlier
    line set. A line that is not an assignment, a comment or blank is an error."""
    found: list[EnvLine] = []
    known: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assignment = _ASSIGNMENT.fullmatch(stripped)
        if assignment is None:
            raise ConfigError(f"{path}, line {number}: not a NAME=value line")
        name, rest = assignment.groups()
        try:
            value = _value(rest, lambda n: known.get(n, environment.get(n)))
        except ValueError as exc:
            raise ConfigError(f"{path}, line {number}: {name}: {exc}") from exc
        known[name] = value
        found.append(EnvLine(number, name, value))
    return found


def _text(raw: bytes, path: Path) -> str:
    """The file's text; anything but UTF-8 (with or without a byte-order mark) is an error
    rather than names and values read wrong."""
    fix = "save it as UTF-8 (in PowerShell: Set-Content -Encoding utf8)"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\0" in raw:
        raise ConfigError(f"{path}: the file is UTF-16 text, not UTF-8: {fix}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text: {fix}") from exc


def _value(rest: str, lookup: Lookup) -> str:
    if rest.startswith("'"):
        quoted = _SINGLE.fullmatch(rest)
        if quoted is None:
            raise ValueError(_unclosed(rest, "'"))
        return _ESCAPE.sub(lambda m: m.group(1) if m.group(1) in "'\\" else m.group(0), quoted[1])
    if rest.startswith('"'):
        quoted = _DOUBLE.fullmatch(rest)
        if quoted is None:
            raise ValueError(_unclosed(rest, '"'))
        text = _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), quoted[1])
        return _expand(text, lookup)
    return _expand(re.sub(r"\s+#.*", "", rest).rstrip(), lookup)


def _unclosed(rest: str, quote: str) -> str:
    if re.match(rf"{quote}(?:\\.|[^{quote}\\])*{quote}", rest):
        return f"text after the closing {quote} (put a # before a comment)"
    return f"the {quote} is not closed on this line (a value spans one line)"


def _expand(text: str, lookup: Lookup) -> str:
    def variable(found: re.Match[str]) -> str:
        value = lookup(found.group(1))
        return value if value else found.group(2) or ""

    return _VARIABLE.sub(variable, text)
