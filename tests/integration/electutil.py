"""
Helpers for the election tests (test_election.py) and the demo's
--election mode: `rzproxy-ctl candidate` processes, a TCP relay that can
cut one candidate off from ZooKeeper, and reading the election (the zk
gem's ZK::Election layout: ROOT/ballot<10 digits>, ROOT/leader_ack).

Processes are stopped by pid (the tests' fixtures stop what they start,
also when a test fails; conftest's atexit hook kills leftovers). Every
wait is bounded. Only 127.0.0.1.
"""

import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

from conftest import LOCALHOST, RZCTL, _spawned, _tail, sanitizer_report_in, wait_for, write_ctl_conf

ACK = "leader_ack"
BALLOT_RE = re.compile(r"^ballot\d{10}$")


class Candidate:
    """`rzproxy-ctl -c CONF candidate --redis 127.0.0.1:PORT ...`, its
    output (stdout and stderr) appended to a log file of its own."""

    def __init__(self, conf, port, logpath, args=(), exec_argv=None):
        self.conf, self.port, self.logpath = conf, port, logpath
        self.args, self.exec_argv = list(args), exec_argv
        self.proc = None

    @property
    def addr(self):
        return "%s:%d" % (LOCALHOST, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        argv = [RZCTL, "-c", self.conf, "candidate", "--redis", self.addr] + self.args
        if self.exec_argv:
            argv += ["--exec"] + list(self.exec_argv)
        log = open(self.logpath, "ab")
        log.write(b"==== started at %.3f: %s\n" % (time.time(), " ".join(argv).encode()))
        log.flush()
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        _spawned[self.proc.pid] = self.proc
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout=15.0):
        """Wait for the exit (bounded); returns the exit status."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("candidate %s did not exit within %.0fs:\n%s"
                                 % (self.addr, timeout, self.log_tail(30))) from None
        _spawned.pop(self.proc.pid, None)
        return rc

    def terminate(self, timeout=15.0):
        """SIGTERM and wait; returns the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def stop(self):
        """Teardown: SIGCONT (it may be stopped), SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        _spawned.pop(self.proc.pid, None)

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return _tail(self.logpath, n)

    def wait_log(self, text, timeout=10.0, after=0):
        """Wait until the log (from byte `after`) holds text; returns the line."""
        def found():
            log = self.log()[after:]
            i = log.find(text)
            return log[log.rfind("\n", 0, i) + 1:log.find("\n", i)] if i >= 0 else None
        try:
            return wait_for(found, timeout=timeout, interval=0.02, what="%r in %s's log" % (text, self.addr))
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.log_tail(25))) from None

    def log_size(self):
        try:
            return os.path.getsize(self.logpath)
        except OSError:
            return 0


class Relay(threading.Thread):
    """A TCP relay 127.0.0.1:port -> target_port. cut(): nothing more is
    forwarded either way (open connections fall silent, as behind a
    partition) and new connections are refused (closed at once); heal():
    forwarding resumes, new connections are relayed again."""

    def __init__(self, target_port):
        super().__init__(daemon=True)
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOCALHOST, 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.pairs = {}                 # socket -> its peer
        self.is_cut = False
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.start()

    @property
    def hostport(self):
        return "%s:%d" % (LOCALHOST, self.port)

    def cut(self):
        with self.lock:
            self.is_cut = True

    def heal(self):
        with self.lock:
            self.is_cut = False

    def _close(self, s):
        peer = self.pairs.pop(s, None)
        for x in (s, peer):
            if x is not None:
                self.pairs.pop(x, None)
                try:
                    x.close()
                except OSError:
                    pass

    def _accept(self):
        c, _ = self.lsock.accept()
        with self.lock:
            cut = self.is_cut
        if cut:
            c.close()
            return
        try:
            t = socket.create_connection((LOCALHOST, self.target), timeout=2)
        except OSError:
            c.close()
            return
        t.setblocking(True)
        self.pairs[c], self.pairs[t] = t, c

    def run(self):
        while not self.halt.is_set():
            with self.lock:
                cut = self.is_cut
            socks = [self.lsock] + ([] if cut else list(self.pairs))
            try:
                r, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                continue
            for s in r:
                if s is self.lsock:
                    self._accept()
                    continue
                if s not in self.pairs:
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._close(s)
                    continue
                try:
                    self.pairs[s].sendall(data)
                except (OSError, KeyError):
                    self._close(s)

    def stop(self):
        self.halt.set()
        self.join(2)
        for s in list(self.pairs):
            self._close(s)
        self.lsock.close()


class Election:
    """An election ROOT with n redis-servers (replica-read-only yes) and a
    candidate for each; candidates are started by start(i) so that a test
    decides the order (the first to start wins). kz: a kazoo client."""

    def __init__(self, root, zk_hosts, workdir, kz, make_redis, n=3, session_timeout=1500,
                 cand_args=(), redis_args=(), redis_kw=None, pool=None, client_kw=None):
        """redis_kw: more for make_redis (tls=pki); pool: the candidates' pool
        settings (tls*, backend-*); client_kw: what the test's own redis
        connections need (username, password)."""
        self.root, self.zk_hosts, self.workdir, self.kz = root, zk_hosts, workdir, kz
        self.ack = root + "/" + ACK
        self.session_timeout = session_timeout
        self.cand_args = list(cand_args)
        self.pool, self.client_kw = dict(pool or {}), dict(client_kw or {})
        extra = ["--repl-diskless-sync-delay", "0", "--replica-read-only", "yes"] + list(redis_args)
        self.servers = [make_redis(extra_args=extra, **(redis_kw or {})) for _ in range(n)]
        self.confs = [self.conf_for(zk_hosts, "c%d" % i) for i in range(n)]
        self.cands = [None] * n
        self.extra = []                 # candidates a test started by hand (adopt())
        self.restarts = [0] * n

    def conf_for(self, zk_hosts, name, globals_=None):
        g = {"zk-session-timeout": str(self.session_timeout)}
        g.update(globals_ or {})
        return write_ctl_conf(os.path.join(self.workdir, "%s.conf" % name), zk_hosts, self.ack,
                              globals_=g, pool=self.pool)

    def addr(self, i):
        return "%s:%d" % (LOCALHOST, self.servers[i].port)

    def index(self, addr):
        for i in range(len(self.servers)):
            if self.addr(i) == addr:
                return i
        return None

    def adopt(self, cand):
        """Stop cand with the others, and look at its log for sanitizer reports."""
        self.extra.append(cand)
        return cand

    def start(self, i, conf=None, args=(), exec_argv=None):
        """(Re)start candidate i; returns it."""
        self.restarts[i] += 1
        logpath = os.path.join(self.workdir, "cand%d.log" % i)
        c = Candidate(conf or self.confs[i], self.servers[i].port, logpath,
                      args=self.cand_args + list(args), exec_argv=exec_argv)
        self.cands[i] = c.start()
        return c

    def _kz(self, fn, *args, deadline=20.0):
        """fn(*args) on the test's own kazoo client, again while its session
        is being replaced: a test that stops ZooKeeper longer than that
        session gets SessionExpiredError once, then kazoo opens a new one."""
        from kazoo.exceptions import ConnectionLoss, SessionExpiredError
        end = time.monotonic() + deadline
        while True:
            try:
                return fn(*args)
            except (SessionExpiredError, ConnectionLoss):
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)

    def leader_addr(self):
        """What leader_ack names now, or None."""
        from kazoo.exceptions import NoNodeError
        try:
            data, _ = self._kz(self.kz.get, self.ack)
        except NoNodeError:
            return None
        return data.decode().strip()

    def wait_leader(self, not_=None, timeout=15.0):
        """Wait until leader_ack names a server (other than index not_);
        returns its index."""
        def ok():
            a = self.leader_addr()
            i = self.index(a) if a else None
            return (i,) if i is not None and i != not_ else None
        try:
            return wait_for(ok, timeout=timeout, interval=0.02, what="a leader_ack in %s" % self.root)[0]
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.logs())) from None

    def client(self, i, **kw):
        """A direct connection to server i, with the election's credentials."""
        return self.servers[i].client(**dict(self.client_kw, **kw))

    def role(self, i):
        with self.client(i, socket_timeout=3) as c:
            return c.info("replication")

    def wait_replica(self, i, leader, timeout=15.0):
        """Server i replicates from server leader, link up."""
        want = self.servers[leader].port

        def ok():
            try:
                r = self.role(i)
            except Exception:
                return False
            return (r.get("role") == "slave" and int(r.get("master_port", 0)) == want
                    and r.get("master_link_status") == "up")
        try:
            wait_for(ok, timeout=timeout, interval=0.05, what="server %d replicating from %d" % (i, leader))
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.logs())) from None

    def ballots(self):
        """[(name, data)] lowest first, read the way the gem reads them."""
        names = [n for n in self._kz(self.kz.get_children, self.root) if n.startswith("ballot")]
        names.sort(key=lambda n: int(re.search(r"(\d+)$", n).group(1)))
        out = []
        for n in names:
            try:
                out.append((n, self._kz(self.kz.get, self.root + "/" + n)[0].decode()))
            except Exception:
                pass
        return out

    def logs(self, n=25):
        parts = []
        for i, c in enumerate(self.cands):
            if c is not None:
                parts.append("---- candidate %d (%s) ----\n%s" % (i, self.addr(i), c.log_tail(n)))
        return "\n".join(parts)

    def stop(self):
        for c in self.cands:
            if c is not None:
                c.stop()
        for c in self.extra:
            c.stop()

    def sanitizer_reports(self):
        """Sanitizer reports in the logs of every candidate ever started
        (ASan, UBSan, LeakSanitizer at exit), once they all stopped."""
        logs = sorted({c.logpath for c in self.cands + self.extra if c is not None})
        return [r for r in (sanitizer_report_in(p) for p in logs) if r]

