/*
 * session: what a client's connection carries beyond single commands, tracked
 * from the commands it sends and the replies it gets. Pure logic, no I/O, so
 * unit tests can drive it with synthetic commands and replies.
 *
 * It answers two questions the data path and the master switch depend on:
 *  - which sent command does this reply belong to, and is that command now
 *    complete? (pub/sub commands get one confirmation per channel, messages
 *    and RESP3 pushes belong to no command at all);
 *  - is the connection tied to its server (inside MULTI, holding WATCH,
 *    subscribed, in a blocking call, or a reply stream we no longer count)?
 */
#ifndef RZ_SESSION_H
#define RZ_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "cmd.h"

struct evbuffer;
struct resp_request;
struct resp_reply_info;

enum session_expect_kind {
    SESSION_EXPECT_ONE = 0,      /* exactly one reply */
    SESSION_EXPECT_CONFIRMS,     /* n confirmations of kind `pubsub` */
    SESSION_EXPECT_UNSUB_ALL,    /* confirmations until that kind's count is 0 */
    SESSION_EXPECT_NONE,         /* no reply at all (CLIENT REPLY OFF/SKIP) */
};

enum session_expect_flag {
    SESSION_EXP_BLOCKING = 1 << 0,  /* a blocking call: tied until answered */
    SESSION_EXP_PUBSUB = 1 << 1,    /* counted in pubsub_inflight */
    SESSION_EXP_HELLO = 1 << 2,     /* apply `proto` when answered without error */
    SESSION_EXP_RESET = 1 << 3,     /* RESET: back to a fresh connection when answered */
    SESSION_EXP_MOVE = 1 << 4,      /* SELECT/AUTH/HELLO: on success the client's session
                                       state becomes the one it asked for (client.c) */
    SESSION_EXP_RETRY = 1 << 6,     /* the client kept the bytes: a -READONLY refusal
                                       may be sent again (set by client.c) */
};

/* What one sent command waits for: one entry of a backend's reply FIFO. */
struct session_expect {
    uint8_t kind;                /* enum session_expect_kind */
    uint8_t pubsub;              /* enum cmd_pubsub */
    uint8_t flags;               /* enum session_expect_flag */
    uint8_t proto;               /* HELLO's requested version, 0 = unchanged */
    uint32_t n;                  /* confirmations still expected */
};

struct session {
    unsigned multi : 1;          /* MULTI sent, EXEC/DISCARD not yet */
    unsigned watch : 1;          /* WATCH sent and not released */
    unsigned raw : 1;            /* MONITOR/SYNC: replies no longer countable */
    unsigned reply_off : 1;      /* CLIENT REPLY OFF in force */
    unsigned skip_next : 1;      /* CLIENT REPLY SKIP: the next command gets no reply */
    unsigned stateful : 1;       /* state a new connection would lack and that the proxy
                                    cannot set up again (CLIENT TRACKING, state set
                                    inside MULTI or with replies off) */
    int proto;                   /* RESP version of the connection: 2 or 3 */
    uint32_t blocking;           /* blocking calls in flight */
    uint32_t pubsub_inflight;    /* pub/sub commands not yet fully confirmed */
    long long channels;          /* subscriptions as confirmed by the server */
    long long patterns;
    long long shard;
    long long sub_total;         /* channels + patterns, as the server last reported */
};

enum session_reply {
    SESSION_REPLY_DONE,          /* the head command is complete: pop it */
    SESSION_REPLY_PART,          /* a confirmation; the head expects more */
    SESSION_REPLY_OOB,           /* a message or push that belongs to no command */
    SESSION_REPLY_STRAY,         /* a reply with no command waiting: stream out of sync */
};

void session_init(struct session *s);

/* The command described by ci/req is being sent: update the state and fill
 * *exp with what it waits for. Not called for RESP_REQ_EMPTY requests. */
void session_on_send(struct session *s, const struct cmd_info *ci,
                     const struct resp_request *req, struct session_expect *exp);

/* A complete top-level reply arrived; head is the oldest command still
 * waiting (NULL if none). On DONE the caller pops head. */
enum session_reply session_on_reply(struct session *s, struct session_expect *head,
                                    const struct resp_reply_info *ri);

/* Tied: the connection cannot move to another server without breaking what
 * the client is doing. */
int session_tied(const struct session *s);
int session_subscribed(const struct session *s);

/* ---- session state ------------------------------------------------------ */

/*
 * The session state a connection carries and a client can change with
 * SELECT, HELLO and AUTH. Shared connections are grouped by it (group.h);
 * a new connection is set up in it before any client command.
 */
struct session_state {
    int db;                      /* SELECT */
    int proto;                   /* 2 or 3: HELLO */
    char *user;                  /* authenticated as; NULL = no AUTH sent */
    size_t userlen;
    char *pass;                  /* the password that authenticated `user`: a secret,
                                    never logged or shown */
    size_t passlen;
    int legacy_auth;             /* AUTH <password> (one argument): sent again so, for
                                    servers without ACLs */
};

void session_state_init(struct session_state *s);
void session_state_free(struct session_state *s);
/* dst becomes a deep copy of src (dst's old strings are freed). */
void session_state_copy(struct session_state *dst, const struct session_state *src);
/* Authenticated as the same user (or both not at all). */
int session_state_same_user(const struct session_state *a, const struct session_state *b);
/* Same state: db, protocol and user (the password is how, not what). */
int session_state_same(const struct session_state *a, const struct session_state *b);
/* Same state and the same password. */
int session_state_same_cred(const struct session_state *a, const struct session_state *b);
/* Authenticate as user with pass (copied). user NULL: one-argument AUTH. */
void session_state_set_user(struct session_state *s, const char *user, size_t userlen,
                            const char *pass, size_t passlen);
/* Append the commands that put a fresh connection in state s (AUTH, HELLO 3,
 * SELECT) to out. A state without AUTH authenticates with dflt's user and
 * password, if dflt is not NULL and has one (the pool's backend-user).
 * Returns how many commands: each gets one reply. */
int session_state_setup(const struct session_state *s, const struct session_state *dflt,
                        struct evbuffer *out);
/* "db=3 resp=3 user=alice" (user=default when no AUTH was sent). */
void session_state_describe(const struct session_state *s, char *buf, size_t len);

#endif
