/*
 * rzproxy-ctl: the director's tools for operators and tests (DESIGN
 * section 5): what the master znode says, a version-checked write of a new
 * master, and the fenced failover of section 1; and, for the design with
 * no director (section 1b), the election candidate.
 *
 *   options ──> target (conf file + -p, or --zookeeper/--znode) ──> session
 *                                                                     │
 *     show (ctl_elect_show.c) │ set-master │ failover (ctl_failover.c) <┘
 *                                                   ^
 *   the pool's tls* and backend-* (or --tls...) ────┤ redis connections
 *                                                   v
 *   candidate (ctl_candidate.c): a session of its own, until SIGTERM
 *
 * Output is for people and for grep: `show` prints fixed `key: value`
 * lines; the others print what they did, one line per action. Errors are
 * one line on stderr, "rzproxy-ctl: ...", and always say whether anything
 * changed. Exit status: 0 done, 1 failed, 2 bad command line.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "conf.h"
#include "ctl.h"
#include "ctl_candidate.h"
#include "ctl_doc.h"
#include "ctl_elect_show.h"
#include "ctl_failover.h"
#include "ctl_redis.h"
#include "ctl_zk.h"
#include "tls.h"
#include "util.h"
#include "znode.h"

#ifndef RZ_SYSCONFDIR
#define RZ_SYSCONFDIR "/etc"
#endif
#define CTL_DEFAULT_CONF RZ_SYSCONFDIR "/rzproxy.conf"
#define CTL_ZK_WAIT_MS 5000          /* connecting to ZooKeeper, and retries after a loss */
#define CTL_ZK_SESSION_MS 10000      /* without a conf file */
#define CTL_MAX_REPLICAS 64          /* --replica options */

enum ctl_opt {
    OPT_ZOOKEEPER = 256, OPT_ZNODE, OPT_EXPECT_VERSION, OPT_TO, OPT_FROM, OPT_REPLICA,
    OPT_TIMEOUT, OPT_SEED_ORDER, OPT_TLS, OPT_TLS_CA_CERT_FILE, OPT_TLS_CA_CERT_DIR,
    OPT_TLS_CERT_FILE, OPT_TLS_KEY_FILE, OPT_TLS_SERVER_NAME, OPT_BACKEND_USER,
    OPT_BACKEND_PASSWORD_FILE, OPT_REDIS, OPT_ADVERTISE, OPT_CHECK_INTERVAL, OPT_CHECK_FAILURES,
};

/* How failover talks to redis: the pool's directives of these names, each
 * replaced by its command-line option when given. Strings NULL or "": not
 * set. */
struct ctl_redis_settings {
    int tls;                         /* tls / --tls */
    const char *tls_ca_cert_file;    /* tls-ca-cert-file / --tls-ca-cert-file */
    const char *tls_ca_cert_dir;     /* and so on */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_server_name;
    const char *backend_user;
    const char *backend_password_file;
};

struct ctl_args {
    const char *conf;                /* -c, or NULL: the default file */
    const char *pool;                /* -p */
    const char *zookeeper;           /* --zookeeper */
    const char *znode;               /* --znode */
    int verbose;                     /* -v */
    long expect_version;             /* --expect-version, -1 = not given */
    const char *to, *from;           /* failover --to, --from */
    const char *replicas[CTL_MAX_REPLICAS];   /* failover --replica */
    int nreplicas;
    int timeout_ms;                  /* failover/candidate --timeout, 0 = not given */
    int seed_order;                  /* failover --seed-order */
    const char *redis_addr;          /* candidate --redis */
    const char *advertise;           /* candidate --advertise */
    int check_interval_ms;           /* candidate --check-interval, 0 = not given */
    int check_failures;              /* candidate --check-failures, 0 = not given */
    char **exec_argv;                /* candidate --exec CMD ARGS..., NULL = not given */
    struct ctl_redis_settings redis; /* --tls, --tls-*, --backend-*: overrides */
    const char *command;             /* show | set-master | failover | candidate */
    char **rest;                     /* arguments after the command */
    int nrest;
};

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: rzproxy-ctl [-c FILE] [-p POOL] [--zookeeper HOSTS] [--znode PATH] [-v] COMMAND ...\n"
"\n"
"Commands:\n"
"  show                         print what the master znode says (key: value lines)\n"
"  set-master HOST:PORT [--expect-version N]\n"
"                               write HOST:PORT into the znode, in the format it has,\n"
"                               only if it has not changed since it was read (or is\n"
"                               still at version N); creates a missing znode\n"
"  failover --to HOST:PORT [--from HOST:PORT] [--replica HOST:PORT]... [--timeout MS]\n"
"           [--seed-order]\n"
"                               move the master to HOST:PORT without losing acknowledged\n"
"                               writes: delete the znode (proxies gate), CLIENT PAUSE\n"
"                               WRITE on the old master, wait until the new one has its\n"
"                               replication offset (at most --timeout, default %d ms),\n"
"                               SLAVEOF NO ONE on the new one, SLAVEOF new on the old\n"
"                               master and the other replicas, unpause, re-create the\n"
"                               znode naming the new master. Any failure before the\n"
"                               promotion is undone (znode restored, old master\n"
"                               unpaused). --seed-order uses the old director's UNSAFE\n"
"                               order (no pause, no wait): it LOSES ACKNOWLEDGED WRITES\n"
"                               the new master had not received; it exists only so a\n"
"                               test can show that loss. Never use it in production.\n"
"  candidate --redis HOST:PORT [--advertise HOST:PORT] [--timeout MS]\n"
"            [--check-interval MS] [--check-failures N] [--exec CMD [ARG]...]\n"
"                               stand in the election under the znode (ROOT, or\n"
"                               ROOT/leader_ack: the zk gem's ZK::Election layout) for\n"
"                               the redis-server at --redis, until SIGTERM/SIGINT: cast\n"
"                               an ephemeral ROOT/ballotNNNNNNNNNN holding --advertise\n"
"                               (default: --redis); the lowest ballot wins, fences the\n"
"                               previous master, catches up with any server ahead (or\n"
"                               gives the election to it), runs SLAVEOF NO ONE and\n"
"                               creates ROOT/leader_ack (what rzproxy's pool reads);\n"
"                               the others make their redis a replica of the leader.\n"
"                               PING every --check-interval (default %d ms); after\n"
"                               --check-failures (default %d) failures in a row the\n"
"                               redis is down: a leader gives the leadership up at\n"
"                               once, a follower stops standing. Cut from ZooKeeper,\n"
"                               a leader pauses writes at once and demotes its redis\n"
"                               before its session can have expired. SIGTERM on the\n"
"                               leader hands over: pause writes, wait until the\n"
"                               successor has them (at most --timeout, default %d ms),\n"
"                               delete leader_ack and the ballot, replicate from the\n"
"                               new leader, unpause. --exec starts the redis-server\n"
"                               as a child (everything after it is its command line)\n"
"                               and follows its life: when it exits, the candidate\n"
"                               gives up and exits 1; SIGTERM stops it last.\n"
"\n"
"Options:\n"
"  -c, --conf FILE       rzproxy configuration (default %s): its `zookeeper`,\n"
"                        `zk-auth-digest`, `zk-session-timeout`, and the pool's `znode`,\n"
"                        `znode-format`, and for the redis connections of failover,\n"
"                        candidate and show (an election's servers) its `tls*`,\n"
"                        `backend-user` and `backend-password-file` (TLS verified as the\n"
"                        proxy does it; AUTH first)\n"
"  -p, --pool POOL       the pool whose znode and settings to use (default: the only\n"
"                        pool with a znode)\n"
"  --zookeeper HOSTS     ZooKeeper hosts (h:p,h:p[/chroot]); overrides the conf file\n"
"  --znode PATH          znode path; overrides the pool's. With --zookeeper as well,\n"
"                        no conf file is needed\n"
"  --tls, --tls-ca-cert-file FILE, --tls-ca-cert-dir DIR, --tls-cert-file FILE,\n"
"  --tls-key-file FILE, --tls-server-name NAME, --backend-user USER,\n"
"  --backend-password-file FILE\n"
"                        override the pool's directive of the same name (--tls: `tls\n"
"                        yes`); the password is only ever read from a file\n"
"  -v, --verbose         show the ZooKeeper library's own log on stderr\n"
"  -h, --help            this text\n"
"  -V, --version         print the version\n"
"\n"
"Exit status: 0 done, 1 failed (the message says what state is left), 2 bad usage.\n",
            CTL_FAILOVER_TIMEOUT_MS, CTL_CANDIDATE_CHECK_MS, CTL_CANDIDATE_FAILURES,
            CTL_CANDIDATE_TIMEOUT_MS, CTL_DEFAULT_CONF);
}

static int usage_error(const char *fmt, ...) RZ_PRINTF(1, 2);

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "rzproxy-ctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'rzproxy-ctl --help'.\n");
    return CTL_EXIT_USAGE;
}

/* ---- options ------------------------------------------------------------- */

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (s[0] == '\0')
        return -1;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* HOST:PORT as the proxy reads a plain znode. 0, or a usage error. */
static int check_hostport(const char *what, const char *s)
{
    char why[ZNODE_WHY_LEN];

    if (znode_parse(s, strlen(s), ZNODE_FORMAT_PLAIN, NULL, why, sizeof(why)) == ZNODE_MASTER)
        return 0;
    fprintf(stderr, "rzproxy-ctl: %s '%s' is not HOST:PORT or [IPV6]:PORT: %s\n", what, s, why);
    return CTL_EXIT_USAGE;
}

static int take_option(struct ctl_args *a, int c, const char *arg)
{
    long v;

    switch (c) {
    case 'c': a->conf = arg; return 0;
    case 'p': a->pool = arg; return 0;
    case 'v': a->verbose = 1; return 0;
    case OPT_ZOOKEEPER: a->zookeeper = arg; return 0;
    case OPT_ZNODE: a->znode = arg; return 0;
    case OPT_TO: a->to = arg; return check_hostport("--to", arg);
    case OPT_FROM: a->from = arg; return check_hostport("--from", arg);
    case OPT_SEED_ORDER: a->seed_order = 1; return 0;
    case OPT_TLS: a->redis.tls = 1; return 0;
    case OPT_TLS_CA_CERT_FILE: a->redis.tls_ca_cert_file = arg; return 0;
    case OPT_TLS_CA_CERT_DIR: a->redis.tls_ca_cert_dir = arg; return 0;
    case OPT_TLS_CERT_FILE: a->redis.tls_cert_file = arg; return 0;
    case OPT_TLS_KEY_FILE: a->redis.tls_key_file = arg; return 0;
    case OPT_TLS_SERVER_NAME: a->redis.tls_server_name = arg; return 0;
    case OPT_BACKEND_USER: a->redis.backend_user = arg; return 0;
    case OPT_BACKEND_PASSWORD_FILE: a->redis.backend_password_file = arg; return 0;
    case OPT_REDIS: a->redis_addr = arg; return check_hostport("--redis", arg);
    case OPT_ADVERTISE: a->advertise = arg; return check_hostport("--advertise", arg);
    case OPT_CHECK_INTERVAL:
        if (parse_long(arg, 10, 60000, &v) != 0)
            return usage_error("--check-interval wants 10..60000 ms, not '%s'", arg);
        a->check_interval_ms = (int)v;
        return 0;
    case OPT_CHECK_FAILURES:
        if (parse_long(arg, 1, 100, &v) != 0)
            return usage_error("--check-failures wants 1..100, not '%s'", arg);
        a->check_failures = (int)v;
        return 0;
    case OPT_REPLICA:
        if (a->nreplicas == CTL_MAX_REPLICAS)
            return usage_error("too many --replica options (max %d)", CTL_MAX_REPLICAS);
        a->replicas[a->nreplicas++] = arg;
        return check_hostport("--replica", arg);
    case OPT_EXPECT_VERSION:
        if (parse_long(arg, 0, INT32_MAX, &v) != 0)
            return usage_error("--expect-version wants a version number, not '%s'", arg);
        a->expect_version = v;
        return 0;
    case OPT_TIMEOUT:
        if (parse_long(arg, 1, 600000, &v) != 0)
            return usage_error("--timeout wants 1..600000 ms, not '%s'", arg);
        a->timeout_ms = (int)v;
        return 0;
    }
    return usage_error("unknown option %d", c);
}

/* Options that belong to one command must come with it. */
static int check_command_options(const struct ctl_args *a)
{
    int is_set = strcmp(a->command, "set-master") == 0;
    int is_failover = strcmp(a->command, "failover") == 0;
    int is_candidate = strcmp(a->command, "candidate") == 0;

    if (!is_set && !is_failover && !is_candidate && strcmp(a->command, "show") != 0)
        return usage_error("unknown command '%s'", a->command);
    if (a->expect_version >= 0 && !is_set)
        return usage_error("--expect-version goes with set-master, not %s", a->command);
    if ((a->to || a->from || a->nreplicas || a->seed_order) && !is_failover)
        return usage_error("--to, --from, --replica and --seed-order go with failover, "
                           "not %s", a->command);
    if (a->timeout_ms && !is_failover && !is_candidate)
        return usage_error("--timeout goes with failover or candidate, not %s", a->command);
    if ((a->redis_addr || a->advertise || a->check_interval_ms || a->check_failures ||
         a->exec_argv) && !is_candidate)
        return usage_error("--redis, --advertise, --check-interval, --check-failures and "
                           "--exec go with candidate, not %s", a->command);
    if (is_failover && a->to == NULL)
        return usage_error("%s", "failover needs --to HOST:PORT");
    if (is_candidate && a->redis_addr == NULL)
        return usage_error("%s", "candidate needs --redis HOST:PORT");
    if (a->nrest != is_set)
        return usage_error(is_set ? "%s needs exactly one HOST:PORT"
                                  : "%s takes no arguments", a->command);
    return is_set ? check_hostport("new master", a->rest[0]) : 0;
}

static int parse_args(int argc, char **argv, struct ctl_args *a)
{
    static const struct option longopts[] = {
        { "conf", required_argument, NULL, 'c' },
        { "pool", required_argument, NULL, 'p' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "zookeeper", required_argument, NULL, OPT_ZOOKEEPER },
        { "znode", required_argument, NULL, OPT_ZNODE },
        { "expect-version", required_argument, NULL, OPT_EXPECT_VERSION },
        { "to", required_argument, NULL, OPT_TO },
        { "from", required_argument, NULL, OPT_FROM },
        { "replica", required_argument, NULL, OPT_REPLICA },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "seed-order", no_argument, NULL, OPT_SEED_ORDER },
        { "tls", no_argument, NULL, OPT_TLS },
        { "tls-ca-cert-file", required_argument, NULL, OPT_TLS_CA_CERT_FILE },
        { "tls-ca-cert-dir", required_argument, NULL, OPT_TLS_CA_CERT_DIR },
        { "tls-cert-file", required_argument, NULL, OPT_TLS_CERT_FILE },
        { "tls-key-file", required_argument, NULL, OPT_TLS_KEY_FILE },
        { "tls-server-name", required_argument, NULL, OPT_TLS_SERVER_NAME },
        { "backend-user", required_argument, NULL, OPT_BACKEND_USER },
        { "backend-password-file", required_argument, NULL, OPT_BACKEND_PASSWORD_FILE },
        { "redis", required_argument, NULL, OPT_REDIS },
        { "advertise", required_argument, NULL, OPT_ADVERTISE },
        { "check-interval", required_argument, NULL, OPT_CHECK_INTERVAL },
        { "check-failures", required_argument, NULL, OPT_CHECK_FAILURES },
        { NULL, 0, NULL, 0 },
    };
    int c, rc;

    memset(a, 0, sizeof(*a));
    a->expect_version = -1;
    /* --exec takes the rest of the line as the child's command line,
     * options included: options are parsed only before it */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--exec") != 0)
            continue;
        if (i + 1 == argc)
            return usage_error("%s", "--exec needs a command (the redis-server to start)");
        a->exec_argv = argv + i + 1;
        argc = i;
        break;
    }
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:p:vhV", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(CTL_EXIT_OK);
        }
        if (c == 'V') {
            printf("rzproxy-ctl %s\n", PACKAGE_VERSION);
            exit(CTL_EXIT_OK);
        }
        if (c == '?')
            return usage_error("unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        if ((rc = take_option(a, c, optarg)) != 0)
            return rc;
    }
    if (optind >= argc)
        return usage_error("%s", "no command given (show, set-master, failover, candidate)");
    a->command = argv[optind];
    a->rest = argv + optind + 1;
    a->nrest = argc - optind - 1;
    return check_command_options(a);
}

/* ---- target: which znode, which ZooKeeper -------------------------------- */

/* The pool to use: -p, or the only one with a znode. *out NULL is fine
 * only when need_znode is 0 (--znode given). 0, or -1 (message printed). */
static int pick_pool(const struct conf *c, const char *name, int need_znode,
                     const struct conf_pool **out)
{
    char names[512] = "";
    int n = 0;

    *out = NULL;
    for (int i = 0; i < c->npools; i++) {
        const struct conf_pool *p = &c->pools[i];

        if (name != NULL && strcmp(p->name, name) == 0)
            *out = p;
        if (name == NULL && p->znode != NULL) {
            *out = p;
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                     n++ ? ", " : "", p->name);
        }
    }
    if (name != NULL && *out == NULL) {
        fprintf(stderr, "rzproxy-ctl: no pool '%s' in %s\n", name, c->path);
        return -1;
    }
    if (name != NULL && need_znode && (*out)->znode == NULL) {
        fprintf(stderr, "rzproxy-ctl: pool '%s' in %s has no znode (a static master)\n",
                name, c->path);
        return -1;
    }
    if (name == NULL && n != 1)
        *out = NULL;
    if (name == NULL && n == 0 && need_znode) {
        fprintf(stderr, "rzproxy-ctl: no pool in %s has a znode\n", c->path);
        return -1;
    }
    if (name == NULL && n > 1 && need_znode) {
        fprintf(stderr, "rzproxy-ctl: several pools in %s have a znode (%s): choose one "
                "with -p POOL\n", c->path, names);
        return -1;
    }
    return 0;
}

static int target_from_conf(const struct ctl_args *a, struct conf *c, struct ctl_target *t)
{
    const struct conf_pool *p;

    if (pick_pool(c, a->pool, a->znode == NULL, &p) != 0)
        return -1;
    t->zookeeper = c->zookeeper;
    t->digest = c->zk_auth_digest;
    t->session_timeout_ms = c->zk_session_timeout_ms;
    if (p != NULL) {
        t->pool = p->name;
        t->cf = p;
        t->znode = p->znode;
        t->format = (enum znode_format)p->znode_format;
    }
    return 0;
}

/* Load the conf file unless --zookeeper and --znode make it unnecessary.
 * *loaded says if c must be freed. 0, or -1 (message printed). */
static int load_conf(const struct ctl_args *a, struct conf *c, int *loaded)
{
    const char *path = a->conf != NULL ? a->conf : CTL_DEFAULT_CONF;
    char err[512];

    *loaded = 0;
    if (a->conf == NULL && a->zookeeper != NULL && a->znode != NULL)
        return 0;
    if (conf_load(path, c, err, sizeof(err)) != 0) {
        fprintf(stderr, "rzproxy-ctl: %s%s\n", err, a->conf != NULL ? "" :
                " (give the conf with -c FILE, or both --zookeeper and --znode)");
        return -1;
    }
    *loaded = 1;
    return 0;
}

static int resolve_target(const struct ctl_args *a, struct conf *c, int loaded,
                          struct ctl_target *t)
{
    memset(t, 0, sizeof(*t));
    t->digest = "";
    t->session_timeout_ms = CTL_ZK_SESSION_MS;
    t->verbose = a->verbose;
    if (loaded && target_from_conf(a, c, t) != 0)
        return -1;
    if (a->zookeeper != NULL)
        t->zookeeper = a->zookeeper;
    if (a->znode != NULL)
        t->znode = a->znode;
    if (t->zookeeper == NULL || t->zookeeper[0] == '\0') {
        fprintf(stderr, "rzproxy-ctl: no ZooKeeper: the conf has no `zookeeper`; "
                "give --zookeeper HOSTS\n");
        return -1;
    }
    if (t->znode == NULL || t->znode[0] != '/') {
        fprintf(stderr, "rzproxy-ctl: znode '%s' must be an absolute path\n",
                t->znode ? t->znode : "");
        return -1;
    }
    return 0;
}

/* ---- redis: TLS and credentials of failover's connections ---------------- */

static int is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* a's overrides over the pool's directives, into out, checked as the conf
 * parser checks a pool. 0, or a usage error. */
static int resolve_redis(const struct ctl_args *a, const struct ctl_target *t,
                         struct ctl_redis_settings *out)
{
    const struct ctl_redis_settings *o = &a->redis;
    const struct conf_pool *p = t->cf;

    out->tls = o->tls || (p != NULL && p->tls);
/* the option when given (even ""), else the pool's directive */
#define PICK(f) out->f = o->f != NULL ? o->f : p != NULL ? p->f : NULL
    PICK(tls_ca_cert_file);
    PICK(tls_ca_cert_dir);
    PICK(tls_cert_file);
    PICK(tls_key_file);
    PICK(tls_server_name);
    PICK(backend_user);
    PICK(backend_password_file);
#undef PICK
    if (!out->tls && (is_set(out->tls_ca_cert_file) || is_set(out->tls_ca_cert_dir) ||
                      is_set(out->tls_cert_file) || is_set(out->tls_server_name)))
        return usage_error("--tls-* options without TLS: give --tls too%s",
                           p != NULL ? " (the pool has `tls no`)" : "");
    if (is_set(out->tls_cert_file) != is_set(out->tls_key_file))
        return usage_error("%s", "--tls-cert-file and --tls-key-file go together");
    if (is_set(out->backend_user) && !is_set(out->backend_password_file))
        return usage_error("%s", "--backend-user needs a backend-password-file");
    return 0;
}

/* The settings loaded for ctl_failover_run: the TLS context and the
 * password (wiped by redis_unload). */
struct ctl_redis_loaded {
    struct ctl_redis_conf conf;      /* points into this struct and the settings */
    char password[UTIL_PASSWORD_MAX + 1];
};

/* Read the password file and build the TLS context, before anything
 * changes. 0, or -1 (message printed). The password is never printed. */
static int redis_load(const struct ctl_redis_settings *s, struct ctl_redis_loaded *l)
{
    char err[600];
    unsigned mode;
    int n;

    memset(l, 0, sizeof(*l));
    if (is_set(s->backend_password_file)) {
        n = util_read_password_file(s->backend_password_file, l->password, sizeof(l->password),
                                    &mode, err, sizeof(err));
        if ((mode & 077) != 0)
            fprintf(stderr, "rzproxy-ctl: warning: backend-password-file %s can be read by "
                    "others (mode %04o): chmod 600 it\n", s->backend_password_file, mode);
        if (n < 0) {
            fprintf(stderr, "rzproxy-ctl: backend-password-file %s; nothing changed\n", err);
            return -1;
        }
        l->conf.password = l->password;
        l->conf.user = is_set(s->backend_user) ? s->backend_user : NULL;
    }
    if (s->tls) {
        struct conf_pool tc;

        /* the pool tls_ctx_new wants: the fields it reads, as the conf
         * parser leaves them ("" when not set) */
        memset(&tc, 0, sizeof(tc));
        tc.tls = 1;
        tc.tls_ca_cert_file = xstrdup(s->tls_ca_cert_file ? s->tls_ca_cert_file : "");
        tc.tls_ca_cert_dir = xstrdup(s->tls_ca_cert_dir ? s->tls_ca_cert_dir : "");
        tc.tls_cert_file = xstrdup(s->tls_cert_file ? s->tls_cert_file : "");
        tc.tls_key_file = xstrdup(s->tls_key_file ? s->tls_key_file : "");
        l->conf.tls = tls_ctx_new(&tc, err, sizeof(err));
        free(tc.tls_ca_cert_file);
        free(tc.tls_ca_cert_dir);
        free(tc.tls_cert_file);
        free(tc.tls_key_file);
        if (l->conf.tls == NULL) {
            fprintf(stderr, "rzproxy-ctl: TLS: %s; nothing changed\n", err);
            explicit_bzero(l->password, sizeof(l->password));
            return -1;
        }
        l->conf.tls_server_name = s->tls_server_name;
    }
    return 0;
}

static void redis_unload(struct ctl_redis_loaded *l)
{
    if (l->conf.tls != NULL)
        tls_ctx_free(l->conf.tls);
    explicit_bzero(l->password, sizeof(l->password));
}

/* ---- show ---------------------------------------------------------------- */

static void show_node(const struct ctl_target *t, const struct ctl_znode *n)
{
    struct znode_master m;
    char why[ZNODE_WHY_LEN], esc[8192], acl[1024];
    enum znode_result r;
    struct timeval now;

    r = znode_parse(n->data, n->len, t->format, &m, why, sizeof(why));
    znode_escape(n->data, n->len, esc, sizeof(esc));
    gettimeofday(&now, NULL);
    printf("znode: present\n");
    printf("data: %s\n", esc);
    printf("format: %s\n", m.format == ZNODE_FORMAT_AUTO ? "none" : znode_format_name(m.format));
    if (r == ZNODE_MASTER)
        printf(strchr(m.host, ':') ? "master: [%s]:%d\n" : "master: %s:%d\n", m.host, m.port);
    else
        printf("master: none: %s\n", why);
    printf("version: %d\n", (int)n->version);
    printf("mzxid: 0x%" PRIx64 "\n", (uint64_t)n->mzxid);
    printf("age: %" PRId64 "\n",
           ((int64_t)now.tv_sec * 1000 + now.tv_usec / 1000 - n->mtime_ms) / 1000);
    /* What the proxy warns about (zkacl.h). */
    ctl_zk_acl_format(n->acl, acl, sizeof(acl));
    printf("acl: %s\n", acl);
    printf("world_writable: %s\n", ctl_zk_acl_world_writable(n->acl) ? "yes" : "no");
}

static int redis_load(const struct ctl_redis_settings *s, struct ctl_redis_loaded *l);
static void redis_unload(struct ctl_redis_loaded *l);

/* The election under root: leader, ballots, each server's role and offset
 * (asked with the pool's TLS and credentials). */
static int show_election(struct ctl_zk *zk, const char *root, const struct ctl_redis_settings *rs)
{
    struct ctl_redis_loaded rl;
    int loaded = redis_load(rs, &rl) == 0, rc;

    rc = ctl_elect_show(zk, root, loaded ? &rl.conf : NULL,
                        loaded ? NULL : "the TLS or credential settings failed (see above)");
    if (loaded)
        redis_unload(&rl);
    return rc == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

/* The znode as the proxy reads it; an election root (ballot* or
 * leader_ack children) as an election; ROOT/leader_ack as both. */
static int cmd_show(const struct ctl_target *t, struct ctl_zk *zk,
                    const struct ctl_redis_settings *rs)
{
    struct ctl_znode n;
    char err[512], root[1024];
    int is_root = 0;

    ctl_candidate_root(t->znode, root, sizeof(root));
    if (strcmp(root, t->znode) == 0 &&
        (is_root = ctl_elect_show_is_root(zk, t->znode, err, sizeof(err))) < 0) {
        fprintf(stderr, "rzproxy-ctl: %s\n", err);
        return CTL_EXIT_FAIL;
    }
    if (ctl_zk_read(zk, t->znode, 1, &n, err, sizeof(err)) != CTL_ZK_OK) {
        fprintf(stderr, "rzproxy-ctl: %s\n", err);
        return CTL_EXIT_FAIL;
    }
    if (t->pool != NULL)
        printf("pool: %s\n", t->pool);
    printf("path: %s\n", t->znode);
    if (!is_root && !n.exists) {
        printf("znode: missing\n");
        printf("master: none: znode missing\n");
    } else if (!is_root) {
        show_node(t, &n);
    }
    ctl_znode_free(&n);
    if (is_root || strcmp(root, t->znode) != 0)
        return show_election(zk, root, rs);
    return CTL_EXIT_OK;
}

/* ---- set-master ---------------------------------------------------------- */

/* Old master named by the data ("h:p" into out), or "" when none. */
static void named_master(const struct ctl_target *t, const struct ctl_znode *n, char *out,
                         size_t outlen)
{
    struct znode_master m;

    out[0] = '\0';
    if (n->exists && znode_parse(n->data, n->len, t->format, &m, NULL, 0) == ZNODE_MASTER)
        snprintf(out, outlen, strchr(m.host, ':') ? "[%s]:%d" : "%s:%d", m.host, m.port);
}

/* A znode we just created open (no zk-auth-digest): anyone who reaches
 * ZooKeeper could now point every proxy at a server of their choosing.
 * Said once, here, where the operator can still redo it. */
static void warn_if_open(const struct ctl_target *t, struct ctl_zk *zk)
{
    struct ctl_znode n;
    char err[512], acl[512];

    if (ctl_zk_read(zk, t->znode, 1, &n, err, sizeof(err)) != CTL_ZK_OK)
        return;
    if (n.exists && ctl_zk_acl_world_writable(n.acl)) {
        ctl_zk_acl_format(n.acl, acl, sizeof(acl));
        fprintf(stderr, "rzproxy-ctl: warning: %s was created writable by anyone (ACL %s): "
                "anyone who can reach ZooKeeper can send this pool's traffic elsewhere; set "
                "zk-auth-digest and create it again, or setAcl it (README, Security)\n",
                t->znode, acl);
    }
    ctl_znode_free(&n);
}

static int set_create(const struct ctl_target *t, struct ctl_zk *zk, const char *data,
                      size_t len)
{
    char err[512];
    enum ctl_zk_result r = ctl_zk_create(zk, t->znode, data, len, NULL, err, sizeof(err));

    if (r == CTL_ZK_OK) {
        printf("created %s (version 0)\n", t->znode);
        warn_if_open(t, zk);
        return CTL_EXIT_OK;
    }
    if (r == CTL_ZK_NODE_EXISTS)
        fprintf(stderr, "rzproxy-ctl: znode %s was created since it was read: nothing written\n",
                t->znode);
    else if (r == CTL_ZK_NO_NODE)
        fprintf(stderr, "rzproxy-ctl: the parent of %s does not exist: create it first; "
                "nothing written\n", t->znode);
    else
        fprintf(stderr, "rzproxy-ctl: %s: nothing written\n", err);
    return CTL_EXIT_FAIL;
}

static int set_update(const struct ctl_target *t, struct ctl_zk *zk, const char *data,
                      size_t len, int32_t version)
{
    struct ctl_znode now;
    char err[512];
    int32_t written = 0;
    enum ctl_zk_result r = ctl_zk_set(zk, t->znode, data, len, version, &written, err,
                                      sizeof(err));

    if (r == CTL_ZK_OK) {
        printf("wrote %s (version %d -> %d)\n", t->znode, (int)version, (int)written);
        return CTL_EXIT_OK;
    }
    if (r == CTL_ZK_BAD_VERSION) {
        if (ctl_zk_read(zk, t->znode, 0, &now, err, sizeof(err)) != CTL_ZK_OK)
            now.exists = 0;
        fprintf(stderr, "rzproxy-ctl: znode changed since it was read (version %d, expected "
                "%d): nothing written\n", now.exists ? (int)now.version : -1, (int)version);
        ctl_znode_free(&now);
    } else if (r == CTL_ZK_NO_NODE) {
        fprintf(stderr, "rzproxy-ctl: znode %s was deleted since it was read: nothing "
                "written\n", t->znode);
    } else {
        fprintf(stderr, "rzproxy-ctl: %s: nothing written\n", err);
    }
    return CTL_EXIT_FAIL;
}

static int cmd_set_master(const struct ctl_target *t, struct ctl_zk *zk, const char *master,
                          long expect_version)
{
    struct ctl_znode n;
    char err[512], old[300], esc[1024];
    enum znode_format fmt;
    size_t len;
    char *data;
    int rc, fresh;

    if (ctl_zk_read(zk, t->znode, 0, &n, err, sizeof(err)) != CTL_ZK_OK) {
        fprintf(stderr, "rzproxy-ctl: %s: nothing written\n", err);
        return CTL_EXIT_FAIL;
    }
    if (!n.exists && expect_version >= 0) {
        fprintf(stderr, "rzproxy-ctl: znode %s is missing, not at version %ld: nothing "
                "written\n", t->znode, expect_version);
        ctl_znode_free(&n);
        return CTL_EXIT_FAIL;
    }
    named_master(t, &n, old, sizeof(old));
    fmt = ctl_doc_format(n.data, n.len, t->format);
    data = ctl_doc_rewrite(n.data, n.len, fmt, master, old[0] ? old : NULL, &len, &fresh, err,
                           sizeof(err));
    if (data == NULL) {
        fprintf(stderr, "rzproxy-ctl: %s: nothing written\n", err);
        ctl_znode_free(&n);
        return CTL_EXIT_FAIL;
    }
    if (fresh && n.exists && n.len > 0)
        printf("note: the znode did not hold a JSON object: writing a new document\n");
    znode_escape(data, len, esc, sizeof(esc));
    printf("%s: %s -> %s (%s: \"%s\")\n", t->znode, old[0] ? old : "none", master,
           znode_format_name(fmt), esc);
    if (!n.exists)
        rc = set_create(t, zk, data, len);
    else
        rc = set_update(t, zk, data, len, expect_version >= 0 ? (int32_t)expect_version
                                                              : n.version);
    free(data);
    ctl_znode_free(&n);
    return rc;
}

/* ---- main ---------------------------------------------------------------- */

/* The candidate runs on a session of its own (ctl_zk_start), until stopped. */
static int run_candidate(const struct ctl_args *a, const struct ctl_target *t,
                         const struct ctl_redis_settings *rs)
{
    struct ctl_candidate_opts co = {
        .redis = a->redis_addr, .advertise = a->advertise ? a->advertise : a->redis_addr,
        .exec_argv = a->exec_argv,
        .timeout_ms = a->timeout_ms ? a->timeout_ms : CTL_CANDIDATE_TIMEOUT_MS,
        .check_interval_ms = a->check_interval_ms ? a->check_interval_ms
                                                  : CTL_CANDIDATE_CHECK_MS,
        .check_failures = a->check_failures ? a->check_failures : CTL_CANDIDATE_FAILURES,
    };
    struct ctl_redis_loaded rl;
    int rc;

    if (redis_load(rs, &rl) != 0)
        return CTL_EXIT_FAIL;
    co.conf = &rl.conf;
    rc = ctl_candidate_run(t, &co);
    redis_unload(&rl);
    return rc;
}

static int run(const struct ctl_args *a, const struct ctl_target *t,
               const struct ctl_redis_settings *rs)
{
    struct ctl_failover_opts fo = {
        .to = a->to, .from = a->from, .replicas = (const char **)a->replicas,
        .nreplicas = a->nreplicas, .seed_order = a->seed_order,
        .timeout_ms = a->timeout_ms ? a->timeout_ms : CTL_FAILOVER_TIMEOUT_MS,
    };
    int failover = strcmp(a->command, "failover") == 0;
    struct ctl_redis_loaded rl;
    struct ctl_zk *zk;
    char err[512];
    int rc;

    if (strcmp(a->command, "candidate") == 0)
        return run_candidate(a, t, rs);
    /* failover talks to redis; show only for an election, and loads the
     * settings then */
    if (failover && redis_load(rs, &rl) != 0)
        return CTL_EXIT_FAIL;
    if (failover)
        fo.redis = &rl.conf;
    zk = ctl_zk_open(t->zookeeper, t->digest, t->session_timeout_ms, CTL_ZK_WAIT_MS, t->verbose,
                     err, sizeof(err));
    if (zk == NULL) {
        fprintf(stderr, "rzproxy-ctl: %s; nothing changed\n", err);
        rc = CTL_EXIT_FAIL;
        goto out;
    }
    if (strcmp(a->command, "show") == 0)
        rc = cmd_show(t, zk, rs);
    else if (strcmp(a->command, "set-master") == 0)
        rc = cmd_set_master(t, zk, a->rest[0], a->expect_version);
    else
        rc = ctl_failover_run(t, zk, &fo);
    ctl_zk_close(zk);
out:
    if (failover)
        redis_unload(&rl);
    return rc;
}

int main(int argc, char **argv)
{
    struct ctl_args a;
    struct ctl_redis_settings rs;
    struct ctl_target t;
    struct conf c;
    int rc, loaded = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);  /* step lines interleave right with stderr */
    signal(SIGPIPE, SIG_IGN);          /* a peer closing mid-write is an error, not a death */
    if ((rc = parse_args(argc, argv, &a)) != 0)
        return rc;
    if (load_conf(&a, &c, &loaded) != 0)
        return CTL_EXIT_FAIL;
    memset(&rs, 0, sizeof(rs));
    if (resolve_target(&a, &c, loaded, &t) != 0)
        rc = CTL_EXIT_FAIL;
    else if ((rc = resolve_redis(&a, &t, &rs)) == 0)
        rc = run(&a, &t, &rs);
    if (loaded)
        conf_free(&c);
    return rc;
}
