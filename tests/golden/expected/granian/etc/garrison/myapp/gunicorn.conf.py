"""gunicorn settings of myapp, rendered by Garrison (`garrison up` rewrites this file).

One file serves both slots: the service manager sets GARRISON_SLOT (blue or
green), and each slot gets its own socket, pidfile and process name.
"""

import multiprocessing
import os

slot = os.environ.get("GARRISON_SLOT", "blue")
if slot not in ("blue", "green"):
    raise SystemExit(f"GARRISON_SLOT must be blue or green, not {slot!r}")

run_dir = '/srv/myapp/run'
wsgi_app = 'main:create_app()'
chdir = f"/srv/myapp/slots/{slot}"
bind = ['127.0.0.1:9000' if slot == "blue" else '127.0.0.1:9001']
forwarded_allow_ips = "127.0.0.1,::1"
pidfile = f"{run_dir}/{slot}.pid"
proc_name = f"myapp-{slot}"
# gunicorn 27 opens a control socket in ~/.gunicorn by default; keep it in the run folder.
control_socket = f"{run_dir}/{slot}.ctl"

workers = 3
worker_class = 'gthread'
# gunicorn turns a sync worker into gthread when threads > 1: threads only for gthread.
threads = 8
worker_connections = 1000
# Recycle workers with jitter so that they don't all restart at once.
max_requests = 0
max_requests_jitter = 0
timeout = 30
graceful_timeout = 30
keepalive = 5

accesslog = '/var/log/myapp/access.log'
errorlog = '/var/log/myapp/error.log'
loglevel = 'info'
# The app's own prints and tracebacks land in the error log too.
capture_output = True
