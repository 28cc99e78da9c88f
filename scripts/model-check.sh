#!/usr/bin/env bash
# model-check.sh -- check the safekeeper protocol model with spin.
#
# Usage: scripts/model-check.sh [--quick|--full] [--bounds MAXTERM,MAXLSN]
#            [--broken NAME [--only a|b|c]] [--witness NAME] [--bitstate]
#            [--list-broken] [--list-witnesses]
#
#   --quick        CI bounds (default): terms 1..3, 2 WAL records
#   --full         larger bounds, run by hand: terms 1..3, 4 WAL records
#                  (about 5 GB of memory)
#   --bounds T,L   explicit bounds instead (with full mode's resources)
#   --broken NAME  check a deliberately broken variant (see --list-broken);
#                  the checker must then find a violation, so the script
#                  exits 1 and prints the counterexample
#   --only P       keep only property P's assertion (a, b or c); used to
#                  show that a broken variant breaks that property
#   --witness NAME assert that some step never happens (see
#                  --list-witnesses); the checker must refute it (exit 1),
#                  which proves the model reaches that step
#   --bitstate     supertrace search (1 bit per state): for bounds too large
#                  to store; approximate, may skip a few states
#   --list-broken, --list-witnesses  print the names and exit
#
# Generates the verifier (spin -a), compiles it (gcc -DSAFETY, memory
# bounded by -DMEMLIM; -O1 in quick mode, where compile time matters, -O2
# in full, -O0 for broken variants and witnesses) and runs an exhaustive
# search, all in a temporary directory that is removed afterwards. Prints
# the states explored, the time and the memory used.
# Exit status: 0 no error and the search was complete; 1 a violation, an
# incomplete search, or a tool failure; 2 bad arguments.
# Environment: KELP_MC_MEMLIM (MiB) overrides the memory bound.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL_DIR=$ROOT/src/safekeeper/model
BROKEN_VARIANTS=(VOTE_NOT_DURABLE CONTROL_NOT_DURABLE NO_FENCE NO_TRUNCATE COMMIT_ANY_TERM
    COMMIT_BEFORE_TERM_START)
WITNESSES=(ACK_AFTER_TAKEOVER TRUNCATE RECOVER LEARN_OLD_RECORD)

mode=quick
bounds=""
broken=""
only=""
witness=""
bitstate=0

usage() {
    awk 'NR > 3 && !/^#/ { exit } NR > 3 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --bounds)
        [ $# -ge 2 ] || usage
        bounds=$2
        shift
        ;;
    --broken)
        [ $# -ge 2 ] || usage
        broken=$2
        shift
        ;;
    --only)
        [ $# -ge 2 ] || usage
        only=$2
        shift
        ;;
    --witness)
        [ $# -ge 2 ] || usage
        witness=$2
        shift
        ;;
    --bitstate) bitstate=1 ;;
    --list-broken)
        printf '%s\n' "${BROKEN_VARIANTS[@]}"
        exit 0
        ;;
    --list-witnesses)
        printf '%s\n' "${WITNESSES[@]}"
        exit 0
        ;;
    -h | --help) usage ;;
    *)
        echo "model-check: unknown argument '$1'" >&2
        usage
        ;;
    esac
    shift
done

case "$mode" in
quick) maxterm=3 maxlsn=2 memlim=2048 hashpow=24 opt=-O1 ;;
full) maxterm=3 maxlsn=4 memlim=12288 hashpow=26 opt=-O2 ;;
esac
if [ -n "$bounds" ]; then
    if ! [[ "$bounds" =~ ^[1-9],[1-9]$ ]]; then
        echo "model-check: --bounds wants MAXTERM,MAXLSN as two digits, e.g. 3,2" >&2
        exit 2
    fi
    maxterm=${bounds%,*}
    maxlsn=${bounds#*,}
    mode="explicit"
    memlim=12288 hashpow=26 opt=-O2
fi
memlim=${KELP_MC_MEMLIM:-$memlim}
# A broken variant or a witness stops at its first counterexample, found
# after a few thousand states: compile time dominates, so do not optimize.
if [ -n "$broken$witness" ] && [ "$mode" = quick ]; then
    opt=-O0
fi

defines=(-DMAXTERM="$maxterm" -DMAXLSN="$maxlsn")
variant=correct
if [ -n "$broken" ]; then
    if ! printf '%s\n' "${BROKEN_VARIANTS[@]}" | grep -qx -- "$broken"; then
        echo "model-check: unknown broken variant '$broken' (see --list-broken)" >&2
        exit 2
    fi
    # Internal invariants off: a broken variant must fail on a property.
    defines+=(-DBROKEN_"$broken" -DNO_INVARIANTS)
    variant="BROKEN_$broken"
fi
if [ -n "$witness" ]; then
    if ! printf '%s\n' "${WITNESSES[@]}" | grep -qx -- "$witness"; then
        echo "model-check: unknown witness '$witness' (see --list-witnesses)" >&2
        exit 2
    fi
    defines+=(-DWITNESS_"$witness")
    variant="$variant, witness $witness"
fi
if [ -n "$only" ]; then
    if [ -z "$broken" ]; then
        echo "model-check: --only goes with --broken" >&2
        exit 2
    fi
    case "$only" in
    a) defines+=(-DNO_PROP_B -DNO_PROP_C) ;;
    b) defines+=(-DNO_PROP_A -DNO_PROP_C) ;;
    c) defines+=(-DNO_PROP_A -DNO_PROP_B) ;;
    *)
        echo "model-check: --only wants a, b or c" >&2
        exit 2
        ;;
    esac
    variant="$variant, property ($only) only"
fi

for tool in spin gcc; do
    if ! command -v "$tool" >/dev/null; then
        echo "model-check: '$tool' not found (Debian packages spin and gcc)" >&2
        exit 1
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kelp-model.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
cp "$MODEL_DIR"/*.pml "$work"/
cd "$work" || exit 1

echo "model-check: $mode bounds MAXTERM=$maxterm MAXLSN=$maxlsn, $variant, MEMLIM=${memlim} MiB"
start=$(date +%s.%N)
if ! spin -a "${defines[@]}" safekeeper.pml >spin.log 2>&1; then
    cat spin.log
    echo "model-check: spin -a failed" >&2
    exit 1
fi
cflags=(-DSAFETY -DMEMLIM="$memlim")
if [ "$bitstate" = 1 ]; then
    cflags+=(-DBITSTATE)
    hashpow=33 # 1 GiB of bits
    variant="$variant, bitstate"
fi
if ! gcc "$opt" "${cflags[@]}" -o pan pan.c >gcc.log 2>&1; then
    cat gcc.log
    echo "model-check: compiling the verifier failed" >&2
    exit 1
fi
# Progress lines (every million states) as they come; the report after.
stdbuf -oL ./pan -m10000 -w"$hashpow" 2>&1 | tee pan.log | grep --line-buffered '^Depth=' |
    sed -u 's/^/  /'
pan_rc=${PIPESTATUS[0]}
end=$(date +%s.%N)

grep -vE '^Depth=|^\s*(safekeeper|state|history|props|learner|elector|acceptor)\.pml:[0-9]+,' pan.log |
    grep -vE 'unreached in|^\s*\(.*of [0-9]+ states\)$|^\s*$' | sed 's/^/  /'

states=$(sed -nE 's/^ *([0-9.e+]+) states, stored.*/\1/p' pan.log | head -1)
errors=$(sed -nE 's/.*errors: ([0-9]+).*/\1/p' pan.log | head -1)
mem=$(sed -nE 's/^ *([0-9.]+)\s+total actual memory usage.*/\1/p' pan.log | head -1)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
fail=0
if [ -z "$errors" ] || [ -z "$states" ]; then
    echo "model-check: the verifier did not report a result (exit $pan_rc)"
    fail=1
elif [ "$errors" != 0 ]; then
    fail=1
fi
if [ "$fail" = 0 ] &&
    grep -qE 'reached -DMEMLIM bound|max search depth too small|Search not completed' pan.log; then
    echo "model-check: the search was not complete (memory or depth bound reached)"
    fail=1
fi

if [ -f safekeeper.pml.trail ]; then
    echo "model-check: counterexample (spin -t replay of the trail):"
    spin -t "${defines[@]}" safekeeper.pml 2>&1 |
        grep -E 'MODEL|assert' | sed -E 's/^ +/  /' | head -200
fi
echo "model-check: ${states:-?} states explored, ${errors:-?} errors, ${secs} s, ${mem:-?} MB ($variant)"
if [ "$fail" = 0 ]; then
    echo "model-check: OK"
    exit 0
fi
echo "model-check: FAILED"
exit 1
