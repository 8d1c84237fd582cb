#include "probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <hiredis/hiredis.h>

#include "conf.h"
#include "io.h"
#include "log.h"
#include "pool.h"
#include "session.h"
#include "util.h"

enum probe_expect {
    EXP_SETUP,                       /* AUTH with the pool's credentials */
    EXP_COMMAND,                     /* COMMAND */
    EXP_INFO,                        /* INFO replication */
};

#define EXPECT_MAX 8

struct probe {
    struct pool *pool;
    char *host;
    int port;
    int want_commands;               /* COMMAND not yet answered */
    probe_fn fn;
    void *owner;
    struct io_conn io;               /* live while connected or connecting */
    redisReader *reader;
    enum probe_expect expect[EXPECT_MAX];
    int nexpect;
    uint64_t info_asked_ms;          /* an INFO is out since, 0 = none */
    int ticks;                       /* ticks since info_asked_ms */
    int down;                        /* PROBE_DOWN reported, no INFO since */
    uint64_t retry_ms;               /* after a failure: connect again from then */
};

static void probe_read_cb(void *arg);
static void probe_drained_cb(void *arg);
static void probe_event_cb(void *arg, int what, int err);

static const struct io_handler probe_io = { probe_read_cb, probe_drained_cb, probe_event_cb };

/* ---- INFO replication ------------------------------------------------------ */

/* The value of "key:" on a line of text, copied into out; 0 if absent. */
static int info_field(const char *text, size_t len, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((eol ? eol : end) - p);

        if (n > klen && memcmp(p, key, klen) == 0 && p[klen] == ':') {
            size_t v = n - klen - 1;

            if (v > 0 && p[klen + v] == '\r')
                v--;
            if (v >= outlen)
                v = outlen - 1;
            memcpy(out, p + klen + 1, v);
            out[v] = '\0';
            return 1;
        }
        p = eol ? eol + 1 : end;
    }
    return 0;
}

int probe_parse_info(const char *text, size_t len, struct probe_report *r)
{
    char v[256];

    memset(r, 0, sizeof(*r));
    if (!info_field(text, len, "role", v, sizeof(v)))
        return -1;
    r->is_master = strcmp(v, "master") == 0;
    info_field(text, len, "master_replid", r->replid, sizeof(r->replid));
    if (r->is_master) {
        if (info_field(text, len, "master_repl_offset", v, sizeof(v)))
            r->offset = strtoll(v, NULL, 10);
        return 0;
    }
    r->link_up = info_field(text, len, "master_link_status", v, sizeof(v)) &&
                 strcmp(v, "up") == 0;
    if (info_field(text, len, "slave_repl_offset", v, sizeof(v)))
        r->offset = strtoll(v, NULL, 10);
    return 0;
}

/* ---- COMMAND ------------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int flagged_readonly(const redisReply *flags)
{
    if (flags == NULL || flags->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < flags->elements; i++) {
        const redisReply *f = flags->element[i];

        if ((f->type == REDIS_REPLY_STATUS || f->type == REDIS_REPLY_STRING) &&
            strcasecmp(f->str, "readonly") == 0)
            return 1;
    }
    return 0;
}

/* COMMAND's reply: one array per command, its name first and its flags
 * third. The owner gets the names flagged readonly, lowercase, sorted. */
static void report_commands(struct probe *pr, const redisReply *rep)
{
    struct probe_report r;
    char **names = xcalloc(rep->elements + 1, sizeof(*names));
    size_t n = 0;

    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *c = rep->element[i];

        if (c->type != REDIS_REPLY_ARRAY || c->elements < 3 ||
            c->element[0]->type != REDIS_REPLY_STRING || !flagged_readonly(c->element[2]))
            continue;
        names[n] = xmalloc(c->element[0]->len + 1);
        util_lower(names[n], c->element[0]->len + 1, c->element[0]->str, c->element[0]->len);
        n++;
    }
    qsort(names, n, sizeof(*names), cmp_name);
    memset(&r, 0, sizeof(r));
    r.names = (const char *const *)names;
    r.nnames = n;
    pr->want_commands = 0;
    pr->fn(pr->owner, PROBE_COMMANDS, &r);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ---- the connection ---------------------------------------------------------------- */

static void send_command(struct probe *pr, const char *cmd, enum probe_expect what)
{
    evbuffer_add(pr->io.out, cmd, strlen(cmd));
    io_conn_queued(&pr->io);
    pr->expect[pr->nexpect++] = what;
}

static void disconnect(struct probe *pr, const char *why)
{
    if (io_conn_live(&pr->io)) {
        log_debug(pr->pool->name, "probe of %s:%d: %s", pr->host, pr->port, why);
        io_conn_close(&pr->io);
    }
    if (pr->reader != NULL)
        redisReaderFree(pr->reader);
    pr->reader = NULL;
    pr->nexpect = 0;
    pr->info_asked_ms = 0;
    pr->retry_ms = util_now_ms() + 500;
    if (!pr->down) {
        pr->down = 1;
        pr->fn(pr->owner, PROBE_DOWN, NULL);
    }
}

static void connect_probe(struct probe *pr)
{
    struct pool *p = pr->pool;
    struct session_state fresh;
    int n;

    io_conn_connect(&pr->io, pr->host, pr->port, p->cf->connect_timeout_ms, &probe_io, pr, 0,
                    p->tls, p->cf->tls_server_name);
    io_conn_read(&pr->io, 1);
    pr->reader = redisReaderCreate();
    if (pr->reader == NULL)
        util_oom(sizeof(redisReader));
    session_state_init(&fresh);
    n = session_state_setup(&fresh, &p->cred, pr->io.out);
    for (int i = 0; i < n && pr->nexpect < EXPECT_MAX; i++)
        pr->expect[pr->nexpect++] = EXP_SETUP;
    if (pr->want_commands)
        send_command(pr, "*1\r\n$7\r\nCOMMAND\r\n", EXP_COMMAND);
}

/* One whole reply, for the oldest thing asked. Returns -1 if the probe
 * disconnected. */
static int on_reply(struct probe *pr, redisReply *rep)
{
    enum probe_expect what;
    struct probe_report r;

    if (pr->nexpect == 0) {
        disconnect(pr, "a reply nobody asked for");
        return -1;
    }
    what = pr->expect[0];
    memmove(pr->expect, pr->expect + 1, (size_t)--pr->nexpect * sizeof(pr->expect[0]));
    if (rep->type == REDIS_REPLY_ERROR && what != EXP_COMMAND) {
        char why[200];

        snprintf(why, sizeof(why), "the server refused it: %.150s", rep->str);
        disconnect(pr, why);
        return -1;
    }
    if (what == EXP_COMMAND && rep->type == REDIS_REPLY_ARRAY)
        report_commands(pr, rep);
    if (what != EXP_INFO)
        return 0;
    pr->info_asked_ms = 0;
    if (rep->type != REDIS_REPLY_STRING || probe_parse_info(rep->str, rep->len, &r) < 0) {
        disconnect(pr, "INFO replication without a role");
        return -1;
    }
    pr->down = 0;
    pr->fn(pr->owner, PROBE_INFO, &r);
    return 0;
}

static void probe_read_cb(void *arg)
{
    struct probe *pr = arg;
    struct evbuffer *in = pr->io.in;
    size_t len = evbuffer_get_length(in);
    void *rep = NULL;

    if (redisReaderFeed(pr->reader, (const char *)evbuffer_pullup(in, (ev_ssize_t)len), len) !=
        REDIS_OK) {
        disconnect(pr, "cannot buffer its reply");
        return;
    }
    evbuffer_drain(in, len);
    for (;;) {
        int rc;

        if (redisReaderGetReply(pr->reader, &rep) != REDIS_OK) {
            disconnect(pr, "protocol error in its reply");
            return;
        }
        if (rep == NULL)
            return;
        rc = on_reply(pr, rep);
        freeReplyObject(rep);
        if (rc < 0)
            return;
    }
}

static void probe_drained_cb(void *arg)
{
    RZ_UNUSED(arg);
}

static void probe_event_cb(void *arg, int what, int err)
{
    struct probe *pr = arg;
    char why[300];

    if (what & IO_CONNECTED)
        return;
    if (what & IO_TLS)
        snprintf(why, sizeof(why), "TLS: %s", io_conn_tls_error(&pr->io));
    else if (what & IO_EOF)
        snprintf(why, sizeof(why), "the server closed the connection");
    else if (what & IO_TIMEOUT)
        snprintf(why, sizeof(why), "connect timed out");
    else
        snprintf(why, sizeof(why), "%s", strerror(err));
    disconnect(pr, why);
}

/* ---- the owner's side ------------------------------------------------------------ */

struct probe *probe_new(struct pool *p, const char *host, int port, int want_commands,
                        probe_fn fn, void *owner)
{
    struct probe *pr = xcalloc(1, sizeof(*pr));

    pr->pool = p;
    pr->host = xstrdup(host);
    pr->port = port;
    pr->want_commands = want_commands;
    pr->fn = fn;
    pr->owner = owner;
    return pr;
}

void probe_free(struct probe *pr)
{
    if (pr == NULL)
        return;
    if (io_conn_live(&pr->io))
        io_conn_close(&pr->io);
    if (pr->reader != NULL)
        redisReaderFree(pr->reader);
    free(pr->host);
    free(pr);
}

void probe_tick(struct probe *pr, uint64_t now_ms)
{
    if (!io_conn_live(&pr->io)) {
        if (now_ms >= pr->retry_ms)
            connect_probe(pr);
        return;
    }
    if (pr->info_asked_ms != 0) {
        /* A server that stopped answering (SIGSTOP, a long command) keeps
         * its connection: the answer counts whenever it comes. */
        if (++pr->ticks >= PROBE_DEADLINE_TICKS && !pr->down) {
            pr->down = 1;
            pr->fn(pr->owner, PROBE_DOWN, NULL);
        }
        return;
    }
    if (pr->nexpect < EXPECT_MAX) {
        send_command(pr, "*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n", EXP_INFO);
        pr->info_asked_ms = now_ms;
        pr->ticks = 0;
    }
}
