/*
 * Unit tests for the gate: the ZooKeeper trust rules as a state machine,
 * driven by synthetic event sequences (DESIGN.md section 2).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gate.h"

static struct gate_event ev(enum gate_event_type type)
{
    struct gate_event e;

    memset(&e, 0, sizeof(e));
    e.type = type;
    return e;
}

static struct gate_event data(const char *host, int port, int64_t mzxid)
{
    struct gate_event e = ev(GATE_EV_READ_DATA);

    e.result = ZNODE_MASTER;
    snprintf(e.master.host, sizeof(e.master.host), "%s", host);
    e.master.port = port;
    e.mzxid = mzxid;
    return e;
}

static struct gate_event nodata(enum znode_result r, int64_t mzxid)
{
    struct gate_event e = ev(GATE_EV_READ_DATA);

    e.result = r;
    e.mzxid = mzxid;
    return e;
}

static int step(struct gate *g, struct gate_event e)
{
    return gate_step(g, &e);
}

/* A gate that went through open -> connected -> read master A. */
static void ready_on(struct gate *g, int grace, const char *host, int port, int64_t mzxid)
{
    gate_init(g, grace);
    step(g, ev(GATE_EV_SESSION_OPENING));
    assert_int_equal(g->state, GATE_CONNECTING);
    step(g, ev(GATE_EV_CONNECTED));
    assert_int_equal(g->state, GATE_SYNCING);
    assert_int_equal(step(g, data(host, port, mzxid)), 1);
    assert_int_equal(g->state, GATE_READY);
}

static void test_only_ready_forwards(void **state)
{
    (void)state;
    for (int s = GATE_INIT; s <= GATE_AUTH_FAILED; s++) {
        if (s == GATE_READY)
            assert_null(gate_reason((enum gate_state)s));
        else
            assert_non_null(gate_reason((enum gate_state)s));
    }
    assert_string_equal(gate_reason(GATE_NO_NODE), "znode missing");
    assert_string_equal(gate_reason(GATE_NO_MASTER), "no master in znode");
    assert_string_equal(gate_reason(GATE_DISCONNECTED), "zookeeper disconnected");
    assert_string_equal(gate_reason(GATE_EXPIRED), "zookeeper session expired");
    assert_string_equal(gate_state_name(GATE_BAD_DATA), "BAD_DATA");
}

static void test_absent_then_created(void **state)
{
    struct gate g;

    (void)state;
    gate_init(&g, 0);
    step(&g, ev(GATE_EV_SESSION_OPENING));
    step(&g, ev(GATE_EV_CONNECTED));
    step(&g, ev(GATE_EV_READ_NONODE));
    assert_int_equal(g.state, GATE_NO_NODE);
    step(&g, ev(GATE_EV_NODE_CHANGED));       /* CREATED watch: re-reading */
    assert_int_equal(g.state, GATE_SYNCING);
    assert_int_equal(step(&g, data("10.0.0.1", 6379, 5)), 1);
    assert_int_equal(g.state, GATE_READY);
    assert_string_equal(g.master.host, "10.0.0.1");
}

/* Rule 1: a disconnect gates at once (no grace). */
static void test_disconnect_gates_at_once(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 3);
    step(&g, ev(GATE_EV_DISCONNECTED));
    assert_int_equal(g.state, GATE_DISCONNECTED);
}

static void test_disconnect_grace(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 1, "a", 1, 3);
    step(&g, ev(GATE_EV_DISCONNECTED));
    assert_int_equal(g.state, GATE_READY);     /* the user accepted the risk */
    step(&g, ev(GATE_EV_GRACE_OVER));
    assert_int_equal(g.state, GATE_DISCONNECTED);
    /* Back within grace: the data is still re-read before trusting. */
    ready_on(&g, 1, "a", 1, 3);
    step(&g, ev(GATE_EV_DISCONNECTED));
    step(&g, ev(GATE_EV_CONNECTED));
    assert_int_equal(g.state, GATE_SYNCING);
}

/* Rules 2 and 3: expiry (own timer or told) gates; a new session must
 * connect and read before READY, and EXPIRED stays visible meanwhile. */
static void test_expiry_while_disconnected(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 3);
    step(&g, ev(GATE_EV_DISCONNECTED));
    step(&g, ev(GATE_EV_EXPIRED));
    assert_int_equal(g.state, GATE_EXPIRED);
    step(&g, ev(GATE_EV_SESSION_OPENING));
    assert_int_equal(g.state, GATE_EXPIRED);
    /* A completion from the dead session must not reopen the gate. */
    step(&g, data("a", 1, 9));
    assert_int_equal(g.state, GATE_EXPIRED);
    step(&g, ev(GATE_EV_CONNECTED));
    assert_int_equal(g.state, GATE_SYNCING);
    step(&g, data("a", 1, 3));
    assert_int_equal(g.state, GATE_READY);
}

/* Rule 4: after a reconnect, data read before is not trusted. */
static void test_reconnect_needs_a_read(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 3);
    step(&g, ev(GATE_EV_DISCONNECTED));
    step(&g, ev(GATE_EV_CONNECTED));
    assert_int_equal(g.state, GATE_SYNCING);
    /* The master changed while we were away: the read says so. */
    assert_int_equal(step(&g, data("b", 2, 7)), 1);
    assert_string_equal(g.master.host, "b");
    assert_int_equal(g.master_changes, 2);
}

/* Rule 5: delete then create back to back: the delete gates at once, the
 * read after the re-arm decides. */
static void test_delete_create_race(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 3);
    step(&g, ev(GATE_EV_NODE_DELETED));
    assert_int_equal(g.state, GATE_NO_NODE);
    /* The exists re-arm found the node already re-created: no CREATED
     * event will come, the completion result carries it. */
    assert_int_equal(step(&g, data("b", 2, 9)), 1);
    assert_int_equal(g.state, GATE_READY);
    assert_string_equal(g.master.host, "b");
}

/* A data change event gates until the new data is read, even if the
 * master turns out the same (a rewrite). */
static void test_change_gates_until_read(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 3);
    step(&g, ev(GATE_EV_NODE_CHANGED));
    assert_int_equal(g.state, GATE_SYNCING);
    assert_int_equal(step(&g, data("a", 1, 4)), 0);   /* same master: no switch */
    assert_int_equal(g.state, GATE_READY);
    assert_int_equal(g.master_changes, 1);
}

/* Rule 6: never go backwards. */
static void test_older_mzxid_ignored(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 10);
    assert_int_equal(step(&g, data("old", 1, 8)), 0);
    assert_string_equal(g.master.host, "a");
    assert_int_equal(g.mzxid, 10);
    /* Reordered: the newer read lands first, the older after it. */
    step(&g, ev(GATE_EV_NODE_CHANGED));
    step(&g, data("c", 3, 12));
    step(&g, nodata(ZNODE_NO_MASTER, 11));
    assert_int_equal(g.state, GATE_READY);
    assert_string_equal(g.master.host, "c");
}

/* Rule 7: missing, null or unparsable data gates with its own reason. */
static void test_bad_and_null_data(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 3);
    step(&g, nodata(ZNODE_NO_MASTER, 4));
    assert_int_equal(g.state, GATE_NO_MASTER);
    step(&g, nodata(ZNODE_BAD_DATA, 5));
    assert_int_equal(g.state, GATE_BAD_DATA);
    step(&g, ev(GATE_EV_READ_ERROR));
    assert_int_equal(g.state, GATE_READ_ERROR);
    assert_int_equal(step(&g, data("a", 1, 6)), 0);
    assert_int_equal(g.state, GATE_READY);
}

/* Rule 8: staleness gates only a READY pool; fresh data clears it. */
static void test_stale(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 3);
    step(&g, ev(GATE_EV_STALE));
    assert_int_equal(g.state, GATE_STALE);
    step(&g, ev(GATE_EV_NODE_CHANGED));
    step(&g, data("a", 1, 4));
    assert_int_equal(g.state, GATE_READY);
    step(&g, nodata(ZNODE_NO_MASTER, 5));
    step(&g, ev(GATE_EV_STALE));
    assert_int_equal(g.state, GATE_NO_MASTER);
}

static void test_auth_failed(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 3);
    step(&g, ev(GATE_EV_AUTH_FAILED));
    assert_int_equal(g.state, GATE_AUTH_FAILED);
    step(&g, ev(GATE_EV_SESSION_OPENING));
    assert_int_equal(g.state, GATE_AUTH_FAILED);
    step(&g, ev(GATE_EV_NODE_CHANGED));        /* not connected: ignored */
    assert_int_equal(g.state, GATE_AUTH_FAILED);
}

/* Events of a session that is not connected never open the gate. */
static void test_stale_completions_after_disconnect(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 3);
    step(&g, ev(GATE_EV_DISCONNECTED));
    assert_int_equal(step(&g, data("b", 2, 9)), 0);
    step(&g, ev(GATE_EV_READ_NONODE));
    assert_int_equal(g.state, GATE_DISCONNECTED);
    assert_string_equal(g.master.host, "a");
}

/* A master answering -READONLY is a replica: gated until a newer version
 * of the znode names a master; re-reading the same version does not help. */
static void test_fenced_until_newer_znode(void **state)
{
    struct gate g;

    (void)state;
    ready_on(&g, 0, "a", 1, 7);
    step(&g, ev(GATE_EV_MASTER_READONLY));
    assert_int_equal(g.state, GATE_FENCED);
    assert_string_equal(gate_reason(GATE_FENCED), "master is read-only");
    assert_int_equal(step(&g, data("a", 1, 7)), 0);      /* the re-read: same version */
    assert_int_equal(g.state, GATE_FENCED);
    step(&g, ev(GATE_EV_DISCONNECTED));
    step(&g, ev(GATE_EV_CONNECTED));
    step(&g, data("a", 1, 7));
    assert_int_equal(g.state, GATE_FENCED);               /* survives a reconnect */
    step(&g, ev(GATE_EV_NODE_CHANGED));
    assert_int_equal(step(&g, data("b", 2, 9)), 1);       /* the director fixed it */
    assert_int_equal(g.state, GATE_READY);
    /* A refusal while not forwarding changes nothing. */
    step(&g, nodata(ZNODE_NO_MASTER, 10));
    step(&g, ev(GATE_EV_MASTER_READONLY));
    assert_int_equal(g.state, GATE_NO_MASTER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_ready_forwards),
        cmocka_unit_test(test_absent_then_created),
        cmocka_unit_test(test_disconnect_gates_at_once),
        cmocka_unit_test(test_disconnect_grace),
        cmocka_unit_test(test_expiry_while_disconnected),
        cmocka_unit_test(test_reconnect_needs_a_read),
        cmocka_unit_test(test_delete_create_race),
        cmocka_unit_test(test_change_gates_until_read),
        cmocka_unit_test(test_older_mzxid_ignored),
        cmocka_unit_test(test_bad_and_null_data),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_auth_failed),
        cmocka_unit_test(test_stale_completions_after_disconnect),
        cmocka_unit_test(test_fenced_until_newer_znode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
