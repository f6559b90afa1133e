/* Fuzz harness: the incremental 101 response parser (au_handshake_feed).

   Input layout:  [chunking] [flags] [head limit] body...
     flags  bit0 offer the subprotocols "mcp" and "chat.v2"
            bit1 small max_head: 16 + 2 * head-limit byte (else the default)
            bit2 put a valid status line + Upgrade + Connection + Accept in
                 front of the body, so the fuzzer only has to end the head
            bit3 also prepend "Sec-WebSocket-Protocol: mcp"
   The key is the RFC 6455 example key, so "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" is
   the accept to find (it is in the dictionary).

   Checked on every call: consumed <= fed; MORE consumes everything; DONE
   only with status 101, a subprotocol that was offered (or none) and a head
   that ends with a line feed; FAIL leaves a non-empty, NUL-terminated,
   printable ASCII error; reason is always printable; DONE and FAIL are
   sticky. And the outcome (result, status, head length, subprotocol) must
   not depend on the chunking: it is compared with ref_handshake(), a
   whole-buffer parser written here from RFC 6455 4.1 / RFC 9112. */
#define ALWAYSUP_IMPLEMENTATION
#include "alwaysup.h"
#include "fuzz_common.h"

static const char RFC_KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char RFC_ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
static const char *const PROTOS[2] = { "mcp", "chat.v2" };

static int lc(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int ieq(const uint8_t *s, size_t n, const char *w) {
    size_t i;
    if (strlen(w) != n) return 0;
    for (i = 0; i < n; i++) if (lc(s[i]) != w[i]) return 0;
    return 1;
}
static int is_tchar(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}
static int is_printable_str(const char *s, size_t cap) {
    const char *end = (const char *)memchr(s, 0, cap);
    if (!end) return 0;
    for (; s < end; s++) if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7F) return 0;
    return 1;
}

typedef struct ref_out { int result, status; size_t head; char proto[64]; } ref_out;

/* Whole-buffer reference: what the client must conclude from these bytes. */
static void ref_handshake(const uint8_t *p, size_t n, int offer, size_t max_head, ref_out *o) {
    size_t s = 0;
    int in_status = 1, up = 0, conn = 0, acc = 0, proto = 0;
    memset(o, 0, sizeof *o);
    o->result = AU_HS_MORE;
    for (;;) {
        const uint8_t *nl = (const uint8_t *)memchr(p + s, '\n', n - s);
        size_t e, len;
        const uint8_t *l;
        if (!nl) { if (n > max_head) o->result = AU_HS_FAIL; return; }
        e = (size_t)(nl - p) + 1;                     /* just past the LF */
        if (e > max_head) { o->result = AU_HS_FAIL; return; }
        l = p + s;
        len = e - s - 1;
        if (len && l[len - 1] == '\r') len--;
        s = e;
        if (in_status) {                              /* HTTP/1.x SP 3DIGIT [SP reason] */
            if (len < 12 || memcmp(l, "HTTP/1.", 7) || !(l[7] >= '0' && l[7] <= '9') || l[8] != ' ' ||
                !(l[9] >= '0' && l[9] <= '9') || !(l[10] >= '0' && l[10] <= '9') || !(l[11] >= '0' && l[11] <= '9') ||
                (len > 12 && l[12] != ' ')) { o->result = AU_HS_FAIL; return; }
            o->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
            if (o->status != 101) { o->result = AU_HS_FAIL; return; }
            in_status = 0;
            continue;
        }
        if (len == 0) {                               /* end of the head */
            o->result = (up && conn && acc) ? AU_HS_DONE : AU_HS_FAIL;
            o->head = e;
            return;
        }
        {
            const uint8_t *colon = (const uint8_t *)memchr(l, ':', len), *v;
            size_t nl_, vn, i;
            if (l[0] == ' ' || l[0] == '\t' || !colon || colon == l) { o->result = AU_HS_FAIL; return; }
            nl_ = (size_t)(colon - l);
            for (i = 0; i < nl_; i++) if (!is_tchar(l[i])) { o->result = AU_HS_FAIL; return; }
            v = colon + 1;
            vn = len - nl_ - 1;
            while (vn && (v[0] == ' ' || v[0] == '\t')) { v++; vn--; }
            while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
            if (ieq(l, nl_, "upgrade")) {
                if (!ieq(v, vn, "websocket")) { o->result = AU_HS_FAIL; return; }
                up = 1;
            } else if (ieq(l, nl_, "connection")) {
                size_t a = 0;
                while (a <= vn) {                     /* comma list, any element "upgrade" */
                    size_t b = a, x, y;
                    while (b < vn && v[b] != ',') b++;
                    x = a; y = b;
                    while (x < y && (v[x] == ' ' || v[x] == '\t')) x++;
                    while (y > x && (v[y - 1] == ' ' || v[y - 1] == '\t')) y--;
                    if (ieq(v + x, y - x, "upgrade")) conn = 1;
                    a = b + 1;
                }
            } else if (ieq(l, nl_, "sec-websocket-accept")) {
                if (acc || vn != 28 || memcmp(v, RFC_ACCEPT, 28)) { o->result = AU_HS_FAIL; return; }
                acc = 1;
            } else if (ieq(l, nl_, "sec-websocket-extensions")) {
                if (vn) { o->result = AU_HS_FAIL; return; }   /* we offered none */
            } else if (ieq(l, nl_, "sec-websocket-protocol")) {
                int k, ok = 0;
                if (proto) { o->result = AU_HS_FAIL; return; }
                for (k = 0; offer && k < 2; k++)
                    if (strlen(PROTOS[k]) == vn && memcmp(PROTOS[k], v, vn) == 0) ok = 1;
                if (!ok) { o->result = AU_HS_FAIL; return; }
                memcpy(o->proto, v, vn);
                o->proto[vn] = 0;
                proto = 1;
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    au_handshake_desc d;
    au_handshake hs;
    au_url u;
    fz_chunker ch;
    fz_bytes in = { 0 };
    ref_out ref;
    uint8_t flags;
    size_t max_head, pos = 0, head = 0;
    int result = AU_HS_MORE, offer;
    char acc[29];

    if (size < 3) return 0;
    fz_chunker_init(&ch, data[0], 7);
    flags = data[1];
    offer = flags & 1;
    max_head = (flags & 2) ? 16 + 2 * (size_t)data[2] : 0;
    if (flags & 4) {
        static const char pre[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
        fz_put(&in, pre, sizeof pre - 1);
        if (flags & 8) fz_put(&in, "Sec-WebSocket-Protocol: mcp\r\n", 29);
    }
    fz_put(&in, data + 3, size - 3);

    au_ws_accept_for_key(RFC_KEY, sizeof RFC_KEY - 1, acc);
    FZ_CHECK(strcmp(acc, RFC_ACCEPT) == 0, "accept for the RFC 6455 key is %s", acc);
    memset(&u, 0, sizeof u);
    strcpy(u.host, "h");
    u.port = 80;
    u.path = "/";
    u.path_len = 1;
    memset(&d, 0, sizeof d);
    d.url = &u;
    d.key = RFC_KEY;
    if (offer) { d.subprotocols = PROTOS; d.num_subprotocols = 2; }
    d.max_head = max_head;
    au_handshake_init(&hs, &d);

    while (pos < in.len) {
        size_t c = fz_chunk(&ch, in.len - pos), used = (size_t)-1;
        uint8_t *buf = fz_dup(in.p + pos, c);
        int r = au_handshake_feed(&hs, buf, c, &used);
        FZ_CHECK(used <= c, "consumed %zu of %zu", used, c);
        FZ_CHECK(r == AU_HS_MORE || r == AU_HS_DONE || r == AU_HS_FAIL, "result %d", r);
        FZ_CHECK(is_printable_str(hs.reason, sizeof hs.reason), "reason not printable/terminated");
        if (r == AU_HS_MORE) FZ_CHECK(used == c, "MORE but %zu of %zu consumed", used, c);
        if (r == AU_HS_DONE) {
            FZ_CHECK(hs.status == 101, "DONE with status %d", hs.status);
            FZ_CHECK(used > 0 && buf[used - 1] == '\n', "head does not end with a line feed");
            FZ_CHECK(memchr(hs.subprotocol, 0, sizeof hs.subprotocol) != NULL, "subprotocol not terminated");
            FZ_CHECK(hs.subprotocol[0] == 0 || (offer && (!strcmp(hs.subprotocol, PROTOS[0]) ||
                                                            !strcmp(hs.subprotocol, PROTOS[1]))),
                     "subprotocol '%s' was not offered", hs.subprotocol);
            head = pos + used;
        }
        if (r == AU_HS_FAIL) {
            FZ_CHECK(hs.error[0] != 0, "FAIL without an error text");
            FZ_CHECK(is_printable_str(hs.error, sizeof hs.error), "error text not printable/terminated: %s",
                     fz_hex(hs.error, sizeof hs.error));
            if (hs.status && hs.status != 101) {
                char want[16];
                snprintf(want, sizeof want, "HTTP %d", hs.status);
                FZ_CHECK(strstr(hs.error, want) != NULL, "error '%s' does not name the status", hs.error);
            }
        }
        if (r != AU_HS_MORE) {                        /* sticky, takes nothing more */
            size_t u2 = (size_t)-1;
            int r2 = au_handshake_feed(&hs, buf + used, c - used, &u2);
            FZ_CHECK(r2 == r && u2 == 0, "after %d: result %d consumed %zu", r, r2, u2);
            r2 = au_handshake_feed(&hs, "HTTP/1.1 101 OK\r\n\r\n", 19, &u2);
            FZ_CHECK(r2 == r && u2 == 0, "after %d: result %d consumed %zu", r, r2, u2);
        }
        free(buf);
        pos += c;
        result = r;
        if (r != AU_HS_MORE) break;
    }
    au_handshake_free(&hs);

    ref_handshake(in.p, in.len, offer, max_head ? max_head : (size_t)16 << 10, &ref);
    FZ_CHECK(result == ref.result, "result %d, the reference says %d (status %d, head %zu)", result, ref.result,
             ref.status, ref.head);
    FZ_CHECK(hs.status == ref.status, "status %d, the reference says %d", hs.status, ref.status);
    if (result == AU_HS_DONE) {
        FZ_CHECK(head == ref.head, "head of %zu bytes, the reference says %zu", head, ref.head);
        FZ_CHECK(strcmp(hs.subprotocol, ref.proto) == 0, "subprotocol '%s', the reference says '%s'", hs.subprotocol,
                 ref.proto);
    }
    fz_free(&in);
    return 0;
}
