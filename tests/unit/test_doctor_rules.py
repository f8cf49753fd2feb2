"""The doctor's rules and its choice of cause, on recorded and constructed facts.

The baseline is a real `collect()` of the deployed sample app
(recorded/collect_sample_healthy.json): all green. Each test breaks one fact
the way the failure shows on a host, using other recorded outputs where the
failure was reproduced (paths rewritten to the sample app's where noted).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from garrison.config import parse_config
from garrison.diagnose import rules as R
from garrison.facts.doctor import DoctorFacts, Output, ReleaseFacts

REC = Path(__file__).resolve().parent / "recorded"
SAMPLE_TOML = Path(__file__).resolve().parents[2] / "garrison" / "sample_app" / "garrison.toml"

# What the recording says about the deployed sample app.
REL = "/srv/ave_caesar/releases/20261124T203321Z-f892cd2de3c5"
STATIC = f"{REL}/static"
SOCK = "/srv/ave_caesar/run/blue.sock"
RUN = "/srv/ave_caesar/run"
ENV = "/srv/ave_caesar/shared/.env"
SITE = "/etc/nginx/sites-available/ave_caesar.conf"
LINK = "/etc/nginx/sites-enabled/ave_caesar.conf"
NOW = 1795552422  # the recording's clock
SUPERVISORCTL = "/opt/garrison/venv/bin/supervisorctl -c /etc/garrison/supervisord.conf"


def rec(name: str) -> str:
    return (REC / name).read_text()


def sample_data() -> dict[str, Any]:
    return tomllib.loads(SAMPLE_TOML.read_text())


def config(**sections: dict[str, Any]):
    data = sample_data()
    for key, values in sections.items():
        data.setdefault(key, {}).update(values)
    return parse_config(data)


def healthy() -> DoctorFacts:
    d = json.loads(rec("collect_sample_healthy.json"))
    d.pop("_recorded")

    def out(x: dict | None) -> Output | None:
        return None if x is None else Output(**x)

    def rel(x: dict | None) -> ReleaseFacts | None:
        return None if x is None else ReleaseFacts(**{**x, "import_check": out(x["import_check"]), "gevent_check": out(x["gevent_check"])})

    d.update(
        nginx_T=out(d["nginx_T"]), ufw=out(d["ufw"]), live=rel(d["live"]), failed=rel(d["failed"]),
        slot_status={k: out(v) for k, v in d["slot_status"].items()},
    )
    return DoctorFacts(config=parse_config(sample_data()), **d)


def replace(facts: DoctorFacts, **kw: Any) -> DoctorFacts:
    return dataclasses.replace(facts, **kw)


def with_stat(facts: DoctorFacts, path: str, symbolic: str, octal: str, owner: str | None = None, group: str | None = None) -> DoctorFacts:
    """The same stat records, with path's mode (and owner/group) changed: what chmod/chgrp would leave."""
    lines = []
    for line in facts.stats.splitlines():
        parts = line.split("|")
        if parts[-1] == path:
            parts[0], parts[1] = symbolic, octal
            parts[2] = owner or parts[2]
            parts[3] = group or parts[3]
        lines.append("|".join(parts))
    return replace(facts, stats="\n".join(lines) + "\n")


def without_stat(facts: DoctorFacts, path: str) -> DoctorFacts:
    return replace(facts, stats="".join(ln + "\n" for ln in facts.stats.splitlines() if not ln.endswith("|" + path)))


def add_stats(facts: DoctorFacts, text: str) -> DoctorFacts:
    return replace(facts, stats=facts.stats + text)


def nginx_line(recorded_line: str, at: int, **paths: str) -> str:
    """A recorded nginx error log line, re-dated to `at` and with its lab paths replaced."""
    from datetime import datetime

    line = recorded_line
    for old, new in paths.items():
        line = line.replace(old.replace("__", "/"), new)
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y/%m/%d %H:%M:%S")
    return stamp + line[19:]


def lab_nginx(n: int) -> str:
    return rec("nginx_site_error.log").splitlines()[n]


def check(rule, facts: DoctorFacts) -> R.Finding:
    finding = rule(facts)
    assert finding.status in ("ok", "warn", "fail", "unknown")
    assert finding.hop in R.HOPS
    assert "\n" not in finding.evidence and "\n" not in finding.fix  # one line each
    if finding.status in ("fail", "warn"):
        assert finding.evidence and finding.fix
    if finding.status == "ok":
        assert finding.evidence and finding.fix == ""
    return finding


# ---- the whole report ------------------------------------------------------------------


def test_the_recorded_healthy_sample_is_all_green():
    report = R.diagnose(healthy())
    assert report.ok and report.cause is None
    assert [f.status for f in report.findings] == ["ok"] * len(R.RULES)


def test_findings_follow_the_request_path():
    report = R.diagnose(healthy())
    assert [f.check for f in report.findings] == [r.__name__.removeprefix("check_") for r in R.RULES]
    hops = [R.HOPS.index(f.hop) for f in report.findings]
    assert hops == sorted(hops) and hops[0] == 0 and hops[-1] == len(R.HOPS) - 1


def test_no_facts_means_unknown_not_ok_and_no_crash():
    # With gevent workers every rule has something to check (the gevent rule included).
    facts = DoctorFacts(config=config(gunicorn={"worker_class": "gevent"}))
    for rule in R.RULES:
        assert check(rule, facts).status == "unknown", rule.__name__
    report = R.diagnose(facts)
    assert not report.ok
    assert report.cause.check == "cause" and report.cause.status == "unknown"
    assert "not probed" in report.cause.evidence


def test_garbage_facts_never_crash_a_rule():
    junk = "}{ ;; \x00 garbage: :::\n|||||||\nLISTEN\n[emerg]\n"
    out = Output(rc=1, stdout=junk, stderr=junk)
    garbage_release = ReleaseFacts(id=junk, path="/x", python="/x/py", venv_bin="/x", import_check=out, gevent_check=out, has_pip=False)
    facts = DoctorFacts(
        config=parse_config(sample_data()), systemd=False, nginx_groups=junk, app_groups=junk, clock=junk,
        state=junk, releases=junk, upstream=junk, site=junk, site_link=junk, nginx_T=out, default_servers=junk,
        nginx_pid=junk, nginx_alive=False, ss_tcp=junk, ss_unix=junk, df=junk, ufw_installed=True, ufw=out,
        gunicorn_conf=junk, slot_status={"blue": out, "green": out}, pids={"blue": junk}, stats=junk,
        static={"static": junk}, static_denied={"static": junk}, gunicorn_log=junk, nginx_log=junk,
        probe_nginx={"garbage": True}, probe_slot={}, live=garbage_release, failed=garbage_release,
    )
    for rule in R.RULES:
        check(rule, facts)  # raises on a crash; statuses are asserted per rule below
    assert R.check_deployed(facts).status == "unknown"
    assert R.check_disk(facts).status == "unknown"
    assert R.check_firewall(facts).status == "unknown"
    assert R.check_slot_running(facts).status == "unknown"


def test_cause_is_the_first_failure_on_the_path():
    facts = replace(
        healthy(), probe_nginx={"ok": False, "status": 403},
        static_denied={"static": f"-rw-------|600|root|root|f|{NOW}.0|{STATIC}/caesar.png\n"},
        nginx_alive=False,  # and nginx is down: it comes first on the path
    )
    report = R.diagnose(facts)
    assert report.cause.check == "nginx_running"
    assert {f.check for f in report.findings if f.status == "fail"} == {"http", "nginx_running", "static"}


def test_a_symptom_yields_to_its_cause():
    # The app does not import: gunicorn keeps exiting, nothing listens, nginx answers 502.
    live = dataclasses.replace(healthy().live, import_check=Output(1, "", rec("import_check_broken.err")))
    facts = replace(
        without_stat(healthy(), SOCK),
        probe_nginx={"ok": False, "status": 502}, probe_slot={"ok": False, "status": None, "error": "FileNotFoundError: [Errno 2]"},
        slot_status={"blue": Output(0, "ave_caesar-blue                  BACKOFF   Exited too quickly (process log may have details)\n")},
        ss_unix="", live=live,
    )
    report = R.diagnose(facts)
    failing = [f.check for f in report.findings if f.status == "fail"]
    assert failing == ["http", "slot_running", "listening", "slot_http", "app_import"]
    assert report.cause.check == "app_import"
    assert "ModuleNotFoundError: No module named 'nope_not_installed'" in report.cause.evidence


def test_probe_failure_with_every_rule_passing_is_an_unknown_cause():
    report = R.diagnose(replace(healthy(), probe_nginx={"ok": False, "status": 500, "error": None}))
    cause = report.cause
    assert not report.ok
    assert (cause.check, cause.status) == ("cause", "unknown")
    assert "cause unknown" in cause.evidence and "HTTP 500" in cause.evidence and "app_import" in cause.evidence
    assert "/var/log/ave_caesar/nginx-error.log" in cause.fix


ENV_RECORD = next(ln for ln in rec("stat_sample.txt").splitlines() if ln.endswith(ENV)) + "\n"


def with_env(facts: DoctorFacts) -> DoctorFacts:
    """The recording's deploy had no env file; the one recorded earlier on the same host."""
    return add_stats(facts, ENV_RECORD)


def test_warnings_leave_the_report_ok():
    report = R.diagnose(with_stat(with_env(healthy()), ENV, "-rw-r--r--", "644"))
    assert report.ok and report.cause is None
    assert [f.check for f in report.findings if f.status == "warn"] == ["env_file"]


def test_a_failure_makes_the_report_not_ok_even_when_the_probe_passes():
    report = R.diagnose(with_stat(healthy(), STATIC, "drwx------", "700"))
    assert not report.ok and report.cause.check == "static"


def test_a_rule_that_raises_becomes_unknown(monkeypatch):
    def broken(facts):
        raise ValueError("boom")

    monkeypatch.setattr(R, "RULES", (R.check_http, broken))
    report = R.diagnose(healthy())
    assert report.findings[1] == R.Finding("broken", "unknown", "the check itself failed on these facts: ValueError: boom", "", "client")


def test_json():
    refused = {"ok": False, "status": None, "error": "ConnectionRefusedError"}
    report = R.diagnose(replace(without_stat(healthy(), "/run/nginx.pid"), nginx_alive=False, nginx_pid=None, probe_nginx=refused))
    data = R.to_json(report)
    json.dumps(data)
    assert data["ok"] is False
    assert data["cause"]["check"] == "nginx_running" and data["cause"]["fix"] == "nginx"
    assert set(data["findings"][0]) == {"check", "status", "evidence", "fix", "hop"}
    assert R.to_json(R.diagnose(healthy()))["cause"] is None


# ---- client --------------------------------------------------------------------------


def test_http():
    assert check(R.check_http, healthy()).evidence == "GET /healthz (Host localhost) via 127.0.0.1:80 → HTTP 200"
    f = check(R.check_http, replace(healthy(), probe_nginx={"ok": False, "status": 502, "error": None}))
    assert f.status == "fail" and f.evidence.endswith("→ HTTP 502")
    f = check(R.check_http, replace(healthy(), probe_nginx={"ok": False, "status": None, "error": "ConnectionRefusedError: [Errno 111] Connection refused"}))
    assert f.evidence.endswith("→ ConnectionRefusedError: [Errno 111] Connection refused")
    assert check(R.check_http, replace(healthy(), probe_nginx=None)).status == "unknown"


def test_deployed():
    assert check(R.check_deployed, healthy()).status == "ok"
    gone = check(R.check_deployed, replace(without_stat(healthy(), "/srv/ave_caesar/garrison-state.json"), state=None))
    assert gone.status == "fail" and gone.fix == "garrison up" and "not deployed here" in gone.evidence
    assert check(R.check_deployed, replace(healthy(), state="{}")).status == "fail"
    assert check(R.check_deployed, replace(healthy(), state="{not json")).status == "unknown"
    assert check(R.check_deployed, replace(healthy(), state=None, stats=None)).status == "unknown"
    holder = "garrison (pid 4242 on web1) since 2026-11-24 20:18:13 UTC"
    busy = check(R.check_deployed, replace(healthy(), state=None, deploying=holder))
    assert busy.status == "warn" and busy.evidence == f"a deploy is running: {holder} (holds /srv/ave_caesar/.garrison.lock)"


@pytest.mark.parametrize(
    ("sample", "status", "fix"),
    [
        ("ufw_verbose_web.txt", "ok", ""),
        ("ufw_inactive.txt", "ok", ""),
        ("ufw_verbose_ssh_only.txt", "fail", "ufw allow 80/tcp"),
        ("ufw_verbose_deny_first.txt", "fail", "ufw insert 1 allow 80/tcp"),
        ("ufw_not_root.txt", "unknown", ""),
    ],
)
def test_firewall(sample, status, fix):
    f = check(R.check_firewall, replace(healthy(), ufw_installed=True, ufw=Output(0, rec(sample))))
    assert (f.status, f.fix) == (status, fix)


def test_firewall_not_installed_or_not_checked():
    assert check(R.check_firewall, healthy()).evidence.startswith("ufw is not installed")
    assert check(R.check_firewall, replace(healthy(), ufw_installed=None)).status == "unknown"
    deny = check(R.check_firewall, replace(healthy(), ufw_installed=True, ufw=Output(0, rec("ufw_verbose_ssh_only.txt"))))
    assert deny.evidence == "ufw active, Default: deny (incoming), and no rule allows 80/tcp"


# ---- nginx -------------------------------------------------------------------------------


def test_disk():
    assert check(R.check_disk, healthy()).evidence.startswith("23% used on / (/dev/vda)")
    full = healthy().df.replace("23769600  82621312      23%", "264000000     212084      100%", 1)
    f = check(R.check_disk, replace(healthy(), df=full))
    assert f.status == "fail" and f.evidence.startswith("df -P: /dev/vda") and "du -xh --max-depth=2 /" in f.fix
    assert check(R.check_disk, replace(healthy(), df=healthy().df.replace("23%", "93%"))).status == "warn"
    assert check(R.check_disk, replace(healthy(), df="df: /srv/ave_caesar: No such file or directory\n")).status == "unknown"


def test_nginx_running():
    assert check(R.check_nginx_running, healthy()).evidence == "nginx master pid 8958 (/run/nginx.pid), listening on 0.0.0.0:80"
    stopped = replace(without_stat(healthy(), "/run/nginx.pid"), nginx_pid=None, nginx_alive=None, ss_tcp="")
    f = check(R.check_nginx_running, stopped)
    assert (f.status, f.fix) == ("fail", "nginx") and f.evidence == "nginx is not running: /run/nginx.pid does not exist"
    assert check(R.check_nginx_running, replace(stopped, systemd=True)).fix == "systemctl start nginx"
    stale = check(R.check_nginx_running, replace(healthy(), nginx_alive=False))
    assert stale.evidence == "nginx is not running: /run/nginx.pid names 8958, which is not running"
    apache = 'LISTEN 0      511          0.0.0.0:80        0.0.0.0:*    users:(("apache2",pid=812,fd=4))\n'
    held = check(R.check_nginx_running, replace(stopped, ss_tcp=apache))
    assert "held by apache2" in held.evidence and held.fix == "stop apache2, which holds port 80 (e.g. `systemctl stop apache2`), then run `nginx`"
    assert check(R.check_nginx_running, replace(healthy(), nginx_alive=None)).status == "unknown"
    assert check(R.check_nginx_running, replace(healthy(), nginx_pid=None, stats=None)).status == "unknown"


def test_nginx_config_error_in_our_site():
    err = rec("nginx_t_syntax.err").replace("/tmp/doctorlab/ngt/sites/zdt.conf", LINK)  # the recorded error, in our site
    f = check(R.check_nginx_config, replace(healthy(), nginx_T=Output(1, "", err)))
    assert f.status == "fail" and f.evidence == f'nginx: [emerg] unexpected "}}" in {LINK}:10' and f.fix == "garrison up"


def test_nginx_config_error_elsewhere():
    f = check(R.check_nginx_config, replace(healthy(), nginx_T=Output(1, "", rec("nginx_t_syntax.err"))))
    assert f.fix == "correct /tmp/doctorlab/ngt/sites/zdt.conf:10 (not a Garrison file), then run `nginx -t && nginx -s reload`"
    down = check(R.check_nginx_config, replace(healthy(), nginx_alive=False, nginx_T=Output(1, "", rec("nginx_t_syntax.err"))))
    assert down.fix.endswith("`nginx -t && nginx`")
    # Our log folder gone: nginx names no file, but the path is ours.
    logdir = 'nginx: [emerg] open() "/var/log/ave_caesar/nginx-access.log" failed (2: No such file or directory)\n'
    assert check(R.check_nginx_config, replace(healthy(), nginx_T=Output(1, "", logdir))).fix == "garrison up"


def test_nginx_config_duplicate_default():
    distro = "/etc/nginx/sites-enabled/default:22:\tlisten 80 default_server;\n"
    flask = "/etc/nginx/sites-enabled/flask:2:    listen 80 default_server;\n"
    # nginx names the second site it read. Here: ours (server.default = true), after the distribution's.
    ours = Output(1, "", rec("nginx_t_dupdefault.err").replace("/tmp/doctorlab/ngt/sites/zdt.conf", LINK))
    assert check(R.check_nginx_config, replace(healthy(), nginx_T=ours, default_servers=distro)).fix == "garrison up"
    f = check(R.check_nginx_config, replace(healthy(), nginx_T=ours, default_servers=distro + flask))
    assert f.fix == (
        "remove `default_server` from the listen in /etc/nginx/sites-enabled/flask:2 (only one site may have it), "
        "then run `nginx -t && nginx -s reload`"
    )
    # Here: another site, read after ours.
    theirs = Output(1, "", rec("nginx_t_dupdefault.err"))
    f = check(R.check_nginx_config, replace(healthy(), nginx_T=theirs))
    assert f.evidence == "nginx: [emerg] a duplicate default server for 0.0.0.0:80 in /tmp/doctorlab/ngt/sites/zdt.conf:5"
    assert f.fix.startswith("remove `default_server` from the listen in /tmp/doctorlab/ngt/sites/zdt.conf:5")
    distro_named = Output(1, "", rec("nginx_t_dupdefault.err").replace("/tmp/doctorlab/ngt/sites/zdt.conf", "/etc/nginx/sites-enabled/default"))
    assert check(R.check_nginx_config, replace(healthy(), nginx_T=distro_named)).fix == "garrison up"


def test_nginx_config_ok_missing_or_not_installed():
    assert check(R.check_nginx_config, healthy()).status == "ok"
    assert check(R.check_nginx_config, replace(healthy(), nginx_T=None)).status == "unknown"
    assert check(R.check_nginx_config, replace(healthy(), nginx_T=Output(127, "", "nginx: command not found"))).status == "fail"
    assert check(R.check_nginx_config, replace(healthy(), nginx_T=Output(1, "", "Segmentation fault"))).status == "unknown"


def test_site_enabled():
    assert check(R.check_site_enabled, healthy()).evidence == f"{LINK} -> {SITE}"
    removed = replace(without_stat(healthy(), LINK), site_link=None)
    f = check(R.check_site_enabled, removed)
    assert f.status == "fail" and f.evidence == f"{LINK} does not exist: the site is not enabled"
    assert f.fix == f"ln -sfn {SITE} {LINK} && nginx -t && nginx -s reload"
    assert check(R.check_site_enabled, replace(removed, systemd=True)).fix.endswith("systemctl reload nginx")
    relative = check(R.check_site_enabled, replace(healthy(), site_link="../sites-available/ave_caesar.conf"))
    assert relative.status == "ok"
    wrong = check(R.check_site_enabled, replace(healthy(), site_link="/etc/nginx/sites-available/default"))
    assert wrong.status == "fail" and wrong.fix.startswith("ln -sfn")
    file_instead = check(R.check_site_enabled, replace(with_stat(healthy(), LINK, "-rw-r--r--", "644"), site_link=None))
    assert file_instead.evidence == f"-rw-r--r-- root root {LINK} is not a link to {SITE}"
    no_site = check(R.check_site_enabled, replace(without_stat(healthy(), SITE), site=None))
    assert (no_site.status, no_site.fix) == ("fail", "garrison up")
    assert check(R.check_site_enabled, replace(healthy(), site=None, stats=None)).status == "unknown"
    assert check(R.check_site_enabled, replace(healthy(), site_link=None, stats=None)).status == "unknown"


def test_site_enabled_but_not_read_by_nginx():
    dump = healthy().nginx_T.stdout.replace("# configuration file /etc/nginx/sites-enabled/ave_caesar.conf:", "# configuration file /etc/nginx/x:")
    f = check(R.check_site_enabled, replace(healthy(), nginx_T=Output(0, dump, "")))
    assert f.status == "fail" and "include /etc/nginx/sites-enabled/*;" in f.fix


def zdt(**server: Any):
    return parse_config({"app": {"name": "zdt", "entry": "main:app"}, "server": {"names": ["zdt.test"], **server}})


def test_server_name_conflict_with_an_earlier_site():
    facts = replace(healthy(), config=zdt(), nginx_T=Output(0, rec("nginx_T_conflict.out"), rec("nginx_T_conflict.err")))
    # The recorded dump lives under a tmp prefix: point our layout's link there.
    facts = replace(facts, nginx_T=Output(0, facts.nginx_T.stdout.replace("/tmp/doctorlab/ngt/sites/", "/etc/nginx/sites-enabled/"), facts.nginx_T.stderr))
    f = check(R.check_server_name, facts)
    assert f.status == "fail"
    assert f.evidence == 'nginx: [warn] conflicting server name "zdt.test" on 0.0.0.0:80, ignored (nginx uses /etc/nginx/sites-enabled/other.conf)'
    assert f.fix == "remove zdt.test from server_name in /etc/nginx/sites-enabled/other.conf (line 1), then run `nginx -t && nginx -s reload`"


def test_server_name_next_to_the_distribution_default():
    dump = rec("nginx_T_conflict.out").replace("/tmp/doctorlab/ngt/sites/", "/etc/nginx/sites-enabled/")
    without_other = dump.replace("zdt.test www.other.test", "www.other.test")
    facts = replace(healthy(), config=zdt(), nginx_T=Output(0, without_other, ""))
    ok = check(R.check_server_name, facts)
    assert ok.status == "ok" and "other names go to the default_server at /etc/nginx/sites-enabled/default:2" in ok.evidence
    # Named only localhost, not default: http://<IP>/ shows nginx's welcome page, not the app.
    local = replace(facts, nginx_T=Output(0, without_other.replace("server_name zdt.test;", "server_name localhost;"), ""), config=zdt(names=["localhost"]))
    warn = check(R.check_server_name, local)
    assert warn.status == "warn" and warn.fix.startswith("in garrison/sample_app/garrison.toml set [server] default = true")


def test_server_name_ok_and_unknown():
    assert check(R.check_server_name, healthy()).evidence == f"requests for localhost on port 80 reach {LINK}"
    assert check(R.check_server_name, replace(healthy(), nginx_T=Output(1, "", rec("nginx_t_syntax.err")))).status == "unknown"
    assert check(R.check_server_name, replace(healthy(), config=zdt())).status == "unknown"  # zdt's site is not ours here


def test_static_folder_not_enterable():
    f = check(R.check_static, with_stat(healthy(), STATIC, "drwx------", "700"))
    assert f.status == "fail"
    assert f.evidence == f"drwx------ root root {STATIC}: www-data (groups www-data) can't enter it"
    assert f.fix == f"chmod -R o+rX {STATIC}"


def test_static_private_parent_folder_like_the_tutorials_home():
    facts = with_stat(healthy(), "/srv/ave_caesar", "drwx------", "700", "demo", "demo")
    when = NOW  # the 403 nginx logged, after the site was written
    log = nginx_line(lab_nginx(3), when, **{"__tmp__doctorlab__static": STATIC})
    f = check(R.check_static, replace(facts, nginx_log=log + "\n", clock=f"{NOW} +0000"))
    assert f.status == "fail" and f.fix == "chmod o+x /srv/ave_caesar"
    assert f.evidence.startswith("drwx------ demo demo /srv/ave_caesar: www-data (groups www-data) can't enter it; nginx: open()")


def test_static_files_inside_unreadable():
    denied = f"-rw-------|600|root|root|f|{NOW}.0|{STATIC}/caesar.png\n"
    f = check(R.check_static, replace(healthy(), static_denied={"static": denied}))
    assert f.status == "fail" and f.evidence == f"-rw------- root root {STATIC}/caesar.png: www-data can't read it" and f.fix == f"chmod -R o+rX {STATIC}"
    # Readable through its group: fine.
    group = f"-rw-r-----|640|root|www-data|f|{NOW}.0|{STATIC}/caesar.png\n"
    assert check(R.check_static, replace(healthy(), static_denied={"static": group})).status == "ok"


def test_static_missing_none_or_unknown():
    missing = check(R.check_static, without_stat(healthy(), STATIC))
    assert missing.status == "warn" and "/static/ answers 404" in missing.evidence
    no_static = check(R.check_static, replace(healthy(), config=zdt()))
    assert no_static.status == "ok" and no_static.evidence == "no static folders in garrison.toml"
    assert check(R.check_static, replace(healthy(), stats=None)).status == "unknown"
    assert check(R.check_static, replace(healthy(), static={"static": None})).status == "unknown"
    assert check(R.check_static, without_stat(healthy(), "/srv/ave_caesar/releases")).status == "unknown"
    unknown_groups = with_stat(replace(healthy(), nginx_groups=None), STATIC, "drwxr-x---", "750", "root", "www-data")
    assert check(R.check_static, unknown_groups).status == "unknown"


# ---- upstream -------------------------------------------------------------------------------


def test_upstream():
    assert check(R.check_upstream, healthy()).evidence == f"server unix:{SOCK} in /etc/nginx/garrison/ave_caesar.upstream.conf is slot blue"
    wrong = check(R.check_upstream, replace(healthy(), upstream="server unix:/srv/ave_caesar/run/old.sock;\n"))
    assert wrong.status == "fail" and wrong.fix == "garrison up"
    assert wrong.evidence == (
        "server unix:/srv/ave_caesar/run/old.sock in /etc/nginx/garrison/ave_caesar.upstream.conf is not a gunicorn slot "
        "(unix:/srv/ave_caesar/run/blue.sock or unix:/srv/ave_caesar/run/green.sock)"
    )
    # Pointing at green, where nothing listens, while blue serves.
    idle = check(R.check_upstream, replace(healthy(), upstream="server unix:/srv/ave_caesar/run/green.sock max_fails=0;\n"))
    assert idle.status == "fail" and "nothing listens there, while slot blue listens on unix:/srv/ave_caesar/run/blue.sock" in idle.evidence
    assert check(R.check_upstream, replace(healthy(), upstream="# empty\n")).status == "fail"
    gone = check(R.check_upstream, replace(without_stat(healthy(), "/etc/nginx/garrison/ave_caesar.upstream.conf"), upstream=None))
    assert gone.status == "fail" and "does not exist" in gone.evidence
    assert check(R.check_upstream, replace(healthy(), upstream=None, stats=None)).status == "unknown"


def test_socket_mode_wrong():
    facts = with_stat(healthy(), SOCK, "srw-------", "600")
    log = nginx_line(lab_nginx(1), NOW, **{"__tmp__doctorlab__run__denied.sock": SOCK})
    f = check(R.check_socket_access, replace(facts, nginx_log=log + "\n"))
    assert f.status == "fail"
    assert f.evidence == (
        f"srw------- ave_caesar ave_caesar {SOCK}: www-data (groups www-data) can't connect to it; "
        f"nginx: connect() to unix:{SOCK} failed (13: Permission denied) while connecting to upstream (GET /denied/healthz HTTP/1.1)"
    )
    assert f.fix == f"chgrp www-data {SOCK} && chmod 660 {SOCK}"
    # After that fix: group www-data, 0660.
    fixed = with_stat(healthy(), SOCK, "srw-rw----", "660", group="www-data")
    assert check(R.check_socket_access, fixed).status == "ok"


def test_socket_old_log_lines_are_not_evidence():
    facts = with_stat(healthy(), SOCK, "srw-------", "600")
    old = nginx_line(lab_nginx(1), NOW - 86400, **{"__tmp__doctorlab__run__denied.sock": SOCK})
    f = check(R.check_socket_access, replace(facts, nginx_log=old + "\n"))
    assert "nginx:" not in f.evidence


def test_run_folder_group_wrong():
    f = check(R.check_socket_access, with_stat(healthy(), RUN, "drwxr-s---", "2750", group="ave_caesar"))
    assert f.status == "fail" and f.evidence.startswith(f"drwxr-s--- ave_caesar ave_caesar {RUN}: www-data")
    assert f.fix == f"chgrp www-data {RUN} && chmod 2750 {RUN}"
    assert check(R.check_socket_access, with_stat(healthy(), "/srv/ave_caesar", "drwx------", "700")).fix == "chmod o+x /srv/ave_caesar"


def test_socket_access_ok_tcp_and_unknown():
    assert check(R.check_socket_access, healthy()).evidence == (
        f"srwxrwxrwx ave_caesar ave_caesar {SOCK} in drwxr-s--- ave_caesar www-data {RUN}: www-data can connect"
    )
    tcp = config(gunicorn={"bind": "127.0.0.1:9000"})
    assert check(R.check_socket_access, replace(healthy(), config=tcp)).status == "ok"
    assert check(R.check_socket_access, without_stat(healthy(), SOCK)).status == "unknown"
    assert check(R.check_socket_access, replace(healthy(), upstream=None)).status == "unknown"
    assert check(R.check_socket_access, replace(healthy(), stats=None)).status == "unknown"


def site_with(read: str) -> str:
    return healthy().site.replace("proxy_read_timeout 60s;", f"proxy_read_timeout {read};")


def test_nginx_timeout_below_gunicorns():
    f = check(R.check_nginx_timeout, replace(healthy(), site=site_with("10s")))
    assert f.status == "warn" and f.evidence.startswith("proxy_read_timeout 10s < gunicorn timeout 30s")
    assert f.fix == "in garrison/sample_app/garrison.toml set [nginx] proxy_read_timeout = 60 (now 10), then run `garrison up`"


def test_nginx_timed_out_504():
    log = nginx_line(lab_nginx(0), NOW, **{"__tmp__doctorlab__run__long.sock": SOCK})
    f = check(R.check_nginx_timeout, replace(healthy(), site=site_with("2s"), nginx_log=log + "\n"))
    assert f.status == "fail"
    assert f.evidence == (
        "nginx (proxy_read_timeout 2s): upstream timed out (110: Connection timed out) while reading response header "
        "from upstream (GET /nginxto/slow HTTP/1.1)"
    )
    assert f.fix == "in garrison/sample_app/garrison.toml set [nginx] proxy_read_timeout = 60 (now 2), then run `garrison up`"
    # The same line from before the site was last written (the fix applied) is history.
    old = nginx_line(lab_nginx(0), NOW - 3600, **{"__tmp__doctorlab__run__long.sock": SOCK})
    assert check(R.check_nginx_timeout, replace(healthy(), nginx_log=old + "\n")).status == "ok"


def test_nginx_timeout_ok_and_unknown():
    assert check(R.check_nginx_timeout, healthy()).evidence == "proxy_read_timeout 60s ≥ gunicorn timeout 30s"
    assert check(R.check_nginx_timeout, replace(healthy(), site=None)).status == "unknown"


# ---- gunicorn -----------------------------------------------------------------------------


def supervisor(line: str, rc: int = 3) -> dict[str, Output]:
    return {"blue": Output(rc, line + "\n"), "green": Output(4, "ave_caesar-green: ERROR (no such process)\n")}


def test_slot_stopped():
    f = check(R.check_slot_running, replace(healthy(), slot_status=supervisor("ave_caesar-blue                  STOPPED   Nov 24 08:28 PM")))
    assert f.status == "fail" and f.evidence == "ave_caesar-blue STOPPED Nov 24 08:28 PM"
    assert f.fix == f"{SUPERVISORCTL} start ave_caesar-blue"


def test_slot_stopped_under_systemd():
    facts = replace(healthy(), systemd=True, slot_status={"blue": Output(0, rec("systemctl_show_inactive.txt"))})
    f = check(R.check_slot_running, facts)
    assert f.evidence == "ave_caesar@blue.service: inactive (dead), result success"
    assert f.fix == "systemctl start ave_caesar@blue.service"
    running = replace(facts, slot_status={"blue": Output(0, rec("systemctl_show_active.txt"))})
    assert check(R.check_slot_running, running).status == "ok"


def test_slot_crash_looping_quotes_the_log():
    facts = replace(
        healthy(), gunicorn_log=rec("gunicorn_gevent_missing.log"),
        slot_status=supervisor("ave_caesar-blue                  BACKOFF   Exited too quickly (process log may have details)"),
    )
    f = check(R.check_slot_running, facts)
    assert f.status == "fail" and f.evidence.startswith("gunicorn keeps exiting: ave_caesar-blue BACKOFF Exited too quickly")
    assert f.evidence.endswith("; /var/log/ave_caesar/error.log: RuntimeError: gevent worker requires gevent 24.10.1 or higher")
    assert f.fix == f"fix what `tail -n 50 /var/log/ave_caesar/error.log` shows, then run `{SUPERVISORCTL} restart ave_caesar-blue`"
    systemd = replace(facts, systemd=True, slot_status={"blue": Output(0, rec("systemctl_show_auto_restart.txt"))})
    assert check(R.check_slot_running, systemd).fix.endswith("`systemctl restart ave_caesar@blue.service`")


def test_slot_starting_is_not_yet_a_verdict():
    starting = replace(healthy(), slot_status=supervisor("ave_caesar-blue                  STARTING  "))
    assert check(R.check_slot_running, starting).status == "unknown"
    # …unless gunicorn's log already shows why it will not come up.
    crashing = replace(starting, gunicorn_log=rec("gunicorn_import_error.log"))
    assert check(R.check_slot_running, crashing).status == "fail"


def test_nginx_config_error_in_log_format():
    # What `nginx -T` (no -e) prints once it has opened the config's error_log.
    err = rec("nginx_T_syntax.err").replace("/tmp/doctorlab/ngt/sites/zdt.conf", LINK)
    f = check(R.check_nginx_config, replace(healthy(), nginx_T=Output(1, "", err)))
    assert (f.status, f.fix) == ("fail", "garrison up") and f.evidence.endswith(f'[emerg] 25275#25275: unexpected "}}" in {LINK}:10')
    other = check(R.check_nginx_config, replace(healthy(), nginx_T=Output(1, "", rec("nginx_T_dupdefault.err"))))
    assert other.fix.startswith("remove `default_server` from the listen in /tmp/doctorlab/ngt/sites/zdt.conf:5")


def test_slot_unknown_to_or_without_supervisord():
    gone = check(R.check_slot_running, replace(healthy(), slot_status=supervisor("ave_caesar-blue: ERROR (no such process)", 4)))
    assert (gone.status, gone.fix) == ("fail", "garrison up")
    no_config = check(R.check_slot_running, replace(healthy(), slot_status=supervisor(rec("supervisorctl_no_config.txt"), 2)))
    assert (no_config.status, no_config.fix) == ("fail", "garrison up")
    down = check(R.check_slot_running, replace(healthy(), slot_status=supervisor(rec("supervisorctl_down.txt").strip(), 4)))
    assert down.status == "fail" and down.evidence.startswith("supervisord is not running: unix://")
    assert down.fix == "mkdir -p /run/garrison && /opt/garrison/venv/bin/supervisord -c /etc/garrison/supervisord.conf"


def test_slot_running_ok_and_unknown():
    assert check(R.check_slot_running, healthy()).evidence.startswith("ave_caesar-blue RUNNING pid 30614")
    assert check(R.check_slot_running, replace(healthy(), systemd=None)).status == "unknown"
    assert check(R.check_slot_running, replace(healthy(), slot_status={})).status == "unknown"
    assert check(R.check_slot_running, replace(healthy(), slot_status=supervisor("garbage"))).status == "unknown"
    # No slot named by the include: fine if one runs.
    assert check(R.check_slot_running, replace(healthy(), upstream="server unix:/x.sock;")).status == "ok"


def test_listening():
    assert check(R.check_listening, healthy()).evidence == f"ss -lx: u_str LISTEN 0 2048 {SOCK} 3829492 * 0"
    nothing = check(R.check_listening, replace(without_stat(healthy(), SOCK), ss_unix=""))
    assert nothing.status == "fail" and nothing.evidence == f"nothing listens on unix:{SOCK} (ss -lx); {SOCK} does not exist"
    assert nothing.fix == f"{SUPERVISORCTL} restart ave_caesar-blue"
    deleted = check(R.check_listening, without_stat(healthy(), SOCK))
    assert deleted.status == "fail" and "the file is gone" in deleted.evidence
    assert check(R.check_listening, replace(healthy(), ss_unix=None)).status == "unknown"
    assert check(R.check_listening, replace(healthy(), upstream=None)).status == "unknown"
    tcp = replace(healthy(), config=config(gunicorn={"bind": "127.0.0.1:9000"}), upstream="server 127.0.0.1:9000 max_fails=0;\n")
    assert check(R.check_listening, tcp).status == "fail"
    listening = 'LISTEN 0      2048       127.0.0.1:9000      0.0.0.0:*    users:(("gunicorn",pid=5,fd=5))\n'
    assert check(R.check_listening, replace(tcp, ss_tcp=listening)).status == "ok"


def test_slot_http():
    assert check(R.check_slot_http, healthy()).evidence == f"GET /healthz straight to unix:{SOCK} → HTTP 200"
    f = check(R.check_slot_http, replace(healthy(), probe_slot={"ok": False, "status": 500, "error": None}))
    assert f.status == "fail" and f.evidence.endswith("→ HTTP 500")
    assert check(R.check_slot_http, replace(healthy(), probe_slot=None)).status == "unknown"


def test_worker_timeout():
    log = rec("gunicorn_worker_timeout.log")
    killed = replace(healthy(), gunicorn_log=log, pids={"blue": "12970\n"}, gunicorn_conf="timeout = 2\nworker_class = 'sync'\n")
    f = check(R.check_gunicorn_timeout, killed)
    assert f.status == "fail" and f.evidence == "[2026-11-24 20:25:26 +0000] [12970] [CRITICAL] WORKER TIMEOUT (pid:12975)"
    assert f.fix == "in garrison/sample_app/garrison.toml set [gunicorn] timeout = 30 (now 2), then run `garrison up`"
    # Raising it past nginx's proxy_read_timeout raises that too, or nginx would answer 504 first.
    at30 = check(R.check_gunicorn_timeout, replace(killed, gunicorn_conf="timeout = 30\n"))
    assert at30.fix == (
        "in garrison/sample_app/garrison.toml set [gunicorn] timeout = 120 (now 30) and [nginx] proxy_read_timeout = 150 (now 60), then run `garrison up`"
    )


def test_worker_timeout_with_nginx_evidence():
    log = nginx_line(lab_nginx(4), NOW, **{"__tmp__doctorlab__run__die.sock": SOCK})
    facts = replace(healthy(), gunicorn_log=rec("gunicorn_worker_timeout.log"), pids={"blue": "12970"}, nginx_log=log)
    f = check(R.check_gunicorn_timeout, facts)
    assert f.evidence.endswith("; nginx: upstream prematurely closed connection while reading response header from upstream (GET /die HTTP/1.1)")


def test_worker_timeout_of_an_older_master_is_history():
    facts = replace(healthy(), gunicorn_log=rec("gunicorn_worker_timeout.log"))  # pid 30614 is live, not 12970
    assert check(R.check_gunicorn_timeout, facts).status == "ok"
    assert check(R.check_gunicorn_timeout, replace(healthy(), gunicorn_log=None)).status == "unknown"
    assert check(R.check_gunicorn_timeout, replace(healthy(), pids={})).status == "unknown"


PYENV_PY = "/root/.pyenv/versions/3.10.13/bin/python3.10"


def pyenv_live(facts: DoctorFacts) -> DoctorFacts:
    live = dataclasses.replace(
        facts.live, python=PYENV_PY,
        import_check=Output(1, "", rec("runuser_exec_denied.err")), gevent_check=Output(1, "", rec("runuser_exec_denied.err")),
    )
    return replace(add_stats(facts, rec("stat_pyenv.txt")), live=live)


def test_venv_python_under_root_the_pyenv_trap():
    facts = pyenv_live(replace(healthy(), config=config(app={"python": PYENV_PY})))
    f = check(R.check_venv_python, facts)
    assert f.status == "fail"
    assert f.evidence == f"drwx------ root root /root: ave_caesar can't enter it, so it can't run {PYENV_PY}"
    assert f.fix == 'in garrison/sample_app/garrison.toml set [app] python = "/usr/bin/python3", then run `garrison up`'
    # The import checks could not even start: they don't claim a broken app.
    assert check(R.check_app_import, facts).status == "unknown"
    assert check(R.check_gevent, facts).status == "unknown"
    report = R.diagnose(replace(facts, probe_nginx={"ok": False, "status": 502}, slot_status=supervisor("ave_caesar-blue FATAL Exited too quickly")))
    assert report.cause.check == "venv_python"


def test_venv_folder_closed():
    f = check(R.check_venv_python, with_stat(healthy(), "/srv/ave_caesar/venvs", "drwx------", "700"))
    assert (f.status, f.fix) == ("fail", "chmod o+x /srv/ave_caesar/venvs")


def test_venv_python_ok_missing_unknown():
    assert check(R.check_venv_python, healthy()).evidence == f"ave_caesar can run /usr/bin/python3.11 ({REL}/.venv/bin/python)"
    no_venv = check(R.check_venv_python, replace(healthy(), live=dataclasses.replace(healthy().live, python=None, venv_bin=None)))
    assert no_venv.status == "fail" and "has no venv" in no_venv.evidence
    assert check(R.check_venv_python, replace(healthy(), live=None)).status == "unknown"
    assert check(R.check_venv_python, replace(healthy(), stats=None)).status == "unknown"


def test_gevent_missing():
    live = dataclasses.replace(healthy().live, gevent_check=Output(1, "", rec("gevent_check_missing.err")))
    f = check(R.check_gevent, replace(healthy(), live=live))
    venv = "/srv/ave_caesar/venvs/75d0606d298a569f"
    assert f.status == "fail"
    assert f.evidence == f"worker_class gevent, but in {venv}: ModuleNotFoundError: No module named 'gevent'"
    # uv made this venv: it has no pip.
    assert f.fix == (
        "UV_CACHE_DIR=/var/cache/garrison/uv UV_SYSTEM_CERTS=1 "
        f"/opt/garrison/venv/bin/uv pip install --python {venv}/bin/python 'gunicorn[gevent]>=23' && garrison up"
    )
    with_pip = check(R.check_gevent, replace(healthy(), live=dataclasses.replace(live, has_pip=True)))
    assert with_pip.fix == f"{venv}/bin/pip install 'gunicorn[gevent]>=23' && garrison up"


def test_gevent_ok_not_needed_unknown():
    assert check(R.check_gevent, healthy()).status == "ok"
    sync = check(R.check_gevent, replace(healthy(), gunicorn_conf="worker_class = 'sync'\n"))
    assert sync.evidence == "worker_class sync: gevent not needed"
    assert check(R.check_gevent, replace(healthy(), live=None)).status == "unknown"
    no_check = dataclasses.replace(healthy().live, gevent_check=None)
    assert check(R.check_gevent, replace(healthy(), live=no_check)).status == "unknown"


# ---- app ----------------------------------------------------------------------------------


def test_app_import_broken():
    # The recorded traceback, from a release at REL instead of the lab's folder.
    err = rec("import_check_broken.err").replace("/tmp/doctorlab/relbroken", REL)
    live = dataclasses.replace(healthy().live, import_check=Output(1, "", err))
    f = check(R.check_app_import, replace(healthy(), live=live))
    assert f.status == "fail" and f.hop == "app"
    assert f.evidence == f"main:app in {REL}: ModuleNotFoundError: No module named 'nope_not_installed' ({REL}/main.py:1)"
    assert f.fix == "fix main.py line 1 in the app's code, then run `garrison up`"
    attr = dataclasses.replace(live, import_check=Output(1, "", rec("import_check_attr.err")))
    f = check(R.check_app_import, replace(healthy(), live=attr))
    assert f.evidence.endswith("AttributeError: module 'main' has no attribute 'nope'")
    assert f.fix == "fix that error in the app's code (or its requirements), then run `garrison up`"
    # gunicorn's own traceback: the app's frame is blamed, not gunicorn's or importlib's.
    gunicorn_tb = rec("gunicorn_import_error.log").replace("/tmp/doctorlab/broken", REL)
    tb = gunicorn_tb.split("Exception in worker process")[1].split("No module named 'nope_not_installed'\n[")[0]
    deep = dataclasses.replace(live, import_check=Output(1, "", tb))
    assert check(R.check_app_import, replace(healthy(), live=deep)).evidence.endswith(f"({REL}/main.py:1)")


def test_app_import_from_gunicorns_log_when_no_check_ran():
    f = check(R.check_app_import, replace(healthy(), live=None, gunicorn_log=rec("gunicorn_import_error.log")))
    assert f.status == "fail" and f.evidence == "/var/log/ave_caesar/error.log: ModuleNotFoundError: No module named 'nope_not_installed'"


def test_app_import_ok_and_unknown():
    assert check(R.check_app_import, healthy()).evidence == f"main:app imports as ave_caesar in {REL}"
    assert check(R.check_app_import, replace(healthy(), live=None)).status == "unknown"
    slow = dataclasses.replace(healthy().live, import_check=Output(124, "", "timed out after 60.0 s"))
    assert check(R.check_app_import, replace(healthy(), live=slow)).status == "unknown"
    not_root = dataclasses.replace(healthy().live, import_check=Output(1, "", "runuser: may not be used by non-root users\n"))
    assert check(R.check_app_import, replace(healthy(), live=not_root)).status == "unknown"


def test_env_file():
    assert check(R.check_env_file, with_env(healthy())).evidence == f"-rw------- root root {ENV}"
    world = check(R.check_env_file, with_stat(with_env(healthy()), ENV, "-rw-r--r--", "644"))
    assert world.status == "warn" and "every user on the host can read its secrets" in world.evidence
    assert world.fix == f"chown root:root {ENV} && chmod 600 {ENV}"
    assert check(R.check_env_file, with_stat(with_env(healthy()), ENV, "-rw-------", "600", owner="ave_caesar")).status == "warn"
    folder = add_stats(healthy(), f"drwxr-xr-x|755|root|root|directory|{NOW}|{ENV}\n")
    assert check(R.check_env_file, folder).status == "fail"
    assert check(R.check_env_file, healthy()).evidence == f"no {ENV} (the app gets no extra environment)"
    assert check(R.check_env_file, replace(healthy(), stats=None)).status == "unknown"


FAILED_ID = "20261124T210000Z-0123456789ab"


def failed_release(**kw: Any) -> ReleaseFacts:
    base = dict(
        id=FAILED_ID, path=f"/srv/ave_caesar/releases/{FAILED_ID}", python="/usr/bin/python3.11",
        venv_bin="/srv/ave_caesar/venvs/75d0606d298a569f/bin", import_check=Output(0, "ok\n"), gevent_check=Output(0), has_pip=False,
    )
    return ReleaseFacts(**{**base, **kw})


def test_failed_deploy_names_why():
    broken = failed_release(import_check=Output(1, "", rec("import_check_broken.err")))
    f = check(R.check_failed_release, replace(healthy(), failed=broken))
    assert f.status == "fail"
    assert f.evidence.startswith(
        f"release {FAILED_ID} (newest, never live: its deploy failed): main:app in /srv/ave_caesar/releases/{FAILED_ID}: ModuleNotFoundError"
    )
    assert f.fix == "fix that error in the app's code (or its requirements), then run `garrison up`"
    report = R.diagnose(replace(healthy(), failed=broken))
    assert report.cause.check == "failed_release" and not report.ok  # the live release still serves


def test_failed_deploy_without_venv_or_without_known_cause():
    no_venv = check(R.check_failed_release, replace(healthy(), failed=failed_release(python=None, venv_bin=None)))
    assert no_venv.status == "fail" and "has no venv" in no_venv.evidence
    gevent = failed_release(gevent_check=Output(1, "", rec("gevent_check_missing.err")))
    assert "No module named 'gevent'" in check(R.check_failed_release, replace(healthy(), failed=gevent)).evidence
    fine = check(R.check_failed_release, replace(healthy(), failed=failed_release()))
    assert fine.status == "warn" and f"rm -rf /srv/ave_caesar/releases/{FAILED_ID}" in fine.fix


def test_failed_release_ok_and_unknown():
    assert check(R.check_failed_release, healthy()).status == "ok"
    assert check(R.check_failed_release, replace(healthy(), releases=None)).status == "unknown"


def test_the_gevent_spec_is_the_one_up_installs():
    from garrison.steps.venv import GEVENT_SPEC

    assert R.GUNICORN_SPEC == GEVENT_SPEC


def test_an_unprobed_slot_alone_is_no_cause():
    report = R.diagnose(replace(healthy(), probe_slot=None))
    assert report.ok and report.cause is None


def test_app_answer_names_django_allowed_hosts():
    base = healthy()
    assert check(R.check_app_answer, base).status == "ok"
    f = check(R.check_app_answer, replace(base, probe_slot={"ok": False, "status": 400,
                                                            "body": "<!doctype html>\n<h1>Bad Request (400)</h1>"}))
    assert f.status == "fail" and "HTTP 400 from the app itself" in f.evidence
    assert "ALLOWED_HOSTS" in f.fix and "garrison deploy" in f.fix
    other = check(R.check_app_answer, replace(base, probe_slot={"ok": False, "status": 404, "body": "Not Found"}))
    assert other.status == "fail" and "health_path" in other.fix
    assert check(R.check_app_answer, replace(base, probe_slot=None)).status == "unknown"
    assert check(R.check_app_answer, replace(base, probe_slot={"ok": False, "status": None})).status == "unknown"


def test_an_empty_nginx_pid_file_means_nginx_is_not_running():
    # `nginx -t` (and so doctor's own `nginx -T`) leaves an empty /run/nginx.pid behind.
    base = healthy()
    stopped = replace(base, nginx_pid="", nginx_alive=None)
    f = check(R.check_nginx_running, stopped)
    assert f.status == "fail" and "/run/nginx.pid is empty" in f.evidence and f.fix == "nginx"


def test_a_write_inside_the_release_is_fixed_by_persist():
    from garrison import diagnose as D

    perm = ("PermissionError: [Errno 13] Permission denied: "
            "'/srv/flaskr/releases/20261128T101010Z-0123456789ab/instance/flaskr.sqlite'")
    fix = D.write_failure_fix("Traceback (most recent call last):\n  ...\n" + perm)
    assert fix is not None and 'add "instance" to [app] persist' in fix and "/instance/flaskr.sqlite" in fix
    sqlite = D.write_failure_fix("django.db.utils.OperationalError: unable to open database file")
    assert sqlite is not None and "db.sqlite3" in sqlite and "persist" in sqlite
    assert D.write_failure_fix("PermissionError: [Errno 13] Permission denied: '/etc/shadow'") is None
    assert D.write_failure_fix("ValueError: nope") is None


def test_an_asgi_app_under_wsgi_workers_is_named_with_what_to_set():
    base = healthy()
    assert base.live is not None
    asgi = replace(base, live=dataclasses.replace(base.live, import_check=Output(0, "ok asgi\n", "")))
    f = check(R.check_app_interface, asgi)
    assert f.status == "fail" and "is an ASGI app" in f.evidence and 'worker_class = "uvicorn"' in f.fix
    cfg = parse_config({"app": {"name": base.config.app.name, "entry": base.config.app.entry},
                        "gunicorn": {"worker_class": "uvicorn"}})
    wsgi_under_uvicorn = replace(base, config=cfg, gunicorn_conf='worker_class = "uvicorn_worker.UvicornWorker"\n',
                                 live=dataclasses.replace(base.live, import_check=Output(0, "ok wsgi\n", "")))
    f2 = check(R.check_app_interface, wsgi_under_uvicorn)
    assert f2.status == "fail" and "is a WSGI app" in f2.evidence and 'worker_class = "gthread"' in f2.fix
    fine = replace(base, live=dataclasses.replace(base.live, import_check=Output(0, "ok wsgi\n", "")))
    assert check(R.check_app_interface, fine).status == "ok"
    assert R.diagnose(asgi).cause is not None and R.diagnose(asgi).cause.check == "app_interface"


def test_a_failed_or_stopped_job_is_a_finding():
    cfg = parse_config({"app": {"name": "shop", "entry": "main:app"},
                        "jobs": {"report": {"schedule": "@hourly", "command": "python report.py"}}})
    now = 1_900_000_000
    base = DoctorFacts(config=cfg, clock=f"{now} +0000", systemd=False)

    def with_runs(finished: dict | None, started: dict | None = None) -> DoctorFacts:
        dump = lambda d: None if d is None else json.dumps(d)  # noqa: E731
        return replace(base, jobs={"report": (dump(finished), dump(started or finished))})

    failed = check(R.check_jobs, with_runs({"start": now - 600, "end": now - 590, "exit": 2}))
    assert failed.status == "fail" and "exited 2" in failed.evidence and "garrison logs job report" in failed.fix
    stopped = check(R.check_jobs, with_runs({"start": now - 3 * 3600, "end": now - 3 * 3600 + 5, "exit": 0}))
    assert stopped.status == "fail" and "last ran 2 h 59 min ago" in stopped.evidence and "cron" in stopped.fix
    fine = check(R.check_jobs, with_runs({"start": now - 1800, "end": now - 1795, "exit": 0}))
    assert fine.status == "ok" and "report: last ran 29 min ago" in fine.evidence
    running = check(R.check_jobs, with_runs({"start": now - 9 * 3600, "end": now - 9 * 3600, "exit": 0},
                                            {"start": now - 60, "pid": 5}))
    assert running.status == "ok" and "running now" in running.evidence
    assert check(R.check_jobs, with_runs(None)).status == "ok"  # not run yet: nothing to judge
