"""The load balancer's steps (garrison/steps/lb.py) on a fake host: what they decide for given
host facts, and that a candidate nginx rejects never replaces the live file.

The fake host keeps files, folders and links in dicts and knows only the commands the steps
and nginx.put_live run; any other command fails the test. Its nginx is a pid, workers in
`ps` output that a reload replaces, and an `nginx -t` whose answer the test chooses.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from garrison.config import parse_config
from garrison.errors import DeployError
from garrison.hosts import Executor, HostLock, Result, Stat
from garrison.layout import Layout
from garrison.project import Project
from garrison.render import LbServer, lb_site, lb_upstream
from garrison.state import HostFacts
from garrison.steps import Context
from garrison.steps import lb as S
from garrison.steps.nginx import SCRATCH
from garrison.workflows import Run
from garrison.workflows.up import context

NGINX_CONF = b"events {}\nhttp {\n    include /etc/nginx/sites-enabled/*;\n}\n"
APP = "shop"
BACKENDS = [S.Backend("a1", "10.0.0.1"), S.Backend("a2", "10.0.0.2"), S.Backend("a3", "10.0.0.3")]


class FakeClock:
    """Sleeping advances the time at once."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


class FakeHost(Executor):
    name = "lb"

    def __init__(self, files: dict[str, bytes] | None = None, *, nginx_pid: int | None = 40) -> None:
        self.files: dict[str, bytes] = {"/etc/nginx/nginx.conf": NGINX_CONF, **(files or {})}
        self.dirs: set[str] = {"/etc/nginx", "/etc/nginx/sites-available", "/etc/nginx/sites-enabled"}
        self.links: dict[str, str] = {}
        self.ran: list[tuple[str, ...]] = []
        self.writes: list[str] = []
        self.nginx_pid = nginx_pid
        if nginx_pid is not None:
            self.files["/run/nginx.pid"] = f"{nginx_pid}\n".encode()
        self.nginx_t = Result((), 0, "", "")  # the answer of `nginx -t -c <scratch>`
        self.checked: dict[str, bytes] = {}  # the scratch tree nginx -t was asked about
        self.generation = 0  # bumped by each reload: new worker pids
        self.drain_polls = 0  # how many more `ps` show old workers shutting down (-1: forever)

    # -- commands --------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, input: bytes | None = None, env: Mapping[str, str] | None = None,
            check: bool = True, timeout: float | None = None) -> Result:
        argv = tuple(argv)
        self.ran.append(argv)
        ok = Result(argv, 0, "", "")
        match argv:
            case ("kill", "-0", pid):
                return ok if int(pid) == self.nginx_pid else Result(argv, 1, "", "No such process")
            case ("ps", "-eo", "pid=,ppid=,args="):
                return Result(argv, 0, self.ps(), "")
            case ("mkdir", "-p", path):
                self.dirs.add(path)
            case ("chmod", _, _) | ("chown", _, _):
                pass
            case ("rm", "-rf", "--", path):
                self.delete(path)
            case ("ln", "-sfn", target, path):
                self.links[path] = target
            case ("mv", "-Tf", src, dest) | ("mv", "-T", src, dest):
                self.rename(src, dest)
            case ("cp", "-rL", src, dest):
                for path in [p for p in self.files if p.startswith(src + "/")] + [p for p in self.links if p.startswith(src + "/")]:
                    data = self.read_file(path)
                    if data is not None:  # cp skips a dangling link
                        self.files[dest + path[len(src):]] = data
            case ("find", folder, "-type", "f", "-exec", "sed", "-i", "-e", expr, "{}", "+"):
                _, old, new, _ = expr.split("#")
                for path in [p for p in self.files if p.startswith(folder + "/")]:
                    self.files[path] = self.files[path].replace(old.encode(), new.encode())
            case ("nginx", "-t", "-q", "-c", conf):
                assert conf.startswith(SCRATCH + "/"), conf
                self.checked = {p: d for p, d in self.files.items() if p.startswith(SCRATCH + "/")}
                return Result(argv, self.nginx_t.returncode, "", self.nginx_t.stderr)
            case ("nginx", "-t", "-q"):
                pass
            case ("nginx", "-s", "reload"):
                self.generation += 1
            case ("nginx",):
                self.nginx_pid = 40
                self.files["/run/nginx.pid"] = b"40\n"
            case ("ls", "-1t", folder):
                names = {p[len(folder) + 1:].split("/")[0] for p in [*self.files, *self.dirs, *self.links]
                         if p.startswith(folder + "/")}
                return Result(argv, 0, "\n".join(sorted(names)) + "\n", "")
            case _:
                raise AssertionError(f"the fake host was not told about {argv}")
        return ok

    def ps(self) -> str:
        master = self.nginx_pid
        if master is None:
            return ""
        lines = [f"{master} 1 nginx: master process /usr/sbin/nginx"]
        lines += [f"{100 * (self.generation + 1) + i} {master} nginx: worker process" for i in range(2)]
        if self.generation and self.drain_polls:
            self.drain_polls -= self.drain_polls > 0
            lines.append(f"{100 * self.generation} {master} nginx: worker process is shutting down")
        return "\n".join(lines) + "\n"

    def delete(self, path: str) -> None:
        for table in (self.files, self.links):
            for p in [p for p in table if p == path or p.startswith(path + "/")]:
                del table[p]
        self.dirs = {d for d in self.dirs if d != path and not d.startswith(path + "/")}

    def rename(self, src: str, dest: str) -> None:
        self.delete(dest)
        for table in (self.files, self.links):
            for p in [p for p in table if p == src or p.startswith(src + "/")]:
                table[dest + p[len(src):]] = table.pop(p)
        self.dirs = {dest + d[len(src):] if d == src or d.startswith(src + "/") else d for d in self.dirs}

    # -- files -----------------------------------------------------------------------
    def read_file(self, path: str) -> bytes | None:
        seen = 0
        while path in self.links and seen < 10:
            path, seen = self.links[path], seen + 1
        return self.files.get(path)

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, owner: str = "root", group: str = "root") -> None:
        self.writes.append(path)
        self.links.pop(path, None)
        self.files[path] = data

    def stat(self, path: str) -> Stat | None:
        if path in self.links:
            return Stat(0o777, "root", "root", False, True, self.links[path])
        if path in self.files:
            return Stat(0o644, "root", "root", False, False, None)
        if path in self.dirs or any(p.startswith(path + "/") for p in self.files):
            return Stat(0o755, "root", "root", True, False, None)
        return None

    def extract_tar(self, data: bytes, dest: str) -> None:
        self.files[posixpath.join(dest, ".unpacked")] = data

    def lock(self, path: str, holder: str) -> HostLock:
        raise AssertionError("the LB steps take no deploy lock")


def project(tmp_path: Path, **app: object) -> Project:
    cfg = parse_config({"app": {"name": APP, "entry": "main:app", **app}})
    return Project(config=cfg, source=tmp_path / "garrison.toml", root=tmp_path)


def ctx_for(host: FakeHost, tmp_path: Path, **app: object) -> Context:
    ctx = context(project(tmp_path, **app), host, Run(), clock=FakeClock())
    ctx.facts = HostFacts(systemd=False, ipv6=False, nginx_user="www-data")
    return ctx


L = Layout.of(parse_config({"app": {"name": APP, "entry": "main:app"}}))


def state(**hosts: tuple[int, bool]) -> bytes:
    import json

    return json.dumps({"hosts": {n: {"port": p, "down": d} for n, (p, d) in hosts.items()}}).encode()


def upstream(*servers: LbServer) -> bytes:
    return lb_upstream(parse_config({"app": {"name": APP, "entry": "main:app"}}), list(servers)).encode()


def configured_lb(**hosts: tuple[int, bool]) -> FakeHost:
    """An LB that serves: its state, the upstream that matches it, the site enabled, nginx running."""
    servers = [LbServer(b.name, f"{b.address}:{hosts[b.name][0]}", hosts[b.name][1]) for b in BACKENDS if b.name in hosts]
    h = FakeHost({L.lb_state_file: state(**hosts), L.lb_upstream: upstream(*servers),
                  L.lb_site: lb_site(parse_config({"app": {"name": APP, "entry": "main:app"}}), L, ipv6=False).encode()})
    h.links[L.lb_site_link] = L.lb_site
    return h


# -- lb-upstream -----------------------------------------------------------------------------


def test_upstream_on_a_new_lb_lists_the_hosts_that_serve(tmp_path):
    h = FakeHost(nginx_pid=None)
    found = [S.Backend("a1", "10.0.0.1", 8000), S.Backend("a2", "10.0.0.2", None), S.Backend("a3", "10.0.0.3", 8001)]
    d = S.LbUpstream(found).decide(ctx_for(h, tmp_path))
    assert d.action == "change" and d.reason == "2 app host(s): a1, a3"
    added = [ln for ln in d.diff if ln.startswith("+server")]
    assert added == ["+server 10.0.0.1:8000 max_fails=2 fail_timeout=5s;  # a1\n",
                     "+server 10.0.0.3:8001 max_fails=2 fail_timeout=5s;  # a3\n"]
    assert h.writes == []  # deciding changes nothing


def test_upstream_unchanged_when_the_hosts_serve_where_the_lb_knows(tmp_path):
    h = configured_lb(a1=(8000, False), a2=(8001, False))
    found = [S.Backend("a1", "10.0.0.1", 8000), S.Backend("a2", "10.0.0.2", 8001), S.Backend("a3", "10.0.0.3", None)]
    d = S.LbUpstream(found).decide(ctx_for(h, tmp_path))
    assert (d.action, d.reason) == ("unchanged", "2 app host(s): a1, a2")


def test_upstream_follows_a_new_live_port_and_keeps_a_host_a_stopped_roll_left_down(tmp_path):
    h = configured_lb(a1=(8000, False), a2=(8000, True))
    found = [S.Backend("a1", "10.0.0.1", 8001), S.Backend("a2", "10.0.0.2", 8000), S.Backend("a3", "10.0.0.3")]
    d = S.LbUpstream(found).decide(ctx_for(h, tmp_path))
    assert d.action == "change" and d.reason == "1 app host(s): a1"
    assert "-server 10.0.0.1:8000 max_fails=2 fail_timeout=5s;  # a1\n" in d.diff
    assert "+server 10.0.0.1:8001 max_fails=2 fail_timeout=5s;  # a1\n" in d.diff
    assert not [ln for ln in d.diff if "a2" in ln and ln[0] in "+-"]  # a2 stays down, as it was


def test_upstream_refuses_when_no_app_host_serves(tmp_path):
    with pytest.raises(DeployError, match="no app host serves the app yet; nothing for lb1 to balance"):
        S.LbUpstream(BACKENDS, lb="lb1").decide(ctx_for(FakeHost(), tmp_path))


def test_upstream_on_a_new_lb_is_written_without_a_reload_and_the_state_with_it(tmp_path):
    # Before the site is enabled nginx does not read the include: the site step loads both.
    h = FakeHost(nginx_pid=None)
    ctx = ctx_for(h, tmp_path)
    step = S.LbUpstream([S.Backend("a1", "10.0.0.1", 8000)])
    detail = step.apply(ctx, step.decide(ctx))
    assert detail == "1 app host(s): a1"
    assert h.files[L.lb_upstream] == upstream(LbServer("a1", "10.0.0.1:8000"))
    assert S.read_members(h, L) == {"a1": S.Member(8000, False)}
    assert not [a for a in h.ran if a[0] == "nginx" and "-c" not in a]


# -- lb (one host out of the upstream, and back) -------------------------------------------------


def test_mark_down_takes_only_that_host_out(tmp_path):
    h = configured_lb(a1=(8000, False), a2=(8000, False))
    d = S.LbMark(BACKENDS, "a1", down=True).decide(ctx_for(h, tmp_path))
    assert (d.action, d.reason) == ("change", "a1 marked down on lb")
    assert [ln for ln in d.diff if ln[0] in "+-" and not ln.startswith(("+++", "---"))] == [
        "-server 10.0.0.1:8000 max_fails=2 fail_timeout=5s;  # a1\n",
        "+server 10.0.0.1:8000 max_fails=2 fail_timeout=5s down;  # a1\n",
    ]


def test_mark_back_in_at_the_port_its_new_slot_serves_on(tmp_path):
    h = configured_lb(a1=(8000, True), a2=(8000, False))
    d = S.LbMark(BACKENDS, "a1", down=False, port=8001).decide(ctx_for(h, tmp_path))
    assert (d.action, d.reason) == ("change", "a1 serving again at port 8001")
    assert "+server 10.0.0.1:8001 max_fails=2 fail_timeout=5s;  # a1\n" in d.diff


def test_mark_unchanged_when_the_host_already_is_as_asked(tmp_path):
    h = configured_lb(a1=(8000, False))
    d = S.LbMark(BACKENDS, "a1", down=False, port=8000).decide(ctx_for(h, tmp_path))
    assert (d.action, d.reason) == ("unchanged", "upstream unchanged")


def test_mark_refuses_to_leave_a_serving_lb_with_an_empty_upstream(tmp_path):
    h = configured_lb(a1=(8000, False))
    h.files[L.lb_state_file] = b"{not json"  # a lost state: no host with a known port
    with pytest.raises(DeployError, match="no app host left in the upstream of lb; not taking every host out"):
        S.LbMark(BACKENDS, "a2", down=True).decide(ctx_for(h, tmp_path))


def test_mark_down_reloads_then_waits_for_the_old_workers_to_finish(tmp_path):
    h = configured_lb(a1=(8000, False), a2=(8000, False))
    h.drain_polls = 3
    ctx = ctx_for(h, tmp_path)
    step = S.LbMark(BACKENDS, "a1", down=True)
    detail = step.apply(ctx, step.decide(ctx))
    assert detail == "a1 marked down on lb"
    assert ("nginx", "-s", "reload") in h.ran and h.drain_polls == 0
    assert b"10.0.0.1:8000 max_fails=2 fail_timeout=5s down;" in h.files[L.lb_upstream]
    assert S.read_members(h, L)["a1"] == S.Member(8000, True)
    assert ctx.clock.monotonic() - 1000.0 < 1  # waited on the condition, a few polls


def test_mark_down_stops_waiting_at_the_deadline_and_says_so(tmp_path):
    h = configured_lb(a1=(8000, False), a2=(8000, False))
    h.drain_polls = -1  # a request that never ends
    ctx = ctx_for(h, tmp_path)
    step = S.LbMark(BACKENDS, "a1", down=True)
    detail = step.apply(ctx, step.decide(ctx))
    assert detail == "a1 marked down on lb; 1 old nginx worker(s) still finishing requests after 30 s"
    assert 30 <= ctx.clock.monotonic() - 1000.0 < 31


# -- lb-site ---------------------------------------------------------------------------------


def test_site_on_a_new_lb_is_written_enabled_and_nginx_started(tmp_path):
    h = FakeHost(nginx_pid=None)
    d = S.LbSite().decide(ctx_for(h, tmp_path))
    assert d.action == "change"
    assert d.reason == f"write {L.lb_site}; enable {L.lb_site_link}; start nginx"
    assert f"+++ {L.lb_site} (new)\n" in d.diff


def test_site_unchanged_when_it_is_live_and_nginx_runs(tmp_path):
    d = S.LbSite().decide(ctx_for(configured_lb(a1=(8000, False)), tmp_path))
    assert (d.action, d.reason) == ("unchanged", "site unchanged, nginx running")


def test_site_is_rewritten_when_the_config_changes(tmp_path):
    h = configured_lb(a1=(8000, False))
    d = S.LbSite().decide(ctx_for(h, tmp_path, static=[{"url": "/static/", "path": "static"}]))
    assert (d.action, d.reason) == ("change", f"write {L.lb_site}")
    assert f"+        alias {L.lb_static_current}/static/;\n" in d.diff


def test_site_refuses_an_nginx_conf_without_sites_enabled(tmp_path):
    h = FakeHost({"/etc/nginx/nginx.conf": b"events {}\nhttp {\n    include /etc/nginx/conf.d/*.conf;\n}\n"})
    with pytest.raises(DeployError, match="does not include /etc/nginx/sites-enabled/"):
        S.LbSite().decide(ctx_for(h, tmp_path))


def test_a_site_nginx_rejects_never_replaces_the_live_one(tmp_path):
    h = configured_lb(a1=(8000, False))
    live = h.files[L.lb_site]
    h.nginx_t = Result((), 1, "", f"nginx: [emerg] a duplicate default server for 0.0.0.0:80 in {SCRATCH}/{APP}/x:3")
    ctx = ctx_for(h, tmp_path, static=[{"url": "/static/", "path": "static"}])
    step = S.LbSite()
    d = step.decide(ctx)
    with pytest.raises(DeployError) as exc:
        step.apply(ctx, d)
    assert str(exc.value).startswith("nginx -t rejected the new config, the live files are untouched: nginx: [emerg] "
                                     "a duplicate default server for 0.0.0.0:80 in /etc/nginx/")
    # nginx judged the candidate (its includes pointed into the scratch copy) in place of the live site...
    here = f"{SCRATCH}/{APP}/"
    candidate = lb_site(ctx.cfg, L, ipv6=False).replace("/etc/nginx/", here).encode()
    assert h.checked[f"{here}sites-enabled/garrison-lb-{APP}"] == candidate
    # ...and the live site was never written, nor nginx reloaded; the scratch copy is gone.
    assert h.files[L.lb_site] == live and L.lb_site not in h.writes
    assert ("nginx", "-s", "reload") not in h.ran
    assert not [p for p in h.files if p.startswith(SCRATCH)]


# -- lb-static -------------------------------------------------------------------------------


def test_static_is_skipped_without_static_folders(tmp_path):
    d = S.LbStatic(tmp_path).decide(ctx_for(FakeHost(), tmp_path))
    assert (d.action, d.reason) == ("skip", "the app declares no static folders")


def test_static_copies_then_knows_its_copy(tmp_path):
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "a.css").write_text("body {}\n")
    (tmp_path / "main.py").write_text("app = None\n")  # not a static file
    h = FakeHost()
    ctx = ctx_for(h, tmp_path, static=[{"url": "/static/", "path": "static"}])
    step = S.LbStatic(tmp_path)
    d = step.decide(ctx)
    assert d.action == "change" and d.reason.startswith("copy 1 files (")
    digest = d.reason.split("(")[1].rstrip(")")
    assert step.apply(ctx, d) == f"copied 1 files ({digest})"
    assert h.links[L.lb_static_current] == f"{L.lb_static}/{digest}"
    assert f"{L.lb_static}/{digest}/.garrison-complete" in h.files
    assert step.decide(ctx).action == "unchanged"
    del h.links[L.lb_static_current]  # the copy is there, `current` is not
    assert step.decide(ctx).reason == f"point {L.lb_static_current} at {digest}"
