"""The kelp executable: help, errors and exit codes, and kelp up/down/status."""
import os
import re
import subprocess

import psycopg
import pytest

from kelptest import env

ROLES = ["pageserver", "safekeeper", "control", "proxy", "compute"]
VERBS = ["up", "down", "status", "branch"]


def kelp(*args, timeout=120, **kw):
    return subprocess.run([str(env.KELP_BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_main_help_lists_every_command():
    r = kelp("--help")
    assert r.returncode == 0
    for name in ROLES + VERBS:
        assert re.search(rf"^  {name} +\S", r.stdout, re.M), name
    assert kelp("help").stdout == r.stdout


def test_no_arguments_is_a_usage_error():
    r = kelp()
    assert r.returncode == 2
    assert "usage: kelp <command>" in r.stderr


@pytest.mark.parametrize("name", ROLES + VERBS)
def test_every_command_has_help(name):
    r = kelp(name, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"kelp {name} -- ")
    assert f"usage: kelp {name}" in r.stdout
    assert "--help" in r.stdout
    assert kelp("help", name).stdout == r.stdout


def test_unknown_command():
    r = kelp("frobnicate")
    assert r.returncode == 2
    assert 'unknown command "frobnicate"' in r.stderr
    r = kelp("help", "frobnicate")
    assert r.returncode == 2


@pytest.mark.parametrize("name", ROLES + VERBS)
def test_unknown_flag_is_a_usage_error(name):
    r = kelp(name, "--no-such-flag")
    assert r.returncode == 2
    assert "--no-such-flag" in r.stderr
    assert f"kelp {name} --help" in r.stderr


def test_bad_flag_values():
    r = kelp("up", "--port=notanumber")
    assert r.returncode == 2
    assert "port" in r.stderr and "notanumber" in r.stderr
    r = kelp("up", "--port=70000")
    assert r.returncode == 2
    assert "port" in r.stderr
    r = kelp("up", "--port")
    assert r.returncode == 2
    r = kelp("--bogus")
    assert r.returncode == 2 and 'unknown flag "--bogus"' in r.stderr


def test_version():
    r = kelp("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("kelp ") and "PostgreSQL 15.18" in r.stdout


def test_roles_not_built_yet_say_so():
    r = kelp("pageserver")
    assert r.returncode == 1
    assert "not part of this version" in r.stderr


def test_up_status_down(workdir):
    data = workdir / "data"
    port = env.free_port()
    r = kelp("status", "--data-dir", data)
    assert r.returncode == 3 and "stopped" in r.stdout

    r = kelp("up", "--data-dir", data, "--port", port)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"psql '(postgresql://kelp:(\w+)@127\.0\.0\.1:(\d+)/postgres)'", r.stdout)
    assert m, r.stdout
    assert int(m.group(3)) == port
    try:
        with psycopg.connect(m.group(1), connect_timeout=10) as conn:
            assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == "kelp"
            assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL 15.18")
        # A wrong password is refused: the server is not open to anyone.
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"postgresql://kelp:wrong@127.0.0.1:{port}/postgres",
                            connect_timeout=10)
        r = kelp("status", "--data-dir", data)
        assert r.returncode == 0 and "running" in r.stdout
        # Running up again only prints the connection details.
        r2 = kelp("up", "--data-dir", data, "--port", port)
        assert r2.returncode == 0 and "already running" in r2.stdout
        assert m.group(1) in r2.stdout
    finally:
        r = kelp("down", "--data-dir", data)
    assert r.returncode == 0, r.stderr
    assert "stopped" in r.stdout
    assert kelp("status", "--data-dir", data).returncode == 3
    assert "not running" in kelp("down", "--data-dir", data).stdout

    # Data survives a restart.
    r = kelp("up", "--data-dir", data, "--port", port)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        kelp("down", "--data-dir", data)


def test_up_with_a_missing_postgres_install(workdir):
    r = kelp("up", "--data-dir", workdir / "d", "--pg-dir", workdir / "nope")
    assert r.returncode == 1
    assert "no PostgreSQL install at" in r.stderr
    assert "HINT:" in r.stderr


def test_failpoint_from_environment(workdir):
    """KELP_FAILPOINTS reaches the kelp executable: an injected error stops `up`
    before PostgreSQL starts, with a message naming the failpoint."""
    env_vars = dict(os.environ, KELP_FAILPOINTS="cli.up.before-start=return(EIO)")
    r = kelp("up", "--data-dir", workdir / "fp", "--port", env.free_port(), env=env_vars)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'failpoint "cli.up.before-start" injected an error: EIO' in r.stderr
    assert kelp("status", "--data-dir", workdir / "fp").returncode == 3


def test_malformed_failpoint_spec_is_refused():
    env_vars = dict(os.environ, KELP_FAILPOINTS="cli.up.before-start=explode")
    r = kelp("status", "--data-dir", "/nonexistent", env=env_vars)
    assert r.returncode == 2
    assert "cli.up.before-start" in r.stderr and "explode" in r.stderr
