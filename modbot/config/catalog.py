"""The providers modbot knows by name (``modbot/data/providers.toml``).

A watch may say ``provider = "openai"`` instead of a URL and a kind: ``resolve`` turns that
into the page, the kind and the component filter, checks the filter's names against the
names the catalog knows, and says in one line why a provider cannot be read (Mistral's
page, say). Each entry also names the platform that serves the page now and the ones it
moved from, so that a later version can recognise a move. ``markdown_table`` prints the
README's Providers table, which a test keeps equal to the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from modbot.errors import ConfigError

UNSUPPORTED = "unsupported"
READABLE_KINDS = ("statuspage", "incidentio", "atom", "gcloud", "betterstack", "datadog")


@dataclass(frozen=True)
class Alternative:
    """Another way to read the same page."""

    kind: str
    url: str
    note: str = ""


@dataclass(frozen=True)
class Move:
    """A platform the page was served by before."""

    platform: str
    kind: str
    when: str


@dataclass(frozen=True)
class Provider:
    """One entry of the catalog."""

    name: str
    display_name: str
    page: str
    kind: str
    platform: str
    groups: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    open_components: bool = False
    default_components: tuple[str, ...] = ()
    samples: tuple[str, ...] = ()
    quirks: tuple[str, ...] = ()
    alternatives: tuple[Alternative, ...] = ()
    moved: tuple[Move, ...] = ()
    unsupported: str = ""
    demo_sample: str = ""  # what `modbot demo --provider` replays (a file in modbot/data)
    demo_incident: str = ""
    demo_note: str = ""  # said when the incident is from another page of the platform

    @property
    def supported(self) -> bool:
        """Whether modbot can read this provider's page."""
        return self.kind != UNSUPPORTED

    @property
    def verified(self) -> bool:
        """Whether a real response of the page, on this platform, is in tests/data."""
        return bool(self.samples)

    @property
    def standing(self) -> str:
        """``verified``, ``unverified`` or ``not supported``, for listings."""
        if not self.supported:
            return "not supported"
        return "verified" if self.verified else "unverified"

    @property
    def known_names(self) -> tuple[str, ...]:
        """Every component or group name the catalog knows for this page."""
        return self.groups + tuple(c for c in self.components if c not in self.groups)

    def unknown(self, names: Sequence[str]) -> list[str]:
        """The names in ``names`` that the catalog does not know (case-insensitively)."""
        known = {n.casefold() for n in self.known_names}
        return [n for n in names if n.casefold() not in known]


@dataclass(frozen=True)
class Resolved:
    """What a watch reads, once its provider is looked up."""

    url: str
    kind: str
    components: tuple[str, ...]
    provider: Provider | None = None
    warnings: tuple[str, ...] = field(default=())


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _provider(table: dict[str, Any]) -> Provider:
    return Provider(
        name=str(table["name"]),
        display_name=str(table["display_name"]),
        page=str(table["page"]),
        kind=str(table["kind"]),
        platform=str(table["platform"]),
        groups=_strings(table.get("groups")),
        components=_strings(table.get("components")),
        open_components=bool(table.get("open_components", False)),
        default_components=_strings(table.get("default_components")),
        samples=_strings(table.get("samples")),
        quirks=_strings(table.get("quirks")),
        alternatives=tuple(
            Alternative(str(a["kind"]), str(a["url"]), str(a.get("note", "")))
            for a in table.get("alternatives", [])
        ),
        moved=tuple(
            Move(str(m["from"]), str(m["kind"]), str(m["when"])) for m in table.get("moved", [])
        ),
        unsupported=str(table.get("unsupported", "")),
        demo_sample=str(table.get("demo", {}).get("sample", "")),
        demo_incident=str(table.get("demo", {}).get("incident", "")),
        demo_note=str(table.get("demo", {}).get("note", "")),
    )


@cache
def catalog() -> tuple[Provider, ...]:
    """Every provider of the shipped catalog, in the file's order."""
    text = resources.files("modbot").joinpath("data/providers.toml").read_text("utf-8")
    return tuple(_provider(t) for t in tomllib.loads(text)["provider"])


def names() -> list[str]:
    """The names a watch may give as ``provider``."""
    return [p.name for p in catalog()]


def lookup(name: str) -> Provider:
    """The provider called ``name``; one line listing the known names otherwise."""
    wanted = name.strip().lower()
    for provider in catalog():
        if provider.name == wanted:
            return provider
    raise ConfigError(f"unknown provider {name!r} (known: {', '.join(names())})")


def resolve(
    provider: str | None,
    url: str | None,
    kind: str | None,
    components: Sequence[str],
) -> Resolved:
    """The page, kind and component filter of a watch.

    Without ``provider`` this is the watch's own ``url`` and ``kind`` (``auto`` when not
    given). With it, ``url`` and ``kind`` default to the catalog's and override it when
    given (a mirror, a local test server). Component names are checked against the
    catalog: an unknown name is an error listing the known ones, or only a warning where
    the page's list is open (cloud products, models). Raises ``ConfigError`` with one line.
    """
    if provider is None:
        if url is None:
            raise ConfigError("url: required (or name a provider: see `modbot providers`)")
        return Resolved(url=url, kind=kind or "auto", components=tuple(components))
    entry = lookup(provider)
    warnings: tuple[str, ...] = ()
    if not entry.supported and kind is None:
        # The watch starts all the same: pages move, and a platform modbot reads may
        # serve this one tomorrow; ``auto`` keeps looking (at a slowing pace).
        kind = "auto"
        warnings = (
            f"provider {entry.name!r}: {entry.unsupported}. The watch starts anyway and "
            "keeps trying to tell which platform serves the page, in case it moves to one "
            "modbot reads",
        )
    chosen = tuple(components) or entry.default_components
    unknown = entry.unknown(chosen)
    if unknown and not entry.open_components:
        raise ConfigError(
            f"components: {', '.join(map(repr, unknown))} is not a component of "
            f"{entry.display_name} (known: {', '.join(entry.known_names)})"
        )
    if unknown:
        warnings += (
            f"components: {', '.join(map(repr, unknown))} is not among the names modbot knows "
            f"for {entry.display_name}; `modbot check --connect` lists the page's own",
        )
    return Resolved(
        url=url or entry.page,
        kind=kind or entry.kind,
        components=chosen,
        provider=entry,
        warnings=warnings,
    )


def markdown_table() -> str:
    """The README's Providers table, one row per catalog entry."""
    rows = [
        "| provider | `provider =` | page | platform | `kind` | component groups | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in catalog():
        groups = ", ".join(p.groups) if p.groups else "*(any, see `check --connect`)*"
        page = p.page.split("//", 1)[-1].rstrip("/")
        kind = f"`{p.kind}`" if p.supported else "—"
        rows.append(
            f"| {p.display_name} | `{p.name}` | {page} | {p.platform} | {kind} | "
            f"{_cell(groups)} | {p.standing} |"
        )
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def listing() -> str:
    """``modbot providers``: the catalog, one block per provider."""
    blocks = []
    for p in catalog():
        lines = [f"{p.name}: {p.display_name} [{p.standing}]"]
        if p.supported:
            lines.append(f"  page:      {p.page}")
            lines.append(f"  kind:      {p.kind} ({p.platform})")
        else:
            lines.append(f"  page:      {p.page} ({p.platform})")
            lines.append(f"  NOT SUPPORTED YET: {p.unsupported}")
        if p.known_names:
            more = " (and others: the page's list changes)" if p.open_components else ""
            lines.append(f"  components: {', '.join(p.known_names)}{more}")
        for move in p.moved:
            lines.append(f"  moved from: {move.platform} ({move.when})")
        for alternative in p.alternatives:
            lines.append(f"  or:        kind {alternative.kind} at {alternative.url}")
        lines.extend(f"  - {quirk}" for quirk in p.quirks)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
