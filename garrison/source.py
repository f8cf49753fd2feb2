"""The app's code on the deploying machine: which files ship, their hash, the archive.

A release is every file of the app folder except what `.gitignore` excludes
and what never belongs on a server (.git, virtualenvs, bytecode). The content
hash names the release, so an unchanged tree means an unchanged release.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

ALWAYS_EXCLUDED_DIRS = frozenset({".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox"})
ALWAYS_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


def _git_files(root: Path) -> list[str] | None:
    """Files git would ship (tracked + untracked, minus ignored), or None when not a git tree."""
    try:
        top = subprocess.run(
            ("git", "-C", str(root), "rev-parse", "--show-toplevel"), capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if top.returncode != 0:
        return None
    res = subprocess.run(
        ("git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."),
        capture_output=True,
        timeout=30,
    )
    if res.returncode != 0:
        return None
    files = [f for f in res.stdout.decode().split("\0") if f]
    # Deleted-but-tracked files are listed too; ship only what exists.
    return [f for f in files if (root / f).is_file()]


def parse_gitignore(text: str) -> list[str]:
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not line.startswith("!"):
            patterns.append(line)
    return patterns


def ignored(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    """A small .gitignore matcher for folders that are not git work trees."""
    name = rel.rsplit("/", 1)[-1]
    for pat in patterns:
        dir_only = pat.endswith("/")
        p = pat.rstrip("/")
        if dir_only and not is_dir:
            continue
        anchored = "/" in p
        p = p.lstrip("/")
        if anchored:
            if fnmatch.fnmatch(rel, p):
                return True
        elif fnmatch.fnmatch(name, p):
            return True
    return False


def app_files(root: Path) -> list[str]:
    """Relative paths of the files that make a release, sorted."""
    root = Path(root)
    files = _git_files(root)
    if files is None:
        gi = root / ".gitignore"
        patterns = parse_gitignore(gi.read_text(errors="replace")) if gi.is_file() else []
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            dirnames[:] = sorted(
                d for d in dirnames if d not in ALWAYS_EXCLUDED_DIRS and not ignored(rel_dir + d, True, patterns)
            )
            for f in filenames:
                if not ignored(rel_dir + f, False, patterns):
                    files.append(rel_dir + f)
    out = []
    for f in files:
        parts = f.split("/")
        if any(p in ALWAYS_EXCLUDED_DIRS for p in parts[:-1]) or f.endswith(ALWAYS_EXCLUDED_SUFFIXES):
            continue
        if (root / f).is_symlink() or not (root / f).is_file():
            continue
        out.append(f)
    return sorted(out)


def content_hash(root: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        data = (Path(root) / f).read_bytes()
        mode = "x" if os.access(Path(root) / f, os.X_OK) else "-"
        h.update(f"{f}\0{mode}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def archive(root: Path, files: list[str]) -> bytes:
    """A gzip tar of the files: what reaches the host, locally or over SSH."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for f in files:
            path = Path(root) / f
            info = tar.gettarinfo(str(path), arcname=f)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    return buf.getvalue()


def requirements_hash(root: Path, requirements: str, python: str, extra: tuple[str, ...]) -> str:
    """Names the venv: the same requirements, interpreter and extras reuse it."""
    h = hashlib.sha256()
    h.update(python.encode() + b"\0" + "\0".join(extra).encode() + b"\0")
    if requirements:
        h.update((Path(root) / requirements).read_bytes())
    return h.hexdigest()[:16]
