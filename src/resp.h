/*
 * resp: framing of the Redis protocol, in both directions, without building
 * objects.
 *
 * Requests (client -> proxy) are framed with hiredis's redisReader and a
 * small function table of our own that keeps only what routing needs: the
 * command name, the first two arguments (lowercased, truncated), argc and a
 * few flags. Inline commands ("PING\r\n"), which redisReader rejects, are
 * detected at a request boundary and split here with redis's rules and size
 * cap. The request's bytes stay in the caller's evbuffer untouched: the
 * caller forwards exactly req->len bytes as they came.
 *
 * Replies (master -> proxy) are framed with a resumable scanner that counts
 * complete top-level replies of every RESP2 and RESP3 type (including
 * attributes, which prefix a reply and do not count as one, push messages,
 * streamed strings and aggregates) and records just enough of each reply to
 * track pub/sub state: its type, its element count, its first element when a
 * short string and its third when an integer.
 */
#ifndef RZ_RESP_H
#define RZ_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

struct evbuffer;

/* ---- requests ------------------------------------------------------------ */

#define RESP_NAME_MAX 32                 /* bytes kept of argv[0..2] incl. NUL */
#define RESP_INLINE_MAX (64 * 1024)      /* redis PROTO_INLINE_MAX_SIZE */
#define RESP_MULTIBULK_MAX (1024 * 1024 * 1024) /* args per request, like redis's INT_MAX guard but sane */

enum resp_req_flag {
    RESP_REQ_INLINE = 1 << 0,    /* came as an inline command line */
    RESP_REQ_EMPTY = 1 << 1,     /* "*0", "*-1" or a blank inline line: redis sends no reply */
    RESP_REQ_BLOCK_ARG = 1 << 2, /* some argument after argv[0] and before a "STREAMS"
                                    argument equals "BLOCK" (case-insensitive) */
};

struct resp_request {
    size_t len;                  /* raw bytes of this request at the front of the input */
    int argc;                    /* 0 for RESP_REQ_EMPTY */
    unsigned flags;              /* enum resp_req_flag */
    size_t namelen;              /* full length of argv[0] (may exceed what is kept) */
    char name[RESP_NAME_MAX];    /* argv[0], lowercased, NUL-terminated, truncated */
    size_t arg1len;
    char arg1[RESP_NAME_MAX];    /* argv[1] likewise, "" when argc < 2 */
    size_t arg2len;
    char arg2[RESP_NAME_MAX];    /* argv[2] likewise, "" when argc < 3 */
};

struct resp_reqparser;

struct resp_reqparser *resp_reqparser_new(void);
void resp_reqparser_free(struct resp_reqparser *p);

/*
 * Frame the next request at the front of `in`.
 *   1  a complete request is described in *req. The caller must remove exactly
 *      req->len bytes from the front of `in` before the next call (it may
 *      append bytes to `in` at any time).
 *   0  the request is incomplete: call again when more bytes arrived.
 *  -1  protocol error; err holds redis's wording without the "-ERR " prefix,
 *      e.g. "Protocol error: invalid multibulk length". The connection must
 *      be closed after replying; the parser is unusable afterwards.
 */
int resp_reqparser_next(struct resp_reqparser *p, struct evbuffer *in,
                        struct resp_request *req, char *err, size_t errlen) RZ_MUSTCHECK;
/* Tests: frame every request with the reader, never with the fast path for
 * a complete request in one piece (the two must agree byte for byte). */
void resp_reqparser_slow_only(struct resp_reqparser *p);

/*
 * Every argument of a framed request, for the few commands the proxy
 * answers or checks itself (CLIENT SETNAME, HELLO, AUTH, SELECT). They come
 * at connection set-up, not per request, so this copies the request once
 * and allocates; ordinary commands never come here.
 */
struct resp_args {
    int argc;
    const char **argv;           /* NUL-terminated; may hold NULs: use len */
    size_t *len;
    char *buf;                   /* owns the bytes */
};

/* The arguments of `req`, whose req->len bytes are at the front of `in`
 * (left there). 0, or -1 if the bytes are not the framed request (a bug) or
 * memory ran out. Free with resp_args_free() either way. */
int resp_args_get(struct evbuffer *in, const struct resp_request *req,
                  struct resp_args *a) RZ_MUSTCHECK;
void resp_args_free(struct resp_args *a);

/* redis's string2ll(): an optional '-', then digits without leading zeros
 * ("0" alone is fine), no '+', no spaces, within long long. 1 and *out, or 0. */
int resp_parse_ll(const char *s, size_t n, long long *out);

/* ---- replies ------------------------------------------------------------- */

#define RESP_KIND_MAX 16

struct resp_reply_info {
    char type;                   /* type byte of the top-level value ('+', '*', '>', ...),
                                    after any attribute that preceded it */
    long long nelem;             /* aggregates: element count as announced (maps: pairs);
                                    -1 for null or streamed; 0 otherwise */
    size_t kindlen;              /* first element, when the value is an aggregate whose */
    char kind[RESP_KIND_MAX];    /* first element is a string shorter than RESP_KIND_MAX:
                                    (may hold NUL bytes: compare with kindlen)
                                    lowercased, NUL-terminated; "" otherwise */
    int has_count;               /* third element is an integer: */
    long long count;             /* its value */
};

struct resp_scan_frame {
    long long remaining;         /* values still expected; -1 = streamed until '.' */
    long long index;             /* values seen so far in this aggregate */
    char type;                   /* the aggregate's type byte */
};

/* Embedded by the caller; fields are private to resp.c. */
struct resp_scan {
    int state;
    char type;                   /* type byte of the item being read */
    int neg;                     /* number being parsed is negative */
    int ndigits;
    long long num;               /* number being parsed */
    long long bulk_left;         /* bytes of bulk payload + CRLF still to skip */
    int depth;                   /* frames in use */
    int cap;                     /* frames allocated */
    struct resp_scan_frame *stack;
    struct resp_scan_frame inline_stack[8];
    struct resp_reply_info info; /* being filled for the current top-level reply */
    int pending_attr;            /* an attribute at top level was completed */
    char errstr[128];
};

#define RESP_SCAN_MAX_DEPTH 1024

void resp_scan_init(struct resp_scan *s);
void resp_scan_free(struct resp_scan *s);

/*
 * Scan p[0..len) from where the previous call stopped.
 * Returns the number of bytes consumed, which is len, or fewer when a
 * top-level reply ended inside the data: then *done = 1 and *info describes
 * that reply (the next call starts with the next reply). Returns -1 on a
 * protocol error (see resp_scan_error); the scanner is then unusable.
 */
ssize_t resp_scan_feed(struct resp_scan *s, const char *p, size_t len, int *done,
                       struct resp_reply_info *info) RZ_MUSTCHECK;
const char *resp_scan_error(const struct resp_scan *s);

#endif
