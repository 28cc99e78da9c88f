"""Where things are, and the OS user PostgreSQL processes run as."""
import os
import pwd
import socket
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
KELP_BIN = Path(os.environ.get("KELP_BIN", BUILD / "out" / "bin" / "kelp"))
PG_PREFIX = Path(os.environ.get("KELP_PG_PREFIX", BUILD / "pg"))
PG_BIN = PG_PREFIX / "bin"
OS_USER = os.environ.get("KELP_OS_USER", "kelp")


class User:
    """The user that runs PostgreSQL: `kelp` when we are root, else ourselves."""

    def __init__(self, name, uid, gid, switch):
        self.name, self.uid, self.gid, self.switch = name, uid, gid, switch

    def popen_kwargs(self):
        """Keyword arguments for subprocess that run a child as this user."""
        if not self.switch:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def give(self, path):
        """Hand a path we created to this user."""
        if self.switch:
            os.chown(path, self.uid, self.gid)


def ensure_traversable(path):
    """As root, make every ancestor of path searchable (o+x) so the
    unprivileged user can reach the build tree; reports what it changed."""
    changed = []
    for parent in [Path(path), *Path(path).parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, mode | stat.S_IXOTH)
            changed.append(str(parent))
    return changed


def postgres_user():
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.geteuid())
        return User(pw.pw_name, pw.pw_uid, pw.pw_gid, False)
    try:
        pw = pwd.getpwnam(OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", OS_USER], check=True)
        pw = pwd.getpwnam(OS_USER)
    assert pw.pw_uid != 0, f"OS user {OS_USER} must not be root"
    ensure_traversable(PG_PREFIX)
    return User(pw.pw_name, pw.pw_uid, pw.pw_gid, True)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
