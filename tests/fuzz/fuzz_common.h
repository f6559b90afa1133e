/* Shared helpers for the alwaysup.h fuzz harnesses (tests/fuzz/fuzz_*.c).

   Each harness defines LLVMFuzzerTestOneInput and includes this file once,
   after alwaysup.h. Built two ways:
     clang -fsanitize=fuzzer,address,undefined          (libFuzzer, run.sh)
     gcc -DFUZZ_REPLAY tests/fuzz/replay.c <harness>.c  (plain replay, replay.sh)

   A property violation prints "PROPERTY VIOLATION" with the reason and calls
   abort(), which libFuzzer records as a crash (and saves the input). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#  define FZ_UNUSED __attribute__((unused))
#else
#  define FZ_UNUSED
#endif

/* FZ_CHECK(cond, fmt, ...): the format string is mandatory (C99 varargs). */
#define FZ_CHECK(cond, ...)                                                              \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "\nPROPERTY VIOLATION at %s:%d: %s\n  ", __FILE__, __LINE__, \
                    #cond);                                                              \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            fflush(stderr);                                                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* ---- byte source: reads parameters from the front of the input ---- */
typedef struct fz_src { const uint8_t *p; size_t n, i; } fz_src;
static FZ_UNUSED uint8_t fz_u8(fz_src *s) { return s->i < s->n ? s->p[s->i++] : 0; }
static FZ_UNUSED size_t fz_left(const fz_src *s) { return s->n - s->i; }

/* ---- deterministic PRNG (splitmix64) ---- */
static FZ_UNUSED uint64_t fz_rand(uint64_t *st) {
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static FZ_UNUSED size_t fz_below(uint64_t *st, size_t n) { return n ? (size_t)(fz_rand(st) % n) : 0; }

/* ---- chunking patterns for the streaming parsers ----
   pattern (low 3 bits of the selector byte):
   0 whole input, 1 one byte at a time, 2 random 1..3, 3 random 1..16,
   4 random 1..rest, 5 alternating 1 byte / random 1..64, 6 random 1..300,
   7 two halves at a random point. The high bits seed the PRNG. */
typedef struct fz_chunker { int pattern; uint64_t rng; unsigned calls; } fz_chunker;
static FZ_UNUSED void fz_chunker_init(fz_chunker *c, uint8_t sel, uint64_t salt) {
    c->pattern = sel & 7;
    c->rng = 0x1234567ull + (uint64_t)(sel >> 3) * 0x100000001B3ull + salt;
    c->calls = 0;
}
static FZ_UNUSED size_t fz_chunk(fz_chunker *c, size_t rest) {
    size_t n;
    if (rest == 0) return 0;
    c->calls++;
    switch (c->pattern) {
    case 0: n = rest; break;
    case 1: n = 1; break;
    case 2: n = 1 + fz_below(&c->rng, 3); break;
    case 3: n = 1 + fz_below(&c->rng, 16); break;
    case 4: n = 1 + fz_below(&c->rng, rest); break;
    case 5: n = (c->calls & 1) ? 1 : 1 + fz_below(&c->rng, 64); break;
    case 6: n = 1 + fz_below(&c->rng, 300); break;
    default: n = (c->calls == 1) ? 1 + fz_below(&c->rng, rest) : rest; break;
    }
    return n < rest ? n : rest;
}
/* A chunk in its own exactly-sized heap block, so ASan flags any read past
   the end of what the parser was given. */
static FZ_UNUSED uint8_t *fz_dup(const void *p, size_t n) {
    uint8_t *b = (uint8_t *)malloc(n ? n : 1);
    if (!b) abort();
    if (n) memcpy(b, p, n);
    return b;
}

/* ---- growable byte string ---- */
typedef struct fz_bytes { uint8_t *p; size_t len, cap; } fz_bytes;
static FZ_UNUSED void fz_put(fz_bytes *b, const void *d, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = (uint8_t *)realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;                /* always NUL-terminated for printing */
}
static FZ_UNUSED void fz_put1(fz_bytes *b, uint8_t c) { fz_put(b, &c, 1); }
static FZ_UNUSED void fz_free(fz_bytes *b) { free(b->p); b->p = NULL; b->len = b->cap = 0; }

/* hex of at most max bytes into a static buffer, for messages */
static FZ_UNUSED const char *fz_hex(const void *data, size_t n) {
    static char out[2 * 96 + 8];
    static const char hx[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)data;
    size_t i, m = n < 96 ? n : 96;
    for (i = 0; i < m; i++) { out[2 * i] = hx[p[i] >> 4]; out[2 * i + 1] = hx[p[i] & 15]; }
    out[2 * m] = 0;
    if (m < n) strcat(out, "...");
    return out;
}

/* ---- independent strict UTF-8 checker (RFC 3629 table 3-7), written
   without looking at au_utf8 so the harnesses do not trust the code under
   test. Returns 0 if data holds an invalid sequence; *complete is 1 when
   the data ends on a code point boundary (else it ends with a valid,
   unfinished prefix). fz_utf8_check_from starts at *from, a code point
   boundary, and moves it to the last boundary seen, so a growing buffer is
   checked in linear time. ---- */
static FZ_UNUSED int fz_utf8_check_from(const uint8_t *s, size_t n, size_t *from, int *complete) {
    size_t i = *from;
    *complete = 1;
    while (i < n) {
        uint8_t c = s[i];
        size_t need, k;
        uint8_t lo = 0x80, hi = 0xBF;
        *from = i;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return 0;
        for (k = 1; k <= need; k++) {
            if (i + k >= n) { *complete = 0; return 1; }   /* truncated, prefix fine so far */
            if (k == 1 ? (s[i + 1] < lo || s[i + 1] > hi) : (s[i + k] < 0x80 || s[i + k] > 0xBF)) return 0;
        }
        i += need + 1;
    }
    *from = i;
    return 1;
}
static FZ_UNUSED int fz_utf8_check(const uint8_t *s, size_t n, int *complete) {
    size_t from = 0;
    return fz_utf8_check_from(s, n, &from, complete);
}
static FZ_UNUSED int fz_utf8_valid(const uint8_t *s, size_t n) {
    int complete;
    return fz_utf8_check(s, n, &complete) && complete;
}
/* Appends the UTF-8 form of one code point (surrogates allowed: WTF-8). */
static FZ_UNUSED void fz_put_cp(fz_bytes *b, uint32_t cp) {
    if (cp < 0x80) fz_put1(b, (uint8_t)cp);
    else if (cp < 0x800) { fz_put1(b, (uint8_t)(0xC0 | cp >> 6)); fz_put1(b, (uint8_t)(0x80 | (cp & 63))); }
    else if (cp < 0x10000) {
        fz_put1(b, (uint8_t)(0xE0 | cp >> 12)); fz_put1(b, (uint8_t)(0x80 | ((cp >> 6) & 63)));
        fz_put1(b, (uint8_t)(0x80 | (cp & 63)));
    } else {
        fz_put1(b, (uint8_t)(0xF0 | cp >> 18)); fz_put1(b, (uint8_t)(0x80 | ((cp >> 12) & 63)));
        fz_put1(b, (uint8_t)(0x80 | ((cp >> 6) & 63))); fz_put1(b, (uint8_t)(0x80 | (cp & 63)));
    }
}
/* Valid UTF-8 text of about n bytes (never more) from the PRNG, mixing all
   encoded lengths, including the edges of each range. */
static FZ_UNUSED void fz_gen_utf8(fz_bytes *b, uint64_t *rng, size_t n) {
    static const uint32_t edges[] = { 0x00, 0x7F, 0x80, 0x7FF, 0x800, 0xFFF, 0x1000, 0xD7FF, 0xE000,
                                      0xFFFD, 0xFFFF, 0x10000, 0x3FFFF, 0x40000, 0xFFFFF, 0x100000, 0x10FFFF };
    size_t start = b->len;
    while (b->len - start < n) {
        size_t room = n - (b->len - start);
        uint32_t cp;
        unsigned r = (unsigned)fz_below(rng, 8);
        if (r < 3 || room < 2) cp = (uint32_t)fz_below(rng, 0x80);
        else if (r == 3) cp = edges[fz_below(rng, sizeof edges / sizeof edges[0])];
        else if (r == 4) cp = 0x80 + (uint32_t)fz_below(rng, 0x800 - 0x80);
        else if (r == 5) { cp = 0x800 + (uint32_t)fz_below(rng, 0x10000 - 0x800); if (cp >= 0xD800 && cp <= 0xDFFF) cp -= 0x800; }
        else cp = 0x10000 + (uint32_t)fz_below(rng, 0x110000 - 0x10000);
        if ((cp >= 0x800 && room < 3) || (cp >= 0x10000 && room < 4) || (cp >= 0x80 && room < 2))
            cp = (uint32_t)fz_below(rng, 0x80);
        fz_put_cp(b, cp);
    }
}

#endif /* FUZZ_COMMON_H */
