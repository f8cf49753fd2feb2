"""The file primitives over SSH (read, lstat, atomic write), each a constant script beside the parser of its output.

The scripts use only POSIX sh and coreutils, so they work through `sudo -n`
for a non-root login exactly as for root (SFTP would run as the login user
and could not write /etc). They behave as LocalExecutor's primitives do: a
broken symlink does not exist for reading, writes go to a temp file in the
same folder that is renamed over the target.
"""

from __future__ import annotations

import posixpath
import stat as stat_mod

from garrison.hosts import Stat
from garrison.hosts.ssh_command import script_argv

MISSING = 3  # exit code of the file scripts for "no such file"

# Constant scripts: $1, $2, ... are the data.
SCRIPTS = {
    # read_file PATH: the bytes, or exit 3 when the path does not exist (a broken
    # symlink does not exist, as for open()).
    "read": '[ -e "$1" ] || exit 3\nexec cat -- "$1"\n',
    # stat PATH: lstat as mode-hex, uid, gid, user, group; then the link target.
    "stat": (
        '[ -e "$1" ] || [ -L "$1" ] || exit 3\n'
        "stat --printf '%f\\n%u\\n%g\\n%U\\n%G\\n' -- \"$1\" || exit\n"
        'if [ -L "$1" ]; then readlink -- "$1" || exit; fi\n'
    ),
    # write PATH DIR BASE OWNER:GROUP MODE, data on stdin: temp file in DIR, chown,
    # chmod (after chown, which clears setuid bits), rename over PATH.
    "write": (
        "set -e\n"
        'mkdir -p -- "$2"\n'
        'tmp=$(mktemp --suffix=.garrison-tmp -- "$2/.$3.XXXXXXXX")\n'
        "trap 'rm -f -- \"$tmp\"' EXIT\n"
        'cat > "$tmp"\n'
        'chown -- "$4" "$tmp"\n'
        'chmod -- "$5" "$tmp"\n'
        'mv -Tf -- "$tmp" "$1"\n'
        "trap - EXIT\n"
    ),
}


def read_argv(path: str) -> tuple[str, ...]:
    """Prints the file's bytes; exits MISSING when it does not exist."""
    return script_argv(SCRIPTS["read"], path)


def stat_argv(path: str) -> tuple[str, ...]:
    """Prints what parse_stat reads; exits MISSING when path does not exist."""
    return script_argv(SCRIPTS["stat"], path)


def write_argv(path: str, *, mode: int, owner: str, group: str) -> tuple[str, ...]:
    """Writes its stdin to path atomically, with this ownership and mode."""
    folder = posixpath.dirname(path) or "."
    base = posixpath.basename(path)
    return script_argv(SCRIPTS["write"], path, folder, base, f"{owner}:{group}", f"{mode:o}")


def parse_stat(out: bytes) -> Stat:
    """The output of the stat script. A uid or gid with no name on the host stands for itself."""
    text = out.decode("utf-8", "surrogateescape")
    fields = text.split("\n", 5)
    raw = int(fields[0], 16)
    uid, gid, user, group = fields[1], fields[2], fields[3], fields[4]
    rest = fields[5] if len(fields) > 5 else ""
    is_link = stat_mod.S_ISLNK(raw)
    return Stat(
        mode=stat_mod.S_IMODE(raw),
        owner=uid if user == "UNKNOWN" else user,
        group=gid if group == "UNKNOWN" else group,
        is_dir=stat_mod.S_ISDIR(raw),
        is_link=is_link,
        # readlink's newline ends the output; the target itself may end in one too.
        link_target=rest[:-1] if is_link and rest.endswith("\n") else (rest if is_link else None),
    )
