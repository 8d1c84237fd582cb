/*
 * Unit tests for conf.c: defaults, every directive, units, quoting, comments,
 * several pools, every error message with its exact FILE:LINE, and the
 * shipped conf/ files. Run under valgrind to check conf_free and the error
 * paths leak nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "log.h"

#define MINPOOL "pool a\nlisten 127.0.0.1:7001\nmaster 127.0.0.1:6379\n"

static char err[512];

static int parse(const char *text, struct conf *c)
{
    err[0] = '\0';
    return conf_parse_string(text, strlen(text), "t.conf", c, err, sizeof(err));
}

/* text must fail with exactly this message. */
static void expect_error(const char *text, const char *msg)
{
    struct conf c;

    memset(&c, 0xab, sizeof(c));
    if (parse(text, &c) == 0) {
        conf_free(&c);
        fail_msg("parsed but expected error: %s\n--- text:\n%s", msg, text);
    }
    if (strcmp(err, msg) != 0)
        fail_msg("wrong error\n  got:  %s\n  want: %s", err, msg);
    /* *out untouched on error */
    for (size_t i = 0; i < sizeof(c); i++)
        assert_int_equal(((unsigned char *)&c)[i], 0xab);
}

/* Global directive line + a minimal pool; must fail with msg at line 1. */
static void expect_global_error(const char *line, const char *msg)
{
    char text[1024];

    snprintf(text, sizeof(text), "%s\n" MINPOOL, line);
    expect_error(text, msg);
}

/* Minimal pool followed by one pool directive line (line 4). */
static void expect_pool_error(const char *line, const char *msg)
{
    char text[1024];

    snprintf(text, sizeof(text), MINPOOL "%s\n", line);
    expect_error(text, msg);
}

static void parse_ok(const char *text, struct conf *c)
{
    if (parse(text, c) != 0)
        fail_msg("parse failed: %s\n--- text:\n%s", err, text);
}

/* The documented defaults, checked wherever a file leaves them alone. */
static void assert_global_defaults(const struct conf *c)
{
    assert_int_equal(c->maxclients, 10000);
    assert_int_equal(c->timeout_s, 0);
    assert_true(c->client_query_buffer_limit == 1024ULL * 1024 * 1024);
    assert_true(c->output_buffer_limit == 4ULL * 1024 * 1024);
    assert_int_equal(c->output_stall_timeout_ms, 2000);
    assert_int_equal(c->shutdown_timeout_ms, 5000);
    assert_int_equal(c->tcp_keepalive_s, 300);
    assert_int_equal(c->protected_mode, 1);
}

static void assert_pool_defaults(const struct conf_pool *p)
{
    assert_int_equal(p->backend_sharing, 1);
    assert_int_equal(p->backend_connections, 2);
    assert_int_equal(p->connect_timeout_ms, 1000);
    assert_int_equal(p->on_no_master, CONF_ON_NO_MASTER_BLOCK);
    assert_int_equal(p->block_timeout_ms, 5000);
    assert_int_equal(p->drain_timeout_ms, 5000);
    assert_int_equal(p->verify_role, 0);
}

static void test_defaults(void **state)
{
    struct conf c;

    (void)state;
    parse_ok(MINPOOL, &c);
    assert_string_equal(c.path, "t.conf");
    assert_int_equal(c.loglevel, LOGL_NOTICE);
    assert_string_equal(c.logfile, "");
    assert_string_equal(c.pidfile, "");
    assert_global_defaults(&c);
    assert_int_equal(c.unixsocket_perm, 0);      /* unset: the umask decides */
    assert_int_equal(c.npools, 1);
    assert_string_equal(c.pools[0].name, "a");
    assert_int_equal(c.pools[0].line, 1);
    assert_int_equal(c.pools[0].nlisten, 1);
    assert_string_equal(c.pools[0].listen[0], "127.0.0.1:7001");
    assert_string_equal(c.pools[0].master, "127.0.0.1:6379");
    assert_pool_defaults(&c.pools[0]);
    conf_free(&c);
    conf_free(&c);                   /* zeroed: a second call is harmless */
    conf_free(NULL);
}

static void test_every_directive(void **state)
{
    struct conf c;
    const char *text =
        "loglevel debug\n"
        "logfile /var/log/rzproxy.log\n"
        "pidfile /run/rzproxy.pid\n"
        "maxclients 50\n"
        "timeout 30\n"
        "client-query-buffer-limit 64mb\n"
        "output-buffer-limit 16kb\n"
        "shutdown-timeout 250\n"
        "tcp-keepalive 0\n"
        "protected-mode no\n"
        "unixsocket-perm 0770\n"
        "pool main\n"
        "  listen 127.0.0.1:6380\n"
        "  listen [::1]:6380\n"
        "  listen unix:/run/rzproxy/main.sock\n"
        "  master 10.0.0.1:6379\n"
        "  backend-sharing no\n"
        "  backend-connections 64\n"
        "  connect-timeout 1\n"
        "  on-no-master tryagain\n"
        "  block-timeout 3600000\n";

    (void)state;
    parse_ok(text, &c);
    assert_int_equal(c.loglevel, LOGL_DEBUG);
    assert_string_equal(c.logfile, "/var/log/rzproxy.log");
    assert_string_equal(c.pidfile, "/run/rzproxy.pid");
    assert_int_equal(c.maxclients, 50);
    assert_int_equal(c.timeout_s, 30);
    assert_true(c.client_query_buffer_limit == 64ULL * 1024 * 1024);
    assert_true(c.output_buffer_limit == 16ULL * 1024);
    assert_int_equal(c.shutdown_timeout_ms, 250);
    assert_int_equal(c.tcp_keepalive_s, 0);
    assert_int_equal(c.protected_mode, 0);
    assert_int_equal(c.unixsocket_perm, 0770);
    assert_int_equal(c.npools, 1);
    assert_string_equal(c.pools[0].name, "main");
    assert_int_equal(c.pools[0].line, 12);
    assert_int_equal(c.pools[0].nlisten, 3);
    assert_string_equal(c.pools[0].listen[0], "127.0.0.1:6380");
    assert_string_equal(c.pools[0].listen[1], "[::1]:6380");
    assert_string_equal(c.pools[0].listen[2], "unix:/run/rzproxy/main.sock");
    assert_string_equal(c.pools[0].master, "10.0.0.1:6379");
    assert_int_equal(c.pools[0].backend_sharing, 0);
    assert_int_equal(c.pools[0].backend_connections, 64);
    assert_int_equal(c.pools[0].connect_timeout_ms, 1);
    assert_int_equal(c.pools[0].on_no_master, CONF_ON_NO_MASTER_TRYAGAIN);
    assert_int_equal(c.pools[0].block_timeout_ms, 3600000);
    conf_free(&c);
}

static void test_loglevels(void **state)
{
    static const struct { const char *s; int lvl; } cases[] = {
        { "error", LOGL_ERROR }, { "warning", LOGL_WARN }, { "notice", LOGL_NOTICE },
        { "info", LOGL_INFO }, { "debug", LOGL_DEBUG }, { "WARNING", LOGL_WARN },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[256];
        struct conf c;

        snprintf(text, sizeof(text), "loglevel %s\n" MINPOOL, cases[i].s);
        parse_ok(text, &c);
        assert_int_equal(c.loglevel, cases[i].lvl);
        conf_free(&c);
    }
}

static void test_units(void **state)
{
    struct conf c;
    const char *text =
        "timeout 2m\n"
        "tcp-keepalive 1H\n"
        "shutdown-timeout 5s\n"
        "client-query-buffer-limit 2GB\n"
        "output-buffer-limit 1048576\n"
        "pool a\n"
        "listen 127.0.0.1:7001\n"
        "master 127.0.0.1:6379\n"
        "connect-timeout 250ms\n"
        "block-timeout 1h\n";

    (void)state;
    parse_ok(text, &c);
    assert_int_equal(c.timeout_s, 120);
    assert_int_equal(c.tcp_keepalive_s, 3600);
    assert_int_equal(c.shutdown_timeout_ms, 5000);
    assert_true(c.client_query_buffer_limit == 2ULL * 1024 * 1024 * 1024);
    assert_true(c.output_buffer_limit == 1048576);
    assert_int_equal(c.pools[0].connect_timeout_ms, 250);
    assert_int_equal(c.pools[0].block_timeout_ms, 3600000);
    conf_free(&c);

    /* units where they make no sense, or push a value out of range */
    expect_global_error("timeout 5ms",
        "t.conf:1: bad value for 'timeout': '5ms' (expected 0..2147483 seconds)");
    expect_global_error("maxclients 10k",
        "t.conf:1: bad value for 'maxclients': '10k' (expected 1..1000000)");
    expect_global_error("shutdown-timeout 2h",
        "t.conf:1: bad value for 'shutdown-timeout': '2h' (expected 0..3600000 ms)");
    expect_global_error("shutdown-timeout 5x",
        "t.conf:1: bad value for 'shutdown-timeout': '5x' (expected 0..3600000 ms)");
    expect_global_error("tcp-keepalive 99999999999999999999",
        "t.conf:1: bad value for 'tcp-keepalive': '99999999999999999999' (expected 0..32767 seconds)");
    expect_global_error("timeout 9999999999999999h",
        "t.conf:1: bad value for 'timeout': '9999999999999999h' (expected 0..2147483 seconds)");
    /* redis units: 1m is 10^6 bytes, below the 1mb = 2^20 minimum */
    expect_global_error("client-query-buffer-limit 1m",
        "t.conf:1: bad value for 'client-query-buffer-limit': '1m' "
        "(expected a size of at least 1mb, like 64mb or 1gb)");
    expect_global_error("output-buffer-limit 16383",
        "t.conf:1: bad value for 'output-buffer-limit': '16383' "
        "(expected a size of at least 16kb, like 64mb or 1gb)");
    expect_global_error("output-buffer-limit -1",
        "t.conf:1: bad value for 'output-buffer-limit': '-1' "
        "(expected a size of at least 16kb, like 64mb or 1gb)");
    expect_global_error("output-buffer-limit 4 mb",
        "t.conf:1: bad value for 'output-buffer-limit': 2 values given "
        "(expected a size of at least 16kb, like 64mb or 1gb)");
}

static void test_ranges(void **state)
{
    struct conf c;

    (void)state;
    parse_ok("maxclients 1\ntimeout 2147483\ntcp-keepalive 32767\nshutdown-timeout 0\n"
             "pool a\nlisten 127.0.0.1:7001\nmaster 127.0.0.1:6379\n"
             "backend-connections 1\nconnect-timeout 600000\nblock-timeout 1\n", &c);
    assert_int_equal(c.maxclients, 1);
    assert_int_equal(c.timeout_s, 2147483);
    assert_int_equal(c.tcp_keepalive_s, 32767);
    assert_int_equal(c.shutdown_timeout_ms, 0);
    assert_int_equal(c.pools[0].backend_connections, 1);
    assert_int_equal(c.pools[0].connect_timeout_ms, 600000);
    assert_int_equal(c.pools[0].block_timeout_ms, 1);
    conf_free(&c);

    expect_global_error("maxclients 0",
        "t.conf:1: bad value for 'maxclients': '0' (expected 1..1000000)");
    expect_global_error("maxclients 1000001",
        "t.conf:1: bad value for 'maxclients': '1000001' (expected 1..1000000)");
    expect_global_error("maxclients -5",
        "t.conf:1: bad value for 'maxclients': '-5' (expected 1..1000000)");
    expect_global_error("maxclients abc",
        "t.conf:1: bad value for 'maxclients': 'abc' (expected 1..1000000)");
    expect_global_error("maxclients",
        "t.conf:1: bad value for 'maxclients': missing value (expected 1..1000000)");
    expect_global_error("maxclients 1 2",
        "t.conf:1: bad value for 'maxclients': 2 values given (expected 1..1000000)");
    expect_global_error("timeout 2147484",
        "t.conf:1: bad value for 'timeout': '2147484' (expected 0..2147483 seconds)");
    expect_global_error("loglevel loud",
        "t.conf:1: bad value for 'loglevel': 'loud' "
        "(expected error, warning, notice, info or debug)");
    expect_global_error("logfile a b",
        "t.conf:1: bad value for 'logfile': 2 values given "
        "(expected one value; quote it if it contains spaces)");
    expect_pool_error("backend-connections 65",
        "t.conf:4: bad value for 'backend-connections': '65' (expected 1..64)");
    expect_pool_error("connect-timeout 0",
        "t.conf:4: bad value for 'connect-timeout': '0' (expected 1..600000 ms)");
    expect_pool_error("block-timeout 0",
        "t.conf:4: bad value for 'block-timeout': '0' (expected 1..3600000 ms)");
    expect_pool_error("backend-sharing maybe",
        "t.conf:4: bad value for 'backend-sharing': 'maybe' (expected yes or no)");
    expect_pool_error("on-no-master wait",
        "t.conf:4: bad value for 'on-no-master': 'wait' (expected block or tryagain)");
    expect_pool_error("on-no-master",
        "t.conf:4: bad value for 'on-no-master': missing value (expected block or tryagain)");
}

static void test_quoting(void **state)
{
    struct conf c;
    const char *text =
        "logfile \"/tmp/my logs/rz.log\"\n"
        "pidfile \"a\\\"b\\\\c\"\n"
        "pool a\n"
        "listen \"127.0.0.1:7001\"\n"
        "master 127.0.0.1:6379\n";

    (void)state;
    parse_ok(text, &c);
    assert_string_equal(c.logfile, "/tmp/my logs/rz.log");
    assert_string_equal(c.pidfile, "a\"b\\c");
    assert_string_equal(c.pools[0].listen[0], "127.0.0.1:7001");
    conf_free(&c);

    /* "" is a real empty value, overriding an earlier one */
    parse_ok("logfile /tmp/x\nlogfile \"\"\n" MINPOOL, &c);
    assert_string_equal(c.logfile, "");
    conf_free(&c);

    expect_global_error("logfile \"/tmp/x",
        "t.conf:1: unterminated quoted value");
    expect_global_error("logfile \"/tmp/\\x\"",
        "t.conf:1: bad escape in quoted value (only \\\" and \\\\ are known)");
    expect_global_error("logfile \"/tmp/x\"y",
        "t.conf:1: closing quote must be followed by a space");
    expect_global_error("logfile \"a\" \"b\"",
        "t.conf:1: bad value for 'logfile': 2 values given "
        "(expected one value; quote it if it contains spaces)");
}

static void test_comments(void **state)
{
    struct conf c;
    const char *text =
        "# a comment\n"
        "   # an indented comment\n"
        "\t#tab-indented\n"
        "\n"
        "   \n"
        "maxclients 42   # trailing comment\n"
        "logfile \"/tmp/a # b\" # the # inside quotes stays\n"
        "pidfile /tmp/x#y\n"
        "pool a # comment after pool name\n"
        "  listen 127.0.0.1:7001#not-a-comment-but-bad\n";

    (void)state;
    /* '#' only starts a comment at the start of a token */
    expect_error(text, "t.conf:10: bad value for 'listen': bad address "
                       "'127.0.0.1:7001#not-a-comment-but-bad': port must be 1-65535 "
                       "(expected host:port, [ipv6]:port or unix:/path)");

    text = "# a comment\n"
           "   # an indented comment\n"
           "\t#tab-indented\n"
           "\n"
           "   \n"
           "maxclients 42   # trailing comment\n"
           "logfile \"/tmp/a # b\" # the # inside quotes stays\n"
           "pidfile /tmp/x#y\n"
           "pool a # comment after pool name\n"
           "  listen 127.0.0.1:7001 # comment\n"
           "  master 127.0.0.1:6379\t# tab then comment\n"
           "# last line without newline";
    parse_ok(text, &c);
    assert_int_equal(c.maxclients, 42);
    assert_string_equal(c.logfile, "/tmp/a # b");
    assert_string_equal(c.pidfile, "/tmp/x#y");
    assert_string_equal(c.pools[0].name, "a");
    assert_int_equal(c.pools[0].line, 9);
    assert_int_equal(c.pools[0].nlisten, 1);
    assert_string_equal(c.pools[0].master, "127.0.0.1:6379");
    conf_free(&c);
}

static void test_crlf_and_case(void **state)
{
    struct conf c;

    (void)state;
    parse_ok("MaxClients 7\r\nLOGLEVEL Info\r\npool a\r\nListen 127.0.0.1:7001\r\n"
             "master 127.0.0.1:6379\r\nbackend-sharing NO\r\non-no-master TryAgain\r\n", &c);
    assert_int_equal(c.maxclients, 7);
    assert_int_equal(c.loglevel, LOGL_INFO);
    assert_int_equal(c.pools[0].backend_sharing, 0);
    assert_int_equal(c.pools[0].on_no_master, CONF_ON_NO_MASTER_TRYAGAIN);
    conf_free(&c);
}

static void test_last_wins(void **state)
{
    struct conf c;

    (void)state;
    parse_ok("maxclients 5\nmaxclients 6\nlogfile /a\nlogfile /b\n"
             "pool a\nlisten 127.0.0.1:7001\nmaster 127.0.0.1:1\nmaster 127.0.0.1:2\n"
             "block-timeout 10\nblock-timeout 20\n", &c);
    assert_int_equal(c.maxclients, 6);
    assert_string_equal(c.logfile, "/b");
    assert_string_equal(c.pools[0].master, "127.0.0.1:2");
    assert_int_equal(c.pools[0].block_timeout_ms, 20);
    conf_free(&c);
}

static void test_multiple_pools(void **state)
{
    struct conf c;
    const char *text =
        "maxclients 100\n"
        "protected-mode no\n"               /* for localhost:6382 */
        "pool main\n"
        "  listen 127.0.0.1:6380 [::1]:6380\n"
        "  listen unix:/tmp/main.sock\n"
        "  master 127.0.0.1:6379\n"
        "  on-no-master tryagain\n"
        "\n"
        "pool local_2\n"
        "  listen 127.0.0.1:6381\n"
        "  master [::1]:6379\n"
        "  backend-sharing no\n"
        "pool X-3\n"
        "listen localhost:6382\n"
        "master redis.example.com:6379\n";

    (void)state;
    parse_ok(text, &c);
    assert_int_equal(c.npools, 3);
    assert_string_equal(c.pools[0].name, "main");
    assert_int_equal(c.pools[0].line, 3);
    assert_int_equal(c.pools[0].nlisten, 3);
    assert_string_equal(c.pools[0].listen[1], "[::1]:6380");
    assert_string_equal(c.pools[0].listen[2], "unix:/tmp/main.sock");
    assert_int_equal(c.pools[0].on_no_master, CONF_ON_NO_MASTER_TRYAGAIN);
    assert_int_equal(c.pools[0].backend_sharing, 1);
    assert_string_equal(c.pools[1].name, "local_2");
    assert_int_equal(c.pools[1].line, 9);
    assert_string_equal(c.pools[1].master, "[::1]:6379");
    assert_int_equal(c.pools[1].backend_sharing, 0);
    /* pool options do not leak into the next pool */
    assert_int_equal(c.pools[1].on_no_master, CONF_ON_NO_MASTER_BLOCK);
    assert_string_equal(c.pools[2].name, "X-3");
    assert_string_equal(c.pools[2].master, "redis.example.com:6379");
    assert_int_equal(c.pools[2].backend_sharing, 1);
    conf_free(&c);
}

static void test_scope_errors(void **state)
{
    (void)state;
    expect_error("foo bar\n" MINPOOL, "t.conf:1: unknown directive 'foo'");
    expect_error(MINPOOL "\n  zookeeper 127.0.0.1:2181\n",
                 "t.conf:5: 'zookeeper' is a global directive; put it before the first pool");
    expect_error("maxclients 5\nlisten 127.0.0.1:7001\n" MINPOOL,
                 "t.conf:2: directive 'listen' belongs inside a pool");
    expect_error("master 127.0.0.1:6379\n", "t.conf:1: directive 'master' belongs inside a pool");
    expect_pool_error("maxclients 5",
                      "t.conf:4: 'maxclients' is a global directive; put it before the first pool");
    expect_pool_error("LogLevel debug",
                      "t.conf:4: 'loglevel' is a global directive; put it before the first pool");
}

static void test_default_listen(void **state)
{
    static const char text[] = "pool a\n  master 127.0.0.1:6379\n";
    struct conf c;
    char msg[512];

    (void)state;
    if (conf_parse_string(text, sizeof(text) - 1, "t.conf", &c, msg, sizeof(msg)) != 0)
        fail_msg("%s", msg);
    assert_int_equal(c.pools[0].nlisten, 1);
    assert_string_equal(c.pools[0].listen[0], CONF_DEFAULT_LISTEN);
    assert_string_equal(CONF_DEFAULT_LISTEN, "127.0.0.1:6380");
    conf_free(&c);
}

static void test_pool_errors(void **state)
{
    char text[512];

    (void)state;
    expect_error("pool\n", "t.conf:1: bad value for 'pool': missing name "
                           "(expected a name of 1-32 letters, digits, '_' or '-')");
    expect_error("pool a b\n", "t.conf:1: bad value for 'pool': 2 values given "
                               "(expected a name of 1-32 letters, digits, '_' or '-')");
    expect_error("pool a.b\n", "t.conf:1: bad value for 'pool': 'a.b' "
                               "(expected a name of 1-32 letters, digits, '_' or '-')");
    expect_error("pool \"\"\n", "t.conf:1: bad value for 'pool': '' "
                                "(expected a name of 1-32 letters, digits, '_' or '-')");
    snprintf(text, sizeof(text), "pool %s\nlisten 127.0.0.1:1\nmaster 127.0.0.1:2\n",
             "abcdefghijklmnopqrstuvwxyz012345");              /* 32: fine */
    {
        struct conf c;
        parse_ok(text, &c);
        conf_free(&c);
    }
    expect_error("pool abcdefghijklmnopqrstuvwxyz0123456\n",
                 "t.conf:1: bad value for 'pool': 'abcdefghijklmnopqrstuvwxyz0123456' "
                 "(expected a name of 1-32 letters, digits, '_' or '-')");
    expect_error(MINPOOL "pool b\nlisten 127.0.0.1:7002\nmaster 127.0.0.1:6379\npool a\n",
                 "t.conf:7: pool 'a' is already defined at line 1");

    /* whole-file checks point at the pool's line */
    /* no listen: the default address, once */
    expect_error("maxclients 5\n\npool a\n  master 127.0.0.1:6379\n"
                 "pool b\n  master 127.0.0.1:6379\n",
                 "t.conf:5: pool 'b': needs a `listen ADDRESS` (the default 127.0.0.1:6380 "
                 "is used by pool 'a')");
    expect_error(MINPOOL "\n# b\npool b\n  listen 127.0.0.1:7002\n  backend-sharing no\n",
                 "t.conf:6: pool 'b': needs a master source: `master host:port` or `znode PATH`");
    expect_error(MINPOOL "pool b\n  listen 127.0.0.1:7002\n  znode /x\n",
                 "t.conf:4: pool 'b': `znode` needs the global `zookeeper host:port,...` "
                 "directive");
    expect_error("zookeeper 127.0.0.1:2181\n" MINPOOL "pool b\n  listen 127.0.0.1:7002\n"
                 "  znode x/y\n",
                 "t.conf:5: pool 'b': znode 'x/y' must be an absolute path like "
                 "/redis_failover/nodes");
    expect_error("zookeeper 127.0.0.1:2181\n" MINPOOL "pool b\n  listen 127.0.0.1:7002\n"
                 "  znode /x\n  master 127.0.0.1:1\n",
                 "t.conf:5: pool 'b': `master` and `znode` exclude each other; keep one");
    expect_error("", "t.conf:1: no pool defined: add `pool NAME` with `listen` and `master` lines");
    expect_error("# only\n# comments\n",
                 "t.conf:2: no pool defined: add `pool NAME` with `listen` and `master` lines");
}

static void test_address_errors(void **state)
{
    char text[512], path[200];

    (void)state;
    expect_pool_error("master 127.0.0.1",
        "t.conf:4: bad value for 'master': bad address '127.0.0.1': expected host:port "
        "or [ipv6]:port (expected host:port or [ipv6]:port)");
    expect_pool_error("master 127.0.0.1:0",
        "t.conf:4: bad value for 'master': bad address '127.0.0.1:0': port must be 1-65535 "
        "(expected host:port or [ipv6]:port)");
    expect_pool_error("master unix:/tmp/redis.sock",
        "t.conf:4: bad value for 'master': 'unix:/tmp/redis.sock': unix sockets are not "
        "supported here (expected host:port or [ipv6]:port)");
    expect_pool_error("master",
        "t.conf:4: bad value for 'master': missing value (expected host:port or [ipv6]:port)");
    expect_pool_error("listen",
        "t.conf:4: bad value for 'listen': missing address "
        "(expected host:port, [ipv6]:port or unix:/path)");
    expect_pool_error("listen [::1:6380",
        "t.conf:4: bad value for 'listen': bad address '[::1:6380': expected [ipv6]:port "
        "(expected host:port, [ipv6]:port or unix:/path)");
    expect_pool_error("listen unix:",
        "t.conf:4: bad value for 'listen': empty unix socket path "
        "(expected host:port, [ipv6]:port or unix:/path)");
    /* 91 bytes: "/" and 90; 92 is one too many (room for the temporary name) */
    memset(path, 'p', 91);
    path[91] = '\0';
    snprintf(text, sizeof(text), "listen unix:/%s", path);
    expect_pool_error(text,
        "t.conf:4: bad value for 'listen': unix socket path longer than 91 bytes (the socket "
        "is made under a longer temporary name first) "
        "(expected host:port, [ipv6]:port or unix:/path)");

    /* listen addresses are unique across pools, compared by value */
    expect_pool_error("listen 127.0.0.1:7001",
        "t.conf:4: listen address '127.0.0.1:7001' is already used by pool 'a'");
    expect_pool_error("listen 127.0.0.1:07001",
        "t.conf:4: listen address '127.0.0.1:07001' is already used by pool 'a'");
    expect_error(MINPOOL "pool b\nmaster 127.0.0.1:6379\nlisten unix:/s 127.0.0.1:7001\n",
        "t.conf:6: listen address '127.0.0.1:7001' is already used by pool 'a'");
    expect_error("pool a\nlisten [::1]:1 unix:/s\nmaster 127.0.0.1:6379\n"
                 "pool b\nlisten unix:/s\nmaster 127.0.0.1:6379\n",
                 "t.conf:5: listen address 'unix:/s' is already used by pool 'a'");
    expect_error("pool a\nlisten [::1]:1\nmaster 127.0.0.1:6379\n"
                 "pool b\nlisten [::1]:01\nmaster 127.0.0.1:6379\n",
                 "t.conf:5: listen address '[::1]:01' is already used by pool 'a'");
    expect_error("protected-mode no\npool a\nlisten LocalHost:1\nmaster 127.0.0.1:6379\n"
                 "pool b\nlisten localhost:1\nmaster 127.0.0.1:6379\n",
                 "t.conf:6: listen address 'localhost:1' is already used by pool 'a'");
}

/* protected-mode's messages, for an address that is not loopback or a name. */
#define REFUSED_ADDR(line, dir, addr)                                                   \
    "t.conf:" line ": " dir " '" addr "' refused by protected-mode: not a loopback "   \
    "address (127.0.0.0/8, ::1) or unix socket; to accept clients from other hosts, "  \
    "add `protected-mode no` before the first pool"
#define REFUSED_NAME(line, dir, addr)                                                   \
    "t.conf:" line ": " dir " '" addr "' refused by protected-mode: a host name, not "  \
    "a loopback address (names are not resolved); write 127.0.0.1 or [::1], or add "   \
    "`protected-mode no` before the first pool"

static void test_protected_mode(void **state)
{
    static const char *const loopback[] = {
        "127.0.0.1:1", "127.255.255.254:1", "127.0.0.1:1 [::1]:2", "[::1]:1",
        "[0:0:0:0:0:0:0:1]:1", "[::ffff:127.0.0.1]:1", "unix:/tmp/rz.sock",
    };
    static const char *const others[] = {
        "0.0.0.0:6380", "[::]:6380", "10.0.0.1:6380", "128.0.0.1:6380", "[fe80::1]:6380",
        "[::ffff:10.0.0.1]:6380", "localhost:6380", "redis.example.com:6380",
    };
    char text[512];
    struct conf c;

    (void)state;
    for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
        int one_tcp = strchr(loopback[i], ' ') == NULL && strncmp(loopback[i], "unix:", 5) != 0;

        snprintf(text, sizeof(text), "admin-listen %s\npool a\nlisten %s\nmaster 10.0.0.1:1\n",
                 one_tcp ? loopback[i] : "127.0.0.1:9", loopback[i]);
        parse_ok(text, &c);
        assert_int_equal(c.protected_mode, 1);
        conf_free(&c);
    }
    /* protected-mode no: anything, admin-listen too */
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        snprintf(text, sizeof(text), "protected-mode no\nadmin-listen %s\n"
                 "pool a\nlisten %s\nmaster 127.0.0.1:1\n", others[i], others[i]);
        parse_ok(text, &c);
        assert_int_equal(c.protected_mode, 0);
        assert_string_equal(c.pools[0].listen[0], others[i]);
        conf_free(&c);
    }

    /* listen: at its own line, naming the address; the default is yes */
    expect_pool_error("listen 0.0.0.0:6380", REFUSED_ADDR("4", "listen", "0.0.0.0:6380"));
    expect_pool_error("listen [::]:6380", REFUSED_ADDR("4", "listen", "[::]:6380"));
    expect_pool_error("listen 10.0.0.1:6380", REFUSED_ADDR("4", "listen", "10.0.0.1:6380"));
    expect_pool_error("listen 128.0.0.1:6380", REFUSED_ADDR("4", "listen", "128.0.0.1:6380"));
    expect_pool_error("listen [fe80::1]:6380", REFUSED_ADDR("4", "listen", "[fe80::1]:6380"));
    expect_pool_error("listen [::ffff:10.0.0.1]:6380",
                      REFUSED_ADDR("4", "listen", "[::ffff:10.0.0.1]:6380"));
    expect_pool_error("listen unix:/s 127.0.0.2:1 0.0.0.0:2",
                      REFUSED_ADDR("4", "listen", "0.0.0.0:2"));
    /* host names are not resolved, localhost included; nor is 127.1 an address */
    expect_pool_error("listen localhost:6380", REFUSED_NAME("4", "listen", "localhost:6380"));
    expect_pool_error("listen LOCALHOST:6380", REFUSED_NAME("4", "listen", "LOCALHOST:6380"));
    expect_pool_error("listen 127.1:6380", REFUSED_NAME("4", "listen", "127.1:6380"));
    expect_pool_error("listen redis.example.com:6380",
                      REFUSED_NAME("4", "listen", "redis.example.com:6380"));
    expect_error("protected-mode yes\npool a\n  listen 0.0.0.0:1\n  master 127.0.0.1:1\n",
                 REFUSED_ADDR("3", "listen", "0.0.0.0:1"));
    /* last one wins, as for any directive */
    expect_error("protected-mode no\nprotected-mode YES\npool a\nlisten [::]:1\n"
                 "master 127.0.0.1:1\n", REFUSED_ADDR("4", "listen", "[::]:1"));

    /* admin-listen: at its line, whether protected-mode comes before or after */
    expect_global_error("admin-listen 0.0.0.0:9", REFUSED_ADDR("1", "admin-listen", "0.0.0.0:9"));
    expect_global_error("admin-listen localhost:9",
                        REFUSED_NAME("1", "admin-listen", "localhost:9"));
    expect_error("maxclients 5\nadmin-listen 127.0.0.1:9\nadmin-listen [::]:9\n"
                 "protected-mode yes\n" MINPOOL, REFUSED_ADDR("3", "admin-listen", "[::]:9"));
    parse_ok("admin-listen 0.0.0.0:9\nprotected-mode no\n" MINPOOL, &c);
    assert_string_equal(c.admin_listen, "0.0.0.0:9");
    conf_free(&c);
    expect_global_error("protected-mode maybe",
        "t.conf:1: bad value for 'protected-mode': 'maybe' (expected yes or no)");
}

static void test_unixsocket_perm(void **state)
{
    static const struct { const char *s; int mode; } ok[] = {
        { "770", 0770 }, { "0770", 0770 }, { "0660", 0660 }, { "600", 0600 }, { "777", 0777 },
        { "0", 0 }, { "7", 07 }, { "0000", 0 },
    };
    static const char *const bad[] = {
        "1000", "0778", "8", "-1", "+770", "0x1ff", "rw-rw----", "07700", "", "77 0",
    };
    char text[256], want[256];
    struct conf c;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), "unixsocket-perm %s\n" MINPOOL, ok[i].s);
        parse_ok(text, &c);
        assert_int_equal(c.unixsocket_perm, ok[i].mode);
        conf_free(&c);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "maxclients 5\nunixsocket-perm \"%s\"", bad[i]);
        snprintf(want, sizeof(want), "t.conf:2: bad value for 'unixsocket-perm': '%s' "
                 "(expected an octal mode up to 777, like 770 or 0660)", bad[i]);
        expect_error(text, want);
    }
    expect_global_error("unixsocket-perm",
        "t.conf:1: bad value for 'unixsocket-perm': missing value "
        "(expected an octal mode up to 777, like 770 or 0660)");
    expect_global_error("unixsocket-perm 770 660",
        "t.conf:1: bad value for 'unixsocket-perm': 2 values given "
        "(expected an octal mode up to 777, like 770 or 0660)");
    expect_pool_error("unixsocket-perm 770",
        "t.conf:4: 'unixsocket-perm' is a global directive; put it before the first pool");
}

static void test_odd_input(void **state)
{
    struct conf c;
    static const char nul[] = "maxclients 5\nlogfile a\0b\n" MINPOOL;
    char small[16];

    (void)state;
    assert_int_equal(conf_parse_string(nul, sizeof(nul) - 1, "t.conf", &c, err, sizeof(err)), -1);
    assert_string_equal(err, "t.conf:2: NUL byte in line");

    /* values are escaped in messages */
    expect_error("fo\x01o 1\n" MINPOOL, "t.conf:1: unknown directive 'fo\\x01o'");

    /* a short error buffer truncates, never overflows */
    assert_int_equal(conf_parse_string("x\n", 2, "t.conf", &c, small, sizeof(small)), -1);
    assert_string_equal(small, "t.conf:1: unkno");
    assert_int_equal(conf_parse_string("x\n", 2, "t.conf", &c, small, 4), -1);
    assert_string_equal(small, "t.c");
    assert_int_equal(conf_parse_string("x\n", 2, "t.conf", &c, small, 0), -1);

    /* text need not be NUL-terminated: only len bytes count */
    assert_int_equal(conf_parse_string(MINPOOL "maxclients 5\n", strlen(MINPOOL), "t.conf", &c,
                                       err, sizeof(err)), 0);
    assert_int_equal(c.maxclients, 10000);
    conf_free(&c);
}

static void test_directive_names(void **state)
{
    static const char *const want[] = {
        "loglevel", "logfile", "pidfile", "maxclients", "timeout",
        "client-query-buffer-limit", "output-buffer-limit", "output-stall-timeout",
        "shutdown-timeout", "tcp-keepalive", "zookeeper", "zk-session-timeout",
        "zk-disconnect-grace", "zk-auth-digest", "syslog-enabled", "syslog-ident", "syslog-facility",
        "admin-listen", "protected-mode", "unixsocket-perm", "zk-session-file",
        "pool", "listen", "master", "znode", "znode-format", "znode-max-age", "backend-sharing",
        "backend-connections", "connect-timeout", "verify-role", "on-no-master", "block-timeout",
        "drain-timeout", "max-session-groups", "session-group-idle-timeout", "read-from",
        "replica-max-lag", "read-after-write-ms", "backend-user",
        "backend-password-file", "tls", "tls-ca-cert-file", "tls-ca-cert-dir", "tls-cert-file",
        "tls-key-file", "tls-server-name",
    };
    size_t n = 0;

    (void)state;
    while (conf_directive_names[n] != NULL)
        n++;
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++)
        assert_string_equal(conf_directive_names[i], want[i]);
}

static void load_shipped(const char *rel, struct conf *c)
{
    const char *srcdir = getenv("RZ_SRCDIR");
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", srcdir != NULL && srcdir[0] ? srcdir : ".", rel);
    if (conf_load(path, c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->path, path);
}

static void test_shipped_files(void **state)
{
    struct conf c;

    (void)state;
    load_shipped("conf/rzproxy.conf", &c);
    assert_int_equal(c.npools, 1);
    assert_string_equal(c.pools[0].name, "main");
    assert_string_equal(c.pools[0].listen[0], "127.0.0.1:6380");
    assert_string_equal(c.pools[0].master, "127.0.0.1:6379");
    /* the full file shows the defaults: loading it changes nothing */
    assert_int_equal(c.loglevel, LOGL_NOTICE);
    assert_global_defaults(&c);
    assert_pool_defaults(&c.pools[0]);
    conf_free(&c);

    load_shipped("conf/rzproxy-minimal.conf", &c);
    assert_int_equal(c.npools, 1);
    assert_int_equal(c.pools[0].nlisten, 1);
    assert_non_null(c.pools[0].master);
    conf_free(&c);
}

/*
 * The sample shows each default as a commented-out line. Uncomment every
 * "# directive value" line and parse: the result must still be the table's
 * defaults, so the documented defaults cannot drift from conf.c.
 */
static void test_sample_defaults_match(void **state)
{
    const char *srcdir = getenv("RZ_SRCDIR");
    char path[1024], line[1024];
    char *text = NULL;
    size_t len = 0;
    int uncommented = 0;
    struct conf c;
    FILE *fp;

    (void)state;
    snprintf(path, sizeof(path), "%s/conf/rzproxy.conf",
             srcdir != NULL && srcdir[0] ? srcdir : ".");
    fp = fopen(path, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *p = line, *word;
        size_t n;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#') {
            word = p + 1;
            while (*word == ' ')
                word++;
            n = strcspn(word, " \n");
            for (int i = 0; conf_directive_names[i] != NULL; i++) {
                if (word[n] == ' ' && strlen(conf_directive_names[i]) == n &&
                    strncmp(word, conf_directive_names[i], n) == 0) {
                    p = word;
                    uncommented++;
                    break;
                }
            }
        }
        n = strlen(p);
        text = realloc(text, len + n + 1);
        assert_non_null(text);
        memcpy(text + len, p, n + 1);
        len += n;
    }
    fclose(fp);
    assert_true(uncommented >= 15);

    if (conf_parse_string(text, len, "uncommented", &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    free(text);
    assert_int_equal(c.loglevel, LOGL_NOTICE);
    assert_string_equal(c.logfile, "");
    assert_string_equal(c.pidfile, "");
    assert_global_defaults(&c);
    assert_true(c.npools >= 1);
    assert_string_equal(c.pools[0].name, "main");
    assert_pool_defaults(&c.pools[0]);
    conf_free(&c);
}

static void test_load_errors(void **state)
{
    struct conf c;
    char path[] = "/tmp/rz_test_conf_XXXXXX";
    const char *text = "maxclients 5\npool a\n  listen 127.0.0.1:7001\n  timeout 3\n";
    int fd;
    FILE *fp;

    (void)state;
    memset(&c, 0xab, sizeof(c));
    assert_int_equal(conf_load("/nonexistent/rz.conf", &c, err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/rz.conf: cannot open: No such file or directory");
    assert_int_equal(conf_load("/", &c, err, sizeof(err)), -1);
    assert_string_equal(err, "/: cannot read: Is a directory");
    assert_int_equal(((unsigned char *)&c)[0], 0xab);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(conf_load(path, &c, err, sizeof(err)), -1);
    {
        char want[256];
        snprintf(want, sizeof(want),
                 "%s:4: 'timeout' is a global directive; put it before the first pool", path);
        assert_string_equal(err, want);
    }
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_directive),
        cmocka_unit_test(test_loglevels),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_crlf_and_case),
        cmocka_unit_test(test_last_wins),
        cmocka_unit_test(test_multiple_pools),
        cmocka_unit_test(test_scope_errors),
        cmocka_unit_test(test_default_listen),
        cmocka_unit_test(test_pool_errors),
        cmocka_unit_test(test_address_errors),
        cmocka_unit_test(test_protected_mode),
        cmocka_unit_test(test_unixsocket_perm),
        cmocka_unit_test(test_odd_input),
        cmocka_unit_test(test_directive_names),
        cmocka_unit_test(test_shipped_files),
        cmocka_unit_test(test_sample_defaults_match),
        cmocka_unit_test(test_load_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
