"""The steps' decisions and wait loops, on the strict fake host and the fake clock.

Each test sets the scene on a FakeHost (files, and exactly the commands a step
may run), asks a step to decide (and sometimes to apply), and checks the
Decision and what ran. A command the test did not allow fails it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from garrison import render as R
from garrison.config import parse_config
from garrison.errors import DeployError
from garrison.layout import Layout
from garrison.project import Project
from garrison.state import HostFacts
from garrison.steps import Context, nginx, slots
from garrison.steps.drain import Drain, wait_nginx_drained
from garrison.steps.hook import ReleaseHook
from garrison.steps.prune import Prune
from garrison.steps.release import Release, rollback_target
from garrison.steps.slot import Slot
from garrison.steps.upstream import Upstream
from garrison.steps.venv import Venv, requirements_hash, server_specs
from garrison.workflows import Run
from tests.fakehost import FakeClock, FakeHost, Reply

CONFIG = {"app": {"name": "shop", "entry": "main:app", "health_deadline": 10}, "hooks": {"release": "flask db upgrade"}}


def make_ctx(tmp_path: Path, host: FakeHost, clock: FakeClock | None = None, config: dict | None = None) -> Context:
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "requirements.txt").write_text("flask\n")
    cfg = parse_config(config or CONFIG)
    project = Project(config=cfg, source=tmp_path / "garrison.toml", root=tmp_path)
    ctx = Context(project=project, host=host, run=Run(), clock=clock or FakeClock())
    ctx.facts = HostFacts(systemd=False, ipv6=False, nginx_user="www-data", uv="/opt/garrison/venv/bin/uv")
    return ctx


# -- release and venv ----------------------------------------------------------------------


def test_release_reuses_the_release_that_holds_this_code(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host)
    first = Release().decide(ctx)
    assert first.action == "change" and ctx.new_release
    rid = ctx.rid
    assert rid is not None and rid.startswith("20260101T000000Z-")  # named by the (fake) clock and the hash
    host.add_file(f"/srv/shop/releases/{rid}/.garrison-release", b"{}")
    ctx2 = make_ctx(tmp_path, host)
    ctx2.state = {"releases": [rid, "20250101T000000Z-aaaaaaaaaaaa"]}
    again = Release().decide(ctx2)
    assert again.action == "unchanged" and ctx2.rid == rid and not ctx2.new_release
    assert ctx2.state["releases"][-1] == rid  # most recently used last: pruning keeps it
    host.assert_done()


def test_venv_is_built_only_when_the_requirements_change(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host)
    ctx.rid, ctx.reqhash = "r1", requirements_hash(ctx)
    venv = Layout.of(ctx.cfg).venv(ctx.reqhash)
    assert Venv().decide(ctx).action == "change"  # no venv yet
    host.add_file(f"{venv}/.garrison-complete")
    ctx.new_release = True  # the release step links a new release to it
    assert Venv().decide(ctx).action == "unchanged"
    ctx.new_release = False  # a kept release that points elsewhere (a new server spec)
    host.add_symlink("/srv/shop/releases/r1/.venv", "/srv/shop/venvs/other")
    d = Venv().decide(ctx)
    assert d.action == "change" and "link" in d.reason and d.data is False
    host.assert_done()


def test_the_venv_holds_only_what_the_app_server_needs():
    gthread = parse_config({"app": {"name": "a", "entry": "m:app"}})
    gevent = parse_config({"app": {"name": "a", "entry": "m:app"}, "gunicorn": {"worker_class": "gevent"}})
    asgi = parse_config({"app": {"name": "a", "entry": "m:app"}, "gunicorn": {"worker_class": "uvicorn"}})
    assert not any("gevent" in s for s in server_specs(gthread))
    assert any("gevent" in s for s in server_specs(gevent))
    assert any(s.startswith("uvicorn-worker") for s in server_specs(asgi))
    assert not any("uvicorn" in s for s in server_specs(gthread))


# -- the cut-over --------------------------------------------------------------------------


def scene_with_live_blue(tmp_path: Path, host: FakeHost) -> Context:
    ctx = make_ctx(tmp_path, host)
    L = Layout.of(ctx.cfg)
    host.add_file(L.nginx_upstream, R.nginx_upstream(ctx.cfg, L, "blue"))
    host.add_file(L.env_file, b'SECRET="x"\n', mode=0o600)
    ctx.live = "blue"
    ctx.rid, ctx.reqhash = "r2", "h2"
    return ctx


def test_same_fingerprint_and_running_means_nothing_to_do(tmp_path):
    host = FakeHost()
    ctx = scene_with_live_blue(tmp_path, host)
    fp = slots.fingerprint(ctx, "r2", "h2")
    ctx.state = {"slots": {"blue": {"release": "r2", "fingerprint": fp}}}
    host.expect(("/opt/garrison/venv/bin/supervisorctl", "-c", "/etc/garrison/supervisord.conf", "status", "shop-blue"),
                stdout="shop-blue  RUNNING  pid 10, uptime 0:01:00\n")
    assert Slot().decide(ctx).action == "unchanged"
    assert ReleaseHook().decide(ctx).action == "skip"  # no new slot: the hook does not run
    assert Drain().decide(ctx).action == "skip"
    assert Upstream().decide(ctx).action == "unchanged"
    host.assert_done()


def test_new_code_cuts_over_to_the_idle_slot_after_the_hook(tmp_path):
    host = FakeHost()
    ctx = scene_with_live_blue(tmp_path, host)
    ctx.state = {"current": "r1", "slots": {"blue": {"release": "r1", "fingerprint": "old"}}}
    hook = ReleaseHook().decide(ctx)  # decided first: it needs the slot's decision
    assert hook.action == "change"
    d = Slot().decide(ctx)
    assert d.action == "change" and "new code" in d.reason
    assert ctx.cutover is not None and ctx.cutover.new == "green" and ctx.serving == "green"
    up = Upstream().decide(ctx)
    assert up.action == "change" and any("green" in line for line in up.diff if line.startswith("+"))
    assert Drain().decide(ctx).action == "change"
    host.assert_done()


def test_env_change_is_a_new_fingerprint(tmp_path):
    host = FakeHost()
    ctx = scene_with_live_blue(tmp_path, host)
    before = slots.fingerprint(ctx, "r2", "h2")
    host.add_file(Layout.of(ctx.cfg).env_file, b'SECRET="y"\n', mode=0o600)
    assert slots.fingerprint(ctx, "r2", "h2") != before


def test_rollback_target_is_the_previous_live_release():
    state = {"releases": ["a", "b", "c"], "current": "c", "history": ["a", "c", "b", "c"]}
    assert rollback_target(state, None) == "b"
    assert rollback_target(state, "a") == "a"
    with pytest.raises(DeployError, match="not on this host"):
        rollback_target(state, "zzz")


def test_prune_keeps_the_current_the_serving_and_the_newest(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host, config={"app": {"name": "shop", "entry": "m:app", "keep_releases": 2}})
    ctx.state = {"releases": ["r1", "r2", "r3", "r4"], "current": "r1", "slots": {"green": {"release": "r2"}}}
    ctx.rid, ctx.reqhash = "r4", "v4"
    for rid, v in (("r1", "v1"), ("r2", "v2"), ("r3", "v3"), ("r4", "v4")):
        host.add_symlink(f"/srv/shop/releases/{rid}/.venv", f"/srv/shop/venvs/{v}")
    host.expect(("find", "/srv/shop/venvs", "-mindepth", "1", "-maxdepth", "1"),
                stdout="/srv/shop/venvs/v1\n/srv/shop/venvs/v2\n/srv/shop/venvs/v3\n/srv/shop/venvs/v4\n")
    d = Prune().decide(ctx)
    # r3, r4 are the newest two, r1 is current and r2 runs in a slot: all stay, and their venvs.
    assert d.action == "unchanged" and "4 release(s) kept" in d.reason
    host.assert_done()


def test_prune_drops_old_releases_and_their_venvs(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host, config={"app": {"name": "shop", "entry": "m:app", "keep_releases": 1}})
    ctx.state = {"releases": ["r1", "r2", "r3"], "current": "r3", "slots": {"blue": {"release": "r3"}}}
    ctx.rid, ctx.reqhash = "r3", "v3"
    for rid, v in (("r1", "v1"), ("r2", "v2"), ("r3", "v3")):
        host.add_symlink(f"/srv/shop/releases/{rid}/.venv", f"/srv/shop/venvs/{v}")
    host.expect(("find", "/srv/shop/venvs", "-mindepth", "1", "-maxdepth", "1"),
                stdout="/srv/shop/venvs/v1\n/srv/shop/venvs/v2\n/srv/shop/venvs/v3\n")
    d = Prune().decide(ctx)
    assert d.action == "change"
    gone, venvs, keep = d.data
    assert gone == ["r1", "r2"] and venvs == ["/srv/shop/venvs/v1", "/srv/shop/venvs/v2"] and keep == ["r3"]
    host.assert_done()


# -- wait loops ----------------------------------------------------------------------------


def probe_reply(clock: FakeClock, answers: list[dict]):
    """A probe that answers from answers (the last one forever), spending its window on the clock."""

    def respond(argv, _input):
        clock.advance(float(argv[6]))  # the probe's deadline: it waits that long when nothing answers
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return Reply(stdout=json.dumps(answer) + "\n")

    return respond


def test_a_slot_that_never_answers_times_out_at_the_deadline(tmp_path):
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, clock)
    host.expect(("/usr/bin/python3", "-c", ...), times=None,
                respond=probe_reply(clock, [{"ok": False, "status": 502, "error": "HTTP 502"}]))
    host.expect(("tail", "-c", ...), times=None, stdout="")
    t0 = clock.monotonic()
    result = slots.wait_healthy(ctx, "blue", 0)
    assert result["timeout"] and not result["ok"]
    assert 10 <= clock.monotonic() - t0 <= 12  # app.health_deadline = 10
    host.assert_done()


def test_a_client_error_stops_waiting_at_once(tmp_path):
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, clock)
    host.expect(("/usr/bin/python3", "-c", ...), times=3,
                respond=probe_reply(clock, [{"ok": False, "status": 400, "body": "Bad Request (400)"}]))
    host.expect(("tail", "-c", ...), times=2, stdout="")
    result = slots.wait_healthy(ctx, "blue", 0)
    assert result["status"] == 400 and not result.get("timeout")
    assert "ALLOWED_HOSTS" in slots.health_failure(ctx, result)
    host.assert_done()


def test_a_master_that_dies_after_its_first_answer_is_not_healthy(tmp_path):
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, clock)
    L = Layout.of(ctx.cfg)
    host.add_file(L.pidfile("blue"), b"4242\n")
    host.expect(("/usr/bin/python3", "-c", ...), times=None, respond=probe_reply(clock, [{"ok": True, "status": 200}]))
    host.expect(("kill", "-0", "4242"), rc=0)
    host.expect(("kill", "-0", "4242"), rc=1)  # gone on the second look
    host.expect(("/opt/garrison/venv/bin/supervisorctl", ...), stdout="shop-blue  BACKOFF  Exited too quickly\n")
    result = slots.wait_healthy(ctx, "blue", 0)
    assert not result["ok"] and "BACKOFF" in result["exited"]
    host.assert_done()


def test_drain_waits_for_the_old_workers_then_gives_up_at_the_deadline(tmp_path):
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, clock, config={"app": {"name": "shop", "entry": "m:app"}, "gunicorn": {"graceful_timeout": 5}})
    host.add_file("/run/nginx.pid", b"100\n")
    shutting = "100 1 nginx: master process\n201 100 nginx: worker process is shutting down\n202 100 nginx: worker process\n"
    host.expect(("ps", "-eo", "pid=,ppid=,args="), stdout=shutting, times=3)
    host.expect(("ps", "-eo", "pid=,ppid=,args="), stdout="100 1 nginx: master process\n202 100 nginx: worker process\n")
    assert wait_nginx_drained(ctx) == "finished"
    host.expect(("ps", "-eo", "pid=,ppid=,args="), stdout=shutting, times=None)
    t0 = clock.monotonic()
    assert wait_nginx_drained(ctx).startswith("still finishing (1)")
    assert 5 <= clock.monotonic() - t0 <= 5.2
    host.assert_done()


def test_nginx_reload_waits_for_new_workers_and_fails_clearly_when_none_come(tmp_path):
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, clock)
    host.add_file("/run/nginx.pid", b"100\n")
    old = "100 1 nginx: master process\n201 100 nginx: worker process\n"
    new = "100 1 nginx: master process\n201 100 nginx: worker process is shutting down\n305 100 nginx: worker process\n"
    host.expect(("nginx", "-t", "-q"), times=2)
    host.expect(("kill", "-0", "100"), times=2)
    host.expect(("ps", "-eo", "pid=,ppid=,args="), stdout=old, times=3)  # before, then twice unchanged
    host.expect(("nginx", "-s", "reload"), times=2)
    host.expect(("ps", "-eo", "pid=,ppid=,args="), stdout=new)
    assert nginx.reload(ctx) == "reloaded nginx"
    host.expect(("ps", "-eo", "pid=,ppid=,args="), stdout=old, times=None)
    with pytest.raises(DeployError, match="did not start workers with the new config within 15 s"):
        nginx.reload(ctx)
    host.assert_done()


# -- nginx config goes live only once nginx -t has judged it ----------------------------------


def test_a_rejected_candidate_never_touches_the_live_file(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host)
    site = "/etc/nginx/sites-available/shop.conf"
    host.add_file(site, b"server { listen 80; }\n")
    scratch = "/var/lib/garrison/nginx-check/shop"

    def copy_tree(argv, _input):
        host.add_file(f"{scratch}/nginx.conf", b"include /etc/nginx/sites-enabled/*;\n")
        return Reply()

    host.expect(("cp", "-rL", "/etc/nginx", scratch), respond=copy_tree)
    host.expect(("find", scratch, "-type", "f", "-exec", ...))
    host.expect(("nginx", "-t", "-q", "-c", f"{scratch}/nginx.conf"), rc=1,
                stderr=f'nginx: [emerg] unknown directive "bogus" in {scratch}/sites-available/shop.conf:1')
    change = nginx.NginxChange(puts={site: "bogus;\n"})
    with pytest.raises(DeployError) as exc:
        nginx.put_live(ctx, change)
    assert "nginx -t rejected the new config, the live files are untouched" in str(exc.value)
    assert "/etc/nginx/sites-available/shop.conf:1" in str(exc.value)  # the live path, not the scratch one
    assert host.read_file(site) == b"server { listen 80; }\n"
    assert host.node(scratch) is None  # the scratch copy is gone
    assert not any(a[:2] == ("nginx", "-s") for a in host.ran)
    host.assert_done()


def test_an_accepted_candidate_is_written_and_nginx_reloaded(tmp_path):
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, clock)
    site, link = "/etc/nginx/sites-available/shop.conf", "/etc/nginx/sites-enabled/shop.conf"
    scratch = "/var/lib/garrison/nginx-check/shop"
    host.add_file("/run/nginx.pid", b"100\n")

    def copy_tree(argv, _input):
        host.add_file(f"{scratch}/nginx.conf", b"include /etc/nginx/sites-enabled/*;\n")
        return Reply()

    host.expect(("cp", "-rL", "/etc/nginx", scratch), respond=copy_tree)
    host.expect(("find", scratch, "-type", "f", "-exec", ...))
    host.expect(("nginx", "-t", "-q", "-c", f"{scratch}/nginx.conf"))
    host.expect(("nginx", "-t", "-q"))
    host.expect(("kill", "-0", "100"))
    host.expect(("ps", "-eo", "pid=,ppid=,args="), stdout="100 1 nginx: master process\n201 100 nginx: worker process\n")
    host.expect(("nginx", "-s", "reload"))
    host.expect(("ps", "-eo", "pid=,ppid=,args="), stdout="100 1 nginx: master process\n305 100 nginx: worker process\n")
    notes = nginx.put_live(ctx, nginx.NginxChange(puts={site: "server { include /etc/nginx/x; }\n"}, links={link: site}))
    assert notes == [f"write {site}", f"enable {link}", "reloaded nginx"]
    assert host.read_file(site) == b"server { include /etc/nginx/x; }\n"
    node = host.node(link)
    assert node is not None and node.kind == "link" and node.target == site
    # In the scratch copy the candidate's own /etc/nginx/ paths pointed into the copy.
    assert nginx.put_live(ctx, nginx.NginxChange(puts={site: "server { include /etc/nginx/x; }\n"}, links={link: site})) == []
    host.assert_done()


# -- data that outlives releases -------------------------------------------------------------

PERSIST = {"app": {"name": "shop", "entry": "m:app", "persist": ["media", "db.sqlite3", "instance"]}}


def test_persist_seeds_once_from_the_release_then_only_links(tmp_path):
    from garrison.steps.persist import Persist

    host = FakeHost()
    ctx = make_ctx(tmp_path, host, config=PERSIST)
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "logo.png").write_bytes(b"png")
    rel = "/srv/shop/releases/r1"
    host.add_dir("/srv/shop/shared", mode=0o751, owner="shop", group="shop")
    host.add_file(f"{rel}/media/logo.png", b"png")  # the release as copied from the source
    ctx.rid, ctx.new_release = "r1", True
    d = Persist().decide(ctx)
    assert d.action == "change"
    assert d.reason == "seed media from the release; link media; link db.sqlite3; make instance in shared/; link instance"

    def seed(argv, _input):
        host.add_file("/srv/shop/shared/media/logo.png", b"png")
        return Reply()

    host.expect(("cp", "-a", "--", f"{rel}/media", "/srv/shop/shared/media"), respond=seed)
    host.expect(("chown", "-R", "--no-dereference", "shop:shop", "/srv/shop/shared/media"))
    Persist().apply(ctx, d)
    for path in ("media", "db.sqlite3", "instance"):
        node = host.node(f"{rel}/{path}")
        assert node is not None and node.kind == "link" and node.target == f"/srv/shop/shared/{path}"
    shared = host.node("/srv/shop/shared/instance")
    assert shared is not None and shared.kind == "dir" and shared.owner == "shop"
    assert host.node("/srv/shop/shared/db.sqlite3") is None  # the app makes its SQLite file itself
    host.assert_done()

    # The next deploy of the same release: nothing to seed, nothing to link.
    ctx2 = make_ctx(tmp_path, host, config=PERSIST)
    ctx2.rid = "r1"
    host.add_file("/srv/shop/shared/db.sqlite3", b"SQLite format 3\0", owner="shop", group="shop")
    assert Persist().decide(ctx2).action == "unchanged"
    # A new release never re-seeds: the data in shared/ wins over the release's copy.
    ctx3 = make_ctx(tmp_path, host, config=PERSIST)
    ctx3.rid, ctx3.new_release = "r2", True
    d3 = Persist().decide(ctx3)
    assert d3.reason == "link media; link db.sqlite3; link instance"
    host.assert_done()


def test_persist_paths_are_checked_in_the_config():
    from garrison.errors import ConfigError

    for bad, why in ((["../etc"], "escapes it"), (["/var/data"], "relative to the app root"),
                     (["media", "media/x"], "do not nest"), (["."], "inside the app")):
        with pytest.raises(ConfigError, match=why):
            parse_config({"app": {"name": "a", "entry": "m:app", "persist": bad}}, "garrison.toml")


def test_first_deploy_runs_once_then_never_while_the_data_exists(tmp_path):
    from garrison.steps.hook import FirstDeployHook, first_deploy_marker

    host = FakeHost()
    config = {"app": {"name": "shop", "entry": "m:app"}, "hooks": {"first_deploy": "flask --app shop init-db"}}
    ctx = scene_with_live_blue(tmp_path, host)
    ctx.project = Project(config=parse_config(config), source=tmp_path / "garrison.toml", root=tmp_path)
    ctx.state = {"current": "r1", "slots": {"blue": {"release": "r1", "fingerprint": "old"}}}
    d = FirstDeployHook().decide(ctx)
    assert d.action == "change"
    host.expect(("/usr/bin/python3", "/opt/garrison/bin/garrison-exec", "/srv/shop/shared/.env", "shop", "--",
                 "/usr/bin/env", "-C", "/srv/shop/releases/r2", ...))
    FirstDeployHook().apply(ctx, d)
    call = host.calls[-1].argv
    assert call[-3:] == ("/bin/sh", "-c", "flask --app shop init-db") and "GARRISON_SLOT=green" in call
    assert not any("SECRET" in a for a in call)  # the env file's values never reach the argv
    marker = json.loads(host.read_file(first_deploy_marker(ctx)) or b"{}")
    assert marker["release"] == "r2"
    assert FirstDeployHook().decide(ctx).action == "skip"
    host.assert_done()


def test_nginx_t_judges_the_candidate_where_nginx_reads_it_through_the_link(tmp_path):
    """A changed site whose link is already in place: the scratch copy of sites-enabled holds
    the live (here broken) file, so the candidate must be put there too before nginx -t."""
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, clock)
    site, link = "/etc/nginx/sites-available/shop.conf", "/etc/nginx/sites-enabled/shop.conf"
    scratch = "/var/lib/garrison/nginx-check/shop"
    host.add_file(site, b"server { broken\n")
    host.add_symlink(link, site)

    def copy_tree(argv, _input):
        host.add_file(f"{scratch}/nginx.conf", b"include /etc/nginx/sites-enabled/*;\n")
        host.add_file(f"{scratch}/sites-enabled/shop.conf", b"server { broken\n")  # cp -rL follows the link
        host.add_file(f"{scratch}/sites-available/shop.conf", b"server { broken\n")
        return Reply()

    def judge(argv, _input):
        seen = host.read_file(f"{scratch}/sites-enabled/shop.conf")
        return Reply(rc=0 if seen == b"server { listen 80; }\n" else 1, stderr="nginx: [emerg] unexpected end of file")

    host.expect(("cp", "-rL", "/etc/nginx", scratch), respond=copy_tree)
    host.expect(("find", scratch, "-type", "f", "-exec", ...))
    host.expect(("nginx", "-t", "-q", "-c", f"{scratch}/nginx.conf"), respond=judge)
    notes = nginx.put_live(ctx, nginx.NginxChange(puts={site: "server { listen 80; }\n"}, links={link: site}), apply=False)
    assert notes == [f"write {site}"] and host.read_file(site) == b"server { listen 80; }\n"
    host.assert_done()


def test_persist_makes_the_folder_of_a_file_the_app_creates(tmp_path):
    from garrison.steps.persist import Persist

    host = FakeHost()
    ctx = make_ctx(tmp_path, host, config={"app": {"name": "shop", "entry": "m:app", "persist": ["db/example.db"]}})
    host.add_dir("/srv/shop/shared", mode=0o751, owner="shop", group="shop")
    ctx.rid, ctx.new_release = "r1", True
    d = Persist().decide(ctx)
    assert d.reason == "make db in shared/; link db/example.db"

    def mkdir(argv, _input):
        host.add_dir("/srv/shop/shared/db", owner="shop", group="shop")
        return Reply()

    host.expect(("runuser", "-u", "shop", "--", "mkdir", "-p", "/srv/shop/shared/db"), respond=mkdir)
    Persist().apply(ctx, d)
    node = host.node("/srv/shop/releases/r1/db/example.db")
    assert node is not None and node.kind == "link" and node.target == "/srv/shop/shared/db/example.db"
    assert host.node("/srv/shop/shared/db/example.db") is None  # SQLite makes the file, in a folder that exists
    host.assert_done()
