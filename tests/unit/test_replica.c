/*
 * Unit tests for replica reads: what INFO replication says (probe.c), the
 * state a check puts a replica in (replica.c), how far behind a replica is
 * against the master's recent offsets (pool.c), and the znode's replicas
 * (znode.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "probe.h"
#include "proxy.h"
#include "replica.h"
#include "util.h"
#include "znode.h"

struct proxy proxy;              /* librz.a's client.c refers to it */

static void test_parse_info(void **state)
{
    static const char master[] =
        "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"
        "master_replid:aaaa\r\nmaster_replid2:0000\r\nmaster_repl_offset:1234\r\n";
    static const char replica[] =
        "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\n"
        "master_link_status:up\r\nslave_repl_offset:1200\r\nmaster_replid:aaaa\r\n";
    static const char down[] = "role:slave\r\nmaster_link_status:down\r\nslave_repl_offset:7\r\n";
    struct probe_report r;

    (void)state;
    assert_int_equal(probe_parse_info(master, sizeof(master) - 1, &r), 0);
    assert_true(r.is_master);
    assert_int_equal(r.offset, 1234);
    assert_string_equal(r.replid, "aaaa");
    assert_int_equal(probe_parse_info(replica, sizeof(replica) - 1, &r), 0);
    assert_false(r.is_master);
    assert_true(r.link_up);
    assert_int_equal(r.offset, 1200);
    assert_string_equal(r.replid, "aaaa");
    assert_int_equal(probe_parse_info(down, sizeof(down) - 1, &r), 0);
    assert_false(r.link_up);
    assert_int_equal(probe_parse_info("no role here\r\n", 14, &r), -1);
}

static void test_judge(void **state)
{
    struct probe_report r;

    (void)state;
    memset(&r, 0, sizeof(r));
    strcpy(r.replid, "aaaa");
    r.link_up = 1;
    assert_int_equal(replica_judge(&r, "aaaa", 10, 1000), REPLICA_OK);
    assert_int_equal(replica_judge(&r, "aaaa", 1001, 1000), REPLICA_LAGGING);
    assert_int_equal(replica_judge(&r, "aaaa", INT64_MAX, 1000), REPLICA_LAGGING);
    assert_int_equal(replica_judge(&r, "aaaa", -1, 1000), REPLICA_CHECKING);
    assert_int_equal(replica_judge(&r, "", 0, 1000), REPLICA_CHECKING);
    /* another history (a replica of another master), a link down, a master */
    assert_int_equal(replica_judge(&r, "bbbb", 0, 1000), REPLICA_ELSEWHERE);
    r.link_up = 0;
    assert_int_equal(replica_judge(&r, "aaaa", 0, 1000), REPLICA_ELSEWHERE);
    r.link_up = 1;
    r.is_master = 1;
    assert_int_equal(replica_judge(&r, "aaaa", 0, 1000), REPLICA_ELSEWHERE);
}

static void test_lag(void **state)
{
    struct pool *p = calloc(1, sizeof(*p));
    uint64_t now = util_now_ms();
    /* the master's offset, sampled every 100 ms: 100, 100, 200, 300 */
    static const long long offs[] = { 100, 100, 200, 300 };

    (void)state;
    assert_int_equal(pool_replica_lag_ms(p, 0), -1);          /* nothing sampled yet */
    for (int i = 0; i < 4; i++) {
        p->offsets[i].ms = now - (uint64_t)(300 - 100 * i);
        p->offsets[i].offset = offs[i];
    }
    p->noffsets = 4;
    p->offsets_head = 4;
    assert_int_equal(pool_replica_lag_ms(p, 300), 0);         /* caught up */
    assert_int_equal(pool_replica_lag_ms(p, 400), 0);         /* ahead of the last sample */
    /* at 250: the master was no further than that 100 ms ago */
    assert_in_range(pool_replica_lag_ms(p, 250), 100, 150);
    assert_in_range(pool_replica_lag_ms(p, 150), 200, 250);   /* since the 100 of 200 ms ago */
    assert_int_equal(pool_replica_lag_ms(p, 50), INT64_MAX);  /* behind all that is remembered */
    free(p);
}

static void test_znode_replicas(void **state)
{
    static const char doc[] =
        "{\"master\":\"10.0.0.1:6379\",\"slaves\":[\"10.0.0.2:6379\",42,\"bad\","
        "\"10.0.0.1:6379\",\"[::1]:6380\"],\"unavailable\":[]}";
    struct znode_master m;
    char why[ZNODE_WHY_LEN];

    (void)state;
    assert_int_equal(znode_parse(doc, sizeof(doc) - 1, ZNODE_FORMAT_AUTO, &m, why, sizeof(why)),
                     ZNODE_MASTER);
    /* entries that do not parse, and the master itself, are left out */
    assert_int_equal(m.nreplicas, 2);
    assert_string_equal(m.replicas[0].host, "10.0.0.2");
    assert_int_equal(m.replicas[0].port, 6379);
    assert_string_equal(m.replicas[1].host, "::1");
    assert_int_equal(m.replicas[1].port, 6380);
    assert_int_equal(znode_parse("10.0.0.1:6379", 13, ZNODE_FORMAT_AUTO, &m, why, sizeof(why)),
                     ZNODE_MASTER);
    assert_int_equal(m.nreplicas, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_info),
        cmocka_unit_test(test_judge),
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_znode_replicas),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
