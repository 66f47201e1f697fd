"""Logging set-up: readable lines or JSON lines on stderr, with secrets redacted.

asyncprawcore logs request bodies (the login form with the password) at DEBUG and
tracebacks can carry tokens, so a filter on the handler scrubs every record: the
configured secret values, and anything shaped like a bearer token, an access or
refresh token, a password or client secret field.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

REDACTED = "***"
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)((?:access_token|refresh_token|password|client_secret|passwd)['\"]?\s*[:=,]\s*"
        r"(?:\(\s*)?['\"]?)[^'\"\s,)}&]+"
    ),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer)\s+)[A-Za-z0-9._~+/=-]+"),
)
NOISY_LOGGERS = ("asyncprawcore", "asyncpraw", "httpx", "httpcore", "aiohttp")


class RedactingFilter(logging.Filter):
    """Replaces secrets in a record's final message and traceback text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every known secret and token-shaped value replaced."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Freeze the message with secrets removed (args are formatted first)."""
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            data["traceback"] = record.exc_text
        import json  # noqa: PLC0415 - only the JSON log format

        return json.dumps(data, ensure_ascii=False)


def setup(
    level: str = "INFO",
    fmt: str = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> RedactingFilter:
    """Configure the root logger; returns the redaction filter so secrets can be added."""
    handler = logging.StreamHandler(stream or sys.stderr)
    redactor = RedactingFilter(secrets)
    handler.addFilter(redactor)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Library loggers say little that helps a moderator below WARNING, unless debugging.
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")
    return redactor
