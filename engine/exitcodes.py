"""The exit codes of every `wpk` command (DESIGN §8), in one place that each command module imports.

0 success; 1 invalid (validate) or a run that did not complete (failed, rolled back, cancelled);
2 a usage error, or a package or parameters that cannot run (nothing was run); 3 a dry-run whose
outcome is unknown (it depends on simulated changes: neither "will pass" nor "will fail"); 70 an internal
error (a bug in wpk; the message says so); 130 interrupted (Ctrl-C, after rollback).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
