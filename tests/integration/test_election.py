"""The seed's election design (issue 14): `rzproxy-ctl candidate` beside
each redis-server, in the zk gem's ZK::Election layout, observed by rzproxy
through `znode ROOT/leader_ack`. Real ZooKeeper (tickTime 200: sessions of
1.5 s), three redis-servers with replica-read-only, rzproxy in both
on-no-master modes: the SIGTERM rounds run once per mode, the failure
tests (redis killed or hung, partition, candidate frozen, ZooKeeper down)
with a proxy of each mode side by side, writers on both.

- a missing leader_ack gates like a missing znode, and the proxy follows
  the first leader;
- SIGTERM the leader's candidate ten times in a row (each time restarted
  as a follower) under writers: every acknowledged write on the final
  leader, in order; no error at all in block mode;
- the leader's redis killed (SIGKILL) or hung (SIGSTOP): a new leader
  within a bounded time, the proxy follows, and what was lost is measured:
  only writes acknowledged just before the failure (asynchronous
  replication), none earlier;
- the leader's candidate cut from ZooKeeper beyond its session (a relay
  that falls silent): no two servers accept writes at the same time
  (MONITOR on both), and the old leader ends up a replica;
- ballots created by kazoo with the gem's naming are read the same way;
- --exec: the candidate starts its redis-server and follows its life;
- ballots and leader_ack take ROOT's ACL; a leader's candidate frozen past
  its session is fenced by the winner; ZooKeeper itself down longer than
  the session; a member of a three-server ensemble lost under the leader;
  TLS-only servers with an ACL user.
"""

import contextlib
import os
import signal
import threading
import time

import pytest

from conftest import LOCALHOST, Error, RespConn, free_port, parse_show, wait_for
from electutil import BALLOT_RE, Candidate, Election, Relay
from zkutil import (AckWriter, HoldRelay, LOST, Monitor, calls, fmt_info, pool_info, tryagain,
                    wait_master, wait_replicas, wait_state)

pytestmark = pytest.mark.proxy_only

SESSION_MS = 1500                    # candidates' zk-session-timeout (tickTime 200)
ROUNDS = int(os.environ.get("RZ_ELECT_ROUNDS", "10"))


@pytest.fixture
def election(zk_server, kz, redis_factory, tmp_path, request):
    """make(n=3, root=None, **kw) -> Election under this test's own root;
    every candidate is stopped afterwards (their logs printed on failure)."""
    made = []

    def make(n=3, root=None, zk=None, kzc=None, **kw):
        name = "".join(ch if ch.isalnum() else "_" for ch in request.node.name)
        zk = zk or zk_server
        kw.setdefault("session_timeout", SESSION_MS)
        el = Election(root or "/_zkelection/" + name, getattr(zk, "hosts", None) or zk.hostport,
                      str(tmp_path), kzc or kz, redis_factory, n=n, **kw)
        made.append(el)
        return el

    yield make
    failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
    reports = []
    for el in made:
        if failed:
            print(el.logs(40))
        el.stop()
        reports += el.sanitizer_reports()
    assert not reports, "sanitizer report from a candidate:\n%s" % "\n\n".join(reports)


def start_all(el, order=None):
    """Start the candidates in order (the first wins); wait for the leader
    and every follower's link. Returns the leader's index."""
    order = list(order if order is not None else range(len(el.servers)))
    el.start(order[0])
    lead = el.wait_leader()
    assert lead == order[0], "the first candidate should win: %d\n%s" % (lead, el.logs())
    for i in order[1:]:
        el.start(i)
    for i in order[1:]:
        el.wait_replica(i, lead)
    return lead


def writer(px, idx, stop, **kw):
    """INCR c:<idx>, RPUSH l:<idx> <seq> through the proxy, one at a time;
    -TRYAGAIN (did not run) is retried."""
    kw.setdefault("retry_tryagain", True)
    kw.setdefault("stop_on_error", True)
    return AckWriter(px, [("INCR", "c:{idx}"), ("RPUSH", "l:{idx}", "{seq}")], idx=idx, stop=stop,
                     timeout=30, **kw)


@contextlib.contextmanager
def writing(px, n=3, make=writer):
    """n writers through px, or through each proxy of a list (both_modes),
    make(px, idx, stop): writer or TimedWriter; at work inside the block,
    stopped and joined on the way out, however it is left."""
    pxs = px if isinstance(px, list) else [px]
    stop = threading.Event()
    writers = [make(p, k * n + i, stop) for k, p in enumerate(pxs) for i in range(n)]
    for w in writers:
        w.start()
    try:
        yield writers
    finally:
        stop.set()
        for w in writers:
            w.join(40)


def both_modes(zk_proxy_factory, zk, znode, **pool):
    """A proxy in each on-no-master mode on the same znode, for writers on
    both: [block, tryagain], each with .mode."""
    out = []
    for mode in ("block", "tryagain"):
        opts = {"block-timeout": "10000"}
        opts.update(pool)
        opts["on-no-master"] = mode
        px = zk_proxy_factory(zk, znode, pool=opts)
        px.mode = mode
        out.append(px)
    return out


def wait_masters(pxs, addr, timeout=10):
    for px in pxs:
        wait_master(px, addr, timeout=timeout)


def check_all_acked(writers, srv, **kw):
    """Every acknowledged write of every writer on srv, in order (kw: the
    credentials srv wants)."""
    with srv.client(**kw) as c:
        for w in writers:
            incrs = [a.reply for a in w.acks if a.cmd == "INCR"]
            pushes = [a.seq for a in w.acks if a.cmd == "RPUSH"]
            assert incrs == list(range(1, len(incrs) + 1)), "writer %d: INCR replies skip" % w.idx
            got = int(c.get("c:%d" % w.idx) or 0)
            assert got == len(incrs), "writer %d: counter %d on the leader, %d acknowledged" % (
                w.idx, got, len(incrs))
            items = [int(x) for x in c.lrange("l:%d" % w.idx, 0, -1)]
            assert items == pushes, "writer %d: list differs from the acknowledged pushes " \
                "(%d on the leader, %d acknowledged; missing %s)" % (
                    w.idx, len(items), len(pushes), sorted(set(pushes) - set(items))[:10])


def wait_progress(writers, n=4, timeout=15):
    before = [len(w.acks) for w in writers]
    wait_for(lambda: all(len(w.acks) >= b + n or w.failure or w.errors
                         for w, b in zip(writers, before)),
             timeout=timeout, what="every writer progressing")


# ---------------------------------------------------------------- the ack gates

@pytest.mark.parametrize("mode", ["tryagain", "block"])
def test_missing_ack_gates_like_a_missing_znode(election, zk_proxy_factory, zk_server, mode):
    el = election(n=1)
    px = zk_proxy_factory(zk_server, el.ack, pool={"on-no-master": mode, "block-timeout": "10000"})
    f = wait_state(px, "NO_NODE")
    assert f["reason"] == "znode missing", fmt_info(f)
    c = px.raw(timeout=15)
    try:
        if mode == "tryagain":
            assert tryagain(c.call("SET", "k", "1")) == "znode missing"
            el.start(0)
        else:
            c.cmd("SET", "k", "1")          # held until there is a leader
            time.sleep(0.3)
            assert c.nothing_pending(0.1), "answered without a leader: %r" % c.pending()
            el.start(0)
        assert el.wait_leader() == 0
        wait_master(px, el.addr(0))
        if mode == "tryagain":
            assert c.call("SET", "k", "1") == "OK"
        else:
            assert c.read_reply(timeout=10) == "OK"
        assert el.servers[0].client().get("k") == b"1"
        # the only candidate stops: no one to hand over to, so no ack: gated again
        assert el.cands[0].terminate() == 0
        wait_state(px, "NO_NODE", timeout=5)
        if mode == "tryagain":
            assert tryagain(c.call("SET", "k", "2")) == "znode missing"
    finally:
        c.close()
    # its redis stays a master, with nothing sent to it
    assert el.role(0)["role"] == "master"


# ---------------------------------------------------------------- SIGTERM x 10

@pytest.mark.parametrize("mode", ["block", "tryagain"])
def test_sigterm_leader_repeatedly(election, zk_proxy_factory, zk_server, mode):
    el = election()
    lead = start_all(el)
    px = zk_proxy_factory(zk_server, el.ack, globals_={"loglevel": "info"},
                          pool={"on-no-master": mode, "block-timeout": "10000"})
    wait_master(px, el.addr(lead))
    took = []
    with writing(px, 4) as writers:
        wait_progress(writers, 20)
        for k in range(ROUNDS):
            old = lead
            t0 = time.monotonic()
            rc = el.cands[old].terminate()
            assert rc == 0, "round %d: candidate %d exited %s\n%s" % (k, old, rc, el.cands[old].log_tail())
            lead = el.wait_leader(not_=old)
            wait_master(px, el.addr(lead), timeout=10)
            took.append(time.monotonic() - t0)
            # the old leader's redis follows the new one; its candidate comes back
            el.wait_replica(old, lead)
            el.start(old)
            el.cands[old].wait_log("-> FOLLOWER")
            wait_progress(writers)
    for w in writers:
        assert w.failure is None, "writer %d: %s" % (w.idx, w.failure)
        assert not w.errors, "writer %d: %s" % (w.idx, w.errors[:3])
        if mode == "block":
            assert w.tryagains == 0, "writer %d saw %d -TRYAGAIN in block mode" % (w.idx, w.tryagains)
    check_all_acked(writers, el.servers[lead])
    for i in range(3):
        if i != lead:
            el.wait_replica(i, lead)
    assert int(pool_info(px)["master_changes"]) == ROUNDS + 1
    print("%s: %d handovers, SIGTERM to the proxy on the new leader: median %.0f ms, max %.0f ms; "
          "%d writes acknowledged" % (mode, ROUNDS, 1000 * sorted(took)[len(took) // 2],
                                      1000 * max(took), sum(len(w.acks) for w in writers)))


# ---------------------------------------------------------------- reads from the followers

def test_reads_go_to_the_followers(election, zk_proxy_factory, zk_server):
    """read-from replicas on the leader_ack: the followers' ballots are the
    replicas; after a handover the new leader's are (the old leader, back
    as a follower, among them)."""
    el = election()
    lead = start_all(el)
    px = zk_proxy_factory(zk_server, el.ack, pool={"read-from": "replicas"})
    wait_master(px, el.addr(lead))
    wait_replicas(px, {el.addr(i): "ok" for i in range(3) if i != lead})
    el.servers[lead].client().set("rd:k", "v")

    def reads_by_server(n=30):
        before = [calls(s, "get") for s in el.servers]
        with px.raw() as c:
            for _ in range(n):
                assert c.call("GET", "rd:k") == b"v"
        return [calls(s, "get") - b for s, b in zip(el.servers, before)]
    for i in range(3):
        if i != lead:
            el.wait_replica(i, lead)
    wait_for(lambda: all(s.client().get("rd:k") == b"v" for s in el.servers), timeout=10,
             what="replicated")
    got = reads_by_server()
    assert got[lead] == 0 and all(got[i] > 0 for i in range(3) if i != lead), got

    old = lead
    assert el.cands[old].terminate() == 0
    lead = el.wait_leader(not_=old)
    wait_master(px, el.addr(lead), timeout=10)
    el.wait_replica(old, lead)
    el.start(old)
    el.cands[old].wait_log("-> FOLLOWER")
    wait_replicas(px, {el.addr(i): "ok" for i in range(3) if i != lead}, timeout=20)
    got = reads_by_server()
    assert got[lead] == 0 and all(got[i] > 0 for i in range(3) if i != lead), got


# ---------------------------------------------------------------- redis dies or hangs

class TimedWriter(threading.Thread):
    """RPUSH l:<idx> <seq> through the proxy, one at a time, remembering
    when each was acknowledged. A lost connection or an "outcome unknown"
    reply: a new connection, the next seq. -TRYAGAIN: the same again."""

    def __init__(self, px, idx, stop):
        super().__init__(daemon=True)
        self.px, self.idx, self.stop_ev = px, idx, stop
        self.acked = []                 # (seq, monotonic time)
        self.unknown, self.refused, self.failure = [], [], None

    def run(self):
        conn, seq = None, 0
        try:
            while not self.stop_ev.is_set():
                if conn is None:
                    conn = RespConn.tcp(self.px.port, timeout=30)
                try:
                    rep = conn.call("RPUSH", "l:%d" % self.idx, seq, timeout=30)
                except Exception:
                    self.unknown.append(seq)
                    conn.close()
                    conn, seq = None, seq + 1
                    continue
                if isinstance(rep, int):
                    self.acked.append((seq, time.monotonic()))
                elif isinstance(rep, Error) and rep.startswith("TRYAGAIN"):
                    time.sleep(0.01)
                    continue
                elif rep == LOST:
                    self.unknown.append(seq)
                    conn.close()
                    conn = None
                else:
                    self.refused.append((seq, str(rep)))
                seq += 1
        except Exception as e:
            self.failure = repr(e)
        finally:
            if conn is not None:
                conn.close()


def wait_streaming(el, lead, timeout=10):
    """Every follower has reached an offset the leader had after the
    writers started: the replication stream flows. (After a full sync,
    redis 7.0 streams to a replica only once its first REPLCONF ACK is in,
    up to a second later; until then a crash of the master loses
    everything written since the snapshot.)"""
    target = int(el.role(lead)["master_repl_offset"])
    for i in range(len(el.servers)):
        if i != lead:
            wait_for(lambda: int(el.role(i).get("slave_repl_offset", -1)) >= target, timeout=timeout,
                     interval=0.02, what="server %d streaming from the leader" % i)


def measure_loss(writers, srv, t_fail):
    """Per writer: the acknowledged seqs missing on srv, and how long
    before t_fail each was acknowledged. Checks the list is in order."""
    lost = []
    with srv.client() as c:
        for w in writers:
            items = [int(x) for x in c.lrange("l:%d" % w.idx, 0, -1)]
            assert items == sorted(items), "writer %d: list out of order" % w.idx
            have = set(items)
            lost += [(w.idx, s, t_fail - t) for s, t in w.acked if s not in have]
    return lost


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_leader_redis_dies_or_hangs(election, zk_proxy_factory, zk_server, how):
    el = election()
    lead = start_all(el)
    pxs = both_modes(zk_proxy_factory, zk_server, el.ack, **{"drain-timeout": "1000"})
    wait_masters(pxs, el.addr(lead))
    old = lead
    try:
        with writing(pxs, 2, make=TimedWriter) as writers:
            wait_for(lambda: all(len(w.acked) >= 200 for w in writers), timeout=15, what="writes")
            wait_streaming(el, old)
            t_fail = time.monotonic()
            el.servers[old].kill(signal.SIGKILL) if how == "SIGKILL" else \
                os.kill(el.servers[old].pid, signal.SIGSTOP)
            lead = el.wait_leader(not_=old, timeout=10)
            t_leader = time.monotonic() - t_fail
            wait_masters(pxs, el.addr(lead), timeout=10)
            t_proxy = time.monotonic() - t_fail
            n = [len(w.acked) for w in writers]
            wait_for(lambda: all(len(w.acked) >= k + 50 for w, k in zip(writers, n)), timeout=15,
                     what="writes on the new leader")
    finally:
        if how == "SIGSTOP":
            os.kill(el.servers[old].pid, signal.SIGCONT)
    for w in writers:
        assert w.failure is None and not w.refused, (w.idx, w.failure, w.refused[:3])
    # a new leader within a bounded time: detection (3 failed checks) + election
    assert t_leader < 6.0, "new leader only after %.1fs" % t_leader
    assert "giving the leadership up" in el.cands[old].log(), el.cands[old].log_tail()
    lost = measure_loss(writers, el.servers[lead], t_fail)
    # asynchronous replication can lose only writes acknowledged just before
    # the failure (not yet shipped to the replica), never older ones
    assert all(age < 0.5 for _, _, age in lost), "lost writes acknowledged long before: %s" % lost[:10]
    assert len(lost) <= 4 * len(writers), "lost %d acknowledged writes: %s" % (len(lost), lost[:10])
    unknown = sum(len(w.unknown) for w in writers)
    print("%s: new leader after %.0f ms, proxy on it after %.0f ms; %d acknowledged writes lost "
          "(acknowledged %s ms before the failure); %d of unknown outcome; %d acknowledged in all"
          % (how, 1000 * t_leader, 1000 * t_proxy, len(lost),
             ", ".join("%.1f" % (1000 * a) for _, _, a in lost) or "-", unknown,
             sum(len(w.acked) for w in writers)))
    if how == "SIGSTOP":
        # back from the stop: its candidate makes it follow the new leader
        el.wait_replica(old, lead, timeout=15)
        el.cands[old].wait_log("-> FOLLOWER", timeout=10)


def test_next_ballot_behind_gives_the_election_away(election, zk_proxy_factory, zk_server):
    """The next ballot's server lags behind another follower (its link to
    the leader held by a relay) when the leader's redis is killed: it must
    not promote itself and drop the writes the other holds. It gives the
    election to the follower that is ahead, which leads: only what
    asynchronous replication allows is lost (acknowledged just before the
    kill), not the writes the lagging one missed."""
    el = election()
    lead = start_all(el, order=[0])
    el.start(2)                                   # ballots: 0, then 2 (next), then 1
    el.wait_replica(2, lead)
    el.cands[2].wait_log("-> FOLLOWER")
    el.start(1)
    el.wait_replica(1, lead)
    assert [el.index(a) for _, a in el.ballots()] == [0, 2, 1]
    relay = HoldRelay(el.servers[0].port)
    relay.start()

    def acked_more(writers, n):
        base = [len(w.acked) for w in writers]
        wait_for(lambda: all(len(w.acked) >= b + n for w, b in zip(writers, base)), timeout=15,
                 what="%d more writes from each writer" % n)
    try:
        with el.client(2) as c:
            c.slaveof(LOCALHOST, relay.port)     # 2 now follows 0 through the relay
        wait_for(lambda: el.role(2).get("master_link_status") == "up"
                 and int(el.role(2)["master_port"]) == relay.port, timeout=15, what="2 through the relay")
        pxs = both_modes(zk_proxy_factory, zk_server, el.ack)
        wait_masters(pxs, el.addr(lead))
        with writing(pxs, 2, make=TimedWriter) as writers:
            acked_more(writers, 20)
            wait_streaming(el, lead)
            relay.flowing.clear()                # 2 stops getting 0's writes; 1 goes on
            acked_more(writers, 30)
            missed = int(el.role(1)["slave_repl_offset"]) - int(el.role(2)["slave_repl_offset"])
            mark = el.cands[2].log_size()
            t_fail = time.monotonic()
            el.servers[0].kill(signal.SIGKILL)
            el.cands[2].wait_log("holds writes ours lacks", after=mark, timeout=15)
            new = el.wait_leader(not_=0, timeout=20)
            wait_masters(pxs, el.addr(new), timeout=15)
            acked_more(writers, 20)
    finally:
        relay.close()
    assert missed > 0, "2 did not fall behind"
    assert new == 1, "the follower that was behind took the lead\n%s" % el.logs()
    line = el.cands[2].log()[mark:]
    assert "giving it the election" in line and el.addr(1) in line, el.cands[2].log_tail()
    for w in writers:
        assert w.failure is None and not w.refused, (w.idx, w.failure, w.refused[:3])
    lost = measure_loss(writers, el.servers[1], t_fail)
    # 2 lacked at least 30 acknowledged writes of each writer: had it led,
    # they would all be gone
    assert len(lost) <= 4 * len(writers), "lost %d acknowledged writes: %s" % (len(lost), lost[:10])
    assert all(age < 0.5 for _, _, age in lost), lost[:10]
    el.wait_replica(2, 1)


# ---------------------------------------------------------------- partition

MON_WRITE = ('"INCR"', '"RPUSH"')


def client_writes(lines, server_ports):
    """MONITOR timestamps of the writers' commands from clients (not from a
    master's replication link)."""
    out = []
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) < 4 or not any(parts[3].startswith(w) for w in MON_WRITE):
            continue
        port = parts[2].rstrip("]").rsplit(":", 1)[-1]
        if port.isdigit() and int(port) in server_ports:
            continue
        out.append(float(parts[0]))
    return out


def check_writers_clean(writers, srv, **kw):
    """No writer failed or saw an error, none through a block-mode proxy
    saw a -TRYAGAIN, and every acknowledged write is on srv."""
    for w in writers:
        assert w.failure is None and not w.errors, (w.idx, w.failure, w.errors[:3])
        if getattr(w.px, "mode", "block") == "block":
            assert w.tryagains == 0, (w.idx, w.tryagains)
    check_all_acked(writers, srv, **kw)


def write_times(el, lines):
    """The client writes MONITOR saw on the old and on the new leader."""
    ports = [s.port for s in el.servers]
    old_w, new_w = client_writes(lines[0], ports), client_writes(lines[1], ports)
    assert old_w and new_w, "MONITOR saw no writes (%d, %d)" % (len(old_w), len(new_w))
    return old_w, new_w


def test_partition_beyond_the_session(election, zk_proxy_factory, zk_server, kz):
    el = election()
    relay = Relay(zk_server.port)
    try:
        cut_conf = el.conf_for(relay.hostport, "c0-relay")
        el.start(0, conf=cut_conf)
        assert el.wait_leader() == 0
        for i in (1, 2):
            el.start(i)
        for i in (1, 2):
            el.wait_replica(i, 0)
        succ = el.index(el.ballots()[1][1])  # the next ballot: it wins
        el.cands[0].wait_log("successor: %s" % el.addr(succ))
        pxs = both_modes(zk_proxy_factory, zk_server, el.ack)
        wait_masters(pxs, el.addr(0))
        mons = [Monitor(el.servers[0]), Monitor(el.servers[succ])]
        try:
            with writing(pxs, 2) as writers:
                wait_progress(writers, 50)
                mark = el.cands[0].log_size()
                t_cut = time.monotonic()
                relay.cut()
                el.cands[0].wait_log("writes paused", timeout=SESSION_MS / 1000 * 2, after=mark)
                t_paused = time.monotonic() - t_cut
                lead = el.wait_leader(not_=0, timeout=15)
                t_new = time.monotonic() - t_cut
                assert lead == succ, "the next ballot should have won"
                wait_masters(pxs, el.addr(lead), timeout=10)
                wait_progress(writers, 50)
                relay.heal()
                el.wait_replica(0, lead, timeout=15)
                el.cands[0].wait_log("-> FOLLOWER", timeout=15, after=mark)
                wait_progress(writers, 10)
        finally:
            lines = [m.stop() for m in mons]
        log = el.cands[0].log()[mark:]
        check_writers_clean(writers, el.servers[lead])
        old_w, new_w = write_times(el, lines)
        assert max(old_w) < min(new_w), (
            "both servers took writes at the same time: the old leader's last at %.6f, the new "
            "leader's first at %.6f" % (max(old_w), min(new_w)))
        assert "demoted our redis" in log, log
        assert el.role(0)["role"] == "slave"
        print("partition: writes paused after %.0f ms, new leader after %.0f ms (session %d ms); "
              "last write on the old leader %.0f ms before the first on the new one"
              % (1000 * t_paused, 1000 * t_new, SESSION_MS, 1000 * (min(new_w) - max(old_w))))
    finally:
        relay.stop()


# ---------------------------------------------------------------- no herd

def watches_by_path(zk, prefix):
    """{path: {session id}} of the watches ZooKeeper holds under prefix (wchp)."""
    from zkutil import four_letter
    out, path = {}, None
    for line in four_letter(zk.port, "wchp").splitlines():
        if line.startswith("/"):
            path = line.strip()
        elif path is not None and line.strip().startswith("0x") and path.startswith(prefix):
            out.setdefault(path, set()).add(int(line.strip(), 16))
    return out


def session_of(cand):
    """The ZooKeeper session id a candidate logged when it connected."""
    line = cand.wait_log("ZooKeeper session 0x")
    return int(line.split("session 0x", 1)[1].split()[0], 16)


def test_each_candidate_watches_only_the_ballot_below(election, zk_server):
    """No herd: each candidate watches the ballot just below its own and
    the leader_ack, never ROOT or its children; when a ballot
    goes, only the next candidate's watch fires, and it then watches the
    one below that."""
    el = election()
    lead = start_all(el)
    sess = {i: session_of(el.cands[i]) for i in range(3)}
    ballots = el.ballots()                          # lowest first: leader, then the others
    order = [el.index(addr) for _, addr in ballots]
    assert order[0] == lead

    def expected(names, order):
        want = {el.root + "/" + names[k]: {sess[order[k + 1]]} for k in range(len(names) - 1)}
        want[el.ack] = {sess[i] for i in order}     # the leader too: its own ack going
        return want

    def settled(want):
        got = watches_by_path(zk_server, el.root)
        return got == want and got
    names = [n for n, _ in ballots]
    wait_for(lambda: settled(expected(names, order)), timeout=5,
             what="one watch per ballot, by the next candidate (%r)" % watches_by_path(zk_server, el.root))
    # the middle candidate goes: the last one now watches the leader's ballot
    mid = order[1]
    assert el.cands[mid].terminate() == 0
    rest = [order[0], order[2]]
    names = [n for n, addr in el.ballots()]
    assert len(names) == 2
    wait_for(lambda: settled(expected(names, rest)), timeout=5,
             what="the last candidate watching the leader's ballot (%r)"
             % watches_by_path(zk_server, el.root))
    assert el.leader_addr() == el.addr(lead)


# ---------------------------------------------------------------- the gem's layout

def test_ballots_from_kazoo_are_read_the_same_way(election, zk_proxy_factory, zk_server,
                                                   kz_factory, ctl_factory):
    """A candidate of another implementation (kazoo here, as the zk gem's
    Candidate does it: ephemeral-sequential ROOT/ballot, then the ephemeral
    leader_ack once its redis is master) leads; ours follow it, show lists
    its ballot first, and when its session ends ours take over."""
    el = election()
    ruby = kz_factory(zk_server.hostport)
    ruby.ensure_path(el.root)
    name = ruby.create(el.root + "/ballot", el.addr(0).encode(), ephemeral=True, sequence=True)
    assert BALLOT_RE.match(name.rsplit("/", 1)[1]), name
    ruby.create(el.ack, el.addr(0).encode(), ephemeral=True)
    for i in (1, 2):
        el.start(i)
    for i in (1, 2):
        el.wait_replica(i, 0)
    ballots = el.ballots()
    assert ballots[0][1] == el.addr(0), ballots
    assert sorted(d for _, d in ballots[1:]) == sorted([el.addr(1), el.addr(2)]), ballots
    assert all(BALLOT_RE.match(n) for n, _ in ballots), ballots
    res = ctl_factory(zk_server.hostport, el.ack).run("show")
    assert res.rc == 0, res
    f = parse_show(res.out)
    assert f["election"] == el.root and f["leader"] == el.addr(0) and f["ballots"] == "3", res
    assert f["ballot 1"].startswith("%s %s " % (ballots[0][0], el.addr(0))), res
    assert f["ballot 1"].endswith("(leader)") and "role:master" in f["ballot 1"], res
    assert "role:slave master:%s link:up" % el.addr(0) in f["ballot 2"], res
    # show on the root itself: the election only
    res = ctl_factory(zk_server.hostport, el.root).run("show")
    f = parse_show(res.out)
    assert res.rc == 0 and "znode" not in f and f["leader"] == el.addr(0), res
    px = zk_proxy_factory(zk_server, el.ack, pool={"on-no-master": "block"})
    wait_master(px, el.addr(0))
    with px.raw() as c:
        for k in range(50):
            assert c.call("SET", "k%d" % k, k) == "OK"
    # the other implementation's candidate goes away: one of ours wins (the
    # next ballot, unless it lacks writes the other has: then it gives the
    # election away)
    ruby.stop()
    ruby.close()
    nxt = el.wait_leader(not_=0)
    wait_master(px, el.addr(nxt))
    with px.raw() as c:
        assert c.call("GET", "k49") == b"49"
    # the old leader's server was fenced and demoted by the winner
    for i in range(3):
        if i != nxt:
            el.wait_replica(i, nxt)


# ---------------------------------------------------------------- --exec

def child_pid(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        kids = f.read().split()
    return int(kids[0]) if kids else None


def test_exec_follows_the_child(election, zk_server, tmp_path):
    el = election(n=1)
    port = free_port()
    redis_argv = ["redis-server", "--port", str(port), "--bind", LOCALHOST, "--save", "",
                  "--appendonly", "no", "--dir", str(tmp_path), "--repl-diskless-sync-delay", "0",
                  "--protected-mode", "no"]
    # the exec'd one starts first and leads; the other follows
    a = el.adopt(Candidate(el.conf_for(zk_server.hostport, "cexec"), port,
                           str(tmp_path / "cand-exec.log"), exec_argv=redis_argv).start())
    try:
        wait_for(lambda: el.leader_addr() == "%s:%d" % (LOCALHOST, port), timeout=15,
                 what="the exec'd redis leading")
        el.start(0)
        wait_for(lambda: el.role(0).get("master_port") == port and
                 el.role(0).get("master_link_status") == "up", timeout=15, what="follower linked")
        kid = child_pid(a.pid)
        assert kid, "no child process"
        mark = a.log_size()
        t0 = time.monotonic()
        os.kill(kid, signal.SIGKILL)
        rc = a.wait(10)
        assert rc == 1, a.log_tail()
        assert el.wait_leader(timeout=10) == 0
        took = time.monotonic() - t0
        log = a.log()[mark:]
        assert "exited: killed by signal 9" in log and "giving the leadership up" in log, log
        # the death is known at once (SIGCHLD), not after failed PINGs
        assert "PING failed" not in log, log
        print("--exec: child killed, new leader after %.0f ms" % (1000 * took))
        # SIGTERM stops the child too
        port2 = free_port()
        b = el.adopt(Candidate(el.conf_for(zk_server.hostport, "cexec2"), port2,
                               str(tmp_path / "cand-exec2.log"),
                               exec_argv=[x if x != str(port) else str(port2) for x in redis_argv]))
        b.start()
        try:
            b.wait_log("-> FOLLOWER", timeout=15)
            kid = child_pid(b.pid)
            assert b.terminate() == 0
            assert "stopped our redis-server (pid %d)" % kid in b.log(), b.log_tail()
            assert not os.path.exists("/proc/%d" % kid)
        finally:
            b.stop()
    finally:
        a.stop()


# ---------------------------------------------------------------- ACLs

def test_nodes_take_roots_acl(election, zk_proxy_factory, zk_server, kz_factory):
    """Ballots and leader_ack get ROOT's ACL, so one setAcl on ROOT gives
    the candidates all rights and the proxies read only (ZooKeeper has no
    inheritance); the proxy, logged in as the reader, follows the leader
    and sees a znode nobody else may write."""
    from kazoo.security import make_digest_acl
    cand, reader = ("cand", "candpw"), ("rzproxy", "readpw")
    el = election(n=2)
    admin = kz_factory(zk_server.hostport, auth_data=[("digest", "%s:%s" % cand)])
    acl = [make_digest_acl(*cand, all=True), make_digest_acl(*reader, read=True)]
    admin.ensure_path(el.root.rsplit("/", 1)[0])
    admin.create(el.root, b"", acl=acl)
    for i in range(2):
        el.confs[i] = el.conf_for(zk_server.hostport, "acl%d" % i,
                                  globals_={"zk-auth-digest": "%s:%s" % cand})
    el.kz = admin
    start_all(el)
    assert admin.get_acls(el.ack)[0] == acl
    for name, _ in el.ballots():
        assert admin.get_acls(el.root + "/" + name)[0] == acl
    px = zk_proxy_factory(zk_server, el.ack, globals_={"zk-auth-digest": "%s:%s" % reader})
    f = wait_master(px, el.addr(0))
    assert f.get("znode_world_writable") == "0", fmt_info(f)
    # without credentials the ack cannot even be read
    stranger = kz_factory(zk_server.hostport)
    from kazoo.exceptions import NoAuthError
    with pytest.raises(NoAuthError):
        stranger.get(el.ack)


# ---------------------------------------------------------------- a frozen candidate

def test_leader_candidate_stopped_beyond_its_session(election, zk_proxy_factory, zk_server):
    """SIGSTOP of the leader's candidate (not its redis) for longer than
    its session: it cannot fence anything, so the winner does: it pauses
    the old master, catches up, promotes, demotes the old one. No two
    servers take writes at the same time; after SIGCONT the old candidate
    comes back as a follower."""
    el = election()
    lead = start_all(el)
    succ = el.index(el.ballots()[1][1])
    pxs = both_modes(zk_proxy_factory, zk_server, el.ack)
    wait_masters(pxs, el.addr(lead))
    mons = [Monitor(el.servers[lead]), Monitor(el.servers[succ])]
    try:
        with writing(pxs, 2) as writers:
            wait_progress(writers, 50)
            mark = el.cands[lead].log_size()
            el.cands[lead].signal(signal.SIGSTOP)
            try:
                new = el.wait_leader(not_=lead, timeout=15)
                assert new == succ
                wait_masters(pxs, el.addr(new), timeout=10)
                wait_progress(writers, 50)
            finally:
                el.cands[lead].signal(signal.SIGCONT)
            el.cands[lead].wait_log("-> FOLLOWER", timeout=15, after=mark)
            el.wait_replica(lead, new)
            wait_progress(writers, 10)
    finally:
        lines = [m.stop() for m in mons]
    check_writers_clean(writers, el.servers[new])
    old_w, new_w = write_times(el, lines)
    assert max(old_w) < min(new_w), (max(old_w), min(new_w))
    assert "(a master: writes paused)" in el.cands[new].log(), el.cands[new].log_tail()


# ---------------------------------------------------------------- ZooKeeper away

def test_zookeeper_down_longer_than_the_session(election, zk_proxy_factory, zk_fresh, kz_factory):
    """ZooKeeper itself is killed for 2.5 session timeouts, then restarted
    (it keeps the sessions). The proxy gates at once; the leader pauses its
    writes and demotes itself to its successor before its session could
    have expired; back on the same session it gives the leadership up, and
    the successor leads. No two servers take writes at the same time, every
    acknowledged write is on the final leader, no error in block mode."""
    el = election(zk=zk_fresh, kzc=kz_factory(zk_fresh.hostport))
    lead = start_all(el)
    succ = el.index(el.ballots()[1][1])
    el.cands[lead].wait_log("successor: %s" % el.addr(succ))
    pxs = both_modes(zk_proxy_factory, zk_fresh, el.ack, **{"block-timeout": "15000"})
    wait_masters(pxs, el.addr(lead))
    mons = [Monitor(el.servers[lead]), Monitor(el.servers[succ])]
    try:
        with writing(pxs, 2) as writers:
            try:
                wait_progress(writers, 50)
                mark = el.cands[lead].log_size()
                zk_fresh.kill()
                # right after a full sync its successor may trail for up to a second
                # (redis streams once the replica's first REPLCONF ACK is in): the
                # leader then keeps its writes paused and demotes once it caught up
                el.cands[lead].wait_log("demoted our redis", timeout=5, after=mark)
                time.sleep(2.5 * SESSION_MS / 1000)
                zk_fresh.start()
                new = el.wait_leader(not_=lead, timeout=20)
                wait_masters(pxs, el.addr(new), timeout=15)
                el.cands[lead].wait_log("-> FOLLOWER", timeout=15, after=mark)
                wait_progress(writers, 20)
            finally:
                if zk_fresh.proc is None or zk_fresh.proc.poll() is not None:
                    zk_fresh.start()     # the writers wait on the proxy, which waits on it
    finally:
        lines = [m.stop() for m in mons]
    check_writers_clean(writers, el.servers[new])
    el.wait_replica(lead, new)
    if new == succ:
        old_w, new_w = write_times(el, lines)
        assert max(old_w) < min(new_w), (max(old_w), min(new_w))


# ---------------------------------------------------------------- a ZooKeeper ensemble

ENSEMBLE_SESSION_MS = 4000           # the ensemble's tickTime 200 allows 400..4000


@pytest.mark.parametrize("victim", ["connected", "leader"])
def test_ensemble_member_lost(election, zk_proxy_factory, zk_ensemble, kz_factory, victim):
    """Three ZooKeeper servers; the member the leader's candidate is
    connected to, or the ensemble's own leader, is killed. The candidate
    pauses its writes while it has no connection. Moving to another member
    on the same session is quick: it keeps the leadership (the same
    leader_ack) and resumes its writes, the proxy never changes master. A
    lost quorum may take longer than the candidate's own deadline: it then
    demotes its redis and another candidate wins. Either way no writer sees
    an error (block mode) and every acknowledged write is on the leader."""
    el = election(zk=zk_ensemble, kzc=kz_factory(zk_ensemble.hosts), session_timeout=ENSEMBLE_SESSION_MS)
    lead = start_all(el)
    sid = session_of(el.cands[lead])
    ack_czxid = el._kz(el.kz.exists, el.ack).czxid
    px = zk_proxy_factory(zk_ensemble, el.ack, session_timeout=ENSEMBLE_SESSION_MS,
                          pool={"on-no-master": "block", "block-timeout": "15000"})
    wait_master(px, el.addr(lead))
    with writing(px) as writers:
        wait_progress(writers, 20)
        member = wait_for(lambda: zk_ensemble.server_with_session(sid), timeout=5,
                          what="the member holding the leader's session")
        target = member if victim == "connected" else zk_ensemble.leader()
        mark = el.cands[lead].log_size()
        target.kill()
        el.cands[lead].wait_log("ZooKeeper connection lost", after=mark)
        if victim == "connected":
            el.cands[lead].wait_log("ZooKeeper session 0x%x connected" % sid, after=mark, timeout=10)
            el.cands[lead].wait_log("writes resumed on our redis", after=mark)
            final = lead
        else:
            final = el.wait_leader(timeout=30)
            wait_master(px, el.addr(final), timeout=15)
        wait_progress(writers, 20, timeout=30)
    print("%s killed: %s; %d writes acknowledged" % (
        victim, "the leader kept its leadership" if final == lead else "another candidate won",
        sum(len(w.acks) for w in writers)))
    check_writers_clean(writers, el.servers[final])
    for i in range(len(el.servers)):
        if i != final:
            el.wait_replica(i, final)
    if final == lead:
        assert el._kz(el.kz.exists, el.ack).czxid == ack_czxid, "leader_ack was re-created"
        assert "demoted our redis" not in el.cands[lead].log()[mark:], el.cands[lead].log_tail()
    if victim == "connected":
        assert int(pool_info(px)["master_changes"]) == 1, fmt_info(pool_info(px))


# ---------------------------------------------------------------- TLS and AUTH

ELECT_USER, ELECT_PASSWORD = "elector", "el-Pw-3e9a1"


def test_tls_and_an_acl_user(election, zk_proxy_factory, zk_server, ctl_factory, pki, tmp_path):
    """TLS-only servers whose default user is off: the candidates speak TLS
    (certificate verified) and AUTH as the pool's backend-user with its
    backend-password-file on every connection, as the proxy does; a SIGTERM
    handover keeps every acknowledged write; `show` reads each server's
    role through the same settings; no log prints the password."""
    pw = tmp_path / "backend.pw"
    pw.write_text(ELECT_PASSWORD + "\n")
    pw.chmod(0o600)
    pool = {"tls": "yes", "tls-ca-cert-file": pki.ca_crt,
            "backend-user": ELECT_USER, "backend-password-file": str(pw)}
    auth = ["--user", "default", "off", "--user", ELECT_USER, "on", ">" + ELECT_PASSWORD,
            "~*", "&*", "+@all", "--masteruser", ELECT_USER, "--masterauth", ELECT_PASSWORD]
    kw = {"username": ELECT_USER, "password": ELECT_PASSWORD}
    el = election(redis_kw={"tls": pki}, redis_args=auth, pool=pool, client_kw=kw)
    lead = start_all(el)
    px = zk_proxy_factory(zk_server, el.ack,
                          pool=dict(pool, **{"on-no-master": "block", "block-timeout": "10000"}))
    wait_master(px, el.addr(lead))
    with writing(px) as writers:
        wait_progress(writers, 20)
        old = lead
        assert el.cands[old].terminate() == 0, el.cands[old].log_tail()
        lead = el.wait_leader(not_=old)
        wait_master(px, el.addr(lead), timeout=10)
        el.wait_replica(old, lead)
        wait_progress(writers, 20)
    check_writers_clean(writers, el.servers[lead], **kw)
    res = ctl_factory(zk_server.hostport, el.ack, pool=pool).run("show")
    assert res.rc == 0, res
    f = parse_show(res.out)
    assert f["leader"] == el.addr(lead), res
    roles = [v for k, v in f.items() if k.startswith("ballot ")]
    assert len(roles) == 2 and all("role:" in r for r in roles), res
    for c in el.cands:
        if c is not None:
            assert ELECT_PASSWORD not in c.log_tail(10000)
    assert ELECT_PASSWORD not in res.text


# ---------------------------------------------------------------- command line

def test_candidate_usage(ctl_factory):
    bare = ctl_factory(None, None)
    where = ["--zookeeper", "127.0.0.1:1", "--znode", "/_zkelection/x"]
    for args, needle in [(["candidate"], "needs --redis"),
                         (["candidate", "--redis", "nohost"], "not HOST:PORT"),
                         (["candidate", "--redis", "h:1", "--advertise", "h:0"], "not HOST:PORT"),
                         (["candidate", "--redis", "h:1", "--check-interval", "5"], "--check-interval"),
                         (["candidate", "--redis", "h:1", "--check-failures", "0"], "--check-failures"),
                         (["candidate", "--redis", "h:1", "--exec"], "--exec needs a command"),
                         (["show", "--redis", "h:1"], "go with candidate"),
                         (["set-master", "h:1", "--timeout", "10"], "--timeout goes with"),
                         (["candidate", "--redis", "h:1", "--to", "h:2"], "go with failover")]:
        res = bare.run(*(where + args))
        assert res.rc == 2 and needle in res.err, (args, res)
    # everything after --exec belongs to the child, options included
    res = bare.run(*(where + ["candidate", "--exec", "redis-server", "--port", "1"]))
    assert res.rc == 2 and "needs --redis" in res.err, res
    res = bare.run("--help")
    assert res.rc == 0 and "candidate --redis HOST:PORT" in res.out, res
