/*
 * relay: the "physical floor" for the rzproxy benchmark.
 *
 *   relay LISTEN_PORT TARGET_HOST TARGET_PORT
 *
 * Listens on 127.0.0.1:LISTEN_PORT. Every accepted client gets a backend
 * connection of its own to TARGET_HOST:TARGET_PORT, and bytes are copied
 * both ways unchanged; nothing is parsed. One thread, one level-triggered
 * epoll set, non-blocking sockets.
 *
 *   client fd --read--> s[0].buf --write--> backend fd
 *   client fd <--write-- s[1].buf <--read-- backend fd
 *
 * Each side owns the buffer of the bytes it read and that wait for the
 * other side. A side is only read while its buffer has room, so a slow
 * reader stops the other direction's writer (backpressure, no unbounded
 * memory). After a read we try the write at once, which saves a trip
 * through epoll_wait in the common case. EOF or an error on either side
 * closes both; pairs are freed after the epoll batch, as later events in
 * the same batch may still point at them.
 */
#define _GNU_SOURCE                     /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (16 * 1024)            /* bytes per direction */
#define MAX_EVENTS 256

struct pair;

struct side {
    int fd;                             /* client (s[0]) or backend (s[1]) */
    unsigned int events;                /* epoll interest now registered */
    size_t off, len;                    /* buf[off..len) waits for the peer */
    char buf[BUF_SIZE];                 /* bytes read from fd */
    struct pair *pair;
};

struct pair {
    struct side s[2];
    int connected;                      /* backend connect() has finished */
    int dead;                           /* closed, free after this batch */
    struct pair *next_dead;
};

static int ep;
static struct pair *dead_list;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void pair_close(struct pair *p)
{
    if (p->dead)
        return;
    p->dead = 1;
    close(p->s[0].fd);                  /* close() also leaves the epoll set */
    close(p->s[1].fd);
    p->next_dead = dead_list;
    dead_list = p;
}

/* Register what side s waits for: room to read, or bytes to write. */
static void side_update(struct side *s)
{
    struct side *peer = &s->pair->s[s == &s->pair->s[0]];
    unsigned int ev = 0;
    if (s->len < BUF_SIZE)
        ev |= EPOLLIN;
    if (peer->len > peer->off || (s == &s->pair->s[1] && !s->pair->connected))
        ev |= EPOLLOUT;
    if (ev != s->events) {
        struct epoll_event e = { .events = ev, .data.ptr = s };
        if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e) < 0)
            die("epoll_ctl");
        s->events = ev;
    }
}

/* Write what src holds to dst. Returns -1 when the pair must close. */
static int flush(struct side *src, struct side *dst)
{
    while (src->len > src->off) {
        ssize_t n = send(dst->fd, src->buf + src->off, src->len - src->off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        src->off += (size_t)n;
    }
    src->off = src->len = 0;
    return 0;
}

static void on_event(struct side *s, unsigned int ev)
{
    struct pair *p = s->pair;
    struct side *peer = &p->s[s == &p->s[0]];
    if (p->dead)
        return;
    if (s == &p->s[1] && !p->connected && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            fprintf(stderr, "relay: backend connect: %s\n", strerror(err ? err : errno));
            pair_close(p);
            return;
        }
        p->connected = 1;
    }
    if ((ev & (EPOLLIN | EPOLLHUP)) && s->len < BUF_SIZE) {
        ssize_t n = read(s->fd, s->buf + s->len, BUF_SIZE - s->len);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            pair_close(p);              /* EOF or error: close both sides */
            return;
        }
        if (n > 0)
            s->len += (size_t)n;
    }
    /* nothing can be buffered for or from the backend before it connected */
    if ((ev & EPOLLERR) || (p->connected && (flush(s, peer) < 0 || flush(peer, s) < 0))) {
        pair_close(p);
        return;
    }
    side_update(s);
    side_update(peer);
}

static void side_add(struct side *s, struct pair *p, int fd)
{
    struct epoll_event e = { .events = EPOLLIN, .data.ptr = s };
    int one = 1;
    s->fd = fd;
    s->pair = p;
    s->events = EPOLLIN;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)
        die("epoll_ctl add");
}

static void on_accept(int lfd, const struct sockaddr_in *target)
{
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                perror("relay: accept");
            return;
        }
        struct pair *p = calloc(1, sizeof(*p));
        int bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p == NULL || bfd < 0)
            die("relay: new pair");     /* out of memory or files: a bench tool may stop */
        side_add(&p->s[0], p, cfd);
        side_add(&p->s[1], p, bfd);
        if (connect(bfd, (const struct sockaddr *)target, sizeof(*target)) == 0)
            p->connected = 1;
        else if (errno != EINPROGRESS) {
            perror("relay: connect");
            pair_close(p);
            continue;
        }
        side_update(&p->s[1]);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in laddr = { .sin_family = AF_INET }, target = { .sin_family = AF_INET };
    struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL }, events[MAX_EVENTS];
    int one = 1, lfd;

    if (argc != 4 || inet_pton(AF_INET, argv[2], &target.sin_addr) != 1) {
        fprintf(stderr, "usage: relay LISTEN_PORT TARGET_IPV4 TARGET_PORT\n");
        return 2;
    }
    laddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    laddr.sin_port = htons((unsigned short)atoi(argv[1]));
    target.sin_port = htons((unsigned short)atoi(argv[3]));

    if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&laddr, sizeof(laddr)) < 0 || listen(lfd, 1024) < 0)
        die("bind/listen");
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e) < 0)
        die("epoll");

    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                on_accept(lfd, &target);
            else
                on_event(events[i].data.ptr, events[i].events);
        }
        while (dead_list) {
            struct pair *p = dead_list;
            dead_list = p->next_dead;
            free(p);
        }
    }
}
