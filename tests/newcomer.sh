#!/usr/bin/env bash
# The newcomer's path, on a copy of the checkout (what a fresh clone holds):
# the README's two set-up lines, `make && make demo` run as written,
# `make install` with PREFIX and DESTDIR, a program built against the
# installed header, `make uninstall`, and `make deps` being the install
# script. Ends with "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
pass=0 fail=0
ok() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $*"; fi; }
say() { echo "-- $*"; }

W=$(mktemp -d "${TMPDIR:-/tmp}/alwaysup-newcomer.XXXXXX")
trap 'rm -rf "$W"' EXIT
# tracked and new files, as a clone of this tree would have them
git ls-files -co --exclude-standard -z | grep -zv '^tests/node_modules/\|^tools/bench/peers/node_modules/' |
    (cd "$ROOT" && xargs -0 cp --parents -t "$W" 2>/dev/null)
cd "$W"

say "the README shows the two set-up lines at the top"
top=$(head -n 30 README.md)
ok grep -qF 'make && make demo' <<<"$top"
ok grep -qF 'make deps && make test' <<<"$top"

say "make && make demo, as written"
if make > build.log 2>&1 && make demo > demo.log 2>&1; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: make && make demo"; tail -n 20 build.log demo.log; fi
ok grep -q 'restart' demo.log
ok test -x build/alwaysup

say "make install PREFIX=/opt/au DESTDIR=\$W/stage"
ok make -s install PREFIX=/opt/au DESTDIR="$W/stage"
ok test -x "$W/stage/opt/au/bin/alwaysup"
ok cmp -s alwaysup.h "$W/stage/opt/au/include/alwaysup.h"
ok sh -c "'$W/stage/opt/au/bin/alwaysup' --version | grep -q '^alwaysup '"
cat > prog.c <<'EOF'
#define ALWAYSUP_IMPLEMENTATION
#include <alwaysup.h>
int main(void) { au_url u; return au_url_parse(&u, "ws://127.0.0.1:8079/", 20) == AU_OK ? 0 : 1; }
EOF
ok sh -c "cc -std=c99 -I'$W/stage/opt/au/include' prog.c -o prog && ./prog"
say "the default PREFIX is /usr/local"
ok make -s install DESTDIR="$W/stage2"
ok test -x "$W/stage2/usr/local/bin/alwaysup" -a -f "$W/stage2/usr/local/include/alwaysup.h"

say "make uninstall removes both, and only them"
touch "$W/stage/opt/au/bin/other-tool"
ok make -s uninstall PREFIX=/opt/au DESTDIR="$W/stage"
ok test ! -e "$W/stage/opt/au/bin/alwaysup" -a ! -e "$W/stage/opt/au/include/alwaysup.h"
ok test -e "$W/stage/opt/au/bin/other-tool"

say "make deps runs tools/install-deps.sh"
ok sh -c "make -n deps | grep -q 'tools/install-deps.sh'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
