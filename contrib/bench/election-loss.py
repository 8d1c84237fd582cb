#!/usr/bin/python3
"""What a leader's failure costs in the election design (README: rzproxy-ctl
candidate, "What can still be lost"): acknowledged writes missing on the new
leader, how long before the failure they were acknowledged, and how long
until the proxy writes to the new leader.

    contrib/bench/election-loss.py [--trials N] [--writers N] [--pipeline N]
                                   [--scenario NAME]...

Each trial: a fresh election root on one standalone ZooKeeper (tickTime
200), three redis-servers (replica-read-only, no persistence), a candidate
beside each (session 1500 ms, PING every 100 ms, 3 failures = down),
rzproxy (block mode) on ROOT/leader_ack, and writers sending pipelines of
RPUSH l:<writer> <seq> through it. After 1.5 s of writing, the leader
fails as the scenario says; the writers go on until the proxy has written
to the new leader for a while; then every acknowledged seq is looked for
on the new leader.

Scenarios: sigterm (the leader's candidate: the handover), shutdown
(SHUTDOWN NOSAVE on the leader's redis), sigkill and sigstop (the leader's
redis), frozen (SIGSTOP of the leader's candidate for 3 s, beyond its
session), stalled (both followers stalled by DEBUG SLEEP --stall-ms, the
leader's redis killed halfway through: replicas that are behind when the
master dies, the case asynchronous replication cannot cover). Everything
on 127.0.0.1, stopped by pid at the end.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
os.environ.setdefault("RZ_SRCDIR", TOP)
sys.dont_write_bytecode = True

import conftest  # noqa: E402
import zkutil  # noqa: E402
from conftest import Error, RespConn, wait_for  # noqa: E402
from electutil import Election  # noqa: E402

SCENARIOS = ("sigterm", "shutdown", "sigkill", "sigstop", "frozen", "stalled")


class Writer(threading.Thread):
    """Pipelines of RPUSH l:<idx> <seq>; remembers when each was acknowledged."""

    def __init__(self, port, idx, depth, size, stop):
        super().__init__(daemon=True)
        self.port, self.idx, self.depth, self.stop_ev = port, idx, depth, stop
        self.pad = "x" * max(0, size - 12)
        self.acked, self.unknown = [], 0

    def run(self):
        conn, seq = None, 0
        while not self.stop_ev.is_set():
            try:
                if conn is None:
                    conn = RespConn.tcp(self.port, timeout=30)
                batch = list(range(seq, seq + self.depth))
                for s in batch:
                    conn.cmd("RPUSH", "l:%d" % self.idx, "%d:%s" % (s, self.pad))
                for s in batch:
                    rep = conn.read_reply(timeout=30)
                    if isinstance(rep, int):
                        self.acked.append((s, time.monotonic()))
                    else:
                        self.unknown += 1
                        if not (isinstance(rep, Error) and rep.startswith("TRYAGAIN")):
                            conn.close()
                            conn = None
                            break
                seq += self.depth
            except Exception:
                self.unknown += 1
                if conn is not None:
                    conn.close()
                conn = None
                seq += self.depth
        if conn is not None:
            conn.close()


class Procs:
    """What a trial started, for the end."""

    def __init__(self):
        self.redis, self.proxies, self.elections = [], [], []

    def make_redis(self, workdir):
        def make(extra_args=()):
            srv = conftest.RedisServer(os.path.join(workdir, "redis-%d" % len(self.redis)),
                                       extra_args=extra_args).start()
            self.redis.append(srv)
            return srv
        return make

    def stop(self):
        for el in self.elections:
            el.stop()
        for px in self.proxies:
            px.terminate()
        for srv in self.redis:
            try:
                os.kill(srv.pid, signal.SIGCONT)
            except OSError:
                pass
            srv.stop()


def start_proxy(workdir, zk, ack, procs):
    port = conftest.free_port()
    conf = conftest.write_conf(os.path.join(workdir, "rzproxy.conf"), port, None,
                               globals_={"zookeeper": zk.hostport, "zk-session-timeout": "2000"},
                               pool={"znode": ack, "on-no-master": "block", "block-timeout": "10000",
                                     "drain-timeout": "1000"})
    log = open(os.path.join(workdir, "rzproxy.log"), "ab")
    proc = conftest.subprocess.Popen([conftest.RZPROXY, conf], stdout=log, stderr=log,
                                     stdin=conftest.subprocess.DEVNULL)
    log.close()
    conftest._spawned[proc.pid] = proc
    px = conftest.Proxy(port, proc, conf, os.path.join(workdir, "rzproxy.log"))
    procs.proxies.append(px)
    wait_for(lambda: conftest.port_open(port), timeout=15, what="rzproxy listening")
    return px


def stall(srv, ms):
    """DEBUG SLEEP on srv, without waiting for it."""
    def run():
        try:
            with RespConn.tcp(srv.port, timeout=30) as c:
                c.call("DEBUG", "SLEEP", "%.3f" % (ms / 1000.0))
        except Exception:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def fail(el, lead, scenario, args):
    if scenario == "stalled":
        for i in range(len(el.servers)):
            if i != lead:
                stall(el.servers[i], args.stall_ms)
        time.sleep(args.stall_ms / 2000.0)
        scenario = "sigkill"
    if scenario == "sigterm":
        el.cands[lead].signal(signal.SIGTERM)
    elif scenario == "shutdown":
        try:
            el.servers[lead].client(socket_timeout=5).shutdown(nosave=True)
        except Exception:
            pass                       # the connection closes under it
    elif scenario == "sigkill":
        os.kill(el.servers[lead].pid, signal.SIGKILL)
    elif scenario == "sigstop":
        os.kill(el.servers[lead].pid, signal.SIGSTOP)
    elif scenario == "frozen":
        el.cands[lead].signal(signal.SIGSTOP)


def trial(n, scenario, args, zk, kz, workdir):
    procs = Procs()
    try:
        el = Election("/_zkelection/loss-%s-%d" % (scenario, n), zk.hostport, workdir, kz,
                      procs.make_redis(workdir), session_timeout=1500)
        procs.elections.append(el)
        el.start(0)
        lead = el.wait_leader()
        for i in (1, 2):
            el.start(i)
        for i in (1, 2):
            el.wait_replica(i, lead)
        px = start_proxy(workdir, zk, el.ack, procs)
        zkutil.wait_master(px, el.addr(lead), timeout=15)
        stop = threading.Event()
        writers = [Writer(px.port, i, args.pipeline, args.value_size, stop) for i in range(args.writers)]
        for w in writers:
            w.start()
        time.sleep(1.5)
        t_fail = time.monotonic() + (args.stall_ms / 2000.0 if scenario == "stalled" else 0)
        fail(el, lead, scenario, args)
        new = el.wait_leader(not_=lead, timeout=15)
        zkutil.wait_master(px, el.addr(new), timeout=15)
        t_switch = time.monotonic() - t_fail
        if scenario == "frozen":
            time.sleep(max(0.0, 3.0 - t_switch))
            el.cands[lead].signal(signal.SIGCONT)
        k = [len(w.acked) for w in writers]
        wait_for(lambda: all(len(w.acked) >= x + 20 * args.pipeline for w, x in zip(writers, k)),
                 timeout=20, what="writes on the new leader")
        stop.set()
        for w in writers:
            w.join(40)
        lost = []
        with el.servers[new].client() as c:
            for w in writers:
                have = set(int(x.split(b":", 1)[0]) for x in c.lrange("l:%d" % w.idx, 0, -1))
                lost += [t_fail - t for s, t in w.acked if s not in have]
        return {"switch_ms": 1000 * t_switch, "acked": sum(len(w.acked) for w in writers),
                "lost": len(lost), "oldest_lost_ms": 1000 * max(lost) if lost else 0.0,
                "unknown": sum(w.unknown for w in writers)}
    finally:
        procs.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--value-size", type=int, default=16, help="bytes per pushed value")
    ap.add_argument("--stall-ms", type=int, default=400, help="stalled: how long the followers stall")
    ap.add_argument("--scenario", action="append", choices=SCENARIOS)
    args = ap.parse_args()
    why = zkutil.zk_available()
    if why:
        print("election-loss: %s" % why, file=sys.stderr)
        return 1
    base = tempfile.mkdtemp(prefix="rz-election-loss.")
    zk = zkutil.ZkServer(os.path.join(base, "zk")).start()
    kz = zkutil.kazoo_client(zk.hostport)
    rc = 0
    print("%d writers, pipelines of %d RPUSH of %d bytes, %d trials per scenario (stalled: %d ms)"
          % (args.writers, args.pipeline, args.value_size, args.trials, args.stall_ms))
    print("%-9s %5s %12s %9s %6s %16s %8s" % ("scenario", "trial", "switch (ms)", "acked", "lost",
                                              "oldest lost (ms)", "unknown"))
    try:
        for scenario in args.scenario or SCENARIOS:
            for n in range(args.trials):
                wd = os.path.join(base, "%s-%d" % (scenario, n))
                os.makedirs(wd)
                r = trial(n, scenario, args, zk, kz, wd)
                print("%-9s %5d %12.0f %9d %6d %16.1f %8d" % (scenario, n, r["switch_ms"], r["acked"],
                                                              r["lost"], r["oldest_lost_ms"],
                                                              r["unknown"]), flush=True)
    except Exception as e:                 # noqa: BLE001
        print("election-loss: FAILED: %r (logs in %s)" % (e, base), file=sys.stderr)
        rc = 1
    finally:
        kz.stop()
        kz.close()
        zk.stop()
        if rc == 0:
            shutil.rmtree(base, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
