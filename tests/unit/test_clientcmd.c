/*
 * Unit tests for resp_args_get (every argument of a framed request),
 * clientcmd (SELECT/AUTH/HELLO parsed into the session state they ask for;
 * CLIENT SETNAME/GETNAME/SETINFO answered with redis's words) and the
 * session state's set-up commands (group.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "clientcmd.h"
#include "group.h"
#include "resp.h"

/* Frame `wire` (one request) and fetch its arguments. */
static void args_of(const char *wire, size_t len, struct resp_args *a)
{
    struct resp_reqparser *p = resp_reqparser_new();
    struct evbuffer *in = evbuffer_new();
    struct resp_request req;
    char err[128];

    evbuffer_add(in, wire, len);
    assert_int_equal(resp_reqparser_next(p, in, &req, err, sizeof(err)), 1);
    assert_int_equal(req.len, len);
    assert_int_equal(resp_args_get(in, &req, a), 0);
    assert_int_equal(evbuffer_get_length(in), len);      /* left in place */
    evbuffer_free(in);
    resp_reqparser_free(p);
}

/* A multibulk request from words. */
static size_t encode(char *buf, size_t cap, int argc, const char *const argv[])
{
    size_t n = (size_t)snprintf(buf, cap, "*%d\r\n", argc);

    for (int i = 0; i < argc; i++)
        n += (size_t)snprintf(buf + n, cap - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    return n;
}

static void args_words(struct resp_args *a, int argc, const char *const argv[])
{
    char buf[1024];

    args_of(buf, encode(buf, sizeof(buf), argc, argv), a);
}

#define ARGS(a, ...)                                                          \
    do {                                                                      \
        static const char *const w_[] = { __VA_ARGS__ };                      \
        args_words((a), (int)(sizeof(w_) / sizeof(w_[0])), w_);               \
    } while (0)

static void test_args_multibulk(void **state)
{
    static const char wire[] = "*3\r\n$3\r\nSET\r\n$5\r\na\0b\r\n\r\n$0\r\n\r\n";
    struct resp_args a;

    (void)state;
    args_of(wire, sizeof(wire) - 1, &a);
    assert_int_equal(a.argc, 3);
    assert_int_equal(a.len[0], 3);
    assert_string_equal(a.argv[0], "SET");
    assert_int_equal(a.len[1], 5);
    assert_memory_equal(a.argv[1], "a\0b\r\n", 5);
    assert_int_equal(a.len[2], 0);
    assert_string_equal(a.argv[2], "");
    resp_args_free(&a);
}

static void test_args_inline(void **state)
{
    static const char wire[] = "hello 3 setname \"a\\x41 b\" 'it\\'s'\r\n";
    static const char bad[] = "client setname x\r\n";
    struct resp_args a;

    (void)state;
    args_of(wire, sizeof(wire) - 1, &a);
    assert_int_equal(a.argc, 5);
    assert_string_equal(a.argv[0], "hello");
    assert_string_equal(a.argv[2], "setname");
    assert_string_equal(a.argv[3], "aA b");
    assert_string_equal(a.argv[4], "it's");
    resp_args_free(&a);
    args_of(bad, sizeof(bad) - 1, &a);
    assert_int_equal(a.argc, 3);
    assert_string_equal(a.argv[2], "x");
    resp_args_free(&a);
}

/* Parse a move; returns the error line or "" on success. */
static const char *move(struct clientcmd_move *mv, const struct session_state *cur,
                        struct evbuffer *send, struct resp_args *a)
{
    static char err[256];

    err[0] = '\0';
    if (clientcmd_move_parse(a, cur, mv, send, err, sizeof(err)) == 0)
        return "";
    return err;
}

static void test_select(void **state)
{
    struct session_state cur;
    struct clientcmd_move mv;
    struct evbuffer *send = evbuffer_new();
    struct resp_args a;
    static const struct { const char *arg; const char *err; int db; } cases[] = {
        { "3", "", 3 }, { "0", "", 0 }, { "-1", "", -1 }, { "2147483647", "", 2147483647 },
        { "01", "-ERR value is not an integer or out of range\r\n", 0 },
        { "+1", "-ERR value is not an integer or out of range\r\n", 0 },
        { "-0", "-ERR value is not an integer or out of range\r\n", 0 },
        { " 1", "-ERR value is not an integer or out of range\r\n", 0 },
        { "", "-ERR value is not an integer or out of range\r\n", 0 },
        { "2147483648",
          "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n", 0 },
    };

    (void)state;
    session_state_init(&cur);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *w[] = { "select", cases[i].arg };

        args_words(&a, 2, w);
        assert_string_equal(move(&mv, &cur, send, &a), cases[i].err);
        if (cases[i].err[0] == '\0')
            assert_int_equal(mv.to.db, cases[i].db);
        clientcmd_move_free(&mv);
        resp_args_free(&a);
    }
    ARGS(&a, "SELECT");
    assert_string_equal(move(&mv, &cur, send, &a),
                        "-ERR wrong number of arguments for 'select' command\r\n");
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    assert_int_equal(evbuffer_get_length(send), 0);
    evbuffer_free(send);
}

static void test_auth(void **state)
{
    struct session_state cur, other;
    struct clientcmd_move mv;
    struct evbuffer *send = evbuffer_new();
    struct resp_args a;

    (void)state;
    session_state_init(&cur);
    cur.db = 2;
    ARGS(&a, "AUTH", "pw");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_int_equal(mv.to.db, 2);
    assert_string_equal(mv.to.user, "default");
    assert_int_equal(mv.to.legacy_auth, 1);
    assert_memory_equal(mv.to.pass, "pw", 2);
    assert_false(session_state_same(&mv.to, &cur));
    session_state_init(&other);
    session_state_copy(&other, &mv.to);
    clientcmd_move_free(&mv);
    resp_args_free(&a);

    ARGS(&a, "auth", "default", "other");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_int_equal(mv.to.legacy_auth, 0);
    /* the same state (db, protocol, user), another password */
    assert_true(session_state_same(&mv.to, &other));
    assert_false(session_state_same_cred(&mv.to, &other));
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    session_state_free(&other);

    ARGS(&a, "AUTH");
    assert_string_equal(move(&mv, &cur, send, &a),
                        "-ERR wrong number of arguments for 'auth' command\r\n");
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    ARGS(&a, "AUTH", "a", "b", "c");
    assert_string_equal(move(&mv, &cur, send, &a), "-ERR syntax error\r\n");
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    evbuffer_free(send);
}

static void test_hello(void **state)
{
    struct session_state cur;
    struct clientcmd_move mv;
    struct evbuffer *send = evbuffer_new();
    struct resp_args a;
    char out[256];
    size_t n;

    (void)state;
    session_state_init(&cur);
    ARGS(&a, "HELLO");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_true(session_state_same(&mv.to, &cur));
    assert_int_equal(mv.rewritten, 0);
    clientcmd_move_free(&mv);
    resp_args_free(&a);

    ARGS(&a, "HELLO", "3");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_int_equal(mv.to.proto, 3);
    assert_int_equal(mv.rewritten, 0);
    assert_int_equal(mv.set_name, 0);
    clientcmd_move_free(&mv);
    resp_args_free(&a);

    /* SETNAME is the proxy's: what goes out is HELLO 3 AUTH u p */
    ARGS(&a, "hello", "3", "SETNAME", "first", "auth", "u", "p", "setname", "app");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_int_equal(mv.to.proto, 3);
    assert_string_equal(mv.to.user, "u");
    assert_int_equal(mv.set_name, 1);
    assert_string_equal(mv.name, "app");
    assert_int_equal(mv.rewritten, 1);
    n = evbuffer_remove(send, out, sizeof(out) - 1);
    out[n] = '\0';
    assert_string_equal(out, "*5\r\n$5\r\nhello\r\n$1\r\n3\r\n$4\r\nauth\r\n$1\r\nu\r\n$1\r\np\r\n");
    clientcmd_move_free(&mv);
    resp_args_free(&a);

    ARGS(&a, "HELLO", "2", "SETNAME", "");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_int_equal(mv.set_name, 1);
    assert_null(mv.name);
    n = evbuffer_remove(send, out, sizeof(out) - 1);
    out[n] = '\0';
    assert_string_equal(out, "*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n");
    clientcmd_move_free(&mv);
    resp_args_free(&a);

    static const struct { const char *const w[4]; int argc; const char *err; } bad[] = {
        { { "HELLO", "4" }, 2, "-NOPROTO unsupported protocol version\r\n" },
        { { "HELLO", "1" }, 2, "-NOPROTO unsupported protocol version\r\n" },
        { { "HELLO", "03" }, 2, "-ERR Protocol version is not an integer or out of range\r\n" },
        { { "HELLO", "AUTH", "u", "p" }, 4,
          "-ERR Protocol version is not an integer or out of range\r\n" },
        { { "HELLO", "3", "AUTH", "u" }, 4, "-ERR Syntax error in HELLO option 'AUTH'\r\n" },
        { { "HELLO", "3", "SETNAME" }, 3, "-ERR Syntax error in HELLO option 'SETNAME'\r\n" },
        { { "HELLO", "3", "bogus\nx" }, 3, "-ERR Syntax error in HELLO option 'bogus x'\r\n" },
        { { "HELLO", "3", "SETNAME", "a b" }, 4,
          "-ERR Client names cannot contain spaces, newlines or special characters.\r\n" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        args_words(&a, bad[i].argc, bad[i].w);
        assert_string_equal(move(&mv, &cur, send, &a), bad[i].err);
        clientcmd_move_free(&mv);
        resp_args_free(&a);
    }
    assert_int_equal(evbuffer_get_length(send), 0);
    evbuffer_free(send);
}

/* Run one CLIENT command against n; returns the reply. */
static const char *client(struct clientcmd_names *n, int proto, int argc, const char *const w[])
{
    static char out[512];
    struct evbuffer *buf = evbuffer_new();
    struct resp_args a;
    size_t len;

    args_words(&a, argc, w);
    clientcmd_client(n, &a, proto, buf);
    len = evbuffer_remove(buf, out, sizeof(out) - 1);
    out[len] = '\0';
    resp_args_free(&a);
    evbuffer_free(buf);
    return out;
}

#define CLIENT(n, proto, ...)                                                 \
    ({                                                                        \
        static const char *const w_[] = { __VA_ARGS__ };                      \
        client((n), (proto), (int)(sizeof(w_) / sizeof(w_[0])), w_);          \
    })

static void test_client_names(void **state)
{
    struct clientcmd_names n = { 0 };

    (void)state;
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "GETNAME"), "$-1\r\n");
    assert_string_equal(CLIENT(&n, 3, "client", "getname"), "_\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETNAME", "app-1"), "+OK\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "GETNAME"), "$5\r\napp-1\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETNAME", "a b"),
                        "-ERR Client names cannot contain spaces, newlines or special "
                        "characters.\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETNAME", "\x7f"),
                        "-ERR Client names cannot contain spaces, newlines or special "
                        "characters.\r\n");
    assert_string_equal(n.name, "app-1");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETNAME"),
                        "-ERR wrong number of arguments for 'client|setname' command\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "GETNAME", "x"),
                        "-ERR wrong number of arguments for 'client|getname' command\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETNAME", ""), "+OK\r\n");
    assert_null(n.name);

    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETINFO", "LIB-NAME", "ioredis"), "+OK\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETINFO", "lib-ver", "5.3.2"), "+OK\r\n");
    assert_string_equal(n.lib_name, "ioredis");
    assert_string_equal(n.lib_ver, "5.3.2");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETINFO", "Lib-Name", "x y"),
                        "-ERR Lib-Name cannot contain spaces, newlines or special characters.\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETINFO", "lib-instance", "x"),
                        "-ERR Unrecognized option 'lib-instance'\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETINFO", "lib-name"),
                        "-ERR wrong number of arguments for 'client|setinfo' command\r\n");
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "SETINFO", "lib-name", ""), "+OK\r\n");
    assert_null(n.lib_name);
    assert_string_equal(CLIENT(&n, 2, "CLIENT", "MAINT_NOTIFICATIONS", "ON"),
                        "-ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.\r\n");
    clientcmd_names_free(&n);
}

static void test_setup_commands(void **state)
{
    struct session_state s;
    struct evbuffer *out = evbuffer_new();
    char buf[512];
    size_t n;

    (void)state;
    session_state_init(&s);
    assert_int_equal(session_state_setup(&s, NULL, out), 0);
    assert_int_equal(evbuffer_get_length(out), 0);
    s.db = 3;
    s.proto = 3;
    session_state_set_user(&s, "alice", 5, "p w", 3);
    assert_int_equal(session_state_setup(&s, NULL, out), 3);
    n = evbuffer_remove(out, buf, sizeof(buf) - 1);
    buf[n] = '\0';
    /* AUTH first: HELLO and SELECT need it on a server with requirepass */
    assert_string_equal(buf, "*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$3\r\np w\r\n"
                             "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
                             "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n");
    session_state_describe(&s, buf, sizeof(buf));
    assert_string_equal(buf, "db=3 resp=3 user=alice");
    session_state_set_user(&s, NULL, 0, "pw", 2);     /* AUTH <password> */
    s.db = 0;
    s.proto = 2;
    assert_int_equal(session_state_setup(&s, NULL, out), 1);
    n = evbuffer_remove(out, buf, sizeof(buf) - 1);
    buf[n] = '\0';
    assert_string_equal(buf, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
    session_state_free(&s);
    assert_null(s.user);
    assert_int_equal(s.proto, 2);
    evbuffer_free(out);
}

static void test_judged_by(void **state)
{
    struct session_state cur, conn;
    struct clientcmd_move mv;
    struct evbuffer *send = evbuffer_new();
    struct resp_args a;

    (void)state;
    session_state_init(&cur);
    session_state_init(&conn);
    /* a connection in db 2, RESP3, as alice */
    conn.db = 2;
    conn.proto = 3;
    session_state_set_user(&conn, "alice", 5, "x", 1);
    /* AUTH alice: any db and protocol, the same user */
    ARGS(&a, "AUTH", "alice", "other");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_true(clientcmd_move_judged_by(&mv, &conn));
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    ARGS(&a, "AUTH", "bob", "x");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_false(clientcmd_move_judged_by(&mv, &conn));
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    /* SELECT: the db asked for, and the user the client has */
    session_state_copy(&cur, &conn);
    cur.db = 0;
    cur.proto = 2;
    ARGS(&a, "SELECT", "2");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_true(clientcmd_move_judged_by(&mv, &conn));
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    ARGS(&a, "SELECT", "3");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_false(clientcmd_move_judged_by(&mv, &conn));
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    /* HELLO: the protocol asked for (its reply is in it) */
    ARGS(&a, "HELLO", "3");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_true(clientcmd_move_judged_by(&mv, &conn));
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    ARGS(&a, "HELLO");                /* no change: the client's RESP2 */
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_false(clientcmd_move_judged_by(&mv, &conn));
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    /* a client without AUTH is never judged on an authenticated connection */
    session_state_free(&cur);
    ARGS(&a, "SELECT", "2");
    assert_string_equal(move(&mv, &cur, send, &a), "");
    assert_false(clientcmd_move_judged_by(&mv, &conn));
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    session_state_free(&conn);
    evbuffer_free(send);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_multibulk),
        cmocka_unit_test(test_args_inline),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_client_names),
        cmocka_unit_test(test_setup_commands),
        cmocka_unit_test(test_judged_by),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
