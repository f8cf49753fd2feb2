"""The rendered systemd unit, through `systemd-analyze verify`.

The unit is a template (<app>@.service). systemd-analyze verifies a template
file as the instance "i" (<app>@i.service), which would send %i to a slot
folder that does not exist; so the unit is copied, byte for byte, to
<app>@blue.service and <app>@green.service, the instances Garrison starts.

What this really checks, per instance: every section and key is known to this
systemd, every value parses (Type=, Restart=, the sandboxing options, the
system call filter), ExecStart= is an absolute path to an executable file
(the slot's .venv/bin/gunicorn, created here), and the dependencies named in
[Unit]/[Install] exist. It does not check that User= exists, that
ReadWritePaths= folders exist, nor that gunicorn runs under the sandbox.

A key systemd does not know or a value it cannot parse is only a warning
("…, ignoring"), yet exactly the template mistake to catch: with
--recursive-errors=no (systemd >= 250) verify exits non-zero on warnings about
the unit it was given, and older versions exit 0 on them, so any output line
that names our unit fails the test as well.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest
from rendered_tree import Tree, run

SLOTS = ("blue", "green")


@functools.cache
def verify_options(systemd_analyze: str) -> tuple[str, ...]:
    options = ["--man=no"]  # no Documentation= to look up
    # Errors in the distribution's own units (network.target's dependencies, …) are not ours
    # to judge; systemd >= 250 can leave them out of the exit code.
    if "--recursive-errors" in run([systemd_analyze, "--help"]).stdout:
        options.append("--recursive-errors=no")
    return tuple(options)


def make_slot_executable(tree: Tree, slot: str) -> None:
    """What a deploy leaves in the slot: .venv/bin/gunicorn (here a stub, verify only checks it is executable)."""
    gunicorn = Path(tree.layout.slot(slot)) / ".venv" / "bin" / "gunicorn"
    gunicorn.parent.mkdir(parents=True, exist_ok=True)
    gunicorn.write_text("#!/bin/sh\nexit 0\n")
    gunicorn.chmod(0o755)


def verify(systemd_analyze: str, tree: Tree, unit_text: str, slot: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run verify on the instance `slot`; return the process and the output lines about our unit."""
    instance = tree.layout.systemd_instance(slot)
    unit = tree.root / "verify" / instance
    unit.parent.mkdir(exist_ok=True)
    unit.write_text(unit_text)
    proc = run([systemd_analyze, "verify", *verify_options(systemd_analyze), str(unit)])
    # Lines that do not name our unit are about the distribution's units or this machine
    # (e.g. a container without a running systemd); they say nothing about our template.
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if instance in line]
    return proc, ours


@pytest.mark.parametrize("slot", SLOTS)
def test_unit_passes_systemd_analyze_verify(systemd_analyze: str, tree: Tree, slot: str) -> None:
    make_slot_executable(tree, slot)
    unit_text = Path(tree.layout.systemd_unit).read_text()
    assert "%i" in unit_text and Path(tree.layout.systemd_unit).name == f"{tree.cfg.app.name}@.service"
    proc, ours = verify(systemd_analyze, tree, unit_text, slot)
    assert proc.returncode == 0, f"systemd-analyze verify failed:\n{proc.stdout}{proc.stderr}"
    assert not ours, "systemd-analyze verify complained about the unit:\n" + "\n".join(ours)


def test_a_fatal_unit_error_fails(systemd_analyze: str, minimal_tree: Tree) -> None:
    make_slot_executable(minimal_tree, "blue")
    text = Path(minimal_tree.layout.systemd_unit).read_text()
    exec_start = f"ExecStart={minimal_tree.layout.slots_dir}/%i/"
    assert exec_start in text
    broken = text.replace(exec_start, "ExecStart=")  # a relative ExecStart= path
    proc, ours = verify(systemd_analyze, minimal_tree, broken, "blue")
    assert proc.returncode != 0
    assert any("Neither a valid executable name nor an absolute path" in line for line in ours), proc.stderr


def test_a_missing_gunicorn_fails(systemd_analyze: str, minimal_tree: Tree) -> None:
    # No slot executable: the unit's ExecStart= points at nothing.
    proc, ours = verify(systemd_analyze, minimal_tree, Path(minimal_tree.layout.systemd_unit).read_text(), "blue")
    assert proc.returncode != 0
    assert any("is not executable" in line for line in ours), proc.stderr


def test_an_ignored_setting_fails_too(systemd_analyze: str, minimal_tree: Tree) -> None:
    # systemd only warns and ignores the value; the validator must still see the complaint.
    make_slot_executable(minimal_tree, "blue")
    text = Path(minimal_tree.layout.systemd_unit).read_text()
    assert "\nRestart=always\n" in text
    proc, ours = verify(systemd_analyze, minimal_tree, text.replace("\nRestart=always\n", "\nRestart=sometimes\n"), "blue")
    assert any("Failed to parse service restart specifier" in line for line in ours), proc.stderr
