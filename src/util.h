/*
 * util: allocation that never returns NULL, clocks, small parsers shared by
 * several modules.
 *
 * Allocation policy: rzproxy cannot do anything useful when malloc fails (a
 * half-built connection is worse than a restart by the supervisor), so the
 * x* wrappers log and abort() instead of returning NULL.
 */
#ifndef RZ_UTIL_H
#define RZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define RZ_MUSTCHECK __attribute__((warn_unused_result))
#define RZ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define RZ_UNUSED(x) ((void)(x))

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Log and abort(): for libraries' allocators that return NULL. */
void util_oom(size_t size) __attribute__((noreturn));

/* Monotonic clock in milliseconds; for timers, never for wall time. */
uint64_t util_now_ms(void);
/* Wall clock, ms since the epoch: only to compare with other wall times
 * (a znode's mtime). */
int64_t util_wall_ms(void);

/* "1gb", "512mb", "64kb", "100" (bytes). Units are powers of 1024, case
 * insensitive, like redis.conf. Returns 0 or -1 on garbage/overflow. */
int util_parse_size(const char *s, uint64_t *out) RZ_MUSTCHECK;

/* "host:port" or "[v6addr]:port". host gets the address without brackets.
 * Returns 0 or -1 (and a reason in err). */
int util_parse_hostport(const char *s, char *host, size_t hostlen, int *port,
                        char *err, size_t errlen) RZ_MUSTCHECK;

/* Printable copy of arbitrary bytes for a log line: non-printables become
 * \xNN, output truncated to outlen-1 with "..." when it does not fit. */
void util_escape(const char *in, size_t len, char *out, size_t outlen);

/* The first line of a password file (its first 4095 bytes at most, without
 * the line end) into out, NUL-terminated; outlen should be
 * UTIL_PASSWORD_MAX + 1. Returns its length (at least 1), or -1 with the
 * reason in err, which names the path and never the content. *mode gets the
 * file's permission bits (0 when it could not be opened), also on failure,
 * so a caller that logs can warn about a file others can read. The secret
 * stays only in out: the caller wipes it once used. Shared by the proxy
 * (backend-password-file) and rzproxy-ctl. */
#define UTIL_PASSWORD_MAX 4095
int util_read_password_file(const char *path, char *out, size_t outlen, unsigned *mode,
                            char *err, size_t errlen) RZ_MUSTCHECK;

/* ASCII lowercase copy of at most n bytes into dst (dstlen incl. NUL).
 * Returns the number of bytes copied. */
size_t util_lower(char *dst, size_t dstlen, const char *src, size_t n);

#endif
