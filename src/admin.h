/*
 * admin: the operators' HTTP listener (libevent's evhttp, on the loop
 * thread like everything else), off unless `admin-listen` is set.
 *
 *   GET /metrics   Prometheus text exposition (version 0.0.4)
 *   GET /healthz   200 "OK" when every pool is READY, else 503 and why
 *   GET /info      the same facts as JSON
 *
 * It only reads process state; nothing here changes routing.
 */
#ifndef RZ_ADMIN_H
#define RZ_ADMIN_H

#include <stddef.h>

#include "util.h"

/* Listen on addr ("host:port"). Fails if the address cannot be bound. */
int admin_start(const char *addr, char *err, size_t errlen) RZ_MUSTCHECK;
void admin_stop(void);

#endif
