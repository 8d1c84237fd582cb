#!/usr/bin/python3
"""Switch time: from the znode naming a new master being created to the
first command answered by that master through rzproxy.

    contrib/bench/switch.py [--switches 100] [--sharing yes|no|both]

Starts (on free loopback ports) a standalone ZooKeeper, two independent
redis-servers that each hold `who` = their own name, and rzproxy with a
znode pool in block mode. Each switch:

  1. delete the znode and wait until the proxy reports NO_NODE;
  2. send `GET who` through the proxy: it is held (no master);
  3. t0; create the znode naming the other server;
  4. read the reply: it must be the other server's name; t1.

t1 - t0 is one sample: ZooKeeper's create round trip, the watch event, the
proxy's sync + read of the znode, a new backend connection and the GET
itself. The proxy's own measure (`last_switch_ms` in PROXY INFO: event to
first command forwarded) is reported beside it. The target in issue 5 is
p99 <= 5 ms on loopback. Everything started is stopped at the end.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
os.environ.setdefault("RZ_SRCDIR", TOP)

import conftest                                    # noqa: E402  (fixtures' helpers)
import zkutil                                      # noqa: E402
from conftest import RespConn, encode, free_port, wait_for, write_conf   # noqa: E402


def percentile(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def start_proxy(workdir, zk, znode, sharing):
    port = free_port()
    conf = write_conf(os.path.join(workdir, "rzproxy-%s.conf" % sharing), port, None,
                      sharing=sharing,
                      globals_={"zookeeper": zk.hostport, "zk-session-timeout": "4000"},
                      pool={"znode": znode, "on-no-master": "block", "block-timeout": "10000"})
    log = open(os.path.join(workdir, "rzproxy-%s.log" % sharing), "ab")
    proc = subprocess.Popen([conftest.RZPROXY, conf], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    log.close()
    conftest._spawned[proc.pid] = proc
    wait_for(lambda: conftest.port_open(port), timeout=10, what="rzproxy on %d" % port)
    return proc, port


def state(port):
    with RespConn.tcp(port, timeout=5) as c:
        info = zkutil.parse_info(c.call("PROXY", "INFO").decode())
    return info["main"]


def run(sharing, switches, workdir, zk, servers):
    kz = zkutil.kazoo_client(zk.hostport)
    znode = "/bench/switch-%s" % sharing
    kz.ensure_path("/bench")
    names = [b"A", b"B"]
    kz.create(znode, zkutil.plain(zkutil.hp(servers[0])))
    proc, port = start_proxy(workdir, zk, znode, sharing)
    samples, own = [], []
    try:
        wait_for(lambda: state(port).get("state") == "READY", timeout=10, what="proxy READY")
        cur = 0
        with RespConn.tcp(port, timeout=10) as c:
            assert c.call("GET", "who") == names[cur]
            for i in range(switches):
                nxt = 1 - cur
                kz.delete(znode)
                wait_for(lambda: state(port).get("state") == "NO_NODE", timeout=10,
                         interval=0.002, what="proxy gated")
                c.send(encode("GET", "who"))
                data = zkutil.plain(zkutil.hp(servers[nxt]))
                t0 = time.perf_counter()
                kz.create(znode, data)
                rep = c.read_reply(timeout=10)
                t1 = time.perf_counter()
                if rep != names[nxt]:
                    raise SystemExit("switch %d: GET who answered %r, expected %r" % (i, rep, names[nxt]))
                samples.append((t1 - t0) * 1000.0)
                own.append(float(state(port).get("last_switch_ms", "-1")))
                cur = nxt
    finally:
        kz.stop()
        kz.close()
        conftest._stop_process(proc)
    return samples, own


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--switches", type=int, default=100)
    ap.add_argument("--sharing", choices=["yes", "no", "both"], default="both")
    args = ap.parse_args()
    if not os.access(conftest.RZPROXY, os.X_OK):
        raise SystemExit("build rzproxy first (%s not found)" % conftest.RZPROXY)
    why = zkutil.zk_available()
    if why:
        raise SystemExit("cannot start ZooKeeper: %s" % why)
    workdir = tempfile.mkdtemp(prefix="rzbench-switch.")
    zk = zkutil.ZkServer(os.path.join(workdir, "zk")).start()
    servers = [conftest.RedisServer(os.path.join(workdir, "redis-%d" % i)).start() for i in range(2)]
    try:
        for name, srv in zip((b"A", b"B"), servers):
            srv.client().set("who", name)
        modes = ["yes", "no"] if args.sharing == "both" else [args.sharing]
        print("switch time over %d switches (znode created -> first command answered by the new master)"
              % args.switches)
        print("%-8s %9s %9s %9s %9s   %s" % ("sharing", "p50 ms", "p99 ms", "max ms", "mean ms",
                                           "proxy's own event->forward p50/p99 ms"))
        for mode in modes:
            s, own = run(mode, args.switches, workdir, zk, servers)
            print("%-8s %9.2f %9.2f %9.2f %9.2f   %.0f / %.0f" % (
                "shared" if mode == "yes" else "pinned", percentile(s, 50), percentile(s, 99),
                max(s), statistics.mean(s), percentile(own, 50), percentile(own, 99)))
    finally:
        for srv in servers:
            srv.stop()
        zk.stop()


if __name__ == "__main__":
    main()
