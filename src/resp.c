/*
 * resp: request framing (hiredis reader glue plus inline commands) and a
 * resumable reply scanner. See resp.h for the contract.
 *
 * Request side, who owns what:
 *
 *   caller's evbuffer `in`   [ req0 | req1 | req2 ...          ]
 *                             ^ front (the caller drains req->len)
 *                             |<------- fed ------->|
 *   redisReader's own copy         [ unconsumed ]     (r->buf[r->pos..r->len))
 *
 *   Bytes are copied into the reader once (`fed` counts them from the front
 *   of `in`); nothing is removed from `in` here. When a request completes,
 *   its length is fed - (r->len - r->pos): what the reader has seen minus
 *   what it has not used yet. On the next call the caller has drained that
 *   many bytes, so `fed` shrinks by the same amount.
 *
 *   At a request boundary the next byte decides the path, as in redis:
 *     '*'  multibulk: the header line "*<n>\r\n" is checked here (redis's
 *          rules: n <= 0 is an empty request with no reply, junk or a too
 *          large n is "invalid multibulk length"), then the reader frames
 *          the elements. Each element header ("$<len>\r\n") is validated
 *          here before the reader parses it, so the errors the client sees
 *          are redis's, whatever hiredis build is installed.
 *     else inline, or an empty "*<=0" request: handled from `in` directly.
 *          Whatever the reader already holds past the boundary is thrown
 *          away (r->pos = r->len) and `fed` restarts at 0.
 *
 *   The reader's function table allocates nothing: every callback returns
 *   the parser itself as the "object" and records argc, argv[0..2] and the
 *   BLOCK flag into p->cur. A callback that finds a protocol error returns
 *   NULL (hiredis then reports "Out of memory"); the parser keeps its own
 *   redis-style message and reports that instead.
 *
 * Reply side: a byte-driven state machine with an explicit frame stack.
 * Bulk payloads are skipped by arithmetic, simple lines by memchr; only
 * numbers and type bytes are looked at one byte at a time.
 */
#include "resp.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <hiredis/read.h>

/* ---- requests ------------------------------------------------------------ */

/* redis's default proto-max-bulk-len: a longer argument is refused before
 * the reader starts buffering it. */
#define RESP_BULK_MAX (512LL * 1024 * 1024)

/* Most bytes handed to the reader per feed. Keeping the reader's unconsumed
 * tail short keeps hiredis's buffer compaction (a memmove of the tail every
 * 1 KB consumed) cheap on long pipelines; a stalled request gets more. */
#define RESP_FEED_CHUNK (16 * 1024)

struct resp_reqparser {
    redisReader *reader;         /* hiredis reader with req_fn; privdata = this */
    size_t fed;                  /* bytes from the front of `in` copied into the reader */
    size_t drain;                /* bytes of the last returned request counted in fed;
                                    the caller removes them before the next call */
    size_t scanned;              /* bytes at the front of `in` known not to hold the
                                    line terminator being looked for (header/inline) */
    int in_req;                  /* the reader is inside a multibulk request */
    int pending;                 /* next element header not validated yet */
    long long nargs;             /* elements announced by the "*<n>" header */
    long long argi;              /* elements recorded so far */
    int streams_seen;            /* a "STREAMS" argument ended the BLOCK search */
    int failed;                  /* unusable; errstr says why */
    int slow_only;               /* tests: never take req_fast() */
    struct resp_request cur;     /* request being framed */
    char *line;                  /* scratch copy of an inline line spanning chains */
    size_t linecap;              /* bytes allocated at line */
    char errstr[128];            /* redis wording, e.g. "Protocol error: ..." */
};

static void *req_fail(struct resp_reqparser *p, const char *fmt, ...) RZ_PRINTF(2, 3);

/* Record a protocol error (first one wins). CR and LF are blanked, as redis
 * does, because the message goes back to the client as "-ERR <msg>\r\n".
 * Returns NULL so that callbacks can `return req_fail(...)`. */
static void *req_fail(struct resp_reqparser *p, const char *fmt, ...)
{
    va_list ap;

    if (p->failed)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p->errstr, sizeof(p->errstr), fmt, ap);
    va_end(ap);
    for (char *c = p->errstr; *c != '\0'; c++) {
        if (*c == '\r' || *c == '\n')
            *c = ' ';
    }
    p->failed = 1;
    return NULL;
}

/*
 * redis's string2ll(): optional '-', no leading zeros, no '+', no spaces,
 * fits in long long. Returns 1 and *out, or 0.
 */
int resp_parse_ll(const char *s, size_t n, long long *out)
{
    unsigned long long v = 0, limit;
    size_t i = 0;
    int neg = 0;

    if (n == 0 || n > 20)
        return 0;
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return 1;
    }
    if (s[0] == '-') {
        neg = 1;
        i = 1;
        if (n == 1)
            return 0;
    }
    if (s[i] < '1' || s[i] > '9')
        return 0;
    limit = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');

        if (d > 9 || v > (limit - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    if (neg)
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    else
        *out = (long long)v;
    return 1;
}

/*
 * Record argument `idx` of the current request. s holds at least
 * min(len, RESP_NAME_MAX - 1) bytes of it; len is its full length.
 */
static void req_arg_to(struct resp_reqparser *p, struct resp_request *r, long long idx,
                       const char *s, size_t len)
{
    switch (idx) {
    case 0:
        r->namelen = len;
        util_lower(r->name, sizeof(r->name), s, len);
        return; /* argv[0] never counts for BLOCK */
    case 1:
        r->arg1len = len;
        util_lower(r->arg1, sizeof(r->arg1), s, len);
        break;
    case 2:
        r->arg2len = len;
        util_lower(r->arg2, sizeof(r->arg2), s, len);
        break;
    default:
        break;
    }
    if (p->streams_seen)
        return;
    if (len == 7 && strncasecmp(s, "streams", 7) == 0)
        p->streams_seen = 1;
    else if (len == 5 && strncasecmp(s, "block", 5) == 0)
        r->flags |= RESP_REQ_BLOCK_ARG;
}

static void req_arg(struct resp_reqparser *p, long long idx, const char *s, size_t len)
{
    req_arg_to(p, &p->cur, idx, s, len);
}

/*
 * Validate the element header at b (avail bytes buffered from there) before
 * the reader parses it. with_type: b points at the type byte; otherwise the
 * reader already took the '$' and b is the length line.
 * Returns 1 valid, 0 incomplete (p->pending set), -1 error (p->failed).
 */
static int req_check_elem(struct resp_reqparser *p, const char *b, size_t avail, int with_type)
{
    const char *cr;
    long long ll;

    p->pending = 1;
    if (with_type) {
        if (avail == 0)
            return 0;
        if (b[0] != '$') {
            req_fail(p, "Protocol error: expected '$', got '%c'", b[0]);
            return -1;
        }
        b++;
        avail--;
    }
    cr = memchr(b, '\r', avail);
    if (cr == NULL) {
        if (avail + 1 > RESP_INLINE_MAX) {
            req_fail(p, "Protocol error: too big bulk count string");
            return -1;
        }
        return 0;
    }
    if (!resp_parse_ll(b, (size_t)(cr - b), &ll) || ll < 0 || ll > RESP_BULK_MAX) {
        req_fail(p, "Protocol error: invalid bulk length");
        return -1;
    }
    if ((size_t)(cr - b) + 1 == avail)
        return 0; /* wait for the LF so the reader never sees a lone CR */
    if (cr[1] != '\n') {
        /* redis would skip any byte here; hiredis needs CRLF. Refuse. */
        req_fail(p, "Protocol error: invalid bulk length");
        return -1;
    }
    p->pending = 0;
    return 1;
}

/* ---- hiredis callbacks: record, never allocate ---- */

static void *req_on_string(const redisReadTask *t, char *str, size_t len)
{
    struct resp_reqparser *p = t->privdata;
    redisReader *r = p->reader;

    if (t->parent == NULL || t->type != REDIS_REPLY_STRING)
        return req_fail(p, "Protocol error: expected '$', got '%c'",
                        t->type == REDIS_REPLY_ERROR ? '-' : '+');
    req_arg(p, p->argi++, str, len);
    if (p->argi < p->nargs) {
        const char *next = str + len + 2;

        if (req_check_elem(p, next, (size_t)(r->buf + r->len - next), 1) < 0)
            return NULL;
    }
    return p;
}

static void *req_on_array(const redisReadTask *t, int elements)
{
    struct resp_reqparser *p = t->privdata;
    redisReader *r = p->reader;

    if (t->parent != NULL)
        return req_fail(p, "Protocol error: expected '$', got '*'");
    if (elements != p->nargs) /* header was checked by us: cannot happen */
        return req_fail(p, "Protocol error: invalid multibulk length");
    if (req_check_elem(p, r->buf + r->pos, r->len - r->pos, 1) < 0)
        return NULL;
    return p;
}

static void *req_on_integer(const redisReadTask *t, long long v)
{
    RZ_UNUSED(v);
    return req_fail(t->privdata, "Protocol error: expected '$', got ':'");
}

static void *req_on_nil(const redisReadTask *t)
{
    if (t->parent != NULL)
        return req_fail(t->privdata, "Protocol error: invalid bulk length");
    return req_fail(t->privdata, "Protocol error: invalid multibulk length");
}

static redisReplyObjectFunctions req_fn = {
    .createString = req_on_string,
    .createArray = req_on_array,
    .createInteger = req_on_integer,
    .createNil = req_on_nil,
    .freeObject = NULL, /* objects are the parser itself */
};

struct resp_reqparser *resp_reqparser_new(void)
{
    struct resp_reqparser *p = xcalloc(1, sizeof(*p));

    p->reader = redisReaderCreateWithFunctions(&req_fn);
    if (p->reader == NULL) {
        /* Same policy as xmalloc: nothing sensible to do without memory. */
        abort();
    }
    p->reader->privdata = p;
    return p;
}

void resp_reqparser_free(struct resp_reqparser *p)
{
    if (p == NULL)
        return;
    redisReaderFree(p->reader);
    free(p->line);
    free(p);
}

/*
 * Offset of the first byte `c` in `in`, starting the search at p->scanned
 * (bytes already known not to hold it), or -1. Resuming keeps a slowly
 * arriving long line linear instead of quadratic.
 */
static ssize_t req_find(struct resp_reqparser *p, struct evbuffer *in, size_t avail, char c)
{
    struct evbuffer_iovec v;
    struct evbuffer_ptr ptr;

    if (p->scanned == 0 && evbuffer_peek(in, -1, NULL, &v, 1) >= 1) {
        const char *hit = memchr(v.iov_base, c, v.iov_len);

        if (hit != NULL)
            return hit - (const char *)v.iov_base;
        p->scanned = v.iov_len;
    }
    if (p->scanned >= avail)
        return -1;
    if (evbuffer_ptr_set(in, &ptr, p->scanned, EVBUFFER_PTR_SET) < 0)
        return -1;
    ptr = evbuffer_search_range(in, &c, 1, &ptr, NULL);
    if (ptr.pos < 0) {
        p->scanned = avail;
        return -1;
    }
    return ptr.pos;
}

/* Contiguous view of the first n bytes of `in` (n <= RESP_INLINE_MAX + 1). */
static const char *req_front(struct resp_reqparser *p, struct evbuffer *in, size_t n)
{
    struct evbuffer_iovec v;

    if (n == 0)
        return "";
    if (evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len >= n)
        return v.iov_base;
    if (p->linecap < n) {
        p->line = xrealloc(p->line, n);
        p->linecap = n;
    }
    if (evbuffer_copyout(in, p->line, n) != (ev_ssize_t)n)
        abort(); /* n <= avail was checked by the caller */
    return p->line;
}

/* Throw away what the reader holds past the boundary; `in` is the truth. */
static void req_bypass_reader(struct resp_reqparser *p)
{
    p->reader->pos = p->reader->len;
    p->fed = 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * The next argument of an inline line, split like redis's sdssplitargs():
 * *sp advances past it (e ends the line; a NUL byte ends it too). At most
 * cap bytes of the argument go to tok (unescaped); *tlen gets its full
 * length. Returns 1, 0 when the line has no more arguments, or -1 for
 * unbalanced quotes.
 */
static int inline_next(const char **sp, const char *e, char *tok, size_t cap, size_t *tlen)
{
    const char *s = *sp;
    int inq = 0, insq = 0, done = 0;

    e = s + strnlen(s, (size_t)(e - s));
    *tlen = 0;
#define AT(i) (s + (i) < e ? (unsigned char)s[i] : 0)
#define EMIT(ch)                                 \
    do {                                         \
        if (*tlen < cap)                         \
            tok[*tlen] = (char)(ch);             \
        (*tlen)++;                               \
    } while (0)
    while (s < e && isspace((unsigned char)*s))
        s++;
    if (s == e) {
        *sp = s;
        return 0;
    }
    while (!done) {
        int c = AT(0);

        if (inq) {
            if (c == '\\' && AT(1) == 'x' && hexval(AT(2)) >= 0 && hexval(AT(3)) >= 0) {
                EMIT(hexval(AT(2)) * 16 + hexval(AT(3)));
                s += 3;
            } else if (c == '\\' && AT(1) != 0) {
                s++;
                switch (AT(0)) {
                case 'n': EMIT('\n'); break;
                case 'r': EMIT('\r'); break;
                case 't': EMIT('\t'); break;
                case 'b': EMIT('\b'); break;
                case 'a': EMIT('\a'); break;
                default: EMIT(AT(0)); break;
                }
            } else if (c == '"') {
                /* a closing quote must be followed by a space or the end */
                if (AT(1) != 0 && !isspace(AT(1)))
                    return -1;
                done = 1;
            } else if (c == 0) {
                return -1;
            } else {
                EMIT(c);
            }
        } else if (insq) {
            if (c == '\\' && AT(1) == '\'') {
                s++;
                EMIT('\'');
            } else if (c == '\'') {
                if (AT(1) != 0 && !isspace(AT(1)))
                    return -1;
                done = 1;
            } else if (c == 0) {
                return -1;
            } else {
                EMIT(c);
            }
        } else {
            switch (c) {
            case ' ': case '\n': case '\r': case '\t': case 0:
                done = 1;
                break;
            case '"':
                inq = 1;
                break;
            case '\'':
                insq = 1;
                break;
            default:
                EMIT(c);
                break;
            }
        }
        if (s < e)
            s++;
    }
#undef EMIT
#undef AT
    *sp = s;
    return 1;
}

/* Split an inline line and record its arguments. Returns argc or -1 for
 * unbalanced quotes. */
static int req_split(struct resp_reqparser *p, const char *s, size_t n)
{
    const char *e = s + n;
    int argc = 0;

    for (;;) {
        char tok[RESP_NAME_MAX];
        size_t tlen;
        int r = inline_next(&s, e, tok, sizeof(tok) - 1, &tlen);

        if (r <= 0)
            return r < 0 ? -1 : argc;
        req_arg(p, argc++, tok, tlen);
    }
}

/* An inline command at the front of `in` (redis processInlineBuffer). */
static int req_inline(struct resp_reqparser *p, struct evbuffer *in, size_t avail,
                      struct resp_request *req)
{
    ssize_t eol = req_find(p, in, avail, '\n');
    const char *line;
    size_t linelen;
    int argc;

    if (eol < 0) {
        if (avail > RESP_INLINE_MAX) {
            req_fail(p, "Protocol error: too big inline request");
            return -1;
        }
        return 0;
    }
    /* A line longer than redis would ever have buffered without finding its
     * newline is refused whatever the read sizes were. */
    if ((size_t)eol > RESP_INLINE_MAX) {
        req_fail(p, "Protocol error: too big inline request");
        return -1;
    }
    line = req_front(p, in, (size_t)eol);
    if (memchr(line, '\0', (size_t)eol) != NULL) {
        /* redis looks for the newline with strchr(): a NUL hides it, so
         * the request waits until the inline size cap is exceeded. */
        if (avail > RESP_INLINE_MAX) {
            req_fail(p, "Protocol error: too big inline request");
            return -1;
        }
        return 0;
    }
    linelen = (size_t)eol;
    if (linelen > 0 && line[linelen - 1] == '\r')
        linelen--;
    argc = req_split(p, line, linelen);
    if (argc < 0) {
        req_fail(p, "Protocol error: unbalanced quotes in request");
        return -1;
    }
    p->cur.argc = argc;
    p->cur.flags |= RESP_REQ_INLINE | (argc == 0 ? RESP_REQ_EMPTY : 0);
    p->cur.len = (size_t)eol + 1;
    *req = p->cur;
    p->drain = 0; /* never fed to the reader */
    return 1;
}

/*
 * The "*<n>\r\n" header at the front of `in` (redis processMultibulkBuffer).
 * Returns 1 with p->nargs and *hdrlen, 0 incomplete, -1 error.
 */
static int req_header(struct resp_reqparser *p, struct evbuffer *in, size_t avail,
                      size_t *hdrlen)
{
    ssize_t cr = req_find(p, in, avail, '\r');
    char tmp[24];
    long long ll;

    if (cr < 0) {
        if (avail > RESP_INLINE_MAX) {
            req_fail(p, "Protocol error: too big mbulk count string");
            return -1;
        }
        return 0;
    }
    if ((size_t)cr + 2 > sizeof(tmp)) {
        req_fail(p, "Protocol error: invalid multibulk length");
        return -1;
    }
    if ((size_t)cr + 1 >= avail)
        return 0; /* the LF is not there yet */
    if (evbuffer_copyout(in, tmp, (size_t)cr + 2) != cr + 2)
        abort();
    if (!resp_parse_ll(tmp + 1, (size_t)cr - 1, &ll) || ll > RESP_MULTIBULK_MAX || tmp[cr + 1] != '\n') {
        req_fail(p, "Protocol error: invalid multibulk length");
        return -1;
    }
    p->nargs = ll;
    *hdrlen = (size_t)cr + 2;
    return 1;
}

/* Copy up to `max` more bytes of `in` (from offset fed) into the reader. */
static int req_feed(struct resp_reqparser *p, struct evbuffer *in, size_t avail, size_t max)
{
    size_t n = avail - p->fed;

    if (n > max)
        n = max;
    while (n > 0) {
        struct evbuffer_iovec vec[8];
        struct evbuffer_ptr ptr;
        int nv;

        if (evbuffer_ptr_set(in, &ptr, p->fed, EVBUFFER_PTR_SET) < 0)
            abort(); /* fed < avail */
        nv = evbuffer_peek(in, (ev_ssize_t)n, &ptr, vec, 8);
        if (nv > 8)
            nv = 8;
        for (int i = 0; i < nv && n > 0; i++) {
            size_t l = vec[i].iov_len < n ? vec[i].iov_len : n;

            if (redisReaderFeed(p->reader, vec[i].iov_base, l) != REDIS_OK) {
                req_fail(p, "Protocol error: %s", p->reader->errstr);
                return -1;
            }
            p->fed += l;
            n -= l;
        }
    }
    return 0;
}

/* The length line of a "*" or "$" header at b[0]: its value and where the
 * next element starts, or 0 if it is not a complete, valid line in b[0..n). */
static inline int fast_len(const char *b, size_t n, long long *ll, size_t *next)
{
    const char *cr;
    unsigned long long v = 0;
    size_t i = 1;

    if (n > 3 && (unsigned)(b[1] - '1') < 9u && b[2] == '\r' && b[3] == '\n') {
        *ll = b[1] - '0';        /* "*3", "$3": most headers have one digit */
        *next = 4;
        return 1;
    }

    /* Plain digits without a leading zero, at most 18 (no overflow): the
     * usual case, read in one pass. Anything else goes through parse_ll. */
    if (n > 1 && b[1] >= '1' && b[1] <= '9') {
        for (; i < n && i < 19 && (unsigned)(b[i] - '0') <= 9; i++)
            v = v * 10 + (unsigned)(b[i] - '0');
        if (i + 1 < n && b[i] == '\r' && b[i + 1] == '\n') {
            *ll = (long long)v;
            *next = i + 2;
            return 1;
        }
    }
    cr = memchr(b + 1, '\r', n - 1 < 22 ? n - 1 : 22);

    if (cr == NULL || (size_t)(cr - b) + 1 >= n || cr[1] != '\n' ||
        !resp_parse_ll(b + 1, (size_t)(cr - b) - 1, ll))
        return 0;
    *next = (size_t)(cr - b) + 2;
    return 1;
}

/*
 * The common case without the reader: a complete, valid multibulk request
 * with at least one argument, all in b[0..n) (the first contiguous piece of
 * the input). Returns 1 with p->cur filled exactly as the reader's path
 * would, or 0 for anything else -- incomplete, split across pieces, empty,
 * or invalid in any way -- which the reader's path then frames, or refuses
 * with redis's wording. Like the reader (and redis), the two bytes after an
 * argument's payload are skipped unchecked.
 */
static int req_fast(struct resp_reqparser *p, const char *b, size_t n, struct resp_request *r)
{
    long long nargs, len, i;
    size_t pos, next;

    if (n < 4 || b[0] != '*' || !fast_len(b, n, &nargs, &pos) || nargs <= 0 ||
        nargs > RESP_MULTIBULK_MAX || (size_t)nargs > n / 4)
        return 0;
    p->streams_seen = 0;
    /* What req_arg_to() leaves alone when argc < 3 (no memset of the whole
     * request: this runs for every request). */
    r->argc = (int)nargs;
    r->flags = 0;
    r->arg1len = r->arg2len = 0;
    r->arg1[0] = r->arg2[0] = '\0';
    for (i = 0; i < nargs; i++) {
        if (pos + 4 > n || b[pos] != '$' || !fast_len(b + pos, n - pos, &len, &next) ||
            len < 0 || len > RESP_BULK_MAX || (size_t)len + 2 > n - pos - next)
            return 0;
        pos += next;
        req_arg_to(p, r, i, b + pos, (size_t)len);
        pos += (size_t)len + 2;
    }
    r->len = pos;
    return 1;
}

/* req_fast() on the first piece of `in`, framing straight into *req. */
static int req_try_fast(struct resp_reqparser *p, struct evbuffer *in, struct resp_request *req)
{
    struct evbuffer_iovec v;

    if (p->slow_only || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
        return 0;
    if (!req_fast(p, v.iov_base, v.iov_len, req))
        return 0;
    /* Whatever the reader held past the last boundary is stale now. */
    req_bypass_reader(p);
    p->fed = p->drain = req->len;
    p->scanned = 0;
    return 1;
}

void resp_reqparser_slow_only(struct resp_reqparser *p)
{
    p->slow_only = 1;
}

int resp_reqparser_next(struct resp_reqparser *p, struct evbuffer *in,
                        struct resp_request *req, char *err, size_t errlen)
{
    redisReader *r = p->reader;
    size_t avail = evbuffer_get_length(in);
    int rc;

    if (p->failed)
        goto fail;

    /* The caller removed the previous request from the front. */
    if (p->drain > 0) {
        if (p->fed < p->drain)
            abort();
        p->fed -= p->drain;
        p->drain = 0;
    }
    if (avail < p->fed) /* the caller drained more than it was told */
        abort();

    if (!p->in_req) {
        unsigned char first;
        size_t hdrlen;

        if (avail == 0)
            return 0;
        if (req_try_fast(p, in, req))
            return 1;
        memset(&p->cur, 0, sizeof(p->cur));
        if (evbuffer_copyout(in, &first, 1) != 1)
            abort();
        if (first != '*') {
            req_bypass_reader(p);
            rc = req_inline(p, in, avail, req);
            if (rc < 0)
                goto fail;
            if (rc > 0)
                p->scanned = 0;
            return rc;
        }
        rc = req_header(p, in, avail, &hdrlen);
        if (rc < 0)
            goto fail;
        if (rc == 0)
            return 0;
        p->scanned = 0;
        if (p->nargs <= 0) {
            /* redis: "*0", "*-1", "*-10" are skipped without a reply. */
            req_bypass_reader(p);
            p->cur.flags = RESP_REQ_EMPTY;
            p->cur.len = hdrlen;
            *req = p->cur;
            return 1;
        }
        p->cur.argc = (int)p->nargs;
        p->argi = 0;
        p->streams_seen = 0;
        p->pending = 0;
        p->in_req = 1;
    }

    for (;;) {
        void *reply = NULL;

        if (p->pending) {
            /* rstack[ridx].type is -1 until the reader took the type byte */
            int with_type = r->ridx < 0 || r->rstack[r->ridx].type < 0;

            rc = req_check_elem(p, r->buf + r->pos, r->len - r->pos, with_type);
            if (rc < 0)
                goto fail;
            if (rc == 0) {
                if (p->fed == avail)
                    return 0;
                if (req_feed(p, in, avail, RESP_FEED_CHUNK) < 0)
                    goto fail;
                continue;
            }
        }
        if (r->pos == r->len) {
            if (p->fed == avail)
                return 0;
            if (req_feed(p, in, avail, RESP_FEED_CHUNK) < 0)
                goto fail;
            continue;
        }
        rc = redisReaderGetReply(r, &reply);
        if (p->failed)
            goto fail;
        if (rc != REDIS_OK) {
            req_fail(p, "Protocol error: %s", r->errstr);
            goto fail;
        }
        if (reply != NULL)
            break;
        /* Stalled inside the request: it needs more bytes. */
        if (p->fed == avail)
            return 0;
        if (req_feed(p, in, avail, RESP_FEED_CHUNK) < 0)
            goto fail;
    }

    p->cur.len = p->fed - (r->len - r->pos);
    p->drain = p->cur.len;
    p->in_req = 0;
    *req = p->cur;
    return 1;

fail:
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", p->errstr);
    return -1;
}

/* ---- a request's every argument ------------------------------------------ */

void resp_args_free(struct resp_args *a)
{
    free(a->buf);
    free(a->argv);
    free(a->len);
    memset(a, 0, sizeof(*a));
}

static void args_put(struct resp_args *a, const char *s, size_t len)
{
    a->argv[a->argc] = s;
    a->len[a->argc] = len;
    a->argc++;
}

/* A multibulk request the framer accepted: "*<n>\r\n" then n times
 * "$<len>\r\n<bytes>\r\n". Each argument's CR becomes its NUL. */
static int args_multibulk(struct resp_args *a, char *b, size_t n, size_t max)
{
    char *end = b + n, *p = memchr(b, '\r', n);
    long long argc, len;

    if (p == NULL || !resp_parse_ll(b + 1, (size_t)(p - b - 1), &argc) || argc <= 0 ||
        (size_t)argc > max)
        return -1;
    p += 2;
    for (long long i = 0; i < argc; i++) {
        char *cr;

        if (p >= end || *p != '$' || (cr = memchr(p, '\r', (size_t)(end - p))) == NULL ||
            !resp_parse_ll(p + 1, (size_t)(cr - p - 1), &len) || len < 0 ||
            end - (cr + 2) < len + 2)
            return -1;
        p = cr + 2;
        p[len] = '\0';
        args_put(a, p, (size_t)len);
        p += len + 2;
    }
    return 0;
}

/* An inline request: its arguments are unescaped into the second half of
 * the buffer (never longer than the line they come from). */
static int args_inline(struct resp_args *a, char *b, size_t n, size_t max)
{
    const char *s = b, *e = b + n;
    char *out = b + n + 1;

    for (;;) {
        size_t tlen;
        int r = inline_next(&s, e, out, n, &tlen);

        if (r <= 0)
            return r;
        if ((size_t)a->argc == max)
            return -1;
        out[tlen] = '\0';
        args_put(a, out, tlen);
        out += tlen + 1;
    }
}

int resp_args_get(struct evbuffer *in, const struct resp_request *req, struct resp_args *a)
{
    size_t n = req->len;
    /* Every argument takes at least 2 bytes of the request ("x " inline,
     * "$0\r\n\r\n" multibulk): a bound that needs no second pass. */
    size_t max = n / 2 + 1;
    int rc;

    memset(a, 0, sizeof(*a));
    a->buf = malloc(2 * n + 2);
    a->argv = malloc(max * sizeof(*a->argv));
    a->len = malloc(max * sizeof(*a->len));
    if (a->buf == NULL || a->argv == NULL || a->len == NULL ||
        evbuffer_copyout(in, a->buf, n) != (ev_ssize_t)n) {
        resp_args_free(a);
        return -1;
    }
    a->buf[n] = '\0';
    rc = (req->flags & RESP_REQ_INLINE) ? args_inline(a, a->buf, n, max)
                                        : args_multibulk(a, a->buf, n, max);
    if (rc < 0) {
        resp_args_free(a);
        return -1;
    }
    return 0;
}

/* ---- replies ------------------------------------------------------------- */

enum scan_state {
    SC_TYPE = 0,    /* expecting a type byte */
    SC_NUM_START,   /* first byte of a number: '-', digit, or '?' */
    SC_NUM,         /* more digits until CR */
    SC_NUM_Q,       /* after '?': expecting CR */
    SC_NUM_LF,      /* number ended by CR: expecting LF */
    SC_LINE,        /* line payload, until CR */
    SC_LINE_KIND,   /* same, copying into info.kind */
    SC_LINE_LF,     /* line ended by CR: expecting LF */
    SC_BULK,        /* bulk_left payload bytes to skip */
    SC_BULK_KIND,   /* same, copying into info.kind */
    SC_BULK_CR,     /* payload done: expecting CR */
    SC_BULK_LF,     /* expecting LF */
    SC_CHUNK,       /* streamed string: expecting ';' */
    SC_ERROR,       /* unusable */
};

#define FRAMES(s) ((s)->stack != NULL ? (s)->stack : (s)->inline_stack)
#define INLINE_FRAMES ((int)(sizeof(((struct resp_scan *)0)->inline_stack) / \
                             sizeof(struct resp_scan_frame)))

void resp_scan_init(struct resp_scan *s)
{
    memset(s, 0, sizeof(*s));
    s->state = SC_TYPE;
    s->stack = NULL; /* NULL: inline_stack is in use (the struct may be moved) */
    s->cap = INLINE_FRAMES;
}

void resp_scan_free(struct resp_scan *s)
{
    free(s->stack);
    s->stack = NULL;
    s->cap = INLINE_FRAMES;
    s->depth = 0;
}

const char *resp_scan_error(const struct resp_scan *s)
{
    return s->errstr;
}

static int scan_fail(struct resp_scan *s, const char *fmt, ...) RZ_PRINTF(2, 3);

static int scan_fail(struct resp_scan *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->errstr, sizeof(s->errstr), fmt, ap);
    va_end(ap);
    s->state = SC_ERROR;
    return -1;
}

/* The value about to start is the top-level aggregate's element `idx`. */
static inline int scan_is_elem(const struct resp_scan *s, long long idx)
{
    const struct resp_scan_frame *f = FRAMES(s);

    return s->depth == 1 && f[0].index == idx && f[0].type != '|';
}

/*
 * A value just ended. Walk up the stack closing aggregates it completed.
 * Returns 1 when a top-level reply is complete, 0 otherwise.
 */
static int scan_value_done(struct resp_scan *s)
{
    struct resp_scan_frame *frames = FRAMES(s);

    s->state = SC_TYPE;
    for (;;) {
        struct resp_scan_frame *f;

        if (s->depth == 0)
            return 1;
        f = &frames[s->depth - 1];
        f->index++;
        if (f->remaining < 0 || --f->remaining > 0)
            return 0;
        s->depth--;
        if (f->type == '|') {
            /* An attribute is not a value: whatever follows is. */
            if (s->depth == 0)
                s->pending_attr = 1;
            return 0;
        }
    }
}

static int scan_push(struct resp_scan *s, char type, long long remaining)
{
    struct resp_scan_frame *f;

    if (s->depth >= RESP_SCAN_MAX_DEPTH)
        return scan_fail(s, "reply nested deeper than %d levels", RESP_SCAN_MAX_DEPTH);
    if (s->depth == s->cap) {
        int cap = s->cap * 2;

        if (cap > RESP_SCAN_MAX_DEPTH)
            cap = RESP_SCAN_MAX_DEPTH;
        if (s->stack == NULL) {
            s->stack = xmalloc((size_t)cap * sizeof(*s->stack));
            memcpy(s->stack, s->inline_stack, sizeof(s->inline_stack));
        } else {
            s->stack = xrealloc(s->stack, (size_t)cap * sizeof(*s->stack));
        }
        s->cap = cap;
    }
    f = &FRAMES(s)[s->depth++];
    f->remaining = remaining;
    f->index = 0;
    f->type = type;
    s->state = SC_TYPE;
    return 0;
}

/* A type byte starts a value (or an attribute, or a '.' end marker). */
static int scan_type(struct resp_scan *s, char c)
{
    if (s->depth == 0 && c != '|') {
        memset(&s->info, 0, sizeof(s->info));
        s->info.type = c;
        s->pending_attr = 0;
    }
    s->type = c;
    switch (c) {
    case '+':
        s->state = scan_is_elem(s, 0) ? SC_LINE_KIND : SC_LINE;
        return 0;
    case '_':
        if (s->depth == 0)
            s->info.nelem = -1;
        /* fall through */
    case '-': case ',': case '#': case '(':
        s->state = SC_LINE;
        return 0;
    case '.':
        if (s->depth == 0 || FRAMES(s)[s->depth - 1].remaining >= 0)
            return scan_fail(s, "'.' outside a streamed aggregate");
        s->state = SC_LINE;
        return 0;
    case ':': case '$': case '!': case '=':
    case '*': case '~': case '>': case '%': case '|':
        s->neg = 0;
        s->ndigits = 0;
        s->num = 0;
        s->state = SC_NUM_START;
        return 0;
    default:
        if (isprint((unsigned char)c))
            return scan_fail(s, "bad reply type byte '%c'", c);
        return scan_fail(s, "bad reply type byte 0x%02x", (unsigned char)c);
    }
}

/* The number for s->type is complete ("?" when ndigits < 0). Returns 1 when
 * a top-level reply completed, 0 to go on, -1 on error. */
static int scan_number(struct resp_scan *s)
{
    long long n = s->num;
    char t = s->type;

    if (s->ndigits < 0) { /* streamed */
        if (s->depth == 0)
            s->info.nelem = -1;
        if (t == '$') {
            s->state = SC_CHUNK;
            return 0;
        }
        return scan_push(s, t, -1);
    }
    switch (t) {
    case ':':
        if (scan_is_elem(s, 2)) {
            s->info.has_count = 1;
            s->info.count = n;
        }
        return scan_value_done(s);
    case ';':
        if (n < 0)
            return scan_fail(s, "bad streamed string chunk length %lld", n);
        if (n == 0) {
            s->type = '$';
            return scan_value_done(s);
        }
        s->bulk_left = n;
        s->state = SC_BULK;
        return 0;
    case '$': case '!': case '=':
        if (n == -1 && t == '$') {
            if (s->depth == 0)
                s->info.nelem = -1;
            return scan_value_done(s);
        }
        if (n < 0)
            return scan_fail(s, "bad '%c' length %lld", t, n);
        s->bulk_left = n;
        if (t == '$' && n < RESP_KIND_MAX && scan_is_elem(s, 0)) {
            s->info.kindlen = 0;
            s->state = SC_BULK_KIND;
        } else {
            s->state = SC_BULK;
        }
        return 0;
    default: /* aggregates */
        if (n == -1 && t == '*') {
            if (s->depth == 0)
                s->info.nelem = -1;
            return scan_value_done(s);
        }
        if (n < 0)
            return scan_fail(s, "bad '%c' element count %lld", t, n);
        if (s->depth == 0 && t != '|')
            s->info.nelem = n;
        if (t == '%' || t == '|') {
            if (n > LLONG_MAX / 2)
                return scan_fail(s, "bad '%c' element count %lld", t, n);
            n *= 2;
        }
        if (n == 0) {
            if (t == '|') { /* an empty attribute: still not a value */
                s->state = SC_TYPE;
                if (s->depth == 0)
                    s->pending_attr = 1;
                return 0;
            }
            return scan_value_done(s);
        }
        return scan_push(s, t, n);
    }
}

/* kindlen == RESP_KIND_MAX marks "too long": no kind. */
static void scan_kind_end(struct resp_scan *s)
{
    if (s->info.kindlen >= RESP_KIND_MAX)
        s->info.kindlen = 0;
    s->info.kind[s->info.kindlen] = '\0';
}

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* Up to 18 digits and CRLF at b[0..n): the value and the bytes used, or 0. */
static size_t fast_digits(const char *b, size_t n, long long *v)
{
    size_t i = 0;

    *v = 0;
    for (; i < n && i < 18 && (unsigned)(b[i] - '0') <= 9; i++)
        *v = *v * 10 + (b[i] - '0');
    if (i == 0 || i + 1 >= n || b[i] != '\r' || b[i + 1] != '\n')
        return 0;
    return i + 2;
}

/*
 * The usual replies without the state machine: a whole top-level status,
 * error, integer or bulk string at buf[0..len). Returns its length, or 0
 * for anything else (incomplete, another type, a negative or long number,
 * bad framing), which the state machine then scans from the same byte --
 * so errors keep their wording and nothing is decided twice.
 */
static size_t scan_fast(struct resp_scan *s, const char *buf, size_t len)
{
    const char *cr;
    long long v;
    size_t used;

    if (s->state != SC_TYPE || s->depth != 0 || s->pending_attr || len < 4)
        return 0;
    switch (buf[0]) {
    case '+':
    case '-':
        cr = memchr(buf + 1, '\r', len - 1);
        if (cr == NULL || cr + 1 == buf + len || cr[1] != '\n')
            return 0;
        used = (size_t)(cr - buf) + 2;
        break;
    case ':':
        used = fast_digits(buf + 1, len - 1, &v);
        if (used == 0)
            return 0;
        used += 1;
        break;
    case '$':
        used = fast_digits(buf + 1, len - 1, &v);
        if (used == 0 || (size_t)v + 2 > len - 1 - used)
            return 0;
        used += 1 + (size_t)v;
        if (buf[used] != '\r' || buf[used + 1] != '\n')
            return 0;
        used += 2;
        break;
    default:
        return 0;
    }
    memset(&s->info, 0, sizeof(s->info));
    s->info.type = buf[0];
    return used;
}

ssize_t resp_scan_feed(struct resp_scan *s, const char *buf, size_t len, int *done,
                       struct resp_reply_info *info)
{
    const char *q = buf, *end = buf + len;
    size_t fast;
    int rc;

    *done = 0;
    if (s->state == SC_ERROR)
        return -1;
    fast = scan_fast(s, buf, len);
    if (fast > 0) {
        q = buf + fast;
        goto reply_done;
    }

    while (q < end) {
        switch (s->state) {
        case SC_TYPE:
            if (scan_type(s, *q++) < 0)
                return -1;
            break;

        case SC_NUM_START:
            if (*q == '-') {
                s->neg = 1;
                q++;
                s->state = SC_NUM;
                break;
            }
            if (*q == '?') {
                char t = s->type;

                if (t != '$' && t != '*' && t != '%' && t != '~')
                    return scan_fail(s, "'%c' cannot be streamed", t);
                s->ndigits = -1;
                q++;
                s->state = SC_NUM_Q;
                break;
            }
            s->state = SC_NUM;
            /* fall through */
        case SC_NUM: {
            long long num = s->num;
            int nd = s->ndigits;

            while (q < end) {
                unsigned d = (unsigned)(*q - '0');

                if (d <= 9) {
                    if (!s->neg) {
                        if (num > (LLONG_MAX - (long long)d) / 10)
                            return scan_fail(s, "number too large after '%c'", s->type);
                        num = num * 10 + (long long)d;
                    } else {
                        if (num < (LLONG_MIN + (long long)d) / 10)
                            return scan_fail(s, "number too large after '%c'", s->type);
                        num = num * 10 - (long long)d;
                    }
                    nd++;
                    q++;
                    continue;
                }
                if (*q != '\r' || nd == 0)
                    return scan_fail(s, "bad number after '%c'", s->type);
                q++;
                s->state = SC_NUM_LF;
                break;
            }
            s->num = num;
            s->ndigits = nd;
            break;
        }

        case SC_NUM_Q:
            if (*q++ != '\r')
                return scan_fail(s, "bad number after '%c'", s->type);
            s->state = SC_NUM_LF;
            break;

        case SC_NUM_LF:
            if (*q++ != '\n')
                return scan_fail(s, "missing LF after CR");
            rc = scan_number(s);
            if (rc < 0)
                return -1;
            if (rc > 0)
                goto reply_done;
            break;

        case SC_LINE: {
            const char *cr = memchr(q, '\r', (size_t)(end - q));

            if (cr == NULL) {
                q = end;
                break;
            }
            q = cr + 1;
            s->state = SC_LINE_LF;
            break;
        }

        case SC_LINE_KIND:
            while (q < end && *q != '\r') {
                if (s->info.kindlen < RESP_KIND_MAX - 1)
                    s->info.kind[s->info.kindlen++] = lower(*q);
                else
                    s->info.kindlen = RESP_KIND_MAX;
                q++;
            }
            if (q < end) {
                q++;
                scan_kind_end(s);
                s->state = SC_LINE_LF;
            }
            break;

        case SC_LINE_LF:
            if (*q++ != '\n')
                return scan_fail(s, "missing LF after CR");
            if (s->type == '.') {
                /* end of a streamed aggregate: it is a value of its parent */
                s->depth--;
            }
            if (scan_value_done(s))
                goto reply_done;
            break;

        case SC_BULK: {
            size_t avail = (size_t)(end - q);

            if ((unsigned long long)s->bulk_left <= avail) {
                q += s->bulk_left;
                s->bulk_left = 0;
                s->state = SC_BULK_CR;
            } else {
                s->bulk_left -= (long long)avail;
                q = end;
            }
            break;
        }

        case SC_BULK_KIND:
            while (q < end && s->bulk_left > 0) {
                s->info.kind[s->info.kindlen++] = lower(*q++);
                s->bulk_left--;
            }
            if (s->bulk_left == 0) {
                scan_kind_end(s);
                s->state = SC_BULK_CR;
            }
            break;

        case SC_BULK_CR:
            if (*q++ != '\r')
                return scan_fail(s, "missing CRLF after '%c' payload", s->type);
            s->state = SC_BULK_LF;
            break;

        case SC_BULK_LF:
            if (*q++ != '\n')
                return scan_fail(s, "missing CRLF after '%c' payload", s->type);
            if (s->type == ';') {
                s->state = SC_CHUNK;
                break;
            }
            if (scan_value_done(s))
                goto reply_done;
            break;

        case SC_CHUNK:
            if (*q++ != ';')
                return scan_fail(s, "expected ';' in streamed string");
            s->type = ';';
            s->neg = 0;
            s->ndigits = 0;
            s->num = 0;
            s->state = SC_NUM_START;
            break;

        default:
            return scan_fail(s, "scanner in a bad state");
        }
    }
    return (ssize_t)len;

reply_done:
    *done = 1;
    if (info != NULL)
        *info = s->info;
    memset(&s->info, 0, sizeof(s->info));
    s->pending_attr = 0;
    s->state = SC_TYPE;
    return q - buf;
}
