"""What ``MODBOT_DATABASE`` names: a SQLite file (the default) or a PostgreSQL server.

It is a file path, a ``sqlite:///path`` URL, or a
``postgresql://user:password@host:port/dbname`` URL. A URL's password never reaches a
message: ``DatabaseURL`` prints without it. Parsing loads neither sqlite3 nor psycopg.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
SQLITE_PREFIX = "sqlite:///"
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
HIDDEN = "***"
# Shorter passwords are hidden in free text only where they stand as a word of their own.
MIN_FREE_SECRET = 4
_URL_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://\S+)")
LIBPQ_KEYWORDS = re.compile(
    r"^\s*(host|hostaddr|port|dbname|user|password|passfile|service|sslmode|"
    r"connect_timeout|application_name|options)\s*=",
    re.IGNORECASE,
)
EXPECTED = (
    "give a file path, a sqlite:///path URL or a postgresql://user:password@host:port/dbname URL"
)


def is_postgres_url(text: str) -> bool:
    """True for ``postgresql://...`` and ``postgres://...`` (any case)."""
    scheme, sep, _ = text.strip().partition("://")
    return bool(sep) and scheme.lower() in POSTGRES_SCHEMES


def url_secrets(url: str) -> list[str]:
    """Every password a URL carries (as written and percent-decoded), longest first:
    the user info's password and the ``password`` parameters of the query."""
    _, sep, rest = url.partition("://")
    if not sep:
        return []
    userinfo, remainder = _split_userinfo(rest)
    found = [(userinfo or "").partition(":")[2]]
    query = remainder.partition("?")[2]
    found += [value for name, value in _parameters(query) if name.lower() in SECRET_PARAMETERS]
    found += [unquote(secret) for secret in found]
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def redact_url(url: str) -> str:
    """The URL rebuilt without its passwords, fit to print: the user info's password and
    every ``password`` parameter become ``***``; the scheme, the user name, the host and
    everything else stay as written (a password equal to the user name hides no user)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, remainder = _split_userinfo(rest)
    shown = "" if userinfo is None else f"{_without_password(userinfo)}@"
    path, mark, query = remainder.partition("?")
    if mark:
        query = "&".join(_hide_parameter(piece) for piece in query.split("&"))
    return f"{scheme}{sep}{shown}{path}{mark}{query}"


def scrub(text: str, url: str) -> str:
    """``text`` (an error from the database driver) on one line, without the passwords of
    ``url``: each URL in it is rebuilt by ``redact_url``; elsewhere a password is replaced
    wherever it stands when it has four characters or more, and only as a word of its own
    when shorter (a password ``p`` must not turn ``postgresql`` into ``***ostgresql``).
    Outside URLs a word equal to the password is hidden whatever it names."""
    secrets = url_secrets(url)
    pieces = _URL_IN_TEXT.split(" ".join(text.split()))  # every odd piece is a URL
    return "".join(
        _hide_in_url(piece, secrets) if number % 2 else _hide(piece, secrets)
        for number, piece in enumerate(pieces)
    )


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """``user:password`` and the rest of a URL after its ``scheme://``. Where the user info
    ends is read the widest way: libpq's (up to the first ``@``, unless a ``/`` comes
    first) or the last ``@`` before the query, so that a password holding ``?``, ``/`` or
    ``@`` is hidden whole however a library would read it."""
    at = rest.find("@")
    slash = rest.find("/")
    libpq = at if at >= 0 and (slash < 0 or at < slash) else -1
    last = re.split(r"[?#]", rest, maxsplit=1)[0].rfind("@")
    end = max(libpq, last)
    if end < 0:
        return None, rest
    return rest[:end], rest[end + 1 :]


def _without_password(userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{HIDDEN}" if colon else user


def _parameters(query: str) -> list[tuple[str, str]]:
    """The query's ``name=value`` pairs, one per ``&`` piece, names percent-decoded."""
    return [
        (unquote(name), value) for name, _, value in (p.partition("=") for p in query.split("&"))
    ]


def _hide_parameter(piece: str) -> str:
    name = piece.partition("=")[0]
    return f"{name}={HIDDEN}" if unquote(name).lower() in SECRET_PARAMETERS else piece


def _hide_in_url(url: str, secrets: list[str]) -> str:
    """A URL in an error's text: rebuilt without its password, and any password found
    after its user info (say, repeated in a parameter) hidden too; the user name stays."""
    scheme, sep, rest = redact_url(url).partition("://")
    userinfo, remainder = _split_userinfo(rest)
    head = f"{scheme}{sep}" if userinfo is None else f"{scheme}{sep}{userinfo}@"
    return head + _hide(remainder, secrets)


def _hide(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if len(secret) >= MIN_FREE_SECRET:
            text = text.replace(secret, HIDDEN)
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", HIDDEN, text)
    return text


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
        # A space would also cut the URL short wherever an error quotes it, leaving part
        # of the password outside what ``scrub`` recognises as the URL.
        if head.count("@") > 1 or (at and "/" in user) or any(c.isspace() for c in self.url):
            raise ValueError(
                f"{EXPECTED}; percent-encode any space, @, / or : in the user name or "
                "password (a space is %20, @ is %40, / is %2F, : is %3A)"
            )
        try:
            urlsplit(self.url)
        except ValueError:
            # Neither its text nor ``from exc``: urllib's message can quote the URL's
            # host part, password and all.
            raise ValueError(f"{EXPECTED}; this one cannot be read") from None

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


def existing_folder(path: Path) -> Path:
    """A SQLite file's path whose folder exists. A mistyped folder is an error rather than
    a new folder with a new, empty state file in it: the bot would take that for a first
    start and forget what it already posted."""
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"the folder {folder} {what}: create it, or correct the path")
    return path
