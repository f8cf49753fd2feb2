"""Deploys under load, side by side in one run: Garrison's blue/green cut-over
versus the tutorial's way (restart the service), plus how long a code-only
deploy, a deploy with new requirements and a rollback take.

    sudo .venv/bin/python bench/deploy.py [--rounds 3]

Deploys a small app `benchapp` (Host bench.test) on this machine with the
real `garrison` CLI, drives it with a bounded load through nginx on
loopback, and writes its section of docs/benchmarks.md. Removes the app at
the end. Needs root (like `garrison up`).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.loadgen import Load, get  # noqa: E402

HOST = "bench.test"
CONFIG = """[app]
name = "benchapp"
entry = "main:app"
health_path = "/healthz"

[server]
names = ["bench.test"]

[gunicorn]
workers = 2
"""
APP = '''from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "{version}"


@app.get("/healthz")
def healthz():
    return "ok"
'''
BEGIN, END = "<!-- deploy:begin -->", "<!-- deploy:end -->"


def garrison(*args: str, cwd: Path) -> float:
    t0 = time.monotonic()
    proc = subprocess.run((sys.executable, "-m", "garrison", *args), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"garrison {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.monotonic() - t0


def write(app: Path, version: str, extra_req: str = "") -> None:
    (app / "garrison.toml").write_text(CONFIG)
    (app / "main.py").write_text(APP.format(version=version))
    (app / "requirements.txt").write_text("flask>=3.0\n" + extra_req)


def naive_restart() -> float:
    """What the tutorial does on a new release: restart the one service."""
    conf = "/etc/garrison/supervisord.conf"
    slot = "green" if "green.sock" in Path("/etc/nginx/garrison/benchapp.upstream.conf").read_text() else "blue"
    t0 = time.monotonic()
    subprocess.run(("/opt/garrison/venv/bin/supervisorctl", "-c", conf, "restart", f"benchapp-{slot}"), check=True,
                   capture_output=True)
    # Until it answers again: the tutorial's reader would wait for this too.
    while get("/", HOST) is None or get("/", HOST)[0] != 200:
        time.sleep(0.05)
    return time.monotonic() - t0


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/deploy.py deploys with `garrison up`: run it as root")
    rows: dict[str, list[float]] = {k: [] for k in (
        "garrison failed", "garrison requests", "restart failed", "restart requests",
        "code deploy s", "requirements deploy s", "rollback s", "restart s")}
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "benchapp"
        app.mkdir()
        write(app, "v0")
        garrison("up", cwd=app)
        n = 0
        for r in range(args.rounds):
            # A: Garrison deploy of changed code, under load.
            n += 1
            write(app, f"v{n}")
            with Load(HOST) as load:
                rows["code deploy s"].append(garrison("deploy", cwd=app))
                time.sleep(0.5)
            rows["garrison failed"].append(len(load.failures))
            rows["garrison requests"].append(load.total)
            # B: the tutorial's restart, under the same load.
            with Load(HOST) as load:
                rows["restart s"].append(naive_restart())
                time.sleep(0.5)
            rows["restart failed"].append(len(load.failures))
            rows["restart requests"].append(load.total)
            # Changed requirements (a new venv), then a rollback, under load.
            n += 1
            write(app, f"v{n}", extra_req=f"# round {r} {time.time_ns()}\nitsdangerous>=2\n")
            rows["requirements deploy s"].append(garrison("deploy", cwd=app))
            with Load(HOST) as load:
                rows["rollback s"].append(garrison("rollback", cwd=app))
                time.sleep(0.5)
            rows["garrison failed"].append(len(load.failures))
            rows["garrison requests"].append(load.total)
        garrison("down", "--purge", cwd=app)

    def total(key: str) -> int:
        return int(sum(rows[key]))

    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        "## Deploys under load (`bench/deploy.py`)",
        "",
        f"{date}, {os.cpu_count()} cores, {platform.platform()}; {args.rounds} rounds, each: a Garrison code deploy, "
        "the tutorial's `restart` of the service, a deploy with new requirements, a rollback. Load: 3 threads through "
        "nginx on loopback, a new connection per request. Times are medians (min–max).",
        "",
        "| what | Garrison (blue/green) | tutorial (`restart`) |",
        "|---|---|---|",
        f"| failed requests under load | {total('garrison failed')} of {total('garrison requests')} "
        f"(deploys and rollbacks) | {total('restart failed')} of {total('restart requests')} |",
        f"| time to new code serving | code-only deploy {spread(rows['code deploy s'])} s | "
        f"restart until it answers {spread(rows['restart s'])} s |",
        f"| deploy with changed requirements (new venv) | {spread(rows['requirements deploy s'])} s | — |",
        f"| rollback | {spread(rows['rollback s'])} s | — |",
        "",
        "Target: a code-only deploy under 5 s on one host; 0 failed requests for Garrison.",
        END,
    ]
    section = "\n".join(lines)
    print(section)
    doc = REPO / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    main()
