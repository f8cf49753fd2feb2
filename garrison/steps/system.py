"""Step `system`: a Debian-family host, root, and the packages `up` needs (nginx, python3-venv)."""

from __future__ import annotations

from garrison import commands as C
from garrison import facts as F
from garrison.errors import CommandFailed, HostError
from garrison.steps import Context, Decision, change, unchanged


class System:
    name = "system"

    def what(self, ctx: Context) -> str:
        return "checking the system and its packages"

    def decide(self, ctx: Context) -> Decision:
        h = ctx.host
        osr = F.parse_os_release((h.read_file("/etc/os-release") or b"").decode(errors="replace"))
        if not osr.is_debian_family:
            raise HostError(f"{h.name}: {osr.pretty} is not supported; garrison up needs Debian or Ubuntu (read from /etc/os-release)")
        uid = h.run(C.whoami_uid()).stdout.strip()
        res = h.run(C.dpkg_status(C.BASE_PACKAGES), check=False)
        missing = [p for p in C.BASE_PACKAGES if p not in F.parse_dpkg_status(res.stdout)]
        if uid != "0" and not ctx.planning:
            if missing:
                raise HostError(
                    f"{h.name}: missing packages {', '.join(missing)} and not root; run: "
                    f"sudo apt-get update && sudo apt-get install -y {' '.join(missing)}"
                )
            raise HostError(f"{h.name}: garrison up must run as root (it writes /etc/nginx and /srv); run: sudo garrison up")
        ctx.facts = ctx.app.host_facts()
        if missing:
            return change(self.name, f"install {', '.join(missing)} on {osr.pretty}", data=missing)
        return unchanged(self.name, f"{osr.pretty}; nginx and python3-venv present")

    def apply(self, ctx: Context, decision: Decision) -> str:
        h, missing = ctx.host, decision.data
        h.run(C.apt_update(), env=C.APT_ENV, timeout=600)
        try:
            h.run(C.apt_install(missing), env=C.APT_ENV, timeout=1200)
        except CommandFailed as exc:
            raise HostError(
                f"{h.name}: apt-get could not install {' '.join(missing)}: {exc}; "
                f"run `apt-get install -y {' '.join(missing)}` by hand to see why"
            ) from None
        # nginx's user is known only once nginx is installed.
        ctx.facts = ctx.app.host_facts()
        return "installed " + decision.reason.removeprefix("install ")
