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

/* addr: "host:port", "[v6]:port" or "unix:/path". Binds at once. */
struct listener *listener_new(struct pool *p, const char *addr, char *err, size_t errlen);
void listener_free(struct listener *l);

#endif
