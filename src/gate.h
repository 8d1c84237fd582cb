/*
 * gate: may a pool forward commands right now? The trust rules of
 * DESIGN.md section 2 as one state machine per ZooKeeper-sourced pool.
 *
 * zk.c turns library callbacks into gate events; pool.c feeds them here and
 * acts on the new state (hold or release clients, switch master). Pure
 * logic, no I/O and no clock: unit tests drive it with synthetic events.
 *
 * Only READY forwards. READY means: the session is connected, and the last
 * read of the znode in this connection produced a master whose mzxid is not
 * older than anything applied before.
 */
#ifndef RZ_GATE_H
#define RZ_GATE_H

#include <stdint.h>

#include "znode.h"

enum gate_state {
    GATE_INIT = 0,           /* no session yet */
    GATE_CONNECTING,         /* a session is being established */
    GATE_SYNCING,            /* connected (or told of a change): reading the znode */
    GATE_READY,              /* forwarding to `master` */
    GATE_NO_NODE,            /* the znode does not exist */
    GATE_NO_MASTER,          /* the znode names no master */
    GATE_BAD_DATA,           /* the znode does not parse */
    GATE_READ_ERROR,         /* reading the znode failed (e.g. not authorized) */
    GATE_STALE,              /* not rewritten for longer than znode-max-age */
    GATE_DISCONNECTED,       /* lost the ZooKeeper connection; the watch cannot fire */
    GATE_EXPIRED,            /* session expired (told, or by our own timer) */
    GATE_AUTH_FAILED,        /* ZooKeeper refused our credentials */
    GATE_FENCED,             /* the named master answered -READONLY: it is a replica;
                                gated until the znode changes */
};
#define GATE_NSTATES (GATE_FENCED + 1)

enum gate_event_type {
    GATE_EV_SESSION_OPENING,     /* a new session handle was created */
    GATE_EV_CONNECTED,           /* session (re)connected: a sync+read is under way */
    GATE_EV_DISCONNECTED,        /* connection lost; the session may survive */
    GATE_EV_GRACE_OVER,          /* zk-disconnect-grace passed while disconnected */
    GATE_EV_EXPIRED,             /* session expired (library or own timer) */
    GATE_EV_AUTH_FAILED,
    GATE_EV_NODE_CHANGED,        /* watch: data changed or node created: re-reading */
    GATE_EV_NODE_DELETED,        /* watch: node deleted */
    GATE_EV_READ_NONODE,         /* exists: no such node (exist watch armed) */
    GATE_EV_READ_DATA,           /* get: data parsed (result, master, mzxid) */
    GATE_EV_READ_ERROR,          /* a read failed for a reason other than the session */
    GATE_EV_STALE,               /* znode-max-age passed since the last rewrite */
    GATE_EV_MASTER_READONLY,     /* the master refused a write: our view is stale */
};

struct gate_event {
    enum gate_event_type type;
    enum znode_result result;    /* READ_DATA */
    struct znode_master master;  /* READ_DATA with ZNODE_MASTER */
    int64_t mzxid;               /* READ_DATA */
    int32_t version;             /* READ_DATA */
    int64_t mtime_ms;            /* READ_DATA: when the znode was last written (epoch ms) */
};

struct gate {
    enum gate_state state;
    int grace;                   /* zk-disconnect-grace > 0: READY survives a disconnect
                                    until GRACE_OVER */
    int connected;               /* session connected, not lost since */
    int64_t mzxid;               /* highest mzxid applied, -1 = none */
    int64_t fenced_mzxid;        /* FENCED: the znode version that named a replica */
    int32_t version;             /* version of that read */
    int has_master;
    struct znode_master master;  /* the master READY forwards to */
    uint64_t master_changes;     /* times `master` took a new value */
};

void gate_init(struct gate *g, int grace);

/* Apply one event. Returns 1 when `master` changed (a new value to forward
 * to), else 0. The new state is g->state. */
int gate_step(struct gate *g, const struct gate_event *ev);

/* "READY", "NO_NODE", ... */
const char *gate_state_name(enum gate_state s);
/* The -TRYAGAIN reason for a gating state, NULL for READY. */
const char *gate_reason(enum gate_state s);

#endif
