"""The report rules as data: the shipped file, and a watch's changes to it.

The shipped rules are ``modbot/data/report_rules.toml`` (its header says how they
read). A watch changes them with a table of the same group names (the watches file
will carry it as ``report_rules``)::

    [watch.report_rules.error-name]
    add = [{ label = "Claude will return soon", phrases = ["claude will return soon"] }]
    remove = ["Something went wrong"]
    masks = ["something went wrong with my code"]

    [watch.report_rules.products]
    add = [{ label = "Claude Code", phrases = ["claude code", "cc", "the cli"] }]

``add`` extends a group (a term with a label already there replaces it), ``remove``
drops terms by label, ``masks`` adds masks; a group the rules do not have yet is
created by ``add``. Every mistake is one line naming the file (or watch) and the key.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import replace
from importlib import resources
from typing import Any

from modbot.core.readertext import normalise
from modbot.core.reports import PRODUCT, Group, ReportRules, Rule, Term
from modbot.errors import ConfigError

SHIPPED = "data/report_rules.toml"
VERSION = 1
MAX_LABEL = 60
_TOP = frozenset({"version", "read_limit", "rules", "groups", "products"})
_GROUP = frozenset({"terms", "masks", "near", "within"})
_RULE = frozenset({"label", "all", "any", "unless"})
_TERM = frozenset({"label", "phrases", "bare"})
_CHANGE = frozenset({"add", "remove", "masks"})


@functools.cache
def shipped_rules() -> ReportRules:
    """The rules that come with modbot."""
    text = resources.files("modbot").joinpath(SHIPPED).read_text("utf-8")
    return parse_rules(text, SHIPPED)


def parse_rules(text: str, where: str) -> ReportRules:
    """Rules from the text of a rules file; ``where`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from exc
    _known(data, _TOP, where)
    if data.get("version") != VERSION:
        raise ConfigError(f"{where}: version: must be {VERSION}")
    limit = data.get("read_limit", 4096)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 256 <= limit <= 65536:
        raise ConfigError(f"{where}: read_limit: a number of characters from 256 to 65536")
    groups = _table(data.get("groups", {}), f"{where}: groups")
    parsed = tuple(_group(name, spec, f"{where}: groups.{name}") for name, spec in groups.items())
    rules = tuple(
        _rule(spec, f"{where}: rules #{n}") for n, spec in enumerate(_list(data, "rules", where), 1)
    )
    products = tuple(
        _term(spec, f"{where}: products #{n}")
        for n, spec in enumerate(_list(data, "products", where), 1)
    )
    result = ReportRules(groups=parsed, rules=rules, products=products, limit=limit)
    _check_references(result, where)
    return result


def with_changes(rules: ReportRules, changes: object, where: str) -> ReportRules:
    """``rules`` with a watch's changes (see the module's docstring)."""
    for name, spec in _table(changes, where).items():
        at = f"{where}: {name}"
        change = _table(spec, at)
        _known(change, _CHANGE, at)
        add = [_term(t, f"{at}: add #{n}") for n, t in enumerate(_list(change, "add", at), 1)]
        remove = _strings(change.get("remove", []), f"{at}: remove")
        masks = _phrases(change.get("masks", []), f"{at}: masks")
        if name == "products":
            if masks:
                raise ConfigError(f"{at}: masks: belong to groups, not to products")
            kept = tuple(p for p in rules.products if p.label not in set(remove))
            rules = replace(rules, products=kept).with_products(add)
            continue
        group = rules.group(name) or Group(name, ())
        group = group.removing(remove).adding(add)
        rules = rules.with_group(replace(group, masks=group.masks + masks))
    _check_references(rules, where)
    return rules


def _group(name: str, spec: object, where: str) -> Group:
    table = _table(spec, where)
    _known(table, _GROUP, where)
    within = table.get("within", 3)
    if isinstance(within, bool) or not isinstance(within, int) or not 1 <= within <= 10:
        raise ConfigError(f"{where}: within: a number of words from 1 to 10")
    near = _phrases(table.get("near", []), f"{where}: near")
    for word in near:
        if " " in normalise(word).words:
            raise ConfigError(f"{where}: near: {word!r}: one word each")
    terms = tuple(
        _term(t, f"{where}: terms #{n}") for n, t in enumerate(_list(table, "terms", where), 1)
    )
    if any(not t.bare for t in terms) and not near:
        raise ConfigError(f"{where}: near: needed by its terms with bare = false")
    labels = [t.label for t in terms]
    for label in labels:
        if labels.count(label) > 1:
            raise ConfigError(f"{where}: terms: label {label!r} used twice")
    masks = _phrases(table.get("masks", []), f"{where}: masks")
    return Group(name, terms, masks, near, within)


def _rule(spec: object, where: str) -> Rule:
    table = _table(spec, where)
    _known(table, _RULE, where)
    label = _label(table.get("label"), f"{where}: label")
    groups = {
        key: _strings(table.get(key, []), f"{where}: {key}") for key in ("all", "any", "unless")
    }
    if not groups["all"]:
        raise ConfigError(f"{where}: all: name at least one group")
    return Rule(label, groups["all"], groups["any"], groups["unless"])


def _term(spec: object, where: str) -> Term:
    if isinstance(spec, str):
        label = _label(spec, where)
        return Term(label, _phrases([spec], where))
    table = _table(spec, where)
    _known(table, _TERM, where)
    label = _label(table.get("label"), f"{where}: label")
    phrases = _phrases(table.get("phrases", [label]), f"{where}: phrases")
    bare = table.get("bare", True)
    if not isinstance(bare, bool):
        raise ConfigError(f"{where}: bare: true or false")
    return Term(label, phrases, bare)


def _check_references(rules: ReportRules, where: str) -> None:
    known = {g.name for g in rules.groups} | {PRODUCT}
    for rule in rules.rules:
        for name in (*rule.all, *rule.any, *rule.unless):
            if name not in known:
                raise ConfigError(f"{where}: rule {rule.label!r}: no group named {name!r}")
    labels = [r.label for r in rules.rules]
    for label in labels:
        if labels.count(label) > 1:
            raise ConfigError(f"{where}: rules: label {label!r} used twice")


def _label(value: object, where: str) -> str:
    # Labels are what comments show: short, one line, printable.
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: a non-empty string")
    if len(value) > MAX_LABEL or not value.isprintable():
        raise ConfigError(f"{where}: {MAX_LABEL} printable characters at most")
    return value.strip()


def _phrases(value: object, where: str) -> tuple[str, ...]:
    phrases = _strings(value, where)
    for phrase in phrases:
        if not normalise(phrase).words:
            raise ConfigError(f"{where}: {phrase!r} has no letters or digits")
    return phrases


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: a list of strings")
    return tuple(value)


def _list(table: dict[str, Any], key: str, where: str) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key}: a list")
    return value


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: a table")
    return value


def _known(table: dict[str, Any], keys: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - keys)
    if unknown:
        raise ConfigError(f"{where}: {unknown[0]}: unknown key (known: {', '.join(sorted(keys))})")
