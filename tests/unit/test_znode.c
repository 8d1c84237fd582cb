/*
 * Unit tests for znode.c: every accepted plain and JSON form, every way a
 * znode can say "no master", every rejected form with its exact reason,
 * forced formats, NUL bytes, size limits, buffers that are not
 * NUL-terminated, and a deterministic random-bytes smoke test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "znode.h"

/* ---- helpers ------------------------------------------------------------- */

/* Every reason must be printable ASCII: it goes straight into log lines. */
static void check_why_printable(const char *why)
{
    for (const char *p = why; *p != '\0'; p++)
        assert_true(*p >= 0x20 && *p <= 0x7e);
}

static void check_master_n(const char *data, size_t len, enum znode_format fmt,
                           const char *host, int port, enum znode_format detected)
{
    struct znode_master m;
    char why[ZNODE_WHY_LEN];
    enum znode_result r;

    memset(&m, 0x5a, sizeof(m));
    strcpy(why, "junk");
    r = znode_parse(data, len, fmt, &m, why, sizeof(why));
    if (r != ZNODE_MASTER)
        print_error("input '%.*s' (fmt %s): result %d, why '%s'\n", (int)len, data,
                    znode_format_name(fmt), (int)r, why);
    assert_int_equal(r, ZNODE_MASTER);
    assert_string_equal(m.host, host);
    assert_int_equal(m.port, port);
    assert_int_equal(m.format, detected);
    assert_string_equal(why, "");
}

static void check_master(const char *data, enum znode_format fmt, const char *host, int port,
                         enum znode_format detected)
{
    check_master_n(data, strlen(data), fmt, host, port, detected);
}

static void check_fail_n(const char *data, size_t len, enum znode_format fmt,
                         enum znode_result want, const char *want_why)
{
    struct znode_master m;
    char why[ZNODE_WHY_LEN];
    enum znode_result r;

    memset(&m, 0x5a, sizeof(m));
    r = znode_parse(data, len, fmt, &m, why, sizeof(why));
    if (r != want || (want_why != NULL && strcmp(why, want_why) != 0))
        print_error("input '%.*s' (fmt %s): result %d, why '%s'\n", (int)(len > 200 ? 200 : len),
                    data, znode_format_name(fmt), (int)r, why);
    assert_int_equal(r, want);
    if (want_why != NULL)
        assert_string_equal(why, want_why);
    assert_true(why[0] != '\0');
    check_why_printable(why);
    /* nothing stale is left behind for a careless caller */
    assert_string_equal(m.host, "");
    assert_int_equal(m.port, 0);
}

static void check_fail(const char *data, enum znode_format fmt, enum znode_result want,
                       const char *want_why)
{
    check_fail_n(data, strlen(data), fmt, want, want_why);
}

/* Plain text is read the same way whether detected or forced. */
static void check_plain_master(const char *data, const char *host, int port)
{
    check_master(data, ZNODE_FORMAT_AUTO, host, port, ZNODE_FORMAT_PLAIN);
    check_master(data, ZNODE_FORMAT_PLAIN, host, port, ZNODE_FORMAT_PLAIN);
}

static void check_plain_bad(const char *data, const char *want_why)
{
    check_fail(data, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA, want_why);
    check_fail(data, ZNODE_FORMAT_PLAIN, ZNODE_BAD_DATA, want_why);
}

static void check_json_master(const char *data, const char *host, int port)
{
    check_master(data, ZNODE_FORMAT_AUTO, host, port, ZNODE_FORMAT_JSON);
    check_master(data, ZNODE_FORMAT_JSON, host, port, ZNODE_FORMAT_JSON);
}

static void check_json_fail(const char *data, enum znode_result want, const char *want_why)
{
    check_fail(data, ZNODE_FORMAT_AUTO, want, want_why);
    check_fail(data, ZNODE_FORMAT_JSON, want, want_why);
}

/* ---- plain --------------------------------------------------------------- */

static void test_plain_accepted(void **state)
{
    (void)state;
    check_plain_master("127.0.0.1:6379", "127.0.0.1", 6379);
    check_plain_master("127.0.0.1:6379\n", "127.0.0.1", 6379);
    check_plain_master("127.0.0.1:6379\r\n", "127.0.0.1", 6379);
    check_plain_master("  10.0.0.2:6380  ", "10.0.0.2", 6380);
    check_plain_master("\t\r\n 10.0.0.2:6380\n\n\n", "10.0.0.2", 6380);
    check_plain_master("\v\f10.0.0.2:6380\v\f", "10.0.0.2", 6380);
    check_plain_master("redis-1.example.com:6379\n", "redis-1.example.com", 6379);
    check_plain_master("redis.example.com.:6379", "redis.example.com.", 6379);
    check_plain_master("Redis_Master:7000", "Redis_Master", 7000);
    check_plain_master("localhost:1", "localhost", 1);
    check_plain_master("h:65535", "h", 65535);
    check_plain_master("h:06379", "h", 6379);
    check_plain_master("[::1]:6379", "::1", 6379);
    check_plain_master("[2001:db8::17]:7000\r\n", "2001:db8::17", 7000);
    check_plain_master("[::ffff:10.0.0.1]:6379", "::ffff:10.0.0.1", 6379);
    check_plain_master("0.0.0.0:6379", "0.0.0.0", 6379);
    check_plain_master("10abc.example:6379", "10abc.example", 6379);
}

static void test_plain_port(void **state)
{
    (void)state;
    check_plain_bad("host:", "not host:port: missing port");
    check_plain_bad("host:\n", "not host:port: missing port");
    check_plain_bad("host:0", "not host:port: port out of range 1-65535");
    check_plain_bad("host:00000", "not host:port: port out of range 1-65535");
    check_plain_bad("host:65536", "not host:port: port out of range 1-65535");
    check_plain_bad("host:99999", "not host:port: port out of range 1-65535");
    check_plain_bad("host:123456", "not host:port: port out of range 1-65535");
    check_plain_bad("host:99999999999999999999999", "not host:port: port out of range 1-65535");
    check_plain_bad("host:abc", "not host:port: port is not a number");
    check_plain_bad("host:-1", "not host:port: port is not a number");
    check_plain_bad("host:+80", "not host:port: port is not a number");
    check_plain_bad("host:63x9", "not host:port: port is not a number");
    check_plain_bad("host:0x10", "not host:port: port is not a number");
}

static void test_plain_host(void **state)
{
    (void)state;
    check_plain_bad(":6379", "not host:port: empty host");
    check_plain_bad("host", "not host:port: missing ':port'");
    check_plain_bad("6379", "not host:port: missing ':port'");
    check_plain_bad("hello world", "not host:port: bad character ' '");
    check_plain_bad("host name:6379", "not host:port: bad character ' '");
    check_plain_bad("host:6379 extra", "not host:port: bad character ' '");
    check_plain_bad("host:6379\nhost2:6380", "not host:port: bad character '\\x0a'");
    check_plain_bad("host\t:6379", "not host:port: bad character '\\x09'");
    check_plain_bad("a\x01" "b:6379", "not host:port: bad character '\\x01'");
    check_plain_bad("a\x7f" "b:6379", "not host:port: bad character '\\x7f'");
    check_plain_bad("h\xc3\xa9:6379", "not host:port: bad character '\\xc3'");
    check_plain_bad("host/x:6379", "not host:port: bad character '/' in host");
    check_plain_bad("ho\"st:6379", "not host:port: bad character '\\\"' in host");
    check_plain_bad("user@host:6379", "not host:port: bad character '@' in host");
    check_plain_bad("redis://host:6379", "not host:port: more than one ':'");
    check_plain_bad("-host:6379", "not host:port: bad host name: starts with '-'");
    check_plain_bad(".host:6379", "not host:port: bad host name: empty label");
    check_plain_bad("a..b:6379", "not host:port: bad host name: empty label");
    check_plain_bad(".:6379", "not host:port: bad host name: empty label");
    check_plain_bad("999.1.1.1:6379", "not host:port: bad IPv4 address");
    check_plain_bad("1.2.3:6379", "not host:port: bad IPv4 address");
    check_plain_bad("1.2.3.4.5:6379", "not host:port: bad IPv4 address");
    check_plain_bad("01.2.3.4:6379", "not host:port: bad IPv4 address");
    check_plain_bad("host:6379:", "not host:port: more than one ':'");
    check_plain_bad("a:b:6379", "not host:port: more than one ':'");
}

static void test_plain_ipv6(void **state)
{
    (void)state;
    check_plain_bad("::1:6379", "not host:port: IPv6 address must be in brackets");
    check_plain_bad("2001:db8::1:6379", "not host:port: IPv6 address must be in brackets");
    check_plain_bad("[::1]", "not host:port: missing ':port'");
    check_plain_bad("[::1]6379", "not host:port: garbage after ']'");
    check_plain_bad("[::1]x:6379", "not host:port: garbage after ']'");
    check_plain_bad("[::1]:", "not host:port: missing port");
    check_plain_bad("[::1]:0", "not host:port: port out of range 1-65535");
    check_plain_bad("[::1:6379", "not host:port: missing ']'");
    check_plain_bad("[]:6379", "not host:port: empty host");
    check_plain_bad("[fe80::1%eth0]:6379", "not host:port: IPv6 zone ids are not supported");
    check_plain_bad("[1.2.3.4]:6379", "not host:port: bad IPv6 address");
    check_plain_bad("[redis]:6379", "not host:port: bad IPv6 address");
    check_plain_bad("[::1]]:6379", "not host:port: garbage after ']'");
    check_plain_bad("[1:2:3:4:5:6:7:8:9]:6379", "not host:port: bad IPv6 address");
    check_plain_bad("[0000:0000:0000:0000:0000:0000:0000:0000:0000]:6379",
                    "not host:port: bad IPv6 address");
    /* the longest textual IPv6 form still fits */
    check_plain_master("[0000:0000:0000:0000:0000:ffff:255.255.255.255]:6379",
                       "0000:0000:0000:0000:0000:ffff:255.255.255.255", 6379);
}

static void test_plain_host_length(void **state)
{
    char buf[400];
    char want[300];

    (void)state;
    memset(buf, 'a', 300);
    strcpy(buf + 300, ":6379");
    check_plain_bad(buf, "not host:port: host too long (300 bytes, max 253)");

    memset(buf, 'a', 254);
    strcpy(buf + 254, ":6379");
    check_plain_bad(buf, "not host:port: host too long (254 bytes, max 253)");

    /* exactly 253 bytes is the longest name */
    memset(want, 'a', 253);
    want[253] = '\0';
    snprintf(buf, sizeof(buf), "%s:6379\n", want);
    check_plain_master(buf, want, 6379);

    /* 253 bytes plus the FQDN's final dot */
    memset(want, 'a', 253);
    strcpy(want + 253, ".");
    snprintf(buf, sizeof(buf), "%s:6379", want);
    check_plain_master(buf, want, 6379);
}

/* ---- empty, NUL, size ---------------------------------------------------- */

static void test_empty(void **state)
{
    static const enum znode_format fmts[] = {
        ZNODE_FORMAT_AUTO, ZNODE_FORMAT_PLAIN, ZNODE_FORMAT_JSON,
    };
    struct znode_master m;
    char why[ZNODE_WHY_LEN];

    (void)state;
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        check_fail_n(NULL, 0, fmts[i], ZNODE_NO_MASTER, "znode is empty");
        check_fail_n("", 0, fmts[i], ZNODE_NO_MASTER, "znode is empty");
        check_fail("\n", fmts[i], ZNODE_NO_MASTER, "znode is empty");
        check_fail("\r\n", fmts[i], ZNODE_NO_MASTER, "znode is empty");
        check_fail(" \t\r\n\v\f ", fmts[i], ZNODE_NO_MASTER, "znode is empty");
    }
    /* empty data never got as far as a format */
    assert_int_equal(znode_parse("", 0, ZNODE_FORMAT_AUTO, &m, why, sizeof(why)),
                     ZNODE_NO_MASTER);
    assert_int_equal(m.format, ZNODE_FORMAT_AUTO);
}

static void test_nul_bytes(void **state)
{
    (void)state;
    check_fail_n("127.0.0.1:6379\0", 15, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA,
                 "NUL byte at offset 14");
    check_fail_n("127.0.0.1:6379\n\0", 16, ZNODE_FORMAT_PLAIN, ZNODE_BAD_DATA,
                 "NUL byte at offset 15");
    check_fail_n("\0", 1, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA, "NUL byte at offset 0");
    check_fail_n("\0\0\0\0", 4, ZNODE_FORMAT_JSON, ZNODE_BAD_DATA, "NUL byte at offset 0");
    check_fail_n("127.0\0.0.1:6379", 15, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA,
                 "NUL byte at offset 5");
    check_fail_n("{\"master\":\"h:1\"}\0", 17, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA,
                 "NUL byte at offset 16");
    check_fail_n("{\"master\":\"h\0:1\"}", 17, ZNODE_FORMAT_JSON, ZNODE_BAD_DATA,
                 "NUL byte at offset 12");
    /* an escaped NUL inside a JSON string is refused by jansson */
    check_fail("{\"master\":\"h\\u0000:1\"}", ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA, NULL);
}

static void test_size_limit(void **state)
{
    size_t n = ZNODE_MAX_LEN + 1;
    char *buf = malloc(n + 1);
    static const char doc_head[] = "{\"master\":\"10.0.0.1:6379\",\"slaves\":[";

    (void)state;
    assert_non_null(buf);

    /* 1 MiB + 1: refused before looking at the bytes */
    memset(buf, ' ', n);
    memcpy(buf, "10.0.0.1:6379", 13);
    check_fail_n(buf, n, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA,
                 "znode too large (1048577 bytes, max 1048576)");
    check_fail_n(buf, n, ZNODE_FORMAT_JSON, ZNODE_BAD_DATA,
                 "znode too large (1048577 bytes, max 1048576)");
    memset(buf, '\0', n);            /* not even a NUL scan first */
    check_fail_n(buf, n, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA,
                 "znode too large (1048577 bytes, max 1048576)");

    /* exactly 1 MiB is fine: padded plain text ... */
    memset(buf, ' ', n);
    memcpy(buf, "10.0.0.1:6379", 13);
    check_master_n(buf, ZNODE_MAX_LEN, ZNODE_FORMAT_AUTO, "10.0.0.1", 6379, ZNODE_FORMAT_PLAIN);

    /* ... and a big JSON document (a long slaves list) */
    {
        size_t o = 0, limit = ZNODE_MAX_LEN - 64;

        memcpy(buf, doc_head, sizeof(doc_head) - 1);
        o = sizeof(doc_head) - 1;
        for (int i = 0; o < limit; i++)
            o += (size_t)snprintf(buf + o, n + 1 - o, "%s\"10.1.%d.%d:6379\"", i ? "," : "",
                                  (i / 250) % 250, i % 250);
        o += (size_t)snprintf(buf + o, n + 1 - o, "]}");
        assert_true(o <= ZNODE_MAX_LEN);
        check_master_n(buf, o, ZNODE_FORMAT_AUTO, "10.0.0.1", 6379, ZNODE_FORMAT_JSON);
    }
    free(buf);
}

static void test_not_nul_terminated(void **state)
{
    /* the parser must stop at len even when more bytes follow */
    char buf[32];

    (void)state;
    memcpy(buf, "10.0.0.1:6379XYZ", 16);
    check_master_n(buf, 13, ZNODE_FORMAT_AUTO, "10.0.0.1", 6379, ZNODE_FORMAT_PLAIN);
    check_master_n(buf, 11, ZNODE_FORMAT_AUTO, "10.0.0.1", 63, ZNODE_FORMAT_PLAIN);
    check_fail_n(buf, 9, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA, "not host:port: missing port");
    check_fail_n(buf, 8, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA, "not host:port: missing ':port'");

    memcpy(buf, "{\"master\":\"h:1\"}garbage", 23);
    check_master_n(buf, 16, ZNODE_FORMAT_AUTO, "h", 1, ZNODE_FORMAT_JSON);

    memcpy(buf, "[::1]:6379]]]]", 14);
    check_master_n(buf, 10, ZNODE_FORMAT_AUTO, "::1", 6379, ZNODE_FORMAT_PLAIN);
}

/* ---- JSON ---------------------------------------------------------------- */

static void test_json_accepted(void **state)
{
    (void)state;
    /* what redis_failover's node manager writes */
    check_json_master("{\"master\":\"10.0.0.1:6379\",\"slaves\":[\"10.0.0.2:6379\","
                      "\"10.0.0.3:6379\"],\"unavailable\":[]}",
                      "10.0.0.1", 6379);
    check_json_master("{\"master\":\"10.0.0.1:6379\",\"slaves\":[],\"unavailable\":"
                      "[\"10.0.0.2:6379\"]}",
                      "10.0.0.1", 6379);
    check_json_master("{\"master\":\"redis-a.example.com:7000\"}", "redis-a.example.com", 7000);
    /* whitespace and line ends around and inside */
    check_json_master("  {\n  \"master\" : \"h:1\" ,\n  \"slaves\" : [ ]\n}\n", "h", 1);
    check_json_master("{\"master\":\"h:1\"}\r\n", "h", 1);
    /* key order does not matter; other keys, of any shape, are ignored */
    check_json_master("{\"slaves\":[\"a:1\"],\"unavailable\":[\"b:2\"],\"master\":\"c:3\"}", "c", 3);
    check_json_master("{\"master\":\"h:1\",\"slaves\":\"not a list\",\"unavailable\":42}", "h", 1);
    check_json_master("{\"master\":\"h:1\",\"x\":{\"y\":[1,{\"z\":null},[[[]]]],\"w\":1.5e300},"
                      "\"MASTER\":\"other:2\",\"master \":null}",
                      "h", 1);
    check_json_master("{\"version\":2,\"master\":\"h:1\",\"extra\":[true,false,null]}", "h", 1);
    /* JSON string escapes are decoded before the host:port checks */
    check_json_master("{\"master\":\"\\u006cocalhost:6379\"}", "localhost", 6379);
    /* IPv6, bracketed or as redis_failover formats it ("#{host}:#{port}") */
    check_json_master("{\"master\":\"[::1]:6379\"}", "::1", 6379);
    check_json_master("{\"master\":\"::1:6379\"}", "::1", 6379);
    check_json_master("{\"master\":\"2001:db8::17:7000\"}", "2001:db8::17", 7000);
    check_json_master("{\"master\":\"fe80::1:2:6379\"}", "fe80::1:2", 6379);
}

static void test_json_no_master(void **state)
{
    (void)state;
    check_json_fail("{\"master\":null,\"slaves\":[],\"unavailable\":[\"10.0.0.1:6379\"]}",
                    ZNODE_NO_MASTER, "master is null");
    check_json_fail("{\"master\":null}", ZNODE_NO_MASTER, "master is null");
    check_json_fail("{\"slaves\":[\"10.0.0.2:6379\"]}", ZNODE_NO_MASTER, "no \"master\" key");
    check_json_fail("{}", ZNODE_NO_MASTER, "no \"master\" key");
    check_json_fail(" { } \n", ZNODE_NO_MASTER, "no \"master\" key");
    /* keys are case sensitive, and nested "master" keys do not count */
    check_json_fail("{\"Master\":\"h:1\"}", ZNODE_NO_MASTER, "no \"master\" key");
    check_json_fail("{\"nodes\":{\"master\":\"h:1\"}}", ZNODE_NO_MASTER, "no \"master\" key");
}

static void test_json_bad_master(void **state)
{
    (void)state;
    check_json_fail("{\"master\":6379}", ZNODE_BAD_DATA, "master is a number, not a string");
    check_json_fail("{\"master\":1.5}", ZNODE_BAD_DATA, "master is a number, not a string");
    check_json_fail("{\"master\":true}", ZNODE_BAD_DATA, "master is true, not a string");
    check_json_fail("{\"master\":false}", ZNODE_BAD_DATA, "master is false, not a string");
    check_json_fail("{\"master\":[\"h:1\"]}", ZNODE_BAD_DATA, "master is an array, not a string");
    check_json_fail("{\"master\":{\"host\":\"h\",\"port\":1}}", ZNODE_BAD_DATA,
                    "master is an object, not a string");
    check_json_fail("{\"master\":\"\"}", ZNODE_BAD_DATA, "master is an empty string");
    check_json_fail("{\"master\":\"garbage\"}", ZNODE_BAD_DATA,
                    "master not host:port: missing ':port'");
    check_json_fail("{\"master\":\"h:0\"}", ZNODE_BAD_DATA,
                    "master not host:port: port out of range 1-65535");
    check_json_fail("{\"master\":\"h:65536\"}", ZNODE_BAD_DATA,
                    "master not host:port: port out of range 1-65535");
    check_json_fail("{\"master\":\"h:abc\"}", ZNODE_BAD_DATA,
                    "master not host:port: port is not a number");
    check_json_fail("{\"master\":\":6379\"}", ZNODE_BAD_DATA, "master not host:port: empty host");
    check_json_fail("{\"master\":\"h:\"}", ZNODE_BAD_DATA, "master not host:port: missing port");
    /* no trimming inside JSON: a director never pads the value */
    check_json_fail("{\"master\":\" 10.0.0.1:6379\"}", ZNODE_BAD_DATA,
                    "master not host:port: bad character ' '");
    check_json_fail("{\"master\":\"10.0.0.1:6379\\n\"}", ZNODE_BAD_DATA,
                    "master not host:port: bad character '\\x0a'");
    check_json_fail("{\"master\":\"h\\u00e9:1\"}", ZNODE_BAD_DATA,
                    "master not host:port: bad character '\\xc3'");
    check_json_fail("{\"master\":\"a:b:1\"}", ZNODE_BAD_DATA,
                    "master not host:port: more than one ':'");
    check_json_fail("{\"master\":\"[fe80::1%eth0]:1\"}", ZNODE_BAD_DATA,
                    "master not host:port: IPv6 zone ids are not supported");
    check_json_fail("{\"master\":\"{\\\"master\\\":\\\"h:1\\\"}\"}", ZNODE_BAD_DATA,
                    "master not host:port: more than one ':'");
    check_json_fail("{\"master\":\"{h}:1\"}", ZNODE_BAD_DATA,
                    "master not host:port: bad character '{' in host");
}

static void test_json_invalid(void **state)
{
    (void)state;
    check_json_fail("{\"master\":", ZNODE_BAD_DATA, NULL);
    check_json_fail("{\"master\":\"h:1\"", ZNODE_BAD_DATA, NULL);
    check_json_fail("{master:\"h:1\"}", ZNODE_BAD_DATA, NULL);
    check_json_fail("{'master':'h:1'}", ZNODE_BAD_DATA, NULL);
    check_json_fail("{\"master\":\"h:1\",}", ZNODE_BAD_DATA, NULL);
    check_json_fail("{\"master\":\"h:1\"}}", ZNODE_BAD_DATA, NULL);
    check_json_fail("{\"master\":\"h:1\"} trailing", ZNODE_BAD_DATA, NULL);
    check_json_fail("{\"master\":\"h:1\"}{\"master\":\"h:2\"}", ZNODE_BAD_DATA, NULL);
    check_json_fail("{\"master\":\"h\xff:1\"}", ZNODE_BAD_DATA,    /* bad UTF-8 */
                    "invalid JSON at line 1 column 12: unable to decode byte 0xff near '\"h'");
    /* jansson quotes raw input in its text; the reason stays printable */
    check_json_fail("{\"master\":1\x02}", ZNODE_BAD_DATA,
                    "invalid JSON at line 1 column 12: '}' expected near '\\x02'");
    check_json_fail("{\x01}", ZNODE_BAD_DATA,
                    "invalid JSON at line 1 column 2: string or '}' expected near '\\x01'");
    check_json_fail("{\"master\":NaN}", ZNODE_BAD_DATA, NULL);
    check_json_fail("{\"master\":\"h:1\"} // comment", ZNODE_BAD_DATA, NULL);
    check_json_fail("\v{\"master\":\"h:1\"}", ZNODE_BAD_DATA, NULL);  /* not JSON whitespace */
    check_json_fail("{", ZNODE_BAD_DATA, NULL);

    /* exact wording for the common cases */
    check_json_fail("{\"master\":\"h:1\"", ZNODE_BAD_DATA,
                    "invalid JSON at line 1 column 15: '}' expected near end of file");
    check_json_fail("{\"master\":\"h:1\",\n\"master\":\"h:2\"}", ZNODE_BAD_DATA,
                    "invalid JSON at line 2 column 8: duplicate object key near '\"master\"'");
    check_json_fail("{\"master\" \"h:1\"}", ZNODE_BAD_DATA,
                    "invalid JSON at line 1 column 15: ':' expected near '\"h:1\"'");
}

static void test_json_truncated_everywhere(void **state)
{
    static const char doc[] =
        "{\"master\":\"10.0.0.1:6379\",\"slaves\":[\"10.0.0.2:6379\"],\"unavailable\":[]}\n";
    size_t full = sizeof(doc) - 1;

    (void)state;
    for (size_t n = 0; n <= full; n++) {
        struct znode_master m;
        char why[ZNODE_WHY_LEN];
        enum znode_result r = znode_parse(doc, n, ZNODE_FORMAT_AUTO, &m, why, sizeof(why));

        if (n == 0)
            assert_int_equal(r, ZNODE_NO_MASTER);
        else if (n >= full - 1)      /* complete, with or without the newline */
            assert_int_equal(r, ZNODE_MASTER);
        else
            assert_int_equal(r, ZNODE_BAD_DATA);
        check_why_printable(why);
    }
}

static void test_json_nesting(void **state)
{
    size_t depth = 100000, o = 0;
    char *buf = malloc(2 * depth + 64);

    (void)state;
    assert_non_null(buf);
    /* far deeper than jansson's parser allows: an error, not a crash */
    o += (size_t)sprintf(buf, "{\"master\":\"h:1\",\"x\":");
    memset(buf + o, '[', depth);
    o += depth;
    memset(buf + o, ']', depth);
    o += depth;
    buf[o++] = '}';
    check_fail_n(buf, o, ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA, NULL);

    /* moderate nesting elsewhere is fine */
    o = (size_t)sprintf(buf, "{\"x\":");
    memset(buf + o, '[', 100);
    o += 100;
    memset(buf + o, ']', 100);
    o += 100;
    o += (size_t)sprintf(buf + o, ",\"master\":\"h:2\"}");
    check_master_n(buf, o, ZNODE_FORMAT_AUTO, "h", 2, ZNODE_FORMAT_JSON);
    free(buf);
}

/* ---- forced formats ------------------------------------------------------ */

static void test_forced_format_mismatch(void **state)
{
    struct znode_master m;
    char why[ZNODE_WHY_LEN];

    (void)state;
    check_fail("{\"master\":\"10.0.0.1:6379\"}", ZNODE_FORMAT_PLAIN, ZNODE_BAD_DATA,
               "expected host:port (znode-format plain), data looks like JSON");
    check_fail("\n {\"master\":null}", ZNODE_FORMAT_PLAIN, ZNODE_BAD_DATA,
               "expected host:port (znode-format plain), data looks like JSON");
    check_fail("10.0.0.1:6379\n", ZNODE_FORMAT_JSON, ZNODE_BAD_DATA,
               "expected a JSON object (znode-format json), data does not start with '{'");
    check_fail("[\"10.0.0.1:6379\"]", ZNODE_FORMAT_JSON, ZNODE_BAD_DATA,
               "expected a JSON object (znode-format json), data does not start with '{'");
    check_fail("\"10.0.0.1:6379\"", ZNODE_FORMAT_JSON, ZNODE_BAD_DATA,
               "expected a JSON object (znode-format json), data does not start with '{'");
    check_fail("null", ZNODE_FORMAT_JSON, ZNODE_BAD_DATA,
               "expected a JSON object (znode-format json), data does not start with '{'");

    /* m->format says what the data looked like, even when refused */
    assert_int_equal(znode_parse("h:1", 3, ZNODE_FORMAT_JSON, &m, why, sizeof(why)),
                     ZNODE_BAD_DATA);
    assert_int_equal(m.format, ZNODE_FORMAT_PLAIN);
    assert_int_equal(znode_parse("{}", 2, ZNODE_FORMAT_PLAIN, &m, why, sizeof(why)),
                     ZNODE_BAD_DATA);
    assert_int_equal(m.format, ZNODE_FORMAT_JSON);

    /* auto reads non-'{' data as plain text */
    check_fail("[\"10.0.0.1:6379\"]", ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA,
               "not host:port: bad IPv6 address");
    check_fail("null", ZNODE_FORMAT_AUTO, ZNODE_BAD_DATA, "not host:port: missing ':port'");

    /* an out-of-range format value is refused, not guessed */
    check_fail("h:1", (enum znode_format)99, ZNODE_BAD_DATA, "unknown znode format 99");
}

/* ---- API edges ----------------------------------------------------------- */

static void test_null_outputs(void **state)
{
    char why[8];

    (void)state;
    assert_int_equal(znode_parse("h:1", 3, ZNODE_FORMAT_AUTO, NULL, NULL, 0), ZNODE_MASTER);
    assert_int_equal(znode_parse("h:0", 3, ZNODE_FORMAT_AUTO, NULL, NULL, 0), ZNODE_BAD_DATA);
    assert_int_equal(znode_parse("", 0, ZNODE_FORMAT_AUTO, NULL, NULL, 0), ZNODE_NO_MASTER);
    assert_int_equal(znode_parse("{\"master\":\"h:1\"}", 16, ZNODE_FORMAT_AUTO, NULL, NULL, 0),
                     ZNODE_MASTER);
    /* whylen 0 leaves why untouched */
    strcpy(why, "keep");
    assert_int_equal(znode_parse("h:0", 3, ZNODE_FORMAT_AUTO, NULL, why, 0), ZNODE_BAD_DATA);
    assert_string_equal(why, "keep");
    /* a small why buffer truncates and stays terminated */
    assert_int_equal(znode_parse("h:0", 3, ZNODE_FORMAT_AUTO, NULL, why, sizeof(why)),
                     ZNODE_BAD_DATA);
    assert_string_equal(why, "not hos");
    assert_int_equal(znode_parse("{\"master\"", 9, ZNODE_FORMAT_AUTO, NULL, why, 1),
                     ZNODE_BAD_DATA);
    assert_string_equal(why, "");
}

static void test_format_names(void **state)
{
    enum znode_format f = ZNODE_FORMAT_JSON;

    (void)state;
    assert_int_equal(znode_format_parse("auto", &f), 0);
    assert_int_equal(f, ZNODE_FORMAT_AUTO);
    assert_int_equal(znode_format_parse("plain", &f), 0);
    assert_int_equal(f, ZNODE_FORMAT_PLAIN);
    assert_int_equal(znode_format_parse("json", &f), 0);
    assert_int_equal(f, ZNODE_FORMAT_JSON);
    assert_int_equal(znode_format_parse("JSON", &f), 0);
    assert_int_equal(f, ZNODE_FORMAT_JSON);
    assert_int_equal(znode_format_parse("Plain", &f), 0);
    assert_int_equal(f, ZNODE_FORMAT_PLAIN);

    f = ZNODE_FORMAT_PLAIN;
    assert_int_equal(znode_format_parse("xml", &f), -1);
    assert_int_equal(znode_format_parse("", &f), -1);
    assert_int_equal(znode_format_parse("jsonx", &f), -1);
    assert_int_equal(znode_format_parse(" json", &f), -1);
    assert_int_equal(znode_format_parse(NULL, &f), -1);
    assert_int_equal(f, ZNODE_FORMAT_PLAIN);     /* untouched on failure */

    assert_string_equal(znode_format_name(ZNODE_FORMAT_AUTO), "auto");
    assert_string_equal(znode_format_name(ZNODE_FORMAT_PLAIN), "plain");
    assert_string_equal(znode_format_name(ZNODE_FORMAT_JSON), "json");
    assert_string_equal(znode_format_name((enum znode_format)7), "unknown");
    assert_string_equal(znode_format_name((enum znode_format)-1), "unknown");

    /* names round-trip */
    for (int i = ZNODE_FORMAT_AUTO; i <= ZNODE_FORMAT_JSON; i++) {
        assert_int_equal(znode_format_parse(znode_format_name((enum znode_format)i), &f), 0);
        assert_int_equal(f, i);
    }
}

static void test_escape(void **state)
{
    char out[64];
    char small[12];

    (void)state;
    znode_escape("h:1\r\n", 5, out, sizeof(out));
    assert_string_equal(out, "h:1\\x0d\\x0a");
    znode_escape("{\"m\":\\}", 7, out, sizeof(out));
    assert_string_equal(out, "{\\\"m\\\":\\\\}");
    znode_escape("a\0b", 3, out, sizeof(out));
    assert_string_equal(out, "a\\x00b");
    znode_escape(NULL, 0, out, sizeof(out));
    assert_string_equal(out, "");
    znode_escape("0123456789abcdef", 16, small, sizeof(small));
    assert_string_equal(small, "01234567...");
}

/* Random bytes and random mutations of valid documents: any result is fine
 * as long as it is one of the three, the reason is printable, a master is
 * well formed, and nothing crashes or leaks (run under valgrind). */
static void test_random_smoke(void **state)
{
    static const char *const seeds[] = {
        "10.0.0.1:6379\n",
        "[::1]:6379",
        "{\"master\":\"10.0.0.1:6379\",\"slaves\":[\"10.0.0.2:6379\"],\"unavailable\":[]}",
        "{\"master\":null}",
    };
    static const char alphabet[] = "{}[]\":,.0123456789abc:[] \n\\u-_%\0\xff";
    uint32_t x = 2463534242u;        /* xorshift32, fixed seed: reproducible */
    char buf[128];

    (void)state;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n;
        struct znode_master m;
        char why[ZNODE_WHY_LEN];
        enum znode_result r;

        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if (iter % 2 == 0) {
            n = x % sizeof(buf);
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf[i] = (iter % 4 == 0) ? (char)(x & 0xff)
                                         : alphabet[x % (sizeof(alphabet) - 1)];
            }
        } else {
            const char *s = seeds[x % (sizeof(seeds) / sizeof(seeds[0]))];

            n = strlen(s);
            memcpy(buf, s, n);
            for (int k = 0; k < 3; k++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf[x % n] = alphabet[(x >> 8) % (sizeof(alphabet) - 1)];
            }
        }
        r = znode_parse(buf, n, (enum znode_format)(iter % 3), &m, why, sizeof(why));
        assert_true(r == ZNODE_MASTER || r == ZNODE_NO_MASTER || r == ZNODE_BAD_DATA);
        check_why_printable(why);
        if (r == ZNODE_MASTER) {
            assert_true(m.port >= 1 && m.port <= 65535);
            assert_true(m.host[0] != '\0');
            assert_true(strlen(m.host) < sizeof(m.host));
            assert_true(m.format == ZNODE_FORMAT_PLAIN || m.format == ZNODE_FORMAT_JSON);
            assert_string_equal(why, "");
        } else {
            assert_true(why[0] != '\0');
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_accepted),
        cmocka_unit_test(test_plain_port),
        cmocka_unit_test(test_plain_host),
        cmocka_unit_test(test_plain_ipv6),
        cmocka_unit_test(test_plain_host_length),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_json_accepted),
        cmocka_unit_test(test_json_no_master),
        cmocka_unit_test(test_json_bad_master),
        cmocka_unit_test(test_json_invalid),
        cmocka_unit_test(test_json_truncated_everywhere),
        cmocka_unit_test(test_json_nesting),
        cmocka_unit_test(test_forced_format_mismatch),
        cmocka_unit_test(test_null_outputs),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_random_smoke),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
