/* User allocator macros: every allocation goes through them and is freed. */
#include <stddef.h>
void *my_malloc(size_t n);
void *my_realloc(void *p, size_t n);
void my_free(void *p);
#define ALWAYSUP_MALLOC(n) my_malloc(n)
#define ALWAYSUP_REALLOC(p, n) my_realloc(p, n)
#define ALWAYSUP_FREE(p) my_free(p)
#define ALWAYSUP_IMPLEMENTATION
#include "../alwaysup.h"   /* first system-header user: see the manual */
#include <stdio.h>

static long live, calls;
void *my_malloc(size_t n) { calls++; live++; return malloc(n); }
void *my_realloc(void *p, size_t n) { calls++; if (!p) live++; return realloc(p, n); }
void my_free(void *p) { if (p) live--; free(p); }

int main(void) {
    au_lines l;
    au_ws ws;
    au_ws_desc d;
    au_url u;
    const char *line;
    size_t ll;
    int kind, ok;
    au_lines_init(&l, 0);
    au_lines_feed(&l, "partial line", 12, &kind, &line, &ll);
    au_lines_free(&l);
    au_url_parse(&u, "ws://h", 6);
    memset(&d, 0, sizeof d);
    d.url = &u;
    au_ws_init(&ws, &d);
    au_ws_free(&ws);
    ok = calls > 0 && live == 0;
    printf("%d passed, %d failed\n", ok, !ok);
    return !ok;
}
