/*
 * rzproxy: main, signals and the process lifecycle.
 *
 *   rzproxy FILE               run with the configuration in FILE
 *   rzproxy --test-conf FILE   check FILE and exit (0 = good)
 *
 * One thread runs one libevent loop that owns every socket.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "admin.h"
#include "client.h"
#include "conf.h"
#include "io.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"
#include "tls.h"
#include "zk.h"

struct proxy proxy;

static struct event *sig_term, *sig_int, *sig_hup;

/* Pools removed by a reload, freed once their last client is. */
static struct pool **dead_pools;
static int ndead_pools;

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: rzproxy FILE\n"
            "       rzproxy --test-conf FILE\n"
            "       rzproxy --version | --help\n"
            "\n"
            "A Redis sidecar proxy: listens locally, speaks RESP, and forwards every\n"
            "command to the current master of each configured pool.\n"
            "See conf/rzproxy.conf for every directive.\n");
}

static void shutdown_begin(const char *why)
{
    if (proxy.shutting_down)
        return;
    proxy.shutting_down = 1;
    proxy.shutdown_deadline_ms = util_now_ms() + (uint64_t)proxy.conf->shutdown_timeout_ms;
    log_notice(NULL, "%s: no longer accepting; waiting up to %d ms for outstanding replies",
               why, proxy.conf->shutdown_timeout_ms);
    for (int i = 0; i < proxy.npools; i++)
        pool_stop_listening(proxy.pools[i]);
    client_shutdown_begin();
}

/* --test-conf: the files the pools will read at start (the password file,
 * the TLS certificates and keys) load too. Each failure is printed; the
 * running proxy would start and gate those pools. Returns how many failed. */
static int test_secrets(const struct conf *conf)
{
    int bad = 0;

    for (int i = 0; i < conf->npools; i++) {
        const struct conf_pool *cf = &conf->pools[i];
        char pw[1024], err[512];
        unsigned mode;

        if (cf->backend_password_file[0] != '\0' &&
            util_read_password_file(cf->backend_password_file, pw, sizeof(pw), &mode, err,
                                    sizeof(err)) < 0) {
            fprintf(stderr, "rzproxy: pool '%s': backend-password-file %s\n", cf->name, err);
            bad++;
        }
        explicit_bzero(pw, sizeof(pw));
        if (cf->tls) {
            struct ssl_ctx_st *ctx = tls_ctx_new(cf, err, sizeof(err));

            if (ctx == NULL) {
                fprintf(stderr, "rzproxy: pool '%s': %s\n", cf->name, err);
                bad++;
            }
            tls_ctx_free(ctx);
        }
    }
    return bad;
}

/* ---- SIGHUP: reload ------------------------------------------------------- */

static void report_kept(const char *pool, const char *directive, void *arg)
{
    RZ_UNUSED(arg);
    log_warn(pool, "SIGHUP: '%s' changed but cannot change while running: the running value "
             "stays until a restart", directive);
}

static struct pool *find_pool(const char *name)
{
    for (int i = 0; i < proxy.npools; i++) {
        if (strcmp(proxy.pools[i]->name, name) == 0)
            return proxy.pools[i];
    }
    return NULL;
}

static int in_conf(const struct conf *c, const char *name)
{
    for (int i = 0; i < c->npools; i++) {
        if (strcmp(c->pools[i].name, name) == 0)
            return 1;
    }
    return 0;
}

static struct pool *add_pool(struct conf_pool *cf)
{
    char err[512];
    struct pool *p = pool_new(cf, err, sizeof(err));

    if (p == NULL) {
        log_error(cf->name, "SIGHUP: pool not added: %s", err);
        return NULL;
    }
    if (pool_listen(p, err, sizeof(err)) < 0) {
        log_error(cf->name, "SIGHUP: pool not added: %s", err);
        pool_free(p);
        return NULL;
    }
    if (p->zk && zk_add_pool(p) < 0) {
        log_error(cf->name, "SIGHUP: pool not added: it reads a znode and there was no "
                  "ZooKeeper pool at start (needs a restart)");
        pool_free(p);
        return NULL;
    }
    log_notice(cf->name, "SIGHUP: pool added");
    return p;
}

static void retire_pool(struct pool *p)
{
    pool_retire(p);
    dead_pools = xrealloc(dead_pools, (size_t)(ndead_pools + 1) * sizeof(*dead_pools));
    dead_pools[ndead_pools++] = p;
}

static void free_dead_pools(void)
{
    for (int i = 0; i < ndead_pools; i++) {
        if (client_count_pool(dead_pools[i]) == 0) {
            pool_free(dead_pools[i]);
            dead_pools[i--] = dead_pools[--ndead_pools];
        }
    }
}

/*
 * Re-read the conf file. A file that does not load changes nothing. What is
 * read where it is used (limits, timeouts, log level, gating mode, per-pool
 * knobs) changes by replacing proxy.conf; restart-only directives keep
 * their running values (logged); pools are added and removed by name.
 */
static void reload(void)
{
    struct conf *next = xcalloc(1, sizeof(*next)), *old = proxy.conf;
    struct pool **pools;
    char err[512];
    int n = 0;

    if (conf_load(old->path, next, err, sizeof(err)) < 0) {
        log_error(NULL, "SIGHUP: %s: configuration unchanged", err);
        free(next);
        return;
    }
    conf_keep_restart_only(next, old, report_kept, NULL);
    pools = xcalloc((size_t)next->npools + 1, sizeof(*pools));
    for (int i = 0; i < next->npools; i++) {
        struct pool *p = find_pool(next->pools[i].name);

        if (p != NULL) {
            int read_from = p->cf->read_from;

            p->cf = &next->pools[i];
            pool_load_secrets(p);
            /* Turned to replicas: the znode names them (and an election's
             * ballots are listed); not waiting for its next change. */
            if (p->zk && read_from != p->cf->read_from)
                zk_reread(p);
        } else
            p = add_pool(&next->pools[i]);
        if (p != NULL)
            pools[n++] = p;
    }
    for (int i = 0; i < proxy.npools; i++) {
        if (!in_conf(next, proxy.pools[i]->name))
            retire_pool(proxy.pools[i]);
    }
    free(proxy.pools);
    proxy.pools = pools;
    proxy.npools = n;
    proxy.conf = next;
    conf_free(old);
    free(old);
    log_set_level((enum log_level)next->loglevel);
    log_syslog(next->syslog_enabled, next->syslog_ident, next->syslog_facility);
    if (log_open(next->logfile, err, sizeof(err)) < 0)
        log_error(NULL, "SIGHUP: %s", err);
    log_notice(NULL, "SIGHUP: configuration %s reloaded (%d pool%s)", next->path, n,
               n == 1 ? "" : "s");
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    RZ_UNUSED(what);
    RZ_UNUSED(arg);
    if (sig == SIGHUP) {
        if (proxy.shutting_down)
            log_notice(NULL, "SIGHUP ignored: shutting down");
        else
            reload();
        return;
    }
    shutdown_begin(sig == SIGINT ? "SIGINT" : "SIGTERM");
}

static void cron_cb(evutil_socket_t fd, short what, void *arg)
{
    uint64_t now = util_now_ms();

    RZ_UNUSED(fd);
    RZ_UNUSED(what);
    RZ_UNUSED(arg);
    zk_check_stall(now);
    proxy.tick_ms = now;
    client_cron(now);
    for (int i = 0; i < proxy.npools; i++)
        pool_cron(proxy.pools[i], now);
    free_dead_pools();
    if (!proxy.shutting_down)
        return;
    if (client_all_idle()) {
        log_notice(NULL, "all replies delivered, exiting");
        event_base_loopexit(proxy.base, NULL);
    } else if (now >= proxy.shutdown_deadline_ms) {
        log_warn(NULL, "shutdown-timeout reached with replies outstanding, exiting");
        event_base_loopexit(proxy.base, NULL);
    }
}

static int write_pidfile(const char *path)
{
    FILE *fp;

    if (path == NULL || path[0] == '\0')
        return 0;
    fp = fopen(path, "w");
    if (fp == NULL) {
        log_error(NULL, "cannot write pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(fp, "%d\n", (int)getpid());
    fclose(fp);
    return 0;
}

static int start(void)
{
    char err[512];
    struct timeval tv = { 0, 100 * 1000 };

    proxy.base = event_base_new();
    if (proxy.base == NULL) {
        log_error(NULL, "cannot create the event loop");
        return -1;
    }
    io_init();
    client_init_loop();
    proxy.npools = proxy.conf->npools;
    proxy.pools = xcalloc((size_t)proxy.npools, sizeof(*proxy.pools));
    for (int i = 0; i < proxy.npools; i++) {
        proxy.pools[i] = pool_new(&proxy.conf->pools[i], err, sizeof(err));
        if (proxy.pools[i] == NULL || pool_listen(proxy.pools[i], err, sizeof(err)) < 0) {
            log_error(proxy.conf->pools[i].name, "%s", err);
            return -1;
        }
    }
    if (admin_start(proxy.conf->admin_listen, err, sizeof(err)) < 0) {
        log_error(NULL, "%s", err);
        return -1;
    }
    if (zk_start(err, sizeof(err)) < 0) {
        log_error(NULL, "%s", err);
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    sig_term = evsignal_new(proxy.base, SIGTERM, signal_cb, NULL);
    sig_int = evsignal_new(proxy.base, SIGINT, signal_cb, NULL);
    sig_hup = evsignal_new(proxy.base, SIGHUP, signal_cb, NULL);
    evsignal_add(sig_term, NULL);
    evsignal_add(sig_int, NULL);
    evsignal_add(sig_hup, NULL);
    proxy.cron = event_new(proxy.base, -1, EV_PERSIST, cron_cb, NULL);
    event_add(proxy.cron, &tv);
    return write_pidfile(proxy.conf->pidfile);
}

/* Free everything, so valgrind and ASan see a clean exit. Shared backends
 * go first (closing one settles its owners' outstanding count), then the
 * clients (which close their pinned backends), then the pools they used. */
static void stop(void)
{
    admin_stop();
    zk_stop();
    for (int i = 0; i < proxy.npools; i++) {
        if (proxy.pools[i] != NULL)
            pool_close_backends(proxy.pools[i]);
    }
    client_free_all();
    for (int i = 0; i < proxy.npools; i++) {
        if (proxy.pools[i] != NULL)
            pool_free(proxy.pools[i]);
    }
    free(proxy.pools);
    for (int i = 0; i < ndead_pools; i++)
        pool_free(dead_pools[i]);
    free(dead_pools);
    if (proxy.cron)
        event_free(proxy.cron);
    if (sig_term) {
        event_free(sig_term);
        event_free(sig_int);
        event_free(sig_hup);
    }
    io_free();
    if (proxy.dns)
        evdns_base_free(proxy.dns, 0);
    if (proxy.base)
        event_base_free(proxy.base);
    if (proxy.conf->pidfile && proxy.conf->pidfile[0])
        unlink(proxy.conf->pidfile);
    conf_free(proxy.conf);
    free(proxy.conf);
}

int main(int argc, char **argv)
{
    static struct conf conf;
    char err[512], abspath[PATH_MAX];
    const char *path;
    int test_only = 0, rc = 0;

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
        printf("rzproxy %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--test-conf") == 0) {
        test_only = 1;
        path = argv[2];
    } else if (argc == 2 && argv[1][0] != '-') {
        path = argv[1];
    } else {
        usage(stderr);
        return 2;
    }
    /* SIGHUP re-reads the same file even if the working directory changes. */
    if (realpath(path, abspath) != NULL)
        path = abspath;
    if (conf_load(path, &conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "rzproxy: %s\n", err);
        return 1;
    }
    if (test_only) {
        int bad = test_secrets(&conf);

        if (!bad)
            printf("rzproxy: configuration %s is valid (%d pool%s)\n", path, conf.npools,
                   conf.npools == 1 ? "" : "s");
        conf_free(&conf);
        return bad ? 1 : 0;
    }
    proxy.conf = xmalloc(sizeof(*proxy.conf));
    *proxy.conf = conf;
    log_set_level((enum log_level)conf.loglevel);
    log_syslog(conf.syslog_enabled, conf.syslog_ident, conf.syslog_facility);
    if (log_open(conf.logfile, err, sizeof(err)) < 0) {
        fprintf(stderr, "rzproxy: %s\n", err);
        return 1;
    }
    proxy.start_ms = proxy.tick_ms = util_now_ms();
    log_notice(NULL, "rzproxy %s starting, pid %d, configuration %s", PACKAGE_VERSION,
               (int)getpid(), path);
    if (start() < 0) {
        rc = 1;
    } else {
        event_base_dispatch(proxy.base);
        log_notice(NULL, "bye");
    }
    stop();
    return rc;
}
