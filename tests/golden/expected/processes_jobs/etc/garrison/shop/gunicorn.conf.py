"""gunicorn settings of shop, rendered by Garrison (`garrison up` rewrites this file).

One file serves both slots: the service manager sets GARRISON_SLOT (blue or
green), and each slot gets its own socket, pidfile and process name.
"""

import multiprocessing
import os

slot = os.environ.get("GARRISON_SLOT", "blue")
if slot not in ("blue", "green"):
    raise SystemExit(f"GARRISON_SLOT must be blue or green, not {slot!r}")

run_dir = '/srv/shop/run'
wsgi_app = 'shop.wsgi:application'
chdir = f"/srv/shop/slots/{slot}"
bind = [f"unix:{run_dir}/{slot}.sock"]
# Only nginx (through the socket's group) can connect, so the proxy headers it sets are trusted.
forwarded_allow_ips = "*"
# gunicorn chowns the socket to the app's own group, so the socket itself is
# left open (0777): the run folder (mode 2750, group of nginx's user) is what
# keeps everyone but the app user and nginx out. Only applied to the socket.
umask = 0
pidfile = f"{run_dir}/{slot}.pid"
proc_name = f"shop-{slot}"
# gunicorn 27 opens a control socket in ~/.gunicorn by default; keep it in the run folder.
control_socket = f"{run_dir}/{slot}.ctl"

# One per CPU (at least 2), computed on the host: threads or greenlets give the
# concurrency, more processes only cost memory (measured: docs/benchmarks.md).
workers = max(2, multiprocessing.cpu_count())
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

accesslog = '/var/log/shop/access.log'
errorlog = '/var/log/shop/error.log'
loglevel = 'info'
# The app's own prints and tracebacks land in the error log too.
capture_output = True
