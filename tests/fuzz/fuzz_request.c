/*
 * fuzz_request: the client side of the data path, without sockets.
 *
 *   input = [2 control bytes][request stream...]
 *
 * The control bytes seed the chunking: the stream is appended to an evbuffer
 * in chunks of 1..N bytes (N from byte 0, lengths varied by a PRNG seeded
 * from byte 1), and after every append resp_reqparser_next() runs the way
 * client.c drives it: loop while it returns 1, drain exactly req->len, stop
 * for good on -1. Each framed request goes through cmd_classify() and
 * session_on_send(), and a reply synthesized from the request itself (its
 * name as the kind, argc - 1 as the count) through session_on_reply(), with
 * a small FIFO of expectations standing in for a backend's queue.
 *
 * Every framed request also goes through resp_args_get(), whose arguments
 * must agree with the framer's (count, and the prefix of the first three it
 * keeps), and SELECT/AUTH/HELLO/CLIENT through clientcmd, whose error lines
 * must be single CRLF-terminated lines.
 *
 * Checks that are ours, not the sanitizers': a framed request is never empty
 * (that would loop forever) and never longer than what is buffered; and a
 * second parser that never takes the fast path (resp_reqparser_slow_only),
 * fed the same chunks, returns the same thing at every call.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "clientcmd.h"
#include "cmd.h"
#include "resp.h"
#include "session.h"

#define FIFO_CAP 64

struct fifo {
    struct session_expect q[FIFO_CAP];
    int head;
    int len;
};

static void fifo_push(struct fifo *f, const struct session_expect *e)
{
    if (f->len == FIFO_CAP) {    /* a real backend would hold the client; drop the oldest */
        f->head = (f->head + 1) % FIFO_CAP;
        f->len--;
    }
    f->q[(f->head + f->len) % FIFO_CAP] = *e;
    f->len++;
}

static struct session_expect *fifo_head(struct fifo *f)
{
    return f->len > 0 ? &f->q[f->head] : NULL;
}

static void fifo_pop(struct fifo *f)
{
    if (f->len > 0) {
        f->head = (f->head + 1) % FIFO_CAP;
        f->len--;
    }
}

/* A reply the request could plausibly get: pub/sub confirmations carry the
 * command's name as kind and a running count as third element. */
static void fake_reply(const struct resp_request *req, unsigned salt, struct resp_reply_info *ri)
{
    static const char types[] = "*>+-:$_";
    size_t n;

    memset(ri, 0, sizeof(*ri));
    ri->type = types[salt % (sizeof(types) - 1)];
    if (ri->type == '*' || ri->type == '>') {
        ri->nelem = 3;
        n = strlen(req->name);
        if (n < RESP_KIND_MAX) {
            memcpy(ri->kind, req->name, n + 1);
            ri->kindlen = n;
        }
        ri->has_count = 1;
        ri->count = req->argc - 1 - (long long)(salt % 3);
    }
}

static void check_request(const struct resp_request *req, size_t buffered)
{
    if (req->len == 0 || req->len > buffered) {
        fprintf(stderr, "fuzz_request: request len %zu with %zu bytes buffered\n", req->len,
                buffered);
        abort();
    }
    if (memchr(req->name, '\0', sizeof(req->name)) == NULL ||
        memchr(req->arg1, '\0', sizeof(req->arg1)) == NULL ||
        memchr(req->arg2, '\0', sizeof(req->arg2)) == NULL) {
        fprintf(stderr, "fuzz_request: name/arg not NUL-terminated\n");
        abort();
    }
}

static void same_request(const struct resp_request *a, const struct resp_request *b)
{
    if (a->len != b->len || a->argc != b->argc || a->flags != b->flags ||
        a->namelen != b->namelen || a->arg1len != b->arg1len || a->arg2len != b->arg2len ||
        strcmp(a->name, b->name) != 0 || strcmp(a->arg1, b->arg1) != 0 ||
        strcmp(a->arg2, b->arg2) != 0) {
        fprintf(stderr, "fuzz_request: fast path framed \"%s\" argc %d len %zu, the reader "
                "\"%s\" argc %d len %zu\n", a->name, a->argc, a->len, b->name, b->argc, b->len);
        abort();
    }
}

static void one_line(const char *what, const char *s, size_t n)
{
    const char *crlf = memmem(s, n, "\r\n", 2);

    if (n < 3 || s[0] != '-' || crlf == NULL || crlf + 2 != s + n) {
        fprintf(stderr, "fuzz_request: %s is not one error line: %.*s\n", what, (int)n, s);
        abort();
    }
}

/* resp_args_get() agrees with the framer; clientcmd answers sanely. */
static void check_args(struct evbuffer *in, const struct resp_request *req,
                       const struct cmd_info *ci)
{
    struct resp_args a;
    char lower[RESP_NAME_MAX];

    if (resp_args_get(in, req, &a) != 0 || a.argc != req->argc) {
        fprintf(stderr, "fuzz_request: resp_args_get: argc %d, framed %d\n", a.argc, req->argc);
        abort();
    }
    util_lower(lower, sizeof(lower), a.argv[0], a.len[0]);
    if (a.len[0] != req->namelen || strcmp(lower, req->name) != 0) {
        fprintf(stderr, "fuzz_request: resp_args_get: name \"%s\", framed \"%s\"\n", lower,
                req->name);
        abort();
    }
    if (ci->flags & CMD_GROUP) {
        struct session_state cur;
        struct clientcmd_move mv;
        struct evbuffer *send = evbuffer_new();
        char err[256];

        session_state_init(&cur);
        if (clientcmd_move_parse(&a, &cur, &mv, send, err, sizeof(err)) < 0)
            one_line("a SELECT/AUTH/HELLO error", err, strlen(err));
        clientcmd_move_free(&mv);
        evbuffer_free(send);
    } else if ((ci->flags & CMD_LOCAL) && strcmp(req->name, "client") == 0) {
        struct clientcmd_names n = { 0 };
        struct evbuffer *out = evbuffer_new();
        char buf[512];
        size_t len;

        clientcmd_client(&n, &a, 2, out);
        len = evbuffer_copyout(out, buf, sizeof(buf));
        if (len > 0 && buf[0] == '-')
            one_line("a CLIENT error", buf, len);
        clientcmd_names_free(&n);
        evbuffer_free(out);
    }
    resp_args_free(&a);
}

/* The reader-only parser's next step must be the same as the one just taken. */
static void shadow(struct resp_reqparser *p2, struct evbuffer *in2, int r,
                   const struct resp_request *req, const char *err)
{
    struct resp_request req2;
    char err2[256];
    int r2 = resp_reqparser_next(p2, in2, &req2, err2, sizeof(err2));

    if (r2 != r || (r < 0 && strcmp(err, err2) != 0)) {
        fprintf(stderr, "fuzz_request: fast path returned %d (%s), the reader %d (%s)\n", r,
                r < 0 ? err : "", r2, r2 < 0 ? err2 : "");
        abort();
    }
    if (r == 1) {
        same_request(req, &req2);
        if (evbuffer_drain(in2, req2.len) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct resp_reqparser *p, *p2;
    struct evbuffer *in, *in2;
    struct resp_request req;
    struct session sess;
    struct fifo fifo;
    char err[256];
    unsigned maxchunk = 0, rng = 1;
    size_t off = 0;
    int failed = 0;

    if (size >= 2) {
        maxchunk = data[0];              /* 0 = everything at once */
        rng = data[1] * 2654435761u + 1;
        data += 2;
        size -= 2;
    }

    p = resp_reqparser_new();
    p2 = resp_reqparser_new();
    in = evbuffer_new();
    in2 = evbuffer_new();
    if (p == NULL || p2 == NULL || in == NULL || in2 == NULL)
        abort();
    resp_reqparser_slow_only(p2);
    session_init(&sess);
    memset(&fifo, 0, sizeof(fifo));

    while (off < size && !failed) {
        size_t chunk = size - off;

        if (maxchunk != 0) {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            chunk = 1 + rng % maxchunk;
            if (chunk > size - off)
                chunk = size - off;
        }
        if (evbuffer_add(in, data + off, chunk) != 0 || evbuffer_add(in2, data + off, chunk) != 0)
            abort();
        off += chunk;

        for (;;) {
            int r;

            err[0] = '\0';
            r = resp_reqparser_next(p, in, &req, err, sizeof(err));
            shadow(p2, in2, r, &req, err);
            if (r < 0) {
                if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL) {
                    fprintf(stderr, "fuzz_request: -1 without an error message\n");
                    abort();
                }
                failed = 1;
                break;
            }
            if (r == 0)
                break;
            if (r != 1)
                abort();
            check_request(&req, evbuffer_get_length(in));
            if (!(req.flags & RESP_REQ_EMPTY)) {
                struct cmd_info ci = cmd_classify(&req);

                check_args(in, &req, &ci);
                if (!(ci.flags & CMD_LOCAL)) {
                    struct session_expect exp;
                    struct resp_reply_info ri;
                    enum session_reply sr;

                    session_on_send(&sess, &ci, &req, &exp);
                    if (!sess.raw && exp.kind != SESSION_EXPECT_NONE)
                        fifo_push(&fifo, &exp);
                    (void)session_tied(&sess);
                    (void)session_subscribed(&sess);
                    fake_reply(&req, (unsigned)req.len + (unsigned)req.argc, &ri);
                    sr = session_on_reply(&sess, fifo_head(&fifo), &ri);
                    if (sr == SESSION_REPLY_DONE)
                        fifo_pop(&fifo);
                    (void)cmd_pubsub_kind(ri.kind, ri.kindlen);
                }
            }
            if (evbuffer_drain(in, req.len) != 0)
                abort();
        }
    }

    evbuffer_free(in);
    evbuffer_free(in2);
    resp_reqparser_free(p);
    resp_reqparser_free(p2);
    return 0;
}
