/*
 * ctl_redis: blocking redis commands for rzproxy-ctl (see ctl_redis.h).
 *
 * hiredis's synchronous API is enough here: the director runs one step at a
 * time and every step must finish (or time out) before the next one starts.
 * hiredis marks the context with ->err after an I/O error or a timeout, and
 * such a context cannot be used again: we keep that rule visible through
 * ctl_redis_alive().
 */
#include "ctl_redis.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#define CTL_REDIS_MAX_ARGS 16        /* more than any command the ctl sends */

struct ctl_redis {
    redisContext *ctx;               /* hiredis context; ->err set = dead */
    char name[300];                  /* "host:port" or "[v6]:port", for messages */
};

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv;

    if (ms < 1)
        ms = 1;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static void format_name(char *out, size_t outlen, const char *host, int port)
{
    if (strchr(host, ':') != NULL)
        snprintf(out, outlen, "[%s]:%d", host, port);
    else
        snprintf(out, outlen, "%s:%d", host, port);
}

struct ctl_redis *ctl_redis_connect(const char *host, int port, int timeout_ms,
                                    char *err, size_t errlen)
{
    struct ctl_redis *r = xcalloc(1, sizeof(*r));

    format_name(r->name, sizeof(r->name), host, port);
    r->ctx = redisConnectWithTimeout(host, port, ms_to_tv(timeout_ms));
    if (r->ctx == NULL) {
        snprintf(err, errlen, "%s: cannot allocate a redis context", r->name);
        free(r);
        return NULL;
    }
    if (r->ctx->err != 0) {
        snprintf(err, errlen, "%s: %s", r->name, r->ctx->errstr);
        ctl_redis_close(r);
        return NULL;
    }
    if (redisSetTimeout(r->ctx, ms_to_tv(timeout_ms)) != REDIS_OK) {
        snprintf(err, errlen, "%s: cannot set the command timeout: %s", r->name,
                 strerror(errno));
        ctl_redis_close(r);
        return NULL;
    }
    return r;
}

void ctl_redis_close(struct ctl_redis *r)
{
    if (r == NULL)
        return;
    if (r->ctx != NULL)
        redisFree(r->ctx);
    free(r);
}

int ctl_redis_alive(const struct ctl_redis *r)
{
    return r != NULL && r->ctx != NULL && r->ctx->err == 0;
}

int ctl_redis_set_timeout(struct ctl_redis *r, int timeout_ms)
{
    if (!ctl_redis_alive(r))
        return -1;
    return redisSetTimeout(r->ctx, ms_to_tv(timeout_ms)) == REDIS_OK ? 0 : -1;
}

const char *ctl_redis_name(const struct ctl_redis *r)
{
    return r->name;
}

/* The reply's text for the caller: status and strings as they are, other
 * types as "". */
static char *reply_text(const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING)
        return xstrndup(rep->str, rep->len);
    return xstrdup("");
}

static int run_argv(struct ctl_redis *r, int argc, const char **argv, char **out,
                    char *err, size_t errlen)
{
    redisReply *rep;
    int rc = 0;

    if (!ctl_redis_alive(r)) {
        snprintf(err, errlen, "%s: connection already failed", r->name);
        return -1;
    }
    rep = redisCommandArgv(r->ctx, argc, argv, NULL);
    if (rep == NULL) {
        /* hiredis says "Resource temporarily unavailable" for SO_RCVTIMEO */
        if (r->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
            snprintf(err, errlen, "%s: %s: no answer in time", r->name, argv[0]);
        else
            snprintf(err, errlen, "%s: %s: %s", r->name, argv[0], r->ctx->errstr);
        return -1;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s: %.*s", r->name, argv[0], (int)rep->len, rep->str);
        rc = -1;
    } else if (out != NULL) {
        *out = reply_text(rep);
    }
    freeReplyObject(rep);
    return rc;
}

int ctl_redis_run(struct ctl_redis *r, char **out, char *err, size_t errlen, ...)
{
    const char *argv[CTL_REDIS_MAX_ARGS];
    const char *a;
    int argc = 0;
    va_list ap;

    va_start(ap, errlen);
    while ((a = va_arg(ap, const char *)) != NULL && argc < CTL_REDIS_MAX_ARGS)
        argv[argc++] = a;
    va_end(ap);
    if (argc == 0 || a != NULL) {
        snprintf(err, errlen, "%s: bad command (%d arguments)", r->name, argc);
        return -1;
    }
    return run_argv(r, argc, argv, out, err, errlen);
}

char *ctl_redis_info(struct ctl_redis *r, const char *section, char *err, size_t errlen)
{
    char *text = NULL;

    if (ctl_redis_run(r, &text, err, errlen, "INFO", section, NULL) != 0)
        return NULL;
    return text;
}

/* Start of the line "key:..." in info, or NULL. */
static const char *find_line(const char *info, const char *key)
{
    size_t klen = strlen(key);
    const char *p = info;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, key, klen) == 0 && p[klen] == ':')
            return p;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

int ctl_redis_info_field(const char *info, const char *key, char *out, size_t outlen)
{
    const char *line = find_line(info, key), *v;
    size_t n;

    if (line == NULL || outlen == 0)
        return -1;
    v = line + strlen(key) + 1;
    n = strcspn(v, "\r\n");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

void ctl_redis_info_str(const char *info, const char *key, char *out, size_t outlen)
{
    if (ctl_redis_info_field(info, key, out, outlen) != 0 && outlen > 0)
        out[0] = '\0';
}

int ctl_redis_info_int(const char *info, const char *key, int64_t *out)
{
    char buf[32], *end;
    long long v;

    if (ctl_redis_info_field(info, key, buf, sizeof(buf)) != 0 || buf[0] == '\0')
        return -1;
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* "ip=H,port=P,state=...": fill a. 0, or -1 if ip or port is missing. */
static int parse_replica(const char *v, struct ctl_redis_addr *a)
{
    const char *ip = strstr(v, "ip="), *port = strstr(v, "port=");
    size_t n;
    char *end;
    long p;

    if (ip == NULL || port == NULL)
        return -1;
    ip += 3;
    n = strcspn(ip, ",\r\n");
    if (n == 0 || n >= sizeof(a->host))
        return -1;
    errno = 0;
    p = strtol(port + 5, &end, 10);
    if (errno != 0 || (*end != ',' && *end != '\0') || p < 1 || p > 65535)
        return -1;
    memcpy(a->host, ip, n);
    a->host[n] = '\0';
    a->port = (int)p;
    return 0;
}

int ctl_redis_info_replicas(const char *info, struct ctl_redis_addr *out, int max)
{
    int n = 0;

    for (int i = 0; n < max && i < CTL_REDIS_MAX_REPLICAS; i++) {
        char key[32], val[512];

        snprintf(key, sizeof(key), "slave%d", i);
        if (ctl_redis_info_field(info, key, val, sizeof(val)) != 0)
            break;
        if (parse_replica(val, &out[n]) == 0)
            n++;
    }
    return n;
}
