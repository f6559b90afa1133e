#!/usr/bin/env bash
# Installs what `make test` needs on Debian/Ubuntu. Idempotent: installs only
# what is missing. Used by .ci/run; run it by hand on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
have() { command -v "$1" >/dev/null 2>&1; }

pkgs=()
have gcc      || pkgs+=(gcc)
have g++      || pkgs+=(g++)
have make     || pkgs+=(make)
have clang    || pkgs+=(clang)
have clang++  || pkgs+=(clang)
have nm       || pkgs+=(binutils)
have bc       || pkgs+=(bc)
have valgrind || pkgs+=(valgrind)
[ -x /usr/bin/python3 ] || pkgs+=(python3)
# real peers for the interop tests
/usr/bin/python3 -c 'import websockets' 2>/dev/null || pkgs+=(python3-websockets)
have nginx || [ -x /usr/sbin/nginx ] || pkgs+=(nginx)
have node || pkgs+=(nodejs)
# clang's fuzzer runtime, matching the installed clang
if have clang; then
    v=$(clang -dumpversion | cut -d. -f1)
    ls /usr/lib/llvm-"$v"/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || pkgs+=("libclang-rt-$v-dev")
else
    pkgs+=(clang libclang-rt-14-dev)
fi
# other toolchains the header is checked on
have tcc || pkgs+=(tcc)
have musl-gcc || pkgs+=(musl-tools)
echo 'int main(void){return 0;}' | gcc -m32 -x c - -o /tmp/alwaysup-m32-probe 2>/dev/null || pkgs+=(gcc-multilib)
have file || pkgs+=(file)
# the Windows build and the place it runs
have x86_64-w64-mingw32-gcc || pkgs+=(gcc-mingw-w64-x86-64)
have wine || pkgs+=(wine wine64)
have npm || pkgs+=(npm)
# transports: the TLS build (make TLS=openssl), its test certificates and peers
have openssl || pkgs+=(openssl)
[ -f /usr/include/openssl/ssl.h ] || pkgs+=(libssl-dev)
have tinyproxy || [ -x /usr/bin/tinyproxy ] || pkgs+=(tinyproxy)
have unshare || pkgs+=(util-linux)

if [ ${#pkgs[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${pkgs[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
else
    echo "install-deps: system packages already present"
fi

# the benchmark's Node peer (ws), pinned by its own lock file
if [ -f tools/bench/peers/package-lock.json ] && [ ! -d tools/bench/peers/node_modules/ws ]; then
    echo "install-deps: npm ci in tools/bench/peers/"
    (cd tools/bench/peers && npm ci --no-audit --no-fund --loglevel=error)
fi

# the official MCP SDK and ws, pinned by tests/package-lock.json
if [ -f tests/package-lock.json ]; then
    if [ ! -d tests/node_modules/@modelcontextprotocol/sdk ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then
        echo "install-deps: npm ci in tests/"
        (cd tests && npm ci --no-audit --no-fund --loglevel=error)
    else
        echo "install-deps: tests/node_modules up to date"
    fi
fi
