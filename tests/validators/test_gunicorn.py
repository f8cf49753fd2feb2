"""The rendered gunicorn.conf.py, through gunicorn's own `--check-config`.

Each slot folder (<root>/srv/<app>/slots/<slot>, the rendered `chdir`) is a
symlink to the bundled sample app, and the case's entry is "main:app", so
gunicorn does what it does on a host up to the point of binding.

What this really checks: gunicorn runs the file as Python, validates every
setting it sets (a wrong type or an unknown worker value exits 1), changes into
the slot folder and imports the WSGI app from there. `--print-config` then
shows the settings gunicorn actually resolved, which are compared with the
layout: both slots get their own bind address, pidfile and process name. It
does not bind the socket or start workers (the e2e tests do).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rendered_tree import SAMPLE_APP, Tree, run, write_tree

from garrison.config import parse_config


def check_config(gunicorn: str, tree: Tree, slot: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GARRISON_SLOT"}
    if slot is not None:
        env["GARRISON_SLOT"] = slot
    return run([gunicorn, "--check-config", "--print-config", "--config", tree.layout.gunicorn_conf], env=env)


def resolved(stdout: str) -> dict[str, str]:
    """--print-config's `name = value` lines."""
    settings = {}
    for line in stdout.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            settings[name.strip()] = value.strip()
    return settings


def link_slots(tree: Tree) -> Tree:
    """Both slot folders, as a deploy leaves them, holding the sample app."""
    Path(tree.layout.slots_dir).mkdir(parents=True, exist_ok=True)
    for slot in ("blue", "green"):
        Path(tree.layout.slot(slot)).symlink_to(SAMPLE_APP, target_is_directory=True)
    return tree


@pytest.fixture
def app_tree(golden_data: dict[str, Any], golden_case: str, tmp_path: Path) -> Tree:
    golden_data["app"]["entry"] = "main:app"  # the sample app's entry, whatever the case says
    return link_slots(write_tree(parse_config(golden_data, f"{golden_case}.toml"), tmp_path / "root"))


def assert_passes(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    if proc.returncode != 0 and "No module named 'flask'" in proc.stderr:
        pytest.skip("this gunicorn's Python has no Flask, which the sample app needs (pip install flask)")
    assert proc.returncode == 0, f"gunicorn --check-config failed:\n{proc.stderr}"
    return resolved(proc.stdout)


@pytest.mark.parametrize("slot", ["blue", "green"])
def test_conf_passes_gunicorn_check_config(gunicorn: str, app_tree: Tree, slot: str) -> None:
    settings = assert_passes(check_config(gunicorn, app_tree, slot))
    layout, g = app_tree.layout, app_tree.cfg.gunicorn
    assert settings["wsgi_app"] == "main:app"
    assert settings["chdir"] == layout.slot(slot)
    assert settings["bind"] == str([layout.bind_address(slot)])
    assert settings["pidfile"] == layout.pidfile(slot)
    assert settings["control_socket"] == layout.control_socket(slot)
    assert settings["proc_name"] == f"{app_tree.cfg.app.name}-{slot}"
    assert settings["worker_class"] == g.worker_class
    assert settings["threads"] == str(g.threads)
    assert settings["max_requests"] == str(g.max_requests)
    assert settings["max_requests_jitter"] == str(g.jitter)
    assert settings["errorlog"] == layout.error_log
    assert settings["accesslog"] == (layout.access_log if g.access_log else "None")
    # "auto" is computed by the conf file on the host (the same machine here).
    cpus = os.cpu_count() or 1
    auto = 2 * cpus + 1 if g.worker_class == "sync" else max(2, cpus)
    expected_workers = auto if g.workers == "auto" else g.workers
    assert settings["workers"] == str(expected_workers)


def test_without_garrison_slot_it_is_blue(gunicorn: str, minimal_tree: Tree) -> None:
    # What `gunicorn -c <conf>` by hand gets: the blue slot's socket, never a mix.
    settings = assert_passes(check_config(gunicorn, link_slots(minimal_tree), None))
    assert settings["bind"] == str([minimal_tree.layout.bind_address("blue")])
    assert settings["chdir"] == minimal_tree.layout.slot("blue")


def test_a_broken_conf_fails(gunicorn: str, minimal_tree: Tree) -> None:
    link_slots(minimal_tree)  # so that nothing but the broken line can fail
    assert assert_passes(check_config(gunicorn, minimal_tree, "blue"))["workers"]
    conf = Path(minimal_tree.layout.gunicorn_conf)
    lines = conf.read_text().splitlines(keepends=True)
    workers = [i for i, line in enumerate(lines) if line.startswith("workers = ")]
    assert len(workers) == 1
    lines[workers[0]] = 'workers = "x"\n'
    conf.write_text("".join(lines))
    proc = check_config(gunicorn, minimal_tree, "blue")
    assert proc.returncode != 0
    assert "Invalid value for workers: x" in proc.stderr, proc.stderr


def test_an_unknown_slot_is_refused(gunicorn: str, minimal_tree: Tree) -> None:
    link_slots(minimal_tree)
    proc = check_config(gunicorn, minimal_tree, "purple")
    assert proc.returncode != 0
    assert "GARRISON_SLOT must be blue or green, not 'purple'" in proc.stderr, proc.stderr
