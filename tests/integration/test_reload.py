"""SIGHUP reloads the conf file: what can change live does, what cannot is
reported and kept, pools come and go by name, and a broken file changes
nothing."""

import os
import signal

import pytest

from conftest import free_port, port_open, wait_for, write_conf
from zkutil import zset, plain, hp, wait_master

pytestmark = pytest.mark.proxy_only


def rewrite(px, **kw):
    """Rewrite px's conf in place (same file the proxy was started with)."""
    write_conf(px.confpath, px.port, kw.pop("master"), **kw)


def hup_and_wait(px, text, count=1):
    """SIGHUP, then wait for the count-th log line containing text."""
    before = open(px.logpath, errors="replace").read().count(text)
    os.kill(px.pid, signal.SIGHUP)
    wait_for(lambda: open(px.logpath, errors="replace").read().count(text) >= before + count,
             timeout=5, what="log line %r" % text)


def test_reload_applies_a_limit_and_rejects_a_broken_file(proxy_factory, redis_factory):
    srv = redis_factory()
    px = proxy_factory(srv, globals_={"maxclients": "100"})
    with px.raw() as a, px.raw() as b:
        assert a.call("PING") == "PONG" and b.call("PING") == "PONG"
    rewrite(px, master=hp(srv), globals_={"maxclients": "1", "loglevel": "info"})
    hup_and_wait(px, "SIGHUP: configuration %s reloaded (1 pool)" % px.confpath)
    with px.raw() as a:
        assert a.call("PING") == "PONG"
        with px.raw() as b:
            assert b.read_reply(timeout=5) == "ERR max number of clients reached"
    # loglevel info took effect: client closes are logged at info
    wait_for(lambda: "closed: client disconnected" in px.log_tail(20), timeout=5,
             what="an info line")

    with open(px.confpath, "a") as f:
        f.write("  block-timeout lots\n")
    hup_and_wait(px, "configuration unchanged")
    line = [l for l in px.log_tail(10).splitlines() if "configuration unchanged" in l][-1]
    assert "bad value for 'block-timeout': 'lots'" in line and px.confpath + ":" in line, line
    with px.raw() as a:            # still the reloaded maxclients 1, and alive
        assert a.call("PING") == "PONG"
        with px.raw() as b:
            assert b.read_reply(timeout=5) == "ERR max number of clients reached"
    assert px.alive()


def test_restart_only_directive_is_reported_and_kept(proxy_factory, redis_factory):
    a, b = redis_factory(), redis_factory()
    a.client().set("who", "a")
    b.client().set("who", "b")
    px = proxy_factory(a)
    rewrite(px, master=hp(b), pool={"block-timeout": "1234"})
    hup_and_wait(px, "SIGHUP: configuration")
    assert "'master' changed but cannot change while running" in px.log_tail(10), px.log_tail(10)
    with px.raw() as c:
        assert c.call("GET", "who") == b"a"


def test_pools_added_and_removed(proxy_factory, redis_factory, tmp_path):
    a, b = redis_factory(), redis_factory()
    a.client().set("who", "a")
    b.client().set("who", "b")
    px = proxy_factory(a)
    extra = free_port()
    rewrite(px, master=hp(a), extra_pools=[("second", extra, {"master": hp(b)})])
    hup_and_wait(px, "SIGHUP: configuration %s reloaded (2 pools)" % px.confpath)
    wait_for(lambda: port_open(extra), timeout=5, what="the added pool listening")
    with px.raw() as main:
        assert main.call("GET", "who") == b"a"
        from conftest import RespConn
        second = RespConn.tcp(extra, timeout=10)
        assert second.call("GET", "who") == b"b"
        # remove it again: its clients are closed, its port closes, main is untouched
        rewrite(px, master=hp(a))
        hup_and_wait(px, "SIGHUP: pool removed")
        assert second.is_closed(5)
        second.close()
        wait_for(lambda: not port_open(extra), timeout=5, what="the removed pool's port closed")
        assert main.call("GET", "who") == b"a"
    assert px.alive()


def test_znode_pool_added(zk_server, kz_factory, zk_proxy_factory, redis_factory, znode_path):
    """A pool reading a znode can be added while the ZooKeeper session runs,
    and the pools already there still follow theirs after the reload (the
    watch once kept a pointer into the conf the reload freed)."""
    a, b = redis_factory(), redis_factory()
    kz = kz_factory(zk_server.hostport)
    zset(kz, znode_path, plain(hp(a)))
    zset(kz, znode_path + "2", plain(hp(b)))
    px = zk_proxy_factory(zk_server, znode_path)
    wait_master(px, hp(a))
    extra = free_port()
    write_conf(px.confpath, px.port, None,
               globals_={"zookeeper": zk_server.hostport, "zk-session-timeout": "2000"},
               pool={"znode": znode_path, "block-timeout": "5000"},
               extra_pools=[("second", extra, {"znode": znode_path + "2"})])
    hup_and_wait(px, "SIGHUP: pool added")
    wait_master(px, hp(b), pool="second", timeout=10, port=extra)
    from conftest import RespConn
    with RespConn.tcp(extra, timeout=10) as c:
        assert c.call("SET", "k", "on-b") == "OK"
    assert b.client().get("k") == b"on-b" and a.client().get("k") is None
    zset(kz, znode_path, plain(hp(b)))
    wait_master(px, hp(b), timeout=10)
    with px.raw() as c:
        assert c.call("GET", "k") == b"on-b"
    assert px.alive()
