#include "cmd.h"
#include "resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cmd_entry {
    const char *name;        /* lowercase */
    unsigned flags;
    enum cmd_pubsub pubsub;
};

/*
 * The one table of commands that are not plain. Kept sorted by name for
 * bsearch. Why each is here:
 *  - transactions and WATCH live on the connection;
 *  - blocking commands hold the connection until the server answers;
 *  - pub/sub and MONITOR turn it into a message stream;
 *  - SELECT, AUTH, HELLO, CLIENT, READONLY/READWRITE, RESET, ASKING set
 *    per-connection state that other clients must not inherit;
 *  - SYNC/PSYNC/REPLCONF make it a replication link.
 */
static const struct cmd_entry cmd_table[] = {
    { "asking", CMD_PIN | CMD_STATE, CMD_PS_NONE },
    { "auth", CMD_PIN | CMD_STATE, CMD_PS_NONE },
    { "blmove", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "blmpop", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "blpop", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "brpop", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "brpoplpush", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "bzmpop", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "bzpopmax", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "bzpopmin", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "client", CMD_PIN | CMD_STATE, CMD_PS_NONE },
    { "discard", CMD_EXEC, CMD_PS_NONE },
    { "exec", CMD_EXEC, CMD_PS_NONE },
    { "hello", CMD_PIN | CMD_HELLO | CMD_STATE, CMD_PS_NONE },
    { "monitor", CMD_PIN | CMD_RAW, CMD_PS_NONE },
    { "multi", CMD_PIN | CMD_MULTI, CMD_PS_NONE },
    { "proxy", CMD_LOCAL, CMD_PS_NONE },
    { "psubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_PSUBSCRIBE },
    { "psync", CMD_PIN | CMD_RAW, CMD_PS_NONE },
    { "punsubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_PUNSUBSCRIBE },
    { "quit", CMD_LOCAL, CMD_PS_NONE },
    { "readonly", CMD_PIN | CMD_STATE, CMD_PS_NONE },
    { "readwrite", CMD_PIN | CMD_STATE, CMD_PS_NONE },
    { "replconf", CMD_PIN, CMD_PS_NONE },
    { "reset", CMD_PIN | CMD_RESET, CMD_PS_NONE },
    { "select", CMD_PIN | CMD_STATE, CMD_PS_NONE },
    { "ssubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_SSUBSCRIBE },
    { "subscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_SUBSCRIBE },
    { "sunsubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_SUNSUBSCRIBE },
    { "sync", CMD_PIN | CMD_RAW, CMD_PS_NONE },
    { "unsubscribe", CMD_PIN | CMD_PUBSUB, CMD_PS_UNSUBSCRIBE },
    { "unwatch", CMD_UNWATCH, CMD_PS_NONE },
    { "wait", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "waitaof", CMD_PIN | CMD_BLOCKING, CMD_PS_NONE },
    { "watch", CMD_PIN | CMD_WATCH, CMD_PS_NONE },
    { "xread", 0, CMD_PS_NONE },        /* blocking only with BLOCK */
    { "xreadgroup", 0, CMD_PS_NONE },   /* likewise */
};

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
    for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
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
    return bsearch(name, cmd_table, sizeof(cmd_table) / sizeof(cmd_table[0]),
                   sizeof(cmd_table[0]), entry_cmp);
}

static unsigned cmd_replay_slot(const char *name, const struct resp_request *req)
{
    if (strcmp(name, "hello") == 0)
        return CMD_REPLAY_HELLO;
    if (strcmp(name, "auth") == 0)
        return CMD_REPLAY_AUTH;
    if (strcmp(name, "select") == 0)
        return CMD_REPLAY_SELECT;
    if (strcmp(name, "client") == 0 && strcmp(req->arg1, "setname") == 0)
        return CMD_REPLAY_SETNAME;
    if (strcmp(name, "readonly") == 0 || strcmp(name, "readwrite") == 0)
        return CMD_REPLAY_READONLY;
    return CMD_REPLAY_NONE;
}

struct cmd_info cmd_classify(const struct resp_request *req)
{
    struct cmd_info info = { 0, CMD_PS_NONE, CMD_REPLAY_NONE };
    const struct cmd_entry *e;

    /* A name longer than we keep cannot be in the table (all are short). */
    if (req->namelen >= RESP_NAME_MAX || (e = cmd_find(req->name)) == NULL)
        return info;
    info.flags = e->flags;
    info.pubsub = e->pubsub;
    if (strncmp(e->name, "xread", 5) == 0 && (req->flags & RESP_REQ_BLOCK_ARG))
        info.flags |= CMD_PIN | CMD_BLOCKING;
    /* CLIENT REPLY OFF|SKIP makes replies go missing: session.c keeps count. */
    if (strcmp(e->name, "client") == 0 && strcmp(req->arg1, "reply") == 0)
        info.flags |= CMD_CLIENT_REPLY;
    info.replay = cmd_replay_slot(e->name, req);
    return info;
}

enum cmd_pubsub cmd_pubsub_kind(const char *kind, unsigned long len)
{
    static const struct { const char *name; enum cmd_pubsub ps; } kinds[] = {
        { "subscribe", CMD_PS_SUBSCRIBE },     { "unsubscribe", CMD_PS_UNSUBSCRIBE },
        { "psubscribe", CMD_PS_PSUBSCRIBE },   { "punsubscribe", CMD_PS_PUNSUBSCRIBE },
        { "ssubscribe", CMD_PS_SSUBSCRIBE },   { "sunsubscribe", CMD_PS_SUNSUBSCRIBE },
    };

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strlen(kinds[i].name) == len && memcmp(kinds[i].name, kind, len) == 0)
            return kinds[i].ps;
    }
    return CMD_PS_NONE;
}
