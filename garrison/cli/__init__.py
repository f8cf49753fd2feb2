"""Command line: argument parsing and output only, and the one error boundary.

Exit codes: 0 success; 1 unexpected failure (a bug: traceback shown);
2 bad config or input; 3 host cannot be prepared; 4 deploy failed (what
served traffic was left serving); 5 another deploy holds the lock;
130 interrupted.

local.py holds `main` and the commands for this machine; remote.py registers
the [[hosts]] variants (deploy, rollback, status, logs over SSH, provision) on it.
"""

from garrison.cli import remote
from garrison.cli.local import main

__all__ = ["main", "remote"]
