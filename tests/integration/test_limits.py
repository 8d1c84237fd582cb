"""Limits: maxclients, client-query-buffer-limit, idle timeout, malformed
input, output backpressure. A violation closes one connection, never the
process, and never disturbs other clients."""

import random
import socket
import threading
import time

import pytest

from conftest import (RespConn, Closed, encode, bulk, expect_bytes, rss_kb, wait_for)


def _check_healthy(px, tag="after"):
    """The proxy is alive and serves a fresh client correctly."""
    assert px.alive(), "proxy died; log:\n%s" % px.log_tail()
    with px.raw() as c:
        c.send(encode("SET", "health:" + tag, tag) + encode("GET", "health:" + tag) + b"PING\r\n")
        expect_bytes(c, b"+OK\r\n" + bulk(tag) + b"+PONG\r\n", timeout=10, what="health check")


# ---------------------------------------------------------------- maxclients

@pytest.mark.proxy_only
def test_maxclients(proxy_factory, redis_server, r, sharing):
    px = proxy_factory(redis_server, sharing=sharing, globals_={"maxclients": "5"})
    time.sleep(0.2)        # let the proxy notice the readiness probe went away
    conns = []
    try:
        for i in range(5):
            c = px.raw()
            assert c.call("SET", "mc%d" % i, str(i)) == "OK"
            conns.append(c)
        with px.raw() as sixth:
            data, closed = sixth.read_all_until_close(5)
            assert data == b"-ERR max number of clients reached\r\n", data
            assert closed
        # the five are unaffected
        for i, c in enumerate(conns):
            assert c.call("GET", "mc%d" % i) == str(i).encode()
        # closing one frees a slot (bounded retry: the close is asynchronous)
        conns.pop().close()

        def slot_free():
            c = px.raw()
            c.send(b"PING\r\n")
            try:
                ok = c.read_raw_reply(timeout=2) == b"+PONG\r\n"
            except (Closed, OSError):
                ok = False
            if ok:
                conns.append(c)
            else:
                c.close()
            return ok
        wait_for(slot_free, timeout=5, interval=0.1, what="a free client slot after closing one")
    finally:
        for c in conns:
            c.close()
    _check_healthy(px)


# ---------------------------------------------------------------- query buffer

@pytest.mark.proxy_only
def test_client_query_buffer_limit(proxy_factory, redis_server, r, sharing):
    px = proxy_factory(redis_server, sharing=sharing, globals_={"client-query-buffer-limit": "1mb"})
    other = px.raw()
    try:
        assert other.call("SET", "o", "before") == "OK"
        # under the limit: fine
        with px.raw() as c:
            small = b"s" * (512 * 1024)
            assert c.call("SET", "small", small) == "OK"
            assert c.call("STRLEN", "small") == len(small)
        # over the limit: this client is closed
        big = b"B" * (3 * 1024 * 1024)
        with px.raw() as c:
            try:
                c.send(encode("SET", "big", big) + encode("GET", "o"))
            except OSError:
                pass                   # the proxy may close while we are still writing
            data, closed = c.read_all_until_close(5)
            assert closed, "connection still open after a 3 MiB request with a 1mb limit; got %r" % data[:200]
            assert b"+OK" not in data and b"before" not in data, data[:200]
            assert data == b"" or data.startswith(b"-ERR"), data[:200]
        assert r.exists("big") == 0
        # the other client never noticed
        other.send(encode("GET", "o") + encode("SET", "o", "after") + encode("GET", "o"))
        expect_bytes(other, b"$6\r\nbefore\r\n+OK\r\n$5\r\nafter\r\n")
    finally:
        other.close()
    _check_healthy(px)


# ---------------------------------------------------------------- idle timeout

@pytest.mark.proxy_only
def test_idle_timeout(proxy_factory, redis_server, r, sharing):
    px = proxy_factory(redis_server, sharing=sharing, globals_={"timeout": "1"})
    idle = px.raw()
    blocked = px.raw()
    busy = px.raw()
    try:
        assert idle.call("PING") == "PONG"
        t0 = time.monotonic()
        blocked.cmd("BLPOP", "tq", "0")
        # a client that keeps talking is never idle
        deadline = t0 + 3.0
        closed_at = None
        for _ in range(100):
            if time.monotonic() > deadline:
                break
            assert busy.call("PING") == "PONG"
            if closed_at is None and not idle.nothing_pending(0.05):
                assert idle.eof, "idle client got unexpected data: %r" % idle.pending()
                closed_at = time.monotonic() - t0
            time.sleep(0.1)
        assert closed_at is not None, "idle client not closed within 3 s with timeout 1"
        assert 0.7 <= closed_at <= 3.0, closed_at
        # the blocked client was not closed: it gets its element now
        with px.raw() as pusher:
            assert pusher.call("RPUSH", "tq", "late") == 1
        assert blocked.read_reply(timeout=5) == [b"tq", b"late"]
        assert busy.call("PING") == "PONG"
    finally:
        idle.close(); blocked.close(); busy.close()


@pytest.mark.proxy_only
def test_idle_timeout_spares_subscribers(proxy_factory, redis_server, r, sharing):
    """Like redis: clients in pub/sub mode are not subject to the idle timeout."""
    px = proxy_factory(redis_server, sharing=sharing, globals_={"timeout": "1"})
    with px.raw() as s:
        s.cmd("SUBSCRIBE", "tch")
        assert s.read_reply() == [b"subscribe", b"tch", 1]
        time.sleep(2.5)
        with px.raw() as p:
            n = p.call("PUBLISH", "tch", "still-here")
            assert n == 1, "PUBLISH reached %r subscribers: the idle subscriber was closed by timeout 1" % n
        assert s.read_reply(timeout=5) == [b"message", b"tch", b"still-here"]


# ---------------------------------------------------------------- malformed input

def _garbage_multibulk(seed):
    rnd = random.Random(seed)
    body = bytes(b for b in rnd.randbytes(200) if b not in (0, 10, 13))
    return b"*" + b"x" + body + b"\r\n"


def _garbage_bulklen(seed):
    rnd = random.Random(seed)
    body = bytes(b for b in rnd.randbytes(100) if b not in (0, 10, 13))
    return b"*2\r\n$3\r\nGET\r\n$" + b"q" + body + b"\r\n"


MALFORMED = {
    "simple_string_in_request": b"*1\r\n+PING\r\n",
    "multibulk_len_not_a_number": b"*abc\r\n",
    "bulk_len_not_a_number": b"*1\r\n$abc\r\n",
    "bulk_len_negative": b"*1\r\n$-1\r\n",
    "multibulk_len_too_big": b"*3000000000\r\n",
    "random_after_star": _garbage_multibulk(1),
    "random_bulk_len": _garbage_bulklen(2),
    "integer_in_request": b"*2\r\n$3\r\nGET\r\n:1\r\n",
    "inline_unbalanced_quotes": b'GET "abc\r\n',
    "inline_too_big_no_newline": b"A" * (80 * 1024),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_request(proxy, r, case):
    payload = MALFORMED[case]
    bystander = proxy.raw()
    try:
        assert bystander.call("SET", "bs", "1") == "OK"
        with proxy.raw() as c:
            # a valid command first, pipelined with the garbage: it is answered first
            c.send(encode("SET", "pre", "ok") + payload)
            data, closed = c.read_all_until_close(5)
            assert data.startswith(b"+OK\r\n-ERR Protocol error"), data[:300]
            assert data.endswith(b"\r\n") and data.count(b"\r\n") == 2, data[:300]
            assert closed, "connection not closed after protocol error; got %r" % data[:300]
        assert r.get("pre") == b"ok"
        # the bystander is unaffected, on its open connection
        bystander.send(encode("GET", "bs") + encode("INCR", "bs") + b"PING\r\n")
        expect_bytes(bystander, b"$1\r\n1\r\n:2\r\n+PONG\r\n")
    finally:
        bystander.close()
    if proxy.proc is not None:
        _check_healthy(proxy, case)


@pytest.mark.proxy_only
def test_bulk_longer_than_proto_max_bulk_len(proxy, r):
    """redis refuses a bulk length above proto-max-bulk-len (512mb) at once."""
    with proxy.raw() as c, proxy.raw() as bystander:
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000000\r\n" + b"x" * 1000)
        data, closed = c.read_all_until_close(5)
        assert closed and data.startswith(b"-ERR Protocol error"), (closed, data[:200])
        assert bystander.call("PING") == "PONG"
    _check_healthy(proxy)


def test_random_garbage_does_not_hurt_anyone(proxy, r):
    """Random bytes from many clients, while a well-behaved client pipelines."""
    stop = threading.Event()
    errors = []

    def good_client():
        try:
            with proxy.raw() as g:
                n = 0
                while not stop.is_set() and n < 200:
                    g.send(b"".join(encode("INCR", "good") for _ in range(20)))
                    expect_bytes(g, b"".join(b":%d\r\n" % (n + i + 1) for i in range(20)))
                    n += 20
        except Exception as e:            # reported below
            errors.append(repr(e))

    t = threading.Thread(target=good_client)
    t.start()
    try:
        rnd = random.Random(1234)
        for i in range(20):
            try:
                with proxy.raw(timeout=2) as c:
                    c.send(rnd.randbytes(rnd.randint(1, 65536)))
                    c.read_all_until_close(0.1)
            except OSError:
                pass
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive()
    assert not errors, errors
    assert proxy.alive()
    if proxy.proc is not None:
        _check_healthy(proxy)


# ---------------------------------------------------------------- backpressure

@pytest.mark.proxy_only
def test_backpressure_bounded_rss(proxy_factory, redis_server, r, sharing):
    """A slow reader is paused, not buffered: RSS stays bounded, and (with
    output-stall-timeout 0, i.e. never disconnect) every reply arrives intact."""
    px = proxy_factory(redis_server, sharing=sharing, globals_={"output-stall-timeout": "0"})
    value = b"v" * (1024 * 1024)
    r.set("big1m", value)
    n_gets = 400                        # 400 MiB of replies the client does not read
    base = rss_kb(px.pid)
    slow = RespConn.tcp(px.port, timeout=30)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    peak = base
    try:
        slow.send(b"".join(encode("GET", "big1m") for _ in range(n_gets)))
        t_end = time.monotonic() + 3.0
        for _ in range(100):
            if time.monotonic() > t_end:
                break
            peak = max(peak, rss_kb(px.pid))
            time.sleep(0.05)
        # meanwhile another client still works (pinned mode has its own backend;
        # shared clients may wait behind the slow reader, so only check liveness)
        assert px.alive()
        assert peak < 200 * 1024, "proxy RSS grew to %d kB (started at %d kB) with a slow reader" % (peak, base)
        # now read everything: each reply complete and in order
        exp_one = bulk(value)
        for i in range(n_gets):
            got = slow.read_exact(len(exp_one), timeout=30)
            assert got == exp_one, "reply %d corrupted: %r..." % (i, got[:40])
            if i % 50 == 0:
                peak = max(peak, rss_kb(px.pid))
        assert slow.nothing_pending(0.1)
        assert peak < 200 * 1024, "proxy RSS grew to %d kB while draining" % peak
    finally:
        slow.close()
    _check_healthy(px)


@pytest.mark.proxy_only
def test_slow_reader_closing_releases_memory(proxy_factory, redis_server, r, sharing):
    px = proxy_factory(redis_server, sharing=sharing)
    r.set("big1m", b"w" * (1024 * 1024))
    for rnd in range(3):
        s = RespConn.tcp(px.port)
        s.send(b"".join(encode("GET", "big1m") for _ in range(200)))
        time.sleep(0.3)
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()                      # RST with replies outstanding
    time.sleep(0.5)
    assert px.alive()
    _check_healthy(px)
    assert rss_kb(px.pid) < 200 * 1024


@pytest.mark.proxy_only
def test_idle_timeout_spares_clients_waiting_for_a_slow_master(proxy_factory, redis_server, r, sharing):
    """timeout 1 is about idle clients; one whose reply is late (slow master)
    is not idle."""
    px = proxy_factory(redis_server, sharing=sharing, globals_={"timeout": "1"})
    with px.raw() as a, px.raw() as b:
        assert b.call("SET", "slowk", "v") == "OK"
        a.cmd("DEBUG", "SLEEP", "2.5")
        time.sleep(0.1)
        b.cmd("GET", "slowk")
        assert a.read_raw_reply(timeout=10) == b"+OK\r\n"
        assert b.read_raw_reply(timeout=10) == b"$1\r\nv\r\n"


@pytest.mark.proxy_only
def test_maxclients_count_does_not_drift(proxy_factory, redis_server, r):
    px = proxy_factory(redis_server, globals_={"maxclients": "5"})
    time.sleep(0.2)
    for rnd in range(3):
        conns = []
        try:
            def fill():
                while len(conns) < 5:
                    c = px.raw(timeout=2)
                    c.send(b"PING\r\n")
                    try:
                        ok = c.read_raw_reply() == b"+PONG\r\n"
                    except (Closed, OSError):
                        ok = False
                    if not ok:
                        c.close()
                        return False
                    conns.append(c)
                return True
            wait_for(fill, timeout=5, interval=0.1, what="5 accepted clients in round %d" % rnd)
            for _ in range(3):
                with px.raw() as extra:
                    data, closed = extra.read_all_until_close(3)
                    assert data == b"-ERR max number of clients reached\r\n" and closed, (rnd, data)
        finally:
            for c in conns:
                c.close()


@pytest.mark.proxy_only
def test_backpressure_fast_writer_slow_master(proxy_factory, redis_factory, sharing):
    """The reverse direction: a client writing far faster than the master
    reads must not make the proxy buffer it all."""
    srv = redis_factory()
    adm = srv.client()
    px = proxy_factory(srv, sharing=sharing)
    value = b"w" * (1024 * 1024)
    n = 300                                         # 300 MiB of requests
    one = encode("SET", "fw", value)
    sleeper = RespConn.tcp(srv.port)
    sleeper.cmd("DEBUG", "SLEEP", "3")              # the master stops reading for 3 s
    time.sleep(0.1)
    c = RespConn.tcp(px.port, timeout=60)
    sent = [0]
    err = []

    def writer():
        try:
            for _ in range(n):
                c.sock.sendall(one)
                sent[0] += 1
        except Exception as e:
            err.append(repr(e))

    t = threading.Thread(target=writer)
    t.start()
    peak = 0
    try:
        t_end = time.monotonic() + 2.5
        for _ in range(200):
            if time.monotonic() > t_end:
                break
            peak = max(peak, rss_kb(px.pid))
            time.sleep(0.05)
        print("peak RSS kB", peak, "MiB sent while master asleep", sent[0])
        assert peak < 200 * 1024, "proxy RSS %d kB while the master was not reading (%d MiB sent)" % (peak, sent[0])
        # after the master wakes up everything goes through
        expect_bytes(c, b"+OK\r\n" * n, timeout=60, what="replies after the master woke up")
        t.join(30)
        assert not err, err
    finally:
        t.join(30)
        c.close()
        sleeper.close()
    assert adm.strlen("fw") == len(value)
    adm.close()


@pytest.mark.proxy_only
def test_out_of_file_descriptors(proxy_factory, redis_server, r):
    """With a low RLIMIT_NOFILE, connections beyond it are refused or closed;
    the proxy neither spins on accept() nor stops serving once fds free up."""
    from conftest import cpu_seconds
    px = proxy_factory(redis_server, nofile=64)
    conns = []
    try:
        for i in range(120):
            try:
                conns.append(RespConn.tcp(px.port, timeout=2))
            except OSError:
                break
        time.sleep(0.3)
        c0 = cpu_seconds(px.pid)
        time.sleep(1.0)
        burn = cpu_seconds(px.pid) - c0
        assert burn < 0.5, "proxy used %.2fs CPU in 1s while out of file descriptors (accept loop?)" % burn
        assert px.alive()
    finally:
        for c in conns:
            c.close()
    time.sleep(0.5)

    def serves():
        try:
            with px.raw(timeout=2) as c:
                c.send(b"PING\r\n")
                return c.read_raw_reply(timeout=2) == b"+PONG\r\n"
        except (Closed, OSError):
            return False
    wait_for(serves, timeout=10, interval=0.2, what="service after file descriptors were freed")
