# alwaysup: `make` builds the shim, `make test` runs every test.
CC      ?= cc
CXX     ?= c++
CLANG   ?= clang
OPT     ?= -O2 -g
STRICT  := -std=c99 -Wall -Wextra -Wpedantic -Wshadow -Wconversion
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
B       := build
HDR     := alwaysup.h
# TLS=openssl builds the shim with the OpenSSL backend (wss://); the default build needs nothing but libc
TLS     ?=
ifeq ($(TLS),openssl)
SHIM_TLS := -DALWAYSUP_TLS_OPENSSL
SHIM_LIBS := -lssl -lcrypto
endif

.PHONY: all test check-symbols demo soak conformance fuzz bench windows test-windows clean sim sim-mutants install uninstall deps

all: $(B)/alwaysup $(B)/testd $(B)/echo_client

$(B)/alwaysup: examples/alwaysup.c $(HDR) | $(B)
	$(CC) $(STRICT) $(OPT) $(SHIM_TLS) -I. $< -o $@ $(SHIM_LIBS)
# always with OpenSSL, whatever TLS says: the transport tests use it
$(B)/alwaysup-tls: examples/alwaysup.c $(HDR) | $(B)
	$(CC) $(STRICT) -Werror $(OPT) -DALWAYSUP_TLS_OPENSSL -I. $< -o $@ -lssl -lcrypto
$(B)/alwaysup-tls-asan: examples/alwaysup.c $(HDR) | $(B)
	$(CC) $(STRICT) -O1 -g $(SAN) -DALWAYSUP_TLS_OPENSSL -I. $< -o $@ -lssl -lcrypto
$(B)/alwaysup-asan: examples/alwaysup.c $(HDR) | $(B)
	$(CC) $(STRICT) -O1 -g $(SAN) -I. $< -o $@
$(B)/testd: tools/testd.c $(HDR) | $(B)
	$(CC) -std=c99 -Wall -Wextra -Wpedantic -Wshadow $(OPT) -I. $< -o $@
$(B)/echo_client: examples/echo_client.c $(HDR) | $(B)
	$(CC) $(STRICT) -Werror $(OPT) -I. $< -o $@
$(B)/echo_client-asan: examples/echo_client.c $(HDR) | $(B)
	$(CC) $(STRICT) -O1 -g $(SAN) -I. $< -o $@
# the conformance run over wss:// (nginx terminating TLS in front of testd)
$(B)/echo_client-tls: examples/echo_client.c $(HDR) | $(B)
	$(CC) $(STRICT) -Werror $(OPT) -DALWAYSUP_TLS_OPENSSL -I. $< -o $@ -lssl -lcrypto
$(B)/echo_client-tls-asan: examples/echo_client.c $(HDR) | $(B)
	$(CC) $(STRICT) -O1 -g $(SAN) -DALWAYSUP_TLS_OPENSSL -I. $< -o $@ -lssl -lcrypto

# the side-by-side benchmark: direct, alwaysup, a Python and a Node peer, and
# alwaysup through nginx over ws:// and wss:// (what TLS costs);
# writes tools/bench/RESULTS.md (BENCH_ARGS=--quick for a seconds-long run)
BENCH_ARGS ?= --turns 5
$(B)/bench: tools/bench/bench.c $(HDR) | $(B)
	$(CC) -std=c99 -O2 -Wall -Wextra -I. $< -o $@
tools/bench/peers/node_modules/.package-lock.json: tools/bench/peers/package-lock.json
	cd tools/bench/peers && npm ci --no-audit --no-fund --loglevel=error
bench: $(B)/bench $(B)/alwaysup $(B)/alwaysup-tls $(B)/testd tools/bench/peers/node_modules/.package-lock.json
	$(B)/bench $(BENCH_ARGS)

# the session core under deterministic simulation: SEEDS schedules (and every
# seed that ever failed), two processes; a failure prints its seed and a shrunk trace
SEEDS ?= 100000
SIM_JOBS ?= 2
$(B)/sim: tests/sim/sim.c $(HDR) | $(B)
	$(CC) -std=c99 -Wall -Wextra -Werror $(OPT) -I. $< -o $@
$(B)/sim-asan: tests/sim/sim.c $(HDR) | $(B)
	$(CC) -std=c99 -Wall -Wextra -Werror -O1 -g $(SAN) -I. $< -o $@
sim: $(B)/sim
	@$(B)/sim --seeds $(SEEDS) --jobs $(SIM_JOBS) --regressions tests/sim/regressions.txt
# each invariant can fail: the core built with one rule broken at a time
sim-mutants:
	@SEEDS=50000 JOBS=$(SIM_JOBS) bash tests/sim/mutants.sh

# every libFuzzer harness (clang) for FUZZ_SECONDS each, two at a time
FUZZ_SECONDS ?= 60
fuzz:
	@JOBS=2 bash tests/fuzz/run.sh $(FUZZ_SECONDS)

# Autobahn's client cases of sections 1-7, 9 and 10, section 9 at full size;
# the table goes to tests/CONFORMANCE.md; over ws:// and again over wss://
# (nginx terminating TLS in front of testd)
conformance: $(B)/testd $(B)/echo_client $(B)/echo_client-tls
	@/usr/bin/env python3 tools/conformance.py --scale full --transport both --out tests/CONFORMANCE.md

# build/ ignores itself, so the top level needs no .gitignore
$(B):
	@mkdir -p $(B) && echo '*' > $(B)/.gitignore

# ---- Windows, cross-built with mingw-w64 and run under Wine ----
MINGW   ?= x86_64-w64-mingw32-gcc
WINLIBS := -lws2_32 -lbcrypt
windows: $(B)/alwaysup.exe $(B)/unit.exe
# the shim with wss:// over SChannel (Windows' own TLS); unit.exe stays plain
$(B)/alwaysup.exe: examples/alwaysup.c $(HDR) | $(B)
	$(MINGW) $(STRICT) -Werror $(OPT) -DALWAYSUP_TLS_SCHANNEL -I. $< -o $@ $(WINLIBS) -lsecur32 -lcrypt32
$(B)/unit.exe: tests/unit.c tests/test.h $(HDR) | $(B)
	$(MINGW) -std=c99 -Wall -Wextra $(OPT) -I. $< -o $@ $(WINLIBS)
test-windows: windows $(B)/testd
	@bash tests/windows.sh

# ---- unit tests: plain, sanitized, clang, C++ and configuration smokes ----
$(B)/unit: tests/unit.c tests/test.h $(HDR) | $(B)
	$(CC) -std=c99 -Wall -Wextra $(OPT) -I. $< -o $@
$(B)/unit-asan: tests/unit.c tests/test.h $(HDR) | $(B)
	$(CC) -std=c99 -Wall -Wextra -O1 -g $(SAN) -I. $< -o $@
$(B)/unit-clang: tests/unit.c tests/test.h $(HDR) | $(B)
	$(CLANG) -std=c99 -Wall -Wextra $(OPT) -I. $< -o $@
$(B)/cxx-smoke: tests/cxx_smoke.cc $(HDR) | $(B)
	$(CXX) -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror $(OPT) -I. $< -o $@
$(B)/static-smoke: tests/static_smoke.c $(HDR) | $(B)
	$(CC) $(STRICT) -Werror $(OPT) -I. $< -o $@
$(B)/alloc-smoke: tests/alloc_smoke.c $(HDR) | $(B)
	$(CC) $(STRICT) -Werror $(OPT) -I. $< -o $@

# Every symbol the implementation exports must carry the au_ prefix.
check-symbols: | $(B)
	@printf '#define ALWAYSUP_IMPLEMENTATION\n#include "alwaysup.h"\n' > $(B)/symbols.c
	@$(CC) $(STRICT) -Werror -I. -c $(B)/symbols.c -o $(B)/symbols.o
	@bad=$$(nm -g --defined-only $(B)/symbols.o | awk '{print $$3}' | grep -v '^au_[a-z0-9]' || true); \
	 count=$$(nm -g --defined-only $(B)/symbols.o | wc -l); \
	 if [ -n "$$bad" ]; then echo "exported symbols without the au_ prefix: $$bad"; exit 1; fi; \
	 echo "$$count exported symbols, all au_-prefixed"
	@printf '#define ALWAYSUP_STATIC\n#define ALWAYSUP_IMPLEMENTATION\n#include "alwaysup.h"\n' > $(B)/symbols-static.c
	@$(CC) $(STRICT) -Wno-unused-function -I. -c $(B)/symbols-static.c -o $(B)/symbols-static.o
	@n=$$(nm -g --defined-only $(B)/symbols-static.o | wc -l); \
	 if [ "$$n" != 0 ]; then echo "ALWAYSUP_STATIC still exports $$n symbols"; exit 1; fi; \
	 echo "ALWAYSUP_STATIC exports nothing"

test:
	@bash tests/run.sh

# the restart soak: SOAK_RESTARTS kills, freezes and 502 spells under load
SOAK_RESTARTS ?= 200
soak: $(B)/alwaysup $(B)/testd
	@/usr/bin/env python3 tools/soak.py --restarts $(SOAK_RESTARTS)

# the daemon restarted under a live session, in about ten seconds
demo: $(B)/alwaysup $(B)/testd
	@/usr/bin/env python3 tools/demo.py

# make install [PREFIX=/usr/local] [DESTDIR=]: the shim and the header
PREFIX  ?= /usr/local
BINDIR  := $(DESTDIR)$(PREFIX)/bin
INCDIR  := $(DESTDIR)$(PREFIX)/include
install: $(B)/alwaysup
	install -d $(BINDIR) $(INCDIR)
	install -m 755 $(B)/alwaysup $(BINDIR)/alwaysup
	install -m 644 $(HDR) $(INCDIR)/alwaysup.h
uninstall:
	rm -f $(BINDIR)/alwaysup $(INCDIR)/alwaysup.h

# what `make test` needs (Debian/Ubuntu packages, npm ci of the pinned peers)
deps:
	@bash tools/install-deps.sh

clean:
	rm -rf $(B)
