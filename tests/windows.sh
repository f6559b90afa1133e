#!/usr/bin/env bash
# make test-windows: the Windows binaries under Wine, against the Linux test
# daemon on loopback. Ends with "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
export WINEPREFIX="${WINEPREFIX:-$PWD/build/wine}" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
pass=0 fail=0
count() {   # adds the "N passed, M failed" line of a log
    local last
    last=$(tr -d '\r' < "$1" | grep -aE '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)   # printf in the Windows CRT writes CRLF
    if [ -z "$last" ]; then fail=$((fail + 1)); return; fi
    pass=$((pass + ${last%% passed*}))
    local f=${last#*, }; fail=$((fail + ${f%% failed}))
}
mkdir -p build/test-logs
if [ ! -d "$WINEPREFIX" ]; then echo "creating the Wine prefix (once)"; wineboot -i >/dev/null 2>&1; fi
wineserver -p 2>/dev/null                       # one server for every run: fast starts
trap 'wineserver -k 2>/dev/null' EXIT

# step LOG PATTERN COMMAND...: COMMAND's output into build/test-logs/LOG; shows the
# lines PATTERN picks and the last one ("N passed, M failed"), and counts it
step() {
    local log=build/test-logs/$1 pat=$2
    shift 2
    "$@" > "$log" 2>&1
    grep -aE "$pat" "$log"
    tail -n 1 "$log"
    count "$log"
}
WINE_SHIM=(env ALWAYSUP_BIN=build/alwaysup.exe ALWAYSUP_TLS_BIN=build/alwaysup.exe ALWAYSUP_WRAP=wine ALWAYSUP_SLOW=3)

echo "-- unit tests (build/unit.exe)"
step unit-windows.log '^FAIL' wine build/unit.exe

echo "-- a name server that never answers (build/alwaysup.exe: the lookup runs on its own thread; root and unshare, else SKIP)"
# Wine's getaddrinfo asks the host's resolver, so the suite's bind-mounted resolv.conf reaches it
step resolver-windows.log '^  FAIL|^SKIP' env ALWAYSUP_BIN="wine $PWD/build/alwaysup.exe" "$PY" tests/resolver/resolver_hang.py

echo "-- shim scenarios (build/alwaysup.exe)"
step integration-windows.log '^  (ok|FAIL)|FAILED|EXCEPTION' "${WINE_SHIM[@]}" ALWAYSUP_LOGDIR=build/test-logs/integration-wine \
    "$PY" tests/integration.py -j 3 -k '^(normal_traffic|three_restarts_in_five_seconds|queued_during_outage_then_answered|in_flight_when_daemon_dies|stdin_eof_in_every_state|queued_request_times_out|frozen_daemon_keepalive|mcp_session_replayed_after_restart|accept_then_close|http_502_during_upgrade|bad_configuration)$'

echo "-- wss:// over SChannel (build/alwaysup.exe, nginx and Python websockets terminating TLS)"
# not here: SSL_CERT_FILE (OpenSSL's store); the ws+unix ones, unix_socket_python_daemon and
# tls_build_plain_transports_and_mismatches (Wine 8 has no AF_UNIX: socket() fails with
# WSAEAFNOSUPPORT, so the shim refuses ws+unix at start; bad_configuration and unit.exe check that refusal).
# tls_mutual hands the SChannel build its RSA client pairs (it takes RSA client keys only)
if [ -x "${NGINX:-/usr/sbin/nginx}" ] && command -v openssl >/dev/null 2>&1; then
    step tls-windows.log '^  (ok|FAIL|SKIP)|FAILED|EXCEPTION' "${WINE_SHIM[@]}" ALWAYSUP_LOGDIR=build/test-logs/tls-wine \
        "$PY" tests/tls/transports.py -j 2 -k '^tls_(nginx_testd_traffic_and_replay|nginx_testd_outage_and_in_flight|mutual|untrusted_ca_refused_then_fixed|wrong_host_refused_then_fixed|expired_refused_then_fixed|verifies_by_default|ca_file_replaces_system_store|sni_selects_the_server|insecure|python_websockets_daemon|refuses_tls_1_1)$'
else
    echo "FAIL tls-windows: nginx or the openssl CLI missing (tools/install-deps.sh)"
    fail=$((fail + 1))
fi

echo "-- alwaysup --check (build/alwaysup.exe): each fault mode, the EX-AI daemon, wss:// over SChannel, server-everything"
step check-windows.log '^  (FAIL|SKIP)|FAILED|EXCEPTION' "${WINE_SHIM[@]}" "$PY" tests/check/check.py -j 3

echo "-- the EX-AI dialect (build/alwaysup.exe --daemon-protocol exai, official MCP SDK client, Python op daemon)"
if command -v node >/dev/null 2>&1 && [ -d tests/node_modules/@modelcontextprotocol/sdk ] && "$PY" -c 'import websockets' 2>/dev/null; then
    step exai-windows.log '^(ok|FAIL) ' env ALWAYSUP_BIN=build/alwaysup.exe ALWAYSUP_WRAP=wine node tests/exai/exai_interop.mjs \
        -k '^(init_without_daemon|call_waits_for_daemon|tools_and_results|bad_token|progress_notifications|ack_keeps_call_alive|drop_mid_call|restart_mid_call_resent|restart_mid_call_no_resend|list_changed_on_new_tools)$'
else
    echo "FAIL exai-windows: node, tests/node_modules or python3-websockets missing (tools/install-deps.sh)"
    fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
