"""`--plan`: what `up`/`deploy` would change on a host, file diffs included, touching nothing.

It reads the same state that `up` reads and renders the same files, then
compares; it never writes, starts, stops or locks anything.
"""

from __future__ import annotations

import difflib
import posixpath
from dataclasses import dataclass, field

from garrison import commands as C
from garrison import facts as F
from garrison import render as R
from garrison import source
from garrison.hosts import Executor
from garrison.layout import other_slot
from garrison.project import Project
from garrison.workflows import Run
from garrison.workflows.up import HostFacts, Up, server_specs


@dataclass
class PlanItem:
    what: str
    change: str  # "" when nothing would change
    diff: list[str] = field(default_factory=list)


def _diff(path: str, old: bytes | None, new: str) -> list[str]:
    old_lines = (old or b"").decode(errors="replace").splitlines(keepends=True)
    return list(difflib.unified_diff(old_lines, new.splitlines(keepends=True), f"{path} (on host)", f"{path} (new)"))


def plan(project: Project, host: Executor) -> list[PlanItem]:
    u = Up(project=project, host=host, run=Run())
    L, h, cfg = u.L, host, project.config
    items: list[PlanItem] = []
    res = h.run(C.dpkg_status(C.BASE_PACKAGES), check=False)
    missing = [p for p in C.BASE_PACKAGES if p not in F.parse_dpkg_status(res.stdout)]
    items.append(PlanItem("packages", f"install {', '.join(missing)}" if missing else ""))
    facts = HostFacts(
        systemd=F.parse_pid1((h.read_file("/proc/1/comm") or b"").decode()),
        ipv6=h.exists("/proc/net/if_inet6"),
        nginx_user=F.parse_nginx_user((h.read_file("/etc/nginx/nginx.conf") or b"").decode(errors="replace")),
    )
    user_ok = h.run(C.user_exists(cfg.user), check=False).ok
    items.append(PlanItem(f"user {cfg.user}", "" if user_ok else f"create system user {cfg.user} and {L.base}"))

    state = u.read_state()
    files = source.app_files(project.root)
    digest = source.content_hash(project.root, files)[:12]
    existing = [r for r in state.get("releases", []) if r.endswith("-" + digest)]
    current = state.get("current")
    if existing and existing[0] == current:
        items.append(PlanItem("release", ""))
    elif existing:
        items.append(PlanItem("release", f"switch back to kept release {existing[0]}"))
    else:
        items.append(PlanItem("release", f"new release …-{digest} ({len(files)} files), replacing {current or 'nothing'}"))
    reqhash = source.requirements_hash(project.root, cfg.app.requirements, cfg.app.python, server_specs(cfg))
    venv_ok = h.exists(posixpath.join(L.venv(reqhash), ".garrison-complete"))
    items.append(PlanItem("venv", "" if venv_ok else f"build venv {reqhash} ({cfg.app.requirements or 'no requirements'} + {' '.join(server_specs(cfg))})"))

    live = u.live_slot()
    rendered = {
        L.gunicorn_conf: R.gunicorn_conf(cfg, L),
        L.logrotate: R.logrotate(cfg, L),
        posixpath.join(L.error_pages, "garrison-50x.html"): R.error_page(cfg),
        L.nginx_site: R.nginx_site(cfg, L, ipv6=facts.ipv6),
    }
    if facts.systemd:
        rendered[L.systemd_unit] = R.systemd_unit(cfg, L)
    else:
        rendered[u.tool.supervisord_conf] = R.supervisord_conf(u.tool)
    for path, text in rendered.items():
        old = h.read_file(path)
        if old == text.encode():
            items.append(PlanItem(path, ""))
        else:
            items.append(PlanItem(path, "create" if old is None else "update", _diff(path, old, text)))

    rid_guess = existing[0] if existing else f"new-{digest}"
    fingerprint = u.fingerprint(facts, rid_guess, reqhash)
    live_info = state.get("slots", {}).get(live or "", {})
    if live and live_info.get("fingerprint") == fingerprint:
        running = u.slot_running(facts, live)
        items.append(PlanItem("slot", "" if running else f"start slot {live} (it is not running)"))
    else:
        new = other_slot(live) if live else "blue"
        hook = f", run release hook `{cfg.hooks.release}`" if cfg.hooks.release else ""
        items.append(
            PlanItem(
                "slot",
                f"start slot {new}{hook}, health-check {cfg.app.health_path}, point nginx at it"
                + (f", drain and stop slot {live}" if live else ""),
                _diff(L.nginx_upstream, h.read_file(L.nginx_upstream), R.nginx_upstream(cfg, L, new)),
            )
        )
    return items
