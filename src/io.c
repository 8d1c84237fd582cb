#include "io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy.h"
#include "tls.h"
#include "util.h"

/* A read asks for rsize bytes: small for request/reply traffic, doubling
 * while reads fill it (a pipeline, large values), halving when they don't.
 * The floor keeps an idle connection's buffer small; the ceiling bounds
 * what one connection reads per turn of the loop. */
#define IO_READ_MIN (16u * 1024 - 256)    /* libevent rounds chain size + header up to a */
#define IO_READ_MAX (16u * IO_READ_MIN)    /* power of two: stay just under one */

struct io_lookup {
    struct io_conn *c;           /* NULL once the connection is closed */
    struct evdns_getaddrinfo_request *req;
};

/* A TLS session on the socket: allocated only for connections that use TLS,
 * so a plain connection (every client) stays small. */
struct io_tls {
    SSL_CTX *ctx;                /* a reference, until the session exists */
    char *name;                  /* tls-server-name, or NULL: the host */
    char *host;
    SSL *ssl;
    uint64_t deadline_ms;        /* the handshake must be over by then */
    size_t retry_len;            /* an SSL_write to repeat with exactly this many bytes */
    unsigned handshaking : 1;
    unsigned write_wants_read : 1;   /* SSL_write waits for input (a TLS 1.2
                                        renegotiation, a key update) */
    unsigned read_wants_write : 1;   /* SSL_read waits for the socket to take output */
    unsigned end : 2;            /* TLS_OPEN, or how a read found the session ended */
    char why[200];               /* what failed, for IO_TLS */
};

/* io_tls.end: a read that got data before the end reports the end at the
 * next read, from here: the socket may have nothing more to wake it, and
 * OpenSSL does not say it again (SSL_read on a failed session returns -1
 * with an empty error queue). */
#define TLS_OPEN 0
#define TLS_CLOSED 1                 /* close_notify, or the peer hung up: IO_EOF */
#define TLS_FAILED 2                 /* IO_TLS, why says why */

#define TLS_CHUNK 16384              /* one TLS record's worth of plaintext */

static TAILQ_HEAD(, io_conn) flush_list = TAILQ_HEAD_INITIALIZER(flush_list);
static struct event *flush_ev;

static int would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static void fire(struct io_conn *c, int what, int err)
{
    c->h->event(c->arg, what, err);
}

/* ---- reading ----------------------------------------------------------- */

/* Not while an SSL_read waits to write first: the socket stays readable and
 * OpenSSL would read nothing, at every turn of the loop. */
static int want_read(const struct io_conn *c)
{
    return c->reading && c->rd != NULL && !c->connecting &&
           (c->tls == NULL || !c->tls->read_wants_write) &&
           (c->read_max == 0 || evbuffer_get_length(c->in) < c->read_max);
}

static void on_read(evutil_socket_t fd, short what, void *arg);
static int tls_has_more(const struct io_conn *c);

static void update_read(struct io_conn *c)
{
    struct timeval tv = { c->read_ms / 1000, (c->read_ms % 1000) * 1000 };

    /* Until connected() the settings are only recorded: the TLS handshake
     * has the read event armed (with its deadline) when it waits for the
     * server, and must keep it. */
    if (c->connecting)
        return;
    /* A persistent event keeps the timeout it was last added with and
     * schedules it again each time it fires (libevent's ev_io_timeout):
     * neither event_add() without one nor event_del() removes it. An event
     * made afresh has none. */
    if (c->read_ms == 0 && c->rd_timed) {
        event_free(c->rd);
        c->rd = event_new(proxy.base, c->fd, EV_READ | EV_PERSIST, on_read, c);
        if (c->rd == NULL)
            util_oom(sizeof(struct event *));
        c->rd_on = 0;
        c->rd_timed = 0;
    }
    if (want_read(c)) {
        /* Re-added even when on: a new timeout starts from now. */
        event_add(c->rd, c->read_ms > 0 ? &tv : NULL);
        c->rd_on = 1;
        c->rd_timed = c->read_ms > 0;
        /* What OpenSSL holds gets no socket event, and the event_del()
         * that stopped reading took back the io_conn_read_again() that
         * tls_read_some() made for it. */
        if (tls_has_more(c))
            event_active(c->rd, EV_READ, 0);
    } else if (c->rd_on) {
        event_del(c->rd);
        c->rd_on = 0;
        c->rd_timed = 0;
    }
}

static size_t read_size(const struct io_conn *c)
{
    size_t want = c->rsize;

    if (c->read_max > 0) {
        size_t have = evbuffer_get_length(c->in);
        size_t room = have < c->read_max ? c->read_max - have : 0;
        if (room < want)
            want = room;
    }
    return want;
}

static void adapt(struct io_conn *c, size_t want, size_t got)
{
    if (got == want && want == c->rsize && c->rsize < IO_READ_MAX)
        c->rsize *= 2;
    else if (got * 4 < c->rsize && c->rsize > IO_READ_MIN)
        c->rsize /= 2;
}

/*
 * A small read goes through one scratch buffer and is then copied: libevent
 * sizes the chain it adds to the bytes (small chains come from malloc's
 * per-thread cache), where reserving IO_READ_MIN of free space would take a
 * 16 KiB chain from the heap and give it back for every request.
 */
static ssize_t read_small(struct io_conn *c, size_t want)
{
    static char scratch[IO_READ_MIN];
    ssize_t n = read(c->fd, scratch, want);

    if (n > 0 && evbuffer_add(c->in, scratch, (size_t)n) < 0) {
        errno = ENOMEM;
        return -1;
    }
    if (n > 0)
        adapt(c, want, (size_t)n);
    return n;
}

/* One read into the input. Returns what read() would, or -2 when the
 * input is already at its limit. */
static ssize_t read_some(struct io_conn *c)
{
    struct evbuffer_iovec v[2];
    struct iovec iov[2];
    size_t want = read_size(c), left;
    ssize_t n;
    int nv, i;

    if (want == 0)
        return -2;
    if (want <= IO_READ_MIN)
        return read_small(c, want);
    nv = evbuffer_reserve_space(c->in, (ev_ssize_t)want, v, 2);
    if (nv <= 0) {
        errno = ENOMEM;
        return -1;
    }
    left = want;
    for (i = 0; i < nv; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len < left ? v[i].iov_len : left;
        left -= iov[i].iov_len;
    }
    n = readv(c->fd, iov, nv);
    if (n <= 0)
        return n;
    left = (size_t)n;
    for (i = 0; i < nv && left > 0; i++) {
        v[i].iov_len = iov[i].iov_len < left ? iov[i].iov_len : left;
        left -= v[i].iov_len;
    }
    evbuffer_commit_space(c->in, v, i);
    adapt(c, want, (size_t)n);
    return n;
}

#define IO_TLS_FAILED (-3)

/* What no socket event will announce: decrypted bytes OpenSSL holds
 * (tls_read_some stopped at its limit), or the end of the session found
 * after data. */
static int tls_has_more(const struct io_conn *c)
{
    const struct io_tls *t = c->tls;

    return t != NULL && t->ssl != NULL && !t->handshaking && !t->read_wants_write &&
           (t->end != TLS_OPEN || SSL_has_pending(t->ssl));
}

/*
 * TLS: decrypted records into the input, up to what read_size() allows.
 * One SSL_read returns at most one record, so it loops until the socket has
 * nothing more (WANT_READ); what OpenSSL still holds past the limit, and an
 * end found after data, are announced with io_conn_read_again (no socket
 * event would). Returns what read_some() would, or IO_TLS_FAILED
 * (c->tls->why says why).
 */
static ssize_t tls_read_some(struct io_conn *c)
{
    struct io_tls *t = c->tls;
    size_t want = read_size(c), got = 0;

    if (want == 0)
        return -2;
    while (got < want && t->end == TLS_OPEN) {
        struct evbuffer_iovec v;
        size_t room = want - got < TLS_CHUNK ? want - got : TLS_CHUNK;
        int n, err;

        if (evbuffer_reserve_space(c->in, (ev_ssize_t)room, &v, 1) < 1) {
            errno = ENOMEM;
            return -1;
        }
        ERR_clear_error();
        n = SSL_read(t->ssl, v.iov_base, (int)(v.iov_len < room ? v.iov_len : room));
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(c->in, &v, 1);
            got += (size_t)n;
            continue;
        }
        err = SSL_get_error(t->ssl, n);
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err == SSL_ERROR_WANT_WRITE) {
            /* A key update or renegotiation to answer, and the socket is
             * full: reading waits for the write event (on_write). */
            t->read_wants_write = 1;
            update_read(c);
            if (!c->waiting) {
                c->waiting = 1;
                event_add(c->wr, NULL);
            }
            break;
        }
        if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
            t->end = TLS_CLOSED;
        } else {
            tls_error(t->ssl, t->why, sizeof(t->why));
            t->end = TLS_FAILED;
        }
    }
    if (got == 0 && t->end != TLS_OPEN)
        return t->end == TLS_FAILED ? IO_TLS_FAILED : 0;
    if (got == 0) {
        errno = EAGAIN;
        return -1;
    }
    adapt(c, want, got);
    if (tls_has_more(c))
        io_conn_read_again(c);
    return (ssize_t)got;
}

static int write_some(struct io_conn *c);
static void handshake_step(struct io_conn *c);

/* The socket has input (or, for TLS, may let a stalled operation go on). */
static void read_event(struct io_conn *c)
{
    ssize_t n;

    if (c->tls != NULL && c->tls->write_wants_read) {
        c->tls->write_wants_read = 0;
        if (write_some(c) < 0)
            return;
    }
    n = c->tls != NULL ? tls_read_some(c) : read_some(c);
    if (n == 0) {
        fire(c, IO_EOF, 0);
        return;
    }
    if (n == IO_TLS_FAILED) {
        fire(c, IO_ERROR | IO_TLS, 0);
        return;
    }
    if (n == -1 && !would_block(errno)) {
        fire(c, IO_ERROR, errno);
        return;
    }
    if (n == -1 && evbuffer_get_length(c->in) == 0)
        return;
    if (c->read_max > 0 && evbuffer_get_length(c->in) >= c->read_max)
        update_read(c);
    c->h->read(c->arg);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct io_conn *c = arg;

    RZ_UNUSED(fd);
    if (what & EV_TIMEOUT) {
        fire(c, IO_TIMEOUT, ETIMEDOUT);
        return;
    }
    if (c->tls != NULL && c->tls->handshaking) {
        handshake_step(c);
        return;
    }
    read_event(c);
}

void io_conn_read(struct io_conn *c, int on)
{
    c->reading = on != 0;
    if (c->in != NULL)
        update_read(c);
}

void io_conn_read_max(struct io_conn *c, size_t max)
{
    c->read_max = max;
    if (c->in != NULL)
        update_read(c);
}

void io_conn_read_timeout(struct io_conn *c, int ms)
{
    c->read_ms = ms;
    if (c->in != NULL && (c->rd_on || c->rd_timed))
        update_read(c);
}

void io_conn_read_again(struct io_conn *c)
{
    if (c->rd != NULL)
        event_active(c->rd, EV_READ, 0);
}

/* ---- writing ----------------------------------------------------------- */

void io_conn_queued(struct io_conn *c)
{
    if (c->listed || c->waiting || c->connecting || c->out == NULL)
        return;   /* queued already, or the write event or the connect will do it */
    c->listed = 1;
    if (TAILQ_EMPTY(&flush_list))
        event_active(flush_ev, EV_TIMEOUT, 0);
    TAILQ_INSERT_TAIL(&flush_list, c, link);
}

/*
 * TLS: the output, encrypted, a record's worth at a time (copied out of the
 * evbuffer, so small chains make full records). A write that has to wait is
 * repeated with exactly the same bytes, as OpenSSL requires. Returns 0 when
 * everything went, 1 when the socket is full, 2 when OpenSSL needs input
 * first, -1 on failure (c->tls->why).
 */
static int tls_write_some(struct io_conn *c)
{
    static char chunk[TLS_CHUNK];
    struct io_tls *t = c->tls;

    while (evbuffer_get_length(c->out) > 0) {
        size_t have = evbuffer_get_length(c->out);
        size_t len = t->retry_len ? t->retry_len : have < sizeof(chunk) ? have : sizeof(chunk);
        int n, err;

        if (evbuffer_copyout(c->out, chunk, len) != (ev_ssize_t)len)
            abort();        /* the bytes of a retried write are still there */
        ERR_clear_error();
        n = SSL_write(t->ssl, chunk, (int)len);
        if (n > 0) {
            evbuffer_drain(c->out, (size_t)n);
            t->retry_len = 0;
            continue;
        }
        err = SSL_get_error(t->ssl, n);
        t->retry_len = len;
        if (err == SSL_ERROR_WANT_WRITE)
            return 1;
        if (err == SSL_ERROR_WANT_READ) {
            t->write_wants_read = 1;
            return 2;
        }
        tls_error(t->ssl, t->why, sizeof(t->why));
        return -1;
    }
    return 0;
}

/* Write what is queued; a full socket gets the write event until it
 * drains. Returns -1 if the connection failed (the owner was told). */
static int write_some(struct io_conn *c)
{
    int full;

    if (c->tls != NULL) {
        int r = tls_write_some(c);

        if (r < 0) {
            fire(c, IO_ERROR | IO_TLS, 0);
            return -1;
        }
        full = r == 1 || c->tls->read_wants_write;
    } else {
        if (evbuffer_get_length(c->out) > 0 && evbuffer_write(c->out, c->fd) < 0 &&
            !would_block(errno)) {
            fire(c, IO_ERROR, errno);
            return -1;
        }
        full = evbuffer_get_length(c->out) > 0;
    }
    if (full && !c->waiting) {
        c->waiting = 1;
        event_add(c->wr, NULL);
    } else if (!full && c->waiting) {
        c->waiting = 0;
        event_del(c->wr);
    }
    return 0;
}

static void flush_one(struct io_conn *c)
{
    if (c->fd < 0 || c->connecting)
        return;
    if (write_some(c) == 0 && evbuffer_get_length(c->out) <= c->low)
        c->h->drained(c->arg);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct io_conn *c;

    RZ_UNUSED(fd);
    RZ_UNUSED(what);
    RZ_UNUSED(arg);
    /* A drained() callback may queue more (and even close others): take
     * one at a time from the head. */
    while ((c = TAILQ_FIRST(&flush_list)) != NULL) {
        TAILQ_REMOVE(&flush_list, c, link);
        c->listed = 0;
        flush_one(c);
    }
}

/* ---- connecting -------------------------------------------------------- */

static void on_write(evutil_socket_t fd, short what, void *arg);

static void make_events(struct io_conn *c, evutil_socket_t fd)
{
    if (c->rd != NULL)
        event_free(c->rd);
    if (c->wr != NULL)
        event_free(c->wr);
    c->rd = NULL;
    c->rd_on = 0;
    c->rd_timed = 0;
    c->fd = fd;
    if (fd >= 0) {
        c->rd = event_new(proxy.base, fd, EV_READ | EV_PERSIST, on_read, c);
        c->wr = event_new(proxy.base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    } else {
        c->wr = event_new(proxy.base, -1, 0, on_write, c);   /* a timer while resolving */
    }
    if ((fd >= 0 && c->rd == NULL) || c->wr == NULL)
        util_oom(sizeof(struct event *));
}

static void add_connect_timeout(struct io_conn *c)
{
    struct timeval tv = { c->connect_ms / 1000, (c->connect_ms % 1000) * 1000 };

    event_add(c->wr, c->connect_ms > 0 ? &tv : NULL);
}

/* Report a failed connect from the loop, not from inside the caller. */
static void fail_later(struct io_conn *c, int err)
{
    c->conn_err = err != 0 ? err : EIO;
    event_active(c->wr, EV_WRITE, 0);
}

static void connect_addr(struct io_conn *c, const struct sockaddr *sa, socklen_t len)
{
    evutil_socket_t fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        fail_later(c, errno);
        return;
    }
    make_events(c, fd);
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        fail_later(c, errno);
        return;
    }
    add_connect_timeout(c);
}

static void connected(struct io_conn *c)
{
    c->connecting = 0;
    event_del(c->wr);
    update_read(c);
    /* Listed before the owner hears of it: it may close us. */
    if (evbuffer_get_length(c->out) > 0)
        io_conn_queued(c);
    fire(c, IO_CONNECTED, 0);
}

/* ---- TLS handshake ------------------------------------------------------- */

/* Wait for the socket to be readable (or writable) until the deadline:
 * exactly one of the two events is armed. */
static void handshake_wait(struct io_conn *c, int for_read)
{
    uint64_t now = util_now_ms();
    uint64_t left = c->tls->deadline_ms > now ? c->tls->deadline_ms - now : 1;
    struct timeval tv = { (time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000) };

    event_del(for_read ? c->wr : c->rd);
    event_add(for_read ? c->rd : c->wr, &tv);
    c->rd_on = for_read;
    if (for_read)
        c->rd_timed = 1;        /* update_read() makes it afresh, without the timeout */
}

static void handshake_step(struct io_conn *c)
{
    struct io_tls *t = c->tls;
    int r, err;

    ERR_clear_error();
    r = SSL_connect(t->ssl);
    if (r == 1) {
        t->handshaking = 0;
        event_del(c->rd);
        c->rd_on = 0;
        connected(c);
        return;
    }
    err = SSL_get_error(t->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        handshake_wait(c, err == SSL_ERROR_WANT_READ);
        return;
    }
    tls_error(t->ssl, t->why, sizeof(t->why));
    fire(c, IO_ERROR | IO_TLS, 0);
}

/* The TCP connect is done: the TLS handshake follows, within a
 * connect-timeout of its own. */
static void start_handshake(struct io_conn *c)
{
    struct io_tls *t = c->tls;

    t->ssl = tls_session_new(t->ctx, t->host, t->name, t->why, sizeof(t->why));
    tls_ctx_free(t->ctx);       /* the session holds its own reference */
    t->ctx = NULL;
    if (t->ssl == NULL || SSL_set_fd(t->ssl, c->fd) != 1) {
        if (t->ssl != NULL)
            tls_error(t->ssl, t->why, sizeof(t->why));
        fire(c, IO_ERROR | IO_TLS, 0);
        return;
    }
    t->handshaking = 1;
    t->deadline_ms = util_now_ms() + (uint64_t)(c->connect_ms > 0 ? c->connect_ms : 60000);
    handshake_step(c);
}

static void connect_done(struct io_conn *c, short what)
{
    int err = c->conn_err;
    socklen_t len = sizeof(err);

    if (c->dns_err != 0) {
        fire(c, IO_ERROR | IO_DNS, c->dns_err);
        return;
    }
    if (err == 0 && (what & EV_TIMEOUT)) {
        fire(c, IO_TIMEOUT, ETIMEDOUT);
        return;
    }
    if (err == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        fire(c, IO_ERROR, err);
        return;
    }
    if (c->tls != NULL)
        start_handshake(c);
    else
        connected(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct io_conn *c = arg;

    RZ_UNUSED(fd);
    if (c->tls != NULL && c->tls->handshaking) {
        if (what & EV_TIMEOUT)
            fire(c, IO_TIMEOUT, ETIMEDOUT);
        else
            handshake_step(c);
        return;
    }
    if (c->connecting) {
        connect_done(c, what);
        return;
    }
    if (c->tls != NULL && c->tls->read_wants_write) {
        c->tls->read_wants_write = 0;
        update_read(c);
        read_event(c);
        if (c->out == NULL)
            return;         /* closed by the owner */
    }
    if (write_some(c) == 0 && evbuffer_get_length(c->out) <= c->low)
        c->h->drained(c->arg);
}

static void resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
    struct io_lookup *lk = arg;
    struct io_conn *c = lk->c;

    free(lk);
    if (c == NULL) {             /* closed meanwhile (or cancelled by closing) */
        if (ai != NULL)
            evutil_freeaddrinfo(ai);
        return;
    }
    c->lookup = NULL;
    if (err != 0 || ai == NULL) {
        c->dns_err = err != 0 ? err : EVUTIL_EAI_FAIL;
        fail_later(c, 0);
    } else {
        connect_addr(c, ai->ai_addr, (socklen_t)ai->ai_addrlen);
    }
    if (ai != NULL)
        evutil_freeaddrinfo(ai);
}

static void resolve(struct io_conn *c, const char *host, int port)
{
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;
    struct io_lookup *lk;
    char serv[16];

    if (proxy.dns == NULL)
        proxy.dns = evdns_base_new(proxy.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    make_events(c, -1);
    add_connect_timeout(c);
    if (proxy.dns == NULL) {     /* no resolver: fails like a lookup would */
        c->dns_err = EVUTIL_EAI_FAIL;
        fail_later(c, 0);
        return;
    }
    lk = xcalloc(1, sizeof(*lk));
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(serv, sizeof(serv), "%d", port);
    lk->c = c;
    c->lookup = lk;
    /* The answer may come before this returns (an address, /etc/hosts):
     * then lk is gone and c->lookup is NULL again. */
    req = evdns_getaddrinfo(proxy.dns, host, serv, &hints, resolved, lk);
    if (c->lookup == lk)
        lk->req = req;
}

static void setup(struct io_conn *c, const struct io_handler *h, void *arg, size_t low)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->h = h;
    c->arg = arg;
    c->low = low;
    c->rsize = IO_READ_MIN;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (c->in == NULL || c->out == NULL)
        util_oom(sizeof(struct evbuffer *));
}

void io_conn_accept(struct io_conn *c, evutil_socket_t fd, const struct io_handler *h, void *arg,
                    size_t low)
{
    setup(c, h, arg, low);
    make_events(c, fd);
}

/* An outgoing connection: c->connecting until the TCP connect (and the TLS
 * handshake, with a context) is done. */
static void setup_outgoing(struct io_conn *c, int connect_ms, const struct io_handler *h,
                           void *arg, size_t low, struct ssl_ctx_st *tls, const char *host,
                           const char *tls_name)
{
    setup(c, h, arg, low);
    c->connecting = 1;
    if (tls != NULL) {
        c->tls = xcalloc(1, sizeof(*c->tls));
        SSL_CTX_up_ref(tls);
        c->tls->ctx = tls;
        c->tls->host = xstrdup(host);
        c->tls->name = tls_name != NULL && tls_name[0] ? xstrdup(tls_name) : NULL;
    }
    c->connect_ms = connect_ms;
}

void io_conn_connect(struct io_conn *c, const char *host, int port, int connect_ms,
                     const struct io_handler *h, void *arg, size_t low,
                     struct ssl_ctx_st *tls, const char *tls_name)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    char addr[300];

    setup_outgoing(c, connect_ms, h, arg, low, tls, host, tls_name);
    snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) == 0)
        connect_addr(c, (struct sockaddr *)&ss, (socklen_t)sslen);
    else
        resolve(c, host, port);
}

/* The same path as io_conn_connect's once connect() returned: the write
 * event says the socket is connected (a connected socket is writable at
 * once), connect_done() checks SO_ERROR and starts the handshake. */
void io_conn_attach(struct io_conn *c, evutil_socket_t fd, int connect_ms,
                    const struct io_handler *h, void *arg, size_t low,
                    struct ssl_ctx_st *tls, const char *tls_name)
{
    setup_outgoing(c, connect_ms, h, arg, low, tls, tls_name != NULL ? tls_name : "", tls_name);
    make_events(c, fd);
    add_connect_timeout(c);
}

/* ---- closing ----------------------------------------------------------- */

/* A close_notify is sent if the socket takes it at once (redis does not
 * wait for one), then the session goes. */
static void tls_close(struct io_conn *c)
{
    struct io_tls *t = c->tls;

    if (t->ssl != NULL) {
        /* Not after a fatal error: OpenSSL forbids it (why is set then). */
        if (!t->handshaking && c->fd >= 0 && t->why[0] == '\0')
            (void)SSL_shutdown(t->ssl);
        SSL_free(t->ssl);
    }
    ERR_clear_error();
    if (t->ctx != NULL)
        tls_ctx_free(t->ctx);
    free(t->host);
    free(t->name);
    free(t);
    c->tls = NULL;
}

void io_conn_close(struct io_conn *c)
{
    if (c->listed)
        TAILQ_REMOVE(&flush_list, c, link);
    c->listed = 0;
    if (c->lookup != NULL) {
        struct io_lookup *lk = c->lookup;
        c->lookup = NULL;
        lk->c = NULL;            /* resolved() frees it, now or later */
        if (lk->req != NULL)
            evdns_getaddrinfo_cancel(lk->req);
    }
    if (c->rd != NULL)
        event_free(c->rd);
    if (c->wr != NULL)
        event_free(c->wr);
    c->rd = c->wr = NULL;
    if (c->in != NULL)
        evbuffer_free(c->in);
    if (c->out != NULL)
        evbuffer_free(c->out);
    c->in = c->out = NULL;
    if (c->tls != NULL)
        tls_close(c);
    if (c->fd >= 0)
        evutil_closesocket(c->fd);
    c->fd = -1;
}

const char *io_conn_tls_error(const struct io_conn *c)
{
    return c->tls != NULL ? c->tls->why : "";
}

/* ---- the flush event --------------------------------------------------- */

void io_init(void)
{
    flush_ev = event_new(proxy.base, -1, 0, flush_cb, NULL);
}

void io_free(void)
{
    if (flush_ev != NULL)
        event_free(flush_ev);
    flush_ev = NULL;
}
