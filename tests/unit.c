/* Unit tests for the sans-I/O pieces of alwaysup.h. Streaming parsers are fed
   whole, one byte at a time and in random splits with fixed seeds. */
#define ALWAYSUP_IMPLEMENTATION
#include "../alwaysup.h"
#include "test.h"
#include <stdlib.h>

/* ------------------------------------------------------------------ helpers */
static void to_hex(const uint8_t *p, size_t n, char *out) {
    static const char hx[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) { out[2 * i] = hx[p[i] >> 4]; out[2 * i + 1] = hx[p[i] & 15]; }
    out[2 * n] = 0;
}
static size_t from_hex(const char *h, uint8_t *out) {
    size_t n = 0;
    while (h[0] && h[1]) {
        unsigned v;
        if (h[0] == ' ') { h++; continue; }
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

/* --------------------------------------------------------------------- URL */
static void test_url(void) {
    au_url u;
    const char *s;
    t_ctx = "url";
    s = "ws://localhost";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK);
    CHECK_STR(u.host, "localhost"); CHECK_INT(u.port, 80); CHECK_MEM(u.path, u.path_len, "/");
    CHECK_INT(u.tls, 0); CHECK_INT(u.ipv6, 0); CHECK_INT(u.port_given, 0);
    s = "WS://127.0.0.1:8079";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK);
    CHECK_STR(u.host, "127.0.0.1"); CHECK_INT(u.port, 8079); CHECK_INT(u.port_given, 1);
    s = "ws://[::1]:9000/mcp/v1?token=abc&x=%20y";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK);
    CHECK_STR(u.host, "::1"); CHECK_INT(u.ipv6, 1); CHECK_INT(u.port, 9000);
    CHECK_MEM(u.path, u.path_len, "/mcp/v1?token=abc&x=%20y");
    s = "ws://[2001:db8::a:1]/";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK); CHECK_STR(u.host, "2001:db8::a:1");
    s = "ws://[::ffff:10.0.0.1]";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK);
    s = "ws://[1:2:3:4:5:6:7:8]:1";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK); CHECK_INT(u.port, 1);
    s = "ws://my_daemon.internal-net:65535?x";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK); CHECK_INT(u.port, 65535); CHECK_MEM(u.path, u.path_len, "?x");
    /* length-bounded: bytes after len are not read */
    s = "ws://a.b/c GARBAGE";
    CHECK_INT(au_url_parse(&u, s, 10), AU_OK); CHECK_MEM(u.path, u.path_len, "/c");

    s = "wss://secure.example:8443/x";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_EURL_TLS);
    CHECK_INT(u.tls, 1); CHECK_STR(u.host, "secure.example"); CHECK_INT(u.port, 8443);
    s = "wss://secure.example";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_EURL_TLS); CHECK_INT(u.port, 443);
    CHECK(strstr(au_strerror(AU_EURL_TLS), "TLS") != NULL);
    CHECK(strstr(au_strerror(AU_EURL_TLS), "make TLS=openssl") != NULL);   /* says how to get it */
    /* Node ws's Unix socket form */
    s = "ws+unix:///run/daemon.sock";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK);
    CHECK_INT(u.unix_socket, 1); CHECK_STR(u.unix_path, "/run/daemon.sock"); CHECK_STR(u.host, "localhost");
    CHECK_MEM(u.path, u.path_len, "/");
    s = "ws+unix:/run/daemon.sock:/mcp?x=1";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK);
    CHECK_STR(u.unix_path, "/run/daemon.sock"); CHECK_MEM(u.path, u.path_len, "/mcp?x=1");
    s = "WS+UNIX:///a.sock:/";
    CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_OK); CHECK_STR(u.unix_path, "/a.sock");
    {
        static const char *const bad_unix[] = { "ws+unix:", "ws+unix:relative.sock", "ws+unix://host/x.sock", "ws+unix:/a.sock:",
                                                "ws+unix:/a.sock:mcp", "ws+unix:/a b.sock" };
        size_t k;
        for (k = 0; k < sizeof bad_unix / sizeof bad_unix[0]; k++)
            CHECK_INT(au_url_parse(&u, bad_unix[k], strlen(bad_unix[k])), AU_EURL_UNIX);
        s = "ws+unix:/a.sock:/p#f";
        CHECK_INT(au_url_parse(&u, s, strlen(s)), AU_EURL_PATH);
        {   /* 107 bytes fit sockaddr_un, 108 do not */
            char longp[140];
            memset(longp, 'a', sizeof longp);
            memcpy(longp, "ws+unix:/", 9);
            CHECK_INT(au_url_parse(&u, longp, 9 + 106), AU_OK);
            CHECK_INT(au_url_parse(&u, longp, 9 + 107), AU_EURL_UNIX);
        }
    }
    {
        static const struct { const char *url; int err; } bad[] = {
            { "", AU_EURL_SCHEME }, { "http://h", AU_EURL_SCHEME }, { "ws:/h", AU_EURL_SCHEME },
            { "ws//h", AU_EURL_SCHEME }, { "h:80", AU_EURL_SCHEME },
            { "ws://", AU_EURL_HOST }, { "ws://:80", AU_EURL_HOST }, { "ws:///path", AU_EURL_HOST },
            { "ws://user@h", AU_EURL_USERINFO }, { "ws://u:p@h:80/", AU_EURL_USERINFO },
            { "ws://h/p#frag", AU_EURL_FRAGMENT }, { "ws://h#", AU_EURL_FRAGMENT },
            { "ws://h:", AU_EURL_PORT }, { "ws://h:0", AU_EURL_PORT }, { "ws://h:65536", AU_EURL_PORT },
            { "ws://h:99999999999999999999", AU_EURL_PORT }, { "ws://h:8x", AU_EURL_PORT }, { "ws://h:-1", AU_EURL_PORT },
            { "ws://h: 80", AU_EURL_PORT }, { "ws://[::1", AU_EURL_HOST }, { "ws://[zz::1]", AU_EURL_HOST },
            { "ws://[1:2:3:4:5:6:7:8:9]", AU_EURL_HOST }, { "ws://[1::2::3]", AU_EURL_HOST },
            { "ws://[::1]x", AU_EURL_HOST }, { "ws://[]", AU_EURL_HOST }, { "ws://[1.2.3.4]", AU_EURL_HOST },
            { "ws://h o", AU_EURL_HOST }, { "ws://h%20/", AU_EURL_HOST }, { "ws://.h", AU_EURL_HOST },
            { "ws://h/a b", AU_EURL_PATH }, { "ws://h/a\r\nX: y", AU_EURL_PATH }, { "ws://h/\x7f", AU_EURL_PATH },
            { "ws://h/\xc3\xa9", AU_EURL_PATH }, { "ws://h/a\"b", AU_EURL_PATH }, { "ws://h?a{b}", AU_EURL_PATH },
        };
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            int r = au_url_parse(&u, bad[i].url, strlen(bad[i].url));
            if (r != bad[i].err) fprintf(stderr, "url case %s\n", bad[i].url);
            CHECK_INT(r, bad[i].err);
        }
        {   /* host of 254 characters is over the DNS limit */
            char big[300];
            memcpy(big, "ws://", 5); memset(big + 5, 'a', 254); big[259] = 0;
            CHECK_INT(au_url_parse(&u, big, strlen(big)), AU_EURL_HOST);
            big[258] = 0;
            CHECK_INT(au_url_parse(&u, big, strlen(big)), AU_OK);
        }
        CHECK_INT(au_url_parse(&u, NULL, 0), AU_EINVAL);
    }
}

/* ------------------------------------------------------------ SHA-1, base64 */
static void test_sha1_base64(void) {
    static const struct { const char *in; const char *hex; } v[] = {
        { "abc", "a9993e364706816aba3e25717850c26c9cd0d89d" },
        { "", "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
        { "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
          "a49b2446a02c645bf419f995b67091253a04a259" },
    };
    static const struct { const char *in, *out; } b[] = {
        { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    };
    uint8_t d[20], buf[64];
    char hex[41], out[64];
    size_t i;
    int mode;
    t_ctx = "sha1";
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        au_sha1_digest(v[i].in, strlen(v[i].in), d);
        to_hex(d, 20, hex);
        CHECK_STR(hex, v[i].hex);
    }
    for (mode = 0; mode < T_NMODES; mode++) {   /* one million 'a', fed in pieces */
        static char a[1000000];
        au_sha1 s;
        size_t pos = 0;
        memset(a, 'a', sizeof a);
        t_mode_begin(mode == 1 ? 2 : mode);       /* bytewise over 1e6 is slow and adds nothing */
        au_sha1_init(&s);
        while (pos < sizeof a) { size_t n = t_chunk(mode == 1 ? 2 : mode, sizeof a - pos); au_sha1_update(&s, a + pos, n); pos += n; }
        au_sha1_final(&s, d);
        to_hex(d, 20, hex);
        CHECK_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    }
    t_ctx = "base64";
    for (i = 0; i < sizeof b / sizeof b[0]; i++) {
        size_t n = au_base64_encode(b[i].in, strlen(b[i].in), out);
        CHECK_STR(out, b[i].out);
        CHECK_INT(n, strlen(b[i].out));
        CHECK_INT(au_base64_decode(b[i].out, strlen(b[i].out), buf), strlen(b[i].in));
        CHECK(memcmp(buf, b[i].in, strlen(b[i].in)) == 0);
    }
    {
        static const char *const badb64[] = { "Zg=", "Zg", "Z===", "Zm9v!A==", "Zh==", "Zm9=", "Zg==Zg==", "=Zg=", "Zm 9v" };
        for (i = 0; i < sizeof badb64 / sizeof badb64[0]; i++)
            CHECK_INT(au_base64_decode(badb64[i], strlen(badb64[i]), buf), AU_EINVAL);
    }
    t_ctx = "accept";
    au_ws_accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);    /* RFC 6455 section 1.3 */
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* ------------------------------------------------------------------- UTF-8 */
static void test_utf8(void) {
    /* from the Autobahn section 6 vectors (shared/conformance) */
    static const struct { const char *hex; int ok; } v[] = {
        { "48656c6c6f2dc2b540c39fc3b6c3a4c3bcc3a0c3a12d5554462d382121", 1 }, { "cebae1bdb9cf83cebcceb5", 1 },
        { "ce", 0 }, { "ceba", 1 }, { "cebae1", 0 }, { "cebae1bd", 0 }, { "00", 1 }, { "c280", 1 }, { "e0a080", 1 },
        { "f0908080", 1 }, { "f888808080", 0 }, { "fc8480808080", 0 }, { "7f", 1 }, { "dfbf", 1 }, { "efbfbf", 1 },
        { "f48fbfbf", 1 }, { "f7bfbfbf", 0 }, { "ed9fbf", 1 }, { "ee8080", 1 }, { "efbfbd", 1 }, { "f4908080", 0 },
        { "80", 0 }, { "bf", 0 }, { "80bf80bf", 0 }, { "c020", 0 }, { "e020", 0 }, { "f020", 0 }, { "c0", 0 },
        { "e080", 0 }, { "f08080", 0 }, { "df", 0 }, { "efbf", 0 }, { "fe", 0 }, { "ff", 0 }, { "fefeffff", 0 },
        { "c0af", 0 }, { "e080af", 0 }, { "f08080af", 0 }, { "c1bf", 0 }, { "e09fbf", 0 }, { "f08fbfbf", 0 },
        { "c080", 0 }, { "e08080", 0 }, { "eda080", 0 }, { "edbfbf", 0 }, { "eda080edb080", 0 }, { "efbfbe", 1 },
        { "f09fbfbe", 1 }, { "f3bfbfbf", 1 }, { "f48fbfbe", 1 }, { "efbfb9", 1 },
        { "cebae1bdb9cf83cebcceb5eda080656469746564", 0 }, { "20202020202020202020202020c3", 0 },
        { "4142434445464748494a4b4c4d4e4f50c3a9", 1 },
    };
    size_t i, k;
    uint8_t buf[64];
    t_ctx = "utf8";
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = from_hex(v[i].hex, buf);
        int whole = au_utf8_valid(buf, n), split = 1;
        au_utf8 u;
        u.state = 0;
        for (k = 0; k < n; k++) if (au_utf8_feed(&u, buf + k, 1) != 1) split = 0;
        if (u.state != AU_UTF8_ACCEPT) split = 0;
        if (whole != v[i].ok) fprintf(stderr, "utf8 vector %s\n", v[i].hex);
        CHECK_INT(whole, v[i].ok);
        CHECK_INT(split, v[i].ok);
    }
    {   /* the reported count stops at the first bad byte */
        au_utf8 u;
        u.state = 0;
        {
            size_t n = from_hex("41424344eda080", buf);
            CHECK_INT(au_utf8_feed(&u, buf, n), 5);
            CHECK_INT(u.state, AU_UTF8_REJECT);
            CHECK_INT(au_utf8_feed(&u, "a", 1), 0);
        }
    }
}

/* --------------------------------------------------------- handshake request */
static const char *find_header(const char *req, const char *name) {
    static char val[256];
    const char *p = strstr(req, name);
    const char *e;
    if (!p) return NULL;
    p += strlen(name);
    e = strstr(p, "\r\n");
    snprintf(val, sizeof val, "%.*s", (int)(e - p), p);
    return val;
}
static void test_handshake_request(void) {
    au_url u;
    au_handshake_desc d;
    char req[1024], key[AU_WS_KEY_LEN + 1], key2[AU_WS_KEY_LEN + 1];
    const char *protos[2] = { "mcp", "json.v2" };
    au_header h[2];
    int64_t n;
    uint8_t raw[20];
    t_ctx = "request";
    CHECK_INT(au_handshake_make_key(key), AU_OK);
    CHECK_INT(au_handshake_make_key(key2), AU_OK);
    CHECK_INT(strlen(key), 24);
    CHECK(strcmp(key, key2) != 0);
    CHECK_INT(au_base64_decode(key, 24, raw), 16);
    au_url_parse(&u, "ws://example.com:9000/chat?x=1", 30);
    memset(&d, 0, sizeof d);
    d.url = &u; d.key = key; d.subprotocols = protos; d.num_subprotocols = 2;
    h[0].name = "Authorization"; h[0].value = "Bearer t0k3n";
    h[1].name = "X-Trace"; h[1].value = "a\tb";
    d.headers = h; d.num_headers = 2;
    n = au_handshake_request(&d, req, sizeof req);
    CHECK(n > 0 && (size_t)n == strlen(req));
    CHECK(strncmp(req, "GET /chat?x=1 HTTP/1.1\r\n", 24) == 0);
    CHECK_STR(find_header(req, "\r\nHost: "), "example.com:9000");
    CHECK_STR(find_header(req, "\r\nUpgrade: "), "websocket");
    CHECK_STR(find_header(req, "\r\nConnection: "), "Upgrade");
    CHECK_STR(find_header(req, "\r\nSec-WebSocket-Key: "), key);
    CHECK_STR(find_header(req, "\r\nSec-WebSocket-Version: "), "13");
    CHECK_STR(find_header(req, "\r\nSec-WebSocket-Protocol: "), "mcp, json.v2");
    CHECK_STR(find_header(req, "\r\nAuthorization: "), "Bearer t0k3n");
    CHECK(strstr(req, "Sec-WebSocket-Extensions") == NULL);
    CHECK(n > 4 && memcmp(req + n - 4, "\r\n\r\n", 4) == 0);
    {   /* too small a buffer: the length is still reported, nothing overflows */
        char small[16];
        memset(small, 'Z', sizeof small);
        CHECK_INT(au_handshake_request(&d, small, 8), n);
        CHECK(small[8] == 'Z');
    }
    /* default port is not repeated, IPv6 keeps its brackets, no subprotocol */
    au_url_parse(&u, "ws://[::1]", 10);
    d.num_subprotocols = 0; d.num_headers = 0;
    au_handshake_request(&d, req, sizeof req);
    CHECK(strncmp(req, "GET / HTTP/1.1\r\n", 16) == 0);
    CHECK_STR(find_header(req, "\r\nHost: "), "[::1]");
    CHECK(strstr(req, "Sec-WebSocket-Protocol") == NULL);
    au_url_parse(&u, "ws://h?q=1", 10);
    au_handshake_request(&d, req, sizeof req);
    CHECK(strncmp(req, "GET /?q=1 HTTP/1.1\r\n", 20) == 0);
    /* a Host header from the user replaces ours */
    h[0].name = "host"; h[0].value = "proxy.internal";
    d.headers = h; d.num_headers = 1;
    au_handshake_request(&d, req, sizeof req);
    CHECK(strstr(req, "Host: h") == NULL);
    CHECK_STR(find_header(req, "\r\nhost: "), "proxy.internal");
    /* header injection and reserved headers are refused */
    {
        static const struct { const char *name, *value; } bad[] = {
            { "X-A", "v\r\nEvil: 1" }, { "X-A", "v\nx" }, { "X-A", "v\rx" }, { "X-A", "\x01" }, { "X-A", "\x7f" },
            { "X A", "v" }, { "X-A:", "v" }, { "", "v" }, { "X\r\nB", "v" }, { "Upgrade", "h2c" },
            { "connection", "close" }, { "Sec-WebSocket-Key", "x" }, { "SEC-WEBSOCKET-EXTENSIONS", "permessage-deflate" },
            { "Sec-WebSocket-Protocol", "mcp" }, { "X-A", NULL }, { "X(A)", "v" },
        };
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            CHECK(au_header_check(bad[i].name, bad[i].value) != NULL);
            h[0].name = bad[i].name; h[0].value = bad[i].value;
            CHECK_INT(au_handshake_request(&d, req, sizeof req), AU_EHEADER);
        }
        CHECK(au_header_check("X-Api-Key", "abc def \xc3\xa9") == NULL);
    }
    {
        const char *bp[1] = { "bad proto" };
        h[0].name = "X"; h[0].value = "y";
        d.subprotocols = bp; d.num_subprotocols = 1;
        CHECK_INT(au_handshake_request(&d, req, sizeof req), AU_EHEADER);
        CHECK(au_subprotocol_check("") != NULL);
        CHECK(au_subprotocol_check("mcp") == NULL);
    }
    d.key = "short";
    CHECK_INT(au_handshake_request(&d, req, sizeof req), AU_EINVAL);
}

/* -------------------------------------------------------- handshake response */
#define T_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define T_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
typedef struct hs_result { int r; size_t consumed; int status; char error[192]; char proto[64]; } hs_result;

static hs_result run_hs(int mode, const char *resp, size_t len, const char *const *offered, int n_offered, size_t max_head) {
    au_handshake hs;
    au_handshake_desc d;
    au_url u;
    hs_result res;
    size_t pos = 0;
    memset(&res, 0, sizeof res);
    memset(&d, 0, sizeof d);
    au_url_parse(&u, "ws://h", 6);
    d.url = &u; d.key = T_KEY; d.subprotocols = offered; d.num_subprotocols = n_offered; d.max_head = max_head;
    au_handshake_init(&hs, &d);
    res.r = AU_HS_MORE;
    while (pos < len && res.r == AU_HS_MORE) {
        size_t n = t_chunk(mode, len - pos), used;
        res.r = au_handshake_feed(&hs, resp + pos, n, &used);
        if (used > n) { res.r = 99; break; }
        pos += used;
        if (res.r == AU_HS_MORE && used != n) { res.r = 98; break; }
    }
    res.consumed = pos;
    res.status = hs.status;
    snprintf(res.error, sizeof res.error, "%s", hs.error);
    snprintf(res.proto, sizeof res.proto, "%s", hs.subprotocol);
    au_handshake_free(&hs);
    return res;
}
static void test_handshake_response(void) {
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: " T_ACCEPT "\r\n\r\n";
    const char *offered[2] = { "mcp", "v2" };
    char buf[70000];
    int mode;
    for (mode = 0; mode < T_NMODES; mode++) {
        hs_result r;
        size_t n;
        t_mode_begin(mode);
        /* head plus frame bytes: the frame bytes are left unconsumed */
        n = (size_t)snprintf(buf, sizeof buf, "%s%s", ok, "\x81\x02hi");
        r = run_hs(mode, buf, n, NULL, 0, 0);
        CHECK_INT(r.r, AU_HS_DONE);
        CHECK_INT(r.consumed, strlen(ok));
        CHECK_STR(r.proto, "");
        CHECK_INT(r.status, 101);
        /* case-insensitive names and values, lists, LF-only lines, other headers */
        n = (size_t)snprintf(buf, sizeof buf, "HTTP/1.1 101 OK\nserver: x\nUPGRADE: WebSocket\nconnection: keep-alive,  UPGRADE \n"
                             "sec-websocket-accept:   " T_ACCEPT "  \nSec-WebSocket-Protocol: v2\nSec-WebSocket-Extensions:\n\n");
        r = run_hs(mode, buf, n, offered, 2, 0);
        CHECK_INT(r.r, AU_HS_DONE); CHECK_STR(r.proto, "v2"); CHECK_INT(r.consumed, n);
        /* failures, each with a clear reason */
        {
            static const struct { const char *resp; const char *why; int status; } bad[] = {
                { "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", "HTTP 502 Bad Gateway", 502 },
                { "HTTP/1.1 503 Service Unavailable\r\n\r\n", "HTTP 503 Service Unavailable", 503 },
                { "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\r\n", "HTTP 401 Unauthorized", 401 },
                { "HTTP/1.1 404\r\n\r\n", "HTTP 404 instead", 404 },
                { "HTTP/1.0 200 OK\r\n\r\n", "HTTP 200 OK", 200 },
                { "SSH-2.0-OpenSSH_9.0\r\n", "not an HTTP response", 0 },
                { "HTTP/1.1 1011 x\r\n", "not an HTTP response", 0 },
                { "HTTP/1.1 101 S\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " T_ACCEPT "\r\n\r\n", "without Upgrade", 101 },
                { "HTTP/1.1 101 S\r\nUpgrade: h2c\r\n\r\n", "Upgrade header is not websocket", 101 },
                { "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " T_ACCEPT "\r\n\r\n", "without Connection", 101 },
                { "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: " T_ACCEPT "\r\n\r\n", "without Connection", 101 },
                { "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "without Sec-WebSocket-Accept", 101 },
                { "HTTP/1.1 101 S\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", "does not match", 101 },
                { "HTTP/1.1 101 S\r\nSec-WebSocket-Accept: " T_ACCEPT "\r\nSec-WebSocket-Accept: " T_ACCEPT "\r\n\r\n", "twice", 101 },
                { "HTTP/1.1 101 S\r\nSec-WebSocket-Protocol: chat\r\n\r\n", "subprotocol we did not offer", 101 },
                { "HTTP/1.1 101 S\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", "extension", 101 },
                { "HTTP/1.1 101 S\r\nUpgrade websocket\r\n\r\n", "malformed header line", 101 },
                { "HTTP/1.1 101 S\r\n folded: x\r\n\r\n", "folded", 101 },
                { "HTTP/1.1 101 S\r\nBad Name: x\r\n\r\n", "malformed header name", 101 },
            };
            size_t i;
            for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                r = run_hs(mode, bad[i].resp, strlen(bad[i].resp), offered, 1, 0);
                CHECK_INT(r.r, AU_HS_FAIL);
                if (!strstr(r.error, bad[i].why)) fprintf(stderr, "error was: %s (want %s)\n", r.error, bad[i].why);
                CHECK(strstr(r.error, bad[i].why) != NULL);
                CHECK_INT(r.status, bad[i].status);
            }
        }
        /* a head that never ends: over the limit, default 16 KiB and a custom one */
        {
            size_t o = (size_t)snprintf(buf, sizeof buf, "HTTP/1.1 101 S\r\n");
            while (o + 20 < sizeof buf) o += (size_t)snprintf(buf + o, sizeof buf - o, "X-Filler: aaaaaaaa\r\n");
            r = run_hs(mode, buf, o, NULL, 0, 0);
            CHECK_INT(r.r, AU_HS_FAIL);
            CHECK(strstr(r.error, "over the limit") != NULL);
            CHECK(strstr(r.error, "16384") != NULL);
            r = run_hs(mode, buf, o, NULL, 0, 100);
            CHECK_INT(r.r, AU_HS_FAIL);
            /* one endless header line */
            o = (size_t)snprintf(buf, sizeof buf, "HTTP/1.1 101 S\r\nX-Long: ");
            memset(buf + o, 'a', sizeof buf - o);
            r = run_hs(mode, buf, sizeof buf, NULL, 0, 0);
            CHECK_INT(r.r, AU_HS_FAIL);
            CHECK(strstr(r.error, "over the limit") != NULL);
            /* a head exactly at the limit is fine */
            r = run_hs(mode, ok, strlen(ok), NULL, 0, strlen(ok));
            CHECK_INT(r.r, AU_HS_DONE);
            r = run_hs(mode, ok, strlen(ok), NULL, 0, strlen(ok) - 1);
            CHECK_INT(r.r, AU_HS_FAIL);
        }
        /* an incomplete head is not an answer yet */
        r = run_hs(mode, ok, strlen(ok) - 2, NULL, 0, 0);
        CHECK_INT(r.r, AU_HS_MORE);
        CHECK_INT(r.consumed, strlen(ok) - 2);
    }
    {   /* a hostile reason phrase reaches the error text printable only */
        hs_result r = run_hs(0, "HTTP/1.1 500 \x1b[31mred\x07\r\n\r\n", 24, NULL, 0, 0);
        CHECK_INT(r.r, AU_HS_FAIL);
        CHECK(strchr(r.error, 0x1b) == NULL && strchr(r.error, 0x07) == NULL);
    }
}

/* --------------------------------------------------------- frames: encoding */
static void test_encoder(void) {
    static const struct { uint64_t len; size_t hlen; const char *hex; } v[] = {
        { 0, 6, "8180" }, { 125, 6, "81fd" }, { 126, 8, "81fe007e" }, { 65535, 8, "81feffff" },
        { 65536, 14, "81ff0000000000010000" }, { 0x7FFFFFFFFFFFFFFFull, 14, "81ff7fffffffffffffff" },
    };
    uint8_t out[AU_WS_MAX_HEADER], mask[4] = { 1, 2, 3, 4 };
    char hex[40];
    size_t i;
    t_ctx = "encoder";
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = au_ws_frame_header(out, AU_OP_TEXT, 1, v[i].len, mask);
        CHECK_INT(n, v[i].hlen);
        to_hex(out, n - 4, hex);
        CHECK_STR(hex, v[i].hex);
        CHECK(memcmp(out + n - 4, mask, 4) == 0);
    }
    CHECK_INT(au_ws_frame_header(out, AU_OP_CONT, 0, 3, mask), 6);
    CHECK_INT(out[0], 0x00);
    au_ws_frame_header(out, AU_OP_CLOSE, 1, 2, mask); CHECK_INT(out[0], 0x88);
    au_ws_frame_header(out, AU_OP_PING, 1, 2, mask); CHECK_INT(out[0], 0x89);
    au_ws_frame_header(out, AU_OP_PONG, 1, 2, mask); CHECK_INT(out[0], 0x8A);
    au_ws_frame_header(out, AU_OP_BINARY, 1, 2, mask); CHECK_INT(out[0], 0x82);
    {   /* masking: RFC 6455 5.7 example "Hello" with mask 37 fa 21 3d */
        uint8_t m2[4] = { 0x37, 0xfa, 0x21, 0x3d }, f[32];
        size_t n = au_ws_frame_encode(f, AU_OP_TEXT, 1, "Hello", 5, m2);
        to_hex(f, n, hex);
        CHECK_STR(hex, "818537fa213d7f9f4d5158");
    }
    {   /* mask at every offset and length matches a byte-wise reference */
        uint8_t a[100], b[100];
        size_t len, off;
        for (len = 0; len < 40; len++)
            for (off = 0; off < 5; off++) {
                size_t k;
                int same = 1;
                for (k = 0; k < len; k++) a[k] = b[k] = (uint8_t)(k * 7 + len);
                au_ws_mask(a, len, mask, off);
                for (k = 0; k < len; k++) b[k] ^= mask[(off + k) % 4];
                for (k = 0; k < len; k++) if (a[k] != b[k]) same = 0;
                CHECK(same);
            }
    }
}

/* --------------------------------------------------------- frames: decoding */
/* a server frame: unmasked, minimal length, first byte given as is */
static size_t sframe(uint8_t *out, unsigned b0, const void *payload, size_t len) {
    size_t n;
    out[0] = (uint8_t)b0;
    if (len < 126) { out[1] = (uint8_t)len; n = 2; }
    else if (len <= 0xFFFF) { out[1] = 126; out[2] = (uint8_t)(len >> 8); out[3] = (uint8_t)len; n = 4; }
    else { unsigned i; out[1] = 127; for (i = 0; i < 8; i++) out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i)); n = 10; }
    if (len) memcpy(out + n, payload, len);
    return n + len;
}
/* runs a decoder over the input and returns a transcript of its events */
static char t_transcript[4096];
static const char *decode_all(int mode, const uint8_t *in, size_t len, uint64_t max_message) {
    au_ws_decoder d;
    static uint8_t msg[1 << 21];
    size_t msg_len = 0, pos = 0, o = 0;
    int expect_first = 1, stop = 0;
    au_ws_decoder_init(&d, max_message);
    t_transcript[0] = 0;
    while (pos < len && !stop) {
        size_t n = t_chunk(mode, len - pos), cpos = 0;
        while (!stop) {
            au_ws_event ev;
            size_t used = au_ws_decode(&d, in + pos + cpos, n - cpos, &ev);
            cpos += used;
            if (ev.type == AU_WS_EV_NONE) { if (cpos != n) o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|LOST"); break; }
            switch (ev.type) {
            case AU_WS_EV_DATA:
                if (ev.first != expect_first) o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|BADFIRST");
                expect_first = ev.fin;
                if (msg_len + ev.len <= sizeof msg) memcpy(msg + msg_len, ev.data, ev.len);
                msg_len += ev.len;
                if (ev.fin) {
                    const char *kind = ev.opcode == AU_OP_TEXT ? "text" : "bin";
                    if (msg_len <= 40) o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|%s:%.*s", kind, (int)msg_len, (const char *)msg);
                    else o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|%s[%lu]", kind, (unsigned long)msg_len);
                    msg_len = 0;
                }
                break;
            case AU_WS_EV_PING: o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|ping:%.*s", (int)ev.len, (const char *)ev.data); break;
            case AU_WS_EV_PONG: o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|pong:%.*s", (int)ev.len, (const char *)ev.data); break;
            case AU_WS_EV_CLOSE: o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|close:%u:%.*s", ev.code, (int)ev.reason_len, ev.reason ? ev.reason : ""); break;
            case AU_WS_EV_ERROR: o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|error:%u", ev.code); stop = 1; break;
            }
            if (cpos == n && ev.type != AU_WS_EV_DATA) break;
            if (cpos == n && ev.type == AU_WS_EV_DATA) continue;   /* may still owe a zero-length event */
        }
        pos += n;
    }
    return t_transcript[0] ? t_transcript + 1 : t_transcript;
}

typedef struct dcase { const char *name; const char *hex; const char *expect; } dcase;

static void test_decoder(void) {
    /* hex frames and the transcript each must give (cf. Autobahn sections 1-7) */
    static const dcase cases[] = {
        { "empty text", "8100", "text:" },
        { "text", "810548656c6c6f", "text:Hello" },
        { "binary", "8203000102", "bin:\x00\x01\x02" },
        { "two messages", "810161810162", "text:a|text:b" },
        { "fragmented", "0103666f6f800362 6172", "text:foobar" },
        { "empty fragments", "01000000 8000", "text:" },
        { "ping mid-message", "0103666f6f 8901 70 800362 6172", "ping:p|text:foobar" },
        { "pings and pongs", "8900 8a03 616263 890568656c6c6f", "ping:|pong:abc|ping:hello" },
        { "close empty", "8800", "close:1005:" },
        { "close 1000 reason", "880503e8627965", "close:1000:bye" },
        { "close 1012 (IANA)", "880203f4", "close:1012:" },
        { "close 4999", "8802 1387", "close:4999:" },
        { "after close nothing counts", "8802 03e8 810161 8900", "close:1000:" },
        { "close then garbage", "8800 ffffffffff", "close:1005:" },
        { "rsv1", "c10161", "error:1002" }, { "rsv2", "a10161", "error:1002" }, { "rsv3", "910161", "error:1002" },
        { "rsv on close", "f800", "error:1002" },
        { "opcode 3", "8300", "error:1002" }, { "opcode 7", "8700", "error:1002" },
        { "opcode 11", "8b00", "error:1002" }, { "opcode 15", "8f00", "error:1002" },
        { "masked server frame", "818100000000 61", "error:1002" },
        { "ping over 125", "897e007e", "error:1002" },
        { "fragmented ping", "090161 800162", "error:1002" },
        { "fragmented close", "0800", "error:1002" },
        { "continuation with nothing to continue", "800161", "error:1002" },
        { "open continuation with nothing to continue", "000161", "error:1002" },
        { "text inside fragmented", "010161 810162", "error:1002" },
        { "valid then rsv", "810161 a10162 8900", "text:a|error:1002" },
        { "64-bit top bit", "817f8000000000000000", "error:1002" },
        { "16-bit non-minimal", "817e0005", "error:1002" },
        { "64-bit non-minimal", "817f000000000000ffff", "error:1002" },
        { "close 1 byte", "880161", "error:1002" },
        { "close code 999", "880203e7", "error:1002" }, { "close code 0", "88020000", "error:1002" },
        { "close code 1004", "880203ec", "error:1002" }, { "close code 1005", "880203ed", "error:1002" },
        { "close code 1006", "880203ee", "error:1002" }, { "close code 1015", "880203f7", "error:1002" },
        { "close code 1016", "880203f8", "error:1002" }, { "close code 2999", "88020bb7", "error:1002" },
        { "close code 5000", "88021388", "error:1002" }, { "close code 65535", "8802ffff", "error:1002" },
        { "close reason bad utf8", "880703e8 eda080 6162", "error:1007" },
        { "text bad utf8", "8103eda080", "error:1007" },
        { "text truncated utf8", "8101ce", "error:1007" },
        { "utf8 split across fragments", "0101ce 8001ba", "text:\xce\xba" },
        { "utf8 bad across fragments", "0101ce 800141", "error:1007" },
        { "truncated at end of fragments", "0101ce 8000", "error:1007" },
        { "binary is not utf8-checked", "8202ffff", "bin:\xff\xff" },
        { "ping payload not utf8-checked", "8902ffff", "ping:\xff\xff" },
        { "kosme then invalid (6.4.1)", "010bcebae1bdb9cf83cebcceb5 0004f4908080 8006656469746564", "error:1007" },
    };
    static uint8_t in[1 << 20];
    size_t i;
    int mode;
    for (mode = 0; mode < T_NMODES; mode++) {
        t_mode_begin(mode);
        for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            size_t n = from_hex(cases[i].hex, in);
            const char *got = decode_all(mode, in, n, 0);
            if (strcmp(got, cases[i].expect) != 0) fprintf(stderr, "decoder case '%s' [%s]: got %s\n", cases[i].name, t_ctx, got);
            CHECK_STR(got, cases[i].expect);
        }
        {   /* the three length forms at their edges */
            static uint8_t payload[70000];
            static const size_t sizes[] = { 0, 125, 126, 127, 128, 65535, 65536, 69999 };
            size_t k;
            char want[64];
            memset(payload, '*', sizeof payload);
            for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                size_t n = sframe(in, 0x81, payload, sizes[k]);
                if (sizes[k] <= 40) snprintf(want, sizeof want, "text:%.*s", (int)sizes[k], (const char *)payload);
                else snprintf(want, sizeof want, "text[%lu]", (unsigned long)sizes[k]);
                CHECK_STR(decode_all(mode, in, n, 0), want);
            }
        }
        {   /* size limit: 1009, decided at the header */
            size_t n = sframe(in, 0x82, "0123456789", 10);
            CHECK_STR(decode_all(mode, in, n, 10), "bin:0123456789");
            CHECK_STR(decode_all(mode, in, n, 9), "error:1009");
            n = from_hex("0205 3031323334 8005 3536373839", in);
            CHECK_STR(decode_all(mode, in, n, 9), "error:1009");
            CHECK_STR(decode_all(mode, in, n, 10), "bin:0123456789");
            n = from_hex("827f0000000100000000", in);      /* 4 GiB announced, nothing sent */
            CHECK_STR(decode_all(mode, in, n, 0), "error:1009");
        }
    }
    {   /* fail fast: bad UTF-8 inside a frame that has not fully arrived (6.4.3) */
        au_ws_decoder d;
        au_ws_event ev;
        size_t n = from_hex("0115 cebae1bdb9cf83cebcceb5 f4908080", in), used = 0;
        t_ctx = "failfast";
        au_ws_decoder_init(&d, 0);
        for (;;) {
            size_t u = au_ws_decode(&d, in + used, n - used, &ev);
            used += u;
            if (ev.type != AU_WS_EV_DATA) break;
        }
        CHECK_INT(ev.type, AU_WS_EV_ERROR);
        CHECK_INT(ev.code, 1007);
        /* and a sticky error afterwards */
        CHECK_INT(au_ws_decode(&d, "\x81\x00", 2, &ev), 0);
        CHECK_INT(ev.type, AU_WS_EV_ERROR);
    }
    {   /* an empty final continuation ends a message (Autobahn 6.2.3) */
        size_t n = 0, k;
        static const char s[] = "Hello-\xc2\xb5@";
        n += sframe(in + n, 0x01, s, 1);
        for (k = 1; k < strlen(s); k++) n += sframe(in + n, 0x00, s + k, 1);
        n += sframe(in + n, 0x80, "", 0);
        t_ctx = "onebyteframes";
        CHECK_STR(decode_all(0, in, n, 0), "text:Hello-\xc2\xb5@");
        CHECK_STR(decode_all(1, in, n, 0), "text:Hello-\xc2\xb5@");
    }
}

/* -------------------------------------------------- client connection, sans I/O */
static int t_fake_random(void *user, void *buf, size_t len) {
    unsigned *c = (unsigned *)user;
    uint8_t *p = (uint8_t *)buf;
    size_t i;
    for (i = 0; i < len; i++) p[i] = (uint8_t)((*c)++ * 37u + 11u);
    return 0;
}
/* parses one client frame from the output: checks the mask, returns payload */
static size_t take_client_frame(au_ws *ws, unsigned *b0, uint8_t *payload) {
    const uint8_t *p;
    size_t have = au_ws_output(ws, &p), hl = 2, len, i;
    uint8_t mask[4];
    if (have < 2 || !(p[1] & 0x80)) return (size_t)-1;
    len = p[1] & 0x7F;
    if (len == 126) { len = (size_t)p[2] << 8 | p[3]; hl = 4; }
    else if (len == 127) { len = 0; for (i = 0; i < 8; i++) len = len << 8 | p[2 + i]; hl = 10; }
    memcpy(mask, p + hl, 4);
    hl += 4;
    if (have < hl + len) return (size_t)-1;
    for (i = 0; i < len; i++) payload[i] = p[hl + i] ^ mask[i % 4];
    *b0 = p[0];
    au_ws_output_done(ws, hl + len);
    return len;
}
static void test_ws_session(void) {
    au_url u;
    au_ws ws;
    au_ws_desc d;
    const char *protos[1] = { "mcp" };
    unsigned counter = 0, b0;
    const uint8_t *out;
    char resp[512], key[32], accept[29];
    static uint8_t in[200000], payload[200000];
    int mode;
    for (mode = 0; mode < T_NMODES; mode++) {
        size_t olen, n, pos, rl;
        const char *k;
        int opened = 0, messages = 0, pinged = 0, closed = 0;
        au_ws_msg m;
        t_mode_begin(mode);
        au_url_parse(&u, "ws://example.com:9000/chat", 26);
        memset(&d, 0, sizeof d);
        d.url = &u; d.subprotocols = protos; d.num_subprotocols = 1;
        d.random = t_fake_random; d.random_user = &counter;
        CHECK_INT(au_ws_init(&ws, &d), AU_OK);
        CHECK_INT(ws.state, AU_WS_CONNECTING);
        CHECK_INT(au_ws_send(&ws, AU_OP_TEXT, "x", 1), AU_EINVAL);     /* not open yet */
        olen = au_ws_output(&ws, &out);
        CHECK(olen > 0 && memcmp(out, "GET /chat HTTP/1.1\r\n", 20) == 0);
        k = strstr((const char *)out, "Sec-WebSocket-Key: ");
        CHECK(k != NULL);
        if (!k) return;
        memcpy(key, k + 19, 24); key[24] = 0;
        au_ws_output_done(&ws, olen);
        CHECK_INT(au_ws_output(&ws, &out), 0);
        au_ws_accept_for_key(key, 24, accept);
        rl = (size_t)snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: mcp\r\n\r\n", accept);
        memcpy(in, resp, rl);
        n = rl;
        n += sframe(in + n, 0x81, "hi", 2);                       /* arrives with the head */
        n += sframe(in + n, 0x01, "frag", 4);
        n += sframe(in + n, 0x89, "p1", 2);                       /* ping mid-message */
        memset(payload, 'z', 70000);
        n += sframe(in + n, 0x80, payload, 70000);
        n += sframe(in + n, 0x8A, "po", 2);
        pos = 0;
        while (pos < n) {
            size_t c = t_chunk(mode, n - pos), cp = 0;
            while (cp < c) {
                cp += au_ws_recv(&ws, in + pos + cp, c - cp, &m);
                if (m.type == AU_WS_OPENED) opened++;
                if (m.type == AU_WS_MESSAGE) {
                    messages++;
                    if (messages == 1) CHECK_MEM(m.data, m.len, "hi");
                    if (messages == 2) { CHECK_INT(m.len, 70004); CHECK(memcmp(m.data, "fragzzz", 7) == 0); CHECK_INT(pinged, 1); }
                }
                if (m.type == AU_WS_PINGED) { pinged++; CHECK_MEM(m.data, m.len, "p1"); }
                if (m.type == AU_WS_FAILURE) { CHECK(0); cp = c; }
            }
            pos += c;
        }
        CHECK_INT(opened, 1); CHECK_INT(messages, 2); CHECK_INT(pinged, 1);
        CHECK_STR(ws.subprotocol, "mcp");
        CHECK_INT(ws.state, AU_WS_OPEN);
        /* the pong went out with the ping's payload */
        n = take_client_frame(&ws, &b0, payload);
        CHECK_INT(b0, 0x8A); CHECK_MEM(payload, n, "p1");
        /* sending */
        CHECK_INT(au_ws_send(&ws, AU_OP_TEXT, "{\"a\":1}", 7), AU_OK);
        n = take_client_frame(&ws, &b0, payload);
        CHECK_INT(b0, 0x81); CHECK_MEM(payload, n, "{\"a\":1}");
        memset(in, 'q', 70000);
        CHECK_INT(au_ws_send(&ws, AU_OP_BINARY, in, 70000), AU_OK);
        n = take_client_frame(&ws, &b0, payload);
        CHECK_INT(b0, 0x82); CHECK_INT(n, 70000); CHECK(memcmp(payload, in, 70000) == 0);
        CHECK_INT(au_ws_send(&ws, AU_OP_PING, in, 126), AU_ETOOBIG);
        {   /* an owned payload: masked in place, sent between what came before and after it */
            au__buf own, own2;
            size_t k, sizes[3];
            static uint8_t want[3][80000];
            memset(&own, 0, sizeof own);
            memset(&own2, 0, sizeof own2);
            for (k = 0; k < 80000; k++) want[1][k] = (uint8_t)('a' + k % 26);
            memcpy(want[2], "after", 5);
            memcpy(want[0], "before", 6);
            au__buf_append(&own, want[1], 80000);
            au__buf_append(&own2, "copied", 6);
            CHECK_INT(au_ws_send(&ws, AU_OP_TEXT, "before", 6), AU_OK);
            CHECK_INT(au__ws_send_owned(&ws, AU_OP_TEXT, &own), AU_OK);
            CHECK(own.p == NULL && own.len == 0);                 /* taken over */
            CHECK_INT(au_ws_send(&ws, AU_OP_TEXT, "after", 5), AU_OK);
            CHECK_INT(au__ws_send_owned(&ws, AU_OP_TEXT, &own2), AU_OK);   /* one already on its way: copied */
            CHECK(own2.p != NULL);
            au__buf_free(&own2);
            sizes[0] = 6; sizes[1] = 80000; sizes[2] = 5;
            {   /* drain in odd-sized pieces through a copy, then parse the frames */
                static uint8_t wire[90000];
                size_t wl = 0;
                const uint8_t *o;
                size_t avail;
                while ((avail = au_ws_output(&ws, &o)) > 0) {
                    size_t r = (size_t)(1 + t_rand() % 3000), take = AU__MIN(avail, r);
                    memcpy(wire + wl, o, take);
                    wl += take;
                    au_ws_output_done(&ws, take);
                }
                {
                    size_t pos = 0;
                    for (k = 0; k < 4 && pos < wl; k++) {
                        size_t len = wire[pos + 1] & 0x7F, hl = 2, i;
                        uint8_t mk[4];
                        if (len == 126) { len = (size_t)wire[pos + 2] << 8 | wire[pos + 3]; hl = 4; }
                        else if (len == 127) { len = 0; for (i = 0; i < 8; i++) len = len << 8 | wire[pos + 2 + i]; hl = 10; }
                        memcpy(mk, wire + pos + hl, 4);
                        for (i = 0; i < len; i++) payload[i] = wire[pos + hl + 4 + i] ^ mk[i % 4];
                        if (k < 3) { CHECK_INT(len, sizes[k]); CHECK(memcmp(payload, want[k], sizes[k]) == 0); }
                        else CHECK_MEM(payload, len, "copied");
                        pos += hl + 4 + len;
                    }
                    CHECK_INT(k, 4);
                    CHECK_INT(pos, wl);
                }
            }
        }
        CHECK_INT(au_ws_send(&ws, AU_OP_CLOSE, in, 2), AU_EINVAL);
        /* the peer closes: we answer 1000 once and ignore the rest */
        n = sframe(in, 0x88, "\x03\xe9" "bye", 5);
        n += sframe(in + n, 0x81, "late", 4);
        pos = 0;
        while (pos < n) {
            size_t c = t_chunk(mode, n - pos), cp = 0;
            while (cp < c) {
                cp += au_ws_recv(&ws, in + pos + cp, c - cp, &m);
                if (m.type == AU_WS_PEER_CLOSED) { closed++; CHECK_INT(m.code, 1001); CHECK_STR(m.reason, "bye"); }
                if (m.type == AU_WS_MESSAGE) CHECK(0);
            }
            pos += c;
        }
        CHECK_INT(closed, 1);
        CHECK_INT(ws.state, AU_WS_CLOSED);
        n = take_client_frame(&ws, &b0, payload);       /* the code is echoed */
        CHECK_INT(b0, 0x88); CHECK_INT(n, 2); CHECK(payload[0] == 0x03 && payload[1] == 0xe9);
        CHECK_INT(au_ws_output(&ws, &out), 0);
        CHECK_INT(au_ws_send(&ws, AU_OP_TEXT, "x", 1), AU_EINVAL);
        au_ws_free(&ws);
    }
    {   /* protocol error: the close frame carries the code, later input ignored */
        au_ws_msg m;
        size_t olen, n;
        t_ctx = "session-error";
        au_url_parse(&u, "ws://h", 6);
        memset(&d, 0, sizeof d);
        d.url = &u;
        CHECK_INT(au_ws_init(&ws, &d), AU_OK);           /* OS randomness */
        olen = au_ws_output(&ws, &out);
        memcpy(key, strstr((const char *)out, "Sec-WebSocket-Key: ") + 19, 24); key[24] = 0;
        au_ws_output_done(&ws, olen);
        au_ws_accept_for_key(key, 24, accept);
        n = (size_t)snprintf(resp, sizeof resp, "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                             "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
        CHECK_INT(au_ws_recv(&ws, resp, n, &m), n);
        CHECK_INT(m.type, AU_WS_OPENED);
        CHECK_STR(ws.subprotocol, "");
        n = from_hex("c10161 810162", in);
        CHECK_INT(au_ws_recv(&ws, in, n, &m), n);
        CHECK_INT(m.type, AU_WS_FAILURE); CHECK_INT(m.code, 1002);
        CHECK(strstr(m.reason, "reserved bits") != NULL);
        n = take_client_frame(&ws, &b0, payload);
        CHECK_INT(b0, 0x88); CHECK(n >= 2 && payload[0] == 0x03 && payload[1] == 0xea);
        CHECK(au_utf8_valid(payload + 2, n - 2));
        CHECK_INT(ws.state, AU_WS_FAILED);
        au_ws_free(&ws);
        /* handshake failure reports the HTTP status */
        CHECK_INT(au_ws_init(&ws, &d), AU_OK);
        olen = au_ws_output(&ws, &out);
        au_ws_output_done(&ws, olen);
        au_ws_recv(&ws, "HTTP/1.1 503 Service Unavailable\r\n\r\n", 36, &m);
        CHECK_INT(m.type, AU_WS_FAILURE); CHECK_INT(m.code, 503);
        CHECK(strstr(m.reason, "503 Service Unavailable") != NULL);
        CHECK_INT(au_ws_output(&ws, &out), 0);            /* no close frame before the upgrade */
        au_ws_free(&ws);
        /* our close: CLOSING until the peer answers */
        CHECK_INT(au_ws_init(&ws, &d), AU_OK);
        olen = au_ws_output(&ws, &out);
        memcpy(key, strstr((const char *)out, "Sec-WebSocket-Key: ") + 19, 24); key[24] = 0;
        au_ws_output_done(&ws, olen);
        au_ws_accept_for_key(key, 24, accept);
        n = (size_t)snprintf(resp, sizeof resp, "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                             "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
        au_ws_recv(&ws, resp, n, &m);
        CHECK_INT(au_ws_close(&ws, 1000, "shutting down"), AU_OK);
        CHECK_INT(ws.state, AU_WS_CLOSING);
        CHECK_INT(au_ws_close(&ws, 1000, NULL), AU_EINVAL);
        n = take_client_frame(&ws, &b0, payload);
        CHECK_INT(b0, 0x88); CHECK_MEM(payload + 2, n - 2, "shutting down");
        au_ws_recv(&ws, "\x88\x02\x03\xe8", 4, &m);
        CHECK_INT(m.type, AU_WS_PEER_CLOSED);
        CHECK_INT(ws.state, AU_WS_CLOSED);
        CHECK_INT(au_ws_output(&ws, &out), 0);            /* no second close */
        au_ws_free(&ws);
    }
}

/* ------------------------------------------------------------ line framer */
static const char *lines_all(int mode, const char *in, size_t len, size_t max) {
    au_lines l;
    size_t pos = 0, o = 0;
    const char *line;
    size_t ll;
    int kind;
    au_lines_init(&l, max);
    t_transcript[0] = 0;
    while (pos < len) {
        size_t n = t_chunk(mode, len - pos), cp = 0;
        while (cp < n) {
            cp += au_lines_feed(&l, in + pos + cp, n - cp, &kind, &line, &ll);
            if (kind == AU_LINE_OK) o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|%.*s", (int)AU__MIN(ll, 60), line);
            if (kind == AU_LINE_TOO_LONG) o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|TOOLONG[%lu]%.3s", (unsigned long)ll, line);
        }
        pos += n;
    }
    if (au_lines_finish(&l, &line, &ll) == AU_LINE_OK) o += (size_t)snprintf(t_transcript + o, sizeof t_transcript - o, "|EOF:%.*s", (int)ll, line);
    au_lines_free(&l);
    return t_transcript[0] ? t_transcript + 1 : t_transcript;
}
#define LINES(mode, lit, max) lines_all(mode, lit, sizeof(lit) - 1, max)
static void test_lines(void) {
    static char big[300000];
    int mode;
    for (mode = 0; mode < T_NMODES; mode++) {
        size_t n;
        t_mode_begin(mode);
        CHECK_STR(LINES(mode, "a\nbb\r\n\n\r\n\nccc", 0), "a|bb|EOF:ccc");
        CHECK_STR(LINES(mode, "one\ntwo\n", 0), "one|two");
        CHECK_STR(LINES(mode, "x\r", 0), "EOF:x");
        CHECK_STR(LINES(mode, "\n\n\n", 0), "");
        CHECK_STR(LINES(mode, "a\rb\n", 0), "a\rb");        /* only a trailing CR is stripped */
        CHECK_STR(LINES(mode, "{\"a\":\"\x00\"}\n", 0), "{\"a\":\"");   /* NUL kept: length is explicit */
        /* cap 5: an over-cap line is reported once, the next line survives */
        CHECK_STR(LINES(mode, "12345\n123456\nok\n", 5), "12345|TOOLONG[5]123|ok");
        CHECK_STR(LINES(mode, "1234567890abc\nnext\n1234567", 5), "TOOLONG[5]123|next|TOOLONG[5]123");
        CHECK_STR(LINES(mode, "ab\n1234567890", 5), "ab|TOOLONG[5]123");
        CHECK_STR(LINES(mode, "abcde\r\nabcdef\r\nabcde\r", 5), "abcde|TOOLONG[5]abc|EOF:abcde");  /* CR is not content */
        CHECK_STR(LINES(mode, "abcde\rx\nok\n", 5), "TOOLONG[5]abc|ok");
        /* long lines across many chunks */
        memset(big, 'x', sizeof big);
        big[100000] = '\n';
        big[sizeof big - 1] = '\n';
        n = sizeof big;
        {
            char want[160];
            snprintf(want, sizeof want, "%.60s|%.60s", big, big);
            CHECK_STR(lines_all(mode, big, n, 0), want);
            snprintf(want, sizeof want, "%.60s|TOOLONG[150000]xxx", big);
            CHECK_STR(lines_all(mode, big, n, 150000), want);
            CHECK_STR(lines_all(mode, big, n, 99999), "TOOLONG[99999]xxx|TOOLONG[99999]xxx");
        }
    }
    {   /* the line length is exact */
        au_lines l;
        const char *line;
        size_t ll, used;
        int kind;
        t_ctx = "lines-len";
        au_lines_init(&l, 0);
        used = au_lines_feed(&l, "abc", 3, &kind, &line, &ll);
        CHECK_INT(used, 3); CHECK_INT(kind, AU_LINE_NONE);
        used = au_lines_feed(&l, "def\r\nghi\n", 9, &kind, &line, &ll);
        CHECK_INT(used, 5); CHECK_INT(kind, AU_LINE_OK); CHECK_MEM(line, ll, "abcdef");
        used = au_lines_feed(&l, "ghi\n", 4, &kind, &line, &ll);
        CHECK_INT(used, 4); CHECK_INT(kind, AU_LINE_OK); CHECK_MEM(line, ll, "ghi");
        CHECK_INT(au_lines_finish(&l, &line, &ll), AU_LINE_NONE);
        au_lines_free(&l);
    }
}

/* ------------------------------------------------------------- JSON-RPC */
static int scan(const char *s, au_jsonrpc *r) { return au_jsonrpc_scan(s, strlen(s), r); }
static void test_jsonrpc(void) {
    au_jsonrpc r;
    t_ctx = "jsonrpc";
    CHECK_INT(scan("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", &r), AU_RPC_REQUEST);
    CHECK_MEM(r.id.p, r.id.len, "1"); CHECK_MEM(r.method.p, r.method.len, "\"tools/list\"");
    CHECK(au_json_string_eq(r.method, "tools/list")); CHECK(!au_json_string_eq(r.method, "tools/lis"));
    CHECK(r.params.p == NULL);
    /* keys in any order, nested id/method ignored, whitespace everywhere */
    CHECK_INT(scan(" { \"params\" : {\"id\":99,\"method\":\"x\",\"a\":[{\"id\":5}]} , \"method\":\"tools/call\" ,"
                   "\"id\" : \"abc\\\"d\" , \"jsonrpc\":\"2.0\" } ", &r), AU_RPC_REQUEST);
    CHECK_MEM(r.id.p, r.id.len, "\"abc\\\"d\"");
    CHECK(au_json_string_eq(r.method, "tools/call"));
    CHECK_MEM(r.params.p, r.params.len, "{\"id\":99,\"method\":\"x\",\"a\":[{\"id\":5}]}");
    CHECK_INT(r.end, strlen(" { \"params\" : {\"id\":99,\"method\":\"x\",\"a\":[{\"id\":5}]} , \"method\":\"tools/call\" ,"
                            "\"id\" : \"abc\\\"d\" , \"jsonrpc\":\"2.0\" } "));
    /* escaped keys and methods */
    CHECK_INT(scan("{\"\\u0069d\":-1.5e3,\"m\\u0065thod\":\"tools\\/call\"}", &r), AU_RPC_REQUEST);
    CHECK_MEM(r.id.p, r.id.len, "-1.5e3"); CHECK(au_json_string_eq(r.method, "tools/call"));
    CHECK_INT(scan("{\"method\":\"caf\\u00e9 \\ud83d\\ude00\"}", &r), AU_RPC_NOTIFICATION);
    CHECK(au_json_string_eq(r.method, "caf\xc3\xa9 \xf0\x9f\x98\x80"));
    /* fully escaped keys count too: a hidden second "method" must win as it does in JSON.parse */
    CHECK_INT(scan("{\"id\":1,\"method\":\"tools/list\",\"\\u006d\\u0065\\u0074\\u0068\\u006f\\u0064\":\"tools/call\"}", &r), AU_RPC_REQUEST);
    CHECK(au_json_string_eq(r.method, "tools/call"));
    CHECK_INT(scan("{\"\\u006a\\u0073\\u006f\\u006e\\u0072\\u0070\\u0063\":\"2.0\",\"id\":2,\"\\u0065\\u0072\\u0072\\u006f\\u0072\":{}}", &r), AU_RPC_RESPONSE);
    CHECK_INT(scan("{\"method\":\"notifications/initialized\"}", &r), AU_RPC_NOTIFICATION);
    CHECK(r.id.p == NULL);
    CHECK_INT(scan("{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}", &r), AU_RPC_RESPONSE);
    CHECK_MEM(r.id.p, r.id.len, "null"); CHECK_MEM(r.result.p, r.result.len, "{}");
    CHECK_INT(scan("{\"error\":{\"code\":-32600,\"message\":\"x\"},\"id\":7}", &r), AU_RPC_RESPONSE);
    CHECK_MEM(r.error.p, r.error.len, "{\"code\":-32600,\"message\":\"x\"}");
    CHECK_INT(scan("[{\"id\":1,\"method\":\"a\"},{\"method\":\"b\"}]", &r), AU_RPC_BATCH);
    CHECK_INT(scan(" \n\t[ ]", &r), AU_RPC_INVALID);     /* empty batch after whitespace */
    CHECK_INT(scan(" [1]", &r), AU_RPC_BATCH);
    /* duplicate keys: the later one wins, as in JSON.parse */
    CHECK_INT(scan("{\"id\":1,\"method\":\"a\",\"id\":2}", &r), AU_RPC_REQUEST);
    CHECK_MEM(r.id.p, r.id.len, "2");
    /* valid JSON that is not JSON-RPC */
    {
        static const char *const notrpc[] = { "[]", "[ ]", "{}", "42", "\"s\"", "null", "{\"id\":1}",
            "{\"id\":{},\"method\":\"a\"}", "{\"id\":[1],\"result\":1}", "{\"method\":1}", "{\"id\":true,\"method\":\"a\"}",
            "{\"result\":1}" };
        size_t i;
        for (i = 0; i < sizeof notrpc / sizeof notrpc[0]; i++) {
            int k = scan(notrpc[i], &r);
            if (k != AU_RPC_INVALID) fprintf(stderr, "notrpc %s -> %d\n", notrpc[i], k);
            CHECK_INT(k, AU_RPC_INVALID);
            CHECK(r.problem != NULL);
        }
    }
    /* not JSON at all */
    {
        static const char *const bad[] = { "", "   ", "{", "}", "{\"id\":1,}", "{\"id\":01}", "{\"id\":1.}", "{\"id\":.5}",
            "{\"id\":1e}", "{\"id\":-}", "{\"id\":+1}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":True}", "{'a':1}", "{a:1}",
            "{\"a\":\"x}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"\t\"}", "{\"a\":\"\n\"}", "{\"a\" 1}",
            "{\"a\":1}}", "{\"a\":1} x", "{\"a\":1}{\"b\":2}", "[1,]", "[1 2]", "{\"a\":[}", "{\"a\":\"\xff\"}",
            "{\"a\":\"\xc3\"}", "{\"a\":\"\xed\xa0\x80\"}", "this is not json", "\xef\xbb\xbf{}", "{\"a\":NaN}",
            "{\"a\":Infinity}", "{\"a\"::1}", "{,}", "[,1]" };
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            int k = scan(bad[i], &r);
            if (k != AU_EINVAL) fprintf(stderr, "bad json accepted: %s\n", bad[i]);
            CHECK_INT(k, AU_EINVAL);
            CHECK(r.problem != NULL);
            CHECK(r.method.p == NULL && r.params.p == NULL && r.result.p == NULL);
            if (strcmp(bad[i], "{\"id\":1,}") == 0) CHECK_MEM(r.id.p, r.id.len, "1");
            else CHECK(r.id.p == NULL);
        }
    }
    {   /* broken JSON: id and method survive when they were whole before the damage */
        CHECK_INT(scan("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"a\":\"\xff\"}}", &r), AU_EINVAL);
        CHECK_MEM(r.id.p, r.id.len, "7"); CHECK(au_json_string_eq(r.method, "tools/call"));
        CHECK_INT(scan("{\"id\":\"x\",\"params\":{\"big\":\"trunc", &r), AU_EINVAL);
        CHECK_MEM(r.id.p, r.id.len, "\"x\"");
        CHECK_INT(scan("{\"id\":01,\"method\":\"a\"}", &r), AU_EINVAL);    /* "0" must not pass for 01 */
        CHECK(r.id.p == NULL);
        CHECK_INT(scan("{\"params\":{\"id\":5},\"x\":", &r), AU_EINVAL);   /* nested ids never count */
        CHECK(r.id.p == NULL);
        CHECK_INT(scan("{\"id\":5", &r), AU_EINVAL);                        /* not known to be whole */
        CHECK(r.id.p == NULL);
    }
    {   /* NUL inside a line is not JSON; explicit lengths never read past */
        CHECK_INT(au_jsonrpc_scan("{\"a\":1}\0{", 9, &r), AU_EINVAL);
        CHECK_INT(au_jsonrpc_scan("{\"a\":1}XXXX", 7, &r), AU_RPC_INVALID);
        CHECK_INT(au_jsonrpc_scan(NULL, 0, &r), AU_EINVAL);
    }
    {   /* nesting: 512 deep is fine, 513 is refused */
        static char deep[2000];
        size_t i;
        for (i = 0; i < 512; i++) { deep[i] = '['; deep[1024 + i] = ']'; }
        memcpy(deep + 512, "1", 1);
        memmove(deep + 513, deep + 1024, 512);
        CHECK_INT(au_jsonrpc_scan(deep, 1025, &r), AU_RPC_BATCH);
        for (i = 0; i < 513; i++) { deep[i] = '['; deep[513 + 1 + i] = ']'; }
        deep[513] = '1';
        CHECK_INT(au_jsonrpc_scan(deep, 1027, &r), AU_EINVAL);
        CHECK(strstr(r.problem, "nesting") != NULL);
    }
    /* folding: pretty JSON becomes one line with the same meaning */
    {
        char pretty[] = "{\n  \"jsonrpc\": \"2.0\",\r\n  \"id\": 3,\n  \"result\": {\n    \"text\": \"a\\nb \\\" \\\\\"\n  }\n}\n";
        char copy[sizeof pretty];
        au_jsonrpc before, after;
        memcpy(copy, pretty, sizeof pretty);
        CHECK_INT(au_jsonrpc_scan(copy, strlen(copy), &before), AU_RPC_RESPONSE);
        CHECK(au_json_fold(pretty, strlen(pretty)) > 0);
        CHECK(strchr(pretty, '\n') == NULL && strchr(pretty, '\r') == NULL);
        CHECK_INT(au_jsonrpc_scan(pretty, strlen(pretty), &after), AU_RPC_RESPONSE);
        CHECK_MEM(after.id.p, after.id.len, "3");
        CHECK(strstr(pretty, "\"a\\nb \\\" \\\\\"") != NULL);   /* string bytes untouched */
        CHECK_INT(after.result.len, before.result.len);
        {
            char one[] = "{\"a\":1}";
            CHECK_INT(au_json_fold(one, strlen(one)), 0);
        }
    }
}

/* ---------------------------------------------------------------- backoff */
static void test_backoff(void) {
    static const double seed_schedule[] = { 0.25, 0.375, 0.5625, 0.84375, 1.265625, 1.8984375, 2.84765625,
                                            4.271484375, 5, 5, 5 };
    au_backoff b;
    au_backoff_desc d;
    size_t i;
    t_ctx = "backoff";
    au_backoff_init(&b, NULL);
    CHECK(b.desc.initial == 0.25 && b.desc.factor == 1.5 && b.desc.max == 5 && b.desc.jitter == 0);
    for (i = 0; i < sizeof seed_schedule / sizeof seed_schedule[0]; i++) {
        double got = au_backoff_next(&b, 0.9);
        CHECK(got > seed_schedule[i] - 1e-9 && got < seed_schedule[i] + 1e-9);
    }
    CHECK_INT(b.attempt, 11);
    for (i = 0; i < 10000; i++) au_backoff_next(&b, 0.5);          /* never gives up, stays capped */
    CHECK(au_backoff_next(&b, 0) == 5);
    au_backoff_reset(&b);
    CHECK_INT(b.attempt, 0);
    CHECK(au_backoff_next(&b, 0) == 0.25);
    memset(&d, 0, sizeof d);
    d.initial = 1; d.factor = 2; d.max = 3; d.jitter = 0.5;
    au_backoff_init(&b, &d);
    CHECK(au_backoff_next(&b, 0) == 1);          /* no cut at r = 0 */
    CHECK(au_backoff_next(&b, 1) == 1);          /* 2 cut by half */
    {
        double x = au_backoff_next(&b, 0.5);     /* 3 cut by a quarter */
        CHECK(x > 2.24 && x < 2.26);
    }
    for (i = 0; i < 100; i++) {
        double x = au_backoff_next(&b, (double)(t_rand() % 1000) / 1000.0);
        CHECK(x >= 1.5 && x <= 3);
    }
    d.factor = 0.5; d.max = 0.1;                  /* nonsense is made sane */
    au_backoff_init(&b, &d);
    CHECK(b.desc.factor == 1 && b.desc.max == 1);
}

/* ----------------------------------------------------------------- random */
static void test_random(void) {
    uint8_t a[64], b[64];
    size_t i, zeros = 0;
    t_ctx = "random";
    memset(a, 0, sizeof a); memset(b, 0, sizeof b);
    CHECK_INT(au_random_bytes(a, sizeof a), AU_OK);
    CHECK_INT(au_random_bytes(b, sizeof b), AU_OK);
    CHECK(memcmp(a, b, sizeof a) != 0);
    for (i = 0; i < sizeof a; i++) zeros += a[i] == 0;
    CHECK(zeros < 16);
    CHECK_INT(au_random_bytes(a, 0), AU_OK);
    CHECK(strcmp(au_strerror(AU_ERANDOM), "unknown error") != 0);
    CHECK_STR(au_strerror(12345), "unknown error");
}

/* ------------------------------------------------------ transports, lookups */
/* a name is resolved on a thread: the attempt waits in AU_CLIENT_RESOLVING on
   a wakeup the loop polls, then connects; ws+unix: where the system has
   AF_UNIX, else refused at init with the reason */
static void test_client_transports(void) {
    au_client c, c2;
    au_client_desc d;
    au_ws_msg m;
    struct sockaddr_in a;
    socklen_t al = (socklen_t)sizeof a;
    au__socket l, u;
    char url[64], port[16];
    int i, accepted = 0, ended = 0, woke = 0, unix_ok;
    t_ctx = "client";
    memset(&d, 0, sizeof d);
    d.url = "ws://127.0.0.1:9/";
    CHECK_INT(au_client_init(&c2, &d), AU_OK);           /* holds Winsock for the probes below */
    u = socket(AF_UNIX, SOCK_STREAM, 0);
    unix_ok = u != AU__BAD_SOCKET;
    if (unix_ok) AU__CLOSE_SOCKET(u);
#if defined(_WIN32)
    fprintf(stderr, "note: socket(AF_UNIX) %s here\n", unix_ok ? "works" : "fails");
#endif
    d.url = "ws+unix:/tmp/alwaysup-unit-none.sock";
    if (unix_ok) {
        CHECK_INT(au_client_init(&c, &d), AU_OK);
        CHECK(strstr(au_transports(), "unix") != NULL);
        au_client_connect(&c, au_now_ms());          /* no such socket file: an attempt that fails, retried by the caller */
        CHECK(c.ended == 1 && strstr(c.error, "unix:/tmp/alwaysup-unit-none.sock") != NULL);
    } else {
        CHECK_INT(au_client_init(&c, &d), AU_EURL_UNIX);
        CHECK(strstr(c.error, "no AF_UNIX sockets") != NULL);
        CHECK(strstr(au_transports(), "unix") == NULL);
    }
    au_client_free(&c);

    l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(l != AU__BAD_SOCKET && bind(l, (struct sockaddr *)&a, (socklen_t)sizeof a) == 0 && listen(l, 4) == 0 &&
          getsockname(l, (struct sockaddr *)&a, &al) == 0);
    snprintf(port, sizeof port, ":%u", (unsigned)ntohs(a.sin_port));
    snprintf(url, sizeof url, "ws://localhost%s/", port);
    d.url = url;
    CHECK_INT(au_client_init(&c, &d), AU_OK);
    au_client_connect(&c, au_now_ms());
#if defined(AU__ASYNC_RESOLVE)
    CHECK_INT(c.state, AU_CLIENT_RESOLVING);             /* returned before the name service answered */
    CHECK(c.lookup != NULL && c.sock != AU_INVALID_SOCKET);
    CHECK_INT(au_client_events(&c), AU_POLLIN);
    CHECK(c.reached[AU_CLIENT_RESOLVING] == 0);
#endif
    for (i = 0; i < 400 && !accepted && !ended; i++) {   /* a bound, not a timing: it ends as soon as the listener is reached */
        au_pollfd p[2];
        int resolving = c.state == AU_CLIENT_RESOLVING;
        p[0].fd = c.sock;
        p[0].events = au_client_events(&c);
        p[1].fd = (au_socket_t)l;
        p[1].events = AU_POLLIN;
        if (au_poll(p, 2, 50) < 0) break;
        if (resolving && (p[0].revents & AU_POLLIN)) woke = 1;
        if (p[1].revents & AU_POLLIN) accepted = 1;
        while (au_client_poll(&c, p[0].revents, au_now_ms(), &m)) {
            if (m.type == AU_WS_DISCONNECTED) ended = 1;
            p[0].revents = 0;
        }
    }
#if defined(AU__ASYNC_RESOLVE)
    CHECK(woke);                                         /* the thread's byte woke the poll */
    CHECK(c.lookup == NULL);
#endif
    CHECK(accepted && !ended);
    CHECK(c.reached[AU_CLIENT_RESOLVING] != 0);
    CHECK(strstr(c.peer, port) != NULL);
    if (ended) fprintf(stderr, "client ended: %s\n", c.error);
    au_client_connect(&c, au_now_ms());                  /* a lookup let go of in flight, twice */
    au_client_connect(&c, au_now_ms());
    au_client_free(&c);
    AU__CLOSE_SOCKET(l);
    au_client_free(&c2);
    (void)woke;
}

int main(void) {
    test_url();
    test_sha1_base64();
    test_utf8();
    test_handshake_request();
    test_handshake_response();
    test_encoder();
    test_decoder();
    test_ws_session();
    test_lines();
    test_jsonrpc();
    test_backoff();
    test_random();
    test_client_transports();
    return t_report();
}
