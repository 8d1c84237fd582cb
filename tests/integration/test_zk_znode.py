"""ZooKeeper master source, znode side: the znode appears, changes, disappears,
holds garbage or `master: null`; formats; gating replies (-TRYAGAIN reasons,
block-timeout); znode-max-age; digest ACLs; a static pool next to a znode pool.

One standalone ZooKeeper serves the whole module (nobody stops it here: see
test_zk_session.py for that); every test has its own znode path and its own
redis-servers, and asserts where the data landed on the servers directly."""

import contextlib
import socket
import threading
import time

import pytest

from conftest import (LOCALHOST, Error, RespConn, encode, expect_bytes, free_port, rss_kb, wait_for)
from zkutil import (zset, zdelete, zstat, plain, rf_json, pool_info, wait_state, tryagain, fmt_info,
                    hp, wait_master, switch_and_set)

pytestmark = pytest.mark.proxy_only


def assert_zk_fields(f, znode, kz):
    """The ZooKeeper fields of PROXY INFO match the znode as ZooKeeper has it."""
    assert f.get("master_source") == "zookeeper", fmt_info(f)
    assert f.get("znode") == znode, f
    st = zstat(kz, znode)
    if st is not None and f.get("state") == "READY":
        assert int(f.get("znode_mzxid", "-1")) == st.mzxid, "znode_mzxid %s, ZooKeeper says %d" % (
            f.get("znode_mzxid"), st.mzxid)
        assert int(f.get("znode_version", "-1")) == st.version, "znode_version %s, ZooKeeper says %d" % (
            f.get("znode_version"), st.version)


# ---------------------------------------------------------------- PROXY INFO

def test_proxy_info_zk_fields(zk_server, kz, zk_proxy_factory, two, znode_path):
    """PROXY INFO of a znode pool has every documented field, with ZooKeeper's values."""
    a, _ = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path)
    f = wait_master(px, hp(a))
    for k in ("pool", "state", "reason", "master", "master_source", "znode", "znode_mzxid", "znode_version",
              "zk_session_id", "master_changes", "clients", "commands", "tryagain_replies"):
        assert k in f, "PROXY INFO lacks %s: %s" % (k, sorted(f))
    assert f["pool"] == "main" and f["reason"] == "" and f["master_source"] == "zookeeper"
    assert_zk_fields(f, znode_path, kz)
    sid = f["zk_session_id"]
    assert sid.startswith("0x") and int(sid, 16) > 0, sid
    # the session id is the one ZooKeeper has for the proxy's connection
    assert int(sid, 16) in zk_server.session_ids(), (sid, [hex(x) for x in zk_server.session_ids()])
    assert int(f["master_changes"]) == 1, fmt_info(f)


# ---------------------------------------------------------------- znode lifecycle

def test_znode_absent_at_start_then_created(zk_server, kz, zk_proxy_factory, two, znode_path, sharing):
    """NO_NODE (`znode missing`) while the znode does not exist; commands are held,
    and released in order, per client, onto the master once the znode appears."""
    a, _ = two
    zdelete(kz, znode_path)
    px = zk_proxy_factory(zk_server, znode_path, sharing=sharing, pool={"block-timeout": "10000"})
    f = wait_state(px, "NO_NODE")
    assert f.get("reason") == "znode missing", fmt_info(f)
    assert f.get("master") == "", fmt_info(f)
    assert_zk_fields(f, znode_path, kz)
    c1, c2 = px.raw(), px.raw()
    try:
        c1.send(encode("SET", "k", "1") + encode("INCR", "k") + encode("APPEND", "s", "a") + encode("GET", "k"))
        c2.send(encode("RPUSH", "l", "x") + encode("RPUSH", "l", "y") + encode("LRANGE", "l", "0", "-1"))
        time.sleep(0.6)
        assert c1.nothing_pending(0.05) and c2.nothing_pending(0.05), \
            "answered while the znode was missing: %r %r" % (c1.pending(), c2.pending())
        zset(kz, znode_path, plain(hp(a)))
        expect_bytes(c1, b"+OK\r\n:2\r\n:1\r\n$1\r\n2\r\n", timeout=8, what="client 1 held commands")
        expect_bytes(c2, b":1\r\n:2\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n", timeout=8, what="client 2 held commands")
    finally:
        c1.close()
        c2.close()
    f = wait_master(px, hp(a))
    assert f.get("reason") == "", fmt_info(f)
    assert int(f.get("master_changes", "0")) >= 1, fmt_info(f)
    assert_zk_fields(f, znode_path, kz)
    adm = a.client()
    assert adm.get("k") == b"2" and adm.get("s") == b"a" and adm.lrange("l", 0, -1) == [b"x", b"y"]


def test_master_changed(zk_server, kz, zk_proxy_factory, two, znode_path, sharing):
    """Rewrite the znode to another master: commands after the switch land on the
    new server only; an idle connection from before the switch moves too."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, sharing=sharing)
    f = wait_master(px, hp(a))
    assert_zk_fields(f, znode_path, kz)
    changes0 = int(f.get("master_changes", "0"))
    with px.raw() as c:
        assert c.call("SET", "before", "1") == "OK"
        zset(kz, znode_path, plain(hp(b)))
        f = wait_master(px, hp(b), timeout=5)
        assert_zk_fields(f, znode_path, kz)
        assert int(f["master_changes"]) == changes0 + 1, "master_changes %s -> %s" % (changes0, f["master_changes"])
        for i in range(50):
            assert c.call("SET", "after:%d" % i, i) == "OK"
        with px.raw() as c2:
            assert c2.call("SET", "fresh", "1") == "OK"
    ca, cb = a.client(), b.client()
    assert ca.get("before") == b"1" and cb.get("before") is None
    assert ca.keys("after:*") == [] and ca.get("fresh") is None, "writes after the switch reached the old master"
    assert len(cb.keys("after:*")) == 50 and cb.get("fresh") == b"1"


def test_delete_then_create(zk_server, kz, zk_proxy_factory, two, znode_path, sharing):
    """The director's choreography: delete (gate: held), create naming the new
    master (held commands run, in order, on the new master only)."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, sharing=sharing, pool={"block-timeout": "10000"})
    wait_master(px, hp(a))
    with px.raw() as c:
        assert c.call("SET", "n", "10") == "OK"
        zdelete(kz, znode_path)
        f = wait_state(px, "NO_NODE", timeout=5)
        assert f.get("reason") == "znode missing", fmt_info(f)
        c.send(encode("SET", "n", "100") + encode("INCR", "n") + encode("INCR", "n") + encode("GET", "n"))
        time.sleep(0.5)
        assert c.nothing_pending(0.05), "answered with the znode deleted: %r" % c.pending()
        zset(kz, znode_path, plain(hp(b)))
        expect_bytes(c, b"+OK\r\n:101\r\n:102\r\n$3\r\n102\r\n", timeout=8, what="held commands")
    f = wait_master(px, hp(b))
    assert_zk_fields(f, znode_path, kz)
    assert a.client().get("n") == b"10", "held commands reached the old master"
    assert b.client().get("n") == b"102"


def test_delete_and_create_back_to_back(zk_server, kz, zk_proxy_factory, two, znode_path):
    """Delete and re-create (other master) with no pause in between, several times:
    the proxy must never miss the create (the watch re-arm race): it ends READY on
    the master the znode names, with ZooKeeper's mzxid, and writes land there."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"block-timeout": "3000"})
    wait_master(px, hp(a))
    servers = [a, b]
    for i in range(8):
        target = servers[(i + 1) % 2]
        # back to back, pipelined on kazoo's one connection
        d = kz.delete_async(znode_path)
        cr = kz.create_async(znode_path, plain(hp(target)))
        d.get(timeout=5)
        cr.get(timeout=5)
        f = wait_master(px, hp(target), timeout=5)
        assert_zk_fields(f, znode_path, kz)
        with px.raw() as c:
            assert c.call("SET", "round", i, timeout=5) == "OK"
        assert target.client().get("round") == str(i).encode(), "round %d did not land on %s" % (i, hp(target))
    # also as one atomic multi-op (one zxid, delete+create)
    t = kz.transaction()
    t.delete(znode_path)
    t.create(znode_path, plain(hp(a)))
    assert all(r is True or isinstance(r, str) for r in t.commit())
    f = wait_master(px, hp(a), timeout=5)
    assert_zk_fields(f, znode_path, kz)


def test_master_null_json(zk_server, kz, zk_proxy_factory, two, znode_path):
    """redis_failover JSON with master null, or no master key: NO_MASTER
    (`no master in znode`); a JSON master again: READY."""
    a, b = two
    zset(kz, znode_path, rf_json(hp(a), slaves=[hp(b)]))
    px = zk_proxy_factory(zk_server, znode_path, pool={"on-no-master": "tryagain"})
    wait_master(px, hp(a))
    for data in (rf_json(None, slaves=[hp(b)]), b'{"slaves":["%s"],"unavailable":[]}' % hp(b).encode()):
        zset(kz, znode_path, data)
        f = wait_state(px, "NO_MASTER", timeout=5)
        assert f.get("reason") == "no master in znode", (data, fmt_info(f))
        with px.raw() as c:
            assert tryagain(c.call("SET", "x", "1")) == "no master in znode"
        zset(kz, znode_path, rf_json(hp(b)))
        wait_master(px, hp(b), timeout=5)
        with px.raw() as c:
            assert c.call("SET", "x", "b") == "OK"
        zset(kz, znode_path, rf_json(hp(a)))
        wait_master(px, hp(a), timeout=5)
    assert a.client().get("x") is None and b.client().get("x") == b"b"


GARBAGE = [b"garbage", b"127.0.0.1", b"127.0.0.1:notaport", b"127.0.0.1:99999", b":6379",
           b'{"master":', b'{"master":42}', b"\xff\xfe\x00binary", b"x" * 5000]


def test_garbage_data(zk_server, kz, zk_proxy_factory, two, znode_path):
    """Data that does not parse: BAD_DATA (`bad data in znode`), nothing
    forwarded; the process survives; a good value afterwards: READY."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"on-no-master": "tryagain"})
    wait_master(px, hp(a))
    for i, data in enumerate(GARBAGE):
        zset(kz, znode_path, data)
        f = wait_state(px, "BAD_DATA", timeout=5, what="BAD_DATA after %r" % data[:40])
        assert f.get("reason") == "bad data in znode", (data[:40], fmt_info(f))
        with px.raw() as c:
            assert tryagain(c.call("SET", "g%d" % i, "1")) == "bad data in znode", data[:40]
        target = (a, b)[i % 2]
        zset(kz, znode_path, plain(hp(target)))
        wait_master(px, hp(target), timeout=5)
    assert a.client().keys("g*") == [] and b.client().keys("g*") == []
    assert "bad data in znode" in open(px.logpath, errors="replace").read(), px.log_tail()


def test_empty_znode_gates(zk_server, kz, zk_proxy_factory, two, znode_path):
    """An empty znode names no master: the pool gates (NO_MASTER or BAD_DATA)."""
    a, _ = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"on-no-master": "tryagain"})
    wait_master(px, hp(a))
    zset(kz, znode_path, b"")
    f = wait_state(px, ("NO_MASTER", "BAD_DATA"), timeout=5)
    want = {"NO_MASTER": "no master in znode", "BAD_DATA": "bad data in znode"}[f["state"]]
    assert f.get("reason") == want, fmt_info(f)
    print("empty znode -> state %s, reason %r" % (f["state"], f["reason"]))
    with px.raw() as c:
        assert tryagain(c.call("PING")) == want


@pytest.mark.parametrize("fmt,encode_master", [
    ("auto", lambda m: m.encode()),
    ("auto", lambda m: m.encode() + b"\n"),
    ("auto", lambda m: rf_json(m, slaves=["127.0.0.1:1"], unavailable=["127.0.0.1:2"])),
    ("plain", lambda m: m.encode()),
    ("plain", lambda m: m.encode() + b"\n"),
    ("json", lambda m: rf_json(m)),
    ("json", lambda m: b'{"master":"%s"}' % m.encode()),
], ids=["auto-plain", "auto-plain-nl", "auto-json", "plain", "plain-nl", "json", "json-master-only"])
def test_formats(zk_server, kz, zk_proxy_factory, two, znode_path, fmt, encode_master):
    a, b = two
    zset(kz, znode_path, encode_master(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"znode-format": fmt, "on-no-master": "tryagain"})
    wait_master(px, hp(a))
    with px.raw() as c:
        assert c.call("SET", "f", "a") == "OK"
    zset(kz, znode_path, encode_master(hp(b)))
    wait_master(px, hp(b), timeout=5)
    with px.raw() as c:
        assert c.call("SET", "f", "b") == "OK"
    assert a.client().get("f") == b"a" and b.client().get("f") == b"b"


@pytest.mark.parametrize("fmt,data", [("plain", "json"), ("json", "plain")])
def test_forced_format_rejects_the_other(zk_server, kz, zk_proxy_factory, two, znode_path, fmt, data):
    """znode-format plain does not accept JSON and json does not accept host:port."""
    a, _ = two
    enc = {"plain": plain(hp(a)), "json": rf_json(hp(a))}
    zset(kz, znode_path, enc[data])
    px = zk_proxy_factory(zk_server, znode_path, pool={"znode-format": fmt, "on-no-master": "tryagain"})
    f = wait_state(px, "BAD_DATA", timeout=5)
    assert f.get("reason") == "bad data in znode", fmt_info(f)
    zset(kz, znode_path, enc[fmt])
    wait_master(px, hp(a), timeout=5)


def test_chroot(zk_server, kz, zk_proxy_factory, two, znode_path):
    """`zookeeper h:p/chroot`: the pool's znode path is relative to the chroot."""
    a, b = two
    root = znode_path.rsplit("/", 1)[0]
    zset(kz, root + "/nodes", plain(hp(a)))
    zset(kz, "/nodes", plain(hp(b)))          # the same path outside the chroot: must not be read
    px = zk_proxy_factory(zk_server.hostport + root, "/nodes")
    wait_master(px, hp(a))
    zset(kz, root + "/nodes", plain(hp(b)))
    wait_master(px, hp(b), timeout=5)
    zdelete(kz, root + "/nodes")
    wait_state(px, "NO_NODE", timeout=5)
    zdelete(kz, "/nodes")


def test_gated_master_field_empty(zk_server, kz, zk_proxy_factory, two, znode_path):
    """PROXY INFO `master:` is empty whenever the znode names no usable master
    (NO_NODE, NO_MASTER, BAD_DATA), also after a master was known before."""
    a, _ = two
    px = zk_proxy_factory(zk_server, znode_path)
    for act, state in ((lambda: zdelete(kz, znode_path), "NO_NODE"),
                       (lambda: zset(kz, znode_path, rf_json(None)), "NO_MASTER"),
                       (lambda: zset(kz, znode_path, b"junk!"), "BAD_DATA")):
        zset(kz, znode_path, plain(hp(a)))
        wait_master(px, hp(a), timeout=5)
        act()
        f = wait_state(px, state, timeout=5)
        assert f.get("master") == "", "%s: %s" % (state, fmt_info(f))


# ---------------------------------------------------------------- gating replies

def test_tryagain_reasons(zk_server, kz, zk_proxy_factory, two, znode_path):
    """on-no-master tryagain: each gating cause is answered at once with its
    exact reason; pipelined commands each get one; the connection stays usable;
    nothing answered -TRYAGAIN ever reaches a server; the log names each
    transition's reason once, not once per command."""
    a, _ = two
    dead = free_port()
    px = zk_proxy_factory(zk_server, znode_path, pool={"on-no-master": "tryagain", "connect-timeout": "500"})
    steps = [
        (lambda: zdelete(kz, znode_path), "NO_NODE", "znode missing"),
        (lambda: zset(kz, znode_path, rf_json(None)), "NO_MASTER", "no master in znode"),
        (lambda: zset(kz, znode_path, b"junk!"), "BAD_DATA", "bad data in znode"),
    ]
    with px.raw() as c:
        for i, (act, state, reason) in enumerate(steps):
            zset(kz, znode_path, plain(hp(a)))
            wait_master(px, hp(a), timeout=5)
            act()
            f = wait_state(px, state, timeout=5)
            assert f.get("reason") == reason, fmt_info(f)
            t0 = time.monotonic()
            n = 30
            c.send(b"".join(encode("SET", "t%d:%d" % (i, j), "1") for j in range(n)))
            for j in range(n):
                assert tryagain(c.read_reply(timeout=5)) == reason, (state, j)
            assert time.monotonic() - t0 < 1.0, "TRYAGAIN not at once in tryagain mode"
            assert c.nothing_pending(0.05)
        tried = int(pool_info(px)["tryagain_replies"])
        assert tried >= 3 * 30, "tryagain_replies=%d" % tried
        # a znode naming a dead master: READY (the znode is fine) but the master is unreachable
        zset(kz, znode_path, plain("%s:%d" % (LOCALHOST, dead)))
        wait_master(px, "%s:%d" % (LOCALHOST, dead), timeout=5)
        assert tryagain(c.call("SET", "dead", "1", timeout=5)) == "master unreachable"
        switch_and_set(kz, znode_path, px, c, a, "ok", "1", timeout=5)
    assert a.client().keys("t*") == [] and a.client().get("ok") == b"1"
    log = open(px.logpath, errors="replace").read()
    for _, state, reason in steps:
        n = log.count(reason)
        assert 1 <= n <= 3, "log mentions %r %d times for one transition (30 TRYAGAIN replies):\n%s" % (
            reason, n, px.log_tail(30))


@pytest.mark.parametrize("reason_setup", ["missing", "null"])
def test_block_timeout(zk_server, kz, zk_proxy_factory, znode_path, reason_setup):
    """on-no-master block: held for about block-timeout, then -TRYAGAIN <reason>,
    for every pipelined command; the connection stays open."""
    if reason_setup == "missing":
        zdelete(kz, znode_path)
        state, reason = "NO_NODE", "znode missing"
    else:
        zset(kz, znode_path, rf_json(None))
        state, reason = "NO_MASTER", "no master in znode"
    px = zk_proxy_factory(zk_server, znode_path, pool={"on-no-master": "block", "block-timeout": "1000"})
    wait_state(px, state)
    with px.raw() as c:
        t0 = time.monotonic()
        c.send(encode("SET", "k", "v") + encode("GET", "k") + encode("PING"))
        time.sleep(0.7)
        assert c.nothing_pending(0.01), "answered before block-timeout: %r" % c.pending()
        assert tryagain(c.read_reply(timeout=5)) == reason
        took = time.monotonic() - t0
        assert 0.9 <= took <= 2.0, "first TRYAGAIN after %.2fs with block-timeout 1000" % took
        for _ in range(2):
            assert tryagain(c.read_reply(timeout=3)) == reason
        assert time.monotonic() - t0 <= 2.5
        assert c.nothing_pending(0.05) and not c.eof
        # documented (src/client.c no_master): once a client's block-timeout has
        # passed, its later requests are refused at once until one gets through
        t1 = time.monotonic()
        assert tryagain(c.call("PING", timeout=5)) == reason
        assert time.monotonic() - t1 < 0.5
    # a new connection is held again for the full block-timeout
    with px.raw() as c:
        t1 = time.monotonic()
        assert tryagain(c.call("PING", timeout=5)) == reason
        assert 0.9 <= time.monotonic() - t1 <= 2.0


@contextlib.contextmanager
def rewriting(kz, path, data, every):
    """A director rewriting the znode with data every `every` seconds while
    the block runs. Yields the list of the rewriter's exceptions (repr), for
    the test to check after the block."""
    stop = threading.Event()
    errors = []

    def rewriter():
        try:
            while not stop.wait(every):
                zset(kz, path, data)
        except Exception as e:          # pragma: no cover - reported by the test
            errors.append(repr(e))

    th = threading.Thread(target=rewriter, daemon=True)
    th.start()
    try:
        yield errors
    finally:
        stop.set()
        th.join(5)


# ---------------------------------------------------------------- znode-max-age

def test_znode_max_age(zk_server, kz, zk_proxy_factory, two, znode_path):
    """znode-max-age 1500: rewritten every 300 ms it never goes STALE and
    commands keep working; not rewritten for longer: STALE (`znode stale`),
    gated; rewritten again: READY.  (Block mode: each rewrite gates for one
    read round trip, SYNCING, which a held command does not notice.)"""
    a, _ = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"znode-max-age": "1500", "block-timeout": "500"})
    wait_master(px, hp(a))
    with rewriting(kz, znode_path, plain(hp(a)), 0.3) as errors:
        states = {}
        with px.raw() as c:
            t_end = time.monotonic() + 3.5
            i = 0
            while time.monotonic() < t_end:
                f = pool_info(px)
                states[f.get("state")] = states.get(f.get("state"), 0) + 1
                assert f.get("state") in ("READY", "SYNCING"), \
                    "gated while rewritten every 300 ms: %s" % fmt_info(f)
                assert c.call("SET", "live", i) == "OK"
                i += 1
                time.sleep(0.05)
        print("states sampled while rewritten every 300 ms: %r" % states)
    assert not errors, errors
    t_stop = time.monotonic()
    f = wait_state(px, "STALE", timeout=4)
    took = time.monotonic() - t_stop
    assert f.get("reason") == "znode stale", fmt_info(f)
    assert took <= 2.8, "STALE %.2fs after the last rewrite (max-age 1.5 s)" % took
    assert took >= 0.8, "STALE only %.2fs after the last rewrite (max-age 1.5 s)" % took
    with px.raw() as c:
        assert tryagain(c.call("SET", "stale", "1")) == "znode stale"
    zset(kz, znode_path, plain(hp(a)))
    wait_master(px, hp(a), timeout=3)
    assert a.client().get("stale") is None


def test_znode_max_age_old_at_start(zk_server, kz, zk_proxy_factory, two, znode_path):
    """A znode last written longer ago than znode-max-age is STALE right away."""
    a, _ = two
    zset(kz, znode_path, plain(hp(a)))
    time.sleep(1.2)
    px = zk_proxy_factory(zk_server, znode_path, pool={"znode-max-age": "1000", "on-no-master": "tryagain"})
    f = wait_state(px, "STALE", timeout=3)
    assert f.get("reason") == "znode stale"
    with px.raw() as c:
        assert tryagain(c.call("PING")) == "znode stale"


# ---------------------------------------------------------------- ACLs and auth

def _auth_globals(tmp_path, creds):
    """The global directive for digest auth: the brief's `zk-auth digest user:pw`,
    or the spelling this build accepts (`zk-auth-digest user:pw`)."""
    import subprocess
    from conftest import RZPROXY
    for key, val in (("zk-auth", "digest " + creds), ("zk-auth-digest", creds)):
        p = tmp_path / "authprobe.conf"
        p.write_text("zookeeper 127.0.0.1:1\n%s %s\npool main\n  listen 127.0.0.1:%d\n  znode /x\n"
                     % (key, val, free_port()))
        if subprocess.run([RZPROXY, "--test-conf", str(p)], capture_output=True, timeout=10).returncode == 0:
            if key != "zk-auth":
                print("NOTE: `zk-auth digest user:pw` rejected; using `%s %s`" % (key, val))
            return {key: val}
    pytest.fail("neither `zk-auth digest %s` nor `zk-auth-digest %s` is accepted by --test-conf" % (creds, creds))


def test_auth_digest_reads_acl_znode(zk_server, kz_factory, zk_proxy_factory, two, znode_path, tmp_path):
    """A znode readable only by digest user rzuser: a proxy with those credentials reads it."""
    from kazoo.security import make_digest_acl
    a, b = two
    owner = kz_factory(zk_server.hostport, auth_data=[("digest", "rzuser:s3cret")])
    acl = [make_digest_acl("rzuser", "s3cret", all=True)]
    zdelete(owner, znode_path)
    zset(owner, znode_path, plain(hp(a)), acl=acl)
    assert owner.get_acls(znode_path)[0] == acl
    px = zk_proxy_factory(zk_server, znode_path, globals_=_auth_globals(tmp_path, "rzuser:s3cret"))
    wait_master(px, hp(a))
    with px.raw() as c:
        assert c.call("SET", "acl", "1") == "OK"
    zset(owner, znode_path, plain(hp(b)))
    wait_master(px, hp(b), timeout=5)
    assert a.client().get("acl") == b"1"


@pytest.mark.parametrize("creds", [None, "rzuser:wrong"], ids=["no-auth", "wrong-password"])
def test_auth_lacking_gates(zk_server, kz_factory, zk_proxy_factory, two, znode_path, tmp_path, creds):
    """A znode the proxy may not read (NoAuth): READ_ERROR (`znode read failed`),
    never READY, commands gated with that reason."""
    from kazoo.security import make_digest_acl
    a, _ = two
    owner = kz_factory(zk_server.hostport, auth_data=[("digest", "rzuser:s3cret")])
    zdelete(owner, znode_path)
    zset(owner, znode_path, plain(hp(a)), acl=[make_digest_acl("rzuser", "s3cret", all=True)])
    g = _auth_globals(tmp_path, creds) if creds else {}
    px = zk_proxy_factory(zk_server, znode_path, globals_=g, pool={"on-no-master": "tryagain"})
    f = wait_state(px, ("READ_ERROR", "READY", "NO_NODE", "NO_MASTER", "BAD_DATA", "AUTH_FAILED", "EXPIRED"),
                   timeout=5)
    print("znode without read permission: state=%s reason=%r" % (f.get("state"), f.get("reason")))
    assert f.get("master") == "", fmt_info(f)
    # README "ZooKeeper master discovery": READ_ERROR / `znode read failed`
    assert (f.get("state"), f.get("reason")) == ("READ_ERROR", "znode read failed"), fmt_info(f)
    # the ACL is read only behind a successful read of the data: unknown
    assert f.get("znode_world_writable") == "-1", f
    with px.raw() as c:
        assert tryagain(c.call("SET", "noauth", "1")) == f["reason"]
    assert a.client().get("noauth") is None
    # stays so (it must not flap to READY)
    for _ in range(10):
        assert pool_info(px).get("state") == f["state"]
        time.sleep(0.05)


# ---------------------------------------------------------------- mixed pools

def test_static_pool_alongside_znode_pool(zk_server, kz, zk_proxy_factory, two, znode_path):
    """A `master` pool and a `znode` pool in one process: the static one keeps
    working whatever the znode does."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    sport = free_port()
    px = zk_proxy_factory(zk_server, znode_path, pool={"on-no-master": "tryagain"},
                          extra_pools=[("static", sport, {"master": hp(b)})])
    wait_master(px, hp(a))
    st = pool_info(px, "static", port=sport)       # PROXY INFO shows the listener's pool
    assert st.get("master_source") == "static", st
    assert st.get("state") == "READY" and st.get("master") == hp(b), st
    assert pool_info(px).get("master_source") == "zookeeper"
    with RespConn.tcp(sport) as s, px.raw() as z:
        assert z.call("SET", "via", "znode") == "OK"
        assert s.call("SET", "via", "static") == "OK"
        zdelete(kz, znode_path)
        wait_state(px, "NO_NODE", timeout=5)
        assert tryagain(z.call("GET", "via")) == "znode missing"
        for i in range(20):
            assert s.call("INCR", "static-n") == i + 1
        assert pool_info(px, "static", port=sport).get("state") == "READY"
        zset(kz, znode_path, plain(hp(a)))
        wait_master(px, hp(a), timeout=5)
        assert z.call("GET", "via") == b"znode"
        assert s.call("GET", "via") == b"static"


# ---------------------------------------------------------------- logs

def test_state_transitions_logged(zk_server, kz, zk_proxy_factory, two, znode_path):
    """One log line per state transition, naming the new state and its reason:
    NO_NODE, NO_MASTER and BAD_DATA are each entered twice here, so exactly two
    lines name each of them together with its reason (not one per command)."""
    a, _ = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"on-no-master": "tryagain"})
    wait_master(px, hp(a))
    steps = [(lambda: zdelete(kz, znode_path), "NO_NODE", "znode missing"),
             (lambda: zset(kz, znode_path, rf_json(None)), "NO_MASTER", "no master in znode"),
             (lambda: zset(kz, znode_path, b"\x01garbage"), "BAD_DATA", "bad data in znode")]
    with px.raw() as c:
        for _ in range(2):
            for act, state, reason in steps:
                act()
                wait_state(px, state, timeout=5)
                for _ in range(10):
                    assert tryagain(c.call("PING")) == reason
                zset(kz, znode_path, plain(hp(a)))
                wait_master(px, hp(a), timeout=5)
    lines = open(px.logpath, errors="replace").read().splitlines()
    for _, state, reason in steps:
        hits = [l for l in lines if state in l and reason in l]
        assert len(hits) == 2, "%d log lines name %s with %r (entered twice):\n%s" % (
            len(hits), state, reason, "\n".join(hits) or px.log_tail(40))
        assert all("main" in l for l in hits), hits


# ---------------------------------------------------------------- several pools, under load

def test_two_znode_pools_one_session(zk_server, kz, zk_proxy_factory, redis_factory, znode_path):
    """Two pools on two znodes share one ZooKeeper session; each follows its own
    znode only."""
    a, b, c_ = redis_factory(), redis_factory(), redis_factory()
    other = znode_path + "-other"
    zset(kz, znode_path, plain(hp(a)))
    zset(kz, other, plain(hp(b)))
    oport = free_port()
    before = zk_server.session_ids()
    px = zk_proxy_factory(zk_server, znode_path, extra_pools=[("other", oport, {"znode": other})])
    f1 = wait_master(px, hp(a))
    wait_for(lambda: pool_info(px, "other", port=oport).get("master") == hp(b), timeout=5, what="pool other on b")
    f2 = pool_info(px, "other", port=oport)
    assert f1["zk_session_id"] == f2["zk_session_id"], (f1["zk_session_id"], f2["zk_session_id"])
    assert len(zk_server.session_ids() - before) == 1, "the proxy opened %d sessions" % len(
        zk_server.session_ids() - before)
    zset(kz, other, plain(hp(c_)))
    wait_for(lambda: pool_info(px, "other", port=oport).get("master") == hp(c_), timeout=5, what="pool other on c")
    assert pool_info(px).get("master") == hp(a)
    with px.raw() as m, RespConn.tcp(oport) as o:
        assert m.call("SET", "p", "main") == "OK"
        assert o.call("SET", "p", "other") == "OK"
    assert a.client().get("p") == b"main" and c_.client().get("p") == b"other" and b.client().get("p") is None
    zdelete(kz, other)


def _log_times(px, text):
    """Unix times of the log lines containing `text` (log stamps are local time)."""
    import datetime
    out = []
    for line in open(px.logpath, errors="replace").read().splitlines():
        if text in line:
            stamp = " ".join(line.split()[:2])
            out.append(datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp())
    return out


SWITCH_SLACK = 0.010     # forwarded before the change, run by the old master after it


@pytest.mark.parametrize("how", ["set", "delete-create"])
def test_switch_under_load_nothing_to_old_master(zk_server, kz, zk_proxy_factory, two, znode_path, how):
    """Writers keep going through the proxy while the znode moves from a to b
    (rewritten, or deleted then created).  Once the proxy has seen the change
    (its log line leaving READY), no write reaches a: none a client sent
    after that line (client send times vs log times, 1 ms for the log's
    millisecond stamps), and none that a ran later than SWITCH_SLACK after
    it (MONITOR times: a command forwarded just before the change may be
    flushed and run a little after it, 2.3 ms once on a loaded machine);
    every acknowledged write is on a or b, and a's writes all come before
    b's."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    # READY -> SYNCING on a rewrite is routine and logged at info
    px = zk_proxy_factory(zk_server, znode_path, pool={"block-timeout": "8000"},
                          globals_={"loglevel": "info"})
    wait_master(px, hp(a))
    mon = RespConn.tcp(a.port, timeout=10)
    assert mon.call("MONITOR") == "OK"
    stop = threading.Event()
    acked, errors, sent = [], [], {}

    def writer(idx):
        try:
            with RespConn.tcp(px.port, timeout=15) as c:
                n = 0
                while not stop.is_set():
                    key = "w:%d:%d" % (idx, n)
                    sent[key] = time.time()
                    rep = c.call("SET", key, n, timeout=15)
                    (acked if rep == "OK" else errors).append(key if rep == "OK" else (key, rep))
                    n += 1
        except Exception as e:
            errors.append(("writer %d" % idx, repr(e)))

    ths = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(4)]
    for t in ths:
        t.start()
    lines = []
    try:
        wait_for(lambda: len(acked) >= 400, timeout=10, what="writes on a")
        if how == "set":
            zset(kz, znode_path, plain(hp(b)))
        else:
            zdelete(kz, znode_path)
            time.sleep(0.2)
            zset(kz, znode_path, plain(hp(b)))
        wait_master(px, hp(b), timeout=5)
        n = len(acked)
        wait_for(lambda: len(acked) >= n + 400, timeout=10, what="writes on b")
    finally:
        stop.set()
        for t in ths:
            t.join(20)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                lines.append(str(mon.read_reply(timeout=0.2)))
            except Exception:
                break
        mon.close()
    assert not errors, errors[:5]
    t_seen = [t for t in _log_times(px, "READY -> ")]
    assert t_seen, "no transition out of READY logged:\n" + px.log_tail()
    t0 = t_seen[-1] if how == "set" else t_seen[0]
    writes = [(l, float(l.split()[0]), l.split('"SET" "', 1)[1].split('"', 1)[0])
              for l in lines if '"SET" "w:' in l]
    late = [l for l, ran, key in writes if ran > t0 + SWITCH_SLACK or sent[key] > t0 + 0.001]
    assert not late, "%d writes reached the old master after the proxy logged the change (%.3f): %s" % (
        len(late), t0, late[:3])
    ka = {k.decode() for k in a.client().keys("w:*")}
    kb = {k.decode() for k in b.client().keys("w:*")}
    assert set(acked) <= (ka | kb) and not (ka & kb)
    assert kb, "nothing on the new master"
    for i in range(4):
        on_a = [int(k.split(":")[2]) for k in ka if k.startswith("w:%d:" % i)]
        on_b = [int(k.split(":")[2]) for k in kb if k.startswith("w:%d:" % i)]
        assert not on_a or not on_b or max(on_a) < min(on_b), \
            "writer %d: write %d on the old master after write %d on the new" % (i, max(on_a), min(on_b))


def test_rewrite_same_master_no_tryagain(zk_server, kz, zk_proxy_factory, two, znode_path):
    """A director rewriting the znode with the same master (redis_failover's
    node manager does so every few seconds) gates each time for one read
    (SYNCING). That short gate holds commands even with `on-no-master
    tryagain`: a client pipelining through the rewrites sees no error and
    every write lands on the master, in order."""
    a, _ = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"on-no-master": "tryagain"})
    wait_master(px, hp(a))
    replies = []
    with rewriting(kz, znode_path, plain(hp(a)), 0.05) as failures:
        with px.raw() as c:
            t_end = time.monotonic() + 2.0
            n = 0
            while time.monotonic() < t_end and n < 400000:
                c.send(b"".join(encode("RPUSH", "rw", n + k) for k in range(10)))
                for k in range(10):
                    replies.append(c.read_reply(timeout=10))
                n += 10
    assert not failures, failures
    errors = [r for r in replies if isinstance(r, Error)]
    assert not errors, "%d errors among %d replies, e.g. %r" % (len(errors), len(replies), errors[:3])
    assert int(pool_info(px)["znode_version"]) >= 10, "the znode was not rewritten often"
    got = a.client().lrange("rw", 0, -1)
    assert [int(x) for x in got] == list(range(len(replies)))


def test_held_clients_half_closed_and_bounded(zk_server, kz, zk_proxy_factory, two, znode_path):
    """While the znode is missing, a held client that shuts its socket for
    writing keeps its place: its command is sent once a master is named and
    its reply delivered (a client that closes outright looks the same to
    the proxy, a FIN: its command runs too, as redis runs every command it
    read before an EOF). A client pipelining far more than it may buffer is
    read no further (proxy memory stays bounded); once the znode appears
    every command runs, in order."""
    a, _ = two
    zdelete(kz, znode_path)
    px = zk_proxy_factory(zk_server, znode_path, pool={"block-timeout": "30000"})
    wait_state(px, "NO_NODE")
    base = rss_kb(px.pid)
    reading = []
    for i in range(20):
        c = px.raw()
        c.send(encode("SET", "gone:%d" % i, "x"))
        wait_for(lambda: int(pool_info(px).get("clients_held", "0")) >= i + 1, timeout=5,
                 what="client %d held" % i)
        if i % 2:
            c.close()
        else:
            c.sock.shutdown(socket.SHUT_WR)
            reading.append(c)
    time.sleep(0.3)
    assert pool_info(px).get("clients_held") == "20", pool_info(px)
    n, pad = 30000, "p" * 1000           # about 30 MB of held commands
    big = px.raw(timeout=60)
    sent = threading.Event()

    def sender():
        big.send(b"".join(encode("RPUSH", "big", i, pad) for i in range(n)))
        sent.set()

    th = threading.Thread(target=sender, daemon=True)
    th.start()
    try:
        wait_for(lambda: pool_info(px).get("clients_held") == "21", timeout=5, what="big client held")
        time.sleep(1.0)
        assert not sent.is_set(), "the proxy read 30 MB of commands it cannot forward yet"
        grown = rss_kb(px.pid) - base
        assert grown < 20 * 1024, "proxy grew by %d kB holding one client" % grown
        zset(kz, znode_path, plain(hp(a)))
        for i in range(n):
            rep = big.read_reply(timeout=30)
            assert rep == 2 * (i + 1), "reply %d: %r" % (i, rep)   # pushes i and pad
        assert sent.wait(10)
        for c in reading:
            assert c.read_reply(timeout=10) == "OK"
            assert not c.nothing_pending(5) and c.eof, "a half-closed client is closed after its reply"
            c.close()
    finally:
        big.close()
        th.join(10)
    assert a.client().llen("big") == 2 * n
    assert all(a.client().get("gone:%d" % i) == b"x" for i in range(20))
    wait_for(lambda: pool_info(px).get("clients") == "1", timeout=5,
             what="every client gone but the one asking (%s)" % pool_info(px))


def test_znode_names_a_replica_fences(zk_server, kz, zk_proxy_factory, two, znode_path):
    """A stale director names a replica: in tryagain mode the refused write
    (it never ran) is answered -TRYAGAIN master is read-only, the replica's
    own -READONLY never reaches the client; the pool gates (FENCED)
    and stays gated while the znode keeps naming the replica, even after a
    re-read; once the znode names the real master, writes land there."""
    a, b = two
    b.client().slaveof(LOCALHOST, a.port)
    wait_for(lambda: b.client().info("replication")["master_link_status"] == "up", timeout=10,
             what="replica link up")
    zset(kz, znode_path, plain(hp(b)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"on-no-master": "tryagain"})
    wait_master(px, hp(b))
    with px.raw() as c:
        rep = c.call("SET", "f", "1")
        assert rep == "TRYAGAIN master is read-only", rep
        f = wait_state(px, "FENCED")
        assert f.get("reason") == "master is read-only" and f.get("master") == "", fmt_info(f)
        rep = c.call("SET", "f", "2")
        assert rep == "TRYAGAIN master is read-only", rep
        zset(kz, znode_path, plain(hp(b)))      # rewritten, still the replica: a newer version
        time.sleep(0.3)
        rep = c.call("SET", "f", "3")
        assert rep == "TRYAGAIN master is read-only", rep
        wait_state(px, "FENCED")
        switch_and_set(kz, znode_path, px, c, a, "f", "4")
    assert a.client().get("f") == b"4"


def test_switch_time_reported(zk_server, kz, zk_proxy_factory, two, znode_path):
    """Every switch is measured, from the znode event to the first command
    forwarded to the new master: PROXY INFO last_switch_ms and one log line.
    After a delete and a later create, it is timed from the create (the
    second spent without a znode is not switch time). The first master at
    start is not a switch."""
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"block-timeout": "10000"})
    wait_master(px, hp(a))
    with px.raw() as c:
        assert c.call("SET", "s", "1") == "OK"
        assert pool_info(px).get("last_switch_ms") == "-1"
        zdelete(kz, znode_path)
        wait_state(px, "NO_NODE")
        c.send(encode("SET", "s", "2"))
        time.sleep(1.0)
        zset(kz, znode_path, plain(hp(b)))
        assert c.read_reply(timeout=10) == "OK"
    f = pool_info(px)
    took = int(f.get("last_switch_ms", "-1"))
    assert 0 <= took < 1000, fmt_info(f)
    assert b.client().get("s") == b"2" and a.client().get("s") == b"1"
    assert px.log_tail().count("first command to master %s forwarded" % hp(b)) == 1, px.log_tail()


def _acl_user(srv):
    srv.client().execute_command("ACL", "SETUSER", "app", "on", ">apppw", "~*", "+@all")


def test_pinned_state_survives_switch(zk_server, kz, zk_proxy_factory, two, znode_path):
    """An idle pinned client that did AUTH (ACL user), SELECT 3 and CLIENT
    SETNAME keeps all three on the new master: the proxy replays them, with
    their replies swallowed, before the client's next command."""
    a, b = two
    _acl_user(a)
    _acl_user(b)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path)
    wait_master(px, hp(a))
    with px.raw() as c:
        assert c.call("AUTH", "app", "apppw") == "OK"
        assert c.call("SELECT", "3") == "OK"
        assert c.call("CLIENT", "SETNAME", "moved-client") == "OK"
        assert c.call("SET", "k", "on-a") == "OK"
        switch_and_set(kz, znode_path, px, c, b, "k", "on-b")
        assert c.call("CLIENT", "GETNAME") == b"moved-client"
        assert c.call("ACL", "WHOAMI") == b"app"
        assert c.nothing_pending(0.1)
    assert a.client(db=3).get("k") == b"on-a"
    assert b.client(db=3).get("k") == b"on-b" and b.client(db=0).get("k") is None


def test_pinned_state_that_cannot_be_restored_closes(zk_server, kz, zk_proxy_factory, two, znode_path):
    """The new master refuses the replayed AUTH (no such user there): the
    client gets an error saying so and its connection closes; the command it
    sent never runs on the new master."""
    a, b = two
    _acl_user(a)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path)
    wait_master(px, hp(a))
    with px.raw() as c:
        assert c.call("AUTH", "app", "apppw") == "OK"
        assert c.call("SELECT", "5") == "OK"
        zset(kz, znode_path, plain(hp(b)))
        wait_master(px, hp(b))
        rep = c.call("SET", "x", "1")
        assert isinstance(rep, Error) and "could not be restored" in rep, rep
        assert c.is_closed(5)
    assert b.client(db=5).get("x") is None and b.client(db=0).get("x") is None


def test_verify_role_refuses_a_replica(zk_server, kz, zk_proxy_factory, two, znode_path):
    """verify-role yes: the znode names a replica; the proxy asks ROLE before
    sending anything, so not even a read reaches the replica through it; the
    pool gates (FENCED) until the znode names the master."""
    a, b = two
    b.client().slaveof(LOCALHOST, a.port)
    wait_for(lambda: b.client().info("replication")["master_link_status"] == "up", timeout=10,
             what="replica link up")
    zset(kz, znode_path, plain(hp(b)))
    px = zk_proxy_factory(zk_server, znode_path,
                          pool={"verify-role": "yes", "on-no-master": "tryagain"})
    wait_master(px, hp(b))
    before = int(b.client().info("stats")["total_commands_processed"])
    with px.raw() as c:
        rep = c.call("GET", "v")
        assert rep == "TRYAGAIN master is read-only", rep
        f = wait_state(px, "FENCED")
        assert f.get("reason") == "master is read-only", fmt_info(f)
        # only the proxy's ROLE (and our own INFO) reached the replica
        after = int(b.client().info("stats")["total_commands_processed"])
        assert after - before <= 3, (before, after)
        switch_and_set(kz, znode_path, px, c, a, "v", "1")
    assert a.client().get("v") == b"1"
    assert "verify-role: ROLE says" in px.log_tail(80), px.log_tail(80)
