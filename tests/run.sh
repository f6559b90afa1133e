#!/usr/bin/env bash
# Runs every suite of `make test` and ends with the line "N passed, M failed".
# A suite that prints "N passed, M failed" contributes its counts; any other
# step counts as one check, passed when it exits 0. Logs: build/test-logs/.
set -u
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
LOGS=build/test-logs
mkdir -p "$LOGS"
[ -f build/.gitignore ] || echo "*" > build/.gitignore   # build/ ignores itself
PASS=0
FAIL=0
FAILED_SUITES=()

# report NAME RC SECONDS: counts the suite from its log
report() {
    local name=$1 rc=$2 secs=$3 log="$LOGS/$1.log" last p f
    last=$(tr -d '\r' < "$log" | grep -aE '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -n "$last" ]; then
        p=${last%% passed*}
        f=${last#*, }; f=${f%% failed}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    elif [ "$rc" -eq 0 ]; then p=1; f=0
    else p=0; f=1
    fi
    PASS=$((PASS + p))
    FAIL=$((FAIL + f))
    if [ "$f" -eq 0 ]; then
        printf '  ok    %-34s %6s checks  %6.1fs\n' "$name" "$p" "$secs"
    else
        printf '  FAIL  %-34s %6s passed, %s failed (exit %s), log %s\n' "$name" "$p" "$f" "$rc" "$log"
        tail -n 25 "$log" | sed 's/^/        | /'
        FAILED_SUITES+=("$name")
    fi
}
# suite NAME COMMAND...: runs now
suite() {
    local name=$1 start rc
    shift
    start=$(date +%s.%N)
    "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    report "$name" "$rc" "$(echo "$(date +%s.%N) - $start" | bc)"
}
# background NAME COMMAND...: runs alongside the rest, reported at the end
BG_NAMES=()
BG_PIDS=()
background() {
    local name=$1
    shift
    ( start=$(date +%s.%N); "$@" >"$LOGS/$name.log" 2>&1; echo "$? $(echo "$(date +%s.%N) - $start" | bc)" >"$LOGS/$name.rc" ) &
    BG_PIDS+=($!)
    BG_NAMES+=("$name")
}
collect() {
    local i
    for i in "${!BG_PIDS[@]}"; do
        wait "${BG_PIDS[$i]}"
        read -r rc secs < "$LOGS/${BG_NAMES[$i]}.rc"
        report "${BG_NAMES[$i]}" "$rc" "$secs"
    done
}
have() { command -v "$1" >/dev/null 2>&1; }
# `skip NAME WHY` is loud; under CI=true a missing tool is a failure.
skip() {
    if [ "${CI:-}" = "true" ]; then
        printf '  FAIL  %-34s required in CI but missing: %s\n' "$1" "$2"
        FAIL=$((FAIL + 1)); FAILED_SUITES+=("$1")
    else
        printf '  SKIP  %-34s %s (CI=true makes this a failure)\n' "$1" "$2"
    fi
}

echo "== header hygiene"
# optimized: some warnings (format truncation) only appear with -O2
suite warnings-gcc-c99 gcc -std=c99 -O2 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror -c -x c tests/static_smoke.c -o build/warn-gcc.o
suite symbols-prefixed $MAKE -s check-symbols
if have clang; then
    suite warnings-clang-c99 clang -std=c99 -O2 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror -c -x c tests/static_smoke.c -o build/warn-clang.o
else skip warnings-clang-c99 "clang not installed"; fi
if have g++; then
    suite cxx-smoke sh -c "$MAKE -s build/cxx-smoke && build/cxx-smoke"
else skip cxx-smoke "g++ not installed"; fi
if have clang++; then
    suite cxx-smoke-clang sh -c "clang++ -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror -I. tests/cxx_smoke.cc -o build/cxx-smoke-clang && build/cxx-smoke-clang"
else skip cxx-smoke-clang "clang++ not installed"; fi
suite static-smoke sh -c "$MAKE -s build/static-smoke && build/static-smoke"
suite alloc-smoke sh -c "$MAKE -s build/alloc-smoke && build/alloc-smoke"

# the plain integration pass mostly sleeps (a 62 s outage, 35 s of restart
# timing): it runs alongside everything below and is reported at the end
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
$MAKE -s build/alwaysup build/testd build/alwaysup-asan > "$LOGS/build-shim.log" 2>&1
BUILD_SHIM_RC=$?
background integration "$PY" tests/integration.py

echo "== toolchains (gcc/clang C99+C11 -pedantic, tcc, static musl, -m32)"
suite toolchains bash tests/toolchains.sh

echo "== unit tests"
suite unit sh -c "$MAKE -s build/unit && build/unit"
suite unit-asan-ubsan sh -c "$MAKE -s build/unit-asan && build/unit-asan"
if have clang; then
    suite unit-clang sh -c "$MAKE -s build/unit-clang CLANG=clang && build/unit-clang"
else skip unit-clang "clang not installed"; fi

echo "== integration (build/alwaysup between a scripted client and build/testd)"
report build-shim "$BUILD_SHIM_RC" 0
# the same under ASan+UBSan (LeakSanitizer at every exit), and under valgrind
# memcheck; the 62 s outage and the 35 s restart timing run in the plain pass only
LONG='^(?!outage_over_a_minute|restart_and_reconnect_time)'
suite integration-asan-ubsan env ALWAYSUP_BIN=build/alwaysup-asan ALWAYSUP_SLOW=2 \
    ALWAYSUP_LOGDIR=build/test-logs/integration-asan "$PY" tests/integration.py -k "$LONG"
if have valgrind; then
    suite integration-valgrind env ALWAYSUP_SLOW=6 ALWAYSUP_LOGDIR=build/test-logs/integration-valgrind \
        ALWAYSUP_WRAP="valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=99" \
        "$PY" tests/integration.py -j 4 -k "$LONG"
else skip integration-valgrind "valgrind not installed"; fi
suite soak-20-restarts "$PY" tools/soak.py --restarts 20
# the same over wss://: nginx terminating TLS in front of testd, build/alwaysup-tls --ca-file
if (have nginx || [ -x /usr/sbin/nginx ]) && have openssl; then
    suite soak-tls-20-restarts sh -c "$MAKE -s build/alwaysup-tls build/testd && $PY tools/soak.py --restarts 20 --tls"
else skip soak-tls-20-restarts "nginx or openssl missing (tools/install-deps.sh)"; fi

echo "== the session core under deterministic simulation (tests/sim: every seed that ever failed, then fresh ones)"
suite sim sh -c "$MAKE -s build/sim && build/sim --seeds 200000 --first 1 --jobs 2 --regressions tests/sim/regressions.txt --quiet"
suite sim-asan-ubsan sh -c "$MAKE -s build/sim-asan && build/sim-asan --seeds 20000 --first 1000001 --jobs 2 --quiet"
suite sim-mutants $MAKE -s sim-mutants

echo "== WebSocket conformance (Autobahn client cases 1-7, 9, 10; section 9 scaled down)"
suite build-conformance $MAKE -s build/testd build/echo_client build/echo_client-asan
suite conformance "$PY" tools/conformance.py --scale quick --out build/CONFORMANCE-quick.md
suite conformance-asan-ubsan "$PY" tools/conformance.py --scale quick --client build/echo_client-asan \
    --out build/CONFORMANCE-quick-asan.md
# every case again over wss:// (nginx terminating TLS in front of testd), plain and under ASan+UBSan
if (have nginx || [ -x /usr/sbin/nginx ]) && have openssl; then
    suite conformance-tls sh -c "$MAKE -s build/testd build/echo_client-tls && $PY tools/conformance.py --scale quick --transport wss --out build/CONFORMANCE-quick-tls.md"
    suite conformance-tls-asan-ubsan sh -c "$MAKE -s build/testd build/echo_client-tls-asan && $PY tools/conformance.py --scale quick --transport wss --tls-client build/echo_client-tls-asan --out build/CONFORMANCE-quick-tls-asan.md"
else skip conformance-tls "nginx or openssl missing (tools/install-deps.sh)"; fi

echo "== fuzzing (libFuzzer smoke of every harness; every crash ever found, replayed)"
suite fuzz-regressions bash tests/fuzz/replay.sh
suite fuzz-smoke env JOBS=2 bash tests/fuzz/run.sh 5

echo "== interop with real peers"
if "$PY" -c 'import websockets' 2>/dev/null; then
    suite interop-python-nginx "$PY" tests/interop/peers_interop.py
else skip interop-python-nginx "python3-websockets not installed (tools/install-deps.sh)"; fi
if have node && [ -d tests/node_modules/@modelcontextprotocol/sdk ]; then
    suite interop-mcp-sdk node tests/interop/sdk_interop.mjs
else skip interop-mcp-sdk "node or tests/node_modules missing (tools/install-deps.sh runs npm ci)"; fi
# supergateway and server-everything (real daemons), and the SDK daemon with faults: about 110 s
if have node && [ -d tests/node_modules/@modelcontextprotocol/sdk ] && [ -d tests/node_modules/supergateway ] &&
    [ -d tests/node_modules/@modelcontextprotocol/server-everything ]; then
    suite interop-real-daemons node tests/interop/real_daemons.mjs
else skip interop-real-daemons "node or tests/node_modules missing (tools/install-deps.sh runs npm ci)"; fi

echo "== transports: wss:// (nginx terminating TLS, Python websockets over TLS; bad, expired and foreign certificates; mutual TLS) and ws+unix:"
if "$PY" -c 'import websockets' 2>/dev/null && (have nginx || [ -x /usr/sbin/nginx ]) && have openssl; then
    suite transports-tls-unix sh -c "$MAKE -s build/alwaysup build/alwaysup-tls build/testd && $PY tests/tls/transports.py -j 2"
    suite transports-tls-asan-ubsan sh -c "$MAKE -s build/alwaysup-tls-asan build/testd && ALWAYSUP_TLS_BIN=build/alwaysup-tls-asan $PY tests/tls/transports.py -j 2 -k '^tls_'"
    # valgrind memcheck on the TLS build: traffic and replay, an outage with requests in flight, mutual TLS, an expired certificate
    if have valgrind; then
        suite transports-tls-valgrind sh -c "$MAKE -s build/alwaysup-tls build/testd && ALWAYSUP_SLOW=6 ALWAYSUP_WRAP='valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=99' $PY tests/tls/transports.py -j 2 -k '^(tls_nginx_testd_traffic_and_replay|tls_nginx_testd_outage_and_in_flight|tls_mutual|tls_expired_refused_then_fixed)\$'"
    else skip transports-tls-valgrind "valgrind not installed"; fi
else skip transports-tls-unix "python3-websockets, nginx or openssl missing (tools/install-deps.sh)"; fi

if have tinyproxy || [ -x /usr/bin/tinyproxy ]; then
    suite transports-proxy-failover sh -c "$MAKE -s build/alwaysup build/alwaysup-tls build/testd && $PY tests/proxy/proxy_failover.py"
else skip transports-proxy-failover "tinyproxy missing (tools/install-deps.sh)"; fi
suite resolver-never-answers sh -c "$MAKE -s build/alwaysup && $PY tests/resolver/resolver_hang.py"

echo "== the EX-AI dialect (--daemon-protocol exai) against an op-protocol daemon"
if "$PY" -c 'import websockets' 2>/dev/null; then
    suite exai-daemon-selftest "$PY" tests/exai/selftest.py
else skip exai-daemon-selftest "python3-websockets not installed (tools/install-deps.sh)"; fi
if have node && [ -d tests/node_modules/@modelcontextprotocol/sdk ] && "$PY" -c 'import websockets' 2>/dev/null; then
    suite exai-mcp-sdk node tests/exai/exai_interop.mjs
else skip exai-mcp-sdk "node, tests/node_modules or python3-websockets missing (tools/install-deps.sh)"; fi

echo "== the newcomer's path (README's set-up lines, make && make demo, make install/uninstall with PREFIX and DESTDIR)"
suite newcomer-path bash tests/newcomer.sh

echo "== alwaysup --check: the one-shot diagnosis against the test daemon's fault modes, the EX-AI daemon and TLS"
suite check-diagnosis sh -c "$MAKE -s build/alwaysup build/alwaysup-tls build/testd && $PY tests/check/check.py"
suite check-diagnosis-asan-ubsan sh -c "$MAKE -s build/alwaysup-asan build/alwaysup-tls-asan build/testd && ALWAYSUP_BIN=build/alwaysup-asan ALWAYSUP_TLS_BIN=build/alwaysup-tls-asan ALWAYSUP_SLOW=2 $PY tests/check/check.py"

echo "== benchmark smoke (tools/bench --quick: every contender answers; the figures are not judged here)"
suite bench-quick sh -c "$MAKE -s build/bench build/alwaysup build/alwaysup-tls build/testd tools/bench/peers/node_modules/.package-lock.json && build/bench --quick"

echo "== Windows (mingw-w64 build under Wine)"
if have x86_64-w64-mingw32-gcc && have wine; then
    suite windows $MAKE -s test-windows
else skip windows "mingw-w64 or wine not installed (tools/install-deps.sh)"; fi

echo "== integration, plain build (ran in the background)"
collect

echo
if [ ${#FAILED_SUITES[@]} -gt 0 ]; then echo "failed suites: ${FAILED_SUITES[*]}"; fi
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
