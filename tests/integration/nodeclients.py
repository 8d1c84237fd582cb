"""
Real Node.js Redis client libraries in the integration suite: the pytest
side of tests/integration/node/clients.js (see node/README.md for what each
library sends on connect, and clients.js's header for the spec).

    res = nodeclients.run({"lib": "redis6", "port": px.port, "count": 10,
                           "workload": "check", "checks": ["basic", "multi"]})
    with nodeclients.NodeClients({"lib": "ioredis6", "port": px.port, "count": 50,
                                  "workload": "hold"}) as nc:
        nc.wait_holding()
        ...                                 # all 50 are connected now
        res = nc.stop()                     # stdin closed: state report, quit, JSON

The modules are installed with `npm ci` from node/package-lock.json when
node_modules is missing or older than the lock file (in node/ itself, or in a
copy under RZ_BUILDDIR or the temp directory when the source tree is
read-only). No node or npm, or a Node.js older than 20 (node-redis 6 and
ioredis 6 need 20), fails the test with a message saying so: these tests
are not skipped.

Every process is stopped by pid (conftest's atexit net knows them too).
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import LOCALHOST, _spawned

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_SRC = os.path.join(HERE, "node")
LIBS = ("redis5", "redis6", "ioredis5", "ioredis6")
# what each library reports as lib-name (CLIENT SETINFO) and its protocol by default
LIB_NAME = {"redis5": "node-redis", "redis6": "node-redis", "ioredis5": "ioredis", "ioredis6": "ioredis"}
DEFAULT_RESP = {"redis5": 2, "redis6": 3, "ioredis5": 2, "ioredis6": 3}
MIN_NODE_MAJOR = 20
NPM_TIMEOUT = 300
_SHIPPED = ("package.json", "package-lock.json", "clients.js")

_installed = None                  # the directory clients.js runs from, once installed
_install_lock = threading.Lock()


def _fail(msg):
    pytest.fail("nodeclients: " + msg, pytrace=False)


def _tool(name):
    path = shutil.which(name)
    if not path:
        _fail("`%s` not found on PATH. The real-client tests need Node.js >= %d with npm "
              "(Debian 12's own nodejs is 18: use NodeSource's nodejs 20 package, as the CI image has)."
              % (name, MIN_NODE_MAJOR))
    return path


def node_version():
    out = subprocess.run([_tool("node"), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        return tuple(int(x) for x in out.lstrip("v").split(".")[:3])
    except ValueError:
        _fail("cannot read the version of node: %r" % out)


def _workdir():
    """node/ itself if writable, else a copy of its shipped files somewhere writable."""
    if os.access(NODE_SRC, os.W_OK):
        return NODE_SRC
    base = os.environ.get("RZ_BUILDDIR") or tempfile.gettempdir()
    dest = os.path.join(base, "tests", "integration", "node-clients")
    os.makedirs(dest, exist_ok=True)
    for f in _SHIPPED:
        src, dst = os.path.join(NODE_SRC, f), os.path.join(dest, f)
        if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
            shutil.copy2(src, dst)
    return dest


def _up_to_date(workdir):
    lock = os.path.join(workdir, "package-lock.json")
    # npm writes node_modules/.package-lock.json at the end of every install
    stamp = os.path.join(workdir, "node_modules", ".package-lock.json")
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(lock):
        return False
    return all(os.path.exists(os.path.join(workdir, "node_modules", lib, "package.json")) for lib in LIBS)


def node_dir():
    """The directory clients.js runs from, with node_modules installed (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return _installed
        ver = node_version()
        if ver[0] < MIN_NODE_MAJOR:
            _fail("node %s is too old: node-redis 6 and ioredis 6 need Node.js >= %d"
                  % (".".join(map(str, ver)), MIN_NODE_MAJOR))
        workdir = _workdir()
        if not _up_to_date(workdir):
            npm = _tool("npm")
            argv = [npm, "ci", "--no-audit", "--no-fund"]
            try:
                p = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=NPM_TIMEOUT,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                _fail("`npm ci` in %s did not finish within %ds" % (workdir, NPM_TIMEOUT))
            if p.returncode != 0:
                _fail("`npm ci --no-audit --no-fund` in %s failed (exit %d):\n%s\n%s"
                      % (workdir, p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
            stamp = os.path.join(workdir, "node_modules", ".package-lock.json")
            if os.path.exists(stamp):
                os.utime(stamp)
            if not _up_to_date(workdir):
                _fail("`npm ci` in %s succeeded but node_modules still lacks %s" % (workdir, ", ".join(LIBS)))
        _installed = workdir
        return workdir


def lib_version(lib):
    """The installed version of a library alias ("redis6" -> "6.4.0")."""
    with open(os.path.join(node_dir(), "node_modules", lib, "package.json")) as f:
        return json.load(f)["version"]


def _argv(spec):
    return [_tool("node"), os.path.join(node_dir(), "clients.js"), json.dumps(spec)]


def _prepare(spec, timeout):
    spec = dict(spec)
    assert spec.get("lib") in LIBS, "spec lib must be one of %s: %r" % (LIBS, spec.get("lib"))
    spec.setdefault("host", LOCALHOST)
    # the driver's own hard bound, inside ours
    spec.setdefault("max_seconds", max(5, int(timeout) - 10))
    return spec


def _parse(out, err, rc, spec):
    try:
        res = json.loads(out)
    except ValueError:
        raise AssertionError("clients.js (%s) printed no JSON (exit %s); stdout %r\nstderr tail:\n%s"
                             % (spec.get("lib"), rc, out[-2000:], "".join(err)[-4000:])) from None
    if res.get("fatal"):
        raise AssertionError("clients.js (%s) failed: %s\nstderr tail:\n%s"
                             % (spec.get("lib"), res["fatal"], "".join(err)[-4000:]))
    res["exit_code"] = rc
    return res


def run(spec, timeout=60.0):
    """Run clients.js to the end (bounded); returns its JSON result."""
    spec = _prepare(spec, timeout)
    proc = subprocess.Popen(_argv(spec), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, cwd=node_dir())
    _spawned[proc.pid] = proc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError("clients.js (%s) did not finish within %.0fs; stderr tail:\n%s"
                             % (spec["lib"], timeout, err[-4000:])) from None
    finally:
        _spawned.pop(proc.pid, None)
    return _parse(out, [err], proc.returncode, spec)


class NodeClients:
    """clients.js running in the background with `control: stdin`: it runs
    until stdin is closed (stop()), its max_seconds, or `seconds` of its
    workload. Progress events (stderr lines "RZCLIENTS {...}") are collected
    by a thread; stop() returns the JSON result. Use as a context manager: the
    process is killed by pid on the way out if stop() was not reached."""

    def __init__(self, spec, timeout=60.0):
        self.spec = _prepare(dict(spec, control="stdin"), timeout)
        self.timeout = timeout
        self.proc = None
        self.events = []
        self.err_lines = []
        self.out = []
        self.cond = threading.Condition()
        self.result = None

    @property
    def lib(self):
        return self.spec["lib"]

    def start(self):
        self.proc = subprocess.Popen(_argv(self.spec), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.PIPE, text=True, cwd=node_dir())
        _spawned[self.proc.pid] = self.proc
        self.t_start = time.monotonic()
        self.readers = [threading.Thread(target=self._read_err, daemon=True),
                        threading.Thread(target=self._read_out, daemon=True)]
        for t in self.readers:
            t.start()
        return self

    def _read_err(self):
        for line in self.proc.stderr:
            if line.startswith("RZCLIENTS "):
                try:
                    ev = json.loads(line[len("RZCLIENTS "):])
                except ValueError:
                    ev = {"event": "unparsed", "line": line}
                with self.cond:
                    self.events.append(ev)
                    self.cond.notify_all()
            else:
                self.err_lines.append(line)
                del self.err_lines[:-300]
        with self.cond:
            self.cond.notify_all()

    def _read_out(self):
        self.out.append(self.proc.stdout.read())

    def wait_event(self, pred, timeout=30.0, what="event"):
        """The first (or next matching) progress event for which pred(ev) holds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if self.proc.poll() is not None and not any(pred(e) for e in self.events):
                    # let the reader deliver what is left before deciding
                    self.cond.wait(0.2)
                    if not any(pred(e) for e in self.events):
                        raise AssertionError("clients.js (%s) exited (%s) before %s; stderr tail:\n%s"
                                             % (self.lib, self.proc.returncode, what, "".join(self.err_lines[-40:])))
                    continue
                if left <= 0:
                    raise AssertionError("clients.js (%s): no %s within %.1fs; last events %s; stderr tail:\n%s"
                                         % (self.lib, what, timeout, self.events[-3:], "".join(self.err_lines[-40:])))
                self.cond.wait(min(left, 0.2))

    def wait_connected(self, timeout=30.0, all_=True):
        ev = self.wait_event(lambda e: e.get("event") == "connected", timeout, "connected event")
        if all_ and ev.get("failed"):
            raise AssertionError("clients.js (%s): %d of %d clients failed to connect; stderr tail:\n%s"
                                 % (self.lib, ev["failed"], ev["failed"] + ev["connected"],
                                    "".join(self.err_lines[-40:])))
        return ev

    def wait_holding(self, timeout=30.0):
        self.wait_connected(timeout)
        return self.wait_event(lambda e: e.get("event") == "holding", timeout, "holding event")

    def last_progress(self):
        with self.cond:
            for ev in reversed(self.events):
                if ev.get("event") == "progress":
                    return ev
        return {"acks": 0, "min_acks": 0, "errors": 0}

    def wait_min_acks(self, n, timeout=15.0):
        """Every client of this run has at least n acknowledged writes."""
        return self.wait_event(lambda e: e.get("event") == "progress" and e.get("min_acks", 0) >= n,
                               timeout, "every client at >= %d acks" % n)

    def stop(self, timeout=None):
        """Close stdin (the driver then reports state, shuts its clients down
        and prints its JSON); returns the result (bounded)."""
        timeout = timeout or self.timeout
        if self.result is not None:
            return self.result
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("clients.js (%s) did not finish within %.0fs of stop; stderr tail:\n%s"
                                 % (self.lib, timeout, "".join(self.err_lines[-40:]))) from None
        for t in self.readers:
            t.join(10)
        _spawned.pop(self.proc.pid, None)
        self.result = _parse("".join(self.out), self.err_lines, self.proc.returncode, self.spec)
        return self.result

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        if self.proc is not None:
            _spawned.pop(self.proc.pid, None)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        return False


class Group:
    """Several NodeClients started together, stopped together."""

    def __init__(self, specs, timeout=60.0):
        self.runs = [NodeClients(s, timeout) for s in specs]

    def __enter__(self):
        try:
            for r in self.runs:
                r.start()
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(self, *exc):
        self.kill()
        return False

    def __iter__(self):
        return iter(self.runs)

    def wait_holding(self, timeout=30.0):
        for r in self.runs:
            r.wait_holding(timeout)

    def wait_connected(self, timeout=30.0):
        for r in self.runs:
            r.wait_connected(timeout)

    def wait_min_acks(self, n, timeout=15.0):
        for r in self.runs:
            r.wait_min_acks(n, timeout)

    def acks(self):
        return [r.last_progress().get("min_acks", 0) for r in self.runs]

    def stop(self, timeout=None):
        for r in self.runs:
            try:
                r.proc.stdin.close()
            except OSError:
                pass
        return [r.stop(timeout) for r in self.runs]

    def kill(self):
        for r in self.runs:
            r.kill()


# --------------------------------------------------------------------------
# reading results
# --------------------------------------------------------------------------

def client_label(res, c):
    return "%s client %s%s" % (res.get("lib"), c.get("idx"), " (%s)" % c["name"] if c.get("name") else "")


def connection_problems(res):
    """Errors, reconnects and unexpected events seen by the applications of one
    clients.js result, one string each (empty: none)."""
    out = []
    if res.get("connected") != res.get("count"):
        out.append("%s: %s of %s clients connected" % (res.get("lib"), res.get("connected"), res.get("count")))
    for c in res.get("clients", []):
        who = client_label(res, c)
        ev = c.get("events", {})
        if not c.get("connected"):
            out.append("%s: never connected: %s" % (who, c.get("errors")[:2]))
            continue
        if c.get("error_count"):
            out.append("%s: %d errors, first %s" % (who, c["error_count"], c["errors"][:3]))
        if ev.get("reconnecting") or ev.get("ready", 0) != 1 or ev.get("connect", 0) != 1:
            out.append("%s: reconnected: events %s, timeline %s" % (who, ev, c.get("timeline")))
        if ev.get("error"):
            out.append("%s: %d 'error' events: %s" % (who, ev["error"], c.get("event_errors")[:3]))
        for aux in c.get("aux", []):
            aev = aux.get("events", {})
            if aev.get("error") or aev.get("reconnecting"):
                out.append("%s: helper %s events %s errors %s" % (who, aux["label"], aev, aux["event_errors"][:2]))
    return out


def check_failures(res):
    """Per-client checks ("basic", "multi", "blpop", "pubsub") that did not pass."""
    out = []
    for c in res.get("clients", []):
        for name, chk in sorted(c.get("checks", {}).items()):
            if not chk.get("ok"):
                out.append("%s: check %s failed: %s" % (client_label(res, c), name, chk))
    return out


def incr_problems(res, final_client_for, prefix, db=0):
    """Every acknowledged INCR/RPUSH of an "incr" result must be on the final
    master: INCR replies 1..n in order, the counter equal to n, the list equal
    to the acknowledged sequence numbers. final_client_for(db) -> a direct
    redis.Redis on the final master in that db (the clients' db)."""
    out = []
    r = final_client_for(db)
    for c in res.get("clients", []):
        who = client_label(res, c)
        incrs, pushes = c.get("incr", []), c.get("push", [])
        if not incrs:
            out.append("%s: no acknowledged INCR at all" % who)
            continue
        if incrs != list(range(1, len(incrs) + 1)):
            bad = next(i for i, v in enumerate(incrs) if v != i + 1)
            out.append("%s: INCR replies out of step at #%d: ...%s" % (who, bad, incrs[max(0, bad - 2):bad + 3]))
        ck, lk = "%sc:%s" % (prefix, c["idx"]), "%sl:%s" % (prefix, c["idx"])
        have = int(r.get(ck) or 0)
        if have != len(incrs):
            out.append("%s: counter %s is %d on the final master, %d INCRs acknowledged" % (who, ck, have, len(incrs)))
        got = [int(x) for x in r.lrange(lk, 0, -1)]
        if got != pushes:
            out.append("%s: list %s on the final master differs from the acknowledged pushes (%d vs %d items)"
                       % (who, lk, len(got), len(pushes)))
        if c.get("push_len_mismatch"):
            out.append("%s: %d RPUSH replies did not match the acknowledged length" % (who, c["push_len_mismatch"]))
    return out


def state_problems(res, name=None, marker=None, user="default", resp=None):
    """The final state report of each client: CLIENT GETNAME, the db's
    marker, ACL WHOAMI, the protocol (HELLO's proto; node-redis also gets
    maps as maps in RESP3). name may hold "{idx}"."""
    out = []
    resp = resp or DEFAULT_RESP[res["lib"]]
    for c in res.get("clients", []):
        who = client_label(res, c)
        st = c.get("state")
        if not st:
            out.append("%s: no state report" % who)
            continue
        want_name = None if name is None else name.replace("{idx}", str(c["idx"]))
        if st.get("name") != want_name:
            out.append("%s: CLIENT GETNAME %r, expected %r" % (who, st.get("name"), want_name))
        if marker is not None and st.get("marker") != marker:
            out.append("%s: marker %r, expected %r (wrong db?)" % (who, st.get("marker"), marker))
        if st.get("whoami") != user:
            out.append("%s: ACL WHOAMI %r, expected %r" % (who, st.get("whoami"), user))
        if st.get("hello_proto") != resp:
            out.append("%s: HELLO says proto %r, expected %r" % (who, st.get("hello_proto"), resp))
        if LIB_NAME[res["lib"]] == "node-redis":
            shape = "map" if resp == 3 else "array"
            if st.get("reply_shape") != shape:
                out.append("%s: a map reply arrived as %r, expected %r (RESP%d)" % (who, st.get("reply_shape"), shape, resp))
        if st.get("errors"):
            out.append("%s: state report errors %s" % (who, st["errors"]))
    return out
