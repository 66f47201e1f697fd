"""The values the settings and the watches file share, each checked one way for both.

A ``MODBOT_`` setting and the ``[[watch]]`` key of the same name take the same value, so
they share one annotated type here (``Subreddit``, ``Timezone``, ...), and a pydantic
error of either becomes the same short text (``problem``): "must be a number", never the
input value, which may be a secret given to the wrong setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Strict
from pydantic_core import ErrorDetails

from modbot import default_templates_dir

SourceKind = Literal["auto", "statuspage", "incidentio", "atom", "gcloud", "betterstack", "datadog"]
KINDS: tuple[str, ...] = get_args(SourceKind)
REQUIRED_TEMPLATES = ("incident.md.j2", "manual.md.j2")
# A status page and Reddit are asked at most once a second, except by the tests
# (``MODBOT_TEST_FAST``), which run the bot many times faster against local fakes.
MIN_INTERVAL = 1.0
FAST_MIN_INTERVAL = 0.01
# Readers' posts are read at most every 10 s: two listings a read, within the budget.
MIN_REPORTS_INTERVAL = 10.0
ReportsMode = Literal["notice", "count", "off"]
ReportsAction = Literal["reply", "remove", "off"]

_BASE_URL = re.compile(r"(?i)(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(:\d{1,5})?(/[^\s]*)?")
_API_PATH = re.compile(r"(?i)/(api/v\d+|history\.(atom|rss)|incidents(\.json)?)(/.*)?$")
# Reddit's own rule for a subreddit's name, plus the two-letter language subreddits
# (r/de, r/nl) that predate it.
_SUBREDDIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{2,20}|[A-Za-z]{2}")


def http_url(value: str) -> str:
    """A plain http(s) URL with a real host name (no spaces, no brackets), no trailing /."""
    text = value.strip()
    if not _BASE_URL.fullmatch(text):
        raise ValueError("must be an http:// or https:// URL")
    return text.rstrip("/")


def status_url(value: str) -> str:
    """A status page's or feed's URL (``http_url``, its message with an example)."""
    try:
        return http_url(value)
    except ValueError as exc:
        raise ValueError("must be an http(s) URL such as https://status.claude.com") from exc


def page_url(url: str) -> str:
    """A status page's base URL; a pasted API or feed URL is refused with the fix."""
    path = urlsplit(url).path
    api = _API_PATH.search(path)
    if api:
        base = url[: len(url) - len(path)] + path[: api.start()]
        raise ValueError(
            f"give the page's base URL, not its API or feed URL: use {base} "
            f"(modbot adds {api.group(0)} by itself)"
        )
    return url


def timezone_name(value: str | None) -> str | None:
    """An IANA zone name, or ``None`` for an empty value."""
    if value is None or not value.strip():
        return None
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not a known IANA time zone name such as America/Los_Angeles") from exc
    return value.strip()


def title_pattern(value: str) -> str:
    """A megathread title: case-insensitive text or regular expression."""
    try:
        re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc.msg})") from exc
    return value


def templates_folder(value: Path | None) -> Path | None:
    """A folder with every template modbot needs (``None``: the shipped ones)."""
    folder = value if value is not None else default_templates_dir()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a readable folder")
    missing = [name for name in REQUIRED_TEMPLATES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder} lacks {', '.join(missing)}")
    return value


def subreddit_name(value: str | None) -> str | None:
    """A subreddit's name, ``r/`` and slashes taken off (``None`` for an empty value)."""
    if value is None:
        return None
    name = value.strip().strip("/")
    if name[:2].lower() == "r/":
        name = name[2:]
    if not name:
        return None
    if not _SUBREDDIT.fullmatch(name):
        raise ValueError(
            "not a subreddit name: 3 to 21 letters, digits or _, not starting with _ "
            "(as in reddit.com/r/NAME)"
        )
    return name


def component_names(value: tuple[str, ...]) -> tuple[str, ...]:
    """Component names without surrounding blanks; blank ones dropped."""
    return tuple(name.strip() for name in value if name.strip())


def interval_floor(fast: bool) -> float:
    """The shortest poll, inbox or lease interval allowed."""
    return FAST_MIN_INTERVAL if fast else MIN_INTERVAL


def reports_interval_floor(fast: bool) -> float:
    """The shortest reports interval allowed (``MODBOT_TEST_FAST`` lifts it as for polls)."""
    return FAST_MIN_INTERVAL if fast else MIN_REPORTS_INTERVAL


def removal_reason(value: str) -> str:
    """The note a removed stray post gets: one line, at most 100 characters (Reddit's
    limit for a removal reason's mod note)."""
    text = value.strip()
    if "\n" in text or "\r" in text or len(text) > 100:
        raise ValueError("one line of at most 100 characters")
    return text


HttpURL = Annotated[str, AfterValidator(http_url)]
StatusURL = Annotated[str, AfterValidator(status_url)]
Subreddit = Annotated[str | None, AfterValidator(subreddit_name)]
Timezone = Annotated[str | None, AfterValidator(timezone_name)]
TitlePattern = Annotated[str, AfterValidator(title_pattern)]
RemovalReason = Annotated[str, AfterValidator(removal_reason)]
# A path is text in the watches file, which is otherwise read strictly.
TemplatesFolder = Annotated[Path | None, Strict(False), AfterValidator(templates_folder)]


def problem(error: ErrorDetails, *, show_input: bool = False) -> str:
    """One pydantic error as a short text, without the input value unless ``show_input``
    (the watches file holds no secrets; the settings may)."""
    kind = error["type"]
    context: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "literal_error":
        expected = str(context.get("expected", "")).replace("'", "")
        if show_input:
            return f"{error['input']!r} is not one of {expected.replace(' or ', ', ')}"
        return f"must be one of {expected}"
    if kind in _BOUNDS:
        return _BOUNDS[kind].format(*context.values())
    if kind in _PROBLEMS:
        return _PROBLEMS[kind]
    return str(error["msg"]).removeprefix("Value error, ")


_PROBLEMS = {
    "missing": "required",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "list_type": "must be a list",
    "model_type": "must be a table",
}
_BOUNDS = {
    "greater_than": "must be greater than {:g}",
    "greater_than_equal": "must be at least {:g}",
    "less_than": "must be less than {:g}",
    "less_than_equal": "must be at most {:g}",
    "string_too_long": "must be at most {:g} characters",
}
