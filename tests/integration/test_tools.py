"""Standard tools through the proxy (redis-cli, redis-benchmark), the unix
socket listener, --test-conf, PROXY INFO and SIGTERM."""

import os
import re
import socket
import subprocess
import time

import pytest
import redis

from conftest import (RZPROXY, RespConn, encode, expect_bytes, port_open, wait_for, write_conf,
                      free_port, run_rzproxy, sanitizer_report)


def cli(*args, port, stdin=None, timeout=30):
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args),
                       input=stdin, capture_output=True, timeout=timeout)
    return p


def test_redis_cli(proxy, r):
    p = cli("set", "a", "b", port=proxy.port)
    assert p.returncode == 0 and p.stdout == b"OK\n", p
    p = cli("get", "a", port=proxy.port)
    assert p.returncode == 0 and p.stdout == b"b\n", p
    p = cli("ping", port=proxy.port)
    assert p.stdout == b"PONG\n", p
    p = cli("-n", "4", "set", "dbkey", "four", port=proxy.port)
    assert p.stdout == b"OK\n", p
    p = cli("--no-raw", "hgetall", "nohash", port=proxy.port)
    assert p.stdout == b"(empty array)\n", p
    p = cli("-3", "hello", port=proxy.port)    # RESP3 via redis-cli
    assert p.returncode == 0 and b"proto" in p.stdout, p
    assert r.get("a") == b"b"
    r.execute_command("SELECT", 4)
    assert r.get("dbkey") == b"four"
    r.execute_command("SELECT", 0)


def test_redis_cli_piped_inline(proxy, r):
    p = cli(port=proxy.port, stdin=b"SET x 1\nINCR x\nGET x\nSET \"sp ace\" \"v v\"\nGET \"sp ace\"\n")
    assert p.returncode == 0, p
    assert p.stdout == b"OK\n2\n2\nOK\nv v\n", p
    assert r.get("sp ace") == b"v v"


def test_redis_cli_pipe_mode(proxy, r):
    data = b"".join(b"SET pipe:%d %d\r\n" % (i, i) for i in range(1000)) + encode("INCR", "pipe:999")
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(proxy.port), "--pipe"],
                       input=data, capture_output=True, timeout=60)
    assert p.returncode == 0, p
    assert b"errors: 0, replies: 1001" in p.stdout, p.stdout
    assert r.get("pipe:999") == b"1000"
    assert r.get("pipe:0") == b"0"
    assert r.dbsize() == 1000


def test_redis_benchmark(proxy, r):
    p = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(proxy.port), "-q", "-n", "2000",
                        "-t", "set,get"], capture_output=True, timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, (p.returncode, out, p.stderr)
    results = {}
    for chunk in re.split(r"[\r\n]", out):
        m = re.match(r"^(SET|GET): ([0-9.]+) requests per second", chunk.strip())
        if m:
            results[m.group(1)] = float(m.group(2))
    assert set(results) == {"SET", "GET"}, out
    assert all(v > 0 for v in results.values()), out
    assert "error" not in out.lower(), out
    assert len(r.get("key:__rand_int__") or b"") == 3


def test_redis_benchmark_pipelined(proxy, r):
    p = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(proxy.port), "-q", "-n", "20000",
                        "-P", "16", "-c", "20", "-t", "incr,lpush"], capture_output=True, timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, (out, p.stderr)
    assert "INCR:" in out and "LPUSH:" in out, out
    # every INCR happened exactly once
    assert r.get("counter:__rand_int__") == b"20000"
    assert r.llen("mylist") == 20000


@pytest.mark.proxy_only
def test_unix_socket_listener(proxy_factory, redis_server, r, sharing):
    px = proxy_factory(redis_server, sharing=sharing, unix=True)
    assert os.path.exists(px.unix_path)
    c = redis.Redis(unix_socket_path=px.unix_path, socket_timeout=10)
    assert c.set("unix", "works") is True
    assert c.get("unix") == b"works"
    c.close()
    with RespConn.unix(px.unix_path) as u:
        u.send(b"PING\r\n" + encode("INCR", "u") + encode("GET", "unix"))
        expect_bytes(u, b"+PONG\r\n:1\r\n$5\r\nworks\r\n")
    p = subprocess.run(["redis-cli", "-s", px.unix_path, "get", "unix"], capture_output=True, timeout=30)
    assert p.stdout == b"works\n", p
    # tcp listener of the same pool still works
    assert px.client().get("unix") == b"works"
    assert r.get("u") == b"1"


def unix_ping(path):
    with RespConn.unix(path) as u:
        return u.call("PING")


@pytest.mark.proxy_only
def test_unix_socket_path_taken_over(proxy_factory, redis_server, tmp_path):
    """The socket file appears only once it accepts (made under another
    name, then renamed). A socket file left by a crashed run is replaced; a
    second proxy on the same path takes the name over, and the first one,
    stopping later, leaves the second's file alone. A path that is not a
    socket is refused, with a message saying so, and kept."""
    path = str(tmp_path / "shared.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()                                    # the file stays, nobody listens
    dead = os.stat(path).st_ino
    a = proxy_factory(redis_server, unix=path)
    wait_for(lambda: os.stat(path).st_ino != dead, timeout=10, what="the first proxy's socket file")
    assert unix_ping(path) == "PONG"
    first = os.stat(path).st_ino
    b = proxy_factory(redis_server, unix=path)
    wait_for(lambda: os.stat(path).st_ino != first, timeout=10, what="the second proxy's socket file")
    assert a.terminate() == 0
    assert os.path.exists(path), "the first proxy removed the second's socket file"
    assert unix_ping(path) == "PONG"
    assert not [f for f in os.listdir(str(tmp_path)) if f.startswith("shared.sock.")]
    assert b.terminate() == 0
    assert not os.path.exists(path)

    with open(path, "w") as f:
        f.write("not a socket\n")
    conf = write_conf(str(tmp_path / "notsock.conf"), free_port(), "127.0.0.1:%d" % redis_server.port,
                      unix_path=path)
    p = run_rzproxy([RZPROXY, conf], capture_output=True, timeout=30)
    assert p.returncode != 0, p
    assert ("cannot listen on unix:%s: the path exists and is not a socket" % path) in p.stderr.decode(), p
    with open(path) as f:
        assert f.read() == "not a socket\n"


@pytest.mark.proxy_only
def test_unix_socket_longest_path(proxy_factory, redis_server, tmp_path):
    """The longest unix path the conf accepts (91 bytes: the socket is made
    under PATH.<pid>.new first) listens and serves; one byte more is
    refused by --test-conf, before anything starts."""
    import tempfile
    d = tempfile.mkdtemp(prefix="rzu", dir="/tmp")
    try:
        path = os.path.join(d, "s" * (91 - len(d) - 1))
        assert len(path) == 91
        px = proxy_factory(redis_server, unix=path)
        assert unix_ping(path) == "PONG"
        assert px.terminate() == 0
        conf = write_conf(str(tmp_path / "long.conf"), free_port(), "127.0.0.1:%d" % redis_server.port,
                          unix_path=path + "s")
        p = run_rzproxy([RZPROXY, "--test-conf", conf], capture_output=True, timeout=30)
        assert p.returncode != 0 and b"unix socket path longer than 91 bytes" in p.stdout + p.stderr, p
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


# ---------------------------------------------------------------- --test-conf

@pytest.mark.proxy_only
def test_test_conf_ok(tmp_path, redis_server):
    conf = write_conf(str(tmp_path / "ok.conf"), free_port(), "127.0.0.1:%d" % redis_server.port)
    p = run_rzproxy([RZPROXY, "--test-conf", conf], capture_output=True, timeout=30)
    assert p.returncode == 0, p


@pytest.mark.proxy_only
def test_test_conf_does_not_listen(tmp_path, redis_server):
    port = free_port()
    conf = write_conf(str(tmp_path / "ok.conf"), port, "127.0.0.1:%d" % redis_server.port)
    p = subprocess.Popen([RZPROXY, "--test-conf", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert p.returncode == 0
    report = sanitizer_report(p.stderr.read())
    assert not report, report
    assert not port_open(port)


BAD_CONFS = {
    "unknown_directive": (["loglevel notice", "maxclients 100", "", "bogus-directive 42",
                           "pool main", "  listen 127.0.0.1:{port}", "  master 127.0.0.1:{rport}"], 4),
    "bad_number": (["loglevel notice", "maxclients lots", "pool main", "  listen 127.0.0.1:{port}",
                    "  master 127.0.0.1:{rport}"], 2),
    "bad_loglevel": (["loglevel shouty", "pool main", "  listen 127.0.0.1:{port}",
                      "  master 127.0.0.1:{rport}"], 1),
    "bad_size": (["client-query-buffer-limit 12 parsecs", "pool main", "  listen 127.0.0.1:{port}",
                  "  master 127.0.0.1:{rport}"], 1),
    "bad_sharing_value": (["pool main", "  listen 127.0.0.1:{port}", "  master 127.0.0.1:{rport}",
                           "  backend-sharing maybe"], 4),
    "bad_master_addr": (["pool main", "  listen 127.0.0.1:{port}", "  master 127.0.0.1"], 3),
    "unknown_in_pool": (["# comment", "pool main", "  listen 127.0.0.1:{port}",
                         "  master 127.0.0.1:{rport}", "  frobnicate yes"], 5),
    "pool_directive_before_pool": (["maxclients 10", "listen 127.0.0.1:{port}", "pool main",
                                    "  listen 127.0.0.1:{port}", "  master 127.0.0.1:{rport}"], 2),
    "global_directive_inside_pool": (["pool main", "  listen 127.0.0.1:{port}", "  master 127.0.0.1:{rport}",
                                      "  maxclients 10"], 4),
    "pool_without_master": (["", "pool main", "  listen 127.0.0.1:{port}"], 2),
    "out_of_range": (["pool main", "  listen 127.0.0.1:{port}", "  master 127.0.0.1:{rport}",
                      "  backend-connections 0"], 4),
    "unterminated_quote": (["logfile \"/tmp/x", "pool main", "  listen 127.0.0.1:{port}",
                            "  master 127.0.0.1:{rport}"], 1),
}


@pytest.mark.proxy_only
@pytest.mark.parametrize("case", list(BAD_CONFS))
def test_test_conf_reports_file_and_line(tmp_path, case):
    lines, lineno = BAD_CONFS[case]
    path = str(tmp_path / ("bad-%s.conf" % case))
    with open(path, "w") as f:
        f.write("\n".join(l.format(port=free_port(), rport=free_port()) for l in lines) + "\n")
    p = run_rzproxy([RZPROXY, "--test-conf", path], capture_output=True, timeout=30)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode != 0, (p.returncode, err)
    assert "%s:%d:" % (path, lineno) in err, err
    # running it for real refuses too, with the same message
    p2 = run_rzproxy([RZPROXY, path], capture_output=True, timeout=30)
    assert p2.returncode != 0
    assert "%s:%d:" % (path, lineno) in p2.stderr.decode("utf-8", "replace"), p2.stderr


@pytest.mark.proxy_only
def test_test_conf_missing_file(tmp_path):
    p = run_rzproxy([RZPROXY, "--test-conf", str(tmp_path / "nope.conf")], capture_output=True, timeout=30)
    assert p.returncode != 0
    assert b"nope.conf" in p.stderr


# ---------------------------------------------------------------- PROXY INFO

@pytest.mark.proxy_only
def test_proxy_info(proxy, redis_server):
    with proxy.raw() as c:
        c.send(encode("PROXY", "INFO"))
        info = c.read_reply()
        assert isinstance(info, bytes), info
        text = info.decode()
        fields = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                fields.setdefault(k.strip(), v.strip())
        assert fields.get("pool") == "main", text
        assert "127.0.0.1:%d" % redis_server.port in fields.get("master", ""), text
        # and inline, and it is not forwarded (redis would say unknown command)
        c.send(b"PROXY INFO\r\n")
        assert isinstance(c.read_reply(), bytes)
        assert c.call("PING") == "PONG"


# ---------------------------------------------------------------- SIGTERM

@pytest.mark.proxy_only
def test_sigterm_drains_and_exits_0(proxy_factory, redis_server, r, sharing):
    px = proxy_factory(redis_server, sharing=sharing)
    idle = px.raw()
    busy = px.raw()
    try:
        busy.send(encode("DEBUG", "SLEEP", "0.5") + encode("SET", "drained", "yes") + encode("GET", "drained"))
        time.sleep(0.15)           # the request is at redis now, replies outstanding
        px.proc.send_signal(15)
        # outstanding replies still arrive
        expect_bytes(busy, b"+OK\r\n+OK\r\n$3\r\nyes\r\n", timeout=5, what="replies outstanding at SIGTERM")
        # new connections are not served any more
        served = False
        try:
            with RespConn.tcp(px.port, timeout=1) as late:
                late.send(b"PING\r\n")
                try:
                    served = late.read_reply(timeout=1) == "PONG"
                except Exception:
                    served = False
        except OSError:
            pass
        assert not served, "a connection accepted after SIGTERM was served"
        rc = px.proc.wait(timeout=10)
        assert rc == 0, "exit code %s after SIGTERM; log:\n%s" % (rc, px.log_tail())
        px.expect_exit = True
        assert idle.is_closed(2)
    finally:
        idle.close(); busy.close()
    assert r.get("drained") == b"yes"
    assert not port_open(px.port)


@pytest.mark.proxy_only
def test_sigterm_idle_exits_0_quickly(proxy_factory, redis_server, r):
    px = proxy_factory(redis_server)
    clients = [px.raw() for _ in range(5)]
    try:
        for c in clients:
            assert c.call("PING") == "PONG"
        t0 = time.monotonic()
        px.proc.send_signal(15)
        rc = px.proc.wait(timeout=10)
        px.expect_exit = True
        assert rc == 0, px.log_tail()
        assert time.monotonic() - t0 < 5
    finally:
        for c in clients:
            c.close()


@pytest.mark.proxy_only
def test_sigint_exits_0(proxy_factory, redis_server, r):
    px = proxy_factory(redis_server)
    with px.raw() as c:
        assert c.call("PING") == "PONG"
        px.proc.send_signal(2)
        rc = px.proc.wait(timeout=10)
        px.expect_exit = True
        assert rc == 0, px.log_tail(5)


@pytest.mark.proxy_only
def test_sighup_does_not_kill(proxy_factory, redis_server, r):
    """SIGHUP means reload (DESIGN section 5), never 'terminate'."""
    px = proxy_factory(redis_server)
    with px.raw() as c:
        assert c.call("SET", "hup", "1") == "OK"
        px.proc.send_signal(1)
        time.sleep(0.3)
        assert px.alive(), "rzproxy exited on SIGHUP (exit %s):\n%s" % (px.proc.returncode, px.log_tail(5))
        assert c.call("GET", "hup") == b"1"


@pytest.mark.proxy_only
def test_usage_errors():
    p = run_rzproxy([RZPROXY], capture_output=True, timeout=30)
    assert p.returncode != 0
    assert p.stderr, "no usage message on stderr"
    p = run_rzproxy([RZPROXY, "--test-conf"], capture_output=True, timeout=30)
    assert p.returncode != 0


@pytest.mark.proxy_only
def test_listen_port_in_use_fails_fast(tmp_path, redis_server):
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        conf = write_conf(str(tmp_path / "busy.conf"), port, "127.0.0.1:%d" % redis_server.port)
        p = run_rzproxy([RZPROXY, conf], capture_output=True, timeout=30)
        assert p.returncode != 0
        assert str(port).encode() in p.stderr, p.stderr
    finally:
        busy.close()


@pytest.mark.proxy_only
def test_pidfile_and_logfile(tmp_path, redis_server, r):
    port = free_port()
    pidfile = tmp_path / "rz.pid"
    logfile = tmp_path / "rz-own.log"
    conf = write_conf(str(tmp_path / "pl.conf"), port, "127.0.0.1:%d" % redis_server.port,
                      globals_={"pidfile": str(pidfile), "logfile": str(logfile)})
    proc = subprocess.Popen([RZPROXY, conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: port_open(port), timeout=10, what="rzproxy with pidfile/logfile")
        assert int(pidfile.read_text().strip()) == proc.pid
        with RespConn.tcp(port) as c:
            assert c.call("PING") == "PONG"
        proc.send_signal(15)
        assert proc.wait(10) == 0
        assert logfile.exists() and logfile.stat().st_size > 0
        assert not pidfile.exists(), "pidfile left behind after a clean exit"
        report = sanitizer_report(proc.stderr.read())
        assert not report, report
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
