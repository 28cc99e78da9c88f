"""The WAL-redo helper pool rebuilds pages from WAL alone, exactly as PostgreSQL
wrote them.

A throwaway cluster runs a workload (heap with inserts, HOT and non-HOT updates,
deletes, VACUUM and FREEZE; btree and GIN indexes; visibility-map bits set and
cleared), checkpoints and stops, so its data files are the truth. `kelp
debug-redo` then rebuilds pages of those relations from the WAL alone (the
last full-page image or init record of each block and every record after it)
through the pool of PostgreSQL WAL-redo helpers, and each page is compared
with the data file after masking what redo may legitimately leave different
(our own masking, after PostgreSQL's *_mask functions).
"""
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from kelptest import env
from kelptest.pgcluster import Cluster

PAGE = 8192
RELSEG_BLOCKS = 131072


# ---- CRC-32C for hand-made WAL records -------------------------------------------

def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def xlog_record(rmid, info, body):
    """An XLogRecord (PostgreSQL 15, little-endian) with a correct CRC."""
    tot = 24 + len(body)
    head = struct.pack("<IIQBBxx", tot, 0, 0, info, rmid)
    crc = crc32c(head, crc32c(body))
    return head + struct.pack("<I", crc) + body


def garbage_fpi_record(spc, db, rel, fork, blk):
    """XLOG_FPI of the block whose image claims pglz compression but is noise:
    it decodes, and redo fails with an ERROR (the image cannot be restored)."""
    image = bytes((i * 37 + 11) & 0xFF for i in range(64))
    body = struct.pack("<BBH", 0, fork | 0x10, 0)            # block 0, HAS_IMAGE, no data
    body += struct.pack("<HHB", len(image), 0, 0x02 | 0x04)  # APPLY | COMPRESS_PGLZ
    body += struct.pack("<IIII", spc, db, rel, blk) + image
    assert crc32c(b"123456789") == 0xE3069283
    return xlog_record(0, 0xB0, body)                         # RM_XLOG_ID, XLOG_FPI


# ---- masking (after PostgreSQL's bufmask.c, heap_mask, btree_mask, gin_mask) -----

def _u16(p, o):
    return struct.unpack_from("<H", p, o)[0]


def _u32(p, o):
    return struct.unpack_from("<I", p, o)[0]


def _mask_header(p):
    """Checksum, prune xid, and the hint flags PD_HAS_FREE_LINES, PD_PAGE_FULL,
    PD_ALL_VISIBLE (redo may legitimately not set the last one)."""
    struct.pack_into("<H", p, 8, 0)
    struct.pack_into("<H", p, 10, _u16(p, 10) & ~0x7)
    struct.pack_into("<I", p, 20, 0)


def _mask_unused(p):
    lower, upper, special = _u16(p, 12), _u16(p, 14), _u16(p, 16)
    if 24 <= lower <= upper <= special <= PAGE:
        p[lower:upper] = bytes(upper - lower)


def _line_pointers(p):
    lower = _u16(p, 12)
    for off in range(24, min(lower, PAGE) - 3, 4):
        lp = _u32(p, off)
        yield off, lp & 0x7FFF, (lp >> 15) & 3, lp >> 17


def mask_heap(page):
    p = bytearray(page)
    _mask_header(p)
    _mask_unused(p)
    for _, lp_off, flags, length in _line_pointers(p):
        if flags == 1 and lp_off + 23 <= PAGE:           # LP_NORMAL
            infomask = _u16(p, lp_off + 20)
            if infomask & 0x0300 != 0x0300:              # xmin not frozen: all hint bits
                infomask &= ~0xFFF0
            else:                                         # frozen: xmax hint bits
                infomask &= ~(0x0400 | 0x0800)
            struct.pack_into("<H", p, lp_off + 20, infomask)
            struct.pack_into("<I", p, lp_off + 8, 0)     # t_cid: redo writes FirstCommandId
        if length and lp_off + length <= PAGE:           # padding after the tuple
            pad = (-length) % 8
            end = min(lp_off + length + pad, PAGE)
            p[lp_off + length:end] = bytes(end - lp_off - length)
    return bytes(p)


def mask_btree(page):
    p = bytearray(page)
    _mask_header(p)
    _mask_unused(p)
    special = _u16(p, 16)
    if special + 16 <= PAGE:
        flags = _u16(p, special + 12)
        if flags & 0x1:                                   # leaf: LP_DEAD set without WAL
            for off, _, lp_flags, _ in _line_pointers(p):
                if lp_flags != 0:
                    struct.pack_into("<I", p, off, _u32(p, off) & ~(3 << 15))
        flags &= ~((1 << 6) | (1 << 5))                  # BTP_HAS_GARBAGE, BTP_SPLIT_END
        struct.pack_into("<HH", p, special + 12, flags, 0)  # and the cycle id
    return bytes(p)


def mask_gin(page):
    p = bytearray(page)
    _mask_header(p)
    special = _u16(p, 16)
    if special + 8 <= PAGE and _u16(p, special + 6) & (1 << 2):  # GIN_DELETED
        p[24:] = bytes(PAGE - 24)
        struct.pack_into("<HH", p, 12, 0, 0)
    elif _u16(p, 12) > 24:
        _mask_unused(p)
    return bytes(p)


def mask_vm(page):
    p = bytearray(page)
    struct.pack_into("<H", p, 8, 0)
    return bytes(p)


MASKS = {"heap": mask_heap, "btree": mask_btree, "gin": mask_gin, "vm": mask_vm}


def describe_diff(a, b):
    diffs = [i for i in range(PAGE) if a[i] != b[i]]
    return f"{len(diffs)} bytes differ, first at offsets {diffs[:12]}"


# ---- the driver ---------------------------------------------------------------

class Redo:
    """`kelp debug-redo` as a subprocess, one command line at a time."""

    def __init__(self, walcopy, start, scratch, failpoints=None):
        environ = dict(os.environ)
        if failpoints:
            environ["KELP_FAILPOINTS"] = failpoints
        self.proc = subprocess.Popen(
            [str(env.KELP_BIN), "debug-redo", "--wal-dir", walcopy, "--start", start,
             "--pg-bindir", env.PG_BIN, "--scratch", scratch, "--helpers", "2", "--vm",
             "--os-user", env.OS_USER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
            env=environ)
        self.buf = b""
        assert self.readline(120) == "ready", self.proc.stderr.read().decode()

    def readline(self, timeout=60):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "kelp debug-redo did not answer in time"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
                assert chunk, "kelp debug-redo exited: " + self.proc.stderr.read().decode()
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())

    def command(self, line):
        self.send(line)
        return self.readline()

    def children(self):
        """Pids of the driver's child processes (its helpers), from /proc."""
        kids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.proc.pid:
                kids.append(int(stat.parent.name))
        return kids

    def lines_until_end(self, line):
        out = [self.command(line)]
        while out[-1] != "end":
            out.append(self.readline())
        return out[:-1]

    def redo(self, spc, db, rel, fork, blk, extra=b""):
        args = f"redo {spc} {db} {rel} {fork} {blk}" + (" " + extra.hex() if extra else "")
        reply = self.command(args)
        if reply.startswith("page "):
            _, nrec, hexpage = reply.split(" ", 2)
            return int(nrec), bytes.fromhex(hexpage)
        assert reply.startswith("error "), reply
        return None, reply[len("error "):]

    def prefix(self, spc, db, rel, fork, blk, n):
        reply = self.command(f"prefix {spc} {db} {rel} {fork} {blk} {n}")
        assert reply.startswith("page "), reply
        return bytes.fromhex(reply.split(" ", 2)[2])

    def metrics(self):
        out = {}
        for line in self.lines_until_end("metrics"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
        return out

    def close(self):
        try:
            self.proc.stdin.write(b"quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def workload():
    """A cluster that ran the workload and stopped cleanly: its data directory,
    WAL start LSN, database oid and the relfilenodes of each kind."""
    user = env.postgres_user()
    base = Path(tempfile.mkdtemp(prefix="kelp-redo-"))
    user.give(base)
    c = Cluster(base / "pg", user).initdb(
        wal_level="replica", full_page_writes="on", wal_compression="zstd",
        wal_keep_size="'1GB'", max_wal_size="'1GB'", autovacuum="off")
    c.start()
    try:
        with c.connect() as conn:
            q = conn.execute
            start = q("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
            q("CREATE TABLE t (id int PRIMARY KEY, v text, tags int[], n int) "
              "WITH (fillfactor = 90)")
            q("CREATE INDEX t_v ON t (v)")
            q("CREATE INDEX t_tags ON t USING gin (tags) WITH (fastupdate = off)")
            q("INSERT INTO t SELECT g, md5(g::text), ARRAY[g % 50, g % 97, g % 13], 0 "
              "FROM generate_series(1, 20000) g")
            q("CHECKPOINT")  # later changes start with full-page images
            q("UPDATE t SET n = n + 1 WHERE id % 5 = 0")                 # HOT
            q("UPDATE t SET v = md5(v) WHERE id % 17 = 0")               # non-HOT
            q("DELETE FROM t WHERE id % 11 = 0")
            q("VACUUM t")                                                # prune, VM bits
            q("INSERT INTO t SELECT g, md5(g::text), ARRAY[g % 7], 1 "
              "FROM generate_series(20001, 24000) g")
            q("CHECKPOINT")
            q("UPDATE t SET n = n + 1, tags = tags || 1000 WHERE id % 23 = 0")  # clears VM bits
            q("DELETE FROM t WHERE id BETWEEN 5000 AND 5400")
            q("VACUUM (FREEZE) t")
            q("UPDATE t SET n = n + 2 WHERE id % 31 = 0")
            q("SELECT count(*) FROM t WHERE v > 'a'")                    # hint bits, kills
            db = q("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
            kinds = {}
            for name, kind in [("t", "heap"), ("t_pkey", "btree"), ("t_v", "btree"),
                               ("t_tags", "gin")]:
                kinds[q(f"SELECT pg_relation_filenode('{name}')").fetchone()[0]] = kind
            q("CHECKPOINT")
    finally:
        c.stop()
    yield c.datadir, str(start), db, kinds, base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def walcopy(workload):
    """A copy of the workload's WAL, and a directory the helper user may use."""
    datadir, _, _, _, base = workload
    copy = base / "walcopy"
    shutil.copytree(datadir / "pg_wal", copy)
    scratch_parent = base / "redo"
    scratch_parent.mkdir()
    env.postgres_user().give(scratch_parent)
    return copy, scratch_parent


@pytest.fixture(scope="module")
def redo(workload, walcopy):
    r = Redo(walcopy[0], workload[1], walcopy[1] / "scratch")
    yield r
    r.close()


def data_file_page(datadir, db, rel, fork, blk):
    suffix = {0: "", 1: "_fsm", 2: "_vm", 3: "_init"}[fork]
    seg = blk // RELSEG_BLOCKS
    path = datadir / "base" / str(db) / f"{rel}{suffix}{'.' + str(seg) if seg else ''}"
    try:
        with open(path, "rb") as f:
            f.seek((blk % RELSEG_BLOCKS) * PAGE)
            page = f.read(PAGE)
    except FileNotFoundError:
        return None
    return page if len(page) == PAGE else None


def test_pages_rebuilt_from_wal_match_data_files(workload, redo):
    datadir, _, db, kinds, _ = workload
    blocks = []
    for line in redo.lines_until_end("blocks"):
        _, spc, bdb, rel, fork, blk, nrec = line.split()
        spc, bdb, rel, fork, blk, nrec = map(int, (spc, bdb, rel, fork, blk, nrec))
        if bdb != db or rel not in kinds or fork not in (0, 2):
            continue
        blocks.append((spc, rel, fork, blk, nrec))
    compared, mismatches, records, by_kind, chained = 0, [], 0, {}, 0
    controls, control_differs = 0, 0
    for spc, rel, fork, blk, _ in sorted(blocks):
        kind = "vm" if fork == 2 else kinds[rel]
        truth = data_file_page(datadir, db, rel, fork, blk)
        if truth is None:
            continue  # truncated away
        nrec, page = redo.redo(spc, db, rel, fork, blk)
        assert nrec is not None, f"redo of {rel} fork {fork} block {blk} failed: {page}"
        compared += 1
        records += nrec
        chained += nrec > 1
        by_kind[kind] = by_kind.get(kind, 0) + 1
        mask = MASKS[kind]
        if mask(page) != mask(truth):
            mismatches.append(f"{kind} rel {rel} fork {fork} block {blk} ({nrec} records): "
                              f"{describe_diff(mask(page), mask(truth))}")
        if nrec > 1 and compared % 5 == 0:
            # Negative control: without the last record the page must (nearly always) differ,
            # so the comparison above has teeth.
            controls += 1
            short = redo.prefix(spc, db, rel, fork, blk, nrec - 1)
            control_differs += mask(short) != mask(truth)
    print(f"\nwalredo: compared {compared} pages {by_kind}, {records} records replayed, "
          f"{chained} pages with records after their image; {len(mismatches)} mismatches; "
          f"negative control: {control_differs} of {controls} pages differ without their "
          f"last record")
    assert not mismatches, "\n".join(mismatches[:20])
    assert controls >= 50 and control_differs >= 0.8 * controls
    assert compared >= 300
    assert by_kind.get("heap", 0) >= 100 and by_kind.get("btree", 0) >= 50
    assert by_kind.get("gin", 0) >= 5 and by_kind.get("vm", 0) >= 1
    assert chained >= 100, "the sample should replay records on top of images"


def test_redo_error_is_reported_and_pool_keeps_working(workload, redo):
    _, _, db, kinds, _ = workload
    heap = next(rel for rel, kind in kinds.items() if kind == "heap")
    before = redo.metrics()
    bad = garbage_fpi_record(1663, db, heap, 0, 0)
    nrec, msg = redo.redo(1663, db, heap, 0, 0, extra=bad)
    assert nrec is None
    assert "WAL redo failed at record" in msg and "decompress image" in msg, msg

    # A flipped byte is caught by the record CRC check in the helper.
    corrupt = bytearray(bad)
    corrupt[-1] ^= 0xFF
    nrec, msg = redo.redo(1663, db, heap, 0, 0, extra=bytes(corrupt))
    assert nrec is None and "incorrect checksum in WAL record" in msg, msg

    # A block reference that runs past the record: DecodeXLogRecord refuses it.
    truncated = xlog_record(0, 0xB0, struct.pack("<BBH", 0, 0x20, 500))
    nrec, msg = redo.redo(1663, db, heap, 0, 0, extra=truncated)
    assert nrec is None and "could not decode WAL record" in msg, msg

    nrec, page = redo.redo(1663, db, heap, 0, 0)
    assert nrec is not None and len(page) == PAGE
    after = redo.metrics()
    redo_errors = 'kelp_pageserver_walredo_errors_total{reason="redo"}'
    assert after[redo_errors] - before.get(redo_errors, 0) >= 3
    assert after["kelp_pageserver_walredo_restarts_total"] > \
        before.get("kelp_pageserver_walredo_restarts_total", 0)


def test_killed_helper_is_restarted_transparently(workload, redo):
    _, _, db, kinds, _ = workload
    heap = next(rel for rel, kind in kinds.items() if kind == "heap")
    nrec, first = redo.redo(1663, db, heap, 0, 1)
    assert nrec is not None
    pids = [int(p) for p in redo.command("pids").split()[1:] if int(p) > 0]
    assert pids
    before = redo.metrics()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for blk in (1, 2, 3):
        nrec, page = redo.redo(1663, db, heap, 0, blk)
        assert nrec is not None, page
        if blk == 1:
            assert page == first
    after = redo.metrics()
    assert after["kelp_pageserver_walredo_restarts_total"] >= \
        before.get("kelp_pageserver_walredo_restarts_total", 0) + 1
    assert after['kelp_pageserver_walredo_errors_total{reason="crash"}'] >= 1


def test_helper_killed_during_a_request(workload, walcopy):
    """A helper killed with SIGKILL while a request is in flight (held just
    before it is sent by a failpoint) is replaced and the request retried."""
    _, start, db, kinds, _ = workload
    heap = next(rel for rel, kind in kinds.items() if kind == "heap")
    r = Redo(walcopy[0], start, walcopy[1] / "scratch-kill",
             failpoints="pageserver.walredo.before-send=1*sleep(3000)")
    try:
        r.send(f"redo 1663 {db} {heap} 0 4")
        deadline = time.monotonic() + 10
        while not r.children() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # let it finish starting (HELLO); the request is still held
        victims = r.children()
        assert len(victims) == 1, victims
        os.kill(victims[0], signal.SIGKILL)
        reply = r.readline()
        assert reply.startswith("page "), reply
        m = r.metrics()
        assert m["kelp_pageserver_walredo_restarts_total"] == 1
        assert m['kelp_pageserver_walredo_errors_total{reason="crash"}'] == 1
        assert m["kelp_pageserver_walredo_helper_starts_total"] == 2
        assert victims[0] not in r.children()
    finally:
        r.close()
