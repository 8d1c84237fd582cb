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

static void forget_refusal(struct client *c)
{
    free(c->refusal);
    c->refusal = NULL;
    session_state_free(&c->refused);
}

static void client_free(struct client *c)
{
    if (c->pending)
        TAILQ_REMOVE(&proxy.pending, c, pending_link);
    TAILQ_REMOVE(&proxy.clients, c, link);
    resp_reqparser_free(c->parser);
    session_state_free(&c->st);
    session_state_free(&c->next);
    free(c->next_name);
    forget_refusal(c);
    clientcmd_names_free(&c->names);
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
    session_state_init(&c->st);
    session_state_init(&c->next);
    session_state_init(&c->refused);
    if (p->cf->backend_sharing) {
        c->grp = p->group0;
        group_ref(c->grp);
    } else {
        c->pinned = 1;
        c->pin_why = "backend-sharing-no";
    }
    c->last_active_ms = util_now_ms();
    c->created_ms = c->last_active_ms;
    io_conn_accept(&c->io, fd, &client_io, c, 0);
    io_conn_read(&c->io, 1);
    TAILQ_INSERT_TAIL(&proxy.clients, c, link);
    proxy.nclients++;
    p->nclients++;
    p->stats.clients_accepted++;
    log_debug(p->name, "client %llu connected from %s", (unsigned long long)c->id, peer);
}

/* ---- close ------------------------------------------------------------- */

/* A closed client is in no group any more: its replies still to come are on
 * connections that stay until they are in (pool.c closes a group only when
 * its connections owe nothing). */
static void drop_groups(struct client *c)
{
    if (c->grp != NULL)
        group_unref(c->grp);
    c->grp = NULL;
}

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
    drop_groups(c);

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

/* ---- session state ------------------------------------------------------- */

void client_move_done(struct client *c, int ok)
{
    struct session_state tmp;

    if (!c->moving)
        return;
    c->moving = 0;
    if (ok) {
        /* swap: the old state is freed with `next` below */
        tmp = c->st;
        c->st = c->next;
        c->next = tmp;
        c->sess.proto = c->st.proto;
        if (c->next_set_name) {
            free(c->names.name);
            c->names.name = c->next_name;
            c->next_name = NULL;
        }
        /* The group of the new state is looked up when a command needs it:
         * a run of SELECT/AUTH/HELLO at connect creates none on the way. */
        if (c->grp != NULL && !session_state_same(&c->grp->st, &c->st)) {
            group_unref(c->grp);
            c->grp = NULL;
        }
    }
    c->next_set_name = 0;
    free(c->next_name);
    c->next_name = NULL;
    session_state_free(&c->next);
}

/* RESET: a fresh connection's state. The name goes too; lib-name and
 * lib-ver stay (they describe the library, as redis 7.2 keeps them). RESET
 * pins, so no group changes. */
void client_reset_done(struct client *c)
{
    session_state_free(&c->st);
    free(c->names.name);
    c->names.name = NULL;
}

void client_setup_refused(struct client *c, const char *line, const struct session_state *st)
{
    free(c->refusal);
    c->refusal = xstrdup(line);
    if (st != NULL)
        session_state_copy(&c->refused, st);
    else
        session_state_free(&c->refused);
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

static void add_bulk_body(struct client *c, struct evbuffer *body)
{
    struct evbuffer *out = c->io.out;

    evbuffer_add_printf(out, "$%zu\r\n", evbuffer_get_length(body));
    evbuffer_add_buffer(out, body);
    evbuffer_add(out, "\r\n", 2);
    io_conn_queued(&c->io);
}

/* "shared:g2" or "pinned:multi": how a client's commands reach the master. */
static void route_name(const struct client *c, char *buf, size_t len)
{
    if (c->pinned)
        snprintf(buf, len, "pinned:%s", c->pin_why ? c->pin_why : "?");
    else
        snprintf(buf, len, "shared:g%llu",
                 (unsigned long long)(c->grp != NULL ? c->grp->id : 0));
}

static void reply_proxy_info(struct client *c)
{
    struct evbuffer *body = evbuffer_new();
    char route[64], st[160];

    route_name(c, route, sizeof(route));
    session_state_describe(&c->st, st, sizeof(st));
    evbuffer_add_printf(body, "# Proxy\r\nversion:%s\r\nuptime_in_seconds:%llu\r\n"
                        "connected_clients:%d\r\n",
                        PACKAGE_VERSION,
                        (unsigned long long)((util_now_ms() - proxy.start_ms) / 1000),
                        proxy.nclients);
    evbuffer_add_printf(body, "# Client\r\nid:%llu\r\nroute:%s\r\nroute_detail:%s\r\n"
                        "session:%s\r\n", (unsigned long long)c->id,
                        c->pinned ? "pinned" : "shared", route, st);
    pool_info(c->pool, body);
    zk_info(body);
    add_bulk_body(c, body);
    evbuffer_free(body);
}

void client_list(const struct pool *p, struct evbuffer *out)
{
    uint64_t now = util_now_ms();
    const struct client *c;

    TAILQ_FOREACH(c, &proxy.clients, link) {
        char route[64], st[160];

        if (c->state == CLIENT_ZOMBIE || (p != NULL && c->pool != p))
            continue;
        route_name(c, route, sizeof(route));
        session_state_describe(&c->st, st, sizeof(st));
        evbuffer_add_printf(out, "id=%llu addr=%s pool=%s name=%s lib-name=%s lib-ver=%s %s "
                            "route=%s age=%llu cmds=%llu\n", (unsigned long long)c->id,
                            c->peer, c->pool->name, c->names.name ? c->names.name : "",
                            c->names.lib_name ? c->names.lib_name : "",
                            c->names.lib_ver ? c->names.lib_ver : "", st, route,
                            (unsigned long long)((now - c->created_ms) / 1000),
                            (unsigned long long)c->ncmds);
    }
}

void client_count_libs(const struct pool *p, void (*fn)(const char *lib, int n, void *arg),
                       void *arg)
{
    enum { LIBS_MAX = 32 };     /* distinct names; more are counted as "(other)" */
    struct { const char *lib; int n; } libs[LIBS_MAX];
    int nlibs = 0, other = 0;
    const struct client *c;

    TAILQ_FOREACH(c, &proxy.clients, link) {
        const char *lib = c->names.lib_name ? c->names.lib_name : "";
        int i;

        if (c->pool != p || c->state == CLIENT_ZOMBIE)
            continue;
        for (i = 0; i < nlibs && strcmp(libs[i].lib, lib) != 0; i++)
            ;
        if (i < nlibs) {
            libs[i].n++;
        } else if (nlibs < LIBS_MAX) {
            libs[nlibs].lib = lib;
            libs[nlibs++].n = 1;
        } else {
            other++;
        }
    }
    for (int i = 0; i < nlibs; i++)
        fn(libs[i].lib, libs[i].n, arg);
    if (other > 0)
        fn("(other)", other, arg);
}

static void reply_proxy(struct client *c, const struct resp_request *req)
{
    if (req->argc == 2 && strcmp(req->arg1, "info") == 0) {
        reply_proxy_info(c);
    } else if (req->argc == 2 && strcmp(req->arg1, "clients") == 0) {
        struct evbuffer *body = evbuffer_new();

        client_list(NULL, body);
        add_bulk_body(c, body);
        evbuffer_free(body);
    } else if (req->argc < 2) {
        reply_error(c, "-ERR wrong number of arguments for 'proxy' command");
    } else {
        reply_error(c, "-ERR unknown PROXY subcommand '%s'. Try PROXY INFO or PROXY CLIENTS.",
                    req->arg1);
    }
}

/* CLIENT SETNAME / GETNAME / SETINFO: recorded here, never sent. */
static void reply_client(struct client *c, const struct resp_request *req, struct evbuffer *in)
{
    struct resp_args a;

    if (resp_args_get(in, req, &a) < 0) {
        reply_error(c, "-ERR out of memory");
        return;
    }
    clientcmd_client(&c->names, &a, c->sess.proto, c->io.out);
    io_conn_queued(&c->io);
    resp_args_free(&a);
}

static enum dispatch_rc dispatch_local(struct client *c, const struct resp_request *req,
                                       struct evbuffer *in)
{
    if (strcmp(req->name, "quit") == 0) {
        evbuffer_drain(in, req->len);
        client_close_after(c, "+OK\r\n", 5);
        return DISPATCH_STOP;
    }
    if (strcmp(req->name, "client") == 0)
        reply_client(c, req, in);
    else
        reply_proxy(c, req);
    evbuffer_drain(in, req->len);
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
         : "CLIENT TRACKING or other settings of that one connection";
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
/* Nothing goes out before the connection is up and set up: if it fails,
 * the request is still ours, never sent, and can wait or be refused.
 * Returns 1 (c now waits for be) when be cannot take it yet. */
static int backend_not_ready(struct client *c, struct backend *be)
{
    if (be->state == BACKEND_CONNECTED && !backend_output_full(be))
        return 0;
    backend_add_waiter(be, c);
    wait_for(c, CLIENT_WAIT_BACKEND);
    return 1;
}

static void pin(struct client *c, const char *why)
{
    c->pinned = 1;
    c->pin_why = why;
    if (c->grp != NULL)
        group_unref(c->grp);
    c->grp = NULL;
    log_debug(c->pool->name, "client %llu pinned by %s", (unsigned long long)c->id, why);
}

/* A shared client's group: the pool's group for its state, created if
 * there is room. -1 when max-session-groups are in use already. */
static int join_group(struct client *c)
{
    struct group *g = group_get(c->pool, NULL, &c->st);

    if (g == NULL) {
        log_info(c->pool->name, "client %llu pinned: max-session-groups (%d) in use",
                 (unsigned long long)c->id, c->pool->cf->max_session_groups);
        return -1;
    }
    c->grp = g;
    group_ref(g);
    return 0;
}

enum route_rc {
    ROUTE_OK,
    ROUTE_NO_MASTER,         /* gated or master unreachable: *why says which */
    ROUTE_WAIT_REPLIES,      /* replies from the old master come first */
    ROUTE_CLOSED,            /* the client could not move and was closed */
};

/*
 * Pick the backend connection for the next command: a shared client's
 * goes to a connection of `target` (a SELECT/AUTH/HELLO: a group whose
 * connections can judge it), or of its own group. Every command checks the gate,
 * and every connection carries the epoch (master) it was opened for: a
 * command never goes to a master the pool no longer names.
 */
static enum route_rc route(struct client *c, struct group *target, struct backend **out,
                           const char **why)
{
    struct pool *p = c->pool;

    if (p->zk) {
        /* May run ZooKeeper events now, which may close this very client
         * (tied to a master that changed). */
        zk_check_stall(util_now_ms());
        if (c->state != CLIENT_ACTIVE)
            return ROUTE_CLOSED;
    }
    /* Replies owed by a replica come first: this goes to the master. */
    if (c->outstanding > 0 && c->be != NULL && c->be->to_replica)
        return ROUTE_WAIT_REPLIES;
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
    }
    if (c->outstanding > 0 || (c->pinned && c->be != NULL)) {
        *out = c->be;        /* stay where the replies are: order */
        return ROUTE_OK;
    }
    if ((*why = pool_unavailable(p)) != NULL)
        return ROUTE_NO_MASTER;
    /* A new connection is set up in the client's session state first. */
    if (!c->pinned && target == NULL && c->grp == NULL && join_group(c) < 0)
        pin(c, "max-session-groups");
    if (c->pinned)
        *out = c->be = backend_connect(p, c, NULL, -1, &c->st);
    else if (target != NULL)
        *out = group_backend_open(target, c);
    else
        *out = group_backend(c->grp, c);
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


/* A SELECT/AUTH/HELLO goes out: until its reply, the client is moving to
 * the state it asked for (taken from mv). */
static void start_move(struct client *c, struct clientcmd_move *mv)
{
    c->moving = 1;
    c->no_lookahead = 0;
    session_state_free(&c->next);
    c->next = mv->to;
    session_state_init(&mv->to);
    c->next_set_name = mv->set_name;
    free(c->next_name);
    c->next_name = mv->name;
    mv->name = NULL;
}

/*
 * Send one request from the front of `in` (the client's input, or a kept
 * command being retried) on the connection route() picks. For a
 * SELECT/AUTH/HELLO, mv is what it asks for, target the group of that
 * state, and `rewritten` (if not NULL) what goes out instead of the request.
 */
static enum dispatch_rc forward(struct client *c, const struct cmd_info *ci,
                                const struct resp_request *req, struct evbuffer *in,
                                struct group *target, struct clientcmd_move *mv,
                                struct evbuffer *rewritten)
{
    struct session_expect exp;
    struct backend *be;
    const char *why;
    size_t len = req->len;

    switch (route(c, target, &be, &why)) {
    case ROUTE_OK:
        break;
    case ROUTE_NO_MASTER:
        return no_master(c, req, in, why);
    case ROUTE_WAIT_REPLIES:
        return wait_for(c, CLIENT_WAIT_REPLIES);
    case ROUTE_CLOSED:
        return DISPATCH_STOP;
    }
    if (backend_not_ready(c, be))
        return DISPATCH_WAIT;
    c->held_since_ms = 0;
    session_on_send(&c->sess, ci, req, &exp);
    c->be = be;
    if (c->sess.raw && !be->raw)
        backend_set_raw(be);
    if (rewritten != NULL) {
        evbuffer_drain(in, req->len);
        in = rewritten;
        len = evbuffer_get_length(rewritten);
    }
    if (be->raw || exp.kind == SESSION_EXPECT_NONE) {
        backend_send(be, NULL, in, len, NULL);
    } else {
        if (mv != NULL && (exp.flags & SESSION_EXP_MOVE))
            start_move(c, mv);
        else if (keep_for_retry(c, req, in, &exp))
            exp.flags |= SESSION_EXP_RETRY;
        c->outstanding++;
        backend_send(be, c, in, len, &exp);
    }
    pool_forwarded(c->pool);
    return DISPATCH_DONE;
}

/*
 * The master refused to set up the connection this client waited for, in
 * the client's own session state (a SELECT/AUTH/HELLO asking for a state is
 * answered in dispatch_move()). That state is no longer accepted there (a
 * password changed, a master switch to a server configured differently):
 * the client is told and closed, its command unsent.
 */
static enum dispatch_rc close_refused(struct client *c)
{
    struct pool *p = c->pool;
    char st[160], shown[160];

    session_state_describe(&c->st, st, sizeof(st));
    util_escape(c->refusal + 1, strcspn(c->refusal + 1, "\r\n"), shown, sizeof(shown));
    forget_refusal(c);
    log_notice(p->name, "client %llu (%s): closed: master %s:%d refused its session state "
               "(%s): %s", (unsigned long long)c->id, c->peer, p->master_host, p->master_port,
               st, shown);
    reply_error(c, "-ERR this connection's state (%s) could not be restored on master %s:%d "
                "(%s): reconnect", st, p->master_host, p->master_port, shown);
    begin_closing(c);
    close_if_flushed(c);
    return DISPATCH_STOP;
}

static int judges(const void *arg, const struct session_state *st)
{
    return clientcmd_move_judged_by(arg, st);
}

/*
 * The state a client will be in after the run of SELECT/AUTH/HELLO that
 * follows the current one in its input, if each succeeds (libraries send
 * such a run on connect: AUTH, SELECT, HELLO 3). Starts from mv's target;
 * stops at the first other command, at what is not in yet, and after a few.
 */
static void run_target(struct client *c, const struct resp_request *req,
                       const struct clientcmd_move *mv, struct session_state *out)
{
    struct resp_reqparser *p = resp_reqparser_new();
    struct evbuffer *ahead = evbuffer_new();
    struct evbuffer_ptr pos;
    char buf[4096], err[256];
    ev_ssize_t n = 0;

    session_state_copy(out, &mv->to);
    if (ahead == NULL || evbuffer_ptr_set(c->io.in, &pos, req->len, EVBUFFER_PTR_SET) < 0 ||
        (n = evbuffer_copyout_from(c->io.in, &pos, buf, sizeof(buf))) <= 0)
        goto done;
    evbuffer_add(ahead, buf, (size_t)n);
    for (int i = 0; i < 8; i++) {
        struct resp_request next;
        struct clientcmd_move mv2;
        struct resp_args a;
        int ok;

        if (resp_reqparser_next(p, ahead, &next, err, sizeof(err)) != 1 ||
            !(cmd_classify(&next).flags & CMD_GROUP))
            break;
        if (resp_args_get(ahead, &next, &a) < 0)
            break;
        ok = clientcmd_move_parse(&a, out, &mv2, NULL, err, sizeof(err)) == 0;
        if (ok)
            session_state_copy(out, &mv2.to);
        clientcmd_move_free(&mv2);
        resp_args_free(&a);
        if (!ok || evbuffer_drain(ahead, next.len) < 0)
            break;
    }
done:
    if (ahead != NULL)
        evbuffer_free(ahead);
    resp_reqparser_free(p);
}

/*
 * Where a shared client's SELECT/AUTH/HELLO is judged: on a connection of a
 * group already in what it asks for (clientcmd_move_judged_by), the one
 * most clients are in; else in a new group for the state the client's
 * whole run of such commands leads to, if that state can judge this one
 * (so a library's AUTH + SELECT + HELLO 3 on connect opens connections in
 * its final state only), else for the state this command asks for. NULL
 * when max-session-groups are in use.
 */
static struct group *judge_group(struct client *c, const struct resp_request *req,
                                 const struct clientcmd_move *mv)
{
    struct group *g = group_find_open(c->pool, judges, mv);
    struct session_state final;

    if (g != NULL)
        return g;
    session_state_init(&final);
    if (c->no_lookahead)
        session_state_copy(&final, &mv->to);
    else
        run_target(c, req, mv, &final);
    if (clientcmd_move_judged_by(mv, &final))
        g = group_get(c->pool, NULL, &final);
    else
        g = group_get(c->pool, NULL, &mv->to);
    session_state_free(&final);
    return g;
}

/*
 * SELECT, AUTH, HELLO: the client moves to the state it asks for. The
 * command goes to a connection already in that state (in every respect the
 * command changes or its reply shows), where success changes nothing and
 * failure changes nothing either: the server judges it (a wrong password is
 * refused however often the right one was given), and the client's state
 * changes only on success. A pinned client's command goes on its own
 * connection (HELLO without SETNAME). What redis refuses on syntax alone is
 * answered here.
 */
static enum dispatch_rc dispatch_move(struct client *c, const struct cmd_info *ci,
                                      const struct resp_request *req, struct evbuffer *in)
{
    struct evbuffer *send = evbuffer_new();
    struct clientcmd_move mv;
    struct group *judge = NULL;
    struct resp_args a;
    char err[256];
    enum dispatch_rc rc;

    if (send == NULL || resp_args_get(in, req, &a) < 0)
        util_oom(req->len);
    if (clientcmd_move_parse(&a, &c->st, &mv, send, err, sizeof(err)) < 0) {
        forget_refusal(c);
        evbuffer_drain(in, req->len);
        evbuffer_add(c->io.out, err, strlen(err));
        io_conn_queued(&c->io);
        rc = DISPATCH_DONE;
    } else if (c->refusal != NULL && session_state_same_cred(&c->refused, &mv.to)) {
        /* The master refused a connection set up in exactly the state this
         * command asks for: that is the server's answer to it. */
        evbuffer_drain(in, req->len);
        evbuffer_add(c->io.out, c->refusal, strlen(c->refusal));
        io_conn_queued(&c->io);
        forget_refusal(c);
        c->no_lookahead = 0;
        rc = DISPATCH_DONE;
    } else if (c->refusal != NULL && c->no_lookahead) {
        /* Refused twice, the second time in the very state asked for but
         * for what the client already had: it cannot go on. */
        rc = close_refused(c);
    } else {
        /* A refusal of another client's password, or of a state further
         * down this client's run (AUTH then SELECT 99), is no answer to this
         * command: try again, in exactly the state it asks for. */
        if (c->refusal != NULL)
            c->no_lookahead = 1;
        forget_refusal(c);
        if (!c->pinned && (judge = judge_group(c, req, &mv)) == NULL) {
            log_info(c->pool->name, "client %llu pinned: max-session-groups (%d) in use",
                     (unsigned long long)c->id, c->pool->cf->max_session_groups);
            pin(c, "max-session-groups");
        }
        rc = forward(c, ci, req, in, judge, &mv, mv.rewritten ? send : NULL);
    }
    clientcmd_move_free(&mv);
    resp_args_free(&a);
    evbuffer_free(send);
    return rc;
}

/* ---- read-from replicas ---------------------------------------------------- */

/*
 * A read to a replica. Replies come back in order only if a client's
 * outstanding replies are all on one connection: with replies owed by a
 * replica connection, more reads follow them there while that replica is
 * healthy (once it is down or lagging, they wait for what it owes, then
 * pick again: a client that never stops pipelining must not stay on a
 * replica the checks took out); with replies owed by
 * the master, the read goes to the master too. Otherwise the healthy
 * replica owing the fewest replies takes it, on a connection in the
 * client's session state; none healthy (or no room for its state there):
 * the master. A read is never held for the master's gate: replicas answer
 * while the master cannot be trusted, within replica-max-lag.
 */
static enum dispatch_rc forward_read(struct client *c, const struct cmd_info *ci,
                                     const struct resp_request *req, struct evbuffer *in)
{
    struct session_expect exp;
    struct replica *r;
    struct group *g;
    struct backend *be;

    if (c->outstanding > 0 && c->be != NULL && c->be->replica != NULL &&
        c->be->replica->state == REPLICA_OK)
        be = c->be;
    else if (c->outstanding > 0 && c->be != NULL && (c->be->to_replica || c->be->replica != NULL))
        return wait_for(c, CLIENT_WAIT_REPLIES);     /* gone bad or no longer named: pick anew */
    else if (c->outstanding > 0 || (r = pool_pick_replica(c->pool)) == NULL ||
             (g = group_get(c->pool, r, &c->st)) == NULL)
        return forward(c, ci, req, in, NULL, NULL, NULL);
    else
        be = group_backend(g, c);
    if (backend_not_ready(c, be))
        return DISPATCH_WAIT;
    c->held_since_ms = 0;
    session_on_send(&c->sess, ci, req, &exp);
    c->be = be;
    c->outstanding++;
    backend_send(be, c, in, req->len, &exp);
    be->replica->reads++;
    c->pool->stats.replica_reads++;
    return DISPATCH_DONE;
}

/* read-from replicas: a read-only command (the master's COMMAND says so)
 * goes to a replica unless the client wrote less than read-after-write-ms
 * ago; anything else to the master, its time kept for that rule. */
static enum dispatch_rc dispatch_read_or_write(struct client *c, const struct cmd_info *ci,
                                               const struct resp_request *req,
                                               struct evbuffer *in)
{
    int window = c->pool->cf->read_after_write_ms;
    enum dispatch_rc rc;

    if (pool_command_readonly(c->pool, req)) {
        if (window == 0 || util_now_ms() - c->last_write_ms >= (uint64_t)window)
            return forward_read(c, ci, req, in);
        return forward(c, ci, req, in, NULL, NULL, NULL);
    }
    rc = forward(c, ci, req, in, NULL, NULL, NULL);
    if (rc == DISPATCH_DONE && window > 0)
        c->last_write_ms = util_now_ms();
    return rc;
}

/* Dispatch one framed request from the front of `in`. */
static enum dispatch_rc dispatch(struct client *c, const struct resp_request *req,
                                 struct evbuffer *in)
{
    struct cmd_info ci;

    if (req->flags & RESP_REQ_EMPTY) {
        evbuffer_drain(in, req->len);  /* redis answers nothing */
        return DISPATCH_DONE;
    }
    ci = cmd_classify(req);
    /* A SELECT/AUTH/HELLO in flight decides where the next command goes:
     * nothing follows it before its reply (a pinned client's connection
     * carries its state, so only another change waits there). */
    if (c->moving && (!c->pinned || (ci.flags & CMD_GROUP)))
        return wait_for(c, CLIENT_WAIT_REPLIES);
    /* These need every reply before them delivered first: a local answer
     * must not overtake them, and a new connection must not either. */
    if (c->outstanding > 0 &&
        ((ci.flags & CMD_LOCAL) || (!c->pinned && (ci.flags & (CMD_PIN | CMD_GROUP)))))
        return wait_for(c, CLIENT_WAIT_REPLIES);
    if (c->refusal != NULL && !((ci.flags & CMD_GROUP) && !c->pinned))
        return close_refused(c);
    if (ci.flags & CMD_LOCAL)
        return dispatch_local(c, req, in);
    if (ci.flags & CMD_GROUP)
        return dispatch_move(c, &ci, req, in);
    if (!c->pinned && (ci.flags & CMD_PIN))
        pin(c, ci.why);
    if (!c->pinned && c->pool->cf->read_from == CONF_READ_FROM_REPLICAS && ci.flags == 0)
        return dispatch_read_or_write(c, &ci, req, in);
    return forward(c, &ci, req, in, NULL, NULL, NULL);
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

/* ---- half-close ---------------------------------------------------------- */

/* Replies that may never end: a blocked call the client can no longer
 * cancel, a subscription, MONITOR. Redis closes such a client at EOF. */
static int waits_forever(const struct client *c)
{
    return c->sess.blocking > 0 || c->sess.pubsub_inflight > 0 ||
           session_subscribed(&c->sess) || c->sess.raw;
}

/*
 * The client shut its socket for writing (EOF) and may still be reading,
 * as ioredis's disconnect() does after a last pipeline: every command
 * already received is still sent, every reply still delivered, and then
 * the connection closes. Replies are dropped only if writing to the client
 * fails. An incomplete request at the end is dropped, as redis drops it.
 */
static void client_half_closed(struct client *c)
{
    if (c->state == CLIENT_CLOSING || waits_forever(c)) {
        client_close(c, "client disconnected");
        return;
    }
    c->eof = 1;
    io_conn_read(&c->io, 0);
    log_debug(c->pool->name, "client %llu half-closed: finishing %u outstanding replies",
              (unsigned long long)c->id, c->outstanding);
    if (c->state == CLIENT_ACTIVE)
        client_process(c);
}

/* Half-closed and nothing left to dispatch: close once the replies are out. */
static void finish_half_closed(struct client *c)
{
    if (c->outstanding > 0) {
        wait_for(c, CLIENT_WAIT_REPLIES);
        return;
    }
    begin_closing(c);
    if (io_conn_out_len(&c->io) == 0)
        client_close(c, "client disconnected (half-close), every reply delivered");
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
            if (r == 0 && c->eof) {
                finish_half_closed(c);
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
        c->ncmds++;
        if (rc == DISPATCH_STOP)
            return;
        if (c->eof && waits_forever(c)) {
            client_close(c, "client disconnected while blocked or subscribed");
            return;
        }
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
        client_half_closed(c);
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

int client_count_pinned(const struct pool *p)
{
    struct client *c;
    int n = 0;

    TAILQ_FOREACH(c, &proxy.clients, link)
        n += c->pool == p && c->pinned && c->state != CLIENT_ZOMBIE;
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
