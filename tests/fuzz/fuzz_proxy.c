/* Fuzz harness: the HTTP CONNECT proxy path of au_client. Two modes, chosen
   by bit0 of the first byte:

   mode 0  [flags] answer...
           The proxy's answer, fed to au__proxy_answer one byte at a time as
           au_client reads it (the head in a 2048-byte buffer, each call on an
           exactly-sized heap copy so a read past the NUL is an ASan report).
           Checked against a reference written from RFC 9112: the head ends at
           the first CRLFCRLF (before any NUL), never earlier, and the call
           that sees it is the last; the tunnel opens only for a status line
           "HTTP/1.x SP 3DIGIT" (then SP or CRLF) with a 2xx code; a refusal
           carries the status line, made printable, NUL-terminated within the
           buffer it was given; the answer never depends on bytes after the
           head's end.

   mode 1  [flags] [url length L] [credential length A] url[L] proxy...
           au__proxy_parse on the proxy text (a C string), then au_client_init
           with that proxy for the daemon URL (a C string of the L bytes) and,
           when A > 0, A bytes of generated "user:password" credentials as
           proxy_auth (bit1 set: inside the proxy URL instead). Checked: the
           result is one of the documented errors; the scheme error exactly
           when the text is not http://; on success the host is what the text
           says, the port is the given one or 1080, the userinfo is what came
           before the '@'; the text rebuilt from the fields parses the same;
           au_client_init accepts every proxy au__proxy_parse accepts and
           builds a CONNECT request with CR only in CRLF line ends, no control
           byte, the target host:port (IPv6 bracketed) on the request line and
           in Host, and a Basic Proxy-Authorization that decodes to the
           credentials exactly when there are some (under 256 bytes). */
#define ALWAYSUP_IMPLEMENTATION
#include "alwaysup.h"
#include "fuzz_common.h"

static const char USERINFO[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%";
static int lc(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* ---- mode 0 ---- */
/* reference: where the head ends (index after CRLFCRLF), or 0 */
static size_t ref_head_end(const char *s, size_t n) {
    size_t i;
    for (i = 0; i + 3 < n; i++) {
        if (s[i] == 0) return 0;
        if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' && s[i + 3] == '\n') return i + 4;
    }
    return 0;
}
/* reference: 1 when the status line opens the tunnel */
static int ref_opens(const char *s, size_t n) {
    if (n < 14 || memcmp(s, "HTTP/1.", 7) != 0 || !is_digit((unsigned char)s[7]) || s[8] != ' ') return 0;
    if (s[9] != '2' || !is_digit((unsigned char)s[10]) || !is_digit((unsigned char)s[11])) return 0;
    return s[12] == ' ' || (s[12] == '\r' && s[13] == '\n');
}
static void answer_mode(const uint8_t *data, size_t size) {
    char head[2048];
    size_t len = 0, end, line;
    int r = 0;
    const char *text = (const char *)data;
    end = ref_head_end(text, size);
    while (len < size) {
        char *copy, why[200];
        if (len + 1 >= sizeof head) break;              /* au_client gives up here */
        head[len] = text[len];
        head[++len] = 0;
        copy = (char *)fz_dup(head, len + 1);
        memset(why, 'X', sizeof why);
        why[0] = 0;
        r = au__proxy_answer(copy, len, why, sizeof why);
        FZ_CHECK(r == 0 || r == 1 || r == -1, "result %d", r);
        FZ_CHECK((r != 0) == (end != 0 && len == end), "result %d after %zu bytes, head ends at %zu", r, len, end);
        if (r != 0) {
            /* the status line: up to the first CRLF, which the head has */
            for (line = 0; line + 1 < len && !(copy[line] == '\r' && copy[line + 1] == '\n'); line++) {}
            FZ_CHECK(r == (ref_opens(copy, len) ? 1 : -1), "status line %s: %d", fz_hex(copy, line), r);
            if (r == -1) {
                size_t i, wl;
                const char *nul = (const char *)memchr(why, 0, sizeof why);
                FZ_CHECK(nul != NULL, "why not NUL-terminated");
                wl = (size_t)(nul - why);
                FZ_CHECK(wl == (line < sizeof why - 1 ? line : sizeof why - 1), "why has %zu bytes, line %zu", wl, line);
                for (i = 0; i < wl; i++) {
                    unsigned char c = (unsigned char)copy[i];
                    FZ_CHECK(why[i] == ((c >= 0x20 && c < 0x7F) ? (char)c : '?'), "why byte %zu", i);
                }
            }
            /* the same answer whatever follows the head (the tunnel's bytes) */
            {
                static const char tunnel[] = "\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
                size_t k, extra = size - len < 40 ? size - len : 40;
                for (k = 0; k < 2; k++) {
                    size_t add = k ? sizeof tunnel - 1 : extra;
                    char *longer = (char *)malloc(len + add + 1);
                    char w2[200];
                    memcpy(longer, copy, len);
                    memcpy(longer + len, k ? tunnel : text + len, add);
                    longer[len + add] = 0;
                    FZ_CHECK(au__proxy_answer(longer, len + add, w2, sizeof w2) == r,
                             "the answer changed with bytes after the head");
                    free(longer);
                }
            }
            free(copy);
            break;
        }
        free(copy);
    }
    if (r == 0) FZ_CHECK(end == 0 || end > len, "head ends at %zu but no answer after %zu bytes", end, len);
}

/* ---- mode 1 ---- */
static int ieq_prefix(const char *s, const char *w) {
    size_t i;
    for (i = 0; w[i]; i++) if (!s[i] || lc((unsigned char)s[i]) != w[i]) return 0;
    return 1;
}
static void check_request(const char *req, size_t n, const au_url *target, const char *cred) {
    char want[400], line[700];
    size_t i, lines = 0, auth = 0, host = 0;
    snprintf(want, sizeof want, "%s%s%s:%u", target->ipv6 ? "[" : "", target->host, target->ipv6 ? "]" : "",
             (unsigned)target->port);
    FZ_CHECK(strlen(req) == n, "request length %zu, strlen %zu", n, strlen(req));
    FZ_CHECK(n >= 4 && memcmp(req + n - 4, "\r\n\r\n", 4) == 0, "request does not end with a blank line");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)req[i];
        if (c == '\r') FZ_CHECK(i + 1 < n && req[i + 1] == '\n', "bare CR at %zu", i);
        if (c == '\n') FZ_CHECK(i > 0 && req[i - 1] == '\r', "bare LF at %zu", i);
        FZ_CHECK(c >= 0x20 || c == '\r' || c == '\n', "control byte %02x at %zu", c, i);
        FZ_CHECK(c < 0x7F, "byte %02x at %zu", c, i);
    }
    i = 0;
    while (i < n) {
        const char *eol = strstr(req + i, "\r\n");
        size_t ll = (size_t)(eol - (req + i));
        FZ_CHECK(ll < sizeof line, "line of %zu bytes", ll);
        memcpy(line, req + i, ll);
        line[ll] = 0;
        if (ll == 0) { FZ_CHECK(i + 2 == n, "blank line before the end"); break; }
        if (lines == 0) {
            char first[420];
            snprintf(first, sizeof first, "CONNECT %s HTTP/1.1", want);
            FZ_CHECK(strcmp(line, first) == 0, "request line '%s', expected '%s'", line, first);
        } else if (strncmp(line, "Host: ", 6) == 0) {
            host++;
            FZ_CHECK(strcmp(line + 6, want) == 0, "Host '%s', expected '%s'", line + 6, want);
        } else if (strncmp(line, "Proxy-Authorization: Basic ", 27) == 0) {
            uint8_t dec[300];
            int64_t dl = au_base64_decode(line + 27, ll - 27, dec);
            auth++;
            FZ_CHECK(cred && dl == (int64_t)strlen(cred) && memcmp(dec, cred, (size_t)dl) == 0,
                     "credentials decode to %lld bytes, not '%s'", (long long)dl, cred ? cred : "(none)");
        } else {
            FZ_CHECK(strncmp(line, "User-Agent: alwaysup/", 21) == 0, "unexpected line '%s'", line);
        }
        lines++;
        i += ll + 2;
    }
    FZ_CHECK(host == 1, "%zu Host lines", host);
    FZ_CHECK(auth == (cred && cred[0] && strlen(cred) < 256 ? 1u : 0u), "%zu Proxy-Authorization lines", auth);
}
static void proxy_mode(const uint8_t *data, size_t size) {
    uint8_t flags = data[0];
    size_t ul, al, pl, i;
    char *url, *proxy, *authority, userinfo[256], cred[256], ref_user[256];
    const char *rest, *at, *slash;
    au_url u, u2;
    int r;

    if (size < 3) return;
    ul = data[1] < size - 3 ? data[1] : size - 3;
    al = data[2];
    pl = size - 3 - ul;
    url = (char *)malloc(ul + 1);
    memcpy(url, data + 3, ul);
    url[ul] = 0;
    proxy = (char *)malloc(pl + al + 2 + 1);          /* room for credentials put in front of the host */
    memcpy(proxy, data + 3 + ul, pl);
    proxy[pl] = 0;
    for (i = 0; i < al; i++)                          /* generated credentials: RFC 3986 userinfo bytes, one ':' */
        cred[i] = i == al / 2 ? ':' : USERINFO[(i * 7 + al) % (sizeof USERINFO - 1)];
    cred[al < sizeof cred ? al : sizeof cred - 1] = 0;
    if (al && (flags & 2) && ieq_prefix(proxy, "http://") && !strchr(proxy + 7, '@')) {                         /* the credentials inside the proxy URL */
        size_t hl = strlen(proxy + 7);
        memmove(proxy + 7 + strlen(cred) + 1, proxy + 7, hl + 1);
        memcpy(proxy + 7, cred, strlen(cred));
        proxy[7 + strlen(cred)] = '@';
    }

    /* au__proxy_parse against what the text says */
    memset(userinfo, 'X', sizeof userinfo);
    r = au__proxy_parse(&u, proxy, userinfo, sizeof userinfo);
    FZ_CHECK(r == AU_OK || r == AU_EURL_SCHEME || r == AU_EURL_PATH || r == AU_EURL_HOST, "result %d", r);
    FZ_CHECK(memchr(userinfo, 0, sizeof userinfo) != NULL, "userinfo not NUL-terminated");
    FZ_CHECK((r == AU_EURL_SCHEME) == !(strlen(proxy) >= 8 && ieq_prefix(proxy, "http://")), "scheme result %d for '%s'",
             r, proxy);
    ref_user[0] = 0;
    authority = NULL;
    if (r != AU_EURL_SCHEME) {
        rest = proxy + 7;
        at = strchr(rest, '@');
        slash = strchr(rest, '/');
        if (at && (!slash || at < slash)) {
            snprintf(ref_user, sizeof ref_user, "%.*s", (int)(at - rest), rest);
            rest = at + 1;
        }
        FZ_CHECK(strcmp(userinfo, ref_user) == 0, "userinfo '%s', expected '%s'", userinfo, ref_user);
        authority = (char *)rest;
    }
    if (r == AU_OK) {
        char rebuilt[600], host[300], u2info[256];
        size_t an = strcspn(authority, "/?");
        FZ_CHECK(authority[an] == 0 || strcmp(authority + an, "/") == 0, "a proxy path or query was accepted: '%s'", authority);
        FZ_CHECK(u.host[0] && !u.tls && !u.unix_socket, "proxy host fields");
        FZ_CHECK(u.port >= 1 && (u.port_given || u.port == 1080), "port %u", (unsigned)u.port);
        snprintf(host, sizeof host, "%s%s%s", u.ipv6 ? "[" : "", u.host, u.ipv6 ? "]" : "");
        FZ_CHECK(an >= strlen(host) && memcmp(authority, host, strlen(host)) == 0 &&
                     (authority[strlen(host)] == ':' || authority[strlen(host)] == '/' || !authority[strlen(host)]),
                 "host '%s' is not what '%s' says", host, authority);
        snprintf(rebuilt, sizeof rebuilt, "http://%s%s%s:%u", ref_user, ref_user[0] ? "@" : "", host, (unsigned)u.port);
        FZ_CHECK(au__proxy_parse(&u2, rebuilt, u2info, sizeof u2info) == AU_OK && strcmp(u2.host, u.host) == 0 &&
                     u2.port == u.port && u2.port_given && u2.ipv6 == u.ipv6 &&
                     (strlen(ref_user) == 255 || strcmp(u2info, ref_user) == 0),
                 "rebuilt %s parses differently", rebuilt);
    }

    /* the CONNECT request au_client_init builds */
    {
        au_client c;
        au_client_desc d;
        au_url target;
        const char *use;
        int tr = au_url_parse(&target, url, strlen(url)), cr, want_proxy;
        memset(&d, 0, sizeof d);
        d.url = url;
        d.proxy = proxy;
        d.proxy_auth = (al && !(flags & 2)) ? cred : NULL;
        cr = au_client_init(&c, &d);
        want_proxy = proxy[0] && tr == AU_OK && !target.unix_socket;
        if (want_proxy && r != AU_OK)
            FZ_CHECK(cr == AU_EINVAL, "a proxy refused by au__proxy_parse (%d) gives %d", r, cr);
        if (cr == AU_OK) {
            FZ_CHECK(tr == AU_OK, "au_client_init accepted a URL au_url_parse refuses (%d)", tr);
            FZ_CHECK(c.via_proxy == want_proxy, "via_proxy %d for a %s URL, proxy '%s'", c.via_proxy,
                     target.unix_socket ? "unix" : "TCP", proxy);
            if (c.via_proxy) {
                FZ_CHECK(r == AU_OK, "au_client_init took a proxy au__proxy_parse refuses (%d)", r);
                use = d.proxy_auth && d.proxy_auth[0] ? d.proxy_auth : ref_user;
                check_request(c.proxy_request, c.proxy_request_len, &target, use[0] ? use : NULL);
            }
            au_client_free(&c);
        } else if (tr == AU_OK && (!want_proxy || r == AU_OK)) {
            FZ_CHECK(0, "au_client_init refused (%d) a proxy and URL that parse", cr);
        }
    }
    free(url);
    free(proxy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1) proxy_mode(data, size);
    else answer_mode(data + 1, size - 1);
    return 0;
}
