/* alwaysup: the shim. Sits on an MCP client's stdio and keeps a WebSocket
   daemon connected behind it, across restarts, forever.

     build/alwaysup [options] [ws://host:port/path]

     build/alwaysup --check [options] [URL...]   one attempt, a report on stdout

   Every option also reads an ALWAYSUP_* environment variable; flags win.
   Exit status: 0 after stdin EOF or SIGINT/SIGTERM, 2 for a bad URL or flag;
   with --check 0 when an MCP session was established, 1 when not. */
#define ALWAYSUP_IMPLEMENTATION
#include "../alwaysup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 64

enum { SECONDS, SECONDS_OR_OFF, FACTOR, FRACTION, BYTES, BYTES64, LEVEL, LIST_CHANGED, PROTOCOL, LOG_FORMAT, FLAG, TEXT };

/* the words each choice option takes, in the order of their values (a NULL first word: values start at 1) */
static const char *const choices[][5] = {
    /* LEVEL */ { NULL, "error", "warn", "info", "debug" },
    /* LIST_CHANGED */ { "when-advertised", "always", "never", NULL, NULL },
    /* PROTOCOL */ { "mcp", "exai", NULL, NULL, NULL },
    /* LOG_FORMAT */ { "text", "json", NULL, NULL, NULL },
};

typedef struct option {
    const char *flag;     /* long name without "--" */
    const char *env;      /* ALWAYSUP_* variable */
    int kind;
    void *target;
    const char *arg, *help;
    const char *compat;   /* the old EX-AI shim's variable with the same meaning; ALWAYSUP_* wins */
} option;

static void die(const char *fmt, ...) {
    va_list ap;
    fputs("alwaysup: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* a copy that strtok may cut up (strdup is not standard C) */
static char *copy_of(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = (char *)malloc(n);
    if (!p) die("out of memory");
    memcpy(p, s, n);
    return p;
}

static double parse_number(const char *name, const char *text) {
    char *end;
    double v;
    errno = 0;
    v = strtod(text, &end);
    if (!*text || *end || errno || v != v || v < 0 || v > 1e9) die("%s: '%s' is not a non-negative number", name, text);
    return v;
}
static void set_option(const option *o, const char *name, const char *text) {
    switch (o->kind) {
    case SECONDS: {
        double v = parse_number(name, text);
        if (v <= 0) die("%s: '%s' must be more than 0 seconds", name, text);
        *(double *)o->target = v;
        break;
    }
    case SECONDS_OR_OFF: {                        /* 0 switches the feature off */
        double v = parse_number(name, text);
        *(double *)o->target = v > 0 ? v : -1;
        break;
    }
    case FACTOR: {
        double v = parse_number(name, text);
        if (v < 1) die("%s: '%s' must be 1 or more", name, text);
        *(double *)o->target = v;
        break;
    }
    case FRACTION: {
        double v = parse_number(name, text);
        if (v > 1) die("%s: '%s' must be between 0 and 1", name, text);
        *(double *)o->target = v;
        break;
    }
    case BYTES:
    case BYTES64: {                               /* 1048576, 512K, 64M, 1G, 64MiB */
        char *end;
        unsigned long long v;
        int shift = 0;
        errno = 0;
        v = strtoull(text, &end, 10);
        if (end == text || errno || text[0] == '-') die("%s: '%s' is not a byte count", name, text);
        if (*end == 'K' || *end == 'k') shift = 10;
        else if (*end == 'M' || *end == 'm') shift = 20;
        else if (*end == 'G' || *end == 'g') shift = 30;
        if (shift) { end++; if (*end == 'i') end++; }
        if (*end == 'B') end++;
        if (*end || v == 0 || v > (1ull << (40 - shift))) die("%s: '%s' is not a byte count from 1 to 1T", name, text);
        v <<= shift;
        if (o->kind == BYTES64) *(uint64_t *)o->target = v;
        else *(size_t *)o->target = (size_t)v;
        break;
    }
    case LEVEL:
    case LIST_CHANGED:
    case PROTOCOL:
    case LOG_FORMAT: {
        const char *const *words = choices[o->kind - LEVEL];
        char all[80] = "";
        int i;
        for (i = 0; i < 5; i++) {
            if (!words[i]) continue;
            if (strcmp(text, words[i]) == 0) { *(int *)o->target = i; return; }
            snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", all[0] ? ", " : "", words[i]);
        }
        die("%s: '%s' is not one of %s", name, text, all);
        break;
    }
    case FLAG: {                                  /* from the environment: 1/0, true/false, yes/no */
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes")) *(int *)o->target = 1;
        else if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "no")) *(int *)o->target = 0;
        else die("%s: '%s' is not 1 or 0", name, text);
        break;
    }
    default:
        *(const char **)o->target = text;
    }
}

/* "Name: value" */
static void add_header(au_header *h, int *n, char *spec, const char *from) {
    char *colon = strchr(spec, ':');
    char *v;
    const char *why;
    if (!colon) die("%s: '%s' is not 'Name: value'", from, spec);
    if (*n >= MAX_HEADERS) die("%s: more than %s headers", from, "64");
    *colon = 0;
    v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    why = au_header_check(spec, v);
    if (why) die("header refused: %s (%s)", why, spec);
    h[*n].name = spec;
    h[*n].value = v;
    (*n)++;
}
/* "Name=VAR": the value comes from the environment and is never printed */
static void add_header_env(au_header *h, int *n, char *spec, const char *from) {
    char *eq = strchr(spec, '=');
    const char *v, *why;
    if (!eq || eq == spec || !eq[1]) die("%s: '%s' is not 'Name=VARIABLE'", from, spec);
    if (*n >= MAX_HEADERS) die("%s: more than %s headers", from, "64");
    *eq = 0;
    v = getenv(eq + 1);
    if (!v) die("%s: environment variable %s is not set", from, eq + 1);
    why = au_header_check(spec, v);
    if (why) die("header %s from the environment refused: %s", spec, why);
    h[*n].name = spec;
    h[*n].value = v;
    (*n)++;
}

static void usage(const option *opts, size_t n) {
    size_t i;
    printf("alwaysup %s: keep an MCP client connected to a WebSocket daemon that comes and goes.\n\n"
           "usage: alwaysup [options] [URL...]\n\n"
           "URL is ws://host[:port][/path][?query], wss://... (TLS builds: make TLS=openssl) or\n"
           "ws+unix:/path/to.sock[:/request/path]. Without one: $ALWAYSUP_URL, else\n"
           "ws://$EXAI_WS_HOST:$EXAI_WS_PORT, else ws://127.0.0.1:8079.\n\n"
           "The shim never exits because of the daemon: it retries forever, queues\n"
           "messages while the daemon is down and answers every request exactly once.\n"
           "It exits on stdin EOF, SIGINT/SIGTERM, or a bad option (status 2).\n\n"
           "options (durations in seconds, decimals allowed; sizes take K, M, G):\n"
           "  -H, --header 'Name: value'    extra handshake header, repeatable (ALWAYSUP_HEADER,\n"
           "                                one per line); values never appear in logs\n"
           "  --header-env 'Name=VAR'       header whose value is read from $VAR, repeatable\n"
           "                                (ALWAYSUP_HEADER_ENV, one per line)\n",
           ALWAYSUP_VERSION_STRING);
    for (i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s %s", opts[i].flag, opts[i].arg);
        if (opts[i].compat) printf("  %-29s %s (%s, %s)\n", left, opts[i].help, opts[i].env, opts[i].compat);
        else printf("  %-29s %s (%s)\n", left, opts[i].help, opts[i].env);
    }
    printf("  --check                       try once and report each step (resolve, connect, upgrade,\n"
           "                                hello, initialize, lists, ping) on stdout, with what to\n"
           "                                change; exit 0 for a working session, 1 if not\n"
           "  --help                        this text\n"
           "  --version                     print the version\n\n"
           "With --daemon-protocol exai the hello carries $EXAI_WS_TOKEN (or the variable named\n"
           "by --token-env); the token is never logged.\n\n"
           "example MCP client configuration:\n"
           "  { \"command\": \"/path/to/alwaysup\", \"args\": [\"ws://127.0.0.1:8079\"] }\n"
           "  { \"command\": \"/path/to/alwaysup\", \"args\": [\"--daemon-protocol\", \"exai\"],\n"
           "    \"env\": { \"EXAI_WS_PORT\": \"8079\", \"EXAI_WS_TOKEN\": \"...\" } }\n");
}

int main(int argc, char **argv) {
    au_bridge_desc d;
    static au_header headers[MAX_HEADERS];
    int nh = 0, i;
    size_t k;
    const char *url = NULL;
    char default_url[300];
    char *env_copy;
    const char *proxy_user_env = NULL;
    const char *token_env = "EXAI_WS_TOKEN";
    option opts[] = {
        { "subprotocol", "ALWAYSUP_SUBPROTOCOL", TEXT, &d.subprotocol, "NAME", "subprotocol to offer; '' offers none [mcp]", NULL },
        { "connect-timeout", "ALWAYSUP_CONNECT_TIMEOUT", SECONDS, &d.connect_timeout, "S", "TCP connect timeout per address [5]", "EXAI_WS_CONNECT_TIMEOUT" },
        { "handshake-timeout", "ALWAYSUP_HANDSHAKE_TIMEOUT", SECONDS, &d.handshake_timeout, "S", "wait for the 101 answer [10]", "EXAI_WS_HANDSHAKE_TIMEOUT" },
        { "backoff-initial", "ALWAYSUP_BACKOFF_INITIAL", SECONDS, &d.backoff.initial, "S", "first retry delay [0.25]", NULL },
        { "backoff-factor", "ALWAYSUP_BACKOFF_FACTOR", FACTOR, &d.backoff.factor, "F", "delay growth per attempt [1.5]", NULL },
        { "backoff-max", "ALWAYSUP_BACKOFF_MAX", SECONDS, &d.backoff.max, "S", "longest retry delay [5]", NULL },
        { "backoff-jitter", "ALWAYSUP_BACKOFF_JITTER", FRACTION, &d.backoff.jitter, "F", "cut each delay by up to this fraction [0]", NULL },
        { "healthy-after", "ALWAYSUP_HEALTHY_AFTER", SECONDS, &d.healthy_after, "S", "uptime before the backoff starts over [10]", NULL },
        { "ping-interval", "ALWAYSUP_PING_INTERVAL", SECONDS_OR_OFF, &d.ping_interval, "S", "ping after this much silence; 0: never [20]", "EXAI_WS_PING_INTERVAL" },
        { "ping-timeout", "ALWAYSUP_PING_TIMEOUT", SECONDS_OR_OFF, &d.ping_timeout, "S", "declare the daemon dead after this long; 0: off [20]", "EXAI_WS_PING_TIMEOUT" },
        { "queue-timeout", "ALWAYSUP_QUEUE_TIMEOUT", SECONDS, &d.queue_timeout, "S", "answer a queued request with an error after [30]", NULL },
        { "queue-max-bytes", "ALWAYSUP_QUEUE_MAX_BYTES", BYTES, &d.queue_max_bytes, "N", "queue size before stdin waits [64M]", NULL },
        { "queue-max-count", "ALWAYSUP_QUEUE_MAX_COUNT", BYTES, &d.queue_max_count, "N", "queued messages before stdin waits [4096]", NULL },
        { "max-message", "ALWAYSUP_MAX_MESSAGE", BYTES64, &d.max_message, "M", "largest message either way [256M]", "EXAI_WS_MAX_BYTES" },
        { "drain-timeout", "ALWAYSUP_DRAIN_TIMEOUT", SECONDS, &d.drain_timeout, "S", "wait for answers after stdin EOF [2]", NULL },
        { "close-timeout", "ALWAYSUP_CLOSE_TIMEOUT", SECONDS, &d.close_timeout, "S", "wait for the close reply on SIGTERM [1]", NULL },
        { "log-level", "ALWAYSUP_LOG_LEVEL", LEVEL, &d.log_level, "L", "error, warn, info or debug [info]", NULL },
        { "log-file", "ALWAYSUP_LOG_FILE", TEXT, &d.log_file, "PATH", "also append logs to this file", NULL },
        { "log-max-size", "ALWAYSUP_LOG_MAX_SIZE", BYTES64, &d.log_max_size, "N", "then move the log file to FILE.1 and start afresh [10M]", NULL },
        { "log-format", "ALWAYSUP_LOG_FORMAT", LOG_FORMAT, &d.log_format, "F", "text, or json: one object per line for log collectors [text]", NULL },
        { "no-mcp", "ALWAYSUP_NO_MCP", FLAG, &d.no_mcp, "", "plain JSON-RPC: no MCP session replay, local ping, list_changed", NULL },
        { "init-grace", "ALWAYSUP_INIT_GRACE", SECONDS_OR_OFF, &d.init_grace, "S", "answer a cold-start initialize here after; 0: never [10]", NULL },
        { "list-changed", "ALWAYSUP_LIST_CHANGED", LIST_CHANGED, &d.list_changed, "WHEN", "list_changed after a reconnect: when-advertised, always, never", NULL },
        { "state-dir", "ALWAYSUP_STATE_DIR", TEXT, &d.state_dir, "DIR", "remember the daemon's InitializeResult here; '' off [$XDG_STATE_HOME/alwaysup]", NULL },
        { "hello", "ALWAYSUP_HELLO", TEXT, &d.hello, "JSON", "message sent first on every connection", NULL },
        { "hello-ack-timeout", "ALWAYSUP_HELLO_ACK_TIMEOUT", SECONDS_OR_OFF, &d.hello_ack_timeout, "S", "wait for an answer with \"ok\":true; 0: no wait [the setup timeout]", NULL },
        { "setup-timeout", "ALWAYSUP_SETUP_TIMEOUT", SECONDS, &d.setup_timeout, "S", "bound on the hello answer and the replayed session [60]", NULL },
        { "max-pending", "ALWAYSUP_MAX_PENDING", BYTES, &d.max_pending, "N", "unanswered requests before stdin waits [16384]", NULL },
        { "daemon-protocol", "ALWAYSUP_DAEMON_PROTOCOL", PROTOCOL, &d.daemon_protocol, "P", "mcp (JSON-RPC passed through) or exai (EX-AI op protocol) [mcp]", NULL },
        { "no-resend", "ALWAYSUP_NO_RESEND", FLAG, &d.no_resend, "", "exai: a call in flight on a lost connection gets an error, not sent again", NULL },
        { "session-id", "ALWAYSUP_SESSION_ID", TEXT, &d.exai.session_id, "ID", "exai: the hello's session id [a random UUID per process]", "EXAI_SESSION_ID" },
        { "token-env", "ALWAYSUP_TOKEN_ENV", TEXT, &token_env, "VAR", "exai: read the hello's token from $VAR [EXAI_WS_TOKEN]", NULL },
        { "server-name", "ALWAYSUP_SERVER_NAME", TEXT, &d.exai.server_name, "NAME", "exai: serverInfo name the client sees [ex-ws-shim]", "MCP_SERVER_ID" },
        { "ack-grace", "ALWAYSUP_ACK_GRACE", SECONDS, &d.exai.ack_grace, "S", "exai: wait this much past an acked call's timeout [120]", "EXAI_SHIM_ACK_GRACE_SECS" },
        { "ca-file", "ALWAYSUP_CA_FILE", TEXT, &d.tls.ca_file, "PEM", "wss: trust these CAs instead of the system's", NULL },
        { "cert", "ALWAYSUP_CERT", TEXT, &d.tls.cert_file, "PEM", "wss: client certificate (mutual TLS)", NULL },
        { "key", "ALWAYSUP_KEY", TEXT, &d.tls.key_file, "PEM", "wss: its private key [in --cert]", NULL },
        { "insecure", "ALWAYSUP_INSECURE", FLAG, &d.tls.insecure, "", "wss: do not check the daemon's certificate (warned at every connect)", NULL },
        { "proxy", "ALWAYSUP_PROXY", TEXT, &d.proxy, "URL", "HTTP CONNECT proxy http://host:port for every daemon; '' none [curl's http(s)_proxy, NO_PROXY; not for loopback]", NULL },
        { "proxy-user-env", "ALWAYSUP_PROXY_USER_ENV", TEXT, &proxy_user_env, "VAR", "proxy credentials user:password from $VAR (never logged)", NULL },
    };
    const char *urls[17];
    int nurls = 0;
    int check = 0;
    const size_t nopts = sizeof opts / sizeof opts[0];

    memset(&d, 0, sizeof d);

    /* environment first, so flags override it; the old shim's names first, so ALWAYSUP_* wins */
    for (k = 0; k < nopts; k++) {
        const char *v = opts[k].compat ? getenv(opts[k].compat) : NULL;
        if (v && *v) set_option(&opts[k], opts[k].compat, v);
        v = getenv(opts[k].env);
        if (v && *v) set_option(&opts[k], opts[k].env, v);
    }
    if ((env_copy = getenv("ALWAYSUP_HEADER")) != NULL && *env_copy) {
        char *line = strtok(copy_of(env_copy), "\n");
        for (; line; line = strtok(NULL, "\n")) add_header(headers, &nh, line, "ALWAYSUP_HEADER");
    }
    if ((env_copy = getenv("ALWAYSUP_HEADER_ENV")) != NULL && *env_copy) {
        char *line = strtok(copy_of(env_copy), "\n");
        for (; line; line = strtok(NULL, "\n")) add_header_env(headers, &nh, line, "ALWAYSUP_HEADER_ENV");
    }

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[64];
        size_t nl;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(opts, nopts); return 0; }
        if (strcmp(a, "--check") == 0) { check = 1; continue; }
        if (strcmp(a, "--version") == 0) { printf("alwaysup %s (transports: %s)\n", ALWAYSUP_VERSION_STRING, au_transports()); return 0; }
        if (strcmp(a, "-H") == 0 || strcmp(a, "--header") == 0 || strcmp(a, "--header-env") == 0) {
            if (i + 1 >= argc) die("%s needs a value", a);
            if (strcmp(a, "--header-env") == 0) add_header_env(headers, &nh, argv[++i], a);
            else add_header(headers, &nh, argv[++i], a);
            continue;
        }
        if (strncmp(a, "--header=", 9) == 0) { add_header(headers, &nh, argv[i] + 9, "--header"); continue; }
        if (strncmp(a, "--header-env=", 13) == 0) { add_header_env(headers, &nh, argv[i] + 13, "--header-env"); continue; }
        if (a[0] != '-' || a[1] == 0) {                 /* daemon URLs: tried in turn */
            if (nurls >= 16) die("more than 16 URLs given");
            urls[nurls++] = a;
            continue;
        }
        if (a[1] != '-') die("unknown option '%s' (see --help)", a);
        nl = strcspn(a + 2, "=");
        snprintf(name, sizeof name, "%.*s", (int)nl, a + 2);
        for (k = 0; k < nopts; k++) if (strcmp(name, opts[k].flag) == 0) break;
        if (k == nopts) die("unknown option '%s' (see --help)", a);
        if (opts[k].kind == FLAG) {
            if (a[2 + nl] == '=') die("--%s takes no value", name);
            *(int *)opts[k].target = 1;
            continue;
        }
        if (a[2 + nl] == '=') val = a + 3 + nl;
        else if (i + 1 < argc) val = argv[++i];
        else die("--%s needs a value", name);
        set_option(&opts[k], a, val);
    }
    if (!nurls && (env_copy = getenv("ALWAYSUP_URL")) != NULL && *env_copy) {   /* one or more, by spaces or commas */
        char *u = strtok(copy_of(env_copy), " ,\t\n");
        for (; u && nurls < 16; u = strtok(NULL, " ,\t\n")) urls[nurls++] = u;
    }
    if (nurls) url = urls[0];
    if (!url || !*url) {
        const char *host = getenv("EXAI_WS_HOST"), *port = getenv("EXAI_WS_PORT");
        snprintf(default_url, sizeof default_url, "ws://%s:%s", host && *host ? host : "127.0.0.1", port && *port ? port : "8079");
        url = default_url;
    }
    if (d.daemon_protocol == AU_DIALECT_EXAI) {
        d.exai.token = getenv(token_env);
        if (d.no_mcp) die("--no-mcp does not apply to --daemon-protocol exai");
    } else if (d.no_resend) die("--no-resend applies to --daemon-protocol exai only");
    if (proxy_user_env) {
        d.proxy_auth = getenv(proxy_user_env);
        if (!d.proxy_auth) die("--proxy-user-env: environment variable %s is not set", proxy_user_env);
    }
    d.url = url;
    if (nurls > 1) { d.more_urls = urls + 1; d.num_more_urls = nurls - 1; }
    d.headers = headers;
    d.num_headers = nh;
    if (check) return au_bridge_check(&d, stdout);
    return au_bridge_run(&d);
}
