/*
 * cmd: what the proxy needs to know about a command, from its name (and, for
 * a few, an argument): whether it gives the connection state or may block it
 * (the client then pins to its own backend connection), how it changes the
 * client's tied state, and whether the proxy answers it itself.
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
    CMD_LOCAL = 1 << 3,      /* answered by the proxy (QUIT, PROXY) */
    CMD_RAW = 1 << 4,        /* the reply stream stops being countable (MONITOR,
                                SYNC, PSYNC): tied for good */
    CMD_MULTI = 1 << 5,      /* MULTI */
    CMD_EXEC = 1 << 6,       /* EXEC / DISCARD: end of transaction and WATCH */
    CMD_WATCH = 1 << 7,      /* WATCH */
    CMD_UNWATCH = 1 << 8,    /* UNWATCH */
    CMD_RESET = 1 << 9,      /* RESET: back to a fresh connection */
    CMD_HELLO = 1 << 10,     /* HELLO: may change the protocol version */
    CMD_CLIENT_REPLY = 1 << 11, /* CLIENT REPLY ON|OFF|SKIP: replies stop or resume */
    CMD_STATE = 1 << 12,     /* sets connection state a new connection would lack
                                (SELECT, AUTH, HELLO, CLIENT, READONLY, ...) */
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

/* Connection state a new connection can be given again by replaying the
 * last successful command of each kind, in this order. */
enum cmd_replay {
    CMD_REPLAY_HELLO = 0,
    CMD_REPLAY_AUTH,
    CMD_REPLAY_SELECT,
    CMD_REPLAY_SETNAME,
    CMD_REPLAY_READONLY,     /* READONLY or READWRITE */
    CMD_REPLAY_SLOTS,
    CMD_REPLAY_NONE = 0xff,
};

struct cmd_info {
    unsigned flags;          /* enum cmd_flag */
    enum cmd_pubsub pubsub;
    unsigned replay;         /* enum cmd_replay */
};

/* Classify a framed request. Never fails: unknown commands are plain. */
struct cmd_info cmd_classify(const struct resp_request *req);

/* The pub/sub subtype whose confirmation replies carry this kind string
 * ("subscribe", "punsubscribe", ...), or CMD_PS_NONE. */
enum cmd_pubsub cmd_pubsub_kind(const char *kind, unsigned long len);

#endif
