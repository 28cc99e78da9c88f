"""The pageserver's storage path end to end: WAL files decoded, ingested into a
real timeline that flushes layer files, reopened as after a restart, and every
page of the workload's relations rebuilt (native redo + WAL-redo helpers)
equals the data files of the cluster that wrote the WAL, after masking what
redo may legitimately change."""
import re
import subprocess

import pytest

from kelptest import env
from test_walredo import MASKS, PAGE, data_file_page, walcopy, workload  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def rebuilt(workload, walcopy):  # noqa: F811
    datadir, start, _, _, base = workload
    copy, scratch_parent = walcopy
    out = base / "rebuilt"
    r = subprocess.run(
        [str(env.KELP_BIN), "debug-reconstruct", "--wal-dir", copy, "--start", start,
         "--timeline-dir", base / "timeline", "--out", out, "--pg-bindir", env.PG_BIN,
         "--scratch", scratch_parent / "recon", "--checkpoint-distance", "256kB"],
        capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return out, r.stdout, base / "timeline"


def test_timeline_flushed_several_layer_files(rebuilt):
    _, _, tl = rebuilt
    layers = [p for p in tl.iterdir() if "__" in p.name]
    assert len(layers) >= 3, sorted(p.name for p in tl.iterdir())


def test_every_page_matches_the_data_files(workload, rebuilt):  # noqa: F811
    datadir, _, db, kinds, _ = workload
    out, stdout, _ = rebuilt
    compared = mismatched = 0
    for rel, kind in kinds.items():
        for fork, mask in ((0, MASKS[kind]), (2, MASKS["vm"])):
            m = re.search(rf"^fork 1663/{db}/{rel} fork={fork} nblocks=(\d+) "
                          rf"unrebuildable=(\d+)$", stdout, re.M)
            if fork == 2 and (kind != "heap" or m is None):
                continue
            assert m, (rel, fork, stdout)
            assert m.group(2) == "0", "the whole history is in the WAL"
            ours = (out / f"1663_{db}_{rel}_{fork}").read_bytes()
            for blk in range(int(m.group(1))):
                theirs = data_file_page(datadir, db, rel, fork, blk)
                page = ours[blk * PAGE:(blk + 1) * PAGE]
                if theirs is None:
                    assert page == bytes(PAGE), (rel, fork, blk)
                    continue
                compared += 1
                if mask(page) != mask(theirs):
                    mismatched += 1
    print(f"pages compared: {compared}, mismatches: {mismatched}")
    assert compared > 500
    assert mismatched == 0
