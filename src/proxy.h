/*
 * proxy: the process-wide state owned by the one event-loop thread.
 */
#ifndef RZ_PROXY_H
#define RZ_PROXY_H

#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct event;
struct evdns_base;
struct conf;
struct pool;
struct client;

TAILQ_HEAD(client_list, client);

struct proxy {
    struct event_base *base;     /* the loop; every socket lives here */
    struct evdns_base *dns;      /* async resolver for master host names, lazy */
    struct conf *conf;           /* current configuration */
    struct pool **pools;
    int npools;
    struct client_list clients;  /* every client, zombies included */
    int nclients;                /* clients counted against maxclients */
    uint64_t next_id;            /* client and backend ids, for logs */
    struct client_list pending;  /* clients with deferred work (resume, free) */
    struct event *wake;          /* runs the pending list after the callbacks */
    struct event *cron;          /* 100 ms housekeeping: timeouts, shutdown */
    int shutting_down;           /* SIGTERM seen: no accepts, draining */
    uint64_t shutdown_deadline_ms;
    uint64_t start_ms;
    uint64_t tick_ms;            /* last cron run: a gap means the process stalled */
};

extern struct proxy proxy;

#endif
