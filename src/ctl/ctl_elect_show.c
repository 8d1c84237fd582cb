/*
 * ctl_elect_show: `rzproxy-ctl show` on an election root (see
 * ctl_elect_show.h). Ballots are read the way the zk gem reads them
 * (children whose names start with "ballot", ordered by their trailing
 * digits), so ballots a Ruby candidate or kazoo made show the same way.
 */
#include "ctl_elect_show.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_doc.h"
#include "ctl_elect.h"
#include "ctl_repl.h"

#define SERVER_TIMEOUT_MS 500        /* each server's connect and INFO */
#define ERRLEN 512

int ctl_elect_show_is_root(struct ctl_zk *zk, const char *path, char *err, size_t errlen)
{
    enum ctl_zk_result r;
    char **names;
    int n, found = 0;

    r = ctl_zk_children(zk, path, 0, &names, &n, err, errlen);
    if (r == CTL_ZK_NO_NODE)
        return 0;
    if (r != CTL_ZK_OK)
        return -1;
    for (int i = 0; i < n; i++) {
        int64_t seq;

        if (elect_ballot_seq(names[i], &seq) == 0 || strcmp(names[i], ELECT_ACK_NAME) == 0)
            found = 1;
    }
    ctl_zk_names_free(names, n);
    return found;
}

static void child_path(const char *root, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", strcmp(root, "/") ? root : "", name);
}

/* The ballots under root, lowest first, into v. */
static int read_view(struct ctl_zk *zk, const char *root, struct elect_view *v, char *err,
                     size_t errlen)
{
    enum ctl_zk_result r;
    char **names;
    int n;

    memset(v, 0, sizeof(*v));
    r = ctl_zk_children(zk, root, 0, &names, &n, err, errlen);
    if (r != CTL_ZK_OK)
        return -1;
    for (int i = 0; i < n && v->nballots < ELECT_MAX_BALLOTS; i++) {
        struct elect_ballot *b = &v->ballots[v->nballots];
        char path[1024];
        struct ctl_znode z;

        if (elect_ballot_seq(names[i], &b->seq) != 0)
            continue;
        child_path(root, names[i], path, sizeof(path));
        if (ctl_zk_read(zk, path, 0, &z, err, errlen) != CTL_ZK_OK) {
            ctl_zk_names_free(names, n);
            return -1;
        }
        if (z.exists) {
            snprintf(b->name, sizeof(b->name), "%s", names[i]);
            snprintf(b->addr, sizeof(b->addr), "%.*s", (int)strcspn(z.data, "\r\n"), z.data);
            b->owner = z.ephemeral_owner;
            v->nballots++;
        }
        ctl_znode_free(&z);
    }
    ctl_zk_names_free(names, n);
    elect_view_sort(v, 0);
    return 0;
}

/* "role:... offset:..." of the server at addr, or "unreachable: why". */
static void server_state(const char *addr, const struct ctl_redis_conf *conf,
                         const char *conf_err, char *out, size_t outlen)
{
    char host[256], err[ERRLEN];
    struct ctl_redis *r;
    struct ctl_repl repl;
    int port;

    if (conf_err != NULL) {
        snprintf(out, outlen, "not asked: %s", conf_err);
        return;
    }
    if (ctl_doc_split(addr, host, sizeof(host), &port) != 0) {
        snprintf(out, outlen, "not host:port");
        return;
    }
    r = ctl_redis_connect(host, port, SERVER_TIMEOUT_MS, conf, NULL, err, sizeof(err));
    if (r == NULL || ctl_repl_read(r, &repl, err, sizeof(err)) != 0)
        snprintf(out, outlen, "unreachable: %.400s", err);
    else
        ctl_repl_format(&repl, out, outlen);
    ctl_redis_close(r);
}

int ctl_elect_show(struct ctl_zk *zk, const char *root, const struct ctl_redis_conf *conf,
                   const char *conf_err)
{
    char err[ERRLEN], path[1024], state[512], leader[ELECT_ADDR_LEN] = "";
    struct elect_view *v = xcalloc(1, sizeof(*v));
    struct ctl_znode ack;
    int leader_has_ballot = 0;

    child_path(root, ELECT_ACK_NAME, path, sizeof(path));
    if (read_view(zk, root, v, err, sizeof(err)) != 0 ||
        ctl_zk_read(zk, path, 0, &ack, err, sizeof(err)) != CTL_ZK_OK) {
        fprintf(stderr, "rzproxy-ctl: %s\n", err);
        free(v);
        return -1;
    }
    printf("election: %s\n", root);
    if (ack.exists) {
        snprintf(leader, sizeof(leader), "%.*s", (int)strcspn(ack.data, "\r\n"), ack.data);
        printf("leader: %s\n", leader);
        printf("leader_session: 0x%" PRIx64 "\n", (uint64_t)ack.ephemeral_owner);
    } else {
        printf("leader: none: no %s\n", ELECT_ACK_NAME);
    }
    printf("ballots: %d\n", v->nballots);
    for (int i = 0; i < v->nballots; i++) {
        const struct elect_ballot *b = &v->ballots[i];
        int is_leader = ack.exists && b->owner == ack.ephemeral_owner;

        leader_has_ballot |= is_leader;
        server_state(b->addr, conf, conf_err, state, sizeof(state));
        printf("ballot %d: %s %s session 0x%" PRIx64 " %s%s\n", i + 1, b->name, b->addr,
               (uint64_t)b->owner, state, is_leader ? " (leader)" : "");
    }
    if (ack.exists && !leader_has_ballot) {
        /* a leader without a ballot: a session that is ending, or a foreign
         * process; say what its server says */
        server_state(leader, conf, conf_err, state, sizeof(state));
        printf("leader_server: %s\n", state);
    }
    ctl_znode_free(&ack);
    free(v);
    return 0;
}
