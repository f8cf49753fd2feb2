"""Every file Garrison renders, byte for byte, for one config per meaningful case.

render_all(cfg, Layout.of(cfg)) with the real host paths is compared with
tests/golden/expected/<case>/<host path>, so a template change shows up as a
reviewable diff. A case with a load balancer (a host with role "lb") adds the
balancer's files, render_lb, for the app hosts of lb_servers. `pytest --update-golden tests/golden` rewrites the expected
files (and drops the ones render_all no longer produces); read the diff before
committing it.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from garrison.config import Config
from garrison.layout import Layout
from garrison.render import LbServer, render_all, render_lb

EXPECTED = Path(__file__).resolve().parent / "expected"
CASES = {"minimal", "static_folders", "tcp_bind", "unix_socket_dir", "custom_workers", "server_names", "granian", "sample_app",
         "load_balancer", "processes_jobs"}


def lb_servers(cfg: Config) -> list[LbServer]:
    """The app hosts at port 8000, with a roll in progress: the second one out, on its green slot."""
    apps = [h for h in cfg.hosts if "app" in h.roles]
    return [LbServer(h.name, f"{h.private_address or h.address}:{8001 if i == 1 else 8000}", down=i == 1)
            for i, h in enumerate(apps)]


def rendered_files(cfg: Config) -> dict[str, str]:
    layout = Layout.of(cfg)
    files = render_all(cfg, layout)
    if any("lb" in h.roles for h in cfg.hosts):
        files.update(render_lb(cfg, layout, lb_servers(cfg)))
    return files


def test_every_case_is_there(golden_cases: dict[str, Path]) -> None:
    # A deleted or renamed case file would otherwise silently shrink the coverage.
    assert set(golden_cases) == CASES
    assert all(path.is_file() for path in golden_cases.values())


def golden_files(case_dir: Path) -> dict[str, Path]:
    if not case_dir.is_dir():
        return {}
    return {"/" + p.relative_to(case_dir).as_posix(): p for p in sorted(case_dir.rglob("*")) if p.is_file()}


def test_rendered_files_match_golden(golden_case: str, golden_config: Config, request: pytest.FixtureRequest) -> None:
    rendered = {path: text.encode("utf-8") for path, text in rendered_files(golden_config).items()}
    assert all(path.startswith("/") for path in rendered)
    case_dir = EXPECTED / golden_case

    if request.config.getoption("--update-golden"):
        shutil.rmtree(case_dir, ignore_errors=True)
        for path, data in rendered.items():
            target = case_dir / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return

    expected = golden_files(case_dir)
    problems = []
    for path in sorted(rendered.keys() | expected.keys()):
        if path not in expected:
            problems.append(f"{path}: rendered, but there is no {case_dir / path.lstrip('/')}")
        elif path not in rendered:
            problems.append(f"{path}: has a golden file, but render_all (or render_lb) no longer produces it")
        elif (want := expected[path].read_bytes()) != rendered[path]:
            diff = difflib.unified_diff(
                want.decode("utf-8").splitlines(keepends=True),
                rendered[path].decode("utf-8").splitlines(keepends=True),
                fromfile=f"golden {path}",
                tofile=f"rendered {path}",
            )
            problems.append("".join(diff))
    if problems:
        pytest.fail(
            f"case {golden_case}: rendered files differ from {case_dir}\n"
            + "\n".join(problems)
            + "\nIf the change is intended: pytest --update-golden tests/golden",
            pytrace=False,
        )
