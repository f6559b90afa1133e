/* Replay driver: runs one fuzz harness over files without libFuzzer, so the
   seed corpus and every saved regression input are ordinary tests that any
   C compiler can run (tests/fuzz/replay.sh builds it with gcc + ASan/UBSan):

     gcc -DFUZZ_REPLAY -fsanitize=address,undefined -I. \
         tests/fuzz/replay.c tests/fuzz/fuzz_frames.c -o build/fuzz-replay/fuzz_frames
     build/fuzz-replay/fuzz_frames tests/fuzz/corpus/fuzz_frames tests/fuzz/regressions/fuzz_frames

   Arguments are files or directories (every regular file in them, sorted,
   dot-files and *.md skipped; a missing directory is skipped). Each input
   runs in a child process, so one crash or property violation does not
   hide the others. Ends with "N passed, M failed"; exits 1 if M > 0. */
#ifndef _DEFAULT_SOURCE
#  define _DEFAULT_SOURCE 1
#endif
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int passed, failed;

static void run_one(const char *path) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    pid_t pid;
    int status;
    if (!f) { printf("FAIL  %s (cannot open: %s)\n", path, strerror(errno)); failed++; return; }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (uint8_t *)malloc(n > 0 ? (size_t)n : 1);     /* exactly sized, like libFuzzer's copy */
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        printf("FAIL  %s (cannot read)\n", path);
        failed++;
        fclose(f);
        free(buf);
        return;
    }
    fclose(f);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        free(buf);
        exit(0);                  /* not _exit: LeakSanitizer and coverage run at exit */
    }
    free(buf);
    if (pid < 0 || waitpid(pid, &status, 0) < 0) { printf("FAIL  %s (fork/wait)\n", path); failed++; return; }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) { printf("ok    %s\n", path); passed++; }
    else {
        if (WIFSIGNALED(status)) printf("FAIL  %s (signal %d)\n", path, WTERMSIG(status));
        else printf("FAIL  %s (exit %d)\n", path, WEXITSTATUS(status));
        failed++;
    }
}

static int skip_name(const char *name) {
    size_t l = strlen(name);
    return name[0] == '.' || (l > 3 && strcmp(name + l - 3, ".md") == 0);
}

static void run_path(const char *path) {
    struct stat st;
    struct dirent **list;
    int i, k;
    if (stat(path, &st) != 0) { printf("skip  %s (missing)\n", path); return; }
    if (!S_ISDIR(st.st_mode)) { run_one(path); return; }
    k = scandir(path, &list, NULL, alphasort);
    if (k < 0) { printf("FAIL  %s (cannot list)\n", path); failed++; return; }
    for (i = 0; i < k; i++) {
        char full[4096];
        struct stat es;
        snprintf(full, sizeof full, "%s/%s", path, list[i]->d_name);
        if (!skip_name(list[i]->d_name) && stat(full, &es) == 0 && S_ISREG(es.st_mode)) run_one(full);
        free(list[i]);
    }
    free(list);
}

int main(int argc, char **argv) {
    int i;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) run_path(argv[i]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
