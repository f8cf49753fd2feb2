# Job report of shop, rendered by Garrison: `python manage.py report --email 'ops@example.com'` on "30 6 1 * mon-fri".
# Runs as shop with the app's env file. Never twice at once: while a run holds the
# lock the next one is skipped, and the log says so. A run resolves the `current` link
# once and stays in that release, even when a deploy makes another one live meanwhile.
log=/var/log/shop/job-report.log
stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }
exec 9>>/srv/shop/jobs/report.lock || exit 1
if ! flock -n 9; then
    echo "$(stamp) skipped: the previous run is still going" >> "$log"
    exit 75
fi
release=$(readlink -f /srv/shop/current)
start=$(date +%s)
printf '{"start": %s, "pid": %s, "release": "%s"}\n' "$start" "$$" "${release##*/}" > /srv/shop/jobs/report.started.tmp
mv -f /srv/shop/jobs/report.started.tmp /srv/shop/jobs/report.started
echo "$(stamp) start in release ${release##*/}" >> "$log"
# 9>&-: the command does not inherit the lock (a daemon it leaves behind must not hold it).
cd "$release" && PATH="$release/.venv/bin:/usr/local/bin:/usr/bin:/bin" VIRTUAL_ENV="$release/.venv" \
    HOME=/srv/shop GARRISON_RELEASE="${release##*/}" GARRISON_JOB=report PYTHONUNBUFFERED=1 \
    /bin/sh -c 'python manage.py report --email '"'"'ops@example.com'"'"'' >> "$log" 2>&1 9>&-
rc=$?
end=$(date +%s)
printf '{"start": %s, "end": %s, "exit": %s, "release": "%s"}\n' "$start" "$end" "$rc" "${release##*/}" > /srv/shop/jobs/report.finished.tmp
mv -f /srv/shop/jobs/report.finished.tmp /srv/shop/jobs/report.finished
echo "$(stamp) exit $rc after $((end - start)) s" >> "$log"
exit $rc
