/*
 * ctl_zk: synchronous ZooKeeper calls for rzproxy-ctl (see ctl_zk.h).
 *
 *   main thread                      library threads (libzookeeper_mt)
 *   ───────────                      ──────────────────────────────────
 *   ctl_zk_open ── zookeeper_init2 ──> IO thread connects
 *        │  wait (cond, bounded) <──── completion thread: session_watcher
 *        │                              sets zk->state, signals
 *   zoo_get/zoo_set/... block ───────> IO thread sends, matches the reply
 *
 * The watcher only records the session state (the research notes: track it
 * from the watcher's `state` argument, not zoo_state()). No watches are
 * set: the ctl reads, decides and writes, version-checked, and never relies
 * on being told about a change.
 *
 * Connection loss: a request in flight when the connection drops fails
 * with ZCONNECTIONLOSS (or ZOPERATIONTIMEOUT) without saying whether the
 * server applied it. Reads are simply retried. Writes are retried once the
 * session is back, and a retry that finds the write already applied
 * (create: node exists with our bytes; set: version+1 with our bytes;
 * delete: node gone) counts as done.
 *
 * Sessions started with ctl_zk_start() also queue their session events
 * and the watches they set, for a caller's poll loop:
 *
 *   completion thread: session_watcher, node_watcher
 *        │ copy the event, append it under mu, write a byte to wake[1]
 *        v
 *   caller's loop: poll(wake[0]) ─> ctl_zk_next_event() pops, in order
 *
 * Nothing else happens on the library's threads; zookeeper_close is only
 * ever called by the caller (never from a callback: a use-after-free in
 * 3.8.0). Such a session fails fast: no retry on a lost connection, the
 * caller gets CTL_ZK_LOST and waits for the session events.
 */
#define THREADED 1
#include "ctl_zk.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zookeeper/zookeeper.h>

#include "zkacl.h"

/* ZooKeeper refuses requests above jute.maxbuffer (1 MiB - 1 by default). */
#define CTL_ZK_MAX_DATA (1024 * 1024)
#define CTL_ZK_READ_TRIES 5          /* data and ACL from one version: attempts */

/* One queued event (ctl_zk_start sessions). */
struct zk_event_msg {
    struct zk_event_msg *next;
    struct ctl_zk_event ev;
};

struct ctl_zk {
    zhandle_t *zh;                   /* the session's handle */
    pthread_mutex_t mu;              /* guards state, auth_*, the event queue */
    pthread_cond_t cv;               /* signalled on every session event and auth answer */
    int state;                       /* last session state the watcher saw, 0 = none yet */
    int auth_done;                   /* the digest completion ran */
    int auth_rc;                     /* its rc */
    int has_auth;                    /* digest credentials were accepted */
    int wait_ms;                     /* bound for connecting and for retries */
    int fail_fast;                   /* ctl_zk_start: no retry, CTL_ZK_LOST instead */
    struct zk_event_msg *head, *tail;/* queued events, oldest first */
    int wake[2];                     /* pipe: readable while events are queued; -1 when
                                        the session queues none */
};

struct ctl_zk_acl {
    struct ACL_vector v;             /* as zoo_get_acl returned it */
};

/* ---- session ------------------------------------------------------------- */

/* Append ev to the queue and wake the caller's loop (zk->mu held). The
 * pipe is non-blocking: when it is full it already holds a wake-up, and
 * the event is in the queue. */
static void enqueue_locked(struct ctl_zk *zk, const struct ctl_zk_event *ev)
{
    struct zk_event_msg *m;
    char byte = 1;
    ssize_t rc;

    if (zk->wake[1] < 0)
        return;
    m = xcalloc(1, sizeof(*m));
    m->ev = *ev;
    if (zk->tail != NULL)
        zk->tail->next = m;
    else
        zk->head = m;
    zk->tail = m;
    rc = write(zk->wake[1], &byte, 1);
    RZ_UNUSED(rc);
}

/* Only the states a watcher is ever given (research notes 1.2). */
static int session_event_kind(int state, enum ctl_zk_event_kind *kind)
{
    if (state == ZOO_CONNECTED_STATE)
        *kind = CTL_ZK_EV_CONNECTED;
    else if (state == ZOO_CONNECTING_STATE)
        *kind = CTL_ZK_EV_DISCONNECTED;
    else if (state == ZOO_EXPIRED_SESSION_STATE)
        *kind = CTL_ZK_EV_EXPIRED;
    else if (state == ZOO_AUTH_FAILED_STATE)
        *kind = CTL_ZK_EV_AUTH_FAILED;
    else
        return -1;
    return 0;
}

static void session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct ctl_zk *zk = ctx;
    struct ctl_zk_event ev;

    RZ_UNUSED(zh);
    RZ_UNUSED(path);
    if (type != ZOO_SESSION_EVENT)
        return;
    memset(&ev, 0, sizeof(ev));
    pthread_mutex_lock(&zk->mu);
    zk->state = state;
    if (session_event_kind(state, &ev.kind) == 0)
        enqueue_locked(zk, &ev);
    pthread_cond_broadcast(&zk->cv);
    pthread_mutex_unlock(&zk->mu);
}

/* The watcher of ctl_zk_watch's nodes. Session events reach every
 * watcher: session_watcher has them. */
static void node_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct ctl_zk *zk = ctx;
    struct ctl_zk_event ev;

    RZ_UNUSED(zh);
    RZ_UNUSED(state);
    if (type == ZOO_SESSION_EVENT)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.kind = CTL_ZK_EV_NODE;
    snprintf(ev.path, sizeof(ev.path), "%s", path != NULL ? path : "");
    pthread_mutex_lock(&zk->mu);
    enqueue_locked(zk, &ev);
    pthread_mutex_unlock(&zk->mu);
}

static void auth_done(int rc, const void *data)
{
    struct ctl_zk *zk = (struct ctl_zk *)data;

    pthread_mutex_lock(&zk->mu);
    zk->auth_done = 1;
    zk->auth_rc = rc;
    pthread_cond_broadcast(&zk->cv);
    pthread_mutex_unlock(&zk->mu);
}

static void log_to_stderr(const char *message)
{
    fprintf(stderr, "zookeeper: %s\n", message);
}

static void log_drop(const char *message)
{
    RZ_UNUSED(message);
}

static struct timespec deadline_ts(uint64_t deadline_ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(deadline_ms / 1000);
    ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
    return ts;
}

/* Wait (zk->mu held) until pred(zk) or deadline_ms (monotonic). 1 if pred. */
static int wait_until(struct ctl_zk *zk, int (*pred)(const struct ctl_zk *), uint64_t deadline_ms)
{
    struct timespec ts = deadline_ts(deadline_ms);

    while (!pred(zk)) {
        if (pthread_cond_timedwait(&zk->cv, &zk->mu, &ts) == ETIMEDOUT)
            return pred(zk);
    }
    return 1;
}

static int is_connected_or_dead(const struct ctl_zk *zk)
{
    return zk->state == ZOO_CONNECTED_STATE || zk->state < 0;
}

static int is_auth_done(const struct ctl_zk *zk)
{
    return zk->auth_done || zk->state < 0;
}

static const char *state_name(int state)
{
    if (state == ZOO_EXPIRED_SESSION_STATE)
        return "session expired";
    if (state == ZOO_AUTH_FAILED_STATE)
        return "authentication failed";
    if (state == ZOO_CONNECTING_STATE)
        return "connecting";
    if (state == 0)
        return "no session established";
    return "not connected";
}

/* Block until the session is CONNECTED, dead, or deadline_ms. 1 if connected. */
static int wait_connected(struct ctl_zk *zk, uint64_t deadline_ms)
{
    int ok;

    pthread_mutex_lock(&zk->mu);
    wait_until(zk, is_connected_or_dead, deadline_ms);
    ok = zk->state == ZOO_CONNECTED_STATE;
    pthread_mutex_unlock(&zk->mu);
    return ok;
}

static int add_digest(struct ctl_zk *zk, const char *digest, char *err, size_t errlen)
{
    int rc = zoo_add_auth(zk->zh, "digest", digest, (int)strlen(digest), auth_done, zk);
    int done;

    if (rc != ZOK) {
        snprintf(err, errlen, "zookeeper: cannot add digest credentials: %s", zerror(rc));
        return -1;
    }
    pthread_mutex_lock(&zk->mu);
    done = wait_until(zk, is_auth_done, util_now_ms() + (uint64_t)zk->wait_ms);
    rc = zk->auth_done ? zk->auth_rc : ZAUTHFAILED;
    pthread_mutex_unlock(&zk->mu);
    if (!done) {
        snprintf(err, errlen, "zookeeper: no answer to the digest credentials within %d ms",
                 zk->wait_ms);
        return -1;
    }
    if (rc != ZOK) {
        snprintf(err, errlen, "zookeeper: zk-auth-digest refused: %s", zerror(rc));
        return -1;
    }
    zk->has_auth = 1;
    return 0;
}

static struct ctl_zk *zk_new(int wait_ms)
{
    struct ctl_zk *zk = xcalloc(1, sizeof(*zk));
    pthread_condattr_t ca;

    pthread_mutex_init(&zk->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* matches util_now_ms() */
    pthread_cond_init(&zk->cv, &ca);
    pthread_condattr_destroy(&ca);
    zk->wait_ms = wait_ms;
    zk->wake[0] = zk->wake[1] = -1;
    return zk;
}

/* The library's handle for zk (its session starts connecting); on failure
 * zk is closed. */
static int init_handle(struct ctl_zk *zk, const char *hosts, int session_timeout_ms, int verbose,
                       char *err, size_t errlen)
{
    zoo_set_debug_level(verbose ? ZOO_LOG_LEVEL_INFO : ZOO_LOG_LEVEL_ERROR);
    zk->zh = zookeeper_init2(hosts, session_watcher, session_timeout_ms, NULL, zk,
                             ZOO_NO_LOG_CLIENTENV, verbose ? log_to_stderr : log_drop);
    if (zk->zh != NULL)
        return 0;
    snprintf(err, errlen, "zookeeper: cannot start a session with '%s': %s", hosts,
             strerror(errno));
    ctl_zk_close(zk);
    return -1;
}

struct ctl_zk *ctl_zk_open(const char *hosts, const char *digest, int session_timeout_ms,
                           int wait_ms, int verbose, char *err, size_t errlen)
{
    struct ctl_zk *zk = zk_new(wait_ms);
    int state;

    if (init_handle(zk, hosts, session_timeout_ms, verbose, err, errlen) < 0)
        return NULL;
    if (!wait_connected(zk, util_now_ms() + (uint64_t)wait_ms)) {
        pthread_mutex_lock(&zk->mu);
        state = zk->state;
        pthread_mutex_unlock(&zk->mu);
        snprintf(err, errlen, "zookeeper: cannot connect to %s within %d ms (%s)", hosts,
                 wait_ms, state_name(state));
        ctl_zk_close(zk);
        return NULL;
    }
    if (digest != NULL && digest[0] != '\0' && add_digest(zk, digest, err, errlen) != 0) {
        ctl_zk_close(zk);
        return NULL;
    }
    return zk;
}

void ctl_zk_close(struct ctl_zk *zk)
{
    if (zk == NULL)
        return;
    if (zk->zh != NULL)
        zookeeper_close(zk->zh);     /* joins the library's threads: no callback after this */
    while (zk->head != NULL) {
        struct zk_event_msg *m = zk->head;

        zk->head = m->next;
        free(m);
    }
    for (int i = 0; i < 2; i++) {
        if (zk->wake[i] >= 0)
            close(zk->wake[i]);
    }
    pthread_cond_destroy(&zk->cv);
    pthread_mutex_destroy(&zk->mu);
    free(zk);
}

struct ctl_zk *ctl_zk_start(const char *hosts, const char *digest, int session_timeout_ms,
                            int verbose, char *err, size_t errlen)
{
    struct ctl_zk *zk = zk_new(0);
    int rc;

    zk->fail_fast = 1;
    if (pipe2(zk->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "zookeeper: pipe: %s", strerror(errno));
        zk->wake[0] = zk->wake[1] = -1;
        ctl_zk_close(zk);
        return NULL;
    }
    if (init_handle(zk, hosts, session_timeout_ms, verbose, err, errlen) < 0)
        return NULL;
    if (digest != NULL && digest[0] != '\0') {
        /* Sent with the handshake (and again after every reconnect); a
         * refusal ends the session with AUTH_FAILED. */
        rc = zoo_add_auth(zk->zh, "digest", digest, (int)strlen(digest), auth_done, zk);
        if (rc != ZOK) {
            snprintf(err, errlen, "zookeeper: cannot add digest credentials: %s", zerror(rc));
            ctl_zk_close(zk);
            return NULL;
        }
        zk->has_auth = 1;
    }
    return zk;
}

int ctl_zk_event_fd(const struct ctl_zk *zk)
{
    return zk->wake[0];
}

int ctl_zk_next_event(struct ctl_zk *zk, struct ctl_zk_event *ev)
{
    struct zk_event_msg *m;
    char buf[256];

    pthread_mutex_lock(&zk->mu);
    m = zk->head;
    if (m != NULL) {
        zk->head = m->next;
        if (zk->head == NULL)
            zk->tail = NULL;
    }
    /* Drained only while the queue is empty, under the lock the writers
     * hold: a queued event always has its byte in the pipe. */
    if (zk->head == NULL && zk->wake[0] >= 0) {
        while (read(zk->wake[0], buf, sizeof(buf)) > 0)
            ;
    }
    pthread_mutex_unlock(&zk->mu);
    if (m == NULL)
        return 0;
    *ev = m->ev;
    free(m);
    return 1;
}

int64_t ctl_zk_session_id(struct ctl_zk *zk)
{
    const clientid_t *id = zoo_client_id(zk->zh);

    return id != NULL ? id->client_id : 0;
}

int ctl_zk_session_timeout(struct ctl_zk *zk)
{
    return zoo_recv_timeout(zk->zh);
}

/* ---- retries ------------------------------------------------------------- */

static int is_connection_loss(int rc)
{
    return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT;
}

/* The session cannot answer: the connection is down or the session is gone. */
static int is_lost(int rc)
{
    return is_connection_loss(rc) || rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE ||
           rc == ZCLOSING || rc == ZAUTHFAILED;
}

/* After a connection loss: may the caller try again? Waits for the session
 * to come back, bounded by deadline_ms. A fail-fast session never does. */
static int may_retry(struct ctl_zk *zk, int rc, uint64_t deadline_ms)
{
    return !zk->fail_fast && is_connection_loss(rc) && util_now_ms() < deadline_ms &&
           wait_connected(zk, deadline_ms);
}

static enum ctl_zk_result fail(int rc, const char *what, const char *path, char *err,
                               size_t errlen)
{
    snprintf(err, errlen, "zookeeper: %s %s: %s", what, path, zerror(rc));
    return is_lost(rc) ? CTL_ZK_LOST : CTL_ZK_ERROR;
}

/* A write's last rc as a result. conflict is the refusal this call reports
 * as such: ZBADVERSION for set and delete, ZNODEEXISTS for create. Any other
 * error is CTL_ZK_ERROR, with err saying what failed. */
static enum ctl_zk_result result_of(int rc, int conflict, const char *what, const char *path,
                                    char *err, size_t errlen)
{
    if (rc == ZOK)
        return CTL_ZK_OK;
    if (rc == conflict)
        return conflict == ZNODEEXISTS ? CTL_ZK_NODE_EXISTS : CTL_ZK_BAD_VERSION;
    if (rc == ZNONODE)
        return CTL_ZK_NO_NODE;
    return fail(rc, what, path, err, errlen);
}

/* ---- read ---------------------------------------------------------------- */

void ctl_znode_free(struct ctl_znode *n)
{
    if (n == NULL)
        return;
    free(n->data);
    if (n->acl != NULL) {
        deallocate_ACL_vector(&n->acl->v);
        free(n->acl);
    }
    memset(n, 0, sizeof(*n));
}

/* zoo_get into out (data and Stat), leaving a watch when watch is set.
 * ZOK, ZNONODE or an error rc. */
static int get_data_w(struct ctl_zk *zk, const char *path, int watch, struct ctl_znode *out,
                      char *buf, struct Stat *st)
{
    int len = CTL_ZK_MAX_DATA, rc;

    if (watch)
        rc = zoo_wget(zk->zh, path, node_watcher, zk, buf, &len, st);
    else
        rc = zoo_get(zk->zh, path, 0, buf, &len, st);
    if (rc != ZOK)
        return rc;
    if (st->dataLength > CTL_ZK_MAX_DATA)
        return ZMARSHALLINGERROR;    /* cannot happen below jute.maxbuffer */
    if (len < 0)                     /* created with NULL data */
        len = 0;
    free(out->data);
    out->data = xstrndup(buf, (size_t)len);
    out->len = (size_t)len;
    out->exists = 1;
    out->version = st->version;
    out->czxid = st->czxid;
    out->mzxid = st->mzxid;
    out->mtime_ms = st->mtime;
    out->ephemeral_owner = st->ephemeralOwner;
    return ZOK;
}

static int get_data(struct ctl_zk *zk, const char *path, struct ctl_znode *out,
                    char *buf, struct Stat *st)
{
    return get_data_w(zk, path, 0, out, buf, st);
}

/* zoo_get_acl; ok only if it answers for the same version as st. */
static int get_acl(struct ctl_zk *zk, const char *path, struct ctl_znode *out,
                   const struct Stat *st, int *same)
{
    struct ctl_zk_acl *acl = xcalloc(1, sizeof(*acl));
    struct Stat ast;
    int rc;

    rc = zoo_get_acl(zk->zh, path, &acl->v, &ast);
    if (rc != ZOK) {
        free(acl);
        return rc;
    }
    *same = ast.czxid == st->czxid && ast.mzxid == st->mzxid;
    if (!*same) {
        deallocate_ACL_vector(&acl->v);
        free(acl);
        return ZOK;
    }
    out->acl = acl;
    return ZOK;
}

static int read_once(struct ctl_zk *zk, const char *path, int with_acl, struct ctl_znode *out,
                     char *buf, int *done)
{
    struct Stat st;
    int rc, same = 1;

    ctl_znode_free(out);
    *done = 1;
    rc = get_data(zk, path, out, buf, &st);
    if (rc == ZNONODE) {
        ctl_znode_free(out);
        return ZOK;
    }
    if (rc != ZOK || !with_acl)
        return rc;
    rc = get_acl(zk, path, out, &st, &same);
    if (rc == ZNONODE || (rc == ZOK && !same))
        *done = 0;                   /* changed between the two reads: again */
    return rc == ZNONODE ? ZOK : rc;
}

enum ctl_zk_result ctl_zk_read(struct ctl_zk *zk, const char *path, int with_acl,
                               struct ctl_znode *out, char *err, size_t errlen)
{
    uint64_t deadline = util_now_ms() + (uint64_t)zk->wait_ms;
    char *buf = xmalloc(CTL_ZK_MAX_DATA);
    int rc, done = 0;

    memset(out, 0, sizeof(*out));
    for (int i = 0; i < CTL_ZK_READ_TRIES && !done; i++) {
        do {
            rc = read_once(zk, path, with_acl, out, buf, &done);
        } while (may_retry(zk, rc, deadline));
        if (rc != ZOK)
            break;
    }
    free(buf);
    if (rc == ZOK && !done) {
        ctl_znode_free(out);
        snprintf(err, errlen, "zookeeper: %s kept changing while it was read", path);
        return CTL_ZK_ERROR;
    }
    if (rc != ZOK) {
        ctl_znode_free(out);
        return fail(rc, "cannot read", path, err, errlen);
    }
    return CTL_ZK_OK;
}

/* Does path now hold exactly data (and, if version >= 0, that version)? */
static int holds(struct ctl_zk *zk, const char *path, const char *data, size_t len,
                 int32_t version)
{
    struct ctl_znode n;
    char err[256];
    int same;

    if (ctl_zk_read(zk, path, 0, &n, err, sizeof(err)) != CTL_ZK_OK)
        return 0;
    same = n.exists && n.len == len && memcmp(n.data, data, len) == 0 &&
           (version < 0 || n.version == version);
    ctl_znode_free(&n);
    return same;
}

/* ---- write --------------------------------------------------------------- */

enum ctl_zk_result ctl_zk_set(struct ctl_zk *zk, const char *path, const char *data, size_t len,
                              int32_t version, int32_t *new_version, char *err, size_t errlen)
{
    uint64_t deadline = util_now_ms() + (uint64_t)zk->wait_ms;
    struct Stat st;
    int rc, retried = 0;

    if (len > CTL_ZK_MAX_DATA)
        return fail(ZBADARGUMENTS, "data too large for", path, err, errlen);
    while ((rc = zoo_set2(zk->zh, path, data, (int)len, version, &st)) != ZOK &&
           may_retry(zk, rc, deadline))
        retried = 1;
    if (rc == ZBADVERSION && retried && holds(zk, path, data, len, version + 1)) {
        st.version = version + 1;    /* our first attempt went through */
        rc = ZOK;
    }
    if (rc == ZOK && new_version != NULL)
        *new_version = st.version;
    return result_of(rc, ZBADVERSION, "cannot write", path, err, errlen);
}

enum ctl_zk_result ctl_zk_delete(struct ctl_zk *zk, const char *path, int32_t version,
                                 char *err, size_t errlen)
{
    uint64_t deadline = util_now_ms() + (uint64_t)zk->wait_ms;
    int rc, retried = 0;

    while ((rc = zoo_delete(zk->zh, path, version)) != ZOK && may_retry(zk, rc, deadline))
        retried = 1;
    if (rc == ZNONODE && retried)
        rc = ZOK;                    /* our first attempt went through: the node is gone */
    return result_of(rc, ZBADVERSION, "cannot delete", path, err, errlen);
}

/* The session's default ACL: creator-only once digest credentials were
 * given, else open. */
static const struct ACL_vector *default_acl(const struct ctl_zk *zk)
{
    return zk->has_auth ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE;
}

enum ctl_zk_result ctl_zk_create(struct ctl_zk *zk, const char *path, const char *data, size_t len,
                                 const struct ctl_zk_acl *acl, char *err, size_t errlen)
{
    uint64_t deadline = util_now_ms() + (uint64_t)zk->wait_ms;
    const struct ACL_vector *v = acl != NULL ? &acl->v : default_acl(zk);
    int rc, retried = 0;

    if (len > CTL_ZK_MAX_DATA)
        return fail(ZBADARGUMENTS, "data too large for", path, err, errlen);
    while ((rc = zoo_create(zk->zh, path, data, (int)len, v, ZOO_PERSISTENT, NULL, 0)) != ZOK &&
           may_retry(zk, rc, deadline))
        retried = 1;
    if (rc == ZNODEEXISTS && retried && holds(zk, path, data, len, 0))
        rc = ZOK;                    /* our first attempt went through */
    return result_of(rc, ZNODEEXISTS, "cannot create", path, err, errlen);
}

/* An ephemeral create whose answer was lost may or may not have happened,
 * so it is never retried here: the caller finds out (the election looks
 * for a ballot its session owns). */
enum ctl_zk_result ctl_zk_create_node(struct ctl_zk *zk, const char *path, const char *data,
                                      size_t len, enum ctl_zk_mode mode,
                                      const struct ctl_zk_acl *acl, char *created,
                                      size_t createdlen, char *err, size_t errlen)
{
    char name[CTL_ZK_PATH_MAX + 16];
    int flags, rc;

    if (mode == CTL_ZK_PERSISTENT) {
        enum ctl_zk_result r = ctl_zk_create(zk, path, data, len, acl, err, errlen);

        if (created != NULL && r == CTL_ZK_OK)
            snprintf(created, createdlen, "%s", path);
        return r;
    }
    if (len > CTL_ZK_MAX_DATA)
        return fail(ZBADARGUMENTS, "data too large for", path, err, errlen);
    flags = mode == CTL_ZK_EPHEMERAL ? ZOO_EPHEMERAL : ZOO_EPHEMERAL_SEQUENTIAL;
    name[0] = '\0';
    rc = zoo_create(zk->zh, path, data, (int)len, acl != NULL ? &acl->v : default_acl(zk), flags,
                    name, (int)sizeof(name));
    if (rc == ZOK && created != NULL)
        snprintf(created, createdlen, "%s", name);
    return result_of(rc, ZNODEEXISTS, "cannot create", path, err, errlen);
}

enum ctl_zk_result ctl_zk_ensure_path(struct ctl_zk *zk, const char *path, char *err,
                                      size_t errlen)
{
    char prefix[CTL_ZK_PATH_MAX];
    size_t n = strlen(path);
    enum ctl_zk_result r;

    if (n >= sizeof(prefix) || path[0] != '/')
        return fail(ZBADARGUMENTS, "bad path", path, err, errlen);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        r = ctl_zk_create(zk, prefix, "", 0, NULL, err, errlen);
        if (r != CTL_ZK_OK && r != CTL_ZK_NODE_EXISTS)
            return r;
    }
    return CTL_ZK_OK;
}

/* ---- watches and children (the election) -------------------------------- */

enum ctl_zk_result ctl_zk_watch(struct ctl_zk *zk, const char *path, struct ctl_znode *out,
                                char *err, size_t errlen)
{
    char *buf = xmalloc(CTL_ZK_MAX_DATA);
    struct Stat st;
    int rc = ZOK;

    memset(out, 0, sizeof(*out));
    for (int i = 0; i < CTL_ZK_READ_TRIES; i++) {
        /* exists first: on a missing node it leaves the watch that fires
         * on its creation; get would leave none */
        rc = zoo_wexists(zk->zh, path, node_watcher, zk, &st);
        if (rc == ZNONODE) {
            free(buf);
            return CTL_ZK_OK;
        }
        if (rc != ZOK)
            break;
        rc = get_data_w(zk, path, 1, out, buf, &st);
        if (rc != ZNONODE)
            break;                   /* ZNONODE: deleted in between: exists again */
    }
    free(buf);
    if (rc != ZOK) {
        ctl_znode_free(out);
        return fail(rc, "cannot read", path, err, errlen);
    }
    return CTL_ZK_OK;
}

enum ctl_zk_result ctl_zk_children(struct ctl_zk *zk, const char *path, int watch, char ***names,
                                   int *n, char *err, size_t errlen)
{
    uint64_t deadline = util_now_ms() + (uint64_t)zk->wait_ms;
    struct String_vector sv;
    int rc;

    *names = NULL;
    *n = 0;
    memset(&sv, 0, sizeof(sv));
    while ((rc = watch ? zoo_wget_children(zk->zh, path, node_watcher, zk, &sv)
                       : zoo_get_children(zk->zh, path, 0, &sv)) != ZOK &&
           may_retry(zk, rc, deadline))
        ;
    if (rc == ZNONODE) {
        snprintf(err, errlen, "zookeeper: %s does not exist", path);
        return CTL_ZK_NO_NODE;
    }
    if (rc != ZOK)
        return fail(rc, "cannot list the children of", path, err, errlen);
    *names = xcalloc((size_t)sv.count + 1, sizeof(char *));
    for (int i = 0; i < sv.count; i++)
        (*names)[i] = xstrdup(sv.data[i]);
    *n = sv.count;
    deallocate_String_vector(&sv);
    return CTL_ZK_OK;
}

void ctl_zk_names_free(char **names, int n)
{
    if (names == NULL)
        return;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ---- ACL text ------------------------------------------------------------ */

void ctl_zk_acl_format(const struct ctl_zk_acl *acl, char *out, size_t outlen)
{
    if (acl == NULL)
        snprintf(out, outlen, "default");
    else
        zkacl_format(&acl->v, out, outlen);
}

int ctl_zk_acl_world_writable(const struct ctl_zk_acl *acl)
{
    return acl != NULL && zkacl_world_writable(&acl->v) >= 0;
}
