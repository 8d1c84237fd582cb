/*
 * admin: /metrics, /healthz and /info over evhttp.
 *
 * Per-pool numbers are listed once, in pool_metrics[] (name, type, help)
 * and filled by pool_values() in the same order, so /metrics and /info can
 * never disagree about what a number means.
 */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "client.h"
#include "conf.h"
#include "gate.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"
#include "zk.h"

static struct evhttp *http;

/* ---- the numbers ------------------------------------------------------------ */

enum pool_metric_id {
    PM_CLIENTS, PM_CLIENTS_HELD, PM_CLIENTS_ACCEPTED, PM_COMMANDS, PM_REQUEST_BYTES,
    PM_REPLY_BYTES, PM_TRYAGAIN, PM_READONLY_RETRIES, PM_SWITCHES, PM_EPOCH, PM_GATED_SECONDS,
    PM_LAST_SWITCH_SECONDS, PM_BACKEND_CONNECTS, PM_BACKEND_FAILURES, PM_ZNODE_VERSION,
    PM_ZNODE_AGE_SECONDS, PM_ZNODE_WORLD_WRITABLE, PM_SESSION_GROUPS, PM_SHARED_CONNECTIONS,
    PM_CLIENTS_PINNED, PM_COUNT
};

struct pool_metric {
    const char *name;        /* /info key; /metrics: rzproxy_pool_<name> */
    const char *type;        /* Prometheus type */
    const char *help;
};

static const struct pool_metric pool_metrics[PM_COUNT] = {
    [PM_CLIENTS] = { "clients", "gauge", "Client connections open." },
    [PM_CLIENTS_HELD] = { "clients_held", "gauge",
                          "Clients holding a command until a master is usable." },
    [PM_CLIENTS_ACCEPTED] = { "clients_accepted_total", "counter", "Client connections accepted." },
    [PM_COMMANDS] = { "commands_total", "counter", "Commands forwarded to the master." },
    [PM_REQUEST_BYTES] = { "request_bytes_total", "counter",
                           "Request bytes forwarded to the master." },
    [PM_REPLY_BYTES] = { "reply_bytes_total", "counter", "Reply bytes delivered to clients." },
    [PM_TRYAGAIN] = { "tryagain_total", "counter", "-TRYAGAIN replies sent." },
    [PM_READONLY_RETRIES] = { "readonly_retries_total", "counter",
                              "Commands refused by a read-only master and sent again." },
    [PM_SWITCHES] = { "switches_total", "counter", "Master changes (the first master counts)." },
    [PM_EPOCH] = { "epoch", "gauge", "Master epoch: bumped at every master change." },
    [PM_GATED_SECONDS] = { "gated_seconds_total", "counter",
                           "Time the pool's ZooKeeper gate was not READY." },
    [PM_LAST_SWITCH_SECONDS] = { "last_switch_seconds", "gauge",
                                 "Last switch: znode event to first command forwarded "
                                 "(-1 = none yet)." },
    [PM_BACKEND_CONNECTS] = { "backend_connects_total", "counter",
                              "Backend connections opened." },
    [PM_BACKEND_FAILURES] = { "backend_failures_total", "counter",
                              "Backend connects refused or connections lost." },
    [PM_ZNODE_VERSION] = { "znode_version", "gauge",
                           "Version of the znode data applied (-1 = none)." },
    [PM_ZNODE_AGE_SECONDS] = { "znode_age_seconds", "gauge",
                               "Seconds since the znode data applied was written (-1 = none)." },
    [PM_ZNODE_WORLD_WRITABLE] = { "znode_world_writable", "gauge",
                                  "1 if world:anyone may change the znode (WRITE or ADMIN in "
                                  "its ACL, read at every read of the data), 0 if not, "
                                  "-1 = unknown (not read yet, unreadable, static pool)." },
    [PM_SESSION_GROUPS] = { "session_groups", "gauge",
                            "Session groups (db, protocol, user) with shared connections." },
    [PM_SHARED_CONNECTIONS] = { "shared_connections", "gauge",
                                "Shared backend connections open, all session groups." },
    [PM_CLIENTS_PINNED] = { "clients_pinned", "gauge",
                            "Clients with a backend connection of their own." },
};

static void pool_values(struct pool *p, uint64_t now_ms, double v[PM_COUNT])
{
    const struct pool_stats *s = &p->stats;
    int64_t wall_ms = util_wall_ms();

    v[PM_CLIENTS] = p->nclients;
    v[PM_CLIENTS_HELD] = p->nheld;
    v[PM_CLIENTS_ACCEPTED] = (double)s->clients_accepted;
    v[PM_COMMANDS] = (double)s->commands;
    v[PM_REQUEST_BYTES] = (double)s->request_bytes;
    v[PM_REPLY_BYTES] = (double)s->reply_bytes;
    v[PM_TRYAGAIN] = (double)s->tryagain;
    v[PM_READONLY_RETRIES] = (double)s->readonly_retries;
    v[PM_SWITCHES] = (double)s->master_changes;
    v[PM_EPOCH] = (double)p->epoch;
    v[PM_GATED_SECONDS] = (double)pool_gated_ms(p, now_ms) / 1000.0;
    v[PM_LAST_SWITCH_SECONDS] = s->last_switch_ms < 0 ? -1 : (double)s->last_switch_ms / 1000.0;
    v[PM_BACKEND_CONNECTS] = (double)s->backend_connects;
    v[PM_BACKEND_FAILURES] = (double)s->backend_failures;
    v[PM_ZNODE_VERSION] = p->zk && p->gate.mzxid >= 0 ? p->gate.version : -1;
    v[PM_ZNODE_AGE_SECONDS] = p->znode_mtime_ms > 0 && wall_ms >= p->znode_mtime_ms
                              ? (double)(wall_ms - p->znode_mtime_ms) / 1000.0 : -1;
    v[PM_ZNODE_WORLD_WRITABLE] = p->zk ? p->znode_acl : ZKACL_UNKNOWN;
    v[PM_SESSION_GROUPS] = p->ngroups;
    v[PM_SHARED_CONNECTIONS] = pool_shared_open(p);
    v[PM_CLIENTS_PINNED] = client_count_pinned(p);
}

/* "host:port" of where the pool forwards, "" while gated. */
static const char *pool_master(struct pool *p, char *buf, size_t len)
{
    buf[0] = '\0';
    if (p->master_host[0] && pool_gated(p) == NULL)
        snprintf(buf, len, strchr(p->master_host, ':') ? "[%s]:%d" : "%s:%d", p->master_host,
                 p->master_port);
    return buf;
}

static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *fp = fopen("/proc/self/statm", "r");

    if (fp == NULL)
        return -1;
    if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(fp);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* ---- /metrics --------------------------------------------------------------- */

/* A label value: backslash, quote and newline escaped. */
static void add_label(struct evbuffer *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add_printf(out, "\\%c", *s);
        else if (*s == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, s, 1);
    }
}

static void add_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_process(struct evbuffer *out, uint64_t now_ms)
{
    struct zk_status zs;

    zk_status(&zs);
    add_family(out, "rzproxy_uptime_seconds", "gauge", "Seconds since the process started.");
    evbuffer_add_printf(out, "rzproxy_uptime_seconds %.3f\n",
                        (double)(now_ms - proxy.start_ms) / 1000.0);
    add_family(out, "rzproxy_resident_memory_bytes", "gauge", "Resident set size.");
    evbuffer_add_printf(out, "rzproxy_resident_memory_bytes %ld\n", rss_bytes());
    add_family(out, "rzproxy_clients", "gauge", "Client connections open, all pools.");
    evbuffer_add_printf(out, "rzproxy_clients %d\n", proxy.nclients);
    add_family(out, "rzproxy_zk_connected", "gauge",
               "1 while the ZooKeeper session is connected (absent without ZooKeeper).");
    if (zs.started)
        evbuffer_add_printf(out, "rzproxy_zk_connected %d\n", zs.connected);
    add_family(out, "rzproxy_zk_connects_total", "counter", "ZooKeeper session (re)connects.");
    if (zs.started)
        evbuffer_add_printf(out, "rzproxy_zk_connects_total %llu\n",
                            (unsigned long long)zs.connects);
}

static void metrics_pool_state(struct evbuffer *out)
{
    char m[300];

    add_family(out, "rzproxy_pool_state", "gauge",
               "1 for the pool's current state (READY forwards; others gate).");
    for (int i = 0; i < proxy.npools; i++) {
        struct pool *p = proxy.pools[i];
        const char *cur = pool_state_name(p);

        for (int s = 0; s < GATE_NSTATES; s++) {
            const char *name = gate_state_name((enum gate_state)s);

            if (!p->zk && strcmp(name, "READY") != 0)
                continue;
            evbuffer_add_printf(out, "rzproxy_pool_state{pool=\"%s\",state=\"%s\"} %d\n",
                                p->name, name, strcmp(name, cur) == 0);
        }
        if (!p->zk)
            evbuffer_add_printf(out, "rzproxy_pool_state{pool=\"%s\",state=\"UNREACHABLE\"} %d\n",
                                p->name, strcmp(cur, "UNREACHABLE") == 0);
    }
    add_family(out, "rzproxy_pool_master", "gauge",
               "1, labelled with the master commands go to; absent while gated.");
    for (int i = 0; i < proxy.npools; i++) {
        if (pool_master(proxy.pools[i], m, sizeof(m))[0] == '\0')
            continue;
        evbuffer_add_printf(out, "rzproxy_pool_master{pool=\"%s\",master=\"", proxy.pools[i]->name);
        add_label(out, m);
        evbuffer_add_printf(out, "\"} 1\n");
    }
}

static void metrics_pools(struct evbuffer *out, uint64_t now_ms)
{
    double (*v)[PM_COUNT] = xcalloc((size_t)proxy.npools + 1, sizeof(*v));

    for (int i = 0; i < proxy.npools; i++)
        pool_values(proxy.pools[i], now_ms, v[i]);
    for (int k = 0; k < PM_COUNT; k++) {
        char name[80];

        snprintf(name, sizeof(name), "rzproxy_pool_%s", pool_metrics[k].name);
        add_family(out, name, pool_metrics[k].type, pool_metrics[k].help);
        for (int i = 0; i < proxy.npools; i++)
            evbuffer_add_printf(out, "%s{pool=\"%s\"} %.17g\n", name, proxy.pools[i]->name,
                                v[i][k]);
    }
    free(v);
}

/* Label value "" stands for clients that sent no CLIENT SETINFO LIB-NAME. */
static void add_lib_metric(const char *lib, int n, void *arg)
{
    void **ctx = arg;
    struct evbuffer *out = ctx[0];
    const struct pool *p = ctx[1];

    evbuffer_add_printf(out, "rzproxy_pool_clients_by_library{pool=\"%s\",lib_name=\"", p->name);
    add_label(out, lib);
    evbuffer_add_printf(out, "\"} %d\n", n);
}

/* read-from replicas: each replica's state, lag and reads, labelled with
 * its address. */
static void metrics_replicas(struct evbuffer *out)
{
    static const char *const fam[][3] = {
        { "rzproxy_pool_replica_up", "gauge", "1 while the replica takes reads." },
        { "rzproxy_pool_replica_lag_seconds", "gauge",
          "How far behind the master the replica was at its last check (-1 = unknown)." },
        { "rzproxy_pool_replica_reads_total", "counter", "Commands sent to the replica." },
    };

    for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
        add_family(out, fam[k][0], fam[k][1], fam[k][2]);
        for (int i = 0; i < proxy.npools; i++) {
            const struct replica *r;

            TAILQ_FOREACH(r, &proxy.pools[i]->replicas, link) {
                double v = k == 0 ? r->state == REPLICA_OK
                         : k == 1 ? (r->lag_ms < 0 || r->lag_ms == INT64_MAX ? -1
                                     : (double)r->lag_ms / 1000.0)
                         : (double)r->reads;

                evbuffer_add_printf(out, "%s{pool=\"%s\",replica=\"%s:%d\"} %.17g\n", fam[k][0],
                                    proxy.pools[i]->name, r->host, r->port, v);
            }
        }
    }
}

static void metrics_libraries(struct evbuffer *out)
{
    add_family(out, "rzproxy_pool_clients_by_library", "gauge",
               "Clients open, by the library name they gave with CLIENT SETINFO LIB-NAME "
               "(\"\" = none).");
    for (int i = 0; i < proxy.npools; i++) {
        void *ctx[2] = { out, proxy.pools[i] };

        client_count_libs(proxy.pools[i], add_lib_metric, ctx);
    }
}

static void serve_metrics(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    uint64_t now = util_now_ms();

    metrics_process(out, now);
    metrics_pool_state(out);
    metrics_pools(out, now);
    metrics_replicas(out);
    metrics_libraries(out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

/* ---- /healthz --------------------------------------------------------------- */

static void serve_healthz(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    int ok = !proxy.shutting_down;

    for (int i = 0; i < proxy.npools; i++) {
        struct pool *p = proxy.pools[i];
        const char *why = pool_health(p);
        const char *detail = why ? pool_unavailable_detail(p) : "";

        ok = ok && why == NULL;
        evbuffer_add_printf(out, "pool %s %s%s%s%s%s%s", p->name, pool_state_name(p),
                            why ? ": " : "", why ? why : "", detail[0] ? " (" : "", detail,
                            detail[0] ? ")" : "");
        /* Healthy, but forwarding where anyone may point it: say so
         * without failing the check (a warning, not a gate). */
        if (why == NULL && p->zk && p->znode_acl == ZKACL_OPEN)
            evbuffer_add_printf(out, " (warning: znode %s is writable by world:anyone)",
                                p->cf->znode);
        evbuffer_add_printf(out, "\n");
    }
    if (proxy.shutting_down)
        evbuffer_add_printf(out, "shutting down\n");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(req, ok ? HTTP_OK : 503, ok ? "OK" : "Service Unavailable", out);
    evbuffer_free(out);
}

/* ---- /info ------------------------------------------------------------------ */

static void add_lib_json(const char *lib, int n, void *arg)
{
    json_object_set_new(arg, lib, json_integer(n));
}

static json_t *info_replicas(const struct pool *p)
{
    json_t *a = json_array();
    const struct replica *r;
    char addr[300];

    TAILQ_FOREACH(r, &p->replicas, link) {
        snprintf(addr, sizeof(addr), "%s:%d", r->host, r->port);
        json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:I}", "addr", addr, "state",
                                           replica_state_name(r->state), "lag_ms",
                                           (json_int_t)(r->lag_ms == INT64_MAX ? -2 : r->lag_ms),
                                           "reads", (json_int_t)r->reads));
    }
    return a;
}

static json_t *info_pool(struct pool *p, uint64_t now_ms)
{
    double v[PM_COUNT];
    char m[300];
    const char *why = pool_health(p);
    json_t *o = json_object(), *libs;

    pool_values(p, now_ms, v);
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "state", json_string(pool_state_name(p)));
    json_object_set_new(o, "reason", why ? json_string(why) : json_null());
    json_object_set_new(o, "master", json_string(pool_master(p, m, sizeof(m))));
    json_object_set_new(o, "master_source", json_string(p->zk ? "zookeeper" : "static"));
    if (p->zk) {
        json_object_set_new(o, "znode", json_string(p->cf->znode));
        json_object_set_new(o, "znode_mzxid", json_integer(p->gate.mzxid));
    }
    json_object_set_new(o, "backend_sharing", json_boolean(p->cf->backend_sharing));
    for (int k = 0; k < PM_COUNT; k++) {
        if (strcmp(pool_metrics[k].type, "counter") == 0 && v[k] == (double)(json_int_t)v[k] &&
            strstr(pool_metrics[k].name, "seconds") == NULL)
            json_object_set_new(o, pool_metrics[k].name, json_integer((json_int_t)v[k]));
        else
            json_object_set_new(o, pool_metrics[k].name, json_real(v[k]));
    }
    libs = json_object();
    client_count_libs(p, add_lib_json, libs);
    json_object_set_new(o, "clients_by_library", libs);
    json_object_set_new(o, "read_from", json_string(p->cf->read_from == CONF_READ_FROM_REPLICAS
                                                    ? "replicas" : "master"));
    json_object_set_new(o, "replicas", info_replicas(p));
    return o;
}

static void serve_info(struct evhttp_request *req)
{
    uint64_t now = util_now_ms();
    struct zk_status zs;
    json_t *root = json_object(), *pools = json_array();
    char sid[32];
    char *text;
    struct evbuffer *out = evbuffer_new();

    zk_status(&zs);
    json_object_set_new(root, "version", json_string(PACKAGE_VERSION));
    json_object_set_new(root, "pid", json_integer(getpid()));
    json_object_set_new(root, "uptime_seconds", json_real((double)(now - proxy.start_ms) / 1000.0));
    json_object_set_new(root, "resident_memory_bytes", json_integer(rss_bytes()));
    json_object_set_new(root, "clients", json_integer(proxy.nclients));
    if (zs.started) {
        snprintf(sid, sizeof(sid), "0x%llx", (unsigned long long)zs.session_id);
        json_object_set_new(root, "zookeeper",
                            json_pack("{s:s, s:b, s:s, s:i, s:I}", "servers", proxy.conf->zookeeper,
                                      "connected", zs.connected, "session_id", sid,
                                      "session_timeout_ms", zs.timeout_ms, "connects",
                                      (json_int_t)zs.connects));
    }
    for (int i = 0; i < proxy.npools; i++)
        json_array_append_new(pools, info_pool(proxy.pools[i], now));
    json_object_set_new(root, "pools", pools);
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    evbuffer_add_printf(out, "%s\n", text ? text : "{}");
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

/* ---- routing ------------------------------------------------------------------ */

static void serve(struct evhttp_request *req, void *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

    RZ_UNUSED(arg);
    if (path == NULL)
        path = "";
    if (strcmp(path, "/metrics") == 0) {
        serve_metrics(req);
    } else if (strcmp(path, "/healthz") == 0) {
        serve_healthz(req);
    } else if (strcmp(path, "/info") == 0) {
        serve_info(req);
    } else {
        struct evbuffer *out = evbuffer_new();

        evbuffer_add_printf(out, "not found: try /metrics, /healthz or /info\n");
        evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", out);
        evbuffer_free(out);
    }
}

int admin_start(const char *addr, char *err, size_t errlen)
{
    char host[256];
    int port;

    if (addr == NULL || addr[0] == '\0')
        return 0;
    if (util_parse_hostport(addr, host, sizeof(host), &port, err, errlen) < 0)
        return -1;
    http = evhttp_new(proxy.base);
    if (http == NULL) {
        snprintf(err, errlen, "admin-listen %s: cannot create the HTTP server", addr);
        return -1;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(http, 10);
    evhttp_set_gencb(http, serve, NULL);
    errno = 0;
    if (evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port) == NULL) {
        snprintf(err, errlen, "admin-listen %s: cannot listen: %s", addr,
                 errno ? strerror(errno) : "bind failed");
        evhttp_free(http);
        http = NULL;
        return -1;
    }
    log_notice(NULL, "admin: http://%s/metrics, /healthz, /info", addr);
    return 0;
}

void admin_stop(void)
{
    if (http != NULL)
        evhttp_free(http);
    http = NULL;
}
