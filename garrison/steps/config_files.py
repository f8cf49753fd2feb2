"""Step `config`: gunicorn's (or granian's) config, the error page, logrotate, and the
service manager's files (systemd's template unit, or supervisord's main config)."""

from __future__ import annotations

import posixpath

from garrison import commands as C
from garrison import render as R
from garrison.steps import Context, Decision, change, file_diff, unchanged

File = tuple[str, str, str, int]  # name, path, text, mode


def wanted(ctx: Context) -> list[File]:
    cfg, L, T = ctx.cfg, ctx.L, ctx.tool
    files: list[File] = [("gunicorn", L.gunicorn_conf, R.gunicorn_conf(cfg, L), 0o644)]
    if cfg.app.server == "granian":
        files.append(("granian", L.granian_script, R.granian_script(cfg, L), 0o755))
    files += [
        ("errorpage", posixpath.join(L.error_pages, "garrison-50x.html"), R.error_page(cfg), 0o644),
        ("logrotate", L.logrotate, R.logrotate(cfg, L), 0o644),
    ]
    if ctx.hf.systemd:
        files.append(("unit", L.systemd_unit, R.systemd_unit(cfg, L), 0o644))
    else:
        files.append(("supervisord", T.supervisord_conf, R.supervisord_conf(T), 0o644))
    return files


class ConfigFiles:
    name = "config"

    def what(self, ctx: Context) -> str:
        return "gunicorn, service and logrotate files"

    def decide(self, ctx: Context) -> Decision:
        h = ctx.host
        stale = [f for f in wanted(ctx) if not h.has_file(f[1], f[2].encode(), mode=f[3])]
        ctx.changed_files = {f[0]: True for f in stale}
        if not stale:
            return unchanged(self.name, "all up to date")
        diff = [ln for f in stale for ln in file_diff(f[1], h.read_file(f[1]), f[2])]
        return change(self.name, "write " + ", ".join(f[0] for f in stale), diff, data=stale)

    def apply(self, ctx: Context, decision: Decision) -> str:
        h, T = ctx.host, ctx.tool
        if not ctx.hf.systemd:
            for d in (T.supervisor_include_dir, T.log_dir):
                h.ensure_dir(d, mode=0o755)
        for _name, path, text, mode in decision.data:
            h.write_file(path, text.encode(), mode=mode)
        if "unit" in ctx.changed_files:
            h.run(C.systemctl("daemon-reload"))
        return "wrote " + ", ".join(f[0] for f in decision.data)
