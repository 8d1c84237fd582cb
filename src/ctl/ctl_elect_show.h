/*
 * ctl_elect_show: what `rzproxy-ctl show` prints about an election root
 * (the zk gem's layout, ctl_elect.h): the leader its leader_ack names, the
 * ballots lowest first, and each ballot's server as it answers (role,
 * offset). Only reads: ZooKeeper over the ctl's session, each server with
 * INFO replication (bounded).
 */
#ifndef RZ_CTL_ELECT_SHOW_H
#define RZ_CTL_ELECT_SHOW_H

#include "ctl_redis.h"
#include "ctl_zk.h"

/* Is path an election root: does it have a ballot* or leader_ack child?
 * 1, 0, or -1 when it cannot be read (err). */
int ctl_elect_show_is_root(struct ctl_zk *zk, const char *path, char *err, size_t errlen);

/* Print the election under root as `key: value` lines: election, leader,
 * leader_session, ballots, then "ballot N: NAME ADDR session 0xID STATE"
 * per ballot, lowest first (STATE: the server's role, offset, replication
 * id and, for a replica, its master and link; or "unreachable: why").
 * conf: TLS and AUTH for the servers; conf_err, when conf could not be
 * made, is printed instead of asking them. Returns 0, or -1 (message on
 * stderr) when ZooKeeper cannot be read. */
int ctl_elect_show(struct ctl_zk *zk, const char *root, const struct ctl_redis_conf *conf,
                   const char *conf_err);

#endif
