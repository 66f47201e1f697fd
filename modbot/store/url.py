"""What ``MODBOT_DATABASE`` names: a SQLite file (the default) or a PostgreSQL server.

A file path, a ``sqlite:///path`` URL, or a ``postgresql://user:password@host:port/dbname``
URL. A URL's password never reaches a message: ``DatabaseURL`` prints without it. The
settings read this at every start-up, so it loads no database library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
SQLITE_PREFIX = "sqlite:///"
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
HIDDEN = "***"
LIBPQ_KEYWORDS = re.compile(
    r"^\s*(host|hostaddr|port|dbname|user|password|passfile|service|sslmode|"
    r"connect_timeout|application_name|options)\s*=",
    re.IGNORECASE,
)
EXPECTED = (
    "MODBOT_DATABASE must be a file path, a sqlite:///path URL or a "
    "postgresql://user:password@host:port/dbname URL"
)


def is_postgres_url(text: str) -> bool:
    """True for ``postgresql://...`` and ``postgres://...`` (any case)."""
    scheme, sep, _ = text.strip().partition("://")
    return bool(sep) and scheme.lower() in POSTGRES_SCHEMES


def url_secrets(url: str) -> list[str]:
    """Every password a URL carries (as written and percent-decoded), longest first:
    the user part as libpq reads it (up to the first ``@``) and as ``urllib`` reads it
    (up to the last), and ``password`` parameters of the query."""
    found: list[str] = []
    rest = url.partition("://")[2]
    ends = [i for i in (rest.find("@"), rest.find("/")) if i >= 0]
    if ends and rest[min(ends)] == "@":
        found.append(rest[: min(ends)].partition(":")[2])
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        parts, pairs = None, []
    if parts is not None:
        userinfo, at, _ = parts.netloc.rpartition("@")
        if at:
            found.append(userinfo.partition(":")[2])
    found += [value for name, value in pairs if name.lower() in SECRET_PARAMETERS]
    found += [unquote(secret) for secret in found]
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` on one line, with every password of ``url`` replaced by ``***``."""
    clean = " ".join(text.split())
    for secret in url_secrets(url):
        clean = clean.replace(secret, HIDDEN)
    return clean


def redact_url(url: str) -> str:
    """The URL without its passwords, fit to print."""
    return scrub(url, url)


@dataclass(frozen=True, repr=False)
class DatabaseURL:
    """A PostgreSQL server's URL. It prints without its password, so that every place
    that shows ``settings.database`` (logs, ``modbot status``, errors) stays safe; and it
    always "exists": whether the server answers is for the store to find out."""

    url: str

    def __post_init__(self) -> None:
        if not is_postgres_url(self.url):
            raise ValueError(f"{EXPECTED}; {redact_url(self.url)} is not one")
        head = self.url.partition("://")[2].partition("?")[0]
        user, at, _ = head.partition("@")
        if head.count("@") > 1 or (at and "/" in user):
            raise ValueError(
                f"{EXPECTED}; percent-encode any @, / or : in the user name or password "
                "(@ is %40, / is %2F, : is %3A)"
            )
        try:
            urlsplit(self.url)
        except ValueError as exc:
            # Not chained: the cause's words are in the message already.
            raise ValueError(f"{EXPECTED}; this one cannot be read ({exc})") from None

    def __str__(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"DatabaseURL({str(self)!r})"

    def exists(self) -> bool:
        """A server is always there to try: connecting tells whether it answers."""
        return True


def database_location(value: str | Path) -> Path | DatabaseURL:
    """What ``MODBOT_DATABASE`` names: a SQLite file's path or a PostgreSQL server.

    ``sqlite:///state.sqlite3`` is the relative path ``state.sqlite3`` and
    ``sqlite:////var/lib/modbot/state.sqlite3`` an absolute one (SQLAlchemy's
    convention). Raises ``ValueError`` (naming no password) for any other URL.
    """
    if isinstance(value, Path):
        return value
    text = value.strip()
    if is_postgres_url(text):
        return DatabaseURL(text)
    if LIBPQ_KEYWORDS.match(text):
        # Not a file name: a libpq "host=... password=..." string, which must never be
        # taken for a path (and printed, password and all).
        raise ValueError(
            f"{EXPECTED}; a keyword string such as host=... dbname=... is not one: "
            "write it as a URL"
        )
    if text.lower().startswith(SQLITE_PREFIX):
        path = text[len(SQLITE_PREFIX) :]
        if not path or path == ":memory:":
            raise ValueError(f"{EXPECTED}; sqlite:/// needs a file path after it")
        return Path(path)
    scheme, sep, _ = text.partition("://")
    if sep and scheme.isidentifier():
        raise ValueError(f"{EXPECTED}, not a {scheme}:// URL")
    return Path(value)
