/*
 * ctl_failover: move the master and the znode together (DESIGN section 1).
 *
 *   step 0  read the znode (data, version, ACL); old master = what it names
 *           (or --from). Check NEW answers and is a replica; fail here and
 *           nothing has changed.
 *   step 1  delete the znode, version-checked ........ every rzproxy gates
 *   step 2  CLIENT PAUSE <timeout+10s> WRITE on the old master, read its
 *           master_repl_offset, replid and replicas .. no new writes there
 *   step 3  wait until NEW has that offset (same replid, link up), bounded
 *   step 4  SLAVEOF NO ONE on NEW ......................... NEW is master
 *   step 5  SLAVEOF NEW on the old master and the other replicas, then
 *           CLIENT UNPAUSE on the old master (its paused writes now fail
 *           with -READONLY: they never ran)
 *   step 6  create the znode naming NEW, original ACL ... rzproxy resumes
 *
 * What a failure leaves (every message says it too):
 *   before step 1        nothing changed.
 *   steps 1-4            undone: old master unpaused, znode re-created with
 *                        its original bytes and ACL; NEW as it was (step 4:
 *                        NEW's role is printed, it may have been promoted).
 *   step 5               not a failure: NEW is already the master. A replica
 *                        that cannot be re-pointed is a warning; an old
 *                        master that cannot be demoted is a loud warning
 *                        (fence it by hand).
 *   step 6               NEW is master, znode missing: every rzproxy stays
 *                        gated (safe) until `rzproxy-ctl set-master NEW`.
 *   the ctl dies         the znode stays deleted (proxies gated), the pause
 *                        ends by itself after --timeout + 10 s.
 *
 * --seed-order: delete znode, SLAVEOF NEW on the old master, SLAVEOF NO ONE
 * on NEW, re-create the znode. No pause, no offset wait: the old master's
 * writes that NEW had not received are discarded when it resyncs from NEW.
 */
#include "ctl_failover.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_doc.h"
#include "ctl_redis.h"

#define NODE_TIMEOUT_MS 1000         /* connect/command bound for old master and replicas */
#define POLL_MS 10                   /* offset wait: poll interval */
#define MAX_NODES 64                 /* replicas we re-point */
#define MAX_WARNINGS 80
#define ERRLEN 512

struct node {
    char name[300];                  /* "h:p" as given or as written in the znode */
    char host[256];
    int port;
};

struct fo {
    const struct ctl_target *t;
    struct ctl_zk *zk;
    const struct ctl_failover_opts *o;
    uint64_t t0;                     /* monotonic ms at start, for [elapsed] */
    int nsteps;                      /* 6 fenced, 4 seed order */
    struct ctl_znode before;         /* step 0 read (exists 0: missing) */
    struct node old;                 /* old master */
    struct node new;                 /* NEW */
    int have_old;
    enum znode_format fmt;           /* format written */
    char *after;                     /* znode bytes naming NEW */
    size_t after_len;
    struct ctl_redis *oldr;          /* old master, NULL while unreachable */
    struct ctl_redis *newr;          /* NEW */
    char new_runid[64];              /* "" when unknown */
    char old_runid[64];
    int new_unknown;                 /* step 4 failed and NEW is not a replica now */
    int deleted;                     /* step 1 done */
    int paused;                      /* step 2 paused the old master */
    int64_t old_offset;              /* its master_repl_offset after the pause */
    char old_replid[64];
    struct node others[MAX_NODES];   /* replicas to re-point (not NEW, not old) */
    int nothers;
    char *warnings[MAX_WARNINGS];    /* repeated in the summary */
    int nwarnings;
};

/* ---- output -------------------------------------------------------------- */

static void say(struct fo *f, const char *fmt, ...) RZ_PRINTF(2, 3);
static void warn(struct fo *f, const char *fmt, ...) RZ_PRINTF(2, 3);

static void vsay(struct fo *f, const char *prefix, const char *fmt, va_list ap)
{
    char msg[2048];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    printf("[%4" PRIu64 " ms] %s%s\n", util_now_ms() - f->t0, prefix, msg);
}

static void say(struct fo *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsay(f, "", fmt, ap);
    va_end(ap);
}

/* A warning: printed now and listed again at the end. */
static void warn(struct fo *f, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    say(f, "WARNING: %s", msg);
    if (f->nwarnings < MAX_WARNINGS)
        f->warnings[f->nwarnings++] = xstrdup(msg);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* ---- nodes --------------------------------------------------------------- */

static int node_set(struct node *n, const char *name)
{
    snprintf(n->name, sizeof(n->name), "%s", name);
    return ctl_doc_split(name, n->host, sizeof(n->host), &n->port);
}

/* A connection to n with the pool's TLS and credentials. *refused (unless
 * NULL): n answered but would not have us (see ctl_redis_connect). */
static struct ctl_redis *node_connect(struct fo *f, const struct node *n, int timeout_ms,
                                      int *refused, char *err, size_t errlen)
{
    return ctl_redis_connect(n->host, n->port, timeout_ms, f->o->redis, refused, err, errlen);
}

/* INFO server's run_id into out. 0, or -1 with the reason in err (out ""). */
static int read_runid(struct ctl_redis *r, char *out, size_t outlen, char *err, size_t errlen)
{
    char *info = ctl_redis_info(r, "server", err, errlen);

    out[0] = '\0';
    if (info == NULL)
        return -1;
    ctl_redis_info_str(info, "run_id", out, outlen);
    free(info);
    return 0;
}

/* ---- step 0: read and check ---------------------------------------------- */

/* Old master from the znode's data, or --from. 0, or -1 (message printed). */
static int find_old(struct fo *f)
{
    struct znode_master m;
    char why[ZNODE_WHY_LEN], named[300] = "";
    enum znode_result r = ZNODE_NO_MASTER;

    if (f->before.exists) {
        r = znode_parse(f->before.data, f->before.len, f->t->format, &m, why, sizeof(why));
        if (r == ZNODE_MASTER)
            snprintf(named, sizeof(named), strchr(m.host, ':') ? "[%s]:%d" : "%s:%d", m.host,
                     m.port);
    } else {
        snprintf(why, sizeof(why), "znode missing");
    }
    if (r == ZNODE_MASTER && f->o->from != NULL && !ctl_doc_same_node(named, f->o->from)) {
        fprintf(stderr, "rzproxy-ctl: the znode names %s but --from says %s: nothing changed\n",
                named, f->o->from);
        return -1;
    }
    if (r != ZNODE_MASTER && f->o->from == NULL) {
        fprintf(stderr, "rzproxy-ctl: the znode names no master (%s): give the old master with "
                "--from HOST:PORT; nothing changed\n", why);
        return -1;
    }
    f->have_old = 1;
    return node_set(&f->old, r == ZNODE_MASTER ? named : f->o->from) == 0 ? 0 : -1;
}

/* The bytes step 6 writes, built and checked before anything changes. */
static int build_after(struct fo *f, char *err, size_t errlen)
{
    struct znode_master m;
    char why[ZNODE_WHY_LEN];

    f->fmt = ctl_doc_format(f->before.data, f->before.len, f->t->format);
    f->after = ctl_doc_rewrite(f->before.data, f->before.len, f->fmt, f->new.name,
                               f->old.name, &f->after_len, NULL, err, errlen);
    if (f->after == NULL)
        return -1;
    if (znode_parse(f->after, f->after_len, f->t->format, &m, why, sizeof(why)) != ZNODE_MASTER) {
        snprintf(err, errlen, "the new znode data would not parse (%s)", why);
        return -1;
    }
    return 0;
}

static void print_read(struct fo *f)
{
    char esc[512], acl[512];

    if (!f->before.exists) {
        say(f, "step 0/%d: znode %s is missing; old master %s (--from)", f->nsteps, f->t->znode,
            f->old.name);
        return;
    }
    znode_escape(f->before.data, f->before.len, esc, sizeof(esc));
    ctl_zk_acl_format(f->before.acl, acl, sizeof(acl));
    say(f, "step 0/%d: znode %s version %d names %s (%s, \"%s\", ACL %s)", f->nsteps,
        f->t->znode, (int)f->before.version, f->old.name, znode_format_name(f->fmt), esc, acl);
}

static int read_znode(struct fo *f)
{
    char err[ERRLEN];

    if (ctl_zk_read(f->zk, f->t->znode, 1, &f->before, err, sizeof(err)) != CTL_ZK_OK) {
        fprintf(stderr, "rzproxy-ctl: %s; nothing changed\n", err);
        return -1;
    }
    if (find_old(f) != 0)
        return -1;
    if (ctl_doc_same_node(f->old.name, f->new.name)) {
        fprintf(stderr, "rzproxy-ctl: %s is already the master: nothing to do, nothing changed\n",
                f->new.name);
        return -1;
    }
    if (build_after(f, err, sizeof(err)) != 0) {
        fprintf(stderr, "rzproxy-ctl: %s; nothing changed\n", err);
        return -1;
    }
    print_read(f);
    return 0;
}

/* NEW answers, is a replica (or the old master is gone), and is not the old
 * master under another name; neither refuses our TLS or credentials (an old
 * master that answers but will not have us cannot be fenced). Keeps both
 * connections for later steps. */
static int preflight(struct fo *f)
{
    char err[ERRLEN], role[32] = "", link[32] = "", *info;
    int refused = 0;

    f->newr = node_connect(f, &f->new, f->o->timeout_ms, &refused, err, sizeof(err));
    info = f->newr != NULL ? ctl_redis_info(f->newr, "replication", err, sizeof(err)) : NULL;
    if (info == NULL) {
        fprintf(stderr, refused ? "rzproxy-ctl: cannot use new master %s: %s; nothing changed\n"
                        : "rzproxy-ctl: new master %s does not answer: %s; nothing changed\n",
                f->new.name, err);
        return -1;
    }
    ctl_redis_info_str(info, "role", role, sizeof(role));
    ctl_redis_info_str(info, "master_link_status", link, sizeof(link));
    free(info);
    if (read_runid(f->newr, f->new_runid, sizeof(f->new_runid), err, sizeof(err)) != 0) {
        fprintf(stderr, "rzproxy-ctl: new master %s does not answer: %s; nothing changed\n",
                f->new.name, err);
        return -1;
    }
    f->oldr = node_connect(f, &f->old, NODE_TIMEOUT_MS, &refused, err, sizeof(err));
    if (f->oldr == NULL && refused) {
        fprintf(stderr, "rzproxy-ctl: cannot use old master %s: %s: it could not be fenced; "
                "nothing changed\n", f->old.name, err);
        return -1;
    }
    if (f->oldr != NULL &&
        read_runid(f->oldr, f->old_runid, sizeof(f->old_runid), err, sizeof(err)) != 0) {
        ctl_redis_close(f->oldr);    /* hung: step 2 tries once more */
        f->oldr = NULL;
    }
    if (f->new_runid[0] != '\0' && strcmp(f->new_runid, f->old_runid) == 0) {
        fprintf(stderr, "rzproxy-ctl: %s and %s are the same redis-server (run_id %s): "
                "nothing changed\n", f->new.name, f->old.name, f->new_runid);
        return -1;
    }
    if (strcmp(role, "slave") != 0 && f->oldr != NULL) {
        fprintf(stderr, "rzproxy-ctl: new master %s is not a replica (role:%s), so it cannot "
                "have %s's writes; make it a replica first; nothing changed\n", f->new.name,
                role, f->old.name);
        return -1;
    }
    say(f, "step 0/%d: new master %s answers (role:%s, master_link_status:%s)", f->nsteps,
        f->new.name, role, link[0] ? link : "-");
    return 0;
}

/* ---- undo ---------------------------------------------------------------- */

static void undo_pause(struct fo *f)
{
    char err[ERRLEN];

    if (!f->paused)
        return;
    if (!ctl_redis_alive(f->oldr)) {
        ctl_redis_close(f->oldr);
        f->oldr = node_connect(f, &f->old, NODE_TIMEOUT_MS, NULL, err, sizeof(err));
    }
    if (f->oldr != NULL &&
        ctl_redis_unpause(f->oldr, err, sizeof(err)) == 0) {
        say(f, "undo: unpaused writes on %s", f->old.name);
        f->paused = 0;
        return;
    }
    warn(f, "undo: cannot unpause %s (%s): its writes stay paused until the pause ends by "
         "itself (at most %d ms after step 2)", f->old.name, err,
         f->o->timeout_ms + CTL_FAILOVER_PAUSE_EXTRA_MS);
}

/* Re-create the znode as it was. 0 when it is back (or was missing before),
 * 1 when someone else created it meanwhile, -1 when it is still missing. */
static int undo_znode(struct fo *f)
{
    char err[ERRLEN], acl[512];
    enum ctl_zk_result r;

    if (!f->deleted)
        return 0;
    r = ctl_zk_create(f->zk, f->t->znode, f->before.data, f->before.len, f->before.acl, err,
                      sizeof(err));
    ctl_zk_acl_format(f->before.acl, acl, sizeof(acl));
    if (r == CTL_ZK_OK) {
        say(f, "undo: re-created znode %s with its original %zu bytes (ACL %s)", f->t->znode,
            f->before.len, acl);
        f->deleted = 0;
        return 0;
    }
    if (r == CTL_ZK_NODE_EXISTS) {
        warn(f, "undo: znode %s was created by someone else meanwhile: left as it is",
             f->t->znode);
        f->deleted = 0;
        return 1;
    }
    warn(f, "undo: cannot re-create znode %s: %s: it is MISSING, every rzproxy stays gated; "
         "restore it with: rzproxy-ctl set-master %s", f->t->znode,
         r == CTL_ZK_NO_NODE ? "its parent is gone" : err, f->old.name);
    return -1;
}

/* Undo steps 1-2 after a failure in steps 1-4; prints the state left. */
static int undo(struct fo *f, const char *why)
{
    static const char *const znode_states[] = {
        "the znode is MISSING (every rzproxy gated)", "the znode is as it was",
        "the znode was re-created by someone else (see the warning above)",
    };
    const char *old_state, *znode_state;

    say(f, "FAILED: %s; undoing", why);
    undo_pause(f);
    znode_state = znode_states[undo_znode(f) + 1];
    if (f->paused)
        old_state = "writes there stay paused until the pause ends by itself";
    else if (f->oldr != NULL)
        old_state = "it takes writes";
    else
        old_state = "it is unreachable";
    fprintf(stderr, "rzproxy-ctl: failover failed: %s\n", why);
    fprintf(stderr, "rzproxy-ctl: state: %s is still the master (%s); %s; %s %s\n",
            f->old.name, old_state, znode_state, f->new.name,
            f->new_unknown ? "is NOT a replica now (see the warning above)"
                           : "was not promoted");
    return CTL_EXIT_FAIL;
}

/* ---- steps 1-2 ----------------------------------------------------------- */

static int step_delete(struct fo *f)
{
    char err[ERRLEN];
    struct ctl_znode now;
    enum ctl_zk_result r;

    if (!f->before.exists) {
        say(f, "step 1/%d: znode %s already missing", f->nsteps, f->t->znode);
        return 0;
    }
    r = ctl_zk_delete(f->zk, f->t->znode, f->before.version, err, sizeof(err));
    if (r == CTL_ZK_OK) {
        f->deleted = 1;
        say(f, "step 1/%d: deleted znode %s (version %d): every rzproxy gates", f->nsteps,
            f->t->znode, (int)f->before.version);
        return 0;
    }
    if (r == CTL_ZK_BAD_VERSION && ctl_zk_read(f->zk, f->t->znode, 0, &now, err,
                                               sizeof(err)) == CTL_ZK_OK) {
        snprintf(err, sizeof(err), "znode changed since it was read (version %d, expected %d)",
                 now.exists ? (int)now.version : -1, (int)f->before.version);
        ctl_znode_free(&now);
    } else if (r == CTL_ZK_NO_NODE) {
        snprintf(err, sizeof(err), "znode was deleted by someone else since it was read");
    }
    fprintf(stderr, "rzproxy-ctl: failover failed: %s: nothing changed\n", err);
    return -1;
}

static void add_other(struct fo *f, const char *name);

/* Remember the old master's replicas (INFO replication) as re-point candidates. */
static void note_replicas(struct fo *f, const char *info)
{
    struct ctl_redis_addr a[MAX_NODES];
    int n = ctl_redis_info_replicas(info, a, MAX_NODES);

    for (int i = 0; i < n; i++) {
        char name[300];

        snprintf(name, sizeof(name), strchr(a[i].host, ':') ? "[%s]:%d" : "%s:%d", a[i].host,
                 a[i].port);
        add_other(f, name);
    }
}

static int read_offset(struct fo *f, char *err, size_t errlen)
{
    char *info = ctl_redis_info(f->oldr, "replication", err, errlen);

    if (info == NULL)
        return -1;
    if (ctl_redis_info_int(info, "master_repl_offset", &f->old_offset) != 0) {
        snprintf(err, errlen, "%s: INFO replication has no master_repl_offset", f->old.name);
        free(info);
        return -1;
    }
    if (ctl_redis_info_field(info, "master_replid", f->old_replid, sizeof(f->old_replid)) != 0)
        f->old_replid[0] = '\0';
    note_replicas(f, info);
    free(info);
    return 0;
}

/* The old master cannot be reached (no connection, or it stopped
 * answering): go on without fencing it, loudly. */
static int pause_unreachable(struct fo *f, const char *err)
{
    warn(f, "old master %s is unreachable (%s): writes it acknowledged that %s has not "
         "received may be lost; not waiting for %s's offset", f->old.name, err, f->new.name,
         f->new.name);
    ctl_redis_close(f->oldr);
    f->oldr = NULL;
    say(f, "step 2/%d: skipped (old master unreachable)", f->nsteps);
    return 0;
}

static int step_pause(struct fo *f)
{
    char err[ERRLEN], why[2 * ERRLEN];
    int pause_ms = f->o->timeout_ms + CTL_FAILOVER_PAUSE_EXTRA_MS;

    if (f->oldr == NULL)
        f->oldr = node_connect(f, &f->old, NODE_TIMEOUT_MS, NULL, err, sizeof(err));
    if (f->oldr == NULL)
        return pause_unreachable(f, err);
    if (ctl_redis_pause_writes(f->oldr, pause_ms, err, sizeof(err)) != 0) {
        if (!ctl_redis_alive(f->oldr))
            return pause_unreachable(f, err);
        snprintf(why, sizeof(why), "cannot pause writes on the old master: %s", err);
        return undo(f, why);
    }
    f->paused = 1;
    if (read_offset(f, err, sizeof(err)) != 0) {
        if (!ctl_redis_alive(f->oldr))
            return pause_unreachable(f, err);
        snprintf(why, sizeof(why), "cannot read the old master's offset: %s", err);
        return undo(f, why);
    }
    say(f, "step 2/%d: paused writes on %s for at most %d ms; master_repl_offset %" PRId64,
        f->nsteps, f->old.name, pause_ms, f->old_offset);
    return 0;
}

/* ---- step 3: NEW catches up ---------------------------------------------- */

/* Does NEW's INFO replication show the old master's offset? status gets a
 * short description of what it shows. */
static int caught_up(struct fo *f, const char *info, char *status, size_t statuslen)
{
    char role[32] = "", link[32] = "", replid[64] = "";
    int64_t off = -1;

    ctl_redis_info_str(info, "role", role, sizeof(role));
    ctl_redis_info_str(info, "master_link_status", link, sizeof(link));
    ctl_redis_info_str(info, "master_replid", replid, sizeof(replid));
    if (ctl_redis_info_int(info, "slave_repl_offset", &off) != 0)
        off = -1;
    snprintf(status, statuslen, "role:%s master_link_status:%s slave_repl_offset:%" PRId64
             " of %" PRId64 "%s", role, link[0] ? link : "-", off, f->old_offset,
             f->old_replid[0] && strcmp(replid, f->old_replid) != 0 ?
             ", replication id differs from the old master's" : "");
    return strcmp(role, "slave") == 0 && strcmp(link, "up") == 0 &&
           (f->old_replid[0] == '\0' || strcmp(replid, f->old_replid) == 0) &&
           off >= f->old_offset;
}

/* One poll of NEW, reconnecting if needed. 1 caught up, 0 not yet, -1 no
 * answer (status says why). */
static int poll_new(struct fo *f, uint64_t deadline, char *status, size_t statuslen)
{
    int64_t left = (int64_t)deadline - (int64_t)util_now_ms();
    int remaining = left < 1 ? 1 : (int)left;
    char err[ERRLEN], *info;
    int ok;

    if (!ctl_redis_alive(f->newr)) {
        ctl_redis_close(f->newr);
        f->newr = node_connect(f, &f->new, remaining < NODE_TIMEOUT_MS ? remaining : NODE_TIMEOUT_MS,
                               NULL, err, sizeof(err));
        if (f->newr == NULL) {
            snprintf(status, statuslen, "unreachable: %s", err);
            return -1;
        }
    }
    if (ctl_redis_set_timeout(f->newr, remaining) != 0 ||
        (info = ctl_redis_info(f->newr, "replication", err, sizeof(err))) == NULL) {
        snprintf(status, statuslen, "no answer: %s", err);
        return -1;
    }
    ok = caught_up(f, info, status, statuslen);
    free(info);
    return ok;
}

static int step_wait(struct fo *f)
{
    uint64_t start = util_now_ms(), deadline = start + (uint64_t)f->o->timeout_ms;
    char status[ERRLEN + 128], why[2 * ERRLEN + 256];

    if (f->oldr == NULL || !f->paused) {
        say(f, "step 3/%d: skipped (old master unreachable: its offset is unknown)", f->nsteps);
        return 0;
    }
    snprintf(status, sizeof(status), "not asked yet");
    while (util_now_ms() < deadline) {
        char now[ERRLEN + 128];
        int rc = poll_new(f, deadline, now, sizeof(now));

        /* Report what NEW last said; a poll cut short by the deadline on a
         * busy machine says less. */
        if (rc >= 0 || strcmp(status, "not asked yet") == 0)
            snprintf(status, sizeof(status), "%s", now);
        if (rc == 1) {
            say(f, "step 3/%d: %s reached offset %" PRId64 " (waited %" PRIu64 " ms)", f->nsteps,
                f->new.name, f->old_offset, util_now_ms() - start);
            return 0;
        }
        sleep_ms(POLL_MS);
    }
    snprintf(why, sizeof(why), "%s did not reach the old master's offset within %d ms (last: %s)",
             f->new.name, f->o->timeout_ms, status);
    return undo(f, why);
}

/* ---- step 4: promote ----------------------------------------------------- */

static void report_new_role(struct fo *f)
{
    char err[ERRLEN], role[32] = "unknown", *info;
    struct ctl_redis *r = node_connect(f, &f->new, NODE_TIMEOUT_MS, NULL, err, sizeof(err));

    info = r != NULL ? ctl_redis_info(r, "replication", err, sizeof(err)) : NULL;
    if (info != NULL && ctl_redis_info_field(info, "role", role, sizeof(role)) != 0)
        snprintf(role, sizeof(role), "unknown");
    free(info);
    ctl_redis_close(r);
    f->new_unknown = strcmp(role, "slave") != 0;
    if (f->new_unknown)
        warn(f, "%s's role is now %s: no rzproxy sends to it (the znode does not name it); "
             "make it a replica again by hand (SLAVEOF %s %d)", f->new.name, role, f->old.host,
             f->old.port);
}

static int step_promote(struct fo *f)
{
    char err[ERRLEN], why[2 * ERRLEN];

    if (!ctl_redis_alive(f->newr)) {
        ctl_redis_close(f->newr);
        f->newr = node_connect(f, &f->new, f->o->timeout_ms, NULL, err, sizeof(err));
    }
    if (f->newr == NULL || ctl_redis_set_timeout(f->newr, f->o->timeout_ms) != 0 ||
        ctl_redis_replicate(f->newr, NULL, 0, err, sizeof(err)) != 0) {
        snprintf(why, sizeof(why), "SLAVEOF NO ONE on %s failed: %s", f->new.name, err);
        report_new_role(f);
        return undo(f, why);
    }
    say(f, "step 4/%d: promoted %s (SLAVEOF NO ONE)", f->nsteps, f->new.name);
    return 0;
}

/* ---- step 5: re-point ---------------------------------------------------- */

static void add_other(struct fo *f, const char *name)
{
    struct node n;

    if (node_set(&n, name) != 0 || ctl_doc_same_node(name, f->new.name) ||
        (f->have_old && ctl_doc_same_node(name, f->old.name)))
        return;
    for (int i = 0; i < f->nothers; i++) {
        if (ctl_doc_same_node(name, f->others[i].name))
            return;
    }
    if (f->nothers < MAX_NODES)
        f->others[f->nothers++] = n;
}

static void collect_others(struct fo *f)
{
    char *slaves[MAX_NODES];
    int n = ctl_doc_slaves(f->before.data, f->before.len, slaves, MAX_NODES);

    for (int i = 0; i < f->o->nreplicas; i++)
        add_other(f, f->o->replicas[i]);
    for (int i = 0; i < n; i++) {
        add_other(f, slaves[i]);
        free(slaves[i]);
    }
}

/* SLAVEOF NEW on n. 0, or -1 with the reason in err. A server whose run_id
 * is NEW's (NEW under another name) is skipped: it must not follow itself. */
static int repoint(struct fo *f, const struct node *n, int *skipped, char *err, size_t errlen)
{
    struct ctl_redis *r = node_connect(f, n, NODE_TIMEOUT_MS, NULL, err, errlen);
    char runid[64];
    int rc;

    *skipped = 0;
    if (r == NULL)
        return -1;
    if (read_runid(r, runid, sizeof(runid), err, errlen) != 0) {
        ctl_redis_close(r);
        return -1;
    }
    if (runid[0] != '\0' && strcmp(runid, f->new_runid) == 0) {
        *skipped = 1;
        ctl_redis_close(r);
        return 0;
    }
    rc = ctl_redis_replicate(r, f->new.host, f->new.port, err, errlen);
    ctl_redis_close(r);
    return rc;
}

static void repoint_others(struct fo *f, int step)
{
    char err[ERRLEN];
    int skipped;

    for (int i = 0; i < f->nothers; i++) {
        const struct node *n = &f->others[i];

        if (repoint(f, n, &skipped, err, sizeof(err)) != 0)
            warn(f, "replica %s was not re-pointed to %s: %s", n->name, f->new.name, err);
        else if (skipped)
            say(f, "step %d/%d: %s is %s itself: skipped", step, f->nsteps, n->name, f->new.name);
        else
            say(f, "step %d/%d: %s now replicates from %s", step, f->nsteps, n->name, f->new.name);
    }
}

static void demote_old(struct fo *f, int step)
{
    char err[ERRLEN], port[16];

    snprintf(port, sizeof(port), "%d", f->new.port);
    if (f->oldr == NULL || !ctl_redis_alive(f->oldr)) {
        ctl_redis_close(f->oldr);
        f->oldr = node_connect(f, &f->old, NODE_TIMEOUT_MS, NULL, err, sizeof(err));
    }
    if (f->oldr != NULL &&
        ctl_redis_replicate(f->oldr, f->new.host, f->new.port, err, sizeof(err)) == 0) {
        say(f, "step %d/%d: old master %s now replicates from %s", step, f->nsteps, f->old.name,
            f->new.name);
        return;
    }
    warn(f, "OLD MASTER %s WAS NOT DEMOTED (%s): if it is running or comes back it is STILL A "
         "MASTER and takes writes from anyone who reaches it directly; fence it by hand: "
         "redis-cli -h %s -p %d SLAVEOF %s %s", f->old.name, err, f->old.host, f->old.port,
         f->new.host, port);
}

static void unpause_old(struct fo *f, int step)
{
    char err[ERRLEN];

    if (!f->paused)
        return;
    if (ctl_redis_alive(f->oldr) &&
        ctl_redis_unpause(f->oldr, err, sizeof(err)) == 0) {
        f->paused = 0;
        say(f, "step %d/%d: unpaused %s (paused writes now fail with -READONLY: they never ran)",
            step, f->nsteps, f->old.name);
        return;
    }
    warn(f, "cannot unpause %s (%s): its writes stay paused until the pause ends by itself",
         f->old.name, ctl_redis_alive(f->oldr) ? err : "connection lost");
}

/* ---- step 6: the new znode ----------------------------------------------- */

static int step_create(struct fo *f, int step)
{
    char err[ERRLEN], esc[512], acl[512];
    enum ctl_zk_result r;

    r = ctl_zk_create(f->zk, f->t->znode, f->after, f->after_len, f->before.acl, err,
                      sizeof(err));
    znode_escape(f->after, f->after_len, esc, sizeof(esc));
    ctl_zk_acl_format(f->before.acl, acl, sizeof(acl));
    if (r == CTL_ZK_OK) {
        say(f, "step %d/%d: created znode %s naming %s (\"%s\", ACL %s): every rzproxy resumes",
            step, f->nsteps, f->t->znode, f->new.name, esc, acl);
        return 0;
    }
    if (r == CTL_ZK_NODE_EXISTS)
        snprintf(err, sizeof(err), "someone else created it meanwhile; it was left as it is");
    else if (r == CTL_ZK_NO_NODE)
        snprintf(err, sizeof(err), "its parent does not exist");
    fprintf(stderr, "rzproxy-ctl: failover failed at the last step: cannot create znode %s: %s\n",
            f->t->znode, err);
    fprintf(stderr, "rzproxy-ctl: state: %s IS THE MASTER; the znode %s; name it with: "
            "rzproxy-ctl set-master %s\n", f->new.name,
            r == CTL_ZK_NODE_EXISTS ? "exists but was not written by this failover"
                                    : "is MISSING, every rzproxy stays gated",
            f->new.name);
    return -1;
}

static int finish(struct fo *f, int rc)
{
    if (rc == 0)
        say(f, "failover done in %" PRIu64 " ms: %s is the master", util_now_ms() - f->t0,
            f->new.name);
    if (f->nwarnings > 0)
        printf("%d warning(s):\n", f->nwarnings);
    for (int i = 0; i < f->nwarnings; i++)
        printf("  - %s\n", f->warnings[i]);
    return rc == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

/* ---- the two orders ------------------------------------------------------ */

/* How the redis connections are made, when it is more than plain TCP (the
 * password is never shown). */
static void say_redis(struct fo *f)
{
    const struct ctl_redis_conf *c = f->o->redis;
    char tls[300] = "", auth[300] = "";

    if (c == NULL || (c->tls == NULL && c->password == NULL))
        return;
    if (c->tls != NULL)
        snprintf(tls, sizeof(tls), "TLS (certificates verified, name: %s)",
                 c->tls_server_name && c->tls_server_name[0] ? c->tls_server_name
                                                             : "the host connected to");
    if (c->password != NULL)
        snprintf(auth, sizeof(auth), "AUTH as %s", c->user && c->user[0] ? c->user
                                                   : "the default user");
    say(f, "redis connections: %s%s%s", tls, tls[0] && auth[0] ? ", " : "", auth);
}

static int run_fenced(struct fo *f)
{
    int rc;

    say_redis(f);
    if (read_znode(f) != 0 || preflight(f) != 0)
        return CTL_EXIT_FAIL;
    collect_others(f);
    if (step_delete(f) != 0)
        return CTL_EXIT_FAIL;
    if ((rc = step_pause(f)) != 0 || (rc = step_wait(f)) != 0 || (rc = step_promote(f)) != 0)
        return finish(f, rc);
    demote_old(f, 5);
    repoint_others(f, 5);
    unpause_old(f, 5);
    return finish(f, step_create(f, 6));
}

/* The old master's replicas, read before it is demoted (seed order). */
static void seed_read_replicas(struct fo *f)
{
    char err[ERRLEN], *info;

    f->oldr = node_connect(f, &f->old, NODE_TIMEOUT_MS, NULL, err, sizeof(err));
    info = f->oldr != NULL ? ctl_redis_info(f->oldr, "replication", err, sizeof(err)) : NULL;
    if (info != NULL)
        note_replicas(f, info);
    free(info);
}

static int run_seed(struct fo *f)
{
    char err[ERRLEN];

    say(f, "--seed-order: the seed's UNSAFE order (no pause, no offset wait): acknowledged "
        "writes %s has not received are lost", f->new.name);
    say_redis(f);
    if (read_znode(f) != 0)
        return CTL_EXIT_FAIL;
    collect_others(f);
    if (step_delete(f) != 0)
        return CTL_EXIT_FAIL;
    seed_read_replicas(f);
    demote_old(f, 2);
    f->newr = node_connect(f, &f->new, f->o->timeout_ms, NULL, err, sizeof(err));
    if (f->newr == NULL ||
        ctl_redis_replicate(f->newr, NULL, 0, err, sizeof(err)) != 0) {
        fprintf(stderr, "rzproxy-ctl: failover failed: SLAVEOF NO ONE on %s: %s\n", f->new.name,
                err);
        fprintf(stderr, "rzproxy-ctl: state: NO MASTER: %s replicates from %s, which was not "
                "promoted; the znode is MISSING (every rzproxy gated); fix by hand\n",
                f->old.name, f->new.name);
        return finish(f, -1);
    }
    say(f, "step 3/%d: promoted %s (SLAVEOF NO ONE)", f->nsteps, f->new.name);
    repoint_others(f, 3);
    return finish(f, step_create(f, 4));
}

static void fo_free(struct fo *f)
{
    ctl_znode_free(&f->before);
    free(f->after);
    ctl_redis_close(f->oldr);
    ctl_redis_close(f->newr);
    for (int i = 0; i < f->nwarnings; i++)
        free(f->warnings[i]);
}

int ctl_failover_run(const struct ctl_target *t, struct ctl_zk *zk,
                     const struct ctl_failover_opts *o)
{
    struct fo f;
    int rc;

    memset(&f, 0, sizeof(f));
    f.t = t;
    f.zk = zk;
    f.o = o;
    f.t0 = util_now_ms();
    f.nsteps = o->seed_order ? 4 : 6;
    if (node_set(&f.new, o->to) != 0) {
        fprintf(stderr, "rzproxy-ctl: bad --to '%s'\n", o->to);
        return CTL_EXIT_USAGE;
    }
    rc = o->seed_order ? run_seed(&f) : run_fenced(&f);
    fo_free(&f);
    return rc;
}
