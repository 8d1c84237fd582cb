/*
 * pool: one logical Redis master behind one or more listen addresses. It
 * knows the current master, owns the shared backend connections to it and
 * decides whether a command may be forwarded right now (routing, gating).
 */
#ifndef RZ_POOL_H
#define RZ_POOL_H

#include <stdint.h>
#include <sys/queue.h>

#include "ballot.h"
#include "gate.h"
#include "group.h"
#include "replica.h"
#include "util.h"
#include "zkacl.h"

struct conf_pool;
struct backend;
struct ssl_ctx_st;
struct probe;
struct resp_request;
struct gate_event;
struct client;
struct listener;
struct evbuffer;

struct pool_stats {
    uint64_t clients_accepted;       /* connections accepted since start */
    uint64_t commands;               /* requests forwarded to the master */
    uint64_t tryagain;               /* -TRYAGAIN replies sent */
    uint64_t readonly_retries;       /* commands refused by a read-only master, held and
                                        sent again (block mode) */
    uint64_t backend_connects;       /* backend connections opened */
    uint64_t backend_failures;       /* backend connects refused / connections lost */
    uint64_t master_changes;         /* switches to a new master */
    uint64_t request_bytes;          /* client request bytes forwarded to the master */
    uint64_t reply_bytes;            /* reply bytes delivered to clients */
    int64_t last_switch_ms;          /* znode event -> first command to the new master, -1 */
    uint64_t replica_reads;          /* commands sent to replicas */
};

struct pool {
    char *name;
    struct conf_pool *cf;            /* this pool's settings (owned by proxy.conf) */
    char master_host[256];           /* current master */
    int master_port;
    struct group_list groups;        /* session groups of shared connections */
    int ngroups;
    struct group *group0;            /* the state of a new connection (db 0, RESP2, no
                                        AUTH): every client starts here; never freed */
    uint64_t next_group_id;
    struct listener **listeners;
    int nlisteners;
    uint64_t backoff_until_ms;       /* after a failed connect: refuse until then */
    int backoff_ms;                  /* next backoff step, 0 = none */
    const char *down_reason;         /* -TRYAGAIN reason while backing off */
    char last_error[256];            /* why the last connect failed, for /healthz */
    struct session_state cred;       /* backend-user and its password (user NULL = none):
                                        what a connection without a client's AUTH uses */
    struct ssl_ctx_st *tls;          /* the TLS context (tls yes), NULL otherwise */
    char *unusable;                  /* backend-password-file or tls-* could not be loaded:
                                        why; the pool is gated until a reload fixes it */
    /* read-from replicas (replica.c, probe.c) */
    struct replica_list replicas;    /* the znode's replicas */
    int nreplicas;
    int from_ballots;                /* an election's: its ballots name them */
    struct znode_node ballots[BALLOT_MAX];   /* the last complete listing */
    int nballots;
    struct probe *master_probe;      /* the master's offsets; its command table */
    char master_replid[48];          /* the master's replication id, "" = not known */
    struct {                         /* the master's replication offset, each tick */
        uint64_t ms;
        long long offset;
    } offsets[64];
    int noffsets, offsets_head;
    char **readonly;                 /* command names the master flags read-only, sorted */
    size_t nreadonly;
    int nclients;                    /* live clients of this pool */
    int zk;                          /* master source is a znode: `gate` decides */
    struct gate gate;                /* ZooKeeper trust state (zk pools) */
    uint64_t epoch;                  /* bumped at every master change */
    uint64_t last_change_ms;         /* when the znode's mzxid last moved (znode-max-age) */
    int64_t logged_mzxid;            /* bad data already logged for this mzxid */
    int routine_sync;                /* in SYNCING straight from READY (a rewrite) */
    uint64_t event_ms;               /* last znode event, or leaving READY: a switch is
                                        timed from it */
    uint64_t gated_since_ms;         /* gate not READY since, 0 = READY */
    uint64_t gated_ms_total;         /* time spent gated before gated_since_ms */
    int64_t znode_mtime_ms;          /* mtime of the znode data applied, 0 = none */
    enum zkacl_verdict znode_acl;    /* may anyone change the znode: the last ACL read
                                        (a warning for operators, never gates) */
    int znode_acl_read;              /* an ACL read completed: later ones log only a
                                        change of verdict */
    int switch_pending;              /* new master, no command forwarded to it yet */
    TAILQ_HEAD(, backend) retired;   /* shared connections to a previous master, draining */
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
/* Removed by a reload: stop listening and watching, close its backends and
 * clients. Its conf is about to be freed: cf is cleared. Free it with
 * pool_free() once client_count_pool() is 0. */
void pool_retire(struct pool *p);

/* NULL if the pool may forward at all (a zk pool: gate READY), else the
 * -TRYAGAIN reason. */
const char *pool_gated(const struct pool *p);
/* Gated only for a ZooKeeper round trip (SYNCING). */
int pool_gate_transient(const struct pool *p);
/* NULL if a new connection to the master may be tried now, else the
 * -TRYAGAIN reason (gated, or backing off after a refused connect). */
const char *pool_unavailable(struct pool *p);

/* Read backend-password-file and build the TLS context from the pool's
 * conf: at start, and again at every reload (SIGHUP), so a rotated password
 * or certificate is picked up. What cannot be loaded gates the pool
 * (logged); on a reload, a TLS context that fails to load keeps the one in
 * use. */
void pool_load_secrets(struct pool *p);
/* Why the pool is not healthy, for /healthz and /info, or NULL: gated, its
 * settings unusable, or its last connect to the master failed (until one
 * succeeds; pool_unavailable() only says whether to try one now). */
const char *pool_health(const struct pool *p);
/* Detail for /healthz when pool_health() is not NULL, or "". */
const char *pool_unavailable_detail(const struct pool *p);

/* A backend answered -READONLY: the master we use is a replica now. A zk
 * pool gates (FENCED) until the znode names a master in a newer version. */
void pool_master_readonly(struct pool *p);

/* From zk.c: a gate event for this pool; and a znode read, with the bytes
 * for the log when they do not name a master. */
void pool_gate_event(struct pool *p, const struct gate_event *ev);
void pool_znode_read(struct pool *p, const struct gate_event *ev, const char *data, size_t len,
                     const char *why);
/* From zk.c after each ACL read of the znode: the verdict, the entry that
 * makes it OPEN (else NULL), why it is UNKNOWN (else NULL). Logs the first
 * verdict and every change; never gates. */
void pool_znode_acl(struct pool *p, enum zkacl_verdict v, const char *entry, const char *why);


/* on-no-master block: park a client until a master is usable. */
void pool_hold(struct pool *p, struct client *c);
void pool_unhold(struct pool *p, struct client *c);
/* Periodic: wake held clients when the master may be usable again or
 * their block-timeout has passed. */
void pool_cron(struct pool *p, uint64_t now_ms);

/* A command was just forwarded: closes a pending switch measurement. */
void pool_forwarded(struct pool *p);

/* Called by backend.c. */
void pool_backend_connected(struct pool *p);
void pool_backend_connect_failed(struct pool *p, const char *reason);
/* The master refused the pool's own credentials: the next connect failure
 * is reported to clients as that, not as an unreachable master. */
void pool_backend_credentials_refused(struct pool *p);
void pool_backend_gone(struct pool *p, struct backend *be);

/* ---- read-from replicas ---- */

/* The znode named these replicas (the master's read from it): start
 * checking the new ones, stop reading from those no longer named. */
void pool_set_replicas(struct pool *p, const struct znode_master *m);
/* The election's ballots, all read (zk.c): the replicas are those not at
 * the master's address; from now on the leader_ack's reads name none. */
void pool_set_ballots(struct pool *p, const struct znode_node *ballots, int n);
/* The replica a read should go to (healthy, owing the fewest replies), or
 * NULL: the master takes it. */
struct replica *pool_pick_replica(struct pool *p);
/* The server flags this command read-only (COMMAND, asked of the master). */
int pool_command_readonly(const struct pool *p, const struct resp_request *req);
/* How far behind a replica at this replication offset is, in ms, against
 * the master's recent offsets; -1 while they are not known. */
int64_t pool_replica_lag_ms(const struct pool *p, long long offset);

/* Shared backend connections open, all session groups. */
int pool_shared_open(const struct pool *p);

/* Append "key:value\r\n" lines about this pool to buf. */
void pool_info(struct pool *p, struct evbuffer *buf);

/* What /metrics, /info and /healthz report. State: the gate state of a zk
 * pool; "READY" or "UNREACHABLE" for a static one. */
const char *pool_state_name(struct pool *p);
uint64_t pool_gated_ms(const struct pool *p, uint64_t now_ms);

#endif
