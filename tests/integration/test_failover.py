"""Failover without loss, proxy side: what clients see when the master they
use refuses writes (-READONLY), stalls, dies, or is replaced while they are
tied to it, and while ZooKeeper is out of reach.

The full choreography (rzproxy-ctl failover under load) is in
test_choreography.py."""

import os
import signal
import threading
import time

import pytest

from conftest import encode, wait_for
from zkutil import (zset, plain, pool_info, wait_state, tryagain, fmt_info, hp, wait_master,
                    make_replica, Monitor, AckWriter, LOST, switch_and_set)

pytestmark = pytest.mark.proxy_only

# ---------------------------------------------------------------- -READONLY

def test_refused_write_is_sent_to_the_next_master(zk_server, kz, zk_proxy_factory, two, znode_path,
                                                   sharing):
    """Block mode: a stale director names a replica. The write it refuses
    never ran, so the proxy holds it (the client sees only latency), gates
    (FENCED), and sends it to the master the znode names next."""
    a, b = two
    make_replica(b, a)
    zset(kz, znode_path, plain(hp(b)))
    px = zk_proxy_factory(zk_server, znode_path, sharing=sharing, pool={"block-timeout": "10000"},
                          globals_={"loglevel": "info"})
    wait_master(px, hp(b))
    with px.raw() as c:
        c.send(encode("SET", "k", "1"))
        wait_state(px, "FENCED")
        assert c.nothing_pending(0.3), "the refused write was answered instead of held"
        assert a.client().get("k") is None
        zset(kz, znode_path, plain(hp(a)))
        assert c.read_reply(timeout=10) == "OK"
        assert c.call("INCR", "n") == 1
        assert c.nothing_pending(0.1)
    assert a.client().get("k") == b"1" and a.client().get("n") == b"1"
    f = pool_info(px)
    assert f.get("readonly_retries") == "1", fmt_info(f)
    assert "refused by a read-only master; held for the next one" in px.log_tail(80)


def test_refused_pipeline_gets_tryagain(zk_server, kz, zk_proxy_factory, two, znode_path, sharing):
    """Two writes pipelined to a replica: both are refused, but the second
    already went out behind the first, so resending the first would reorder
    replies. Each gets -TRYAGAIN (neither ran); the replica's -READONLY
    wording never reaches the client."""
    a, b = two
    make_replica(b, a)
    zset(kz, znode_path, plain(hp(b)))
    px = zk_proxy_factory(zk_server, znode_path, sharing=sharing, pool={"block-timeout": "10000"})
    wait_master(px, hp(b))
    with px.raw() as c:
        c.send(encode("SET", "p", "1") + encode("SET", "p", "2"))
        assert c.read_reply(timeout=10) == "TRYAGAIN master is read-only"
        assert c.read_reply(timeout=10) == "TRYAGAIN master is read-only"
        wait_state(px, "FENCED")
        switch_and_set(kz, znode_path, px, c, a, "p", "3")
    assert a.client().get("p") == b"3"


def test_refused_inside_multi_is_not_retried(zk_server, kz, zk_proxy_factory, two, znode_path):
    """A write queued in MULTI and refused cannot be resent alone: the client
    gets -TRYAGAIN for it. Its EXEC is held like any command while the pool
    is gated, and when the znode names the real master the transaction
    cannot move there: the client gets the documented error and is closed."""
    a, b = two
    make_replica(b, a)
    zset(kz, znode_path, plain(hp(b)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"block-timeout": "10000"})
    wait_master(px, hp(b))
    with px.raw() as c:
        assert c.call("MULTI") == "OK"
        assert c.call("SET", "m", "1") == "TRYAGAIN master is read-only"
        wait_state(px, "FENCED")
        c.send(encode("EXEC"))
        assert c.nothing_pending(0.3)
        zset(kz, znode_path, plain(hp(a)))
        rep = c.read_reply(timeout=10)
        assert rep == ("ERR master changed to %s; this connection's state (MULTI) cannot move to "
                       "the new master: reconnect" % hp(a)), rep
        assert c.is_closed(5)
    assert a.client().get("m") is None


# ---------------------------------------------------------------- drain-timeout

def test_stalled_master_bounded_by_drain_timeout(zk_server, kz, zk_proxy_factory, two, znode_path,
                                                 sharing):
    """The master stops answering (SIGSTOP) with a command outstanding, and
    the znode moves on. Other clients go to the new master at once; the
    stuck one waits for its reply at most drain-timeout, then gets the
    "outcome unknown" error and is disconnected (never sent twice)."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, sharing=sharing,
                          pool={"drain-timeout": "800", "block-timeout": "10000"})
    wait_master(px, hp(a))
    stuck, idle = px.raw(), px.raw()
    try:
        assert stuck.call("SET", "x", "0") == "OK" and idle.call("PING") == "PONG"
        os.kill(a.pid, signal.SIGSTOP)
        try:
            stuck.send(encode("INCR", "x"))
            time.sleep(0.2)
            zset(kz, znode_path, plain(hp(b)))
            wait_master(px, hp(b))
            assert idle.call("SET", "y", "1", timeout=5) == "OK"
            rep = stuck.read_reply(timeout=10)
            assert rep == LOST, rep
            assert stuck.is_closed(5)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        assert idle.call("GET", "y") == b"1"
    finally:
        stuck.close()
        idle.close()
    assert b.client().get("x") is None, "the command of unknown outcome was sent again"
    assert a.client().get("x") == b"1"      # it ran on the stalled master once it woke
    assert "after drain-timeout (800 ms)" in px.log_tail(80)


# ---------------------------------------------------------------- master killed

@pytest.mark.parametrize("mode", ["block", "tryagain"])
def test_master_killed_without_znode_change(zk_server, kz, zk_proxy_factory, two, znode_path, mode):
    """The master dies (SIGKILL) and the znode still names it. Commands in
    flight get the "outcome unknown" error; new ones are held (block) or get
    -TRYAGAIN master unreachable, while the proxy retries with backoff. When
    the znode names a healthy master, writers continue there."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path,
                          pool={"on-no-master": mode, "block-timeout": "20000"})
    wait_master(px, hp(a))
    stop = threading.Event()
    # INCR on its own key, reconnecting when the proxy closes the connection
    ws = [AckWriter(px, [("INCR", "k:{idx}")], idx=i, stop=stop, error_pause=0.005, reconnect=True)
          for i in range(3)]
    for w in ws:
        w.start()
    try:
        wait_for(lambda: all(len(w.acks) >= 50 for w in ws), timeout=10, what="writes on a")
        a.kill()
        time.sleep(1.0)
        before = [len(w.acks) for w in ws]
        time.sleep(0.5)
        assert [len(w.acks) for w in ws] == before, "writes acknowledged with the master dead"
        f = pool_info(px)
        assert f.get("reason") == "master unreachable", fmt_info(f)
        zset(kz, znode_path, plain(hp(b)))
        wait_master(px, hp(b))
        wait_for(lambda: all(len(w.acks) >= before[i] + 50 for i, w in enumerate(ws)), timeout=10,
                 what="writes on b")
    finally:
        stop.set()
        for w in ws:
            w.join(20)
    for w in ws:
        assert w.failure is None, w.failure
        allowed = {LOST} if mode == "block" else {LOST, "TRYAGAIN master unreachable"}
        assert set(w.error_texts) <= allowed, w.error_texts[:5]
        assert w.error_texts.count(LOST) <= 1, w.error_texts[:5]
    if mode == "tryagain":
        assert any("TRYAGAIN master unreachable" in w.error_texts for w in ws)
    assert "unreachable" in px.log_tail(200)


# ---------------------------------------------------------------- tied clients

def test_tied_clients_closed_at_switch(zk_server, kz, zk_proxy_factory, two, znode_path):
    """At the switch, a client inside MULTI, a subscribed one and one blocked
    in BLPOP each get the documented error and a closed connection: their
    state cannot move to the new master. None hangs."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path)
    wait_master(px, hp(a))
    multi, sub, blocked = px.raw(), px.raw(), px.raw()
    try:
        assert multi.call("MULTI") == "OK" and multi.call("SET", "t", "1") == "QUEUED"
        assert sub.call("SUBSCRIBE", "ch") == [b"subscribe", b"ch", 1]
        blocked.send(encode("BLPOP", "q", "0"))
        wait_for(lambda: int(a.client().info("clients")["blocked_clients"]) == 1, timeout=5,
                 what="BLPOP blocked on a")
        zset(kz, znode_path, plain(hp(b)))
        wait_master(px, hp(b))
        moved = "ERR master changed to %s; this connection's state (%%s) cannot move to the " \
                "new master: reconnect" % hp(b)
        assert multi.read_reply(timeout=5) == moved % "MULTI"
        assert sub.read_reply(timeout=5) == moved % "subscribed"
        assert blocked.read_reply(timeout=5) == LOST
        for c in (multi, sub, blocked):
            assert c.is_closed(5)
    finally:
        for c in (multi, sub, blocked):
            c.close()
    assert a.client().get("t") is None and b.client().get("t") is None
    with px.raw() as c:
        assert c.call("SET", "after", "1") == "OK"
    assert b.client().get("after") == b"1"


# ---------------------------------------------------------------- partition

def test_partition_during_failover(zk_fresh, kz_factory, zk_proxy_factory, two, znode_path):
    """The proxy loses ZooKeeper (server paused) for longer than the session
    timeout while the master moves behind its back (a is demoted to a
    replica of b). It gates at once (DISCONNECTED) and then on its own timer
    (EXPIRED), and never forwards to a; once ZooKeeper is back it reads the
    znode naming b and writes land there."""
    a, b = two
    kz = kz_factory(zk_fresh.hostport)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_fresh, znode_path, session_timeout=1000,
                          pool={"on-no-master": "tryagain"})
    wait_master(px, hp(a))
    with px.raw() as c:
        assert c.call("SET", "before", "1") == "OK"
    mon = Monitor(a)
    kz.stop()
    zk_fresh.pause()
    try:
        wait_state(px, ("DISCONNECTED", "EXPIRED"), timeout=5)
        with px.raw() as c:
            assert tryagain(c.call("SET", "during", "1")) in ("zookeeper disconnected",
                                                              "zookeeper session expired")
        # the director, on the other side of the partition, moves the master
        b.client().slaveof()          # SLAVEOF NO ONE
        make_replica(a, b)
        wait_state(px, "EXPIRED", timeout=5)
        with px.raw() as c:
            assert tryagain(c.call("SET", "during", "2")) == "zookeeper session expired"
    finally:
        zk_fresh.resume()
    kz = kz_factory(zk_fresh.hostport)
    zset(kz, znode_path, plain(hp(b)))
    wait_master(px, hp(b), timeout=15)
    with px.raw() as c:
        assert c.call("SET", "after", "1") == "OK"
    assert b.client().get("after") == b"1" and b.client().get("during") is None
    wait_for(lambda: a.client().exists("after"), timeout=5, what="a replicating from b")
    lines = mon.stop()
    assert any('"after"' in l for l in lines), "MONITOR on a saw nothing: %r" % lines[:5]
    # a sees b's replication stream (from b's port), never the proxy
    direct = [l for l in lines if ":%d]" % b.port not in l and any(
        '"%s"' % cmd in l.upper() for cmd in ("SET", "GET"))]
    assert not direct, direct[:3]
