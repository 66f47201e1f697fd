"""The pure core: records, feed snapshots, diffing, the delivery state machine, the
planner, escaping, and templates as data. No I/O, no clock."""
