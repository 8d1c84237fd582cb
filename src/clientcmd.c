#include "clientcmd.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "resp.h"
#include "util.h"

/* A RESP error line, like redis's addReplyErrorFormat(): "-ERR " unless the
 * text has its own code, CR and LF blanked (the text may quote the client). */
static int fail(char *err, size_t errlen, const char *fmt, ...) RZ_PRINTF(3, 4);

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    }
    snprintf(err, errlen, "%s%s\r\n", msg[0] == '-' ? "" : "-ERR ", msg);
    return -1;
}

static int arg_is(const struct resp_args *a, int i, const char *word)
{
    return i < a->argc && strlen(word) == a->len[i] &&
           strcasecmp(a->argv[i], word) == 0;
}

int clientcmd_name_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '!' || s[i] > '~')
            return 0;
    }
    return 1;
}

void clientcmd_move_free(struct clientcmd_move *mv)
{
    session_state_free(&mv->to);
    free(mv->name);
    mv->name = NULL;
    mv->set_name = 0;
}

/* SELECT <db>: redis's getIntFromObjectOrReply(). An index out of the
 * server's range is the server's to refuse (it knows `databases`). */
static int parse_select(const struct resp_args *a, struct clientcmd_move *mv, char *err,
                        size_t errlen)
{
    long long db;

    if (a->argc != 2)
        return fail(err, errlen, "wrong number of arguments for 'select' command");
    if (!resp_parse_ll(a->argv[1], a->len[1], &db))
        return fail(err, errlen, "value is not an integer or out of range");
    if (db < INT_MIN || db > INT_MAX)
        return fail(err, errlen, "value is out of range, value must between %d and %d",
                    INT_MIN, INT_MAX);
    mv->to.db = (int)db;
    return 0;
}

/* AUTH [user] <password>. Whether it is right is the server's to say. */
static int parse_auth(const struct resp_args *a, struct clientcmd_move *mv, char *err,
                      size_t errlen)
{
    if (a->argc < 2)
        return fail(err, errlen, "wrong number of arguments for 'auth' command");
    if (a->argc > 3)
        return fail(err, errlen, "syntax error");
    if (a->argc == 2)
        session_state_set_user(&mv->to, NULL, 0, a->argv[1], a->len[1]);
    else
        session_state_set_user(&mv->to, a->argv[1], a->len[1], a->argv[2], a->len[2]);
    return 0;
}

static void add_bulk(struct evbuffer *out, const char *s, size_t len)
{
    evbuffer_add_printf(out, "$%zu\r\n", len);
    evbuffer_add(out, s, len);
    evbuffer_add(out, "\r\n", 2);
}

/*
 * HELLO [protover [AUTH user pass] [SETNAME name]], checked in redis's
 * order: the version, then each option. What goes to the server is
 * `HELLO <ver> [AUTH user pass]`: the name is the proxy's to record (a
 * shared connection must not take a client's name), and it is checked
 * here before anything changes, as redis 7.2 does.
 */
static int parse_hello(const struct resp_args *a, struct clientcmd_move *mv,
                       struct evbuffer *send, char *err, size_t errlen)
{
    int auth = -1, name = -1;
    long long ver;

    if (a->argc < 2)
        return 0;               /* HELLO alone changes nothing: sent as it came */
    if (!resp_parse_ll(a->argv[1], a->len[1], &ver))
        return fail(err, errlen, "Protocol version is not an integer or out of range");
    if (ver < 2 || ver > 3)
        return fail(err, errlen, "-NOPROTO unsupported protocol version");
    for (int j = 2; j < a->argc; j++) {
        int more = a->argc - 1 - j;

        if (arg_is(a, j, "auth") && more >= 2) {
            auth = j;
            j += 2;
        } else if (arg_is(a, j, "setname") && more >= 1) {
            if (!clientcmd_name_ok(a->argv[j + 1], a->len[j + 1]))
                return fail(err, errlen, "Client names cannot contain spaces, newlines or "
                            "special characters.");
            name = j;
            j++;
        } else {
            return fail(err, errlen, "Syntax error in HELLO option '%s'", a->argv[j]);
        }
    }
    mv->to.proto = (int)ver;
    if (auth > 0)
        session_state_set_user(&mv->to, a->argv[auth + 1], a->len[auth + 1], a->argv[auth + 2],
                             a->len[auth + 2]);
    if (name > 0) {
        mv->set_name = 1;
        mv->name = a->len[name + 1] > 0 ? xstrndup(a->argv[name + 1], a->len[name + 1]) : NULL;
        /* The request minus its SETNAME. */
        mv->rewritten = 1;
        if (send == NULL)
            return 0;
        evbuffer_add_printf(send, "*%d\r\n", auth > 0 ? 5 : 2);
        for (int i = 0; i < 2; i++)
            add_bulk(send, a->argv[i], a->len[i]);
        for (int i = 0; auth > 0 && i < 3; i++)
            add_bulk(send, a->argv[auth + i], a->len[auth + i]);
    }
    return 0;
}

int clientcmd_move_parse(const struct resp_args *a, const struct session_state *cur,
                         struct clientcmd_move *mv, struct evbuffer *send, char *err,
                         size_t errlen)
{
    memset(mv, 0, sizeof(*mv));
    session_state_init(&mv->to);
    session_state_copy(&mv->to, cur);
    if (arg_is(a, 0, "select")) {
        mv->kind = CLIENTCMD_SELECT;
        return parse_select(a, mv, err, errlen);
    }
    if (arg_is(a, 0, "auth")) {
        mv->kind = CLIENTCMD_AUTH;
        return parse_auth(a, mv, err, errlen);
    }
    if (arg_is(a, 0, "hello")) {
        mv->kind = CLIENTCMD_HELLO;
        return parse_hello(a, mv, send, err, errlen);
    }
    return fail(err, errlen, "unknown command");     /* not reached: cmd.c decides */
}

int clientcmd_move_judged_by(const struct clientcmd_move *mv, const struct session_state *conn)
{
    if (!session_state_same_user(&mv->to, conn))
        return 0;
    switch (mv->kind) {
    case CLIENTCMD_SELECT:
        return conn->db == mv->to.db;
    case CLIENTCMD_AUTH:
        return 1;
    case CLIENTCMD_HELLO:
        return conn->proto == mv->to.proto;
    }
    return 0;
}

/* ---- CLIENT SETNAME / GETNAME / SETINFO --------------------------------------- */

void clientcmd_names_free(struct clientcmd_names *n)
{
    free(n->name);
    free(n->lib_name);
    free(n->lib_ver);
    memset(n, 0, sizeof(*n));
}

static void set_string(char **dst, const char *s, size_t len)
{
    free(*dst);
    *dst = len > 0 ? xstrndup(s, len) : NULL;
}

static void add_error(struct evbuffer *out, const char *fmt, ...) RZ_PRINTF(2, 3);

static void add_error(struct evbuffer *out, const char *fmt, ...)
{
    char line[256], msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fail(line, sizeof(line), "%s", msg);
    evbuffer_add(out, line, strlen(line));
}

/* The subcommand's name as redis prints it in arity errors: lowercase. */
static void lower_sub(const struct resp_args *a, char *buf, size_t len)
{
    util_lower(buf, len, a->argv[1], a->len[1]);
}

void clientcmd_client(struct clientcmd_names *n, const struct resp_args *a, int proto,
                      struct evbuffer *out)
{
    char sub[32];

    lower_sub(a, sub, sizeof(sub));
    if (strcmp(sub, "maint_notifications") == 0) {
        /* redis before 8.0's answer, which every library takes in stride */
        add_error(out, "unknown subcommand '%.128s'. Try CLIENT HELP.", a->argv[1]);
        return;
    }
    if (strcmp(sub, "getname") == 0) {
        if (a->argc != 2)
            add_error(out, "wrong number of arguments for 'client|%s' command", sub);
        else if (n->name != NULL)
            add_bulk(out, n->name, strlen(n->name));
        else
            evbuffer_add(out, proto == 3 ? "_\r\n" : "$-1\r\n", proto == 3 ? 3 : 5);
        return;
    }
    if (strcmp(sub, "setname") == 0) {
        if (a->argc != 3)
            add_error(out, "wrong number of arguments for 'client|%s' command", sub);
        else if (!clientcmd_name_ok(a->argv[2], a->len[2]))
            add_error(out, "Client names cannot contain spaces, newlines or special "
                      "characters.");
        else {
            set_string(&n->name, a->argv[2], a->len[2]);
            evbuffer_add(out, "+OK\r\n", 5);
        }
        return;
    }
    /* SETINFO LIB-NAME|LIB-VER <value> (redis 7.2) */
    if (a->argc != 4) {
        add_error(out, "wrong number of arguments for 'client|%s' command", sub);
    } else if (!arg_is(a, 2, "lib-name") && !arg_is(a, 2, "lib-ver")) {
        add_error(out, "Unrecognized option '%s'", a->argv[2]);
    } else if (!clientcmd_name_ok(a->argv[3], a->len[3])) {
        add_error(out, "%s cannot contain spaces, newlines or special characters.",
                  a->argv[2]);
    } else {
        set_string(arg_is(a, 2, "lib-name") ? &n->lib_name : &n->lib_ver, a->argv[3],
                   a->len[3]);
        evbuffer_add(out, "+OK\r\n", 5);
    }
}
