/*
 * zkacl: may anyone change a znode? The answer read from its ACL. Pure
 * logic over the library's struct ACL_vector: no ZooKeeper calls, no
 * logging, so the proxy's warning (zk.c, pool.c), rzproxy-ctl `show` and
 * the unit tests share one definition.
 *
 * Whoever can change the master znode chooses where a pool's traffic goes.
 * An ACL entry for `world:anyone` (the id every client has, authenticated
 * or not) is dangerous when it grants:
 *
 *   WRITE   set the data: name any server as the master;
 *   ADMIN   set the ACL: grant oneself WRITE, then write.
 *
 * Not counted: READ (knowing the master changes nothing), CREATE and
 * DELETE, which on a znode govern its children (rzproxy reads none). The
 * znode itself is deleted and created under its parent's DELETE and CREATE:
 * a parent open to anyone lets anyone replace the znode, ACL and all.
 * rzproxy does not read the parent's ACL; the README says to lock it down
 * too. Other schemes (digest, ip, sasl, x509) name particular clients and
 * are never counted, even an `ip` range that happens to cover everyone.
 *
 * This is a warning, not a trust rule (DESIGN section 2): a verdict never
 * gates a pool.
 */
#ifndef RZ_ZKACL_H
#define RZ_ZKACL_H

#include <stddef.h>

struct ACL;
struct ACL_vector;

enum zkacl_verdict {
    ZKACL_UNKNOWN = -1,              /* not read (yet), or could not be read */
    ZKACL_CLOSED = 0,                /* no entry lets anyone change the znode */
    ZKACL_OPEN = 1,                  /* world:anyone has WRITE or ADMIN */
};

/* The index of the first entry that lets world:anyone change the znode
 * (WRITE or ADMIN), or -1 if none does. acl may be NULL (none). */
int zkacl_world_writable(const struct ACL_vector *acl);

/* "scheme:id:perms", perms as ZooKeeper's letters in zkCli.sh's order
 * ("world:anyone:cdrwa"); truncated to outlen-1, always NUL-terminated. */
void zkacl_format_entry(const struct ACL *a, char *out, size_t outlen);

/* Every entry, comma separated ("world:anyone:r,digest:u:hash:cdrwa"). */
void zkacl_format(const struct ACL_vector *acl, char *out, size_t outlen);

/* Deep copy (the library frees its vector when the completion returns);
 * free the copy with zkacl_free. */
void zkacl_copy(struct ACL_vector *dst, const struct ACL_vector *src);
void zkacl_free(struct ACL_vector *v);

#endif
