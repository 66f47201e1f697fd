"""Reddit: the asyncpraw client, the dry-run printer and the one-shot OAuth listener."""
