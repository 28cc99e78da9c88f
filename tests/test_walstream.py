"""The WAL streaming client (src/common/walstream.c) through `kelp debug-receive-wal`,
against a real PostgreSQL primary: the bytes received equal the primary's own WAL,
feedback shows in pg_stat_replication, and failures give clear errors."""
import os
import signal
import socket
import subprocess
import time

import pytest

from kelptest import env

APP = "kelp-test-walstream"


def kelp(*args, timeout=60, env_extra=None):
    e = dict(os.environ, **(env_extra or {}))
    return subprocess.run([str(env.KELP_BIN), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e)


def kelp_bg(*args, env_extra=None):
    e = dict(os.environ, **(env_extra or {}))
    return subprocess.Popen([str(env.KELP_BIN), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)


def stop_bg(p, sig=signal.SIGTERM, timeout=20):
    """Signal a background kelp and return (exit code, stdout, stderr)."""
    if p.poll() is None:
        p.send_signal(sig)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_text(v):
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


def conninfo(c):
    return f"host=127.0.0.1 port={c.port} user=postgres"


def flush_lsn(conn):
    return conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0]


def write_rows(conn, n, tag="x"):
    conn.execute("CREATE TABLE IF NOT EXISTS t (id int, v text)")
    conn.execute("INSERT INTO t SELECT g, repeat(%s, 50) || g FROM generate_series(1, %s) g",
                 (tag, n))


def pg_wal_bytes(c, start, end, tli=1):
    """The primary's own WAL from start to end (LSN strings), read from pg_wal."""
    with c.connect() as conn:
        segsize = int(conn.execute(
            "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'").fetchone()[0])
    per_id = 0x100000000 // segsize
    lo, hi = lsn_int(start), lsn_int(end)
    out = bytearray()
    pos = lo
    while pos < hi:
        segno, off = divmod(pos, segsize)
        n = min(hi - pos, segsize - off)
        name = f"{tli:08X}{segno // per_id:08X}{segno % per_id:08X}"
        with open(c.datadir / "pg_wal" / name, "rb") as f:
            f.seek(off)
            chunk = f.read(n)
        assert len(chunk) == n, f"{name} is short"
        out += chunk
        pos += n
    return bytes(out)


def wait_feedback(c, lsn, timeout=30.0):
    """Wait until pg_stat_replication shows our client flushed up to lsn; returns the row."""
    deadline = time.monotonic() + timeout
    row = None
    with c.connect() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT state, write_lsn::text, flush_lsn::text, "
                "write_lsn >= %s::pg_lsn AND flush_lsn >= %s::pg_lsn "
                "FROM pg_stat_replication WHERE application_name = %s", (lsn, lsn, APP)
            ).fetchone()
            if row is not None and row[3]:
                return row
            time.sleep(0.1)
    pytest.fail(f"pg_stat_replication never showed flush_lsn >= {lsn}: last row {row}")


@pytest.fixture
def primary(cluster_factory):
    c = cluster_factory("primary", wal_level="replica", max_wal_senders=4,
                        wal_sender_timeout="'60s'")
    hba = c.datadir / "pg_hba.conf"
    if "host    replication     all             127.0.0.1/32" not in hba.read_text():
        with open(hba, "a") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")
    c.start()
    return c


def test_receive_range_equals_pg_wal(primary, workdir):
    with primary.connect() as conn:
        write_rows(conn, 10)
        start = flush_lsn(conn)
        write_rows(conn, 2000)
        end = flush_lsn(conn)
    out = workdir / "wal.bin"
    r = kelp("debug-receive-wal", "--source", conninfo(primary), "--start", start, "--stop", end,
             "--out", out, "--timeout", "30s", "--application-name", APP)
    assert r.returncode == 0, r.stderr
    size = lsn_int(end) - lsn_int(start)
    assert r.stdout.strip() == f"received WAL from {start} to {end} ({size} bytes) into {out}"
    data = out.read_bytes()
    assert len(data) == size > 100000
    assert data == pg_wal_bytes(primary, start, end)


def test_receive_across_segment_switch(primary, workdir):
    with primary.connect() as conn:
        write_rows(conn, 100)
        start = flush_lsn(conn)
        write_rows(conn, 100)
        conn.execute("SELECT pg_switch_wal()")
        write_rows(conn, 300)
        end = flush_lsn(conn)
    assert lsn_int(end) // (16 << 20) > lsn_int(start) // (16 << 20)
    out = workdir / "wal.bin"
    r = kelp("debug-receive-wal", "--source", conninfo(primary), "--start", start, "--stop", end,
             "--out", out, "--timeout", "30s")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pg_wal_bytes(primary, start, end)


def test_status_feedback_in_pg_stat_replication(primary, workdir):
    with primary.connect() as conn:
        start = flush_lsn(conn)
    out = workdir / "wal.bin"
    p = kelp_bg("debug-receive-wal", "--source", conninfo(primary), "--start", start,
                "--out", out, "--timeout", "60s", "--status-interval", "200ms",
                "--application-name", APP)
    try:
        with primary.connect() as conn:
            write_rows(conn, 500)
            end = flush_lsn(conn)
        row = wait_feedback(primary, end)
        assert row[0] == "streaming"
        # It reports no more than it has: nothing beyond the primary's flush position.
        with primary.connect() as conn:
            now = flush_lsn(conn)
        assert lsn_int(row[2]) <= lsn_int(now) and lsn_int(row[2]) <= lsn_int(row[1])
    finally:
        code, stdout, stderr = stop_bg(p)
    assert code == 0, stderr
    assert stdout.startswith(f"received WAL from {start} to ")
    got_end = stdout.split()[5]
    assert lsn_int(got_end) >= lsn_int(end)
    data = out.read_bytes()
    assert len(data) == lsn_int(got_end) - lsn_int(start)
    assert data == pg_wal_bytes(primary, start, got_end)


def test_wrong_system_id_is_refused(primary, workdir):
    with primary.connect() as conn:
        sysid = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
        start = flush_lsn(conn)
    wrong = sysid + 1 if sysid < 2**64 - 1 else 1
    r = kelp("debug-receive-wal", "--source", conninfo(primary), "--start", start,
             "--out", workdir / "wal.bin", "--system-id", wrong, "--timeout", "10s")
    assert r.returncode == 1
    assert f"WAL source has system id {sysid}, expected {wrong}" in r.stderr
    # The right id is accepted.
    r = kelp("debug-receive-wal", "--source", conninfo(primary), "--start", start,
             "--out", workdir / "wal.bin", "--system-id", sysid, "--timeout", "1s")
    assert r.returncode == 0, r.stderr


def test_unreachable_source_fails_within_the_timeout(workdir):
    port = env.free_port()
    t0 = time.monotonic()
    r = kelp("debug-receive-wal", "--source", f"host=127.0.0.1 port={port}", "--start", "0/1000000",
             "--out", workdir / "wal.bin", "--timeout", "5s")
    assert r.returncode == 1
    assert f"could not connect to the WAL source at 127.0.0.1:{port}" in r.stderr
    assert time.monotonic() - t0 < 5

    # With --reconnect it keeps trying until the timeout, then reports why.
    t0 = time.monotonic()
    r = kelp("debug-receive-wal", "--source", f"host=127.0.0.1 port={port}", "--start", "0/1000000",
             "--out", workdir / "wal.bin", "--timeout", "2s", "--reconnect")
    elapsed = time.monotonic() - t0
    assert r.returncode == 1
    assert "could not connect to the WAL source" in r.stderr
    assert "reconnecting in" in r.stderr
    assert 1.5 < elapsed < 6

    # A server that accepts but never answers: the timeout ends the wait.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        port = s.getsockname()[1]
        t0 = time.monotonic()
        r = kelp("debug-receive-wal", "--source", f"host=127.0.0.1 port={port}",
                 "--start", "0/1000000", "--out", workdir / "wal.bin", "--timeout", "2s")
        elapsed = time.monotonic() - t0
    assert r.returncode == 1
    assert "timed out after 2000 ms connecting to the WAL source at 127.0.0.1" in r.stderr
    assert 1.5 < elapsed < 6


def test_start_ahead_of_the_server_carries_its_message(primary, workdir):
    with primary.connect() as conn:
        ahead = lsn_text(lsn_int(flush_lsn(conn)) + (64 << 20))
    r = kelp("debug-receive-wal", "--source", conninfo(primary), "--start", ahead,
             "--out", workdir / "wal.bin", "--timeout", "10s")
    assert r.returncode == 1
    # PostgreSQL enters copy mode first and then refuses: the server's own words reach us.
    assert f"requested starting point {ahead} is ahead of the WAL flush position" in r.stderr


def test_restart_without_reconnect_is_a_clean_error(primary, workdir):
    with primary.connect() as conn:
        start = flush_lsn(conn)
    far = lsn_text(lsn_int(start) + (256 << 20))
    p = kelp_bg("debug-receive-wal", "--source", conninfo(primary), "--start", start,
                "--stop", far, "--out", workdir / "wal.bin", "--timeout", "60s",
                "--application-name", APP)
    try:
        with primary.connect() as conn:
            write_rows(conn, 200)
            end = flush_lsn(conn)
        wait_feedback(primary, end)
        t0 = time.monotonic()
        primary.stop(mode="fast")
        code, _, stderr = stop_bg(p, sig=0, timeout=30)  # no signal: it must exit on its own
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert code == 1
    assert time.monotonic() - t0 < 30
    assert ("the WAL source ended the stream at" in stderr
            or "lost the connection to the WAL source" in stderr), stderr
    assert f"holds the WAL from {start} to" in stderr


def test_restart_mid_stream_with_reconnect(primary, workdir):
    with primary.connect() as conn:
        write_rows(conn, 10)
        start = flush_lsn(conn)
    out = workdir / "wal.bin"
    p = kelp_bg("debug-receive-wal", "--source", conninfo(primary), "--start", start,
                "--out", out, "--timeout", "90s", "--status-interval", "200ms", "--reconnect",
                "--application-name", APP)
    try:
        with primary.connect() as conn:
            write_rows(conn, 300, "a")
            end1 = flush_lsn(conn)
        wait_feedback(primary, end1)
        primary.stop(mode="fast")
        primary.start()
        with primary.connect() as conn:
            write_rows(conn, 300, "b")
            end2 = flush_lsn(conn)
        assert lsn_int(end2) > lsn_int(end1)
        wait_feedback(primary, end2, timeout=40)
    finally:
        code, stdout, stderr = stop_bg(p)
    assert code == 0, stderr
    assert "reconnecting in" in stderr
    got_end = stdout.split()[5]
    assert lsn_int(got_end) >= lsn_int(end2)
    assert out.read_bytes() == pg_wal_bytes(primary, start, got_end)


def test_broken_stream_resumes_from_the_flushed_position(primary, workdir):
    """A failpoint breaks the stream at its first XLogData; --reconnect resumes exactly."""
    with primary.connect() as conn:
        start = flush_lsn(conn)
        write_rows(conn, 500)
        end = flush_lsn(conn)
    out = workdir / "wal.bin"
    fp = {"KELP_FAILPOINTS": "common.walstream.before-deliver=2*return"}
    r = kelp("debug-receive-wal", "--source", conninfo(primary), "--start", start, "--stop", end,
             "--out", out, "--timeout", "30s", env_extra=fp)
    assert r.returncode == 1
    assert 'failpoint "common.walstream.before-deliver" injected an error' in r.stderr
    r = kelp("debug-receive-wal", "--source", conninfo(primary), "--start", start, "--stop", end,
             "--out", out, "--timeout", "30s", "--reconnect", env_extra=fp)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("reconnecting in") == 2
    assert out.read_bytes() == pg_wal_bytes(primary, start, end)


def test_bad_flags(workdir):
    r = kelp("debug-receive-wal", "--start", "0/1", "--out", workdir / "x")
    assert r.returncode == 2 and "source" in r.stderr
    r = kelp("debug-receive-wal", "--source", "host=127.0.0.1", "--start", "0/10", "--stop", "0/10",
             "--out", workdir / "x")
    assert r.returncode == 1 and "--stop 0/10 is not after --start 0/10" in r.stderr
    r = kelp("debug-receive-wal", "--source", "host=127.0.0.1", "--start", "zz", "--out",
             workdir / "x")
    assert r.returncode == 1 and '"zz"' in r.stderr
    r = kelp("debug-receive-wal", "--source", "host=127.0.0.1", "--start", "0/1", "--out",
             workdir / "x", "--system-id", "12ab")
    assert r.returncode == 1 and 'invalid --system-id "12ab"' in r.stderr
    r = kelp("debug-receive-wal", "--source", "host=127.0.0.1 bogus=2", "--start", "0/1", "--out",
             workdir / "x")
    assert r.returncode == 1 and "invalid connection string for the WAL source" in r.stderr
    assert 'invalid connection option "bogus"' in r.stderr
    r = kelp("--help")
    assert "debug-receive-wal" in r.stdout
