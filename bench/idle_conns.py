#!/usr/bin/env python3
"""Open N TLS keep-alive connections to host:port, send one request on each (so every
connection is fully established and has served a request), print 'ready <ok> <failed>',
then hold them all open until stdin reaches EOF or the process is signalled."""
import socket, ssl, sys

host, port, path, token, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
req = f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
if token:
    req += f"Authorization: Bearer {token}\r\n"
req = (req + "\r\n").encode()
conns, failed = [], 0
for _ in range(n):
    try:
        s = socket.create_connection((host, port), timeout=10)
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = t.recv(65536)
            if not chunk:
                raise OSError("closed")
            data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            raise OSError(data[:40])
        conns.append(t)
    except Exception as e:  # count and go on: the caller reports failures
        failed += 1
        if failed <= 3:
            print(f"connection failed: {e!r}", file=sys.stderr)
print(f"ready {len(conns)} {failed}", flush=True)
sys.stdin.read()
