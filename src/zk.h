/*
 * zk: the one ZooKeeper session of the process, and the watch on each
 * pool's znode.
 *
 * libzookeeper_mt runs its own IO and completion threads. Its callbacks only
 * copy what they got into a queue and wake the loop; everything else
 * happens here on the loop thread, which turns session events, watch events
 * and read results into gate events for the pools (see gate.h).
 */
#ifndef RZ_ZK_H
#define RZ_ZK_H

#include <stdint.h>

#include "util.h"

struct evbuffer;
struct pool;

/* Open the session if any pool reads a znode. Never fails for an
 * unreachable ensemble (the pools stay gated and it keeps trying); fails
 * only for a host string the library rejects. */
int zk_start(char *err, size_t errlen) RZ_MUSTCHECK;

/* Close the session cleanly (SIGTERM) and free everything. */
void zk_stop(void);

/* Gate a pool and re-read its znode (after sync): our view may be stale. */
void zk_resync(struct pool *p);
/* Re-read (after sync) without gating first: the caller already gated. */
void zk_reread(struct pool *p);

/*
 * Call before trusting READY. If the loop has not run its 100 ms cron for
 * longer than ZK_STALL_MS (the process was stopped, swapped or starved),
 * events may be waiting that say the master changed or the session died:
 * handle what the library already delivered, then gate every ZooKeeper
 * pool and re-read its znode (sync first) before forwarding again.
 */
#define ZK_STALL_MS 500
void zk_check_stall(uint64_t now_ms);

/* A pool added by a reload starts watching its znode; -1 if there is no
 * session to add it to (no `zookeeper` at start). */
int zk_add_pool(struct pool *p) RZ_MUSTCHECK;
/* A pool removed by a reload: forget its watch. */
void zk_remove_pool(struct pool *p);

/* "key:value\r\n" lines about the session, for PROXY INFO. */
void zk_info(struct evbuffer *buf);

struct zk_status {
    int started;                 /* some pool reads a znode */
    int connected;
    int64_t session_id;          /* of the last connected session, 0 = none yet */
    int timeout_ms;              /* negotiated */
    uint64_t connects;           /* CONNECTED events seen */
};
void zk_status(struct zk_status *out);

#endif
