"""The PostgreSQL build is cached: same source and patches do nothing; a changed
patch series needs a rebuild."""
import os
import subprocess

from kelptest import env

SCRIPT = env.ROOT / "scripts" / "build-postgres.sh"


def run(*args):
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60)


def test_second_build_is_a_no_op():
    postgres = env.PG_BIN / "postgres"
    before = os.stat(postgres).st_mtime_ns
    r = run()
    assert r.returncode == 0, r.stderr
    assert "pg up to date" in r.stdout
    assert os.stat(postgres).st_mtime_ns == before


def test_check_reports_current_install():
    r = run("--check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "up to date" in r.stdout


def test_changed_patch_series_needs_rebuild(tmp_path):
    patches = tmp_path / "patches"
    patches.mkdir()
    for p in sorted((env.ROOT / "postgres" / "patches").glob("[0-9][0-9][0-9][0-9]-*.patch")):
        (patches / p.name).write_bytes(p.read_bytes())
    r = run("--check", "--patches", str(patches))
    assert r.returncode == 0, "a copy of the same series must still be current"
    (patches / "9999-test-only.patch").write_text("--- a/README\n+++ b/README\n")
    r = run("--check", "--patches", str(patches))
    assert r.returncode == 1
    assert "stale" in r.stdout


def test_bad_arguments_are_refused():
    r = run("--bogus")
    assert r.returncode == 2
    assert "unknown argument '--bogus'" in r.stderr
