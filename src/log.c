#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_level_current = LOGL_NOTICE;
static FILE *log_fp;   /* NULL means stderr */

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
    size_t n;
    va_list ap;
    int len;

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    len = snprintf(line + n, sizeof(line) - n, ".%03d %s %d ", (int)(tv.tv_usec / 1000),
                   level_names[level], (int)getpid());
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
}
