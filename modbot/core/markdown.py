"""Making untrusted text safe to drop into a Reddit comment, and the bot's hidden marker.

Feed text (and manual notices) is shown literally: markdown characters are escaped,
``u/``/``r/`` mentions cannot ping anyone, headings, quotes, tables, spoilers and
superscript cannot break the layout, and nothing can form a link or forge the marker.
Reddit turns bare URLs, ``www.`` names and e-mail addresses into links by itself, so
those are neutralised too, except bare http(s) URLs on ``hosts`` (the watched page's
own), which stay clickable and are shown as they are.
"""

from __future__ import annotations

import functools
import re

MARKER_PREFIX = "modbot-"
_MARKER_RE = re.compile(r"\[\]\(#modbot-([A-Za-z0-9_-]{1,100})\)")
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")

# Bare URLs end before characters markdown could use to build a link around them, and
# count only where Reddit would link them (not glued to a word: there it would link a
# "/r/..." inside instead).
_URL_RE = re.compile(r"(?<![A-Za-z0-9])https?://[^\s<>\[\]()`\"'\\|*^~]+")
_TRAILING_PUNCTUATION = ".,;:!?"
_SPECIAL = re.compile(r"([\\`*_~^\[\]()|<>#])")
# Every "u/" and "r/" is escaped, whatever comes before it: Reddit's own idea of where a
# mention may start (after "_", after an escape) is wider than any rule worth copying.
_MENTION = re.compile(r"(/?)([ur])/", re.IGNORECASE)
_NUMBERED = re.compile(r"^\d+(?=[.)])")
_SCHEME = re.compile(r"(?<=[A-Za-z0-9])://")  # ftp://, irc://, HTTPS://: all autolinked
_WWW = re.compile(r"(?i)(www)\.")  # Reddit links "www." after any non-letter


# What the bot marks: incidents, notices, early notices, replies to stray posts
# (``records.Kind``'s values).
MARKED_KINDS = frozenset({"inc", "note", "early", "route"})
LEGACY_WATCH = "default"  # its markers keep the first releases' form, so old comments count


def marker_id(kind: str, ident: str, watch: str = LEGACY_WATCH) -> str:
    """The id in a marker: ``inc-abc123`` for the ``default`` watch, ``openai_inc-abc123``
    for a watch named ``openai``: ids can never collide across watches."""
    base = f"{kind}-{_UNSAFE_ID.sub('_', ident)}"
    return base if watch == LEGACY_WATCH else f"{watch}_{base}"


def marker(kind: str, ident: str, watch: str = LEGACY_WATCH) -> str:
    """The hidden marker for one thing the bot posts, e.g. ``[](#modbot-inc-abc123)``."""
    return f"[](#{MARKER_PREFIX}{marker_id(kind, ident, watch)})"


def marker_of(body: str) -> str | None:
    """The marker id (``inc-abc123``) of a body the bot wrote, or ``None``.

    Only the body's last line counts, because that is the only place the bot puts it:
    text above it (a feed field, a moderator's notice) can never claim a comment.
    """
    last = body.rstrip().rpartition("\n")[2]
    found = _MARKER_RE.fullmatch(last.strip())
    return found.group(1) if found else None


def parse_marker(found: str) -> tuple[str, str, str] | None:
    """``("default", "inc", "abc123")`` for ``inc-abc123``; ``("openai", "note", "x")`` for
    ``openai_note-x``; ``None`` if it is not one of ours."""
    watch, _, rest = found.partition("_") if "_" in found else (LEGACY_WATCH, "", found)
    kind, _, ident = rest.partition("-")
    if kind in MARKED_KINDS and ident and watch:
        return watch, kind, ident
    return None


def _escape_plain(text: str) -> str:
    text = text.replace("&", "&amp;")
    text = _SPECIAL.sub(r"\\\1", text)
    text = _MENTION.sub(lambda m: f"{m.group(1)}{m.group(2)}\\/", text)
    text = _SCHEME.sub(r"\\://", text)
    text = _WWW.sub(r"\1\\.", text)
    return text.replace("@", "&#64;")


def _escape_url(url: str, hosts: frozenset[str]) -> tuple[str, str]:
    """A bare URL: kept clickable on an allowed host, else shown as plain text."""
    trailing = ""
    while url and url[-1] in _TRAILING_PUNCTUATION:
        trailing = url[-1] + trailing
        url = url[:-1]
    if host_of(url) not in hosts:
        # Escaped with its trailing punctuation, not apart from it: "http://www." split
        # before its dot would leave a bare "www." for Reddit to link.
        return _escape_plain(url + trailing), ""
    # A link to a profile is fine to show; written as /user/ it cannot notify anyone.
    return re.sub(r"/u/", "/user/", url, flags=re.IGNORECASE), trailing


_HOST_URL = re.compile(
    r"(?i)^https?://([a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::\d{1,5})?(?:[/?#]|$)"
)


def host_of(url: str) -> str | None:
    """The lower-case host of a well-formed http(s) URL, or ``None``."""
    found = _HOST_URL.match(url)
    return found.group(1).lower() if found else None


_CLEAN_URL = re.compile(r"(?i)https?://[a-z0-9.-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~%/=&?+-]*)?")


def clean_url(url: str | None, hosts: frozenset[str]) -> str | None:
    """``url`` if it is a plain http(s) URL on one of ``hosts``, else ``None``: the only
    URLs from a feed that a comment shows as links."""
    if not url or not _CLEAN_URL.fullmatch(url.strip()):
        return None
    url = url.strip()
    return url if host_of(url) in hosts else None


def _escape_line_start(line: str) -> str:
    # List items, rules and setext headings are only markdown at the start of a line.
    numbered = _NUMBERED.match(line)
    if numbered:
        return line[: numbered.end()] + "\\" + line[numbered.end() :]
    if line[:1] in ("-", "+", "="):
        return "\\" + line
    return line


# Control characters mean nothing in a comment, and PostgreSQL's text cannot even hold
# NUL (the PostgreSQL store keeps it as U+FFFD): shown as U+FFFD whatever the store. So
# are a lone surrogate (JSON may write "\ud800"; UTF-8, and so Reddit, cannot carry
# it), the C1 controls, the line and paragraph separators, and the marks that override
# the direction of text: "Fixed\u202e dexif ton" reads "Fixed not fixed", and a status
# "resolved\u202e" would look resolved while the incident is open.
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


_SURROGATE = re.compile("[\ud800-\udfff]")


def sound(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD. JSON may write one ("\ud800"),
    and so may a terminal's bytes that are not UTF-8 (Python keeps them as surrogates);
    UTF-8, and so Reddit, SQLite and PostgreSQL, cannot carry it, and a hash of a body
    holding one fails. ASCII costs one check."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def escape_line(line: str, hosts: frozenset[str] = frozenset()) -> str:
    """Escape one line of untrusted text (see the module docstring)."""
    line = _CONTROL.sub("\ufffd", line).strip()
    out: list[str] = []
    position = 0
    for match in _URL_RE.finditer(line):
        out.append(_escape_plain(line[position : match.start()]))
        url, trailing = _escape_url(match.group(), hosts)
        out.append(url + _escape_plain(trailing))
        position = match.end()
    out.append(_escape_plain(line[position:]))
    return _escape_line_start("".join(out))


@functools.lru_cache(maxsize=4096)
def escape_field(value: str, hosts: frozenset[str] = frozenset()) -> str:
    """Escape a one-line field (a name, a status): any line breaks in it become spaces,
    so it can never start a paragraph, a list or a heading of its own."""
    return escape_line(" ".join(value.split()), hosts)


# A changed incident is rendered whole, but most of its texts are the same as last time:
# remembering the newest few thousand escapes makes a changed poll cost its changes.
@functools.lru_cache(maxsize=2048)
def escape_text(text: str, hosts: frozenset[str] = frozenset()) -> str:
    """Escape multi-line untrusted text, keeping its paragraphs and line breaks."""
    # Reddit breaks lines at a lone CR too: split there, or a "\r===" would be a heading.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = re.split(r"\n\s*\n", text.strip())
    rendered = []
    for paragraph in paragraphs:
        lines = [escape_line(line, hosts) for line in paragraph.split("\n") if line.strip()]
        if lines:
            rendered.append("  \n".join(lines))
    return "\n\n".join(rendered)


# A link (only links on allowed hosts are left unescaped) running to the end of a cut.
_OPEN_LINK = re.compile(r"(?i)https?://\S*$")


def shorten(text: str, limit: int) -> str:
    """Cut escaped text to at most ``limit`` characters without splitting an escape or
    a link (one cut inside its host would lead to another host)."""
    if len(text) <= limit:
        return text
    cut = _OPEN_LINK.sub("", text[: max(limit - 1, 0)])
    cut = re.sub(r"&[a-z]*$", "", cut)  # a half entity
    stripped = cut.rstrip("\\")
    if (len(cut) - len(stripped)) % 2:  # an odd run of backslashes escapes the ellipsis
        cut = cut[:-1]
    return cut.rstrip() + "…"
