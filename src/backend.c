/*
 * backend: a connection to the master and the FIFO of reply owners.
 *
 *   clients --- backend_send() ---> output evbuffer ---> master
 *                  |  pushes {owner, expectation} on q
 *   master ---> input evbuffer --- scan ---> reply bytes ---> owner's output
 *                                     |  complete reply: session_on_reply()
 *                                     |  decides if the head is answered;
 *                                     +- then pop q, client_reply_done()
 *
 * Bytes of a reply move to its owner as they arrive, before the reply is
 * complete: the head of q owns everything until its reply ends, so a 64 MiB
 * value streams through without being buffered whole. On a pinned
 * connection every byte goes to the one owner, and the scan only tracks
 * state (pub/sub confirmations, blocking calls).
 *
 * Backpressure: when an owner has more than output-buffer-limit unsent,
 * reading stops (paused_for) until its socket drains. On a shared connection
 * that delays the owners queued behind it, so pool_cron() disconnects an
 * owner that keeps a shared connection paused longer than
 * output-stall-timeout. Clients that want to send while our output is over
 * the limit wait in `waiters`.
 */
#include "backend.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "client.h"
#include "conf.h"
#include "group.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"
#include "replica.h"

#define REPLY_UNREACHABLE "-TRYAGAIN master unreachable\r\n"
#define REPLY_LOST "-ERR connection to master lost; the command may or may not have run\r\n"
#define REPLY_REPLICA_LOST "-TRYAGAIN connection to replica lost before its reply\r\n"

static void backend_read_cb(void *arg);
static void backend_drained(void *arg);
static void backend_event_cb(void *arg, int what, int err);

static const struct io_handler backend_io = { backend_read_cb, backend_drained, backend_event_cb };

/* ---- reply FIFO -------------------------------------------------------- */

static void q_push(struct backend *be, struct client *owner, const struct session_expect *exp)
{
    if (be->qlen == be->qcap) {
        uint32_t ncap = be->qcap ? be->qcap * 2 : 16;
        struct backend_entry *nq = xmalloc(ncap * sizeof(*nq));

        for (uint32_t i = 0; i < be->qlen; i++)
            nq[i] = be->q[(be->qhead + i) & (be->qcap - 1)];
        free(be->q);
        be->q = nq;
        be->qcap = ncap;
        be->qhead = 0;
    }
    be->q[(be->qhead + be->qlen) & (be->qcap - 1)] = (struct backend_entry){ owner, *exp };
    be->qlen++;
}

static struct backend_entry *q_head(struct backend *be)
{
    return be->qlen > 0 ? &be->q[be->qhead] : NULL;
}

/* A FIFO that grew for a deep pipeline is given back once it empties, so
 * one greedy client's burst does not stay in the RSS of a long-lived
 * shared connection. */
#define Q_KEEP 4096                     /* entries kept allocated when empty */

static void q_pop(struct backend *be)
{
    be->qhead = (be->qhead + 1) & (be->qcap - 1);
    if (--be->qlen == 0 && be->qcap > Q_KEEP) {
        free(be->q);
        be->q = NULL;
        be->qcap = 0;
        be->qhead = 0;
    }
}

/* ---- connect ----------------------------------------------------------- */

/*
 * The set-up commands (session.c) and verify-role's ROLE are queued before
 * the connect completes, so they are the first thing the server reads. The
 * connection stays CONNECTING until every set-up reply is in: no client
 * command goes out on a connection not yet in its state, and a refusal
 * leaves every waiting command unsent.
 */
/* The server a connection is to: a replica's, else the pool's master. */
static const char *backend_host(const struct backend *be)
{
    if (be->replica != NULL)
        return be->replica->host;
    return be->to_replica ? "(a replica no longer named)" : be->pool->master_host;
}

static int backend_port(const struct backend *be)
{
    return be->replica != NULL ? be->replica->port : be->to_replica ? 0 : be->pool->master_port;
}

static void queue_setup(struct backend *be, const struct session_state *st)
{
    static const char role[] = "*1\r\n$4\r\nROLE\r\n";
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    struct pool *p = be->pool;

    be->setup_left = session_state_setup(st, &p->cred, be->io.out);
    if (be->setup_left == 0 && p->tls != NULL) {
        /* In TLS 1.3 the server checks a client certificate after the
         * handshake is over for the client: only its first answer proves
         * the session. A client command sent before it would meet a
         * refusal as "outcome unknown"; a PING meets it instead. */
        evbuffer_add(be->io.out, ping, sizeof(ping) - 1);
        be->setup_left = 1;
    }
    be->setup_total = be->setup_left;
    if (be->setup_left > 0) {
        be->setup_st = xmalloc(sizeof(*be->setup_st));
        session_state_init(be->setup_st);
        session_state_copy(be->setup_st, st);
    }
    if (p->cf->verify_role && be->replica == NULL) {
        evbuffer_add(be->io.out, role, sizeof(role) - 1);
        be->setup_left++;
        be->setup_role = 1;
    }
}

struct backend *backend_connect(struct pool *p, struct client *pinned, struct group *g, int slot,
                                const struct session_state *st)
{
    struct backend *be = xcalloc(1, sizeof(*be));

    be->id = ++proxy.next_id;
    be->pool = p;
    be->pinned = pinned;
    be->group = g;
    be->replica = g != NULL ? g->replica : NULL;
    be->to_replica = be->replica != NULL;
    be->slot = slot;
    be->epoch = p->epoch;
    be->state = BACKEND_CONNECTING;
    resp_scan_init(&be->scan);
    TAILQ_INIT(&be->waiters);
    /* Waiters resume when our output falls to half the limit. Any failure
     * is reported from the loop, so the caller always gets a backend. */
    io_conn_connect(&be->io, backend_host(be), backend_port(be), p->cf->connect_timeout_ms,
                    &backend_io, be, proxy.conf->output_buffer_limit / 2, p->tls,
                    p->cf->tls_server_name);
    io_conn_read(&be->io, 1);
    queue_setup(be, st);
    p->stats.backend_connects++;
    log_debug(p->name, "backend %llu connecting to %s:%d (%s, %d set-up commands)",
              (unsigned long long)be->id, backend_host(be), backend_port(be),
              pinned ? "pinned" : be->replica ? "replica" : "shared", be->setup_left);
    return be;
}

/* ---- send -------------------------------------------------------------- */

void backend_send(struct backend *be, struct client *c, struct evbuffer *from, size_t len,
                  const struct session_expect *exp)
{
    evbuffer_remove_buffer(from, be->io.out, len);
    io_conn_queued(&be->io);
    be->pool->stats.request_bytes += len;
    be->nsent++;
    if (exp != NULL)
        q_push(be, c, exp);
}

void backend_set_raw(struct backend *be)
{
    if (be->pinned == NULL) {
        log_error(be->pool->name, "backend %llu: raw mode on a shared connection (bug)",
                  (unsigned long long)be->id);
        return;
    }
    be->raw = 1;
    while (be->qlen > 0)
        q_pop(be);
    client_replies_untracked(be->pinned);
}

int backend_output_full(const struct backend *be)
{
    return io_conn_out_len(&be->io) > proxy.conf->output_buffer_limit;
}

void backend_add_waiter(struct backend *be, struct client *c)
{
    c->waiting_on = be;
    TAILQ_INSERT_TAIL(&be->waiters, c, wait_link);
}

void backend_remove_waiter(struct backend *be, struct client *c)
{
    TAILQ_REMOVE(&be->waiters, c, wait_link);
    c->waiting_on = NULL;
}

static void wake_waiters(struct backend *be)
{
    struct client *c;

    while ((c = TAILQ_FIRST(&be->waiters)) != NULL) {
        backend_remove_waiter(be, c);
        client_wake(c);
    }
}

static void backend_drained(void *arg)
{
    wake_waiters(arg);
}

/* ---- ready, and set-up ----------------------------------------------------- */

static void free_setup_st(struct backend *be)
{
    if (be->setup_st != NULL) {
        session_state_free(be->setup_st);
        free(be->setup_st);
        be->setup_st = NULL;
    }
}

/* Up and set up: clients may send. */
static void backend_ready(struct backend *be)
{
    free_setup_st(be);
    if (be->group != NULL)
        group_setup_done(be->group, 1);
    io_conn_read_timeout(&be->io, 0);
    be->state = BACKEND_CONNECTED;
    log_debug(be->pool->name, "backend %llu connected", (unsigned long long)be->id);
    wake_waiters(be);
}

/* verify-role: the ROLE reply's first element says "master" or not. */
static int role_verified(struct backend *be, const struct resp_reply_info *ri)
{
    char why[160];

    if (ri->type == '*' && strcmp(ri->kind, "master") == 0)
        return 0;
    snprintf(why, sizeof(why), "verify-role: ROLE says \"%s\", not master",
             ri->type == '*' ? ri->kind : "(an error)");
    pool_master_readonly(be->pool);
    backend_close(be, why);
    return -1;
}

/*
 * The server refused a set-up command (a wrong password, a db out of
 * range, a protocol it does not speak): this connection is not in the
 * state it is for, so it closes with nothing sent. Every client waiting
 * for it is given the server's own error line to answer with (client.c).
 * Not a connect failure: the server answered, and the pool stays usable.
 */
static int setup_refused(struct backend *be, size_t *pending)
{
    char line[256], shown[200], why[256];
    size_t n = *pending < sizeof(line) - 3 ? *pending : sizeof(line) - 3;
    struct client *c;

    evbuffer_copyout(be->io.in, line, n);
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        n--;
    memcpy(line + n, "\r\n", 3);
    evbuffer_drain(be->io.in, *pending);
    *pending = 0;
    util_escape(line, n, shown, sizeof(shown));
    if (be->setup_total - be->setup_left == 1 && be->setup_st != NULL &&
        be->setup_st->user == NULL && be->pool->cred.user != NULL) {
        /* The first set-up step, AUTH with the pool's own credentials
         * (backend-user): no client asked for them, so it is no client's
         * reply; the pool backs off as from a master it cannot reach, and
         * its clients are held or refused. */
        snprintf(why, sizeof(why), "the master refused backend-user/backend-password-file: %s",
                 shown);
        pool_backend_credentials_refused(be->pool);
        backend_close(be, why);
        return -1;
    }
    TAILQ_FOREACH(c, &be->waiters, wait_link)
        client_setup_refused(c, line, be->setup_st);
    if (be->group != NULL)
        group_setup_done(be->group, 0);
    snprintf(why, sizeof(why), "set-up refused by the master: %s", shown);
    log_info(be->pool->name, "backend %llu: %s", (unsigned long long)be->id, why);
    backend_release(be, why);
    return -1;
}

/* One set-up reply is complete: it is the first *pending bytes of the
 * input. Returns -1 if the backend was closed. */
static int setup_reply(struct backend *be, size_t *pending, const struct resp_reply_info *ri)
{
    int last = --be->setup_left == 0;

    if ((ri->type == '-' || ri->type == '!') && !(last && be->setup_role))
        return setup_refused(be, pending);
    evbuffer_drain(be->io.in, *pending);
    *pending = 0;
    if (last && be->setup_role && role_verified(be, ri) < 0)
        return -1;
    if (last)
        backend_ready(be);
    return 0;
}

/* ---- replies ----------------------------------------------------------- */

static struct client *current_owner(struct backend *be)
{
    struct backend_entry *e;

    if (be->pinned != NULL)
        return be->pinned;
    e = q_head(be);
    return e != NULL ? e->owner : NULL;
}

static void pause_for(struct backend *be, struct client *c)
{
    if (c->paused != NULL && c->paused != be)
        backend_resume(c->paused);
    be->paused_for = c;
    be->paused_since_ms = util_now_ms();
    c->paused = be;
    io_conn_read(&be->io, 0);
}

void backend_resume(struct backend *be)
{
    if (be->paused_for != NULL) {
        be->paused_for->paused = NULL;
        be->paused_for = NULL;
    }
    if (be->state == BACKEND_CLOSED)
        return;
    io_conn_read(&be->io, 1);
    /* Bytes may already be waiting in our input: no new read event would
     * announce them. */
    if (evbuffer_get_length(be->io.in) > 0)
        io_conn_read_again(&be->io);
}

/* A write refused by a replica ("-READONLY You can't write against a read
 * only replica."): the error line is at the front of `in`. */
static int is_readonly_error(struct evbuffer *in)
{
    char head[9];

    return evbuffer_copyout(in, head, sizeof(head)) == (ev_ssize_t)sizeof(head) &&
           memcmp(head, "-READONLY", sizeof(head)) == 0;
}

/* A shared connection to a previous master closes once drained. Returns -1
 * if it was closed. */
/* An entry leaves the FIFO: its owner learns what the command changed.
 * ok: answered, and not with an error. */
static void settle(struct client *owner, const struct backend_entry *e, int ok)
{
    if (e->exp.flags & SESSION_EXP_MOVE)
        client_move_done(owner, ok);
    if ((e->exp.flags & SESSION_EXP_RESET) && ok)
        client_reset_done(owner);
}

static int close_if_drained(struct backend *be)
{
    if (be->retired && be->qlen == 0) {
        backend_release(be, "drained after master change");
        return -1;
    }
    return 0;
}

/* The head command was refused with -READONLY (the whole reply is the
 * first *pending bytes of the input): it never ran. The owner gets it sent
 * again or -TRYAGAIN instead; the replica's wording never reaches it. */
static int refused(struct backend *be, size_t *pending)
{
    struct backend_entry done = *q_head(be);

    evbuffer_drain(be->io.in, *pending);
    *pending = 0;
    q_pop(be);
    settle(done.owner, &done, 0);
    be->partial = NULL;
    client_reply_refused(done.owner, (done.exp.flags & SESSION_EXP_RETRY) != 0);
    return close_if_drained(be);
}


/* A whole reply has been scanned; its last bytes are the first `*pending`
 * bytes of the input. Returns -1 if the backend was closed. */
static int reply_complete(struct backend *be, size_t *pending, const struct resp_reply_info *ri)
{
    struct evbuffer *in = be->io.in;
    struct backend_entry *head = q_head(be);
    struct client *owner = current_owner(be);
    enum session_reply r;

    if (be->setup_left > 0)
        return setup_reply(be, pending, ri);
    /* A command answered in good order is what proves the master usable
     * (not the connect, nor the set-up or verify-role's ROLE): a server that accepts and
     * then hangs up or speaks garbage before that keeps the pool's backoff
     * growing (see teardown) instead of being reconnected per command. */
    if (!be->answered) {
        be->answered = 1;
        pool_backend_connected(be->pool);
    }
    if (owner == NULL) {
        backend_close(be, "master sent a reply nobody asked for");
        return -1;
    }
    r = session_on_reply(&owner->sess, head ? &head->exp : NULL, ri);
    if (r == SESSION_REPLY_STRAY && be->pinned == NULL) {
        backend_close(be, "master's reply stream out of step");
        return -1;
    }
    if (ri->type == '-' && be->partial == NULL && !be->to_replica && is_readonly_error(in)) {
        /* Only the current master's refusal says our view is stale: a
         * demoted previous master refusing writes it still had is expected.
         * A static master has no next one: its refusal is passed on as is. */
        if (be->epoch == be->pool->epoch)
            pool_master_readonly(be->pool);
        if (be->pool->zk && r == SESSION_REPLY_DONE && head != NULL)
            return refused(be, pending);
    }
    client_deliver(owner, in, *pending);
    *pending = 0;
    if (r == SESSION_REPLY_DONE) {
        int is_error = ri->type == '-' || ri->type == '!';
        struct backend_entry done = *head;

        q_pop(be);
        settle(owner, &done, !is_error);
        client_reply_done(owner);
        if (close_if_drained(be) < 0)
            return -1;
    }
    be->partial = NULL;
    if (client_output_full(owner))
        pause_for(be, owner);
    return 0;
}

/* An error line that came in pieces stays here until it is whole: it may
 * be a -READONLY that the owner must never see. Redis's error lines are
 * short; a long one is passed on like any reply. */
static int holds_error_start(struct backend *be, size_t pending)
{
    char first;

    return !be->raw && be->partial == NULL && pending < 4096 &&
           evbuffer_copyout(be->io.in, &first, 1) == 1 && first == '-';
}

static void backend_read_cb(void *arg)
{
    struct backend *be = arg;
    struct evbuffer *in = be->io.in;
    size_t pending = be->held;  /* scanned bytes at the front of `in`, not yet moved */

    be->held = 0;

    while (be->paused_for == NULL) {
        struct evbuffer_ptr ptr;
        struct evbuffer_iovec v;
        struct resp_reply_info ri;
        ssize_t n;
        int done = 0;

        if (be->raw) {
            pending = evbuffer_get_length(in);
            break;
        }
        if (pending == evbuffer_get_length(in))
            break;
        if (evbuffer_ptr_set(in, &ptr, pending, EVBUFFER_PTR_SET) < 0 ||
            evbuffer_peek(in, -1, &ptr, &v, 1) < 1)
            break;
        n = resp_scan_feed(&be->scan, v.iov_base, v.iov_len, &done, &ri);
        if (n < 0) {
            char why[200];
            snprintf(why, sizeof(why), "protocol error from master: %s",
                     resp_scan_error(&be->scan));
            backend_close(be, why);
            return;
        }
        pending += (size_t)n;
        if (done && reply_complete(be, &pending, &ri) < 0)
            return;
    }
    /* The head owns the start of an unfinished reply: pass it on now. A
     * set-up reply stays whole in the input: its error line is the answer
     * waiting clients may get. */
    if (pending > 0 && be->setup_left > 0) {
        be->held = pending;
    } else if (pending > 0) {
        struct client *owner = current_owner(be);

        if (owner == NULL) {
            backend_close(be, "master sent bytes nobody asked for");
            return;
        }
        if (holds_error_start(be, pending)) {
            be->held = pending;
            return;
        }
        client_deliver(owner, in, pending);
        if (!be->raw)
            be->partial = owner;
        if (be->paused_for == NULL && client_output_full(owner))
            pause_for(be, owner);
    }
}

/* ---- close ------------------------------------------------------------- */

static void backend_event_cb(void *arg, int what, int err)
{
    struct backend *be = arg;
    char why[512];

    if (what & IO_CONNECTED) {
        int one = 1;

        (void)setsockopt(be->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* The set-up's answers must come within connect-timeout. */
        if (be->setup_left > 0)
            io_conn_read_timeout(&be->io, be->pool->cf->connect_timeout_ms);
        else
            backend_ready(be);
        return;
    }
    if (what & IO_TIMEOUT)
        snprintf(why, sizeof(why), "connect timed out after %d ms",
                 be->pool->cf->connect_timeout_ms);
    else if (what & IO_EOF)
        snprintf(why, sizeof(why), "master closed the connection");
    else if (what & IO_DNS)
        snprintf(why, sizeof(why), "cannot resolve %s: %s", backend_host(be),
                 evutil_gai_strerror(err));
    else if ((what & IO_TLS) && be->io.connecting)
        snprintf(why, sizeof(why), "TLS handshake failed: %s", io_conn_tls_error(&be->io));
    else if (what & IO_TLS)
        snprintf(why, sizeof(why), "TLS: %s", io_conn_tls_error(&be->io));
    else
        snprintf(why, sizeof(why), "%s", strerror(err));
    backend_close(be, why);
}

/*
 * Close and free. Every outstanding reply gets an error in its place, in
 * order: -TRYAGAIN when the connection never came up (nothing was sent, the
 * command never ran, retrying is safe), an "outcome unknown" error when it
 * was up (the command may have run; we never send it twice). Owners of a
 * connection that was up are then closed: their replies, or for a pinned
 * client its connection state, are gone.
 */
static void teardown(struct backend *be, const char *reason, int failure)
{
    /* Up but unused (the server spoke or hung up before any command went
     * out) counts as never connected: nothing was sent, so waiting commands
     * stay unsent and retry, and the pool backs off rather than reconnecting
     * at once, in a loop, to a server that will do it again. */
    int was_connected = be->state == BACKEND_CONNECTED && be->nsent > 0;
    struct pool *p = be->pool;
    struct client *pinned = be->pinned;

    if (be->state == BACKEND_CLOSED)
        return;
    be->state = BACKEND_CLOSED;
    /* A refused connect is logged by the pool once per outage. */
    log_at(failure && was_connected ? LOGL_WARN : LOGL_DEBUG, p->name,
           "backend %llu to %s:%d closed%s: %s (%u replies outstanding)",
           (unsigned long long)be->id, backend_host(be), backend_port(be),
           pinned ? " (pinned)" : "", reason, be->qlen);
    if (failure && be->replica != NULL) {
        replica_conn_failed(be->replica);
    } else if (failure && !be->to_replica) {
        p->stats.backend_failures++;
        if (!was_connected || !be->answered)
            pool_backend_connect_failed(p, reason);
    }
    pool_backend_gone(p, be);
    if (be->paused_for != NULL) {
        be->paused_for->paused = NULL;
        be->paused_for = NULL;
    }
    wake_waiters(be);

    /* An owner that already got the start of a reply must not get an
     * error appended to half a reply: it only sees the connection close. */
    while (be->qlen > 0) {
        struct backend_entry e = *q_head(be);
        struct client *owner = e.owner;

        q_pop(be);
        settle(owner, &e, 0);
        client_reply_failed(owner, owner == be->partial ? NULL
                                   : be->to_replica ? REPLY_REPLICA_LOST
                                   : was_connected ? REPLY_LOST : REPLY_UNREACHABLE);
        /* A read a replica did not answer leaves the client as it was,
         * unless it got half the reply. */
        if (pinned == NULL && (!be->to_replica || owner == be->partial))
            client_backend_closed(owner, was_connected, reason);
    }
    if (pinned != NULL)
        client_backend_closed(pinned, was_connected, reason);

    io_conn_close(&be->io);
    free_setup_st(be);
    resp_scan_free(&be->scan);
    free(be->q);
    free(be);
}

void backend_close(struct backend *be, const char *reason)
{
    teardown(be, reason, 1);
}

void backend_close_undrained(struct backend *be)
{
    char why[160];

    snprintf(why, sizeof(why), "previous master owed %u replies after drain-timeout (%d ms)",
             be->qlen, be->pool->cf->drain_timeout_ms);
    backend_close(be, why);
}

void backend_release(struct backend *be, const char *reason)
{
    teardown(be, reason, 0);
}

void backend_detach(struct backend *be, const char *reason)
{
    if (be->qlen > 0) {
        log_error(be->pool->name, "backend %llu: detached with %u replies outstanding (bug)",
                  (unsigned long long)be->id, be->qlen);
    }
    be->pinned = NULL;   /* the owner moves on: nobody to tell */
    teardown(be, reason, 0);
}
