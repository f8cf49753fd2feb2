"""How fast an app serves again after gunicorn's master is killed, and after a reboot, per service manager.

Deploys the sample app with `garrison deploy` over SSH to one lab host of each kind
(needs root: namespaces), then measures, from the machine, until nginx in the host
answers /healthz with 200 again:
- "kill -9 to serving": kill -9 of the live slot's gunicorn master (systemd: Restart=;
  supervisord: autorestart);
- "boot to serving": from the start of a boot (the launcher's clock, the machine's
  CLOCK_MONOTONIC) after `systemctl reboot` inside, and after a SIGKILL of PID 1 (a power
  cut). Only the systemd lab host (tests/systemdlab.py) can reboot; the supervisord lab
  host (tests/hostlab.py) has no boot to measure.

usage: python -m bench.boot [--runs N]   (writes the boot section of docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- boot:begin -->", "<!-- boot:end -->"


def _until(cond, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise SystemExit(f"timed out after {deadline} s waiting for {what}")
        time.sleep(0.02)


def _deploy(lab, name: str, tmp: Path):
    from tests.e2e.lab import build_wheelhouse, cli_env, fresh, garrison, host_entry, make_app

    h = fresh(lab.host(name))
    kh = lab.known_hosts([h], tmp / f"kh-{name}")
    app = make_app(tmp / f"app-{name}", [host_entry(h)])
    res = garrison("deploy", cwd=app, env=cli_env(lab, kh, build_wheelhouse()))
    if res.returncode != 0:
        raise SystemExit(f"deploy to {name} failed:\n{res.stdout}\n{res.stderr}")
    return h


def kill_to_serving(h, runs: int) -> list[float]:
    from tests.e2e.test_managers import master_pid, serving

    took = []
    for _ in range(runs):
        _until(lambda: serving(h) and master_pid(h) is not None, 60, "serving before the kill")
        master = master_pid(h)
        time.sleep(1.5)  # out of the last restart's window: each kill is a lone crash
        h.exec("kill", "-9", str(master))
        t0 = time.monotonic()
        _until(lambda old=master: master_pid(h) not in (None, old) and serving(h), 60, "serving after kill -9")
        took.append(time.monotonic() - t0)
    return took


def boot_to_serving(h, how: str, runs: int) -> list[float]:
    from tests.e2e.test_managers import serving

    took = []
    for _ in range(runs):
        h.reboot(how)
        start = h.boots()[-1]
        _until(lambda: serving(h), 60, f"serving after a {how} reboot")
        took.append(time.monotonic() - start)
    return took


def write_section(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{text.rstrip()}\n{END}"
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(doc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--managers", default="systemd,supervisord",
                    help="comma-separated; the supervisord lab shares tests/hostlab.py's lock with the e2e tests")
    ns = ap.parse_args()
    managers = ns.managers.split(",")
    sys.path.insert(0, str(REPO))
    from tests.hostlab import HostLab
    from tests.systemdlab import SystemdLab

    rows: list[tuple[str, str, list[float]]] = []
    if "systemd" in managers:
        sdlab = SystemdLab()
        try:
            h = _deploy(sdlab, "bb1", sdlab.dir)
            rows.append(("systemd", "kill -9 of the master to serving", kill_to_serving(h, ns.runs)))
            rows.append(("systemd", "boot to serving, `systemctl reboot` inside", boot_to_serving(h, "graceful", ns.runs)))
            rows.append(("systemd", "boot to serving, SIGKILL of PID 1 (power cut)", boot_to_serving(h, "hard", ns.runs)))
        finally:
            sdlab.close()
    if "supervisord" in managers:
        lab = HostLab()
        try:
            h = _deploy(lab, "bb2", lab.dir)
            rows.append(("supervisord", "kill -9 of the master to serving", kill_to_serving(h, ns.runs)))
        finally:
            lab.close()

    lines = [
        "## Crash and boot to serving, per service manager (`bench/boot.py`)",
        "",
        "The sample app deployed with `garrison deploy` over SSH to a lab host of each kind;",
        "time until nginx in the host answers /healthz with 200 again, polled from the machine",
        f"every 20 ms; median (min-max) of {ns.runs} runs. systemd: a lab host booting the",
        "machine's systemd 252 as PID 1 (tests/systemdlab.py), unit `Restart=always`,",
        "`RestartSec=1s`; boot times count from the boot's start (before systemd runs).",
        "supervisord: tests/hostlab.py, whose hosts cannot reboot (its @reboot entry is",
        "not measured here).",
        "",
        "| manager | what | median s | min-max s |",
        "|---|---|---|---|",
    ]
    for manager, what, xs in rows:
        lines.append(f"| {manager} | {what} | {statistics.median(xs):.2f} | {min(xs):.2f}-{max(xs):.2f} |")
    if "supervisord" in managers:
        lines.append("| supervisord | boot to serving | n/a | lab host cannot reboot |")
    text = "\n".join(lines)
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
