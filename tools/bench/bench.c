/* bench.c - the alwaysup benchmark: one run, contenders measured in turns.

   BUILD AND RUN
     gcc -std=c99 -O2 -Wall -Wextra -I. tools/bench/bench.c -o build/bench
     build/bench [--turns N] [--outage S] [--quick] [--only NAME,...] [--out PATH]
                 [--stdio pipe|socketpair] [--cpus LIST|all] [--round-trips N]
                 [--messages N] [--sizes MIB,...] [--no-large] [--wrap 'TOOL ARGS --']
     make bench      (the full run, writes tools/bench/RESULTS.md)

     --turns N (5)       turns; --quick: 1
     --warmup-turns N    turns run first and not counted (1; --quick: 0): the
                         first seconds after the bench touches its ~150 MiB of
                         buffers are noisy
     --outage S (60)     the daemon outage; 0 skips it; --quick: 1
     --quick             a seconds-long smoke for make test: 1 turn, 20 + 200
                         round trips, 2000 pipelined, 1 MiB, 1 s outage;
                         writes build/bench-quick.md unless --out says otherwise
     --only a,b          contenders: direct, alwaysup, peer-python, peer-node,
                         alwaysup-nginx, alwaysup-wss
     --out PATH          the Markdown report (default tools/bench/RESULTS.md,
                         quick: build/bench-quick.md; '' for none)
     --stdio             how the shims' stdio is connected: pipes (default, as
                         Python's subprocess does) or Unix socket pairs (as
                         Node/libuv, hence most MCP clients, do)
     --cpus LIST|all     the CPUs every process runs on; default: one, the last
                         the bench may use (see pin_cpus below); all: unpinned
     --round-trips N     measured one-at-a-time round trips per turn (2000)
     --messages N        pipelined requests per turn (20000)
     --sizes 1,16,64     the large requests in MiB, smallest first (at most 3)
     --no-large          skip the large requests (for profiling the rest)
     --wrap 'CMD --'     run build/alwaysup under a tool (perf record, valgrind
                         --tool=callgrind, strace -c); its figures are then the tool's

   WHAT IT DOES
     It starts build/testd --mode echo (a fast echo daemon: a JSON-RPC request
     comes back as its answer, {"id":ID,"result":<the request's params>}; see
     the top of tools/testd.c) and measures, in turns (A B C D A B C D ...) so
     that machine drift falls on every contender alike:
       direct       this program's own WebSocket client on alwaysup.h
                    (au_client_* + au_poll, in-process): no stdio hop at all
       alwaysup     build/alwaysup ws://127.0.0.1:PORT, spawned with pipes
       peer-python  tools/bench/peers/python_shim.py: a websockets line bridge
       peer-node    tools/bench/peers/node_shim.mjs: a bridge on the npm ws package
       alwaysup-nginx  build/alwaysup ws://127.0.0.1:PORT2, nginx proxying to the daemon
       alwaysup-wss    build/alwaysup-tls --ca-file CA wss://localhost:PORT3, the same
                    nginx terminating TLS (TLS 1.3, its default cipher) in front of the
                    same daemon: against alwaysup-nginx, the cost of TLS alone
    The nginx front is tests/tls/tlsnginx.py serve (certificates from
    tests/tls/make_certs.sh, one worker, pinned with everything else); the
    nginx contenders take no outage (an outage behind nginx is a 502 from it,
    a different story, measured by tools/soak.py --tls).
     For the shims the bench writes JSON-RPC lines to their stdin and reads
     lines from their stdout. Every turn starts each contender afresh (after
     the machine has settled from the previous one) and takes, in this order:
       1. startup: process start (direct: start of the in-process connect) to
          the answer of the first message (an MCP initialize; then
          notifications/initialized, as a client does)
       2. throughput: 256 requests of 120 bytes in flight, messages per second,
          on the fresh connection (after thousands of one-at-a-time round
          trips TCP's congestion state caps small-segment pipelining for
          everyone, and the figure would measure the kernel)
       3. latency: one 120-byte request at a time, after a warm-up; p50, p99
       4. peak RSS (VmHWM) at rest after 2-3
       5. large messages: 1, 16 and 64 MiB requests (one JSON-RPC message with
          a big string param), MB/s = request bytes / round-trip time, and
          the peak RSS after them (direct: n/a, its client lives in the bench
          process, which holds every contender's big buffers)
     Then, once per contender, the outage: the daemon is killed (SIGKILL) for
     --outage S seconds; the CPU the contender uses meanwhile is read from
     /proc (utime+stime, and the exact per-thread run time from schedstat;
     direct: this process, which does nothing else then); (a) a request sent
     min(S/2, 7.5) s before the restart waits in the shim's queue, and the
     delay from "daemon listening" to its answer is taken; then a second
     outage of min(S, 15) s, long enough for any 0.25 s x1.5 backoff to reach
     its 5 s cap, ends with (b) a new request sent right after the daemon is
     listening, and the delay to its answer is taken.

   Every wait is bounded; children are killed on any exit. Exit status: 0 when
   every contender answered everything, 1 when something broke (a timeout, a
   wrong or missing answer, a contender that died), 2 for bad arguments.
   A contender whose runtime is missing (python3 websockets, node or
   tools/bench/peers/node_modules) is skipped with a loud line; under CI=true,
   or when named by --only, that is a failure too. */
#define ALWAYSUP_IMPLEMENTATION
#include "alwaysup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MIB ((size_t)1 << 20)
#define WINDOW 256                        /* pipelined: requests in flight */
#define SMALL_LEN 120                     /* bytes of one small request */
#define ANSWER_SHRINK 16                  /* ,"method":"echo","params": -> ,"result": */
#define ID_BASE 100000000LL               /* 9-digit ids keep every request the same size */
#define MAX_TURNS 64
#define MAX_SIZES 3

/* ---- small utilities ------------------------------------------------------ */
static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static int ms_until(int64_t deadline_ns) {
    int64_t left = deadline_ns - now_ns();
    if (left <= 0) return 0;
    left = (left + 999999) / 1000000;
    return left > 1000 ? 1000 : (int)left;
}
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}
static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die("out of memory (%lu bytes)", (unsigned long)n);
    return q;
}

typedef struct bbuf { char *p; size_t off, len, cap; } bbuf;
static void bb_reserve(bbuf *b, size_t extra) {
    size_t cap;
    if (b->len + extra <= b->cap) return;
    if (b->off) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return;
    }
    cap = b->cap ? b->cap : 65536;
    while (cap < b->len + extra) cap *= 2;
    b->p = (char *)xrealloc(b->p, cap);
    b->cap = cap;
}
static void bb_append(bbuf *b, const void *p, size_t n) {
    bb_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* ---- children: every one is killed on any exit ---------------------------- */
static volatile pid_t g_kids[16];
static void kid_add(pid_t pid) {
    int i;
    for (i = 0; i < 16; i++)
        if (!g_kids[i]) { g_kids[i] = pid; return; }
}
static void kid_forget(pid_t pid) {
    int i;
    for (i = 0; i < 16; i++)
        if (g_kids[i] == pid) g_kids[i] = 0;
}
static void kill_kids(void) {   /* async-signal-safe */
    int i;
    for (i = 0; i < 16; i++)
        if (g_kids[i] > 0) {
            kill(g_kids[i], SIGKILL);
            waitpid(g_kids[i], NULL, 0);
            g_kids[i] = 0;
        }
}
static void on_signal(int sig) {
    static const char msg[] = "bench: stopped by a signal (or the run's overall time limit); children killed\n";
    kill_kids();
    if (write(2, msg, sizeof msg - 1) < 0) {}
    _exit(128 + sig);
}
/* waits up to ms for pid; 1 when it exited (status in *st) */
static int wait_exit(pid_t pid, int ms, int *st) {
    int64_t end = now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return 1;
        if (now_ns() >= end) return 0;
        usleep(2000);
    }
}
static void stop_kid(pid_t pid, int grace_ms) {
    int st;
    if (pid <= 0) return;
    if (!wait_exit(pid, grace_ms, &st)) {
        kill(pid, SIGTERM);
        if (!wait_exit(pid, 1000, &st)) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
    }
    kid_forget(pid);
}

/* ---- /proc readers ---------------------------------------------------------- */
static long proc_status_kb(pid_t pid, const char *field) {
    char path[64], line[256];
    size_t fl = strlen(field);
    long v = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    if (!(f = fopen(path, "r"))) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') { v = strtol(line + fl + 1, NULL, 10); break; }
    fclose(f);
    return v;
}
/* utime+stime in ms, whole process (10 ms resolution with USER_HZ 100) */
static double proc_cpu_ticks_ms(pid_t pid) {
    char path[64], buf[2048], *p;
    FILE *f;
    size_t n;
    int field;
    unsigned long long ut = 0, stt = 0;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (!(f = fopen(path, "r"))) return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')');
    if (!p) return -1;
    p++;
    for (field = 3; field <= 15 && *p; field++) {   /* fields after the name start at 3 */
        while (*p == ' ') p++;
        if (field == 14) ut = strtoull(p, NULL, 10);
        if (field == 15) stt = strtoull(p, NULL, 10);
        while (*p && *p != ' ') p++;
    }
    return (double)(ut + stt) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}
/* exact run time in ms: the sum of every live thread's schedstat */
static double proc_cpu_exact_ms(pid_t pid) {
    char path[96], buf[128];
    DIR *d;
    struct dirent *e;
    double total = 0;
    int any = 0;
    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    if (!(d = opendir(path))) return -1;
    while ((e = readdir(d))) {
        FILE *f;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/%ld/task/%.20s/schedstat", (long)pid, e->d_name);
        if (!(f = fopen(path, "r"))) continue;
        if (fgets(buf, sizeof buf, f)) { total += (double)strtoull(buf, NULL, 10) / 1e6; any = 1; }
        fclose(f);
    }
    closedir(d);
    return any ? total : -1;
}

/* ---- options and paths -------------------------------------------------------- */
static struct {
    int turns, quick, socketpair, warmup, round_trips, messages, no_large, warmup_turns;
    double outage;
    const char *only, *out, *wrap, *cpus, *label;
    char pinned[64];
    size_t sizes[MAX_SIZES];
    int nsizes;
    char root[PATH_MAX], logdir[PATH_MAX + 64];
    int ci;
} opt;
static char g_cmdline[1024];

/* Every process of the run on the same CPU(s): the bench, the daemon and the
   contenders inherit the bench's affinity. By default one CPU, the last one
   the bench may use: on a small VM, whether the bench, the shim and the
   daemon happen to share a CPU changes a round trip by 2-3x (a wake-up on an
   idle vCPU costs tens of microseconds), run to run; on one CPU the figures
   measure the work each contender does, and hold still. "all" leaves the
   placement to the scheduler. */
static void pin_cpus(void) {
    unsigned long mask[16], want[16];
    long n;
    int cpu, last = -1;
    memset(mask, 0, sizeof mask);
    memset(want, 0, sizeof want);
    if (opt.cpus && strcmp(opt.cpus, "all") == 0) { snprintf(opt.pinned, sizeof opt.pinned, "none (--cpus all)"); return; }
    n = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    if (n <= 0) { snprintf(opt.pinned, sizeof opt.pinned, "none (affinity unavailable)"); return; }
    for (cpu = 0; cpu < (int)(8 * sizeof mask); cpu++)
        if (mask[cpu / (8 * sizeof mask[0])] >> (cpu % (8 * sizeof mask[0])) & 1UL) last = cpu;
    if (opt.cpus) {
        const char *p = opt.cpus;
        opt.pinned[0] = 0;
        while (*p) {
            char *end;
            long c = strtol(p, &end, 10);
            if (end == p || c < 0 || c >= (long)(8 * sizeof want)) die("--cpus: '%s' is not a list of CPU numbers or 'all'", opt.cpus);
            want[c / (8 * sizeof want[0])] |= 1UL << (c % (8 * sizeof want[0]));
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') die("--cpus: '%s' is not a list of CPU numbers or 'all'", opt.cpus);
        }
        snprintf(opt.pinned, sizeof opt.pinned, "CPU %s (--cpus)", opt.cpus);
    } else {
        if (last < 0) return;
        want[last / (8 * sizeof want[0])] |= 1UL << (last % (8 * sizeof want[0]));
        snprintf(opt.pinned, sizeof opt.pinned, "CPU %d (the default; --cpus all to unpin)", last);
    }
    if (syscall(SYS_sched_setaffinity, 0, sizeof want, want) != 0) die("--cpus %s: %s", opt.cpus ? opt.cpus : "", strerror(errno));
}

/* ---- the daemon ------------------------------------------------------------------ */
static struct { pid_t pid; unsigned port; } daemon_;

static int log_fd(const char *name) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%.3900s/%.60s.log", opt.logdir, name);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}
/* starts build/testd --mode echo on port (0: any); *t_listen: when it said so */
static int daemon_start(unsigned port, int64_t *t_listen) {
    int pfd[2], lfd;
    pid_t pid;
    char bin[PATH_MAX + 32], ps[16], line[128];
    size_t have = 0;
    int64_t deadline;
    snprintf(bin, sizeof bin, "%.3900s/build/testd", opt.root);
    snprintf(ps, sizeof ps, "%u", port);
    if (pipe(pfd) != 0) return -1;
    lfd = log_fd("testd");
    pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {   /* dies with the bench, whatever kills the bench */
        int nul = open("/dev/null", O_RDONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(nul, 0);
        dup2(pfd[1], 1);
        if (lfd >= 0) dup2(lfd, 2);
        signal(SIGPIPE, SIG_DFL);
        execl(bin, bin, "--mode", "echo", "--port", ps, (char *)NULL);
        _exit(127);
    }
    kid_add(pid);
    close(pfd[1]);
    if (lfd >= 0) close(lfd);
    deadline = now_ns() + 5000000000LL;
    while (have < sizeof line - 1) {
        struct pollfd p;
        ssize_t r;
        p.fd = pfd[0];
        p.events = POLLIN;
        if (poll(&p, 1, ms_until(deadline)) <= 0 && now_ns() >= deadline) break;
        r = read(pfd[0], line + have, sizeof line - 1 - have);
        if (r <= 0) break;
        have += (size_t)r;
        line[have] = 0;
        if (strchr(line, '\n')) break;
    }
    *t_listen = now_ns();
    close(pfd[0]);
    line[have] = 0;
    if (strncmp(line, "listening ", 10) != 0) {
        fprintf(stderr, "bench: build/testd did not start (see %s/testd.log)\n", opt.logdir);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        kid_forget(pid);
        return -1;
    }
    daemon_.pid = pid;
    daemon_.port = (unsigned)strtoul(line + 10, NULL, 10);
    return 0;
}
static void daemon_kill(void) {
    if (daemon_.pid <= 0) return;
    kill(daemon_.pid, SIGKILL);
    waitpid(daemon_.pid, NULL, 0);
    kid_forget(daemon_.pid);
    daemon_.pid = 0;
}

/* ---- links: one contender's connection, as the bench sees it --------------------- */
enum { L_DIRECT, L_PROC };
typedef void (*msg_fn)(void *ctx, const char *p, size_t n);

typedef struct qmsg { char *p; size_t n; } qmsg;
typedef struct lnk {
    int kind;
    int dead;
    char why[300];
    /* process: its stdin (we write) and stdout (we read lines) */
    pid_t pid;
    int in_fd, out_fd;
    bbuf ob;                 /* owned bytes to write */
    const char *ext;         /* then a borrowed buffer (a large request with its newline) */
    size_t ext_len, ext_off;
    bbuf *ib;                /* lines read; shared, pre-faulted */
    size_t scan;
    /* direct: au_client with the same retry policy as the shim */
    au_client c;
    int open, inited;
    au_backoff bo;
    int64_t retry_at, last_early;   /* ms */
    qmsg *q;
    size_t qn, qcap;
} lnk;

static bbuf g_ib;   /* the line buffer every process link reads into */

static void link_fail(lnk *L, const char *fmt, ...) {
    va_list ap;
    if (L->dead) return;
    L->dead = 1;
    va_start(ap, fmt);
    vsnprintf(L->why, sizeof L->why, fmt, ap);
    va_end(ap);
}

static int start_proc(lnk *L, char *const argv[], const char *logname) {
    int in[2], out[2], lfd, i;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t def;
    char **env;
    size_t ne = 0, k;
    char state[PATH_MAX + 32];
    memset(L, 0, sizeof *L);
    L->kind = L_PROC;
    L->ib = &g_ib;
    g_ib.off = g_ib.len = 0;
    if (opt.socketpair) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, in) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, out) != 0) return -1;
        /* the child reads in[0] and writes out[1]; we use in[1] and out[0] */
    } else if (pipe(in) != 0 || pipe(out) != 0) return -1;
    for (i = 0; i < 2; i++) {
        fcntl(in[i], F_SETFD, FD_CLOEXEC);
        fcntl(out[i], F_SETFD, FD_CLOEXEC);
    }
    lfd = log_fd(logname);
    /* the environment, minus what would change the shims' behaviour, plus a
       state directory of our own (alwaysup keeps the InitializeResult there) */
    for (k = 0; environ[k]; k++) {}
    env = (char **)xrealloc(NULL, (k + 2) * sizeof *env);
    for (k = 0; environ[k]; k++)
        if (strncmp(environ[k], "ALWAYSUP_", 9) != 0 && strncmp(environ[k], "EXAI_", 5) != 0 &&
            strncmp(environ[k], "XDG_STATE_HOME=", 15) != 0)
            env[ne++] = environ[k];
    snprintf(state, sizeof state, "XDG_STATE_HOME=%.3900s/state", opt.logdir);
    env[ne++] = state;
    env[ne] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (lfd >= 0) posix_spawn_file_actions_adddup2(&fa, lfd, 2);
    posix_spawnattr_init(&at);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
    i = posix_spawnp(&L->pid, argv[0], &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    close(in[0]);
    close(out[1]);
    if (lfd >= 0) close(lfd);
    if (i != 0) {
        close(in[1]);
        close(out[0]);
        L->in_fd = L->out_fd = -1;
        link_fail(L, "cannot start %s: %s", argv[0], strerror(i));
        return -1;
    }
    kid_add(L->pid);
    L->in_fd = in[1];
    L->out_fd = out[0];
    fcntl(L->in_fd, F_SETFL, fcntl(L->in_fd, F_GETFL) | O_NONBLOCK);
    fcntl(L->out_fd, F_SETFL, fcntl(L->out_fd, F_GETFL) | O_NONBLOCK);
    return 0;
}
static int start_direct(lnk *L, const char *url) {
    au_client_desc d;
    int r;
    memset(L, 0, sizeof *L);
    L->kind = L_DIRECT;
    L->in_fd = L->out_fd = -1;
    memset(&d, 0, sizeof d);
    d.url = url;
    r = au_client_init(&L->c, &d);
    if (r != AU_OK) { link_fail(L, "au_client_init: %s", au_strerror(r)); return -1; }
    L->inited = 1;
    au_backoff_init(&L->bo, NULL);
    au_client_connect(&L->c, au_now_ms());
    return 0;
}

static void proc_flush(lnk *L) {
    while (!L->dead) {
        const char *p;
        size_t n;
        ssize_t w;
        if (L->ob.len > L->ob.off) { p = L->ob.p + L->ob.off; n = L->ob.len - L->ob.off; }
        else if (L->ext && L->ext_off < L->ext_len) { p = L->ext + L->ext_off; n = L->ext_len - L->ext_off; }
        else { L->ob.off = L->ob.len = 0; L->ext = NULL; return; }
        w = write(L->in_fd, p, n);
        if (w > 0) {
            if (L->ob.len > L->ob.off) L->ob.off += (size_t)w;
            else L->ext_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        link_fail(L, "writing its stdin: %s", w < 0 ? strerror(errno) : "short write");
    }
}
static int link_pending_out(const lnk *L) {
    return L->ob.len > L->ob.off || (L->ext && L->ext_off < L->ext_len);
}
/* queue one message; batch: do not write yet (the next pump does) */
static void link_send(lnk *L, const char *p, size_t n, int batch) {
    if (L->dead) return;
    if (L->kind == L_PROC) {
        bb_append(&L->ob, p, n);
        bb_append(&L->ob, "\n", 1);
        if (!batch) proc_flush(L);
        return;
    }
    if (L->open) {
        int r;
        au_client_cork(&L->c, batch);      /* a batch goes out in as few sends as the socket allows */
        r = au_client_send(&L->c, AU_OP_TEXT, p, n);
        if (r == AU_OK) return;
    }
    /* down: keep it, and (like alwaysup) try at once, at most every 250 ms */
    if (L->qn == L->qcap) {
        L->qcap = L->qcap ? L->qcap * 2 : 16;
        L->q = (qmsg *)xrealloc(L->q, L->qcap * sizeof *L->q);
    }
    L->q[L->qn].p = (char *)xrealloc(NULL, n);
    memcpy(L->q[L->qn].p, p, n);
    L->q[L->qn].n = n;
    L->qn++;
    if (L->c.state == AU_CLIENT_IDLE && !L->open) {
        int64_t now = au_now_ms();
        if (now - L->last_early >= 250 && L->retry_at > now) { L->retry_at = now; L->last_early = now; }
    }
}
/* a large request already ending in '\n' (n counts it), sent without a copy
   by the bench (direct: the library copies and masks it, as it must) */
static void link_send_big(lnk *L, const char *p, size_t n) {
    if (L->kind == L_PROC) {
        proc_flush(L);
        L->ext = p;
        L->ext_len = n;
        L->ext_off = 0;
        proc_flush(L);
        return;
    }
    link_send(L, p, n - 1, 0);
}

static int deliver_lines(lnk *L, msg_fn fn, void *ctx) {
    bbuf *b = L->ib;
    int n = 0;
    for (;;) {
        char *nl = (char *)memchr(b->p + L->scan, '\n', b->len - L->scan);
        size_t len;
        if (!nl) { L->scan = b->len; break; }
        len = (size_t)(nl - (b->p + b->off));
        if (len && b->p[b->off + len - 1] == '\r') len--;
        if (len) { fn(ctx, b->p + b->off, len); n++; }
        b->off = (size_t)(nl - b->p) + 1;
        L->scan = b->off;
    }
    if (b->off == b->len) b->off = b->len = L->scan = 0;
    return n;
}
static int proc_pump(lnk *L, int timeout_ms, msg_fn fn, void *ctx) {
    struct pollfd p[2];
    int n = 1, got = 0, reads = 0;
    if (link_pending_out(L)) proc_flush(L);
    p[0].fd = L->out_fd;
    p[0].events = POLLIN;
    p[0].revents = 0;
    if (link_pending_out(L)) { p[1].fd = L->in_fd; p[1].events = POLLOUT; p[1].revents = 0; n = 2; }
    if (poll(p, (nfds_t)n, timeout_ms) < 0 && errno != EINTR) { link_fail(L, "poll: %s", strerror(errno)); return -1; }
    if (n == 2 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) proc_flush(L);
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        for (;;) {
            bbuf *b = L->ib;
            ssize_t r;
            if (b->cap - b->len < 65536) {   /* out of room: slide the partial line down, then grow */
                if (b->off) {
                    memmove(b->p, b->p + b->off, b->len - b->off);
                    L->scan -= b->off;
                    b->len -= b->off;
                    b->off = 0;
                }
                if (b->cap - b->len < 262144) bb_reserve(b, 262144);
            }
            r = read(L->out_fd, b->p + b->len, b->cap - b->len);
            if (r > 0) {
                b->len += (size_t)r;
                got += deliver_lines(L, fn, ctx);
                if (++reads >= 64 && link_pending_out(L)) proc_flush(L);   /* keep both ways moving */
                continue;
            }
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 && errno == EAGAIN) break;
            link_fail(L, "its stdout closed%s", r < 0 ? " with an error" : " (it exited?)");
            break;
        }
    }
    if (link_pending_out(L)) proc_flush(L);
    return L->dead ? -1 : got;
}
static int direct_pump(lnk *L, int timeout_ms, msg_fn fn, void *ctx) {
    au_pollfd p;
    au_ws_msg m;
    int64_t now = au_now_ms(), dl;
    int got = 0;
    au_client_cork(&L->c, 0);                  /* write what a batch queued */
    if (L->c.state == AU_CLIENT_IDLE && !L->open && now >= L->retry_at) au_client_connect(&L->c, now);
    dl = au_client_deadline(&L->c);
    if (dl >= 0 && dl - now < timeout_ms) timeout_ms = dl <= now ? 0 : (int)(dl - now);
    if (L->c.state == AU_CLIENT_IDLE && L->retry_at - now < timeout_ms) timeout_ms = L->retry_at <= now ? 0 : (int)(L->retry_at - now);
    p.fd = L->c.sock;
    p.events = L->c.sock == AU_INVALID_SOCKET ? 0 : au_client_events(&L->c);
    p.revents = 0;
    au_poll(&p, 1, timeout_ms);
    now = au_now_ms();
    while (au_client_poll(&L->c, p.revents, now, &m)) {
        if (m.type == AU_WS_OPENED) {
            size_t i;
            L->open = 1;
            au_backoff_reset(&L->bo);
            for (i = 0; i < L->qn; i++) {
                au_client_send(&L->c, AU_OP_TEXT, L->q[i].p, L->q[i].n);
                free(L->q[i].p);
            }
            L->qn = 0;
        } else if (m.type == AU_WS_MESSAGE) {
            fn(ctx, (const char *)m.data, m.len);
            got++;
        } else if (m.type == AU_WS_DISCONNECTED) {
            L->open = 0;
            L->retry_at = now + (int64_t)(au_backoff_next(&L->bo, 0) * 1000.0 + 0.5);
        }
    }
    return got;
}
static int link_pump(lnk *L, int timeout_ms, msg_fn fn, void *ctx) {
    if (L->dead) return -1;
    return L->kind == L_PROC ? proc_pump(L, timeout_ms, fn, ctx) : direct_pump(L, timeout_ms, fn, ctx);
}
static pid_t link_pid(const lnk *L) { return L->kind == L_PROC ? L->pid : getpid(); }
/* the client goes away: stdin EOF (a shim should exit), or a close */
static void link_close(lnk *L) {
    size_t i;
    if (L->kind == L_PROC) {
        if (L->in_fd >= 0) close(L->in_fd);
        L->in_fd = -1;
        if (L->pid > 0) stop_kid(L->pid, 3000);
        if (L->out_fd >= 0) close(L->out_fd);
        L->out_fd = -1;
        free(L->ob.p);
        memset(&L->ob, 0, sizeof L->ob);
        g_ib.off = g_ib.len = 0;
        return;
    }
    if (L->inited) {
        int64_t end = now_ns() + 1000000000LL;
        au_client_close(&L->c, AU_CLOSE_NORMAL, NULL, au_now_ms());
        while (L->c.state != AU_CLIENT_IDLE && now_ns() < end) {
            au_pollfd p;
            au_ws_msg m;
            p.fd = L->c.sock;
            p.events = L->c.sock == AU_INVALID_SOCKET ? 0 : au_client_events(&L->c);
            au_poll(&p, 1, 50);
            while (au_client_poll(&L->c, p.revents, au_now_ms(), &m)) {}
        }
        au_client_free(&L->c);
        L->inited = 0;
    }
    for (i = 0; i < L->qn; i++) free(L->q[i].p);
    free(L->q);
    L->q = NULL;
    L->qn = L->qcap = 0;
}

/* ---- requests and answers ------------------------------------------------------------ */
static const char PRE[] = "{\"jsonrpc\":\"2.0\",\"id\":";
#define PRE_LEN (sizeof PRE - 1)

/* the 120-byte request with this id (9 digits) */
static size_t make_small(char *out, long long id) {
    static const char mid[] = ",\"method\":\"echo\",\"params\":{\"pad\":\"";
    size_t n = 0, pad;
    n += (size_t)sprintf(out, "%s%lld%s", PRE, id, mid);
    pad = SMALL_LEN - n - 3;
    memset(out + n, 'x', pad);
    n += pad;
    memcpy(out + n, "\"}}", 3);
    return n + 3;
}
static size_t make_init(char *out, long long id) {
    return (size_t)sprintf(out, "%s%lld,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\","
                                "\"capabilities\":{},\"clientInfo\":{\"name\":\"alwaysup-bench\",\"version\":\"1\"}}}",
                           PRE, id);
}
static const char INITIALIZED[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

/* a large request of exactly size bytes plus '\n': {"data":"xxx..."} */
static char *make_big(size_t size, long long id) {
    char head[128];
    int hl = sprintf(head, "%s%lld,\"method\":\"echo\",\"params\":{\"data\":\"", PRE, id);
    char *p = (char *)xrealloc(NULL, size + 1);
    memcpy(p, head, (size_t)hl);
    memset(p + hl, 'x', size - (size_t)hl - 3);
    memcpy(p + size - 3, "\"}}\n", 4);
    return p;
}

/* what the answers told us */
typedef struct rx {
    long long want;          /* single round trip: the id waited for (-1: none) */
    int got;
    int64_t t_got;
    size_t expect_len;       /* of every answer with an id */
    int big;                 /* check a large answer's body */
    /* pipelined: answers arrive in order from next_id on */
    long long next_id;
    long long count;
    long long errors;
    char error[240];
} rx;

static void rx_error(rx *r, const char *fmt, ...) {
    va_list ap;
    r->errors++;
    if (r->error[0]) return;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}
static void on_answer(void *ctx, const char *p, size_t n) {
    rx *r = (rx *)ctx;
    long long id = 0;
    size_t i = PRE_LEN;
    int digits = 0;
    if (n < PRE_LEN || memcmp(p, PRE, PRE_LEN) != 0) return;   /* notifications (the replayed session's) */
    while (i < n && p[i] >= '0' && p[i] <= '9' && digits < 18) { id = id * 10 + (p[i] - '0'); i++; digits++; }
    if (!digits) return;                                       /* an id that is not ours */
    if (n - i < 10 || memcmp(p + i, ",\"result\":", 10) != 0) {
        rx_error(r, "id %lld answered with: %.160s", id, p);
        if (id == r->want) { r->got = 1; r->t_got = now_ns(); }
        return;
    }
    if (r->expect_len && n != r->expect_len) rx_error(r, "id %lld: answer of %lu bytes, expected %lu", id, (unsigned long)n, (unsigned long)r->expect_len);
    else if (r->big) {
        size_t k;
        if (memcmp(p + n - 3, "\"}}", 3) != 0) rx_error(r, "id %lld: large answer does not end as sent", id);
        for (k = i + 20; k + 3 < n; k += 4093)
            if (p[k] != 'x') { rx_error(r, "id %lld: large answer damaged at byte %lu", id, (unsigned long)k); break; }
    }
    if (r->want >= 0) {
        if (id == r->want) { r->got = 1; r->t_got = now_ns(); }
        return;
    }
    if (id != r->next_id) rx_error(r, "answer for id %lld, expected %lld (out of order or lost)", id, r->next_id);
    r->next_id = id + 1;
    r->count++;
}

/* one request, its answer; 0 and *rtt, or -1 (why in L->why or r->error) */
static int round_trip(lnk *L, rx *r, const char *req, size_t n, long long id, size_t expect_len, int big,
                      double timeout_s, int64_t *rtt) {
    int64_t t0, deadline;
    r->want = id;
    r->got = 0;
    r->expect_len = expect_len;
    r->big = big;
    t0 = now_ns();
    deadline = t0 + (int64_t)(timeout_s * 1e9);
    if (big) link_send_big(L, req, n);
    else link_send(L, req, n, 0);
    while (!r->got) {
        if (now_ns() >= deadline) { link_fail(L, "no answer to id %lld within %.0f s", id, timeout_s); return -1; }
        if (link_pump(L, ms_until(deadline), on_answer, r) < 0) return -1;
    }
    *rtt = r->t_got - t0;
    return r->errors ? -1 : 0;
}

/* ---- results ---------------------------------------------------------------------------- */
enum { K_DIRECT, K_ALWAYSUP, K_PYTHON, K_NODE, K_NGINX, K_WSS, K_COUNT };
typedef struct series { double v[MAX_TURNS]; int n; } series;
typedef struct contender {
    const char *name, *label;
    int kind, selected, available, failed;
    char skip_why[200], fail_why[400];
    series startup_ms, p50_us, p99_us, tput, rss_rest_kb, rss_big_kb, exit_ms, cpu_pipe_us, cpu_rt_us;
    series mbps[MAX_SIZES], rtt_ms[MAX_SIZES];
    double cpu_ticks_ms, cpu_exact_ms, delay_a_ms, delay_b_ms, outage_s;
    int outage_done;
    char outage_note[200];
} contender;
static contender C[K_COUNT];
static void contenders_init(void) {
    static const char *const names[K_COUNT] = { "direct", "alwaysup", "peer-python", "peer-node", "alwaysup-nginx",
                                                "alwaysup-wss" };
    static const char *const labels[K_COUNT] = {
        "direct: the bench's own in-process client on alwaysup.h (au_client_* + au_poll), no stdio hop",
        "alwaysup: build/alwaysup ws://127.0.0.1:PORT, the shim",
        "peer-python: a websockets line bridge (tools/bench/peers/python_shim.py)",
        "peer-node: a bridge on the npm ws package (tools/bench/peers/node_shim.mjs)",
        "alwaysup-nginx: build/alwaysup ws://127.0.0.1:PORT2, nginx proxying to the same daemon (plain)",
        "alwaysup-wss: build/alwaysup-tls --ca-file CA wss://localhost:PORT3, the same nginx terminating TLS"
    };
    int i;
    memset(C, 0, sizeof C);
    for (i = 0; i < K_COUNT; i++) {
        C[i].name = names[i];
        C[i].label = labels[i];
        C[i].kind = i;
    }
}
static void push(series *s, double v) { if (s->n < MAX_TURNS) s->v[s->n++] = v; }
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
typedef struct stat3 { double med, lo, hi; int n; } stat3;
static stat3 stats(const series *s) {
    stat3 r;
    double t[MAX_TURNS];
    memset(&r, 0, sizeof r);
    r.n = s->n;
    if (!s->n) return r;
    memcpy(t, s->v, (size_t)s->n * sizeof *t);
    qsort(t, (size_t)s->n, sizeof *t, cmp_d);
    r.med = s->n % 2 ? t[s->n / 2] : (t[s->n / 2 - 1] + t[s->n / 2]) / 2;
    r.lo = t[0];
    r.hi = t[s->n - 1];
    return r;
}
static double pct(double *v, size_t n, double q) {   /* nearest rank on sorted v */
    size_t k;
    if (!n) return 0;
    k = (size_t)(q * (double)n + 0.999999);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

/* ---- the nginx front: tests/tls/tlsnginx.py serve, for alwaysup-nginx and alwaysup-wss ---- */
static struct { pid_t pid; int in_fd; unsigned tls_port, plain_port; char ca[PATH_MAX]; char why[300]; } front;
static char g_url_nginx[64], g_url_wss[64];

static int front_start(unsigned upstream) {
    int in[2], out[2], lfd;
    pid_t pid;
    char script[PATH_MAX + 64], dir[PATH_MAX + 64], up[16], line[PATH_MAX + 128];
    size_t have = 0;
    int64_t deadline;
    snprintf(script, sizeof script, "%.3900s/tests/tls/tlsnginx.py", opt.root);
    snprintf(dir, sizeof dir, "%.3900s/nginx", opt.logdir);
    snprintf(up, sizeof up, "%u", upstream);
    if (pipe(in) != 0) return -1;
    if (pipe(out) != 0) { close(in[0]); close(in[1]); return -1; }
    lfd = log_fd("nginx-front");
    pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {   /* ends with its stdin, or with the bench (and takes nginx along) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (lfd >= 0) dup2(lfd, 2);
        close(in[1]);
        close(out[0]);
        signal(SIGPIPE, SIG_DFL);
        execl("/usr/bin/python3", "/usr/bin/python3", script, "serve", "--upstream", up, "--dir", dir, "--plain", (char *)NULL);
        _exit(127);
    }
    kid_add(pid);
    close(in[0]);
    close(out[1]);
    if (lfd >= 0) close(lfd);
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    deadline = now_ns() + 60000000000LL;    /* certificates are made on the first run */
    while (have < sizeof line - 1) {
        struct pollfd p;
        ssize_t r;
        p.fd = out[0];
        p.events = POLLIN;
        if (poll(&p, 1, ms_until(deadline)) <= 0 && now_ns() >= deadline) break;
        r = read(out[0], line + have, sizeof line - 1 - have);
        if (r <= 0) break;
        have += (size_t)r;
        line[have] = 0;
        if (strchr(line, '\n')) break;
    }
    close(out[0]);
    line[have] = 0;
    line[strcspn(line, "\n")] = 0;
    front.pid = pid;
    front.in_fd = in[1];
    if (sscanf(line, "listening %u %u %4000s", &front.tls_port, &front.plain_port, front.ca) != 3) {
        snprintf(front.why, sizeof front.why, "the nginx front did not start (%.200s; see %.60s/nginx-front.log)",
                 line[0] ? line : "no output", "build/bench-logs");
        return -1;
    }
    snprintf(g_url_nginx, sizeof g_url_nginx, "ws://127.0.0.1:%u", front.plain_port);
    snprintf(g_url_wss, sizeof g_url_wss, "wss://localhost:%u", front.tls_port);
    return 0;
}
static void front_stop(void) {
    if (front.pid <= 0) return;
    close(front.in_fd);                    /* stdin EOF: it stops nginx and exits */
    stop_kid(front.pid, 5000);
    front.pid = 0;
}

/* ---- one turn of one contender ------------------------------------------------------------- */
static char g_url[64];
static char *g_big[MAX_SIZES];
static long long g_id = ID_BASE;

static int contender_start(contender *k, lnk *L) {
    char bin[PATH_MAX + 64], script[PATH_MAX + 64];
    char *argv[6];
    switch (k->kind) {
    case K_DIRECT: return start_direct(L, g_url);
    case K_NGINX:
        snprintf(bin, sizeof bin, "%.3900s/build/alwaysup", opt.root);
        argv[0] = bin; argv[1] = g_url_nginx; argv[2] = NULL;
        return start_proc(L, argv, k->name);
    case K_WSS:
        snprintf(bin, sizeof bin, "%.3900s/build/alwaysup-tls", opt.root);
        argv[0] = bin; argv[1] = (char *)"--ca-file"; argv[2] = front.ca; argv[3] = g_url_wss; argv[4] = NULL;
        return start_proc(L, argv, k->name);
    case K_ALWAYSUP:
        snprintf(bin, sizeof bin, "%.3900s/build/alwaysup", opt.root);
        if (opt.wrap) {   /* profiling: --wrap 'perf record -g -o FILE --' runs it under a tool */
            static char wbuf[1024];
            char *wargv[40], *tok;
            int n = 0;
            snprintf(wbuf, sizeof wbuf, "%s", opt.wrap);
            for (tok = strtok(wbuf, " "); tok && n < 36; tok = strtok(NULL, " ")) wargv[n++] = tok;
            wargv[n++] = bin;
            wargv[n++] = g_url;
            wargv[n] = NULL;
            return start_proc(L, wargv, k->name);
        }
        argv[0] = bin; argv[1] = g_url; argv[2] = NULL;
        return start_proc(L, argv, k->name);
    case K_PYTHON:
        snprintf(script, sizeof script, "%.3900s/tools/bench/peers/python_shim.py", opt.root);
        argv[0] = (char *)"/usr/bin/python3"; argv[1] = script; argv[2] = g_url; argv[3] = NULL;
        return start_proc(L, argv, k->name);
    default:
        snprintf(script, sizeof script, "%.3900s/tools/bench/peers/node_shim.mjs", opt.root);
        argv[0] = (char *)"node"; argv[1] = script; argv[2] = g_url; argv[3] = NULL;
        return start_proc(L, argv, k->name);
    }
}
static void fail(contender *k, const char *phase, lnk *L, rx *r) {
    if (k->failed) return;
    k->failed = 1;
    snprintf(k->fail_why, sizeof k->fail_why, "%s: %s", phase,
             r && r->error[0] ? r->error : L && L->why[0] ? L->why : "failed");
}
/* the MCP opening: initialize (its answer ends startup), then initialized */
static int session_open(contender *k, lnk *L, rx *r, int64_t t0, double *startup_ms) {
    char buf[512];
    size_t n = make_init(buf, g_id);
    int64_t rtt;
    /* "initialize" is 6 bytes longer than "echo", so its answer is 6 bytes shorter still */
    if (round_trip(L, r, buf, n, g_id, n - ANSWER_SHRINK - 6, 0, 30, &rtt) != 0) { fail(k, "startup", L, r); return -1; }
    g_id++;
    if (startup_ms) *startup_ms = (double)(r->t_got - t0) / 1e6;
    link_send(L, INITIALIZED, sizeof INITIALIZED - 1, 0);
    return 0;
}
static int run_turn(contender *k) {
    lnk L;
    rx r;
    char req[SMALL_LEN + 8];
    int64_t t0, rtt;
    double *lat, startup, cpu_rt0 = -1;
    int i, s, rc = -1;
    memset(&r, 0, sizeof r);
    r.want = -1;
    lat = (double *)xrealloc(NULL, (size_t)opt.round_trips * sizeof *lat);
    t0 = now_ns();
    if (contender_start(k, &L) != 0) { fail(k, "start", &L, NULL); free(lat); return -1; }
    if (session_open(k, &L, &r, t0, &startup) != 0) goto out;
    /* throughput: WINDOW in flight, first, on the fresh connection: after
       thousands of one-at-a-time round trips, TCP (BBR here) settles on a
       small congestion window that then limits small-segment pipelining
       for every contender, and the figure would measure that instead */
    {
        long long first = g_id, sent = 0, total = opt.messages;
        int64_t start = now_ns(), deadline = start + 120000000000LL;
        double cpu0 = k->kind != K_DIRECT ? proc_cpu_exact_ms(L.pid) : -1;
        r.want = -1;
        r.next_id = first;
        r.count = 0;
        r.expect_len = SMALL_LEN - ANSWER_SHRINK;
        r.big = 0;
        while (r.count < total) {
            while (sent < total && sent - r.count < WINDOW) {
                size_t n = make_small(req, first + sent);
                link_send(&L, req, n, 1);
                sent++;
            }
            if (now_ns() >= deadline) { link_fail(&L, "pipelined: %lld of %lld answered in 120 s", r.count, total); break; }
            if (link_pump(&L, ms_until(deadline), on_answer, &r) < 0 || r.errors) break;
        }
        g_id = first + total;
        if (r.count < total || r.errors) { fail(k, "throughput", &L, &r); goto out; }
        push(&k->tput, (double)total / ((double)(now_ns() - start) / 1e9));
        if (cpu0 >= 0) push(&k->cpu_pipe_us, (proc_cpu_exact_ms(L.pid) - cpu0) * 1000.0 / (double)total);
    }
    /* latency: one at a time */
    for (i = 0; i < opt.warmup + opt.round_trips; i++) {
        size_t n = make_small(req, g_id);
        if (i == opt.warmup && k->kind != K_DIRECT) cpu_rt0 = proc_cpu_exact_ms(L.pid);
        if (round_trip(&L, &r, req, n, g_id, n - ANSWER_SHRINK, 0, 10, &rtt) != 0) { fail(k, "latency", &L, &r); goto out; }
        g_id++;
        if (i >= opt.warmup) lat[i - opt.warmup] = (double)rtt / 1e3;
    }
    if (cpu_rt0 >= 0) push(&k->cpu_rt_us, (proc_cpu_exact_ms(L.pid) - cpu_rt0) * 1000.0 / (double)opt.round_trips);
    qsort(lat, (size_t)opt.round_trips, sizeof *lat, cmp_d);
    push(&k->startup_ms, startup);
    push(&k->p50_us, pct(lat, (size_t)opt.round_trips, 0.50));
    push(&k->p99_us, pct(lat, (size_t)opt.round_trips, 0.99));
    if (k->kind != K_DIRECT) push(&k->rss_rest_kb, (double)proc_status_kb(L.pid, "VmHWM"));
    /* large messages, smallest first */
    for (s = 0; s < opt.nsizes && !opt.no_large; s++) {
        size_t size = opt.sizes[s];
        char head[64];
        int hl = sprintf(head, "%lld", g_id);
        memcpy(g_big[s] + PRE_LEN, head, (size_t)hl);   /* the id in place: 9 digits, same length */
        r.error[0] = 0;
        if (round_trip(&L, &r, g_big[s], size + 1, g_id, size - ANSWER_SHRINK, 1, 120, &rtt) != 0) {
            fail(k, "large message", &L, &r);
            goto out;
        }
        g_id++;
        push(&k->rtt_ms[s], (double)rtt / 1e6);
        push(&k->mbps[s], (double)size / ((double)rtt / 1e9) / 1e6);
    }
    if (k->kind != K_DIRECT && !opt.no_large) push(&k->rss_big_kb, (double)proc_status_kb(L.pid, "VmHWM"));
    rc = 0;
out:
    {
        int64_t tc = now_ns();
        link_close(&L);
        if (rc == 0) push(&k->exit_ms, (double)(now_ns() - tc) / 1e6);
    }
    free(lat);
    return rc;
}

/* Lets the machine settle after a contender: the exited process's memory
   torn down, the daemon done freeing the last connection's buffers (it
   uses no CPU for 20 ms in a row); at most 2 s. */
static void settle(void) {
    int64_t end = now_ns() + 2000000000LL;
    double last = -1;
    usleep(200000);
    while (now_ns() < end && daemon_.pid > 0) {
        double c = proc_cpu_exact_ms(daemon_.pid);
        if (c >= 0 && c == last) break;
        last = c;
        usleep(20000);
    }
}

/* ---- the outage, once per contender ------------------------------------------------------------ */
static int pump_until(lnk *L, rx *r, int64_t until) {
    while (now_ns() < until)
        if (link_pump(L, ms_until(until), on_answer, r) < 0) return -1;
    return 0;
}
static int wait_answer(lnk *L, rx *r, int64_t deadline) {
    while (!r->got) {
        if (now_ns() >= deadline) return -1;
        if (link_pump(L, ms_until(deadline), on_answer, r) < 0) return -1;
    }
    return 0;
}
static int run_outage(contender *k) {
    lnk L;
    rx r;
    char req[SMALL_LEN + 8];
    int64_t t_kill, t_listen, t0, rtt;
    double S = opt.outage, Q = S / 2 < 7.5 ? S / 2 : 7.5, B = S < 15 ? S : 15, c0, c1, e0, e1;
    long long ida, idb;
    size_t n;
    int i, rc = -1;
    pid_t pid;
    memset(&r, 0, sizeof r);
    r.want = -1;
    t0 = now_ns();
    if (contender_start(k, &L) != 0) { fail(k, "outage start", &L, NULL); return -1; }
    if (session_open(k, &L, &r, t0, NULL) != 0) goto out;
    for (i = 0; i < 5; i++) {
        n = make_small(req, g_id);
        if (round_trip(&L, &r, req, n, g_id, n - ANSWER_SHRINK, 0, 10, &rtt) != 0) { fail(k, "outage warm-up", &L, &r); goto out; }
        g_id++;
    }
    pid = link_pid(&L);
    /* outage 1: S seconds; (a) waits in the queue for the last Q of them */
    daemon_kill();
    t_kill = now_ns();
    c0 = proc_cpu_ticks_ms(pid);
    e0 = proc_cpu_exact_ms(pid);
    if (pump_until(&L, &r, t_kill + (int64_t)((S - Q) * 1e9)) != 0) { fail(k, "outage", &L, &r); goto out; }
    ida = g_id++;
    n = make_small(req, ida);
    r.want = ida;
    r.got = 0;
    r.expect_len = n - ANSWER_SHRINK;
    link_send(&L, req, n, 0);
    if (pump_until(&L, &r, t_kill + (int64_t)(S * 1e9)) != 0) { fail(k, "outage", &L, &r); goto out; }
    c1 = proc_cpu_ticks_ms(pid);
    e1 = proc_cpu_exact_ms(pid);
    k->cpu_ticks_ms = c1 - c0;
    k->cpu_exact_ms = e1 - e0;
    k->outage_s = (double)(now_ns() - t_kill) / 1e9;
    if (r.got) { rx_error(&r, "the request queued during the outage was answered while the daemon was down"); fail(k, "outage", &L, &r); goto out; }
    if (daemon_start(daemon_.port, &t_listen) != 0) die("cannot restart the daemon on port %u", daemon_.port);
    if (wait_answer(&L, &r, t_listen + 20000000000LL) != 0 || r.errors) {
        if (!r.errors && !L.dead) link_fail(&L, "the request queued during the outage had no answer 20 s after the daemon was back");
        fail(k, "after the outage (a)", &L, &r);
        goto out;
    }
    k->delay_a_ms = (double)(r.t_got - t_listen) / 1e6;
    /* outage 2: B seconds, then (b) right after the daemon listens */
    daemon_kill();
    t_kill = now_ns();
    if (pump_until(&L, &r, t_kill + (int64_t)(B * 1e9)) != 0) { fail(k, "outage 2", &L, &r); goto out; }
    if (daemon_start(daemon_.port, &t_listen) != 0) die("cannot restart the daemon on port %u", daemon_.port);
    idb = g_id++;
    n = make_small(req, idb);
    r.want = idb;
    r.got = 0;
    link_send(&L, req, n, 0);
    if (wait_answer(&L, &r, t_listen + 20000000000LL) != 0 || r.errors) {
        if (!r.errors && !L.dead) link_fail(&L, "the request sent after the daemon was back had no answer within 20 s");
        fail(k, "after the outage (b)", &L, &r);
        goto out;
    }
    k->delay_b_ms = (double)(r.t_got - t_listen) / 1e6;
    k->outage_done = 1;
    rc = 0;
out:
    link_close(&L);
    if (!daemon_.pid && daemon_start(daemon_.port, &t_listen) != 0) die("cannot restart the daemon on port %u", daemon_.port);
    return rc;
}

/* ---- availability and versions --------------------------------------------------------------------- */
/* runs argv, captures stdout (bounded by 15 s); the exit status, -1 on failure */
static int run_capture(char *const argv[], char *out, size_t cap) {
    int pfd[2], st = -1, nul;
    pid_t pid;
    size_t have = 0;
    int64_t deadline = now_ns() + 15000000000LL;
    posix_spawn_file_actions_t fa;
    if (pipe(pfd) != 0) return -1;
    fcntl(pfd[0], F_SETFD, FD_CLOEXEC);
    fcntl(pfd[1], F_SETFD, FD_CLOEXEC);
    nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    if (nul >= 0) { posix_spawn_file_actions_adddup2(&fa, nul, 0); posix_spawn_file_actions_adddup2(&fa, nul, 2); }
    if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (nul >= 0) close(nul);
    if (pid < 0) { close(pfd[0]); return -1; }
    kid_add(pid);
    for (;;) {
        struct pollfd p;
        ssize_t r;
        p.fd = pfd[0];
        p.events = POLLIN;
        if (poll(&p, 1, ms_until(deadline)) <= 0 && now_ns() >= deadline) break;
        r = read(pfd[0], out + have, cap - 1 - have);
        if (r <= 0) break;
        have += (size_t)r;
        if (have >= cap - 1) break;
    }
    out[have] = 0;
    while (have && (out[have - 1] == '\n' || out[have - 1] == '\r')) out[--have] = 0;
    close(pfd[0]);
    if (!wait_exit(pid, ms_until(deadline) + 10, &st)) { kill(pid, SIGKILL); waitpid(pid, &st, 0); st = -1; }
    kid_forget(pid);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
static char v_python[128] = "n/a", v_node[128] = "n/a", v_ws[64] = "n/a", v_cc[160], v_src[300] = "";
static char v_nginx[128] = "n/a", v_tls[128] = "n/a";
static void check_available(void) {
    char buf[256], path[PATH_MAX + 64];
    struct stat st;
    int i;
    for (i = 0; i < K_COUNT; i++) C[i].available = 1;
    snprintf(path, sizeof path, "%.3900s/build/alwaysup", opt.root);
    if (access(path, X_OK) != 0) { C[K_ALWAYSUP].available = 0; snprintf(C[K_ALWAYSUP].skip_why, 200, "build/alwaysup is missing (make)"); }
    if (access(path, X_OK) != 0) { C[K_NGINX].available = 0; snprintf(C[K_NGINX].skip_why, 200, "build/alwaysup is missing (make)"); }
    snprintf(path, sizeof path, "%.3900s/build/alwaysup-tls", opt.root);
    if (access(path, X_OK) != 0) { C[K_WSS].available = 0; snprintf(C[K_WSS].skip_why, 200, "build/alwaysup-tls is missing (make build/alwaysup-tls)"); }
    else if (C[K_WSS].selected) {
        char *argv[] = { path, (char *)"--version", NULL };
        char *t;
        if (run_capture(argv, buf, sizeof buf) >= 0 && (t = strstr(buf, "tls (")) != NULL) {
            t += 5;
            t[strcspn(t, ")")] = 0;
            snprintf(v_tls, sizeof v_tls, "%.120s", t);
        }
    }
    if (C[K_NGINX].selected || C[K_WSS].selected) {
        char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"/usr/sbin/nginx -v 2>&1", NULL };
        if (run_capture(argv, buf, sizeof buf) != 0 || !strstr(buf, "nginx")) {
            C[K_NGINX].available = C[K_WSS].available = 0;
            snprintf(C[K_NGINX].skip_why, 200, "/usr/sbin/nginx is missing (apt-get install nginx)");
            snprintf(C[K_WSS].skip_why, 200, "/usr/sbin/nginx is missing (apt-get install nginx)");
        } else {
            char *v = strstr(buf, "nginx/");
            snprintf(v_nginx, sizeof v_nginx, "%.100s", v ? v : buf);
        }
    }
    {
        char *argv[] = { (char *)"/usr/bin/python3", (char *)"-c",
                         (char *)"import sys, websockets; print(sys.version.split()[0], websockets.__version__)", NULL };
        if (C[K_PYTHON].selected && run_capture(argv, buf, sizeof buf) == 0) {
            char *sp = strchr(buf, ' ');
            if (sp) { *sp = 0; snprintf(v_python, sizeof v_python, "Python %.40s, websockets %.40s", buf, sp + 1); }
        } else if (C[K_PYTHON].selected) {
            C[K_PYTHON].available = 0;
            snprintf(C[K_PYTHON].skip_why, 200, "/usr/bin/python3 with websockets is missing (apt-get install python3-websockets)");
        }
    }
    if (C[K_NODE].selected) {
        char *argv[] = { (char *)"node", (char *)"--version", NULL };
        snprintf(path, sizeof path, "%.3900s/tools/bench/peers/node_modules/ws/package.json", opt.root);
        if (run_capture(argv, buf, sizeof buf) != 0) {
            C[K_NODE].available = 0;
            snprintf(C[K_NODE].skip_why, 200, "node is missing");
        } else if (stat(path, &st) != 0) {
            C[K_NODE].available = 0;
            snprintf(C[K_NODE].skip_why, 200, "tools/bench/peers/node_modules is missing (npm ci --prefix tools/bench/peers)");
        } else {
            FILE *f = fopen(path, "r");
            snprintf(v_node, sizeof v_node, "node %.60s", buf);
            if (f) {
                char line[256];
                while (fgets(line, sizeof line, f)) {
                    char *v = strstr(line, "\"version\"");
                    if (v && (v = strchr(v + 9, '"'))) {
                        char *e = strchr(v + 1, '"');
                        if (e) { *e = 0; snprintf(v_ws, sizeof v_ws, "ws %s", v + 1); }
                        break;
                    }
                }
                fclose(f);
            }
        }
    }
#if defined(__clang__)
    snprintf(v_cc, sizeof v_cc, "%s", __VERSION__);
#else
    snprintf(v_cc, sizeof v_cc, "gcc %s", __VERSION__);
#endif
    {   /* which source the shim was built from, when this is a git checkout */
        char rev[64], dirty[512];
        char *a1[] = { (char *)"git", (char *)"-C", opt.root, (char *)"rev-parse", (char *)"--short", (char *)"HEAD", NULL };
        char *a2[] = { (char *)"git", (char *)"-C", opt.root, (char *)"status", (char *)"--porcelain", (char *)"--",
                       (char *)"alwaysup.h", (char *)"examples/alwaysup.c", (char *)"tools/testd.c", NULL };
        if (run_capture(a1, rev, sizeof rev) == 0 && rev[0]) {
            if (run_capture(a2, dirty, sizeof dirty) != 0) dirty[0] = 0;
            for (i = 0; dirty[i]; i++) if (dirty[i] == '\n') dirty[i] = ';';
            snprintf(v_src, sizeof v_src, "git %.20s%s%.200s%s", rev, dirty[0] ? " with uncommitted changes (" : "",
                     dirty, dirty[0] ? ")" : ", as committed");
        }
    }
}

/* ---- reporting -------------------------------------------------------------------------------------- */
static void fmt_stat(char *out, size_t cap, const series *s, const char *f) {
    stat3 t = stats(s);
    char a[32], b[32], c[32];
    if (!t.n) { snprintf(out, cap, "-"); return; }
    snprintf(a, sizeof a, f, t.med);
    snprintf(b, sizeof b, f, t.lo);
    snprintf(c, sizeof c, f, t.hi);
    if (t.n == 1) snprintf(out, cap, "%s", a);
    else snprintf(out, cap, "%.24s [%.24s-%.24s]", a, b, c);
}
static void fmt_val(char *out, size_t cap, double v, const char *f, int ok) {
    if (!ok) snprintf(out, cap, "-");
    else snprintf(out, cap, f, v);
}
static const char *size_name(size_t s, char *buf) {
    sprintf(buf, "%lu MiB", (unsigned long)(s / MIB));
    return buf;
}

typedef struct row { char name[64]; char cell[K_COUNT][80]; } row;
static row g_rows[40];
static int g_nrows;
static int g_cols[K_COUNT], g_ncols;

static row *add_row(const char *name) {
    row *r = &g_rows[g_nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    return r;
}
static void build_rows(void) {
    int c, s;
    row *r;
    char nb[32], name[64];
    g_nrows = 0;
#define SERIES_ROW(title, field, f)                                                  \
    r = add_row(title);                                                              \
    for (c = 0; c < g_ncols; c++) fmt_stat(r->cell[c], 80, &C[g_cols[c]].field, f);
    SERIES_ROW("startup ms", startup_ms, "%.1f")
    SERIES_ROW("latency p50 us", p50_us, "%.0f")
    SERIES_ROW("latency p99 us", p99_us, "%.0f")
    SERIES_ROW("pipelined msg/s", tput, "%.0f")
    for (s = 0; s < opt.nsizes; s++) {
        snprintf(name, sizeof name, "%s MB/s", size_name(opt.sizes[s], nb));
        r = add_row(name);
        for (c = 0; c < g_ncols; c++) fmt_stat(r->cell[c], 80, &C[g_cols[c]].mbps[s], "%.0f");
    }
    snprintf(name, sizeof name, "%s round trip ms", size_name(opt.sizes[opt.nsizes - 1], nb));
    r = add_row(name);
    for (c = 0; c < g_ncols; c++) fmt_stat(r->cell[c], 80, &C[g_cols[c]].rtt_ms[opt.nsizes - 1], "%.1f");
    SERIES_ROW("exit after stdin EOF ms", exit_ms, "%.1f")
    r = add_row("shim CPU us per round trip");
    for (c = 0; c < g_ncols; c++) {
        if (C[g_cols[c]].kind == K_DIRECT) snprintf(r->cell[c], 80, "n/a");
        else fmt_stat(r->cell[c], 80, &C[g_cols[c]].cpu_rt_us, "%.1f");
    }
    r = add_row("shim CPU us per pipelined msg");
    for (c = 0; c < g_ncols; c++) {
        if (C[g_cols[c]].kind == K_DIRECT) snprintf(r->cell[c], 80, "n/a");
        else fmt_stat(r->cell[c], 80, &C[g_cols[c]].cpu_pipe_us, "%.2f");
    }
    r = add_row("peak RSS at rest KiB");
    for (c = 0; c < g_ncols; c++) {
        if (C[g_cols[c]].kind == K_DIRECT) snprintf(r->cell[c], 80, "n/a");
        else fmt_stat(r->cell[c], 80, &C[g_cols[c]].rss_rest_kb, "%.0f");
    }
    snprintf(name, sizeof name, "peak RSS after %s KiB", size_name(opt.sizes[opt.nsizes - 1], nb));
    r = add_row(name);
    for (c = 0; c < g_ncols; c++) {
        if (C[g_cols[c]].kind == K_DIRECT) snprintf(r->cell[c], 80, "n/a");
        else fmt_stat(r->cell[c], 80, &C[g_cols[c]].rss_big_kb, "%.0f");
    }
    if (opt.outage > 0) {
        snprintf(name, sizeof name, "outage CPU ms (%.0f s)", opt.outage);
        r = add_row(name);
        for (c = 0; c < g_ncols; c++) {
            contender *k = &C[g_cols[c]];
            if (k->kind == K_NGINX || k->kind == K_WSS) snprintf(r->cell[c], 80, "n/a");   /* no outage behind nginx */
            else if (!k->outage_done) snprintf(r->cell[c], 80, "-");
            else snprintf(r->cell[c], 80, "%.2f (ticks %.0f)", k->cpu_exact_ms, k->cpu_ticks_ms);
        }
        r = add_row("(a) queued, answered ms");
        for (c = 0; c < g_ncols; c++) fmt_val(r->cell[c], 80, C[g_cols[c]].delay_a_ms, "%.1f", C[g_cols[c]].outage_done);
        r = add_row("(b) new, answered ms");
        for (c = 0; c < g_ncols; c++) fmt_val(r->cell[c], 80, C[g_cols[c]].delay_b_ms, "%.1f", C[g_cols[c]].outage_done);
    }
#undef SERIES_ROW
}
static void print_table(FILE *f, int md) {
    int c, i, w0 = 30, w[K_COUNT];
    for (c = 0; c < g_ncols; c++) {
        w[c] = (int)strlen(C[g_cols[c]].name);
        for (i = 0; i < g_nrows; i++)
            if ((int)strlen(g_rows[i].cell[c]) > w[c]) w[c] = (int)strlen(g_rows[i].cell[c]);
    }
    if (md) {
        fprintf(f, "| figure |");
        for (c = 0; c < g_ncols; c++) fprintf(f, " %s |", C[g_cols[c]].name);
        fprintf(f, "\n|---|");
        for (c = 0; c < g_ncols; c++) fprintf(f, "---|");
        fprintf(f, "\n");
        for (i = 0; i < g_nrows; i++) {
            fprintf(f, "| %s |", g_rows[i].name);
            for (c = 0; c < g_ncols; c++) fprintf(f, " %s |", g_rows[i].cell[c]);
            fprintf(f, "\n");
        }
        return;
    }
    fprintf(f, "%-*s", w0, "");
    for (c = 0; c < g_ncols; c++) fprintf(f, "  %*s", w[c], C[g_cols[c]].name);
    fprintf(f, "\n");
    for (i = 0; i < g_nrows; i++) {
        fprintf(f, "%-*s", w0, g_rows[i].name);
        for (c = 0; c < g_ncols; c++) fprintf(f, "  %*s", w[c], g_rows[i].cell[c]);
        fprintf(f, "\n");
    }
}

/* ratios against direct, and alwaysup's targets */
static double med(const series *s) { return stats(s).med; }
static int have(const series *s) { return s->n > 0; }
static void print_ratios(FILE *f, int md) {
    contender *d = &C[K_DIRECT];
    int c, L = opt.nsizes - 1;
    char nb[32];
    if (!d->selected || !have(&d->p50_us)) {
        fprintf(f, "%s(no ratios: direct was not measured)\n", md ? "" : "  ");
        return;
    }
    if (md) fprintf(f, "| against direct | added p50 us | p50 ratio | p99 ratio | throughput ratio | %s round trip ratio | startup ratio | outage CPU ratio | (a) delay ratio | (b) delay ratio |\n|---|---|---|---|---|---|---|---|---|---|\n", size_name(opt.sizes[L], nb));
    else fprintf(f, "%-14s %12s %9s %9s %10s %12s %9s %10s %9s %9s\n", "vs direct", "added p50 us", "p50 x", "p99 x", "msg/s x", "largest RTT x", "startup x", "outage CPU x", "(a) x", "(b) x");
    for (c = 0; c < g_ncols; c++) {
        contender *k = &C[g_cols[c]];
        char a[32], b[32], cc[32], dd[32], e[32], g[32], h[32], i2[32], j[32];
        if (k->kind == K_DIRECT || !have(&k->p50_us)) continue;
        snprintf(a, sizeof a, "%+.1f", med(&k->p50_us) - med(&d->p50_us));
        snprintf(b, sizeof b, "%.2f", med(&k->p50_us) / med(&d->p50_us));
        snprintf(cc, sizeof cc, "%.2f", med(&k->p99_us) / med(&d->p99_us));
        snprintf(dd, sizeof dd, "%.2f", med(&k->tput) / med(&d->tput));
        if (have(&k->rtt_ms[L]) && have(&d->rtt_ms[L])) snprintf(e, sizeof e, "%.2f", med(&k->rtt_ms[L]) / med(&d->rtt_ms[L]));
        else snprintf(e, sizeof e, "-");
        snprintf(g, sizeof g, "%.1f", med(&k->startup_ms) / med(&d->startup_ms));
        if (k->outage_done && d->outage_done) {
            snprintf(h, sizeof h, d->cpu_exact_ms > 0 ? "%.1f" : "-", k->cpu_exact_ms / d->cpu_exact_ms);
            snprintf(i2, sizeof i2, "%.2f", k->delay_a_ms / d->delay_a_ms);
            snprintf(j, sizeof j, "%.1f", k->delay_b_ms / d->delay_b_ms);
        } else { strcpy(h, "-"); strcpy(i2, "-"); strcpy(j, "-"); }
        if (md) fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k->name, a, b, cc, dd, e, g, h, i2, j);
        else fprintf(f, "%-14s %12s %9s %9s %10s %12s %9s %10s %9s %9s\n", k->name, a, b, cc, dd, e, g, h, i2, j);
    }
}
/* what TLS adds: alwaysup-wss against alwaysup-nginx, the same path through the same nginx */
static void print_tls_cost(FILE *f, int md) {
    contender *w = &C[K_WSS], *p = &C[K_NGINX];
    int s;
    char nb[32], a[64], b[64], c[96];
    if (!w->selected || !p->selected || !have(&w->p50_us) || !have(&p->p50_us)) {
        fprintf(f, "%s(no TLS cost: alwaysup-nginx and alwaysup-wss were not both measured)\n", md ? "" : "  ");
        return;
    }
    if (md) fprintf(f, "| figure (medians) | alwaysup-nginx, ws:// | alwaysup-wss, wss:// | TLS cost |\n|---|---|---|---|\n");
    else fprintf(f, "%-34s %16s %16s %26s\n", "TLS cost (wss:// vs ws://, nginx)", "alwaysup-nginx", "alwaysup-wss", "TLS cost");
#define TLS_ROW(title, va, vb, fa, cost)                                                            \
    do {                                                                                            \
        snprintf(a, sizeof a, fa, va);                                                              \
        snprintf(b, sizeof b, fa, vb);                                                              \
        snprintf(c, sizeof c, "%s", cost);                                                          \
        if (md) fprintf(f, "| %s | %s | %s | %s |\n", title, a, b, c);                               \
        else fprintf(f, "%-34s %16s %16s %26s\n", title, a, b, c);                                   \
    } while (0)
    {
        char cost[96];
        snprintf(cost, sizeof cost, "%+.2f ms (TLS handshake)", med(&w->startup_ms) - med(&p->startup_ms));
        TLS_ROW("startup ms", med(&p->startup_ms), med(&w->startup_ms), "%.2f", cost);
        snprintf(cost, sizeof cost, "%+.1f us per round trip", med(&w->p50_us) - med(&p->p50_us));
        TLS_ROW("latency p50 us", med(&p->p50_us), med(&w->p50_us), "%.1f", cost);
        snprintf(cost, sizeof cost, "%+.1f us", med(&w->p99_us) - med(&p->p99_us));
        TLS_ROW("latency p99 us", med(&p->p99_us), med(&w->p99_us), "%.1f", cost);
        snprintf(cost, sizeof cost, "%+.2f us per message (%.2fx)", 1e6 / med(&w->tput) - 1e6 / med(&p->tput),
                 med(&w->tput) / med(&p->tput));
        TLS_ROW("pipelined msg/s", med(&p->tput), med(&w->tput), "%.0f", cost);
        if (have(&w->cpu_rt_us) && have(&p->cpu_rt_us)) {
            snprintf(cost, sizeof cost, "%+.2f us per round trip", med(&w->cpu_rt_us) - med(&p->cpu_rt_us));
            TLS_ROW("shim CPU us per round trip", med(&p->cpu_rt_us), med(&w->cpu_rt_us), "%.2f", cost);
        }
        if (have(&w->cpu_pipe_us) && have(&p->cpu_pipe_us)) {
            snprintf(cost, sizeof cost, "%+.2f us per message", med(&w->cpu_pipe_us) - med(&p->cpu_pipe_us));
            TLS_ROW("shim CPU us per pipelined msg", med(&p->cpu_pipe_us), med(&w->cpu_pipe_us), "%.2f", cost);
        }
        for (s = 0; s < opt.nsizes && !opt.no_large; s++) {
            char title[64];
            double mib = (double)opt.sizes[s] / (double)MIB;
            if (!have(&w->rtt_ms[s]) || !have(&p->rtt_ms[s])) continue;
            snprintf(title, sizeof title, "%s round trip ms", size_name(opt.sizes[s], nb));
            snprintf(cost, sizeof cost, "%+.2f ms per MiB each way and back", (med(&w->rtt_ms[s]) - med(&p->rtt_ms[s])) / mib);
            TLS_ROW(title, med(&p->rtt_ms[s]), med(&w->rtt_ms[s]), "%.1f", cost);
        }
        if (have(&w->rss_rest_kb) && have(&p->rss_rest_kb)) {
            snprintf(cost, sizeof cost, "%+.0f KiB (libssl, libcrypto)", med(&w->rss_rest_kb) - med(&p->rss_rest_kb));
            TLS_ROW("peak RSS at rest KiB", med(&p->rss_rest_kb), med(&w->rss_rest_kb), "%.0f", cost);
        }
    }
#undef TLS_ROW
}
typedef struct target { const char *what; int known, pass; char value[160]; } target;
static int targets(target *t) {
    contender *a = &C[K_ALWAYSUP], *d = &C[K_DIRECT];
    int n = 0, L = opt.nsizes - 1, dok = d->selected && have(&d->p50_us), aok = a->selected && have(&a->p50_us);
    double largest_mib = (double)opt.sizes[L] / (double)MIB, v, lim;
    char nb[32];
    memset(t, 0, 10 * sizeof *t);
    t[n].what = "added round-trip latency at p50 under 30 us";
    if ((t[n].known = aok && dok)) {
        v = med(&a->p50_us) - med(&d->p50_us);
        t[n].pass = v < 30;
        snprintf(t[n].value, 160, "%+.1f us (%.1f vs %.1f us)", v, med(&a->p50_us), med(&d->p50_us));
    }
    n++;
    t[n].what = "p50 round trip under 1.5x direct";
    if ((t[n].known = aok && dok)) {
        v = med(&a->p50_us) / med(&d->p50_us);
        t[n].pass = v < 1.5;
        snprintf(t[n].value, 160, "%.2fx", v);
    }
    n++;
    t[n].what = "p99 round trip under 2x direct";
    if ((t[n].known = aok && dok)) {
        v = med(&a->p99_us) / med(&d->p99_us);
        t[n].pass = v < 2;
        snprintf(t[n].value, 160, "%.2fx (%.1f vs %.1f us)", v, med(&a->p99_us), med(&d->p99_us));
    }
    n++;
    t[n].what = "pipelined throughput at least 0.8x direct";
    if ((t[n].known = aok && dok)) {
        v = med(&a->tput) / med(&d->tput);
        t[n].pass = v >= 0.8;
        snprintf(t[n].value, 160, "%.2fx (%.0f vs %.0f msg/s)", v, med(&a->tput), med(&d->tput));
    }
    n++;
    t[n].what = opt.nsizes == 3 ? "64 MiB round trip at most 1.5x direct" : "largest-message round trip at most 1.5x direct";
    if ((t[n].known = aok && dok && have(&a->rtt_ms[L]) && have(&d->rtt_ms[L]))) {
        v = med(&a->rtt_ms[L]) / med(&d->rtt_ms[L]);
        t[n].pass = v <= 1.5;
        snprintf(t[n].value, 160, "%.2fx (%.1f vs %.1f ms for %s)", v, med(&a->rtt_ms[L]), med(&d->rtt_ms[L]), size_name(opt.sizes[L], nb));
    }
    n++;
    t[n].what = "startup under 5 ms";
    if ((t[n].known = aok)) {
        v = med(&a->startup_ms);
        t[n].pass = v < 5;
        snprintf(t[n].value, 160, "%.2f ms", v);
    }
    n++;
    t[n].what = "peak RSS under 2 MiB at rest";
    if ((t[n].known = aok && have(&a->rss_rest_kb))) {
        v = med(&a->rss_rest_kb);
        t[n].pass = v < 2048;
        snprintf(t[n].value, 160, "%.0f KiB (%.2f MiB)", v, v / 1024);
    }
    n++;
    t[n].what = "peak RSS under 2x the largest message plus 2 MiB";
    if ((t[n].known = aok && have(&a->rss_big_kb))) {
        v = med(&a->rss_big_kb);
        lim = (2 * largest_mib + 2) * 1024;
        t[n].pass = v < lim;
        snprintf(t[n].value, 160, "%.1f MiB, limit %.0f MiB (largest %s)", v / 1024, lim / 1024, size_name(opt.sizes[L], nb));
    }
    n++;
    t[n].what = "under 10 ms of CPU over a 60 s outage";
    /* retries are front-loaded (0.25 s, 0.375 s, ...), so a shorter outage
       only proves a MISS, and a longer one only a PASS */
    if ((t[n].known = a->outage_done && (a->outage_s >= 59.9 || a->cpu_exact_ms >= 10))) {
        t[n].pass = a->cpu_exact_ms < 10;
        snprintf(t[n].value, 160, "%.2f ms over %.1f s (utime+stime %.0f ms)", a->cpu_exact_ms, a->outage_s, a->cpu_ticks_ms);
    } else if (a->outage_done) {
        snprintf(t[n].value, 160, "%.2f ms over a %.1f s outage: run --outage 60 for the verdict", a->cpu_exact_ms, a->outage_s);
    }
    n++;
    t[n].what = "a new request answered within 50 ms of the daemon listening again";
    if ((t[n].known = a->outage_done)) {
        v = a->delay_b_ms;
        t[n].pass = v < 50;
        snprintf(t[n].value, 160, "%.1f ms", v);
    }
    n++;
    return n;
}

static void machine(char *cpu, size_t cap, char *kernel, size_t kcap, long *cores, long *mem_mib) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    struct utsname u;
    snprintf(cpu, cap, "unknown");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *p = strchr(line, ':');
                if (p) {
                    p++;
                    while (*p == ' ') p++;
                    p[strcspn(p, "\n")] = 0;
                    snprintf(cpu, cap, "%s", p);
                }
                break;
            }
        fclose(f);
    }
    if (uname(&u) == 0) snprintf(kernel, kcap, "%s %s %s", u.sysname, u.release, u.machine);
    else snprintf(kernel, kcap, "unknown");
    *cores = sysconf(_SC_NPROCESSORS_ONLN);
    *mem_mib = (long)((double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (double)MIB);
}

static char g_tcp_cc[64] = "unknown";
static void read_tcp_cc(void) {
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_congestion_control", "r");
    if (!f) return;
    if (fgets(g_tcp_cc, sizeof g_tcp_cc, f)) g_tcp_cc[strcspn(g_tcp_cc, "\n")] = 0;
    fclose(f);
}
static void write_results(const char *path, double seconds) {
    FILE *f = fopen(path, "w");
    char cpu[256], kernel[256], date[64], nb[32];
    long cores, mem;
    time_t now = time(NULL);
    target t[10];
    int i, n, s;
    if (!f) { fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno)); return; }
    machine(cpu, sizeof cpu, kernel, sizeof kernel, &cores, &mem);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(f, "# alwaysup benchmark results\n\n");
    fprintf(f, "Written by `build/bench` (tools/bench/bench.c); do not edit by hand.\n\n");
    fprintf(f, "- date: %s (run took %.0f s)\n", date, seconds);
    fprintf(f, "- machine: %s, %ld cores online, %ld MiB RAM\n", cpu, cores, mem);
    fprintf(f, "- kernel: %s; TCP congestion control: %s\n", kernel, g_tcp_cc);
    fprintf(f, "- compiler: %s (bench); build/alwaysup and build/testd as the Makefile builds them (-O2 -g)\n", v_cc);
    fprintf(f, "- peers: %s; %s, %s\n", v_python, v_node, v_ws);
    fprintf(f, "- command: `%s`\n", g_cmdline);
    if (v_src[0]) fprintf(f, "- source: %s\n", v_src);
    if (opt.label) fprintf(f, "- build: %s\n", opt.label);
    fprintf(f, "- turns: %d, after %d warm-up turn%s not counted (contenders in turns, A B C D A B C D ...; each turn "
               "starts each contender afresh)\n", opt.turns, opt.warmup_turns, opt.warmup_turns == 1 ? "" : "s");
    fprintf(f, "- per turn: %d warm-up + %d round trips of %d-byte requests; %d requests pipelined with %d in flight; large requests of",
            opt.warmup, opt.round_trips, SMALL_LEN, opt.messages, WINDOW);
    for (s = 0; s < opt.nsizes; s++) fprintf(f, "%s %s", s ? "," : "", size_name(opt.sizes[s], nb));
    fprintf(f, "\n- stdio: %s; daemon: build/testd --mode echo on 127.0.0.1\n", opt.socketpair ? "Unix socket pairs" : "pipes");
    fprintf(f, "- pinned: every process (bench, daemon, contender) on %s\n", opt.pinned);
    if (C[K_NGINX].selected || C[K_WSS].selected)
        fprintf(f, "- nginx: %s in the path of alwaysup-nginx (plain) and alwaysup-wss (terminating TLS 1.3, a P-256 "
                   "certificate from tests/tls/make_certs.sh), one worker, pinned with the rest; TLS: %s\n", v_nginx, v_tls);
    if (opt.outage > 0)
        fprintf(f, "- outage: %.0f s (once per contender), then a second one of %.0f s for (b)\n", opt.outage,
                opt.outage < 15 ? opt.outage : 15);
    fprintf(f, "\nContenders:\n\n");
    for (i = 0; i < g_ncols; i++) fprintf(f, "- %s\n", C[g_cols[i]].label);
    for (i = 0; i < K_COUNT; i++)
        if (C[i].selected && !C[i].available) fprintf(f, "- %s: SKIPPED (%s)\n", C[i].name, C[i].skip_why);
    fprintf(f, "\n## Figures\n\nMedian over the turns, [min-max] across turns.\n\n");
    print_table(f, 1);
    fprintf(f, "\n## Against direct (medians of this run)\n\n");
    print_ratios(f, 1);
    fprintf(f, "\n## What TLS costs (alwaysup-wss against alwaysup-nginx: the same nginx, the same daemon)\n\n");
    print_tls_cost(f, 1);
    fprintf(f, "\nThe latency and throughput differences include nginx's side of TLS (it decrypts, and encrypts "
               "the answers, on the same CPU); the shim CPU rows are the client side alone. Per MiB: the large "
               "round trip's difference divided by its size (the request goes up encrypted and the answer, as "
               "large, comes back encrypted).\n");
    fprintf(f, "\n## alwaysup's targets\n\n| target | verdict | measured |\n|---|---|---|\n");
    n = targets(t);
    for (i = 0; i < n; i++)
        fprintf(f, "| %s | %s | %s |\n", t[i].what, t[i].known ? (t[i].pass ? "PASS" : "MISS") : "-", t[i].value[0] ? t[i].value : "not measured");
    for (i = 0; i < K_COUNT; i++)
        if (C[i].failed) fprintf(f, "\n**%s failed**: %s\n", C[i].name, C[i].fail_why);
    fprintf(f, "\n## How to read it\n\n"
               "- startup: from just before the process is spawned (direct: from the start of its in-process connect) "
               "to the answer to the first message, an MCP `initialize` written at once (the shims queue it until "
               "they are connected).\n"
               "- latency: one 120-byte JSON-RPC request at a time, written as one line; the clock stops when its "
               "answer line (direct: message) is read. p50/p99 per turn, then the median of the turns.\n"
               "- pipelined: %d requests, %d in flight; the bench writes the requests that fit the window in one go "
               "(direct: corked, so a window goes out in as few sends as the socket allows, as the shim does). Measured first, on the fresh connection: after thousands of "
               "one-at-a-time round trips, TCP (here BBR, see above) keeps a congestion window of about 10 segments, "
               "which then caps small-segment pipelining for every contender alike.\n"
               "- pinning: by default every process runs on one CPU. On this kind of small VM, whether the bench, the "
               "shim and the daemon happen to share a CPU changes a round trip by 2-3x from run to run (a wake-up on "
               "an idle vCPU costs tens of microseconds); on one CPU the figures measure the work each contender "
               "does and repeat within a few percent. The pipelined and large-message figures then also mean CPU "
               "cost: nothing runs in parallel. `--cpus all` measures with the scheduler's placement.\n"
               "- large: one request of that many bytes, `{\"data\":\"xxx...\"}` in params; MB/s = request bytes / "
               "round trip / 10^6. The answer is as large, less 16 bytes.\n"
               "- the daemon answers `{\"jsonrpc\":\"2.0\",\"id\":ID,\"method\":\"echo\",\"params\":P}` with "
               "`{\"jsonrpc\":\"2.0\",\"id\":ID,\"result\":P}` without copying P (testd --mode echo), so every "
               "shim sees a real answer to a real request.\n"
               "- shim CPU: the shim process's run time (every thread, schedstat) during the measured round trips "
               "and during the pipelined run, per message: the work the hop costs, whatever the scheduler does.\n"
               "- peak RSS: VmHWM of the shim process after the small-message runs and after the largest message. "
               "direct: n/a, since its client lives in the bench process, which also holds the buffers of every "
               "contender's large messages.\n"
               "- outage CPU: run time of every thread of the process (schedstat, exact) over the outage, and "
               "utime+stime from /proc/PID/stat (10 ms ticks). direct: the bench process, which only runs the "
               "direct client's retry loop then.\n"
               "- (a): a request written %.1f s before the daemon comes back waits in the shim; the figure is the "
               "time from the daemon printing `listening` to the answer. It depends on where the shim is in its "
               "retry cycle (0.25 s x1.5, at most 5 s apart) when the daemon returns.\n"
               "- (b): after a second outage of %.0f s (15 s or more lets a 0.25 s x1.5 backoff reach its 5 s cap), a request written "
               "right after the daemon is listening; the time to its answer. A shim that tries at once when the "
               "client sends answers in about a millisecond; one that waits for its next retry takes up to 5 s.\n",
            opt.messages, WINDOW, opt.outage / 2 < 7.5 ? opt.outage / 2 : 7.5, opt.outage < 15 ? opt.outage : 15);
    fclose(f);
}

/* ---- main --------------------------------------------------------------------------------------------- */
static void usage(void) {
    fprintf(stderr, "usage: bench [--turns N] [--outage S] [--quick] [--only NAME,...] [--out PATH]\n"
                    "             [--stdio pipe|socketpair] [--round-trips N] [--messages N]\n"
                    "             [--sizes MIB,...] [--no-large] [--cpus LIST|all] [--warmup-turns N]\n"
                    "             [--label TEXT] [--wrap 'TOOL ARGS --']\n"
                    "  contenders: direct, alwaysup, peer-python, peer-node, alwaysup-nginx, alwaysup-wss\n"
                    "  --quick: a seconds-long smoke (1 turn, tiny counts, 1 MiB, 1 s outage)\n"
                    "  --outage 0 skips the outage; --out '' writes no file\n"
                    "  --sizes 1,16,64: the large messages in MiB (up to 3, smallest first)\n"
                    "  --cpus: where every process runs; default: one CPU, the last allowed; all: unpinned\n"
                    "  --wrap: run alwaysup under a profiler, e.g. --wrap 'valgrind --tool=callgrind --'\n"
                    "          (its RSS, CPU and timings are then the tool's)\n");
    exit(2);
}
static void find_root(const char *argv0) {
    char buf[PATH_MAX], test[PATH_MAX + 32];
    char *slash;
    if (realpath(argv0, buf)) {
        int up;
        for (up = 0; up < 2; up++) {
            slash = strrchr(buf, '/');
            if (!slash) break;
            *slash = 0;
            snprintf(test, sizeof test, "%s/alwaysup.h", buf);
            if (access(test, R_OK) == 0) { snprintf(opt.root, sizeof opt.root, "%s", buf); return; }
        }
    }
    if (!getcwd(opt.root, sizeof opt.root)) die("getcwd failed");
}

int main(int argc, char **argv) {
    int i, turn, failed = 0, ran = 0, turns_set = 0, outage_set = 0, sizes_set = 0;
    size_t used = 0;
    char outbuf[PATH_MAX + 64], nb[32];
    int64_t t_start = now_ns(), t_listen;
    struct sigaction sa;

    memset(&opt, 0, sizeof opt);
    contenders_init();
    opt.turns = 5;
    opt.outage = 60;
    opt.warmup_turns = -1;
    for (i = 0; i < argc && used < sizeof g_cmdline - 2; i++) {
        const char *a = i ? argv[i] : "build/bench";
        int quote = i && (strchr(a, ' ') || !a[0]);
        used += (size_t)snprintf(g_cmdline + used, sizeof g_cmdline - used, "%s%s%s%s", i ? " " : "", quote ? "'" : "", a,
                                 quote ? "'" : "");
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0) opt.quick = 1;
        else if (strcmp(a, "--turns") == 0 && i + 1 < argc) { opt.turns = atoi(argv[++i]); turns_set = 1; }
        else if (strcmp(a, "--outage") == 0 && i + 1 < argc) { opt.outage = atof(argv[++i]); outage_set = 1; }
        else if (strcmp(a, "--only") == 0 && i + 1 < argc) opt.only = argv[++i];
        else if (strcmp(a, "--out") == 0 && i + 1 < argc) opt.out = argv[++i];
        else if (strcmp(a, "--round-trips") == 0 && i + 1 < argc) opt.round_trips = atoi(argv[++i]);
        else if (strcmp(a, "--messages") == 0 && i + 1 < argc) opt.messages = atoi(argv[++i]);
        else if (strcmp(a, "--wrap") == 0 && i + 1 < argc) opt.wrap = argv[++i];
        else if (strcmp(a, "--no-large") == 0) opt.no_large = 1;
        else if (strcmp(a, "--warmup-turns") == 0 && i + 1 < argc) opt.warmup_turns = atoi(argv[++i]);
        else if (strcmp(a, "--cpus") == 0 && i + 1 < argc) opt.cpus = argv[++i];
        else if (strcmp(a, "--label") == 0 && i + 1 < argc) opt.label = argv[++i];
        else if (strcmp(a, "--sizes") == 0 && i + 1 < argc) {
            char *p = argv[++i], *end;
            sizes_set = 1;
            while (*p && opt.nsizes < MAX_SIZES) {
                long v = strtol(p, &end, 10);
                if (end == p || v < 1 || v > 1024) usage();
                opt.sizes[opt.nsizes++] = (size_t)v * MIB;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') usage();
            }
        }
        else if (strcmp(a, "--stdio") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(v, "socketpair") == 0) opt.socketpair = 1;
            else if (strcmp(v, "pipe") != 0) usage();
        } else usage();
    }
    if (opt.quick) {
        if (!turns_set) opt.turns = 1;
        if (opt.warmup_turns < 0) opt.warmup_turns = 0;
        if (!outage_set) opt.outage = 1;
        opt.warmup = 20;
        if (!opt.round_trips) opt.round_trips = 200;
        if (!opt.messages) opt.messages = 2000;
        if (!sizes_set) { opt.sizes[0] = MIB; opt.nsizes = 1; }
    } else {
        if (opt.warmup_turns < 0) opt.warmup_turns = 1;
        opt.warmup = 200;
        if (!opt.round_trips) opt.round_trips = 2000;
        if (!opt.messages) opt.messages = 20000;
        if (!sizes_set) {
            opt.sizes[0] = MIB;
            opt.sizes[1] = 16 * MIB;
            opt.sizes[2] = 64 * MIB;
            opt.nsizes = 3;
        }
    }
    if (opt.turns < 1 || opt.turns > MAX_TURNS || opt.warmup_turns > 10 || opt.outage < 0 || opt.outage > 3600 || opt.round_trips < 1 ||
        opt.messages < 1)
        usage();
    opt.ci = getenv("CI") && strcmp(getenv("CI"), "true") == 0;
    find_root(argv[0]);
    snprintf(opt.logdir, sizeof opt.logdir, "%.3900s/build/bench-logs", opt.root);
    mkdir(opt.logdir, 0755);
    snprintf(outbuf, sizeof outbuf, "%.3900s/state", opt.logdir);
    mkdir(outbuf, 0755);
    for (i = 0; i < K_COUNT + 1; i++) {   /* each run's logs start empty */
        snprintf(outbuf, sizeof outbuf, "%.3900s/%s.log", opt.logdir, i < K_COUNT ? C[i].name : "testd");
        unlink(outbuf);
    }
    if (!opt.out) {   /* the quick smoke never overwrites the committed results */
        if (opt.quick) snprintf(outbuf, sizeof outbuf, "%.3900s/build/bench-quick.md", opt.root);
        else snprintf(outbuf, sizeof outbuf, "%.3900s/tools/bench/RESULTS.md", opt.root);
        opt.out = outbuf;
    }

    /* which contenders */
    for (i = 0; i < K_COUNT; i++) C[i].selected = 1;
    if (opt.only) {
        const char *p = opt.only;
        for (i = 0; i < K_COUNT; i++) C[i].selected = 0;
        while (*p) {
            size_t n = strcspn(p, ",");
            int found = 0;
            for (i = 0; i < K_COUNT; i++)
                if (strlen(C[i].name) == n && strncmp(C[i].name, p, n) == 0) { C[i].selected = 1; found = 1; }
            if (!found) { fprintf(stderr, "bench: unknown contender '%.*s'\n", (int)n, p); usage(); }
            p += n;
            if (*p == ',') p++;
        }
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atexit(kill_kids);
    /* the whole run is bounded too: generous per-turn and per-outage budgets */
    alarm((unsigned)(120 + opt.turns * (opt.quick ? 120 : 600) + (opt.outage + 60) * 2 * K_COUNT + 120));

    pin_cpus();
    check_available();
    read_tcp_cc();
    for (i = 0; i < K_COUNT; i++) {
        if (!C[i].selected) continue;
        if (!C[i].available) {
            int hard = opt.ci || opt.only;
            fprintf(stderr, "bench: %s %s: %s%s\n", hard ? "FAIL" : "SKIP", C[i].name, C[i].skip_why,
                    hard ? "" : " (CI=true or --only makes this a failure)");
            if (hard) failed = 1;
            continue;
        }
        g_cols[g_ncols++] = i;
    }
    if (!g_ncols) die("no contender to measure");

    {
        char bin[PATH_MAX + 32];
        snprintf(bin, sizeof bin, "%.3900s/build/testd", opt.root);
        if (access(bin, X_OK) != 0) die("build/testd is missing (make)");
    }
    if (daemon_start(0, &t_listen) != 0) die("cannot start the echo daemon");
    snprintf(g_url, sizeof g_url, "ws://127.0.0.1:%u", daemon_.port);
    for (i = 0; i < g_ncols; i++)
        if (g_cols[i] == K_NGINX || g_cols[i] == K_WSS) {
            if (front_start(daemon_.port) != 0) {
                C[K_NGINX].failed = C[K_WSS].failed = 1;
                snprintf(C[K_NGINX].fail_why, sizeof C[K_NGINX].fail_why, "%s", front.why);
                snprintf(C[K_WSS].fail_why, sizeof C[K_WSS].fail_why, "%s", front.why);
                fprintf(stderr, "bench: %s\n", front.why);
            } else
                fprintf(stderr, "bench: nginx in front of the daemon: %s (plain), %s (TLS)\n", g_url_nginx, g_url_wss);
            break;
        }

    /* buffers made and touched once, before anything is timed */
    for (i = 0; i < opt.nsizes; i++) g_big[i] = make_big(opt.sizes[i], ID_BASE);
    bb_reserve(&g_ib, opt.sizes[opt.nsizes - 1] + 4 * MIB);
    memset(g_ib.p, 0, g_ib.cap);

    fprintf(stderr, "bench: daemon on %s; %d turn%s of %d contender%s%s; pinned: %s\n", g_url, opt.turns,
            opt.turns == 1 ? "" : "s", g_ncols, g_ncols == 1 ? "" : "s", opt.quick ? " (quick)" : "", opt.pinned);
    for (turn = -opt.warmup_turns; turn < opt.turns; turn++) {
        int c;
        for (c = 0; c < g_ncols; c++) {
            contender *k = &C[g_cols[c]];
            int64_t t0 = now_ns();
            contender keep;
            if (k->failed) continue;
            settle();
            if (turn < 0) {   /* a warm-up turn: everything runs, nothing is kept */
                keep = *k;
                if (run_turn(k) != 0) {
                    fprintf(stderr, "bench: warm-up turn, %s FAILED: %s\n", k->name, k->fail_why);
                    continue;
                }
                *k = keep;
                fprintf(stderr, "bench: warm-up turn, %s (not counted, %.1f s)\n", k->name, (double)(now_ns() - t0) / 1e9);
                continue;
            }
            if (run_turn(k) != 0) {
                fprintf(stderr, "bench: turn %d, %s FAILED: %s\n", turn + 1, k->name, k->fail_why);
                continue;
            }
            ran++;
            fprintf(stderr, "bench: turn %d, %-12s startup %6.2f ms, p50 %6.1f us, %7.0f msg/s, %s %7.1f ms (%.1f s)\n", turn + 1, k->name, k->startup_ms.v[k->startup_ms.n - 1],
                    k->p50_us.v[k->p50_us.n - 1], k->tput.v[k->tput.n - 1], size_name(opt.sizes[opt.nsizes - 1], nb),
                    k->rtt_ms[opt.nsizes - 1].n ? k->rtt_ms[opt.nsizes - 1].v[k->rtt_ms[opt.nsizes - 1].n - 1] : 0.0,
                    (double)(now_ns() - t0) / 1e9);
        }
    }
    if (opt.outage > 0) {
        int c;
        for (c = 0; c < g_ncols; c++) {
            contender *k = &C[g_cols[c]];
            if (k->failed || k->kind == K_NGINX || k->kind == K_WSS) continue;   /* behind nginx: tools/soak.py --tls */
            settle();
            fprintf(stderr, "bench: outage, %s: %.0f s down, then %.0f s more for (b)\n", k->name, opt.outage,
                    opt.outage < 15 ? opt.outage : 15);
            if (run_outage(k) != 0) {
                fprintf(stderr, "bench: outage, %s FAILED: %s\n", k->name, k->fail_why);
                continue;
            }
            fprintf(stderr, "bench: outage, %-12s CPU %.2f ms, (a) %.1f ms, (b) %.1f ms\n", k->name, k->cpu_exact_ms,
                    k->delay_a_ms, k->delay_b_ms);
        }
    }
    front_stop();
    daemon_kill();

    build_rows();
    printf("\nalwaysup bench: %d turn%s, median [min-max] over turns%s\n\n", opt.turns, opt.turns == 1 ? "" : "s",
           opt.quick ? " (quick smoke: tiny counts)" : "");
    print_table(stdout, 0);
    printf("\n");
    print_ratios(stdout, 0);
    printf("\n");
    print_tls_cost(stdout, 0);
    {
        target t[10];
        int n = targets(t);
        printf("\nalwaysup targets:\n");
        for (i = 0; i < n; i++)
            printf("  %-4s  %-66s %s\n", t[i].known ? (t[i].pass ? "PASS" : "MISS") : "-", t[i].what, t[i].value[0] ? t[i].value : "not measured");
    }
    for (i = 0; i < K_COUNT; i++)
        if (C[i].failed) { printf("\nFAILED %s: %s\n", C[i].name, C[i].fail_why); failed = 1; }
    if (!ran) failed = 1;
    if (opt.out && opt.out[0]) {
        write_results(opt.out, (double)(now_ns() - t_start) / 1e9);
        printf("\nwritten: %s\n", opt.out);
    }
    for (i = 0; i < opt.nsizes; i++) free(g_big[i]);
    free(g_ib.p);
    return failed ? 1 : 0;
}
