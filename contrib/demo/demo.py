#!/usr/bin/python3
"""rzproxy in five minutes: a live, fenced failover under load, without an
error and without losing an acknowledged write.

    contrib/demo/run [--ci] [--keep] [--failovers N] [--writers N]
    contrib/demo/run --election [--ci] [--writers N]

--election runs the other design instead, with no director: a candidate
beside each of three redis-servers (see contrib/demo/election.py).

(contrib/demo/run installs what is missing and builds first, then runs this
file with /usr/bin/python3.)

What it does, everything on free 127.0.0.1 ports, in a fresh directory
under /tmp that keeps the logs:

  1. starts a standalone ZooKeeper, two redis-servers (B a replica of A,
     replica-read-only), names A in the znode with `rzproxy-ctl set-master`,
     and starts rzproxy with a znode pool (on-no-master block,
     block-timeout 5000, admin-listen);
  2. starts writers through the proxy: each does INCR on its own counter and
     RPUSH of a sequence number on its own list, one command at a time, and
     remembers every acknowledged reply;
  3. runs `rzproxy-ctl failover --to B`, then (by default) back to A, while
     the writers keep writing;
  4. stops the writers and checks, directly on the final master, that every
     acknowledged write is there with the right value, in order.

It prints as it happens, stamped with the seconds since the start: the set-up
steps, the proxy's state and master changes (from its log), the ctl's step
lines, and once a second the writers' throughput and errors.

Exit status: 0 when no writer saw an error and no acknowledged write is
missing; 1 otherwise (or when something could not be started); 2 bad usage;
130 when interrupted. Everything started is stopped at the end, on Ctrl-C,
on SIGTERM and on errors (with --keep: left running until Ctrl-C).
"""

import signal
import sys


def _early_exit(signum, frame):
    sys.exit(130)                 # Ctrl-C while still importing: nothing started yet


signal.signal(signal.SIGINT, _early_exit)
signal.signal(signal.SIGTERM, _early_exit)

# (imports after the handlers above: importing takes a moment)
import argparse
import datetime
import heapq
import itertools
import os
import re
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
os.environ.setdefault("RZ_SRCDIR", TOP)
sys.dont_write_bytecode = True                     # leave no __pycache__ in the tree

# the integration suite's helpers: processes on free loopback ports, RESP, PROXY INFO
import conftest
import redis
import zkutil
from conftest import LOCALHOST, RespConn, free_port, port_open

ZNODE = "/rzproxy-demo"


class DemoError(Exception):
    """Something could not be started or did not happen in time."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM (a BaseException: no `except Exception` swallows it)."""


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


# --------------------------------------------------------------------------
# output: one console, lines in time order
# --------------------------------------------------------------------------

class Console:
    """Every line goes through here, stamped with the seconds since the
    start. Lines from the proxy's log carry the log's own time, so lines are
    held for a moment and written in time order; a progress line (on a
    terminal) stays under them."""

    DELAY = 0.15
    STYLES = {"dim": "2", "bold": "1", "proxy": "36", "ctl": "33", "writer": "34",
              "ok": "1;32", "bad": "1;31", "head": "1"}

    def __init__(self, color, tty):
        self.t0 = time.time()
        self.color, self.tty = color, tty
        self.heap, self.seq = [], itertools.count()
        self.lock = threading.Lock()
        self.progress_text = None
        self.progress_sec = -1
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def paint(self, text, style):
        if not self.color or not style:
            return text
        return "\033[%sm%s\033[0m" % (self.STYLES[style], text)

    def line(self, tag, text, style=None, t=None):
        with self.lock:
            heapq.heappush(self.heap, (t if t is not None else time.time(), next(self.seq), tag, text, style))

    def blank(self):
        self.line("", "")

    def _emit(self, ev):
        t, _, tag, text, style = ev
        if not tag and not text:
            out = ""
        else:
            out = "%s %-6s %s" % (self.paint("[%6.2fs]" % (t - self.t0), "dim"),
                                  tag, self.paint(text, style))
        if self.tty and self.progress_text:
            sys.stdout.write("\r\033[K")
        sys.stdout.write(out + "\n")
        if self.tty and self.progress_text:
            sys.stdout.write(self.progress_text)
        sys.stdout.flush()

    def _drain(self, everything=False):
        with self.lock:
            limit = time.time() - self.DELAY
            while self.heap and (everything or self.heap[0][0] <= limit):
                self._emit(heapq.heappop(self.heap))

    def _run(self):
        while not self.halt.wait(0.02):
            self._drain()

    def flush(self):
        """Write everything queued now (the proxy's lines of the last moment
        may still be on their way: call after the log tailer caught up)."""
        self._drain(everything=True)

    def progress(self, what, elapsed):
        """Something slower than a second: on a terminal one line updated in
        place, elsewhere a line per second."""
        if self.tty:
            text = "%s %-6s %s" % (" " * 9, "", self.paint("waiting for %s ... %.1fs" % (what, elapsed), "dim"))
            with self.lock:
                if text != self.progress_text:
                    self.progress_text = text
                    sys.stdout.write("\r\033[K" + text)
                    sys.stdout.flush()
        elif int(elapsed) != self.progress_sec:
            self.progress_sec = int(elapsed)
            self.line("", "waiting for %s ... %ds" % (what, int(elapsed)))

    def progress_done(self):
        self.progress_sec = -1
        if self.tty and self.progress_text:
            with self.lock:
                self.progress_text = None
                sys.stdout.write("\r\033[K")
                sys.stdout.flush()

    def close(self):
        self.progress_done()
        self.halt.set()
        self.thread.join(2)
        self.flush()


def wait_until(con, what, pred, timeout, interval=0.05):
    """Poll pred() until it returns something true; bounded. pred may raise
    OSError or a redis connection error (not up yet: keep polling) or
    AssertionError (dead: give up)."""
    start = time.monotonic()
    try:
        while True:
            try:
                v = pred()
            except (OSError, redis.ConnectionError, redis.TimeoutError):
                v = None
            except AssertionError as e:
                raise DemoError(str(e)) from None
            if v:
                return v
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                raise DemoError("timed out after %.0f s waiting for %s" % (timeout, what))
            if elapsed >= 1.0:
                con.progress(what, elapsed)
            time.sleep(interval)
    finally:
        con.progress_done()


# --------------------------------------------------------------------------
# the proxy's log, followed
# --------------------------------------------------------------------------

class LogTail(threading.Thread):
    """Follows rzproxy's log and prints its state and master changes (and any
    warning or error) with the log's own time stamps. A line repeated at once
    (one per client) is printed once, then counted."""

    SHOW = ("state ", "master ", "first command to master ")

    def __init__(self, path, con, label):
        super().__init__(daemon=True)
        self.path, self.con, self.label = path, con, label
        self.halt = threading.Event()
        self.pos = 0
        self.caught_up = threading.Event()
        self.last, self.repeats, self.last_t = None, 0, 0.0

    def run(self):
        partial = b""
        while True:
            halting = self.halt.is_set()
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.pos)
                    data = f.read()
                    self.pos += len(data)
            except OSError:
                data = b""
            lines = (partial + data).split(b"\n")
            partial = lines.pop()
            for raw in lines:
                self.show(raw.decode("utf-8", "replace"))
            if halting or (not data and time.time() - self.last_t > 0.1):
                self.flush_repeats()
            self.caught_up.set()
            if halting:
                return
            self.halt.wait(0.02)

    def show(self, line):
        # 2024-05-01 12:00:00.123 NOTICE 4242 [main] state READY -> NO_NODE: znode missing
        parts = line.split(" ", 4)
        if len(parts) < 5:
            return
        try:
            t = datetime.datetime.strptime(parts[0] + " " + parts[1], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            return
        level, text = parts[2], parts[4]
        if text.startswith("[") and "] " in text:
            text = text.split("] ", 1)[1]
        level = level.lower()
        if level not in ("warning", "error") and not text.startswith(self.SHOW):
            return
        if (level, text) == self.last:
            self.repeats += 1
            self.last_t = t
            return
        self.flush_repeats()
        self.last, self.last_t = (level, text), t
        if level in ("warning", "error"):
            # a warning is expected in a failover: the old master refusing a
            # write (-READONLY) the proxy then sends to the new one
            self.con.line("proxy", "%s: %s" % (level, self.label(text)),
                          "bad" if level == "error" else "proxy", t=t)
        else:
            self.con.line("proxy", self.label(text), "proxy", t=t)

    def flush_repeats(self):
        if self.repeats:
            self.con.line("proxy", "(the same %d more time%s)" % (self.repeats, "s" if self.repeats > 1 else ""),
                          "proxy", t=self.last_t)
            self.repeats = 0

    def stop(self):
        """Read to the end of the log, print, stop."""
        self.halt.set()
        self.join(5)


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------

DEMO_USER, DEMO_PASSWORD = "demo", "demopw"   # the ACL user some writers log in as


class Writer(threading.Thread):
    """Connects the way current client libraries do (node-redis 6, ioredis 6,
    go-redis, Lettuce): HELLO 3, CLIENT SETINFO LIB-NAME/LIB-VER, and, as an
    application configured with a database or a user would, SELECT <db> and
    AUTH (here inside HELLO). Writer i uses db i % 3; odd writers log in as
    the ACL user "demo". Then INCR demo:<i>:count and RPUSH demo:<i>:seq <n>,
    one command at a time through the proxy, on that one connection,
    remembering every acknowledged reply. Any reply that is not an integer is
    an error (none is expected: in block mode the proxy holds commands while
    it switches). -TRYAGAIN means the command did not run: counted, then the
    same command is sent again. Any other error, or losing the connection,
    stops this writer."""

    def __init__(self, idx, port, stop):
        super().__init__(daemon=True)
        self.idx, self.port, self.stop = idx, port, stop
        self.db, self.auth = idx % 3, idx % 2 == 1
        self.counter, self.list = "demo:%d:count" % idx, "demo:%d:seq" % idx
        self.incr_acks, self.push_acks = [], []
        self.errors, self.failure = [], None
        self.longest, self.longest_at = 0.0, None     # longest single command, and when it ended
        self.window_longest = 0.0                     # since the last report
        self.slow = []                                # (answered at, took) of commands over 1 ms
        self.conn = None

    def call(self, *args):
        while True:
            t = time.monotonic()
            rep = self.conn.call(*args, timeout=30)
            took = time.monotonic() - t
            self.window_longest = max(self.window_longest, took)
            if took >= 0.001 and len(self.slow) < 200000:
                self.slow.append((time.time(), took))
            if took > self.longest:
                self.longest, self.longest_at = took, time.time()
            if isinstance(rep, int):
                return rep
            self.errors.append("%s: %s" % (args[0], rep))
            if not str(rep).startswith("TRYAGAIN"):
                return None
            time.sleep(0.01)

    def setup(self):
        hello = ("HELLO", "3") + (("AUTH", DEMO_USER, DEMO_PASSWORD) if self.auth else ())
        for cmd in (hello, ("CLIENT", "SETINFO", "LIB-NAME", "rzproxy-demo"),
                    ("CLIENT", "SETINFO", "LIB-VER", "1.0"), ("SELECT", str(self.db))):
            rep = self.conn.call(*cmd, timeout=30)
            if isinstance(rep, conftest.Error):
                raise RuntimeError("%s: %s" % (" ".join(cmd[:2]), rep))

    def run(self):
        try:
            self.conn = RespConn.tcp(self.port, timeout=30)
            self.setup()
            seq = 0
            while not self.stop.is_set():
                rep = self.call("INCR", self.counter)
                if rep is None:
                    return
                self.incr_acks.append(rep)
                if self.call("RPUSH", self.list, seq) is None:
                    return
                self.push_acks.append(seq)
                seq += 1
        except Exception as e:                      # noqa: BLE001  (reported at the end)
            self.failure = "%s: %s" % (type(e).__name__, e)
        finally:
            if self.conn is not None:
                self.conn.close()

    @property
    def ops(self):
        return len(self.incr_acks) + len(self.push_acks)


class Ticker(threading.Thread):
    """Once a second: the writers' throughput, errors, and the longest any
    single command took in that second."""

    def __init__(self, writers, con):
        super().__init__(daemon=True)
        self.writers, self.con = writers, con
        self.halt = threading.Event()

    def report(self, last_ops, last_t):
        ops = sum(w.ops for w in self.writers)
        now = time.monotonic()
        longest = 0.0
        for w in self.writers:
            longest = max(longest, w.window_longest)
            w.window_longest = 0.0
        errors = sum(len(w.errors) for w in self.writers) + sum(1 for w in self.writers if w.failure)
        rate = (ops - last_ops) / max(now - last_t, 1e-3)
        self.con.line("writer", "%6.0f ops/s   errors %d   slowest command %s   (%d acknowledged)"
                      % (rate, errors, fmt_ms(longest), ops), "bad" if errors else "writer")
        return ops, now

    def run(self):
        last_ops, last_t = sum(w.ops for w in self.writers), time.monotonic()
        while not self.halt.wait(1.0):
            last_ops, last_t = self.report(last_ops, last_t)

    def stop(self):
        self.halt.set()
        self.join(5)


def fmt_ms(seconds):
    return "%.1f ms" % (seconds * 1000.0) if seconds < 0.1 else "%.0f ms" % (seconds * 1000.0)


# --------------------------------------------------------------------------
# the demo
# --------------------------------------------------------------------------

def shown(path):
    """A path as short as it reads well: relative to the current directory
    when it is inside it."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path


class Demo:
    def __init__(self, args, con):
        self.args, self.con = args, con
        self.workdir = tempfile.mkdtemp(prefix="rzproxy-demo.")
        self.zk = None
        self.servers = {}              # "A"/"B" -> RedisServer
        self.clients = {}              # "A"/"B" -> redis.Redis, direct
        self.proxy = None              # conftest.Proxy
        self.admin_port = None
        self.conf = os.path.join(self.workdir, "rzproxy.conf")
        self.tail = None
        self.ticker = None
        self.writers = []
        self.stop_writers = threading.Event()
        self.ctl_proc = None
        self.switches = []             # (name, ctl seconds, last_switch_ms)
        self.windows = []              # (name, wall time from, to): a failover under way
        self.ctl_runs = 0
        self.master = None             # name of the current master

    # ---- helpers
    def say(self, tag, text, style=None):
        self.con.line(tag, text, style)

    def hp(self, name):
        return "%s:%d" % (LOCALHOST, self.servers[name].port)

    def label(self, text):
        """Name the servers in a line: 127.0.0.1:40001 -> 127.0.0.1:40001(A),
        except inside quotes (the znode's bytes, as the ctl prints them)."""
        for name, srv in self.servers.items():
            hp = "%s:%d" % (LOCALHOST, srv.port)
            text = re.sub(re.escape(hp) + r'(?![\d"])', "%s(%s)" % (hp, name), text)
        return text

    def info(self):
        return zkutil.pool_info(self.proxy)

    def direct(self, name):
        """A direct connection to redis-server `name` (one each, reused)."""
        if name not in self.clients:
            self.clients[name] = self.servers[name].client()
        return self.clients[name]

    def in_sync(self, name):
        return self.direct(name).info("replication").get("master_link_status") == "up"

    def admin_get(self, path):
        """(HTTP status, body) from the proxy's admin listener."""
        try:
            with urllib.request.urlopen("http://%s:%d%s" % (LOCALHOST, self.admin_port, path), timeout=5) as r:
                return r.status, r.read().decode("utf-8", "replace").strip()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace").strip()

    def healthz(self):
        return self.admin_get("/healthz")

    def metrics(self, names):
        """{name: value} of the pool's samples rzproxy_pool_<name>{pool="main"} in /metrics."""
        out = {}
        for line in self.admin_get("/metrics")[1].splitlines():
            for n in names:
                if line.startswith("rzproxy_pool_%s{" % n) and 'pool="main"' in line:
                    v = line.rsplit(" ", 1)[1]
                    try:
                        v = "%g" % float(v)
                    except ValueError:
                        pass
                    out[n] = v
        return out

    def held_during(self, t0, t1):
        """The longest any one command took among those answered between t0
        and t1 (wall clock), in seconds."""
        return max((took for w in self.writers for at, took in list(w.slow) if t0 <= at <= t1), default=0.0)

    # ---- set-up
    def start_zookeeper(self):
        why = zkutil.zk_available()
        if why:
            raise DemoError("cannot start ZooKeeper: %s (run contrib/setup)" % why)
        self.zk = zkutil.ZkServer(os.path.join(self.workdir, "zk"))
        t = time.monotonic()
        self.say("zk", "starting ZooKeeper (standalone) on %s" % self.zk.hostport)
        self.zk.start(wait=False)
        wait_until(self.con, "ZooKeeper", self.zk.serving, timeout=60, interval=0.1)
        self.say("zk", "ZooKeeper serving (took %.1f s)" % (time.monotonic() - t))

    def start_redis(self):
        extra = ["--repl-diskless-sync-delay", "0", "--replica-read-only", "yes"]
        for name in ("A", "B"):
            srv = conftest.RedisServer(os.path.join(self.workdir, "redis-" + name), extra_args=extra)
            self.servers[name] = srv
            srv.start(wait=False)
        for name, srv in self.servers.items():
            wait_until(self.con, "redis-server %s" % name, srv._ready, timeout=30)
        a = self.servers["A"]
        for srv in self.servers.values():      # ACLs are not replicated
            with srv.client() as c:
                c.execute_command("ACL", "SETUSER", DEMO_USER, "on", ">" + DEMO_PASSWORD, "~*", "&*", "+@all")
        self.say("redis", "A: redis-server on %s (master)" % self.hp("A"))
        self.direct("B").slaveof(LOCALHOST, a.port)
        self.say("redis", "B: redis-server on %s, SLAVEOF A (replica-read-only yes)" % self.hp("B"))
        t = time.monotonic()
        wait_until(self.con, "B to sync with A", lambda: self.in_sync("B"), timeout=60)
        self.say("redis", "B in sync with A (took %.1f s)" % (time.monotonic() - t))

    def write_conf(self):
        port = free_port()
        self.admin_port = free_port()
        with open(self.conf, "w") as f:
            f.write("""# rzproxy configuration written by contrib/demo/demo.py
zookeeper %(zk)s
zk-session-timeout 4000
zk-auth-digest demo:demopw       # rzproxy-ctl creates the znode for this identity only
admin-listen %(host)s:%(admin)d       # /metrics, /healthz, /info
loglevel notice

pool main
    listen %(host)s:%(port)d
    znode %(znode)s                # names the master: host:port
    on-no-master block               # hold commands while there is no usable master...
    block-timeout 5000               # ...for at most 5 s, then -TRYAGAIN
""" % {"zk": self.zk.hostport, "host": LOCALHOST, "admin": self.admin_port, "port": port,
                "znode": ZNODE})
        return port

    def ctl(self, *args, timeout=60.0, note=""):
        """Run rzproxy-ctl with the proxy's conf, printing its lines as they
        come; returns its exit status. Its output is also kept in the work
        directory."""
        argv = [conftest.RZCTL, "-c", self.conf] + [str(a) for a in args]
        self.ctl_runs += 1
        logpath = os.path.join(self.workdir, "ctl-%d-%s.log" % (self.ctl_runs, args[0]))
        self.say("ctl", "$ %s%s" % (" ".join([shown(conftest.RZCTL), "-c", shown(self.conf)]
                                             + [str(a) for a in args]), note), "bold")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace")
        conftest._spawned[proc.pid] = proc
        self.ctl_proc = proc

        def read():
            with open(logpath, "w") as log:
                for line in proc.stdout:
                    log.write(line)
                    self.say("ctl", self.label(line.rstrip("\n")), "ctl")
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise DemoError("rzproxy-ctl %s did not finish within %.0f s" % (args[0], timeout)) from None
        finally:
            if proc.poll() is None:            # interrupted: do not leave it running
                proc.kill()
                proc.wait(5)
            conftest._spawned.pop(proc.pid, None)
            self.ctl_proc = None
        reader.join(5)
        return rc

    def start_proxy(self):
        port = self.write_conf()
        rc = self.ctl("set-master", self.hp("A"), note="   # A")
        if rc != 0:
            raise DemoError("rzproxy-ctl set-master exited %d" % rc)
        self.master = "A"
        logpath = os.path.join(self.workdir, "rzproxy.log")
        log = open(logpath, "ab")
        self.say("proxy", "$ %s %s   (clients: %s:%d, admin: http://%s:%d/)" % (
            shown(conftest.RZPROXY), shown(self.conf), LOCALHOST, port, LOCALHOST, self.admin_port), "bold")
        proc = subprocess.Popen([conftest.RZPROXY, self.conf], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        conftest._spawned[proc.pid] = proc
        self.proxy = conftest.Proxy(port, proc, self.conf, logpath)
        self.tail = LogTail(logpath, self.con, self.label)
        self.tail.start()

        def listening():
            if proc.poll() is not None:
                raise AssertionError("rzproxy exited with %s:\n%s" % (proc.returncode, self.proxy.log_tail(20)))
            return port_open(port)
        wait_until(self.con, "rzproxy to listen", listening, timeout=30)
        self.wait_ready("A")
        status, body = self.healthz()
        self.say("proxy", "GET /healthz: %d %s" % (status, body.splitlines()[0] if body else ""))

    def wait_ready(self, name):
        want = self.hp(name)

        def ready():
            if not self.proxy.alive():
                raise AssertionError("rzproxy exited with %s:\n%s" % (self.proxy.proc.returncode,
                                                                     self.proxy.log_tail(20)))
            f = self.info()
            return f.get("state") == "READY" and f.get("master") == want and f
        return wait_until(self.con, "the proxy to forward to %s" % name, ready, timeout=30)

    # ---- writers
    def start_writers(self):
        self.writers = [Writer(i, self.proxy.port, self.stop_writers) for i in range(self.args.writers)]
        self.say("writer", "%d writers through the proxy, each connecting as current client libraries "
                 "do (HELLO 3, CLIENT SETINFO, SELECT <i %% 3>, odd ones AUTH as user %s), then one command "
                 "at a time: INCR demo:<i>:count, RPUSH demo:<i>:seq <n>" % (len(self.writers), DEMO_USER))
        for w in self.writers:
            w.start()
        self.ticker = Ticker(self.writers, self.con)
        self.ticker.start()
        wait_until(self.con, "the writers to start",
                   lambda: all(w.ops >= 10 or w.failure or w.errors for w in self.writers), timeout=30)

    def run_for(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.05)

    def failover(self, to):
        self.con.blank()
        self.say("demo", "failover: %s -> %s, live, while the writers keep going" % (self.master, to), "head")
        wait_until(self.con, "%s to be in sync with %s" % (to, self.master), lambda: self.in_sync(to), timeout=60)
        t, wall = time.monotonic(), time.time()
        rc = self.ctl("failover", "--to", self.hp(to), "--timeout", "10000", note="   # %s" % to)
        took = time.monotonic() - t
        if rc != 0:
            raise DemoError("rzproxy-ctl failover --to %s exited %d (see the lines above)" % (to, rc))
        f = self.wait_ready(to)
        self.master = to
        before = [w.ops for w in self.writers]
        wait_until(self.con, "the writers to write on %s" % to,
                   lambda: all(w.ops >= b + 4 or w.failure or w.errors for w, b in zip(self.writers, before)),
                   timeout=30)
        switch_ms = f.get("last_switch_ms", "?")
        self.switches.append((to, took, switch_ms))
        self.windows.append((to, wall, time.time()))
        self.say("demo", "the proxy forwards to %s; rzproxy-ctl took %.2f s, the proxy's switch %s ms "
                 "(PROXY INFO last_switch_ms: znode event -> first command forwarded)"
                 % (self.label(self.hp(to)), took, switch_ms), "head")
        self.con.blank()

    def stop_writing(self):
        self.stop_writers.set()
        for w in self.writers:
            w.join(45)
        if self.ticker:
            self.ticker.stop()
        if any(w.is_alive() for w in self.writers):
            raise DemoError("a writer did not stop within 45 s")

    # ---- the check
    def check(self):
        """Every acknowledged write on the final master, right value, right
        order. Returns (errors, missing) counts."""
        name = self.master
        role = self.direct(name).info("replication").get("role")
        self.say("check", "reading every writer's keys directly from %s (role:%s)"
                 % (self.label(self.hp(name)), role))
        errors, missing = 0, 0
        for w in self.writers:
            c = self.servers[name].client(db=w.db)
            n = len(w.incr_acks)
            counter = int(c.get(w.counter) or 0)
            items = [int(x) for x in c.lrange(w.list, 0, -1)]
            c.close()
            problems = []
            if w.incr_acks != list(range(1, n + 1)):
                problems.append("INCR replies not 1..%d" % n)
            if counter < n:
                problems.append("counter %d < %d acknowledged INCRs" % (counter, n))
                missing += n - counter
            elif counter > n:
                problems.append("counter %d > %d acknowledged (a command whose outcome was unknown ran)"
                                % (counter, n))
            if items[:len(w.push_acks)] != w.push_acks:
                lost = len(set(w.push_acks) - set(items))
                missing += lost
                problems.append("list differs from the %d acknowledged RPUSHes (%d missing)"
                                % (len(w.push_acks), lost))
            elif len(items) > len(w.push_acks):
                problems.append("list has %d unacknowledged item(s) at the end" % (len(items) - len(w.push_acks)))
            e = len(w.errors) + (1 if w.failure else 0)
            errors += e
            if w.errors:
                problems.append("%d error(s), first: %s" % (len(w.errors), w.errors[0]))
            if w.failure:
                problems.append("stopped: %s" % w.failure)
            if problems:
                self.say("check", "writer %d: %s" % (w.idx, "; ".join(problems)), "bad")
            else:
                self.say("check", "writer %d: %d INCRs and %d RPUSHes acknowledged: counter = %d and the "
                         "list holds 0..%d in order   OK" % (w.idx, n, len(w.push_acks), counter,
                                                             len(w.push_acks) - 1), "ok")
        conns = [x for x in self.direct(name).client_list() if x.get("name") != conftest.ADMIN_NAME
                 and "S" not in x.get("flags", "")]
        states = {(w.db, w.auth) for w in self.writers}
        self.say("check", "%s holds %d connection(s) from the proxy for %d writers in %d session states "
                 "(database, RESP3, user): each writer kept its one connection to the proxy throughout"
                 % (self.label(self.hp(name)), len(conns), len(self.writers), len(states)))
        return errors, missing

    # ---- teardown
    def stop_all(self):
        self.stop_writers.set()
        if self.ticker:
            self.ticker.halt.set()
        if self.ctl_proc is not None and self.ctl_proc.poll() is None:
            self.ctl_proc.kill()
            self.ctl_proc.wait(5)
        if self.proxy is not None and self.proxy.proc is not None:
            conftest._stop_process(self.proxy.proc)
        if self.tail is not None:
            self.tail.stop()
        for c in self.clients.values():
            c.close()
        for srv in self.servers.values():
            if srv.proc is not None:
                srv.stop()
        if self.zk is not None:
            self.zk.stop()
        for w in self.writers:
            w.join(5)


def keep_running(demo, con):
    d = demo
    px = d.proxy.port
    lines = [
        "Everything is still running. In another terminal, try:",
        "  redis-cli -p %d incr hello            # through rzproxy" % px,
        "  redis-cli -p %d proxy info            # the proxy's own view" % px,
        "  %s -c %s show" % (shown(conftest.RZCTL), d.conf),
        "  %s -c %s failover --to %s   # back to %s"
        % (shown(conftest.RZCTL), d.conf, d.hp("B" if d.master == "A" else "A"), "B" if d.master == "A" else "A"),
        "  redis-cli -p %d info replication      # A   (B: -p %d)" % (d.servers["A"].port, d.servers["B"].port),
        "  http://%s:%d/metrics  /healthz  /info  (admin listener)" % (LOCALHOST, d.admin_port),
        "  tail -f %s" % d.proxy.logpath,
        "The proxy's state changes keep appearing here. Ctrl-C stops everything.",
    ]
    for line in lines:
        con.line("keep", line)
    while True:
        time.sleep(0.5)
        if not d.proxy.alive():
            con.line("keep", "rzproxy exited (%s): stopping" % d.proxy.proc.returncode, "bad")
            return


def main():
    ap = argparse.ArgumentParser(
        prog="contrib/demo/run",
        description="A live, fenced failover under load: ZooKeeper, two redis-servers and rzproxy on "
                    "loopback, writers through the proxy, rzproxy-ctl failover, and a check that every "
                    "acknowledged write is on the final master.")
    ap.add_argument("--ci", action="store_true",
                    help="non-interactive: no colors, no progress line updated in place, shorter phases")
    ap.add_argument("--keep", action="store_true",
                    help="leave everything running at the end and say how to talk to it; Ctrl-C stops")
    ap.add_argument("--failovers", type=int, default=2, metavar="N",
                    help="failovers to run, alternating B, A, ... (default 2)")
    ap.add_argument("--writers", type=int, default=4, metavar="N", help="writer threads (default 4)")
    ap.add_argument("--election", action="store_true",
                    help="the design with no director: three redis-servers, each started by its own "
                         "`rzproxy-ctl candidate`; the leader's candidate SIGTERMed, its redis SHUTDOWN, "
                         "a leader's candidate SIGSTOPped past its session, with the loss accounting of each")
    args = ap.parse_args()
    if args.ci and args.keep:
        ap.error("--ci and --keep do not go together")
    if args.election and args.keep:
        ap.error("--election and --keep do not go together")
    if not 1 <= args.failovers <= 20:
        ap.error("--failovers: 1..20")
    if not 1 <= args.writers <= 32:
        ap.error("--writers: 1..32")
    for path in (conftest.RZPROXY, conftest.RZCTL):
        if not os.access(path, os.X_OK):
            print("demo: %s not found: build first (contrib/setup)" % path, file=sys.stderr)
            return 1

    tty = sys.stdout.isatty() and not args.ci
    color = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM", "dumb") != "dumb"
    # warm-up, after each failover, and after the last one (seconds)
    phases = (2.0, 2.0, 1.5) if args.ci else (4.0, 5.0, 5.0)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    con = Console(color, tty)
    if args.election:
        import election
        return election.run(sys.modules[__name__], args, con)
    demo = Demo(args, con)
    rc = 1
    started = time.monotonic()
    try:
        con.line("demo", "rzproxy demo: a live failover under load; logs in %s" % demo.workdir, "head")
        demo.start_zookeeper()
        demo.start_redis()
        demo.start_proxy()
        con.blank()
        demo.start_writers()
        demo.run_for(phases[0])
        targets = ["B", "A"] * args.failovers
        for k in range(args.failovers):
            demo.failover(targets[k])
            demo.run_for(phases[1] if k + 1 < args.failovers else phases[2])
        demo.stop_writing()
        demo.tail.caught_up.clear()
        demo.tail.caught_up.wait(2)
        con.flush()
        con.blank()
        errors, missing = demo.check()
        writes = sum(w.ops for w in demo.writers)
        slow = max(demo.writers, key=lambda w: w.longest)
        info = demo.info()
        con.blank()
        con.line("result", "writes acknowledged  %d (%d writers)" % (writes, len(demo.writers)))
        con.line("result", "errors               %d (expected 0)" % errors, "bad" if errors else None)
        con.line("result", "missing writes       %d (expected 0)" % missing, "bad" if missing else None)
        at = slow.longest_at or con.t0
        during = next((to for to, t0, t1 in demo.windows if t0 <= at <= t1), None)
        con.line("result", "longest pause        %s (one command of writer %d, answered at %.2fs, %s)"
                 % (fmt_ms(slow.longest), slow.idx, at - con.t0,
                    "during the failover to %s" % during if during else "not during a failover"))
        con.line("result", "held by failovers    %s (the longest command while each failover ran)"
                 % ", ".join("%s to %s" % (fmt_ms(demo.held_during(t0, t1)), to)
                             for to, t0, t1 in demo.windows))
        con.line("result", "switch time          %s (PROXY INFO last_switch_ms, per failover)"
                 % ", ".join("%s ms to %s" % (ms, to) for to, _, ms in demo.switches))
        con.line("result", "failovers            %s (rzproxy-ctl, all steps)"
                 % ", ".join("%.2f s to %s" % (took, to) for to, took, _ in demo.switches))
        con.line("result", "proxy                state %s, master %s, %s master changes"
                 % (info.get("state"), demo.label(info.get("master", "")), info.get("master_changes")))
        m = demo.metrics(("switches_total", "gated_seconds_total", "readonly_retries_total", "tryagain_total"))
        con.line("result", "GET /metrics         %s" % ", ".join("%s %s" % kv for kv in m.items()))
        con.line("result", "                     (readonly_retries: writes the old master refused with -READONLY "
                 "after the pause; they had not run, so the proxy sent them to the new master)")
        con.line("result", "logs                 %s (rzproxy.log, ctl-*.log, zk/, redis-A/, redis-B/)"
                 % demo.workdir)
        ok = errors == 0 and missing == 0
        if ok:
            con.line("result", "PASS: no writer saw an error, every acknowledged write is on %s"
                     % demo.label(demo.hp(demo.master)), "ok")
        else:
            con.line("result", "FAIL: %d error(s), %d missing write(s)" % (errors, missing), "bad")
        rc = 0 if ok else 1
        if args.keep:
            con.flush()
            keep_running(demo, con)
    except Interrupted as e:
        done = args.keep and rc == 0               # --keep after a pass: Ctrl-C is the way out
        con.line("demo", "%s (%s): stopping everything" % ("done" if done else "interrupted", e),
                 None if done else "bad")
        if not done:
            rc = 130
    except DemoError as e:
        con.line("demo", "FAILED: %s" % e, "bad")
        rc = 1
    except Exception as e:                          # noqa: BLE001  (a bug: say where)
        con.line("demo", "FAILED: %s: %s\n%s" % (type(e).__name__, e, traceback.format_exc().rstrip()), "bad")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        con.flush()
        if rc not in (0, 130) and demo.proxy is not None:
            con.line("demo", "rzproxy log (tail):\n%s" % demo.proxy.log_tail(25))
        t = time.monotonic()
        demo.stop_all()
        con.line("demo", "stopped rzproxy, redis-servers and ZooKeeper (%.1f s); total %.1f s"
                 % (time.monotonic() - t, time.monotonic() - started))
        con.close()
    return rc


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Interrupted:            # a second Ctrl-C while reporting the first
        sys.exit(130)
