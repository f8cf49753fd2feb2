"""Step `persist`: data that outlives releases (`app.persist`), kept in shared/ and linked from
each release.

A path (folder or file, relative to the app root) lives in /srv/<app>/shared/<path>, owned
by the app user; the release holds a symlink at that path, so the code stays root-owned and
read-only while the app writes its data. The first deploy seeds the data from the release's
own copy when it has one (an initial media/ folder); later deploys, rollbacks and `down`
never touch it (only `down --purge` removes it). SQLite follows the link to the real file,
so its journal and WAL files are made beside it, in shared/.
"""

from __future__ import annotations

import posixpath

from garrison import commands as C
from garrison.steps import Context, Decision, change, skip, unchanged


def is_file_like(path: str) -> bool:
    """With no copy to look at, a name with a suffix (db.sqlite3) is a file, else a folder."""
    return posixpath.splitext(posixpath.basename(path))[1] != ""


def source_has(ctx: Context, path: str) -> bool:
    return (ctx.project.root / path).exists()


class Persist:
    name = "persist"

    def what(self, ctx: Context) -> str:
        return f"data that outlives releases ({', '.join(ctx.cfg.app.persist)})"

    def decide(self, ctx: Context) -> Decision:
        paths = ctx.cfg.app.persist
        if not paths:
            return skip(self.name, "no app.persist")
        assert ctx.rid is not None
        h, L = ctx.host, ctx.L
        todo, work = [], []
        for path in paths:
            target, link = posixpath.join(L.shared, path), posixpath.join(L.release(ctx.rid), path)
            st = None if ctx.new_release else h.stat(link)
            relink = st is None or not st.is_link or st.link_target != target
            has_copy = source_has(ctx, path) if ctx.new_release else (st is not None and not st.is_link)
            # A file nothing seeds is made by the app itself, through the link: only its folder
            # in shared/ must be there (SQLite can't create a file in a missing folder).
            parent = posixpath.dirname(target)
            seed = not h.exists(target) and (has_copy or not is_file_like(path) or (parent != L.shared and not h.exists(parent)))
            if seed and has_copy:
                todo.append(f"seed {path} from the release")
            elif seed:
                todo.append(f"make {path if not is_file_like(path) else posixpath.dirname(path)} in shared/")
            if relink:
                todo.append(f"link {path}")
            if seed or relink:
                work.append((path, seed, relink))
        if not work:
            return unchanged(self.name, f"{', '.join(paths)} in {L.shared}, linked from {ctx.rid}")
        return change(self.name, "; ".join(todo), data=work)

    def apply(self, ctx: Context, decision: Decision) -> str:
        h, L, user = ctx.host, ctx.L, ctx.cfg.user
        assert ctx.rid is not None
        for path, seed, relink in decision.data:
            target, link = posixpath.join(L.shared, path), posixpath.join(L.release(ctx.rid), path)
            if seed:
                parent = posixpath.dirname(target)
                if parent != L.shared:
                    h.run(C.make_dirs_as(user, parent))
                st = h.stat(link)
                if st is not None and not st.is_link:
                    # The release's own copy seeds the data once, then belongs to the app.
                    h.run(C.copy_preserving(link, target))
                    h.run(C.chown_tree(user, target))
                elif not is_file_like(path):
                    h.ensure_dir(target, mode=0o755, owner=user, group=user)
                # else: a file the app makes itself; its folder was made above
            if relink:
                h.remove(link)
                h.ensure_dir(posixpath.dirname(link), mode=0o755)
                h.ensure_symlink(target, link)
        return decision.reason.replace("seed ", "seeded ").replace("make ", "made ").replace("link ", "linked ")
