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

#include "proxy.h"
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

static int want_read(const struct io_conn *c)
{
    return c->reading && c->rd != NULL && !c->connecting &&
           (c->read_max == 0 || evbuffer_get_length(c->in) < c->read_max);
}

static void on_read(evutil_socket_t fd, short what, void *arg);

static void update_read(struct io_conn *c)
{
    struct timeval tv = { c->read_ms / 1000, (c->read_ms % 1000) * 1000 };

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

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct io_conn *c = arg;
    ssize_t n;

    RZ_UNUSED(fd);
    if (what & EV_TIMEOUT) {
        fire(c, IO_TIMEOUT, ETIMEDOUT);
        return;
    }
    n = read_some(c);
    if (n == 0) {
        fire(c, IO_EOF, 0);
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

/* Write what is queued; a full socket gets the write event until it
 * drains. Returns -1 if the connection failed (the owner was told). */
static int write_some(struct io_conn *c)
{
    if (evbuffer_get_length(c->out) > 0 && evbuffer_write(c->out, c->fd) < 0 &&
        !would_block(errno)) {
        fire(c, IO_ERROR, errno);
        return -1;
    }
    if (evbuffer_get_length(c->out) > 0 && !c->waiting) {
        c->waiting = 1;
        event_add(c->wr, NULL);
    } else if (evbuffer_get_length(c->out) == 0 && c->waiting) {
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
    connected(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct io_conn *c = arg;

    RZ_UNUSED(fd);
    if (c->connecting) {
        connect_done(c, what);
        return;
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

void io_conn_connect(struct io_conn *c, const char *host, int port, int connect_ms,
                     const struct io_handler *h, void *arg, size_t low)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    char addr[300];

    setup(c, h, arg, low);
    c->connecting = 1;
    c->connect_ms = connect_ms;
    snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) == 0)
        connect_addr(c, (struct sockaddr *)&ss, (socklen_t)sslen);
    else
        resolve(c, host, port);
}

/* ---- closing ----------------------------------------------------------- */

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
    if (c->fd >= 0)
        evutil_closesocket(c->fd);
    c->fd = -1;
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
