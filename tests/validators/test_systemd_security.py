"""`systemd-analyze security --offline=true` scores the hardening of every golden unit.

Target from the security review: "OK" or better, an exposure of at most 4.0
(0 is fully locked down, 10 is a unit with no hardening at all).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.validators.rendered_tree import Tree, run

EXPOSURE = re.compile(r"Overall exposure level for (\S+): ([0-9.]+) (\w+)")


def security(systemd_analyze: str, tree: Tree, text: str) -> tuple[float, str, str]:
    unit = tree.root / "security" / tree.layout.systemd_instance("blue")
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(text)
    proc = run([systemd_analyze, "security", "--offline=true", "--no-pager", str(unit)])
    m = EXPOSURE.search(proc.stdout + proc.stderr)
    if m is None:
        pytest.fail(f"no exposure level in the output (rc {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return float(m.group(2)), m.group(3), proc.stdout


def test_unit_exposure_is_ok_or_better(systemd_analyze: str, tree: Tree) -> None:
    exposure, verdict, out = security(systemd_analyze, tree, Path(tree.layout.systemd_unit).read_text())
    assert exposure <= 4.0 and verdict in ("OK", "SAFE"), out


def test_an_unhardened_unit_scores_badly(systemd_analyze: str, minimal_tree: Tree) -> None:
    text = Path(minimal_tree.layout.systemd_unit).read_text()
    bare = "\n".join(ln for ln in text.splitlines() if not ln.startswith(("Protect", "Restrict", "SystemCall",
                                                                           "Capability", "NoNew", "Private",
                                                                           "Lock", "Remove", "Ambient")))
    exposure, verdict, out = security(systemd_analyze, minimal_tree, bare + "\n")
    assert exposure > 7.0 and verdict in ("EXPOSED", "UNSAFE"), out
