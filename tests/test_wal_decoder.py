"""The pageserver's WAL decoder (PostgreSQL's own xlogreader, fed as a stream)
agrees with pg_waldump on every record of a real workload."""
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from kelptest import env
from kelptest.pgcluster import Cluster


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def kelp(*args):
    return subprocess.run([str(env.KELP_BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


WALDUMP_RE = re.compile(r"rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+), "
                        r"lsn: ([0-9A-F]+/[0-9A-F]+)")
BLKREF_RE = re.compile(r"blkref #(\d+): rel (\d+)/(\d+)/(\d+)(?: fork (\w+))? blk (\d+)( FPW)?")
FORKS = {None: 0, "": 0, "main": 0, "fsm": 1, "vm": 2, "init": 3}


def waldump(walcopy, start, end):
    out = subprocess.run([env.PG_BIN / "pg_waldump", "-p", walcopy, "-s", start, "-e", end],
                         capture_output=True, text=True, timeout=300)
    records = []
    for line in out.stdout.splitlines():
        m = WALDUMP_RE.search(line)
        if not m:
            continue
        blocks = sorted((int(b[0]), int(b[1]), int(b[2]), int(b[3]), FORKS[b[4]], int(b[5]),
                         bool(b[6])) for b in BLKREF_RE.findall(line))
        records.append({"lsn": lsn_int(m.group(5)), "rmgr": m.group(1), "len": int(m.group(3)),
                        "xid": int(m.group(4)), "blocks": blocks})
    return records


KELP_RE = re.compile(r"lsn=(\S+) end=(\S+) rmgr=(\S+) info=\S+ xid=(\d+) len=(\d+) main=\d+ "
                     r"blocks=\d+(.*)")
KBLK_RE = re.compile(r"\[#(\d+) (\d+)/(\d+)/(\d+) fork=(\d+) blk=(\d+)((?: \w+)*)\]")


def decode(walcopy, start, end, chunk):
    r = kelp("debug-decode-wal", "--wal-dir", walcopy, "--start", start, "--end", end,
             "--chunk", chunk)
    assert r.returncode == 0, r.stderr
    records = []
    for line in r.stdout.splitlines():
        m = KELP_RE.match(line)
        assert m, line
        blocks = sorted((int(b[0]), int(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]),
                         "image" in b[6].split()) for b in KBLK_RE.findall(m.group(6)))
        records.append({"lsn": lsn_int(m.group(1)), "rmgr": m.group(3), "len": int(m.group(5)),
                        "xid": int(m.group(4)), "blocks": blocks})
    return records


@pytest.fixture(scope="module")
def workload_wal(tmp_path_factory):
    """A primary that ran a mixed workload; returns (wal copy dir, start, mid, end).
    Built once for the module: the tests only read copies of its WAL."""
    user = env.postgres_user()
    base = Path(tempfile.mkdtemp(prefix="kelp-wal-"))
    user.give(base)
    c = Cluster(base / "pg", user).initdb(wal_level="replica", full_page_writes="on",
                                          wal_compression="zstd", wal_keep_size="'1GB'")
    c.start()
    with c.connect() as conn:
        start = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, repeat(md5(g::text), 5) FROM generate_series(1, 20000) g")
        mid = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        conn.execute("CHECKPOINT")  # the next changes carry full-page images
        conn.execute("UPDATE t SET v = 'x' WHERE id % 7 = 0")
        conn.execute("DELETE FROM t WHERE id % 11 = 0")
        conn.execute("CREATE INDEX ON t (v)")
        conn.execute("VACUUM t")
        # A record bigger than the reader's default decode buffer.
        conn.execute("SELECT pg_logical_emit_message(true, 'kelp', repeat('y', 300000))")
        # A record of 20 MB: it spans a whole segment, so it continues onto a
        # segment's first page (the long page header).
        conn.execute("SELECT pg_logical_emit_message(true, 'kelp', "
                     "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 640000) g))")
        conn.execute("CREATE DATABASE other")
        end = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        conn.execute("SELECT pg_switch_wal()")
    c.stop()
    walcopy = tmp_path_factory.mktemp("wal") / "walcopy"
    shutil.copytree(c.datadir / "pg_wal", walcopy)
    shutil.rmtree(base, ignore_errors=True)
    return walcopy, str(start), str(mid), str(end)


@pytest.mark.parametrize("chunk", ["8kB", "1000", "25", "8", "1MB"])
def test_decoder_matches_pg_waldump(workload_wal, chunk):
    walcopy, start, _, end = workload_wal
    ours = decode(walcopy, start, end, chunk)
    theirs = waldump(walcopy, start, end)
    assert len(theirs) > 1000, "the workload should produce plenty of WAL"
    assert sum(1 for r in theirs if any(b[6] for b in r["blocks"])) > 10, "and full-page images"
    assert any(r["len"] > 300000 for r in theirs)
    assert any(r["len"] > 20000000 for r in theirs)
    assert ours == theirs


def test_decoder_starts_mid_page(workload_wal):
    """A stream that begins at a record in the middle of a page (as a timeline
    starting at a compute's LSN does) decodes the same records from there."""
    walcopy, _, mid, end = workload_wal
    assert lsn_int(mid) % 8192 != 0
    ours = decode(walcopy, mid, end, "3000")
    theirs = waldump(walcopy, mid, end)
    assert ours and ours == theirs


def test_decoder_reports_corrupt_wal(workload_wal, tmp_path):
    orig, start, _, end = workload_wal
    walcopy = tmp_path / "corrupt"
    shutil.copytree(orig, walcopy)
    lsn = lsn_int(start)
    seg = sorted(p for p in walcopy.iterdir() if len(p.name) == 24)[0]
    segno = int(seg.name[16:], 16) + (int(seg.name[8:16], 16) << 8)
    # Flip a byte a few pages after the start: inside some record.
    off = (lsn - segno * 16 * 1024 * 1024) + 5 * 8192 + 100
    data = bytearray(seg.read_bytes())
    data[off] ^= 0xFF
    seg.write_bytes(bytes(data))
    r = kelp("debug-decode-wal", "--wal-dir", walcopy, "--start", start, "--end", end)
    assert r.returncode == 1
    assert "invalid WAL at" in r.stderr
