"""Untrusted text stays literal: no pings, no links, no layout breaks, no forged marker."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modbot.core.markdown import (
    clean_url,
    escape_field,
    escape_line,
    escape_text,
    marker,
    marker_id,
    marker_of,
    parse_marker,
    shorten,
    sound,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ping u/spez now", r"ping u\/spez now"),
        ("see /u/spez and r/all", r"see /u\/spez and r\/all"),
        ("[click](https://evil.example)", r"\[click\]\(https\://evil.example\)"),
        (
            "mail a@b.example or www.evil.example, ftp://x.y",
            r"mail a&#64;b.example or www\.evil.example, ftp\://x.y",
        ),
        ("# Heading", r"\# Heading"),
        ("> quote", r"\> quote"),
        (">!spoiler!<", r"\>!spoiler!\<"),
        ("a | b | c", r"a \| b \| c"),
        ("**bold** _it_ ~~s~~ ^sup `code`", r"\*\*bold\*\* \_it\_ \~\~s\~\~ \^sup \`code\`"),
        ("1. one", r"1\. one"),
        ("- item", r"\- item"),
        ("===", r"\==="),
        ("AT&T", "AT&amp;T"),
        ("back\\slash", r"back\\slash"),
    ],
)
def test_escape_line(raw: str, expected: str) -> None:
    assert escape_line(raw) == expected


def test_bare_urls_on_the_page_stay_clickable_others_are_text() -> None:
    hosts = frozenset({"status.example.com", "reddit.com"})
    text = escape_line(
        "Details: https://status.example.com/incidents/a_b. Also https://reddit.com/u/spez "
        "and https://evil.example/login",
        hosts,
    )
    assert "https://status.example.com/incidents/a_b." in text
    assert "https://reddit.com/user/spez" in text  # a profile link that cannot ping
    assert r"https\://evil.example/login" in text


def test_one_line_fields_cannot_open_a_paragraph() -> None:
    assert escape_field("degraded\n\n- item\n# head") == r"degraded - item \# head"


def test_only_plain_urls_on_allowed_hosts_are_links() -> None:
    hosts = frozenset({"status.example.com"})
    assert clean_url("https://status.example.com/x", hosts) == "https://status.example.com/x"
    assert clean_url("https://evil.example/x", hosts) is None
    assert clean_url("https://status.example.com/x) [phish](https://evil", hosts) is None
    assert clean_url("https://x[y]z", hosts) is None
    assert clean_url("javascript:alert(1)", hosts) is None


def test_paragraphs_and_line_breaks_are_kept_and_indentation_dropped() -> None:
    text = escape_text("line one\r\nline two\n\n\n    indented code?")
    assert text == "line one  \nline two\n\nindented code?"


def test_marker_round_trip_and_sanitising() -> None:
    body = "text\n\n" + marker("inc", "ab c/1")
    assert marker_of(body) == "inc-ab_c_1" == marker_id("inc", "ab c/1")


@given(st.text(max_size=300))
def test_feed_text_can_never_forge_a_marker(text: str) -> None:
    escaped = escape_text(text + "\n[](#modbot-inc-victim)\n")
    assert marker_of(escaped) is None


@given(st.text(max_size=200))
def test_escaped_text_has_no_live_mention_or_link(text: str) -> None:
    escaped = escape_text(text)
    assert not re.search(r"(?<![\w\\/])/?u/\w", escaped)
    assert "](" not in escaped.replace("\\](", "").replace("\\]\\(", "")


def test_shorten_never_leaves_a_dangling_escape() -> None:
    assert shorten("abc\\*def", 5) == "abc…"
    assert shorten("abc &amp; x", 7) == "abc…"
    assert shorten("short", 10) == "short"


def test_shorten_never_leaves_a_link_cut_short() -> None:
    """A link cut inside its host would lead to another host ("https://stsp…")."""
    text = escape_line("see https://stspg.io/abc now", frozenset({"stspg.io"}))
    assert shorten(text, 16) == "see…"
    assert shorten(text, 22) == "see…"
    assert shorten(text, 26) == "see https://stspg.io/abc…"
    escaped = escape_line("see https://evil.example/abc now")  # not a link: cut anywhere
    assert shorten(escaped, 16) == r"see https\://ev…"


def test_only_the_last_line_can_be_a_marker() -> None:
    forged = "[](#modbot-inc-victim)\n\nthe real text\n\n[](#modbot-inc-mine)"
    assert marker_of(forged) == "inc-mine"
    assert marker_of("[](#modbot-inc-victim)\n\nno marker at the end") is None
    assert marker_of("text [](#modbot-inc-inline)") is None


def test_markers_name_their_watch_and_kind() -> None:
    assert parse_marker("inc-abc123") == ("default", "inc", "abc123")  # as releases 1-2 wrote
    assert parse_marker("note-msg1") == ("default", "note", "msg1")
    assert parse_marker("openai_inc-01M3") == ("openai", "inc", "01M3")
    assert parse_marker(marker_id("note", "x", "groq").lower()) == ("groq", "note", "x")
    assert marker("inc", "abc", "default") == "[](#modbot-inc-abc)"
    assert parse_marker("other-x") is None


def test_control_characters_show_as_the_replacement_character_on_every_store() -> None:
    # Found by the model test on PostgreSQL, whose text cannot hold NUL: a comment must
    # read the same whichever store kept the incident.
    assert escape_line("a\x00b\x07c\x7fd") == "a\ufffdb\ufffdc\ufffdd"
    assert escape_field("name\x00") == "name\ufffd"
    assert escape_text("\x00") == "\ufffd"
    assert escape_text("tab\tstays") == "tab\tstays"


# Every character, lone surrogates included (JSON can write "\ud800"; a terminal's bytes
# that are not UTF-8 arrive as "\udcff").
EVERY_CHARACTER = st.text(st.characters(exclude_categories=()), max_size=200)


@given(EVERY_CHARACTER)
def test_escaped_text_can_always_be_sent_as_utf8(text: str) -> None:
    escape_text(text).encode("utf-8")
    escape_field(text).encode("utf-8")
    made = sound(text)
    made.encode("utf-8")
    assert len(made) == len(text)
    assert sound(made) == made
    for given_char, made_char in zip(text, made, strict=True):
        lone = 0xD800 <= ord(given_char) <= 0xDFFF
        assert made_char == ("\ufffd" if lone else given_char)


@pytest.mark.parametrize(
    "mark", ["\u202e", "\u202d", "\u2066", "\u2069", "\x85", "\x9b", "\u2028", "\u2029"]
)
def test_marks_that_turn_text_around_or_break_it_show_as_u_fffd(mark: str) -> None:
    # A field is one line: the marks Python counts as line breaks become spaces there.
    assert escape_field(f"Fixed{mark} dexif ton") in ("Fixed\ufffd dexif ton", "Fixed dexif ton")
    assert mark not in escape_text(f"resolved{mark}\nnext line")
