/*
 * ctl_failover: `rzproxy-ctl failover --to NEW`, the fenced choreography of
 * DESIGN section 1, and the seed's unsafe order (--seed-order) kept only so
 * a test can show what it loses. See ctl_failover.c for the steps and what
 * each failure leaves behind.
 */
#ifndef RZ_CTL_FAILOVER_H
#define RZ_CTL_FAILOVER_H

#include "ctl.h"
#include "ctl_redis.h"
#include "ctl_zk.h"

#define CTL_FAILOVER_TIMEOUT_MS 5000    /* --timeout default */
#define CTL_FAILOVER_PAUSE_EXTRA_MS 10000 /* CLIENT PAUSE lasts --timeout + this */

struct ctl_failover_opts {
    const char *to;                  /* new master "h:p" (validated) */
    const char *from;                /* old master "h:p", or NULL: the znode's */
    const char **replicas;           /* --replica "h:p" (validated), nreplicas of them */
    int nreplicas;
    int timeout_ms;                  /* bounds each wait for NEW (preflight, offset) */
    int seed_order;                  /* 1: the seed's unsafe order, no fencing */
    const struct ctl_redis_conf *redis; /* TLS and AUTH for every redis connection; NULL:
                                        plain, no AUTH */
};

/* Run it against t's znode over the open session zk, printing one line per
 * step on stdout. Returns an enum ctl_exit. */
int ctl_failover_run(const struct ctl_target *t, struct ctl_zk *zk,
                     const struct ctl_failover_opts *o);

#endif
