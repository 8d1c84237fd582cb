"""The demo's --election mode (contrib/demo/run --election): the seed's
other design, with no director. Imported by demo.py, whose console, proxy
log follower and helpers it uses (passed in as `d`).

  1. starts a standalone ZooKeeper and three `rzproxy-ctl candidate`s,
     each starting its own redis-server (--exec): A, B, C; the first to
     stand leads; then rzproxy with a pool on the election's leader_ack;
  2. starts writers through the proxy: each pushes a sequence number on
     its own list (RPUSH), one at a time, remembering what was
     acknowledged; a lost connection means "outcome unknown", the next
     number on a new connection;
  3. three failures of the leader, each while the writers write:
     - SIGTERM to the leader's candidate: it hands over (pause, wait for
       the successor's offset, delete leader_ack, ...), then stops its
       redis-server; restarted, it comes back as a follower;
     - SHUTDOWN of the leader's redis-server: its candidate sees its child
       exit, gives the leadership up at once and exits; restarted;
     - SIGSTOP of the leader's candidate for twice its session timeout:
       it can do nothing, so the winner fences the old master; SIGCONT,
       and it comes back as a follower;
     after each: who leads, how long the proxy held commands, and the
     accounting: acknowledged writes missing on the new leader;
  4. checks that every acknowledged write is on the final leader, in order.

Exit status: 0 when nothing acknowledged is missing; 1 otherwise.
"""

import datetime
import os
import signal
import threading
import time

import conftest
import zkutil
from conftest import LOCALHOST, RespConn, Error, free_port, port_open
from electutil import Candidate

ROOT = "/_zkelection/demo"
SESSION_MS = 1500
DIGEST = "demo:demopw"               # candidates and proxy share one identity here
SHOW = ("->", "cast ", "promoted", "demoted", "handing over", "successor ", "deleted ",
        "created ", "writes paused", "writes resumed", "exited", "PING failed", "catching up",
        "peer ", "previous master", "new leader", "giving", "stopped our", "started ",
        "NOT", "WARNING", "session expired", "connection lost", "holds writes")


class CandTail(threading.Thread):
    """Follows the candidates' logs and prints their lines that say what
    happens (state changes and the steps of a handover or a promotion),
    with the log's own time stamps, tagged with the server's name."""

    def __init__(self, con, label):
        super().__init__(daemon=True)
        self.con, self.label = con, label
        self.files = {}                  # path -> [name, offset]
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def follow(self, name, path):
        with self.lock:
            self.files.setdefault(path, [name, 0])

    def run(self):
        while True:
            halting = self.halt.is_set()
            with self.lock:
                items = list(self.files.items())
            for path, entry in items:
                try:
                    with open(path, "rb") as f:
                        f.seek(entry[1])
                        data = f.read()
                except OSError:
                    continue
                cut = data.rfind(b"\n") + 1
                entry[1] += cut
                for raw in data[:cut].split(b"\n")[:-1]:
                    self.show(entry[0], raw.decode("utf-8", "replace"))
            if halting:
                return
            self.halt.wait(0.02)

    def show(self, name, line):
        # 2026-12-06 16:08:54.905 candidate 127.0.0.1:38367: message
        parts = line.split(" ", 4)
        if len(parts) < 5 or parts[2] != "candidate":
            return
        try:
            t = datetime.datetime.strptime(parts[0] + " " + parts[1], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            return
        text = parts[4]
        if not any(k in text for k in SHOW):
            return
        style = "bad" if ("WARNING" in text or "NOT" in text) else "ctl"
        self.con.line("cand " + name, self.label(text), style, t=t)

    def stop(self):
        self.halt.set()
        self.join(5)


class Pusher(threading.Thread):
    """RPUSH demo:<i> <seq> through the proxy, one at a time: what was
    acknowledged (and when), what had an unknown outcome. Each connection
    starts as current client libraries start theirs (node-redis 6, ioredis
    6, go-redis, Lettuce): HELLO 3, CLIENT SETINFO LIB-NAME and LIB-VER."""

    SETUP = (("HELLO", "3"), ("CLIENT", "SETINFO", "LIB-NAME", "rzproxy-demo"),
             ("CLIENT", "SETINFO", "LIB-VER", "1.0"))

    def __init__(self, idx, port, stop):
        super().__init__(daemon=True)
        self.idx, self.port, self.stop_ev = idx, port, stop
        self.key = "demo:%d" % idx
        self.acked, self.unknown, self.refused = [], [], []
        self.window_longest = 0.0
        self.lock = threading.Lock()

    @property
    def ops(self):
        return len(self.acked)

    def run(self):
        conn, seq = None, 0
        while not self.stop_ev.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                    if conn is None:
                        time.sleep(0.01)
                        continue
                t = time.monotonic()
                rep = conn.call("RPUSH", self.key, seq, timeout=30)
                self.window_longest = max(self.window_longest, time.monotonic() - t)
            except Exception:
                rep = None
            if isinstance(rep, int):
                self.acked.append((seq, time.time()))
            elif isinstance(rep, Error) and rep.startswith("TRYAGAIN"):
                time.sleep(0.01)
                continue
            elif isinstance(rep, Error):
                self.unknown.append(seq) if "may or may not" in rep else self.refused.append((seq, rep))
            else:
                self.unknown.append(seq)
            if not isinstance(rep, int) and conn is not None:
                conn.close()
                conn = None
            seq += 1
        if conn is not None:
            conn.close()

    def connect(self):
        """A connection set up like a library's, or None (closed) if any
        step was refused: nothing was written, the next try starts over."""
        conn = RespConn.tcp(self.port, timeout=30)
        for cmd in self.SETUP:
            if isinstance(conn.call(*cmd, timeout=30), Error):
                conn.close()
                return None
        return conn

    @property
    def errors(self):
        return self.refused

    failure = None


class ElectionDemo:
    def __init__(self, d, args, con):
        self.d, self.args, self.con = d, args, con
        import tempfile
        self.workdir = tempfile.mkdtemp(prefix="rzproxy-demo-election.")
        self.zk = None
        self.names = ["A", "B", "C"]
        self.ports = {n: free_port() for n in self.names}
        self.cands = {}
        self.proxy = None
        self.tail = None
        self.ctail = None
        self.writers = []
        self.ticker = None
        self.stop_writers = threading.Event()
        self.conf = os.path.join(self.workdir, "rzproxy.conf")
        self.results = []                # (scenario, leader before, after, held s, acked, missing, unknown)
        self.kz = None

    # ---- helpers
    def say(self, tag, text, style=None):
        self.con.line(tag, text, style)

    def hp(self, name):
        return "%s:%d" % (LOCALHOST, self.ports[name])

    def label(self, text):
        import re
        for name, port in self.ports.items():
            hp = "%s:%d" % (LOCALHOST, port)
            text = re.sub(re.escape(hp) + r"(?![\d\"])", "%s(%s)" % (hp, name), text)
        return text

    def leader(self):
        from kazoo.exceptions import NoNodeError
        try:
            data = self.kz.get(ROOT + "/leader_ack")[0].decode()
        except NoNodeError:
            return None
        return next((n for n in self.names if self.hp(n) == data), None)

    def wait(self, what, pred, timeout):
        return self.d.wait_until(self.con, what, pred, timeout)

    # ---- set-up
    def start_zookeeper(self):
        why = zkutil.zk_available()
        if why:
            raise self.d.DemoError("cannot start ZooKeeper: %s (run contrib/setup)" % why)
        self.zk = zkutil.ZkServer(os.path.join(self.workdir, "zk"))
        self.say("zk", "starting ZooKeeper (standalone, tickTime 200) on %s" % self.zk.hostport)
        self.zk.start(wait=False)
        self.wait("ZooKeeper", self.zk.serving, 60)
        self.kz = zkutil.kazoo_client(self.zk.hostport, auth_data=[("digest", DIGEST)])
        with open(self.conf, "w") as f:
            f.write("""# rzproxy configuration written by contrib/demo/election.py
zookeeper %(zk)s
zk-session-timeout %(session)d    # the candidates' sessions (the server may shorten it)
zk-auth-digest %(digest)s       # the election's nodes are created for this identity only
loglevel notice

pool election
    listen %(host)s:%(port)d
    znode %(root)s/leader_ack   # what the winner creates; missing: the pool gates
    on-no-master block               # hold commands while there is no leader...
    block-timeout 10000              # ...for at most 10 s, then -TRYAGAIN
    drain-timeout 1000
""" % {"zk": self.zk.hostport, "session": SESSION_MS, "host": LOCALHOST, "port": free_port(),
                "root": ROOT, "digest": DIGEST})

    def start_candidate(self, name):
        port = self.ports[name]
        rdir = os.path.join(self.workdir, "redis-" + name)
        os.makedirs(rdir, exist_ok=True)
        redis_argv = ["redis-server", "--port", str(port), "--bind", LOCALHOST, "--save", "",
                      "--appendonly", "no", "--dir", rdir, "--repl-diskless-sync-delay", "0",
                      "--replica-read-only", "yes", "--protected-mode", "no",
                      "--logfile", os.path.join(rdir, "redis.log")]
        logpath = os.path.join(self.workdir, "candidate-%s.log" % name)
        c = Candidate(self.conf, port, logpath, exec_argv=redis_argv)
        self.say("demo", "$ %s -c %s candidate --redis %s --exec redis-server --port %d ...   # %s"
                 % (self.d.shown(conftest.RZCTL), self.d.shown(self.conf), self.hp(name), port, name), "bold")
        c.start()
        self.cands[name] = c
        self.ctail.follow(name, logpath)
        return c

    def start_proxy(self):
        import subprocess
        port = int(open(self.conf).read().split("listen %s:" % LOCALHOST)[1].split()[0])
        logpath = os.path.join(self.workdir, "rzproxy.log")
        log = open(logpath, "ab")
        self.say("proxy", "$ %s %s   (clients: %s:%d)" % (self.d.shown(conftest.RZPROXY),
                                                           self.d.shown(self.conf), LOCALHOST, port), "bold")
        proc = subprocess.Popen([conftest.RZPROXY, self.conf], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        conftest._spawned[proc.pid] = proc
        self.proxy = conftest.Proxy(port, proc, self.conf, logpath)
        self.tail = self.d.LogTail(logpath, self.con, self.label)
        self.tail.start()
        self.wait("rzproxy to listen", lambda: port_open(port), 30)

    def proxy_on(self, name, timeout=30):
        want = self.hp(name)

        def ok():
            f = zkutil.pool_info(self.proxy, "election")
            return f.get("state") == "READY" and f.get("master") == want and f
        return self.wait("the proxy to forward to %s" % name, ok, timeout)

    def wait_following(self, name, leader, timeout=30):
        def ok():
            with conftest.RedisServer(self.workdir, port=self.ports[name]).client(socket_timeout=2) as c:
                r = c.info("replication")
            return (r.get("role") == "slave" and int(r.get("master_port", 0)) == self.ports[leader]
                    and r.get("master_link_status") == "up")
        self.wait("%s to replicate from %s" % (name, leader), ok, timeout)

    def setup(self):
        self.ctail = CandTail(self.con, self.label)
        self.ctail.start()
        self.start_zookeeper()
        for name in self.names:
            self.start_candidate(name)
            if name == "A":
                self.wait("A to lead", lambda: self.leader() == "A", 30)
        for name in ("B", "C"):
            self.wait_following(name, "A")
        self.start_proxy()
        self.proxy_on("A")
        self.con.blank()

    def start_writers(self):
        n = self.args.writers
        self.writers = [Pusher(i, self.proxy.port, self.stop_writers) for i in range(n)]
        self.say("writer", "%d writers through the proxy, each connecting as current client libraries "
                 "do (HELLO 3, CLIENT SETINFO), then RPUSH demo:<i> <n>, one at a time; a "
                 "connection lost with a command in flight counts as 'outcome unknown'" % n)
        for w in self.writers:
            w.start()
        self.ticker = self.d.Ticker(self.writers, self.con)
        self.ticker.start()
        self.wait("the writers to start", lambda: all(w.ops >= 10 for w in self.writers), 30)

    # ---- the failures
    def account(self, scenario, old, t_fail):
        """Wait for the new leader and the proxy on it, then compare what
        was acknowledged before the failure with the new leader's lists."""
        new = self.wait("a new leader", lambda: (self.leader() not in (None, old)) and self.leader(), 30)
        self.proxy_on(new)
        before = [sum(1 for _, t in w.acked if t <= t_fail) for w in self.writers]
        n0 = [w.ops for w in self.writers]
        self.wait("the writers to write on %s" % new,
                  lambda: all(w.ops >= k + 20 for w, k in zip(self.writers, n0)), 30)
        held = max(self.d_held(t_fail))
        missing = 0
        with conftest.RedisServer(self.workdir, port=self.ports[new]).client() as c:
            for w in self.writers:
                have = set(int(x) for x in c.lrange(w.key, 0, -1))
                missing += sum(1 for s, t in w.acked if t <= t_fail and s not in have)
        unknown = sum(len(w.unknown) for w in self.writers)
        self.results.append((scenario, old, new, held, sum(before), missing, unknown))
        self.say("demo", "%s: %s leads; the proxy held commands for at most %s; of %d writes "
                 "acknowledged before the failure, %d missing on %s; %d with unknown outcome so far"
                 % (scenario, new, self.d.fmt_ms(held), sum(before), missing, new, unknown),
                 "bad" if missing else "head")
        return new

    def d_held(self, t_fail):
        return [w.window_longest for w in self.writers] or [0.0]

    def reset_windows(self):
        for w in self.writers:
            w.window_longest = 0.0

    def scenario_sigterm(self, old):
        self.con.blank()
        self.say("demo", "1. SIGTERM to %s's candidate: it hands the leadership over, then stops its "
                 "redis-server" % old, "head")
        time.sleep(0.05)                 # the heading before what it causes
        self.reset_windows()
        t_fail = time.time()
        self.cands[old].signal(signal.SIGTERM)
        new = self.account("SIGTERM to the leader's candidate", old, t_fail)
        rc = self.cands[old].wait(30)
        self.say("demo", "%s's candidate exited %d; starting it again: it comes back as a follower"
                 % (old, rc))
        self.start_candidate(old)
        self.wait_following(old, new)
        return new

    def scenario_shutdown(self, old):
        self.con.blank()
        self.say("demo", "2. SHUTDOWN NOSAVE on %s's redis-server: its candidate sees its child exit, "
                 "gives the leadership up at once and exits" % old, "head")
        time.sleep(0.05)                 # the heading before what it causes
        self.reset_windows()
        t_fail = time.time()
        try:
            with RespConn.tcp(self.ports[old], timeout=10) as c:
                c.cmd("SHUTDOWN", "NOSAVE")
                c.read_all_until_close(5)
        except OSError:
            pass
        new = self.account("SHUTDOWN of the leader's redis", old, t_fail)
        rc = self.cands[old].wait(30)
        self.say("demo", "%s's candidate exited %d (its redis-server had exited); starting it again"
                 % (old, rc))
        self.start_candidate(old)
        self.wait_following(old, new)
        return new

    def scenario_sigstop(self, old):
        self.con.blank()
        stop_s = 2 * SESSION_MS / 1000.0
        self.say("demo", "3. SIGSTOP to %s's candidate for %.1f s, twice its session timeout: it can do "
                 "nothing, so the winner fences %s's redis itself" % (old, stop_s, old), "head")
        time.sleep(0.05)                 # the heading before what it causes
        self.reset_windows()
        mark = self.cands[old].log_size()
        t_fail = time.time()
        self.cands[old].signal(signal.SIGSTOP)
        try:
            new = self.account("SIGSTOP of the leader's candidate", old, t_fail)
            time.sleep(max(0.0, stop_s - (time.time() - t_fail)))
        finally:
            self.cands[old].signal(signal.SIGCONT)
        self.say("demo", "SIGCONT to %s's candidate: it finds its session expired and comes back as "
                 "a follower" % old)
        self.wait_following(old, new)
        self.wait("%s's candidate to follow" % old,
                  lambda: "-> FOLLOWER" in self.cands[old].log()[mark:], 30)
        return new

    # ---- the end
    def check(self, leader):
        missing = 0
        self.say("check", "reading every writer's list directly from %s" % self.label(self.hp(leader)))
        with conftest.RedisServer(self.workdir, port=self.ports[leader]).client() as c:
            for w in self.writers:
                items = [int(x) for x in c.lrange(w.key, 0, -1)]
                have = set(items)
                lost = [s for s, _ in w.acked if s not in have]
                missing += len(lost)
                ordered = items == sorted(items)
                ok = not lost and ordered
                self.say("check", "writer %d: %d acknowledged, %d missing, %s, %d of unknown outcome"
                         % (w.idx, len(w.acked), len(lost), "in order" if ordered else "OUT OF ORDER",
                            len(w.unknown)), "ok" if ok else "bad")
                if not ordered:
                    missing += 1
        return missing

    def stop_all(self):
        self.stop_writers.set()
        if self.ticker:
            self.ticker.halt.set()
        # the results are printed: what stopping says is in the logs only
        if self.tail is not None:
            self.tail.stop()
        if self.ctail is not None:
            self.ctail.stop()
        for c in self.cands.values():
            c.stop()
        if self.proxy is not None:
            conftest._stop_process(self.proxy.proc)
        if self.kz is not None:
            try:
                self.kz.stop()
                self.kz.close()
            except Exception:
                pass
        if self.zk is not None:
            self.zk.stop()
        for w in self.writers:
            w.join(5)


def run(d, args, con):
    """The --election demo; returns the exit status."""
    demo = ElectionDemo(d, args, con)
    rc = 1
    started = time.monotonic()
    pause = 1.0 if args.ci else 3.0
    try:
        con.line("demo", "rzproxy demo, election mode: no director, a candidate beside each redis-server; "
                 "logs in %s" % demo.workdir, "head")
        demo.setup()
        demo.start_writers()
        time.sleep(pause)
        lead = "A"
        lead = demo.scenario_sigterm(lead)
        time.sleep(pause)
        lead = demo.scenario_shutdown(lead)
        time.sleep(pause)
        lead = demo.scenario_sigstop(lead)
        time.sleep(pause)
        demo.stop_writers.set()
        for w in demo.writers:
            w.join(45)
        if demo.ticker:
            demo.ticker.stop()
        demo.tail.caught_up.clear()
        demo.tail.caught_up.wait(2)
        con.flush()
        con.blank()
        missing = demo.check(lead)
        refused = sum(len(w.refused) for w in demo.writers)
        con.blank()
        for scenario, old, new, held, acked, miss, unknown in demo.results:
            con.line("result", "%-34s %s -> %s   held at most %-8s  acknowledged before %6d  missing %d"
                     % (scenario, old, new, d.fmt_ms(held), acked, miss), "bad" if miss else None)
        con.line("result", "writes acknowledged  %d (%d writers); %d of unknown outcome (a connection "
                 "lost with the command in flight: the proxy never sends a command twice)"
                 % (sum(w.ops for w in demo.writers), len(demo.writers),
                    sum(len(w.unknown) for w in demo.writers)))
        con.line("result", "missing writes       %d (expected 0: every failure here is one the election "
                 "covers; a crash with writes not yet replicated is not: README)" % missing,
                 "bad" if missing else None)
        con.line("result", "other errors         %d (expected 0)" % refused, "bad" if refused else None)
        con.line("result", "logs                 %s (candidate-*.log, rzproxy.log, zk/, redis-*/)"
                 % demo.workdir)
        ok = missing == 0 and refused == 0
        con.line("result", "PASS: every acknowledged write is on %s" % demo.label(demo.hp(lead)) if ok
                 else "FAIL", "ok" if ok else "bad")
        rc = 0 if ok else 1
    except d.Interrupted as e:
        con.line("demo", "interrupted (%s): stopping everything" % e, "bad")
        rc = 130
    except d.DemoError as e:
        con.line("demo", "FAILED: %s" % e, "bad")
    except Exception as e:                       # noqa: BLE001  (a bug: say where)
        import traceback
        con.line("demo", "FAILED: %s: %s\n%s" % (type(e).__name__, e, traceback.format_exc().rstrip()), "bad")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        con.flush()
        if rc not in (0, 130):
            for name, c in demo.cands.items():
                con.line("demo", "candidate %s (tail):\n%s" % (name, c.log_tail(15)))
        t = time.monotonic()
        demo.stop_all()
        con.line("demo", "stopped the candidates (and their redis-servers), rzproxy and ZooKeeper "
                 "(%.1f s); total %.1f s" % (time.monotonic() - t, time.monotonic() - started))
        con.close()
    return rc
