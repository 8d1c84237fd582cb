/*
 * ctl_handover: the redis side of an election's leadership change (see
 * ctl_handover.h). The order is the fenced failover's (DESIGN section 1),
 * with the winner doing to the previous leader what the director does to
 * the old master: pause it, let the new master catch up, promote, demote
 * it, unpause it.
 */
#include "ctl_handover.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_doc.h"

#define MAX_PEERS 64
#define ERRLEN 512

static void say(const struct handover *h, const char *fmt, ...) RZ_PRINTF(2, 3);

static void say(const struct handover *h, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (h->say != NULL)
        h->say(h->ctx, msg);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

struct ctl_redis *handover_connect(const struct handover *h, const char *addr, int timeout_ms,
                                   char *err, size_t errlen)
{
    char host[256];
    int port;

    if (ctl_doc_split(addr, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "'%s' is not host:port", addr);
        return NULL;
    }
    return ctl_redis_connect(host, port, timeout_ms, h->conf, NULL, err, errlen);
}

/* SLAVEOF addr on r. */
static int slaveof(struct ctl_redis *r, const char *addr, char *err, size_t errlen)
{
    char host[256];
    int port;

    if (ctl_doc_split(addr, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "'%s' is not host:port", addr);
        return -1;
    }
    return ctl_redis_replicate(r, host, port, err, errlen);
}

/* ---- promote ------------------------------------------------------------- */

struct peer {
    const char *addr;
    struct ctl_redis *r;             /* NULL: did not answer */
    struct ctl_repl repl;            /* read after the fence */
    int fenced;                      /* we paused it (it said role:master) */
};

/* Connect to each distinct peer, fence the masters, read every offset. */
static int survey(const struct handover *h, const char *self_addr, const char *const *addrs,
                  int n, struct peer *peers)
{
    char err[ERRLEN], desc[256];
    int np = 0;

    for (int i = 0; i < n && np < MAX_PEERS; i++) {
        struct peer *p = &peers[np];
        int dup = ctl_doc_same_node(addrs[i], self_addr);

        for (int j = 0; j < np && !dup; j++)
            dup = ctl_doc_same_node(addrs[i], peers[j].addr);
        if (dup || addrs[i][0] == '\0')
            continue;
        memset(p, 0, sizeof(*p));
        p->addr = addrs[i];
        np++;
        p->r = handover_connect(h, p->addr, h->peer_timeout_ms, err, sizeof(err));
        if (p->r == NULL || ctl_repl_read(p->r, &p->repl, err, sizeof(err)) != 0) {
            say(h, "peer %s does not answer (%s): not compared", p->addr, err);
            ctl_redis_close(p->r);
            p->r = NULL;
            continue;
        }
        if (strcmp(p->repl.role, "master") == 0) {
            /* a previous leader still taking writes: fence it first */
            if (ctl_redis_pause_writes(p->r, h->timeout_ms + HANDOVER_PAUSE_EXTRA_MS, err,
                               sizeof(err)) != 0 ||
                ctl_repl_read(p->r, &p->repl, err, sizeof(err)) != 0) {
                say(h, "peer %s is a master but could not be fenced (%s): not compared",
                    p->addr, err);
                ctl_redis_close(p->r);
                p->r = NULL;
                continue;
            }
            p->fenced = 1;
        }
        ctl_repl_format(&p->repl, desc, sizeof(desc));
        say(h, "peer %s: %s%s", p->addr, desc, p->fenced ? " (a master: writes paused)" : "");
    }
    return np;
}

static void release(const struct handover *h, struct peer *peers, int np)
{
    char err[ERRLEN];

    for (int i = 0; i < np; i++) {
        if (peers[i].fenced && ctl_redis_unpause(peers[i].r, err, sizeof(err)) != 0)
            say(h, "cannot unpause %s (%s): its pause ends by itself", peers[i].addr, err);
        peers[i].fenced = 0;
        ctl_redis_close(peers[i].r);
        peers[i].r = NULL;
    }
}

/* Wait until self holds target's writes. 0, or -1. */
static int catch_up(const struct handover *h, struct ctl_redis *self, const struct ctl_repl *target,
                    char *err, size_t errlen)
{
    uint64_t deadline = util_now_ms() + (uint64_t)h->timeout_ms;
    struct ctl_repl mine;

    do {
        if (ctl_repl_read(self, &mine, err, errlen) != 0)
            return -1;
        if (ctl_repl_holds(&mine, target))
            return 0;
        sleep_ms(HANDOVER_POLL_MS);
    } while (util_now_ms() < deadline);
    snprintf(err, errlen, "offset %lld of %lld after %d ms", (long long)mine.offset,
             (long long)target->offset, h->timeout_ms);
    return -1;
}

/* Is there a peer with writes we lack? Handle it: 0 go on, 1 yield. */
static int settle_ahead(const struct handover *h, struct ctl_redis *self, struct ctl_repl *mine,
                        struct peer *peers, int np)
{
    struct peer *best = NULL;
    char err[ERRLEN];

    /* the most advanced; of equals, our own master (fenced), from which
     * we can simply catch up instead of re-voting */
    for (int i = 0; i < np; i++) {
        struct peer *p = &peers[i];
        int own = p->fenced && ctl_doc_same_node(mine->master, p->addr);

        if (p->r == NULL || !ctl_repl_ahead(&p->repl, mine))
            continue;
        if (best == NULL || p->repl.offset > best->repl.offset ||
            (p->repl.offset == best->repl.offset && own))
            best = p;
    }
    if (best == NULL)
        return 0;
    if (!best->fenced || strcmp(mine->role, "slave") != 0 ||
        !ctl_doc_same_node(mine->master, best->addr)) {
        say(h, "%s holds writes ours lacks (offset %lld, ours %lld): giving it the election",
            best->addr, (long long)best->repl.offset, (long long)mine->offset);
        return 1;
    }
    say(h, "catching up with %s (offset %lld, ours %lld)", best->addr,
        (long long)best->repl.offset, (long long)mine->offset);
    if (catch_up(h, self, &best->repl, err, sizeof(err)) != 0) {
        say(h, "did not catch up with %s (%s): giving the election away", best->addr, err);
        return 1;
    }
    return ctl_repl_read(self, mine, err, sizeof(err)) == 0 ? 0 : 1;
}

enum handover_result handover_promote(const struct handover *h, struct ctl_redis *self,
                                      const char *self_addr, const char *const *addrs,
                                      int naddrs, char *err, size_t errlen)
{
    struct peer peers[MAX_PEERS];
    struct ctl_repl mine;
    char desc[256], why[ERRLEN];
    int np = survey(h, self_addr, addrs, naddrs, peers);

    if (ctl_repl_read(self, &mine, err, errlen) != 0) {
        release(h, peers, np);
        return HANDOVER_FAILED;
    }
    ctl_repl_format(&mine, desc, sizeof(desc));
    say(h, "ours: %s", desc);
    if (settle_ahead(h, self, &mine, peers, np)) {
        release(h, peers, np);
        return HANDOVER_YIELD;
    }
    if (strcmp(mine.role, "master") != 0 &&
        ctl_redis_replicate(self, NULL, 0, err, errlen) != 0) {
        release(h, peers, np);
        return HANDOVER_FAILED;
    }
    if (ctl_redis_unpause(self, why, sizeof(why)) != 0)
        say(h, "cannot unpause our redis: %s", why);
    say(h, "promoted our redis (SLAVEOF NO ONE) at offset %lld", (long long)mine.offset);
    for (int i = 0; i < np; i++) {
        if (!peers[i].fenced)
            continue;
        if (slaveof(peers[i].r, self_addr, why, sizeof(why)) != 0)
            say(h, "WARNING: previous master %s NOT demoted (%s): fence it by hand",
                peers[i].addr, why);
        else
            say(h, "previous master %s now replicates from us; its held writes fail with "
                "-READONLY", peers[i].addr);
    }
    release(h, peers, np);
    return HANDOVER_DONE;
}

/* ---- follow, demote, wait ------------------------------------------------ */

enum handover_result handover_follow(const struct handover *h, struct ctl_redis *self,
                                     const char *leader, int unpause, char *err, size_t errlen)
{
    struct ctl_repl mine;

    if (ctl_repl_read(self, &mine, err, errlen) != 0)
        return HANDOVER_FAILED;
    if (strcmp(mine.role, "slave") != 0 || !ctl_doc_same_node(mine.master, leader)) {
        if (slaveof(self, leader, err, errlen) != 0)
            return HANDOVER_FAILED;
        say(h, "our redis now replicates from %s (SLAVEOF)", leader);
    }
    if (unpause && ctl_redis_unpause(self, err, errlen) != 0)
        return HANDOVER_FAILED;
    return HANDOVER_DONE;
}

enum handover_result handover_demote(const struct handover *h, struct ctl_redis *self,
                                     const char *target, char *err, size_t errlen)
{
    struct ctl_repl mine, theirs;
    struct ctl_redis *t;
    char desc[256];

    if (target[0] == '\0') {
        snprintf(err, errlen, "no other candidate known");
        return HANDOVER_FAILED;
    }
    if (ctl_repl_read(self, &mine, err, errlen) != 0)
        return HANDOVER_FAILED;
    t = handover_connect(h, target, h->peer_timeout_ms, err, errlen);
    if (t == NULL || ctl_repl_read(t, &theirs, err, errlen) != 0) {
        ctl_redis_close(t);
        return HANDOVER_FAILED;
    }
    ctl_redis_close(t);
    if (!ctl_repl_holds(&theirs, &mine)) {
        ctl_repl_format(&theirs, desc, sizeof(desc));
        snprintf(err, errlen, "%s lacks writes ours has (%s, ours offset %lld)", target, desc,
                 (long long)mine.offset);
        return HANDOVER_FAILED;
    }
    return handover_follow(h, self, target, 1, err, errlen);
}

int handover_wait_holds(const struct handover *h, const char *addr, const struct ctl_repl *mine,
                        char *err, size_t errlen)
{
    uint64_t deadline = util_now_ms() + (uint64_t)h->timeout_ms;
    struct ctl_redis *r = NULL;
    struct ctl_repl theirs;
    char last[ERRLEN] = "no answer";

    do {
        if (r == NULL || !ctl_redis_alive(r)) {
            ctl_redis_close(r);
            r = handover_connect(h, addr, h->peer_timeout_ms, last, sizeof(last));
        }
        if (r != NULL && ctl_repl_read(r, &theirs, last, sizeof(last)) == 0) {
            if (ctl_repl_holds(&theirs, mine)) {
                ctl_redis_close(r);
                return 0;
            }
            ctl_repl_format(&theirs, last, sizeof(last));
        }
        sleep_ms(HANDOVER_POLL_MS);
    } while (util_now_ms() < deadline);
    ctl_redis_close(r);
    snprintf(err, errlen, "%s did not reach offset %lld within %d ms (last: %s)", addr,
             (long long)mine->offset, h->timeout_ms, last);
    return -1;
}
