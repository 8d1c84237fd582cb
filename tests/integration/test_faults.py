"""Master failures: refused connections, the master dying with replies
outstanding, and clients vanishing mid-pipeline."""

import signal
import socket
import struct
import threading
import time

import pytest

from conftest import (RespConn, Error, Closed, Map, encode, bulk, expect_bytes, free_port, wait_for)


def _read_until_pong(c, deadline):
    """Send PING on c until +PONG (bounded); returns the list of error replies seen."""
    errors = []
    for _ in range(200):
        if time.monotonic() > deadline:
            break
        c.cmd("PING")
        rep = c.read_reply(timeout=5)
        if rep == "PONG":
            return errors
        assert isinstance(rep, Error), rep
        errors.append(str(rep))
        time.sleep(0.1)
    raise AssertionError("no +PONG before the deadline; errors seen: %r" % errors[-5:])


@pytest.mark.proxy_only
def test_master_unreachable_then_started(proxy_factory, redis_factory, sharing):
    """on-no-master tryagain: a refused connect is answered at once, per command;
    once the master is up, a bounded retry loop on the same connection succeeds."""
    port = free_port()
    px = proxy_factory(port, sharing=sharing, pool={"on-no-master": "tryagain", "connect-timeout": "3000"})
    with px.raw() as c:
        t0 = time.monotonic()
        c.cmd("SET", "k", "v")
        rep = c.read_raw_reply(timeout=10)
        assert rep.startswith(b"-TRYAGAIN master unreachable"), rep
        assert time.monotonic() - t0 < 1.5, "TRYAGAIN took %.1fs" % (time.monotonic() - t0)
        # pipelined: every command gets its own answer, in order, connection stays open
        c.send(encode("GET", "k") + b"PING\r\n" + encode("INCR", "n"))
        for _ in range(3):
            rep = c.read_raw_reply(timeout=10)
            assert rep.startswith(b"-TRYAGAIN master unreachable"), rep
        assert c.nothing_pending(0.1) and not c.eof
        # bring the master up on that port: a bounded retry loop succeeds
        srv = redis_factory(port=port)
        errors = _read_until_pong(c, time.monotonic() + 10)
        assert all(e.startswith("TRYAGAIN") for e in errors), errors
        c.send(encode("SET", "k", "v") + encode("GET", "k"))
        expect_bytes(c, b"+OK\r\n$1\r\nv\r\n")
    assert srv.client().get("k") == b"v"
    assert srv.client().get("n") is None          # nothing answered TRYAGAIN ran later
    # a fresh client works at once
    with px.raw() as c2:
        assert c2.call("GET", "k") == b"v"


@pytest.mark.proxy_only
def test_master_unreachable_block_mode_times_out(proxy_factory, sharing):
    """on-no-master block (default): the command is held up to block-timeout,
    then answered -TRYAGAIN master unreachable; the connection stays usable."""
    px = proxy_factory(free_port(), sharing=sharing, pool={"block-timeout": "1000"})
    with px.raw() as c:
        t0 = time.monotonic()
        c.send(encode("SET", "k", "v") + encode("GET", "k"))
        rep = c.read_raw_reply(timeout=10)
        took = time.monotonic() - t0
        assert rep.startswith(b"-TRYAGAIN master unreachable"), rep
        assert 0.8 <= took <= 3.0, "TRYAGAIN after %.2fs with block-timeout 1000" % took
        rep = c.read_raw_reply(timeout=10)
        assert rep.startswith(b"-TRYAGAIN master unreachable"), rep
        assert not c.eof and c.nothing_pending(0.1)


@pytest.mark.proxy_only
def test_master_unreachable_block_mode_held_commands_run(proxy_factory, redis_factory, sharing):
    """on-no-master block: commands held while the master is down run, in order,
    as soon as it comes up within block-timeout."""
    port = free_port()
    px = proxy_factory(port, sharing=sharing, pool={"block-timeout": "8000"})
    with px.raw() as c:
        c.send(encode("SET", "held", "1") + encode("INCR", "held") + encode("GET", "held"))
        time.sleep(0.5)
        assert c.nothing_pending(0.1), "answered before the master came up: %r" % c.pending()
        srv = redis_factory(port=port)
        expect_bytes(c, b"+OK\r\n:2\r\n$1\r\n2\r\n", timeout=10, what="held commands")
    assert srv.client().get("held") == b"2"


@pytest.mark.proxy_only
def test_master_killed_during_blpop(proxy_factory, redis_factory, sharing):
    srv = redis_factory()
    adm = srv.client()
    px = proxy_factory(srv, sharing=sharing, pool={"block-timeout": "1000"})
    other = px.raw()
    try:
        assert other.call("SET", "x", "1") == "OK"
        with px.raw() as c:
            c.cmd("BLPOP", "kq", "0")
            wait_for(lambda: int(adm.info("clients")["blocked_clients"]) == 1, timeout=5,
                     what="BLPOP blocked on the master")
            adm.close()
            srv.kill(signal.SIGKILL)
            t0 = time.monotonic()
            data, closed = c.read_all_until_close(5)
            assert data.startswith(b"-") and data.endswith(b"\r\n") and data.count(b"\r\n") == 1, data
            assert closed, "connection not closed after the master died under BLPOP (got %r)" % data
            assert time.monotonic() - t0 < 5
        assert px.alive()
        # the proxy still answers (with an error while no master)
        with px.raw() as c:
            rep = c.call("PING", timeout=10)
            assert isinstance(rep, Error) and rep.startswith("TRYAGAIN"), rep
        # master back on the same port: service resumes
        srv2 = redis_factory(port=srv.port)
        with px.raw() as c:
            _read_until_pong(c, time.monotonic() + 10)
            assert c.call("SET", "back", "yes") == "OK"
        assert srv2.client().get("back") == b"yes"
    finally:
        other.close()


@pytest.mark.proxy_only
def test_master_killed_with_replies_outstanding(proxy_factory, redis_factory, sharing):
    srv = redis_factory()
    px = proxy_factory(srv, sharing=sharing)
    with px.raw() as c:
        assert c.call("PING") == "PONG"
        c.send(encode("DEBUG", "SLEEP", "5") + encode("PING") + encode("GET", "x"))
        time.sleep(0.3)              # all three are at the master, which is asleep
        srv.kill(signal.SIGKILL)
        data, closed = c.read_all_until_close(5)
        replies = [l for l in data.split(b"\r\n") if l]
        assert len(replies) == 3 and all(x.startswith(b"-") for x in replies), data
        assert closed, "connection not closed (got %r)" % data
    assert px.alive()


@pytest.mark.proxy_only
def test_master_killed_shared_bystanders(proxy_factory, redis_factory):
    """Several shared clients with work outstanding when the master dies: each
    gets errors (one per outstanding command), none hangs, the proxy lives."""
    srv = redis_factory()
    px = proxy_factory(srv, sharing="yes")
    conns = [px.raw() for _ in range(10)]
    try:
        for i, c in enumerate(conns):
            assert c.call("SET", "c%d" % i, i) == "OK"
        conns[0].send(encode("DEBUG", "SLEEP", "5"))
        time.sleep(0.1)
        for i, c in enumerate(conns[1:], 1):
            c.send(encode("GET", "c%d" % i) + encode("PING"))
        time.sleep(0.2)
        srv.kill(signal.SIGKILL)
        for i, c in enumerate(conns):
            data, closed = c.read_all_until_close(5)
            replies = [l for l in data.split(b"\r\n") if l]
            want = 1 if i == 0 else 2
            assert len(replies) == want and all(x.startswith(b"-") for x in replies), (i, data)
            assert closed, (i, data)
    finally:
        for c in conns:
            c.close()
    assert px.alive()


def _worker(port, idx, rounds, errors):
    try:
        with RespConn.tcp(port, timeout=30) as c:
            for rnd in range(rounds):
                req, exp = [], []
                for j in range(500):
                    k = "w%d:%d" % (idx, j)
                    v = "val-%d-%d-%d" % (idx, rnd, j)
                    req.append(encode("SET", k, v)); exp.append(b"+OK\r\n")
                    req.append(encode("GET", k)); exp.append(bulk(v))
                c.send(b"".join(req))
                expect_bytes(c, b"".join(exp), what="worker %d round %d" % (idx, rnd))
    except Exception as e:
        errors.append("worker %d: %s" % (idx, e))


@pytest.mark.parametrize("how", ["close", "rst", "half_sent"])
def test_client_vanishes_mid_pipeline(proxy, r, how):
    r.set("filler", b"f" * 4096)
    errors = []
    workers = [threading.Thread(target=_worker, args=(proxy.port, i, 4, errors)) for i in range(4)]
    for t in workers:
        t.start()
    try:
        for n in range(6):
            c = RespConn.tcp(proxy.port)
            data = b"".join(encode("GET", "filler") for _ in range(3000)) + encode("INCR", "vanish")
            if how == "half_sent":
                data += b"*3\r\n$3\r\nSET\r\n$6\r\nvanish\r\n$100\r\nonly-part"
            c.send(data)
            if how == "rst":
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            time.sleep(0.02)
            c.close()
    finally:
        for t in workers:
            t.join(60)
    assert not any(t.is_alive() for t in workers), "a worker hung"
    assert not errors, errors
    assert proxy.alive()
    with proxy.raw() as c:
        c.send(encode("SET", "after", "1") + encode("GET", "after") + encode("GET", "w3:499"))
        expect_bytes(c, b"+OK\r\n$1\r\n1\r\n" + bulk("val-3-3-499"))
    # the half-sent SET never ran
    v = r.get("vanish")
    assert v is None or v.isdigit(), v


@pytest.mark.proxy_only
def test_pinned_session_survives_master_restart_or_closes(proxy_factory, redis_factory, sharing):
    """An idle client that did SELECT 1 / HELLO 3 / CLIENT SETNAME when the
    master restarts: it is either closed, or its next command runs with the
    same session (db 1, RESP3, name) -- never silently in db 0 / RESP2."""
    srv = redis_factory()
    px = proxy_factory(srv, sharing=sharing, pool={"block-timeout": "1000"})
    c = px.raw()
    try:
        assert isinstance(c.call("HELLO", "3"), Map)
        c.send(encode("SELECT", "1") + encode("CLIENT", "SETNAME", "sess") + encode("SET", "before", "1"))
        expect_bytes(c, b"+OK\r\n+OK\r\n+OK\r\n")
        port = srv.port
        srv.kill(signal.SIGKILL)
        time.sleep(0.3)
        srv2 = redis_factory(port=port)
        adm = srv2.client()
        adm.hset("h", "f", "v")
        adm.execute_command("SELECT", 1)
        adm.hset("h", "f", "db1")
        adm.execute_command("SELECT", 0)
        outcome = None
        for _ in range(50):
            try:
                c.cmd("HGETALL", "h")
                rep = c.read_raw_reply(timeout=5)
            except (Closed, OSError):
                outcome = "closed"
                break
            if rep.startswith(b"-"):
                time.sleep(0.1)          # e.g. TRYAGAIN while reconnecting
                continue
            outcome = rep
            break
        assert outcome is not None, "no answer and no close after the master restarted"
        if outcome != "closed":
            assert outcome == b"%1\r\n$1\r\nf\r\n$3\r\ndb1\r\n", (
                "after the master restarted, HGETALL ran with the wrong session: %r "
                "(db 0 would be 'v', RESP2 would start with '*')" % outcome)
            assert c.call("CLIENT", "GETNAME") == b"sess"
        adm.close()
    finally:
        c.close()


@pytest.mark.proxy_only
def test_auth_session_survives_master_restart_or_closes(proxy_factory, redis_factory, sharing):
    srv = redis_factory(extra_args=["--requirepass", "pw"])
    px = proxy_factory(srv, sharing=sharing, pool={"block-timeout": "1000"})
    c = px.raw()
    try:
        assert c.call("AUTH", "pw") == "OK"
        assert c.call("SET", "a", "1") == "OK"
        port = srv.port
        srv.kill(signal.SIGKILL)
        time.sleep(0.3)
        redis_factory(port=port, extra_args=["--requirepass", "pw"])
        outcome = None
        for _ in range(50):
            try:
                c.cmd("SET", "a", "2")
                rep = c.read_raw_reply(timeout=5)
            except (Closed, OSError):
                outcome = "closed"
                break
            if rep.startswith(b"-TRYAGAIN") or rep.startswith(b"-ERR connection"):
                time.sleep(0.1)
                continue
            outcome = rep
            break
        assert outcome in ("closed", b"+OK\r\n"), (
            "after the master restarted, an AUTHed client got %r" % outcome)
    finally:
        c.close()


@pytest.mark.proxy_only
def test_master_at_maxclients(proxy_factory, redis_factory, sharing):
    """redis answers a new connection with '-ERR max number of clients reached'
    and closes it before any command: clients get an error, the proxy lives,
    and service resumes when a slot frees up."""
    srv = redis_factory(extra_args=["--maxclients", "1"])
    holder = []

    def take_slot():                           # the readiness probe may still hold it briefly
        h = RespConn.tcp(srv.port)
        if h.call("PING") == "PONG":
            holder.append(h)
            return True
        h.close()
        return False
    wait_for(take_slot, timeout=5, interval=0.1, what="the only client slot on the master")
    hog = holder[0]
    px = proxy_factory(srv, sharing=sharing, pool={"block-timeout": "1000"})
    try:
        with px.raw() as c:
            c.cmd("PING")
            rep = c.read_reply(timeout=10)
            assert isinstance(rep, Error), rep
        time.sleep(0.3)
        assert px.alive(), "proxy died when the master refused it at maxclients:\n%s" % px.log_tail(5)
    finally:
        hog.close()
    with px.raw() as c:
        _read_until_pong(c, time.monotonic() + 10)


@pytest.mark.proxy_only
def test_static_master_that_is_a_replica(proxy_factory, redis_factory, sharing):
    """A static master that turns out to be a read-only replica: writes get
    redis' -READONLY, reads keep working (there is no znode to re-read)."""
    primary = redis_factory(extra_args=["--repl-diskless-sync-delay", "0"])
    primary.client().set("x", "from-primary")
    replica = redis_factory()
    adm = replica.client()
    adm.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
    wait_for(lambda: adm.get("x") == b"from-primary", timeout=10, what="replica in sync")
    px = proxy_factory(replica, sharing=sharing, pool={"block-timeout": "1000"})
    with px.raw() as c:
        assert c.call("GET", "x") == b"from-primary"
        e = c.call("SET", "y", "1", timeout=5)
        assert isinstance(e, Error) and e.startswith("READONLY"), e
        c.send(encode("GET", "x") + b"PING\r\n")
        expect_bytes(c, b"$12\r\nfrom-primary\r\n+PONG\r\n")
    adm.close()
