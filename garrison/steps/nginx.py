"""The one way nginx config goes live: candidate → `nginx -t` → atomic replace → reload → wait.

Every nginx file Garrison writes (an app's site, its upstream include, the
catch-all, the distribution's default site, the load balancer's site and
upstream) goes through `put_live`. The candidate files are checked by
`nginx -t` against a scratch copy of /etc/nginx in which they stand in place
of the live ones, so a rejected candidate never touches a live file, and the
traffic stays where it was. Only then are the live files replaced (each
atomically) and nginx reloaded; "done" means nginx's workers with the new
config have replaced the old ones.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from garrison import commands as C
from garrison.errors import DeployError
from garrison.state import AppOnHost
from garrison.steps import Context, file_diff

ETC = "/etc/nginx/"
SCRATCH = "/var/lib/garrison/nginx-check"


@dataclass
class NginxChange:
    """Files to put live: path → text, symlink path → target, paths to remove."""

    puts: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    removes: list[str] = field(default_factory=list)

    def pending(self, app: AppOnHost) -> "NginxChange":
        """Only what differs from the host."""
        h = app.host
        puts = {p: t for p, t in self.puts.items() if h.read_file(p) != t.encode()}
        links = {}
        for path, target in self.links.items():
            st = h.stat(path)
            if st is None or not st.is_link or st.link_target != target:
                links[path] = target
        removes = [p for p in self.removes if h.exists(p)]
        return NginxChange(puts, links, removes)

    def __bool__(self) -> bool:
        return bool(self.puts or self.links or self.removes)

    def describe(self) -> list[str]:
        return ([f"write {p}" for p in self.puts] + [f"enable {p}" for p in self.links]
                + [f"remove {p}" for p in self.removes])

    def diff(self, app: AppOnHost) -> list[str]:
        return [ln for p, t in self.puts.items() for ln in file_diff(p, app.host.read_file(p), t)]


def validate(app: AppOnHost, change: NginxChange) -> None:
    """`nginx -t` on a scratch copy of /etc/nginx with the candidates in place of the live files."""
    h = app.host
    scratch = f"{SCRATCH}/{app.cfg.app.name}"
    here = scratch + "/"

    def at(path: str) -> str:
        if not path.startswith(ETC):
            raise DeployError(f"{path}: Garrison only manages nginx files under {ETC}")
        return here + path[len(ETC):]

    h.remove(scratch)
    h.ensure_dir(SCRATCH, mode=0o700)
    try:
        # A dangling link among the enabled sites makes cp exit 1 but copy the rest:
        # nginx -t below then judges the tree as nginx would read it.
        h.run(C.copy_tree(ETC.rstrip("/"), scratch), check=False)
        if not h.exists(here + "nginx.conf"):
            raise DeployError(f"{ETC}nginx.conf is missing; reinstall nginx (apt-get install --reinstall nginx-common)")
        h.run(C.rewrite_paths(scratch, ETC, here))
        for path, text in change.puts.items():
            h.write_file(at(path), text.replace(ETC, here).encode())
        for path, target in change.links.items():
            text = change.puts.get(target)
            raw = text.encode() if text is not None else (h.read_file(target) or b"")
            h.write_file(at(path), raw.decode(errors="replace").replace(ETC, here).encode())
        for path in change.removes:
            h.remove(at(path))
        res = h.run(C.nginx_test(here + "nginx.conf"), check=False)
        if not res.ok:
            err = (res.stderr.strip() or res.stdout.strip()).replace(here, ETC)
            raise DeployError(f"nginx -t rejected the new config, the live files are untouched: {err}")
    finally:
        h.remove(scratch)


def reload(ctx: Context) -> str:
    """Start nginx, or reload it gracefully and wait until only new-config workers accept."""
    h, app, clock = ctx.host, ctx.app, ctx.clock
    res = h.run(C.nginx_test(), check=False)
    if not res.ok:
        raise DeployError(f"nginx -t failed: {res.stderr.strip()}")
    if app.nginx_running():
        old = app.nginx_workers()
        h.run(C.systemctl("reload", "nginx") if ctx.hf.systemd else C.nginx_reload())
        # `nginx -s reload` only signals the master: wait until workers with the
        # new config have replaced the old ones, so that "done" means done.
        end = clock.monotonic() + 15
        while clock.monotonic() < end:
            now = app.nginx_workers()
            if now and not (now & old):
                return "reloaded nginx"
            clock.sleep(0.02)
        raise DeployError("nginx did not start workers with the new config within 15 s; see /var/log/nginx/error.log")
    h.run(C.systemctl("enable", "--now", "nginx") if ctx.hf.systemd else C.nginx_start())
    return "started nginx"


def put_live(ctx: Context, change: NginxChange, *, apply: bool = True) -> list[str]:
    """Validate, replace and (with apply, when nginx runs or should) reload; notes of what changed.

    A failed reload puts the previous files back."""
    h = ctx.host
    todo = change.pending(ctx.app)
    if not todo:
        return []
    # nginx reads a site through its link in sites-enabled, which the scratch copy holds as a
    # copy of the live file: the change's links, the ones already in place too, put the
    # candidate there, or nginx -t would judge the live site instead of the new one.
    validate(ctx.app, NginxChange(todo.puts, {**change.links, **todo.links}, todo.removes))
    undo: list[tuple[str, bytes | None, str | None]] = []  # path, old bytes, old link target
    try:
        for path, text in todo.puts.items():
            undo.append((path, h.read_file(path), None))
            h.ensure_dir(posixpath.dirname(path), mode=0o755)
            h.write_file(path, text.encode())
        for path, target in todo.links.items():
            st = h.stat(path)
            undo.append((path, None, st.link_target if st and st.is_link else None))
            h.ensure_symlink(target, path)
        for path in todo.removes:
            st = h.stat(path)
            if st is not None and st.is_link:
                undo.append((path, None, st.link_target))
            else:
                undo.append((path, h.read_file(path), None))
            h.remove(path)
        notes = todo.describe()
        if apply:
            notes.append(reload(ctx))
        return notes
    except DeployError:
        for path, data, link in reversed(undo):
            if link is not None:
                h.ensure_symlink(link, path)
            elif data is not None:
                h.write_file(path, data)
            else:
                h.remove(path)
        raise
