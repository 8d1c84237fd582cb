/*
 * znode: what the master znode's bytes say. Pure parsing: no ZooKeeper, no
 * logging, no allocation the caller must free, so zk.c, rzproxy-ctl and the
 * unit tests share one definition of "a master".
 *
 * Formats (DESIGN section 3):
 *
 *   plain   "host:port" or "[v6addr]:port", surrounding ASCII whitespace
 *           allowed ("10.0.0.1:6379\n"), nothing else.
 *   json    redis_failover's node manager document:
 *           {"master":"h:p","slaves":["h:p",...],"unavailable":[...]}
 *           "master" decides; "slaves" lists the replicas a pool with
 *           read-from replicas may read from (entries that are not
 *           plausible host:port strings, and those past ZNODE_MAX_REPLICAS,
 *           are left out, never an error); other keys are ignored.
 *   auto    JSON when the first non-whitespace byte is '{', else plain.
 *
 * Outcomes:
 *
 *   ZNODE_MASTER     a usable master.
 *   ZNODE_NO_MASTER  the writer says there is none: empty or whitespace-only
 *                    data, JSON "master" null or absent. Expected during a
 *                    failover (redis_failover writes "master":null when it has
 *                    no candidate).
 *   ZNODE_BAD_DATA   anything else: garbage, invalid JSON, a master that is
 *                    not a string or not a plausible host:port, the wrong
 *                    format for a fixed znode-format, NUL bytes, more than
 *                    ZNODE_MAX_LEN bytes.
 *
 * Both non-master outcomes gate the pool; they differ only in the state shown
 * (NO_MASTER vs BAD_DATA) and in the reason logged.
 */
#ifndef RZ_ZNODE_H
#define RZ_ZNODE_H

#include <stddef.h>

#include "util.h"

/* ZooKeeper refuses znodes above about 1 MiB (jute.maxbuffer); anything
 * larger did not come from a director. */
#define ZNODE_MAX_LEN (1024 * 1024)

/* A good size for why: it holds every reason whole except a jansson error
 * that quotes many non-printable bytes (each shown as \xNN). Any size works;
 * longer reasons are truncated, always NUL-terminated. */
#define ZNODE_WHY_LEN 256

enum znode_format {
    ZNODE_FORMAT_AUTO = 0,           /* detect per read (conf default) */
    ZNODE_FORMAT_PLAIN,              /* host:port text */
    ZNODE_FORMAT_JSON,               /* redis_failover JSON */
};

enum znode_result {
    ZNODE_MASTER = 0,                /* *m names the master */
    ZNODE_NO_MASTER,                 /* empty data, master null or absent */
    ZNODE_BAD_DATA,                  /* does not parse; see why */
};

#define ZNODE_MAX_REPLICAS 8

struct znode_node {
    char host[256];                  /* name or address, IPv6 without brackets */
    int port;                        /* 1..65535 */
};

struct znode_master {
    char host[256];                  /* name or address, IPv6 without brackets */
    int port;                        /* 1..65535 */
    enum znode_format format;        /* format detected (PLAIN or JSON) */
    int nreplicas;                   /* JSON "slaves" that parse, in order */
    struct znode_node replicas[ZNODE_MAX_REPLICAS];
};

/*
 * Parse the bytes of the master znode. data may contain NUL bytes (which
 * make it BAD_DATA), need not be NUL-terminated, and may be NULL when len is 0.
 *
 * On ZNODE_MASTER fills *m. Otherwise *m is cleared except m->format, which
 * says which format the data looks like (PLAIN or JSON, even when a fixed
 * fmt rejected it; AUTO when it never got that far: empty, too large, NUL
 * bytes). m may be NULL to only validate.
 *
 * On NO_MASTER/BAD_DATA writes a short reason into why (NUL-terminated,
 * truncated to whylen, printable ASCII only: bytes from data are escaped).
 * On ZNODE_MASTER why is set to "". why may be NULL or whylen 0.
 *
 * Never logs; the caller logs the reason with the offending bytes, escaped
 * and truncated with znode_escape().
 */
enum znode_result znode_parse(const char *data, size_t len, enum znode_format fmt,
                              struct znode_master *m, char *why, size_t whylen);

/* "auto"/"plain"/"json" (any case) -> 0 and *out, else -1. */
int znode_format_parse(const char *s, enum znode_format *out) RZ_MUSTCHECK;

/* "auto", "plain", "json"; "unknown" for anything else. */
const char *znode_format_name(enum znode_format f);

/* Printable copy of znode data for a log line: util_escape (non-printables
 * become \xNN, '"' and '\\' are escaped), truncated with "..." to outlen-1. */
void znode_escape(const char *data, size_t len, char *out, size_t outlen);

#endif
