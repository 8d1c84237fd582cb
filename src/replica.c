#include "replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "conf.h"
#include "log.h"
#include "pool.h"
#include "probe.h"
#include "util.h"

static const char *const state_names[REPLICA_NSTATES] = {
    [REPLICA_CHECKING] = "checking", [REPLICA_OK] = "ok", [REPLICA_LAGGING] = "lagging",
    [REPLICA_ELSEWHERE] = "not-a-replica-of-the-master", [REPLICA_DOWN] = "down",
};

const char *replica_state_name(enum replica_state s)
{
    return s < REPLICA_NSTATES ? state_names[s] : "?";
}

enum replica_state replica_judge(const struct probe_report *r, const char *master_replid,
                                 int64_t lag_ms, int max_lag_ms)
{
    if (master_replid[0] == '\0' || lag_ms < 0)
        return REPLICA_CHECKING;
    if (r->is_master || !r->link_up || strcmp(r->replid, master_replid) != 0)
        return REPLICA_ELSEWHERE;
    return lag_ms > max_lag_ms ? REPLICA_LAGGING : REPLICA_OK;
}

static void set_state(struct replica *r, enum replica_state to)
{
    if (r->state == to)
        return;
    log_at(to == REPLICA_OK || r->state == REPLICA_CHECKING ? LOGL_INFO : LOGL_NOTICE,
           r->pool->name, "replica %s:%d %s -> %s (lag %lld ms)", r->host, r->port,
           replica_state_name(r->state), replica_state_name(to), (long long)r->lag_ms);
    r->state = to;
}

static void on_probe(void *owner, enum probe_event ev, const struct probe_report *rep)
{
    struct replica *r = owner;
    struct pool *p = r->pool;

    if (ev == PROBE_DOWN) {
        set_state(r, REPLICA_DOWN);
        return;
    }
    if (ev != PROBE_INFO)
        return;
    r->offset = rep->offset;
    r->lag_ms = rep->is_master ? -1 : pool_replica_lag_ms(p, rep->offset);
    set_state(r, replica_judge(rep, p->master_replid, r->lag_ms, p->cf->replica_max_lag_ms));
}

struct replica *replica_new(struct pool *p, const char *host, int port)
{
    struct replica *r = xcalloc(1, sizeof(*r));

    r->pool = p;
    snprintf(r->host, sizeof(r->host), "%s", host);
    r->port = port;
    r->lag_ms = -1;
    TAILQ_INIT(&r->groups);
    r->probe = probe_new(p, host, port, 0, on_probe, r);
    log_info(p->name, "replica %s:%d named by the znode: checking it", host, port);
    return r;
}

void replica_free(struct replica *r)
{
    struct group *g;

    log_info(r->pool->name, "replica %s:%d no longer named by the znode: no more reads",
             r->host, r->port);
    while ((g = TAILQ_FIRST(&r->groups)) != NULL) {
        group_retire_backends(g);
        group_free(g);
    }
    probe_free(r->probe);
    free(r);
}

void replica_tick(struct replica *r, uint64_t now_ms)
{
    probe_tick(r->probe, now_ms);
}

void replica_conn_failed(struct replica *r)
{
    set_state(r, REPLICA_DOWN);
}

int replica_outstanding(const struct replica *r)
{
    const struct group *g;
    int n = 0;

    TAILQ_FOREACH(g, &r->groups, link) {
        for (int i = 0; i < g->nconns; i++)
            n += g->conns[i] != NULL ? (int)g->conns[i]->qlen : 0;
    }
    return n;
}
