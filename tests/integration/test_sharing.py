"""Backend connection sharing: many clients over a few backend connections,
each client getting exactly its own replies; pinned mode is 1:1."""

import threading
import time

import pytest

from conftest import (RespConn, encode, bulk, expect_bytes, wait_for, ADMIN_NAME)

SLACK = 2


def _client_job(port, idx, barrier, conns, errors, hold, done):
    try:
        c = RespConn.tcp(port, timeout=30)
        conns[idx] = c
        req, exp = [], []
        for j in range(25):
            k = "c%d:k%d" % (idx, j)
            v = "v%d-%d-%s" % (idx, j, "z" * (idx % 17))
            req.append(encode("SET", k, v)); exp.append(b"+OK\r\n")
            req.append(encode("GET", k)); exp.append(bulk(v))
        barrier.wait(30)
        c.send(b"".join(req))                       # 50 commands in one write
        expect_bytes(c, b"".join(exp), what="client %d" % idx)
        # a second burst with a per-client counter
        c.send(b"".join(encode("INCR", "cnt:%d" % idx) for _ in range(10)))
        expect_bytes(c, b"".join(b":%d\r\n" % i for i in range(1, 11)), what="client %d incr" % idx)
        done.append(idx)
        hold.wait(60)
    except Exception as e:
        errors.append("client %d: %s" % (idx, e))


@pytest.mark.proxy_only
def test_200_shared_clients_few_backend_connections(proxy_factory, redis_factory):
    srv = redis_factory()
    adm = srv.client()
    px = proxy_factory(srv, sharing="yes", pool={"backend-connections": "2"})
    n = 200
    barrier = threading.Barrier(n)
    hold = threading.Event()
    conns = [None] * n
    errors = []
    done = []
    threads = [threading.Thread(target=_client_job, args=(px.port, i, barrier, conns, errors, hold, done))
               for i in range(n)]
    for t in threads:
        t.start()
    try:
        # wait until every client finished its checks (they now hold their connections)
        wait_for(lambda: errors or len(done) == n, timeout=60, interval=0.05, what="all 200 clients done")
        assert not errors, errors[:5]
        assert adm.dbsize() == n * 26
        backend = [c for c in adm.client_list() if c.get("name") != ADMIN_NAME]
        assert len(backend) <= 2 + SLACK, \
            "%d backend connections for %d shared clients (backend-connections 2): %r" % (
                len(backend), n, [(b["addr"], b["cmd"]) for b in backend])
        assert len(backend) >= 1
    finally:
        hold.set()
        for t in threads:
            t.join(60)
        for c in conns:
            if c:
                c.close()
    assert not errors, errors[:5]
    for i in (0, 57, 199):
        assert adm.get("c%d:k24" % i) == ("v%d-24-%s" % (i, "z" * (i % 17))).encode()
        assert adm.get("cnt:%d" % i) == b"10"
    # closing 200 clients does not close or multiply the shared connections
    time.sleep(0.2)
    backend = [c for c in adm.client_list() if c.get("name") != ADMIN_NAME]
    assert len(backend) <= 2 + SLACK
    adm.close()


@pytest.mark.proxy_only
def test_pinned_mode_one_backend_per_client(proxy_factory, redis_factory):
    srv = redis_factory()
    adm = srv.client()
    px = proxy_factory(srv, sharing="no")
    n = 20
    conns = []
    try:
        for i in range(n):
            c = px.raw()
            assert c.call("SET", "p%d" % i, i) == "OK"
            conns.append(c)
        backend = [c for c in adm.client_list() if c.get("name") != ADMIN_NAME]
        assert n <= len(backend) <= n + 2, len(backend)
        # each client's CLIENT ID is a distinct backend connection
        ids = {c.call("CLIENT", "ID") for c in conns}
        assert len(ids) == n
        assert ids <= {int(b["id"]) for b in adm.client_list()}
        # closing the clients closes their backend connections
        for c in conns:
            c.close()
        conns = []
        wait_for(lambda: len([c for c in adm.client_list() if c.get("name") != ADMIN_NAME]) <= 2,
                 timeout=5, what="backend connections of closed pinned clients to go away")
    finally:
        for c in conns:
            c.close()
    adm.close()


@pytest.mark.proxy_only
def test_pinned_client_releases_backend_on_close_in_shared_mode(proxy_factory, redis_factory):
    """A client that pins (SELECT) in shared mode gets one connection; it is
    closed when the client goes, so pinning clients do not leak backends."""
    srv = redis_factory()
    adm = srv.client()
    px = proxy_factory(srv, sharing="yes")
    for rnd in range(3):
        cs = [px.raw() for _ in range(10)]
        for c in cs:
            assert c.call("SELECT", "1") == "OK"
            assert c.call("PING") == "PONG"
        for c in cs:
            c.close()
    wait_for(lambda: len([c for c in adm.client_list() if c.get("name") != ADMIN_NAME]) <= 2 + SLACK,
             timeout=5, what="backend connections to settle")
    adm.close()


@pytest.mark.proxy_only
def test_shared_clients_interleaved_large_and_small(proxy_factory, redis_factory):
    """A big reply for one client on a shared connection does not mix with small
    replies for others."""
    srv = redis_factory()
    adm = srv.client()
    big = bytes(range(256)) * 4096          # 1 MiB
    adm.set("big", big)
    px = proxy_factory(srv, sharing="yes", pool={"backend-connections": "1"})
    errors = []

    def small(idx):
        try:
            with px.raw() as c:
                for rnd in range(20):
                    c.send(b"".join(encode("ECHO", "s%d-%d-%d" % (idx, rnd, j)) for j in range(20)))
                    expect_bytes(c, b"".join(bulk("s%d-%d-%d" % (idx, rnd, j)) for j in range(20)))
        except Exception as e:
            errors.append(repr(e))

    def large():
        try:
            with px.raw(timeout=30) as c:
                for rnd in range(10):
                    c.send(encode("GET", "big") * 3)
                    expect_bytes(c, bulk(big) * 3, timeout=30)
        except Exception as e:
            errors.append(repr(e))

    ts = [threading.Thread(target=small, args=(i,)) for i in range(8)] + [threading.Thread(target=large)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors
    adm.close()
