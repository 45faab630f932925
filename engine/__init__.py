"""wpk's engine: load, validate, compile and run runbook packages."""
