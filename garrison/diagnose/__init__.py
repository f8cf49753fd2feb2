"""Facts → findings: pure functions that explain why an app does not answer.

The first residents read gunicorn's error log: did the app fail to boot, and
with which exception? `garrison up` uses them to stop waiting on a slot that
can never become healthy and to quote the app's own error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# gunicorn's own lines that mean "this slot will not come up by waiting".
BOOT_FAILURE_MARKERS = (
    "Failed to find application object",
    "Application object must be callable",
    "Worker failed to boot",
    "App failed to load",
    "Exception in worker process",
    "Failed to find attribute",
    "Failed to parse",
    "Error: class uri",
    "Error while loading",
)
_EXC_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Exit|Interrupt))(?::\s*(.*))?$")
_LOG_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)+")
_GUNICORN_INTERNAL = ("gunicorn.errors.", "HaltServer", "AppImportError")


@dataclass(frozen=True)
class BootFailure:
    summary: str  # e.g. "ModuleNotFoundError: No module named 'x'"
    traceback: tuple[str, ...]  # the app's traceback, last frames first trimmed to fit


def boot_failure(log_text: str) -> BootFailure | None:
    """The app's error when gunicorn's log shows a failed boot, else None."""
    if not any(m in log_text for m in BOOT_FAILURE_MARKERS):
        return None
    lines = log_text.splitlines()
    # The first traceback after the first boot-failure marker is the app's.
    start = next((i for i, ln in enumerate(lines) if any(m in ln for m in BOOT_FAILURE_MARKERS)), 0)
    tb: list[str] = []
    summary = ""
    for ln in lines[start:]:
        if ln.startswith("Traceback (most recent call last)"):
            tb = [ln]
            continue
        if tb:
            tb.append(ln)
            m = _EXC_LINE.match(ln.strip())
            if m and not ln.startswith((" ", "\t")) and not any(g in ln for g in _GUNICORN_INTERNAL):
                summary = ln.strip()
                break
    if not summary:
        # gunicorn's own one-line errors, e.g. "Failed to find attribute 'app' in 'main'."
        for ln in lines[start:]:
            for marker in ("Failed to find application object", "Application object must be callable",
                           "Failed to find attribute", "Failed to parse", "Error: class uri", "App failed to load"):
                if marker in ln:
                    return BootFailure(summary=_LOG_PREFIX.sub("", ln).strip(), traceback=())
        return BootFailure(summary="gunicorn's workers failed to boot (see the error log)", traceback=tuple(lines[start : start + 20]))
    return BootFailure(summary=summary, traceback=tuple(tb[-20:]))


_IN_RELEASE = re.compile(r"(/\S*?/releases/[0-9TZ]+-[0-9a-f]{12})/([^\s'\":,)]+)")


def write_failure_fix(text: str) -> str | None:
    """The fix when the app failed because it writes inside its release (which is read-only):
    a PermissionError naming a path in it, or SQLite's "unable to open database file"."""
    for line in text.splitlines():
        if "Permission denied" in line or "PermissionError" in line or "Read-only file system" in line:
            m = _IN_RELEASE.search(line)
            if m:
                top = m.group(2).split("/")[0]
                return (f"the app writes {m.group(1)}/{m.group(2)}, inside its release, which is read-only: "
                        f'add "{top}" to [app] persist in garrison.toml')
    if "unable to open database file" in text or "attempt to write a readonly database" in text:
        return ("the app's SQLite database is inside its release, which is read-only: add its file "
                '(e.g. "db.sqlite3") to [app] persist in garrison.toml')
    return None


def longest_gap(fields: tuple[frozenset[int], ...], days: int = 64) -> int:
    """Seconds of the longest wait between two runs of a cron schedule (its five fields as
    the values they match), over `days` days from a Monday.

    A job that has not run for twice this long has stopped running."""
    from datetime import date, timedelta

    minute, hour, dom, month, dow = fields
    in_day = sorted(h * 60 + m for h in hour for m in minute)
    # cron: when both day fields are restricted, a day matching either one runs.
    either = len(dom) < 31 and len(dow) < 7
    start = date(2029, 1, 1)  # a Monday
    fired: list[int] = []
    for i in range(days):
        d = start + timedelta(days=i)
        weekday = (d.weekday() + 1) % 7  # cron's Sunday is 0
        runs = (d.day in dom or weekday in dow) if either else (d.day in dom and weekday in dow)
        if runs and d.month in month:
            fired += [i * 1440 + m for m in in_day]
    if len(fired) < 2:
        return 366 * 86400
    return max(b - a for a, b in zip(fired, fired[1:], strict=False)) * 60
