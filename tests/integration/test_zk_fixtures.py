"""Self-tests of the ZooKeeper fixtures (no proxy): if these fail, the other
test_zk_* failures say nothing about rzproxy."""

import time

from conftest import wait_for
from zkutil import zset, zdelete, zstat, expire_session, four_letter


def test_standalone_pause_kill_restart(zk_fresh, kz_factory):
    kz = kz_factory(zk_fresh.hostport)
    st = zset(kz, "/fx/a", b"1")
    assert zk_fresh.mode() == "standalone" and zk_fresh.ruok(), zk_fresh.log_tail()
    wait_for(lambda: kz.client_id[0] in zk_fresh.session_ids(), timeout=5,
             what="kazoo's session %s in `cons`" % hex(kz.client_id[0]))
    zk_fresh.pause()
    assert not zk_fresh.ruok(), "a paused server answered ruok"
    assert zk_fresh.mode() == "", "a paused server answered srvr"
    zk_fresh.resume()
    wait_for(zk_fresh.ruok, timeout=5, what="ruok after SIGCONT")
    zk_fresh.kill()
    assert four_letter(zk_fresh.port, "ruok", timeout=0.3) == "", "killed server answered ruok"
    zk_fresh.start()
    assert kz.retry(kz.get, "/fx/a")[0] == b"1"
    assert zstat(kz, "/fx/a").mzxid == st.mzxid, "data changed over a restart"
    zdelete(kz, "/fx/a")
    assert zstat(kz, "/fx/a") is None


def test_expire_session_from_outside(zk_server, kz_factory):
    kz = kz_factory(zk_server.hostport)
    states = []
    kz.add_listener(states.append)
    sid, pw = kz.client_id
    expire_session(zk_server.hostport, sid, pw)
    wait_for(lambda: "LOST" in states, timeout=10, what="kazoo told its session expired (states %r)" % states)
    wait_for(lambda: kz.connected and kz.client_id[0] != sid, timeout=10, what="kazoo on a new session")


def test_ensemble_failover(zk_ensemble, kz_factory):
    kz = kz_factory(zk_ensemble.hosts)
    zset(kz, "/fx/e", b"1")
    sid = kz.client_id[0]
    holder = wait_for(lambda: zk_ensemble.server_with_session(sid), timeout=5, what="session holder")
    leader = zk_ensemble.leader()
    assert leader is not None
    leader.kill()
    t0 = time.monotonic()
    wait_for(lambda: zk_ensemble.leader() not in (None, leader), timeout=15, what="a new leader")
    assert time.monotonic() - t0 < 10
    assert kz.retry(kz.get, "/fx/e")[0] == b"1"
    assert kz.client_id[0] == sid
    assert holder in zk_ensemble.servers
