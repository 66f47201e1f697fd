"""modbot: keeps one comment per status-page incident in a subreddit's megathread."""

__version__ = "0.1.0"
