/*
 * ctl_redis: blocking redis commands for rzproxy-ctl (see ctl_redis.h).
 *
 * The director runs one step at a time and every step must finish (or time
 * out) before the next one starts, so each call blocks. The socket itself is
 * non-blocking and every wait is a poll() against the call's deadline: one
 * bound for a whole command, which SO_RCVTIMEO (per read) would not give,
 * and the same loop serves plain TCP and TLS (whose reads may have to write
 * and whose writes may have to read).
 *
 *   ctl_redis_connect: resolve, TCP connect ─> TLS handshake ─> AUTH
 *   run_argv: redisFormatCommandArgv ─> write all ─> read and feed
 *             hiredis's reader until one reply is complete
 *
 * hiredis 0.14's synchronous context cannot speak TLS (hiredis_ssl came
 * with 1.0), hence the socket of our own; its reader parses the replies.
 * An I/O error, a protocol error or a timeout marks the connection dead,
 * the rule ctl_redis_alive() makes visible.
 */
#include "ctl_redis.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

#define CTL_REDIS_MAX_ARGS 16        /* more than any command the ctl sends */
#define READ_CHUNK 16384             /* bytes per read */
#define CLOSED_TEXT "Server closed the connection"   /* hiredis's words for it */

struct ctl_redis {
    int fd;                          /* non-blocking socket, -1 once closed */
    SSL *ssl;                        /* TLS session on fd; NULL: plain */
    redisReader *reader;             /* hiredis's reply parser */
    int timeout_ms;                  /* bound of each command */
    int dead;                        /* an I/O error or a timeout happened */
    int cert_asked;                  /* the TLS server asked for our certificate */
    char name[300];                  /* "host:port" or "[v6]:port", for messages */
};

/* Why an I/O call failed. */
enum io_fail {
    IO_TIMEOUT,                      /* the deadline passed: "no answer in time" */
    IO_CLOSED,                       /* the peer hung up */
    IO_ERROR,                        /* errno: its text is in the error buffer */
    IO_TLS,                          /* TLS not agreed (a certificate, an alert, the
                                        protocol): tls_error()'s text */
};

static void format_name(char *out, size_t outlen, const char *host, int port)
{
    if (strchr(host, ':') != NULL)
        snprintf(out, outlen, "[%s]:%d", host, port);
    else
        snprintf(out, outlen, "%s:%d", host, port);
}

static uint64_t deadline_in(int ms)
{
    return util_now_ms() + (uint64_t)(ms < 1 ? 1 : ms);
}

/* Wait until fd is readable (for_write 0) or writable before deadline.
 * 0 (also on POLLERR/POLLHUP: the next call says what happened), or -1
 * with errno (ETIMEDOUT when the deadline passed). */
static int wait_fd(int fd, int for_write, uint64_t deadline)
{
    for (;;) {
        struct pollfd p = { .fd = fd, .events = for_write ? POLLOUT : POLLIN };
        uint64_t now = util_now_ms();
        uint64_t left = deadline > now ? deadline - now : 0;
        int n;

        if (left == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- TCP connect --------------------------------------------------------- */

/* One address: a non-blocking socket connected before deadline. The fd, or
 * -1 with errno. */
static int connect_addr(const struct addrinfo *ai, uint64_t deadline)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, soerr = 0, saved;
    socklen_t len = sizeof(soerr);

    if (fd < 0)
        return -1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS)
        goto fail;
    if (wait_fd(fd, 1, deadline) != 0)
        goto fail;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        goto fail;
    if (soerr == 0)
        return fd;
    errno = soerr;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Every address host resolves to, in order, until one connects. */
static int tcp_connect(struct ctl_redis *r, const char *host, int port, uint64_t deadline,
                       char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res, *ai;
    char portstr[16];
    int rc, saved = 0;

    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", r->name,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && r->fd < 0; ai = ai->ai_next) {
        r->fd = connect_addr(ai, deadline);
        if (r->fd < 0)
            saved = errno;
    }
    freeaddrinfo(res);
    if (r->fd < 0) {
        snprintf(err, errlen, "%s: %s", r->name, strerror(saved));
        return -1;
    }
    return 0;
}

/* ---- TLS ----------------------------------------------------------------- */

/* After an SSL_* call returned n <= 0: wait for what it wants (0), or say
 * why it failed (-1, *fail and err set). */
static int tls_wait_or_fail(struct ctl_redis *r, int n, uint64_t deadline, enum io_fail *fail,
                            char *err, size_t errlen)
{
    int e = SSL_get_error(r->ssl, n);

    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (wait_fd(r->fd, e == SSL_ERROR_WANT_WRITE, deadline) == 0)
            return 0;
        *fail = errno == ETIMEDOUT ? IO_TIMEOUT : IO_ERROR;
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    /* errno was cleared before the call: 0 here is a plain hang-up */
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        *fail = e == SSL_ERROR_SYSCALL && errno != 0 ? IO_ERROR : IO_CLOSED;
        snprintf(err, errlen, "%s", *fail == IO_ERROR ? strerror(errno) : CLOSED_TEXT);
        return -1;
    }
    *fail = IO_TLS;
    tls_error(r->ssl, err, errlen);
    return -1;
}

/* OpenSSL calls this when the server asks for a client certificate. */
static int note_cert_request(SSL *s, void *arg)
{
    (void)s;
    ((struct ctl_redis *)arg)->cert_asked = 1;
    return 1;
}

/* The handshake, before deadline. 0, or -1 with err; *refused when the
 * server answered but TLS was not agreed (its certificate, its protocol).
 * With TLS 1.3 the server judges our certificate after we are done: its
 * verdict comes with the first reply (see ctl_redis_connect). */
static int tls_handshake(struct ctl_redis *r, const struct ctl_redis_conf *conf,
                         const char *host, uint64_t deadline, int *refused, char *err,
                         size_t errlen)
{
    char why[256];
    enum io_fail fail = IO_ERROR;
    int n;

    r->ssl = tls_session_new(conf->tls, host, conf->tls_server_name, why, sizeof(why));
    if (r->ssl == NULL || SSL_set_fd(r->ssl, r->fd) != 1) {
        if (r->ssl != NULL)
            tls_error(r->ssl, why, sizeof(why));
        *refused = 1;
        snprintf(err, errlen, "TLS handshake with %s failed: %s", r->name, why);
        return -1;
    }
    SSL_set_cert_cb(r->ssl, note_cert_request, r);
    for (;;) {
        ERR_clear_error();
        errno = 0;
        n = SSL_connect(r->ssl);
        if (n == 1)
            return 0;
        if (tls_wait_or_fail(r, n, deadline, &fail, why, sizeof(why)) != 0)
            break;
    }
    *refused = fail == IO_TLS;
    snprintf(err, errlen, "TLS handshake with %s failed: %s", r->name,
             fail == IO_TIMEOUT ? "no answer in time" : why);
    return -1;
}

/* ---- bytes in and out ---------------------------------------------------- */

/* Write all of buf before deadline. 0, or -1 (*fail, err). */
static int write_all(struct ctl_redis *r, const char *buf, size_t len, uint64_t deadline,
                     enum io_fail *fail, char *err, size_t errlen)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n;

        if (r->ssl != NULL) {
            ERR_clear_error();
            errno = 0;
            n = SSL_write(r->ssl, buf + off, (int)(len - off > INT_MAX ? INT_MAX : len - off));
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (tls_wait_or_fail(r, (int)n, deadline, fail, err, errlen) != 0)
                return -1;
            continue;
        }
        n = write(r->fd, buf + off, len - off);
        if (n >= 0) {
            off += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_fd(r->fd, 1, deadline) != 0) {
            *fail = errno == ETIMEDOUT ? IO_TIMEOUT : IO_ERROR;
            snprintf(err, errlen, "%s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Some bytes into buf before deadline: how many (> 0), or -1 (*fail, err). */
static ssize_t read_some(struct ctl_redis *r, char *buf, size_t len, uint64_t deadline,
                         enum io_fail *fail, char *err, size_t errlen)
{
    for (;;) {
        ssize_t n;

        if (r->ssl != NULL) {
            ERR_clear_error();
            errno = 0;
            n = SSL_read(r->ssl, buf, (int)len);
            if (n > 0)
                return n;
            if (tls_wait_or_fail(r, (int)n, deadline, fail, err, errlen) != 0)
                return -1;
            continue;
        }
        n = read(r->fd, buf, len);
        if (n > 0)
            return n;
        if (n == 0) {
            *fail = IO_CLOSED;
            snprintf(err, errlen, CLOSED_TEXT);
            return -1;
        }
        if (errno == EINTR)
            continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_fd(r->fd, 0, deadline) != 0) {
            *fail = errno == ETIMEDOUT ? IO_TIMEOUT : IO_ERROR;
            snprintf(err, errlen, "%s", strerror(errno));
            return -1;
        }
    }
}

/* ---- commands ------------------------------------------------------------ */

/* The reply's text for the caller: status and strings as they are, other
 * types as "". */
static char *reply_text(const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING)
        return xstrndup(rep->str, rep->len);
    return xstrdup("");
}

/* Send argv and read its reply before deadline. The reply (free with
 * freeReplyObject), or NULL with the bare reason in why and its kind in
 * *fail; the connection is then dead. */
static redisReply *exchange(struct ctl_redis *r, int argc, const char **argv, uint64_t deadline,
                            enum io_fail *fail, char *why, size_t whylen)
{
    char buf[READ_CHUNK], *cmd = NULL;
    void *reply = NULL;
    int len;

    *fail = IO_ERROR;
    if (!ctl_redis_alive(r)) {
        snprintf(why, whylen, "connection already failed");
        return NULL;
    }
    len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0) {
        snprintf(why, whylen, "cannot format the command");
        return NULL;
    }
    if (write_all(r, cmd, (size_t)len, deadline, fail, why, whylen) != 0)
        goto fail;
    for (;;) {
        ssize_t n;

        if (redisReaderGetReply(r->reader, &reply) != REDIS_OK) {
            snprintf(why, whylen, "protocol error: %s", r->reader->errstr);
            goto fail;
        }
        if (reply != NULL)
            break;
        n = read_some(r, buf, sizeof(buf), deadline, fail, why, whylen);
        if (n < 0)
            goto fail;
        if (redisReaderFeed(r->reader, buf, (size_t)n) != REDIS_OK) {
            snprintf(why, whylen, "protocol error: %s", r->reader->errstr);
            goto fail;
        }
    }
    explicit_bzero(cmd, (size_t)len);    /* AUTH's holds the password */
    redisFreeCommand(cmd);
    return reply;
fail:
    explicit_bzero(cmd, (size_t)len);
    redisFreeCommand(cmd);
    r->dead = 1;
    if (*fail == IO_TIMEOUT)
        snprintf(why, whylen, "no answer in time");
    return NULL;
}

/*
 * The connection's first command, before deadline: AUTH [user] password
 * when conf has a password, else PING over TLS (a TLS 1.3 server judges
 * our certificate after the handshake, so its verdict arrives here; a PING
 * refused for want of AUTH still proves TLS agreed). Plain without a
 * password: nothing. 0, or -1 with err and *refused when the server would
 * not have us. Only the command's name ever appears in err.
 */
static int first_command(struct ctl_redis *r, const struct ctl_redis_conf *conf,
                         uint64_t deadline, int *refused, char *err, size_t errlen)
{
    const char *argv[3] = { "AUTH" };
    int argc = 1, auth = conf->password != NULL;
    enum io_fail fail;
    redisReply *rep;
    char why[256];

    if (!auth && conf->tls == NULL)
        return 0;
    if (!auth)
        argv[0] = "PING";
    if (auth && conf->user != NULL && conf->user[0] != '\0')
        argv[argc++] = conf->user;
    if (auth)
        argv[argc++] = conf->password;
    rep = exchange(r, argc, argv, deadline, &fail, why, sizeof(why));
    if (rep == NULL && fail != IO_TLS && fail != IO_TIMEOUT && r->cert_asked &&
        SSL_get_certificate(r->ssl) == NULL) {
        /* Its refusal (an alert) may be lost to the reset that our first
         * command's bytes cause on a socket it has closed. */
        *refused = 1;
        snprintf(err, errlen, "TLS handshake with %s failed: it asked for a client certificate "
                 "and none is set (tls-cert-file); then: %s", r->name, why);
        return -1;
    }
    if (rep == NULL) {
        *refused = fail == IO_TLS;
        if (fail == IO_TLS)
            snprintf(err, errlen, "TLS handshake with %s failed: %s", r->name, why);
        else
            snprintf(err, errlen, "%s: %s: %s", r->name, argv[0], why);
        return -1;
    }
    if (auth && rep->type == REDIS_REPLY_ERROR) {
        *refused = 1;
        snprintf(err, errlen, "AUTH refused by %s: %.*s", r->name, (int)rep->len, rep->str);
        freeReplyObject(rep);
        return -1;
    }
    freeReplyObject(rep);
    return 0;
}

struct ctl_redis *ctl_redis_connect(const char *host, int port, int timeout_ms,
                                    const struct ctl_redis_conf *conf, int *refused,
                                    char *err, size_t errlen)
{
    struct ctl_redis *r = xcalloc(1, sizeof(*r));
    uint64_t deadline = deadline_in(timeout_ms);
    int no;

    if (refused == NULL)
        refused = &no;
    *refused = 0;
    r->fd = -1;
    r->timeout_ms = timeout_ms < 1 ? 1 : timeout_ms;
    format_name(r->name, sizeof(r->name), host, port);
    r->reader = redisReaderCreate();
    if (r->reader == NULL)
        util_oom(sizeof(redisReader));
    if (tcp_connect(r, host, port, deadline, err, errlen) != 0)
        goto fail;
    if (conf != NULL && conf->tls != NULL &&
        tls_handshake(r, conf, host, deadline, refused, err, errlen) != 0)
        goto fail;
    if (conf != NULL && first_command(r, conf, deadline, refused, err, errlen) != 0)
        goto fail;
    return r;
fail:
    ctl_redis_close(r);
    return NULL;
}

void ctl_redis_close(struct ctl_redis *r)
{
    if (r == NULL)
        return;
    if (r->ssl != NULL) {
        /* close_notify when the connection is still good; no waiting */
        if (!r->dead && SSL_is_init_finished(r->ssl))
            (void)SSL_shutdown(r->ssl);
        SSL_free(r->ssl);
    }
    if (r->fd >= 0)
        close(r->fd);
    if (r->reader != NULL)
        redisReaderFree(r->reader);
    free(r);
}

int ctl_redis_alive(const struct ctl_redis *r)
{
    return r != NULL && r->fd >= 0 && !r->dead;
}

int ctl_redis_set_timeout(struct ctl_redis *r, int timeout_ms)
{
    if (!ctl_redis_alive(r))
        return -1;
    r->timeout_ms = timeout_ms < 1 ? 1 : timeout_ms;
    return 0;
}

const char *ctl_redis_name(const struct ctl_redis *r)
{
    return r->name;
}

static int run_argv(struct ctl_redis *r, int argc, const char **argv, char **out,
                    char *err, size_t errlen)
{
    enum io_fail fail;
    char why[256];
    redisReply *rep = exchange(r, argc, argv, deadline_in(r->timeout_ms), &fail, why,
                               sizeof(why));
    int rc = 0;

    if (rep == NULL) {
        snprintf(err, errlen, "%s: %s: %s", r->name, argv[0], why);
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

int ctl_redis_pause_writes(struct ctl_redis *r, int ms, char *err, size_t errlen)
{
    char arg[32];

    snprintf(arg, sizeof(arg), "%d", ms);
    return ctl_redis_run(r, NULL, err, errlen, "CLIENT", "PAUSE", arg, "WRITE", NULL);
}

int ctl_redis_unpause(struct ctl_redis *r, char *err, size_t errlen)
{
    return ctl_redis_run(r, NULL, err, errlen, "CLIENT", "UNPAUSE", NULL);
}

int ctl_redis_replicate(struct ctl_redis *r, const char *host, int port, char *err, size_t errlen)
{
    char arg[16];

    if (host == NULL)
        return ctl_redis_run(r, NULL, err, errlen, "SLAVEOF", "NO", "ONE", NULL);
    snprintf(arg, sizeof(arg), "%d", port);
    return ctl_redis_run(r, NULL, err, errlen, "SLAVEOF", host, arg, NULL);
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
