"""Which environment variables a step may set: the one rule shared by the validator and shell.run.

Kept apart from the shell adapter so that `wpk validate` can apply it without importing trio.
"""

from __future__ import annotations

FORBIDDEN_ENV: frozenset[str] = frozenset(
    {
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "BASH_ENV",
        "ENV",
        "IFS",
        "PS4",
        "PROMPT_COMMAND",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYOPT",
        "NODE_OPTIONS",
        "SHELLOPTS",
        "BASHOPTS",
        "GCONV_PATH",
        "GLOBIGNORE",
        "CDPATH",
        "PATH_LOCALE",
        "HOSTALIASES",
        "GLIBC_TUNABLES",  # CVE-2023-4911 ("Looney Tunables"), and it changes how glibc behaves
        "OPENSSL_CONF",  # loads engines/providers: code from a path of the caller's choosing
        "OPENSSL_ENGINES",
        "OPENSSL_MODULES",
        "PYTHONHOME",  # another standard library for every Python the step starts
        "PYTHONINSPECT",
        "PYTHONUSERBASE",
        "PYTHONBREAKPOINT",
        "PYTHONWARNINGS",  # imports the warning category's module
        "JAVA_TOOL_OPTIONS",  # -javaagent: code in every JVM
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "GIT_SSH_COMMAND",
        "GIT_EXEC_PATH",
        "GIT_CONFIG_GLOBAL",
        "SSH_ASKPASS",
        "LESSOPEN",
        "MALLOC_CONF",
        "TZDIR",
        "LOCPATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "BROWSER",
        "EDITOR",
        "VISUAL",
        "PAGER",
    }
)
"""Variables a step's `env` may not set: they change how programs load or how shells start."""

_FORBIDDEN_PREFIXES = ("LD_", "DYLD_", "WPK_SECRET_")

RESERVED_ENV: frozenset[str] = frozenset(
    {
        "WPK_IDEMPOTENCY_KEY",
        "WPK_EXECUTION_ID",
        "WPK_STEP_ID",
        "WPK_ATTEMPT",
        "WPK_DRY_RUN",
        "WPK_STEP_PROCESS",
    }
)
"""Set by wpk from the step context; a step cannot override them (the idempotency key must be ours)."""


def forbidden_env_key(name: str) -> bool:
    """Whether a step's `env` may not set `name` (shared with the validator)."""
    return name in FORBIDDEN_ENV or name in RESERVED_ENV or name.startswith(_FORBIDDEN_PREFIXES)
