/*
 * probe: a small connection that asks one server what it is, for a pool
 * that reads from replicas.
 *
 * Every tick (the proxy's 100 ms cron) an idle probe sends INFO
 * replication and reports what the server said: its role, the master it
 * replicates from, the link, its replication offset. On its first
 * connection to a master it also asks COMMAND once, and reports the names
 * the server flags read-only: which commands may go to a replica is the
 * server's word, not a list typed into the proxy. A probe that gets no
 * answer within PROBE_DEADLINE_TICKS ticks, or whose connection fails,
 * reports the server down and connects again at a later tick.
 *
 * Replies are parsed with hiredis's reader and its reply objects: this
 * connection carries no client traffic, a few hundred bytes a tick, so
 * allocation here costs nothing that matters. It authenticates with the
 * pool's backend credentials and speaks TLS when the pool does. Reports go
 * to the owner through one callback.
 */
#ifndef RZ_PROBE_H
#define RZ_PROBE_H

#include <stddef.h>
#include <stdint.h>

struct pool;
struct probe;

#define PROBE_DEADLINE_TICKS 3       /* an INFO unanswered this long: down */

enum probe_event {
    PROBE_INFO,                      /* a report: struct probe_report */
    PROBE_DOWN,                      /* no answer, or the connection failed */
    PROBE_COMMANDS,                  /* names[] of the read-only commands */
};

struct probe_report {
    int is_master;                   /* role:master */
    char replid[48];                 /* master_replid: the history it is in (a replica
                                        takes its master's) */
    int link_up;                     /* master_link_status:up */
    long long offset;                /* master_repl_offset, or a replica's slave_repl_offset */
    const char *const *names;        /* PROBE_COMMANDS: lowercase, sorted */
    size_t nnames;
};

typedef void (*probe_fn)(void *owner, enum probe_event ev, const struct probe_report *r);

/* A probe of host:port for pool p; want_commands: also ask COMMAND once.
 * Connects at its first tick. */
struct probe *probe_new(struct pool *p, const char *host, int port, int want_commands,
                        probe_fn fn, void *owner);
void probe_free(struct probe *pr);
void probe_tick(struct probe *pr, uint64_t now_ms);

/* Parse INFO replication text into *r. Returns 0, or -1 if it has no role. */
int probe_parse_info(const char *text, size_t len, struct probe_report *r);

#endif
