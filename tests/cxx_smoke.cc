// The header compiled as C++ (implementation included) and used from C++.
#define ALWAYSUP_IMPLEMENTATION
#include "../alwaysup.h"
#include <cstdio>
#include <cstring>

int main() {
    au_url u;
    char accept[29];
    au_jsonrpc r;
    const char *line = "{\"id\":1,\"method\":\"ping\"}";
    int fails = 0;
    fails += au_url_parse(&u, "ws://[::1]:8079/x", 17) != AU_OK;
    au_ws_accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
    fails += std::strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0;
    fails += au_jsonrpc_scan(line, std::strlen(line), &r) != AU_RPC_REQUEST;
    std::printf("%d passed, %d failed\n", 3 - fails, fails);
    return fails != 0;
}
