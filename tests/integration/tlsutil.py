"""
TLS helpers for the integration suite: a small PKI made with the openssl
command line, and the redis-server arguments of a TLS-only server.

    pki = make_pki(str(tmp_path / "pki"))
    srv = redis_factory(tls=pki)                  # conftest.RedisServer, TLS only
    srv.client().ping()                           # TLS, verified against pki.ca_crt
    args = tls_redis_args(pki, auth_clients=True) # to start one by hand

make_pki(dir) writes, with EC prime256v1 keys (fast to make):

  ca_crt, ca_key          the test CA ("rztest CA")
  server_crt, server_key  signed by it, subjectAltName IP:127.0.0.1 and
                          DNS:redis.test, good for serverAuth and clientAuth
                          (a TLS replica presents its server certificate to
                          its master)
  client_crt, client_key  signed by it, CN rztest-client, clientAuth: for
                          servers with tls-auth-clients yes
  other_ca_crt            another CA, trusted by nobody
  other_server_crt/_key   same names as server_crt, signed by other_ca:
                          "the CA did not sign it"
  expired_server_crt/_key same names, signed by ca_crt, valid only in
                          January 2020: "certificate has expired"

`openssl x509` in OpenSSL 3.0 cannot backdate a certificate, so the expired
one is issued with `openssl ca -startdate/-enddate` from a minimal CA
configuration written next to it (index.txt, serial).

Everything goes into the directory given; nothing else is touched.
"""

import os
import subprocess

# subjectAltName of every server certificate
SERVER_NAMES = "IP:127.0.0.1,DNS:redis.test"
SERVER_DNS = "redis.test"

_SERVER_EXT = """[v3]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = %s
""" % SERVER_NAMES

_CLIENT_EXT = """[v3]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""

# `openssl ca`'s smallest useful configuration: it keeps a database and a
# serial file, and takes the validity dates from the command line.
_CA_CONF = """[ca]
default_ca = rztest

[rztest]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/issued
certificate = {ca_crt}
private_key = {ca_key}
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none

[any]
commonName = supplied

""" + _SERVER_EXT


class Pki:
    """Paths of the files make_pki() wrote (attributes named in the module doc)."""

    def __init__(self, d):
        self.dir = d
        p = lambda name: os.path.join(d, name)  # noqa: E731
        self.ca_crt, self.ca_key = p("ca.crt"), p("ca.key")
        self.server_crt, self.server_key = p("server.crt"), p("server.key")
        self.client_crt, self.client_key = p("client.crt"), p("client.key")
        self.other_ca_crt, self.other_ca_key = p("other-ca.crt"), p("other-ca.key")
        self.other_server_crt, self.other_server_key = p("other-server.crt"), p("other-server.key")
        self.expired_server_crt, self.expired_server_key = p("expired-server.crt"), p("expired-server.key")

    def __repr__(self):
        return "Pki(%r)" % self.dir


def _openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed (%d):\n%s%s" % (" ".join(args), p.returncode,
                                                               p.stdout, p.stderr))
    return p.stdout


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def _ec_key_and_csr(d, key, csr, cn):
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=%s" % cn, cwd=d)
    os.chmod(os.path.join(d, key), 0o600)


def _make_ca(d, crt, key, cn):
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", crt, "-days", "3650", "-subj", "/CN=%s" % cn,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    os.chmod(os.path.join(d, key), 0o600)


def _sign(d, csr, crt, ca_crt, ca_key, ext):
    extfile = _write(os.path.join(d, crt + ".ext"), ext)
    _openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-set_serial",
             str(int.from_bytes(os.urandom(8), "big")), "-days", "825", "-sha256",
             "-extfile", extfile, "-extensions", "v3", "-out", crt, cwd=d)


def _sign_expired(d, csr, crt):
    """Signed by the test CA, valid only in January 2020."""
    os.makedirs(os.path.join(d, "issued"), exist_ok=True)
    _write(os.path.join(d, "index.txt"), "")
    _write(os.path.join(d, "serial"), "1000\n")
    conf = _write(os.path.join(d, "ca.cnf"),
                  _CA_CONF.format(dir=d, ca_crt=os.path.join(d, "ca.crt"),
                                  ca_key=os.path.join(d, "ca.key")))
    _openssl("ca", "-config", conf, "-batch", "-notext", "-in", csr, "-out", crt,
             "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
             "-extensions", "v3", cwd=d)


def make_pki(d):
    """Write the test PKI into directory d (created if missing); returns a Pki."""
    d = os.path.abspath(d)
    os.makedirs(d, exist_ok=True)
    pki = Pki(d)
    _make_ca(d, "ca.crt", "ca.key", "rztest CA")
    _make_ca(d, "other-ca.crt", "other-ca.key", "rztest other CA")
    _ec_key_and_csr(d, "server.key", "server.csr", SERVER_DNS)
    _sign(d, "server.csr", "server.crt", "ca.crt", "ca.key", _SERVER_EXT)
    _ec_key_and_csr(d, "client.key", "client.csr", "rztest-client")
    _sign(d, "client.csr", "client.crt", "ca.crt", "ca.key", _CLIENT_EXT)
    _ec_key_and_csr(d, "other-server.key", "other-server.csr", SERVER_DNS)
    _sign(d, "other-server.csr", "other-server.crt", "other-ca.crt", "other-ca.key", _SERVER_EXT)
    _ec_key_and_csr(d, "expired-server.key", "expired-server.csr", SERVER_DNS)
    _sign_expired(d, "expired-server.csr", "expired-server.crt")
    return pki


def tls_redis_args(pki, auth_clients=False, cert=None, key=None):
    """redis-server arguments for TLS with pki (the port is the caller's:
    `--port 0 --tls-port P` for a TLS-only server). auth_clients: clients
    must present a certificate signed by pki.ca_crt. cert/key: another
    server certificate (pki.other_server_crt, pki.expired_server_crt...);
    default pki.server_crt. Replication uses TLS too, so a replica of a
    TLS master needs these arguments and --replicaof."""
    return ["--tls-cert-file", cert or pki.server_crt, "--tls-key-file", key or pki.server_key,
            "--tls-ca-cert-file", pki.ca_crt,
            "--tls-auth-clients", "yes" if auth_clients else "no",
            "--tls-replication", "yes"]


def tls_client_kwargs(pki, client_cert=True):
    """redis.Redis() keyword arguments for a TLS connection verified
    against pki.ca_crt (python3-redis 4.3), with the client certificate
    unless client_cert is False."""
    kw = {"ssl": True, "ssl_ca_certs": pki.ca_crt, "ssl_cert_reqs": "required"}
    if client_cert:
        kw.update(ssl_certfile=pki.client_crt, ssl_keyfile=pki.client_key)
    return kw
