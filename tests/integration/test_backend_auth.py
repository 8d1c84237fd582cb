"""Backend credentials (issue 15): backend-user / backend-password-file
authenticate every backend connection before any client command, so
clients that send no AUTH work unchanged against a password-protected
master and stay shared; credentials that cannot be read or that the master
refuses gate the pool, and nothing else is sent; the password never shows."""

import os
import signal
import urllib.request

import pytest

from conftest import ADMIN_NAME, LOCALHOST, free_port, wait_for

pytestmark = pytest.mark.proxy_only

SECRET = "s3cret-Pa55"


def password_file(tmp_path, text, mode=0o600, name="pw"):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def master_clients(srv, password, user=None):
    kw = {"password": password}
    if user:
        kw["username"] = user
    with srv.client(**kw) as adm:
        return [c for c in adm.client_list() if c.get("name") != ADMIN_NAME]


def commands_run(srv, password, user=None):
    """{command: calls} from INFO commandstats."""
    kw = {"password": password}
    if user:
        kw["username"] = user
    with srv.client(**kw) as adm:
        return {k[len("cmdstat_"):]: v["calls"] for k, v in adm.info("commandstats").items()}


def clients_share(px, n=50):
    conns = [px.raw() for _ in range(n)]
    try:
        for i, c in enumerate(conns):
            assert c.call("SET", "ba:%d" % i, i) == "OK"
        for i, c in enumerate(conns):
            assert c.call("GET", "ba:%d" % i) == b"%d" % i
    finally:
        for c in conns:
            c.close()


def test_requirepass_master(proxy_factory, redis_factory, tmp_path):
    """AUTH <password> from the file: 50 clients without AUTH share the
    pool's connections; the password is nowhere in what the proxy shows,
    its log at debug level included."""
    srv = redis_factory(extra_args=["--requirepass", SECRET])
    admin = free_port()
    px = proxy_factory(srv, globals_={"admin-listen": "%s:%d" % (LOCALHOST, admin), "loglevel": "debug"},
                       pool={"backend-password-file": password_file(tmp_path, SECRET + "\n")})
    clients_share(px)
    assert len(master_clients(srv, SECRET)) <= 2
    with px.raw() as c:
        shown = c.call("PROXY", "INFO").decode() + c.call("PROXY", "CLIENTS").decode()
    with urllib.request.urlopen("http://%s:%d/info" % (LOCALHOST, admin), timeout=5) as r:
        shown += r.read().decode()
    with urllib.request.urlopen("http://%s:%d/metrics" % (LOCALHOST, admin), timeout=5) as r:
        shown += r.read().decode()
    shown += open(px.logpath).read()
    assert SECRET not in shown


def test_acl_user_master(proxy_factory, redis_factory, tmp_path):
    """backend-user: the connections act as that ACL user; a client's own
    AUTH still moves it to its own user."""
    srv = redis_factory(extra_args=["--requirepass", "adminpw"])
    with srv.client(password="adminpw") as adm:
        adm.execute_command("ACL", "SETUSER", "app", "on", ">" + SECRET, "~*", "&*", "+@all")
        adm.execute_command("ACL", "SETUSER", "other", "on", ">otherpw", "~*", "+@all")
    px = proxy_factory(srv, pool={"backend-user": "app",
                                  "backend-password-file": password_file(tmp_path, SECRET)})
    clients_share(px)
    users = [m["user"] for m in master_clients(srv, "adminpw")]
    assert 1 <= len(users) <= 2 and set(users) == {"app"}, users      # shared
    with px.raw() as c:
        assert c.call("ACL", "WHOAMI") == b"app"
        assert c.call("AUTH", "other", "otherpw") == "OK"
        assert c.call("ACL", "WHOAMI") == b"other"
    users = {m["user"] for m in master_clients(srv, "adminpw")}
    assert "app" in users and users <= {"app", "other"}, users


def test_pinned_connections_authenticate(proxy_factory, redis_factory, tmp_path):
    """backend-sharing no: every client's own master connection is
    authenticated as backend-user before its first command."""
    srv = redis_factory(extra_args=["--requirepass", "adminpw"])
    with srv.client(password="adminpw") as adm:
        adm.execute_command("ACL", "SETUSER", "app", "on", ">" + SECRET, "~*", "&*", "+@all")
    px = proxy_factory(srv, sharing="no", pool={"backend-user": "app",
                                                "backend-password-file": password_file(tmp_path, SECRET)})
    conns = [px.raw() for _ in range(5)]
    try:
        for i, c in enumerate(conns):
            assert c.call("SET", "pa:%d" % i, i) == "OK"
            assert c.call("ACL", "WHOAMI") == b"app"
        assert [m["user"] for m in master_clients(srv, "adminpw")] == ["app"] * 5
    finally:
        for c in conns:
            c.close()


def test_refused_credentials_gate_the_pool(proxy_factory, redis_factory, tmp_path):
    """A password the master refuses: clients get -TRYAGAIN with the reason,
    no client command reaches the master, and a corrected file (SIGHUP)
    puts the pool back in service."""
    srv = redis_factory(extra_args=["--requirepass", SECRET])
    pw = password_file(tmp_path, "wrong")
    px = proxy_factory(srv, pool={"backend-password-file": pw, "on-no-master": "tryagain"})
    with px.raw() as c:
        for _ in range(5):
            assert c.call("SET", "gated", "1") == "TRYAGAIN backend credentials refused"
    stats = commands_run(srv, SECRET)
    assert "set" not in stats, stats
    assert stats.get("auth", 0) >= 1
    password_file(tmp_path, SECRET)
    px.proc.send_signal(signal.SIGHUP)

    def served():
        with px.raw() as c:
            return c.call("SET", "gated", "1") == "OK"
    wait_for(served, timeout=10, interval=0.2, what="service after the corrected password")
    log = open(px.logpath).read()
    assert "the master refused backend-user/backend-password-file" in log, log[-2000:]


def test_unreadable_password_file(proxy_factory, redis_factory, tmp_path):
    """A password file that cannot be read gates the pool (the proxy still
    starts and says why); once it exists, a SIGHUP reads it. A file others
    can read gets a warning."""
    srv = redis_factory(extra_args=["--requirepass", SECRET])
    missing = str(tmp_path / "missing")
    px = proxy_factory(srv, pool={"backend-password-file": missing, "on-no-master": "tryagain"})
    with px.raw() as c:
        assert c.call("GET", "x") == "TRYAGAIN backend settings unusable"
        info = c.call("PROXY", "INFO").decode()
        assert "reason:backend settings unusable" in info, info
    assert "set" not in commands_run(srv, SECRET)
    password_file(tmp_path, SECRET + "\r\n", mode=0o644, name="missing")
    px.proc.send_signal(signal.SIGHUP)

    def served():
        with px.raw() as c:
            return c.call("GET", "x") is None
    wait_for(served, timeout=10, interval=0.2, what="service once the file is readable")
    log = open(px.logpath).read()
    assert "backend-password-file %s: No such file or directory" % missing in log
    assert "can be read by others (mode 0644)" in log


def test_backend_user_needs_a_password_file(tmp_path):
    from conftest import RZPROXY, run_rzproxy
    conf = tmp_path / "c.conf"
    conf.write_text("pool main\n  listen 127.0.0.1:%d\n  master 127.0.0.1:1\n  backend-user app\n"
                    % free_port())
    p = run_rzproxy([RZPROXY, "--test-conf", str(conf)])
    assert p.returncode != 0
    assert "`backend-user` needs `backend-password-file`" in (p.stdout + p.stderr).decode()
