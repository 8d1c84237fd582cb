"""protected-mode (listen and admin-listen only on loopback or unix sockets
unless `protected-mode no`) and unixsocket-perm (the mode of unix listener
socket files).

Some proxies here bind 0.0.0.0; every connection still goes to 127.0.0.1."""

import http.client
import os
import socket
import signal
import stat

import pytest

from conftest import (LOCALHOST, RZPROXY, RespConn, free_port, port_open, run_rzproxy, wait_for,
                      write_conf)
from zkutil import hp

pytestmark = pytest.mark.proxy_only

ANY = "0.0.0.0"


def refusal(path, line, directive, addr):
    return ("%s:%d: %s '%s' refused by protected-mode: not a loopback address (127.0.0.0/8, ::1) "
            "or unix socket; to accept clients from other hosts, add `protected-mode no` before "
            "the first pool" % (path, line, directive, addr))


def assert_refused(conf, line, directive, addr):
    """--test-conf and a real start both refuse conf: exit 1, the message on
    stderr, nothing left listening."""
    want = refusal(conf, line, directive, addr)
    for argv in ([RZPROXY, "--test-conf", conf], [RZPROXY, conf]):
        p = run_rzproxy(argv)
        err = p.stderr.decode("utf-8", "replace")
        assert p.returncode == 1, (argv, p.returncode, err)
        assert err == "rzproxy: %s\n" % want, err


def hup_and_wait(px, text):
    before = open(px.logpath, errors="replace").read().count(text)
    os.kill(px.pid, signal.SIGHUP)
    wait_for(lambda: open(px.logpath, errors="replace").read().count(text) > before,
             timeout=5, what="log line %r" % text)
    return [l for l in px.log_tail(20).splitlines() if text in l][-1]


def healthz(port):
    c = http.client.HTTPConnection(LOCALHOST, port, timeout=5)
    try:
        c.request("GET", "/healthz")
        return c.getresponse().status
    finally:
        c.close()


# ---------------------------------------------------------------- listen

def test_listen_any_refused_at_start_and_by_test_conf(tmp_path, redis_factory):
    srv = redis_factory()
    port = free_port()
    conf = write_conf(str(tmp_path / "any.conf"), port, hp(srv), listen_host=ANY)
    line = open(conf).read().splitlines().index("  listen %s:%d" % (ANY, port)) + 1
    assert_refused(conf, line, "listen", "%s:%d" % (ANY, port))
    assert not port_open(port)


def test_listen_any_served_with_protected_mode_no(proxy_factory, redis_factory):
    srv = redis_factory()
    px = proxy_factory(srv, listen_host=ANY, globals_={"protected-mode": "no"})
    assert "listening on %s:%d" % (ANY, px.port) in px.log_tail(), px.log_tail()
    with px.raw() as c:            # through the 0.0.0.0 listener, from 127.0.0.1
        assert c.call("SET", "prot", "any") == "OK"
        assert c.call("GET", "prot") == b"any"
    assert srv.client().get("prot") == b"any"


def test_reload_to_any_is_rejected_and_changes_nothing(proxy_factory, redis_factory):
    srv = redis_factory()
    px = proxy_factory(srv, globals_={"maxclients": "100"})
    # a live knob and a non-loopback listen in one file: neither applies
    write_conf(px.confpath, px.port, hp(srv), listen_host=ANY, globals_={"maxclients": "1"})
    line = open(px.confpath).read().splitlines().index("  listen %s:%d" % (ANY, px.port)) + 1
    got = hup_and_wait(px, "configuration unchanged")
    assert refusal(px.confpath, line, "listen", "%s:%d" % (ANY, px.port)) in got, got
    with px.raw() as a, px.raw() as b:     # maxclients is still 100
        assert a.call("PING") == "PONG" and b.call("PING") == "PONG"

    # an added pool on a non-loopback address is refused the same way
    extra = free_port()
    write_conf(px.confpath, px.port, hp(srv), globals_={"maxclients": "100"},
               extra_pools=[("second", extra, {"master": hp(srv)})])
    with open(px.confpath) as f:
        text = f.read().replace("listen %s:%d" % (LOCALHOST, extra), "listen %s:%d" % (ANY, extra))
    with open(px.confpath, "w") as f:
        f.write(text)
    got = hup_and_wait(px, "configuration unchanged")
    assert "listen '%s:%d' refused by protected-mode" % (ANY, extra) in got, got
    assert not port_open(extra)
    assert px.alive()


def test_reload_that_drops_protected_mode_no_is_rejected(proxy_factory, redis_factory):
    srv = redis_factory()
    px = proxy_factory(srv, listen_host=ANY, globals_={"protected-mode": "no"},
                       pool={"block-timeout": "5000"})
    write_conf(px.confpath, px.port, hp(srv), listen_host=ANY, pool={"block-timeout": "1"})
    got = hup_and_wait(px, "configuration unchanged")
    assert "listen '%s:%d' refused by protected-mode" % (ANY, px.port) in got, got
    with px.raw() as c:
        assert c.call("PING") == "PONG"


# ---------------------------------------------------------------- admin-listen

def test_admin_any_refused_at_start_and_by_test_conf(tmp_path, redis_factory):
    srv = redis_factory()
    admin = free_port()
    conf = write_conf(str(tmp_path / "admin.conf"), free_port(), hp(srv),
                      globals_={"admin-listen": "%s:%d" % (ANY, admin)})
    line = open(conf).read().splitlines().index("admin-listen %s:%d" % (ANY, admin)) + 1
    assert_refused(conf, line, "admin-listen", "%s:%d" % (ANY, admin))
    assert not port_open(admin)


def test_admin_any_served_with_protected_mode_no(proxy_factory, redis_factory):
    srv = redis_factory()
    admin = free_port()
    px = proxy_factory(srv, globals_={"admin-listen": "%s:%d" % (ANY, admin),
                                      "protected-mode": "no"})
    with px.raw() as c:
        assert c.call("PING") == "PONG"
    assert healthz(admin) == 200


def test_admin_any_on_reload_is_rejected(proxy_factory, redis_factory):
    srv = redis_factory()
    admin = free_port()
    px = proxy_factory(srv, globals_={"admin-listen": "%s:%d" % (LOCALHOST, admin)})
    with px.raw() as c:
        assert c.call("PING") == "PONG"
    write_conf(px.confpath, px.port, hp(srv), globals_={"admin-listen": "%s:%d" % (ANY, admin)})
    got = hup_and_wait(px, "configuration unchanged")
    assert "admin-listen '%s:%d' refused by protected-mode" % (ANY, admin) in got, got
    assert healthz(admin) == 200


def test_host_name_refused(tmp_path, redis_factory):
    """Names are not resolved, localhost included: the message says what to write."""
    srv = redis_factory()
    conf = write_conf(str(tmp_path / "name.conf"), free_port(), hp(srv), listen_host="localhost")
    p = run_rzproxy([RZPROXY, "--test-conf", conf])
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 1, err
    assert "listen 'localhost:" in err and "a host name, not a loopback address" in err, err
    assert "write 127.0.0.1 or [::1], or add `protected-mode no`" in err, err


def test_host_name_served_with_protected_mode_no(proxy_factory, redis_factory):
    """With protected-mode no a listen address may be a name: it is
    resolved once and the proxy listens on the first address it gives."""
    srv = redis_factory()
    px = proxy_factory(srv, listen_host="localhost", globals_={"protected-mode": "no"},
                       wait=False)
    wait_for(lambda: "listening on localhost:%d" % px.port in px.log_tail(), timeout=10,
             what="the listener on localhost")
    # whichever address localhost resolved to first (127.0.0.1 or ::1)
    with socket.create_connection(("localhost", px.port), timeout=5) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nprot\r\n$4\r\nname\r\n")
        assert s.recv(64) == b"+OK\r\n"
    assert srv.client().get("prot") == b"name"
    assert px.alive()


# ---------------------------------------------------------------- unixsocket-perm

def wait_unix(px):
    """The unix listener is bound, chmod'ed and listening (it exists a moment
    before its mode is set: wait for the log line, not for the file)."""
    wait_for(lambda: "listening on unix:%s," % px.unix_path in px.log_tail(), timeout=5,
             what="the unix listener")


def mode_of(path):
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode), path
    return stat.S_IMODE(st.st_mode)


def test_unixsocket_perm_sets_the_mode(proxy_factory, redis_factory):
    srv = redis_factory()
    old = os.umask(0)              # the proxy inherits umask 0: the mode must still be 0660
    try:
        px = proxy_factory(srv, unix=True, globals_={"unixsocket-perm": "0660"})
    finally:
        os.umask(old)
    wait_unix(px)
    assert mode_of(px.unix_path) == 0o660
    with RespConn.unix(px.unix_path) as u:
        assert u.call("PING") == "PONG"

    # restart-only: a reload logs the change and keeps the running mode
    write_conf(px.confpath, px.port, hp(srv), unix_path=px.unix_path,
               globals_={"unixsocket-perm": "0600"})
    got = hup_and_wait(px, "'unixsocket-perm' changed")
    assert "cannot change while running" in got, got
    assert mode_of(px.unix_path) == 0o660


def test_unixsocket_perm_unset_leaves_the_umask(proxy_factory, redis_factory):
    srv = redis_factory()
    old = os.umask(0o027)
    try:
        px = proxy_factory(srv, unix=True)
    finally:
        os.umask(old)
    wait_unix(px)
    assert mode_of(px.unix_path) == 0o750
    with RespConn.unix(px.unix_path) as u:
        assert u.call("PING") == "PONG"


def test_unixsocket_perm_bad_value(tmp_path, redis_factory):
    srv = redis_factory()
    conf = write_conf(str(tmp_path / "perm.conf"), free_port(), hp(srv),
                      globals_={"unixsocket-perm": "0800"})
    line = open(conf).read().splitlines().index("unixsocket-perm 0800") + 1
    p = run_rzproxy([RZPROXY, "--test-conf", conf])
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 1, err
    assert ("%s:%d: bad value for 'unixsocket-perm': '0800' (expected an octal mode up to 777, "
            "like 770 or 0660)" % (conf, line)) in err, err
