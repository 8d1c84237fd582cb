/*
 * ballot: the replicas of an election (DESIGN section 1b). A pool that
 * watches ROOT/leader_ack with read-from replicas reads from the other
 * candidates: each holds an ephemeral-sequential ROOT/ballot<10 digits>
 * whose data is its host:port (zk gem layout). The master's own ballot is
 * left out by address; one spelled differently is still left out by the
 * check every replica gets (it answers role:master).
 *
 * Pure: zk.c lists and reads the ballots, pool.c applies the result.
 */
#ifndef RZ_BALLOT_H
#define RZ_BALLOT_H

#include <stddef.h>

#include "znode.h"

/* The master's ballot is among them. */
#define BALLOT_MAX (ZNODE_MAX_REPLICAS + 1)

/* The election ROOT of a znode path ending in /leader_ack, into root.
 * 1 when it is one, 0 otherwise (root then ""). */
int ballot_root(const char *znode, char *root, size_t rootlen);

/* Of ROOT's children, the ballots ("ballot" and a sequence number), lowest
 * sequence first (the election's order), at most max: their indexes into
 * names go to idx. Returns how many; *left_out counts the ballots past max. */
int ballot_select(char *const *names, int n, int *idx, int max, int *left_out);

/* An election's replicas: every ballot but the one at the master's address,
 * at most ZNODE_MAX_REPLICAS, into out->replicas (out's master unchanged). */
void ballot_replicas(const struct znode_node *ballots, int n, const char *master_host,
                     int master_port, struct znode_master *out);

#endif
