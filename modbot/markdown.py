"""Making untrusted text safe to drop into a Reddit comment, and the bot's hidden marker.

Feed text (and manual notices) is shown literally: markdown characters are escaped,
``u/``/``r/`` mentions cannot ping anyone, headings, quotes, tables, spoilers and
superscript cannot break the layout, and nothing can form a link or forge the marker.
Bare URLs stay clickable, because Reddit links them by itself and shows them as they are.
"""

from __future__ import annotations

import re

MARKER_PREFIX = "modbot-"
_MARKER_RE = re.compile(r"^\[\]\(#modbot-([A-Za-z0-9_-]{1,100})\)[ \t]*$", re.MULTILINE)
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


def markers_in(body: str) -> list[str]:
    """The marker ids (``inc-abc123``) found on their own lines in ``body``."""
    return _MARKER_RE.findall(body)


def marker_id(kind: str, ident: str) -> str:
    """The id that ``markers_in`` returns for ``marker(kind, ident)``."""
    return f"{kind}-{_UNSAFE_ID.sub('_', ident)}"


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
