/*
 * ctl: what rzproxy-ctl's commands share: the znode they act on (resolved
 * from the conf file and the command line by ctl.c) and the exit codes.
 *
 *   ctl.c           main, options, conf, `show`, `set-master`
 *   ctl_failover.c  `failover` (DESIGN section 1)
 *   ctl_doc.c       the znode bytes to write
 *   ctl_zk.c        synchronous ZooKeeper
 *   ctl_redis.c     blocking redis commands
 */
#ifndef RZ_CTL_H
#define RZ_CTL_H

#include "znode.h"

struct conf_pool;

enum ctl_exit {
    CTL_EXIT_OK = 0,                 /* done */
    CTL_EXIT_FAIL = 1,               /* failed; the message says what state is left */
    CTL_EXIT_USAGE = 2,              /* bad command line: nothing was done */
};

/* The znode and how to reach it. */
struct ctl_target {
    const char *zookeeper;           /* "h:p,h:p[/chroot]" */
    const char *digest;              /* zk-auth-digest "user:password", "" = none */
    const char *znode;               /* absolute path of the master znode */
    const char *pool;                /* pool it came from, NULL with --znode alone */
    const struct conf_pool *cf;      /* that pool's directives (tls*, backend-*), or NULL */
    enum znode_format format;        /* the pool's znode-format (AUTO without a pool) */
    int session_timeout_ms;          /* zk-session-timeout to ask for */
    int verbose;                     /* -v: the ZooKeeper library's log on stderr */
};

#endif
