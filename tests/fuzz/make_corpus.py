#!/usr/bin/env python3
"""Writes the committed seed corpus under tests/fuzz/corpus/<harness>/.

Each file starts with the harness's parameter bytes (see the comment at the
top of each harness), then the bytes under test. Re-run after changing the
input layout of a harness:  python3 tests/fuzz/make_corpus.py
"""
import base64
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(op, payload=b"", fin=True):
    """An unmasked server frame with the minimal length form."""
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    if n < 126:
        h = bytes([b0, n])
    elif n <= 0xFFFF:
        h = bytes([b0, 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, 127]) + struct.pack(">Q", n)
    return h + payload


# ---- fuzz_frames: [chunking] [max_message] [flags] frames...
F = "fuzz_frames"
write(F, "text_hello", b"\x00\x00\x00" + frame(1, b"hello"))
write(F, "binary_16bit_len", b"\x03\x00\x00" + frame(2, bytes(range(200))))
write(F, "fragmented_text_ping_inside", b"\x01\x00\x00" + frame(1, b"Hel", False) + frame(9, b"p1")
      + frame(0, b"lo", False) + frame(0, b"", True))
write(F, "utf8_split_across_fragments", b"\x02\x00\x00" + frame(1, b"\xe2", False) + frame(0, b"\x82\xac")
      + frame(1, "h\u00e9\U0001F600".encode()))
write(F, "close_code_reason_then_junk", b"\x00\x00\x00" + frame(8, b"\x03\xe8bye") + frame(1, b"late"))
write(F, "close_empty", b"\x04\x00\x00" + frame(10, b"abc") + frame(8))
write(F, "ping_pong", b"\x05\x00\x00" + frame(9) + frame(10, b"x" * 125) + frame(9, b"\x00\xff"))
write(F, "over_max_message", b"\x00\x10\x00" + frame(2, b"y" * 32))
write(F, "bad_utf8_text", b"\x06\x00\x00" + frame(1, b"\xc3\x28"))
write(F, "nonminimal_length", b"\x00\x00\x00" + bytes([0x82, 126, 0, 5]) + b"abcde")
write(F, "len64", b"\x07\xff\x00" + bytes([0x82, 127]) + struct.pack(">Q", 70000) + b"z" * 64)
write(F, "masked_frame", b"\x00\x00\x00" + bytes([0x81, 0x81, 1, 2, 3, 4, 0x61]))
# generated-program seeds (flags bit3: the session runs the generated frames)
write(F, "program_session_mcp", b"\x03\x00\x0b" + bytes([0x12, 0x34,
      0x00, 0x10, 0x02, 0x05,       # text message, 16 bytes, 3 fragments, controls between
      0x04, 0x05,                   # ping
      0x02, 0x90, 0x00, 0x00,       # binary 16-bit length
      0x07, 0x08, 0x00, 0x00,       # empty first/last fragments
      0x06, 0x01, 0x20]))           # close with a code and reason
write(F, "program_lf_head", b"\x0c\x00\x38" + bytes([0x00, 0x01, 0x01, 0x20, 0x04, 0xff, 0x05, 0x10, 0x06, 0x00]))
write(F, "program_small_limit", b"\x02\x20\x08" + bytes([0x00, 0x02, 0x00, 0x30, 0x03, 0x00, 0x01, 0x05, 0x01, 0x00]))
write(F, "session_we_close_first", b"\x01\x00\x88" + bytes([0x00, 0x05, 0x04, 0x03, 0x00, 0x10, 0x02, 0x01, 0x06, 0x01, 0x05]))
write(F, "session_wrong_accept", b"\x00\x00\x30" + frame(1, b"never seen"))
write(F, "session_raw_big_send", b"\x02\x00\x40" + frame(9, b"ping") + frame(2, b"data", False))
write(F, "program_big_message", b"\x03\x00\x48" + bytes([0x00, 0x03, 0x02, 0xfa, 0x00, 0x00, 0x00, 0xf9, 0x02, 0x01]))

# ---- fuzz_handshake: [chunking] [flags] [head limit] response...
H = "fuzz_handshake"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACC = base64.b64encode(hashlib.sha1(KEY + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
assert ACC == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
ok = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      b"Sec-WebSocket-Accept: " + ACC + b"\r\n")
write(H, "valid_101", b"\x00\x00\x00" + ok + b"\r\n\x81\x00")
write(H, "valid_101_protocol", b"\x03\x01\x00" + ok + b"Sec-WebSocket-Protocol: chat.v2\r\n\r\n")
write(H, "valid_lf_only_lowercase", b"\x01\x00\x00" + b"HTTP/1.1 101 OK\nupgrade: WebSocket\nconnection: keep-alive, upgrade\n"
      b"sec-websocket-accept: " + ACC + b"\nServer: x\n\n")
write(H, "prefix_end_only", b"\x02\x04\x00\r\n")
write(H, "prefix_protocol", b"\x04\x0d\x00Sec-WebSocket-Extensions:\r\n\r\n")
write(H, "not_found", b"\x00\x00\x00HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
write(H, "small_head_limit", b"\x05\x06\x10" + ok + b"\r\n")
write(H, "extension_refused", b"\x06\x04\x00Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
write(H, "folded_header", b"\x07\x04\x00X-A: 1\r\n  folded\r\n\r\n")
write(H, "accept_twice", b"\x03\x04\x00Sec-WebSocket-Accept: " + ACC + b"\r\n\r\n")

# ---- fuzz_lines_jsonrpc: [chunking] [cap] [seed] lines...
L = "fuzz_lines_jsonrpc"
write(L, "request_line", b"\x00\x80\x00" + b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}\n')
write(L, "pretty_request", b"\x00\x80\x07" + b'{\n  "jsonrpc": "2.0",\n  "id": "abc",\n  "method": "initialize",\n'
      b'  "params": {"a": [1, 2.5e-3, -0, true, false, null], "b": {}}\r\n}\n')
write(L, "response_crlf", b"\x03\x80\x01" + b'{"jsonrpc":"2.0","id":7,"result":{"ok":true}}\r\n'
      b'{"jsonrpc":"2.0","id":"x","error":{"code":-32600,"message":"no"}}\r\n')
write(L, "batch", b"\x02\x80\x02" + b'[{"jsonrpc":"2.0","method":"n"},{"id":null,"error":{"code":-32600}}]')
write(L, "escapes", b"\x01\x80\x03" + b'{"id":"\\u00e9\\ud83d\\ude00","method":"a\\/b\\u0041\\n","params":["\xc3\xa9"]}\n')
write(L, "escaped_keys", b"\x04\x80\x04" + b'{"\\u0069d":1,"me\\u0074hod":"x","method":"y"}\n')
write(L, "small_cap", b"\x01\x08\x00" + b"short\nthis line is far too long\r\n{\"id\":1}\n\r\n\n" + b"x" * 20)
write(L, "truncated_keeps_id", b"\x05\x80\x00" + b'{"id":5,"method":"x","params":[1,\n{"id":6,"id":}\n')
write(L, "notification_dup_keys", b"\x06\x80\x05" + b'{"method":"a","method":"b","id":true}\n{"method":1}\n')
write(L, "deep_512", b"\x00\x80\x06" + b"[" * 512 + b"]" * 512)
write(L, "deep_513", b"\x00\x80\x06" + b"[" * 513 + b"]" * 513)
write(L, "empty_batch_ws", b"\x07\x80\x00" + b" [ \t\r\n ] ")

# ---- fuzz_url: [flags] [block length] block url
U = "fuzz_url"
write(U, "loopback_port", b"\x00\x00ws://127.0.0.1:8079")
write(U, "ipv6_path_query", b"\x00\x00ws://[::ffff:10.0.0.1]:9000/mcp/v1?token=abc&x=%20y")
write(U, "ipv6_full", b"\x04\x00WS://[1:2:3:4:5:6:7:8]:1/")
write(U, "wss", b"\x00\x00wss://secure.example:8443/x")
write(U, "query_only", b"\x00\x00ws://my_daemon.internal-net:65535?x")
write(U, "extra_header", b"\x01\x0bX-Token:abcws://h/p?q")
write(U, "host_header", b"\x05\x0dHost:other.exws://[::1]:80/")
write(U, "subprotocol", b"\x02\x03mcpws://host")
write(U, "header_injection_attempt", b"\x01\x0dX-A:b\r\nX-B: cws://h/")
write(U, "path_crlf", b"\x00\x00ws://h/a\r\nX: y")
write(U, "userinfo", b"\x00\x00ws://u:p@h:80/")
write(U, "fragment", b"\x00\x00ws://h/p#frag")
write(U, "ipv6_trailing_gap", b"\x00\x00ws://[1:2:3:4:5:6:7::]:65535")
write(U, "long_host", b"\x00\x00ws://" + b"a" * 253 + b":1/")

# ---- fuzz_proxy: [flags, bit0 = 0] answer...  |  [flags, bit0 = 1] [url length] [credential length] url proxy
P = "fuzz_proxy"
write(P, "answer_200", b"\x00HTTP/1.1 200 Connection established\r\n\r\n\x81\x00")
write(P, "answer_200_headers", b"\x00HTTP/1.0 200 OK\r\nProxy-Agent: tinyproxy/1.11\r\nVia: 1.1 p\r\n\r\n")
write(P, "answer_200_no_reason", b"\x00HTTP/1.1 204\r\n\r\n")
write(P, "answer_407", b"\x00HTTP/1.1 407 Proxy Authentication Required\r\n"
      b"Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n")
write(P, "answer_502_body", b"\x00HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\n\r\nerror")
write(P, "answer_not_http", b"\x00SSH-2.0-OpenSSH_9.6\r\n\r\n")
write(P, "answer_lf_only", b"\x00HTTP/1.1 200 OK\n\n")
write(P, "answer_nul", b"\x00HTTP/1.1 200\x00 OK\r\n\r\n")
write(P, "answer_control_bytes", b"\x00HTTP/1.1 403 \x1b[31mno\x7f\r\n\r\n")
write(P, "answer_long_head", b"\x00HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 2100 + b"\r\n\r\n")
write(P, "proxy_plain", b"\x01\x14\x00ws://127.0.0.1:8079/http://proxy.example:3128")
write(P, "proxy_default_port_slash", b"\x01\x10\x00wss://daemon:443HTTP://proxy/")
write(P, "proxy_userinfo", b"\x01\x13\x00ws://[::1]:9000/mcphttp://user:pa%20ss@[fe80::1]:8080")
write(P, "proxy_auth_given", b"\x01\x0f\x20ws://d.example/http://10.0.0.1:3128")
write(P, "proxy_auth_in_url", b"\x03\x0d\x30ws://d:1/x?y=http://proxy:1")
write(P, "proxy_with_path", b"\x01\x08\x00ws://d/phttp://proxy:3128/path")
write(P, "proxy_bad_scheme", b"\x01\x08\x00ws://d/psocks5://proxy:1080")
write(P, "proxy_unix_daemon", b"\x01\x1a\x00ws+unix:/run/d.sock:/mcp/xhttp://proxy:1")
write(P, "proxy_long_daemon_host", b"\x01\xfe\x08ws://" + b"h" * 239 + b".ex:65535/http://p:1")
write(P, "proxy_long_credentials", b"\x01\x08\xffws://d/phttp://proxy:3128")
print("corpus written under", os.path.join(HERE, "corpus"))
