/*
 * client: one application connection to the proxy.
 */
#ifndef RZ_CLIENT_H
#define RZ_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/util.h>

#include "clientcmd.h"
#include "cmd.h"
#include "group.h"
#include "io.h"
#include "resp.h"
#include "session.h"

struct pool;
struct backend;
struct evbuffer;
struct client_keep;

enum client_state {
    CLIENT_ACTIVE = 0,       /* parsing and forwarding */
    CLIENT_WAIT_REPLIES,     /* the next request needs every outstanding reply first */
    CLIENT_WAIT_BACKEND,     /* the backend's output is full: wait for it to drain */
    CLIENT_WAIT_OUTPUT,      /* our output to the client is full: wait for it to read */
    CLIENT_HELD,             /* no usable master: held (on-no-master block) */
    CLIENT_CLOSING,          /* flushing a last reply, then close */
    CLIENT_ZOMBIE,           /* socket closed; outstanding shared replies are dropped */
};

struct client {
    uint64_t id;                 /* for logs, and to spread clients over shared connections */
    struct pool *pool;
    struct io_conn io;           /* the socket; not live once closed */
    char peer[64];               /* "ip:port" or "unix" */
    enum client_state state;
    struct resp_reqparser *parser;
    struct resp_request req;     /* framed but not yet dispatched (have_req) */
    int have_req;
    struct session sess;
    struct session_state st;       /* session state: db, protocol, user (what a new
                                    connection for this client is set up with) */
    struct group *grp;           /* shared route: the group of st (a reference), looked
                                    up at the first command that needs it */
    int moving;                  /* a SELECT/AUTH/HELLO is in flight: */
    struct session_state next;   /*   the state on success */
    int next_set_name;           /*   HELLO ... SETNAME: the name on success */
    char *next_name;
    char *refusal;               /* the master refused to set up a connection this
                                    client waited for: its error line, */
    struct session_state refused;  /* and the state (with password) it refused */
    int no_lookahead;            /* the refusal was of a state further down the client's
                                    run of SELECT/AUTH/HELLO: judge this one as it is */
    struct clientcmd_names names;/* CLIENT SETNAME / SETINFO, answered by the proxy */
    int pinned;                  /* has (or will get) its own backend connection */
    const char *pin_why;         /* what pinned it (PROXY CLIENTS) */
    int eof;                     /* the client half-closed: finish what it sent, close */
    uint64_t created_ms;
    uint64_t ncmds;              /* commands received (PROXY CLIENTS) */
    uint64_t last_write_ms;      /* read-after-write-ms: its last command to the master */
    struct backend *be;          /* where its outstanding replies are (pinned: its own) */
    uint32_t outstanding;        /* replies still to come */
    struct backend *waiting_on;  /* in that backend's waiters list (WAIT_BACKEND) */
    uint64_t held_since_ms;      /* first held without a command forwarded since, 0 = not */
    struct backend *paused;      /* a backend paused reading until our output drains */
    char *fatal;                 /* protocol error to send once replies are in, then close */
    uint64_t last_active_ms;     /* last byte received, for the idle timeout */
    struct client_keep *keep;    /* the only command in flight, kept in case a replica
                                    refuses it (block mode); reused, never shrinks */
    struct evbuffer *retry;      /* a refused command to send again, before any other */
    int pending;                 /* on proxy.pending */
    int free_me;                 /* pending: free instead of resume */
    TAILQ_ENTRY(client) link;    /* proxy.clients */
    TAILQ_ENTRY(client) pending_link; /* proxy.pending */
    TAILQ_ENTRY(client) wait_link;    /* backend waiters, or the pool's held list */
};

/* Take over an accepted socket. Rejects it (maxclients, shutdown) itself. */
void client_accept(struct pool *p, evutil_socket_t fd, const char *peer);

/* Called by backend.c while it reads replies. */
void client_deliver(struct client *c, struct evbuffer *from, size_t len);
void client_reply_done(struct client *c);
/* The reply for one outstanding command will never come: answer `err`
 * (a full RESP error line) in its place, or nothing if err is NULL. */
void client_reply_failed(struct client *c, const char *err);
/* The master answered -READONLY: the command never ran. `kept` says c kept
 * its bytes (sent with SESSION_EXP_RETRY): then, if it is still c's only
 * command in flight, it is sent again to the next master; otherwise c gets
 * -TRYAGAIN in its place. */
void client_reply_refused(struct client *c, int kept);
/* The pinned connection went raw: its replies are no longer counted. */
void client_replies_untracked(struct client *c);
/* Session state: a SELECT/AUTH/HELLO sent with SESSION_EXP_MOVE is
 * settled (ok: answered without error); a RESET succeeded; the master
 * refused to set up a connection c waits for (`line`: its error reply). */
void client_move_done(struct client *c, int ok);
void client_reset_done(struct client *c);
void client_setup_refused(struct client *c, const char *line, const struct session_state *st);
/* The backend connection c used is gone. If it had been established, c may
 * have lost state or replies: close it once the replies already queued are
 * written. If it never connected, c simply gets a new one next time. */
void client_backend_closed(struct client *c, int was_connected, const char *why);
/* Something c waited for may have changed: re-run it from the loop. */
void client_wake(struct client *c);
int client_output_full(const struct client *c);

void client_close(struct client *c, const char *fmt, ...) RZ_PRINTF(2, 3);

/* Process-wide hooks for rzproxy.c. */
void client_init_loop(void);
void client_cron(uint64_t now_ms);
/* The pool's master changed: close pinned clients tied to the old one. */
void client_master_changed(struct pool *p);
void client_shutdown_begin(void);
/* A pool removed by a reload: close its clients; then count the ones not
 * freed yet (the pool goes once none is left). */
void client_close_pool(struct pool *p, const char *why);
int client_count_pool(const struct pool *p);
int client_count_pinned(const struct pool *p);
/* PROXY CLIENTS: one line per client of the pool, CLIENT LIST style. */
void client_list(const struct pool *p, struct evbuffer *out);
/* /metrics: call fn once per distinct lib-name among the pool's clients
 * ("" for clients that sent none) with how many clients have it. */
void client_count_libs(const struct pool *p, void (*fn)(const char *lib, int n, void *arg),
                       void *arg);
int client_all_idle(void);
void client_free_all(void);

#endif
