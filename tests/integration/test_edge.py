"""Edge cases around sharing and pinning: state that must not leak between
clients, commands that must not stall a shared backend connection, reply
counting that redis does not make 1:1 (CLIENT REPLY, MONITOR, pub/sub), and
backend connections that redis closes on its own."""

import os
import signal
import socket
import time

import pytest

from conftest import (RespConn, Error, Map, encode, bulk, expect_bytes, first_diff, wait_for)


def _blocked(r):
    return int(r.info("clients")["blocked_clients"])


# ---------------------------------------------------------------- leaks after close

def test_pinned_state_does_not_leak_to_later_clients(proxy, r):
    r.set("lk", "db0")
    r.hset("lh", "f", "v")
    # clients that leave in every kind of connection state
    leavers = []
    for cmds in ([("SELECT", "5")], [("MULTI",), ("SET", "lk", "from-multi")], [("SUBSCRIBE", "leakch")],
                 [("CLIENT", "SETNAME", "leaky")], [("HELLO", "3")], [("WATCH", "lk")],
                 [("PSUBSCRIBE", "leak*")]):
        c = proxy.raw()
        c.send(b"".join(encode(*x) for x in cmds))
        for _ in cmds:
            c.read_reply()
        leavers.append(c)
    time.sleep(0.1)
    for c in leavers:
        c.close()
    # everything the leavers held must be gone on the backend
    wait_for(lambda: not [x for x in r.client_list() if x.get("name") == "leaky"
                          or x.get("sub") not in (None, "0") or x.get("psub") not in (None, "0")
                          or x.get("multi") not in (None, "-1")],
             timeout=5, what="backend connections of closed pinned clients to close")
    for i in range(12):
        with proxy.raw() as c:
            c.send(encode("GET", "lk") + encode("HGETALL", "lh") + encode("EXEC") + encode("CLIENT", "GETNAME")
                   + encode("PUBLISH", "leakch", "x") + b"PING\r\n")
            expect_bytes(c, b"$3\r\ndb0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n-ERR EXEC without MULTI\r\n$-1\r\n"
                            b":0\r\n+PONG\r\n", what="fresh client %d" % i)
    assert r.get("lk") == b"db0"


def test_blocked_client_disconnect_does_not_eat_data(proxy, r):
    """A client that leaves while in BLPOP must not leave a ghost BLPOP behind
    on the backend that would swallow the next element pushed."""
    c = proxy.raw()
    c.cmd("BLPOP", "ghostq", "0")
    wait_for(lambda: _blocked(r) == 1, timeout=5, what="BLPOP blocked")
    c.close()
    wait_for(lambda: _blocked(r) == 0, timeout=5, what="the BLPOP to go away with its client")
    with proxy.raw() as p:
        assert p.call("RPUSH", "ghostq", "precious") == 1
    time.sleep(0.1)
    assert r.lrange("ghostq", 0, -1) == [b"precious"]


# ---------------------------------------------------------------- shared connection stalls

@pytest.mark.proxy_only
def test_partial_command_does_not_stall_shared_clients(proxy_factory, redis_server, r):
    px = proxy_factory(redis_server, sharing="yes", pool={"backend-connections": "1"})
    with px.raw() as slow, px.raw() as other:
        # header of a SET with a 4 MiB value, and only 1 MiB of the value
        slow.send(b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$4194304\r\n" + b"s" * (1024 * 1024))
        time.sleep(0.1)
        t0 = time.monotonic()
        for i in range(50):
            other.send(encode("SET", "o%d" % i, "v") + encode("GET", "o%d" % i))
            expect_bytes(other, b"+OK\r\n$1\r\nv\r\n", timeout=5,
                         what="other client while a half-sent command sits in the proxy")
        assert time.monotonic() - t0 < 2.0
        assert slow.nothing_pending(0.05)
        slow.send(b"s" * (3 * 1024 * 1024) + b"\r\n" + encode("STRLEN", "slow"))
        expect_bytes(slow, b"+OK\r\n:4194304\r\n", timeout=10)
        # a tiny partial command too
        slow.send(b"*2\r\n$3\r\nGET\r\n$4\r\nsl")
        time.sleep(0.05)
        assert other.call("PING") == "PONG"
        slow.send(b"ow\r\n")
        assert len(slow.read_reply()) == 4194304


BLOCKING = {
    "blpop": ["BLPOP", "bk1", "1"],
    "brpop_lower": ["brpop", "bk1", "1"],
    "blmove": ["BLMOVE", "bk1", "bk2", "LEFT", "RIGHT", "1"],
    "brpoplpush": ["BRPOPLPUSH", "bk1", "bk2", "1"],
    "blmpop": ["BLMPOP", "1", "1", "bk1", "LEFT"],
    "bzpopmin": ["BZPOPMIN", "bz", "1"],
    "bzpopmax_mixed_case": ["BzPopMax", "bz", "1"],
    "bzmpop": ["BZMPOP", "1", "1", "bz", "MIN"],
    "xread_block": ["XREAD", "BLOCK", "1000", "STREAMS", "bs", "$"],
    "xread_block_lower_late": ["xread", "count", "5", "block", "1000", "streams", "bs", "$"],
    "xreadgroup_block": ["XREADGROUP", "GROUP", "g", "c", "BLOCK", "1000", "STREAMS", "bsg", ">"],
    "wait": ["WAIT", "1", "1000"],
}


@pytest.mark.parametrize("case", list(BLOCKING))
def test_blocking_command_does_not_stall_shared_clients(proxy_factory, redis_server, r, case):
    r.xgroup_create("bsg", "g", id="$", mkstream=True)
    px = proxy_factory(redis_server, sharing="yes", pool={"backend-connections": "1"})
    with px.raw() as b, px.raw() as other:
        assert other.call("PING") == "PONG"       # the shared connection exists
        b.cmd(*BLOCKING[case])
        time.sleep(0.1)
        t0 = time.monotonic()
        other.send(encode("SET", "nb", "1") + b"PING\r\n")
        expect_bytes(other, b"+OK\r\n+PONG\r\n", timeout=3,
                     what="shared client while another is in %s" % BLOCKING[case][0])
        took = time.monotonic() - t0
        assert took < 0.7, "a shared client waited %.2fs behind %s" % (took, BLOCKING[case][0])
        rep = b.read_reply(timeout=5)                # the blocking call times out normally
        assert rep in (None, [], 0), rep
        assert b.call("PING") == "PONG"


def test_case_insensitive_pinning(proxy, r):
    """Lower/mixed case and inline forms of SELECT, MULTI and SUBSCRIBE pin too."""
    with proxy.raw() as a, proxy.raw() as b:
        a.send(encode("select", "1") + encode("set", "ci", "one"))
        expect_bytes(a, b"+OK\r\n+OK\r\n")
        b.send(b"SeLeCt 2\r\nset ci two\r\n")
        expect_bytes(b, b"+OK\r\n+OK\r\n")
        with proxy.raw() as c:
            for _ in range(5):
                assert c.call("GET", "ci") is None
        a.send(encode("mUlTi") + encode("incr", "cm") + encode("exec"))
        expect_bytes(a, b"+OK\r\n+QUEUED\r\n*1\r\n:1\r\n")
        b.send(b"subscribe cich\r\n")
        expect_bytes(b, b"*3\r\n$9\r\nsubscribe\r\n$4\r\ncich\r\n:1\r\n")
        with proxy.raw() as c:
            assert c.call("PUBLISH", "cich", "m") == 1
        expect_bytes(b, b"*3\r\n$7\r\nmessage\r\n$4\r\ncich\r\n$1\r\nm\r\n")
    assert r.get("ci") is None
    r.execute_command("SELECT", 1)
    assert r.get("ci") == b"one" and r.get("cm") == b"1"
    r.execute_command("SELECT", 2)
    assert r.get("ci") == b"two"
    r.execute_command("SELECT", 0)


# ---------------------------------------------------------------- reply counting

def test_client_reply_off_and_skip(proxy, r):
    with proxy.raw() as c:
        c.send(encode("CLIENT", "REPLY", "OFF") + encode("SET", "cr", "1") + encode("INCR", "cr")
               + encode("CLIENT", "REPLY", "ON") + encode("GET", "cr"))
        expect_bytes(c, b"+OK\r\n$1\r\n2\r\n")
        c.send(encode("CLIENT", "REPLY", "SKIP") + encode("INCR", "cr") + encode("GET", "cr"))
        expect_bytes(c, b"$1\r\n3\r\n")
        assert c.nothing_pending(0.1)
        # afterwards a long pipeline is still in step
        c.send(b"".join(encode("INCR", "cr") for _ in range(500)))
        expect_bytes(c, b"".join(b":%d\r\n" % i for i in range(4, 504)))
    with proxy.raw() as o:
        assert o.call("GET", "cr") == b"503"


RAW_MODE = {
    "client_reply_on": ([("CLIENT", "REPLY", "ON")], b"+OK\r\n"),
    "client_reply_off": ([("CLIENT", "REPLY", "OFF")], b""),
    "client_reply_skip": ([("CLIENT", "REPLY", "SKIP"), ("PING",), ("PING",)], b"+PONG\r\n"),
    "monitor": ([("MONITOR",)], b"+OK\r\n"),
}


@pytest.mark.parametrize("case", list(RAW_MODE))
def test_close_after_uncounted_reply_mode(proxy, r, case):
    """A client that used CLIENT REPLY or MONITOR then disconnects: the proxy lives on."""
    cmds, exp = RAW_MODE[case]
    c = proxy.raw()
    c.send(b"".join(encode(*x) for x in cmds))
    if exp:
        expect_bytes(c, exp)
    assert c.nothing_pending(0.2)
    c.close()
    time.sleep(0.3)
    assert proxy.alive(), "proxy died after a %s client disconnected:\n%s" % (case, proxy.log_tail(5))
    with proxy.raw() as o:
        assert o.call("PING") == "PONG"


def test_reset(proxy, r):
    with proxy.raw() as c:
        assert isinstance(c.call("HELLO", "3"), Map)
        c.send(encode("SELECT", "3") + encode("CLIENT", "SETNAME", "before-reset") + encode("MULTI")
               + encode("SET", "rs", "x") + encode("RESET"))
        expect_bytes(c, b"+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n+RESET\r\n")
        r.hset("rh", "a", "b")
        c.send(encode("HGETALL", "rh") + encode("CLIENT", "GETNAME") + encode("EXEC"))
        expect_bytes(c, b"*2\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n-ERR EXEC without MULTI\r\n")
    r.execute_command("SELECT", 3)
    assert r.exists("rs") == 0
    r.execute_command("SELECT", 0)


def test_monitor(proxy, r):
    with proxy.raw() as m, proxy.raw() as o:
        assert m.call("MONITOR") == "OK"
        o.send(encode("SET", "monkey", "monval") + encode("GET", "monkey"))
        expect_bytes(o, b"+OK\r\n$6\r\nmonval\r\n")
        l1 = m.read_reply(timeout=5)
        l2 = m.read_reply(timeout=5)
        assert '"SET" "monkey" "monval"' in l1, l1
        assert '"GET" "monkey"' in l2, l2
        m.send(b"QUIT\r\n")
        data, closed = m.read_all_until_close(5)
        assert closed and data.endswith(b"+OK\r\n"), data


def test_subscribe_pipelined_transitions(proxy, r):
    r.set("pk", "pv")
    with proxy.raw() as c:
        c.send(b"GET pk\r\nSUBSCRIBE a b\r\nPING\r\nUNSUBSCRIBE a\r\nUNSUBSCRIBE b\r\nGET pk\r\n"
               + encode("UNSUBSCRIBE") + encode("SET", "pk", "2"))
        expect_bytes(c, b"$2\r\npv\r\n"
                        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
                        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
                        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
                        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
                        b"$2\r\npv\r\n"
                        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
                        b"+OK\r\n")


DEBUG_PROTOCOL = ["string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib",
                  "push", "verbatim", "true", "false"]


@pytest.mark.parametrize("proto", [2, 3])
def test_every_reply_type_passes_byte_exact(proxy, redis_server, r, proto):
    """DEBUG PROTOCOL emits every RESP type; the proxy must pass each through
    unchanged (compared with the same stream sent to redis directly)."""
    stream = b"".join(encode("DEBUG", "PROTOCOL", t) for t in DEBUG_PROTOCOL) + b"PING\r\n"
    with RespConn.tcp(redis_server.port) as d:
        if proto == 3:
            d.call("HELLO", "3")
        d.send(stream)
        n = len(DEBUG_PROTOCOL) + 1 + (1 if proto == 3 else 0)   # RESP3 "push" adds a push before its reply
        want = b"".join(d.read_raw_reply() for _ in range(n))
        assert d.nothing_pending(0.2)
    with proxy.raw() as c:
        if proto == 3:
            c.call("HELLO", "3")
        c.send(stream)
        expect_bytes(c, want, what="DEBUG PROTOCOL replies (RESP%d)" % proto)
        assert c.nothing_pending(0.2)


def test_command_with_200k_args(proxy, r):
    n = 100000
    args = ["MSET"]
    for i in range(n):
        args += ["a%d" % i, "v%d" % i]
    with proxy.raw(timeout=30) as c:
        c.send(encode(*args) + encode("MGET", *["a%d" % i for i in range(0, n, 7)]) + encode("DBSIZE"))
        assert c.read_raw_reply(timeout=30) == b"+OK\r\n"
        got = c.read_reply(timeout=30)
        assert got == [("v%d" % i).encode() for i in range(0, n, 7)]
        assert c.read_reply() == n


def test_long_command_name_and_args(proxy, r):
    name = "X" * 5000
    with proxy.raw() as c:
        e = c.call(name, "a")
        assert isinstance(e, Error) and e.startswith("ERR unknown command"), e
        assert c.call("SET", "k" * 10000, "v") == "OK"
        assert c.call("GET", "k" * 10000) == b"v"


# ---------------------------------------------------------------- backend closed by redis

@pytest.mark.proxy_only
@pytest.mark.proxy_only
def test_master_given_as_host_name(proxy_factory, redis_server, r, sharing):
    """A master named by host name is resolved without blocking the loop
    (libevent's resolver reads /etc/hosts first: no query leaves the machine)."""
    px = proxy_factory(redis_server, sharing=sharing, master_host="localhost")
    with px.raw() as c:
        assert c.call("SET", "byname", "1") == "OK"
        assert c.call("INCR", "byname") == 2
    assert r.get("byname") == b"2"
    with open(px.logpath, "rb") as f:
        assert b"cannot resolve" not in f.read()


def test_shared_backend_closed_by_redis_idle_timeout(proxy_factory, redis_factory):
    """redis `timeout 1` closes idle shared backend connections; clients with
    nothing outstanding must not notice."""
    srv = redis_factory(extra_args=["--timeout", "1"])
    px = proxy_factory(srv, sharing="yes")
    with px.raw() as c:
        assert c.call("SET", "t", "1") == "OK"
        time.sleep(2.5)                     # redis closed the idle backend connection(s)
        c.send(encode("INCR", "t") + encode("GET", "t"))
        expect_bytes(c, b":2\r\n$1\r\n2\r\n", what="first commands after redis closed the idle backend")
    with px.raw() as c:
        assert c.call("PING") == "PONG"


@pytest.mark.proxy_only
def test_shared_backend_killed_by_client_kill(proxy_factory, redis_factory):
    srv = redis_factory()
    adm = srv.client()
    px = proxy_factory(srv, sharing="yes")
    cs = [px.raw() for _ in range(5)]
    try:
        for c in cs:
            assert c.call("PING") == "PONG"
        killed = adm.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert killed >= 1
        time.sleep(0.2)
        for i, c in enumerate(cs):
            c.send(encode("SET", "ck%d" % i, i) + encode("GET", "ck%d" % i))
            expect_bytes(c, b"+OK\r\n" + bulk(str(i)), what="client %d after CLIENT KILL of the backends" % i)
    finally:
        for c in cs:
            c.close()
    adm.close()


# ---------------------------------------------------------------- more AUTH

def test_auth_pipelined(proxy_factory, redis_factory, sharing):
    srv = redis_factory(extra_args=["--requirepass", "pw"])
    px = proxy_factory(srv, sharing=sharing)
    with px.raw() as c:
        c.send(encode("GET", "k") + encode("AUTH", "pw") + encode("SET", "k", "v") + encode("GET", "k"))
        e = c.read_reply()
        assert isinstance(e, Error) and e.startswith("NOAUTH"), e
        expect_bytes(c, b"+OK\r\n+OK\r\n$1\r\nv\r\n")


# ---------------------------------------------------------------- lifecycle

@pytest.mark.proxy_only
def test_sigterm_with_blocked_client(proxy_factory, redis_server, r):
    px = proxy_factory(redis_server, globals_={"shutdown-timeout": "1000"})
    with px.raw() as b:
        b.cmd("BLPOP", "never", "0")
        wait_for(lambda: _blocked(r) >= 1, timeout=5, what="BLPOP blocked")
        t0 = time.monotonic()
        px.proc.send_signal(signal.SIGTERM)
        rc = px.proc.wait(timeout=10)
        px.expect_exit = True
        assert rc == 0, px.log_tail()
        assert time.monotonic() - t0 < 4.0
        assert b.is_closed(2)
    wait_for(lambda: _blocked(r) == 0, timeout=5, what="BLPOP to go away with the proxy")


@pytest.mark.proxy_only
def test_unix_socket_stale_file_and_cleanup(proxy_factory, redis_server, r, tmp_path):
    # a socket file left behind by a crashed process
    path = str(tmp_path / "rz0.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    assert os.path.exists(path)
    px = proxy_factory(redis_server, unix=True)
    assert px.unix_path == path
    with RespConn.unix(path) as u:
        assert u.call("PING") == "PONG"
    assert px.terminate() == 0
    assert not os.path.exists(path), "unix socket file left behind after SIGTERM"


@pytest.mark.proxy_only
def test_proxy_command_errors(proxy, r):
    with proxy.raw() as c:
        e = c.call("PROXY")
        assert isinstance(e, Error), e
        e = c.call("PROXY", "BOGUS")
        assert isinstance(e, Error), e
        assert c.call("PING") == "PONG"


@pytest.mark.proxy_only
def test_slow_reader_does_not_stall_other_shared_clients(proxy_factory, redis_server, r):
    """One client that stops reading must not freeze the other clients on its
    shared backend connection for longer than output-stall-timeout; the stuck
    client is then disconnected (conf/rzproxy.conf, output-stall-timeout)."""
    px = proxy_factory(redis_server, sharing="yes", pool={"backend-connections": "1"},
                       globals_={"output-stall-timeout": "1000"})
    r.set("big1m", b"x" * (1024 * 1024))
    with px.raw() as slow, px.raw() as other:
        assert other.call("PING") == "PONG"
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        slow.send(b"".join(encode("GET", "big1m") for _ in range(64)))
        time.sleep(0.3)
        t0 = time.monotonic()
        other.cmd("PING")
        try:
            rep = other.read_reply(timeout=5)
        except Exception as e:
            rep = e
        took = time.monotonic() - t0
        assert rep == "PONG", "shared client got %r after %.1fs while another client does not read" % (rep, took)
        assert took < 3.0, "shared client waited %.1fs behind a stuck reader (output-stall-timeout 1000)" % took
        _, closed = slow.read_all_until_close(5, limit=1 << 30)
        assert closed, "the stuck client was not disconnected"


@pytest.mark.proxy_only
def test_slow_reader_no_disconnect_other_connection_used(proxy_factory, redis_server, r):
    """output-stall-timeout 0: the stuck client is never dropped; other
    clients' new commands go to another shared connection meanwhile."""
    px = proxy_factory(redis_server, sharing="yes", pool={"backend-connections": "2"},
                       globals_={"output-stall-timeout": "0"})
    value = b"y" * (1024 * 1024)
    r.set("big1m", value)
    with px.raw() as slow, px.raw() as other:
        assert other.call("PING") == "PONG"
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        slow.send(b"".join(encode("GET", "big1m") for _ in range(32)))
        time.sleep(0.5)
        for i in range(20):
            t0 = time.monotonic()
            other.send(encode("SET", "ot%d" % i, i) + encode("GET", "ot%d" % i))
            expect_bytes(other, b"+OK\r\n" + bulk(str(i)), timeout=5, what="other client, round %d" % i)
            assert time.monotonic() - t0 < 1.0, "round %d took %.2fs" % (i, time.monotonic() - t0)
        for i in range(32):
            expect_bytes(slow, bulk(value), timeout=10, what="stuck client's reply %d" % i)


@pytest.mark.proxy_only
@pytest.mark.parametrize("case", ["client_reply_on", "monitor"])
def test_sigterm_with_uncounted_reply_client(proxy_factory, redis_server, r, case):
    """SIGTERM while a client that used CLIENT REPLY / MONITOR is connected: exit 0."""
    px = proxy_factory(redis_server)
    cmds, exp = RAW_MODE[case]
    with px.raw() as c:
        c.send(b"".join(encode(*x) for x in cmds))
        expect_bytes(c, exp)
        rc = px.terminate()
        assert rc == 0, "exit code %s after SIGTERM; log:\n%s" % (rc, px.log_tail(5))


# ---------------------------------------------------------------- ordering of local replies

@pytest.mark.proxy_only
def test_local_reply_ordered_after_outstanding(proxy, r):
    """PROXY INFO answered by the proxy itself must still come after the
    replies of the commands sent before it."""
    with proxy.raw() as c:
        c.send(b"".join(encode("INCR", "ord") for _ in range(2000)) + encode("PROXY", "INFO")
               + encode("INCR", "ord"))
        expect_bytes(c, b"".join(b":%d\r\n" % i for i in range(1, 2001)))
        info = c.read_reply()
        assert isinstance(info, bytes) and b"pool:" in info, info
        assert c.read_raw_reply() == b":2001\r\n"


def test_protocol_error_after_long_pipeline(proxy, r):
    with proxy.raw() as c:
        c.send(b"".join(encode("INCR", "pe") for _ in range(3000)) + b"*1\r\n+PING\r\n" + encode("INCR", "pe"))
        expect_bytes(c, b"".join(b":%d\r\n" % i for i in range(1, 3001)))
        data, closed = c.read_all_until_close(5)
        assert data.startswith(b"-ERR Protocol error") and data.count(b"\r\n") == 1, data
        assert closed
    assert r.get("pe") == b"3000"


def test_empty_and_odd_arguments(proxy, r):
    with proxy.raw() as c:
        c.send(encode("SET", "empty", "") + encode("GET", "empty") + b"*1\r\n$0\r\n\r\n" + b"   \r\n"
               + b"PING\r\n")
        assert c.read_raw_reply() == b"+OK\r\n"
        assert c.read_raw_reply() == b"$0\r\n\r\n"
        e = c.read_reply()
        assert isinstance(e, Error) and e.startswith("ERR unknown command ''"), e
        assert c.read_raw_reply() == b"+PONG\r\n"
        assert c.nothing_pending(0.1)


def test_inline_near_64k_limit(proxy, r):
    v = b"i" * (60 * 1024)
    with proxy.raw() as c:
        c.send(b"SET inl " + v + b"\r\n" + b"STRLEN inl\r\n")
        expect_bytes(c, b"+OK\r\n:%d\r\n" % len(v))


@pytest.mark.proxy_only
def test_query_buffer_limit_allows_long_pipelines(proxy_factory, redis_server, r, sharing):
    """client-query-buffer-limit bounds one unparsed request, not a pipeline of
    small ones written at once (redis behaves the same)."""
    px = proxy_factory(redis_server, sharing=sharing, globals_={"client-query-buffer-limit": "1mb"})
    n = 50000
    req = b"".join(encode("SET", "ql:%d" % i, "x" * 80) for i in range(n))
    assert len(req) > 5 * 1024 * 1024
    with px.raw(timeout=30) as c:
        c.send(req)
        expect_bytes(c, b"+OK\r\n" * n, timeout=30, what="5 MB pipeline with a 1mb query buffer limit")
    assert r.dbsize() == n


@pytest.mark.proxy_only
def test_master_killed_mid_large_reply(proxy_factory, redis_factory, sharing):
    """The master dies while a 32 MiB reply is half delivered: the client must
    get a clean prefix of that reply and a closed connection, never bytes
    spliced into the middle of the bulk."""
    srv = redis_factory()
    adm = srv.client()
    value = b"0123456789abcdef" * (2 * 1024 * 1024)      # 32 MiB
    adm.set("huge", value)
    adm.close()
    px = proxy_factory(srv, sharing=sharing)
    c = RespConn.tcp(px.port, timeout=10)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    try:
        c.send(encode("GET", "huge") + encode("PING"))
        first = c.read_exact(256 * 1024)
        srv.kill(signal.SIGKILL)
        rest, closed = c.read_all_until_close(10, limit=1 << 30)
        data = first + rest
        expected = bulk(value) + b"+PONG\r\n"
        if data[:len(expected)] == expected:
            pass          # everything had already been buffered by the proxy: fine
        else:
            n = len(data)
            ok_prefix = n <= len(expected) and data == expected[:n]
            assert ok_prefix, ("bytes after the clean prefix: %r (at offset %d of %d)"
                               % (data[next(i for i in range(n) if i >= len(expected) or data[i] != expected[i]):][:80],
                                  next(i for i in range(n) if i >= len(expected) or data[i] != expected[i]), n))
            assert closed, "connection left open after a truncated reply"
    finally:
        c.close()
    assert px.alive()


@pytest.mark.proxy_only
def test_two_pools(tmp_path, redis_factory, proxy_factory):
    from conftest import free_port, RZPROXY, port_open, run_rzproxy, sanitizer_report_in
    import subprocess
    ra, rb = redis_factory(), redis_factory()
    pa, pb = free_port(), free_port()
    conf = tmp_path / "pools.conf"
    conf.write_text("loglevel notice\n\npool alpha\n  listen 127.0.0.1:%d\n  master 127.0.0.1:%d\n\n"
                    "pool beta\n  listen 127.0.0.1:%d\n  master 127.0.0.1:%d\n  backend-sharing no\n"
                    % (pa, ra.port, pb, rb.port))
    p = run_rzproxy([RZPROXY, "--test-conf", str(conf)], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    log = open(str(tmp_path / "pools.log"), "wb")
    proc = subprocess.Popen([RZPROXY, str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(pa) and port_open(pb), timeout=10, what="both pools listening")
        with RespConn.tcp(pa) as a, RespConn.tcp(pb) as b:
            assert a.call("SET", "where", "alpha") == "OK"
            assert b.call("SET", "where", "beta") == "OK"
            info = a.call("PROXY", "INFO")
            assert b"alpha" in info, info
        assert ra.client().get("where") == b"alpha"
        assert rb.client().get("where") == b"beta"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
    report = sanitizer_report_in(str(tmp_path / "pools.log"))
    assert not report, report


def test_tracking_redirect(proxy, r):
    with proxy.raw() as inv, proxy.raw() as t, proxy.raw() as w:
        inv_id = inv.call("CLIENT", "ID")
        assert isinstance(inv_id, int)
        inv.cmd("SUBSCRIBE", "__redis__:invalidate")
        assert inv.read_reply() == [b"subscribe", b"__redis__:invalidate", 1]
        assert t.call("CLIENT", "TRACKING", "on", "REDIRECT", str(inv_id)) == "OK"
        assert w.call("SET", "trk", "1") == "OK"
        assert t.call("GET", "trk") == b"1"
        assert w.call("SET", "trk", "2") == "OK"
        assert inv.read_reply(timeout=5) == [b"message", b"__redis__:invalidate", [b"trk"]]


@pytest.mark.parametrize("proto", [2, 3])
def test_big_nested_replies_byte_exact(proxy, redis_server, r, proto):
    """Deeply nested and large replies (COMMAND DOCS, COMMAND, a 20k-field
    HGETALL) arrive byte-identical to redis' own, and the pipeline stays in step."""
    r.hset("bigh", mapping={"f%d" % i: "v%d" % i for i in range(20000)})
    stream = (encode("COMMAND", "DOCS") + encode("COMMAND", "INFO", "get", "set", "xadd")
              + encode("HGETALL", "bigh") + encode("PING"))
    def run(conn):
        if proto == 3:
            conn.call("HELLO", "3")
        conn.send(stream)
        return b"".join(conn.read_raw_reply(timeout=30) for _ in range(4))
    # redis' own output order can shift while its dicts finish an incremental
    # rehash (e.g. the COMMAND subcommand table early in its life), so warm
    # up until two direct runs agree and accept the run before or after ours
    prev = None
    for _ in range(10):
        with RespConn.tcp(redis_server.port, timeout=30) as d:
            want = run(d)
        if want == prev:
            break
        prev = want
    with proxy.raw(timeout=30) as c:
        got = run(c)
        assert c.nothing_pending(0.2)
    with RespConn.tcp(redis_server.port, timeout=30) as d:
        after = run(d)
    assert got in (want, after), first_diff(want, got)
