"""The doctor's pure parsers, on outputs recorded on a real host (tests/unit/recorded/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.diagnose import boot_failure
from garrison.facts import doctor as F

REC = Path(__file__).resolve().parent / "recorded"


def rec(name: str) -> str:
    return (REC / name).read_text()


# ---- paths and permissions --------------------------------------------------------


def test_stat_records_from_stat_and_find_formats():
    stats = F.parse_stat_records(rec("stat_sample.txt"))
    run = stats["/srv/ave_caesar/run"]
    assert (run.mode, run.owner, run.group, run.kind) == (0o2750, "ave_caesar", "www-data", "d")
    assert run.ls() == "drwxr-s--- ave_caesar www-data /srv/ave_caesar/run"
    assert stats["/srv/ave_caesar/run/green.sock"].kind == "s"
    assert stats["/etc/nginx/sites-enabled/ave_caesar.conf"].kind == "l"
    assert stats["/srv/ave_caesar/shared/.env"].mode == 0o600
    # find -printf FIND_FORMAT: type as one letter, mtime with a fraction.
    found = F.parse_stat_records("-rw-------|600|root|root|f|1795551706.1234567890|/srv/a/static/x.png\n")
    assert found["/srv/a/static/x.png"].kind == "f" and found["/srv/a/static/x.png"].mode == 0o600


def test_stat_records_skip_garbage():
    assert F.parse_stat_records(None) == {}
    assert F.parse_stat_records("") == {}
    text = "stat: cannot statx '/x': No such file or directory\nnot|enough|fields\n-rw|9z9|a|b|f|1|/bad-octal\n"
    assert F.parse_stat_records(text) == {}


def test_components():
    assert F.components("/srv/app/run/blue.sock") == ["/", "/srv", "/srv/app", "/srv/app/run", "/srv/app/run/blue.sock"]
    assert F.components("/") == ["/"]
    assert F.components("/srv//app/") == ["/", "/srv", "/srv/app"]


def test_can_follows_the_kernel():
    stats = F.parse_stat_records(rec("stat_sample.txt") + rec("stat_pyenv.txt"))
    run, sock, root = stats["/srv/ave_caesar/run"], stats["/srv/ave_caesar/run/green.sock"], stats["/root"]
    assert F.can(run, "www-data", ("www-data",), "x") is True  # group www-data, g+x
    assert F.can(run, "nobody", ("nogroup",), "x") is False  # other has nothing
    assert F.can(sock, "www-data", ("www-data",), "w") is True  # 0777
    assert F.can(root, "ave_caesar", ("ave_caesar",), "x") is False  # the pyenv trap
    assert F.can(root, "root", None, "x") is True
    # The owner gets the owner's bits only, even when "other" would allow more.
    odd = F.StatRecord("/x", 0o077, "d---rwxrwx", "app", "app", "d", 0)
    assert F.can(odd, "app", ("app",), "x") is False
    # Unknown groups: decidable only when group and other agree.
    assert F.can(run, "www-data", None, "x") is None
    assert F.can(root, "someone", None, "x") is False


def test_parse_groups():
    assert F.parse_groups("www-data adm\n") == ("www-data", "adm")
    assert F.parse_groups("") is None and F.parse_groups(None) is None


# ---- sockets, disks, firewall ---------------------------------------------------------


def test_ss_unix_and_tcp():
    unix = F.parse_ss(rec("ss_lxnH.txt"))
    assert any(ln.local == "/srv/ave_caesar/run/green.sock" for ln in unix)
    assert all(ln.port is None for ln in unix if ln.local.startswith("/"))
    tcp = F.parse_ss(rec("ss_ltnpH.txt"))
    on80 = F.tcp_listeners(tcp, 80)
    assert {ln.local for ln in on80} == {"0.0.0.0:80", "[::]:80"}
    assert {ln.process for ln in on80} == {"nginx"}
    assert F.tcp_listeners(tcp, 80, "127.0.0.1")  # 0.0.0.0 covers loopback
    assert not F.tcp_listeners(tcp, 9)
    assert F.parse_ss("") == [] and F.parse_ss(None) == [] and F.parse_ss("LISTEN 0") == []


def test_df():
    rows = F.parse_df(rec("df_P.txt"))
    assert [(r.filesystem, r.used_percent, r.mount) for r in rows] == [("/dev/vda", 23, "/"), ("/dev/vda", 23, "/")]
    assert F.parse_df("Filesystem 1024-blocks Used Available Capacity Mounted on\n") == []
    assert F.parse_df("df: /srv/x: No such file or directory\n") == [] and F.parse_df(None) == []
    spaced = F.parse_df("/dev/sdb1 100 99 1 99% /mnt/my disk\n")
    assert spaced[0].mount == "/mnt/my disk" and spaced[0].used_percent == 99


@pytest.mark.parametrize(
    ("sample", "active", "allowed", "rule"),
    [
        ("ufw_verbose_web.txt", True, True, "80,443/tcp (Nginx Full) ALLOW IN Anywhere"),
        ("ufw_verbose_ssh_only.txt", True, False, None),  # 8000:8100 only from 10.0.0.0/8
        ("ufw_verbose_deny_first.txt", True, False, "80/tcp DENY IN Anywhere"),
        ("ufw_inactive.txt", False, False, None),
    ],
)
def test_ufw(sample, active, allowed, rule):
    status = F.parse_ufw_status(rec(sample))
    assert status is not None and status.active is active
    ok, decided = F.ufw_verdict(status, 80)
    assert ok is allowed
    assert (decided.line if decided else None) == rule


def test_ufw_details():
    web = F.parse_ufw_status(rec("ufw_verbose_web.txt"))
    assert web.default_incoming == "deny"
    # A long To column leaves one space before the action: still parsed.
    assert web.rules[-1].to == "80,443/tcp (Nginx Full (v6))" and web.rules[-1].source == "Anywhere (v6)"
    assert F.ufw_verdict(web, 22)[0] and F.ufw_verdict(web, 443)[0] and not F.ufw_verdict(web, 8080)[0]
    ssh = F.parse_ufw_status(rec("ufw_verbose_ssh_only.txt"))
    assert ssh.rules[1].to == "8000:8100/tcp"
    assert F.parse_ufw_status(rec("ufw_not_root.txt")) is None
    assert F.parse_ufw_status("") is None and F.parse_ufw_status(None) is None
    udp = F.parse_ufw_status("Status: active\nDefault: deny (incoming)\nTo Action From\n-- ------ ----\n80/udp ALLOW IN Anywhere\n")
    assert not F.ufw_verdict(udp, 80)[0]
    anything = F.parse_ufw_status("Status: active\nDefault: allow (incoming), allow (outgoing)\n")
    assert F.ufw_verdict(anything, 80) == (True, None)


# ---- nginx --------------------------------------------------------------------------


def test_nginx_test_messages():
    syntax = F.parse_nginx_test(rec("nginx_t_syntax.err"))
    assert syntax[0].level == "emerg" and syntax[0].text.startswith('unexpected "}"')
    assert (syntax[0].file, syntax[0].line) == ("/tmp/doctorlab/ngt/sites/zdt.conf", 10)
    dup = F.parse_nginx_test(rec("nginx_t_dupdefault.err"))[0]
    assert "a duplicate default server for 0.0.0.0:80" in dup.text and dup.line == 5
    warn = F.parse_nginx_test(rec("nginx_T_conflict.err"))[0]
    assert warn.level == "warn" and warn.file is None and 'conflicting server name "zdt.test"' in warn.text
    # Without -e, what nginx finds after reading `error_log` comes in its log format.
    logged = F.parse_nginx_test(rec("nginx_T_dupdefault.err"))[0]
    assert logged.level == "emerg" and logged.text == "a duplicate default server for 0.0.0.0:80 in /tmp/doctorlab/ngt/sites/zdt.conf:5"
    assert (logged.file, logged.line) == ("/tmp/doctorlab/ngt/sites/zdt.conf", 5)
    assert logged.raw.startswith("2026/11/24 20:45:38 [emerg] 25242#25242: a duplicate")
    assert F.parse_nginx_test(rec("nginx_T_syntax.err"))[0].text == 'unexpected "}" in /tmp/doctorlab/ngt/sites/zdt.conf:10'
    assert F.parse_nginx_test(rec("nginx_T_system.err")) == []
    assert F.parse_nginx_test(None) == [] and F.parse_nginx_test("garbage\n") == []


def test_server_blocks_of_the_machine():
    blocks = F.parse_server_blocks(rec("nginx_T_system.out"))
    by_file = {b.file: b for b in blocks}
    sample = by_file["/etc/nginx/sites-enabled/ave_caesar.conf"]
    assert sample.names == ("localhost",)
    assert sample.default_on(80) is not None and [ln.address for ln in sample.listens] == ["*", "[::]"]
    zdt = by_file["/etc/nginx/sites-enabled/zdt.conf"]
    assert zdt.names == ("zdt.test",) and zdt.default_on(80) is None and zdt.on_port(80)
    # The mail/stream examples in Debian's nginx.conf are comments; upstream `server` lines are not blocks.
    assert set(by_file) == {"/etc/nginx/sites-enabled/ave_caesar.conf", "/etc/nginx/sites-enabled/zdt.conf"}


def test_server_blocks_in_read_order():
    blocks = F.parse_server_blocks(rec("nginx_T_conflict.out"))
    assert [b.file.rsplit("/", 1)[1] for b in blocks] == ["default", "other.conf", "zdt.conf"]
    default = blocks[0]
    assert default.names == ("_",) and default.default_on(80).line == 2  # line numbers are the file's own
    assert blocks[1].names == ("zdt.test", "www.other.test")


def test_server_blocks_edge_cases():
    dump = (
        "# configuration file /etc/nginx/sites-enabled/a:\n"
        "server { server_name a.test; }  # no listen: *:80\n"
        'server {\n  listen 127.0.0.1:8080 default;\n  listen unix:/run/x.sock;\n  server_name "b.test";\n'
        "  location / { if ($x) { return 404; } }\n}\n"
        "# configuration file /etc/nginx/stream.conf:\nstream { server { listen 53; } }\n"
    )
    a, b = F.parse_server_blocks(dump)
    assert a.listens[0].port == 80 and a.names == ("a.test",)
    assert b.default_on(8080).address == "127.0.0.1" and b.listens[1].port is None and b.names == ("b.test",)
    assert F.parse_server_blocks(None) == [] and F.parse_server_blocks("server {") == []
    assert F.parse_server_blocks("# configuration file /x:\n}}} server { listen") == []


def test_grep_hits_without_comments():
    text = (
        "/etc/nginx/sites-enabled/default:22:\tlisten 80 default_server;\n"
        "/etc/nginx/sites-enabled/default:27:\t# listen 443 ssl default_server;\n"
        "garbage\n"
    )
    assert F.parse_grep(text) == [F.GrepHit("/etc/nginx/sites-enabled/default", 22, "listen 80 default_server;")]
    assert F.parse_grep(None) == []


def test_nginx_times_and_directives():
    assert [F.nginx_seconds(v) for v in ("60s", "60", "2m", "1h", "500ms", "", None, "x")] == [60, 60, 120, 3600, 0, None, None, None]
    site = "  # proxy_read_timeout 1s;\n  proxy_read_timeout 90s;\n  proxy_read_timeout 5s;\n"
    assert F.parse_directive(site, "proxy_read_timeout") == "90s"
    assert F.parse_directive(None, "x") is None


def test_nginx_log_lines():
    lines = F.parse_nginx_log(rec("nginx_site_error.log"), "1795551979 +0000\n")
    assert [ln.level for ln in lines] == ["error", "crit", "crit", "error", "error"]
    assert "upstream prematurely closed connection" in lines[4].message
    assert lines[0].when == 1795551928.0
    assert lines[1].message.startswith("connect() to unix:/tmp/doctorlab/run/denied.sock failed (13: Permission denied)")
    assert F.short_nginx_line(lines[0]) == (
        "upstream timed out (110: Connection timed out) while reading response header from upstream (GET /nginxto/slow HTTP/1.1)"
    )
    assert F.short_nginx_line(lines[3]).startswith('open() "/tmp/doctorlab/static/img/a.txt" failed (13: Permission denied)')
    # Local times need the host's offset: 20:25:28 at +0200 is 18:25:28 UTC.
    assert F.parse_nginx_log(rec("nginx_site_error.log"), "1 +0200")[0].when == 1795551928.0 - 7200
    assert all(ln.when is None for ln in F.parse_nginx_log(rec("nginx_site_error.log"), None))
    assert F.parse_nginx_log("not a log line\n") == [] and F.parse_nginx_log(None) == []
    bind = F.parse_nginx_log(rec("nginx_bind_in_use.log"))
    assert bind[0].level == "emerg" and "(98: Address already in use)" in bind[0].message


def test_clock():
    assert F.parse_clock("1795551979 +0000\n")[0] == 1795551979.0
    assert F.parse_clock("1 -0530")[1].total_seconds() == -(5 * 3600 + 30 * 60)
    assert F.parse_clock("") is None and F.parse_clock(None) is None and F.parse_clock("now") is None


# ---- gunicorn ---------------------------------------------------------------------------


def test_gunicorn_log_attributes_tracebacks_to_their_pid():
    lines = F.parse_gunicorn_log(rec("gunicorn_worker_timeout.log"))
    timeout = [ln for ln in lines if "WORKER TIMEOUT" in ln.message]
    assert len(timeout) == 1 and timeout[0].pid == 12970 and timeout[0].level == "CRITICAL"
    tb = [ln for ln in lines if ln.message.startswith("Traceback")]
    assert tb[0].pid == 12975 and tb[0].level == ""
    assert F.parse_gunicorn_log(None) == [] and F.parse_gunicorn_log("\n\n") == []


def test_boot_failures_of_recorded_logs():
    assert boot_failure(F.last_boot(rec("gunicorn_import_error.log"))).summary == (
        "ModuleNotFoundError: No module named 'nope_not_installed'"
    )
    gevent = boot_failure(F.last_boot(rec("gunicorn_gevent_missing.log")))
    assert gevent is not None and "gevent" in gevent.summary
    assert boot_failure(F.last_boot(rec("gunicorn_worker_timeout.log"))) is None
    # last_boot keeps only the newest master's lines.
    two = "[t] [1] [INFO] Starting gunicorn 27\nold\n[t] [2] [INFO] Starting gunicorn 27\nnew\n"
    assert F.last_boot(two) == "[t] [2] [INFO] Starting gunicorn 27\nnew"
    assert F.last_boot(None) == ""


def test_gunicorn_settings_of_the_rendered_file():
    from garrison.config import parse_config
    from garrison.layout import Layout
    from garrison.render import gunicorn_conf

    cfg = parse_config({"app": {"name": "zdt", "entry": "main:app"}, "gunicorn": {"timeout": 7, "worker_class": "sync"}})
    conf = gunicorn_conf(cfg, Layout.of(cfg))
    assert F.parse_gunicorn_setting(conf, "timeout") == "7"
    assert F.parse_gunicorn_setting(conf, "worker_class") == "sync"
    assert F.parse_gunicorn_setting(conf, "wsgi_app") == "main:app"
    assert F.parse_gunicorn_setting(None, "timeout") is None


# ---- service managers and releases ------------------------------------------------------


def test_supervisor_status_lines():
    live = F.parse_supervisor_status(rec("supervisorctl_status.txt").splitlines()[1])
    assert live.state == "RUNNING" and live.running and live.line.startswith("zdt-blue RUNNING pid")
    states = [F.parse_supervisor_status(ln) for ln in rec("supervisorctl_lab_states.txt").splitlines()]
    assert [(s.state, s.running, s.stopped, s.changing) for s in states] == [
        ("STOPPED", False, True, False), ("BACKOFF", False, False, False), ("FATAL", False, False, False),
    ]
    assert F.parse_supervisor_status("zdt-blue                         STARTING  ").changing
    assert F.parse_supervisor_status(rec("supervisorctl_no_such_process.txt")).state == "NO_SUCH_PROCESS"
    down = F.parse_supervisor_status(rec("supervisorctl_down.txt"))
    assert down.state == "MANAGER_DOWN" and "no such file" in down.line
    assert F.parse_supervisor_status(rec("supervisorctl_no_config.txt")).state == "MANAGER_MISSING"
    assert F.parse_supervisor_status("") is None and F.parse_supervisor_status(None) is None
    assert F.parse_supervisor_status("garbage") is None


def test_systemd_show():
    unit = "zdt@blue.service"
    active = F.parse_systemd_show(rec("systemctl_show_active.txt"), unit)
    assert active.running and active.line == "zdt@blue.service: active (running), result success"
    assert F.parse_systemd_show(rec("systemctl_show_inactive.txt"), unit).stopped
    crashing = F.parse_systemd_show(rec("systemctl_show_auto_restart.txt"), unit)
    assert not crashing.running and not crashing.stopped and not crashing.changing and "auto-restart" in crashing.line
    assert F.parse_systemd_show("ActiveState=activating\nSubState=start\n", unit).changing
    assert F.parse_systemd_show("", unit) is None and F.parse_systemd_show("Foo=bar", unit) is None


def test_release_names():
    text = "20261124T201813Z-3bd1c24bd015\n20261124T201719Z-217350dc3cce\n20261124T202000Z-aaaa.partial\n\n"
    assert F.parse_release_names(text) == ["20261124T201719Z-217350dc3cce", "20261124T201813Z-3bd1c24bd015"]
    assert F.parse_release_names(None) == []


def test_release_facts_venv():
    rel = F.ReleaseFacts(id="r", path="/srv/a/releases/r", venv_bin="/srv/a/venvs/h/bin")
    assert rel.venv == "/srv/a/venvs/h"
    assert F.ReleaseFacts(id="r", path="/p").venv is None


# ---- collect() over a fake host: it runs, it only reads ---------------------------------


class ReadOnlyHost:
    """An executor that answers like a host with nothing deployed, records each command and refuses writes."""

    name = "fake"

    def __init__(self, uid: str = "0"):
        self.uid = uid
        self.argvs: list[tuple[str, ...]] = []

    def run(self, argv, *, input=None, env=None, check=True, timeout=None):
        from garrison.hosts import Result

        argv = tuple(argv)
        self.argvs.append(argv)
        if argv == ("id", "-u"):
            return Result(argv, 0, self.uid + "\n", "")
        return Result(argv, 1, "", "")

    def read_file(self, path):
        return None

    def stat(self, path):
        return None

    def exists(self, path):
        return False

    def which(self, program):
        return None

    def __getattr__(self, name):  # write_file, extract_tar, lock, ensure_*, remove …
        raise AssertionError(f"doctor must not call {name}")


# Commands that only read; the app's import runs as its user through runuser.
READ_ONLY = {
    "id", "find", "readlink", "stat", "nginx", "grep", "ss", "df", "date", "tail", "kill", "runuser",
    "/usr/bin/python3", "/opt/garrison/venv/bin/supervisorctl", "systemctl", "ufw", "flock", "sh",
}


def test_collect_only_reads(tmp_path):
    from garrison.project import find_project
    from garrison.workflows.doctor import collect

    (tmp_path / "garrison.toml").write_text('[app]\nname = "demo"\nentry = "main:app"\nrequirements = ""\n')
    (tmp_path / "main.py").write_text("app = None\n")
    host = ReadOnlyHost()
    facts = collect(find_project(tmp_path), host)
    assert {argv[0] for argv in host.argvs} <= READ_ONLY
    assert ("nginx", "-T") in host.argvs
    assert all(argv[1:2] != ("-s",) for argv in host.argvs if argv[0] == "nginx")  # never a reload
    assert all(argv[1] == "0" for argv in host.argvs if argv[0] == "kill")
    assert all("status" in argv for argv in host.argvs if argv[0].endswith("supervisorctl"))
    assert facts.state is None and facts.live is None and facts.failed is None
    assert facts.config_path == str(tmp_path / "garrison.toml")


def test_collect_needs_root(tmp_path):
    from garrison.errors import HostError
    from garrison.project import find_project
    from garrison.workflows.doctor import collect

    (tmp_path / "garrison.toml").write_text('[app]\nname = "demo"\nentry = "main:app"\nrequirements = ""\n')
    with pytest.raises(HostError, match="must run as root"):
        collect(find_project(tmp_path), ReadOnlyHost(uid="1000"))


class LookingHost(ReadOnlyHost):
    """A host where every path exists and `readlink -f` resolves each to itself, ufw is
    installed, PID 1 is systemd and nginx has a pid: collect() runs every kind of command."""

    def run(self, argv, *, input=None, env=None, check=True, timeout=None):
        from garrison.hosts import Result

        res = super().run(argv, input=input, env=env, check=check, timeout=timeout)
        if tuple(argv[:3]) == ("readlink", "-f", "--"):
            return Result(tuple(argv), 0, argv[3] + "\n", "")
        return res

    def read_file(self, path):
        return {"/proc/1/comm": b"systemd\n", "/run/nginx.pid": b"4242\n"}.get(path)

    def exists(self, path):
        return True

    def which(self, program):
        return f"/usr/sbin/{program}"


# What collect() runs that is not a fact of facts/doctor.py, and why.
NOT_FACT_ARGV = {
    ("id", "-u"): "the root check before anything is read",
    ("/usr/bin/python3",): "the health probe (garrison/hosts/probe.py), and the app's import check as its user "
                           "through garrison-exec (its script lives in workflows/doctor.py)",
}


@pytest.mark.parametrize("host_kind", [ReadOnlyHost, LookingHost])
def test_collect_runs_the_argv_facts_doctor_builds(tmp_path, host_kind):
    # workflows/doctor.py still builds its argv inline: these must be the same tuples, so
    # that it can take them from facts/ without a change on the host.
    from garrison import commands as C
    from garrison.layout import SLOTS, Layout, ToolLayout
    from garrison.project import find_project
    from garrison.workflows import doctor as W

    (tmp_path / "garrison.toml").write_text('[app]\nname = "demo"\nentry = "main:app"\nrequirements = ""\n[[app.static]]\n')
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "static").mkdir()
    project = find_project(tmp_path)
    cfg, L, T = project.config, Layout.of(project.config), ToolLayout()
    host = host_kind()
    W.collect(project, host)

    fixed = {
        F.nginx_dump(), F.default_servers(), F.tcp_sockets(), F.unix_sockets(), F.clock(), F.ufw_status_verbose(),
        F.groups_of("www-data"), F.groups_of(cfg.user), F.release_names(L.releases), F.deploy_lock_free(L.lock),
        F.log_tail(L.error_log), F.log_tail(L.nginx_error_log), C.kill("0", 4242),
        *(F.systemd_state(L.systemd_instance(s)) for s in SLOTS),
        *(F.supervisor_state(T, L.supervisor_program(s)) for s in SLOTS),
    }
    with_paths = {  # argv whose paths depend on what was found: same command, same options
        "stat": lambda a: F.stat_paths(a[4:]),
        "df": lambda a: F.disk_use(a[2:]),
        "readlink": lambda a: F.resolved(a[3]),
        "sh": lambda a: F.static_denied(a[4]),
    }
    others = []
    for argv in host.argvs:
        if argv in fixed or any(argv[: len(p)] == p for p in NOT_FACT_ARGV):
            continue
        if argv[0] in with_paths and with_paths[argv[0]](argv) == argv:
            continue
        others.append(argv)
    assert not others, f"argv that facts/doctor.py does not build: {others}"
    kinds = {a[0] for a in host.argvs}
    if host_kind is LookingHost:  # the richer host reaches every branch
        assert {"sh", "flock", "ufw", "systemctl", "kill", "/usr/bin/python3", "readlink", "stat", "df"} <= kinds, kinds
