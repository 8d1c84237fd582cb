/*
 * ctl_repl: a redis-server's place in replication, as INFO replication
 * tells it, and the one question the election asks of two servers: does
 * this one hold every write that one has? Parsing and comparing are pure
 * (unit tested); ctl_repl_read asks a server.
 *
 * Offsets are comparable only within one history (replication id). A
 * promoted replica starts a new id and keeps the old one as replid2, with
 * second_repl_offset (one past the last offset of the old history it
 * holds), which is how redis itself decides whether a PSYNC can continue.
 */
#ifndef RZ_CTL_REPL_H
#define RZ_CTL_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct ctl_redis;

struct ctl_repl {
    char role[16];                   /* "master", "slave" */
    char replid[48];                 /* master_replid: its history */
    char replid2[48];                /* master_replid2: the history before its promotion */
    int64_t offset;                  /* master_repl_offset: how far it has got */
    int64_t second_offset;           /* second_repl_offset, -1 none */
    char master[300];                /* replica: "host:port" of its master, else "" */
    int link_up;                     /* replica: master_link_status:up */
};

/* Fill out from INFO replication text. 0, or -1 when it has no role or
 * no offset (err says which). */
int ctl_repl_parse(const char *info, struct ctl_repl *out, char *err, size_t errlen)
    RZ_MUSTCHECK;

/* INFO replication from r into out. 0, or -1 (err). */
int ctl_repl_read(struct ctl_redis *r, struct ctl_repl *out, char *err, size_t errlen)
    RZ_MUSTCHECK;

/* Does a hold every write b has: the same history at least as far, or
 * b's history kept as a's replid2 at least that far. */
int ctl_repl_holds(const struct ctl_repl *a, const struct ctl_repl *b);

/* Has b writes a lacks, so that promoting a would lose them? Within one
 * history: b is further. Across histories (a fresh or diverged server):
 * b's offset is higher, the only measure there is of which has more. */
int ctl_repl_ahead(const struct ctl_repl *b, const struct ctl_repl *a);

/* "role:master offset:123 replid:abcdef12" for messages. */
void ctl_repl_format(const struct ctl_repl *r, char *out, size_t outlen);

#endif
