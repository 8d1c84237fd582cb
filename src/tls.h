/*
 * tls: TLS to the master, with OpenSSL.
 *
 * A pool with `tls yes` has one client context (tls_ctx_new), built from its
 * tls-* directives at start and again at every SIGHUP, so certificates are
 * re-read without a restart: connections opened after a reload use the new
 * context, open ones keep theirs (OpenSSL counts the references).
 *
 * The master's certificate is always verified: against tls-ca-cert-file /
 * tls-ca-cert-dir (or the system's store when neither is set), and against
 * the name the pool expects (tls-server-name, else the master's host; an IP
 * address is matched against the certificate's IP addresses). There is no
 * switch to turn that off: a proxy that speaks TLS to an unverified peer
 * protects nothing.
 *
 * The handshake, reads and writes on a socket are io.c's (io_conn with a
 * tls session): this module builds contexts and names errors.
 */
#ifndef RZ_TLS_H
#define RZ_TLS_H

#include <stddef.h>

#include "util.h"

struct conf_pool;
struct ssl_ctx_st;
struct ssl_st;

/* A client context for the pool's tls-* settings, or NULL with the reason
 * in err (a file that cannot be read, a key that does not match). */
struct ssl_ctx_st *tls_ctx_new(const struct conf_pool *cf, char *err, size_t errlen);
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* A session on ctx for a connection to `host`, checked against `name`
 * (tls-server-name) or else host. NULL with err on failure. */
struct ssl_st *tls_session_new(struct ssl_ctx_st *ctx, const char *host, const char *name,
                               char *err, size_t errlen);

/* Why the last TLS operation on s failed: the certificate check's verdict
 * when it failed, else OpenSSL's error queue (which this empties). */
void tls_error(struct ssl_st *s, char *err, size_t errlen);

#endif
