"""Connection state through the proxy: transactions, blocking commands,
pub/sub, SELECT, AUTH/ACL, HELLO 3 / RESP3, CLIENT SETNAME.
Every test runs in both backend-sharing modes."""

import time

import pytest
import redis

from conftest import (Error, Map, RedisServer, encode, expect_bytes, parse_reply, wait_for)


# ---------------------------------------------------------------- MULTI / EXEC / WATCH

def test_multi_exec(proxy, r):
    with proxy.raw() as c:
        c.send(encode("MULTI") + encode("SET", "t", "1") + encode("INCR", "t") + encode("GET", "t")
               + encode("EXEC"))
        expect_bytes(c, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n:2\r\n$1\r\n2\r\n")
        # a runtime error inside EXEC is an element of the array
        c.send(encode("MULTI") + encode("SET", "s", "str") + encode("INCR", "s") + encode("EXEC"))
        assert c.read_raw_reply() == b"+OK\r\n"
        assert c.read_raw_reply() == b"+QUEUED\r\n"
        assert c.read_raw_reply() == b"+QUEUED\r\n"
        res = c.read_reply()
        assert res[0] == "OK" and isinstance(res[1], Error) and "not an integer" in res[1]
        # a queuing error aborts
        c.send(encode("MULTI") + encode("SET", "x") + encode("EXEC"))
        assert c.read_raw_reply() == b"+OK\r\n"
        assert isinstance(c.read_reply(), Error)
        assert c.read_reply().startswith("EXECABORT")
        # the connection is usable afterwards
        assert c.call("GET", "t") == b"2"
    assert r.get("t") == b"2"
    assert r.exists("x") == 0


def test_discard(proxy, r):
    r.set("d", "orig")
    with proxy.raw() as c:
        c.send(encode("MULTI") + encode("SET", "d", "changed") + encode("DISCARD") + encode("GET", "d"))
        expect_bytes(c, b"+OK\r\n+QUEUED\r\n+OK\r\n$4\r\norig\r\n")
        assert c.call("DISCARD") == Error("ERR DISCARD without MULTI")
        assert c.call("EXEC") == Error("ERR EXEC without MULTI")
    assert r.get("d") == b"orig"


def test_watch_conflict(proxy, r):
    other = proxy.client()
    with proxy.raw() as a:
        assert a.call("SET", "w", "0") == "OK"
        assert a.call("WATCH", "w") == "OK"
        assert other.set("w", "other") is True        # conflicting write, another proxy client
        a.send(encode("MULTI") + encode("SET", "w", "mine") + encode("EXEC"))
        expect_bytes(a, b"+OK\r\n+QUEUED\r\n*-1\r\n")
        assert a.call("GET", "w") == b"other"
        # without a conflict the transaction goes through
        assert a.call("WATCH", "w") == "OK"
        a.send(encode("MULTI") + encode("SET", "w", "mine") + encode("EXEC"))
        expect_bytes(a, b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n")
        # UNWATCH: no conflict detection any more
        assert a.call("WATCH", "w") == "OK"
        assert a.call("UNWATCH") == "OK"
        other.set("w", "again")
        a.send(encode("MULTI") + encode("INCR", "wc") + encode("EXEC"))
        expect_bytes(a, b"+OK\r\n+QUEUED\r\n*1\r\n:1\r\n")
    assert r.get("w") == b"again"
    other.close()


def test_watch_conflict_redis_py(proxy, r):
    """The same, the way redis-py applications do optimistic locking."""
    c = proxy.client()
    other = proxy.client()
    c.set("bal", 10)
    with c.pipeline() as p:
        p.watch("bal")
        cur = int(p.get("bal"))
        other.incr("bal", 5)
        p.multi()
        p.set("bal", cur - 1)
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.get("bal") == b"15"
    c.close()
    other.close()


# ---------------------------------------------------------------- blocking

def _wait_blocked(r, n=1):
    wait_for(lambda: int(r.info("clients")["blocked_clients"]) >= n, timeout=5, what="%d blocked client(s)" % n)


def test_blpop_unblocked_by_other_client(proxy, r):
    pusher = proxy.client()
    with proxy.raw() as c:
        c.cmd("BLPOP", "bq", "0")
        _wait_blocked(r)
        assert c.nothing_pending(0.1)
        assert pusher.rpush("bq", "job1", "job2") == 2
        assert c.read_raw_reply(timeout=5) == b"*2\r\n$2\r\nbq\r\n$4\r\njob1\r\n"
        # the connection works normally afterwards
        assert c.call("LRANGE", "bq", "0", "-1") == [b"job2"]
        # timeout path
        t0 = time.monotonic()
        assert c.call("BLPOP", "empty", "0.2", timeout=5) is None
        assert time.monotonic() - t0 >= 0.15
    pusher.close()


def test_brpop_unblocked_by_other_client(proxy, r):
    pusher = proxy.client()
    with proxy.raw() as c:
        c.cmd("BRPOP", "q1", "q2", "5")
        _wait_blocked(r)
        pusher.lpush("q2", "a", "b")       # q2 = [b, a]; BRPOP pops "a"
        assert c.read_raw_reply(timeout=5) == b"*2\r\n$2\r\nq2\r\n$1\r\na\r\n"
        # BLMOVE too
        c.cmd("BLMOVE", "src", "dst", "LEFT", "RIGHT", "0")
        _wait_blocked(r)
        pusher.rpush("src", "moved")
        assert c.read_raw_reply(timeout=5) == b"$5\r\nmoved\r\n"
    assert r.lrange("dst", 0, -1) == [b"moved"]
    pusher.close()


def test_xread_block_unblocked_by_other_client(proxy, r):
    adder = proxy.client()
    with proxy.raw() as c:
        c.cmd("XREAD", "BLOCK", "0", "STREAMS", "st", "$")
        _wait_blocked(r)
        eid = adder.xadd("st", {"f": "v"}, id="1-1")
        assert eid == b"1-1"
        expect_bytes(c, b"*1\r\n*2\r\n$2\r\nst\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
                     timeout=5)
        assert c.call("XLEN", "st") == 1
    adder.close()


def test_blocked_client_does_not_stall_others(proxy, r):
    """While one client sits in BLPOP, other clients are served normally."""
    with proxy.raw() as blocked:
        blocked.cmd("BLPOP", "never", "0")
        _wait_blocked(r)
        c = proxy.client()
        for i in range(50):
            assert c.set("o%d" % i, i) is True
            assert c.get("o%d" % i) == str(i).encode()
        c.lpush("never", "x")
        assert blocked.read_reply(timeout=5) == [b"never", b"x"]
        c.close()


# ---------------------------------------------------------------- pub/sub

def test_subscribe_publish_unsubscribe(proxy, r):
    pub = proxy.client()
    with proxy.raw() as s:
        s.cmd("SUBSCRIBE", "ch1", "ch2")
        expect_bytes(s, b"*3\r\n$9\r\nsubscribe\r\n$3\r\nch1\r\n:1\r\n"
                        b"*3\r\n$9\r\nsubscribe\r\n$3\r\nch2\r\n:2\r\n")
        assert pub.publish("ch1", "hello") == 1
        assert pub.publish("ch2", "world") == 1
        assert pub.publish("ch3", "nobody") == 0
        expect_bytes(s, b"*3\r\n$7\r\nmessage\r\n$3\r\nch1\r\n$5\r\nhello\r\n"
                        b"*3\r\n$7\r\nmessage\r\n$3\r\nch2\r\n$5\r\nworld\r\n", timeout=5)
        # PING in RESP2 subscribed mode
        s.cmd("PING")
        assert s.read_raw_reply() == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        # a normal command is refused while subscribed (RESP2)
        s.cmd("GET", "x")
        e = s.read_reply()
        assert isinstance(e, Error) and "only" in e.lower(), e
        s.cmd("UNSUBSCRIBE")
        replies = [s.read_reply(), s.read_reply()]
        assert sorted(x[1] for x in replies) == [b"ch1", b"ch2"]
        assert all(x[0] == b"unsubscribe" for x in replies)
        assert sorted(x[2] for x in replies) == [0, 1]
        # normal commands again on the same connection
        s.send(encode("PING") + encode("SET", "after", "sub") + encode("GET", "after"))
        expect_bytes(s, b"+PONG\r\n+OK\r\n$3\r\nsub\r\n")
        assert pub.publish("ch1", "gone") == 0
        assert s.nothing_pending(0.2)
    pub.close()


def test_psubscribe(proxy, r):
    pub = proxy.client()
    with proxy.raw() as s:
        s.cmd("PSUBSCRIBE", "news.*")
        assert s.read_raw_reply() == b"*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n"
        assert pub.publish("news.tech", "rz") == 1
        assert pub.publish("sport", "no") == 0
        assert s.read_raw_reply(timeout=5) == (b"*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n"
                                               b"$9\r\nnews.tech\r\n$2\r\nrz\r\n")
        s.cmd("PUNSUBSCRIBE", "news.*")
        assert s.read_raw_reply() == b"*3\r\n$12\r\npunsubscribe\r\n$6\r\nnews.*\r\n:0\r\n"
        assert s.call("SET", "p", "1") == "OK"
        assert s.call("GET", "p") == b"1"
    pub.close()


def test_ssubscribe(proxy, r):
    pub = proxy.client()
    with proxy.raw() as s:
        s.cmd("SSUBSCRIBE", "shard1")
        assert s.read_raw_reply() == b"*3\r\n$10\r\nssubscribe\r\n$6\r\nshard1\r\n:1\r\n"
        assert pub.execute_command("SPUBLISH", "shard1", "sm") == 1
        assert s.read_raw_reply(timeout=5) == b"*3\r\n$8\r\nsmessage\r\n$6\r\nshard1\r\n$2\r\nsm\r\n"
        s.cmd("SUNSUBSCRIBE", "shard1")
        assert s.read_raw_reply() == b"*3\r\n$12\r\nsunsubscribe\r\n$6\r\nshard1\r\n:0\r\n"
        assert s.call("INCR", "ss") == 1
    pub.close()


def test_many_subscribers(proxy, r):
    """Several subscribers on one proxy each get every message."""
    subs = []
    try:
        for i in range(10):
            s = proxy.raw()
            s.cmd("SUBSCRIBE", "fan")
            assert s.read_reply() == [b"subscribe", b"fan", 1]
            subs.append(s)
        pub = proxy.client()
        assert pub.publish("fan", "m1") == 10
        assert pub.publish("fan", "m2") == 10
        for s in subs:
            assert s.read_reply(timeout=5) == [b"message", b"fan", b"m1"]
            assert s.read_reply(timeout=5) == [b"message", b"fan", b"m2"]
        pub.close()
    finally:
        for s in subs:
            s.close()


# ---------------------------------------------------------------- SELECT

def test_select_isolation(proxy, r):
    a = proxy.raw()
    b = proxy.raw()
    c = proxy.raw()         # stays in db 0
    try:
        assert a.call("SELECT", "1") == "OK"
        assert b.call("SELECT", "2") == "OK"
        a.send(encode("SET", "k", "in-db1") + encode("SET", "only1", "x"))
        b.send(encode("SET", "k", "in-db2"))
        c.send(encode("SET", "k", "in-db0"))
        assert a.read_reply() == "OK" and a.read_reply() == "OK"
        assert b.read_reply() == "OK"
        assert c.read_reply() == "OK"
        for _ in range(20):   # interleave many reads; nobody sees another db
            a.cmd("GET", "k")
            b.cmd("GET", "k")
            c.cmd("GET", "k")
            assert a.read_reply() == b"in-db1"
            assert b.read_reply() == b"in-db2"
            assert c.read_reply() == b"in-db0"
        assert c.call("EXISTS", "only1") == 0
        assert b.call("DBSIZE") == 1
        # a new client starts in db 0, even after others selected
        with proxy.raw() as d:
            assert d.call("GET", "k") == b"in-db0"
    finally:
        a.close(); b.close(); c.close()
    # direct check on the master
    assert r.get("k") == b"in-db0"
    assert r.execute_command("SELECT", 1) and r.get("k") == b"in-db1" and r.get("only1") == b"x"
    assert r.execute_command("SELECT", 2) and r.get("k") == b"in-db2"
    r.execute_command("SELECT", 0)


def test_select_redis_py_db_param(proxy, r):
    c3 = proxy.client(db=3)
    c0 = proxy.client()
    c3.set("dbk", "three")
    c0.set("dbk", "zero")
    assert c3.get("dbk") == b"three"
    assert c0.get("dbk") == b"zero"
    c3.close(); c0.close()


# ---------------------------------------------------------------- AUTH

@pytest.fixture(scope="module")
def redis_auth(tmp_path_factory):
    srv = RedisServer(str(tmp_path_factory.mktemp("redis-auth")),
                      extra_args=["--requirepass", "s3cret"]).start()
    yield srv
    srv.stop()


@pytest.fixture
def auth_admin(redis_auth):
    c = redis_auth.client(password="s3cret")
    c.flushall()
    yield c
    c.close()


def test_auth_requirepass(proxy_factory, redis_auth, auth_admin, sharing):
    px = proxy_factory(redis_auth, sharing=sharing)
    with px.raw() as anon, px.raw() as c:
        e = anon.call("GET", "k")
        assert isinstance(e, Error) and e.startswith("NOAUTH"), e
        e = c.call("AUTH", "wrong")
        assert isinstance(e, Error) and e.startswith("WRONGPASS"), e
        assert c.call("AUTH", "s3cret") == "OK"
        c.send(encode("SET", "k", "authed") + encode("GET", "k"))
        expect_bytes(c, b"+OK\r\n$6\r\nauthed\r\n")
        # the authenticated session must not leak to other clients
        e = anon.call("GET", "k")
        assert isinstance(e, Error) and e.startswith("NOAUTH"), e
        with px.raw() as fresh:
            e = fresh.call("SET", "k", "evil")
            assert isinstance(e, Error) and e.startswith("NOAUTH"), e
    assert auth_admin.get("k") == b"authed"
    # redis-py with a password
    c2 = px.client(password="s3cret")
    assert c2.incr("n") == 1
    c2.close()


def test_auth_acl_users(proxy_factory, redis_auth, auth_admin, sharing):
    auth_admin.execute_command("ACL", "SETUSER", "alice", "reset", "on", ">alicepw", "~alice:*", "+@all")
    auth_admin.execute_command("ACL", "SETUSER", "bob", "reset", "on", ">bobpw", "~bob:*",
                               "+get", "+set", "+acl|whoami", "+ping")
    try:
        px = proxy_factory(redis_auth, sharing=sharing)
        with px.raw() as a, px.raw() as b, px.raw() as anon:
            assert a.call("AUTH", "alice", "alicepw") == "OK"
            assert b.call("AUTH", "bob", "bobpw") == "OK"
            assert a.call("ACL", "WHOAMI") == b"alice"
            assert b.call("ACL", "WHOAMI") == b"bob"
            e = anon.call("ACL", "WHOAMI")
            assert isinstance(e, Error) and e.startswith("NOAUTH"), e
            assert a.call("SET", "alice:1", "a") == "OK"
            e = a.call("SET", "bob:1", "a")
            assert isinstance(e, Error) and e.startswith("NOPERM"), e
            assert b.call("SET", "bob:1", "b") == "OK"
            e = b.call("GET", "alice:1")
            assert isinstance(e, Error) and e.startswith("NOPERM"), e
            e = b.call("INCR", "bob:1")
            assert isinstance(e, Error) and e.startswith("NOPERM"), e
            e = a.call("AUTH", "bob", "wrongpw")
            assert isinstance(e, Error) and e.startswith("WRONGPASS"), e
            assert a.call("ACL", "WHOAMI") == b"alice"        # failed AUTH keeps the user
            # HELLO with AUTH
            with px.raw() as h:
                m = h.call("HELLO", "3", "AUTH", "bob", "bobpw")
                assert isinstance(m, Map), m
                assert m.todict()[b"proto"] == 3
                assert h.call("ACL", "WHOAMI") == b"bob"
                h.cmd("GET", "bob:1")
                assert h.read_raw_reply() == b"$1\r\nb\r\n"
        assert auth_admin.get("alice:1") == b"a"
        assert auth_admin.get("bob:1") == b"b"
    finally:
        auth_admin.execute_command("ACL", "DELUSER", "alice", "bob")


def test_acl_default_user_via_shared_clients(proxy_factory, redis_factory, sharing):
    """No requirepass: AUTH as an ACL user on one client, others stay 'default'."""
    srv = redis_factory()
    adm = srv.client()
    adm.execute_command("ACL", "SETUSER", "ro", "on", ">ropw", "~*", "+@read", "+acl|whoami")
    px = proxy_factory(srv, sharing=sharing)
    with px.raw() as ro, px.raw() as rw:
        assert ro.call("AUTH", "ro", "ropw") == "OK"
        assert rw.call("SET", "x", "1") == "OK"
        e = ro.call("SET", "x", "2")
        assert isinstance(e, Error) and e.startswith("NOPERM"), e
        assert ro.call("GET", "x") == b"1"
        assert rw.call("ACL", "WHOAMI") == b"default"
        assert rw.call("SET", "x", "3") == "OK"
    assert adm.get("x") == b"3"
    adm.close()


# ---------------------------------------------------------------- HELLO 3 / RESP3

def test_hello3_resp3_replies(proxy, r):
    with proxy.raw() as c:
        c.cmd("HELLO", "3")
        raw = c.read_raw_reply()
        assert raw.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), raw
        hello, _ = parse_reply(raw, 0)
        d = hello.todict()
        assert d[b"proto"] == 3 and d[b"version"].startswith(b"7.")
        c.send(encode("HSET", "h", "f", "v") + encode("HGETALL", "h") + encode("GET", "nokey")
               + encode("SADD", "s", "m") + encode("SMEMBERS", "s") + encode("ZADD", "z", "1.5", "m")
               + encode("ZSCORE", "z", "m") + encode("HGETALL", "nokey")
               + encode("SET", "k", "v") + encode("GET", "k"))
        expect_bytes(c, b":1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n_\r\n:1\r\n~1\r\n$1\r\nm\r\n:1\r\n"
                        b",1.5\r\n%0\r\n+OK\r\n$1\r\nv\r\n")
        # back to RESP2 on the same connection
        c.cmd("HELLO", "2")
        assert c.read_raw_reply().startswith(b"*14\r\n")
        c.send(encode("HGETALL", "h") + encode("GET", "nokey"))
        expect_bytes(c, b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n$-1\r\n")
    # other clients are untouched by this client's protocol switch
    with proxy.raw() as o:
        o.send(encode("HGETALL", "h") + encode("GET", "nokey"))
        expect_bytes(o, b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n$-1\r\n")


def test_resp3_does_not_leak_to_other_clients(proxy, r):
    r.hset("h", "f", "v")
    with proxy.raw() as c3, proxy.raw() as c2:
        assert isinstance(c3.call("HELLO", "3"), Map)
        for _ in range(10):
            c3.cmd("HGETALL", "h")
            c2.cmd("HGETALL", "h")
            assert c3.read_raw_reply() == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
            assert c2.read_raw_reply() == b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n"


def test_resp3_push_after_subscribe(proxy, r):
    pub = proxy.client()
    with proxy.raw() as c:
        assert isinstance(c.call("HELLO", "3"), Map)
        c.cmd("SUBSCRIBE", "ch")
        assert c.read_raw_reply() == b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
        assert pub.publish("ch", "hello") == 1
        assert c.read_raw_reply(timeout=5) == b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"
        # RESP3 allows normal commands while subscribed; replies and pushes interleave
        pub.set("k", "v")
        c.cmd("GET", "k")
        assert c.read_raw_reply() == b"$1\r\nv\r\n"
        c.cmd("PSUBSCRIBE", "p*")
        assert c.read_raw_reply() == b">3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:2\r\n"
        assert pub.publish("px", "pm") == 1
        assert c.read_raw_reply(timeout=5) == b">4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npx\r\n$2\r\npm\r\n"
        c.cmd("UNSUBSCRIBE", "ch")
        assert c.read_raw_reply() == b">3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:1\r\n"
        c.cmd("PUNSUBSCRIBE")
        assert c.read_raw_reply() == b">3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n"
        assert c.call("PING") == "PONG"
    pub.close()


def test_resp3_client_tracking_invalidation_push(proxy, r):
    writer = proxy.client()
    with proxy.raw() as c:
        assert isinstance(c.call("HELLO", "3"), Map)
        assert c.call("CLIENT", "TRACKING", "on") == "OK"
        writer.set("tk", "1")
        assert c.call("GET", "tk") == b"1"
        writer.set("tk", "2")
        assert c.read_raw_reply(timeout=5) == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\ntk\r\n"
        assert c.call("GET", "tk") == b"2"
    writer.close()


# ---------------------------------------------------------------- CLIENT

def test_client_setname_getname(proxy, r):
    """CLIENT SETNAME / GETNAME behave as on redis: the name is the
    client's own, validated as redis does, and cleared by an empty one."""
    with proxy.raw() as c, proxy.raw() as other:
        assert c.call("CLIENT", "GETNAME") is None
        assert c.call("CLIENT", "SETNAME", "rz-app-1") == "OK"
        assert c.call("CLIENT", "GETNAME") == b"rz-app-1"
        assert c.call("SET", "named", "yes") == "OK"
        # the name does not leak to other clients
        assert other.call("CLIENT", "GETNAME") is None
        assert other.call("GET", "named") == b"yes"
        rep = c.call("CLIENT", "SETNAME", "has space")
        assert rep == "ERR Client names cannot contain spaces, newlines or special characters.", rep
        assert c.call("CLIENT", "GETNAME") == b"rz-app-1"
        rep = c.call("CLIENT", "SETNAME")
        assert rep == "ERR wrong number of arguments for 'client|setname' command", rep
        assert c.call("CLIENT", "SETNAME", "") == "OK"
        assert c.call("CLIENT", "GETNAME") is None


@pytest.mark.proxy_only
def test_client_setname_answered_by_proxy(proxy, r):
    """The proxy answers CLIENT SETNAME itself (a shared connection must not
    take one client's name, and a name must not pin): the server never sees
    it, the client stays on its route, and PROXY CLIENTS shows the name."""
    with proxy.raw() as c:
        assert c.call("CLIENT", "SETNAME", "rz-app-1") == "OK"
        assert c.call("SET", "named", "yes") == "OK"
        assert not [x for x in r.client_list() if x.get("name") == "rz-app-1"], r.client_list()
        info = c.call("PROXY", "INFO").decode()
        want = "route:shared" if proxy.options["sharing"] == "yes" else "route:pinned"
        assert want in info, info
        lines = c.call("PROXY", "CLIENTS").decode().splitlines()
        mine = [l for l in lines if " name=rz-app-1 " in l]
        assert len(mine) == 1, lines


def test_redis_py_client_name(proxy, r):
    c = proxy.client(client_name="rz-py-client")
    assert c.client_getname() == "rz-py-client"
    assert c.set("a", "b") is True
    c.close()
