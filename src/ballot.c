/* ballot: an election's ballots as a pool's replicas (ballot.h). */
#include "ballot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEADER_ACK "/leader_ack"
#define BALLOT_PREFIX "ballot"

int ballot_root(const char *znode, char *root, size_t rootlen)
{
    size_t n = znode != NULL ? strlen(znode) : 0, k = strlen(LEADER_ACK);

    root[0] = '\0';
    if (n < k || strcmp(znode + n - k, LEADER_ACK) != 0)
        return 0;
    /* "/leader_ack" itself: the election's ROOT is "/". */
    if (n == k)
        snprintf(root, rootlen, "/");
    else
        snprintf(root, rootlen, "%.*s", (int)(n - k), znode);
    return 1;
}

/* The sequence number of a ballot's name, or -1 when it is not a ballot.
 * ZooKeeper appends ten digits; a counter past 2^31 wraps to a minus sign,
 * which we do not order (the election would have restarted long before). */
static long long ballot_seq(const char *name)
{
    size_t k = strlen(BALLOT_PREFIX);
    const char *d = name + k;
    long long v = 0;

    if (strncmp(name, BALLOT_PREFIX, k) != 0 || *d == '\0')
        return -1;
    for (; *d != '\0'; d++) {
        if (*d < '0' || *d > '9' || v > 999999999999LL)
            return -1;
        v = v * 10 + (*d - '0');
    }
    return v;
}

int ballot_select(char *const *names, int n, int *idx, int max, int *left_out)
{
    int count = 0;

    *left_out = 0;
    /* Insertion into a sorted array of at most max: n is a handful. */
    for (int i = 0; i < n; i++) {
        long long s = ballot_seq(names[i]);
        int at;

        if (s < 0)
            continue;
        for (at = count; at > 0 && ballot_seq(names[idx[at - 1]]) > s; at--)
            ;
        if (at >= max) {
            (*left_out)++;
            continue;
        }
        if (count == max)
            (*left_out)++;           /* the highest falls off */
        else
            count++;
        memmove(&idx[at + 1], &idx[at], (size_t)(count - 1 - at) * sizeof(*idx));
        idx[at] = i;
    }
    return count;
}

void ballot_replicas(const struct znode_node *ballots, int n, const char *master_host,
                     int master_port, struct znode_master *out)
{
    out->nreplicas = 0;
    for (int i = 0; i < n && out->nreplicas < ZNODE_MAX_REPLICAS; i++) {
        if (ballots[i].port == master_port && strcmp(ballots[i].host, master_host) == 0)
            continue;
        out->replicas[out->nreplicas++] = ballots[i];
    }
}
