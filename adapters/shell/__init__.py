"""The shell adapter family (`shell.run`): the adapter and its process groups (`process`).
The env rule it shares with the validator lives in `wpk.adapters.guards.envpolicy`.
"""

from ..guards.envpolicy import FORBIDDEN_ENV, forbidden_env_key
from .adapter import MAX_ARG_BYTES, ShellAdapter

__all__ = ["FORBIDDEN_ENV", "MAX_ARG_BYTES", "ShellAdapter", "forbidden_env_key"]
