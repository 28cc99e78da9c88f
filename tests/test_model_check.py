"""The safekeeper protocol model (src/safekeeper/model) passes the quick
exhaustive check, and every deliberately broken variant is rejected on the
property it breaks, so the properties are shown to have teeth."""
import re
import subprocess

import pytest

from kelptest import env

SCRIPT = env.ROOT / "scripts" / "model-check.sh"
MODEL_DIR = env.ROOT / "src" / "safekeeper" / "model"

# variant -> the property that, checked on its own, must catch it
BROKEN = {
    "VOTE_NOT_DURABLE": "a",
    "CONTROL_NOT_DURABLE": "b",
    "NO_FENCE": "a",
    "NO_TRUNCATE": "a",
    "COMMIT_ANY_TERM": "c",
    "COMMIT_BEFORE_TERM_START": "c",
}
# reachability witnesses: each must be refuted (the step does happen)
WITNESSES = {
    "ACK_AFTER_TAKEOVER": "witness_ack_after_takeover",
    "TRUNCATE": "witness_truncate",
    "RECOVER": "witness_recover",
    "LEARN_OLD_RECORD": "witness_learn_old_record",
}
PROPERTY_FLAG = {
    "a": "prop_a_commit_survives",
    "b": "prop_b_one_compute_commits_per_term",
    "c": "prop_c_learner_reads_committed",
}


def run(*args, timeout=300):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=env.ROOT)


def states_explored(out):
    m = re.search(r"model-check: ([0-9.e+]+) states explored, (\d+) errors", out)
    assert m, out
    return float(m.group(1)), int(m.group(2))


def leftovers():
    """Verifier files that must never be left in the repository."""
    names = ("pan", "pan.c", "pan.h", "pan.m", "pan.b", "pan.t", "pan.p")
    found = [p for p in MODEL_DIR.iterdir() if p.name in names or p.suffix == ".trail"]
    found += [env.ROOT / n for n in names if (env.ROOT / n).exists()]
    found += list(env.ROOT.glob("*.trail"))
    return found


def test_quick_check_passes():
    r = run("--quick", timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "model-check: OK" in out
    states, errors = states_explored(out)
    assert errors == 0
    # The quick bounds explore millions of states; a tiny number would mean
    # the model lost its behaviour (e.g. a guard that is never true).
    assert states > 1e6, out
    assert "assertion violated" not in out
    assert not leftovers()


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_broken_variant_is_caught(variant):
    prop = BROKEN[variant]
    r = run("--quick", "--broken", variant, "--only", prop)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "model-check: FAILED" in out
    assert f"assertion violated {PROPERTY_FLAG[prop]}" in out, out
    _, errors = states_explored(out)
    assert errors >= 1
    # the counterexample is replayed as protocol steps
    assert "counterexample" in out
    assert "MODEL choose" in out, out
    assert not leftovers()


@pytest.mark.parametrize("witness", sorted(WITNESSES))
def test_model_reaches_witness(witness):
    """The properties are not vacuous: commits after a takeover, truncation,
    recovery and learners reading old-term records all happen."""
    r = run("--quick", "--witness", witness)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"assertion violated {WITNESSES[witness]}" in out, out
    assert "prop_" not in out.split("counterexample")[0], out
    assert not leftovers()


def test_every_variant_and_witness_has_a_test():
    r = run("--list-broken")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(BROKEN)
    r = run("--list-witnesses")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(WITNESSES)


def test_properties_are_all_covered():
    assert set(BROKEN.values()) == set(PROPERTY_FLAG)


@pytest.mark.parametrize("args,message", [
    (["--bogus"], "unknown argument '--bogus'"),
    (["--broken", "NOPE"], "unknown broken variant 'NOPE'"),
    (["--broken", "NO_FENCE", "--only", "d"], "--only wants a, b or c"),
    (["--only", "a"], "--only goes with --broken"),
    (["--witness", "NOPE"], "unknown witness 'NOPE'"),
    (["--bounds", "3"], "--bounds wants MAXTERM,MAXLSN"),
])
def test_bad_arguments_are_refused(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr
