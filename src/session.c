#include "session.h"
#include "resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "util.h"

void session_init(struct session *s)
{
    memset(s, 0, sizeof(*s));
    s->proto = 2;
}

static void expect_pubsub(struct session *s, const struct cmd_info *ci,
                          const struct resp_request *req, struct session_expect *exp)
{
    int nargs = req->argc - 1;

    exp->pubsub = (uint8_t)ci->pubsub;
    exp->flags |= SESSION_EXP_PUBSUB;
    s->pubsub_inflight++;
    if (nargs > 0) {
        /* Redis confirms every argument, duplicates included. */
        exp->kind = SESSION_EXPECT_CONFIRMS;
        exp->n = (uint32_t)nargs;
    } else if (ci->pubsub == CMD_PS_UNSUBSCRIBE || ci->pubsub == CMD_PS_PUNSUBSCRIBE ||
               ci->pubsub == CMD_PS_SUNSUBSCRIBE) {
        /* One confirmation per subscription of that kind, or exactly one
         * (count unchanged) when there are none: either way it ends when
         * that kind's count reaches zero. */
        exp->kind = SESSION_EXPECT_UNSUB_ALL;
    } else {
        /* SUBSCRIBE without arguments: the server answers one error. */
        exp->kind = SESSION_EXPECT_CONFIRMS;
        exp->n = 1;
    }
}

/*
 * CLIENT REPLY ON|OFF|SKIP, and commands sent while replies are off. Returns
 * 1 if it decided *exp. A command that gets no reply but would have blocked
 * or subscribed leaves no way to tell when it ends: the stream goes raw.
 */
static int reply_mode(struct session *s, unsigned f, const struct resp_request *req,
                      struct session_expect *exp)
{
    if (f & CMD_CLIENT_REPLY) {
        int on = strcmp(req->arg2, "on") == 0, off = strcmp(req->arg2, "off") == 0;
        int skip = strcmp(req->arg2, "skip") == 0;

        if (req->argc != 3 || !(on || off || skip))
            return 0;                    /* the server answers an error */
        if (on) {
            s->reply_off = 0;
            s->skip_next = 0;
            return 0;                    /* +OK */
        }
        if (off)
            s->reply_off = 1;
        s->skip_next = skip && !s->reply_off;
        exp->kind = SESSION_EXPECT_NONE;
        return 1;
    }
    if (!s->reply_off && !s->skip_next)
        return 0;
    s->skip_next = 0;
    exp->kind = SESSION_EXPECT_NONE;
    if (f & CMD_STATE)
        s->stateful = 1;             /* no reply: we cannot know it succeeded */
    if (f & (CMD_BLOCKING | CMD_PUBSUB | CMD_MULTI | CMD_HELLO))
        s->raw = 1;
    return 1;
}

void session_on_send(struct session *s, const struct cmd_info *ci,
                     const struct resp_request *req, struct session_expect *exp)
{
    unsigned f = ci->flags;

    memset(exp, 0, sizeof(*exp));
    exp->kind = SESSION_EXPECT_ONE;

    /* Session state (db, protocol, user) is applied by the client when it
     * succeeds; any other state, or state queued in MULTI (it takes effect
     * at EXEC), cannot be set up again on another connection. */
    if ((f & CMD_STATE) && (s->multi || !(f & CMD_GROUP)))
        s->stateful = 1;
    else if (f & CMD_GROUP)
        exp->flags |= SESSION_EXP_MOVE;
    if (s->multi && (f & CMD_CLIENT_REPLY)) {
        /* Queued now, in force only at EXEC: we cannot tell when. */
        s->raw = 1;
        return;
    }
    if (!s->multi && reply_mode(s, f, req, exp))
        return;

    if (f & CMD_EXEC) {
        s->multi = 0;
        s->watch = 0;
        return;
    }
    if (f & CMD_RESET) {
        s->multi = 0;
        s->watch = 0;
        exp->flags |= SESSION_EXP_RESET;
        return;
    }
    if (s->multi) {
        /* Inside MULTI the server queues commands (+QUEUED): no blocking,
         * no subscriptions until EXEC. WATCH inside MULTI is an error. */
        return;
    }
    if (f & CMD_MULTI)
        s->multi = 1;
    if (f & CMD_WATCH)
        s->watch = 1;
    if (f & CMD_UNWATCH)
        s->watch = 0;
    if (f & CMD_RAW)
        s->raw = 1;
    if (f & CMD_BLOCKING) {
        exp->flags |= SESSION_EXP_BLOCKING;
        s->blocking++;
    }
    if (f & CMD_HELLO) {
        exp->flags |= SESSION_EXP_HELLO;
        if (strcmp(req->arg1, "2") == 0)
            exp->proto = 2;
        else if (strcmp(req->arg1, "3") == 0)
            exp->proto = 3;
    }
    if (f & CMD_PUBSUB)
        expect_pubsub(s, ci, req, exp);
}

static int is_message_kind(const struct resp_reply_info *ri)
{
    return (ri->kindlen == 7 && memcmp(ri->kind, "message", 7) == 0) ||
           (ri->kindlen == 8 && memcmp(ri->kind, "pmessage", 8) == 0) ||
           (ri->kindlen == 8 && memcmp(ri->kind, "smessage", 8) == 0);
}

/* Apply the subscription count a confirmation reports. Non-shard kinds
 * report channels + patterns together, so each kind's own count moves by
 * the difference to the previous total. */
static void apply_confirm(struct session *s, enum cmd_pubsub kind, long long count)
{
    long long delta = count - s->sub_total;

    switch (kind) {
    case CMD_PS_SUBSCRIBE:
    case CMD_PS_UNSUBSCRIBE:
        s->channels += delta;
        s->sub_total = count;
        break;
    case CMD_PS_PSUBSCRIBE:
    case CMD_PS_PUNSUBSCRIBE:
        s->patterns += delta;
        s->sub_total = count;
        break;
    case CMD_PS_SSUBSCRIBE:
    case CMD_PS_SUNSUBSCRIBE:
        s->shard = count;
        break;
    case CMD_PS_NONE:
        break;
    }
    if (s->channels < 0)
        s->channels = 0;
    if (s->patterns < 0)
        s->patterns = 0;
}

static long long count_of(const struct session *s, enum cmd_pubsub kind)
{
    switch (kind) {
    case CMD_PS_UNSUBSCRIBE:
        return s->channels;
    case CMD_PS_PUNSUBSCRIBE:
        return s->patterns;
    case CMD_PS_SUNSUBSCRIBE:
        return s->shard;
    default:
        return 0;
    }
}

/* The head command is answered: undo what it held. */
static void complete(struct session *s, const struct session_expect *head,
                     const struct resp_reply_info *ri)
{
    int is_error = ri->type == '-' || ri->type == '!';

    if ((head->flags & SESSION_EXP_BLOCKING) && s->blocking > 0)
        s->blocking--;
    if ((head->flags & SESSION_EXP_PUBSUB) && s->pubsub_inflight > 0)
        s->pubsub_inflight--;
    if ((head->flags & SESSION_EXP_HELLO) && head->proto != 0 && !is_error)
        s->proto = head->proto;
    if ((head->flags & SESSION_EXP_RESET) && !is_error) {
        int raw = s->raw;
        session_init(s);
        s->raw = raw;   /* RESET does not turn MONITOR's stream back into replies */
    }
}

static enum session_reply on_confirm(struct session *s, struct session_expect *head,
                                     enum cmd_pubsub kind, const struct resp_reply_info *ri)
{
    if (ri->has_count)
        apply_confirm(s, kind, ri->count);
    if (head->kind == SESSION_EXPECT_CONFIRMS) {
        if (head->n > 0)
            head->n--;
        if (head->n > 0)
            return SESSION_REPLY_PART;
    } else if (count_of(s, kind) > 0) {
        return SESSION_REPLY_PART;
    }
    complete(s, head, ri);
    return SESSION_REPLY_DONE;
}

enum session_reply session_on_reply(struct session *s, struct session_expect *head,
                                    const struct resp_reply_info *ri)
{
    int aggregate = ri->type == '*' || ri->type == '>';
    int pubsub_mode = s->pubsub_inflight > 0 || session_subscribed(s);

    if (aggregate && (ri->type == '>' || (s->proto == 2 && pubsub_mode))) {
        enum cmd_pubsub kind = cmd_pubsub_kind(ri->kind, ri->kindlen);

        if (head != NULL && head->kind != SESSION_EXPECT_ONE && kind != CMD_PS_NONE &&
            kind == (enum cmd_pubsub)head->pubsub)
            return on_confirm(s, head, kind, ri);
        /* RESP3 pushes never answer a command; in RESP2 pub/sub mode only
         * published messages arrive unasked. */
        if (ri->type == '>' || is_message_kind(ri))
            return SESSION_REPLY_OOB;
    }
    if (head == NULL)
        return SESSION_REPLY_STRAY;
    complete(s, head, ri);
    return SESSION_REPLY_DONE;
}

int session_subscribed(const struct session *s)
{
    return s->sub_total > 0 || s->channels > 0 || s->patterns > 0 || s->shard > 0;
}

int session_tied(const struct session *s)
{
    return s->multi || s->watch || s->raw || s->blocking > 0 || s->pubsub_inflight > 0 ||
           session_subscribed(s);
}

/* ---- session state ------------------------------------------------------ */

void session_state_init(struct session_state *s)
{
    memset(s, 0, sizeof(*s));
    s->proto = 2;
}

void session_state_free(struct session_state *s)
{
    free(s->user);
    if (s->pass != NULL)
        memset(s->pass, 0, s->passlen);     /* a secret: do not leave it in the heap */
    free(s->pass);
    session_state_init(s);
}

static char *dup_bytes(const char *s, size_t len)
{
    char *d = xmalloc(len + 1);

    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void session_state_copy(struct session_state *dst, const struct session_state *src)
{
    if (dst == src)
        return;
    session_state_free(dst);
    *dst = *src;
    if (src->user != NULL)
        dst->user = dup_bytes(src->user, src->userlen);
    if (src->pass != NULL)
        dst->pass = dup_bytes(src->pass, src->passlen);
}

int session_state_same_user(const struct session_state *a, const struct session_state *b)
{
    if ((a->user == NULL) != (b->user == NULL))
        return 0;
    return a->user == NULL ||
           (a->userlen == b->userlen && memcmp(a->user, b->user, a->userlen) == 0);
}

int session_state_same(const struct session_state *a, const struct session_state *b)
{
    return a->db == b->db && a->proto == b->proto && session_state_same_user(a, b);
}

int session_state_same_cred(const struct session_state *a, const struct session_state *b)
{
    if (!session_state_same(a, b))
        return 0;
    return a->user == NULL ||
           (a->passlen == b->passlen && memcmp(a->pass, b->pass, a->passlen) == 0);
}

void session_state_set_user(struct session_state *s, const char *user, size_t userlen,
                          const char *pass, size_t passlen)
{
    free(s->user);
    if (s->pass != NULL)
        memset(s->pass, 0, s->passlen);
    free(s->pass);
    /* One-argument AUTH authenticates "default" (redis 6+), and is the only
     * form a server without ACLs knows: it is sent again as it came. */
    s->legacy_auth = user == NULL;
    if (user == NULL) {
        user = "default";
        userlen = 7;
    }
    s->user = dup_bytes(user, userlen);
    s->userlen = userlen;
    s->pass = dup_bytes(pass, passlen);
    s->passlen = passlen;
}

/* One command as a RESP multibulk. */
static void add_command(struct evbuffer *out, int argc, const char *const argv[],
                        const size_t len[])
{
    evbuffer_add_printf(out, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        evbuffer_add_printf(out, "$%zu\r\n", len[i]);
        evbuffer_add(out, argv[i], len[i]);
        evbuffer_add(out, "\r\n", 2);
    }
}

int session_state_setup(const struct session_state *s, const struct session_state *dflt,
                        struct evbuffer *out)
{
    const struct session_state *auth = s->user != NULL ? s : dflt;
    int n = 0;

    /* AUTH first: on a server with requirepass, HELLO and SELECT need it. */
    if (auth != NULL && auth->user != NULL && auth->legacy_auth) {
        const char *argv[] = { "AUTH", auth->pass };
        const size_t len[] = { 4, auth->passlen };

        add_command(out, 2, argv, len);
        n++;
    } else if (auth != NULL && auth->user != NULL) {
        const char *argv[] = { "AUTH", auth->user, auth->pass };
        const size_t len[] = { 4, auth->userlen, auth->passlen };

        add_command(out, 3, argv, len);
        n++;
    }
    if (s->proto == 3) {
        const char *argv[] = { "HELLO", "3" };
        const size_t len[] = { 5, 1 };

        add_command(out, 2, argv, len);
        n++;
    }
    if (s->db != 0) {
        char db[16];
        const char *argv[] = { "SELECT", db };
        size_t len[] = { 6, 0 };

        len[1] = (size_t)snprintf(db, sizeof(db), "%d", s->db);
        add_command(out, 2, argv, len);
        n++;
    }
    return n;
}

void session_state_describe(const struct session_state *s, char *buf, size_t len)
{
    char user[64];

    if (s->user != NULL)
        util_escape(s->user, s->userlen, user, sizeof(user));
    snprintf(buf, len, "db=%d resp=%d user=%s", s->db, s->proto,
             s->user != NULL ? user : "default");
}
