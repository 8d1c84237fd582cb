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
    CTL_ZK_ERROR,                    /* anything else; err says what */
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
