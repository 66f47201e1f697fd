"""The labelled corpus of readers' posts: it is what its header says, its generator
makes it byte for byte, and the report rules and surge detector meet the issue's
targets on it (the figures ``python -m bench.reports`` prints)."""

from __future__ import annotations

import json
import statistics

import pytest

from bench import reports as bench
from modbot.config.reportrules import shipped_rules
from modbot.core.surge import SurgeSettings
from tests.data.reports import make_corpus


@pytest.fixture(scope="module")
def corpus() -> bench.Corpus:
    return bench.load()


@pytest.fixture(scope="module")
def classified(corpus: bench.Corpus) -> tuple[bench.Scores, bench.Seen]:
    return bench.classified(corpus, shipped_rules())


@pytest.fixture(scope="module")
def outcome(corpus: bench.Corpus, classified: tuple[bench.Scores, bench.Seen]) -> bench.Outcome:
    settings = SurgeSettings()
    notices = bench.replay(corpus, classified[1], settings, interval=30.0, lag=30.0)
    return bench.judge(corpus, notices, settings)


def test_the_header_says_it_is_synthetic_and_how_it_was_made(corpus: bench.Corpus) -> None:
    header = corpus.header
    assert header["synthetic"] is True
    assert header["made_by"] == "tests/data/reports/make_corpus.py"
    assert any("SYNTHETIC" in line for line in header["header"])
    assert len(header["incidents"]) == 25
    kinds = {b["kind"] for b in header["bursts"]}
    assert {"before", "after", "no-incident", "blip", "brigade", "one-author"} <= kinds
    assert any("burst" not in i for i in header["incidents"])  # incidents with no burst
    assert corpus.days > 28  # weeks of baseline


def test_the_generator_makes_the_file_byte_for_byte() -> None:
    header, items = make_corpus.make()
    lines = [json.dumps(header, ensure_ascii=True, separators=(",", ":"))]
    lines += [json.dumps(item, ensure_ascii=True, separators=(",", ":")) for item in items]
    assert "\n".join(lines) + "\n" == bench.CORPUS.read_text(encoding="ascii")


def test_it_holds_the_noise_and_the_hostile_text(corpus: bench.Corpus) -> None:
    tags = {tag for item in corpus.items for tag in item["tags"]}
    assert {"noise:rate-limit", "noise:down-sense", "noise:quality", "noise:help"} <= tags
    hostile = {t.split(":", 1)[1] for t in tags if t.startswith("hostile:")}
    assert {"markdown", "mention", "link", "zero-width", "lookalike", "40kb"} <= hostile
    assert max(len(item["text"]) for item in corpus.items) >= 40_000
    assert bench.CORPUS.stat().st_size < 4_000_000


def test_classification_meets_its_targets(classified: tuple[bench.Scores, bench.Seen]) -> None:
    scores, _ = classified
    assert scores.precision >= bench.TARGETS["precision"]
    assert scores.recall >= bench.TARGETS["recall"]


def test_early_notices_meet_their_targets(corpus: bench.Corpus, outcome: bench.Outcome) -> None:
    assert statistics.median(outcome.ahead) >= bench.TARGETS["median lead"]
    assert outcome.false_per_30_days <= bench.TARGETS["false per 30 days"]
    assert outcome.bursts_noticed_twice == 0
    # The brigade of day-old accounts and the one reader posting a dozen times are
    # not surges.
    fake = {b["name"] for b in corpus.header["bursts"] if b["kind"] in ("brigade", "one-author")}
    assert not any(n.burst in fake for n in outcome.notices)


def test_the_report_marks_what_only_the_pipeline_can_measure(
    corpus: bench.Corpus, classified: tuple[bench.Scores, bench.Seen]
) -> None:
    settings = SurgeSettings()
    outcome = bench.judge(
        corpus, bench.replay(corpus, classified[1], settings, 30.0, 30.0), settings
    )
    rows = {name: value for name, value, _ in bench.rows(classified[0], outcome, corpus.days)}
    for name, _ in bench.PIPELINE_ROWS:
        assert rows[name] == bench.NOT_MEASURED
