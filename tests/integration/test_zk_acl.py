"""The master znode's ACL (issue 15): whoever may change the znode chooses
where the pool's traffic goes. rzproxy reads the ACL after every read of the
data and warns when world:anyone has WRITE or ADMIN: one log line per
change of verdict, /healthz (still 200), /metrics, /info, PROXY INFO. It
never gates for it.

Real ZooKeeper, kazoo as the director: its default ACL is OPEN_ACL_UNSAFE
(world:anyone:cdrwa), what an unconfigured director creates."""

import json
import time

import pytest

from conftest import LOCALHOST, free_port, wait_for
from zkutil import zset, zdelete, zstat, plain, hp, pool_info, wait_master, fmt_info
from test_admin import get, parse_prometheus, metric

pytestmark = pytest.mark.proxy_only

DIRECTOR = ("director", "dirpw")         # writes the znode
READER = ("rzproxy", "readpw")           # what the proxies log in as: READ only
OPEN_WARNING = "is writable by world:anyone"


def acl_proxy(zk_proxy_factory, zk_server, znode, creds=None):
    """A proxy on znode with an admin listener (and digest credentials)."""
    admin = free_port()
    g = {"admin-listen": "%s:%d" % (LOCALHOST, admin)}
    if creds:
        g["zk-auth-digest"] = "%s:%s" % creds
    return zk_proxy_factory(zk_server, znode, globals_=g), admin


def world_writable(admin):
    samples = parse_prometheus(get(admin, "/metrics")[2])
    return metric(samples, "rzproxy_pool_znode_world_writable", pool="main")


def wait_verdict(px, admin, want):
    try:
        wait_for(lambda: world_writable(admin) == want, timeout=5,
                 what="rzproxy_pool_znode_world_writable %d" % want)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, px.log_tail(20))) from None


def settled(px, kz, path):
    """Wait until the proxy applied the znode's current version, then for
    the ACL read behind it (no observable end: a short pause)."""
    version = str(zstat(kz, path).version)
    wait_for(lambda: pool_info(px).get("znode_version") == version, timeout=5,
             what="znode version %s applied" % version)
    time.sleep(0.3)


def log_lines(px, text):
    return [l for l in open(px.logpath, errors="replace").read().splitlines() if text in l]


def digest(creds, **perms):
    from kazoo.security import make_digest_acl
    return make_digest_acl(creds[0], creds[1], **perms)


def test_open_acl_warns_once(zk_server, kz, zk_proxy_factory, two, znode_path):
    """kazoo's default ACL: one warning line naming the pool, the znode, the
    entry and the fix; the gauge, /info and PROXY INFO say 1; /healthz stays
    200 with the warning. Rewrites (same verdict) log nothing more, and the
    pool forwards as before."""
    from kazoo.security import OPEN_ACL_UNSAFE
    a, b = two
    zset(kz, znode_path, plain(hp(a)))
    assert kz.get_acls(znode_path)[0] == list(OPEN_ACL_UNSAFE)
    px, admin = acl_proxy(zk_proxy_factory, zk_server, znode_path)
    wait_master(px, hp(a))
    wait_verdict(px, admin, 1)
    assert get(admin, "/healthz") == (200, "text/plain; charset=utf-8",
                                      "pool main READY (warning: znode %s is writable by "
                                      "world:anyone)\n" % znode_path)
    assert json.loads(get(admin, "/info")[2])["pools"][0]["znode_world_writable"] == 1
    assert pool_info(px).get("znode_world_writable") == "1", fmt_info(pool_info(px))
    for target in (b, b, a):
        zset(kz, znode_path, plain(hp(target)))
        wait_master(px, hp(target))
    settled(px, kz, znode_path)
    with px.raw() as c:
        assert c.call("SET", "k", "v") == "OK"
    assert a.client().get("k") == b"v"
    lines = log_lines(px, OPEN_WARNING)
    assert len(lines) == 1, "one warning for one verdict, %d lines:\n%s" % (len(lines), "\n".join(lines))
    line = lines[0]
    for want in (" warning ", "[main]", "znode %s is writable" % znode_path, "world:anyone:cdrwa",
                 "setAcl %s digest:" % znode_path):
        assert want in line, (want, line)
    assert world_writable(admin) == 1


@pytest.mark.parametrize("setup", ["creator-only", "per-identity"])
def test_closed_acl_no_warning(zk_server, kz_factory, zk_proxy_factory, two, znode_path, setup):
    """creator-only: the director and the proxies share one digest identity
    (what rzproxy-ctl creates with zk-auth-digest); per-identity: the
    director may do everything, the proxies only read (the README's
    advice; ZooKeeper then shows them the digest ids redacted). Either way:
    gauge 0, /healthz without a warning, no warning in the log."""
    from kazoo.security import CREATOR_ALL_ACL
    a, _ = two
    owner = kz_factory(zk_server.hostport, auth_data=[("digest", "%s:%s" % DIRECTOR)])
    zdelete(owner, znode_path)
    if setup == "creator-only":
        acl, creds = CREATOR_ALL_ACL, DIRECTOR
    else:
        acl, creds = [digest(DIRECTOR, all=True), digest(READER, read=True)], READER
    zset(owner, znode_path, plain(hp(a)), acl=acl)
    px, admin = acl_proxy(zk_proxy_factory, zk_server, znode_path, creds=creds)
    wait_master(px, hp(a))
    wait_verdict(px, admin, 0)
    assert get(admin, "/healthz") == (200, "text/plain; charset=utf-8", "pool main READY\n")
    assert pool_info(px).get("znode_world_writable") == "0"
    assert json.loads(get(admin, "/info")[2])["pools"][0]["znode_world_writable"] == 0
    settled(px, owner, znode_path)
    assert not log_lines(px, "world:anyone"), px.log_tail(20)
    assert not log_lines(px, " warning "), px.log_tail(20)


def test_acl_change_flips_verdict(zk_server, kz_factory, zk_proxy_factory, two, znode_path):
    """The verdict follows the ACL, re-read with the data. A bare setAcl
    fires no watch (ZooKeeper has no ACL watch): the verdict changes at the
    next write of the data (or re-read), not before. Each change of verdict
    is one line: a warning when the znode opens (ADMIN alone counts: it
    grants WRITE), a notice when it closes."""
    a, b = two
    owner = kz_factory(zk_server.hostport, auth_data=[("digest", "%s:%s" % DIRECTOR)])
    zdelete(owner, znode_path)
    zset(owner, znode_path, plain(hp(a)))             # open: kazoo's default
    px, admin = acl_proxy(zk_proxy_factory, zk_server, znode_path, creds=READER)
    wait_master(px, hp(a))
    wait_verdict(px, admin, 1)

    director, reader = digest(DIRECTOR, all=True), digest(READER, read=True)
    steps = [([director, reader], 0, b),
             ([director, reader, _world(read=True, admin=True)], 1, a),
             ([director, reader, _world(read=True)], 0, b)]
    for acl, want, target in steps:
        owner.set_acls(znode_path, acl)
        time.sleep(0.5)
        assert world_writable(admin) == 1 - want, "verdict changed without a read of the data"
        zset(owner, znode_path, plain(hp(target)))
        wait_master(px, hp(target))
        wait_verdict(px, admin, want)
        healthz = get(admin, "/healthz")
        assert healthz[0] == 200 and (OPEN_WARNING in healthz[2]) == bool(want), healthz
    settled(px, owner, znode_path)
    opened = log_lines(px, OPEN_WARNING)
    assert len(opened) == 2, "\n".join(opened)
    assert "world:anyone:cdrwa" in opened[0] and "world:anyone:ra" in opened[1], opened
    closed = log_lines(px, "znode %s is no longer writable by world:anyone" % znode_path)
    assert len(closed) == 2 and all(" notice " in l and "[main]" in l for l in closed), closed


def _world(**perms):
    from kazoo.security import make_acl
    return make_acl("world", "anyone", **perms)
