"""Randomised mixed workload: many clients pipelining plain commands across
pinning transitions (SELECT, MULTI, HELLO, SUBSCRIBE, blocking calls) and
vanishing mid-pipeline, each checking every reply byte-for-byte against a
model of its own keys. Seeds are fixed, so a failure reproduces."""

import os
import random
import threading
import time

import pytest

from conftest import RespConn, encode, bulk, first_diff

DURATION = float(os.environ.get("RZ_STRESS_SECONDS", "4"))
THREADS = 24


class Model:
    def __init__(self, tid, rnd):
        self.tid = tid
        self.rnd = rnd
        self.db = 0
        self.proto = 2
        self.data = {}          # (db, key) -> bytes
        self.gen = 0            # generation: keys abandoned by a vanished client are never reused

    def key(self, n):
        return "t%d:g%d:k%d" % (self.tid, self.gen, n)

    def null(self):
        return b"_\r\n" if self.proto == 3 else b"$-1\r\n"

    def null_array(self):
        return b"_\r\n" if self.proto == 3 else b"*-1\r\n"

    # each op returns (request bytes, expected reply bytes or None for "one reply, any")
    def op_plain(self):
        req, exp = [], []
        for _ in range(self.rnd.randint(1, 120)):
            k = self.key(self.rnd.randint(0, 30))
            x = self.rnd.random()
            if x < 0.4:
                v = ("v%d" % self.rnd.randint(0, 10 ** 6)).encode() * self.rnd.choice((1, 1, 1, 50))
                req.append(encode("SET", k, v)); exp.append(b"+OK\r\n")
                self.data[(self.db, k)] = v
            elif x < 0.8:
                req.append(encode("GET", k))
                v = self.data.get((self.db, k))
                exp.append(bulk(v) if v is not None else self.null())
            else:
                ck = k + ":n"
                n = int(self.data.get((self.db, ck), b"0")) + 1
                req.append(encode("INCR", ck)); exp.append(b":%d\r\n" % n)
                self.data[(self.db, ck)] = str(n).encode()
        return b"".join(req), b"".join(exp)

    def op_select(self):
        self.db = self.rnd.randint(0, 3)
        return encode("SELECT", str(self.db)), b"+OK\r\n"

    def op_multi(self):
        k = self.key(99)
        n = int(self.data.get((self.db, k), b"0")) + 1
        self.data[(self.db, k)] = str(n).encode()
        return (encode("MULTI") + encode("INCR", k) + encode("GET", k) + encode("EXEC"),
                b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:%d\r\n%s" % (n, bulk(str(n))))

    def op_hello(self):
        self.proto = self.rnd.choice((2, 3))
        return encode("HELLO", str(self.proto)), None

    def op_subscribe(self):
        ch = "ch%d" % self.tid
        if self.proto == 3:
            exp = (b">3\r\n$9\r\nsubscribe\r\n%s:1\r\n" % bulk(ch) + b"+PONG\r\n"
                   + b">3\r\n$11\r\nunsubscribe\r\n%s:0\r\n" % bulk(ch))
        else:
            exp = (b"*3\r\n$9\r\nsubscribe\r\n%s:1\r\n" % bulk(ch) + b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
                   + b"*3\r\n$11\r\nunsubscribe\r\n%s:0\r\n" % bulk(ch))
        return encode("SUBSCRIBE", ch) + encode("PING") + encode("UNSUBSCRIBE", ch), exp

    def op_blpop(self):
        return encode("BLPOP", self.key(77) + ":empty", "0.01"), self.null_array()


OPS = [("op_plain", 60), ("op_select", 6), ("op_multi", 8), ("op_hello", 4), ("op_subscribe", 4),
       ("op_blpop", 3)]


def _client(port, tid, seed, deadline, errors, stats):
    rnd = random.Random(seed)
    m = Model(tid, rnd)
    names = [n for n, w in OPS for _ in range(w)]
    c = RespConn.tcp(port, timeout=20)
    try:
        while time.monotonic() < deadline and not errors:
            # several operations in one write: transitions happen mid-pipeline
            batch = []
            for _ in range(rnd.randint(1, 4)):
                batch.append(getattr(m, rnd.choice(names))())
            data = b"".join(r for r, _ in batch)
            if rnd.random() < 0.03:
                # vanish mid-pipeline; start over on a new connection and new keys
                c.send(data)
                c.close()
                stats["vanished"] += 1
                m.db, m.proto, m.gen = 0, 2, m.gen + 1
                c = RespConn.tcp(port, timeout=20)
                continue
            c.send(data)
            for i, (req, exp) in enumerate(batch):
                if exp is None:
                    c.read_raw_reply()
                else:
                    try:
                        got = c.read_exact(len(exp))
                    except Exception as e:
                        raise AssertionError("client %d seed %d: %s while waiting for %r (request %r)"
                                             % (tid, seed, e, exp[:200], req[:200]))
                    if got != exp:
                        raise AssertionError("client %d seed %d: %s; request %r"
                                             % (tid, seed, first_diff(exp, got), req[:300]))
            stats["batches"] += 1
    except Exception as e:
        errors.append(str(e))
    finally:
        c.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_mixed_workload(proxy, r, seed):
    errors = []
    stats = {"batches": 0, "vanished": 0}
    deadline = time.monotonic() + DURATION
    threads = [threading.Thread(target=_client, args=(proxy.port, i, seed * 1000 + i, deadline, errors, stats))
               for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DURATION + 60)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, errors[:3]
    print("stats", stats)
    assert stats["batches"] > 100, stats
    assert proxy.alive()
    with proxy.raw() as c:
        assert c.call("PING") == "PONG"
