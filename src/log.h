/*
 * log: one line per event, "<time> <level> [<pool>] <message>".
 *
 * Only the module that owns a connection logs about it; helpers return
 * errors (see STYLE: libraries return errors, the daemon logs them).
 * Debug formatting is skipped entirely when the level is off.
 */
#ifndef RZ_LOG_H
#define RZ_LOG_H

#include "util.h"

enum log_level {
    LOGL_ERROR = 0,
    LOGL_WARN,
    LOGL_NOTICE,
    LOGL_INFO,
    LOGL_DEBUG,
};

extern enum log_level log_level_current;

/* Also send every line to syslog (or stop). facility indexes
 * log_facility_names ("user", "daemon", "local0".."local7"). */
void log_syslog(int enabled, const char *ident, int facility);
extern const char *const log_facility_names[];

/* path NULL or "" means stderr. Reopening (SIGHUP) calls this again. */
int log_open(const char *path, char *err, size_t errlen) RZ_MUSTCHECK;
void log_set_level(enum log_level level);
/* "error", "warning", "notice", "info", "debug" -> 0, or -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out) RZ_MUSTCHECK;
const char *log_level_name(enum log_level level);

/* pool may be NULL for process-wide events. */
void log_write(enum log_level level, const char *pool, const char *fmt, ...) RZ_PRINTF(3, 4);

#define log_at(lvl, pool, ...)                                   \
    do {                                                         \
        if ((lvl) <= log_level_current)                          \
            log_write((lvl), (pool), __VA_ARGS__);               \
    } while (0)
#define log_error(pool, ...) log_at(LOGL_ERROR, pool, __VA_ARGS__)
#define log_warn(pool, ...) log_at(LOGL_WARN, pool, __VA_ARGS__)
#define log_notice(pool, ...) log_at(LOGL_NOTICE, pool, __VA_ARGS__)
#define log_info(pool, ...) log_at(LOGL_INFO, pool, __VA_ARGS__)
#define log_debug(pool, ...) log_at(LOGL_DEBUG, pool, __VA_ARGS__)

#endif
