/*
 * ctl_candidate: the loop around the election's state machine (ctl_elect)
 * for `rzproxy-ctl candidate` (see ctl_candidate.h).
 *
 *   ZooKeeper library threads ──> ctl_zk event queue ──┐ (fd)
 *   SIGTERM, SIGINT, SIGCHLD ──> self-pipe ─────────────┤ poll()
 *   timers: PING our redis, heartbeat, pause renewal ───┘
 *        │
 *        v  one event at a time
 *   elect_step() ──> actions ──> run_action() ──> RESULT event, queued
 *                                   │
 *                  ctl_zk (sync calls, fail fast), ctl_handover (redis)
 *
 * Everything happens on this one thread: the library's threads only fill
 * the event queue, and zookeeper_close is only ever called here. Actions
 * block, each bounded: ZooKeeper calls by the connection (a lost one fails
 * them at once), redis calls by their timeouts, waits by --timeout. While
 * one runs, events wait in their queues, in order.
 *
 * Our own clock for the session (DESIGN section 2): the heartbeat (an
 * exists on ROOT every T/4) records the last time the server surely heard
 * us; ctl_elect turns that and the disconnect time into the deadline by
 * which a leader cut off from ZooKeeper demotes itself.
 */
#include "ctl_candidate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl_doc.h"
#include "ctl_elect.h"
#include "ctl_handover.h"
#include "ctl_repl.h"
#include "ctl_zk.h"

#define PAUSE_MS 10000               /* our own fence's pause ... */
#define PAUSE_RENEW_MS 1000          /* ... renewed this often while we want it */
#define PEER_TIMEOUT_MS 500          /* connect/command bound for the other servers */
#define SELF_TIMEOUT_MS 2000         /* command bound for our redis's commands */
#define CHILD_STOP_MS 10000          /* the --exec child: SIGTERM, then SIGKILL after */
#define AUTH_RETRY_MS 1000           /* no new session sooner after credentials were refused */
#define QUEUE_MAX 64                 /* events waiting (results of one step's actions) */
#define COUNT_TRIES 5                /* the ballot below ours vanished while read: again */
#define ERRLEN 512

struct cand {
    const struct ctl_target *t;
    const struct ctl_candidate_opts *o;
    char root[CTL_ZK_PATH_MAX];      /* the election's root */
    char ack[CTL_ZK_PATH_MAX];       /* ROOT/leader_ack */
    char prefix[CTL_ZK_PATH_MAX];    /* ROOT/ballot */
    struct elect e;                  /* the decisions */
    enum elect_state shown_state;    /* last state logged */
    char shown_why[256];             /* and its reason */
    struct ctl_zk *zk;               /* the session, NULL while none */
    uint64_t auth_failed_ms;         /* when credentials were last refused, 0 never */
    struct ctl_redis *r;             /* our redis: checks and commands */
    struct handover h;               /* how ctl_handover reaches servers */
    int fails;                       /* failed checks in a row */
    int reported;                    /* redis health told to elect: -1 not yet, 0, 1 */
    uint64_t next_check;             /* monotonic ms */
    uint64_t next_beat;
    uint64_t next_pause;
    uint64_t contact_ms;             /* the last time the server surely heard us */
    char ballot[CTL_ZK_PATH_MAX * 2];/* our ballot's path, "" none known */
    struct elect_view view;          /* the last count */
    char demote_err[ERRLEN];         /* why the last demotion was refused (said once) */
    pid_t child;                     /* --exec child, 0 none */
    struct elect_event q[QUEUE_MAX]; /* events to step, oldest first */
    int qhead, qlen;
};

static int sigpipe_fds[2] = { -1, -1 };

/* ---- output -------------------------------------------------------------- */

static void say(struct cand *c, const char *fmt, ...) RZ_PRINTF(2, 3);

/* One line on stdout: wall time (to line up with the proxies' logs), our
 * advertised address, the message. */
static void say(struct cand *c, const char *fmt, ...)
{
    char msg[1536], stamp[32];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    printf("%s.%03d candidate %s: %s\n", stamp, (int)(tv.tv_usec / 1000), c->o->advertise, msg);
}

static void say_handover(void *ctx, const char *msg)
{
    say(ctx, "%s", msg);
}

/* ---- the event queue ------------------------------------------------------ */

static void push(struct cand *c, const struct elect_event *ev)
{
    if (c->qlen == QUEUE_MAX) {
        /* cannot happen: a step has at most ELECT_NACTIONS results */
        say(c, "BUG: event queue full; event %d dropped", (int)ev->type);
        return;
    }
    c->q[(c->qhead + c->qlen) % QUEUE_MAX] = *ev;
    c->qlen++;
}

static struct elect_event event(enum elect_event_type type)
{
    struct elect_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.now_ms = util_now_ms();
    return ev;
}

static void push_type(struct cand *c, enum elect_event_type type)
{
    struct elect_event ev = event(type);

    push(c, &ev);
}

/* ---- our redis ------------------------------------------------------------ */

/* The connection to our redis, (re)made when needed, with this command
 * timeout. NULL when it does not answer (err). */
static struct ctl_redis *self_conn(struct cand *c, int timeout_ms, char *err, size_t errlen)
{
    if (c->r != NULL && !ctl_redis_alive(c->r)) {
        ctl_redis_close(c->r);
        c->r = NULL;
    }
    if (c->r == NULL)
        c->r = handover_connect(&c->h, c->o->redis, timeout_ms, err, errlen);
    if (c->r != NULL && ctl_redis_set_timeout(c->r, timeout_ms) != 0) {
        ctl_redis_close(c->r);
        c->r = NULL;
        snprintf(err, errlen, "connection lost");
    }
    return c->r;
}

static int ping_timeout(const struct cand *c)
{
    return c->o->check_interval_ms * 2 > 100 ? c->o->check_interval_ms * 2 : 100;
}

/* One health check: PING within ping_timeout. Tells elect when the
 * verdict changes (check_failures failures in a row make "down"). */
static void check_redis(struct cand *c)
{
    char err[ERRLEN] = "";
    struct ctl_redis *r = self_conn(c, ping_timeout(c), err, sizeof(err));
    int ok = r != NULL && ctl_redis_run(r, NULL, err, sizeof(err), "PING", NULL) == 0;
    int up = c->reported;

    if (ok) {
        if (c->fails >= c->o->check_failures)
            say(c, "our redis %s answers again", c->o->redis);
        c->fails = 0;
        up = 1;
    } else {
        /* dead, or an error reply (-LOADING, -BUSY): start afresh */
        ctl_redis_close(c->r);
        c->r = NULL;
        c->fails++;
        if (c->fails == 1 || c->fails == c->o->check_failures)
            say(c, "our redis %s: PING failed (%d of %d): %s", c->o->redis, c->fails,
                c->o->check_failures, err);
        if (c->fails >= c->o->check_failures)
            up = 0;
    }
    if (up != c->reported && up >= 0) {
        c->reported = up;
        push_type(c, up ? ELECT_EV_REDIS_UP : ELECT_EV_REDIS_DOWN);
    }
}

/* Keep our fence's pause up while elect wants it (it lapses by itself
 * otherwise, so a dead candidate does not leave writes paused for ever). */
static int pause_self(struct cand *c)
{
    char err[ERRLEN];
    /* bounded like a health check: a hung redis must not stall the loop
     * (and with it the deadline) for seconds */
    struct ctl_redis *r = self_conn(c, ping_timeout(c), err, sizeof(err));

    c->next_pause = util_now_ms() + PAUSE_RENEW_MS;
    if (r == NULL || ctl_redis_pause_writes(r, PAUSE_MS, err, sizeof(err)) != 0) {
        say(c, "cannot pause writes on our redis: %s", err);
        return -1;
    }
    return 0;
}

/* ---- the --exec child ----------------------------------------------------- */

static int start_child(struct cand *c)
{
    pid_t parent = getpid(), pid = fork();

    if (pid < 0) {
        say(c, "cannot start %s: fork: %s", c->o->exec_argv[0], strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* it follows our life too: SIGTERM when we die, however we die */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execvp(c->o->exec_argv[0], c->o->exec_argv);
        fprintf(stderr, "rzproxy-ctl: cannot run %s: %s\n", c->o->exec_argv[0], strerror(errno));
        _exit(127);
    }
    c->child = pid;
    say(c, "started %s (pid %d)", c->o->exec_argv[0], (int)pid);
    return 0;
}

static void describe_status(int status, char *out, size_t outlen)
{
    if (WIFEXITED(status))
        snprintf(out, outlen, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, outlen, "status 0x%x", status);
}

/* Did the child exit? Reaps it and tells elect. */
static void reap_child(struct cand *c)
{
    char how[64];
    int status;
    struct elect_event ev;

    if (c->child <= 0 || waitpid(c->child, &status, WNOHANG) != c->child)
        return;
    describe_status(status, how, sizeof(how));
    say(c, "our redis-server (pid %d) exited: %s", (int)c->child, how);
    c->child = 0;
    c->reported = 0;
    ev = event(ELECT_EV_CHILD_EXIT);
    ev.exit_code = 1;
    push(c, &ev);
}

static void stop_child(struct cand *c)
{
    uint64_t deadline = util_now_ms() + CHILD_STOP_MS;
    struct timespec ts = { 0, 20 * 1000000L };
    char how[64];
    int status;

    if (c->child <= 0)
        return;
    kill(c->child, SIGTERM);
    while (waitpid(c->child, &status, WNOHANG) == 0) {
        if (util_now_ms() >= deadline) {
            say(c, "redis-server (pid %d) still running %d ms after SIGTERM: SIGKILL",
                (int)c->child, CHILD_STOP_MS);
            kill(c->child, SIGKILL);
            waitpid(c->child, &status, 0);
            break;
        }
        nanosleep(&ts, NULL);
    }
    describe_status(status, how, sizeof(how));
    say(c, "stopped our redis-server (pid %d): %s", (int)c->child, how);
    c->child = 0;
}

/* ---- ZooKeeper actions ---------------------------------------------------- */

static int lost(enum ctl_zk_result r)
{
    return r == CTL_ZK_LOST;
}

static void trim(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static int do_open(struct cand *c)
{
    char err[ERRLEN];

    ctl_zk_close(c->zk);
    c->zk = NULL;
    c->ballot[0] = '\0';
    if (c->auth_failed_ms != 0 && util_now_ms() - c->auth_failed_ms < AUTH_RETRY_MS)
        return 0;
    c->zk = ctl_zk_start(c->t->zookeeper, c->t->digest, c->t->session_timeout_ms, c->t->verbose,
                         err, sizeof(err));
    if (c->zk == NULL) {
        say(c, "%s; trying again", err);
        return 0;
    }
    return 1;
}

static int do_close(struct cand *c)
{
    if (c->zk != NULL) {
        ctl_zk_close(c->zk);
        say(c, "session closed (its ballot and leader_ack, if any, are gone)");
    }
    c->zk = NULL;
    c->ballot[0] = '\0';
    return 1;
}

/* Create path (mode) under ROOT with ROOT's ACL: ZooKeeper has no
 * inheritance, and this is how an operator gives the proxies a read-only
 * identity once, on ROOT (README: rzproxy-ctl candidate). The session's
 * default when ROOT cannot be read. */
static enum ctl_zk_result create_under_root(struct cand *c, const char *path,
                                            enum ctl_zk_mode mode, char *created,
                                            size_t createdlen, char *err, size_t errlen)
{
    struct ctl_znode root;
    enum ctl_zk_result r = ctl_zk_read(c->zk, c->root, 1, &root, err, errlen);

    if (r == CTL_ZK_LOST)
        return r;
    r = ctl_zk_create_node(c->zk, path, c->o->advertise, strlen(c->o->advertise), mode,
                           r == CTL_ZK_OK && root.exists ? root.acl : NULL, created, createdlen,
                           err, errlen);
    ctl_znode_free(&root);
    return r;
}

static int do_cast(struct cand *c, struct elect_event *res)
{
    char err[ERRLEN], created[CTL_ZK_PATH_MAX];
    enum ctl_zk_result r = ctl_zk_ensure_path(c->zk, c->root, err, sizeof(err));

    if (r == CTL_ZK_OK)
        r = create_under_root(c, c->prefix, CTL_ZK_EPHEMERAL_SEQUENTIAL, created, sizeof(created),
                              err, sizeof(err));
    if (r != CTL_ZK_OK) {
        res->lost = lost(r);
        say(c, "cannot cast a ballot: %s", err);
        return 0;
    }
    snprintf(c->ballot, sizeof(c->ballot), "%s", created);
    say(c, "cast %s (data %s)", created, c->o->advertise);
    return 1;
}

/* Read one ballot into b. 1 read, 0 gone, -1 failed (err). */
static int read_ballot(struct cand *c, const char *name, struct elect_ballot *b,
                       enum ctl_zk_result *r, char *err, size_t errlen)
{
    char path[CTL_ZK_PATH_MAX * 2];
    struct ctl_znode n;

    snprintf(path, sizeof(path), "%s/%s", c->root, name);
    *r = ctl_zk_read(c->zk, path, 0, &n, err, errlen);
    if (*r != CTL_ZK_OK)
        return -1;
    if (!n.exists) {
        ctl_znode_free(&n);
        return 0;
    }
    memset(b, 0, sizeof(*b));
    snprintf(b->name, sizeof(b->name), "%s", name);
    snprintf(b->addr, sizeof(b->addr), "%.*s", (int)n.len, n.data);
    trim(b->addr);
    b->owner = n.ephemeral_owner;
    ctl_znode_free(&n);
    return 1;
}

/* The ballots, sorted, ours found; ballots of ours beyond the first (a
 * lost create that went through) are deleted. The leader (watch set)
 * watches the list: it must know its successor, the server it demotes to
 * when cut off from ZooKeeper. The others watch only the ballot below. */
static enum ctl_zk_result read_ballots(struct cand *c, struct elect_view *v, int watch, char *err,
                                       size_t errlen)
{
    enum ctl_zk_result r;
    char **names;
    int n;

    v->nballots = 0;
    r = ctl_zk_children(c->zk, c->root, watch, &names, &n, err, errlen);
    if (r == CTL_ZK_NO_NODE)
        r = CTL_ZK_OK;               /* no root yet: no ballots */
    for (int i = 0; i < n && r == CTL_ZK_OK; i++) {
        struct elect_ballot *b = &v->ballots[v->nballots];
        int64_t seq;

        if (elect_ballot_seq(names[i], &seq) != 0)
            continue;
        if (v->nballots == ELECT_MAX_BALLOTS) {
            say(c, "more than %d ballots under %s: the rest are ignored", ELECT_MAX_BALLOTS,
                c->root);
            break;
        }
        if (read_ballot(c, names[i], b, &r, err, errlen) == 1) {
            b->seq = seq;
            v->nballots++;
        }
    }
    ctl_zk_names_free(names, n);
    if (r != CTL_ZK_OK)
        return r;
    elect_view_sort(v, ctl_zk_session_id(c->zk));
    for (int i = v->mine + 1; v->mine >= 0 && i < v->nballots; i++) {
        char path[CTL_ZK_PATH_MAX * 2], e2[ERRLEN];

        if (v->ballots[i].owner != v->ballots[v->mine].owner)
            continue;
        snprintf(path, sizeof(path), "%s/%s", c->root, v->ballots[i].name);
        if (ctl_zk_delete(c->zk, path, -1, e2, sizeof(e2)) == CTL_ZK_OK)
            say(c, "deleted %s: a second ballot of ours", v->ballots[i].name);
    }
    return CTL_ZK_OK;
}

/* leader_ack, read with a watch on it. */
static enum ctl_zk_result read_ack(struct cand *c, struct elect_view *v, char *err,
                                   size_t errlen)
{
    struct ctl_znode n;
    enum ctl_zk_result r = ctl_zk_watch(c->zk, c->ack, &n, err, errlen);

    if (r != CTL_ZK_OK)
        return r;
    v->ack_exists = n.exists;
    v->ack_owner = n.ephemeral_owner;
    snprintf(v->ack_addr, sizeof(v->ack_addr), "%.*s", n.exists ? (int)n.len : 0,
             n.exists ? n.data : "");
    trim(v->ack_addr);
    ctl_znode_free(&n);
    return CTL_ZK_OK;
}

/* Watch the ballot just below ours. 1 watched, 0 it is gone (read again). */
static int watch_below(struct cand *c, const struct elect_view *v, enum ctl_zk_result *r,
                       char *err, size_t errlen)
{
    char path[CTL_ZK_PATH_MAX * 2];
    struct ctl_znode n;
    int exists;

    *r = CTL_ZK_OK;
    if (v->mine <= 0)
        return 1;
    snprintf(path, sizeof(path), "%s/%s", c->root, v->ballots[v->mine - 1].name);
    *r = ctl_zk_watch(c->zk, path, &n, err, errlen);
    exists = *r == CTL_ZK_OK && n.exists;
    ctl_znode_free(&n);
    return *r != CTL_ZK_OK || exists;
}

/* Read the election into a view of its own for the result (freed by
 * drain() once stepped: results wait in the queue, and a later count must
 * not change what an earlier one reported); c->view keeps the last good
 * one for the actions that need it. */
static int do_count(struct cand *c, struct elect_event *res)
{
    struct elect_view *v = xcalloc(1, sizeof(*v));
    enum ctl_zk_result r = CTL_ZK_OK;
    char err[ERRLEN] = "";

    for (int i = 0; i < COUNT_TRIES; i++) {
        /* watch the list only when it was ours to lead last time: a
         * leader re-reads on every change, a follower only when the
         * ballot below goes (no herd); the first count of a new leader
         * sets the watch with a second read */
        int watch = c->view.mine == 0 && c->view.nballots > 0;

        memset(v, 0, sizeof(*v));
        r = read_ballots(c, v, watch, err, sizeof(err));
        if (r == CTL_ZK_OK && !watch && v->mine == 0)
            r = read_ballots(c, v, 1, err, sizeof(err));
        if (r == CTL_ZK_OK)
            r = read_ack(c, v, err, sizeof(err));
        if (r != CTL_ZK_OK || watch_below(c, v, &r, err, sizeof(err)))
            break;
    }
    if (r != CTL_ZK_OK) {
        free(v);
        res->lost = lost(r);
        say(c, "cannot read the election: %s", err);
        return 0;
    }
    if (v->mine >= 0)
        snprintf(c->ballot, sizeof(c->ballot), "%s/%s", c->root, v->ballots[v->mine].name);
    c->view = *v;
    res->view = v;
    return 1;
}

static int do_ack(struct cand *c, struct elect_event *res)
{
    char err[ERRLEN];
    struct ctl_znode n;
    enum ctl_zk_result r = create_under_root(c, c->ack, CTL_ZK_EPHEMERAL, NULL, 0, err,
                                             sizeof(err));

    if (r == CTL_ZK_NODE_EXISTS && ctl_zk_read(c->zk, c->ack, 0, &n, err, sizeof(err)) ==
                                       CTL_ZK_OK) {
        /* ours when a create whose answer was lost went through */
        if (n.exists && n.ephemeral_owner == ctl_zk_session_id(c->zk))
            r = CTL_ZK_OK;
        else
            snprintf(err, sizeof(err), "it exists, created by another session (data %.*s)",
                     n.exists ? (int)(n.len > 300 ? 300 : n.len) : 0, n.exists ? n.data : "");
        ctl_znode_free(&n);
    }
    if (r != CTL_ZK_OK) {
        res->lost = lost(r);
        say(c, "cannot create leader_ack: %s", err);
        return 0;
    }
    say(c, "created %s (data %s)", c->ack, c->o->advertise);
    return 1;
}

/* Delete leader_ack if our session owns it. */
static int do_unack(struct cand *c, struct elect_event *res)
{
    char err[ERRLEN];
    struct ctl_znode n;
    enum ctl_zk_result r;

    /* disconnected, a call would wait for the next connection attempt;
     * the session's end takes the ack with it anyway */
    if (c->zk == NULL || !c->e.connected) {
        res->lost = 1;
        return 0;
    }
    r = ctl_zk_read(c->zk, c->ack, 0, &n, err, sizeof(err));
    if (r == CTL_ZK_OK && n.exists && n.ephemeral_owner == ctl_zk_session_id(c->zk)) {
        r = ctl_zk_delete(c->zk, c->ack, -1, err, sizeof(err));
        if (r == CTL_ZK_OK || r == CTL_ZK_NO_NODE)
            say(c, "deleted %s: every proxy gates", c->ack);
    }
    ctl_znode_free(&n);
    res->lost = lost(r);
    return r == CTL_ZK_OK || r == CTL_ZK_NO_NODE;
}

/* Delete our ballot (and any other our session owns, as last read). */
static int do_withdraw(struct cand *c, struct elect_event *res)
{
    char err[ERRLEN], path[CTL_ZK_PATH_MAX * 2];
    enum ctl_zk_result r = CTL_ZK_OK, r2;
    int64_t sid;

    if (c->zk == NULL || !c->e.connected) {
        res->lost = 1;               /* done once the session is back (elect) */
        return 0;
    }
    sid = ctl_zk_session_id(c->zk);
    for (int i = 0; i < c->view.nballots && sid != 0; i++) {
        if (c->view.ballots[i].owner != sid)
            continue;
        snprintf(path, sizeof(path), "%s/%s", c->root, c->view.ballots[i].name);
        if (strcmp(path, c->ballot) == 0)
            continue;
        r2 = ctl_zk_delete(c->zk, path, -1, err, sizeof(err));
        if (r2 != CTL_ZK_OK && r2 != CTL_ZK_NO_NODE)
            r = r2;
    }
    if (c->ballot[0] != '\0') {
        r2 = ctl_zk_delete(c->zk, c->ballot, -1, err, sizeof(err));
        if (r2 == CTL_ZK_OK || r2 == CTL_ZK_NO_NODE) {
            say(c, "withdrew %s", c->ballot);
            c->ballot[0] = '\0';
        } else {
            r = r2;
        }
    }
    res->lost = lost(r);
    if (r != CTL_ZK_OK)
        say(c, "cannot withdraw our ballot: %s", err);
    return r == CTL_ZK_OK;
}

/* ---- redis actions -------------------------------------------------------- */

static int do_pause(struct cand *c)
{
    if (pause_self(c) != 0)
        return 0;
    say(c, "writes paused on our redis (renewed every %d ms while needed)", PAUSE_RENEW_MS);
    return 1;
}

static int do_unpause(struct cand *c)
{
    char err[ERRLEN];
    struct ctl_redis *r = self_conn(c, SELF_TIMEOUT_MS, err, sizeof(err));

    if (r == NULL || ctl_redis_unpause(r, err, sizeof(err)) != 0) {
        say(c, "cannot unpause our redis: %s", err);
        return 0;
    }
    say(c, "writes resumed on our redis");
    return 1;
}

/* The other servers the promotion compares with: every other ballot's,
 * and the last leader we knew (it may have no ballot left but still run). */
static int collect_peers(struct cand *c, const char **peers, int max)
{
    int n = 0;

    for (int i = 0; i < c->view.nballots && n < max; i++) {
        if (i != c->view.mine)
            peers[n++] = c->view.ballots[i].addr;
    }
    if (c->e.stale[0] != '\0' && n < max)
        peers[n++] = c->e.stale;
    if (c->e.following[0] != '\0' && n < max)
        peers[n++] = c->e.following;
    return n;
}

static int do_promote(struct cand *c, struct elect_event *res)
{
    const char *peers[ELECT_MAX_BALLOTS + 2];
    char err[ERRLEN] = "";
    struct ctl_redis *r = self_conn(c, SELF_TIMEOUT_MS, err, sizeof(err));
    int n = collect_peers(c, peers, ELECT_MAX_BALLOTS + 2);
    enum handover_result hr;

    if (r == NULL) {
        say(c, "cannot promote: our redis does not answer: %s", err);
        return 0;
    }
    hr = handover_promote(&c->h, r, c->o->advertise, peers, n, err, sizeof(err));
    if (hr == HANDOVER_FAILED)
        say(c, "promotion failed: %s", err);
    res->yield = hr == HANDOVER_YIELD;
    return hr == HANDOVER_DONE;
}

static int do_follow(struct cand *c)
{
    char err[ERRLEN] = "";
    struct ctl_redis *r = self_conn(c, SELF_TIMEOUT_MS, err, sizeof(err));

    if (r == NULL ||
        handover_follow(&c->h, r, c->e.leader, 1, err, sizeof(err)) != HANDOVER_DONE) {
        say(c, "cannot make our redis follow %s: %s", c->e.leader, err);
        return 0;
    }
    return 1;
}

static int do_demote(struct cand *c)
{
    const char *target = elect_demote_target(&c->e);
    char err[ERRLEN] = "";
    struct ctl_redis *r = self_conn(c, SELF_TIMEOUT_MS, err, sizeof(err));

    if (r == NULL || handover_demote(&c->h, r, target, err, sizeof(err)) != HANDOVER_DONE) {
        /* tried again every ELECT_DEMOTE_RETRY_MS: say it when it changes */
        if (strcmp(err, c->demote_err) != 0)
            say(c, "our redis NOT demoted (%s): its writes stay paused; trying again", err);
        snprintf(c->demote_err, sizeof(c->demote_err), "%s", err);
        return 0;
    }
    c->demote_err[0] = '\0';
    say(c, "demoted our redis: it replicates from %s; writes it held fail with -READONLY",
        target);
    return 1;
}

/* ---- abdication ----------------------------------------------------------- */

/* Wait (--timeout) for a leader_ack another session owns: its data into
 * out. 0, or -1. */
static int wait_new_ack(struct cand *c, char *out, size_t outlen)
{
    uint64_t deadline = util_now_ms() + (uint64_t)c->o->timeout_ms;
    struct timespec ts = { 0, 20 * 1000000L };
    int64_t sid = ctl_zk_session_id(c->zk);
    char err[ERRLEN];

    do {
        struct ctl_znode n;
        int found = 0;

        if (ctl_zk_read(c->zk, c->ack, 0, &n, err, sizeof(err)) == CTL_ZK_OK && n.exists &&
            n.ephemeral_owner != sid) {
            snprintf(out, outlen, "%.*s", (int)n.len, n.data);
            trim(out);
            found = 1;
        }
        ctl_znode_free(&n);
        if (found)
            return 0;
        nanosleep(&ts, NULL);
    } while (util_now_ms() < deadline);
    return -1;
}

/*
 * SIGTERM on the leader: CLIENT PAUSE WRITE, wait until our successor's
 * server holds our offset, delete leader_ack and our ballot, wait for the
 * new leader's ack, close the session, make our redis its replica, and
 * unpause (the writes held fail with -READONLY: they never ran).
 */
static int do_abdicate(struct cand *c)
{
    struct elect_event res = event(ELECT_EV_RESULT);
    char err[ERRLEN] = "", succ[ELECT_ADDR_LEN] = "", next[ELECT_ADDR_LEN] = "";
    struct ctl_redis *r = self_conn(c, SELF_TIMEOUT_MS, err, sizeof(err));
    struct ctl_repl mine;
    int ok = 1;

    if (r == NULL || ctl_redis_pause_writes(r, c->o->timeout_ms + HANDOVER_PAUSE_EXTRA_MS, err,
                                    sizeof(err)) != 0 ||
        ctl_repl_read(r, &mine, err, sizeof(err)) != 0) {
        say(c, "cannot pause our redis (%s): handing over without the fence", err);
        ok = 0;
    } else {
        say(c, "handing over: writes paused at offset %lld", (long long)mine.offset);
    }
    if (do_count(c, &res) && c->view.mine >= 0 && c->view.mine + 1 < c->view.nballots)
        snprintf(succ, sizeof(succ), "%s", c->view.ballots[c->view.mine + 1].addr);
    free((void *)res.view);
    if (ok && succ[0] != '\0') {
        if (handover_wait_holds(&c->h, succ, &mine, err, sizeof(err)) == 0)
            say(c, "successor %s holds our offset %lld", succ, (long long)mine.offset);
        else
            say(c, "WARNING: %s; handing over anyway (its promotion compares with us)", err);
    }
    do_unack(c, &res);
    do_withdraw(c, &res);
    if (succ[0] != '\0' && wait_new_ack(c, next, sizeof(next)) == 0)
        say(c, "new leader: %s", next);
    else if (succ[0] != '\0')
        say(c, "no new leader_ack within %d ms: following our successor %s", c->o->timeout_ms,
            succ);
    do_close(c);
    if (next[0] == '\0')
        snprintf(next, sizeof(next), "%s", succ);
    r = self_conn(c, SELF_TIMEOUT_MS, err, sizeof(err));
    if (next[0] != '\0' && !elect_same_addr(next, c->o->advertise)) {
        if (r == NULL || handover_follow(&c->h, r, next, 1, err, sizeof(err)) != HANDOVER_DONE) {
            say(c, "WARNING: our redis could not be made a replica of %s: %s", next, err);
            ok = 0;
        }
    } else if (r == NULL || ctl_redis_unpause(r, err, sizeof(err)) != 0) {
        say(c, "cannot unpause our redis: %s", err);
        ok = 0;
    } else {
        say(c, "no other candidate: our redis stays a master, with no leader_ack (proxies gate)");
    }
    return ok;
}

/* ---- carrying out actions ------------------------------------------------- */

static void run_action(struct cand *c, unsigned a)
{
    struct elect_event res = event(ELECT_EV_RESULT);
    int zk_needed = a & (ELECT_DO_CAST | ELECT_DO_COUNT | ELECT_DO_ACK);

    res.action = a;
    if (zk_needed && c->zk == NULL) {
        res.lost = 1;
    } else {
        switch (a) {
        case ELECT_DO_PAUSE: res.ok = do_pause(c); break;
        case ELECT_DO_UNACK: res.ok = do_unack(c, &res); break;
        case ELECT_DO_WITHDRAW: res.ok = do_withdraw(c, &res); break;
        case ELECT_DO_CLOSE: res.ok = do_close(c); break;
        case ELECT_DO_DEMOTE: res.ok = do_demote(c); break;
        case ELECT_DO_OPEN: res.ok = do_open(c); break;
        case ELECT_DO_CAST: res.ok = do_cast(c, &res); break;
        case ELECT_DO_COUNT: res.ok = do_count(c, &res); break;
        case ELECT_DO_PROMOTE: res.ok = do_promote(c, &res); break;
        case ELECT_DO_ACK: res.ok = do_ack(c, &res); break;
        case ELECT_DO_FOLLOW: res.ok = do_follow(c); break;
        case ELECT_DO_UNPAUSE: res.ok = do_unpause(c); break;
        case ELECT_DO_ABDICATE: res.ok = do_abdicate(c); break;
        case ELECT_DO_EXIT: stop_child(c); return;
        default: return;
        }
    }
    res.now_ms = util_now_ms();
    push(c, &res);
}

/* Say so when the state or its reason changed. */
static void show_state(struct cand *c, unsigned actions)
{
    char acts[256];

    if (c->e.state == c->shown_state && strcmp(c->e.why, c->shown_why) == 0)
        return;
    elect_actions_format(actions, acts, sizeof(acts));
    if (c->e.state != c->shown_state)
        say(c, "%s -> %s: %s%s%s", elect_state_name(c->shown_state),
            elect_state_name(c->e.state), c->e.why, c->t->verbose ? " / do " : "",
            c->t->verbose ? acts : "");
    else
        say(c, "%s: %s", elect_state_name(c->e.state), c->e.why);
    c->shown_state = c->e.state;
    snprintf(c->shown_why, sizeof(c->shown_why), "%s", c->e.why);
}

/* Step every queued event, carrying out each one's actions in order. */
static void drain(struct cand *c)
{
    while (c->qlen > 0 && c->e.state != ELECT_DONE) {
        struct elect_event ev = c->q[c->qhead];
        char succ[ELECT_ADDR_LEN];
        unsigned actions;

        c->qhead = (c->qhead + 1) % QUEUE_MAX;
        c->qlen--;
        snprintf(succ, sizeof(succ), "%s", c->e.successor);
        actions = elect_step(&c->e, &ev);
        free((void *)ev.view);       /* do_count's snapshot */
        show_state(c, actions);
        /* whom a leader cut off would demote to: worth a line */
        if (strcmp(succ, c->e.successor) != 0 && c->e.state >= ELECT_PROMOTING &&
            c->e.state <= ELECT_FENCED)
            say(c, "successor: %s", c->e.successor[0] ? c->e.successor : "none");
        for (int i = 0; i < ELECT_NACTIONS; i++) {
            if (actions & (1u << i))
                run_action(c, 1u << i);
        }
    }
    while (c->e.state == ELECT_DONE && c->qlen > 0) {
        free((void *)c->q[c->qhead].view);
        c->qhead = (c->qhead + 1) % QUEUE_MAX;
        c->qlen--;
    }
}

/* ---- collecting events ---------------------------------------------------- */

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    ssize_t rc = write(sigpipe_fds[1], &b, 1);

    RZ_UNUSED(rc);
    errno = saved;
}

static int setup_signals(void)
{
    struct sigaction sa;

    if (pipe2(sigpipe_fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    return 0;
}

static void restore_signals(void)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    for (int i = 0; i < 2; i++) {
        if (sigpipe_fds[i] >= 0)
            close(sigpipe_fds[i]);
        sigpipe_fds[i] = -1;
    }
}

static void read_signals(struct cand *c)
{
    unsigned char buf[64];
    ssize_t n;

    while ((n = read(sigpipe_fds[0], buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == SIGTERM || buf[i] == SIGINT) {
                say(c, "%s received", buf[i] == SIGTERM ? "SIGTERM" : "SIGINT");
                push_type(c, ELECT_EV_TERM);
            }
        }
    }
    reap_child(c);
}

static void read_zk(struct cand *c)
{
    struct ctl_zk_event zev;
    int changed = 0;

    while (c->zk != NULL && ctl_zk_next_event(c->zk, &zev)) {
        struct elect_event ev = event(ELECT_EV_CHANGED);

        /* watches that fire together need one read, not one each */
        if (zev.kind == CTL_ZK_EV_NODE && changed++)
            continue;

        switch (zev.kind) {
        case CTL_ZK_EV_CONNECTED:
            ev.type = ELECT_EV_CONNECTED;
            ev.session = ctl_zk_session_id(c->zk);
            ev.timeout_ms = ctl_zk_session_timeout(c->zk);
            c->next_beat = ev.now_ms;    /* prove the session at once */
            say(c, "ZooKeeper session 0x%llx connected (timeout %d ms)",
                (unsigned long long)ev.session, ev.timeout_ms);
            break;
        case CTL_ZK_EV_DISCONNECTED:
            ev.type = ELECT_EV_DISCONNECTED;
            ev.contact_ms = c->contact_ms;
            say(c, "ZooKeeper connection lost");
            break;
        case CTL_ZK_EV_AUTH_FAILED:
            c->auth_failed_ms = ev.now_ms;
            say(c, "ZooKeeper refused zk-auth-digest: the session is dead");
            ev.type = ELECT_EV_EXPIRED;
            break;
        case CTL_ZK_EV_EXPIRED:
            ev.type = ELECT_EV_EXPIRED;
            say(c, "ZooKeeper session expired");
            break;
        case CTL_ZK_EV_NODE:
            break;
        }
        push(c, &ev);
        if (ev.type == ELECT_EV_EXPIRED)
            break;                   /* OPEN replaces the handle: the rest is moot */
    }
}

/* Prove the session: an exists on ROOT answered means the server heard us
 * when we sent it. */
static void heartbeat(struct cand *c, uint64_t now)
{
    int t = c->e.timeout_ms > 0 ? c->e.timeout_ms : c->t->session_timeout_ms;
    struct ctl_znode n;
    char err[ERRLEN];

    if (c->zk == NULL || !c->e.connected) {
        /* not yet: a CONNECTED event read but not stepped yet must not
         * push the first proof a whole period back */
        c->next_beat = now + 50;
        return;
    }
    c->next_beat = now + (uint64_t)(t / 4 > 50 ? t / 4 : 50);
    if (ctl_zk_read(c->zk, c->root, 0, &n, err, sizeof(err)) != CTL_ZK_LOST)
        c->contact_ms = now;
    ctl_znode_free(&n);
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return b != 0 && b < a ? b : a;
}

/* Wait for the next event or timer, and queue what happened. */
static void wait_events(struct cand *c)
{
    struct pollfd p[2] = { { .fd = sigpipe_fds[0], .events = POLLIN },
                           { .fd = c->zk ? ctl_zk_event_fd(c->zk) : -1, .events = POLLIN } };
    uint64_t now = util_now_ms(), next = earliest(c->next_check, c->next_beat);
    int wait;

    if (c->e.paused)
        next = earliest(next, c->next_pause);
    next = earliest(next, c->e.retry_ms);
    if (c->e.state == ELECT_FENCED)
        next = earliest(next, c->e.deadline_ms);
    wait = next > now ? (int)(next - now) : 0;
    if (poll(p, 2, wait > 1000 ? 1000 : wait) < 0 && errno != EINTR)
        say(c, "poll: %s", strerror(errno));
    read_signals(c);
    read_zk(c);
    now = util_now_ms();
    if (now >= c->next_check) {
        c->next_check = now + (uint64_t)c->o->check_interval_ms;
        if (c->o->exec_argv == NULL || c->child > 0)
            check_redis(c);
    }
    if (now >= c->next_beat)
        heartbeat(c, now);
    if (c->e.paused && now >= c->next_pause)
        (void)pause_self(c);
    push_type(c, ELECT_EV_TICK);
}

/* ---- entry ---------------------------------------------------------------- */

void ctl_candidate_root(const char *znode, char *out, size_t outlen)
{
    size_t n = strlen(znode), k = strlen("/" ELECT_ACK_NAME);

    if (n > k && strcmp(znode + n - k, "/" ELECT_ACK_NAME) == 0)
        n -= k;
    while (n > 1 && znode[n - 1] == '/')
        n--;
    snprintf(out, outlen, "%.*s", (int)n, znode);
}

static int setup(struct cand *c, const struct ctl_target *t, const struct ctl_candidate_opts *o)
{
    memset(c, 0, sizeof(*c));
    c->t = t;
    c->o = o;
    c->reported = -1;
    ctl_candidate_root(t->znode, c->root, sizeof(c->root));
    if (strlen(c->root) + 32 > sizeof(c->ack)) {
        fprintf(stderr, "rzproxy-ctl: election root %s is too long\n", c->root);
        return -1;
    }
    snprintf(c->ack, sizeof(c->ack), "%s/%s", strcmp(c->root, "/") ? c->root : "",
             ELECT_ACK_NAME);
    snprintf(c->prefix, sizeof(c->prefix), "%s/%s", strcmp(c->root, "/") ? c->root : "",
             ELECT_BALLOT_PREFIX);
    c->h.conf = o->conf;
    c->h.timeout_ms = o->timeout_ms;
    c->h.peer_timeout_ms = PEER_TIMEOUT_MS;
    c->h.say = say_handover;
    c->h.ctx = c;
    elect_init(&c->e, o->advertise);
    c->shown_state = ELECT_IDLE;
    return 0;
}

int ctl_candidate_run(const struct ctl_target *t, const struct ctl_candidate_opts *o)
{
    struct cand *c = xcalloc(1, sizeof(*c));
    int rc;

    if (setup(c, t, o) != 0 || setup_signals() != 0) {
        free(c);
        return CTL_EXIT_FAIL;
    }
    say(c, "standing in %s for redis %s (session timeout %d ms asked, checks every %d ms, "
        "%d failures = down)", c->root, o->redis, t->session_timeout_ms, o->check_interval_ms,
        o->check_failures);
    if (o->exec_argv != NULL && start_child(c) != 0) {
        restore_signals();
        free(c);
        return CTL_EXIT_FAIL;
    }
    push_type(c, ELECT_EV_START);
    while (c->e.state != ELECT_DONE) {
        drain(c);
        if (c->e.state != ELECT_DONE)
            wait_events(c);
    }
    stop_child(c);
    ctl_zk_close(c->zk);
    ctl_redis_close(c->r);
    rc = c->e.exit_code;
    say(c, "exiting (status %d)", rc);
    restore_signals();
    free(c);
    return rc;
}
