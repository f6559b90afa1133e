/* Minimal test harness: CHECK counts, never aborts, so one run reports every
   failure. Each test program ends with the line "N passed, M failed". */
#ifndef AU_TEST_H
#define AU_TEST_H
#include <stdio.h>
#include <string.h>
#include <stdint.h>

static int t_pass, t_fail;
static const char *t_ctx = "";   /* what is being fed: whole, bytewise, split:seed */

#define CHECK(c) do { if (c) t_pass++; else { t_fail++; \
    fprintf(stderr, "%s:%d: [%s] CHECK(%s) failed\n", __FILE__, __LINE__, t_ctx, #c); } } while (0)
#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); if (a_ == b_) t_pass++; else { t_fail++; \
    fprintf(stderr, "%s:%d: [%s] %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, t_ctx, #a, a_, #b, b_); } } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); if (a_ && b_ && strcmp(a_, b_) == 0) t_pass++; else { t_fail++; \
    fprintf(stderr, "%s:%d: [%s] %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, t_ctx, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } } while (0)
#define CHECK_MEM(p, n, s) do { const char *s_ = (s); size_t n_ = (size_t)(n); \
    const void *p_ = (p); if (p_ && n_ == strlen(s_) && memcmp(p_, s_, n_) == 0) t_pass++; else { t_fail++; \
    fprintf(stderr, "%s:%d: [%s] %s is \"%.*s\", expected \"%s\"\n", __FILE__, __LINE__, t_ctx, #p, \
            p_ ? (int)(n_ > 200 ? 200 : n_) : 6, p_ ? (const char *)p_ : "(null)", s_); } } while (0)

static int t_report(void) {
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}

/* deterministic PRNG for random splits (xorshift64*) */
static uint64_t t_rng_state = 88172645463325252ull;
static void t_seed(uint64_t s) { t_rng_state = s ? s : 1; }
static uint64_t t_rand(void) {
    t_rng_state ^= t_rng_state >> 12; t_rng_state ^= t_rng_state << 25; t_rng_state ^= t_rng_state >> 27;
    return t_rng_state * 2685821657736338717ull;
}

/* Feeding modes used by every streaming parser test: whole, one byte at a
   time, then random splits under a handful of fixed seeds. */
#define T_NMODES 7
static const char *t_mode_name(int mode) {
    static const char *const names[T_NMODES] = { "whole", "bytewise", "split:1", "split:2", "split:3", "split:42", "split:1234" };
    return names[mode];
}
static void t_mode_begin(int mode) {
    static const uint64_t seeds[T_NMODES] = { 0, 0, 1, 2, 3, 42, 1234 };
    t_ctx = t_mode_name(mode);
    t_seed(seeds[mode]);
}
/* size of the next chunk to feed, given what is left */
static size_t t_chunk(int mode, size_t left) {
    size_t n;
    if (mode == 0) return left;
    if (mode == 1) return left ? 1 : 0;
    n = 1 + (size_t)(t_rand() % 17);
    if (t_rand() % 8 == 0) n += (size_t)(t_rand() % 4096);
    return n < left ? n : left;
}
#endif
