"""Render a case under a tmp root and run the real tools on it (used by the validator tests).

Rendering with `Layout.of(cfg, root=tmp)` puts every file, log folder, include
and error page under tmp, so nginx, systemd-analyze, gunicorn and supervisord's
parser can check them without touching /etc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from garrison.config import Config
from garrison.layout import Layout, ToolLayout
from garrison.render import render_all

SAMPLE_APP = Path(__file__).resolve().parents[2] / "garrison" / "sample_app"
# nginx refuses `listen [::]:80` where the kernel has no IPv6.
IPV6 = Path("/proc/net/if_inet6").exists()


@dataclass(frozen=True)
class Tree:
    """One config rendered and written under `root`."""

    cfg: Config
    layout: Layout
    tool: ToolLayout
    root: Path
    files: dict[str, str]


def write_tree(cfg: Config, root: Path) -> Tree:
    layout = Layout.of(cfg, root=str(root))
    tool = ToolLayout(str(root))
    files = render_all(cfg, layout, ipv6=IPV6, tool=tool)
    for path, text in files.items():
        # Every file must stay under the root: one that escaped it would be written to the host.
        assert Path(path).is_relative_to(root), f"{path} is outside {root}"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    Path(layout.log_dir).mkdir(parents=True, exist_ok=True)
    return Tree(cfg, layout, tool, root, files)


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)


def find_tool(name: str, *candidates: Path) -> str | None:
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which(name)
