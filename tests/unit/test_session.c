/*
 * Unit tests for cmd (classification) and session (tied state and reply
 * attribution), driven by synthetic commands and replies. The master
 * switch depends on these answers being exact.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "resp.h"
#include "session.h"

/* A small model of one connection: the FIFO of expectations on it. */
struct conn {
    struct session s;
    struct session_expect q[64];
    int qlen;
};

static struct resp_request make_req(const char *line)
{
    struct resp_request req;
    char buf[256], *tok, *save = NULL;
    int i = 0, seen_streams = 0;

    memset(&req, 0, sizeof(req));
    snprintf(buf, sizeof(buf), "%s", line);
    for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++) {
        char *dst = i == 0 ? req.name : i == 1 ? req.arg1 : i == 2 ? req.arg2 : NULL;
        size_t *dlen = i == 0 ? &req.namelen : i == 1 ? &req.arg1len : &req.arg2len;
        if (i > 0 && strcasecmp(tok, "streams") == 0)
            seen_streams = 1;   /* BLOCK after STREAMS is a key, not the option */
        if (i > 0 && strcasecmp(tok, "block") == 0 && !seen_streams)
            req.flags |= RESP_REQ_BLOCK_ARG;
        if (dst != NULL) {
            *dlen = strlen(tok);
            for (size_t k = 0; k <= *dlen && k < RESP_NAME_MAX - 1; k++)
                dst[k] = (char)((tok[k] >= 'A' && tok[k] <= 'Z') ? tok[k] + 32 : tok[k]);
        }
    }
    req.argc = i;
    return req;
}

static void send_cmd(struct conn *c, const char *line)
{
    struct resp_request req = make_req(line);
    struct cmd_info ci = cmd_classify(&req);

    session_on_send(&c->s, &ci, &req, &c->q[c->qlen++]);
}

static struct resp_reply_info plain(char type)
{
    struct resp_reply_info ri;

    memset(&ri, 0, sizeof(ri));
    ri.type = type;
    return ri;
}

static struct resp_reply_info pubsub(char type, const char *kind, long long count)
{
    struct resp_reply_info ri = plain(type);

    ri.nelem = 3;
    ri.kindlen = strlen(kind);
    memcpy(ri.kind, kind, ri.kindlen + 1);
    ri.has_count = count >= 0;
    ri.count = count;
    return ri;
}

/* Feed a reply; pop the head on DONE, like backend.c. */
static enum session_reply recv_reply(struct conn *c, struct resp_reply_info ri)
{
    enum session_reply r = session_on_reply(&c->s, c->qlen ? &c->q[0] : NULL, &ri);

    if (r == SESSION_REPLY_DONE) {
        memmove(&c->q[0], &c->q[1], sizeof(c->q[0]) * (size_t)(c->qlen - 1));
        c->qlen--;
    }
    return r;
}

static void conn_init(struct conn *c)
{
    memset(c, 0, sizeof(*c));
    session_init(&c->s);
}

static void test_classify(void **state)
{
    static const struct { const char *cmd; unsigned must; unsigned mustnot; } cases[] = {
        { "GET k", 0, CMD_PIN },
        { "SET k v", 0, CMD_PIN },
        { "EXEC", CMD_EXEC, CMD_PIN },
        { "MULTI", CMD_PIN | CMD_MULTI, 0 },
        { "WATCH k", CMD_PIN | CMD_WATCH, 0 },
        { "BLPOP k 0", CMD_PIN | CMD_BLOCKING, 0 },
        { "BRPOP k 0", CMD_PIN | CMD_BLOCKING, 0 },
        { "BLMOVE a b LEFT RIGHT 0", CMD_PIN | CMD_BLOCKING, 0 },
        { "BZPOPMIN z 0", CMD_PIN | CMD_BLOCKING, 0 },
        { "WAIT 1 0", CMD_PIN | CMD_BLOCKING, 0 },
        { "XREAD COUNT 1 STREAMS s 0", 0, CMD_PIN },
        { "XREAD BLOCK 0 STREAMS s $", CMD_PIN | CMD_BLOCKING, 0 },
        { "XREADGROUP GROUP g c BLOCK 10 STREAMS s >", CMD_PIN | CMD_BLOCKING, 0 },
        { "SUBSCRIBE a", CMD_PIN | CMD_PUBSUB, 0 },
        { "SSUBSCRIBE a", CMD_PIN | CMD_PUBSUB, 0 },
        { "MONITOR", CMD_PIN | CMD_RAW, 0 },
        { "SELECT 1", CMD_GROUP | CMD_STATE, CMD_PIN },
        { "AUTH pw", CMD_GROUP | CMD_STATE, CMD_PIN },
        { "HELLO 3", CMD_GROUP | CMD_HELLO, CMD_PIN },
        { "CLIENT SETNAME x", CMD_LOCAL, CMD_PIN | CMD_RAW },
        { "client setinfo lib-name x", CMD_LOCAL, CMD_PIN },
        { "CLIENT GETNAME", CMD_LOCAL, CMD_PIN },
        { "CLIENT REPLY OFF", CMD_PIN | CMD_CLIENT_REPLY, CMD_RAW },
        { "CLIENT TRACKING ON", CMD_PIN | CMD_STATE, CMD_LOCAL },
        { "CLIENT CACHING YES", CMD_PIN | CMD_STATE, CMD_LOCAL },
        { "CLIENT ID", CMD_PIN, CMD_LOCAL },
        { "CLIENT INFO", CMD_PIN, CMD_LOCAL },
        { "CLIENT KILL ID 1", CMD_PIN, CMD_LOCAL },
        { "CLIENT NO-EVICT on", CMD_PIN | CMD_STATE, CMD_LOCAL },
        { "CLIENT NO-TOUCH on", CMD_PIN | CMD_STATE, CMD_LOCAL },
        { "CLIENT UNBLOCK 1", CMD_PIN, CMD_LOCAL },
        { "CLIENT PAUSE 10", CMD_PIN, CMD_LOCAL },
        { "CLIENT GETREDIR", CMD_PIN, CMD_LOCAL },
        { "CLIENT TRACKINGINFO", CMD_PIN, CMD_LOCAL },
        { "CLIENT LIST", 0, CMD_PIN | CMD_LOCAL },
        { "CLIENT HELP", 0, CMD_PIN | CMD_LOCAL },
        { "CLIENT UNPAUSE", 0, CMD_PIN | CMD_LOCAL },
        { "CLIENT NEWSUBCOMMAND", CMD_PIN | CMD_STATE, CMD_LOCAL },
        { "CLIENT", CMD_PIN, CMD_LOCAL },
        { "READONLY", CMD_PIN, 0 },
        { "RESET", CMD_PIN | CMD_RESET, 0 },
        { "QUIT", CMD_LOCAL, CMD_PIN },
        { "PROXY INFO", CMD_LOCAL, CMD_PIN },
        { "SYNC", CMD_PIN | CMD_RAW, 0 },
        /* the rest of the table, so every name is found whatever the lookup */
        { "ASKING", CMD_PIN | CMD_STATE, 0 },
        { "BLMPOP 0 1 k LEFT", CMD_PIN | CMD_BLOCKING, 0 },
        { "BRPOPLPUSH a b 0", CMD_PIN | CMD_BLOCKING, 0 },
        { "BZMPOP 0 1 z MIN", CMD_PIN | CMD_BLOCKING, 0 },
        { "BZPOPMAX z 0", CMD_PIN | CMD_BLOCKING, 0 },
        { "DISCARD", CMD_EXEC, CMD_PIN },
        { "PSUBSCRIBE a*", CMD_PIN | CMD_PUBSUB, 0 },
        { "PUNSUBSCRIBE", CMD_PIN | CMD_PUBSUB, 0 },
        { "PSYNC ? -1", CMD_PIN | CMD_RAW, 0 },
        { "READWRITE", CMD_PIN | CMD_STATE, 0 },
        { "REPLCONF x y", CMD_PIN, CMD_RAW },
        { "SUNSUBSCRIBE", CMD_PIN | CMD_PUBSUB, 0 },
        { "UNSUBSCRIBE", CMD_PIN | CMD_PUBSUB, 0 },
        { "UNWATCH", CMD_UNWATCH, CMD_PIN },
        { "WAITAOF 0 1 0", CMD_PIN | CMD_BLOCKING, 0 },
        { "Get k", 0, CMD_PIN },
        { "SETNAME x", 0, CMD_PIN },
        { "SELECTX 1", 0, CMD_PIN },
        { "averyveryveryverylongcommandnamethatistruncated", 0, CMD_PIN },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp_request req = make_req(cases[i].cmd);
        struct cmd_info ci = cmd_classify(&req);

        if ((ci.flags & cases[i].must) != cases[i].must || (ci.flags & cases[i].mustnot))
            fail_msg("%s: flags 0x%x", cases[i].cmd, ci.flags);
    }
    assert_int_equal(cmd_pubsub_kind("punsubscribe", 12), CMD_PS_PUNSUBSCRIBE);
    assert_int_equal(cmd_pubsub_kind("message", 7), CMD_PS_NONE);
}

static void test_multi_exec_discard(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "MULTI");
    assert_true(c.s.multi);
    assert_true(session_tied(&c.s));
    send_cmd(&c, "SET a 1");
    send_cmd(&c, "BLPOP k 0");      /* queued, not blocking */
    assert_int_equal(c.s.blocking, 0);
    send_cmd(&c, "EXEC");
    assert_false(c.s.multi);
    for (int i = 0; i < 3; i++)
        assert_int_equal(recv_reply(&c, plain('+')), SESSION_REPLY_DONE);
    assert_int_equal(recv_reply(&c, plain('*')), SESSION_REPLY_DONE);
    assert_int_equal(c.qlen, 0);
    assert_false(session_tied(&c.s));

    send_cmd(&c, "MULTI");
    send_cmd(&c, "DISCARD");
    assert_false(session_tied(&c.s));
}

static void test_watch(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "WATCH k");
    assert_true(session_tied(&c.s));
    send_cmd(&c, "UNWATCH");
    assert_false(session_tied(&c.s));
    send_cmd(&c, "WATCH k");
    send_cmd(&c, "MULTI");
    send_cmd(&c, "EXEC");
    assert_false(session_tied(&c.s));
    send_cmd(&c, "WATCH k");
    send_cmd(&c, "RESET");
    assert_false(session_tied(&c.s));
}

static void test_blocking(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "BLPOP a 0");
    send_cmd(&c, "XREAD BLOCK 0 STREAMS s $");
    assert_int_equal(c.s.blocking, 2);
    assert_true(session_tied(&c.s));
    assert_int_equal(recv_reply(&c, plain('*')), SESSION_REPLY_DONE);
    assert_true(session_tied(&c.s));
    assert_int_equal(recv_reply(&c, plain('*')), SESSION_REPLY_DONE);
    assert_false(session_tied(&c.s));
}

static void test_subscribe_resp2(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "SUBSCRIBE a b");
    send_cmd(&c, "PSUBSCRIBE p*");
    assert_true(session_tied(&c.s));
    assert_int_equal(recv_reply(&c, pubsub('*', "subscribe", 1)), SESSION_REPLY_PART);
    assert_int_equal(recv_reply(&c, pubsub('*', "message", -1)), SESSION_REPLY_OOB);
    assert_int_equal(recv_reply(&c, pubsub('*', "subscribe", 2)), SESSION_REPLY_DONE);
    assert_int_equal(recv_reply(&c, pubsub('*', "psubscribe", 3)), SESSION_REPLY_DONE);
    assert_int_equal(c.s.channels, 2);
    assert_int_equal(c.s.patterns, 1);
    assert_int_equal(recv_reply(&c, pubsub('*', "pmessage", -1)), SESSION_REPLY_OOB);

    /* PING in subscribed RESP2 mode answers an array: a reply, not a message. */
    send_cmd(&c, "PING");
    assert_int_equal(recv_reply(&c, pubsub('*', "pong", -1)), SESSION_REPLY_DONE);

    /* UNSUBSCRIBE without arguments: one confirmation per channel, counts
     * include the pattern; it ends when channels reach zero. */
    send_cmd(&c, "UNSUBSCRIBE");
    assert_int_equal(recv_reply(&c, pubsub('*', "unsubscribe", 2)), SESSION_REPLY_PART);
    assert_int_equal(recv_reply(&c, pubsub('*', "unsubscribe", 1)), SESSION_REPLY_DONE);
    assert_int_equal(c.s.channels, 0);
    assert_true(session_tied(&c.s));           /* the pattern remains */
    send_cmd(&c, "PUNSUBSCRIBE");
    assert_int_equal(recv_reply(&c, pubsub('*', "punsubscribe", 0)), SESSION_REPLY_DONE);
    assert_false(session_tied(&c.s));

    /* Back to normal: an array that looks like a message is a reply now. */
    send_cmd(&c, "LRANGE l 0 -1");
    assert_int_equal(recv_reply(&c, pubsub('*', "message", -1)), SESSION_REPLY_DONE);
    assert_int_equal(c.qlen, 0);
}

static void test_unsubscribe_when_none(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "UNSUBSCRIBE");
    send_cmd(&c, "GET k");
    /* Redis answers one confirmation with a null channel and count 0. */
    assert_int_equal(recv_reply(&c, pubsub('*', "unsubscribe", 0)), SESSION_REPLY_DONE);
    assert_int_equal(recv_reply(&c, plain('$')), SESSION_REPLY_DONE);
    assert_false(session_tied(&c.s));
}

static void test_subscribe_error(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "SUBSCRIBE");
    assert_int_equal(recv_reply(&c, plain('-')), SESSION_REPLY_DONE);
    assert_false(session_tied(&c.s));
}

static void test_shard_and_resp3(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "HELLO 3");
    assert_int_equal(recv_reply(&c, plain('%')), SESSION_REPLY_DONE);
    assert_int_equal(c.s.proto, 3);
    send_cmd(&c, "SSUBSCRIBE s1");
    assert_int_equal(recv_reply(&c, pubsub('>', "ssubscribe", 1)), SESSION_REPLY_DONE);
    assert_int_equal(c.s.shard, 1);
    assert_true(session_tied(&c.s));
    /* RESP3: other commands work while subscribed; pushes are out of band. */
    send_cmd(&c, "LRANGE l 0 -1");
    assert_int_equal(recv_reply(&c, pubsub('>', "smessage", -1)), SESSION_REPLY_OOB);
    assert_int_equal(recv_reply(&c, pubsub('*', "message", -1)), SESSION_REPLY_DONE);
    assert_int_equal(recv_reply(&c, pubsub('>', "invalidate", -1)), SESSION_REPLY_OOB);
    send_cmd(&c, "SUNSUBSCRIBE");
    assert_int_equal(recv_reply(&c, pubsub('>', "sunsubscribe", 0)), SESSION_REPLY_DONE);
    assert_false(session_tied(&c.s));
    assert_int_equal(c.qlen, 0);
}

static void test_hello_error_keeps_proto(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "HELLO 3");
    assert_int_equal(recv_reply(&c, plain('-')), SESSION_REPLY_DONE);
    assert_int_equal(c.s.proto, 2);
    send_cmd(&c, "HELLO 3");
    recv_reply(&c, plain('%'));
    send_cmd(&c, "RESET");
    recv_reply(&c, plain('+'));
    assert_int_equal(c.s.proto, 2);
}

static void test_raw_is_tied_for_good(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "MONITOR");
    assert_true(c.s.raw);
    assert_true(session_tied(&c.s));
}

static void test_client_reply_modes(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    send_cmd(&c, "CLIENT REPLY OFF");
    send_cmd(&c, "SET a 1");
    send_cmd(&c, "INCR a");
    assert_int_equal(c.q[0].kind, SESSION_EXPECT_NONE);
    assert_int_equal(c.q[1].kind, SESSION_EXPECT_NONE);
    assert_int_equal(c.q[2].kind, SESSION_EXPECT_NONE);
    send_cmd(&c, "CLIENT REPLY ON");
    assert_int_equal(c.q[3].kind, SESSION_EXPECT_ONE);   /* +OK */
    send_cmd(&c, "CLIENT REPLY SKIP");
    send_cmd(&c, "INCR a");
    send_cmd(&c, "GET a");
    assert_int_equal(c.q[4].kind, SESSION_EXPECT_NONE);
    assert_int_equal(c.q[5].kind, SESSION_EXPECT_NONE);
    assert_int_equal(c.q[6].kind, SESSION_EXPECT_ONE);
    send_cmd(&c, "CLIENT REPLY MAYBE");                   /* an error reply */
    assert_int_equal(c.q[7].kind, SESSION_EXPECT_ONE);
    assert_false(session_tied(&c.s));

    /* No reply to a blocking call: we can no longer tell when it ends. */
    send_cmd(&c, "CLIENT REPLY SKIP");
    send_cmd(&c, "BLPOP k 0");
    assert_true(c.s.raw);
    assert_true(session_tied(&c.s));
}

static void test_stray_reply(void **state)
{
    struct conn c;

    (void)state;
    conn_init(&c);
    assert_int_equal(recv_reply(&c, plain('+')), SESSION_REPLY_STRAY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_multi_exec_discard),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_blocking),
        cmocka_unit_test(test_subscribe_resp2),
        cmocka_unit_test(test_unsubscribe_when_none),
        cmocka_unit_test(test_subscribe_error),
        cmocka_unit_test(test_shard_and_resp3),
        cmocka_unit_test(test_hello_error_keeps_proto),
        cmocka_unit_test(test_raw_is_tied_for_good),
        cmocka_unit_test(test_client_reply_modes),
        cmocka_unit_test(test_stray_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
