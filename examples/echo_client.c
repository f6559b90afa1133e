/* echo_client: the Autobahn|Testsuite echo client, built on the middle layer
   of alwaysup.h (au_client_*: non-blocking TCP around the sans-I/O au_ws
   connection), driven by a plain au_poll() loop (poll, or select on Windows).

     build/echo_client [--agent NAME] [--ca-file PEM] [--insecure] [ws://127.0.0.1:9001]

   wss:// needs a TLS build (build/echo_client-tls, -DALWAYSUP_TLS_OPENSSL):
   --ca-file trusts those CAs instead of the system's, --insecure checks
   nothing (as the shim's options of the same names).

   It speaks the fuzzing server's driver protocol (`wstest -m fuzzingserver`
   or `build/testd --conformance`):
     1. /getCaseCount                   read the number of cases (one text message)
     2. /runCase?case=N&agent=NAME      N = 1..count, one connection each: echo
     3. /updateReports?agent=NAME       ask the server to write its report

   During a case it echoes every complete text message as text and every
   binary message as binary, byte for byte, and sends nothing else. The
   library does the rest on its own: it answers pings (also in the middle
   of a fragmented message), answers the server's close, fails the
   connection with its own close code (1002, 1007, 1009) on a protocol
   error, and never sends a ping of its own.

   Exit status: 0 when the case count was read and every case was run,
   1 when the server could not be reached, 2 for bad arguments. */
#define ALWAYSUP_IMPLEMENTATION
#include "alwaysup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static au_tls_desc tls_opts;             /* --ca-file, --insecure */

/* One connection to url, from connect to TCP close. echo: act as the echo
   client; otherwise keep the first text message in reply (NUL-terminated).
   Returns 0 when the WebSocket opened, -1 when it never did. */
static int session(const char *url, int echo, char *reply, size_t reply_cap) {
    au_client c;
    au_client_desc desc;
    int opened = 0, done = 0, r;

    memset(&desc, 0, sizeof desc);
    desc.url = url;                       /* every other field: the default */
    desc.tls_opts = tls_opts;
    r = au_client_init(&c, &desc);
    if (r != AU_OK) {
        fprintf(stderr, "echo_client: %s: %s%s%s\n", url, au_strerror(r), c.error[0] ? ": " : "", c.error);
        if (r == AU_ETLS) au_client_free(&c);
        return -1;
    }
    au_client_connect(&c, au_now_ms());
    while (!done) {
        au_pollfd p;
        int64_t now = au_now_ms(), deadline = au_client_deadline(&c);
        int timeout = -1;
        au_ws_msg m;

        if (deadline >= 0) timeout = deadline <= now ? 0 : (int)(deadline - now < 60000 ? deadline - now : 60000);
        p.fd = c.sock;
        p.events = c.sock == AU_INVALID_SOCKET ? 0 : au_client_events(&c);   /* no socket: just the deadline */
        au_poll(&p, 1, timeout);

        while (au_client_poll(&c, p.revents, au_now_ms(), &m)) {
            switch (m.type) {
            case AU_WS_OPENED:
                opened = 1;
                break;
            case AU_WS_MESSAGE:           /* m.data is valid until the next au_client_poll */
                if (echo) {
                    r = au_client_send(&c, m.opcode, m.data, m.len);
                    if (r != AU_OK) fprintf(stderr, "echo_client: echo of %lu bytes: %s\n", (unsigned long)m.len, au_strerror(r));
                } else if (!reply[0] && m.opcode == AU_OP_TEXT) {
                    size_t n = m.len < reply_cap - 1 ? m.len : reply_cap - 1;
                    memcpy(reply, m.data, n);
                    reply[n] = 0;
                }
                break;
            case AU_WS_DISCONNECTED:      /* the one event every connection ends with */
                if (!opened) fprintf(stderr, "echo_client: %s: %s\n", url, m.reason);
                done = 1;
                break;
            default:                      /* PINGED, PONGED, PEER_CLOSED, FAILURE: handled inside */
                break;
            }
        }
    }
    au_client_free(&c);
    return opened ? 0 : -1;
}

int main(int argc, char **argv) {
    const char *base = "ws://127.0.0.1:9001", *agent = "alwaysup";
    char url[1024], reply[64];
    long count, i;
    int a, missed = 0;

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--agent") == 0 && a + 1 < argc) agent = argv[++a];
        else if (strcmp(argv[a], "--ca-file") == 0 && a + 1 < argc) tls_opts.ca_file = argv[++a];
        else if (strcmp(argv[a], "--insecure") == 0) tls_opts.insecure = 1;
        else if (argv[a][0] != '-') base = argv[a];
        else {
            fprintf(stderr, "usage: echo_client [--agent NAME] [--ca-file PEM] [--insecure] [ws://host:port | wss://host:port]\n");
            return 2;
        }
    }
    if (strlen(base) + strlen(agent) > sizeof url - 64) {
        fprintf(stderr, "echo_client: URL or agent name too long\n");
        return 2;
    }

    reply[0] = 0;
    snprintf(url, sizeof url, "%s/getCaseCount", base);
    if (session(url, 0, reply, sizeof reply) != 0) return 1;
    count = strtol(reply, NULL, 10);
    if (count <= 0) {
        fprintf(stderr, "echo_client: no case count from %s (got '%s')\n", url, reply);
        return 1;
    }
    for (i = 1; i <= count; i++) {
        snprintf(url, sizeof url, "%s/runCase?case=%ld&agent=%s", base, i, agent);
        if (session(url, 1, NULL, 0) != 0) missed++;
    }
    snprintf(url, sizeof url, "%s/updateReports?agent=%s", base, agent);
    reply[0] = 0;
    if (session(url, 0, reply, sizeof reply) != 0) missed++;
    fprintf(stderr, "echo_client: ran %ld cases%s\n", count, missed ? ", some connections failed" : "");
    return missed ? 1 : 0;
}
