"""The patched PostgreSQL 15.18 build and the kelp extension loaded into it."""
import subprocess
from pathlib import Path

import psycopg
import pytest

from kelptest import env


def test_postgres_version_is_15_18():
    out = subprocess.run([env.PG_BIN / "postgres", "--version"], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "postgres (PostgreSQL) 15.18"


def test_test_programs_are_installed():
    """pg_regress and the isolation tester, for the regression suite later."""
    pgxs_makefile = subprocess.run([env.PG_BIN / "pg_config", "--pgxs"], check=True,
                                   capture_output=True, text=True).stdout.strip()
    pgxs = Path(pgxs_makefile).parents[1] / "test"
    for prog in (pgxs / "regress" / "pg_regress",
                 pgxs / "isolation" / "pg_isolation_regress",
                 pgxs / "isolation" / "isolationtester"):
        assert prog.is_file(), prog
        r = subprocess.run([prog, "-V"], capture_output=True, text=True)
        assert r.returncode == 0 and "15.18" in r.stdout, (prog, r.stdout, r.stderr)


def test_server_starts_with_kelp_preloaded(cluster_factory):
    c = cluster_factory(shared_preload_libraries="'kelp'")
    c.start()
    assert c.wait_for_log("kelp extension 0.1 loaded")
    with c.connect() as conn:
        assert conn.execute("SHOW server_version").fetchone()[0] == "15.18"
        assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == "kelp"
        conn.execute("CREATE EXTENSION kelp")
        version = conn.execute("SELECT kelp.kelp_version()").fetchone()[0]
        assert version == "kelp 0.1 (PostgreSQL 15.18)"
        # A real query through the server with the extension loaded.
        conn.execute("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v "
                     "FROM generate_series(1, 10000) g")
        assert conn.execute("SELECT count(*), sum(id) FROM t").fetchone() == (10000, 50005000)
        # The kelp. GUC prefix is reserved: a typo is refused, not silently kept.
        with pytest.raises(psycopg.Error, match='invalid configuration parameter name "kelp.no_such_setting"'):
            conn.execute("SET kelp.no_such_setting = 1")


def test_kelp_refuses_to_load_outside_preload(cluster_factory):
    c = cluster_factory()
    c.start()
    with c.connect() as conn:
        with pytest.raises(psycopg.Error) as e:
            conn.execute("LOAD 'kelp'")
        assert "kelp must be loaded via shared_preload_libraries" in str(e.value)
        assert "shared_preload_libraries" in (e.value.diag.message_hint or "")
