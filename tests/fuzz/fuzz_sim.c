/* Fuzz harness: the session-core simulator (tests/sim/sim.c) driven from
   bytes. Every two input bytes are one choice of the simulator (what happens
   next, which id, how long, which daemon misbehaviour); an input that runs
   out reads as zeros, the simplest choices. Every invariant the simulator
   checks after each step is a property here: a violation prints
   "PROPERTY VIOLATION" and aborts, so libFuzzer keeps the input.
   `build/sim --seed S --save-tape FILE` writes a seed's choices in this
   format (the seed corpus is made that way). */
#define SIM_NO_MAIN
#include "../sim/sim.c"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char why[700];
    int ok = sim_run_bytes(data, size, why, sizeof why);
    FZ_CHECK(ok, "%s\n", why);
    return 0;
}
