/*
 * ctl_candidate: `rzproxy-ctl candidate`, a process beside one redis-server
 * that stands in a ZooKeeper election (the zk gem's ZK::Election layout)
 * and makes its redis the master while it leads, a replica of the leader
 * otherwise. The decisions are ctl_elect's state machine; this module is
 * the loop around it: ZooKeeper (ctl_zk, fail-fast, watches), health
 * checks of the redis, signals, the --exec child, timers, and the actions
 * (ctl_handover for the redis side). Runs until SIGTERM/SIGINT.
 */
#ifndef RZ_CTL_CANDIDATE_H
#define RZ_CTL_CANDIDATE_H

#include "ctl.h"
#include "ctl_redis.h"

#define CTL_CANDIDATE_CHECK_MS 100   /* --check-interval default */
#define CTL_CANDIDATE_FAILURES 3     /* --check-failures default */
#define CTL_CANDIDATE_TIMEOUT_MS 5000 /* --timeout default */

struct ctl_candidate_opts {
    const char *redis;               /* "h:p" of the redis-server we stand for (validated) */
    const char *advertise;           /* "h:p" the others reach it at (ballot and ack data) */
    char **exec_argv;                /* --exec: the redis-server to start, NULL-terminated;
                                        NULL: it runs on its own */
    int timeout_ms;                  /* catch-up and handover waits */
    int check_interval_ms;           /* PING every ... */
    int check_failures;              /* ... and this many failures in a row: down */
    const struct ctl_redis_conf *conf;  /* TLS and AUTH for every redis connection */
};

/* Stand in the election rooted at t->znode (a trailing "/leader_ack" is
 * taken off) until stopped. Prints one line per event on stdout. Returns
 * the exit status: 0 after SIGTERM/SIGINT, 1 when the --exec child exited
 * or it could not start. */
int ctl_candidate_run(const struct ctl_target *t, const struct ctl_candidate_opts *o);

/* The election's root for a znode path: path without a trailing
 * "/leader_ack" (what a pool reads), into out. */
void ctl_candidate_root(const char *znode, char *out, size_t outlen);

#endif
