#!/usr/bin/env bash
# The header on every common toolchain: gcc and clang in C99 and C11 with
# -pedantic (shim and unit tests, warnings as errors for the shim), tcc, a
# static musl build, and a 32-bit build; the unit tests run on each, and the
# tcc, musl and 32-bit shims run the core shim scenarios. Ends with
# "N passed, M failed". A missing toolchain fails under CI=true.
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
OUT=build/tc
mkdir -p "$OUT" build/test-logs
pass=0 fail=0
have() { command -v "$1" >/dev/null 2>&1; }
ok() { pass=$((pass + 1)); printf '  ok    %s\n' "$1"; }
bad() { fail=$((fail + 1)); printf '  FAIL  %s\n' "$1"; }
missing() {
    if [ "${CI:-}" = "true" ]; then bad "$1: $2 (required in CI)"; else printf '  SKIP  %s: %s\n' "$1" "$2"; fi
}
# build NAME COMMAND...: one check
build() {
    local name=$1; shift
    if "$@" > "$OUT/$name.build.log" 2>&1 && [ ! -s "$OUT/$name.build.log" ]; then ok "build $name"
    else bad "build $name"; sed 's/^/        /' "$OUT/$name.build.log" | head -n 10; fi
}
# unit NAME: run a unit test binary, one check
unit() {
    local last
    last=$("$OUT/unit-$1" 2>&1 | tail -n 1)
    case "$last" in *" passed, 0 failed") ok "unit tests $1: $last" ;; *) bad "unit tests $1: $last" ;; esac
}
# shim NAME: the core shim scenarios with that binary
SCENARIOS='^(normal_traffic|three_restarts_in_five_seconds|in_flight_when_daemon_dies|stdin_eof_in_every_state|mcp_session_replayed_after_restart|hostile_stdin)$'
shim() {
    local last
    last=$(ALWAYSUP_BIN="$OUT/alwaysup-$1" ALWAYSUP_LOGDIR=build/test-logs/integration-$1 "$PY" tests/integration.py -k "$SCENARIOS" 2>&1 | tail -n 1)
    case "$last" in *" passed, 0 failed") ok "shim scenarios $1: $last" ;; *) bad "shim scenarios $1: $last" ;; esac
}

for std in c99 c11; do
    for cc in gcc clang; do
        if ! have $cc; then missing "$cc-$std" "$cc not installed"; continue; fi
        build "alwaysup-$cc-$std" $cc -std=$std -pedantic -Wall -Wextra -Wshadow -Wconversion -Werror -O2 -I. examples/alwaysup.c -o "$OUT/alwaysup-$cc-$std"
        build "unit-$cc-$std" $cc -std=$std -pedantic -Wall -Wextra -O2 -I. tests/unit.c -o "$OUT/unit-$cc-$std"
        unit "$cc-$std"
    done
done
if have tcc; then
    build alwaysup-tcc tcc -I. examples/alwaysup.c -o "$OUT/alwaysup-tcc"
    build unit-tcc tcc -I. tests/unit.c -o "$OUT/unit-tcc"
    unit tcc
    shim tcc
else missing tcc "tcc not installed"; fi
if have musl-gcc; then
    build alwaysup-musl musl-gcc -std=c99 -static -O2 -Wall -Wextra -Wconversion -I. examples/alwaysup.c -o "$OUT/alwaysup-musl"
    build unit-musl musl-gcc -std=c99 -static -O2 -I. tests/unit.c -o "$OUT/unit-musl"
    if file "$OUT/alwaysup-musl" | grep -q "statically linked"; then ok "alwaysup-musl is one static binary"; else bad "alwaysup-musl is not static"; fi
    unit musl
    shim musl
else missing musl "musl-gcc not installed (musl-tools)"; fi
if echo 'int main(void){return 0;}' | gcc -m32 -x c - -o "$OUT/m32-probe" 2>/dev/null; then
    build alwaysup-m32 gcc -m32 -std=c99 -O2 -Wall -Wextra -Wconversion -Werror -I. examples/alwaysup.c -o "$OUT/alwaysup-m32"
    build unit-m32 gcc -m32 -std=c99 -O2 -Wall -Wextra -Wconversion -I. tests/unit.c -o "$OUT/unit-m32"
    unit m32
    shim m32
else missing m32 "gcc -m32 cannot link (gcc-multilib)"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
