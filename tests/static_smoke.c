/* ALWAYSUP_STATIC: a private copy in one translation unit, nothing exported. */
#define ALWAYSUP_STATIC
#define ALWAYSUP_IMPLEMENTATION
#include "../alwaysup.h"
#include <stdio.h>
int main(void) {
    uint8_t d[20];
    au_sha1_digest("abc", 3, d);
    printf("%d passed, %d failed\n", d[0] == 0xa9, d[0] != 0xa9);
    return d[0] != 0xa9;
}
