/* Deterministic simulation of the alwaysup session core (au_core_*).

     build/sim [--seeds N] [--first S] [--seed S] [--regressions FILE] [--quiet]
     build/sim-mutant-K ...        the same, with rule K broken (ALWAYSUP_MUTANT)

   One schedule is a run of the core against a model MCP client and a model
   daemon on a virtual clock. Every choice (what happens next, which id, how
   long, which daemon misbehaviour) is drawn from one tape of numbers: from a
   seed, or from bytes (tests/fuzz/fuzz_sim.c). A failing tape is shrunk
   (cut, zeroed, halved while it still fails) and its trace printed, so a
   failure reads as a short story. After every step the invariants are
   checked:
     - every client request gets exactly one answer, with its own tag;
       a request no daemon holds is answered by its deadline (queue timeout,
       or init_grace for initialize); stdout carries only whole JSON-RPC lines;
     - no answer to one of the shim's own requests reaches the client; the
       shim's requests carry SDK-style integer ids that no pending client
       request has; a daemon never has two requests with one id outstanding
       and never gets an answer it did not ask for on that connection;
     - the client's initialize is never answered with an error for a lost
       connection; a daemon that has seen the session gets initialize (and
       initialized, setLevel) before any request sent after it;
     - a live connection is dropped only for silence past the keepalive bound,
       a setup past its bound or a refusal;
     - queues and tables stay within their bounds; once the daemon is back and
       quiet every request has been answered and nothing is left waiting.
   Ends with "N passed, M failed"; exits 1 on any failure. */
#define ALWAYSUP_IMPLEMENTATION
#include "alwaysup.h"

#include <stdarg.h>
#include <stdio.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>
#endif
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the tape */
typedef struct {
    uint32_t *rec;             /* mode 0 records here */
    size_t rec_n, rec_cap;
    const uint32_t *v;         /* mode 1 replays this */
    size_t n, at;
    int mode;                  /* 0: draw from the seed and record, 1: replay v, 2: bytes */
    uint64_t s;
    const uint8_t *bytes;
    size_t nbytes, bat;
} sim_tape;
static sim_tape T;

static uint64_t sim_splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
/* a number in [0, n); an exhausted tape gives 0, the simplest choice */
static uint32_t rnd(uint32_t n) {
    uint32_t x = 0;
    if (n <= 1) return 0;
    if (T.mode == 0) {
        x = (uint32_t)(sim_splitmix(&T.s) >> 32) % n;
        if (T.rec_n == T.rec_cap) {
            T.rec_cap = T.rec_cap ? T.rec_cap * 2 : 1024;
            T.rec = (uint32_t *)realloc(T.rec, T.rec_cap * sizeof *T.rec);
            if (!T.rec) abort();
        }
        T.rec[T.rec_n++] = x;
    } else if (T.mode == 1) {
        if (T.at < T.n) x = T.v[T.at++] % n;
    } else {
        if (T.bat + 1 < T.nbytes) { x = (uint32_t)(T.bytes[T.bat] | T.bytes[T.bat + 1] << 8) % n; T.bat += 2; }
        else T.bat = T.nbytes;
    }
    return x;
}
static int chance(uint32_t percent) { return rnd(100) < percent; }

/* ---------------------------------------------------------------- a small JSON reader, our own */
typedef struct { const char *p; size_t n; } tk;
static const char *js_ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}
static const char *js_str(const char *p, const char *e) {
    if (p >= e || *p != '"') return NULL;
    for (p++; p < e; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') return p + 1;
        if (ch < 0x20) return NULL;
        if (ch == '\\') {
            if (++p >= e) return NULL;
            if (*p == 'u') {
                int k;
                for (k = 0; k < 4; k++)
                    if (++p >= e || !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'))) return NULL;
            } else if (!strchr("\"\\/bfnrt", *p)) return NULL;
        }
    }
    return NULL;
}
static const char *js_num(const char *p, const char *e) {
    const char *s = p;
    if (p < e && *p == '-') p++;
    if (p < e && *p == '0') p++;
    else if (p < e && *p >= '1' && *p <= '9') while (p < e && *p >= '0' && *p <= '9') p++;
    else return NULL;
    if (p < e && *p == '.') { p++; if (p >= e || *p < '0' || *p > '9') return NULL; while (p < e && *p >= '0' && *p <= '9') p++; }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    return p > s ? p : NULL;
}
static const char *js_val(const char *p, const char *e, int depth) {
    p = js_ws(p, e);
    if (p >= e || depth > 64) return NULL;
    if (*p == '"') return js_str(p, e);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = js_ws(p + 1, e);
        if (p < e && *p == close) return p + 1;
        for (;;) {
            if (obj) {
                p = js_str(js_ws(p, e), e);
                if (!p) return NULL;
                p = js_ws(p, e);
                if (p >= e || *p != ':') return NULL;
                p++;
            }
            p = js_val(p, e, depth + 1);
            if (!p) return NULL;
            p = js_ws(p, e);
            if (p < e && *p == ',') { p++; continue; }
            if (p < e && *p == close) return p + 1;
            return NULL;
        }
    }
    if (e - p >= 4 && (!memcmp(p, "true", 4) || !memcmp(p, "null", 4))) return p + 4;
    if (e - p >= 5 && !memcmp(p, "false", 5)) return p + 5;
    return js_num(p, e);
}
static int js_whole(tk t) {
    const char *end = js_val(t.p, t.p + t.n, 0);
    return end && js_ws(end, t.p + t.n) == t.p + t.n;
}
/* the member key of an object (keys compared as written; ours are plain) */
static int js_get(tk obj, const char *key, tk *out) {
    const char *p = js_ws(obj.p, obj.p + obj.n), *e = obj.p + obj.n;
    size_t kl = strlen(key);
    if (p >= e || *p != '{') return 0;
    p = js_ws(p + 1, e);
    if (p < e && *p == '}') return 0;
    for (;;) {
        const char *ks = js_ws(p, e), *ke = js_str(ks, e), *vs, *ve;
        if (!ke) return 0;
        p = js_ws(ke, e);
        if (p >= e || *p != ':') return 0;
        vs = js_ws(p + 1, e);
        ve = js_val(vs, e, 0);
        if (!ve) return 0;
        if ((size_t)(ke - ks) == kl + 2 && !memcmp(ks + 1, key, kl)) { out->p = vs; out->n = (size_t)(ve - vs); return 1; }
        p = js_ws(ve, e);
        if (p < e && *p == ',') { p++; continue; }
        return 0;
    }
}
static int js_path(tk obj, const char *a, const char *b, tk *out) {
    tk mid;
    return js_get(obj, a, &mid) && js_get(mid, b, out);
}
static int js_int(tk t, long long *v) {
    size_t i = 0;
    long long x = 0;
    int neg = 0;
    if (t.n && t.p[0] == '-') { neg = 1; i = 1; }
    if (i >= t.n || t.n - i > 18) return 0;
    for (; i < t.n; i++) { if (t.p[i] < '0' || t.p[i] > '9') return 0; x = x * 10 + (t.p[i] - '0'); }
    *v = neg ? -x : x;
    return 1;
}
static int tk_is(tk t, const char *s) { return t.n == strlen(s) && !memcmp(t.p, s, t.n); }

/* ---------------------------------------------------------------- the world */
/* Ids the client uses, in groups of one JSON value written several ways. */
static const struct { const char *text; int group; } POOL[] = {
    { "1", 0 }, { "1.0", 0 }, { "1e0", 0 }, { "10E-1", 0 }, { "0", 1 }, { "-0", 1 }, { "0.0", 1 },
    { "2", 2 }, { "3", 3 }, { "4", 4 }, { "5", 5 }, { "6", 6 }, { "7", 7 }, { "-7", 8 },
    { "9007199254740991", 9 }, { "123456789012345678901234567890", 10 }, { "1.5", 11 },
    { "\"a\"", 12 }, { "\"\\u0061\"", 12 }, { "\"1\"", 13 }, { "\"x/y\"", 14 }, { "\"x\\/y\"", 14 },
    { "\"\"", 15 }, { "\"alwaysup-1\"", 16 }, { "\"s\\n2\"", 17 }
};
#define NPOOL ((int)(sizeof POOL / sizeof POOL[0]))
#define NGROUPS 18
/* the value of a group that is a plain integer, for comparing with the shim's ids */
static const long long GROUP_INT[NGROUPS] = { 1, 0, 2, 3, 4, 5, 6, 7, -7, 9007199254740991LL, -1, -1, -1, -1, -1, -1, -1, -1 };
static const int GROUP_IS_INT[NGROUPS] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0 };

enum { M_INIT, M_CALL, M_LIST, M_PING, M_LEVEL, M_SUB, M_READ, M_OTHER, M_COUNT };
static const char *const METHOD[M_COUNT] = { "initialize", "tools/call", "tools/list", "ping", "logging/setLevel",
                                              "resources/subscribe", "resources/read", "custom/thing" };

typedef struct {
    int used, group, method, tag;
    int64_t t;                 /* when the client sent it */
    unsigned sent_gen;         /* the connection the core last sent it on, 0: never */
    int needs_init, needs_initialized, needs_level;   /* what a daemon must have seen first */
    int session_init;          /* the initialize the session is made of (a later one is an ordinary request) */
    /* EXAI */
    int64_t ack_deadline;      /* acked: answered by then (the ack's timeout plus the grace) */
    int retry_wait;            /* the daemon said "still being processed": the core asks again */
    int64_t retry_bound;
    char rid[64];              /* the request id the core gave the call */
    int ptok;                  /* gave a progressToken */
    long long last_progress;
    char id[48];
} creq;

typedef struct {               /* a request a daemon life holds */
    int used, is_shim, tag, method;
    long long key;             /* canonical id */
    int64_t due;
    char id[48];
} dheld;

typedef struct { char *p; size_t n; int kind; } item;   /* kind: 0 text, 1 binary, 2 pong, 3 ping */
typedef struct { item *v; size_t head, n, cap; } chan;

#define MAXHELD 256
#define MAXTAGS 2048
#define MAXDREQ 64
typedef struct {
    int open;                  /* the connection is up (1) or the core is closing it (2) */
    unsigned gen;
    int64_t up_at, last_input, down_at;
    int strict, frozen, hello_done, hello_refuse, refused, crash_on_init, init_refuse, keeps_session;
    int64_t init_delay;
    int got_init, got_initialized, got_level;
    dheld held[MAXHELD];
    struct { int used, dtag; long long id; } dreq[MAXDREQ];
    long long next_dreq;
    chan to_daemon, to_shim;
} life;

typedef struct {
    au_core core;
    au_core_desc desc;
    int64_t now;
    int mcp, calm, steps;
    /* the client */
    creq pend[NGROUPS];
    int burned[NGROUPS];       /* cancelled ids are never used again */
    struct { signed char pool, method, needs_init, needs_initialized, needs_level; } tags[MAXTAGS];   /* every request sent */
    int stopped, session_init_pending, gone;
    int64_t stop_at;
    int next_tag, eof, init_sent, init_ok, initialized_sent, level_sent, paused;
    int64_t eof_at;
    int expect_null, expect_group[NGROUPS];   /* immediate errors the last client line must get */
    struct { int used, dtag; char id[32]; } dpend[MAXDREQ];
    long long notes_sent, notes_seen, dreqs_sent, dreqs_seen, note_expect;
    unsigned answers, local_inits, errors_lost, errors_timeout, replays, drops;
    /* the daemon side */
    int daemon_up;             /* the daemon process is running */
    int64_t daemon_next_toggle;
    int connecting;
    int64_t connect_at;
    int connect_ok;
    unsigned gen;
    life L;
    int next_dtag;
    int pre_connected;
    /* outcome */
    int failed;
    const char *kind;          /* the violated check (its format), so shrinking keeps to one bug */
    char why[600];
    int tracing;
    char *trace;
    size_t trace_len, trace_cap;
    /* EXAI: the daemon process (its result store survives a dropped connection, not a restart) */
    int exai;
    struct { int used, tag, done, kind, acked; unsigned gen; int64_t due; char rid[64]; } xc[128];
    int tools_version, seen_version, list_changed_since_seen, lists_seen;
    char sid[96];
    unsigned lost_gen;
} world;
static world W;

static void sim_trace(const char *fmt, ...) {
    va_list ap;
    char line[700];
    int n;
    if (!W.tracing) return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    if (W.trace_len + (size_t)n + 32 > W.trace_cap) {
        W.trace_cap = (W.trace_cap + (size_t)n + 32) * 2;
        W.trace = (char *)realloc(W.trace, W.trace_cap);
        if (!W.trace) abort();
    }
    W.trace_len += (size_t)snprintf(W.trace + W.trace_len, W.trace_cap - W.trace_len, "%8.3f  %s\n", (double)W.now / 1000.0, line);
}
static void violation(const char *fmt, ...) {
    va_list ap;
    if (W.failed) return;
    W.failed = 1;
    W.kind = fmt;
    va_start(ap, fmt);
    vsnprintf(W.why, sizeof W.why, fmt, ap);
    va_end(ap);
    sim_trace("VIOLATION: %s", W.why);
}
#define CHECK(cond, ...) do { if (!(cond)) violation(__VA_ARGS__); } while (0)

static void chan_push(chan *c, const char *p, size_t n, int kind) {
    item *it;
    if (c->head + c->n == c->cap) {
        if (c->head) { memmove(c->v, c->v + c->head, c->n * sizeof *c->v); c->head = 0; }
        else {
            c->cap = c->cap ? c->cap * 2 : 16;
            c->v = (item *)realloc(c->v, c->cap * sizeof *c->v);
            if (!c->v) abort();
        }
    }
    it = &c->v[c->head + c->n++];
    it->p = (char *)malloc(n + 1);
    if (!it->p) abort();
    memcpy(it->p, p, n);
    it->p[n] = 0;
    it->n = n;
    it->kind = kind;
}
static item chan_pop(chan *c) {
    item it = c->v[c->head++];
    if (--c->n == 0) c->head = 0;
    return it;
}
static void chan_clear(chan *c) {
    while (c->n) free(chan_pop(c).p);
}
static void chan_free(chan *c) { chan_clear(c); free(c->v); memset(c, 0, sizeof *c); }

static int pool_group(tk id) {
    int i;
    for (i = 0; i < NPOOL; i++)
        if (tk_is(id, POOL[i].text)) return POOL[i].group;
    return -1;
}
/* a canonical key for any id a daemon sees: pool groups, or 1000 + an integer */
static long long id_key(tk id) {
    long long v;
    int g = pool_group(id);
    if (g >= 0) return g;
    if (js_int(id, &v)) return 1000 + v;
    return -1000;
}

/* ---------------------------------------------------------------- the core's actions */
static void client_gets(const char *p, size_t n);
static void daemon_gets(const char *p, size_t n);
static void exai_mark_sent(const char *p, size_t n);
static void daemon_gets_exai(const char *p, size_t n);
static void client_request_exai(void);
static int client_gets_exai(creq *q, int has_res, tk res, tk err, long long code, const char *p);
static void exai_before_delivery(const char *p, size_t n);
static void xc_clear(void);
static creq *pend_by_tag(long long tag);
static int life_live(void) { return W.L.open == 1; }

static void end_life(const char *why) {
    sim_trace("daemon connection %u ends: %s", W.L.gen, why);
    W.lost_gen = W.L.gen;
    chan_clear(&W.L.to_daemon);
    chan_clear(&W.L.to_shim);
    W.L.open = 0;
}
static int64_t ms_of(double s) { return (int64_t)(s * 1000.0 + 0.5); }

/* a client request the core sends is held by that connection from now on */
static void mark_sent(const char *p, size_t n) {
    tk m = { p, n }, id, params, v;
    long long tag;
    int g;
    if (W.exai) { exai_mark_sent(p, n); return; }
    if (!js_whole(m) || !js_get(m, "id", &id) || !js_get(m, "method", &v)) return;
    if (!js_get(m, "params", &params) || !js_get(params, "tag", &v) || !js_int(v, &tag)) tag = -1;
    g = pool_group(id);
    if (g >= 0 && W.pend[g].used && W.pend[g].tag == tag && tk_is(id, W.pend[g].id)) { W.pend[g].sent_gen = W.L.gen; return; }
    if (tag > 0 && tag <= W.next_tag && tk_is(id, POOL[(int)W.tags[tag].pool].text)) return;   /* the client's, cancelled */
    if (js_int(id, &tag))                                    /* one of the shim's own, chosen just now */
        for (g = 0; g < NGROUPS; g++)
            CHECK(!(W.pend[g].used && GROUP_IS_INT[g] && GROUP_INT[g] == tag),
                  "the shim's request uses id %lld, which a pending client request has (%s)", tag, W.pend[g].id);
}

static char *act_copy;
static size_t act_copy_cap;
static void take_actions(void) {
    au_action a;
    while (au_core_next_action(&W.core, &a)) {
        if (a.data && (a.type == AU_ACT_STDOUT || a.type == AU_ACT_LOG || a.type == AU_ACT_SAVE)) {   /* messages print as strings */
            if (a.len + 1 > act_copy_cap) {
                act_copy_cap = (a.len + 1) * 2;
                act_copy = (char *)realloc(act_copy, act_copy_cap);
                if (!act_copy) abort();
            }
            memcpy(act_copy, a.data, a.len);
            act_copy[a.len] = 0;
            a.data = act_copy;
        }
        switch (a.type) {
        case AU_ACT_STDOUT:
            CHECK(!W.gone, "the core wrote to stdout after it was closed");
            client_gets(a.data, a.len);
            break;
        case AU_ACT_SEND:
            CHECK(W.L.open, "the core sent a message with no connection open: %.80s", a.data);
            if (W.L.open) { chan_push(&W.L.to_daemon, a.data, a.len, 0); mark_sent(a.data, a.len); }
            if (W.tracing) sim_trace("core -> daemon: %.*s", (int)(a.len < 160 ? a.len : 160), a.data);
            break;
        case AU_ACT_PING:
            CHECK(W.L.open, "the core pinged with no connection open");
            sim_trace("core: ping%s", W.L.frozen ? " (the daemon is frozen)" : "");
            if (W.L.open && !W.L.frozen) chan_push(&W.L.to_shim, "", 0, 2);
            break;
        case AU_ACT_CONNECT:
            CHECK(!W.L.open && !W.connecting, "the core asked for a connection while one is open or opening");
            W.connecting = 1;
            W.connect_ok = W.daemon_up;
            W.connect_at = W.now + (W.daemon_up ? 1 + rnd(40) : (chance(70) ? 1 : ms_of(AU_DEFAULT_CONNECT_TIMEOUT)));
            sim_trace("core: connect (daemon %s)", W.daemon_up ? "up" : "down");
            break;
        case AU_ACT_CLOSE:
            CHECK(W.L.open, "the core closed a connection that is not open");
            sim_trace("core: close %u", a.code);
            if (W.L.open) W.L.open = 2;
            break;
        case AU_ACT_DROP: {
            int64_t quiet = W.now - W.L.last_input;
            int legit = !W.L.open || W.L.open == 2 || W.L.refused || W.eof || W.core.phase >= AU__CLOSING ||
                        (W.desc.ping_interval > 0 && W.desc.ping_timeout > 0 &&
                         quiet >= ms_of(W.desc.ping_interval) + ms_of(W.desc.ping_timeout)) ||
                        (!W.pre_connected && W.now - W.L.up_at >= ms_of(W.core.d.setup_timeout)) ||
                        (!W.pre_connected && W.core.d.hello && W.now - W.L.up_at >= ms_of(W.core.d.hello_ack_timeout));
            sim_trace("core: drop");
            if (W.connecting) { W.connecting = 0; break; }
            CHECK(legit, "the core dropped a live connection (last input %.3f s ago, up %.3f s, %s)", (double)quiet / 1000.0,
                  (double)(W.now - W.L.up_at) / 1000.0, W.pre_connected ? "session up" : "setting up");
            W.drops++;
            end_life("dropped by the core");
            break;
        }
        case AU_ACT_SAVE: {
            tk t = { a.data, a.len };
            CHECK(a.len && a.data[0] == '{' && js_whole(t), "the core saved something that is not an InitializeResult");
            break;
        }
        case AU_ACT_LOG:
            CHECK(a.event && a.event[0], "a log action without an event name");
            CHECK(!a.data || !strstr(a.data, "s3cret"), "the hello's token reached the log: %s", a.data);
            if (a.event && !strcmp(a.event, "replay")) W.replays++;
            if (W.tracing) sim_trace("core log %s: %s", a.event ? a.event : "?", a.data ? a.data : "");
            break;
        default: violation("unknown action %d", a.type);
        }
    }
}

/* ---------------------------------------------------------------- the client model */
static void client_gets(const char *p, size_t n) {
    tk line = { p, n }, v, id, res, err;
    long long x;
    CHECK(n > 0 && !memchr(p, '\n', n), "stdout got a line break inside a message");
    if (!js_whole(line) || p[0] != '{') { violation("stdout got something that is not one JSON object: %.100s", p); return; }
    if (!js_get(line, "jsonrpc", &v) || !tk_is(v, "\"2.0\"")) { violation("stdout message without \"jsonrpc\":\"2.0\": %.100s", p); return; }
    if (js_get(line, "method", &v)) {
        tk params;
        if (js_get(line, "id", &id)) {                          /* a daemon's request */
            int i, dtag = -1, slot = -1;
            if (js_get(line, "params", &params) && js_get(params, "dtag", &v) && js_int(v, &x)) dtag = (int)x;
            CHECK(dtag >= 0 && id.n < 32, "a request reached the client that no daemon sent: %.100s", p);
            W.dreqs_seen++;
            for (i = 0; i < MAXDREQ; i++)
                if (W.dpend[i].used && tk_is(id, W.dpend[i].id)) W.dpend[i].used = 0;   /* the newest with an id wins */
            for (i = 0; i < MAXDREQ; i++) if (!W.dpend[i].used) { slot = i; break; }
            if (slot >= 0 && dtag >= 0 && id.n < 32) {
                W.dpend[slot].used = 1;
                W.dpend[slot].dtag = dtag;
                memcpy(W.dpend[slot].id, id.p, id.n);
                W.dpend[slot].id[id.n] = 0;
            }
            return;
        }
        if (tk_is(v, "\"notifications/message\"")) {
            CHECK(js_get(line, "params", &params) && js_path(params, "data", "seq", &v) && js_int(v, &x) && x == W.note_expect,
                  "a daemon notification reached the client out of order or twice (expected %lld): %.100s", W.note_expect, p);
            W.note_expect = 0;
            W.notes_seen++;
        } else if (tk_is(v, "\"notifications/cancelled\"")) {
            int i;
            tk rid;
            CHECK(W.mcp && js_get(line, "params", &params) && js_get(params, "requestId", &rid), "a bad cancellation: %.100s", p);
            if (js_get(line, "params", &params) && js_get(params, "requestId", &rid))
                for (i = 0; i < MAXDREQ; i++)
                    if (W.dpend[i].used && tk_is(rid, W.dpend[i].id) && chance(70)) W.dpend[i].used = 0;
        } else if (W.exai && tk_is(v, "\"notifications/progress\"")) {
            tk tok, pr;
            long long t = -1, n2 = -1;
            creq *q;
            CHECK(js_get(line, "params", &params) && js_get(params, "progressToken", &tok) && tok.n > 4 && !memcmp(tok.p, "\"pt", 3) &&
                  js_get(params, "progress", &pr) && js_int(pr, &n2), "a bad progress notification: %.100s", p);
            if (js_get(line, "params", &params) && js_get(params, "progressToken", &tok) && tok.n > 4) t = atoll(tok.p + 3);
            q = pend_by_tag(t);
            CHECK(q && q->ptok, "progress for a call that is not waiting or gave no token: %.100s", p);
            if (q) { CHECK(n2 > q->last_progress, "progress went back (%lld after %lld): %.100s", n2, q->last_progress, p); q->last_progress = n2; }
        } else if (W.exai && tk_is(v, "\"notifications/tools/list_changed\"")) {
            W.list_changed_since_seen = 1;
        } else {
            CHECK(W.mcp && v.n > 16 && !memcmp(v.p, "\"notifications/", 15) && v.n > 14 &&
                  !memcmp(v.p + v.n - 14, "/list_changed\"", 14), "an unexpected notification reached the client: %.100s", p);
        }
        return;
    }
    if (!js_get(line, "id", &id)) { violation("a message with neither method nor id reached the client: %.100s", p); return; }
    {
        int has_res = js_get(line, "result", &res), has_err = js_get(line, "error", &err), g;
        long long code = 0;
        creq *q;
        CHECK(has_res != has_err, "an answer needs exactly one of result and error: %.100s", p);
        if (has_err) { tk c; CHECK(js_get(err, "code", &c) && js_int(c, &code), "an error without an integer code: %.100s", p); }
        if (tk_is(id, "null")) {
            CHECK(has_err && W.expect_null > 0, "an unexpected answer with id null: %.100s", p);
            if (W.expect_null > 0) W.expect_null--;
            return;
        }
        g = pool_group(id);
        if (g < 0) { violation("an answer reached the client for an id it never used (the shim's own?): %.100s", p); return; }
        if (W.expect_group[g] && has_err && code == -32600) { W.expect_group[g]--; return; }
        q = &W.pend[g];
        if (q->used && W.exai) {
            client_gets_exai(q, has_res, res, err, code, p);
            sim_trace("client: answer for %s %s (tag %d)%s", METHOD[q->method], q->id, q->tag, has_err ? " [error]" : "");
            W.answers++;
            q->used = 0;
            return;
        }
        if (!q->used) { violation("an answer for id %.*s, which has no request waiting (twice, cancelled or the shim's): %.100s", (int)id.n, id.p, p); return; }
        if (has_res) {
            int local = 0;
            if (js_get(res, "tag", &v) && js_int(v, &x) && x == q->tag) {
            } else if (q->session_init && js_get(res, "protocolVersion", &v) && js_get(res, "capabilities", &v) &&
                       js_get(res, "serverInfo", &v)) {
                local = 1;
                W.local_inits++;
            } else if (W.mcp && q->method == M_PING && tk_is(res, "{}")) {
                local = 1;
            } else {
                violation("the answer to %s %s carries another request's result: %.120s", METHOD[q->method], q->id, p);
                return;
            }
            if (q->session_init) W.init_ok = 1;
            if (q->method == M_LEVEL) W.level_sent = W.mcp && W.init_ok;   /* a level the client knows is set */
            (void)local;
        } else {
            tk msg, data;
            int lost = js_get(err, "message", &msg) && msg.n > 30 && strstr(p, "connection to the daemon was lost");
            if (js_get(err, "data", &data) && js_get(data, "tag", &v)) {
                CHECK(js_int(v, &x) && x == q->tag, "the error for %s %s belongs to another request: %.120s", METHOD[q->method], q->id, p);
            } else {
                CHECK(code == -32000, "a shim error with code %lld for %s: %.120s", code, METHOD[q->method], p);
                CHECK(!q->session_init || W.stopped, "the client's initialize got an error from the shim: %.160s", p);
                if (lost) W.errors_lost++; else W.errors_timeout++;
            }
        }
        if (q->session_init) W.session_init_pending = 0;
        sim_trace("client: answer for %s %s (tag %d)%s", METHOD[q->method], q->id, q->tag, has_err ? " [error]" : "");
        W.answers++;
        q->used = 0;
    }
}

static void core_line(const char *p, size_t n) {
    W.pre_connected = au_core_connected(&W.core);
    au_core_client_line(&W.core, p, n, W.now);
    take_actions();
}

static void core_str(const char *line) { core_line(line, strlen(line)); }

static void client_request(void) {
    int g, k, i, method;
    char line[512];
    creq *q;
    size_t n;
    if (W.exai) { client_request_exai(); return; }
    /* the method: initialize first as a rule, anything in any order sometimes */
    if (W.mcp && !W.init_sent && chance(85)) method = M_INIT;
    else {
        method = (int)rnd(M_COUNT);
        if (method == M_INIT && W.init_sent && chance(90)) method = M_CALL;   /* a second initialize, rarely */
    }
    /* the id: any from the pool that is free; sometimes one that is pending, which must be refused */
    for (k = 0; k < 8; k++) {
        i = (int)rnd(NPOOL);
        g = POOL[i].group;
        if (W.burned[g]) continue;
        if (W.pend[g].used) {
            if (method == M_INIT || !chance(20)) continue;
            n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"%s\",\"params\":{\"tag\":%d}}",
                                 POOL[i].text, METHOD[method], 999999);
            sim_trace("client: %s with the id %s of a pending request", METHOD[method], POOL[i].text);
            W.expect_group[g]++;
            core_line(line, n);
            CHECK(!W.expect_group[g], "a request reusing a pending id (%s) was not refused at once", POOL[i].text);
            W.expect_group[g] = 0;
            return;
        }
        q = &W.pend[g];
        memset(q, 0, sizeof *q);
        if (W.next_tag + 1 >= MAXTAGS) return;
        q->used = 1;
        q->group = g;
        q->method = method;
        q->tag = ++W.next_tag;
        W.tags[q->tag].pool = (signed char)i;
        W.tags[q->tag].method = (signed char)method;
        q->t = W.now;
        q->needs_init = W.mcp && W.init_ok;
        q->needs_initialized = q->needs_init && W.initialized_sent;
        q->needs_level = q->needs_init && W.level_sent;
        snprintf(q->id, sizeof q->id, "%s", POOL[i].text);
        W.tags[q->tag].needs_init = (signed char)q->needs_init;
        W.tags[q->tag].needs_initialized = (signed char)q->needs_initialized;
        W.tags[q->tag].needs_level = (signed char)q->needs_level;
        if (method == M_INIT)
            n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                                 "\"2025-06-18\",\"capabilities\":{\"roots\":{}},\"clientInfo\":{\"name\":\"sim\",\"version\":\"1\"},\"tag\":%d}}",
                                 q->id, q->tag);
        else if (method == M_LEVEL)
            n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"logging/setLevel\",\"params\":{\"level\":\"%s\",\"tag\":%d}}",
                                 q->id, chance(50) ? "debug" : "error", q->tag);
        else if (method == M_SUB)
            n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"sim://r%u\",\"tag\":%d}}",
                                 q->id, rnd(3), q->tag);
        else
            n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"%s\",\"params\":{\"tag\":%d}}", q->id, METHOD[method], q->tag);
        if (method == M_INIT) W.init_sent = 1;
        if (method == M_INIT && W.mcp && !W.session_init_pending && !W.init_ok) q->session_init = W.session_init_pending = 1;

        sim_trace("client: %s id %s tag %d", METHOD[method], q->id, q->tag);
        core_line(line, n);
        return;
    }
}

static void client_other(void) {
    char line[300];
    size_t n;
    int i, g;
    switch (rnd(9)) {
    case 0:                                                 /* notifications/initialized */
        if (!W.init_ok) break;
        sim_trace("client: notifications/initialized");
        W.initialized_sent = W.mcp;
        core_str("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
        break;
    case 1: {                                               /* cancel a pending request, or one that is gone */
        creq *q = NULL;
        for (i = 0; i < 4 && !q; i++) { g = (int)rnd(NGROUPS); if (W.pend[g].used && W.pend[g].method != M_INIT) q = &W.pend[g]; }
        if (!W.mcp && !W.exai) break;                       /* cancellation is MCP's */
        if (!q) {
            sim_trace("client: cancels an id with nothing pending");
            core_str("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":424242}}");
            break;
        }
        n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":%s,\"reason\":\"user\"}}", q->id);
        sim_trace("client: cancels %s %s", METHOD[q->method], q->id);
        W.burned[q->group] = 1;
        q->used = 0;
        core_line(line, n);
        break;
    }
    case 2: case 3: {                                       /* answer a daemon's request, maybe twice */
        int k = -1, twice = chance(15);
        for (i = 0; i < 6 && k < 0; i++) { int j = (int)rnd(MAXDREQ); if (W.dpend[j].used) k = j; }
        if (k < 0) break;
        n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"dtag\":%d}}", W.dpend[k].id, W.dpend[k].dtag);
        sim_trace("client: answers the daemon's request %s%s", W.dpend[k].id, twice ? " twice" : "");
        if (!twice) W.dpend[k].used = 0;
        core_line(line, n);
        break;
    }
    case 4:                                                 /* an answer to nothing */
        sim_trace("client: answers a request nobody sent");
        core_str("{\"jsonrpc\":\"2.0\",\"id\":31337,\"result\":{}}");
        break;
    case 5:                                                 /* garbage, a null id, a blank line */
        switch (rnd(4)) {
        case 0: sim_trace("client: garbage"); W.expect_null++; core_str("{\"jsonrpc\":\"2.0\",\"method\":"); break;
        case 1: sim_trace("client: id null"); W.expect_null++; core_str("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"tools/list\"}"); break;
        case 2: sim_trace("client: blank line"); core_str("  "); break;
        default: sim_trace("client: not JSON-RPC"); W.expect_null++; core_str("{\"hello\":1}"); break;
        }
        CHECK(W.expect_null == 0, "a bad line from the client was not answered with an error");
        W.expect_null = 0;
        break;
    case 6: {                                               /* a line over the limit, with an id that is free */
        for (i = 0; i < 6; i++) {
            int p = (int)rnd(NPOOL);
            g = POOL[p].group;
            if (W.pend[g].used || W.burned[g]) continue;
            n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"tools/call\",\"params\":{\"data\":\"xxxx", POOL[p].text);
            sim_trace("client: a line over the limit with id %s", POOL[p].text);
            W.expect_group[g]++;
            W.pre_connected = au_core_connected(&W.core);
            au_core_client_too_long(&W.core, line, n, 1024, W.now);
            take_actions();
            CHECK(!W.expect_group[g], "a line over the limit was not answered at once");
            W.expect_group[g] = 0;
            break;
        }
        break;
    }
    default:                                                /* any notification */
        sim_trace("client: a notification");
        core_str("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/roots/list_changed\"}");
        break;
    }
}

/* ---------------------------------------------------------------- the daemon model */
static void daemon_send(const char *p, size_t n) { if (W.L.open) chan_push(&W.L.to_shim, p, n, 0); }

static void new_life(void) {
    life *L = &W.L;
    chan td = L->to_daemon, ts = L->to_shim;
    memset(L, 0, sizeof *L);
    L->to_daemon = td;
    L->to_shim = ts;
    L->open = 1;
    L->gen = ++W.gen;
    L->up_at = L->last_input = W.now;
    if (W.calm) return;                                     /* a daemon that behaves */
    if (W.exai) { L->hello_refuse = chance(8); L->frozen = chance(3); return; }
    L->strict = chance(70);
    L->frozen = chance(4);
    L->crash_on_init = chance(8);
    L->init_refuse = chance(5) ? 1 + (int)rnd(2) : 0;       /* 1: "already initialized", 2: another reason */
    L->keeps_session = L->init_refuse == 1;
    if (L->keeps_session) L->got_init = L->got_initialized = L->got_level = 1;   /* the same process as before */
    L->init_delay = chance(15) ? (int64_t)rnd(90000) : (int64_t)rnd(300);
    L->hello_refuse = W.desc.hello && chance(10);
}

static int daemon_hold(int is_shim, int method, int tag, tk id) {
    int i;
    long long key = id_key(id);
    for (i = 0; i < MAXHELD; i++)
        if (W.L.held[i].used && W.L.held[i].key == key) {
            violation("the daemon got a second request with id %.*s while the first is unanswered", (int)id.n, id.p);
            return -1;
        }
    for (i = 0; i < MAXHELD; i++)
        if (!W.L.held[i].used) {
            dheld *h = &W.L.held[i];
            h->used = 1;
            h->is_shim = is_shim;
            h->method = method;
            h->tag = tag;
            h->key = key;
            h->due = W.now + (int64_t)rnd(chance(80) ? 200 : 20000);
            if (method == M_INIT) h->due = W.now + W.L.init_delay;
            if (W.calm) h->due = W.now;
            snprintf(h->id, sizeof h->id, "%.*s", (int)(id.n < 47 ? id.n : 47), id.p);
            return i;
        }
    return -1;                                              /* too busy: this one is never answered */
}

static void daemon_gets(const char *p, size_t n) {
    tk m = { p, n }, v, id, params;
    long long x;
    int method = -1, tag = -1, g, i;
    creq *q = NULL;
    if (W.exai) { daemon_gets_exai(p, n); return; }
    if (!js_whole(m)) { violation("the daemon got something that is not JSON: %.100s", p); return; }
    if (W.desc.hello && !W.L.hello_done) {
        CHECK(n == strlen(W.desc.hello) && !memcmp(p, W.desc.hello, n), "the first message on a connection is not the hello: %.100s", p);
        W.L.hello_done = 1;
        if (W.L.hello_refuse) { W.L.refused = 1; daemon_send("{\"ok\":false,\"error\":\"bad token\"}", 32); }
        else daemon_send("{\"ok\":true}", 11);
        return;
    }
    if (!js_get(m, "method", &v)) {                         /* an answer to one of our requests */
        int found = 0;
        CHECK(js_get(m, "id", &id), "the daemon got a message with neither method nor id: %.100s", p);
        if (!js_get(m, "id", &id)) return;
        for (i = 0; i < MAXDREQ; i++)
            if (W.L.dreq[i].used && js_int(id, &x) && x == W.L.dreq[i].id) {
                tk dt;
                CHECK(js_path(m, "result", "dtag", &dt) && js_int(dt, &x) && x == W.L.dreq[i].dtag,
                      "the daemon got the answer to another connection's request %.*s: %.100s", (int)id.n, id.p, p);
                W.L.dreq[i].used = 0;
                found = 1;
                break;
            }
        CHECK(found, "the daemon got an answer to id %.*s, which it did not ask on this connection: %.100s", (int)id.n, id.p, p);
        return;
    }
    for (i = 0; i < M_COUNT; i++) {
        char quoted[40];
        snprintf(quoted, sizeof quoted, "\"%s\"", METHOD[i]);
        if (tk_is(v, quoted)) method = i;
    }
    if (!js_get(m, "id", &id)) {                            /* a notification */
        if (tk_is(v, "\"notifications/initialized\"")) {
            CHECK(W.L.got_init, "notifications/initialized reached a daemon before initialize");
            W.L.got_initialized = 1;
        } else if (tk_is(v, "\"notifications/cancelled\"") && js_get(m, "params", &params) && js_get(params, "requestId", &v)) {
            long long key = id_key(v);
            for (i = 0; i < MAXHELD; i++)
                if (W.L.held[i].used && W.L.held[i].key == key && !W.L.held[i].is_shim) W.L.held[i].used = 0;
        }
        return;
    }
    if (js_get(m, "params", &params) && js_get(params, "tag", &v) && js_int(v, &x)) tag = (int)x;
    g = pool_group(id);
    if (g >= 0 && W.pend[g].used && W.pend[g].tag == tag && tk_is(id, W.pend[g].id)) q = &W.pend[g];
    if (!q && tag > 0 && tag <= W.next_tag && tk_is(id, POOL[(int)W.tags[tag].pool].text)) {   /* the client's, no longer waiting */
        sim_trace("daemon %u: %s %.*s tag %d (the client no longer waits)", W.L.gen, METHOD[(int)W.tags[tag].method], (int)id.n, id.p, tag);
    } else if (!q) {                                        /* one of the shim's own */
        long long sid;
        CHECK(js_int(id, &sid) && sid >= -9007199254740991LL && sid <= 9007199254740991LL && id.p[0] != '-' && !(id.n > 1 && id.p[0] == '0'),
              "the shim's own request has an id an SDK client would not send: %.100s", p);
        CHECK(method == M_INIT || method == M_LEVEL || method == M_SUB, "the daemon got a request from nobody: %.100s", p);
        CHECK(W.mcp, "the shim sent its own request in plain JSON-RPC mode: %.100s", p);
        sim_trace("daemon %u: the shim's %s id %.*s", W.L.gen, method >= 0 ? METHOD[method] : "?", (int)id.n, id.p);
    } else {
        sim_trace("daemon %u: %s %s tag %d", W.L.gen, METHOD[q->method], q->id, q->tag);
        if (q->method != M_INIT && q->method != M_PING) {
            CHECK(!q->needs_init || W.L.got_init, "%s %s reached a new daemon before the session's initialize", METHOD[q->method], q->id);
            CHECK(!q->needs_initialized || W.L.got_initialized, "%s %s reached a daemon before notifications/initialized", METHOD[q->method], q->id);
            CHECK(!q->needs_level || W.L.got_level, "%s %s reached a daemon before the client's logging level", METHOD[q->method], q->id);
        }
    }
    if (method == M_INIT) {
        if (W.L.crash_on_init) { end_life("the daemon dies on initialize"); W.pre_connected = au_core_connected(&W.core);
                                 au_core_daemon_down(&W.core, "connection reset by peer", W.now); return; }
        if (W.L.init_refuse == 1) {
            char a[200];
            size_t k = (size_t)snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"error\":{\"code\":-32600,\"message\":\"Invalid Request: Server already initialized\"}}",
                                        (int)id.n, id.p);
            if (q) { k = (size_t)snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"error\":{\"code\":-32600,\"message\":\"Server already initialized\",\"data\":{\"tag\":%d}}}",
                                          (int)id.n, id.p, tag); }
            daemon_send(a, k);
            return;
        }
        if (W.L.init_refuse == 2 && !q) {
            char a[200];
            size_t k = (size_t)snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"error\":{\"code\":-32603,\"message\":\"provider check failed\"}}",
                                        (int)id.n, id.p);
            W.L.refused = 1;
            daemon_send(a, k);
            return;
        }
        W.L.got_init = 1;
    }
    if (method == M_LEVEL) W.L.got_level = 1;
    if (q) q->sent_gen = W.L.gen;
    if (W.L.strict && !W.L.got_init && method != M_INIT && method != M_PING) {
        char a[200];
        size_t k = (size_t)snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"error\":{\"code\":-32002,\"message\":\"Server not initialized\",\"data\":{\"tag\":%d}}}",
                                    (int)id.n, id.p, tag);
        daemon_send(a, k);
        return;
    }
    daemon_hold(!q, method, tag, id);
}

/* the daemon answers one request it holds whose time has come */
static int daemon_answer(int any) {
    int i, k = -1, start = (int)rnd(MAXHELD);
    char a[700];
    size_t n;
    dheld *h;
    for (i = 0; i < MAXHELD; i++) {
        int j = (start + i) % MAXHELD;
        if (W.L.held[j].used && (any || W.L.held[j].due <= W.now)) { k = j; break; }
    }
    if (k < 0) return 0;
    h = &W.L.held[k];
    if (h->method == M_INIT)
        n = (size_t)snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":"
                             "{\"tools\":{\"listChanged\":true},\"logging\":{}},\"serverInfo\":{\"name\":\"simd\",\"version\":\"%u\"},\"tag\":%d}}",
                             h->id, W.L.gen, h->tag);
    else if (!W.calm && chance(10))
        n = (size_t)snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":-32603,\"message\":\"tool failed\",\"data\":{\"tag\":%d}}}",
                             h->id, h->tag);
    else if (!W.calm && chance(10))                         /* pretty-printed */
        n = (size_t)snprintf(a, sizeof a, "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": %s,\n  \"result\": {\n    \"tag\": %d\n  }\n}\n", h->id, h->tag);
    else
        n = (size_t)snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"tag\":%d,\"life\":%u}}", h->id, h->tag, W.L.gen);
    sim_trace("daemon %u: answers %s %s", W.L.gen, h->method >= 0 ? METHOD[h->method] : "?", h->id);
    if (!h->is_shim && !W.calm && chance(5)) {              /* the same answer twice, back to back */
        char two[1500];
        memcpy(two, a, n);
        two[n] = 0;
        chan_push(&W.L.to_shim, two, n, 4);
    } else daemon_send(a, n);
    h->used = 0;
    return 1;
}

static void daemon_other(void) {
    char a[300];
    size_t n;
    int i;
    switch (rnd(8)) {
    case 0: case 1:                                         /* a notification */
        n = (size_t)snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":{\"seq\":%lld}}}",
                             ++W.notes_sent);
        sim_trace("daemon %u: notification %lld", W.L.gen, W.notes_sent);
        daemon_send(a, n);
        break;
    case 2:                                                 /* a request to the client */
        for (i = 0; i < MAXDREQ; i++)
            if (!W.L.dreq[i].used) {
                W.L.dreq[i].used = 1;
                W.L.dreq[i].id = W.L.next_dreq++;
                W.L.dreq[i].dtag = ++W.next_dtag;
                n = (size_t)snprintf(a, sizeof a, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"roots/list\",\"params\":{\"dtag\":%d}}",
                                     W.L.dreq[i].id, W.L.dreq[i].dtag);
                sim_trace("daemon %u: asks the client (id %lld)", W.L.gen, W.L.dreq[i].id);
                W.dreqs_sent++;
                daemon_send(a, n);
                break;
            }
        break;
    case 3:                                                 /* junk the shim must drop */
        switch (rnd(4)) {
        case 0: daemon_send("not json {", 10); break;
        case 1: daemon_send("{\"jsonrpc\":\"2.0\"}", 17); break;
        case 2: chan_push(&W.L.to_shim, "{\"jsonrpc\":\"2.0\",\"id\":424242,\"result\":{}}", 41, 1); break;
        default: daemon_send("{\"jsonrpc\":\"2.0\",\"id\":\"zz-unknown\",\"result\":{}}", 46); break;
        }
        sim_trace("daemon %u: junk", W.L.gen);
        break;
    case 4:                                                 /* a ping: life for the keepalive */
        chan_push(&W.L.to_shim, "", 0, 3);
        break;
    case 5:                                                 /* freezes or wakes up */
        W.L.frozen = !W.L.frozen;
        sim_trace("daemon %u: %s", W.L.gen, W.L.frozen ? "freezes" : "wakes up");
        break;
    default:                                                /* crashes */
        sim_trace("daemon %u: crashes", W.L.gen);
        end_life("crash");
        W.pre_connected = au_core_connected(&W.core);
        au_core_daemon_down(&W.core, chance(50) ? "connection reset by peer" : "close 1006", W.now);
        take_actions();
        if (chance(50)) { W.daemon_up = 0; W.daemon_next_toggle = W.now + (int64_t)rnd(30000); }
        break;
    }
}

/* the next item from the daemon reaches the core */
static void deliver_to_shim(void) {
    item it = chan_pop(&W.L.to_shim);
    W.L.last_input = W.now;
    sim_trace("shim <- %s", it.kind == 2 ? "pong" : it.kind == 3 ? "ping" : it.kind == 4 ? "a message twice" : it.p);
    W.pre_connected = au_core_connected(&W.core);
    if (W.exai && it.kind != 2 && it.kind != 3) exai_before_delivery(it.p, it.n);
    if (it.kind == 2 || it.kind == 3) au_core_daemon_alive(&W.core, W.now);
    else if (it.kind == 4) {                                /* twice */
        au_core_daemon_message(&W.core, it.p, it.n, 0, W.now);
        take_actions();
        au_core_daemon_message(&W.core, it.p, it.n, 0, W.now);
    } else {
        tk m = { it.p, it.n }, v;
        tk params, seq;
        long long x;
        if (js_whole(m) && js_get(m, "method", &v) && tk_is(v, "\"notifications/message\"") && js_get(m, "params", &params) &&
            js_path(params, "data", "seq", &seq) && js_int(seq, &x)) {
            W.note_expect = x;
            au_core_daemon_message(&W.core, it.p, it.n, it.kind == 1, W.now);
            take_actions();
            CHECK(W.note_expect == 0 || W.gone, "daemon notification %lld was not passed to the client at once", x);
            W.note_expect = 0;
            free(it.p);
            return;
        }
        au_core_daemon_message(&W.core, it.p, it.n, it.kind == 1, W.now);
    }
    take_actions();
    free(it.p);
}

/* ---------------------------------------------------------------- the EXAI dialect: client side and a model op daemon */
static creq *pend_by_tag(long long tag) {
    int g;
    for (g = 0; g < NGROUPS; g++)
        if (W.pend[g].used && W.pend[g].tag == tag) return &W.pend[g];
    return NULL;
}
/* the result or error text of an EXAI answer names its call's tag */
static int has_tag(tk t, int tag) {
    char want[24];
    const char *p;
    size_t k = (size_t)snprintf(want, sizeof want, "tag:%d", tag);
    for (p = t.p; p + k <= t.p + t.n; p++)
        if (!memcmp(p, want, k) && (p + k == t.p + t.n || p[k] < '0' || p[k] > '9')) return 1;
    return 0;
}

static void client_request_exai(void) {
    static const int methods[] = { M_CALL, M_CALL, M_CALL, M_LIST, M_LIST, M_INIT, M_PING, M_OTHER, M_LEVEL };
    int g, k, i, method = methods[rnd(sizeof methods / sizeof methods[0])], local;
    char line[512];
    creq *q;
    size_t n;
    if (!W.init_sent) method = chance(85) ? M_INIT : method;
    local = method != M_CALL && method != M_LIST;   /* answered here, at once */
    for (k = 0; k < 8; k++) {
        i = (int)rnd(NPOOL);
        g = POOL[i].group;
        if (W.burned[g] || W.pend[g].used) continue;
        if (W.next_tag + 1 >= MAXTAGS) return;
        q = &W.pend[g];
        memset(q, 0, sizeof *q);
        q->used = 1;
        q->group = g;
        q->method = method;
        q->tag = ++W.next_tag;
        q->t = W.now;
        W.tags[q->tag].pool = (signed char)i;
        W.tags[q->tag].method = (signed char)method;
        snprintf(q->id, sizeof q->id, "%s", POOL[i].text);
        if (method == M_INIT)
            n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                                 "\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"sim\",\"version\":\"1\"}}}", q->id,
                                 chance(80) ? "2025-06-18" : "1999-01-01");
        else if (method == M_CALL) {
            q->ptok = chance(50);
            if (q->ptok)
                n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"tools/call\",\"params\":{\"name\":\"work\","
                                     "\"arguments\":{\"tag\":%d},\"_meta\":{\"progressToken\":\"pt%d\"}}}", q->id, q->tag, q->tag);
            else
                n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"tools/call\",\"params\":{\"name\":\"work\","
                                     "\"arguments\":{\"tag\":%d}}}", q->id, q->tag);
        } else
            n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"%s\"}", q->id, METHOD[method]);
        if (method == M_INIT) W.init_sent = 1;
        sim_trace("client: %s id %s tag %d", METHOD[method], q->id, q->tag);
        core_line(line, n);
        if (local) CHECK(!W.pend[g].used, "%s was not answered at once by the EXAI dialect", METHOD[method]);
        return;
    }
}

/* an answer on stdout in the EXAI dialect; 1 when it was checked here */
static int client_gets_exai(creq *q, int has_res, tk res, tk err, long long code, const char *p) {
    tk v;
    (void)err;
    if (has_res) {
        if (q->method == M_INIT)
            CHECK(js_get(res, "protocolVersion", &v) && js_path(res, "capabilities", "tools", &v) && js_get(res, "serverInfo", &v),
                  "the EXAI initialize answer is not an InitializeResult: %.120s", p);
        else if (q->method == M_PING) CHECK(tk_is(res, "{}"), "ping answered with something else: %.100s", p);
        else if (q->method == M_LIST) {
            tk tools;
            const char *ver;
            CHECK(js_get(res, "tools", &tools) && tools.n && tools.p[0] == '[', "tools/list answered without tools: %.100s", p);
            if (js_get(res, "tools", &tools) && (ver = strstr(tools.p, "\"v")) != NULL && ver < tools.p + tools.n) {
                W.seen_version = atoi(ver + 2);
                W.lists_seen = 1;
                W.list_changed_since_seen = 0;
            }
        } else if (q->method == M_CALL)
            CHECK(has_tag(res, q->tag), "the answer to tools/call %s (tag %d) is another call's: %.140s", q->id, q->tag, p);
        else violation("%s got a result in the EXAI dialect: %.100s", METHOD[q->method], p);
    } else {
        if (q->method == M_INIT || q->method == M_PING) violation("%s got an error in the EXAI dialect: %.120s", METHOD[q->method], p);
        else if (q->method == M_CALL || q->method == M_LIST)
            CHECK(code == -32000, "a %s error with code %lld: %.120s", METHOD[q->method], code, p);
        else CHECK(code == -32601, "%s should get -32601: %.120s", METHOD[q->method], p);
        if (q->method == M_CALL && code == -32000 && strstr(p, "connection to the daemon was lost")) W.errors_lost++;
        else if (code == -32000) W.errors_timeout++;
    }
    return 1;
}

static void xc_clear(void) { memset(W.xc, 0, sizeof W.xc); }
static int xc_find(tk rid) {
    int i;
    for (i = 0; i < 128; i++)
        if (W.xc[i].used && tk_is(rid, W.xc[i].rid)) return i;
    return -1;
}
static void xc_send_result(int i) {
    char a[400];
    size_t n;
    int tag = W.xc[i].tag;
    switch (W.xc[i].kind) {
    case 0: n = (size_t)snprintf(a, sizeof a, "{\"op\":\"call_tool_res\",\"request_id\":%s,\"ok\":true,\"outputs\":[{\"type\":\"text\",\"text\":\"tag:%d\"}]}", W.xc[i].rid, tag); break;
    case 1: n = (size_t)snprintf(a, sizeof a, "{\"op\":\"call_tool_res\",\"request_id\":%s,\"text\":\"tag:%d legacy\"}", W.xc[i].rid, tag); break;
    case 2: n = (size_t)snprintf(a, sizeof a, "{\"op\":\"call_tool_res\",\"request_id\":%s,\"error\":{\"code\":\"TOOL_ERROR\",\"message\":\"tag:%d failed\"}}", W.xc[i].rid, tag); break;
    case 3: n = (size_t)snprintf(a, sizeof a, "{\"op\":\"call_tool_res\",\"request_id\":%s,\"error\":\"tag:%d failed\"}", W.xc[i].rid, tag); break;
    default:                                                /* streamed: the chunks are the answer */
        n = (size_t)snprintf(a, sizeof a, "{\"op\":\"stream_chunk\",\"request_id\":%s,\"chunk\":\"tag:%d\"}", W.xc[i].rid, tag);
        daemon_send(a, n);
        n = (size_t)snprintf(a, sizeof a, "{\"op\":\"stream_complete\",\"request_id\":%s}", W.xc[i].rid);
        daemon_send(a, n);
        n = (size_t)snprintf(a, sizeof a, "{\"op\":\"call_tool_res\",\"request_id\":%s,\"ok\":true}", W.xc[i].rid);
        break;
    }
    daemon_send(a, n);
}

static void daemon_gets_exai(const char *p, size_t n) {
    tk m = { p, n }, op, v, rid, args;
    long long tag = -1;
    int i;
    if (!js_whole(m) || !js_get(m, "op", &op)) { violation("the EXAI daemon got something that is not an op: %.100s", p); return; }
    if (!W.L.hello_done) {
        tk sid, tok;
        CHECK(tk_is(op, "\"hello\"") && js_get(m, "session_id", &sid) && js_get(m, "token", &tok) && tk_is(tok, "\"s3cret-tok\""),
              "the first message on an EXAI connection is not our hello: %.100s", p);
        if (js_get(m, "session_id", &sid) && sid.n < sizeof W.sid) {
            if (!W.sid[0]) { memcpy(W.sid, sid.p, sid.n); W.sid[sid.n] = 0; }
            CHECK(tk_is(sid, W.sid), "the hello's session id changed from %s: %.100s", W.sid, p);
            if (W.desc.exai.session_id) CHECK(tk_is(sid, "\"sid-fixed\""), "the hello does not carry the given session id: %.100s", p);
        }
        W.L.hello_done = 1;
        if (W.L.hello_refuse) { W.L.refused = 1; daemon_send("{\"op\":\"hello_ack\",\"ok\":false,\"error\":\"invalid token\"}", 52); }
        else daemon_send("{\"op\":\"hello_ack\",\"ok\":true,\"session_id\":\"d\"}", 45);
        return;
    }
    CHECK(W.L.hello_done && !W.L.hello_refuse, "a message reached the daemon after it refused the hello: %.100s", p);
    if (tk_is(op, "\"list_tools\"")) {
        char a[200];
        size_t k = (size_t)snprintf(a, sizeof a, "{\"op\":\"list_tools_res\",\"tools\":[{\"name\":\"work\",\"description\":\"d\"},{\"name\":\"v%d\"}]}",
                                    W.tools_version);
        daemon_send(a, k);
        return;
    }
    if (!tk_is(op, "\"call_tool\"")) { daemon_send("{\"op\":\"error\",\"error\":{\"code\":\"INVALID_REQUEST\",\"message\":\"Unknown operation\"}}", 77); return; }
    if (!js_get(m, "request_id", &rid) || rid.p[0] != '"' || rid.n >= 64 || !js_get(m, "arguments", &args) || !js_get(args, "tag", &v) ||
        !js_int(v, &tag)) {
        violation("a call_tool without a request id or our arguments: %.100s", p);
        return;
    }
    i = xc_find(rid);
    if (i >= 0) {
        CHECK(W.xc[i].tag == tag, "request id %.*s names two calls (tags %d and %lld)", (int)rid.n, rid.p, W.xc[i].tag, tag);
        if (W.xc[i].done) { sim_trace("daemon %u: %.*s answered from the store", W.L.gen, (int)rid.n, rid.p); W.xc[i].gen = W.L.gen; xc_send_result(i); }
        else {
            char a[300];
            size_t k = (size_t)snprintf(a, sizeof a, "{\"op\":\"call_tool_res\",\"request_id\":%.*s,\"error\":{\"code\":\"OVER_CAPACITY\","
                                        "\"message\":\"This request is already being processed\",\"details\":{\"retry_after_secs\":%s}}}",
                                        (int)rid.n, rid.p, chance(50) ? "1" : "0.3");
            sim_trace("daemon %u: %.*s still running: in progress", W.L.gen, (int)rid.n, rid.p);
            W.xc[i].gen = W.L.gen;                      /* its result goes where it was last asked */
            daemon_send(a, k);
        }
        return;
    }
    for (i = 0; i < 128; i++)
        CHECK(!(W.xc[i].used && W.xc[i].tag == tag), "call tag %lld reached the daemon under a second request id %.*s (first %s)", tag,
              (int)rid.n, rid.p, W.xc[i].rid);
    for (i = 0; i < 128 && W.xc[i].used; i++) {}
    if (i == 128) return;                               /* too busy: never answered; the calm would flag it, so keep it small */
    W.xc[i].used = 1;
    W.xc[i].tag = (int)tag;
    W.xc[i].gen = W.L.gen;
    W.xc[i].kind = W.calm ? 0 : (int)rnd(6);
    memcpy(W.xc[i].rid, rid.p, rid.n);
    W.xc[i].rid[rid.n] = 0;
    W.xc[i].due = W.now + (W.calm ? 0 : (int64_t)rnd(chance(70) ? 300 : 8000));
    sim_trace("daemon %u: runs call tag %lld as %s", W.L.gen, tag, W.xc[i].rid);
    if (!W.calm && chance(60)) {
        char a[200];
        size_t k;
        W.xc[i].acked = chance(50) ? 1 : 5;
        k = (size_t)snprintf(a, sizeof a, "{\"op\":\"call_tool_ack\",\"request_id\":%s,\"timeout\":%d}", W.xc[i].rid, W.xc[i].acked);
        daemon_send(a, k);
    }
}

/* a running call finishes; its result goes to the connection that asked last, if it is still there */
static int daemon_answer_exai(int any) {
    int i, start = (int)rnd(128);
    for (i = 0; i < 128; i++) {
        int j = (start + i) % 128;
        if (W.xc[j].used && !W.xc[j].done && (any || W.xc[j].due <= W.now)) {
            W.xc[j].done = 1;
            sim_trace("daemon: call %s finishes%s", W.xc[j].rid, W.xc[j].gen == W.L.gen && W.L.open == 1 ? "" : " (nobody to tell: stored)");
            if (W.xc[j].gen == W.L.gen && W.L.open == 1) xc_send_result(j);
            return 1;
        }
    }
    return 0;
}

static void daemon_other_exai(void) {
    char a[300];
    size_t n;
    int i, k = -1, start = (int)rnd(128);
    for (i = 0; i < 128; i++) {
        int j = (start + i) % 128;
        if (W.xc[j].used && !W.xc[j].done && W.xc[j].gen == W.L.gen) { k = j; break; }
    }
    switch (rnd(7)) {
    case 0: case 1:                                         /* progress on a running call */
        if (k < 0) break;
        if (chance(50)) n = (size_t)snprintf(a, sizeof a, "{\"op\":\"progress\",\"request_id\":%s,\"message\":\"working\"}", W.xc[k].rid);
        else n = (size_t)snprintf(a, sizeof a, "{\"op\":\"stream_chunk\",\"request_id\":%s,\"chunk\":\"part\"}", W.xc[k].rid);
        daemon_send(a, n);
        break;
    case 2:                                                 /* what a client must tolerate */
        switch (rnd(4)) {
        case 0: daemon_send("{\"op\":\"status\",\"clients\":3}", 27); break;
        case 1: daemon_send("{\"op\":\"weird\"}", 14); break;
        case 2: daemon_send("{\"op\":\"error\",\"error\":{\"code\":\"INVALID_JSON\",\"message\":\"x\"}}", 61); break;
        default: daemon_send("not json", 8); break;
        }
        break;
    case 3:                                                 /* the connection drops; the process lives on */
        sim_trace("daemon %u: drops the connection (the process keeps running)", W.L.gen);
        end_life("dropped");
        W.pre_connected = au_core_connected(&W.core);
        au_core_daemon_down(&W.core, "close 1011", W.now);
        take_actions();
        break;
    case 4:
        chan_push(&W.L.to_shim, "", 0, 3);
        break;
    case 5:
        W.L.frozen = !W.L.frozen;
        sim_trace("daemon %u: %s", W.L.gen, W.L.frozen ? "freezes" : "wakes up");
        break;
    default:                                                /* the process dies: its store is gone */
        sim_trace("daemon %u: the process crashes", W.L.gen);
        end_life("crash");
        xc_clear();
        if (chance(50)) W.tools_version++;
        W.pre_connected = au_core_connected(&W.core);
        au_core_daemon_down(&W.core, "connection reset by peer", W.now);
        take_actions();
        break;
    }
}

/* what the core learns from a daemon message, as far as the deadlines go */
static void exai_before_delivery(const char *p, size_t n) {
    tk m = { p, n }, op, rid, v;
    int i;
    creq *q;
    if (!js_whole(m) || !js_get(m, "op", &op) || !js_get(m, "request_id", &rid)) return;
    if ((i = xc_find(rid)) < 0 || !(q = pend_by_tag(W.xc[i].tag)) || !tk_is(rid, q->rid)) return;
    if (tk_is(op, "\"call_tool_ack\"") && js_get(m, "timeout", &v)) {
        long long t = 0;
        js_int(v, &t);
        q->ack_deadline = W.now + t * 1000 + ms_of(W.core.d.exai.ack_grace);
    } else if (tk_is(op, "\"call_tool_res\"") && strstr(p, "already being processed")) {
        if (!q->retry_wait) q->retry_bound = q->ack_deadline ? q->ack_deadline : q->t + ms_of(W.core.d.exai.ack_grace);
        q->retry_wait = 1;
    }
}

/* a call_tool or list_tools the core sends: the sim's view of what a daemon holds */
static void exai_mark_sent(const char *p, size_t n) {
    tk m = { p, n }, op, rid, args, v;
    long long tag;
    creq *q;
    int g;
    if (!js_whole(m) || !js_get(m, "op", &op)) return;
    if (tk_is(op, "\"list_tools\"")) {
        creq *best = NULL;
        for (g = 0; g < NGROUPS; g++) {
            creq *c = &W.pend[g];
            if (c->used && c->method == M_LIST && c->sent_gen != W.L.gen && (!best || c->tag < best->tag)) best = c;
        }
        if (best) best->sent_gen = W.L.gen;
        return;
    }
    if (!tk_is(op, "\"call_tool\"") || !js_get(m, "request_id", &rid) || !js_get(m, "arguments", &args) || !js_get(args, "tag", &v) ||
        !js_int(v, &tag) || !(q = pend_by_tag(tag)))
        return;
    if (q->rid[0]) CHECK(tk_is(rid, q->rid), "call tag %lld sent again under another request id (%.*s, first %s)", tag, (int)rid.n, rid.p, q->rid);
    else if (rid.n < sizeof q->rid) { memcpy(q->rid, rid.p, rid.n); q->rid[rid.n] = 0; }
    q->sent_gen = W.L.gen;
    q->retry_wait = 0;
}

/* ---------------------------------------------------------------- invariants after every step */
static void check_state(void) {
    int g;
    au_core *c = &W.core;
    CHECK(c->reqs.count <= c->d.max_pending, "%lu requests pending, over max_pending %lu", (unsigned long)c->reqs.count,
          (unsigned long)c->d.max_pending);
    CHECK(c->q.count <= c->d.queue_max_count + c->reqs.count, "%lu messages queued, over the bound %lu", (unsigned long)c->q.count,
          (unsigned long)(c->d.queue_max_count + c->reqs.count));
    CHECK(c->dreq_count <= AU__MAX_DREQS, "the daemon-request table grew past its bound");
    CHECK(c->act.count == 0 || c->act.next == c->act.count, "actions left untaken");
    if (W.stopped) {
        CHECK(au_core_finished(c) || W.now <= W.stop_at + ms_of(c->d.close_timeout) + 200, "stopped %.1f s ago and not finished",
              (double)(W.now - W.stop_at) / 1000.0);
        return;
    }
    if (W.eof) {
        int64_t bound = W.eof_at + ms_of(c->d.drain_timeout) + ms_of(c->d.close_timeout) + 1000;
        CHECK(au_core_finished(c) || W.now <= bound, "stdin closed %.1f s ago and the core has not finished", (double)(W.now - W.eof_at) / 1000.0);
        return;
    }
    if (W.exai && W.desc.no_resend && W.lost_gen) {          /* --no-resend: an error at once */
        for (g = 0; g < NGROUPS; g++) {
            creq *q = &W.pend[g];
            CHECK(!(q->used && q->method == M_CALL && q->sent_gen == W.lost_gen && !q->retry_wait),
                  "with --no-resend, tools/call %s in flight on a lost connection was not answered at once", q->id);
        }
    }
    W.lost_gen = 0;
    for (g = 0; g < NGROUPS; g++) {
        creq *q = &W.pend[g];
        int64_t limit;
        if (!q->used) continue;
        if (W.exai && q->ack_deadline)
            CHECK(W.now < q->ack_deadline, "tools/call %s was acked and is still unanswered past the ack's timeout plus the grace", q->id);
        if (W.exai && q->retry_wait) {
            CHECK(W.now < q->retry_bound, "tools/call %s waits to be asked again past its deadline", q->id);
            continue;
        }
        if (q->sent_gen && q->sent_gen == W.L.gen && W.L.open == 1) continue;   /* a daemon holds it */
        if (q->session_init) limit = ms_of(c->d.init_grace);
        else if (W.mcp && q->method == M_PING && !au_core_connected(c) && !q->sent_gen) limit = 0;   /* answered here at once */
        else limit = ms_of(c->d.queue_timeout);
        if (q->session_init && c->d.init_grace < 0) continue;
        CHECK(W.now < q->t + limit, "%s %s (sent at %.3f) waits %.3f s with no daemon holding it, past its deadline of %.3f s",
              METHOD[q->method], q->id, (double)q->t / 1000.0, (double)(W.now - q->t) / 1000.0, (double)limit / 1000.0);
    }
}

static void run_timeouts(void) {
    int guard = 0;
    for (;;) {
        int64_t dl = au_core_deadline(&W.core);
        if (dl < 0 || dl > W.now) break;
        if (++guard > 1000) { violation("the core's deadline stays in the past (%lld)", (long long)dl); break; }
        W.pre_connected = au_core_connected(&W.core);
        au_core_timeout(&W.core, W.now);
        take_actions();
    }
}

static int64_t next_event_time(void) {
    int64_t t = -1, dl = au_core_deadline(&W.core);
    int i;
#define SOONER(x) do { int64_t x_ = (x); if (x_ > W.now && (t < 0 || x_ < t)) t = x_; } while (0)
    if (dl >= 0) SOONER(dl);
    if (W.connecting) SOONER(W.connect_at);
    if (!W.daemon_up) SOONER(W.daemon_next_toggle);
    if (W.L.open == 1 && !W.L.frozen)
        for (i = 0; i < MAXHELD; i++) if (W.L.held[i].used) SOONER(W.L.held[i].due);
    if (W.exai)
        for (i = 0; i < 128; i++) if (W.xc[i].used && !W.xc[i].done) SOONER(W.xc[i].due);
#undef SOONER
    return t;
}

/* ---------------------------------------------------------------- one schedule */
static int random_for_core(void *user, void *buf, size_t n) {
    size_t i;
    (void)user;
    for (i = 0; i < n; i++) ((uint8_t *)buf)[i] = (uint8_t)rnd(256);
    return 0;
}

static void setup(void) {
    static const double QT[] = { 1, 5, 30 }, IG[] = { 0.5, 2, 10 }, PI[] = { -1, 1, 5, 20 }, PT[] = { 1, 5, 20 }, ST[] = { 3, 20, 60 };
    static const size_t QC[] = { 1, 4, 64 }, MP[] = { 2, 8, 64 };
    au_core_desc *d = &W.desc;
    static const double AG[] = { 1, 5, 120 };
    memset(d, 0, sizeof *d);
    W.exai = chance(25);
    d->daemon_name = "ws://sim:8079";
    d->queue_timeout = QT[rnd(3)];
    d->init_grace = IG[rnd(3)];
    d->ping_interval = PI[rnd(4)];
    d->ping_timeout = PT[rnd(3)];
    d->setup_timeout = ST[rnd(3)];
    d->queue_max_count = QC[rnd(3)];
    d->queue_max_bytes = chance(20) ? 600 : 0;
    d->max_pending = MP[rnd(3)];
    d->resend_max = (int)rnd(3) - 1;
    d->backoff.jitter = chance(30) ? 0.5 : 0;
    d->no_mcp = chance(10);
    d->hello = chance(15) ? "{\"op\":\"hello\",\"token\":\"s3cret\"}" : NULL;
    d->log_level = AU_LOG_DEBUG;
    d->random = random_for_core;
    if (chance(10)) { d->remembered = "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"serverInfo\":{\"name\":\"simd\",\"version\":\"0\"}}";
                      d->remembered_len = strlen(d->remembered); }
    W.mcp = !d->no_mcp;
    if (W.exai) {                                           /* the EX-AI op protocol towards the daemon */
        d->dialect = AU_DIALECT_EXAI;
        d->no_mcp = 0;
        d->hello = NULL;
        d->remembered = NULL;
        d->exai.token = "s3cret-tok";
        d->exai.session_id = chance(50) ? "sid-fixed" : NULL;
        d->exai.ack_grace = AG[rnd(3)];
        d->no_resend = chance(30);
        W.mcp = 0;
    }
}

static void world_free(void) {
    au_core_free(&W.core);
    chan_free(&W.L.to_daemon);
    chan_free(&W.L.to_shim);
}

/* one step of the main phase: the scheduler picks what happens next */
static void step(void) {
    enum { E_TIME, E_CREQ, E_COTHER, E_EOF, E_TO_DAEMON, E_TO_SHIM, E_ANSWER, E_DOTHER, E_CONNECT, E_TOGGLE, E_PAUSE, E_CLOSED, E_NUM };
    int w[E_NUM] = { 0 }, total = 0, k, pick;
    int live = life_live();
    w[E_TIME] = 6;
    if (!W.eof && au_core_wants_client(&W.core)) { w[E_CREQ] = 10; w[E_COTHER] = 4; w[E_EOF] = 1; }
    if (live && W.L.to_daemon.n) w[E_TO_DAEMON] = 14;
    if (W.L.open && W.L.to_shim.n && !W.paused) w[E_TO_SHIM] = 14;
    if (live && !W.L.frozen && (!W.core.d.hello || W.L.hello_done)) { w[E_ANSWER] = 8; w[E_DOTHER] = 3; }
    if (W.exai && W.daemon_up) w[E_ANSWER] = 8;             /* calls finish whether or not anyone listens */
    if (W.L.open == 2) w[E_CLOSED] = 4;
    if (W.connecting && W.now >= W.connect_at) w[E_CONNECT] = 20;
    w[E_TOGGLE] = 1;
    w[E_PAUSE] = W.mcp ? 1 : 0;
    for (k = 0; k < E_NUM; k++) total += w[k];
    pick = (int)rnd((uint32_t)total);
    for (k = 0; k < E_NUM; k++) { if (pick < w[k]) break; pick -= w[k]; }
    switch (k) {
    case E_TIME: {
        int64_t t = next_event_time(), dl = au_core_deadline(&W.core), to = W.now + 1 + (int64_t)rnd(chance(20) ? 30000 : 1500);
        if (t > 0 && chance(60)) to = t;
        if (dl >= 0 && dl < to) to = dl;
        if (to <= W.now) to = W.now + 1;
        if (W.tracing) sim_trace("time passes to %.3f (the core's deadline %.3f)", (double)to / 1000.0, (double)dl / 1000.0);
        W.now = to;
        break;
    }
    case E_CREQ: client_request(); break;
    case E_COTHER: client_other(); break;
    case E_EOF:
        if (chance(10)) {                                   /* SIGTERM: every request answered at once */
            int g;
            sim_trace("SIGTERM");
            W.stopped = 1;
            W.stop_at = W.now;
            W.pre_connected = au_core_connected(&W.core);
            au_core_stop(&W.core, W.now);
            take_actions();
            for (g = 0; g < NGROUPS; g++) CHECK(!W.pend[g].used, "%s %s was not answered when the shim stopped", METHOD[W.pend[g].method], W.pend[g].id);
            W.eof = 1;
            W.eof_at = W.now;
        } else if (chance(10)) {                            /* the client closes stdout: nothing more is written */
            sim_trace("client: stdout closed");
            W.gone = W.eof = 1;
            W.eof_at = W.now;
            W.pre_connected = au_core_connected(&W.core);
            au_core_client_gone(&W.core, W.now);
            take_actions();
        } else if (chance(30)) {
            sim_trace("client: stdin EOF");
            W.eof = 1;
            W.eof_at = W.now;
            W.pre_connected = au_core_connected(&W.core);
            au_core_client_eof(&W.core, W.now);
            take_actions();
        }
        break;
    case E_TO_DAEMON: {
        item it = chan_pop(&W.L.to_daemon);
        daemon_gets(it.p, it.n);
        free(it.p);
        take_actions();
        break;
    }
    case E_TO_SHIM: deliver_to_shim(); break;
    case E_ANSWER: if (W.exai) daemon_answer_exai(0); else daemon_answer(0); break;
    case E_DOTHER: if (W.exai) daemon_other_exai(); else daemon_other(); break;
    case E_CONNECT:
        W.connecting = 0;
        W.pre_connected = 0;
        if (W.connect_ok && W.daemon_up) {
            new_life();
            sim_trace("daemon %u: connection up", W.L.gen);
            au_core_daemon_up(&W.core, "127.0.0.1:8079", W.now);
        } else au_core_daemon_down(&W.core, W.connect_ok ? "connection refused" : "connect timed out", W.now);
        take_actions();
        break;
    case E_TOGGLE:
        if (W.daemon_up) {                                  /* the process stops: its connection ends */
            W.daemon_up = 0;
            W.daemon_next_toggle = W.now + (int64_t)rnd(20000);
            sim_trace("the daemon process stops");
            if (W.exai) { xc_clear(); if (chance(50)) W.tools_version++; }
            if (W.L.open) {
                end_life("the daemon process stopped");
                W.pre_connected = au_core_connected(&W.core);
                au_core_daemon_down(&W.core, "close 1001 going away", W.now);
                take_actions();
            }
        } else if (W.now >= W.daemon_next_toggle) {
            W.daemon_up = 1;
            sim_trace("the daemon process starts");
        }
        break;
    case E_CLOSED:                                          /* the close the core asked for is over */
        end_life("closed");
        W.pre_connected = au_core_connected(&W.core);
        au_core_daemon_down(&W.core, "close 1000", W.now);
        take_actions();
        break;
    case E_PAUSE:
        W.paused = !W.paused;
        sim_trace("the client %s reading stdout", W.paused ? "stops" : "resumes");
        au_core_pause(&W.core, W.paused, W.now);
        take_actions();
        break;
    default: break;
    }
}

/* the calm: the daemon is back for good and behaves, the client only answers */
static void calm(void) {
    int64_t until = W.now + 600000;
    int guard = 0, g;
    W.calm = 1;
    W.daemon_up = 1;
    if (W.paused) { W.paused = 0; au_core_pause(&W.core, 0, W.now); take_actions(); }
    W.L.frozen = 0;
    W.L.init_delay = 0;
    W.L.crash_on_init = W.L.init_refuse = 0;
    W.L.hello_refuse = 0;
    for (g = 0; g < MAXHELD; g++) if (W.L.held[g].used) W.L.held[g].due = W.now;
    sim_trace("-- calm: the daemon is back and behaves");
    while (!W.failed && !au_core_finished(&W.core) && W.now < until && ++guard < 20000) {
        int pending = 0, i;
        for (g = 0; g < NGROUPS; g++) pending += W.pend[g].used;
        if (!pending && !W.core.reqs.count && !W.core.q.count && !W.L.to_daemon.n && !W.L.to_shim.n &&
            (!W.exai || W.eof || au_core_connected(&W.core)))
            break;
        if (W.L.open == 1 && W.L.to_daemon.n) { item it = chan_pop(&W.L.to_daemon); daemon_gets(it.p, it.n); free(it.p); take_actions(); }
        else if (W.L.open && W.L.to_shim.n) deliver_to_shim();
        else if (W.exai && daemon_answer_exai(1)) {}
        else if (!W.exai && W.L.open == 1 && daemon_answer(1)) {}
        else if (W.connecting && au_core_deadline(&W.core) >= 0 && au_core_deadline(&W.core) < W.connect_at) {
            W.now = au_core_deadline(&W.core);              /* time runs in order: the core's deadline first */
        } else if (W.connecting) {
            W.now = W.connect_at > W.now ? W.connect_at : W.now;
            W.connecting = 0;
            W.pre_connected = 0;
            new_life();
            sim_trace("daemon %u: connection up", W.L.gen);
            au_core_daemon_up(&W.core, "127.0.0.1:8079", W.now);
            take_actions();
        } else {
            int k = -1;
            for (i = 0; i < MAXDREQ; i++) if (W.dpend[i].used) { k = i; break; }
            if (k >= 0 && !W.eof) {
                char line[120];
                size_t n = (size_t)snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"dtag\":%d}}", W.dpend[k].id, W.dpend[k].dtag);
                W.dpend[k].used = 0;
                core_line(line, n);
            } else {
                int64_t dl = au_core_deadline(&W.core);
                if (dl < 0) break;
                W.now = dl > W.now ? dl : W.now + 1;
            }
        }
        run_timeouts();
        check_state();
    }
    if (W.failed || W.eof) return;
    for (g = 0; g < NGROUPS; g++)
        CHECK(!W.pend[g].used, "after the calm, %s %s (sent at %.3f s) was never answered", METHOD[W.pend[g].method], W.pend[g].id,
              (double)W.pend[g].t / 1000.0);
    CHECK(W.core.reqs.count == 0 && W.core.q.count == 0, "after the calm, the core still holds %lu requests and %lu queued messages",
          (unsigned long)W.core.reqs.count, (unsigned long)W.core.q.count);
    CHECK(W.notes_seen <= W.notes_sent, "more notifications reached the client than were sent");
    if (W.exai && W.lists_seen && W.seen_version != W.tools_version)
        CHECK(W.list_changed_since_seen, "the daemon's tools changed (v%d to v%d) and the client was never told", W.seen_version, W.tools_version);
}

/* runs the schedule on the current tape; 1 when every invariant held */
static int run_one(void) {
    int steps, i;
    free(W.trace);
    {
        int tracing = W.tracing;
        memset(&W, 0, sizeof W);
        W.tracing = tracing;
    }
    setup();
    W.now = 1000000;
    W.daemon_up = chance(80);
    W.daemon_next_toggle = W.now + (int64_t)rnd(20000);
    if (au_core_init(&W.core, &W.desc, W.now) != AU_OK) { violation("au_core_init failed"); world_free(); return 0; }
    sim_trace("setup: queue_timeout %.3g init_grace %.3g ping %.3g/%.3g setup %.3g queue_max %lu max_pending %lu resend_max %d%s%s",
              W.desc.queue_timeout, W.desc.init_grace, W.desc.ping_interval, W.desc.ping_timeout, W.desc.setup_timeout,
              (unsigned long)W.desc.queue_max_count, (unsigned long)W.desc.max_pending, W.desc.resend_max,
              W.exai ? " exai" : W.mcp ? "" : " no-mcp", W.desc.hello ? " hello" : "");
    steps = 20 + (int)rnd(400);
    for (i = 0; i < steps && !W.failed && !au_core_finished(&W.core); i++) {
        run_timeouts();
        W.steps++;
        step();
        run_timeouts();
        check_state();
    }
    if (!W.failed && !au_core_finished(&W.core)) calm();
    if (!W.failed && W.eof) {                               /* the client is gone (or SIGTERM): the core ends by itself */
        int guard = 0;
        while (!au_core_finished(&W.core) && ++guard < 1000 && !W.failed) {
            int64_t dl = au_core_deadline(&W.core);
            if (W.L.open && W.L.to_shim.n) deliver_to_shim();
            else if (dl < 0) break;
            else W.now = dl > W.now ? dl : W.now;
            run_timeouts();
            check_state();
        }
        CHECK(au_core_finished(&W.core), "stdin closed and the core never finished");
    }
    world_free();
    return !W.failed;
}

/* libFuzzer and the replay driver: bytes are the tape */
int sim_run_bytes(const uint8_t *data, size_t size, char *why, size_t why_cap) {
    int ok;
    T.mode = 2;
    T.bytes = data;
    T.nbytes = size;
    T.bat = 0;
    W.tracing = 0;
    ok = run_one();
    if (!ok && why) snprintf(why, why_cap, "%s", W.why);
    return ok;
}

#ifndef SIM_NO_MAIN
/* ---------------------------------------------------------------- shrinking and the driver */
static const char *shrink_kind;
static int run_tape(const uint32_t *v, size_t n, int tracing) {
    int ok;
    T.mode = 1;
    T.v = v;
    T.n = n;
    T.at = 0;
    W.tracing = tracing;
    ok = run_one();
    W.tracing = 0;
    if (!ok && shrink_kind && W.kind != shrink_kind) ok = 1;   /* another bug: not this one, smaller */
    return ok;
}
static size_t shrink(uint32_t *v, size_t n) {
    size_t chunk, i;
    int budget = 4000, progress = 1;
    while (progress && budget > 0) {
        progress = 0;
        for (chunk = n / 2; chunk >= 1 && budget > 0; chunk /= 2) {   /* cut pieces out */
            for (i = 0; i + chunk <= n && budget > 0;) {
                uint32_t *t = (uint32_t *)malloc((n - chunk + 1) * sizeof *t);
                if (!t) abort();
                memcpy(t, v, i * sizeof *t);
                memcpy(t + i, v + i + chunk, (n - i - chunk) * sizeof *t);
                budget--;
                if (!run_tape(t, n - chunk, 0)) { memcpy(v, t, (n - chunk) * sizeof *t); n -= chunk; progress = 1; }
                else i += chunk;
                free(t);
            }
        }
        for (i = 0; i < n && budget > 0; i++) {              /* simpler numbers */
            uint32_t old = v[i];
            if (!old) continue;
            v[i] = 0;
            budget--;
            if (run_tape(v, n, 0)) {
                v[i] = old / 2;
                budget--;
                if (run_tape(v, n, 0)) v[i] = old; else progress = 1;
            } else progress = 1;
        }
    }
    return n;
}

static int opt_quiet, opt_shrink = 1, opt_trace;
static const char *opt_save_tape;
/* the tape as the fuzz harness reads it: two bytes per choice */
static void save_tape(const char *path) {
    FILE *f = fopen(path, "wb");
    size_t i;
    if (!f) { perror(path); return; }
    for (i = 0; i < T.rec_n; i++) { fputc((int)(T.rec[i] & 0xff), f); fputc((int)((T.rec[i] >> 8) & 0xff), f); }
    fclose(f);
}
static int run_seed(uint64_t seed) {
    int ok;
    T.mode = 0;
    T.s = seed * 0x2545F4914F6CDD1DULL + 1;
    T.rec_n = 0;
    W.tracing = opt_trace;
    ok = run_one();
    if (opt_trace && W.trace) fputs(W.trace, stdout);
    W.tracing = 0;
    if (opt_save_tape) save_tape(opt_save_tape);
    if (!ok) {
        uint32_t *tape;
        size_t n = T.rec_n;
        printf("FAIL seed %llu: %s\n", (unsigned long long)seed, W.why);
        fflush(stdout);
        if (!opt_shrink) return ok;
        tape = (uint32_t *)malloc((T.rec_n + 1) * sizeof *tape);
        if (!tape) abort();
        memcpy(tape, T.rec, T.rec_n * sizeof *tape);
        shrink_kind = W.kind;
        n = shrink(tape, n);
        run_tape(tape, n, 1);
        shrink_kind = NULL;
        free(tape);
        printf("  seed %llu shrunk to %lu choices: %s\n", (unsigned long long)seed, (unsigned long)n, W.why);
        if (!opt_quiet && W.trace) {
            char *line = W.trace, *nl;
            printf("  trace:\n");
            while ((nl = strchr(line, '\n')) != NULL) { printf("    %.*s\n", (int)(nl - line), line); line = nl + 1; }
        }
        fflush(stdout);
    }
    return ok;
}

typedef struct { unsigned long long passed, failed, answers, local, lost, other, replays, drops, steps; } sim_stats;
static void run_range(unsigned long long first, unsigned long long count, unsigned long long max_failures, sim_stats *st) {
    unsigned long long i;
    for (i = 0; i < count; i++) {
        if (run_seed(first + i)) st->passed++; else st->failed++;
        st->answers += W.answers;
        st->local += W.local_inits;
        st->lost += W.errors_lost;
        st->other += W.errors_timeout;
        st->replays += W.replays;
        st->drops += W.drops;
        st->steps += (unsigned long long)W.steps;
        if (max_failures && st->failed >= max_failures) { printf("stopping after %llu failures\n", st->failed); break; }
    }
}

int main(int argc, char **argv) {
    unsigned long long seeds = 1000, first = 1, max_failures = 5, nreg = 0, regfail = 0;
    sim_stats st;
    const char *regressions = NULL;
    int a, jobs = 1;
    memset(&st, 0, sizeof st);
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--seeds") && a + 1 < argc) seeds = strtoull(argv[++a], NULL, 10);
        else if (!strcmp(argv[a], "--first") && a + 1 < argc) first = strtoull(argv[++a], NULL, 10);
        else if (!strcmp(argv[a], "--seed") && a + 1 < argc) { first = strtoull(argv[++a], NULL, 10); seeds = 1; }
        else if (!strcmp(argv[a], "--regressions") && a + 1 < argc) regressions = argv[++a];
        else if (!strcmp(argv[a], "--jobs") && a + 1 < argc) jobs = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--max-failures") && a + 1 < argc) max_failures = strtoull(argv[++a], NULL, 10);
        else if (!strcmp(argv[a], "--no-shrink")) opt_shrink = 0;
        else if (!strcmp(argv[a], "--save-tape") && a + 1 < argc) opt_save_tape = argv[++a];
        else if (!strcmp(argv[a], "--quiet")) opt_quiet = 1;
        else if (!strcmp(argv[a], "--trace")) opt_trace = 1;
        else {
            fprintf(stderr, "usage: %s [--seeds N] [--first S] [--seed S] [--jobs J] [--regressions FILE]\n"
                            "          [--max-failures N (0: all)] [--no-shrink] [--quiet] [--trace] [--save-tape FILE]\n", argv[0]);
            return 2;
        }
    }
    if (jobs < 1) jobs = 1;
    if (regressions) {                                      /* every seed that ever failed, first */
        FILE *f = fopen(regressions, "r");
        char line[256];
        if (!f) { fprintf(stderr, "cannot read %s\n", regressions); return 2; }
        while (fgets(line, sizeof line, f)) {
            char *end;
            unsigned long long s = strtoull(line, &end, 10);
            if (end == line) continue;                      /* comments and blank lines */
            nreg++;
            if (!run_seed(s)) regfail++;
        }
        fclose(f);
        printf("regressions: %llu seeds replayed, %llu failed\n", nreg, regfail);
    }
#if defined(__unix__) || defined(__APPLE__)
    if (jobs > 1 && seeds >= (unsigned long long)jobs) {    /* slices in child processes, summed here */
        int j, fds[64][2];
        pid_t pids[64];
        if (jobs > 64) jobs = 64;
        fflush(stdout);
        for (j = 0; j < jobs; j++) {
            unsigned long long lo = seeds * (unsigned long long)j / (unsigned long long)jobs,
                               hi = seeds * (unsigned long long)(j + 1) / (unsigned long long)jobs;
            if (pipe(fds[j]) != 0) { perror("pipe"); return 2; }
            pids[j] = fork();
            if (pids[j] < 0) { perror("fork"); return 2; }
            if (pids[j] == 0) {
                close(fds[j][0]);
                run_range(first + lo, hi - lo, max_failures, &st);
                fflush(stdout);
                if (write(fds[j][1], &st, sizeof st) != (ssize_t)sizeof st) _exit(3);
                _exit(0);
            }
            close(fds[j][1]);
        }
        for (j = 0; j < jobs; j++) {
            sim_stats part;
            int status;
            if (read(fds[j][0], &part, sizeof part) != (ssize_t)sizeof part) { memset(&part, 0, sizeof part); part.failed = 1; }
            close(fds[j][0]);
            waitpid(pids[j], &status, 0);
            st.passed += part.passed; st.failed += part.failed; st.answers += part.answers; st.local += part.local;
            st.lost += part.lost; st.other += part.other; st.replays += part.replays; st.drops += part.drops; st.steps += part.steps;
        }
    } else
#endif
        run_range(first, seeds, max_failures, &st);
    printf("explored: %llu steps; %llu answers (%llu initialize answered here, %llu connection-lost errors, %llu other shim errors), "
           "%llu session replays, %llu connections dropped by the core\n",
           st.steps, st.answers, st.local, st.lost, st.other, st.replays, st.drops);
    printf("%llu passed, %llu failed\n", st.passed, st.failed + regfail);
    free(T.rec);
    free(W.trace);
    return st.failed || regfail ? 1 : 0;
}
#endif
