#include "util.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void util_oom(size_t size)
{
    log_write(LOGL_ERROR, NULL, "out of memory allocating %zu bytes, aborting", size);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        util_oom(size);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        util_oom(n * size);
    return p;
}

void *xrealloc(void *old, size_t size)
{
    void *p = realloc(old, size ? size : 1);
    if (p == NULL)
        util_oom(size);
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

uint64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int util_parse_size(const char *s, uint64_t *out)
{
    static const struct { const char *suffix; uint64_t mul; } units[] = {
        { "", 1 }, { "b", 1 }, { "k", 1000 }, { "kb", 1024 },
        { "m", 1000 * 1000 }, { "mb", 1024 * 1024 },
        { "g", 1000ull * 1000 * 1000 }, { "gb", 1024ull * 1024 * 1024 },
    };
    char *end;
    unsigned long long v;

    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].mul)
                return -1;
            *out = v * units[i].mul;
            return 0;
        }
    }
    return -1;
}

static int parse_port(const char *p, int *port)
{
    char *end;
    long v;

    if (*p == '\0' || !isdigit((unsigned char)*p))
        return -1;
    errno = 0;
    v = strtol(p, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int util_parse_hostport(const char *s, char *host, size_t hostlen, int *port,
                        char *err, size_t errlen)
{
    const char *colon, *hs = s, *he;

    if (s[0] == '[') {
        he = strchr(s, ']');
        if (he == NULL || he[1] != ':') {
            snprintf(err, errlen, "bad address '%s': expected [ipv6]:port", s);
            return -1;
        }
        hs = s + 1;
        colon = he + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
            snprintf(err, errlen, "bad address '%s': expected host:port or [ipv6]:port", s);
            return -1;
        }
        he = colon;
    }
    if (he == hs || (size_t)(he - hs) >= hostlen) {
        snprintf(err, errlen, "bad address '%s': empty or too long host", s);
        return -1;
    }
    if (parse_port(colon + 1, port) != 0) {
        snprintf(err, errlen, "bad address '%s': port must be 1-65535", s);
        return -1;
    }
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    return 0;
}

void util_escape(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;

    if (outlen == 0)
        return;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        char tmp[5];
        size_t n;

        if (ch == '\\' || ch == '"')
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", ch);
        else if (isprint(ch))
            n = (size_t)snprintf(tmp, sizeof(tmp), "%c", ch);
        else
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
        if (o + n + 4 > outlen) {   /* keep room for "..." and NUL */
            if (o + 4 <= outlen) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
}

/* Eight ASCII bytes at once: 0x20 is added to each byte in 'A'..'Z' (a
 * byte with the top bit set is left alone, as tolower() in the C locale we
 * run in does). */
static uint64_t lower8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL;
    uint64_t low7 = w & (0x7f * ones);
    uint64_t ge_a = low7 + (0x80 - 'A') * ones;     /* top bit: byte >= 'A' */
    uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * ones; /* top bit: byte > 'Z' */
    uint64_t upper = (ge_a ^ gt_z) & ~w & (0x80 * ones);

    return w | (upper >> 2);
}

size_t util_lower(char *dst, size_t dstlen, const char *src, size_t n)
{
    size_t i = 0;

    if (dstlen == 0)
        return 0;
    if (n > dstlen - 1)
        n = dstlen - 1;
    /* Runs on every request's name and first arguments. */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w = lower8(w);
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (char)((unsigned)(ch - 'A') < 26u ? ch + ('a' - 'A') : ch);
    }
    dst[i] = '\0';
    return i;
}

int util_read_password_file(const char *path, char *out, size_t outlen, unsigned *mode,
                            char *err, size_t errlen)
{
    char buf[UTIL_PASSWORD_MAX + 1];
    struct stat st;
    size_t n;
    FILE *f = fopen(path, "r");

    *mode = 0;
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) == 0)
        *mode = (unsigned)(st.st_mode & 07777);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    n = strcspn(buf, "\r\n");
    if (n == 0 || n >= outlen) {
        snprintf(err, errlen, "%s: %s", path, n == 0 ? "the first line is empty"
                                                     : "the first line is too long");
        explicit_bzero(buf, sizeof(buf));
        return -1;
    }
    memcpy(out, buf, n);
    out[n] = '\0';
    explicit_bzero(buf, sizeof(buf));
    return (int)n;
}
