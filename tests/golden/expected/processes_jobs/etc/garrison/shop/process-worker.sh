# Process worker of shop, rendered by Garrison: `rq worker --with-scheduler high default` in the live release.
# Its service manager starts it as shop with the app's env file (never in an argv).
# Each start resolves the `current` link once: the process keeps that release (its code
# and venv) until a deploy restarts it, and a crash brings it back in the live release.
set -e
release=$(readlink -f /srv/shop/current)
cd "$release"
# One line per start: `garrison status` counts restarts from it.
date +%s >> /srv/shop/run/process-worker-${GARRISON_INSTANCE:-0}.starts
export PATH="$release/.venv/bin:/usr/local/bin:/usr/bin:/bin" VIRTUAL_ENV="$release/.venv" HOME=/srv/shop
export GARRISON_RELEASE="${release##*/}" GARRISON_PROCESS=worker PYTHONUNBUFFERED=1
# exec: the command replaces this shell, so the manager's SIGTERM (then, after stop_timeout,
# SIGKILL) reaches it, not a shell waiting for it (dash does not exec the last command of -c).
exec rq worker --with-scheduler high default
