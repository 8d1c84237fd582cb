/*
 * Unit tests for resp.c: request framing (multibulk via hiredis, inline,
 * mixed pipelines, redis's error wording) and the reply scanner (every RESP2
 * and RESP3 type, fed whole, byte by byte and split at every offset).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "resp.h"

/* ---- request helpers ----------------------------------------------------- */

struct reqrun {
    struct resp_request *reqs;   /* framed requests, in order */
    size_t n;                    /* how many */
    size_t cap;
    int rc;                      /* last return of resp_reqparser_next */
    char err[256];               /* its error text when rc == -1 */
    size_t left;                 /* bytes still in the evbuffer at the end */
};

static void reqrun_init(struct reqrun *r)
{
    memset(r, 0, sizeof(*r));
    r->cap = 16;
    r->reqs = calloc(r->cap, sizeof(*r->reqs));
    assert_non_null(r->reqs);
}

static void reqrun_free(struct reqrun *r)
{
    free(r->reqs);
}

/* Drain every complete request; stop on 0 or -1. */
static void drain_requests(struct resp_reqparser *p, struct evbuffer *in, struct reqrun *out)
{
    for (;;) {
        struct resp_request req;
        int rc;

        memset(&req, 0xa5, sizeof(req));
        rc = resp_reqparser_next(p, in, &req, out->err, sizeof(out->err));
        out->rc = rc;
        if (rc <= 0)
            return;
        assert_true(req.len > 0);
        assert_true(req.len <= evbuffer_get_length(in));
        if (out->n == out->cap) {
            out->cap *= 2;
            out->reqs = realloc(out->reqs, out->cap * sizeof(*out->reqs));
            assert_non_null(out->reqs);
        }
        out->reqs[out->n++] = req;
        assert_int_equal(evbuffer_drain(in, req.len), 0);
    }
}

/*
 * Feed data: a first piece of `first` bytes, then pieces of `step` bytes.
 * byref adds each piece as its own evbuffer chain (no coalescing), which
 * exercises lines and payloads spanning chains.
 */
static int slow_only;            /* run_requests: the reader frames every request */

static void run_requests(const char *data, size_t len, size_t first, size_t step, int byref,
                         struct reqrun *out)
{
    struct resp_reqparser *p = resp_reqparser_new();
    struct evbuffer *in = evbuffer_new();
    size_t off = 0;

    if (slow_only)
        resp_reqparser_slow_only(p);
    reqrun_init(out);
    while (off < len) {
        size_t n = off == 0 ? first : step;

        if (n > len - off)
            n = len - off;
        if (byref)
            assert_int_equal(evbuffer_add_reference(in, data + off, n, NULL, NULL), 0);
        else
            assert_int_equal(evbuffer_add(in, data + off, n), 0);
        off += n;
        drain_requests(p, in, out);
        if (out->rc < 0)
            break;
    }
    if (len == 0)
        drain_requests(p, in, out);
    out->left = evbuffer_get_length(in);
    /* an error is sticky */
    if (out->rc < 0) {
        struct resp_request req;
        char err2[256];

        assert_int_equal(resp_reqparser_next(p, in, &req, err2, sizeof(err2)), -1);
        assert_string_equal(err2, out->err);
    }
    evbuffer_free(in);
    resp_reqparser_free(p);
}

static void req_eq(const struct resp_request *a, const struct resp_request *b)
{
    assert_int_equal(a->len, b->len);
    assert_int_equal(a->argc, b->argc);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->namelen, b->namelen);
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->arg1len, b->arg1len);
    assert_string_equal(a->arg1, b->arg1);
    assert_int_equal(a->arg2len, b->arg2len);
    assert_string_equal(a->arg2, b->arg2);
}

static void runs_eq(const struct reqrun *a, const struct reqrun *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->rc, b->rc);
    if (a->rc < 0)
        assert_string_equal(a->err, b->err);
    else
        assert_int_equal(a->left, b->left);
    for (size_t i = 0; i < a->n; i++)
        req_eq(&a->reqs[i], &b->reqs[i]);
}

/* Whole, whole without the fast path, byte by byte (separate chains), and
 * split in two at every offset: all must agree with the whole-buffer run,
 * which is returned in *ref. */
static void run_all_splits(const char *data, size_t len, struct reqrun *ref)
{
    struct reqrun r;

    run_requests(data, len, len, len, 0, ref);

    slow_only = 1;
    run_requests(data, len, len, len, 0, &r);
    slow_only = 0;
    runs_eq(ref, &r);
    reqrun_free(&r);

    run_requests(data, len, 1, 1, 1, &r);
    runs_eq(ref, &r);
    reqrun_free(&r);

    run_requests(data, len, 1, 1, 0, &r);
    runs_eq(ref, &r);
    reqrun_free(&r);

    for (size_t k = 1; k < len; k++) {
        run_requests(data, len, k, len, k & 1, &r);
        runs_eq(ref, &r);
        reqrun_free(&r);
    }
}

/* The single request framed from a whole buffer. */
static struct resp_request one_request(const char *data, size_t len)
{
    struct reqrun r;
    struct resp_request req;

    run_requests(data, len, len, len, 0, &r);
    assert_int_equal(r.n, 1);
    req = r.reqs[0];
    reqrun_free(&r);
    return req;
}

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- request tests ------------------------------------------------------- */

static const char mixed[] =
    "PING\r\n"                                            /* 0 */
    "*1\r\n$4\r\nPING\r\n"                                /* 1 */
    "ECHO a\r\n"                                          /* 2 */
    "\r\n"                                                /* 3 blank */
    "*0\r\n"                                              /* 4 */
    "*-1\r\n"                                             /* 5 */
    "*-10\r\n"                                            /* 6 */
    "set \"a b\" 'c\\'d'\n"                               /* 7 */
    "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"           /* 8 */
    "   \t  \r\n"                                         /* 9 blanks only */
    "GET \"\\x41\\n\"\r\n"                                /* 10 */
    "XREAD BLOCK 0 STREAMS s $\r\n"                       /* 11 */
    "*7\r\n$10\r\nXREADGROUP\r\n$5\r\nGROUP\r\n$1\r\ng\r\n$1\r\nc\r\n"
    "$5\r\nblock\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n"         /* 12 */
    "*1\r\n$4\r\nPING\r\n"                                /* 13 */
    "*1\r\n$4\r\nPING\r\n"                                /* 14 */
    "QUIT\n";                                             /* 15 */

static void check_mixed(const struct reqrun *r)
{
    const struct resp_request *q = r->reqs;

    assert_int_equal(r->rc, 0);
    assert_int_equal(r->left, 0);
    assert_int_equal(r->n, 16);

    assert_int_equal(q[0].len, 6);
    assert_int_equal(q[0].argc, 1);
    assert_int_equal(q[0].flags, RESP_REQ_INLINE);
    assert_string_equal(q[0].name, "ping");
    assert_int_equal(q[0].namelen, 4);

    assert_int_equal(q[1].len, 14);
    assert_int_equal(q[1].argc, 1);
    assert_int_equal(q[1].flags, 0);
    assert_string_equal(q[1].name, "ping");
    assert_string_equal(q[1].arg1, "");

    assert_int_equal(q[2].len, 8);
    assert_int_equal(q[2].argc, 2);
    assert_string_equal(q[2].name, "echo");
    assert_string_equal(q[2].arg1, "a");

    assert_int_equal(q[3].len, 2);
    assert_int_equal(q[3].argc, 0);
    assert_int_equal(q[3].flags, RESP_REQ_INLINE | RESP_REQ_EMPTY);
    assert_string_equal(q[3].name, "");

    assert_int_equal(q[4].len, 4);
    assert_int_equal(q[4].flags, RESP_REQ_EMPTY);
    assert_int_equal(q[4].argc, 0);
    assert_int_equal(q[5].len, 5);
    assert_int_equal(q[5].flags, RESP_REQ_EMPTY);
    assert_int_equal(q[6].len, 6);
    assert_int_equal(q[6].flags, RESP_REQ_EMPTY);

    assert_int_equal(q[7].len, 17);
    assert_int_equal(q[7].argc, 3);
    assert_string_equal(q[7].name, "set");
    assert_string_equal(q[7].arg1, "a b");
    assert_int_equal(q[7].arg1len, 3);
    assert_string_equal(q[7].arg2, "c'd");
    assert_int_equal(q[7].arg2len, 3);

    assert_int_equal(q[8].argc, 3);
    assert_int_equal(q[8].len, 27);
    assert_string_equal(q[8].name, "set");
    assert_string_equal(q[8].arg1, "k");
    assert_string_equal(q[8].arg2, "v");

    assert_int_equal(q[9].len, 8);
    assert_int_equal(q[9].flags, RESP_REQ_INLINE | RESP_REQ_EMPTY);

    assert_int_equal(q[10].argc, 2);
    assert_string_equal(q[10].arg1, "a\n");
    assert_int_equal(q[10].arg1len, 2);

    assert_int_equal(q[11].argc, 6);
    assert_int_equal(q[11].flags, RESP_REQ_INLINE | RESP_REQ_BLOCK_ARG);
    assert_string_equal(q[11].name, "xread");
    assert_string_equal(q[11].arg1, "block");
    assert_string_equal(q[11].arg2, "0");

    assert_int_equal(q[12].argc, 7);
    assert_int_equal(q[12].flags, RESP_REQ_BLOCK_ARG);
    assert_string_equal(q[12].name, "xreadgroup");
    assert_int_equal(q[12].namelen, 10);
    assert_string_equal(q[12].arg1, "group");

    assert_int_equal(q[13].len, 14);
    assert_int_equal(q[14].len, 14);
    assert_int_equal(q[15].len, 5);
    assert_string_equal(q[15].name, "quit");
    assert_int_equal(q[15].flags, RESP_REQ_INLINE);
}

static void test_req_mixed_pipeline(void **state)
{
    struct reqrun ref;

    (void)state;
    run_all_splits(S(mixed), &ref);
    check_mixed(&ref);
    reqrun_free(&ref);
}

/* Three-way splits on a shorter mixed pipeline. */
static void test_req_mixed_three_way(void **state)
{
    static const char in[] = "PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n\r\n*0\r\nGET \"x\"\n*1\r\n$4\r\nQUIT\r\n";
    const size_t len = sizeof(in) - 1;
    struct reqrun ref;

    (void)state;
    run_requests(in, len, len, len, 0, &ref);
    assert_int_equal(ref.n, 6);
    for (size_t i = 1; i < len; i++) {
        for (size_t j = i + 1; j < len; j++) {
            struct resp_reqparser *p = resp_reqparser_new();
            struct evbuffer *buf = evbuffer_new();
            struct reqrun r;
            size_t cuts[] = { 0, i, j, len };

            reqrun_init(&r);
            for (int c = 0; c < 3; c++) {
                assert_int_equal(evbuffer_add(buf, in + cuts[c], cuts[c + 1] - cuts[c]), 0);
                drain_requests(p, buf, &r);
            }
            r.left = evbuffer_get_length(buf);
            runs_eq(&ref, &r);
            reqrun_free(&r);
            evbuffer_free(buf);
            resp_reqparser_free(p);
        }
    }
    reqrun_free(&ref);
}

/* The caller appends while requests are pending: bytes fed to the reader
 * must be accounted for across calls. */
static void test_req_append_between_calls(void **state)
{
    struct resp_reqparser *p = resp_reqparser_new();
    struct evbuffer *in = evbuffer_new();
    struct resp_request req;
    char err[128];

    (void)state;
    evbuffer_add(in, S("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI"));
    assert_int_equal(resp_reqparser_next(p, in, &req, err, sizeof(err)), 1);
    assert_int_equal(req.len, 14);
    evbuffer_drain(in, req.len);
    assert_int_equal(resp_reqparser_next(p, in, &req, err, sizeof(err)), 0);
    assert_int_equal(resp_reqparser_next(p, in, &req, err, sizeof(err)), 0);
    evbuffer_add(in, S("NG\r\nECHO x\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"));
    assert_int_equal(resp_reqparser_next(p, in, &req, err, sizeof(err)), 1);
    assert_int_equal(req.len, 14);
    evbuffer_drain(in, req.len);
    assert_int_equal(resp_reqparser_next(p, in, &req, err, sizeof(err)), 1);
    assert_int_equal(req.len, 8);
    assert_int_equal(req.flags, RESP_REQ_INLINE);
    evbuffer_drain(in, req.len);
    assert_int_equal(resp_reqparser_next(p, in, &req, err, sizeof(err)), 1);
    assert_int_equal(req.len, 20);
    assert_string_equal(req.arg1, "k");
    evbuffer_drain(in, req.len);
    assert_int_equal(resp_reqparser_next(p, in, &req, err, sizeof(err)), 0);
    assert_int_equal(evbuffer_get_length(in), 0);
    evbuffer_free(in);
    resp_reqparser_free(p);
}

/* Thousands of requests of four kinds: exercises hiredis's buffer
 * compaction, the feed window and bypasses deep into a long pipeline. */
static void test_req_long_pipeline(void **state)
{
    struct evbuffer *b = evbuffer_new();
    struct resp_request *want = calloc(4000, sizeof(*want));
    const size_t steps[] = { 1000, 7, 16 * 1024 + 3, 1 << 20 };
    char *data;
    size_t len;

    (void)state;
    for (int i = 0; i < 4000; i++) {
        struct resp_request *w = &want[i];
        char key[32];
        int kl = snprintf(key, sizeof(key), "key%d", i);
        size_t before = evbuffer_get_length(b);

        switch (i % 4) {
        case 0:
            evbuffer_add_printf(b, "GET %s\r\n", key);
            w->flags = RESP_REQ_INLINE;
            w->argc = 2;
            break;
        case 1:
            evbuffer_add_printf(b, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl, key);
            w->argc = 2;
            break;
        case 2:
            evbuffer_add_printf(b, "\r\n");
            w->flags = RESP_REQ_INLINE | RESP_REQ_EMPTY;
            break;
        default:
            evbuffer_add_printf(b, "get \"%s\"\n", key);
            w->flags = RESP_REQ_INLINE;
            w->argc = 2;
            break;
        }
        if (w->argc == 2) {
            strcpy(w->name, "get");
            w->namelen = 3;
            strcpy(w->arg1, key);
            w->arg1len = (size_t)kl;
        }
        w->len = evbuffer_get_length(b) - before;
    }
    len = evbuffer_get_length(b);
    data = malloc(len);
    evbuffer_copyout(b, data, len);
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        struct reqrun r;

        run_requests(data, len, steps[s], steps[s], (int)(s & 1), &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.n, 4000);
        assert_int_equal(r.left, 0);
        for (int i = 0; i < 4000; i++)
            req_eq(&want[i], &r.reqs[i]);
        reqrun_free(&r);
    }
    free(data);
    free(want);
    evbuffer_free(b);
}

/* A large argument: payload spans many feeds and chains. */
static void test_req_big_bulk(void **state)
{
    const size_t n = 3 * 1024 * 1024 + 17;
    struct evbuffer *b = evbuffer_new();
    char *payload = malloc(n);
    char *data;
    size_t len;
    const size_t steps[] = { 4096, 65536 + 1, 1 << 22 };

    (void)state;
    memset(payload, 'x', n);
    evbuffer_add_printf(b, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%zu\r\n", n);
    evbuffer_add(b, payload, n);
    evbuffer_add_printf(b, "\r\nPING\r\n");
    len = evbuffer_get_length(b);
    data = malloc(len);
    evbuffer_copyout(b, data, len);
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        struct reqrun r;

        run_requests(data, len, steps[s], steps[s], (int)(s & 1), &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.n, 2);
        assert_int_equal(r.reqs[0].len, len - 6);
        assert_int_equal(r.reqs[0].arg2len, n);
        assert_int_equal(strlen(r.reqs[0].arg2), RESP_NAME_MAX - 1);
        assert_string_equal(r.reqs[1].name, "ping");
        reqrun_free(&r);
    }
    free(data);
    free(payload);
    evbuffer_free(b);
}

struct errcase {
    const char *in;
    size_t len;
    size_t nok;                  /* requests framed before the error */
    const char *err;
};

#define E(lit, nok, err) { (lit), sizeof(lit) - 1, (nok), (err) }

static void test_req_errors(void **state)
{
    static const struct errcase cases[] = {
        E("*1\r\n+PING\r\n", 0, "Protocol error: expected '$', got '+'"),
        E("*2\r\n$3\r\nGET\r\n:1\r\n", 0, "Protocol error: expected '$', got ':'"),
        E("*2\r\n$3\r\nGET\r\n-x\r\n", 0, "Protocol error: expected '$', got '-'"),
        E("*2\r\n$3\r\nGET\r\nx", 0, "Protocol error: expected '$', got 'x'"),
        E("*2\r\n$3\r\nGET\r\n\r\n", 0, "Protocol error: expected '$', got ' '"),
        E("*2\r\n$3\r\nGET\r\n*1\r\n$1\r\na\r\n", 0, "Protocol error: expected '$', got '*'"),
        E("PING\r\n*1\r\n*1\r\n$1\r\na\r\n", 1, "Protocol error: expected '$', got '*'"),
        E("*3000000000\r\n", 0, "Protocol error: invalid multibulk length"),
        E("*4294967298\r\n$1\r\na\r\n$1\r\nb\r\n", 0, "Protocol error: invalid multibulk length"),
        E("*1073741825\r\n", 0, "Protocol error: invalid multibulk length"),
        E("*99999999999999999999999\r\n", 0, "Protocol error: invalid multibulk length"),
        E("*abc\r\n", 0, "Protocol error: invalid multibulk length"),
        E("*\r\n", 0, "Protocol error: invalid multibulk length"),
        E("*03\r\n", 0, "Protocol error: invalid multibulk length"),
        E("*+1\r\n", 0, "Protocol error: invalid multibulk length"),
        E("*-0\r\n", 0, "Protocol error: invalid multibulk length"),
        E("*1 \r\n", 0, "Protocol error: invalid multibulk length"),
        E("*1\rX", 0, "Protocol error: invalid multibulk length"),
        E("*1\r\n$-2\r\n", 0, "Protocol error: invalid bulk length"),
        E("*1\r\n$-1\r\n", 0, "Protocol error: invalid bulk length"),
        E("*1\r\n$abc\r\n", 0, "Protocol error: invalid bulk length"),
        E("*1\r\n$03\r\nabc\r\n", 0, "Protocol error: invalid bulk length"),
        E("*1\r\n$+3\r\nabc\r\n", 0, "Protocol error: invalid bulk length"),
        E("*1\r\n$\r\n\r\n", 0, "Protocol error: invalid bulk length"),
        E("*1\r\n$536870913\r\n", 0, "Protocol error: invalid bulk length"),
        E("*2\r\n$1\r\na\r\n$9223372036854775808\r\n", 0, "Protocol error: invalid bulk length"),
        E("*1\r\n$1\rXa\r\n", 0, "Protocol error: invalid bulk length"),
        E("*1\r\n$4\r\nPING\r\n*1\r\n$abc\r\n", 1, "Protocol error: invalid bulk length"),
        E("set \"a b\n", 0, "Protocol error: unbalanced quotes in request"),
        E("set 'a b\r\n", 0, "Protocol error: unbalanced quotes in request"),
        E("set \"a\"b\r\n", 0, "Protocol error: unbalanced quotes in request"),
        E("set 'a'b\r\n", 0, "Protocol error: unbalanced quotes in request"),
        E("set \"a\\\"\n", 0, "Protocol error: unbalanced quotes in request"),
        E("PING\r\n\"\n", 1, "Protocol error: unbalanced quotes in request"),
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct reqrun ref;

        run_all_splits(cases[i].in, cases[i].len, &ref);
        if (ref.rc != -1 || strcmp(ref.err, cases[i].err) != 0)
            fail_msg("case %zu: rc %d err '%s', want '%s'", i, ref.rc, ref.err, cases[i].err);
        assert_int_equal(ref.n, cases[i].nok);
        reqrun_free(&ref);
    }
}

/* Inputs that are fine so far: no error, just waiting for more. */
static void test_req_incomplete_ok(void **state)
{
    static const char *const ins[] = {
        "*1073741824\r\n",               /* RESP_MULTIBULK_MAX itself */
        "*1\r\n$536870912\r\n",          /* redis's proto-max-bulk-len */
        "*2\r\n$3\r\nGET\r\n$",
        "*1\r\n$3\r",
        "*2\r",
        "*",
        "GET \"unterminated so far",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        struct reqrun r;

        run_all_splits(ins[i], strlen(ins[i]), &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.n, 0);
        reqrun_free(&r);
    }
}

static void test_req_empty_like_redis(void **state)
{
    static const char *const ins[] = { "*0\r\n", "*-1\r\n", "*-10\r\n", "*-9223372036854775808\r\n",
                                       "\r\n", "\n", " \t \n" };

    (void)state;
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        struct resp_request req = one_request(ins[i], strlen(ins[i]));

        assert_int_equal(req.len, strlen(ins[i]));
        assert_true(req.flags & RESP_REQ_EMPTY);
        assert_int_equal(req.argc, 0);
        assert_string_equal(req.name, "");
    }
}

static void test_req_inline_limits(void **state)
{
    const size_t max = RESP_INLINE_MAX;
    char *big = malloc(max + 16);
    struct reqrun r;

    (void)state;
    /* exactly the limit without a newline: wait; one more byte: error */
    memset(big, 'a', max + 1);
    run_requests(big, max, 4096, 4096, 0, &r);
    assert_int_equal(r.rc, 0);
    reqrun_free(&r);
    run_requests(big, max + 1, 4096, 4096, 1, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "Protocol error: too big inline request");
    reqrun_free(&r);
    /* the same overlong line arriving at once, newline included */
    big[max + 1] = '\n';
    run_requests(big, max + 2, max + 2, 1, 0, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "Protocol error: too big inline request");
    reqrun_free(&r);

    /* a huge inline request under the limit is fine, even byte by byte */
    memcpy(big, "SET k ", 6);
    big[max - 2] = '\r';
    big[max - 1] = '\n';
    for (int byref = 0; byref < 2; byref++) {
        /* one-byte pieces, coalesced; or 1000-byte chains */
        run_requests(big, max, byref ? 1000 : 1, byref ? 1000 : 1, byref, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.reqs[0].len, max);
        assert_int_equal(r.reqs[0].argc, 3);
        assert_int_equal(r.reqs[0].arg2len, max - 8);
        reqrun_free(&r);
    }

    /* a header or bulk count that never ends */
    memset(big, '1', max + 16);
    big[0] = '*';
    run_requests(big, max + 1, 1000, 1000, 0, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "Protocol error: too big mbulk count string");
    reqrun_free(&r);
    run_requests(big, max, max, 1, 0, &r);
    assert_int_equal(r.rc, 0);
    reqrun_free(&r);
    memcpy(big, "*1\r\n$", 5);
    run_requests(big, max + 5, 1000, 1000, 1, &r);
    assert_int_equal(r.rc, -1);
    assert_string_equal(r.err, "Protocol error: too big bulk count string");
    reqrun_free(&r);
    free(big);
}

static void test_req_inline_quoting(void **state)
{
    struct resp_request q;

    (void)state;
    q = one_request(S("  SET   \"k\\x4A\\x4a\\xZZ\\t\\r\\n\\b\\a\\\\\\\"\"  'it\\'s\\n'\t\r\n"));
    assert_int_equal(q.argc, 3);
    assert_string_equal(q.name, "set");
    assert_int_equal(q.arg1len, 13);
    assert_string_equal(q.arg1, "kjjxzz\t\r\n\b\a\\\"");
    assert_string_equal(q.arg2, "it's\\n");
    assert_int_equal(q.arg2len, 6);

    /* an opening quote inside a bare word continues it, like redis */
    q = one_request(S("get ab\"c d\" e\n"));
    assert_int_equal(q.argc, 3);
    assert_string_equal(q.arg1, "abc d");
    assert_string_equal(q.arg2, "e");

    /* \v is a separator only between tokens */
    q = one_request(S("a\vb c\n"));
    assert_int_equal(q.argc, 2);
    assert_int_equal(q.namelen, 3);

    /* a NUL hides the newline from redis (strchr): wait, then too big */
    {
        char *nul = malloc(RESP_INLINE_MAX + 2);
        struct reqrun r;

        memset(nul, 'a', RESP_INLINE_MAX + 2);
        memcpy(nul, "ECHO x\0y z\nPING\n", 17);
        run_requests(nul, 17, 17, 17, 0, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.n, 0);
        reqrun_free(&r);
        run_requests(nul, RESP_INLINE_MAX + 1, 17, 4096, 0, &r);
        assert_int_equal(r.rc, -1);
        assert_string_equal(r.err, "Protocol error: too big inline request");
        reqrun_free(&r);
        free(nul);
    }

    /* empty quoted argument */
    q = one_request(S("SET k \"\"\n"));
    assert_int_equal(q.argc, 3);
    assert_int_equal(q.arg2len, 0);
    assert_string_equal(q.arg2, "");

    /* only a trailing CR before LF is stripped */
    q = one_request(S("GET a\rb\r\n"));
    assert_int_equal(q.argc, 3);
    assert_string_equal(q.arg2, "b");
}

static void test_req_block_flag(void **state)
{
    static const struct { const char *in; int block; } cases[] = {
        { "XREAD BLOCK 0 STREAMS s $\r\n", 1 },
        { "xread count 10 block 100 streams s 0\r\n", 1 },
        { "XREAD COUNT 1 STREAMS block 0\r\n", 0 },
        { "XREAD STREAMS BLOCK 0\r\n", 0 },
        { "XREADGROUP GROUP g c BLOCK 100 STREAMS s >\r\n", 1 },
        { "XREADGROUP GROUP g c COUNT 1 STREAMS s >\r\n", 0 },
        { "BLOCK foo\r\n", 0 },
        { "XREAD BLOCKS 0 STREAMS s $\r\n", 0 },
        { "XREAD \"bLoCk\" 0 STREAMS s $\r\n", 1 },
        { "*6\r\n$5\r\nXREAD\r\n$5\r\nBlock\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n$1\r\ns\r\n$1\r\n$\r\n", 1 },
        { "*6\r\n$5\r\nXREAD\r\n$7\r\nstreams\r\n$5\r\nblock\r\n$1\r\n0\r\n$1\r\ns\r\n$1\r\n$\r\n", 0 },
        { "*8\r\n$10\r\nXREADGROUP\r\n$5\r\nGROUP\r\n$1\r\ng\r\n$1\r\nc\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n"
          "$7\r\nSTREAMS\r\n$1\r\ns\r\n", 1 },
        { "*2\r\n$5\r\nBLOCK\r\n$1\r\nx\r\n", 0 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp_request q = one_request(cases[i].in, strlen(cases[i].in));

        if (!!(q.flags & RESP_REQ_BLOCK_ARG) != cases[i].block)
            fail_msg("case %zu: flags %#x", i, q.flags);
    }
}

static void test_req_truncation(void **state)
{
    static const char mb[] =
        "*3\r\n$40\r\nABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN\r\n"
        "$31\r\n0123456789012345678901234567890\r\n"
        "$32\r\n0123456789012345678901234567890X\r\n";
    struct resp_request q;

    (void)state;
    q = one_request(S(mb));
    assert_int_equal(q.argc, 3);
    assert_int_equal(q.namelen, 40);
    assert_string_equal(q.name, "abcdefghijklmnopqrstuvwxyzabcde");
    assert_int_equal(q.arg1len, 31);
    assert_string_equal(q.arg1, "0123456789012345678901234567890");
    assert_int_equal(q.arg2len, 32);
    assert_string_equal(q.arg2, "0123456789012345678901234567890");

    q = one_request(S("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN \"0123456789012345678901234567890\\x41\" x y z\n"));
    assert_int_equal(q.argc, 5);
    assert_int_equal(q.namelen, 40);
    assert_string_equal(q.name, "abcdefghijklmnopqrstuvwxyzabcde");
    assert_int_equal(q.arg1len, 32);
    assert_string_equal(q.arg1, "0123456789012345678901234567890");
    assert_string_equal(q.arg2, "x");
}

/* ---- reply helpers ------------------------------------------------------- */

#define MAXREP 256

struct scanrun {
    int rc;                      /* 0 ok, -1 error */
    size_t n;                    /* complete replies */
    size_t ends[MAXREP];         /* byte offset just past each reply */
    struct resp_reply_info info[MAXREP];
    size_t pending;              /* bytes after the last complete reply */
};

/* Feed data with a first piece of `first` bytes, then `step`-byte pieces. */
static void run_scan(const char *data, size_t len, size_t first, size_t step, struct scanrun *out)
{
    struct resp_scan s;
    size_t off = 0, last = 0;

    memset(out, 0, sizeof(*out));
    resp_scan_init(&s);
    while (off < len) {
        size_t n = off == 0 ? first : step, pos = 0;

        if (n > len - off)
            n = len - off;
        while (pos < n) {
            struct resp_reply_info info;
            int done = 7;
            ssize_t r;

            memset(&info, 0x5a, sizeof(info));
            r = resp_scan_feed(&s, data + off + pos, n - pos, &done, &info);
            if (r < 0) {
                out->rc = -1;
                assert_true(resp_scan_error(&s)[0] != '\0');
                assert_true(resp_scan_feed(&s, "+", 1, &done, &info) == -1);
                resp_scan_free(&s);
                return;
            }
            assert_true(r > 0);
            assert_true((size_t)r <= n - pos);
            assert_true(done == 0 || done == 1);
            if (!done)
                assert_int_equal((size_t)r, n - pos);
            pos += (size_t)r;
            if (done) {
                assert_true(out->n < MAXREP);
                assert_int_equal(strlen(info.kind), info.kindlen);
                out->ends[out->n] = off + pos;
                out->info[out->n] = info;
                out->n++;
                last = off + pos;
            }
        }
        off += n;
    }
    out->pending = len - last;
    resp_scan_free(&s);
}

static void info_eq(const struct resp_reply_info *a, const struct resp_reply_info *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->nelem, b->nelem);
    assert_int_equal(a->kindlen, b->kindlen);
    assert_string_equal(a->kind, b->kind);
    assert_int_equal(a->has_count, b->has_count);
    if (a->has_count)
        assert_int_equal(a->count, b->count);
}

static void scanruns_eq(const struct scanrun *a, const struct scanrun *b)
{
    assert_int_equal(a->rc, b->rc);
    if (a->rc < 0)
        return;
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->pending, b->pending);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->ends[i], b->ends[i]);
        info_eq(&a->info[i], &b->info[i]);
    }
}

/* Whole, byte by byte, and every two-piece split agree; *ref is whole. */
static void scan_all_splits(const char *data, size_t len, struct scanrun *ref)
{
    struct scanrun *r = malloc(sizeof(*r));

    run_scan(data, len, len, len, ref);
    run_scan(data, len, 1, 1, r);
    scanruns_eq(ref, r);
    run_scan(data, len, 3, 2, r);
    scanruns_eq(ref, r);
    for (size_t k = 1; k < len; k++) {
        run_scan(data, len, k, len, r);
        scanruns_eq(ref, r);
    }
    free(r);
}

struct replycase {
    const char *in;
    size_t len;
    char type;
    long long nelem;
    const char *kind;
    int has_count;
    long long count;
};

#define R(lit, type, nelem, kind, hc, count) { (lit), sizeof(lit) - 1, (type), (nelem), (kind), (hc), (count) }

static const struct replycase replies[] = {
    R("+OK\r\n", '+', 0, "", 0, 0),
    R("+\r\n", '+', 0, "", 0, 0),
    R("-ERR unknown command 'foo'\r\n", '-', 0, "", 0, 0),
    R(":1000\r\n", ':', 0, "", 0, 0),
    R(":-9223372036854775808\r\n", ':', 0, "", 0, 0),
    R(":9223372036854775807\r\n", ':', 0, "", 0, 0),
    R(":0\r\n", ':', 0, "", 0, 0),
    R("$5\r\nhello\r\n", '$', 0, "", 0, 0),
    R("$0\r\n\r\n", '$', 0, "", 0, 0),
    R("$6\r\nab\r\ncd\r\n", '$', 0, "", 0, 0),
    R("$-1\r\n", '$', -1, "", 0, 0),
    R("*-1\r\n", '*', -1, "", 0, 0),
    R("*0\r\n", '*', 0, "", 0, 0),
    R("*2\r\n$3\r\nFoo\r\n$3\r\nbar\r\n", '*', 2, "foo", 0, 0),
    R("*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", '*', 3, "subscribe", 1, 1),
    R("*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n", '*', 3, "unsubscribe", 1, 0),
    R("*3\r\n+PSUBSCRIBE\r\n$3\r\nc.*\r\n:12\r\n", '*', 3, "psubscribe", 1, 12),
    R(">3\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n:2\r\n", '>', 3, "subscribe", 1, 2),
    R(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n", '>', 3, "message", 0, 0),
    R(">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n", '>', 4, "pmessage", 0, 0),
    R("*3\r\n:1\r\n:2\r\n:3\r\n", '*', 3, "", 1, 3),
    R("*3\r\n$15\r\n123456789012345\r\n$0\r\n\r\n:-7\r\n", '*', 3, "123456789012345", 1, -7),
    R("*1\r\n$16\r\n1234567890123456\r\n", '*', 1, "", 0, 0),
    R("*1\r\n+123456789012345\r\n", '*', 1, "123456789012345", 0, 0),
    R("*1\r\n+1234567890123456\r\n", '*', 1, "", 0, 0),
    R("*1\r\n-ERR x\r\n", '*', 1, "", 0, 0),
    R("*1\r\n$-1\r\n", '*', 1, "", 0, 0),
    R("*1\r\n$0\r\n\r\n", '*', 1, "", 0, 0),
    R("*2\r\n*1\r\n$3\r\nabc\r\n:5\r\n", '*', 2, "", 0, 0),
    R("*3\r\n*2\r\n:1\r\n$-1\r\n*-1\r\n%1\r\n+k\r\n*1\r\n_\r\n", '*', 3, "", 0, 0),
    R("_\r\n", '_', -1, "", 0, 0),
    R(",3.14\r\n", ',', 0, "", 0, 0),
    R(",inf\r\n", ',', 0, "", 0, 0),
    R(",-inf\r\n", ',', 0, "", 0, 0),
    R(",nan\r\n", ',', 0, "", 0, 0),
    R(",1.23e-10\r\n", ',', 0, "", 0, 0),
    R("#t\r\n", '#', 0, "", 0, 0),
    R("#f\r\n", '#', 0, "", 0, 0),
    R("(3492890328409238509324850943850943825024385\r\n", '(', 0, "", 0, 0),
    R("(-3492890328409238509324850943850943825024385\r\n", '(', 0, "", 0, 0),
    R("!21\r\nSYNTAX invalid syntax\r\n", '!', 0, "", 0, 0),
    R("=15\r\ntxt:Some string\r\n", '=', 0, "", 0, 0),
    R("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", '%', 2, "first", 0, 0),
    R("%0\r\n", '%', 0, "", 0, 0),
    R("~3\r\n+a\r\n+b\r\n:3\r\n", '~', 3, "a", 1, 3),
    R("~0\r\n", '~', 0, "", 0, 0),
    /* attributes: skipped, never a reply of their own nor an element */
    R("|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
      "*2\r\n:2039123\r\n:9543892\r\n", '*', 2, "", 0, 0),
    R("|1\r\n+k\r\n+v\r\n+OK\r\n", '+', 0, "", 0, 0),
    R("|0\r\n:5\r\n", ':', 0, "", 0, 0),
    R("|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n$-1\r\n", '$', -1, "", 0, 0),
    R("*3\r\n|1\r\n+ttl\r\n:3600\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n|1\r\n+x\r\n*1\r\n+y\r\n:5\r\n",
      '*', 3, "subscribe", 1, 5),
    R("*2\r\n|1\r\n|1\r\n+n\r\n+m\r\n+a\r\n+b\r\n*1\r\n:1\r\n$2\r\nhi\r\n", '*', 2, "", 0, 0),
    R(">3\r\n|1\r\n+a\r\n+b\r\n+message\r\n+c\r\n+d\r\n", '>', 3, "message", 0, 0),
    /* streamed */
    R("$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n", '$', -1, "", 0, 0),
    R("$?\r\n;0\r\n", '$', -1, "", 0, 0),
    R("*?\r\n:1\r\n:2\r\n:3\r\n.\r\n", '*', -1, "", 1, 3),
    R("*?\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:4\r\n.\r\n", '*', -1, "subscribe", 1, 4),
    R("%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n", '%', -1, "a", 0, 0),
    R("~?\r\n.\r\n", '~', -1, "", 0, 0),
    R("*2\r\n*?\r\n:1\r\n*?\r\n.\r\n.\r\n$?\r\n;1\r\na\r\n;0\r\n", '*', 2, "", 0, 0),
    R("*?\r\n$?\r\n;2\r\nab\r\n;0\r\n%1\r\n+k\r\n~?\r\n.\r\n.\r\n", '*', -1, "", 0, 0),
};

/* ---- reply tests --------------------------------------------------------- */

static void test_scan_each_type(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        const struct replycase *c = &replies[i];
        struct scanrun *r = malloc(sizeof(*r));

        scan_all_splits(c->in, c->len, r);
        if (r->rc != 0 || r->n != 1 || r->ends[0] != c->len)
            fail_msg("case %zu: rc %d n %zu", i, r->rc, r->n);
        assert_int_equal(r->info[0].type, c->type);
        assert_int_equal(r->info[0].nelem, c->nelem);
        assert_string_equal(r->info[0].kind, c->kind);
        assert_int_equal(r->info[0].kindlen, strlen(c->kind));
        if (r->info[0].has_count != c->has_count)
            fail_msg("case %zu: has_count %d", i, r->info[0].has_count);
        if (c->has_count)
            assert_int_equal(r->info[0].count, c->count);
        free(r);
    }
}

/* Every case back to back in one stream: boundaries are exact. */
static void test_scan_pipeline(void **state)
{
    const size_t ncases = sizeof(replies) / sizeof(replies[0]);
    struct scanrun *r = malloc(sizeof(*r));
    struct scanrun *r2 = malloc(sizeof(*r2));
    size_t len = 0, off = 0;
    char *data;

    (void)state;
    for (size_t i = 0; i < ncases; i++)
        len += replies[i].len;
    data = malloc(len + 2);
    for (size_t i = 0; i < ncases; i++) {
        memcpy(data + off, replies[i].in, replies[i].len);
        off += replies[i].len;
    }
    memcpy(data + len, "+O", 2); /* and an incomplete tail */

    scan_all_splits(data, len + 2, r);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->n, ncases);
    assert_int_equal(r->pending, 2);
    off = 0;
    for (size_t i = 0; i < ncases; i++) {
        off += replies[i].len;
        assert_int_equal(r->ends[i], off);
        assert_int_equal(r->info[i].type, replies[i].type);
        assert_string_equal(r->info[i].kind, replies[i].kind);
    }
    for (size_t step = 4; step < 64; step += 7) {
        run_scan(data, len + 2, step, step, r2);
        scanruns_eq(r, r2);
    }
    free(data);
    free(r);
    free(r2);
}

static void test_scan_big_bulk(void **state)
{
    const size_t n = 1000000;
    struct scanrun r;
    char *data = malloc(n + 64);
    int hl = sprintf(data, "*2\r\n$%zu\r\n", n);
    size_t len;

    (void)state;
    memset(data + hl, '\r', n); /* CRs in the payload must not matter */
    len = (size_t)hl + n;
    memcpy(data + len, "\r\n:3\r\n", 6);
    len += 6;
    run_scan(data, len, len, len, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ends[0], len);
    assert_int_equal(r.info[0].nelem, 2);
    run_scan(data, len, 1, 4093, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ends[0], len);
    run_scan(data, len, 1, 1, &r);
    assert_int_equal(r.n, 1);
    free(data);
}

static void test_scan_depth(void **state)
{
    const int max = RESP_SCAN_MAX_DEPTH;
    char *data = malloc((size_t)(max + 1) * 4 + 8);
    struct scanrun *r = malloc(sizeof(*r));
    size_t len = 0;

    (void)state;
    for (int i = 0; i < max; i++) {
        memcpy(data + len, "*1\r\n", 4);
        len += 4;
    }
    memcpy(data + len, ":1\r\n", 4);
    run_scan(data, len + 4, len + 4, 1, r);
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->ends[0], len + 4);
    run_scan(data, len + 4, 1, 1, r);
    assert_int_equal(r->n, 1);

    /* one level more is refused */
    memmove(data + 4, data, len + 4);
    memcpy(data, "*1\r\n", 4);
    run_scan(data, len + 8, len + 8, 1, r);
    assert_int_equal(r->rc, -1);
    run_scan(data, len + 8, 1, 1, r);
    assert_int_equal(r->rc, -1);

    /* deep attributes count too */
    len = 0;
    for (int i = 0; i <= max; i++) {
        memcpy(data + len, "|1\r\n", 4);
        len += 4;
    }
    run_scan(data, len, len, 1, r);
    assert_int_equal(r->rc, -1);
    free(data);
    free(r);
}

static void test_scan_malformed(void **state)
{
    static const char *const bad[] = {
        "x\r\n", "@1\r\n", "\r\n", " +OK\r\n",
        "$abc\r\n", "$\r\n", "$-2\r\n", "$1x\r\n", "$1\r\nab\r\n", "$1\r\na\rx",
        "*-2\r\n", "*abc\r\n", "*1\r\nx\r\n", "%-1\r\n", "~-1\r\n", ">-1\r\n", "|-1\r\n",
        "!-1\r\n", "=-1\r\n",
        "+OK\rX", ":12\rX", ":\r\n", ":-\r\n", ":1-\r\n", ":+1\r\n",
        ":99999999999999999999\r\n", ":-9223372036854775809\r\n",
        "*1\r\n:1\rX",
        ".\r\n", "*1\r\n.\r\n", "$?x\r\n", "$?\r\nx", "$?\r\n;abc\r\n", "$?\r\n;-1\r\n",
        "$?\r\n;1\r\nab", ">?\r\n", ":?\r\n", "|?\r\n", "*?\r\n;1\r\n",
        "*2\r\n$1\r\na\r\n$-5\r\n",
        "%4611686018427387904\r\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct scanrun *r = malloc(sizeof(*r));
        size_t len = strlen(bad[i]);

        run_scan(bad[i], len, len, len, r);
        if (r->rc != -1)
            fail_msg("case %zu (%s): accepted", i, bad[i]);
        run_scan(bad[i], len, 1, 1, r);
        if (r->rc != -1)
            fail_msg("case %zu (%s): accepted byte by byte", i, bad[i]);
        free(r);
    }
}

/* A good reply followed by a bad one: the first is still reported. */
static void test_scan_error_after_reply(void **state)
{
    struct resp_scan s;
    struct resp_reply_info info;
    const char in[] = "+OK\r\n$abc\r\n";
    int done;
    ssize_t n;

    (void)state;
    resp_scan_init(&s);
    n = resp_scan_feed(&s, in, sizeof(in) - 1, &done, &info);
    assert_int_equal(n, 5);
    assert_int_equal(done, 1);
    assert_int_equal(info.type, '+');
    n = resp_scan_feed(&s, in + 5, sizeof(in) - 6, &done, &info);
    assert_int_equal(n, -1);
    assert_int_equal(done, 0);
    assert_non_null(strstr(resp_scan_error(&s), "'$'"));
    resp_scan_free(&s);
}

/* The scanner struct may be moved between calls while using its inline
 * stack (it is embedded in connection objects). */
static void test_scan_struct_moved(void **state)
{
    struct resp_scan a, b;
    struct resp_reply_info info;
    int done;

    (void)state;
    resp_scan_init(&a);
    assert_int_equal(resp_scan_feed(&a, S("*2\r\n*1\r\n"), &done, &info), 8);
    memcpy(&b, &a, sizeof(b));
    memset(&a, 0xee, sizeof(a));
    assert_int_equal(resp_scan_feed(&b, S(":1\r\n:2\r\n"), &done, &info), 8);
    assert_int_equal(done, 1);
    assert_int_equal(info.nelem, 2);
    resp_scan_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_mixed_pipeline),
        cmocka_unit_test(test_req_mixed_three_way),
        cmocka_unit_test(test_req_append_between_calls),
        cmocka_unit_test(test_req_long_pipeline),
        cmocka_unit_test(test_req_big_bulk),
        cmocka_unit_test(test_req_errors),
        cmocka_unit_test(test_req_incomplete_ok),
        cmocka_unit_test(test_req_empty_like_redis),
        cmocka_unit_test(test_req_inline_limits),
        cmocka_unit_test(test_req_inline_quoting),
        cmocka_unit_test(test_req_block_flag),
        cmocka_unit_test(test_req_truncation),
        cmocka_unit_test(test_scan_each_type),
        cmocka_unit_test(test_scan_pipeline),
        cmocka_unit_test(test_scan_big_bulk),
        cmocka_unit_test(test_scan_depth),
        cmocka_unit_test(test_scan_malformed),
        cmocka_unit_test(test_scan_error_after_reply),
        cmocka_unit_test(test_scan_struct_moved),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
