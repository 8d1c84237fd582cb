"""Real client libraries through rzproxy, with the options applications use
(issue 13): node-redis 5 and 6, ioredis 5 and 6 (tests/integration/node,
run by nodeclients.py) and Debian's python3-redis 4.3.

What these libraries send on connect (node/README.md): every Node.js one
sends CLIENT SETINFO LIB-NAME/LIB-VER; node-redis 6 and ioredis 6 also HELLO
3 and CLIENT MAINT_NOTIFICATIONS; a configured db, user or name adds SELECT,
AUTH (or HELLO 3 AUTH) and CLIENT SETNAME (or HELLO 3 SETNAME). None of it
may cost a client its shared backend connection, and none of it may be lost
when the master moves.

- test_default_clients_share_backend_connections: 200 clients with default
  options (50 of each Node.js library) and python3-redis clients in db 3 as an
  ACL user, all connected at once: every reply right, and the master sees at
  most SHARED_MAX connections from the proxy (3 session groups x 2 backend
  connections, with slack).
- test_pinning_commands_with_real_clients: pub/sub, MULTI/EXEC and a BLPOP
  answered by an LPUSH, through each library; the connections they pinned
  are gone once the clients are.
- test_proxy_clients_lists_real_libraries: PROXY CLIENTS shows each
  library's name, version, db, protocol, user and a shared route.
- test_failover_with_real_clients: `rzproxy-ctl failover` moves the master
  A -> B -> A ... (RZ_REAL_ROTATIONS times, default 6) while clients of
  every kind and session group write: no application sees an error or a
  reconnect, every acknowledged write is on the final master in order, and
  every client still has its db, protocol, user and name.

Assertions are collected and reported together at the end of each test, so
that one failure (say, the connection count) does not hide the others.
"""

import os
import threading
import time

import pytest
import redis

import nodeclients
from conftest import ADMIN_NAME, DIRECT, LOCALHOST, RespConn, wait_for
from nodeclients import LIBS, DEFAULT_RESP, LIB_NAME
from zkutil import pool_info, zset, plain, hp, wait_master, make_replica

USER, PASSWORD = "app", "apppw"
MARKER = "rz:marker"             # holds "db<n>" in db n: which db a client is in
SHARED_MAX = 12                  # master connections allowed for the shared clients
FAST_SYNC = ["--repl-diskless-sync-delay", "0", "--replica-read-only", "yes"]


def add_app_user(srv):
    """The ACL user the applications log in as (ACLs are not replicated:
    every server needs it)."""
    with srv.client() as c:
        c.execute_command("ACL", "SETUSER", USER, "on", ">" + PASSWORD, "~*", "&*", "+@all")


def put_markers(srv, dbs=(0, 1, 2, 3)):
    for db in dbs:
        with srv.client(db=db) as c:
            c.set(MARKER, "db%d" % db)


def backend_connections(srv, adm):
    """The master's client connections that are not ours (nor replicas)."""
    return [c for c in adm.client_list() if c.get("name") != ADMIN_NAME and "S" not in c.get("flags", "")]


def py_client(port, connects, **kw):
    """python3-redis with the application's options; every new connection it
    makes is appended to `connects` (so a reconnect is seen)."""
    class Counting(redis.Connection):
        def on_connect(self):
            connects.append(time.monotonic())
            super().on_connect()
    pool = redis.ConnectionPool(connection_class=Counting, host=LOCALHOST, port=port, socket_timeout=15, **kw)
    return redis.Redis(connection_pool=pool)


def report(problems):
    """Fail with every problem found, grouped."""
    bad = [(what, items) for what, items in problems if items]
    assert not bad, "\n".join("== %s (%d)\n  %s" % (what, len(items), "\n  ".join(items[:12])) for what, items in bad)


def proxy_clients(px):
    """PROXY CLIENTS: one dict per client line."""
    with RespConn.tcp(px.port) as c:
        rep = c.call("PROXY", "CLIENTS")
    assert isinstance(rep, bytes), "PROXY CLIENTS answered %r" % (rep,)
    out = []
    for line in rep.decode("utf-8", "replace").splitlines():
        if line.strip():
            out.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
    return out


# ---------------------------------------------------------------- 200 clients

N_PER_LIB = 50
N_PY = 8


def test_default_clients_share_backend_connections(proxy_factory, redis_factory):
    srv = redis_factory()
    adm = srv.client()
    add_app_user(srv)
    put_markers(srv)
    px = proxy_factory(srv, sharing="yes", pool={"backend-connections": "2"})
    specs = []
    for lib in LIBS:
        s = {"lib": lib, "port": px.port, "count": N_PER_LIB, "workload": "hold", "checks": ["basic"],
             "rounds": 5, "prefix": "rc:%s:" % lib, "state": {"marker": MARKER}, "seconds": 60}
        if lib == "ioredis5":
            s["shutdown"] = "disconnect"     # shutdown(SHUT_WR), then waits for the proxy's EOF
        specs.append(s)
    py_connects, py_clients, py_problems = [], [], []
    with nodeclients.Group(specs, timeout=90) as group:
        group.wait_holding(timeout=45)
        for i in range(N_PY):
            c = py_client(px.port, py_connects, db=3, username=USER, password=PASSWORD)
            py_clients.append(c)
            for r in range(3):
                k, v = "py:%d:%d" % (i, r), "p%d-%d-%s" % (i, r, "y" * (i * 13 % 40))
                if not (c.set(k, v) is True and c.get(k) == v.encode()):
                    py_problems.append("python client %d: SET/GET %s" % (i, k))
        # everyone is connected now
        held = backend_connections(srv, adm)
        info_clients = None if DIRECT else int(pool_info(px).get("clients", -1))
        for i, c in enumerate(py_clients):
            st = (c.client_getname(), c.get(MARKER), c.execute_command("ACL", "WHOAMI"))
            if st != (None, b"db3", b"app"):
                py_problems.append("python client %d: (name, marker, user) %r" % (i, st))
        results = group.stop(timeout=60)
    for c in py_clients:
        c.close()
        c.connection_pool.disconnect()
    if len(py_connects) != N_PY:
        py_problems.append("python clients made %d connections for %d clients" % (len(py_connects), N_PY))

    problems = [("python3-redis", py_problems)]
    for res in results:
        problems.append(("%s errors/reconnects" % res["lib"], nodeclients.connection_problems(res)))
        problems.append(("%s SET/GET" % res["lib"], nodeclients.check_failures(res)))
        problems.append(("%s state" % res["lib"], nodeclients.state_problems(res, marker="db0")))
    # ioredis 5's disconnect() half-closes (shutdown(SHUT_WR)) and waits for
    # the other side's EOF, destroying the socket itself after 2 s
    slow = ["client %s: %s after %s ms" % (c["idx"], c.get("shutdown"), c.get("shutdown_ms"))
            for res in results if res["lib"] == "ioredis5" for c in res["clients"]
            if c.get("shutdown") != "disconnect" or (c.get("shutdown_ms") or 0) > 1500]
    problems.append(("ioredis5 disconnect (half-close) answered by a close within 1.5 s", slow))
    # what the clients wrote is on the server, in db 0 and db 3
    for lib in LIBS:
        v = adm.get("rc:%s:k:%d:4" % (lib, N_PER_LIB - 1))
        want = ("v-%s-%d-4-%s" % (lib, N_PER_LIB - 1, "x" * (((N_PER_LIB - 1) * 7 + 4) % 50))).encode()
        problems.append(("%s data on the server" % lib, [] if v == want else ["got %r want %r" % (v, want)]))
    with srv.client(db=3) as c3:
        v = c3.get("py:%d:2" % (N_PY - 1))
        problems.append(("python data in db 3", [] if v and v.startswith(b"p%d-2-" % (N_PY - 1)) else ["%r" % v]))
    total = N_PER_LIB * len(LIBS) + N_PY
    if DIRECT:
        # no proxy: every client is a server connection of its own
        problems.append(("all connected at the count", [] if len(held) >= total else
                         ["the server saw %d client connections, expected >= %d" % (len(held), total)]))
    else:
        problems.append(("clients known to the proxy", [] if info_clients is not None and info_clients >= total else
                         ["PROXY INFO clients:%s while %d clients were connected" % (info_clients, total)]))
        # every client gone: none left half-open (ioredis 5 half-closes), no
        # pinned connection left on the master
        try:
            # (PROXY INFO's own connection is a client too)
            wait_for(lambda: int(pool_info(px).get("clients", -1)) <= 1, timeout=10,
                     what="the proxy to see every client gone")
            gone = []
        except AssertionError as e:
            gone = [str(e)]
        problems.append(("clients closed", gone))
        try:
            wait_for(lambda: len(backend_connections(srv, adm)) <= SHARED_MAX, timeout=10,
                     what="master connections back to the shared ones")
            after = []
        except AssertionError as e:
            after = [str(e)]
        problems.append(("master connections after the clients left", after))
        problems.append(("master connections from the proxy while %d default-option clients were connected "
                         "(backend-connections 2, at most %d)" % (total, SHARED_MAX),
                         [] if len(held) <= SHARED_MAX else
                         ["%d connections: %s" % (len(held), sorted(c.get("cmd") for c in held)[:8])]))
    adm.close()
    report(problems)


# ---------------------------------------------------------------- pinning commands

def test_pinning_commands_with_real_clients(proxy_factory, redis_factory, sharing):
    """pub/sub, MULTI/EXEC and BLPOP (all of which pin) through each library,
    and python3-redis in db 3 as an ACL user; with backend-sharing on and
    off."""
    srv = redis_factory()
    adm = srv.client()
    add_app_user(srv)
    px = proxy_factory(srv, sharing=sharing, pool={"backend-connections": "2"})
    problems = []
    for lib in LIBS:
        res = nodeclients.run({"lib": lib, "port": px.port, "count": 3, "workload": "check",
                               "checks": ["basic", "multi", "blpop", "pubsub"], "prefix": "pc:%s:" % lib},
                              timeout=45)
        problems.append(("%s checks" % lib, nodeclients.check_failures(res)))
        problems.append(("%s errors/reconnects" % lib, nodeclients.connection_problems(res)))
    # the same through python3-redis, db 3, ACL user
    py = []
    connects = []
    c = py_client(px.port, connects, db=3, username=USER, password=PASSWORD)
    other = py_client(px.port, connects, db=3, username=USER, password=PASSWORD)
    try:
        with c.pipeline(transaction=True) as p:
            p.incr("py:m").set("py:mv", "x").get("py:mv")
            if p.execute() != [1, True, b"x"]:
                py.append("MULTI/EXEC")
        got = []
        t = threading.Thread(target=lambda: got.append(c.blpop("py:bl", timeout=10)), daemon=True)
        t.start()
        time.sleep(0.15)
        other.lpush("py:bl", "b")
        t.join(15)
        if got != [(b"py:bl", b"b")]:
            py.append("BLPOP got %r" % got)
        ps = other.pubsub()
        ps.subscribe("py:ch")
        first = ps.get_message(timeout=5)
        if not first or first["type"] != "subscribe":
            py.append("SUBSCRIBE confirmation %r" % first)
        receivers = c.publish("py:ch", "hi")
        msg = ps.get_message(timeout=5)
        if receivers != 1 or not msg or msg["data"] != b"hi":
            py.append("PUBLISH -> %r receivers, message %r" % (receivers, msg))
        ps.close()
    finally:
        c.close()
        other.close()
        c.connection_pool.disconnect()
        other.connection_pool.disconnect()
    problems.append(("python3-redis", py))
    with srv.client(db=3) as c3:
        problems.append(("python MULTI in db 3", [] if c3.get("py:mv") == b"x" else ["py:mv %r" % c3.get("py:mv")]))
    if not DIRECT:
        try:
            wait_for(lambda: len(backend_connections(srv, adm)) <= SHARED_MAX, timeout=10,
                     what="pinned master connections to go with their clients")
            left = []
        except AssertionError as e:
            left = [str(e)]
        problems.append(("master connections after the clients left", left))
    adm.close()
    report(problems)


# ---------------------------------------------------------------- PROXY CLIENTS

@pytest.mark.proxy_only
def test_proxy_clients_lists_real_libraries(proxy_factory, redis_factory):
    srv = redis_factory()
    add_app_user(srv)
    px = proxy_factory(srv, sharing="yes", pool={"backend-connections": "2"})
    # (lib, options, db, user, resp)
    kinds = [("redis5", {"name": "nr5-{idx}"}, 0, "default"),
             ("redis6", {"name": "nr6-{idx}", "db": 2}, 2, "default"),
             ("ioredis5", {"name": "io5-{idx}", "username": USER, "password": PASSWORD}, 0, USER),
             ("ioredis6", {"name": "io6-{idx}", "db": 1, "username": USER, "password": PASSWORD}, 1, USER)]
    specs = [{"lib": lib, "port": px.port, "count": 2, "workload": "hold", "checks": ["basic"],
              "options": o, "prefix": "lc:%s:" % lib, "seconds": 40} for lib, o, _, _ in kinds]
    connects = []
    py = py_client(px.port, connects, db=3, username=USER, password=PASSWORD, client_name="py-3")
    problems = []
    with nodeclients.Group(specs, timeout=60) as group:
        group.wait_holding(timeout=30)
        assert py.ping() is True
        lines = proxy_clients(px)
        byname = {l.get("name"): l for l in lines}
        for lib, o, db, user in kinds:
            for idx in range(2):
                name = o["name"].replace("{idx}", str(idx))
                line = byname.get(name)
                if line is None:
                    problems.append(("PROXY CLIENTS", ["no line with name=%s among %d lines: %s"
                                                       % (name, len(lines), lines[:3])]))
                    continue
                want = {"lib-name": LIB_NAME[lib], "lib-ver": nodeclients.lib_version(lib), "db": str(db),
                        "resp": str(DEFAULT_RESP[lib]), "user": user}
                diff = ["%s=%r (want %r)" % (k, line.get(k), v) for k, v in want.items() if line.get(k) != v]
                if not line.get("route", "").startswith("shared"):
                    diff.append("route=%r (want shared:...)" % line.get("route"))
                problems.append(("PROXY CLIENTS %s" % name, diff))
        line = byname.get("py-3") or {}
        want = {"db": "3", "resp": "2", "user": USER}
        diff = ["%s=%r (want %r)" % (k, line.get(k), v) for k, v in want.items() if line.get(k) != v]
        if not line.get("route", "").startswith("shared"):
            diff.append("route=%r (want shared:...)" % line.get("route"))
        problems.append(("PROXY CLIENTS py-3", diff))
        results = group.stop(timeout=30)
    py.close()
    py.connection_pool.disconnect()
    for res in results:
        problems.append(("%s errors/reconnects" % res["lib"], nodeclients.connection_problems(res)))
    report(problems)


# ---------------------------------------------------------------- failover

class PyWriter(threading.Thread):
    """python3-redis writing INCR/RPUSH in db 3 under a name, remembering
    every acknowledged reply; exceptions are recorded (and the loop goes
    on, as an application would); `connects` shows reconnects."""

    def __init__(self, port, stop, idx=0, max_s=40.0):
        super().__init__(daemon=True)
        self.idx, self.stop_ev, self.max_s = idx, stop, max_s
        self.connects = []
        self.c = py_client(port, self.connects, db=3, client_name="py-db3-%d" % idx)
        self.incr, self.push, self.errors = [], [], []

    def run(self):
        deadline = time.monotonic() + self.max_s
        seq = 0
        while not self.stop_ev.is_set() and time.monotonic() < deadline:
            try:
                self.incr.append(self.c.incr("pc:c:%d" % self.idx))
                n = self.c.rpush("pc:l:%d" % self.idx, seq)
                self.push.append(seq)
                if n != len(self.push):
                    self.errors.append("RPUSH %d answered %d" % (seq, n))
            except Exception as e:
                self.errors.append(repr(e))
                time.sleep(0.01)
            seq += 1

    @property
    def acks(self):
        return len(self.incr) + len(self.push)


ROTATIONS = int(os.environ.get("RZ_REAL_ROTATIONS", "6"))     # A -> B -> A ... (even: ends on A)


@pytest.mark.proxy_only
def test_failover_with_real_clients(zk_server, kz, zk_proxy_factory, redis_factory, znode_path, ctl_factory,
                                    sharing):
    """Default-option clients of each library, and ones in other session
    states, through rzproxy-ctl failovers back and forth: on shared groups
    (re-created on each new master) and pinned (each connection's state
    replayed on the new master): no error or reconnect seen, nothing lost,
    every client in its state afterwards."""
    a = redis_factory(extra_args=FAST_SYNC)
    b = redis_factory(extra_args=FAST_SYNC)
    for s in (a, b):
        add_app_user(s)
    make_replica(b, a)
    put_markers(a)                     # replicated to B
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, sharing=sharing,
                          pool={"on-no-master": "block", "block-timeout": "10000"})
    wait_master(px, hp(a))
    ctl = ctl_factory(zk_server.hostport, znode_path)

    # (spec, expected db, user, name template)
    kinds = [
        ({"lib": "redis6", "count": 2}, 0, "default", None),
        ({"lib": "ioredis6", "count": 2}, 0, "default", None),
        ({"lib": "ioredis6", "count": 1, "options": {"db": 2, "name": "io6-db2-{idx}"}}, 2, "default", "io6-db2-{idx}"),
        ({"lib": "redis5", "count": 1, "options": {"username": USER, "password": PASSWORD, "name": "nr5-app-{idx}"}},
         0, USER, "nr5-app-{idx}"),
    ]
    specs = []
    for n, (s, _, _, _) in enumerate(kinds):
        specs.append(dict(s, port=px.port, workload="incr", seconds=40, prefix="fo%d:" % n,
                          state={"marker": MARKER}, cmd_timeout_ms=20000))
    stop = threading.Event()
    pyw = PyWriter(px.port, stop)
    outputs = []
    current = a
    with nodeclients.Group(specs, timeout=75) as group:
        group.wait_connected(timeout=30)
        pyw.start()
        try:
            group.wait_min_acks(20, timeout=15)
            wait_for(lambda: pyw.acks >= 20 or not pyw.is_alive(), timeout=15, what="python writer under way")
            for k in range(ROTATIONS):
                nxt = b if current is a else a
                res = ctl.run("failover", "--to", hp(nxt), timeout=30)
                outputs.append(res)
                assert res.rc == 0, "rotation %d: %r" % (k, res)
                wait_master(px, hp(nxt), timeout=10)
                current = nxt
                before, py_before = group.acks(), pyw.acks
                for r, n0 in zip(group.runs, before):
                    r.wait_min_acks(n0 + 10, timeout=15)
                wait_for(lambda: pyw.acks >= py_before + 10 or not pyw.is_alive(), timeout=15,
                         what="python writer progressing on the new master")
        finally:
            stop.set()
            pyw.join(20)
        results = group.stop(timeout=40)
    assert current is a, "RZ_REAL_ROTATIONS must be even (the checks read A)"

    problems = []
    final = {}

    def final_client(db):
        if db not in final:
            final[db] = a.client(db=db)
        return final[db]

    for (s, db, user, name), spec, res in zip(kinds, specs, results):
        what = "%s%s" % (s["lib"], " %s" % s["options"] if s.get("options") else "")
        problems.append(("%s: acknowledged writes on the final master" % what,
                         nodeclients.incr_problems(res, final_client, spec["prefix"], db=db)))
        problems.append(("%s: state after the failovers" % what,
                         nodeclients.state_problems(res, name=name, marker="db%d" % db, user=user)))
    # python3-redis
    pyp = []
    c3 = final_client(3)
    if pyw.incr != list(range(1, len(pyw.incr) + 1)):
        pyp.append("INCR replies out of step")
    if int(c3.get("pc:c:0") or 0) != len(pyw.incr):
        pyp.append("counter %s, %d acknowledged" % (c3.get("pc:c:0"), len(pyw.incr)))
    if [int(x) for x in c3.lrange("pc:l:0", 0, -1)] != pyw.push:
        pyp.append("list differs from the acknowledged pushes")
    st = (pyw.c.client_getname(), pyw.c.get(MARKER), pyw.c.execute_command("ACL", "WHOAMI"))
    if st != ("py-db3-0", b"db3", b"default"):
        pyp.append("state (name, marker, user) %r" % (st,))
    problems.append(("python3-redis (db 3): writes and state", pyp))
    # last, what the applications saw
    for (s, _, _, _), res in zip(kinds, results):
        problems.append(("%s%s: errors or reconnects seen by the application" % (
            s["lib"], " %s" % s["options"] if s.get("options") else ""), nodeclients.connection_problems(res)))
    pyerr = list(pyw.errors[:5])
    if len(pyw.connects) != 1:
        pyerr.append("python3-redis connected %d times (reconnects)" % len(pyw.connects))
    problems.append(("python3-redis: errors or reconnects", pyerr))
    pyw.c.close()
    pyw.c.connection_pool.disconnect()
    for c in final.values():
        c.close()
    print("failover outputs:\n" + "\n".join(o.out for o in outputs))
    report(problems)

