"""The typed, frozen model of garrison.toml.

Each setting's name, default, validation and help live here, once: the
`description` of a field is the help text, and the validators produce the
"expected …" half of the one-line errors that `garrison.config.load` prints.
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A name that is both a valid Unix user (useradd's default NAME_REGEX, 32 chars)
# and a valid systemd unit prefix / supervisord program name.
NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Names an app may not take: they are system users or would collide with the
# files Garrison or the distribution own.
RESERVED_NAMES = frozenset(
    {"root", "daemon", "bin", "sys", "nobody", "www-data", "nginx", "sshd", "garrison", "default", "supervisor"}
)
DOTTED_RE = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
# module:callable, or module:factory(args) as gunicorn accepts it.
ENTRY_RE = re.compile(rf"^{DOTTED_RE}:[A-Za-z_][A-Za-z0-9_]*(?:\(.*\))?$")
# Host paths end up in nginx, systemd and supervisord files: no spaces, quotes or braces.
SAFE_PATH_RE = re.compile(r"^/[A-Za-z0-9_./-]*$")
SIZE_RE = re.compile(r"^[0-9]+[kKmMgG]?$")
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_*](?:[A-Za-z0-9_.*-]*[A-Za-z0-9_])?$")


def _got(value: Any) -> str:
    """The user's value as they would have written it in TOML."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _relative_inside(value: str, what: str) -> str:
    """A path relative to the app root that stays inside it."""
    if not isinstance(value, str):
        raise ValueError(f"expected {what} as a string, got {_got(value)}")
    if value.startswith("/"):
        raise ValueError(f"expected a path relative to the app root, got {_got(value)}")
    norm = posixpath.normpath(value)
    if norm == ".." or norm.startswith("../"):
        raise ValueError(f"expected a path inside the app root, got {_got(value)} which escapes it")
    return norm


class _Strict(BaseModel):
    # Frozen, unknown keys rejected, no silent "80" -> 80 coercion.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Static(_Strict):
    """A folder of static files that nginx serves itself."""

    url: str = Field("/static/", description="URL prefix, e.g. /static/")
    path: str = Field("static", description="folder relative to the app root")

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.startswith("/") or any(c in v for c in " ;{}'\"\\"):
            raise ValueError(f'expected a URL path starting with "/", e.g. "/static/", got {_got(v)}')
        return v if v.endswith("/") else v + "/"

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, v: Any) -> str:
        return _relative_inside(v, "a folder")


class App(_Strict):
    """What is deployed."""

    name: str = Field(description="app name: the Unix user, the service and the nginx site are named after it")
    entry: str = Field(description='WSGI entry point "module:callable" (or "module:factory()")')
    root: str = Field(".", description="the app's folder, relative to garrison.toml")
    requirements: str = Field(
        "requirements.txt",
        description='requirements file relative to the app root, "pyproject.toml" to install the project, or "" for none',
    )
    server: Literal["gunicorn", "granian"] = Field(
        "gunicorn", description='app server: "gunicorn" (as the tutorial), or "granian" (faster, Rust; same slots and checks)'
    )
    health_path: str = Field("/", description="path that answers 2xx when the app is healthy")
    health_deadline: int = Field(30, description="seconds a new release gets to answer its health check before the deploy fails")
    health_timeout: int = Field(5, description="seconds one health-check request may take")
    keep_releases: int = Field(5, description="releases kept on the host for rollback")
    python: str = Field("/usr/bin/python3", description="interpreter on the host that builds the app's venv")
    static: tuple[Static, ...] = Field((), description="static folders served by nginx")
    persist: tuple[str, ...] = Field(
        (),
        description='paths relative to the app root (folders or files, e.g. "instance", "media", "db.sqlite3") whose '
        "contents outlive releases: kept in shared/, writable by the app, linked from each release",
    )

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> str:
        if not isinstance(v, str) or not NAME_RE.match(v):
            raise ValueError(
                "expected a Unix user and service name (lowercase letter or _, then a-z 0-9 _ -, "
                f"at most 32 characters), got {_got(v)}"
            )
        if v in RESERVED_NAMES:
            raise ValueError(f"expected a name that is not a system user or service, got {_got(v)}")
        return v

    @field_validator("entry", mode="before")
    @classmethod
    def _entry(cls, v: Any) -> str:
        if not isinstance(v, str) or not ENTRY_RE.match(v):
            raise ValueError(f'expected "module:callable", e.g. "main:app", got {_got(v)}')
        return v

    @field_validator("root", mode="before")
    @classmethod
    def _root(cls, v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError(f"expected a folder as a string, got {_got(v)}")
        return posixpath.normpath(v)

    @field_validator("requirements", mode="before")
    @classmethod
    def _requirements(cls, v: Any) -> str:
        if v == "":
            return v
        return _relative_inside(v, "a file")

    @field_validator("server", mode="before")
    @classmethod
    def _server(cls, v: Any) -> Any:
        if v not in ("gunicorn", "granian"):
            raise ValueError(f'expected "gunicorn" or "granian", got {_got(v)}')
        return v

    @field_validator("health_path", mode="before")
    @classmethod
    def _health(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.startswith("/") or any(c.isspace() for c in v):
            raise ValueError(f'expected a URL path starting with "/", got {_got(v)}')
        return v

    @field_validator("health_deadline", "health_timeout", "keep_releases", mode="before")
    @classmethod
    def _pos(cls, v: Any) -> int:
        return _positive(v)

    @field_validator("python", mode="before")
    @classmethod
    def _python(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.startswith("/"):
            raise ValueError(f"expected an absolute path to a python interpreter on the host, got {_got(v)}")
        return v

    @field_validator("persist", mode="before")
    @classmethod
    def _persist(cls, v: Any) -> tuple[str, ...]:
        if not isinstance(v, list | tuple):
            raise ValueError(f'expected a list of paths, e.g. ["instance", "db.sqlite3"], got {_got(v)}')
        paths = []
        for item in v:
            path = _relative_inside(item, "a path")
            if path == "." or path.startswith(".garrison") or path == ".venv" or path.startswith(".venv/"):
                raise ValueError(f"expected a file or folder inside the app, not {_got(item)}")
            paths.append(path)
        for a in paths:
            for b in paths:
                if a != b and b.startswith(a + "/"):
                    raise ValueError(f'expected paths that do not nest, got "{b}" inside "{a}"')
        if len(set(paths)) != len(paths):
            raise ValueError("expected each path once")
        return tuple(paths)

    @field_validator("static", mode="before")
    @classmethod
    def _static(cls, v: Any) -> Any:
        if isinstance(v, list):
            return tuple(v)
        return v

    @field_validator("static", mode="after")
    @classmethod
    def _static_urls(cls, v: tuple[Static, ...]) -> tuple[Static, ...]:
        seen: set[str] = set()
        for st in v:
            if st.url == "/":
                raise ValueError('expected a static URL below "/" (the app itself answers "/"), got "/"')
            if st.url in seen:
                raise ValueError(f'expected a different url for each static folder, got "{st.url}" twice')
            seen.add(st.url)
        return v


class Hooks(_Strict):
    """Commands run as the app user in a new release, with its venv and environment."""

    release: str = Field(
        "",
        description="run in every new release before it takes traffic (migrations); must be idempotent; failure aborts the deploy",
    )
    first_deploy: str = Field(
        "",
        description="run once per app, before its first release takes traffic, never again while the app's data exists "
        "(creating the database: `flask init-db`); failure aborts the deploy",
    )
    post_deploy: str = Field("", description="run after the new release took traffic; failure is reported")

    @field_validator("release", "first_deploy", "post_deploy", mode="before")
    @classmethod
    def _cmd(cls, v: Any) -> str:
        if not isinstance(v, str) or "\n" in v or "\0" in v:
            raise ValueError(f"expected a one-line shell command, got {_got(v)}")
        return v.strip()


class TlsFiles(_Strict):
    """A certificate and key the user provides (already on the host)."""

    cert: str = Field(description="certificate chain (PEM) on the host, e.g. /etc/ssl/example.com/fullchain.pem")
    key: str = Field(description="private key (PEM) on the host")

    @field_validator("cert", "key", mode="before")
    @classmethod
    def _abs(cls, v: Any) -> str:
        if not isinstance(v, str) or not SAFE_PATH_RE.match(v) or v.endswith("/"):
            raise ValueError(f"expected an absolute file path on the host, got {_got(v)}")
        return v


class Server(_Strict):
    """The host side of the app: names, port, user, folders."""

    names: tuple[str, ...] = Field(("localhost",), description="nginx server_name values")
    port: int = Field(80, description="HTTP port nginx listens on")
    default: bool = Field(
        False, description="answer requests for unknown hosts (nginx default_server; disables the distribution's default site)"
    )
    tls: Literal["letsencrypt"] | TlsFiles | None = Field(
        None, description='HTTPS: "letsencrypt" (certbot, HTTP-01 webroot) or {cert = "...", key = "..."}; unset: HTTP only'
    )
    https_port: int = Field(443, description="HTTPS port when tls is set")
    hsts_preload: bool = Field(False, description="add `preload` to the HSTS header (opt in: it is hard to undo)")
    tls_email: str | None = Field(None, description="contact address for Let's Encrypt (required with tls = \"letsencrypt\")")
    user: str | None = Field(None, description="the app's Unix user (default: the app name)")
    base: str | None = Field(None, description="folder of releases, venvs and shared files (default: /srv/<name>)")

    @field_validator("names", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if not isinstance(v, list) or not v:
            raise ValueError(f'expected a non-empty list of host names, e.g. ["example.com"], got {_got(v)}')
        for n in v:
            if not isinstance(n, str) or not HOSTNAME_RE.match(n):
                raise ValueError(f"expected host names, got {_got(n)}")
        return tuple(v)

    @field_validator("port", "https_port", mode="before")
    @classmethod
    def _port(cls, v: Any) -> int:
        return _port(v)

    @field_validator("tls", mode="before")
    @classmethod
    def _tls(cls, v: Any) -> Any:
        if v is None or v == "letsencrypt" or isinstance(v, dict):
            return v
        raise ValueError(f'expected "letsencrypt" or a table {{cert = "...", key = "..."}}, got {_got(v)}')

    @field_validator("tls_email", mode="before")
    @classmethod
    def _email(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str) or not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", v)):
            raise ValueError(f"expected an e-mail address, got {_got(v)}")
        return v

    @model_validator(mode="after")
    def _letsencrypt(self) -> Server:
        if self.tls == "letsencrypt":
            if not self.tls_email:
                raise ValueError('expected tls_email (Let\'s Encrypt needs a contact address) with tls = "letsencrypt"')
            bad = [n for n in self.names if n in ("localhost", "_") or "*" in n or re.match(r"^[0-9.]+$", n)]
            if bad:
                raise ValueError(f'expected public domain names with tls = "letsencrypt" (HTTP-01 can\'t prove "{bad[0]}")')
        if self.tls is not None and self.https_port == self.port:
            raise ValueError("expected https_port to differ from port")
        return self

    @field_validator("user", mode="before")
    @classmethod
    def _user(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str) or not NAME_RE.match(v) or v in RESERVED_NAMES):
            raise ValueError(f"expected a Unix user name for the app (not a system user), got {_got(v)}")
        return v

    @field_validator("base", mode="before")
    @classmethod
    def _base(cls, v: Any) -> Any:
        if v is None:
            return v
        if (
            not isinstance(v, str)
            or not SAFE_PATH_RE.match(v)
            or posixpath.normpath(v) in ("/", "/etc", "/usr", "/var", "/home", "/srv", "/opt", "/root")
        ):
            raise ValueError(f'expected an absolute folder of its own, e.g. "/srv/myapp", got {_got(v)}')
        return posixpath.normpath(v)


def _port(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
        raise ValueError(f"expected a port number from 1 to 65535, got {_got(v)}")
    return v


def _positive(v: Any, zero_ok: bool = False) -> int:
    low = 0 if zero_ok else 1
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        kind = "a non-negative integer" if zero_ok else "a positive integer"
        raise ValueError(f"expected {kind}, got {_got(v)}")
    return v


WorkerClass = Literal["sync", "gthread", "gevent", "uvicorn"]


class Gunicorn(_Strict):
    """The app server's settings (rendered into gunicorn.conf.py)."""

    # Defaults measured by bench/serve.py (docs/benchmarks.md): gthread with one process per
    # CPU and 8 threads beat the tutorial's 2 x CPU + 1 gevent workers on throughput, p99
    # latency and memory for an I/O-light Flask page.
    worker_class: WorkerClass = Field(
        "gthread", description="gthread | gevent (many slow or long-lived connections) | sync | uvicorn (ASGI apps)"
    )
    workers: int | Literal["auto"] = Field(
        "auto", description='worker processes, or "auto": one per CPU (at least 2), 2 x CPU + 1 for sync, on the host'
    )
    threads: int = Field(8, description="threads per worker (gthread)")
    worker_connections: int = Field(1000, description="simultaneous clients per gevent worker")
    max_requests: int = Field(0, description="recycle a worker after this many requests (0: never; e.g. 20000 for an app that leaks)")
    max_requests_jitter: int | None = Field(None, description="random extra requests per worker (default: max_requests / 10)")
    timeout: int = Field(30, description="seconds a worker may take for one request before it is killed")
    graceful_timeout: int = Field(30, description="seconds workers get to finish requests on stop/restart")
    keepalive: int = Field(5, description="seconds an idle keep-alive connection from nginx stays open")
    socket: str | None = Field(None, description="unix socket folder (default: <base>/run); one socket per slot")
    bind: str | None = Field(None, description='"host:port" to listen on TCP instead of a unix socket')
    loglevel: Literal["debug", "info", "warning", "error", "critical"] = Field("info", description="error log level")
    access_log: bool = Field(True, description="write gunicorn's access log")

    @field_validator("worker_class", mode="before")
    @classmethod
    def _wc(cls, v: Any) -> Any:
        if v not in ("sync", "gthread", "gevent", "uvicorn"):
            raise ValueError(f'expected "sync", "gthread", "gevent" or "uvicorn", got {_got(v)}')
        return v

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f'expected a positive integer or "auto", got {_got(v)}')

    @field_validator("threads", "worker_connections", "timeout", "graceful_timeout", "keepalive", mode="before")
    @classmethod
    def _pos(cls, v: Any) -> int:
        return _positive(v)

    @field_validator("max_requests", mode="before")
    @classmethod
    def _maxreq(cls, v: Any) -> int:
        return _positive(v, zero_ok=True)

    @field_validator("max_requests_jitter", mode="before")
    @classmethod
    def _jitter(cls, v: Any) -> Any:
        return None if v is None else _positive(v, zero_ok=True)

    @field_validator("loglevel", mode="before")
    @classmethod
    def _loglevel(cls, v: Any) -> Any:
        if v not in ("debug", "info", "warning", "error", "critical"):
            raise ValueError(f'expected one of "debug", "info", "warning", "error", "critical", got {_got(v)}')
        return v

    @field_validator("socket", mode="before")
    @classmethod
    def _socket(cls, v: Any) -> Any:
        if v is None:
            return v
        norm = posixpath.normpath(v) if isinstance(v, str) else ""
        volatile = ("/run", "/var/run", "/tmp", "/dev", "/proc", "/sys")
        if (
            not isinstance(v, str)
            or not SAFE_PATH_RE.match(v)
            or len(v) > 80
            or norm.count("/") < 2
            or any(norm == p or norm.startswith(p + "/") for p in volatile)
        ):
            raise ValueError(
                "expected a folder of the app's own that survives a reboot, e.g. \"/srv/myapp/sockets\" "
                f"(not under /run or /tmp, at most 80 characters), got {_got(v)}"
            )
        return norm

    @field_validator("bind", mode="before")
    @classmethod
    def _bind(cls, v: Any) -> Any:
        if v is None:
            return v
        host, sep, port = v.rpartition(":") if isinstance(v, str) else ("", "", "")
        try:
            ok = bool(sep) and bool(host) and 1 <= int(port) <= 65534
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f'expected "address:port" with an IP address and a port below 65535 (the green slot uses port + 1), '
                f'e.g. "127.0.0.1:9000", got {_got(v)}'
            )
        ip = ipaddress.ip_address(host.strip("[]"))
        if not (ip.is_loopback or (ip.is_private and not ip.is_unspecified)):
            raise ValueError(
                "expected a loopback or private address: gunicorn must never face the internet "
                f"(nginx does), got {_got(v)}"
            )
        return v

    @model_validator(mode="after")
    def _socket_xor_bind(self) -> Gunicorn:
        if self.socket is not None and self.bind is not None:
            raise ValueError("expected either socket (a unix socket) or bind (a TCP port), not both")
        return self

    @property
    def jitter(self) -> int:
        return self.max_requests // 10 if self.max_requests_jitter is None else self.max_requests_jitter


class Nginx(_Strict):
    """The front server's settings for this app's site."""

    client_max_body_size: str = Field("10m", description="largest request body (nginx size, e.g. 10m)")
    keepalive_timeout: int = Field(15, description="seconds a client keep-alive connection stays open")
    upstream_keepalive: int = Field(16, description="idle connections to gunicorn kept open per nginx worker (0: none)")
    proxy_connect_timeout: int = Field(5, description="seconds to connect to gunicorn")
    proxy_read_timeout: int = Field(60, description="seconds to wait for gunicorn's answer")
    proxy_send_timeout: int = Field(60, description="seconds to send the request to gunicorn")
    gzip: bool = Field(True, description="compress text responses")
    static_expires: str = Field("7d", description="Cache-Control max-age of static files (nginx time, e.g. 7d, 1h)")
    rate_limit: str | None = Field(None, description='requests per client address to the app, e.g. "10r/s" (unset: no limit)')
    rate_limit_burst: int = Field(20, description="requests above the rate a client may burst before getting 429")

    @field_validator("client_max_body_size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> str:
        if not isinstance(v, str) or not SIZE_RE.match(v):
            raise ValueError(f'expected an nginx size such as "10m" or "512k", got {_got(v)}')
        return v

    @field_validator("static_expires", mode="before")
    @classmethod
    def _expires(cls, v: Any) -> str:
        if not isinstance(v, str) or not re.match(r"^[0-9]+[smhdwMy]?$", v):
            raise ValueError(f'expected an nginx time such as "7d" or "12h", got {_got(v)}')
        return v

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _rate(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str) or not re.match(r"^[1-9][0-9]*r/[sm]$", v)):
            raise ValueError(f'expected an nginx rate such as "10r/s" or "300r/m", got {_got(v)}')
        return v

    @field_validator("rate_limit_burst", mode="before")
    @classmethod
    def _burst(cls, v: Any) -> int:
        return _positive(v, zero_ok=True)

    @field_validator("keepalive_timeout", "proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout", mode="before")
    @classmethod
    def _pos(cls, v: Any) -> int:
        return _positive(v)

    @field_validator("upstream_keepalive", mode="before")
    @classmethod
    def _ka(cls, v: Any) -> int:
        return _positive(v, zero_ok=True)


Role = Literal["app", "lb"]


class Host(_Strict):
    """A server to deploy to over SSH."""

    name: str = Field(description="short name used in output and --host")
    address: str = Field(description="IP address, DNS name or ~/.ssh/config alias")
    user: str = Field("root", description="SSH user")
    port: int = Field(22, description="SSH port")
    roles: tuple[Role, ...] = Field(("app",), description='"app" runs gunicorn, "lb" runs the load-balancing nginx')
    private_address: str | None = Field(None, description="address gunicorn binds to on a multi-host setup")

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> str:
        if not isinstance(v, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", v):
            raise ValueError(f"expected a short host name (letters, digits, . _ -), got {_got(v)}")
        return v

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, v: Any) -> str:
        if not isinstance(v, str) or not v or v.startswith("-") or any(c.isspace() for c in v):
            raise ValueError(f"expected an IP address or host name, got {_got(v)}")
        return v

    @field_validator("user", mode="before")
    @classmethod
    def _user(cls, v: Any) -> str:
        if not isinstance(v, str) or not NAME_RE.match(v):
            raise ValueError(f"expected a Unix user name, got {_got(v)}")
        return v

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, v: Any) -> int:
        return _port(v)

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, v: Any) -> Any:
        if not isinstance(v, list) or not v or any(r not in ("app", "lb") for r in v):
            raise ValueError(f'expected a non-empty list of "app" and "lb", got {_got(v)}')
        return tuple(v)

    @field_validator("private_address", mode="before")
    @classmethod
    def _private(cls, v: Any) -> Any:
        if v is None:
            return v
        try:
            ip = ipaddress.ip_address(v)
        except (TypeError, ValueError):
            raise ValueError(f"expected an IP address, got {_got(v)}") from None
        if not (ip.is_private or ip.is_loopback):
            raise ValueError(f"expected a private or loopback address (gunicorn is never public), got {_got(v)}")
        return v


# A process or job name becomes part of unit, program and file names: <app>-<name>@.service,
# <app>-job-<name>.timer, /var/log/<app>/process-<name>.log.
PROCESS_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
# Names a process may not take: the web server's own, and supervisord's web slot programs (<app>-blue).
RESERVED_PROCESS_NAMES = {"web": "the app's web server (gunicorn)", "blue": "a web slot", "green": "a web slot"}
CRON_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
               "@monthly": "0 0 1 * *"}
# minute, hour, day of month, month, day of week: (low, high, names)
CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int:
    if text.isdigit():
        return int(text)
    if text.lower() in names:
        return names.index(text.lower()) + low
    raise ValueError(text)


def cron_field(text: str, low: int, high: int, names: tuple[str, ...] = ()) -> frozenset[int]:
    """The values one cron field matches: `*`, `*/n`, `a`, `a-b`, `a-b/n`, and lists of these.

    Raises ValueError (with the part it could not read) for anything else."""
    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(part)
        if rng == "*":
            a, b = low, high
        elif "-" in rng:
            first, _, last = rng.partition("-")
            a, b = _cron_value(first, low, names), _cron_value(last, low, names)
        elif step is None:
            a = b = _cron_value(rng, low, names)
        else:
            raise ValueError(part)  # "a/n": cron steps only through a range
        if not low <= a <= b <= high:
            raise ValueError(part)
        values.update(range(a, b + 1, step or 1))
    return frozenset(values)


def cron_schedule(text: str) -> tuple[frozenset[int], ...]:
    """A schedule's five fields as the sets of values they match (day of week 7 is 0, Sunday)."""
    fields = CRON_MACROS.get(text.strip(), text).split()
    if len(fields) != 5:
        raise ValueError(f"it has {len(fields)} fields, not 5")
    out = []
    for (what, low, high, names), field in zip(CRON_FIELDS, fields, strict=True):
        try:
            out.append(cron_field(field, low, high, names))
        except ValueError:
            raise ValueError(f'"{field}" is not a valid {what} field') from None
    dow = out[4]
    out[4] = frozenset({d % 7 for d in dow})
    return tuple(out)


def _one_line_command(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or "\n" in v or "\0" in v:
        raise ValueError(f"expected a one-line shell command, got {_got(v)}")
    return v.strip()


class Process(_Strict):
    """A long-running process of the app besides the web server (a queue worker)."""

    command: str = Field(
        description='one command (run with exec by /bin/sh: $VARIABLES expand) in the live release with the venv on PATH, e.g. "rq worker"'
    )
    count: int = Field(1, description="how many copies run")
    stop_timeout: int = Field(30, description="seconds after SIGTERM (on a deploy or down) before SIGKILL")
    hosts: tuple[str, ...] | None = Field(None, description="[[hosts]] names it runs on (default: every app host)")

    @field_validator("command", mode="before")
    @classmethod
    def _cmd(cls, v: Any) -> str:
        return _one_line_command(v)

    @field_validator("count", "stop_timeout", mode="before")
    @classmethod
    def _pos(cls, v: Any) -> int:
        return _positive(v)

    @field_validator("hosts", mode="before")
    @classmethod
    def _hosts(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, list) or not v or not all(isinstance(h, str) for h in v):
            raise ValueError(f'expected a non-empty list of [[hosts]] names, e.g. ["web2"], got {_got(v)}')
        return tuple(v)


class Job(_Strict):
    """A command run on a schedule (cron syntax), never twice at once."""

    schedule: str = Field(description='cron syntax "m h dom mon dow", e.g. "*/5 * * * *", or @hourly, @daily, @weekly')
    command: str = Field(description="shell command run as the app user in the live release, with the venv on PATH")
    timeout: int | None = Field(None, description="seconds a run may take before it is stopped (default: no limit)")
    host: str | None = Field(None, description="the [[hosts]] name it runs on (default: the first app host)")

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, v: Any) -> str:
        if isinstance(v, str):
            try:
                cron_schedule(v)
            except ValueError as exc:
                raise ValueError(
                    f'expected cron syntax "minute hour day-of-month month day-of-week" (e.g. "*/5 * * * *") '
                    f"or @hourly, @daily, @weekly, @monthly, got {_got(v)}: {exc}"
                ) from None
            # Stored as five fields: cron and systemd's calendar are both rendered from them.
            return " ".join(CRON_MACROS.get(v.strip(), v).split())
        raise ValueError(f'expected a cron schedule such as "*/5 * * * *" or "@daily", got {_got(v)}')

    @field_validator("command", mode="before")
    @classmethod
    def _cmd(cls, v: Any) -> str:
        return _one_line_command(v)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> Any:
        return None if v is None else _positive(v)

    @field_validator("host", mode="before")
    @classmethod
    def _host(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, str):
            raise ValueError(f"expected the name of one of [[hosts]], got {_got(v)}")
        return v


def _named_tables(kind: str, v: Any) -> Any:
    """[processes.NAME] / [jobs.NAME]: a table of tables whose names fit unit and file names."""
    if not isinstance(v, dict):
        raise ValueError(f"expected tables [{kind}.NAME], got {_got(v)}")
    for name in v:
        if name in RESERVED_PROCESS_NAMES and kind == "processes":
            raise ValueError(f'{kind}.{name}: expected another name: "{name}" is {RESERVED_PROCESS_NAMES[name]}')
        if not PROCESS_NAME_RE.match(name):
            raise ValueError(
                f"{kind}.{name}: expected a name of lowercase letters, digits, _ and - (starting with a letter, "
                f"at most 31 characters), got {_got(name)}"
            )
    return v


class Config(_Strict):
    """The whole of garrison.toml."""

    app: App
    server: Server = Server()
    gunicorn: Gunicorn = Gunicorn()
    nginx: Nginx = Nginx()
    hooks: Hooks = Hooks()
    hosts: tuple[Host, ...] = Field((), description="servers for `garrison deploy`")
    processes: dict[str, Process] = Field(default_factory=dict, description="worker processes, [processes.NAME]")
    jobs: dict[str, Job] = Field(default_factory=dict, description="scheduled jobs, [jobs.NAME]")

    @field_validator("hosts", mode="before")
    @classmethod
    def _hosts(cls, v: Any) -> Any:
        if isinstance(v, list):
            return tuple(v)
        return v

    @field_validator("hosts", mode="after")
    @classmethod
    def _unique_hosts(cls, v: tuple[Host, ...]) -> tuple[Host, ...]:
        seen: set[str] = set()
        for h in v:
            if h.name in seen:
                raise ValueError(f'expected unique host names, got "{h.name}" twice')
            seen.add(h.name)
        return v

    @model_validator(mode="before")
    @classmethod
    def _table_names(cls, data: Any) -> Any:
        # Checked here rather than on the fields, so that the error names the key (processes.web).
        if isinstance(data, dict):
            for kind in ("processes", "jobs"):
                if kind in data:
                    _named_tables(kind, data[kind])
        return data

    @model_validator(mode="after")
    def _pinned_hosts(self) -> Config:
        names = [h.name for h in self.hosts if "app" in h.roles]
        for pname, proc in self.processes.items():
            for h in proc.hosts or ():
                if h not in names:
                    raise ValueError(f"processes.{pname}.hosts: expected names of app [[hosts]] ({', '.join(names) or 'none'}), got \"{h}\"")
        for jname, job in self.jobs.items():
            if job.host is not None and job.host not in names:
                raise ValueError(f"jobs.{jname}.host: expected the name of an app [[hosts]] ({', '.join(names) or 'none'}), got \"{job.host}\"")
        return self

    @property
    def user(self) -> str:
        return self.server.user or self.app.name

    @property
    def base(self) -> str:
        return self.server.base or f"/srv/{self.app.name}"

