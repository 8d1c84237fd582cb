"""
ZooKeeper helpers for the integration suite: real ZooKeeper 3.8 servers
(standalone and a 3-node loopback ensemble) started on free 127.0.0.1 ports,
kazoo helpers to write the master znode, and PROXY INFO parsing.

Processes are stopped by pid (conftest's fixtures call stop() in teardown,
also when the test fails, and conftest's atexit hook kills leftovers).

Environment:
  RZ_ZK_JAR     ZooKeeper server jar (default /usr/share/java/zookeeper.jar)
  RZ_ZK_TICK    tickTime in ms (default 200: session timeouts clamp to 400..4000)
"""

import collections
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from conftest import (LOCALHOST, RespConn, Error, _spawned, _stop_process, _tail, free_port, wait_for)

ZK_JAR = os.environ.get("RZ_ZK_JAR", "/usr/share/java/zookeeper.jar")
ZK_CLASSPATH = ":".join(["/etc/zookeeper/conf", ZK_JAR, "/usr/share/java/slf4j-simple.jar"])
ZK_TICK = int(os.environ.get("RZ_ZK_TICK", "200"))
# small, quick JVM: these servers hold one znode
JVM_OPTS = ["-Xms32m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
            "-Dzookeeper.admin.enableServer=false"]


def zk_available():
    """'' if a ZooKeeper server can be started here, else why not."""
    if not os.path.exists(ZK_JAR):
        return "ZooKeeper jar not found at %s (Debian package `zookeeper`)" % ZK_JAR
    if subprocess.run(["sh", "-c", "command -v java"], capture_output=True).returncode != 0:
        return "java not found"
    try:
        import kazoo  # noqa: F401
    except ImportError:
        return "python3-kazoo not installed"
    return ""


def four_letter(port, cmd, timeout=1.0):
    """Send a ZooKeeper four-letter command; returns the answer ('' on any error)."""
    try:
        s = socket.create_connection((LOCALHOST, port), timeout=timeout)
    except OSError:
        return ""
    try:
        s.settimeout(timeout)
        s.sendall(cmd.encode())
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except (socket.timeout, OSError):
                break
            if not d:
                break
            out += d
        return out.decode("utf-8", "replace")
    finally:
        s.close()


def _proc_state(pid):
    """The one-letter state of a process (R, S, T, ...), "" if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


class ZkServer:
    """One ZooKeeper server process: standalone, or a member of an ensemble
    (peers = [(myid, quorum_port, election_port), ...], including this one)."""

    def __init__(self, workdir, client_port=None, myid=None, peers=None, tick=ZK_TICK):
        self.workdir = workdir
        self.port = client_port or free_port()
        self.myid = myid
        self.peers = peers
        self.tick = tick
        self.proc = None
        self.paused = False
        self.datadir = os.path.join(workdir, "data")
        self.cfgpath = os.path.join(workdir, "zoo.cfg")
        self.logpath = os.path.join(workdir, "zk-%d.log" % self.port)

    @property
    def hostport(self):
        return "%s:%d" % (LOCALHOST, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _write_cfg(self):
        os.makedirs(self.datadir, exist_ok=True)
        lines = ["tickTime=%d" % self.tick,
                 "dataDir=%s" % self.datadir,
                 "clientPort=%d" % self.port,
                 "clientPortAddress=%s" % LOCALHOST,
                 "admin.enableServer=false",
                 "4lw.commands.whitelist=*",
                 "maxClientCnxns=0",
                 "autopurge.purgeInterval=0"]
        if self.peers:
            lines += ["initLimit=10", "syncLimit=5", "electionPortBindRetry=3"]
            for pid, p1, p2 in self.peers:
                lines.append("server.%d=%s:%d:%d" % (pid, LOCALHOST, p1, p2))
            with open(os.path.join(self.datadir, "myid"), "w") as f:
                f.write("%d\n" % self.myid)
        with open(self.cfgpath, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, wait=True, timeout=20):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._write_cfg()
        main = ("org.apache.zookeeper.server.quorum.QuorumPeerMain" if self.peers
                else "org.apache.zookeeper.server.ZooKeeperServerMain")
        log = open(self.logpath, "ab")
        log.write(b"==== test suite: starting %s at %.3f ====\n" % (main.encode(), time.time()))
        log.flush()
        self.proc = subprocess.Popen(["java"] + JVM_OPTS + ["-cp", ZK_CLASSPATH, main, self.cfgpath],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.paused = False
        _spawned[self.proc.pid] = self.proc
        if wait:
            self.wait_serving(timeout)
        return self

    def _check_alive(self):
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError("zookeeper on %d exited (%s):\n%s"
                                 % (self.port, self.proc.returncode if self.proc else None, _tail(self.logpath)))

    def ruok(self):
        return four_letter(self.port, "ruok", timeout=0.5) == "imok"

    def mode(self):
        """'standalone' | 'leader' | 'follower' | '' (not serving)."""
        for line in four_letter(self.port, "srvr").splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return ""

    def serving(self):
        self._check_alive()
        return self.ruok() and self.mode() in ("standalone", "leader", "follower")

    def wait_serving(self, timeout=20):
        wait_for(self.serving, timeout=timeout, interval=0.05, what="zookeeper serving on %d" % self.port)

    def session_ids(self):
        """Session ids (ints) of the client connections this server holds (`cons`)."""
        out = set()
        for line in four_letter(self.port, "cons").splitlines():
            i = line.find("sid=0x")
            if i >= 0:
                out.add(int(line[i + 6:].split(",")[0].split(")")[0], 16))
        return out

    def pause(self):
        """SIGSTOP: the TCP port stays open, nothing answers."""
        self._check_alive()
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True
        wait_for(lambda: _proc_state(self.proc.pid) == "T", timeout=5, interval=0.005,
                 what="zookeeper %d stopped" % self.proc.pid)

    def resume(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def kill(self, sig=signal.SIGKILL):
        """Hard stop (default SIGKILL: connections get RST/EOF at once)."""
        if self.proc is not None and self.proc.poll() is None:
            if self.paused and sig != signal.SIGKILL:
                self.resume()
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None:
            _spawned.pop(self.proc.pid, None)
        self.paused = False

    def stop(self):
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        _stop_process(self.proc, timeout=5)
        self.paused = False

    def restart(self, wait=True):
        self.kill()
        return self.start(wait=wait)

    def log_tail(self, n=30):
        return _tail(self.logpath, n)


class ZkEnsemble:
    """Three (or n) ZooKeeper servers on loopback forming one ensemble."""

    def __init__(self, workdir, n=3, tick=ZK_TICK):
        peers = [(i + 1, free_port(), free_port()) for i in range(n)]
        self.servers = [ZkServer(os.path.join(workdir, "zk%d" % (i + 1)), myid=i + 1, peers=peers, tick=tick)
                        for i in range(n)]

    @property
    def hosts(self):
        return ",".join(s.hostport for s in self.servers)

    def start(self, timeout=30):
        for s in self.servers:
            if s.proc is None or s.proc.poll() is not None:
                s.start(wait=False)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=30):
        def ok():
            modes = [s.mode() if (s.proc and s.proc.poll() is None and not s.paused) else "" for s in self.servers]
            return modes.count("leader") == 1 and modes.count("follower") == len(self.servers) - 1 and modes
        wait_for(ok, timeout=timeout, interval=0.1, what="ensemble with one leader (%s)" % self.hosts)

    def heal(self, timeout=30):
        """Resume paused and restart dead members, then wait for a full quorum."""
        for s in self.servers:
            if s.paused:
                s.resume()
            if s.proc is None or s.proc.poll() is not None:
                s.start(wait=False)
        self.wait_healthy(timeout)

    def leader(self):
        for s in self.servers:
            if s.proc and s.proc.poll() is None and not s.paused and s.mode() == "leader":
                return s
        return None

    def server_with_session(self, sid):
        """The member holding client session `sid` (int) right now, or None."""
        for s in self.servers:
            if s.proc and s.proc.poll() is None and not s.paused and sid in s.session_ids():
                return s
        return None

    def stop(self):
        for s in self.servers:
            s.stop()


# --------------------------------------------------------------------------
# kazoo
# --------------------------------------------------------------------------

def kazoo_client(hosts, auth_data=None, timeout=10.0):
    """A started KazooClient (caller stops it; conftest's `kz` fixture does)."""
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry
    kz = KazooClient(hosts=hosts, timeout=4.0, auth_data=auth_data,
                     connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
                     command_retry=KazooRetry(max_tries=60, delay=0.05, max_delay=0.5, deadline=20))
    kz.start(timeout=timeout)
    return kz


def plain(hostport):
    return hostport.encode()


def rf_json(master, slaves=(), unavailable=()):
    """redis_failover's znode format; master=None writes JSON null."""
    return json.dumps({"master": master, "slaves": list(slaves), "unavailable": list(unavailable)}).encode()


def zset(kz, path, data, acl=None):
    """Create (with parents) or overwrite `path`; returns the ZnodeStat."""
    from kazoo.exceptions import NoNodeError, NodeExistsError
    if isinstance(data, str):
        data = data.encode()

    def op():
        try:
            return kz.set(path, data)
        except NoNodeError:
            try:
                parent = path.rsplit("/", 1)[0]
                if parent:
                    kz.ensure_path(parent)
                # one write, so a watcher sees one event (a create then a
                # set would gate a proxy twice)
                kz.create(path, data, acl=acl)
                return kz.exists(path)
            except NodeExistsError:
                return kz.set(path, data)
    return kz.retry(op)


def zdelete(kz, path):
    from kazoo.exceptions import NoNodeError
    try:
        kz.retry(kz.delete, path)
    except NoNodeError:
        pass


def zstat(kz, path):
    return kz.retry(kz.exists, path)


def _attach_and_close(hostport, sid, passwd, timeout):
    """One attempt: ConnectRequest for `sid` + closeSession in one write.
    Returns the list of reply frames (bytes)."""
    import struct
    host, port = hostport.rsplit(":", 1)
    connect = struct.pack(">iqiq", 0, 0, 4000, sid) + struct.pack(">i", len(passwd)) + passwd + b"\x00"
    close = struct.pack(">ii", 1, -11)                     # xid 1, OpCode.closeSession
    data = struct.pack(">i", len(connect)) + connect + struct.pack(">i", len(close)) + close
    s = socket.create_connection((host, int(port)), timeout=timeout)
    frames = []
    try:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while len(frames) < 2 and time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except OSError:
                break
            if not d:
                break
            buf += d
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">i", buf[:4])[0]:
                n = struct.unpack(">i", buf[:4])[0]
                frames.append(buf[4:4 + n])
                buf = buf[4 + n:]
    finally:
        s.close()
    return frames


def expire_session(hostport, sid, passwd, timeout=5.0, attempts=20):
    """Expire session `sid` from outside: attach to it with its password and
    close it, in one write on a raw socket (ZooKeeper wire protocol), so the
    owner has no time to steal the session back in between (kazoo's join +
    stop() races with the owner's reconnect).  Retried until the server
    refuses to attach (the session is gone).  Returns the number of attempts
    made before that."""
    import struct
    for n in range(attempts):
        frames = _attach_and_close(hostport, sid, passwd, timeout)
        if frames:
            _, tmo, got_sid = struct.unpack(">iiq", frames[0][:16])
            if tmo <= 0 or got_sid != sid:
                return n           # the server no longer knows the session: expired
        # no answer (the owner re-attached first and the server dropped us) or
        # attached and closed: try again, until the server refuses the session
        time.sleep(0.05)
    raise AssertionError("session %s still alive after %d attach+close attempts" % (hex(sid), attempts))


# --------------------------------------------------------------------------
# PROXY INFO
# --------------------------------------------------------------------------

def parse_info(text):
    """PROXY INFO text -> {"": {fields outside pool sections}, pool_name: {fields}}.

    The ZooKeeper session is one per process (its own `# ZooKeeper` section):
    its zk_* fields are also copied into every pool's dict, so that a pool's
    dict answers `zk_session_id` wherever the proxy prints it."""
    out = {"": {}}
    cur = out[""]
    section = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("#"):
            section = line.lstrip("# ").strip().lower()
            cur = out[""]
            continue
        if not line or ":" not in line:
            continue
        k, v = line.split(":", 1)
        if k == "pool":
            cur = out.setdefault(v, {})
        elif section != "pool" and cur is not out[""]:
            cur = out[""]
        cur.setdefault(k, v)
    for name, fields in out.items():
        if name:
            for k, v in out[""].items():
                if k.startswith("zk_"):
                    fields.setdefault(k, v)
    return out


def proxy_info(px, timeout=5.0, port=None):
    """PROXY INFO asked on px's listener (or `port`): it describes the pool of
    the listener it is asked on."""
    with RespConn.tcp(port or px.port, timeout=timeout) as c:
        rep = c.call("PROXY", "INFO")
    if not isinstance(rep, bytes):
        raise AssertionError("PROXY INFO answered %r" % (rep,))
    return parse_info(rep.decode("utf-8", "replace"))


def pool_info(px, pool="main", port=None):
    info = proxy_info(px, port=port)
    if pool not in info:
        raise AssertionError("PROXY INFO has no pool %r: %r" % (pool, info))
    return info[pool]


def wait_state(px, states, pool="main", timeout=10.0, what=None, port=None):
    """Poll PROXY INFO until the pool's state is one of `states`; returns its fields."""
    if isinstance(states, str):
        states = (states,)
    last = {}

    def ok():
        if not px.alive():
            raise AssertionError("rzproxy exited (%s) while waiting for %s:\n%s"
                                 % (px.proc.returncode, states, px.log_tail()))
        last.clear()
        last.update(pool_info(px, pool, port=port))
        return last.get("state") in states and dict(last)
    try:
        return wait_for(ok, timeout=timeout, interval=0.02, what=what or "pool %s state in %s" % (pool, states))
    except AssertionError as e:
        raise AssertionError("%s\nlast PROXY INFO for %s: %s\nproxy log tail:\n%s"
                             % (e, pool, _fmt(last), px.log_tail(25))) from None


def _fmt(fields):
    keys = ("state", "reason", "master", "znode", "znode_mzxid", "znode_version", "zk_session_id", "master_changes")
    return " ".join("%s=%s" % (k, fields.get(k)) for k in keys)


def fmt_info(fields):
    return _fmt(fields)


def session_id(fields, px=None):
    """The proxy's ZooKeeper session id (int) from PROXY INFO `zk_session_id`.
    If INFO lacks it and px is given, fall back to the last "session 0x...
    established" log line, so that session tests still test sessions; the
    field itself is checked by test_zk_znode.py::test_proxy_info_zk_fields."""
    v = fields.get("zk_session_id", "")
    if not v and px is not None:
        with open(px.logpath, errors="replace") as f:
            found = re.findall(r"session (0x[0-9a-fA-F]+) established", f.read())
        assert found, "no zk_session_id in PROXY INFO and no 'session 0x... established' in the log"
        return int(found[-1], 16)
    assert v.startswith("0x"), "zk_session_id not 0x<hex>: %r" % v
    return int(v, 16)


def tryagain(rep):
    """The reason of a -TRYAGAIN reply, or raise."""
    assert isinstance(rep, Error) and rep.startswith("TRYAGAIN "), "expected -TRYAGAIN <reason>, got %r" % (rep,)
    return rep[len("TRYAGAIN "):]


def hp(srv):
    """"127.0.0.1:port" of a RedisServer."""
    return "%s:%d" % (LOCALHOST, srv.port)


def wait_master(px, master, pool="main", timeout=10.0, port=None):
    """Wait until the pool is READY on `master` ("h:p"); returns its fields.
    port: the listener to ask (PROXY INFO describes the pool it belongs to)."""
    last = {}

    def ok():
        last.clear()
        last.update(pool_info(px, pool, port=port))
        return last.get("state") == "READY" and last.get("master") == master and dict(last)
    try:
        return wait_for(ok, timeout=timeout, what="pool %s READY on %s" % (pool, master))
    except AssertionError as e:
        raise AssertionError("%s\nlast: %s\nlog:\n%s" % (e, fmt_info(last), px.log_tail(20))) from None


def switch_and_set(kz, path, px, c, srv, key, value, timeout=10.0):
    """Point the znode at path to srv (a RedisServer), wait until the proxy
    is READY on it, and SET key value through c: it must be acknowledged."""
    zset(kz, path, plain(hp(srv)))
    wait_master(px, hp(srv), timeout=timeout)
    rep = c.call("SET", key, value, timeout=timeout)
    assert rep == "OK", "SET %s through the proxy now on %s: %r" % (key, hp(srv), rep)


def make_replica(replica, master, timeout=10.0):
    """SLAVEOF and wait for the link (RedisServer objects)."""
    replica.client().slaveof(LOCALHOST, master.port)
    wait_for(lambda: replica.client().info("replication").get("master_link_status") == "up",
             timeout=timeout, what="replica %d linked to %d" % (replica.port, master.port))


class Monitor(threading.Thread):
    """MONITOR on a redis-server, collecting lines until stop(). `name`: a
    CLIENT SETNAME first (ADMIN_NAME keeps it out of the proxy's counts)."""

    def __init__(self, srv, name=None):
        super().__init__(daemon=True)
        self.conn = RespConn.tcp(srv.port, timeout=10)
        if name is not None:
            assert self.conn.call("CLIENT", "SETNAME", name) == "OK"
        assert self.conn.call("MONITOR") == "OK"
        self.lines, self.halt = [], threading.Event()
        self.start()

    def run(self):
        while not self.halt.is_set():
            try:
                self.lines.append(str(self.conn.read_reply(timeout=0.2)))
            except Exception:
                if self.conn.eof:
                    return

    def stop(self, drain_s=3.0):
        """Stop and return every line, including those already on the wire
        (read for at most drain_s: a server that others keep busy, e.g.
        with health checks, never falls silent)."""
        self.halt.set()
        self.join(5)
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            try:
                self.lines.append(str(self.conn.read_reply(timeout=0.3)))
            except Exception:
                break
        self.conn.close()
        return list(self.lines)

    def sets(self, prefix):
        """{key: execution time} of the SETs seen so far of keys starting with prefix."""
        out = {}
        for line in list(self.lines):
            parts = line.split(" ")
            if len(parts) >= 5 and parts[3] == '"SET"' and parts[4].startswith('"' + prefix):
                out[parts[4].strip('"')] = float(parts[0])
        return out


# the proxy's reply to a command whose master connection was lost in flight
LOST = "ERR connection to master lost; the command may or may not have run"

Ack = collections.namedtuple("Ack", "seq cmd reply")          # an acknowledged write
Refusal = collections.namedtuple("Refusal", "seq cmd text")   # any other reply


_STOPPED = object()                  # AckWriter._call: stopped while retrying -TRYAGAIN


class AckWriter(threading.Thread):
    """A client writing through the proxy in a loop, remembering which writes
    were acknowledged, for the test to find each of them where it belongs.

    Round seq (0, 1, ...) sends the commands of `commands` in turn, "{idx}"
    and "{seq}" in their arguments filled in: [("INCR", "k:{idx}")],
    [("SET", "w:{seq}", "{seq}")]. Rounds go on until `stop` is set (a
    threading.Event shared by several writers, or the writer's own: stop()).
    A reply for which is_ack(reply) holds goes to `acks` as Ack(seq, command
    name, reply); any other to `errors` as Refusal(seq, command name, text),
    after which the round ends and the next starts error_pause s later.

      setup           commands sent on each new connection, each must be OK
      retry_tryagain  -TRYAGAIN <reason> (the command did not run) is counted
                      in `tryagains`, not recorded, and the same command sent
                      again 10 ms later
      stop_on_error   the first refusal ends the writer
      reconnect       a connection error, or a LOST reply, drops the
                      connection and the next round opens a new one; without
                      it a connection error ends the writer
      keep_open       the connection (`conn`) stays open after the writer
                      ends, for the test to look at its state

    An exception that ends the writer is kept in `failure` (its repr)."""

    def __init__(self, px, commands, idx=0, stop=None, setup=(), timeout=15.0,
                 is_ack=lambda rep: isinstance(rep, int), error_pause=0.01, retry_tryagain=False,
                 stop_on_error=False, reconnect=False, keep_open=False):
        super().__init__(daemon=True)
        self.px, self.commands, self.idx, self.setup, self.timeout = px, commands, idx, setup, timeout
        self.stop_ev = stop if stop is not None else threading.Event()
        self.is_ack, self.error_pause, self.retry_tryagain = is_ack, error_pause, retry_tryagain
        self.stop_on_error, self.reconnect, self.keep_open = stop_on_error, reconnect, keep_open
        self.acks, self.errors, self.tryagains, self.failure = [], [], 0, None
        self.conn = None

    @property
    def error_texts(self):
        return [e.text for e in self.errors]

    def stop(self, join_s=25.0):
        self.stop_ev.set()
        self.join(join_s)

    def _connect(self):
        self.conn = self.px.raw(timeout=self.timeout)
        for cmd in self.setup:
            rep = self.conn.call(*cmd)
            assert rep == "OK", (cmd, rep)

    def _drop(self):
        self.conn.close()
        self.conn = None

    def _call(self, cmd):
        """The reply to cmd, or None with the connection dropped (reconnect)."""
        while True:
            try:
                rep = self.conn.call(*cmd, timeout=self.timeout)
            except Exception:
                if not self.reconnect:
                    raise
                self._drop()
                return None
            if self.retry_tryagain and isinstance(rep, str) and rep.startswith("TRYAGAIN "):
                self.tryagains += 1
                if self.stop_ev.is_set():
                    return _STOPPED      # it did not run: nothing to record
                time.sleep(0.01)
                continue
            return rep

    def _round(self, seq):
        """Send round seq; False if the writer is to end."""
        if self.conn is None:
            self._connect()
        for template in self.commands:
            cmd = tuple(a.format(idx=self.idx, seq=seq) for a in template)
            rep = self._call(cmd)
            if rep is _STOPPED:
                return False
            if self.conn is None:
                return True
            if self.is_ack(rep):
                self.acks.append(Ack(seq, cmd[0], rep))
                continue
            self.errors.append(Refusal(seq, cmd[0], str(rep)))
            if self.stop_on_error:
                return False
            if self.reconnect and rep == LOST:
                self._drop()
            time.sleep(self.error_pause)
            return True
        return True

    def run(self):
        seq = 0
        try:
            while not self.stop_ev.is_set() and self._round(seq):
                seq += 1
        except Exception as e:
            self.failure = repr(e)
        finally:
            if self.conn is not None and not self.keep_open:
                self.conn.close()


def ctl_steps(out):
    """The step numbers rzproxy-ctl failover printed, in order: ['0/6', '1/6', ...]."""
    found = []
    for line in out.splitlines():
        i = line.find("step ")
        if line.startswith("[") and i > 0:
            found.append(line[i + 5:].split(":", 1)[0])
    return found


# ---- replica reads -------------------------------------------------------

class HoldRelay(threading.Thread):
    """A TCP relay on 127.0.0.1 that can hold what it forwards: a
    replication link that lags on demand (the replica stays linked, its
    offset stops)."""

    def __init__(self, target_port):
        super().__init__(daemon=True)
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOCALHOST, 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.stop_ev = threading.Event()
        self.socks = []

    def _pump(self, a, b):
        try:
            while not self.stop_ev.is_set():
                data = a.recv(65536)
                if not data:
                    break
                self.flowing.wait(30)
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def run(self):
        self.lsock.settimeout(0.2)
        while not self.stop_ev.is_set():
            try:
                a, _ = self.lsock.accept()
            except (socket.timeout, OSError):
                continue
            b = socket.create_connection((LOCALHOST, self.target))
            self.socks += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    def close(self):
        self.stop_ev.set()
        self.flowing.set()
        for s in self.socks + [self.lsock]:
            try:
                s.close()
            except OSError:
                pass



def calls(srv, cmd):
    """How many times srv ran cmd (INFO commandstats)."""
    with srv.client() as adm:
        return int(adm.info("commandstats").get("cmdstat_" + cmd, {}).get("calls", 0))


def replicas_of(px):
    """The pool's replicas from PROXY INFO: {"h:p": {"state": ..., "reads": ...}}."""
    info = pool_info(px)
    out = {}
    for k, v in info.items():
        if k.startswith("replica") and k[7:].isdigit():
            f = dict(kv.split("=", 1) for kv in v.split(","))
            out[f["addr"]] = f
    return out


def wait_replicas(px, states, timeout=10):
    """Wait until the replicas' states are `states` ({"h:p": "ok"})."""
    def ok():
        got = {a: f["state"] for a, f in replicas_of(px).items()}
        return got == states and got
    return wait_for(ok, timeout=timeout, interval=0.05, what="replica states %r" % states)
