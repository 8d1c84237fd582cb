"""Session groups (issue 13): a shared backend connection carries one
session state (db, RESP version, ACL user); SELECT, AUTH and HELLO move a
client to the shared connections of its new state, the server judging every
change; CLIENT SETNAME, GETNAME and SETINFO are answered by the proxy;
PROXY CLIENTS shows who is connected and how."""


import pytest

from conftest import ADMIN_NAME, Error, Map, Push, encode, wait_for

WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


def backend_conns(srv):
    with srv.client() as adm:
        return [c for c in adm.client_list() if c.get("name") != ADMIN_NAME]


def acl(srv, *rules):
    with srv.client() as adm:
        adm.execute_command("ACL", "SETUSER", *rules)


def proxy_clients(c):
    """PROXY CLIENTS as {id: {field: value}}."""
    out = {}
    for line in c.call("PROXY", "CLIENTS").decode().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split())
        out[f["id"]] = f
    return out


def test_databases_never_mix(proxy, r):
    """Clients in db 0 and db 3 share the master; neither sees the other's
    keys, in pipelines sent side by side."""
    with proxy.raw() as a, proxy.raw() as b:
        assert b.call("SELECT", "3") == "OK"
        for i in range(50):
            a.send(encode("SET", "k%d" % i, "a%d" % i))
            b.send(encode("SET", "k%d" % i, "b%d" % i))
        a.send(b"".join(encode("GET", "k%d" % i) for i in range(50)))
        b.send(b"".join(encode("GET", "k%d" % i) for i in range(50)))
        assert [a.read_reply() for _ in range(50)] == ["OK"] * 50
        assert [b.read_reply() for _ in range(50)] == ["OK"] * 50
        assert [a.read_reply() for _ in range(50)] == [b"a%d" % i for i in range(50)]
        assert [b.read_reply() for _ in range(50)] == [b"b%d" % i for i in range(50)]
    assert r.get("k7") == b"a7"
    r.execute_command("SELECT", 3)
    assert r.get("k7") == b"b7"
    r.flushdb()
    r.execute_command("SELECT", 0)


def test_select_pipelined_and_refused(proxy, r):
    """SELECTs inside one pipeline take effect in order; SELECT 99 and a
    non-integer are refused with redis's words and the client stays in its
    database."""
    with proxy.raw() as c:
        c.send(encode("SET", "p", "0") + encode("SELECT", "1") + encode("SET", "p", "1")
               + encode("SELECT", "2") + encode("SET", "p", "2") + encode("GET", "p")
               + encode("SELECT", "99") + encode("GET", "p") + encode("SELECT", "x1")
               + encode("GET", "p") + encode("SELECT", "0") + encode("GET", "p"))
        got = [c.read_reply() for _ in range(12)]
    assert got == ["OK", "OK", "OK", "OK", "OK", b"2", "ERR DB index is out of range", b"2",
                   "ERR value is not an integer or out of range", b"2", "OK", b"0"], got
    for db in (1, 2):
        r.execute_command("SELECT", db)
        assert r.get("p") == b"%d" % db
        r.flushdb()
    r.execute_command("SELECT", 0)


def test_auth_always_judged_by_the_server(proxy_factory, redis_factory, sharing):
    """A wrong password is refused after a right one for the same user, by
    another client too, and never changes who a client is; a right one
    moves it."""
    srv = redis_factory()
    acl(srv, "alice", "on", ">pw1", "~*", "&*", "+@all")
    px = proxy_factory(srv, sharing=sharing)
    with px.raw() as c, px.raw() as d:
        assert c.call("AUTH", "alice", "wrong") == WRONGPASS
        assert c.call("ACL", "WHOAMI") == b"default"
        assert c.call("AUTH", "alice", "pw1") == "OK"
        assert c.call("ACL", "WHOAMI") == b"alice"
        assert c.call("AUTH", "alice", "wrong") == WRONGPASS
        assert c.call("ACL", "WHOAMI") == b"alice"
        assert d.call("AUTH", "alice", "wrong") == WRONGPASS
        assert d.call("ACL", "WHOAMI") == b"default"
        assert d.call("AUTH", "alice", "pw1") == "OK"
        assert d.call("ACL", "WHOAMI") == b"alice"
        # the password is rotated on the server: it judges, not the proxy's memory
        acl(srv, "alice", "resetpass", ">pw2")
        e = px.raw()
        assert e.call("AUTH", "alice", "pw1") == WRONGPASS
        assert e.call("AUTH", "alice", "pw2") == "OK"
        assert e.call("ACL", "WHOAMI") == b"alice"
        e.close()
        assert c.call("AUTH", "wrong-arity", "a", "b") == "ERR syntax error"
        assert c.call("ACL", "WHOAMI") == b"alice"
    with srv.client() as adm:
        fails = [e for e in adm.execute_command("ACL", "LOG") if b"alice" in e]
    assert fails, "the wrong passwords never reached the server"


def test_noperm_enforced_on_a_shared_group(proxy_factory, redis_factory):
    """A user without the right to write keeps getting NOPERM on its shared
    connections, while a default client writes beside it."""
    srv = redis_factory()
    acl(srv, "reader", "on", ">rpw", "~*", "+get", "+acl|whoami")
    px = proxy_factory(srv)
    with px.raw() as ro, px.raw() as rw:
        assert ro.call("AUTH", "reader", "rpw") == "OK"
        for i in range(20):
            rep = ro.call("SET", "np", i)
            assert isinstance(rep, Error) and rep.startswith("NOPERM"), rep
            assert rw.call("SET", "np", i) == "OK"
            assert ro.call("GET", "np") == b"%d" % i


@pytest.mark.proxy_only
def test_groups_share_few_connections(proxy_factory, redis_factory):
    """30 clients in three session states (db 0 RESP2; db 3; RESP3 as an ACL
    user) hold one group of shared connections per state, set up before
    their commands; PROXY CLIENTS shows each client's state and route."""
    srv = redis_factory()
    acl(srv, "app", "on", ">apppw", "~*", "&*", "+@all")
    px = proxy_factory(srv, pool={"backend-connections": "2"})
    conns = [px.raw() for _ in range(30)]
    try:
        for i, c in enumerate(conns):
            if i % 3 == 1:
                assert c.call("SELECT", "3") == "OK"
            elif i % 3 == 2:
                hello = c.call("HELLO", "3", "AUTH", "app", "apppw", "SETNAME", "n%d" % i)
                assert isinstance(hello, Map) and hello.todict()[b"proto"] == 3, hello
            c.call("CLIENT", "SETINFO", "LIB-NAME", "lib%d" % (i % 3))
            assert c.call("SET", "g:%d" % i, i) == "OK"
        for i, c in enumerate(conns):
            assert c.call("GET", "g:%d" % i) == b"%d" % i
        masters = backend_conns(srv)
        assert len(masters) <= 6, [(m["db"], m["user"], m["resp"]) for m in masters]
        states = sorted({(m["db"], m["user"], m["resp"]) for m in masters})
        assert states == [("0", "app", "3"), ("0", "default", "2"), ("3", "default", "2")], states
        info = proxy_clients(conns[0])
        assert len(info) == 30
        rows = sorted(info.values(), key=lambda f: int(f["id"]))
        for i, f in enumerate(rows):
            want = [("0", "2", "default", ""), ("3", "2", "default", ""),
                    ("0", "3", "app", "n%d" % i)][i % 3]
            assert (f["db"], f["resp"], f["user"], f["name"]) == want, f
            assert f["lib-name"] == "lib%d" % (i % 3) and f["route"].startswith("shared:g"), f
        assert len({f["route"] for f in rows}) == 3
    finally:
        for c in conns:
            c.close()
    with srv.client(db=3) as c3:
        assert c3.get("g:1") == b"1" and c3.get("g:0") is None


def test_resp3_and_resp2_clients_share_the_master(proxy, r):
    """RESP3 clients get RESP3 replies (maps, nulls, pushes) and RESP2
    clients RESP2, side by side."""
    r.hset("h", mapping={"a": "1"})
    with proxy.raw() as c3, proxy.raw() as c2, proxy.raw() as pub:
        hello = c3.call("HELLO", "3")
        assert isinstance(hello, Map) and hello.todict()[b"proto"] == 3
        for _ in range(20):
            c3.send(encode("HGETALL", "h") + encode("GET", "missing"))
            c2.send(encode("HGETALL", "h") + encode("GET", "missing"))
            m = c3.read_reply()
            assert isinstance(m, Map) and m.todict() == {b"a": b"1"}, m
            assert c3.read_raw_reply() == b"_\r\n"
            assert c2.read_reply() == [b"a", b"1"]
            assert c2.read_raw_reply() == b"$-1\r\n"
        c3.send(encode("SUBSCRIBE", "ch"))
        conf = c3.read_reply()
        assert isinstance(conf, Push) and conf[0] == b"subscribe", conf
        assert pub.call("PUBLISH", "ch", "hi") == 1
        msg = c3.read_reply()
        assert isinstance(msg, Push) and list(msg) == [b"message", b"ch", b"hi"], msg
        assert c2.call("HGETALL", "h") == [b"a", b"1"]


def test_hello_checked_as_redis_does(proxy, r):
    """HELLO's errors are redis's, and a refused HELLO changes nothing."""
    with proxy.raw() as c:
        assert c.call("HELLO", "4") == "NOPROTO unsupported protocol version"
        assert c.call("HELLO", "three") == "ERR Protocol version is not an integer or out of range"
        assert c.call("HELLO", "3", "BOGUS") == "ERR Syntax error in HELLO option 'BOGUS'"
        rep = c.call("HELLO", "3", "SETNAME", "a b")
        assert rep == "ERR Client names cannot contain spaces, newlines or special characters.", rep
        assert c.call("HELLO", "3", "AUTH", "nobody", "x") == WRONGPASS
        assert c.call("HGETALL", "nothing") == []          # still RESP2
        hello = c.call("HELLO", "3", "SETNAME", "hn")
        assert isinstance(hello, Map) and hello.todict()[b"proto"] == 3
        assert c.call("CLIENT", "GETNAME") == b"hn"
        assert isinstance(c.call("HGETALL", "nothing"), Map)
        hello = c.call("HELLO")                             # no change, current protocol
        assert isinstance(hello, Map) and hello.todict()[b"proto"] == 3
        assert c.call("HELLO", "2")[4:6] == [b"proto", 2]
        assert c.call("HGETALL", "nothing") == []


def test_hello_refused_by_the_server(proxy_factory, redis_factory, sharing):
    """A server that refuses HELLO (renamed away): the client gets the
    server's own error, with or without SETNAME, and stays where it was
    (RESP2, no name); what it sends next works as before."""
    srv = redis_factory(extra_args=["--rename-command", "HELLO", ""])
    px = proxy_factory(srv, sharing=sharing)
    refused = "ERR unknown command 'HELLO', with args beginning with: '3' "
    with px.raw() as c:
        c.send(encode("HELLO", "3") + encode("SET", "hr", "v") + encode("HGETALL", "nothing"))
        assert [c.read_reply() for _ in range(3)] == [refused, "OK", []]
        assert c.call("HELLO", "3", "SETNAME", "hn") == refused
        assert c.call("CLIENT", "GETNAME") is None
        assert c.call("GET", "hr") == b"v"


@pytest.mark.proxy_only
def test_client_setinfo(proxy, r):
    """CLIENT SETINFO is answered by the proxy, checked as redis 7.2 does, and
    recorded; the server (7.0 here, which does not know it) never sees it."""
    with proxy.raw() as c:
        assert c.call("CLIENT", "SETINFO", "LIB-NAME", "mylib") == "OK"
        assert c.call("CLIENT", "setinfo", "lib-ver", "1.2.3") == "OK"
        assert c.call("CLIENT", "SETINFO", "foo", "x") == "ERR Unrecognized option 'foo'"
        assert c.call("CLIENT", "SETINFO", "lib-name", "a b") == \
            "ERR lib-name cannot contain spaces, newlines or special characters."
        assert c.call("CLIENT", "SETINFO", "lib-name") == \
            "ERR wrong number of arguments for 'client|setinfo' command"
        assert c.call("CLIENT", "MAINT_NOTIFICATIONS", "ON") == \
            "ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP."
        me = [f for f in proxy_clients(c).values() if f["lib-name"] == "mylib"]
        assert len(me) == 1 and me[0]["lib-ver"] == "1.2.3" and me[0]["route"].startswith(
            "shared:" if proxy.options["sharing"] == "yes" else "pinned:"), me
    assert r.info("commandstats").get("cmdstat_client|setinfo") is None


@pytest.mark.proxy_only
def test_requirepass_master(proxy_factory, redis_factory):
    """A password-protected master: a client without AUTH gets the server's
    NOAUTH; clients that AUTH share the connections of their group."""
    srv = redis_factory(extra_args=["--requirepass", "secret"])
    px = proxy_factory(srv)
    with px.raw() as c:
        assert c.call("GET", "x").startswith("NOAUTH")
        assert c.call("HELLO", "3").startswith("NOAUTH HELLO must be called")
        assert c.call("AUTH", "wrong") == WRONGPASS
    conns = [px.raw() for _ in range(20)]
    try:
        for i, c in enumerate(conns):
            assert c.call("AUTH", "secret") == "OK"
            assert c.call("SET", "rp:%d" % i, i) == "OK"
        with srv.client(password="secret") as adm:
            mine = [x for x in adm.client_list() if x.get("name") != ADMIN_NAME]
            assert len(mine) <= 4, mine
            assert adm.get("rp:19") == b"19"
    finally:
        for c in conns:
            c.close()


@pytest.mark.proxy_only
def test_max_session_groups_pins_beyond(proxy_factory, redis_factory):
    """With max-session-groups 3, a client asking for a fourth state is
    pinned (and works: its own connection is set up in its state)."""
    srv = redis_factory()
    px = proxy_factory(srv, pool={"max-session-groups": "3"})
    cs = [px.raw() for _ in range(3)]
    try:
        for db, c in zip((1, 2, 3), cs):
            assert c.call("SELECT", str(db)) == "OK"
            assert c.call("SET", "mg", db) == "OK"
        routes = {f["db"]: f["route"] for f in proxy_clients(cs[0]).values()}
        assert routes["1"].startswith("shared:") and routes["2"].startswith("shared:"), routes
        assert routes["3"] == "pinned:max-session-groups", routes
        for db in (1, 2, 3):
            with srv.client(db=db) as c:
                assert c.get("mg") == b"%d" % db
        assert "session_groups:3/3" in cs[0].call("PROXY", "INFO").decode()
    finally:
        for c in cs:
            c.close()


@pytest.mark.proxy_only
def test_unused_group_closes(proxy_factory, redis_factory):
    """A session group nobody is in closes its connections after
    session-group-idle-timeout; the default one stays."""
    srv = redis_factory()
    px = proxy_factory(srv, pool={"session-group-idle-timeout": "300"})
    with px.raw() as c:
        assert c.call("SELECT", "5") == "OK"
        assert c.call("SET", "ug", "1") == "OK"
        assert any(m["db"] == "5" for m in backend_conns(srv))
        assert c.call("SELECT", "0") == "OK"
        assert c.call("GET", "ug") is None
        wait_for(lambda: not any(m["db"] == "5" for m in backend_conns(srv)), timeout=5,
                 what="db 5 group closed")
        assert "session_groups:1/" in c.call("PROXY", "INFO").decode()
        assert c.call("SELECT", "5") == "OK"                # opens again on demand
        assert c.call("GET", "ug") == b"1"


def test_pinning_keeps_the_session_state(proxy, r):
    """A shared client in db 3 speaking RESP3 that starts a MULTI gets a
    connection of its own set up in that state."""
    with proxy.raw() as c:
        assert c.call("SELECT", "3") == "OK"
        assert isinstance(c.call("HELLO", "3"), Map)
        assert c.call("MULTI") == "OK"
        assert c.call("HSET", "mk", "f", "v") == "QUEUED"
        assert c.call("HGETALL", "mk") == "QUEUED"
        res = c.call("EXEC")
        assert res[0] == 1 and isinstance(res[1], Map) and res[1].todict() == {b"f": b"v"}, res
    r.execute_command("SELECT", 3)
    assert r.hgetall("mk") == {b"f": b"v"}
    r.flushdb()
    r.execute_command("SELECT", 0)


@pytest.mark.proxy_only
def test_connect_run_opens_only_the_final_state(proxy_factory, redis_factory):
    """AUTH, HELLO 3 and SELECT pipelined on connect (as libraries send them)
    are each judged on a connection already in the state the whole run
    leads to: no connection is opened in the states on the way."""
    srv = redis_factory()
    acl(srv, "app", "on", ">apppw", "~*", "&*", "+@all")
    px = proxy_factory(srv)
    conns = [px.raw() for _ in range(10)]
    try:
        for c in conns:
            c.send(encode("AUTH", "app", "apppw") + encode("HELLO", "3") + encode("SELECT", "2")
                   + encode("SET", "run", "x"))
        for c in conns:
            assert c.read_reply() == "OK"
            assert isinstance(c.read_reply(), Map)
            assert c.read_reply() == "OK"
            assert c.read_reply() == "OK"
        states = {(m["db"], m["user"], m["resp"]) for m in backend_conns(srv)}
        assert states == {("2", "app", "3")}, states
    finally:
        for c in conns:
            c.close()


def test_connect_run_with_a_refused_step(proxy_factory, redis_factory, sharing):
    """A run whose later step the server refuses (SELECT 99 after a good
    AUTH): each command gets its own verdict, in order."""
    srv = redis_factory()
    acl(srv, "app", "on", ">apppw", "~*", "&*", "+@all")
    px = proxy_factory(srv, sharing=sharing)
    with px.raw() as c:
        c.send(encode("AUTH", "app", "apppw") + encode("SELECT", "99") + encode("ACL", "WHOAMI")
               + encode("SET", "rr", "1") + encode("AUTH", "app", "bad") + encode("SELECT", "1")
               + encode("ACL", "WHOAMI"))
        got = [c.read_reply() for _ in range(7)]
    assert got == ["OK", "ERR DB index is out of range", b"app", "OK", WRONGPASS, "OK", b"app"], got
    with srv.client() as adm:
        assert adm.get("rr") == b"1"
