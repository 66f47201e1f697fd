"""The shell: polling, delivering, the inbox, wiki templates and moderator operations."""
