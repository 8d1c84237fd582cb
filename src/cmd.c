#include "cmd.h"
#include "resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cmd_entry {
    const char *name;        /* lowercase */
    unsigned flags;
    enum cmd_pubsub pubsub;
    const char *why;         /* CMD_PIN: shown as "pinned:<why>" */
};

/*
 * The one table of commands that are not plain. Kept sorted by name for
 * bsearch. Why each is here:
 *  - MULTI, WATCH: the transaction and the watched keys live on the
 *    connection until EXEC/DISCARD/UNWATCH;
 *  - blocking commands hold the connection until the server answers, and
 *    on a shared one would stall every client queued behind;
 *  - pub/sub and MONITOR turn the connection into a message stream;
 *  - SYNC/PSYNC/REPLCONF make it a replication link;
 *  - RESET, ASKING, READONLY/READWRITE set state of that one connection;
 *  - SELECT, AUTH, HELLO do not pin: they change the session state (db,
 *    user, protocol) that shared connections are grouped by, and move the
 *    client to the group of its new state (client.c, group.c);
 *  - CLIENT: by subcommand, see client_table below;
 *  - QUIT, PROXY: answered by the proxy.
 */
static const struct cmd_entry cmd_table[] = {
    { "asking", CMD_PIN | CMD_STATE, CMD_PS_NONE, "asking" },
    { "auth", CMD_GROUP | CMD_STATE, CMD_PS_NONE, NULL },
    { "blmove", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "blmove" },
    { "blmpop", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "blmpop" },
    { "blpop", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "blpop" },
    { "brpop", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "brpop" },
    { "brpoplpush", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "brpoplpush" },
    { "bzmpop", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "bzmpop" },
    { "bzpopmax", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "bzpopmax" },
    { "bzpopmin", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "bzpopmin" },
    { "client", 0, CMD_PS_NONE, NULL },        /* by subcommand */
    { "discard", CMD_EXEC, CMD_PS_NONE, NULL },
    { "exec", CMD_EXEC, CMD_PS_NONE, NULL },
    { "hello", CMD_GROUP | CMD_HELLO | CMD_STATE, CMD_PS_NONE, NULL },
    { "monitor", CMD_PIN | CMD_RAW, CMD_PS_NONE, "monitor" },
    { "multi", CMD_PIN | CMD_MULTI, CMD_PS_NONE, "multi" },
    { "proxy", CMD_LOCAL, CMD_PS_NONE, NULL },
    { "psubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_PSUBSCRIBE, "psubscribe" },
    { "psync", CMD_PIN | CMD_RAW, CMD_PS_NONE, "psync" },
    { "punsubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_PUNSUBSCRIBE, "punsubscribe" },
    { "quit", CMD_LOCAL, CMD_PS_NONE, NULL },
    { "readonly", CMD_PIN | CMD_STATE, CMD_PS_NONE, "readonly" },
    { "readwrite", CMD_PIN | CMD_STATE, CMD_PS_NONE, "readwrite" },
    { "replconf", CMD_PIN, CMD_PS_NONE, "replconf" },
    { "reset", CMD_PIN | CMD_RESET, CMD_PS_NONE, "reset" },
    { "select", CMD_GROUP | CMD_STATE, CMD_PS_NONE, NULL },
    { "ssubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_SSUBSCRIBE, "ssubscribe" },
    { "subscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_SUBSCRIBE, "subscribe" },
    { "sunsubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_SUNSUBSCRIBE, "sunsubscribe" },
    { "sync", CMD_PIN | CMD_RAW, CMD_PS_NONE, "sync" },
    { "unsubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_UNSUBSCRIBE, "unsubscribe" },
    { "unwatch", CMD_UNWATCH, CMD_PS_NONE, NULL },
    { "wait", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "wait" },
    { "waitaof", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE, "waitaof" },
    { "watch", CMD_PIN | CMD_WATCH, CMD_PS_NONE, "watch" },
    { "xread", 0, CMD_PS_NONE, NULL },         /* blocking only with BLOCK */
    { "xreadgroup", 0, CMD_PS_NONE, NULL },    /* likewise */
};

/*
 * CLIENT subcommands, sorted. Why each is here:
 *  - SETNAME, GETNAME, SETINFO: answered by the proxy and recorded per
 *    client (every library sends SETINFO on connect; passing them on would
 *    pin every client or rename a connection others share);
 *  - MAINT_NOTIFICATIONS (node-redis 6 and ioredis 6 send it on connect):
 *    answered by the proxy as a server without it would: the notices tell
 *    a client to move to another endpoint, and the proxy is the endpoint
 *    (it follows the master itself);
 *  - CACHING, TRACKING, GETREDIR, TRACKINGINFO: client-side caching state
 *    of this one connection (and pushes addressed to it);
 *  - ID, INFO: describe this one connection;
 *  - KILL, PAUSE, UNBLOCK: act on connections by id, or stall the caller;
 *  - NO-EVICT, NO-TOUCH, REPLY: switches of this one connection;
 *  - LIST, HELP, UNPAUSE: no connection state: plain.
 * A subcommand not listed pins: the safe guess for one we do not know.
 */
static const struct cmd_entry client_table[] = {
    { "caching", CMD_PIN | CMD_STATE, CMD_PS_NONE, "client-caching" },
    { "getname", CMD_LOCAL, CMD_PS_NONE, NULL },
    { "getredir", CMD_PIN, CMD_PS_NONE, "client-getredir" },
    { "help", 0, CMD_PS_NONE, NULL },
    { "id", CMD_PIN, CMD_PS_NONE, "client-id" },
    { "info", CMD_PIN, CMD_PS_NONE, "client-info" },
    { "kill", CMD_PIN, CMD_PS_NONE, "client-kill" },
    { "list", 0, CMD_PS_NONE, NULL },
    { "maint_notifications", CMD_LOCAL, CMD_PS_NONE, NULL },
    { "no-evict", CMD_PIN | CMD_STATE, CMD_PS_NONE, "client-no-evict" },
    { "no-touch", CMD_PIN | CMD_STATE, CMD_PS_NONE, "client-no-touch" },
    { "pause", CMD_PIN, CMD_PS_NONE, "client-pause" },
    { "reply", CMD_PIN | CMD_STATE | CMD_CLIENT_REPLY, CMD_PS_NONE, "client-reply" },
    { "setinfo", CMD_LOCAL, CMD_PS_NONE, NULL },
    { "setname", CMD_LOCAL, CMD_PS_NONE, NULL },
    { "tracking", CMD_PIN | CMD_STATE, CMD_PS_NONE, "client-tracking" },
    { "trackinginfo", CMD_PIN, CMD_PS_NONE, "client-trackinginfo" },
    { "unblock", CMD_PIN, CMD_PS_NONE, "client-unblock" },
    { "unpause", 0, CMD_PS_NONE, NULL },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int entry_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct cmd_entry *)elem)->name);
}

/* Bit L of first_len[c - 'a']: some entry starts with c and is L long.
 * Nearly every command (get, set, incr, hset, ...) fails this test and
 * never reaches the binary search. */
static uint32_t first_len[26];

static void first_len_init(void)
{
    for (size_t i = 0; i < NELEM(cmd_table); i++)
        first_len[cmd_table[i].name[0] - 'a'] |= 1u << strlen(cmd_table[i].name);
}

static int maybe_in_table(const char *name)
{
    size_t len = strlen(name);
    unsigned first = (unsigned char)name[0] - 'a';

    static int ready;

    if (!ready) {
        first_len_init();
        ready = 1;
    }
    return first < 26 && len < 32 && (first_len[first] & (1u << len)) != 0;
}

static const struct cmd_entry *cmd_find(const char *name)
{
    if (!maybe_in_table(name))
        return NULL;
    return bsearch(name, cmd_table, NELEM(cmd_table), sizeof(cmd_table[0]), entry_cmp);
}

static const struct cmd_entry client_unknown = {
    "", CMD_PIN | CMD_STATE, CMD_PS_NONE, "client"
};

static const struct cmd_entry *client_find(const struct resp_request *req)
{
    const struct cmd_entry *e = NULL;

    if (req->arg1len < RESP_NAME_MAX)
        e = bsearch(req->arg1, client_table, NELEM(client_table), sizeof(client_table[0]),
                    entry_cmp);
    return e != NULL ? e : &client_unknown;
}

struct cmd_info cmd_classify(const struct resp_request *req)
{
    struct cmd_info info = { 0, CMD_PS_NONE, NULL };
    const struct cmd_entry *e;

    /* A name longer than we keep cannot be in the table (all are short). */
    if (req->namelen >= RESP_NAME_MAX || (e = cmd_find(req->name)) == NULL)
        return info;
    if (strcmp(e->name, "client") == 0)     /* the subcommand decides */
        e = client_find(req);
    info.flags = e->flags;
    info.pubsub = e->pubsub;
    info.why = e->why;
    if (strncmp(e->name, "xread", 5) == 0 && (req->flags & RESP_REQ_BLOCK_ARG)) {
        info.flags |= CMD_PIN | CMD_BLOCKING;
        info.why = "xread-block";
    }
    return info;
}

enum cmd_pubsub cmd_pubsub_kind(const char *kind, unsigned long len)
{
    static const struct { const char *name; enum cmd_pubsub ps; } kinds[] = {
        { "subscribe", CMD_PS_SUBSCRIBE },     { "unsubscribe", CMD_PS_UNSUBSCRIBE },
        { "psubscribe", CMD_PS_PSUBSCRIBE },   { "punsubscribe", CMD_PS_PUNSUBSCRIBE },
        { "ssubscribe", CMD_PS_SSUBSCRIBE },   { "sunsubscribe", CMD_PS_SUNSUBSCRIBE },
    };

    for (size_t i = 0; i < NELEM(kinds); i++) {
        if (strlen(kinds[i].name) == len && memcmp(kinds[i].name, kind, len) == 0)
            return kinds[i].ps;
    }
    return CMD_PS_NONE;
}
