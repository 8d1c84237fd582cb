/*
 * ctl_doc: the bytes rzproxy-ctl writes into the master znode. Pure: no
 * ZooKeeper, no I/O, so the unit tests drive it directly.
 *
 * A znode keeps the format it has (DESIGN section 3):
 *
 *   plain   "host:port" (or "[v6]:port"), exactly, no newline.
 *   json    redis_failover's document. "master" is set to the new master;
 *           the new master leaves "slaves", the old master joins it (once);
 *           every other key (e.g. "unavailable", or keys we do not know)
 *           is kept as it was, in its order. Written compact, like
 *           redis_failover's own to_json: {"master":"h:p","slaves":[...]}.
 */
#ifndef RZ_CTL_DOC_H
#define RZ_CTL_DOC_H

#include <stddef.h>

#include "util.h"
#include "znode.h"

/* The format to write: a fixed conf format (plain/json) wins, otherwise what
 * the current data looks like (JSON when its first non-blank byte is '{');
 * no data at all (missing or empty znode) is plain. */
enum znode_format ctl_doc_format(const char *data, size_t len, enum znode_format conf_fmt);

/*
 * The new znode bytes naming new_master, in format fmt (PLAIN or JSON),
 * derived from the current data (NULL/0 for none). old_master ("h:p", or
 * NULL when there is none) joins "slaves" in JSON. If the current data is
 * not a JSON object, a fresh document is written and *fresh (if not NULL)
 * is set to 1. Returns a malloc'd NUL-terminated string (length in *outlen),
 * or NULL with the reason in err.
 */
char *ctl_doc_rewrite(const char *data, size_t len, enum znode_format fmt,
                      const char *new_master, const char *old_master, size_t *outlen,
                      int *fresh, char *err, size_t errlen) RZ_MUSTCHECK;

/* The strings in the JSON document's "slaves" array, xstrdup'd into out
 * (at most max; the caller frees each). Not JSON, no array: 0. */
int ctl_doc_slaves(const char *data, size_t len, char **out, int max);

/* "host:port", "[v6]:port" or redis_failover's bare "v6:port": split into
 * host (without brackets) and port. 0, or -1 if it is none of those. */
int ctl_doc_split(const char *s, char *host, size_t hostlen, int *port) RZ_MUSTCHECK;

/* Do a and b name the same node (host compared without case)? 0 if either
 * does not parse. */
int ctl_doc_same_node(const char *a, const char *b);

#endif
