/*
 * mixload: a fixed GET/SET mix for contrib/bench/reads.sh.
 *
 *   mixload PORT CLIENTS PIPELINE EVERY SIZE WARMUP_S SECONDS_S TAIL_S
 *
 * CLIENTS connections to 127.0.0.1:PORT in one process (one thread, epoll).
 * Each client sends PIPELINE commands at once and waits for their replies
 * before the next batch (redis-benchmark's -P). Of each client's commands,
 * every EVERY-th is `SET bench:reads:key <SIZE bytes>` and the others are
 * `GET bench:reads:key` (EVERY=10: 90% GET, 10% SET exactly; the clients
 * start at different points of the cycle, so their SETs do not coincide).
 * One key, as redis-benchmark without -r.
 *
 * redis-benchmark runs one command per process; two of them at once (many
 * GET clients, few SET clients) do not give the mix their client counts
 * say: the process with fewer clients turns its replies around sooner. Here
 * GET and SET share every client, so the mix is exact whatever each costs.
 *
 * Runs WARMUP_S seconds unmeasured, then SECONDS_S measured, then prints
 * one line on stdout:
 *   gets=N sets=N errors=N seconds=S get_p50_us=N get_p99_us=N set_p50_us=N set_p99_us=N
 * and keeps the load going, unmeasured, for TAIL_S more seconds (so a
 * caller that measures the servers over its own window, a moment later,
 * has load until it stops this process), then exits 0. It counts the
 * replies that arrived in the measured window; a command's
 * latency runs from its batch's write to its reply (1 us buckets up to
 * 100 ms; more counts as 100000). An error reply is counted (the first is
 * printed on stderr); a connection that fails or closes ends it with exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_US 100000
#define RBUF 65536

struct client {
    int fd;
    long seq;                           /* commands sent so far */
    int inflight;                       /* replies still due for this batch */
    int kinds[1024];                    /* 1 = SET, per command of the batch */
    int next_kind;                      /* index of the next reply's command */
    double sent_at;                     /* when the batch was written */
    char *out;                          /* unsent bytes of the batch */
    size_t out_off, out_len;
    int blocked;                        /* EPOLLOUT registered: out is pending */
    char in[RBUF];
    size_t in_len;
};

static int pipeline, every, size;
static char *get_cmd, *set_cmd;
static size_t get_len, set_len;
static unsigned long hist[2][MAX_US + 1];
static unsigned long count[2], errors;
static int measuring;
static int ep;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static void add_out(struct client *c, const char *p, size_t n)
{
    c->out = realloc(c->out, c->out_len + n);
    if (!c->out)
        fail("realloc");
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void want_write(struct client *c, int on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl");
}

/* Write what is pending; if the socket is full, ask epoll for EPOLLOUT. */
static void flush_out(struct client *c)
{
    int was_blocked = c->out_off > 0 || c->blocked;
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!c->blocked)
                    want_write(c, 1);
                c->blocked = 1;
                return;
            }
            fail("write");
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    if (was_blocked && c->blocked) {
        want_write(c, 0);
        c->blocked = 0;
    }
}

static int fcntl_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void send_batch(struct client *c)
{
    int i;
    for (i = 0; i < pipeline; i++) {
        int is_set = (c->seq % every) == every - 1;
        c->kinds[i] = is_set;
        if (is_set)
            add_out(c, set_cmd, set_len);
        else
            add_out(c, get_cmd, get_len);
        c->seq++;
    }
    c->inflight = pipeline;
    c->next_kind = 0;
    c->sent_at = now();
    flush_out(c);
}

/* One complete reply at the start of buf: its length, 0 if incomplete. */
static size_t reply_len(const char *buf, size_t len, int *is_err)
{
    const char *eol = memchr(buf, '\n', len);
    size_t head;
    long n;
    if (!eol)
        return 0;
    head = (size_t)(eol - buf) + 1;
    *is_err = buf[0] == '-';
    if (buf[0] != '$')
        return head;                    /* +OK, -ERR, :N */
    n = strtol(buf + 1, NULL, 10);
    if (n < 0)
        return head;                    /* $-1: no value */
    if (len < head + (size_t)n + 2)
        return 0;
    return head + (size_t)n + 2;
}

static void on_readable(struct client *c, double t)
{
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->in_len, RBUF - c->in_len);
        size_t off = 0, r;
        int is_err;
        if (n == 0) {
            fprintf(stderr, "mixload: the server closed a connection\n");
            exit(1);
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            fail("read");
        }
        c->in_len += (size_t)n;
        while (c->inflight > 0 && (r = reply_len(c->in + off, c->in_len - off, &is_err)) > 0) {
            int kind = c->kinds[c->next_kind++];
            if (is_err) {
                if (errors++ == 0)
                    fprintf(stderr, "mixload: error reply: %.*s\n", (int)r, c->in + off);
            }
            if (measuring) {
                long us = (long)((t - c->sent_at) * 1e6);
                hist[kind][us > MAX_US ? MAX_US : (us < 0 ? 0 : us)]++;
                count[kind]++;
            }
            off += r;
            c->inflight--;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        if (c->in_len == RBUF) {
            fprintf(stderr, "mixload: a reply larger than %d bytes\n", RBUF);
            exit(1);
        }
        if (c->inflight == 0)
            send_batch(c);
    }
}

static long pct(int kind, double p)
{
    unsigned long want = (unsigned long)(p * count[kind]), seen = 0;
    long us;
    if (count[kind] == 0)
        return -1;
    for (us = 0; us <= MAX_US; us++) {
        seen += hist[kind][us];
        if (seen > want)
            return us;
    }
    return MAX_US;
}

static char *resp(int argc, const char **argv, size_t *len)
{
    size_t cap = 64, n = 0;
    int i;
    char *s = malloc(cap);
    for (i = -1; i < argc; i++) {
        size_t need = (i < 0 ? 0 : strlen(argv[i])) + 48;
        if (n + need > cap) {
            cap = (n + need) * 2;
            s = realloc(s, cap);
        }
        if (!s)
            fail("malloc");
        if (i < 0)
            n += (size_t)sprintf(s + n, "*%d\r\n", argc);
        else
            n += (size_t)sprintf(s + n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    }
    *len = n;
    return s;
}

int main(int argc, char **argv)
{
    int port, nclients, i;
    double warmup, seconds, tail, t0, start, end, t;
    int printed = 0;
    struct client *cl;
    struct epoll_event ev, evs[256];
    char *value;

    if (argc != 9) {
        fprintf(stderr, "usage: mixload PORT CLIENTS PIPELINE EVERY SIZE WARMUP_S SECONDS_S TAIL_S\n");
        return 2;
    }
    port = atoi(argv[1]);
    nclients = atoi(argv[2]);
    pipeline = atoi(argv[3]);
    every = atoi(argv[4]);
    size = atoi(argv[5]);
    warmup = atof(argv[6]);
    seconds = atof(argv[7]);
    tail = atof(argv[8]);
    if (port <= 0 || nclients <= 0 || pipeline <= 0 || pipeline > 1024 || every <= 0 || size < 0 ||
        seconds <= 0 || tail < 0) {
        fprintf(stderr, "mixload: bad arguments\n");
        return 2;
    }
    value = malloc((size_t)size + 1);
    memset(value, 'x', (size_t)size);
    value[size] = 0;
    {
        const char *g[] = {"GET", "bench:reads:key"};
        const char *s[] = {"SET", "bench:reads:key", value};
        get_cmd = resp(2, g, &get_len);
        set_cmd = resp(3, s, &set_len);
    }

    ep = epoll_create1(0);
    if (ep < 0)
        fail("epoll_create1");
    cl = calloc((size_t)nclients, sizeof *cl);
    if (!cl)
        fail("calloc");
    for (i = 0; i < nclients; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
        int one = 1;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cl[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (cl[i].fd < 0)
            fail("socket");
        if (connect(cl[i].fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            fail("connect");
        setsockopt(cl[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl_nonblock(cl[i].fd) < 0)
            fail("fcntl");
        /* start each client at its own point of the GET/SET cycle */
        cl[i].seq = i % every;
        ev.events = EPOLLIN;
        ev.data.ptr = &cl[i];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev) < 0)
            fail("epoll_ctl");
    }
    t0 = now();
    start = t0 + warmup;
    end = start + seconds;
    for (i = 0; i < nclients; i++)
        send_batch(&cl[i]);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 50);
        if (n < 0 && errno != EINTR)
            fail("epoll_wait");
        t = now();
        if (!measuring && !printed && t >= start)
            measuring = 1;
        if (measuring && t >= end) {
            measuring = 0;
            printed = 1;
            printf("gets=%lu sets=%lu errors=%lu seconds=%.3f get_p50_us=%ld get_p99_us=%ld set_p50_us=%ld "
                   "set_p99_us=%ld\n", count[0], count[1], errors, t - start, pct(0, 0.5), pct(0, 0.99),
                   pct(1, 0.5), pct(1, 0.99));
            fflush(stdout);
        }
        if (t >= end + tail)
            break;
        for (i = 0; i < n; i++) {
            struct client *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                fprintf(stderr, "mixload: connection error\n");
                return 1;
            }
            if (c->out_len)
                flush_out(c);
            on_readable(c, t);
        }
    }
    return 0;
}
