/* ballot: which znode paths are an election's leader_ack, which of ROOT's
 * children are ballots and in what order, and which ballots are replicas. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ballot.h"

static void test_root(void **state)
{
    char root[64];

    (void)state;
    assert_int_equal(ballot_root("/_zkelection/cache/leader_ack", root, sizeof(root)), 1);
    assert_string_equal(root, "/_zkelection/cache");
    assert_int_equal(ballot_root("/leader_ack", root, sizeof(root)), 1);
    assert_string_equal(root, "/");
    assert_int_equal(ballot_root("/rz/master", root, sizeof(root)), 0);
    assert_string_equal(root, "");
    assert_int_equal(ballot_root("/rz/my_leader_ack", root, sizeof(root)), 0);
    assert_int_equal(ballot_root("/rz/leader_ack/x", root, sizeof(root)), 0);
    assert_int_equal(ballot_root(NULL, root, sizeof(root)), 0);
}

/* Election order is the sequence number; other children are not ballots. */
static void test_select_orders_and_filters(void **state)
{
    char *names[] = { "ballot0000000012", "leader_ack", "ballot0000000003", "ballotx",
                      "ballot", "ballot0000000007", "other0000000001" };
    int idx[BALLOT_MAX], left;
    int n = ballot_select(names, 7, idx, BALLOT_MAX, &left);

    (void)state;
    assert_int_equal(n, 3);
    assert_int_equal(left, 0);
    assert_string_equal(names[idx[0]], "ballot0000000003");
    assert_string_equal(names[idx[1]], "ballot0000000007");
    assert_string_equal(names[idx[2]], "ballot0000000012");
}

/* More ballots than fit: the lowest are kept, whatever order they came in. */
static void test_select_keeps_lowest(void **state)
{
    char *names[] = { "ballot0000000050", "ballot0000000010", "ballot0000000040",
                      "ballot0000000020", "ballot0000000030" };
    int idx[3], left;
    int n = ballot_select(names, 5, idx, 3, &left);

    (void)state;
    assert_int_equal(n, 3);
    assert_int_equal(left, 2);
    assert_string_equal(names[idx[0]], "ballot0000000010");
    assert_string_equal(names[idx[1]], "ballot0000000020");
    assert_string_equal(names[idx[2]], "ballot0000000030");
    assert_int_equal(ballot_select(names, 0, idx, 3, &left), 0);
    assert_int_equal(left, 0);
}

static struct znode_node node(const char *host, int port)
{
    struct znode_node n;

    memset(&n, 0, sizeof(n));
    strcpy(n.host, host);
    n.port = port;
    return n;
}

static void test_replicas_leave_out_the_master(void **state)
{
    struct znode_node b[3] = { node("10.0.0.1", 6379), node("10.0.0.2", 6379),
                               node("10.0.0.1", 6380) };
    struct znode_master m;

    (void)state;
    memset(&m, 0, sizeof(m));
    ballot_replicas(b, 3, "10.0.0.1", 6379, &m);
    assert_int_equal(m.nreplicas, 2);
    assert_string_equal(m.replicas[0].host, "10.0.0.2");
    assert_string_equal(m.replicas[1].host, "10.0.0.1");
    assert_int_equal(m.replicas[1].port, 6380);
    /* A master that holds no ballot (a director wrote it): all are replicas. */
    ballot_replicas(b, 3, "10.0.0.9", 6379, &m);
    assert_int_equal(m.nreplicas, 3);
    ballot_replicas(b, 0, "10.0.0.1", 6379, &m);
    assert_int_equal(m.nreplicas, 0);
}

/* BALLOT_MAX ballots none of which is the master: ZNODE_MAX_REPLICAS kept. */
static void test_replicas_bounded(void **state)
{
    struct znode_node b[BALLOT_MAX];
    struct znode_master m;

    (void)state;
    for (int i = 0; i < BALLOT_MAX; i++)
        b[i] = node("10.0.0.5", 7000 + i);
    ballot_replicas(b, BALLOT_MAX, "10.0.0.1", 6379, &m);
    assert_int_equal(m.nreplicas, ZNODE_MAX_REPLICAS);
    assert_int_equal(m.replicas[ZNODE_MAX_REPLICAS - 1].port, 7000 + ZNODE_MAX_REPLICAS - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root),
        cmocka_unit_test(test_select_orders_and_filters),
        cmocka_unit_test(test_select_keeps_lowest),
        cmocka_unit_test(test_replicas_leave_out_the_master),
        cmocka_unit_test(test_replicas_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
