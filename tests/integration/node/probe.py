#!/usr/bin/python3
"""What real client libraries send on connect, measured (see README.md here).

    /usr/bin/python3 tests/integration/node/probe.py [--strace] [LIB...]

Starts Debian's redis-server on free 127.0.0.1 ports (one as is, one with
HELLO disabled by `rename-command`), puts a recording TCP relay in front of
each (redis 7.0 rejects CLIENT SETINFO before running it, so MONITOR never
shows it: the relay sees every byte), and runs each library (clients.js for
the Node.js ones, python3-redis in-process) with default options, with db 3,
with an ACL user, and with a name. Prints, per case, the commands each
connection sent with the reply it got, what MONITOR saw, and the library's
events. --strace also runs each Node.js library's shutdown methods under
`strace -f -e trace=shutdown` to see whether they half-close the socket.
Also: the events a library reports when the server kills its connection.
Every process is stopped by pid at the end. Not part of the test suite.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from conftest import parse_reply, Incomplete, RespConn, free_port, wait_for, port_open  # noqa: E402

NODE_LIBS = ["redis5", "redis6", "ioredis5", "ioredis6"]
LOCAL = "127.0.0.1"


def fmt(v, n=70):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


class Relay(threading.Thread):
    """client <-> redis, logging every command (and the replies in order)."""

    def __init__(self, upstream_port):
        super().__init__(daemon=True)
        self.up = upstream_port
        self.port = free_port()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOCAL, self.port))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.conns = []          # [{"cmds": [...], "replies": [...], "client_eof": t, ...}]
        self.halt = threading.Event()
        self.start()

    def run(self):
        while not self.halt.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            u = socket.create_connection((LOCAL, self.up))
            rec = {"cmds": [], "replies": [], "client_eof": None, "server_eof": None, "t0": time.monotonic()}
            self.conns.append(rec)
            threading.Thread(target=self.pump, args=(c, u, rec, "cmds", "client_eof"), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c, rec, "replies", "server_eof"), daemon=True).start()

    def pump(self, src, dst, rec, field, eof_field):
        buf = bytearray()
        src.settimeout(0.2)
        while not self.halt.is_set():
            try:
                d = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                d = b""
            if not d:
                rec[eof_field] = round(time.monotonic() - rec["t0"], 3)
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            buf += d
            pos = 0
            while True:
                try:
                    v, p = parse_reply(buf, pos)
                except Incomplete:
                    break
                rec[field].append(v)
                pos = p
            del buf[:pos]
            try:
                dst.sendall(d)
            except OSError:
                return

    def stop(self):
        self.halt.set()
        self.join(2)
        self.lsock.close()


class Server:
    def __init__(self, extra=()):
        self.port = free_port()
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", LOCAL, "--save", "",
                                      "--appendonly", "no", "--daemonize", "no"] + list(extra),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.port), timeout=10, what="redis-server")
        adm = RespConn.tcp(self.port)
        assert adm.call("ACL", "SETUSER", "app", "on", ">apppw", "~*", "+@all") == "OK"
        assert adm.call("SET", "marker", "db0") == "OK"
        adm.call("SELECT", "3")
        adm.call("SET", "marker", "db3")
        adm.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Monitor(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.c = RespConn.tcp(port)
        assert self.c.call("MONITOR") == "OK"
        self.lines, self.halt = [], threading.Event()
        self.start()

    def run(self):
        while not self.halt.is_set():
            try:
                self.lines.append(str(self.c.read_reply(timeout=0.2)))
            except Exception:
                if self.c.eof:
                    return

    def stop(self):
        self.halt.set()
        self.join(3)
        self.c.close()
        return self.lines


def run_node(spec, timeout=30, strace=False):
    argv = ["node", os.path.join(HERE, "clients.js"), json.dumps(spec)]
    if strace:
        argv = ["strace", "-f", "-qq", "-e", "trace=shutdown", "-o", "/dev/stderr"] + argv
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = {"fatal": "no JSON: rc %s stdout %r stderr %r" % (p.returncode, p.stdout[-500:], p.stderr[-500:])}
    return out, p.stderr


def run_py(port, opts):
    import redis
    kw = dict(opts)
    t0 = time.monotonic()
    out = {"lib": "python3-redis", "version": redis.__version__}
    try:
        c = redis.Redis(host=LOCAL, port=port, socket_timeout=5, **kw)
        out["ping"] = c.ping()
        out["marker"] = c.get("marker")
        c.close()
        c.connection_pool.disconnect()
    except Exception as e:
        out["error"] = repr(e)
    out["elapsed"] = round(time.monotonic() - t0, 3)
    return out


CASES = [("default", {}), ("db 3", {"db": 3}), ("user/password", {"username": "app", "password": "apppw"}),
         ("name", {"name": "app1"})]


def show_conn(rec):
    lines = []
    for i, cmd in enumerate(rec["cmds"]):
        rep = rec["replies"][i] if i < len(rec["replies"]) else "(no reply)"
        words = [a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in cmd]
        lines.append("    %-55s -> %s" % (" ".join(words), fmt(rep)))
    lines.append("    (client EOF at %ss, server EOF at %ss)" % (rec["client_eof"], rec["server_eof"]))
    return "\n".join(lines)


def probe(libs, server, title):
    print("=" * 20, title)
    for lib in libs:
        for case, opts in CASES:
            relay = Relay(server.port)
            mon = Monitor(server.port)
            if lib == "python3-redis":
                py = {"db": opts.get("db", 0)}
                if "username" in opts:
                    py.update(username=opts["username"], password=opts["password"])
                if "name" in opts:
                    py["client_name"] = opts["name"]
                res = run_py(relay.port, py)
                summary = res
            else:
                res, _ = run_node({"lib": lib, "port": relay.port, "count": 1, "workload": "connect",
                                   "commands": [["PING"], ["GET", "marker"]], "options": opts,
                                   "connect_timeout_ms": 5000})
                c = (res.get("clients") or [{}])[0]
                summary = {"version": res.get("version"), "fatal": res.get("fatal"), "connected": c.get("connected"),
                           "replies": c.get("replies"), "events": c.get("events"),
                           "event_errors": c.get("event_errors"), "errors": c.get("errors"),
                           "shutdown": c.get("shutdown")}
            time.sleep(0.3)
            lines = mon.stop()
            relay.stop()
            print("--- %s, %s: %s" % (lib, case, json.dumps(summary, default=str)))
            for n, rec in enumerate(relay.conns):
                print("  connection %d:" % n)
                print(show_conn(rec))
            print("  MONITOR: %s" % [l.split("] ", 1)[-1] for l in lines])


def reconnect_events(server):
    print("=" * 20, "server kills the connection (CLIENT KILL) while the client holds it")
    for lib in NODE_LIBS:
        p = subprocess.Popen(["node", os.path.join(HERE, "clients.js"),
                              json.dumps({"lib": lib, "port": server.port, "count": 1, "workload": "hold",
                                          "control": "stdin", "seconds": 20, "state": True,
                                          "options": {"name": "victim"}})],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                line = p.stderr.readline()
                if '"holding"' in line or not line:
                    break
            adm = RespConn.tcp(server.port)
            adm.call("CLIENT", "KILL", "USER", "default", "SKIPME", "yes")
            adm.close()
            time.sleep(1.0)
            out, _ = p.communicate("", timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        c = json.loads(out)["clients"][0]
        print("--- %s: events %s errors %s timeline %s" % (lib, c["events"], c["event_errors"][:2], c["timeline"]))


def strace_shutdown(server):
    print("=" * 20, "does the library half-close (shutdown(2)) on quit/close/disconnect?")
    for lib in NODE_LIBS:
        for how in ("quit", "close", "disconnect"):
            res, err = run_node({"lib": lib, "port": server.port, "count": 1, "workload": "connect",
                                 "commands": [["PING"]], "shutdown": how}, strace=True)
            calls = [l.split(" ", 1)[-1] for l in err.splitlines() if "shutdown(" in l]
            print("--- %s %s: %s" % (lib, how, calls or "no shutdown(2) call"))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    libs = args or NODE_LIBS + ["python3-redis"]
    plain = Server()
    nohello = Server(["--rename-command", "HELLO", ""])
    try:
        probe(libs, plain, "redis-server %s" % subprocess.run(["redis-server", "--version"], capture_output=True,
                                                                text=True).stdout.split()[2])
        probe([l for l in libs if l != "python3-redis"], nohello, "redis-server with HELLO disabled (rename-command)")
        reconnect_events(plain)
        if "--strace" in sys.argv:
            strace_shutdown(plain)
    finally:
        plain.stop()
        nohello.stop()


if __name__ == "__main__":
    main()
