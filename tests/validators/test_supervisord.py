"""The rendered supervisord.conf and program file, through supervisord's own parser.

`ServerOptions().realize(["-c", conf])` is what `supervisord -c conf` does
before it starts anything: it reads the main file, follows [include] to the
app's program file, and turns every option into its typed value (a bad
value, a missing command or an unknown user ends it with "Error: …" and exit
code 2). It runs in this process, so the app user, which does not exist on a
test machine, is resolved by a stand-in for supervisor's name_to_uid; the
parsed program is then compared with the layout. It does not start gunicorn.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rendered_tree import Tree

options = pytest.importorskip(
    "supervisor.options", reason="supervisor is not installed in the test environment (pip install supervisor)"
)
datatypes = pytest.importorskip("supervisor.datatypes")

APP_UID = 4242


class Refused(Exception):
    """supervisord exited while reading its config; the message is what it printed."""


def realize(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    """supervisord's parse of the tree's supervisord.conf; also returns the user names it looked up."""
    for folder in (tree.tool.run_dir, tree.tool.log_dir, tree.layout.log_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)  # as provisioning leaves them
    looked_up: list[str] = []
    real_name_to_uid = options.name_to_uid

    def name_to_uid(name: str) -> int:
        looked_up.append(name)
        return APP_UID if name == tree.cfg.user else real_name_to_uid(name)

    monkeypatch.setattr(options, "name_to_uid", name_to_uid)
    opts = options.ServerOptions()
    opts.stderr = io.StringIO()  # where its "Error: …" goes (a class attribute: sys.stderr at import)
    try:
        opts.realize(args=["-c", tree.tool.supervisord_conf])
    except SystemExit as exc:
        raise Refused(f"exit code {exc.code}: {opts.stderr.getvalue()}") from None
    return opts, looked_up


def test_program_parses_with_the_expected_command_and_user(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    opts, looked_up = realize(tree, monkeypatch)
    layout, slot = tree.layout, "blue"
    assert not opts.parse_criticals and not opts.parse_warnings, opts.parse_criticals + opts.parse_warnings
    assert opts.serverurl == f"unix://{tree.tool.supervisor_socket}"
    # The slot's program, and one per worker process (tests/validators/test_processes_jobs.py checks those).
    groups = {g.name: g for g in opts.process_group_configs}
    assert set(groups) == {layout.supervisor_program(slot), *(layout.process_program(n) for n in tree.cfg.processes)}
    (program,) = groups[layout.supervisor_program(slot)].process_configs
    # supervisord starts garrison-exec as root; it reads the root-only env file and drops to the app user.
    server = (
        f"/bin/sh {layout.granian_script} {slot}" if tree.cfg.app.server == "granian"
        else f"{layout.slot(slot)}/.venv/bin/gunicorn --config {layout.gunicorn_conf}"
    )
    assert program.command == f"/usr/bin/python3 {tree.tool.exec_helper} {layout.env_file} {tree.cfg.user} -- {server}"
    assert looked_up == [] and program.uid is None
    assert program.directory == layout.slot(slot)
    assert program.environment["GARRISON_SLOT"] == slot
    assert program.autorestart is datatypes.RestartUnconditionally
    assert program.autostart is True
    assert program.stopsignal == datatypes.signal_number("TERM")
    assert program.stopwaitsecs == tree.cfg.gunicorn.graceful_timeout + 5
    assert program.stopasgroup and program.killasgroup
    assert program.stdout_logfile == layout.supervisor_log(slot)


def test_a_broken_program_fails(minimal_tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    program = Path(minimal_tree.layout.supervisor_program_conf("blue"))
    text = program.read_text()
    assert "\nautorestart=true\n" in text
    program.write_text(text.replace("\nautorestart=true\n", "\nautorestart=sometimes\n"))
    with pytest.raises(Refused, match=r"exit code 2: Error: invalid 'autorestart' value 'sometimes'"):
        realize(minimal_tree, monkeypatch)
