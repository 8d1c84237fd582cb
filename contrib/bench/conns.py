#!/usr/bin/python3
"""Highest number of client connections a redis-server has while a run goes on.

    conns.py PORT OUTFILE [--exclude-pids PID,PID...] [--also-port PORT]
             [--interval S] [--max-seconds S]

One admin connection to 127.0.0.1:PORT sends CLIENT LIST every --interval
seconds (0.02) and counts the connections in it, leaving out:
  - its own (CLIENT ID, asked once at the start);
  - those whose client side is a socket of one of --exclude-pids (the other
    bench targets, idle while this one is measured: their own connections to
    redis are not this target's). Found from /proc/PID/fd and /proc/net/tcp,
    as their sockets connected to PORT or to --also-port (the same server's
    TLS port; 0: none).

Prints "ready" on stdout after the first sample, so the caller can start the
load knowing the sampler is running. On SIGTERM or SIGINT (or after
--max-seconds, a bound in case the caller is gone) it takes one last sample
and writes "<max> <samples>" to OUTFILE. Standard library only.
"""

import argparse
import os
import signal
import socket
import sys
import time

stop = False


def on_signal(_sig, _frame):
    global stop
    stop = True


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the admin connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the admin connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return self._exact(int(rest)).decode(errors="replace")
        if kind == b"+":
            return rest.decode()
        raise RuntimeError("unexpected reply to %s: %r" % (args, line))


def socket_inodes(pid):
    inodes = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def excluded_ports(pids, redis_ports):
    """Local ports of the sockets of PIDS connected to one of redis_ports."""
    inodes = set()
    for pid in pids:
        inodes |= socket_inodes(pid)
    ports = set()
    if not inodes:
        return ports
    want = tuple(":%04X" % p for p in redis_ports)
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            # sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
            if len(fields) > 9 and fields[2].endswith(want) and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("outfile")
    ap.add_argument("--exclude-pids", default="")
    ap.add_argument("--also-port", type=int, default=0)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--max-seconds", type=float, default=600)
    a = ap.parse_args()
    pids = [int(p) for p in a.exclude_pids.replace(",", " ").split() if p]
    redis_ports = [a.port] + ([a.also_port] if a.also_port else [])

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    conn = Conn(a.port)
    own_field = "id=%d" % conn.call("CLIENT", "ID")
    excluded = excluded_ports(pids, redis_ports)
    checked = set()                   # ports seen and found not excluded

    def sample():
        nonlocal excluded
        n = 0
        ports = []
        for line in conn.call("CLIENT", "LIST").splitlines():
            # "id=N addr=IP:PORT laddr=... ..." (id and addr come first)
            head = line.split(" ", 2)
            if head[0] == own_field:
                continue
            try:
                ports.append(int(head[1].rsplit(":", 1)[1]))
            except (IndexError, ValueError):
                ports.append(-1)      # unix socket or odd address: count it
        if pids and any(p not in excluded and p not in checked for p in ports):
            excluded = excluded_ports(pids, redis_ports)
            checked.update(p for p in ports if p not in excluded)
        for p in ports:
            if p not in excluded:
                n += 1
        return n

    best = sample()
    samples = 1
    print("ready", flush=True)
    deadline = time.monotonic() + a.max_seconds
    while not stop and time.monotonic() < deadline:
        time.sleep(a.interval)
        if stop:
            break
        best = max(best, sample())
        samples += 1
    best = max(best, sample())
    samples += 1
    tmp = a.outfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (best, samples))
    os.rename(tmp, a.outfile)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, RuntimeError, ConnectionError) as e:
        print("conns.py: %s" % e, file=sys.stderr)
        sys.exit(1)
