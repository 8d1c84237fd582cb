/*
 * backend: one connection to a Redis master, and the FIFO of who owns each
 * reply still to come on it.
 *
 * The same structure serves both routes of the data path: a shared
 * connection carries many clients' commands and its FIFO names a different
 * owner per reply; a pinned connection belongs to one client (`pinned`) and
 * every byte read goes to it. Multiplexing is a routing decision, not a
 * second data path.
 */
#ifndef RZ_BACKEND_H
#define RZ_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "io.h"
#include "resp.h"
#include "session.h"

struct evbuffer;
struct pool;
struct client;
struct group;
struct replica;
struct session_state;

enum backend_state {
    BACKEND_CONNECTING,          /* connect() in progress; writes queue up */
    BACKEND_CONNECTED,
    BACKEND_CLOSED,              /* failed or closed; freed before the callback returns */
};

struct backend_entry {
    struct client *owner;        /* whose reply this is (a zombie's is dropped) */
    struct session_expect exp;   /* what the command waits for */
};

struct backend {
    uint64_t id;                 /* for logs */
    struct pool *pool;
    struct io_conn io;
    enum backend_state state;
    struct client *pinned;       /* the one owner of a pinned connection, else NULL */
    struct group *group;         /* shared: the session group whose slot it fills;
                                    NULL if pinned or retired */
    struct replica *replica;     /* a connection to a replica (reads only), NULL = to
                                    the master; NULL once retired */
    int to_replica;              /* it was opened to a replica */
    int slot;                    /* index in group->conns, -1 if pinned or retired */
    uint64_t epoch;              /* pool->epoch when opened: its master */
    int retired;                 /* shared, to a previous master: close once drained */
    TAILQ_ENTRY(backend) retired_link;
    struct backend_entry *q;     /* ring buffer FIFO of reply owners */
    uint32_t qhead, qlen, qcap;  /* qcap is a power of two */
    struct resp_scan scan;       /* reply framing state */
    int raw;                     /* replies no longer countable: forward as they come */
    int setup_left;              /* set-up replies still to come (AUTH, HELLO, SELECT,
                                    ROLE): CONNECTING until they are all in */
    int setup_total;             /* set-up commands sent (without ROLE) */
    int setup_role;              /* the last set-up command is verify-role's ROLE */
    struct session_state *setup_st;/* the session state it is set up in (group.c), until
                                    the set-up is done */
    struct client *paused_for;   /* reading stopped until this client's output drains */
    uint64_t paused_since_ms;    /* when paused_for was set */
    uint64_t nsent;              /* client commands sent on it: while 0,
                                    no client state or command can be lost with it */
    int answered;                /* a command's reply came in good order */
    struct client *partial;      /* got the first part of the reply being read */
    size_t held;                 /* scanned bytes at the front of the input not yet
                                    passed on: the start of an error line */
    uint64_t retired_ms;         /* when its master stopped being current, 0 = is current */
    TAILQ_HEAD(, client) waiters;/* clients waiting for our output to drain */
};

/* Open a connection to the pool's current master, set up in session state
 * st before any client command goes on it. pinned is its only owner, or
 * NULL for a shared connection in slot `slot` of group g. */
struct backend *backend_connect(struct pool *p, struct client *pinned, struct group *g, int slot,
                                const struct session_state *st);

/* Move len bytes from the front of `from` to the master and, unless exp is
 * NULL (no reply expected), record that c owns the reply. */
void backend_send(struct backend *be, struct client *c, struct evbuffer *from, size_t len,
                  const struct session_expect *exp);
/* A pinned connection whose replies can no longer be counted (MONITOR, SYNC,
 * replies switched off around a blocking call): from now on every byte goes
 * to the owner as it comes, and nothing is outstanding. */
void backend_set_raw(struct backend *be);

/* Output to the master is over the limit: the caller must wait. */
int backend_output_full(const struct backend *be);
void backend_add_waiter(struct backend *be, struct client *c);
void backend_remove_waiter(struct backend *be, struct client *c);

/* The owner a read was paused for has drained its output. */
void backend_resume(struct backend *be);

/* Close after a failure: every outstanding reply's owner gets an error
 * first. The backend is freed before this returns. */
void backend_close(struct backend *be, const char *reason);
/* backend_close() for a connection to a previous master that still owed
 * replies when drain-timeout ran out. */
void backend_close_undrained(struct backend *be);
/* Close when nothing failed (the pinned owner went away, shutdown). Owners
 * of outstanding replies are treated as in backend_close(). */
void backend_release(struct backend *be, const char *reason);
/* Close an idle pinned connection whose owner moves to another one: the
 * owner is not told (it keeps going). */
void backend_detach(struct backend *be, const char *reason);

#endif
