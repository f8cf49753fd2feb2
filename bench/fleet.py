"""Deploys over SSH to disposable lab hosts (tests/hostlab.py): ratios for docs/benchmarks.md.

Measures, side by side, on this machine (needs root: network namespaces):
- a no-op redeploy (nothing changed) to 1 host and to 3 hosts in parallel (target: 3 ≤ 1.5 × 1);
- a code-only deploy (new release, same venv) to 1 host over SSH, against the same deploy
  run by `garrison up`'s workflow with the LOCAL executor inside the same kind of lab host
  (nsenter into its namespaces: no SSH, no machine nginx touched).

usage: python -m bench.fleet [--runs N]   (writes the fleet section of docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"


def _deploy(app: Path, env: dict, *args: str) -> float:
    t0 = time.monotonic()
    res = subprocess.run((sys.executable, "-m", "garrison", "deploy", *args), cwd=app, env=env, capture_output=True, text=True)
    took = time.monotonic() - t0
    if res.returncode != 0:
        raise SystemExit(f"deploy {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return took


def _local_up_in(host, app: Path, env: dict) -> float:
    """The same workflow with the local executor, run inside the lab host (nsenter)."""
    code = (
        "import sys,time; sys.path.insert(0, %r)\n"
        "from garrison.config import find_project\nfrom garrison.hosts.local import LocalExecutor\n"
        "from garrison.workflows import Run\nfrom garrison.workflows.up import up\nfrom pathlib import Path\n"
        "p = find_project(Path(%r)); t0 = time.monotonic(); up(p, LocalExecutor(), Run()); print(time.monotonic() - t0)\n"
    ) % (str(REPO), str(app))
    # The host's python sees the machine's / read-only (REPO and app are readable there); the garrison deps
    # come from this process's interpreter (same path inside the host: / is shared read-only).
    res = host.exec(sys.executable, "-c", code, timeout=600, check=False)
    if res.returncode != 0:
        raise SystemExit(f"local up in {host.name} failed: {res.stderr.decode()[-2000:]}")
    return float(res.stdout.decode().strip().splitlines()[-1])


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
    ap.add_argument("--runs", type=int, default=3)
    ns = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.e2e.test_fleet import build_wheelhouse, cli_env, fresh, host_entry, make_app
    from tests.hostlab import HostLab

    lab = HostLab()
    try:
        wh = build_wheelhouse()
        hosts = fresh(*(lab.host(f"bf{i}") for i in (1, 2, 3)))
        kh = lab.known_hosts(list(hosts))
        tmp = lab.dir / "bench"
        app1 = make_app(tmp / "one", [host_entry(hosts[0])])
        app3 = make_app(tmp / "three", [host_entry(h) for h in hosts])
        env = cli_env(lab, kh, wh)
        _deploy(app3, env)  # first deploy everywhere (not measured)
        _deploy(app1, env)
        one = [_deploy(app1, env) for _ in range(ns.runs)]
        three = [_deploy(app3, env) for _ in range(ns.runs)]
        # Code-only deploys: a new release each time, the venv reused.
        ssh_code, local_code = [], []
        for i in range(ns.runs):
            (app1 / "main.py").write_text((app1 / "main.py").read_text() + f"\n# change {i}\n")
            ssh_code.append(_deploy(app1, env))
        local_note = ""
        try:
            lhost = fresh(lab.host("bfl"))
            appl = make_app(tmp / "local", [])
            _local_up_in(lhost, appl, env)  # first deploy (not measured)
            for i in range(ns.runs):
                (appl / "main.py").write_text((appl / "main.py").read_text() + f"\n# change {i}\n")
                local_code.append(_local_up_in(lhost, appl, env))
        except SystemExit as exc:  # e.g. this interpreter or the app folder not visible inside the host
            local_note = str(exc).strip().splitlines()[-1][:200]
    finally:
        lab.close()
    m1, m3 = statistics.median(one), statistics.median(three)
    ms = statistics.median(ssh_code)
    ml = statistics.median(local_code) if local_code else None
    local_row = (f"| {ml:.2f} | {ml / ms:.2f} |" if ml is not None else f"| not measured | ({local_note}) |")
    text = f"""## Deploys over SSH (bench/fleet.py)

Lab hosts (network namespaces with their own sshd, tests/hostlab.py) on this machine;
median of {ns.runs} runs; wall time of `garrison deploy` (CLI start-up included).

| what | seconds | ratio |
|---|---|---|
| no-op redeploy, 1 host | {m1:.2f} | 1.00 |
| no-op redeploy, 3 hosts in parallel | {m3:.2f} | {m3 / m1:.2f} (target ≤ 1.5) |
| code-only deploy, 1 host over SSH (CLI) | {ms:.2f} | 1.00 |
| code-only deploy, same workflow with the local executor inside a lab host (no CLI start-up) {local_row}
"""
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
