/*
 * replica: a server a pool with `read-from replicas` may send reads to.
 *
 * The znode names the replicas (redis_failover's "slaves"); a probe asks
 * each one every tick what it is. A replica takes reads only while it says
 * it is a replica in the history of the master the pool forwards writes to
 * (the same replication id: addresses can differ through NAT or names, the
 * id cannot; while the pool is gated, the master it last forwarded to),
 * its link is up, and it is no further behind than replica-max-lag: its
 * replication offset is
 * matched against the master's offsets of the last few seconds (sampled by
 * the master's probe every tick), and its lag is how long ago the master
 * was where the replica is now. Never measured per command.
 *
 * A replica has session groups of its own (group.h), like the master's:
 * reads of a client in db 3 go to a replica connection in db 3.
 */
#ifndef RZ_REPLICA_H
#define RZ_REPLICA_H

#include <stdint.h>
#include <sys/queue.h>

#include "group.h"

struct pool;
struct probe;
struct probe_report;

enum replica_state {
    REPLICA_CHECKING = 0,            /* named; no answer to a check yet */
    REPLICA_OK,                      /* takes reads */
    REPLICA_LAGGING,                 /* behind more than replica-max-lag */
    REPLICA_ELSEWHERE,               /* not a replica of the pool's master (role, master,
                                        or its link down) */
    REPLICA_DOWN,                    /* does not answer */
    REPLICA_NSTATES,
};

struct replica {
    struct pool *pool;
    char host[256];
    int port;
    enum replica_state state;
    int64_t lag_ms;                  /* last measured, -1 = unknown */
    long long offset;                /* slave_repl_offset, last seen */
    struct probe *probe;
    struct group_list groups;        /* its session groups */
    int ngroups;
    uint64_t reads;                  /* commands sent to it */
    int named;                       /* in the latest znode read (pool.c's mark and sweep) */
    TAILQ_ENTRY(replica) link;       /* pool->replicas */
};

TAILQ_HEAD(replica_list, replica);

struct replica *replica_new(struct pool *p, const char *host, int port);
/* Its connections close (those owing replies drain on the pool's retired
 * list), its probe stops. */
void replica_free(struct replica *r);
void replica_tick(struct replica *r, uint64_t now_ms);
/* A connection to it failed: no reads until a check says otherwise. */
void replica_conn_failed(struct replica *r);
/* Replies owed on its connections: reads go to the replica owing fewest. */
int replica_outstanding(const struct replica *r);
const char *replica_state_name(enum replica_state s);

/* The state a check's report puts a replica in, given the master's
 * replication id ("" while not known) and the replica's lag (-1: the
 * master's offsets are not known yet). Pure: unit tests drive it. */
enum replica_state replica_judge(const struct probe_report *r, const char *master_replid,
                                 int64_t lag_ms, int max_lag_ms);

#endif
