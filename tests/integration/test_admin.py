"""The admin HTTP listener (`admin-listen`): /metrics in Prometheus text
format, /healthz following the gate, /info as JSON."""

import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import LOCALHOST, RZPROXY, free_port, wait_for, write_conf
from zkutil import zset, zdelete, zstat, plain, hp, wait_master, wait_state, switch_and_set

pytestmark = pytest.mark.proxy_only

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def get(port, path):
    """(status, content type, body text)."""
    try:
        with urllib.request.urlopen("http://%s:%d%s" % (LOCALHOST, port, path), timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def parse_prometheus(text):
    """Strict enough for the text format 0.0.4: every sample belongs to a
    family announced with # TYPE, labels are well formed, values are floats.
    Returns {(name, frozenset(labels)): value}."""
    types, out = {}, {}
    assert text.endswith("\n"), "exposition must end with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4, line
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert typ in ("counter", "gauge"), line
            assert name not in types, "family %s declared twice" % name
            types[name] = typ
            continue
        assert not line.startswith("#") and line, "unexpected line %r" % line
        m = SAMPLE.match(line)
        assert m, "not a sample: %r" % line
        name, labels = m.group(1), {}
        assert name in types, "sample %s before its # TYPE" % name
        if m.group(3):
            pos, body = 0, m.group(3)
            while pos < len(body):
                lm = LABEL.match(body, pos)
                assert lm, "bad labels in %r" % line
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        value = float(m.group(4))
        if types[name] == "counter":
            assert value >= 0, line
        key = (name, frozenset(labels.items()))
        assert key not in out, "duplicate sample %r" % line
        out[key] = value
    return out


def metric(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_metrics_healthz_info_follow_the_pool(zk_server, kz, zk_proxy_factory, redis_factory,
                                              znode_path):
    a, b = redis_factory(), redis_factory()
    admin = free_port()
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_server, znode_path, globals_={"admin-listen": "%s:%d" % (LOCALHOST, admin)},
                          pool={"on-no-master": "tryagain"})
    wait_master(px, hp(a))
    # kazoo's default ACL lets anyone write the znode: healthy, with a
    # warning once the ACL (read behind the data) is in (test_zk_acl.py)
    warned = "pool main READY (warning: znode %s is writable by world:anyone)\n" % znode_path
    wait_for(lambda: get(admin, "/healthz")[2] == warned, timeout=5, what="healthz 200 with the warning")
    status, ctype, body = get(admin, "/healthz")
    assert status == 200 and ctype.startswith("text/plain") and body == warned, (status, body)

    status, ctype, body = get(admin, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
    s0 = parse_prometheus(body)
    assert metric(s0, "rzproxy_pool_state", pool="main", state="READY") == 1
    assert metric(s0, "rzproxy_pool_state", pool="main", state="NO_NODE") == 0
    assert metric(s0, "rzproxy_pool_master", pool="main", master=hp(a)) == 1
    assert metric(s0, "rzproxy_zk_connected") == 1
    assert metric(s0, "rzproxy_resident_memory_bytes") > 0
    assert metric(s0, "rzproxy_pool_znode_version", pool="main") == zstat(kz, znode_path).version
    assert metric(s0, "rzproxy_pool_znode_age_seconds", pool="main") >= 0
    assert metric(s0, "rzproxy_pool_znode_world_writable", pool="main") == 1

    with px.raw() as c:
        for i in range(10):
            assert c.call("SET", "k%d" % i, "v") == "OK"
        s1 = parse_prometheus(get(admin, "/metrics")[2])
        assert metric(s1, "rzproxy_pool_commands_total", pool="main") == \
            metric(s0, "rzproxy_pool_commands_total", pool="main") + 10
        assert metric(s1, "rzproxy_pool_request_bytes_total", pool="main") > \
            metric(s0, "rzproxy_pool_request_bytes_total", pool="main")
        assert metric(s1, "rzproxy_pool_reply_bytes_total", pool="main") >= \
            metric(s0, "rzproxy_pool_reply_bytes_total", pool="main") + 10 * len(b"+OK\r\n")
        assert metric(s1, "rzproxy_pool_clients", pool="main") == 1

        zdelete(kz, znode_path)
        wait_state(px, "NO_NODE")
        assert c.call("SET", "x", "1") == "TRYAGAIN znode missing"
        status, _, body = get(admin, "/healthz")
        assert status == 503 and body == "pool main NO_NODE: znode missing\n", (status, body)
        time.sleep(0.01)            # gated time has millisecond resolution
        s2 = parse_prometheus(get(admin, "/metrics")[2])
        assert metric(s2, "rzproxy_pool_state", pool="main", state="NO_NODE") == 1
        assert metric(s2, "rzproxy_pool_state", pool="main", state="READY") == 0
        assert ("rzproxy_pool_master", frozenset({("pool", "main"), ("master", hp(a))})) not in s2
        assert metric(s2, "rzproxy_pool_tryagain_total", pool="main") == \
            metric(s1, "rzproxy_pool_tryagain_total", pool="main") + 1
        assert metric(s2, "rzproxy_pool_gated_seconds_total", pool="main") > \
            metric(s1, "rzproxy_pool_gated_seconds_total", pool="main")

        switch_and_set(kz, znode_path, px, c, b, "x", "2")
    wait_for(lambda: get(admin, "/healthz")[0] == 200, timeout=5, what="healthz 200 again")
    s3 = parse_prometheus(get(admin, "/metrics")[2])
    assert metric(s3, "rzproxy_pool_master", pool="main", master=hp(b)) == 1
    assert metric(s3, "rzproxy_pool_switches_total", pool="main") == \
        metric(s0, "rzproxy_pool_switches_total", pool="main") + 1
    assert metric(s3, "rzproxy_pool_epoch", pool="main") == metric(s0, "rzproxy_pool_epoch", pool="main") + 1
    assert metric(s3, "rzproxy_pool_last_switch_seconds", pool="main") >= 0

    status, ctype, body = get(admin, "/info")
    assert status == 200 and ctype == "application/json"
    info = json.loads(body)
    assert info["zookeeper"]["connected"] is True
    (pool,) = info["pools"]
    assert pool["name"] == "main" and pool["state"] == "READY" and pool["master"] == hp(b)
    assert pool["reason"] is None and pool["master_source"] == "zookeeper"
    assert pool["commands_total"] == metric(s3, "rzproxy_pool_commands_total", pool="main")
    assert pool["switches_total"] == metric(s3, "rzproxy_pool_switches_total", pool="main")

    assert get(admin, "/nope")[0] == 404


def test_static_pool_health(proxy_factory, redis_factory):
    """A static pool is healthy while its master accepts connections."""
    srv = redis_factory()
    admin = free_port()
    px = proxy_factory(srv, globals_={"admin-listen": "%s:%d" % (LOCALHOST, admin)})
    with px.raw() as c:
        assert c.call("PING") == "PONG"
    assert get(admin, "/healthz") == (200, "text/plain; charset=utf-8", "pool main READY\n")
    srv.kill()
    with px.raw() as c:
        c.call("PING")                 # the connect fails: the pool backs off
    status, _, body = get(admin, "/healthz")
    assert status == 503 and body == "pool main UNREACHABLE: master unreachable (Connection refused)\n", \
        (status, body)


def test_admin_port_in_use_exits_at_once(tmp_path, redis_factory):
    """A port already taken is a one-line error naming it, and exit status 1."""
    srv = redis_factory()
    taken = socket.socket()
    taken.bind((LOCALHOST, 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        conf = write_conf(str(tmp_path / "rz.conf"), free_port(), hp(srv),
                          globals_={"admin-listen": "%s:%d" % (LOCALHOST, port)})
        p = subprocess.run([RZPROXY, conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10)
    finally:
        taken.close()
    out = p.stdout.decode()
    assert p.returncode == 1, out
    assert "admin-listen %s:%d: cannot listen: Address already in use" % (LOCALHOST, port) in out, out


def test_zookeeper_down_at_start_stays_up_and_unhealthy(zk_proxy_factory):
    """ZooKeeper unreachable at start: the proxy runs, gated; /healthz says
    503 and why; clients get -TRYAGAIN (tryagain mode) rather than a refused
    connection."""
    admin = free_port()
    nobody = "%s:%d" % (LOCALHOST, free_port())
    px = zk_proxy_factory(nobody, "/rztest/down/nodes", pool={"on-no-master": "tryagain"},
                          globals_={"admin-listen": "%s:%d" % (LOCALHOST, admin)})
    wait_for(lambda: get(admin, "/healthz")[0] == 503, timeout=5, what="healthz 503")
    status, _, body = get(admin, "/healthz")
    assert body in ("pool main CONNECTING: zookeeper connecting\n",
                    "pool main INIT: zookeeper connecting\n"), body
    with px.raw() as c:
        assert c.call("PING") == "TRYAGAIN zookeeper connecting"
    s = parse_prometheus(get(admin, "/metrics")[2])
    assert metric(s, "rzproxy_zk_connected") == 0
    assert px.alive()


def test_clients_by_library_and_groups(proxy_factory, redis_factory):
    """/metrics and /info count clients by the library they named with
    CLIENT SETINFO LIB-NAME (label "" for none), and show the session groups,
    shared connections and pinned clients."""
    srv = redis_factory()
    admin = free_port()
    px = proxy_factory(srv, globals_={"admin-listen": "%s:%d" % (LOCALHOST, admin)})
    conns = [px.raw() for _ in range(6)]
    try:
        for i, c in enumerate(conns[:5]):
            lib = "ioredis" if i < 3 else 'odd"lib\\'
            assert c.call("CLIENT", "SETINFO", "LIB-NAME", lib) == "OK"
        assert conns[3].call("SELECT", "2") == "OK"
        assert conns[4].call("SUBSCRIBE", "ch")[0] == b"subscribe"
        for c in conns[:3]:
            assert c.call("PING") == "PONG"
        s = parse_prometheus(get(admin, "/metrics")[2])
        assert metric(s, "rzproxy_pool_clients_by_library", pool="main", lib_name="ioredis") == 3
        assert metric(s, "rzproxy_pool_clients_by_library", pool="main", lib_name='odd\\"lib\\\\') == 2
        assert metric(s, "rzproxy_pool_clients_by_library", pool="main", lib_name="") == 1
        assert metric(s, "rzproxy_pool_session_groups", pool="main") == 2
        assert metric(s, "rzproxy_pool_clients_pinned", pool="main") == 1
        assert metric(s, "rzproxy_pool_znode_world_writable", pool="main") == -1   # no znode
        assert 2 <= metric(s, "rzproxy_pool_shared_connections", pool="main") <= 3
        info = json.loads(get(admin, "/info")[2])["pools"][0]
        assert info["clients_by_library"] == {"ioredis": 3, 'odd"lib\\': 2, "": 1}, info
        assert info["session_groups"] == 2
    finally:
        for c in conns:
            c.close()
