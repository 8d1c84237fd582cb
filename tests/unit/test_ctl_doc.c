/*
 * Unit tests for src/ctl/ctl_doc.c: which format rzproxy-ctl writes, the
 * bytes it writes (plain exactly "host:port"; JSON edited in place: master
 * set, slaves fixed, every other key kept in order), the "slaves" list it
 * re-points, and node name comparison. Every document written is also read
 * back with znode_parse, the proxy's own parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ctl_doc.h"
#include "znode.h"

/* Rewrite text and check the result byte for byte, and that the proxy
 * reads new_master from it. Returns *fresh. */
static int check_rewrite(const char *data, enum znode_format fmt, const char *new_master,
                         const char *old_master, const char *want)
{
    struct znode_master m;
    char err[256], host[256];
    size_t len = 0;
    int fresh = -1, port;
    char *out = ctl_doc_rewrite(data, data ? strlen(data) : 0, fmt, new_master, old_master,
                                &len, &fresh, err, sizeof(err));

    assert_non_null(out);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    assert_int_equal(znode_parse(out, len, fmt, &m, NULL, 0), ZNODE_MASTER);
    assert_int_equal(ctl_doc_split(new_master, host, sizeof(host), &port), 0);
    assert_string_equal(m.host, host);
    assert_int_equal(m.port, port);
    free(out);
    return fresh;
}

static void test_format(void **state)
{
    (void)state;
    assert_int_equal(ctl_doc_format("h:1", 3, ZNODE_FORMAT_AUTO), ZNODE_FORMAT_PLAIN);
    assert_int_equal(ctl_doc_format("{}", 2, ZNODE_FORMAT_AUTO), ZNODE_FORMAT_JSON);
    assert_int_equal(ctl_doc_format(" \n{}", 4, ZNODE_FORMAT_AUTO), ZNODE_FORMAT_JSON);
    assert_int_equal(ctl_doc_format(NULL, 0, ZNODE_FORMAT_AUTO), ZNODE_FORMAT_PLAIN);
    assert_int_equal(ctl_doc_format("  ", 2, ZNODE_FORMAT_AUTO), ZNODE_FORMAT_PLAIN);
    /* a fixed conf format wins over what the data looks like */
    assert_int_equal(ctl_doc_format("{}", 2, ZNODE_FORMAT_PLAIN), ZNODE_FORMAT_PLAIN);
    assert_int_equal(ctl_doc_format("h:1", 3, ZNODE_FORMAT_JSON), ZNODE_FORMAT_JSON);
    assert_int_equal(ctl_doc_format(NULL, 0, ZNODE_FORMAT_JSON), ZNODE_FORMAT_JSON);
}

static void test_rewrite_plain(void **state)
{
    (void)state;
    assert_int_equal(check_rewrite("10.0.0.1:6379\n", ZNODE_FORMAT_PLAIN, "10.0.0.2:6380",
                                   "10.0.0.1:6379", "10.0.0.2:6380"), 0);
    check_rewrite(NULL, ZNODE_FORMAT_PLAIN, "[::1]:6379", NULL, "[::1]:6379");
    check_rewrite("garbage", ZNODE_FORMAT_PLAIN, "redis-b:7000", NULL, "redis-b:7000");
}

static void test_rewrite_json_keeps_keys(void **state)
{
    (void)state;
    /* new master leaves "slaves", old master joins at the end, "unavailable"
     * and unknown keys stay where they were */
    assert_int_equal(check_rewrite(
        "{\"master\": \"a:1\", \"slaves\": [\"b:1\", \"c:1\"], \"unavailable\": [\"d:1\"], "
        "\"x\": {\"y\": [1, 2]}}", ZNODE_FORMAT_JSON, "b:1", "a:1",
        "{\"master\":\"b:1\",\"slaves\":[\"c:1\",\"a:1\"],\"unavailable\":[\"d:1\"],"
        "\"x\":{\"y\":[1,2]}}"), 0);
    /* keys in another order stay in that order */
    check_rewrite("{\"unavailable\":[],\"slaves\":[],\"master\":\"a:1\"}", ZNODE_FORMAT_JSON,
                  "b:1", "a:1", "{\"unavailable\":[],\"slaves\":[\"a:1\"],\"master\":\"b:1\"}");
}

static void test_rewrite_json_slaves(void **state)
{
    (void)state;
    /* old master already listed: not twice; host compared without case */
    check_rewrite("{\"master\":\"A:1\",\"slaves\":[\"a:1\",\"B:1\"]}", ZNODE_FORMAT_JSON, "b:1",
                  "A:1", "{\"master\":\"b:1\",\"slaves\":[\"a:1\"]}");
    /* no old master (null): nothing joins */
    check_rewrite("{\"master\":null,\"slaves\":[\"b:1\"]}", ZNODE_FORMAT_JSON, "b:1", NULL,
                  "{\"master\":\"b:1\",\"slaves\":[]}");
    /* same master again: it does not become its own replica */
    check_rewrite("{\"master\":\"b:1\",\"slaves\":[]}", ZNODE_FORMAT_JSON, "b:1", "b:1",
                  "{\"master\":\"b:1\",\"slaves\":[]}");
    /* "slaves" absent or not an array: a new array */
    check_rewrite("{\"master\":\"a:1\"}", ZNODE_FORMAT_JSON, "b:1", "a:1",
                  "{\"master\":\"b:1\",\"slaves\":[\"a:1\"]}");
    check_rewrite("{\"master\":\"a:1\",\"slaves\":7}", ZNODE_FORMAT_JSON, "b:1", "a:1",
                  "{\"master\":\"b:1\",\"slaves\":[\"a:1\"]}");
    /* IPv6: bracketed and redis_failover's bare form are one node */
    check_rewrite("{\"master\":\"::1:1\",\"slaves\":[\"::1:2\"]}", ZNODE_FORMAT_JSON, "[::1]:2",
                  "::1:1", "{\"master\":\"[::1]:2\",\"slaves\":[\"::1:1\"]}");
}

static void test_rewrite_json_fresh(void **state)
{
    (void)state;
    assert_int_equal(check_rewrite("a:1", ZNODE_FORMAT_JSON, "b:1", "a:1",
                                   "{\"master\":\"b:1\",\"slaves\":[\"a:1\"],\"unavailable\":[]}"),
                     1);
    assert_int_equal(check_rewrite("[1,2]", ZNODE_FORMAT_JSON, "b:1", NULL,
                                   "{\"master\":\"b:1\",\"slaves\":[],\"unavailable\":[]}"), 1);
    assert_int_equal(check_rewrite(NULL, ZNODE_FORMAT_JSON, "b:1", NULL,
                                   "{\"master\":\"b:1\",\"slaves\":[],\"unavailable\":[]}"), 1);
    assert_int_equal(check_rewrite("{\"master\":\"a:1\",", ZNODE_FORMAT_JSON, "b:1", "a:1",
                                   "{\"master\":\"b:1\",\"slaves\":[\"a:1\"],\"unavailable\":[]}"),
                     1);
}

static void test_slaves(void **state)
{
    const char *doc = "{\"master\":\"a:1\",\"slaves\":[\"b:1\",7,null,\"c:2\"]}";
    char *out[4];
    int n;

    (void)state;
    n = ctl_doc_slaves(doc, strlen(doc), out, 4);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], "b:1");
    assert_string_equal(out[1], "c:2");
    for (int i = 0; i < n; i++)
        free(out[i]);
    assert_int_equal(ctl_doc_slaves(doc, strlen(doc), out, 1), 1);
    free(out[0]);
    assert_int_equal(ctl_doc_slaves("a:1", 3, out, 4), 0);
    assert_int_equal(ctl_doc_slaves("{\"slaves\":\"b:1\"}", 16, out, 4), 0);
    assert_int_equal(ctl_doc_slaves(NULL, 0, out, 4), 0);
}

static void test_split_and_same(void **state)
{
    static const char *const bad[] = {
        "h", "h:", ":1", "h:0", "h:65536", "h:1x", "[::1]6379", "[::1]:", "[]:1", "h:-1", "h: 1",
    };
    char host[256];
    int port;

    (void)state;
    assert_int_equal(ctl_doc_split("redis-a:6379", host, sizeof(host), &port), 0);
    assert_string_equal(host, "redis-a");
    assert_int_equal(port, 6379);
    assert_int_equal(ctl_doc_split("[fe80::1]:7000", host, sizeof(host), &port), 0);
    assert_string_equal(host, "fe80::1");
    assert_int_equal(port, 7000);
    assert_int_equal(ctl_doc_split("::1:6379", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 6379);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ctl_doc_split(bad[i], host, sizeof(host), &port) == 0)
            print_error("'%s' was accepted\n", bad[i]);
        assert_int_equal(ctl_doc_split(bad[i], host, sizeof(host), &port), -1);
    }
    assert_int_equal(ctl_doc_split("abc:1", host, 3, &port), -1);   /* host too long */
    assert_true(ctl_doc_same_node("Redis-A:1", "redis-a:1"));
    assert_true(ctl_doc_same_node("[::1]:1", "::1:1"));
    assert_false(ctl_doc_same_node("a:1", "a:2"));
    assert_false(ctl_doc_same_node("a:1", "b:1"));
    assert_false(ctl_doc_same_node("a", "a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_rewrite_plain),
        cmocka_unit_test(test_rewrite_json_keeps_keys),
        cmocka_unit_test(test_rewrite_json_slaves),
        cmocka_unit_test(test_rewrite_json_fresh),
        cmocka_unit_test(test_slaves),
        cmocka_unit_test(test_split_and_same),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
