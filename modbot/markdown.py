"""Making untrusted text safe to drop into a Reddit comment, and the bot's hidden marker.

Feed text (and manual notices) is shown literally: markdown characters are escaped,
``u/``/``r/`` mentions cannot ping anyone, headings, quotes, tables, spoilers and
superscript cannot break the layout, and nothing can form a link or forge the marker.
Bare URLs stay clickable, because Reddit links them by itself and shows them as they are.
"""

from __future__ import annotations

import re

MARKER_PREFIX = "modbot-"
_MARKER_RE = re.compile(r"\[\]\(#modbot-([A-Za-z0-9_-]{1,100})\)")
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")

# Bare URLs end before characters markdown could use to build a link around them.
_URL_RE = re.compile(r"https?://[^\s<>\[\]()`\"'\\|*^~]+")
_TRAILING_PUNCTUATION = ".,;:!?"
_SPECIAL = re.compile(r"([\\`*_~^\[\]()|<>#])")
_MENTION = re.compile(r"(?<![A-Za-z0-9_])(/?)([ur])/(?=[A-Za-z0-9_-])", re.IGNORECASE)
_NUMBERED = re.compile(r"^\d+(?=[.)])")


def marker(kind: str, ident: str) -> str:
    """The hidden marker for one thing the bot posts, e.g. ``[](#modbot-inc-abc123)``."""
    return f"[](#{MARKER_PREFIX}{kind}-{_UNSAFE_ID.sub('_', ident)})"


def marker_of(body: str) -> str | None:
    """The marker id (``inc-abc123``) of a body the bot wrote, or ``None``.

    Only the body's last line counts, because that is the only place the bot puts it:
    text above it (a feed field, a moderator's notice) can never claim a comment.
    """
    last = body.rstrip().rpartition("\n")[2]
    found = _MARKER_RE.fullmatch(last.strip())
    return found.group(1) if found else None


def marker_id(kind: str, ident: str) -> str:
    """The id that ``marker_of`` returns for ``marker(kind, ident)``."""
    return f"{kind}-{_UNSAFE_ID.sub('_', ident)}"


def parse_marker(found: str) -> tuple[str, str] | None:
    """``("inc", "abc123")`` for the marker id ``inc-abc123``; ``None`` if not ours."""
    kind, _, ident = found.partition("-")
    return (kind, ident) if kind in ("inc", "note") and ident else None


def _escape_plain(text: str) -> str:
    text = text.replace("&", "&amp;")
    text = _SPECIAL.sub(r"\\\1", text)
    return _MENTION.sub(lambda m: f"{m.group(1)}{m.group(2)}\\/", text)


def _escape_url(url: str) -> tuple[str, str]:
    trailing = ""
    while url and url[-1] in _TRAILING_PUNCTUATION:
        trailing = url[-1] + trailing
        url = url[:-1]
    # A link to a profile is fine to show; written as /user/ it cannot notify anyone.
    return re.sub(r"/u/", "/user/", url, flags=re.IGNORECASE), trailing


def _escape_line_start(line: str) -> str:
    # List items, rules and setext headings are only markdown at the start of a line.
    numbered = _NUMBERED.match(line)
    if numbered:
        return line[: numbered.end()] + "\\" + line[numbered.end() :]
    if line[:1] in ("-", "+", "="):
        return "\\" + line
    return line


def escape_line(line: str) -> str:
    """Escape one line of untrusted text (see the module docstring)."""
    line = line.strip()
    out: list[str] = []
    position = 0
    for match in _URL_RE.finditer(line):
        out.append(_escape_plain(line[position : match.start()]))
        url, trailing = _escape_url(match.group())
        out.append(url + _escape_plain(trailing))
        position = match.end()
    out.append(_escape_plain(line[position:]))
    return _escape_line_start("".join(out))


def escape_text(text: str) -> str:
    """Escape multi-line untrusted text, keeping its paragraphs and line breaks."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    rendered = []
    for paragraph in paragraphs:
        lines = [escape_line(line) for line in paragraph.split("\n") if line.strip()]
        if lines:
            rendered.append("  \n".join(lines))
    return "\n\n".join(rendered)


def shorten(text: str, limit: int) -> str:
    """Cut escaped text to at most ``limit`` characters without splitting an escape."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    cut = re.sub(r"&[a-z]*$", "", cut)  # a half entity
    stripped = cut.rstrip("\\")
    if (len(cut) - len(stripped)) % 2:  # an odd run of backslashes escapes the ellipsis
        cut = cut[:-1]
    return cut.rstrip() + "…"
