/*
 * Unit tests for the election candidate's state machine (ctl_elect),
 * driven by synthetic events, and for the replication comparisons it
 * relies on (ctl_repl): who holds whose writes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ctl_elect.h"
#include "ctl_repl.h"

#define ME "10.0.0.1:6379"
#define B "10.0.0.2:6379"
#define C "10.0.0.3:6379"
#define SID 0x1001
#define T 3000                       /* negotiated session timeout */

static uint64_t clock_ms = 100000;

static struct elect_event ev(enum elect_event_type type)
{
    struct elect_event e;

    memset(&e, 0, sizeof(e));
    e.type = type;
    e.now_ms = clock_ms;
    return e;
}

static unsigned step(struct elect *e, struct elect_event x)
{
    return elect_step(e, &x);
}

static unsigned result(struct elect *e, unsigned action, int ok)
{
    struct elect_event x = ev(ELECT_EV_RESULT);

    x.action = action;
    x.ok = ok;
    return elect_step(e, &x);
}

static unsigned lost_result(struct elect *e, unsigned action)
{
    struct elect_event x = ev(ELECT_EV_RESULT);

    x.action = action;
    x.lost = 1;
    return elect_step(e, &x);
}

static unsigned connected(struct elect *e)
{
    struct elect_event x = ev(ELECT_EV_CONNECTED);

    x.session = SID;
    x.timeout_ms = T;
    return elect_step(e, &x);
}

static void add_ballot(struct elect_view *v, const char *name, const char *addr, int64_t owner)
{
    struct elect_ballot *b = &v->ballots[v->nballots++];

    memset(b, 0, sizeof(*b));
    snprintf(b->name, sizeof(b->name), "%s", name);
    assert_int_equal(elect_ballot_seq(name, &b->seq), 0);
    snprintf(b->addr, sizeof(b->addr), "%s", addr);
    b->owner = owner;
}

static void set_ack(struct elect_view *v, const char *addr, int64_t owner)
{
    v->ack_exists = 1;
    snprintf(v->ack_addr, sizeof(v->ack_addr), "%s", addr);
    v->ack_owner = owner;
}

static unsigned counted(struct elect *e, struct elect_view *v)
{
    struct elect_event x = ev(ELECT_EV_RESULT);

    elect_view_sort(v, SID);
    x.action = ELECT_DO_COUNT;
    x.ok = 1;
    x.view = v;
    return elect_step(e, &x);
}

/* Connected, redis up, ballot cast: the state after the first count. */
static unsigned standing(struct elect *e)
{
    elect_init(e, ME);
    assert_int_equal(step(e, ev(ELECT_EV_START)), ELECT_DO_OPEN);
    assert_int_equal(result(e, ELECT_DO_OPEN, 1), 0);
    assert_int_equal(step(e, ev(ELECT_EV_REDIS_UP)), 0);         /* no session yet */
    assert_int_equal(connected(e), ELECT_DO_CAST);
    assert_int_equal(e->state, ELECT_COUNTING);
    return result(e, ELECT_DO_CAST, 1);
}

static void leader(struct elect *e)
{
    struct elect_view v = { 0 };

    assert_int_equal(standing(e), ELECT_DO_COUNT);
    add_ballot(&v, "ballot0000000007", ME, SID);
    add_ballot(&v, "ballot0000000009", B, 0x2002);
    assert_int_equal(counted(e, &v), ELECT_DO_PROMOTE);
    assert_int_equal(e->state, ELECT_PROMOTING);
    assert_string_equal(e->successor, B);
    assert_int_equal(result(e, ELECT_DO_PROMOTE, 1), ELECT_DO_ACK);
    assert_int_equal(e->state, ELECT_ACKING);
    assert_int_equal(result(e, ELECT_DO_ACK, 1), 0);
    assert_int_equal(e->state, ELECT_LEADER);
    assert_string_equal(e->leader, ME);
}

static void follower_of(struct elect *e, const char *lead)
{
    struct elect_view v = { 0 };

    assert_int_equal(standing(e), ELECT_DO_COUNT);
    add_ballot(&v, "ballot0000000003", lead, 0x2002);
    add_ballot(&v, "ballot0000000004", ME, SID);
    set_ack(&v, lead, 0x2002);
    assert_int_equal(counted(e, &v), ELECT_DO_FOLLOW);
    assert_int_equal(e->state, ELECT_FOLLOWER);
    assert_int_equal(result(e, ELECT_DO_FOLLOW, 1), 0);
    assert_string_equal(e->following, lead);
}

/* ---- ballots and the clock ----------------------------------------------- */

static void test_ballot_names(void **state)
{
    int64_t seq = -1;

    (void)state;
    assert_int_equal(elect_ballot_seq("ballot0000000042", &seq), 0);
    assert_int_equal(seq, 42);
    assert_int_equal(elect_ballot_seq("ballot0000000000", &seq), 0);
    assert_int_equal(seq, 0);
    /* the gem takes the trailing digits of anything named ballot... */
    assert_int_equal(elect_ballot_seq("ballot-x-12", &seq), 0);
    assert_int_equal(seq, 12);
    assert_int_equal(elect_ballot_seq("ballot", &seq), -1);
    assert_int_equal(elect_ballot_seq("leader_ack", &seq), -1);
    assert_int_equal(elect_ballot_seq("xballot1", &seq), -1);
    assert_int_equal(elect_ballot_seq("ballot0000000001x", &seq), -1);
}

static void test_view_sort_finds_lowest_of_ours(void **state)
{
    struct elect_view v = { 0 };

    (void)state;
    add_ballot(&v, "ballot0000000010", C, 3);
    add_ballot(&v, "ballot0000000002", B, 2);
    add_ballot(&v, "ballot0000000011", ME, SID);
    add_ballot(&v, "ballot0000000005", ME, SID);   /* a lost create went through */
    elect_view_sort(&v, SID);
    assert_string_equal(v.ballots[0].name, "ballot0000000002");
    assert_string_equal(v.ballots[3].name, "ballot0000000011");
    assert_int_equal(v.mine, 1);
    elect_view_sort(&v, 0);
    assert_int_equal(v.mine, -1);
}

static void test_deadline(void **state)
{
    (void)state;
    assert_int_equal(elect_margin_ms(3000), 300);
    assert_int_equal(elect_margin_ms(500), 100);
    /* nothing known: the library dropped us after at most 2/3 T of silence */
    assert_int_equal(elect_deadline(10000, 0, 3000), 10000 + 1000 - 300);
    /* a heartbeat answered just before: the server holds us until contact + T */
    assert_int_equal(elect_deadline(10000, 9900, 3000), 9900 + 3000 - 300);
    /* never in the past */
    assert_int_equal(elect_deadline(10000, 0, 100), 10000);
}

static void test_same_addr(void **state)
{
    (void)state;
    assert_true(elect_same_addr("Host:1", "host:1"));
    assert_false(elect_same_addr("host:1", "host:2"));
    assert_false(elect_same_addr("", ""));
    assert_true(elect_same_addr("[::1]:6379", "[::1]:6379"));
}

/* ---- standing ------------------------------------------------------------- */

static void test_redis_down_does_not_stand(void **state)
{
    struct elect e;

    (void)state;
    elect_init(&e, ME);
    assert_int_equal(step(&e, ev(ELECT_EV_START)), ELECT_DO_OPEN);
    assert_int_equal(connected(&e), 0);
    assert_int_equal(e.state, ELECT_IDLE);
    assert_int_equal(step(&e, ev(ELECT_EV_CHANGED)), 0);
    assert_int_equal(step(&e, ev(ELECT_EV_REDIS_UP)), ELECT_DO_CAST);
    assert_int_equal(e.state, ELECT_COUNTING);
}

static void test_lowest_promotes_then_acknowledges(void **state)
{
    struct elect e;

    (void)state;
    leader(&e);
    assert_int_equal(e.promoted, 0);
    /* a watch fires: the leader reads again, stays leader */
    assert_int_equal(step(&e, ev(ELECT_EV_CHANGED)), ELECT_DO_COUNT);
}

static void test_follower_follows_the_ack_only(void **state)
{
    struct elect e;
    struct elect_view v = { 0 };

    (void)state;
    assert_int_equal(standing(&e), ELECT_DO_COUNT);
    add_ballot(&v, "ballot0000000003", B, 0x2002);
    add_ballot(&v, "ballot0000000004", ME, SID);
    /* no ack yet: the winner has not finished; nothing to follow */
    assert_int_equal(counted(&e, &v), 0);
    assert_int_equal(e.state, ELECT_FOLLOWER);
    assert_string_equal(e.leader, "");
    set_ack(&v, B, 0x2002);
    assert_int_equal(counted(&e, &v), ELECT_DO_FOLLOW);
    assert_int_equal(result(&e, ELECT_DO_FOLLOW, 1), 0);
    assert_string_equal(e.following, B);
    /* the same again: nothing to do */
    assert_int_equal(counted(&e, &v), 0);
    /* the leader changes (C took over): follow C */
    set_ack(&v, C, 0x3003);
    assert_int_equal(counted(&e, &v), ELECT_DO_FOLLOW);
    /* a failed SLAVEOF is tried again a second later */
    assert_int_equal(result(&e, ELECT_DO_FOLLOW, 0), 0);
    clock_ms += ELECT_RETRY_MS;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), ELECT_DO_FOLLOW);
}

static void test_ack_naming_us_from_an_old_session_is_not_followed(void **state)
{
    struct elect e;
    struct elect_view v = { 0 };

    (void)state;
    assert_int_equal(standing(&e), ELECT_DO_COUNT);
    /* our previous process's ballot and ack: its session has not expired */
    add_ballot(&v, "ballot0000000003", ME, 0x0bad);
    add_ballot(&v, "ballot0000000008", ME, SID);
    set_ack(&v, ME, 0x0bad);
    assert_int_equal(counted(&e, &v), 0);
    assert_int_equal(e.state, ELECT_FOLLOWER);
}

static void test_lowest_waits_for_a_foreign_ack(void **state)
{
    struct elect e;
    struct elect_view v = { 0 };

    (void)state;
    assert_int_equal(standing(&e), ELECT_DO_COUNT);
    add_ballot(&v, "ballot0000000004", ME, SID);
    set_ack(&v, B, 0x2002);          /* its owner's session is ending */
    assert_int_equal(counted(&e, &v) & ELECT_DO_PROMOTE, 0);
    assert_int_equal(e.state, ELECT_FOLLOWER);
    v.ack_exists = 0;
    assert_int_equal(counted(&e, &v), ELECT_DO_PROMOTE);
}

/* We are the lowest ballot, B the next; our promotion comes back "yield"
 * (a server ahead of ours): we withdraw our ballot. */
static void stand_then_yield(struct elect *e, struct elect_view *v)
{
    struct elect_event x;

    assert_int_equal(standing(e), ELECT_DO_COUNT);
    add_ballot(v, "ballot0000000004", ME, SID);
    add_ballot(v, "ballot0000000005", B, 0x2002);
    assert_int_equal(counted(e, v), ELECT_DO_PROMOTE);
    x = ev(ELECT_EV_RESULT);
    x.action = ELECT_DO_PROMOTE;
    x.yield = 1;
    assert_int_equal(elect_step(e, &x), ELECT_DO_WITHDRAW);
}

static void test_yield_revotes_later(void **state)
{
    struct elect e;
    struct elect_view v = { 0 };

    (void)state;
    stand_then_yield(&e, &v);
    assert_int_equal(e.state, ELECT_COUNTING);
    assert_int_equal(result(&e, ELECT_DO_WITHDRAW, 1), 0);
    clock_ms += ELECT_YIELD_DELAY_MS / 2;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), 0);
    clock_ms += ELECT_YIELD_DELAY_MS;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), ELECT_DO_CAST);
}

static void test_one_ballot_per_session(void **state)
{
    struct elect e;
    struct elect_view v = { 0 };

    (void)state;
    stand_then_yield(&e, &v);
    assert_int_equal(result(&e, ELECT_DO_WITHDRAW, 1), 0);
    /* a watch fires before the delayed re-vote: cast now... */
    memset(&v, 0, sizeof(v));
    add_ballot(&v, "ballot0000000005", B, 0x2002);
    assert_int_equal(counted(&e, &v), ELECT_DO_CAST);
    assert_int_equal(result(&e, ELECT_DO_CAST, 1), ELECT_DO_COUNT);
    /* ...and the delayed one must not cast a second ballot */
    clock_ms += 10 * ELECT_YIELD_DELAY_MS;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)) & ELECT_DO_CAST, 0);
}

/* ---- the leader's safety ---------------------------------------------------- */

static void test_leader_redis_down_resigns_at_once(void **state)
{
    struct elect e;

    (void)state;
    leader(&e);
    assert_int_equal(step(&e, ev(ELECT_EV_REDIS_DOWN)),
                     ELECT_DO_UNACK | ELECT_DO_CLOSE | ELECT_DO_OPEN);
    assert_int_equal(e.state, ELECT_IDLE);
    assert_int_equal(result(&e, ELECT_DO_CLOSE, 1), 0);
    assert_int_equal(result(&e, ELECT_DO_OPEN, 1), 0);
    /* a new session, but the redis is still down: no ballot */
    assert_int_equal(connected(&e), 0);
    assert_int_equal(step(&e, ev(ELECT_EV_REDIS_UP)), ELECT_DO_CAST);
}

static void test_follower_redis_down_withdraws(void **state)
{
    struct elect e;

    (void)state;
    follower_of(&e, B);
    assert_int_equal(step(&e, ev(ELECT_EV_REDIS_DOWN)), ELECT_DO_WITHDRAW);
    assert_int_equal(e.state, ELECT_IDLE);
    /* the delete was lost with the connection: done on reconnect */
    assert_int_equal(lost_result(&e, ELECT_DO_WITHDRAW), 0);
    assert_int_equal(step(&e, ev(ELECT_EV_DISCONNECTED)), 0);
    assert_int_equal(connected(&e), ELECT_DO_WITHDRAW);
    assert_int_equal(result(&e, ELECT_DO_WITHDRAW, 1), 0);
    assert_int_equal(step(&e, ev(ELECT_EV_REDIS_UP)), ELECT_DO_CAST);
}

static void test_partition_within_the_session(void **state)
{
    struct elect e;
    struct elect_event x;
    struct elect_view v = { 0 };

    (void)state;
    leader(&e);
    x = ev(ELECT_EV_DISCONNECTED);
    x.contact_ms = clock_ms - 200;
    assert_int_equal(elect_step(&e, &x), ELECT_DO_PAUSE);
    assert_int_equal(e.state, ELECT_FENCED);
    assert_true(e.paused);
    assert_int_equal(e.deadline_ms, clock_ms - 200 + T - elect_margin_ms(T));
    clock_ms += 500;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), 0);
    assert_int_equal(e.state, ELECT_FENCED);
    /* the same session comes back: read, and resume only if still ours */
    assert_int_equal(connected(&e), ELECT_DO_COUNT);
    add_ballot(&v, "ballot0000000007", ME, SID);
    set_ack(&v, ME, SID);
    assert_int_equal(counted(&e, &v), ELECT_DO_UNPAUSE);
    assert_int_equal(e.state, ELECT_LEADER);
    assert_int_equal(result(&e, ELECT_DO_UNPAUSE, 1), 0);
    assert_false(e.paused);
}

static void test_partition_beyond_the_session(void **state)
{
    struct elect e;
    struct elect_event x;
    uint64_t deadline;

    (void)state;
    leader(&e);
    x = ev(ELECT_EV_DISCONNECTED);
    assert_int_equal(elect_step(&e, &x), ELECT_DO_PAUSE);
    deadline = e.deadline_ms;
    /* demoted before the server can have expired us: at most T/3 after */
    assert_true(deadline <= clock_ms + T / 3);
    clock_ms = deadline - 1;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), 0);
    clock_ms = deadline;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), ELECT_DO_DEMOTE);
    assert_int_equal(e.state, ELECT_DEMOTED);
    assert_string_equal(elect_demote_target(&e), B);   /* our successor */
    assert_int_equal(result(&e, ELECT_DO_DEMOTE, 1), 0);
    assert_false(e.paused);
    assert_string_equal(e.following, B);
    /* the session was gone: a new one; we come back as a follower */
    assert_int_equal(step(&e, ev(ELECT_EV_EXPIRED)), ELECT_DO_OPEN);
    assert_int_equal(e.state, ELECT_IDLE);
}

static void test_demotion_retried_while_paused(void **state)
{
    struct elect e;

    (void)state;
    leader(&e);
    assert_int_equal(step(&e, ev(ELECT_EV_DISCONNECTED)), ELECT_DO_PAUSE);
    clock_ms += T;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), ELECT_DO_DEMOTE);
    /* the successor had not caught up yet: try again, writes stay paused */
    assert_int_equal(result(&e, ELECT_DO_DEMOTE, 0), 0);
    assert_true(e.paused);
    clock_ms += ELECT_DEMOTE_RETRY_MS;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), ELECT_DO_DEMOTE);
    assert_int_equal(result(&e, ELECT_DO_DEMOTE, 1), 0);
    assert_false(e.paused);
    /* nothing more to demote */
    clock_ms += 10 * ELECT_DEMOTE_RETRY_MS;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), 0);
}

static void test_reconnect_after_demoting_resigns(void **state)
{
    struct elect e;

    (void)state;
    leader(&e);
    assert_int_equal(step(&e, ev(ELECT_EV_DISCONNECTED)), ELECT_DO_PAUSE);
    clock_ms += T;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), ELECT_DO_DEMOTE);
    /* the server had kept the session after all: our redis is demoted, so
     * the leadership must go */
    assert_int_equal(connected(&e), ELECT_DO_UNACK | ELECT_DO_CLOSE | ELECT_DO_OPEN);
    assert_int_equal(e.state, ELECT_IDLE);
}

static void test_expired_leader_pauses_demotes_and_follows(void **state)
{
    struct elect e;
    struct elect_view v = { 0 };

    (void)state;
    leader(&e);
    assert_int_equal(step(&e, ev(ELECT_EV_EXPIRED)),
                     ELECT_DO_PAUSE | ELECT_DO_DEMOTE | ELECT_DO_OPEN);
    assert_true(e.paused);
    assert_int_equal(result(&e, ELECT_DO_DEMOTE, 0), 0);   /* B lacked our writes */
    assert_true(e.paused);
    assert_int_equal(result(&e, ELECT_DO_OPEN, 1), 0);
    assert_int_equal(connected(&e), ELECT_DO_CAST);
    assert_int_equal(result(&e, ELECT_DO_CAST, 1), ELECT_DO_COUNT);
    add_ballot(&v, "ballot0000000009", B, 0x2002);
    add_ballot(&v, "ballot0000000012", ME, SID);
    set_ack(&v, B, 0x2002);
    /* B won (it caught up from us): follow it, which unpauses */
    assert_int_equal(counted(&e, &v), ELECT_DO_FOLLOW);
    assert_int_equal(result(&e, ELECT_DO_FOLLOW, 1), 0);
    assert_false(e.paused);
}

static void test_ack_lost_then_recovered(void **state)
{
    struct elect e;
    struct elect_view v = { 0 };

    (void)state;
    assert_int_equal(standing(&e), ELECT_DO_COUNT);
    add_ballot(&v, "ballot0000000007", ME, SID);
    assert_int_equal(counted(&e, &v), ELECT_DO_PROMOTE);
    assert_int_equal(result(&e, ELECT_DO_PROMOTE, 1), ELECT_DO_ACK);
    /* the create's answer is lost with the connection */
    assert_int_equal(lost_result(&e, ELECT_DO_ACK), 0);
    assert_int_equal(step(&e, ev(ELECT_EV_DISCONNECTED)), ELECT_DO_PAUSE);
    assert_int_equal(e.state, ELECT_FENCED);
    assert_int_equal(connected(&e), ELECT_DO_COUNT);
    /* it did not happen: acknowledge now (no second promotion) */
    assert_int_equal(counted(&e, &v), ELECT_DO_ACK);
    assert_int_equal(result(&e, ELECT_DO_ACK, 1), ELECT_DO_UNPAUSE);
    assert_int_equal(e.state, ELECT_LEADER);
}

static void test_foreign_ack_pauses_a_promoted_winner(void **state)
{
    struct elect e;
    struct elect_view v = { 0 };

    (void)state;
    assert_int_equal(standing(&e), ELECT_DO_COUNT);
    add_ballot(&v, "ballot0000000007", ME, SID);
    assert_int_equal(counted(&e, &v), ELECT_DO_PROMOTE);
    assert_int_equal(result(&e, ELECT_DO_PROMOTE, 1), ELECT_DO_ACK);
    assert_int_equal(result(&e, ELECT_DO_ACK, 0), ELECT_DO_PAUSE | ELECT_DO_COUNT);
    assert_true(e.paused);
    assert_int_equal(e.state, ELECT_COUNTING);
}

/* ---- stopping --------------------------------------------------------------- */

static void test_sigterm_leader_abdicates(void **state)
{
    struct elect e;

    (void)state;
    leader(&e);
    assert_int_equal(step(&e, ev(ELECT_EV_TERM)), ELECT_DO_ABDICATE);
    assert_int_equal(e.state, ELECT_ABDICATING);
    assert_int_equal(step(&e, ev(ELECT_EV_REDIS_DOWN)), 0);    /* too late to matter */
    assert_int_equal(result(&e, ELECT_DO_ABDICATE, 1), ELECT_DO_EXIT);
    assert_int_equal(e.state, ELECT_DONE);
    assert_int_equal(e.exit_code, 0);
    assert_int_equal(step(&e, ev(ELECT_EV_TERM)), 0);
}

static void test_sigterm_follower_closes(void **state)
{
    struct elect e;

    (void)state;
    follower_of(&e, B);
    assert_int_equal(step(&e, ev(ELECT_EV_TERM)), ELECT_DO_CLOSE | ELECT_DO_EXIT);
    assert_int_equal(e.state, ELECT_DONE);
}

static void test_sigterm_while_fenced_demotes(void **state)
{
    struct elect e;

    (void)state;
    leader(&e);
    assert_int_equal(step(&e, ev(ELECT_EV_DISCONNECTED)), ELECT_DO_PAUSE);
    assert_int_equal(step(&e, ev(ELECT_EV_TERM)),
                     ELECT_DO_DEMOTE | ELECT_DO_CLOSE | ELECT_DO_EXIT);
}

static void test_child_exit_as_leader(void **state)
{
    struct elect e;
    struct elect_event x;

    (void)state;
    leader(&e);
    x = ev(ELECT_EV_CHILD_EXIT);
    x.exit_code = 1;
    assert_int_equal(elect_step(&e, &x), ELECT_DO_UNACK | ELECT_DO_CLOSE | ELECT_DO_EXIT);
    assert_int_equal(e.state, ELECT_DONE);
    assert_int_equal(e.exit_code, 1);
}

static void test_no_zookeeper_steps_while_disconnected(void **state)
{
    struct elect e;

    (void)state;
    follower_of(&e, B);
    assert_int_equal(step(&e, ev(ELECT_EV_DISCONNECTED)), 0);
    assert_int_equal(step(&e, ev(ELECT_EV_CHANGED)), 0);
    assert_int_equal(e.state, ELECT_FOLLOWER);
    /* a follower does not fence: its redis is a replica already */
    clock_ms += 10 * T;
    assert_int_equal(step(&e, ev(ELECT_EV_TICK)), 0);
    assert_int_equal(connected(&e), ELECT_DO_COUNT);
}

static void test_actions_format(void **state)
{
    char buf[128];

    (void)state;
    elect_actions_format(ELECT_DO_PAUSE | ELECT_DO_EXIT, buf, sizeof(buf));
    assert_string_equal(buf, "PAUSE|EXIT");
    elect_actions_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "-");
    assert_string_equal(elect_state_name(ELECT_FENCED), "FENCED");
}

/* ---- replication: who holds whose writes ------------------------------------- */

static struct ctl_repl repl(const char *role, const char *id, int64_t off, const char *id2,
                            int64_t off2)
{
    struct ctl_repl r;

    memset(&r, 0, sizeof(r));
    snprintf(r.role, sizeof(r.role), "%s", role);
    snprintf(r.replid, sizeof(r.replid), "%s", id);
    snprintf(r.replid2, sizeof(r.replid2), "%s", id2);
    r.offset = off;
    r.second_offset = off2;
    return r;
}

#define ZERO "0000000000000000000000000000000000000000"

static void test_repl_parse(void **state)
{
    const char *info =
        "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.2\r\nmaster_port:6379\r\n"
        "master_link_status:up\r\nslave_repl_offset:1234\r\n"
        "master_replid:aaaa\r\nmaster_replid2:" ZERO "\r\nmaster_repl_offset:1234\r\n"
        "second_repl_offset:-1\r\n";
    struct ctl_repl r;
    char err[128];

    (void)state;
    assert_int_equal(ctl_repl_parse(info, &r, err, sizeof(err)), 0);
    assert_string_equal(r.role, "slave");
    assert_string_equal(r.master, "10.0.0.2:6379");
    assert_true(r.link_up);
    assert_int_equal(r.offset, 1234);
    assert_int_equal(r.second_offset, -1);
    assert_int_equal(ctl_repl_parse("# Replication\r\nrole:master\r\n", &r, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "master_repl_offset"));
}

static void test_repl_holds_and_ahead(void **state)
{
    struct ctl_repl master = repl("master", "aaaa", 1000, ZERO, -1);
    struct ctl_repl behind = repl("slave", "aaaa", 990, ZERO, -1);
    struct ctl_repl same = repl("slave", "aaaa", 1000, ZERO, -1);
    /* promoted at 1000: new history, the old one kept up to 1000 */
    struct ctl_repl promoted = repl("master", "bbbb", 1500, "aaaa", 1001);
    struct ctl_repl fresh = repl("master", "cccc", 0, ZERO, -1);

    (void)state;
    assert_true(ctl_repl_holds(&same, &master));
    assert_false(ctl_repl_holds(&behind, &master));
    assert_true(ctl_repl_ahead(&master, &behind));
    assert_false(ctl_repl_ahead(&behind, &master));
    assert_false(ctl_repl_ahead(&same, &master));
    assert_true(ctl_repl_holds(&promoted, &master));
    assert_true(ctl_repl_holds(&promoted, &behind));
    assert_false(ctl_repl_holds(&master, &promoted));
    /* an empty server must never win over one with data, whatever its history */
    assert_true(ctl_repl_ahead(&master, &fresh));
    assert_false(ctl_repl_ahead(&fresh, &master));
    assert_false(ctl_repl_holds(&fresh, &master));
    /* a history that went further than the promotion kept is not held */
    master.offset = 1200;
    assert_false(ctl_repl_holds(&promoted, &master));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ballot_names),
        cmocka_unit_test(test_view_sort_finds_lowest_of_ours),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_same_addr),
        cmocka_unit_test(test_redis_down_does_not_stand),
        cmocka_unit_test(test_lowest_promotes_then_acknowledges),
        cmocka_unit_test(test_follower_follows_the_ack_only),
        cmocka_unit_test(test_ack_naming_us_from_an_old_session_is_not_followed),
        cmocka_unit_test(test_lowest_waits_for_a_foreign_ack),
        cmocka_unit_test(test_yield_revotes_later),
        cmocka_unit_test(test_one_ballot_per_session),
        cmocka_unit_test(test_leader_redis_down_resigns_at_once),
        cmocka_unit_test(test_follower_redis_down_withdraws),
        cmocka_unit_test(test_partition_within_the_session),
        cmocka_unit_test(test_partition_beyond_the_session),
        cmocka_unit_test(test_demotion_retried_while_paused),
        cmocka_unit_test(test_reconnect_after_demoting_resigns),
        cmocka_unit_test(test_expired_leader_pauses_demotes_and_follows),
        cmocka_unit_test(test_ack_lost_then_recovered),
        cmocka_unit_test(test_foreign_ack_pauses_a_promoted_winner),
        cmocka_unit_test(test_sigterm_leader_abdicates),
        cmocka_unit_test(test_sigterm_follower_closes),
        cmocka_unit_test(test_sigterm_while_fenced_demotes),
        cmocka_unit_test(test_child_exit_as_leader),
        cmocka_unit_test(test_no_zookeeper_steps_while_disconnected),
        cmocka_unit_test(test_actions_format),
        cmocka_unit_test(test_repl_parse),
        cmocka_unit_test(test_repl_holds_and_ahead),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
