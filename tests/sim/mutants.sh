#!/usr/bin/env bash
# make sim-mutants: shows that each invariant of the simulator can fail.
# Builds the core once per mutant with one rule broken (-DALWAYSUP_MUTANT=K,
# the AU__BROKEN(K) sites in alwaysup.h) and runs the simulator against it;
# a mutant is caught when some schedule violates an invariant. Prints the
# first violation per mutant and ends with "K of N mutants caught"; exits 0
# only when every mutant is caught.
#   SEEDS=50000 JOBS=2 tests/sim/mutants.sh
set -u
cd "$(dirname "$0")/../.."
CC=${CC:-cc}
SEEDS=${SEEDS:-50000}
JOBS=${JOBS:-2}
OUT=build/sim-mutants
mkdir -p "$OUT"
[ -f build/.gitignore ] || echo "*" > build/.gitignore
names=(
    ""
    "no error for an in-flight request when the connection is lost"
    "the answer to the shim's own request reaches the client"
    "a safe request lost instead of re-sent after a reconnect"
    "an unbounded queue (stdin never waits)"
    "a cancelled request is still answered"
    "the client's initialize fails after repeated lost connections (re-send cap)"
    "no queue timeout"
    "the client's answer goes to a connection that did not ask"
    "the queue flushed to a new daemon before the replayed session is up"
    "the shim's id equals a pending client request's id"
    "notifications/initialized dropped while the session is replayed"
    "a second initialize replaces the session's"
    "exai: the daemon's \"still being processed\" taken as the call's result"
    "exai: a call_tool_ack does not bound the call"
)
caught=0
total=0
for k in $(seq 1 $((${#names[@]} - 1))); do
    total=$((total + 1))
    bin="$OUT/sim-mutant-$k"
    if ! $CC -std=c99 -O2 -DALWAYSUP_MUTANT="$k" -I. tests/sim/sim.c -o "$bin" 2>"$OUT/build-$k.log"; then
        printf '  FAIL    mutant %2d does not build (%s)\n' "$k" "$OUT/build-$k.log"
        continue
    fi
    start=$(date +%s.%N)
    "$bin" --seeds "$SEEDS" --jobs "$JOBS" --max-failures 1 --no-shrink --quiet >"$OUT/mutant-$k.log" 2>&1
    rc=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    first=$(grep -m1 '^FAIL seed' "$OUT/mutant-$k.log" | cut -c1-150)
    if [ "$rc" -ne 0 ] && [ -n "$first" ]; then
        caught=$((caught + 1))
        printf '  caught  mutant %2d  %s\n          %s (%.1fs)\n' "$k" "${names[$k]}" "$first" "$secs"
    else
        printf '  MISSED  mutant %2d  %s: %s schedules passed\n' "$k" "${names[$k]}" "$SEEDS"
    fi
done
echo "$caught of $total mutants caught"
[ "$caught" -eq "$total" ]
