/*
 * pool: one logical Redis master behind one or more listen addresses. It
 * knows the current master, owns the shared backend connections to it and
 * decides whether a command may be forwarded right now (routing, gating).
 */
#ifndef RZ_POOL_H
#define RZ_POOL_H

#include <stdint.h>
#include <sys/queue.h>

#include "util.h"

struct conf_pool;
struct backend;
struct client;
struct listener;
struct evbuffer;

struct pool_stats {
    uint64_t clients_accepted;       /* connections accepted since start */
    uint64_t commands;               /* requests forwarded to the master */
    uint64_t tryagain;               /* -TRYAGAIN replies sent */
    uint64_t backend_connects;       /* backend connections opened */
    uint64_t backend_failures;       /* backend connects refused / connections lost */
};

struct pool {
    char *name;
    struct conf_pool *cf;            /* this pool's settings (owned by proxy.conf) */
    char master_host[256];           /* current master */
    int master_port;
    struct backend **shared;         /* backend-connections slots, NULL = not open */
    int nshared;
    struct listener **listeners;
    int nlisteners;
    uint64_t backoff_until_ms;       /* after a failed connect: refuse until then */
    int backoff_ms;                  /* next backoff step, 0 = none */
    int nclients;                    /* live clients of this pool */
    TAILQ_HEAD(, client) held;       /* clients holding a command for a master */
    int nheld;
    struct pool_stats stats;
};

struct pool *pool_new(struct conf_pool *cf, char *err, size_t errlen);
/* Bind every listen address. Fails on the first one that cannot bind. */
int pool_listen(struct pool *p, char *err, size_t errlen) RZ_MUSTCHECK;
void pool_stop_listening(struct pool *p);
/* Close the shared connections; their owners get errors for what is
 * outstanding. */
void pool_close_backends(struct pool *p);
/* Free the pool; its clients must be gone already. */
void pool_free(struct pool *p);

/* NULL if commands may go to the master now, else the -TRYAGAIN reason. */
const char *pool_unavailable(struct pool *p);

/* The shared connection a client without outstanding replies should use,
 * opened on demand. */
struct backend *pool_shared_backend(struct pool *p, const struct client *c);

/* on-no-master block: park a client until a master is usable. */
void pool_hold(struct pool *p, struct client *c);
void pool_unhold(struct pool *p, struct client *c);
/* Periodic: wake held clients when the master may be usable again or
 * their block-timeout has passed. */
void pool_cron(struct pool *p, uint64_t now_ms);

/* Called by backend.c. */
void pool_backend_connected(struct pool *p);
void pool_backend_connect_failed(struct pool *p, const char *reason);
void pool_backend_gone(struct pool *p, struct backend *be);

/* Append "key:value\r\n" lines about this pool to buf. */
void pool_info(struct pool *p, struct evbuffer *buf);

#endif
