"""Doctor's rules: DoctorFacts → findings along the request path, and the cause.

Each rule is a pure function `(facts) -> Finding` that answers one question
about one hop of the path a request takes:

    client ─► nginx ─► upstream (include, socket) ─► gunicorn ─► app

A finding is "ok", "warn", "fail", or "unknown" when the facts it needs are
missing or malformed (never "ok" by default, never a crash). Each carries one
line of evidence quoted from the host (a log line, an `ls -l`-style line, what
the service manager said) and one line of fix: a copy-pasteable command with
the real paths, or an edit of garrison.toml followed by `garrison up`.

`diagnose` runs the rules in path order and names the cause: the first failing
finding on the path, except a finding that is only a symptom of another
failing one (a gunicorn that keeps exiting is a symptom of an app that does
not import; nginx that cannot start is a symptom of its broken config). The
probes are never the cause, they are what the cause explains: when a probe
fails and no rule does, the cause is an "unknown" finding that says what was
checked, rather than a guess.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from garrison import commands as C
from garrison import diagnose as D
from garrison.facts import NGINX_PID_FILE, parse_pid, parse_upstream_server
from garrison.facts import doctor as F
from garrison.layout import SLOTS, Layout, ToolLayout, other_slot

Status = Literal["ok", "warn", "fail", "unknown"]
Hop = Literal["client", "nginx", "upstream", "gunicorn", "app"]
HOPS: tuple[Hop, ...] = ("client", "nginx", "upstream", "gunicorn", "app")

UP = "garrison up"
NGINX_PID = NGINX_PID_FILE  # (the name workflows/doctor.py imports)
DISTRO_DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
DISK_FAIL_PERCENT = 98
DISK_WARN_PERCENT = 90
# What `garrison up` installs into every venv (garrison.workflows.up.GUNICORN_SPEC, repeated
# because the pure layers don't import workflows; a test keeps the two equal).
GUNICORN_SPEC = "gunicorn[gevent]>=23"
UV_ENV = "UV_CACHE_DIR=/var/cache/garrison/uv UV_SYSTEM_CERTS=1"  # as `up` runs uv


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    evidence: str
    fix: str
    hop: Hop


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    cause: Finding | None

    @property
    def ok(self) -> bool:
        """The app answers 2xx through nginx and nothing fails (warnings allowed)."""
        http = next((f for f in self.findings if f.check == "http"), None)
        return http is not None and http.status == "ok" and not any(f.status == "fail" for f in self.findings)


def _one_line(text: str) -> str:
    """Quoted host output can span lines; a finding shows one."""
    return re.sub(r"\s*\n\s*", " ", text.strip())


def _f(check: str, hop: Hop, status: Status, evidence: str, fix: str = "") -> Finding:
    return Finding(check, status, _one_line(evidence), _one_line(fix) if status != "ok" else "", hop)


# ---- shared readings of the facts ----------------------------------------------------


def _L(facts: F.DoctorFacts) -> Layout:
    return Layout.of(facts.config)


def _live_slot(facts: F.DoctorFacts) -> str | None:
    """The slot the upstream include names (Garrison's own definition of "live")."""
    L = _L(facts)
    server = parse_upstream_server(facts.upstream or "")
    return next((s for s in SLOTS if server == L.upstream_server(s)), None)


def _stats(facts: F.DoctorFacts) -> dict[str, F.StatRecord] | None:
    return F.parse_stat_records(facts.stats) if facts.stats is not None else None


def _exists(facts: F.DoctorFacts, path: str) -> bool | None:
    """Whether path exists, proven by its stat record; None when nothing was stat'ed.

    A file's text being None does not prove it missing (it may not have been
    read); the stat list does.
    """
    stats = _stats(facts)
    return None if stats is None else path in stats


def _reload(facts: F.DoctorFacts) -> str:
    return "systemctl reload nginx" if facts.systemd else "nginx -s reload"


def _slot_command(facts: F.DoctorFacts, verb: str, slot: str) -> str:
    L = _L(facts)
    if facts.systemd:
        return shlex.join(C.systemctl(verb, L.systemd_instance(slot)))
    return shlex.join(C.supervisorctl(ToolLayout(), verb, L.supervisor_program(slot)))


def _toml(facts: F.DoctorFacts, settings: str) -> str:
    return f"in {facts.config_path} set {settings}, then run `{UP}`"


def _groups(names: tuple[str, ...] | None) -> str:
    return ", ".join(names or ("?",))


def _nginx_since(facts: F.DoctorFacts) -> float | None:
    """nginx log lines older than this predate the current config or slot: they prove nothing now.

    The site file changes when its settings do, the include when a slot takes
    over, the pidfile when the live gunicorn restarts. Without the host's clock
    offset nginx's local log times can't be compared at all.
    """
    stats = _stats(facts)
    if stats is None or F.parse_clock(facts.clock) is None:
        return None
    L = _L(facts)
    live = _live_slot(facts)
    paths = [L.nginx_site, L.nginx_upstream] + ([L.pidfile(live)] if live else [])
    times = [stats[p].mtime for p in paths if p in stats]
    return max(times) if times else None


def _recent_nginx(facts: F.DoctorFacts, *needles: str) -> list[F.NginxLogLine]:
    """The site's nginx error log lines since `_nginx_since` that contain every needle."""
    since = _nginx_since(facts)
    if since is None:
        return []
    return [
        ln for ln in F.parse_nginx_log(facts.nginx_log, facts.clock)
        if ln.when is not None and ln.when >= since and all(n in ln.message for n in needles)
    ]


def _nginx_said(lines: list[F.NginxLogLine]) -> str:
    return f"; nginx: {F.short_nginx_line(lines[-1])}" if lines else ""


Blocked = tuple[Literal["missing", "blocked", "unknown"], F.StatRecord | None]


def _first_blocked(
    stats: dict[str, F.StatRecord], paths: list[str], user: str, groups: tuple[str, ...] | None, last: str
) -> Blocked | None:
    """The first of paths that user can't pass, or None when all pass.

    Every folder needs x; the last path needs each permission in `last`.
    """
    for i, path in enumerate(paths):
        rec = stats.get(path)
        if rec is None:
            return ("missing", None) if i == len(paths) - 1 else ("unknown", None)
        for perm in "x" if i < len(paths) - 1 else last:
            allowed = F.can(rec, user, groups, perm)
            if allowed is None:
                return ("unknown", rec)
            if not allowed:
                return ("blocked", rec)
    return None


def _exec_failed(out: F.Output) -> bool:
    """runuser (or env) could not start the interpreter at all: that says nothing about the app yet."""
    return out.rc in (126, 127) or out.stderr.lstrip().startswith("runuser:")


_FRAME = re.compile(r'^File "([^"<]+)", line (\d+)')


def _blame(out: F.Output, release: str | None = None) -> tuple[str, str] | None:
    """(file, line) to blame in a traceback: the innermost frame in the app's own code, else the innermost."""
    lines = (ln.strip() for ln in (out.stderr or out.stdout).splitlines())
    frames = [(m.group(1), m.group(2)) for m in map(_FRAME.match, lines) if m]
    mine = [fr for fr in frames if release and fr[0].startswith(release.rstrip("/") + "/")]
    return (mine or frames)[-1] if frames else None


def _exception_line(out: F.Output, release: str | None = None) -> str:
    """The exception a traceback ends with, and where."""
    lines = [ln.strip() for ln in (out.stderr or out.stdout).splitlines() if ln.strip()]
    if not lines:
        return f"exit status {out.rc} and no output"
    where = _blame(out, release)
    return lines[-1] + (f" ({where[0]}:{where[1]})" if where else "")


# ---- client ----------------------------------------------------------------------------


def check_http(facts: F.DoctorFacts) -> Finding:
    """The health path through nginx, as a client sees it."""
    cfg = facts.config
    what = f"GET {cfg.app.health_path} (Host {cfg.server.names[0]}) via 127.0.0.1:{cfg.server.port}"
    p = facts.probe_nginx
    if p is None:
        return _f("http", "client", "unknown", f"{what}: not probed")
    if p.get("ok"):
        return _f("http", "client", "ok", f"{what} → HTTP {p.get('status')}")
    got = f"HTTP {p['status']}" if p.get("status") else (p.get("error") or "no answer")
    return _f("http", "client", "fail", f"{what} → {got}", "apply the fix of the cause, then run `garrison doctor` again")


def check_deployed(facts: F.DoctorFacts) -> Finding:
    L = _L(facts)
    if facts.deploying:
        # Mid-deploy, slots start and stop and the include flips: findings may be of a moment.
        return _f(
            "deployed", "client", "warn", f"a deploy is running: {facts.deploying} (holds {L.lock})",
            "wait for it to finish, then run `garrison doctor` again",
        )
    if facts.state is None:
        if _exists(facts, L.state_file) is False:
            return _f("deployed", "client", "fail", f"{L.state_file} does not exist: {facts.config.app.name} is not deployed here", UP)
        return _f("deployed", "client", "unknown", f"{L.state_file} was not read")
    try:
        state = json.loads(facts.state)
    except ValueError:
        return _f("deployed", "client", "unknown", f"{L.state_file} is not JSON")
    current = state.get("current") if isinstance(state, dict) else None
    if not current:
        return _f("deployed", "client", "fail", f"{L.state_file} names no current release: no deploy finished", UP)
    return _f("deployed", "client", "ok", f"current release {current} ({L.state_file})")


def check_firewall(facts: F.DoctorFacts) -> Finding:
    port = facts.config.server.port
    if facts.ufw_installed is None:
        return _f("firewall", "client", "unknown", "whether ufw is installed was not checked")
    if not facts.ufw_installed:
        return _f("firewall", "client", "ok", "ufw is not installed (no host firewall rules to check)")
    status = F.parse_ufw_status(facts.ufw.stdout if facts.ufw else None)
    if status is None:
        said = (facts.ufw.stderr or facts.ufw.stdout).strip().splitlines()[:1] if facts.ufw else []
        return _f("firewall", "client", "unknown", "`ufw status verbose` gave no status" + (f": {said[0]}" if said else ""))
    if not status.active:
        return _f("firewall", "client", "ok", "ufw: Status: inactive")
    allowed, rule = F.ufw_verdict(status, port)
    if allowed:
        why = rule.line if rule else f"Default: {status.default_incoming} (incoming)"
        return _f("firewall", "client", "ok", f"ufw active; {port}/tcp allowed by: {why}")
    if rule is not None:
        # ufw's first matching rule wins: the allow must go before the deny.
        return _f("firewall", "client", "fail", f"ufw active; {port}/tcp refused by: {rule.line}", f"ufw insert 1 allow {port}/tcp")
    return _f(
        "firewall", "client", "fail",
        f"ufw active, Default: {status.default_incoming} (incoming), and no rule allows {port}/tcp",
        f"ufw allow {port}/tcp",
    )


# ---- nginx -------------------------------------------------------------------------------


def check_disk(facts: F.DoctorFacts) -> Finding:
    """A full disk breaks every hop after it (nginx's buffers, gunicorn's pidfile and logs): checked first."""
    rows = F.parse_df(facts.df)
    if not rows:
        return _f("disk", "nginx", "unknown", "`df -P` gave no usable output")
    worst = max(rows, key=lambda r: r.used_percent)
    L = _L(facts)
    fix = (
        f"free space on {worst.mount}: find what fills it with "
        f"`du -xh --max-depth=2 {worst.mount} | sort -h | tail -n 20` and delete it"
    )
    if worst.used_percent >= DISK_FAIL_PERCENT:
        return _f("disk", "nginx", "fail", f"df -P: {worst.line}", fix)
    if worst.used_percent >= DISK_WARN_PERCENT:
        return _f("disk", "nginx", "warn", f"df -P: {worst.line}", fix)
    where = f"{worst.used_percent}% used on {worst.mount} ({worst.filesystem}), which holds {L.base} or {L.log_dir}"
    return _f("disk", "nginx", "ok", where)


def check_nginx_running(facts: F.DoctorFacts) -> Finding:
    port = facts.config.server.port
    pid = parse_pid(facts.nginx_pid)
    exists = _exists(facts, NGINX_PID)
    if pid is None and (exists is None or (exists and facts.nginx_pid is None)):
        return _f("nginx_running", "nginx", "unknown", f"{NGINX_PID} was not read")
    if pid is not None and facts.nginx_alive is None:
        return _f("nginx_running", "nginx", "unknown", f"{NGINX_PID} names {pid}; whether it runs was not checked")
    listeners = F.tcp_listeners(F.parse_ss(facts.ss_tcp), port)
    if pid is not None and facts.nginx_alive:
        on = f", listening on {listeners[0].local}" if listeners else ""
        return _f("nginx_running", "nginx", "ok", f"nginx master pid {pid} ({NGINX_PID}){on}")
    if pid is None:
        # `nginx -t` leaves an empty pid file behind: empty means no master, like missing.
        why = f"{NGINX_PID} is empty" if exists else f"{NGINX_PID} does not exist"
    else:
        why = f"{NGINX_PID} names {pid}, which is not running"
    start = "systemctl start nginx" if facts.systemd else "nginx"
    holder = next((ln for ln in listeners if ln.process and ln.process != "nginx"), None)
    if holder:
        return _f(
            "nginx_running", "nginx", "fail", f"{why}; port {port} is held by {holder.process}: {holder.line}",
            f"stop {holder.process}, which holds port {port} (e.g. `systemctl stop {holder.process}`), then run `{start}`",
        )
    return _f("nginx_running", "nginx", "fail", f"nginx is not running: {why}", start)


def _ours(facts: F.DoctorFacts, message: F.NginxMessage) -> bool:
    """Whether nginx's complaint is about a file or folder Garrison renders (so `up` repairs it)."""
    L = _L(facts)
    if message.file is not None:
        return message.file in (L.nginx_site, L.nginx_site_link, L.nginx_upstream) or message.file.startswith(L.etc_dir + "/")
    # No "in file:line": e.g. open() of our log file failed because its folder is gone.
    return any(f'"{p}/' in message.text for p in (L.log_dir, L.base, L.etc_dir))


def _duplicate_default(facts: F.DoctorFacts, bad: F.NginxMessage, test: str) -> Finding:
    """Two sites claim default_server on one address: say which one to change.

    nginx names the second one it read. When that is our site (server.default
    = true), the other holder comes from the `grep default_server` output.
    """
    L = _L(facts)
    if not _ours(facts, bad):
        where, holder = f"{bad.file}:{bad.line}", bad.file
    else:
        others = [
            h for h in F.parse_grep(facts.default_servers)
            if h.file not in (L.nginx_site, L.nginx_site_link) and h.text.startswith("listen")
        ]
        foreign = [h for h in others if h.file != DISTRO_DEFAULT_SITE] or others
        where = f"{foreign[0].file}:{foreign[0].line}" if foreign else "the other site that has it"
        holder = foreign[0].file if foreign else DISTRO_DEFAULT_SITE
    if facts.config.server.default and holder == DISTRO_DEFAULT_SITE:
        # `garrison up` disables the distribution's default site when server.default is set.
        return _f("nginx_config", "nginx", "fail", bad.raw, UP)
    return _f(
        "nginx_config", "nginx", "fail", bad.raw,
        f"remove `default_server` from the listen in {where} (only one site may have it), then run {test}",
    )


def check_nginx_config(facts: F.DoctorFacts) -> Finding:
    out = facts.nginx_T
    if out is None:
        return _f("nginx_config", "nginx", "unknown", "`nginx -T` was not run")
    if out.ok:
        return _f("nginx_config", "nginx", "ok", "nginx -T: syntax is ok, test is successful")
    bad = next((m for m in F.parse_nginx_test(out.stderr) if m.level in ("emerg", "alert", "crit")), None)
    if bad is None:
        said = (out.stderr or out.stdout).strip().splitlines()
        first = said[0] if said else "no output"
        if out.rc == 127:
            return _f("nginx_config", "nginx", "fail", f"nginx is not installed: {first}", UP)
        return _f("nginx_config", "nginx", "unknown", f"nginx -T exited {out.rc}: {first}")
    apply = _reload(facts) if facts.nginx_alive else ("systemctl start nginx" if facts.systemd else "nginx")
    test = f"`nginx -t && {apply}`"
    if "duplicate default server" in bad.text:
        return _duplicate_default(facts, bad, test)
    if _ours(facts, bad):
        # Garrison's own files: `up` renders them again from garrison.toml.
        return _f("nginx_config", "nginx", "fail", bad.raw, UP)
    where = f"{bad.file}:{bad.line}" if bad.file else "what it names"
    return _f("nginx_config", "nginx", "fail", bad.raw, f"correct {where} (not a Garrison file), then run {test}")


def check_site_enabled(facts: F.DoctorFacts) -> Finding:
    L = _L(facts)
    if facts.site is None:
        if _exists(facts, L.nginx_site) is False:
            return _f("site_enabled", "nginx", "fail", f"{L.nginx_site} does not exist", UP)
        return _f("site_enabled", "nginx", "unknown", f"{L.nginx_site} was not read")
    link = facts.site_link
    enable = f"ln -sfn {L.nginx_site} {L.nginx_site_link} && nginx -t && {_reload(facts)}"
    if link is None:
        stats = _stats(facts)
        if stats is None:
            return _f("site_enabled", "nginx", "unknown", f"{L.nginx_site_link} was not looked at")
        rec = stats.get(L.nginx_site_link)
        if rec is None:
            return _f("site_enabled", "nginx", "fail", f"{L.nginx_site_link} does not exist: the site is not enabled", enable)
        return _f("site_enabled", "nginx", "fail", f"{rec.ls()} is not a link to {L.nginx_site}", enable)
    target = posixpath.normpath(posixpath.join(posixpath.dirname(L.nginx_site_link), link))
    if target != L.nginx_site:
        return _f("site_enabled", "nginx", "fail", f"{L.nginx_site_link} -> {link}, not {L.nginx_site}", enable)
    read = [name for name, _ in F.split_nginx_dump(facts.nginx_T.stdout)] if facts.nginx_T and facts.nginx_T.ok else []
    if read and L.nginx_site_link not in read and L.nginx_site not in read:
        return _f(
            "site_enabled", "nginx", "fail",
            f"{L.nginx_site_link} exists but nginx -T does not read it (nginx.conf has no include of sites-enabled)",
            "add `include /etc/nginx/sites-enabled/*;` to the http block of /etc/nginx/nginx.conf, "
            f"then run `nginx -t && {_reload(facts)}`",
        )
    return _f("site_enabled", "nginx", "ok", f"{L.nginx_site_link} -> {link}")


def check_server_name(facts: F.DoctorFacts) -> Finding:
    """Do requests for our names reach our server block, and who answers the others?"""
    L = _L(facts)
    s = facts.config.server
    if facts.nginx_T is None or not facts.nginx_T.ok:
        return _f("server_name", "nginx", "unknown", "no `nginx -T` dump to read the server blocks from")
    blocks = [b for b in F.parse_server_blocks(facts.nginx_T.stdout) if b.on_port(s.port)]
    ours = [b for b in blocks if b.file in (L.nginx_site, L.nginx_site_link)]
    if not ours:
        return _f("server_name", "nginx", "unknown", f"nginx -T has no server block from {L.nginx_site_link} on port {s.port}")
    names = set(ours[0].names)
    shown = ", ".join(sorted(names)) or "(no name)"
    first_ours = blocks.index(ours[0])
    for i, b in enumerate(blocks):
        shared = sorted(names & set(b.names))
        if b in ours or not shared:
            continue
        # nginx keeps the first block it read for a name and ignores the later ones.
        theirs_wins = i < first_ours
        warned = next((m.raw for m in F.parse_nginx_test(facts.nginx_T.stderr) if "conflicting server name" in m.text), None)
        ev = (warned or f"server_name {shared[0]} is also in {b.file}:{b.line}") + (f" (nginx uses {b.file})" if theirs_wins else "")
        fix = f"remove {shared[0]} from server_name in {b.file} (line {b.line}), then run `nginx -t && {_reload(facts)}`"
        return _f("server_name", "nginx", "fail" if theirs_wins else "warn", ev, fix)
    other = next(((b, b.default_on(s.port)) for b in blocks if b not in ours and b.default_on(s.port)), None)
    if other is None:
        return _f("server_name", "nginx", "ok", f"requests for {shown} on port {s.port} reach {L.nginx_site_link}")
    b, listen = other
    where = f"{b.file}:{listen.line}" if listen else b.file
    drop = f"remove `default_server` from the listen at {where}"
    if s.default:
        return _f(
            "server_name", "nginx", "warn",
            f"the default_server at {where} takes the requests for unknown names, though server.default = true",
            f"{drop}, then run `nginx -t && {_reload(facts)}`",
        )
    if names <= {"localhost", "_", "127.0.0.1", "::1"}:
        # The tutorial's expectation: http://<the server's IP>/ shows the app.
        setting = "[server] default = true"
        if b.file == DISTRO_DEFAULT_SITE:
            fix = _toml(facts, setting + " (Garrison then disables the distribution's default site)")
        else:
            fix = f"{drop}, then " + _toml(facts, setting)
        ev = f"{facts.config.app.name} answers only {shown}; requests by IP address go to the default_server at {where}"
        return _f("server_name", "nginx", "warn", ev, fix)
    return _f("server_name", "nginx", "ok", f"requests for {shown} reach {L.nginx_site_link}; other names go to the default_server at {where}")


def check_static(facts: F.DoctorFacts) -> Finding:
    """nginx's user must enter every folder down to each static folder and read what is in it (else 403)."""
    statics = facts.config.app.static
    if not statics:
        return _f("static", "nginx", "ok", "no static folders in garrison.toml")
    stats = _stats(facts)
    if stats is None:
        return _f("static", "nginx", "unknown", "the static folders were not stat'ed")
    user, groups = facts.nginx_user, F.parse_groups(facts.nginx_groups)
    L = _L(facts)
    checked = []
    for st in statics:
        folder = facts.static.get(st.path)
        if not folder:
            return _f("static", "nginx", "unknown", f"{L.current}/{st.path} could not be resolved (no current release?)")
        fix_inside = f"chmod -R o+rX {folder}"
        blocked = _first_blocked(stats, F.components(folder), user, groups, "x")
        if blocked and blocked[0] == "missing":
            return _f(
                "static", "nginx", "warn", f"{folder} does not exist: {st.url} answers 404",
                f"add the folder {st.path}/ to the app (or remove its [[app.static]] from {facts.config_path}), then run `{UP}`",
            )
        if blocked and (blocked[0] == "unknown" or blocked[1] is None):
            what = blocked[1].ls() if blocked[1] else "a folder on the way (not stat'ed)"
            return _f("static", "nginx", "unknown", f"can't tell whether {user} may enter {what}")
        if blocked and (rec := blocked[1]) is not None:  # always a record here: the cases without one returned above
            inside = rec.path == folder or rec.path.startswith(folder + "/")
            said = _nginx_said(_recent_nginx(facts, 'open() "', "(13: Permission denied)"))
            ev = f"{rec.ls()}: {user} (groups {_groups(groups)}) can't enter it{said}"
            return _f("static", "nginx", "fail", ev, fix_inside if inside else f"chmod o+x {rec.path}")
        for rec in F.parse_stat_records(facts.static_denied.get(st.path)).values():
            perm = "x" if rec.kind == "d" else "r"
            if F.can(rec, user, groups, perm) is False:
                verb = "enter" if perm == "x" else "read"
                return _f("static", "nginx", "fail", f"{rec.ls()}: {user} can't {verb} it", fix_inside)
        checked.append(folder)
    return _f("static", "nginx", "ok", f"{user} can read {', '.join(checked)} and every folder above")


# ---- upstream -----------------------------------------------------------------------------


def _listening(facts: F.DoctorFacts, address: str) -> bool | None:
    """Whether something listens on a gunicorn address (unix:/path or host:port); None when unknown."""
    if address.startswith("unix:"):
        if facts.ss_unix is None:
            return None
        return any(ln.local == address[5:] for ln in F.parse_ss(facts.ss_unix))
    if facts.ss_tcp is None:
        return None
    host, _, port = address.rpartition(":")
    return bool(port.isdigit() and F.tcp_listeners(F.parse_ss(facts.ss_tcp), int(port), host.strip("[]")))


def check_upstream(facts: F.DoctorFacts) -> Finding:
    L = _L(facts)
    include = L.nginx_upstream
    if facts.upstream is None:
        if _exists(facts, include) is False:
            return _f("upstream", "upstream", "fail", f"{include} does not exist: nginx has no gunicorn to send requests to", UP)
        return _f("upstream", "upstream", "unknown", f"{include} was not read")
    server = parse_upstream_server(facts.upstream)
    if server is None:
        return _f("upstream", "upstream", "fail", f"{include} has no `server` line", UP)
    live = _live_slot(facts)
    if live is None:
        slots = " or ".join(L.upstream_server(s) for s in SLOTS)
        return _f("upstream", "upstream", "fail", f"server {server} in {include} is not a gunicorn slot ({slots})", UP)
    other = other_slot(live)
    if _listening(facts, L.bind_address(live)) is False and _listening(facts, L.bind_address(other)):
        ev = f"server {server} (slot {live}) in {include}: nothing listens there, while slot {other} listens on {L.bind_address(other)}"
        return _f("upstream", "upstream", "fail", ev, UP)
    return _f("upstream", "upstream", "ok", f"server {server} in {include} is slot {live}")


def check_socket_access(facts: F.DoctorFacts) -> Finding:
    """nginx's user must enter the run folder and write the socket to connect() (else 502, errno 13)."""
    L = _L(facts)
    if L.bind:
        return _f("socket_access", "upstream", "ok", f"gunicorn listens on TCP {L.bind}: no file permissions involved")
    live = _live_slot(facts)
    stats = _stats(facts)
    if live is None:
        return _f("socket_access", "upstream", "unknown", "no live slot named by the upstream include")
    if stats is None:
        return _f("socket_access", "upstream", "unknown", "the socket was not stat'ed")
    sock = L.socket(live)
    user, groups = facts.nginx_user, F.parse_groups(facts.nginx_groups)
    blocked = _first_blocked(stats, F.components(sock), user, groups, "w")
    if blocked is None:
        return _f("socket_access", "upstream", "ok", f"{stats[sock].ls()} in {stats[L.run_dir].ls()}: {user} can connect")
    kind, rec = blocked
    if kind == "missing":
        return _f("socket_access", "upstream", "unknown", f"{sock} does not exist (gunicorn is not bound), so nginx's access can't be checked")
    if kind == "unknown" or rec is None:
        return _f("socket_access", "upstream", "unknown", f"can't tell whether {user} may use {rec.ls() if rec else sock}")
    said = _nginx_said(_recent_nginx(facts, f"connect() to unix:{sock} failed (13: Permission denied)"))
    verb = "connect to" if rec.path == sock else "enter"
    ev = f"{rec.ls()}: {user} (groups {_groups(groups)}) can't {verb} it{said}"
    if rec.path == sock:
        fix = f"chgrp {user} {sock} && chmod 660 {sock}"
    elif rec.path == L.run_dir:
        # What `garrison up` sets: the app user writes, nginx's group enters, nobody else.
        fix = f"chgrp {user} {L.run_dir} && chmod 2750 {L.run_dir}"
    else:
        fix = f"chmod o+x {rec.path}"
    return _f("socket_access", "upstream", "fail", ev, fix)


def _timeouts(facts: F.DoctorFacts) -> tuple[int, int]:
    """(nginx proxy_read_timeout, gunicorn timeout) in seconds, as deployed, else as configured."""
    cfg = facts.config
    read = F.nginx_seconds(F.parse_directive(facts.site, "proxy_read_timeout")) or cfg.nginx.proxy_read_timeout
    g = F.parse_gunicorn_setting(facts.gunicorn_conf, "timeout")
    return read, int(g) if g and g.isdigit() else cfg.gunicorn.timeout


def check_nginx_timeout(facts: F.DoctorFacts) -> Finding:
    """nginx gives up on gunicorn after proxy_read_timeout: 504, "upstream timed out"."""
    if facts.site is None:
        return _f("nginx_timeout", "upstream", "unknown", f"no {_L(facts).nginx_site} to read proxy_read_timeout from")
    read, gtime = _timeouts(facts)
    fix = _toml(facts, f"[nginx] proxy_read_timeout = {max(60, 2 * gtime, 2 * read)} (now {read})")
    timed_out = [
        ln for ln in _recent_nginx(facts, "upstream timed out")
        if "reading response header" in ln.message or "reading upstream" in ln.message
    ]
    if timed_out:
        return _f("nginx_timeout", "upstream", "fail", f"nginx (proxy_read_timeout {read}s): {F.short_nginx_line(timed_out[-1])}", fix)
    if read < gtime:
        ev = f"proxy_read_timeout {read}s < gunicorn timeout {gtime}s: requests slower than {read}s get 504 while gunicorn still works on them"
        return _f("nginx_timeout", "upstream", "warn", ev, fix)
    return _f("nginx_timeout", "upstream", "ok", f"proxy_read_timeout {read}s ≥ gunicorn timeout {gtime}s")


# ---- gunicorn ------------------------------------------------------------------------------


def _slot_states(facts: F.DoctorFacts, slots: list[str]) -> dict[str, F.SlotState | None]:
    L = _L(facts)
    states: dict[str, F.SlotState | None] = {}
    for slot in slots:
        out = facts.slot_status.get(slot)
        if out is None:
            continue
        if facts.systemd:
            states[slot] = F.parse_systemd_show(out.stdout, L.systemd_instance(slot))
        else:
            states[slot] = F.parse_supervisor_status(out.stdout or out.stderr)
    return states


def check_slot_running(facts: F.DoctorFacts) -> Finding:
    L = _L(facts)
    if facts.systemd is None:
        return _f("slot_running", "gunicorn", "unknown", "the service manager (systemd or supervisord) is not known")
    live = _live_slot(facts)
    # No slot named by the include (the upstream check says so): any running slot will do here.
    states = _slot_states(facts, [live] if live else list(SLOTS))
    if not states or any(st is None for st in states.values()):
        return _f("slot_running", "gunicorn", "unknown", "the service manager's status of the slots was not read")
    running = [st for st in states.values() if st and st.running]
    if running:
        return _f("slot_running", "gunicorn", "ok", running[0].line)
    slot = live or next(iter(states))
    st = states[slot]
    assert st is not None
    if st.state == "MANAGER_DOWN":
        T = ToolLayout()
        start = f"mkdir -p {T.run_dir} && {shlex.join(C.supervisord(T))}"
        return _f("slot_running", "gunicorn", "fail", f"supervisord is not running: {st.line}", start)
    if st.state in ("NO_SUCH_PROCESS", "MANAGER_MISSING") or not live:
        return _f("slot_running", "gunicorn", "fail", st.line if live else f"no slot runs: {st.line}", UP)
    if st.stopped:
        return _f("slot_running", "gunicorn", "fail", st.line, _slot_command(facts, "start", slot))
    failure = D.boot_failure(F.last_boot(facts.gunicorn_log))
    if st.changing and failure is None:
        return _f("slot_running", "gunicorn", "unknown", f"{st.line}: between two states (a deploy?); run the doctor again")
    why = f"; {L.error_log}: {failure.summary}" if failure else ""
    writes = D.write_failure_fix(F.last_boot(facts.gunicorn_log) or "")
    return _f(
        "slot_running", "gunicorn", "fail", f"gunicorn keeps exiting: {st.line}{why}",
        f"{writes}, then run `{UP}`" if writes else
        f"fix what `tail -n 50 {L.error_log}` shows, then run `{_slot_command(facts, 'restart', slot)}`",
    )


def check_listening(facts: F.DoctorFacts) -> Finding:
    L = _L(facts)
    live = _live_slot(facts)
    if live is None:
        return _f("listening", "gunicorn", "unknown", "no live slot named by the upstream include")
    address = L.bind_address(live)
    listening = _listening(facts, address)
    if listening is None:
        return _f("listening", "gunicorn", "unknown", f"`ss -l` was not run: whether anything listens on {address} is unknown")
    restart = _slot_command(facts, "restart", live)
    if L.bind:
        if not listening:
            return _f("listening", "gunicorn", "fail", f"nothing listens on {address} (ss -lt)", restart)
        return _f("listening", "gunicorn", "ok", f"something listens on {address} (ss -lt)")
    stats = _stats(facts)
    sock = L.socket(live)
    if not listening:
        there = stats[sock].ls() if stats and sock in stats else f"{sock} does not exist"
        return _f("listening", "gunicorn", "fail", f"nothing listens on {address} (ss -lx); {there}", restart)
    if stats is not None and sock not in stats:
        return _f("listening", "gunicorn", "fail", f"gunicorn listens on {sock}, but the file is gone: nginx gets ENOENT", restart)
    line = next(ln.line for ln in F.parse_ss(facts.ss_unix) if ln.local == sock)
    return _f("listening", "gunicorn", "ok", f"ss -lx: {line}")


def check_slot_http(facts: F.DoctorFacts) -> Finding:
    """The health path straight at the live slot, bypassing nginx: tells nginx's faults from gunicorn's."""
    L = _L(facts)
    live = _live_slot(facts)
    p = facts.probe_slot
    if live is None or p is None:
        return _f("slot_http", "gunicorn", "unknown", "the live slot was not probed directly")
    what = f"GET {facts.config.app.health_path} straight to {L.bind_address(live)}"
    if p.get("ok"):
        return _f("slot_http", "gunicorn", "ok", f"{what} → HTTP {p.get('status')}")
    got = f"HTTP {p['status']}" if p.get("status") else (p.get("error") or "no answer")
    return _f("slot_http", "gunicorn", "fail", f"{what} → {got}", f"apply the fix of the cause; the app's own log: `tail -n 50 {L.error_log}`")


def check_app_answer(facts: F.DoctorFacts) -> Finding:
    """The app itself refuses the health check: Django's ALLOWED_HOSTS (400), a wrong health path (404)…"""
    p = facts.probe_slot
    name, path = facts.config.server.names[0], facts.config.app.health_path
    if p is None or p.get("status") is None:
        return _f("app_answer", "app", "unknown", "the app gave no HTTP answer to judge")
    status = int(p["status"])
    if not 400 <= status < 500:
        return _f("app_answer", "app", "ok", f"GET {path} with Host {name} → HTTP {status} from the app")
    body = _one_line(str(p.get("body") or ""))[:120]
    evidence = f"GET {path} with Host {name} → HTTP {status} from the app itself: {body}"
    if status == 400 and "Bad Request (400)" in str(p.get("body") or ""):
        return _f("app_answer", "app", "fail", evidence,
                  f"add '{name}' to ALLOWED_HOSTS in the Django settings (or change [server] names in "
                  f"{facts.config_path or 'garrison.toml'}), then run garrison deploy")
    return _f("app_answer", "app", "fail", evidence,
              f"make the app answer {path} with 2xx, or set [app] health_path in "
              f"{facts.config_path or 'garrison.toml'} to a path that does, then run garrison up")


def check_gunicorn_timeout(facts: F.DoctorFacts) -> Finding:
    """gunicorn kills a worker busy longer than `timeout`: nginx gets a 500 or a closed connection (502)."""
    L = _L(facts)
    if facts.gunicorn_log is None:
        return _f("gunicorn_timeout", "gunicorn", "unknown", f"{L.error_log} does not exist or was not read")
    master = parse_pid(facts.pids.get(_live_slot(facts) or ""))
    if master is None:
        return _f("gunicorn_timeout", "gunicorn", "unknown", "the live slot's gunicorn master pid is not known")
    # Only the live master's lines: an older master's timeouts are history.
    kills = [ln for ln in F.parse_gunicorn_log(facts.gunicorn_log) if ln.pid == master and "WORKER TIMEOUT" in ln.message]
    read, gtime = _timeouts(facts)
    if not kills:
        return _f("gunicorn_timeout", "gunicorn", "ok", f"no WORKER TIMEOUT from master {master} (timeout {gtime}s) in {L.error_log}")
    new = max(30, 4 * gtime)
    settings = f"[gunicorn] timeout = {new} (now {gtime})"
    if read <= new:
        # Or nginx would give up first and answer 504.
        settings += f" and [nginx] proxy_read_timeout = {new + 30} (now {read})"
    said = _nginx_said(_recent_nginx(facts, "upstream prematurely closed"))
    return _f("gunicorn_timeout", "gunicorn", "fail", kills[-1].raw + said, _toml(facts, settings))


def _python_blocked(facts: F.DoctorFacts, rel: F.ReleaseFacts) -> Finding | None:
    """A failing finding when the app user can't run rel's interpreter; None when it can (or can't tell)."""
    if rel.python is None or rel.venv_bin is None:
        return _f(
            "venv_python", "gunicorn", "fail",
            f"{rel.path}/.venv/bin/python does not exist: release {rel.id} has no venv (installing its requirements failed?)",
            f"fix the app's requirements until `{UP}` installs them",
        )
    stats = _stats(facts)
    if stats is None:
        return None
    user, groups = facts.config.user, F.parse_groups(facts.app_groups)
    venv_dirs = F.components(rel.venv_bin)
    for path in (rel.venv_bin, rel.python):
        blocked = _first_blocked(stats, F.components(path), user, groups, "x")
        if not blocked or blocked[0] != "blocked" or blocked[1] is None:
            continue
        rec = blocked[1]
        if rec.path not in venv_dirs and facts.config.app.python != "/usr/bin/python3":
            # The interpreter lives in a private folder (pyenv under /root): opening
            # that folder to every user is worse than the system's python.
            fix = _toml(facts, '[app] python = "/usr/bin/python3"')
        else:
            fix = f"chmod o+x {rec.path}"
        return _f("venv_python", "gunicorn", "fail", f"{rec.ls()}: {user} can't enter it, so it can't run {rel.python}", fix)
    return None


def check_venv_python(facts: F.DoctorFacts) -> Finding:
    """The venv's interpreter must be reachable by the app user (the pyenv-under-/root trap)."""
    rel = facts.live
    if rel is None:
        return _f("venv_python", "gunicorn", "unknown", "no live release to check")
    if _stats(facts) is None:
        return _f("venv_python", "gunicorn", "unknown", "the interpreter's path was not stat'ed")
    blocked = _python_blocked(facts, rel)
    if blocked:
        return blocked
    return _f("venv_python", "gunicorn", "ok", f"{facts.config.user} can run {rel.python} ({rel.path}/.venv/bin/python)")


def _worker_class(facts: F.DoctorFacts) -> str:
    return F.parse_gunicorn_setting(facts.gunicorn_conf, "worker_class") or facts.config.gunicorn.worker_class


def _gevent_failure(facts: F.DoctorFacts, rel: F.ReleaseFacts) -> Finding | None:
    out = rel.gevent_check
    if out is None or out.ok or _exec_failed(out):
        return None
    venv = rel.venv or f"{rel.path}/.venv"
    if rel.has_pip:
        install = f"{venv}/bin/pip install '{GUNICORN_SPEC}'"
    else:
        # Venvs built by uv have no pip: install with the uv of Garrison's own venv, as `up` does.
        install = f"{UV_ENV} {ToolLayout().venv}/bin/uv pip install --python {venv}/bin/python '{GUNICORN_SPEC}'"
    ev = f"worker_class gevent, but in {venv}: {_exception_line(out)}"
    return _f("gevent", "gunicorn", "fail", ev, f"{install} && {UP}")


def check_gevent(facts: F.DoctorFacts) -> Finding:
    wc = _worker_class(facts)
    if wc != "gevent":
        return _f("gevent", "gunicorn", "ok", f"worker_class {wc}: gevent not needed")
    rel = facts.live
    if rel is None or rel.gevent_check is None:
        return _f("gevent", "gunicorn", "unknown", "`import gevent` was not tried in the live venv")
    if _exec_failed(rel.gevent_check):
        ev = f"could not run the venv's python as {facts.config.user}: {_exception_line(rel.gevent_check)}"
        return _f("gevent", "gunicorn", "unknown", ev)
    return _gevent_failure(facts, rel) or _f("gevent", "gunicorn", "ok", f"`import gevent` works in {rel.venv}")


# ---- app -------------------------------------------------------------------------------------


def _import_failure(facts: F.DoctorFacts, rel: F.ReleaseFacts) -> Finding | None:
    out = rel.import_check
    if out is None or out.ok or _exec_failed(out) or out.rc == 124:
        return None
    where = _blame(out, rel.path)
    if where and where[0].startswith(rel.path + "/"):
        # The same relative path in the app's folder, which is what a deploy copies.
        what = f"fix {posixpath.relpath(where[0], rel.path)} line {where[1]} in the app's code"
    else:
        what = "fix that error in the app's code (or its requirements)"
    ev = f"{facts.config.app.entry} in {rel.path}: {_exception_line(out, rel.path)}"
    return _f("app_import", "app", "fail", ev, f"{what}, then run `{UP}`")


def check_app_import(facts: F.DoctorFacts) -> Finding:
    entry = facts.config.app.entry
    rel = facts.live
    if rel is None or rel.import_check is None:
        # No check could run: gunicorn's own log may still say why the app did not load.
        failure = D.boot_failure(F.last_boot(facts.gunicorn_log))
        if failure:
            ev = f"{_L(facts).error_log}: {failure.summary}"
            writes = D.write_failure_fix(F.last_boot(facts.gunicorn_log) or "")
            return _f("app_import", "app", "fail", ev, f"{writes}, then run `{UP}`" if writes else
                      f"fix that error in the app's code, then run `{UP}`")
        return _f("app_import", "app", "unknown", f"{entry} was not imported (no live release)")
    out = rel.import_check
    if _exec_failed(out):
        return _f("app_import", "app", "unknown", f"could not run the venv's python as {facts.config.user}: {_exception_line(out)}")
    if out.rc == 124:
        return _f("app_import", "app", "unknown", f"importing {entry} did not finish in time: {_exception_line(out)}")
    return _import_failure(facts, rel) or _f("app_import", "app", "ok", f"{entry} imports as {facts.config.user} in {rel.path}")


def check_env_file(facts: F.DoctorFacts) -> Finding:
    """shared/.env holds secrets: root's alone (0600); systemd and Garrison read it as root."""
    L = _L(facts)
    stats = _stats(facts)
    if stats is None:
        return _f("env_file", "app", "unknown", f"{L.env_file} was not stat'ed")
    rec = stats.get(L.env_file)
    fix = f"chown root:root {L.env_file} && chmod 600 {L.env_file}"
    if rec is None:
        return _f("env_file", "app", "ok", f"no {L.env_file} (the app gets no extra environment)")
    if rec.kind != "f":
        return _f("env_file", "app", "fail", f"{rec.ls()} is not a file of KEY=VALUE lines", f"rm -r {L.env_file}, write it as a file, then `{fix}`")
    if rec.mode & 0o004:
        return _f("env_file", "app", "warn", f"{rec.ls()}: every user on the host can read its secrets", fix)
    if rec.owner != "root" or rec.mode & 0o077:
        return _f("env_file", "app", "warn", f"{rec.ls()}: should be -rw------- root root", fix)
    return _f("env_file", "app", "ok", rec.ls())


def _interface_mismatch(facts: F.DoctorFacts, rel: F.ReleaseFacts) -> Finding | None:
    """An ASGI app under WSGI workers answers 500 to everything (and the reverse): say which."""
    out = rel.import_check
    if out is None or not out.ok or facts.config.app.server != "gunicorn":
        return None
    words = (out.stdout or "").split()
    kind = words[-1] if len(words) >= 2 and words[-2] == "ok" else None
    worker = _worker_class(facts)
    asgi_worker = "uvicorn" in worker.lower()  # "uvicorn" in garrison.toml, uvicorn_worker.UvicornWorker in gunicorn's
    entry = facts.config.app.entry
    if kind == "asgi" and not asgi_worker:
        return _f("app_interface", "app", "fail",
                  f"{entry} is an ASGI app (an async callable), but gunicorn runs WSGI workers (worker_class = \"{worker}\")",
                  f'set worker_class = "uvicorn" in [gunicorn] of garrison.toml, then run `{UP}`')
    if kind == "wsgi" and asgi_worker:
        return _f("app_interface", "app", "fail",
                  f'{entry} is a WSGI app, but worker_class = "uvicorn" runs ASGI apps',
                  f'set worker_class = "gthread" in [gunicorn] of garrison.toml (or remove it), then run `{UP}`')
    return None


def check_app_interface(facts: F.DoctorFacts) -> Finding:
    rel = facts.live or facts.failed
    if rel is None or rel.import_check is None or not rel.import_check.ok:
        return _f("app_interface", "app", "unknown", "the app was not imported: its interface (WSGI or ASGI) is unknown")
    return _interface_mismatch(facts, rel) or _f(
        "app_interface", "app", "ok", f"{facts.config.app.entry} speaks what worker_class = \"{_worker_class(facts)}\" expects")


def _ago(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 86400} d {s % 86400 // 3600} h" if s >= 86400 else f"{s // 3600} h {s % 3600 // 60} min" if s >= 3600 else f"{s // 60} min"


def check_jobs(facts: F.DoctorFacts) -> Finding:
    """A scheduled job whose last run failed, or that stopped running (nothing for twice the
    longest wait its schedule allows)."""
    from garrison.config.model import cron_schedule
    from garrison.facts import parse_job_record

    jobs = facts.config.jobs
    clock = F.parse_clock(facts.clock)
    if clock is None:
        return _f("jobs", "app", "unknown", "the host's clock was not read: the jobs' last runs can't be judged")
    if not jobs:
        return _f("jobs", "app", "ok", "no [jobs] in the config")
    now = clock[0]
    fine = []
    for name, job in sorted(jobs.items()):
        finished_text, started_text = facts.jobs.get(name, (None, None))
        finished, started = parse_job_record(finished_text), parse_job_record(started_text)
        running = started is not None and (finished is None or int(started["start"]) > int(finished["start"]))
        if finished is not None and finished.get("exit") not in (0, None):
            when = _ago(now - int(finished.get("end", finished["start"])))
            return _f("jobs", "app", "fail", f"job {name}: its last run exited {finished['exit']} ({when} ago)",
                      f"read `garrison logs job {name}`, fix what failed, then run `garrison jobs run {name}`")
        gap = D.longest_gap(cron_schedule(job.schedule))
        last = int(finished.get("end", finished["start"])) if finished else None
        if last is not None and not running and now - last > 2 * gap:
            where = ("`systemctl list-timers` on the host" if facts.systemd else "that cron runs (`pgrep -x cron`)")
            return _f("jobs", "app", "fail",
                      f"job {name} ({job.schedule}) last ran {_ago(now - last)} ago: it should run at least every {_ago(gap)}",
                      f"check {where}, then run `{UP}` to reinstall the schedule")
        fine.append(f"{name}: " + ("running now" if running else f"last ran {_ago(now - last)} ago" if last else "not run yet"))
    return _f("jobs", "app", "ok", "; ".join(fine))


def check_failed_release(facts: F.DoctorFacts) -> Finding:
    """A release newer than every recorded one never went live: the last deploy failed. Why?"""
    if facts.releases is None:
        return _f("failed_release", "app", "unknown", "the releases folder was not listed")
    rel = facts.failed
    if rel is None:
        return _f("failed_release", "app", "ok", "the newest release is the live one or was live before")
    never = f"release {rel.id} (newest, never live: its deploy failed)"
    reasons = (
        _python_blocked(facts, rel),
        _gevent_failure(facts, rel) if _worker_class(facts) == "gevent" else None,
        _import_failure(facts, rel),
        _interface_mismatch(facts, rel),
    )
    found = next((r for r in reasons if r is not None), None)
    if found is not None:
        return _f("failed_release", "app", "fail", f"{never}: {found.evidence}", found.fix)
    return _f(
        "failed_release", "app", "warn", f"{never}; its venv and import are fine",
        f"run `{UP}` again and read why its health check fails (or remove it: rm -rf {rel.path})",
    )


# ---- the path and the cause -------------------------------------------------------------------

Rule = Callable[[F.DoctorFacts], Finding]

# The request path, client first; within a hop, what gates the next check comes first.
RULES: tuple[Rule, ...] = (
    check_http,
    check_deployed,
    check_firewall,
    check_disk,
    check_nginx_running,
    check_nginx_config,
    check_site_enabled,
    check_server_name,
    check_static,
    check_upstream,
    check_socket_access,
    check_nginx_timeout,
    check_slot_running,
    check_listening,
    check_slot_http,
    check_gunicorn_timeout,
    check_venv_python,
    check_gevent,
    check_app_import,
    check_app_interface,
    check_app_answer,
    check_env_file,
    check_failed_release,
    check_jobs,
)

# Probes show that something is wrong, never what: they are never the cause.
PROBES = frozenset({"http", "slot_http"})
# check → the later checks whose failure explains it (a later hop that breaks an earlier one).
SYMPTOM_OF: dict[str, tuple[str, ...]] = {
    "nginx_running": ("nginx_config",),
    "slot_running": ("venv_python", "gevent", "app_import"),
    "listening": ("slot_running", "venv_python", "gevent", "app_import"),
}


def _run(rule: Rule, facts: F.DoctorFacts) -> Finding:
    try:
        return rule(facts)
    except Exception as exc:  # a parser's blind spot must not hide the other findings
        return _f(rule.__name__.removeprefix("check_"), "client", "unknown", f"the check itself failed on these facts: {type(exc).__name__}: {exc}")


def cause_of(findings: tuple[Finding, ...], facts: F.DoctorFacts) -> Finding | None:
    """The first failing finding that no other failing finding explains; else, if the app
    does not answer, an "unknown" finding that lists what was checked; else None."""
    failing = {f.check for f in findings if f.status == "fail"}
    for f in findings:
        if f.status == "fail" and f.check not in PROBES and not failing & set(SYMPTOM_OF.get(f.check, ())):
            return f
    broken = [f for f in findings if f.check in PROBES and (f.status == "fail" or f.check == "http" and f.status != "ok")]
    if not broken:
        return None
    L = _L(facts)
    passed = [f.check for f in findings if f.status in ("ok", "warn") and f.check not in PROBES]
    unsure = [f.check for f in findings if f.status == "unknown" and f.check not in PROBES]
    probes = "; ".join(f.evidence for f in findings if f.check in PROBES)
    ev = f"cause unknown: {probes}; these checks pass: {', '.join(passed) or 'none'}"
    if unsure:
        ev += f"; could not check: {', '.join(unsure)}"
    return _f("cause", broken[-1].hop, "unknown", ev, f"read what nginx and the app logged: `tail -n 50 {L.nginx_error_log} {L.error_log}`")


def diagnose(facts: F.DoctorFacts) -> Report:
    findings = tuple(_run(rule, facts) for rule in RULES)
    return Report(findings=findings, cause=cause_of(findings, facts))


def to_json(report: Report) -> dict[str, Any]:
    """What `garrison doctor --json` prints."""
    return {
        "ok": report.ok,
        "cause": asdict(report.cause) if report.cause else None,
        "findings": [asdict(f) for f in report.findings],
    }
