"""Steps of a load-balancer host (role "lb"): `lb-static`, `lb-upstream`, `lb-site`, and `lb`.

The balancer's nginx serves the app's names: static files from its own copy
of the release (`lb-static`), everything else from the upstream of the app
hosts (`lb-upstream`), through its site (`lb-site`). `lb` takes one app host
out of the upstream (or puts it back) around that host's deploy, in a rolling
deploy. Every nginx file here goes live through nginx.put_live, so a rejected
candidate never touches the live files nor the traffic.

The app hosts are reached over other connections, so these steps do not
read them: the fleet hands each step what it found (`Backend`: an app host's
private address and, when read, the port of its live slot). What the
balancer knows between runs (each app host's port, and whether it is marked
down) is its state file, read and written only by `read_members` and
`write_members`.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from garrison import commands as C
from garrison import render as R
from garrison import source
from garrison.errors import DeployError
from garrison.hosts import Executor
from garrison.layout import Layout
from garrison.steps import Context, Decision, change, nginx, skip, unchanged

DRAIN_DEADLINE = 30.0  # seconds old workers get to finish requests to a host just taken out
NGINX_NOTES = ("reloaded nginx", "started nginx")  # what nginx.put_live says when nginx now runs the change
COMPLETE = ".garrison-complete"


@dataclass(frozen=True)
class Backend:
    """An app host as the balancer reaches it."""

    name: str
    address: str  # its private address
    port: int | None = None  # the port of its live slot, when the fleet read it in this run


@dataclass
class Member:
    """What the balancer remembers of one app host."""

    port: int | None = None
    down: bool = False


Members = dict[str, Member]


# -- the state file --------------------------------------------------------------


def read_members(host: Executor, L: Layout) -> Members:
    """The balancer's state file; a missing or unreadable one is an empty state."""
    raw = host.read_file(L.lb_state_file)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    hosts = data.get("hosts") if isinstance(data, dict) else None
    members: Members = {}
    for name, v in (hosts if isinstance(hosts, dict) else {}).items():
        if isinstance(v, dict):
            port = v.get("port")
            members[name] = Member(port if isinstance(port, int) and not isinstance(port, bool) else None,
                                   bool(v.get("down")))
    return members


def write_members(host: Executor, L: Layout, members: Members) -> None:
    data = {"hosts": {n: {"port": m.port, "down": m.down} for n, m in members.items()}}
    host.ensure_dir(L.base, mode=0o755)
    host.ensure_dir(L.lb_dir, mode=0o755)
    host.ensure_file(L.lb_state_file, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")


def configured(host: Executor, L: Layout) -> bool:
    """The balancer serves this app already (its upstream and enabled site exist)."""
    return host.exists(L.lb_upstream) and host.exists(L.lb_site_link)


def servers(backends: list[Backend], members: Members) -> list[R.LbServer]:
    """The upstream's servers: every app host of the config with a known port, in config order."""
    out = []
    for b in backends:
        m = members.get(b.name)
        if m is not None and m.port:
            out.append(R.LbServer(b.name, f"{b.address}:{m.port}", m.down))
    return out


# -- the upstream: the whole of it (`lb-upstream`), or one host in or out (`lb`) ----------------


@dataclass
class UpstreamPlan:
    todo: nginx.NginxChange
    members: Members
    state_changed: bool


def plan_upstream(ctx: Context, backends: list[Backend], old: Members, new: Members) -> UpstreamPlan:
    text = R.lb_upstream(ctx.cfg, servers(backends, new))
    todo = nginx.NginxChange(puts={ctx.L.lb_upstream: text}).pending(ctx.app)
    return UpstreamPlan(todo, new, new != old)


def put_upstream(ctx: Context, plan: UpstreamPlan) -> list[str]:
    """The upstream include live (reloaded when the site that includes it is), then the state."""
    notes: list[str] = []
    if plan.todo:
        # Before the site is enabled nginx doesn't read the include: lb-site validates and loads both.
        notes = nginx.put_live(ctx, plan.todo, apply=ctx.host.exists(ctx.L.lb_site_link))
    write_members(ctx.host, ctx.L, plan.members)
    return notes


def wait_drained(ctx: Context, deadline: float = DRAIN_DEADLINE) -> int:
    """Wait until nginx's old workers have finished their requests (to the host just taken
    out); returns how many still run at the deadline (their requests then finish on their own)."""
    end = ctx.clock.monotonic() + deadline
    while True:
        left = ctx.app.nginx_draining()
        if left == 0 or ctx.clock.monotonic() >= end:
            return left
        ctx.clock.sleep(0.05)


def copy(members: Members) -> Members:
    return {n: Member(m.port, m.down) for n, m in members.items()}


@dataclass
class LbUpstream:
    """Step `lb-upstream`: every app host that serves, at the port of its live slot."""

    backends: list[Backend]
    lb: str = "lb"
    name: str = field(default="lb-upstream", init=False)

    def what(self, ctx: Context) -> str:
        return f"upstream across the app hosts on {self.lb}"

    def decide(self, ctx: Context) -> Decision:
        old = read_members(ctx.host, ctx.L)
        new = copy(old)
        for b in self.backends:
            if b.port:
                # A host left down by a roll that stopped stays down until a roll puts it back.
                new.setdefault(b.name, Member()).port = b.port
        if not any(m.port for m in new.values()):
            raise DeployError(f"no app host serves the app yet; nothing for {self.lb} to balance")
        plan = plan_upstream(ctx, self.backends, old, new)
        serving = sorted(s.name for s in servers(self.backends, new) if not s.down)
        summary = f"{len(serving)} app host(s): {', '.join(serving)}"
        if not plan.todo and not plan.state_changed:
            return unchanged(self.name, summary)
        return change(self.name, summary, plan.todo.diff(ctx.app), data=plan)

    def apply(self, ctx: Context, decision: Decision) -> str:
        notes = put_upstream(ctx, decision.data)
        return "; ".join([decision.reason] + [n for n in notes if n in NGINX_NOTES])


@dataclass
class LbMark:
    """Step `lb`: one app host out of the upstream before its deploy, back in after it.

    Back in, it is at the port read from the host then: the new slot's after a
    deploy, the old one's after a failed one."""

    backends: list[Backend]
    host: str
    down: bool
    port: int | None = None  # its live slot's port, when read
    lb: str = "lb"
    name: str = field(default="lb", init=False)

    def what(self, ctx: Context) -> str:
        return f"{self.host} {'out of' if self.down else 'back into'} the upstream on {self.lb}"

    def decide(self, ctx: Context) -> Decision:
        old = read_members(ctx.host, ctx.L)
        new = copy(old)
        m = new.setdefault(self.host, Member())
        if self.port:
            m.port = self.port
        m.down = self.down
        if not servers(self.backends, new) and configured(ctx.host, ctx.L):
            raise DeployError(f"no app host left in the upstream of {self.lb}; not taking every host out")
        plan = plan_upstream(ctx, self.backends, old, new)
        if not plan.todo and not plan.state_changed:
            return unchanged(self.name, "upstream unchanged")
        if not plan.todo:
            return change(self.name, "upstream unchanged; state updated", data=plan)
        what = f"{self.host} marked down on {self.lb}" if self.down else f"{self.host} serving again at port {m.port}"
        return change(self.name, what, plan.todo.diff(ctx.app), data=plan)

    def apply(self, ctx: Context, decision: Decision) -> str:
        plan: UpstreamPlan = decision.data
        notes = put_upstream(ctx, plan)
        if self.down and "reloaded nginx" in notes:
            left = wait_drained(ctx)
            if left:
                return f"{decision.reason}; {left} old nginx worker(s) still finishing requests after {DRAIN_DEADLINE:.0f} s"
        return decision.reason


# -- static files: the balancer's own copy of the release's ---------------------------------------


@dataclass
class LbStatic:
    """Step `lb-static`: the static folders of the app, copied to the balancer (no hop to an
    app host for them). The current and the previous copy are kept: pages cached by clients
    still name old files."""

    root: Path  # the app's source tree, on this machine
    lb: str = "lb"
    name: str = field(default="lb-static", init=False)

    def what(self, ctx: Context) -> str:
        return f"static files on {self.lb}"

    def files(self, ctx: Context) -> list[str]:
        statics = [st.path.rstrip("/") for st in ctx.cfg.app.static]
        return [f for f in source.app_files(self.root) if any(str(f).startswith(p + "/") for p in statics)]

    def decide(self, ctx: Context) -> Decision:
        if not ctx.cfg.app.static:
            return skip(self.name, "the app declares no static folders")
        files = self.files(ctx)
        digest = source.content_hash(self.root, files)[:12] if files else "empty"
        L, h = ctx.L, ctx.host
        folder = posixpath.join(L.lb_static, digest)
        there = h.exists(posixpath.join(folder, COMPLETE))
        st = h.stat(L.lb_static_current)
        current = st is not None and st.is_link and st.link_target == folder
        if there and current:
            return unchanged(self.name, f"{len(files)} files already there ({digest})")
        what = f"point {L.lb_static_current} at {digest}" if there else f"copy {len(files)} files ({digest})"
        return change(self.name, what, data=(files, digest))

    def apply(self, ctx: Context, decision: Decision) -> str:
        files, digest = decision.data
        h, L = ctx.host, ctx.L
        folder = posixpath.join(L.lb_static, digest)
        for d in (L.base, L.lb_dir, L.lb_static):
            h.ensure_dir(d, mode=0o755)
        if not h.exists(posixpath.join(folder, COMPLETE)):
            # Unpacked beside, then renamed: a half-copied folder is never `current`.
            tmp = folder + ".partial"
            h.remove(tmp)
            h.ensure_dir(tmp, mode=0o755)
            h.extract_tar(source.archive(self.root, files), tmp)
            h.write_file(posixpath.join(tmp, COMPLETE), b"")
            h.run(C.rename(tmp, folder))
        h.ensure_symlink(folder, L.lb_static_current)
        listing = h.run(C.newest_first(L.lb_static), check=False).stdout.split()
        for old in [d for d in listing if d not in ("current", digest) and not d.endswith(".partial")][1:]:
            h.remove(posixpath.join(L.lb_static, old))
        return decision.reason.replace("copy", "copied").replace("point", "pointed")


# -- the site ----------------------------------------------------------------------------------


def site_change(ctx: Context) -> nginx.NginxChange:
    L = ctx.L
    return nginx.NginxChange(puts={L.lb_site: R.lb_site(ctx.cfg, L, ipv6=ctx.hf.ipv6)},
                             links={L.lb_site_link: L.lb_site})


@dataclass
class LbSite:
    """Step `lb-site`: the balancer's site, enabled, and nginx running it."""

    lb: str = "lb"
    name: str = field(default="lb-site", init=False)

    def what(self, ctx: Context) -> str:
        return f"nginx site {posixpath.basename(ctx.L.lb_site)} on {self.lb}"

    def decide(self, ctx: Context) -> Decision:
        main = (ctx.host.read_file("/etc/nginx/nginx.conf") or b"").decode(errors="replace")
        if main and "/etc/nginx/sites-enabled/" not in main and not ctx.planning:
            raise DeployError(f"/etc/nginx/nginx.conf on {self.lb} does not include /etc/nginx/sites-enabled/; add "
                              "`include /etc/nginx/sites-enabled/*;` to its http block")
        whole = site_change(ctx)
        todo = whole.pending(ctx.app)
        running = ctx.app.nginx_running()
        if not todo and running:
            return unchanged(self.name, "site unchanged, nginx running")
        what = todo.describe() + ([] if running else ["start nginx"])
        # put_live gets the whole change: the link to the site, already in place, is where
        # nginx -t must find the candidate.
        return change(self.name, "; ".join(what), todo.diff(ctx.app), data=whole if todo else None)

    def apply(self, ctx: Context, decision: Decision) -> str:
        notes = nginx.put_live(ctx, decision.data) if decision.data else [nginx.reload(ctx)]
        return "; ".join(notes)

