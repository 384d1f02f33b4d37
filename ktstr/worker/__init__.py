"""The pull worker: register, heartbeat, claim, run a cell through a ``CellRunner``,
persist the result, upload it, repeat."""
