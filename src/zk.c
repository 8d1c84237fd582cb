/*
 * zk: one ZooKeeper session for every pool that reads a znode.
 *
 *   ZK completion thread                      loop thread
 *   --------------------                      -----------
 *   session_watcher / node_watcher  --+
 *   exists_done / get_done            +--> queue (mutex) + wake pipe --> drain()
 *                                                                          |
 *     session events -> every pool's gate        node events and reads -> that pool
 *
 * The callbacks copy what they were given (buffers live only during the
 * call) and return. Messages carry the generation of the handle they came
 * from, so anything that arrives from a handle we already closed is
 * dropped. zookeeper_close() is only ever called here, on the loop thread:
 * never from a callback (a use-after-free in 3.8.0).
 *
 * Trust rules (DESIGN.md section 2), and where they live:
 *  - the watcher's `state` argument, not zoo_state(), says connected;
 *  - a disconnect starts our own timer: after the negotiated session
 *    timeout without reconnecting we treat the session as expired, close
 *    the handle and open a new one (a partitioned client is never told);
 *  - after every (re)connect: sync, then exists (+ get) with a watch;
 *  - watches are one-shot: every node event re-arms, and every completion
 *    result is acted on (a create right after a delete yields no event);
 *  - exists first, then get: get on a missing node sets no watch;
 *  - session events also reach per-path watchers: ignored there.
 *
 * Every successful get is followed by a read of the znode's ACL, for a
 * warning only (zkacl.h: may anyone change it?); it never gates. ZooKeeper
 * has no watch on ACLs and setAcl fires no data watch, so the verdict is as
 * fresh as the last read of the data: every change event, every reconnect,
 * every re-read (stall, fencing). A bare setAcl shows at the next of these.
 *
 * A pool with read-from replicas that watches an election's ROOT/leader_ack
 * also watches ROOT's children: its replicas are the other ballots
 * (ballot.h). Each listing is a round; the ballots' data come back as
 * separate reads, and only the last round's complete set is applied.
 */
#define THREADED 1
#include "zk.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <zookeeper/zookeeper.h>

#include "ballot.h"
#include "conf.h"
#include "gate.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"
#include "zkacl.h"
#include "znode.h"

#define ZK_REOPEN_MS 1000            /* retry zookeeper_init / after AUTH_FAILED */
#define ZK_LOG_EVERY_MS 30000        /* library warnings: one per 30 s; our own state
                                        lines already say what is going on */
#define CTX_SESSION 0xffff
#define CTX_DIR 0x8000               /* in a context's watch index: about the
                                        election ROOT, not the znode */

enum zk_msg_kind {
    MSG_SESSION,                     /* session event: state */
    MSG_NODE,                        /* watch fired: type */
    MSG_EXISTS,                      /* exists completed: rc, stat */
    MSG_GET,                         /* get completed: rc, stat, data */
    MSG_ACL,                         /* get_acl completed: rc, acl */
    MSG_CHILDREN,                    /* get_children of ROOT completed: rc, names */
    MSG_BALLOT,                      /* get of one ballot completed: rc, data */
};

struct zk_msg {
    struct zk_msg *next;
    enum zk_msg_kind kind;
    uint64_t gen;                    /* handle generation it came from */
    int widx;                        /* watch index, or -1 */
    int dir;                         /* about the watch's election ROOT */
    int type, state, rc;
    int64_t mzxid;
    int32_t version;
    int64_t mtime_ms;
    char *data;                      /* MSG_GET, owned by the message */
    int datalen;
    struct ACL_vector acl;           /* MSG_ACL, a copy owned by the message */
    struct String_vector names;      /* MSG_CHILDREN, a copy owned by the message */
    uint32_t round;                  /* MSG_BALLOT: the listing it belongs to */
    int slot;                        /* MSG_BALLOT: its place in that listing */
};

/* The context of one ballot's read: more than fits in a pointer. Freed by
 * the completion, which the library calls exactly once (ZCLOSING at the
 * latest). */
struct ballot_req {
    uint64_t gen;
    int widx;
    uint32_t round;
    int slot;
};

struct zk_watch {
    struct pool *pool;
    char *path;                      /* a copy of pool->cf->znode: a reload frees
                                        the conf it came from (the znode itself
                                        is restart-only) */
    char *dir;                       /* election ROOT whose ballots are the
                                        replicas, or NULL */
    uint32_t round;                  /* ballot listings started */
    int pending;                     /* reads of this round not back yet */
    int nballots;                    /* in this round */
    struct znode_node ballots[BALLOT_MAX];
    int ballot_ok[BALLOT_MAX];       /* its data parsed as host:port */
};

static struct zk {
    zhandle_t *zh;
    uint64_t gen;                    /* of zh; bumped by every zookeeper_init */
    int connected;                   /* last session event was CONNECTED */
    int timeout_ms;                  /* negotiated (requested until first connect) */
    clientid_t cid;                  /* of the last connected session */
    uint64_t connects;               /* CONNECTED events seen */
    int auth_failing;                /* AUTH_FAILED since the last CONNECTED: log once */
    struct zk_watch *watches;
    int nwatches;
    pthread_mutex_t lock;            /* guards the queue; taken by ZK threads */
    struct zk_msg *head, *tail;
    int wake[2];                     /* pipe: a byte means "drain the queue" */
    struct event *wake_ev;
    struct event *expiry;            /* own session-expiry timer while disconnected */
    struct event *grace;             /* zk-disconnect-grace timer */
    struct event *reopen;            /* retry opening a handle */
    int started;
} zk = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = { -1, -1 } };

/* ---- ZooKeeper threads: copy, enqueue, wake ----------------------------- */

static void *ctx_of(uint64_t gen, int widx)
{
    return (void *)(uintptr_t)((gen << 16) | (uint64_t)(widx & 0xffff));
}

static void ctx_split(const void *ctx, uint64_t *gen, int *widx)
{
    uintptr_t v = (uintptr_t)ctx;

    *gen = (uint64_t)v >> 16;
    *widx = (int)(v & 0xffff);
}

static void enqueue(struct zk_msg *m)
{
    char byte = 1;
    ssize_t rc;

    pthread_mutex_lock(&zk.lock);
    if (zk.tail != NULL)
        zk.tail->next = m;
    else
        zk.head = m;
    zk.tail = m;
    pthread_mutex_unlock(&zk.lock);
    /* Non-blocking: a full pipe already holds a wake-up; nothing is lost,
     * the message is in the queue. */
    rc = write(zk.wake[1], &byte, 1);
    RZ_UNUSED(rc);
}

static struct zk_msg *msg_new(enum zk_msg_kind kind, const void *ctx)
{
    struct zk_msg *m = xcalloc(1, sizeof(*m));
    int widx;

    m->kind = kind;
    ctx_split(ctx, &m->gen, &widx);
    m->widx = widx == CTX_SESSION ? -1 : widx & ~CTX_DIR;
    m->dir = widx != CTX_SESSION && (widx & CTX_DIR) != 0;
    return m;
}

static void session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct zk_msg *m;

    RZ_UNUSED(zh);
    RZ_UNUSED(path);
    if (type != ZOO_SESSION_EVENT)
        return;
    m = msg_new(MSG_SESSION, ctx);
    m->state = state;
    enqueue(m);
}

static void node_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct zk_msg *m;

    RZ_UNUSED(zh);
    RZ_UNUSED(state);
    RZ_UNUSED(path);
    /* Session events reach every watcher; the session watcher has them. */
    if (type == ZOO_SESSION_EVENT)
        return;
    m = msg_new(MSG_NODE, ctx);
    m->type = type;
    enqueue(m);
}

static void exists_done(int rc, const struct Stat *stat, const void *ctx)
{
    struct zk_msg *m = msg_new(MSG_EXISTS, ctx);

    m->rc = rc;
    if (rc == ZOK && stat != NULL) {
        m->mzxid = stat->mzxid;
        m->version = stat->version;
    }
    enqueue(m);
}

static void get_done(int rc, const char *value, int len, const struct Stat *stat,
                     const void *ctx)
{
    struct zk_msg *m = msg_new(MSG_GET, ctx);

    m->rc = rc;
    if (rc == ZOK && stat != NULL) {
        m->mzxid = stat->mzxid;
        m->version = stat->version;
        m->mtime_ms = stat->mtime;
    }
    if (rc == ZOK && value != NULL && len > 0) {
        m->data = xmalloc((size_t)len);
        memcpy(m->data, value, (size_t)len);
        m->datalen = len;
    }
    enqueue(m);
}

static void acl_done(int rc, struct ACL_vector *acl, struct Stat *stat, const void *ctx)
{
    struct zk_msg *m = msg_new(MSG_ACL, ctx);

    RZ_UNUSED(stat);
    m->rc = rc;
    if (rc == ZOK)
        zkacl_copy(&m->acl, acl);    /* the library frees its vector on return */
    enqueue(m);
}

static void children_done(int rc, const struct String_vector *names, const void *ctx)
{
    struct zk_msg *m = msg_new(MSG_CHILDREN, ctx);

    m->rc = rc;
    if (rc == ZOK && names != NULL && names->count > 0) {
        m->names.count = names->count;
        m->names.data = xcalloc((size_t)names->count, sizeof(char *));
        for (int i = 0; i < names->count; i++)
            m->names.data[i] = xstrdup(names->data[i]);
    }
    enqueue(m);
}

static void ballot_done(int rc, const char *value, int len, const struct Stat *stat,
                        const void *ctx)
{
    struct ballot_req *q = (struct ballot_req *)ctx;
    struct zk_msg *m = xcalloc(1, sizeof(*m));

    RZ_UNUSED(stat);
    m->kind = MSG_BALLOT;
    m->gen = q->gen;
    m->widx = q->widx;
    m->round = q->round;
    m->slot = q->slot;
    free(q);
    m->rc = rc;
    if (rc == ZOK && value != NULL && len > 0) {
        m->data = xmalloc((size_t)len);
        memcpy(m->data, value, (size_t)len);
        m->datalen = len;
    }
    enqueue(m);
}

static void sync_done(int rc, const char *value, const void *ctx)
{
    RZ_UNUSED(rc);
    RZ_UNUSED(value);
    RZ_UNUSED(ctx);
    /* Nothing to do: the exists/get queued behind it carries the result. */
}

/*
 * The library's own log, from any of its threads. While every server is
 * down it logs an error per connection attempt (dozens a second), so pass
 * on at most one warning per ZK_LOG_EVERY_MS and count the rest.
 */
static void library_log(const char *message)
{
    static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t last_ms, dropped;
    uint64_t now = util_now_ms();
    enum log_level level = strstr(message, "ZOO_ERROR") ? LOGL_WARN
                           : strstr(message, "ZOO_WARN") ? LOGL_WARN
                           : strstr(message, "ZOO_INFO") ? LOGL_INFO : LOGL_DEBUG;
    uint64_t skipped = 0;
    int pass;

    if (level > log_level_current)
        return;
    pthread_mutex_lock(&log_lock);
    pass = now - last_ms >= ZK_LOG_EVERY_MS || level == LOGL_DEBUG;
    if (pass) {
        last_ms = now;
        skipped = dropped;
        dropped = 0;
    } else {
        dropped++;
    }
    pthread_mutex_unlock(&log_lock);
    if (!pass)
        return;
    if (skipped > 0)
        log_write(level, NULL, "zookeeper library: %s (%llu similar lines suppressed)", message,
                  (unsigned long long)skipped);
    else
        log_write(level, NULL, "zookeeper library: %s", message);
}

/* ---- loop thread: gate events --------------------------------------------- */

static void feed(struct pool *p, enum gate_event_type type)
{
    struct gate_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    pool_gate_event(p, &ev);
}

static void feed_all(enum gate_event_type type)
{
    for (int i = 0; i < zk.nwatches; i++) {
        if (zk.watches[i].pool != NULL)
            feed(zk.watches[i].pool, type);
    }
}

/* Errors that say "the connection or session is gone": the session events
 * tell that story; the read is re-issued after reconnect. */
static int session_error(int rc)
{
    return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONEXPIRED ||
           rc == ZINVALIDSTATE || rc == ZCLOSING || rc == ZSESSIONMOVED;
}

/* exists (watch) first; get follows when it exists. */
static void read_znode(int widx)
{
    struct zk_watch *w = &zk.watches[widx];
    int rc = zoo_awexists(zk.zh, w->path, node_watcher, ctx_of(zk.gen, widx), exists_done,
                          ctx_of(zk.gen, widx));

    if (rc != ZOK && !session_error(rc))
        log_warn(w->pool->name, "zookeeper: cannot read %s: %s", w->path, zerror(rc));
}

static void list_ballots(int widx);

static void sync_and_read(int widx)
{
    struct zk_watch *w = &zk.watches[widx];
    char root[1024];
    /* Requests of one session are answered in order: the read queued right
     * after the sync sees at least what the leader had at the sync. */
    int rc = zoo_async(zk.zh, w->path, sync_done, ctx_of(zk.gen, widx));

    if (rc != ZOK && !session_error(rc))
        log_warn(w->pool->name, "zookeeper: cannot sync %s: %s", w->path, zerror(rc));
    read_znode(widx);
    /* Settled at the first read with read-from replicas (a reload may turn
     * it on; turned off, the pool ignores what comes). */
    if (w->dir == NULL && w->pool->cf->read_from == CONF_READ_FROM_REPLICAS &&
        ballot_root(w->path, root, sizeof(root)))
        w->dir = xstrdup(root);
    if (w->dir != NULL)
        list_ballots(widx);
}

static void read_failed(struct zk_watch *w, const char *op, int rc)
{
    if (session_error(rc))
        return;
    log_warn(w->pool->name, "zookeeper: %s %s failed: %s", op, w->path, zerror(rc));
    feed(w->pool, GATE_EV_READ_ERROR);
}

/* get with a watch. A missing node answers ZNONODE and sets no watch:
 * on_get() then falls back to exists, which does. */
static void get_znode(struct zk_watch *w, int widx)
{
    int rc = zoo_awget(zk.zh, w->path, node_watcher, ctx_of(zk.gen, widx), get_done,
                       ctx_of(zk.gen, widx));

    if (rc != ZOK)
        read_failed(w, "get", rc);
}

static void on_exists(struct zk_watch *w, int widx, const struct zk_msg *m)
{
    if (m->rc == ZOK) {
        get_znode(w, widx);
    } else if (m->rc == ZNONODE) {
        feed(w->pool, GATE_EV_READ_NONODE);
    } else {
        read_failed(w, "exists", m->rc);
    }
}

/* The ACL, asked for once the data is in: the gate never waits for it. */
static void read_acl(struct zk_watch *w, int widx)
{
    int rc = zoo_aget_acl(zk.zh, w->path, acl_done, ctx_of(zk.gen, widx));

    if (rc != ZOK && !session_error(rc))
        pool_znode_acl(w->pool, ZKACL_UNKNOWN, NULL, zerror(rc));
}

static void on_get(struct zk_watch *w, int widx, const struct zk_msg *m)
{
    struct gate_event ev;
    char why[256];

    if (m->rc == ZNONODE) {
        read_znode(widx);            /* deleted between exists and get */
        return;
    }
    if (m->rc != ZOK) {
        read_failed(w, "get", m->rc);
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.type = GATE_EV_READ_DATA;
    ev.mzxid = m->mzxid;
    ev.version = m->version;
    ev.mtime_ms = m->mtime_ms;
    ev.result = znode_parse(m->data, (size_t)m->datalen,
                            (enum znode_format)w->pool->cf->znode_format, &ev.master, why,
                            sizeof(why));
    pool_znode_read(w->pool, &ev, m->data, (size_t)m->datalen, why);
    read_acl(w, widx);
}

static void on_acl(struct zk_watch *w, const struct zk_msg *m)
{
    char entry[256];
    int i;

    /* Deleted since the get: the delete event re-reads. Session errors:
     * the reconnect re-reads. Neither says anything about the ACL. */
    if (m->rc == ZNONODE || session_error(m->rc))
        return;
    if (m->rc != ZOK) {
        pool_znode_acl(w->pool, ZKACL_UNKNOWN, NULL, zerror(m->rc));
        return;
    }
    i = zkacl_world_writable(&m->acl);
    if (i < 0) {
        pool_znode_acl(w->pool, ZKACL_CLOSED, NULL, NULL);
        return;
    }
    zkacl_format_entry(&m->acl.data[i], entry, sizeof(entry));
    pool_znode_acl(w->pool, ZKACL_OPEN, entry, NULL);
}

static void on_node(struct zk_watch *w, int widx, const struct zk_msg *m)
{
    log_debug(w->pool->name, "zookeeper: watch fired on %s (type %d)", w->path, m->type);
    feed(w->pool, m->type == ZOO_DELETED_EVENT ? GATE_EV_NODE_DELETED : GATE_EV_NODE_CHANGED);
    /* Created or changed: the node most likely exists, so get it at once
     * (one round trip fewer on every switch); deleted: watch for it. */
    if (m->type == ZOO_DELETED_EVENT)
        read_znode(widx);
    else
        get_znode(w, widx);
}

/* ---- loop thread: an election's ballots ------------------------------------ */

/* ROOT's children, with a watch: any ballot cast or gone lists again. */
static void list_ballots(int widx)
{
    struct zk_watch *w = &zk.watches[widx];
    void *ctx = ctx_of(zk.gen, widx | CTX_DIR);
    int rc = zoo_awget_children(zk.zh, w->dir, node_watcher, ctx, children_done, ctx);

    if (rc != ZOK && !session_error(rc))
        log_warn(w->pool->name, "zookeeper: cannot list the ballots under %s: %s", w->dir,
                 zerror(rc));
}

static void ballots_done(struct zk_watch *w)
{
    struct znode_node got[BALLOT_MAX];
    int n = 0;

    for (int i = 0; i < w->nballots; i++) {
        if (w->ballot_ok[i])
            got[n++] = w->ballots[i];
    }
    pool_set_ballots(w->pool, got, n);
}

static void read_ballot(struct zk_watch *w, int widx, const char *name, int slot)
{
    char path[1024];
    struct ballot_req *q = xcalloc(1, sizeof(*q));
    int rc;

    snprintf(path, sizeof(path), "%s/%s", strcmp(w->dir, "/") ? w->dir : "", name);
    q->gen = zk.gen;
    q->widx = widx;
    q->round = w->round;
    q->slot = slot;
    rc = zoo_aget(zk.zh, path, 0, ballot_done, q);
    if (rc != ZOK) {
        free(q);                     /* no completion will come */
        w->pending--;
    }
}

/* A new listing: read each ballot's data; the set is applied when the
 * last read is back (a later listing makes this one's reads moot). */
static void on_children(struct zk_watch *w, int widx, const struct zk_msg *m)
{
    int idx[BALLOT_MAX], n, left_out;
    void *ctx = ctx_of(zk.gen, widx | CTX_DIR);

    if (m->rc == ZNONODE) {
        /* No ROOT yet: no candidate ever ran. Watch for it. */
        int rc = zoo_awexists(zk.zh, w->dir, node_watcher, ctx, exists_done, ctx);
        if (rc != ZOK && !session_error(rc))
            log_warn(w->pool->name, "zookeeper: cannot watch %s: %s", w->dir, zerror(rc));
        return;
    }
    if (m->rc != ZOK) {
        if (!session_error(m->rc))
            log_warn(w->pool->name, "zookeeper: listing the ballots under %s failed: %s "
                     "(replicas unchanged until the next change or reconnect)", w->dir,
                     zerror(m->rc));
        return;
    }
    n = ballot_select(m->names.data, m->names.count, idx, BALLOT_MAX, &left_out);
    if (left_out > 0)
        log_warn(w->pool->name, "election %s: %d ballots past the first %d are not read from",
                 w->dir, left_out, BALLOT_MAX);
    w->round++;
    w->nballots = n;
    w->pending = n;
    memset(w->ballot_ok, 0, sizeof(w->ballot_ok));
    for (int i = 0; i < n; i++)
        read_ballot(w, widx, m->names.data[idx[i]], i);
    if (w->pending == 0)
        ballots_done(w);
}

static void on_ballot(struct zk_watch *w, const struct zk_msg *m)
{
    struct znode_master b;
    char why[ZNODE_WHY_LEN];

    if (m->round != w->round || m->slot < 0 || m->slot >= w->nballots)
        return;                      /* a listing since: its reads decide */
    if (m->rc == ZOK && znode_parse(m->data, (size_t)m->datalen, ZNODE_FORMAT_PLAIN, &b, why,
                                    sizeof(why)) == ZNODE_MASTER) {
        snprintf(w->ballots[m->slot].host, sizeof(w->ballots[m->slot].host), "%s", b.host);
        w->ballots[m->slot].port = b.port;
        w->ballot_ok[m->slot] = 1;
    } else if (m->rc == ZOK) {
        log_warn(w->pool->name, "election %s: a ballot's data is not host:port (%s): not "
                 "read from", w->dir, why);
    }
    /* ZNONODE: the candidate left between the listing and the read; its
     * going fired the child watch, and the next listing is on its way. */
    if (--w->pending == 0)
        ballots_done(w);
}

/* ROOT's children changed, or ROOT came or went: list again. */
static void on_dir_msg(struct zk_watch *w, int widx, const struct zk_msg *m)
{
    switch (m->kind) {
    case MSG_NODE:
        log_debug(w->pool->name, "zookeeper: watch fired on %s (type %d)", w->dir, m->type);
        list_ballots(widx);
        break;
    case MSG_EXISTS:
        if (m->rc == ZOK)
            list_ballots(widx);      /* created between the listing and the exists */
        break;
    case MSG_CHILDREN:
        on_children(w, widx, m);
        break;
    case MSG_BALLOT:
        on_ballot(w, m);
        break;
    default:
        break;
    }
}

/* ---- loop thread: the session ------------------------------------------- */

static void zk_open(void);

static void write_session_file(void)
{
    const char *path = proxy.conf->zk_session_file;
    FILE *fp;

    if (path == NULL || path[0] == '\0')
        return;
    fp = fopen(path, "w");
    if (fp == NULL) {
        log_warn(NULL, "cannot write zk-session-file %s: %s", path, strerror(errno));
        return;
    }
    fprintf(fp, "%llx ", (unsigned long long)zk.cid.client_id);
    for (size_t i = 0; i < sizeof(zk.cid.passwd); i++)
        fprintf(fp, "%02x", (unsigned char)zk.cid.passwd[i]);
    fprintf(fp, "\n");
    fclose(fp);
}

static void close_handle(void)
{
    if (zk.zh == NULL)
        return;
    zookeeper_close(zk.zh);
    zk.zh = NULL;
    zk.connected = 0;
}

/* The session is gone (told, or by our own timer). Never reuse the handle:
 * close it and start a new session; the pools stay EXPIRED until it works. */
static void session_expired(const char *why)
{
    log_warn(NULL, "zookeeper session 0x%llx expired (%s): opening a new session",
             (unsigned long long)zk.cid.client_id, why);
    event_del(zk.expiry);
    event_del(zk.grace);
    feed_all(GATE_EV_EXPIRED);
    close_handle();
    zk_open();
}

static void expiry_cb(evutil_socket_t fd, short what, void *arg)
{
    RZ_UNUSED(fd);
    RZ_UNUSED(what);
    RZ_UNUSED(arg);
    if (!zk.connected)
        session_expired("disconnected for longer than the session timeout");
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
    RZ_UNUSED(fd);
    RZ_UNUSED(what);
    RZ_UNUSED(arg);
    if (!zk.connected)
        feed_all(GATE_EV_GRACE_OVER);
}

static void reopen_cb(evutil_socket_t fd, short what, void *arg)
{
    RZ_UNUSED(fd);
    RZ_UNUSED(what);
    RZ_UNUSED(arg);
    zk_open();
}

static void add_timer(struct event *ev, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    event_add(ev, &tv);
}

static void on_connected(void)
{
    const clientid_t *cid = zoo_client_id(zk.zh);
    int same = cid != NULL && zk.connects > 0 && cid->client_id == zk.cid.client_id;

    zk.connected = 1;
    zk.connects++;
    zk.auth_failing = 0;
    zk.timeout_ms = zoo_recv_timeout(zk.zh);
    if (cid != NULL)
        zk.cid = *cid;
    event_del(zk.expiry);
    event_del(zk.grace);
    log_notice(NULL, "zookeeper session 0x%llx %s (timeout %d ms)",
               (unsigned long long)zk.cid.client_id, same ? "reconnected" : "established",
               zk.timeout_ms);
    write_session_file();
    feed_all(GATE_EV_CONNECTED);
    for (int i = 0; i < zk.nwatches; i++) {
        if (zk.watches[i].pool != NULL)
            sync_and_read(i);
    }
}

static void on_disconnected(void)
{
    zk.connected = 0;
    log_warn(NULL, "zookeeper connection lost (session 0x%llx); gating until it is back, "
             "treating the session as expired after %d ms",
             (unsigned long long)zk.cid.client_id, zk.timeout_ms);
    add_timer(zk.expiry, zk.timeout_ms);
    if (proxy.conf->zk_disconnect_grace_ms > 0)
        add_timer(zk.grace, proxy.conf->zk_disconnect_grace_ms);
    feed_all(GATE_EV_DISCONNECTED);
}

static void on_session(int state)
{
    if (state == ZOO_CONNECTED_STATE) {
        on_connected();
    } else if (state == ZOO_CONNECTING_STATE || state == ZOO_ASSOCIATING_STATE) {
        if (zk.connected)
            on_disconnected();
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
        session_expired("the server says so");
    } else if (state == ZOO_AUTH_FAILED_STATE) {
        if (!zk.auth_failing++)
            log_error(NULL, "zookeeper refused our credentials (zk-auth-digest); retrying "
                      "every %d ms", ZK_REOPEN_MS);
        event_del(zk.expiry);
        feed_all(GATE_EV_AUTH_FAILED);
        close_handle();
        add_timer(zk.reopen, ZK_REOPEN_MS);
    }
}

static void dispatch_msg(const struct zk_msg *m)
{
    struct zk_watch *w;

    if (zk.zh == NULL || m->gen != zk.gen)
        return;                      /* from a handle we closed */
    if (m->kind == MSG_SESSION) {
        on_session(m->state);
        return;
    }
    if (m->widx < 0 || m->widx >= zk.nwatches || !zk.connected)
        return;
    w = &zk.watches[m->widx];
    if (w->pool == NULL)
        return;                      /* its pool was removed by a reload */
    if (m->dir || m->kind == MSG_BALLOT) {
        if (w->dir != NULL)
            on_dir_msg(w, m->widx, m);
        return;
    }
    switch (m->kind) {
    case MSG_NODE:
        on_node(w, m->widx, m);
        break;
    case MSG_EXISTS:
        on_exists(w, m->widx, m);
        break;
    case MSG_GET:
        on_get(w, m->widx, m);
        break;
    case MSG_ACL:
        on_acl(w, m);
        break;
    default:
        break;
    }
}

static struct zk_msg *take_all(void)
{
    struct zk_msg *m;

    pthread_mutex_lock(&zk.lock);
    m = zk.head;
    zk.head = zk.tail = NULL;
    pthread_mutex_unlock(&zk.lock);
    return m;
}

static void free_msg(struct zk_msg *m)
{
    free(m->data);
    zkacl_free(&m->acl);
    for (int i = 0; i < m->names.count; i++)
        free(m->names.data[i]);
    free(m->names.data);
    free(m);
}

static void free_msgs(struct zk_msg *m)
{
    while (m != NULL) {
        struct zk_msg *next = m->next;
        free_msg(m);
        m = next;
    }
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    char buf[256];
    struct zk_msg *m, *next;

    RZ_UNUSED(what);
    RZ_UNUSED(arg);
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    /* In order: the library delivers session events, watch events and
     * completions through one FIFO; the queue keeps that order. */
    for (m = take_all(); m != NULL; m = next) {
        next = m->next;
        dispatch_msg(m);
        free_msg(m);
    }
}

static void zk_open(void)
{
    int flags = ZOO_NO_LOG_CLIENTENV;

    zk.gen++;
    zk.connected = 0;
    zk.timeout_ms = proxy.conf->zk_session_timeout_ms;
    feed_all(GATE_EV_SESSION_OPENING);
    zk.zh = zookeeper_init2(proxy.conf->zookeeper, session_watcher,
                            proxy.conf->zk_session_timeout_ms, NULL, ctx_of(zk.gen, CTX_SESSION),
                            flags, library_log);
    if (zk.zh == NULL) {
        log_error(NULL, "zookeeper: cannot start a session with '%s': %s; retrying in %d ms",
                  proxy.conf->zookeeper, strerror(errno), ZK_REOPEN_MS);
        add_timer(zk.reopen, ZK_REOPEN_MS);
        return;
    }
    if (proxy.conf->zk_auth_digest[0] != '\0') {
        const char *cred = proxy.conf->zk_auth_digest;
        int rc = zoo_add_auth(zk.zh, "digest", cred, (int)strlen(cred), NULL, NULL);
        if (rc != ZOK)
            log_error(NULL, "zookeeper: cannot add digest auth: %s", zerror(rc));
    }
    log_info(NULL, "zookeeper: connecting to %s (session timeout %d ms requested)",
             proxy.conf->zookeeper, proxy.conf->zk_session_timeout_ms);
}

static void watch_init(struct zk_watch *w, struct pool *p)
{
    memset(w, 0, sizeof(*w));
    w->pool = p;
    w->path = xstrdup(p->cf->znode);
}

static void watch_free(struct zk_watch *w)
{
    free(w->path);
    free(w->dir);
    w->path = w->dir = NULL;
    w->pool = NULL;
}

int zk_start(char *err, size_t errlen)
{
    for (int i = 0; i < proxy.npools; i++) {
        if (proxy.pools[i]->cf->znode != NULL)
            zk.nwatches++;
    }
    if (zk.nwatches == 0)
        return 0;
    zk.watches = xcalloc((size_t)zk.nwatches, sizeof(*zk.watches));
    for (int i = 0, n = 0; i < proxy.npools; i++) {
        if (proxy.pools[i]->cf->znode != NULL) {
            watch_init(&zk.watches[n], proxy.pools[i]);
            n++;
        }
    }
    if (pipe2(zk.wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "zookeeper: pipe: %s", strerror(errno));
        return -1;
    }
    zk.wake_ev = event_new(proxy.base, zk.wake[0], EV_READ | EV_PERSIST, drain_cb, NULL);
    event_add(zk.wake_ev, NULL);
    zk.expiry = evtimer_new(proxy.base, expiry_cb, NULL);
    zk.grace = evtimer_new(proxy.base, grace_cb, NULL);
    zk.reopen = evtimer_new(proxy.base, reopen_cb, NULL);
    zoo_set_debug_level(log_level_current >= LOGL_DEBUG ? ZOO_LOG_LEVEL_INFO : ZOO_LOG_LEVEL_WARN);
    zk.started = 1;
    zk_open();
    return 0;
}

void zk_stop(void)
{
    if (!zk.started)
        return;
    /* Closes the session on the server too (ephemerals, watches), and joins
     * the library's threads: no callback runs after this. */
    close_handle();
    free_msgs(take_all());
    event_free(zk.wake_ev);
    event_free(zk.expiry);
    event_free(zk.grace);
    event_free(zk.reopen);
    close(zk.wake[0]);
    close(zk.wake[1]);
    for (int i = 0; i < zk.nwatches; i++)
        watch_free(&zk.watches[i]);
    free(zk.watches);
    zk.watches = NULL;
    zk.nwatches = 0;
    zk.started = 0;
}

void zk_check_stall(uint64_t now_ms)
{
    if (!zk.started || now_ms - proxy.tick_ms <= ZK_STALL_MS)
        return;
    log_warn(NULL, "the event loop stalled for %llu ms: re-reading every znode before "
             "forwarding again", (unsigned long long)(now_ms - proxy.tick_ms));
    proxy.tick_ms = now_ms;
    drain_cb(zk.wake[0], EV_READ, NULL);
    for (int i = 0; i < zk.nwatches; i++) {
        if (zk.watches[i].pool != NULL)
            zk_resync(zk.watches[i].pool);
    }
}

int zk_add_pool(struct pool *p)
{
    int widx;

    if (!zk.started)
        return -1;
    zk.watches = xrealloc(zk.watches, (size_t)(zk.nwatches + 1) * sizeof(*zk.watches));
    widx = zk.nwatches++;
    watch_init(&zk.watches[widx], p);
    feed(p, GATE_EV_SESSION_OPENING);
    if (zk.zh != NULL && zk.connected) {
        feed(p, GATE_EV_CONNECTED);
        sync_and_read(widx);
    }
    return 0;
}

void zk_remove_pool(struct pool *p)
{
    /* The slot stays (watch indexes are in flight as contexts); whatever
     * still arrives for it is dropped. */
    for (int i = 0; i < zk.nwatches; i++) {
        if (zk.watches[i].pool == p) {
            watch_free(&zk.watches[i]);
        }
    }
}

static void reread(struct pool *p, int gate_first)
{
    if (zk.zh == NULL || !zk.connected)
        return;
    for (int i = 0; i < zk.nwatches; i++) {
        if (zk.watches[i].pool == p) {
            if (gate_first)
                feed(p, GATE_EV_NODE_CHANGED);
            sync_and_read(i);
        }
    }
}

void zk_resync(struct pool *p)
{
    reread(p, 1);
}

void zk_reread(struct pool *p)
{
    reread(p, 0);
}

void zk_status(struct zk_status *out)
{
    out->started = zk.started;
    out->connected = zk.connected;
    out->session_id = zk.cid.client_id;
    out->timeout_ms = zk.timeout_ms;
    out->connects = zk.connects;
}

void zk_info(struct evbuffer *buf)
{
    if (!zk.started)
        return;
    evbuffer_add_printf(buf, "# ZooKeeper\r\nzk_servers:%s\r\nzk_connected:%s\r\n"
                        "zk_session_id:0x%llx\r\nzk_session_timeout_ms:%d\r\n"
                        "zk_connects:%llu\r\n",
                        proxy.conf->zookeeper, zk.connected ? "yes" : "no",
                        (unsigned long long)zk.cid.client_id, zk.timeout_ms,
                        (unsigned long long)zk.connects);
}
