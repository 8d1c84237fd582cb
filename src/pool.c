#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "backend.h"
#include "client.h"
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "probe.h"
#include "proxy.h"
#include "resp.h"
#include "tls.h"
#include "zk.h"

static void drop_replicas(struct pool *p);
static void free_readonly(struct pool *p);

#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 2000

/* The default group: the state every connection starts in. It exists
 * for the pool's life, whatever max-session-groups says. */
static struct group *pool_group0(struct pool *p)
{
    struct session_state st;
    struct group *g;

    session_state_init(&st);
    g = group_create(p, NULL, &st);
    group_ref(g);
    return g;
}

struct pool *pool_new(struct conf_pool *cf, char *err, size_t errlen)
{
    struct pool *p;
    char host[256] = "";
    int port = 0;

    if (cf->master != NULL &&
        util_parse_hostport(cf->master, host, sizeof(host), &port, err, errlen) < 0)
        return NULL;
    p = xcalloc(1, sizeof(*p));
    p->name = xstrdup(cf->name);
    p->cf = cf;
    p->zk = cf->znode != NULL;
    gate_init(&p->gate, proxy.conf->zk_disconnect_grace_ms > 0);
    p->logged_mzxid = -1;
    p->znode_acl = ZKACL_UNKNOWN;
    p->stats.last_switch_ms = -1;
    p->gated_since_ms = p->zk ? util_now_ms() : 0;      /* INIT gates */
    snprintf(p->master_host, sizeof(p->master_host), "%s", host);
    p->master_port = port;
    TAILQ_INIT(&p->groups);
    TAILQ_INIT(&p->replicas);
    TAILQ_INIT(&p->held);
    TAILQ_INIT(&p->retired);
    p->group0 = pool_group0(p);
    session_state_init(&p->cred);
    p->down_reason = "master unreachable";
    pool_load_secrets(p);
    return p;
}

int pool_listen(struct pool *p, char *err, size_t errlen)
{
    p->listeners = xcalloc((size_t)p->cf->nlisten, sizeof(*p->listeners));
    for (int i = 0; i < p->cf->nlisten; i++) {
        p->listeners[i] = listener_new(p, p->cf->listen[i], proxy.conf->unixsocket_perm, err,
                                       errlen);
        if (p->listeners[i] == NULL)
            return -1;
        p->nlisteners = i + 1;
        if (p->zk)
            log_notice(p->name, "listening on %s, master from znode %s", p->cf->listen[i],
                       p->cf->znode);
        else
            log_notice(p->name, "listening on %s, master %s:%d", p->cf->listen[i],
                       p->master_host, p->master_port);
    }
    return 0;
}

void pool_stop_listening(struct pool *p)
{
    for (int i = 0; i < p->nlisteners; i++)
        listener_free(p->listeners[i]);
    free(p->listeners);
    p->listeners = NULL;
    p->nlisteners = 0;
}

void pool_close_backends(struct pool *p)
{
    struct backend *be;
    struct group *g;

    TAILQ_FOREACH(g, &p->groups, link) {
        for (int i = 0; i < g->nconns; i++) {
            if (g->conns[i] != NULL)
                backend_release(g->conns[i], "shutting down");
        }
    }
    while ((be = TAILQ_FIRST(&p->retired)) != NULL)
        backend_release(be, "shutting down");
}

void pool_retire(struct pool *p)
{
    pool_stop_listening(p);
    if (p->zk)
        zk_remove_pool(p);
    pool_close_backends(p);
    client_close_pool(p, "pool removed from the configuration (SIGHUP)");
    p->cf = NULL;
    log_notice(p->name, "SIGHUP: pool removed");
}

void pool_free(struct pool *p)
{
    struct group *g;

    pool_stop_listening(p);
    pool_close_backends(p);
    drop_replicas(p);
    free_readonly(p);
    while ((g = TAILQ_FIRST(&p->groups)) != NULL)
        group_free(g);
    session_state_free(&p->cred);
    if (p->tls != NULL)
        tls_ctx_free(p->tls);
    free(p->unusable);
    free(p->name);
    free(p);
}

const char *pool_gated(const struct pool *p)
{
    return p->zk ? gate_reason(p->gate.state) : NULL;
}

int pool_gate_transient(const struct pool *p)
{
    return p->zk && p->gate.state == GATE_SYNCING;
}

const char *pool_unavailable(struct pool *p)
{
    const char *why = pool_gated(p);

    if (why != NULL)
        return why;
    if (p->unusable != NULL)
        return "backend settings unusable";
    if (p->backoff_until_ms != 0 && util_now_ms() < p->backoff_until_ms)
        return p->down_reason;
    return NULL;
}

const char *pool_health(const struct pool *p)
{
    const char *why = pool_gated(p);

    if (why != NULL)
        return why;
    if (p->unusable != NULL)
        return "backend settings unusable";
    return p->backoff_ms != 0 ? p->down_reason : NULL;
}

const char *pool_unavailable_detail(const struct pool *p)
{
    if (p->zk && pool_gated(p) != NULL)
        return "";
    if (p->unusable != NULL)
        return p->unusable;
    return p->backoff_ms != 0 ? p->last_error : "";
}

/* ---- backend credentials and TLS (pool_load_secrets) ------------------------ */

/* The backend credentials from the password file. The secret never reaches
 * a log line: errors name the file, not its content. */
static int read_password(struct pool *p, const char *path, struct session_state *out,
                         char *err, size_t errlen)
{
    char buf[UTIL_PASSWORD_MAX + 1], why[320];
    unsigned mode;
    int n = util_read_password_file(path, buf, sizeof(buf), &mode, why, sizeof(why));

    if ((mode & 077) != 0)
        log_warn(p->name, "backend-password-file %s can be read by others (mode %04o): "
                 "chmod 600 it", path, mode);
    if (n < 0) {
        snprintf(err, errlen, "backend-password-file %s", why);
        return -1;
    }
    session_state_set_user(out, p->cf->backend_user[0] ? p->cf->backend_user : NULL,
                           strlen(p->cf->backend_user), buf, (size_t)n);
    explicit_bzero(buf, sizeof(buf));
    return 0;
}

static int load_tls(struct pool *p, char *err, size_t errlen)
{
    struct ssl_ctx_st *ctx;

    if (!p->cf->tls) {
        if (p->tls != NULL)
            tls_ctx_free(p->tls);
        p->tls = NULL;
        return 0;
    }
    ctx = tls_ctx_new(p->cf, err, errlen);
    if (ctx == NULL)
        return p->tls != NULL ? 1 : -1;      /* 1: the context in use stays */
    if (p->tls != NULL)
        tls_ctx_free(p->tls);
    p->tls = ctx;
    return 0;
}

void pool_load_secrets(struct pool *p)
{
    struct session_state cred;
    char err[400];
    int rc;

    free(p->unusable);
    p->unusable = NULL;
    session_state_init(&cred);
    if (p->cf->backend_password_file[0] != '\0' &&
        read_password(p, p->cf->backend_password_file, &cred, err, sizeof(err)) < 0) {
        log_error(p->name, "%s: the pool forwards nothing until it can be read (SIGHUP)", err);
        p->unusable = xstrdup(err);
    }
    session_state_copy(&p->cred, &cred);
    session_state_free(&cred);
    rc = load_tls(p, err, sizeof(err));
    if (rc > 0)
        log_error(p->name, "SIGHUP: %s: the TLS settings in use stay", err);
    if (rc < 0) {
        log_error(p->name, "%s: the pool forwards nothing until it loads (SIGHUP)", err);
        if (p->unusable == NULL)
            p->unusable = xstrdup(err);
    }
}

/* ---- read-from replicas --------------------------------------------------- */

static void free_readonly(struct pool *p)
{
    for (size_t i = 0; i < p->nreadonly; i++)
        free(p->readonly[i]);
    free(p->readonly);
    p->readonly = NULL;
    p->nreadonly = 0;
}

static void set_readonly(struct pool *p, const char *const *names, size_t n)
{
    free_readonly(p);
    p->readonly = xcalloc(n + 1, sizeof(*p->readonly));
    for (size_t i = 0; i < n; i++)
        p->readonly[i] = xstrdup(names[i]);
    p->nreadonly = n;
}

/* The master's probe: its replication offset each tick (what replicas'
 * lag is measured against) and, once, the commands it flags read-only. */
static void on_master_probe(void *owner, enum probe_event ev, const struct probe_report *r)
{
    struct pool *p = owner;
    int n = (int)(sizeof(p->offsets) / sizeof(p->offsets[0]));

    if (ev == PROBE_COMMANDS) {
        set_readonly(p, r->names, r->nnames);
        log_info(p->name, "master %s:%d flags %zu commands read-only: those go to replicas",
                 p->master_host, p->master_port, r->nnames);
        return;
    }
    if (ev != PROBE_INFO || !r->is_master)
        return;
    if (strcmp(p->master_replid, r->replid) != 0)
        p->noffsets = 0;             /* another history: its offsets mean something else */
    snprintf(p->master_replid, sizeof(p->master_replid), "%s", r->replid);
    p->offsets[p->offsets_head].ms = util_now_ms();
    p->offsets[p->offsets_head].offset = r->offset;
    p->offsets_head = (p->offsets_head + 1) % n;
    if (p->noffsets < n)
        p->noffsets++;
}

/* A new master (or none): its offsets start again, and its command table
 * is asked again (another server may know other commands). */
static void master_probe_reset(struct pool *p)
{
    probe_free(p->master_probe);
    p->master_probe = NULL;
    p->noffsets = 0;
    p->master_replid[0] = '\0';
    if (p->cf != NULL && p->cf->read_from == CONF_READ_FROM_REPLICAS && p->master_host[0])
        p->master_probe = probe_new(p, p->master_host, p->master_port, 1, on_master_probe, p);
}

int64_t pool_replica_lag_ms(const struct pool *p, long long offset)
{
    int n = (int)(sizeof(p->offsets) / sizeof(p->offsets[0]));
    uint64_t now = util_now_ms();

    if (p->noffsets == 0)
        return -1;
    /* Newest first: the last time the master was no further than the
     * replica is now; the replica is at most that stale. */
    for (int i = 1; i <= p->noffsets; i++) {
        int k = (p->offsets_head - i + n) % n;

        if (p->offsets[k].offset <= offset)
            return i == 1 ? 0 : (int64_t)(now - p->offsets[k].ms);
    }
    return INT64_MAX;        /* behind everything remembered: more than replica-max-lag allows */
}

static struct replica *find_replica(struct pool *p, const char *host, int port)
{
    struct replica *r;

    TAILQ_FOREACH(r, &p->replicas, link) {
        if (r->port == port && strcmp(r->host, host) == 0)
            return r;
    }
    return NULL;
}

static void drop_replicas(struct pool *p)
{
    struct replica *r;

    while ((r = TAILQ_FIRST(&p->replicas)) != NULL) {
        TAILQ_REMOVE(&p->replicas, r, link);
        p->nreplicas--;
        replica_free(r);
    }
    probe_free(p->master_probe);
    p->master_probe = NULL;
}

void pool_set_replicas(struct pool *p, const struct znode_master *m)
{
    struct replica *r, *next;

    TAILQ_FOREACH(r, &p->replicas, link)
        r->named = 0;
    for (int i = 0; i < m->nreplicas; i++) {
        r = find_replica(p, m->replicas[i].host, m->replicas[i].port);
        if (r == NULL) {
            r = replica_new(p, m->replicas[i].host, m->replicas[i].port);
            TAILQ_INSERT_TAIL(&p->replicas, r, link);
            p->nreplicas++;
        }
        r->named = 1;
    }
    for (r = TAILQ_FIRST(&p->replicas); r != NULL; r = next) {
        next = TAILQ_NEXT(r, link);
        if (!r->named) {
            TAILQ_REMOVE(&p->replicas, r, link);
            p->nreplicas--;
            replica_free(r);
        }
    }
    if (p->master_probe == NULL)
        master_probe_reset(p);
}

void pool_set_ballots(struct pool *p, const struct znode_node *ballots, int n)
{
    struct znode_master m;

    p->from_ballots = 1;
    p->nballots = n < BALLOT_MAX ? n : BALLOT_MAX;
    memcpy(p->ballots, ballots, (size_t)p->nballots * sizeof(*ballots));
    /* No master yet: the leader_ack's read applies them. */
    if (p->cf == NULL || p->cf->read_from != CONF_READ_FROM_REPLICAS || !p->master_host[0])
        return;
    memset(&m, 0, sizeof(m));
    ballot_replicas(p->ballots, p->nballots, p->master_host, p->master_port, &m);
    pool_set_replicas(p, &m);
}

/* The replicas that go with the master m names: its own list, or in an
 * election every other ballot. */
static void apply_replicas(struct pool *p, const struct znode_master *m)
{
    struct znode_master b;

    if (!p->from_ballots) {
        pool_set_replicas(p, m);
        return;
    }
    memset(&b, 0, sizeof(b));
    ballot_replicas(p->ballots, p->nballots, m->host, m->port, &b);
    pool_set_replicas(p, &b);
}

struct replica *pool_pick_replica(struct pool *p)
{
    struct replica *r, *best = NULL;
    int least = 0;

    TAILQ_FOREACH(r, &p->replicas, link) {
        int n;

        if (r->state != REPLICA_OK)
            continue;
        n = replica_outstanding(r);
        if (best == NULL || n < least) {
            best = r;
            least = n;
        }
    }
    /* Ties go round: the one picked moves to the end. */
    if (best != NULL && least == 0 && TAILQ_NEXT(best, link) != NULL) {
        TAILQ_REMOVE(&p->replicas, best, link);
        TAILQ_INSERT_TAIL(&p->replicas, best, link);
    }
    return best;
}

static int cmp_name(const void *key, const void *elem)
{
    return strcmp(key, *(char *const *)elem);
}

int pool_command_readonly(const struct pool *p, const struct resp_request *req)
{
    if (p->nreadonly == 0 || req->namelen >= RESP_NAME_MAX)
        return 0;
    return bsearch(req->name, p->readonly, p->nreadonly, sizeof(*p->readonly), cmp_name) != NULL;
}

static void replicas_tick(struct pool *p, uint64_t now_ms)
{
    struct replica *r;

    if (p->cf->read_from != CONF_READ_FROM_REPLICAS) {
        if (!TAILQ_EMPTY(&p->replicas) || p->master_probe != NULL)
            drop_replicas(p);      /* read-from master since a reload */
        return;
    }
    if (p->master_probe == NULL && p->master_host[0] && !TAILQ_EMPTY(&p->replicas))
        master_probe_reset(p);
    if (p->master_probe != NULL)
        probe_tick(p->master_probe, now_ms);
    TAILQ_FOREACH(r, &p->replicas, link)
        replica_tick(r, now_ms);
}

/* ---- master changes (zk pools) ----------------------------------------- */

/*
 * A new master. Nothing more goes to the old one: shared connections to it
 * leave their slots (new commands open connections to the new master) and
 * close once the replies already asked for are in; pinned clients move on
 * their next command, or are closed now if tied to the old master.
 */
static void switch_master(struct pool *p)
{
    const struct znode_master *m = &p->gate.master;
    char old[300] = "(none)";
    struct group *g;

    if (p->master_host[0])
        snprintf(old, sizeof(old), "%s:%d", p->master_host, p->master_port);
    p->switch_pending = p->master_host[0] != '\0';
    log_notice(p->name, "master %s -> %s:%d (znode mzxid %lld, version %d)", old, m->host, m->port,
               (long long)p->gate.mzxid, p->gate.version);
    snprintf(p->master_host, sizeof(p->master_host), "%s", m->host);
    p->master_port = m->port;
    p->epoch++;
    p->stats.master_changes++;

    p->backoff_ms = 0;
    p->backoff_until_ms = 0;
    p->down_reason = "master unreachable";
    TAILQ_FOREACH(g, &p->groups, link)
        group_retire_backends(g);
    master_probe_reset(p);
    client_master_changed(p);
}

static void wake_held(struct pool *p)
{
    struct client *c;

    TAILQ_FOREACH(c, &p->held, wait_link)
        client_wake(c);
}

/* Gate the pool if the znode has not moved for znode-max-age. */
static void check_stale(struct pool *p, uint64_t now_ms)
{
    struct gate_event ev = { .type = GATE_EV_STALE };
    int max_age = p->cf->znode_max_age_ms;

    if (max_age > 0 && p->gate.state == GATE_READY &&
        now_ms - p->last_change_ms >= (uint64_t)max_age)
        pool_gate_event(p, &ev);
}

void pool_gate_event(struct pool *p, const struct gate_event *ev)
{
    enum gate_state old = p->gate.state;
    int64_t old_mzxid = p->gate.mzxid;
    int changed = gate_step(&p->gate, ev);

    /* A delete then a create: the switch is timed from the create. */
    if ((old == GATE_READY && p->gate.state != GATE_READY) || ev->type == GATE_EV_NODE_CHANGED ||
        ev->type == GATE_EV_NODE_DELETED)
        p->event_ms = util_now_ms();
    if (p->gate.mzxid != old_mzxid)
        p->last_change_ms = util_now_ms();
    if (ev->type == GATE_EV_READ_DATA && ev->mzxid >= old_mzxid)
        p->znode_mtime_ms = ev->mtime_ms;
    if (old == GATE_READY && p->gate.state != GATE_READY) {
        p->gated_since_ms = util_now_ms();
    } else if (old != GATE_READY && p->gate.state == GATE_READY && p->gated_since_ms != 0) {
        p->gated_ms_total += util_now_ms() - p->gated_since_ms;
        p->gated_since_ms = 0;
    }
    else if (ev->type == GATE_EV_READ_DATA && ev->mzxid < old_mzxid)
        log_info(p->name, "ignored a znode read older than the one applied (mzxid %lld < %lld)",
                 (long long)ev->mzxid, (long long)old_mzxid);
    /* READY -> SYNCING -> READY is routine (every rewrite of the znode):
     * info; any other change: notice. */
    if (p->gate.state != old) {
        int routine = (old == GATE_READY && p->gate.state == GATE_SYNCING) ||
                      (old == GATE_SYNCING && p->gate.state == GATE_READY && p->routine_sync);

        p->routine_sync = old == GATE_READY && p->gate.state == GATE_SYNCING;
        log_at(routine ? LOGL_INFO : LOGL_NOTICE,
               p->name, "state %s -> %s%s%s", gate_state_name(old),
               gate_state_name(p->gate.state), p->gate.state == GATE_READY ? "" : ": ",
               p->gate.state == GATE_READY ? "" : gate_reason(p->gate.state));
    }
    if (changed)
        switch_master(p);
    /* The replicas of the data applied (the same version, or a newer). */
    if (ev->type == GATE_EV_READ_DATA && ev->result == ZNODE_MASTER &&
        ev->mzxid == p->gate.mzxid && p->cf->read_from == CONF_READ_FROM_REPLICAS)
        apply_replicas(p, &ev->master);
    if (p->gate.state == GATE_READY && ev->type != GATE_EV_STALE)
        check_stale(p, util_now_ms());
    /* Held clients re-check on every change: released on READY, refused at
     * once in tryagain mode when the gate stops being transient. */
    if (p->gate.state != old)
        wake_held(p);
}

void pool_forwarded(struct pool *p)
{
    uint64_t took;

    p->stats.commands++;
    if (!p->switch_pending)
        return;
    p->switch_pending = 0;
    took = util_now_ms() - p->event_ms;
    p->stats.last_switch_ms = (int64_t)took;
    log_notice(p->name, "first command to master %s:%d forwarded %llu ms after the znode event",
               p->master_host, p->master_port, (unsigned long long)took);
}

void pool_master_readonly(struct pool *p)
{
    struct gate_event ev = { .type = GATE_EV_MASTER_READONLY };

    if (!p->zk) {
        log_warn(p->name, "master %s:%d answered -READONLY: it is a replica (static master: "
                 "nothing to re-read)", p->master_host, p->master_port);
        return;
    }
    /* Already gated for another reason (a failover under way: the znode was
     * deleted, then the old master demoted): the re-read is coming anyway. */
    if (p->gate.state != GATE_READY && p->gate.state != GATE_STALE &&
        p->gate.state != GATE_SYNCING)
        return;
    log_warn(p->name, "master %s:%d answered -READONLY: it is a replica; gating until the "
             "znode names a master in a newer version", p->master_host, p->master_port);
    pool_gate_event(p, &ev);
    zk_reread(p);
}

void pool_znode_read(struct pool *p, const struct gate_event *ev, const char *data, size_t len,
                     const char *why)
{
    char shown[200];

    /* Bytes that name no master: logged once per version of the znode. */
    if (ev->result != ZNODE_MASTER && ev->mzxid != p->logged_mzxid &&
        ev->mzxid >= p->gate.mzxid) {
        p->logged_mzxid = ev->mzxid;
        util_escape(data ? data : "", len, shown, sizeof(shown));
        log_warn(p->name, "znode %s names no usable master: %s (data \"%s\", %zu bytes)",
                 p->cf->znode, why, shown, len);
    }
    pool_gate_event(p, ev);
}

/*
 * The ACL is read again after every read of the data, so with a director
 * that rewrites the znode every few seconds a line per read would drown
 * the log: one line for the first verdict and one per change. A verdict
 * is a warning for operators, never a gate: a pool whose ACL cannot be
 * read forwards as before.
 */
void pool_znode_acl(struct pool *p, enum zkacl_verdict v, const char *entry, const char *why)
{
    int first = !p->znode_acl_read;
    enum zkacl_verdict old = p->znode_acl;

    p->znode_acl_read = 1;
    p->znode_acl = v;
    if (!first && v == old)
        return;
    if (v == ZKACL_OPEN)
        log_warn(p->name, "znode %s is writable by world:anyone (ACL entry %s): anyone who can "
                 "reach ZooKeeper can choose this pool's master; lock it down, e.g. zkCli.sh "
                 "setAcl %s digest:DIRECTOR:HASH:cdrwa,digest:PROXY:HASH:r (README: Locking "
                 "down the znode)", p->cf->znode, entry ? entry : "?", p->cf->znode);
    else if (v == ZKACL_UNKNOWN)
        log_warn(p->name, "cannot read the ACL of znode %s (%s): whether anyone may change it "
                 "is unknown (a warning only: the pool is not gated for it)", p->cf->znode,
                 why ? why : "?");
    else if (first)
        log_info(p->name, "znode %s is not writable by world:anyone", p->cf->znode);
    else if (old == ZKACL_OPEN)
        log_notice(p->name, "znode %s is no longer writable by world:anyone", p->cf->znode);
    else
        log_notice(p->name, "the ACL of znode %s can be read again: not writable by "
                   "world:anyone", p->cf->znode);
}

void pool_hold(struct pool *p, struct client *c)
{
    TAILQ_INSERT_TAIL(&p->held, c, wait_link);
    p->nheld++;
}

void pool_unhold(struct pool *p, struct client *c)
{
    TAILQ_REMOVE(&p->held, c, wait_link);
    p->nheld--;
}

/* A shared connection paused for one client delays every owner queued
 * behind it: past output-stall-timeout, that client goes. */
static void evict_stalled(struct pool *p, uint64_t now_ms)
{
    uint64_t limit = (uint64_t)proxy.conf->output_stall_timeout_ms;
    struct group *g;

    if (limit == 0)
        return;
    TAILQ_FOREACH(g, &p->groups, link) {
        for (int i = 0; i < g->nconns; i++) {
            struct backend *be = g->conns[i];

            if (be != NULL && be->paused_for != NULL && now_ms - be->paused_since_ms >= limit) {
                struct client *c = be->paused_for;

                log_warn(p->name, "client %llu (%s) left more than output-buffer-limit unread "
                         "for %d ms on a shared connection: disconnecting it "
                         "(output-stall-timeout)", (unsigned long long)c->id, c->peer,
                         proxy.conf->output_stall_timeout_ms);
                client_close(c, "output-stall-timeout");
            }
        }
    }
}

/* A group nobody has been in for group-idle-timeout closes, once its
 * connections owe nothing and nobody waits for them. */
static int group_idle(const struct group *g, uint64_t now_ms, uint64_t limit)
{
    if (g == g->pool->group0 || g->refs > 0 || now_ms - g->unused_since_ms < limit)
        return 0;
    for (int i = 0; i < g->nconns; i++) {
        const struct backend *be = g->conns[i];

        if (be != NULL && (be->qlen > 0 || !TAILQ_EMPTY(&be->waiters)))
            return 0;
    }
    return 1;
}

static void close_idle_groups(struct pool *p, uint64_t now_ms)
{
    uint64_t limit = (uint64_t)p->cf->group_idle_timeout_ms;
    struct group *g, *next;

    for (g = TAILQ_FIRST(&p->groups); g != NULL; g = next) {
        next = TAILQ_NEXT(g, link);
        if (group_idle(g, now_ms, limit))
            group_free(g);
    }
}

/* A previous master that still owes replies after drain-timeout (stalled,
 * or holding paused writes): stop waiting. Its clients get "outcome
 * unknown" errors and are closed. */
static void close_undrained(struct pool *p, uint64_t now_ms)
{
    uint64_t limit = (uint64_t)p->cf->drain_timeout_ms;
    struct backend *be;

    while ((be = TAILQ_FIRST(&p->retired)) != NULL && now_ms - be->retired_ms >= limit)
        backend_close_undrained(be);
}

void pool_cron(struct pool *p, uint64_t now_ms)
{
    uint64_t limit = (uint64_t)p->cf->block_timeout_ms;
    int usable = pool_unavailable(p) == NULL;
    struct client *c;

    /* Waking only schedules: each client leaves the list itself when it
     * runs, so the list is not changed under this loop. */
    TAILQ_FOREACH(c, &p->held, wait_link) {
        if (usable || now_ms - c->held_since_ms >= limit)
            client_wake(c);
    }
    evict_stalled(p, now_ms);
    close_undrained(p, now_ms);
    close_idle_groups(p, now_ms);
    replicas_tick(p, now_ms);
    if (p->zk)
        check_stale(p, now_ms);
}

void pool_backend_connected(struct pool *p)
{
    if (p->backoff_ms != 0)
        log_notice(p->name, "master %s:%d reachable again", p->master_host, p->master_port);
    p->backoff_ms = 0;
    p->backoff_until_ms = 0;
    p->down_reason = "master unreachable";
}

void pool_backend_credentials_refused(struct pool *p)
{
    p->down_reason = "backend credentials refused";
}

void pool_backend_connect_failed(struct pool *p, const char *reason)
{
    snprintf(p->last_error, sizeof(p->last_error), "%s", reason);
    if (p->backoff_ms == 0)
        log_warn(p->name, "master %s:%d unreachable: %s (retrying with backoff)",
                 p->master_host, p->master_port, reason);
    p->backoff_ms = p->backoff_ms == 0 ? BACKOFF_FIRST_MS : p->backoff_ms * 2;
    if (p->backoff_ms > BACKOFF_MAX_MS)
        p->backoff_ms = BACKOFF_MAX_MS;
    p->backoff_until_ms = util_now_ms() + (uint64_t)p->backoff_ms;
}

void pool_backend_gone(struct pool *p, struct backend *be)
{
    if (be->group != NULL)
        group_backend_gone(be->group, be);
    if (be->retired) {
        TAILQ_REMOVE(&p->retired, be, retired_link);
        be->retired = 0;
    }
}

const char *pool_state_name(struct pool *p)
{
    if (p->zk)
        return gate_state_name(p->gate.state);
    return pool_health(p) ? "UNREACHABLE" : "READY";
}

uint64_t pool_gated_ms(const struct pool *p, uint64_t now_ms)
{
    return p->gated_ms_total + (p->gated_since_ms ? now_ms - p->gated_since_ms : 0);
}

int pool_shared_open(const struct pool *p)
{
    const struct group *g;
    int open = 0;

    TAILQ_FOREACH(g, &p->groups, link)
        open += group_open_backends(g);
    return open;
}

/* read-from replicas: one line per replica. */
static void replicas_info(struct pool *p, struct evbuffer *buf)
{
    const struct replica *r;
    int i = 0;

    evbuffer_add_printf(buf, "read_from:%s\r\n",
                        p->cf->read_from == CONF_READ_FROM_REPLICAS ? "replicas" : "master");
    if (p->cf->read_from != CONF_READ_FROM_REPLICAS)
        return;
    evbuffer_add_printf(buf, "readonly_commands:%zu\r\nreplica_reads:%llu\r\nreplicas:%d\r\n",
                        p->nreadonly, (unsigned long long)p->stats.replica_reads, p->nreplicas);
    TAILQ_FOREACH(r, &p->replicas, link)
        evbuffer_add_printf(buf, "replica%d:addr=%s:%d,state=%s,lag_ms=%lld,reads=%llu\r\n", i++,
                            r->host, r->port, replica_state_name(r->state),
                            r->lag_ms == INT64_MAX ? -2LL : (long long)r->lag_ms,
                            (unsigned long long)r->reads);
}

void pool_info(struct pool *p, struct evbuffer *buf)
{
    const char *why = pool_unavailable(p);
    int open = pool_shared_open(p);
    evbuffer_add_printf(buf, "# Pool\r\npool:%s\r\n", p->name);
    /* master: where commands go now; nowhere while gated. */
    if (p->master_host[0] && pool_gated(p) == NULL)
        evbuffer_add_printf(buf, "master:%s:%d\r\n", p->master_host, p->master_port);
    else
        evbuffer_add_printf(buf, "master:\r\n");
    if (p->master_host[0])
        evbuffer_add_printf(buf, "last_master:%s:%d\r\n", p->master_host, p->master_port);
    if (p->zk)
        evbuffer_add_printf(buf, "master_source:zookeeper\r\nstate:%s\r\n"
                            "znode:%s\r\nznode_mzxid:%lld\r\nznode_version:%d\r\n"
                            "znode_world_writable:%d\r\n",
                            gate_state_name(p->gate.state), p->cf->znode,
                            (long long)p->gate.mzxid, p->gate.version, (int)p->znode_acl);
    else
        evbuffer_add_printf(buf, "master_source:static\r\nstate:%s\r\n",
                            why ? "UNREACHABLE" : "READY");
    evbuffer_add_printf(buf,
                        "reason:%s\r\nmaster_changes:%llu\r\nlast_switch_ms:%lld\r\n"
                        "epoch:%llu\r\n"
                        "backend_sharing:%s\r\nshared_connections:%d\r\n"
                        "session_groups:%d/%d\r\n"
                        "clients:%d\r\nclients_held:%d\r\nclients_accepted:%llu\r\n"
                        "commands:%llu\r\ntryagain_replies:%llu\r\nbackend_connects:%llu\r\n"
                        "backend_failures:%llu\r\n",
                        why ? why : "", (unsigned long long)p->stats.master_changes,
                        (long long)p->stats.last_switch_ms, (unsigned long long)p->epoch,
                        p->cf->backend_sharing ? "yes" : "no", open, p->ngroups,
                        p->cf->max_session_groups, p->nclients, p->nheld,
                        (unsigned long long)p->stats.clients_accepted,
                        (unsigned long long)p->stats.commands,
                        (unsigned long long)p->stats.tryagain,
                        (unsigned long long)p->stats.backend_connects,
                        (unsigned long long)p->stats.backend_failures);
    evbuffer_add_printf(buf, "readonly_retries:%llu\r\n",
                        (unsigned long long)p->stats.readonly_retries);
    replicas_info(p, buf);
}
