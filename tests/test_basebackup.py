"""Basebackups at any LSN. A workload runs on a throwaway cluster, which is
stopped cleanly; kelp makes a fullbackup tar from its data directory with the
synthetic shutdown checkpoint record at several placements; vanilla
PostgreSQL 15.18 must start on each with no redo, serve the same data, hand
out xids and OIDs above the old ones, and survive a crash afterwards."""
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import psycopg
import pytest

from kelptest import env
from kelptest.pgcluster import Cluster

PAGE = 8192
SEG = 16 * 1024 * 1024


def kelp(*args, env_extra=None):
    return subprocess.run([str(env.KELP_BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, **(env_extra or {})))


def lsn_int(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_str(v):
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


def controldata(datadir):
    out = subprocess.run([str(env.PG_BIN / "pg_controldata"), "-D", str(datadir)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


def snapshot(conn):
    """Row count and a checksum of every user table, by name."""
    tables = [r[0] for r in conn.execute(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = relnamespace "
        "WHERE relkind = 'r' AND nspname = 'public' ORDER BY 1")]
    out = {}
    for t in tables:
        out[t] = conn.execute(
            f"SELECT count(*), md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) "
            f"FROM {t} x").fetchone()
    return out


@pytest.fixture(scope="module")
def source(pg_user):
    """A stopped cluster after a workload; yields (data directory, facts)."""
    base = Path(tempfile.mkdtemp(prefix="kelp-bb-src-"))
    pg_user.give(base)
    c = Cluster(base / "pg", pg_user).initdb(wal_level="replica", max_prepared_transactions=5,
                                             autovacuum="off")
    c.start()
    facts = {}
    try:
        with c.connect() as conn:
            conn.execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO big SELECT g, repeat('x', 100) || g "
                         "FROM generate_series(1, 20000) g")
            conn.execute("CREATE INDEX big_v ON big (v)")
            conn.execute("VACUUM big")
            conn.execute("UPDATE big SET v = 'y' || id WHERE id % 97 = 0")
            conn.execute("DELETE FROM big WHERE id > 18000")
            conn.execute("CREATE TABLE toasted (id int, t text)")
            conn.execute("INSERT INTO toasted SELECT g, repeat(md5(g::text), 2000) "
                         "FROM generate_series(1, 20) g")
            conn.execute("CREATE TABLE tp (a int)")
            conn.execute("CREATE SEQUENCE seq")
            conn.execute("SELECT nextval('seq') FROM generate_series(1, 40)")
            conn.execute("TRUNCATE toasted")  # a new relfilenode for toasted
            conn.execute("INSERT INTO toasted SELECT g, repeat(md5(g::text), 2000) "
                         "FROM generate_series(1, 10) g")
            # Multixacts: two sessions share-lock one row.
            with c.connect() as c2:
                conn.execute("BEGIN")
                conn.execute("SELECT * FROM big WHERE id = 1 FOR SHARE")
                c2.execute("BEGIN")
                c2.execute("SELECT * FROM big WHERE id = 1 FOR SHARE")
                c2.execute("COMMIT")
                conn.execute("COMMIT")
            # A prepared transaction left open.
            conn.execute("BEGIN")
            conn.execute("INSERT INTO tp VALUES (42)")
            conn.execute("PREPARE TRANSACTION 'kept'")
            conn.execute("CREATE DATABASE extra")
            with c.connect(dbname="extra") as ce:
                ce.execute("CREATE TABLE e (a int)")
                ce.execute("INSERT INTO e SELECT generate_series(1, 500)")
                facts["extra"] = snapshot(ce)
            for _ in range(30):
                conn.execute("SELECT txid_current()")
            facts["snapshot"] = snapshot(conn)
            facts["last_xid"] = int(conn.execute("SELECT txid_current()").fetchone()[0])
            facts["oids"] = {r[0] for r in conn.execute("SELECT oid FROM pg_class")}
    finally:
        c.stop()
    cd = controldata(c.datadir)
    assert "shut down" in cd["Database cluster state"]
    facts["checkpoint"] = lsn_int(cd["Latest checkpoint location"].strip())
    facts["next_oid"] = int(cd["Latest checkpoint's NextOID"].strip())
    yield c.datadir, facts
    shutil.rmtree(base, ignore_errors=True)


def record_end(lsn):
    """The end of the 114-byte record at lsn (as ps_bb_record_end)."""
    first = PAGE - lsn % PAGE
    if first >= 114:
        return lsn + 114
    nxt = lsn + first
    return nxt + (40 if nxt % SEG == 0 else 24) + 114 - first


def placements(ckpt):
    end = record_end(ckpt)
    page = end // PAGE * PAGE
    seg = ckpt // SEG * SEG
    return {
        "checkpoint": None,                     # the record replaces the real one
        "end": "end",                           # the tip: right after it (mid-page)
        "mid-page": page + 2 * PAGE + 0x1A8,
        "page-crossing": page + 3 * PAGE - 48,  # 48 bytes, then a continuation header
        "header-split": page + 4 * PAGE - 8,    # only xl_tot_len and xl_xid on the first page
        "segment-start": seg + SEG + 40,        # right after a segment's long header
        "segment-crossing": seg + 3 * SEG - 48,  # continued in the next segment file
    }


def make_tar(datadir, out, lsn=None, *extra):
    args = ["debug-basebackup", "--from-datadir", datadir, "--out", out, *extra]
    if lsn is not None:
        args += ["--lsn", lsn if isinstance(lsn, str) else lsn_str(lsn)]
    r = kelp(*args)
    assert r.returncode == 0, r.stderr
    return dict(kv.split("=", 1) for kv in r.stdout.split())


def extract(tar, user, base, port):
    """Unpack tar as a data directory the PostgreSQL user owns, configured as a launcher would."""
    c = Cluster(base, user, port=port)
    c.base.mkdir(parents=True, exist_ok=True)
    user.give(c.base)
    c.datadir.mkdir(mode=0o700)
    subprocess.run(["tar", "-xf", str(tar), "-C", str(c.datadir)], check=False, timeout=120)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(c.datadir)], check=True)
    os.chmod(c.datadir, 0o700)
    with open(c.datadir / "postgresql.conf", "a") as f:
        f.write(f"port = {c.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{c.base}'\nfsync = off\n"
                "max_prepared_transactions = 5\nautovacuum = off\n")
    (c.datadir / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    return c


@pytest.fixture
def started(source, pg_user, workdir):
    """Make a fullbackup at a placement, extract it, start PostgreSQL on it."""
    made = []

    def start(lsn, *extra):
        datadir, _ = source
        tar = workdir / f"bb{len(made)}.tar"
        summary = make_tar(datadir, tar, lsn, "--full", *extra)
        c = extract(tar, pg_user, workdir / f"pg{len(made)}", env.free_port())
        tar.unlink()
        made.append(c)
        c.start()
        return c, summary

    yield start
    for c in made:
        c.stop(mode="immediate")


@pytest.mark.parametrize("placement", ["checkpoint", "end", "mid-page", "page-crossing",
                                       "header-split", "segment-start", "segment-crossing"])
def test_starts_with_no_redo_and_same_data(source, started, placement):
    datadir, facts = source
    lsn = placements(facts["checkpoint"])[placement]
    c, summary = started(lsn)
    x = lsn_int(summary["lsn"])
    if placement == "end":
        assert x == (record_end(facts["checkpoint"]) + 7) // 8 * 8
    log = c.log()
    assert "database system was shut down at" in log, log
    assert "redo starts" not in log, log
    assert int(summary["wal_files"]) == (2 if placement == "segment-crossing" else 1)
    with c.connect() as conn:
        assert snapshot(conn) == facts["snapshot"]
        # New transactions get xids above every old one; new OIDs are new.
        assert int(conn.execute("SELECT txid_current()").fetchone()[0]) > facts["last_xid"]
        conn.execute("CREATE TABLE fresh (a int)")
        oid = conn.execute("SELECT 'fresh'::regclass::oid").fetchone()[0]
        assert oid >= facts["next_oid"] and oid not in facts["oids"]
        # The open prepared transaction survived; the share-locked row locks again.
        assert [r[0] for r in conn.execute("SELECT gid FROM pg_prepared_xacts")] == ["kept"]
        conn.execute("COMMIT PREPARED 'kept'")
        assert conn.execute("SELECT a FROM tp").fetchall() == [(42,)]
        conn.execute("BEGIN")
        conn.execute("SELECT * FROM big WHERE id = 1 FOR UPDATE")
        conn.execute("COMMIT")
        conn.execute("INSERT INTO fresh SELECT generate_series(1, 1000)")
        new_lsn = lsn_int(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])
        assert new_lsn > x
    with c.connect(dbname="extra") as ce:
        assert snapshot(ce) == facts["extra"]
    # New WAL chains to the synthetic record, and crash recovery replays from it.
    c.stop(mode="immediate")
    r = subprocess.run([str(env.PG_BIN / "pg_waldump"), "-p", str(c.datadir / "pg_wal"),
                        "-s", lsn_str(x), "-n", "2"], capture_output=True, text=True, timeout=60)
    recs = [line for line in r.stdout.splitlines() if line.startswith("rmgr:")]
    assert len(recs) == 2 and "CHECKPOINT_SHUTDOWN" in recs[0], r.stdout + r.stderr
    assert f"prev {x >> 32:X}/{x & 0xFFFFFFFF:08X}" in recs[1], recs
    c.start()
    m = re.search(r"redo starts at ([0-9A-F]+/[0-9A-F]+)", c.log())
    assert m and lsn_int(m.group(1)) >= x, c.log()
    with c.connect() as conn:
        assert conn.execute("SELECT count(*) FROM fresh").fetchone()[0] == 1000


def test_read_only_start_is_a_hot_standby(source, started):
    _, facts = source
    c, summary = started("end", "--read-only", "--prev-lsn", "0/0")
    assert summary["prev"] == "0/0"
    assert c.wait_for_log("consistent recovery state reached", timeout=20), c.log()
    with c.connect() as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        assert snapshot(conn) == facts["snapshot"]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO tp VALUES (1)")


def test_fullbackup_matches_the_data_directory(source, workdir):
    """At the checkpoint's own LSN the relation, SLRU and map files are the source's."""
    datadir, _ = source
    tar = workdir / "full.tar"
    make_tar(datadir, tar, None, "--full")
    seen = set()
    with tarfile.open(tar) as t:
        for m in t.getmembers():
            if not m.isfile() or m.name in ("global/pg_control", "PG_VERSION") or \
                    m.name.startswith(("pg_wal/", "postgresql", "pg_hba", "pg_ident")):
                continue
            data = t.extractfile(m).read()
            assert data == (datadir / m.name).read_bytes(), m.name
            seen.add(m.name)
    # Every relation file of the source is in the archive.
    for p in list(datadir.glob("base/*/*")) + list(datadir.glob("global/*")):
        if re.fullmatch(r"\d+(_fsm|_vm|_init)?(\.\d+)?", p.name):
            assert str(p.relative_to(datadir)) in seen, p


def test_basebackup_holds_no_relation_data_and_one_record(source, workdir):
    datadir, facts = source
    tar = workdir / "bb.tar"
    summary = make_tar(datadir, tar, "end")
    x = lsn_int(summary["lsn"])
    with tarfile.open(tar) as t:
        names = t.getnames()
        t.extractall(workdir / "x")
    assert names[0] == "PG_VERSION" and names[-1] == "global/pg_control"
    assert names[-2].startswith("pg_wal/")
    for n in names:
        if n.startswith("base/") and n.count("/") == 2:
            assert n.rsplit("/", 1)[1] in ("PG_VERSION", "pg_filenode.map"), n
    assert any(n.startswith("pg_twophase/") for n in names)
    # pg_waldump, reading from the segment's start, finds exactly one record: ours.
    seg = names[-2].split("/")[1]
    r = subprocess.run([str(env.PG_BIN / "pg_waldump"), "-p", str(workdir / "x" / "pg_wal"), seg],
                       capture_output=True, text=True, timeout=60)
    recs = [line for line in r.stdout.splitlines() if line.startswith("rmgr:")]
    assert len(recs) == 1, r.stdout + r.stderr
    assert f"lsn: {x >> 32:X}/{x & 0xFFFFFFFF:08X}" in recs[0]
    assert "CHECKPOINT_SHUTDOWN" in recs[0] and f"redo {lsn_str(x)}" in recs[0]
    assert f"prev {facts['checkpoint'] >> 32:X}/{facts['checkpoint'] & 0xFFFFFFFF:08X}" in recs[0]


def test_truncated_archive_does_not_start(source, pg_user, workdir):
    datadir, _ = source
    tar = workdir / "t.tar"
    make_tar(datadir, tar, "end", "--full")
    size = tar.stat().st_size
    # Cut in the middle, and just before pg_control (its 512-byte header, 8 KiB, end marker).
    for i, cut in enumerate((size // 2, size - 1024 - 8192 - 512)):
        cut_tar = workdir / f"cut{i}.tar"
        with open(tar, "rb") as src, open(cut_tar, "wb") as dst:
            dst.write(src.read(cut))
        c = extract(cut_tar, pg_user, workdir / f"cut{i}", env.free_port())
        assert not (c.datadir / "global" / "pg_control").exists()
        r = c.start(check=False)
        assert r.returncode != 0
        c.stop(mode="immediate")


def test_failed_backup_leaves_no_file(source, workdir):
    datadir, _ = source
    out = workdir / "f.tar"
    r = kelp("debug-basebackup", "--from-datadir", datadir, "--out", out, "--lsn", "end",
             env_extra={"KELP_FAILPOINTS": "pageserver.basebackup.before-control=return"})
    assert r.returncode == 1
    assert 'failpoint "pageserver.basebackup.before-control" injected an error' in r.stderr
    assert not out.exists()


def test_malformed_inputs_give_clear_errors(source, workdir):
    datadir, facts = source
    copy = workdir / "copy"
    shutil.copytree(datadir, copy)
    out = workdir / "m.tar"
    # A corrupt relmapper file: the database is named.
    m = copy / "base" / "5" / "pg_filenode.map"
    data = bytearray(m.read_bytes())
    data[100] ^= 0x01
    m.write_bytes(bytes(data))
    r = kelp("debug-basebackup", "--from-datadir", copy, "--out", out)
    assert r.returncode == 1
    assert "relation mapping file of database 5 (tablespace 1663) is corrupt" in r.stderr
    assert "checksum does not match" in r.stderr
    assert not out.exists()
    # No control file image.
    (copy / "global" / "pg_control").unlink()
    r = kelp("debug-basebackup", "--from-datadir", copy, "--out", out, "--lsn",
             lsn_str(facts["checkpoint"]))
    assert r.returncode == 1
    assert "no control file image at the backup LSN" in r.stderr
    r = kelp("debug-basebackup", "--from-datadir", copy, "--out", out)
    assert r.returncode == 1 and "no valid control file" in r.stderr
    # A running (or crashed) server.
    (copy / "postmaster.pid").write_text("1\n")
    r = kelp("debug-basebackup", "--from-datadir", copy, "--out", out)
    assert r.returncode == 1 and "a server may be running" in r.stderr
    # A start LSN inside the checkpoint record, or not on a record boundary.
    r = kelp("debug-basebackup", "--from-datadir", datadir, "--out", out, "--lsn",
             lsn_str(facts["checkpoint"] + 8))
    assert r.returncode == 1 and "is before the end of WAL" in r.stderr
    r = kelp("debug-basebackup", "--from-datadir", datadir, "--out", out, "--lsn",
             lsn_str(facts["checkpoint"] // SEG * SEG + 2 * SEG + 4))
    assert r.returncode == 1 and "is not a valid start LSN" in r.stderr
