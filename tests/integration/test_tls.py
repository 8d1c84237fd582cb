"""TLS to the master (issue 15): a pool with `tls yes` speaks TLS to a
TLS-only redis-server, verifying its certificate against the pool's CA and
name, on both routes; mutual TLS with tls-cert-file/tls-key-file; a master
whose certificate the CA did not sign, whose name does not match, or that
has expired is never sent a command; certificates are re-read on SIGHUP;
a failover between two TLS masters loses nothing. Clients speak plain RESP
to the proxy throughout. The PKI comes from tlsutil (session fixture `pki`),
the servers from redis_factory(tls=pki)."""

import os
import shutil
import signal
import time
import urllib.request

import pytest
import redis

from conftest import LOCALHOST, encode, expect_bytes, free_port, wait_for
from zkutil import AckWriter, hp, plain, wait_master, zset

pytestmark = pytest.mark.proxy_only

FAST_SYNC = ["--repl-diskless-sync-delay", "0", "--replica-read-only", "yes"]


def tls_pool(pki, **extra):
    pool = {"tls": "yes", "tls-ca-cert-file": pki.ca_crt}
    pool.update(extra)
    return pool


def unverified(srv):
    """A TLS connection to srv that does not check its certificate: the
    test's own look at a server the proxy must refuse."""
    return redis.Redis(host=LOCALHOST, port=srv.port, ssl=True, ssl_cert_reqs="none",
                       ssl_certfile=srv.tls.client_crt, ssl_keyfile=srv.tls.client_key,
                       socket_timeout=10)


def commands_seen(srv):
    with unverified(srv) as c:
        return {k[len("cmdstat_"):]: v["calls"] for k, v in c.info("commandstats").items()}


def test_tls_master_both_routes(proxy_factory, redis_factory, pki, sharing):
    """Commands, a 12,000-command pipeline and a 64 MiB value through a
    pool whose master speaks TLS only."""
    srv = redis_factory(tls=pki)
    px = proxy_factory(srv, sharing=sharing, pool=tls_pool(pki))
    with px.raw(timeout=60) as c:
        assert c.call("SET", "t", "v") == "OK"
        assert c.call("GET", "t") == b"v"
        n = 12000
        c.send(b"".join(encode("INCR", "tls:n") for _ in range(n)))
        expect_bytes(c, b"".join(b":%d\r\n" % i for i in range(1, n + 1)), timeout=60,
                     what="pipelined INCRs")
        big = os.urandom(1 << 20) * 64
        c.send(encode("SET", "tls:big", big))
        assert c.read_reply(timeout=60) == "OK"
        c.send(encode("GET", "tls:big"))
        assert c.read_reply(timeout=60) == big
    with srv.client() as d:
        assert d.get("tls:n") == b"12000" and d.strlen("tls:big") == len(big)


def test_mutual_tls(proxy_factory, redis_factory, pki):
    """A master with tls-auth-clients yes: the pool's client certificate
    gets in; without one the handshake fails and nothing is sent."""
    srv = redis_factory(tls=pki, tls_auth_clients=True)
    px = proxy_factory(srv, pool=tls_pool(pki, **{"tls-cert-file": pki.client_crt,
                                                  "tls-key-file": pki.client_key}))
    with px.raw() as c:
        assert c.call("SET", "mtls", "1") == "OK"
    bare = proxy_factory(srv, pool=tls_pool(pki, **{"on-no-master": "tryagain"}))
    with bare.raw() as c:
        for _ in range(3):
            assert c.call("SET", "mtls", "2") == "TRYAGAIN master unreachable"
    with srv.client() as d:
        assert d.get("mtls") == b"1"


@pytest.mark.parametrize("case", ["other-ca", "wrong-name", "expired"])
def test_untrusted_master_never_sent_a_command(proxy_factory, redis_factory, pki, case):
    """A master whose certificate the CA did not sign, whose name does not
    match, or that has expired: clients are refused (tryagain) or held
    (block) and the server never runs a command; the reason is in the log
    and /healthz."""
    cert = {"other-ca": (pki.other_server_crt, pki.other_server_key),
            "expired": (pki.expired_server_crt, pki.expired_server_key)}.get(case)
    extra = ["--tls-cert-file", cert[0], "--tls-key-file", cert[1]] if cert else []
    srv = redis_factory(tls=pki, extra_args=extra)
    before = commands_seen(srv)          # the start-up checks' own commands
    pool = tls_pool(pki, **{"on-no-master": "tryagain"})
    if case == "wrong-name":
        pool["tls-server-name"] = "other.test"
    admin = free_port()
    px = proxy_factory(srv, pool=pool, globals_={"admin-listen": "%s:%d" % (LOCALHOST, admin)})
    held_pool = dict(pool, **{"block-timeout": "800"})
    del held_pool["on-no-master"]
    held = proxy_factory(srv, pool=held_pool)
    with px.raw() as c, held.raw() as h:
        assert c.call("SET", "bad", "1") == "TRYAGAIN master unreachable"
        t0 = time.monotonic()
        assert h.call("SET", "bad", "2", timeout=10) == "TRYAGAIN master unreachable"
        assert time.monotonic() - t0 >= 0.7, "held for block-timeout before the refusal"
    want = {"other-ca": "certificate verify failed: unable to get local issuer certificate",
            "wrong-name": "certificate verify failed: hostname mismatch",
            "expired": "certificate verify failed: certificate has expired"}[case]
    log = open(px.logpath).read()
    assert "TLS handshake failed: " + want in log, log[-3000:]
    try:
        urllib.request.urlopen("http://%s:%d/healthz" % (LOCALHOST, admin), timeout=5)
        raise AssertionError("/healthz said 200")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        assert e.code == 503 and want in body, body
    # nothing at all ran since, the proxy's checks (INFO) included: only
    # the test's own INFO commandstats of just before
    seen = commands_seen(srv)
    assert seen == dict(before, info=before.get("info", 0) + 1), (before, seen)


def test_certificates_reread_on_sighup(proxy_factory, redis_factory, pki, tmp_path):
    """tls-ca-cert-file holds the wrong CA: refused. The file is replaced
    with the right one and SIGHUP: served, with no restart."""
    srv = redis_factory(tls=pki)
    ca = str(tmp_path / "ca.pem")
    shutil.copy(pki.other_ca_crt, ca)
    px = proxy_factory(srv, pool=tls_pool(pki, **{"tls-ca-cert-file": ca,
                                                  "on-no-master": "tryagain"}))
    with px.raw() as c:
        assert c.call("PING") == "TRYAGAIN master unreachable"
    shutil.copy(pki.ca_crt, ca)
    px.proc.send_signal(signal.SIGHUP)

    def served():
        with px.raw() as c:
            return c.call("PING") == "PONG"
    wait_for(served, timeout=10, interval=0.2, what="service after the CA file was fixed")


def test_tls_with_backend_credentials(proxy_factory, redis_factory, pki, tmp_path):
    """TLS and a requirepass master: clients without AUTH work."""
    srv = redis_factory(tls=pki, extra_args=["--requirepass", "tlspw"])
    pw = tmp_path / "pw"
    pw.write_text("tlspw\n")
    os.chmod(str(pw), 0o600)
    px = proxy_factory(srv, pool=tls_pool(pki, **{"backend-password-file": str(pw)}))
    conns = [px.raw() for _ in range(20)]
    try:
        for i, c in enumerate(conns):
            assert c.call("SET", "tp:%d" % i, i) == "OK"
    finally:
        for c in conns:
            c.close()


def test_failover_between_tls_masters(zk_server, kz, zk_proxy_factory, redis_factory, pki,
                                      znode_path, ctl_factory):
    """rzproxy-ctl failover moves the master between two TLS-only servers
    (replicating over TLS) while writers go on through the proxy: no error,
    every acknowledged write on the final master."""
    a = redis_factory(tls=pki, extra_args=FAST_SYNC)
    b = redis_factory(tls=pki, extra_args=FAST_SYNC + ["--replicaof", LOCALHOST, str(a.port)])
    wait_for(lambda: b.client().info("replication").get("master_link_status") == "up",
             timeout=20, what="b replicating from a over TLS")
    kz.ensure_path(znode_path.rsplit("/", 1)[0])
    zset(kz, znode_path, plain(hp(a)))
    pool = tls_pool(pki, **{"block-timeout": "10000"})
    px = zk_proxy_factory(zk_server, znode_path, pool=pool)
    wait_master(px, hp(a))
    ctl = ctl_factory(zk_server.hostport, znode_path, pool=tls_pool(pki))
    writers = [AckWriter(px, [("INCR", "tls:{idx}")], idx=i) for i in range(3)]
    for w in writers:
        w.start()
    try:
        wait_for(lambda: all(len(w.acks) >= 20 for w in writers), timeout=10, what="writes on a")
        for to in (b, a):
            res = ctl.run("failover", "--to", hp(to), "--timeout", "10000")
            assert res.rc == 0, res
            wait_master(px, hp(to), timeout=10)
            n = [len(w.acks) for w in writers]
            wait_for(lambda: all(len(w.acks) >= k + 20 for w, k in zip(writers, n)), timeout=15,
                     what="writes on %s" % hp(to))
    finally:
        for w in writers:
            w.stop()
    with a.client() as final:
        for w in writers:
            assert not w.errors and w.failure is None, (w.errors[:3], w.failure)
            assert [x.reply for x in w.acks] == list(range(1, len(w.acks) + 1))
            assert int(final.get("tls:%d" % w.idx)) == len(w.acks)


def test_test_conf_loads_the_tls_files(tmp_path, pki):
    """--test-conf reads the certificates, keys and password files a pool
    will load at start, and names the one that fails."""
    from conftest import RZPROXY, run_rzproxy
    good = "pool main\n  listen 127.0.0.1:%d\n  master 127.0.0.1:1\n  tls yes\n" % free_port()
    conf = tmp_path / "ok.conf"
    conf.write_text(good + "  tls-ca-cert-file %s\n  tls-cert-file %s\n  tls-key-file %s\n"
                    % (pki.ca_crt, pki.client_crt, pki.client_key))
    p = run_rzproxy([RZPROXY, "--test-conf", str(conf)])
    assert p.returncode == 0, p
    for extra, want in [
            ("  tls-ca-cert-file %s\n" % (tmp_path / "nope.pem"),
             "tls-ca-cert-file %s: No such file or directory" % (tmp_path / "nope.pem")),
            ("  tls-cert-file %s\n  tls-key-file %s\n" % (pki.client_crt, pki.server_key),
             "tls-key-file %s: key values mismatch" % pki.server_key),
            ("  backend-password-file %s\n" % (tmp_path / "nopw"),
             "backend-password-file %s" % (tmp_path / "nopw"))]:
        conf.write_text(good + extra)
        p = run_rzproxy([RZPROXY, "--test-conf", str(conf)])
        out = (p.stdout + p.stderr).decode()
        assert p.returncode == 1 and want in out, out


def test_slow_reader_over_tls(proxy_factory, redis_factory, pki, sharing):
    """A client that reads slowly, with a small output-buffer-limit: the
    proxy pauses reading the master, OpenSSL may hold decrypted bytes no
    socket event announces; every reply must still arrive whole (a
    regression found by fuzz_tls)."""
    srv = redis_factory(tls=pki)
    px = proxy_factory(srv, sharing=sharing, pool=tls_pool(pki),
                       globals_={"output-buffer-limit": "16kb"})
    value = os.urandom(100 * 1024)
    with px.raw(timeout=30) as c:
        assert c.call("SET", "slow", value) == "OK"
        n = 100
        c.send(b"".join(encode("GET", "slow") for _ in range(n)))
        for i in range(n):
            time.sleep(0.005)
            assert c.read_reply(timeout=20) == value, "reply %d" % i
