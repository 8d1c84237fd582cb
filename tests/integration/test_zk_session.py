"""ZooKeeper session faults against a standalone server of the test's own
(zk_fresh): server stopped and restarted within and beyond the session
timeout, server paused (SIGSTOP: TCP open, no answers), the session expired
from outside (kazoo joins it and closes it), the proxy itself stopped longer
than the session timeout, and a proxy started while ZooKeeper is down.

Timing: tickTime is 200 ms, so the server clamps session timeouts to
400..4000 ms; the proxy asks for 2000 (4000 where a restart must fit in)."""

import os
import signal
import time

import pytest

from conftest import RespConn, encode, expect_bytes, free_port, wait_for
from zkutil import (ZkServer, expire_session, zset, zstat, plain, pool_info, wait_state, tryagain, session_id, fmt_info,
                    hp, wait_master as wait_ready)

pytestmark = pytest.mark.proxy_only


def log_text(px):
    with open(px.logpath, errors="replace") as f:
        return f.read()


def watch_states(px, seconds, interval=0.02):
    """Sample the pool's (time, state, reason) for `seconds`."""
    out = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        f = pool_info(px)
        out.append((round(time.monotonic() - t0, 3), f.get("state"), f.get("reason")))
        time.sleep(interval)
    return out


def test_restart_within_session_timeout(zk_fresh, kz_factory, zk_proxy_factory, redis_factory, znode_path):
    """ZooKeeper killed and restarted within the session timeout: DISCONNECTED
    (`zookeeper disconnected`) at once, tryagain answers with that reason, held
    commands (block pool) are released after the reconnect, and the proxy
    resumes on the SAME session (no EXPIRED in between)."""
    a = redis_factory()
    kz = kz_factory(zk_fresh.hostport)
    zset(kz, znode_path, plain(hp(a)))
    hport = free_port()
    px = zk_proxy_factory(zk_fresh, znode_path, session_timeout=4000, pool={"on-no-master": "tryagain"},
                          extra_pools=[("held", hport, {"znode": znode_path, "on-no-master": "block",
                                                        "block-timeout": "8000"})])
    f = wait_ready(px, hp(a))
    wait_ready(px, hp(a), pool="held", port=hport)
    sid = session_id(f, px)
    t_kill = time.monotonic()
    zk_fresh.kill()
    f = wait_state(px, "DISCONNECTED", timeout=2)
    assert time.monotonic() - t_kill < 1.0, "DISCONNECTED %.2fs after the server died (RST)" % (
        time.monotonic() - t_kill)
    assert f.get("reason") == "zookeeper disconnected", fmt_info(f)
    with px.raw() as c:
        assert tryagain(c.call("SET", "during", "1")) == "zookeeper disconnected"
    held = RespConn.tcp(hport)
    try:
        held.send(encode("SET", "held", "1") + encode("INCR", "held") + encode("GET", "held"))
        time.sleep(0.2)
        assert held.nothing_pending(0.02), "answered while ZooKeeper was down: %r" % held.pending()
        zk_fresh.start()
        t_up = time.monotonic()
        f = wait_ready(px, hp(a), timeout=8)
        down = time.monotonic() - t_kill
        expect_bytes(held, b"+OK\r\n:2\r\n$1\r\n2\r\n", timeout=8, what="commands held over the reconnect")
    finally:
        held.close()
    assert session_id(f, px) == sid, "session changed (%s -> %s) after %.2fs down, timeout 4000" % (
        hex(sid), f.get("zk_session_id"), down)
    assert down < 4.0, "test setup: ZooKeeper was down %.2fs, not within the timeout" % down
    print("down %.2fs, READY %.2fs after the server was up again" % (down, time.monotonic() - t_up))
    with px.raw() as c:
        assert c.call("SET", "after", "1") == "OK"
    assert a.client().get("during") is None and a.client().get("after") == b"1"
    assert "zookeeper disconnected" in log_text(px)


def test_disconnect_grace(zk_fresh, kz_factory, zk_proxy_factory, redis_factory, znode_path):
    """zk-disconnect-grace 1500: after losing ZooKeeper the pool keeps forwarding
    for about 1.5 s, then gates with `zookeeper disconnected`."""
    a = redis_factory()
    kz = kz_factory(zk_fresh.hostport)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_fresh, znode_path, session_timeout=4000, globals_={"zk-disconnect-grace": "1500"},
                          pool={"on-no-master": "tryagain"})
    wait_ready(px, hp(a))
    kz.stop()
    t0 = time.monotonic()
    zk_fresh.kill()
    served = []
    with px.raw() as c:
        while time.monotonic() - t0 < 4.0:
            rep = c.call("INCR", "n", timeout=5)
            if isinstance(rep, int):
                served.append(time.monotonic() - t0)
            else:
                assert tryagain(rep) == "zookeeper disconnected", rep
                break
            time.sleep(0.02)
        t_gate = time.monotonic() - t0
    assert served and served[-1] >= 1.2, "stopped forwarding %.2fs after the loss (grace 1.5 s)" % (
        served[-1] if served else 0)
    assert t_gate <= 2.3, "still forwarding %.2fs after the loss (grace 1.5 s)" % t_gate
    assert int(a.client().get("n")) == len(served)


def test_down_beyond_session_timeout(zk_fresh, kz_factory, zk_proxy_factory, redis_factory, znode_path):
    """ZooKeeper down longer than the session timeout: the proxy's own timer
    reports EXPIRED (`zookeeper session expired`) while the server is still
    unreachable.  The proxy is then paused (SIGSTOP) while ZooKeeper comes back
    and the znode is changed; after SIGCONT it opens a NEW session, re-reads the
    znode and sends the next writes to the new master only."""
    a, b = redis_factory(), redis_factory()
    kz = kz_factory(zk_fresh.hostport)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_fresh, znode_path, session_timeout=2000, pool={"on-no-master": "tryagain"})
    f = wait_ready(px, hp(a))
    sid = session_id(f, px)
    t_kill = time.monotonic()
    zk_fresh.kill()
    wait_state(px, "DISCONNECTED", timeout=2)
    f = wait_state(px, "EXPIRED", timeout=5)
    took = time.monotonic() - t_kill
    assert f.get("reason") == "zookeeper session expired", fmt_info(f)
    assert 1.8 <= took <= 3.6, "own timer: EXPIRED %.2fs after the server died (negotiated timeout 2000 ms)" % took
    with px.raw() as c:
        assert tryagain(c.call("SET", "x", "1")) == "zookeeper session expired"
    # stays EXPIRED while ZooKeeper is down (does not go back to DISCONNECTED / READY)
    states = watch_states(px, 0.6)
    assert {s for _, s, _ in states} == {"EXPIRED"}, states
    os.kill(px.pid, signal.SIGSTOP)
    try:
        zk_fresh.start()
        kz2 = kz_factory(zk_fresh.hostport)
        st_old = zstat(kz2, znode_path)
        zset(kz2, znode_path, plain(hp(b)))
        st = zstat(kz2, znode_path)
        assert st.mzxid > st_old.mzxid
    finally:
        os.kill(px.pid, signal.SIGCONT)
    f = wait_ready(px, hp(b), timeout=8)
    assert session_id(f, px) != sid, "same session id %s after the own timer declared it expired" % hex(sid)
    assert int(f.get("znode_mzxid", "-1")) == st.mzxid, fmt_info(f)
    with px.raw() as c:
        for i in range(20):
            assert c.call("SET", "new:%d" % i, "1") == "OK"
    assert a.client().keys("new:*") == [] and len(b.client().keys("new:*")) == 20
    log = log_text(px)
    assert "zookeeper session expired" in log and "zookeeper disconnected" in log, px.log_tail()


def test_server_paused(zk_fresh, kz_factory, zk_proxy_factory, redis_factory, znode_path):
    """SIGSTOP the server (TCP open, no answers): DISCONNECTED within about 2/3 of
    the session timeout, EXPIRED by the proxy's own timer later; SIGCONT: a new
    session, READY, forwarding resumes."""
    a = redis_factory()
    kz = kz_factory(zk_fresh.hostport)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_fresh, znode_path, session_timeout=2000, pool={"on-no-master": "tryagain"})
    f = wait_ready(px, hp(a))
    sid = session_id(f, px)
    kz.stop()                     # keep kazoo from hammering the paused server
    t0 = time.monotonic()
    zk_fresh.pause()
    try:
        f = wait_state(px, "DISCONNECTED", timeout=3)
        t_disc = time.monotonic() - t0
        assert f.get("reason") == "zookeeper disconnected", fmt_info(f)
        assert t_disc <= 2.0, "DISCONNECTED %.2fs after SIGSTOP (2/3 of 2000 ms = 1.33 s)" % t_disc
        with px.raw() as c:
            assert tryagain(c.call("PING")) == "zookeeper disconnected"
        f = wait_state(px, "EXPIRED", timeout=5)
        t_exp = time.monotonic() - t0
        assert f.get("reason") == "zookeeper session expired", fmt_info(f)
        assert t_exp >= 1.9, "EXPIRED %.2fs after SIGSTOP, before the 2000 ms timeout" % t_exp
        assert t_exp <= 4.2, "EXPIRED %.2fs after SIGSTOP (DISCONNECTED at %.2fs, timeout 2 s)" % (t_exp, t_disc)
        print("paused server: DISCONNECTED at %.2fs, EXPIRED at %.2fs" % (t_disc, t_exp))
        with px.raw() as c:
            assert tryagain(c.call("PING")) == "zookeeper session expired"
    finally:
        zk_fresh.resume()
    f = wait_ready(px, hp(a), timeout=8)
    assert session_id(f, px) != sid, "same session id after EXPIRED"
    with px.raw() as c:
        assert c.call("SET", "back", "1") == "OK"
    assert a.client().get("back") == b"1"


def _read_session_file(path):
    with open(path) as f:
        sid_hex, pw_hex = f.read().split()
    return int(sid_hex, 16), bytes.fromhex(pw_hex)


def test_session_expired_from_outside(zk_fresh, kz_factory, zk_proxy_factory, redis_factory, znode_path, tmp_path):
    """Expire the proxy's session from outside: attach to it with the id and
    password from `zk-session-file` and close it (zkutil.expire_session; a kazoo
    join + stop() races with the proxy stealing the session back).  The proxy must go through
    EXPIRED, open a NEW session (and rewrite the session file), re-read, READY."""
    a = redis_factory()
    kz = kz_factory(zk_fresh.hostport)
    zset(kz, znode_path, plain(hp(a)))
    sfile = str(tmp_path / "zksession.txt")
    px = zk_proxy_factory(zk_fresh, znode_path, session_timeout=2000, globals_={"zk-session-file": sfile},
                          pool={"on-no-master": "tryagain"})
    f = wait_ready(px, hp(a))
    sid = session_id(f, px)
    if not os.path.exists(sfile):
        pytest.xfail("zk-session-file %s not written by the proxy (directive accepted, not implemented)" % sfile)
    fsid, pw = _read_session_file(sfile)
    assert fsid == sid, "session file names %s, PROXY INFO %s" % (hex(fsid), hex(sid))
    assert len(pw) == 16, pw
    expire_session(zk_fresh.hostport, sid, pw)
    t0 = time.monotonic()
    f = wait_ready(px, hp(a), timeout=10)
    wait_for(lambda: session_id(pool_info(px), px) != sid, timeout=10, what="a new session id")
    f = pool_info(px)
    print("new session %s %.2fs after the close" % (hex(session_id(f, px)), time.monotonic() - t0))
    assert "zookeeper session expired" in log_text(px), "no EXPIRED transition logged:\n" + px.log_tail()
    nsid, _ = _read_session_file(sfile)
    assert nsid == session_id(f, px), "session file not rewritten for the new session"
    with px.raw() as c:
        assert c.call("SET", "k", "1") == "OK"
    assert a.client().get("k") == b"1"


def test_proxy_stopped_beyond_timeout(zk_fresh, kz_factory, zk_proxy_factory, redis_factory, znode_path):
    """SIGSTOP the proxy longer than its session timeout (the server expires the
    session), SIGCONT: EXPIRED (logged), then a NEW session, re-read, READY."""
    a = redis_factory()
    kz = kz_factory(zk_fresh.hostport)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_fresh, znode_path, session_timeout=2000)
    f = wait_ready(px, hp(a))
    sid = session_id(f, px)
    os.kill(px.pid, signal.SIGSTOP)
    try:
        time.sleep(3.5)
    finally:
        os.kill(px.pid, signal.SIGCONT)
    wait_for(lambda: session_id(pool_info(px), px) != sid, timeout=8, what="a new session")
    f = wait_ready(px, hp(a), timeout=8)
    assert "zookeeper session expired" in log_text(px), "no EXPIRED transition logged:\n" + px.log_tail()
    with px.raw() as c:
        assert c.call("SET", "k", "1") == "OK"
    assert a.client().get("k") == b"1"


@pytest.mark.parametrize("stop_s", [3.5, 1.0], ids=["beyond-timeout", "within-timeout"])
def test_command_queued_while_proxy_stopped(zk_fresh, kz_factory, zk_proxy_factory, redis_factory, znode_path,
                                            stop_s):
    """The proxy is stopped (SIGSTOP); meanwhile the znode moves to a new master
    and a client sends a command (it waits in the proxy's socket).  After
    SIGCONT that command must not go to the old master: the proxy has been out
    of touch with ZooKeeper for stop_s, longer (beyond-timeout: its session is
    gone) or shorter (within-timeout: the watch event is waiting in its
    ZooKeeper socket) than the session timeout; it lands on the new master."""
    a, b = redis_factory(), redis_factory()
    kz = kz_factory(zk_fresh.hostport)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_fresh, znode_path, session_timeout=2000, pool={"block-timeout": "10000"})
    wait_ready(px, hp(a))
    c = px.raw(timeout=15)
    try:
        assert c.call("SET", "pre", "1") == "OK"
        os.kill(px.pid, signal.SIGSTOP)
        try:
            zset(kz, znode_path, plain(hp(b)))
            c.send(encode("SET", "during", "1"))
            time.sleep(stop_s)
        finally:
            os.kill(px.pid, signal.SIGCONT)
        assert c.read_reply(timeout=12) == "OK"
    finally:
        c.close()
    wait_ready(px, hp(b), timeout=10)
    assert a.client().get("during") is None, (
        "SET sent while the proxy was stopped %.1fs went to the OLD master after SIGCONT:\n%s"
        % (stop_s, px.log_tail(12)))
    assert b.client().get("during") == b"1"


def test_started_while_zookeeper_down(tmp_path, zk_required, kz_factory, zk_proxy_factory, redis_factory,
                                      znode_path, request):
    """ZooKeeper not reachable at start: CONNECTING (`zookeeper connecting`),
    answered at once in tryagain mode; once the server is up: READY."""
    a = redis_factory()
    zk = ZkServer(str(tmp_path / "zk-late"))
    px = zk_proxy_factory(zk.hostport, znode_path, session_timeout=2000, pool={"on-no-master": "tryagain"})
    try:
        f = wait_state(px, ("CONNECTING", "INIT", "DISCONNECTED", "EXPIRED"), timeout=3)
        time.sleep(0.2)
        f = pool_info(px)
        assert f.get("state") == "CONNECTING", fmt_info(f)
        assert f.get("reason") == "zookeeper connecting", fmt_info(f)
        with px.raw() as c:
            assert tryagain(c.call("PING")) == "zookeeper connecting"
        zk.start()
        kz = kz_factory(zk.hostport)
        zset(kz, znode_path, plain(hp(a)))
        wait_ready(px, hp(a), timeout=10)
        with px.raw() as c:
            assert c.call("SET", "k", "1") == "OK"
        assert a.client().get("k") == b"1"
    finally:
        zk.stop()
