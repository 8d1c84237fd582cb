/*
 * ctl_repl: INFO replication, parsed and compared (see ctl_repl.h).
 */
#include "ctl_repl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_redis.h"

int ctl_repl_parse(const char *info, struct ctl_repl *out, char *err, size_t errlen)
{
    char host[256] = "", port[16] = "", link[16] = "";

    memset(out, 0, sizeof(*out));
    ctl_redis_info_str(info, "role", out->role, sizeof(out->role));
    if (out->role[0] == '\0') {
        snprintf(err, errlen, "INFO replication has no role");
        return -1;
    }
    if (ctl_redis_info_int(info, "master_repl_offset", &out->offset) != 0) {
        snprintf(err, errlen, "INFO replication has no master_repl_offset");
        return -1;
    }
    if (ctl_redis_info_int(info, "second_repl_offset", &out->second_offset) != 0)
        out->second_offset = -1;
    ctl_redis_info_str(info, "master_replid", out->replid, sizeof(out->replid));
    ctl_redis_info_str(info, "master_replid2", out->replid2, sizeof(out->replid2));
    if (strcmp(out->role, "slave") == 0) {
        ctl_redis_info_str(info, "master_host", host, sizeof(host));
        ctl_redis_info_str(info, "master_port", port, sizeof(port));
        ctl_redis_info_str(info, "master_link_status", link, sizeof(link));
        snprintf(out->master, sizeof(out->master), strchr(host, ':') ? "[%s]:%s" : "%s:%s",
                 host, port);
        out->link_up = strcmp(link, "up") == 0;
    }
    return 0;
}

int ctl_repl_read(struct ctl_redis *r, struct ctl_repl *out, char *err, size_t errlen)
{
    char *info = ctl_redis_info(r, "replication", err, errlen);
    int rc;

    if (info == NULL)
        return -1;
    rc = ctl_repl_parse(info, out, err, errlen);
    free(info);
    return rc;
}

/* An unused replid2 is forty zeros. */
static int real_id(const char *id)
{
    return id[0] != '\0' && strspn(id, "0") != strlen(id);
}

int ctl_repl_holds(const struct ctl_repl *a, const struct ctl_repl *b)
{
    if (real_id(a->replid) && strcmp(a->replid, b->replid) == 0)
        return a->offset >= b->offset;
    /* a was promoted from b's history: it holds it up to second_offset - 1 */
    return real_id(a->replid2) && strcmp(a->replid2, b->replid) == 0 &&
           a->second_offset > b->offset;
}

int ctl_repl_ahead(const struct ctl_repl *b, const struct ctl_repl *a)
{
    if (ctl_repl_holds(a, b))
        return 0;
    if (real_id(a->replid) && strcmp(a->replid, b->replid) == 0)
        return 1;
    return b->offset > a->offset;
}

void ctl_repl_format(const struct ctl_repl *r, char *out, size_t outlen)
{
    snprintf(out, outlen, "role:%s%s%s%s offset:%lld replid:%.8s", r->role,
             r->master[0] ? " master:" : "", r->master,
             r->master[0] ? (r->link_up ? " link:up" : " link:down") : "", (long long)r->offset,
             r->replid);
}
