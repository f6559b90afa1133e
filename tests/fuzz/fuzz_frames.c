/* Fuzz harness: the RFC 6455 frame decoder (au_ws_decode) and the client
   connection on top of it (au_ws_init / au_ws_recv).

   Input layout:  [chunking] [max_message] [flags] body...
     chunking     low 3 bits pick a chunking pattern, the rest seed it
     max_message  0: default (256 MiB), 1..127: that many bytes,
                  128..254: (n-127)*64, 255: 65537
     flags        bit0 offer subprotocols, bits1-2 the one the server picks,
                  bit3 drive the session with the generated frames (part B)
                  instead of the raw body, bits4-5 response head variant
                  (0 CRLF, 1 LF only, 2 odd case + header list, 3 a wrong
                  Sec-WebSocket-Accept: the handshake must fail), bit6 let
                  part B generate messages over 64 KiB (slow) and send one
                  from the client, bit7 the client closes first (CLOSING)

   Three checks per input:
   A. The body as raw server bytes through au_ws_decode in chunks. Every
      event is checked (bounds, first/fin, control sizes, UTF-8 of finished
      text, limits, sticky ERROR/CLOSE, progress), and the whole event stream
      is compared with ref_decode(), an independent whole-buffer decoder
      written here from RFC 6455.
   B. The body read as a program of valid frame sequences (messages, possibly
      fragmented with control frames in between, pings, pongs, a close) that
      this file encodes as unmasked server frames with minimal lengths; the
      decoder must return exactly those messages / pings / pongs / close
      (or 1009 where a message crosses max_message).
   C. A full client connection: au_ws_init with a deterministic random
      source, a valid 101 answer computed from the key in the request it
      queued, then the bytes of A (or B). Messages, pings, pongs, close and
      failures must match the reference, and the client's own output must
      hold a masked pong per ping and the right close reply. */
#define ALWAYSUP_IMPLEMENTATION
#include "alwaysup.h"
#include "fuzz_common.h"

#define MAX_CONTROL 125
#define DEFAULT_MAX ((uint64_t)256 << 20)

/* ------------------------------------------------------------ event lists */
enum { E_MSG = 1, E_PING, E_PONG, E_CLOSE, E_ERROR, E_PARTIAL };
static const char *const ev_names[] = { "?", "MSG", "PING", "PONG", "CLOSE", "ERROR", "PARTIAL" };

typedef struct fev { int type; unsigned op, code; fz_bytes data; } fev;
typedef struct fevl { fev *v; size_t n, cap; } fevl;

static fev *fevl_add(fevl *l, int type, unsigned op, unsigned code, const void *d, size_t n) {
    fev *e;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = (fev *)realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) abort();
    }
    e = &l->v[l->n++];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->op = op;
    e->code = code;
    fz_put(&e->data, d, n);
    return e;
}
static void fevl_free(fevl *l) {
    size_t i;
    for (i = 0; i < l->n; i++) fz_free(&l->v[i].data);
    free(l->v);
    memset(l, 0, sizeof *l);
}
static void fev_print(const char *tag, const fev *e) {
    if (!e) { fprintf(stderr, "  %s: (none)\n", tag); return; }
    fprintf(stderr, "  %s: %s op=%u code=%u len=%zu data=%s\n", tag, ev_names[e->type], e->op, e->code,
            e->data.len, fz_hex(e->data.p, e->data.len));
}
static int fev_same(const fev *a, const fev *b) {
    return a->type == b->type && a->op == b->op && a->code == b->code && a->data.len == b->data.len &&
           (a->data.len == 0 || memcmp(a->data.p, b->data.p, a->data.len) == 0);
}
static void fevl_expect(const fevl *got, const fevl *want, const char *what) {
    size_t i, m = got->n > want->n ? got->n : want->n;
    for (i = 0; i < m; i++) {
        const fev *g = i < got->n ? &got->v[i] : NULL, *w = i < want->n ? &want->v[i] : NULL;
        if (!g || !w || !fev_same(g, w)) {
            fprintf(stderr, "%s: event %zu differs (got %zu events, expected %zu)\n", what, i, got->n, want->n);
            fev_print("got     ", g);
            fev_print("expected", w);
            FZ_CHECK(0, "%s: event streams differ", what);
        }
    }
}

static int close_code_ok(unsigned c) {  /* RFC 6455 7.4.1/7.4.2 + IANA 1012-1014 */
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}
static uint64_t effective_max(uint64_t max) {
    uint64_t e = max ? max : DEFAULT_MAX;
    return e > (uint64_t)SIZE_MAX ? (uint64_t)SIZE_MAX : e;
}

/* ------------------------------------------------ A: the decoder, chunked */
/* Runs in through a fresh decoder in chunks, checking every event, and
   records the observable stream in out. */
static void run_decoder(const uint8_t *in, size_t n, uint64_t max, uint8_t chunk_sel, fevl *out) {
    au_ws_decoder d;
    fz_chunker ch;
    fz_bytes msg = { 0 };
    uint64_t eff = effective_max(max);
    size_t pos = 0, checked = 0;
    int in_msg = 0, done = 0;
    unsigned mop = 0;

    au_ws_decoder_init(&d, max);
    fz_chunker_init(&ch, chunk_sel, 1);
    while (pos < n && !done) {
        size_t c = fz_chunk(&ch, n - pos), cp = 0;
        uint8_t *buf = fz_dup(in + pos, c);
        int stalls = 0;
        while (cp < c && !done) {
            au_ws_event ev;
            size_t rest = c - cp, used;
            memset(&ev, 0xA5, sizeof ev);            /* the decoder must fill every field it reports */
            used = au_ws_decode(&d, buf + cp, rest, &ev);
            FZ_CHECK(used <= rest, "decode used %zu of %zu bytes", used, rest);
            switch (ev.type) {
            case AU_WS_EV_NONE:
                FZ_CHECK(used == rest, "NONE with %zu of %zu bytes used: the caller would loop", used, rest);
                break;
            case AU_WS_EV_DATA: {
                FZ_CHECK(ev.opcode == AU_OP_TEXT || ev.opcode == AU_OP_BINARY, "DATA opcode %u", ev.opcode);
                FZ_CHECK(ev.len == 0 || ev.data != NULL, "DATA without a pointer");
                if (ev.len) {
                    FZ_CHECK(ev.data >= buf + cp && ev.data + ev.len <= buf + cp + used,
                             "DATA piece [%td,+%zu) outside the consumed input [%zu,+%zu)", ev.data - buf, ev.len,
                             cp, used);
                }
                FZ_CHECK(ev.len > 0 || ev.fin, "empty DATA piece that does not end the message");
                if (ev.first) {
                    FZ_CHECK(!in_msg, "first piece while a message is open");
                    in_msg = 1;
                    mop = ev.opcode;
                    msg.len = 0;
                    checked = 0;
                } else {
                    FZ_CHECK(in_msg, "continuation piece with no message open");
                    FZ_CHECK(ev.opcode == mop, "opcode changed inside a message (%u -> %u)", mop, ev.opcode);
                }
                FZ_CHECK((uint64_t)msg.len + ev.len <= eff, "message grew to %zu bytes, limit %llu",
                         msg.len + ev.len, (unsigned long long)eff);
                fz_put(&msg, ev.data, ev.len);
                if (mop == AU_OP_TEXT) {
                    int complete;
                    FZ_CHECK(fz_utf8_check_from(msg.p, msg.len, &checked, &complete),
                             "text delivered with invalid UTF-8: %s", fz_hex(msg.p, msg.len));
                }
                if (ev.fin) {
                    if (mop == AU_OP_TEXT) {
                        FZ_CHECK(au_utf8_valid(msg.p, msg.len), "finished text message fails au_utf8_valid");
                        FZ_CHECK(fz_utf8_valid(msg.p, msg.len), "finished text message is not UTF-8: %s",
                                 fz_hex(msg.p, msg.len));
                    }
                    fevl_add(out, E_MSG, mop, 0, msg.p, msg.len);
                    in_msg = 0;
                    msg.len = 0;
                }
                break;
            }
            case AU_WS_EV_PING:
            case AU_WS_EV_PONG:
                FZ_CHECK(ev.len <= MAX_CONTROL, "control payload of %zu bytes", ev.len);
                FZ_CHECK(ev.len == 0 || ev.data != NULL, "control event without a pointer");
                fevl_add(out, ev.type == AU_WS_EV_PING ? E_PING : E_PONG, 0, 0, ev.data, ev.len);
                break;
            case AU_WS_EV_CLOSE: {
                au_ws_event ev2;
                size_t r2;
                static const uint8_t junk[] = { 0x81, 0x02, 'h', 'i', 0xFF, 0x00 };
                FZ_CHECK(ev.code == 1005 ? ev.reason_len == 0 : close_code_ok(ev.code), "CLOSE code %u reason %zu",
                         ev.code, ev.reason_len);
                FZ_CHECK(ev.reason_len <= MAX_CONTROL - 2, "close reason of %zu bytes", ev.reason_len);
                FZ_CHECK(ev.reason_len == 0 || ev.reason != NULL, "close reason without a pointer");
                FZ_CHECK(fz_utf8_valid((const uint8_t *)ev.reason, ev.reason_len), "close reason not UTF-8");
                fevl_add(out, E_CLOSE, 0, ev.code, ev.reason, ev.reason_len);
                done = 1;
                /* nothing after a close is reported, and all of it is consumed */
                r2 = au_ws_decode(&d, buf + cp + used, rest - used, &ev2);
                FZ_CHECK(r2 == rest - used && ev2.type == AU_WS_EV_NONE, "after CLOSE: used %zu of %zu, event %d", r2,
                         rest - used, ev2.type);
                r2 = au_ws_decode(&d, junk, sizeof junk, &ev2);
                FZ_CHECK(r2 == sizeof junk && ev2.type == AU_WS_EV_NONE, "after CLOSE: junk gave event %d", ev2.type);
                break;
            }
            case AU_WS_EV_ERROR: {
                au_ws_event ev2;
                size_t r2;
                static const uint8_t good[] = { 0x8A, 0x00, 0x82, 0x01, 0x00 };
                FZ_CHECK(ev.code == 1002 || ev.code == 1007 || ev.code == 1009, "ERROR code %u", ev.code);
                FZ_CHECK(ev.reason != NULL && strlen(ev.reason) == ev.reason_len, "ERROR reason missing");
                fevl_add(out, E_ERROR, 0, ev.code, NULL, 0);
                done = 2;
                /* the decoder stays failed, whatever comes next */
                r2 = au_ws_decode(&d, buf + cp + used, rest - used, &ev2);
                FZ_CHECK(r2 == 0 && ev2.type == AU_WS_EV_ERROR && ev2.code == ev.code,
                         "after ERROR: used %zu, event %d code %u", r2, ev2.type, ev2.code);
                r2 = au_ws_decode(&d, good, sizeof good, &ev2);
                FZ_CHECK(r2 == 0 && ev2.type == AU_WS_EV_ERROR && ev2.code == ev.code,
                         "after ERROR: valid frames gave event %d", ev2.type);
                break;
            }
            default:
                FZ_CHECK(0, "unknown event type %d", ev.type);
            }
            cp += used;
            if (used == 0 && !done) FZ_CHECK(++stalls < 4, "decoder makes no progress");
            else stalls = 0;
        }
        free(buf);
        pos += c;
    }
    if (!done && in_msg && msg.len) fevl_add(out, E_PARTIAL, mop, 0, msg.p, msg.len);
    fz_free(&msg);
}

/* --------------------------------------- reference decoder (whole buffer) */
/* Straight from RFC 6455 5.2-5.5 and 7.4 plus the documented limits: what a
   client must report for these bytes, in order. */
static void ref_decode(const uint8_t *p, size_t n, uint64_t eff, fevl *out) {
    size_t pos = 0;
    int in_msg = 0;
    unsigned mop = 0;
    uint64_t mlen = 0;
    size_t checked = 0;
    fz_bytes msg = { 0 };
#define REF_FAIL(code) do { fevl_add(out, E_ERROR, 0, (code), NULL, 0); fz_free(&msg); return; } while (0)
    for (;;) {
        unsigned b0, b1, op, len7;
        int fin;
        size_t hl, avail, take;
        uint64_t len;
        if (n - pos < 2) break;
        b0 = p[pos]; b1 = p[pos + 1];
        fin = (b0 & 0x80) != 0;
        op = b0 & 0x0F;
        len7 = b1 & 0x7F;
        if (b0 & 0x70) REF_FAIL(1002);                       /* RSV without an extension */
        if (b1 & 0x80) REF_FAIL(1002);                       /* servers must not mask */
        if (op == 0x8 || op == 0x9 || op == 0xA) {
            if (!fin || len7 > 125) REF_FAIL(1002);
        } else if (op == 0x0) {
            if (!in_msg) REF_FAIL(1002);
        } else if (op == 0x1 || op == 0x2) {
            if (in_msg) REF_FAIL(1002);
        } else REF_FAIL(1002);                               /* reserved opcodes */
        hl = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
        if (n - pos < hl) break;
        if (len7 == 126) {
            len = (uint64_t)p[pos + 2] << 8 | p[pos + 3];
            if (len < 126) REF_FAIL(1002);
        } else if (len7 == 127) {
            unsigned i;
            len = 0;
            for (i = 0; i < 8; i++) len = len << 8 | p[pos + 2 + i];
            if (len >> 63) REF_FAIL(1002);
            if (len < 65536) REF_FAIL(1002);
        } else len = len7;
        pos += hl;
        avail = n - pos;
        if (op < 8) {
            if (op != 0) { in_msg = 1; mop = op; mlen = 0; msg.len = 0; checked = 0; }
            if (len > eff || mlen > eff - len) REF_FAIL(1009);
            mlen += len;
            take = len < avail ? (size_t)len : avail;
            fz_put(&msg, p + pos, take);
            pos += take;
            if (mop == 1) {
                int complete;
                if (!fz_utf8_check_from(msg.p, msg.len, &checked, &complete)) REF_FAIL(1007);
                if (take == len && fin && !complete) REF_FAIL(1007);
            }
            if (take < len) break;                           /* frame cut short */
            if (fin) { fevl_add(out, E_MSG, mop, 0, msg.p, msg.len); in_msg = 0; msg.len = 0; }
        } else {
            if (avail < len) break;
            if (op == 0x9 || op == 0xA) fevl_add(out, op == 0x9 ? E_PING : E_PONG, 0, 0, p + pos, (size_t)len);
            else {
                unsigned code = 1005;
                if (len == 1) REF_FAIL(1002);
                if (len >= 2) {
                    code = (unsigned)p[pos] << 8 | p[pos + 1];
                    if (!close_code_ok(code)) REF_FAIL(1002);
                    if (!fz_utf8_valid(p + pos + 2, (size_t)len - 2)) REF_FAIL(1007);
                    fevl_add(out, E_CLOSE, 0, code, p + pos + 2, (size_t)len - 2);
                } else fevl_add(out, E_CLOSE, 0, code, NULL, 0);
                fz_free(&msg);
                return;                                      /* nothing after a close */
            }
            pos += (size_t)len;
        }
    }
    if (in_msg && msg.len) fevl_add(out, E_PARTIAL, mop, 0, msg.p, msg.len);
    fz_free(&msg);
#undef REF_FAIL
}

/* ------------------------------------------ B: valid frame programs */
static void srv_frame(fz_bytes *w, unsigned op, int fin, const uint8_t *p, size_t n) {
    uint8_t h[10];
    size_t hl;
    h[0] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (n < 126) { h[1] = (uint8_t)n; hl = 2; }
    else if (n <= 0xFFFF) { h[1] = 126; h[2] = (uint8_t)(n >> 8); h[3] = (uint8_t)n; hl = 4; }
    else {
        unsigned i;
        h[1] = 127;
        for (i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    fz_put(w, h, hl);
    fz_put(w, p, n);
}
static void gen_control(fz_src *s, uint64_t *rng, unsigned op, fz_bytes *w, fevl *want) {
    uint8_t payload[MAX_CONTROL];
    size_t len = fz_u8(s) % (MAX_CONTROL + 1), i;
    for (i = 0; i < len; i++) payload[i] = (uint8_t)fz_rand(rng);
    srv_frame(w, op, 1, payload, len);
    fevl_add(want, op == AU_OP_PING ? E_PING : E_PONG, 0, 0, payload, len);
}
/* Reads a program from s, appends its frames to w and what the decoder must
   report to want. Stops after a close or a 1009. */
static void gen_program(fz_src *s, uint64_t eff, int allow_big, fz_bytes *w, fevl *want) {
    static const unsigned codes[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                                      3000, 3999, 4000, 4999 };
    uint64_t rng = 0xC0FFEEull ^ ((uint64_t)fz_u8(s) << 8 | fz_u8(s));
    int steps = 0;
    while (fz_left(s) && steps++ < 48 && w->len < 2048) {       /* bounded, to keep runs fast */
        uint8_t op = fz_u8(s);
        switch (op % 8) {
        case 0: case 1: case 2: case 3: case 7: {
            unsigned mop = (op % 8) < 2 || (op % 8 == 7 && (op & 8)) ? AU_OP_TEXT : AU_OP_BINARY;
            uint8_t sz = fz_u8(s);
            size_t len, cuts[8], nfrag, f, i;
            uint8_t il;
            uint64_t cumul = 0;
            fz_bytes content = { 0 };
            if (sz < 192) len = sz % 48;
            else if (sz < 248) len = 120 + (size_t)(sz - 192) * 7;          /* 16-bit lengths from 126 */
            else if (sz < 254 && allow_big) len = 65530 + (size_t)(sz - 248) * 3;  /* 65530..65545 */
            else len = 0;
            if (mop == AU_OP_TEXT) fz_gen_utf8(&content, &rng, len);
            else for (i = 0; i < len; i++) fz_put1(&content, (uint8_t)fz_rand(&rng));
            len = content.len;
            if (!content.p) fz_put(&content, NULL, 0);     /* a real pointer even when empty */
            nfrag = 1 + fz_u8(s) % 6;
            il = fz_u8(s);
            cuts[0] = 0;
            cuts[nfrag] = len;
            for (f = 1; f < nfrag; f++) cuts[f] = fz_below(&rng, len + 1);
            for (f = 1; f < nfrag; f++) {                   /* sort the cut points */
                size_t g;
                for (g = f + 1; g < nfrag; g++)
                    if (cuts[g] < cuts[f]) { size_t t = cuts[f]; cuts[f] = cuts[g]; cuts[g] = t; }
            }
            if (op % 8 == 7 && nfrag < 3) {                  /* empty first and last fragments */
                nfrag = 3; cuts[1] = 0; cuts[2] = len; cuts[3] = len;
            }
            for (f = 0; f < nfrag; f++) {
                size_t fl = cuts[f + 1] - cuts[f];
                int fin = f + 1 == nfrag;
                if (fl > eff - cumul) {                     /* crosses max_message */
                    srv_frame(w, f ? AU_OP_CONT : mop, fin, content.p + cuts[f], fl);
                    fevl_add(want, E_ERROR, 0, 1009, NULL, 0);
                    fz_free(&content);
                    return;
                }
                cumul += fl;
                srv_frame(w, f ? AU_OP_CONT : mop, fin, content.p + cuts[f], fl);
                if (!fin && ((il >> f) & 1)) gen_control(s, &rng, (il & 0x80) ? AU_OP_PONG : AU_OP_PING, w, want);
            }
            fevl_add(want, E_MSG, mop, 0, content.p, content.len);
            fz_free(&content);
            break;
        }
        case 4: gen_control(s, &rng, AU_OP_PING, w, want); break;
        case 5: gen_control(s, &rng, AU_OP_PONG, w, want); break;
        case 6: {
            uint8_t kind = fz_u8(s), payload[MAX_CONTROL];
            if (kind % 4 == 0) {
                srv_frame(w, AU_OP_CLOSE, 1, NULL, 0);
                fevl_add(want, E_CLOSE, 0, 1005, NULL, 0);
            } else {
                unsigned code = (kind & 4) ? 3000 + (unsigned)fz_below(&rng, 2000)
                                           : codes[fz_below(&rng, sizeof codes / sizeof codes[0])];
                fz_bytes reason = { 0 };
                fz_gen_utf8(&reason, &rng, fz_u8(s) % (MAX_CONTROL - 1));
                payload[0] = (uint8_t)(code >> 8);
                payload[1] = (uint8_t)code;
                if (reason.len) memcpy(payload + 2, reason.p, reason.len);
                srv_frame(w, AU_OP_CLOSE, 1, payload, 2 + reason.len);
                fevl_add(want, E_CLOSE, 0, code, reason.p, reason.len);
                fz_free(&reason);
            }
            fz_put(w, s->p + s->i, fz_left(s));             /* anything after the close is ignored */
            return;
        }
        }
    }
}

/* ------------------------------------------- C: the client connection */
static int det_random(void *user, void *buf, size_t len) {
    uint64_t *st = (uint64_t *)user;
    uint8_t *p = (uint8_t *)buf;
    size_t i;
    for (i = 0; i < len; i++) p[i] = (uint8_t)fz_rand(st);
    return 0;
}
/* Takes one client frame off the output; 0 when none is left. */
static int take_client_frame(au_ws *ws, unsigned *b0, fz_bytes *payload) {
    const uint8_t *p;
    size_t have = au_ws_output(ws, &p), hl = 2, i;
    uint64_t len;
    uint8_t mask[4];
    if (have == 0) return 0;
    FZ_CHECK(have >= 2, "client output ends inside a frame header");
    FZ_CHECK(p[1] & 0x80, "client frame not masked");
    len = p[1] & 0x7F;
    if (len == 126) {
        FZ_CHECK(have >= 4, "truncated client header");
        len = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
        FZ_CHECK(len >= 126, "client length not minimal");
    } else if (len == 127) {
        FZ_CHECK(have >= 10, "truncated client header");
        for (len = 0, i = 0; i < 8; i++) len = len << 8 | p[2 + i];
        hl = 10;
        FZ_CHECK(len > 0xFFFF && !(len >> 63), "client 64-bit length not minimal");
    }
    FZ_CHECK(have >= hl + 4 + len, "client frame truncated");
    memcpy(mask, p + hl, 4);
    hl += 4;
    payload->len = 0;
    for (i = 0; i < len; i++) fz_put1(payload, p[hl + i] ^ mask[i & 3]);
    *b0 = p[0];
    au_ws_output_done(ws, hl + (size_t)len);
    return 1;
}

static void run_session(const uint8_t *data, size_t n, uint64_t max, uint8_t chunk_sel, uint8_t flags,
                        const fevl *ref) {
    static const char *const protos[2] = { "mcp", "chat.v2" };
    static const char url_text[] = "ws://example.com:9000/chat?x=1";
    au_url u;
    au_ws ws;
    au_ws_desc d;
    uint64_t rs = 0x5EED0000ull + chunk_sel;
    const uint8_t *out;
    const char *k;
    char key[AU_WS_KEY_LEN + 1], accept[29], head[512];
    int variant = (flags >> 4) & 3, bad_accept = variant == 3, we_close = (flags & 0x80) != 0;
    const char *pick = NULL, *eol = variant == 1 ? "\n" : "\r\n";
    size_t olen, hn, pos = 0, total;
    fz_bytes in = { 0 }, payload = { 0 }, req = { 0 };
    fevl got = { 0 };
    fz_chunker ch;
    int opened = 0, ended = 0;
    unsigned i, b0;

    FZ_CHECK(au_url_parse(&u, url_text, sizeof url_text - 1) == AU_OK, "fixed URL rejected");
    memset(&d, 0, sizeof d);
    d.url = &u;
    if (flags & 1) { d.subprotocols = protos; d.num_subprotocols = 2; }
    if ((flags & 1) && ((flags >> 1) & 3) && ((flags >> 1) & 3) <= 2) pick = protos[((flags >> 1) & 3) - 1];
    d.max_message = max;
    d.random = det_random;
    d.random_user = &rs;
    FZ_CHECK(au_ws_init(&ws, &d) == AU_OK, "au_ws_init failed");
    FZ_CHECK(ws.state == AU_WS_CONNECTING, "state %d after init", ws.state);
    olen = au_ws_output(&ws, &out);
    fz_put(&req, out, olen);
    FZ_CHECK(olen > 24 && memcmp(out, "GET /chat?x=1 HTTP/1.1\r\n", 24) == 0, "request line: %s", (char *)req.p);
    FZ_CHECK(olen >= 4 && memcmp(out + olen - 4, "\r\n\r\n", 4) == 0, "request does not end its head");
    k = strstr((const char *)req.p, "\r\nSec-WebSocket-Key: ");
    FZ_CHECK(k != NULL, "no key in the request");
    memcpy(key, k + 21, AU_WS_KEY_LEN);
    key[AU_WS_KEY_LEN] = 0;
    FZ_CHECK(k[21 + AU_WS_KEY_LEN] == '\r', "key is not %d characters", AU_WS_KEY_LEN);
    au_ws_output_done(&ws, olen);
    au_ws_accept_for_key(key, AU_WS_KEY_LEN, accept);
    if (bad_accept) accept[3] = accept[3] == 'A' ? 'B' : 'A';

    hn = (size_t)snprintf(head, sizeof head, "HTTP/1.1 101 Switching Protocols%s%s: websocket%s%s: %s%s%s: %s%s%s%s%s%s%s",
                          eol, variant == 2 ? "upgrade" : "Upgrade", eol,
                          variant == 2 ? "CONNECTION" : "Connection", variant == 2 ? "keep-alive, Upgrade" : "Upgrade",
                          eol, variant == 2 ? "sec-websocket-accept" : "Sec-WebSocket-Accept", accept, eol,
                          pick ? "Sec-WebSocket-Protocol: " : "", pick ? pick : "", pick ? eol : "",
                          variant == 2 ? "Server: fuzz" : "", variant == 2 ? eol : "");
    fz_put(&in, head, hn);
    fz_put(&in, eol, strlen(eol));
    hn = in.len;
    fz_put(&in, data, n);
    total = in.len;

    fz_chunker_init(&ch, chunk_sel, 3);
    while (pos < total) {
        size_t c = fz_chunk(&ch, total - pos), cp = 0;
        uint8_t *buf = fz_dup(in.p + pos, c);
        int stalls = 0;
        while (cp < c) {
            au_ws_msg m;
            size_t rest = c - cp, used = au_ws_recv(&ws, buf + cp, rest, &m);
            FZ_CHECK(used <= rest, "recv used %zu of %zu", used, rest);
            FZ_CHECK(m.reason != NULL, "msg.reason is NULL (type %d)", m.type);
            if (m.type != AU_WS_NOTHING) FZ_CHECK(!ended, "event %d after the connection ended", m.type);
            switch (m.type) {
            case AU_WS_NOTHING:
                FZ_CHECK(used == rest, "NOTHING with %zu of %zu bytes used", used, rest);
                break;
            case AU_WS_OPENED:
                FZ_CHECK(!opened, "OPENED twice");
                opened = 1;
                FZ_CHECK(pos + cp + used == hn, "OPENED after %zu bytes, head is %zu", pos + cp + used, hn);
                FZ_CHECK(ws.state == AU_WS_OPEN, "state %d after OPENED", ws.state);
                FZ_CHECK(strcmp(ws.subprotocol, pick ? pick : "") == 0, "subprotocol '%s'", ws.subprotocol);
                FZ_CHECK(!bad_accept, "OPENED although Sec-WebSocket-Accept was wrong");
                FZ_CHECK(au_ws_close(&ws, 1005, NULL) == AU_EINVAL && ws.state == AU_WS_OPEN, "close with 1005 allowed");
                if (we_close) {                            /* our close first: CLOSING until the peer's */
                    FZ_CHECK(au_ws_close(&ws, 1000, "bye") == AU_OK, "au_ws_close failed");
                    FZ_CHECK(ws.state == AU_WS_CLOSING, "state %d after au_ws_close", ws.state);
                    FZ_CHECK(au_ws_close(&ws, 1000, NULL) == AU_EINVAL, "second au_ws_close allowed");
                }
                break;
            case AU_WS_MESSAGE:
                FZ_CHECK(opened, "MESSAGE before OPENED");
                FZ_CHECK(m.opcode == AU_OP_TEXT || m.opcode == AU_OP_BINARY, "MESSAGE opcode %u", m.opcode);
                FZ_CHECK(m.len == 0 || m.data != NULL, "MESSAGE without data");
                fevl_add(&got, E_MSG, m.opcode, 0, m.data, m.len);
                break;
            case AU_WS_PINGED:
            case AU_WS_PONGED:
                FZ_CHECK(opened, "control before OPENED");
                FZ_CHECK(m.len <= MAX_CONTROL, "control of %zu bytes", m.len);
                fevl_add(&got, m.type == AU_WS_PINGED ? E_PING : E_PONG, 0, 0, m.data, m.len);
                break;
            case AU_WS_PEER_CLOSED:
                FZ_CHECK(opened, "PEER_CLOSED before OPENED");
                FZ_CHECK(used == rest, "PEER_CLOSED left %zu bytes unconsumed", rest - used);
                FZ_CHECK(ws.state == AU_WS_CLOSED, "state %d after PEER_CLOSED", ws.state);
                fevl_add(&got, E_CLOSE, 0, m.code, m.reason, strlen(m.reason));
                ended = 1;
                break;
            case AU_WS_FAILURE:
                FZ_CHECK(opened || bad_accept, "handshake failed on a valid 101: %s", m.reason);
                FZ_CHECK(ws.state == AU_WS_FAILED, "state %d after FAILURE", ws.state);
                if (!opened) {                             /* the handshake itself failed */
                    FZ_CHECK(m.code == 101 && strstr(m.reason, "Accept") != NULL, "handshake failure %u '%s'", m.code,
                             m.reason);
                    FZ_CHECK(au_ws_output(&ws, &out) == 0, "output queued by a failed handshake");
                }
                fevl_add(&got, E_ERROR, 0, m.code, NULL, 0);
                ended = 1;
                break;
            default:
                FZ_CHECK(0, "unknown msg type %d", m.type);
            }
            cp += used;
            if (used == 0) FZ_CHECK(++stalls < 4, "au_ws_recv makes no progress");
            else stalls = 0;
        }
        free(buf);
        pos += c;
    }
    if (bad_accept) {
        au_ws_msg m;
        FZ_CHECK(!opened && ended && got.n == 1 && got.v[0].type == E_ERROR, "wrong accept not refused");
        FZ_CHECK(au_ws_recv(&ws, data, n, &m) == n && m.type == AU_WS_NOTHING, "failed connection reported %d", m.type);
        au_ws_free(&ws);
        fevl_free(&got);
        fz_free(&in);
        fz_free(&payload);
        fz_free(&req);
        return;
    }
    FZ_CHECK(opened, "never OPENED on a valid 101");
    {   /* the reference stream, as the session shows it */
        fevl want = { 0 };
        for (i = 0; i < ref->n; i++) {
            const fev *e = &ref->v[i];
            if (e->type == E_PARTIAL) continue;
            if (e->type == E_CLOSE) {                      /* reason made printable */
                fz_bytes r = { 0 };
                size_t j;
                for (j = 0; j < e->data.len && j < 199; j++)
                    fz_put1(&r, (e->data.p[j] >= 0x20 && e->data.p[j] < 0x7F) ? e->data.p[j] : '?');
                fevl_add(&want, E_CLOSE, 0, e->code, r.p, r.len);
                fz_free(&r);
            } else fevl_add(&want, e->type, e->op, e->code, e->data.p, e->data.len);
        }
        fevl_expect(&got, &want, "session");
        fevl_free(&want);
    }
    /* the client's replies: a masked pong per ping, then the close answer;
       after our own close (CLOSING) only that close frame */
    if (we_close) {
        FZ_CHECK(take_client_frame(&ws, &b0, &payload), "our close frame is missing");
        FZ_CHECK(b0 == 0x88 && payload.len == 5 && memcmp(payload.p, "\x03\xe8" "bye", 5) == 0, "our close frame %02x %s",
                 b0, fz_hex(payload.p, payload.len));
    }
    for (i = 0; i < ref->n && !we_close; i++) {
        const fev *e = &ref->v[i];
        if (e->type == E_PING) {
            FZ_CHECK(take_client_frame(&ws, &b0, &payload), "no pong queued for ping %u", i);
            FZ_CHECK(b0 == 0x8A, "expected a pong, got first byte %02x", b0);
            FZ_CHECK(payload.len == e->data.len && (payload.len == 0 || memcmp(payload.p, e->data.p, payload.len) == 0),
                     "pong payload %s differs from the ping's", fz_hex(payload.p, payload.len));
        } else if (e->type == E_CLOSE) {
            unsigned echo = (close_code_ok(e->code) && (e->code < 1012 || e->code > 1014)) ? e->code : 1000;
            FZ_CHECK(take_client_frame(&ws, &b0, &payload), "no close reply queued");
            FZ_CHECK(b0 == 0x88, "expected a close, got first byte %02x", b0);
            FZ_CHECK(payload.len == 2 && ((unsigned)payload.p[0] << 8 | payload.p[1]) == echo,
                     "close reply %s, expected code %u", fz_hex(payload.p, payload.len), echo);
        } else if (e->type == E_ERROR) {
            FZ_CHECK(take_client_frame(&ws, &b0, &payload), "no close frame after a protocol error");
            FZ_CHECK(b0 == 0x88, "expected a close, got first byte %02x", b0);
            FZ_CHECK(payload.len >= 2 && ((unsigned)payload.p[0] << 8 | payload.p[1]) == e->code,
                     "close after error %u: %s", e->code, fz_hex(payload.p, payload.len));
            FZ_CHECK(payload.len <= MAX_CONTROL && fz_utf8_valid(payload.p + 2, payload.len - 2),
                     "close reason after error is not valid");
        }
    }
    FZ_CHECK(!take_client_frame(&ws, &b0, &payload), "unexpected client frame %02x", b0);
    /* once ended, the connection takes and ignores anything */
    if (ended) {
        au_ws_msg m;
        static const uint8_t more[] = { 0x89, 0x00, 0x81, 0x01, 'x' };
        FZ_CHECK(au_ws_recv(&ws, more, sizeof more, &m) == sizeof more && m.type == AU_WS_NOTHING,
                 "ended connection reported %d", m.type);
        FZ_CHECK(au_ws_send(&ws, AU_OP_TEXT, "x", 1) == AU_EINVAL, "send allowed after the end");
        FZ_CHECK(au_ws_output(&ws, &out) == 0, "output after the end");
    } else if (we_close) {
        FZ_CHECK(ws.state == AU_WS_CLOSING, "state %d, expected CLOSING", ws.state);
        FZ_CHECK(au_ws_send(&ws, AU_OP_TEXT, "x", 1) == AU_EINVAL, "send allowed while CLOSING");
    } else {
        /* still open: a message sent now comes out as one masked frame */
        size_t sn = (flags & 0x40) ? 65536 + n : (n < 300 ? n : 300), j;
        uint8_t *big = (uint8_t *)malloc(sn ? sn : 1);
        for (j = 0; j < sn; j++) big[j] = n ? data[j % n] : (uint8_t)j;
        FZ_CHECK(ws.state == AU_WS_OPEN, "state %d", ws.state);
        FZ_CHECK(au_ws_send(&ws, AU_OP_PING, big, 126) == AU_ETOOBIG, "126-byte ping allowed");
        FZ_CHECK(au_ws_send(&ws, AU_OP_CLOSE, big, 2) == AU_EINVAL, "close through au_ws_send allowed");
        FZ_CHECK(au_ws_send(&ws, AU_OP_BINARY, big, sn) == AU_OK, "send failed");
        FZ_CHECK(take_client_frame(&ws, &b0, &payload) && b0 == 0x82, "sent frame missing");
        FZ_CHECK(payload.len == sn && (sn == 0 || memcmp(payload.p, big, sn) == 0), "sent frame payload differs");
        FZ_CHECK(au_ws_send(&ws, AU_OP_PONG, big, sn < 125 ? sn : 125) == AU_OK, "pong send failed");
        FZ_CHECK(take_client_frame(&ws, &b0, &payload) && b0 == 0x8A, "sent pong missing");
        free(big);
    }
    au_ws_free(&ws);
    fevl_free(&got);
    fz_free(&in);
    fz_free(&payload);
    fz_free(&req);
}

/* ------------------------------------------------------------------ entry */
static uint64_t max_from_sel(uint8_t s) {
    if (s == 0) return 0;
    if (s < 128) return s;
    if (s < 255) return (uint64_t)(s - 127) * 64;
    return 65537;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t chunk_sel, flags;
    uint64_t max, eff;
    const uint8_t *body;
    size_t n;
    fevl got = { 0 }, ref = { 0 }, want = { 0 }, got_b = { 0 }, ref_b = { 0 };
    fz_bytes wire = { 0 };
    fz_src src;

    if (size < 3) return 0;
    chunk_sel = data[0];
    max = max_from_sel(data[1]);
    flags = data[2];
    body = data + 3;
    n = size - 3;
    eff = effective_max(max);

    /* A: raw bytes, chunked decoder vs the reference */
    run_decoder(body, n, max, chunk_sel, &got);
    ref_decode(body, n, eff, &ref);
    fevl_expect(&got, &ref, "raw decode");

    /* B: a valid frame program, encoded here */
    src.p = body; src.n = n; src.i = 0;
    gen_program(&src, eff, flags & 0x40, &wire, &want);
    run_decoder(wire.p, wire.len, max, (uint8_t)(chunk_sel ^ 0x5A), &got_b);
    fevl_expect(&got_b, &want, "generated frames");
    ref_decode(wire.p, wire.len, eff, &ref_b);             /* keeps the reference honest */
    fevl_expect(&ref_b, &want, "reference on generated frames");

    /* C: the client connection */
    if (flags & 8) run_session(wire.p, wire.len, max, chunk_sel, flags, &want);
    else run_session(body, n, max, chunk_sel, flags, &ref);

    fevl_free(&got);
    fevl_free(&ref);
    fevl_free(&want);
    fevl_free(&got_b);
    fevl_free(&ref_b);
    fz_free(&wire);
    return 0;
}
