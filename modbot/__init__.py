"""modbot: keeps one comment per status-page incident in a subreddit's megathread."""

from pathlib import Path

__version__ = "0.1.0"


def default_templates_dir() -> Path:
    """The templates shipped with modbot (inside a wheel, or in the checkout)."""
    packaged = Path(__file__).with_name("templates")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"
