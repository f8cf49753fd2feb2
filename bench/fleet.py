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
import io
import statistics
import subprocess
import sys
import sysconfig
import tarfile
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


def _ship_tool(host, app: Path) -> str:
    """Put this checkout's garrison, this interpreter's site-packages and the app inside the
    lab host (its /tmp is its own, so nothing of ours under /tmp is visible there).
    Returns the app's folder inside the host."""
    buf = io.BytesIO()
    skip = lambda ti: None if "__pycache__" in ti.name else ti  # noqa: E731
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(REPO / "garrison", "repo/garrison", filter=skip)
        tar.add(sysconfig.get_paths()["purelib"], "site", filter=skip)
        tar.add(app, "app", filter=skip)
    host.exec("mkdir", "-p", "/root/bl")
    host.exec("tar", "-xzf", "-", "-C", "/root/bl", input=buf.getvalue(), timeout=300)
    return "/root/bl/app"


def _local_up_in(host, app_in_host: str) -> float:
    """`garrison up` with the local executor, run inside the lab host (nsenter: no SSH).
    The distribution's python3 runs it with the shipped site-packages (same minor version)."""
    t0 = time.monotonic()
    res = host.sh(
        'cd "$1" && PYTHONPATH=/root/bl/repo:/root/bl/site exec /usr/bin/python3 -m garrison up', app_in_host,
        timeout=600, check=False,
    )
    took = time.monotonic() - t0
    if res.returncode != 0:
        raise SystemExit(f"local up in {host.name} failed: {(res.stdout + res.stderr).decode()[-2000:]}")
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
    ap.add_argument("--runs", type=int, default=3)
    ns = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.e2e.lab import build_wheelhouse, cli_env, fresh, host_entry, make_app
    from tests.hostlab import HostLab

    lab = HostLab()
    try:
        wh = build_wheelhouse()
        hosts = fresh(*(lab.host(f"bf{i}") for i in (1, 2, 3)))
        lhost = fresh(lab.host("bfl"))  # for the local-executor comparison below
        kh = lab.known_hosts([*hosts, lhost])
        tmp = lab.dir / "bench"
        # One garrison.toml with the 3 hosts: "1 host" is `--host bf1` of the same app, as a
        # user would run it (another garrison.toml would be another release: not a no-op).
        app3 = make_app(tmp / "three", [host_entry(h) for h in hosts])
        env = cli_env(lab, kh, wh)
        _deploy(app3, env)  # first deploy everywhere (not measured)
        one, three = [], []
        for _ in range(ns.runs):  # interleaved: the machine's noise hits both alike
            one.append(_deploy(app3, env, "--host", hosts[0].name))
            three.append(_deploy(app3, env))
        # Code-only deploys: a new release each time, the venv reused.
        ssh_code, local_code = [], []
        for i in range(ns.runs):
            (app3 / "main.py").write_text((app3 / "main.py").read_text() + f"\n# change {i}\n")
            ssh_code.append(_deploy(app3, env, "--host", hosts[0].name))
        local_note = ""
        try:
            if sysconfig.get_python_version() != subprocess.run(
                ("/usr/bin/python3", "-c", "import sysconfig; print(sysconfig.get_python_version())"),
                capture_output=True, text=True,
            ).stdout.strip():
                raise SystemExit("this interpreter's minor version differs from the host's /usr/bin/python3")
            appl = make_app(tmp / "local", [host_entry(lhost)])
            _deploy(appl, env)  # packages, tool venv and app venv on the host, over SSH (not measured)
            inside = _ship_tool(lhost, appl)
            _local_up_in(lhost, inside)  # first local up: the slot's bind changes (not measured)
            for i in range(ns.runs):
                lhost.sh(f'echo "# change {i}" >> "$1/main.py"', inside)
                local_code.append(_local_up_in(lhost, inside))
        except SystemExit as exc:  # e.g. the host's python3 can't load this interpreter's packages
            local_note = str(exc).strip().splitlines()[-1][:200]
    finally:
        lab.close()
    m1, m3 = statistics.median(one), statistics.median(three)
    ms = statistics.median(ssh_code)
    ml = statistics.median(local_code) if local_code else None
    local_row = (f"| {ml:.2f} | {ml / ms:.2f} |" if ml is not None else f"| not measured | ({local_note}) |")
    text = f"""## Deploys over SSH (bench/fleet.py)

Lab hosts (network namespaces with their own sshd, tests/hostlab.py) on this machine;
median of {ns.runs} runs, 1 host and 3 hosts interleaved; wall time of the CLI (start-up included).
"1 host" is `garrison deploy --host bf1` with the same garrison.toml as the 3-host deploy:
a second garrison.toml naming one host would be another release (the file is part of the
app's tree), so its "no-op" would really be a redeploy. The local row runs `garrison up`
inside a lab host (nsenter, the distribution's python3) for the same code-only change.

| what | seconds | ratio |
|---|---|---|
| no-op redeploy, 1 host | {m1:.2f} | 1.00 |
| no-op redeploy, 3 hosts in parallel | {m3:.2f} | {m3 / m1:.2f} (target ≤ 1.5) |
| code-only deploy, 1 host over SSH (CLI) | {ms:.2f} | 1.00 |
| code-only deploy, `garrison up` (local executor, CLI) inside a lab host {local_row}
"""
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
