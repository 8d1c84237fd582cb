/*
 * group: the shared backend connections that carry one session state.
 *
 * A Redis connection carries state a client can change: the database
 * (SELECT), the protocol (HELLO 2|3) and the ACL user (AUTH, HELLO AUTH).
 * Every client library sends some of these on connect, so pinning on them
 * would mean no real application ever shares a connection; sharing one
 * connection between clients in different states would mean one client
 * reading another's database. So a pool keeps one group per state in use:
 * a few shared connections (backend-connections), each set up with AUTH,
 * HELLO and SELECT before any client command goes on it, opened on first
 * use and closed once the group has been unused for group-idle-timeout.
 *
 * A client belongs to the group of its state. SELECT, HELLO and AUTH move
 * it (client.c): the command goes to a connection of the group it asks
 * for, where success changes nothing and failure changes nothing either,
 * so the server judges every change and no connection's state ever
 * differs from its group's. A master switch leaves the groups in place and
 * retires their connections: members need no replay.
 *
 * The pool owns its groups (at most max-session-groups; beyond that a
 * client that would need another is pinned instead); the group owns its
 * connection slots; a connection reports to the pool (backend.c).
 */
#ifndef RZ_GROUP_H
#define RZ_GROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "session.h"

struct backend;
struct client;
struct evbuffer;
struct pool;
struct replica;

struct group {
    uint64_t id;                 /* for logs and PROXY CLIENTS ("shared:g<id>") */
    struct pool *pool;
    struct replica *replica;     /* whose connections: a replica's, NULL = the master's */
    struct session_state st;
    struct backend **conns;      /* backend-connections slots, NULL = not open */
    int nconns;
    int proven;                  /* a connection was set up with st's password: a client
                                    moving in with another one is judged on such a
                                    connection; until then, new connections use the
                                    password of the latest client moving in */
    int refs;                    /* clients in this state, and clients moving to it */
    uint64_t unused_since_ms;    /* refs == 0 since, 0 = in use */
    TAILQ_ENTRY(group) link;     /* pool->groups */
};

TAILQ_HEAD(group_list, group);

/* The group for state st on the master (r NULL) or on replica r, created
 * if there is room; NULL when there are max-session-groups already. The new
 * group has no reference. A group whose password is not proven takes st's. */
struct group *group_get(struct pool *p, struct replica *r, const struct session_state *st);
/* A new group for st, whatever the limit (the pool's default group). */
struct group *group_create(struct pool *p, struct replica *r, const struct session_state *st);
void group_ref(struct group *g);
void group_unref(struct group *g);
/* The connection a client with nothing outstanding should use, opened on
 * demand; a connection paused for a slow reader is avoided while another
 * slot is free. */
struct backend *group_backend(struct group *g, const struct client *c);
/* Among the master's groups with a connection open (or opening), the one
 * whose state satisfies fits() that most clients are in; NULL if none. */
struct group *group_find_open(struct pool *p,
                              int (*fits)(const void *arg, const struct session_state *st),
                              const void *arg);
/* A connection of g that is open already (connected and not paused, else
 * still connecting), for one command that may go on any of them; one is
 * opened only if none is. */
struct backend *group_backend_open(struct group *g, const struct client *c);
/* A connection of this group closed: free its slot. */
void group_backend_gone(struct group *g, struct backend *be);
/* A connection finished its set-up (ok), or the master refused it. */
void group_setup_done(struct group *g, int ok);
/* The master changed: every connection leaves its slot; those with replies
 * still to come go to the pool's retired list to drain. */
void group_retire_backends(struct group *g);
/* Connections open in this group. */
int group_open_backends(const struct group *g);
/* Close the group's connections and free it (no client may refer to it). */
void group_free(struct group *g);

#endif
