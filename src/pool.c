#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "backend.h"
#include "client.h"
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "proxy.h"

#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 2000

struct pool *pool_new(struct conf_pool *cf, char *err, size_t errlen)
{
    struct pool *p;
    char host[256];
    int port;

    if (cf->master == NULL ||
        util_parse_hostport(cf->master, host, sizeof(host), &port, err, errlen) < 0) {
        if (cf->master == NULL)
            snprintf(err, errlen, "pool %s has no master", cf->name);
        return NULL;
    }
    p = xcalloc(1, sizeof(*p));
    p->name = xstrdup(cf->name);
    p->cf = cf;
    snprintf(p->master_host, sizeof(p->master_host), "%s", host);
    p->master_port = port;
    p->nshared = cf->backend_connections;
    TAILQ_INIT(&p->held);
    p->shared = xcalloc((size_t)p->nshared, sizeof(*p->shared));
    return p;
}

int pool_listen(struct pool *p, char *err, size_t errlen)
{
    p->listeners = xcalloc((size_t)p->cf->nlisten, sizeof(*p->listeners));
    for (int i = 0; i < p->cf->nlisten; i++) {
        p->listeners[i] = listener_new(p, p->cf->listen[i], err, errlen);
        if (p->listeners[i] == NULL)
            return -1;
        p->nlisteners = i + 1;
        log_notice(p->name, "listening on %s, master %s:%d", p->cf->listen[i], p->master_host,
                   p->master_port);
    }
    return 0;
}

void pool_stop_listening(struct pool *p)
{
    for (int i = 0; i < p->nlisteners; i++)
        listener_free(p->listeners[i]);
    free(p->listeners);
    p->listeners = NULL;
    p->nlisteners = 0;
}

void pool_close_backends(struct pool *p)
{
    for (int i = 0; i < p->nshared; i++) {
        if (p->shared[i] != NULL)
            backend_release(p->shared[i], "shutting down");
    }
}

void pool_free(struct pool *p)
{
    pool_stop_listening(p);
    pool_close_backends(p);
    free(p->shared);
    free(p->name);
    free(p);
}

const char *pool_unavailable(struct pool *p)
{
    if (p->backoff_until_ms != 0 && util_now_ms() < p->backoff_until_ms)
        return "master unreachable";
    return NULL;
}

void pool_hold(struct pool *p, struct client *c)
{
    TAILQ_INSERT_TAIL(&p->held, c, wait_link);
    p->nheld++;
}

void pool_unhold(struct pool *p, struct client *c)
{
    TAILQ_REMOVE(&p->held, c, wait_link);
    p->nheld--;
}

/* A shared connection paused for one client delays every owner queued
 * behind it: past output-stall-timeout, that client goes. */
static void evict_stalled(struct pool *p, uint64_t now_ms)
{
    uint64_t limit = (uint64_t)proxy.conf->output_stall_timeout_ms;

    if (limit == 0)
        return;
    for (int i = 0; i < p->nshared; i++) {
        struct backend *be = p->shared[i];

        if (be != NULL && be->paused_for != NULL && now_ms - be->paused_since_ms >= limit) {
            struct client *c = be->paused_for;

            log_warn(p->name, "client %llu (%s) left more than output-buffer-limit unread for "
                     "%d ms on a shared connection: disconnecting it (output-stall-timeout)",
                     (unsigned long long)c->id, c->peer, proxy.conf->output_stall_timeout_ms);
            client_close(c, "output-stall-timeout");
        }
    }
}

void pool_cron(struct pool *p, uint64_t now_ms)
{
    uint64_t limit = (uint64_t)p->cf->block_timeout_ms;
    int usable = pool_unavailable(p) == NULL;
    struct client *c;

    /* Waking only schedules: each client leaves the list itself when it
     * runs, so the list is not changed under this loop. */
    TAILQ_FOREACH(c, &p->held, wait_link) {
        if (usable || now_ms - c->held_since_ms >= limit)
            client_wake(c);
    }
    evict_stalled(p, now_ms);
}

struct backend *pool_shared_backend(struct pool *p, const struct client *c)
{
    /* Spread clients by id: stable, cheap, and even enough; but keep away
     * from a connection paused for a slow reader while another is free. */
    int slot = (int)(c->id % (uint64_t)p->nshared);

    for (int i = 0; i < p->nshared; i++) {
        struct backend *be = p->shared[(slot + i) % p->nshared];

        if (be == NULL || be->paused_for == NULL) {
            slot = (slot + i) % p->nshared;
            break;
        }
    }
    if (p->shared[slot] == NULL)
        p->shared[slot] = backend_connect(p, NULL, slot);
    return p->shared[slot];
}

void pool_backend_connected(struct pool *p)
{
    if (p->backoff_ms != 0)
        log_notice(p->name, "master %s:%d reachable again", p->master_host, p->master_port);
    p->backoff_ms = 0;
    p->backoff_until_ms = 0;
}

void pool_backend_connect_failed(struct pool *p, const char *reason)
{
    if (p->backoff_ms == 0)
        log_warn(p->name, "master %s:%d unreachable: %s (retrying with backoff)",
                 p->master_host, p->master_port, reason);
    p->backoff_ms = p->backoff_ms == 0 ? BACKOFF_FIRST_MS : p->backoff_ms * 2;
    if (p->backoff_ms > BACKOFF_MAX_MS)
        p->backoff_ms = BACKOFF_MAX_MS;
    p->backoff_until_ms = util_now_ms() + (uint64_t)p->backoff_ms;
}

void pool_backend_gone(struct pool *p, struct backend *be)
{
    if (be->slot >= 0 && be->slot < p->nshared && p->shared[be->slot] == be)
        p->shared[be->slot] = NULL;
}

void pool_info(struct pool *p, struct evbuffer *buf)
{
    int open = 0;

    for (int i = 0; i < p->nshared; i++)
        open += p->shared[i] != NULL;
    evbuffer_add_printf(buf,
                        "# Pool\r\npool:%s\r\nmaster:%s:%d\r\nmaster_source:static\r\n"
                        "state:%s\r\nbackend_sharing:%s\r\nshared_connections:%d/%d\r\n"
                        "clients:%d\r\nclients_held:%d\r\nclients_accepted:%llu\r\ncommands:%llu\r\n"
                        "tryagain_replies:%llu\r\nbackend_connects:%llu\r\n"
                        "backend_failures:%llu\r\n",
                        p->name, p->master_host, p->master_port,
                        pool_unavailable(p) ? "UNREACHABLE" : "READY",
                        p->cf->backend_sharing ? "yes" : "no", open, p->nshared, p->nclients, p->nheld,
                        (unsigned long long)p->stats.clients_accepted,
                        (unsigned long long)p->stats.commands,
                        (unsigned long long)p->stats.tryagain,
                        (unsigned long long)p->stats.backend_connects,
                        (unsigned long long)p->stats.backend_failures);
}
