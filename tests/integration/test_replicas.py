"""Replica reads (issue 16): a pool with `read-from replicas` sends the
commands the master flags read-only to the replicas its redis_failover
znode names, when they are healthy and within replica-max-lag; everything
else to the master. Real ZooKeeper, a master and two replicas."""

import threading
import time

import pytest

from conftest import LOCALHOST, encode, free_port, wait_for
from zkutil import (HoldRelay, calls, hp, pool_info, replicas_of, rf_json, wait_master,
                    wait_replicas, zdelete, zset)

pytestmark = pytest.mark.proxy_only

FAST_SYNC = ["--repl-diskless-sync-delay", "0", "--replica-read-only", "yes"]


@pytest.fixture
def trio(redis_factory):
    """Master A, replica B (through a relay that can hold the link), and
    replica C."""
    a = redis_factory(extra_args=FAST_SYNC)
    relay = HoldRelay(a.port)
    relay.start()
    b = redis_factory(extra_args=FAST_SYNC + ["--replicaof", LOCALHOST, str(relay.port)])
    c = redis_factory(extra_args=FAST_SYNC + ["--replicaof", LOCALHOST, str(a.port)])
    for r in (b, c):
        wait_for(lambda: r.client().info("replication").get("master_link_status") == "up",
                 timeout=20, what="replica %d linked" % r.port)
    # A replica that just loaded its first copy gets the stream only once
    # the master has its REPLCONF ACK (up to a second): wait for a write.
    a.client().set("trio:ready", "1")
    for r in (b, c):
        wait_for(lambda: r.client().get("trio:ready") == b"1", timeout=10,
                 what="replica %d streaming" % r.port)
    yield a, b, c, relay
    relay.close()


@pytest.fixture
def reads(zk_server, kz, zk_proxy_factory, znode_path, trio):
    """A reads pool on the trio, both replicas taking reads."""
    a, b, c, relay = trio
    zset(kz, znode_path, rf_json(hp(a), [hp(b), hp(c)]))
    admin = free_port()
    px = zk_proxy_factory(zk_server, znode_path, pool={"read-from": "replicas",
                                                       "replica-max-lag": "500"},
                          globals_={"admin-listen": "%s:%d" % (LOCALHOST, admin)})
    px.admin = admin
    wait_master(px, hp(a))
    wait_replicas(px, {hp(b): "ok", hp(c): "ok"})
    wait_for(lambda: int(pool_info(px).get("readonly_commands", "0")) > 50, timeout=5,
             what="the master's read-only commands known")
    return px


def test_reads_spread_writes_to_master(reads, trio):
    a, b, c, _ = trio
    px = reads
    conns = [px.raw() for _ in range(10)]
    try:
        for i, cl in enumerate(conns):
            assert cl.call("SET", "rk:%d" % i, i) == "OK"
        wait_for(lambda: all(s.client().get("rk:9") == b"9" for s in (b, c)), timeout=5,
                 what="the writes replicated")
        before = {s.port: calls(s, "get") for s in (a, b, c)}
        for _ in range(20):
            for i, cl in enumerate(conns):
                assert cl.call("GET", "rk:%d" % i) == b"%d" % i
    finally:
        for cl in conns:
            cl.close()
    got = {s.port: calls(s, "get") - before[s.port] for s in (a, b, c)}
    assert got[a.port] == 0, got
    assert got[b.port] > 20 and got[c.port] > 20 and got[b.port] + got[c.port] == 200, got
    assert calls(a, "set") >= 10
    info = replicas_of(px)
    assert int(info[hp(b)]["reads"]) + int(info[hp(c)]["reads"]) >= 200


def test_transactions_and_scripts(reads, trio):
    """MULTI/EXEC, EVAL, EVALSHA and FCALL go to the master; EVAL_RO and
    FCALL_RO, flagged read-only by the server, to a replica."""
    a, b, c, _ = trio
    with a.client() as adm:
        adm.execute_command("FUNCTION", "LOAD", "REPLACE",
                            "#!lua name=rzlib\n"
                            "redis.register_function('rzget', function(k) return redis.call('GET', k[1]) end)\n"
                            "redis.register_function{function_name='rzget_ro', "
                            "callback=function(k) return redis.call('GET', k[1]) end, "
                            "flags={'no-writes'}}\n")
        adm.set("sk", "sv")
    wait_for(lambda: all(s.client().get("sk") == b"sv" for s in (b, c)), timeout=5,
             what="replicated")
    script = "return redis.call('GET', KEYS[1])"
    before = {(s.port, cmd): calls(s, cmd) for s in (a, b, c)
              for cmd in ("eval", "eval_ro", "evalsha", "fcall", "fcall_ro", "exec")}
    with reads.raw() as cl:
        sha = cl.call("SCRIPT", "LOAD", script)
        assert cl.call("EVAL", script, 1, "sk") == b"sv"
        assert cl.call("EVALSHA", sha, 1, "sk") == b"sv"
        assert cl.call("FCALL", "rzget", 1, "sk") == b"sv"
    with reads.raw() as cl:
        assert cl.call("EVAL_RO", script, 1, "sk") == b"sv"
        assert cl.call("FCALL_RO", "rzget_ro", 1, "sk") == b"sv"
    with reads.raw() as cl:
        assert cl.call("MULTI") == "OK"
        assert cl.call("GET", "sk") == "QUEUED"
        assert cl.call("EXEC") == [b"sv"]

    def delta(cmd, servers):
        return sum(calls(s, cmd) - before[(s.port, cmd)] for s in servers)
    for cmd in ("eval", "evalsha", "fcall", "exec"):
        assert delta(cmd, (a,)) == 1 and delta(cmd, (b, c)) == 0, cmd
    for cmd in ("eval_ro", "fcall_ro"):
        assert delta(cmd, (a,)) == 0 and delta(cmd, (b, c)) == 1, cmd


def test_stopped_and_lagging_replicas_take_no_reads(reads, trio):
    """A replica stopped (SIGSTOP) and one whose link is held (lagging)
    stop taking reads within the check period and take them again once
    healthy; no client sees an error for a read that was never sent."""
    import signal
    a, b, c, relay = trio
    px = reads
    stop = threading.Event()
    errors, done = [], [0]

    def writer():
        with px.raw() as cl:
            i = 0
            while not stop.is_set():
                cl.call("SET", "lag:w", i)
                i += 1
                time.sleep(0.002)

    def reader():
        try:
            while not stop.is_set():
                with px.raw() as cl:      # new connections: never stuck on a stopped replica
                    rep = cl.call("GET", "lag:w", timeout=20)
                    if isinstance(rep, str):
                        errors.append(rep)
                    done[0] += 1
        except Exception as e:
            errors.append(repr(e))

    # Several readers: a read sent to C just before its stop waits for it,
    # as it would connected directly; the others go on.
    ths = [threading.Thread(target=writer, daemon=True)] + \
        [threading.Thread(target=reader, daemon=True) for _ in range(4)]
    for t in ths:
        t.start()
    try:
        c.proc.send_signal(signal.SIGSTOP)
        wait_replicas(px, {hp(b): "ok", hp(c): "down"}, timeout=3)
        n = calls(b, "get")
        wait_for(lambda: calls(b, "get") > n + 20, timeout=5, what="reads going to b")
        c.proc.send_signal(signal.SIGCONT)
        wait_replicas(px, {hp(b): "ok", hp(c): "ok"}, timeout=5)
        n = calls_quiet(c, "get") or 0
        wait_for(lambda: (calls_quiet(c, "get") or 0) > n + 20, timeout=5, what="reads going to c again")
        relay.flowing.clear()
        wait_replicas(px, {hp(b): "lagging", hp(c): "ok"}, timeout=5)
        n = calls(b, "get")
        time.sleep(0.5)
        assert calls(b, "get") == n, "a lagging replica took reads"
        relay.flowing.set()
        wait_replicas(px, {hp(b): "ok", hp(c): "ok"}, timeout=5)
        n = calls(b, "get")
        wait_for(lambda: calls(b, "get") > n + 20, timeout=5, what="reads going to b again")
    finally:
        relay.flowing.set()
        try:
            c.proc.send_signal(signal.SIGCONT)
        except ProcessLookupError:
            pass
        stop.set()
        for t in ths:
            t.join(15)
    assert not errors, errors[:5]
    assert done[0] > 50


# Busy for ARGV[1] microseconds, read-only (EVAL_RO): it holds a replica's
# connection while the proxy's checks of that replica go unanswered.
BUSY_RO = ("local t = redis.call('TIME') local e = t[1] * 1000000 + t[2] + ARGV[1] "
           "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= e return 1")


def test_pipelining_client_leaves_a_replica_gone_bad(zk_server, kz, zk_proxy_factory, znode_path, trio):
    """A client that still owes replies on a replica does not go on sending
    reads there once the checks take the replica out: its next read waits
    for what is owed, then goes where a fresh read would (here the master,
    the only replica being down, then lagging)."""
    a, b, c, relay = trio
    zset(kz, znode_path, rf_json(hp(a), [hp(b)]))
    px = zk_proxy_factory(zk_server, znode_path, pool={"read-from": "replicas",
                                                       "replica-max-lag": "500"})
    wait_master(px, hp(a))
    wait_replicas(px, {hp(b): "ok"})
    wait_for(lambda: int(pool_info(px).get("readonly_commands", "0")) > 50, timeout=5,
             what="the master's read-only commands known")
    with a.client() as adm:
        adm.set("bad:k", "v")
    wait_for(lambda: b.client().get("bad:k") == b"v", timeout=5, what="replicated")
    gets = (calls(a, "get"), calls(b, "get"))
    try:
        with px.raw(timeout=20) as cl:
            cl.send(encode("EVAL_RO", BUSY_RO, "0", "2000000"))
            wait_for(lambda: calls_quiet(b, "eval_ro") is None, timeout=5, what="b busy")
            relay.flowing.clear()          # and when it is free again, it is behind
            with a.client() as adm:
                for i in range(10):
                    adm.set("bad:w", i)
            wait_replicas(px, {hp(b): "down"}, timeout=5)
            cl.send(encode("GET", "bad:k"))
            assert cl.read_reply(timeout=20) == 1
            assert cl.read_reply(timeout=20) == b"v"
            assert replicas_of(px)[hp(b)]["state"] in ("down", "lagging")
    finally:
        relay.flowing.set()
    assert calls(b, "get") == gets[1], "a read went to a replica the checks had taken out"
    assert calls(a, "get") == gets[0] + 1
    wait_replicas(px, {hp(b): "ok"}, timeout=10)


def calls_quiet(srv, cmd):
    """calls(srv, cmd), or None while srv does not answer within 0.2 s."""
    try:
        with srv.client(socket_timeout=0.2) as adm:
            return int(adm.info("commandstats").get("cmdstat_" + cmd, {}).get("calls", 0))
    except Exception:
        return None


def test_reads_flow_while_writes_gate(reads, trio, kz, znode_path):
    """The znode deleted: writes are held (block mode) and answered
    -TRYAGAIN at block-timeout, reads keep coming from the replicas."""
    a, b, c, _ = trio
    with a.client() as adm:
        adm.set("g:k", "v")
    wait_for(lambda: all(s.client().get("g:k") == b"v" for s in (b, c)), timeout=5, what="replicated")
    zdelete(kz, znode_path)
    wait_for(lambda: pool_info(reads).get("state") == "NO_NODE", timeout=5, what="gated")
    with reads.raw() as cl:
        for _ in range(20):
            assert cl.call("GET", "g:k") == b"v"
        t0 = time.monotonic()
        assert cl.call("SET", "g:k", "w", timeout=15) == "TRYAGAIN znode missing"
        assert time.monotonic() - t0 >= 4
    with a.client() as adm:
        assert adm.get("g:k") == b"v"


def test_new_znode_version_drops_unnamed_replica(reads, trio, kz, znode_path):
    """A znode version that no longer names C: once it is read, no read
    goes to C."""
    a, b, c, _ = trio
    zset(kz, znode_path, rf_json(hp(a), [hp(b)]))
    wait_for(lambda: set(replicas_of(reads)) == {hp(b)}, timeout=5, what="C dropped")
    n = calls(c, "get")
    with reads.raw() as cl:
        for _ in range(50):
            cl.call("GET", "x")
    assert calls(c, "get") == n


def test_rotation_sends_no_read_to_an_unnamed_server(reads, trio, kz, znode_path):
    """The master moves A -> B and the znode's new version names C alone as
    a replica (A, now a healthy replica of B, is listed unavailable): once
    the proxy has read that version, no read goes to A; C takes them."""
    a, b, c, _ = trio
    px = reads
    stop = threading.Event()
    failures = []

    def reader():
        try:
            with px.raw(timeout=20) as cl:
                while not stop.is_set():
                    cl.call("GET", "rot:k", timeout=20)
        except Exception as e:
            failures.append(repr(e))

    ths = [threading.Thread(target=reader, daemon=True) for _ in range(3)]
    for t in ths:
        t.start()
    try:
        n = calls(b, "get")
        wait_for(lambda: calls(b, "get") > n + 20, timeout=5, what="reads on b")
        with b.client() as adm:
            adm.slaveof()                          # SLAVEOF NO ONE
        for r in (a, c):
            with r.client() as adm:
                adm.slaveof(LOCALHOST, b.port)
        zset(kz, znode_path, rf_json(hp(b), [hp(c)], unavailable=[hp(a)]))
        wait_master(px, hp(b))
        wait_for(lambda: a.client().info("replication").get("master_link_status") == "up",
                 timeout=10, what="a replicating from b")
        time.sleep(0.2)                            # reads a had been sent before
        n_a, n_c = calls(a, "get"), calls(c, "get")
        wait_for(lambda: calls(c, "get") > n_c + 20, timeout=10, what="reads on c")
        time.sleep(0.3)
        assert calls(a, "get") == n_a, "a read went to a server the znode no longer names"
        assert set(replicas_of(px)) == {hp(c)}, replicas_of(px)
    finally:
        stop.set()
        for t in ths:
            t.join(15)
    assert not failures, failures


def test_read_after_write(zk_server, kz, zk_proxy_factory, znode_path, trio):
    """read-after-write-ms: a client's reads right after its write go to
    the master, so it reads what it wrote even from a lagging replica."""
    a, b, c, relay = trio
    zset(kz, znode_path, rf_json(hp(a), [hp(b)]))
    px = zk_proxy_factory(zk_server, znode_path, pool={"read-from": "replicas",
                                                       "replica-max-lag": "5000",
                                                       "read-after-write-ms": "1000"})
    wait_replicas(px, {hp(b): "ok"})
    n0 = calls(b, "get")
    relay.flowing.clear()          # b falls behind, within the (large) lag bound
    try:
        with px.raw() as cl:
            for i in range(20):
                assert cl.call("SET", "raw:k", i) == "OK"
                assert cl.call("GET", "raw:k") == b"%d" % i
            # b was a candidate all along: the window, not its health, kept
            # those reads on the master
            assert replicas_of(px)[hp(b)]["state"] == "ok"
            assert calls(b, "get") == n0
            time.sleep(1.1)                        # the window is over
            assert cl.call("GET", "raw:k") != b"19"    # b's, from before the writes
            assert calls(b, "get") == n0 + 1
    finally:
        relay.flowing.set()


def test_replicas_in_metrics_and_info(reads, trio):
    """/metrics and /info show each replica's state, lag and reads."""
    import json
    import urllib.request
    a, b, c, _ = trio
    with reads.raw() as cl:
        for _ in range(10):
            cl.call("GET", "m:k")

    def get(path):
        with urllib.request.urlopen("http://%s:%d%s" % (LOCALHOST, reads.admin, path), timeout=5) as r:
            return r.read().decode()
    metrics = get("/metrics")
    for r in (b, c):
        assert 'rzproxy_pool_replica_up{pool="main",replica="%s"} 1' % hp(r) in metrics, metrics
        assert 'rzproxy_pool_replica_lag_seconds{pool="main",replica="%s"}' % hp(r) in metrics
    reads_total = sum(float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines()
                      if l.startswith("rzproxy_pool_replica_reads_total{"))
    assert reads_total >= 10, metrics
    info = json.loads(get("/info"))["pools"][0]
    assert info["read_from"] == "replicas"
    assert sorted(x["addr"] for x in info["replicas"]) == sorted([hp(b), hp(c)])
    assert all(x["state"] == "ok" and 0 <= x["lag_ms"] <= 500 for x in info["replicas"]), info["replicas"]
    assert sum(x["reads"] for x in info["replicas"]) >= 10, info["replicas"]
    shown = replicas_of(reads)
    assert all(0 <= int(f["lag_ms"]) <= 500 for f in shown.values()), shown
    assert sum(int(f["reads"]) for f in shown.values()) >= 10, shown


def test_replica_killed_mid_reads(reads, trio):
    """A replica killed while readers pipeline through the pool: a read it
    had been sent is answered -TRYAGAIN (a read, safe to retry) and the
    client stays connected; reads not yet sent go to the other replica."""
    import signal
    a, b, c, _ = trio
    with a.client() as adm:
        adm.set("kill:k", "v")
    wait_for(lambda: all(s.client().get("kill:k") == b"v" for s in (b, c)), timeout=5,
             what="replicated")
    conns = [reads.raw() for _ in range(4)]
    try:
        for cl in conns:
            cl.send(b"".join(encode("GET", "kill:k") for _ in range(200)))
        c.kill(signal.SIGKILL)
        for cl in conns:
            got = [cl.read_reply(timeout=10) for _ in range(200)]
            assert all(g in (b"v", "TRYAGAIN connection to replica lost before its reply")
                       for g in got), got[:5]
            assert cl.call("GET", "kill:k") == b"v"       # the client is still connected
        wait_replicas(reads, {hp(b): "ok", hp(c): "down"}, timeout=3)
        for cl in conns:
            assert [cl.call("GET", "kill:k") for _ in range(20)] == [b"v"] * 20
    finally:
        for cl in conns:
            cl.close()


# ---- the election layout (DESIGN 1b): the other ballots are the replicas ----

def cast(kz, root, srv):
    """A candidate's ballot, as the zk gem and rzproxy-ctl candidate cast it."""
    return kz.create(root + "/ballot", hp(srv).encode(), ephemeral=True, sequence=True,
                     makepath=True)


def test_election_ballots_are_the_replicas(zk_server, kz, zk_proxy_factory, znode_path, trio):
    """A pool on ROOT/leader_ack reads from the other candidates' ballots:
    the leader's own is left out, a ballot gone stops its reads, a new one
    starts them, and a new leader's old ballot-mates follow it."""
    a, b, c, _ = trio
    root = znode_path
    ballots = {s.port: cast(kz, root, s) for s in (a, b, c)}
    zset(kz, root + "/leader_ack", hp(a).encode())
    px = zk_proxy_factory(zk_server, root + "/leader_ack",
                          pool={"read-from": "replicas", "replica-max-lag": "500"})
    wait_master(px, hp(a))
    wait_replicas(px, {hp(b): "ok", hp(c): "ok"})
    with a.client() as adm:
        adm.set("el:k", "v")
    wait_for(lambda: all(s.client().get("el:k") == b"v" for s in (b, c)), timeout=5,
             what="replicated")

    def spread(n=40):
        before = {s.port: calls(s, "get") for s in (a, b, c)}
        with px.raw() as cl:
            for _ in range(n):
                assert cl.call("GET", "el:k") == b"v"
        return {s.port: calls(s, "get") - before[s.port] for s in (a, b, c)}
    got = spread()
    assert got[a.port] == 0 and got[b.port] > 0 and got[c.port] > 0, got

    kz.delete(ballots[c.port])          # C's candidate left the election
    wait_replicas(px, {hp(b): "ok"})
    got = spread()
    assert got == {a.port: 0, b.port: 40, c.port: 0}, got

    ballots[c.port] = cast(kz, root, c)  # and came back
    wait_replicas(px, {hp(b): "ok", hp(c): "ok"})

    # The leader_ack gone: writes gate, reads keep flowing from the ballots.
    zdelete(kz, root + "/leader_ack")
    wait_for(lambda: pool_info(px).get("state") == "NO_NODE", timeout=5, what="gated")
    got = spread(10)
    assert got[a.port] == 0 and got[b.port] + got[c.port] == 10, got

    # C wins (A's ballot goes, C becomes the master, the others follow it):
    # the replicas are now A and B.
    kz.delete(ballots[a.port])
    with c.client() as cc:
        cc.execute_command("REPLICAOF", "NO", "ONE")
    for s in (a, b):
        with s.client() as sc:
            sc.execute_command("REPLICAOF", LOCALHOST, str(c.port))
    ballots[a.port] = cast(kz, root, a)
    zset(kz, root + "/leader_ack", hp(c).encode())
    wait_master(px, hp(c))
    wait_replicas(px, {hp(a): "ok", hp(b): "ok"}, timeout=30)
    got = spread()
    assert got[c.port] == 0 and got[a.port] > 0 and got[b.port] > 0, got


def test_read_from_turned_on_by_reload(zk_server, kz, zk_proxy_factory, znode_path, trio):
    """read-from replicas by SIGHUP: the replicas are known at once (the
    znode is read again), not at its next change; for an election, its
    ballots are listed."""
    import os
    import signal
    from conftest import write_conf
    a, b, c, _ = trio
    root = znode_path
    for s in (a, b):
        cast(kz, root, s)
    zset(kz, root + "/leader_ack", hp(a).encode())
    px = zk_proxy_factory(zk_server, root + "/leader_ack")
    wait_master(px, hp(a))
    assert replicas_of(px) == {}
    write_conf(px.confpath, px.port, None,
               globals_={"zookeeper": zk_server.hostport, "zk-session-timeout": "2000"},
               pool={"znode": root + "/leader_ack", "block-timeout": "5000",
                     "read-from": "replicas"})
    os.kill(px.pid, signal.SIGHUP)
    wait_replicas(px, {hp(b): "ok"})
    n = calls(b, "get")
    with px.raw() as cl:
        for _ in range(10):
            cl.call("GET", "r:k")
    assert calls(b, "get") == n + 10
