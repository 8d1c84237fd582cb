#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

enum log_level log_level_current = LOGL_NOTICE;
static FILE *log_fp;   /* NULL means stderr */
static int log_to_syslog;

static const int syslog_priority[] = {
    [LOGL_ERROR] = LOG_ERR, [LOGL_WARN] = LOG_WARNING, [LOGL_NOTICE] = LOG_NOTICE,
    [LOGL_INFO] = LOG_INFO, [LOGL_DEBUG] = LOG_DEBUG,
};

static const struct {
    const char *name;
    int facility;
} facilities[] = {
    { "user", LOG_USER }, { "daemon", LOG_DAEMON }, { "local0", LOG_LOCAL0 },
    { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
    { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 },
    { "local7", LOG_LOCAL7 },
};

const char *const log_facility_names[] = {
    "user", "daemon", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7", NULL,
};

void log_syslog(int enabled, const char *ident, int facility)
{
    static char kept_ident[64];

    if (log_to_syslog)
        closelog();
    log_to_syslog = enabled;
    if (!enabled)
        return;
    /* openlog keeps the pointer: give it storage that outlives a reload. */
    snprintf(kept_ident, sizeof(kept_ident), "%s", ident ? ident : "rzproxy");
    openlog(kept_ident, LOG_PID | LOG_NDELAY,
            facility >= 0 && facility < (int)(sizeof(facilities) / sizeof(facilities[0]))
            ? facilities[facility].facility : LOG_LOCAL0);
}

static const char *const level_names[] = {
    [LOGL_ERROR] = "error", [LOGL_WARN] = "warning", [LOGL_NOTICE] = "notice",
    [LOGL_INFO] = "info", [LOGL_DEBUG] = "debug",
};

int log_open(const char *path, char *err, size_t errlen)
{
    FILE *fp;

    if (path == NULL || path[0] == '\0') {
        if (log_fp != NULL)
            fclose(log_fp);
        log_fp = NULL;
        return 0;
    }
    fp = fopen(path, "a");
    if (fp == NULL) {
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    setvbuf(fp, NULL, _IOLBF, 0);
    if (log_fp != NULL)
        fclose(log_fp);
    log_fp = fp;
    return 0;
}

void log_set_level(enum log_level level)
{
    log_level_current = level;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warn") == 0) {
        *out = LOGL_WARN;
        return 0;
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return level_names[level];
}

void log_write(enum log_level level, const char *pool, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n, stamp_len;
    va_list ap;
    int len;

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    len = snprintf(line + n, sizeof(line) - n, ".%03d ", (int)(tv.tv_usec / 1000));
    n += (size_t)len;
    stamp_len = n;
    len = snprintf(line + n, sizeof(line) - n, "%s %d ", level_names[level], (int)getpid());
    n += (size_t)len;
    if (pool != NULL) {
        len = snprintf(line + n, sizeof(line) - n, "[%s] ", pool);
        if (len > 0 && (size_t)len < sizeof(line) - n)
            n += (size_t)len;
    }
    va_start(ap, fmt);
    len = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (len < 0)
        len = 0;
    n += (size_t)len;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One fwrite per line so concurrent writers (ZK threads later) do not
     * interleave within a line. */
    fwrite(line, 1, n, log_fp ? log_fp : stderr);
    /* syslog stamps the time itself: from the level on, without '\n'. */
    if (log_to_syslog && n > stamp_len + 1)
        syslog(syslog_priority[level], "%.*s", (int)(n - 1 - stamp_len), line + stamp_len);
}
