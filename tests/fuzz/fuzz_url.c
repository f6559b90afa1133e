/* Fuzz harness: au_url_parse and the request built from it
   (au_handshake_request, au_header_check, au_subprotocol_check).

   Input layout:  [flags] [block length] block... url...
     flags  bit0 the block is an extra header "name:value" (C strings, so
                 they end at a NUL), bit1 the block is also offered as a
                 subprotocol, bit2 also build into a short buffer
     block  the first (block length) bytes after the two flag bytes when
            bit0 or bit1 is set; otherwise the URL starts right away
   The URL bytes sit in their own exactly-sized heap block (no NUL after
   them), so a read past len is an ASan report.

   Checked: on success (and for wss://, which fills the struct too) the host
   is non-empty, NUL-terminated, <= 253 chars, made of hostname characters
   or a bracketed IPv6 literal that inet_pton accepts (and every bracketed
   literal inet_pton accepts is accepted); the port is 1-65535 and the
   scheme's default when none was given; the path points at the end of the
   input, starts with '/' or '?' and is printable ASCII without space; the
   URL rebuilt from the fields parses to the same fields. The request has
   CR only in CRLF line ends, one line per header, the right request
   target, one Host header (ours or the caller's), and the extra header
   only when au_header_check (checked against a reference) allows it. */
#define ALWAYSUP_IMPLEMENTATION
#include "alwaysup.h"
#include "fuzz_common.h"
#include <arpa/inet.h>

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";

static int lc(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int ieq_prefix(const char *s, size_t n, const char *w) {   /* s starts with w, any case */
    size_t i, wl = strlen(w);
    if (n < wl) return 0;
    for (i = 0; i < wl; i++) if (lc((unsigned char)s[i]) != w[i]) return 0;
    return 1;
}
static int is_alnum(int c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_tchar(int c) { return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL); }
static int token_ok(const char *s) {
    if (!*s) return 0;
    for (; *s; s++) if (!is_tchar((unsigned char)*s)) return 0;
    return 1;
}
/* reference for au_header_check: RFC 9110 token name, no CTL in the value
   except HTAB, and not one of the headers the handshake owns */
static int ref_header_ok(const char *name, const char *value) {
    const unsigned char *v;
    size_t nl = strlen(name);
    if (!token_ok(name)) return 0;
    if ((nl == 7 && ieq_prefix(name, nl, "upgrade")) || (nl == 10 && ieq_prefix(name, nl, "connection")) ||
        ieq_prefix(name, nl, "sec-websocket-"))
        return 0;
    for (v = (const unsigned char *)value; *v; v++)
        if ((*v < 0x20 && *v != '\t') || *v == 0x7F) return 0;
    return 1;
}
static int path_byte_ok(unsigned char c) {
    return c > 0x20 && c < 0x7F && !strchr("\"<>\\^`{|}#", c);
}

/* checks one request text; returns nothing, aborts on a violation */
static void check_request(const char *r, size_t n, const au_url *u, const char *hname, const char *hval,
                          const char *proto) {
    size_t i, line = 0, hosts = 0, upg = 0, conn = 0, keys = 0, ver = 0, protos = 0, extra = 0;
    char *want = (char *)malloc(u->path_len + 32);
    FZ_CHECK(n >= 4 && memcmp(r + n - 4, "\r\n\r\n", 4) == 0, "request does not end with a blank line");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r[i];
        if (c == '\r') FZ_CHECK(i + 1 < n && r[i + 1] == '\n', "bare CR at %zu", i);
        if (c == '\n') FZ_CHECK(i > 0 && r[i - 1] == '\r', "bare LF at %zu", i);
        FZ_CHECK(c >= 0x20 || c == '\r' || c == '\n' || c == '\t', "control byte %02x at %zu", c, i);
        FZ_CHECK(c != 0x7F, "DEL at %zu", i);
    }
    /* request line */
    snprintf(want, u->path_len + 32, "GET %s%.*s HTTP/1.1\r\n", u->path[0] == '?' ? "/" : "", (int)u->path_len,
             u->path);
    FZ_CHECK(strncmp(r, want, strlen(want)) == 0, "request line differs: %.80s", r);
    /* header lines */
    i = strlen(want);
    free(want);
    while (i < n) {
        const char *eol = strstr(r + i, "\r\n"), *colon;
        size_t ll;
        FZ_CHECK(eol != NULL, "unterminated line");
        ll = (size_t)(eol - (r + i));
        line++;
        if (ll == 0) { FZ_CHECK(i + 2 == n, "blank line before the end"); break; }
        colon = (const char *)memchr(r + i, ':', ll);
        FZ_CHECK(colon && colon > r + i && colon[1] == ' ', "malformed header line %.*s", (int)ll, r + i);
        {
            size_t nl = (size_t)(colon - (r + i)), k;
            const char *v = colon + 2;
            size_t vl = ll - nl - 2;
            for (k = 0; k < nl; k++) FZ_CHECK(is_tchar((unsigned char)r[i + k]), "bad header name");
            if (nl == 4 && ieq_prefix(r + i, 4, "host")) {
                hosts++;
                if (hname && ieq_prefix(hname, strlen(hname), "host") && strlen(hname) == 4) {
                    FZ_CHECK(vl == strlen(hval) && memcmp(v, hval, vl) == 0, "caller's Host not used");
                } else {
                    char h[300], port[8] = "";
                    if (u->port != (u->tls ? 443 : 80)) snprintf(port, sizeof port, ":%u", (unsigned)u->port);
                    snprintf(h, sizeof h, "%s%s%s%s", u->ipv6 ? "[" : "", u->host, u->ipv6 ? "]" : "", port);
                    FZ_CHECK(vl == strlen(h) && memcmp(v, h, vl) == 0, "Host is %.*s, expected %s", (int)vl, v, h);
                }
            } else if (nl == 7 && ieq_prefix(r + i, 7, "upgrade")) {
                upg++;
                FZ_CHECK(vl == 9 && memcmp(v, "websocket", 9) == 0, "Upgrade value");
            } else if (nl == 10 && ieq_prefix(r + i, 10, "connection")) {
                conn++;
                FZ_CHECK(vl == 7 && memcmp(v, "Upgrade", 7) == 0, "Connection value");
            } else if (nl == 17 && ieq_prefix(r + i, 17, "sec-websocket-key")) {
                keys++;
                FZ_CHECK(vl == 24 && memcmp(v, KEY, 24) == 0, "key value");
            } else if (nl == 21 && ieq_prefix(r + i, 21, "sec-websocket-version")) {
                ver++;
                FZ_CHECK(vl == 2 && memcmp(v, "13", 2) == 0, "version value");
            } else if (nl == 22 && ieq_prefix(r + i, 22, "sec-websocket-protocol")) {
                protos++;
                FZ_CHECK(proto && vl == strlen(proto) && memcmp(v, proto, vl) == 0, "protocol line");
            } else {
                FZ_CHECK(hname && nl == strlen(hname) && memcmp(r + i, hname, nl) == 0 && vl == strlen(hval) &&
                             memcmp(v, hval, vl) == 0,
                         "unexpected header line %.*s", (int)ll, r + i);
                extra++;
            }
        }
        i += ll + 2;
    }
    FZ_CHECK(hosts == 1 && upg == 1 && conn == 1 && keys == 1 && ver == 1, "header counts %zu %zu %zu %zu %zu", hosts,
             upg, conn, keys, ver);
    FZ_CHECK(protos == (proto ? 1u : 0u), "protocol lines %zu", protos);
    FZ_CHECK(extra == ((hname && !(strlen(hname) == 4 && ieq_prefix(hname, 4, "host"))) ? 1u : 0u),
             "extra header lines %zu", extra);
}

static void check_fields(const au_url *u, const char *t, size_t len) {
    size_t hl, i, scheme = u->tls ? 6 : 5;
    const char *end = (const char *)memchr(u->host, 0, sizeof u->host);
    FZ_CHECK(end != NULL, "host not NUL-terminated");
    hl = (size_t)(end - u->host);
    FZ_CHECK(hl > 0 && hl <= 253, "host length %zu", hl);
    FZ_CHECK(ieq_prefix(t, len, u->tls ? "wss://" : "ws://"), "scheme and tls flag disagree");
    FZ_CHECK(u->port >= 1, "port 0");
    if (!u->port_given) FZ_CHECK(u->port == (u->tls ? 443 : 80), "default port %u", (unsigned)u->port);
    if (u->ipv6) {
        unsigned char a[16];
        FZ_CHECK(t[scheme] == '[' && memcmp(t + scheme + 1, u->host, hl) == 0 && t[scheme + 1 + hl] == ']',
                 "IPv6 host is not what the URL says");
        FZ_CHECK(inet_pton(AF_INET6, u->host, a) == 1, "IPv6 host '%s' rejected by inet_pton", u->host);
    } else {
        FZ_CHECK(memcmp(t + scheme, u->host, hl) == 0, "host is not what the URL says");
        FZ_CHECK(u->host[0] != '.' && u->host[0] != '-', "host starts with %c", u->host[0]);
        for (i = 0; i < hl; i++)
            FZ_CHECK(is_alnum((unsigned char)u->host[i]) || strchr("-._", u->host[i]), "host byte %02x",
                     (unsigned char)u->host[i]);
    }
    FZ_CHECK(u->path != NULL && u->path_len >= 1, "no path");
    FZ_CHECK(u->path[0] == '/' || u->path[0] == '?', "path starts with %02x", (unsigned char)u->path[0]);
    for (i = 0; i < u->path_len; i++)
        FZ_CHECK(path_byte_ok((unsigned char)u->path[i]), "path byte %02x", (unsigned char)u->path[i]);
    if (u->path >= t && u->path < t + len) FZ_CHECK(u->path + u->path_len == t + len, "path does not end the input");
    else {                                       /* the default "/": only when the URL has no path or query */
        FZ_CHECK(u->path_len == 1 && u->path[0] == '/', "path outside the input");
        for (i = scheme; i < len; i++) FZ_CHECK(t[i] != '/' && t[i] != '?', "default path although the URL has one");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t flags;
    size_t blen = 0, ulen;
    char *text, name[256] = "", value[256] = "", *colon;
    const char *hname = NULL;
    au_url u, u2;
    int r;

    if (size < 2) return 0;
    flags = data[0];
    if (flags & 3) {
        blen = data[1] < size - 2 ? data[1] : size - 2;
        if (blen > 255) blen = 255;
        {
            char block[256];
            memcpy(block, data + 2, blen);
            block[blen] = 0;                             /* C strings: they end at the first NUL */
            colon = strchr(block, ':');
            if (colon) { *colon = 0; snprintf(value, sizeof value, "%s", colon + 1); }
            snprintf(name, sizeof name, "%s", block);
        }
    }
    ulen = size - 2 - blen;
    text = (char *)fz_dup(data + 2 + blen, ulen);

    r = au_url_parse(&u, text, ulen);
    FZ_CHECK(r == AU_OK || r == AU_EURL_TLS || r == AU_EURL_SCHEME || r == AU_EURL_USERINFO ||
                 r == AU_EURL_FRAGMENT || r == AU_EURL_HOST || r == AU_EURL_PORT || r == AU_EURL_PATH || r == AU_EURL_UNIX,
             "unexpected result %d", r);
    FZ_CHECK(strcmp(au_strerror(r), "unknown error") != 0, "no words for %d", r);
    if (ulen >= 5 && ieq_prefix(text, ulen, "ws://")) FZ_CHECK(r != AU_EURL_SCHEME, "ws:// refused as a scheme");
    if (r == AU_OK) FZ_CHECK(!u.tls, "AU_OK with tls");
    if (r == AU_EURL_TLS) FZ_CHECK(u.tls, "AU_EURL_TLS without tls");

    /* inet_pton agrees on every bracketed host that is otherwise fine */
    {
        size_t scheme = (ulen >= 6 && ieq_prefix(text, ulen, "wss://")) ? 6 : 5;
        if ((r == AU_OK || r == AU_EURL_TLS || r == AU_EURL_HOST) && ulen > scheme && text[scheme] == '[') {
            const char *close = (const char *)memchr(text + scheme, ']', ulen - scheme);
            size_t k;
            int clean = close != NULL;
            for (k = scheme; clean && k < ulen && text[k] != '/' && text[k] != '?' && text[k] != '#'; k++)
                if (text[k] == '@') clean = 0;
            if (clean && (size_t)(close - text) < k && (close + 1 == text + k || close[1] == ':')) {
                /* the authority is [literal] or [literal]:..., so only the literal decides HOST */
                char lit[300];
                unsigned char a[16];
                size_t ln = (size_t)(close - (text + scheme + 1));
                int pton;
                if (ln < sizeof lit && !memchr(text + scheme + 1, 0, ln)) {
                    memcpy(lit, text + scheme + 1, ln);
                    lit[ln] = 0;
                    pton = inet_pton(AF_INET6, lit, a) == 1;
                    if (r == AU_EURL_HOST) FZ_CHECK(!pton, "IPv6 literal '%s' accepted by inet_pton, refused here", lit);
                }
            }
        }
    }

    if (r == AU_OK && u.unix_socket) {                   /* ws+unix: the socket path and the request path */
        char rebuilt[400];
        int rl;
        size_t i, pl = strlen(u.unix_path);
        FZ_CHECK(ieq_prefix(text, ulen, "ws+unix:"), "unix without ws+unix:");
        FZ_CHECK(u.unix_path[0] == '/' && pl < sizeof u.unix_path, "socket path '%s'", u.unix_path);
        for (i = 0; i < pl; i++) FZ_CHECK(u.unix_path[i] > 0x20 && u.unix_path[i] < 0x7f && u.unix_path[i] != ':', "socket path byte");
        FZ_CHECK(strcmp(u.host, "localhost") == 0 && u.port == 80 && !u.port_given && !u.tls, "unix host fields");
        FZ_CHECK(u.path_len >= 1 && u.path[0] == '/', "request path");
        for (i = 0; i < u.path_len; i++) FZ_CHECK(path_byte_ok((unsigned char)u.path[i]), "path byte %02x", (unsigned char)u.path[i]);
        rl = snprintf(rebuilt, sizeof rebuilt, "ws+unix://%s:%.*s", u.unix_path, (int)u.path_len, u.path);   /* the /// form */
        if (rl > 0 && (size_t)rl < sizeof rebuilt) {
            FZ_CHECK(au_url_parse(&u2, rebuilt, (size_t)rl) == AU_OK && strcmp(u2.unix_path, u.unix_path) == 0 &&
                         u2.path_len == u.path_len && memcmp(u2.path, u.path, u.path_len) == 0,
                     "rebuilt %s parses differently", rebuilt);
        }
    } else if (r == AU_OK || r == AU_EURL_TLS) {
        size_t cap = ulen + 600;
        char *rebuilt = (char *)malloc(cap);
        int rl, r2;
        check_fields(&u, text, ulen);
        /* rebuild from the fields and re-parse */
        rl = snprintf(rebuilt, cap, "%s://%s%s%s", u.tls ? "wss" : "ws", u.ipv6 ? "[" : "", u.host, u.ipv6 ? "]" : "");
        if (u.port_given) rl += snprintf(rebuilt + rl, cap - (size_t)rl, ":%u", (unsigned)u.port);
        if (u.path >= text && u.path < text + ulen) {
            memcpy(rebuilt + rl, u.path, u.path_len);
            rl += (int)u.path_len;
        }
        r2 = au_url_parse(&u2, rebuilt, (size_t)rl);
        FZ_CHECK(r2 == r, "rebuilt URL %.*s gives %d, not %d", rl, rebuilt, r2, r);
        FZ_CHECK(strcmp(u2.host, u.host) == 0 && u2.port == u.port && u2.port_given == u.port_given &&
                     u2.ipv6 == u.ipv6 && u2.tls == u.tls && u2.path_len == u.path_len &&
                     memcmp(u2.path, u.path, u.path_len) == 0,
                 "rebuilt URL %.*s parses differently", rl, rebuilt);
        free(rebuilt);
        /* the request */
        {
            au_handshake_desc d;
            au_header h;
            const char *protos[1];
            int64_t n, n2;
            int hcheck = -1, pcheck = -1;
            memset(&d, 0, sizeof d);
            d.url = &u;
            d.key = KEY;
            if (flags & 1) {
                const char *why = au_header_check(name, value);
                hcheck = why == NULL;
                FZ_CHECK(hcheck == ref_header_ok(name, value), "au_header_check('%s', '%s') = %s", name, value,
                         why ? why : "ok");
                h.name = name;
                h.value = value;
                d.headers = &h;
                d.num_headers = 1;
            }
            if (flags & 2) {
                const char *why = au_subprotocol_check(name);
                pcheck = why == NULL;
                FZ_CHECK(pcheck == token_ok(name), "au_subprotocol_check('%s') = %s", name, why ? why : "ok");
                protos[0] = name;
                d.subprotocols = protos;
                d.num_subprotocols = 1;
            }
            n = au_handshake_request(&d, NULL, 0);
            if (hcheck == 0 || pcheck == 0) {
                FZ_CHECK(n == AU_EHEADER, "refused header/subprotocol accepted: %lld", (long long)n);
            } else {
                char *req;
                FZ_CHECK(n > 0 && n < 9000, "request length %lld", (long long)n);
                req = (char *)malloc((size_t)n + 1);
                n2 = au_handshake_request(&d, req, (size_t)n + 1);
                FZ_CHECK(n2 == n && req[n] == 0, "second build gives %lld", (long long)n2);
                FZ_CHECK(strlen(req) == (size_t)n, "NUL inside the request");
                if (hcheck == 1) hname = name;
                check_request(req, (size_t)n, &u, hname, value, pcheck == 1 ? name : NULL);
                free(req);
                if (flags & 4) {                         /* a short buffer: same length, no overflow */
                    size_t scap = (size_t)(data[1] % (size_t)n);
                    char *small = (char *)malloc(scap ? scap : 1);
                    n2 = au_handshake_request(&d, scap ? small : NULL, scap);
                    FZ_CHECK(n2 == n, "short buffer gives %lld", (long long)n2);
                    free(small);
                }
            }
        }
    }
    free(text);
    return 0;
}
