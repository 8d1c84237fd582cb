/*
 * conf: the configuration file, redis.conf style.
 *
 *   # comment
 *   directive value [value...]       global directives come first
 *   pool NAME                        starts a pool; the directives that follow
 *     listen 127.0.0.1:6380          (indentation optional) belong to it until
 *     master 127.0.0.1:6379          the next "pool" line
 *
 * Values may be double-quoted ("a b") for spaces. Sizes take redis units
 * (1gb, 64mb, 16kb). Every directive, its scope, its default and its range
 * live in one table in conf.c; tests/optscan.sh checks that each one is
 * documented in conf/rzproxy.conf and README.md.
 *
 * Parsing never logs: errors come back as "FILE:LINE: message".
 */
#ifndef RZ_CONF_H
#define RZ_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum conf_read_from {
    CONF_READ_FROM_MASTER = 0,       /* every command to the master */
    CONF_READ_FROM_REPLICAS,         /* read-only ones to a healthy replica */
};

enum conf_on_no_master {
    CONF_ON_NO_MASTER_BLOCK = 0,     /* hold commands up to block-timeout */
    CONF_ON_NO_MASTER_TRYAGAIN,      /* answer -TRYAGAIN at once */
};

#define CONF_DEFAULT_LISTEN "127.0.0.1:6380"   /* a pool without `listen` */

struct conf_pool {
    char *name;                      /* "pool NAME" */
    char **listen;                   /* "host:port", "[v6]:port" or "unix:/path" */
    int nlisten;
    char *master;                    /* "master host:port" (static source), or NULL */
    char *znode;                     /* "znode /path" (ZooKeeper source), or NULL */
    int znode_format;                /* enum znode_format */
    int znode_max_age_ms;            /* gate when not rewritten for this long, 0 = off */
    int backend_sharing;             /* 1 = shared route by default, 0 = pin every client */
    int backend_connections;         /* shared connections per pool and master */
    int connect_timeout_ms;          /* backend connect timeout */
    int verify_role;                 /* ask ROLE on every new backend connection */
    int on_no_master;                /* enum conf_on_no_master */
    int block_timeout_ms;            /* how long a held command waits */
    int drain_timeout_ms;            /* replies owed by a previous master: wait this long */
    int max_session_groups;          /* session groups (db, protocol, user) with shared
                                        connections; beyond it, clients pin */
    int group_idle_timeout_ms;       /* an unused session group closes after this long */
    int read_from;                   /* enum conf_read_from */
    int replica_max_lag_ms;          /* a replica further behind takes no reads */
    int read_after_write_ms;         /* a client's reads go to the master this long after
                                        its last write */
    char *backend_user;              /* ACL user of backend connections, "" = default */
    char *backend_password_file;     /* its password's file, "" = none */
    int tls;                         /* TLS to the master */
    char *tls_ca_cert_file;          /* "" = the system's default CA store */
    char *tls_ca_cert_dir;
    char *tls_cert_file;             /* client certificate and key, "" = none */
    char *tls_key_file;
    char *tls_server_name;           /* SNI and the name checked, "" = the master's host */
    int line;                        /* line of the "pool" directive, for messages */
};

struct conf {
    char *path;                      /* file it came from ("<string>" in tests) */
    /* process */
    int loglevel;                    /* enum log_level */
    char *logfile;                   /* "" = stderr */
    char *pidfile;                   /* "" = none */
    int syslog_enabled;              /* also log to syslog */
    char *syslog_ident;
    int syslog_facility;             /* index into log_facility_names */
    int maxclients;                  /* accepted client connections, all pools */
    int timeout_s;                   /* idle client timeout, 0 = never */
    uint64_t client_query_buffer_limit;  /* bytes of unparsed input per client */
    uint64_t output_buffer_limit;    /* bytes of unsent replies before backpressure */
    int output_stall_timeout_ms;     /* shared connection paused this long for one client:
                                        disconnect that client; 0 = never */
    int shutdown_timeout_ms;         /* SIGTERM: wait this long for outstanding replies */
    int tcp_keepalive_s;             /* SO_KEEPALIVE interval on client sockets, 0 = off */
    char *admin_listen;              /* host:port for /metrics /healthz /info, NULL = off */
    int protected_mode;              /* conf check only: refuse listen and admin-listen
                                        addresses other than loopback and unix: */
    int unixsocket_perm;             /* mode chmod'ed on unix listener sockets after bind
                                        (listener.c); 0 = the umask decides */
    /* ZooKeeper: one session serves every pool with a znode */
    char *zookeeper;                 /* "h1:p1,h2:p2[/chroot]", "" = none */
    int zk_session_timeout_ms;       /* requested; the server may clamp it */
    int zk_disconnect_grace_ms;      /* keep forwarding this long after a disconnect */
    char *zk_auth_digest;            /* "user:password" for digest auth, "" = none */
    char *zk_session_file;           /* test aid: "<sid hex> <passwd hex>" written here */
    /* pools */
    struct conf_pool *pools;
    int npools;
};

/* Load and validate FILE. On error returns -1 with "FILE:LINE: what" in err;
 * *out is then untouched (nothing to free). */
int conf_load(const char *path, struct conf *out, char *err, size_t errlen) RZ_MUSTCHECK;

/* Same, from a string; name stands in for the file name in messages. */
int conf_parse_string(const char *text, size_t len, const char *name, struct conf *out,
                      char *err, size_t errlen) RZ_MUSTCHECK;

void conf_free(struct conf *conf);

/*
 * Reload: `next` was just loaded to replace `running`. Every restart-only
 * directive (sockets, the ZooKeeper session, the znode, backend-connections)
 * whose value differs is reported and set back to the running value in
 * next; the new value moves into running, to be freed with it. Pools are
 * matched by name; pools in only one of the two are left to the caller.
 */
typedef void (*conf_report_fn)(const char *pool, const char *directive, void *arg);
void conf_keep_restart_only(struct conf *next, struct conf *running, conf_report_fn report,
                            void *arg);

/* The directive table, for tools and tests: NULL-terminated names. */
extern const char *const conf_directive_names[];

#endif
