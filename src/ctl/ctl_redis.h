/*
 * ctl_redis: a tiny blocking redis client for rzproxy-ctl: a socket of its
 * own, hiredis's reply reader, and TLS with the proxy's OpenSSL context
 * (tls.c) when the pool has `tls yes`. The proxy never uses it (its data
 * path is libevent).
 *
 * Every call is bounded by the connection's timeout: the connect (TCP, the
 * TLS handshake and AUTH together) and then each command as a whole (write
 * and complete reply). After an I/O error or a timeout the connection is
 * dead: ctl_redis_alive() says so and every later call fails at once; the
 * caller closes it and connects again if it wants to retry.
 *
 * Errors come back in a caller-provided buffer, never on stderr. No error
 * ever holds the password.
 */
#ifndef RZ_CTL_REDIS_H
#define RZ_CTL_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct ctl_redis;                    /* opaque: a socket, its TLS session, a reply reader */
struct ssl_ctx_st;

/* The most replicas INFO replication lists that we act on. */
#define CTL_REDIS_MAX_REPLICAS 64

struct ctl_redis_addr {
    char host[256];                  /* name or address, IPv6 without brackets */
    int port;                        /* 1..65535 */
};

/* How to talk to the servers: the pool's tls* and backend-* settings. */
struct ctl_redis_conf {
    struct ssl_ctx_st *tls;          /* tls_ctx_new()'s context; NULL: plain TCP */
    const char *tls_server_name;     /* the name the certificate must carry; NULL or
                                        "": the host connected to */
    const char *user;                /* AUTH user; NULL or "": AUTH <password> */
    const char *password;            /* NULL: no AUTH */
};

/*
 * Connect to host:port within timeout_ms: TCP, then the TLS handshake (the
 * certificate verified against conf->tls's CAs and the name) and AUTH when
 * conf asks for them, all within that time; the same timeout then bounds
 * each command. conf NULL: plain, no AUTH. NULL with the reason in err:
 * "H:P: Connection refused", "TLS handshake with H:P failed: certificate
 * verify failed: ...", "AUTH refused by H:P: WRONGPASS ...". *refused
 * (unless NULL) tells a server that answered but would not have us (TLS
 * not agreed, AUTH refused: a setting to fix) from one that cannot be
 * reached (no connection, no answer in time, closed).
 */
struct ctl_redis *ctl_redis_connect(const char *host, int port, int timeout_ms,
                                    const struct ctl_redis_conf *conf, int *refused,
                                    char *err, size_t errlen) RZ_MUSTCHECK;

void ctl_redis_close(struct ctl_redis *r);

/* 1 while the connection is usable, 0 after an I/O error or timeout. */
int ctl_redis_alive(const struct ctl_redis *r);

/* Change the per-command timeout (ms, at least 1). */
int ctl_redis_set_timeout(struct ctl_redis *r, int timeout_ms) RZ_MUSTCHECK;

/*
 * Run one command given as NULL-terminated string arguments, e.g.
 * ctl_redis_run(r, NULL, err, sizeof(err), "SLAVEOF", "NO", "ONE", NULL).
 * Returns 0 on any non-error reply and, if out is not NULL, a malloc'd copy
 * of its text (status or bulk string; "" for other types) the caller frees.
 * Returns -1 on an error reply ("-ERR ..." text in err), an I/O error or a
 * timeout (the reason in err).
 */
int ctl_redis_run(struct ctl_redis *r, char **out, char *err, size_t errlen, ...)
    __attribute__((sentinel)) RZ_MUSTCHECK;

/* The three moves of every master change, shared by failover and candidate:
 * CLIENT PAUSE ms WRITE (writes wait, reads go on), CLIENT UNPAUSE, and
 * SLAVEOF host port (host NULL: SLAVEOF NO ONE). */
int ctl_redis_pause_writes(struct ctl_redis *r, int ms, char *err, size_t errlen) RZ_MUSTCHECK;
int ctl_redis_unpause(struct ctl_redis *r, char *err, size_t errlen) RZ_MUSTCHECK;
int ctl_redis_replicate(struct ctl_redis *r, const char *host, int port, char *err, size_t errlen)
    RZ_MUSTCHECK;

/* INFO SECTION as text (malloc'd, caller frees). NULL on error (err set). */
char *ctl_redis_info(struct ctl_redis *r, const char *section, char *err, size_t errlen)
    RZ_MUSTCHECK;

/* Value of "key:value" in INFO text, copied into out. 0, or -1 if absent. */
int ctl_redis_info_field(const char *info, const char *key, char *out, size_t outlen)
    RZ_MUSTCHECK;

/* Same, but never fails: out is "" when the key is absent. */
void ctl_redis_info_str(const char *info, const char *key, char *out, size_t outlen);

/* Same, as a signed 64-bit number; -1 if absent or not a number. */
int ctl_redis_info_int(const char *info, const char *key, int64_t *out) RZ_MUSTCHECK;

/* The replicas INFO replication lists ("slaveN:ip=H,port=P,..."), at most
 * max of them, into out. Returns how many. */
int ctl_redis_info_replicas(const char *info, struct ctl_redis_addr *out, int max);

/* "host:port" of the connection, for messages. */
const char *ctl_redis_name(const struct ctl_redis *r);

#endif
