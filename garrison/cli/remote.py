"""Commands for the [[hosts]] of garrison.toml, over SSH: deploy, provision, status, logs.

Registered on `garrison.cli.local.main` when this module is imported (by
garrison/cli/__init__.py). `deploy` replaces the local-only command of the same
name: with no [[hosts]] it is still `garrison up` on this machine (and `--plan`).

SSH settings come from the environment as well as ~/.ssh: GARRISON_KNOWN_HOSTS,
GARRISON_SSH_CONFIG (empty: none), GARRISON_IDENTITY (comma-separated keys),
GARRISON_CONNECT_TIMEOUT; pip's offline wheelhouse from --wheelhouse or
GARRISON_WHEELHOUSE.

Exit status of `deploy`: the number of hosts that failed (at most 100); 0 when
every host succeeded; the usual codes (2 bad config, ...) for errors before
any host was touched.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from rich.markup import escape

from garrison.cli.local import _STYLE, _project, boundary, config_option, err, main, out, print_plan
from garrison.cli.local import rollback as local_rollback
from garrison.cli.local import up as local_up
from garrison.errors import GarrisonError
from garrison.workflows import StepResult

if TYPE_CHECKING:
    from garrison.config.model import Host
    from garrison.hosts import Executor
    from garrison.hosts.ssh import SSHExecutor
    from garrison.project import Project
    from garrison.workflows import Run
    from garrison.workflows.fleet import FleetDeploy, HostOutcome

F = TypeVar("F", bound=Callable[..., Any])
_PRINT = threading.Lock()


class PrefixReporter:
    """One line per step, prefixed by the host's name; safe to share a console between threads."""

    def __init__(self, name: str, width: int = 0):
        self.prefix = f"{name:<{width}}" if width else name

    def start(self, name: str, what: str) -> None:
        pass

    def done(self, result: StepResult) -> None:
        style = _STYLE.get(result.status, "")
        with _PRINT:
            out.print(
                f"[bold]{escape(self.prefix)}[/] | [{style}]{result.status:>9}[/] {result.name:<10} "
                f"{escape(result.detail)} [dim]({result.seconds:.1f} s)[/]"
            )

    def note(self, text: str) -> None:
        with _PRINT:
            out.print(f"[bold]{escape(self.prefix)}[/] | {escape(text)}")


def _reporters(names: list[str]) -> Callable[[str], PrefixReporter]:
    width = max((len(n) for n in names), default=0)
    return lambda name: PrefixReporter(name, width)


def _host_error(name: str, text: str) -> None:
    """The one-line error for one host: its first line, named by the host."""
    err.print(f"[bold red]garrison: error:[/] [bold]{escape(name)}[/]: {escape(text.splitlines()[0] if text else '')}")


def _print_failures(outcomes: Sequence[HostOutcome]) -> None:
    for o in outcomes:
        if o.ok or o.skipped or not o.error:
            continue
        lines = o.error.splitlines()
        _host_error(o.name, o.error)
        for line in lines[1:]:
            err.print(f"{escape(o.name)} | {escape(line)}")
    for o in outcomes:
        if o.skipped:
            err.print(f"[yellow]garrison:[/] {escape(o.name)}: {escape(o.error or 'not attempted')}")


ssh_options = [
    click.option("--host", "host_names", multiple=True, metavar="NAME",
                 help="Only this host of garrison.toml (repeat for several)."),
    click.option("--trust-new-hosts", is_flag=True,
                 help="Trust a host's key on first use (appended to known_hosts); a CHANGED key is still refused."),
]


def _with(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return deco


@click.command("deploy")
@config_option
@click.option("--plan", "show_plan", is_flag=True, help="Print what would change, with file diffs, and touch nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --plan: the decisions as JSON (one list per host).")
@_with(ssh_options)
@click.option("--parallel", is_flag=True, help="With a load balancer: deploy every app host at once instead of rolling.")
@click.option("--wheelhouse", type=click.Path(path_type=Path, file_okay=False), envvar="GARRISON_WHEELHOUSE",
              help="Folder of wheels the hosts install from (pip --no-index); for hosts without a route to PyPI. "
                   "[env: GARRISON_WHEELHOUSE]")
@click.pass_context
def deploy_cmd(ctx: click.Context, config_path: Path | None, show_plan: bool, as_json: bool, host_names: tuple[str, ...],
               trust_new_hosts: bool, parallel: bool, wheelhouse: Path | None) -> None:
    """Deploy a new release with zero downtime: to the [[hosts]] of garrison.toml over SSH
    (in parallel; rolling behind a load balancer), or to this machine when there are none."""
    code = _deploy(ctx, config_path, show_plan, as_json, host_names, trust_new_hosts, parallel, wheelhouse)
    sys.exit(code)


@boundary
def _deploy(ctx: click.Context, config_path: Path | None, show_plan: bool, as_json: bool, host_names: tuple[str, ...],
            trust_new_hosts: bool, parallel: bool, wheelhouse: Path | None) -> int:
    from garrison.wheelhouse import local_wheelhouse
    from garrison.workflows.fleet import FleetDeploy, SSHOptions, select_hosts

    project = _project(config_path, sample_if_missing=True)
    cfg = project.config
    if not cfg.hosts:
        if host_names:
            raise GarrisonError(f"--host {host_names[0]}: garrison.toml has no [[hosts]]")
        ctx.invoke(local_up, config_path=config_path, show_plan=show_plan, as_json=as_json)
        return 0
    hosts = select_hosts(cfg, host_names)
    fleet = FleetDeploy(project, SSHOptions.from_env(trust_new_hosts), _reporters([h.name for h in cfg.hosts]),
                        wheelhouse=local_wheelhouse(str(wheelhouse) if wheelhouse else None))
    if show_plan:
        try:
            return _plan(fleet, hosts, as_json)
        finally:
            fleet.close()
    return _roll_out(fleet, hosts, f"garrison deploy: [bold]{cfg.app.name}[/] to", "deployed", parallel=parallel)


def _roll_out(fleet: FleetDeploy, hosts: list[Host], title: str, verb: str, **deploy_args: Any) -> int:
    """fleet.deploy on hosts (then the connections closed), each failure with its evidence,
    a one-line summary; returns the exit status (how many hosts failed)."""
    from garrison.workflows.fleet import exit_status, summary

    try:
        out.print(f"{title} {', '.join(h.name for h in hosts)}")
        t0 = time.monotonic()
        outcomes = fleet.deploy(hosts, **deploy_args)
    finally:
        fleet.close()
    _print_failures(outcomes)
    code = exit_status(outcomes)
    line = summary(outcomes, time.monotonic() - t0, verb=verb)
    out.print(f"[bold {'red' if code else 'green'}]{escape(line)}[/]")
    return code


@click.command("rollback")
@config_option
@click.argument("release", required=False)
@_with(ssh_options)
@click.option("--parallel", is_flag=True, help="With a load balancer: roll back every app host at once instead of rolling.")
@click.pass_context
def rollback_cmd(ctx: click.Context, config_path: Path | None, release: str | None, host_names: tuple[str, ...],
                 trust_new_hosts: bool, parallel: bool) -> None:
    """Bring back the previous release (or RELEASE, a kept id or its prefix) with zero downtime:
    on the [[hosts]] of garrison.toml (rolling behind a load balancer), or on this machine."""
    sys.exit(_rollback(ctx, config_path, release, host_names, trust_new_hosts, parallel))


@boundary
def _rollback(ctx: click.Context, config_path: Path | None, release: str | None, host_names: tuple[str, ...],
              trust_new_hosts: bool, parallel: bool) -> int:
    from garrison.workflows.fleet import FleetDeploy, SSHOptions, select_hosts

    project = _project(config_path, sample_if_missing=True)
    cfg = project.config
    if not cfg.hosts:
        if host_names:
            raise GarrisonError(f"--host {host_names[0]}: garrison.toml has no [[hosts]]")
        ctx.invoke(local_rollback, config_path=config_path, release=release)
        return 0
    hosts = select_hosts(cfg, host_names)
    fleet = FleetDeploy(project, SSHOptions.from_env(trust_new_hosts), _reporters([h.name for h in cfg.hosts]))
    return _roll_out(fleet, hosts, f"garrison rollback: [bold]{cfg.app.name}[/] on", "rolled back",
                     parallel=parallel, action="rollback", release=release)


main.add_command(rollback_cmd, "rollback")


def _plan(fleet: FleetDeploy, hosts: list[Host], as_json: bool = False) -> int:
    import json

    from garrison.workflows.fleet import host_project
    from garrison.workflows.up import plan

    failed = 0
    decisions = {}
    for h in hosts:
        try:
            if as_json:
                decisions[h.name] = [d.to_json() for d in plan(host_project(fleet.project, h), fleet.executor(h))]
            else:
                print_plan(host_project(fleet.project, h), fleet.executor(h), prefix=f"{h.name} | ")
        except GarrisonError as exc:
            _host_error(h.name, str(exc))
            failed += 1
    if as_json:
        click.echo(json.dumps(decisions, indent=2))
    return min(100, failed)


main.add_command(deploy_cmd, "deploy")


def _default_public_key(key: Path | None) -> str:
    import os

    candidates = [key] if key else []
    if not key:
        ids = os.environ.get("GARRISON_IDENTITY")
        if ids:
            candidates.append(Path(ids.split(",")[0] + ".pub"))
        candidates += [Path("~/.ssh/id_ed25519.pub").expanduser(), Path("~/.ssh/id_rsa.pub").expanduser()]
    for path in candidates:
        path = Path(path).expanduser()
        if path.is_file():
            text = path.read_text().strip()
            if text.startswith(("ssh-", "ecdsa-", "sk-")):
                return text
            raise GarrisonError(f"--key {path}: not an OpenSSH public key (expected a line like 'ssh-ed25519 AAAA...')")
    raise GarrisonError("no public key found (tried " + ", ".join(str(p) for p in candidates) + "); pass --key PATH.pub")


@main.command("provision")
@config_option
@click.argument("host_name", metavar="HOST")
@click.option("--deploy-user", default="deploy", show_default=True, help="The user deploys log in as (gets your key and sudo).")
@click.option("--key", "key_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Public key to authorize for the deploy user (default: GARRISON_IDENTITY's .pub, ~/.ssh/id_ed25519.pub).")
@click.option("--harden-ssh", is_flag=True,
              help="Then: PermitRootLogin no, PasswordAuthentication no, AllowUsers <deploy user> "
                   "(only after a login as the deploy user has been proven).")
@click.option("--user", "login_user", help="Log in as this user for provisioning (default: the host's user in garrison.toml).")
@click.option("--trust-new-hosts", is_flag=True, help="Trust the host's key on first use.")
@click.option("--wheelhouse", type=click.Path(path_type=Path, file_okay=False), envvar="GARRISON_WHEELHOUSE",
              help="Folder of wheels for pip on hosts without a route to PyPI. [env: GARRISON_WHEELHOUSE]")
@click.option("--debs", "deb_cache", type=click.Path(path_type=Path, file_okay=False), envvar="GARRISON_DEB_CACHE",
              help="Folder of .deb files (e.g. sudo_*.deb) for hosts that cannot reach a mirror. [env: GARRISON_DEB_CACHE]")
@boundary
def provision_cmd(config_path: Path | None, host_name: str, deploy_user: str, key_path: Path | None, harden_ssh: bool,
                  login_user: str | None, trust_new_hosts: bool, wheelhouse: Path | None, deb_cache: Path | None) -> None:
    """Prepare a fresh Debian/Ubuntu HOST of garrison.toml: packages, app user, deploy user with
    your key and sudo, firewall; with --harden-ssh, SSH hardening that never locks you out."""
    from garrison.wheelhouse import local_wheelhouse
    from garrison.workflows import Run
    from garrison.workflows.fleet import SSHOptions, executor_for, select_hosts
    from garrison.workflows.provision import Provision

    project = _project(config_path, sample_if_missing=True)
    (host,) = select_hosts(project.config, [host_name])
    opts = SSHOptions.from_env(trust_new_hosts)
    pub = _default_public_key(key_path)
    ex = executor_for(host, opts, user=login_user)
    t0 = time.monotonic()
    run = Run(reporter=PrefixReporter(host.name))
    try:
        Provision(project, ex, run, deploy_user=deploy_user, public_key=pub, harden_ssh=harden_ssh,
                  wheelhouse=local_wheelhouse(str(wheelhouse) if wheelhouse else None), deb_cache=deb_cache,
                  connect_as=lambda user: executor_for(host, opts, user=user))()
    finally:
        ex.close()
    verdict = "changed" if run.changed else "nothing changed"
    out.print(f"[bold green]provisioned[/] {host.name} ({verdict}, {time.monotonic() - t0:.1f} s); "
              f"deploy as {deploy_user}: set user = \"{deploy_user}\" for this host in garrison.toml")


@click.command("status")
@config_option
@_with(ssh_options)
@click.pass_context
def status_cmd(ctx: click.Context, config_path: Path | None, host_names: tuple[str, ...], trust_new_hosts: bool) -> None:
    """Releases, the live slot, gunicorn and nginx state, and health (of every [[hosts]] app host, or --host)."""
    sys.exit(_status(ctx, config_path, host_names, trust_new_hosts))


@boundary
def _status(ctx: click.Context, config_path: Path | None, host_names: tuple[str, ...], trust_new_hosts: bool) -> int:
    from rich.table import Table

    from garrison.cli.local import status as local_status
    from garrison.workflows.fleet import SSHOptions, executor_for, host_project, select_hosts
    from garrison.workflows.manage import status as get_status

    project = _project(config_path, sample_if_missing=True)
    if not project.config.hosts:
        if host_names:
            raise GarrisonError(f"--host {host_names[0]}: garrison.toml has no [[hosts]]")
        ctx.invoke(local_status, config_path=config_path)
        return 0
    opts = SSHOptions.from_env(trust_new_hosts)
    unhealthy = 0
    for h in select_hosts(project.config, host_names):
        ex = executor_for(h, opts)
        try:
            st = get_status(host_project(project, h), ex)
        except GarrisonError as exc:
            _host_error(h.name, str(exc))
            unhealthy += 1
            continue
        finally:
            ex.close()
        table = Table(title=f"{project.config.app.name} on {h.name}", show_header=False)
        for key, value in st.rows:
            table.add_row(key, escape(value))
        out.print(table)
        unhealthy += 0 if st.healthy else 1
    return min(100, unhealthy)


@click.command("logs")
@config_option
@click.argument("which", nargs=-1)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (on [[hosts]]: every host's, prefixed) until Ctrl-C.")
@click.option("--lines", "-n", type=int, default=50, show_default=True)
@_with(ssh_options)
@click.pass_context
def logs_cmd(ctx: click.Context, config_path: Path | None, which: tuple[str, ...], follow: bool, lines: int,
             host_names: tuple[str, ...], trust_new_hosts: bool) -> None:
    """Show the app's logs: gunicorn error (default) or access log, nginx's, supervisor's, a process's (NAME),
    a job's (job NAME) (on [[hosts]]: each host's, prefixed)."""
    sys.exit(_logs(ctx, config_path, which, follow, lines, host_names, trust_new_hosts))


@boundary
def _logs(ctx: click.Context, config_path: Path | None, which: tuple[str, ...], follow: bool, lines: int, host_names: tuple[str, ...],
          trust_new_hosts: bool) -> int:
    from garrison.cli.local import logs as local_logs
    from garrison.workflows.fleet import SSHOptions, executor_for, host_project, select_hosts
    from garrison.workflows.manage import log_command

    project = _project(config_path, sample_if_missing=True)
    if not project.config.hosts:
        if host_names:
            raise GarrisonError(f"--host {host_names[0]}: garrison.toml has no [[hosts]]")
        ctx.invoke(local_logs, config_path=config_path, which=which, follow=follow, lines=lines)
        return 0
    opts = SSHOptions.from_env(trust_new_hosts)
    failed = 0
    followed: list[tuple[str, SSHExecutor, tuple[str, ...]]] = []
    for h in select_hosts(project.config, host_names):
        ex = executor_for(h, opts)
        keep_open = False
        try:
            hp = host_project(project, h)
            # The live slot of THAT host, its own service manager's log.
            path, argv = log_command(hp, ex, " ".join(which) or "error", lines, False)
            res = ex.run(argv, check=False)
            if res.ok and follow:
                # Following starts after the last line shown: no line of history again.
                followed.append((h.name, cast("SSHExecutor", ex), log_command(hp, ex, " ".join(which) or "error", 0, True)[1]))
                keep_open = True
        except GarrisonError as exc:
            _host_error(h.name, str(exc))
            failed += 1
            continue
        finally:
            if not keep_open:
                ex.close()
        if not res.ok:
            _host_error(h.name, f"{path}: no such log yet")
            failed += 1
            continue
        for line in res.stdout.splitlines():
            out.print(f"{escape(h.name)} | {escape(line)}")
    if followed and _follow_logs(followed):
        return 130  # ended by Ctrl-C, as `tail -F` on this machine
    return min(100, failed)


def _follow_logs(followed: list[tuple[str, SSHExecutor, tuple[str, ...]]]) -> bool:
    """`tail -F` on every host at once, each line prefixed by its host, until Ctrl-C
    (then True)."""
    import threading

    print_lock = threading.Lock()

    def one(name: str, ex: SSHExecutor, argv: tuple[str, ...]) -> None:
        def on_line(raw: bytes) -> None:
            with print_lock:
                out.print(f"{escape(name)} | {escape(raw.decode(errors='replace').rstrip())}")

        try:
            ex.follow(argv, on_line)
        except GarrisonError as exc:
            with print_lock:
                _host_error(name, str(exc))

    threads = [threading.Thread(target=one, args=f, name=f"logs-{f[0]}", daemon=True) for f in followed]
    for t in threads:
        t.start()
    interrupted = False
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)  # short joins: Ctrl-C reaches this thread between them
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # Closing the connection ends each follow(), and the remote tail with its output.
        for _, ex, _ in followed:
            ex.close()
        for t in threads:
            t.join(5)
    return interrupted


main.add_command(status_cmd, "status")
main.add_command(logs_cmd, "logs")


# -- the environment (secrets) on [[hosts]] ----------------------------------------------------


def _on_each_host(project: Project, host_names: tuple[str, ...], trust_new_hosts: bool,
                  action: Callable[[Project, Executor, Run], None]) -> int:
    """action(host's project, its executor, a Run reporting with its name) on each selected
    app host in turn; a failure is one line for that host. Returns how many failed."""
    from garrison.workflows import Run
    from garrison.workflows.fleet import SSHOptions, executor_for, host_project, select_hosts

    opts = SSHOptions.from_env(trust_new_hosts)
    hosts = select_hosts(project.config, host_names)
    reporters = _reporters([h.name for h in hosts])
    failed = 0
    for h in hosts:
        ex = executor_for(h, opts)
        try:
            action(host_project(project, h), ex, Run(reporter=reporters(h.name)))
        except GarrisonError as exc:
            _host_error(h.name, str(exc))
            failed += 1
        finally:
            ex.close()
    return min(100, failed)


@click.group("env")
def env_group() -> None:
    """The app's environment variables (secrets), kept in shared/.env on the host (each [[hosts]] app host, or --host)."""


@env_group.command("set")
@config_option
@click.argument("assignments", nargs=-1, required=True)
@_with(ssh_options)
@click.pass_context
def env_set_cmd(ctx: click.Context, config_path: Path | None, assignments: tuple[str, ...], host_names: tuple[str, ...],
                trust_new_hosts: bool) -> None:
    """Set KEY=VALUE (one or more); restarts the app with zero downtime."""
    sys.exit(_env_change(ctx, config_path, assignments, (), host_names, trust_new_hosts))


@env_group.command("unset")
@config_option
@click.argument("keys", nargs=-1, required=True)
@_with(ssh_options)
@click.pass_context
def env_unset_cmd(ctx: click.Context, config_path: Path | None, keys: tuple[str, ...], host_names: tuple[str, ...],
                  trust_new_hosts: bool) -> None:
    """Remove KEYs; restarts the app with zero downtime."""
    sys.exit(_env_change(ctx, config_path, (), keys, host_names, trust_new_hosts))


@boundary
def _env_change(ctx: click.Context, config_path: Path | None, assignments: tuple[str, ...], keys: tuple[str, ...],
                host_names: tuple[str, ...], trust_new_hosts: bool) -> int:
    from garrison.cli.local import env_set, env_unset
    from garrison.workflows.env import change_env, parse_assignment

    project = _project(config_path, sample_if_missing=True)
    pairs = dict(parse_assignment(a) for a in assignments)  # bad input: one line, before any host is touched
    if not project.config.hosts:
        if host_names:
            raise GarrisonError(f"--host {host_names[0]}: garrison.toml has no [[hosts]]")
        if assignments:
            ctx.invoke(env_set, config_path=config_path, assignments=assignments)
        else:
            ctx.invoke(env_unset, config_path=config_path, keys=keys)
        return 0

    def change(hp: Project, ex: Executor, run: Run) -> None:
        done = change_env(hp, ex, run, set_=pairs, unset=list(keys))
        out.print(f"{escape(ex.name)} | " + (", ".join(done) if done else "nothing changed"))

    return _on_each_host(project, host_names, trust_new_hosts, change)


@env_group.command("list")
@config_option
@click.option("--reveal", is_flag=True, help="Show the values instead of masking them.")
@_with(ssh_options)
@click.pass_context
def env_list_cmd(ctx: click.Context, config_path: Path | None, reveal: bool, host_names: tuple[str, ...],
                 trust_new_hosts: bool) -> None:
    """List the keys (values masked unless --reveal)."""
    sys.exit(_env_list(ctx, config_path, reveal, host_names, trust_new_hosts))


@boundary
def _env_list(ctx: click.Context, config_path: Path | None, reveal: bool, host_names: tuple[str, ...],
              trust_new_hosts: bool) -> int:
    from garrison.cli.local import env_list
    from garrison.workflows.env import mask, read_env

    project = _project(config_path, sample_if_missing=True)
    if not project.config.hosts:
        if host_names:
            raise GarrisonError(f"--host {host_names[0]}: garrison.toml has no [[hosts]]")
        ctx.invoke(env_list, config_path=config_path, reveal=reveal)
        return 0

    def show(hp: Project, ex: Executor, run: Run) -> None:
        for key, value in sorted(read_env(hp, ex).items()):
            out.print(f"{escape(ex.name)} | {key}={escape(value) if reveal else mask(value)}")

    return _on_each_host(project, host_names, trust_new_hosts, show)


main.add_command(env_group, "env")


# -- one-off commands on a host ---------------------------------------------------------------


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@config_option
@click.option("--host", "host_name", metavar="NAME", default=None, help="The [[hosts]] app host to run on (default: the first).")
@click.option("--trust-new-hosts", is_flag=True, help="Trust a host's key on first use (appended to known_hosts).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def run_cmd(ctx: click.Context, config_path: Path | None, host_name: str | None, trust_new_hosts: bool,
            command: tuple[str, ...]) -> None:
    """Run COMMAND once in the live release, as the app user, with its venv and env
    (garrison run -- python manage.py createsuperuser); on a [[hosts]] host over SSH, with
    your terminal. The exit status is the command's."""
    sys.exit(_run_on_host(ctx, config_path, host_name, trust_new_hosts, command))


@boundary
def _run_on_host(ctx: click.Context, config_path: Path | None, host_name: str | None, trust_new_hosts: bool,
                 command: tuple[str, ...]) -> int:
    from garrison.cli.local import run as local_run
    from garrison.workflows.fleet import SSHOptions, app_hosts, executor_for, host_project, select_hosts
    from garrison.workflows.oneoff import command_argv

    project = _project(config_path, sample_if_missing=True)
    if not project.config.hosts:
        if host_name:
            raise GarrisonError(f"--host {host_name}: garrison.toml has no [[hosts]]")
        ctx.invoke(local_run, config_path=config_path, command=command)
        return 0
    hosts = select_hosts(project.config, [host_name]) if host_name else app_hosts(project.config)[:1]
    if not hosts:
        raise GarrisonError("garrison.toml has no app host to run on; name one with --host")
    ex = executor_for(hosts[0], SSHOptions.from_env(trust_new_hosts))
    try:
        argv = command_argv(host_project(project, hosts[0]), ex, command)
        return cast("SSHExecutor", ex).attach(argv)
    finally:
        ex.close()


main.add_command(run_cmd, "run")
