"""pytest setup for Kelp's integration tests (run with /usr/bin/python3 -m pytest tests)."""
import shutil
import tempfile
from pathlib import Path

import pytest

from kelptest import env
from kelptest.pgcluster import Cluster


@pytest.fixture(scope="session")
def pg_user():
    """The OS user that runs PostgreSQL (created when we are root)."""
    return env.postgres_user()


@pytest.fixture
def workdir(pg_user):
    """A scratch directory the PostgreSQL user can use; removed after the test."""
    d = Path(tempfile.mkdtemp(prefix="kelp-test-"))
    pg_user.give(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cluster_factory(workdir, pg_user):
    """Make PostgreSQL clusters from build/pg; all are stopped at the end."""
    made = []

    def make(name="pg", **conf):
        c = Cluster(workdir / name, pg_user).initdb(**conf)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop(mode="immediate")


def pytest_terminal_summary(terminalreporter):
    """End with the project's closing line: N passed, N failed[, N skipped]."""
    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    skipped = len(stats.get("skipped", []))
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    terminalreporter.write_line(line)
