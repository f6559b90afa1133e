/* Fuzz harness: the stdio line framer (au_lines_*) and the JSON-RPC
   envelope scanner (au_jsonrpc_scan, au_json_string_eq, au_json_fold).

   Input layout:  [chunking] [cap] [seed] body...
     cap   bit7 set: the default cap (256 MiB); else 1 + (cap & 63) bytes
     seed  drives where CR/LF go in the fold property

   1. The body through au_lines_feed in chunks, then au_lines_finish. The
      lines must be exactly those of ref_lines() (split at LF, one trailing
      CR dropped, empty lines skipped, over-cap lines reported once as
      TOO_LONG with their first cap bytes).
   2. Every OK line, and the whole body, through au_jsonrpc_scan and
      through ref_json(), a slow recursive RFC 8259 validator written here
      (UTF-8, nesting limit 512, duplicate keys: the last wins, keys compared
      after unescaping). They must agree on valid/invalid, kind, and the raw
      id / method / params / result / error tokens; on invalid JSON only the
      members that were complete before the problem may be reported. The
      method is compared through au_json_string_eq with the reference's
      decoded string.
   3. When the body is valid JSON: CR/LF inserted at random places between
      tokens keeps it valid (reference), au_json_fold then changes exactly
      those CR/LF (and any already there) into spaces, leaves no CR/LF, and
      scanner and reference still agree, with the same kind, id and method
      as the original. On any input au_json_fold only turns CR/LF into
      spaces. */
#define ALWAYSUP_IMPLEMENTATION
#include "alwaysup.h"
#include "fuzz_common.h"

/* ------------------------------------------------- reference JSON parser */
#define RJ_MAX_DEPTH 512
enum { M_ID, M_METHOD, M_PARAMS, M_RESULT, M_ERROR, M_COUNT };
static const char *const member_names[M_COUNT] = { "id", "method", "params", "result", "error" };

typedef struct rtok { int set; size_t at, len; } rtok;
typedef struct rj {
    const uint8_t *s;
    size_t n, i;
    const char *err;
    rtok m[M_COUNT];               /* top-level members, committed when complete */
    fz_bytes method;               /* decoded value of the committed method, if a string */
    int method_str;
    size_t *gaps;                  /* offsets where whitespace may go (NULL: not wanted) */
    size_t ngaps, capgaps;
} rj;

static int rj_fail(rj *r, const char *why) { if (!r->err) r->err = why; return -1; }
static void rj_gap(rj *r) {
    if (!r->gaps) return;
    if (r->ngaps == r->capgaps) {
        r->capgaps *= 2;
        r->gaps = (size_t *)realloc(r->gaps, r->capgaps * sizeof *r->gaps);
        if (!r->gaps) abort();
    }
    r->gaps[r->ngaps++] = r->i;
}
static void rj_ws(rj *r) {
    rj_gap(r);
    while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' || r->s[r->i] == '\r'))
        r->i++;
    rj_gap(r);
}
static int hexv(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
static int rj_hex4(rj *r, size_t at, uint32_t *v) {
    size_t k;
    *v = 0;
    if (r->n - at < 4) return 0;
    for (k = 0; k < 4; k++) {
        int h = hexv(r->s[at + k]);
        if (h < 0) return 0;
        *v = *v << 4 | (uint32_t)h;
    }
    return 1;
}
/* string at r->i (a '"'); decodes into out when out is not NULL */
static int rj_string(rj *r, fz_bytes *out) {
    r->i++;
    for (;;) {
        uint8_t c;
        if (r->i >= r->n) return rj_fail(r, "unterminated string");
        c = r->s[r->i];
        if (c == '"') { r->i++; return 0; }
        if (c < 0x20) return rj_fail(r, "control character in string");
        if (c == '\\') {
            uint8_t e;
            if (r->i + 1 >= r->n) return rj_fail(r, "unterminated escape");
            e = r->s[r->i + 1];
            if (e == 'u') {
                uint32_t cp, lo;
                if (!rj_hex4(r, r->i + 2, &cp)) return rj_fail(r, "bad \\u");
                r->i += 6;
                if (cp >= 0xD800 && cp <= 0xDBFF && r->n - r->i >= 6 && r->s[r->i] == '\\' && r->s[r->i + 1] == 'u' &&
                    rj_hex4(r, r->i + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    r->i += 6;
                }
                if (out) fz_put_cp(out, cp);          /* a lone surrogate stays as its 3-byte form */
                continue;
            }
            switch (e) {
            case '"': case '\\': case '/': c = e; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            default: return rj_fail(r, "bad escape");
            }
            if (out) fz_put1(out, c);
            r->i += 2;
            continue;
        }
        if (c < 0x80) { if (out) fz_put1(out, c); r->i++; continue; }
        {   /* one UTF-8 sequence, strictly */
            size_t len;
            int complete;
            if (c >= 0xC2 && c <= 0xDF) len = 2;
            else if (c >= 0xE0 && c <= 0xEF) len = 3;
            else if (c >= 0xF0 && c <= 0xF4) len = 4;
            else return rj_fail(r, "bad UTF-8 lead byte");
            if (r->n - r->i < len || !fz_utf8_check(r->s + r->i, len, &complete) || !complete)
                return rj_fail(r, "bad UTF-8 sequence");
            if (out) fz_put(out, r->s + r->i, len);
            r->i += len;
        }
    }
}
static int isdig(uint8_t c) { return c >= '0' && c <= '9'; }
static int rj_number(rj *r) {
    if (r->i < r->n && r->s[r->i] == '-') r->i++;
    if (r->i >= r->n) return rj_fail(r, "bad number");
    if (r->s[r->i] == '0') r->i++;
    else if (r->s[r->i] >= '1' && r->s[r->i] <= '9') while (r->i < r->n && isdig(r->s[r->i])) r->i++;
    else return rj_fail(r, "bad number");
    if (r->i < r->n && r->s[r->i] == '.') {
        r->i++;
        if (r->i >= r->n || !isdig(r->s[r->i])) return rj_fail(r, "bad fraction");
        while (r->i < r->n && isdig(r->s[r->i])) r->i++;
    }
    if (r->i < r->n && (r->s[r->i] == 'e' || r->s[r->i] == 'E')) {
        r->i++;
        if (r->i < r->n && (r->s[r->i] == '+' || r->s[r->i] == '-')) r->i++;
        if (r->i >= r->n || !isdig(r->s[r->i])) return rj_fail(r, "bad exponent");
        while (r->i < r->n && isdig(r->s[r->i])) r->i++;
    }
    return 0;
}
static int rj_word(rj *r, const char *w) {
    size_t l = strlen(w);
    if (r->n - r->i < l || memcmp(r->s + r->i, w, l) != 0) return rj_fail(r, "bad literal");
    r->i += l;
    return 0;
}
static int rj_value(rj *r, unsigned depth, int root);
static int rj_container(rj *r, unsigned depth, int root) {
    int obj = r->s[r->i] == '{';
    if (depth >= RJ_MAX_DEPTH) return rj_fail(r, "too deep");
    r->i++;
    rj_ws(r);
    if (r->i < r->n && r->s[r->i] == (obj ? '}' : ']')) { r->i++; return 0; }
    for (;;) {
        int which = -1;
        size_t vs, ve;
        fz_bytes key = { 0 };
        if (obj) {
            int k, rc;
            size_t key_at = r->i;
            if (r->i >= r->n || r->s[r->i] != '"') return rj_fail(r, "expected a key");
            rc = rj_string(r, root ? &key : NULL);
            if (rc) { fz_free(&key); return -1; }
            if (root)
                for (k = 0; k < M_COUNT; k++)
                    if (key.len == strlen(member_names[k]) && memcmp(key.p, member_names[k], key.len) == 0) which = k;
#ifdef FUZZ_MODEL_KEY_LIMIT
            /* models the known scanner limit (keys written in 32+ bytes are
               not recognised) so a campaign can look past that finding */
            if (r->i - key_at >= 32) which = -1;
#endif
            (void)key_at;
            fz_free(&key);
            rj_ws(r);
            if (r->i >= r->n || r->s[r->i] != ':') return rj_fail(r, "expected ':'");
            r->i++;
            rj_ws(r);
        }
        vs = r->i;
        if (rj_value(r, depth + 1, 0)) return -1;
        ve = r->i;
        rj_ws(r);
        if (r->i >= r->n) return rj_fail(r, "unterminated container");
        if (r->s[r->i] != ',' && r->s[r->i] != (obj ? '}' : ']')) return rj_fail(r, "expected ',' or close");
        if (which >= 0) {                              /* a whole top-level member: the last one wins */
            r->m[which].set = 1;
            r->m[which].at = vs;
            r->m[which].len = ve - vs;
            if (which == M_METHOD) {
                rj sub = *r;
                r->method.len = 0;
                r->method_str = r->s[vs] == '"';
                if (r->method_str) {
                    sub.i = vs;
                    sub.gaps = NULL;
                    sub.err = NULL;
                    FZ_CHECK(rj_string(&sub, &r->method) == 0 && sub.i == ve, "reference re-read of method failed");
                }
                fz_put(&r->method, NULL, 0);          /* NUL-terminated at its new length */
            }
        }
        if (r->s[r->i++] != ',') return 0;
        rj_ws(r);
    }
}
static int rj_value(rj *r, unsigned depth, int root) {
    uint8_t c;
    if (r->i >= r->n) return rj_fail(r, "expected a value");
    c = r->s[r->i];
    if (c == '{' || c == '[') return rj_container(r, depth, root && c == '{');
    if (c == '"') return rj_string(r, NULL);
    if (c == '-' || isdig(c)) return rj_number(r);
    if (c == 't') return rj_word(r, "true");
    if (c == 'f') return rj_word(r, "false");
    if (c == 'n') return rj_word(r, "null");
    return rj_fail(r, "unexpected character");
}

typedef struct rres { int valid, kind; } rres;
/* validates and classifies; members/method are in r afterwards */
static rres ref_json(rj *r, const uint8_t *s, size_t n, int want_gaps) {
    rres o;
    uint8_t top;
    memset(r, 0, sizeof *r);
    r->s = s;
    r->n = n;
    if (want_gaps) {
        r->capgaps = 64;
        r->gaps = (size_t *)malloc(r->capgaps * sizeof *r->gaps);
    }
    o.valid = 0;
    o.kind = AU_RPC_INVALID;
    rj_ws(r);
    if (r->i >= n) { rj_fail(r, "empty"); return o; }
    top = s[r->i];
    if (rj_value(r, 0, 1)) return o;
    rj_ws(r);
    if (r->i != n) { rj_fail(r, "text after the value"); return o; }
    o.valid = 1;
    if (top == '[') {                                  /* a batch, unless empty */
        size_t k = 1;
        while (s[k - 1] != '[') k++;
        while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r')) k++;
        o.kind = s[k] == ']' ? AU_RPC_INVALID : AU_RPC_BATCH;
        return o;
    }
    if (top != '{') return o;
    if (r->m[M_ID].set) {
        uint8_t c = s[r->m[M_ID].at];
        if (!(c == '"' || c == '-' || isdig(c) || c == 'n')) return o;   /* string, number or null */
    }
    if (r->m[M_METHOD].set) {
        if (!r->method_str) return o;
        o.kind = r->m[M_ID].set ? AU_RPC_REQUEST : AU_RPC_NOTIFICATION;
        return o;
    }
    if (r->m[M_ID].set && (r->m[M_RESULT].set || r->m[M_ERROR].set)) o.kind = AU_RPC_RESPONSE;
    return o;
}

/* ---------------------------------------------- scanner vs reference */
static void expect_tok(const char *text, au_tok t, rtok w, const char *name, const char *ctx) {
    if (!w.set) {
        FZ_CHECK(t.p == NULL, "%s: %s reported at %td (+%zu) but the reference has none", ctx, name, t.p - text, t.len);
        return;
    }
    FZ_CHECK(t.p != NULL, "%s: %s missing, the reference has [%zu,+%zu) %.*s", ctx, name, w.at, w.len, (int)w.len,
             text + w.at);
    FZ_CHECK((size_t)(t.p - text) == w.at && t.len == w.len, "%s: %s is [%td,+%zu), the reference says [%zu,+%zu)", ctx,
             name, t.p - text, t.len, w.at, w.len);
}
/* compares au_jsonrpc_scan with the reference on text (its own heap copy) */
static rres compare_scan(const char *text, size_t n, const char *ctx, rj *r) {
    au_jsonrpc out;
    int got;
    rres ref = ref_json(r, (const uint8_t *)text, n, 0);
    got = au_jsonrpc_scan(text, n, &out);
    if (!ref.valid) {
        FZ_CHECK(got == AU_EINVAL, "%s: invalid JSON (%s at %zu) scanned as kind %d: %s", ctx, r->err, r->i, got,
                 fz_hex(text, n));
        FZ_CHECK(out.kind == 0 && out.problem != NULL && out.problem_at <= n, "%s: fields after EINVAL", ctx);
        FZ_CHECK(!out.params.p && !out.result.p && !out.error.p, "%s: members reported for invalid JSON", ctx);
    } else {
        FZ_CHECK(got != AU_EINVAL, "%s: valid JSON refused (%s at %zu): %s", ctx, out.problem, out.problem_at,
                 fz_hex(text, n));
        FZ_CHECK(got == ref.kind && out.kind == ref.kind, "%s: kind %d, the reference says %d: %s", ctx, got, ref.kind,
                 fz_hex(text, n));
        FZ_CHECK(out.end == n, "%s: end %zu of %zu", ctx, out.end, n);
        if (got == AU_RPC_INVALID) FZ_CHECK(out.problem != NULL, "%s: INVALID without a problem", ctx);
        expect_tok(text, out.params, r->m[M_PARAMS], "params", ctx);
        expect_tok(text, out.result, r->m[M_RESULT], "result", ctx);
        expect_tok(text, out.error, r->m[M_ERROR], "error", ctx);
    }
    /* id and method: always (for invalid JSON: those complete before the problem) */
    expect_tok(text, out.id, r->m[M_ID], "id", ctx);
    expect_tok(text, out.method, r->m[M_METHOD], "method", ctx);
    if (out.method.p) {
        if (r->method_str) {
            const uint8_t *nul = (const uint8_t *)memchr(r->method.p ? r->method.p : (const uint8_t *)"", 0, r->method.len);
            if (!nul) {
                fz_bytes alt = { 0 };
                FZ_CHECK(au_json_string_eq(out.method, (const char *)(r->method.p ? r->method.p : (const uint8_t *)"")),
                         "%s: au_json_string_eq(method, decoded %s) is 0", ctx, fz_hex(r->method.p, r->method.len));
                fz_put(&alt, r->method.p, r->method.len);
                fz_put1(&alt, 'x');
                FZ_CHECK(!au_json_string_eq(out.method, (const char *)alt.p), "%s: method equals a longer text", ctx);
                if (r->method.len) {
                    alt.len = r->method.len - 1;
                    alt.p[alt.len] = 0;
                    if (!memchr(alt.p, 0, alt.len))
                        FZ_CHECK(!au_json_string_eq(out.method, (const char *)alt.p), "%s: method equals a shorter text", ctx);
                }
                fz_free(&alt);
            } else {
                FZ_CHECK(!au_json_string_eq(out.method, (const char *)r->method.p),
                         "%s: method with \\u0000 equals its prefix", ctx);
            }
        } else {
            FZ_CHECK(!au_json_string_eq(out.method, ""), "%s: non-string method equals \"\"", ctx);
        }
    }
    return ref;
}

/* whitespace outside strings removed: two renderings of the same value */
static void squeeze(const uint8_t *p, size_t n, fz_bytes *o) {
    size_t i;
    int in_str = 0;
    o->len = 0;
    for (i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_str) {
            fz_put1(o, c);
            if (c == '\\' && i + 1 < n) fz_put1(o, p[++i]);
            else if (c == '"') in_str = 0;
        } else if (c == '"') { in_str = 1; fz_put1(o, c); }
        else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') fz_put1(o, c);
    }
    if (!o->p) fz_put(o, NULL, 0);
}
static void same_member(const rj *a, const rj *b, int which, const char *ctx) {
    fz_bytes x = { 0 }, y = { 0 };
    FZ_CHECK(a->m[which].set == b->m[which].set, "%s: %s present %d vs %d", ctx, member_names[which], a->m[which].set,
             b->m[which].set);
    if (a->m[which].set) {
        squeeze(a->s + a->m[which].at, a->m[which].len, &x);
        squeeze(b->s + b->m[which].at, b->m[which].len, &y);
        FZ_CHECK(x.len == y.len && memcmp(x.p, y.p, x.len) == 0, "%s: %s changed: %s", ctx, member_names[which],
                 fz_hex(y.p, y.len));
    }
    fz_free(&x);
    fz_free(&y);
}

/* ------------------------------------------------------ reference lines */
typedef struct rline { int kind; size_t at, len; } rline;
/* one entry per line the framer must report, in order */
static size_t ref_lines(const uint8_t *s, size_t n, size_t cap, rline *out, size_t max_out) {
    size_t start = 0, k = 0;
    while (start < n && k < max_out) {
        const uint8_t *nl = (const uint8_t *)memchr(s + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - s) : n, len = end - start, content = len;
        if (content && s[start + content - 1] == '\r') content--;
        if (content > cap) { out[k].kind = AU_LINE_TOO_LONG; out[k].at = start; out[k].len = cap; k++; }
        else if (content) { out[k].kind = AU_LINE_OK; out[k].at = start; out[k].len = content; k++; }
        start = end + 1;
    }
    return k;
}

static void check_line_json(const char *line, size_t len) {
    char *copy = (char *)fz_dup(line, len);            /* exact size: over-reads are ASan reports */
    rj r;
    compare_scan(copy, len, "line", &r);
    fz_free(&r.method);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_chunker ch;
    size_t cap, n, pos = 0, nref, got = 0, i;
    const uint8_t *body;
    rline *want;
    au_lines l;
    uint64_t seed;

    if (size < 3) return 0;
    fz_chunker_init(&ch, data[0], 11);
    cap = (data[1] & 0x80) ? 0 : 1 + (size_t)(data[1] & 63);
    seed = data[2];
    body = data + 3;
    n = size - 3;

    /* 1 + 2: lines, each scanned */
    want = (rline *)malloc((n + 1) * sizeof *want);
    nref = ref_lines(body, n, cap ? cap : (size_t)256 << 20, want, n + 1);
    au_lines_init(&l, cap);
    while (pos < n) {
        size_t c = fz_chunk(&ch, n - pos), cp = 0;
        uint8_t *buf = fz_dup(body + pos, c);
        int stalls = 0;
        while (cp < c) {
            int kind = -1;
            const char *line = NULL;
            size_t ll = 0, used = au_lines_feed(&l, buf + cp, c - cp, &kind, &line, &ll);
            FZ_CHECK(used <= c - cp, "lines used %zu of %zu", used, c - cp);
            if (kind == AU_LINE_NONE) FZ_CHECK(used == c - cp, "NONE with input left");
            else {
                FZ_CHECK(kind == AU_LINE_OK || kind == AU_LINE_TOO_LONG, "kind %d", kind);
                FZ_CHECK(got < nref, "line %zu (kind %d, %.*s) beyond the %zu expected", got, kind, (int)ll, line, nref);
                FZ_CHECK(kind == want[got].kind && ll == want[got].len && (ll == 0 || memcmp(line, body + want[got].at, ll) == 0),
                         "line %zu: kind %d '%.*s', expected kind %d '%.*s'", got, kind, (int)ll, line, want[got].kind,
                         (int)want[got].len, (const char *)body + want[got].at);
                FZ_CHECK(!memchr(line, '\n', ll), "line holds LF");
                if (kind == AU_LINE_OK) check_line_json(line, ll);
                got++;
            }
            cp += used;
            if (used == 0) FZ_CHECK(++stalls < 3, "framer makes no progress");
            else stalls = 0;
        }
        free(buf);
        pos += c;
    }
    {
        const char *line = NULL;
        size_t ll = 0;
        int kind = au_lines_finish(&l, &line, &ll);
        if (kind == AU_LINE_OK) {
            FZ_CHECK(got < nref && want[got].kind == AU_LINE_OK && ll == want[got].len &&
                         memcmp(line, body + want[got].at, ll) == 0,
                     "last line '%.*s' not expected", (int)ll, line);
            check_line_json(line, ll);
            got++;
        } else FZ_CHECK(kind == AU_LINE_NONE, "finish kind %d", kind);
        FZ_CHECK(got == nref, "%zu lines reported, %zu expected", got, nref);
        FZ_CHECK(au_lines_finish(&l, &line, &ll) == AU_LINE_NONE, "second finish reports a line");
    }
    au_lines_free(&l);
    free(want);

    /* 2 + 3: the whole body as one JSON text, and the fold property */
    {
        char *text = (char *)fz_dup(body, n), *copy;
        rj r, r2, r3;
        rres a, b, c2;
        size_t crlf = 0, changed;
        fz_bytes ins = { 0 };
        a = compare_scan(text, n, "body", &r);
        fz_free(&r.method);
        /* au_json_fold on anything: only CR/LF become spaces */
        copy = (char *)fz_dup(body, n);
        changed = au_json_fold(copy, n);
        for (i = 0; i < n; i++) {
            if (body[i] == '\r' || body[i] == '\n') crlf++;
            if ((uint8_t)copy[i] != body[i])
                FZ_CHECK((body[i] == '\r' || body[i] == '\n') && copy[i] == ' ', "fold changed byte %zu", i);
        }
        FZ_CHECK(changed <= crlf, "fold changed %zu of %zu CR/LF", changed, crlf);
        if (a.valid) FZ_CHECK(changed == crlf && !memchr(copy, '\n', n) && !memchr(copy, '\r', n),
                              "fold of valid JSON left CR/LF (changed %zu of %zu)", changed, crlf);
        free(copy);
        if (a.valid) {
            uint64_t rng = 0xF01Dull + seed;
            size_t g = 0, at = 0;
            static const char *const breaks[] = { "\n", "\r", "\r\n", "\n\n", " \r\n\t", "\n\r" };
            (void)ref_json(&r, (const uint8_t *)text, n, 1);   /* the gaps */
            for (at = 0; at <= n; at++) {
                while (g < r.ngaps && r.gaps[g] == at) {
                    if (fz_below(&rng, 3) == 0) {
                        const char *b2 = breaks[fz_below(&rng, 6)];
                        fz_put(&ins, b2, strlen(b2));
                    }
                    g++;
                }
                if (at < n) fz_put1(&ins, body[at]);
            }
            if (!ins.p) fz_put(&ins, NULL, 0);
            copy = (char *)fz_dup(ins.p, ins.len);
            b = compare_scan(copy, ins.len, "with CR/LF", &r2);
            FZ_CHECK(b.valid && b.kind == a.kind, "CR/LF between tokens changed validity/kind (%d/%d)", b.valid, b.kind);
            same_member(&r, &r2, M_ID, "with CR/LF");
            same_member(&r, &r2, M_METHOD, "with CR/LF");
            crlf = 0;
            for (i = 0; i < ins.len; i++) if (copy[i] == '\r' || copy[i] == '\n') crlf++;
            changed = au_json_fold(copy, ins.len);
            FZ_CHECK(changed == crlf, "fold changed %zu of %zu CR/LF", changed, crlf);
            FZ_CHECK(!memchr(copy, '\n', ins.len) && !memchr(copy, '\r', ins.len), "CR/LF left after fold");
            for (i = 0; i < ins.len; i++)
                if ((uint8_t)copy[i] != ins.p[i]) FZ_CHECK(copy[i] == ' ', "fold wrote %02x", (uint8_t)copy[i]);
            c2 = compare_scan(copy, ins.len, "folded", &r3);
            FZ_CHECK(c2.valid && c2.kind == a.kind, "folded text changed validity/kind (%d/%d)", c2.valid, c2.kind);
            same_member(&r, &r3, M_ID, "folded");
            same_member(&r, &r3, M_METHOD, "folded");
            FZ_CHECK(r3.method.len == r.method.len && (r.method.len == 0 || memcmp(r3.method.p, r.method.p, r.method.len) == 0),
                     "folded method decodes differently");
            free(copy);
            fz_free(&r2.method);
            fz_free(&r3.method);
            free(r.gaps);
            fz_free(&r.method);
            fz_free(&ins);
        }
        free(text);
    }
    return 0;
}
