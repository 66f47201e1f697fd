"""Which of readers' posts and comments report an outage: a transparent rule set.

The rules are data (``modbot/data/report_rules.toml``, read by ``config.reportrules``):

- *groups* of terms: outage phrases, symptoms, "down", context words ("anyone else",
  "right now"), error codes and error names vendors return, vendor names, and the
  noise that vetoes a weak match (a reader's own rate limit, their own setup, the
  model's quality, "works for me"). Each term has a fixed label and the phrases that
  name it. A group may hide its terms inside *masks* ("dumbed down", "shut down" are
  not "down"), and a number may count only *near* one of the group's context words
  ("500" near "error", "http", "status"..., never in "500 lines of code");
- the *product* group is built from the watch's components (``products_for``) plus
  the names readers use for them;
- *rules* combine groups: all of ``all``, at least one of ``any``, none of ``unless``.
  The first rule that holds decides, and its label says why.

A classification carries only labels from the rules and the watch's component names:
nothing a reader wrote can come out of it. ``explain`` shows every group and rule, for
``modbot reports explain``; ``classify`` is its verdict, so the two never disagree.

Pure: no I/O.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from modbot.core.readertext import LIMIT, normalise

_WORD = re.compile(r"\S+")

PRODUCT = "product"  # the group made from the watch's components
ERROR_GROUPS = ("error-code", "error-name")  # groups whose labels a report names as errors


@dataclass(frozen=True)
class Term:
    """One thing a text can name: its fixed label, and the phrases that name it."""

    label: str
    phrases: tuple[str, ...]
    bare: bool = True  # False: its phrases that are plain numbers count only near one of
    # its group's ``near`` words ("500" near "error"; "500s" is never a price)


@dataclass(frozen=True)
class Group:
    """Terms of one kind, e.g. the error codes."""

    name: str
    terms: tuple[Term, ...]
    masks: tuple[str, ...] = ()  # phrases in which these terms mean something else
    near: tuple[str, ...] = ()  # words a term that is not ``bare`` must be near
    within: int = 3  # ... at most this many words away

    def adding(self, terms: Iterable[Term]) -> Group:
        """This group with ``terms`` added (a term with a label already here replaces it)."""
        new = {t.label: t for t in terms}
        kept = tuple(t for t in self.terms if t.label not in new)
        return replace(self, terms=kept + tuple(new.values()))

    def removing(self, labels: Iterable[str]) -> Group:
        """This group without the terms labelled ``labels``."""
        gone = set(labels)
        return replace(self, terms=tuple(t for t in self.terms if t.label not in gone))


@dataclass(frozen=True)
class Rule:
    """A text is a report by this rule when every group of ``all`` matched, at least one
    of ``any`` (if any are named), and none of ``unless``."""

    label: str
    all: tuple[str, ...]
    any: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportRules:
    """The whole rule set. Frozen and hashable: a watch's overrides make a new one."""

    groups: tuple[Group, ...]
    rules: tuple[Rule, ...]
    products: tuple[Term, ...] = ()  # known products and what readers call them
    limit: int = LIMIT  # characters read from one text

    def group(self, name: str) -> Group | None:
        """The group named ``name``."""
        return next((g for g in self.groups if g.name == name), None)

    def with_group(self, group: Group) -> ReportRules:
        """These rules with ``group`` in place of the one of its name (or added)."""
        if self.group(group.name) is None:
            return replace(self, groups=(*self.groups, group))
        return replace(
            self, groups=tuple(group if g.name == group.name else g for g in self.groups)
        )

    def with_products(self, products: Iterable[Term]) -> ReportRules:
        """These rules knowing ``products`` too (a product of the same label is replaced)."""
        new = {p.label: p for p in products}
        kept = tuple(p for p in self.products if p.label not in new)
        return replace(self, products=kept + tuple(new.values()))

    def labels(self, components: Sequence[str] = ()) -> frozenset[str]:
        """Every label a classification with these rules can carry."""
        terms = [t for g in self.groups for t in g.terms] + list(
            products_for(self, tuple(components))
        )
        return frozenset([t.label for t in terms] + [r.label for r in self.rules])


@dataclass(frozen=True)
class Classification:
    """The verdict on one text: labels only, never the text."""

    rule: str | None  # the label of the rule that made it a report; None: not a report
    errors: tuple[str, ...] = ()  # error codes and names it names (when a report)
    products: tuple[str, ...] = ()  # products it names (when a report)

    @property
    def is_report(self) -> bool:
        return self.rule is not None


@dataclass(frozen=True)
class GroupMatch:
    """Which terms of one group a text names."""

    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class RuleCheck:
    """Why one rule holds for a text or not."""

    rule: Rule
    missing: tuple[str, ...]  # groups of ``all`` that did not match
    none_of_any: bool  # ``any`` names groups and none matched
    vetoed_by: tuple[str, ...]  # groups of ``unless`` that matched

    @property
    def holds(self) -> bool:
        return not self.missing and not self.none_of_any and not self.vetoed_by


@dataclass(frozen=True)
class Explanation:
    """Everything that went into one verdict."""

    verdict: Classification
    groups: tuple[GroupMatch, ...]
    checks: tuple[RuleCheck, ...]
    read: int  # characters read
    length: int  # characters in the text


def classify(text: str, rules: ReportRules, components: Sequence[str] = ()) -> Classification:
    """Whether ``text`` is an outage report, by which rule, naming which errors and products."""
    return explain(text, rules, components).verdict


def explain(text: str, rules: ReportRules, components: Sequence[str] = ()) -> Explanation:
    """Every group and rule checked against ``text``, and the verdict."""
    matcher = _matcher(rules, tuple(components))
    read = normalise(text, rules.limit)
    found = {g.name: g.match(read.words) for g in matcher.groups}
    groups = tuple(GroupMatch(name, labels) for name, labels in found.items())
    checks = tuple(_check(rule, found) for rule in rules.rules)
    deciding = next((c.rule for c in checks if c.holds), None)
    if deciding is None:
        verdict = Classification(None)
    else:
        errors = tuple(label for name in ERROR_GROUPS for label in found.get(name, ()))
        verdict = Classification(deciding.label, errors, found.get(PRODUCT, ()))
    return Explanation(verdict, groups, checks, read.read, read.length)


def _check(rule: Rule, found: dict[str, tuple[str, ...]]) -> RuleCheck:
    return RuleCheck(
        rule=rule,
        missing=tuple(g for g in rule.all if not found.get(g)),
        none_of_any=bool(rule.any) and not any(found.get(g) for g in rule.any),
        vetoed_by=tuple(g for g in rule.unless if found.get(g)),
    )


def products_for(rules: ReportRules, components: tuple[str, ...]) -> tuple[Term, ...]:
    """The product terms for a watch: each component under its own name, also named by
    what readers call it (the rules' products whose names match it); without components,
    the rules' products as they are."""
    if not components:
        return rules.products
    terms = []
    for component in components:
        short = re.sub(r"\([^)]*\)", " ", component)  # "Claude API (api.anthropic.com)"
        keys = {normalise(component).words, normalise(short).words} - {""}
        phrases = [component, short]
        for known in rules.products:
            names = {normalise(p).words for p in (known.label, *known.phrases)}
            if names & keys:
                phrases += known.phrases
        terms.append(Term(component, tuple(dict.fromkeys(p for p in phrases if p.strip()))))
    return tuple(terms)


@dataclass(frozen=True)
class _CompiledGroup:
    name: str
    pattern: re.Pattern[str] | None  # None: the group has no phrases
    masks: re.Pattern[str] | None
    terms: dict[str, tuple[int, Term]]  # normalised phrase -> (its term's place, term)
    near: frozenset[str]
    within: int

    def match(self, words: str) -> tuple[str, ...]:
        """The labels of the terms ``words`` names, in the group's order."""
        if self.pattern is None:
            return ()
        if self.masks is not None:
            words = self.masks.sub(" | ", words)
        words_at: tuple[list[int], list[str]] | None = None  # where each word starts, and it
        seen: dict[int, str] = {}
        for found in self.pattern.finditer(words):
            place, term = self.terms[found.group(0)]
            if place in seen:
                continue
            if not term.bare and found.group(0).isdigit():
                if words_at is None:
                    words_at = ([m.start() for m in _WORD.finditer(words)], words.split())
                if not self._is_near(*words_at, found):
                    continue
            seen[place] = term.label
        return tuple(dict.fromkeys(seen[p] for p in sorted(seen)))

    def _is_near(self, starts: list[int], words: list[str], found: re.Match[str]) -> bool:
        first = bisect.bisect_left(starts, found.start())
        after = bisect.bisect_left(starts, found.end())  # the first word after the phrase
        around = words[max(0, first - self.within) : first] + words[after : after + self.within]
        return not self.near.isdisjoint(around)


@dataclass(frozen=True)
class _Matcher:
    groups: tuple[_CompiledGroup, ...]


@functools.lru_cache(maxsize=64)
def _matcher(rules: ReportRules, components: tuple[str, ...]) -> _Matcher:
    """The rules compiled once per rule set and component list."""
    groups = [g for g in rules.groups if g.name != PRODUCT]
    groups.append(Group(PRODUCT, products_for(rules, components), _product_masks(rules)))
    return _Matcher(tuple(_compile(g) for g in groups))


def _product_masks(rules: ReportRules) -> tuple[str, ...]:
    """Masks of a ``product`` group in the rules file apply to the built one."""
    group = rules.group(PRODUCT)
    return group.masks if group is not None else ()


def _compile(group: Group) -> _CompiledGroup:
    terms: dict[str, tuple[int, Term]] = {}
    for place, term in enumerate(group.terms):
        for phrase in term.phrases:
            words = normalise(phrase).words
            if words and words not in terms:
                terms[words] = (place, term)
    masks = [normalise(m).words for m in group.masks]
    return _CompiledGroup(
        name=group.name,
        pattern=_alternation(terms),
        masks=_alternation([m for m in masks if m]),
        terms=terms,
        near=frozenset(normalise(n).words for n in group.near),
        within=group.within,
    )


def _alternation(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """Whole words only; the longest phrase first, so "overloaded_error" wins over
    "overloaded" at the same place."""
    ordered = sorted(set(phrases), key=lambda p: (-len(p), p))
    if not ordered:
        return None
    return re.compile(r"(?<!\S)(?:" + "|".join(map(re.escape, ordered)) + r")(?!\S)")


def describe(explanation: Explanation, components: Sequence[str] = ()) -> str:
    """What ``modbot reports explain`` prints: the verdict, every group, every rule."""
    verdict = explanation.verdict
    lines = [
        f"a report, by the rule {verdict.rule!r}" if verdict.is_report else "not a report",
        f"read {explanation.read} of {explanation.length} characters",
    ]
    if verdict.is_report:
        lines.append(f"names errors: {', '.join(verdict.errors) or '-'}")
        lines.append(f"names products: {', '.join(verdict.products) or '-'}")
    if components:
        lines.append(f"products from the watch's components: {', '.join(components)}")
    lines += ["", "groups (what the text names):"]
    width = max((len(g.name) for g in explanation.groups), default=0)
    for group in explanation.groups:
        found = ", ".join(group.labels) if group.labels else "-"
        lines.append(f"  {'yes' if group.labels else 'no ':<4}{group.name:<{width}}  {found}")
    lines += ["", "rules (the first that holds decides):"]
    width = max((len(c.rule.label) for c in explanation.checks), default=0)
    for check in explanation.checks:
        lines.append(f"  {_state(check):<8}{check.rule.label:<{width}}  {_why(check)}")
    return "\n".join(lines)


def _state(check: RuleCheck) -> str:
    if check.holds:
        return "holds"
    return "vetoed" if check.vetoed_by and not check.missing and not check.none_of_any else "-"


def _why(check: RuleCheck) -> str:
    rule = check.rule
    needs = " + ".join(rule.all)
    if rule.any:
        needs += f" + one of ({', '.join(rule.any)})"
    parts = [f"needs {needs}"]
    if rule.unless:
        parts.append(f"unless {', '.join(rule.unless)}")
    if check.missing:
        parts.append(f"missing {', '.join(check.missing)}")
    if check.none_of_any:
        parts.append(f"none of ({', '.join(rule.any)})")
    if check.vetoed_by:
        parts.append(f"vetoed by {', '.join(check.vetoed_by)}")
    return "; ".join(parts)
