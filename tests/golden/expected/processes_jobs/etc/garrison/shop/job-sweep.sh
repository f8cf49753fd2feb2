# Job sweep of shop, rendered by Garrison: `python manage.py clearsessions` on "*/5 * * * *".
# Runs as shop with the app's env file. Never twice at once: while a run holds the
# lock the next one is skipped, and the log says so. A run resolves the `current` link
# once and stays in that release, even when a deploy makes another one live meanwhile.
log=/var/log/shop/job-sweep.log
stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }
exec 9>>/srv/shop/jobs/sweep.lock || exit 1
if ! flock -n 9; then
    echo "$(stamp) skipped: the previous run is still going" >> "$log"
    exit 75
fi
release=$(readlink -f /srv/shop/current)
start=$(date +%s)
printf '{"start": %s, "pid": %s, "release": "%s"}\n' "$start" "$$" "${release##*/}" > /srv/shop/jobs/sweep.started.tmp
mv -f /srv/shop/jobs/sweep.started.tmp /srv/shop/jobs/sweep.started
echo "$(stamp) start in release ${release##*/}" >> "$log"
# 9>&-: the command does not inherit the lock (a daemon it leaves behind must not hold it).
cd "$release" && PATH="$release/.venv/bin:/usr/local/bin:/usr/bin:/bin" VIRTUAL_ENV="$release/.venv" \
    HOME=/srv/shop GARRISON_RELEASE="${release##*/}" GARRISON_JOB=sweep PYTHONUNBUFFERED=1 \
    timeout --kill-after=10 240 /bin/sh -c 'python manage.py clearsessions' >> "$log" 2>&1 9>&-
rc=$?
end=$(date +%s)
printf '{"start": %s, "end": %s, "exit": %s, "release": "%s"}\n' "$start" "$end" "$rc" "${release##*/}" > /srv/shop/jobs/sweep.finished.tmp
mv -f /srv/shop/jobs/sweep.finished.tmp /srv/shop/jobs/sweep.finished
echo "$(stamp) exit $rc after $((end - start)) s" >> "$log"
exit $rc
