"""Data path: commands, values, pipelines and inline commands through the proxy,
in both backend-sharing modes."""

import hashlib
import time

import pytest

from conftest import (Error, encode, bulk, expect_bytes, rand_bytes)


def test_get_set(proxy, r):
    c = proxy.client()
    assert c.set("k1", "v1") is True
    assert c.get("k1") == b"v1"
    assert c.get("missing") is None
    binary = bytes(range(256)) + b"\r\n\x00*$+-:"
    assert c.set("bin", binary) is True
    assert c.get("bin") == binary
    assert c.incr("counter") == 1
    assert c.incrby("counter", 41) == 42
    assert c.mget("k1", "missing", "bin") == [b"v1", None, binary]
    assert c.delete("k1", "missing") == 1
    assert c.exists("k1") == 0
    # and it really is on the master
    assert r.get("bin") == binary
    assert r.get("counter") == b"42"
    c.close()


def test_error_replies_pass_through(proxy, r):
    with proxy.raw() as c:
        c.send(encode("SET", "s", "x") + encode("INCR", "s") + encode("NOSUCHCOMMAND", "a")
               + encode("GET") + encode("PING"))
        assert c.read_raw_reply() == b"+OK\r\n"
        assert c.read_raw_reply() == b"-ERR value is not an integer or out of range\r\n"
        e = c.read_reply()
        assert isinstance(e, Error) and e.startswith("ERR unknown command 'NOSUCHCOMMAND'"), e
        e = c.read_reply()
        assert isinstance(e, Error) and "wrong number of arguments" in e, e
        assert c.read_raw_reply() == b"+PONG\r\n"


def test_proto_max_bulk_len_default(r):
    # redis' default must allow the 64 MiB values used below
    v = int(r.config_get("proto-max-bulk-len")["proto-max-bulk-len"])
    assert v == 512 * 1024 * 1024
    assert v >= 64 * 1024 * 1024


def test_value_64mib(proxy, r):
    size = 64 * 1024 * 1024
    value = rand_bytes(size, 64)
    c = proxy.client(socket_timeout=60)
    assert c.set("big", value) is True
    got = c.get("big")
    assert got is not None and len(got) == size
    assert hashlib.sha1(got).digest() == hashlib.sha1(value).digest()
    assert r.strlen("big") == size
    c.close()


def test_value_64mib_pipelined_raw(proxy, r):
    """A 64 MiB bulk in the middle of a pipeline: the framing around it must hold."""
    size = 64 * 1024 * 1024
    value = b"ab\r\n" * (size // 4)
    with proxy.raw(timeout=60) as c:
        c.send(encode("SET", "big", value) + encode("PING") + encode("GET", "big")
               + encode("INCR", "n") + encode("STRLEN", "big"))
        assert c.read_raw_reply() == b"+OK\r\n"
        assert c.read_raw_reply() == b"+PONG\r\n"
        got = c.read_reply(timeout=60)
        assert isinstance(got, bytes) and len(got) == size and got == value
        assert c.read_raw_reply() == b":1\r\n"
        assert c.read_raw_reply() == b":%d\r\n" % size


def test_pipeline_12000_in_one_write(proxy, r):
    n = 4000
    req = []
    exp = []
    for i in range(n):
        k, v = "pk:%d" % i, "value-%d-%s" % (i, "x" * (i % 50))
        req.append(encode("SET", k, v))
        exp.append(b"+OK\r\n")
        req.append(encode("GET", k))
        exp.append(bulk(v))
        req.append(encode("INCR", "pctr"))
        exp.append(b":%d\r\n" % (i + 1))
    with proxy.raw(timeout=30) as c:
        c.send(b"".join(req))          # 12,000 commands, one sendall
        expect_bytes(c, b"".join(exp), timeout=30, what="12000-command pipeline")
        assert c.nothing_pending(0.1)
    assert r.get("pctr") == str(n).encode()
    assert r.get("pk:3999") == ("value-3999-" + "x" * (3999 % 50)).encode()


def test_command_split_in_tiny_writes(proxy, r):
    """Framing on partial input: a pipeline dribbled a few bytes at a time."""
    data = (encode("SET", "drip", "hello world") + b"PING\r\n" + encode("GET", "drip")
            + b'SET drip2 "a b"\r\n' + encode("GET", "drip2"))
    with proxy.raw() as c:
        for i in range(0, len(data), 3):
            c.send(data[i:i + 3])
            time.sleep(0.002)
        expect_bytes(c, b"+OK\r\n+PONG\r\n" + bulk("hello world") + b"+OK\r\n" + bulk("a b"))


# ---------------------------------------------------------------- inline

def test_inline_basic(proxy, r):
    with proxy.raw() as c:
        c.send(b"PING\r\n")
        assert c.read_raw_reply() == b"+PONG\r\n"
        c.send(b"SET k v\r\n")
        assert c.read_raw_reply() == b"+OK\r\n"
        c.send(b"GET k\r\n")
        assert c.read_raw_reply() == b"$1\r\nv\r\n"
        c.send(b"PING hello\r\n")
        assert c.read_raw_reply() == b"$5\r\nhello\r\n"
    assert r.get("k") == b"v"


def test_inline_mixed_with_multibulk_one_write(proxy, r):
    data = (b"PING\r\n" + encode("SET", "m1", "multi") + b"SET m2 inline\r\n"
            + encode("GET", "m2") + b"GET m1\r\n" + b"INCR cnt\r\n" + encode("INCR", "cnt")
            + b"MGET m1 m2 nope\r\n")
    exp = (b"+PONG\r\n+OK\r\n+OK\r\n$6\r\ninline\r\n$5\r\nmulti\r\n:1\r\n:2\r\n"
           b"*3\r\n$5\r\nmulti\r\n$6\r\ninline\r\n$-1\r\n")
    with proxy.raw() as c:
        c.send(data)
        expect_bytes(c, exp)
    assert r.get("m2") == b"inline"


def test_inline_quoted_args(proxy, r):
    with proxy.raw() as c:
        c.send(b'SET "my key" "hello world"\r\n')
        assert c.read_raw_reply() == b"+OK\r\n"
        c.cmd("GET", "my key")
        assert c.read_raw_reply() == b"$11\r\nhello world\r\n"
        # escapes inside double quotes; single quotes are literal except \'
        c.send(b'SET esc "a\\x41\\n\\"q\\""\r\n' + b"SET sq2 'x\\'y z'\r\n"
               + b'SET empty ""\r\n' + b"GET   esc  \r\n")
        expect_bytes(c, b"+OK\r\n+OK\r\n+OK\r\n" + bulk(b'aA\n"q"'))
    assert r.get("my key") == b"hello world"
    assert r.get("esc") == b'aA\n"q"'
    assert r.get("sq2") == b"x'y z"
    assert r.get("empty") == b""


def test_inline_unbalanced_quotes_is_protocol_error(proxy, r):
    with proxy.raw() as c:
        c.send(b"PING\r\n" + b'SET k "abc\r\n')
        data, closed = c.read_all_until_close(5)
        assert data == b"+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n"
        assert closed
    assert r.exists("k") == 0


def test_inline_lf_only_and_blank_lines(proxy, r):
    """redis accepts inline commands ending in a bare \\n and ignores empty lines."""
    with proxy.raw() as c:
        c.send(b"\r\nPING\n\r\n\nSET lf 1\nGET lf\r\n")
        expect_bytes(c, b"+PONG\r\n+OK\r\n$1\r\n1\r\n")
        assert c.nothing_pending(0.2)


def test_empty_multibulk_is_ignored(proxy, r):
    """'*0' and '*-1' are no-ops in redis: no reply, nothing out of step."""
    with proxy.raw() as c:
        c.send(b"*0\r\n" + encode("SET", "e", "1") + b"*-1\r\n" + b"*0\r\n" + encode("GET", "e"))
        expect_bytes(c, b"+OK\r\n$1\r\n1\r\n")
        assert c.nothing_pending(0.2)


# ---------------------------------------------------------------- pinning mid-pipeline

PIPES = {
    "select": (
        [("SET", "a", "1"), ("GET", "a"), ("SELECT", "1"), ("GET", "a"), ("SET", "a", "2"), ("GET", "a")],
        b"+OK\r\n$1\r\n1\r\n+OK\r\n$-1\r\n+OK\r\n$1\r\n2\r\n",
    ),
    "multi": (
        [("INCR", "n"), ("MULTI",), ("INCR", "n"), ("GET", "n"), ("EXEC",), ("GET", "n")],
        b":1\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:2\r\n$1\r\n2\r\n$1\r\n2\r\n",
    ),
    "hello3": (
        [("HSET", "h", "f", "v"), ("HGETALL", "h"), ("HELLO", "3"), ("HGETALL", "h"), ("HELLO", "2"),
         ("HGETALL", "h")],
        None,  # checked below (HELLO reply carries server details)
    ),
    "client_setname": (
        [("SET", "a", "1"), ("CLIENT", "SETNAME", "pipe-name"), ("CLIENT", "GETNAME"), ("GET", "a")],
        b"+OK\r\n+OK\r\n$9\r\npipe-name\r\n$1\r\n1\r\n",
    ),
}


@pytest.mark.parametrize("case", list(PIPES))
def test_pinning_mid_pipeline(proxy, r, case):
    cmds, exp = PIPES[case]
    with proxy.raw() as c:
        c.send(b"".join(encode(*x) for x in cmds))
        if exp is not None:
            expect_bytes(c, exp)
        else:
            assert c.read_raw_reply() == b":1\r\n"
            assert c.read_raw_reply() == b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
            hello = c.read_raw_reply()
            assert hello.startswith(b"%"), hello
            assert c.read_raw_reply() == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
            hello = c.read_raw_reply()
            assert hello.startswith(b"*"), hello
            assert c.read_raw_reply() == b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
        assert c.nothing_pending(0.1)
    if case == "select":
        assert r.get("a") == b"1"
        r.execute_command("SELECT", 1)
        try:
            assert r.get("a") == b"2"
        finally:
            r.execute_command("SELECT", 0)


def test_pinning_after_many_shared_replies(proxy, r):
    """1000 outstanding replies, then SELECT: everything arrives, in order."""
    cmds = [encode("INCR", "c") for _ in range(1000)] + [encode("SELECT", "2"), encode("GET", "c"),
                                                         encode("SET", "c", "db2"), encode("GET", "c")]
    exp = b"".join(b":%d\r\n" % i for i in range(1, 1001)) + b"+OK\r\n$-1\r\n+OK\r\n$3\r\ndb2\r\n"
    with proxy.raw() as c:
        c.send(b"".join(cmds))
        expect_bytes(c, exp)
    assert r.get("c") == b"1000"


# ---------------------------------------------------------------- QUIT

def test_quit(proxy, r):
    with proxy.raw() as c:
        c.send(encode("SET", "q", "1") + encode("QUIT") + encode("SET", "q", "2"))
        data, closed = c.read_all_until_close(5)
        assert data == b"+OK\r\n+OK\r\n"
        assert closed
    assert r.get("q") == b"1"
    # proxy still serves others
    with proxy.raw() as c:
        c.send(b"QUIT\r\n")
        data, closed = c.read_all_until_close(5)
        assert data == b"+OK\r\n" and closed
    assert proxy.client().ping() is True
