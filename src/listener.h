/*
 * listener: one listening socket (TCP or unix) feeding accepted
 * connections to its pool.
 */
#ifndef RZ_LISTENER_H
#define RZ_LISTENER_H

#include <stddef.h>
#include <sys/un.h>

#include "util.h"

/* A unix socket is made as PATH.<pid>.new and renamed to PATH, so that PATH
 * appears only once it accepts: PATH may use all of sun_path but this room
 * (a pid has at most 7 digits). The conf check and the listener share it. */
#define LISTENER_UNIX_TMP_ROOM 16
#define LISTENER_UNIX_PATH_MAX \
    (sizeof(((struct sockaddr_un *)0)->sun_path) - 1 - LISTENER_UNIX_TMP_ROOM)

struct pool;
struct listener;

/* addr: "host:port", "[v6]:port" or "unix:/path". Binds at once; a unix
 * socket file gets unix_mode (unixsocket-perm; 0 = the umask's) before it
 * accepts anything. */
struct listener *listener_new(struct pool *p, const char *addr, int unix_mode, char *err,
                              size_t errlen);
void listener_free(struct listener *l);

#endif
