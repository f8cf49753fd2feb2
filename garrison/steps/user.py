"""Step `user`: the app's system user and the folders of its layout, with their owners.

Code, venvs and releases belong to root: the app can't rewrite itself.
Everything on the path to static files is world-traversable, so nginx's user
never gets the tutorial's 403.
"""

from __future__ import annotations

import posixpath

from garrison import commands as C
from garrison.steps import Context, Decision, change, unchanged

Folder = tuple[str, int, str, str]  # path, mode, owner, group


def folders(ctx: Context) -> list[Folder]:
    L, user = ctx.L, ctx.cfg.user
    # adm reads logs on Debian; a host without it gives them to the app's group.
    log_group = "adm" if ctx.host.run(C.group_exists("adm"), check=False).ok else user
    return [
        *((p, 0o755, "root", "root") for p in (L.base, L.releases, L.venvs, L.slots_dir, L.etc_dir, L.error_pages)),
        # Others may pass through (not list) shared/: nginx serves a persisted media folder.
        (L.shared, 0o751, user, user),
        # Sockets: created by the app user, group nginx's user (setgid), 0660 via umask.
        (L.run_dir, 0o2750, user, ctx.hf.nginx_user),
        (L.log_dir, 0o750, user, log_group),
        (posixpath.dirname(L.nginx_upstream), 0o755, "root", "root"),
    ]


class User:
    name = "user"

    def what(self, ctx: Context) -> str:
        return f"app user {ctx.cfg.user} and folders"

    def decide(self, ctx: Context) -> Decision:
        h, user = ctx.host, ctx.cfg.user
        exists = h.run(C.user_exists(user), check=False).ok
        wrong = []
        for path, mode, owner, group in folders(ctx):
            st = h.stat(path)
            # Before the user exists its folders can't be right either.
            if not exists or st is None or not st.is_dir or (st.mode, st.owner, st.group) != (mode, owner, group):
                wrong.append(path)
        todo = ([f"create system user {user}"] if not exists else []) + (
            [f"folders {', '.join(wrong)}"] if wrong else [])
        if todo:
            return change(self.name, "; ".join(todo), data=exists)
        return unchanged(self.name, f"{user} and its folders exist with the right owners")

    def apply(self, ctx: Context, decision: Decision) -> str:
        h, L, user = ctx.host, ctx.L, ctx.cfg.user
        if not decision.data:
            h.run(C.add_system_user(user, L.base))
        for path, mode, owner, group in folders(ctx):
            h.ensure_dir(path, mode=mode, owner=owner, group=group)
        return decision.reason.replace("create", "created")
