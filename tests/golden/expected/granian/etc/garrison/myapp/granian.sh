#!/bin/sh
# granian for myapp, rendered by Garrison (`garrison up` rewrites this file).
# One script serves both slots: $1 is the slot (blue or green), as GARRISON_SLOT
# is for gunicorn. `exec` keeps the service manager's pid on granian itself.
set -e
slot="$1"
case "$slot" in
    blue|green) ;;
    *) echo "usage: $0 blue|green" >&2; exit 2 ;;
esac
slot_dir="/srv/myapp/slots/$slot"
workers=3
if [ "$slot" = green ]; then port=9001; else port=9000; fi
listen="--host 127.0.0.1 --port $port"
cd "$slot_dir"
# nginx keeps the access log; granian's own output goes to the app's error log.
exec "$slot_dir/.venv/bin/granian" --interface wsgi --workers "$workers" $listen \
    --working-dir "$slot_dir" --pid-file "/srv/myapp/run/$slot.pid" \
    --no-access-log --log-level info --factory \
    main:create_app >> "/var/log/myapp/error.log" 2>&1
