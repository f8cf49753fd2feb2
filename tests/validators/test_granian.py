"""The granian launcher (app.server = "granian"): `sh -n` accepts it, and run with a
stand-in granian it passes the arguments each slot needs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from garrison.config import parse_config
from tests.validators.rendered_tree import write_tree

CASES = {
    "unix": {"app": {"name": "gapp", "entry": "main:app", "server": "granian"}},
    "tcp-factory": {"app": {"name": "gapp", "entry": "main:create_app()", "server": "granian"},
                    "gunicorn": {"bind": "127.0.0.1:9000", "workers": 3}},
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("slot", ["blue", "green"])
def test_launcher_passes_the_slots_arguments(case: str, slot: str, tmp_path: Path) -> None:
    tree = write_tree(parse_config(CASES[case]), tmp_path)
    script = Path(tree.layout.granian_script)
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    # A stand-in granian that prints its argv, in the slot's venv.
    bin_dir = Path(tree.layout.slot(slot)) / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "granian"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    proc = subprocess.run(["sh", str(script), slot], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    args = Path(tree.layout.error_log).read_text().splitlines()
    run = tree.layout.run_dir
    if case == "unix":
        assert args[args.index("--uds") + 1] == f"{run}/{slot}.sock"
        assert args[-1] == "main:app" and "--factory" not in args
        assert int(args[args.index("--workers") + 1]) == max(2, os.cpu_count() or 1)
    else:
        assert args[args.index("--port") + 1] == ("9001" if slot == "green" else "9000")
        assert args[-1] == "main:create_app" and "--factory" in args
        assert args[args.index("--workers") + 1] == "3"
    assert args[args.index("--pid-file") + 1] == f"{run}/{slot}.pid"
    assert args[args.index("--interface") + 1] == "wsgi"


def test_launcher_refuses_an_unknown_slot(tmp_path: Path) -> None:
    tree = write_tree(parse_config(CASES["unix"]), tmp_path)
    proc = subprocess.run(["sh", tree.layout.granian_script, "purple"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr
