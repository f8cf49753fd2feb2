"""What `garrison doctor` observes along the request path: the argv that reads each fact, and pure parsers of it.

`DoctorFacts` holds RAW observations: command outputs, file contents and probe
answers exactly as the host gave them, next to the config they are judged
against. `garrison.workflows.doctor.collect` fills it over an executor, with
the argv built here beside each parser; `garrison.diagnose.rules` reads it
only through the parsers below, so every rule can be unit-tested on recorded
outputs (tests/unit/recorded/).

Conventions, so that a rule never mistakes "not looked at" for "fine" or "missing":
- a file's text is None when it was not read; that it does not exist is
  proven by `stats` (collected, and without a record for its path);
- a command's `Output` is None when it was not run;
- parsers return None (or an empty result) for empty or malformed input,
  never raise.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from garrison import commands as C
from garrison.config import Config
from garrison.layout import ToolLayout

# `stat -c STAT_FORMAT paths…` and `find … -printf FIND_FORMAT` print the same
# record: symbolic mode, octal mode, owner, group, type, mtime, path (last, so
# that a path with a "|" still parses).
STAT_FORMAT = "%A|%a|%U|%G|%F|%Y|%n"
FIND_FORMAT = "%M|%m|%u|%g|%y|%T@|%p\\n"
# Entries of a static folder that "other" can't read (files) or enter (folders): usually none.
# The rule then decides with owner and groups; head keeps a broken tree from flooding the report.
FIND_DENIED = 'find "$1" \\( \\( -type d ! -perm -o=x \\) -o \\( -type f ! -perm -o=r \\) \\) -printf "$2" | head -n 50'
LOG_LINES = 400  # how much of each log the doctor reads
DEFAULT_SERVER_DIRS = ("/etc/nginx/sites-enabled", "/etc/nginx/conf.d")


# ---- the argv that reads each fact (run with check=False: a failure is a fact too) --------


def stat_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """STAT_FORMAT records of paths (exit 1 when some are missing: they are left out) → parse_stat_records."""
    return ("stat", "-c", STAT_FORMAT, "--", *paths)


def static_denied(folder: str) -> tuple[str, ...]:
    """FIND_FORMAT records of what in folder "other" can't read or enter → parse_stat_records."""
    return ("sh", "-c", FIND_DENIED, "sh", folder, FIND_FORMAT)


def release_names(releases_dir: str) -> tuple[str, ...]:
    """The release folders' names, one a line → parse_release_names."""
    return ("find", releases_dir, "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-printf", "%f\n")


def resolved(path: str) -> tuple[str, ...]:
    """Where path leads, even when its last component is missing (stdout, stripped)."""
    return ("readlink", "-f", "--", path)


def groups_of(user: str) -> tuple[str, ...]:
    """→ parse_groups."""
    return ("id", "-Gn", user)


def clock() -> tuple[str, ...]:
    """Now, and the host's UTC offset → parse_clock."""
    return ("date", "+%s %z")


def deploy_lock_free(lock: str) -> tuple[str, ...]:
    """Exits 1 while a deploy holds the lock (a shared flock fails only then). Run it only on
    an existing lock file: flock(1) would create a missing one."""
    return ("flock", "-n", "-s", lock, "true")


def nginx_dump() -> tuple[str, ...]:
    """`nginx -T`: the test on stderr → parse_nginx_test; the whole config on stdout → parse_server_blocks."""
    return ("nginx", "-T")


def default_servers() -> tuple[str, ...]:
    """→ parse_grep."""
    return ("grep", "-RnH", "default_server", *DEFAULT_SERVER_DIRS)


def tcp_sockets() -> tuple[str, ...]:
    """Listening TCP sockets with their processes → parse_ss."""
    return ("ss", "-ltnpH")


def unix_sockets() -> tuple[str, ...]:
    """Listening unix sockets → parse_ss."""
    return ("ss", "-lxnH")


def disk_use(paths: Sequence[str]) -> tuple[str, ...]:
    """The filesystems of paths (each must exist) → parse_df."""
    return ("df", "-P", *paths)


def ufw_status_verbose() -> tuple[str, ...]:
    """→ parse_ufw_status."""
    return ("ufw", "status", "verbose")


def log_tail(path: str, lines: int = LOG_LINES) -> tuple[str, ...]:
    """The end of a log → parse_gunicorn_log, parse_nginx_log, last_boot."""
    return ("tail", "-n", str(lines), path)


def systemd_state(unit: str) -> tuple[str, ...]:
    """→ parse_systemd_show."""
    return C.systemctl("show", "-p", "ActiveState", "-p", "SubState", "-p", "Result", unit)


def supervisor_state(tool: ToolLayout, program: str) -> tuple[str, ...]:
    """→ parse_supervisor_status."""
    return C.supervisorctl(tool, "status", program)


@dataclass(frozen=True)
class Output:
    """One command's exit status and output."""

    rc: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class ReleaseFacts:
    """One release as gunicorn would run it: its venv's interpreter and whether the app imports."""

    id: str
    path: str  # /srv/<app>/releases/<id>
    python: str | None = None  # `readlink -f <release>/.venv/bin/python`; None: no venv
    venv_bin: str | None = None  # `readlink -f <release>/.venv/bin`
    import_check: Output | None = None  # the entry point imported as the app user
    gevent_check: Output | None = None  # `import gevent` as the app user (gevent workers only)
    has_pip: bool | None = None  # venvs made by uv have no pip

    @property
    def venv(self) -> str | None:
        return posixpath.dirname(self.venv_bin) if self.venv_bin else None


@dataclass(frozen=True)
class DoctorFacts:
    """One look at one host for one app: what the config wants, and what is there."""

    config: Config
    config_path: str = "garrison.toml"  # where the user edits settings (fix texts name it)
    systemd: bool | None = None  # PID 1 is systemd: the slots run under systemd, else supervisord
    nginx_user: str = "www-data"  # `user` of /etc/nginx/nginx.conf
    nginx_groups: str | None = None  # `id -Gn <nginx user>`
    app_groups: str | None = None  # `id -Gn <app user>`
    clock: str | None = None  # `date '+%s %z'`: now, and the offset nginx's local log times use
    state: str | None = None  # garrison-state.json
    deploying: str | None = None  # the deploy lock's holder while a deploy runs, else None
    releases: str | None = None  # release folder names, one a line
    upstream: str | None = None  # the upstream include (names the live slot)
    site: str | None = None  # sites-available/<app>.conf
    site_link: str | None = None  # `readlink sites-enabled/<app>.conf`; None: no such link
    nginx_T: Output | None = None  # `nginx -T`: the test on stderr, the whole config on stdout
    default_servers: str | None = None  # `grep -RnH default_server` over the enabled sites
    nginx_pid: str | None = None  # /run/nginx.pid
    nginx_alive: bool | None = None  # `kill -0` of that pid
    ss_tcp: str | None = None  # `ss -ltnpH`
    ss_unix: str | None = None  # `ss -lxnH`
    df: str | None = None  # `df -P <base> <log dir>`
    ufw_installed: bool | None = None
    ufw: Output | None = None  # `ufw status verbose`
    gunicorn_conf: str | None = None  # the deployed gunicorn.conf.py
    slot_status: Mapping[str, Output] = field(default_factory=dict)  # slot → manager's status
    pids: Mapping[str, str | None] = field(default_factory=dict)  # slot → its pidfile's text
    stats: str | None = None  # STAT_FORMAT records of every path a rule looks at
    static: Mapping[str, str | None] = field(default_factory=dict)  # static path → `readlink -f current/<path>`
    # static path → FIND_FORMAT records of what in it lacks o+r (files) or o+x (folders)
    static_denied: Mapping[str, str | None] = field(default_factory=dict)
    gunicorn_log: str | None = None  # tail of gunicorn's error log
    nginx_log: str | None = None  # tail of the site's own nginx error log
    probe_nginx: Mapping[str, Any] | None = None  # health probe through nginx (garrison.hosts.probe)
    probe_slot: Mapping[str, Any] | None = None  # health probe straight to the live slot
    live: ReleaseFacts | None = None  # the release the live slot runs
    failed: ReleaseFacts | None = None  # the newest release that never went live (a failed deploy)
    # job name → (its .finished record, its .started record): the last run, and one going on
    jobs: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)


# ---- paths and permissions ----------------------------------------------------


@dataclass(frozen=True)
class StatRecord:
    path: str
    mode: int  # permission bits, with setuid/setgid/sticky
    symbolic: str  # as `ls -l` shows it: drwxr-s---
    owner: str
    group: str
    kind: str  # "d" directory, "f" file, "l" symlink, "s" socket, "?" other
    mtime: float

    def ls(self) -> str:
        """The `ls -l`-style line quoted as evidence."""
        return f"{self.symbolic} {self.owner} {self.group} {self.path}"


_KINDS = {"directory": "d", "regular file": "f", "regular empty file": "f", "symbolic link": "l", "socket": "s"}


def parse_stat_records(text: str | None) -> dict[str, StatRecord]:
    """Records printed with STAT_FORMAT or FIND_FORMAT, by path; malformed lines are skipped."""
    records: dict[str, StatRecord] = {}
    for line in (text or "").splitlines():
        parts = line.split("|", 6)
        if len(parts) != 7:
            continue
        symbolic, octal, owner, group, kind, mtime, path = parts
        try:
            mode = int(octal, 8)
            when = float(mtime)
        except ValueError:
            continue
        records[path] = StatRecord(
            path=path, mode=mode, symbolic=symbolic, owner=owner, group=group,
            kind=_KINDS.get(kind, kind if kind in ("d", "f", "l", "s") else "?"), mtime=when,
        )
    return records


def components(path: str) -> list[str]:
    """Every folder on the way to path, then path: /a/b → ["/", "/a", "/a/b"]."""
    path = posixpath.normpath(path)
    out = ["/"]
    for part in path.strip("/").split("/"):
        if part:
            out.append(posixpath.join(out[-1], part))
    return out


def parse_groups(text: str | None) -> tuple[str, ...] | None:
    """`id -Gn user` → its groups; None when the user is unknown."""
    words = tuple((text or "").split())
    return words or None


def can(rec: StatRecord, user: str, groups: tuple[str, ...] | None, perm: str) -> bool | None:
    """Whether user may r/w/x rec, the way the kernel decides; None when it depends on unknown groups."""
    bit = {"r": 4, "w": 2, "x": 1}[perm]
    if user == "root":
        return True
    # The kernel uses the owner's bits for the owner and the group's for a member,
    # even when "other" would allow more.
    if rec.owner == user:
        return bool(rec.mode >> 6 & bit)
    group_ok, other_ok = bool(rec.mode >> 3 & bit), bool(rec.mode & bit)
    if groups is None:
        return other_ok if group_ok == other_ok else None
    return group_ok if rec.group in groups else other_ok


# ---- sockets, disks, firewall -----------------------------------------------


@dataclass(frozen=True)
class Listener:
    local: str  # "0.0.0.0:80", "[::]:80", "/srv/app/run/blue.sock"
    process: str  # "nginx" (from `ss -p`), "" when not shown
    line: str

    @property
    def port(self) -> int | None:
        _, sep, port = self.local.rpartition(":")
        return int(port) if sep and port.isdigit() else None

    @property
    def host(self) -> str:
        return self.local.rpartition(":")[0].strip("[]")


_SS_USERS = re.compile(r'users:\(\("([^"]+)"')


def parse_ss(text: str | None) -> list[Listener]:
    """Listening sockets from `ss -lxnH` or `ss -ltnpH` (the Netid column is optional)."""
    out = []
    for line in (text or "").splitlines():
        words = line.split()
        if "LISTEN" not in words:
            continue
        i = words.index("LISTEN")
        if len(words) < i + 4:
            continue
        m = _SS_USERS.search(line)
        out.append(Listener(local=words[i + 3], process=m.group(1) if m else "", line=" ".join(words)))
    return out


def tcp_listeners(listeners: list[Listener], port: int, host: str | None = None) -> list[Listener]:
    """Those listening on port, on host or on every address."""
    anyhost = ("0.0.0.0", "*", "::", "")
    return [
        ln for ln in listeners
        if ln.port == port and (host is None or ln.host in anyhost or ln.host == host)
    ]


@dataclass(frozen=True)
class DiskUse:
    filesystem: str
    used_percent: int
    mount: str
    line: str


def parse_df(text: str | None) -> list[DiskUse]:
    """Rows of `df -P`: one per path asked about (a filesystem may repeat)."""
    out = []
    for line in (text or "").splitlines():
        words = line.split(None, 5)
        if len(words) != 6 or not words[4].endswith("%") or not words[4][:-1].isdigit():
            continue  # the header, or garbage
        line = " ".join(line.split())
        out.append(DiskUse(filesystem=words[0], used_percent=int(words[4][:-1]), mount=words[5], line=line))
    return out


@dataclass(frozen=True)
class UfwRule:
    to: str
    action: str  # "ALLOW IN", "DENY IN", "LIMIT IN", "REJECT IN", "ALLOW OUT" …
    source: str
    line: str


@dataclass(frozen=True)
class UfwStatus:
    active: bool
    default_incoming: str | None  # "deny", "allow", "reject"; None when not shown
    rules: tuple[UfwRule, ...]


_UFW_RULE = re.compile(r"^(?:\[\s*\d+\]\s*)?(.+?)\s+((?:ALLOW|DENY|REJECT|LIMIT)(?:\s+(?:IN|OUT|FWD))?)\s+(.+?)(?:\s+#.*)?$")


def parse_ufw_status(text: str | None) -> UfwStatus | None:
    """`ufw status verbose`; None when the output has no Status line (error, not root)."""
    active = None
    default = None
    rules: list[UfwRule] = []
    in_table = False
    for raw in (text or "").splitlines():
        line = raw.strip()
        low = line.lower()
        if low.startswith("status:"):
            active = low.split(":", 1)[1].strip() == "active"
        elif low.startswith("default:"):
            m = re.search(r"(\w+) \(incoming\)", low)
            default = m.group(1) if m else None
        elif line.startswith("--"):
            in_table = True
        elif in_table and line:
            # Columns are padded, but a long To (an app profile) leaves a single space.
            m = _UFW_RULE.match(line)
            if m:
                action = " ".join(m.group(2).split())
                rules.append(UfwRule(to=m.group(1), action=action, source=m.group(3), line=" ".join(line.split())))
    if active is None:
        return None
    return UfwStatus(active=active, default_incoming=default, rules=tuple(rules))


def _ufw_covers(to: str, port: int) -> bool:
    """Whether a rule's To column (80/tcp, 80,443/tcp, 8000:9000/tcp, Anywhere, 80/tcp (v6)) covers TCP port."""
    to = re.sub(r"\(.*?\)", " ", to)  # (v6), (Nginx Full)
    to = re.sub(r"\bon \S+", " ", to)  # "on eth0"
    words = to.split()
    specs = [w for w in words if re.match(r"^[\d,:]+(/\w+)?$", w)]
    if not specs:
        return any(w.lower() == "anywhere" for w in words)
    for spec in specs:
        ports, _, proto = spec.partition("/")
        if proto and proto != "tcp":
            continue
        for item in ports.split(","):
            low, _, high = item.partition(":")
            if low.isdigit() and int(low) <= port <= int(high or low):
                return True
    return False


def ufw_verdict(status: UfwStatus, port: int) -> tuple[bool, UfwRule | None]:
    """(allowed, the rule that decides) for incoming TCP port from anywhere; ufw's first match wins."""
    for rule in status.rules:
        if rule.action.endswith("OUT") or not _ufw_covers(rule.to, port):
            continue
        if not rule.source.lower().startswith("anywhere"):
            continue  # allows only some clients: not a public rule
        return rule.action.startswith(("ALLOW", "LIMIT")), rule
    return (status.default_incoming == "allow"), None


# ---- nginx ------------------------------------------------------------------------


@dataclass(frozen=True)
class NginxMessage:
    level: str  # emerg, alert, crit, error, warn, notice
    text: str  # the message, without the "nginx: [level] " prefix
    file: str | None
    line: int | None
    raw: str


# Before nginx has read the config's `error_log` (or with -e) it prints "nginx: [level] …";
# after, in its log format: "2026/11/24 20:45:42 [emerg] 25275#25275: …".
_NGINX_MSG = re.compile(r"^(?:nginx: |\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )\[(\w+)\] (?:\d+#\d+: )?(.*)$")
_IN_FILE = re.compile(r" in (/\S+?):(\d+)$")


def parse_nginx_test(stderr: str | None) -> list[NginxMessage]:
    """The [level] lines `nginx -t`/`-T` prints on stderr, in either of its two formats."""
    out = []
    for line in (stderr or "").splitlines():
        m = _NGINX_MSG.match(line.strip())
        if not m:
            continue
        text = m.group(2)
        f = _IN_FILE.search(text)
        out.append(NginxMessage(level=m.group(1), text=text, file=f.group(1) if f else None,
                                line=int(f.group(2)) if f else None, raw=line.strip()))
    return out


@dataclass(frozen=True)
class Listen:
    address: str  # "*", "[::]", "127.0.0.1", "unix:/…"
    port: int | None
    default: bool
    line: int


@dataclass(frozen=True)
class ServerBlock:
    file: str
    line: int
    listens: tuple[Listen, ...]
    names: tuple[str, ...]

    def on_port(self, port: int) -> bool:
        return any(ln.port == port for ln in self.listens)

    def default_on(self, port: int) -> Listen | None:
        return next((ln for ln in self.listens if ln.port == port and ln.default), None)


_CONF_FILE = re.compile(r"^# configuration file (.+):$")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{};]|[^\s{};]+')


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _listen(words: list[str], line: int) -> Listen:
    arg = words[1] if len(words) > 1 else "80"
    default = any(w in ("default_server", "default") for w in words[2:])
    if arg.startswith("unix:"):
        return Listen(arg, None, default, line)
    if arg.isdigit():
        return Listen("*", int(arg), default, line)
    host, sep, port = arg.rpartition(":")
    if sep and port.isdigit() and not arg.endswith("]"):
        return Listen(host or "*", int(port), default, line)
    return Listen(arg, 80, default, line)  # an address alone listens on 80


def split_nginx_dump(text: str | None) -> list[tuple[str, str]]:
    """`nginx -T` stdout → [(file, its text)], in the order nginx read them."""
    files: list[tuple[str, list[str]]] = []
    for line in (text or "").splitlines():
        m = _CONF_FILE.match(line)
        if m:
            files.append((m.group(1), []))
        elif files:
            files[-1][1].append(line)
    return [(name, "\n".join(lines)) for name, lines in files]


def parse_server_blocks(text: str | None) -> list[ServerBlock]:
    """Every http `server { }` block in `nginx -T` stdout, with its listens and names."""
    blocks: list[ServerBlock] = []
    for name, body in split_nginx_dump(text):
        stack: list[str] = []
        words: list[str] = []
        current: dict[str, Any] | None = None
        for lineno, raw in enumerate(body.splitlines(), start=1):
            for tok in _TOKEN.findall(_strip_comment(raw)):
                if tok == "{":
                    block = words[0] if words else ""
                    if block == "server" and current is None and not {"mail", "stream"} & set(stack):
                        current = {"line": lineno, "listens": [], "names": [], "depth": len(stack)}
                    stack.append(block)
                    words = []
                elif tok == ";":
                    if current is not None and len(stack) == current["depth"] + 1 and words:
                        if words[0] == "listen":
                            current["listens"].append(_listen(words, lineno))
                        elif words[0] == "server_name":
                            current["names"] += [w.strip("\"'") for w in words[1:]]
                    words = []
                elif tok == "}":
                    if stack:
                        stack.pop()
                    if current is not None and len(stack) == current["depth"]:
                        # A server without `listen` listens on *:80.
                        listens = tuple(current["listens"]) or (Listen("*", 80, False, current["line"]),)
                        blocks.append(ServerBlock(name, current["line"], listens, tuple(current["names"])))
                        current = None
                    words = []
                else:
                    words.append(tok)
    return blocks


@dataclass(frozen=True)
class GrepHit:
    file: str
    line: int
    text: str


def parse_grep(text: str | None) -> list[GrepHit]:
    """`grep -RnH PATTERN` output, without hits inside comments."""
    out = []
    for raw in (text or "").splitlines():
        parts = raw.split(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        code = _strip_comment(parts[2]).strip()
        if code:
            out.append(GrepHit(parts[0], int(parts[1]), code))
    return out


def nginx_seconds(value: str | None) -> int | None:
    """An nginx time ("60s", "1m", "90", "500ms") in whole seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", (value or "").strip())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2) or "s"
    return {"ms": n // 1000, "s": n, "m": n * 60, "h": n * 3600, "d": n * 86400}[unit]


def parse_directive(conf: str | None, name: str) -> str | None:
    """The first value of an nginx directive in a config text (comments ignored)."""
    for raw in (conf or "").splitlines():
        words = _strip_comment(raw).replace(";", " ; ").split()
        if len(words) >= 2 and words[0] == name:
            return words[1]
    return None


@dataclass(frozen=True)
class NginxLogLine:
    when: float | None  # epoch seconds; None when the clock offset is unknown
    level: str
    message: str  # from the message on, without "pid#tid: *conn "
    raw: str


_NGINX_LOG = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$")


def parse_clock(text: str | None) -> tuple[float, timedelta] | None:
    """`date '+%s %z'` → (now, the host's UTC offset)."""
    m = re.fullmatch(r"\s*(\d+) ([+-])(\d\d)(\d\d)\s*", text or "")
    if not m:
        return None
    offset = timedelta(hours=int(m.group(3)), minutes=int(m.group(4)))
    return float(m.group(1)), (offset if m.group(2) == "+" else -offset)


def parse_nginx_log(text: str | None, clock: str | None = None) -> list[NginxLogLine]:
    """nginx error log lines; their local times become epochs with the host's offset."""
    parsed = parse_clock(clock)
    tz = timezone(parsed[1]) if parsed else None
    out = []
    for raw in (text or "").splitlines():
        m = _NGINX_LOG.match(raw.strip())
        if not m:
            continue
        when = None
        if tz is not None:
            when = datetime.strptime(m.group(1), "%Y/%m/%d %H:%M:%S").replace(tzinfo=tz).timestamp()
        out.append(NginxLogLine(when=when, level=m.group(2), message=m.group(3), raw=raw.strip()))
    return out


def short_nginx_line(line: NginxLogLine) -> str:
    """The message and the request, without client/server/host noise: one line of evidence."""
    msg = line.message
    request = re.search(r'request: "([^"]*)"', msg)
    head = msg.split(", client:", 1)[0]
    return f'{head} ({request.group(1)})' if request else head


# ---- gunicorn -----------------------------------------------------------------------


@dataclass(frozen=True)
class GunicornLogLine:
    pid: int | None
    level: str  # INFO, ERROR, CRITICAL …; "" for a traceback or printed line
    message: str
    raw: str


_GUNICORN_LOG = re.compile(r"^\[([^\]]+)\] \[(\d+)\] \[([A-Z]+)\] (.*)$")


def parse_gunicorn_log(text: str | None) -> list[GunicornLogLine]:
    """gunicorn error log lines; a line without gunicorn's prefix belongs to the pid before it."""
    out: list[GunicornLogLine] = []
    pid: int | None = None
    for raw in (text or "").splitlines():
        m = _GUNICORN_LOG.match(raw)
        if m:
            pid = int(m.group(2))
            out.append(GunicornLogLine(pid=pid, level=m.group(3), message=m.group(4), raw=raw))
        elif raw.strip():
            out.append(GunicornLogLine(pid=pid, level="", message=raw, raw=raw))
    return out


def last_boot(text: str | None) -> str:
    """The log from the last "Starting gunicorn" on: what the newest master printed."""
    lines = (text or "").splitlines()
    starts = [i for i, ln in enumerate(lines) if "Starting gunicorn" in ln]
    return "\n".join(lines[starts[-1]:] if starts else lines)


def parse_gunicorn_setting(conf: str | None, name: str) -> str | None:
    """A top-level `name = value` of the rendered gunicorn.conf.py, quotes removed."""
    m = re.search(rf"^{re.escape(name)}\s*=\s*(.+?)\s*(?:#.*)?$", conf or "", re.M)
    if not m:
        return None
    return m.group(1).strip().strip("'\"")


# ---- the service manager -------------------------------------------------------------


@dataclass(frozen=True)
class SlotState:
    state: str  # RUNNING, STOPPED, BACKOFF, FATAL, EXITED, STARTING (supervisord's names);
    # NO_SUCH_PROCESS, MANAGER_DOWN, MANAGER_MISSING; or systemd's ActiveState (active, inactive, failed, activating)
    line: str  # what the manager said, for evidence
    sub: str = ""  # systemd's SubState: "auto-restart" while a crashed unit waits to restart

    @property
    def running(self) -> bool:
        return self.state in ("RUNNING", "active")

    @property
    def stopped(self) -> bool:
        """Stopped on purpose (not crashing)."""
        return self.state in ("STOPPED", "inactive")

    @property
    def changing(self) -> bool:
        """Between two states: one look can't tell a start from a crash loop."""
        if self.state == "activating":
            return self.sub != "auto-restart"
        return self.state in ("STARTING", "STOPPING", "deactivating", "reloading")


def parse_supervisor_status(text: str | None) -> SlotState | None:
    """One program's line of `supervisorctl status <program>`."""
    for line in (text or "").splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        if "no such process" in line:
            return SlotState("NO_SUCH_PROCESS", line)
        if line.startswith(("unix://", "http://")) or "refused connection" in line or "SHUTDOWN_STATE" in line:
            return SlotState("MANAGER_DOWN", line)
        if "could not find config file" in line:
            return SlotState("MANAGER_MISSING", line)
        words = line.split()
        if len(words) >= 2 and words[1].isupper():
            return SlotState(words[1], line)
    return None


def parse_systemd_show(text: str | None, unit: str) -> SlotState | None:
    """`systemctl show -p ActiveState -p SubState -p Result <unit>`."""
    props = dict(ln.split("=", 1) for ln in (text or "").splitlines() if "=" in ln)
    state = props.get("ActiveState")
    if not state:
        return None
    sub = props.get("SubState", "")
    result = f", result {props['Result']}" if props.get("Result") else ""
    return SlotState(state, f"{unit}: {state} ({sub}){result}", sub)


# ---- state ---------------------------------------------------------------------------


def parse_release_names(text: str | None) -> list[str]:
    """Release folder names, oldest first (ids start with their UTC time); unfinished copies left out."""
    names = [n.strip() for n in (text or "").splitlines()]
    return sorted(n for n in names if n and not n.endswith(".partial") and not n.startswith("."))
