"""Pure parsers of host facts, argv builders and log diagnosis, on recorded outputs."""

from __future__ import annotations

from garrison import commands as C
from garrison import facts as F
from garrison.diagnose import boot_failure
from garrison.layout import ToolLayout

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04 LTS"\n'
MINT = 'ID=linuxmint\nID_LIKE="ubuntu debian"\n'
FEDORA = 'NAME="Fedora Linux"\nID=fedora\nPRETTY_NAME="Fedora Linux 40"\n'


def test_os_release():
    assert F.parse_os_release(DEBIAN).is_debian_family
    assert F.parse_os_release(UBUNTU).id_like == ("debian",)
    assert F.parse_os_release(MINT).is_debian_family
    fedora = F.parse_os_release(FEDORA)
    assert not fedora.is_debian_family and fedora.pretty == "Fedora Linux 40"
    empty = F.parse_os_release("")
    assert empty.id == "unknown" and not empty.is_debian_family
    assert not F.parse_os_release("garbage\n=\nID='unterminated").is_debian_family


def test_dpkg_status():
    out = "nginx\tii \npython3-venv\tun \ncurl:amd64\tii \n"
    assert F.parse_dpkg_status(out) == {"nginx", "curl"}
    assert F.parse_dpkg_status("") == set()


def test_pid1_and_pid():
    assert F.parse_pid1("systemd\n")
    assert not F.parse_pid1("process_api\n")
    assert F.parse_pid(b"123\n") == 123
    assert F.parse_pid("") is None and F.parse_pid(None) is None and F.parse_pid("abc") is None
    assert F.parse_pid("0") is None


def test_nginx_user():
    assert F.parse_nginx_user("user www-data;\nworker_processes auto;\n") == "www-data"
    assert F.parse_nginx_user("# user nobody;\nuser  nginx nginx;") == "nginx"
    assert F.parse_nginx_user("") == "www-data"


def test_ufw_and_sshd():
    added = "Added user rules (see 'ufw status' for running firewall):\nufw allow 22/tcp\nufw allow 80/tcp\n"
    assert F.parse_ufw_added(added) == {"22/tcp", "80/tcp"}
    assert F.parse_ufw_added("") == set()
    assert F.parse_ufw_active("Status: active\n\nTo Action From\n")
    assert not F.parse_ufw_active("Status: inactive\n")
    assert F.parse_sshd_port("#Port 22\nPort 2222\n") == 2222
    assert F.parse_sshd_port("") == 22


def test_commands_are_argv_tuples():
    assert C.apt_install(["nginx"]) == ("apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx")
    user = C.add_system_user("shop", "/srv/shop")
    assert user[0] == "useradd" and "--system" in user and user[-1] == "shop"
    assert user[user.index("--shell") + 1] == "/usr/sbin/nologin"
    assert C.pip_install("/v", "/t/uv", ["-r", "r.txt"])[:4] == ("/t/uv", "pip", "install", "--quiet")
    assert C.pip_install("/v", None, ["x"])[0] == "/v/bin/pip"
    assert C.supervisorctl(ToolLayout(), "status") == (
        "/opt/garrison/venv/bin/supervisorctl", "-c", "/etc/garrison/supervisord.conf", "status",
    )
    assert C.nginx_test("/tmp/x.conf") == ("nginx", "-t", "-q", "-c", "/tmp/x.conf")
    # Hostile names stay one argv element each: nothing is ever joined into a shell string.
    evil = "x; rm -rf /"
    assert C.user_exists(evil) == ("id", "-u", evil)


IMPORT_FAIL = """[2026-11-24 20:04:25 +0000] [1] [INFO] Starting gunicorn 27.0.1
[2026-11-24 20:04:25 +0000] [7] [ERROR] Exception in worker process
Traceback (most recent call last):
  File "/srv/a/venvs/x/lib/python3.11/site-packages/gunicorn/arbiter.py", line 608, in spawn_worker
    worker.init_process()
  File "/srv/a/slots/green/main.py", line 57, in <module>
    import nope
ModuleNotFoundError: No module named 'nope'
[2026-11-24 20:04:25 +0000] [7] [INFO] Worker exiting (pid: 7)
Traceback (most recent call last):
  File "/srv/a/venvs/x/lib/python3.11/site-packages/gunicorn/arbiter.py", line 683, in reap_workers
gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>
"""

NO_ATTR = """[2026-11-24 20:04:25 +0000] [7] [ERROR] Failed to find attribute 'application' in 'main'.
[2026-11-24 20:04:25 +0000] [7] [INFO] Worker exiting (pid: 7)
[2026-11-24 20:04:25 +0000] [1] [ERROR] Reason: App failed to load.
"""


def test_boot_failure_quotes_the_apps_exception():
    bf = boot_failure(IMPORT_FAIL)
    assert bf is not None
    assert bf.summary == "ModuleNotFoundError: No module named 'nope'"
    assert bf.traceback[0].startswith("Traceback") and bf.traceback[-1] == bf.summary


def test_boot_failure_gunicorn_one_liner():
    bf = boot_failure(NO_ATTR)
    assert bf is not None and bf.summary == "Failed to find attribute 'application' in 'main'."


def test_boot_failure_none_for_healthy_or_empty_logs():
    assert boot_failure("") is None
    assert boot_failure("[INFO] Starting gunicorn\n[INFO] Booting worker with pid: 8\n") is None
    # Malformed: a marker with no traceback still says the workers failed.
    assert "failed to boot" in boot_failure("Worker failed to boot").summary


def test_nginx_workers_and_upstream():
    ps = (
        "    1     0 /sbin/init\n  812     1 nginx: master process nginx\n  900   812 nginx: worker process\n"
        "  901   812 nginx: worker process is shutting down\n  902   812 nginx: worker process\n"
        "  950   940 nginx: worker process\n  951   940 nginx: worker process is shutting down\n"
    )
    # Another nginx instance (master 940) on the same host is not ours.
    assert F.parse_nginx_workers(ps, 812) == {900, 902}
    assert F.count_nginx_draining(ps, 812) == 1
    assert F.parse_nginx_workers("", 812) == set() and F.parse_nginx_workers(ps, None) == set()
    assert F.parse_upstream_server("# live: blue\nserver unix:/srv/a/run/blue.sock max_fails=0;\n") == "unix:/srv/a/run/blue.sock"
    assert F.parse_upstream_server("server 127.0.0.1:9001;") == "127.0.0.1:9001"
    assert F.parse_upstream_server("") is None


def test_default_server_files():
    configs = {
        "/etc/nginx/sites-enabled/default": "server {\n\tlisten 80 default_server;\n\tlisten [::]:80 default_server;\n}\n",
        "/etc/nginx/sites-enabled/shop.conf": "server {\n    listen 80;\n    server_name shop;\n}\n",
        "/etc/nginx/sites-enabled/alt.conf": "server { listen 8080 default_server; }\n",
        "/etc/nginx/conf.d/x.conf": "# listen 80 default_server;\n",
    }
    assert F.default_server_files(configs, 80) == ["/etc/nginx/sites-enabled/default"]
    assert F.default_server_files(configs, 8080) == ["/etc/nginx/sites-enabled/alt.conf"]
    assert F.default_server_files({}, 80) == []


def test_boot_failure_app_object_missing():
    log = (
        "[2026-11-24 20:38:18 +0000] [11768] [INFO] Booting worker with pid: 11768\n"
        "Failed to find application object: 'app'\n"
        "[2026-11-24 20:38:18 +0000] [11768] [INFO] Worker exiting (pid: 11768)\n"
        "Traceback (most recent call last):\n"
        "gunicorn.errors.HaltServer: <HaltServer 'App failed to load.' 4>\n"
    )
    assert boot_failure(log).summary == "Failed to find application object: 'app'"


def test_running_pids_skips_zombies():
    assert F.running_pids("412 S\n413 Z\n414 R\n415 X\n416\nbad S\n") == [412, 414]
    assert F.running_pids("") == []


def test_user_processes_lists_this_process_under_its_uid():
    """The real command over the real /proc (read-only): this test's own process is listed
    with its state under its uid; a uid nobody has lists nothing."""
    import os
    import subprocess

    out = subprocess.run(C.user_processes(os.getuid()), capture_output=True, text=True).stdout
    assert os.getpid() in F.running_pids(out)
    assert subprocess.run(C.user_processes(3999999), capture_output=True, text=True).stdout == ""


def test_each_fact_has_its_argv_beside_its_parser():
    # The exact commands `up`, `down` and the firewall run today (inline in workflows/):
    # the workflows can switch to these without a change on the host.
    assert F.dpkg_status(["nginx", "curl"]) == ("dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\n", "nginx", "curl")
    assert F.ufw_added() == ("ufw", "show", "added")
    assert F.ufw_status() == ("ufw", "status")
    assert F.nginx_processes() == ("ps", "-eo", "pid=,ppid=,args=")
    assert F.enabled_nginx_configs() == (
        "find", "/etc/nginx/sites-enabled", "/etc/nginx/conf.d", "-mindepth", "1", "-maxdepth", "1",
    )
    assert F.user_processes(1000)[:2] == ("sh", "-c") and F.user_processes(1000)[-2:] == ("garrison", "1000")
    assert (F.OS_RELEASE_FILE, F.PID1_COMM_FILE, F.NGINX_CONF_FILE, F.NGINX_PID_FILE) == (
        "/etc/os-release", "/proc/1/comm", "/etc/nginx/nginx.conf", "/run/nginx.pid",
    )
    assert (F.SSHD_PID_FILE, F.SSHD_CONFIG_FILE, F.IPV6_FILE) == ("/run/sshd.pid", "/etc/ssh/sshd_config", "/proc/net/if_inet6")


def test_the_old_argv_names_in_commands_are_the_facts_ones():
    assert C.dpkg_status is F.dpkg_status
    assert C.user_processes is F.user_processes
