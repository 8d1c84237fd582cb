"""
Fixtures and helpers for the rzproxy integration suite.

Every process a test needs (redis-server, rzproxy) is started here on a free
loopback port and stopped here by pid, also when the test fails.  Nothing
ever talks to an address other than 127.0.0.1.

Environment:
  RZPROXY         path of the daemon (default: <repo>/src/rzproxy)
  RZCTL           path of the director tool (default: <repo>/src/rzproxy-ctl)
  RZ_SRCDIR       repo top (set by `make check`)
  RZ_TEST_DIRECT  if "1", the "proxy" fixtures hand out the redis-server
                  itself instead of an rzproxy in front of it.  Tests that
                  need the proxy (PROXY INFO, limits, connection counts...)
                  skip.  Used to check that the tests themselves are right.
"""

import atexit
import os
import random
import resource
import signal
import socket
import subprocess
import time

import pytest
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("RZ_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
RZPROXY = os.environ.get("RZPROXY") or os.path.join(SRCDIR, "src", "rzproxy")
RZCTL = os.environ.get("RZCTL") or os.path.join(SRCDIR, "src", "rzproxy-ctl")
DIRECT = os.environ.get("RZ_TEST_DIRECT") == "1"

ADMIN_NAME = "rztest-admin"       # CLIENT SETNAME of our own direct connections
LOCALHOST = "127.0.0.1"

_spawned = {}                     # pid -> Popen, safety net for atexit


def _atexit_kill():
    for pid, proc in list(_spawned.items()):
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=5)
            except Exception:
                pass


atexit.register(_atexit_kill)


def pytest_configure(config):
    config.addinivalue_line("markers", "proxy_only: needs a real rzproxy (skipped with RZ_TEST_DIRECT=1)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's outcome so fixtures can tell if the test body failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_collection_modifyitems(config, items):
    if not DIRECT:
        return
    skip = pytest.mark.skip(reason="RZ_TEST_DIRECT=1: test needs the real proxy")
    for item in items:
        if "proxy_only" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------
# ports and waiting
# --------------------------------------------------------------------------

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    """Poll pred() until truthy; bounded in time and in iterations."""
    deadline = time.monotonic() + timeout
    max_iter = int(timeout / interval) + 10
    last = None
    for _ in range(max_iter):
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last=%r)" % (timeout, what, last))


def port_open(port):
    try:
        s = socket.create_connection((LOCALHOST, port), timeout=0.5)
    except OSError:
        return False
    s.close()
    return True


def proc_status_kb(pid, field):
    """A kB line of /proc/PID/status ("VmRSS", "VmPeak", ...), 0 if absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kb(pid):
    return proc_status_kb(pid, "VmRSS")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop_process(proc, timeout=5.0):
    """SIGTERM, bounded wait, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    _spawned.pop(proc.pid, None)
    return proc.returncode


def _compact_log(path, max_bytes=4 << 20):
    """Keep flooded logs from filling /tmp (pytest keeps the last runs)."""
    try:
        if os.path.getsize(path) > max_bytes:
            tail = _tail(path, 200)
            with open(path, "w") as f:
                f.write("[log over %d bytes, compacted by the test suite; collapsed tail follows]\n%s\n"
                        % (max_bytes, tail))
    except OSError:
        pass


SANITIZER_MARKERS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer", b"runtime error:")


def sanitizer_report(data, context=30):
    """The start of a sanitizer report (ASan, LeakSanitizer, UBSan) in `data`
    (bytes or str, e.g. a process's stderr), or "" if there is none."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    hits = [h for h in (data.find(m) for m in SANITIZER_MARKERS) if h >= 0]
    if not hits:
        return ""
    start = data.rfind(b"\n", 0, min(hits)) + 1
    return "\n".join(data[start:].decode("utf-8", "replace").splitlines()[:context])


def sanitizer_report_in(path, context=30):
    """sanitizer_report() of a log file. The sanitizers write to stderr,
    which the fixtures send to the process's log."""
    try:
        with open(path, "rb") as f:
            return sanitizer_report(f.read(), context)
    except OSError:
        return ""


def run_rzproxy(argv, **kw):
    """subprocess.run() for short-lived rzproxy runs (--test-conf, usage and
    startup errors), output captured; fails the test on a sanitizer report,
    which an expected non-zero exit status would otherwise hide."""
    kw["capture_output"] = True
    kw.setdefault("timeout", 30)
    p = subprocess.run(argv, **kw)
    report = sanitizer_report(p.stderr + p.stdout)
    assert not report, "sanitizer report from %r:\n%s" % (argv, report)
    return p


def _tail(path, n=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").splitlines()
    # collapse runs of the same message (ignoring the timestamp) so a log
    # flood does not hide what came before it
    out = []
    for line in lines[-20000:]:
        body = line.split(" ", 2)[-1]
        if out and out[-1][0] == body:
            out[-1][2] += 1
        else:
            out.append([body, line, 1])
    text = [l if k == 1 else "%s   [repeated %d times]" % (l, k) for _, l, k in out]
    return "\n".join(text[-n:])


# --------------------------------------------------------------------------
# redis-server
# --------------------------------------------------------------------------

class RedisServer:
    """A redis-server on 127.0.0.1:port.  tls: a tlsutil.Pki: the server
    speaks TLS only (--port 0, --tls-port port, tlsutil.tls_redis_args; with
    tls_auth_clients, clients need pki's client certificate) and client()
    connects with TLS, verified against the pki's CA."""

    def __init__(self, workdir, port=None, extra_args=(), tls=None, tls_auth_clients=False):
        self.port = port or free_port()
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.tls = tls
        self.tls_auth_clients = tls_auth_clients
        self.proc = None
        self.logpath = os.path.join(workdir, "redis-%d.log" % self.port)

    def _listen_args(self):
        if self.tls is None:
            return ["--port", str(self.port)]
        import tlsutil
        return (["--port", "0", "--tls-port", str(self.port)]
                + tlsutil.tls_redis_args(self.tls, auth_clients=self.tls_auth_clients))

    def start(self, wait=True):
        os.makedirs(self.workdir, exist_ok=True)
        args = ["redis-server"] + self._listen_args() + ["--bind", LOCALHOST,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", self.workdir, "--enable-debug-command", "yes",
                "--protected-mode", "no"] + self.extra_args
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        _spawned[self.proc.pid] = self.proc
        if wait:
            wait_for(lambda: self._ready(), timeout=10, what="redis-server on %d" % self.port)
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited (%s):\n%s" % (self.proc.returncode, _tail(self.logpath)))
        return port_open(self.port)

    @property
    def pid(self):
        return self.proc.pid

    def client(self, **kw):
        """A direct connection to this redis-server (bypassing the proxy)."""
        kw.setdefault("socket_timeout", 10)
        kw.setdefault("client_name", ADMIN_NAME)
        if self.tls is not None:
            import tlsutil
            for k, v in tlsutil.tls_client_kwargs(self.tls).items():
                kw.setdefault(k, v)
        return redis.Redis(host=LOCALHOST, port=self.port, **kw)

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        _spawned.pop(self.proc.pid, None)

    def stop(self):
        if self.proc is not None:
            _stop_process(self.proc)
        try:
            self.log.close()
        except Exception:
            pass

    def backend_clients(self, admin=None):
        """CLIENT LIST entries that are not ours (i.e. the proxy's)."""
        own = admin or self.client()
        try:
            return [c for c in own.client_list() if c.get("name") != ADMIN_NAME]
        finally:
            if admin is None:
                own.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A test PKI (tlsutil.make_pki) shared by the session: CA, server and
    client certificates, another CA's and an expired server certificate."""
    import tlsutil
    return tlsutil.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the whole session; tests FLUSHALL via `r`."""
    srv = RedisServer(str(tmp_path_factory.mktemp("redis-session"))).start()
    yield srv
    srv.stop()


@pytest.fixture
def r(redis_server):
    """Direct admin connection to the session redis, flushed before the test."""
    c = redis_server.client()
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def redis_factory(tmp_path):
    """Start extra redis-servers for one test; all are stopped afterwards.
    tls=pki (tlsutil.make_pki), tls_auth_clients: see RedisServer."""
    started = []

    def make(port=None, extra_args=(), start=True, tls=None, tls_auth_clients=False):
        srv = RedisServer(str(tmp_path / ("redis-%d" % len(started))), port=port, extra_args=extra_args,
                          tls=tls, tls_auth_clients=tls_auth_clients)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in started:
        srv.stop()


# --------------------------------------------------------------------------
# rzproxy
# --------------------------------------------------------------------------

class Proxy:
    """A running rzproxy (or, with RZ_TEST_DIRECT=1, the redis-server itself)."""

    def __init__(self, port, proc=None, confpath=None, logpath=None, unix_path=None, options=None):
        self.port = port
        self.proc = proc
        self.confpath = confpath
        self.logpath = logpath
        self.unix_path = unix_path
        self.options = options or {}

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is None or self.proc.poll() is None

    def client(self, **kw):
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(host=LOCALHOST, port=self.port, **kw)

    def raw(self, timeout=10.0):
        return RespConn.tcp(self.port, timeout=timeout)

    def log_tail(self, n=40):
        return _tail(self.logpath, n) if self.logpath else ""

    def terminate(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return 0
        self.expect_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return None
        finally:
            _spawned.pop(self.proc.pid, None)


def write_conf(path, listen_port, master, sharing="yes", unix_path=None, globals_=None, pool=None,
               extra_pools=None, listen_host=LOCALHOST):
    """Write a proxy conf; master=None leaves the master line out (a `znode`
    pool passes its source in `pool`).  extra_pools: [(name, listen_port, {directive: value})].
    listen_host: the main pool's listen address (tests still connect to 127.0.0.1)."""
    g = {
        "loglevel": "notice",
        "maxclients": "10000",
        "timeout": "0",
        "client-query-buffer-limit": "1gb",
        "output-buffer-limit": "4mb",
    }
    g.update(globals_ or {})
    p = {
        "backend-sharing": sharing,
        "backend-connections": "2",
        "connect-timeout": "1000",
    }
    p.update(pool or {})
    lines = ["# written by tests/integration/conftest.py"]
    lines += ["%s %s" % (k, v) for k, v in g.items()]
    lines += ["", "pool main", "  listen %s:%d" % (listen_host, listen_port)]
    if unix_path:
        lines.append("  listen unix:%s" % unix_path)
    if master is not None:
        lines.append("  master %s" % master)
    lines += ["  %s %s" % (k, v) for k, v in p.items()]
    for name, lport, opts in extra_pools or ():
        lines += ["", "pool %s" % name, "  listen %s:%d" % (LOCALHOST, lport)]
        lines += ["  %s %s" % (k, v) for k, v in opts.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


@pytest.fixture
def proxy_factory(tmp_path, request):
    """make(redis_or_port, sharing="yes", unix=False, globals_=..., pool=...) -> Proxy.
    unix: True for a unix listener of its own, or the path for one.

    redis_or_port=None writes no `master` line (ZooKeeper pools: see zk_proxy_factory);
    extra_pools=[(name, port, {...})] adds more pools after `main`.

    Teardown stops every proxy with SIGTERM and fails the test if one of them
    died on its own during the test (crash), did not exit 0 on SIGTERM, or
    left a sanitizer report (ASan, LeakSanitizer at exit, UBSan) in its log.
    """
    started = []

    def make(master, sharing="yes", unix=False, globals_=None, pool=None, wait=True, nofile=None,
             extra_pools=None, master_host=LOCALHOST, listen_host=LOCALHOST):
        master_port = master if isinstance(master, int) or master is None else master.port
        if DIRECT:
            if master_port is None:
                pytest.skip("RZ_TEST_DIRECT=1: a ZooKeeper pool needs the real proxy")
            return Proxy(master_port)
        n = len(started)
        port = free_port()
        unix_path = unix if isinstance(unix, str) else str(tmp_path / ("rz%d.sock" % n)) if unix else None
        conf = write_conf(str(tmp_path / ("rzproxy%d.conf" % n)), port,
                          None if master_port is None else "%s:%d" % (master_host, master_port),
                          sharing=sharing, unix_path=unix_path, globals_=globals_, pool=pool,
                          extra_pools=extra_pools, listen_host=listen_host)
        logpath = str(tmp_path / ("rzproxy%d.log" % n))
        if not os.access(RZPROXY, os.X_OK):
            pytest.fail("rzproxy binary not found/executable at %s (set RZPROXY)" % RZPROXY)
        log = open(logpath, "ab")
        preexec = None
        if nofile:
            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        proc = subprocess.Popen([RZPROXY, conf], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=preexec)
        log.close()
        _spawned[proc.pid] = proc
        px = Proxy(port, proc, conf, logpath, unix_path, {"sharing": sharing})
        started.append(px)
        if wait:
            def ready():
                if proc.poll() is not None:
                    raise AssertionError("rzproxy exited with %s during startup:\n%s"
                                         % (proc.returncode, _tail(logpath)))
                # every listener: the unix one comes up just after the TCP one
                return port_open(port) and (unix_path is None or os.path.exists(unix_path))
            wait_for(ready, timeout=10, what="rzproxy listening on %d" % port)
        return px

    yield make

    problems = []
    for px in started:
        if px.proc is None:
            continue
        rc_before = px.proc.poll()
        body_failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
        if rc_before is not None and not getattr(px, "expect_exit", False) and not body_failed:
            problems.append("rzproxy pid %d died during the test (exit %s)" % (px.pid, rc_before))
        if rc_before is not None and body_failed and not getattr(px, "expect_exit", False):
            print("NOTE: rzproxy pid %d died during the test (exit %s)" % (px.pid, rc_before))
        rc = px.terminate() if rc_before is None else rc_before
        if rc_before is None and rc is None:
            problems.append("rzproxy pid %d did not exit within 10s of SIGTERM" % px.pid)
        elif rc_before is None and rc < 0:
            problems.append("rzproxy pid %d killed by signal %d after SIGTERM" % (px.pid, -rc))
        elif rc_before is None and rc != 0:
            problems.append("rzproxy pid %d exited %d after SIGTERM (expected 0)" % (px.pid, rc))
        report = sanitizer_report_in(px.logpath)
        if report:
            problems.append("rzproxy pid %d: sanitizer report in %s:\n%s" % (px.pid, px.logpath, report))
        print("---- rzproxy log %s (tail) ----\n%s" % (px.logpath, px.log_tail()))
        _compact_log(px.logpath)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture(params=["yes", "no"], ids=["shared", "pinned"])
def sharing(request):
    return request.param


@pytest.fixture
def proxy(proxy_factory, redis_server, r, sharing):
    """An rzproxy in front of the session redis (flushed), in both sharing modes."""
    return proxy_factory(redis_server, sharing=sharing)


# --------------------------------------------------------------------------
# raw RESP client
# --------------------------------------------------------------------------

class Status(str):
    """'+' simple string"""


class Error(str):
    """'-' error"""


class Push(list):
    """RESP3 '>' push"""


class RSet(list):
    """RESP3 '~' set"""


class Map(list):
    """RESP3 '%' map, as a list of (key, value) pairs"""

    def todict(self):
        return {_hashable(k): v for k, v in self}


class Attr(list):
    """RESP3 '|' attribute"""


class Verbatim(bytes):
    """RESP3 '=' verbatim string (format prefix kept off)"""


def _hashable(x):
    if isinstance(x, list):
        return tuple(_hashable(i) for i in x)
    return x


class Incomplete(Exception):
    pass


class ProtocolViolation(Exception):
    pass


def parse_reply(buf, pos):
    """Parse one RESP2/RESP3 reply from buf[pos:]. Returns (value, newpos)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    t = buf[pos:pos + 1]
    line = bytes(buf[pos + 1:end])
    nxt = end + 2
    if t == b"+":
        return Status(line.decode("utf-8", "replace")), nxt
    if t == b"-":
        return Error(line.decode("utf-8", "replace")), nxt
    if t == b":":
        return int(line), nxt
    if t == b"(":
        return int(line), nxt
    if t == b",":
        return float(line), nxt
    if t == b"#":
        return line == b"t", nxt
    if t == b"_":
        return None, nxt
    if t in (b"$", b"=", b"!"):
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise Incomplete
        data = bytes(buf[nxt:nxt + n])
        if buf[nxt + n:nxt + n + 2] != b"\r\n":
            raise ProtocolViolation("bulk not followed by CRLF at %d" % (nxt + n))
        if t == b"=":
            return Verbatim(data[4:]), nxt + n + 2
        if t == b"!":
            return Error(data.decode("utf-8", "replace")), nxt + n + 2
        return data, nxt + n + 2
    if t in (b"*", b"~", b">", b"%", b"|"):
        n = int(line)
        if n < 0:
            return None, nxt
        count = n * 2 if t in (b"%", b"|") else n
        items = []
        p = nxt
        for _ in range(count):
            v, p = parse_reply(buf, p)
            items.append(v)
        if t == b"*":
            return items, p
        if t == b"~":
            return RSet(items), p
        if t == b">":
            return Push(items), p
        pairs = list(zip(items[0::2], items[1::2]))
        if t == b"%":
            return Map(pairs), p
        # attribute: return it followed by the actual reply
        v, p = parse_reply(buf, p)
        return v, p
    raise ProtocolViolation("unknown RESP type byte %r at %d: %r" % (t, pos, bytes(buf[pos:pos + 40])))


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Closed(Exception):
    pass


class RespConn:
    """A blocking raw socket speaking RESP, with a byte-level view of replies."""

    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.pos = 0
        self.eof = False

    @classmethod
    def tcp(cls, port, timeout=10.0):
        s = socket.create_connection((LOCALHOST, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, timeout)

    @classmethod
    def unix(cls, path, timeout=10.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        return cls(s, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # ---- sending
    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, *args):
        """Send one multibulk command (no read)."""
        self.send(encode(*args))

    def call(self, *args, timeout=None):
        self.cmd(*args)
        return self.read_reply(timeout)

    # ---- receiving
    def _fill(self, deadline):
        if self.eof:
            raise Closed("connection closed by peer; unparsed: %r" % bytes(self.buf[self.pos:self.pos + 200]))
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out; have %d unparsed bytes: %r"
                                 % (len(self.buf), bytes(self.buf[:200])))
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            self.eof = True
            raise Closed("connection closed by peer; unparsed: %r" % bytes(self.buf[:200]))
        self.buf += data

    def read_reply(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            try:
                v, p = parse_reply(self.buf, self.pos)
            except Incomplete:
                v = p = None
            if p is None:
                self._fill(deadline)
                continue
            self.pos = p
            return v

    def read_raw_reply(self, timeout=None):
        """Bytes of exactly one complete reply."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            try:
                _, p = parse_reply(self.buf, self.pos)
            except Incomplete:
                p = None
            if p is None:
                self._fill(deadline)
                continue
            raw = bytes(self.buf[self.pos:p])
            self.pos = p
            return raw

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while len(self.buf) - self.pos < n:
            self._fill(deadline)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return raw

    def read_all_until_close(self, timeout=5.0, limit=1 << 20):
        """Read until EOF (bounded). Returns (bytes, closed?)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
            except Closed:
                return bytes(self.buf[self.pos:]), True
            except (socket.timeout, TimeoutError):
                return bytes(self.buf[self.pos:]), False
            if len(self.buf) - self.pos > limit:
                return bytes(self.buf[self.pos:]), False

    def pending(self):
        return bytes(self.buf[self.pos:])

    def is_closed(self, timeout=3.0):
        """True if the peer closes the connection within timeout (data before EOF is ignored)."""
        _, closed = self.read_all_until_close(timeout)
        return closed

    def nothing_pending(self, wait=0.2):
        """True if no bytes arrive within `wait` seconds and the connection is still open."""
        if len(self.buf) > self.pos:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return True
        except ConnectionResetError:
            data = b""
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            self.buf += data
        else:
            self.eof = True
        return False


def expect_bytes(conn, expected, timeout=30.0, what="replies"):
    """Read len(expected) bytes and compare; on mismatch, point at the first bad reply."""
    try:
        got = conn.read_exact(len(expected), timeout=timeout)
    except (Closed, socket.timeout, TimeoutError) as e:
        got = conn.pending()
        raise AssertionError("%s: wanted %d bytes, got %d before %s; first difference: %s"
                             % (what, len(expected), len(got), type(e).__name__, first_diff(expected, got))) from None
    if got != expected:
        raise AssertionError("%s differ: %s" % (what, first_diff(expected, got)))


def split_replies(data):
    out = []
    pos = 0
    while pos < len(data):
        try:
            _, p = parse_reply(data, pos)
        except (Incomplete, ProtocolViolation, ValueError):
            out.append(bytes(data[pos:]))
            break
        out.append(bytes(data[pos:p]))
        pos = p
    return out


def first_diff(expected, got):
    e = split_replies(expected)
    g = split_replies(got)
    for i, (a, b) in enumerate(zip(e, g)):
        if a != b:
            return "reply #%d: expected %r, got %r" % (i, a[:120], b[:120])
    if len(e) != len(g):
        return "expected %d replies, got %d (last got: %r)" % (len(e), len(g), g[-1][:120] if g else b"")
    return "identical"


def bulk(b):
    if isinstance(b, str):
        b = b.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


def rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)


# --------------------------------------------------------------------------
# ZooKeeper (servers, kazoo, proxies with a znode pool); see zkutil.py
# --------------------------------------------------------------------------
# zkutil imports this module, so it is imported lazily here.

@pytest.fixture(scope="session")
def zk_required():
    import zkutil
    why = zkutil.zk_available()
    if why:
        pytest.skip(why)
    if DIRECT:
        pytest.skip("RZ_TEST_DIRECT=1: ZooKeeper tests need the real proxy")


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory, zk_required):
    """A standalone ZooKeeper shared by a module; tests must not stop or pause it
    (use zk_fresh for that).  Each test uses its own znode path (znode_path)."""
    import zkutil
    srv = zkutil.ZkServer(str(tmp_path_factory.mktemp("zk-module"))).start()
    yield srv
    srv.stop()


@pytest.fixture
def zk_fresh(tmp_path, zk_required, request):
    """A standalone ZooKeeper for one test, which may stop, kill, pause or restart it."""
    import zkutil
    srv = zkutil.ZkServer(str(tmp_path / "zk")).start()
    yield srv
    srv.stop()
    if getattr(getattr(request.node, "rep_call", None), "failed", False):
        print("---- zookeeper log %s (tail) ----\n%s" % (srv.logpath, srv.log_tail(30)))


@pytest.fixture(scope="module")
def zk_ensemble_module(tmp_path_factory, zk_required):
    import zkutil
    ens = zkutil.ZkEnsemble(str(tmp_path_factory.mktemp("zk-ensemble"))).start()
    yield ens
    ens.stop()


@pytest.fixture
def zk_ensemble(zk_ensemble_module):
    """The module's 3-node ensemble, healed (all members up, one leader) before each test."""
    zk_ensemble_module.heal()
    yield zk_ensemble_module
    zk_ensemble_module.heal()


@pytest.fixture
def kz_factory(zk_required):
    """make(hosts, auth_data=None) -> started KazooClient; all are closed afterwards."""
    import zkutil
    clients = []

    def make(hosts, auth_data=None):
        kz = zkutil.kazoo_client(hosts, auth_data=auth_data)
        clients.append(kz)
        return kz

    yield make
    for kz in clients:
        try:
            kz.stop()
            kz.close()
        except Exception:
            pass


@pytest.fixture
def znode_path(request):
    """A znode path of this test's own: /rztest/<test name>/nodes."""
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in request.node.name)
    return "/rztest/%s/nodes" % name


@pytest.fixture
def zk_proxy_factory(proxy_factory):
    """make(hosts, znode, pool={...}, globals_={...}, session_timeout=2000, extra_pools=None,
    sharing="yes") -> Proxy with one znode pool `main`.  `hosts` may be a ZkServer,
    a ZkEnsemble or a "h:p,h:p[/chroot]" string."""

    def make(hosts, znode, pool=None, globals_=None, session_timeout=2000, sharing="yes",
             extra_pools=None, wait=True):
        if not isinstance(hosts, str):
            hosts = getattr(hosts, "hosts", None) or hosts.hostport
        g = {"zookeeper": hosts, "zk-session-timeout": str(session_timeout)}
        g.update(globals_ or {})
        p = {"znode": znode, "block-timeout": "5000"}
        p.update(pool or {})
        return proxy_factory(None, sharing=sharing, globals_=g, pool=p, extra_pools=extra_pools, wait=wait)

    return make


# --------------------------------------------------------------------------
# rzproxy-ctl
# --------------------------------------------------------------------------

def write_ctl_conf(path, zookeeper, znode, globals_=None, pool=None, extra_pools=None):
    """A conf for rzproxy-ctl: `zookeeper` and a pool `main` with `znode`.
    The conf parser wants a `listen` per pool (the ctl never binds it).
    extra_pools: [(name, {directive: value})]."""
    g = {"zookeeper": zookeeper, "zk-session-timeout": "4000"}
    g.update(globals_ or {})
    p = {"znode": znode}
    p.update(pool or {})
    lines = ["# written by tests/integration/conftest.py for rzproxy-ctl"]
    lines += ["%s %s" % (k, v) for k, v in g.items()]
    for name, opts in [("main", p)] + list(extra_pools or ()):
        lines += ["", "pool %s" % name, "  listen %s:%d" % (LOCALHOST, free_port())]
        lines += ["  %s %s" % (k, v) for k, v in opts.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class CtlRun:
    """A finished rzproxy-ctl run."""

    def __init__(self, argv, rc, out, err):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err

    @property
    def text(self):
        return self.out + self.err

    def __repr__(self):
        return "rzproxy-ctl exit %s\n$ %s\n--- stdout\n%s--- stderr\n%s" % (
            self.rc, " ".join(self.argv), self.out, self.err)


class CtlProc:
    """rzproxy-ctl running in the background; its output lines are collected
    by a thread so a test can wait for a step."""

    def __init__(self, argv):
        import queue
        import threading
        self.argv = argv
        self.lines = queue.Queue()
        self.out = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)
        _spawned[self.proc.pid] = self.proc
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.out.append(line)
            self.lines.put(line)

    def wait_line(self, needle, timeout=10.0):
        """Block until a line containing needle arrives (bounded); returns it."""
        import queue
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if needle in line:
                return line
        raise AssertionError("rzproxy-ctl printed no line with %r within %.1fs; output so far:\n%s"
                             % (needle, timeout, "".join(self.out)))

    def finish(self, timeout=30.0):
        """Wait for the exit (bounded; killed if it overruns). Returns a CtlRun."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError("rzproxy-ctl did not finish within %.0fs:\n%s" % (timeout, "".join(self.out)))
        finally:
            _spawned.pop(self.proc.pid, None)
        self.reader.join(timeout=5)
        return CtlRun(self.argv, self.proc.returncode, "".join(self.out), "")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        _spawned.pop(self.proc.pid, None)


class Ctl:
    """rzproxy-ctl bound to one conf file (None: only the arguments given)."""

    def __init__(self, confpath):
        self.conf = confpath
        self.procs = []

    def argv(self, args):
        if not os.access(RZCTL, os.X_OK):
            pytest.fail("rzproxy-ctl not found/executable at %s (set RZCTL)" % RZCTL)
        return [RZCTL] + (["-c", self.conf] if self.conf else []) + [str(a) for a in args]

    def run(self, *args, timeout=30.0):
        argv = self.argv(args)
        p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
        return CtlRun(argv, p.returncode, p.stdout, p.stderr)

    def start(self, *args):
        proc = CtlProc(self.argv(args))
        self.procs.append(proc)
        return proc


def parse_show(out):
    """`rzproxy-ctl show` output -> {key: value} (first occurrence wins)."""
    fields = {}
    for line in out.splitlines():
        k, sep, v = line.partition(": ")
        if sep:
            fields.setdefault(k, v)
    return fields


@pytest.fixture
def ctl_factory(tmp_path):
    """make(zookeeper, znode, globals_=None, pool=None, extra_pools=None) -> Ctl
    with a conf of its own; make(None, None) -> Ctl without a conf file.
    Background runs still going at teardown are killed."""
    made = []

    def make(zookeeper, znode, globals_=None, pool=None, extra_pools=None):
        conf = None
        if zookeeper is not None:
            conf = write_ctl_conf(str(tmp_path / ("rzctl%d.conf" % len(made))), zookeeper, znode,
                                  globals_=globals_, pool=pool, extra_pools=extra_pools)
        c = Ctl(conf)
        made.append(c)
        return c

    yield make
    for c in made:
        for p in c.procs:
            p.kill()


@pytest.fixture
def kz(zk_server, kz_factory):
    """A kazoo client of the module's ZooKeeper."""
    return kz_factory(zk_server.hostport)


@pytest.fixture
def two(redis_factory):
    """Two independent redis-servers (old master, new master)."""
    return redis_factory(), redis_factory()
