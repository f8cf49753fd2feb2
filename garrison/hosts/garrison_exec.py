"""garrison-exec: start an app process as its user with the app's secrets (runs ON the host).

supervisord has no EnvironmentFile. Rather than copying secrets into its
program files, it starts this launcher as root; the launcher reads the
root-only env file, drops to the app user and its groups, and execs the
command (gunicorn), which then is the process supervisord signals.
Stdlib only: it runs under the distribution's python3.

usage: python3 garrison-exec ENV_FILE USER -- COMMAND [ARGS...]
"""

# Annotations stay strings: the host's python3 may be older than the one running Garrison.
from __future__ import annotations

import os
import pwd
import sys


def parse_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            out, i, body = [], 0, value[1:-1]
            while i < len(body):
                if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '"\\$`':
                    out.append(body[i + 1])
                    i += 2
                else:
                    out.append(body[i])
                    i += 1
            value = "".join(out)
        elif len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        if key.isidentifier():
            env[key] = value
    return env


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        sys.stderr.write("usage: garrison-exec ENV_FILE USER -- COMMAND [ARGS...]\n")
        return 2
    env_file, user, command = argv[1], argv[2], argv[4:]
    env = dict(os.environ)
    try:
        with open(env_file, encoding="utf-8", errors="replace") as fh:
            env.update(parse_env(fh.read()))
    except FileNotFoundError:
        pass
    pw = pwd.getpwnam(user)
    os.initgroups(user, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    env["USER"] = env["LOGNAME"] = user
    os.execve(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
