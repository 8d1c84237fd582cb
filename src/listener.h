/*
 * listener: one listening socket (TCP or unix) feeding accepted
 * connections to its pool.
 */
#ifndef RZ_LISTENER_H
#define RZ_LISTENER_H

#include <stddef.h>

#include "util.h"

struct pool;
struct listener;

/* addr: "host:port", "[v6]:port" or "unix:/path". Binds at once; a unix
 * socket file gets unix_mode (unixsocket-perm; 0 = the umask's) before it
 * accepts anything. */
struct listener *listener_new(struct pool *p, const char *addr, int unix_mode, char *err,
                              size_t errlen);
void listener_free(struct listener *l);

#endif
