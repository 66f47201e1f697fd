"""Watches: one status source posting into one subreddit's megathread.

For now one watch, ``default``, defined by the ``MODBOT_`` settings. Its name keys
everything the store keeps about it; a dry run keeps its own scope, so printing
comments never counts as having posted them.
"""

from __future__ import annotations

from modbot.records import PageInfo

DEFAULT_WATCH = "default"


def watch_scope(name: str, dry_run: bool) -> str:
    """The store key of a watch; a dry run keeps its own baseline and comments."""
    return f"dry-run:{name}" if dry_run else name


def default_page(url: str) -> PageInfo:
    """What comments name as their page before the feed has named itself."""
    return PageInfo(name=url.split("//", 1)[-1].rstrip("/"), url=url.rstrip("/"))
