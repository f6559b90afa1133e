/* testd.c - fault-injecting WebSocket test daemon for alwaysup integration
   tests. Single-threaded, poll()-based, non-blocking; C99 + POSIX (Linux).

   BUILD
     gcc -std=c99 -Wall -Wextra -Wpedantic -Wshadow -O2 -I. tools/testd.c -o build/testd

   COMMAND LINE
     testd [--host 127.0.0.1] [--port N] [--mode MODE] [--mcp-strict]
           [--log FILE] [--instance NAME] [--subprotocol NAME]
     --port 0 (default) binds an ephemeral port. Once listening, testd prints
     exactly "listening PORT\n" on stdout. SO_REUSEADDR is set, so a restarted
     daemon can bind the same port at once. --instance defaults to the pid.
     --subprotocol NAME is selected in the 101 when the client offers it.
     --mcp-strict: requests other than initialize/ping before initialize get
     error -32002. SIGTERM/SIGINT exit 0.

   CONTROL CHANNEL (stdin, one command per line; answer "ok" or "err WHY")
     mode MODE       how NEW connections are treated (existing ones keep theirs):
                       normal          handshake, then JSON-RPC (below)
                       refuse          close the listening socket until another
                                       mode reopens it on the same port
                       accept-close    accept TCP, close at once
                       http502/http503 read the head, answer 502/503, close
                       hang-handshake  accept and read, never answer
                       bad-accept      101 with a wrong Sec-WebSocket-Accept
                       endless-head    101 status line, then X-Filler header
                                       lines forever (64 KiB per poll turn)
                       endless-line    101 status line, then "X-Long: aaaa..."
                                       forever, never a line end
     freeze / thaw   stop / resume all reads, writes, accepts and timeouts
                     (the listening socket stays open: connects wait in the
                     backlog), like SIGSTOP/SIGCONT of a real daemon
     drop [rst]      close every client TCP connection, no close frame
                     (rst: SO_LINGER 0, so the peer gets a RST, not a FIN)
     close CODE [REASON]  close frame to every open connection (CODE 0: an
                     empty close payload); TCP is closed after the client's
                     reply or after 1 s
     ping [PAYLOAD]  ping to every open connection
     send TEXT       TEXT (rest of line, verbatim) as one text frame to every
                     open connection; sendbin TEXT: the same as binary
     sendraw HEX     raw bytes written verbatim to every open, closing or
                     hanging (hang-handshake, bad-accept) connection
     initerror on|off  refuse initialize with error -32603 (or stop refusing)
     conns           "ok N": open WebSocket connections (handshake done, no
                     close frame sent or received yet)
     quit            exit 0
     EOF on stdin changes nothing.

   JSON-RPC (normal mode; every text message is logged first)
     Invalid JSON, responses and notifications are only logged
     (notifications/initialized marks the connection initialized). Requests
     get {"jsonrpc":"2.0","id":<raw id>,"result"|"error":...} by method:
       initialize      MCP initialize result, serverInfo.version = instance
       ping            {}
       echo            {"params":<raw params or null>,"instance":"I","conn":N}
       sleep {"ms":N}  {"slept":N} after N ms (timer; other work continues)
       pretty          echo result plus "multiline":"line 1\nline 2",
                       pretty-printed with raw newlines and indentation
       notify {"count":N}  N notifications/message ("data":"n 1".."n N"),
                       then {"sent":N}
       junk            text frame "this is not json", binary ff fe 00 01,
                       then {"ok":true}
       binary          echo result in a BINARY frame
       fragment        echo result in 3 frames (text + 2 continuations) with
                       pings "frag-1"/"frag-2" between them
       big {"bytes":N} {"data":"xxx..."} with N 'x'
       die             _exit(3) without answering
       drop            close this TCP connection, no answer
       close {"code":N}  close frame with code N (default 1000), no answer
       tools/list, tools/call, logging/setLevel, resources/subscribe,
       resources/unsubscribe: fixed results; anything else -32601.

   LOG (--log FILE, appended, one line per event, flushed at once)
     start instance I pid P port N | cmd LINE | exit REASON
     conn N accept MODE | request GET / HTTP/1.1 | header Name: value
     (Sec-WebSocket-Protocol and every header other than Host, Upgrade,
     Connection, Sec-WebSocket-Key, Sec-WebSocket-Version) | open |
     reject 400 WHY | http 502 | recv TEXT | binary LEN | ping P | pong P |
     close CODE [REASON] (the client's close frame) | sent-close CODE |
     error CODE WHY (we failed the connection) | invalid-json WHY |
     not-jsonrpc WHY | initialized | disconnect WHY (TCP closed)
     CR, LF and other control bytes in logged data are written as \n, \r,
     \t, \xHH so every event stays on one line; text over 64 KiB is cut,
     with "...[N bytes]" appended.
*/
#define ALWAYSUP_IMPLEMENTATION
#include "alwaysup.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX ((size_t)16 << 10)          /* request head cap */
#define MAX_MESSAGE ((uint64_t)1 << 30)      /* reassembled message cap (1009 above) */
#define READ_CHUNK ((size_t)256 << 10)       /* one read() per connection per turn */
#define FILL_CHUNK ((size_t)64 << 10)        /* endless modes: bytes added per turn */
#define LOG_TEXT_MAX ((size_t)64 << 10)
#define CLOSE_WAIT_MS 1000                   /* wait for the client's close reply */
#define DRAIN_WAIT_MS 2000                   /* flush + wait for EOF before closing */

/* ---- modes and connection states ---------------------------------------- */
enum {
    M_NORMAL, M_REFUSE, M_ACCEPT_CLOSE, M_HTTP502, M_HTTP503, M_HANG,
    M_BAD_ACCEPT, M_ENDLESS_HEAD, M_ENDLESS_LINE, M_COUNT
};
static const char *const mode_names[M_COUNT] = {
    "normal", "refuse", "accept-close", "http502", "http503", "hang-handshake",
    "bad-accept", "endless-head", "endless-line"
};

enum {
    ST_HEAD,     /* reading the request head */
    ST_HANG,     /* read and discard forever */
    ST_OPEN,     /* WebSocket open */
    ST_CLOSING,  /* we sent a close frame, waiting for the client's */
    ST_ENDLESS,  /* feeding an endless response head */
    ST_DRAIN,    /* flush output, shut down writes, wait for EOF, close */
    ST_DEAD      /* closed at the end of this loop turn */
};

/* ---- growable byte buffer with a consumed prefix ------------------------- */
typedef struct buf { uint8_t *p; size_t off, len, cap; } buf;

static int buf_reserve(buf *b, size_t extra) {
    size_t need, cap;
    uint8_t *np;
    if (extra > SIZE_MAX - b->len) return -1;
    if (b->len + extra <= b->cap) return 0;
    if (b->off) {   /* slide down only when we would otherwise grow: amortised */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return 0;
    }
    need = b->len + extra;
    cap = b->cap ? b->cap : 1024;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    np = (uint8_t *)realloc(b->p, cap);
    if (!np) return -1;
    b->p = np;
    b->cap = cap;
    return 0;
}
/* small appends: running out of memory there is fatal for a test tool */
static void buf_put(buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n) != 0) {
        fprintf(stderr, "testd: out of memory\n");
        _exit(1);
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
}
static void buf_puts(buf *b, const char *s) { buf_put(b, s, strlen(s)); }
static void buf_printf(buf *b, const char *fmt, ...) {
    char tmp[512];
    int n;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}
static size_t buf_pending(const buf *b) { return b->len - b->off; }
static void buf_clear(buf *b) {
    b->off = b->len = 0;
    if (b->cap > ((size_t)1 << 20)) {   /* give big message memory back */
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}
static void buf_consume(buf *b, size_t n) {
    b->off += n;
    if (b->off == b->len) buf_clear(b);
}
static void buf_free(buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}
/* JSON string body escaping (no quotes added) */
static void buf_json_escape(buf *b, const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') { buf_put(b, "\\", 1); buf_put(b, s, 1); }
        else if (ch < 0x20) buf_printf(b, "\\u%04x", ch);
        else buf_put(b, s, 1);
    }
}

/* ---- connection ------------------------------------------------------------ */
typedef struct conn {
    int fd;
    unsigned id;
    int state, mode;
    buf in;                  /* request head (ST_HEAD only) */
    buf out;                 /* bytes waiting for the socket */
    int64_t deadline;        /* ST_CLOSING / ST_DRAIN: give up at this time (ms) */
    int shut;                /* ST_DRAIN: write side already shut down */
    int rst;                 /* close with SO_LINGER 0 */
    int close_sent;          /* no data frames after our close frame */
    int init_received, initialized;
    /* frame decoder: header bytes are collected, payload is unmasked
       straight into msg (data) or ctl (control), whatever the chunking */
    uint8_t hdr[14];
    unsigned hdr_have, hdr_need;
    int in_frame, fin;
    unsigned op;
    uint8_t mask[4];
    uint64_t remaining, frame_off;
    uint8_t ctl[AU_WS_MAX_CONTROL];
    size_t ctl_len;
    buf msg;
    unsigned msg_op;
    int in_message;
    au_utf8 utf8;
} conn;

typedef struct sleeper {     /* a pending "sleep" answer */
    unsigned conn_id;
    int64_t due;
    uint64_t ms;
    char *id;
    size_t id_len;
} sleeper;

/* ---- global state (single-threaded) --------------------------------------- */
static struct {
    const char *host;
    unsigned port;           /* actual port once bound */
    int mode;
    int strict;
    int init_error;      /* "initerror on": initialize is refused */
    FILE *log;
    char instance[128];
    const char *subprotocol;
    int lfd;                 /* listening socket, -1 while refusing */
    int frozen;
    int64_t frozen_at;
    int stdin_open;
    buf cmdbuf;
    conn **conns;
    size_t nconns, capconns;
    unsigned next_id;
    sleeper *sleepers;
    size_t nsleepers, capsleepers;
    int quit;
} g;
static volatile sig_atomic_t g_signal;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- log --------------------------------------------------------------------- */
static void log_start(const char *fmt, ...) {
    va_list ap;
    if (!g.log) return;
    va_start(ap, fmt);
    vfprintf(g.log, fmt, ap);
    va_end(ap);
}
/* escaped so that one event is always one line */
static void log_data(const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    size_t i;
    if (!g.log) return;
    for (i = 0; i < n; i++) {
        uint8_t ch = p[i];
        if (ch == '\n') fputs("\\n", g.log);
        else if (ch == '\r') fputs("\\r", g.log);
        else if (ch == '\t') fputs("\\t", g.log);
        else if (ch < 0x20 || ch == 0x7F) fprintf(g.log, "\\x%02x", ch);
        else fputc(ch, g.log);
    }
}
static void log_end(void) {
    if (!g.log) return;
    fputc('\n', g.log);
    fflush(g.log);
}
static void log_line(const char *fmt, ...) {
    va_list ap;
    if (!g.log) return;
    va_start(ap, fmt);
    vfprintf(g.log, fmt, ap);
    va_end(ap);
    log_end();
}

/* ---- control channel replies ------------------------------------------------ */
static void reply(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* ---- connection lifecycle ------------------------------------------------------ */
static void conn_kill(conn *c, const char *why) {
    if (c->state == ST_DEAD) return;
    log_line("conn %u disconnect %s", c->id, why);
    c->state = ST_DEAD;
}
static void conn_drain(conn *c) {
    if (c->state == ST_DEAD || c->state == ST_DRAIN) return;
    c->state = ST_DRAIN;
    c->deadline = now_ms() + DRAIN_WAIT_MS;
}
static void conn_destroy(conn *c) {
    if (c->rst) {   /* RST instead of FIN: a crash with unread data looks like this */
        struct linger lg;
        lg.l_onoff = 1;
        lg.l_linger = 0;
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->msg);
    free(c);
}
static conn *conn_find(unsigned id) {
    size_t i;
    for (i = 0; i < g.nconns; i++)
        if (g.conns[i]->id == id) return g.conns[i];
    return NULL;
}

/* ---- server frames (never masked) ---------------------------------------------- */
static size_t frame_head(uint8_t h[10], unsigned op, int fin, uint64_t len) {
    unsigned i;
    h[0] = (uint8_t)((fin ? 0x80 : 0) | (op & 0x0F));
    if (len < 126) { h[1] = (uint8_t)len; return 2; }
    if (len <= 0xFFFF) { h[1] = 126; h[2] = (uint8_t)(len >> 8); h[3] = (uint8_t)len; return 4; }
    h[1] = 127;
    for (i = 0; i < 8; i++) h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}
static void ws_frame(conn *c, unsigned op, int fin, const void *p, size_t n) {
    uint8_t h[10];
    if (c->close_sent) return;   /* RFC 6455 5.5.1: nothing after our close */
    buf_put(&c->out, h, frame_head(h, op, fin, n));
    buf_put(&c->out, p, n);
}
static void ws_text(conn *c, const buf *b) { ws_frame(c, AU_OP_TEXT, 1, b->p + b->off, buf_pending(b)); }
/* code 0: empty payload (no status code) */
static void ws_close(conn *c, unsigned code, const char *reason, size_t rlen) {
    uint8_t pl[AU_WS_MAX_CONTROL];
    size_t n = 0;
    if (c->close_sent) return;
    if (code) {
        if (rlen > AU_WS_MAX_CONTROL - 2) rlen = AU_WS_MAX_CONTROL - 2;
        pl[0] = (uint8_t)(code >> 8);
        pl[1] = (uint8_t)code;
        if (rlen) memcpy(pl + 2, reason, rlen);
        n = 2 + rlen;
    }
    ws_frame(c, AU_OP_CLOSE, 1, pl, n);
    c->close_sent = 1;
    log_line("conn %u sent-close %u", c->id, code);
}
/* fails the connection: our close frame with the code, then hang up */
static void ws_fail(conn *c, unsigned code, const char *why) {
    log_line("conn %u error %u %s", c->id, code, why);
    ws_close(c, code, why, strlen(why));
    conn_drain(c);
}

/* ---- JSON-RPC ----------------------------------------------------------------------- */
static int is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }
/* Finds "key": <unsigned integer> anywhere in a raw params token. Good
   enough for a test tool; 1 if found and it fits. */
static int param_u64(au_tok params, const char *key, uint64_t *v) {
    size_t kl = strlen(key), i;
    if (!params.p) return 0;
    for (i = 0; i + kl + 2 <= params.len; i++) {
        size_t j;
        uint64_t x = 0;
        int digits = 0;
        if (params.p[i] != '"' || memcmp(params.p + i + 1, key, kl) != 0 || params.p[i + 1 + kl] != '"')
            continue;
        j = i + kl + 2;
        while (j < params.len && is_ws(params.p[j])) j++;
        if (j >= params.len || params.p[j] != ':') continue;
        j++;
        while (j < params.len && is_ws(params.p[j])) j++;
        while (j < params.len && params.p[j] >= '0' && params.p[j] <= '9') {
            if (x > (UINT64_MAX - 9) / 10) return 0;
            x = x * 10 + (uint64_t)(params.p[j] - '0');
            j++;
            digits++;
        }
        if (!digits) return 0;
        *v = x;
        return 1;
    }
    return 0;
}

static void rpc_begin(buf *b, au_tok id) {
    buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    buf_put(b, id.p, id.len);
}
static void rpc_result(conn *c, au_tok id, const char *result) {
    buf b = { 0 };
    rpc_begin(&b, id);
    buf_puts(&b, ",\"result\":");
    buf_puts(&b, result);
    buf_puts(&b, "}");
    ws_text(c, &b);
    buf_free(&b);
}
static void rpc_error(conn *c, au_tok id, int code, const char *message) {
    buf b = { 0 };
    rpc_begin(&b, id);
    buf_printf(&b, ",\"error\":{\"code\":%d,\"message\":\"", code);
    buf_json_escape(&b, message);
    buf_puts(&b, "\"}}");
    ws_text(c, &b);
    buf_free(&b);
}
/* the whole echo response */
static void echo_response(buf *b, conn *c, au_tok id, au_tok params) {
    rpc_begin(b, id);
    buf_puts(b, ",\"result\":{\"params\":");
    if (params.p) buf_put(b, params.p, params.len);
    else buf_puts(b, "null");
    buf_puts(b, ",\"instance\":\"");
    buf_json_escape(b, g.instance);
    buf_printf(b, "\",\"conn\":%u}}", c->id);
}
/* echo as one text frame, params copied once, straight into the output:
   a 300 MiB echo should not need three copies of itself in memory */
static void echo_direct(conn *c, au_tok id, au_tok params) {
    buf pre = { 0 }, post = { 0 };
    uint8_t h[10];
    size_t plen = params.p ? params.len : 4, total;
    if (c->close_sent) return;
    rpc_begin(&pre, id);
    buf_puts(&pre, ",\"result\":{\"params\":");
    buf_puts(&post, ",\"instance\":\"");
    buf_json_escape(&post, g.instance);
    buf_printf(&post, "\",\"conn\":%u}}", c->id);
    total = pre.len + plen + post.len;
    buf_put(&c->out, h, frame_head(h, AU_OP_TEXT, 1, total));
    buf_put(&c->out, pre.p, pre.len);
    buf_put(&c->out, params.p ? params.p : "null", plen);
    buf_put(&c->out, post.p, post.len);
    buf_free(&pre);
    buf_free(&post);
}

static void add_sleeper(conn *c, au_tok id, uint64_t ms) {
    sleeper *s;
    if (g.nsleepers == g.capsleepers) {
        size_t cap = g.capsleepers ? g.capsleepers * 2 : 16;
        sleeper *ns = (sleeper *)realloc(g.sleepers, cap * sizeof *ns);
        if (!ns) { fprintf(stderr, "testd: out of memory\n"); _exit(1); }
        g.sleepers = ns;
        g.capsleepers = cap;
    }
    s = &g.sleepers[g.nsleepers];
    s->id = (char *)malloc(id.len ? id.len : 1);
    if (!s->id) { fprintf(stderr, "testd: out of memory\n"); _exit(1); }
    memcpy(s->id, id.p, id.len);
    s->id_len = id.len;
    s->conn_id = c->id;
    s->ms = ms;
    s->due = now_ms() + (int64_t)ms;
    g.nsleepers++;
}

/* {"data":"xxx..."} written straight into the output: no second copy of N bytes */
static void rpc_big(conn *c, au_tok id, uint64_t n) {
    buf pre = { 0 };
    static const char post[] = "\"}}";
    uint8_t h[10];
    size_t total, hl;
    rpc_begin(&pre, id);
    buf_puts(&pre, ",\"result\":{\"data\":\"");
    total = pre.len + (size_t)n + sizeof post - 1;
    hl = frame_head(h, AU_OP_TEXT, 1, total);
    if (buf_reserve(&c->out, hl + total) != 0) {
        buf_free(&pre);
        rpc_error(c, id, -32603, "out of memory");
        return;
    }
    buf_put(&c->out, h, hl);
    buf_put(&c->out, pre.p, pre.len);
    memset(c->out.p + c->out.len, 'x', (size_t)n);
    c->out.len += (size_t)n;
    buf_put(&c->out, post, sizeof post - 1);
    buf_free(&pre);
}

static void rpc_request(conn *c, const au_jsonrpc *r) {
    au_tok id = r->id, m = r->method, params = r->params;
    uint64_t v = 0;
    buf b = { 0 };

    if (g.strict && !c->init_received && !au_json_string_eq(m, "initialize") && !au_json_string_eq(m, "ping")) {
        rpc_error(c, id, -32002, "Server not initialized");
        return;
    }
    if (au_json_string_eq(m, "initialize") && g.init_error) {
        rpc_error(c, id, -32603, "initialize refused by the test daemon");
    } else if (au_json_string_eq(m, "initialize")) {
        c->init_received = 1;
        buf_puts(&b, "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"tools\":{\"listChanged\":true},"
                     "\"resources\":{\"subscribe\":true,\"listChanged\":true},\"prompts\":{\"listChanged\":true},"
                     "\"logging\":{}},\"serverInfo\":{\"name\":\"testd\",\"version\":\"");
        buf_json_escape(&b, g.instance);
        buf_puts(&b, "\"}}");
        buf_put(&b, "", 1);
        rpc_result(c, id, (const char *)b.p);
    } else if (au_json_string_eq(m, "ping") || au_json_string_eq(m, "logging/setLevel") ||
               au_json_string_eq(m, "resources/subscribe") || au_json_string_eq(m, "resources/unsubscribe")) {
        rpc_result(c, id, "{}");
    } else if (au_json_string_eq(m, "echo")) {
        echo_direct(c, id, params);
    } else if (au_json_string_eq(m, "binary")) {
        echo_response(&b, c, id, params);
        ws_frame(c, AU_OP_BINARY, 1, b.p, b.len);
    } else if (au_json_string_eq(m, "fragment")) {
        size_t a, z;
        echo_response(&b, c, id, params);
        a = b.len / 3;
        z = 2 * b.len / 3;
        ws_frame(c, AU_OP_TEXT, 0, b.p, a);
        ws_frame(c, AU_OP_PING, 1, "frag-1", 6);
        ws_frame(c, AU_OP_CONT, 0, b.p + a, z - a);
        ws_frame(c, AU_OP_PING, 1, "frag-2", 6);
        ws_frame(c, AU_OP_CONT, 1, b.p + z, b.len - z);
    } else if (au_json_string_eq(m, "pretty")) {
        /* raw newlines and indentation between tokens, plus an escaped \n
           inside a string: a shim must fold the former, keep the latter */
        buf_puts(&b, "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": ");
        buf_put(&b, id.p, id.len);
        buf_puts(&b, ",\n  \"result\": {\n    \"params\": ");
        if (params.p) buf_put(&b, params.p, params.len);
        else buf_puts(&b, "null");
        buf_puts(&b, ",\n    \"instance\": \"");
        buf_json_escape(&b, g.instance);
        buf_printf(&b, "\",\n    \"conn\": %u,\n    \"multiline\": \"line 1\\nline 2\"\n  }\n}", c->id);
        ws_text(c, &b);
    } else if (au_json_string_eq(m, "sleep")) {
        if (!param_u64(params, "ms", &v)) v = 0;
        if (v > 86400000u) rpc_error(c, id, -32602, "Invalid params: ms over one day");
        else add_sleeper(c, id, v);
    } else if (au_json_string_eq(m, "notify")) {
        uint64_t i;
        if (!param_u64(params, "count", &v)) v = 0;
        if (v > 10000000u) { rpc_error(c, id, -32602, "Invalid params: count over 10000000"); return; }
        for (i = 1; i <= v; i++) {
            buf_clear(&b);
            buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
                           "\"params\":{\"level\":\"info\",\"data\":\"n %llu\"}}", (unsigned long long)i);
            ws_text(c, &b);
        }
        buf_clear(&b);
        buf_printf(&b, "{\"sent\":%llu}", (unsigned long long)v);
        buf_put(&b, "", 1);
        rpc_result(c, id, (const char *)b.p);
    } else if (au_json_string_eq(m, "junk")) {
        static const uint8_t bin[4] = { 0xff, 0xfe, 0x00, 0x01 };
        ws_frame(c, AU_OP_TEXT, 1, "this is not json", 16);
        ws_frame(c, AU_OP_BINARY, 1, bin, sizeof bin);
        rpc_result(c, id, "{\"ok\":true}");
    } else if (au_json_string_eq(m, "big")) {
        if (!param_u64(params, "bytes", &v)) v = 0;
        if (v > ((uint64_t)1 << 30)) rpc_error(c, id, -32602, "Invalid params: bytes over 1 GiB");
        else rpc_big(c, id, v);
    } else if (au_json_string_eq(m, "die")) {
        log_line("conn %u die", c->id);
        _exit(3);   /* no atexit/LSan: the exit status must be exactly 3 */
    } else if (au_json_string_eq(m, "drop")) {
        conn_kill(c, "drop-method");
    } else if (au_json_string_eq(m, "close")) {
        if (!param_u64(params, "code", &v)) v = 1000;
        ws_close(c, (unsigned)(v & 0xFFFF), NULL, 0);
        c->state = ST_CLOSING;
        c->deadline = now_ms() + CLOSE_WAIT_MS;
    } else if (au_json_string_eq(m, "tools/list")) {
        rpc_result(c, id, "{\"tools\":[{\"name\":\"echo\",\"description\":\"echo\","
                          "\"inputSchema\":{\"type\":\"object\"}}]}");
    } else if (au_json_string_eq(m, "tools/call")) {
        rpc_result(c, id, "{\"content\":[{\"type\":\"text\",\"text\":\"called\"}]}");
    } else {
        rpc_error(c, id, -32601, "Method not found");
    }
    buf_free(&b);
}

static void rpc_message(conn *c, const char *t, size_t n) {
    au_jsonrpc r;
    int kind = au_jsonrpc_scan(t, n, &r);
    if (kind < 0) {
        log_line("conn %u invalid-json %s at %lu", c->id, r.problem ? r.problem : "?", (unsigned long)r.problem_at);
        return;
    }
    switch (kind) {
    case AU_RPC_REQUEST: rpc_request(c, &r); break;
    case AU_RPC_NOTIFICATION:
        if (au_json_string_eq(r.method, "notifications/initialized")) {
            c->initialized = 1;
            log_line("conn %u initialized", c->id);
        }
        break;
    case AU_RPC_RESPONSE: break;
    case AU_RPC_BATCH: log_line("conn %u batch (not answered)", c->id); break;
    default: log_line("conn %u not-jsonrpc %s", c->id, r.problem ? r.problem : "?"); break;
    }
}

/* ---- frame decoding (client frames: masked, any chunking) ------------------------- */
static void on_message(conn *c) {
    const char *t = (const char *)c->msg.p;
    size_t n = c->msg.len;
    if (c->msg_op == AU_OP_TEXT) {
        log_start("conn %u recv ", c->id);
        log_data(t, n > LOG_TEXT_MAX ? LOG_TEXT_MAX : n);
        if (n > LOG_TEXT_MAX) log_start("...[%lu bytes]", (unsigned long)n);
        log_end();
        if (c->state == ST_OPEN) rpc_message(c, t ? t : "", n);
    } else {
        log_line("conn %u binary %lu", c->id, (unsigned long)n);
    }
}
static void on_control(conn *c) {
    if (c->op == AU_OP_PING) {
        log_start("conn %u ping ", c->id);
        log_data(c->ctl, c->ctl_len);
        log_end();
        ws_frame(c, AU_OP_PONG, 1, c->ctl, c->ctl_len);
    } else if (c->op == AU_OP_PONG) {
        log_start("conn %u pong ", c->id);
        log_data(c->ctl, c->ctl_len);
        log_end();
    } else {   /* close */
        unsigned code = AU_CLOSE_NO_STATUS;
        if (c->ctl_len == 1) { ws_fail(c, AU_CLOSE_PROTOCOL, "close frame with a 1-byte payload"); return; }
        if (c->ctl_len >= 2) {
            code = (unsigned)c->ctl[0] << 8 | c->ctl[1];
            if (!au_ws_close_code_valid(code)) { ws_fail(c, AU_CLOSE_PROTOCOL, "close frame with an invalid code"); return; }
            if (!au_utf8_valid(c->ctl + 2, c->ctl_len - 2)) {
                ws_fail(c, AU_CLOSE_INVALID_DATA, "close reason is not valid UTF-8");
                return;
            }
        }
        log_start("conn %u close %u", c->id, code);
        if (c->ctl_len > 2) { log_start(" "); log_data(c->ctl + 2, c->ctl_len - 2); }
        log_end();
        /* echo the code (1000 when none); after our own close, just hang up */
        ws_close(c, code == AU_CLOSE_NO_STATUS ? AU_CLOSE_NORMAL : code, NULL, 0);
        conn_drain(c);
    }
}
/* first two header bytes are in: 1 if acceptable */
static int frame_check(conn *c) {
    uint8_t b0 = c->hdr[0], b1 = c->hdr[1];
    unsigned op = b0 & 0x0F, len7 = b1 & 0x7F;
    const char *bad = NULL;
    c->op = op;
    c->fin = (b0 & 0x80) != 0;
    if (b0 & 0x70) bad = "reserved bits set but no extension was negotiated";
    else if (!(b1 & 0x80)) bad = "client frame is not masked";
    else if (op >= 8) {
        if (op > AU_OP_PONG) bad = "reserved control opcode";
        else if (!c->fin) bad = "fragmented control frame";
        else if (len7 > AU_WS_MAX_CONTROL) bad = "control frame over 125 bytes";
    } else if (op > AU_OP_BINARY) bad = "reserved data opcode";
    else if (op == AU_OP_CONT && !c->in_message) bad = "continuation frame with no message to continue";
    else if (op != AU_OP_CONT && c->in_message) bad = "new data frame inside a fragmented message";
    if (bad) { ws_fail(c, AU_CLOSE_PROTOCOL, bad); return 0; }
    c->hdr_need = 2 + (len7 == 126 ? 2u : len7 == 127 ? 8u : 0u) + 4;
    return 1;
}
/* whole header is in: set up the payload; 1 if acceptable */
static int frame_begin(conn *c) {
    unsigned len7 = c->hdr[1] & 0x7F, i;
    uint64_t n = len7;
    if (len7 == 126) {
        n = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
        if (n < 126) { ws_fail(c, AU_CLOSE_PROTOCOL, "length not in its minimal form"); return 0; }
    } else if (len7 == 127) {
        for (n = 0, i = 0; i < 8; i++) n = n << 8 | c->hdr[2 + i];
        if (n >> 63) { ws_fail(c, AU_CLOSE_PROTOCOL, "64-bit length with the top bit set"); return 0; }
        if (n <= 0xFFFF) { ws_fail(c, AU_CLOSE_PROTOCOL, "length not in its minimal form"); return 0; }
    }
    memcpy(c->mask, c->hdr + c->hdr_need - 4, 4);
    c->remaining = n;
    c->frame_off = 0;
    c->hdr_have = 0;
    c->hdr_need = 2;
    c->in_frame = 1;
    if (c->op >= 8) { c->ctl_len = 0; return 1; }
    if (c->op != AU_OP_CONT) {
        c->in_message = 1;
        c->msg_op = c->op;
        c->msg.len = c->msg.off = 0;
        c->utf8.state = AU_UTF8_ACCEPT;
    }
    if (n > MAX_MESSAGE - c->msg.len) { ws_fail(c, AU_CLOSE_TOO_BIG, "message over 1 GiB"); return 0; }
    /* reserve the frame up front: one big frame costs no regrowth, and
       untouched pages cost nothing until the bytes arrive */
    if (buf_reserve(&c->msg, (size_t)n) != 0) { ws_fail(c, AU_CLOSE_TOO_BIG, "out of memory for the message"); return 0; }
    return 1;
}
static void ws_input(conn *c, const uint8_t *p, size_t n) {
    for (;;) {
        size_t take;
        if (c->state != ST_OPEN && c->state != ST_CLOSING) return;
        if (!c->in_frame) {
            if (!n) return;
            while (c->hdr_have < c->hdr_need && n) {
                c->hdr[c->hdr_have++] = *p++;
                n--;
                if (c->hdr_have == 2 && !frame_check(c)) return;
            }
            if (c->hdr_have < c->hdr_need) return;
            if (!frame_begin(c)) return;
        }
        take = c->remaining < n ? (size_t)c->remaining : n;
        if (take == 0) {
            /* empty payload: nothing to copy (and msg.p may still be NULL) */
        } else if (c->op >= 8) {
            memcpy(c->ctl + c->ctl_len, p, take);
            au_ws_mask(c->ctl + c->ctl_len, take, c->mask, c->frame_off);
            c->ctl_len += take;
        } else {
            uint8_t *dst = c->msg.p + c->msg.len;
            memcpy(dst, p, take);
            au_ws_mask(dst, take, c->mask, c->frame_off);
            c->msg.len += take;
            if (c->msg_op == AU_OP_TEXT && au_utf8_feed(&c->utf8, dst, take) != take) {
                ws_fail(c, AU_CLOSE_INVALID_DATA, "text message is not valid UTF-8");
                return;
            }
        }
        c->frame_off += take;
        c->remaining -= take;
        p += take;
        n -= take;
        if (c->remaining) return;   /* all input used, frame continues */
        c->in_frame = 0;
        if (c->op >= 8) on_control(c);
        else if (c->fin) {
            c->in_message = 0;
            if (c->msg_op == AU_OP_TEXT && c->utf8.state != AU_UTF8_ACCEPT) {
                ws_fail(c, AU_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
                return;
            }
            on_message(c);
            buf_clear(&c->msg);
        }
    }
}

/* ---- opening handshake (server side) ---------------------------------------------- */
static int ieq(const char *s, size_t n, const char *word) {   /* word is lowercase */
    size_t i;
    for (i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z') ch += 32;
        if (!word[i] || ch != word[i]) return 0;
    }
    return word[n] == 0;
}
/* comma-separated list holds word (case-insensitive if fold) */
static int list_has(const char *v, size_t n, const char *word, int fold) {
    size_t i = 0;
    while (i < n) {
        size_t s, e;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        s = i;
        while (i < n && v[i] != ',') i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e > s && (fold ? ieq(v + s, e - s, word)
                           : (strlen(word) == e - s && memcmp(v + s, word, e - s) == 0)))
            return 1;
    }
    return 0;
}
static int is_tchar(int ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

typedef struct request {
    char key[32];
    int keys, upgrade, connection, version, host, proto_match;
    const char *bad;         /* first problem, NULL if a valid upgrade */
} request;

/* Parses (and logs) the head; head ends with its blank line. */
static void parse_head(conn *c, const char *h, size_t n, request *rq) {
    size_t pos = 0;
    int first = 1;
    memset(rq, 0, sizeof *rq);
    while (pos < n) {
        const char *l = h + pos, *nl = (const char *)memchr(l, '\n', n - pos);
        size_t ln = nl ? (size_t)(nl - l) : n - pos;
        pos += ln + 1;
        if (ln && l[ln - 1] == '\r') ln--;
        if (first) {
            const char *sp;
            first = 0;
            log_start("conn %u request ", c->id);
            log_data(l, ln);
            log_end();
            sp = ln > 4 ? (const char *)memchr(l + 4, ' ', ln - 4) : NULL;
            if (ln < 4 || memcmp(l, "GET ", 4) != 0) rq->bad = "method is not GET";
            else if (!sp || sp == l + 4 || (size_t)(l + ln - (sp + 1)) != 8 || memcmp(sp + 1, "HTTP/1.1", 8) != 0)
                rq->bad = "malformed request line";
            continue;
        }
        if (ln == 0) break;   /* end of head */
        {
            const char *colon = (const char *)memchr(l, ':', ln), *v;
            size_t nn, vn, i;
            if (!colon || l[0] == ' ' || l[0] == '\t') { if (!rq->bad) rq->bad = "malformed header line"; continue; }
            nn = (size_t)(colon - l);
            for (i = 0; i < nn; i++)
                if (!is_tchar((unsigned char)l[i])) break;
            if (nn == 0 || i < nn) { if (!rq->bad) rq->bad = "malformed header name"; continue; }
            v = colon + 1;
            vn = ln - nn - 1;
            while (vn && (*v == ' ' || *v == '\t')) { v++; vn--; }
            while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
            if (ieq(l, nn, "host")) rq->host = 1;
            else if (ieq(l, nn, "upgrade")) { if (list_has(v, vn, "websocket", 1)) rq->upgrade = 1; }
            else if (ieq(l, nn, "connection")) { if (list_has(v, vn, "upgrade", 1)) rq->connection = 1; }
            else if (ieq(l, nn, "sec-websocket-version")) { if (vn == 2 && memcmp(v, "13", 2) == 0) rq->version = 1; }
            else if (ieq(l, nn, "sec-websocket-key")) {
                uint8_t raw[24];
                rq->keys++;
                if (vn == AU_WS_KEY_LEN && au_base64_decode(v, vn, raw) == 16) {
                    memcpy(rq->key, v, vn);
                    rq->key[vn] = 0;
                } else if (!rq->bad) rq->bad = "Sec-WebSocket-Key is not base64 of 16 bytes";
            } else {
                /* Sec-WebSocket-Protocol and custom headers: tests assert on these */
                if (ieq(l, nn, "sec-websocket-protocol") && g.subprotocol && list_has(v, vn, g.subprotocol, 0))
                    rq->proto_match = 1;
                log_start("conn %u header ", c->id);
                log_data(l, nn);
                log_start(": ");
                log_data(v, vn);
                log_end();
            }
        }
    }
    if (rq->bad) return;
    if (!rq->host) rq->bad = "no Host header";
    else if (!rq->upgrade) rq->bad = "no Upgrade: websocket";
    else if (!rq->connection) rq->bad = "Connection does not list upgrade";
    else if (!rq->version) rq->bad = "Sec-WebSocket-Version is not 13";
    else if (rq->keys != 1 || !rq->key[0]) rq->bad = "need exactly one valid Sec-WebSocket-Key";
}

static void http_reply(conn *c, int status, const char *reason, const char *body) {
    buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %lu\r\n", status, reason,
               (unsigned long)strlen(body) + 1);
    if (status == 400) buf_puts(&c->out, "Sec-WebSocket-Version: 13\r\n");
    buf_puts(&c->out, "Connection: close\r\n\r\n");
    buf_puts(&c->out, body);
    buf_puts(&c->out, "\n");
    conn_drain(c);
}
static void send_101(conn *c, const char *accept, int proto) {
    buf_printf(&c->out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n", accept);
    if (proto) buf_printf(&c->out, "Sec-WebSocket-Protocol: %s\r\n", g.subprotocol);
    buf_puts(&c->out, "\r\n");
}

/* the request head is complete (head_len bytes, 0 when over the cap) */
static void head_done(conn *c, size_t head_len) {
    request rq;
    char acc[29];
    if (head_len) parse_head(c, (const char *)c->in.p, head_len, &rq);
    else {
        memset(&rq, 0, sizeof rq);
        rq.bad = "request head over 16 KiB";
    }
    switch (c->mode) {
    case M_HTTP502:
    case M_HTTP503: {
        int s = c->mode == M_HTTP502 ? 502 : 503;
        log_line("conn %u http %d", c->id, s);
        http_reply(c, s, s == 502 ? "Bad Gateway" : "Service Unavailable",
                   s == 502 ? "502 Bad Gateway (testd)" : "503 Service Unavailable (testd)");
        break;
    }
    case M_BAD_ACCEPT:
        /* a well-formed accept for some other key, so only the value is wrong */
        au_ws_accept_for_key(rq.key, strlen(rq.key), acc);
        acc[0] = acc[0] == 'A' ? 'B' : 'A';
        send_101(c, acc, rq.proto_match);
        log_line("conn %u bad-accept %s", c->id, acc);
        c->state = ST_HANG;
        break;
    case M_ENDLESS_HEAD:
        buf_puts(&c->out, "HTTP/1.1 101 Switching Protocols\r\n");
        c->state = ST_ENDLESS;
        break;
    case M_ENDLESS_LINE:
        buf_puts(&c->out, "HTTP/1.1 101 Switching Protocols\r\nX-Long: ");
        c->state = ST_ENDLESS;
        break;
    default:   /* normal */
        if (rq.bad) {
            log_line("conn %u reject 400 %s", c->id, rq.bad);
            http_reply(c, 400, "Bad Request", rq.bad);
            break;
        }
        au_ws_accept_for_key(rq.key, strlen(rq.key), acc);
        send_101(c, acc, rq.proto_match);
        c->state = ST_OPEN;
        c->hdr_need = 2;
        log_line("conn %u open%s%s", c->id, rq.proto_match ? " subprotocol " : "",
                 rq.proto_match ? g.subprotocol : "");
        /* frames the client sent right behind its head */
        if (c->in.len > head_len) {
            buf rest = c->in;
            memset(&c->in, 0, sizeof c->in);
            ws_input(c, rest.p + head_len, rest.len - head_len);
            buf_free(&rest);
        }
        break;
    }
    buf_free(&c->in);
}
static void head_input(conn *c, const uint8_t *p, size_t n) {
    size_t i, end = 0;
    buf_put(&c->in, p, n);
    /* the head ends at the first empty line ("\r\n\r\n", tolerate "\n\n") */
    for (i = 0; i < c->in.len && !end; i++) {
        if (c->in.p[i] != '\n') continue;
        if (i + 1 < c->in.len && c->in.p[i + 1] == '\n') end = i + 2;
        else if (i + 2 < c->in.len && c->in.p[i + 1] == '\r' && c->in.p[i + 2] == '\n') end = i + 3;
    }
    if (end && end <= HEAD_MAX) head_done(c, end);
    else if (end || c->in.len > HEAD_MAX) head_done(c, 0);
}

/* ---- listening socket ------------------------------------------------------------------ */
static int open_listener(const char *host, unsigned port, const char **why) {
    struct addrinfo hints, *res = NULL, *ai;
    char ps[16];
    int fd = -1, rc, one = 1;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(ps, sizeof ps, "%u", port);
    rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) { *why = gai_strerror(rc); return -1; }
    *why = "no usable address";
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) { *why = strerror(errno); continue; }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) break;
        *why = strerror(errno);
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}
static unsigned bound_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* 0 when there was nothing (more) to accept */
static int accept_one(void) {
    conn *c;
    int fd = accept(g.lfd, NULL, NULL), one = 1;
    if (fd < 0) return errno == ECONNABORTED || errno == EINTR;   /* else EAGAIN or fatal */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c = (conn *)calloc(1, sizeof *c);
    if (!c) { close(fd); return 0; }
    c->fd = fd;
    c->id = ++g.next_id;
    c->mode = g.mode;
    c->state = g.mode == M_HANG ? ST_HANG : ST_HEAD;
    c->hdr_need = 2;
    log_line("conn %u accept %s", c->id, mode_names[g.mode]);
    if (g.mode == M_ACCEPT_CLOSE) {
        log_line("conn %u disconnect accept-close", c->id);
        close(fd);
        free(c);
        return 1;
    }
    if (g.nconns == g.capconns) {
        size_t cap = g.capconns ? g.capconns * 2 : 16;
        conn **nc = (conn **)realloc(g.conns, cap * sizeof *nc);
        if (!nc) { close(fd); free(c); return 0; }
        g.conns = nc;
        g.capconns = cap;
    }
    g.conns[g.nconns++] = c;
    return 1;
}

/* ---- socket I/O --------------------------------------------------------------------------- */
static void conn_write(conn *c);
static void conn_read(conn *c) {
    static uint8_t chunk[READ_CHUNK];
    ssize_t r = recv(c->fd, chunk, sizeof chunk, 0);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        conn_kill(c, errno == ECONNRESET ? "reset" : strerror(errno));
        return;
    }
    if (r == 0) {   /* a half-closed peer may still read: last try at our close reply */
        if (buf_pending(&c->out)) conn_write(c);
        conn_kill(c, c->state == ST_DRAIN ? "closed" : "eof");
        return;
    }
    switch (c->state) {
    case ST_HEAD: head_input(c, chunk, (size_t)r); break;
    case ST_OPEN:
    case ST_CLOSING: ws_input(c, chunk, (size_t)r); break;
    default: break;   /* hang, endless, drain: discard */
    }
}
static void conn_write(conn *c) {
    while (buf_pending(&c->out) && c->state != ST_DEAD) {
        ssize_t w = send(c->fd, c->out.p + c->out.off, buf_pending(&c->out), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            conn_kill(c, errno == ECONNRESET || errno == EPIPE ? "reset" : strerror(errno));
            return;
        }
        buf_consume(&c->out, (size_t)w);
    }
    /* all out: a draining connection half-closes and waits for the peer's EOF */
    if (c->state == ST_DRAIN && !c->shut && !buf_pending(&c->out)) {
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
    }
}

/* ---- control commands ---------------------------------------------------------------------- */
static const char *set_mode(int m) {
    if (m == M_REFUSE) {
        if (g.lfd >= 0) { close(g.lfd); g.lfd = -1; }
    } else if (g.lfd < 0) {
        const char *why = NULL;
        g.lfd = open_listener(g.host, g.port, &why);
        if (g.lfd < 0) return why;
    }
    g.mode = m;
    return NULL;
}
static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}
static void command(char *line) {
    char *arg = strchr(line, ' ');
    size_t i, n = 0;
    if (arg) *arg++ = 0;
    else arg = line + strlen(line);
    log_start("cmd %s%s", line, *arg ? " " : "");
    log_data(arg, strlen(arg));
    log_end();

    if (strcmp(line, "mode") == 0) {
        int m;
        const char *why;
        for (m = 0; m < M_COUNT; m++)
            if (strcmp(arg, mode_names[m]) == 0) break;
        if (m == M_COUNT) { reply("err unknown mode %s", arg); return; }
        why = set_mode(m);
        if (why) reply("err cannot listen again: %s", why);
        else reply("ok");
    } else if (strcmp(line, "freeze") == 0) {
        if (!g.frozen) { g.frozen = 1; g.frozen_at = now_ms(); }
        reply("ok");
    } else if (strcmp(line, "thaw") == 0) {
        if (g.frozen) {   /* time stood still for timeouts, as under SIGSTOP */
            int64_t d = now_ms() - g.frozen_at;
            for (i = 0; i < g.nconns; i++)
                if (g.conns[i]->deadline) g.conns[i]->deadline += d;
            g.frozen = 0;
        }
        reply("ok");
    } else if (strcmp(line, "drop") == 0) {
        int rst = strcmp(arg, "rst") == 0;
        if (*arg && !rst) { reply("err usage: drop [rst]"); return; }
        for (i = 0; i < g.nconns; i++) {
            g.conns[i]->rst = rst;
            conn_kill(g.conns[i], rst ? "drop-rst" : "drop");
        }
        reply("ok");
    } else if (strcmp(line, "close") == 0) {
        char *end;
        unsigned long code = strtoul(arg, &end, 10);
        const char *reason = end;
        if (end == arg || code > 65535 || (*end && *end != ' ')) { reply("err usage: close CODE [REASON]"); return; }
        if (*reason == ' ') reason++;
        if (strlen(reason) > AU_WS_MAX_CONTROL - 2) { reply("err reason over 123 bytes"); return; }
        for (i = 0; i < g.nconns; i++) {
            conn *c = g.conns[i];
            if (c->state != ST_OPEN) continue;
            ws_close(c, (unsigned)code, reason, strlen(reason));
            c->state = ST_CLOSING;
            c->deadline = now_ms() + CLOSE_WAIT_MS;
        }
        reply("ok");
    } else if (strcmp(line, "ping") == 0 || strcmp(line, "send") == 0 || strcmp(line, "sendbin") == 0) {
        unsigned op = line[1] == 'i' ? AU_OP_PING : line[4] == 'b' ? AU_OP_BINARY : AU_OP_TEXT;
        size_t len = strlen(arg);
        if (op == AU_OP_PING && len > AU_WS_MAX_CONTROL) { reply("err ping payload over 125 bytes"); return; }
        for (i = 0; i < g.nconns; i++)
            if (g.conns[i]->state == ST_OPEN) ws_frame(g.conns[i], op, 1, arg, len);
        reply("ok");
    } else if (strcmp(line, "sendraw") == 0) {
        buf raw = { 0 };
        int hi = -1;
        for (i = 0; arg[i]; i++) {
            int v = hexval((unsigned char)arg[i]);
            if (arg[i] == ' ' || arg[i] == '\t') continue;
            if (v < 0) { buf_free(&raw); reply("err sendraw wants hex digits"); return; }
            if (hi < 0) hi = v;
            else { uint8_t byte = (uint8_t)(hi << 4 | v); buf_put(&raw, &byte, 1); hi = -1; }
        }
        if (hi >= 0) { buf_free(&raw); reply("err odd number of hex digits"); return; }
        for (i = 0; i < g.nconns; i++) {
            conn *c = g.conns[i];
            if (c->state == ST_OPEN || c->state == ST_CLOSING || c->state == ST_HANG) buf_put(&c->out, raw.p, raw.len);
        }
        buf_free(&raw);
        reply("ok");
    } else if (strcmp(line, "conns") == 0) {
        for (i = 0; i < g.nconns; i++)
            if (g.conns[i]->state == ST_OPEN) n++;
        reply("ok %lu", (unsigned long)n);
    } else if (strcmp(line, "initerror") == 0 && (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0)) {
        g.init_error = strcmp(arg, "on") == 0;
        reply("ok");
    } else if (strcmp(line, "quit") == 0) {
        reply("ok");
        g.quit = 1;
    } else if (line[0]) {
        reply("err unknown command %s", line);
    }
}
static void stdin_read(void) {
    char chunk[65536];
    ssize_t r = read(0, chunk, sizeof chunk);   /* one read after POLLIN never blocks */
    size_t start = 0, i;
    if (r < 0) { if (errno != EINTR && errno != EAGAIN) g.stdin_open = 0; return; }
    if (r == 0) { g.stdin_open = 0; return; }   /* EOF: keep serving */
    buf_put(&g.cmdbuf, chunk, (size_t)r);
    for (i = 0; i < g.cmdbuf.len && !g.quit; i++) {
        if (g.cmdbuf.p[i] != '\n') continue;
        g.cmdbuf.p[i] = 0;
        if (i > start && g.cmdbuf.p[i - 1] == '\r') g.cmdbuf.p[i - 1] = 0;
        command((char *)g.cmdbuf.p + start);
        start = i + 1;
    }
    memmove(g.cmdbuf.p, g.cmdbuf.p + start, g.cmdbuf.len - start);
    g.cmdbuf.len -= start;
}

/* ---- timers --------------------------------------------------------------------------------- */
static void run_timers(int64_t now) {
    size_t i = 0;
    while (i < g.nsleepers) {
        sleeper *s = &g.sleepers[i];
        conn *c;
        if (s->due > now) { i++; continue; }
        c = conn_find(s->conn_id);
        if (c && c->state == ST_OPEN) {   /* a connection that died is simply not answered */
            au_tok id;
            char res[48];
            id.p = s->id;
            id.len = s->id_len;
            snprintf(res, sizeof res, "{\"slept\":%llu}", (unsigned long long)s->ms);
            rpc_result(c, id, res);
        }
        free(s->id);
        g.sleepers[i] = g.sleepers[--g.nsleepers];
    }
    if (g.frozen) return;
    for (i = 0; i < g.nconns; i++) {
        conn *c = g.conns[i];
        if ((c->state == ST_CLOSING || c->state == ST_DRAIN) && c->deadline && c->deadline <= now)
            conn_kill(c, c->state == ST_CLOSING ? "close-timeout" : "drain-timeout");
    }
}
static int poll_timeout(int64_t now) {
    int64_t t = 1000;   /* wake up now and then to notice signals */
    size_t i;
    for (i = 0; i < g.nsleepers; i++)
        if (g.sleepers[i].due - now < t) t = g.sleepers[i].due - now;
    if (!g.frozen)
        for (i = 0; i < g.nconns; i++)
            if (g.conns[i]->deadline && (g.conns[i]->state == ST_CLOSING || g.conns[i]->state == ST_DRAIN) &&
                g.conns[i]->deadline - now < t)
                t = g.conns[i]->deadline - now;
    return t < 0 ? 0 : (int)t;
}

/* endless modes: top up the output, at most FILL_CHUNK per turn */
static void feed_endless(conn *c) {
    static char chunk[FILL_CHUNK];
    static size_t head_len;
    if (!head_len) {   /* whole "X-Filler: aaa...\r\n" lines */
        static const char start[] = "X-Filler: ";
        size_t line = 100, k;
        for (k = 0; k + line <= sizeof chunk; k += line) {
            memcpy(chunk + k, start, sizeof start - 1);
            memset(chunk + k + sizeof start - 1, 'a', line - (sizeof start - 1) - 2);
            chunk[k + line - 2] = '\r';
            chunk[k + line - 1] = '\n';
        }
        head_len = k;
    }
    if (buf_pending(&c->out) >= FILL_CHUNK) return;
    if (c->mode == M_ENDLESS_HEAD) buf_put(&c->out, chunk, head_len);
    else {
        buf_reserve(&c->out, FILL_CHUNK);
        if (c->out.cap - c->out.len >= FILL_CHUNK) {
            memset(c->out.p + c->out.len, 'a', FILL_CHUNK);
            c->out.len += FILL_CHUNK;
        }
    }
}

static void reap(void) {
    size_t i = 0;
    while (i < g.nconns) {
        if (g.conns[i]->state == ST_DEAD) {
            conn_destroy(g.conns[i]);
            g.conns[i] = g.conns[--g.nconns];
        } else i++;
    }
}

static void on_signal(int sig) { g_signal = sig; }

static void usage(void) {
    fprintf(stderr, "usage: testd [--host H] [--port N] [--mode MODE] [--mcp-strict] [--log FILE]\n"
                    "             [--instance NAME] [--subprotocol NAME]   (see the top of tools/testd.c)\n");
    exit(2);
}

int main(int argc, char **argv) {
    struct sigaction sa;
    struct pollfd *pfds = NULL;
    conn **pmap = NULL;
    size_t pcap = 0;
    const char *why = NULL, *logpath = NULL;
    int i, initial_mode = M_NORMAL;

    memset(&g, 0, sizeof g);
    g.host = "127.0.0.1";
    g.lfd = -1;
    g.stdin_open = 1;
    snprintf(g.instance, sizeof g.instance, "%ld", (long)getpid());
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char name[32];
        const char *eq = strchr(a, '=');
        /* --opt value and --opt=value */
        if (eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            v = eq + 1;
            a = name;
        }
        if (strcmp(a, "--mcp-strict") == 0 && !v) { g.strict = 1; continue; }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) usage();
        if (!v) {
            if (i + 1 >= argc) usage();
            v = argv[++i];
        }
        if (strcmp(a, "--host") == 0) g.host = v;
        else if (strcmp(a, "--port") == 0) {
            char *end;
            unsigned long p = strtoul(v, &end, 10);
            if (*end || end == v || p > 65535) usage();
            g.port = (unsigned)p;
        } else if (strcmp(a, "--mode") == 0) {
            for (initial_mode = 0; initial_mode < M_COUNT; initial_mode++)
                if (strcmp(v, mode_names[initial_mode]) == 0) break;
            if (initial_mode == M_COUNT) usage();
        } else if (strcmp(a, "--log") == 0) logpath = v;
        else if (strcmp(a, "--instance") == 0) snprintf(g.instance, sizeof g.instance, "%s", v);
        else if (strcmp(a, "--subprotocol") == 0) g.subprotocol = v;
        else usage();
    }
    if (logpath) {
        g.log = fopen(logpath, "a");
        if (!g.log) { fprintf(stderr, "testd: %s: %s\n", logpath, strerror(errno)); return 1; }
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;   /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a test script that stops reading stdout must not kill us */

    /* always bind first so "listening PORT" names a real port, even for
       --mode refuse --port 0; refuse then closes it */
    g.lfd = open_listener(g.host, g.port, &why);
    if (g.lfd < 0) { fprintf(stderr, "testd: cannot listen on %s:%u: %s\n", g.host, g.port, why); return 1; }
    g.port = bound_port(g.lfd);
    set_mode(initial_mode);
    log_line("start instance %s pid %ld port %u mode %s", g.instance, (long)getpid(), g.port, mode_names[g.mode]);
    printf("listening %u\n", g.port);
    fflush(stdout);

    while (!g.quit && !g_signal) {
        size_t n = 0, k, need;
        int64_t now = now_ms();
        int r, stdin_idx = -1, lfd_idx = -1;
        run_timers(now);
        if (!g.frozen)
            for (k = 0; k < g.nconns; k++)
                if (g.conns[k]->state == ST_ENDLESS) feed_endless(g.conns[k]);
        reap();

        need = g.nconns + 2;
        if (need > pcap) {
            pfds = (struct pollfd *)realloc(pfds, need * sizeof *pfds);
            pmap = (conn **)realloc(pmap, need * sizeof *pmap);
            if (!pfds || !pmap) { fprintf(stderr, "testd: out of memory\n"); return 1; }
            pcap = need;
        }
        if (g.stdin_open) { stdin_idx = (int)n; pfds[n].fd = 0; pfds[n].events = POLLIN; pmap[n++] = NULL; }
        if (g.lfd >= 0 && !g.frozen) { lfd_idx = (int)n; pfds[n].fd = g.lfd; pfds[n].events = POLLIN; pmap[n++] = NULL; }
        for (k = 0; k < g.nconns; k++) {
            conn *c = g.conns[k];
            /* frozen: fd -1, or poll() would still report POLLHUP and spin */
            pfds[n].fd = g.frozen ? -1 : c->fd;
            pfds[n].events = (short)(POLLIN | (buf_pending(&c->out) ? POLLOUT : 0));
            pmap[n++] = c;
        }
        for (k = 0; k < n; k++) pfds[k].revents = 0;
        r = poll(pfds, (nfds_t)n, poll_timeout(now));
        if (r < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "testd: poll: %s\n", strerror(errno));
            return 1;
        }
        /* connections first, then accepts, then commands: commands may close
           the listener or kill connections, which only marks them dead */
        for (k = 0; k < n; k++) {
            conn *c = pmap[k];
            if (!c || g.frozen || c->state == ST_DEAD) continue;
            if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) conn_read(c);
            if (c->state != ST_DEAD && buf_pending(&c->out)) conn_write(c);   /* answers go out at once */
            else if (c->state == ST_DRAIN) conn_write(c);
        }
        if (lfd_idx >= 0 && (pfds[lfd_idx].revents & POLLIN)) {
            int a;
            for (a = 0; a < 64 && accept_one(); a++) {}
        }
        if (stdin_idx >= 0 && (pfds[stdin_idx].revents & (POLLIN | POLLHUP | POLLERR))) stdin_read();
        /* output queued by commands or timers goes out on the next turn */
    }

    log_line("exit %s", g.quit ? "quit" : g_signal == SIGINT ? "SIGINT" : "SIGTERM");
    for (i = 0; (size_t)i < g.nconns; i++) conn_destroy(g.conns[i]);
    for (i = 0; (size_t)i < g.nsleepers; i++) free(g.sleepers[i].id);
    free(g.conns);
    free(g.sleepers);
    free(pfds);
    free(pmap);
    buf_free(&g.cmdbuf);
    if (g.lfd >= 0) close(g.lfd);
    if (g.log) fclose(g.log);
    return 0;
}
