"""Ingest: WAL records to keys. After ingesting a real workload's WAL, the sizes
the pageserver knows must agree with the data directory that wrote the WAL."""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from kelptest import env
from kelptest.pgcluster import Cluster

FORK_SUFFIX = {0: "", 1: "_fsm", 2: "_vm", 3: "_init"}


def kelp(*args):
    return subprocess.run([str(env.KELP_BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """Run a workload touching every kind of record ingest handles; return
    (data dir copy, ingest output, facts recorded during the workload)."""
    user = env.postgres_user()
    base = Path(tempfile.mkdtemp(prefix="kelp-ingest-"))
    user.give(base)
    c = Cluster(base / "pg", user).initdb(wal_level="replica", wal_keep_size="'1GB'",
                                          max_prepared_transactions=5, autovacuum="off")
    c.start()
    facts = {}
    with c.connect() as conn:
        # The CLOG as of the start: flushed by a checkpoint, then copied.
        conn.execute("CHECKPOINT")
        start = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        clog_base = tmp_path_factory.mktemp("clog") / "base"
        shutil.copyfile(c.datadir / "pg_xact" / "0000", clog_base)
        facts["initial_dbs"] = {r[0] for r in conn.execute("SELECT oid FROM pg_database")}
        conn.execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 30000) g")
        conn.execute("CREATE INDEX big_v ON big (v)")
        conn.execute("VACUUM big")  # sets visibility-map bits
        conn.execute("UPDATE big SET v = 'y' WHERE id % 100 = 0")  # clears some
        conn.execute("DELETE FROM big WHERE id > 20000")
        conn.execute("VACUUM big")  # truncates the heap tail
        conn.execute("CREATE TABLE gone (a int)")
        conn.execute("INSERT INTO gone SELECT generate_series(1, 1000)")
        facts["gone"] = conn.execute("SELECT pg_relation_filepath('gone')").fetchone()[0]
        conn.execute("DROP TABLE gone")
        conn.execute("CREATE TABLE trunc (a int)")
        conn.execute("INSERT INTO trunc SELECT generate_series(1, 5000)")
        facts["trunc_old"] = conn.execute("SELECT pg_relation_filepath('trunc')").fetchone()[0]
        conn.execute("TRUNCATE trunc")
        conn.execute("INSERT INTO trunc VALUES (1)")
        conn.execute("CREATE UNLOGGED TABLE unl (a int)")
        conn.execute("CREATE SEQUENCE seq")
        conn.execute("SELECT nextval('seq') FROM generate_series(1, 100)")
        conn.execute("CREATE DATABASE extra")
        conn.execute("CREATE DATABASE dropped")
        facts["dropped_oid"] = conn.execute(
            "SELECT oid FROM pg_database WHERE datname = 'dropped'").fetchone()[0]
        conn.execute("DROP DATABASE dropped")
        # Multixacts: two sessions share-lock the same row.
        with c.connect() as c2:
            conn.execute("BEGIN")
            conn.execute("SELECT * FROM big WHERE id = 1 FOR SHARE")
            c2.execute("BEGIN")
            c2.execute("SELECT * FROM big WHERE id = 1 FOR SHARE")
            c2.execute("COMMIT")
            conn.execute("COMMIT")
        # A prepared transaction left open, one committed, one rolled back.
        for gid, finish in (("kept", None), ("done", "COMMIT"), ("undone", "ROLLBACK")):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO trunc VALUES (2)")
            conn.execute(f"PREPARE TRANSACTION '{gid}'")
            if finish:
                conn.execute(f"{finish} PREPARED '{gid}'")
        facts["kept_xid"] = int(conn.execute(
            "SELECT transaction FROM pg_prepared_xacts WHERE gid = 'kept'").fetchone()[0])
        # Subtransactions, committed and rolled back, and a failed transaction.
        conn.execute("BEGIN")
        conn.execute("INSERT INTO trunc VALUES (3)")
        conn.execute("SAVEPOINT a")
        conn.execute("INSERT INTO trunc VALUES (4)")
        conn.execute("SAVEPOINT b")
        conn.execute("INSERT INTO trunc VALUES (5)")
        conn.execute("ROLLBACK TO SAVEPOINT b")
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO trunc VALUES (6)")
        conn.execute("ROLLBACK")
        # Burn some xids and OIDs.
        for _ in range(50):
            conn.execute("SELECT txid_current()")
        conn.execute("CREATE TABLE oids AS SELECT 1")
        conn.execute("CHECKPOINT")
        facts["next_xid"] = int(conn.execute("SELECT txid_current()").fetchone()[0]) + 1
        facts["relations"] = {
            r[0]: r[1] for r in conn.execute(
                "SELECT relname, pg_relation_filepath(oid) FROM pg_class "
                "WHERE relname IN ('big', 'big_v', 'big_pkey', 'trunc', 'unl', 'seq', 'oids')")}
        end = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        conn.execute("SELECT pg_switch_wal()")  # everything up to end is flushed
    # The same WAL, streamed live through the pageserver's WAL receiver.
    streamed = kelp("debug-ingest-wal", "--source",
                    f"host=127.0.0.1 port={c.port} user=postgres dbname=postgres",
                    "--start", start, "--end", end, "--timeout", "120s")
    facts["streamed"] = streamed
    # And again with the connection failing three times mid-stream: the
    # receiver reconnects from the last record it ingested.
    facts["streamed_faults"] = subprocess.run(
        [str(env.KELP_BIN), "debug-ingest-wal", "--source",
         f"host=127.0.0.1 port={c.port} user=postgres dbname=postgres",
         "--start", start, "--end", end, "--timeout", "120s"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, KELP_FAILPOINTS="pageserver.walreceiver.before-ingest=3*return"))
    c.stop()
    data = tmp_path_factory.mktemp("ingest") / "data"
    shutil.copytree(c.datadir, data, ignore=shutil.ignore_patterns("pg_stat_tmp"))
    shutil.rmtree(base, ignore_errors=True)
    facts["clog_out"] = clog_base.parent / "out"
    r = kelp("debug-ingest-wal", "--wal-dir", data / "pg_wal", "--start", start, "--end", end,
             "--clog-base", clog_base, "--clog-out", facts["clog_out"])
    assert r.returncode == 0, r.stderr
    return data, r.stdout, facts


def parse_sizes(out):
    sizes = {}
    for m in re.finditer(r"^relsize (\d+)/(\d+)/(\d+) fork=(\d+) nblocks=(\d+)$", out, re.M):
        sizes[tuple(int(x) for x in m.groups()[:4])] = int(m.group(5))
    return sizes


def file_path(data, spc, db, rel, fork):
    base = data / ("global" if spc == 1664 else f"base/{db}")
    return base / f"{rel}{FORK_SUFFIX[fork]}"


def page_is_new(page):
    # PageIsNew: pd_upper (bytes 14-15, little-endian here) is 0.
    return page[14:16] == b"\0\0"


def test_sizes_agree_with_the_data_directory(ingested):
    """Relations that existed before the WAL we ingest (initdb's catalogs in
    the initial databases) are imported, not ingested: only relations created
    inside the workload have their whole history in it."""
    data, out, facts = ingested
    sizes = parse_sizes(out)
    assert len(sizes) > 10
    checked = 0
    for (spc, db, rel, fork), nblocks in sizes.items():
        if rel < 16384 and (spc == 1664 or db in facts["initial_dbs"]):
            continue
        path = file_path(data, spc, db, rel, fork)
        assert path.exists(), f"ingest knows {path} which the primary does not have"
        blocks = path.stat().st_size // 8192
        if fork == 0:
            # The file may hold trailing pages extended without WAL: they must be new.
            assert blocks >= nblocks, (path, blocks, nblocks)
            with open(path, "rb") as f:
                f.seek(nblocks * 8192)
                for _ in range(blocks - nblocks):
                    assert page_is_new(f.read(8192)), f"{path}: a page past {nblocks} has data"
            checked += 1
        else:
            # FSM and VM pages are also extended without WAL.
            assert blocks >= nblocks, (path, blocks, nblocks)
    assert checked > 5


def test_workload_relations_are_known(ingested):
    data, out, facts = ingested
    sizes = parse_sizes(out)
    for name, path in facts["relations"].items():
        _, db, rel = path.split("/")
        if name == "unl":
            # Unlogged: only the init fork is in WAL.
            assert (1663, int(db), int(rel), 3) in sizes
            assert (1663, int(db), int(rel), 0) not in sizes
            continue
        assert (1663, int(db), int(rel), 0) in sizes, name
    db, rel = facts["relations"]["big"].split("/")[1:]
    # VACUUM set visibility-map bits, so the VM fork exists.
    assert sizes.get((1663, int(db), int(rel), 2), 0) >= 1
    assert "vm_routed=0" not in out, "the UPDATE cleared VM bits: those records go to VM pages"


def test_dropped_relations_and_databases_are_gone(ingested):
    data, out, facts = ingested
    sizes = parse_sizes(out)
    for key in ("gone", "trunc_old"):
        _, db, rel = facts[key].split("/")
        assert not any(k[1] == int(db) and k[2] == int(rel) for k in sizes), key
    dbs = set(re.findall(r"^database (\d+)/(\d+)$", out, re.M))
    assert ("1663", str(facts["dropped_oid"])) not in dbs
    assert not any(k[1] == facts["dropped_oid"] for k in sizes)
    extra = {d for d in (data / "base").iterdir() if d.name.isdigit()}
    for spc, db in dbs:
        assert (data / "base" / db).is_dir(), db
    assert len(dbs) >= 1 and len(extra) >= len(dbs)


def test_prepared_transactions_and_checkpoint(ingested):
    _, out, facts = ingested
    twophase = {int(x) for x in re.findall(r"^twophase xid=(\d+)", out, re.M)}
    assert twophase == {facts["kept_xid"]}
    assert "checkpoint bytes=" in out
    # CLOG pages got commit/abort records; the shared locks made a multixact
    # (its offsets page and its members page).
    for kind in (0, 1, 2):
        assert re.search(rf"^slrupages kind={kind} n=[1-9]", out, re.M), kind
    assert int(re.search(r"native=(\d+)", out).group(1)) > 50


def test_clog_rebuilt_from_wal_matches(ingested):
    """CLOG page images and native commit/abort records, applied to the CLOG
    as of the start, give exactly the primary's final CLOG."""
    data, _, facts = ingested
    ours = facts["clog_out"].read_bytes()
    theirs = (data / "pg_xact" / "0000").read_bytes()
    used = (facts["next_xid"] + 3) // 4  # bytes holding the xids used so far
    assert used > 100
    assert ours[:used] == theirs[:used]
    assert set(theirs[used:8192]) <= {0}


def test_streamed_ingest_matches_file_ingest(ingested):
    """The WAL receiver (walstream -> decoder -> ingest, in its own thread)
    stores exactly what ingesting the WAL files stores."""
    _, out, facts = ingested
    r = facts["streamed"]
    assert r.returncode == 0, r.stderr
    file_lines = [l for l in out.splitlines() if not l.startswith("stats ")]
    assert r.stdout.splitlines() == file_lines
    r = facts["streamed_faults"]
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("reconnecting from") == 3, r.stderr
    assert r.stdout.splitlines() == file_lines


def test_ingest_rejects_bad_arguments():
    r = kelp("debug-ingest-wal", "--wal-dir", "/nonexistent", "--start", "zz")
    assert r.returncode == 2 and 'invalid LSN "zz"' in r.stderr
