/*
 * cmd: what the proxy needs to know about a command, from its name (and, for
 * a few, an argument): whether it gives the connection state that cannot
 * be shared or may block it (the client then pins to its own backend
 * connection), whether it changes the session state that shared
 * connections are grouped by, how it changes the client's tied state, and
 * whether the proxy answers it itself.
 *
 * Everything not in the table is a plain command: one request, one reply, no
 * lasting effect on the connection, so it may share a backend connection.
 */
#ifndef RZ_CMD_H
#define RZ_CMD_H

struct resp_request;

enum cmd_flag {
    CMD_PIN = 1 << 0,        /* effect outlives the command: pin the client */
    CMD_BLOCKING = 1 << 1,   /* may block server-side: tied while outstanding */
    CMD_PUBSUB = 1 << 2,     /* (p|s)(un)subscribe: confirmations, not one reply */
    CMD_LOCAL = 1 << 3,      /* answered by the proxy (QUIT, PROXY, CLIENT SETNAME...) */
    CMD_RAW = 1 << 4,        /* the reply stream stops being countable (MONITOR,
                                SYNC, PSYNC): tied for good */
    CMD_MULTI = 1 << 5,      /* MULTI */
    CMD_EXEC = 1 << 6,       /* EXEC / DISCARD: end of transaction and WATCH */
    CMD_WATCH = 1 << 7,      /* WATCH */
    CMD_UNWATCH = 1 << 8,    /* UNWATCH */
    CMD_RESET = 1 << 9,      /* RESET: back to a fresh connection */
    CMD_HELLO = 1 << 10,     /* HELLO: may change the protocol version */
    CMD_CLIENT_REPLY = 1 << 11, /* CLIENT REPLY ON|OFF|SKIP: replies stop or resume */
    CMD_STATE = 1 << 12,     /* sets connection state a new connection would lack */
    CMD_GROUP = 1 << 13,     /* SELECT, AUTH, HELLO: changes the session state (db,
                                protocol, user) that shared connections carry; the
                                client moves to the group of its new state */
};

/* Subtype of a CMD_PUBSUB command. */
enum cmd_pubsub {
    CMD_PS_NONE = 0,
    CMD_PS_SUBSCRIBE,
    CMD_PS_UNSUBSCRIBE,
    CMD_PS_PSUBSCRIBE,
    CMD_PS_PUNSUBSCRIBE,
    CMD_PS_SSUBSCRIBE,
    CMD_PS_SUNSUBSCRIBE,
};

struct cmd_info {
    unsigned flags;          /* enum cmd_flag */
    enum cmd_pubsub pubsub;
    const char *why;         /* CMD_PIN: what ties the client to one connection,
                                for logs and PROXY CLIENTS; else NULL */
};

/* Classify a framed request. Never fails: unknown commands are plain. */
struct cmd_info cmd_classify(const struct resp_request *req);

/* The pub/sub subtype whose confirmation replies carry this kind string
 * ("subscribe", "punsubscribe", ...), or CMD_PS_NONE. */
enum cmd_pubsub cmd_pubsub_kind(const char *kind, unsigned long len);

#endif
