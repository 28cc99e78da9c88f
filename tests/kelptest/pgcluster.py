"""A throwaway PostgreSQL cluster from build/pg, run as the unprivileged user."""
import os
import subprocess
import time
from pathlib import Path

import psycopg

from . import env


class Cluster:
    def __init__(self, base: Path, user: env.User, port=None, prefix=env.PG_PREFIX):
        self.base = Path(base)
        self.user = user
        self.port = port or env.free_port()
        self.bin = Path(prefix) / "bin"
        self.datadir = self.base / "pgdata"
        self.logfile = self.base / "postgres.log"
        self.started = False

    def _run(self, *args, check=True, timeout=120):
        return subprocess.run([str(a) for a in args], check=check, timeout=timeout,
                              capture_output=True, text=True, **self.user.popen_kwargs())

    def initdb(self, **conf):
        self.base.mkdir(parents=True, exist_ok=True)
        self.user.give(self.base)
        self._run(self.bin / "initdb", "-D", self.datadir, "-U", "postgres",
                  "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
        }
        settings.update({k: str(v) for k, v in conf.items()})
        with open(self.datadir / "postgresql.conf", "a") as f:
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        return self

    def start(self, check=True):
        r = self._run(self.bin / "pg_ctl", "-D", self.datadir, "-l", self.logfile,
                      "-w", "-t", "60", "start", check=False)
        if r.returncode != 0 and check:
            raise RuntimeError(f"pg_ctl start failed ({r.returncode}):\n{r.stdout}{r.stderr}\n"
                               f"log:\n{self.log()}")
        self.started = r.returncode == 0
        return r

    def stop(self, mode="fast"):
        if self.started:
            self._run(self.bin / "pg_ctl", "-D", self.datadir, "-m", mode, "-w", "stop",
                      check=False)
            self.started = False

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connect(self, dbname="postgres", **kw):
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               dbname=dbname, autocommit=True, connect_timeout=10, **kw)

    def wait_for_log(self, text, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.05)
        return False
