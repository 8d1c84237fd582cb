/*
 * conf: parse and validate rzproxy.conf (format: see conf.h).
 *
 *   text --split lines--> line --tokenize()--> argv[] --lookup()--> directive
 *        --set_value()--> field of struct conf (global) or of the current
 *                         struct conf_pool (after "pool NAME")
 *   end of text --validate()--> *out
 *
 * Everything a directive is (name, scope, type, range, field, default, help)
 * lives in CONF_DIRECTIVES below; defaults are applied by feeding the default
 * text through the same set_value() a file line goes through, so a default
 * can never be out of its own range. The table is expanded twice: into
 * directives[] and into conf_directive_names[]. tests/optscan.sh greps the
 * table, so keep one `D("name", ...` entry per line.
 *
 * The parser builds into a private struct conf and copies it to *out only
 * when the whole file is valid; on any error that private copy is freed, so
 * the caller never owns a half-built configuration. Nothing here logs.
 */
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

enum dir_scope {
    SC_GLOBAL,                       /* before the first "pool" line */
    SC_POOL,                         /* after a "pool" line */
    SC_ANY,                          /* "pool" itself */
};

enum dir_type {
    T_INT,                           /* int, min..max, in `unit` */
    T_SIZE,                          /* uint64_t bytes, util_parse_size, >= min */
    T_BOOL,                          /* int 0/1 from no/yes */
    T_STRING,                        /* char *, any one value ("" allowed) */
    T_ENUM,                          /* int index into `names` */
    T_LOGLEVEL,                      /* int enum log_level via log_level_parse */
    T_HOSTPORT,                      /* char *, one host:port or [v6]:port */
    T_ADDRLIST,                      /* char ** + int count, repeatable, tcp or unix: */
    T_MODE,                          /* int file mode, octal like chmod's, 0..0777 */
    T_POOL,                          /* "pool NAME": starts a pool */
};

enum dir_unit {
    U_NONE,                          /* plain number */
    U_MS,                            /* milliseconds; accepts ms, s, m, h suffixes */
    U_S,                             /* seconds; accepts s, m, h suffixes */
};

struct directive {
    const char *name;                /* as written in the file (matched case-insensitively) */
    enum dir_scope scope;
    enum dir_type type;
    size_t off;                      /* field offset in struct conf / struct conf_pool */
    size_t off_n;                    /* T_ADDRLIST: offset of the int count */
    long long min;                   /* T_INT: in `unit`; T_SIZE: bytes */
    long long max;                   /* T_INT only */
    enum dir_unit unit;              /* T_INT only */
    const char *const *names;        /* T_ENUM: NULL-terminated, index = value */
    const char *def;                 /* default as file text; NULL = no default */
    const char *help;                /* one line, for --help style listings */
};

static const char *const znode_format_names[] = {
    "auto", "plain", "json", NULL,   /* same order as enum znode_format */
};

static const char *const read_from_names[] = {
    [CONF_READ_FROM_MASTER] = "master",
    [CONF_READ_FROM_REPLICAS] = "replicas",
    NULL,
};

static const char *const on_no_master_names[] = {
    [CONF_ON_NO_MASTER_BLOCK] = "block",
    [CONF_ON_NO_MASTER_TRYAGAIN] = "tryagain",
    NULL,
};

/* Field and type helpers for the table. */
#define G(f) offsetof(struct conf, f)
#define P(f) offsetof(struct conf_pool, f)
#define INT(o, lo, hi, u) .type = T_INT, .off = (o), .min = (lo), .max = (hi), .unit = (u)
#define SIZE(o, lo) .type = T_SIZE, .off = (o), .min = (lo)
#define BOOL(o) .type = T_BOOL, .off = (o)
#define STRING(o) .type = T_STRING, .off = (o)
#define ENUM(o, nm) .type = T_ENUM, .off = (o), .names = (nm)
#define LOGLEVEL(o) .type = T_LOGLEVEL, .off = (o)
#define HOSTPORT(o) .type = T_HOSTPORT, .off = (o)
#define ADDRLIST(o, on) .type = T_ADDRLIST, .off = (o), .off_n = (on)
#define MODE(o) .type = T_MODE, .off = (o)
#define POOL .type = T_POOL

#define KB 1024LL
#define MB (1024LL * 1024)

/*
 * Limits worth a word: timeout stops at INT_MAX/1000 so it still fits an int
 * in milliseconds; tcp-keepalive stops at 32767, Linux's TCP_KEEPIDLE maximum.
 */
#define CONF_DIRECTIVES(D)                                                                     \
    D("loglevel", SC_GLOBAL, LOGLEVEL(G(loglevel)), "notice",                                  \
      "log verbosity: error, warning, notice, info or debug")                                  \
    D("logfile", SC_GLOBAL, STRING(G(logfile)), "",                                            \
      "file to append log lines to; \"\" = stderr")                                            \
    D("pidfile", SC_GLOBAL, STRING(G(pidfile)), "",                                            \
      "file to write the process id to; \"\" = none")                                          \
    D("maxclients", SC_GLOBAL, INT(G(maxclients), 1, 1000000, U_NONE), "10000",                \
      "client connections accepted, all pools together")                                       \
    D("timeout", SC_GLOBAL, INT(G(timeout_s), 0, INT_MAX / 1000, U_S), "0",                    \
      "close a client idle this many seconds; 0 = never")                                      \
    D("client-query-buffer-limit", SC_GLOBAL, SIZE(G(client_query_buffer_limit), 1 * MB), "1gb", \
      "unparsed input bytes a client may have before it is closed")                            \
    D("output-buffer-limit", SC_GLOBAL, SIZE(G(output_buffer_limit), 16 * KB), "4mb",          \
      "unsent reply bytes to a client before the proxy stops reading for it")                  \
    D("output-stall-timeout", SC_GLOBAL, INT(G(output_stall_timeout_ms), 0, 3600000, U_MS), "2000", \
      "ms a shared connection waits for one slow client before disconnecting it; 0 = never")  \
    D("shutdown-timeout", SC_GLOBAL, INT(G(shutdown_timeout_ms), 0, 3600000, U_MS), "5000",    \
      "on SIGTERM, ms to wait for outstanding replies")                                        \
    D("tcp-keepalive", SC_GLOBAL, INT(G(tcp_keepalive_s), 0, 32767, U_S), "300",               \
      "SO_KEEPALIVE interval on client sockets in seconds; 0 = off")                           \
    D("zookeeper", SC_GLOBAL, STRING(G(zookeeper)), "",                                        \
      "ZooKeeper servers h1:p1,h2:p2[/chroot]; \"\" = none")                                    \
    D("zk-session-timeout", SC_GLOBAL, INT(G(zk_session_timeout_ms), 100, 600000, U_MS), "10000", \
      "ZooKeeper session timeout to ask for, ms (the server may clamp it)")                    \
    D("zk-disconnect-grace", SC_GLOBAL, INT(G(zk_disconnect_grace_ms), 0, 600000, U_MS), "0",  \
      "keep forwarding this many ms after losing ZooKeeper; 0 = gate at once")                 \
    D("zk-auth-digest", SC_GLOBAL, STRING(G(zk_auth_digest)), "",                              \
      "user:password for ZooKeeper digest authentication; \"\" = none")                        \
    D("syslog-enabled", SC_GLOBAL, BOOL(G(syslog_enabled)), "no",                             \
      "also send log lines to syslog")                                                         \
    D("syslog-ident", SC_GLOBAL, STRING(G(syslog_ident)), "rzproxy",                          \
      "syslog identity")                                                                       \
    D("syslog-facility", SC_GLOBAL, ENUM(G(syslog_facility), log_facility_names), "local0",   \
      "syslog facility: user, daemon or local0..local7")                                       \
    D("admin-listen", SC_GLOBAL, HOSTPORT(G(admin_listen)), NULL,                             \
      "host:port of the HTTP listener for /metrics, /healthz and /info; unset = off")       \
    D("protected-mode", SC_GLOBAL, BOOL(G(protected_mode)), "yes",                            \
      "refuse listen and admin-listen addresses other than loopback and unix sockets")       \
    D("unixsocket-perm", SC_GLOBAL, MODE(G(unixsocket_perm)), NULL,                           \
      "octal mode of unix listener sockets, like 770; unset = the umask decides")             \
    D("zk-session-file", SC_GLOBAL, STRING(G(zk_session_file)), "",                            \
      "write the ZooKeeper session id and password here (test aid); \"\" = none")             \
    D("pool", SC_ANY, POOL, NULL,                                                              \
      "start a pool: pool NAME; the directives after it belong to it")                         \
    D("listen", SC_POOL, ADDRLIST(P(listen), P(nlisten)), NULL,                                \
      "address clients connect to: host:port, [v6]:port or unix:/path; repeatable")            \
    D("master", SC_POOL, HOSTPORT(P(master)), NULL,                                            \
      "static master source: host:port of the redis master")                                   \
    D("znode", SC_POOL, STRING(P(znode)), NULL,                                                \
      "ZooKeeper master source: path of the znode naming the master")                          \
    D("znode-format", SC_POOL, ENUM(P(znode_format), znode_format_names), "auto",              \
      "znode contents: auto, plain (host:port) or json (redis_failover)")                      \
    D("znode-max-age", SC_POOL, INT(P(znode_max_age_ms), 0, 86400000, U_MS), "0",              \
      "gate when the znode was not rewritten for this many ms; 0 = off")                        \
    D("backend-sharing", SC_POOL, BOOL(P(backend_sharing)), "yes",                             \
      "multiplex clients on shared backend connections; no = one per client")                  \
    D("backend-connections", SC_POOL, INT(P(backend_connections), 1, 64, U_NONE), "2",         \
      "shared backend connections per pool and master")                                        \
    D("connect-timeout", SC_POOL, INT(P(connect_timeout_ms), 1, 600000, U_MS), "1000",         \
      "backend connect timeout in ms")                                                         \
    D("verify-role", SC_POOL, BOOL(P(verify_role)), "no",                                      \
      "ask ROLE on each new backend connection; refuse a server that is not a master")         \
    D("on-no-master", SC_POOL, ENUM(P(on_no_master), on_no_master_names), "block",             \
      "without a master: block (hold commands) or tryagain (answer -TRYAGAIN)")                \
    D("block-timeout", SC_POOL, INT(P(block_timeout_ms), 1, 3600000, U_MS), "5000",            \
      "ms a held command waits for a master before -TRYAGAIN")                                 \
    D("drain-timeout", SC_POOL, INT(P(drain_timeout_ms), 1, 3600000, U_MS), "5000",            \
      "ms replies still owed by a previous master are waited for after a switch")              \
    D("max-session-groups", SC_POOL, INT(P(max_session_groups), 1, 1024, U_NONE), "8",         \
      "session states (db, protocol, user) with shared connections of their own; "            \
      "a client that needs one more is pinned")                                                \
    D("session-group-idle-timeout", SC_POOL,                                                   \
      INT(P(group_idle_timeout_ms), 0, 86400000, U_MS), "30000",                               \
      "ms a session group nobody is in keeps its connections before they close")              \
    D("read-from", SC_POOL, ENUM(P(read_from), read_from_names), "master",                   \
      "where read-only commands go: master, or replicas (the znode's, when healthy)")         \
    D("replica-max-lag", SC_POOL, INT(P(replica_max_lag_ms), 0, 5000, U_MS), "1000",           \
      "ms a replica may be behind the master and still take reads")                            \
    D("read-after-write-ms", SC_POOL, INT(P(read_after_write_ms), 0, 3600000, U_MS), "0",     \
      "ms after a client's last write during which its reads go to the master; 0 = off")      \
    D("backend-user", SC_POOL, STRING(P(backend_user)), "",                                    \
      "ACL user every backend connection authenticates as; \"\" = the default user")           \
    D("backend-password-file", SC_POOL, STRING(P(backend_password_file)), "",                  \
      "file whose first line is the backend password (read at start and on SIGHUP)")         \
    D("tls", SC_POOL, BOOL(P(tls)), "no",                                                      \
      "connect to the master with TLS; its certificate is always verified")                    \
    D("tls-ca-cert-file", SC_POOL, STRING(P(tls_ca_cert_file)), "",                            \
      "PEM file of the CA certificates that may sign the master's; \"\" = system default")    \
    D("tls-ca-cert-dir", SC_POOL, STRING(P(tls_ca_cert_dir)), "",                              \
      "directory of CA certificates (c_rehash layout); \"\" = none")                           \
    D("tls-cert-file", SC_POOL, STRING(P(tls_cert_file)), "",                                  \
      "client certificate (PEM) for masters with tls-auth-clients; needs tls-key-file")        \
    D("tls-key-file", SC_POOL, STRING(P(tls_key_file)), "",                                    \
      "private key (PEM) of tls-cert-file")                                                     \
    D("tls-server-name", SC_POOL, STRING(P(tls_server_name)), "",                              \
      "name sent as SNI and checked in the master's certificate; \"\" = the master's host")

#define D_ENTRY(n_, sc_, spec_, def_, help_) \
    { .name = (n_), .scope = (sc_), spec_, .def = (def_), .help = (help_) },
#define D_NAME(n_, sc_, spec_, def_, help_) n_,

static const struct directive directives[] = { CONF_DIRECTIVES(D_ENTRY) };
#define NDIRECTIVES (sizeof(directives) / sizeof(directives[0]))

const char *const conf_directive_names[] = { CONF_DIRECTIVES(D_NAME) NULL };

#define POOL_NAME_MAX 32
#define CONF_FILE_MAX (16 * 1024 * 1024)   /* a config this big is a mistake */

struct parser {
    const char *name;                /* file name for messages */
    int line;                        /* current line, 1-based */
    char *err;                       /* caller's buffer */
    size_t errlen;
    struct conf *conf;               /* being built; owned by the parser until done */
    char **argv;                     /* tokens of the current line (point into the line) */
    int argc;
    int argcap;
    int line_of[NDIRECTIVES];        /* global directives: line last set, 0 = not set;
                                        for whole-file checks of a global's value */
};

static int fail_at(struct parser *p, int line, const char *fmt, ...) RZ_PRINTF(3, 4);

/* Format "FILE:LINE: message" into the caller's buffer. Always returns -1. */
static int fail_at(struct parser *p, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->errlen == 0)
        return -1;
    n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, line);
    if (n < 0 || (size_t)n >= p->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

#define fail(p, ...) fail_at((p), (p)->line, __VA_ARGS__)

/* "1048576" -> "1mb", "16384" -> "16kb", else bytes. */
static void fmt_size(long long v, char *buf, size_t len)
{
    if (v > 0 && v % (1024LL * 1024 * 1024) == 0)
        snprintf(buf, len, "%lldgb", v / (1024LL * 1024 * 1024));
    else if (v > 0 && v % MB == 0)
        snprintf(buf, len, "%lldmb", v / MB);
    else if (v > 0 && v % KB == 0)
        snprintf(buf, len, "%lldkb", v / KB);
    else
        snprintf(buf, len, "%lld bytes", v);
}

/* What a directive accepts, for the "(expected ...)" part of an error. */
static void expected_text(const struct directive *d, char *buf, size_t len)
{
    char tmp[32];
    size_t o = 0;

    switch (d->type) {
    case T_INT:
        snprintf(buf, len, "%lld..%lld%s", d->min, d->max,
                 d->unit == U_MS ? " ms" : d->unit == U_S ? " seconds" : "");
        return;
    case T_SIZE:
        fmt_size(d->min, tmp, sizeof(tmp));
        snprintf(buf, len, "a size of at least %s, like 64mb or 1gb", tmp);
        return;
    case T_BOOL:
        snprintf(buf, len, "yes or no");
        return;
    case T_ENUM:
        buf[0] = '\0';
        for (int i = 0; d->names[i] != NULL && o < len; i++) {
            const char *sep = i == 0 ? "" : d->names[i + 1] == NULL ? " or " : ", ";
            int n = snprintf(buf + o, len - o, "%s%s", sep, d->names[i]);
            if (n < 0)
                break;
            o += (size_t)n;
        }
        return;
    case T_LOGLEVEL:
        snprintf(buf, len, "error, warning, notice, info or debug");
        return;
    case T_STRING:
        snprintf(buf, len, "one value; quote it if it contains spaces");
        return;
    case T_HOSTPORT:
        snprintf(buf, len, "host:port or [ipv6]:port");
        return;
    case T_ADDRLIST:
        snprintf(buf, len, "host:port, [ipv6]:port or unix:/path");
        return;
    case T_MODE:
        snprintf(buf, len, "an octal mode up to 777, like 770 or 0660");
        return;
    case T_POOL:
        snprintf(buf, len, "a name of 1-%d letters, digits, '_' or '-'", POOL_NAME_MAX);
        return;
    }
    snprintf(buf, len, "?");
}

static int bad_value(struct parser *p, const struct directive *d, const char *fmt, ...)
    RZ_PRINTF(3, 4);

/* "bad value for 'NAME': <what> (expected <accepted values>)" */
static int bad_value(struct parser *p, const struct directive *d, const char *fmt, ...)
{
    char what[256], expect[128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    expected_text(d, expect, sizeof(expect));
    return fail(p, "bad value for '%s': %s (expected %s)", d->name, what, expect);
}

/* Quoted, escaped copy of a user value for a message. */
static const char *show(const char *s, char *buf, size_t len)
{
    util_escape(s, strlen(s), buf, len);
    return buf;
}

/* Integer with an optional time unit, converted to the directive's unit. */
static int parse_int(const char *s, enum dir_unit unit, long long *out)
{
    static const struct { const char *suffix; long long ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 },
    };
    const char *q = s;
    char *end;
    long long v;

    if (*q == '-' || *q == '+')
        q++;
    if (!isdigit((unsigned char)*q))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0)
        return -1;
    if (*end == '\0') {
        *out = v;
        return 0;
    }
    if (unit == U_NONE)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        long long mul;

        if (strcasecmp(end, units[i].suffix) != 0)
            continue;
        if (unit == U_S) {
            if (units[i].ms < 1000)
                return -1;                   /* "ms" for a seconds directive */
            mul = units[i].ms / 1000;
        } else {
            mul = units[i].ms;
        }
        if (v > LLONG_MAX / mul || v < LLONG_MIN / mul)
            return -1;
        *out = v * mul;
        return 0;
    }
    return -1;
}

/* An octal file mode as chmod takes it ("770", "0660"): at most 0777, since
 * setuid, setgid and sticky bits mean nothing on a socket. */
static int parse_mode(const char *s, int *out)
{
    size_t n = strlen(s);
    int v = 0;

    if (n == 0 || n > 4)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            return -1;
        v = v * 8 + (s[i] - '0');
    }
    if (v > 0777)
        return -1;
    *out = v;
    return 0;
}

/* A listen address: "unix:/path" or host:port / [v6]:port. Returns 0 or -1
 * with the reason in why. */
static int check_listen(const char *s, char *why, size_t whylen)
{
    char host[256];
    int port;

    if (strncmp(s, "unix:", 5) == 0) {
        size_t n = strlen(s + 5);

        if (n == 0) {
            snprintf(why, whylen, "empty unix socket path");
            return -1;
        }
        if (n > LISTENER_UNIX_PATH_MAX) {
            snprintf(why, whylen, "unix socket path longer than %zu bytes (the socket is "
                     "made under a longer temporary name first)", (size_t)LISTENER_UNIX_PATH_MAX);
            return -1;
        }
        return 0;
    }
    return util_parse_hostport(s, host, sizeof(host), &port, why, whylen);
}

/* Comparable form of a valid listen address: "unix:/p" or "tcp:host:port"
 * with the host lowercased and the port as a number, so "127.0.0.1:06380"
 * and "127.0.0.1:6380" collide. */
static void listen_key(const char *s, char *key, size_t keylen)
{
    char host[256], why[128], lower[256];
    int port;

    if (strncmp(s, "unix:", 5) == 0 ||
        util_parse_hostport(s, host, sizeof(host), &port, why, sizeof(why)) != 0) {
        snprintf(key, keylen, "%s", s);
        return;
    }
    util_lower(lower, sizeof(lower), host, strlen(host));
    snprintf(key, keylen, "tcp:%s:%d", lower, port);
}

enum host_kind {
    HOST_LOOPBACK,                   /* 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 */
    HOST_OTHER,                      /* any other literal address, 0.0.0.0 and :: too */
    HOST_NAME,                       /* not a literal address */
};

static enum host_kind host_kind(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127 ? HOST_LOOPBACK : HOST_OTHER;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127)
               ? HOST_LOOPBACK : HOST_OTHER;
    return HOST_NAME;
}

/*
 * protected-mode: `directive` (listen, admin-listen) may use addr, already
 * checked for syntax, only if it is a unix socket or a literal loopback
 * address, unless `protected-mode no`. Decided from the text alone, so that
 * --test-conf, start and SIGHUP agree: host names are refused, "localhost"
 * too, because what a name resolves to (/etc/hosts, DNS) is not in the
 * file, may change, and could be any address. Returns 0, or -1 with the
 * message at line.
 */
static int check_protected(struct parser *p, int line, const char *directive, const char *addr)
{
    char host[256], why[128], shown[128];
    int port;

    if (!p->conf->protected_mode || strncmp(addr, "unix:", 5) == 0 ||
        util_parse_hostport(addr, host, sizeof(host), &port, why, sizeof(why)) != 0)
        return 0;
    switch (host_kind(host)) {
    case HOST_LOOPBACK:
        return 0;
    case HOST_OTHER:
        return fail_at(p, line, "%s '%s' refused by protected-mode: not a loopback address "
                       "(127.0.0.0/8, ::1) or unix socket; to accept clients from other "
                       "hosts, add `protected-mode no` before the first pool", directive,
                       show(addr, shown, sizeof(shown)));
    case HOST_NAME:
        break;
    }
    return fail_at(p, line, "%s '%s' refused by protected-mode: a host name, not a loopback "
                   "address (names are not resolved); write 127.0.0.1 or [::1], or add "
                   "`protected-mode no` before the first pool", directive,
                   show(addr, shown, sizeof(shown)));
}

static int valid_pool_name(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > POOL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '-')
            return 0;
    }
    return 1;
}

static struct conf_pool *cur_pool(struct parser *p)
{
    return p->conf->npools > 0 ? &p->conf->pools[p->conf->npools - 1] : NULL;
}

/* Apply a directive's defaults to a fresh struct conf (SC_GLOBAL) or pool. */
static void apply_defaults(struct parser *p, enum dir_scope scope, void *base);

static int set_value(struct parser *p, const struct directive *d, void *base,
                     char **argv, int argc);

/* "pool NAME": check the name, open a new pool with its defaults. */
static int start_pool(struct parser *p, const struct directive *d, char **argv, int argc)
{
    struct conf *c = p->conf;
    struct conf_pool *pool;
    char shown[80];

    if (argc != 1)
        return argc == 0 ? bad_value(p, d, "missing name")
                         : bad_value(p, d, "%d values given", argc);
    if (!valid_pool_name(argv[0]))
        return bad_value(p, d, "'%s'", show(argv[0], shown, sizeof(shown)));
    for (int i = 0; i < c->npools; i++) {
        if (strcmp(c->pools[i].name, argv[0]) == 0)
            return fail(p, "pool '%s' is already defined at line %d", argv[0],
                        c->pools[i].line);
    }
    c->pools = xrealloc(c->pools, sizeof(*c->pools) * (size_t)(c->npools + 1));
    pool = &c->pools[c->npools++];
    memset(pool, 0, sizeof(*pool));
    pool->name = xstrdup(argv[0]);
    pool->line = p->line;
    apply_defaults(p, SC_POOL, pool);
    return 0;
}

/* Append listen addresses, each checked and unique across all pools. */
/* The pool already listening on addr, or NULL. */
static const struct conf_pool *listen_owner(const struct conf *c, const char *addr)
{
    char key[320], other[320];

    listen_key(addr, key, sizeof(key));
    for (int i = 0; i < c->npools; i++) {
        const struct conf_pool *op = &c->pools[i];
        for (int j = 0; j < op->nlisten; j++) {
            listen_key(op->listen[j], other, sizeof(other));
            if (strcmp(key, other) == 0)
                return op;
        }
    }
    return NULL;
}

static void listen_append(char ***list, int *n, const char *addr)
{
    *list = xrealloc(*list, sizeof(**list) * (size_t)(*n + 1));
    (*list)[(*n)++] = xstrdup(addr);
}

static int add_listen(struct parser *p, const struct directive *d, void *base,
                      char **argv, int argc)
{
    char ***list = (char ***)((char *)base + d->off);
    int *n = (int *)((char *)base + d->off_n);
    char why[256], shown[128];
    const struct conf_pool *op;

    if (argc == 0)
        return bad_value(p, d, "missing address");
    for (int a = 0; a < argc; a++) {
        if (check_listen(argv[a], why, sizeof(why)) != 0)
            return bad_value(p, d, "%s", why);
        if (check_protected(p, p->line, d->name, argv[a]) != 0)
            return -1;
        if ((op = listen_owner(p->conf, argv[a])) != NULL)
            return fail(p, "listen address '%s' is already used by pool '%s'",
                        show(argv[a], shown, sizeof(shown)), op->name);
        listen_append(list, n, argv[a]);
    }
    return 0;
}

/*
 * Parse argv into the directive's field in base. Used for file lines and for
 * defaults alike. Single-valued directives: last one wins (the old value is
 * freed). Returns 0, or -1 with the message in p->err.
 */
static int set_value(struct parser *p, const struct directive *d, void *base,
                     char **argv, int argc)
{
    void *field = (char *)base + d->off;
    char shown[80], why[256], host[256];
    int port;

    if (d->type == T_POOL)
        return start_pool(p, d, argv, argc);
    if (d->type == T_ADDRLIST)
        return add_listen(p, d, base, argv, argc);
    if (argc == 0)
        return bad_value(p, d, "missing value");
    if (argc > 1)
        return bad_value(p, d, "%d values given", argc);

    switch (d->type) {
    case T_INT: {
        long long v;
        if (parse_int(argv[0], d->unit, &v) != 0 || v < d->min || v > d->max)
            return bad_value(p, d, "'%s'", show(argv[0], shown, sizeof(shown)));
        *(int *)field = (int)v;
        return 0;
    }
    case T_SIZE: {
        uint64_t v;
        if (util_parse_size(argv[0], &v) != 0 || v < (uint64_t)d->min)
            return bad_value(p, d, "'%s'", show(argv[0], shown, sizeof(shown)));
        *(uint64_t *)field = v;
        return 0;
    }
    case T_BOOL:
        if (strcasecmp(argv[0], "yes") == 0)
            *(int *)field = 1;
        else if (strcasecmp(argv[0], "no") == 0)
            *(int *)field = 0;
        else
            return bad_value(p, d, "'%s'", show(argv[0], shown, sizeof(shown)));
        return 0;
    case T_ENUM:
        for (int i = 0; d->names[i] != NULL; i++) {
            if (strcasecmp(argv[0], d->names[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        return bad_value(p, d, "'%s'", show(argv[0], shown, sizeof(shown)));
    case T_LOGLEVEL: {
        enum log_level lvl;
        if (log_level_parse(argv[0], &lvl) != 0)
            return bad_value(p, d, "'%s'", show(argv[0], shown, sizeof(shown)));
        *(int *)field = (int)lvl;
        return 0;
    }
    case T_STRING:
        free(*(char **)field);
        *(char **)field = xstrdup(argv[0]);
        return 0;
    case T_HOSTPORT:
        if (strncmp(argv[0], "unix:", 5) == 0)
            return bad_value(p, d, "'%s': unix sockets are not supported here",
                             show(argv[0], shown, sizeof(shown)));
        if (util_parse_hostport(argv[0], host, sizeof(host), &port, why, sizeof(why)) != 0)
            return bad_value(p, d, "%s", why);
        free(*(char **)field);
        *(char **)field = xstrdup(argv[0]);
        return 0;
    case T_MODE:
        if (parse_mode(argv[0], (int *)field) != 0)
            return bad_value(p, d, "'%s'", show(argv[0], shown, sizeof(shown)));
        return 0;
    case T_ADDRLIST:
    case T_POOL:
        break;                       /* handled above */
    }
    abort();                         /* a type without a case: table bug */
}

static void apply_defaults(struct parser *p, enum dir_scope scope, void *base)
{
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        const struct directive *d = &directives[i];
        char *argv[1];

        if (d->scope != scope || d->def == NULL)
            continue;
        argv[0] = (char *)d->def;
        if (set_value(p, d, base, argv, 1) != 0)
            abort();                 /* a default outside its own range: table bug */
    }
}

/* Free the heap fields the table describes, in a struct conf or a pool. */
static void free_fields(enum dir_scope scope, void *base)
{
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        const struct directive *d = &directives[i];
        void *field = (char *)base + d->off;

        if (d->scope != scope)
            continue;
        if (d->type == T_STRING || d->type == T_HOSTPORT) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else if (d->type == T_ADDRLIST) {
            char **list = *(char ***)field;
            int *n = (int *)((char *)base + d->off_n);
            for (int j = 0; j < *n; j++)
                free(list[j]);
            free(list);
            *(char ***)field = NULL;
            *n = 0;
        }
    }
}

void conf_free(struct conf *conf)
{
    if (conf == NULL)
        return;
    for (int i = 0; i < conf->npools; i++) {
        free_fields(SC_POOL, &conf->pools[i]);
        free(conf->pools[i].name);
    }
    free(conf->pools);
    free_fields(SC_GLOBAL, conf);
    free(conf->path);
    memset(conf, 0, sizeof(*conf));
}

/* ---- reload ------------------------------------------------------------ */

/* What a running process cannot change: sockets already bound, the
 * ZooKeeper session, the znode watched, array sizes. Everything else is
 * read where it is used, so a reload changes it by replacing the conf. */
static const char *const restart_only[] = {
    "pidfile", "admin-listen", "unixsocket-perm", "zookeeper", "zk-session-timeout",
    "zk-disconnect-grace", "zk-auth-digest", "zk-session-file", "listen", "master", "znode",
    "znode-format", "backend-connections", NULL,
};

static int is_restart_only(const char *name)
{
    for (int i = 0; restart_only[i] != NULL; i++) {
        if (strcmp(restart_only[i], name) == 0)
            return 1;
    }
    return 0;
}

static int same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_value(const struct directive *d, const void *a, const void *b)
{
    const char *fa = (const char *)a + d->off, *fb = (const char *)b + d->off;

    switch (d->type) {
    case T_STRING:
    case T_HOSTPORT:
        return same_string(*(char *const *)fa, *(char *const *)fb);
    case T_ADDRLIST: {
        int na = *(const int *)((const char *)a + d->off_n);
        int nb = *(const int *)((const char *)b + d->off_n);
        char *const *la = *(char **const *)fa, *const *lb = *(char **const *)fb;

        for (int i = 0; i < na && na == nb; i++) {
            if (!same_string(la[i], lb[i]))
                return 0;
        }
        return na == nb;
    }
    case T_SIZE:
        return *(const uint64_t *)fa == *(const uint64_t *)fb;
    default:
        return *(const int *)fa == *(const int *)fb;
    }
}

/* Exchange one field between two structs: next gets the running value,
 * running gets the new one (freed with it). */
static void swap_value(const struct directive *d, void *a, void *b)
{
    size_t size = d->type == T_SIZE ? sizeof(uint64_t)
                : d->type == T_STRING || d->type == T_HOSTPORT ? sizeof(char *)
                : d->type == T_ADDRLIST ? sizeof(char **) : sizeof(int);
    char tmp[sizeof(uint64_t)];

    memcpy(tmp, (char *)a + d->off, size);
    memcpy((char *)a + d->off, (char *)b + d->off, size);
    memcpy((char *)b + d->off, tmp, size);
    if (d->type == T_ADDRLIST) {
        int *na = (int *)((char *)a + d->off_n), *nb = (int *)((char *)b + d->off_n);
        int t = *na;

        *na = *nb;
        *nb = t;
    }
}

static void keep_scope(enum dir_scope scope, void *next, void *running, const char *pool,
                       conf_report_fn report, void *arg)
{
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        const struct directive *d = &directives[i];

        if (d->scope != scope || !is_restart_only(d->name) || same_value(d, next, running))
            continue;
        report(pool, d->name, arg);
        swap_value(d, next, running);
    }
}

void conf_keep_restart_only(struct conf *next, struct conf *running, conf_report_fn report,
                            void *arg)
{
    keep_scope(SC_GLOBAL, next, running, NULL, report, arg);
    for (int i = 0; i < next->npools; i++) {
        for (int j = 0; j < running->npools; j++) {
            if (strcmp(next->pools[i].name, running->pools[j].name) == 0)
                keep_scope(SC_POOL, &next->pools[i], &running->pools[j], next->pools[i].name,
                           report, arg);
        }
    }
}

static void push_arg(struct parser *p, char *arg)
{
    if (p->argc == p->argcap) {
        p->argcap = p->argcap ? p->argcap * 2 : 8;
        p->argv = xrealloc(p->argv, sizeof(*p->argv) * (size_t)p->argcap);
    }
    p->argv[p->argc++] = arg;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Split one line (NUL-terminated, modified in place) into p->argv. A token
 * starting with '#' ends the line (comment). "..." quotes a value, with \"
 * and \\ as the only escapes; the closing quote must end the token.
 */
static int tokenize(struct parser *p, char *line)
{
    char *r = line;

    p->argc = 0;
    for (;;) {
        char *w, c;

        while (is_blank(*r))
            r++;
        if (*r == '\0' || *r == '#')
            return 0;
        w = r;
        if (*r == '"') {
            char *start = w;
            r++;
            for (;;) {
                if (*r == '\0')
                    return fail(p, "unterminated quoted value");
                if (*r == '\\') {
                    if (r[1] != '"' && r[1] != '\\')
                        return fail(p, "bad escape in quoted value (only \\\" and \\\\ are known)");
                    *w++ = r[1];
                    r += 2;
                    continue;
                }
                if (*r == '"') {
                    r++;
                    break;
                }
                *w++ = *r++;
            }
            if (*r != '\0' && !is_blank(*r))
                return fail(p, "closing quote must be followed by a space");
            c = *r;
            *w = '\0';
            push_arg(p, start);
        } else {
            char *start = r;
            while (*r != '\0' && !is_blank(*r))
                r++;
            c = *r;
            *r = '\0';
            push_arg(p, start);
        }
        if (c == '\0')
            return 0;
        r++;
    }
}

static const struct directive *lookup(const char *name)
{
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        if (strcasecmp(directives[i].name, name) == 0)
            return &directives[i];
    }
    return NULL;
}

static int do_line(struct parser *p, char *line)
{
    const struct directive *d;
    struct conf_pool *pool;
    char shown[80];

    if (tokenize(p, line) != 0)
        return -1;
    if (p->argc == 0)
        return 0;
    d = lookup(p->argv[0]);
    if (d == NULL)
        return fail(p, "unknown directive '%s'", show(p->argv[0], shown, sizeof(shown)));
    pool = cur_pool(p);
    if (d->scope == SC_POOL && pool == NULL)
        return fail(p, "directive '%s' belongs inside a pool", d->name);
    if (d->scope == SC_GLOBAL && pool != NULL)
        return fail(p, "'%s' is a global directive; put it before the first pool", d->name);
    if (d->scope == SC_GLOBAL)
        p->line_of[d - directives] = p->line;
    return set_value(p, d, d->scope == SC_POOL ? (void *)pool : (void *)p->conf,
                     p->argv + 1, p->argc - 1);
}

/*
 * Whole-file checks, reported at the offending line. admin-listen meets
 * protected-mode here because either may come first; each `listen` was
 * checked as it was read, after every global. A pool needs exactly one
 * master source: `master` (static) or `znode` (ZooKeeper, which then needs
 * `zookeeper`); these point at the pool's line. A pool without `listen`
 * gets CONF_DEFAULT_LISTEN (loopback), if no other pool has it.
 */
static int validate(struct parser *p)
{
    struct conf *c = p->conf;

    if (c->npools == 0)
        return fail(p, "no pool defined: add `pool NAME` with `listen` and `master` lines");
    if (c->admin_listen != NULL &&
        check_protected(p, p->line_of[lookup("admin-listen") - directives], "admin-listen",
                        c->admin_listen) != 0)
        return -1;
    for (int i = 0; i < c->npools; i++) {
        struct conf_pool *pool = &c->pools[i];
        int sources = (pool->master != NULL) + (pool->znode != NULL);
        const struct conf_pool *op;

        if (pool->nlisten == 0) {
            if ((op = listen_owner(c, CONF_DEFAULT_LISTEN)) != NULL)
                return fail_at(p, pool->line, "pool '%s': needs a `listen ADDRESS` (the default "
                               "%s is used by pool '%s')", pool->name, CONF_DEFAULT_LISTEN,
                               op->name);
            listen_append(&pool->listen, &pool->nlisten, CONF_DEFAULT_LISTEN);
        }
        if (sources == 0)
            return fail_at(p, pool->line, "pool '%s': needs a master source: `master host:port` "
                           "or `znode PATH`", pool->name);
        if (sources > 1)
            return fail_at(p, pool->line, "pool '%s': `master` and `znode` exclude each other; "
                           "keep one", pool->name);
        if (pool->znode != NULL && (pool->znode[0] != '/' ||
                                    (strlen(pool->znode) > 1 &&
                                     pool->znode[strlen(pool->znode) - 1] == '/')))
            return fail_at(p, pool->line, "pool '%s': znode '%s' must be an absolute path like "
                           "/redis_failover/nodes", pool->name, pool->znode);
        if (pool->znode != NULL && c->zookeeper[0] == '\0')
            return fail_at(p, pool->line, "pool '%s': `znode` needs the global `zookeeper "
                           "host:port,...` directive", pool->name);
        if ((pool->tls_cert_file[0] == '\0') != (pool->tls_key_file[0] == '\0'))
            return fail_at(p, pool->line, "pool '%s': `tls-cert-file` and `tls-key-file` go "
                           "together", pool->name);
        if (!pool->tls && (pool->tls_ca_cert_file[0] || pool->tls_ca_cert_dir[0] ||
                           pool->tls_cert_file[0] || pool->tls_server_name[0]))
            return fail_at(p, pool->line, "pool '%s': tls-* settings without `tls yes`",
                           pool->name);
        if (pool->backend_user[0] != '\0' && pool->backend_password_file[0] == '\0')
            return fail_at(p, pool->line, "pool '%s': `backend-user` needs "
                           "`backend-password-file`", pool->name);
    }
    return 0;
}

int conf_parse_string(const char *text, size_t len, const char *name, struct conf *out,
                      char *err, size_t errlen)
{
    struct conf c;
    struct parser p;
    char *buf, *line, *end;
    int rc = 0;

    memset(&c, 0, sizeof(c));
    memset(&p, 0, sizeof(p));
    p.name = name;
    p.err = err;
    p.errlen = errlen;
    p.conf = &c;
    apply_defaults(&p, SC_GLOBAL, &c);

    buf = xstrndup(text, len);
    end = buf + len;
    line = buf;
    p.line = 0;
    while (line < end || p.line == 0) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *eol = nl != NULL ? nl : end;

        p.line++;
        if (memchr(line, '\0', (size_t)(eol - line)) != NULL) {
            rc = fail(&p, "NUL byte in line");
            break;
        }
        *eol = '\0';
        if (do_line(&p, line) != 0) {
            rc = -1;
            break;
        }
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    if (rc == 0)
        rc = validate(&p);

    free(p.argv);
    free(buf);
    if (rc != 0) {
        conf_free(&c);
        return -1;
    }
    c.path = xstrdup(name);
    *out = c;
    return 0;
}

int conf_load(const char *path, struct conf *out, char *err, size_t errlen)
{
    FILE *fp;
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc;

    fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t n;

        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            text = xrealloc(text, cap);
        }
        n = fread(text + len, 1, cap - len, fp);
        len += n;
        if (len > CONF_FILE_MAX) {
            snprintf(err, errlen, "%s: larger than %d bytes, not a configuration file",
                     path, CONF_FILE_MAX);
            free(text);
            fclose(fp);
            return -1;
        }
        if (n == 0)
            break;
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        free(text);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    rc = conf_parse_string(text, len, path, out, err, errlen);
    free(text);
    return rc;
}
