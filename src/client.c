/*
 * client: one application connection, from accept to close.
 *
 *            client socket                           master socket(s)
 *   app ---> io input ---> parser ---> dispatch ---> backend output ---> redis
 *                               |          |
 *                               |          +-- local reply (QUIT, PROXY, -TRYAGAIN)
 *                               |              only when nothing is outstanding,
 *                               |              so order is kept
 *   app <--- io output <-------------------------- backend input  <--- redis
 *                      (backend.c moves each reply's bytes to its owner)
 *
 * Buffers: the request bytes stay in the client's input evbuffer until the
 * whole request is framed, then move (zero-copy where libevent can) to the
 * backend's output. Reply bytes move from the backend's input to this
 * client's output. Nothing is re-encoded.
 *
 * Order: a client's outstanding replies are all on one backend connection
 * (c->be), so FIFO order there is the client's order. A client changes
 * connection (shared -> pinned, or to another shared one) only with nothing
 * outstanding, and answers locally only with nothing outstanding.
 *
 * Flow control: parsing stops (state WAIT_*) when the client's output or the
 * backend's output is over output-buffer-limit, or when the next request
 * needs the outstanding replies first. While waiting, reading stops once 64
 * KiB more have arrived, so a paused client still costs bounded memory.
 *
 * Lifetime: client_close() closes the socket at once. A client with replies
 * still to come on a shared connection stays as a ZOMBIE (its replies are
 * read and dropped) and is freed when the last one is in. Frees and resumes
 * run from the `wake` event, never inside a callback that may still hold a
 * pointer to the client.
 */
#include "client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "backend.h"
#include "cmd.h"
#include "conf.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"
#include "zk.h"

#define CLIENT_PAUSED_READ_MAX (64 * 1024)

/*
 * A command a replica refuses (-READONLY) never ran, so in block mode it is
 * sent again to the next master: the client sees only latency. That is safe
 * only for a client's single command in flight (anything sent behind it
 * already went to the replica, and replies must stay in order), so only
 * such a command is kept: one copy into a buffer the connection reuses.
 */
struct client_keep {
    struct resp_request req;
    size_t cap;
    char buf[];
};

#define CLIENT_KEEP_MAX (64 * 1024)     /* larger commands are not kept */
#define REPLY_READONLY "-TRYAGAIN master is read-only\r\n"

enum dispatch_rc {
    DISPATCH_DONE,       /* request consumed; go on */
    DISPATCH_WAIT,       /* request kept; state says what we wait for */
    DISPATCH_STOP,       /* client closed or closing */
};

static void client_read_cb(void *arg);
static void client_drained(void *arg);
static void client_event_cb(void *arg, int what, int err);

static const struct io_handler client_io = { client_read_cb, client_drained, client_event_cb };
static void client_process(struct client *c);
static void reply_error(struct client *c, const char *fmt, ...) RZ_PRINTF(2, 3);

static const char *const state_names[] = {
    [CLIENT_ACTIVE] = "active",         [CLIENT_WAIT_REPLIES] = "wait-replies",
    [CLIENT_WAIT_BACKEND] = "wait-backend", [CLIENT_WAIT_OUTPUT] = "wait-output",
    [CLIENT_HELD] = "held",             [CLIENT_CLOSING] = "closing",
    [CLIENT_ZOMBIE] = "zombie",
};

/*
 * The one place a client's state changes. Waiting states are entered only
 * from ACTIVE and leave only to ACTIVE; CLOSING and ZOMBIE are one-way.
 */
static void client_set_state(struct client *c, enum client_state to)
{
    enum client_state from = c->state;
    int ok;

    switch (to) {
    case CLIENT_ACTIVE:
        ok = from != CLIENT_CLOSING && from != CLIENT_ZOMBIE;
        break;
    case CLIENT_WAIT_REPLIES:
    case CLIENT_WAIT_BACKEND:
    case CLIENT_WAIT_OUTPUT:
    case CLIENT_HELD:
        ok = from == CLIENT_ACTIVE;
        break;
    case CLIENT_CLOSING:
        ok = from != CLIENT_ZOMBIE;
        break;
    case CLIENT_ZOMBIE:
        ok = 1;
        break;
    default:
        ok = 0;
    }
    if (!ok) {
        log_error(c->pool->name, "client %llu: impossible state change %s -> %s",
                  (unsigned long long)c->id, state_names[from], state_names[to]);
        abort();
    }
    /* Leaving a wait: leave the list we waited in. */
    if (from == CLIENT_HELD && to != CLIENT_HELD)
        pool_unhold(c->pool, c);
    if (from == CLIENT_WAIT_BACKEND && c->waiting_on != NULL)
        backend_remove_waiter(c->waiting_on, c);
    c->state = to;
    if (!io_conn_live(&c->io))
        return;
    /* Reading: unlimited while active; a little more while paused, so EOF is
     * still noticed without buffering without bound. */
    if (to == CLIENT_ACTIVE)
        io_conn_read_max(&c->io, 0);
    else if (to != CLIENT_CLOSING)
        io_conn_read_max(&c->io, evbuffer_get_length(c->io.in) + CLIENT_PAUSED_READ_MAX);
}

/* ---- deferred work ----------------------------------------------------- */

static void schedule(struct client *c)
{
    if (!c->pending) {
        c->pending = 1;
        TAILQ_INSERT_TAIL(&proxy.pending, c, pending_link);
    }
    event_active(proxy.wake, EV_TIMEOUT, 0);
}

static void client_free(struct client *c)
{
    if (c->pending)
        TAILQ_REMOVE(&proxy.pending, c, pending_link);
    TAILQ_REMOVE(&proxy.clients, c, link);
    resp_reqparser_free(c->parser);
    client_replay_clear(c);
    free(c->keep);
    if (c->retry != NULL)
        evbuffer_free(c->retry);
    free(c->fatal);
    free(c);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c;

    RZ_UNUSED(fd);
    RZ_UNUSED(what);
    RZ_UNUSED(arg);
    while ((c = TAILQ_FIRST(&proxy.pending)) != NULL) {
        TAILQ_REMOVE(&proxy.pending, c, pending_link);
        c->pending = 0;
        if (c->free_me)
            client_free(c);
        else
            client_process(c);
    }
}

void client_init_loop(void)
{
    TAILQ_INIT(&proxy.clients);
    TAILQ_INIT(&proxy.pending);
    proxy.wake = event_new(proxy.base, -1, 0, wake_cb, NULL);
}

void client_wake(struct client *c)
{
    if (c->state != CLIENT_ZOMBIE)
        schedule(c);
}

/* ---- accept ------------------------------------------------------------ */

static void reject(evutil_socket_t fd, const char *msg)
{
    /* Best effort, like redis: the socket is fresh, so a short write fits. */
    ssize_t rc = write(fd, msg, strlen(msg));
    RZ_UNUSED(rc);
    evutil_closesocket(fd);
}

static void set_socket_options(evutil_socket_t fd)
{
    int one = 1;
    int ka = proxy.conf->tcp_keepalive_s;

    /* Both calls fail harmlessly on unix sockets. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (ka > 0) {
        int idle = ka, intvl = ka / 3 > 0 ? ka / 3 : 1, cnt = 3;
        (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    }
}

void client_accept(struct pool *p, evutil_socket_t fd, const char *peer)
{
    struct client *c;

    if (proxy.shutting_down) {
        evutil_closesocket(fd);
        return;
    }
    if (proxy.nclients >= proxy.conf->maxclients) {
        log_warn(p->name, "rejecting %s: maxclients %d reached", peer, proxy.conf->maxclients);
        reject(fd, "-ERR max number of clients reached\r\n");
        return;
    }
    evutil_make_socket_nonblocking(fd);
    set_socket_options(fd);

    c = xcalloc(1, sizeof(*c));
    c->id = ++proxy.next_id;
    c->pool = p;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->parser = resp_reqparser_new();
    session_init(&c->sess);
    c->pinned = !p->cf->backend_sharing;
    c->last_active_ms = util_now_ms();
    io_conn_accept(&c->io, fd, &client_io, c, 0);
    io_conn_read(&c->io, 1);
    TAILQ_INSERT_TAIL(&proxy.clients, c, link);
    proxy.nclients++;
    p->nclients++;
    p->stats.clients_accepted++;
    log_debug(p->name, "client %llu connected from %s", (unsigned long long)c->id, peer);
}

/* ---- close ------------------------------------------------------------- */

static void release_backend_links(struct client *c)
{
    if (c->paused != NULL) {
        struct backend *be = c->paused;
        c->paused = NULL;
        backend_resume(be);
    }
}

void client_close(struct client *c, const char *fmt, ...)
{
    char reason[256];
    va_list ap;

    if (c->state == CLIENT_ZOMBIE)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    log_info(c->pool->name, "client %llu (%s) closed: %s", (unsigned long long)c->id, c->peer,
             reason);

    client_set_state(c, CLIENT_ZOMBIE);
    io_conn_close(&c->io);
    proxy.nclients--;
    c->pool->nclients--;
    release_backend_links(c);

    /* A pinned connection is ours alone: close it now. Its FIFO names only
     * us, so backend_close() settles our outstanding count. */
    if (c->pinned && c->be != NULL)
        backend_release(c->be, "client closed");
    if (c->outstanding == 0) {
        c->free_me = 1;
        schedule(c);
    }
}

/* Write a last reply, stop reading, close once it is flushed. */
static void begin_closing(struct client *c)
{
    io_conn_read(&c->io, 0);
    client_set_state(c, CLIENT_CLOSING);
}

static void close_if_flushed(struct client *c)
{
    if (io_conn_out_len(&c->io) == 0)
        client_close(c, "closed by request");
}

static void client_close_after(struct client *c, const char *reply, size_t len)
{
    if (len > 0) {
        evbuffer_add(c->io.out, reply, len);
        io_conn_queued(&c->io);
    }
    begin_closing(c);
    close_if_flushed(c);
}

/* ---- replies from backend.c -------------------------------------------- */

int client_output_full(const struct client *c)
{
    return io_conn_out_len(&c->io) > proxy.conf->output_buffer_limit;
}

void client_deliver(struct client *c, struct evbuffer *from, size_t len)
{
    if (!io_conn_live(&c->io) || c->state == CLIENT_ZOMBIE) {
        evbuffer_drain(from, len);
        return;
    }
    evbuffer_remove_buffer(from, c->io.out, len);
    io_conn_queued(&c->io);
    c->pool->stats.reply_bytes += len;
}

void client_reply_done(struct client *c)
{
    if (c->outstanding == 0) {
        /* A bug, not bad input; it costs this client, not the process. */
        log_error(c->pool->name, "client %llu: reply with nothing outstanding (bug)",
                  (unsigned long long)c->id);
        client_close(c, "internal error: reply accounting");
        return;
    }
    if (--c->outstanding > 0)
        return;
    /* A reply is interaction too (like redis's lastinteraction): a client
     * whose slow reply just came is not idle. Only the last one matters:
     * with replies outstanding a client is never idle. */
    c->last_active_ms = util_now_ms();
    if (!c->pinned)
        c->be = NULL;
    if (c->state == CLIENT_ZOMBIE) {
        c->free_me = 1;
        schedule(c);
    } else if (c->state == CLIENT_WAIT_REPLIES) {
        schedule(c);
    }
}

/* ---- connection state that can move -------------------------------------- */

void client_replay_record(struct client *c, unsigned slot, char *buf, size_t len)
{
    if (slot >= CMD_REPLAY_SLOTS) {
        free(buf);
        return;
    }
    free(c->replay[slot].buf);
    c->replay[slot].buf = buf;
    c->replay[slot].len = len;
}

void client_replay_clear(struct client *c)
{
    for (int i = 0; i < CMD_REPLAY_SLOTS; i++) {
        free(c->replay[i].buf);
        c->replay[i].buf = NULL;
        c->replay[i].len = 0;
    }
}

void client_replay_failed(struct client *c)
{
    struct pool *p = c->pool;

    if (c->state == CLIENT_CLOSING || c->state == CLIENT_ZOMBIE)
        return;
    log_notice(p->name, "client %llu (%s): closed: its connection state could not be restored "
               "on the new master %s:%d", (unsigned long long)c->id, c->peer, p->master_host,
               p->master_port);
    reply_error(c, "-ERR master changed to %s:%d and this connection's state (AUTH, SELECT, "
                "HELLO, CLIENT SETNAME) could not be restored there: reconnect",
                p->master_host, p->master_port);
    begin_closing(c);
    close_if_flushed(c);
}

/* Moved to a new connection: send the recorded state first, replies
 * swallowed. Returns 1 if anything was sent: the client's own command must
 * then wait for those replies, so it never runs without its state (a failed
 * SELECT would otherwise write into the wrong database). */
static int send_replay(struct client *c, struct backend *be)
{
    int sent = 0;

    c->replay_needed = 0;
    for (int i = 0; i < CMD_REPLAY_SLOTS; i++) {
        if (c->replay[i].buf == NULL)
            continue;
        backend_send_replay(be, c, c->replay[i].buf, c->replay[i].len);
        c->outstanding++;
        sent = 1;
    }
    return sent;
}

void client_replies_untracked(struct client *c)
{
    c->outstanding = 0;
    if (c->state == CLIENT_WAIT_REPLIES)
        schedule(c);
}

void client_reply_failed(struct client *c, const char *err)
{
    if (err != NULL && io_conn_live(&c->io) && c->state != CLIENT_ZOMBIE) {
        evbuffer_add(c->io.out, err, strlen(err));
        io_conn_queued(&c->io);
    }
    client_reply_done(c);
}

void client_reply_refused(struct client *c, int kept)
{
    struct pool *p = c->pool;

    if (!kept || c->outstanding != 1 || c->keep == NULL || c->fatal != NULL ||
        c->state == CLIENT_CLOSING || c->state == CLIENT_ZOMBIE) {
        if (c->state != CLIENT_ZOMBIE)
            p->stats.tryagain++;
        client_reply_failed(c, REPLY_READONLY);
        return;
    }
    c->retry = evbuffer_new();
    evbuffer_add(c->retry, c->keep->buf, c->keep->req.len);
    c->outstanding = 0;
    if (!c->pinned)
        c->be = NULL;
    c->held_since_ms = util_now_ms();
    p->stats.readonly_retries++;
    log_info(p->name, "client %llu: %s refused by a read-only master; held for the next one",
             (unsigned long long)c->id, c->keep->req.name);
    schedule(c);
}

void client_backend_closed(struct client *c, int was_connected, const char *why)
{
    if (c->pinned)
        c->be = NULL;
    if (!was_connected || c->state == CLIENT_ZOMBIE || c->state == CLIENT_CLOSING)
        return;
    log_notice(c->pool->name, "client %llu: connection to master lost (%s)",
               (unsigned long long)c->id, why);
    client_close_after(c, "", 0);
}

/* ---- local commands ---------------------------------------------------- */

static void reply_error(struct client *c, const char *fmt, ...)
{
    struct evbuffer *out = c->io.out;
    char line[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    evbuffer_add(out, line, (size_t)n);
    io_conn_queued(&c->io);
}

static void reply_proxy_info(struct client *c)
{
    struct evbuffer *body = evbuffer_new();
    struct evbuffer *out = c->io.out;

    evbuffer_add_printf(body, "# Proxy\r\nversion:%s\r\nuptime_in_seconds:%llu\r\n"
                        "connected_clients:%d\r\n",
                        PACKAGE_VERSION,
                        (unsigned long long)((util_now_ms() - proxy.start_ms) / 1000),
                        proxy.nclients);
    evbuffer_add_printf(body, "# Client\r\nid:%llu\r\nroute:%s\r\n",
                        (unsigned long long)c->id, c->pinned ? "pinned" : "shared");
    pool_info(c->pool, body);
    zk_info(body);
    evbuffer_add_printf(out, "$%zu\r\n", evbuffer_get_length(body));
    evbuffer_add_buffer(out, body);
    evbuffer_add(out, "\r\n", 2);
    io_conn_queued(&c->io);
    evbuffer_free(body);
}

static enum dispatch_rc dispatch_local(struct client *c, const struct resp_request *req,
                                       struct evbuffer *in)
{
    evbuffer_drain(in, req->len);
    if (strcmp(req->name, "quit") == 0) {
        client_close_after(c, "+OK\r\n", 5);
        return DISPATCH_STOP;
    }
    /* PROXY <subcommand> */
    if (req->argc == 2 && strcmp(req->arg1, "info") == 0)
        reply_proxy_info(c);
    else if (req->argc < 2)
        reply_error(c, "-ERR wrong number of arguments for 'proxy' command");
    else
        reply_error(c, "-ERR unknown PROXY subcommand '%s'. Try PROXY INFO.", req->arg1);
    return DISPATCH_DONE;
}

/* ---- dispatch ---------------------------------------------------------- */

static enum dispatch_rc wait_for(struct client *c, enum client_state st)
{
    client_set_state(c, st);
    return DISPATCH_WAIT;
}

#define MOVED_ERR "-ERR master changed to %s:%d; this connection's state (%s) " \
                  "cannot move to the new master: reconnect"

static const char *tie_name(const struct session *s)
{
    return s->multi ? "MULTI" : s->watch ? "WATCH" : s->blocking ? "blocking call"
         : s->raw ? "MONITOR or reply mode" : session_tied(s) ? "subscribed"
         : "SELECT, AUTH, HELLO or CLIENT settings";
}

/* A pinned client whose connection is to an old master and cannot move:
 * it gets `err`, and then its connection closes. Nothing more goes to the
 * old master. */
static void drop_moved(struct client *c)
{
    struct pool *p = c->pool;

    log_notice(p->name, "client %llu (%s): closed at master change, tied to the old master "
               "by %s", (unsigned long long)c->id, c->peer, tie_name(&c->sess));
    if (c->outstanding == 0)
        reply_error(c, MOVED_ERR, p->master_host, p->master_port, tie_name(&c->sess));
    /* Outstanding replies get "connection lost" errors: they were asked of
     * the old master and may or may not have run there. */
    begin_closing(c);
    backend_release(c->be, "master changed");
    close_if_flushed(c);
}

void client_master_changed(struct pool *p)
{
    struct client *c, *next;

    for (c = TAILQ_FIRST(&proxy.clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->pool != p || !c->pinned || c->be == NULL || c->be->epoch == p->epoch)
            continue;
        if (c->be->retired_ms == 0)
            c->be->retired_ms = util_now_ms();      /* drain-timeout starts */
        if (c->state != CLIENT_CLOSING && c->state != CLIENT_ZOMBIE && session_tied(&c->sess))
            drop_moved(c);
    }
}

/* A pinned client still waiting for replies from a previous master after
 * drain-timeout: its connection closes, its outstanding commands get
 * "outcome unknown" errors. */
enum route_rc {
    ROUTE_OK,
    ROUTE_NO_MASTER,         /* gated or master unreachable: *why says which */
    ROUTE_WAIT_REPLIES,      /* replies from the old master come first */
    ROUTE_CLOSED,            /* the client could not move and was closed */
};

/*
 * Pick the backend connection for the next command. Every command checks
 * the gate, and every connection carries the epoch (master) it was opened
 * for: a command never goes to a master the pool no longer names.
 */
static enum route_rc route(struct client *c, struct backend **out, const char **why)
{
    struct pool *p = c->pool;

    if (p->zk) {
        /* May run ZooKeeper events now, which may close this very client
         * (tied to a master that changed). */
        zk_check_stall(util_now_ms());
        if (c->state != CLIENT_ACTIVE)
            return ROUTE_CLOSED;
    }
    if ((*why = pool_gated(p)) != NULL)
        return ROUTE_NO_MASTER;
    if (c->be != NULL && c->be->epoch != p->epoch) {
        if (c->outstanding > 0)
            return ROUTE_WAIT_REPLIES;
        if (session_tied(&c->sess) || c->sess.stateful) {
            drop_moved(c);
            return ROUTE_CLOSED;
        }
        backend_detach(c->be, "master changed");    /* idle pinned: move */
        c->be = NULL;
        c->replay_needed = 1;
    }
    if (c->outstanding > 0 || (c->pinned && c->be != NULL)) {
        *out = c->be;        /* stay where the replies are: order */
        return ROUTE_OK;
    }
    if ((*why = pool_unavailable(p)) != NULL)
        return ROUTE_NO_MASTER;
    *out = c->pinned ? (c->be = backend_connect(p, c, -1)) : pool_shared_backend(p, c);
    return ROUTE_OK;
}

/*
 * No usable master. The request has not been sent: hold it (block mode)
 * until a master is usable or block-timeout passes since the client was
 * first held, else answer -TRYAGAIN. Once a client's block-timeout has
 * passed, later requests are refused at once until one gets through.
 */
static enum dispatch_rc no_master(struct client *c, const struct resp_request *req,
                                  struct evbuffer *in, const char *why)
{
    struct conf_pool *cf = c->pool->cf;
    uint64_t now = util_now_ms();

    if (c->outstanding > 0)
        return wait_for(c, CLIENT_WAIT_REPLIES);
    /* SYNCING is one round trip to ZooKeeper (a rewrite of the znode, a
     * reconnect): held even with on-no-master tryagain, so a director that
     * rewrites the znode regularly does not turn into errors. */
    if ((cf->on_no_master == CONF_ON_NO_MASTER_BLOCK || pool_gate_transient(c->pool)) &&
        (c->held_since_ms == 0 || now - c->held_since_ms < (uint64_t)cf->block_timeout_ms)) {
        if (c->held_since_ms == 0)
            c->held_since_ms = now;
        pool_hold(c->pool, c);
        return wait_for(c, CLIENT_HELD);
    }
    evbuffer_drain(in, req->len);
    c->pool->stats.tryagain++;
    reply_error(c, "-TRYAGAIN %s", why);
    return DISPATCH_DONE;
}

/* Keep the bytes of a command about to be sent, if a -READONLY refusal of
 * it could be retried: block mode, nothing else in flight, a plain command
 * (no state, not tied). Returns 1 if kept. */
static int keep_for_retry(struct client *c, const struct resp_request *req,
                          struct evbuffer *src, const struct session_expect *exp)
{
    if (!c->pool->zk || c->pool->cf->on_no_master != CONF_ON_NO_MASTER_BLOCK || c->outstanding > 0 ||
        req->len > CLIENT_KEEP_MAX || exp->kind != SESSION_EXPECT_ONE || exp->flags != 0 ||
        session_tied(&c->sess) || c->sess.stateful)
        return 0;
    if (c->keep == NULL || c->keep->cap < req->len) {
        size_t cap = req->len < 256 ? 256 : req->len;

        c->keep = xrealloc(c->keep, sizeof(*c->keep) + cap);
        c->keep->cap = cap;
    }
    if (req != &c->keep->req)   /* a retry sends from the kept copy itself */
        c->keep->req = *req;
    if (evbuffer_copyout(src, c->keep->buf, req->len) != (ev_ssize_t)req->len)
        return 0;
    return 1;
}

/* Send one request from the front of src (the client's input, or a kept
 * command being retried). */
static enum dispatch_rc dispatch(struct client *c, const struct resp_request *req,
                                 struct evbuffer *in)
{
    struct cmd_info ci;
    struct session_expect exp;
    struct backend *be;
    const char *why;

    if (req->flags & RESP_REQ_EMPTY) {
        evbuffer_drain(in, req->len);  /* redis answers nothing */
        return DISPATCH_DONE;
    }
    ci = cmd_classify(req);
    /* These need every reply before them delivered first: a local answer
     * must not overtake them, and a new connection must not either. */
    if (c->outstanding > 0 && ((ci.flags & CMD_LOCAL) || (!c->pinned && (ci.flags & CMD_PIN))))
        return wait_for(c, CLIENT_WAIT_REPLIES);
    if (ci.flags & CMD_LOCAL)
        return dispatch_local(c, req, in);
    if (!c->pinned && (ci.flags & CMD_PIN)) {
        c->pinned = 1;
        log_debug(c->pool->name, "client %llu pinned by %s", (unsigned long long)c->id,
                  req->name);
    }
    switch (route(c, &be, &why)) {
    case ROUTE_OK:
        break;
    case ROUTE_NO_MASTER:
        return no_master(c, req, in, why);
    case ROUTE_WAIT_REPLIES:
        return wait_for(c, CLIENT_WAIT_REPLIES);
    case ROUTE_CLOSED:
        return DISPATCH_STOP;
    }
    /* Nothing goes out before the connection is up: if it fails, the
     * request is still ours, never sent, and can wait or be refused. */
    if (be->state != BACKEND_CONNECTED || backend_output_full(be)) {
        backend_add_waiter(be, c);
        return wait_for(c, CLIENT_WAIT_BACKEND);
    }
    c->held_since_ms = 0;
    if (c->replay_needed && send_replay(c, be))
        return wait_for(c, CLIENT_WAIT_REPLIES);
    session_on_send(&c->sess, &ci, req, &exp);
    c->be = be;
    if (c->sess.raw && !be->raw)
        backend_set_raw(be);
    if (be->raw || exp.kind == SESSION_EXPECT_NONE) {
        backend_send(be, NULL, in, req->len, NULL);
    } else {
        if (keep_for_retry(c, req, in, &exp))
            exp.flags |= SESSION_EXP_RETRY;
        c->outstanding++;
        backend_send(be, c, in, req->len, &exp);
    }
    pool_forwarded(c->pool);
    return DISPATCH_DONE;
}

static int check_query_limit(struct client *c)
{
    size_t have = evbuffer_get_length(c->io.in);

    if (have <= proxy.conf->client_query_buffer_limit)
        return 0;
    log_warn(c->pool->name, "client %llu (%s): query buffer of %zu bytes over "
             "client-query-buffer-limit, closing", (unsigned long long)c->id, c->peer, have);
    client_close(c, "client-query-buffer-limit reached");
    return -1;
}

/* A protocol error: answer it after the replies already owed, then close. */
static enum dispatch_rc protocol_error(struct client *c, const char *err)
{
    char line[256];
    int n;

    if (c->fatal == NULL) {
        log_notice(c->pool->name, "client %llu (%s): %s", (unsigned long long)c->id, c->peer,
                   err);
        c->fatal = xstrdup(err);
        io_conn_read(&c->io, 0);
    }
    if (c->outstanding > 0)
        return wait_for(c, CLIENT_WAIT_REPLIES);
    n = snprintf(line, sizeof(line), "-ERR %s\r\n", c->fatal);
    client_close_after(c, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
    return DISPATCH_STOP;
}

/*
 * Frame and dispatch requests until input runs out or something makes us
 * wait. Called on read, and from the wake event when a wait may be over.
 */
static void client_process(struct client *c)
{
    char err[256];

    if (c->state == CLIENT_ZOMBIE || c->state == CLIENT_CLOSING)
        return;
    if (c->state != CLIENT_ACTIVE)
        client_set_state(c, CLIENT_ACTIVE);
    while (c->state == CLIENT_ACTIVE) {
        enum dispatch_rc rc;

        if (c->fatal != NULL) {
            protocol_error(c, c->fatal);
            return;
        }
        if (client_output_full(c)) {
            wait_for(c, CLIENT_WAIT_OUTPUT);
            return;
        }
        if (c->retry != NULL) {
            /* A command a replica refused goes before anything newer. */
            rc = dispatch(c, &c->keep->req, c->retry);
            if (rc == DISPATCH_WAIT)
                return;
            evbuffer_free(c->retry);
            c->retry = NULL;
            if (rc == DISPATCH_STOP)
                return;
            continue;
        }
        if (!c->have_req) {
            int r = resp_reqparser_next(c->parser, c->io.in, &c->req, err,
                                        sizeof(err));
            if (r < 0) {
                protocol_error(c, err);
                return;
            }
            if (r == 0) {
                (void)check_query_limit(c);
                return;
            }
            c->have_req = 1;
        }
        rc = dispatch(c, &c->req, c->io.in);
        if (rc == DISPATCH_WAIT)
            return;
        c->have_req = 0;
        if (rc == DISPATCH_STOP)
            return;
    }
}

/* ---- socket callbacks -------------------------------------------------- */

static void client_read_cb(void *arg)
{
    struct client *c = arg;

    if (c->state == CLIENT_ACTIVE)
        client_process(c);
    else if (c->state != CLIENT_CLOSING && c->state != CLIENT_ZOMBIE)
        (void)check_query_limit(c);
    /* Bytes in are interaction. With replies now outstanding the client is
     * not idle, and the last reply will stamp it (client_reply_done): one
     * clock read per request, not two. Frees never happen inside a
     * callback, so c is still ours. */
    if (c->outstanding == 0)
        c->last_active_ms = util_now_ms();
}

/* Everything queued for the client is written. */
static void client_drained(void *arg)
{
    struct client *c = arg;

    if (c->state == CLIENT_CLOSING) {
        client_close(c, "closed after last reply");
        return;
    }
    if (c->paused != NULL) {
        struct backend *be = c->paused;
        c->paused = NULL;
        backend_resume(be);
    }
    if (c->state == CLIENT_WAIT_OUTPUT)
        schedule(c);
}

static void client_event_cb(void *arg, int what, int err)
{
    struct client *c = arg;

    if (what & IO_EOF)
        client_close(c, "client disconnected");
    else
        client_close(c, "socket error: %s", strerror(err));
}

/* ---- housekeeping ------------------------------------------------------ */

static int client_idle(const struct client *c)
{
    return c->outstanding == 0 && !session_tied(&c->sess) && io_conn_live(&c->io) &&
           io_conn_out_len(&c->io) == 0 &&
           (c->state == CLIENT_ACTIVE || c->state == CLIENT_WAIT_OUTPUT);
}

static int undrained(const struct client *c, uint64_t now_ms)
{
    return c->pinned && c->be != NULL && c->be->retired_ms != 0 && c->outstanding > 0 &&
           now_ms - c->be->retired_ms >= (uint64_t)c->pool->cf->drain_timeout_ms;
}

void client_cron(uint64_t now_ms)
{
    uint64_t limit = (uint64_t)proxy.conf->timeout_s * 1000u;
    struct client *c, *next;

    for (c = TAILQ_FIRST(&proxy.clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->state == CLIENT_ZOMBIE)
            continue;
        if (undrained(c, now_ms))
            backend_close_undrained(c->be);
        else if (limit > 0 && client_idle(c) && now_ms - c->last_active_ms > limit)
            client_close(c, "idle for more than %d s (timeout)", proxy.conf->timeout_s);
    }
}

void client_close_pool(struct pool *p, const char *why)
{
    struct client *c, *next;

    for (c = TAILQ_FIRST(&proxy.clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->pool == p && c->state != CLIENT_ZOMBIE)
            client_close(c, "%s", why);
    }
}

int client_count_pool(const struct pool *p)
{
    struct client *c;
    int n = 0;

    TAILQ_FOREACH(c, &proxy.clients, link)
        n += c->pool == p;
    return n;
}

void client_shutdown_begin(void)
{
    struct client *c;

    TAILQ_FOREACH(c, &proxy.clients, link) {
        if (io_conn_live(&c->io))
            io_conn_read(&c->io, 0);
    }
}

/* Shutdown may finish: no reply is owed to anyone and all output is out. */
int client_all_idle(void)
{
    struct client *c;

    TAILQ_FOREACH(c, &proxy.clients, link) {
        if (c->outstanding > 0)
            return 0;
        if (io_conn_out_len(&c->io) > 0)
            return 0;
    }
    return 1;
}

void client_free_all(void)
{
    struct client *c;

    while ((c = TAILQ_FIRST(&proxy.clients)) != NULL) {
        if (c->state != CLIENT_ZOMBIE)
            client_close(c, "shutting down");
        c->outstanding = 0;   /* the backends are gone with the process */
        client_free(c);
    }
    if (proxy.wake != NULL)
        event_free(proxy.wake);
}
