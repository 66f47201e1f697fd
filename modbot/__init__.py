"""modbot: keeps one comment per status-page incident in a subreddit's megathread."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__version__ = "0.1.0"


def default_templates_dir() -> Path:
    """The templates shipped with modbot (inside a wheel, or in the checkout)."""
    from pathlib import Path  # noqa: PLC0415 - `modbot --help` does without

    packaged = Path(__file__).with_name("templates")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"
