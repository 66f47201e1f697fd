"""Readers' outage reports: every rule, the noise that must not count, hostile text, and
that nothing a reader wrote ever comes out of the classifier."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modbot.config.reportrules import parse_rules, shipped_rules, with_changes
from modbot.core.readertext import LIMIT, normalise
from modbot.core.reports import Term, classify, describe, explain
from modbot.errors import ConfigError

RULES = shipped_rules()
CLAUDE = ("claude.ai", "platform.claude.com", "Claude API (api.anthropic.com)", "Claude Code")


def rule_of(text: str, components: tuple[str, ...] = CLAUDE) -> str | None:
    return classify(text, RULES, components).rule


# --- every rule, with texts readers write ---------------------------------------------


REPORTS = [
    ('API Error: 529 {"type":"error","error":{"type":"overloaded_error"}}', "error code"),
    ("529 again??", "error code"),
    ("getting 500s on every request", "error code"),
    ("HTTP 502 Bad Gateway from the API", "error code"),
    ("503 Service Unavailable", "error code"),
    ("API Error: 500 Internal server error", "error code"),
    ("Overloaded. Again.", "error name"),
    ("Something went wrong. Try again later", "error name"),
    ("response incomplete every time", "error name"),
    ("Due to unexpected capacity constraints, Claude is unable to respond", "error name"),
    ("Can't reach Claude", "error name"),
    ("Outage?", "outage phrase"),
    ("is it down for everyone or just me", "outage phrase"),
    ("status page still green lol", "outage phrase"),
    ("Downdetector is spiking", "outage phrase"),
    ("Is Claude down?", "down + product or context"),
    ("claude.ai down again", "down + product or context"),
    ("Opus dead for me", "down + product or context"),
    ("claude.ai won't load", "symptom + product or context"),
    ("Claude Code not working for anyone else?", "symptom + product or context"),
    ("Is Anthropic having issues?", "symptom + product or context"),
    ("can't log in to claude.ai", "symptom + product or context"),
    ("Anyone else getting errors right now?", "vague + context"),
    ("so slow today, anyone else?", "vague + context"),
]


@pytest.mark.parametrize(("text", "rule"), REPORTS)
def test_a_report_counts_by_its_rule(text: str, rule: str) -> None:
    assert rule_of(text) == rule


def test_every_shipped_rule_has_a_report_above() -> None:
    # A rule added to the data file needs its own example in the table above.
    examples = {rule for _, rule in REPORTS}
    assert {r.label for r in RULES.rules} <= examples


@pytest.mark.parametrize(
    "text",
    [
        # A reader's own rate limit: usually one user's limit, not an outage.
        'API Error: 429 {"type":"error","error":{"type":"rate_limit_error"}}',
        "Rate limited after 10 messages, anyone else?",
        "hit my 5-hour limit and now claude code is not working",
        "Usage limit reached on Tuesday. Again.",
        # "down" in another sense.
        "Why does every post here get downvoted?",
        "Made a script to download all my chats",
        "Claude turned down my request to write a heist story",
        "Claude shut down the conversation when I asked about chemistry",
        "Dumbed down answers from Claude lately",
        "Claude helped me calm down before my interview",
        "It all comes down to context with Claude",
        "Claude Code goes down a rabbit hole every time",
        "Claude is not down for me",
        # "error" alone, and numbers that are not codes.
        "Got an error",
        "Claude Code error: ENOENT no such file",
        "Claude wrote 500 lines of tests",
        "I spent $500 on the API this month",
        "503 pages into the book",
        # The model's quality, setup questions, hypotheticals, "works for me".
        "Is it just me or has Claude gotten dumber this week?",
        "Claude refuses to help with my villain's monologue, anyone else?",
        "How do I handle 529 overloaded errors with backoff in my code?",
        "Claude Code not working with my corporate proxy, how do I configure it?",
        "What happens to your code if Claude goes down mid-task?",
        "works for me, check your wifi. is it down?",
        "The outage last week made me think",
        "a power outage took out my router",
        "Just me or is dark mode broken today?",
        "",
    ],
)
def test_noise_is_not_a_report(text: str) -> None:
    assert rule_of(text) is None


def test_a_report_names_errors_and_the_watchs_products_by_their_labels() -> None:
    verdict = classify("Claude Code and the API: API Error: 529 overloaded_error", RULES, CLAUDE)
    assert verdict.rule == "error code"
    assert verdict.errors == ("529", "overloaded_error")
    # Products come out as the watch's component names, not as the reader spelled them.
    assert set(verdict.products) == {"Claude Code", "Claude API (api.anthropic.com)"}


def test_claude_codes_error_prefix_names_no_api() -> None:
    verdict = classify("Claude Code: API Error: 500", RULES, CLAUDE)
    assert verdict.products == ("Claude Code",)


def test_without_components_the_rules_products_name_them() -> None:
    assert classify("cc down again", RULES).products == ("Claude Code",)


def test_not_a_report_names_nothing() -> None:
    verdict = classify("429 rate_limit_error on Claude Code", RULES, CLAUDE)
    assert (verdict.rule, verdict.errors, verdict.products) == (None, (), ())


# --- hostile text ---------------------------------------------------------------------

CYRILLIC_A, CYRILLIC_O, CYRILLIC_E = "\u0430", "\u043e", "\u0435"


def bold(text: str) -> str:
    """``text`` in mathematical bold letters."""
    return "".join(
        chr(0x1D400 + ord(c) - 65)
        if c.isupper()
        else chr(0x1D41A + ord(c) - 97)
        if c.islower()
        else c
        for c in text
    )


GREEK_CAPITAL_ETA = "\u0397"


@pytest.mark.parametrize(
    "text",
    [
        "**Is Claude down?**",
        "# Is Claude down?",
        "[Is Claude down?](https://status.claude.com)",
        "u/AnthropicSupport is Claude down?",
        "is Claude down? cc r/ClaudeAI",
        "is Claude do\u200bwn?",
        "is Cl\u200daude\u2060 do\ufeffwn\u00ad?",
        f"is Cl{CYRILLIC_A}ud{CYRILLIC_E} d{CYRILLIC_O}wn?",
        "\uff49\uff53 \uff23\uff4c\uff41\uff55\uff44\uff45 \uff44\uff4f\uff57\uff4e?",  # fullwidth
        "is " + bold("Claude down") + "?",
        "is Cl\u00e1ude d\u00f4wn?",
        "IS CLAUDE DOWN???",
        "is\u00a0claude\u2003down",
    ],
)
def test_hostile_shapes_of_a_report_still_count(text: str) -> None:
    assert rule_of(text) == "down + product or context"


def test_escapes_of_reddits_editor_are_read_through() -> None:
    assert classify("API Error: overloaded\\_error", RULES).errors == ("overloaded_error",)
    assert normalise("can&#39;t connect &amp; &gt; quote").words == "cant connect quote"


@pytest.mark.parametrize("apostrophe", ["'", "\u2019", "\u02bc", "\u00b4", "\uff07"])
def test_every_apostrophe_reads_the_same(apostrophe: str) -> None:
    assert normalise(f"can{apostrophe}t connect").words == "cant connect"


def test_lookalike_capitals_are_mapped_before_casefolding() -> None:
    # A Greek capital eta looks like H; folded first it would read as "n".
    assert normalise(f"{GREEK_CAPITAL_ETA}ELLO").words == "hello"


def test_a_link_or_a_mention_with_down_in_it_reports_nothing() -> None:
    assert rule_of("Claude https://downdetector.com/status/claude-ai/is-down") is None
    assert rule_of("Claude thread by u/is_it_down_again") is None


def test_a_40_kb_text_is_read_only_up_to_the_cap() -> None:
    report = "Claude down for everyone? " + "x" * 40_000
    buried = "y " * 20_000 + "Claude is down for everyone"
    read = explain(report, RULES)
    assert read.verdict.rule == "outage phrase"
    assert (read.read, read.length) == (LIMIT, len(report))
    # What lies past the cap is never read: a report there does not count.
    assert classify(buried, RULES).rule is None


def test_a_40_kb_text_costs_what_its_first_4_kb_cost() -> None:
    long_text = ("down 529 anyone\u200b else " * 2000)[:40_000]
    short_text = long_text[:LIMIT]
    assert classify(long_text, RULES) == classify(short_text, RULES)

    def cost(text: str) -> float:
        began = time.perf_counter()
        for _ in range(20):
            classify(text, RULES)
        return time.perf_counter() - began

    cost(short_text)  # compile the rules first
    assert cost(long_text) < 3 * cost(short_text) + 0.05


# --- nothing of the text comes out ----------------------------------------------------

_CANARY = st.from_regex(r"zq[a-z0-9]{8}", fullmatch=True)
_NOISE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
_WORDS = st.lists(
    st.sampled_from(
        ["down", "529", "overloaded", "claude", "anyone", "else", "not", "working", "**",
         "\u200b", "u/", "r/", "[", "](", "https://", "&amp;", "\\_", "\u0430", "error"]
    ),
    max_size=30,
).map(" ".join)  # fmt: skip


@given(canary=_CANARY, before=_WORDS, after=_NOISE)
def test_no_output_ever_contains_the_input(canary: str, before: str, after: str) -> None:
    text = f"{before} {canary} {after}"
    verdict = classify(text, RULES, CLAUDE)
    out = {*verdict.errors, *verdict.products, verdict.rule}
    assert out <= {*RULES.labels(CLAUDE), None}
    shown = describe(explain(text, RULES, CLAUDE), CLAUDE)
    assert canary not in shown.casefold()


@given(text=st.one_of(_NOISE, _WORDS))
def test_a_verdict_carries_only_fixed_labels(text: str) -> None:
    verdict = classify(text, RULES, CLAUDE)
    labels = RULES.labels(CLAUDE)
    assert verdict.rule is None or verdict.rule in labels
    assert set(verdict.errors) <= labels
    assert set(verdict.products) <= set(CLAUDE)
    assert verdict.is_report or (verdict.errors, verdict.products) == ((), ())


@given(text=_NOISE)
def test_the_normal_form_is_words_and_single_spaces(text: str) -> None:
    words = normalise(text).words
    assert words == " ".join(words.split())
    assert all(c.isalnum() or c in " _" for c in words)
    assert normalise(words).words == words


# --- explain ----------------------------------------------------------------------------


def test_explain_shows_every_group_and_rule_and_agrees_with_classify() -> None:
    text = "Claude Code down? 529 for me too"
    shown = explain(text, RULES, CLAUDE)
    assert shown.verdict == classify(text, RULES, CLAUDE)
    assert [g.name for g in shown.groups][-1] == "product"
    assert len(shown.checks) == len(RULES.rules)
    printed = describe(shown, CLAUDE)
    for group in RULES.groups:
        assert group.name in printed
    for rule in RULES.rules:
        assert rule.label in printed
    assert printed.startswith("a report, by the rule 'error code'")
    assert "names errors: 529" in printed


def test_explain_says_what_vetoed_a_rule() -> None:
    printed = describe(explain("Claude Code not working, hit my rate limit", RULES))
    assert printed.startswith("not a report")
    assert "vetoed by own-limit" in printed


# --- the rules as data ------------------------------------------------------------------


def test_the_shipped_rules_load() -> None:
    assert RULES.limit == LIMIT
    assert {"error-code", "error-name", "outage", "own-limit"} <= {g.name for g in RULES.groups}


MINIMAL = """
version = 1
[[rules]]
label = "says down"
all = ["down"]
[groups.down]
terms = ["down"]
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = 1\n[[rules]", "not valid TOML"),
        ("version = 2", "version: must be 1"),
        (MINIMAL + "colour = 1", "colour: unknown key"),
        (MINIMAL.replace('all = ["down"]', 'all = ["up"]'), "no group named 'up'"),
        (MINIMAL.replace('all = ["down"]', "all = []"), "all: name at least one group"),
        (MINIMAL + '[groups.code]\nterms = [{ label = "500", bare = false }]', "near: needed"),
        (MINIMAL + '[groups.x]\nterms = ["a", "a"]', "label 'a' used twice"),
        (MINIMAL + '[groups.x]\nterms = ["' + "a" * 61 + '"]', "60 printable characters"),
        (MINIMAL + '[groups.x]\nterms = [{ label = "a", phrases = ["!!"] }]', "no letters"),
        (MINIMAL + '[groups.x]\nnear = ["two words"]\nterms = ["a"]', "one word each"),
        (MINIMAL.replace("version = 1", "version = 1\nread_limit = 10"), "read_limit"),
    ],
)
def test_a_bad_rules_file_is_one_line_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_rules(text, "rules.toml")
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("rules.toml")


def test_a_watch_adds_removes_and_masks_terms() -> None:
    changed = with_changes(
        RULES,
        {
            "error-name": {
                "add": [{"label": "Claude will return soon", "phrases": ["back soon page"]}],
                "remove": ["Something went wrong"],
                "masks": ["overloaded with work"],
            },
            "products": {"add": [{"label": "Claude Code", "phrases": ["the cli"]}]},
        },
        "modbot.toml: watch 'claude': report_rules",
    )
    assert classify("the back soon page again", changed).errors == ("Claude will return soon",)
    assert classify("Something went wrong", changed).rule is None
    assert classify("Something went wrong", RULES).rule == "error name"  # the base is untouched
    assert classify("I'm overloaded with work", changed).rule is None
    assert classify("the cli is down", changed).products == ("Claude Code",)


def test_a_watch_may_add_a_group_its_rules_then_use() -> None:
    changed = with_changes(RULES, {"region": {"add": ["eu-west"]}}, "w")
    assert changed.group("region") is not None
    assert changed.group("region").terms == (Term("eu-west", ("eu-west",)),)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"error-name": {"replace": []}}, "replace: unknown key"),
        ({"error-name": {"add": "x"}}, "add: a list"),
        ({"products": {"masks": ["x"]}}, "masks: belong to groups"),
        ({"error-name": {"remove": [1]}}, "remove: a list of strings"),
        ("x", "a table"),
    ],
)
def test_a_bad_watch_change_is_one_line(changes: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        with_changes(RULES, changes, "modbot.toml: watch 'w': report_rules")
