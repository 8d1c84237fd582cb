"""rzproxy-ctl against a real ZooKeeper and real redis-servers (replicas with
replica-read-only yes): `show`, `set-master` (formats, version check,
create), `failover` (the fenced choreography of DESIGN section 1: success,
undo on timeout, NEW stalled or not a replica, old master dead, ACLs) and
the reason the choreography exists: the seed's order loses acknowledged
writes, the fenced order does not.

One standalone ZooKeeper serves the module (zk_server); every test has its
own znode path and its own redis-servers, and checks the outcome on the
servers and in ZooKeeper directly, never through the ctl's own output alone.
"""

import json
import os
import signal
import threading
import time

import pytest
import redis

from conftest import LOCALHOST, parse_show, wait_for
from zkutil import ctl_steps as steps, plain, rf_json, zdelete, zset, zstat

# every master starts its replicas' sync at once (the default waits 5 s)
FAST_SYNC = ["--repl-diskless-sync-delay", "0", "--replica-read-only", "yes"]
TIMEOUT_S = 30                      # bound for any single ctl run


def hp(srv):
    return "%s:%d" % (LOCALHOST, srv.port)


def repl(srv):
    with srv.client(socket_timeout=5) as c:
        return c.info("replication")


def wait_replica_of(srv, master, timeout=15.0):
    """srv is a replica of master with the link up."""
    def ok():
        i = repl(srv)
        return (i.get("role") == "slave" and int(i.get("master_port", 0)) == master.port
                and i.get("master_link_status") == "up") and i
    return wait_for(ok, timeout=timeout, interval=0.05,
                    what="%s replicating from %s (last: %r)" % (hp(srv), hp(master), repl(srv)))


def wait_synced(replica, master, timeout=15.0):
    """replica has everything master has sent so far."""
    def ok():
        off = repl(master)["master_repl_offset"]
        i = repl(replica)
        return i.get("master_link_status") == "up" and i.get("slave_repl_offset", -1) >= off
    wait_for(ok, timeout=timeout, interval=0.05, what="%s synced with %s" % (hp(replica), hp(master)))


def role(srv):
    return repl(srv)["role"]


def write_keys(srv, n, prefix="k", size=16):
    val = b"v" * size
    with srv.client() as c:
        p = c.pipeline(transaction=False)
        for i in range(n):
            p.set("%s:%d" % (prefix, i), val)
        acked = sum(1 for r in p.execute() if r is True)
    assert acked == n, "only %d of %d writes acknowledged" % (acked, n)


def count_keys(srv, n, prefix="k"):
    with srv.client() as c:
        p = c.pipeline(transaction=False)
        for i in range(n):
            p.exists("%s:%d" % (prefix, i))
        return sum(p.execute())


def accepts_write_now(srv, key="probe"):
    """A write on srv answers within a second (not paused) and succeeds (a master)."""
    t0 = time.monotonic()
    with srv.client(socket_timeout=3) as c:
        assert c.set(key, "1") is True
    took = time.monotonic() - t0
    assert took < 1.0, "write on %s took %.2fs: still paused?" % (hp(srv), took)



def acl_of(kz, path):
    return kz.get_acls(path)[0]


@pytest.fixture
def ctl(zk_server, znode_path, ctl_factory, kz):
    """rzproxy-ctl whose conf names this test's znode; the parent exists."""
    kz.ensure_path(znode_path.rsplit("/", 1)[0])
    return ctl_factory(zk_server.hostport, znode_path)


@pytest.fixture
def trio(redis_factory):
    """Master M with replicas R1 and R2, links up."""
    m = redis_factory(extra_args=FAST_SYNC)
    r1 = redis_factory(extra_args=FAST_SYNC + ["--replicaof", LOCALHOST, str(m.port)])
    r2 = redis_factory(extra_args=FAST_SYNC + ["--replicaof", LOCALHOST, str(m.port)])
    wait_replica_of(r1, m)
    wait_replica_of(r2, m)
    return m, r1, r2


# ---------------------------------------------------------------- show

def test_show_plain(ctl, kz, znode_path):
    st = zset(kz, znode_path, plain("10.0.0.7:6379"))
    res = ctl.run("show")
    assert res.rc == 0, res
    f = parse_show(res.out)
    assert f["pool"] == "main" and f["path"] == znode_path, res
    assert f["znode"] == "present" and f["data"] == "10.0.0.7:6379", res
    assert f["format"] == "plain" and f["master"] == "10.0.0.7:6379", res
    assert int(f["version"]) == st.version and int(f["mzxid"], 16) == st.mzxid, (res, st)
    assert 0 <= int(f["age"]) <= 60, res
    # kazoo's default ACL: anyone may write it (the proxy warns about it too)
    assert f["acl"] == "world:anyone:cdrwa" and f["world_writable"] == "yes", res


def test_show_acl_locked_down(ctl, kz, znode_path):
    """Only READ for world: not writable. Without ADMIN the server shows
    digest ids redacted (user:x)."""
    from kazoo.security import make_acl, make_digest_acl
    zset(kz, znode_path, plain("10.0.0.7:6379"))
    kz.set_acls(znode_path, [make_digest_acl("director", "dirpw", all=True),
                             make_acl("world", "anyone", read=True)])
    res = ctl.run("show")
    f = parse_show(res.out)
    assert res.rc == 0 and f["master"] == "10.0.0.7:6379", res
    assert f["acl"] == "digest:director:x:cdrwa,world:anyone:r" and f["world_writable"] == "no", res


def test_show_json_and_no_master(ctl, kz, znode_path):
    zset(kz, znode_path, rf_json("10.0.0.8:6380", slaves=["10.0.0.9:6380"]))
    res = ctl.run("show")
    f = parse_show(res.out)
    assert res.rc == 0 and f["format"] == "json" and f["master"] == "10.0.0.8:6380", res
    # data is escaped: the quotes of the document show as \"
    assert f["data"].startswith('{\\"master\\": \\"10.0.0.8:6380\\"'), res
    zset(kz, znode_path, rf_json(None))
    f = parse_show(ctl.run("show").out)
    assert f["master"] == "none: master is null" and f["format"] == "json", f
    zset(kz, znode_path, b"garbage\x01")
    f = parse_show(ctl.run("show").out)
    assert f["master"].startswith("none: not host:port") and f["data"] == "garbage\\x01", f


def test_show_missing(ctl, kz, znode_path):
    zdelete(kz, znode_path)
    res = ctl.run("show")
    assert res.rc == 0, res
    f = parse_show(res.out)
    assert f["znode"] == "missing" and f["master"] == "none: znode missing", res
    assert "data" not in f and "version" not in f, res


def test_show_without_conf_and_pool_choice(zk_server, kz, znode_path, ctl_factory):
    """--zookeeper and --znode need no conf; with several znode pools -p picks one."""
    zset(kz, znode_path, plain("10.0.0.1:1"))
    other = znode_path + "-other"
    zset(kz, other, plain("10.0.0.2:2"))
    bare = ctl_factory(None, None)
    res = bare.run("--zookeeper", zk_server.hostport, "--znode", znode_path, "show")
    assert res.rc == 0 and parse_show(res.out)["master"] == "10.0.0.1:1", res
    two = ctl_factory(zk_server.hostport, znode_path, extra_pools=[("other", {"znode": other})])
    res = two.run("show")
    assert res.rc == 1 and "several pools" in res.err and "main, other" in res.err, res
    res = two.run("-p", "other", "show")
    assert res.rc == 0 and parse_show(res.out)["master"] == "10.0.0.2:2", res
    res = two.run("-p", "nope", "show")
    assert res.rc == 1 and "no pool 'nope'" in res.err, res


def test_usage_errors(ctl):
    for args, needle in [((), "no command"), (("frobnicate",), "unknown command"),
                         (("set-master",), "exactly one"), (("set-master", "nohost"), "not HOST:PORT"),
                         (("set-master", "h:99999"), "not HOST:PORT"), (("failover",), "needs --to"),
                         (("show", "--to", "h:1"), "go with failover"),
                         (("failover", "--to", "h:1", "--timeout", "0"), "--timeout"),
                         (("show", "--bogus"), "unknown option")]:
        res = ctl.run(*args)
        assert res.rc == 2, (args, res)
        assert needle in res.err, (args, res)
    res = ctl.run("--help")
    assert res.rc == 0 and "LOSES ACKNOWLEDGED WRITES" in res.out, res


# ---------------------------------------------------------------- set-master

def test_set_master_plain(ctl, kz, znode_path):
    st = zset(kz, znode_path, plain("10.0.0.1:6379"))
    res = ctl.run("set-master", "10.0.0.2:6380")
    assert res.rc == 0, res
    data, st2 = kz.get(znode_path)
    assert data == b"10.0.0.2:6380", data
    assert st2.version == st.version + 1 and st2.czxid == st.czxid, (st, st2)


def test_set_master_json_keeps_keys(ctl, kz, znode_path):
    doc = {"master": "10.0.0.1:6379", "slaves": ["10.0.0.2:6379", "10.0.0.3:6379"],
           "unavailable": ["10.0.0.4:6379"], "manager": {"id": 7}}
    zset(kz, znode_path, json.dumps(doc))
    res = ctl.run("set-master", "10.0.0.2:6379")
    assert res.rc == 0, res
    data, _ = kz.get(znode_path)
    got = json.loads(data)
    assert list(got) == ["master", "slaves", "unavailable", "manager"], got   # order kept
    assert got["master"] == "10.0.0.2:6379", got
    assert got["slaves"] == ["10.0.0.3:6379", "10.0.0.1:6379"], got
    assert got["unavailable"] == ["10.0.0.4:6379"] and got["manager"] == {"id": 7}, got


def test_set_master_expect_version(ctl, kz, znode_path):
    st = zset(kz, znode_path, plain("10.0.0.1:6379"))
    st = zset(kz, znode_path, plain("10.0.0.5:6379"))      # someone else wrote meanwhile
    res = ctl.run("set-master", "10.0.0.2:6379", "--expect-version", st.version - 1)
    assert res.rc == 1, res
    assert ("znode changed since it was read (version %d, expected %d): nothing written"
            % (st.version, st.version - 1)) in res.err, res
    data, st2 = kz.get(znode_path)
    assert data == b"10.0.0.5:6379" and st2.version == st.version, (data, st2)
    res = ctl.run("set-master", "10.0.0.2:6379", "--expect-version", st.version)
    assert res.rc == 0 and kz.get(znode_path)[0] == b"10.0.0.2:6379", res


def test_set_master_creates_missing(ctl, kz, znode_path, zk_server, ctl_factory):
    from kazoo.security import OPEN_ACL_UNSAFE
    zdelete(kz, znode_path)
    res = ctl.run("set-master", "10.0.0.2:6379")
    assert res.rc == 0 and "created" in res.out, res
    assert kz.get(znode_path)[0] == b"10.0.0.2:6379"
    assert acl_of(kz, znode_path) == OPEN_ACL_UNSAFE
    assert ("warning: %s was created writable by anyone (ACL world:anyone:cdrwa)" % znode_path) in res.err, res
    # znode-format json: a new document
    zdelete(kz, znode_path)
    js = ctl_factory(zk_server.hostport, znode_path, pool={"znode-format": "json"})
    assert js.run("set-master", "10.0.0.3:6379").rc == 0
    assert json.loads(kz.get(znode_path)[0]) == {"master": "10.0.0.3:6379", "slaves": [], "unavailable": []}
    # the parent must exist
    orphan = ctl_factory(zk_server.hostport, znode_path + "/no/such")
    res = orphan.run("set-master", "10.0.0.3:6379")
    assert res.rc == 1 and "parent" in res.err and "nothing written" in res.err, res
    assert zstat(kz, znode_path + "/no") is None


def test_set_master_digest_acl(zk_server, kz_factory, znode_path, ctl_factory):
    """With zk-auth-digest a created znode is the creator's only, and the
    ctl can rewrite it; without credentials it cannot even read it."""
    from kazoo.security import make_digest_acl
    owner = kz_factory(zk_server.hostport, auth_data=[("digest", "rzuser:s3cret")])
    owner.ensure_path(znode_path.rsplit("/", 1)[0])
    zdelete(owner, znode_path)
    ctl = ctl_factory(zk_server.hostport, znode_path, globals_={"zk-auth-digest": "rzuser:s3cret"})
    res = ctl.run("set-master", "10.0.0.2:6379")
    assert res.rc == 0 and "created" in res.out and "warning" not in res.err, res
    assert acl_of(owner, znode_path) == [make_digest_acl("rzuser", "s3cret", all=True)]
    assert ctl.run("set-master", "10.0.0.3:6379").rc == 0
    assert owner.get(znode_path)[0] == b"10.0.0.3:6379"
    anon = ctl_factory(zk_server.hostport, znode_path)
    res = anon.run("set-master", "10.0.0.4:6379")
    assert res.rc == 1 and "nothing written" in res.err, res
    assert owner.get(znode_path)[0] == b"10.0.0.3:6379"


# ---------------------------------------------------------------- failover

@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_failover(ctl, kz, znode_path, trio, fmt):
    """M -> R1: R1 is master with every key written before, M and R2 follow
    R1, the znode names R1 in its format with the same ACL, M refuses writes."""
    m, r1, r2 = trio
    write_keys(m, 500)
    before = (plain(hp(m)) if fmt == "plain"
              else json.dumps({"master": hp(m), "slaves": [hp(r1), hp(r2)], "unavailable": [], "x": 1}))
    zset(kz, znode_path, before)
    acl = acl_of(kz, znode_path)
    res = ctl.run("failover", "--to", hp(r1), timeout=TIMEOUT_S)
    assert res.rc == 0, res
    assert steps(res.out) == ["0/6", "0/6", "1/6", "2/6", "3/6", "4/6", "5/6", "5/6", "5/6", "6/6"], res
    assert "WARNING" not in res.text, res
    assert role(r1) == "master"
    assert count_keys(r1, 500) == 500
    wait_replica_of(m, r1)
    wait_replica_of(r2, r1)
    data, _ = kz.get(znode_path)
    if fmt == "plain":
        assert data == plain(hp(r1)), data
    else:
        got = json.loads(data)
        assert got == {"master": hp(r1), "slaves": [hp(r2), hp(m)], "unavailable": [], "x": 1}, got
    assert acl_of(kz, znode_path) == acl
    with m.client() as c:
        with pytest.raises(redis.exceptions.ReadOnlyError):
            c.set("after", "1")
    # new writes on R1 reach the demoted M
    write_keys(r1, 10, prefix="new")
    wait_synced(m, r1)
    assert count_keys(m, 10, prefix="new") == 10


def test_failover_acl_and_digest(zk_server, kz_factory, znode_path, ctl_factory, redis_factory):
    """A digest-protected znode is re-created with its own ACL."""
    from kazoo.security import make_digest_acl
    owner = kz_factory(zk_server.hostport, auth_data=[("digest", "rzuser:s3cret")])
    acl = [make_digest_acl("rzuser", "s3cret", all=True)]
    m = redis_factory(extra_args=FAST_SYNC)
    r = redis_factory(extra_args=FAST_SYNC + ["--replicaof", LOCALHOST, str(m.port)])
    wait_replica_of(r, m)
    zset(owner, znode_path, plain(hp(m)), acl=acl)
    ctl = ctl_factory(zk_server.hostport, znode_path, globals_={"zk-auth-digest": "rzuser:s3cret"})
    res = ctl.run("failover", "--to", hp(r), timeout=TIMEOUT_S)
    assert res.rc == 0, res
    assert owner.get(znode_path)[0] == plain(hp(r))
    assert acl_of(owner, znode_path) == acl
    wait_replica_of(m, r)


def assert_nothing_changed(kz, znode_path, data, st, m, new, new_role):
    """The znode is the same node (never deleted), M takes writes, NEW as it was."""
    d2, st2 = kz.get(znode_path)
    assert d2 == data and (st2.czxid, st2.version) == (st.czxid, st.version), (st, st2)
    assert role(m) == "master"
    accepts_write_now(m)
    assert role(new) == new_role


def assert_restored(kz, znode_path, data, acl, m, new, new_master_port):
    """The znode holds the original bytes and ACL, M is an unpaused master,
    NEW still replicates from where it did."""
    d2, _ = kz.get(znode_path)
    assert d2 == data, (d2, data)
    assert acl_of(kz, znode_path) == acl
    assert role(m) == "master"
    accepts_write_now(m)
    i = repl(new)
    assert i["role"] == "slave" and int(i["master_port"]) == new_master_port, i


def test_failover_timeout_undone(ctl, kz, znode_path, redis_factory):
    """NEW never reaches M's offset (it replicates from another server Z):
    exit 1 after --timeout, znode restored byte for byte with its ACL, M
    unpaused and still master, NEW's role unchanged."""
    from kazoo.security import make_acl
    m = redis_factory(extra_args=FAST_SYNC)
    z = redis_factory(extra_args=FAST_SYNC)
    new = redis_factory(extra_args=FAST_SYNC + ["--replicaof", LOCALHOST, str(z.port)])
    wait_replica_of(new, z)
    write_keys(m, 50)
    data = json.dumps({"master": hp(m), "slaves": [], "unavailable": [], "note": "keep me"}).encode() + b"\n"
    # not the default ACL (no admin bit), so a restore with the default would show
    acl = [make_acl("world", "anyone", read=True, write=True, delete=True, create=True)]
    zset(kz, znode_path, data, acl=acl)
    t0 = time.monotonic()
    res = ctl.run("failover", "--to", hp(new), "--timeout", "700", timeout=TIMEOUT_S)
    took = time.monotonic() - t0
    assert res.rc == 1, res
    assert "did not reach the old master's offset within 700 ms" in res.text, res
    assert "replication id differs" in res.text, res
    assert "undo: unpaused writes on %s" % hp(m) in res.out, res
    assert "undo: re-created znode" in res.out, res
    assert "state: %s is still the master (it takes writes)" % hp(m) in res.err, res
    assert took >= 0.7, "gave up after %.2fs, before --timeout" % took
    assert_restored(kz, znode_path, data, acl, m, new, z.port)


def test_failover_new_stalled(ctl, kz, znode_path, trio):
    """NEW is stopped (SIGSTOP): the ctl finds out before changing anything."""
    m, r1, _ = trio
    st = zset(kz, znode_path, plain(hp(m)))
    os.kill(r1.pid, signal.SIGSTOP)
    try:
        res = ctl.run("failover", "--to", hp(r1), "--timeout", "500", timeout=TIMEOUT_S)
    finally:
        os.kill(r1.pid, signal.SIGCONT)
    assert res.rc == 1, res
    assert "does not answer" in res.err and "nothing changed" in res.err, res
    assert_nothing_changed(kz, znode_path, plain(hp(m)), st, m, r1, "slave")


def test_failover_new_not_a_replica(ctl, kz, znode_path, redis_factory):
    """NEW is a master of its own: it cannot have M's writes; refused at once."""
    m = redis_factory(extra_args=FAST_SYNC)
    new = redis_factory(extra_args=FAST_SYNC)
    st = zset(kz, znode_path, plain(hp(m)))
    res = ctl.run("failover", "--to", hp(new), timeout=TIMEOUT_S)
    assert res.rc == 1 and "is not a replica" in res.err and "nothing changed" in res.err, res
    assert_nothing_changed(kz, znode_path, plain(hp(m)), st, m, new, "master")


def test_failover_refusals(ctl, kz, znode_path, trio):
    """Nothing changes when the old master is unknown, --from disagrees with
    the znode, or NEW already is the master."""
    m, r1, r2 = trio
    zdelete(kz, znode_path)
    res = ctl.run("failover", "--to", hp(r1))
    assert res.rc == 1 and "--from" in res.err and "nothing changed" in res.err, res
    assert zstat(kz, znode_path) is None
    st = zset(kz, znode_path, plain(hp(m)))
    res = ctl.run("failover", "--to", hp(r1), "--from", hp(r2))
    assert res.rc == 1 and "--from says" in res.err, res
    res = ctl.run("failover", "--to", hp(m))
    assert res.rc == 1 and "already the master" in res.err, res
    assert_nothing_changed(kz, znode_path, plain(hp(m)), st, m, r1, "slave")


def test_failover_old_master_dead(ctl, kz, znode_path, trio):
    """M is killed: R1 is promoted anyway, R2 follows it (from the JSON
    "slaves" list), and the ctl warns that unreplicated writes may be lost
    and that M, if it comes back, is still a master."""
    m, r1, r2 = trio
    write_keys(m, 100)
    wait_synced(r1, m)
    zset(kz, znode_path, rf_json(hp(m), slaves=[hp(r1), hp(r2)]))
    m.kill()
    res = ctl.run("failover", "--to", hp(r1), timeout=TIMEOUT_S)
    assert res.rc == 0, res
    assert "WARNING: old master %s is unreachable" % hp(m) in res.out, res
    assert "may be lost" in res.out and "WAS NOT DEMOTED" in res.out, res
    assert "warning(s):" in res.out, res
    assert role(r1) == "master" and count_keys(r1, 100) == 100
    wait_replica_of(r2, r1)
    got = json.loads(kz.get(znode_path)[0])
    assert got["master"] == hp(r1) and sorted(got["slaves"]) == sorted([hp(r2), hp(m)]), got


# ---------------------------------------------------------------- writers during the failover

class Writer(threading.Thread):
    """SET w:<i> in a loop on one connection, remembering which writes were
    acknowledged. Stops on stop(), after max_s seconds, or (stop_on_error)
    at the first error, which it keeps."""

    def __init__(self, port, stop_on_error, max_s=20.0):
        super().__init__(daemon=True)
        self.port, self.stop_on_error, self.max_s = port, stop_on_error, max_s
        self.acked, self.refused, self.error = [], [], None
        self.halt = threading.Event()

    def run(self):
        c = redis.Redis(host=LOCALHOST, port=self.port, socket_timeout=15)
        deadline = time.monotonic() + self.max_s
        i = 0
        try:
            while not self.halt.is_set() and time.monotonic() < deadline:
                key = "w:%d" % i
                i += 1
                try:
                    c.set(key, "1")
                    self.acked.append(key)
                except redis.exceptions.ResponseError as e:
                    self.refused.append((key, e))
                    if self.stop_on_error:
                        self.error = e
                        return
                    time.sleep(0.01)
        except Exception as e:          # connection errors end the writer
            self.error = e
        finally:
            c.close()

    def stop(self):
        self.halt.set()
        self.join(timeout=20)
        assert not self.is_alive(), "writer did not stop"


def test_failover_under_direct_writer(ctl, kz, znode_path, trio):
    """A client writing to M in a tight loop: its write in flight at the
    failover is held by the pause and then refused with -READONLY (it never
    ran); every write M acknowledged is on R1."""
    m, r1, _ = trio
    zset(kz, znode_path, plain(hp(m)))
    w = Writer(m.port, stop_on_error=True)
    w.start()
    try:
        wait_for(lambda: len(w.acked) > 200, timeout=10, what="writer under way")
        res = ctl.run("failover", "--to", hp(r1), timeout=TIMEOUT_S)
        w.join(timeout=10)
    finally:
        w.stop()
    assert res.rc == 0, res
    assert isinstance(w.error, redis.exceptions.ReadOnlyError), (w.error, res)
    key = w.refused[-1][0]
    with r1.client() as c:
        missing = [k for k in w.acked if not c.exists(k)]
        assert missing == [], "%d acknowledged writes missing on the new master, e.g. %s" % (
            len(missing), missing[:5])
        assert not c.exists(key), "the refused write %s ran anyway" % key


@pytest.mark.proxy_only
def test_failover_through_rzproxy(ctl, kz, znode_path, trio, zk_server, zk_proxy_factory):
    """A client writing through rzproxy: the proxy gates while the znode is
    gone, switches to R1 when it comes back; every acknowledged write is on
    R1, and writes go on succeeding there."""
    m, r1, _ = trio
    zset(kz, znode_path, plain(hp(m)))
    px = zk_proxy_factory(zk_server, znode_path, pool={"block-timeout": "10000"})
    w = Writer(px.port, stop_on_error=False)
    w.start()
    try:
        wait_for(lambda: len(w.acked) > 200, timeout=10, what="writer under way through rzproxy")
        res = ctl.run("failover", "--to", hp(r1), timeout=TIMEOUT_S)
        n = len(w.acked)
        wait_for(lambda: len(w.acked) > n + 200, timeout=10, what="writes continuing after the failover")
    finally:
        w.stop()
    assert res.rc == 0, res
    assert w.error is None, w.error
    refused = set(k for k, _ in w.refused)
    # a write paused on M and refused after its demotion, or held too long
    assert all(isinstance(e, redis.exceptions.ReadOnlyError) or str(e).startswith("TRYAGAIN")
               for _, e in w.refused), w.refused
    with r1.client() as c:
        missing = [k for k in w.acked if not c.exists(k)]
        assert missing == [], "%d acknowledged writes missing on the new master, e.g. %s" % (
            len(missing), missing[:5])
        ran = [k for k in refused if c.exists(k)]
        assert ran == [], "refused writes that ran anyway: %s" % ran[:5]
    print("through rzproxy: %d acknowledged, %d refused: %s" % (len(w.acked), len(refused), w.refused[:3]))


# ---------------------------------------------------------------- why the order matters

@pytest.mark.parametrize("order", ["seed", "fenced"])
def test_order_and_acknowledged_writes(ctl, kz, znode_path, redis_factory, order):
    """M has acknowledged 2000 writes (10 KB each) that its replica R, stopped
    (SIGSTOP), has not read: the tail is still in M's output buffer. The
    failover runs in the background and R resumes 0.3 s later.

    seed order (no pause, no offset wait): R is promoted before it has read
    M's stream, M then resyncs from R and discards what R never got: keys
    acknowledged by M are missing on the new master. Fenced order: R first
    reaches M's offset, so all 2000 keys are on the new master.

    Observed on redis 7.0.15: SLAVEOF on M does not drop its replica link
    (the 16 MB output buffer stays queued); the loss comes from R dropping
    its master link at SLAVEOF NO ONE before reading it, and from M's
    partial resync being refused (R's offset is behind), which makes M
    flush and load R's data."""
    n = 2000
    m = redis_factory(extra_args=FAST_SYNC)
    r = redis_factory(extra_args=FAST_SYNC + ["--replicaof", LOCALHOST, str(m.port)])
    wait_replica_of(r, m)
    zset(kz, znode_path, plain(hp(m)))
    args = ["failover", "--to", hp(r), "--timeout", "10000"] + (["--seed-order"] if order == "seed" else [])
    os.kill(r.pid, signal.SIGSTOP)
    try:
        write_keys(m, n, size=10240)
        lag = repl(m)["master_repl_offset"] - repl_offset_seen(m)
        assert lag > 8 << 20, "replica lag only %d bytes: the setup did not stall it" % lag
        proc = ctl.start(*args)
        if order == "seed":
            proc.wait_line("now replicates from", timeout=10)    # M demoted while R is stopped
        time.sleep(0.3)
    finally:
        os.kill(r.pid, signal.SIGCONT)
    res = proc.finish(timeout=TIMEOUT_S)
    assert res.rc == 0, res
    assert role(r) == "master"
    wait_replica_of(m, r, timeout=20)
    wait_synced(m, r, timeout=20)
    assert kz.get(znode_path)[0] == plain(hp(r))
    on_new = count_keys(r, n)
    print(res)
    print("%s order: %d of %d acknowledged keys on the new master" % (order, on_new, n))
    if order == "seed":
        assert on_new < n, "the seed order lost nothing this time:\n%r" % res
    else:
        assert on_new == n, "the fenced order lost %d acknowledged keys:\n%r" % (n - on_new, res)
    assert count_keys(m, n) == on_new          # M now mirrors R: it discarded its tail too


def repl_offset_seen(master):
    """The offset the master's (only) replica has acknowledged."""
    return repl(master)["slave0"]["offset"]
