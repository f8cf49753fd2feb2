"""The one exception hierarchy of Garrison and its exit codes.

The library raises these; only the CLI prints them (one line each) and exits
with `exit_code`. Anything else escaping to the CLI is a bug and is reported
as such, with a traceback.
"""

from __future__ import annotations


class GarrisonError(Exception):
    """Base class: a failure the user can act on, described in one line."""

    exit_code = 1


class ConfigError(GarrisonError):
    """garrison.toml (or [tool.garrison]) is missing or invalid."""

    exit_code = 2


class DetectError(GarrisonError):
    """`garrison init` could not find the app's entry point."""

    exit_code = 2


class HostError(GarrisonError):
    """The host cannot be made into a server (wrong OS, not root, apt failed)."""

    exit_code = 3


class CommandFailed(HostError):
    """A command run on a host exited non-zero."""

    def __init__(self, argv: tuple[str, ...], returncode: int, stdout: str, stderr: str):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        last = (stderr.strip() or stdout.strip()).splitlines()
        detail = last[-1] if last else "no output"
        super().__init__(f"`{' '.join(argv)}` exited {returncode}: {detail}")


class DeployError(GarrisonError):
    """A release could not be brought up; what serves traffic was left alone."""

    exit_code = 4


class LockHeld(GarrisonError):
    """Another deploy of the same app is running on the host."""

    exit_code = 5
