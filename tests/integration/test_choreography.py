"""The failover choreography under load: `rzproxy-ctl failover` rotates the
master around three redis-servers (replica-read-only on) 20 times while
writers keep going through rzproxy.

Asserted, for both backend-sharing modes and both on-no-master modes:
- every acknowledged write is on the final master, with the right value and
  in the right order (INCR counters and RPUSH sequences per writer);
- no writer saw an error other than -TRYAGAIN, and in block mode none at all;
- a pinned writer with AUTH (ACL user), SELECT 3 and CLIENT SETNAME keeps
  all three through every switch;
- MONITOR on every server shows no writer command from the proxy while that
  server was not the master the proxy used (from the gate the proxy logged,
  plus a small slack for commands already on the wire, until it became
  master again)."""

import datetime
import os
import re
import subprocess
import threading

import pytest

from conftest import LOCALHOST, RespConn, free_port, wait_for
from zkutil import (zset, rf_json, hp, wait_master, make_replica, pool_info, fmt_info, Monitor,
                    AckWriter)

pytestmark = pytest.mark.proxy_only

RZCTL = os.environ.get("RZCTL") or os.path.join(
    os.environ.get("RZ_SRCDIR", os.path.join(os.path.dirname(__file__), "..", "..")),
    "src", "rzproxy-ctl")
ROTATIONS = int(os.environ.get("RZ_ROTATIONS", "20"))
# A command forwarded just before the gate may run just after it: the time
# from the proxy's write to redis running it, which a loaded two-core machine
# (or the sanitizer build) can stretch past 20 ms (seen once). A window runs
# until the server is the master again, two rotations later, so a proxy that
# kept writing to an old master is still caught.
SLACK = 0.050


def ctl(confpath, *args, timeout=30):
    p = subprocess.run([RZCTL, "-c", confpath] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class ReadsPort:
    """The reads pool's listener, for an AckWriter (which asks px.raw())."""

    def __init__(self, port):
        self.port = port

    def raw(self, timeout=10.0):
        return RespConn.tcp(self.port, timeout=timeout)


def writer(px, idx, stop, setup=()):
    """INCR c:<idx> then RPUSH l:<idx> <seq>, one at a time on one connection
    (left open for the test), remembering every acknowledged reply.
    -TRYAGAIN means "did not run": wait a little and send the same command
    again. Any other error is recorded and ends the writer."""
    return AckWriter(px, [("INCR", "c:{idx}"), ("RPUSH", "l:{idx}", "{seq}")], idx=idx, stop=stop,
                     setup=setup, timeout=30, retry_tryagain=True, stop_on_error=True,
                     keep_open=True)


def incr_acks(w):
    """The INCR replies the writer got, in order."""
    return [a.reply for a in w.acks if a.cmd == "INCR"]


def push_acks(w):
    """The sequence numbers whose RPUSH was acknowledged, in order."""
    return [a.seq for a in w.acks if a.cmd == "RPUSH"]


def log_times(px, text):
    out = []
    with open(px.logpath, errors="replace") as f:
        for line in f:
            if text in line:
                stamp = " ".join(line.split()[:2])
                out.append((datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp(),
                            line.strip()))
    return out


def not_master_windows(px, ports, rotations):
    """Per server port: the (start, end) times during which the proxy did not
    use it. Rotation k's window opens at the proxy's last departure from
    READY before it switched away from that server (from then on it was
    gated until the switch: any later departure would come after), and
    closes when the proxy switched back to it."""
    leaves = [t for t, _ in log_times(px, "[main] state READY -> ")]
    switches = []          # (time, new master port)
    for t, line in log_times(px, "[main] master "):
        if " -> %s:" % LOCALHOST in line:
            switches.append((t, int(line.split(" -> ")[1].split()[0].rsplit(":", 1)[1])))
    assert len(switches) == rotations + 1, "expected %d switches, log has %d" % (rotations + 1, len(switches))
    windows = {p: [] for p in ports}
    for k in range(rotations):
        old, t_switch = switches[k][1], switches[k + 1][0]
        gate = [t for t in leaves if switches[k][0] <= t <= t_switch]
        assert gate, "rotation %d: no departure from READY logged before the switch" % k
        back = next((t for t, p in switches[k + 2:] if p == old), float("inf"))
        windows[old].append((gate[-1], back))
    return windows


MONITOR_LINE = re.compile(r'^(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$')


def leaks(lines, windows, server_ports):
    """MONITOR lines of writer commands (not the reads pool's GET and
    LRANGE, which replicas answer) from a client that is not a replication
    link, inside a window where the proxy must send nothing."""
    bad = []
    for line in lines:
        m = MONITOR_LINE.match(line)
        assert m, "unexpected MONITOR line %r" % line
        stamp, addr, cmd = m.groups()
        if not any(k in cmd for k in ('"c:', '"l:')) or not cmd.startswith(('"INCR"', '"RPUSH"')):
            continue
        port = addr.rsplit(":", 1)[-1]
        if port.isdigit() and int(port) in server_ports:
            continue         # the replication stream from its master
        t = float(stamp)
        if any(start + SLACK < t < end for start, end in windows):
            bad.append(line)
    return bad


@pytest.mark.parametrize("mode", ["block", "tryagain"])
def test_rotations_under_load(zk_server, kz, zk_proxy_factory, redis_factory, znode_path, sharing,
                              mode):
    servers = [redis_factory() for _ in range(3)]
    for s in servers:
        s.client().execute_command("ACL", "SETUSER", "app", "on", ">apppw", "~*", "+@all")
    for s in servers[1:]:
        make_replica(s, servers[0])
    zset(kz, znode_path, rf_json(hp(servers[0]), [hp(s) for s in servers[1:]]))
    reads_port = free_port()
    px = zk_proxy_factory(zk_server, znode_path, sharing=sharing, globals_={"loglevel": "info"},
                          pool={"on-no-master": mode, "block-timeout": "10000"},
                          extra_pools=[("reads", reads_port,
                                        {"znode": znode_path, "read-from": "replicas",
                                         "on-no-master": mode, "block-timeout": "10000",
                                         "backend-sharing": sharing})])
    wait_master(px, hp(servers[0]))
    monitors = [Monitor(s) for s in servers]
    stop = threading.Event()
    writers = [writer(px, i, stop) for i in range(4)]
    stateful = writer(px, 9, stop, setup=[("AUTH", "app", "apppw"), ("SELECT", "3"),
                                         ("CLIENT", "SETNAME", "sw")])
    writers.append(stateful)
    # beside them, a reads pool (read-from replicas) on the same znode
    reader = AckWriter(ReadsPort(reads_port), [("GET", "c:0"), ("LRANGE", "l:0", "0", "0")],
                       stop=stop, is_ack=lambda rep: not isinstance(rep, str),
                       retry_tryagain=mode == "tryagain")
    for w in writers + [reader]:
        w.start()
    current, outputs = 0, []
    try:
        wait_for(lambda: all(len(w.acks) >= 20 for w in writers), timeout=10, what="writers started")
        for k in range(ROTATIONS):
            nxt = (current + 1) % 3
            rc, out = ctl(px.confpath, "-p", "main", "failover", "--to", hp(servers[nxt]))
            outputs.append(out)
            assert rc == 0, "rotation %d: rzproxy-ctl failover exit %d:\n%s" % (k, rc, out)
            wait_master(px, hp(servers[nxt]), timeout=10)
            current = nxt
            before = [len(w.acks) for w in writers]
            wait_for(lambda: all(len(w.acks) >= b + 4 or w.failure or w.errors
                                 for w, b in zip(writers, before)),
                     timeout=15, what="every writer progressing on the new master")
    finally:
        stop.set()
        for w in writers:
            w.join(40)
        lines = [m.stop() for m in monitors]
    reader.join(40)
    assert reader.failure is None and not reader.errors, (reader.failure, reader.errors[:5])
    assert len(reader.acks) > 20, "the reads pool answered %d reads" % len(reader.acks)
    for w in writers:
        assert w.failure is None, "writer %d: %s" % (w.idx, w.failure)
        assert not w.errors, "writer %d: %s" % (w.idx, w.errors)
        if mode == "block":
            assert w.tryagains == 0, "writer %d saw %d -TRYAGAIN in block mode" % (w.idx, w.tryagains)
    final = servers[current]
    for w in writers:
        db = 3 if w is stateful else 0
        c = final.client(db=db)
        incrs, pushes = incr_acks(w), push_acks(w)
        assert incrs == list(range(1, len(incrs) + 1)), "writer %d: INCR replies out of step" % w.idx
        assert int(c.get("c:%d" % w.idx) or 0) == len(incrs), \
            "writer %d: counter %s on the final master, %d acknowledged" % (
                w.idx, c.get("c:%d" % w.idx), len(incrs))
        got = [int(x) for x in c.lrange("l:%d" % w.idx, 0, -1)]
        assert got == pushes, "writer %d: list differs from the acknowledged pushes (%d vs %d)" % (
            w.idx, len(got), len(pushes))
    # the stateful writer's state moved with it every time
    assert stateful.conn.call("CLIENT", "GETNAME") == b"sw"
    assert stateful.conn.call("ACL", "WHOAMI") == b"app"
    stateful.conn.close()
    for w in writers[:-1]:
        w.conn.close()
    ports = [s.port for s in servers]
    windows = not_master_windows(px, ports, ROTATIONS)
    for s, ls in zip(servers, lines):
        assert any('"c:' in l for l in ls), "MONITOR on %d saw no writer command" % s.port
        bad = leaks(ls, windows[s.port], ports)
        assert not bad, "server %d got %d writer commands while not the proxy's master: %s\nwindows %s\nlog:\n%s" % (
            s.port, len(bad), bad[:3], windows[s.port][:4], "\n".join(l for _, l in log_times(px, "->")[:12]))
    f = pool_info(px)
    assert int(f["master_changes"]) == ROTATIONS + 1, fmt_info(f)
