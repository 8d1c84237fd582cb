#include "group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "backend.h"
#include "client.h"
#include "conf.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"
#include "replica.h"

/* ---- groups ---------------------------------------------------------------- */

static struct group_list *list_of(struct pool *p, struct replica *r, int **count)
{
    *count = r != NULL ? &r->ngroups : &p->ngroups;
    return r != NULL ? &r->groups : &p->groups;
}

struct group *group_get(struct pool *p, struct replica *r, const struct session_state *st)
{
    int *count;
    struct group_list *list = list_of(p, r, &count);
    struct group *g;

    TAILQ_FOREACH(g, list, link) {
        if (!session_state_same(&g->st, st))
            continue;
        if (!g->proven && !session_state_same_cred(&g->st, st))
            session_state_copy(&g->st, st);
        return g;
    }
    if (*count >= p->cf->max_session_groups)
        return NULL;
    return group_create(p, r, st);
}

struct group *group_create(struct pool *p, struct replica *r, const struct session_state *st)
{
    int *count;
    struct group_list *list = list_of(p, r, &count);
    struct group *g;
    char what[160];

    g = xcalloc(1, sizeof(*g));
    g->id = ++p->next_group_id;
    g->pool = p;
    g->replica = r;
    session_state_init(&g->st);
    session_state_copy(&g->st, st);
    g->nconns = p->cf->backend_connections;
    g->conns = xcalloc((size_t)g->nconns, sizeof(*g->conns));
    g->unused_since_ms = util_now_ms();
    TAILQ_INSERT_TAIL(list, g, link);
    (*count)++;
    session_state_describe(st, what, sizeof(what));
    log_info(p->name, "session group g%llu (%s) created%s%s", (unsigned long long)g->id, what,
             r != NULL ? " on replica " : "", r != NULL ? r->host : "");
    return g;
}

void group_ref(struct group *g)
{
    g->refs++;
    g->unused_since_ms = 0;
}

void group_unref(struct group *g)
{
    if (--g->refs == 0)
        g->unused_since_ms = util_now_ms();
}

struct backend *group_backend(struct group *g, const struct client *c)
{
    /* Spread clients by id: stable, cheap, and even enough; but keep away
     * from a connection paused for a slow reader while another is free. */
    int slot = (int)(c->id % (uint64_t)g->nconns);

    for (int i = 0; i < g->nconns; i++) {
        struct backend *be = g->conns[(slot + i) % g->nconns];

        if (be == NULL || be->paused_for == NULL) {
            slot = (slot + i) % g->nconns;
            break;
        }
    }
    if (g->conns[slot] == NULL)
        g->conns[slot] = backend_connect(g->pool, NULL, g, slot, &g->st);
    return g->conns[slot];
}

struct group *group_find_open(struct pool *p,
                              int (*fits)(const void *arg, const struct session_state *st),
                              const void *arg)
{
    struct group *g, *best = NULL;

    TAILQ_FOREACH(g, &p->groups, link) {
        if (group_open_backends(g) > 0 && fits(arg, &g->st) &&
            (best == NULL || g->refs > best->refs))
            best = g;
    }
    return best;
}

struct backend *group_backend_open(struct group *g, const struct client *c)
{
    struct backend *connecting = NULL;

    for (int i = 0; i < g->nconns; i++) {
        struct backend *be = g->conns[i];

        if (be == NULL)
            continue;
        if (be->state == BACKEND_CONNECTED && be->paused_for == NULL)
            return be;
        if (be->state == BACKEND_CONNECTING && connecting == NULL)
            connecting = be;
    }
    return connecting != NULL ? connecting : group_backend(g, c);
}

void group_backend_gone(struct group *g, struct backend *be)
{
    if (be->slot >= 0 && be->slot < g->nconns && g->conns[be->slot] == be)
        g->conns[be->slot] = NULL;
}

void group_setup_done(struct group *g, int ok)
{
    g->proven = ok;
}

void group_retire_backends(struct group *g)
{
    for (int i = 0; i < g->nconns; i++) {
        struct backend *be = g->conns[i];

        if (be == NULL)
            continue;
        g->conns[i] = NULL;
        be->slot = -1;
        be->group = NULL;
        be->replica = NULL;         /* the replica may go: the connection keeps to_replica */
        be->retired_ms = util_now_ms();
        if (be->qlen == 0) {
            backend_release(be, "master changed");
        } else {
            be->retired = 1;
            TAILQ_INSERT_TAIL(&g->pool->retired, be, retired_link);
        }
    }
}

int group_open_backends(const struct group *g)
{
    int n = 0;

    for (int i = 0; i < g->nconns; i++)
        n += g->conns[i] != NULL;
    return n;
}

void group_free(struct group *g)
{
    struct pool *p = g->pool;
    int *count;
    struct group_list *list = list_of(p, g->replica, &count);

    for (int i = 0; i < g->nconns; i++) {
        if (g->conns[i] != NULL)
            backend_release(g->conns[i], "session group closed");
    }
    TAILQ_REMOVE(list, g, link);
    (*count)--;
    log_info(p->name, "session group g%llu closed", (unsigned long long)g->id);
    session_state_free(&g->st);
    free(g->conns);
    free(g);
}
