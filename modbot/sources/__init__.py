"""Status sources: one module per vendor, the shared HTTP fetcher, and auto-detection."""
