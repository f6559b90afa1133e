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
                       http401         read the head, answer 401 with
                                       WWW-Authenticate, close
                       no-subprotocol  400 when the client offers any
                                       subprotocol, else normal
                       echo            handshake, then a fast echo for the
                                       benchmark (tools/bench): see ECHO MODE
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
     initerror on|off|already  refuse initialize with error -32603 (or stop
                     refusing); already: -32600 "Server already initialized",
                     as a single-session server that still holds one says
     initdelay MS    answer initialize MS ms late (0: at once); pings and
                     other requests are answered meanwhile
     initdrop N      the next N initialize requests close their TCP
                     connection unanswered, as a daemon that crashes on boot
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

   ECHO MODE (--mode echo, or "mode echo" for new connections)
     The daemon of tools/bench/bench.c, built to cost as little as possible
     per message: every binary message comes back as binary and every text
     message as text, byte for byte, with one exception that lets a shim in
     between see an answer: a request whose first members are, in this
     order and with no spaces, {"jsonrpc":"2.0","id":ID,"method":"M","params":P}
     is answered as {"jsonrpc":"2.0","id":ID,"result":P} (and one without
     params as "result":{}). That rewrite moves only the bytes before P, in
     place; P is never copied. Nothing is logged per message and text is not
     checked for UTF-8; frame rules, pings and closes are as in normal mode.
     A large payload is received straight into the message buffer, the
     answer's frame header is written into room kept in front of it, and
     that buffer becomes the output buffer (no copy of the message at all);
     echo connections keep their buffers for the next message.

   CONFORMANCE MODE
     testd --conformance [--section9-scale quick|full] [--report FILE]
           [--cases LIST] [--host H] [--port N] [--log FILE]
     Plays the Autobahn|Testsuite fuzzing-server cases of sections 1-7, 9
     and 10 (301 cases; tools/conformance.py runs them against
     build/echo_client) and judges the client as the fuzzer does. The client
     drives it with Autobahn's protocol, one connection per case:
       /getCaseCount                   text message with the number of cases
       /runCase?case=N&agent=A         plays case N (1-based), or
       /runCase?casetuple=6.4.1&agent=A
       /getCaseInfo?case=N             {"id": ..., "description": ...}
       /getCaseStatus?case=N&agent=A   {"behavior": "OK"}
       /updateReports?agent=A          writes the --report file
     Each case ends with a line on stdout:
       result<TAB>ID<TAB>VERDICT<TAB>CLOSE<TAB>SECONDS<TAB>NOTE<TAB>DESCRIPTION
     VERDICT is OK, NON-STRICT, INFO or FAILED; CLOSE is OK, FAILED (the wrong
     side closed), UNCLEAN or WRONG CODE. A case is FAILED unless both the
     events (messages and pongs, in order) and the close are right, and any
     client frame the fuzzer would reject fails it too. --report FILE (JSON,
     every case, NOT RUN for those never played) is written on
     /updateReports and at exit. --section9-scale quick divides section 9's
     message and fragment sizes by 16 and its round trips by 10; full (the
     default) plays the suite's sizes. --cases "1.*,6.4.*,7.1.6" plays only
     those. The control channel (stdin) still works; "quit" ends the run.
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
    M_BAD_ACCEPT, M_ENDLESS_HEAD, M_ENDLESS_LINE, M_ECHO, M_HTTP401, M_NO_SUBPROTOCOL, M_COUNT
};
static const char *const mode_names[M_COUNT] = {
    "normal", "refuse", "accept-close", "http502", "http503", "hang-handshake",
    "bad-accept", "endless-head", "endless-line", "echo", "http401", "no-subprotocol"
};
#define ECHO_ROOM 16                         /* echo mode: room for a frame header before a message */
#define ECHO_DIRECT_MIN ((uint64_t)16 << 10) /* echo mode: payloads this big are received in place */

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
typedef struct buf { uint8_t *p; size_t off, len, cap; int keep; } buf;   /* keep: never give memory back */

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
    if (b->cap > ((size_t)1 << 20) && !b->keep) {   /* give big message memory back */
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
    /* output split into separate writes (conformance cases chop their
       frames): absolute stream offsets at which a write must end */
    uint64_t sent;
    uint64_t *cuts;
    size_t cut_head, cut_len, cut_cap;
    struct ccase *cs;        /* conformance case played on this connection */
} conn;

typedef struct sleeper {     /* a pending "sleep" answer, or a late initialize */
    unsigned conn_id;
    int init;
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
    int init_error;      /* "initerror on": initialize is refused; 2: "already initialized" */
    uint64_t init_delay; /* "initdelay MS" */
    unsigned init_drop;  /* "initdrop N": initialize requests still to drop */
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
static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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
static void cf_finish(conn *c, const char *why);
static void conn_kill(conn *c, const char *why) {
    if (c->state == ST_DEAD) return;
    log_line("conn %u disconnect %s", c->id, why);
    c->state = ST_DEAD;
    if (c->cs) cf_finish(c, why);
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
    free(c->cuts);
    free(c->cs);
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
static void cf_violation(conn *c, const char *why);
static void ws_fail(conn *c, unsigned code, const char *why) {
    log_line("conn %u error %u %s", c->id, code, why);
    if (c->cs) cf_violation(c, why);
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

static void add_sleeper(conn *c, au_tok id, uint64_t ms, int init) {
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
    s->init = init;
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

static void init_result(conn *c, au_tok id) {
    buf b = { 0 };
    buf_puts(&b, "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"tools\":{\"listChanged\":true},"
                 "\"resources\":{\"subscribe\":true,\"listChanged\":true},\"prompts\":{\"listChanged\":true},"
                 "\"logging\":{}},\"serverInfo\":{\"name\":\"testd\",\"version\":\"");
    buf_json_escape(&b, g.instance);
    buf_puts(&b, "\"}}");
    buf_put(&b, "", 1);
    rpc_result(c, id, (const char *)b.p);
    buf_free(&b);
}
static void rpc_request(conn *c, const au_jsonrpc *r) {
    au_tok id = r->id, m = r->method, params = r->params;
    uint64_t v = 0;
    buf b = { 0 };

    if (g.strict && !c->init_received && !au_json_string_eq(m, "initialize") && !au_json_string_eq(m, "ping")) {
        rpc_error(c, id, -32002, "Server not initialized");
        return;
    }
    if (au_json_string_eq(m, "initialize") && g.init_drop) {
        g.init_drop--;
        conn_kill(c, "initdrop");
    } else if (au_json_string_eq(m, "initialize") && g.init_error == 2) {
        c->init_received = c->initialized = 1;     /* it claims to hold the session: act like it */
        rpc_error(c, id, -32600, "Invalid Request: Server already initialized");
    } else if (au_json_string_eq(m, "initialize") && g.init_error) {
        rpc_error(c, id, -32603, "initialize refused by the test daemon");
    } else if (au_json_string_eq(m, "initialize") && g.init_delay) {
        c->init_received = 1;
        add_sleeper(c, id, g.init_delay, 1);
    } else if (au_json_string_eq(m, "initialize")) {
        c->init_received = 1;
        init_result(c, id);
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
        else add_sleeper(c, id, v, 0);
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

/* ---- conformance mode: the Autobahn|Testsuite fuzzing server ------------------------
   testd --conformance plays the cases of sections 1-7, 9 and 10 of
   Autobahn|Testsuite's fuzzing server (crossbario/autobahn-testsuite b8a5120,
   scoring as in its case.py on autobahn-python 0.10.9) against a client,
   one case per connection, and judges what the client sends back. A case is
   a script: frames written with the suite's chopping into TCP writes
   (one chop / frame-wise / n bytes per write), pauses between parts, and
   the fuzzer's timers ("kill after t": close 1001 Going Away; "close after
   t": an empty close). What the client sends (messages and pongs, in order)
   is compared with the expected lists; the close is judged on who closed,
   whether the handshake was clean and the client's close code. Every client
   frame is also held to the fuzzer's own rules (masked, minimal length, no
   RSV, valid opcodes and close codes, valid UTF-8 in text): a break fails
   the case. */
static int hexval(int ch);
#define CONF_OPEN_MS 5000                    /* the fuzzer's opening handshake timeout */
#define CHOP_GAP_US 100                      /* pause between chopped writes */
#define CONF_MAX_ITEMS 12

enum { V_OK, V_NON_STRICT, V_INFO, V_FAILED, V_NOT_RUN };
static const char *const v_names[] = { "OK", "NON-STRICT", "INFO", "FAILED", "NOT RUN" };
enum { CV_OK, CV_FAILED, CV_UNCLEAN, CV_WRONG_CODE, CV_NONE };
static const char *const cv_names[] = { "OK", "FAILED", "UNCLEAN", "WRONG CODE", "-" };
enum { CH_MERGE = 0, CH_SYNC = -1 };         /* chop: one write with the rest / own write; n > 0: n-byte writes */

/* A payload: pat[0..n) repeated and cut to len bytes, starting off bytes in.
   Covers every payload of the suite, from "Hello, world!" to 16 MiB of
   "BAsd7&jh23", without holding a copy. */
typedef struct pl { const uint8_t *pat; size_t n, off, len; } pl;

static pl pl_bytes(const void *p, size_t n) {
    pl x;
    x.pat = (const uint8_t *)p;
    x.n = n;
    x.off = 0;
    x.len = n;
    return x;
}
static pl pl_str(const char *s) { return pl_bytes(s, strlen(s)); }
static pl pl_rep(const char *pat, size_t n, size_t len) {
    pl x = pl_bytes(pat, n);
    x.len = len;
    return x;
}
static pl pl_sub(pl p, size_t off, size_t len) {
    p.off += off;
    p.len = len;
    return p;
}
static uint8_t pl_at(const pl *p, size_t i) { return p->pat[(p->off + i) % p->n]; }
/* one period, then doubling copies (every copied prefix is whole periods) */
static void pl_write(const pl *p, uint8_t *dst) {
    size_t have = 0;
    while (have < p->len && have < p->n) { dst[have] = pl_at(p, have); have++; }
    while (have < p->len) {
        size_t k = have < p->len - have ? have : p->len - have;
        memcpy(dst + have, dst, k);
        have += k;
    }
}
static int pl_equal(const pl *p, const uint8_t *d, size_t n) {
    size_t have = 0;
    if (n != p->len) return 0;
    while (have < n && have < p->n) {
        if (d[have] != pl_at(p, have)) return 0;
        have++;
    }
    while (have < n) {
        size_t k = have < n - have ? have : n - have;
        if (memcmp(d + have, d, k) != 0) return 0;
        have += k;
    }
    return 1;
}

typedef struct item { char kind; pl p; } item;          /* 'T' text, 'B' binary, 'P' pong */
typedef struct xlist { int defined, alive, n, got; item it[CONF_MAX_ITEMS]; } xlist;

typedef struct cdef {
    char id[12];
    int s, x, y;             /* the id as numbers */
    char desc[160];
    pl vec;                  /* 6.5-6.23: the test vector */
    int valid;
} cdef;
typedef struct cres { int verdict, closev; double secs; char note[512]; } cres;

typedef struct ccase {
    int idx, phase;
    int64_t t_open, t_end;   /* microseconds: the case's duration */
    int64_t t_phase, t_kill, t_close;   /* timers (ms), 0 = off */
    /* expectations */
    xlist ex[2];             /* [0] OK (Pass), [1] NON-STRICT */
    int by_me, clean_req, ncodes, fatal_endpoint, fatal_code, suppress_close, info;
    unsigned codes[3], info_code;
    /* what happened */
    int closed_by_me, client_close, has_code, clean, gone, gone_phase, nev, pongs, pong1_phase;
    int kill_fired, close_fired;
    unsigned code;
    char got[200], violation[200], ended[64];
    /* section 9: 1 = one echo, 2 = round trips */
    int s9, s9_res;
    unsigned s9_op, count, target;
    pl s9_p;
    char s9_note[200];
    int tx_first, tx_cont;   /* data frames the fuzzer sent (10.1.1) */
    uint8_t cbuf[132];       /* payload of a hand-made close frame */
    int done;
} ccase;

static struct {
    int on, quick;
    const char *report, *filter;
    char agent[64];
    cdef *cases;
    size_t n;
    cres *res;
    uint8_t pool[4096];      /* decoded test vectors */
    size_t pool_used;
} cf;

static void cf_note(char *dst, size_t cap, const char *fmt, ...) {
    size_t used = strlen(dst);
    va_list ap;
    if (used + 3 >= cap) return;
    if (used) { memcpy(dst + used, "; ", 3); used += 2; }
    va_start(ap, fmt);
    vsnprintf(dst + used, cap - used, fmt, ap);
    va_end(ap);
}

/* ---- output: frames, chopping, closes ---- */
static uint64_t out_end(const conn *c) { return c->sent + buf_pending(&c->out); }
static void cut_push(conn *c, uint64_t at) {
    if (at <= c->sent) return;
    if (c->cut_head == c->cut_len) c->cut_head = c->cut_len = 0;
    if (c->cut_len && c->cuts[c->cut_len - 1] >= at) return;
    if (c->cut_len == c->cut_cap) {
        size_t cap = c->cut_cap ? c->cut_cap * 2 : 64;
        uint64_t *nc = (uint64_t *)realloc(c->cuts, cap * sizeof *nc);
        if (!nc) { fprintf(stderr, "testd: out of memory\n"); _exit(1); }
        c->cuts = nc;
        c->cut_cap = cap;
    }
    c->cuts[c->cut_len++] = at;
}
/* header + payload into the output, chopped into writes as asked */
static void cf_raw(conn *c, const uint8_t *h, size_t hl, const pl *p, int chop) {
    uint64_t start = out_end(c), end = start + hl + p->len, at;
    if (buf_reserve(&c->out, hl + p->len) != 0) { fprintf(stderr, "testd: out of memory\n"); _exit(1); }
    if (hl) memcpy(c->out.p + c->out.len, h, hl);
    pl_write(p, c->out.p + c->out.len + hl);
    c->out.len += hl + p->len;
    if (chop == CH_MERGE) return;
    cut_push(c, start);
    if (chop > 0)
        for (at = start + (uint64_t)chop; at < end; at += (uint64_t)chop) cut_push(c, at);
    cut_push(c, end);
}
static void cf_frame(conn *c, unsigned op, int fin, unsigned rsv, pl p, int chop) {
    uint8_t h[10];
    size_t hl = frame_head(h, op, fin, p.len);
    h[0] = (uint8_t)(h[0] | (rsv & 7) << 4);
    cf_raw(c, h, hl, &p, chop);
    if (op == AU_OP_TEXT || op == AU_OP_BINARY) c->cs->tx_first++;
    else if (op == AU_OP_CONT) c->cs->tx_cont++;
}
/* autobahn's sendMessage(fragmentSize): a length that is an exact multiple
   of the fragment size ends with an empty FIN=1 continuation frame */
static void cf_message(conn *c, unsigned op, pl p, size_t frag, int chop) {
    size_t i = 0;
    int first = 1, done = 0;
    if (!frag || p.len <= frag) { cf_frame(c, op, 1, 0, p, chop); return; }
    while (!done) {
        size_t j = i + frag;
        if (j > p.len) { done = 1; j = p.len; }
        cf_frame(c, first ? op : AU_OP_CONT, done, 0, pl_sub(p, i, j - i), chop);
        first = 0;
        i = j;
    }
}
static void cf_closing(conn *c) {
    c->close_sent = 1;
    c->cs->closed_by_me = 1;
    c->state = ST_CLOSING;
    c->deadline = now_ms() + CLOSE_WAIT_MS;
}
/* the fuzzer starts the closing handshake (code 0: empty payload) */
static void cf_close(conn *c, unsigned code, const char *reason) {
    if (c->state != ST_OPEN) return;
    ws_close(c, code, reason, reason ? strlen(reason) : 0);
    cf_closing(c);
}
/* the same with a hand-made payload (section 7: bad lengths, codes, reasons) */
static void cf_close_raw(conn *c, const uint8_t *p, size_t n) {
    if (c->state != ST_OPEN) return;
    cf_frame(c, AU_OP_CLOSE, 1, 0, pl_bytes(p, n), CH_MERGE);
    log_line("conn %u sent-close raw %lu bytes", c->id, (unsigned long)n);
    cf_closing(c);
}

/* ---- expectations ---- */
static void ex_add(ccase *k, int which, char kind, pl p) {
    xlist *l = &k->ex[which];
    l->defined = l->alive = 1;
    if (l->n < CONF_MAX_ITEMS) {
        l->it[l->n].kind = kind;
        l->it[l->n].p = p;
        l->n++;
    }
}
static void ex_none(ccase *k, int which) { k->ex[which].defined = k->ex[which].alive = 1; }
static void ex_close(ccase *k, int by_me, int clean, unsigned a, unsigned b, unsigned c3) {
    k->by_me = by_me;
    k->clean_req = clean;
    k->ncodes = 0;
    if (a) k->codes[k->ncodes++] = a;
    if (b) k->codes[k->ncodes++] = b;
    if (c3) k->codes[k->ncodes++] = c3;
}
/* pattern E: echo, then the fuzzer closes with 1000 and wants a clean 1000 back */
static void pattern_e(ccase *k) { ex_close(k, 1, 1, AU_CLOSE_NORMAL, 0, 0); }
/* pattern F: the client fails the connection with code z */
static void pattern_f(ccase *k, unsigned z) { ex_close(k, 0, 0, z, 0, 0); }
static void later(ccase *k, int ms) { k->t_phase = now_ms() + ms; }
static void kill_after(ccase *k, int ms) { k->t_kill = now_ms() + ms; }
static void close_after(ccase *k, int ms) { k->t_close = now_ms() + ms; }

static const char *kind_name(char kind) { return kind == 'T' ? "text" : kind == 'B' ? "binary" : "pong"; }
static void list_text(const xlist *l, char *out, size_t cap) {
    int i;
    out[0] = 0;
    if (!l->n) { snprintf(out, cap, "nothing"); return; }
    for (i = 0; i < l->n; i++) {
        size_t u = strlen(out);
        snprintf(out + u, cap - u, "%s%s(%lu)", i ? " " : "", kind_name(l->it[i].kind), (unsigned long)l->it[i].p.len);
    }
}

/* ---- the cases ---- */
static const char HELLO[] = "Hello, world!";
static const uint8_t BIN8[] = { 0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff };
static const char KOSME[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
static const char UTF8_TEXT[] = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!";
static const char BAD_UTF8[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
static const char S9_TEXT[] = "BAsd7&jh23";
static const char S9_BIN[] = "\x00\xfe\x23\xfa\xf0";
static const char *const PAYLOADS[10] = { "payload-0", "payload-1", "payload-2", "payload-3", "payload-4",
                                          "payload-5", "payload-6", "payload-7", "payload-8", "payload-9" };
static const unsigned CODES_7_7[13] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999 };
static const unsigned CODES_7_9[9] = { 0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999 };
static const unsigned CODES_7_13[2] = { 5000, 65535 };
static const size_t S9_SIZE[6] = { 65536, 262144, 1u << 20, 4u << 20, 8u << 20, 16u << 20 };
static const int S9_1_SECS[6] = { 10, 10, 100, 100, 100, 100 }, S9_2_SECS[6] = { 10, 10, 10, 10, 100, 100 };
static const size_t S9_FRAG[9] = { 64, 256, 1024, 4096, 16384, 65536, 262144, 1u << 20, 4u << 20 };
static const size_t S9_CHOP[6] = { 64, 128, 256, 512, 1024, 2048 };
static const size_t S9_RTT_SIZE[6] = { 0, 16, 64, 256, 1024, 4096 };
static const int S9_RTT_SECS[6] = { 60, 60, 60, 120, 240, 480 };

/* section 9 at the chosen scale: quick divides sizes by 16, counts by 10 */
static size_t s9_size(size_t full) { return cf.quick ? (full / 16 ? full / 16 : 1) : full; }
static unsigned s9_count(void) { return cf.quick ? 100u : 1000u; }

static void play(conn *c, int phase) {
    ccase *k = c->cs;
    const cdef *d = &cf.cases[k->idx];
    int x = d->x, y = d->y;
    pl none = pl_bytes("", 0), hw = pl_str(HELLO);

    switch (d->s) {
    case 1: {                                  /* framing */
        static const size_t N[8] = { 0, 125, 126, 127, 128, 65535, 65536, 65536 };
        size_t n = N[y - 1];
        int bin = x == 2;
        pl p = bin ? pl_rep("\xfe", 1, n) : pl_rep("*", 1, n);
        ex_add(k, 0, bin ? 'B' : 'T', p);
        pattern_e(k);
        cf_frame(c, bin ? AU_OP_BINARY : AU_OP_TEXT, 1, 0, p, y == 8 ? 997 : CH_MERGE);
        kill_after(k, n > 128 ? 10000 : 1000);
        break;
    }
    case 2: {                                  /* pings and pongs */
        pl p = none;
        int i, chop = x == 11 ? 1 : CH_MERGE;
        if (x == 2) p = hw;
        if (x == 3) p = pl_bytes(BIN8, sizeof BIN8);
        if (x == 4 || x == 6) p = pl_rep("\xfe", 1, 125);
        if (x == 5) p = pl_rep("\xfe", 1, 126);
        if (x <= 6) {
            cf_frame(c, AU_OP_PING, 1, 0, p, x == 6 ? 1 : CH_MERGE);
            if (x == 5) {
                ex_none(k, 0);
                pattern_f(k, AU_CLOSE_PROTOCOL);
                kill_after(k, 1000);
            } else {
                ex_add(k, 0, 'P', p);
                pattern_e(k);
                close_after(k, x == 6 ? 2000 : 1000);
            }
        } else if (x <= 8) {                   /* unsolicited pong, then close */
            cf_frame(c, AU_OP_PONG, 1, 0, x == 7 ? none : pl_str("unsolicited pong payload"), CH_MERGE);
            ex_none(k, 0);
            pattern_e(k);
            cf_close(c, AU_CLOSE_NORMAL, NULL);
            close_after(k, 1000);
        } else if (x == 9) {
            cf_frame(c, AU_OP_PONG, 1, 0, pl_str("unsolicited pong payload"), CH_MERGE);
            cf_frame(c, AU_OP_PING, 1, 0, pl_str("ping payload"), CH_MERGE);
            ex_add(k, 0, 'P', pl_str("ping payload"));
            pattern_e(k);
            close_after(k, 1000);
        } else {                               /* 10 pings */
            for (i = 0; i < 10; i++) {
                cf_frame(c, AU_OP_PING, 1, 0, pl_str(PAYLOADS[i]), chop);
                ex_add(k, 0, 'P', pl_str(PAYLOADS[i]));
            }
            pattern_e(k);
            close_after(k, 3000);
        }
        break;
    }
    case 3: {                                  /* reserved bits */
        unsigned rsv = (unsigned)x;
        pattern_f(k, AU_CLOSE_PROTOCOL);
        if (x < 2 || x > 4) ex_none(k, 0);
        if (x == 1) cf_frame(c, AU_OP_TEXT, 1, rsv, hw, CH_MERGE);
        else if (x <= 4) {                     /* Pass needs the echo; failing without it is Non-Strict */
            int chop = x == 2 ? CH_MERGE : x == 3 ? CH_SYNC : 1;
            ex_add(k, 0, 'T', hw);
            ex_none(k, 1);
            cf_frame(c, AU_OP_TEXT, 1, 0, hw, chop);
            cf_frame(c, AU_OP_TEXT, 1, rsv, hw, chop);
            cf_frame(c, AU_OP_PING, 1, 0, none, chop);
        } else if (x == 5) cf_frame(c, AU_OP_BINARY, 1, rsv, pl_bytes(BIN8, sizeof BIN8), CH_MERGE);
        else if (x == 6) cf_frame(c, AU_OP_BINARY, 1, rsv, hw, CH_MERGE);
        else cf_frame(c, AU_OP_CLOSE, 1, rsv, none, CH_MERGE);   /* a raw frame: no closing handshake started */
        kill_after(k, 1000);
        break;
    }
    case 4: {                                  /* reserved opcodes */
        unsigned op = (unsigned)(x == 1 ? 2 + y : 10 + y);
        int chop = y == 5 ? 1 : CH_MERGE;
        pattern_f(k, AU_CLOSE_PROTOCOL);
        if (y <= 2) {
            ex_none(k, 0);
            cf_frame(c, op, 1, 0, y == 1 ? none : pl_str("reserved opcode payload"), CH_MERGE);
        } else {
            ex_add(k, 0, 'T', hw);
            ex_none(k, 1);
            cf_frame(c, AU_OP_TEXT, 1, 0, hw, chop);
            cf_frame(c, op, 1, 0, y == 3 ? none : hw, chop);
            cf_frame(c, AU_OP_PING, 1, 0, none, chop);
        }
        kill_after(k, 1000);
        break;
    }
    case 5: {                                  /* fragmentation */
        pl f1 = pl_str("fragment1"), f2 = pl_str("fragment2"), f3 = pl_str("fragment3");
        int chop = CH_MERGE, i;
        if (x >= 3 && x <= 14) chop = (x % 3 == 0) ? CH_MERGE : (x % 3 == 1) ? CH_SYNC : 1;
        if (x == 20) chop = CH_SYNC;
        if (x == 19 || x == 20) {
            pl f4 = pl_str("fragment4"), f5 = pl_str("fragment5");
            if (phase == 0) {
                ex_add(k, 0, 'P', pl_str("pongme 1!"));
                ex_add(k, 0, 'P', pl_str("pongme 2!"));
                ex_add(k, 0, 'T', pl_str("fragment1fragment2fragment3fragment4fragment5"));
                pattern_e(k);
                cf_frame(c, AU_OP_TEXT, 0, 0, f1, chop);
                cf_frame(c, AU_OP_CONT, 0, 0, f2, chop);
                cf_frame(c, AU_OP_PING, 1, 0, pl_str("pongme 1!"), chop);
                later(k, 1000);
            } else {
                cf_frame(c, AU_OP_CONT, 0, 0, f3, chop);
                cf_frame(c, AU_OP_CONT, 0, 0, f4, chop);
                cf_frame(c, AU_OP_PING, 1, 0, pl_str("pongme 2!"), chop);
                cf_frame(c, AU_OP_CONT, 1, 0, f5, chop);
                close_after(k, 1000);
            }
            break;
        }
        if (x >= 3 && x <= 8) {                /* valid: echo */
            if (x >= 6) ex_add(k, 0, 'P', pl_str("ping payload"));
            ex_add(k, 0, 'T', pl_str("fragment1fragment2"));
            pattern_e(k);
            cf_frame(c, AU_OP_TEXT, 0, 0, f1, chop);
            if (x >= 6) cf_frame(c, AU_OP_PING, 1, 0, pl_str("ping payload"), chop);
            cf_frame(c, AU_OP_CONT, 1, 0, f2, chop);
            close_after(k, 1000);
            break;
        }
        if (x != 15) ex_none(k, 0);
        pattern_f(k, AU_CLOSE_PROTOCOL);
        kill_after(k, 1000);
        if (x <= 2) {
            unsigned op = x == 1 ? AU_OP_PING : AU_OP_PONG;
            cf_frame(c, op, 0, 0, f1, CH_MERGE);
            cf_frame(c, AU_OP_CONT, 1, 0, f2, CH_MERGE);
        } else if (x <= 14) {                  /* continuation with nothing open */
            cf_frame(c, AU_OP_CONT, x <= 11, 0, pl_str("non-continuation payload"), chop);
            cf_frame(c, AU_OP_TEXT, 1, 0, hw, chop);
        } else if (x == 15) {
            ex_add(k, 0, 'T', pl_str("fragment1fragment2"));
            ex_none(k, 1);
            cf_frame(c, AU_OP_TEXT, 0, 0, f1, CH_MERGE);
            cf_frame(c, AU_OP_CONT, 1, 0, f2, CH_MERGE);
            cf_frame(c, AU_OP_CONT, 0, 0, f3, CH_MERGE);
            cf_frame(c, AU_OP_TEXT, 1, 0, pl_str("fragment4"), CH_MERGE);
        } else if (x <= 17) {
            for (i = 0; i < 2; i++) {
                cf_frame(c, AU_OP_CONT, x == 17, 0, f1, CH_MERGE);
                cf_frame(c, AU_OP_TEXT, 0, 0, f2, CH_MERGE);
                cf_frame(c, AU_OP_CONT, 1, 0, f3, CH_MERGE);
            }
        } else {                               /* 5.18 */
            cf_frame(c, AU_OP_TEXT, 0, 0, f1, CH_MERGE);
            cf_frame(c, AU_OP_TEXT, 1, 0, f2, CH_MERGE);
        }
        break;
    }
    case 6: {                                  /* UTF-8 */
        pl t = pl_str(UTF8_TEXT), bad = pl_str(BAD_UTF8), kosme = pl_str(KOSME);
        if (x >= 5) {                          /* test vectors: one frame, kill after 0.5 s */
            cf_frame(c, AU_OP_TEXT, 1, 0, d->vec, CH_MERGE);
            if (d->valid) {
                ex_add(k, 0, 'T', d->vec);
                pattern_e(k);
            } else {
                ex_none(k, 0);
                pattern_f(k, AU_CLOSE_INVALID_DATA);
                k->fatal_endpoint = 1;
            }
            kill_after(k, 500);
        } else if (x <= 2) {                   /* valid: echo */
            pattern_e(k);
            close_after(k, 1000);
            if (x == 1) {
                pl mid = y == 3 ? pl_str("middle frame payload") : none;
                ex_add(k, 0, 'T', mid);
                if (y == 1) cf_frame(c, AU_OP_TEXT, 1, 0, none, CH_MERGE);
                else {
                    cf_frame(c, AU_OP_TEXT, 0, 0, none, CH_MERGE);
                    cf_frame(c, AU_OP_CONT, 0, 0, mid, CH_MERGE);
                    cf_frame(c, AU_OP_CONT, 1, 0, none, CH_MERGE);
                }
            } else {
                ex_add(k, 0, 'T', y == 4 ? kosme : t);
                if (y == 1) cf_frame(c, AU_OP_TEXT, 1, 0, t, CH_MERGE);
                else if (y == 2) {
                    cf_frame(c, AU_OP_TEXT, 0, 0, pl_sub(t, 0, 15), CH_MERGE);
                    cf_frame(c, AU_OP_CONT, 1, 0, pl_sub(t, 15, t.len - 15), CH_MERGE);
                } else cf_message(c, AU_OP_TEXT, y == 4 ? kosme : t, 1, CH_MERGE);
            }
        } else if (x == 3) {
            ex_none(k, 0);
            pattern_f(k, AU_CLOSE_INVALID_DATA);
            k->fatal_endpoint = 1;
            cf_message(c, AU_OP_TEXT, bad, y == 1 ? 0 : 1, CH_MERGE);
            kill_after(k, 1000);
        } else {                               /* 6.4.x: 3 parts 1 s apart, fail fast */
            /* part boundaries in BAD_UTF8 with f4 90 80 80 in place of ed a0 80:
               y odd: kosme | f4 90 80 80 | edited; y even: kosme f4 | 90 | 80 80 edited */
            static const uint8_t whole[21] = { 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5,
                                               0xf4, 0x90, 0x80, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64 };
            size_t a = y % 2 ? 11 : 12, b = y % 2 ? 15 : 13, lo = phase == 0 ? 0 : phase == 1 ? a : b,
                   hi = phase == 0 ? a : phase == 1 ? b : 21;
            pl part = pl_sub(pl_bytes(whole, 21), lo, hi - lo);
            if (phase == 0) {
                ex_none(k, 0);
                pattern_f(k, AU_CLOSE_INVALID_DATA);
                k->fatal_endpoint = 1;
            }
            if (y <= 2) cf_frame(c, phase ? AU_OP_CONT : AU_OP_TEXT, phase == 2, 0, part, CH_MERGE);
            else {                             /* one frame of 21 bytes whose payload comes in pieces */
                uint8_t h[10] = { 0 };
                size_t hl = phase == 0 ? frame_head(h, AU_OP_TEXT, 0, 21) : 0;
                cf_raw(c, h, hl, &part, CH_MERGE);
                if (phase == 2) cf_frame(c, AU_OP_CONT, 1, 0, none, CH_MERGE);
            }
            if (phase < 2) later(k, 1000);
            else kill_after(k, 1000);
        }
        break;
    }
    case 7: {                                  /* close handling: the fuzzer closes first */
        kill_after(k, 1000);
        if (x == 1) {
            pl hello = pl_str("Hello World!");
            ex_none(k, 0);
            pattern_e(k);
            if (y == 1) {
                ex_add(k, 0, 'T', hello);
                cf_frame(c, AU_OP_TEXT, 1, 0, hello, CH_MERGE);
            } else if (y == 5) {
                cf_frame(c, AU_OP_TEXT, 0, 0, pl_str("fragment1"), CH_MERGE);
                cf_close(c, AU_CLOSE_NORMAL, NULL);
                cf_frame(c, AU_OP_CONT, 1, 0, pl_str("fragment2"), CH_MERGE);
            } else if (y == 6) {               /* informational */
                pl big = pl_rep(S9_TEXT, 10, 262144);
                k->info = 1;
                k->suppress_close = 1;
                ex_add(k, 0, 'T', big);
                ex_add(k, 0, 'T', hello);
                cf_frame(c, AU_OP_TEXT, 1, 0, big, CH_MERGE);
                cf_frame(c, AU_OP_TEXT, 1, 0, hello, CH_MERGE);
                cf_close(c, AU_CLOSE_NORMAL, NULL);
                cf_frame(c, AU_OP_PING, 1, 0, none, CH_MERGE);
            } else {
                cf_close(c, AU_CLOSE_NORMAL, NULL);
                if (y == 2) cf_frame(c, AU_OP_CLOSE, 1, 0, none, CH_MERGE);
                if (y == 3) cf_frame(c, AU_OP_PING, 1, 0, none, CH_MERGE);
                if (y == 4) cf_frame(c, AU_OP_TEXT, 1, 0, hello, CH_MERGE);
            }
            break;
        }
        {
            unsigned code = 1000;
            size_t n = 2, reason = 0;
            const char *rtext = NULL;
            ex_none(k, 0);
            k->fatal_code = 1;
            if (x == 3) {
                static const size_t R[6] = { 0, 0, 0, 12, 123, 124 };
                if (y == 1) n = 0;
                if (y == 2) n = 1;
                reason = R[y - 1];
                if (y == 4) rtext = "Hello World!";
                if (y == 2 || y == 6) ex_close(k, 1, 0, AU_CLOSE_PROTOCOL, 0, 0);
                else ex_close(k, 1, 1, AU_CLOSE_NORMAL, 0, 0);
            } else if (x == 5) {
                reason = sizeof BAD_UTF8 - 1;
                rtext = BAD_UTF8;
                ex_close(k, 1, 0, AU_CLOSE_PROTOCOL, AU_CLOSE_INVALID_DATA, 0);
            } else if (x == 7) {
                code = CODES_7_7[y - 1];
                ex_close(k, 1, 1, AU_CLOSE_NORMAL, code, 0);
            } else if (x == 9) {
                code = CODES_7_9[y - 1];
                ex_close(k, 1, 0, AU_CLOSE_PROTOCOL, 0, 0);
            } else {                           /* 7.13: informational */
                code = CODES_7_13[y - 1];
                k->info = 1;
                k->fatal_code = 0;
                k->info_code = code;
                ex_close(k, 1, 0, AU_CLOSE_NORMAL, code, AU_CLOSE_PROTOCOL);
            }
            if (y == 2 && x == 3) k->cbuf[0] = 'a';
            else if (n == 2) {
                k->cbuf[0] = (uint8_t)(code >> 8);
                k->cbuf[1] = (uint8_t)code;
                if (rtext) memcpy(k->cbuf + 2, rtext, reason);
                else memset(k->cbuf + 2, '*', reason);
                n += reason;
            }
            cf_close_raw(c, k->cbuf, n);
        }
        break;
    }
    case 9: {                                  /* limits and performance */
        size_t n = 0;
        int secs = 100;
        unsigned op = (x % 2) ? AU_OP_TEXT : AU_OP_BINARY;
        k->s9 = 1;
        k->s9_op = op;
        ex_close(k, 1, 1, AU_CLOSE_NORMAL, 0, 0);
        if (x <= 2) {
            n = s9_size(S9_SIZE[y - 1]);
            secs = x == 1 ? S9_1_SECS[y - 1] : S9_2_SECS[y - 1];
            k->s9_p = x == 1 ? pl_rep(S9_TEXT, 10, n) : pl_rep(S9_BIN, 5, n);
            cf_frame(c, op, 1, 0, k->s9_p, CH_MERGE);
        } else if (x <= 4) {
            n = s9_size(4u << 20);
            k->s9_p = (x == 4 && y == 1) ? pl_rep("\xfe", 1, n) : pl_rep("*", 1, n);
            cf_message(c, op, k->s9_p, s9_size(S9_FRAG[y - 1]), CH_MERGE);
        } else if (x <= 6) {
            n = s9_size(1u << 20);
            secs = 1000;
            k->s9_p = x == 5 ? pl_rep(S9_TEXT, 10, n) : pl_rep(S9_BIN, 5, n);
            cf_frame(c, op, 1, 0, k->s9_p, (int)S9_CHOP[y - 1]);   /* chunk sizes as in the suite at both scales */
        } else {                               /* round trips, one at a time */
            n = S9_RTT_SIZE[y - 1];
            secs = S9_RTT_SECS[y - 1];
            k->s9 = 2;
            k->s9_op = op = x == 7 ? AU_OP_TEXT : AU_OP_BINARY;
            k->target = s9_count();
            k->s9_p = op == AU_OP_TEXT ? pl_rep("*", 1, n) : pl_rep("\xfe", 1, n);
            cf_frame(c, op, 1, 0, k->s9_p, CH_MERGE);
        }
        close_after(k, secs * 1000);
        break;
    }
    default: {                                 /* 10.1.1: autobahn's auto-fragmentation at 1300 */
        pl p = pl_rep("*", 1, 65536);
        ex_add(k, 0, 'T', p);
        pattern_e(k);
        cf_message(c, AU_OP_TEXT, p, 1300, CH_MERGE);
        kill_after(k, 10000);
        break;
    }
    }
}

/* ---- what the client does ---- */
/* a client frame the fuzzer rejects: it fails the connection (ws_fail, or
   the reply to a bad close frame) and the case fails */
static void cf_violation(conn *c, const char *why) {
    ccase *k = c->cs;
    if (!k->violation[0]) snprintf(k->violation, sizeof k->violation, "%s", why);
    if (!k->client_close && c->state == ST_OPEN) k->closed_by_me = 1;   /* our 1002/1007 goes first */
    if (!k->t_end) {
        k->t_end = now_us();
        snprintf(k->ended, sizeof k->ended, "the fuzzer failed the connection");
    }
}
static void cf_gone(ccase *k) {                /* the client's first close frame or TCP loss */
    if (k->gone) return;
    k->gone = 1;
    k->gone_phase = k->phase;
}
static void cf_end(ccase *k, const char *why) {
    if (k->t_end) return;
    k->t_end = now_us();
    snprintf(k->ended, sizeof k->ended, "%s", why);
}
static void s9_event(conn *c, char kind, const uint8_t *p, size_t n) {
    ccase *k = c->cs;
    char want = k->s9_op == AU_OP_TEXT ? 'T' : 'B';
    if (k->s9_res) {
        if (k->s9_res > 0) snprintf(k->s9_note, sizeof k->s9_note, "unexpected %s(%lu) after the echo", kind_name(kind), (unsigned long)n);
        k->s9_res = -1;
        return;
    }
    if (kind != want || n != k->s9_p.len) {
        snprintf(k->s9_note, sizeof k->s9_note, "expected %s(%lu), got %s(%lu) after %u echoes", kind_name(want),
                 (unsigned long)k->s9_p.len, kind_name(kind), (unsigned long)n, k->count);
        k->s9_res = -1;
    } else if (!pl_equal(&k->s9_p, p, n)) {
        snprintf(k->s9_note, sizeof k->s9_note, "echoed bytes differ from the ones sent");
        k->s9_res = -1;
    } else if (k->s9 == 2 && ++k->count < k->target) {
        if (c->state == ST_OPEN) cf_frame(c, k->s9_op, 1, 0, k->s9_p, CH_MERGE);
        return;
    } else {
        k->s9_res = 1;
        if (k->s9 == 2) snprintf(k->s9_note, sizeof k->s9_note, "%u round trips", k->count);
        else snprintf(k->s9_note, sizeof k->s9_note, "echo of %lu bytes", (unsigned long)n);
    }
    cf_close(c, AU_CLOSE_NORMAL, NULL);
}
/* a message or pong from the client: matched against the expected lists */
static void cf_event(conn *c, char kind, const uint8_t *p, size_t n) {
    ccase *k = c->cs;
    int w, all = 1;
    size_t used = strlen(k->got);
    k->nev++;
    if (k->nev <= 8) snprintf(k->got + used, sizeof k->got - used, "%s%s(%lu)", used ? " " : "", kind_name(kind), (unsigned long)n);
    else if (k->nev == 9) snprintf(k->got + used, sizeof k->got - used, " ...");
    if (kind == 'P' && ++k->pongs == 1) k->pong1_phase = k->phase;
    if (k->s9) { s9_event(c, kind, p, n); return; }
    for (w = 0; w < 2; w++) {
        xlist *l = &k->ex[w];
        if (!l->defined) continue;
        if (l->alive && l->got < l->n && l->it[l->got].kind == kind && pl_equal(&l->it[l->got].p, p, n)) l->got++;
        else l->alive = 0;
        if (!l->alive || l->got < l->n) all = 0;
    }
    /* autobahn's finishWhenDone: all expected lists met, the fuzzer closes */
    if (all && k->by_me && !k->suppress_close) cf_close(c, k->codes[0], NULL);
}
static int fuzzer_accepts_code(unsigned code) {   /* autobahn-python 0.10.9 */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}
static void cf_control(conn *c) {
    ccase *k = c->cs;
    char why[96];
    int bad = 0;
    if (c->op == AU_OP_PING) {                 /* answered, not recorded */
        if (c->state == ST_OPEN) ws_frame(c, AU_OP_PONG, 1, c->ctl, c->ctl_len);
        return;
    }
    if (c->op == AU_OP_PONG) { cf_event(c, 'P', c->ctl, c->ctl_len); return; }
    cf_gone(k);
    k->client_close = 1;
    k->clean = 1;                              /* both close frames are (now) exchanged */
    if (c->ctl_len == 1) {
        cf_violation(c, "client close frame with a 1-byte payload");
        bad = 1;
    } else if (c->ctl_len >= 2) {
        k->has_code = 1;
        k->code = (unsigned)c->ctl[0] << 8 | c->ctl[1];
        if (!fuzzer_accepts_code(k->code) && !(k->info_code && k->code == k->info_code)) {
            snprintf(why, sizeof why, "client sent close code %u, which the fuzzer rejects", k->code);
            cf_violation(c, why);
            bad = 1;
        } else if (!au_utf8_valid(c->ctl + 2, c->ctl_len - 2)) {
            cf_violation(c, "client close reason is not valid UTF-8");
            bad = 1;
        }
    }
    log_line("conn %u close %u", c->id, k->has_code ? k->code : AU_CLOSE_NO_STATUS);
    if (c->state == ST_OPEN) ws_close(c, bad ? AU_CLOSE_PROTOCOL : AU_CLOSE_NORMAL, NULL, 0);
    cf_end(k, c->state == ST_OPEN ? "client closed" : "closing handshake done");
    conn_drain(c);                             /* the fuzzer drops TCP after the handshake */
}

/* ---- timers ---- */
static void cf_timers(conn *c, int64_t now) {
    ccase *k = c->cs;
    if (k->done) return;
    if (k->t_phase && now >= k->t_phase) {
        k->t_phase = 0;
        k->phase++;
        if (c->state == ST_OPEN) play(c, k->phase);
    }
    if (k->t_kill && now >= k->t_kill) {
        k->t_kill = 0;
        if (c->state == ST_OPEN) { k->kill_fired = 1; cf_close(c, AU_CLOSE_GOING_AWAY, "Going Away"); }
    }
    if (k->t_close && now >= k->t_close) {
        k->t_close = 0;
        if (c->state == ST_OPEN) { k->close_fired = 1; cf_close(c, 0, NULL); }
    }
}
static int64_t cf_next_timer(const conn *c) {
    const ccase *k = c->cs;
    int64_t t = 0;
    if (k->t_phase && (!t || k->t_phase < t)) t = k->t_phase;
    if (k->t_kill && (!t || k->t_kill < t)) t = k->t_kill;
    if (k->t_close && (!t || k->t_close < t)) t = k->t_close;
    return t;
}

/* ---- verdict ---- */
static void cf_finish(conn *c, const char *why) {
    ccase *k = c->cs;
    const cdef *d = &cf.cases[k->idx];
    cres *r = &cf.res[k->idx];
    char note[512], ctx[256], a[128], b[128];
    int v = V_FAILED, cv, w, i, code_ok = !k->has_code;
    if (k->done) return;
    k->done = 1;
    note[0] = 0;
    cf_end(k, why);
    /* the messages and pongs */
    if (k->s9) {
        if (k->s9_res > 0) v = V_OK;
        else if (k->s9_res < 0) cf_note(note, sizeof note, "%s", k->s9_note);
        else if (k->s9 == 2) cf_note(note, sizeof note, "only %u of %u round trips done", k->count, k->target);
        else cf_note(note, sizeof note, "no echo");
    } else {
        for (w = 0; w < 2; w++) {
            const xlist *l = &k->ex[w];
            if (l->defined && l->alive && l->got == l->n) { v = w ? V_NON_STRICT : V_OK; break; }
        }
        if (v == V_FAILED && !k->info) {
            list_text(&k->ex[0], a, sizeof a);
            list_text(&k->ex[1], b, sizeof b);
            cf_note(note, sizeof note, "expected %s%s%s%s, got %s", a, k->ex[1].defined ? " (non-strict: " : "",
                    k->ex[1].defined ? b : "", k->ex[1].defined ? ")" : "", k->got[0] ? k->got : "nothing");
        }
    }
    /* the close */
    for (i = 0; i < k->ncodes; i++)
        if (k->has_code && k->code == k->codes[i]) code_ok = 1;
    if (k->by_me != k->closed_by_me) {
        cv = CV_FAILED;
        if (k->by_me) cf_note(note, sizeof note, "the client closed first, the fuzzer was to close");
        else cf_note(note, sizeof note, "the client did not fail the connection: the fuzzer's %s timer closed it",
                     k->kill_fired ? "kill" : k->close_fired ? "close" : "own");
    } else if (k->clean_req && !k->clean) {
        cv = CV_UNCLEAN;
        cf_note(note, sizeof note, "no clean closing handshake (%s)", k->ended);
    } else if (!code_ok) {
        cv = CV_WRONG_CODE;
        a[0] = 0;
        for (i = 0; i < k->ncodes; i++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%u", i ? "/" : "", k->codes[i]);
        cf_note(note, sizeof note, "client close code %u, expected %s or none", k->code, a);
    } else cv = CV_OK;
    if (k->fatal_endpoint && k->by_me != k->closed_by_me) v = V_FAILED;
    if (k->fatal_code && cv == CV_WRONG_CODE) v = V_FAILED;
    /* timing rules the lists cannot express */
    if (d->s == 6 && d->x == 4 && v != V_FAILED && k->gone) {
        if (k->gone_phase == 0) { v = V_FAILED; cf_note(note, sizeof note, "failed before the invalid bytes were sent"); }
        else if (k->gone_phase >= 2) { v = V_NON_STRICT; cf_note(note, sizeof note, "failed only after the rest of the message (not fail-fast)"); }
        else cf_note(note, sizeof note, "failed fast, on the second part");
    }
    if (d->s == 5 && d->x >= 19 && v == V_OK && k->pong1_phase != 0) {
        v = V_FAILED;
        cf_note(note, sizeof note, "pong 1 came only after the pause");
    }
    if (d->s == 10 && (k->tx_first != 1 || k->tx_cont != 50)) {
        v = V_FAILED;
        cf_note(note, sizeof note, "fuzzer sent %d+%d frames, not 1+50", k->tx_first, k->tx_cont);
    }
    if (k->violation[0]) {
        v = V_FAILED;
        cf_note(note, sizeof note, "client frame rejected: %s", k->violation);
    }
    if (k->info) {
        int ok = cv == CV_OK && k->ex[0].alive && (!k->violation[0]);
        if (d->x == 1) cf_note(note, sizeof note, "%d of 2 messages before the close echoed", k->ex[0].got);
        if (k->info_code && k->has_code && k->code == k->info_code) cf_note(note, sizeof note, "echoed the invalid code");
        v = ok ? V_INFO : V_FAILED;
    } else if (v != V_FAILED && cv != CV_OK) v = V_FAILED;
    /* context: what was received and how it closed */
    ctx[0] = 0;
    if (!(k->s9 && k->s9_res > 0)) snprintf(ctx, sizeof ctx, "got: %s; ", k->got[0] ? k->got : "nothing");
    if (k->client_close && k->has_code) snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), "client close %u", k->code);
    else if (k->client_close) snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), "client close, no code");
    else snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), "no client close (%s)", k->ended);
    snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), ", %s closed first", k->closed_by_me ? "fuzzer" : "client");
    if (k->s9 && k->s9_res > 0) cf_note(note, sizeof note, "%s", k->s9_note);
    if (k->by_me && k->kill_fired) cf_note(note, sizeof note, "the fuzzer's kill timer fired (close 1001)");
    if (k->by_me && k->close_fired) cf_note(note, sizeof note, "the fuzzer's close timer fired (empty close)");
    cf_note(note, sizeof note, "%s", ctx);
    r->verdict = v;
    r->closev = cv;
    r->secs = (double)(k->t_end - k->t_open) / 1e6;
    snprintf(r->note, sizeof r->note, "%s", note);
    for (i = 0; r->note[i]; i++)
        if (r->note[i] == '\t' || r->note[i] == '\n' || (unsigned char)r->note[i] < 0x20) r->note[i] = ' ';
    log_line("conn %u case %s %s close %s %.3fs %s", c->id, d->id, v_names[v], cv_names[cv], r->secs, r->note);
    printf("result\t%s\t%s\t%s\t%.6f\t%s\t%s\n", d->id, v_names[v], cv_names[cv], r->secs, r->note, d->desc);
    fflush(stdout);
}

/* ---- the case list ---- */
static const struct { const char *id, *desc; } FIXED_CASES[] = {
    { "1.1.1", "Text message, empty" }, { "1.1.2", "Text message, 125 bytes" },
    { "1.1.3", "Text message, 126 bytes" }, { "1.1.4", "Text message, 127 bytes" },
    { "1.1.5", "Text message, 128 bytes" }, { "1.1.6", "Text message, 65535 bytes" },
    { "1.1.7", "Text message, 65536 bytes" }, { "1.1.8", "Text message, 65536 bytes, written in 997-byte chunks" },
    { "1.2.1", "Binary message, empty" }, { "1.2.2", "Binary message, 125 bytes" },
    { "1.2.3", "Binary message, 126 bytes" }, { "1.2.4", "Binary message, 127 bytes" },
    { "1.2.5", "Binary message, 128 bytes" }, { "1.2.6", "Binary message, 65535 bytes" },
    { "1.2.7", "Binary message, 65536 bytes" }, { "1.2.8", "Binary message, 65536 bytes, written in 997-byte chunks" },
    { "2.1", "Ping, empty payload" }, { "2.2", "Ping, 13-byte text payload" },
    { "2.3", "Ping, binary payload 00 ff fe fd fc fb 00 ff" }, { "2.4", "Ping, 125-byte payload" },
    { "2.5", "Ping, 126-byte payload (too long): fail 1002" }, { "2.6", "Ping, 125-byte payload, one byte per write" },
    { "2.7", "Unsolicited empty pong, then close" }, { "2.8", "Unsolicited pong with payload, then close" },
    { "2.9", "Unsolicited pong, then a ping" }, { "2.10", "10 pings back to back" },
    { "2.11", "10 pings back to back, one byte per write" },
    { "3.1", "Text frame with RSV=1: fail 1002" },
    { "3.2", "Text, text with RSV=2, ping: echo, then fail 1002" },
    { "3.3", "Text, text with RSV=3, ping, frame-wise: echo, then fail 1002" },
    { "3.4", "Text, text with RSV=4, ping, one byte per write: echo, then fail 1002" },
    { "3.5", "Binary frame with RSV=5: fail 1002" }, { "3.6", "Binary frame with RSV=6: fail 1002" },
    { "3.7", "Close frame with RSV=7: fail 1002" },
    { "4.1.1", "Frame with reserved opcode 3: fail 1002" },
    { "4.1.2", "Frame with reserved opcode 4 and a payload: fail 1002" },
    { "4.1.3", "Text, opcode 5 frame, ping: echo, then fail 1002" },
    { "4.1.4", "Text, opcode 6 frame with payload, ping: echo, then fail 1002" },
    { "4.1.5", "Text, opcode 7 frame, ping, one byte per write: echo, then fail 1002" },
    { "4.2.1", "Frame with reserved control opcode 11: fail 1002" },
    { "4.2.2", "Frame with reserved control opcode 12 and a payload: fail 1002" },
    { "4.2.3", "Text, opcode 13 frame, ping: echo, then fail 1002" },
    { "4.2.4", "Text, opcode 14 frame with payload, ping: echo, then fail 1002" },
    { "4.2.5", "Text, opcode 15 frame, ping, one byte per write: echo, then fail 1002" },
    { "5.1", "Ping fragmented into 2 frames: fail 1002" }, { "5.2", "Pong fragmented into 2 frames: fail 1002" },
    { "5.3", "Text message in 2 fragments" }, { "5.4", "Text message in 2 fragments, frame-wise" },
    { "5.5", "Text message in 2 fragments, one byte per write" },
    { "5.6", "Text in 2 fragments with a ping between them" },
    { "5.7", "Text in 2 fragments with a ping between them, frame-wise" },
    { "5.8", "Text in 2 fragments with a ping between them, one byte per write" },
    { "5.9", "Continuation (fin=1) with no message open, then text: fail 1002" },
    { "5.10", "Continuation (fin=1) with no message open, then text, frame-wise: fail 1002" },
    { "5.11", "Continuation (fin=1) with no message open, then text, one byte per write: fail 1002" },
    { "5.12", "Continuation (fin=0) with no message open, then text: fail 1002" },
    { "5.13", "Continuation (fin=0) with no message open, then text, frame-wise: fail 1002" },
    { "5.14", "Continuation (fin=0) with no message open, then text, one byte per write: fail 1002" },
    { "5.15", "Text in 2 fragments, then a continuation with nothing open: echo, then fail 1002" },
    { "5.16", "Continuation, text, continuation, twice: fail 1002" },
    { "5.17", "Continuation (fin=1), text, continuation, twice: fail 1002" },
    { "5.18", "Text fin=0, then text fin=1: fail 1002" },
    { "5.19", "Text in 5 fragments with 2 pings, 1 s pause in the middle" },
    { "5.20", "Text in 5 fragments with 2 pings, 1 s pause in the middle, frame-wise" },
    { "6.1.1", "Empty text message" }, { "6.1.2", "Text message of 3 empty fragments" },
    { "6.1.3", "Text message: empty, 'middle frame payload', empty fragment" },
    { "6.2.1", "Valid UTF-8 text in one frame" }, { "6.2.2", "Valid UTF-8 text in 2 fragments split at a code point" },
    { "6.2.3", "Valid UTF-8 text in 1-byte fragments" }, { "6.2.4", "Valid UTF-8 (kosme) in 1-byte fragments" },
    { "6.3.1", "Invalid UTF-8 text in one frame: fail 1007" },
    { "6.3.2", "Invalid UTF-8 text in 1-byte fragments: fail 1007" },
    { "6.4.1", "Fragment 2 of 3 (1 s apart) breaks UTF-8: fail fast 1007" },
    { "6.4.2", "1-byte fragment 2 of 3 (1 s apart) breaks UTF-8: fail fast 1007" },
    { "6.4.3", "One frame in 3 pieces 1 s apart, piece 2 breaks UTF-8: fail fast 1007" },
    { "6.4.4", "One frame in 3 pieces 1 s apart, 1-byte piece 2 breaks UTF-8: fail fast 1007" },
    { "7.1.1", "Text message, then close after the echo" }, { "7.1.2", "Close, then a second close" },
    { "7.1.3", "Close, then a ping" }, { "7.1.4", "Close, then a text message" },
    { "7.1.5", "Text fragment, close, last fragment" },
    { "7.1.6", "256 KiB text, text, close, ping back to back (informational)" },
    { "7.3.1", "Close with an empty payload" }, { "7.3.2", "Close with a 1-byte payload: fail 1002" },
    { "7.3.3", "Close with code 1000" }, { "7.3.4", "Close with code 1000 and a reason" },
    { "7.3.5", "Close with code 1000 and a 123-byte reason (125 bytes)" },
    { "7.3.6", "Close with code 1000 and a 124-byte reason (126 bytes): fail 1002" },
    { "7.5.1", "Close with a reason that is not valid UTF-8: fail 1007" },
    { "10.1.1", "65536-byte text message, auto-fragmented at 1300 bytes" },
};
/* 6.5-6.23: id, payload hex, valid */
static const struct { const char *id, *hex; int valid; } VECTORS[] = {
    {"6.5.1", "68656c6c6f24776f726c64", 1},
    {"6.5.2", "68656c6c6fc2a2776f726c64", 1},
    {"6.5.3", "68656c6c6fe282ac776f726c64", 1},
    {"6.5.4", "68656c6c6ff0a4ada2776f726c64", 1},
    {"6.5.5", "cebae1bdb9cf83cebcceb5", 1},
    {"6.6.1", "ce", 0},
    {"6.6.2", "ceba", 1},
    {"6.6.3", "cebae1", 0},
    {"6.6.4", "cebae1bd", 0},
    {"6.6.5", "cebae1bdb9", 1},
    {"6.6.6", "cebae1bdb9cf", 0},
    {"6.6.7", "cebae1bdb9cf83", 1},
    {"6.6.8", "cebae1bdb9cf83ce", 0},
    {"6.6.9", "cebae1bdb9cf83cebc", 1},
    {"6.6.10", "cebae1bdb9cf83cebcce", 0},
    {"6.6.11", "cebae1bdb9cf83cebcceb5", 1},
    {"6.7.1", "00", 1},
    {"6.7.2", "c280", 1},
    {"6.7.3", "e0a080", 1},
    {"6.7.4", "f0908080", 1},
    {"6.8.1", "f888808080", 0},
    {"6.8.2", "fc8480808080", 0},
    {"6.9.1", "7f", 1},
    {"6.9.2", "dfbf", 1},
    {"6.9.3", "efbfbf", 1},
    {"6.9.4", "f48fbfbf", 1},
    {"6.10.1", "f7bfbfbf", 0},
    {"6.10.2", "fbbfbfbfbf", 0},
    {"6.10.3", "fdbfbfbfbfbf", 0},
    {"6.11.1", "ed9fbf", 1},
    {"6.11.2", "ee8080", 1},
    {"6.11.3", "efbfbd", 1},
    {"6.11.4", "f48fbfbf", 1},
    {"6.11.5", "f4908080", 0},
    {"6.12.1", "80", 0},
    {"6.12.2", "bf", 0},
    {"6.12.3", "80bf", 0},
    {"6.12.4", "80bf80", 0},
    {"6.12.5", "80bf80bf", 0},
    {"6.12.6", "80bf80bf80", 0},
    {"6.12.7", "80bf80bf80bf", 0},
    {"6.12.8", "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbe", 0},
    {"6.13.1", "c020c120c220c320c420c520c620c720c820c920ca20cb20cc20cd20ce20cf20d020d120d220d320d420d520d620d720d820d920da20db20dc20dd20de20", 0},
    {"6.13.2", "e020e120e220e320e420e520e620e720e820e920ea20eb20ec20ed20ee20", 0},
    {"6.13.3", "f020f120f220f320f420f520f620", 0},
    {"6.13.4", "f820f920fa20", 0},
    {"6.13.5", "fc20", 0},
    {"6.14.1", "c0", 0},
    {"6.14.2", "e080", 0},
    {"6.14.3", "f08080", 0},
    {"6.14.4", "f8808080", 0},
    {"6.14.5", "fc80808080", 0},
    {"6.14.6", "df", 0},
    {"6.14.7", "efbf", 0},
    {"6.14.8", "f7bfbf", 0},
    {"6.14.9", "fbbfbfbf", 0},
    {"6.14.10", "fdbfbfbfbf", 0},
    {"6.15.1", "c0e080f08080f8808080fc80808080dfefbff7bfbffbbfbfbffdbfbfbfbf", 0},
    {"6.16.1", "fe", 0},
    {"6.16.2", "ff", 0},
    {"6.16.3", "fefeffff", 0},
    {"6.17.1", "c0af", 0},
    {"6.17.2", "e080af", 0},
    {"6.17.3", "f08080af", 0},
    {"6.17.4", "f8808080af", 0},
    {"6.17.5", "fc80808080af", 0},
    {"6.18.1", "c1bf", 0},
    {"6.18.2", "e09fbf", 0},
    {"6.18.3", "f08fbfbf", 0},
    {"6.18.4", "f887bfbfbf", 0},
    {"6.18.5", "fc83bfbfbfbf", 0},
    {"6.19.1", "c080", 0},
    {"6.19.2", "e08080", 0},
    {"6.19.3", "f0808080", 0},
    {"6.19.4", "f880808080", 0},
    {"6.19.5", "fc8080808080", 0},
    {"6.20.1", "eda080", 0},
    {"6.20.2", "edadbf", 0},
    {"6.20.3", "edae80", 0},
    {"6.20.4", "edafbf", 0},
    {"6.20.5", "edb080", 0},
    {"6.20.6", "edbe80", 0},
    {"6.20.7", "edbfbf", 0},
    {"6.21.1", "eda080edb080", 0},
    {"6.21.2", "eda080edbfbf", 0},
    {"6.21.3", "edadbfedb080", 0},
    {"6.21.4", "edadbfedbfbf", 0},
    {"6.21.5", "edae80edb080", 0},
    {"6.21.6", "edae80edbfbf", 0},
    {"6.21.7", "edafbfedb080", 0},
    {"6.21.8", "edafbfedbfbf", 0},
    {"6.22.1", "efbfbe", 1},
    {"6.22.2", "efbfbf", 1},
    {"6.22.3", "f09fbfbe", 1},
    {"6.22.4", "f09fbfbf", 1},
    {"6.22.5", "f0afbfbe", 1},
    {"6.22.6", "f0afbfbf", 1},
    {"6.22.7", "f0bfbfbe", 1},
    {"6.22.8", "f0bfbfbf", 1},
    {"6.22.9", "f18fbfbe", 1},
    {"6.22.10", "f18fbfbf", 1},
    {"6.22.11", "f19fbfbe", 1},
    {"6.22.12", "f19fbfbf", 1},
    {"6.22.13", "f1afbfbe", 1},
    {"6.22.14", "f1afbfbf", 1},
    {"6.22.15", "f1bfbfbe", 1},
    {"6.22.16", "f1bfbfbf", 1},
    {"6.22.17", "f28fbfbe", 1},
    {"6.22.18", "f28fbfbf", 1},
    {"6.22.19", "f29fbfbe", 1},
    {"6.22.20", "f29fbfbf", 1},
    {"6.22.21", "f2afbfbe", 1},
    {"6.22.22", "f2afbfbf", 1},
    {"6.22.23", "f2bfbfbe", 1},
    {"6.22.24", "f2bfbfbf", 1},
    {"6.22.25", "f38fbfbe", 1},
    {"6.22.26", "f38fbfbf", 1},
    {"6.22.27", "f39fbfbe", 1},
    {"6.22.28", "f39fbfbf", 1},
    {"6.22.29", "f3afbfbe", 1},
    {"6.22.30", "f3afbfbf", 1},
    {"6.22.31", "f3bfbfbe", 1},
    {"6.22.32", "f3bfbfbf", 1},
    {"6.22.33", "f48fbfbe", 1},
    {"6.22.34", "f48fbfbf", 1},
    {"6.23.1", "efbfb9", 1},
    {"6.23.2", "efbfba", 1},
    {"6.23.3", "efbfbb", 1},
    {"6.23.4", "efbfbc", 1},
    {"6.23.5", "efbfbd", 1},
    {"6.23.6", "efbfbe", 1},
    {"6.23.7", "efbfbf", 1},
};
static const struct { const char *sub, *title; } VECTOR_TITLES[] = {
    { "6.5", "Valid UTF-8" }, { "6.6", "Prefix of kosme" }, { "6.7", "First sequence of a length" },
    { "6.8", "5/6-byte form" }, { "6.9", "Last sequence of a length" }, { "6.10", "Beyond U+10FFFF" },
    { "6.11", "Boundary" }, { "6.12", "Unexpected continuation bytes" }, { "6.13", "Lonely start bytes" },
    { "6.14", "Last continuation byte missing" }, { "6.15", "Incomplete sequences" },
    { "6.16", "Impossible bytes" }, { "6.17", "Overlong '/'" }, { "6.18", "Maximum overlong" },
    { "6.19", "Overlong NUL" }, { "6.20", "Single UTF-16 surrogate" }, { "6.21", "Paired UTF-16 surrogates" },
    { "6.22", "Non-character" }, { "6.23", "Unicode special" },
};

static void fmt_size(char *out, size_t cap, size_t n) {
    if (n >= 1u << 20 && n % (1u << 20) == 0) snprintf(out, cap, "%lu MiB", (unsigned long)(n >> 20));
    else if (n >= 1024 && n % 1024 == 0) snprintf(out, cap, "%lu KiB", (unsigned long)(n >> 10));
    else snprintf(out, cap, "%lu bytes", (unsigned long)n);
}
static int cdef_cmp(const void *pa, const void *pb) {
    const cdef *a = (const cdef *)pa, *b = (const cdef *)pb;
    if (a->s != b->s) return a->s - b->s;
    if (a->x != b->x) return a->x - b->x;
    return a->y - b->y;
}
static int case_enabled(const char *id) {
    const char *f = cf.filter;
    if (!f || !*f) return 1;
    while (*f) {
        size_t n = strcspn(f, ",");
        if (n && f[n - 1] == '*' ? strncmp(id, f, n - 1) == 0 : (strlen(id) == n && strncmp(id, f, n) == 0)) return 1;
        f += n;
        if (*f == ',') f++;
    }
    return 0;
}
static void add_case(const char *id, const char *desc, pl vec, int valid) {
    cdef *d;
    if (!case_enabled(id)) return;
    d = &cf.cases[cf.n++];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->desc, sizeof d->desc, "%s", desc);
    d->vec = vec;
    d->valid = valid;
    if (sscanf(id, "%d.%d.%d", &d->s, &d->x, &d->y) < 2) { fprintf(stderr, "testd: bad case id %s\n", id); exit(1); }
}
static void build_cases(void) {
    size_t i, j;
    char id[16], desc[160], a[32], b[32];
    cf.cases = (cdef *)calloc(400, sizeof *cf.cases);
    if (!cf.cases) { fprintf(stderr, "testd: out of memory\n"); exit(1); }
    for (i = 0; i < sizeof FIXED_CASES / sizeof FIXED_CASES[0]; i++) add_case(FIXED_CASES[i].id, FIXED_CASES[i].desc, pl_bytes("", 0), 0);
    for (i = 0; i < sizeof VECTORS / sizeof VECTORS[0]; i++) {
        const char *hex = VECTORS[i].hex, *title = "";
        size_t n = strlen(hex) / 2, sub = strcspn(VECTORS[i].id + 2, ".") + 2;
        uint8_t *v = cf.pool + cf.pool_used;
        char shown[64];
        for (j = 0; j < n; j++) v[j] = (uint8_t)(hexval(hex[2 * j]) << 4 | hexval(hex[2 * j + 1]));
        cf.pool_used += n;
        for (j = 0; j < sizeof VECTOR_TITLES / sizeof VECTOR_TITLES[0]; j++)
            if (strlen(VECTOR_TITLES[j].sub) == sub && strncmp(VECTORS[i].id, VECTOR_TITLES[j].sub, sub) == 0) title = VECTOR_TITLES[j].title;
        shown[0] = 0;
        for (j = 0; j < n && j < 8; j++) snprintf(shown + strlen(shown), sizeof shown - strlen(shown), "%s%02x", j ? " " : "", v[j]);
        snprintf(desc, sizeof desc, "%s: %s%s (%lu bytes)%s", title, shown, n > 8 ? " ..." : "", (unsigned long)n,
                 VECTORS[i].valid ? "" : ": fail 1007");
        add_case(VECTORS[i].id, desc, pl_bytes(v, n), VECTORS[i].valid);
    }
    for (i = 0; i < 13; i++) {
        snprintf(id, sizeof id, "7.7.%lu", (unsigned long)i + 1);
        snprintf(desc, sizeof desc, "Close with valid code %u", CODES_7_7[i]);
        add_case(id, desc, pl_bytes("", 0), 0);
    }
    for (i = 0; i < 9; i++) {
        snprintf(id, sizeof id, "7.9.%lu", (unsigned long)i + 1);
        snprintf(desc, sizeof desc, "Close with invalid code %u: fail 1002", CODES_7_9[i]);
        add_case(id, desc, pl_bytes("", 0), 0);
    }
    for (i = 0; i < 2; i++) {
        snprintf(id, sizeof id, "7.13.%lu", (unsigned long)i + 1);
        snprintf(desc, sizeof desc, "Close with code %u, beyond 4999 (informational)", CODES_7_13[i]);
        add_case(id, desc, pl_bytes("", 0), 0);
    }
    for (i = 1; i <= 8; i++) {
        size_t count = i <= 2 || i >= 5 ? 6 : 9;
        for (j = 1; j <= count; j++) {
            const char *kind = i % 2 ? "text" : "binary";
            snprintf(id, sizeof id, "9.%lu.%lu", (unsigned long)i, (unsigned long)j);
            if (i <= 2) {
                fmt_size(a, sizeof a, s9_size(S9_SIZE[j - 1]));
                snprintf(desc, sizeof desc, "One %s %s frame (deadline %d s)", a, kind, i == 1 ? S9_1_SECS[j - 1] : S9_2_SECS[j - 1]);
            } else if (i <= 4) {
                fmt_size(a, sizeof a, s9_size(4u << 20));
                fmt_size(b, sizeof b, s9_size(S9_FRAG[j - 1]));
                snprintf(desc, sizeof desc, "%s %s message in fragments of %s (deadline 100 s)", a, kind, b);
            } else if (i <= 6) {
                fmt_size(a, sizeof a, s9_size(1u << 20));
                fmt_size(b, sizeof b, S9_CHOP[j - 1]);
                snprintf(desc, sizeof desc, "One %s %s frame written in chunks of %s (deadline 1000 s)", a, kind, b);
            } else {
                fmt_size(a, sizeof a, S9_RTT_SIZE[j - 1]);
                snprintf(desc, sizeof desc, "%u %s messages of %s, one at a time (deadline %d s)", s9_count(), kind, a, S9_RTT_SECS[j - 1]);
            }
            add_case(id, desc, pl_bytes("", 0), 0);
        }
    }
    qsort(cf.cases, cf.n, sizeof *cf.cases, cdef_cmp);
    cf.res = (cres *)calloc(cf.n ? cf.n : 1, sizeof *cf.res);
    if (!cf.res) { fprintf(stderr, "testd: out of memory\n"); exit(1); }
    for (i = 0; i < cf.n; i++) {
        cf.res[i].verdict = V_NOT_RUN;
        cf.res[i].closev = CV_NONE;
    }
}

/* ---- the report (JSON, like autobahn's index.json) ---- */
static void cf_write_report(void) {
    buf b = { 0 };
    char tmp[1024], date[32];
    time_t t = time(NULL);
    FILE *f;
    size_t i;
    if (!cf.report) return;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    buf_puts(&b, "{\n  \"generator\": \"testd --conformance (Autobahn|Testsuite fuzzing-server cases)\",\n  \"agent\": \"");
    buf_json_escape(&b, cf.agent);
    buf_printf(&b, "\",\n  \"date\": \"%s\",\n  \"section9_scale\": \"%s\",\n  \"section9_note\": \"%s\",\n  \"cases\": [\n", date,
               cf.quick ? "quick" : "full",
               cf.quick ? "section 9 scaled down: message and fragment sizes divided by 16 (frame counts as in the suite), TCP chunk sizes unchanged, 100 round trips instead of 1000, deadlines unchanged"
                        : "section 9 at the suite's sizes and counts");
    for (i = 0; i < cf.n; i++) {
        const cres *r = &cf.res[i];
        buf_puts(&b, "    {\"id\": \"");
        buf_json_escape(&b, cf.cases[i].id);
        buf_puts(&b, "\", \"description\": \"");
        buf_json_escape(&b, cf.cases[i].desc);
        buf_printf(&b, "\", \"verdict\": \"%s\", \"close\": \"%s\", \"duration\": %.6f, \"note\": \"", v_names[r->verdict],
                   cv_names[r->closev], r->secs);
        buf_json_escape(&b, r->note);
        buf_printf(&b, "\"}%s\n", i + 1 < cf.n ? "," : "");
    }
    buf_puts(&b, "  ]\n}\n");
    snprintf(tmp, sizeof tmp, "%s.tmp", cf.report);
    f = fopen(tmp, "w");
    if (!f || fwrite(b.p, 1, b.len, f) != b.len || fclose(f) != 0 || rename(tmp, cf.report) != 0)
        fprintf(stderr, "testd: cannot write %s: %s\n", cf.report, strerror(errno));
    buf_free(&b);
}

/* ---- the driver protocol: /getCaseCount, /runCase, /updateReports ... ---- */
static const char *query_get(const char *q, const char *key, char *out, size_t cap) {
    size_t kl = strlen(key);
    while (q && *q) {
        size_t n = strcspn(q, "&");
        if (n > kl && strncmp(q, key, kl) == 0 && q[kl] == '=') {
            size_t vl = n - kl - 1 < cap - 1 ? n - kl - 1 : cap - 1;
            memcpy(out, q + kl + 1, vl);
            out[vl] = 0;
            return out;
        }
        q += n;
        if (*q == '&') q++;
    }
    return NULL;
}
/* a utility connection: one text message (if any), then our close */
static void cf_reply(conn *c, const char *text) {
    if (text) ws_frame(c, AU_OP_TEXT, 1, text, strlen(text));
    ws_close(c, AU_CLOSE_NORMAL, NULL, 0);
    c->state = ST_CLOSING;
    c->deadline = now_ms() + CLOSE_WAIT_MS;
}
static long cf_case_index(const char *q) {     /* 0-based, -1 if none */
    char v[32];
    size_t i;
    if (query_get(q, "case", v, sizeof v)) {
        long n = strtol(v, NULL, 10);
        return n >= 1 && (size_t)n <= cf.n ? n - 1 : -1;
    }
    if (query_get(q, "casetuple", v, sizeof v))
        for (i = 0; i < cf.n; i++)
            if (strcmp(cf.cases[i].id, v) == 0) return (long)i;
    return -1;
}
static void conf_route(conn *c, const char *target) {
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    long idx = cf_case_index(q ? q + 1 : NULL);
    char text[512];
    buf b = { 0 };
    if (q) {
        char agent[64];
        if (query_get(q + 1, "agent", agent, sizeof agent)) snprintf(cf.agent, sizeof cf.agent, "%s", agent);
    }
    if (plen == 8 && strncmp(target, "/runCase", 8) == 0 && idx >= 0) {
        ccase *k = (ccase *)calloc(1, sizeof *k);
        if (!k) { fprintf(stderr, "testd: out of memory\n"); _exit(1); }
        c->cs = k;
        k->idx = (int)idx;
        k->t_open = now_us();
        log_line("conn %u case %s start", c->id, cf.cases[idx].id);
        play(c, 0);
    } else if (plen == 13 && strncmp(target, "/getCaseCount", 13) == 0) {
        snprintf(text, sizeof text, "%lu", (unsigned long)cf.n);
        cf_reply(c, text);
    } else if (plen == 12 && strncmp(target, "/getCaseInfo", 12) == 0 && idx >= 0) {
        buf_puts(&b, "{\"id\": \"");
        buf_json_escape(&b, cf.cases[idx].id);
        buf_puts(&b, "\", \"description\": \"");
        buf_json_escape(&b, cf.cases[idx].desc);
        buf_puts(&b, "\"}");
        buf_put(&b, "", 1);
        cf_reply(c, (const char *)b.p);
    } else if (plen == 14 && strncmp(target, "/getCaseStatus", 14) == 0 && idx >= 0) {
        snprintf(text, sizeof text, "{\"behavior\": \"%s\"}", v_names[cf.res[idx].verdict]);
        cf_reply(c, text);
    } else if (plen == 14 && strncmp(target, "/updateReports", 14) == 0) {
        cf_write_report();
        cf_reply(c, NULL);
    } else {
        log_line("conn %u unknown conformance request %s", c->id, target);
        cf_reply(c, NULL);
    }
    buf_free(&b);
}

/* ---- echo mode ------------------------------------------------------------------------ */
/* A request in the canonical member order becomes its answer, in place:
   {"jsonrpc":"2.0","id":ID,"method":"M","params":P}  ->  {"jsonrpc":"2.0","id":ID,"result":P}
   ({"jsonrpc":"2.0","id":ID,"method":"M"} -> ...,"result":{}}). The bytes
   before the method move forward over it, so *start moves and P stays put.
   Anything else is left as it is. */
static void echo_answer(uint8_t **start, size_t *len) {
    static const char pre[] = "{\"jsonrpc\":\"2.0\",\"id\":", meth[] = ",\"method\":\"", par[] = "\",\"params\":";
    uint8_t *p = *start;
    size_t n = *len, scan = n < 256 ? n : 256, a, m, e, cut, ins;
    const char *put;
    if (n < sizeof pre || memcmp(p, pre, sizeof pre - 1) != 0) return;
    for (a = sizeof pre - 1; a < scan && p[a] != ','; a++) {   /* the id: a number or a plain string */
        if (p[a] == '"' && a > sizeof pre - 1) { a++; break; }
    }
    if (a + sizeof meth - 1 > scan || memcmp(p + a, meth, sizeof meth - 1) != 0) return;
    m = a + sizeof meth - 1;                                   /* the method name */
    for (e = m; e < scan && p[e] != '"' && p[e] != '\\'; e++) {}
    if (e >= scan || p[e] != '"' || e == m) return;
    if (e + sizeof par - 1 <= n && memcmp(p + e, par, sizeof par - 1) == 0) {
        cut = e + sizeof par - 1;                              /* ,"method":"M","params": */
        put = ",\"result\":";
    } else if (e + 2 == n && p[e + 1] == '}') {
        cut = e + 1;                                           /* ,"method":"M" (no params) */
        put = ",\"result\":{}";
    } else return;
    ins = strlen(put);
    if (cut - a < ins) return;
    memcpy(p + cut - ins, put, ins);
    memmove(p + cut - ins - a, p, a);
    *start = p + cut - ins - a;
    *len = n - (cut - ins - a);
}
/* the whole message sits at msg.p + ECHO_ROOM: answer it without copying it */
static void echo_message(conn *c) {
    uint8_t *base = c->msg.p, *start = base + ECHO_ROOM, h[10];
    size_t len = c->msg.len - ECHO_ROOM, hl;
    if (c->state != ST_OPEN || c->close_sent) return;
    if (c->msg_op == AU_OP_TEXT) echo_answer(&start, &len);
    hl = frame_head(h, c->msg_op, 1, len);
    start -= hl;
    memcpy(start, h, hl);
    if (!buf_pending(&c->out)) {   /* hand the buffer over as the output */
        buf spare = c->out;
        c->out = c->msg;
        c->out.off = (size_t)(start - base);
        c->msg = spare;
        c->msg.off = c->msg.len = 0;
    } else {
        buf_put(&c->out, start, hl + len);
    }
}

/* ---- frame decoding (client frames: masked, any chunking) ------------------------- */
static void on_message(conn *c) {
    const char *t = (const char *)c->msg.p;
    size_t n = c->msg.len;
    if (cf.on) {   /* conformance: a case judges it; the driver connections ignore it */
        if (c->cs) cf_event(c, c->msg_op == AU_OP_TEXT ? 'T' : 'B', c->msg.p, n);
        return;
    }
    if (c->mode == M_ECHO) { echo_message(c); return; }
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
    if (c->cs) { cf_control(c); return; }
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
        if (c->mode == M_ECHO) c->msg.len = ECHO_ROOM;   /* the answer's header goes here */
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
            if (dst != p) memcpy(dst, p, take);   /* echo mode may have received it in place */
            au_ws_mask(dst, take, c->mask, c->frame_off);
            c->msg.len += take;
            if (c->msg_op == AU_OP_TEXT && c->mode != M_ECHO && au_utf8_feed(&c->utf8, dst, take) != take) {
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
    char target[512];        /* the request-target, e.g. /runCase?case=1&agent=x */
    char key[32];
    int keys, upgrade, connection, version, host, proto_match, proto_offered;
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
            else if ((size_t)(sp - (l + 4)) >= sizeof rq->target) rq->bad = "request target too long";
            else {
                memcpy(rq->target, l + 4, (size_t)(sp - (l + 4)));
                rq->target[sp - (l + 4)] = 0;
            }
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
                if (ieq(l, nn, "sec-websocket-protocol")) rq->proto_offered = 1;
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
    if (status == 401) buf_puts(&c->out, "WWW-Authenticate: Bearer realm=\"testd\"\r\n");
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
    case M_HTTP401:                            /* a daemon that wants credentials */
        log_line("conn %u http 401", c->id);
        http_reply(c, 401, "Unauthorized", "401 Unauthorized (testd): missing or wrong token");
        break;
    case M_NO_SUBPROTOCOL:                     /* a server that speaks no subprotocol refuses any offer */
        if (rq.proto_offered) {
            log_line("conn %u reject 400 unsupported subprotocol", c->id);
            http_reply(c, 400, "Bad Request", "unsupported Sec-WebSocket-Protocol");
            break;
        }
        goto normal;
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
    normal:
        if (rq.bad) {
            log_line("conn %u reject 400 %s", c->id, rq.bad);
            http_reply(c, 400, "Bad Request", rq.bad);
            break;
        }
        au_ws_accept_for_key(rq.key, strlen(rq.key), acc);
        send_101(c, acc, rq.proto_match);
        c->state = ST_OPEN;
        c->hdr_need = 2;
        if (c->mode == M_ECHO) c->msg.keep = c->out.keep = 1;   /* reused message after message */
        log_line("conn %u open%s%s", c->id, rq.proto_match ? " subprotocol " : "",
                 rq.proto_match ? g.subprotocol : "");
        if (cf.on) {
            cut_push(c, out_end(c));   /* the 101 in a write of its own */
            conf_route(c, rq.target);
        }
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
    if (cf.on) c->deadline = now_ms() + CONF_OPEN_MS;
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
    uint8_t *into = chunk;
    size_t want = sizeof chunk;
    ssize_t r;
    /* echo mode, inside a large data frame: straight into the message
       buffer, whose room frame_begin reserved (ws_input then skips the copy) */
    if (c->mode == M_ECHO && c->state == ST_OPEN && c->in_frame && c->op < 8 && c->remaining >= ECHO_DIRECT_MIN) {
        into = c->msg.p + c->msg.len;
        want = c->remaining < ((uint64_t)1 << 30) ? (size_t)c->remaining : (size_t)1 << 30;
    }
    r = recv(c->fd, into, want, 0);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (c->cs) { cf_gone(c->cs); cf_end(c->cs, "client reset TCP"); }
        conn_kill(c, errno == ECONNRESET ? "reset" : strerror(errno));
        return;
    }
    if (r == 0) {   /* a half-closed peer may still read: last try at our close reply */
        if (c->cs) { cf_gone(c->cs); cf_end(c->cs, "client closed TCP"); }
        if (buf_pending(&c->out)) conn_write(c);
        conn_kill(c, c->state == ST_DRAIN ? "closed" : "eof");
        return;
    }
    switch (c->state) {
    case ST_HEAD: head_input(c, chunk, (size_t)r); break;
    case ST_OPEN:
    case ST_CLOSING: ws_input(c, into, (size_t)r); break;
    default: break;   /* hang, endless, drain: discard */
    }
}
static void conn_write(conn *c) {
    while (buf_pending(&c->out) && c->state != ST_DEAD) {
        size_t n = buf_pending(&c->out);
        ssize_t w;
        while (c->cut_head < c->cut_len && c->cuts[c->cut_head] <= c->sent) c->cut_head++;
        if (c->cut_head < c->cut_len && c->cuts[c->cut_head] - c->sent < (uint64_t)n)
            n = (size_t)(c->cuts[c->cut_head] - c->sent);
        w = send(c->fd, c->out.p + c->out.off, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            conn_kill(c, errno == ECONNRESET || errno == EPIPE ? "reset" : strerror(errno));
            return;
        }
        buf_consume(&c->out, (size_t)w);
        c->sent += (uint64_t)w;
        /* a chopped write is over: like autobahn's queued writes, the next
           one comes a moment later (and from the next loop turn), so the
           client sees the pieces as separate reads */
        if (c->cut_head < c->cut_len && c->cuts[c->cut_head] == c->sent) {
            c->cut_head++;
            if (buf_pending(&c->out)) {
                struct timespec gap;
                gap.tv_sec = 0;
                gap.tv_nsec = CHOP_GAP_US * 1000;
                nanosleep(&gap, NULL);
                return;
            }
        }
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
    } else if (strcmp(line, "initerror") == 0 && (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0 ||
                                                  strcmp(arg, "already") == 0)) {
        g.init_error = strcmp(arg, "on") == 0 ? 1 : strcmp(arg, "already") == 0 ? 2 : 0;
        reply("ok");
    } else if (strcmp(line, "initdelay") == 0 && arg[0]) {
        g.init_delay = strtoull(arg, NULL, 10);
        reply("ok");
    } else if (strcmp(line, "initdrop") == 0 && arg[0]) {
        g.init_drop = (unsigned)strtoul(arg, NULL, 10);
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
            if (s->init) init_result(c, id);
            else rpc_result(c, id, res);
        }
        free(s->id);
        g.sleepers[i] = g.sleepers[--g.nsleepers];
    }
    if (g.frozen) return;
    for (i = 0; i < g.nconns; i++) {
        conn *c = g.conns[i];
        if (c->cs && c->state != ST_DEAD) cf_timers(c, now);
        if ((c->state == ST_CLOSING || c->state == ST_DRAIN) && c->deadline && c->deadline <= now)
            conn_kill(c, c->state == ST_CLOSING ? "close-timeout" : "drain-timeout");
        else if (cf.on && c->state == ST_HEAD && c->deadline && c->deadline <= now)
            conn_kill(c, "handshake-timeout");
    }
}
static int poll_timeout(int64_t now) {
    int64_t t = 1000;   /* wake up now and then to notice signals */
    size_t i;
    for (i = 0; i < g.nsleepers; i++)
        if (g.sleepers[i].due - now < t) t = g.sleepers[i].due - now;
    if (!g.frozen)
        for (i = 0; i < g.nconns; i++) {
            conn *c = g.conns[i];
            if (c->deadline && (c->state == ST_CLOSING || c->state == ST_DRAIN || (cf.on && c->state == ST_HEAD)) &&
                c->deadline - now < t)
                t = c->deadline - now;
            if (c->cs && !c->cs->done && cf_next_timer(c) && cf_next_timer(c) - now < t) t = cf_next_timer(c) - now;
        }
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
                    "             [--instance NAME] [--subprotocol NAME]\n"
                    "       testd --conformance [--section9-scale quick|full] [--report FILE] [--cases LIST]\n"
                    "             [--host H] [--port N] [--log FILE]   (see the top of tools/testd.c)\n");
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
        if (strcmp(a, "--conformance") == 0 && !v) { cf.on = 1; continue; }
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
        else if (strcmp(a, "--section9-scale") == 0 && (strcmp(v, "quick") == 0 || strcmp(v, "full") == 0))
            cf.quick = strcmp(v, "quick") == 0;
        else if (strcmp(a, "--report") == 0) cf.report = v;
        else if (strcmp(a, "--cases") == 0) cf.filter = v;
        else usage();
    }
    if (cf.on) {
        if (initial_mode != M_NORMAL || g.strict) usage();
        build_cases();
        if (!cf.n) { fprintf(stderr, "testd: --cases %s selects no case\n", cf.filter ? cf.filter : ""); return 2; }
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
    if (cf.on) {   /* cases still running are judged as they stand */
        for (i = 0; (size_t)i < g.nconns; i++) conn_kill(g.conns[i], "testd exit");
        cf_write_report();
    }
    for (i = 0; (size_t)i < g.nconns; i++) conn_destroy(g.conns[i]);
    for (i = 0; (size_t)i < g.nsleepers; i++) free(g.sleepers[i].id);
    free(g.conns);
    free(g.sleepers);
    free(pfds);
    free(pmap);
    free(cf.cases);
    free(cf.res);
    buf_free(&g.cmdbuf);
    if (g.lfd >= 0) close(g.lfd);
    if (g.log) fclose(g.log);
    return 0;
}
