"""The command string sshd runs: the only place that turns an argv into remote shell text.

sshd hands one string to the login shell, so every word is shlex-quoted once
here; environment variables travel as `env -- K=V` words (sshd's own
environment passing needs AcceptEnv, which servers rarely allow). The file
and lock primitives are constant scripts run through `script_argv`: their
data only ever arrives as positional parameters, never as script text.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from garrison.hosts.local import HOST_PATH  # the same PATH for commands as the local executor

DEFAULT_LOCALE = "C.UTF-8"
TIMEOUT_RC = 124  # what LocalExecutor (and coreutils `timeout`) report for a timeout
TIMEOUT_GRACE = 5.0  # seconds between TERM and KILL for a timed-out command


def command_line(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    sudo: bool = False,
    timeout: float | None = None,
) -> str:
    """The string sshd runs for argv: `[sudo -n --] [timeout ...] env -- PATH=… LC_ALL=… K=V argv…`.

    Each word is quoted once with shlex.quote, so any argv round-trips
    through the remote login shell unchanged.
    """
    return " ".join(shlex.quote(word) for word in command_argv(argv, env, sudo=sudo, timeout=timeout))


def command_argv(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    sudo: bool = False,
    timeout: float | None = None,
) -> tuple[str, ...]:
    """The full remote argv (before quoting); see command_line."""
    argv = tuple(argv)
    if not argv:
        raise ValueError("empty argv")
    for word in argv:
        if not isinstance(word, str):
            raise TypeError(f"argv words must be str, got {word!r}")
        if "\0" in word:
            raise ValueError(f"argv word contains a NUL byte: {word!r}")
    if "=" in argv[0]:
        # `env` would take it for an assignment, not the program to run.
        raise ValueError(f"program name may not contain '=': {argv[0]!r}")
    full_env = {"PATH": HOST_PATH, "LC_ALL": DEFAULT_LOCALE}
    for key, value in (env or {}).items():
        if not key or not (key[0].isalpha() or key[0] == "_") or not all(c.isalnum() or c == "_" for c in key):
            raise ValueError(f"invalid environment variable name: {key!r}")
        if "\0" in value:
            raise ValueError(f"environment value for {key} contains a NUL byte")
        full_env[key] = value
    words: list[str] = []
    if sudo:
        words += ["sudo", "-n", "--"]
    if timeout is not None:
        # Enforced on the host: the command (and its process group) really stops.
        words += ["timeout", "-k", fmt_seconds(TIMEOUT_GRACE), fmt_seconds(timeout)]
    words += ["env", "--", *(f"{k}={v}" for k, v in full_env.items()), *argv]
    return tuple(words)


def script_argv(script: str, *args: str) -> tuple[str, ...]:
    """argv that runs a constant script with args as $1, $2, ... (`garrison` is its $0)."""
    return ("sh", "-c", script, "garrison", *args)


def fmt_seconds(value: float) -> str:
    """A positive number of seconds as `timeout` takes it: 1.5, 30 (no trailing zeros)."""
    if value <= 0:
        raise ValueError(f"timeout must be positive, got {value}")
    return f"{value:.3f}".rstrip("0").rstrip(".")
