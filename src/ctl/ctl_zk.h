/*
 * ctl_zk: a tiny synchronous ZooKeeper client for rzproxy-ctl, on
 * libzookeeper_mt's sync API (zoo_get, zoo_set, ...). The proxy never uses
 * it: its session (zk.c) is asynchronous and event driven.
 *
 * One session per run. ctl_zk_open() returns once the session is CONNECTED
 * (and digest credentials accepted), or fails after a bounded wait. Each
 * call then blocks until ZooKeeper answers; the library bounds that (a lost
 * connection fails pending requests with ZCONNECTIONLOSS). A create that
 * failed that way is retried once the session is back, and a retried create
 * that finds the node with our exact bytes counts as done.
 *
 * Results are one enum so callers do not need the library's codes; the
 * text of any other failure comes back in err.
 *
 * A long-running caller (the election candidate) opens the session with
 * ctl_zk_start() instead: it returns at once, and the session's events
 * (connected, disconnected, expired) and the watches it sets come out of
 * a queue whose descriptor the caller polls (ctl_zk_event_fd). The
 * library's threads only append to that queue. Such a session fails fast:
 * a call that loses the connection returns CTL_ZK_LOST instead of waiting
 * for the session to come back, so the caller decides what the loss means.
 */
#ifndef RZ_CTL_ZK_H
#define RZ_CTL_ZK_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct ctl_zk;                       /* opaque: a connected session */
struct ctl_zk_acl;                   /* opaque: a znode's ACL, as read */

enum ctl_zk_result {
    CTL_ZK_OK = 0,
    CTL_ZK_NO_NODE,                  /* node (or, for create, its parent) missing */
    CTL_ZK_NODE_EXISTS,              /* create: already there */
    CTL_ZK_BAD_VERSION,              /* set/delete: the version did not match */
    CTL_ZK_LOST,                     /* fail-fast session: connection lost or session gone;
                                        whether a write went through is unknown */
    CTL_ZK_ERROR,                    /* anything else; err says what */
};

/* Longest path a watch event carries (longer ones are cut: the caller
 * re-reads everything it watches on any event anyway). */
#define CTL_ZK_PATH_MAX 512

enum ctl_zk_event_kind {
    CTL_ZK_EV_CONNECTED,             /* session (re)connected: same session */
    CTL_ZK_EV_DISCONNECTED,          /* connection lost; the session may survive */
    CTL_ZK_EV_EXPIRED,               /* the session is gone: the handle is dead */
    CTL_ZK_EV_AUTH_FAILED,           /* credentials refused: the handle is dead */
    CTL_ZK_EV_NODE,                  /* a watch fired on path */
};

struct ctl_zk_event {
    enum ctl_zk_event_kind kind;
    char path[CTL_ZK_PATH_MAX];      /* CTL_ZK_EV_NODE: the node watched */
};

/* How ctl_zk_create_node creates. */
enum ctl_zk_mode {
    CTL_ZK_PERSISTENT,
    CTL_ZK_EPHEMERAL,                /* gone when the session ends */
    CTL_ZK_EPHEMERAL_SEQUENTIAL,     /* the same, name + a 10-digit sequence number */
};

/* A znode as read: data, the Stat fields the ctl uses, and its ACL. */
struct ctl_znode {
    int exists;                      /* 0: the node is missing (nothing else set) */
    char *data;                      /* malloc'd, NUL-terminated (data may hold NULs) */
    size_t len;                      /* bytes of data */
    int32_t version;                 /* data version (restarts at 0 on re-create) */
    int64_t czxid;                   /* zxid of the create */
    int64_t mzxid;                   /* zxid of the last data change */
    int64_t mtime_ms;                /* wall time of the last change, ms since epoch */
    int64_t ephemeral_owner;         /* session id owning an ephemeral node, else 0 */
    struct ctl_zk_acl *acl;          /* NULL unless asked for */
};

/* Connect to hosts ("h:p,h:p[/chroot]") and wait up to wait_ms for the
 * session. digest ("user:password", or NULL/"") is added and must be
 * accepted. verbose routes the library's own log lines to stderr; otherwise
 * they are dropped. NULL with the reason in err. */
struct ctl_zk *ctl_zk_open(const char *hosts, const char *digest, int session_timeout_ms,
                           int wait_ms, int verbose, char *err, size_t errlen) RZ_MUSTCHECK;

/* Close the session (the server forgets it at once). NULL is fine. */
void ctl_zk_close(struct ctl_zk *zk);

/*
 * Start a session without waiting for it: CTL_ZK_EV_CONNECTED (or
 * EXPIRED, AUTH_FAILED) comes out of the event queue. digest as for
 * ctl_zk_open; it is sent with the handshake, and a refusal ends the
 * session (CTL_ZK_EV_AUTH_FAILED). The session fails fast (see above).
 * NULL with the reason in err (the host string does not parse or resolve).
 */
struct ctl_zk *ctl_zk_start(const char *hosts, const char *digest, int session_timeout_ms,
                            int verbose, char *err, size_t errlen) RZ_MUSTCHECK;

/* The descriptor to poll for reading: readable while events are queued. */
int ctl_zk_event_fd(const struct ctl_zk *zk);

/* The next queued event into *ev: 1, or 0 when the queue is empty. Events
 * come out in the order the library delivered them. */
int ctl_zk_next_event(struct ctl_zk *zk, struct ctl_zk_event *ev);

/* The session's id (0 before the first CONNECTED) and its timeout as the
 * server granted it (the requested one before that), in ms. */
int64_t ctl_zk_session_id(struct ctl_zk *zk);
int ctl_zk_session_timeout(struct ctl_zk *zk);

/* Read path like ctl_zk_read (no ACL) and leave a watch on it: an event
 * for path comes out of the queue once it is created, changed or deleted.
 * A missing node is CTL_ZK_OK with out->exists == 0 (the watch then fires
 * on its creation). */
enum ctl_zk_result ctl_zk_watch(struct ctl_zk *zk, const char *path, struct ctl_znode *out,
                                char *err, size_t errlen) RZ_MUSTCHECK;

/* The names of path's children (malloc'd array of malloc'd strings, in no
 * order) into *names and their number into *n; free with
 * ctl_zk_names_free. A missing path is CTL_ZK_NO_NODE. With watch, an
 * event for path comes out of the queue when a child is added or removed. */
enum ctl_zk_result ctl_zk_children(struct ctl_zk *zk, const char *path, int watch, char ***names,
                                   int *n, char *err, size_t errlen) RZ_MUSTCHECK;
void ctl_zk_names_free(char **names, int n);

/* Create path in mode, with acl (NULL: the session's default, see
 * ctl_zk_create). created (unless NULL) gets the name the server gave it
 * (the sequence number appended for CTL_ZK_EPHEMERAL_SEQUENTIAL). */
enum ctl_zk_result ctl_zk_create_node(struct ctl_zk *zk, const char *path, const char *data,
                                      size_t len, enum ctl_zk_mode mode,
                                      const struct ctl_zk_acl *acl, char *created,
                                      size_t createdlen, char *err, size_t errlen) RZ_MUSTCHECK;

/* Create path and its missing parents as empty persistent nodes (default
 * ACL); nodes that exist are left as they are. */
enum ctl_zk_result ctl_zk_ensure_path(struct ctl_zk *zk, const char *path, char *err,
                                      size_t errlen) RZ_MUSTCHECK;

/* Read path into *out (cleared first; free with ctl_znode_free). A missing
 * node is CTL_ZK_OK with out->exists == 0. with_acl also reads the ACL; the
 * data and the ACL are read again until both come from the same version. */
enum ctl_zk_result ctl_zk_read(struct ctl_zk *zk, const char *path, int with_acl,
                               struct ctl_znode *out, char *err, size_t errlen) RZ_MUSTCHECK;

void ctl_znode_free(struct ctl_znode *n);

/* Set data if the node's version is still `version`; *new_version gets the
 * version written (may be NULL). */
enum ctl_zk_result ctl_zk_set(struct ctl_zk *zk, const char *path, const char *data, size_t len,
                              int32_t version, int32_t *new_version, char *err, size_t errlen)
    RZ_MUSTCHECK;

/* Delete the node if its version is still `version`. */
enum ctl_zk_result ctl_zk_delete(struct ctl_zk *zk, const char *path, int32_t version,
                                 char *err, size_t errlen) RZ_MUSTCHECK;

/* Create a persistent node. acl NULL: the default for this session (open,
 * or creator-only when digest credentials were given). */
enum ctl_zk_result ctl_zk_create(struct ctl_zk *zk, const char *path, const char *data, size_t len,
                                 const struct ctl_zk_acl *acl, char *err, size_t errlen)
    RZ_MUSTCHECK;

/* "world:anyone:cdrwa,digest:u:hash:cdrwa" for messages; "default" for NULL. */
void ctl_zk_acl_format(const struct ctl_zk_acl *acl, char *out, size_t outlen);

/* 1 if the ACL lets anyone change the znode (world:anyone with WRITE or
 * ADMIN, see zkacl.h), else 0 (also for NULL). */
int ctl_zk_acl_world_writable(const struct ctl_zk_acl *acl);

#endif
