#include "gate.h"

#include <string.h>

static const struct {
    const char *name;
    const char *reason;
} gate_names[] = {
    [GATE_INIT] = { "INIT", "zookeeper connecting" },
    [GATE_CONNECTING] = { "CONNECTING", "zookeeper connecting" },
    [GATE_SYNCING] = { "SYNCING", "zookeeper syncing" },
    [GATE_READY] = { "READY", NULL },
    [GATE_NO_NODE] = { "NO_NODE", "znode missing" },
    [GATE_NO_MASTER] = { "NO_MASTER", "no master in znode" },
    [GATE_BAD_DATA] = { "BAD_DATA", "bad data in znode" },
    [GATE_READ_ERROR] = { "READ_ERROR", "znode read failed" },
    [GATE_STALE] = { "STALE", "znode stale" },
    [GATE_DISCONNECTED] = { "DISCONNECTED", "zookeeper disconnected" },
    [GATE_EXPIRED] = { "EXPIRED", "zookeeper session expired" },
    [GATE_AUTH_FAILED] = { "AUTH_FAILED", "zookeeper auth failed" },
    [GATE_FENCED] = { "FENCED", "master is read-only" },
};

const char *gate_state_name(enum gate_state s)
{
    return gate_names[s].name;
}

const char *gate_reason(enum gate_state s)
{
    return gate_names[s].reason;
}

void gate_init(struct gate *g, int grace)
{
    memset(g, 0, sizeof(*g));
    g->state = GATE_INIT;
    g->grace = grace;
    g->mzxid = -1;
    g->fenced_mzxid = -1;
}

static int same_master(const struct znode_master *a, const struct znode_master *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* A read completed with data. Older than what we applied: a reordered
 * completion or a lagging server; never go backwards. */
static int apply_data(struct gate *g, const struct gate_event *ev)
{
    int changed = 0;

    if (ev->mzxid < g->mzxid)
        return 0;
    g->mzxid = ev->mzxid;
    g->version = ev->version;
    switch (ev->result) {
    case ZNODE_MASTER:
        /* The znode version that named a replica cannot open the gate;
         * only a newer one can. */
        if (ev->mzxid <= g->fenced_mzxid) {
            g->state = GATE_FENCED;
            return 0;
        }
        if (!g->has_master || !same_master(&g->master, &ev->master)) {
            g->master = ev->master;
            g->has_master = 1;
            g->master_changes++;
            changed = 1;
        }
        g->state = GATE_READY;
        break;
    case ZNODE_NO_MASTER:
        g->state = GATE_NO_MASTER;
        break;
    case ZNODE_BAD_DATA:
        g->state = GATE_BAD_DATA;
        break;
    }
    return changed;
}

int gate_step(struct gate *g, const struct gate_event *ev)
{
    switch (ev->type) {
    case GATE_EV_SESSION_OPENING:
        g->connected = 0;
        /* EXPIRED and AUTH_FAILED stay visible until a session works. */
        if (g->state != GATE_EXPIRED && g->state != GATE_AUTH_FAILED)
            g->state = GATE_CONNECTING;
        return 0;
    case GATE_EV_CONNECTED:
        g->connected = 1;
        g->state = GATE_SYNCING;     /* data read before is not trusted */
        return 0;
    case GATE_EV_DISCONNECTED:
        g->connected = 0;
        if (!(g->grace && g->state == GATE_READY))
            g->state = GATE_DISCONNECTED;
        return 0;
    case GATE_EV_GRACE_OVER:
        if (!g->connected && g->state == GATE_READY)
            g->state = GATE_DISCONNECTED;
        return 0;
    case GATE_EV_EXPIRED:
        g->connected = 0;
        g->state = GATE_EXPIRED;
        return 0;
    case GATE_EV_AUTH_FAILED:
        g->connected = 0;
        g->state = GATE_AUTH_FAILED;
        return 0;
    default:
        break;
    }
    /* Node events and reads count only inside a connected session: a
     * completion that arrives after a disconnect is stale. */
    if (!g->connected)
        return 0;
    switch (ev->type) {
    case GATE_EV_NODE_CHANGED:
        g->state = GATE_SYNCING;
        return 0;
    case GATE_EV_NODE_DELETED:
    case GATE_EV_READ_NONODE:
        g->state = GATE_NO_NODE;
        return 0;
    case GATE_EV_READ_DATA:
        return apply_data(g, ev);
    case GATE_EV_READ_ERROR:
        g->state = GATE_READ_ERROR;
        return 0;
    case GATE_EV_STALE:
        if (g->state == GATE_READY)
            g->state = GATE_STALE;
        return 0;
    case GATE_EV_MASTER_READONLY:
        if (g->state == GATE_READY || g->state == GATE_STALE || g->state == GATE_SYNCING) {
            g->fenced_mzxid = g->mzxid;
            g->state = GATE_FENCED;
        }
        return 0;
    default:
        return 0;
    }
}
