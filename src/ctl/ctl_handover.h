/*
 * ctl_handover: what an election candidate does to redis-servers when the
 * leadership moves: the steps of the fenced failover (DESIGN section 1:
 * CLIENT PAUSE WRITE, waiting until a server holds another's offset in the
 * same history, SLAVEOF), arranged for a winner that promotes itself, a
 * follower, and a leader that steps down. No ZooKeeper here: the candidate
 * (ctl_candidate.c) decides when; this module knows how. Every call is
 * bounded (the connect and command timeouts, and timeout_ms for waits).
 *
 * Addresses are "host:port" as the ballots carry them.
 */
#ifndef RZ_CTL_HANDOVER_H
#define RZ_CTL_HANDOVER_H

#include <stddef.h>

#include "ctl_redis.h"
#include "ctl_repl.h"
#include "util.h"

#define HANDOVER_PAUSE_EXTRA_MS 10000  /* a fence's pause lasts timeout_ms + this */
#define HANDOVER_POLL_MS 10            /* offset waits poll this often */

struct handover {
    const struct ctl_redis_conf *conf; /* TLS and AUTH for every server; NULL: plain */
    int timeout_ms;                  /* bound of each wait for an offset */
    int peer_timeout_ms;             /* connect and command bound for the other servers */
    void (*say)(void *ctx, const char *msg);  /* one line per step */
    void *ctx;
};

enum handover_result {
    HANDOVER_DONE = 0,               /* promoted / followed / demoted */
    HANDOVER_YIELD,                  /* promote: another server holds writes we lack */
    HANDOVER_FAILED,                 /* our redis did not do it (err says why) */
};

/* A connection to addr with h's TLS and credentials, or NULL (err). */
struct ctl_redis *handover_connect(const struct handover *h, const char *addr, int timeout_ms,
                                   char *err, size_t errlen) RZ_MUSTCHECK;

/*
 * Make self (our redis, advertised as self_addr) the master without losing
 * a write another live server holds:
 *   1. every peer that answers and says role:master (a previous leader) is
 *      fenced: CLIENT PAUSE WRITE, then its offset is read;
 *   2. if a peer holds writes self lacks (ctl_repl_ahead): when it is
 *      self's own master, wait (timeout_ms) until self has them; otherwise,
 *      or on timeout, HANDOVER_YIELD (the fenced peers are unpaused);
 *   3. SLAVEOF NO ONE on self, CLIENT UNPAUSE on self;
 *   4. SLAVEOF self on each fenced peer, then CLIENT UNPAUSE there: the
 *      writes it held fail with -READONLY (they never ran).
 * Peers that do not answer within peer_timeout_ms are skipped (said so).
 */
enum handover_result handover_promote(const struct handover *h, struct ctl_redis *self,
                                      const char *self_addr, const char *const *peers,
                                      int npeers, char *err, size_t errlen) RZ_MUSTCHECK;

/* SLAVEOF leader on self, unless self already replicates from it; then
 * CLIENT UNPAUSE when unpause is set. HANDOVER_DONE or _FAILED (err). */
enum handover_result handover_follow(const struct handover *h, struct ctl_redis *self,
                                     const char *leader, int unpause, char *err, size_t errlen)
    RZ_MUSTCHECK;

/* Demote self to target, only if target holds every write self has (else
 * self stays as it is, paused): SLAVEOF target, CLIENT UNPAUSE. */
enum handover_result handover_demote(const struct handover *h, struct ctl_redis *self,
                                     const char *target, char *err, size_t errlen) RZ_MUSTCHECK;

/* Wait (timeout_ms) until addr holds every write of mine. 0, or -1 (err
 * says what addr last showed). */
int handover_wait_holds(const struct handover *h, const char *addr, const struct ctl_repl *mine,
                        char *err, size_t errlen) RZ_MUSTCHECK;

#endif
