"""rzproxy-ctl failover between TLS-only redis-servers, with the pool's TLS
settings and backend credentials (issue 15).

The ctl reads the pool's `tls*`, `backend-user` and `backend-password-file`
from its conf file (or --tls... on the command line) and uses them for
every redis connection: TLS verified as the proxy verifies it (the pool's
CA, the name tls-server-name or the host), AUTH first. A server it cannot
agree TLS or credentials with stops the failover at step 0, nothing
changed; the password is never printed.

The PKI comes from tlsutil (session fixture `pki`), the servers from
redis_factory(tls=pki): TLS only (--port 0), replication over TLS.
"""

import os

import pytest

from conftest import LOCALHOST, wait_for
from zkutil import ctl_steps as steps, plain, zset

FAST_SYNC = ["--repl-diskless-sync-delay", "0", "--replica-read-only", "yes"]
TIMEOUT_S = 30                      # bound for any single ctl run
PASSWORD = "s3cret-Pw-9f2c"         # must never appear in the ctl's output


def hp(srv):
    return "%s:%d" % (LOCALHOST, srv.port)


def repl(srv, **kw):
    with srv.client(socket_timeout=5, **kw) as c:
        return c.info("replication")


def wait_replica_of(srv, master, timeout=15.0, **kw):
    """srv replicates from master with the link up (over TLS when they speak it)."""
    def ok():
        i = repl(srv, **kw)
        return (i.get("role") == "slave" and int(i.get("master_port", 0)) == master.port
                and i.get("master_link_status") == "up") and i
    return wait_for(ok, timeout=timeout, interval=0.05,
                    what="%s replicating from %s" % (hp(srv), hp(master)))



def password_file(tmp_path, text=PASSWORD + "\n", mode=0o600, name="backend.pw"):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def pair(redis_factory, pki, auth_clients=False, extra=(), old_extra=(), old_cert=None):
    """A TLS master M and its TLS replica R, linked. old_cert: (crt, key)
    for M instead of the good server certificate."""
    m_args = FAST_SYNC + list(extra) + list(old_extra)
    if old_cert:
        m_args += ["--tls-cert-file", old_cert[0], "--tls-key-file", old_cert[1]]
    m = redis_factory(tls=pki, tls_auth_clients=auth_clients, extra_args=m_args)
    r = redis_factory(tls=pki, tls_auth_clients=auth_clients,
                      extra_args=FAST_SYNC + list(extra) + ["--replicaof", LOCALHOST, str(m.port)])
    return m, r


@pytest.fixture
def zk(zk_server, znode_path, kz):
    kz.ensure_path(znode_path.rsplit("/", 1)[0])
    return zk_server


def assert_nothing_changed(kz, znode_path, st, m, r, **kw):
    """The znode was never deleted, M is still a master that takes writes,
    R still replicates from M."""
    data, st2 = kz.get(znode_path)
    assert data == plain(hp(m)) and (st2.czxid, st2.version) == (st.czxid, st.version), (st, st2)
    assert repl(m, **kw)["role"] == "master"
    with m.client(socket_timeout=3, **kw) as c:
        assert c.set("after-refusal", "1") is True
    i = repl(r, **kw)
    assert i["role"] == "slave" and int(i["master_port"]) == m.port, i


def assert_quiet(res, *secrets):
    for s in secrets:
        assert s not in res.text, "a secret was printed:\n%r" % res


# ---------------------------------------------------------------- TLS

@pytest.mark.parametrize("mode", ["ip", "name+client-cert"])
def test_failover_tls(zk, kz, znode_path, ctl_factory, redis_factory, pki, mode):
    """M -> R over TLS: the certificate is checked against 127.0.0.1 (the
    host connected to) or tls-server-name redis.test; with tls-auth-clients
    yes the ctl presents the pool's tls-cert-file. R is master with M's
    keys, M follows R over TLS, the znode names R."""
    auth_clients = mode != "ip"
    m, r = pair(redis_factory, pki, auth_clients=auth_clients)
    wait_replica_of(r, m)
    with m.client() as c:
        for i in range(100):
            c.set("k:%d" % i, "v")
    st = zset(kz, znode_path, plain(hp(m)))
    pool = {"tls": "yes", "tls-ca-cert-file": pki.ca_crt}
    if auth_clients:
        pool.update({"tls-server-name": "redis.test", "tls-cert-file": pki.client_crt,
                     "tls-key-file": pki.client_key})
    ctl = ctl_factory(zk.hostport, znode_path, pool=pool)
    res = ctl.run("failover", "--to", hp(r), timeout=TIMEOUT_S)
    assert res.rc == 0, res
    assert steps(res.out) == ["0/6", "0/6", "1/6", "2/6", "3/6", "4/6", "5/6", "5/6", "6/6"], res
    want = "redis.test" if auth_clients else "the host connected to"
    assert "redis connections: TLS (certificates verified, name: %s)" % want in res.out, res
    assert "WARNING" not in res.text, res
    assert repl(r)["role"] == "master"
    with r.client() as c:
        assert sum(c.exists("k:%d" % i) for i in range(100)) == 100
    wait_replica_of(m, r)
    data, st2 = kz.get(znode_path)
    assert data == plain(hp(r)) and st2.czxid != st.czxid, (data, st2)


def test_failover_tls_refused(zk, kz, znode_path, ctl_factory, redis_factory, pki, tmp_path):
    """TLS settings the servers do not agree with stop the failover at step
    0, before anything changes, with the reason: the CA did not sign the
    certificate, the name is not in it, the server wants a client
    certificate, the ctl speaks plain TCP to a TLS port, a CA file that
    cannot be read."""
    m, r = pair(redis_factory, pki, auth_clients=True)
    wait_replica_of(r, m)
    st = zset(kz, znode_path, plain(hp(m)))
    good = {"tls": "yes", "tls-ca-cert-file": pki.ca_crt, "tls-cert-file": pki.client_crt,
            "tls-key-file": pki.client_key}
    cases = [
        (dict(good, **{"tls-ca-cert-file": pki.other_ca_crt}),
         "TLS handshake with %s failed: certificate verify failed: " % hp(r)),
        (dict(good, **{"tls-server-name": "other.test"}),
         "TLS handshake with %s failed: certificate verify failed: hostname mismatch" % hp(r)),
        ({"tls": "yes", "tls-ca-cert-file": pki.ca_crt},
         "TLS handshake with %s failed: " % hp(r)),
        ({}, "new master %s does not answer: " % hp(r)),
        (dict(good, **{"tls-ca-cert-file": str(tmp_path / "missing.crt")}),
         "rzproxy-ctl: TLS: tls-ca-cert-file %s" % (tmp_path / "missing.crt")),
    ]
    for pool, needle in cases:
        ctl = ctl_factory(zk.hostport, znode_path, pool=pool)
        res = ctl.run("failover", "--to", hp(r), "--timeout", "1000", timeout=TIMEOUT_S)
        assert res.rc == 1, (pool, res)
        assert needle in res.err and "nothing changed" in res.err, (pool, needle, res)
        assert "step 1/" not in res.out, res
        assert_nothing_changed(kz, znode_path, st, m, r)


def test_failover_old_master_refuses_tls(zk, kz, znode_path, ctl_factory, redis_factory, pki):
    """NEW is fine but the old master's certificate has expired: it answers
    yet cannot be fenced (paused, demoted), so nothing is done; it is not
    taken for an unreachable master."""
    m, r = pair(redis_factory, pki, old_cert=(pki.expired_server_crt, pki.expired_server_key))
    # R cannot sync from M (M's certificate has expired) but is its replica
    wait_for(lambda: repl(r)["role"] == "slave", what="R a replica")
    st = zset(kz, znode_path, plain(hp(m)))
    ctl = ctl_factory(zk.hostport, znode_path, pool={"tls": "yes", "tls-ca-cert-file": pki.ca_crt})
    res = ctl.run("failover", "--to", hp(r), timeout=TIMEOUT_S)
    assert res.rc == 1, res
    assert ("cannot use old master %s: TLS handshake with %s failed: certificate verify failed: "
            "certificate has expired: it could not be fenced; nothing changed" % (hp(m), hp(m))) in res.err, res
    data, st2 = kz.get(znode_path)
    assert (st2.czxid, st2.version) == (st.czxid, st.version)
    assert repl(m, ssl_cert_reqs="none")["role"] == "master" and repl(r)["role"] == "slave"


# ---------------------------------------------------------------- AUTH

@pytest.mark.parametrize("user", [None, "alice"])
def test_failover_tls_auth(zk, kz, znode_path, ctl_factory, redis_factory, pki, tmp_path, user):
    """requirepass (AUTH <password>) or an ACL user with the default user
    off (AUTH alice <password>): the ctl authenticates with the pool's
    backend-password-file first on every connection, and never prints the
    password (also not with -v)."""
    if user is None:
        auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
        kw = {"password": PASSWORD}
    else:
        auth = ["--user", "default", "off", "--user", user, "on", ">" + PASSWORD, "~*", "&*", "+@all",
                "--masteruser", user, "--masterauth", PASSWORD]
        kw = {"username": user, "password": PASSWORD}
    m, r = pair(redis_factory, pki, extra=auth)
    wait_replica_of(r, m, **kw)
    zset(kz, znode_path, plain(hp(m)))
    pool = {"tls": "yes", "tls-ca-cert-file": pki.ca_crt,
            "backend-password-file": password_file(tmp_path)}
    if user:
        pool["backend-user"] = user
    ctl = ctl_factory(zk.hostport, znode_path, pool=pool)
    res = ctl.run("-v", "failover", "--to", hp(r), timeout=TIMEOUT_S)
    assert res.rc == 0, res
    assert "AUTH as %s" % (user or "the default user") in res.out, res
    assert "WARNING" not in res.text and "warning" not in res.err, res
    assert_quiet(res, PASSWORD)
    assert repl(r, **kw)["role"] == "master"
    wait_replica_of(m, r, **kw)
    assert kz.get(znode_path)[0] == plain(hp(r))


def test_failover_auth_refused(zk, kz, znode_path, ctl_factory, redis_factory, pki, tmp_path):
    """A wrong password is refused at step 0 with the server's words and
    nothing changes; neither password is printed. A password file others
    can read gets a warning; a missing one stops the ctl before it
    connects anywhere."""
    auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
    kw = {"password": PASSWORD}
    m, r = pair(redis_factory, pki, extra=auth)
    wait_replica_of(r, m, **kw)
    st = zset(kz, znode_path, plain(hp(m)))
    base = {"tls": "yes", "tls-ca-cert-file": pki.ca_crt}

    wrong = "not-the-" + PASSWORD
    ctl = ctl_factory(zk.hostport, znode_path, pool=dict(base, **{
        "backend-password-file": password_file(tmp_path, wrong + "\n", mode=0o644, name="wrong.pw")}))
    res = ctl.run("-v", "failover", "--to", hp(r), timeout=TIMEOUT_S)
    assert res.rc == 1, res
    assert "rzproxy-ctl: cannot use new master %s: AUTH refused by %s: WRONGPASS" % (hp(r), hp(r)) in res.err, res
    assert "nothing changed" in res.err, res
    assert "can be read by others (mode 0644): chmod 600 it" in res.err, res
    assert_quiet(res, PASSWORD, wrong)
    assert_nothing_changed(kz, znode_path, st, m, r, **kw)

    # no AUTH at all: the servers say NOAUTH
    ctl = ctl_factory(zk.hostport, znode_path, pool=base)
    res = ctl.run("failover", "--to", hp(r), timeout=TIMEOUT_S)
    assert res.rc == 1 and "NOAUTH" in res.err and "nothing changed" in res.err, res
    assert_nothing_changed(kz, znode_path, st, m, r, **kw)

    missing = str(tmp_path / "missing.pw")
    ctl = ctl_factory(zk.hostport, znode_path, pool=dict(base, **{"backend-password-file": missing}))
    res = ctl.run("failover", "--to", hp(r), timeout=TIMEOUT_S)
    assert res.rc == 1, res
    assert ("rzproxy-ctl: backend-password-file %s: No such file or directory; nothing changed"
            % missing) in res.err, res
    assert res.out == "", res
    assert_nothing_changed(kz, znode_path, st, m, r, **kw)


# ---------------------------------------------------------------- command line

def test_failover_tls_command_line(zk, kz, znode_path, ctl_factory, redis_factory, pki, tmp_path):
    """Without a conf file, --tls, --tls-* and --backend-* give the same
    settings; with one, they override the pool's. Inconsistent ones are
    usage errors (exit 2), like the conf parser's."""
    auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
    kw = {"password": PASSWORD}
    m, r = pair(redis_factory, pki, auth_clients=True, extra=auth)
    wait_replica_of(r, m, **kw)
    zset(kz, znode_path, plain(hp(m)))
    pw = password_file(tmp_path)
    bare = ctl_factory(None, None)
    where = ["--zookeeper", zk.hostport, "--znode", znode_path]
    for args, needle in [(["--tls-ca-cert-file", pki.ca_crt], "without TLS"),
                         (["--tls", "--tls-cert-file", pki.client_crt], "go together"),
                         (["--backend-user", "alice"], "needs a backend-password-file")]:
        res = bare.run(*(where + args + ["failover", "--to", hp(r)]))
        assert res.rc == 2 and needle in res.err, (args, res)
    res = bare.run("--help")
    assert res.rc == 0 and "--backend-password-file" in res.out, res

    # the conf's pool has a CA that did not sign the servers' certificates:
    # the command line's wins
    ctl = ctl_factory(zk.hostport, znode_path, pool={"tls": "yes", "tls-ca-cert-file": pki.other_ca_crt})
    res = ctl.run("--tls-ca-cert-file", pki.ca_crt, "--tls-cert-file", pki.client_crt,
                  "--tls-key-file", pki.client_key, "--tls-server-name", "redis.test",
                  "--backend-password-file", pw, "failover", "--to", hp(r), timeout=TIMEOUT_S)
    assert res.rc == 0, res
    assert_quiet(res, PASSWORD)
    assert repl(r, **kw)["role"] == "master"
    wait_replica_of(m, r, **kw)

    # and back, with no conf file at all
    res = bare.run(*(where + ["--tls", "--tls-ca-cert-file", pki.ca_crt,
                              "--tls-cert-file", pki.client_crt, "--tls-key-file", pki.client_key,
                              "--backend-password-file", pw, "failover", "--to", hp(m)]),
                   timeout=TIMEOUT_S)
    assert res.rc == 0, res
    assert_quiet(res, PASSWORD)
    assert repl(m, **kw)["role"] == "master"
    wait_replica_of(r, m, **kw)
    assert kz.get(znode_path)[0] == plain(hp(m))
