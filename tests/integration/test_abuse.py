"""Abuse: floods, slow and greedy clients, absurd headers, random bytes, a
master that speaks garbage, a znode that flaps. Each test is bounded in
count and time; after each, the proxy still serves a fresh client
correctly, holds no more file descriptors than before, and its RSS is back
near where it started.

What test_limits.py / test_faults.py already cover is not repeated here:
maxclients at 5 clients, the 1 MB query limit, a 600 MB bulk header, random
bytes from whole clients, slow readers of 1 MiB values, a fast writer to a
sleeping master, RLIMIT_NOFILE exhaustion, and a master that dies or
refuses. This file takes each to scale or to the next layer (the master's
side of the protocol, ZooKeeper).
"""

import os
import random
import resource
import select
import socket
import struct
import threading
import time

import pytest

from conftest import (ADMIN_NAME, LOCALHOST, RespConn, Closed, Error, ProtocolViolation, Incomplete, encode, bulk,
                      expect_bytes, free_port, parse_reply, proc_status_kb, rss_kb, wait_for)

# RSS a test may leave behind once its load is gone. glibc keeps some freed
# memory in its arenas, and the sanitizer build keeps up to
# quarantine_size_mb of freed memory on purpose (see README.md here).
RSS_SLACK_KB = int(os.environ.get("RZ_TEST_RSS_SLACK_MB", "24")) * 1024

REPLY_LOST = b"-ERR connection to master lost; the command may or may not have run\r\n"
MAXCLIENTS_ERR = b"-ERR max number of clients reached\r\n"


# ---------------------------------------------------------------- helpers

def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def stable_fd_count(pid, samples=3, interval=0.1, timeout=5.0):
    """The fd count once it stopped changing (the last close may still be
    in flight when the caller looks)."""
    seen = [fd_count(pid)]

    def stable():
        time.sleep(interval)
        seen.append(fd_count(pid))
        return len(set(seen[-samples:])) == 1 and len(seen) >= samples
    wait_for(stable, timeout=timeout, interval=0.01, what="a stable fd count")
    return seen[-1]


def vm_peak_kb(pid):
    return proc_status_kb(pid, "VmPeak")


def connected_clients(px):
    with px.raw(timeout=10) as c:
        info = c.call("PROXY", "INFO")
    for line in info.decode().split("\r\n"):
        if line.startswith("connected_clients:"):
            return int(line.split(":", 1)[1])
    raise AssertionError("no connected_clients in PROXY INFO: %r" % info[:300])


class Baseline:
    """What the proxy looks like at rest: fds, RSS, and that it serves."""

    def __init__(self, px, warm=8):
        self.px = px
        # Open every shared backend connection first (clients are spread
        # over them by id), so that later fd counts compare like with like.
        conns = [px.raw() for _ in range(warm)]
        try:
            for c in conns:
                assert c.call("PING") == "PONG"
        finally:
            for c in conns:
                c.close()
        serves_fresh_client(px, "baseline")
        wait_for(lambda: connected_clients(px) == 1, timeout=10, what="no clients but the one asking")
        self.fds = stable_fd_count(px.pid)
        self.rss = rss_kb(px.pid)

    def check(self, tag, timeout=20):
        """The proxy is alive, serves a fresh client, and its descriptors and
        memory come back to the baseline (bounded wait: closes are async)."""
        px = self.px
        assert px.alive(), "proxy died (%s):\n%s" % (tag, px.log_tail())
        serves_fresh_client(px, tag)
        wait_for(lambda: connected_clients(px) == 1, timeout=timeout,
                 what="client count back to 0 after %s" % tag)
        fds = [0]

        def fds_ok():
            fds[0] = fd_count(px.pid)
            return fds[0] <= self.fds
        try:
            wait_for(fds_ok, timeout=timeout, interval=0.05, what="fd count back to the baseline")
        except AssertionError:
            raise AssertionError("%d fds after %s, baseline %d" % (fds[0], tag, self.fds)) from None
        last = [0]

        def rss_ok():
            last[0] = rss_kb(px.pid)
            return last[0] <= self.rss + RSS_SLACK_KB
        try:
            wait_for(rss_ok, timeout=timeout, interval=0.2, what="RSS back near baseline")
        except AssertionError:
            raise AssertionError("RSS %d kB after %s, baseline %d kB (slack %d kB)"
                                 % (last[0], tag, self.rss, RSS_SLACK_KB)) from None


def serves_fresh_client(px, tag):
    with px.raw() as c:
        key = "fresh:%s:%d" % (tag, random.randrange(1 << 30))
        c.send(encode("SET", key, tag) + encode("GET", key) + b"PING\r\n" + encode("DEL", key))
        expect_bytes(c, b"+OK\r\n" + bulk(tag) + b"+PONG\r\n:1\r\n", timeout=20,
                     what="fresh client after %s" % tag)


def rst_close(sock):
    """Close with RST (SO_LINGER 0): no TIME_WAIT left on our side."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def raise_nofile(want):
    """Raise this process's RLIMIT_NOFILE to at least `want`; returns the old
    limits (restore them with resource.setrlimit)."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = old
    if soft >= want:
        return old
    if hard != resource.RLIM_INFINITY and hard < want:
        hard = want                      # needs CAP_SYS_RESOURCE (CI runs as root)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError) as e:
        pytest.fail("cannot raise RLIMIT_NOFILE to %d (limits %r): %s; this test needs that many "
                    "sockets" % (want, old, e))
    return old


def parse_stream(data):
    """Split a byte stream from the proxy into complete RESP replies.
    Returns (replies, rest): rest is an incomplete last reply (b"" if none).
    Raises ProtocolViolation on bytes that are no RESP at all."""
    out, pos = [], 0
    while pos < len(data):
        try:
            v, p = parse_reply(data, pos)
        except Incomplete:
            break
        except ValueError as e:
            raise ProtocolViolation("%s at %d: %r" % (e, pos, data[pos:pos + 60]))
        out.append(v)
        pos = p
    return out, data[pos:]


def read_until_quiet(socks, settle=1.0, timeout=30.0):
    """Read from every socket until each is at EOF or nothing arrived on any
    of them for `settle` seconds (bounded by timeout).
    Returns {sock: (bytes, eof)}."""
    data = {s: bytearray() for s in socks}
    eof = set()
    ep = select.epoll()
    by_fd = {}
    for s in socks:
        s.setblocking(False)
        ep.register(s.fileno(), select.EPOLLIN)
        by_fd[s.fileno()] = s
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while len(eof) < len(socks) and time.monotonic() < deadline:
            events = ep.poll(0.1)
            if not events:
                if time.monotonic() - quiet_since > settle:
                    break
                continue
            quiet_since = time.monotonic()
            for fd, _ in events:
                s = by_fd[fd]
                try:
                    d = s.recv(1 << 16)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    d = b""
                if d:
                    data[s] += d
                else:
                    eof.add(s)
                    ep.unregister(fd)
    finally:
        ep.close()
    return {s: (bytes(data[s]), s in eof) for s in socks}


# ---------------------------------------------------------------- 5,000 connections

FLOOD = 5000
FLOOD_MAXCLIENTS = 1000


def _open_many(port, n, nthreads=8):
    """Open n connections to port from nthreads threads at once; returns the
    sockets (connect failures are re-raised)."""
    socks, errors = [], []
    lock = threading.Lock()

    def opener(k):
        mine = []
        try:
            for _ in range(k):
                s = socket.create_connection((LOCALHOST, port), timeout=30)
                s.setblocking(False)
                mine.append(s)
        except OSError as e:
            errors.append(repr(e))
        with lock:
            socks.extend(mine)

    share = [n // nthreads + (1 if i < n % nthreads else 0) for i in range(nthreads)]
    threads = [threading.Thread(target=opener, args=(k,)) for k in share]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "connect threads hung"
    if errors:
        for s in socks:
            rst_close(s)
        raise AssertionError("%d connects failed, first: %s" % (len(errors), errors[0]))
    return socks


def _classify(socks):
    """A rejected connection gets exactly MAXCLIENTS_ERR then EOF; an accepted
    one gets nothing. Returns (accepted, rejected, bad); bad = [(sock, data, eof)]."""
    got = read_until_quiet(socks, settle=2.0, timeout=60.0)
    accepted, rejected, bad = [], [], []
    for s in socks:
        data, eof = got[s]
        if eof and data == MAXCLIENTS_ERR:
            rejected.append(s)
        elif not eof and data == b"":
            accepted.append(s)
        else:
            bad.append((s, data, eof))
    return accepted, rejected, bad


@pytest.mark.proxy_only
def test_5000_connections_over_maxclients(proxy_factory, redis_server, r):
    """5,000 connections at once against maxclients 1000, three rounds
    (closed with RST, with FIN, and with a command half sent): exactly 1000
    are served, every other one gets redis's error line and is closed, and
    each round starts from a clean count."""
    old = raise_nofile(FLOOD + 1024)
    try:
        px = proxy_factory(redis_server, globals_={"maxclients": str(FLOOD_MAXCLIENTS)},
                           nofile=FLOOD_MAXCLIENTS + 1024)
        base = Baseline(px)
        for rnd, how in enumerate(("rst", "fin", "half-sent")):
            socks = _open_many(px.port, FLOOD)
            try:
                accepted, rejected, bad = _classify(socks)
                assert not bad, "round %d: %d connections neither served nor cleanly rejected, e.g. %r" % (
                    rnd, len(bad), bad[:3])
                assert len(accepted) == FLOOD_MAXCLIENTS, (rnd, len(accepted), len(rejected))
                assert len(rejected) == FLOOD - FLOOD_MAXCLIENTS, (rnd, len(accepted), len(rejected))
                # every accepted one is really served (a sample of them pipelines)
                for i, s in enumerate(accepted):
                    s.setblocking(True)
                    s.settimeout(20)
                    c = RespConn(s, timeout=20)
                    if i % 100 == 0:
                        c.send(encode("INCR", "flood:%d" % rnd) + b"PING\r\n")
                        assert c.read_raw_reply(timeout=20).startswith(b":"), i
                        assert c.read_raw_reply(timeout=20) == b"+PONG\r\n", i
                    if how == "half-sent":
                        s.sendall(b"*3\r\n$3\r\nSET\r\n$6\r\nhalf:x\r\n$100\r\nnot all")
                assert r.get("flood:%d" % rnd) == b"%d" % (FLOOD_MAXCLIENTS // 100)
            finally:
                for s in socks:
                    if how == "fin":
                        s.close()
                    else:
                        rst_close(s)
            base.check("flood round %d (%s)" % (rnd, how), timeout=30)
        assert r.exists("half:x") == 0, "a half-sent command ran"
        with open(px.logpath, errors="replace") as f:
            rejections = sum(1 for line in f if "maxclients %d reached" % FLOOD_MAXCLIENTS in line)
        assert rejections == 3 * (FLOOD - FLOOD_MAXCLIENTS), rejections
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


# ---------------------------------------------------------------- slowloris

SLOW_CLIENTS = 5
SLOW_SECONDS = 5


def _slow_requests():
    """One request per slow client, each stopping in a different place:
    the multibulk header, a bulk length, a large payload, an inline line,
    and a request inside MULTI (which pins the client in shared mode)."""
    big = b"p" * 100000
    return [
        ("header", [], encode("SET", "slow:header", "h"), b"+OK\r\n"),
        ("bulklen", [], encode("SET", "slow:bulklen", "b" * 12345), b"+OK\r\n"),
        ("payload", [], encode("SET", "slow:payload", big), b"+OK\r\n"),
        ("inline", [], b"SET slow:inline \"in line\"\r\n", b"+OK\r\n"),
        ("multi", [encode("MULTI")], encode("SET", "slow:multi", "m") + encode("EXEC"),
         b"+QUEUED\r\n*1\r\n+OK\r\n"),
    ]


def test_slowloris(proxy, r):
    """A handful of clients send one byte per second for a few seconds: they
    stay connected, their partial requests run only once whole (and then
    correctly), and meanwhile everyone else is served as usual."""
    reqs = _slow_requests()
    assert len(reqs) == SLOW_CLIENTS
    base = Baseline(proxy) if proxy.proc is not None else None
    slow = []
    try:
        for name, setup, req, _ in reqs:
            c = proxy.raw(timeout=20)
            for s in setup:
                c.send(s)
                assert c.read_reply() == "OK", name
            # most of the request at once, for the payload case, so that the
            # dribble starts deep inside it
            head = len(req) - 60 if name == "payload" else 0
            c.send(req[:head])
            slow.append([name, c, req, head])
        bulk_val = b"x" * 20000
        served = 0
        t_end = time.monotonic() + SLOW_SECONDS
        for tick in range(SLOW_SECONDS * 4):
            if time.monotonic() > t_end:
                break
            if tick % 4 == 0:
                for item in slow:
                    name, c, req, pos = item
                    c.send(req[pos:pos + 1])
                    item[3] = pos + 1
            # everyone else: fresh clients, pipelines and a large value
            with proxy.raw(timeout=20) as g:
                k = "fast:%d" % tick
                g.send(encode("SET", k, bulk_val) + encode("GET", k) + b"PING\r\n" +
                       b"".join(encode("INCR", "fast:n") for _ in range(50)))
                expect_bytes(g, b"+OK\r\n" + bulk(bulk_val) + b"+PONG\r\n" +
                             b"".join(b":%d\r\n" % (served * 50 + i + 1) for i in range(50)),
                             timeout=20, what="a normal client next to %d slow ones" % SLOW_CLIENTS)
            served += 1
            time.sleep(0.25)
        assert served >= SLOW_SECONDS, served
        # nothing of the slow requests ran, nothing was answered, nobody closed
        for name, c, req, pos in slow:
            assert pos < len(req), name
            assert c.nothing_pending(0.05), (name, c.pending())
        for key in ("slow:header", "slow:bulklen", "slow:payload", "slow:inline", "slow:multi"):
            assert r.exists(key) == 0, key
        # the rest arrives: each request runs, once, with the right value
        for (name, c, req, pos), (_, _, _, want) in zip(slow, reqs):
            c.send(req[pos:])
            expect_bytes(c, want, timeout=20, what="slow client %s" % name)
            assert c.nothing_pending(0.05), name
        assert r.get("slow:header") == b"h"
        assert r.get("slow:bulklen") == b"b" * 12345
        assert r.get("slow:payload") == b"p" * 100000
        assert r.get("slow:inline") == b"in line"
        assert r.get("slow:multi") == b"m"
    finally:
        for _, c, _, _ in slow:
            c.close()
    if base is not None:
        base.check("slowloris")


# ---------------------------------------------------------------- 1 GiB of GETs, never read

PIPELINE_TOTAL = 1 << 30
PIPELINE_STALL_S = 3.0          # no byte accepted for this long = the proxy stopped reading
PIPELINE_BOUND_S = 120.0


@pytest.mark.proxy_only
def test_pipeline_1gib_of_gets_without_reading(proxy_factory, redis_server, r, sharing):
    """A client pipelines GETs (up to 1 GiB of them) and never reads a reply.
    The proxy must stop reading it long before (output-buffer-limit
    backpressure, then TCP's): the client's sends stall, the proxy's RSS
    stays bounded, and once the client goes the memory is returned."""
    # output-stall-timeout 0: never disconnect the stuck reader, so that what
    # stops it is backpressure alone.
    px = proxy_factory(redis_server, sharing=sharing, globals_={"output-stall-timeout": "0"})
    r.set("gk", "v" * 16)
    base = Baseline(px)
    chunk = b"".join(encode("GET", "gk") for _ in range(1 << 15))      # ~780 KiB
    c = socket.create_connection((LOCALHOST, px.port), timeout=10)
    c.setblocking(False)
    sent = 0
    peak = base.rss
    view = memoryview(chunk)
    off = 0
    t0 = time.monotonic()
    last_progress = t0
    stalled = False
    try:
        while sent < PIPELINE_TOTAL and time.monotonic() - t0 < PIPELINE_BOUND_S:
            _, w, _ = select.select([], [c], [], 0.2)
            if w:
                try:
                    n = c.send(view[off:])
                except BlockingIOError:
                    n = 0
                if n:
                    sent += n
                    off = (off + n) % len(chunk)
                    last_progress = time.monotonic()
            peak = max(peak, rss_kb(px.pid))
            if time.monotonic() - last_progress > PIPELINE_STALL_S:
                stalled = True
                break
        assert px.alive(), px.log_tail()
        assert stalled, "the proxy kept reading: %d MiB sent in %.0f s" % (sent >> 20, time.monotonic() - t0)
        assert sent < PIPELINE_TOTAL // 4, "%d MiB accepted before the proxy stopped reading" % (sent >> 20)
        # still stopped: a few more seconds, nothing more is taken
        for _ in range(10):
            _, w, _ = select.select([], [c], [], 0.2)
            assert not w, "the stalled client became writable again (%d MiB sent)" % (sent >> 20)
            peak = max(peak, rss_kb(px.pid))
        assert peak - base.rss < 64 * 1024, (
            "proxy RSS grew by %d kB (baseline %d kB) under a %d MiB unread pipeline"
            % (peak - base.rss, base.rss, sent >> 20))
        print("pipeline: %d MiB sent before the proxy stopped reading; peak RSS %d kB (baseline %d kB)"
              % (sent >> 20, peak, base.rss))
        if sharing == "no":
            serves_fresh_client(px, "during the stalled pipeline")
    finally:
        rst_close(c)
    base.check("1 GiB pipeline", timeout=60)


@pytest.mark.proxy_only
def test_deep_pipeline_on_a_stalled_master_memory_returned(proxy_factory, redis_factory):
    """Regression: a client pipelines GETs while the master sleeps, so
    hundreds of thousands of replies are owed on one shared connection.
    Once they are all delivered the proxy gives the memory back. It used to
    keep the reply-owner FIFO at its high-water size for the life of the
    shared connection (~28 MB more than the baseline after this test; with
    the fix, measured 7.7 MB, what glibc keeps of the freed buffers, under
    the 24 MB slack)."""
    srv = redis_factory()
    px = proxy_factory(srv, sharing="yes", pool={"backend-connections": "1"})
    srv.client().set("dk", "x")
    base = Baseline(px)
    n = 600000
    req = b"".join(encode("GET", "dk") for _ in range(10000))
    want = b"$1\r\nx\r\n"
    sleeper = px.raw(timeout=30)
    c = RespConn.tcp(px.port, timeout=60)
    got = [0]
    err = []

    def reader():
        try:
            for i in range(n):
                assert c.read_exact(len(want), timeout=60) == want, i
                got[0] += 1
        except Exception as e:              # reported below
            err.append(repr(e))

    try:
        sleeper.cmd("DEBUG", "SLEEP", "2")
        time.sleep(0.1)
        t = threading.Thread(target=reader)
        t.start()
        for _ in range(n // 10000):
            c.send(req)
        t.join(120)
        assert not t.is_alive(), "reader hung after %d replies" % got[0]
        assert not err, err
        assert sleeper.read_raw_reply(timeout=30) == b"+OK\r\n"
    finally:
        c.close()
        sleeper.close()
    base.check("a deep pipeline on a stalled master")


# ---------------------------------------------------------------- absurd headers

ERR_MBULK = b"-ERR Protocol error: invalid multibulk length\r\n"
ERR_BULK = b"-ERR Protocol error: invalid bulk length\r\n"

HUGE_HEADERS = {
    # 2^31 arguments: over redis's INT_MAX and our RESP_MULTIBULK_MAX
    "multibulk_2^31": (b"*2147483648\r\n", ERR_MBULK),
    "multibulk_2^63": (b"*9223372036854775808\r\n", ERR_MBULK),
    # a 4 GiB argument: over proto-max-bulk-len (512 MB)
    "bulk_4gib_first_arg": (b"*1\r\n$4294967296\r\n", ERR_BULK),
    "bulk_4gib_value": (b"*3\r\n$3\r\nSET\r\n$4\r\nhuge\r\n$4294967296\r\n" + b"x" * 65536, ERR_BULK),
    "bulk_2^63": (b"*2\r\n$3\r\nGET\r\n$9223372036854775807\r\n", ERR_BULK),
}


@pytest.mark.parametrize("case", list(HUGE_HEADERS))
@pytest.mark.parametrize("dribble", [False, True], ids=["whole", "bytewise"])
def test_huge_header_rejected_before_allocating(proxy, r, case, dribble):
    """A header announcing 2^31 arguments or a 4 GiB bulk is a protocol error
    as soon as its line is complete (also when it arrives a byte at a time),
    with redis's wording, and nothing is allocated for it: neither RSS nor
    the peak virtual size moves by anything near what it announced."""
    payload, want = HUGE_HEADERS[case]
    base = Baseline(proxy) if proxy.proc is not None else None
    peak0 = vm_peak_kb(proxy.pid) if base else 0
    with proxy.raw() as c:
        c.send(encode("SET", "before:" + case, "1"))
        assert c.read_raw_reply() == b"+OK\r\n"
        try:
            if dribble:
                head = payload[:payload.index(b"\r\n", payload.rindex(b"$") if b"$" in payload else 0) + 2]
                for i in range(len(head)):
                    c.send(head[i:i + 1])
                    time.sleep(0.002)
                c.send(payload[len(head):])
            else:
                c.send(payload)
        except OSError:
            pass                    # closed while we were still sending: read what came
        data, closed = c.read_all_until_close(10)
        assert data == want, (case, data[:200])
        assert closed, "%s: connection left open after the protocol error" % case
    assert r.get("before:" + case) == b"1"
    assert r.exists("huge") == 0
    if base is not None:
        grew = vm_peak_kb(proxy.pid) - peak0
        assert grew < 256 * 1024, "%s: peak virtual size grew by %d kB" % (case, grew)
        base.check(case)


# ---------------------------------------------------------------- random bytes

def _valid_pipeline(rnd, tag):
    """A pipeline of harmless commands, in both protocols and both request
    forms, including ones that pin and ones answered by the proxy itself."""
    cmds = []
    for i in range(rnd.randint(1, 30)):
        k = "rb:%s:%d" % (tag, rnd.randint(0, 5))
        x = rnd.random()
        if x < 0.25:
            cmds.append(encode("SET", k, rnd.randbytes(rnd.choice((1, 10, 300, 5000)))))
        elif x < 0.45:
            cmds.append(encode("GET", k))
        elif x < 0.55:
            cmds.append(encode("INCR", k + ":n"))
        elif x < 0.62:
            cmds.append(encode("RPUSH", k + ":l", "a", "b"))
        elif x < 0.68:
            cmds.append(b"PING\r\n")
        elif x < 0.72:
            cmds.append(b"ECHO \"quoted \\x41\"\r\n")
        elif x < 0.76:
            cmds.append(encode("MULTI") + encode("INCR", k + ":m") + encode("EXEC"))
        elif x < 0.79:
            cmds.append(encode("SELECT", str(rnd.randint(0, 3))))
        elif x < 0.82:
            cmds.append(encode("HELLO", rnd.choice(("2", "3"))))
        elif x < 0.85:
            cmds.append(encode("PROXY", "INFO"))
        elif x < 0.88:
            cmds.append(encode("CLIENT", "SETNAME", "rb%d" % i))
        else:
            cmds.append(encode("MGET", k, k + ":n", "nokey"))
    return b"".join(cmds)


def _mutate(rnd, data):
    data = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        op = rnd.random()
        pos = rnd.randrange(len(data) + 1)
        if op < 0.35 and data:
            data[min(pos, len(data) - 1)] = rnd.randrange(256)
        elif op < 0.55:
            data[pos:pos] = rnd.randbytes(rnd.randint(1, 16))
        elif op < 0.7:
            data[pos:pos] = rnd.choice((b"*", b"$", b"\r\n", b"*-1\r\n", b"$-5\r\n", b"*999999\r\n",
                                        b"$99999999999\r\n", b"\x00", b"\"", b"'"))
        elif op < 0.85:
            del data[pos:pos + rnd.randint(1, 32)]
        else:
            data = data[:pos]
    return bytes(data)


RANDOM_SEED = 20261126
RANDOM_CASES = 200
RANDOM_BATCH = 50


def test_random_bytes_mutated_pipelines(proxy_factory, redis_server, r, sharing):
    """Seeded random corruption of valid pipelines (flipped, inserted and
    deleted bytes, absurd lengths, truncation), one connection each, with a
    well-behaved client pipelining next to them. What comes back is always
    well-formed RESP; a protocol error is the last thing a client gets before
    its connection closes; the bystander sees exactly its own replies. The
    pipelines SELECT and HELLO their way into up to 8 session groups, whose
    connections close once unused for session-group-idle-timeout (short
    here, so the fd count is back at the baseline within the check)."""
    proxy = proxy_factory(redis_server, sharing=sharing, pool={"session-group-idle-timeout": "200"})
    rnd = random.Random(RANDOM_SEED)
    base = Baseline(proxy) if proxy.proc is not None else None
    stop = threading.Event()
    errors = []

    def bystander():
        try:
            with proxy.raw(timeout=30) as g:
                n = 0
                while not stop.is_set() and n < 20000:
                    g.send(b"".join(encode("INCR", "rb:good") for _ in range(50)))
                    expect_bytes(g, b"".join(b":%d\r\n" % (n + i + 1) for i in range(50)), timeout=30,
                                 what="bystander")
                    n += 50
        except Exception as e:          # reported below
            errors.append(repr(e))

    t = threading.Thread(target=bystander)
    t.start()
    outcomes = {"closed after protocol error": 0, "open": 0, "closed": 0}
    try:
        for batch in range(RANDOM_CASES // RANDOM_BATCH):
            cases = []
            for i in range(RANDOM_BATCH):
                case = batch * RANDOM_BATCH + i
                payload = _mutate(rnd, _valid_pipeline(rnd, str(case)))
                s = socket.create_connection((LOCALHOST, proxy.port), timeout=5)
                try:
                    s.sendall(payload)
                except OSError:
                    pass
                cases.append((case, payload, s))
            got = read_until_quiet([s for _, _, s in cases])
            for case, payload, s in cases:
                data, closed = got[s]
                rst_close(s)
                try:
                    replies, rest = parse_stream(data)
                except ProtocolViolation as e:
                    raise AssertionError("case %d: the proxy sent bytes that are not RESP: %s\npayload %r"
                                         % (case, e, payload[:300])) from None
                perr = [i for i, v in enumerate(replies)
                        if isinstance(v, Error) and v.startswith("ERR Protocol error")]
                if perr:
                    assert perr[0] == len(replies) - 1 and rest == b"", (
                        "case %d: replies after the protocol error: %r" % (case, replies[perr[0]:][:5]))
                    assert closed, "case %d: open after %r" % (case, replies[-1])
                    outcomes["closed after protocol error"] += 1
                else:
                    outcomes["closed" if closed else "open"] += 1
        print("random bytes outcomes:", outcomes)
        assert outcomes["closed after protocol error"] > RANDOM_CASES // 10, outcomes
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive(), "bystander hung"
    assert not errors, errors
    if base is not None:
        base.check("random bytes")


# ---------------------------------------------------------------- a master that speaks garbage

class FakeRedis:
    """A tiny redis on a free loopback port: PING, ECHO, SET, GET, INCR, DEL,
    ROLE (multibulk and inline), one thread per connection. `GET fault:<mode>`
    makes it misbehave on that connection instead of answering (FAULTS);
    `greeting`, when set, is sent to every new connection before anything
    else. stop() closes every socket and joins every thread."""

    def __init__(self, seed=1):
        self.port = free_port()
        self.data = {}
        self.greeting = None
        self.role_trailer = None    # bytes sent right after the answer to ROLE
        self.wait_more = 0          # a fault waits until this many more requests are in
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.conns = []
        self.threads = []
        self.faults = []            # modes triggered, in order
        self.stopping = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOCALHOST, self.port))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)

    def start(self):
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        self.lsock.close()
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            try:
                s.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(10)

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except (socket.timeout, OSError):
                continue
            s.settimeout(0.2)
            with self.lock:
                self.conns.append(s)
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            t.start()
            self.threads.append(t)

    # -- requests
    @staticmethod
    def _parse(buf):
        """One request from buf: (argv, rest), or (None, buf) if incomplete."""
        if buf.startswith(b"*"):
            nl = buf.find(b"\r\n")
            if nl < 0:
                return None, buf
            n, pos, argv = int(buf[1:nl]), nl + 2, []
            for _ in range(n):
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    return None, buf
                ln = int(buf[pos + 1:nl])
                if len(buf) < nl + 2 + ln + 2:
                    return None, buf
                argv.append(buf[nl + 2:nl + 2 + ln])
                pos = nl + 2 + ln + 2
            return argv, buf[pos:]
        nl = buf.find(b"\r\n")
        if nl < 0:
            return None, buf
        return buf[:nl].split(), buf[nl + 2:]

    def _answer(self, argv):
        cmd = argv[0].upper() if argv else b""
        if cmd == b"PING":
            return b"+PONG\r\n"
        if cmd == b"ECHO":
            return bulk(argv[1])
        if cmd == b"SET":
            self.data[argv[1]] = argv[2]
            return b"+OK\r\n"
        if cmd == b"GET":
            v = self.data.get(argv[1])
            return bulk(v) if v is not None else b"$-1\r\n"
        if cmd == b"INCR":
            v = int(self.data.get(argv[1], b"0")) + 1
            self.data[argv[1]] = str(v).encode()
            return b":%d\r\n" % v
        if cmd == b"ROLE":
            return b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n" + (self.role_trailer or b"")
        if cmd == b"DEL":
            return b":%d\r\n" % (1 if self.data.pop(argv[1], None) is not None else 0)
        return b"-ERR unknown command\r\n"

    def _serve(self, s):
        buf = b""
        try:
            if self.greeting is not None:
                s.sendall(self.greeting)
            while not self.stopping.is_set():
                argv, rest = self._parse(buf)
                if argv is None:
                    try:
                        d = s.recv(65536)
                    except socket.timeout:
                        continue
                    if not d:
                        return
                    buf += d
                    continue
                buf = rest
                if len(argv) == 2 and argv[0].upper() == b"GET" and argv[1].startswith(b"fault:"):
                    mode = argv[1][6:].decode()
                    buf = self._wait_more(s, buf)
                    self.faults.append(mode)
                    if FAULTS[mode](self, s) == "close":
                        return
                    continue
                s.sendall(self._answer(argv))
        except OSError:
            return
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _wait_more(self, s, buf, timeout=5.0):
        """Before a fault, let `wait_more` more requests arrive on this
        connection (other clients' commands sharing it), bounded in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n, rest = 0, buf
            while True:
                argv, rest = self._parse(rest)
                if argv is None:
                    break
                n += 1
            if n >= self.wait_more:
                break
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            if not d:
                break
            buf += d
        return buf


def _fault_garbage(fake, s):
    s.sendall(b"?" + fake.rnd.randbytes(200))           # no RESP type byte is '?'
    return "keep"                                          # the proxy must hang up


def _fault_partial_close(fake, s):
    s.sendall(b"$10\r\nabc")
    return "close"


def _fault_aggregate_close(fake, s):
    s.sendall(b"*3\r\n$1\r\na\r\n:2\r\n")
    return "close"


def _fault_huge_bulk_close(fake, s):
    s.sendall(b"$4294967296\r\n" + b"x" * 65536)
    return "close"


def _fault_too_deep(fake, s):
    s.sendall(b"*1\r\n" * 5000)
    return "keep"


def _fault_close(fake, s):
    return "close"


def _fault_rst(fake, s):
    rst_close(s)
    return "close"


def _fault_bad_bulk_end(fake, s):
    s.sendall(b"$3\r\nabcXY")                            # payload not followed by CRLF
    return "keep"


def _fault_extra_reply(fake, s):
    s.sendall(b"+OK\r\n+UNASKED\r\n")                   # two replies to one command
    return "keep"


FAULTS = {
    "garbage": _fault_garbage,
    "partial_close": _fault_partial_close,
    "aggregate_close": _fault_aggregate_close,
    "huge_bulk_close": _fault_huge_bulk_close,
    "too_deep": _fault_too_deep,
    "close": _fault_close,
    "rst": _fault_rst,
    "bad_bulk_end": _fault_bad_bulk_end,
    "extra_reply": _fault_extra_reply,
}

# What the faulty client sees for its pipeline GET a, GET fault:<mode>, GET b:
# the reply to GET a, then either "lost" (an outcome-unknown error for each
# of the two outstanding commands; nothing of the faulty reply was passed
# on) or "cut" (the start of the faulty reply, as it came, then EOF: no
# error is ever appended to half a reply). Then the connection closes.
FAULT_SEES = {
    "garbage": "lost",
    "partial_close": "cut",
    "aggregate_close": "cut",
    "huge_bulk_close": "cut",
    "too_deep": "lost or cut",
    "close": "lost",
    "rst": "lost",
    "bad_bulk_end": "lost or cut",
}


@pytest.fixture
def fake_redis():
    fakes = []

    def make(**kw):
        f = FakeRedis(**kw).start()
        fakes.append(f)
        return f
    yield make
    for f in fakes:
        f.stop()


@pytest.mark.proxy_only
@pytest.mark.parametrize("mode", list(FAULT_SEES))
def test_master_sends_garbage_or_partial_reply(proxy_factory, fake_redis, sharing, mode):
    """A master that answers garbage, half a reply, a 4 GiB bulk header or
    nesting 5,000 deep, or that closes or resets mid-reply. The faulty
    client gets its earlier reply intact, then either an outcome-unknown
    error for each command still owed, or the faulty bytes up to where they
    stopped (never an error spliced into half a reply), then EOF. A client
    sharing that connection gets the outcome-unknown error; a pinned
    bystander is untouched. Then a fresh client is served."""
    fake = fake_redis(seed=hash(mode) & 0xffff)
    # one shared connection: the bystander's command travels with the fault
    px = proxy_factory(fake.port, sharing=sharing, pool={"backend-connections": "1"})
    base = Baseline(px)
    fake.data[b"a"] = b"A"
    fake.data[b"b"] = b"B"
    fake.wait_more = 2 if sharing == "yes" else 0        # GET b, and the bystander's PING
    bystander = px.raw(timeout=10)
    try:
        assert bystander.call("PING") == "PONG"
        with px.raw(timeout=10) as c:
            c.send(encode("GET", "a") + encode("GET", "fault:" + mode) + encode("GET", "b"))
            time.sleep(0.2)
            bystander.cmd("PING")
            data, closed = c.read_all_until_close(10)
            assert closed, "%s: faulty client still open, got %r" % (mode, data[:200])
            assert data.startswith(b"$1\r\nA\r\n"), (mode, data[:200])
            rest = data[len(b"$1\r\nA\r\n"):]
            lost = rest == REPLY_LOST * 2
            cut = len(rest) > 0 and not rest.startswith(b"-ERR connection to master lost") and \
                REPLY_LOST not in rest
            want = FAULT_SEES[mode]
            ok = (lost and "lost" in want) or (cut and "cut" in want)
            assert ok, "%s: after the first reply got %r (expected %s)" % (mode, rest[:200], want)
        # the bystander: on the same connection it was owed a reply too
        if sharing == "yes":
            bdata, bclosed = bystander.read_all_until_close(10)
            assert bdata == REPLY_LOST and bclosed, (mode, bdata, bclosed)
        else:
            assert bystander.read_raw_reply() == b"+PONG\r\n", mode
            assert bystander.nothing_pending(0.2) and not bystander.eof, mode
    finally:
        bystander.close()
    assert fake.faults == [mode], fake.faults
    base.check("master fault %s" % mode)


@pytest.mark.proxy_only
def test_master_sends_an_unasked_reply(proxy_factory, fake_redis, sharing):
    """Two replies to one command. On a shared connection the second has no
    owner: the proxy drops that connection (its reply stream is out of step)
    without touching the client, whose next command goes out on a new
    connection. A pinned connection is the client's own, relayed like a
    direct one: the client gets both, as it would from that server."""
    fake = fake_redis()
    px = proxy_factory(fake.port, sharing=sharing, pool={"backend-connections": "1"})
    base = Baseline(px)
    with px.raw(timeout=10) as c:
        assert c.call("GET", "fault:extra_reply") == "OK"
        if sharing == "yes":
            wait_for(lambda: "reply nobody asked for" in open(px.logpath, errors="replace").read(),
                     timeout=10, what="the proxy noticing the unasked reply")
            assert c.nothing_pending(0.2), c.pending()
        else:
            assert c.read_raw_reply() == b"+UNASKED\r\n"
        c.send(encode("SET", "after", "1") + encode("GET", "after"))
        expect_bytes(c, b"+OK\r\n$1\r\n1\r\n")
    assert fake.faults == ["extra_reply"]
    base.check("unasked reply")


@pytest.mark.proxy_only
def test_master_greets_with_garbage(proxy_factory, fake_redis, sharing):
    """Something else listens on the master's port and talks first (here an
    SSH banner, which is no RESP). Nothing it says reaches a client: each
    command is answered with the outcome-unknown error (it was sent before
    the banner came) or -TRYAGAIN, and the client is closed. A server that
    never answered a command in good order counts as unreachable: the pool
    backs off (fewer connections than commands), and opens none while no
    command comes (no reconnect loop of its own). Once a real redis answers
    there, service resumes."""
    fake = fake_redis()
    fake.greeting = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
    px = proxy_factory(fake.port, sharing=sharing, pool={"block-timeout": "300"})
    accepts0 = len(fake.conns)
    sent = 0
    for i in range(30):
        with px.raw(timeout=10) as c:
            c.send(encode("SET", "k", "v"))
            sent += 1
            data = c.read_raw_reply(timeout=10)
            assert data in (REPLY_LOST, b"-TRYAGAIN master unreachable\r\n"), data
            if data == REPLY_LOST:          # it was sent: the connection closes after it
                rest, closed = c.read_all_until_close(10)
                assert closed and rest == b"", rest
            else:                           # never sent: the client stays connected
                assert c.nothing_pending(0.05) and not c.eof
    accepts = len(fake.conns) - accepts0
    print("%d connections for %d commands" % (accepts, sent))
    assert accepts < sent, "%d connections to the garbage master for %d commands" % (accepts, sent)
    time.sleep(2.5)             # longer than the longest backoff
    assert len(fake.conns) - accepts0 == accepts, "the proxy reconnected with no command to send"
    log = open(px.logpath, errors="replace").read()
    assert "protocol error from master" in log and "retrying with backoff" in log
    fake.greeting = None

    def serves():
        with px.raw(timeout=10) as c:
            c.send(encode("SET", "k", "v") + encode("GET", "k"))
            data = c.read_raw_reply(timeout=10)
            if data == b"-TRYAGAIN master unreachable\r\n":
                return False            # still backing off
            assert data == b"+OK\r\n", data
            assert c.read_raw_reply(timeout=10) == b"$1\r\nv\r\n"
            return True
    wait_for(serves, timeout=15, interval=0.1, what="service once a real redis answers")
    assert fake.data[b"k"] == b"v"
    serves_fresh_client(px, "after the greeting master")


@pytest.mark.proxy_only
def test_master_fails_before_any_command(proxy_factory, fake_redis, sharing):
    """Regression: a master that accepts, answers verify-role's ROLE, and
    speaks garbage right behind it (in the same read), before any client
    command went out. The waiting command was never sent: it is held and
    answered -TRYAGAIN at block-timeout, like a refused connect, and the
    pool backs off. It used to be a silent close of a pinned client (its
    command unsent, no reply) and, on a shared connection, a reconnect loop
    without end (thousands of connections a second, the client never
    answered)."""
    fake = fake_redis()
    fake.role_trailer = b"SSH-2.0-OpenSSH_9.2p1\r\n"
    px = proxy_factory(fake.port, sharing=sharing, pool={"verify-role": "yes", "block-timeout": "1500"})
    accepts0 = len(fake.conns)
    with px.raw(timeout=10) as c:
        t0 = time.monotonic()
        c.send(encode("SET", "k", "v"))
        rep = c.read_raw_reply(timeout=10)
        took = time.monotonic() - t0
        assert rep == b"-TRYAGAIN master unreachable\r\n", rep
        accepts = len(fake.conns) - accepts0
        # backoff 50 ms, doubling: a handful of attempts in 1.5 s, not thousands
        assert accepts <= 12, "%d connections in %.1fs to a master that fails before any command" % (
            accepts, took)
        assert c.nothing_pending(0.1) and not c.eof
        assert b"k" not in fake.data
        fake.role_trailer = None

        def serves():
            c.send(encode("SET", "k", "v"))
            rep = c.read_raw_reply(timeout=10)
            assert rep in (b"+OK\r\n", b"-TRYAGAIN master unreachable\r\n"), rep
            return rep == b"+OK\r\n"
        wait_for(serves, timeout=15, interval=0.1, what="service once the master behaves")
    assert fake.data[b"k"] == b"v"
    serves_fresh_client(px, "after a master that failed before any command")


# ---------------------------------------------------------------- a flapping znode

FLAPS = 1000
FLAP_PERIOD_S = 0.01             # 1,000 flaps in about 10 s
FLAP_WRITERS = 4
LOG_TICK_S = 0.001               # log stamps are truncated to the millisecond


def _ready_intervals(logpath):
    """{master "h:p": [(start, end)]} of the times (unix seconds) the pool was
    READY on each master, from its log (loglevel info: every transition)."""
    import datetime

    def stamp(line):
        return datetime.datetime.strptime(" ".join(line.split()[:2]), "%Y-%m-%d %H:%M:%S.%f").timestamp()

    lines = [l for l in open(logpath, errors="replace").read().splitlines() if "[main]" in l]
    out, cur, start = {}, None, None
    for i, line in enumerate(lines):
        msg = line.split("[main] ", 1)[1]
        if msg.startswith("master ") and " -> " in msg:
            cur = msg.split(" -> ", 1)[1].split()[0]
            if start is not None and start[1] is None:
                start = (start[0], cur)
        elif msg.startswith("state "):
            frm, to = msg[6:].split(" -> ", 1)
            to = to.split(":")[0]
            if frm == "READY" and start is not None:
                out.setdefault(start[1], []).append((start[0], stamp(line)))
                start = None
            if to == "READY":
                # a new master is logged right after the transition into READY
                nxt = lines[i + 1].split("[main] ", 1)[1] if i + 1 < len(lines) else ""
                start = (stamp(line), None if nxt.startswith("master ") else cur)
    if start is not None:
        out.setdefault(start[1], []).append((start[0], float("inf")))
    return out


@pytest.mark.proxy_only
def test_znode_flapping(zk_server, kz_factory, zk_proxy_factory, redis_factory, znode_path):
    """The znode flaps 1,000 times in about 10 s between two masters and
    nothing (set, set, delete, seeded), while writers go through the proxy in
    block mode, each write a key of its own. No crash. No wrong-master
    write: every write that ran on a master was sent by its client before
    the end of a span of time the proxy was READY on that master, and ran
    after that span began (MONITOR times against the logged transitions; no
    allowance for speed is needed). Every acknowledged write ran exactly
    once, none answered -TRYAGAIN ran. The proxy ends READY on the final
    master, and from then on nothing reaches the other one."""
    from zkutil import Monitor, zset, zdelete, plain, hp, wait_master
    a, b = redis_factory(), redis_factory()
    kz = kz_factory(zk_server.hostport)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"block-timeout": "10000"},
                          globals_={"loglevel": "info"})
    wait_master(px, hp(a))
    base = Baseline(px)
    mons = {hp(a): Monitor(a, ADMIN_NAME), hp(b): Monitor(b, ADMIN_NAME)}
    stop = threading.Event()
    sent = {}                                # key -> client send time
    acked, refused, unknown = set(), set(), set()
    errors = []

    def writer(i):
        c = None
        try:
            for n in range(1000000):
                if stop.is_set():
                    break
                if c is None:
                    c = px.raw(timeout=30)
                key = "flap:w%d:%d" % (i, n)
                sent[key] = time.time()
                c.cmd("SET", key, "1")
                try:
                    rep = c.read_reply(timeout=30)
                except Closed:
                    unknown.add(key)         # sent, no answer: may or may not have run
                    c.close()
                    c = None
                    continue
                if rep == "OK":
                    acked.add(key)
                elif isinstance(rep, Error) and rep.startswith("TRYAGAIN"):
                    refused.add(key)         # never ran
                elif isinstance(rep, Error) and rep.startswith("ERR connection to master lost"):
                    unknown.add(key)
                else:
                    errors.append((key, rep))
                    return
        except Exception as e:               # reported below
            errors.append((i, repr(e)))
        finally:
            if c is not None:
                c.close()

    ths = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(FLAP_WRITERS)]
    for t in ths:
        t.start()
    rnd = random.Random(4242)
    ops = {"a": 0, "b": 0, "delete": 0}
    try:
        wait_for(lambda: len(acked) >= 200, timeout=20, what="writes before flapping")
        t0 = time.monotonic()
        for n in range(FLAPS):
            op = "b" if n == FLAPS - 1 else rnd.choice(("a", "b", "delete"))   # ends on b
            if op == "delete":
                zdelete(kz, znode_path)
            else:
                zset(kz, znode_path, plain(hp(a if op == "a" else b)))
            ops[op] += 1
            ahead = t0 + (n + 1) * FLAP_PERIOD_S - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        flap_s = time.monotonic() - t0
        assert px.alive(), px.log_tail()
        wait_master(px, hp(b), timeout=20)
        # the old master drains: once the proxy holds no connection to a,
        # nothing more can reach it
        wait_for(lambda: not a.backend_clients(), timeout=20,
                 what="no proxy connection left to the old master")
        n_on_a = len(mons[hp(a)].sets("flap:"))
        done = len(acked)
        wait_for(lambda: len(acked) >= done + 200, timeout=20, what="writes on the final master")
        time.sleep(0.2)
        assert len(mons[hp(a)].sets("flap:")) == n_on_a, "writes reached the old master after the switch"
        assert not a.backend_clients()
    finally:
        stop.set()
        for t in ths:
            t.join(40)
        for m in mons.values():
            m.stop()
    assert not any(t.is_alive() for t in ths), "a writer hung"
    assert not errors, errors[:5]
    print("flapping: %d ops in %.1fs %r; acked %d, refused %d, unknown %d"
          % (FLAPS, flap_s, ops, len(acked), len(refused), len(unknown)))
    ran = {m: mon.sets("flap:") for m, mon in mons.items()}
    on_a, on_b = set(ran[hp(a)]), set(ran[hp(b)])
    assert not on_a & on_b, "ran on both masters: %r" % sorted(on_a & on_b)[:5]
    assert acked <= on_a | on_b, "acknowledged, not on any master: %r" % sorted(acked - on_a - on_b)[:5]
    assert not refused & (on_a | on_b), "answered -TRYAGAIN but ran: %r" % sorted(refused & (on_a | on_b))[:5]
    assert (on_a | on_b) <= acked | unknown
    # a write that ran on m went out during some READY span on m: sent by
    # its client before the span ended, run after it began
    ready = _ready_intervals(px.logpath)
    assert len(ready.get(hp(a), [])) + len(ready.get(hp(b), [])) > 10, ready
    for m, keys in ran.items():
        spans = ready.get(m, [])
        for key, t_run in keys.items():
            t_sent = sent[key]
            if not any(s <= t_run and t_sent <= e + LOG_TICK_S for s, e in spans):
                raise AssertionError(
                    "%s went to %s but the proxy was not READY on it between its send (%.4f) and "
                    "its run (%.4f); READY spans there nearby: %r" % (
                        key, m, t_sent, t_run,
                        [se for se in spans if se[1] >= t_sent - 0.1 and se[0] <= t_run + 0.1][:5]))
    base.check("znode flapping")
