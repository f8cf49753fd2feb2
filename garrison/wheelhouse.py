"""The wheelhouse: pip and uv without a route to PyPI.

A folder of wheels on the deploying machine (--wheelhouse, GARRISON_WHEELHOUSE)
is copied to the host once, and every install there reads only from it.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from garrison import commands as C
from garrison.errors import ConfigError
from garrison.hosts import Executor

REMOTE_WHEELHOUSE = "/var/cache/garrison/wheels"



def local_wheelhouse(option: str | None = None) -> Path | None:
    value = option or os.environ.get("GARRISON_WHEELHOUSE")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(f"wheelhouse {path}: no such folder (--wheelhouse / GARRISON_WHEELHOUSE)")
    return path


def sync_wheelhouse(host: Executor, local: Path, remote: str = REMOTE_WHEELHOUSE) -> tuple[str, int]:
    """Copy the wheels the host lacks into `remote` (one tar through extract_tar). (remote, copied)."""
    wanted = sorted(p for p in local.iterdir() if p.is_file() and p.suffix in (".whl", ".gz", ".zip", ".tar"))
    host.ensure_dir(remote, mode=0o755)
    have = set(host.run(C.list_sizes(remote), check=False).stdout.splitlines())
    missing = [p for p in wanted if f"{p.name} {p.stat().st_size}" not in have]
    if missing:
        buf = io.BytesIO()
        # Wheels are zip files already: gzip level 1 costs little and the executor wants gzip.
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
            for p in missing:
                info = tar.gettarinfo(str(p), arcname=p.name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = 0o644
                with open(p, "rb") as f:
                    tar.addfile(info, f)
        host.extract_tar(buf.getvalue(), remote)
    return remote, len(missing)


def install_args(host: Executor, local: Path | None) -> list[str]:
    """pip/uv arguments that install only from the wheelhouse (copied to host first), or none."""
    return ["--no-index", "--find-links", sync_wheelhouse(host, local)[0]] if local else []
