"""`garrison deploy` to the [[hosts]] of garrison.toml: over SSH, in parallel or rolling.

Owns: how a host of the config becomes an SSHExecutor (SSH options from the
environment), the per-host config (gunicorn bound to the host's private
address when a load balancer fronts the app hosts), the offline wheelhouse
that `Up` installs from, the parallel deploy (a thread, an executor and a Run
per host), the rolling deploy behind the `lb` host, and what the LB's steps
(garrison/steps/lb.py) are given about the app hosts. It never prints: each host's steps go to the Reporter the caller gives
for that host, and the outcome of every host comes back as a HostOutcome.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from garrison.config import Config
from garrison.config.model import Host
from garrison.errors import ConfigError, DeployError, GarrisonError
from garrison.hosts import Executor
from garrison.layout import Layout
from garrison.project import Project
from garrison.state import AppOnHost, HostFacts
from garrison.steps import Context, Step, execute
from garrison.steps import lb as lb_steps
from garrison.steps.system import System
from garrison.workflows import Reporter, Run
from garrison.workflows.doctor import explain
from garrison.workflows.up import context, rollback, up

DEFAULT_APP_PORT = 8000

# ---------------------------------------------------------------------------
# SSH options (environment first, so that tests and CI can point them anywhere)


@dataclass(frozen=True)
class SSHOptions:
    """How to reach hosts. Environment: GARRISON_KNOWN_HOSTS, GARRISON_SSH_CONFIG
    (empty: none), GARRISON_IDENTITY (comma-separated private keys),
    GARRISON_CONNECT_TIMEOUT (seconds)."""

    known_hosts: str = "~/.ssh/known_hosts"
    ssh_config: str | None = "~/.ssh/config"
    identity_files: tuple[str, ...] | None = None
    trust_new_hosts: bool = False
    connect_timeout: float = 10.0

    @classmethod
    def from_env(cls, trust_new_hosts: bool = False, env: Mapping[str, str] | None = None) -> SSHOptions:
        values: Mapping[str, str] = os.environ if env is None else env
        ids = values.get("GARRISON_IDENTITY")
        cfg = values.get("GARRISON_SSH_CONFIG")
        return cls(
            known_hosts=values.get("GARRISON_KNOWN_HOSTS") or "~/.ssh/known_hosts",
            ssh_config=(cfg or None) if cfg is not None else "~/.ssh/config",
            identity_files=tuple(p for p in ids.split(",") if p) if ids else None,
            trust_new_hosts=trust_new_hosts,
            connect_timeout=float(values.get("GARRISON_CONNECT_TIMEOUT") or 10),
        )


def executor_for(host: Host, opts: SSHOptions, user: str | None = None) -> Executor:
    """A (not yet connected) SSHExecutor for a [[hosts]] entry."""
    from garrison.hosts.ssh import SSHExecutor

    return SSHExecutor(
        host.address,
        user=user or host.user,
        port=host.port,
        name=host.name,
        known_hosts=opts.known_hosts,
        trust_on_first_use=opts.trust_new_hosts,
        ssh_config=opts.ssh_config,
        identity_files=list(opts.identity_files) if opts.identity_files is not None else None,
        connect_timeout=opts.connect_timeout,
    )


# ---------------------------------------------------------------------------
# Which hosts, and the config each one gets


def app_hosts(cfg: Config) -> list[Host]:
    return [h for h in cfg.hosts if "app" in h.roles]


def lb_hosts(cfg: Config) -> list[Host]:
    return [h for h in cfg.hosts if "lb" in h.roles]


def select_hosts(cfg: Config, names: Sequence[str]) -> list[Host]:
    if not names:
        return app_hosts(cfg)
    known = {h.name: h for h in cfg.hosts}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--host {unknown[0]}: no such host in garrison.toml (hosts: {', '.join(known) or 'none'})")
    return [known[n] for n in names]


def private_address(host: Host) -> str:
    if host.private_address:
        return host.private_address
    try:
        ip = ipaddress.ip_address(host.address)
    except ValueError:
        ip = None
    if ip is not None and (ip.is_private or ip.is_loopback):
        return host.address
    raise ConfigError(
        f"hosts.{host.name}.private_address: needed with a load balancer (gunicorn binds to it, never to a public "
        f"address); set it to {host.name}'s address on the private network"
    )


def app_port(cfg: Config) -> int:
    return int(cfg.gunicorn.bind.rpartition(":")[2]) if cfg.gunicorn.bind else DEFAULT_APP_PORT


def host_project(project: Project, host: Host) -> Project:
    """The project as this host deploys it: with a load balancer in front, gunicorn listens on
    the host's private address (blue on the port, green on port + 1), where the LB reaches it."""
    cfg = project.config
    if not lb_hosts(cfg) or "app" not in host.roles:
        return project
    bind = f"{private_address(host)}:{app_port(cfg)}"
    g = cfg.gunicorn.model_copy(update={"bind": bind, "socket": None})
    return dataclasses.replace(project, config=cfg.model_copy(update={"gunicorn": g}))


# ---------------------------------------------------------------------------
# Deploying: one host, many in parallel, rolling behind the LB


@dataclass
class HostOutcome:
    name: str
    ok: bool = False
    error: str | None = None  # the error's full text (first line: the one-line reason)
    run: Run = field(default_factory=Run)
    seconds: float = 0.0
    skipped: bool = False

    @property
    def changed(self) -> bool:
        return self.run.changed


@dataclass
class FleetDeploy:
    """Deploys project to app hosts (and configures the LB) over SSH."""

    project: Project
    opts: SSHOptions
    reporter_for: Callable[[str], Reporter]
    wheelhouse: Path | None = None
    executors: dict[str, Executor] = field(default_factory=dict)

    @property
    def cfg(self) -> Config:
        return self.project.config

    def executor(self, host: Host) -> Executor:
        ex = self.executors.get(host.name)
        if ex is None:
            ex = self.executors[host.name] = executor_for(host, self.opts)
        return ex

    def close(self) -> None:
        for ex in self.executors.values():
            close = getattr(ex, "close", None)
            if close:
                close()
        self.executors.clear()

    # -- one host ---------------------------------------------------------
    def deploy_one(self, host: Host, outcome: HostOutcome | None = None, action: str = "deploy", release: str | None = None) -> HostOutcome:
        out = outcome or HostOutcome(host.name)
        out.run = Run(reporter=self.reporter_for(host.name))
        t0 = time.monotonic()
        try:
            proj, ex = host_project(self.project, host), self.executor(host)
            if action == "rollback":
                rollback(proj, ex, out.run, release, wheelhouse=self.wheelhouse)
            else:
                up(proj, ex, out.run, wheelhouse=self.wheelhouse)
            out.ok = True
        except DeployError as exc:
            # The cause, read on that host (its logs, its nginx), not on this machine.
            out.error = str(explain(proj, ex, exc)) or type(exc).__name__
        except GarrisonError as exc:
            out.error = str(exc) or type(exc).__name__
        except Exception as exc:  # a bug: keep the other hosts going, show the traceback for this one
            out.error = f"unexpected {type(exc).__name__}: {exc}\n" + traceback.format_exc().rstrip()
        out.seconds = time.monotonic() - t0
        return out

    # -- many hosts, all at once ------------------------------------------
    def parallel(self, hosts: Iterable[Host], action: str = "deploy", release: str | None = None) -> list[HostOutcome]:
        outcomes = [HostOutcome(h.name) for h in hosts]
        by_name = {h.name: h for h in hosts}
        threads = [
            threading.Thread(target=self.deploy_one, args=(by_name[o.name], o, action, release), name=f"deploy-{o.name}", daemon=True)
            for o in outcomes
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outcomes

    # -- behind a load balancer -------------------------------------------
    def deploy(self, hosts: list[Host], *, parallel: bool = False, action: str = "deploy", release: str | None = None) -> list[HostOutcome]:
        """Deploy to `hosts` (app hosts). With an `lb` host in the config: rolling by default
        (each host out of the upstream, deployed, put back), then the LB's site."""
        lbs = lb_hosts(self.cfg)
        apps = [h for h in hosts if "app" in h.roles]
        only_lb = [h for h in hosts if "app" not in h.roles]
        if not lbs:
            return self.parallel(apps, action, release) + [
                HostOutcome(h.name, error=f"{h.name} has no app role and there is no load balancer to set up") for h in only_lb
            ]
        lb = lbs[0]
        balancer = LoadBalancer(self, lb)
        outcomes: list[HostOutcome] = []
        if parallel or not balancer.configured():
            # First deploy (nothing to roll: the LB serves nobody yet) or downtime accepted.
            outcomes = self.parallel(apps, action, release)
        else:
            stop = False
            for h in apps:
                if stop:
                    outcomes.append(HostOutcome(h.name, skipped=True, error="not deployed: the roll stopped at a failed host"))
                    continue
                o = HostOutcome(h.name)
                o.run = Run(reporter=self.reporter_for(h.name))
                try:
                    balancer.set_down(h.name, True, o.run)
                except GarrisonError as exc:
                    o.error = f"load balancer {lb.name}: {exc}"
                    outcomes.append(o)
                    stop = True
                    continue
                self.deploy_one(h, o, action, release)
                try:
                    # Back in, at the port of whatever slot serves now (the old one after a failure).
                    balancer.set_down(h.name, False, o.run, read_live=True)
                except GarrisonError as exc:
                    o.ok, o.error = False, (o.error + "\n" if o.error else "") + f"load balancer {lb.name}: {exc}"
                outcomes.append(o)
                if not o.ok:
                    stop = True
        lb_out = HostOutcome(lb.name)
        lb_out.run = Run(reporter=self.reporter_for(lb.name))
        t0 = time.monotonic()
        try:
            balancer.ensure(lb_out.run)
            lb_out.ok = True
        except GarrisonError as exc:
            lb_out.error = str(exc)
        except Exception as exc:
            lb_out.error = f"unexpected {type(exc).__name__}: {exc}\n" + traceback.format_exc().rstrip()
        lb_out.seconds = time.monotonic() - t0
        if "app" not in lb.roles:
            outcomes.append(lb_out)
        else:
            outcomes.append(dataclasses.replace(lb_out, name=f"{lb.name} (lb)"))
        return outcomes


# ---------------------------------------------------------------------------
# The load balancer host


@dataclass
class LoadBalancer:
    """The `lb` host: its steps (garrison/steps/lb.py), fed with what the app hosts serve."""

    fleet: FleetDeploy
    host: Host
    facts: HostFacts | None = None  # read once, by the system step

    @property
    def cfg(self) -> Config:
        return self.fleet.cfg

    @property
    def ex(self) -> Executor:
        return self.fleet.executor(self.host)

    def configured(self) -> bool:
        return lb_steps.configured(self.ex, Layout.of(self.cfg))

    def lb_context(self, run: Run) -> Context:
        """A context on the LB host whose facts are known: the system step ran (quietly,
        when the run is an app host's, whose lines are about that host)."""
        ctx = context(self.fleet.project, self.ex, run)
        if self.facts is None:
            quiet = context(self.fleet.project, self.ex, Run())
            execute(quiet, [System()])
            self.facts = quiet.facts
        ctx.facts = self.facts
        return ctx

    def live_port(self, host: Host) -> int | None:
        """The port of the slot that serves on app host `host` (from its own upstream include)."""
        proj = host_project(self.fleet.project, host)
        slot = AppOnHost(proj.config, self.fleet.executor(host)).live_slot()
        if slot is None:
            return None
        return int(Layout.of(proj.config).bind_address(slot).rpartition(":")[2])

    def backends(self, ports: dict[str, int | None] | None = None) -> list[lb_steps.Backend]:
        ports = ports or {}
        return [lb_steps.Backend(h.name, private_address(h), ports.get(h.name)) for h in app_hosts(self.cfg)]

    def set_down(self, name: str, down: bool, run: Run, read_live: bool = False) -> None:
        """App host `name` out of the upstream (or back in, at the port it serves at now)."""
        port = None
        if read_live:
            port = self.live_port(next(h for h in self.cfg.hosts if h.name == name))
        step = lb_steps.LbMark(self.backends(), name, down, port, lb=self.host.name)
        execute(self.lb_context(run), [step])

    def ensure(self, run: Run) -> None:
        """nginx on the LB: static files (its own copy of the release's), the upstream of every
        app host at its live port, the site; each validated before it goes live."""
        ports: dict[str, int | None] = {}
        for h in app_hosts(self.cfg):
            try:
                ports[h.name] = self.live_port(h)
            except GarrisonError:
                ports[h.name] = None  # unreachable: it keeps the port the LB knows
        ctx = context(self.fleet.project, self.ex, run)
        name = self.host.name
        execute(ctx, [System()])  # Debian, root, nginx installed
        self.facts = ctx.facts
        steps: list[Step] = [lb_steps.LbStatic(self.fleet.project.root, lb=name), lb_steps.LbUpstream(self.backends(ports), lb=name),
                 lb_steps.LbSite(lb=name)]
        execute(ctx, steps)


def summary(outcomes: Sequence[HostOutcome], seconds: float, verb: str = "deployed") -> str:
    ok = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok and not o.skipped]
    skipped = [o for o in outcomes if o.skipped]
    parts = [f"{verb} {len(ok)}/{len(outcomes)} host(s)"]
    if ok:
        changed = sum(1 for o in ok if o.changed)
        parts.append(f"{changed} changed, {len(ok) - changed} unchanged")
    if failed:
        parts.append("failed: " + ", ".join(o.name for o in failed))
    if skipped:
        parts.append("not attempted: " + ", ".join(o.name for o in skipped))
    return "; ".join(parts) + f" ({seconds:.1f} s)"


def exit_status(outcomes: Sequence[HostOutcome]) -> int:
    return min(100, sum(1 for o in outcomes if not o.ok and not o.skipped))
