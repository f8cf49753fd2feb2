"""The commands that act on this machine, the `main` group, the console reporter and
the one error boundary (garrison/cli/remote.py adds the [[hosts]] variants).

Exit codes: 0 success; 1 unexpected failure (a bug: traceback shown);
2 bad config or input; 3 host cannot be prepared; 4 deploy failed (what
served traffic was left serving); 5 another deploy holds the lock;
130 interrupted.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape

from garrison import __version__
from garrison.errors import ConfigError, DeployError, GarrisonError
from garrison.workflows import CHANGED, FAILED, SKIPPED, StepResult

if TYPE_CHECKING:
    from garrison.diagnose.rules import Report
    from garrison.hosts import Executor
    from garrison.project import Project

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_STYLE = {CHANGED: "yellow", FAILED: "bold red", SKIPPED: "dim", "unchanged": "green"}


class ConsoleReporter:
    """One line per step with its outcome and time; a live spinner while it runs."""

    def __init__(self, console: Console = out):
        self.console = console
        self._status: Any = None
        self._t0 = 0.0

    def start(self, name: str, what: str) -> None:
        self._t0 = time.monotonic()
        if self.console.is_terminal:
            # A spinner with the elapsed time: apt and venv builds can take a while.
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._status = Progress(
                SpinnerColumn(), TextColumn(f"{name}: {escape(what)}"), TimeElapsedColumn(),
                console=self.console, transient=True,
            )
            self._status.add_task(name, total=None)
            self._status.start()

    def done(self, result: StepResult) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        style = _STYLE.get(result.status, "")
        detail = escape(result.detail)
        self.console.print(
            f"[{style}]{result.status:>9}[/] {result.name:<10} {detail} [dim]({result.seconds:.1f} s)[/]"
        )

    def note(self, text: str) -> None:
        self.console.print(escape(text))


def boundary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn GarrisonError into one clear message and its exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GarrisonError as exc:
            lines = str(exc).splitlines() or [type(exc).__name__]
            err.print(f"[bold red]garrison: error:[/] {escape(lines[0])}")
            for line in lines[1:]:
                err.print(escape(line))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err.print("garrison: interrupted")
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="garrison")
def main() -> None:
    """Put a Python web app into production behind nginx and gunicorn."""


config_option = click.option(
    "--config", "-c", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    help="garrison.toml to use (default: ./garrison.toml or [tool.garrison] in ./pyproject.toml).",
)


def _project(config_path: Path | None, sample_if_missing: bool = False) -> Project:
    from garrison.project import find_project

    return find_project(Path.cwd(), config=config_path, sample_if_missing=sample_if_missing)


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing garrison.toml.")
@click.option("--settings", metavar="MODULE", default=None,
              help="Django: the settings module production uses, e.g. mysite.settings.production "
                   "(DJANGO_SETTINGS_MODULE in --env-file wins).")
@click.option("--env-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The env file the app gets on the server (e.g. /srv/APP/shared/.env on this machine); "
                   "its DJANGO_SETTINGS_MODULE picks the settings init reads.")
@boundary
def init(folder: Path, force: bool, settings: str | None, env_file: Path | None) -> None:
    """Detect the app in FOLDER and write a commented garrison.toml."""
    from garrison.initapp import run_init

    path, det = run_init(folder, force=force, settings=settings, env_file=env_file)
    for note in det.notes:
        out.print(f"  {escape(note)}")
    out.print(f"wrote {escape(str(path))}: review it, then run `garrison up`")


@main.command()
@config_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write the files into (mirrors their paths on the host).")
@click.option("--slot", type=click.Choice(["blue", "green"]), default="blue", show_default=True,
              help="Live slot the upstream include points at.")
@boundary
def render(config_path: Path | None, out_dir: Path, slot: str) -> None:
    """Write every config file Garrison would install, for review."""
    from garrison.layout import Layout
    from garrison.render import render_all

    project = _project(config_path, sample_if_missing=True)
    cfg = project.config
    files = render_all(cfg, Layout.of(cfg), live_slot=slot)
    for path, text in files.items():
        dest = out_dir / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        out.print(escape(str(dest)))


@contextlib.contextmanager
def explain_failure(project: Project, host: Executor) -> Iterator[None]:
    """A failed deploy runs doctor's rules on the same host before it exits, and prints their cause too."""
    try:
        yield
    except DeployError as exc:
        from garrison.workflows.doctor import explain

        raise explain(project, host, exc) from None


_FINDING_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "unknown": "dim"}


def print_report(report: Report) -> None:
    for f in report.findings:
        mark = " [bold red]<- cause[/]" if report.cause == f else ""
        out.print(f"[{_FINDING_STYLE[f.status]}]{f.status:>7}[/] {f.hop:<8} {f.check:<16} {escape(f.evidence)}{mark}")
        if f.fix and f.status != "ok":
            out.print(f"{'':>34}fix: {escape(f.fix)}")
    if report.cause is not None:
        out.print(f"[bold red]cause[/] ({report.cause.hop}): {escape(report.cause.evidence)}")
        out.print(f"[bold]fix[/]: {escape(report.cause.fix)}")
    elif report.ok:
        out.print("[bold green]healthy[/]: every hop from client to app checks out")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@boundary
def doctor(config_path: Path | None, as_json: bool) -> None:
    """Explain why the app does not answer (502, 504, 403…): each hop checked, the cause, its fix."""
    import json

    from garrison.diagnose.rules import to_json
    from garrison.hosts.local import LocalExecutor
    from garrison.workflows.doctor import doctor as do_doctor

    report = do_doctor(_project(config_path, sample_if_missing=True), LocalExecutor())
    if as_json:
        click.echo(json.dumps(to_json(report), indent=2))
    else:
        print_report(report)
    if not report.ok:
        sys.exit(1)


def print_plan(project: Project, host: Executor, prefix: str = "", as_json: bool = False) -> None:
    """What `up` would do on host, step by step with file diffs; each line after prefix (e.g. "web1 | ")."""
    import json

    from garrison.workflows.up import plan

    decisions = plan(project, host)
    if as_json:
        click.echo(json.dumps([d.to_json() for d in decisions], indent=2))
        return
    pre = escape(prefix)
    style = {"change": "yellow", "unchanged": "green", "skip": "dim"}
    for d in decisions:
        out.print(f"{pre}[{style[d.action]}]{d.action:>9}[/] {d.step:<11} {escape(d.reason)}")
        for line in d.diff:
            color = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
            out.print(f"{pre}[{color}]{escape(line.rstrip())}[/]")
    changes = sum(1 for d in decisions if d.action == "change")
    out.print(f"{pre}plan: {changes} step(s) would change; nothing was touched")


@main.command()
@config_option
@click.option("--plan", "show_plan", is_flag=True, help="Print what would change, with file diffs, and touch nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --plan: the decisions as JSON.")
@boundary
def up(config_path: Path | None, show_plan: bool, as_json: bool = False) -> None:
    """Make this machine the server: nginx, gunicorn, supervision, health-checked.

    Run in an app's folder (with garrison.toml) to serve that app; run in a
    folder without an app to serve the bundled sample app. Every new release
    starts in the idle slot and takes traffic only once it is healthy.
    """
    from garrison.hosts.local import LocalExecutor
    from garrison.workflows import Run
    from garrison.workflows.up import up as do_up

    project = _project(config_path, sample_if_missing=True)
    if show_plan:
        print_plan(project, LocalExecutor(), as_json=as_json)
        return
    if as_json:
        raise ConfigError("--json goes with --plan: garrison up --plan --json")
    cfg = project.config
    what = "the sample app" if project.is_sample else escape(str(project.source))
    out.print(f"garrison up: [bold]{cfg.app.name}[/] from {what}")
    t0 = time.monotonic()
    run = Run(reporter=ConsoleReporter())
    host = LocalExecutor()
    with explain_failure(project, host):
        do_up(project, host, run)
    verdict = "changed" if run.changed else "nothing changed"
    port = "" if cfg.server.port == 80 else f":{cfg.server.port}"
    out.print(
        f"[bold green]serving[/] {cfg.app.name} at http://{cfg.server.names[0]}{port}/ "
        f"({verdict}, {time.monotonic() - t0:.1f} s)"
    )


@main.command()
@config_option
@click.option("--plan", "show_plan", is_flag=True, help="Print what would change, with file diffs, and touch nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --plan: the decisions as JSON.")
@click.pass_context
def deploy(ctx: click.Context, config_path: Path | None, show_plan: bool, as_json: bool) -> None:
    """Deploy a new release with zero downtime (on this machine: the same as `up`)."""
    ctx.invoke(up, config_path=config_path, show_plan=show_plan, as_json=as_json)


@main.command()
@config_option
@click.argument("release", required=False)
@boundary
def rollback(config_path: Path | None, release: str | None) -> None:
    """Bring back the previous release (or RELEASE, a kept release id or its prefix), zero-downtime."""
    from garrison.hosts.local import LocalExecutor
    from garrison.workflows import Run
    from garrison.workflows.up import rollback as do_rollback

    project = _project(config_path, sample_if_missing=True)
    t0 = time.monotonic()
    run = Run(reporter=ConsoleReporter())
    host = LocalExecutor()
    with explain_failure(project, host):
        do_rollback(project, host, run, release)
    out.print(f"[bold green]rolled back[/] {project.config.app.name} ({time.monotonic() - t0:.1f} s)")


@main.group()
def env() -> None:
    """The app's environment variables (secrets), kept in shared/.env on the host."""


@env.command("set")
@config_option
@click.argument("assignments", nargs=-1, required=True)
@boundary
def env_set(config_path: Path | None, assignments: tuple[str, ...]) -> None:
    """Set KEY=VALUE (one or more); restarts the app with zero downtime."""
    from garrison.hosts.local import LocalExecutor
    from garrison.workflows import Run
    from garrison.workflows.env import change_env, parse_assignment

    pairs = dict(parse_assignment(a) for a in assignments)
    project = _project(config_path, sample_if_missing=True)
    changed = change_env(project, LocalExecutor(), Run(reporter=ConsoleReporter()), set_=pairs, unset=[])
    out.print(", ".join(changed) if changed else "nothing changed")


@env.command("unset")
@config_option
@click.argument("keys", nargs=-1, required=True)
@boundary
def env_unset(config_path: Path | None, keys: tuple[str, ...]) -> None:
    """Remove KEYs; restarts the app with zero downtime."""
    from garrison.hosts.local import LocalExecutor
    from garrison.workflows import Run
    from garrison.workflows.env import change_env

    project = _project(config_path, sample_if_missing=True)
    changed = change_env(project, LocalExecutor(), Run(reporter=ConsoleReporter()), set_={}, unset=list(keys))
    out.print(", ".join(changed) if changed else "nothing changed")


@env.command("list")
@config_option
@click.option("--reveal", is_flag=True, help="Show the values instead of masking them.")
@boundary
def env_list(config_path: Path | None, reveal: bool) -> None:
    """List the keys (values masked unless --reveal)."""
    from garrison.hosts.local import LocalExecutor
    from garrison.workflows.env import mask, read_env

    project = _project(config_path, sample_if_missing=True)
    for key, value in sorted(read_env(project, LocalExecutor()).items()):
        out.print(f"{key}={escape(value) if reveal else mask(value)}")


@main.command()
@config_option
@boundary
def status(config_path: Path | None) -> None:
    """Releases, the live slot, gunicorn and nginx state, and health."""
    from rich.table import Table

    from garrison.hosts.local import LocalExecutor
    from garrison.workflows.manage import status as get_status

    project = _project(config_path, sample_if_missing=True)
    st = get_status(project, LocalExecutor())
    table = Table(title=f"{project.config.app.name} on localhost", show_header=False)
    for key, value in st.rows:
        table.add_row(key, escape(value))
    out.print(table)
    if not st.healthy:
        sys.exit(1)


@main.command()
@config_option
@click.argument("which", nargs=-1)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--lines", "-n", type=int, default=50, show_default=True)
@boundary
def logs(config_path: Path | None, which: tuple[str, ...], follow: bool, lines: int) -> None:
    """Show the app's logs: gunicorn error (default) or access log, nginx's, supervisor's,
    a worker process's (NAME) or a job's (job NAME)."""
    import os

    from garrison.hosts.local import LocalExecutor
    from garrison.workflows.manage import log_command

    project = _project(config_path, sample_if_missing=True)
    what, argv = log_command(project, LocalExecutor(), " ".join(which) or "error", lines, follow)
    if what.startswith("/") and not Path(what).exists():
        raise GarrisonError(f"{what}: no such log yet; has `garrison up` run?")
    os.execvp(argv[0], list(argv))


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@config_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@boundary
def run(config_path: Path | None, command: tuple[str, ...]) -> None:
    """Run COMMAND once in the live release, as the app user, with its venv and env:
    garrison run -- python manage.py createsuperuser. The exit status is the command's."""
    import os

    from garrison.hosts.local import LocalExecutor
    from garrison.workflows.oneoff import command_argv

    project = _project(config_path, sample_if_missing=True)
    argv = command_argv(project, LocalExecutor(), command)
    sys.stdout.flush()
    os.execv(argv[0], list(argv))  # this terminal, stdin and exit status are the command's


@main.command()
@config_option
@click.option("--purge", is_flag=True, help="Also remove the app user, releases, venvs, shared files and logs.")
@boundary
def down(config_path: Path | None, purge: bool) -> None:
    """Stop and remove the app's service and site (and with --purge, everything)."""
    from garrison.hosts.local import LocalExecutor
    from garrison.workflows import Run
    from garrison.workflows.manage import down as do_down

    project = _project(config_path, sample_if_missing=True)
    do_down(project, LocalExecutor(), Run(reporter=ConsoleReporter()), purge=purge)
    out.print(f"{project.config.app.name} is down" + (" and purged" if purge else ""))


@main.group()
def jobs() -> None:
    """Scheduled jobs ([jobs.NAME] in garrison.toml)."""


@jobs.command("run")
@config_option
@click.argument("name")
@boundary
def jobs_run(config_path: Path | None, name: str) -> None:
    """Run job NAME now, as its schedule does (skipped while a run is still going); exit with its exit code."""
    from garrison.hosts.local import LocalExecutor
    from garrison.workflows.manage import job_host, run_job

    project = _project(config_path, sample_if_missing=True)
    host = job_host(project.config, name)
    if host is None:
        result = run_job(project, LocalExecutor(), name)
    else:
        # With [[hosts]] a job is scheduled on one host only: run it there.
        from garrison.workflows.fleet import SSHOptions, executor_for, host_project

        ex = executor_for(host, SSHOptions.from_env())
        try:
            result = run_job(host_project(project, host), ex, name)
        finally:
            ex.close()
    if result.output:
        click.echo(result.output, nl=not result.output.endswith("\n"))
    out.print(escape(result.summary))
    sys.exit(result.exit_code)

