/*
 * io: one non-blocking socket with an input and an output buffer, read and
 * written by the loop. Clients and backends each embed one.
 *
 * Why not libevent's bufferevents: every bufferevent read asks the kernel
 * how much is readable (ioctl FIONREAD) and then reads at most 4 KiB, and
 * every reply or request made it add and remove its write event (two
 * epoll_ctl). Here a read is one readv() into the input's free space, sized
 * by how much the last read found; and writes are batched: whoever appends
 * to the output calls io_conn_queued(), which lists the connection (no
 * evbuffer callback runs on every change), and once the callbacks of this loop
 * iteration have run, one writev per connection sends everything queued
 * (many clients' requests to a shared backend in one write). Only a socket
 * that cannot take it all gets a write event, until it drains.
 */
#ifndef RZ_IO_H
#define RZ_IO_H

#include <stddef.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/util.h>

struct event;
struct evbuffer;
struct io_lookup;
struct io_tls;
struct ssl_ctx_st;

/* What happened, for io_handler.event. */
#define IO_CONNECTED 0x01    /* an outgoing connect completed */
#define IO_EOF       0x02    /* the peer closed */
#define IO_ERROR     0x04    /* err is an errno, or with IO_DNS a getaddrinfo code */
#define IO_TIMEOUT   0x08    /* connect, or the read timeout */
#define IO_DNS       0x10
#define IO_TLS       0x20    /* with IO_ERROR: the TLS handshake or session failed,
                                io_conn_tls_error() says why */

struct io_handler {
    void (*read)(void *arg);                  /* input has new bytes */
    void (*drained)(void *arg);               /* a write left at most `low` bytes queued */
    void (*event)(void *arg, int what, int err);  /* except IO_CONNECTED, the owner closes */
};

struct io_conn {
    evutil_socket_t fd;          /* -1 while resolving, and once closed */
    struct evbuffer *in, *out;   /* NULL once closed */
    struct event *rd, *wr;
    const struct io_handler *h;
    void *arg;
    size_t low;                  /* see io_handler.drained */
    size_t read_max;             /* stop reading while the input holds this much, 0 = no limit */
    size_t rsize;                /* next read's size: grows while reads fill it */
    int read_ms;                 /* read timeout while reading, 0 = none */
    int connect_ms;
    int conn_err;                /* a connect failure to report from the loop */
    int dns_err;
    unsigned reading : 1;        /* the owner wants input */
    unsigned rd_on : 1;          /* rd is added */
    unsigned rd_timed : 1;       /* ... with a timeout (read_ms) */
    unsigned connecting : 1;
    unsigned listed : 1;         /* on the flush list */
    unsigned waiting : 1;        /* wr is added: the socket was full */
    struct io_lookup *lookup;    /* host name being resolved */
    struct io_tls *tls;          /* TLS session, NULL for plain TCP */
    TAILQ_ENTRY(io_conn) link;
};

void io_init(void);
void io_free(void);

/* Take over an accepted, non-blocking socket. Reading starts off. */
void io_conn_accept(struct io_conn *c, evutil_socket_t fd, const struct io_handler *h, void *arg,
                    size_t low);
/* Connect to host:port (an address, or a name resolved without blocking).
 * With a TLS context, the TLS handshake follows (within another
 * connect_ms), the master's certificate checked against tls_name or else
 * host (tls.h); IO_CONNECTED comes once it is done. The outcome
 * (IO_CONNECTED, or an error or timeout) always arrives from the loop,
 * never from inside this call. Writes queue up meanwhile. */
void io_conn_connect(struct io_conn *c, const char *host, int port, int connect_ms,
                     const struct io_handler *h, void *arg, size_t low,
                     struct ssl_ctx_st *tls, const char *tls_name);
/* Take over a socket that is already connected (non-blocking; c owns it
 * from now on) as an outgoing connection: as io_conn_connect once the TCP
 * connect is done. With a TLS context the handshake follows (within
 * connect_ms), the certificate checked against tls_name (needed then: there
 * is no host to fall back on). IO_CONNECTED, or the failure, arrives from
 * the loop, never from inside this call; writes queue up meanwhile. For a
 * socket made elsewhere: a socketpair in tests/fuzz/fuzz_tls.c, a
 * connection handed over by another process. */
void io_conn_attach(struct io_conn *c, evutil_socket_t fd, int connect_ms,
                    const struct io_handler *h, void *arg, size_t low,
                    struct ssl_ctx_st *tls, const char *tls_name);
/* Why IO_TLS came. */
const char *io_conn_tls_error(const struct io_conn *c);
/* Close the socket and free the buffers; no callback runs afterwards. */
void io_conn_close(struct io_conn *c);
static inline int io_conn_live(const struct io_conn *c)
{
    return c->in != NULL;
}

void io_conn_read(struct io_conn *c, int on);
void io_conn_read_max(struct io_conn *c, size_t max);
void io_conn_read_timeout(struct io_conn *c, int ms);
/* Bytes already in the input were left unprocessed: call read() again
 * from the loop. */
void io_conn_read_again(struct io_conn *c);
static inline size_t io_conn_out_len(const struct io_conn *c)
{
    return c->out != NULL ? evbuffer_get_length(c->out) : 0;
}
/* Bytes were appended to c->out: send them once this loop iteration's
 * callbacks have run. */
void io_conn_queued(struct io_conn *c);

#endif
