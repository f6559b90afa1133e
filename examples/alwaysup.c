/* alwaysup: the shim. Sits on an MCP client's stdio and keeps a WebSocket
   daemon connected behind it, across restarts, forever.

     build/alwaysup [options] [ws://host:port/path]

   Every option also reads an ALWAYSUP_* environment variable; flags win.
   Exit status: 0 after stdin EOF or SIGINT/SIGTERM, 2 for a bad URL or flag. */
#define ALWAYSUP_IMPLEMENTATION
#include "../alwaysup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 64

enum { SECONDS, SECONDS_OR_OFF, FACTOR, FRACTION, BYTES, BYTES64, LEVEL, LIST_CHANGED, PROTOCOL, FLAG, TEXT };

typedef struct option {
    const char *flag;     /* long name without "--" */
    const char *env;      /* ALWAYSUP_* variable */
    int kind;
    void *target;
    const char *arg, *help;
    const char *compat;   /* the old EX-AI shim's variable with the same meaning; ALWAYSUP_* wins */
} option;

static void die(const char *fmt, const char *a, const char *b) {
    fputs("alwaysup: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(2);
}

/* a copy that strtok may cut up (strdup is not standard C) */
static char *copy_of(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = (char *)malloc(n);
    if (!p) die("out of memory%s%s", "", "");
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
    case PROTOCOL: {
        if (strcmp(text, "mcp") == 0) *(int *)o->target = AU_DIALECT_MCP;
        else if (strcmp(text, "exai") == 0) *(int *)o->target = AU_DIALECT_EXAI;
        else die("%s: '%s' is not one of mcp, exai", name, text);
        break;
    }
    case LIST_CHANGED: {
        static const char *const names[] = { "when-advertised", "always", "never" };
        int i;
        for (i = 0; i < 3; i++)
            if (strcmp(text, names[i]) == 0) { *(int *)o->target = i; return; }
        die("%s: '%s' is not one of when-advertised, always, never", name, text);
        break;
    }
    case FLAG: {                                  /* from the environment: 1/0, true/false, yes/no */
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes")) *(int *)o->target = 1;
        else if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "no")) *(int *)o->target = 0;
        else die("%s: '%s' is not 1 or 0", name, text);
        break;
    }
    case LEVEL: {
        static const char *const names[] = { "error", "warn", "info", "debug" };
        int i;
        for (i = 0; i < 4; i++)
            if (strcmp(text, names[i]) == 0) { *(int *)o->target = i + 1; return; }
        die("%s: '%s' is not one of error, warn, info, debug", name, text);
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
    printf("  --help                        this text\n"
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
    option opts[] = {
        { "subprotocol", "ALWAYSUP_SUBPROTOCOL", TEXT, NULL, "NAME", "subprotocol to offer; '' offers none [mcp]", NULL },
        { "connect-timeout", "ALWAYSUP_CONNECT_TIMEOUT", SECONDS, NULL, "S", "TCP connect timeout per address [5]", "EXAI_WS_CONNECT_TIMEOUT" },
        { "handshake-timeout", "ALWAYSUP_HANDSHAKE_TIMEOUT", SECONDS, NULL, "S", "wait for the 101 answer [10]", "EXAI_WS_HANDSHAKE_TIMEOUT" },
        { "backoff-initial", "ALWAYSUP_BACKOFF_INITIAL", SECONDS, NULL, "S", "first retry delay [0.25]", NULL },
        { "backoff-factor", "ALWAYSUP_BACKOFF_FACTOR", FACTOR, NULL, "F", "delay growth per attempt [1.5]", NULL },
        { "backoff-max", "ALWAYSUP_BACKOFF_MAX", SECONDS, NULL, "S", "longest retry delay [5]", NULL },
        { "backoff-jitter", "ALWAYSUP_BACKOFF_JITTER", FRACTION, NULL, "F", "cut each delay by up to this fraction [0]", NULL },
        { "healthy-after", "ALWAYSUP_HEALTHY_AFTER", SECONDS, NULL, "S", "uptime before the backoff starts over [10]", NULL },
        { "ping-interval", "ALWAYSUP_PING_INTERVAL", SECONDS_OR_OFF, NULL, "S", "ping after this much silence; 0: never [20]", "EXAI_WS_PING_INTERVAL" },
        { "ping-timeout", "ALWAYSUP_PING_TIMEOUT", SECONDS_OR_OFF, NULL, "S", "declare the daemon dead after this long; 0: off [20]", "EXAI_WS_PING_TIMEOUT" },
        { "queue-timeout", "ALWAYSUP_QUEUE_TIMEOUT", SECONDS, NULL, "S", "answer a queued request with an error after [30]", NULL },
        { "queue-max-bytes", "ALWAYSUP_QUEUE_MAX_BYTES", BYTES, NULL, "N", "queue size before stdin waits [64M]", NULL },
        { "queue-max-count", "ALWAYSUP_QUEUE_MAX_COUNT", BYTES, NULL, "N", "queued messages before stdin waits [4096]", NULL },
        { "max-message", "ALWAYSUP_MAX_MESSAGE", BYTES64, NULL, "M", "largest message either way [256M]", "EXAI_WS_MAX_BYTES" },
        { "drain-timeout", "ALWAYSUP_DRAIN_TIMEOUT", SECONDS, NULL, "S", "wait for answers after stdin EOF [2]", NULL },
        { "close-timeout", "ALWAYSUP_CLOSE_TIMEOUT", SECONDS, NULL, "S", "wait for the close reply on SIGTERM [1]", NULL },
        { "log-level", "ALWAYSUP_LOG_LEVEL", LEVEL, NULL, "L", "error, warn, info or debug [info]", NULL },
        { "log-file", "ALWAYSUP_LOG_FILE", TEXT, NULL, "PATH", "also append logs to this file", NULL },
        { "no-mcp", "ALWAYSUP_NO_MCP", FLAG, NULL, "", "plain JSON-RPC: no MCP session replay, local ping, list_changed", NULL },
        { "init-grace", "ALWAYSUP_INIT_GRACE", SECONDS_OR_OFF, NULL, "S", "answer a cold-start initialize here after; 0: never [10]", NULL },
        { "list-changed", "ALWAYSUP_LIST_CHANGED", LIST_CHANGED, NULL, "WHEN", "list_changed after a reconnect: when-advertised, always, never", NULL },
        { "state-dir", "ALWAYSUP_STATE_DIR", TEXT, NULL, "DIR", "remember the daemon's InitializeResult here; '' off [$XDG_STATE_HOME/alwaysup]", NULL },
        { "hello", "ALWAYSUP_HELLO", TEXT, NULL, "JSON", "message sent first on every connection", NULL },
        { "hello-ack-timeout", "ALWAYSUP_HELLO_ACK_TIMEOUT", SECONDS_OR_OFF, NULL, "S", "wait for an answer with \"ok\":true; 0: no wait [the setup timeout]", NULL },
        { "setup-timeout", "ALWAYSUP_SETUP_TIMEOUT", SECONDS, NULL, "S", "bound on the hello answer and the replayed session [60]", NULL },
        { "max-pending", "ALWAYSUP_MAX_PENDING", BYTES, NULL, "N", "unanswered requests before stdin waits [16384]", NULL },
        { "daemon-protocol", "ALWAYSUP_DAEMON_PROTOCOL", PROTOCOL, NULL, "P", "mcp (JSON-RPC passed through) or exai (EX-AI op protocol) [mcp]", NULL },
        { "no-resend", "ALWAYSUP_NO_RESEND", FLAG, NULL, "", "exai: a call in flight on a lost connection gets an error, not sent again", NULL },
        { "session-id", "ALWAYSUP_SESSION_ID", TEXT, NULL, "ID", "exai: the hello's session id [a random UUID per process]", "EXAI_SESSION_ID" },
        { "token-env", "ALWAYSUP_TOKEN_ENV", TEXT, NULL, "VAR", "exai: read the hello's token from $VAR [EXAI_WS_TOKEN]", NULL },
        { "server-name", "ALWAYSUP_SERVER_NAME", TEXT, NULL, "NAME", "exai: serverInfo name the client sees [ex-ws-shim]", "MCP_SERVER_ID" },
        { "ack-grace", "ALWAYSUP_ACK_GRACE", SECONDS, NULL, "S", "exai: wait this much past an acked call's timeout [120]", "EXAI_SHIM_ACK_GRACE_SECS" },
        { "ca-file", "ALWAYSUP_CA_FILE", TEXT, NULL, "PEM", "wss: trust these CAs instead of the system's", NULL },
        { "cert", "ALWAYSUP_CERT", TEXT, NULL, "PEM", "wss: client certificate (mutual TLS)", NULL },
        { "key", "ALWAYSUP_KEY", TEXT, NULL, "PEM", "wss: its private key [in --cert]", NULL },
        { "insecure", "ALWAYSUP_INSECURE", FLAG, NULL, "", "wss: do not check the daemon's certificate (warned at every connect)", NULL },
        { "proxy", "ALWAYSUP_PROXY", TEXT, NULL, "URL", "HTTP CONNECT proxy http://host:port for every daemon; '' none [curl's http(s)_proxy, NO_PROXY; not for loopback]", NULL },
        { "proxy-user-env", "ALWAYSUP_PROXY_USER_ENV", TEXT, NULL, "VAR", "proxy credentials user:password from $VAR (never logged)", NULL },
    };
    const char *proxy_user_env = NULL;
    const char *urls[17];
    int nurls = 0;
    const char *token_env = "EXAI_WS_TOKEN";
    const size_t nopts = sizeof opts / sizeof opts[0];

    memset(&d, 0, sizeof d);
    opts[0].target = &d.subprotocol;
    opts[1].target = &d.connect_timeout;
    opts[2].target = &d.handshake_timeout;
    opts[3].target = &d.backoff.initial;
    opts[4].target = &d.backoff.factor;
    opts[5].target = &d.backoff.max;
    opts[6].target = &d.backoff.jitter;
    opts[7].target = &d.healthy_after;
    opts[8].target = &d.ping_interval;
    opts[9].target = &d.ping_timeout;
    opts[10].target = &d.queue_timeout;
    opts[11].target = &d.queue_max_bytes;
    opts[12].target = &d.queue_max_count;
    opts[13].target = &d.max_message;
    opts[14].target = &d.drain_timeout;
    opts[15].target = &d.close_timeout;
    opts[16].target = &d.log_level;
    opts[17].target = &d.log_file;
    opts[18].target = &d.no_mcp;
    opts[19].target = &d.init_grace;
    opts[20].target = &d.list_changed;
    opts[21].target = &d.state_dir;
    opts[22].target = &d.hello;
    opts[23].target = &d.hello_ack_timeout;
    opts[24].target = &d.setup_timeout;
    opts[25].target = &d.max_pending;
    opts[26].target = &d.daemon_protocol;
    opts[27].target = &d.no_resend;
    opts[28].target = &d.exai.session_id;
    opts[29].target = &token_env;
    opts[30].target = &d.exai.server_name;
    opts[31].target = &d.exai.ack_grace;
    opts[32].target = &d.tls.ca_file;
    opts[33].target = &d.tls.cert_file;
    opts[34].target = &d.tls.key_file;
    opts[35].target = &d.tls.insecure;
    opts[36].target = &d.proxy;
    opts[37].target = &proxy_user_env;

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
        if (strcmp(a, "--version") == 0) { printf("alwaysup %s (transports: %s)\n", ALWAYSUP_VERSION_STRING, au_transports()); return 0; }
        if (strcmp(a, "-H") == 0 || strcmp(a, "--header") == 0 || strcmp(a, "--header-env") == 0) {
            if (i + 1 >= argc) die("%s needs a value%s", a, "");
            if (strcmp(a, "--header-env") == 0) add_header_env(headers, &nh, argv[++i], a);
            else add_header(headers, &nh, argv[++i], a);
            continue;
        }
        if (strncmp(a, "--header=", 9) == 0) { add_header(headers, &nh, argv[i] + 9, "--header"); continue; }
        if (strncmp(a, "--header-env=", 13) == 0) { add_header_env(headers, &nh, argv[i] + 13, "--header-env"); continue; }
        if (a[0] != '-' || a[1] == 0) {                 /* daemon URLs: tried in turn */
            if (nurls >= 16) die("more than 16 URLs given%s%s", "", "");
            urls[nurls++] = a;
            continue;
        }
        if (a[1] != '-') die("unknown option '%s' (see --help)%s", a, "");
        nl = strcspn(a + 2, "=");
        snprintf(name, sizeof name, "%.*s", (int)nl, a + 2);
        for (k = 0; k < nopts; k++) if (strcmp(name, opts[k].flag) == 0) break;
        if (k == nopts) die("unknown option '%s' (see --help)%s", a, "");
        if (opts[k].kind == FLAG) {
            if (a[2 + nl] == '=') die("--%s takes no value%s", name, "");
            *(int *)opts[k].target = 1;
            continue;
        }
        if (a[2 + nl] == '=') val = a + 3 + nl;
        else if (i + 1 < argc) val = argv[++i];
        else die("--%s needs a value%s", name, "");
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
        if (d.no_mcp) die("--no-mcp does not apply to --daemon-protocol exai%s%s", "", "");
    } else if (d.no_resend) die("--no-resend applies to --daemon-protocol exai only%s%s", "", "");
    if (proxy_user_env) {
        d.proxy_auth = getenv(proxy_user_env);
        if (!d.proxy_auth) die("--proxy-user-env: environment variable %s is not set%s", proxy_user_env, "");
    }
    d.url = url;
    if (nurls > 1) { d.more_urls = urls + 1; d.num_more_urls = nurls - 1; }
    d.headers = headers;
    d.num_headers = nh;
    return au_bridge_run(&d);
}
