/*
 * fuzz_reply: the master side, resp_scan_feed(), fed three ways:
 *
 *   whole     the entire input in one call, re-called after each reply
 *   chunked   chunk lengths 1..16 from a PRNG seeded with the input's hash
 *   bytewise  one byte per call
 *
 * From each run we record the end offset and resp_reply_info of every
 * complete top-level reply and whether/where the scan failed. The scanner is
 * resumable, so all three must agree exactly; any difference is a framing
 * bug (the proxy would hand a client a reply split at the wrong byte) and
 * aborts with both records printed. Also checked on every call: the
 * consumed count is in 0..len, it is len unless a reply ended (done), a
 * reply consumes at least one byte, and the total never exceeds the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

struct record {
    size_t nreplies;
    size_t cap;
    size_t *ends;                    /* offset just past each reply */
    struct resp_reply_info *infos;
    int failed;                      /* resp_scan_feed returned -1 */
    size_t fail_off;                 /* bytes consumed before the failing call's data */
    size_t fail_end;                 /* end of the data given to the failing call */
};

static void rec_add(struct record *r, size_t end, const struct resp_reply_info *ri)
{
    if (r->nreplies == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->ends = realloc(r->ends, r->cap * sizeof(*r->ends));
        r->infos = realloc(r->infos, r->cap * sizeof(*r->infos));
        if (r->ends == NULL || r->infos == NULL)
            abort();
    }
    r->ends[r->nreplies] = end;
    r->infos[r->nreplies] = *ri;
    r->nreplies++;
}

static void rec_free(struct record *r)
{
    free(r->ends);
    free(r->infos);
}

/* Scan data[0..size): whole (mode 0), in PRNG-sized chunks (1) or bytewise (2). */
static void run(const uint8_t *data, size_t size, int mode, uint32_t seed, struct record *rec)
{
    struct resp_scan s;
    size_t off = 0;

    memset(rec, 0, sizeof(*rec));
    resp_scan_init(&s);
    while (off < size) {
        size_t chunk = size - off, used = 0;
        /* Exact-size heap copy of the piece so ASan catches overreads. */
        char *piece;

        if (mode == 1) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            chunk = 1 + seed % 16;
        } else if (mode == 2) {
            chunk = 1;
        }
        if (chunk > size - off)
            chunk = size - off;
        piece = malloc(chunk);
        if (piece == NULL)
            abort();
        memcpy(piece, data + off, chunk);

        while (used < chunk) {
            struct resp_reply_info ri;
            int done = 0;
            ssize_t n;

            memset(&ri, 0, sizeof(ri));
            n = resp_scan_feed(&s, piece + used, chunk - used, &done, &ri);
            if (n < 0) {
                const char *e = resp_scan_error(&s);

                if (e == NULL || e[0] == '\0') {
                    fprintf(stderr, "fuzz_reply: -1 without an error message\n");
                    abort();
                }
                rec->failed = 1;
                rec->fail_off = off + used;
                rec->fail_end = off + chunk;
                free(piece);
                resp_scan_free(&s);
                return;
            }
            if ((size_t)n > chunk - used || (!done && (size_t)n != chunk - used) ||
                (done && n == 0)) {
                fprintf(stderr, "fuzz_reply: mode %d: fed %zu bytes at %zu, consumed %zd, "
                        "done %d\n", mode, chunk - used, off + used, n, done);
                abort();
            }
            used += (size_t)n;
            if (off + used > size)
                abort();
            if (done) {
                /* kind is binary-safe (users compare kindlen bytes), so a
                 * NUL inside it is fine; it must be terminated at kindlen. */
                if (ri.type == 0 || ri.kindlen >= RESP_KIND_MAX ||
                    ri.kind[ri.kindlen] != '\0') {
                    fprintf(stderr, "fuzz_reply: mode %d: bad info at %zu (type 0x%02x "
                            "kindlen %zu)\n", mode, off + used, (unsigned char)ri.type,
                            ri.kindlen);
                    abort();
                }
                rec_add(rec, off + used, &ri);
            }
        }
        free(piece);
        off += chunk;
    }
    resp_scan_free(&s);
}

static int info_eq(const struct resp_reply_info *a, const struct resp_reply_info *b)
{
    return a->type == b->type && a->nelem == b->nelem && a->kindlen == b->kindlen &&
           memcmp(a->kind, b->kind, a->kindlen) == 0 && a->has_count == b->has_count &&
           (!a->has_count || a->count == b->count);
}

static void dump(const char *what, const struct record *r)
{
    fprintf(stderr, "  %s: %zu replies, failed %d", what, r->nreplies, r->failed);
    if (r->failed)
        fprintf(stderr, " (in data %zu..%zu)", r->fail_off, r->fail_end);
    fprintf(stderr, "\n");
    for (size_t i = 0; i < r->nreplies && i < 32; i++) {
        const struct resp_reply_info *ri = &r->infos[i];

        fprintf(stderr, "    end %zu type '%c' nelem %lld kind \"%s\" count %d/%lld\n",
                r->ends[i], ri->type, ri->nelem, ri->kind, ri->has_count, ri->count);
    }
}

/* Compare b against the reference a. A failing scan may stop anywhere in the
 * piece it was given, so only replies that end before both failures count. */
static void compare(const char *an, const struct record *a, const char *bn,
                    const struct record *b)
{
    size_t n = a->nreplies < b->nreplies ? a->nreplies : b->nreplies;
    int bad = 0;

    if (a->failed != b->failed || a->nreplies != b->nreplies)
        bad = 1;
    for (size_t i = 0; i < n && !bad; i++)
        if (a->ends[i] != b->ends[i] || !info_eq(&a->infos[i], &b->infos[i]))
            bad = 1;
    if (bad) {
        fprintf(stderr, "fuzz_reply: %s and %s disagree\n", an, bn);
        dump(an, a);
        dump(bn, b);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct record whole, chunked, bytewise;
    uint32_t seed = 2166136261u;

    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 16777619u;
    seed |= 1;

    run(data, size, 0, 0, &whole);
    run(data, size, 1, seed, &chunked);
    run(data, size, 2, 0, &bytewise);

    compare("whole", &whole, "chunked", &chunked);
    compare("whole", &whole, "bytewise", &bytewise);

    rec_free(&whole);
    rec_free(&chunked);
    rec_free(&bytewise);
    return 0;
}
