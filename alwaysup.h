/* alwaysup.h - v0.1.0 - keep an MCP client connected to a WebSocket daemon
   that comes and goes. Public domain / MIT, see the end of this file.

   WHAT IT IS
     A single-file C99 library (stb style) holding everything a stdio <->
     WebSocket bridge needs: a hand-written RFC 6455 client, a JSON-RPC line
     framer and a reconnect loop that never gives up. The shim built from it
     (examples/alwaysup.c) sits between an MCP client that talks stdio and a
     daemon reachable over ws://, and keeps the session alive while the
     daemon restarts.

   QUICK START
     In exactly one C or C++ file:

        #define ALWAYSUP_IMPLEMENTATION
        #include "alwaysup.h"

     Everywhere else, just #include "alwaysup.h". Include it before any
     system header in the implementation file (it asks glibc/musl for the
     POSIX socket declarations), or build with -D_DEFAULT_SOURCE.

   LAYERS (each usable alone, bottom to top)
     1. Bytes in, bytes out; no I/O, no global state, any input chunking:
          au_sha1_*, au_base64_*          SHA-1 and base64 (RFC 3174/4648)
          au_utf8_*                       incremental UTF-8 validation
          au_url_parse                    ws://host[:port][/path][?query]
          au_handshake_request            the client's opening GET
          au_handshake_*                  incremental 101 response parser
          au_ws_frame_header, au_ws_mask  frame encoder
          au_ws_decoder_*                 resumable, strict frame decoder
          au_ws_*                         client connection (handshake +
                                          frames + pong/close replies)
          au_lines_*                      stdio line framer
          au_jsonrpc_scan, au_json_fold   JSON-RPC envelope scanner
          au_backoff_*                    retry schedule as data
     2. The session core: every decision, as events in and actions out;
        no socket, no clock, no file, bounded by its descriptor:
          au_core_init/free               state, from au_core_desc
          au_core_client_line/..._eof     events: a client line, EOF, stdout
          au_core_daemon_up/message/down  closed; a daemon connection up, a
          au_core_pause/stop/timeout      message, down (with why); SIGTERM;
                                          the deadline has come
          au_core_next_action             AU_ACT_STDOUT/SEND/PING/CONNECT/
                                          CLOSE/DROP/SAVE/LOG, in order
          au_core_deadline/wants_client   when to call again; read stdin?
          au_mcp_methods                  MCP policy as data: which methods
                                          are re-sent, replayed, answered here
     3. Operating system:
          au_random_bytes                 the OS CSPRNG
          au_poll, au_now_ms              poll() over sockets (select() on
                                          Windows) and a monotonic clock
          au_client_*                     one WebSocket connection over
                                          non-blocking TCP, a Unix socket, TLS
                                          (au_tls_backend) or an HTTP CONNECT
                                          proxy, for your poll loop
     4. The bridge: the core driven over stdio, au_client and poll:
          au_bridge_run                   the whole shim in one call
          au_bridge_init/pollfds/timeout/step/stop/free
                                          the same inside your own loop
          au_bridge_check                 one attempt, reported step by step
                                          with advice (alwaysup --check)

   THE CORE IN YOUR OWN LOOP
        au_core c;  au_core_desc d = {0};  au_action a;
        au_core_init(&c, &d, now);
        au_core_client_line(&c, line, len, now);     // or any other event
        while (au_core_next_action(&c, &a)) ...      // take every action
        // at au_core_deadline(&c): au_core_timeout(&c, now)
     Action data stays valid until the next event. The shim's own requests
     (the replayed initialize, setLevel, subscribe) carry integer ids, as an
     SDK client's do, that no pending client request has.

   THE BRIDGE IN ONE CALL
        au_bridge_desc d = {0};           // zero fields mean "default"
        d.url = "ws://127.0.0.1:8079";
        return au_bridge_run(&d);         // 0 on stdin EOF or SIGTERM, 2 on
                                          // a bad descriptor
     au_bridge_run installs SIGINT/SIGTERM handlers (a second signal exits at
     once) and ignores SIGPIPE while it runs; that signal hand-off is the one
     piece of process-wide state in this file. When you embed the bridge with
     au_bridge_step, ignore SIGPIPE yourself and call au_bridge_stop to end.

   CONVENTIONS
     Every context is a caller-owned struct. Descriptor structs mean "use the
     default" when a field is zero; each default is written next to its
     field. Functions that can fail return a negative AU_E* code;
     au_strerror() turns it into words. Lengths are size_t in memory and
     uint64_t on the wire; a wire length that does not fit size_t is refused
     before any allocation, so 32-bit builds are safe.

   CONFIGURATION MACROS (define before including the implementation)
     ALWAYSUP_IMPLEMENTATION   emit the implementation in this file
     ALWAYSUP_STATIC           make every function static (private copy)
     ALWAYSUP_MALLOC(n)        allocator, default malloc
     ALWAYSUP_REALLOC(p,n)     default realloc  (define all three or none)
     ALWAYSUP_FREE(p)          default free
     ALWAYSUP_ASSERT(x)        default assert(x)
     ALWAYSUP_TLS_OPENSSL      wss:// over OpenSSL 3 or LibreSSL (-lssl -lcrypto)
     ALWAYSUP_TLS_SCHANNEL     wss:// over Windows' SChannel (-lsecur32 -lcrypt32)
     ALWAYSUP_NO_THREADS       resolve names on the loop (no resolver thread)

   LICENSE
     See the end of this file.
*/
#if defined(ALWAYSUP_IMPLEMENTATION) && defined(_MSC_VER) && !defined(_CRT_SECURE_NO_WARNINGS)
#  define _CRT_SECURE_NO_WARNINGS 1           /* fopen, getenv, strerror are fine here */
#endif
#if defined(ALWAYSUP_IMPLEMENTATION) && defined(__linux__)
/* glibc/musl hide getaddrinfo, syscall() and TCP_KEEPIDLE under -std=c99 */
#  ifndef _DEFAULT_SOURCE
#    define _DEFAULT_SOURCE 1
#  endif
#  ifndef _POSIX_C_SOURCE
#    define _POSIX_C_SOURCE 200809L
#  endif
#endif
#ifndef ALWAYSUP_H
#define ALWAYSUP_H

#define ALWAYSUP_VERSION_MAJOR 0
#define ALWAYSUP_VERSION_MINOR 1
#define ALWAYSUP_VERSION_PATCH 0
#define ALWAYSUP_VERSION_STRING "0.1.0"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>                 /* FILE, for au_bridge_check's report */

#ifndef ALWAYSUP_DEF
#  ifdef ALWAYSUP_STATIC
#    if defined(__GNUC__) || defined(__clang__)
#      define ALWAYSUP_DEF static __attribute__((unused))
#    else
#      define ALWAYSUP_DEF static
#    endif
#  else
#    define ALWAYSUP_DEF extern
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------ */
enum {
    AU_OK = 0,
    AU_ENOMEM = -1,          /* allocation failed */
    AU_EINVAL = -2,          /* bad argument */
    AU_ETOOBIG = -3,         /* over a configured limit */
    AU_EURL_SCHEME = -10,    /* not ws:// or wss:// */
    AU_EURL_TLS = -11,       /* wss:// recognised, TLS is not built in */
    AU_EURL_USERINFO = -12,  /* user@host is not allowed */
    AU_EURL_FRAGMENT = -13,  /* #fragment is not allowed (RFC 6455 3) */
    AU_EURL_HOST = -14,      /* empty or malformed host */
    AU_EURL_PORT = -15,      /* port empty, not a number or not 1-65535 */
    AU_EURL_PATH = -16,      /* path or query has a byte that needs %-encoding */
    AU_EURL_UNIX = -17,      /* ws+unix: without an absolute socket path, or (au_client_init, c->error says so) no AF_UNIX here */
    AU_EHEADER = -20,        /* header name/value unusable (CR, LF, NUL...) */
    AU_ERANDOM = -21,        /* the OS random source failed */
    AU_ETLS = -22,           /* the TLS backend could not be set up (CA file, certificate, key) */
    AU_EAGAIN = -30          /* non-blocking I/O: try again when the socket is ready */
};
ALWAYSUP_DEF const char *au_strerror(int err);

/* ---- SHA-1 and base64 --------------------------------------------------- */
typedef struct au_sha1 {
    uint32_t h[5];
    uint64_t total;          /* bytes hashed so far */
    uint8_t block[64];
    size_t used;
} au_sha1;
ALWAYSUP_DEF void au_sha1_init(au_sha1 *s);
ALWAYSUP_DEF void au_sha1_update(au_sha1 *s, const void *data, size_t len);
ALWAYSUP_DEF void au_sha1_final(au_sha1 *s, uint8_t digest[20]);
ALWAYSUP_DEF void au_sha1_digest(const void *data, size_t len, uint8_t digest[20]);

#define AU_BASE64_LEN(n) ((((n) + 2) / 3) * 4)
/* Writes AU_BASE64_LEN(len) characters plus a NUL; returns the length. */
ALWAYSUP_DEF size_t au_base64_encode(const void *data, size_t len, char *out);
/* Strict decode (padding required, no whitespace). Writes at most len/4*3
   bytes; returns the count, or AU_EINVAL on any malformed input. */
ALWAYSUP_DEF int64_t au_base64_decode(const char *in, size_t len, uint8_t *out);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)); 28 chars + NUL */
ALWAYSUP_DEF void au_ws_accept_for_key(const char *key, size_t key_len, char out[29]);

/* ---- UTF-8 --------------------------------------------------------------- */
/* Incremental RFC 3629 validator: state 0 = at a code point boundary. */
typedef struct au_utf8 { uint32_t state; } au_utf8;
#define AU_UTF8_ACCEPT 0u
#define AU_UTF8_REJECT 1u
/* Feeds bytes; returns how many were accepted before the first invalid byte
   (== len when all are fine so far). After a reject the state stays REJECT. */
ALWAYSUP_DEF size_t au_utf8_feed(au_utf8 *u, const void *data, size_t len);
/* Whole-buffer check: 1 if data is complete, valid UTF-8. */
ALWAYSUP_DEF int au_utf8_valid(const void *data, size_t len);

/* ---- URL ------------------------------------------------------------------ */
typedef struct au_url {
    int tls;                 /* 1 for wss:// */
    int unix_socket;         /* 1 for ws+unix: (unix_path holds the socket, host is "localhost") */
    char unix_path[108];
    int ipv6;                /* host was a [bracketed] IPv6 literal */
    char host[256];          /* NUL-terminated, brackets removed */
    uint16_t port;           /* default 80 (443 for wss) */
    int port_given;          /* the URL named a port explicitly */
    const char *path;        /* path and query, points into the input; "/" if absent */
    size_t path_len;
} au_url;
/* Parses ws://host[:port][/path][?query], wss://... and Node ws's Unix socket
   form ws+unix:///abs/path.sock or ws+unix:/abs/path.sock, optionally followed
   by :/request/path. The input must outlive url->path. wss:// fills *url and
   returns AU_EURL_TLS: whether TLS is there is the client's business (an
   au_client with a TLS backend accepts it). */
ALWAYSUP_DEF int au_url_parse(au_url *url, const char *text, size_t len);

/* ---- opening handshake ---------------------------------------------------- */
typedef struct au_header { const char *name; const char *value; } au_header;

/* NULL if name/value may be sent; otherwise why not. Names must be HTTP
   tokens, values must not hold CR, LF, NUL or other control bytes, and the
   headers the handshake owns (Upgrade, Connection, Sec-WebSocket-*) are
   refused. Host may be given: it replaces the one built from the URL. */
ALWAYSUP_DEF const char *au_header_check(const char *name, const char *value);
/* NULL if name is a valid subprotocol token. */
ALWAYSUP_DEF const char *au_subprotocol_check(const char *name);

#define AU_WS_KEY_LEN 24     /* base64 of 16 random bytes */

typedef struct au_handshake_desc {
    const au_url *url;                 /* required */
    const char *key;                   /* required: AU_WS_KEY_LEN chars */
    const char *const *subprotocols;   /* offered, in order of preference */
    int num_subprotocols;              /* 0: offer none */
    const au_header *headers;          /* extra headers, checked */
    int num_headers;
    size_t max_head;                   /* response head limit, 0: 16 KiB */
} au_handshake_desc;

/* Makes a fresh key from 16 random bytes (OS source). */
ALWAYSUP_DEF int au_handshake_make_key(char key[AU_WS_KEY_LEN + 1]);
/* Writes the GET request into out (NUL-terminated if it fits) and returns its
   length; when cap is too small nothing useful is written and the needed
   length is still returned. Negative on invalid headers/subprotocols. */
ALWAYSUP_DEF int64_t au_handshake_request(const au_handshake_desc *d, char *out, size_t cap);

enum { AU_HS_MORE = 0, AU_HS_DONE = 1, AU_HS_FAIL = -1 };
typedef struct au_handshake {
    int status;              /* HTTP status once the status line is in */
    char reason[64];         /* its reason phrase, printable ASCII only */
    char subprotocol[64];    /* the one the server chose, "" for none */
    char error[192];         /* why it failed */
    /* private */
    char accept[29];
    const char *const *offered;
    int num_offered;
    size_t max_head, head_len;
    char *line;
    size_t line_len, line_cap;
    int state, seen;
} au_handshake;
ALWAYSUP_DEF void au_handshake_init(au_handshake *hs, const au_handshake_desc *d);
/* Feeds response bytes; *consumed tells how many belong to the head. Bytes
   after the head are the first frame bytes: hand them to the decoder. */
ALWAYSUP_DEF int au_handshake_feed(au_handshake *hs, const void *data, size_t len, size_t *consumed);
ALWAYSUP_DEF void au_handshake_free(au_handshake *hs);

/* ---- frames ------------------------------------------------------------------ */
enum {
    AU_OP_CONT = 0x0, AU_OP_TEXT = 0x1, AU_OP_BINARY = 0x2,
    AU_OP_CLOSE = 0x8, AU_OP_PING = 0x9, AU_OP_PONG = 0xA
};
enum {   /* close codes used here */
    AU_CLOSE_NORMAL = 1000, AU_CLOSE_GOING_AWAY = 1001, AU_CLOSE_PROTOCOL = 1002,
    AU_CLOSE_NO_STATUS = 1005, AU_CLOSE_ABNORMAL = 1006, AU_CLOSE_INVALID_DATA = 1007,
    AU_CLOSE_TOO_BIG = 1009, AU_CLOSE_INTERNAL = 1011
};
#define AU_WS_MAX_HEADER 14
#define AU_WS_MAX_CONTROL 125
/* 1 if a close frame may carry this code (RFC 6455 7.4 plus IANA 1012-1014). */
ALWAYSUP_DEF int au_ws_close_code_valid(unsigned code);
/* Writes a client frame header (always masked, minimal length form) and
   returns its size, 6 to 14 bytes. */
ALWAYSUP_DEF size_t au_ws_frame_header(uint8_t out[AU_WS_MAX_HEADER], unsigned opcode, int fin,
                                       uint64_t len, const uint8_t mask[4]);
/* XORs data with the mask; offset is the position of data[0] in the payload. */
ALWAYSUP_DEF void au_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);
/* Header plus masked copy of payload into out (room for len + 14). */
ALWAYSUP_DEF size_t au_ws_frame_encode(uint8_t *out, unsigned opcode, int fin, const void *payload,
                                       size_t len, const uint8_t mask[4]);

enum {
    AU_WS_EV_NONE = 0,       /* all input consumed, nothing to report */
    AU_WS_EV_DATA,           /* a piece of a text/binary message; fin on the last */
    AU_WS_EV_PING,           /* payload in data/len (whole, <= 125 bytes) */
    AU_WS_EV_PONG,
    AU_WS_EV_CLOSE,          /* code (1005 if none) and reason; later bytes are ignored */
    AU_WS_EV_ERROR           /* code 1002/1007/1009 and a reason; the stream is dead */
};
typedef struct au_ws_event {
    int type;
    unsigned opcode;         /* DATA: AU_OP_TEXT or AU_OP_BINARY */
    int first, fin;          /* DATA: first / last piece of the message */
    const uint8_t *data;     /* DATA: points into the input; control: into the decoder */
    size_t len;
    unsigned code;           /* CLOSE, ERROR */
    const char *reason;      /* CLOSE: the peer's (not NUL-terminated, reason_len); ERROR: ours */
    size_t reason_len;
} au_ws_event;

typedef struct au_ws_decoder {
    uint64_t max_message;    /* 0: 256 MiB; larger messages fail with 1009 */
    /* private */
    int state;
    uint8_t head[14];
    unsigned head_have, head_need;
    unsigned opcode, fin;
    uint64_t remaining, frame_len;
    int in_message, message_started;
    unsigned message_opcode;
    uint64_t message_len;
    au_utf8 utf8;
    uint8_t control[AU_WS_MAX_CONTROL];
    size_t control_len;
    const char *error;
    unsigned error_code;
} au_ws_decoder;
ALWAYSUP_DEF void au_ws_decoder_init(au_ws_decoder *d, uint64_t max_message);
/* Consumes input up to the next event and returns the bytes used. Call again
   with the rest until it returns 0 with AU_WS_EV_NONE. Server frames carry
   no mask, so DATA pieces point straight into the input. */
ALWAYSUP_DEF size_t au_ws_decode(au_ws_decoder *d, const void *in, size_t len, au_ws_event *ev);

/* ---- client connection, sans I/O -------------------------------------------- */
/* Source of random bytes; return 0 on success. NULL: the OS source. */
typedef int (*au_random_fn)(void *user, void *buf, size_t len);

typedef struct au_ws_desc {
    const au_url *url;                 /* required */
    const char *const *subprotocols;   /* offered; none if 0 */
    int num_subprotocols;
    const au_header *headers;
    int num_headers;
    size_t max_head;                   /* 0: 16 KiB */
    uint64_t max_message;              /* 0: 256 MiB */
    au_random_fn random;               /* 0: au_random_bytes */
    void *random_user;
} au_ws_desc;

enum {
    AU_WS_CONNECTING = 0,    /* request queued, waiting for the 101 */
    AU_WS_OPEN,
    AU_WS_CLOSING,           /* we sent close, waiting for the peer's */
    AU_WS_CLOSED,            /* close frames exchanged (or peer closed and we replied) */
    AU_WS_FAILED             /* handshake or protocol failure */
};
enum {
    AU_WS_NOTHING = 0,       /* input consumed, nothing to report */
    AU_WS_OPENED,            /* handshake done */
    AU_WS_MESSAGE,           /* whole text/binary message in data/len */
    AU_WS_PINGED,            /* a ping arrived; its pong is already queued */
    AU_WS_PONGED,
    AU_WS_PEER_CLOSED,       /* peer's close in code/reason; our reply is queued */
    AU_WS_FAILURE            /* error text in reason; close code queued if open */
};
typedef struct au_ws_msg {
    int type;
    unsigned opcode;         /* MESSAGE: AU_OP_TEXT / AU_OP_BINARY */
    const uint8_t *data;     /* valid until the next au_ws_recv */
    size_t len;
    unsigned code;           /* close code; for a failed handshake the HTTP status (0 if none) */
    const char *reason;      /* NUL-terminated */
} au_ws_msg;

typedef struct au__buf { uint8_t *p; size_t off, len, cap; } au__buf;

typedef struct au_ws {
    int state;
    char subprotocol[64];    /* chosen by the server */
    /* private */
    au_handshake hs;
    au_ws_decoder dec;
    au__buf out, msg;
    au__buf big, after;      /* output order: out, a big payload sent from the caller's own
                                buffer (masked in place, no copy), then what was queued after it */
    au_random_fn random;
    void *random_user;
    uint8_t pool[256];
    size_t pool_left;
    char reason[200];
    int msg_ready;           /* msg holds a delivered message: clear on next recv */
} au_ws;
/* Prepares the connection and queues the GET request (see au_ws_output). */
ALWAYSUP_DEF int au_ws_init(au_ws *ws, const au_ws_desc *desc);
/* Feeds bytes from the socket; see au_ws_decode for the calling pattern. */
ALWAYSUP_DEF size_t au_ws_recv(au_ws *ws, const void *data, size_t len, au_ws_msg *msg);
/* Queues one message (text/binary) or ping/pong. AU_EINVAL unless open. */
ALWAYSUP_DEF int au_ws_send(au_ws *ws, unsigned opcode, const void *data, size_t len);
/* Queues a close frame (code 0: none) and moves to CLOSING. */
ALWAYSUP_DEF int au_ws_close(au_ws *ws, unsigned code, const char *reason);
/* Bytes waiting for the socket, and how many of them the socket took. */
ALWAYSUP_DEF size_t au_ws_output(const au_ws *ws, const uint8_t **data);
ALWAYSUP_DEF void au_ws_output_done(au_ws *ws, size_t n);
ALWAYSUP_DEF void au_ws_free(au_ws *ws);

/* ---- line framer --------------------------------------------------------------- */
enum { AU_LINE_NONE = 0, AU_LINE_OK = 1, AU_LINE_TOO_LONG = 2 };
typedef struct au_lines {
    size_t max_line;         /* 0: 256 MiB */
    /* private */
    au__buf buf;
    int clear;               /* buf holds a delivered line: clear on next call */
    int discarding;          /* inside an over-cap line */
} au_lines;
ALWAYSUP_DEF void au_lines_init(au_lines *l, size_t max_line);
/* Returns the bytes used and sets *kind: AU_LINE_OK with *line and *line_len (no
   newline, trailing CR stripped, valid until the next call), AU_LINE_TOO_LONG
   once per over-cap line with its first max_line bytes in *line, or
   AU_LINE_NONE once all input is buffered. Empty lines are skipped. */
ALWAYSUP_DEF size_t au_lines_feed(au_lines *l, const void *data, size_t len, int *kind,
                                  const char **line, size_t *line_len);
/* At EOF: the last line if it had no newline (AU_LINE_OK), else AU_LINE_NONE. */
ALWAYSUP_DEF int au_lines_finish(au_lines *l, const char **line, size_t *line_len);
ALWAYSUP_DEF void au_lines_free(au_lines *l);

/* ---- JSON-RPC envelope ---------------------------------------------------------- */
enum {
    AU_RPC_INVALID = 0,      /* valid JSON but not a JSON-RPC message */
    AU_RPC_REQUEST,          /* method and id */
    AU_RPC_NOTIFICATION,     /* method, no id */
    AU_RPC_RESPONSE,         /* id and result or error, no method */
    AU_RPC_BATCH             /* a top-level array */
};
typedef struct au_tok { const char *p; size_t len; } au_tok;  /* p NULL: absent */
typedef struct au_jsonrpc {
    int kind;
    au_tok id;               /* raw token as written: "abc", 42, null */
    au_tok method;           /* raw string token with its quotes */
    au_tok params, result, error;  /* raw values */
    size_t end;              /* offset just past the value */
    int multiline;           /* raw CR or LF between tokens: fold it before writing it as a line */
    const char *problem;     /* why kind is AU_RPC_INVALID / why scan failed */
    size_t problem_at;       /* byte offset of the problem */
} au_jsonrpc;
/* Validates that text is exactly one JSON value (RFC 8259, UTF-8, nesting up
   to 512) and classifies its top level. Later duplicate keys win, as in
   JSON.parse. Returns the kind, or AU_EINVAL when the text is not JSON; then
   id and method are still set if they were whole members before the
   problem, so an error answer can reach the request it belongs to. */
ALWAYSUP_DEF int au_jsonrpc_scan(const char *text, size_t len, au_jsonrpc *out);
/* Compares a JSON string token (with quotes and escapes) with plain text. */
ALWAYSUP_DEF int au_json_string_eq(au_tok tok, const char *text);
/* Replaces raw CR/LF outside strings with spaces so the text is one line
   with the same meaning; returns how many bytes changed. */
ALWAYSUP_DEF size_t au_json_fold(char *text, size_t len);

/* ---- backoff --------------------------------------------------------------------- */
typedef struct au_backoff_desc {
    double initial;          /* first delay in seconds, 0: 0.25 */
    double factor;           /* growth per attempt, 0: 1.5 */
    double max;              /* cap in seconds, 0: 5 */
    double jitter;           /* 0..1: each delay is cut by up to this fraction, 0: none */
} au_backoff_desc;
typedef struct au_backoff {
    au_backoff_desc desc;    /* with defaults filled in */
    unsigned attempt;        /* delays handed out since the last reset */
    double current;          /* undithered delay for the next attempt */
} au_backoff;
ALWAYSUP_DEF void au_backoff_init(au_backoff *b, const au_backoff_desc *desc);
/* The delay before the next attempt; random01 in [0,1) drives the jitter. */
ALWAYSUP_DEF double au_backoff_next(au_backoff *b, double random01);
ALWAYSUP_DEF void au_backoff_reset(au_backoff *b);

/* ---- the session core: MCP session continuity, sans I/O --------------------------- */
/* Everything the shim decides, as a value you own: it takes events (a client
   line, a daemon message, the connection up or down, stdin EOF, the time now)
   and produces actions (bytes for stdout, messages for the daemon, connect,
   close, wake me at T). It owns no socket, reads no clock and writes no file;
   au_bridge_* below is one driver for it, a simulator or an editor plugin with
   its own event loop can be another. */

/* Defaults, in one place: the core, the bridge and the shim's --help use them. */
#define AU_DEFAULT_CONNECT_TIMEOUT 5.0     /* s per address */
#define AU_DEFAULT_HANDSHAKE_TIMEOUT 10.0  /* s from TCP up to the 101 */
#define AU_DEFAULT_SETUP_TIMEOUT 60.0      /* s for the hello answer and the replayed session */
#define AU_DEFAULT_HEALTHY_AFTER 10.0      /* s up before the backoff starts over */
#define AU_DEFAULT_PING_INTERVAL 20.0      /* s of silence before a ping */
#define AU_DEFAULT_PING_TIMEOUT 20.0       /* s for anything to arrive after it */
#define AU_DEFAULT_QUEUE_TIMEOUT 30.0      /* s a queued request waits for a daemon */
#define AU_DEFAULT_QUEUE_MAX_BYTES ((size_t)64 << 20)
#define AU_DEFAULT_QUEUE_MAX_COUNT 4096
#define AU_DEFAULT_MAX_PENDING 16384       /* requests waiting for an answer before stdin waits */
#define AU_DEFAULT_MAX_MESSAGE ((uint64_t)256 << 20)
#define AU_DEFAULT_DRAIN_TIMEOUT 2.0       /* s for in-flight answers after stdin EOF */
#define AU_DEFAULT_CLOSE_TIMEOUT 1.0       /* s for the close reply when stopping */
#define AU_DEFAULT_INIT_GRACE 10.0         /* s before a waiting initialize is answered here */
#define AU_DEFAULT_RESEND_MAX 2            /* re-sends of a safe request after lost connections */

enum { AU_LOG_ERROR = 1, AU_LOG_WARN, AU_LOG_INFO, AU_LOG_DEBUG };
enum { AU_LIST_CHANGED_ADVERTISED = 0, AU_LIST_CHANGED_ALWAYS, AU_LIST_CHANGED_NEVER };

/* MCP policy as data: what each method means to the session. A name that
   starts with '*' matches by suffix ("*\/list": every list method). */
enum {
    AU_ROLE_NONE = 0,
    AU_ROLE_INITIALIZE,      /* kept verbatim; replayed first on every new daemon */
    AU_ROLE_INITIALIZED,     /* notifications/initialized: remembered, replayed after initialize */
    AU_ROLE_SET_LEVEL,       /* logging/setLevel: the last params replayed */
    AU_ROLE_SUBSCRIBE,       /* resources/subscribe: the set of URIs replayed */
    AU_ROLE_UNSUBSCRIBE,     /* resources/unsubscribe: leaves that set */
    AU_ROLE_CANCELLED,       /* notifications/cancelled: forgets the request it names */
    AU_ROLE_PING,            /* answered here while no daemon holds the session */
    AU_ROLE_TOOLS_LIST,      /* translated by a dialect (exai: list_tools, answered in order) */
    AU_ROLE_TOOLS_CALL       /* translated by a dialect (exai: call_tool by request id) */
};
enum {
    AU_METHOD_RESEND = 1,    /* a new daemon may run it again: re-sent after a lost connection */
    AU_METHOD_RESEND_ALWAYS = 2,  /* re-sent without the cap, never failed for a lost connection */
    AU_METHOD_WAITS = 4      /* no queue timeout (initialize waits, init_grace answers it) */
};
typedef struct au_method_policy {
    const char *name;
    int role;                /* AU_ROLE_* */
    unsigned flags;          /* AU_METHOD_* */
} au_method_policy;
/* The MCP table the core uses unless au_core_desc.methods says otherwise. */
ALWAYSUP_DEF const au_method_policy *au_mcp_methods(int *count);

/* Daemon dialects: what the daemon side of the core speaks. MCP passes the
   client's JSON-RPC through (and carries the session over); EXAI makes the
   core the MCP server towards the client and speaks EX-AI-MCP-Server's "op"
   protocol to the daemon (hello, list_tools, call_tool by request id). A
   dialect is a method table and a translator in the core. */
enum { AU_DIALECT_MCP = 0, AU_DIALECT_EXAI };
typedef struct au_exai_desc {
    const char *session_id;            /* NULL: a random UUID per core, kept across reconnects */
    const char *token;                 /* the hello's token; NULL: ""; never logged */
    const char *server_name;           /* serverInfo.name for the client; NULL: "ex-ws-shim" */
    double ack_grace;                  /* 0: 120 s added to a call_tool_ack's timeout */
} au_exai_desc;
/* The EX-AI dialect's table: initialize and ping answered here, tools/list
   and tools/call translated, every other request -32601. */
ALWAYSUP_DEF const au_method_policy *au_exai_methods(int *count);

typedef struct au_core_desc {
    const char *daemon_name;           /* for logs (a URL without its query); NULL: "the daemon" */
    double setup_timeout;              /* 0: 60 s for the hello answer and the replayed session,
                                          on top of the keepalive rule */
    au_backoff_desc backoff;           /* zeros: 0.25 s, x1.5, capped at 5 s */
    double healthy_after;              /* 0: 10 s up before the attempt count resets */
    double ping_interval;              /* 0: 20 s of silence before a ping; < 0: never */
    double ping_timeout;               /* 0: 20 s for anything to arrive after it; < 0: off */
    double queue_timeout;              /* 0: 30 s before a queued request gets an error */
    size_t queue_max_bytes;            /* 0: 64 MiB queued while down (then the client waits) */
    size_t queue_max_count;            /* 0: 4096 messages */
    size_t max_pending;                /* 0: 16384 requests unanswered (then the client waits) */
    double drain_timeout;              /* 0: 2 s for in-flight answers after stdin EOF */
    double close_timeout;              /* 0: 1 s for the close reply when stopping */
    int resend_max;                    /* 0: 2 re-sends of a safe request; < 0: none */
    int no_mcp;                        /* 1: plain JSON-RPC, no MCP session handling */
    double init_grace;                 /* 0: 10 s before a waiting initialize is answered here; < 0: never */
    int list_changed;                  /* AU_LIST_CHANGED_* */
    const char *hello;                 /* JSON sent first on every connection; NULL: none */
    double hello_ack_timeout;          /* 0: the setup timeout; < 0: send without waiting */
    const au_method_policy *methods;   /* NULL: au_mcp_methods() */
    int num_methods;
    const char *remembered;            /* the last InitializeResult from this daemon (copied) */
    size_t remembered_len;
    int dialect;                       /* AU_DIALECT_MCP (0) or AU_DIALECT_EXAI */
    au_exai_desc exai;                 /* the EXAI dialect's settings (hello, serverInfo) */
    int no_resend;                     /* 1: a call in flight on a lost connection gets an error
                                          instead of being sent again (EXAI: tools/call) */
    int log_level;                     /* 0: AU_LOG_INFO; LOG actions above it are not made */
    au_random_fn random;               /* backoff jitter; NULL: au_random_bytes */
    void *random_user;
} au_core_desc;

enum {
    AU_ACT_STDOUT = 1,       /* one JSON-RPC message for the client (add the newline) */
    AU_ACT_SEND,             /* one text message for the daemon */
    AU_ACT_PING,             /* send a ping */
    AU_ACT_CONNECT,          /* start a connection attempt; report up or down */
    AU_ACT_CLOSE,            /* close politely with code; report down when it is over */
    AU_ACT_DROP,             /* end the connection now; the core has already counted it down */
    AU_ACT_SAVE,             /* remember this InitializeResult for a later cold start */
    AU_ACT_LOG               /* level, event and text */
};
typedef struct au_action {
    int type;
    const char *data;        /* valid until the next event is given to the core; it may point
                                into the input of that event (a forwarded line or message) */
    size_t len;
    int level;               /* LOG: AU_LOG_* */
    const char *event;       /* LOG: a stable name ("connected", "lost", "refused", ...) */
    unsigned code;           /* CLOSE: the close code */
} au_action;

typedef struct au__req au__req;
typedef struct au__msg au__msg;
typedef struct au__dreq au__dreq;
typedef struct au__act au__act;
typedef struct au__call au__call;

typedef struct au_core {
    au_core_desc d;                    /* with the defaults filled in */
    /* private */
    struct {                           /* actions not taken yet, and the bytes they own */
        au__act *list;
        size_t count, cap, next;
        au__buf arena;
        au__msg *retired;              /* freed once the actions that point into them are taken */
    } act;
    struct {                           /* client requests by id, queued or in flight */
        au__req **tab;
        size_t cap, count, inflight;
        uint64_t seq;
    } reqs;
    struct {                           /* client messages waiting for the daemon, in order */
        au__msg *head, *tail;
        size_t bytes, count;
    } q;
    struct {                           /* the daemon connection */
        int state;                     /* AU__DOWN ... AU__UP */
        unsigned gen;                  /* connections opened so far */
        unsigned attempts, reconnects;
        int healthy, paused, logged_failure, refused;
        int64_t retry_at, last_early, up_since, down_since, setup_since, last_rx, ping_sent_at;
        char last_error[256];          /* why the last attempt failed */
        char peer[96];                 /* what the driver said it connected to */
    } conn;
    struct {                           /* MCP session memory, replayed on every new daemon */
        au__buf init_req;              /* the client's initialize, verbatim */
        size_t init_id_at, init_id_len;
        au__buf init_result;           /* the InitializeResult the client saw */
        au__buf daemon_result;         /* the InitializeResult of the current daemon */
        au__buf remembered;            /* the last one saved, for a cold start */
        au__buf set_level;             /* params of the last logging/setLevel */
        au__buf subs;                  /* subscribed resource URIs, one JSON string per line */
        au__req *init_pending;         /* the client's initialize while unanswered */
        int init_state, client_initialized, session_up, init_minimal;
        au__buf shim_ids;              /* int64 ids of our own requests in flight (REPLAY only) */
        int64_t shim_next;
        int shim_init_pending;
        int64_t shim_init_id;
    } mcp;
    struct {                           /* the EXAI dialect */
        au__buf hello;                 /* {"op":"hello",...}, built once */
        char rid_prefix[128];          /* request ids: <session>-<random>-<seq> */
        size_t rid_prefix_len;
        au__call *calls;               /* every tools/call not answered yet */
        unsigned shim_lists;           /* our own list_tools in flight, answered first */
        au__buf seen_tools;            /* the tools array the client was last given */
        int timers_dirty;
        int64_t next_timer;
    } exai;
    au__dreq *dreqs;                   /* daemon requests the client has not answered */
    size_t dreq_count;
    au_backoff backoff;
    int64_t timers[10];                /* one deadline per AU__T_*, -1: not armed */
    int64_t now, phase_deadline;
    int phase, stdin_eof, stdout_dead;
    au__buf scratch;
} au_core;

/* Checks and copies the descriptor (defaults filled in). No action yet. */
ALWAYSUP_DEF int au_core_init(au_core *c, const au_core_desc *desc, int64_t now);
ALWAYSUP_DEF void au_core_free(au_core *c);
/* Events. Take every action (au_core_next_action) before the next event. */
ALWAYSUP_DEF void au_core_client_line(au_core *c, const char *line, size_t len, int64_t now);
/* A line over the limit: its first bytes (for the id) and the limit. */
ALWAYSUP_DEF void au_core_client_too_long(au_core *c, const char *head, size_t head_len, uint64_t limit, int64_t now);
ALWAYSUP_DEF void au_core_client_eof(au_core *c, int64_t now);
ALWAYSUP_DEF void au_core_client_gone(au_core *c, int64_t now);     /* stdout is closed */
ALWAYSUP_DEF void au_core_daemon_up(au_core *c, const char *peer, int64_t now);
ALWAYSUP_DEF void au_core_daemon_message(au_core *c, const char *data, size_t len, int binary, int64_t now);
ALWAYSUP_DEF void au_core_daemon_alive(au_core *c, int64_t now);    /* bytes or a pong arrived */
ALWAYSUP_DEF void au_core_daemon_down(au_core *c, const char *why, int64_t now);
/* The driver holds daemon input back (the client reads slowly): keepalive waits. */
ALWAYSUP_DEF void au_core_pause(au_core *c, int paused, int64_t now);
ALWAYSUP_DEF void au_core_stop(au_core *c, int64_t now);            /* SIGTERM: answer, close, end */
ALWAYSUP_DEF void au_core_timeout(au_core *c, int64_t now);         /* call at au_core_deadline */
/* Queries. */
ALWAYSUP_DEF int64_t au_core_deadline(const au_core *c);            /* ms, -1: none */
ALWAYSUP_DEF int au_core_wants_client(const au_core *c);            /* 0: do not read stdin now */
ALWAYSUP_DEF int au_core_finished(const au_core *c);
ALWAYSUP_DEF int au_core_connected(const au_core *c);               /* the session is up */
/* The next action, in order: 1 while there is one. */
ALWAYSUP_DEF int au_core_next_action(au_core *c, au_action *a);

/* ---- operating system -------------------------------------------------------------- */
/* Fills buf from the OS CSPRNG (getrandom, arc4random_buf, /dev/urandom,
   BCryptGenRandom). Never rand(). 0 on success, AU_ERANDOM on failure. */
ALWAYSUP_DEF int au_random_bytes(void *buf, size_t len);

/* ---- sockets and the poll loop ------------------------------------------------------ */
#ifdef _WIN32
typedef uintptr_t au_socket_t;           /* a Winsock SOCKET, never squeezed into an int */
#else
typedef int au_socket_t;
#endif
#define AU_INVALID_SOCKET ((au_socket_t)-1)
enum { AU_POLLIN = 1, AU_POLLOUT = 2, AU_POLLERR = 4 };
typedef struct au_pollfd { au_socket_t fd; int events, revents; } au_pollfd;

/* Milliseconds on a monotonic clock. */
ALWAYSUP_DEF int64_t au_now_ms(void);
/* poll() over sockets (and on POSIX any descriptor): AU_POLLIN/AU_POLLOUT in
   events, AU_POLLERR also in revents. select() on Windows, where WSAPoll
   misses failed connects. timeout_ms < 0 waits forever. Returns the number
   of ready entries, 0 on timeout, -1 on error. */
ALWAYSUP_DEF int au_poll(au_pollfd *fds, int n, int timeout_ms);

/* One WebSocket client connection over non-blocking TCP, driven by your
   poll loop: au_client_connect, then poll c->sock for au_client_events()
   until au_client_deadline(), then call au_client_poll() until it returns 0.
   Every connection ends with exactly one AU_WS_DISCONNECTED event. */
/* TLS behind one small interface, so the backend is a build choice:
   ALWAYSUP_TLS_OPENSSL compiles the OpenSSL (or LibreSSL) one (-lssl -lcrypto),
   ALWAYSUP_TLS_SCHANNEL on Windows the SChannel one (-lsecur32 -lcrypt32;
   client keys RSA only); a program can bring its own. Calls are non-blocking: AU_EAGAIN sets *want to the
   AU_POLLIN/AU_POLLOUT the backend waits for. */
typedef struct au_tls_desc {
    const char *ca_file;               /* PEM CAs trusted instead of the system's; NULL: the system's store */
    const char *cert_file;             /* client certificate chain (PEM) for mutual TLS; NULL: none */
    const char *key_file;              /* its private key (PEM); NULL: in cert_file */
    int insecure;                      /* 1: no certificate or name check at all */
} au_tls_desc;
typedef struct au_tls_backend {
    const char *name;                  /* "OpenSSL 3.0.13", for --version and logs */
    void *(*ctx_new)(const au_tls_desc *d, char *err, size_t cap);      /* once per client */
    void (*ctx_free)(void *ctx);
    void *(*conn_new)(void *ctx, au_socket_t s, const char *host, int host_is_ip, char *err, size_t cap);
    int (*handshake)(void *conn, int *want, char *err, size_t cap);     /* AU_OK, AU_EAGAIN, < 0 */
    long (*read)(void *conn, void *buf, size_t n, int *want, char *err, size_t cap);   /* > 0, 0: closed,
                                                                                        AU_EAGAIN, < 0 */
    long (*write)(void *conn, const void *buf, size_t n, int *want, char *err, size_t cap);   /* > 0, AU_EAGAIN, < 0 */
    size_t (*pending)(void *conn);     /* decrypted bytes waiting: read them before polling again */
    void (*conn_free)(void *conn);
} au_tls_backend;
/* The backend compiled in, or NULL (then wss:// is refused with AU_EURL_TLS). */
ALWAYSUP_DEF const au_tls_backend *au_tls_builtin(void);
/* "tcp, unix, tls (OpenSSL 3.0.13)": what this build can connect over. */
ALWAYSUP_DEF const char *au_transports(void);

typedef struct au_client_desc {
    const char *url;                   /* required: ws://host[:port][/path], wss://..., ws+unix:/path.sock[:/path] */
    const au_tls_backend *tls;         /* for wss://; NULL: au_tls_builtin() */
    au_tls_desc tls_opts;              /* trust, client certificate, --insecure */
    const char *proxy;                 /* http://[user:password@]host[:port] for HTTP CONNECT; NULL: none */
    const char *proxy_auth;            /* "user:password" for Basic; NULL: from the proxy URL, if any; never logged */
    const char *const *subprotocols;   /* offered, none if 0 */
    int num_subprotocols;
    const au_header *headers;          /* extra request headers */
    int num_headers;
    uint64_t max_message;              /* 0: 256 MiB (1009 above it) */
    double connect_timeout;            /* seconds per address, 0: 5 */
    double handshake_timeout;          /* seconds from TCP up to 101, 0: 10 */
    double close_timeout;              /* seconds to wait for TCP to end after a close, 0: 1 */
    size_t read_size;                  /* socket read buffer, 0: 32 KiB (big payloads are read
                                          straight into the message, not through it) */
} au_client_desc;

enum { AU_WS_DISCONNECTED = 100 };       /* au_client_poll only: TCP is gone; code and reason say why */
enum { AU_CLIENT_IDLE = 0, AU_CLIENT_RESOLVING, AU_CLIENT_CONNECTING, AU_CLIENT_PROXY, AU_CLIENT_TLS, AU_CLIENT_HANDSHAKE, AU_CLIENT_OPEN,
       AU_CLIENT_CLOSING };

typedef struct au_client {
    int state;                         /* AU_CLIENT_* */
    au_socket_t sock;                  /* poll this while state != IDLE */
    au_url url;
    char peer[64];                     /* address connected to, for logs */
    char error[256];                   /* why the last attempt or connection ended */
    int64_t reached[AU_CLIENT_OPEN + 1];   /* when this attempt got through each step, by the state it
                                          left (ms, 0: not); reached[IDLE]: when it began */
    int http_status;                   /* an upgrade answered with another status than 101: it, else 0 */
    /* private */
    au_client_desc desc;
    char *url_text;
    au_ws ws;
    void *addrs, *next_addr;
    int64_t deadline;
    uint8_t *rbuf;
    const uint8_t *inp;                /* input not yet handed to au_ws: in rbuf, or read */
    size_t inlen;                      /* straight into the message buffer */
    unsigned end_code;
    int ended;                         /* a DISCONNECTED event is owed */
    int corked;                        /* au_client_send queues without writing */
    int drained;                       /* the last read was short: reading again before the
                                          next poll would only say EAGAIN */
    int64_t last_rx;                   /* when bytes last arrived (ms) */
    int wsa;                           /* Windows: WSAStartup done */
    const au_tls_backend *tlsb;        /* wss:// only */
    void *tls_ctx, *tls_conn;
    int tls_want;                      /* what the TLS backend waits for */
    int via_proxy;                     /* HTTP CONNECT through proxy_url first */
    au_url proxy_url;                  /* host and port of the proxy */
    char *proxy_request;               /* the CONNECT request (holds the credentials: never logged) */
    size_t proxy_request_len, proxy_sent;
    char proxy_head[2048];             /* the proxy's answer so far */
    size_t proxy_head_len;
    void *lookup;                      /* a name being resolved off the loop (sock is its pipe) */
} au_client;
/* Copies what it needs from desc. AU_EURL_* / AU_EHEADER if unusable. */
ALWAYSUP_DEF int au_client_init(au_client *c, const au_client_desc *desc);
/* Starts an attempt: resolves the host, begins the non-blocking connect. A
   failure to start still ends with AU_WS_DISCONNECTED from au_client_poll. */
ALWAYSUP_DEF void au_client_connect(au_client *c, int64_t now);
ALWAYSUP_DEF int au_client_events(const au_client *c);      /* AU_POLLIN/AU_POLLOUT */
ALWAYSUP_DEF int64_t au_client_deadline(const au_client *c); /* ms, -1: none */
/* Does the I/O the readiness allows and reports one event in *m. Returns 1
   when *m holds an event (call again), 0 when there is nothing more now. */
ALWAYSUP_DEF int au_client_poll(au_client *c, int revents, int64_t now, au_ws_msg *m);
/* Queues a message and writes what the socket takes at once (unless corked). */
ALWAYSUP_DEF int au_client_send(au_client *c, unsigned opcode, const void *data, size_t len);
/* Corked, au_client_send only queues; uncorking writes everything queued in
   as few sends as the socket allows. For batches of small messages. */
ALWAYSUP_DEF void au_client_cork(au_client *c, int on);
/* Starts the closing handshake (code 0: none); ends with DISCONNECTED. */
ALWAYSUP_DEF int au_client_close(au_client *c, unsigned code, const char *reason, int64_t now);
/* Ends the connection at once (a best-effort write of what is queued first). */
ALWAYSUP_DEF void au_client_drop(au_client *c);
ALWAYSUP_DEF size_t au_client_unsent(const au_client *c);    /* bytes not yet on the socket */
ALWAYSUP_DEF void au_client_free(au_client *c);

/* ---- the bridge: the core driven over stdio and one au_client ------------------------- */
typedef void (*au_log_fn)(void *user, int level, const char *message);
enum { AU_LOG_TEXT = 0, AU_LOG_JSON = 1 };

typedef struct au_bridge_desc {
    const char *url;                   /* required */
    const au_header *headers;          /* sent on every connect; values never logged */
    int num_headers;
    const char *subprotocol;           /* offered; NULL: "mcp", "": none, "a,b": both */
    double connect_timeout;            /* 0: 5 s */
    double handshake_timeout;          /* 0: 10 s */
    double setup_timeout;              /* 0: 60 s for the hello answer and the replayed session */
    au_backoff_desc backoff;           /* zeros: 0.25 s, x1.5, capped at 5 s */
    double healthy_after;              /* 0: 10 s up before the attempt count resets */
    double ping_interval;              /* 0: 20 s of silence before a ping; < 0: never */
    double ping_timeout;               /* 0: 20 s for anything to arrive after it; < 0: off */
    double queue_timeout;              /* 0: 30 s before a queued request gets an error */
    size_t queue_max_bytes;            /* 0: 64 MiB queued while down (then stdin waits) */
    size_t queue_max_count;            /* 0: 4096 messages */
    size_t max_pending;                /* 0: 16384 unanswered requests (then stdin waits) */
    uint64_t max_message;              /* 0: 256 MiB, either direction */
    double drain_timeout;              /* 0: 2 s for in-flight answers after stdin EOF */
    double close_timeout;              /* 0: 1 s for the close reply when stopping */
    int log_level;                     /* 0: AU_LOG_INFO */
    au_log_fn log;                     /* 0: timestamped lines on stderr */
    void *log_user;
    const char *log_file;              /* also append logs here; NULL: none */
    uint64_t log_max_size;             /* 0: 10 MiB; a log_file that would grow past it is moved to
                                          FILE.1 (replacing the older one) and started afresh */
    int log_format;                    /* AU_LOG_TEXT (0): "TIME alwaysup LEVEL: MESSAGE"; AU_LOG_JSON:
                                          one object per line (time, level, event, daemon, message) */
    au_socket_t in_fd;                 /* 0: standard input */
    au_socket_t out_fd;                /* 0: standard output (fd 1) */
    /* MCP session continuity (see the README) */
    int no_mcp;                        /* 1: a plain JSON-RPC daemon, no MCP handling at all */
    double init_grace;                 /* 0: 10 s before a waiting initialize is answered
                                          here; < 0: never */
    int list_changed;                  /* AU_LIST_CHANGED_*: tell the client after a reconnect */
    const char *state_dir;             /* keeps the last InitializeResult per URL; NULL:
                                          $XDG_STATE_HOME/alwaysup (%LOCALAPPDATA%), "": none */
    const char *hello;                 /* JSON sent first on every connection; NULL: none */
    double hello_ack_timeout;          /* 0: the setup timeout, for an answer with "ok":true;
                                          < 0: no wait */
    /* the daemon's protocol */
    int daemon_protocol;               /* AU_DIALECT_MCP (0) or AU_DIALECT_EXAI; EXAI offers no
                                          subprotocol unless one is given, and sends its own hello */
    au_exai_desc exai;                 /* EXAI: session id, token, serverInfo name, ack grace */
    int no_resend;                     /* 1: a call in flight on a lost connection gets an error */
    au_tls_desc tls;                   /* wss://: CA file, client certificate, insecure */
    const au_tls_backend *tls_backend; /* NULL: au_tls_builtin() */
    const char *proxy;                 /* HTTP CONNECT proxy http://host:port for every daemon; "": none;
                                          NULL: from the environment as curl reads it (http_proxy for
                                          ws://, https_proxy for wss://, else ALL_PROXY; NO_PROXY;
                                          never for loopback daemons) */
    const char *proxy_auth;            /* "user:password" for the proxy; never logged */
    const char *const *more_urls;      /* more daemons: a failed attempt tries the next, round */
    int num_more_urls;
} au_bridge_desc;

typedef struct au_bridge {
    char error[256];                   /* why au_bridge_init refused the descriptor */
    int exit_code;                     /* once au_bridge_step returned 0 */
    /* private */
    au_bridge_desc d;
    au_core core;                      /* every decision */
    au_client client;                  /* the daemon connection */
    au_lines lines;                    /* stdin framing */
    const char *protos[8];
    char proto_buf[256];
    int num_protos;
    int stdin_eof, told_eof, stdout_dead, told_gone, paused, finished, in_flags, out_flags;
    void *log_file;
    uint64_t log_size;                 /* bytes in log_file, for its rotation */
    au__buf log_buf;                   /* a JSON log line being built */
    char safe_url[300];
    const char *urls[16];              /* url, then more_urls */
    int num_urls, url_at, opened, proxy_logged;
    char proxy_shown[300];             /* the proxy of the current URL, without credentials */
    uint8_t *ibuf;                     /* what stdin gave, not yet framed */
    size_t ibuf_cap, ipos, ilen;
    au__buf out;                       /* stdout bytes not written yet */
    const uint8_t *big;                /* a big message stdout has not taken yet, written from */
    size_t big_len, big_off;           /* where it lies (the socket is not read meanwhile) */
    const char *msg_p, *msg_end;       /* the daemon message the core is looking at */
    int64_t now, done_by;
} au_bridge;

/* Checks the descriptor and prepares the bridge; no I/O yet. On an error
   (bad URL, header, subprotocol) b->error says why. */
ALWAYSUP_DEF int au_bridge_init(au_bridge *b, const au_bridge_desc *desc);
/* For embedding in your loop: the descriptors to poll (at most 3) and the
   milliseconds until the next timer (-1: none). */
ALWAYSUP_DEF int au_bridge_pollfds(au_bridge *b, au_pollfd *fds, int max);
ALWAYSUP_DEF int au_bridge_timeout(au_bridge *b);
/* Handles readiness and timers; returns 1 while running, 0 when finished
   (b->exit_code tells the exit status). */
ALWAYSUP_DEF int au_bridge_step(au_bridge *b, const au_pollfd *fds, int n);
/* Begins a graceful stop (what SIGTERM does): answers what is pending with an
   error, sends close 1000, waits for the reply up to close_timeout. */
ALWAYSUP_DEF void au_bridge_stop(au_bridge *b);
ALWAYSUP_DEF void au_bridge_free(au_bridge *b);
/* The whole shim: init, a poll loop, SIGINT/SIGTERM (or Ctrl-C) as a stop,
   SIGPIPE ignored. Returns the exit status: 0, or 2 for a bad descriptor. */
ALWAYSUP_DEF int au_bridge_run(const au_bridge_desc *desc);
/* One-shot diagnosis (alwaysup --check): one attempt at each URL with these
   options, then what a client does (initialize, the tools, prompts and
   resources lists, ping), a line per step with its time and, for a failure,
   what to change, written to report. Never retries. Returns 0 when every URL
   gave an MCP session, 1 when one did not, 2 for a bad descriptor. */
ALWAYSUP_DEF int au_bridge_check(const au_bridge_desc *desc, FILE *report);

#ifdef __cplusplus
}
#endif
#endif /* ALWAYSUP_H */

/* ======================================================================== */
#ifdef ALWAYSUP_IMPLEMENTATION
#ifndef ALWAYSUP_IMPLEMENTATION_DONE
#define ALWAYSUP_IMPLEMENTATION_DONE

/* ---- platform ---------------------------------------------------------- */
#if defined(_WIN32)
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <winsock2.h>
#  include <ws2tcpip.h>
#  include <windows.h>
#  include <bcrypt.h>
#  ifdef _MSC_VER
#    pragma comment(lib, "ws2_32")
#    pragma comment(lib, "bcrypt")
#  endif
#  if defined(__has_include)
#    if __has_include(<afunix.h>)
#      include <afunix.h>             /* AF_UNIX, Windows 10 1803 and newer */
#      define AU__HAVE_AFUNIX 1
#    endif
#  endif
#  if defined(AU__HAVE_AFUNIX)
typedef struct sockaddr_un au__sockaddr_un;
#  else
typedef struct { ADDRESS_FAMILY sun_family; char sun_path[108]; } au__sockaddr_un;   /* as afunix.h has it */
#  endif
#  if !defined(ALWAYSUP_NO_THREADS)
#    define AU__ASYNC_RESOLVE 1        /* name resolution off the event loop (CreateThread) */
#  endif
#else
#  include <errno.h>
#  include <fcntl.h>
#  include <unistd.h>
#  include <sys/types.h>
#  include <sys/socket.h>
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <sys/uio.h>
#  include <sys/un.h>
typedef struct sockaddr_un au__sockaddr_un;
#  if !defined(ALWAYSUP_NO_THREADS)
#    include <pthread.h>               /* name resolution off the event loop */
#    define AU__ASYNC_RESOLVE 1
#  endif
#  include <netinet/in.h>
#  include <netinet/tcp.h>
#  include <netdb.h>
#  include <poll.h>
#  include <signal.h>
#  include <time.h>
#  if defined(__linux__)
#    include <sys/syscall.h>
#  endif
#endif
#include <stdarg.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(ALWAYSUP_MALLOC) && defined(ALWAYSUP_REALLOC) && defined(ALWAYSUP_FREE)
/* user-supplied allocator */
#elif !defined(ALWAYSUP_MALLOC) && !defined(ALWAYSUP_REALLOC) && !defined(ALWAYSUP_FREE)
#  define ALWAYSUP_MALLOC(n) malloc(n)
#  define ALWAYSUP_REALLOC(p, n) realloc(p, n)
#  define ALWAYSUP_FREE(p) free(p)
#else
#  error "alwaysup.h: define ALWAYSUP_MALLOC, ALWAYSUP_REALLOC and ALWAYSUP_FREE together, or none"
#endif
#ifndef ALWAYSUP_ASSERT
#  include <assert.h>
#  define ALWAYSUP_ASSERT(x) assert(x)
#endif

#define AU__MIN(a, b) ((a) < (b) ? (a) : (b))
#if defined(_MSC_VER) && !defined(__cplusplus)
#  define AU__INLINE static __inline                /* MSVC's C mode predates C99 inline */
#else
#  define AU__INLINE static inline
#endif
#define AU__LIT(s) s, (sizeof(s) - 1)          /* a string literal and its length */
#define AU__NO_AFUNIX "this Windows has no AF_UNIX sockets (Windows 10 1803 or newer has them)"
#define AU__DEFAULT_MAX_MESSAGE ((uint64_t)256 << 20)
#define AU__DEFAULT_MAX_HEAD ((size_t)16 << 10)

/* ========================================================================
   Layer 1: bytes in, bytes out
   ======================================================================== */

ALWAYSUP_DEF const char *au_strerror(int err) {
    switch (err) {
    case AU_OK: return "ok";
    case AU_ENOMEM: return "out of memory";
    case AU_EINVAL: return "invalid argument";
    case AU_ETOOBIG: return "over the configured limit";
    case AU_EURL_SCHEME: return "URL must start with ws://, wss:// or ws+unix:";
    case AU_EURL_TLS: return "wss:// needs TLS, which this build does not have: rebuild with make TLS=openssl "
                             "(or use ws:// on loopback, or a TLS proxy in front)";
    case AU_EURL_UNIX: return "ws+unix: needs an absolute socket path of at most 107 bytes (ws+unix:///path.sock[:/request/path])";
    case AU_ETLS: return "TLS setup failed (CA file, certificate or key)";
    case AU_EURL_USERINFO: return "user:password@ in the URL is not supported; send credentials in a header";
    case AU_EURL_FRAGMENT: return "a #fragment is not allowed in a WebSocket URL";
    case AU_EURL_HOST: return "URL host is empty or malformed";
    case AU_EURL_PORT: return "URL port must be a number from 1 to 65535";
    case AU_EURL_PATH: return "URL path or query holds a space, control or non-ASCII byte (percent-encode it)";
    case AU_EHEADER: return "header name or value is not allowed";
    case AU_ERANDOM: return "the operating system's random source failed";
    default: return "unknown error";
    }
}

static int au__lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* case-insensitive compare of n bytes with a NUL-terminated lowercase word */
static int au__ieq(const char *s, size_t n, const char *word) {
    size_t i;
    for (i = 0; i < n; i++)
        if (word[i] == 0 || au__lower((unsigned char)s[i]) != word[i]) return 0;
    return word[n] == 0;
}

/* ---- growable byte buffer with a consumed prefix ---- */
static int au__buf_reserve(au__buf *b, size_t extra) {
    size_t need, cap;
    uint8_t *p;
    if (b->off && b->off == b->len) b->off = b->len = 0;
    if (extra > SIZE_MAX - b->len) return AU_ENOMEM;
    need = b->len + extra;
    if (need <= b->cap) return AU_OK;
    if (b->off) {                     /* slide the unconsumed tail down first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        need = b->len + extra;
        if (need <= b->cap) return AU_OK;
    }
    cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = (uint8_t *)ALWAYSUP_REALLOC(b->p, cap);
    if (!p) return AU_ENOMEM;
    b->p = p;
    b->cap = cap;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (cap >= ((size_t)8 << 20)) {     /* big messages: 2 MiB pages, a few faults instead of thousands */
        uintptr_t lo = ((uintptr_t)p + ((uintptr_t)2 << 20) - 1) & ~(((uintptr_t)2 << 20) - 1);
        uintptr_t hi = ((uintptr_t)p + cap) & ~(((uintptr_t)2 << 20) - 1);
        if (hi > lo) madvise((void *)lo, (size_t)(hi - lo), MADV_HUGEPAGE);
    }
#endif
    return AU_OK;
}
static int au__buf_append(au__buf *b, const void *data, size_t len) {
    if (au__buf_reserve(b, len) != AU_OK) return AU_ENOMEM;
    if (len) memcpy(b->p + b->len, data, len);
    b->len += len;
    return AU_OK;
}
/* Empties the buffer; gives memory back when a big message grew it, so the
   footprint at rest stays small. */
static void au__buf_clear(au__buf *b) {
    b->off = b->len = 0;
    if (b->cap > ((size_t)1 << 20)) {
        ALWAYSUP_FREE(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}
static void au__buf_free(au__buf *b) {
    ALWAYSUP_FREE(b->p);
    b->p = NULL;
    b->off = b->len = b->cap = 0;
}

/* ---- SHA-1 (FIPS 180-4) ---- */
static uint32_t au__rol(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }

static void au__sha1_block(au_sha1 *s, const uint8_t *p) {
    uint32_t w[80], a, b, c, d, e, t;
    unsigned i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (i = 16; i < 80; i++) w[i] = au__rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3]; e = s->h[4];
    for (i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999u; }
        else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1u; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDCu; }
        else { f = b ^ c ^ d; k = 0xCA62C1D6u; }
        t = au__rol(a, 5) + f + e + k + w[i];
        e = d; d = c; c = au__rol(b, 30); b = a; a = t;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d; s->h[4] += e;
}
ALWAYSUP_DEF void au_sha1_init(au_sha1 *s) {
    s->h[0] = 0x67452301u; s->h[1] = 0xEFCDAB89u; s->h[2] = 0x98BADCFEu;
    s->h[3] = 0x10325476u; s->h[4] = 0xC3D2E1F0u;
    s->total = 0;
    s->used = 0;
}
ALWAYSUP_DEF void au_sha1_update(au_sha1 *s, const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    s->total += len;
    while (len) {
        size_t n = AU__MIN(len, 64 - s->used);
        memcpy(s->block + s->used, p, n);
        s->used += n; p += n; len -= n;
        if (s->used == 64) { au__sha1_block(s, s->block); s->used = 0; }
    }
}
ALWAYSUP_DEF void au_sha1_final(au_sha1 *s, uint8_t digest[20]) {
    uint64_t bits = s->total * 8;
    uint8_t pad[72];
    size_t padlen = (s->used < 56 ? 56 : 120) - s->used;
    unsigned i;
    memset(pad, 0, sizeof pad);
    pad[0] = 0x80;
    for (i = 0; i < 8; i++) pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    au_sha1_update(s, pad, padlen + 8);
    for (i = 0; i < 20; i++) digest[i] = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}
ALWAYSUP_DEF void au_sha1_digest(const void *data, size_t len, uint8_t digest[20]) {
    au_sha1 s;
    au_sha1_init(&s);
    au_sha1_update(&s, data, len);
    au_sha1_final(&s, digest);
}

/* ---- base64 (RFC 4648, standard alphabet, padded) ---- */
static const char au__b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

ALWAYSUP_DEF size_t au_base64_encode(const void *data, size_t len, char *out) {
    const uint8_t *p = (const uint8_t *)data;
    size_t i, o = 0;
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = au__b64[v >> 18]; out[o++] = au__b64[(v >> 12) & 63];
        out[o++] = au__b64[(v >> 6) & 63]; out[o++] = au__b64[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = au__b64[v >> 18]; out[o++] = au__b64[(v >> 12) & 63];
        out[o++] = '='; out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = au__b64[v >> 18]; out[o++] = au__b64[(v >> 12) & 63];
        out[o++] = au__b64[(v >> 6) & 63]; out[o++] = '=';
    }
    out[o] = 0;
    return o;
}
static int au__b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}
ALWAYSUP_DEF int64_t au_base64_decode(const char *in, size_t len, uint8_t *out) {
    size_t i, o = 0;
    if (len % 4) return AU_EINVAL;
    for (i = 0; i < len; i += 4) {
        int v[4], k, pad = 0;
        uint32_t x;
        for (k = 0; k < 4; k++) {
            char c = in[i + (size_t)k];
            if (c == '=' && i + 4 == len && k >= 2) { v[k] = 0; pad++; continue; }
            if (pad) return AU_EINVAL;                   /* data after '=' */
            v[k] = au__b64_value(c);
            if (v[k] < 0) return AU_EINVAL;
        }
        x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if ((pad == 1 && (x & 0xFF)) || (pad == 2 && (x & 0xFFFF))) return AU_EINVAL; /* non-canonical */
        out[o++] = (uint8_t)(x >> 16);
        if (pad < 2) out[o++] = (uint8_t)(x >> 8);
        if (pad < 1) out[o++] = (uint8_t)x;
    }
    return (int64_t)o;
}

ALWAYSUP_DEF void au_ws_accept_for_key(const char *key, size_t key_len, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t digest[20];
    au_sha1 s;
    au_sha1_init(&s);
    au_sha1_update(&s, key, key_len);
    au_sha1_update(&s, guid, sizeof guid - 1);
    au_sha1_final(&s, digest);
    au_base64_encode(digest, 20, out);
}

/* ---- UTF-8 (RFC 3629) ----
   States: 0 boundary, 1 rejected, 2/3/4 need 1/2/3 plain continuation bytes,
   5..8 need a restricted second byte (E0, ED, F0, F4) that rules out
   overlong forms, surrogates and values above U+10FFFF. */
static uint32_t au__utf8_step(uint32_t st, uint8_t c) {
    switch (st) {
    case 0:
        if (c < 0x80) return 0;
        if (c >= 0xC2 && c <= 0xDF) return 2;
        if (c == 0xE0) return 5;
        if (c == 0xED) return 6;
        if (c >= 0xE1 && c <= 0xEF) return 3;
        if (c == 0xF0) return 7;
        if (c >= 0xF1 && c <= 0xF3) return 4;
        if (c == 0xF4) return 8;
        return 1;
    case 2: return (c >= 0x80 && c <= 0xBF) ? 0 : 1;
    case 3: return (c >= 0x80 && c <= 0xBF) ? 2 : 1;
    case 4: return (c >= 0x80 && c <= 0xBF) ? 3 : 1;
    case 5: return (c >= 0xA0 && c <= 0xBF) ? 2 : 1;
    case 6: return (c >= 0x80 && c <= 0x9F) ? 2 : 1;
    case 7: return (c >= 0x90 && c <= 0xBF) ? 3 : 1;
    case 8: return (c >= 0x80 && c <= 0x8F) ? 3 : 1;
    default: return 1;
    }
}
ALWAYSUP_DEF size_t au_utf8_feed(au_utf8 *u, const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    uint32_t st = u->state;
    size_t i = 0;
    if (st == AU_UTF8_REJECT) return 0;
    while (i < len) {
        if (st == 0) {                /* ASCII runs, eight bytes at a time */
            while (i + 8 <= len) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull) break;
                i += 8;
            }
            if (i == len) break;
        }
        st = au__utf8_step(st, p[i]);
        if (st == AU_UTF8_REJECT) { u->state = st; return i; }
        i++;
    }
    u->state = st;
    return len;
}
ALWAYSUP_DEF int au_utf8_valid(const void *data, size_t len) {
    au_utf8 u;
    u.state = 0;
    return au_utf8_feed(&u, data, len) == len && u.state == AU_UTF8_ACCEPT;
}

/* ---- URL ---- */
static int au__is_digit(int c) { return c >= '0' && c <= '9'; }
static int au__is_hex(int c) { return au__is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int au__is_alnum(int c) { return au__is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static int au__ipv4_valid(const char *s, size_t n) {
    size_t i = 0;
    int parts = 0;
    while (parts < 4) {
        unsigned v = 0, digits = 0;
        while (i < n && au__is_digit(s[i]) && digits < 4) { v = v * 10 + (unsigned)(s[i] - '0'); i++; digits++; }
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[i - digits] == '0')) return 0;
        parts++;
        if (parts < 4) { if (i >= n || s[i] != '.') return 0; i++; }
    }
    return i == n;
}
static int au__ipv6_valid(const char *s, size_t n) {
    size_t i = 0;
    int groups = 0, gap = 0;
    if (n >= 2 && s[0] == ':' && s[1] == ':') { gap = 1; i = 2; }
    else if (n && s[0] == ':') return 0;
    while (i < n) {
        size_t start = i, digits = 0;
        while (i < n && au__is_hex(s[i]) && digits < 5) { i++; digits++; }
        if (i < n && s[i] == '.') {              /* trailing dotted IPv4 takes two groups */
            if (!au__ipv4_valid(s + start, n - start)) return 0;
            groups += 2;
            i = n;
            break;
        }
        if (digits == 0 || digits > 4) return 0;
        groups++;
        if (i == n) break;
        if (s[i] != ':') return 0;
        i++;
        if (i < n && s[i] == ':') { if (gap) return 0; gap = 1; i++; }
        else if (i == n) return 0;               /* trailing single ':' */
    }
    return gap ? groups <= 7 : groups == 8;
}

ALWAYSUP_DEF int au_url_parse(au_url *url, const char *text, size_t len) {
    size_t i, auth, auth_end, host_start, host_end;
    memset(url, 0, sizeof *url);
    if (!text) return AU_EINVAL;
    if (len >= 8 && au__ieq(text, 8, "ws+unix:")) {   /* ws+unix:///sock[:/path] or ws+unix:/sock[:/path] */
        size_t at = 8, end;
        if (len >= at + 3 && text[at] == '/' && text[at + 1] == '/' && text[at + 2] == '/') at += 2;
        else if (len >= at + 2 && text[at] == '/' && text[at + 1] == '/') return AU_EURL_UNIX;   /* an authority: no */
        if (at >= len || text[at] != '/') return AU_EURL_UNIX;
        for (end = at; end < len && text[end] != ':'; end++)
            if ((unsigned char)text[end] <= 0x20 || (unsigned char)text[end] >= 0x7F) return AU_EURL_UNIX;
        if (end - at > sizeof url->unix_path - 1) return AU_EURL_UNIX;
        memcpy(url->unix_path, text + at, end - at);
        url->unix_path[end - at] = 0;
        url->unix_socket = 1;
        memcpy(url->host, "localhost", 10);
        url->port = 80;
        url->path = "/";
        url->path_len = 1;
        if (end < len) {                             /* ":/request/path" */
            if (end + 1 >= len || text[end + 1] != '/') return AU_EURL_UNIX;
            for (i = end + 1; i < len; i++) {
                unsigned char c = (unsigned char)text[i];
                if (c <= 0x20 || c >= 0x7F || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' ||
                    c == '|' || c == '}' || c == '#')
                    return AU_EURL_PATH;
            }
            url->path = text + end + 1;
            url->path_len = len - end - 1;
        }
        return AU_OK;
    }
    if (len >= 5 && au__ieq(text, 5, "ws://")) i = 5;
    else if (len >= 6 && au__ieq(text, 6, "wss://")) { i = 6; url->tls = 1; }
    else return AU_EURL_SCHEME;
    url->port = url->tls ? 443 : 80;
    auth = i;
    for (auth_end = auth; auth_end < len; auth_end++) {
        char c = text[auth_end];
        if (c == '/' || c == '?' || c == '#') break;
        if (c == '@') return AU_EURL_USERINFO;
    }
    for (i = auth_end; i < len; i++) if (text[i] == '#') return AU_EURL_FRAGMENT;
    /* host */
    if (auth < auth_end && text[auth] == '[') {
        const char *close = (const char *)memchr(text + auth, ']', auth_end - auth);
        if (!close) return AU_EURL_HOST;
        host_start = auth + 1;
        host_end = (size_t)(close - text);
        if (!au__ipv6_valid(text + host_start, host_end - host_start)) return AU_EURL_HOST;
        url->ipv6 = 1;
        i = host_end + 1;
        if (i < auth_end && text[i] != ':') return AU_EURL_HOST;
    } else {
        host_start = auth;
        for (i = auth; i < auth_end && text[i] != ':'; i++) {
            char c = text[i];
            if (!au__is_alnum((unsigned char)c) && c != '-' && c != '.' && c != '_') return AU_EURL_HOST;
        }
        host_end = i;
        if (host_end == host_start || text[host_start] == '.' || text[host_start] == '-') return AU_EURL_HOST;
    }
    if (host_end - host_start > 253) return AU_EURL_HOST;
    memcpy(url->host, text + host_start, host_end - host_start);
    url->host[host_end - host_start] = 0;
    /* port */
    if (i < auth_end) {                          /* at ':' */
        unsigned long port = 0;
        size_t p = i + 1;
        if (p == auth_end) return AU_EURL_PORT;
        for (; p < auth_end; p++) {
            if (!au__is_digit(text[p])) return AU_EURL_PORT;
            port = port * 10 + (unsigned long)(text[p] - '0');
            if (port > 65535) return AU_EURL_PORT;
        }
        if (port == 0) return AU_EURL_PORT;
        url->port = (uint16_t)port;
        url->port_given = 1;
    }
    /* path and query: these bytes go on the request line verbatim */
    for (i = auth_end; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c <= 0x20 || c >= 0x7F || c == '"' || c == '<' || c == '>' || c == '\\' ||
            c == '^' || c == '`' || c == '{' || c == '|' || c == '}')
            return AU_EURL_PATH;
    }
    if (auth_end == len) { url->path = "/"; url->path_len = 1; }
    else if (text[auth_end] == '?') {            /* "ws://h?q" means "/?q": handled by the request builder */
        url->path = text + auth_end;
        url->path_len = len - auth_end;
    } else {
        url->path = text + auth_end;
        url->path_len = len - auth_end;
    }
    return url->tls ? AU_EURL_TLS : AU_OK;
}

/* ---- opening handshake ---- */
static int au__is_tchar(int c) {
    return au__is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}
static int au__token_valid(const char *s) {
    if (!s || !*s) return 0;
    for (; *s; s++) if (!au__is_tchar((unsigned char)*s)) return 0;
    return 1;
}
ALWAYSUP_DEF const char *au_header_check(const char *name, const char *value) {
    const unsigned char *v;
    if (!name || !*name) return "header name is empty";
    if (!au__token_valid(name)) return "header name may only hold letters, digits and !#$%&'*+-.^_`|~";
    if (au__ieq(name, strlen(name), "upgrade") || au__ieq(name, strlen(name), "connection") ||
        (strlen(name) >= 14 && au__ieq(name, 14, "sec-websocket-")))
        return "this header belongs to the WebSocket handshake and is set by alwaysup";
    if (!value) return "header value is missing";
    for (v = (const unsigned char *)value; *v; v++)
        if ((*v < 0x20 && *v != '\t') || *v == 0x7F)
            return "header value holds CR, LF or another control character";
    return NULL;
}
ALWAYSUP_DEF const char *au_subprotocol_check(const char *name) {
    return au__token_valid(name) ? NULL : "subprotocol must be a non-empty HTTP token";
}
ALWAYSUP_DEF int au_handshake_make_key(char key[AU_WS_KEY_LEN + 1]) {
    uint8_t raw[16];
    if (au_random_bytes(raw, sizeof raw) != AU_OK) return AU_ERANDOM;
    au_base64_encode(raw, sizeof raw, key);
    return AU_OK;
}

typedef struct au__out { char *p; size_t cap, len; } au__out;
static void au__put(au__out *o, const char *s, size_t n) {
    if (o->len < o->cap) memcpy(o->p + o->len, s, AU__MIN(n, o->cap - o->len));
    o->len += n;
}
static void au__puts(au__out *o, const char *s) { au__put(o, s, strlen(s)); }

ALWAYSUP_DEF int64_t au_handshake_request(const au_handshake_desc *d, char *out, size_t cap) {
    au__out o;
    int i, own_host = 1;
    char port[8];
    const au_url *u = d ? d->url : NULL;
    if (!u || !d->key || strlen(d->key) != AU_WS_KEY_LEN) return AU_EINVAL;
    for (i = 0; i < d->num_headers; i++) {
        if (au_header_check(d->headers[i].name, d->headers[i].value)) return AU_EHEADER;
        if (au__ieq(d->headers[i].name, strlen(d->headers[i].name), "host")) own_host = 0;
    }
    for (i = 0; i < d->num_subprotocols; i++)
        if (au_subprotocol_check(d->subprotocols[i])) return AU_EHEADER;
    o.p = out; o.cap = cap; o.len = 0;
    au__puts(&o, "GET ");
    if (!u->path_len || u->path[0] == '?') au__puts(&o, "/");
    au__put(&o, u->path, u->path_len);
    au__puts(&o, " HTTP/1.1\r\n");
    if (own_host) {
        au__puts(&o, "Host: ");
        if (u->ipv6) au__puts(&o, "[");
        au__puts(&o, u->host);
        if (u->ipv6) au__puts(&o, "]");
        if (u->port != (u->tls ? 443 : 80)) {
            snprintf(port, sizeof port, ":%u", (unsigned)u->port);
            au__puts(&o, port);
        }
        au__puts(&o, "\r\n");
    }
    au__puts(&o, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    au__puts(&o, d->key);
    au__puts(&o, "\r\nSec-WebSocket-Version: 13\r\n");
    if (d->num_subprotocols > 0) {
        au__puts(&o, "Sec-WebSocket-Protocol: ");
        for (i = 0; i < d->num_subprotocols; i++) {
            if (i) au__puts(&o, ", ");
            au__puts(&o, d->subprotocols[i]);
        }
        au__puts(&o, "\r\n");
    }
    for (i = 0; i < d->num_headers; i++) {
        au__puts(&o, d->headers[i].name);
        au__puts(&o, ": ");
        au__puts(&o, d->headers[i].value);
        au__puts(&o, "\r\n");
    }
    au__puts(&o, "\r\n");
    if (o.len < cap) out[o.len] = 0;
    return (int64_t)o.len;
}

enum { AU__HS_STATUS, AU__HS_HEADERS, AU__HS_DONE, AU__HS_FAILED };
enum { AU__SEEN_UPGRADE = 1, AU__SEEN_CONNECTION = 2, AU__SEEN_ACCEPT = 4, AU__SEEN_PROTOCOL = 8 };

ALWAYSUP_DEF void au_handshake_init(au_handshake *hs, const au_handshake_desc *d) {
    memset(hs, 0, sizeof *hs);
    au_ws_accept_for_key(d->key, strlen(d->key), hs->accept);
    hs->offered = d->subprotocols;
    hs->num_offered = d->num_subprotocols;
    hs->max_head = d->max_head ? d->max_head : AU__DEFAULT_MAX_HEAD;
}
ALWAYSUP_DEF void au_handshake_free(au_handshake *hs) {
    ALWAYSUP_FREE(hs->line);
    hs->line = NULL;
    hs->line_cap = hs->line_len = 0;
}

/* copies printable ASCII only, so a hostile reason cannot reach a log raw */
static void au__printable(char *dst, size_t cap, const char *s, size_t n) {
    size_t i, o = 0;
    for (i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
    }
    dst[o] = 0;
}
static int au__hs_fail(au_handshake *hs, const char *why, const char *detail, size_t detail_len) {
    char d[96];
    au__printable(d, sizeof d, detail ? detail : "", detail ? detail_len : 0);
    snprintf(hs->error, sizeof hs->error, "%s%s%s", why, detail ? ": " : "", d);
    hs->state = AU__HS_FAILED;
    au_handshake_free(hs);
    return AU_HS_FAIL;
}
static int au__list_has(const char *v, size_t n, const char *word) {
    size_t i = 0;
    while (i < n) {
        size_t s, e;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        s = i;
        while (i < n && v[i] != ',') i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e > s && au__ieq(v + s, e - s, word)) return 1;
    }
    return 0;
}
static int au__hs_line(au_handshake *hs, const char *l, size_t n) {
    if (hs->state == AU__HS_STATUS) {
        size_t i;
        int code;
        if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || !au__is_digit(l[7]) || l[8] != ' ' ||
            !au__is_digit(l[9]) || !au__is_digit(l[10]) || !au__is_digit(l[11]) || (n > 12 && l[12] != ' '))
            return au__hs_fail(hs, "not an HTTP response", l, n);
        code = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
        hs->status = code;
        i = n > 13 ? 13 : n;
        au__printable(hs->reason, sizeof hs->reason, l + i, n - i);
        if (code != 101) {
            snprintf(hs->error, sizeof hs->error, "HTTP %d%s%s instead of 101 Switching Protocols", code,
                     hs->reason[0] ? " " : "", hs->reason);
            hs->state = AU__HS_FAILED;
            au_handshake_free(hs);
            return AU_HS_FAIL;
        }
        hs->state = AU__HS_HEADERS;
        return AU_HS_MORE;
    }
    if (n == 0) {                                  /* end of head */
        if (!(hs->seen & AU__SEEN_UPGRADE)) return au__hs_fail(hs, "101 response without Upgrade: websocket", NULL, 0);
        if (!(hs->seen & AU__SEEN_CONNECTION)) return au__hs_fail(hs, "101 response without Connection: Upgrade", NULL, 0);
        if (!(hs->seen & AU__SEEN_ACCEPT)) return au__hs_fail(hs, "101 response without Sec-WebSocket-Accept", NULL, 0);
        hs->state = AU__HS_DONE;
        au_handshake_free(hs);
        return AU_HS_DONE;
    } else {
        const char *colon = (const char *)memchr(l, ':', n);
        const char *v;
        size_t name_len, vn, i;
        if (l[0] == ' ' || l[0] == '\t') return au__hs_fail(hs, "folded header line", l, n);
        if (!colon) return au__hs_fail(hs, "malformed header line", l, n);
        name_len = (size_t)(colon - l);
        for (i = 0; i < name_len; i++)
            if (!au__is_tchar((unsigned char)l[i])) return au__hs_fail(hs, "malformed header name", l, n);
        if (name_len == 0) return au__hs_fail(hs, "malformed header line", l, n);
        v = colon + 1;
        vn = n - name_len - 1;
        while (vn && (*v == ' ' || *v == '\t')) { v++; vn--; }
        while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
        if (au__ieq(l, name_len, "upgrade")) {
            if (!au__ieq(v, vn, "websocket")) return au__hs_fail(hs, "Upgrade header is not websocket", v, vn);
            hs->seen |= AU__SEEN_UPGRADE;
        } else if (au__ieq(l, name_len, "connection")) {
            if (au__list_has(v, vn, "upgrade")) hs->seen |= AU__SEEN_CONNECTION;
        } else if (au__ieq(l, name_len, "sec-websocket-accept")) {
            if (hs->seen & AU__SEEN_ACCEPT) return au__hs_fail(hs, "Sec-WebSocket-Accept sent twice", NULL, 0);
            if (vn != 28 || memcmp(v, hs->accept, 28) != 0)
                return au__hs_fail(hs, "Sec-WebSocket-Accept does not match our key", v, vn);
            hs->seen |= AU__SEEN_ACCEPT;
        } else if (au__ieq(l, name_len, "sec-websocket-extensions")) {
            if (vn) return au__hs_fail(hs, "server chose an extension we did not offer", v, vn);
        } else if (au__ieq(l, name_len, "sec-websocket-protocol")) {
            int k, ok = 0;
            if (hs->seen & AU__SEEN_PROTOCOL) return au__hs_fail(hs, "Sec-WebSocket-Protocol sent twice", NULL, 0);
            for (k = 0; k < hs->num_offered; k++)
                if (strlen(hs->offered[k]) == vn && memcmp(hs->offered[k], v, vn) == 0) ok = 1;
            if (!ok || vn >= sizeof hs->subprotocol)
                return au__hs_fail(hs, "server chose a subprotocol we did not offer", v, vn);
            memcpy(hs->subprotocol, v, vn);
            hs->subprotocol[vn] = 0;
            hs->seen |= AU__SEEN_PROTOCOL;
        }
        return AU_HS_MORE;
    }
}
ALWAYSUP_DEF int au_handshake_feed(au_handshake *hs, const void *data, size_t len, size_t *consumed) {
    const char *p = (const char *)data;
    size_t pos = 0;
    *consumed = 0;
    if (hs->state == AU__HS_DONE) return AU_HS_DONE;
    if (hs->state == AU__HS_FAILED) return AU_HS_FAIL;
    while (pos < len) {
        const char *nl = (const char *)memchr(p + pos, '\n', len - pos);
        size_t seg = nl ? (size_t)(nl - (p + pos)) + 1 : len - pos;
        int r;
        if (seg > hs->max_head - hs->head_len) {
            char lim[48];
            *consumed = len;
            snprintf(lim, sizeof lim, "%lu bytes", (unsigned long)hs->max_head);
            return au__hs_fail(hs, "response head is over the limit", lim, strlen(lim));
        }
        hs->head_len += seg;
        if (hs->line_len + seg > hs->line_cap) {
            size_t cap = hs->line_cap ? hs->line_cap : 256;
            char *nb;
            while (cap < hs->line_len + seg) cap *= 2;
            nb = (char *)ALWAYSUP_REALLOC(hs->line, cap);
            if (!nb) { *consumed = pos; return au__hs_fail(hs, "out of memory", NULL, 0); }
            hs->line = nb;
            hs->line_cap = cap;
        }
        memcpy(hs->line + hs->line_len, p + pos, seg);
        hs->line_len += seg;
        pos += seg;
        if (!nl) break;
        {   /* a whole line: strip LF and an optional CR */
            size_t n = hs->line_len - 1;
            if (n && hs->line[n - 1] == '\r') n--;
            hs->line_len = 0;
            r = au__hs_line(hs, hs->line, n);
        }
        if (r != AU_HS_MORE) { *consumed = pos; return r; }
    }
    *consumed = pos;
    return AU_HS_MORE;
}

/* ---- frame encoder ---- */
ALWAYSUP_DEF int au_ws_close_code_valid(unsigned code) {
    if (code >= 1000 && code <= 1003) return 1;
    if (code >= 1007 && code <= 1014) return 1;
    return code >= 3000 && code <= 4999;
}
ALWAYSUP_DEF size_t au_ws_frame_header(uint8_t out[AU_WS_MAX_HEADER], unsigned opcode, int fin,
                                       uint64_t len, const uint8_t mask[4]) {
    size_t n;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) { out[1] = (uint8_t)(0x80 | len); n = 2; }
    else if (len <= 0xFFFF) { out[1] = 0x80 | 126; out[2] = (uint8_t)(len >> 8); out[3] = (uint8_t)len; n = 4; }
    else {
        unsigned i;
        out[1] = 0x80 | 127;
        for (i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(out + n, mask, 4);
    return n + 4;
}
ALWAYSUP_DEF void au_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset) {
    uint8_t m[8];
    size_t i = 0, k;
    for (k = 0; k < 8; k++) m[k] = mask[(offset + k) & 3];
    if (len >= 8) {
        uint64_t w8;
        memcpy(&w8, m, 8);
        for (; i + 8 <= len; i += 8) {
            uint64_t w;
            memcpy(&w, data + i, 8);
            w ^= w8;
            memcpy(data + i, &w, 8);
        }
    }
    for (; i < len; i++) data[i] ^= m[i & 7];
}
ALWAYSUP_DEF size_t au_ws_frame_encode(uint8_t *out, unsigned opcode, int fin, const void *payload,
                                       size_t len, const uint8_t mask[4]) {
    size_t h = au_ws_frame_header(out, opcode, fin, len, mask), i = 0;
    const uint8_t *src = (const uint8_t *)payload;
    uint8_t *dst = out + h, m[8];
    uint64_t m8;
    for (i = 0; i < 8; i++) m[i] = mask[i & 3];
    memcpy(&m8, m, 8);
    for (i = 0; i + 8 <= len; i += 8) {               /* copy and mask in one pass */
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= m8;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++) dst[i] = src[i] ^ m[i & 7];
    return h + len;
}

/* ---- frame decoder ---- */
enum { AU__DEC_HEAD, AU__DEC_PAYLOAD, AU__DEC_CLOSED, AU__DEC_FAILED };

ALWAYSUP_DEF void au_ws_decoder_init(au_ws_decoder *d, uint64_t max_message) {
    memset(d, 0, sizeof *d);
    d->max_message = max_message ? max_message : AU__DEFAULT_MAX_MESSAGE;
    if (d->max_message > (uint64_t)SIZE_MAX) d->max_message = (uint64_t)SIZE_MAX;
    d->head_need = 2;
}
static size_t au__dec_fail(au_ws_decoder *d, au_ws_event *ev, unsigned code, const char *why, size_t used) {
    d->state = AU__DEC_FAILED;
    d->error = why;
    d->error_code = code;
    ev->type = AU_WS_EV_ERROR;
    ev->code = code;
    ev->reason = why;
    ev->reason_len = strlen(why);
    return used;
}
/* checks the first two header bytes; 0 if fine */
static const char *au__dec_check_head(au_ws_decoder *d) {
    uint8_t b0 = d->head[0], b1 = d->head[1];
    unsigned op = b0 & 0x0F, len7 = b1 & 0x7F;
    d->fin = (b0 & 0x80) != 0;
    d->opcode = op;
    if (b0 & 0x70) return "reserved bits set but no extension was negotiated";
    if (b1 & 0x80) return "the server masked a frame";
    if (op >= 8) {
        if (op > AU_OP_PONG) return "reserved control opcode";
        if (!d->fin) return "fragmented control frame";
        if (len7 > AU_WS_MAX_CONTROL) return "control frame over 125 bytes";
    } else {
        if (op > AU_OP_BINARY) return "reserved data opcode";
        if (op == AU_OP_CONT && !d->in_message) return "continuation frame with no message to continue";
        if (op != AU_OP_CONT && d->in_message) return "new data frame inside a fragmented message";
    }
    d->head_need = 2 + (len7 == 126 ? 2u : len7 == 127 ? 8u : 0u);
    return NULL;
}
static size_t au__dec_control(au_ws_decoder *d, au_ws_event *ev, size_t used) {
    d->state = AU__DEC_HEAD;
    ev->data = d->control;
    ev->len = d->control_len;
    if (d->opcode == AU_OP_PING) { ev->type = AU_WS_EV_PING; return used; }
    if (d->opcode == AU_OP_PONG) { ev->type = AU_WS_EV_PONG; return used; }
    /* close */
    if (d->control_len == 1) return au__dec_fail(d, ev, AU_CLOSE_PROTOCOL, "close frame with a 1-byte payload", used);
    ev->code = AU_CLOSE_NO_STATUS;
    if (d->control_len >= 2) {
        ev->code = (unsigned)d->control[0] << 8 | d->control[1];
        if (!au_ws_close_code_valid(ev->code))
            return au__dec_fail(d, ev, AU_CLOSE_PROTOCOL, "close frame with an invalid code", used);
        if (!au_utf8_valid(d->control + 2, d->control_len - 2))
            return au__dec_fail(d, ev, AU_CLOSE_INVALID_DATA, "close reason is not valid UTF-8", used);
        ev->reason = (const char *)d->control + 2;
        ev->reason_len = d->control_len - 2;
    }
    ev->type = AU_WS_EV_CLOSE;
    d->state = AU__DEC_CLOSED;
    return used;
}
ALWAYSUP_DEF size_t au_ws_decode(au_ws_decoder *d, const void *in, size_t len, au_ws_event *ev) {
    const uint8_t *p = (const uint8_t *)in;
    size_t pos = 0;
    memset(ev, 0, sizeof *ev);
    if (d->state == AU__DEC_FAILED) {
        ev->type = AU_WS_EV_ERROR;
        ev->code = d->error_code;
        ev->reason = d->error;
        ev->reason_len = strlen(d->error);
        return 0;
    }
    if (d->state == AU__DEC_CLOSED) return len;     /* nothing after a close counts */
    while (pos < len) {
        if (d->state == AU__DEC_HEAD) {
            while (d->head_have < d->head_need && pos < len) {
                d->head[d->head_have++] = p[pos++];
                if (d->head_have == 2) {
                    const char *bad = au__dec_check_head(d);
                    if (bad) return au__dec_fail(d, ev, AU_CLOSE_PROTOCOL, bad, pos);
                }
            }
            if (d->head_have < d->head_need) break;
            {
                unsigned len7 = d->head[1] & 0x7F, i;
                uint64_t n = len7;
                if (len7 == 126) {
                    n = (uint64_t)d->head[2] << 8 | d->head[3];
                    if (n < 126) return au__dec_fail(d, ev, AU_CLOSE_PROTOCOL, "length not in its minimal form", pos);
                } else if (len7 == 127) {
                    for (n = 0, i = 0; i < 8; i++) n = n << 8 | d->head[2 + i];
                    if (n >> 63) return au__dec_fail(d, ev, AU_CLOSE_PROTOCOL, "64-bit length with the top bit set", pos);
                    if (n <= 0xFFFF) return au__dec_fail(d, ev, AU_CLOSE_PROTOCOL, "length not in its minimal form", pos);
                }
                d->frame_len = d->remaining = n;
                d->head_have = 0;
                d->head_need = 2;
                d->state = AU__DEC_PAYLOAD;
                if (d->opcode >= 8) d->control_len = 0;
                else {
                    if (d->opcode != AU_OP_CONT) {
                        d->in_message = 1;
                        d->message_started = 0;
                        d->message_opcode = d->opcode;
                        d->message_len = 0;
                        d->utf8.state = 0;
                    }
                    if (n > d->max_message - d->message_len)
                        return au__dec_fail(d, ev, AU_CLOSE_TOO_BIG, "message over the size limit", pos);
                    d->message_len += n;
                }
            }
        }
        /* payload (possibly empty) */
        if (d->opcode >= 8) {
            size_t n = (size_t)AU__MIN(d->remaining, (uint64_t)(len - pos));
            memcpy(d->control + d->control_len, p + pos, n);
            d->control_len += n;
            d->remaining -= n;
            pos += n;
            if (d->remaining) break;
            return au__dec_control(d, ev, pos);
        } else {
            size_t n = (size_t)AU__MIN(d->remaining, (uint64_t)(len - pos));
            int last = d->fin && d->remaining == n;
            if (d->message_opcode == AU_OP_TEXT && au_utf8_feed(&d->utf8, p + pos, n) != n)
                return au__dec_fail(d, ev, AU_CLOSE_INVALID_DATA, "text message is not valid UTF-8", pos);
            d->remaining -= n;
            if (!d->remaining) d->state = AU__DEC_HEAD;
            if (last && d->message_opcode == AU_OP_TEXT && d->utf8.state != AU_UTF8_ACCEPT)
                return au__dec_fail(d, ev, AU_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence", pos);
            if (n == 0 && !last) continue;          /* empty non-final fragment */
            ev->type = AU_WS_EV_DATA;
            ev->opcode = d->message_opcode;
            ev->first = !d->message_started;
            ev->fin = last;
            ev->data = p + pos;
            ev->len = n;
            d->message_started = 1;
            if (last) d->in_message = 0;
            return pos + n;
        }
    }
    return pos;
}
/* ---- client connection, sans I/O ---- */
static int au__ws_random(au_ws *ws, void *buf, size_t len) {
    int r = ws->random ? ws->random(ws->random_user, buf, len) : au_random_bytes(buf, len);
    return r == 0 ? AU_OK : AU_ERANDOM;
}
/* Masks come from a pool refilled 64 frames at a time: one syscall per
   message would be a measurable share of a small round trip. */
static int au__ws_next_mask(au_ws *ws, uint8_t mask[4]) {
    if (ws->pool_left < 4) {
        if (au__ws_random(ws, ws->pool, sizeof ws->pool) != AU_OK) return AU_ERANDOM;
        ws->pool_left = sizeof ws->pool;
    }
    memcpy(mask, ws->pool + sizeof ws->pool - ws->pool_left, 4);
    ws->pool_left -= 4;
    return AU_OK;
}
static int au__ws_frame(au_ws *ws, unsigned opcode, const void *data, size_t len) {
    uint8_t mask[4];
    au__buf *o = ws->big.len > ws->big.off ? &ws->after : &ws->out;   /* behind a big payload */
    if (au__ws_next_mask(ws, mask) != AU_OK) return AU_ERANDOM;
    if (len > SIZE_MAX - AU_WS_MAX_HEADER || au__buf_reserve(o, len + AU_WS_MAX_HEADER) != AU_OK)
        return AU_ENOMEM;
    o->len += au_ws_frame_encode(o->p + o->len, opcode, 1, data, len, mask);
    return AU_OK;
}
/* Sends the payload in *payload (memory from ALWAYSUP_REALLOC) without a
   copy: it is masked in place and taken over; *payload is left empty. With a
   big payload already on its way, it is copied like any other. */
static int au__ws_send_owned(au_ws *ws, unsigned opcode, au__buf *payload) {
    uint8_t mask[4], head[AU_WS_MAX_HEADER];
    size_t len = payload->len - payload->off;
    if (ws->state != AU_WS_OPEN) return AU_EINVAL;
    if (ws->big.len > ws->big.off) return au__ws_frame(ws, opcode, payload->p + payload->off, len);
    if (au__ws_next_mask(ws, mask) != AU_OK) return AU_ERANDOM;
    if (au__buf_append(&ws->out, head, au_ws_frame_header(head, opcode, 1, len, mask)) != AU_OK) return AU_ENOMEM;
    au_ws_mask(payload->p + payload->off, len, mask, 0);
    au__buf_free(&ws->big);
    ws->big = *payload;
    memset(payload, 0, sizeof *payload);
    return AU_OK;
}
static int au__ws_close_frame(au_ws *ws, unsigned code, const char *reason) {
    uint8_t payload[AU_WS_MAX_CONTROL];
    size_t n = 0, rl = reason ? strlen(reason) : 0;
    if (code) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        if (rl > AU_WS_MAX_CONTROL - 2) rl = AU_WS_MAX_CONTROL - 2;
        while (rl && !au_utf8_valid(reason, rl)) rl--;   /* cut on a code point boundary */
        if (rl) memcpy(payload + 2, reason, rl);
        n = 2 + rl;
    }
    return au__ws_frame(ws, AU_OP_CLOSE, payload, n);
}

/* While a big data frame's payload arrives, the socket may be read straight
   into the message buffer, saving a copy out of the read buffer. */
static uint8_t *au__ws_direct(au_ws *ws, size_t *room) {
    const au_ws_decoder *d = &ws->dec;
    size_t want;
    if ((ws->state != AU_WS_OPEN && ws->state != AU_WS_CLOSING) || d->state != AU__DEC_PAYLOAD || d->opcode >= 8 ||
        d->remaining < ((uint64_t)32 << 10))
        return NULL;
    if (ws->msg_ready) { au__buf_clear(&ws->msg); ws->msg_ready = 0; }
    want = (size_t)AU__MIN(d->remaining, (uint64_t)((size_t)16 << 20));
    if (au__buf_reserve(&ws->msg, want) != AU_OK) return NULL;
    *room = want;
    return ws->msg.p + ws->msg.len;
}
ALWAYSUP_DEF int au_ws_init(au_ws *ws, const au_ws_desc *desc) {
    char key[AU_WS_KEY_LEN + 1];
    uint8_t raw[16];
    au_handshake_desc hd;
    int64_t n;
    memset(ws, 0, sizeof *ws);
    if (!desc || !desc->url) return AU_EINVAL;
    ws->random = desc->random;
    ws->random_user = desc->random_user;
    if (au__ws_random(ws, raw, sizeof raw) != AU_OK) return AU_ERANDOM;
    au_base64_encode(raw, sizeof raw, key);
    memset(&hd, 0, sizeof hd);
    hd.url = desc->url;
    hd.key = key;
    hd.subprotocols = desc->subprotocols;
    hd.num_subprotocols = desc->num_subprotocols;
    hd.headers = desc->headers;
    hd.num_headers = desc->num_headers;
    hd.max_head = desc->max_head;
    n = au_handshake_request(&hd, NULL, 0);
    if (n < 0) return (int)n;
    if (au__buf_reserve(&ws->out, (size_t)n + 1) != AU_OK) return AU_ENOMEM;
    au_handshake_request(&hd, (char *)ws->out.p, (size_t)n + 1);
    ws->out.len = (size_t)n;
    au_handshake_init(&ws->hs, &hd);
    au_ws_decoder_init(&ws->dec, desc->max_message);
    ws->state = AU_WS_CONNECTING;
    return AU_OK;
}
/* fails the connection: our close frame with the code, then nothing more */
static size_t au__ws_fail(au_ws *ws, au_ws_msg *m, unsigned code, const char *why, size_t used) {
    if (ws->state == AU_WS_OPEN) au__ws_close_frame(ws, code, why);
    ws->state = AU_WS_FAILED;
    snprintf(ws->reason, sizeof ws->reason, "%s", why);
    au__buf_clear(&ws->msg);
    m->type = AU_WS_FAILURE;
    m->code = code;
    m->reason = ws->reason;
    return used;
}
ALWAYSUP_DEF size_t au_ws_recv(au_ws *ws, const void *data, size_t len, au_ws_msg *m) {
    const uint8_t *p = (const uint8_t *)data;
    size_t pos = 0;
    memset(m, 0, sizeof *m);
    m->reason = "";
    if (ws->msg_ready) { au__buf_clear(&ws->msg); ws->msg_ready = 0; }
    if (ws->state == AU_WS_CONNECTING) {
        size_t used;
        int r = au_handshake_feed(&ws->hs, p, len, &used);
        if (r == AU_HS_DONE) {
            ws->state = AU_WS_OPEN;
            memcpy(ws->subprotocol, ws->hs.subprotocol, sizeof ws->subprotocol);
            m->type = AU_WS_OPENED;
        } else if (r == AU_HS_FAIL) {
            au__ws_fail(ws, m, (unsigned)ws->hs.status, ws->hs.error, used);
        }
        return used;
    }
    if (ws->state == AU_WS_CLOSED || ws->state == AU_WS_FAILED) return len;
    while (pos < len) {
        au_ws_event ev;
        pos += au_ws_decode(&ws->dec, p + pos, len - pos, &ev);
        switch (ev.type) {
        case AU_WS_EV_DATA:
            m->opcode = ev.opcode;
            /* read in place by au__ws_direct: the bytes already sit at the tail (strictly inside the
               allocation, so this can never be some other buffer that happens to follow it) */
            if (ws->msg.p && ws->msg.len < ws->msg.cap && ev.data == ws->msg.p + ws->msg.len &&
                ev.len <= ws->msg.cap - ws->msg.len)
                ws->msg.len += ev.len;
            else if (ev.first && ev.fin) {             /* whole message in this input: no copy */
                m->type = AU_WS_MESSAGE;
                m->data = ev.data;
                m->len = ev.len;
                return pos;
            }
            else if (au__buf_append(&ws->msg, ev.data, ev.len) != AU_OK)
                return au__ws_fail(ws, m, AU_CLOSE_TOO_BIG, "out of memory for the message", len);
            if (!ev.fin) break;
            m->type = AU_WS_MESSAGE;
            m->data = ws->msg.p;
            m->len = ws->msg.len;
            ws->msg_ready = 1;
            return pos;
        case AU_WS_EV_PING:
            if (ws->state == AU_WS_OPEN && au__ws_frame(ws, AU_OP_PONG, ev.data, ev.len) != AU_OK)
                return au__ws_fail(ws, m, AU_CLOSE_INTERNAL, "cannot queue a pong", len);
            m->type = AU_WS_PINGED;
            m->data = ev.data;
            m->len = ev.len;
            return pos;
        case AU_WS_EV_PONG:
            m->type = AU_WS_PONGED;
            m->data = ev.data;
            m->len = ev.len;
            return pos;
        case AU_WS_EV_CLOSE:
            /* echo the peer's code (RFC 6455 5.5.1) unless it is one only the peer may use */
            if (ws->state == AU_WS_OPEN)
                au__ws_close_frame(ws, au_ws_close_code_valid(ev.code) && (ev.code < 1012 || ev.code > 1014) ? ev.code
                                                                                                    : (unsigned)AU_CLOSE_NORMAL, NULL);
            ws->state = AU_WS_CLOSED;
            au__printable(ws->reason, sizeof ws->reason, ev.reason ? ev.reason : "", ev.reason_len);
            au__buf_clear(&ws->msg);
            m->type = AU_WS_PEER_CLOSED;
            m->code = ev.code;
            m->reason = ws->reason;
            return len;                            /* nothing after a close counts */
        case AU_WS_EV_ERROR:
            return au__ws_fail(ws, m, ev.code, ev.reason, len);
        default:
            return pos;
        }
    }
    return pos;
}
ALWAYSUP_DEF int au_ws_send(au_ws *ws, unsigned opcode, const void *data, size_t len) {
    if (ws->state != AU_WS_OPEN) return AU_EINVAL;
    if (opcode != AU_OP_TEXT && opcode != AU_OP_BINARY && opcode != AU_OP_PING && opcode != AU_OP_PONG)
        return AU_EINVAL;
    if (opcode >= 8 && len > AU_WS_MAX_CONTROL) return AU_ETOOBIG;
    return au__ws_frame(ws, opcode, data, len);
}
ALWAYSUP_DEF int au_ws_close(au_ws *ws, unsigned code, const char *reason) {
    int r;
    if (ws->state != AU_WS_OPEN) return AU_EINVAL;
    if (code && !au_ws_close_code_valid(code)) return AU_EINVAL;
    r = au__ws_close_frame(ws, code, reason);
    if (r == AU_OK) ws->state = AU_WS_CLOSING;
    return r;
}
/* the segment to write now: out, then the big payload, then what came after it */
static const au__buf *au__ws_segment(const au_ws *ws) {
    if (ws->out.len > ws->out.off) return &ws->out;
    if (ws->big.len > ws->big.off) return &ws->big;
    return &ws->after;
}
ALWAYSUP_DEF size_t au_ws_output(const au_ws *ws, const uint8_t **data) {
    const au__buf *s = au__ws_segment(ws);
    *data = s->p ? s->p + s->off : NULL;
    return s->len - s->off;
}
ALWAYSUP_DEF void au_ws_output_done(au_ws *ws, size_t n) {
    au__buf *s = (au__buf *)au__ws_segment(ws);
    ALWAYSUP_ASSERT(n <= s->len - s->off);
    s->off += n;
    if (s->off < s->len) return;
    if (s == &ws->big) {                       /* what waited behind it comes next */
        au__buf t = ws->out;
        au__buf_free(&ws->big);
        ws->out = ws->after;
        ws->after = t;
        au__buf_clear(&ws->after);
    } else au__buf_clear(s);
}
ALWAYSUP_DEF void au_ws_free(au_ws *ws) {
    au_handshake_free(&ws->hs);
    au__buf_free(&ws->out);
    au__buf_free(&ws->msg);
    au__buf_free(&ws->big);
    au__buf_free(&ws->after);
}

/* ---- line framer ---- */
ALWAYSUP_DEF void au_lines_init(au_lines *l, size_t max_line) {
    memset(l, 0, sizeof *l);
    l->max_line = max_line ? AU__MIN(max_line, SIZE_MAX - 1) : ((size_t)256 << 20);
}
ALWAYSUP_DEF size_t au_lines_feed(au_lines *l, const void *data, size_t len, int *kind,
                                  const char **line, size_t *line_len) {
    const char *d = (const char *)data;
    size_t pos = 0;
    *kind = AU_LINE_NONE;
    *line = NULL;
    *line_len = 0;
    if (l->clear) { au__buf_clear(&l->buf); l->clear = 0; }
    while (pos < len) {
        const char *start = d + pos;
        const char *nl = (const char *)memchr(start, '\n', len - pos);
        size_t seg = nl ? (size_t)(nl - start) : len - pos;
        size_t used = nl ? seg + 1 : seg;
        const char *p;
        size_t n, total;
        int ends_cr;
        if (l->discarding) {
            pos += used;
            if (nl) l->discarding = 0;
            continue;
        }
        /* a trailing CR is not content, so it does not count against the cap */
        total = l->buf.len + seg;
        ends_cr = total && (seg ? start[seg - 1] == '\r' : l->buf.p[l->buf.len - 1] == '\r');
        if (total > l->max_line + (size_t)ends_cr || (!nl && au__buf_append(&l->buf, start, seg) != AU_OK)) {
            /* over the cap (or out of memory): report once with what fits */
            size_t keep = AU__MIN(seg, l->max_line - AU__MIN(l->buf.len, l->max_line));
            if (l->buf.len == 0) { *line = start; *line_len = keep; }
            else {
                if (au__buf_append(&l->buf, start, keep) != AU_OK) keep = 0;
                *line = (const char *)l->buf.p;
                *line_len = AU__MIN(l->buf.len, l->max_line);
                l->clear = 1;
            }
            if (!l->buf.len) l->clear = 1;
            l->discarding = !nl;
            *kind = AU_LINE_TOO_LONG;
            return pos + used;
        }
        pos += used;
        if (!nl) break;                             /* buffered, wait for the rest */
        if (l->buf.len == 0) { p = start; n = seg; }
        else {
            if (au__buf_append(&l->buf, start, seg) != AU_OK) {
                *line = (const char *)l->buf.p;
                *line_len = l->buf.len;
                l->clear = 1;
                *kind = AU_LINE_TOO_LONG;
                return pos;
            }
            p = (const char *)l->buf.p;
            n = l->buf.len;
            l->clear = 1;
        }
        if (n && p[n - 1] == '\r') n--;
        if (n == 0) { l->buf.len = 0; l->clear = 0; continue; }
        *kind = AU_LINE_OK;
        *line = p;
        *line_len = n;
        return pos;
    }
    return pos;
}
ALWAYSUP_DEF int au_lines_finish(au_lines *l, const char **line, size_t *line_len) {
    size_t n = l->buf.len;
    *line = NULL;
    *line_len = 0;
    if (l->clear || l->discarding || n == 0) { l->discarding = 0; return AU_LINE_NONE; }
    if (l->buf.p[n - 1] == '\r') n--;
    l->clear = 1;
    if (n == 0) return AU_LINE_NONE;
    *line = (const char *)l->buf.p;
    *line_len = n;
    return AU_LINE_OK;
}
ALWAYSUP_DEF void au_lines_free(au_lines *l) { au__buf_free(&l->buf); }

/* ---- JSON-RPC envelope scanner ---- */
#define AU__JSON_MAX_DEPTH 512

typedef struct au__js { const unsigned char *s; size_t n, i; const char *err; int nl; } au__js;

static int au__js_fail(au__js *j, const char *why) { j->err = why; return -1; }
AU__INLINE void au__js_ws(au__js *j) {
    if (j->i < j->n && j->s[j->i] > ' ') return;  /* the usual case: no whitespace at all */
    while (j->i < j->n) {
        unsigned char c = j->s[j->i];
        if (c == '\n' || c == '\r') j->nl = 1;
        else if (c != ' ' && c != '\t') break;
        j->i++;
    }
}
/* a byte of w is zero (SWAR: eight bytes per step) */
#define AU__HASZERO(w) (((w) - 0x0101010101010101ull) & ~(w) & 0x8080808080808080ull)
static int au__js_string(au__js *j) {
    const unsigned char *s = j->s;
    size_t i = j->i + 1, n = j->n;
    for (;;) {
        unsigned char c;
#define AU__PLAIN8(w) (((w) & 0x8080808080808080ull) | (((w) - 0x2020202020202020ull) & ~(w) & 0x8080808080808080ull) | \
                       AU__HASZERO((w) ^ 0x2222222222222222ull) | AU__HASZERO((w) ^ 0x5C5C5C5C5C5C5C5Cull))
        while (i + 16 <= n) {     /* skip runs with no quote, backslash, control or non-ASCII byte */
            uint64_t w, v;
            memcpy(&w, s + i, 8);
            memcpy(&v, s + i + 8, 8);
            if (AU__PLAIN8(w) | AU__PLAIN8(v)) break;
            i += 16;
        }
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (AU__PLAIN8(w)) break;
            i += 8;
        }
        while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') i++;
        if (i >= n) { j->i = i; return au__js_fail(j, "unterminated string"); }
        c = s[i];
        if (c == '"') { j->i = i + 1; return 0; }
        if (c == '\\') {
            if (i + 1 >= n) { j->i = i; return au__js_fail(j, "unterminated string"); }
            c = s[i + 1];
            if (c == 'u') {
                unsigned k;
                for (k = 2; k < 6; k++)
                    if (i + k >= n || !au__is_hex(s[i + k])) { j->i = i; return au__js_fail(j, "bad \\u escape"); }
                i += 6;
            } else if (c && strchr("\"\\/bfnrt", c)) i += 2;
            else { j->i = i; return au__js_fail(j, "bad escape in string"); }
        } else if (c < 0x20) {
            j->i = i;
            return au__js_fail(j, "raw control character in string");
        } else {
            uint32_t st = au__utf8_step(0, c);
            size_t at = i++;
            while (st > AU_UTF8_REJECT && i < n) st = au__utf8_step(st, s[i++]);
            if (st != AU_UTF8_ACCEPT) { j->i = at; return au__js_fail(j, "invalid UTF-8"); }
        }
    }
}
static int au__js_number(au__js *j) {
    const unsigned char *s = j->s;
    size_t i = j->i, n = j->n;
    if (s[i] == '-') i++;
    if (i < n && s[i] == '0') i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9') while (i < n && au__is_digit(s[i])) i++;
    else { j->i = i; return au__js_fail(j, "bad number"); }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !au__is_digit(s[i])) { j->i = i; return au__js_fail(j, "bad number"); }
        while (i < n && au__is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !au__is_digit(s[i])) { j->i = i; return au__js_fail(j, "bad number"); }
        while (i < n && au__is_digit(s[i])) i++;
    }
    j->i = i;
    return 0;
}
static int au__js_literal(au__js *j) {
    static const char *const words[3] = { "true", "false", "null" };
    int k;
    for (k = 0; k < 3; k++) {
        size_t wl = strlen(words[k]);
        if (j->n - j->i >= wl && memcmp(j->s + j->i, words[k], wl) == 0) { j->i += wl; return 0; }
    }
    return au__js_fail(j, "unexpected character");
}

static uint32_t au__hex4(const char *p) {
    uint32_t v = 0;
    int k;
    for (k = 0; k < 4; k++) {
        int c = (unsigned char)p[k];
        v = v << 4 | (uint32_t)(au__is_digit(c) ? c - '0' : (au__lower(c) - 'a' + 10));
    }
    return v;
}
/* decodes one character of a JSON string body into UTF-8 bytes */
static size_t au__js_unescape1(const char *p, const char *end, uint8_t out[4], size_t *adv) {
    uint32_t cp;
    if (*p != '\\') { out[0] = (uint8_t)*p; *adv = 1; return 1; }
    if (end - p < 2) { *adv = 1; return 0; }
    switch (p[1]) {
    case 'b': out[0] = '\b'; *adv = 2; return 1;
    case 'f': out[0] = '\f'; *adv = 2; return 1;
    case 'n': out[0] = '\n'; *adv = 2; return 1;
    case 'r': out[0] = '\r'; *adv = 2; return 1;
    case 't': out[0] = '\t'; *adv = 2; return 1;
    case 'u': break;
    default: out[0] = (uint8_t)p[1]; *adv = 2; return 1;
    }
    if (end - p < 6) { *adv = (size_t)(end - p); return 0; }
    cp = au__hex4(p + 2);
    *adv = 6;
    if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 12 && p[6] == '\\' && p[7] == 'u') {
        uint32_t lo = au__hex4(p + 8);
        if (lo >= 0xDC00 && lo <= 0xDFFF) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); *adv = 12; }
    }
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { out[0] = (uint8_t)(0xC0 | cp >> 6); out[1] = (uint8_t)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12); out[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
        out[2] = (uint8_t)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18); out[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)); out[3] = (uint8_t)(0x80 | (cp & 63));
    return 4;
}
ALWAYSUP_DEF int au_json_string_eq(au_tok tok, const char *text) {
    const char *p, *end;
    size_t tl = strlen(text), at = 0;
    if (!tok.p || tok.len < 2 || tok.p[0] != '"' || tok.p[tok.len - 1] != '"') return 0;
    p = tok.p + 1;
    end = tok.p + tok.len - 1;
    if (!memchr(p, '\\', (size_t)(end - p)))        /* the common case: no escapes */
        return (size_t)(end - p) == tl && memcmp(p, text, tl) == 0;
    while (p < end) {
        uint8_t b[4];
        size_t adv, k = au__js_unescape1(p, end, b, &adv);
        if (k == 0 || at + k > tl || memcmp(text + at, b, k) != 0) return 0;
        at += k;
        p += adv;
    }
    return at == tl;
}

enum { AU__WANT_VALUE, AU__WANT_KEY, AU__AFTER_VALUE };

ALWAYSUP_DEF int au_jsonrpc_scan(const char *text, size_t len, au_jsonrpc *out) {
    static const char *const keys[6] = { "id", "method", "params", "result", "error", "jsonrpc" };
    static const size_t key_len[6] = { 2, 6, 6, 6, 5, 7 };
    uint8_t is_object[AU__JSON_MAX_DEPTH / 8];
    au_tok *slots[6], jsonrpc;
    au__js j;
    unsigned depth = 0;
    int want = AU__WANT_VALUE, slot = -1, k;
    unsigned char top;
    size_t member_start = 0, vend = 0, top_at;

    memset(out, 0, sizeof *out);
    memset(is_object, 0, sizeof is_object);
    slots[0] = &out->id; slots[1] = &out->method; slots[2] = &out->params;
    slots[3] = &out->result; slots[4] = &out->error; slots[5] = &jsonrpc;
    j.s = (const unsigned char *)text;
    j.n = text ? len : 0;
    j.i = 0;
    j.err = NULL;
    j.nl = 0;
    au__js_ws(&j);
    if (j.i == j.n) { out->problem = "empty message"; out->problem_at = j.i; return AU_EINVAL; }
    top = j.s[j.i];
    top_at = j.i;
    for (;;) {
        unsigned char c;
        if (want == AU__AFTER_VALUE) {
            if (depth == 0) {
                au__js_ws(&j);
                if (j.i != j.n) { au__js_fail(&j, "text after the JSON value"); break; }
                out->end = j.i;
                break;
            }
        }
        au__js_ws(&j);
        if (j.i >= j.n) { au__js_fail(&j, "unexpected end of input"); break; }
        c = j.s[j.i];
        if (want == AU__WANT_KEY) {
            size_t ks = j.i;
            if (c != '"') { au__js_fail(&j, "expected a string key"); break; }
            if (au__js_string(&j)) break;
            if (depth == 1 && top == '{') {
                au_tok kt;
                kt.p = text + ks;
                kt.len = j.i - ks;
                slot = -1;
                if (!memchr(kt.p, '\\', kt.len)) {       /* as written: length, then bytes */
                    for (k = 0; k < 6; k++)
                        if (kt.len == key_len[k] + 2 && memcmp(kt.p + 1, keys[k], key_len[k]) == 0) { slot = k; break; }
                } else {
                    /* the longest key we know, fully \u-escaped: "jsonrpc" is 2 + 7 * 6 bytes */
                    for (k = 0; k < 6 && kt.len <= 2 + 7 * 6; k++)
                        if (au_json_string_eq(kt, keys[k])) { slot = k; break; }
                }
            }
            au__js_ws(&j);
            if (j.i >= j.n || j.s[j.i] != ':') { au__js_fail(&j, "expected ':' after a key"); break; }
            j.i++;
            au__js_ws(&j);
            if (depth == 1) member_start = j.i;
            want = AU__WANT_VALUE;
        } else if (want == AU__AFTER_VALUE) {
            int obj = is_object[(depth - 1) / 8] >> ((depth - 1) % 8) & 1;
            if (c != ',' && c != (obj ? '}' : ']')) { au__js_fail(&j, obj ? "expected ',' or '}'" : "expected ',' or ']'"); break; }
            if (depth == 1 && slot >= 0) {        /* a top-level member ended properly */
                slots[slot]->p = text + member_start;
                slots[slot]->len = vend - member_start;
                slot = -1;
            }
            j.i++;
            if (c == ',') want = obj ? AU__WANT_KEY : AU__WANT_VALUE;
            else { depth--; vend = j.i; }
        } else if (c == '{' || c == '[') {
            if (depth == AU__JSON_MAX_DEPTH) { au__js_fail(&j, "nesting deeper than 512"); break; }
            if (c == '{') is_object[depth / 8] = (uint8_t)(is_object[depth / 8] | (1u << (depth % 8)));
            else is_object[depth / 8] = (uint8_t)(is_object[depth / 8] & ~(1u << (depth % 8)));
            depth++;
            j.i++;
            au__js_ws(&j);
            if (j.i < j.n && j.s[j.i] == (c == '{' ? '}' : ']')) {   /* empty container */
                j.i++;
                depth--;
                vend = j.i;
                want = AU__AFTER_VALUE;
            } else want = c == '{' ? AU__WANT_KEY : AU__WANT_VALUE;
        } else {
            int r;
            if (c == '"') r = au__js_string(&j);
            else if (c == '-' || au__is_digit(c)) r = au__js_number(&j);
            else r = au__js_literal(&j);
            if (r) break;
            vend = j.i;
            want = AU__AFTER_VALUE;
        }
    }
    if (j.err) {                                  /* keep id and method if they came whole */
        au_tok id = out->id, method = out->method;
        memset(out, 0, sizeof *out);
        out->id = id;
        out->method = method;
        out->problem = j.err;
        out->problem_at = j.i;
        return AU_EINVAL;
    }
    out->multiline = j.nl;
    /* classify the top level */
    if (top == '[') {
        au__js e;                                 /* "[]" after any whitespace */
        e.s = (const unsigned char *)text; e.n = len; e.i = top_at + 1; e.err = NULL; e.nl = 0;
        au__js_ws(&e);
        if (e.i < e.n && e.s[e.i] == ']') { out->problem = "empty batch"; return out->kind = AU_RPC_INVALID; }
        return out->kind = AU_RPC_BATCH;
    }
    out->kind = AU_RPC_INVALID;
    if (top != '{') { out->problem = "not a JSON object or array"; return AU_RPC_INVALID; }
    if (out->id.p && !(out->id.p[0] == '"' || out->id.p[0] == '-' || au__is_digit((unsigned char)out->id.p[0]) ||
                       out->id.p[0] == 'n')) {
        out->problem = "id must be a string, a number or null";
        return AU_RPC_INVALID;
    }
    if (out->method.p) {
        if (out->method.p[0] != '"') { out->problem = "method must be a string"; return AU_RPC_INVALID; }
        return out->kind = out->id.p ? AU_RPC_REQUEST : AU_RPC_NOTIFICATION;
    }
    if (out->id.p && (out->result.p || out->error.p)) return out->kind = AU_RPC_RESPONSE;
    out->problem = "neither a request, a notification nor a response";
    return AU_RPC_INVALID;
}

ALWAYSUP_DEF size_t au_json_fold(char *t, size_t len) {
    size_t i, changed = 0;
    int in_str = 0;
    if (!memchr(t, '\n', len) && !memchr(t, '\r', len)) return 0;
    for (i = 0; i < len; i++) {
        char c = t[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') in_str = 1;
        else if (c == '\n' || c == '\r') { t[i] = ' '; changed++; }
    }
    return changed;
}

/* In validated JSON: the end of the value starting at p. */
static const char *au__json_skip(const char *p, const char *end) {
    int depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            for (p++; p < end && *p != '"'; p++) if (*p == '\\') p++;
            p++;
            if (!depth) return p;
            continue;
        }
        if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') { if (!depth) return p; if (!--depth) return p + 1; }
        else if (!depth && (c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) return p;
        p++;
    }
    return p;
}
static const char *au__json_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}
/* A member of a validated JSON object (the last one if repeated). */
static int au__json_get(au_tok obj, const char *key, au_tok *out) {
    const char *p = obj.p, *end;
    int found = 0;
    if (!p || obj.len < 2 || *p != '{') return 0;
    end = obj.p + obj.len;
    p++;
    for (;;) {
        au_tok k, v;
        p = au__json_ws(p, end);
        if (p >= end || *p != '"') return found;
        k.p = p;
        p = au__json_skip(p, end);
        k.len = (size_t)(p - k.p);
        p = au__json_ws(p, end);
        if (p >= end || *p != ':') return found;
        p = au__json_ws(p + 1, end);
        v.p = p;
        p = au__json_skip(p, end);
        v.len = (size_t)(p - v.p);
        if (au_json_string_eq(k, key)) { *out = v; found = 1; }
        p = au__json_ws(p, end);
        if (p < end && *p == ',') p++;
    }
}
/* Two validated JSON values written alike, whitespace aside. */
static int au__json_same(au_tok a, au_tok b) {
    size_t i = 0, j = 0;
    int in_str = 0;
    for (;;) {
        if (!in_str) {
            while (i < a.len && (a.p[i] == ' ' || a.p[i] == '\t' || a.p[i] == '\n' || a.p[i] == '\r')) i++;
            while (j < b.len && (b.p[j] == ' ' || b.p[j] == '\t' || b.p[j] == '\n' || b.p[j] == '\r')) j++;
        }
        if (i == a.len || j == b.len) return i == a.len && j == b.len;
        if (a.p[i] != b.p[j]) return 0;
        if (in_str && a.p[i] == '\\') {
            i++; j++;
            if (i == a.len || j == b.len || a.p[i] != b.p[j]) return 0;
        } else if (a.p[i] == '"') in_str = !in_str;
        i++; j++;
    }
}

/* ---- backoff ---- */
ALWAYSUP_DEF void au_backoff_init(au_backoff *b, const au_backoff_desc *desc) {
    memset(b, 0, sizeof *b);
    if (desc) b->desc = *desc;
    if (!(b->desc.initial > 0)) b->desc.initial = 0.25;
    if (!(b->desc.factor > 0)) b->desc.factor = 1.5;
    if (b->desc.factor < 1) b->desc.factor = 1;
    if (!(b->desc.max > 0)) b->desc.max = 5;
    if (b->desc.max < b->desc.initial) b->desc.max = b->desc.initial;
    if (!(b->desc.jitter > 0)) b->desc.jitter = 0;
    if (b->desc.jitter > 1) b->desc.jitter = 1;
    b->current = b->desc.initial;
}
ALWAYSUP_DEF double au_backoff_next(au_backoff *b, double random01) {
    double d = b->current;
    b->current = b->current * b->desc.factor;
    if (b->current > b->desc.max) b->current = b->desc.max;
    if (b->attempt < 0xFFFFFFFFu) b->attempt++;
    if (random01 < 0) random01 = 0;
    if (random01 > 1) random01 = 1;
    return d - d * b->desc.jitter * random01;
}
ALWAYSUP_DEF void au_backoff_reset(au_backoff *b) {
    b->attempt = 0;
    b->current = b->desc.initial;
}

/* ========================================================================
   Layer 2: the session core (sans I/O)
   Events in, actions out; time comes in as an argument. Every state change
   ends in au__after, which settles the exit rule and re-arms the timers, so
   the deadlines the driver sleeps on and the ones acted on are one table.
   ======================================================================== */
#if defined(__GNUC__) || defined(__clang__)
#  define AU__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define AU__PRINTF(a, b)
#endif
static int64_t au__ms(double seconds) { return (int64_t)(seconds * 1000.0 + 0.5); }
static double au__secs(int64_t ms) { return (double)ms / 1000.0; }

/* the daemon connection: HELLO waits for the --hello answer, REPLAY for the
   answers to the replayed session; only UP carries the client's traffic */
enum { AU__DOWN, AU__CONNECTING, AU__HELLO, AU__REPLAY, AU__UP };
enum { AU__INIT_NONE, AU__INIT_PENDING, AU__INIT_ANSWERED, AU__INIT_LOCAL };   /* the client's initialize */
enum { AU__RUN, AU__DRAIN, AU__CLOSING, AU__DONE };   /* the process */
enum { AU__T_RETRY, AU__T_SETUP, AU__T_KEEPALIVE, AU__T_HEALTHY, AU__T_QUEUE, AU__T_INIT_GRACE, AU__T_PHASE, AU__T_DIALECT, AU__T_COUNT };
typedef char au__timers_fit[AU__T_COUNT <= 10 ? 1 : -1];     /* au_core.timers */
#define AU__EARLY_GAP 250                /* ms between attempts a client message may trigger */
#define AU__MAX_DREQS 4096               /* daemon requests remembered at once */
#define AU__JS_MAX_SAFE 9007199254740991LL   /* 2^53 - 1: every JSON reader keeps these exact */
/* Test-only: tests/sim builds the core with one rule broken at a time
   (-DALWAYSUP_MUTANT=n) to show the simulator notices; never set otherwise. */
#ifdef ALWAYSUP_MUTANT
#define AU__BROKEN(n) (ALWAYSUP_MUTANT == (n))
#else
#define AU__BROKEN(n) 0
#endif

struct au__act {                          /* an action not taken yet */
    int type, level;
    const char *ext;                      /* data outside the arena (the event's input, a queued message) */
    size_t off, len;                      /* else: where it lies in the arena */
    const char *event;
    unsigned code;
};
struct au__msg {                          /* a client message waiting for the daemon */
    au__msg *prev, *next;
    au__req *req;                         /* set when the message is a request */
    int64_t t;                            /* when the client sent it */
    size_t len;
    char *data;                           /* stored right after this struct */
};
struct au__req {                          /* a client request not answered yet */
    au__req *next;                        /* hash chain */
    au__msg *msg;                         /* queued, or kept to re-send if safe */
    au__call *call;                       /* EXAI: the call_tool state of a tools/call */
    uint64_t seq;
    int64_t t;
    int sent, role, resends;
    unsigned flags;                       /* AU_METHOD_* */
    size_t method_len;
    uint32_t hash;
    size_t key_len, id_len;
    char *key, *id;                       /* canonical key and the raw token */
    char method[64];
};
struct au__dreq {                         /* a daemon request the client has not answered */
    au__dreq *next;
    unsigned gen;                         /* the connection it came on */
    int cancelled;                        /* that connection died; the client was told */
    int64_t t;
    size_t key_len, id_len;
    char *key, *id;
};

/* ---- actions ---- */
static void au__act_reset(au_core *c) {
    while (c->act.retired) {
        au__msg *m = c->act.retired;
        c->act.retired = m->next;
        ALWAYSUP_FREE(m);
    }
    c->act.count = c->act.next = 0;
    c->act.arena.off = c->act.arena.len = 0;
    if (c->act.arena.cap > ((size_t)1 << 20)) au__buf_free(&c->act.arena);   /* a big one-off: memory back */
}
static au__act *au__act_new(au_core *c, int type) {
    au__act *a;
    if (c->act.count == c->act.cap) {
        size_t cap = c->act.cap ? c->act.cap * 2 : 16;
        au__act *l = (au__act *)ALWAYSUP_REALLOC(c->act.list, cap * sizeof *l);
        if (!l) return NULL;
        c->act.list = l;
        c->act.cap = cap;
    }
    a = &c->act.list[c->act.count++];
    memset(a, 0, sizeof *a);
    a->type = type;
    return a;
}
/* data that stays where it is until the next event */
static void au__act_ref(au_core *c, int type, const char *p, size_t n) {
    au__act *a = au__act_new(c, type);
    if (a) { a->ext = p; a->len = n; }
}
/* data built in the arena from offset at */
static au__act *au__act_arena(au_core *c, int type, size_t at) {
    au__act *a;
    if (c->act.arena.len < at) return NULL;            /* out of memory while building it */
    a = au__act_new(c, type);
    if (a) { a->off = at; a->len = c->act.arena.len - at; }
    return a;
}
/* a queued message's memory outlives the action that sends it */
static void au__retire(au_core *c, au__msg *m) {
    m->next = c->act.retired;
    c->act.retired = m;
}
static void au__log(au_core *c, int level, const char *event, const char *fmt, ...) AU__PRINTF(4, 5);
static void au__log(au_core *c, int level, const char *event, const char *fmt, ...) {
    char msg[768];
    size_t at = c->act.arena.len;
    int n;
    au__act *a;
    va_list ap;
    if (level > c->d.log_level) return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    au__buf_append(&c->act.arena, msg, AU__MIN((size_t)n, sizeof msg - 1));
    a = au__act_arena(c, AU_ACT_LOG, at);
    if (a) { a->level = level; a->event = event; }
}
ALWAYSUP_DEF int au_core_next_action(au_core *c, au_action *a) {
    au__act *x;
    if (c->act.next >= c->act.count) { au__act_reset(c); return 0; }
    x = &c->act.list[c->act.next++];
    memset(a, 0, sizeof *a);
    a->type = x->type;
    a->data = x->ext ? x->ext : (const char *)c->act.arena.p + x->off;
    a->len = x->len;
    a->level = x->level;
    a->event = x->event;
    a->code = x->code;
    return 1;
}

/* appends text as the body of a JSON string */
static void au__json_escape(au__buf *o, const char *s, size_t n) {
    size_t i, run = 0;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char e[8];
        if (ch != '"' && ch != '\\' && ch >= 0x20) continue;
        au__buf_append(o, s + run, i - run);
        run = i + 1;
        if (ch == '"' || ch == '\\') { e[0] = '\\'; e[1] = (char)ch; au__buf_append(o, e, 2); }
        else { snprintf(e, sizeof e, "\\u%04x", ch); au__buf_append(o, e, 6); }
    }
    au__buf_append(o, s + run, n - run);
}
#define AU__ARENA(c) (&(c)->act.arena)
/* the shim's own answer to a client request */
static void au__reply_error(au_core *c, const char *id, size_t id_len, int code, const char *message, const char *data_json) {
    char num[48];
    size_t at = AU__ARENA(c)->len;
    au__buf_append(AU__ARENA(c), AU__LIT("{\"jsonrpc\":\"2.0\",\"id\":"));
    if (id && id_len) au__buf_append(AU__ARENA(c), id, id_len);
    else au__buf_append(AU__ARENA(c), AU__LIT("null"));
    snprintf(num, sizeof num, ",\"error\":{\"code\":%d,\"message\":\"", code);
    au__buf_append(AU__ARENA(c), num, strlen(num));
    au__json_escape(AU__ARENA(c), message, strlen(message));
    au__buf_append(AU__ARENA(c), AU__LIT("\""));
    if (data_json) { au__buf_append(AU__ARENA(c), AU__LIT(",\"data\":")); au__buf_append(AU__ARENA(c), data_json, strlen(data_json)); }
    au__buf_append(AU__ARENA(c), AU__LIT("}}"));
    if (!c->stdout_dead) au__act_arena(c, AU_ACT_STDOUT, at);
}
static void au__reply_result(au_core *c, const char *id, size_t id_len, const char *result, size_t result_len) {
    size_t at = AU__ARENA(c)->len;
    au__buf_append(AU__ARENA(c), AU__LIT("{\"jsonrpc\":\"2.0\",\"id\":"));
    au__buf_append(AU__ARENA(c), id, id_len);
    au__buf_append(AU__ARENA(c), AU__LIT(",\"result\":"));
    au__buf_append(AU__ARENA(c), result, result_len);
    au__buf_append(AU__ARENA(c), AU__LIT("}"));
    if (!c->stdout_dead) au__act_arena(c, AU_ACT_STDOUT, at);
}
static void au__emit_copy(au_core *c, const char *p, size_t n) {
    size_t at = AU__ARENA(c)->len;
    au__buf_append(AU__ARENA(c), p, n);
    if (!c->stdout_dead) au__act_arena(c, AU_ACT_STDOUT, at);
}
static void au__send_copy(au_core *c, const char *p, size_t n) {
    size_t at = AU__ARENA(c)->len;
    au__buf_append(AU__ARENA(c), p, n);
    au__act_arena(c, AU_ACT_SEND, at);
}

/* ---- MCP policy, as data ---- */
static const au_method_policy au__mcp_table[] = {
    { "initialize", AU_ROLE_INITIALIZE, AU_METHOD_RESEND | AU_METHOD_RESEND_ALWAYS | AU_METHOD_WAITS },
    { "notifications/initialized", AU_ROLE_INITIALIZED, 0 },
    { "notifications/cancelled", AU_ROLE_CANCELLED, 0 },
    { "ping", AU_ROLE_PING, AU_METHOD_RESEND },
    { "logging/setLevel", AU_ROLE_SET_LEVEL, AU_METHOD_RESEND },
    { "resources/subscribe", AU_ROLE_SUBSCRIBE, 0 },
    { "resources/unsubscribe", AU_ROLE_UNSUBSCRIBE, 0 },
    { "resources/read", AU_ROLE_NONE, AU_METHOD_RESEND },
    { "prompts/get", AU_ROLE_NONE, AU_METHOD_RESEND },
    { "completion/complete", AU_ROLE_NONE, AU_METHOD_RESEND },
    { "*/list", AU_ROLE_NONE, AU_METHOD_RESEND }          /* tools/list, prompts/list, resources/templates/list ... */
};
ALWAYSUP_DEF const au_method_policy *au_mcp_methods(int *count) {
    if (count) *count = (int)(sizeof au__mcp_table / sizeof au__mcp_table[0]);
    return au__mcp_table;
}
static const au_method_policy *au__policy(const au_core *c, const char *m, size_t n) {
    int i;
    for (i = 0; i < c->d.num_methods; i++) {
        const char *name = c->d.methods[i].name;
        size_t k;
        if (name[0] != '*' && (!n || name[0] != m[0])) continue;   /* most names differ at once */
        k = strlen(name);
        if (name[0] == '*' ? (n >= k - 1 && memcmp(m + n - (k - 1), name + 1, k - 1) == 0)
                           : (n == k && memcmp(m, name, n) == 0))
            return &c->d.methods[i];
    }
    return NULL;
}


/* ---- client requests by id ---- */
static uint32_t au__fnv(const char *p, size_t n) {
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; i++) { h ^= (uint8_t)p[i]; h *= 16777619u; }
    return h;
}
/* An integer written another way (1.0, 1e0, -0) keys as the integer, as
   every JSON reader on the daemon's side sees it; out gets the digits. */
static size_t au__number_key(const char *p, size_t n, char *out) {
    char digits[24];
    size_t i = 0, nd = 0, frac = 0, k;
    long exp = 0;
    int neg = 0, dot = 0, lead = 1;
    if (i < n && p[i] == '-') { neg = 1; i++; }
    for (; i < n && (au__is_digit(p[i]) || p[i] == '.'); i++) {
        if (p[i] == '.') { dot = 1; continue; }
        if (dot) frac++;
        if (lead && p[i] == '0') continue;
        lead = 0;
        if (nd == sizeof digits) return 0;
        digits[nd++] = p[i];
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        int eneg = 0;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) eneg = p[i++] == '-';
        for (; i < n; i++) { if (exp > 100) return 0; exp = exp * 10 + (p[i] - '0'); }
        if (eneg) exp = -exp;
    }
    exp -= (long)frac;
    while (nd && digits[nd - 1] == '0') { nd--; exp++; }   /* lead zeros were dropped above */
    if (!nd) { out[0] = '0'; return 1; }
    if (exp < 0 || (long)nd + exp > 16) return 0;          /* not an integer, or beyond 2^53 */
    k = 0;
    if (neg) out[k++] = '-';
    memcpy(out + k, digits, nd);
    k += nd;
    while (exp-- > 0) out[k++] = '0';
    return k;
}
/* Ids compare by value: "a\/b" and "a/b" are one id, so are 7 and 7.0.
   out needs id.len + 24. */
static size_t au__id_key(au_tok id, char *out) {
    const char *p, *end;
    size_t o = 1;
    if (id.p[0] != '"') {
        size_t i, k = 0;
        out[0] = 'n';
        for (i = 0; i < id.len; i++)
            if (!au__is_digit(id.p[i]) && !(i == 0 && id.p[i] == '-')) break;
        /* plain digits without a leading zero are already canonical */
        if (i < id.len || (id.len > 1 && id.p[id.p[0] == '-'] == '0'))
            k = au__number_key(id.p, id.len, out + 1);
        if (k) return k + 1;
        memcpy(out + 1, id.p, id.len);
        return id.len + 1;
    }
    out[0] = 's';
    p = id.p + 1;
    end = id.p + id.len - 1;
    if (!memchr(p, '\\', (size_t)(end - p))) {           /* no escapes: the bytes are the key */
        memcpy(out + 1, p, (size_t)(end - p));
        return (size_t)(end - p) + 1;
    }
    while (p < end) {
        uint8_t u[4];
        size_t adv, k = au__js_unescape1(p, end, u, &adv);
        memcpy(out + o, u, k);
        o += k;
        p += adv;
    }
    return o;
}
static size_t au__method_name(au_tok m, char *out, size_t cap) {
    const char *p = m.p + 1, *end = m.p + m.len - 1;
    size_t o = 0;
    if ((size_t)(end - p) < cap && !memchr(p, '\\', (size_t)(end - p))) {   /* as written */
        o = (size_t)(end - p);
        memcpy(out, p, o);
        out[o] = 0;
        return o;
    }
    while (p < end && o + 4 < cap) {
        uint8_t u[4];
        size_t adv, k = au__js_unescape1(p, end, u, &adv);
        memcpy(out + o, u, k);
        o += k;
        p += adv;
    }
    out[o] = 0;
    return o;
}
static au__req *au__req_find(const au_core *c, const char *key, size_t len, uint32_t h) {
    au__req *r;
    if (!c->reqs.cap) return NULL;
    for (r = c->reqs.tab[h & (c->reqs.cap - 1)]; r; r = r->next)
        if (r->hash == h && r->key_len == len && memcmp(r->key, key, len) == 0) return r;
    return NULL;
}
static au__req *au__req_lookup(au_core *c, au_tok id) {
    char small[160], *key = id.len + 24 < sizeof small ? small : (char *)ALWAYSUP_REALLOC(NULL, id.len + 24);
    au__req *r = NULL;
    if (key) {
        size_t n = au__id_key(id, key);
        r = au__req_find(c, key, n, au__fnv(key, n));
        if (key != small) ALWAYSUP_FREE(key);
    }
    return r;
}
static int au__req_grow(au_core *c) {
    size_t cap = c->reqs.cap ? c->reqs.cap * 2 : 64, i;
    au__req **t = (au__req **)ALWAYSUP_REALLOC(NULL, cap * sizeof *t);
    if (!t) return AU_ENOMEM;
    memset(t, 0, cap * sizeof *t);
    for (i = 0; i < c->reqs.cap; i++) {
        au__req *r = c->reqs.tab[i];
        while (r) {
            au__req *next = r->next;
            r->next = t[r->hash & (cap - 1)];
            t[r->hash & (cap - 1)] = r;
            r = next;
        }
    }
    ALWAYSUP_FREE(c->reqs.tab);
    c->reqs.tab = t;
    c->reqs.cap = cap;
    return AU_OK;
}
/* NULL with *dup set when a pending request already has this id */
static au__req *au__req_new(au_core *c, au_tok id, const char *method, size_t method_len, const au_method_policy *pol,
                            int *dup) {
    au__req *r;
    *dup = 0;
    if ((c->reqs.count + 1) * 4 > c->reqs.cap * 3 && au__req_grow(c) != AU_OK) return NULL;   /* load <= 3/4 */
    r = (au__req *)ALWAYSUP_REALLOC(NULL, sizeof *r + 2 * id.len + 26);
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->key = (char *)(r + 1);
    r->key_len = au__id_key(id, r->key);
    r->hash = au__fnv(r->key, r->key_len);
    if (au__req_find(c, r->key, r->key_len, r->hash)) { *dup = 1; ALWAYSUP_FREE(r); return NULL; }
    r->id = r->key + id.len + 24;
    memcpy(r->id, id.p, id.len);
    r->id[id.len] = 0;
    r->id_len = id.len;
    memcpy(r->method, method, method_len + 1);
    r->method_len = method_len;
    if (pol) {
        r->flags = pol->flags;
        r->role = pol->role;
        if (c->d.no_mcp && c->d.dialect == AU_DIALECT_MCP) { r->flags &= AU_METHOD_RESEND; r->role = AU_ROLE_NONE; }   /* plain JSON-RPC */
    }
    r->seq = ++c->reqs.seq;
    r->t = c->now;
    r->next = c->reqs.tab[r->hash & (c->reqs.cap - 1)];
    c->reqs.tab[r->hash & (c->reqs.cap - 1)] = r;
    c->reqs.count++;
    return r;
}
static void au__q_unlink(au_core *c, au__msg *m);
static void au__call_free(au_core *c, au__call *x);
static void au__req_free(au_core *c, au__req *r) {
    au__req **pp = &c->reqs.tab[r->hash & (c->reqs.cap - 1)];
    while (*pp != r) pp = &(*pp)->next;
    *pp = r->next;
    c->reqs.count--;
    if (r->sent) c->reqs.inflight--;
    if (r == c->mcp.init_pending) c->mcp.init_pending = NULL;
    if (r->call) au__call_free(c, r->call);
    if (r->msg) {
        if (!r->sent) au__q_unlink(c, r->msg);     /* still queued */
        au__retire(c, r->msg);
    }
    ALWAYSUP_FREE(r);
}
/* answers a pending request with an error and forgets it */
static void au__req_fail(au_core *c, au__req *r, const char *message, const char *data_json) {
    au__reply_error(c, r->id, r->id_len, -32000, message, data_json);
    au__req_free(c, r);
}

/* ---- the queue of client messages waiting for the daemon ---- */
static au__msg *au__msg_new(const char *data, size_t len) {
    au__msg *m = (au__msg *)ALWAYSUP_REALLOC(NULL, sizeof *m + len);
    if (!m) return NULL;
    memset(m, 0, sizeof *m);
    m->data = (char *)(m + 1);
    memcpy(m->data, data, len);
    m->len = len;
    return m;
}
static void au__q_insert(au_core *c, au__msg *m, au__msg *before) {
    m->next = before;
    m->prev = before ? before->prev : c->q.tail;
    if (m->prev) m->prev->next = m; else c->q.head = m;
    if (before) before->prev = m; else c->q.tail = m;
    c->q.bytes += m->len;
    c->q.count++;
}
static void au__q_unlink(au_core *c, au__msg *m) {
    if (m->prev) m->prev->next = m->next; else c->q.head = m->next;
    if (m->next) m->next->prev = m->prev; else c->q.tail = m->prev;
    m->prev = m->next = NULL;
    c->q.bytes -= m->len;
    c->q.count--;
}
static int au__queue_full(const au_core *c) {
    return c->q.count && !AU__BROKEN(4) && (c->q.bytes >= c->d.queue_max_bytes || c->q.count >= c->d.queue_max_count);
}

/* ---- sending to the daemon ---- */
/* data stays valid until the next event; m is its stored copy, if any */
static void au__send(au_core *c, const char *data, size_t len, au__req *r, au__msg *m) {
    au__act_ref(c, AU_ACT_SEND, data, len);
    if (!r) { if (m) au__retire(c, m); return; }
    au__log(c, AU_LOG_DEBUG, "sent", "request %.*s (%s) sent, %lu bytes", (int)AU__MIN(r->id_len, 60), r->id, r->method,
            (unsigned long)len);
    r->sent = 1;
    c->reqs.inflight++;
    if (r->flags & AU_METHOD_RESEND) {            /* keep it to re-send after a reconnect */
        if (!m) m = au__msg_new(data, len);
        if (m) m->req = r;
        r->msg = m;
    } else {
        if (m) au__retire(c, m);
        r->msg = NULL;
    }
}
static void au__flush_queue(au_core *c) {
    while (c->q.head && c->conn.state == AU__UP) {
        au__msg *m = c->q.head;
        au__q_unlink(c, m);
        au__send(c, m->data, m->len, m->req, m);
    }
}
/* a client message while waiting: try now, at most one early attempt per 250 ms */
static void au__kick(au_core *c) {
    int64_t earliest = c->conn.last_early + AU__EARLY_GAP;
    if (c->conn.state != AU__DOWN || c->conn.retry_at <= c->now) return;
    if (c->now >= earliest) { c->conn.retry_at = c->now; c->conn.last_early = c->now; }
    else if (earliest < c->conn.retry_at) { c->conn.retry_at = earliest; c->conn.last_early = earliest; }
}
/* a stored message to the back of the queue (the daemon is not up, or others wait) */
static void au__enqueue(au_core *c, au__msg *m, au__req *r) {
    m->t = c->now;
    m->req = r;
    if (r) r->msg = m;
    au__q_insert(c, m, NULL);
    au__kick(c);
}
static void au__forward(au_core *c, const char *line, size_t len, au__req *r) {
    au__msg *m;
    if (c->conn.state == AU__UP && !c->q.head) { au__send(c, line, len, r, NULL); return; }
    m = au__msg_new(line, len);
    if (!m) {
        au__log(c, AU_LOG_ERROR, "oom", "out of memory queueing a %lu-byte message", (unsigned long)len);
        if (r) au__req_fail(c, r, "alwaysup: out of memory while the daemon is unreachable", NULL);
        return;
    }
    au__enqueue(c, m, r);
}

/* ---- MCP session memory ---- */
static int au__mcp(const au_core *c) { return !c->d.no_mcp && c->d.dialect == AU_DIALECT_MCP; }
static void au__buf_set(au__buf *o, const char *p, size_t n) {
    o->off = o->len = 0;
    au__buf_append(o, p, n);
}
static au_tok au__buf_tok(const au__buf *o) {
    au_tok t;
    t.p = (const char *)o->p + o->off;
    t.len = o->len - o->off;
    if (!o->p) t.p = NULL;
    return t;
}
/* daemon requests to the client: remembered per connection, so the client's
   late answers never reach a daemon that did not ask */
static au__dreq **au__dreq_find(au_core *c, au_tok id) {
    char small[160], *key = id.len + 24 < sizeof small ? small : (char *)ALWAYSUP_REALLOC(NULL, id.len + 24);
    au__dreq **pp = &c->dreqs;
    size_t n;
    if (!key) return NULL;
    n = au__id_key(id, key);
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->key_len == n && memcmp((*pp)->key, key, n) == 0) break;
    if (key != small) ALWAYSUP_FREE(key);
    return *pp ? pp : NULL;
}
static void au__dreq_unlink(au_core *c, au__dreq **pp) {
    au__dreq *d = *pp;
    *pp = d->next;
    c->dreq_count--;
    ALWAYSUP_FREE(d);
}
static void au__dreq_add(au_core *c, au_tok id) {
    au__dreq *d;
    au__dreq **pp = au__dreq_find(c, id);
    if (pp) au__dreq_unlink(c, pp);                  /* the daemon reused an id */
    while (c->dreq_count >= AU__MAX_DREQS) {         /* bounded: forget the oldest */
        for (pp = &c->dreqs; (*pp)->next; pp = &(*pp)->next) {}
        au__dreq_unlink(c, pp);
    }
    d = (au__dreq *)ALWAYSUP_REALLOC(NULL, sizeof *d + 2 * id.len + 26);
    if (!d) return;
    memset(d, 0, sizeof *d);
    d->key = (char *)(d + 1);
    d->key_len = au__id_key(id, d->key);
    d->id = d->key + id.len + 24;
    memcpy(d->id, id.p, id.len);
    d->id[id.len] = 0;
    d->id_len = id.len;
    d->gen = c->conn.gen;
    d->t = c->now;
    d->next = c->dreqs;
    c->dreqs = d;
    c->dreq_count++;
}
/* The connection died: each of its requests to the client is cancelled (an
   MCP client is told; in plain JSON-RPC its late answer is just dropped). */
static void au__dreq_cancel(au_core *c, const char *why) {
    au__dreq **pp = &c->dreqs;
    while (*pp) {
        au__dreq *d = *pp;
        if (d->gen == c->conn.gen && !d->cancelled && au__mcp(c)) {
            size_t at = AU__ARENA(c)->len;
            au__buf_append(AU__ARENA(c), AU__LIT("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":"));
            au__buf_append(AU__ARENA(c), d->id, d->id_len);
            au__buf_append(AU__ARENA(c), AU__LIT(",\"reason\":\""));
            au__json_escape(AU__ARENA(c), why, strlen(why));
            au__buf_append(AU__ARENA(c), AU__LIT("\"}}"));
            if (!c->stdout_dead) au__act_arena(c, AU_ACT_STDOUT, at);
        }
        if (d->gen == c->conn.gen) d->cancelled = 1;
        if (d->cancelled && c->now - d->t > 600000) { au__dreq_unlink(c, pp); continue; }   /* 10 min on */
        pp = &d->next;
    }
}
/* resource subscriptions, kept as one URI token per line */
static void au__subs_update(au_core *c, au_tok params, int add) {
    au_tok uri;
    size_t at = 0;
    au__buf *s = &c->mcp.subs;
    if (!au__json_get(params, "uri", &uri) || uri.p[0] != '"') return;
    while (at < s->len) {
        uint8_t *nl = (uint8_t *)memchr(s->p + at, '\n', s->len - at);
        size_t n = (size_t)(nl - (s->p + at));
        au_tok t;
        t.p = (const char *)s->p + at;
        t.len = n;
        if (au__json_same(t, uri)) {
            if (add) return;
            memmove(s->p + at, s->p + at + n + 1, s->len - at - n - 1);
            s->len -= n + 1;
            return;
        }
        at += n + 1;
    }
    if (add) { au__buf_append(s, uri.p, uri.len); au__buf_append(s, AU__LIT("\n")); }
}
static void au__save_result(au_core *c, au_tok result) {
    size_t at = AU__ARENA(c)->len;
    au__buf_set(&c->mcp.remembered, result.p, result.len);
    au__buf_append(AU__ARENA(c), result.p, result.len);
    au__act_arena(c, AU_ACT_SAVE, at);
}

/* ---- our own requests: integer ids, as an SDK client sends them ---- */
/* The next id that no pending client request has: a daemon sees one id space. */
static int64_t au__shim_id(au_core *c) {
    for (;;) {
        char key[24];
        int n;
        int64_t id = c->mcp.shim_next++;
        if (c->mcp.shim_next > AU__JS_MAX_SAFE) c->mcp.shim_next = 1;
        n = snprintf(key, sizeof key, "n%lld", (long long)id);
        if (AU__BROKEN(10) || !au__req_find(c, key, (size_t)n, au__fnv(key, (size_t)n))) {
            au__buf_append(&c->mcp.shim_ids, &id, sizeof id);
            return id;
        }
    }
}
static size_t au__shim_count(const au_core *c) { return c->mcp.shim_ids.len / sizeof(int64_t); }
/* 1 (and forgets it) if id is one of our requests in flight */
static int au__shim_take(au_core *c, au_tok id, int64_t *which) {
    char key[40];
    size_t i, n = au__shim_count(c);
    int64_t *ids = (int64_t *)(void *)c->mcp.shim_ids.p;
    long long v = 0;
    if (!n || id.p[0] == '"' || id.len + 24 > sizeof key) return 0;
    n = au__id_key(id, key);                            /* 'n' and the canonical digits */
    if (n < 2 || n > 18) return 0;
    for (i = 1; i < n; i++) {
        if (key[i] == '-') continue;
        if (!au__is_digit(key[i])) return 0;
        v = v * 10 + (key[i] - '0');
    }
    if (key[1] == '-') v = -v;
    n = au__shim_count(c);
    for (i = 0; i < n; i++)
        if (ids[i] == v) {
            ids[i] = ids[n - 1];
            c->mcp.shim_ids.len -= sizeof(int64_t);
            *which = v;
            return 1;
        }
    return 0;
}
static void au__shim_request(au_core *c, const char *method, const char *params, size_t plen) {
    char head[160];
    size_t at = AU__ARENA(c)->len;
    int n = snprintf(head, sizeof head, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"%s\"", (long long)au__shim_id(c), method);
    au__buf_append(AU__ARENA(c), head, (size_t)n);
    if (params) { au__buf_append(AU__ARENA(c), AU__LIT(",\"params\":")); au__buf_append(AU__ARENA(c), params, plen); }
    au__buf_append(AU__ARENA(c), AU__LIT("}"));
    au__act_arena(c, AU_ACT_SEND, at);
}

/* ---- the connection's life ---- */
static void au__on_down(au_core *c, const char *why, int refused);
/* the core decided to end the connection: the driver drops it, no event follows */
static void au__fail_attempt(au_core *c, const char *why, int refused) {
    au__act_new(c, AU_ACT_DROP);
    au__on_down(c, why, refused);
}
/* After a reconnect: list_changed for each list the client was told can
   change and the new daemon still has, so the client re-reads it. */
static void au__send_list_changed(au_core *c) {
    static const char *const kinds[3] = { "tools", "prompts", "resources" };
    au_tok seen, now, cap, lc;
    int k, have_seen = au__json_get(au__buf_tok(&c->mcp.init_result), "capabilities", &seen),
           have_now = au__json_get(au__buf_tok(&c->mcp.daemon_result), "capabilities", &now);
    if (c->d.list_changed == AU_LIST_CHANGED_NEVER) return;
    for (k = 0; k < 3; k++) {
        int told = have_seen && au__json_get(seen, kinds[k], &cap) && au__json_get(cap, "listChanged", &lc) && lc.len == 4 &&
                   memcmp(lc.p, "true", 4) == 0;
        int exists = have_now && au__json_get(now, kinds[k], &cap);
        if (c->d.list_changed == AU_LIST_CHANGED_ALWAYS || (told && exists)) {
            char note[96];
            int n = snprintf(note, sizeof note, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/%s/list_changed\"}", kinds[k]);
            au__emit_copy(c, note, (size_t)n);
        }
    }
}
/* the daemon now holds the session: the client's traffic may flow */
static void au__session_ready(au_core *c, int replayed) {
    size_t queued = c->q.count;
    c->conn.state = AU__UP;
    c->conn.up_since = c->now;
    c->conn.healthy = 0;
    c->conn.refused = 0;
    if (!c->conn.reconnects++)
        au__log(c, AU_LOG_INFO, "connected", "connected to %s (%s)", c->d.daemon_name, c->conn.peer);
    else
        au__log(c, AU_LOG_INFO, "reconnected", "reconnected after %u attempt%s, %.1f s down, %lu queued message%s sent%s",
                c->conn.attempts, c->conn.attempts == 1 ? "" : "s", au__secs(c->now - c->conn.down_since),
                (unsigned long)queued, queued == 1 ? "" : "s", replayed ? ", MCP session replayed" : "");
    c->conn.attempts = 0;
    c->conn.logged_failure = 0;
    c->conn.last_error[0] = 0;
    au__flush_queue(c);
    if (replayed) au__send_list_changed(c);
}
/* A new daemon has never seen the client's initialize: replay it under an
   id of ours, then the rest of the session state, before any queued message. */
static void au__exai_begin(au_core *c);
static void au__begin_session(au_core *c) {
    au__buf *ir = &c->mcp.init_req;
    if (c->d.dialect == AU_DIALECT_EXAI) { au__exai_begin(c); return; }
    if (au__mcp(c) && (c->mcp.init_state == AU__INIT_ANSWERED || c->mcp.init_state == AU__INIT_LOCAL) && ir->len) {
        char id[24];
        size_t at = AU__ARENA(c)->len;
        int n;
        c->mcp.shim_init_id = au__shim_id(c);
        n = snprintf(id, sizeof id, "%lld", (long long)c->mcp.shim_init_id);
        au__buf_append(AU__ARENA(c), ir->p, c->mcp.init_id_at);
        au__buf_append(AU__ARENA(c), id, (size_t)n);
        au__buf_append(AU__ARENA(c), ir->p + c->mcp.init_id_at + c->mcp.init_id_len, ir->len - c->mcp.init_id_at - c->mcp.init_id_len);
        au__act_arena(c, AU_ACT_SEND, at);
        c->conn.state = AU__REPLAY;
        c->mcp.shim_init_pending = 1;
        if (AU__BROKEN(9)) { c->conn.state = AU__UP; au__flush_queue(c); c->conn.state = AU__REPLAY; }
        au__log(c, AU_LOG_DEBUG, "replay", "replaying the MCP session (initialize as id %s)", id);
        return;
    }
    au__session_ready(c, 0);
}
/* "already initialized": a single-session daemon that still holds ours */
static int au__says_already_initialized(au_tok message) {
    size_t i;
    static const char word[] = "already initiali";
    for (i = 0; message.p && i + sizeof word - 1 + 2 <= message.len; i++)
        if (au__ieq(message.p + i, sizeof word - 1, word) && (message.p[i + sizeof word - 1] == 'z' ||
                                                               message.p[i + sizeof word - 1] == 's'))
            return 1;
    return 0;
}
static void au__replay_answer(au_core *c, const au_jsonrpc *r, int64_t id) {
    if (c->conn.state != AU__REPLAY) return;           /* late: swallowed */
    if (c->mcp.shim_init_pending && id == c->mcp.shim_init_id) {
        au_tok old = au__buf_tok(&c->mcp.init_result), a, b2, em;
        c->mcp.shim_init_pending = 0;
        if (!r->result.p) {
            char why[300], msg[200] = "";
            em.p = NULL;
            em.len = 0;
            if (r->error.p && au__json_get(r->error, "message", &em)) au__printable(msg, sizeof msg, em.p, em.len);
            if (au__says_already_initialized(em)) {     /* it kept our session: nothing to replay */
                au__log(c, AU_LOG_INFO, "session_kept", "the daemon still holds the session (%s); not replayed", msg);
                au__buf_set(&c->mcp.daemon_result, (const char *)c->mcp.init_result.p, c->mcp.init_result.len);
                c->mcp.session_up = 1;
                c->mcp.shim_ids.len = 0;
                au__session_ready(c, 0);
                return;
            }
            if (!msg[0] && r->error.p) au__printable(msg, sizeof msg, r->error.p, r->error.len);
            snprintf(why, sizeof why, "the daemon refused the replayed initialize: %s", msg[0] ? msg : "error");
            au__fail_attempt(c, why, 1);
            return;
        }
        au__buf_set(&c->mcp.daemon_result, r->result.p, r->result.len);
        if (c->mcp.init_minimal) { old.p = NULL; old.len = 0; }   /* nothing real to compare with */
        if (au__json_get(old, "protocolVersion", &a) && au__json_get(r->result, "protocolVersion", &b2) && !au__json_same(a, b2))
            au__log(c, AU_LOG_WARN, "protocol_changed", "the new daemon speaks protocol %.*s, the client was told %.*s",
                    (int)AU__MIN(b2.len, 40), b2.p, (int)AU__MIN(a.len, 40), a.p);
        if (au__json_get(old, "serverInfo", &a) && au__json_get(r->result, "serverInfo", &b2) && !au__json_same(a, b2))
            au__log(c, AU_LOG_INFO, "server_changed", "the daemon's serverInfo changed: %.*s", (int)AU__MIN(b2.len, 200), b2.p);
        au__save_result(c, r->result);
        c->mcp.session_up = 1;
        if (c->mcp.client_initialized) au__send_copy(c, AU__LIT("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
        if (c->mcp.set_level.len) au__shim_request(c, "logging/setLevel", (const char *)c->mcp.set_level.p, c->mcp.set_level.len);
        {
            size_t at = 0;
            au__buf *s = &c->mcp.subs;
            while (at < s->len) {
                uint8_t *nl = (uint8_t *)memchr(s->p + at, '\n', s->len - at);
                size_t n = (size_t)(nl - (s->p + at));
                au__buf_set(&c->scratch, "{\"uri\":", 7);
                au__buf_append(&c->scratch, s->p + at, n);
                au__buf_append(&c->scratch, "}", 1);
                au__shim_request(c, "resources/subscribe", (const char *)c->scratch.p, c->scratch.len);
                at += n + 1;
            }
        }
    } else if (r->error.p) {
        char msg[200];
        au__printable(msg, sizeof msg, r->error.p, r->error.len);
        au__log(c, AU_LOG_WARN, "replay_refused", "the daemon refused a replayed request: %s", msg);
    }
    if (!c->mcp.shim_init_pending && !au__shim_count(c)) au__session_ready(c, 1);
}
/* --hello: the daemon's first answer decides */
static void au__hello_answer(au_core *c, const char *p, size_t n) {
    au_tok all, ok, err;
    all.p = p;
    all.len = n;
    if (!au__json_get(all, "ok", &ok)) {
        au__log(c, AU_LOG_DEBUG, "hello_other", "ignored a message while waiting for the hello answer");
        return;
    }
    if (ok.len == 4 && memcmp(ok.p, "true", 4) == 0) {
        au__log(c, AU_LOG_DEBUG, "hello_ok", "hello accepted");
        au__begin_session(c);
    } else {
        char why[300], detail[200];
        if (!au__json_get(all, "error", &err)) err = all;
        au__printable(detail, sizeof detail, err.p, err.len);
        snprintf(why, sizeof why, "the daemon refused the hello: %s", detail);
        au__fail_attempt(c, why, 1);
    }
}
/* The client's initialize has waited init_grace for a daemon; answer it
   here so the client does not give up on the server. */
static void au__init_locally(au_core *c) {
    au__req *r = c->mcp.init_pending;
    au__buf *res = &c->scratch;
    int remembered = c->mcp.remembered.len != 0;
    if (remembered) au__buf_set(res, (const char *)c->mcp.remembered.p, c->mcp.remembered.len);
    else {                                              /* nothing remembered: a minimal result */
        au_jsonrpc j;
        au_tok pv;
        if (!(au_jsonrpc_scan((const char *)c->mcp.init_req.p, c->mcp.init_req.len, &j) >= 0 && j.params.p &&
              au__json_get(j.params, "protocolVersion", &pv) && pv.p[0] == '"')) {
            pv.p = "\"2025-06-18\"";
            pv.len = 12;
        }
        au__buf_set(res, AU__LIT("{\"protocolVersion\":"));
        au__buf_append(res, pv.p, pv.len);
        au__buf_append(res, AU__LIT(",\"capabilities\":{\"tools\":{\"listChanged\":true},\"prompts\":{\"listChanged\":true},"
                                    "\"resources\":{\"listChanged\":true}},\"serverInfo\":{\"name\":\"alwaysup\",\"version\":\""
                                    ALWAYSUP_VERSION_STRING "\"}}"));
    }
    if (!res->p) return;
    au__reply_result(c, r->id, r->id_len, (const char *)res->p, res->len);
    au__buf_set(&c->mcp.init_result, (const char *)res->p, res->len);
    c->mcp.init_state = AU__INIT_LOCAL;
    c->mcp.init_minimal = !remembered;
    au__log(c, AU_LOG_INFO, "init_local", "no daemon after %.3g s: answered initialize here (%s); the daemon gets it when it is up",
            c->d.init_grace, remembered ? "capabilities remembered from this daemon" : "minimal result");
    au__req_free(c, r);
}

/* In-flight requests of a dead connection, in the order the client sent
   them: those the policy says may run again go back to the front of the
   queue, the rest get an error. */
static int au__seq_cmp(const void *a, const void *b) {
    uint64_t x = (*(au__req *const *)a)->seq, y = (*(au__req *const *)b)->seq;
    return x < y ? -1 : x > y;
}
static void au__settle_inflight(au_core *c, const char *why, unsigned *failed, unsigned *resent) {
    au__req **all;
    size_t i, n = 0;
    *failed = *resent = 0;
    if (!c->reqs.inflight) return;
    all = (au__req **)ALWAYSUP_REALLOC(NULL, c->reqs.inflight * sizeof *all);
    if (!all) return;
    for (i = 0; i < c->reqs.cap; i++) {
        au__req *r;
        for (r = c->reqs.tab[i]; r; r = r->next)
            if (r->sent && n < c->reqs.inflight) all[n++] = r;
    }
    qsort(all, n, sizeof *all, au__seq_cmp);
    for (i = 0; i < n; i++) {
        au__req *r = all[i];
        /* a capped request that kills the daemon must not kill every restart */
        if (r->msg && (((r->flags & AU_METHOD_RESEND_ALWAYS) && !AU__BROKEN(6)) ||
                       ((r->flags & AU_METHOD_RESEND) && r->resends < c->d.resend_max))) {
            if (AU__BROKEN(3)) { au__req_free(c, r); all[i] = NULL; continue; }
            r->sent = 0;
            r->resends++;
            c->reqs.inflight--;
            r->msg->t = r->t;                   /* the queue timeout counts from the client's send */
            (*resent)++;
        } else {
            char msg[480];
            snprintf(msg, sizeof msg, "alwaysup: the connection to the daemon was lost before it answered (%.300s); "
                     "the request may or may not have run", why);
            if (AU__BROKEN(1)) au__req_free(c, r);
            else au__req_fail(c, r, msg, "{\"reason\":\"connection_lost\"}");
            all[i] = NULL;
            (*failed)++;
        }
    }
    for (i = n; i-- > 0;)                       /* front of the queue, in order */
        if (all[i]) au__q_insert(c, all[i]->msg, c->q.head);
    ALWAYSUP_FREE(all);
}
static double au__random01(au_core *c) {
    uint32_t x = 0;
    if (c->d.random) c->d.random(c->d.random_user, &x, sizeof x);
    else au_random_bytes(&x, sizeof x);
    return (double)x / 4294967296.0;
}
static void au__exai_lost(au_core *c);
static void au__on_down(au_core *c, const char *why, int refused) {
    double delay;
    if (c->d.dialect == AU_DIALECT_EXAI) au__exai_lost(c);
    if (c->conn.state >= AU__HELLO) au__dreq_cancel(c, "alwaysup: the connection to the daemon was lost");
    c->mcp.session_up = 0;
    c->mcp.shim_ids.len = 0;
    c->mcp.shim_init_pending = 0;
    if (c->conn.state == AU__UP) {
        unsigned failed, resent;
        c->conn.down_since = c->now;
        c->conn.attempts = 0;
        au__settle_inflight(c, why, &failed, &resent);
        au__log(c, AU_LOG_WARN, "lost", "connection to %s lost: %s (%u in-flight request%s answered with an error, %u to re-send)",
                c->d.daemon_name, why, failed, failed == 1 ? "" : "s", resent);
    } else if (!c->conn.logged_failure) {
        au__log(c, AU_LOG_WARN, refused ? "refused" : "unreachable", "%s %s: %s; retrying until it is back",
                refused ? "no session with" : "cannot reach", c->d.daemon_name, why);
        c->conn.logged_failure = 1;
    } else if (c->conn.attempts % 10 == 0) {
        au__log(c, AU_LOG_INFO, "retrying", "still trying (attempt %u, down %.1f s): %s", c->conn.attempts,
                au__secs(c->now - c->conn.down_since), why);
    } else {
        au__log(c, AU_LOG_DEBUG, "attempt_failed", "attempt %u failed: %s", c->conn.attempts, why);
    }
    snprintf(c->conn.last_error, sizeof c->conn.last_error, "%s", why);
    c->conn.refused = refused;
    c->conn.state = AU__DOWN;
    delay = au_backoff_next(&c->backoff, c->backoff.desc.jitter > 0 ? au__random01(c) : 0);
    c->conn.retry_at = c->now + au__ms(delay);
    au__log(c, AU_LOG_DEBUG, "backoff", "next attempt in %.3f s", delay);
}

/* ---- messages from the client (stdin) ---- */
static int au__id_usable(au_tok id) {
    return id.p && (id.p[0] == '"' || id.p[0] == '-' || (id.p[0] >= '0' && id.p[0] <= '9'));
}
/* ping, answered here while no daemon holds the session */
static void au__answer_ping(au_core *c, au_tok id) {
    au__reply_result(c, id.p, id.len, AU__LIT("{}"));
}
/* ---- daemon dialect: EX-AI-MCP-Server's "op" protocol ----
   Towards the client the core is the MCP server (initialize and ping here,
   tools/list and tools/call translated); towards the daemon it speaks ops.
   Calls carry request ids of ours that stay the same when a call is sent
   again, so a daemon that finished it answers from its result store. */
static const au_method_policy au__exai_table[] = {
    { "initialize", AU_ROLE_INITIALIZE, 0 },
    { "notifications/initialized", AU_ROLE_INITIALIZED, 0 },
    { "notifications/cancelled", AU_ROLE_CANCELLED, 0 },
    { "ping", AU_ROLE_PING, 0 },
    { "tools/list", AU_ROLE_TOOLS_LIST, AU_METHOD_RESEND },
    { "tools/call", AU_ROLE_TOOLS_CALL, AU_METHOD_RESEND }   /* same request id: the daemon's store answers */
};
ALWAYSUP_DEF const au_method_policy *au_exai_methods(int *count) {
    if (count) *count = (int)(sizeof au__exai_table / sizeof au__exai_table[0]);
    return au__exai_table;
}
struct au__call {                         /* a tools/call the daemon has not finished */
    au__call *next;
    au__req *r;
    au__buf op;                           /* the call_tool message, for retries */
    au__buf stream;                       /* stream_chunk texts, still JSON-escaped */
    char *progress_token;                 /* the client's _meta.progressToken, raw JSON; NULL: none */
    size_t progress_token_len;
    uint64_t progress;
    int64_t deadline;                     /* acked: timeout + grace; 0: none yet */
    int64_t retry_at;                     /* "still being processed": send again then; 0: no */
    double acked_timeout;
};
static void au__call_free(au_core *c, au__call *x) {
    au__call **pp = &c->exai.calls;
    while (*pp && *pp != x) pp = &(*pp)->next;
    if (*pp) *pp = x->next;
    au__buf_free(&x->op);
    au__buf_free(&x->stream);
    ALWAYSUP_FREE(x->progress_token);
    ALWAYSUP_FREE(x);
    c->exai.timers_dirty = 1;
}
static int au__exai_setup(au_core *c) {
    char sid[80];
    uint8_t rnd[20];
    const char *token = c->d.exai.token ? c->d.exai.token : "";
    if (c->d.random) c->d.random(c->d.random_user, rnd, sizeof rnd);
    else if (au_random_bytes(rnd, sizeof rnd) != AU_OK) memset(rnd, 0x5a, sizeof rnd);
    if (c->d.exai.session_id && c->d.exai.session_id[0])
        snprintf(sid, sizeof sid, "%.79s", c->d.exai.session_id);
    else {                                          /* a v4 UUID, one per shim process */
        rnd[6] = (uint8_t)((rnd[6] & 0x0f) | 0x40);
        rnd[8] = (uint8_t)((rnd[8] & 0x3f) | 0x80);
        snprintf(sid, sizeof sid, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
                 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9], rnd[10], rnd[11], rnd[12], rnd[13], rnd[14],
                 rnd[15]);
    }
    if (!c->d.exai.server_name || !c->d.exai.server_name[0]) c->d.exai.server_name = "ex-ws-shim";
    if (!(c->d.exai.ack_grace > 0)) c->d.exai.ack_grace = 120;
    c->d.exai.session_id = NULL;                    /* the caller's strings are not kept */
    c->d.exai.token = NULL;
    au__buf_set(&c->exai.hello, AU__LIT("{\"op\":\"hello\",\"session_id\":\""));
    au__json_escape(&c->exai.hello, sid, strlen(sid));
    au__buf_append(&c->exai.hello, AU__LIT("\",\"token\":\""));
    au__json_escape(&c->exai.hello, token, strlen(token));
    au__buf_append(&c->exai.hello, AU__LIT("\"}\0"));
    if (!c->exai.hello.p) return AU_ENOMEM;
    c->exai.hello.len--;                            /* the NUL stays after it */
    c->d.hello = (const char *)c->exai.hello.p;
    /* a process's request ids never meet another's in the daemon's store, even with one session id */
    c->exai.rid_prefix_len = (size_t)snprintf(c->exai.rid_prefix, sizeof c->exai.rid_prefix, "%.80s-%02x%02x%02x%02x-", sid,
                                              rnd[16], rnd[17], rnd[18], rnd[19]);
    if (!c->d.methods || c->d.methods == au__mcp_table) c->d.methods = au_exai_methods(&c->d.num_methods);
    c->exai.next_timer = -1;
    return AU_OK;
}
/* the request id of a call, from the daemon's "request_id" */
static au__req *au__exai_find_call(au_core *c, au_tok rid) {
    au__call *x;
    uint64_t seq = 0;
    size_t i, n = c->exai.rid_prefix_len;
    if (!rid.p || rid.p[0] != '"' || rid.len < n + 3 || memcmp(rid.p + 1, c->exai.rid_prefix, n) != 0) return NULL;
    for (i = n + 1; i + 1 < rid.len; i++) {
        if (!au__is_digit(rid.p[i]) || seq > 1000000000000000ULL) return NULL;
        seq = seq * 10 + (uint64_t)(rid.p[i] - '0');
    }
    for (x = c->exai.calls; x; x = x->next)
        if (x->r->seq == seq) return x->r;
    return NULL;
}
/* a CallToolResult with one text item: s is a JSON string's inside (escape 0) or plain text (escape 1) */
static void au__exai_reply_text(au_core *c, au__req *r, const char *s, size_t n, int escape, int is_error) {
    au__buf *o = &c->scratch;
    au__buf_set(o, AU__LIT("{\"content\":[{\"type\":\"text\",\"text\":\""));
    if (escape) au__json_escape(o, s, n);
    else au__buf_append(o, s, n);
    au__buf_append(o, is_error ? "\"}],\"isError\":true}" : "\"}]}", is_error ? 19 : 4);
    au__reply_result(c, r->id, r->id_len, (const char *)o->p, o->len);
}
/* a client's tools/list or tools/call, as the op the daemon understands */
static void au__exai_forward(au_core *c, au__req *r, const char *op, size_t n) {
    au__msg *m = au__msg_new(op, n);                   /* a copy: op lives in a buffer the next event reuses */
    if (!m) { au__req_fail(c, r, "alwaysup: out of memory", NULL); return; }
    if (c->conn.state == AU__UP && !c->q.head) { m->req = r; au__send(c, m->data, m->len, r, m); return; }
    au__enqueue(c, m, r);
}
static void au__exai_initialize(au_core *c, const au_jsonrpc *r) {
    static const char *const known[] = { "\"2024-11-05\"", "\"2025-03-26\"", "\"2025-06-18\"", "\"2025-11-25\"" };
    au_tok pv;
    size_t i;
    const char *version = "\"2025-06-18\"";
    au__buf *o = &c->scratch;
    if (r->params.p && au__json_get(r->params, "protocolVersion", &pv))
        for (i = 0; i < sizeof known / sizeof known[0]; i++)
            if (pv.len == strlen(known[i]) && memcmp(pv.p, known[i], pv.len) == 0) version = known[i];
    au__buf_set(o, AU__LIT("{\"protocolVersion\":"));
    au__buf_append(o, version, strlen(version));
    au__buf_append(o, AU__LIT(",\"capabilities\":{\"tools\":{\"listChanged\":true}},\"serverInfo\":{\"name\":\""));
    au__json_escape(o, c->d.exai.server_name, strlen(c->d.exai.server_name));
    au__buf_append(o, AU__LIT("\",\"version\":\"" ALWAYSUP_VERSION_STRING "\"}}"));
    au__reply_result(c, r->id.p, r->id.len, (const char *)o->p, o->len);
}
static void au__exai_client(au_core *c, const au_jsonrpc *r, int kind, int role, const char *method, size_t method_len,
                            const au_method_policy *pol) {
    au__req *q;
    int dup;
    if (kind == AU_RPC_NOTIFICATION) {
        if (role == AU_ROLE_CANCELLED) {
            au_tok rid;
            au__req *x = r->params.p && au__json_get(r->params, "requestId", &rid) ? au__req_lookup(c, rid) : NULL;
            if (x) au__req_free(c, x);                  /* the op protocol cannot cancel: its answer is dropped */
        } else if (role != AU_ROLE_INITIALIZED)
            au__log(c, AU_LOG_DEBUG, "notification_dropped", "dropped the client's %s: the daemon has no use for it", method);
        return;
    }
    if (kind == AU_RPC_RESPONSE) {
        au__log(c, AU_LOG_DEBUG, "answer_dropped", "dropped an answer from the client: this daemon sends no requests");
        return;
    }
    if (kind != AU_RPC_REQUEST) {
        au__reply_error(c, NULL, 0, -32600, "Invalid Request: batches are not supported here", NULL);
        return;
    }
    if (r->id.p[0] == 'n' || au__req_lookup(c, r->id)) {
        const char *bad = r->id.p[0] == 'n' ? "Invalid Request: the id must not be null"
                                             : "Invalid Request: a request with this id is still pending";
        au__log(c, AU_LOG_WARN, "stdin_refused", "stdin: request refused: %s", bad);
        au__reply_error(c, r->id.p[0] == 'n' ? NULL : r->id.p, r->id.len, -32600, bad, NULL);
        return;
    }
    switch (role) {
    case AU_ROLE_INITIALIZE: au__exai_initialize(c, r); return;
    case AU_ROLE_PING: au__answer_ping(c, r->id); return;
    case AU_ROLE_TOOLS_LIST:
        if (!(q = au__req_new(c, r->id, method, method_len, pol, &dup))) break;
        au__exai_forward(c, q, AU__LIT("{\"op\":\"list_tools\"}"));
        return;
    case AU_ROLE_TOOLS_CALL: {
        au_tok name, args, meta, tok;
        au__call *x;
        char num[32];
        au__buf *o = &c->scratch;
        if (!r->params.p || !au__json_get(r->params, "name", &name) || name.p[0] != '"') {
            au__reply_error(c, r->id.p, r->id.len, -32602, "Invalid params: tools/call needs a string \"name\"", NULL);
            return;
        }
        if (!au__json_get(r->params, "arguments", &args)) { args.p = "{}"; args.len = 2; }
        if (!(q = au__req_new(c, r->id, method, method_len, pol, &dup))) break;
        if (c->d.no_resend) q->flags &= ~(unsigned)AU_METHOD_RESEND;
        x = (au__call *)ALWAYSUP_REALLOC(NULL, sizeof *x);
        if (!x) { au__req_fail(c, q, "alwaysup: out of memory", NULL); return; }
        memset(x, 0, sizeof *x);
        x->r = q;
        q->call = x;
        x->next = c->exai.calls;
        c->exai.calls = x;
        if (au__json_get(r->params, "_meta", &meta) && au__json_get(meta, "progressToken", &tok) &&
            (tok.p[0] == '"' || tok.p[0] == '-' || au__is_digit(tok.p[0])) &&
            (x->progress_token = (char *)ALWAYSUP_REALLOC(NULL, tok.len)) != NULL) {
            memcpy(x->progress_token, tok.p, tok.len);
            x->progress_token_len = tok.len;
        }
        au__buf_set(o, AU__LIT("{\"op\":\"call_tool\",\"request_id\":\""));
        au__buf_append(o, c->exai.rid_prefix, c->exai.rid_prefix_len);
        snprintf(num, sizeof num, "%llu", (unsigned long long)q->seq);
        au__buf_append(o, num, strlen(num));
        au__buf_append(o, AU__LIT("\",\"name\":"));
        au__buf_append(o, name.p, name.len);
        au__buf_append(o, AU__LIT(",\"arguments\":"));
        au__buf_append(o, args.p, args.len);
        au__buf_append(o, AU__LIT("}"));
        au__buf_set(&x->op, (const char *)o->p, o->len);
        au__exai_forward(c, q, (const char *)x->op.p, x->op.len);
        return;
    }
    default: {
        char msg[200];
        snprintf(msg, sizeof msg, "Method not found: %.60s (this daemon speaks the EX-AI op protocol: initialize, ping, "
                 "tools/list and tools/call only)", method);
        au__reply_error(c, r->id.p, r->id.len, -32601, msg, NULL);
        return;
    }
    }
    au__reply_error(c, r->id.p, r->id.len, -32600, dup ? "Invalid Request: a request with this id is still pending" : "alwaysup: out of memory", NULL);
}
/* the oldest tools/list in flight: list_tools answers come in order */
static au__req *au__exai_oldest_list(au_core *c) {
    au__req *best = NULL, *r;
    size_t i;
    for (i = 0; i < c->reqs.cap; i++)
        for (r = c->reqs.tab[i]; r; r = r->next)
            if (r->sent && r->role == AU_ROLE_TOOLS_LIST && (!best || r->seq < best->seq)) best = r;
    return best;
}
static void au__exai_list_answer(au_core *c, au_tok all) {
    au_tok tools;
    au__buf *o = &c->scratch;
    if (!au__json_get(all, "tools", &tools) || tools.p[0] != '[') {
        au__log(c, AU_LOG_WARN, "exai_bad_list", "the daemon's list_tools_res has no tools array; taken as an empty list");
        tools.p = "[]";
        tools.len = 2;
    }
    if (c->exai.shim_lists) {                           /* ours, after a reconnect: did the tools change? */
        c->exai.shim_lists--;
        if (!au__json_same(tools, au__buf_tok(&c->exai.seen_tools))) {
            au__log(c, AU_LOG_INFO, "tools_changed", "the daemon's tool list changed: notifications/tools/list_changed sent");
            au__emit_copy(c, AU__LIT("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}"));
            au__buf_set(&c->exai.seen_tools, tools.p, tools.len);
        }
        return;
    }
    {
        au__req *r = au__exai_oldest_list(c);
        if (!r) { au__log(c, AU_LOG_WARN, "answer_unknown", "dropped a list_tools_res: no tools/list is waiting"); return; }
        au__buf_set(&c->exai.seen_tools, tools.p, tools.len);
        au__buf_set(o, AU__LIT("{\"tools\":"));
        au__buf_append(o, tools.p, tools.len);
        au__buf_append(o, AU__LIT("}"));
        au__reply_result(c, r->id, r->id_len, (const char *)o->p, o->len);
        au__req_free(c, r);
    }
}
/* the words appear in the token, whatever their case */
static int au__tok_says(au_tok t, const char *words) {
    size_t i, k = strlen(words);
    for (i = 0; t.p && i + k <= t.len; i++)
        if (au__ieq(t.p + i, k, words)) return 1;
    return 0;
}
/* "already being processed": the daemon runs it still; ask again later */
static double au__exai_retry_after(au_tok err, au_tok all) {
    au_tok d, v, msg;
    double secs = -1;
    if ((au__json_get(err, "details", &d) || au__json_get(all, "details", &d)) && au__json_get(d, "retry_after_secs", &v))
        secs = strtod(v.p, NULL);
    else if ((au__json_get(err, "code", &v) && au_json_string_eq(v, "in_progress")) ||
             (au__json_get(err, "message", &msg) && au__tok_says(msg, "already being processed")) || au__tok_says(err, "already being processed"))
        secs = 2;
    if (secs >= 0 && secs < 0.1) secs = 0.1;
    if (secs > 60) secs = 60;
    return secs;
}
static void au__exai_result(au_core *c, au__req *r, au_tok all) {
    au__call *x = r->call;
    au_tok err, outputs, text, ok;
    au__buf *o = &c->scratch;
    if (au__json_get(all, "error", &err) && !(err.len == 4 && memcmp(err.p, "null", 4) == 0)) {
        double again = AU__BROKEN(13) ? -1 : au__exai_retry_after(err, all);
        au_tok msg;
        if (again >= 0) {                               /* not an answer: the first run goes on */
            if (r->sent) { r->sent = 0; c->reqs.inflight--; }
            if (r->msg) { au__retire(c, r->msg); r->msg = NULL; }
            x->retry_at = c->now + au__ms(again);
            if (!x->deadline) x->deadline = r->t + au__ms(c->d.exai.ack_grace);
            c->exai.timers_dirty = 1;
            au__log(c, AU_LOG_DEBUG, "exai_in_progress", "the daemon is still running call %s; asking again in %.3g s", r->id, again);
            return;
        }
        if (err.p[0] == '"') au__exai_reply_text(c, r, err.p + 1, err.len - 2, 0, 1);
        else if (au__json_get(err, "message", &msg) && msg.p[0] == '"') au__exai_reply_text(c, r, msg.p + 1, msg.len - 2, 0, 1);
        else au__exai_reply_text(c, r, err.p, err.len, 1, 1);   /* an error of another shape: quoted whole */
    } else if (au__json_get(all, "outputs", &outputs) && outputs.p[0] == '[' &&
               !(x->stream.len && au__json_ws(outputs.p + 1, outputs.p + outputs.len)[0] == ']')) {   /* [] after chunks: the chunks */
        au__buf_set(o, AU__LIT("{\"content\":"));
        au__buf_append(o, outputs.p, outputs.len);
        au__buf_append(o, AU__LIT("}"));
        au__reply_result(c, r->id, r->id_len, (const char *)o->p, o->len);
    } else if (au__json_get(all, "text", &text) && text.p[0] == '"') {
        au__exai_reply_text(c, r, text.p + 1, text.len - 2, 0, 0);
    } else if (x->stream.len) {                         /* the streamed chunks (still escaped) are the answer */
        au__exai_reply_text(c, r, (const char *)x->stream.p, x->stream.len, 0, 0);
    } else if (au__json_get(all, "ok", &ok) && ok.len == 5) {
        au__exai_reply_text(c, r, AU__LIT("the daemon reported a failure without a message"), 1, 1);
    } else {
        au__buf_set(o, AU__LIT("{\"content\":[]}"));
        au__reply_result(c, r->id, r->id_len, (const char *)o->p, o->len);
    }
    au__req_free(c, r);
}
static void au__exai_progress(au_core *c, au__req *r, au_tok text) {
    au__call *x = r->call;
    char num[32];
    size_t at;
    if (!x->progress_token) return;
    at = AU__ARENA(c)->len;
    snprintf(num, sizeof num, ",\"progress\":%llu", (unsigned long long)++x->progress);
    au__buf_append(AU__ARENA(c), AU__LIT("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":"));
    au__buf_append(AU__ARENA(c), x->progress_token, x->progress_token_len);
    au__buf_append(AU__ARENA(c), num, strlen(num));
    if (text.p && text.p[0] == '"') {
        au__buf_append(AU__ARENA(c), AU__LIT(",\"message\":"));
        au__buf_append(AU__ARENA(c), text.p, text.len);
    }
    au__buf_append(AU__ARENA(c), AU__LIT("}}"));
    if (!c->stdout_dead) au__act_arena(c, AU_ACT_STDOUT, at);
}
static void au__exai_daemon(au_core *c, const char *p, size_t n) {
    au_tok all, op, rid, v;
    au__req *r;
    char name[32];
    all.p = p;
    all.len = n;
    if (!au__json_get(all, "op", &op) || op.p[0] != '"' || op.len > sizeof name) {
        char preview[100];
        au__printable(preview, sizeof preview, p, n);
        au__log(c, AU_LOG_WARN, "exai_no_op", "dropped a message from the daemon without an \"op\": %s", preview);
        return;
    }
    au__printable(name, sizeof name, op.p + 1, op.len - 2);
    if (au_json_string_eq(op, "list_tools_res")) { au__exai_list_answer(c, all); return; }
    if (au_json_string_eq(op, "hello_ack")) return;     /* a repeated one */
    r = au__json_get(all, "request_id", &rid) ? au__exai_find_call(c, rid) : NULL;
    if (au_json_string_eq(op, "error")) {
        au_tok err;
        char detail[200];
        if (!au__json_get(all, "error", &err)) err = all;
        au__printable(detail, sizeof detail, err.p, err.len);
        au__log(c, AU_LOG_WARN, "exai_error", "the daemon reported an error: %s", detail);
        if (r) au__exai_result(c, r, all);
        return;
    }
    if (!r) {
        if (au_json_string_eq(op, "call_tool_res") || au_json_string_eq(op, "call_tool_ack") || au_json_string_eq(op, "progress") ||
            au_json_string_eq(op, "stream_chunk") || au_json_string_eq(op, "stream_complete"))
            au__log(c, AU_LOG_DEBUG, "exai_late", "dropped %s for a call nobody waits for (answered, cancelled or timed out)", name);
        else au__log(c, AU_LOG_DEBUG, "exai_other", "ignored the daemon's %s", name);
        return;
    }
    if (au_json_string_eq(op, "call_tool_res")) au__exai_result(c, r, all);
    else if (au_json_string_eq(op, "call_tool_ack")) {
        double t = au__json_get(all, "timeout", &v) && (au__is_digit(v.p[0])) ? strtod(v.p, NULL) : 0;
        r->call->acked_timeout = t;
        if (!AU__BROKEN(14)) r->call->deadline = c->now + au__ms(t + c->d.exai.ack_grace);
        c->exai.timers_dirty = 1;
    } else if (au_json_string_eq(op, "progress")) {
        if (!au__json_get(all, "message", &v)) v.p = NULL;
        au__exai_progress(c, r, v);
    } else if (au_json_string_eq(op, "stream_chunk")) {
        if (au__json_get(all, "chunk", &v) && v.p[0] == '"') {
            if (r->call->stream.len + v.len < (size_t)64 << 20) au__buf_append(&r->call->stream, v.p + 1, v.len - 2);
            au__exai_progress(c, r, v);
        }
    } else if (!au_json_string_eq(op, "stream_complete"))
        au__log(c, AU_LOG_DEBUG, "exai_other", "ignored the daemon's %s", name);
}
/* the hello was accepted: ask for the tools again when the client has seen a list */
static void au__exai_begin(au_core *c) {
    c->exai.shim_lists = 0;
    if (c->exai.seen_tools.len) {
        au__send_copy(c, AU__LIT("{\"op\":\"list_tools\"}"));
        c->exai.shim_lists = 1;
    }
    au__session_ready(c, 0);
}
static void au__exai_lost(au_core *c) {
    au__call *x;
    c->exai.shim_lists = 0;
    for (x = c->exai.calls; x; x = x->next)
        if (x->r->sent) x->stream.len = 0;              /* a re-sent call streams again, or answers from the store */
}
static int64_t au__exai_next_timer(au_core *c) {
    au__call *x;
    int64_t t = -1;
    if (!c->exai.timers_dirty) return c->exai.next_timer;
    for (x = c->exai.calls; x; x = x->next) {
        if (x->retry_at && (t < 0 || x->retry_at < t)) t = x->retry_at;
        if (x->deadline && (t < 0 || x->deadline < t)) t = x->deadline;
    }
    c->exai.timers_dirty = 0;
    c->exai.next_timer = t;
    return t;
}
static void au__exai_timers(au_core *c) {
    au__call *x, *next;
    for (x = c->exai.calls; x; x = next) {
        au__req *r = x->r;
        next = x->next;
        if (x->deadline && c->now >= x->deadline) {
            char msg[300];
            if (x->retry_at)
                snprintf(msg, sizeof msg, "alwaysup: the daemon was still running this call after %.1f s; giving up on it",
                         au__secs(c->now - r->t));
            else
                snprintf(msg, sizeof msg, "alwaysup: the daemon accepted this call with a timeout of %.3g s but sent no result "
                         "within %.3g s more", x->acked_timeout, c->d.exai.ack_grace);
            au__log(c, AU_LOG_WARN, "exai_call_timeout", "%s (call %s)", msg, r->id);
            au__req_fail(c, r, msg, "{\"reason\":\"call_timeout\"}");
            continue;
        }
        if (x->retry_at && c->now >= x->retry_at) {     /* ask again, under the same request id */
            au__msg *m = au__msg_new((const char *)x->op.p, x->op.len);
            x->retry_at = 0;
            c->exai.timers_dirty = 1;
            if (!m) continue;
            m->req = r;
            m->t = r->t;                                /* like a re-send: the queue timeout counts from the client's send */
            if (c->conn.state == AU__UP && !c->q.head) au__send(c, m->data, m->len, r, m);
            else {                                      /* in time order: the queue timeout reads the oldest first */
                au__msg *before = c->q.head;
                while (before && before->t <= m->t) before = before->next;
                r->msg = m;
                au__q_insert(c, m, before);
                au__kick(c);
            }
        }
    }
    c->exai.timers_dirty = 1;
}

static void au__client_line(au_core *c, const char *line, size_t len) {
    au_jsonrpc r;
    au__req *q = NULL;
    char preview[100];
    char method[64];
    size_t method_len = 0;
    const au_method_policy *pol = NULL;
    int kind = au_jsonrpc_scan(line, len, &r), dup, role = AU_ROLE_NONE;
    if (kind < 0 && r.problem_at == len) {      /* only whitespace: a blank line, skipped */
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == len) return;
    }
    if (kind < 0 || kind == AU_RPC_INVALID) {
        char msg[200];
        au__printable(preview, sizeof preview, line, len);
        au__log(c, AU_LOG_WARN, "stdin_invalid", "stdin: %s (%s at byte %lu), answered with an error: %s",
                kind < 0 ? "not JSON" : "not a JSON-RPC message", r.problem ? r.problem : "?", (unsigned long)r.problem_at, preview);
        snprintf(msg, sizeof msg, "%s: %s (byte %lu)", kind < 0 ? "Parse error" : "Invalid Request", r.problem ? r.problem : "?",
                 (unsigned long)r.problem_at);
        if (au__id_usable(r.id)) au__reply_error(c, r.id.p, r.id.len, kind < 0 ? -32700 : -32600, msg, NULL);
        else au__reply_error(c, NULL, 0, kind < 0 ? -32700 : -32600, msg, NULL);
        return;
    }
    if (r.method.p) {
        method_len = au__method_name(r.method, method, sizeof method);
        pol = au__policy(c, method, method_len);
        if (pol && (!c->d.no_mcp || c->d.dialect != AU_DIALECT_MCP)) role = pol->role;
    }
    if (c->d.dialect == AU_DIALECT_EXAI) { au__exai_client(c, &r, kind, role, method, method_len, pol); return; }
    if (kind == AU_RPC_REQUEST) {
        const char *bad = NULL;
        if (r.id.p[0] == 'n') bad = "Invalid Request: the id must not be null";
        else if (role == AU_ROLE_PING && c->conn.state != AU__UP && !au__req_lookup(c, r.id)) { au__answer_ping(c, r.id); return; }
        else if (!(q = au__req_new(c, r.id, method, method_len, pol, &dup)))
            bad = dup ? "Invalid Request: a request with this id is still pending" : "alwaysup: out of memory";
        if (bad) {
            au__log(c, AU_LOG_WARN, "stdin_refused", "stdin: request refused: %s", bad);
            au__reply_error(c, r.id.p[0] == 'n' ? NULL : r.id.p, r.id.len, -32600, bad, NULL);
            return;
        }
        switch (role) {                                     /* session state to replay later */
        case AU_ROLE_INITIALIZE:
            if (c->mcp.init_state != AU__INIT_NONE && !AU__BROKEN(12)) {   /* a second one: the daemon's to answer, the session stays */
                q->role = AU_ROLE_NONE;
                q->flags = AU_METHOD_RESEND;
                break;
            }
            au__buf_set(&c->mcp.init_req, line, len);
            c->mcp.init_id_at = (size_t)(r.id.p - line);
            c->mcp.init_id_len = r.id.len;
            c->mcp.init_state = AU__INIT_PENDING;
            c->mcp.init_pending = q;
            break;
        case AU_ROLE_SET_LEVEL: if (r.params.p) au__buf_set(&c->mcp.set_level, r.params.p, r.params.len); break;
        case AU_ROLE_SUBSCRIBE: if (r.params.p) au__subs_update(c, r.params, 1); break;
        case AU_ROLE_UNSUBSCRIBE: if (r.params.p) au__subs_update(c, r.params, 0); break;
        default: break;
        }
    } else if (kind == AU_RPC_NOTIFICATION && role == AU_ROLE_INITIALIZED) {
        c->mcp.client_initialized = 1;
        /* the replay sends it to a daemon that has not seen initialize yet; once the
           replayed initialize is answered, it queues behind the replay like any message */
        if ((c->mcp.init_state == AU__INIT_ANSWERED || c->mcp.init_state == AU__INIT_LOCAL) &&
            (c->conn.state < AU__REPLAY || (c->conn.state == AU__REPLAY && (c->mcp.shim_init_pending || AU__BROKEN(11)))))
            return;
    } else if (kind == AU_RPC_NOTIFICATION && role == AU_ROLE_CANCELLED) {
        au_tok rid;
        au__req *x = r.params.p && au__json_get(r.params, "requestId", &rid) ? au__req_lookup(c, rid) : NULL;
        if (!x) {
            au__log(c, AU_LOG_DEBUG, "cancel_late", "dropped a cancellation for a request already answered");
            return;
        }
        if (!x->sent) {                                     /* never reached a daemon: forget both */
            au__log(c, AU_LOG_DEBUG, "cancel_queued", "cancelled request %s dropped from the queue", x->method);
            au__req_free(c, x);
            return;
        }
        /* in flight: the daemon should not answer a cancelled request (and the client does not
           want it), so forget it now rather than hold it forever; a late answer is dropped */
        if (!AU__BROKEN(5)) au__req_free(c, x);
    } else if (kind == AU_RPC_RESPONSE) {
        au__dreq **pp = au__dreq_find(c, r.id);
        /* only the connection that asked may hear the answer, also while it sets the session up */
        if (!pp || (!AU__BROKEN(8) && ((*pp)->cancelled || (*pp)->gen != c->conn.gen || c->conn.state < AU__REPLAY))) {
            char id[80];
            au__printable(id, sizeof id, r.id.p, r.id.len);
            au__log(c, AU_LOG_INFO, "answer_dropped", "dropped the client's answer to %s: the daemon connection that asked is gone", id);
            if (pp) au__dreq_unlink(c, pp);
            return;
        }
        au__dreq_unlink(c, pp);
        au__act_ref(c, AU_ACT_SEND, line, len);             /* straight to the daemon that asked */
        return;
    }
    au__forward(c, line, len, q);
}

/* ---- messages from the daemon ---- */
static void au__daemon_message(au_core *c, const char *p, size_t n, int binary) {
    au_jsonrpc r;
    int kind = au_jsonrpc_scan(p, n, &r);
    size_t folded = (size_t)-1, lead = 0;
    int64_t shim_id;
    if (kind < 0) {
        char preview[100];
        au__printable(preview, sizeof preview, p, n);
        au__log(c, AU_LOG_WARN, "daemon_not_json", "dropped a %s message from the daemon that is not JSON (%s at byte %lu): %s",
                binary ? "binary" : "text", r.problem, (unsigned long)r.problem_at, preview);
        return;
    }
    while (lead < n && (p[lead] == ' ' || p[lead] == '\t' || p[lead] == '\n' || p[lead] == '\r')) lead++;
    while (n > lead && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
    if (c->conn.state == AU__HELLO) { au__hello_answer(c, p + lead, n - lead); return; }
    if (c->d.dialect == AU_DIALECT_EXAI) { au__exai_daemon(c, p + lead, n - lead); return; }
    if (kind == AU_RPC_INVALID) {
        char preview[100];
        au__printable(preview, sizeof preview, p, n);
        au__log(c, AU_LOG_WARN, "daemon_not_jsonrpc", "dropped a message from the daemon that is not JSON-RPC (%s): %s", r.problem, preview);
        return;
    }
    if (kind == AU_RPC_RESPONSE && au__shim_take(c, r.id, &shim_id)) {
        if (AU__BROKEN(2)) au__act_ref(c, AU_ACT_STDOUT, p + lead, n - lead);
        au__replay_answer(c, &r, shim_id);              /* answers to our own requests never reach the client */
        return;
    }
    if (kind == AU_RPC_RESPONSE) {
        au__req *q = au__req_lookup(c, r.id);
        if (!q || !q->sent) {
            char id[80];
            au__printable(id, sizeof id, r.id.p, r.id.len);
            au__log(c, AU_LOG_WARN, "answer_unknown", "dropped an answer from the daemon for id %s: no request with that id is waiting", id);
            return;
        }
        if (q->role == AU_ROLE_INITIALIZE) {
            if (r.result.p) {                          /* the session to carry over */
                au__buf_set(&c->mcp.init_result, r.result.p, r.result.len);
                au__buf_set(&c->mcp.daemon_result, r.result.p, r.result.len);
                c->mcp.init_minimal = 0;
                c->mcp.init_state = AU__INIT_ANSWERED;
                c->mcp.session_up = 1;
                au__save_result(c, r.result);
            } else c->mcp.init_state = AU__INIT_NONE;
        }
        au__log(c, AU_LOG_DEBUG, "answered", "%s to %.*s (%s) after %.3g s, %lu bytes", r.error.p ? "error" : "result",
                (int)AU__MIN(q->id_len, 60), q->id, q->method, au__secs(c->now - q->t), (unsigned long)(n - lead));
        au__req_free(c, q);
    } else if (kind == AU_RPC_REQUEST) au__dreq_add(c, r.id);
    if (c->stdout_dead) return;
    if (r.multiline) {                                 /* pretty-printed: one line, same meaning */
        folded = AU__ARENA(c)->len;
        if (au__buf_append(AU__ARENA(c), p + lead, n - lead) != AU_OK) {
            au__log(c, AU_LOG_ERROR, "oom", "out of memory folding a %lu-byte message; dropped", (unsigned long)n);
            return;
        }
        au_json_fold((char *)AU__ARENA(c)->p + folded, n - lead);
        au__act_arena(c, AU_ACT_STDOUT, folded);
    } else au__act_ref(c, AU_ACT_STDOUT, p + lead, n - lead);
}

/* ---- the process's life ---- */
static void au__finish(au_core *c, double wait) {
    c->phase = AU__CLOSING;
    c->phase_deadline = c->now + au__ms(wait);
    if (c->conn.state >= AU__HELLO) {
        au__act *a = au__act_new(c, AU_ACT_CLOSE);
        if (a) a->code = AU_CLOSE_NORMAL;
    } else {
        if (c->conn.state == AU__CONNECTING) au__act_new(c, AU_ACT_DROP);
        c->conn.state = AU__DOWN;
        c->phase = AU__DONE;
    }
}
static void au__drop_queue(au_core *c) {
    while (c->q.head) {
        au__msg *m = c->q.head;
        if (m->req) au__req_free(c, m->req);
        else { au__q_unlink(c, m); au__retire(c, m); }
    }
}
static void au__check_exit(au_core *c) {
    if (c->phase >= AU__CLOSING) return;
    if (c->stdout_dead) { au__finish(c, 0.1); return; }
    if (!c->stdin_eof) return;
    if (!c->q.count && !c->reqs.inflight) { au__finish(c, 0.1); return; }
    if (c->conn.state == AU__DOWN) {
        au__log(c, AU_LOG_WARN, "eof_dropped", "stdin closed while the daemon is down: %lu queued message%s dropped (the client is gone)",
                (unsigned long)c->q.count, c->q.count == 1 ? "" : "s");
        au__drop_queue(c);
        au__finish(c, 0.1);
        return;
    }
    if (c->phase == AU__RUN) {
        c->phase = AU__DRAIN;
        c->phase_deadline = c->now + au__ms(c->d.drain_timeout);
        au__log(c, AU_LOG_DEBUG, "draining", "stdin closed; waiting up to %.3g s for %lu answer%s", c->d.drain_timeout,
                (unsigned long)(c->reqs.inflight + c->q.count), c->reqs.inflight + c->q.count == 1 ? "" : "s");
    }
}
/* the oldest queued request that a queue timeout applies to */
static au__msg *au__oldest_timed(const au_core *c) {
    au__msg *m;
    for (m = c->q.head; m; m = m->next)
        if (m->req && !(m->req->flags & AU_METHOD_WAITS)) return m;
    return NULL;
}
/* every deadline, from the state it follows */
static void au__arm(au_core *c) {
    int64_t *t = c->timers;
    int k, live = c->conn.state >= AU__HELLO && c->phase < AU__CLOSING;
    au__msg *m;
    au__req *ip = c->mcp.init_pending;
    for (k = 0; k < AU__T_COUNT; k++) t[k] = -1;
    if (c->phase == AU__DONE) return;
    if (c->phase != AU__RUN) t[AU__T_PHASE] = c->phase_deadline;
    if (c->phase >= AU__CLOSING) return;
    if (c->conn.state == AU__DOWN) t[AU__T_RETRY] = c->conn.retry_at;
    if (c->conn.state == AU__HELLO || c->conn.state == AU__REPLAY) {
        double bound = c->d.setup_timeout;
        if (c->conn.state == AU__HELLO && c->d.hello_ack_timeout > 0 && c->d.hello_ack_timeout < bound) bound = c->d.hello_ack_timeout;
        t[AU__T_SETUP] = c->conn.setup_since + au__ms(bound);
    }
    if (live && !c->conn.paused && c->d.ping_interval > 0) {   /* any frame is life, in every phase */
        if (!c->conn.ping_sent_at) t[AU__T_KEEPALIVE] = c->conn.last_rx + au__ms(c->d.ping_interval);
        else if (c->d.ping_timeout > 0) t[AU__T_KEEPALIVE] = c->conn.ping_sent_at + au__ms(c->d.ping_timeout);
    }
    if (c->conn.state == AU__UP && !c->conn.healthy) t[AU__T_HEALTHY] = c->conn.up_since + au__ms(c->d.healthy_after);
    if ((m = au__oldest_timed(c)) != NULL && !AU__BROKEN(7)) t[AU__T_QUEUE] = m->t + au__ms(c->d.queue_timeout);
    if (ip && !ip->sent && ip->msg && c->d.init_grace > 0) t[AU__T_INIT_GRACE] = ip->msg->t + au__ms(c->d.init_grace);
    if (c->d.dialect == AU_DIALECT_EXAI) t[AU__T_DIALECT] = au__exai_next_timer(c);
}
static void au__after(au_core *c) {
    au__check_exit(c);
    au__arm(c);
}
static void au__before(au_core *c, int64_t now) {
    if (c->act.next >= c->act.count) au__act_reset(c);   /* the driver took every action */
    if (now > c->now) c->now = now;                        /* the core's clock never runs back */
}
static int au__due(const au_core *c, int k) { return c->timers[k] >= 0 && c->now >= c->timers[k]; }
static void au__queue_timeouts(au_core *c) {
    au__msg *m, *next;
    for (m = c->q.head; m; m = next) {
        next = m->next;
        if (m->req && !(m->req->flags & AU_METHOD_WAITS) && c->now - m->t >= au__ms(c->d.queue_timeout)) {
            char msg[512], data[96];
            double down = au__secs(c->now - c->conn.down_since);
            if (c->conn.refused) {
                snprintf(msg, sizeof msg, "alwaysup: the daemon at %.150s refused the session (%u attempt%s over %.1f s): %.250s",
                         c->d.daemon_name, c->conn.attempts, c->conn.attempts == 1 ? "" : "s", down, c->conn.last_error);
                snprintf(data, sizeof data, "{\"reason\":\"daemon_refused\",\"attempts\":%u,\"down_seconds\":%.1f}",
                         c->conn.attempts, down);
            } else {
                snprintf(msg, sizeof msg, "alwaysup: the daemon at %.150s is unreachable (%u attempt%s over %.1f s; last error: %.200s)",
                         c->d.daemon_name, c->conn.attempts, c->conn.attempts == 1 ? "" : "s", down,
                         c->conn.last_error[0] ? c->conn.last_error : "none yet");
                snprintf(data, sizeof data, "{\"reason\":\"daemon_unreachable\",\"attempts\":%u,\"down_seconds\":%.1f}",
                         c->conn.attempts, down);
            }
            au__log(c, AU_LOG_WARN, "queue_timeout", "request %s (id %.40s) waited %.1f s for the daemon; answered with an error",
                    m->req->method, m->req->id, au__secs(c->now - m->t));
            au__req_fail(c, m->req, msg, data);
        }
    }
}

/* ---- public core API ---- */
ALWAYSUP_DEF int au_core_init(au_core *c, const au_core_desc *desc, int64_t now) {
    au_core_desc *d = &c->d;
    memset(c, 0, sizeof *c);
    if (desc) *d = *desc;
    if (!d->daemon_name) d->daemon_name = "the daemon";
    if (!(d->setup_timeout > 0)) d->setup_timeout = AU_DEFAULT_SETUP_TIMEOUT;
    if (!(d->healthy_after > 0)) d->healthy_after = AU_DEFAULT_HEALTHY_AFTER;
    if (d->ping_interval == 0) d->ping_interval = AU_DEFAULT_PING_INTERVAL;
    if (d->ping_timeout == 0) d->ping_timeout = AU_DEFAULT_PING_TIMEOUT;
    if (!(d->queue_timeout > 0)) d->queue_timeout = AU_DEFAULT_QUEUE_TIMEOUT;
    if (!d->queue_max_bytes) d->queue_max_bytes = AU_DEFAULT_QUEUE_MAX_BYTES;
    if (!d->queue_max_count) d->queue_max_count = AU_DEFAULT_QUEUE_MAX_COUNT;
    if (!d->max_pending) d->max_pending = AU_DEFAULT_MAX_PENDING;
    if (!(d->drain_timeout > 0)) d->drain_timeout = AU_DEFAULT_DRAIN_TIMEOUT;
    if (!(d->close_timeout > 0)) d->close_timeout = AU_DEFAULT_CLOSE_TIMEOUT;
    if (d->resend_max == 0) d->resend_max = AU_DEFAULT_RESEND_MAX;
    if (d->resend_max < 0) d->resend_max = 0;
    if (d->init_grace == 0) d->init_grace = AU_DEFAULT_INIT_GRACE;
    if (d->hello_ack_timeout == 0) d->hello_ack_timeout = d->setup_timeout;
    if (d->log_level <= 0) d->log_level = AU_LOG_INFO;
    if (!d->methods) d->methods = au_mcp_methods(&d->num_methods);
    if (d->dialect == AU_DIALECT_EXAI && au__exai_setup(c) != AU_OK) return AU_ENOMEM;
    if (d->hello) {
        au_jsonrpc j;
        if (au_jsonrpc_scan(d->hello, strlen(d->hello), &j) < 0) return AU_EINVAL;
    }
    d->remembered = NULL;
    if (desc && desc->remembered && desc->remembered_len) {
        au_jsonrpc j;
        if (au_jsonrpc_scan(desc->remembered, desc->remembered_len, &j) >= 0 && desc->remembered[0] == '{')
            au__buf_set(&c->mcp.remembered, desc->remembered, desc->remembered_len);
    }
    d->remembered_len = 0;
    au_backoff_init(&c->backoff, &d->backoff);
    if (au__req_grow(c) != AU_OK) return AU_ENOMEM;
    c->now = now;
    c->mcp.shim_next = 1;
    c->conn.down_since = now;
    c->conn.retry_at = now;                    /* first attempt at once */
    c->conn.last_early = now - AU__EARLY_GAP;
    c->conn.state = AU__DOWN;
    c->phase = AU__RUN;
    au__arm(c);
    return AU_OK;
}
ALWAYSUP_DEF void au_core_free(au_core *c) {
    size_t i;
    for (i = 0; i < c->reqs.cap; i++)
        while (c->reqs.tab[i]) au__req_free(c, c->reqs.tab[i]);
    au__drop_queue(c);
    au__act_reset(c);
    ALWAYSUP_FREE(c->reqs.tab);
    ALWAYSUP_FREE(c->act.list);
    au__buf_free(&c->act.arena);
    au__buf_free(&c->scratch);
    au__buf_free(&c->mcp.init_req);
    au__buf_free(&c->mcp.init_result);
    au__buf_free(&c->mcp.daemon_result);
    au__buf_free(&c->mcp.remembered);
    au__buf_free(&c->mcp.set_level);
    au__buf_free(&c->mcp.subs);
    au__buf_free(&c->mcp.shim_ids);
    au__buf_free(&c->exai.hello);
    au__buf_free(&c->exai.seen_tools);
    while (c->dreqs) au__dreq_unlink(c, &c->dreqs);
    memset(c, 0, sizeof *c);
}
ALWAYSUP_DEF void au_core_client_line(au_core *c, const char *line, size_t len, int64_t now) {
    au__before(c, now);
    if (c->phase < AU__CLOSING) au__client_line(c, line, len);
    au__after(c);
}
ALWAYSUP_DEF void au_core_client_too_long(au_core *c, const char *head, size_t head_len, uint64_t limit, int64_t now) {
    au_jsonrpc r;
    char msg[160];
    int ok;
    au__before(c, now);
    au_jsonrpc_scan(head, head_len, &r);                /* the id, if it came before the cut */
    ok = au__id_usable(r.id);
    snprintf(msg, sizeof msg, "Invalid Request: message over the %llu-byte limit (--max-message)", (unsigned long long)limit);
    au__log(c, AU_LOG_WARN, "stdin_too_long", "stdin: a line over %llu bytes was skipped%s", (unsigned long long)limit,
            ok ? " and answered with an error" : "");
    au__reply_error(c, ok ? r.id.p : NULL, ok ? r.id.len : 0, -32600, msg, NULL);
    au__after(c);
}
ALWAYSUP_DEF void au_core_client_eof(au_core *c, int64_t now) {
    au__before(c, now);
    if (!c->stdin_eof) au__log(c, AU_LOG_DEBUG, "eof", "stdin closed");
    c->stdin_eof = 1;
    au__after(c);
}
ALWAYSUP_DEF void au_core_client_gone(au_core *c, int64_t now) {
    au__before(c, now);
    if (!c->stdout_dead) au__log(c, AU_LOG_WARN, "stdout_closed", "stdout is closed: the client went away");
    c->stdout_dead = 1;
    au__after(c);
}
ALWAYSUP_DEF void au_core_daemon_up(au_core *c, const char *peer, int64_t now) {
    au__before(c, now);
    if (c->conn.state != AU__CONNECTING) { au__after(c); return; }    /* not asked for: ignored */
    c->conn.gen++;
    c->mcp.session_up = 0;
    c->conn.last_rx = c->now;
    c->conn.ping_sent_at = 0;
    c->conn.setup_since = c->now;
    snprintf(c->conn.peer, sizeof c->conn.peer, "%s", peer ? peer : "");
    if (c->d.hello) {
        au__act_ref(c, AU_ACT_SEND, c->d.hello, strlen(c->d.hello));
        if (c->d.hello_ack_timeout > 0) { c->conn.state = AU__HELLO; au__after(c); return; }
    }
    c->conn.state = AU__REPLAY;                         /* until begin_session says otherwise */
    au__begin_session(c);
    au__after(c);
}
ALWAYSUP_DEF void au_core_daemon_message(au_core *c, const char *data, size_t len, int binary, int64_t now) {
    au__before(c, now);
    c->conn.last_rx = c->now;
    c->conn.ping_sent_at = 0;
    if (c->conn.state >= AU__HELLO) au__daemon_message(c, data, len, binary);
    au__after(c);
}
ALWAYSUP_DEF void au_core_daemon_alive(au_core *c, int64_t now) {
    au__before(c, now);
    c->conn.last_rx = c->now;
    c->conn.ping_sent_at = 0;                           /* anything after the ping answers it */
    au__arm(c);
}
ALWAYSUP_DEF void au_core_daemon_down(au_core *c, const char *why, int64_t now) {
    au__before(c, now);
    if (c->phase >= AU__CLOSING) {                      /* the close we asked for */
        c->conn.state = AU__DOWN;
        if (c->phase == AU__CLOSING) c->phase = AU__DONE;
    } else if (c->conn.state != AU__DOWN) au__on_down(c, why && why[0] ? why : "connection ended", 0);
    au__after(c);
}
ALWAYSUP_DEF void au_core_pause(au_core *c, int paused, int64_t now) {
    au__before(c, now);
    c->conn.paused = paused != 0;
    au__arm(c);
}
ALWAYSUP_DEF void au_core_stop(au_core *c, int64_t now) {
    size_t i;
    au__before(c, now);
    if (c->phase >= AU__CLOSING) {                      /* asked twice: go now */
        if (c->conn.state != AU__DOWN && c->phase != AU__DONE) au__act_new(c, AU_ACT_DROP);
        c->conn.state = AU__DOWN;
        c->phase = AU__DONE;
        au__arm(c);
        return;
    }
    au__log(c, AU_LOG_INFO, "stopping", "stopping: %lu pending request%s answered with an error", (unsigned long)c->reqs.count,
            c->reqs.count == 1 ? "" : "s");
    for (i = 0; i < c->reqs.cap; i++)
        while (c->reqs.tab[i]) au__req_fail(c, c->reqs.tab[i], "alwaysup is shutting down; the request was not answered", NULL);
    au__drop_queue(c);
    au__finish(c, c->d.close_timeout);
    au__after(c);
}
ALWAYSUP_DEF void au_core_timeout(au_core *c, int64_t now) {
    au__before(c, now);
    if (au__due(c, AU__T_PHASE)) {
        if (c->phase == AU__DRAIN) {
            au__log(c, AU_LOG_WARN, "drain_timeout", "drain timeout: %lu request%s still unanswered after stdin closed",
                    (unsigned long)c->reqs.count, c->reqs.count == 1 ? "" : "s");
            au__finish(c, 0.1);
        } else {
            if (c->conn.state != AU__DOWN) au__act_new(c, AU_ACT_DROP);
            c->conn.state = AU__DOWN;
            c->phase = AU__DONE;
        }
        au__arm(c);
        return;
    }
    if (au__due(c, AU__T_RETRY)) {
        c->conn.state = AU__CONNECTING;
        c->conn.attempts++;
        au__log(c, AU_LOG_DEBUG, "connecting", "connecting to %s (attempt %u)", c->d.daemon_name, c->conn.attempts);
        au__act_new(c, AU_ACT_CONNECT);
        au__arm(c);
    }
    if (au__due(c, AU__T_SETUP)) {
        char why[200];
        snprintf(why, sizeof why, "no answer to the %s within %.3g s", c->conn.state == AU__HELLO ? "hello" : "replayed initialize",
                 au__secs(c->now - c->conn.setup_since));
        au__fail_attempt(c, why, 0);
        au__arm(c);
    }
    if (au__due(c, AU__T_INIT_GRACE) && c->mcp.init_pending) { au__init_locally(c); au__arm(c); }
    if (au__due(c, AU__T_HEALTHY)) {
        au_backoff_reset(&c->backoff);                  /* proven healthy: a later drop starts the schedule over */
        c->conn.healthy = 1;
    }
    if (au__due(c, AU__T_KEEPALIVE)) {
        if (!c->conn.ping_sent_at) {
            au__act_ref(c, AU_ACT_PING, "alwaysup", 8);
            c->conn.ping_sent_at = c->now;
        } else {
            char why[160];
            snprintf(why, sizeof why, "nothing received for %.3g s after a ping: the daemon seems frozen",
                     au__secs(c->now - c->conn.last_rx));
            au__fail_attempt(c, why, 0);
        }
        au__arm(c);
    }
    if (au__due(c, AU__T_DIALECT)) au__exai_timers(c);
    if (au__due(c, AU__T_QUEUE)) au__queue_timeouts(c);
    au__after(c);
}
ALWAYSUP_DEF int64_t au_core_deadline(const au_core *c) {
    int64_t next = -1;
    int k;
    for (k = 0; k < AU__T_COUNT; k++)
        if (c->timers[k] >= 0 && (next < 0 || c->timers[k] < next)) next = c->timers[k];
    return next;
}
ALWAYSUP_DEF int au_core_wants_client(const au_core *c) {
    return c->phase == AU__RUN && !c->stdin_eof && !au__queue_full(c) && c->reqs.count < c->d.max_pending;
}
ALWAYSUP_DEF int au_core_finished(const au_core *c) { return c->phase == AU__DONE; }
ALWAYSUP_DEF int au_core_connected(const au_core *c) { return c->conn.state == AU__UP; }

/* ========================================================================
   Layer 3: operating system
   ======================================================================== */

ALWAYSUP_DEF int au_random_bytes(void *buf, size_t len) {
    uint8_t *p = (uint8_t *)buf;
#if defined(_WIN32)
    while (len) {
        ULONG n = len > 0x10000000u ? 0x10000000u : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, p, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG))) return AU_ERANDOM;
        p += n;
        len -= n;
    }
    return AU_OK;
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || defined(__DragonFly__)
    arc4random_buf(p, len);
    return AU_OK;
#else
    int fd;
#  if defined(__linux__) && defined(SYS_getrandom)
    while (len) {
        long r = syscall(SYS_getrandom, p, len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;                         /* ENOSYS on old kernels: use the device */
        p += r;
        len -= (size_t)r;
    }
    if (!len) return AU_OK;
#  endif
#  ifndef O_CLOEXEC
#    define O_CLOEXEC 0
#  endif
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return AU_ERANDOM;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { close(fd); return AU_ERANDOM; }
        p += r;
        len -= (size_t)r;
    }
    close(fd);
    return AU_OK;
#endif
}

/* ---- platform sockets: the one place that knows POSIX from Winsock ---- */
#if defined(_WIN32)
typedef SOCKET au__socket;
#  define AU__BAD_SOCKET INVALID_SOCKET
#  define AU__SOCK_ERRNO() WSAGetLastError()
#  define AU__WOULD_BLOCK(e) ((e) == WSAEWOULDBLOCK)
#  define AU__IN_PROGRESS(e) ((e) == WSAEWOULDBLOCK || (e) == WSAEINPROGRESS)
#  define AU__INTERRUPTED(e) ((e) == WSAEINTR)
#  define AU__CLOSE_SOCKET(s) closesocket(s)
#  define AU__SEND_FLAGS 0
typedef int au__iolen;
#else
typedef int au__socket;
#  define AU__BAD_SOCKET (-1)
#  define AU__SOCK_ERRNO() errno
#  define AU__WOULD_BLOCK(e) ((e) == EAGAIN || (e) == EWOULDBLOCK)
#  define AU__IN_PROGRESS(e) ((e) == EINPROGRESS)
#  define AU__INTERRUPTED(e) ((e) == EINTR)
#  define AU__CLOSE_SOCKET(s) close(s)
#  ifdef MSG_NOSIGNAL
#    define AU__SEND_FLAGS MSG_NOSIGNAL
#  else
#    define AU__SEND_FLAGS 0               /* macOS/BSD: SO_NOSIGPIPE is set per socket */
#  endif
typedef size_t au__iolen;
#endif

ALWAYSUP_DEF int64_t au_now_ms(void) {
#if defined(_WIN32)
    return (int64_t)GetTickCount64();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
#endif
}

ALWAYSUP_DEF int au_poll(au_pollfd *fds, int n, int timeout_ms) {
#if defined(_WIN32)
    fd_set r, w, e;
    struct timeval tv;
    int i, ready = 0, any = 0;
    FD_ZERO(&r); FD_ZERO(&w); FD_ZERO(&e);
    for (i = 0; i < n; i++) {
        fds[i].revents = 0;
        if (!fds[i].events) continue;
        if (fds[i].events & AU_POLLIN) FD_SET((SOCKET)fds[i].fd, &r);
        if (fds[i].events & AU_POLLOUT) FD_SET((SOCKET)fds[i].fd, &w);
        FD_SET((SOCKET)fds[i].fd, &e);         /* a failed connect shows up here */
        any = 1;
    }
    if (!any) { Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms); return 0; }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    if (select(0, &r, &w, &e, timeout_ms < 0 ? NULL : &tv) == SOCKET_ERROR) return -1;
    for (i = 0; i < n; i++) {
        SOCKET s = (SOCKET)fds[i].fd;
        if (!fds[i].events) continue;
        if (FD_ISSET(s, &r)) fds[i].revents |= AU_POLLIN;
        if (FD_ISSET(s, &w)) fds[i].revents |= AU_POLLOUT;
        if (FD_ISSET(s, &e)) fds[i].revents |= AU_POLLERR | (fds[i].events & AU_POLLIN);
        if (fds[i].revents) ready++;
    }
    return ready;
#else
    struct pollfd small[8], *p = n <= 8 ? small : (struct pollfd *)ALWAYSUP_REALLOC(NULL, (size_t)n * sizeof *p);
    int i, r;
    if (!p) return -1;
    for (i = 0; i < n; i++) {
        p[i].fd = fds[i].fd;
        p[i].events = (short)(((fds[i].events & AU_POLLIN) ? POLLIN : 0) | ((fds[i].events & AU_POLLOUT) ? POLLOUT : 0));
        p[i].revents = 0;
    }
    r = poll(p, (nfds_t)n, timeout_ms);
    for (i = 0; i < n; i++) {
        int re = p[i].revents;
        /* hang-up and errors wake a reader too: its read then says what happened */
        fds[i].revents = ((re & POLLIN) ? AU_POLLIN : 0) | ((re & POLLOUT) ? AU_POLLOUT : 0) |
                         ((re & (POLLERR | POLLHUP | POLLNVAL)) ? AU_POLLERR | (fds[i].events & AU_POLLIN) : 0);
    }
    if (p != small) ALWAYSUP_FREE(p);
    return r;
#endif
}

static void au__sock_strerror(int e, char *buf, size_t cap) {
#if defined(_WIN32)
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, (DWORD)e, 0, buf,
                             (DWORD)cap, NULL);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '.')) buf[--n] = 0;
    if (!n) snprintf(buf, cap, "error %d", e);
#else
    snprintf(buf, cap, "%s", strerror(e));
#endif
}
static int au__sock_nonblock(au__socket s) {
#if defined(_WIN32)
    u_long on = 1;
    return ioctlsocket(s, (long)FIONBIO, &on) == 0 ? 0 : -1;   /* FIONBIO is unsigned in mingw */
#else
    int fl = fcntl(s, F_GETFL, 0);
    if (fl < 0 || fcntl(s, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
    fcntl(s, F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}
/* small writes must not wait for Nagle; dead peers behind NAT are found */
static void au__sock_tune(au__socket s) {
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, (const char *)&one, sizeof one);
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
    {
        int idle = 30, intvl = 10, cnt = 3;
        setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, (const char *)&idle, sizeof idle);
        setsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, (const char *)&intvl, sizeof intvl);
        setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, (const char *)&cnt, sizeof cnt);
    }
#elif defined(TCP_KEEPALIVE)
    { int idle = 30; setsockopt(s, IPPROTO_TCP, TCP_KEEPALIVE, (const char *)&idle, sizeof idle); }
#endif
#ifdef SO_NOSIGPIPE
    setsockopt(s, SOL_SOCKET, SO_NOSIGPIPE, (const char *)&one, sizeof one);
#endif
}

/* ---- au_client: one WebSocket connection over non-blocking TCP ---- */

/* ---- TLS backends (compiled only when asked for) ---- */
#if defined(ALWAYSUP_TLS_OPENSSL)
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
static void au__ossl_why(char *err, size_t cap, const char *what) {
    unsigned long e = ERR_get_error();
    char buf[160];
    if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(err, cap, "%s (%s)", what, buf);
    } else snprintf(err, cap, "%s", what);
    ERR_clear_error();
}
static void *au__ossl_ctx_new(const au_tls_desc *d, char *err, size_t cap) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) { au__ossl_why(err, cap, "cannot create a TLS context"); return NULL; }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (d->insecure) SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (d->ca_file && d->ca_file[0]) {          /* like curl --cacert: these CAs instead of the system's */
            if (SSL_CTX_load_verify_locations(ctx, d->ca_file, NULL) != 1) {
                char what[200];
                snprintf(what, sizeof what, "cannot read the CA file %.150s", d->ca_file);
                au__ossl_why(err, cap, what);
                SSL_CTX_free(ctx);
                return NULL;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            au__ossl_why(err, cap, "cannot load the system's trusted certificates");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    if (d->cert_file && d->cert_file[0]) {
        const char *key = d->key_file && d->key_file[0] ? d->key_file : d->cert_file;
        if (SSL_CTX_use_certificate_chain_file(ctx, d->cert_file) != 1 || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            char what[360];
            snprintf(what, sizeof what, "cannot use the client certificate %.150s with the key %.150s", d->cert_file, key);
            au__ossl_why(err, cap, what);
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}
static void au__ossl_ctx_free(void *ctx) { SSL_CTX_free((SSL_CTX *)ctx); }
static void *au__ossl_conn_new(void *ctx, au_socket_t s, const char *host, int host_is_ip, char *err, size_t cap) {
    SSL *ssl = SSL_new((SSL_CTX *)ctx);
    if (!ssl || SSL_set_fd(ssl, (int)s) != 1) { au__ossl_why(err, cap, "cannot start TLS"); SSL_free(ssl); return NULL; }
    if (!host_is_ip) SSL_set_tlsext_host_name(ssl, host);      /* SNI: never for an address */
    if (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) {
        int ok = host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) : SSL_set1_host(ssl, host);
        if (!host_is_ip) SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (ok != 1) { au__ossl_why(err, cap, "cannot set the name to verify"); SSL_free(ssl); return NULL; }
    }
    SSL_set_connect_state(ssl);
    return ssl;
}
static int au__ossl_result(SSL *ssl, int r, int *want, char *err, size_t cap, const char *what) {
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ) { *want = AU_POLLIN; return AU_EAGAIN; }
    if (e == SSL_ERROR_WANT_WRITE) { *want = AU_POLLOUT; return AU_EAGAIN; }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        if (r == 0) return 0;                       /* EOF without close_notify: the peer is gone */
        snprintf(err, cap, "%s: %s", what, strerror(errno));
        return AU_ETLS;
    }
    au__ossl_why(err, cap, what);
    return AU_ETLS;
}
static int au__ossl_handshake(void *conn, int *want, char *err, size_t cap) {
    SSL *ssl = (SSL *)conn;
    int r = SSL_connect(ssl);
    long v;
    if (r == 1) return AU_OK;
    r = au__ossl_result(ssl, r, want, err, cap, "handshake");
    if (r == AU_EAGAIN) return r;
    v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {                            /* the reason a person can act on */
        ERR_clear_error();
        snprintf(err, cap, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    } else if (r == 0) snprintf(err, cap, "the daemon closed the connection during the TLS handshake");
    return AU_ETLS;
}
static long au__ossl_read(void *conn, void *buf, size_t n, int *want, char *err, size_t cap) {
    int r = SSL_read((SSL *)conn, buf, (int)AU__MIN(n, (size_t)1 << 30));
    return r > 0 ? r : au__ossl_result((SSL *)conn, r, want, err, cap, "receive");
}
static long au__ossl_write(void *conn, const void *buf, size_t n, int *want, char *err, size_t cap) {
    int r = SSL_write((SSL *)conn, buf, (int)AU__MIN(n, (size_t)1 << 30));
    if (r > 0) return r;
    r = au__ossl_result((SSL *)conn, r, want, err, cap, "send");
    return r == 0 ? AU_ETLS : r;
}
static size_t au__ossl_pending(void *conn) { return (size_t)SSL_pending((SSL *)conn); }
static void au__ossl_conn_free(void *conn) {
    SSL *ssl = (SSL *)conn;
    SSL_free(ssl);
}
static char au__ossl_name[64];
static au_tls_backend au__ossl = { au__ossl_name, au__ossl_ctx_new, au__ossl_ctx_free, au__ossl_conn_new, au__ossl_handshake,
                                   au__ossl_read, au__ossl_write, au__ossl_pending, au__ossl_conn_free };
ALWAYSUP_DEF const au_tls_backend *au_tls_builtin(void) {
    if (!au__ossl_name[0]) {                         /* "OpenSSL 3.0.13 30 Jan 2024" -> "OpenSSL 3.0.13" */
        const char *v = OpenSSL_version(OPENSSL_VERSION);
        size_t k = 0, words = 0;
        while (v[k] && k < sizeof au__ossl_name - 1) { if (v[k] == ' ' && ++words == 2) break; k++; }
        memcpy(au__ossl_name, v, k);
        au__ossl_name[k] = 0;
    }
    return &au__ossl;
}
#elif defined(ALWAYSUP_TLS_SCHANNEL) && defined(_WIN32)
/* SChannel (Windows' own TLS), same contract as the OpenSSL backend: the
   certificate is checked here, after the handshake, with CryptoAPI, so that
   --ca-file can replace the system store and a failure has a plain reason. */
#ifndef SECURITY_WIN32
#  define SECURITY_WIN32
#endif
#include <wincrypt.h>
#include <security.h>
#include <schannel.h>
#ifdef _MSC_VER
#  pragma comment(lib, "secur32")
#  pragma comment(lib, "crypt32")
#endif
#ifndef SECURITY_FLAG_IGNORE_CERT_CN_INVALID
#  define SECURITY_FLAG_IGNORE_CERT_CN_INVALID 0x00001000   /* wininet.h's, which the SSL policy takes */
#endif
#define AU__SCH_IN_MAX ((size_t)1 << 20)         /* a handshake flight bigger than this is not a TLS server */
typedef struct au__sch_ctx {
    CredHandle cred;
    HCERTSTORE cas;                              /* --ca-file: trusted instead of the system's; NULL: system */
    PCCERT_CONTEXT client;                       /* --cert, its key in the container below */
    char container[64];
    WCHAR wcontainer[64];
    int insecure;
} au__sch_ctx;
enum { AU__SCH_START, AU__SCH_HANDSHAKE, AU__SCH_CHECK, AU__SCH_OPEN };
typedef struct au__sch_conn {
    au__sch_ctx *ctx;
    SOCKET s;
    CtxtHandle h;
    int have_h, state, need_more, step_now, renegotiate, eof, failed, host_is_ip;
    SecPkgContext_StreamSizes sizes;
    au__buf in, out, plain;                      /* ciphertext received, ciphertext to send (from off), decrypted
                                                    unread (from off) */
    size_t committed;                            /* plaintext already encrypted into out, reported once it is sent */
    char host[256];
    char fail[200];                              /* a receive error held back behind data already read */
} au__sch_conn;

static void au__sch_status(char *err, size_t cap, const char *what, SECURITY_STATUS st) {
    const char *why = NULL;
    char sys[160];
    switch (st) {
    case SEC_E_ILLEGAL_MESSAGE: why = "the daemon sent an alert or a message that is not TLS"; break;
    case SEC_E_ALGORITHM_MISMATCH: why = "no protocol version or cipher suite in common with the daemon"; break;
    case SEC_E_UNSUPPORTED_FUNCTION: why = "the daemon asked for a protocol version that is not enabled"; break;
    case SEC_E_INVALID_TOKEN: why = "the daemon did not answer with TLS"; break;
    case SEC_E_MESSAGE_ALTERED: why = "a record failed its integrity check"; break;
    case SEC_E_DECRYPT_FAILURE: why = "a record could not be decrypted"; break;
    case SEC_E_INTERNAL_ERROR: why = "internal error in the TLS provider"; break;
    case SEC_E_NO_CREDENTIALS: why = "no usable credentials"; break;
    case SEC_E_CERT_UNKNOWN: why = "the daemon's certificate could not be used"; break;
    default: break;
    }
    if (!why) {
        DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, (DWORD)st, 0, sys, (DWORD)sizeof sys, NULL);
        while (n && (sys[n - 1] == '\n' || sys[n - 1] == '\r' || sys[n - 1] == '.')) sys[--n] = 0;
        why = n ? sys : "SChannel error";
    }
    snprintf(err, cap, "%s: %s (0x%08lx)", what, why, (unsigned long)(DWORD)st);
}
/* room for `more` bytes in b, which holds at most max */
static int au__sch_room(au__buf *b, size_t more, size_t max) {
    return b->len > max || more > max - b->len || au__buf_reserve(b, more) != AU_OK ? -1 : 0;
}
/* every PEM block of `label` in a file, each handed to fn as DER; the count, or -1 (err set) */
static int au__sch_pem(const char *path, const char *label, int (*fn)(void *arg, const BYTE *der, DWORD len), void *arg, char *err,
                       size_t cap) {
    FILE *f = fopen(path, "rb");
    au__buf file = { NULL, 0, 0, 0 };
    char *text, begin[64], end[64];
    size_t n;
    int count = 0;
    const char *p;
    if (!f) { snprintf(err, cap, "cannot open %.200s: %s", path, strerror(errno)); return -1; }
    for (;;) {
        if (au__sch_room(&file, 4097, (size_t)64 << 20) != 0) {
            snprintf(err, cap, "%.200s: too big or out of memory", path);
            fclose(f);
            au__buf_free(&file);
            return -1;
        }
        n = fread(file.p + file.len, 1, 4096, f);
        if (!n) break;
        file.len += n;
    }
    fclose(f);
    text = (char *)file.p;
    text[file.len] = 0;
    snprintf(begin, sizeof begin, "-----BEGIN %s-----", label);
    snprintf(end, sizeof end, "-----END %s-----", label);
    for (p = strstr(text, begin); p; p = strstr(p, begin)) {
        const char *q = strstr(p, end);
        DWORD dlen = 0;
        BYTE *der;
        if (!q) break;
        q += strlen(end);
        /* CryptStringToBinaryA reads one block at a time: hand it exactly one */
        if (!CryptStringToBinaryA(p, (DWORD)(q - p), CRYPT_STRING_BASE64HEADER, NULL, &dlen, NULL, NULL) || !dlen ||
            !(der = (BYTE *)ALWAYSUP_MALLOC(dlen))) {
            snprintf(err, cap, "%.200s: a %s block is not valid base64", path, label);
            ALWAYSUP_FREE(text);
            return -1;
        }
        if (!CryptStringToBinaryA(p, (DWORD)(q - p), CRYPT_STRING_BASE64HEADER, der, &dlen, NULL, NULL) || fn(arg, der, dlen) != 0) {
            snprintf(err, cap, "%.200s: a %s block cannot be used", path, label);
            ALWAYSUP_FREE(der);
            ALWAYSUP_FREE(text);
            return -1;
        }
        ALWAYSUP_FREE(der);
        count++;
        p = q;
    }
    ALWAYSUP_FREE(text);
    return count;
}
static int au__sch_add_ca(void *store, const BYTE *der, DWORD len) {
    return CertAddEncodedCertificateToStore((HCERTSTORE)store, X509_ASN_ENCODING, der, len, CERT_STORE_ADD_USE_EXISTING, NULL) ? 0 : -1;
}
static void au__sch_ctx_free(void *p) {
    au__sch_ctx *x = (au__sch_ctx *)p;
    if (!x) return;
    if (SecIsValidHandle(&x->cred)) FreeCredentialsHandle(&x->cred);
    if (x->cas) CertCloseStore(x->cas, 0);
    if (x->client) CertFreeCertificateContext(x->client);
    if (x->container[0]) {                       /* no copy of the client key stays behind */
        HCRYPTPROV gone = 0;
        CryptAcquireContextA(&gone, x->container, MS_ENH_RSA_AES_PROV_A, PROV_RSA_AES, CRYPT_DELETEKEYSET);
    }
    ALWAYSUP_FREE(x);
}
/* --cert/--key: the certificate's key goes into a CAPI key container of its own, where SChannel (and Wine's)
   looks for it; deleted again with the context. RSA only: PKCS#8 or PKCS#1, unencrypted. */
typedef struct au__sch_pem_one { BYTE *der; DWORD len; } au__sch_pem_one;
static int au__sch_keep_first(void *arg, const BYTE *der, DWORD len) {
    au__sch_pem_one *o = (au__sch_pem_one *)arg;
    if (o->der) return 0;
    o->der = (BYTE *)ALWAYSUP_MALLOC(len);
    if (!o->der) return -1;
    memcpy(o->der, der, len);
    o->len = len;
    return 0;
}
/* one DER TLV at *p (< end): its tag, its contents in body and len; 0, or -1 when malformed */
static int au__sch_der(const BYTE **p, const BYTE *end, int *tag, const BYTE **body, size_t *len) {
    size_t n, k;
    if (end - *p < 2) return -1;
    *tag = (*p)[0];
    n = (*p)[1];
    *p += 2;
    if (n & 0x80) {
        k = n & 0x7f;
        if (!k || k > 3 || (size_t)(end - *p) < k) return -1;
        for (n = 0; k; k--) n = (n << 8) | *(*p)++;
    }
    if ((size_t)(end - *p) < n) return -1;
    *body = *p;
    *len = n;
    *p += n;
    return 0;
}
/* PKCS#8 PrivateKeyInfo: the algorithm OID and the inner key (Wine's crypt32 cannot decode it) */
static int au__sch_pkcs8(const BYTE *der, size_t len, const BYTE **oid, size_t *oid_len, const BYTE **key, size_t *key_len) {
    const BYTE *p = der, *end = der + len, *seq, *alg, *v;
    size_t n, alen, vn;
    int tag;
    if (au__sch_der(&p, end, &tag, &seq, &n) != 0 || tag != 0x30) return -1;
    p = seq;
    end = seq + n;
    if (au__sch_der(&p, end, &tag, &v, &vn) != 0 || tag != 0x02) return -1;           /* version */
    if (au__sch_der(&p, end, &tag, &alg, &alen) != 0 || tag != 0x30) return -1;       /* AlgorithmIdentifier */
    if (au__sch_der(&alg, alg + alen, &tag, oid, oid_len) != 0 || tag != 0x06) return -1;
    if (au__sch_der(&p, end, &tag, key, key_len) != 0 || tag != 0x04) return -1;      /* OCTET STRING */
    return 0;
}
/* containers left by a shim that was killed (its ctx_free never ran): removed at the next start */
static void au__sch_sweep(void) {
    HCRYPTPROV v = 0, gone;
    char name[260];
    DWORD n = sizeof name, flag = CRYPT_FIRST;
    unsigned long pid, k;
    char stale[16][64];
    int count = 0, i;
    if (!CryptAcquireContextA(&v, NULL, MS_ENH_RSA_AES_PROV_A, PROV_RSA_AES, CRYPT_VERIFYCONTEXT)) return;
    while (count < 16 && CryptGetProvParam(v, PP_ENUMCONTAINERS, (BYTE *)name, &n, flag)) {
        HANDLE h;
        flag = CRYPT_NEXT;
        n = sizeof name;
        if (sscanf(name, "alwaysup-%lu-%lu", &pid, &k) != 2 || pid == GetCurrentProcessId()) continue;
        h = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)pid);
        if (h) { CloseHandle(h); continue; }     /* its shim still runs */
        snprintf(stale[count++], sizeof stale[0], "%.60s", name);
    }
    CryptReleaseContext(v, 0);
    for (i = 0; i < count; i++) { gone = 0; CryptAcquireContextA(&gone, stale[i], MS_ENH_RSA_AES_PROV_A, PROV_RSA_AES, CRYPT_DELETEKEYSET); }
}
static int au__sch_client_key(au__sch_ctx *x, const au_tls_desc *d, char *err, size_t cap) {
    const char *keyfile = d->key_file && d->key_file[0] ? d->key_file : d->cert_file;
    au__sch_pem_one cert = { NULL, 0 }, key = { NULL, 0 };
    BYTE *blob = NULL;
    static const BYTE rsa_oid[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };   /* 1.2.840.113549.1.1.1 */
    const BYTE *rsa, *oid;
    size_t rsa_len, oid_len;
    DWORD blob_len = 0, size = 0;
    HCRYPTPROV prov = 0;
    HCRYPTKEY k = 0;
    CERT_PUBLIC_KEY_INFO *pub = NULL;
    CRYPT_KEY_PROV_INFO info;
    char why[300];
    int r = -1, n;
    static LONG serial;
    n = au__sch_pem(d->cert_file, "CERTIFICATE", au__sch_keep_first, &cert, why, sizeof why);
    if (n <= 0 || !(x->client = CertCreateCertificateContext(X509_ASN_ENCODING, cert.der, cert.len))) {
        snprintf(err, cap, "cannot read the client certificate %.150s (%.200s)", d->cert_file, n < 0 ? why : "no PEM certificate in it");
        goto done;
    }
    if (au__sch_pem(keyfile, "RSA PRIVATE KEY", au__sch_keep_first, &key, why, sizeof why) > 0) {
        rsa = key.der;
        rsa_len = key.len;
    } else if (au__sch_pem(keyfile, "PRIVATE KEY", au__sch_keep_first, &key, why, sizeof why) > 0) {
        if (au__sch_pkcs8(key.der, key.len, &oid, &oid_len, &rsa, &rsa_len) != 0) {
            snprintf(err, cap, "cannot read the key %.200s (not a PKCS#8 key)", keyfile);
            goto done;
        }
        if (oid_len != sizeof rsa_oid || memcmp(oid, rsa_oid, sizeof rsa_oid) != 0) {
            snprintf(err, cap, "the key %.150s is not RSA: the SChannel build takes RSA client keys only (EC keys: use the OpenSSL build)",
                     keyfile);
            goto done;
        }
    } else {
        n = au__sch_pem(keyfile, "EC PRIVATE KEY", au__sch_keep_first, &key, why, sizeof why);
        snprintf(err, cap, "cannot read the key %.150s (%s)", keyfile,
                 n > 0 ? "an EC key: the SChannel build takes RSA client keys only; use the OpenSSL build"
                       : "no unencrypted PEM RSA PRIVATE KEY or PRIVATE KEY block in it");
        goto done;
    }
    if (!CryptDecodeObjectEx(X509_ASN_ENCODING, PKCS_RSA_PRIVATE_KEY, rsa, (DWORD)rsa_len, CRYPT_DECODE_ALLOC_FLAG, NULL, &blob, &blob_len)) {
        snprintf(err, cap, "cannot read the key %.200s (not an RSA private key)", keyfile);
        goto done;
    }
    au__sch_sweep();
    snprintf(x->container, sizeof x->container, "alwaysup-%lu-%lu", (unsigned long)GetCurrentProcessId(),
             (unsigned long)InterlockedIncrement(&serial));
    CryptAcquireContextA(&prov, x->container, MS_ENH_RSA_AES_PROV_A, PROV_RSA_AES, CRYPT_DELETEKEYSET);   /* a stale one */
    prov = 0;
    if (!CryptAcquireContextA(&prov, x->container, MS_ENH_RSA_AES_PROV_A, PROV_RSA_AES, CRYPT_NEWKEYSET)) {
        snprintf(err, cap, "cannot create a key container for the client key (error %lu)", (unsigned long)GetLastError());
        x->container[0] = 0;
        goto done;
    }
    if (!CryptImportKey(prov, blob, blob_len, 0, 0, &k)) {
        snprintf(err, cap, "cannot import the key %.200s (error %lu)", keyfile, (unsigned long)GetLastError());
        goto done;
    }
    size = 0;                                    /* the key must be the certificate's */
    if (!CryptExportPublicKeyInfo(prov, AT_KEYEXCHANGE, X509_ASN_ENCODING, NULL, &size) || !(pub = (CERT_PUBLIC_KEY_INFO *)ALWAYSUP_MALLOC(size)) ||
        !CryptExportPublicKeyInfo(prov, AT_KEYEXCHANGE, X509_ASN_ENCODING, pub, &size) ||
        !CertComparePublicKeyInfo(X509_ASN_ENCODING, pub, &x->client->pCertInfo->SubjectPublicKeyInfo)) {
        snprintf(err, cap, "the key %.150s does not belong to the client certificate %.150s", keyfile, d->cert_file);
        goto done;
    }
    memset(&info, 0, sizeof info);
    if (!MultiByteToWideChar(CP_UTF8, 0, x->container, -1, x->wcontainer, (int)(sizeof x->wcontainer / sizeof x->wcontainer[0]))) goto done;
    info.pwszContainerName = x->wcontainer;
    info.pwszProvName = (LPWSTR)MS_ENH_RSA_AES_PROV_W;
    info.dwProvType = PROV_RSA_AES;
    info.dwKeySpec = AT_KEYEXCHANGE;
    if (!CertSetCertificateContextProperty(x->client, CERT_KEY_PROV_INFO_PROP_ID, 0, &info)) {
        snprintf(err, cap, "cannot attach the key to the client certificate (error %lu)", (unsigned long)GetLastError());
        goto done;
    }
    r = 0;
done:
    if (k) CryptDestroyKey(k);
    if (prov) CryptReleaseContext(prov, 0);      /* persisted now: SChannel opens it by name */
    if (blob) { SecureZeroMemory(blob, blob_len); LocalFree(blob); }
    if (key.der) { SecureZeroMemory(key.der, key.len); ALWAYSUP_FREE(key.der); }
    ALWAYSUP_FREE(cert.der);
    ALWAYSUP_FREE(pub);
    return r;
}
static void *au__sch_ctx_new(const au_tls_desc *d, char *err, size_t cap) {
    au__sch_ctx *x;
    SCHANNEL_CRED sc;
    SECURITY_STATUS st;
    x = (au__sch_ctx *)ALWAYSUP_MALLOC(sizeof *x);
    if (!x) { snprintf(err, cap, "out of memory"); return NULL; }
    memset(x, 0, sizeof *x);
    SecInvalidateHandle(&x->cred);
    x->insecure = d->insecure;
    if (!d->insecure && d->ca_file && d->ca_file[0]) {          /* like curl --cacert: these CAs instead of the system's */
        char why[300];
        int n;
        x->cas = CertOpenStore(CERT_STORE_PROV_MEMORY, 0, 0, CERT_STORE_CREATE_NEW_FLAG, NULL);
        n = x->cas ? au__sch_pem(d->ca_file, "CERTIFICATE", au__sch_add_ca, x->cas, why, sizeof why) : -1;
        if (n <= 0) {
            if (!x->cas) snprintf(why, sizeof why, "cannot create a certificate store");
            else if (n == 0) snprintf(why, sizeof why, "no PEM certificate in it");
            snprintf(err, cap, "cannot read the CA file %.150s (%.200s)", d->ca_file, why);
            au__sch_ctx_free(x);
            return NULL;
        }
    }
    if (d->cert_file && d->cert_file[0] && au__sch_client_key(x, d, err, cap) != 0) {
        au__sch_ctx_free(x);
        return NULL;
    }
    memset(&sc, 0, sizeof sc);
    sc.dwVersion = SCHANNEL_CRED_VERSION;
    if (x->client) { sc.cCreds = 1; sc.paCred = &x->client; }
    /* the system's protocol defaults (TLS 1.3 where it has it); below 1.2 is refused after the handshake.
       The certificate is checked by au__sch_check, never by SChannel, and no client certificate is picked for us */
    sc.dwFlags = SCH_CRED_MANUAL_CRED_VALIDATION | SCH_CRED_NO_DEFAULT_CREDS | SCH_CRED_NO_SERVERNAME_CHECK;
    st = AcquireCredentialsHandleA(NULL, (char *)UNISP_NAME_A, SECPKG_CRED_OUTBOUND, NULL, &sc, NULL, NULL, &x->cred, NULL);
    if (st != SEC_E_OK) {
        SecInvalidateHandle(&x->cred);
        au__sch_status(err, cap, "cannot create a TLS context", st);
        au__sch_ctx_free(x);
        return NULL;
    }
    return x;
}
static void au__sch_conn_free(void *p) {
    au__sch_conn *c = (au__sch_conn *)p;
    if (!c) return;
    if (c->have_h) DeleteSecurityContext(&c->h);
    au__buf_free(&c->in);
    au__buf_free(&c->out);
    au__buf_free(&c->plain);
    ALWAYSUP_FREE(c);
}
static void *au__sch_conn_new(void *ctx, au_socket_t s, const char *host, int host_is_ip, char *err, size_t cap) {
    au__sch_conn *c = (au__sch_conn *)ALWAYSUP_MALLOC(sizeof *c);
    if (!c) { snprintf(err, cap, "out of memory"); return NULL; }
    memset(c, 0, sizeof *c);
    c->ctx = (au__sch_ctx *)ctx;
    c->s = (SOCKET)s;
    c->host_is_ip = host_is_ip;
    if (strlen(host) >= sizeof c->host) { snprintf(err, cap, "host name too long"); ALWAYSUP_FREE(c); return NULL; }
    memcpy(c->host, host, strlen(host) + 1);
    return c;
}
/* sends what is queued: 1 all sent, 0 would block, < 0 error */
static int au__sch_flush(au__sch_conn *c, char *err, size_t cap) {
    while (c->out.off < c->out.len) {
        int w = send(c->s, (const char *)c->out.p + c->out.off, (int)AU__MIN(c->out.len - c->out.off, (size_t)1 << 30), 0);
        if (w > 0) { c->out.off += (size_t)w; continue; }
        {
            int e = WSAGetLastError();
            char why[128];
            if (e == WSAEWOULDBLOCK) return 0;
            if (e == WSAEINTR) continue;
            au__sock_strerror(e, why, sizeof why);
            snprintf(err, cap, "send: %s", why);
            return AU_ETLS;
        }
    }
    c->out.off = c->out.len = 0;
    return 1;
}
static int au__sch_queue(au__sch_conn *c, const void *p, size_t n) {
    return au__sch_room(&c->out, n, AU__SCH_IN_MAX) != 0 || au__buf_append(&c->out, p, n) != AU_OK ? -1 : 0;
}
/* more ciphertext from the socket: > 0, 0 at the end of the stream, AU_EAGAIN, < 0 error */
static int au__sch_fill(au__sch_conn *c, char *err, size_t cap) {
    int r;
    if (au__sch_room(&c->in, 16384 + 2048 + 5, AU__SCH_IN_MAX) != 0 && au__sch_room(&c->in, 1, AU__SCH_IN_MAX) != 0) {
        snprintf(err, cap, "a TLS message larger than %u bytes", (unsigned)AU__SCH_IN_MAX);
        return AU_ETLS;
    }
    for (;;) {
        r = recv(c->s, (char *)c->in.p + c->in.len, (int)AU__MIN(AU__MIN(c->in.cap, AU__SCH_IN_MAX) - c->in.len, (size_t)1 << 30), 0);
        if (r > 0) { c->in.len += (size_t)r; return r; }
        if (r == 0) return 0;
        {
            int e = WSAGetLastError();
            char why[128];
            if (e == WSAEWOULDBLOCK) return AU_EAGAIN;
            if (e == WSAEINTR) continue;
            if (e == WSAECONNRESET || e == WSAECONNABORTED) return 0;   /* the peer is gone, as EOF */
            au__sock_strerror(e, why, sizeof why);
            snprintf(err, cap, "receive: %s", why);
            return AU_ETLS;
        }
    }
}
/* one InitializeSecurityContext step over what is in c->in; queues its output and keeps its leftover input */
static SECURITY_STATUS au__sch_step(au__sch_conn *c) {
    SecBuffer ib[2], ob[1];
    SecBufferDesc id, od;
    ULONG attrs = 0;
    SECURITY_STATUS st;
    ULONG req = ISC_REQ_SEQUENCE_DETECT | ISC_REQ_REPLAY_DETECT | ISC_REQ_CONFIDENTIALITY | ISC_REQ_ALLOCATE_MEMORY | ISC_REQ_STREAM |
                ISC_REQ_MANUAL_CRED_VALIDATION | ISC_REQ_USE_SUPPLIED_CREDS;
    ib[0].BufferType = SECBUFFER_TOKEN; ib[0].pvBuffer = c->in.p; ib[0].cbBuffer = (unsigned long)c->in.len;
    ib[1].BufferType = SECBUFFER_EMPTY; ib[1].pvBuffer = NULL; ib[1].cbBuffer = 0;
    id.ulVersion = SECBUFFER_VERSION; id.cBuffers = 2; id.pBuffers = ib;
    ob[0].BufferType = SECBUFFER_TOKEN; ob[0].pvBuffer = NULL; ob[0].cbBuffer = 0;
    od.ulVersion = SECBUFFER_VERSION; od.cBuffers = 1; od.pBuffers = ob;
    st = InitializeSecurityContextA(&c->ctx->cred, c->have_h ? &c->h : NULL, c->host_is_ip ? NULL : c->host, req, 0, 0,
                                    c->have_h ? &id : NULL, 0, &c->h, &od, &attrs, NULL);
    if (!c->have_h && (st == SEC_E_OK || st == SEC_I_CONTINUE_NEEDED)) c->have_h = 1;   /* SNI: the name, never an address */
    if (ob[0].pvBuffer) {
        if (ob[0].cbBuffer && au__sch_queue(c, ob[0].pvBuffer, ob[0].cbBuffer) != 0) st = SEC_E_INSUFFICIENT_MEMORY;
        FreeContextBuffer(ob[0].pvBuffer);
    }
    if (st == SEC_E_INCOMPLETE_MESSAGE || st == SEC_I_INCOMPLETE_CREDENTIALS) return st;   /* keep it all: more, or the same again */
    if (ib[1].BufferType == SECBUFFER_EXTRA && ib[1].cbBuffer && ib[1].cbBuffer <= c->in.len) {
        memmove(c->in.p, c->in.p + (c->in.len - ib[1].cbBuffer), ib[1].cbBuffer);   /* the next message starts here */
        c->in.len = ib[1].cbBuffer;
    } else if (c->have_h) c->in.len = 0;
    return st;
}
/* a certificate's simple display name, for a reason */
static void au__sch_cert_name(PCCERT_CONTEXT cert, char *out, size_t cap) {
    if (!CertGetNameStringA(cert, CERT_NAME_SIMPLE_DISPLAY_TYPE, 0, NULL, out, (DWORD)cap) || !out[0]) snprintf(out, cap, "?");
}
/* is the address `host` one of the certificate's IP address SANs? */
static int au__sch_ip_match(PCCERT_CONTEXT leaf, const char *host) {
    struct addrinfo hints, *res = NULL;
    const BYTE *want;
    DWORD wlen, i, size = 0;
    PCERT_EXTENSION ext;
    CERT_ALT_NAME_INFO *alt = NULL;
    int ok = 0;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return 0;
    if (res->ai_family == AF_INET) { want = (const BYTE *)&((struct sockaddr_in *)res->ai_addr)->sin_addr; wlen = 4; }
    else { want = (const BYTE *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr; wlen = 16; }
    ext = CertFindExtension(szOID_SUBJECT_ALT_NAME2, leaf->pCertInfo->cExtension, leaf->pCertInfo->rgExtension);
    if (ext && CryptDecodeObjectEx(X509_ASN_ENCODING, X509_ALTERNATE_NAME, ext->Value.pbData, ext->Value.cbData, CRYPT_DECODE_ALLOC_FLAG,
                                   NULL, &alt, &size)) {
        for (i = 0; i < alt->cAltEntry && !ok; i++) {
            const CERT_ALT_NAME_ENTRY *e = &alt->rgAltEntry[i];
            if (e->dwAltNameChoice == CERT_ALT_NAME_IP_ADDRESS && e->IPAddress.cbData == wlen && memcmp(e->IPAddress.pbData, want, wlen) == 0)
                ok = 1;
        }
        LocalFree(alt);
    }
    freeaddrinfo(res);
    return ok;
}
/* the daemon's certificate: chain to a trusted root (ours with --ca-file), dates, usage, name */
static int au__sch_check(au__sch_conn *c, char *err, size_t cap) {
    PCCERT_CONTEXT peer = NULL, root, found;
    PCCERT_CHAIN_CONTEXT chain = NULL;
    HCERTSTORE extra, coll = NULL;
    CERT_CHAIN_PARA para;
    CERT_CHAIN_POLICY_PARA pp;
    CERT_CHAIN_POLICY_STATUS ps;
    SSL_EXTRA_CERT_CHAIN_POLICY_PARA ssl;
    LPSTR usage[1];
    WCHAR whost[256];
    char name[128], when[40];
    const CERT_SIMPLE_CHAIN *simple;
    DWORD i;
    int r = AU_ETLS;
    SECURITY_STATUS st = QueryContextAttributesA(&c->h, SECPKG_ATTR_REMOTE_CERT_CONTEXT, (void *)&peer);
    if (st != SEC_E_OK || !peer) { snprintf(err, cap, "certificate verify failed: the daemon sent no certificate"); return AU_ETLS; }
    extra = peer->hCertStore;                    /* the intermediates the daemon sent */
    if (c->ctx->cas) {
        coll = CertOpenStore(CERT_STORE_PROV_COLLECTION, 0, 0, 0, NULL);
        if (!coll || !CertAddStoreToCollection(coll, peer->hCertStore, 0, 0) || !CertAddStoreToCollection(coll, c->ctx->cas, 0, 0)) {
            snprintf(err, cap, "certificate verify failed: cannot set up the trusted CAs");
            goto done;
        }
        extra = coll;
    }
    usage[0] = (LPSTR)szOID_PKIX_KP_SERVER_AUTH;
    memset(&para, 0, sizeof para);
    para.cbSize = sizeof para;
    para.RequestedUsage.dwType = USAGE_MATCH_TYPE_AND;
    para.RequestedUsage.Usage.cUsageIdentifier = 1;
    para.RequestedUsage.Usage.rgpszUsageIdentifier = usage;
    if (!CertGetCertificateChain(NULL, peer, NULL, extra, &para, 0, NULL, &chain) || !chain->cChain) {
        snprintf(err, cap, "certificate verify failed: cannot build the certificate chain (error %lu)", (unsigned long)GetLastError());
        goto done;
    }
    simple = chain->rgpChain[0];
    root = simple->rgpElement[simple->cElement - 1]->pCertContext;
    au__sch_cert_name(root, name, sizeof name);
    /* the chain must end at a self-signed root, and with --ca-file at one of those */
    found = c->ctx->cas ? CertFindCertificateInStore(c->ctx->cas, X509_ASN_ENCODING, 0, CERT_FIND_EXISTING, root, NULL) : NULL;
    if (found) CertFreeCertificateContext(found);
    else if (!(simple->rgpElement[simple->cElement - 1]->TrustStatus.dwInfoStatus & CERT_TRUST_IS_SELF_SIGNED)) {
        snprintf(err, cap, "certificate verify failed: untrusted CA (no trusted CA issued \"%.100s\")", name);
        goto done;
    } else if (c->ctx->cas || (chain->TrustStatus.dwErrorStatus & CERT_TRUST_IS_UNTRUSTED_ROOT)) {
        snprintf(err, cap, "certificate verify failed: untrusted CA (the chain ends at \"%.100s\", which is not %s)", name,
                 c->ctx->cas ? "in the CA file" : "trusted");
        goto done;
    }
    if (!MultiByteToWideChar(CP_UTF8, 0, c->host, -1, whost, (int)(sizeof whost / sizeof whost[0]))) whost[0] = 0;
    memset(&ssl, 0, sizeof ssl);
    ssl.cbSize = sizeof ssl;
    ssl.dwAuthType = AUTHTYPE_SERVER;
    ssl.fdwChecks = c->host_is_ip ? SECURITY_FLAG_IGNORE_CERT_CN_INVALID : 0;   /* an address: IP SANs, checked below */
    ssl.pwszServerName = whost;
    memset(&pp, 0, sizeof pp);
    pp.cbSize = sizeof pp;
    pp.dwFlags = c->ctx->cas ? CERT_CHAIN_POLICY_ALLOW_UNKNOWN_CA_FLAG : 0;     /* our root, not in the system store */
    pp.pvExtraPolicyPara = &ssl;
    memset(&ps, 0, sizeof ps);
    ps.cbSize = sizeof ps;
    if (!CertVerifyCertificateChainPolicy(CERT_CHAIN_POLICY_SSL, chain, &pp, &ps)) {
        snprintf(err, cap, "certificate verify failed: cannot check the chain (error %lu)", (unsigned long)GetLastError());
        goto done;
    }
    switch ((DWORD)ps.dwError) {
    case 0: break;
    case (DWORD)CERT_E_EXPIRED:
        for (i = 0; i < simple->cElement; i++) {   /* which one, and which way */
            PCCERT_CONTEXT e = simple->rgpElement[i]->pCertContext;
            LONG t = CertVerifyTimeValidity(NULL, e->pCertInfo);
            SYSTEMTIME sy;
            if (!t) continue;
            if (!FileTimeToSystemTime(t > 0 ? &e->pCertInfo->NotAfter : &e->pCertInfo->NotBefore, &sy)) memset(&sy, 0, sizeof sy);
            snprintf(when, sizeof when, "%04u-%02u-%02u %02u:%02u:%02u UTC", sy.wYear, sy.wMonth, sy.wDay, sy.wHour, sy.wMinute, sy.wSecond);
            au__sch_cert_name(e, name, sizeof name);
            snprintf(err, cap, "certificate verify failed: %s %s (\"%.100s\", %s %s)", i ? "a CA certificate" : "certificate",
                     t > 0 ? "has expired" : "is not yet valid", name, t > 0 ? "not after" : "not before", when);
            goto done;
        }
        snprintf(err, cap, "certificate verify failed: certificate has expired or is not yet valid");
        goto done;
    case (DWORD)CERT_E_CN_NO_MATCH:
        snprintf(err, cap, "certificate verify failed: hostname mismatch (the certificate is not for %.100s)", c->host);
        goto done;
    case (DWORD)CERT_E_UNTRUSTEDROOT:
    case (DWORD)CERT_E_CHAINING:
        snprintf(err, cap, "certificate verify failed: untrusted CA (the chain ends at \"%.100s\", which is not trusted)", name);
        goto done;
    case (DWORD)CERT_E_WRONG_USAGE:
        snprintf(err, cap, "certificate verify failed: the certificate is not for TLS servers (extended key usage)");
        goto done;
    case (DWORD)CERT_E_REVOKED:
        snprintf(err, cap, "certificate verify failed: certificate revoked");
        goto done;
    default:
        au__sch_status(err, cap, "certificate verify failed", (SECURITY_STATUS)ps.dwError);
        goto done;
    }
    if (c->host_is_ip && !au__sch_ip_match(peer, c->host)) {
        snprintf(err, cap, "certificate verify failed: IP address mismatch (the certificate is not for %.60s)", c->host);
        goto done;
    }
    r = AU_OK;
done:
    if (chain) CertFreeCertificateChain(chain);
    if (coll) CertCloseStore(coll, 0);
    CertFreeCertificateContext(peer);
    return r;
}
/* the handshake is through: sizes, protocol version at least TLS 1.2, the certificate */
static int au__sch_finish(au__sch_conn *c, char *err, size_t cap) {
    SecPkgContext_ConnectionInfo ci;
    SECURITY_STATUS st = QueryContextAttributesA(&c->h, SECPKG_ATTR_STREAM_SIZES, &c->sizes);
    const DWORD old = SP_PROT_SSL2_CLIENT | SP_PROT_SSL3_CLIENT | SP_PROT_TLS1_0_CLIENT | SP_PROT_TLS1_1_CLIENT;
    if (st != SEC_E_OK) { au__sch_status(err, cap, "handshake", st); return AU_ETLS; }
    memset(&ci, 0, sizeof ci);
    if (QueryContextAttributesA(&c->h, SECPKG_ATTR_CONNECTION_INFO, &ci) == SEC_E_OK && (ci.dwProtocol & old)) {
        snprintf(err, cap, "the daemon only speaks %s; TLS 1.2 is the minimum",
                 (ci.dwProtocol & SP_PROT_TLS1_1_CLIENT) ? "TLS 1.1" : (ci.dwProtocol & SP_PROT_TLS1_0_CLIENT) ? "TLS 1.0" : "SSL");
        return AU_ETLS;
    }
    if (!c->ctx->insecure && au__sch_check(c, err, cap) != AU_OK) return AU_ETLS;
    c->state = AU__SCH_OPEN;
    return AU_OK;
}
/* InitializeSecurityContext until it is done: the handshake, or a renegotiation / TLS 1.3 post-handshake message */
static int au__sch_drive(au__sch_conn *c, int *want, char *err, size_t cap) {
    int guard = 0;
    for (;;) {
        SECURITY_STATUS st;
        int f = au__sch_flush(c, err, cap);
        if (f < 0) return f;
        if (!f) { *want = AU_POLLOUT; return AU_EAGAIN; }
        if (c->state == AU__SCH_CHECK) return AU_OK;
        if (c->state != AU__SCH_START && !c->step_now && (c->need_more || !c->in.len)) {
            f = au__sch_fill(c, err, cap);
            if (f == AU_EAGAIN) { *want = AU_POLLIN; return AU_EAGAIN; }
            if (f < 0) return f;
            if (f == 0) { snprintf(err, cap, "the daemon closed the connection during the TLS handshake"); return AU_ETLS; }
            c->need_more = 0;
        }
        c->step_now = 0;
        st = au__sch_step(c);
        if (c->state == AU__SCH_START) c->state = AU__SCH_HANDSHAKE;
        if (st == SEC_E_OK) c->state = AU__SCH_CHECK;      /* flushed first, then checked */
        else if (st == SEC_E_INCOMPLETE_MESSAGE) c->need_more = 1;
        else if (st == SEC_I_INCOMPLETE_CREDENTIALS && guard++ < 2) continue;   /* asked for a certificate: go on without */
        else if (st != SEC_I_CONTINUE_NEEDED) {
            au__sch_flush(c, err, cap);                 /* an alert, if SChannel wrote one */
            au__sch_status(err, cap, "handshake", st);
            if (st == SEC_I_INCOMPLETE_CREDENTIALS) snprintf(err, cap, "the daemon wants a client certificate (mutual TLS)");
            return AU_ETLS;
        }
    }
}
static int au__sch_handshake(void *conn, int *want, char *err, size_t cap) {
    au__sch_conn *c = (au__sch_conn *)conn;
    int r = au__sch_drive(c, want, err, cap);
    return r == AU_OK ? au__sch_finish(c, err, cap) : r;
}
/* one record from c->in: 1 decrypted (maybe empty), 0 incomplete, 2 close_notify, < 0 error */
static int au__sch_decrypt(au__sch_conn *c, char *err, size_t cap) {
    SecBuffer b[4];
    SecBufferDesc d;
    SECURITY_STATUS st;
    int i;
    size_t extra = 0;
    if (c->in.len < 5) return 0;                 /* not even a record header (Wine reads one regardless) */
    b[0].BufferType = SECBUFFER_DATA; b[0].pvBuffer = c->in.p; b[0].cbBuffer = (unsigned long)c->in.len;
    for (i = 1; i < 4; i++) { b[i].BufferType = SECBUFFER_EMPTY; b[i].pvBuffer = NULL; b[i].cbBuffer = 0; }
    d.ulVersion = SECBUFFER_VERSION; d.cBuffers = 4; d.pBuffers = b;
    st = DecryptMessage(&c->h, &d, 0, NULL);
    if (st == SEC_E_INCOMPLETE_MESSAGE) return 0;
    if (st == SEC_I_CONTEXT_EXPIRED) return 2;
    if (st != SEC_E_OK && st != SEC_I_RENEGOTIATE) { au__sch_status(err, cap, "receive", st); return AU_ETLS; }
    for (i = 0; i < 4; i++) {
        if (b[i].BufferType == SECBUFFER_DATA && b[i].cbBuffer) {   /* in place, inside c->in: copied out first */
            if (au__sch_room(&c->plain, b[i].cbBuffer, AU__SCH_IN_MAX) != 0 || au__buf_append(&c->plain, b[i].pvBuffer, b[i].cbBuffer) != AU_OK) {
                snprintf(err, cap, "out of memory");
                return AU_ETLS;
            }
        }
        if (b[i].BufferType == SECBUFFER_EXTRA && b[i].cbBuffer <= c->in.len) extra = b[i].cbBuffer;
    }
    if (extra) memmove(c->in.p, c->in.p + (c->in.len - extra), extra);   /* the next record */
    c->in.len = extra;
    if (st == SEC_I_RENEGOTIATE) {               /* its handshake message is in c->in now: InitializeSecurityContext takes it */
        c->renegotiate = 1;
        c->state = AU__SCH_HANDSHAKE;
        c->need_more = 0;
        c->step_now = 1;                         /* even with nothing left over */
    }
    return 1;
}
static long au__sch_read(void *conn, void *buf, size_t n, int *want, char *err, size_t cap) {
    au__sch_conn *c = (au__sch_conn *)conn;
    size_t got = 0;
    while (got < n) {
        int r;
        if (c->plain.off < c->plain.len) {
            size_t k = AU__MIN(n - got, c->plain.len - c->plain.off);
            memcpy((uint8_t *)buf + got, c->plain.p + c->plain.off, k);
            got += k;
            c->plain.off += k;
            if (c->plain.off == c->plain.len) c->plain.off = c->plain.len = 0;
            continue;
        }
        if (c->failed) {
            if (got) break;
            snprintf(err, cap, "%s", c->fail);
            return AU_ETLS;
        }
        if (c->eof) break;
        if (c->renegotiate) {
            int w = 0;
            r = au__sch_drive(c, &w, c->fail, sizeof c->fail);
            if (r == AU_EAGAIN) { if (got) break; *want = w; return AU_EAGAIN; }
            if (r == AU_OK) { c->renegotiate = 0; c->state = AU__SCH_OPEN; continue; }
            c->failed = 1;
            continue;
        }
        r = au__sch_decrypt(c, c->fail, sizeof c->fail);
        if (r == 1) continue;
        if (r == 2) { c->eof = 1; continue; }
        if (r < 0) { c->failed = 1; continue; }
        r = au__sch_fill(c, c->fail, sizeof c->fail);  /* a record is incomplete: more from the socket */
        if (r == AU_EAGAIN) { if (got) break; *want = AU_POLLIN; return AU_EAGAIN; }
        if (r == 0) c->eof = 1;                  /* TCP ended (Wine reports close_notify as an empty record) */
        else if (r < 0) c->failed = 1;
    }
    return (long)got;
}
static long au__sch_write(void *conn, const void *buf, size_t n, int *want, char *err, size_t cap) {
    au__sch_conn *c = (au__sch_conn *)conn;
    SecBuffer b[4];
    SecBufferDesc d;
    SECURITY_STATUS st;
    size_t chunk, k;
    int f;
    if (c->renegotiate) { *want = AU_POLLIN; return AU_EAGAIN; }   /* no records while a handshake message is half read */
    f = au__sch_flush(c, err, cap);
    if (f < 0) return f;
    if (!f) { *want = AU_POLLOUT; return AU_EAGAIN; }
    if (c->committed) {                          /* the record made last time is out now */
        k = c->committed;
        c->committed = 0;
        return (long)k;
    }
    chunk = AU__MIN(n, (size_t)c->sizes.cbMaximumMessage);
    if (!chunk) return 0;
    c->out.off = c->out.len = 0;
    if (au__sch_room(&c->out, c->sizes.cbHeader + chunk + c->sizes.cbTrailer, AU__SCH_IN_MAX) != 0) {
        snprintf(err, cap, "out of memory");
        return AU_ETLS;
    }
    memcpy(c->out.p + c->sizes.cbHeader, buf, chunk);
    b[0].BufferType = SECBUFFER_STREAM_HEADER; b[0].pvBuffer = c->out.p; b[0].cbBuffer = c->sizes.cbHeader;
    b[1].BufferType = SECBUFFER_DATA; b[1].pvBuffer = c->out.p + c->sizes.cbHeader; b[1].cbBuffer = (unsigned long)chunk;
    b[2].BufferType = SECBUFFER_STREAM_TRAILER; b[2].pvBuffer = c->out.p + c->sizes.cbHeader + chunk; b[2].cbBuffer = c->sizes.cbTrailer;
    b[3].BufferType = SECBUFFER_EMPTY; b[3].pvBuffer = NULL; b[3].cbBuffer = 0;
    d.ulVersion = SECBUFFER_VERSION; d.cBuffers = 4; d.pBuffers = b;
    st = EncryptMessage(&c->h, 0, &d, 0);
    if (st != SEC_E_OK) { au__sch_status(err, cap, "send", st); return AU_ETLS; }
    c->out.len = (size_t)b[0].cbBuffer + b[1].cbBuffer + b[2].cbBuffer;   /* header, data, trailer: back to back */
    f = au__sch_flush(c, err, cap);
    if (f < 0) return f;
    if (!f) { c->committed = chunk; *want = AU_POLLOUT; return AU_EAGAIN; }   /* the caller calls again with the same bytes */
    return (long)chunk;
}
/* decrypted bytes, or a whole record still to decrypt: either way readable without the socket */
static size_t au__sch_pending(void *conn) {
    au__sch_conn *c = (au__sch_conn *)conn;
    size_t n = c->plain.len - c->plain.off;
    if (!n && c->failed) n = 1;                  /* the error, which the socket may never wake us for */
    if (!n && c->in.len >= 5 && c->in.len >= 5 + (((size_t)c->in.p[3] << 8) | c->in.p[4])) n = 1;
    return n;
}
static au_tls_backend au__sch = { "SChannel", au__sch_ctx_new, au__sch_ctx_free, au__sch_conn_new, au__sch_handshake,
                                  au__sch_read, au__sch_write, au__sch_pending, au__sch_conn_free };
ALWAYSUP_DEF const au_tls_backend *au_tls_builtin(void) { return &au__sch; }
#else
ALWAYSUP_DEF const au_tls_backend *au_tls_builtin(void) { return NULL; }
#endif
/* ws+unix: needs AF_UNIX, which Windows has from 10 1803 on: asked of the system at run time */
static int au__unix_usable(void) {
#if defined(_WIN32)
    WSADATA wsa;
    SOCKET s;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) return 0;
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s != INVALID_SOCKET) closesocket(s);
    WSACleanup();
    return s != INVALID_SOCKET;
#else
    return 1;
#endif
}
ALWAYSUP_DEF const char *au_transports(void) {
    static char text[120];
    const au_tls_backend *t = au_tls_builtin();
    snprintf(text, sizeof text, "tcp%s%s%s%s", au__unix_usable() ? ", unix" : "", t ? ", tls (" : "", t ? t->name : "", t ? ")" : "");
    return text;
}

/* what getaddrinfo's code means (Winsock's are socket error codes) */
static void au__gai_strerror(int rc, char *buf, size_t cap) {
#if defined(_WIN32)
    au__sock_strerror(rc, buf, cap);
#else
    snprintf(buf, cap, "%s", gai_strerror(rc));
#endif
}
#if defined(AU__ASYNC_RESOLVE)
/* getaddrinfo on a thread of its own, so a name service that does not answer
   never holds the loop: the thread writes one byte to a pipe the client
   polls (on Windows, whose select() waits on sockets only, it sends one
   datagram between two loopback UDP sockets connected to each other). Whoever
   lets go last frees the lookup; a client that gives up never waits for the
   thread. */
#if defined(_WIN32)
typedef CRITICAL_SECTION au__mutex;
#  define AU__MUTEX_INIT(m) InitializeCriticalSection(m)
#  define AU__MUTEX_LOCK(m) EnterCriticalSection(m)
#  define AU__MUTEX_UNLOCK(m) LeaveCriticalSection(m)
#  define AU__MUTEX_DESTROY(m) DeleteCriticalSection(m)
#else
typedef pthread_mutex_t au__mutex;
#  define AU__MUTEX_INIT(m) pthread_mutex_init(m, NULL)
#  define AU__MUTEX_LOCK(m) pthread_mutex_lock(m)
#  define AU__MUTEX_UNLOCK(m) pthread_mutex_unlock(m)
#  define AU__MUTEX_DESTROY(m) pthread_mutex_destroy(m)
#endif
typedef struct au__lookup {
    au__mutex mu;
    int refs, done, abandoned, rc;
    au__socket wfd;                      /* the thread's end of the wakeup */
    struct addrinfo hints, *res;
    char host[256], port[8];
} au__lookup;
/* the wakeup: w[0] for the client to poll, w[1] for the thread's one byte */
static int au__wake_open(au__socket w[2]) {
#if defined(_WIN32)
    struct sockaddr_in a[2];
    int i, n;
    w[0] = w[1] = INVALID_SOCKET;
    for (i = 0; i < 2; i++) {
        memset(&a[i], 0, sizeof a[i]);
        a[i].sin_family = AF_INET;
        a[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        n = (int)sizeof a[i];
        w[i] = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
        if (w[i] == INVALID_SOCKET || bind(w[i], (struct sockaddr *)&a[i], (int)sizeof a[i]) != 0 ||
            getsockname(w[i], (struct sockaddr *)&a[i], &n) != 0)
            goto fail;
    }
    /* connected both ways: each takes datagrams from the other only, so no other local sender wakes the loop */
    if (connect(w[0], (struct sockaddr *)&a[1], (int)sizeof a[1]) != 0 || connect(w[1], (struct sockaddr *)&a[0], (int)sizeof a[0]) != 0 ||
        au__sock_nonblock(w[0]) != 0)
        goto fail;
    return 0;
fail:
    for (i = 0; i < 2; i++)
        if (w[i] != INVALID_SOCKET) closesocket(w[i]);
    w[0] = w[1] = INVALID_SOCKET;
    return -1;
#else
    int p[2];
    if (pipe(p) != 0) return -1;
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL, 0) | O_NONBLOCK);
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    w[0] = p[0];
    w[1] = p[1];
    return 0;
#endif
}
static void au__lookup_release(au__lookup *l) {           /* with l->mu held; unlocks */
    int last = --l->refs == 0;
    AU__MUTEX_UNLOCK(&l->mu);
    if (!last) return;
    if (l->res) freeaddrinfo(l->res);
    if (l->wfd != AU__BAD_SOCKET) AU__CLOSE_SOCKET(l->wfd);
    AU__MUTEX_DESTROY(&l->mu);
    ALWAYSUP_FREE(l);
#if defined(_WIN32)
    WSACleanup();                        /* the reference au__lookup_start took for the thread */
#endif
}
static void au__lookup_body(au__lookup *l) {
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(l->host, l->port, &l->hints, &res);
    AU__MUTEX_LOCK(&l->mu);
    l->rc = rc;
    l->res = res;
    l->done = 1;
    if (!l->abandoned) {                 /* the reader is there: no SIGPIPE */
        char one = 1;
#if defined(_WIN32)
        send(l->wfd, &one, 1, 0);
#else
        if (write(l->wfd, &one, 1) < 0) {}
#endif
    }
    AU__CLOSE_SOCKET(l->wfd);
    l->wfd = AU__BAD_SOCKET;
    au__lookup_release(l);
}
#if defined(_WIN32)
static DWORD WINAPI au__lookup_run(LPVOID arg) { au__lookup_body((au__lookup *)arg); return 0; }
#else
static void *au__lookup_run(void *arg) { au__lookup_body((au__lookup *)arg); return NULL; }
#endif
/* 1 and the wakeup to poll in *fd when a thread resolves; 0: resolve here */
static int au__lookup_start(au_client *c, const char *host, const char *port, const struct addrinfo *hints, au__socket *fd) {
    au__lookup *l;
    au__socket w[2];
    int ok;
#if defined(_WIN32)
    HANDLE th;
    WSADATA wsa;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) return 0;   /* the thread's own: the client may be freed first */
#else
    pthread_t th;
    pthread_attr_t attr;
#endif
    w[0] = w[1] = AU__BAD_SOCKET;
    l = au__wake_open(w) == 0 ? (au__lookup *)ALWAYSUP_REALLOC(NULL, sizeof *l) : NULL;
    if (l) {
        memset(l, 0, sizeof *l);
        AU__MUTEX_INIT(&l->mu);
        l->refs = 2;
        l->wfd = w[1];
        l->hints = *hints;
        snprintf(l->host, sizeof l->host, "%s", host);
        snprintf(l->port, sizeof l->port, "%s", port);
#if defined(_WIN32)
        th = CreateThread(NULL, 0, au__lookup_run, l, 0, NULL);
        ok = th != NULL;
        if (ok) CloseHandle(th);               /* detached */
#else
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&th, &attr, au__lookup_run, l) == 0;
        pthread_attr_destroy(&attr);
#endif
        if (ok) {
            c->lookup = l;
            *fd = w[0];
            return 1;
        }
        AU__MUTEX_DESTROY(&l->mu);
        ALWAYSUP_FREE(l);
    }
    if (w[0] != AU__BAD_SOCKET) { AU__CLOSE_SOCKET(w[0]); AU__CLOSE_SOCKET(w[1]); }
#if defined(_WIN32)
    WSACleanup();
#endif
    return 0;
}
/* the client lets go of its lookup (done or not) */
static void au__lookup_drop(au_client *c) {
    au__lookup *l = (au__lookup *)c->lookup;
    if (!l) return;
    c->lookup = NULL;
    AU__MUTEX_LOCK(&l->mu);
    l->abandoned = 1;
    au__lookup_release(l);
}
#endif
/* http://[user:password@]host[:port][/]: the proxy and, in *userinfo, its credentials */
static int au__proxy_parse(au_url *u, const char *text, char *userinfo, size_t cap) {
    const char *at, *p = text;
    char buf[300];
    size_t n = strlen(text);
    userinfo[0] = 0;
    if (n < 8 || !au__ieq(text, 7, "http://")) return AU_EURL_SCHEME;
    p += 7;
    at = strchr(p, '@');
    if (at && (!strchr(p, '/') || at < strchr(p, '/'))) {
        snprintf(userinfo, cap, "%.*s", (int)(at - p), p);
        p = at + 1;
    }
    n = strcspn(p, "/?");
    if (p[n] && strcmp(p + n, "/") != 0) return AU_EURL_PATH;   /* a proxy has no path or query */
    if (n + 5 >= sizeof buf) return AU_EURL_HOST;
    snprintf(buf, sizeof buf, "ws://%.*s", (int)n, p);          /* host[:port] as in a ws:// URL */
    if (au_url_parse(u, buf, strlen(buf)) != AU_OK) return AU_EURL_HOST;
    if (!u->port_given) u->port = 1080;                         /* curl's default proxy port */
    u->path = "/";
    return AU_OK;
}
ALWAYSUP_DEF int au_client_init(au_client *c, const au_client_desc *desc) {
    size_t n;
    int i, r;
    memset(c, 0, sizeof *c);
    c->sock = AU_INVALID_SOCKET;
    if (!desc || !desc->url) return AU_EINVAL;
#if defined(_WIN32)
    {   /* reference-counted by Winsock; au_client_free undoes it */
        WSADATA wsa;
        if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) return AU_EINVAL;
        c->wsa = 1;
    }
#endif
    c->desc = *desc;
    if (!(c->desc.connect_timeout > 0)) c->desc.connect_timeout = 5;
    if (!(c->desc.handshake_timeout > 0)) c->desc.handshake_timeout = 10;
    if (!(c->desc.close_timeout > 0)) c->desc.close_timeout = 1;
    if (!c->desc.read_size) c->desc.read_size = (size_t)32 << 10;
    for (i = 0; i < desc->num_headers; i++)
        if (au_header_check(desc->headers[i].name, desc->headers[i].value)) return AU_EHEADER;
    for (i = 0; i < desc->num_subprotocols; i++)
        if (au_subprotocol_check(desc->subprotocols[i])) return AU_EHEADER;
    n = strlen(desc->url);
    c->url_text = (char *)ALWAYSUP_REALLOC(NULL, n + 1);
    c->rbuf = (uint8_t *)ALWAYSUP_REALLOC(NULL, c->desc.read_size);
    if (!c->url_text || !c->rbuf) { au_client_free(c); return AU_ENOMEM; }
    memcpy(c->url_text, desc->url, n + 1);
    r = au_url_parse(&c->url, c->url_text, n);
    if (r == AU_EURL_TLS) {                        /* wss://: a TLS backend carries it, if there is one */
        c->tlsb = desc->tls ? desc->tls : au_tls_builtin();
        if (!c->tlsb) { au_client_free(c); return AU_EURL_TLS; }
        c->tls_ctx = c->tlsb->ctx_new(&c->desc.tls_opts, c->error, sizeof c->error);
        if (!c->tls_ctx) { c->tlsb = NULL; return AU_ETLS; }   /* c->error says why; the caller frees */
        r = AU_OK;
    }
    if (r == AU_OK && c->url.unix_socket && !au__unix_usable()) {
        /* a platform without the socket family: no retry can change that, so refused at start like wss:// without TLS */
        snprintf(c->error, sizeof c->error, "%s", AU__NO_AFUNIX);
        r = AU_EURL_UNIX;
    }
    if (r == AU_OK && desc->proxy && desc->proxy[0] && !c->url.unix_socket) {   /* CONNECT host:port, then TLS and the upgrade */
        /* line holds the longest request: two targets, the agent, 340 bytes of Basic credentials */
        char userinfo[256], target[300], line[2 * 300 + 160 + AU_BASE64_LEN(256)], b64[AU_BASE64_LEN(256) + 1];
        const char *cred = desc->proxy_auth && desc->proxy_auth[0] ? desc->proxy_auth : userinfo;
        int k;
        r = au__proxy_parse(&c->proxy_url, desc->proxy, userinfo, sizeof userinfo);
        if (r != AU_OK) { au_client_free(c); return AU_EINVAL; }
        snprintf(target, sizeof target, "%s%s%s:%u", c->url.ipv6 ? "[" : "", c->url.host, c->url.ipv6 ? "]" : "", (unsigned)c->url.port);
        k = snprintf(line, sizeof line, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: alwaysup/" ALWAYSUP_VERSION_STRING "\r\n",
                     target, target);
        if (cred[0] && strlen(cred) < 256) {
            au_base64_encode(cred, strlen(cred), b64);
            k += snprintf(line + k, sizeof line - (size_t)k, "Proxy-Authorization: Basic %s\r\n", b64);
        }
        k += snprintf(line + k, sizeof line - (size_t)k, "\r\n");
        if (k < 0 || (size_t)k >= sizeof line) { memset(line, 0, sizeof line); au_client_free(c); return AU_EINVAL; }
        c->proxy_request = (char *)ALWAYSUP_REALLOC(NULL, (size_t)k + 1);
        if (!c->proxy_request) { au_client_free(c); return AU_ENOMEM; }
        memcpy(c->proxy_request, line, (size_t)k + 1);
        c->proxy_request_len = (size_t)k;
        memset(line, 0, sizeof line);                    /* the credentials live in one place */
        memset(userinfo, 0, sizeof userinfo);
        c->via_proxy = 1;
    }
    if (r != AU_OK) { au_client_free(c); return r; }
    return AU_OK;
}
static void au__client_close_socket(au_client *c) {
    if (c->sock != AU_INVALID_SOCKET) AU__CLOSE_SOCKET((au__socket)c->sock);
    c->sock = AU_INVALID_SOCKET;
}
static void au__client_reset(au_client *c) {
#if defined(AU__ASYNC_RESOLVE)
    au__lookup_drop(c);                           /* before its pipe (c->sock) is closed */
#endif
    if (c->tls_conn) c->tlsb->conn_free(c->tls_conn);
    c->tls_conn = NULL;
    c->tls_want = 0;
    au__client_close_socket(c);
    if (c->addrs) freeaddrinfo((struct addrinfo *)c->addrs);
    c->addrs = c->next_addr = NULL;
    au_ws_free(&c->ws);                           /* safe on a zeroed au_ws */
    memset(&c->ws, 0, sizeof c->ws);
    c->inp = NULL;
    c->inlen = 0;
    c->state = AU_CLIENT_IDLE;
}
/* ends the connection; the DISCONNECTED event comes from the next poll */
static void au__client_end(au_client *c, unsigned code) {
    au__client_reset(c);
    c->end_code = code;
    c->ended = 1;
    c->state = AU_CLIENT_CONNECTING;          /* stays "busy" until the event is taken */
    c->deadline = 0;
}
static void au__client_try_next(au_client *c, int64_t now) {
    char why[160];
    why[0] = 0;
    while (c->next_addr) {
        struct addrinfo *ai = (struct addrinfo *)c->next_addr;
        au__socket s;
        int r, e;
        c->next_addr = ai->ai_next;
        {
            char host[48];
            unsigned port = c->via_proxy ? c->proxy_url.port : c->url.port;
            if (getnameinfo(ai->ai_addr, (socklen_t)ai->ai_addrlen, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
                snprintf(host, sizeof host, "%.47s", c->url.host);
            if (ai->ai_family == AF_INET6) snprintf(c->peer, sizeof c->peer, "[%s]:%u", host, port);
            else snprintf(c->peer, sizeof c->peer, "%s:%u", host, port);
        }
        s = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (s == AU__BAD_SOCKET) { au__sock_strerror(AU__SOCK_ERRNO(), why, sizeof why); continue; }
        if (au__sock_nonblock(s) != 0) { AU__CLOSE_SOCKET(s); snprintf(why, sizeof why, "cannot make the socket non-blocking"); continue; }
        au__sock_tune(s);
        r = connect(s, ai->ai_addr, (socklen_t)ai->ai_addrlen);
        e = r == 0 ? 0 : AU__SOCK_ERRNO();
        if (r == 0 || AU__IN_PROGRESS(e)) {
            c->sock = (au_socket_t)s;
            c->deadline = now + au__ms(c->desc.connect_timeout);
            return;
        }
        au__sock_strerror(e, why, sizeof why);
        snprintf(c->error, sizeof c->error, "connect to %s: %s", c->peer, why);
        AU__CLOSE_SOCKET(s);
    }
    if (!c->error[0]) snprintf(c->error, sizeof c->error, "no usable address for %.100s%s%.100s", c->url.host, why[0] ? ": " : "", why);
    au__client_end(c, AU_CLOSE_ABNORMAL);
}
/* ws+unix: one address, no name service */
static void au__client_connect_unix(au_client *c, int64_t now) {
    au__sockaddr_un sa;
    au__socket s;
    char why[128];
    int e = 0;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, c->url.unix_path, strlen(c->url.unix_path) + 1);
    snprintf(c->peer, sizeof c->peer, "unix:%.58s", c->url.unix_path);
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s == AU__BAD_SOCKET) e = AU__SOCK_ERRNO();
    else if (au__sock_nonblock(s) != 0) { e = AU__SOCK_ERRNO(); AU__CLOSE_SOCKET(s); s = AU__BAD_SOCKET; }
    else if (connect(s, (const struct sockaddr *)&sa, (socklen_t)sizeof sa) != 0 && !AU__IN_PROGRESS(AU__SOCK_ERRNO()) &&
             !AU__WOULD_BLOCK(AU__SOCK_ERRNO())) {
        e = AU__SOCK_ERRNO();
        AU__CLOSE_SOCKET(s);
        s = AU__BAD_SOCKET;
    }
    c->state = AU_CLIENT_CONNECTING;
    if (s == AU__BAD_SOCKET) {
        au__sock_strerror(e, why, sizeof why);
        snprintf(c->error, sizeof c->error, "connect to unix:%.110s: %.100s", c->url.unix_path, why);
        au__client_end(c, AU_CLOSE_ABNORMAL);
        return;
    }
    c->sock = (au_socket_t)s;
    c->deadline = now + au__ms(c->desc.connect_timeout);
}
ALWAYSUP_DEF void au_client_connect(au_client *c, int64_t now) {
    struct addrinfo hints, *res = NULL;
    char port[8];
    int r;
    au__client_reset(c);
    c->error[0] = 0;
    c->peer[0] = 0;
    c->ended = 0;
    c->drained = 0;
    c->end_code = 0;
    memset(c->reached, 0, sizeof c->reached);
    c->reached[AU_CLIENT_IDLE] = now;
    c->http_status = 0;
    if (c->url.unix_socket) { au__client_connect_unix(c, now); return; }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    /* an address as written needs no name service (and none of its code in memory) */
    {
        const au_url *to = c->via_proxy ? &c->proxy_url : &c->url;   /* through a proxy: its address */
        int numeric = to->ipv6 || au__ipv4_valid(to->host, strlen(to->host));
        if (numeric) hints.ai_flags = AI_NUMERICHOST;
        snprintf(port, sizeof port, "%u", (unsigned)to->port);
#if defined(AU__ASYNC_RESOLVE)
        if (!numeric) {                           /* a name: resolved off the loop */
            au__socket fd;
            if (au__lookup_start(c, to->host, port, &hints, &fd)) {
                c->sock = (au_socket_t)fd;
                c->state = AU_CLIENT_RESOLVING;
                c->deadline = now + au__ms(c->desc.connect_timeout);
                return;
            }
        }
#endif
        r = getaddrinfo(to->host, port, &hints, &res);
    }
    c->state = AU_CLIENT_CONNECTING;
    if (r != 0 || !res) {
        char why[128];
        au__gai_strerror(r, why, sizeof why);
        snprintf(c->error, sizeof c->error, "cannot resolve %.120s%s: %.100s", c->via_proxy ? c->proxy_url.host : c->url.host,
                 c->via_proxy ? " (the proxy)" : "", why);
        au__client_end(c, AU_CLOSE_ABNORMAL);
        return;
    }
    c->reached[AU_CLIENT_RESOLVING] = now;
    c->addrs = c->next_addr = res;
    au__client_try_next(c, now);
}
ALWAYSUP_DEF int au_client_events(const au_client *c) {
    if (c->ended) return 0;
    if (c->state == AU_CLIENT_CONNECTING) return AU_POLLOUT;
    if (c->state == AU_CLIENT_IDLE) return 0;
    if (c->state == AU_CLIENT_RESOLVING) return AU_POLLIN;
    if (c->state == AU_CLIENT_PROXY) return c->proxy_sent < c->proxy_request_len ? AU_POLLOUT | AU_POLLIN : AU_POLLIN;
    if (c->state == AU_CLIENT_TLS) return c->tls_want ? c->tls_want : AU_POLLIN;
    return AU_POLLIN | (au_client_unsent(c) ? AU_POLLOUT : 0) | c->tls_want;
}
ALWAYSUP_DEF int64_t au_client_deadline(const au_client *c) {
    if (c->ended) return 0;
    if (c->inlen) return 0;                       /* buffered input still to hand out */
    if (c->tls_conn && c->state > AU_CLIENT_TLS && c->tlsb->pending(c->tls_conn)) return 0;   /* decrypted, unread */
    if (c->state == AU_CLIENT_OPEN || c->state == AU_CLIENT_IDLE) return -1;
    return c->deadline;
}
ALWAYSUP_DEF size_t au_client_unsent(const au_client *c) {
    return (c->ws.out.len - c->ws.out.off) + (c->ws.big.len - c->ws.big.off) + (c->ws.after.len - c->ws.after.off);
}

static int au__client_flush(au_client *c) {
    const uint8_t *p;
    size_t n;
    while ((n = au_ws_output(&c->ws, &p)) > 0) {
        long w;
        if (c->tls_conn) {                        /* the backend writes the socket */
            char why[200];
            int want = 0;
            why[0] = 0;
            w = c->tlsb->write(c->tls_conn, p, AU__MIN(n, (size_t)1 << 30), &want, why, sizeof why);
            c->tls_want &= ~AU_POLLIN;
            if (w > 0) { au_ws_output_done(&c->ws, (size_t)w); continue; }
            if (w == AU_EAGAIN) { if (want == AU_POLLIN) c->tls_want |= AU_POLLIN; return 0; }
            snprintf(c->error, sizeof c->error, "TLS send to %.60s: %.180s", c->peer, why[0] ? why : "failed");
            return -1;
        }
        w = (long)send((au__socket)c->sock, (const char *)p, (au__iolen)AU__MIN(n, (size_t)1 << 30), AU__SEND_FLAGS);
        if (w > 0) { au_ws_output_done(&c->ws, (size_t)w); continue; }
        if (w < 0) {
            int e = AU__SOCK_ERRNO();
            char why[128];
            if (AU__WOULD_BLOCK(e)) return 0;
            if (AU__INTERRUPTED(e)) continue;
            au__sock_strerror(e, why, sizeof why);
            snprintf(c->error, sizeof c->error, "send to %s: %s", c->peer, why);
        }
        return -1;
    }
    return 0;
}
static void au__client_start_close(au_client *c, int64_t now) {
    c->state = AU_CLIENT_CLOSING;
    c->deadline = now + au__ms(c->desc.close_timeout);
    if (au__client_flush(c) != 0) au__client_end(c, AU_CLOSE_ABNORMAL);
}
static int au__client_emit_end(au_client *c, au_ws_msg *m) {
    c->ended = 0;
    c->state = AU_CLIENT_IDLE;
    memset(m, 0, sizeof *m);
    m->type = AU_WS_DISCONNECTED;
    m->code = c->end_code;
    m->reason = c->error;
    return 1;
}
static int au__client_start_ws(au_client *c, int64_t now, au_ws_msg *m) {
    au_ws_desc wd;
    int r;
    memset(&wd, 0, sizeof wd);
    wd.url = &c->url;
    wd.subprotocols = c->desc.subprotocols;
    wd.num_subprotocols = c->desc.num_subprotocols;
    wd.headers = c->desc.headers;
    wd.num_headers = c->desc.num_headers;
    wd.max_message = c->desc.max_message;
    r = au_ws_init(&c->ws, &wd);
    if (r != AU_OK) {
        snprintf(c->error, sizeof c->error, "cannot start the handshake: %s", au_strerror(r));
        au__client_end(c, AU_CLOSE_ABNORMAL);
        return au__client_emit_end(c, m);
    }
    c->state = AU_CLIENT_HANDSHAKE;
    c->deadline = now + au__ms(c->desc.handshake_timeout);
    if (au__client_flush(c) != 0) { au__client_end(c, AU_CLOSE_ABNORMAL); return au__client_emit_end(c, m); }
    return 0;
}
static int au__client_tls_step(au_client *c, int64_t now, au_ws_msg *m);
static int au__client_start_tls(au_client *c, int64_t now, au_ws_msg *m) {
    char terr[200];
    terr[0] = 0;
    c->tls_conn = c->tlsb->conn_new(c->tls_ctx, c->sock, c->url.host, c->url.ipv6 || au__ipv4_valid(c->url.host, strlen(c->url.host)),
                                    terr, sizeof terr);
    if (!c->tls_conn) {
        snprintf(c->error, sizeof c->error, "TLS with %.60s: %.180s", c->peer, terr[0] ? terr : "cannot start");
        au__client_end(c, AU_CLOSE_ABNORMAL);
        return au__client_emit_end(c, m);
    }
    c->state = AU_CLIENT_TLS;
    c->tls_want = AU_POLLOUT;
    return au__client_tls_step(c, now, m);
}
/* The proxy's answer to CONNECT so far: head[0..len) with head[len] == 0,
   as read one byte at a time. 0 while the head has not ended (no CRLFCRLF
   before the first NUL); 1 when the status line is "HTTP/1.x 2xx" (then SP
   or CRLF, RFC 9112 section 4), the tunnel is open; -1 for anything else,
   with the status line made printable in why. Pure. */
static int au__proxy_answer(const char *head, size_t len, char *why, size_t cap) {
    const char *eol;
    if (len < 4 || !strstr(head, "\r\n\r\n")) return 0;
    eol = strstr(head, "\r\n");
    if (eol - head >= 12 && strncmp(head, "HTTP/1.", 7) == 0 && head[7] >= '0' && head[7] <= '9' && head[8] == ' ' &&
        head[9] == '2' && head[10] >= '0' && head[10] <= '9' && head[11] >= '0' && head[11] <= '9' &&
        (head[12] == ' ' || head + 12 == eol))
        return 1;
    au__printable(why, cap, head, (size_t)(eol - head));
    return -1;
}
/* HTTP CONNECT: the request out, the proxy's answer in; 200 opens the tunnel */
static int au__client_proxy_step(au_client *c, int64_t now, int revents, au_ws_msg *m) {
    char why[200];
    int r;
    why[0] = 0;
    while (c->proxy_sent < c->proxy_request_len) {
        long w = (long)send((au__socket)c->sock, c->proxy_request + c->proxy_sent, (au__iolen)(c->proxy_request_len - c->proxy_sent),
                            AU__SEND_FLAGS);
        if (w > 0) { c->proxy_sent += (size_t)w; continue; }
        if (w < 0 && AU__WOULD_BLOCK(AU__SOCK_ERRNO())) break;
        if (w < 0 && AU__INTERRUPTED(AU__SOCK_ERRNO())) continue;
        au__sock_strerror(AU__SOCK_ERRNO(), why, sizeof why);
        snprintf(c->error, sizeof c->error, "send to the proxy %s: %.150s", c->peer, why);
        au__client_end(c, AU_CLOSE_ABNORMAL);
        return au__client_emit_end(c, m);
    }
    if (revents & (AU_POLLIN | AU_POLLERR)) {
        for (;;) {
            long n;
            if (c->proxy_head_len + 1 >= sizeof c->proxy_head) {
                snprintf(c->error, sizeof c->error, "the proxy %s sent an answer head over %lu bytes", c->peer,
                         (unsigned long)sizeof c->proxy_head);
                break;
            }
            /* one byte at a time: nothing of the tunnel may be read into the head */
            n = (long)recv((au__socket)c->sock, c->proxy_head + c->proxy_head_len, 1, 0);
            if (n < 0 && AU__WOULD_BLOCK(AU__SOCK_ERRNO())) goto wait;
            if (n < 0 && AU__INTERRUPTED(AU__SOCK_ERRNO())) continue;
            if (n <= 0) {
                snprintf(c->error, sizeof c->error, "the proxy %s closed the connection before answering CONNECT", c->peer);
                break;
            }
            c->proxy_head[++c->proxy_head_len] = 0;
            r = au__proxy_answer(c->proxy_head, c->proxy_head_len, why, sizeof why);
            if (r == 0) continue;
            if (r > 0) {
                c->last_rx = now;
                c->reached[AU_CLIENT_PROXY] = now;
                if (c->tlsb) return au__client_start_tls(c, now, m);
                return au__client_start_ws(c, now, m);
            }
            snprintf(c->error, sizeof c->error, "the proxy %s refused CONNECT: %.150s", c->peer, why);
            break;
        }
        au__client_end(c, AU_CLOSE_ABNORMAL);
        return au__client_emit_end(c, m);
    }
wait:
    if (now < c->deadline) return 0;
    snprintf(c->error, sizeof c->error, "no answer to CONNECT from the proxy %s within %.3g s", c->peer, c->desc.handshake_timeout);
    au__client_end(c, AU_CLOSE_ABNORMAL);
    return au__client_emit_end(c, m);
}
/* the TLS handshake, one step: then the WebSocket handshake over it */
static int au__client_tls_step(au_client *c, int64_t now, au_ws_msg *m) {
    char why[240];
    int want = 0, r;
    why[0] = 0;
    r = c->tlsb->handshake(c->tls_conn, &want, why, sizeof why);
    if (r == AU_OK) {
        int64_t deadline = c->deadline;           /* one budget for TLS and the upgrade */
        c->tls_want = 0;
        c->reached[AU_CLIENT_TLS] = now;
        r = au__client_start_ws(c, now, m);
        if (!r && c->state == AU_CLIENT_HANDSHAKE) c->deadline = deadline;
        return r;
    }
    if (r == AU_EAGAIN) {
        c->tls_want = want ? want : AU_POLLIN;
        if (now < c->deadline) return 0;
        snprintf(c->error, sizeof c->error, "no TLS handshake with %s within %.3g s", c->peer, c->desc.handshake_timeout);
    } else snprintf(c->error, sizeof c->error, "TLS handshake with %.60s failed: %.160s", c->peer, why[0] ? why : "error");
    au__client_end(c, AU_CLOSE_ABNORMAL);
    return au__client_emit_end(c, m);
}
/* bytes from the socket, or through TLS: > 0, 0 when the peer closed, -1 (why set), -2 would block */
static long au__client_read(au_client *c, void *into, size_t room, char *why, size_t cap) {
    long n;
    if (c->tls_conn) {
        int want = 0;
        n = c->tlsb->read(c->tls_conn, into, room, &want, why, cap);
        c->tls_want &= ~AU_POLLOUT;
        if (n >= 0) return n;
        if (n == AU_EAGAIN) { if (want == AU_POLLOUT) c->tls_want |= AU_POLLOUT; return -2; }
        if (!why[0]) snprintf(why, cap, "TLS error");
        return -1;
    }
    for (;;) {
        int e;
        n = (long)recv((au__socket)c->sock, (char *)into, (au__iolen)AU__MIN(room, (size_t)1 << 30), 0);
        if (n >= 0) return n;
        e = AU__SOCK_ERRNO();
        if (AU__WOULD_BLOCK(e)) return -2;
        if (AU__INTERRUPTED(e)) continue;
        au__sock_strerror(e, why, cap);
        return -1;
    }
}
ALWAYSUP_DEF int au_client_poll(au_client *c, int revents, int64_t now, au_ws_msg *m) {
    memset(m, 0, sizeof *m);
    m->reason = "";
    if (c->ended) return au__client_emit_end(c, m);
    if (c->state == AU_CLIENT_IDLE) return 0;
#if defined(AU__ASYNC_RESOLVE)
    if (c->state == AU_CLIENT_RESOLVING) {        /* the resolver thread, done or late */
        au__lookup *l = (au__lookup *)c->lookup;
        struct addrinfo *res = NULL;
        int rc = 0, done;
        const char *host = c->via_proxy ? c->proxy_url.host : c->url.host;
        char why[128];
        AU__MUTEX_LOCK(&l->mu);
        done = l->done;
        if (done) { res = l->res; l->res = NULL; rc = l->rc; }
        AU__MUTEX_UNLOCK(&l->mu);
        (void)revents;
        if (!done && now < c->deadline) return 0;
        au__lookup_drop(c);
        au__client_close_socket(c);               /* the wakeup */
        c->state = AU_CLIENT_CONNECTING;
        if (!done) snprintf(c->error, sizeof c->error, "cannot resolve %.120s: no answer from the name service within %.3g s", host,
                            c->desc.connect_timeout);
        else if (rc != 0 || !res) {
            au__gai_strerror(rc, why, sizeof why);
            snprintf(c->error, sizeof c->error, "cannot resolve %.120s%s: %.100s", host, c->via_proxy ? " (the proxy)" : "", why);
        }
        if (!done || rc != 0 || !res) {
            if (res) freeaddrinfo(res);
            au__client_end(c, AU_CLOSE_ABNORMAL);
            return au__client_emit_end(c, m);
        }
        c->reached[AU_CLIENT_RESOLVING] = now;
        c->addrs = c->next_addr = res;
        au__client_try_next(c, now);
        return c->ended ? au__client_emit_end(c, m) : 0;
    }
#endif
    if (c->state == AU_CLIENT_PROXY) return au__client_proxy_step(c, now, revents, m);
    if (c->state == AU_CLIENT_TLS) return au__client_tls_step(c, now, m);
    if (c->tls_conn && c->tlsb->pending(c->tls_conn)) revents |= AU_POLLIN;    /* decrypted bytes wait in the backend */
    if (c->state == AU_CLIENT_CONNECTING) {
        if (revents & (AU_POLLOUT | AU_POLLERR)) {
            int err = 0;
            socklen_t el = sizeof err;
            char why[128];
            if (getsockopt((au__socket)c->sock, SOL_SOCKET, SO_ERROR, (char *)&err, &el) != 0) err = AU__SOCK_ERRNO();
            if (err == 0) c->reached[AU_CLIENT_CONNECTING] = now;
            if (err == 0 && c->via_proxy) {            /* TCP to the proxy is up: ask it for a tunnel */
                if (c->addrs) freeaddrinfo((struct addrinfo *)c->addrs);
                c->addrs = c->next_addr = NULL;
                c->state = AU_CLIENT_PROXY;
                c->deadline = now + au__ms(c->desc.handshake_timeout);
                c->proxy_sent = c->proxy_head_len = 0;
                return au__client_proxy_step(c, now, AU_POLLOUT, m);
            }
            if (err == 0 && c->tlsb) {                 /* TCP is up: TLS first */
                if (c->addrs) freeaddrinfo((struct addrinfo *)c->addrs);
                c->addrs = c->next_addr = NULL;
                c->deadline = now + au__ms(c->desc.handshake_timeout);
                return au__client_start_tls(c, now, m);
            }
            if (err == 0) {
                if (c->addrs) freeaddrinfo((struct addrinfo *)c->addrs);
                c->addrs = c->next_addr = NULL;
                return au__client_start_ws(c, now, m);
            }
            au__sock_strerror(err, why, sizeof why);
            snprintf(c->error, sizeof c->error, "connect to %s: %s", c->peer, why);
        } else if (now >= c->deadline) {
            snprintf(c->error, sizeof c->error, "connect to %s timed out after %.3g s", c->peer, c->desc.connect_timeout);
        } else return 0;
        au__client_close_socket(c);
        au__client_try_next(c, now);
        return c->ended ? au__client_emit_end(c, m) : 0;
    }
    if ((revents & (AU_POLLOUT | ((c->tls_want & AU_POLLIN) ? AU_POLLIN : 0))) && au__client_flush(c) != 0) {
        au__client_end(c, AU_CLOSE_ABNORMAL);
        return au__client_emit_end(c, m);
    }
    for (;;) {
        if (c->inlen) {
            size_t used = au_ws_recv(&c->ws, c->inp, c->inlen, m);
            c->inp += used;
            c->inlen -= used;
            switch (m->type) {
            case AU_WS_NOTHING: continue;
            case AU_WS_OPENED:
                c->state = AU_CLIENT_OPEN;
                c->reached[AU_CLIENT_HANDSHAKE] = now;
                c->deadline = -1;
                c->last_rx = now;
                return 1;
            case AU_WS_PINGED:
                if (au__client_flush(c) != 0) { au__client_end(c, AU_CLOSE_ABNORMAL); return au__client_emit_end(c, m); }
                return 1;
            case AU_WS_FAILURE:
                snprintf(c->error, sizeof c->error, "%s", m->reason);
                if (c->state == AU_CLIENT_HANDSHAKE) {     /* nothing to close politely */
                    if (c->ws.hs.status != 101) c->http_status = c->ws.hs.status;
                    au__client_end(c, AU_CLOSE_ABNORMAL);
                    return au__client_emit_end(c, m);
                }
                c->end_code = m->code;
                au__client_start_close(c, now);
                return 1;
            case AU_WS_PEER_CLOSED:
                snprintf(c->error, sizeof c->error, "daemon closed the connection with %u%s%s", m->code,
                         m->reason[0] ? " " : "", m->reason);
                c->end_code = m->code;
                if (c->state == AU_CLIENT_CLOSING) return 1;   /* the answer to our close */
                au__client_start_close(c, now);
                return 1;
            default:
                return 1;                              /* MESSAGE, PONGED */
            }
        }
        if (!(revents & (AU_POLLIN | AU_POLLERR))) break;
        {
            size_t room = c->desc.read_size;
            uint8_t *into = au__ws_direct(&c->ws, &room);   /* a big payload: straight into the message */
            long n;
            char why[160];
            why[0] = 0;
            if (!into) { into = c->rbuf; room = c->desc.read_size; }
            n = au__client_read(c, into, room, why, sizeof why);
            if (n > 0) {
                c->inp = into;
                c->inlen = (size_t)n;
                c->last_rx = now;
                c->drained = (size_t)n < room && !(c->tls_conn && c->tlsb->pending(c->tls_conn));
                continue;
            }
            if (n == 0) {
                if (c->state == AU_CLIENT_CLOSING) au__client_end(c, c->end_code ? c->end_code : (unsigned)AU_CLOSE_NORMAL);
                else {
                    snprintf(c->error, sizeof c->error, "%s closed the connection%s", c->peer[0] ? c->peer : "daemon",
                             c->state == AU_CLIENT_HANDSHAKE ? " before answering the handshake" : " without a close frame");
                    au__client_end(c, AU_CLOSE_ABNORMAL);
                }
                return au__client_emit_end(c, m);
            } else {
                if (n == -2) break;                    /* would block */
                if (c->state != AU_CLIENT_CLOSING || !c->error[0])
                    snprintf(c->error, sizeof c->error, "receive from %.60s%s: %.150s", c->peer,
                             c->state == AU_CLIENT_HANDSHAKE ? " during the handshake" : "", why);
                au__client_end(c, c->state == AU_CLIENT_CLOSING && c->end_code ? c->end_code : (unsigned)AU_CLOSE_ABNORMAL);
                return au__client_emit_end(c, m);
            }
        }
    }
    if (c->state == AU_CLIENT_HANDSHAKE && now >= c->deadline) {
        snprintf(c->error, sizeof c->error, "no handshake answer from %s within %.3g s", c->peer, c->desc.handshake_timeout);
        au__client_end(c, AU_CLOSE_ABNORMAL);
        return au__client_emit_end(c, m);
    }
    if (c->state == AU_CLIENT_CLOSING && now >= c->deadline) {
        if (!c->error[0]) snprintf(c->error, sizeof c->error, "closing handshake timed out");
        au__client_end(c, c->end_code ? c->end_code : (unsigned)AU_CLOSE_ABNORMAL);
        return au__client_emit_end(c, m);
    }
    return 0;
}
ALWAYSUP_DEF int au_client_send(au_client *c, unsigned opcode, const void *data, size_t len) {
    int r;
    if (c->state != AU_CLIENT_OPEN) return AU_EINVAL;
    r = au_ws_send(&c->ws, opcode, data, len);
    if (r == AU_OK && !c->corked && au__client_flush(c) != 0) au__client_end(c, AU_CLOSE_ABNORMAL);
    return r;
}
/* au_client_send without the copy: *payload is masked in place and taken over */
static int au__client_send_owned(au_client *c, unsigned opcode, au__buf *payload) {
    int r;
    if (c->state != AU_CLIENT_OPEN) return AU_EINVAL;
    r = au__ws_send_owned(&c->ws, opcode, payload);
    if (r == AU_OK && !c->corked && au__client_flush(c) != 0) au__client_end(c, AU_CLOSE_ABNORMAL);
    return r;
}
ALWAYSUP_DEF void au_client_cork(au_client *c, int on) {
    c->corked = on;
    if (!on && c->state >= AU_CLIENT_HANDSHAKE && !c->ended && au__client_flush(c) != 0) au__client_end(c, AU_CLOSE_ABNORMAL);
}
ALWAYSUP_DEF int au_client_close(au_client *c, unsigned code, const char *reason, int64_t now) {
    if (c->ended) return AU_OK;
    if (c->state == AU_CLIENT_OPEN) {
        int r = au_ws_close(&c->ws, code, reason);
        if (r != AU_OK) return r;
        c->end_code = code ? code : (unsigned)AU_CLOSE_NO_STATUS;
        au__client_start_close(c, now);
        return AU_OK;
    }
    if (c->state == AU_CLIENT_IDLE || c->state == AU_CLIENT_CLOSING) return AU_OK;
    snprintf(c->error, sizeof c->error, "closed before the connection was up");
    au__client_end(c, AU_CLOSE_ABNORMAL);
    return AU_OK;
}
ALWAYSUP_DEF void au_client_drop(au_client *c) {
    if (c->state >= AU_CLIENT_HANDSHAKE && c->sock != AU_INVALID_SOCKET) (void)au__client_flush(c);
    au__client_reset(c);
    c->ended = 0;
}
ALWAYSUP_DEF void au_client_free(au_client *c) {
    au__client_reset(c);
    if (c->tls_ctx) c->tlsb->ctx_free(c->tls_ctx);
    c->tls_ctx = NULL;
    c->tlsb = NULL;
    if (c->proxy_request) {
        memset(c->proxy_request, 0, c->proxy_request_len);   /* it held the credentials */
        ALWAYSUP_FREE(c->proxy_request);
    }
    c->proxy_request = NULL;
    c->via_proxy = 0;
    ALWAYSUP_FREE(c->url_text);
    ALWAYSUP_FREE(c->rbuf);
    c->url_text = NULL;
    c->rbuf = NULL;
#if defined(_WIN32)
    if (c->wsa) WSACleanup();
    c->wsa = 0;
#endif
}

/* ========================================================================
   Layer 4: the bridge, a thin driver around the core: stdio, one au_client,
   the poll loop, the state file and the log. Every decision is the core's.
   ======================================================================== */
#if defined(_WIN32)
static long au__fd_read(au_socket_t fd, void *buf, size_t n) { return (long)recv((SOCKET)fd, (char *)buf, (int)AU__MIN(n, (size_t)1 << 30), 0); }
static long au__fd_write(au_socket_t fd, const void *buf, size_t n) { return (long)send((SOCKET)fd, (const char *)buf, (int)AU__MIN(n, (size_t)1 << 30), 0); }
#  define AU__FD_ERRNO() WSAGetLastError()
#else
static long au__fd_read(au_socket_t fd, void *buf, size_t n) { return (long)read(fd, buf, n); }
static long au__fd_write(au_socket_t fd, const void *buf, size_t n) { return (long)write(fd, buf, n); }
#  define AU__FD_ERRNO() errno
#endif

/* stdin reads start small (memory at rest) and double, up to 1 MiB, while
   reads come back full: big lines then move in few reads */
#define AU__STDIN_MIN ((size_t)32 << 10)
#define AU__STDIN_MAX ((size_t)1 << 20)
#define AU__BACKLOG ((size_t)8 << 20)    /* unsent bytes that pause the reading side */
#define AU__EMIT_BATCH ((size_t)64 << 10)   /* messages this big are written from where they lie */

#define AU__LOG_MAX_SIZE ((uint64_t)10 << 20)
/* the log file moves to FILE.1 once it is full: two files at most, ever */
static void au__log_rotate(au_bridge *b) {
    char older[1040];
    FILE *f;
    snprintf(older, sizeof older, "%s.1", b->d.log_file);
    fclose((FILE *)b->log_file);
    remove(older);                                  /* rename does not replace a file on Windows */
    rename(b->d.log_file, older);
    f = fopen(b->d.log_file, "a");
    b->log_file = f;
    b->log_size = 0;
    if (f && fseek(f, 0, SEEK_END) == 0 && ftell(f) > 0) b->log_size = (uint64_t)ftell(f);   /* the rename failed */
}
static void au__log_line(au_bridge *b, int level, const char *event, const char *msg, size_t len) {
    static const char *const names[5] = { "", "error", "warn", "info", "debug" };
    char line[900], ts[64];
    const char *out = line;
    size_t n;
    if (level < AU_LOG_ERROR || level > AU_LOG_DEBUG || level > b->d.log_level) return;
    if (b->d.log) {
        char text[800];
        snprintf(text, sizeof text, "%.*s", (int)AU__MIN(len, sizeof text - 1), msg);
        b->d.log(b->d.log_user, level, text);
    }
    {
#if defined(_WIN32)
        SYSTEMTIME st;
        GetSystemTime(&st);
        snprintf(ts, sizeof ts, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", st.wYear, st.wMonth, st.wDay, st.wHour,
                 st.wMinute, st.wSecond, st.wMilliseconds);
#else
        struct timespec now;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now.tv_nsec / 1000000));
#endif
    }
    if (b->d.log_format == AU_LOG_JSON) {           /* for log collectors: one object per line */
        au__buf *o = &b->log_buf;
        o->len = 0;
        au__buf_append(o, AU__LIT("{\"time\":\""));
        au__buf_append(o, ts, strlen(ts));
        au__buf_append(o, AU__LIT("\",\"level\":\""));
        au__buf_append(o, names[level], strlen(names[level]));
        au__buf_append(o, AU__LIT("\",\"event\":\""));
        au__buf_append(o, event, strlen(event));
        au__buf_append(o, AU__LIT("\",\"daemon\":\""));
        au__json_escape(o, b->safe_url, strlen(b->safe_url));
        au__buf_append(o, AU__LIT("\",\"message\":\""));
        au__json_escape(o, msg, len);
        au__buf_append(o, AU__LIT("\"}\n"));
        if (o->len < 2 || o->p[o->len - 1] != '\n') return;   /* out of memory: no half a line */
        out = (const char *)o->p;
        n = o->len;
    } else {
        int w = snprintf(line, sizeof line, "%s alwaysup %s: %.*s\n", ts, names[level], (int)AU__MIN(len, (size_t)800), msg);
        n = w < 0 ? 0 : AU__MIN((size_t)w, sizeof line - 1);
    }
    if (!b->d.log) { fwrite(out, 1, n, stderr); fflush(stderr); }   /* the Windows CRT buffers a redirected stderr */
    if (b->log_file && b->log_size > 0 && b->log_size + n > (b->d.log_max_size ? b->d.log_max_size : AU__LOG_MAX_SIZE))
        au__log_rotate(b);
    if (b->log_file) {
        fwrite(out, 1, n, (FILE *)b->log_file);
        fflush((FILE *)b->log_file);
        b->log_size += n;
    }
}
static void au__blog(au_bridge *b, int level, const char *event, const char *fmt, ...) AU__PRINTF(4, 5);
static void au__blog(au_bridge *b, int level, const char *event, const char *fmt, ...) {
    char msg[768];
    int n;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n > 0) au__log_line(b, level, event, msg, AU__MIN((size_t)n, sizeof msg - 1));
}

/* ---- stdout: only whole JSON-RPC lines ever go there ---- */
static void au__stdout_closed(au_bridge *b) {
    b->stdout_dead = 1;                  /* the core hears of it once the current actions are taken */
    b->big = NULL;
}
/* writes a big message's rest (and its newline) from where it lies */
static void au__flush_big(au_bridge *b) {
    while (b->big) {
        long w;
#if !defined(_WIN32)
        struct iovec iov[2];
        int k = 0;
        if (b->big_off < b->big_len) { iov[k].iov_base = (void *)(uintptr_t)(b->big + b->big_off); iov[k++].iov_len = b->big_len - b->big_off; }
        iov[k].iov_base = (void *)(uintptr_t)"\n";
        iov[k++].iov_len = 1;
        w = (long)writev(b->d.out_fd, iov, k);
#else
        w = b->big_off < b->big_len ? au__fd_write(b->d.out_fd, b->big + b->big_off, b->big_len - b->big_off)
                                    : au__fd_write(b->d.out_fd, "\n", 1);
#endif
        if (w > 0) {
            b->big_off += (size_t)w;
            if (b->big_off > b->big_len) b->big = NULL;     /* the newline went too */
            continue;
        }
        if (w < 0 && AU__INTERRUPTED(AU__FD_ERRNO())) continue;
        if (w < 0 && AU__WOULD_BLOCK(AU__FD_ERRNO())) return;
        au__stdout_closed(b);
    }
}
static void au__flush_stdout(au_bridge *b) {
    while (b->out.len > b->out.off) {
        long w = au__fd_write(b->d.out_fd, b->out.p + b->out.off, b->out.len - b->out.off);
        if (w > 0) { b->out.off += (size_t)w; continue; }
        if (w < 0 && AU__INTERRUPTED(AU__FD_ERRNO())) continue;
        if (w < 0 && AU__WOULD_BLOCK(AU__FD_ERRNO())) return;
        au__stdout_closed(b);
        break;
    }
    au__buf_clear(&b->out);
    au__flush_big(b);
}
/* the daemon connection is about to go, and with it the memory a pending
   big message lies in: copy what is left */
static void au__own_output(au_bridge *b) {
    if (!b->big) return;
    au__buf_append(&b->out, b->big + b->big_off, b->big_len - AU__MIN(b->big_off, b->big_len));
    if (b->big_off <= b->big_len) au__buf_append(&b->out, AU__LIT("\n"));
    b->big = NULL;
}
/* stdout cannot take more now: stop producing for it */
static int au__stdout_blocked(const au_bridge *b) {
    return b->big != NULL || b->out.len - b->out.off >= AU__BACKLOG;
}
/* Small messages gather in b->out and go out in one write at the end of the
   step; a big one is written straight from where it lies. The core's
   STDOUT data for a daemon message is that message itself, which stays in
   the client's buffer until the client is polled again, and it is not
   polled while a big message waits: written from where it lies. */
static void au__emit(au_bridge *b, const char *p, size_t n) {
    if (b->stdout_dead) return;
    if (n >= AU__EMIT_BATCH && (b->out.len > b->out.off || b->big)) au__flush_stdout(b);
    if (n >= AU__EMIT_BATCH && b->out.len == b->out.off && !b->big && p >= b->msg_p && p + n <= b->msg_end) {
        b->big = (const uint8_t *)p;
        b->big_len = n;
        b->big_off = 0;
        au__flush_big(b);
        return;
    }
    au__buf_append(&b->out, p, n);
    au__buf_append(&b->out, AU__LIT("\n"));
}

/* ---- the state file: the last InitializeResult seen from this URL, so a
   cold start can answer initialize with the daemon's real capabilities ---- */
static int au__state_path(const au_bridge *b, char *out, size_t cap, size_t *dir_len) {
    const char *dir = b->d.state_dir;
    char base[512];
    if (b->d.no_mcp || (dir && !dir[0])) return 0;
    if (dir) snprintf(base, sizeof base, "%s", dir);
    else {
#if defined(_WIN32)
        const char *la = getenv("LOCALAPPDATA");
        if (!la || !la[0]) return 0;
        snprintf(base, sizeof base, "%s\\alwaysup", la);
#else
        const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
        if (xdg && xdg[0] == '/') snprintf(base, sizeof base, "%s/alwaysup", xdg);
        else if (home && home[0]) snprintf(base, sizeof base, "%s/.local/state/alwaysup", home);
        else return 0;
#endif
    }
    *dir_len = strlen(base);
    snprintf(out, cap, "%s/init-%08x.json", base, (unsigned)au__fnv(b->safe_url, strlen(b->safe_url)));
    return 1;
}
static void au__state_load(au_bridge *b, au__buf *out) {
    char path[600], chunk[4096];
    size_t dl, n;
    FILE *f;
    out->off = out->len = 0;
    if (!au__state_path(b, path, sizeof path, &dl) || !(f = fopen(path, "rb"))) return;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && out->len < ((size_t)1 << 20)) au__buf_append(out, chunk, n);
    fclose(f);
}
static void au__state_save(au_bridge *b, const char *data, size_t len) {
    char path[600], tmp[640];
    size_t dl, i;
    FILE *f;
    if (!au__state_path(b, path, sizeof path, &dl)) return;
    for (i = 1; i <= dl; i++) {                        /* mkdir -p the directory */
        if (i == dl || path[i] == '/' || path[i] == '\\') {
            char ch = path[i];
            path[i] = 0;
#if defined(_WIN32)
            CreateDirectoryA(path, NULL);
#else
            mkdir(path, 0700);
#endif
            path[i] = ch;
        }
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "wb"))) return;
    fwrite(data, 1, len, f);
    if (fclose(f) != 0) { remove(tmp); return; }
#if defined(_WIN32)
    MoveFileExA(tmp, path, MOVEFILE_REPLACE_EXISTING);
#else
    rename(tmp, path);
#endif
}

/* ---- carrying out what the core asks ---- */
static void au__send_daemon(au_bridge *b, const char *data, size_t len) {
    int sent;
    if (len >= AU__EMIT_BATCH && data == (const char *)b->lines.buf.p) {
        b->lines.buf.len = len;                    /* a big line: its buffer goes to the socket as is */
        sent = au__client_send_owned(&b->client, AU_OP_TEXT, &b->lines.buf);
        b->lines.clear = 0;
    } else sent = au_client_send(&b->client, AU_OP_TEXT, data, len);
    /* the connection ended under us: the DISCONNECTED event follows */
    if (sent != AU_OK) au__blog(b, AU_LOG_DEBUG, "send_failed", "send failed: the connection is going down");
}
static void au__actions(au_bridge *b) {
    au_action a;
    for (;;) {
        while (au_core_next_action(&b->core, &a)) {
            switch (a.type) {
            case AU_ACT_STDOUT: au__emit(b, a.data, a.len); break;
            case AU_ACT_SEND: au__send_daemon(b, a.data, a.len); break;
            case AU_ACT_PING: au_client_send(&b->client, AU_OP_PING, a.data, a.len); break;
            case AU_ACT_CONNECT:
                if (b->proxy_shown[0] && !b->proxy_logged) {
                    au__blog(b, AU_LOG_INFO, "via_proxy", "connecting to %s via proxy %s", b->safe_url, b->proxy_shown);
                    b->proxy_logged = 1;
                }
                if (b->client.tlsb && b->d.tls.insecure)
                    au__blog(b, AU_LOG_WARN, "insecure", "TLS verification is off (insecure): the daemon's certificate and name are not checked");
                au_client_connect(&b->client, b->now);
                break;
            case AU_ACT_CLOSE: au_client_close(&b->client, a.code, NULL, b->now); break;
            case AU_ACT_DROP: au__own_output(b); au_client_drop(&b->client); break;
            case AU_ACT_SAVE: au__state_save(b, a.data, a.len); break;
            case AU_ACT_LOG: au__log_line(b, a.level, a.event ? a.event : "core", a.data, a.len); break;
            default: break;
            }
        }
        if (!b->stdout_dead || b->told_gone) return;
        b->told_gone = 1;                          /* a write failed meanwhile: the client is gone */
        au_core_client_gone(&b->core, b->now);
    }
}
/* the client reads slowly: keepalive waits while the daemon is not read */
static void au__sync_pause(au_bridge *b) {
    int blocked = au__stdout_blocked(b) && b->client.state == AU_CLIENT_OPEN;
    if (blocked == b->paused) return;
    b->paused = blocked;
    au_core_pause(&b->core, blocked, b->now);
    au__actions(b);
}

/* ---- stdin ---- */
static int au__takes_stdin(const au_bridge *b) {
    return au_core_wants_client(&b->core) && au_client_unsent(&b->client) < AU__BACKLOG;
}
static void au__process_stdin(au_bridge *b) {
    while (b->ipos < b->ilen && au__takes_stdin(b)) {
        const char *line;
        size_t ll;
        int kind;
        b->ipos += au_lines_feed(&b->lines, b->ibuf + b->ipos, b->ilen - b->ipos, &kind, &line, &ll);
        if (kind == AU_LINE_OK) au_core_client_line(&b->core, line, ll, b->now);
        else if (kind == AU_LINE_TOO_LONG) au_core_client_too_long(&b->core, line, ll, b->lines.max_line, b->now);
        au__actions(b);
        if (b->lines.clear) { au__buf_clear(&b->lines.buf); b->lines.clear = 0; }   /* a big line's memory back now */
    }
    if (b->stdin_eof && b->ipos >= b->ilen && !b->told_eof && !au_core_finished(&b->core)) {
        const char *line;
        size_t ll;
        b->told_eof = 1;
        if (au_lines_finish(&b->lines, &line, &ll) == AU_LINE_OK) {
            au_core_client_line(&b->core, line, ll, b->now);
            au__actions(b);
        }
        au_core_client_eof(&b->core, b->now);
        au__actions(b);
    }
}
static void au__read_stdin(au_bridge *b) {
    long n;
    if (b->ipos < b->ilen || b->stdin_eof) return;
    if (b->ilen == b->ibuf_cap && b->ibuf_cap < AU__STDIN_MAX) {    /* the last read was full */
        uint8_t *bigger = (uint8_t *)ALWAYSUP_REALLOC(b->ibuf, b->ibuf_cap * 2);
        if (bigger) { b->ibuf = bigger; b->ibuf_cap *= 2; }
    }
    n = au__fd_read(b->d.in_fd, b->ibuf, b->ibuf_cap);
    if (n > 0) { b->ipos = 0; b->ilen = (size_t)n; return; }
    if (n < 0 && (AU__INTERRUPTED(AU__FD_ERRNO()) || AU__WOULD_BLOCK(AU__FD_ERRNO()))) return;
    b->stdin_eof = 1;                          /* EOF, or an error, which ends the input just the same */
    b->ipos = b->ilen = 0;
}

/* ---- the daemon connection ---- */
static int au__bridge_client(au_bridge *b, int k);
static void au__pump_client(au_bridge *b, int revents) {
    au_ws_msg m;
    int budget = 4096;                           /* keep stdin and timers fair under a flood */
    int64_t rx = b->client.last_rx;
    while (budget-- > 0) {
        if (au__stdout_blocked(b)) {
            if (b->client.state == AU_CLIENT_OPEN) break;   /* the client reads slowly: so do we */
            au__own_output(b);   /* connecting or closing is never held up, and may free what a big message lies in */
        }
        if (!au_client_poll(&b->client, revents, b->now, &m)) break;
        if (b->client.drained) revents &= ~(AU_POLLIN | AU_POLLERR);   /* empty until the next poll */
        switch (m.type) {
        case AU_WS_OPENED: {
            char peer[96];
            b->opened = 1;
            snprintf(peer, sizeof peer, "%s%s", b->client.peer, b->client.ws.subprotocol[0] ? ", subprotocol accepted" : "");
            au_core_daemon_up(&b->core, peer, b->now);
            break;
        }
        case AU_WS_MESSAGE:
            b->msg_p = (const char *)m.data;     /* STDOUT data may point into m until the next poll */
            b->msg_end = b->msg_p + m.len;
            au_core_daemon_message(&b->core, b->msg_p, m.len, m.opcode == AU_OP_BINARY, b->now);
            au__actions(b);
            b->msg_p = b->msg_end = NULL;
            continue;
        case AU_WS_FAILURE:
        case AU_WS_PEER_CLOSED: {
            char why[256];
            au__blog(b, AU_LOG_DEBUG, "ws_failure", "%s", m.reason);
            snprintf(why, sizeof why, "%s", b->client.error);
            au__own_output(b);
            au_client_drop(&b->client);
            au_core_daemon_down(&b->core, why, b->now);
            break;
        }
        case AU_WS_DISCONNECTED:
            au_core_daemon_down(&b->core, m.reason, b->now);
            if (!b->opened && b->num_urls > 1 && !au_core_finished(&b->core)) {   /* a failed attempt: the next daemon */
                au__actions(b);                           /* its log lines name the URL that failed */
                int next = (b->url_at + 1) % b->num_urls;
                if (au__bridge_client(b, next) == AU_OK) au__blog(b, AU_LOG_INFO, "next_url", "trying the next daemon URL: %s", b->safe_url);
                else au__blog(b, AU_LOG_ERROR, "bad_url", "cannot use the next daemon URL: %s", b->error);
            }
            b->opened = 0;
            break;
        default:
            break;                               /* pings are answered inside; pongs only prove life */
        }
        au__actions(b);
    }
    if (b->client.last_rx != rx && b->client.state >= AU_CLIENT_OPEN) {   /* any frame is life */
        au_core_daemon_alive(&b->core, b->client.last_rx);
        au__actions(b);
    }
}

/* ---- public bridge API ---- */
#if !defined(_WIN32)
static int au__is_pipe_or_socket(au_socket_t fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}
#endif
/* by name: localhost, 127.0.0.0/8, ::1 */
static int au__host_is_loopback(const char *host) {
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "0:0:0:0:0:0:0:1") == 0 || strcmp(host, "::ffff:127.0.0.1") == 0;
}
/* curl's reading of the environment: which proxy, if any, for this URL */
static const char *au__env_proxy(const au_url *u) {
    const char *p = NULL, *no;
    if (u->unix_socket || au__host_is_loopback(u->host)) return NULL;
    if (u->tls) { p = getenv("https_proxy"); if (!p || !*p) p = getenv("HTTPS_PROXY"); }
    else { p = getenv("http_proxy"); if (!p || !*p) p = getenv("HTTP_PROXY"); }
    if (!p || !*p) { p = getenv("ALL_PROXY"); if (!p || !*p) p = getenv("all_proxy"); }
    if (!p || !*p) return NULL;
    no = getenv("NO_PROXY");
    if (!no || !*no) no = getenv("no_proxy");
    while (no && *no) {                                   /* "*", host names and domain suffixes */
        size_t n, hl = strlen(u->host);
        const char *e;
        while (*no == ' ' || *no == ',') no++;
        e = no + strcspn(no, ", ");
        n = (size_t)(e - no);
        if (n == 1 && *no == '*') return NULL;
        if (n && *no == '.') { no++; n--; }
        if (n && (hl == n || (hl > n && u->host[hl - n - 1] == '.')) && au__ieq(u->host + hl - n, n, no)) return NULL;
        no = e;
    }
    return p;
}
/* the au_client for urls[k], in place of the current one */
static int au__bridge_client(au_bridge *b, int k) {
    au_client_desc cd;
    int r;
    const char *proxy = b->d.proxy;
    au_url u;
    memset(&cd, 0, sizeof cd);
    if (b->client.rbuf) au_client_free(&b->client);
    cd.url = b->urls[k];
    r = au_url_parse(&u, cd.url, strlen(cd.url));
    if ((r == AU_OK || r == AU_EURL_TLS) && !proxy) proxy = au__env_proxy(&u);
    cd.proxy = proxy && proxy[0] ? proxy : NULL;
    cd.proxy_auth = b->d.proxy_auth;
    cd.subprotocols = b->protos;
    cd.num_subprotocols = b->num_protos;
    cd.headers = b->d.headers;
    cd.num_headers = b->d.num_headers;
    cd.max_message = b->d.max_message;
    cd.connect_timeout = b->d.connect_timeout;
    cd.handshake_timeout = b->d.handshake_timeout;
    cd.close_timeout = b->d.close_timeout;
    cd.tls = b->d.tls_backend;
    cd.tls_opts = b->d.tls;
    r = au_client_init(&b->client, &cd);
    if (r != AU_OK) {
        char shown[120];
        au__printable(shown, sizeof shown, cd.url, strlen(cd.url));
        if (r == AU_ETLS) snprintf(b->error, sizeof b->error, "TLS setup failed: %.200s", b->client.error);
        else if (cd.proxy && r == AU_EINVAL) snprintf(b->error, sizeof b->error, "bad proxy for '%s': not http://host[:port]", shown);
        else if (r == AU_EURL_UNIX && b->client.error[0]) snprintf(b->error, sizeof b->error, "cannot use '%s': %.100s", shown, b->client.error);
        else snprintf(b->error, sizeof b->error, "bad URL '%s': %s", shown, au_strerror(r));
        au_client_free(&b->client);
        return r;
    }
    /* the URL as logged: no query, which may hold a token */
    if (b->client.url.unix_socket)
        snprintf(b->safe_url, sizeof b->safe_url, "ws+unix:%.107s:%.*s%s", b->client.url.unix_path,
                 (int)AU__MIN(strcspn(b->client.url.path, "?"), 150), b->client.url.path, strchr(b->client.url.path, '?') ? "?..." : "");
    else
        snprintf(b->safe_url, sizeof b->safe_url, "%s://%s%s%s:%u%.*s%s", b->client.url.tls ? "wss" : "ws", b->client.url.ipv6 ? "[" : "",
                 b->client.url.host, b->client.url.ipv6 ? "]" : "", (unsigned)b->client.url.port,
                 (int)strcspn(b->client.url.path, "?"), b->client.url.path, strchr(b->client.url.path, '?') ? "?..." : "");
    b->url_at = k;
    b->opened = 0;
    b->proxy_logged = 0;
    b->proxy_shown[0] = 0;
    if (b->client.via_proxy)
        snprintf(b->proxy_shown, sizeof b->proxy_shown, "%s%s%s:%u", b->client.proxy_url.ipv6 ? "[" : "", b->client.proxy_url.host,
                 b->client.proxy_url.ipv6 ? "]" : "", (unsigned)b->client.proxy_url.port);
    return AU_OK;
}
ALWAYSUP_DEF int au_bridge_init(au_bridge *b, const au_bridge_desc *desc) {
    au_core_desc core;
    au__buf remembered;
    int r, i;
    memset(b, 0, sizeof *b);
    b->in_flags = b->out_flags = -1;
    if (!desc || !desc->url || !desc->url[0]) { snprintf(b->error, sizeof b->error, "no daemon URL given"); return AU_EINVAL; }
    b->d = *desc;
    if (!b->d.max_message) b->d.max_message = AU_DEFAULT_MAX_MESSAGE;
    if (b->d.max_message > (uint64_t)SIZE_MAX) b->d.max_message = (uint64_t)SIZE_MAX;
    if (b->d.log_level <= 0) b->d.log_level = AU_LOG_INFO;
    if (b->d.daemon_protocol != AU_DIALECT_MCP && b->d.daemon_protocol != AU_DIALECT_EXAI) {
        snprintf(b->error, sizeof b->error, "unknown daemon protocol %d", b->d.daemon_protocol);
        return AU_EINVAL;
    }
    if (b->d.daemon_protocol == AU_DIALECT_EXAI && b->d.hello) {
        snprintf(b->error, sizeof b->error, "the EX-AI protocol sends its own hello (session id and token): drop the hello option");
        return AU_EINVAL;
    }
    if (b->d.hello) {
        au_jsonrpc j;
        if (au_jsonrpc_scan(b->d.hello, strlen(b->d.hello), &j) < 0) {
            snprintf(b->error, sizeof b->error, "the hello message is not JSON: %s at byte %lu", j.problem,
                     (unsigned long)j.problem_at);
            return AU_EINVAL;
        }
    }
    if (b->d.out_fd == 0) b->d.out_fd = 1;
    /* subprotocols: NULL offers "mcp", "" none, "a, b" both */
    snprintf(b->proto_buf, sizeof b->proto_buf, "%s", desc->subprotocol ? desc->subprotocol
                                                      : desc->daemon_protocol == AU_DIALECT_EXAI ? "" : "mcp");
    {
        char *p = b->proto_buf;
        while (*p && b->num_protos < 8) {
            char *e;
            while (*p == ' ' || *p == ',') p++;
            if (!*p) break;
            b->protos[b->num_protos++] = p;
            e = p;
            while (*e && *e != ',') e++;
            p = *e ? e + 1 : e;
            *e = 0;
            while (e > b->protos[b->num_protos - 1] && e[-1] == ' ') *--e = 0;
        }
        for (i = 0; i < b->num_protos; i++)
            if (au_subprotocol_check(b->protos[i])) {
                snprintf(b->error, sizeof b->error, "subprotocol '%s' is not a valid token", b->protos[i]);
                return AU_EHEADER;
            }
    }
    for (i = 0; i < desc->num_headers; i++) {
        const char *why = au_header_check(desc->headers[i].name, desc->headers[i].value);
        if (why) {
            char name[64];
            au__printable(name, sizeof name, desc->headers[i].name ? desc->headers[i].name : "",
                          desc->headers[i].name ? strlen(desc->headers[i].name) : 0);
            snprintf(b->error, sizeof b->error, "header '%s' refused: %s", name, why);
            return AU_EHEADER;
        }
    }
    b->urls[0] = desc->url;
    b->num_urls = 1;
    for (i = 0; i < desc->num_more_urls && b->num_urls < 16; i++)
        if (desc->more_urls[i] && desc->more_urls[i][0]) b->urls[b->num_urls++] = desc->more_urls[i];
    for (i = b->num_urls - 1; i >= 0; i--) {              /* every URL is checked at start; the first stays */
        r = au__bridge_client(b, i);
        if (r != AU_OK) return r;
    }
    memset(&core, 0, sizeof core);
    core.daemon_name = b->safe_url;
    core.setup_timeout = b->d.setup_timeout;
    core.backoff = b->d.backoff;
    core.healthy_after = b->d.healthy_after;
    core.ping_interval = b->d.ping_interval;
    core.ping_timeout = b->d.ping_timeout;
    core.queue_timeout = b->d.queue_timeout;
    core.queue_max_bytes = b->d.queue_max_bytes;
    core.queue_max_count = b->d.queue_max_count;
    core.max_pending = b->d.max_pending;
    core.drain_timeout = b->d.drain_timeout;
    core.close_timeout = b->d.close_timeout;
    core.no_mcp = b->d.no_mcp;
    core.init_grace = b->d.init_grace;
    core.list_changed = b->d.list_changed;
    core.hello = b->d.hello;
    core.hello_ack_timeout = b->d.hello_ack_timeout;
    core.dialect = b->d.daemon_protocol;
    core.exai = b->d.exai;
    core.no_resend = b->d.no_resend;
    core.log_level = b->d.log_level;
    memset(&remembered, 0, sizeof remembered);
    if (b->d.daemon_protocol == AU_DIALECT_MCP) au__state_load(b, &remembered);   /* EXAI answers initialize itself */
    core.remembered = (const char *)remembered.p;
    core.remembered_len = remembered.len;
    b->now = au_now_ms();
    r = au_core_init(&b->core, &core, b->now);
    au__buf_free(&remembered);
    if (r != AU_OK) { snprintf(b->error, sizeof b->error, "%s", au_strerror(r)); au_bridge_free(b); return r; }
    au_lines_init(&b->lines, (size_t)b->d.max_message);
    b->ibuf = (uint8_t *)ALWAYSUP_REALLOC(NULL, AU__STDIN_MIN);
    b->ibuf_cap = AU__STDIN_MIN;
    if (!b->ibuf) { snprintf(b->error, sizeof b->error, "out of memory"); au_bridge_free(b); return AU_ENOMEM; }
    if (b->d.log_file && b->d.log_file[0]) {
        b->log_file = fopen(b->d.log_file, "a");
        if (b->log_file && fseek((FILE *)b->log_file, 0, SEEK_END) == 0 && ftell((FILE *)b->log_file) > 0)
            b->log_size = (uint64_t)ftell((FILE *)b->log_file);
        if (!b->log_file) {
            snprintf(b->error, sizeof b->error, "cannot open log file '%s': %s", b->d.log_file, strerror(errno));
            au_bridge_free(b);
            return AU_EINVAL;
        }
    }
#if !defined(_WIN32)
    /* pipes and sockets become non-blocking (ours alone); a terminal or file stays as is */
    if (au__is_pipe_or_socket(b->d.in_fd)) {
        b->in_flags = fcntl(b->d.in_fd, F_GETFL, 0);
        if (b->in_flags >= 0) fcntl(b->d.in_fd, F_SETFL, b->in_flags | O_NONBLOCK);
    }
    if (b->d.out_fd != b->d.in_fd && au__is_pipe_or_socket(b->d.out_fd)) {
        b->out_flags = fcntl(b->d.out_fd, F_GETFL, 0);
        if (b->out_flags >= 0) fcntl(b->d.out_fd, F_SETFL, b->out_flags | O_NONBLOCK);
    }
#  if defined(F_SETPIPE_SZ)
    /* 64 KiB pipes make a big message cost dozens of wakeups each way */
    fcntl(b->d.in_fd, F_SETPIPE_SZ, 1 << 20);
    fcntl(b->d.out_fd, F_SETPIPE_SZ, 1 << 20);
#  endif
#endif
    if (desc->num_headers > 0 && !au__host_is_loopback(b->client.url.host))
        au__blog(b, AU_LOG_WARN, "plain_headers", "%d header%s will be sent over plain ws:// to %s, which is not a loopback address: anyone "
                 "on the network path can read them; keep ws:// on loopback or put a TLS proxy in front",
                 desc->num_headers, desc->num_headers == 1 ? "" : "s", b->client.url.host);
    return AU_OK;
}
ALWAYSUP_DEF int au_bridge_pollfds(au_bridge *b, au_pollfd *fds, int max) {
    int n = 0, ev;
    if (b->finished && !(b->out.len > b->out.off || b->big)) return 0;
    if (n < max && !b->stdin_eof && b->ipos >= b->ilen && au__takes_stdin(b)) {
        fds[n].fd = b->d.in_fd; fds[n].events = AU_POLLIN; fds[n].revents = 0; n++;
    }
    if (n < max && (b->out.len > b->out.off || b->big)) {
        fds[n].fd = b->d.out_fd; fds[n].events = AU_POLLOUT; fds[n].revents = 0; n++;
    }
    ev = au_client_events(&b->client);
    if (au__stdout_blocked(b)) ev &= ~AU_POLLIN;   /* the client reads slowly: so do we */
    if (n < max && ev && b->client.sock != AU_INVALID_SOCKET) {
        fds[n].fd = b->client.sock; fds[n].events = ev; fds[n].revents = 0; n++;
    }
    return n;
}
ALWAYSUP_DEF int au_bridge_timeout(au_bridge *b) {
    int64_t now = au_now_ms(), next = -1, t;
#define AU__SOON(x) do { t = (x); if (t >= 0 && (next < 0 || t < next)) next = t; } while (0)
    if (b->finished) AU__SOON(b->done_by);
    else {
        if (b->ipos < b->ilen && au__takes_stdin(b)) return 0;
        if (b->stdin_eof && !b->told_eof && b->ipos >= b->ilen) return 0;
        AU__SOON(au_core_deadline(&b->core));
        if (!au__stdout_blocked(b) || b->client.state != AU_CLIENT_OPEN) AU__SOON(au_client_deadline(&b->client));
    }
#undef AU__SOON
    if (next < 0) return -1;
    return next <= now ? 0 : (int)AU__MIN(next - now, (int64_t)0x7FFFFFFF);
}
ALWAYSUP_DEF int au_bridge_step(au_bridge *b, const au_pollfd *fds, int n) {
    int i, in_ev = 0, out_ev = 0, sock_ev = 0;
    b->now = au_now_ms();
    for (i = 0; i < n; i++) {
        if (!fds[i].revents) continue;
        if (fds[i].fd == b->client.sock && b->client.sock != AU_INVALID_SOCKET) sock_ev |= fds[i].revents;
        else {
            if (fds[i].fd == b->d.in_fd && (fds[i].events & AU_POLLIN)) in_ev = 1;
            if (fds[i].fd == b->d.out_fd && (fds[i].events & AU_POLLOUT)) out_ev = 1;
        }
    }
    if (out_ev) au__flush_stdout(b);
    if (!b->finished) {
        if (in_ev) au__read_stdin(b);
        au_client_cork(&b->client, 1);
        au__process_stdin(b);
        au__pump_client(b, sock_ev);
        au__sync_pause(b);
        au_core_timeout(&b->core, b->now);
        au__actions(b);
        au__process_stdin(b);                     /* room may have opened for buffered lines */
        au_client_cork(&b->client, 0);            /* every frame of this step, in as few sends as possible */
    }
    if (b->out.len > b->out.off) au__flush_stdout(b);      /* and every small message, in one write */
    if (b->stdout_dead && !b->told_gone) au__actions(b);
    if (!b->finished && au_core_finished(&b->core)) {
        b->finished = 1;
        b->done_by = b->now + au__ms(b->core.d.close_timeout);   /* what stdout still holds, briefly */
        au__own_output(b);
        au_client_drop(&b->client);
    }
    if (b->finished) return !b->stdout_dead && (b->out.len > b->out.off || b->big) && b->now < b->done_by;
    return 1;
}
ALWAYSUP_DEF void au_bridge_stop(au_bridge *b) {
    b->now = au_now_ms();
    if (b->finished) { b->done_by = b->now; return; }
    au_core_stop(&b->core, b->now);
    au__actions(b);
    au__flush_stdout(b);
}
ALWAYSUP_DEF void au_bridge_free(au_bridge *b) {
    b->big = NULL;
    au_core_free(&b->core);
    au_client_free(&b->client);
    au_lines_free(&b->lines);
    au__buf_free(&b->out);
    ALWAYSUP_FREE(b->ibuf);
    b->ibuf = NULL;
    if (b->log_file) fclose((FILE *)b->log_file);
    b->log_file = NULL;
    au__buf_free(&b->log_buf);
#if !defined(_WIN32)
    if (b->in_flags >= 0) fcntl(b->d.in_fd, F_SETFL, b->in_flags);
    if (b->out_flags >= 0) fcntl(b->d.out_fd, F_SETFL, b->out_flags);
#endif
    b->in_flags = b->out_flags = -1;
}

/* ---- au_bridge_run: the whole shim ---- */
/* The one piece of process-wide state: a signal (or a console event) can
   only reach the loop through a socket or pipe kept here. */
#if defined(_WIN32)
static SOCKET au__wake_sock = INVALID_SOCKET;
static HANDLE au__done_event;
static BOOL WINAPI au__on_console(DWORD type) {
    if (au__wake_sock != INVALID_SOCKET) send(au__wake_sock, "s", 1, 0);
    /* a closing console ends the process when this returns: give the close frame a moment */
    if ((type == CTRL_CLOSE_EVENT || type == CTRL_LOGOFF_EVENT || type == CTRL_SHUTDOWN_EVENT) && au__done_event)
        WaitForSingleObject(au__done_event, 3000);
    return TRUE;
}
/* A connected pair of loopback sockets; pipes and consoles cannot be
   polled on Windows, sockets can. */
static int au__socket_pair(SOCKET sv[2]) {
    struct sockaddr_in a, mine, peer;
    int al = sizeof a, ml = sizeof mine, pl = sizeof peer, one = 1;
    SOCKET l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    sv[0] = sv[1] = INVALID_SOCKET;
    if (l == INVALID_SOCKET) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al)) goto fail;
    sv[0] = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (sv[0] == INVALID_SOCKET || connect(sv[0], (struct sockaddr *)&a, sizeof a)) goto fail;
    sv[1] = accept(l, (struct sockaddr *)&peer, &pl);
    /* only our own other end may be on this pair */
    if (sv[1] == INVALID_SOCKET || getsockname(sv[0], (struct sockaddr *)&mine, &ml) || mine.sin_port != peer.sin_port) goto fail;
    closesocket(l);
    setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    return 0;
fail:
    closesocket(l);
    if (sv[0] != INVALID_SOCKET) closesocket(sv[0]);
    if (sv[1] != INVALID_SOCKET) closesocket(sv[1]);
    sv[0] = sv[1] = INVALID_SOCKET;
    return -1;
}
typedef struct au__pump { HANDLE h; SOCKET s; HANDLE thread; } au__pump;
static DWORD WINAPI au__pump_in(LPVOID arg) {           /* stdin -> socket */
    au__pump *p = (au__pump *)arg;
    char buf[65536];
    DWORD n;
    while (ReadFile(p->h, buf, sizeof buf, &n, NULL) && n > 0) {
        DWORD off = 0;
        while (off < n) {
            int w = send(p->s, buf + off, (int)(n - off), 0);
            if (w <= 0) goto done;
            off += (DWORD)w;
        }
    }
done:
    shutdown(p->s, SD_SEND);                            /* the bridge reads EOF */
    return 0;
}
static DWORD WINAPI au__pump_out(LPVOID arg) {          /* socket -> stdout */
    au__pump *p = (au__pump *)arg;
    char buf[65536];
    int n;
    while ((n = recv(p->s, buf, sizeof buf, 0)) > 0) {
        DWORD off = 0, w;
        while (off < (DWORD)n) {
            if (!WriteFile(p->h, buf + off, (DWORD)n - off, &w, NULL)) goto done;
            off += w;
        }
    }
done:
    closesocket(p->s);                                  /* the bridge's next send fails: client gone */
    p->s = INVALID_SOCKET;
    return 0;
}
#else
static volatile sig_atomic_t au__signal_count;
static int au__signal_pipe = -1;
static void au__on_signal(int sig) {
    int e = errno;
    (void)sig;
    au__signal_count++;
    if (au__signal_pipe >= 0) { ssize_t w = write(au__signal_pipe, "s", 1); (void)w; }
    errno = e;
}
#endif
ALWAYSUP_DEF int au_bridge_run(const au_bridge_desc *desc) {
    au_bridge *b = (au_bridge *)ALWAYSUP_REALLOC(NULL, sizeof *b);
    au_bridge_desc d;
    au_socket_t wake = AU_INVALID_SOCKET;
    int code;
#if defined(_WIN32)
    SOCKET wp[2] = { INVALID_SOCKET, INVALID_SOCKET }, ip[2] = { INVALID_SOCKET, INVALID_SOCKET },
           op[2] = { INVALID_SOCKET, INVALID_SOCKET };
    au__pump in_pump, out_pump;
    WSADATA wsa;
#else
    struct sigaction sa, old_int, old_term, old_pipe;
    int sp[2] = { -1, -1 };
#endif
    if (!b) { fputs("alwaysup: out of memory\n", stderr); return 2; }
    if (!desc) { ALWAYSUP_FREE(b); return 2; }
    d = *desc;
#if defined(_WIN32)
    memset(&in_pump, 0, sizeof in_pump);
    memset(&out_pump, 0, sizeof out_pump);
    WSAStartup(MAKEWORD(2, 2), &wsa);
    /* stdin and stdout reach the loop as sockets, pumped by two threads */
    if (d.in_fd == 0 && au__socket_pair(ip) == 0) {
        in_pump.h = GetStdHandle(STD_INPUT_HANDLE);
        in_pump.s = ip[1];
        in_pump.thread = CreateThread(NULL, 0, au__pump_in, &in_pump, 0, NULL);
        d.in_fd = (au_socket_t)ip[0];
        au__sock_nonblock(ip[0]);
    }
    if (d.out_fd == 0 && au__socket_pair(op) == 0) {
        out_pump.h = GetStdHandle(STD_OUTPUT_HANDLE);
        out_pump.s = op[1];
        out_pump.thread = CreateThread(NULL, 0, au__pump_out, &out_pump, 0, NULL);
        d.out_fd = (au_socket_t)op[0];
        au__sock_nonblock(op[0]);
    }
    if (au__socket_pair(wp) == 0) {
        au__sock_nonblock(wp[0]);
        wake = (au_socket_t)wp[0];
        au__wake_sock = wp[1];
    }
    au__done_event = CreateEventA(NULL, TRUE, FALSE, NULL);
    SetConsoleCtrlHandler(au__on_console, TRUE);
#else
    if (pipe(sp) == 0) {
        au__sock_nonblock(sp[0]);
        au__sock_nonblock(sp[1]);
        au__signal_pipe = sp[1];
        wake = sp[0];
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = au__on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old_pipe);
#endif
    if (au_bridge_init(b, &d) != AU_OK) {
        fprintf(stderr, "alwaysup: %s\n", b->error);
        code = 2;
    } else {
        for (;;) {
            au_pollfd fds[5];
            int n = au_bridge_pollfds(b, fds, 4), timeout = au_bridge_timeout(b);
            if (wake != AU_INVALID_SOCKET) { fds[n].fd = wake; fds[n].events = AU_POLLIN; fds[n].revents = 0; }
            if (au_poll(fds, n + (wake != AU_INVALID_SOCKET), timeout) < 0 && !AU__INTERRUPTED(AU__SOCK_ERRNO())) {
                au__blog(b, AU_LOG_ERROR, "poll_failed", "poll failed (error %d)", AU__SOCK_ERRNO());
                break;
            }
            if (wake != AU_INVALID_SOCKET && fds[n].revents) {   /* SIGINT/SIGTERM or Ctrl-C */
                char drain[16];
                while (au__fd_read(wake, drain, sizeof drain) > 0) {}
                au_bridge_stop(b);
            }
            if (!au_bridge_step(b, fds, n)) break;
        }
        code = b->exit_code;
    }
    au_bridge_free(b);
    ALWAYSUP_FREE(b);
#if defined(_WIN32)
    SetConsoleCtrlHandler(au__on_console, FALSE);
    if (op[0] != INVALID_SOCKET) {                      /* let the stdout pump write what is left */
        shutdown(op[0], SD_SEND);
        if (out_pump.thread) WaitForSingleObject(out_pump.thread, 2000);
        closesocket(op[0]);
    }
    if (ip[0] != INVALID_SOCKET) closesocket(ip[0]);
    au__wake_sock = INVALID_SOCKET;
    if (wp[0] != INVALID_SOCKET) { closesocket(wp[0]); closesocket(wp[1]); }
    if (au__done_event) { SetEvent(au__done_event); CloseHandle(au__done_event); au__done_event = NULL; }
    WSACleanup();
#else
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    au__signal_pipe = -1;
    if (sp[0] >= 0) { close(sp[0]); close(sp[1]); }
#endif
    return code;
}

/* ---- au_bridge_check: one attempt, reported step by step ---- */
enum { AU__CK_LINK, AU__CK_SESSION, AU__CK_INIT, AU__CK_LIST, AU__CK_PING, AU__CK_DONE };
typedef struct au__check {
    FILE *out;
    au_bridge *b;
    au_socket_t in_w, out_r;                   /* our ends of the bridge's stdin and stdout */
    int phase, failed, shown, list_at, pages;
    int64_t t0, step_at, deadline, first_attempt;
    int64_t step_ms;                           /* each MCP step's bound: the handshake timeout */
    unsigned caps;                             /* 1 tools, 2 prompts, 4 resources: what initialize offered */
    long count;
    char names[240];                           /* the first few of the list, for the report */
    au__buf rx;                                /* what the bridge wrote to its stdout, not yet a whole line */
    au__buf early;                             /* an answer that came before its step */
    char warn[4][240];                         /* warnings the bridge logged, shown as notes */
    int nwarn;
} au__check;
static const char *const au__ck_lists[3] = { "tools", "prompts", "resources" };

/* a connected pair standing in for the client's stdin or stdout */
#if defined(_WIN32)
static int au__ck_pair(au_socket_t sv[2]) {
    SOCKET s[2];
    if (au__socket_pair(s) != 0) return -1;
    sv[0] = (au_socket_t)s[0];
    sv[1] = (au_socket_t)s[1];
    return 0;
}
static void au__ck_close(au_socket_t s) { closesocket((SOCKET)s); }
#else
static int au__ck_pair(au_socket_t sv[2]) { return socketpair(AF_UNIX, SOCK_STREAM, 0, sv); }
static void au__ck_close(au_socket_t s) { close(s); }
#endif
static void au__ck_log(void *user, int level, const char *message) {
    au__check *k = (au__check *)user;
    if (level > AU_LOG_WARN || k->nwarn >= 4) return;
    snprintf(k->warn[k->nwarn++], sizeof k->warn[0], "%s", message);
}
static void au__ck_line(au__check *k, const char *status, const char *step, int64_t ms, const char *fmt, ...) AU__PRINTF(5, 6);
static void au__ck_line(au__check *k, const char *status, const char *step, int64_t ms, const char *fmt, ...) {
    char what[600], t[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (ms < 0) t[0] = 0;
    else if (ms == 0) snprintf(t, sizeof t, "<1 ms");
    else snprintf(t, sizeof t, "%ld ms", (long)ms);
    fprintf(k->out, "  %-5s %-14s %8s  %s\n", status, step, t, what);
}
static void au__ck_advice(au__check *k, const char *text) { fprintf(k->out, "        fix: %s\n", text); }
static void au__ck_send(au__check *k, const char *line) {
    size_t n = strlen(line), off = 0;
    while (off < n) {                          /* a few hundred bytes into an empty socket: never waits long */
        long w = au__fd_write(k->in_w, line + off, n - off);
        if (w > 0) off += (size_t)w;
        else if (w < 0 && (AU__INTERRUPTED(AU__FD_ERRNO()) || AU__WOULD_BLOCK(AU__FD_ERRNO()))) { au_pollfd p = { 0, AU_POLLOUT, 0 }; p.fd = k->in_w; au_poll(&p, 1, 100); }
        else return;
    }
}
static void au__ck_fail(au__check *k, const char *step, const char *why) {
    k->failed = 1;
    k->phase = AU__CK_DONE;
    au__ck_line(k, "FAIL", step, k->b->now - k->step_at, "%s", why);
}

/* what to change, for an attempt that ended before the WebSocket was open */
static void au__ck_link_advice(au__check *k, int step) {
    const au_client *c = &k->b->client;
    const char *e = c->error;
    char text[400];
    int st = c->http_status;
    if (step == AU_CLIENT_RESOLVING)
        au__ck_advice(k, "the host name does not resolve: check its spelling, /etc/hosts, or the Docker network the daemon is on");
    else if (step == AU_CLIENT_CONNECTING) {
        if (strstr(e, "refused")) au__ck_advice(k, "connection refused: is the daemon running on that port? (docker ps, ss -ltn)");
        else if (strstr(e, "timed out"))
            au__ck_advice(k, "no answer to the TCP connect: a firewall, a wrong address, or a host that is down; raise "
                             "--connect-timeout for a slow network");
        else if (c->url.unix_socket)
            au__ck_advice(k, "cannot open the Unix socket: does the path exist, and may this user write to it?");
        else au__ck_advice(k, "the daemon's address cannot be reached: check the host and port");
    } else if (step == AU_CLIENT_PROXY)
        au__ck_advice(k, strstr(e, "407") ? "the proxy wants credentials: put user:password in a variable and pass --proxy-user-env VAR"
                                          : "the proxy would not open a tunnel: check --proxy (or HTTPS_PROXY/NO_PROXY) and that "
                                            "the proxy allows CONNECT to this port");
    else if (step == AU_CLIENT_TLS) {
        if (strstr(e, "certificate") && (strstr(e, "expired") || strstr(e, "not yet valid")))
            au__ck_advice(k, "the daemon's certificate is out of date: renew it (alwaysup picks the new one up on its own)");
        else if (strstr(e, "mismatch") || strstr(e, "hostname") || strstr(e, "IP address"))
            au__ck_advice(k, "the certificate is for another name: connect by a name the certificate lists");
        else if (strstr(e, "certificate"))
            au__ck_advice(k, "the certificate is not signed by a CA this machine trusts: give the daemon's CA with --ca-file "
                             "(--insecure skips every check, for tests only)");
        else if (strstr(e, "wrong version") || strstr(e, "packet length") || strstr(e, "record") || strstr(e, "closed"))
            au__ck_advice(k, "the port did not answer TLS: if the daemon serves plain WebSocket, use ws:// instead of wss://");
        else au__ck_advice(k, "the TLS handshake failed: check the daemon's TLS set-up (protocol TLS 1.2 or newer)");
    } else if (st == 401 || st == 403) {
        if (k->b->d.num_headers > 0)
            snprintf(text, sizeof text, "HTTP %d: the daemon did not accept the credentials sent: check the value given "
                     "with -H or --header-env (and that the variable holds it)", st);
        else snprintf(text, sizeof text, "HTTP %d: the daemon wants credentials: add -H 'Authorization: Bearer ...' or "
                      "--header-env Authorization=VAR (a variable that holds the value)", st);
        au__ck_advice(k, text);
    } else if (st == 404)
        au__ck_advice(k, "HTTP 404: nothing serves WebSocket at that path: check the URL's path (/, /ws, /mcp ...)");
    else if (st == 502 || st == 503 || st == 504) {
        snprintf(text, sizeof text, "HTTP %d from a proxy in front of the daemon: the daemon behind it is down or starting "
                 "(a normal run keeps retrying until it is back)", st);
        au__ck_advice(k, text);
    } else if (st == 400 && k->b->num_protos > 0) {
        snprintf(text, sizeof text, "the daemon refused the upgrade, perhaps the subprotocol '%s' it was offered: try "
                 "--subprotocol ''", k->b->protos[0]);
        au__ck_advice(k, text);
    } else if (strstr(e, "subprotocol"))
        au__ck_advice(k, "the daemon chose a subprotocol that was not offered: offer that one with --subprotocol NAME");
    else if (st == 426 || st == 400)
        au__ck_advice(k, c->url.tls ? "the server refused the WebSocket upgrade: check the URL's path"
                                    : "the server refused the WebSocket upgrade: if the daemon serves TLS, use wss://");
    else if (st) au__ck_advice(k, "the server answered with a plain HTTP status: is this the daemon's WebSocket URL?");
    else if (strstr(e, "within"))
        au__ck_advice(k, "no answer to the upgrade: is this port a WebSocket server (not a TLS port reached with ws://, or "
                         "a database)? A slow daemon: raise --handshake-timeout");
    else au__ck_advice(k, "the WebSocket upgrade failed: is this the daemon's WebSocket URL?");
}
/* the connection steps reached since the last look, printed in order */
static int au__ck_link(au__check *k) {
    static const char *const names[5] = { "resolve", "connect", "proxy CONNECT", "TLS handshake", "upgrade" };
    const au_client *c = &k->b->client;
    int s;
    if (!c->reached[AU_CLIENT_IDLE]) return 0;
    if (!k->first_attempt) k->first_attempt = c->reached[AU_CLIENT_IDLE];
    for (s = k->shown + 1; s <= AU_CLIENT_HANDSHAKE; s++) {
        char what[300];
        if ((s == AU_CLIENT_RESOLVING && c->url.unix_socket) || (s == AU_CLIENT_PROXY && !c->via_proxy) || (s == AU_CLIENT_TLS && !c->tlsb)) {
            k->shown = s;
            continue;
        }
        if (!c->reached[s] || c->reached[AU_CLIENT_IDLE] != k->first_attempt) break;
        if (s == AU_CLIENT_RESOLVING) snprintf(what, sizeof what, "%s", c->via_proxy ? c->proxy_url.host : c->url.host);
        else if (s == AU_CLIENT_CONNECTING) snprintf(what, sizeof what, "%s%s", c->peer, c->via_proxy ? " (the proxy)" : "");
        else if (s == AU_CLIENT_PROXY) snprintf(what, sizeof what, "tunnel to %s:%u open", c->url.host, (unsigned)c->url.port);
        else if (s == AU_CLIENT_TLS)
            snprintf(what, sizeof what, "%s, %s", c->tlsb->name, k->b->d.tls.insecure ? "NOT VERIFIED (--insecure)" : "certificate and name verified");
        else snprintf(what, sizeof what, "101 Switching Protocols, %s%s", c->ws.subprotocol[0] ? "subprotocol " : "no subprotocol",
                      c->ws.subprotocol);
        au__ck_line(k, "ok", names[s - 1], c->reached[s] - k->step_at, "%s", what);
        k->step_at = c->reached[s];
        k->shown = s;
    }
    if (c->state == AU_CLIENT_OPEN) return 0;
    if (c->state == AU_CLIENT_IDLE || c->reached[AU_CLIENT_IDLE] != k->first_attempt) {   /* the attempt is over */
        s = k->shown + 1;
        while ((s == AU_CLIENT_RESOLVING && c->url.unix_socket) || (s == AU_CLIENT_PROXY && !c->via_proxy) || (s == AU_CLIENT_TLS && !c->tlsb)) s++;
        if (s > AU_CLIENT_HANDSHAKE) s = AU_CLIENT_HANDSHAKE;
        au__ck_fail(k, names[s - 1], c->error[0] ? c->error : k->b->core.conn.last_error);
        au__ck_link_advice(k, s);
        return 1;
    }
    return 0;
}

static void au__ck_text(char *dst, size_t cap, au_tok t) {     /* a JSON string's text, printable */
    if (t.p && t.len >= 2 && t.p[0] == '"') au__printable(dst, cap, t.p + 1, t.len - 2);
    else au__printable(dst, cap, t.p ? t.p : "", t.p ? t.len : 0);
}
/* how many elements a JSON array token holds; the first names go to k->names */
static long au__ck_count(au__check *k, au_tok arr) {
    const char *p = arr.p, *end = arr.p + arr.len;
    long n = 0;
    if (!p || arr.len < 2 || *p != '[') return -1;
    p = au__json_ws(p + 1, end);
    while (p < end && *p != ']') {
        au_tok item, name;
        size_t at = strlen(k->names);
        item.p = p;
        p = au__json_skip(p, end);
        item.len = (size_t)(p - item.p);
        name.p = NULL;
        if (at < sizeof k->names - 80 && (au__json_get(item, "name", &name) || au__json_get(item, "uri", &name)) && name.p[0] == '"') {
            char one[64];
            au__ck_text(one, sizeof one, name);
            snprintf(k->names + at, sizeof k->names - at, "%s%s", at ? ", " : "", one);
        } else if (at && at < sizeof k->names - 4 && !strstr(k->names, "...")) strcat(k->names, ", ...");
        n++;
        p = au__json_ws(p, end);
        if (p < end && *p == ',') p = au__json_ws(p + 1, end);
    }
    return n;
}
static void au__ck_next(au__check *k);
static void au__ck_request(au__check *k, int id, const char *method, const char *params) {
    char line[900];
    snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\"%s%s}\n", id, method, params ? ",\"params\":" : "",
             params ? params : "");
    au__ck_send(k, line);
    k->step_at = k->b->now;
    k->deadline = k->b->now + k->step_ms;
}
/* an error member as "CODE message" */
static void au__ck_error(char *dst, size_t cap, au_tok err) {
    au_tok code, msg;
    char m[300];
    code.p = msg.p = NULL;
    au__json_get(err, "code", &code);
    au__json_get(err, "message", &msg);
    au__ck_text(m, sizeof m, msg);
    snprintf(dst, cap, "error %.*s: %s", code.p ? (int)AU__MIN(code.len, 12) : 1, code.p ? code.p : "?", m);
}
static void au__ck_initialized(au__check *k, au_tok result) {
    au_tok info, name, version, pv, caps, v;
    char n[100], ver[60], p[40], list[200];
    size_t i;
    info.p = name.p = version.p = pv.p = caps.p = NULL;
    au__json_get(result, "serverInfo", &info);
    if (info.p) { au__json_get(info, "name", &name); au__json_get(info, "version", &version); }
    au__json_get(result, "protocolVersion", &pv);
    au__json_get(result, "capabilities", &caps);
    au__ck_text(n, sizeof n, name);
    au__ck_text(ver, sizeof ver, version);
    au__ck_text(p, sizeof p, pv);
    list[0] = 0;
    for (i = 0; caps.p && i < 5; i++) {
        static const char *const names[5] = { "tools", "prompts", "resources", "logging", "completions" };
        if (!au__json_get(caps, names[i], &v)) continue;
        if (i < 3) k->caps |= 1u << i;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "", names[i]);
    }
    if (k->b->d.daemon_protocol == AU_DIALECT_EXAI) k->caps |= 1;   /* answered here; the tools come from the daemon */
    au__ck_line(k, "ok", "initialize", k->b->now - k->step_at, "server %s %s, protocol %s, offers %s%s", n[0] ? n : "(no name)", ver,
                p[0] ? p : "?", list[0] ? list : "nothing", k->b->d.daemon_protocol == AU_DIALECT_EXAI ? " (answered by alwaysup for the EX-AI daemon)" : "");
    au__ck_send(k, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
    k->phase = AU__CK_LIST;
    k->list_at = -1;
    au__ck_next(k);
}
/* the next list the server offers, else the ping */
static void au__ck_next(au__check *k) {
    char method[40];
    while (++k->list_at < 3 && !(k->caps & (1u << k->list_at))) {
        snprintf(method, sizeof method, "%s/list", au__ck_lists[k->list_at]);
        au__ck_line(k, "-", method, -1, "not offered by the server");
    }
    if (k->list_at >= 3) {
        k->phase = AU__CK_PING;
        au__ck_request(k, 9, "ping", NULL);
        return;
    }
    k->count = 0;
    k->pages = 0;
    k->names[0] = 0;
    snprintf(method, sizeof method, "%s/list", au__ck_lists[k->list_at]);
    au__ck_request(k, 2 + k->list_at, method, NULL);
}
static void au__ck_response(au__check *k, const au_jsonrpc *j) {
    long id = j->id.p && j->id.len < 8 ? strtol(j->id.p, NULL, 10) : -1;
    char why[400];
    if (j->error.p) au__ck_error(why, sizeof why, j->error);
    if (k->phase == AU__CK_INIT && id == 1) {
        if (j->error.p) {
            au__ck_fail(k, "initialize", why);
            au__ck_advice(k, strstr(why, "already") ? "the daemon holds another client's session (a single-session server): "
                                                      "close that client or restart the daemon"
                                                    : "the daemon refused initialize: its message above says why");
        } else au__ck_initialized(k, j->result);
    } else if (k->phase == AU__CK_LIST && id == 2 + k->list_at) {
        au_tok arr, next;
        char method[40];
        long n;
        snprintf(method, sizeof method, "%s/list", au__ck_lists[k->list_at]);
        if (j->error.p) { au__ck_line(k, "warn", method, k->b->now - k->step_at, "%s", why); au__ck_next(k); return; }
        arr.p = next.p = NULL;
        au__json_get(j->result, au__ck_lists[k->list_at], &arr);
        if ((n = au__ck_count(k, arr)) < 0) {
            au__ck_line(k, "warn", method, k->b->now - k->step_at, "the answer has no %s array", au__ck_lists[k->list_at]);
            au__ck_next(k);
            return;
        }
        k->count += n;
        k->pages++;
        if (au__json_get(j->result, "nextCursor", &next) && next.p[0] == '"' && next.len < 500 && k->pages < 100) {
            char params[600];
            snprintf(params, sizeof params, "{\"cursor\":%.*s}", (int)next.len, next.p);
            au__ck_request(k, 2 + k->list_at, method, params);    /* step_at restarts: the time shown is the last page's */
            return;
        }
        au__ck_line(k, "ok", method, k->b->now - k->step_at, "%ld %.*s%s%s%s", k->count,
                    (int)strlen(au__ck_lists[k->list_at]) - (k->count == 1), au__ck_lists[k->list_at], k->names[0] ? ": " : "", k->names,
                    k->pages > 1 ? " (in pages)" : "");
        au__ck_next(k);
    } else if (k->phase == AU__CK_PING && id == 9) {
        if (j->error.p) au__ck_line(k, "warn", "ping", k->b->now - k->step_at, "%s", why);
        else au__ck_line(k, "ok", "ping", k->b->now - k->step_at, "answered%s",
                         k->b->d.daemon_protocol == AU_DIALECT_EXAI ? " (by alwaysup: the EX-AI protocol has no ping)" : "");
        k->phase = AU__CK_DONE;
    }
}
/* the bridge's stdout: whole lines only */
static void au__ck_read(au__check *k) {
    char buf[65536];
    long n;
    size_t start = 0, i;
    while ((n = au__fd_read(k->out_r, buf, sizeof buf)) > 0) au__buf_append(&k->rx, buf, (size_t)n);
    for (i = 0; i < k->rx.len; i++) {
        au_jsonrpc j;
        const char *line = (const char *)k->rx.p + start;
        if (k->rx.p[i] != '\n') continue;
        if (au_jsonrpc_scan(line, i - start, &j) == AU_RPC_RESPONSE && k->phase < AU__CK_INIT) {
            au__buf_clear(&k->early);                     /* answered before the daemon was there: kept for its turn */
            au__buf_append(&k->early, line, i + 1 - start);
        } else if (j.kind == AU_RPC_RESPONSE && k->phase != AU__CK_DONE) au__ck_response(k, &j);
        else if (j.kind == AU_RPC_REQUEST) {              /* sampling, roots...: a clear no, so nothing waits on us */
            char answer[300];
            snprintf(answer, sizeof answer, "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"error\":{\"code\":-32601,\"message\":\"alwaysup --check "
                     "answers no requests\"}}\n", (int)AU__MIN(j.id.len, 200), j.id.p);
            au__ck_send(k, answer);
        }
        start = i + 1;
    }
    if (start) {
        memmove(k->rx.p, k->rx.p + start, k->rx.len - start);
        k->rx.len -= start;
    }
}

static int au__ck_one(au__check *k, const au_bridge_desc *user, const char *url) {
    au_bridge_desc d = *user;
    au_bridge *b = k->b;
    au_socket_t in[2], out[2];
    int64_t give_up;
    char safe[300];
    d.url = url;
    d.more_urls = NULL;
    d.num_more_urls = 0;
    d.state_dir = "";                      /* no remembered session: only the daemon may answer */
    d.init_grace = -1;
    d.queue_timeout = 1e6;                 /* our own deadlines end each step */
    d.log = au__ck_log;
    d.log_user = k;
    d.log_file = NULL;
    if (au__ck_pair(in) != 0) return 2;
    if (au__ck_pair(out) != 0) { au__ck_close(in[0]); au__ck_close(in[1]); return 2; }
    d.in_fd = in[0];
    d.out_fd = out[1];
    k->in_w = in[1];
    k->out_r = out[0];
    au__sock_nonblock((au__socket)k->out_r);
    if (au_bridge_init(b, &d) != AU_OK) {
        fprintf(k->out, "alwaysup --check: %s\n", b->error);
        au__ck_close(in[0]); au__ck_close(in[1]); au__ck_close(out[0]); au__ck_close(out[1]);
        return 2;
    }
    snprintf(safe, sizeof safe, "%s", b->safe_url);
    fprintf(k->out, "alwaysup --check %s%s%s\n", safe, b->proxy_shown[0] ? " via proxy " : "", b->proxy_shown);
    k->phase = AU__CK_LINK;
    k->t0 = k->step_at = b->now = au_now_ms();
    give_up = k->t0 + 2 * au__ms((b->d.connect_timeout > 0 ? b->d.connect_timeout : 5) + (b->d.handshake_timeout > 0 ? b->d.handshake_timeout : 10)) + 5000;
    k->deadline = -1;
    k->step_ms = au__ms(b->d.handshake_timeout > 0 ? b->d.handshake_timeout : 10);
    /* what a client sends first; the bridge holds it until the daemon is there */
    au__ck_send(k, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
                   "\"clientInfo\":{\"name\":\"alwaysup-check\",\"version\":\"" ALWAYSUP_VERSION_STRING "\"}}}\n");
    while (k->phase != AU__CK_DONE) {
        au_pollfd fds[5];
        int n = au_bridge_pollfds(b, fds, 4), t = au_bridge_timeout(b);
        int64_t now = au_now_ms(), until = k->deadline >= 0 ? k->deadline : give_up;
        if (until - now < (int64_t)t || t < 0) t = until > now ? (int)AU__MIN(until - now, (int64_t)0x7FFFFFFF) : 0;
        fds[n].fd = k->out_r; fds[n].events = AU_POLLIN; fds[n].revents = 0;
        au_poll(fds, n + 1, t);
        if (!au_bridge_step(b, fds, n)) { au__ck_fail(k, "session", "the bridge stopped"); break; }
        au__ck_read(k);
        if (k->phase == AU__CK_DONE) break;
        if (k->phase == AU__CK_LINK && au__ck_link(k)) break;
        if (k->phase == AU__CK_LINK && b->client.state == AU_CLIENT_OPEN) {
            k->phase = AU__CK_SESSION;
            k->step_at = b->now;
            k->deadline = b->now + k->step_ms;
        }
        if (k->phase == AU__CK_SESSION && au_core_connected(&b->core)) {
            if (b->d.hello || b->d.daemon_protocol == AU_DIALECT_EXAI)
                au__ck_line(k, "ok", "hello", b->now - k->step_at, "answered%s", b->d.daemon_protocol == AU_DIALECT_EXAI ? " (EX-AI hello with the token)" : "");
            k->phase = AU__CK_INIT;
            k->step_at = b->now;
            k->deadline = b->now + k->step_ms;
            if (k->early.len) {                /* the answer came first */
                au_jsonrpc j;
                if (au_jsonrpc_scan((const char *)k->early.p, k->early.len - 1, &j) == AU_RPC_RESPONSE) au__ck_response(k, &j);
                au__buf_clear(&k->early);
            }
            au__ck_read(k);
            continue;
        }
        if (k->phase >= AU__CK_SESSION && k->phase != AU__CK_DONE && b->client.state != AU_CLIENT_OPEN) {
            int hello = k->phase == AU__CK_SESSION && (b->d.hello || b->d.daemon_protocol == AU_DIALECT_EXAI);
            char list[40];
            const char *step = hello ? "hello" : k->phase == AU__CK_SESSION ? "session" : k->phase == AU__CK_INIT ? "initialize"
                             : k->phase == AU__CK_PING ? "ping" : list;
            snprintf(list, sizeof list, "%s/list", k->phase == AU__CK_LIST ? au__ck_lists[k->list_at] : "");
            au__ck_fail(k, step, b->core.conn.last_error[0] ? b->core.conn.last_error : b->client.error);
            if (hello)
                au__ck_advice(k, b->d.daemon_protocol == AU_DIALECT_EXAI ? "the daemon refused the hello: check the token (EXAI_WS_TOKEN or --token-env)"
                                                                     : "the daemon refused the hello: check --hello");
            else if (strstr(k->b->core.conn.last_error, "hello") && b->d.daemon_protocol != AU_DIALECT_EXAI)
                au__ck_advice(k, "the daemon wants a hello first: for the EX-AI daemon add --daemon-protocol exai, else give it with --hello");
            else au__ck_advice(k, "the daemon closed the connection: its own log says why (a crash at start, or a protocol it does not speak)");
            break;
        }
        now = au_now_ms();
        if (k->deadline >= 0 && now >= k->deadline) {
            char why[200], list[40];
            double s = (double)k->step_ms / 1000.0;
            b->now = now;
            if (k->phase == AU__CK_SESSION) {
                snprintf(why, sizeof why, "no answer to the hello within %.3g s", s);
                au__ck_fail(k, "hello", why);
                au__ck_advice(k, "the daemon did not answer the hello: check --hello (or --daemon-protocol)");
            } else if (k->phase == AU__CK_INIT) {
                snprintf(why, sizeof why, "the daemon accepted the WebSocket but did not answer initialize within %.3g s", s);
                au__ck_fail(k, "initialize", why);
                au__ck_advice(k, "is it an MCP server? The EX-AI daemon speaks its own protocol: add --daemon-protocol exai. "
                                 "A daemon that boots slowly: raise --handshake-timeout");
            } else {
                snprintf(why, sizeof why, "no answer within %.3g s", s);
                snprintf(list, sizeof list, "%s/list", k->phase == AU__CK_LIST ? au__ck_lists[k->list_at] : "");
                au__ck_line(k, "warn", k->phase == AU__CK_PING ? "ping" : list, now - k->step_at, "%s", why);
                if (k->phase == AU__CK_PING) k->phase = AU__CK_DONE;
                else au__ck_next(k);
            }
        }
        if (k->phase != AU__CK_DONE && now >= give_up && k->deadline < 0) { au__ck_fail(k, "connect", "no result in time"); break; }
    }
    {
        int i;
        for (i = 0; i < k->nwarn; i++)           /* "retrying" lines only repeat the failure */
            if (!strstr(k->warn[i], "retrying")) fprintf(k->out, "        note: %s\n", k->warn[i]);
    }
    if (!k->failed) {                              /* a polite end: close 1000 */
        int64_t end = au_now_ms() + 2000;
        au_bridge_stop(b);
        while (au_now_ms() < end) {
            au_pollfd fds[4];
            int n = au_bridge_pollfds(b, fds, 4);
            au_poll(fds, n, 50);
            if (!au_bridge_step(b, fds, n)) break;
            au__ck_read(k);
        }
    }
    fprintf(k->out, "%s: %s %s (%ld ms)\n", k->failed ? "FAILED" : "OK", k->failed ? "no MCP session with" : "an MCP session works with",
            safe, (long)(au_now_ms() - k->t0));
    au_bridge_free(b);
    au__ck_close(in[0]); au__ck_close(in[1]); au__ck_close(out[0]); au__ck_close(out[1]);
    return k->failed;
}
ALWAYSUP_DEF int au_bridge_check(const au_bridge_desc *desc, FILE *report) {
    au__check k;
    const char *urls[17];
    int n = 0, i, worst = 0;
    if (!desc || !desc->url || !desc->url[0]) { fprintf(report, "alwaysup --check: no daemon URL given\n"); return 2; }
#if defined(_WIN32)
    { WSADATA wsa; WSAStartup(MAKEWORD(2, 2), &wsa); }
#endif
    urls[n++] = desc->url;
    for (i = 0; i < desc->num_more_urls && n < 17; i++) urls[n++] = desc->more_urls[i];
    for (i = 0; i < n; i++) {
        int r;
        memset(&k, 0, sizeof k);
        k.out = report;
        k.b = (au_bridge *)ALWAYSUP_REALLOC(NULL, sizeof *k.b);
        if (!k.b) return 2;
        if (i) fputc('\n', report);
        r = au__ck_one(&k, desc, urls[i]);
        fflush(report);
        au__buf_free(&k.rx);
        au__buf_free(&k.early);
        ALWAYSUP_FREE(k.b);
        if (r > worst) worst = r;
        if (r == 2) break;
    }
#if defined(_WIN32)
    WSACleanup();
#endif
    return worst;
}

#endif /* ALWAYSUP_IMPLEMENTATION_DONE */
#endif /* ALWAYSUP_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the alwaysup authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication for the benefit of the public at large and to
the detriment of our heirs and successors. We intend this dedication to be an
overt act of relinquishment in perpetuity of all present and future rights to
this software under copyright law.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
