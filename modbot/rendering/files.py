"""Moderators' template files: reading a folder of them, and noticing when it changed."""

from __future__ import annotations

from pathlib import Path

from modbot import default_templates_dir
from modbot.core.render import OPTIONAL_TEMPLATES, TEMPLATE_NAMES, Templates
from modbot.errors import TemplateError


def read_templates(folder: Path) -> Templates:
    """Read the template files in ``folder``; a missing or unreadable one is an error."""
    sources = []
    for name in TEMPLATE_NAMES:
        path = folder / name
        if name in OPTIONAL_TEMPLATES and not path.exists():
            path = default_templates_dir() / name
        try:
            sources.append((name, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{path}: cannot read ({exc})") from exc
    return Templates(origin=str(folder), sources=tuple(sources))


def folder_stamp(folder: Path) -> tuple[tuple[str, float, int], ...]:
    """Modification time and size of each template file: cheap change detection."""
    entries = []
    for name in TEMPLATE_NAMES:
        try:
            stat = (folder / name).stat()
        except OSError:
            entries.append((name, 0.0, -1))
        else:
            entries.append((name, stat.st_mtime, stat.st_size))
    return tuple(entries)
