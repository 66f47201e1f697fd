"""Make the labelled corpus of readers' posts and comments: ``corpus.jsonl`` beside this file.

    python tests/data/reports/make_corpus.py          # writes corpus.jsonl (same bytes every run)

The corpus is SYNTHETIC. Reddit cannot be fetched from where it was made, so every
text comes from the templates below, written to read like r/ClaudeAI's new posts and
its Performance and Bugs Megathread, and every time from a seeded random generator.
What is real is the skeleton: the 25 Claude incidents of 2026-08-24 to 2026-10-07 in
``tests/data/samples/claude-incidents-derived.json`` (taken from status.claude.com's
history feed): when each was opened, and, where its own updates say so ("Impact
occurred from 12:40 UTC"), when the impact began. Readers' bursts start then, a minute
or two after the impact, and the rest of each burst's shape (how many readers, how
front-loaded) follows what the incident affected (see INCIDENTS for each choice).

Each line is one JSON object. The first is the header: how it was made, the span, the
watch's components, the incidents with their scenario, and the bursts. Every other
line is one item: its id, kind (post or comment), time (epoch seconds), author (a
pseudonymous hash), the author's account creation time (null when not known), text,
label (``report``: does the text itself say that the service is failing for readers
now, not their own limit, setup or the model's quality), tags, and the burst it belongs
to. A bare "same" or "+1" under a report is labelled not a report: the classifier reads
texts alone, and so does the label.

What it holds: 53 days of ordinary traffic (a daily and weekly rhythm; a few genuine
one-off "is it down?" posts a day), bursts around 19 of the 25 incidents (most begin
before the status page; some after; six incidents have no burst), three bursts with no
incident, blips (two to eight readers failing together for minutes, about two a week:
not outages), a brigade of day-old accounts, one reader posting a dozen times, noise (own
rate limits, "down" in another sense, quality complaints, setup questions, "works for
me"), and hostile text (markdown, mentions, links, zero-width characters, lookalike
letters, fullwidth and mathematical letters, escapes, 40 KB pastes).

The rules were adjusted after a first measurement on these templates (plural codes
like "500s", "nothing works", the status-page jibe, hypotheticals). Texts tagged
``held-out-1`` come from templates written after that; measured once as written
(precision 0.640, recall 0.580), they were then used to widen the rules. Texts tagged
``held-out-2`` come from templates written before that widening and never used to
change the rules: their scores are the fairer estimate of how the rules meet new
phrasing.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "corpus.jsonl"
SAMPLES = HERE.parent / "samples" / "claude-incidents-derived.json"
SEED = 20261008
START = datetime(2026, 8, 17, tzinfo=UTC)  # a week of ordinary traffic before the first incident
END = datetime(2026, 10, 9, tzinfo=UTC)
COMPONENTS = ["claude.ai", "platform.claude.com", "Claude API (api.anthropic.com)", "Claude Code"]
POSTS_PER_DAY = 95
COMMENTS_PER_DAY = 70
MAX_LONG_PASTES = 12
ONE_OFF_REPORTS_PER_DAY = 3.0  # genuine "is it down for anyone?" with no outage behind it
MINUTE = 60.0
DAY = 86_400.0


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- the incidents, and the readers' burst around each -----------------------------------
# impact: when the impact began, from the incident's own text where it says ("text"),
# else a choice ("drawn"); authors: distinct readers who report; spread: minutes over
# which most of them report (front-loaded); products: what they name.


@dataclass(frozen=True)
class Scenario:
    incident: str
    impact: str | None  # ISO time the impact began; None: no burst
    source: str  # "text" (the incident says), "drawn", or why there is no burst
    authors: int = 0
    spread: float = 20.0
    products: tuple[str, ...] = ("claude.ai",)
    models: tuple[str, ...] = ()
    errors: tuple[str, ...] = ("529", "500")


INCIDENTS = [
    Scenario(
        "vmys9qn874h4",
        "2026-10-07T21:05:00Z",
        "drawn: refused requests for some organizations; few readers",
        4,
        30,
        ("API", "claude.ai"),
        errors=("403",),
    ),
    Scenario("978mjkgw6mh7", None, "no burst: the usage page of platform.claude.com"),
    Scenario(
        "wf2v8ms031sx",
        "2026-10-07T00:00:00Z",
        "text (from 00:00 UTC): usage data on platform.claude.com; three readers over 90 min",
        3,
        90,
        ("platform.claude.com",),
    ),
    Scenario(
        "ch27pb90bn85",
        "2026-10-06T12:15:00Z",
        "drawn (9 min before the page)",
        35,
        15,
        ("claude.ai", "Claude Code"),
        ("Opus 5.5",),
    ),
    Scenario(
        "bhphxz3vr58g",
        "2026-10-05T12:40:00Z",
        "text: impact 12:40-13:10 UTC",
        40,
        20,
        ("claude.ai", "API"),
        ("Mythos 5.1", "Fable 5.1"),
    ),
    Scenario("k0h22tsvnydg", None, "no burst: delayed credits on the Claude Platform"),
    Scenario(
        "4xvtc2gnq73l",
        "2026-09-29T14:00:00Z",
        "text: errors began at 14:00 UTC; everything down for an hour",
        160,
        30,
        ("claude.ai", "Claude Code", "API"),
        errors=("500", "529", "503"),
    ),
    Scenario(
        "7g1qpkyz5gxh",
        "2026-09-22T00:50:00Z",
        "text: impact 00:50-02:10 UTC",
        45,
        25,
        ("claude.ai", "Claude Code"),
        ("Mythos 5.1", "Fable 5.1", "Opus 5"),
    ),
    Scenario("t8fpw9vcshl9", None, "no burst: Google Play subscriptions"),
    Scenario(
        "6304r9jjhj34",
        "2026-09-15T09:55:00Z",
        "drawn: intermittent spikes, readers after the page (European morning)",
        14,
        60,
        ("claude.ai", "API"),
        ("Mythos 5.1", "Fable 5.1"),
    ),
    Scenario(
        "t33dncr5ydvl",
        "2026-09-11T13:57:00Z",
        "text: impact 13:57-14:20 UTC",
        50,
        15,
        ("claude.ai", "Claude Code"),
        ("Fable 5.1", "Mythos 5.1"),
    ),
    Scenario(
        "2pt83vlkk7x7",
        "2026-09-10T21:55:00Z",
        "drawn: slower API for some US Midwest users, readers after the page",
        8,
        90,
        ("API",),
        errors=("504",),
    ),
    Scenario("r1pqn1kb4hvk", None, "no burst: Claude Cowork on Windows after a Windows update"),
    Scenario(
        "461yvfrzpwtt",
        "2026-09-03T13:15:00Z",
        "drawn (11 min before the page; ended 16:16 UTC per its text)",
        80,
        30,
        ("claude.ai", "Claude Code", "API"),
        ("Mythos 5.1", "Fable 5.1", "Opus 5"),
    ),
    Scenario(
        "288w7p4hk1l1",
        "2026-09-03T12:30:00Z",
        "drawn (7 min before the page)",
        30,
        12,
        ("claude.ai", "API"),
        ("Sonnet 5",),
    ),
    Scenario(
        "ls6bn1x81m0w",
        "2026-09-02T21:05:00Z",
        "text: impact 21:05-21:19 UTC",
        35,
        10,
        ("claude.ai", "API"),
        ("Sonnet 5",),
    ),
    Scenario(
        "620swtqyn24k",
        "2026-09-01T12:10:00Z",
        "text (credits from 12:10 UTC): 'credit balance is too low' for a few API users over hours",
        5,
        400,
        ("API",),
        errors=("credit",),
    ),
    Scenario(
        "3g3d55q6vk3h",
        "2026-09-01T17:00:00Z",
        "drawn: docs and platform degraded; a few readers",
        5,
        60,
        ("platform.claude.com",),
    ),
    Scenario("nr3h7bw8b3k3", None, "no burst: Claude for Microsoft Office 365"),
    Scenario(
        "r82kdk0m7vqh",
        "2026-08-31T16:55:00Z",
        "text: impact 16:55-19:16 UTC; Claude Code on the web, a slow burn",
        30,
        90,
        ("Claude Code",),
    ),
    Scenario(
        "9jrp5rtyzrf6",
        "2026-08-31T17:18:00Z",
        "drawn (5 min before the page)",
        45,
        15,
        ("claude.ai",),
    ),
    Scenario(
        "vr9tpk8w7zr8",
        "2026-08-28T17:05:00Z",
        "drawn (17 min before the page): sessions of Claude Code on the web fail",
        20,
        25,
        ("Claude Code",),
    ),
    Scenario(
        "n0rlp126qf8g",
        "2026-08-24T20:00:00Z",
        "text: errors 20:00-20:08 UTC, logging in",
        20,
        6,
        ("claude.ai", "Claude Code"),
        errors=("login",),
    ),
    Scenario(
        "w43j3xmngxgj",
        "2026-08-24T16:02:00Z",
        "text: 16:02-16:08 UTC, logging in; the page came an hour later",
        18,
        5,
        ("claude.ai", "Claude Code"),
        errors=("login",),
    ),
    Scenario(
        "vgz5psbjmt1h",
        "2026-08-24T04:50:00Z",
        "text: 04:50-07:36 UTC",
        40,
        25,
        ("claude.ai", "API"),
        ("Opus 5", "Fable 5"),
    ),
]

# Bursts no incident ever explained (real enough to readers), and two that are not bursts.
UNOFFICIAL = [
    ("no-incident-1", "2026-09-07T19:40:00Z", 25, 12, ("Claude Code",), ("529",)),
    ("no-incident-2", "2026-09-19T02:15:00Z", 12, 8, ("claude.ai",), ("wrong",)),
    ("no-incident-3", "2026-10-03T16:05:00Z", 18, 15, ("API",), ("500",)),
]
# Blips: a few readers failing together for a few minutes (a flaky region, one bad
# server, a client bug) that no status page would list. Not outages: a notice on one is
# a false notice. Their size is an assumption: 2 readers, then each more reader half as
# likely (2: 1/2, 3: 1/4, 4: 1/8, ...), at most 8; about two a week, by activity.
BLIPS_PER_WEEK = 2.0
BRIGADE = ("brigade", "2026-09-25T20:00:00Z", 14)  # day-old accounts, no outage
ONE_AUTHOR = ("one-author", "2026-09-14T10:00:00Z", 12)  # one reader, a dozen times


# --- what readers write ------------------------------------------------------------------

MODELS = ["Opus 5", "Sonnet 5", "Opus 4.8", "Haiku 4.5", "Mythos 5.1", "Fable 5.1", "Opus 5.5"]
THINGS = [
    "a budgeting app",
    "a Chrome extension",
    "a Discord bot",
    "my thesis outline",
    "a Rust CLI",
    "a recipe planner",
    "an iOS game",
    "a Home Assistant dashboard",
    "a Figma plugin",
    "a static site generator",
    "a PDF invoice parser",
    "a Telegram bot",
    "a VS Code theme",
    "a habit tracker",
    "a D&D campaign generator",
    "a flashcard app",
    "a Minecraft mod",
]
TASKS = [
    "refactoring legacy Java",
    "writing unit tests",
    "long-form fiction",
    "SQL migrations",
    "reviewing pull requests",
    "learning Japanese",
    "data cleaning in pandas",
    "writing cover letters",
    "debugging React state",
    "summarising papers",
    "planning a trip",
    "Terraform modules",
]
LANGS = ["Python", "TypeScript", "Rust", "Go", "Swift", "Kotlin", "C#", "Elixir"]

ORDINARY_POSTS = [
    "I built {thing} with Claude Code in {n} hours",
    "Claude Code wrote 90% of {thing} and I'm a little scared",
    "Made {thing} with {model}, here's what I learned",
    "{model} vs {model2} for {task}?",
    "What's your CLAUDE.md look like for {lang} projects?",
    "Best prompt structure for {task}",
    "Switched from ChatGPT to Claude for {task}, honest review",
    "Is Max worth it if I mostly do {task}?",
    "Tip: ask Claude to write the tests first",
    "Claude just explained monads better than my professor",
    "The new memory feature is actually useful",
    "How are you all using Projects for {task}?",
    "Claude's reaction when I said thank you after a 3 hour session",
    "Subagents in Claude Code are a game changer",
    "Anyone tried {model} for {task} yet?",
    "Weekly thread: what did you build this week?",
    "Opus 5 one-shotted a bug I chased for two days",
    "PSA: you can drag files straight into the chat",
    "Claude helped me negotiate my salary",
    "My workflow for {lang} with Claude Code and git worktrees",
    "Does Claude remember things between chats now?",
    "Artifacts are underrated for quick prototypes",
    "Claude wrote a sonnet about my cat and it's perfect",
    "Plan mode before every big change, trust me",
    "Is the $20 plan enough for {task}?",
    "Claude's explanation of {lang} lifetimes finally made it click",
    "Hot take: {model} is better than {model2} at {task}",
    "What MCP servers do you actually use daily?",
    "Using Claude to study for the bar exam",
    "Long conversations vs new chats, what's your rule?",
]
# Setup and how-to questions: not outage reports, even when something "isn't working".
HELP_POSTS = [
    "Claude Code not working with my corporate proxy, how do I configure it?",
    "MCP server won't connect in Claude Desktop, what am I doing wrong in my config?",
    "How do I handle 529 overloaded errors with exponential backoff in my code?",
    "npm install of Claude Code fails on Windows, any tips?",
    "How to fix 'command not found' after installing Claude Code?",
    "Claude Code can't connect from inside WSL behind my VPN, any advice?",
    "My app returns 503 when the Claude API is slow, how should I handle this?",
    "Environment variable for the API key not picked up, how do I set it?",
    "How can I stop Claude Code from timing out on long builds in my project?",
    "My MCP server keeps crashing when Claude calls it, how do I debug it?",
    "Error handling patterns Claude Code suggests for {lang}",
    "How do I make Claude Code use my venv?",
]
QUALITY_POSTS = [  # the most common complaint that is not an outage
    "Is it just me or has Claude gotten dumber this week?",
    "{model} is so lazy today, keeps giving me placeholders",
    "Did they nerf {model} again? The quality is way worse",
    "Anyone else feel like Claude got worse at following instructions?",
    "Claude keeps ignoring my CLAUDE.md instructions today",
    "Is it just me or is {model} hallucinating more than usual?",
    "The em dashes are back and I'm losing my mind",
    "Quality went down a lot since the last update",
    "Claude refuses to help with my villain's monologue, anyone else?",
    "{model} feels lobotomized right now",
]
DOWN_SENSE_POSTS = [  # "down" in another sense
    "Claude turned down my request to write a heist story",
    "Claude shut down the conversation when I asked about chemistry homework",
    "Why does every post here get downvoted into oblivion?",
    "Made a script to download all my Claude chats as markdown",
    "Dumbed down answers after the update?",
    "Narrowed down my system prompt to 3 rules and it works better",
    "Claude helped me calm down before my interview",
    "Write down your rules in CLAUDE.md, it helps a lot",
    "It all comes down to context management",
    "Watered down responses on the mobile app vs desktop?",
    "Thumbs down button does nothing when I give feedback",
    "Claude broke down the problem into steps better than I could",
    "Cut down my token usage by half with this trick",
    "Claude let me down on this one, the regex was completely wrong",
    "Tracked down a memory leak with Claude Code in 10 minutes",
    "Doubling down on Claude Code after trying the alternatives",
]
LIMIT_POSTS = [  # a reader's own limit
    "Hit my 5-hour limit in 20 minutes on Pro, is this normal?",
    'API Error: 429 {{"type":"error","error":{{"type":"rate_limit_error","message":'
    '"Number of request tokens has exceeded your per-minute rate limit"}}}}',
    "Rate limited after 10 messages, anyone else?",
    "Usage limits are getting ridiculous",
    "Getting 429 rate_limit_error on the API even on tier 4",
    "Weekly limit reached on Tuesday. Again.",
    "Out of messages until 6pm, what do you all do meanwhile?",
    "Claude Code says usage limit reached but I barely used it today",
]
HARD_POSTS = [  # things that look like reports and are not
    "Backup plan for when Claude is down?",
    "What happens to your code if Claude goes down mid-task?",
    "Got a 500 error from my own Flask app, Claude found the bug in seconds",
    "The outage last week made me realise I depend on Claude too much",
    "Status of the Claude Code Windows port?",
    "Anyone else think the new UI is worse?",
    "Claude Code keeps crashing my terminal when I paste images",
    "Error: ENOENT no such file when Claude Code edits symlinks",
    "Is there an official status page for Claude?",
    "Downdetector for Claude is always full of false alarms lol",
]
ONE_OFF_REPORTS = [  # genuine, one reader's blip: reports, but no outage behind them
    "Is Claude down for anyone else?",
    "claude.ai won't load for me, anyone?",
    "Claude not responding right now?",
    "Anyone else getting 'Something went wrong' on claude.ai?",
    "Claude Code stuck on API Error: 500 again",
    "Is it down or is it me?",
]
MEGATHREAD_ORDINARY = [
    "{model} keeps forgetting context after 20 messages",
    "Artifacts not rendering on mobile for me, desktop fine",
    "Project knowledge upload fails for PDFs over 10MB",
    "Claude Code asks for permission every single time, annoying",
    "Voice mode cut off mid-sentence",
    "Usage limit reset time shown is wrong",
    "Search tool returning results from last year",
    "Getting 'Claude hit the maximum length for this conversation' constantly",
    "{model} is noticeably slower than last month but works",
    "Copy button in code blocks copies the wrong block",
    "Dark mode flickers on the desktop app",
    "Claude Code diff view is cut off on small terminals",
    "Is there a way to export a project?",
    "The 'continue' button disappeared for me",
    "{model} seems fine today, faster than yesterday",
    "Feature request: folders for chats",
    "Hit my limit again, 5 hour window is brutal",
    "429 on the API again, my own fault, batch job",
    "Claude refused to summarise a news article, weird",
    "Responses got dumber after lunch, or is it me",
]
MEGATHREAD_ONE_OFF = [
    "claude.ai not loading for me right now, anyone?",
    "Anyone else getting errors right now?",
    "Got one 529 overloaded just now, retry worked",
    "Desktop app says Can't reach Claude, web works",
]

# During a burst: what readers post, with slots for the incident's products, models, errors.
BURST_POSTS = [
    "Is Claude down?",
    "Claude down?",
    "Is {product} down?",
    "{product} not working?",
    "Is it just me or is {product} not loading?",
    "Anyone else getting {error_text}?",
    "{product}: {error_text} on every message",
    "{model} erroring out for everyone?",
    "Claude is down again",
    "Outage?",
    "Status page says all green but nothing works",
    "Can't connect to {product}",
    "{error_text} in {product}",
    "Is Claude down right now? {error_text}",
    "{model} not responding at all",
    "Everything is down??",
    "Claude Code: API Error: {code} {json}",
    "Nothing works. Claude is toast",
    "rip claude",
    "is it down for everyone or just me",
]
BURST_COMMENTS = [
    "Same here, {error_text} for the last 10 min",
    "Down for me too",
    "Down for me too (EU)",
    "+1 {error_text}",
    "{product} stuck on {error_text} again",
    "yep, can't connect from the desktop app either",
    "status page still green lol",
    "{code} on the API",
    "{model} dead for me",
    "it's dead jim",
    "Mobile app says Can't reach Claude",
    "Same, {product} not loading",
    "{error_text} constantly, nothing gets through",
    "getting {error_text} every request",
    "Claude Code keeps failing with API Error: {code}",
    "API returning {code}s for all requests right now",
    "{product} completely down here",
    "Is anyone else seeing {error_text}? Started a few minutes ago",
    "can't log in to {product}",
    "nothing loads, blank page on {product}",
]
BURST_CHATTER = [  # during bursts, not reports by their own text
    "Same",
    "same",
    "+1",
    "lol here we go again",
    "time to touch grass",
    "Works for me in the US",
    "working fine for me, check your wifi",
    "back up for me",
    "it's back",
    "This is why I keep a local model around",
    "Good thing I saved my work",
    "Of course it happens right before my deadline",
    "Every Monday...",
    "Hit my limit anyway, so whatever",
]
ERROR_TEXTS = {
    "529": [
        "529 overloaded",
        "529s",
        "overloaded_error",
        "Overloaded errors",
        "API Error: 529 Overloaded",
    ],
    "500": ["500 errors", "Internal server error", "API Error: 500", "error 500", "500s"],
    "503": ["503 Service Unavailable", "503s", "service unavailable"],
    "504": ["504 gateway timeout", "timeouts", "really slow responses"],
    "403": ["403 permission_error", "refused requests", "errors"],
    "login": ["login errors", "can't log in", "a login loop"],
    "wrong": ["Something went wrong", "response incomplete", "errors"],
    "credit": ["credit balance is too low", "credit balance is too low after buying credits"],
}
JSON_ERRORS = {
    "529": '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    "500": '{"type":"error","error":{"type":"api_error","message":"Internal server error"}}',
    "503": '{"type":"error","error":{"type":"api_error","message":"Service unavailable"}}',
}
# Held out, first set: written after the rules were first measured on the templates
# above. Measured once as written (precision 0.640, recall 0.580 per item), then used to
# widen the rules' categories: no longer held out.
HELD_OUT_POSTS = [  # not reports
    "Anyone else use Claude for meal planning?",
    "Why does Claude apologise so much lol",
    "Claude Code deleted my node_modules and I'm not even mad",
    "Server components vs client components, Claude keeps mixing them up",
    "Is the API cheaper than Pro for light use?",
    "The desktop app update broke my keyboard shortcuts",
    "Sonnet 5 errors out on large CSVs, is there a size limit?",
    "How long until the Opus 5.5 rollout reaches Europe?",
    "Claude Code goes down a rabbit hole every time I ask for a small fix",
    "Our team's Claude Enterprise rollout: lessons learned",
    "API latency from Singapore is noticeably higher than from the US",
    "Down to my last 10% of weekly usage on Wednesday",
    "Does anyone else get anxious when Claude says 'You're absolutely right'?",
    "The status page should show per-model uptime",
    "Claude keeps timing out on my 200-page PDF, is that a known limit?",
    "Made a menu bar app that shows whether Claude is up",
    "After the outage yesterday my chats from that hour are gone",
    "Claude Code is unusable on Windows without WSL",
    "Error 404: my motivation not found. Claude fixed my bug anyway",
    "Anthropic API returning empty content blocks with stop_reason max_tokens",
    "PSA: the 529 errors this morning were on Anthropic's side, not your code",
    "Why do people post 'is Claude down' every day here?",
    "Just me or is dark mode broken on iOS today?",
]
HELD_OUT_REPORTS = [
    "Claude just died mid-response, anyone else?",
    "Getting overloaded on Opus all afternoon",
    "Claude Code hangs forever on 'Thinking...', also on the web",
    "API calls failing with 500 since about 14:05 UTC",
    "Everything errors out for me: app, web, Code",
    "Is Anthropic having issues? My requests keep failing",
    "Anyone know what's happening? Every chat ends with an error",
    "claude.ai gives me 'Internal Server Error' when I open any project",
    "Cannot start a new chat, the send button just spins",
    "Is the API down again? 502 Bad Gateway",
    "Downdetector is spiking for Claude right now",
    "Login page keeps looping back, can't get in",
    "Mobile app: 'Claude is unavailable right now'",
    "Same thing here in Germany, nothing loads",
    "Was fine 10 min ago, now every request fails",
    "Claude Code: 'Request timed out' over and over",
    "Opus unreachable, Sonnet works",
    "The web app is throwing 503s at me",
    "yeah it's borked for me too",
    "is the whole thing down or just Code?",
]
# Held out, second set: written before the rules were widened with the first set, and
# never used to change them. The bench scores it apart: the fairer estimate.
HELD_OUT_2_POSTS = [  # not reports
    "Claude wrote a breakup text for me and it was brutal",
    "Why is Claude so bad at counting letters?",
    "Any way to get Claude Code to stop adding comments everywhere?",
    "The new voice is much better than the old one",
    "Claude Code spent 40 minutes on a task and then undid everything",
    "Is Opus 5.5 available on Bedrock yet?",
    "Got my first Claude Code PR merged at work!",
    "Uptime of Claude over the last month was pretty bad, anyone tracking it?",
    "I stopped using ChatGPT after it went down during my exam",
    "How do you all deal with Claude being down during work hours?",
    "My internet was down all day so I finally read the docs",
    "Server error in my Next.js app, Claude suggested a fix that worked",
    "Error messages in Claude Code are much clearer now",
    "Claude is slow to admit when it's wrong",
    "Tried Claude's new Chrome extension, it keeps crashing",
    "Who else is waiting for the 1M context window on Pro?",
    "Anthropic status page RSS feed for Slack? how to set it up",
    "503 pages into the book and Claude still remembers the plot",
    "Rate my CLAUDE.md",
]
HELD_OUT_2_REPORTS = [
    "Claude won't answer anything, just an empty reply",
    "All my requests to Opus are failing right now",
    "Anthropic down? Code and the app both dead",
    "Console says 'Service Unavailable' for me",
    "App stuck on the loading screen since 10 minutes ago",
    "Hit send and get 'An error occurred' every time",
    "Can't get any response from Sonnet, tried web and mobile",
    "claude code returning 529 overloaded nonstop",
    "Did Claude just go down for everyone?",
    "Projects won't open, chats won't load, it's all broken",
    "API: requests hang then fail with a gateway error",
    "Is there an outage? Nothing is responding",
    "Claude.ai is super laggy and half my messages fail",
    "Getting 'Claude is currently unavailable' on desktop",
    "Claude Code keeps saying connection lost",
    "every single message fails with an error now",
    "Huge error spike here, can't use Claude at all",
    "my API jobs all died at 3pm with 500s",
    "Anyone in the UK? Claude not working here",
    "Outage again?? This is the third time this week",
]
# The credits incident of 2026-09-01: readers report an outage the rules read as their own limit.
CREDIT_REPORTS = [
    "API says credit balance is too low right after I bought credits, anyone else?",
    "Bought credits an hour ago, still 'credit balance is too low'. Broken?",
]


@dataclass
class Corpus:
    rng: random.Random
    items: list[dict[str, Any]] = field(default_factory=list)
    bursts: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0
    long_pastes: int = 0

    def author(self, key: str) -> str:
        return hashlib.sha256(f"{SEED}:{key}".encode()).hexdigest()[:16]

    def regular(self) -> str:
        # A few readers post a lot, most rarely (a Zipf-like draw from 30,000 names).
        rank = int(30_000 ** self.rng.random())
        return self.author(f"reader{rank}")

    def since(self, at: float, *, young: bool = False) -> float | None:
        if young:
            return at - self.rng.uniform(600, 20 * 3600)
        if self.rng.random() < 0.1:
            return None  # account age not looked up
        if self.rng.random() < 0.03:
            return at - self.rng.uniform(
                600, 23 * 3600
            )  # a day-old account, as readers sometimes are
        return at - self.rng.uniform(40, 3000) * DAY

    def add(
        self,
        at: float,
        kind: str,
        text: str,
        report: bool,
        tags: list[str],
        *,
        author: str | None = None,
        burst: str | None = None,
        young: bool = False,
    ) -> None:
        self.counter += 1
        text, tags = self.hostile(text, tags)
        self.items.append(
            {
                "id": f"{'t3' if kind == 'post' else 't1'}_{self.counter:06x}",
                "kind": kind,
                "at": round(at),
                "author": author or self.regular(),
                "author_since": _round(self.since(at, young=young)),
                "text": text,
                "report": report,
                "tags": tags,
                "burst": burst,
            }
        )

    def hostile(self, text: str, tags: list[str]) -> tuple[str, list[str]]:
        """Some texts arrive in a hostile shape; the label does not change."""
        if self.rng.random() > 0.06:
            return text, tags
        kind = self.rng.choice(sorted(HOSTILE))
        if kind == "40kb":
            if self.long_pastes >= MAX_LONG_PASTES:  # they are what makes the file big
                return text, tags
            self.long_pastes += 1
        return HOSTILE[kind](text, self.rng), [*tags, f"hostile:{kind}"]

    def fill(self, template: str, **slots: str) -> str:
        model, model2 = self.rng.sample(MODELS, 2)
        values = {
            "model": model,
            "model2": model2,
            "thing": self.rng.choice(THINGS),
            "task": self.rng.choice(TASKS),
            "lang": self.rng.choice(LANGS),
            "n": str(self.rng.choice([2, 3, 4, 6, 8, 12, 48])),
            **slots,
        }
        return template.format(**values)


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)


# --- hostile shapes ----------------------------------------------------------------------

_CYRILLIC = {
    "a": "\u0430",
    "e": "\u0435",
    "o": "\u043e",
    "c": "\u0441",
    "p": "\u0440",
    "x": "\u0445",
    "y": "\u0443",
    "i": "\u0456",
}
_GREEK = {"o": "\u03bf", "a": "\u03b1", "i": "\u03b9", "n": "\u03b7", "v": "\u03bd", "u": "\u03c5"}
_ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]


def _markdown(text: str, rng: random.Random) -> str:
    shape = rng.choice(
        [
            "**{}**",
            "# {}",
            "_{}_",
            "`{}`",
            "> {}",
            "~~nvm~~ {}",
            "{} ^^^edit:^^^typo",
            "[{}](https://status.claude.com)",
        ]
    )
    return shape.format(text)


def _mention(text: str, rng: random.Random) -> str:
    return rng.choice(
        [
            "u/AnthropicSupport {}",
            "{} cc u/ClaudeOfficial",
            "{} (crossposted from r/ClaudeCode)",
            "/u/mod_team {}",
        ]
    ).format(text)


def _link(text: str, rng: random.Random) -> str:
    link = rng.choice(
        [
            "https://downdetector.com/status/claude-ai/",
            "https://status.claude.com/#down-again",
            "www.reddit.com/r/ClaudeAI/comments/abc/is_it_down_again/",
        ]
    )
    return f"{text} {link}"


def _zero_width(text: str, rng: random.Random) -> str:
    out = []
    for char in text:
        out.append(char)
        if char.isalpha() and rng.random() < 0.3:
            out.append(rng.choice(_ZERO_WIDTH))
    return "".join(out)


def _lookalike(text: str, rng: random.Random) -> str:
    table = rng.choice([_CYRILLIC, _GREEK])
    return "".join(table[c] if c in table and rng.random() < 0.6 else c for c in text)


def _wide(text: str, rng: random.Random) -> str:
    if rng.random() < 0.5:  # fullwidth forms
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    bold = {
        **{chr(97 + i): chr(0x1D41A + i) for i in range(26)},
        **{chr(65 + i): chr(0x1D400 + i) for i in range(26)},
    }
    return "".join(bold.get(c, c) for c in text)


def _escapes(text: str, rng: random.Random) -> str:
    return text.replace("_", "\\_").replace("&", "&amp;").replace("'", "&#39;") + " &gt;_&lt;"


def _long_paste(text: str, rng: random.Random) -> str:
    lines = [
        "    at Object.<anonymous> (/app/node_modules/@anthropic-ai/sdk/core.js:"
        f"{rng.randint(100, 999)}:{rng.randint(1, 80)})"
        for _ in range(420)
    ]
    return text + "\n\nfull log:\n\n" + "\n".join(lines)  # ~40 KB


HOSTILE = {
    "markdown": _markdown,
    "mention": _mention,
    "link": _link,
    "zero-width": _zero_width,
    "lookalike": _lookalike,
    "wide": _wide,
    "escapes": _escapes,
    "40kb": _long_paste,
}


# --- traffic -----------------------------------------------------------------------------

# How busy each UTC hour is (r/ClaudeAI follows US daytime), relative to the busiest.
HOURLY = [
    0.55,
    0.5,
    0.42,
    0.35,
    0.28,
    0.24,
    0.22,
    0.25,
    0.32,
    0.42,
    0.52,
    0.6,
    0.68,
    0.78,
    0.88,
    0.95,
    1.0,
    1.0,
    0.98,
    0.95,
    0.9,
    0.82,
    0.72,
    0.62,
]


def activity(at: float) -> float:
    moment = datetime.fromtimestamp(at, UTC)
    weekend = 0.75 if moment.weekday() >= 5 else 1.0
    return HOURLY[moment.hour] * weekend


def moments(corpus: Corpus, per_day: float) -> list[float]:
    """Times of ``per_day`` items a day on average, following the daily rhythm."""
    out = []
    peak = per_day / (sum(HOURLY) / 24) / DAY  # items per second at activity 1.0
    at = START.timestamp()
    end = END.timestamp()
    while True:
        at += corpus.rng.expovariate(peak)  # thinning: candidates at the peak rate
        if at >= end:
            return out
        if corpus.rng.random() < activity(at):
            out.append(at)


def ordinary(corpus: Corpus) -> None:
    kinds = [
        (ORDINARY_POSTS, 0.56, "ordinary"),
        (HELP_POSTS, 0.1, "noise:help"),
        (QUALITY_POSTS, 0.1, "noise:quality"),
        (DOWN_SENSE_POSTS, 0.1, "noise:down-sense"),
        (LIMIT_POSTS, 0.08, "noise:rate-limit"),
        (HARD_POSTS, 0.06, "noise:hard"),
    ]
    held_out = 0.08  # of posts, from the held-out pool
    for at in moments(corpus, POSTS_PER_DAY):
        roll = corpus.rng.random()
        if roll < held_out:
            pool, tag = (
                (HELD_OUT_POSTS, "held-out-1")
                if roll < held_out / 2
                else (HELD_OUT_2_POSTS, "held-out-2")
            )
            corpus.add(at, "post", corpus.rng.choice(pool), False, [tag])
            continue
        pool, tag = _pick(corpus.rng, kinds)
        corpus.add(at, "post", corpus.fill(corpus.rng.choice(pool)), False, [tag])
    for at in moments(corpus, COMMENTS_PER_DAY):
        text = corpus.fill(corpus.rng.choice(MEGATHREAD_ORDINARY))
        corpus.add(at, "comment", text, False, ["ordinary"])
    for at in moments(corpus, ONE_OFF_REPORTS_PER_DAY):
        kind = corpus.rng.choice(["post", "comment"])
        pool = ONE_OFF_REPORTS if kind == "post" else MEGATHREAD_ONE_OFF
        corpus.add(at, kind, corpus.rng.choice(pool), True, ["one-off"])


def _pick(rng: random.Random, kinds: list[tuple[list[str], float, str]]) -> tuple[list[str], str]:
    roll = rng.random()
    for pool, share, tag in kinds:
        if roll < share:
            return pool, tag
        roll -= share
    return kinds[0][0], kinds[0][2]


@dataclass(frozen=True)
class Burst:
    name: str
    start: float
    authors: int
    spread: float  # minutes
    products: tuple[str, ...]
    models: tuple[str, ...]
    errors: tuple[str, ...]
    incident: str | None
    kind: str


def burst(corpus: Corpus, spec: Burst) -> None:
    """``authors`` readers reporting from ``start`` (plus the minute or two it takes to
    notice), front-loaded over about ``spread`` minutes; some report twice or three
    times; chatter and limit complaints around them."""
    rng = corpus.rng
    last = spec.start
    for _ in range(spec.authors):
        delay = rng.uniform(0.5, 2.5) * MINUTE + rng.gammavariate(1.6, spec.spread / 2.4) * MINUTE
        at = spec.start + delay
        last = max(last, at)
        who = corpus.regular()
        for repeat in range(rng.choice([1, 1, 1, 1, 2, 2, 3])):
            when = at + repeat * rng.uniform(2, 12) * MINUTE
            text, is_report = _burst_text(corpus, spec.products, spec.models, spec.errors)
            tags = [f"burst:{spec.kind}"]
            roll = rng.random()
            if roll < 0.15:
                pool, tag = (
                    (HELD_OUT_REPORTS, "held-out-1")
                    if roll < 0.075
                    else (HELD_OUT_2_REPORTS, "held-out-2")
                )
                text, tags = rng.choice(pool), [*tags, tag]
            post = rng.random() < 0.35 and repeat == 0
            corpus.add(
                when,
                "post" if post else "comment",
                text,
                is_report,
                tags,
                author=who,
                burst=spec.name,
            )
    for _ in range(max(1, spec.authors // 3)):
        at = spec.start + rng.uniform(2, spec.spread * 2) * MINUTE
        pool = BURST_CHATTER if rng.random() < 0.8 else LIMIT_POSTS
        corpus.add(
            at, "comment", corpus.fill(rng.choice(pool)), False, ["burst:chatter"], burst=spec.name
        )
    corpus.bursts.append(
        {
            "name": spec.name,
            "incident": spec.incident,
            "kind": spec.kind,
            "start": round(spec.start),
            "end": round(last),
            "authors": spec.authors,
        }
    )


def _burst_text(
    corpus: Corpus, products: tuple[str, ...], models: tuple[str, ...], errors: tuple[str, ...]
) -> tuple[str, bool]:
    rng = corpus.rng
    error = rng.choice(errors)
    if error == "credit":
        return rng.choice(CREDIT_REPORTS), True
    code = error if error in JSON_ERRORS else rng.choice(["500", "529"])
    pool = BURST_POSTS if rng.random() < 0.4 else BURST_COMMENTS
    product = rng.choice(products).replace("API", rng.choice(["the API", "API"]))
    text = corpus.fill(
        rng.choice(pool),
        product=product,
        model=rng.choice(models) if models else rng.choice(["Opus 5", "Sonnet 5"]),
        error_text=rng.choice(ERROR_TEXTS.get(error, ERROR_TEXTS["500"])),
        code=code,
        json=JSON_ERRORS[code],
    )
    return text, True


def special(corpus: Corpus) -> None:
    rng = corpus.rng
    name, when, size = BRIGADE
    start = ts(when)
    for n in range(size):
        at = start + rng.uniform(0, 6) * MINUTE
        who = corpus.author(f"brigade{n}")
        text = rng.choice(
            [
                "claude is down lol",
                "Claude down again? lol",
                "is claude down",
                "Claude is down, switch to something else",
            ]
        )
        corpus.add(at, "post", text, True, ["burst:brigade"], author=who, burst=name, young=True)
    corpus.bursts.append(
        {
            "name": name,
            "incident": None,
            "kind": "brigade",
            "start": round(start),
            "end": round(start + 6 * MINUTE),
            "authors": size,
        }
    )
    name, when, size = ONE_AUTHOR
    start = ts(when)
    who = corpus.author("the-angry-one")
    for n in range(size):
        corpus.add(
            start + n * 50,
            "comment",
            rng.choice(["DOWN AGAIN??", "claude down again", "is it down AGAIN", "529 again"]),
            True,
            ["burst:one-author"],
            author=who,
            burst=name,
        )
    corpus.bursts.append(
        {
            "name": name,
            "incident": None,
            "kind": "one-author",
            "start": round(start),
            "end": round(start + size * 50),
            "authors": 1,
        }
    )
    # A 40 KB comment that repeats a word: read only up to the cap, reports nothing.
    corpus.add(ts("2026-09-20T12:00:00Z"), "comment", "down " * 8200, False, ["hostile:40kb-junk"])
    corpus.add(
        ts("2026-09-20T12:01:00Z"),
        "comment",
        "\u200b" * 8000 + "down",
        False,
        ["hostile:40kb-junk"],
    )


def blips(corpus: Corpus) -> None:
    rng = corpus.rng
    for number, start in enumerate(moments(corpus, BLIPS_PER_WEEK / 7), 1):
        size = 2
        while size < 8 and rng.random() < 0.5:
            size += 1
        name = f"blip-{number}"
        ends = []
        for _ in range(size):
            at = start + rng.uniform(0, 8) * MINUTE
            ends.append(at)
            pool = ONE_OFF_REPORTS + MEGATHREAD_ONE_OFF
            corpus.add(
                at,
                rng.choice(["post", "comment"]),
                rng.choice(pool),
                True,
                ["burst:blip"],
                burst=name,
            )
        corpus.bursts.append(
            {
                "name": name,
                "incident": None,
                "kind": "blip",
                "start": round(start),
                "end": round(max(ends)),
                "authors": size,
            }
        )


def make() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    corpus = Corpus(random.Random(SEED))
    ordinary(corpus)
    opened = {i["id"]: i for i in json.loads(SAMPLES.read_text())["incidents"]}
    incidents = []
    for scenario in INCIDENTS:
        real = opened[scenario.incident]
        entry = {
            "id": real["id"],
            "name": real["name"],
            "opened": round(ts(real["created_at"])),
            "impact": scenario.source,
        }
        if scenario.impact is not None and scenario.authors:
            kind = "before" if ts(scenario.impact) < ts(real["created_at"]) else "after"
            name = f"incident-{real['id']}"
            spec = Burst(
                name,
                ts(scenario.impact),
                scenario.authors,
                scenario.spread,
                scenario.products,
                scenario.models,
                scenario.errors,
                real["id"],
                kind,
            )
            burst(corpus, spec)
            entry["burst"] = name
        incidents.append(entry)
    for name, when, size, spread, products, errors in UNOFFICIAL:
        burst(
            corpus, Burst(name, ts(when), size, spread, products, (), errors, None, "no-incident")
        )
    special(corpus)
    blips(corpus)  # last, so that adding them left every earlier draw as it was
    corpus.items.sort(key=lambda item: (item["at"], item["id"]))
    header = {
        "header": __doc__.strip().splitlines(),
        "made_by": "tests/data/reports/make_corpus.py",
        "seed": SEED,
        "synthetic": True,
        "start": round(START.timestamp()),
        "end": round(END.timestamp()),
        "components": COMPONENTS,
        "incidents": incidents,
        "bursts": sorted(corpus.bursts, key=lambda b: b["start"]),
    }
    return header, corpus.items


def write() -> None:
    header, items = make()
    lines = [json.dumps(header, ensure_ascii=True, separators=(",", ":"))]
    lines += [json.dumps(item, ensure_ascii=True, separators=(",", ":")) for item in items]
    OUT.write_text("\n".join(lines) + "\n", encoding="ascii")


if __name__ == "__main__":
    write()
    print(f"wrote {OUT}")
