/*
 * clientcmd: the commands about a client's own connection that the proxy
 * handles itself, checked with redis's own rules and wording.
 *
 *  - SELECT, AUTH, HELLO change the session state (db, user, protocol)
 *    that shared connections are grouped by. Parsed here into the state
 *    they ask for; the server still judges the change itself (client.c
 *    sends the command to a connection of that state). What redis refuses
 *    on syntax alone, before it looks at any state, is answered here with
 *    redis's error, so nothing malformed can reach a shared connection.
 *  - CLIENT SETNAME, GETNAME, SETINFO are answered here and recorded per
 *    client: passing them on would rename a connection others share, or
 *    pin every client (every library sends SETINFO on connect). CLIENT
 *    MAINT_NOTIFICATIONS is refused here as a server without it would.
 *
 * Pure functions of the arguments: unit tests drive them directly.
 */
#ifndef RZ_CLIENTCMD_H
#define RZ_CLIENTCMD_H

#include <stddef.h>

#include "session.h"

struct evbuffer;
struct resp_args;

enum clientcmd_move_kind {
    CLIENTCMD_SELECT,
    CLIENTCMD_AUTH,
    CLIENTCMD_HELLO,
};

/* What a SELECT, AUTH or HELLO asks for. */
struct clientcmd_move {
    enum clientcmd_move_kind kind;
    struct session_state to;       /* the session state on success */
    int set_name;                /* HELLO ... SETNAME: */
    char *name;                  /* the name on success (NULL: clear it) */
    int rewritten;               /* send what clientcmd_move_parse() put in `send`
                                    instead of the request (HELLO without SETNAME) */
};

void clientcmd_move_free(struct clientcmd_move *mv);

/*
 * Parse a SELECT, AUTH or HELLO (a->argv[0], any case) whose client is in
 * state cur. Returns 0 with *mv filled (and, for a HELLO with SETNAME, what
 * to send in its place appended to `send`, unless it is NULL), or -1 with
 * err holding the RESP error line (CRLF-terminated) redis answers on syntax
 * alone. Free *mv either way.
 */
int clientcmd_move_parse(const struct resp_args *a, const struct session_state *cur,
                         struct clientcmd_move *mv, struct evbuffer *send, char *err,
                         size_t errlen);

/*
 * Whether a connection in state `conn` may judge the move: it already has
 * what the move asks for in every respect the command changes or its reply
 * depends on, so success changes nothing on it and failure changes nothing
 * either, and the reply is the one the client's own connection would get.
 *   SELECT n: the same user (its ACL decides) and db n; +OK and errors read
 *             the same in RESP2 and RESP3.
 *   AUTH:     the same user, any db, any protocol.
 *   HELLO:    the same user and the protocol asked for (the reply is in it);
 *             the db is not in the reply.
 */
int clientcmd_move_judged_by(const struct clientcmd_move *mv, const struct session_state *conn);

/* Per-client names: CLIENT SETNAME and SETINFO (strings owned, NULL = unset). */
struct clientcmd_names {
    char *name;
    char *lib_name;
    char *lib_ver;
};

void clientcmd_names_free(struct clientcmd_names *n);

/* CLIENT SETNAME, GETNAME, SETINFO or MAINT_NOTIFICATIONS (a->argv[1]): update *n and append the
 * reply, in RESP version proto, to out. */
void clientcmd_client(struct clientcmd_names *n, const struct resp_args *a, int proto,
                      struct evbuffer *out);

/* redis's check on a client name or SETINFO value: no spaces, newlines or
 * other bytes outside '!'..'~'. Returns 1 if valid. */
int clientcmd_name_ok(const char *s, size_t len);

#endif
