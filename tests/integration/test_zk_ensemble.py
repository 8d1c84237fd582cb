"""ZooKeeper ensemble faults (3 servers on loopback, shared by the module and
healed before every test): the server the proxy is connected to dies, the
leader dies, and the master changes while the proxy is cut off (SIGSTOP of
the proxy itself) with a client writing through it all along: MONITOR on the
old master proves that nothing reached it after the change."""

import contextlib
import os
import signal
import time

import pytest

from conftest import ADMIN_NAME, LOCALHOST, wait_for
from zkutil import zset, zstat, plain, pool_info, session_id, fmt_info, AckWriter, Monitor

pytestmark = pytest.mark.proxy_only


def hp(srv):
    return "%s:%d" % (LOCALHOST, srv.port)


def wait_ready(px, master, timeout=10.0):
    """Wait until the pool is READY on `master` ("h:p")."""
    last = {}

    def ok():
        last.clear()
        last.update(pool_info(px))
        return last.get("state") == "READY" and last.get("master") == master and dict(last)
    try:
        return wait_for(ok, timeout=timeout, what="READY on %s" % master)
    except AssertionError as e:
        raise AssertionError("%s\nlast: %s\nlog:\n%s" % (e, fmt_info(last), px.log_tail(25))) from None


def log_text(px):
    with open(px.logpath, errors="replace") as f:
        return f.read()


def proxy_server(ens, sid):
    return wait_for(lambda: ens.server_with_session(sid), timeout=5, what="the member holding session %s" % hex(sid))


@pytest.mark.parametrize("victim", ["connected", "leader"])
def test_member_killed(zk_ensemble, kz_factory, zk_proxy_factory, redis_factory, znode_path, victim):
    """Kill the member the proxy is connected to, or the leader: the proxy gates
    (DISCONNECTED, logged) and comes back READY on the SAME session through
    another member; writes land on the master throughout (held, not lost)."""
    a, b = redis_factory(), redis_factory()
    kz = kz_factory(zk_ensemble.hosts)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_ensemble, znode_path, session_timeout=4000, pool={"block-timeout": "10000"})
    f = wait_ready(px, hp(a))
    sid = session_id(f, px)
    conn = proxy_server(zk_ensemble, sid)
    leader = zk_ensemble.leader()
    target = conn if victim == "connected" else leader
    print("proxy on %d (%s), leader %d, killing %d" % (conn.port, conn.mode(), leader.port, target.port))
    with px.raw(timeout=15) as c:
        assert c.call("SET", "k", "0") == "OK"
        target.kill()
        t0 = time.monotonic()
        for i in range(1, 21):
            assert c.call("INCR", "k", timeout=12) == i
        f = wait_ready(px, hp(a), timeout=10)
        print("READY again after %.2fs" % (time.monotonic() - t0))
    assert session_id(f, px) == sid, "new session %s (was %s) after losing one member" % (hex(session_id(f, px)), hex(sid))
    now = proxy_server(zk_ensemble, sid)
    assert now is not target
    if target is conn:
        assert "zookeeper disconnected" in log_text(px), "the disconnect was not logged:\n" + px.log_tail()
    assert a.client().get("k") == b"20"
    # the watch still works after the move: change the master
    zset(kz, znode_path, plain(hp(b)))
    wait_ready(px, hp(b), timeout=5)
    with px.raw() as c:
        assert c.call("SET", "moved", "1") == "OK"
    assert b.client().get("moved") == b"1" and a.client().get("moved") is None


def _ready_on(f, master):
    return f.get("state") == "READY" and f.get("master") == master


def _first_log_time(px, text):
    """Unix time of the first log line containing `text` (log stamps are local time)."""
    import datetime
    for line in log_text(px).splitlines():
        if text in line:
            stamp = " ".join(line.split()[:2])
            return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return None


@contextlib.contextmanager
def watched_writer(px, old):
    """A writer through the proxy, SET w:<n> <n> as fast as replies come back
    (an error is recorded and the next n sent 10 ms later), and MONITOR on
    the old master. Yields (writer, monitor); on the way out the writer
    stops, then MONITOR 0.1 s later."""
    mon = Monitor(old, ADMIN_NAME)
    w = AckWriter(px, [("SET", "w:{seq}", "{seq}")], timeout=20, is_ack=lambda rep: rep == "OK")
    w.start()
    try:
        yield w, mon
    finally:
        w.stop()
        time.sleep(0.1)
        mon.stop()


def writes_after(lines, marker):
    """The writer's commands among the MONITOR lines after marker (which
    MONITOR must have seen)."""
    idx = [i for i, l in enumerate(lines) if marker in l]
    assert idx, "marker not seen by MONITOR (%d lines)" % len(lines)
    return [l for l in lines[idx[0] + 1:] if '"w:' in l]


def check_writes(w, old, new):
    """The writer saw no error but -TRYAGAIN, every write it had
    acknowledged is on exactly one of the two servers, and those on the old
    master all came before those on the new. Returns the n on each."""
    assert w.failure is None, w.failure
    assert not [e for e in w.errors if not e.text.startswith("TRYAGAIN")], w.errors[:5]
    on_old = {int(k.split(b":")[1]) for k in old.client().keys("w:*")}
    on_new = {int(k.split(b":")[1]) for k in new.client().keys("w:*")}
    acked = {ack.seq for ack in w.acks}
    assert acked <= (on_old | on_new), "acknowledged writes missing: %s" % sorted(acked - on_old - on_new)[:10]
    assert not (on_old & on_new)
    assert on_new and min(on_new) > max(on_old), \
        "writes interleaved between masters: max on old %d, min on new %d" % (max(on_old), min(on_new))
    return on_old, on_new


@pytest.mark.parametrize("stop_s", [3.5, 1.0], ids=["beyond-timeout", "within-timeout"])
def test_master_changed_while_partitioned(zk_ensemble, kz_factory, zk_proxy_factory, redis_factory, znode_path,
                                          stop_s):
    """The proxy is cut off (SIGSTOP of the proxy: no ZooKeeper traffic, no
    client traffic) while the znode moves to a new master; a client keeps
    writing through the proxy.  After SIGCONT, nothing from the proxy may reach
    the old master (checked with MONITOR against a marker written to the old
    master right after the change), and the writes continue on the new one."""
    a, b = redis_factory(), redis_factory()
    kz = kz_factory(zk_ensemble.hosts)
    zset(kz, znode_path, plain(hp(a)))
    px = zk_proxy_factory(zk_ensemble, znode_path, session_timeout=2000, pool={"block-timeout": "10000"})
    f = wait_ready(px, hp(a))
    sid = session_id(f, px)
    with watched_writer(px, a) as (w, mon):
        adm = a.client()
        wait_for(lambda: len(w.acks) >= 200, timeout=10, what="writes through the proxy")
        os.kill(px.pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        try:
            time.sleep(0.1)           # the last writes sent before the stop have landed
            zset(kz, znode_path, plain(hp(b)))
            st = zstat(kz, znode_path)
            marker = "rz-marker-%d" % st.mzxid
            assert adm.echo(marker) == marker.encode()
            n_before = len(w.acks)
            time.sleep(max(0.0, stop_s - (time.monotonic() - t_stop)))
        finally:
            os.kill(px.pid, signal.SIGCONT)
        f = wait_ready(px, hp(b), timeout=10)
        wait_for(lambda: len(w.acks) >= n_before + 200, timeout=10, what="writes after the switch")
    late = writes_after(mon.lines, marker)
    assert not late, ("%d writes reached the OLD master after the znode change (proxy stopped %.1fs, "
                      "session timeout 2000 ms); first: %s" % (len(late), stop_s, late[:3]))
    on_a, on_b = check_writes(w, a, b)
    if stop_s > 2.0:
        assert session_id(f, px) != sid, "same session after a %.1fs stop with a 2 s timeout" % stop_s
    print("stop %.1fs: %d writes on old, %d on new, %d TRYAGAIN, session %s -> %s"
          % (stop_s, len(on_a), len(on_b), len(w.errors), hex(sid), hex(session_id(f, px))))


def test_member_paused_master_changed(zk_ensemble, kz_factory, zk_proxy_factory, redis_factory, znode_path):
    """The member the proxy is connected to is paused (SIGSTOP: TCP open, no
    answers) and the master changes through the other two.  The proxy gates
    (DISCONNECTED) within about 2/3 of the session timeout, reconnects to a
    live member on the SAME session, re-reads, and goes READY on the new
    master; from the moment it reported DISCONNECTED nothing it sends reaches
    the old master (MONITOR), and a writer going through it all along ends up
    on the new master."""
    a, b = redis_factory(), redis_factory()
    px = zk_proxy_factory(zk_ensemble, znode_path, session_timeout=3000, pool={"block-timeout": "10000"})
    kz0 = kz_factory(zk_ensemble.hosts)
    zset(kz0, znode_path, plain(hp(a)))
    f = wait_ready(px, hp(a))
    sid = session_id(f, px)
    conn = proxy_server(zk_ensemble, sid)
    others = [s for s in zk_ensemble.servers if s is not conn]
    kz = kz_factory(",".join(s.hostport for s in others))
    with watched_writer(px, a) as (w, mon):
        adm = a.client()
        wait_for(lambda: len(w.acks) >= 100, timeout=10, what="writes through the proxy")
        t0 = time.monotonic()
        conn.pause()
        try:
            zset(kz, znode_path, plain(hp(b)))
            # the gated window can be a few ms: wait until it is no longer READY on a
            wait_for(lambda: not _ready_on(pool_info(px), hp(a)), timeout=4, interval=0.005,
                     what="the proxy to leave READY on the old master")
            t_gate = time.monotonic() - t0
            marker = "rz-marker-gated"
            assert adm.echo(marker) == marker.encode()
            f = wait_ready(px, hp(b), timeout=10)
            t_ready = time.monotonic() - t0
            n = len(w.acks)
            wait_for(lambda: len(w.acks) >= n + 100, timeout=10, what="writes after the switch")
        finally:
            conn.resume()
    print("member %d paused: gated at %.2fs, READY on new master at %.2fs" % (conn.port, t_gate, t_ready))
    assert t_gate <= 3.0, "gated %.2fs after the member stopped answering (2/3 of 3000 ms = 2 s)" % t_gate
    assert session_id(f, px) == sid, "new session after a short member pause (timeout 3000 ms)"
    lines = mon.lines
    late = writes_after(lines, marker)
    assert not late, "%d writes reached the old master after the proxy gated; first: %s" % (len(late), late[:3])
    # and none after the first gating transition in the log (MONITOR and log clocks agree to ~1 ms)
    t_disc = _first_log_time(px, "-> DISCONNECTED")
    assert t_disc, "no transition to DISCONNECTED logged:\n" + px.log_tail()
    after = [l for l in lines if '"w:' in l and float(l.split()[0]) > t_disc + 0.002]
    assert not after, "%d writes reached the old master after the logged DISCONNECTED (%.3f); first: %s" % (
        len(after), t_disc, after[:3])
    check_writes(w, a, b)
