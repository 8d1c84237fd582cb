#!/usr/bin/python3
"""Open N TCP connections to 127.0.0.1:PORT and hold them (for mem.sh).

    holdconns.py PORT N

Driven over stdin/stdout, one line each way:
  - after connecting all N, prints "connected N"
  - on the line "get KEY": sends GET KEY on each connection in turn and
    reads its reply, then prints "replied N"
  - on EOF (or the line "quit"): closes everything and exits.

Standard library only; run it with /usr/bin/python3.
"""

import resource
import socket
import sys


def connect_all(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setblocking(False)
        socks.append(s)
    return socks


def get_all(socks, key):
    """One GET on every socket, one connection at a time (send, wait for the
    whole reply), so the proxy sees idle clients that have each been used
    once rather than a burst of 10k concurrent requests."""
    cmd = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
    for s in socks:
        s.settimeout(30)
        s.sendall(cmd)
        buf = b""
        while not complete(buf):
            data = s.recv(65536)
            if not data:
                raise SystemExit("holdconns: connection closed by the proxy")
            buf += data
        s.setblocking(False)
    return len(socks)


def complete(buf):
    """True once buf holds one whole simple reply (bulk, nil, error, status)."""
    if not buf.endswith(b"\r\n"):
        return False
    if buf[:1] == b"$":
        head, _, rest = buf.partition(b"\r\n")
        size = int(head[1:])
        return size < 0 or len(rest) >= size + 2
    return True


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    socks = connect_all(port, n)
    print("connected %d" % len(socks), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "get":
            print("replied %d" % get_all(socks, words[1].encode()), flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
