#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "client.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"

#define LISTEN_BACKLOG 511   /* redis's tcp-backlog default */

#define ACCEPT_RETRY_MS 100   /* out of descriptors: pause accepting this long */

struct listener {
    struct pool *pool;
    struct evconnlistener *ev;
    struct event *retry;         /* re-enables accepting after EMFILE/ENFILE */
    uint64_t failures;           /* accept failures in the current episode */
    char *addr;                  /* as configured, for logs */
    char *unix_path;             /* unlinked on close, if still ours */
    dev_t unix_dev;              /* the socket file we put there */
    ino_t unix_ino;
};

static void peer_name(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(out, outlen, "%s:%d", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(out, outlen, "[%s]:%d", host, ntohs(in6->sin6_port));
    } else {
        snprintf(out, outlen, "unix");
    }
}

static void accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct listener *l = arg;
    char peer[64];

    RZ_UNUSED(ev);
    RZ_UNUSED(salen);
    if (l->failures > 0) {
        log_notice(l->pool->name, "accepting on %s again after %llu failed attempts", l->addr,
                   (unsigned long long)l->failures);
        l->failures = 0;
    }
    peer_name(sa, peer, sizeof(peer));
    client_accept(l->pool, fd, peer);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    RZ_UNUSED(fd);
    RZ_UNUSED(what);
    evconnlistener_enable(l->ev);
}

/*
 * Out of descriptors (EMFILE, ENFILE) or memory, the pending connection
 * stays in the backlog and the socket stays readable: accepting again at
 * once would spin. Pause this listener briefly instead, and log once per
 * episode rather than once per attempt.
 */
static void accept_error_cb(struct evconnlistener *ev, void *arg)
{
    struct listener *l = arg;
    int e = EVUTIL_SOCKET_ERROR();
    struct timeval tv = { 0, ACCEPT_RETRY_MS * 1000 };

    if (l->failures++ == 0)
        log_warn(l->pool->name, "accept on %s failed: %s; pausing accepts for %d ms at a time "
                 "until it works again", l->addr, evutil_socket_error_to_string(e),
                 ACCEPT_RETRY_MS);
    evconnlistener_disable(ev);
    event_add(l->retry, &tv);
}

static int unix_sockaddr(const char *path, struct sockaddr_un *sun, char *err, size_t errlen)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        snprintf(err, errlen, "unix socket path too long: %s", path);
        return -1;
    }
    strcpy(sun->sun_path, path);
    return 0;
}

/* A socket file at path (one a previous run left, or a running proxy's) is
 * replaced; anything else there is not ours to remove. */
static int unix_path_free(const char *addr, const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "cannot listen on %s: the path exists and is not a socket", addr);
        return -1;
    }
    return 0;
}

/* addr as a socket address: an IP literal as is, a host name through the
 * resolver (once, at start or reload: the first address it gives). */
static int listen_sockaddr(const char *addr, struct sockaddr_storage *ss, int *sslen,
                           char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char host[256], serv[16];
    int port, rc;

    *sslen = (int)sizeof(*ss);
    memset(ss, 0, sizeof(*ss));
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)ss, sslen) == 0)
        return 0;
    if (util_parse_hostport(addr, host, sizeof(host), &port, err, errlen) < 0)
        return -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    snprintf(serv, sizeof(serv), "%d", port);
    rc = getaddrinfo(host, serv, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "listen %s: cannot resolve %s: %s", addr, host,
                 rc != 0 ? gai_strerror(rc) : "no address");
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static struct evconnlistener *tcp_listen(struct listener *l, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen;
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE;
    struct evconnlistener *ev;

    if (listen_sockaddr(l->addr, &ss, &sslen, err, errlen) < 0)
        return NULL;
    ev = evconnlistener_new_bind(proxy.base, accept_cb, l, flags, LISTEN_BACKLOG,
                                 (struct sockaddr *)&ss, sslen);
    if (ev == NULL)
        snprintf(err, errlen, "cannot listen on %s: %s", l->addr, strerror(errno));
    return ev;
}

/* A listening socket at path (bound, mode set, listening), or -1. */
static int unix_socket_at(const char *addr, const char *path, int mode, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd;

    if (unix_sockaddr(path, &sun, err, errlen) < 0)
        return -1;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);                /* our own temporary name, left by a crash */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    if (mode != 0 && chmod(path, (mode_t)mode) < 0) {
        snprintf(err, errlen, "cannot set unixsocket-perm %03o on %s: %s", (unsigned)mode, addr,
                 strerror(errno));
    } else if (listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
    } else {
        return fd;
    }
    close(fd);
    unlink(path);
    return -1;
}

/*
 * The socket is made under a temporary name (bound, chmod'ed to
 * unixsocket-perm, listening), then renamed to path: the path appears
 * only once connections to it are accepted, and never with the umask's
 * mode, which may be wider than the one asked for. A client that waits
 * for the file (a test, a unit ordered after us) then never meets a
 * refused connect, and a proxy being replaced keeps its socket working
 * until the new one takes the name.
 */
static struct evconnlistener *unix_listen(struct listener *l, const char *path, int mode,
                                          char *err, size_t errlen)
{
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    struct evconnlistener *ev;
    struct stat st;
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path) + 32];
    int fd;

    if (unix_path_free(l->addr, path, err, errlen) < 0)
        return NULL;
    /* conf allows LISTENER_UNIX_PATH_MAX: unix_sockaddr checks the rest */
    snprintf(tmp, sizeof(tmp), "%s.%ld.new", path, (long)getpid());
    if ((fd = unix_socket_at(l->addr, tmp, mode, err, errlen)) < 0)
        return NULL;
    if (rename(tmp, path) < 0 || lstat(path, &st) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->addr, strerror(errno));
        close(fd);
        unlink(tmp);
        return NULL;
    }
    l->unix_dev = st.st_dev;
    l->unix_ino = st.st_ino;
    ev = evconnlistener_new(proxy.base, accept_cb, l, flags, 0, fd);   /* 0: listening already */
    if (ev == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->addr, strerror(errno));
        close(fd);
        unlink(path);
    }
    return ev;
}

struct listener *listener_new(struct pool *p, const char *addr, int unix_mode, char *err,
                              size_t errlen)
{
    struct listener *l = xcalloc(1, sizeof(*l));
    int is_unix = strncmp(addr, "unix:", 5) == 0;

    l->pool = p;
    l->addr = xstrdup(addr);
    l->ev = is_unix ? unix_listen(l, addr + 5, unix_mode, err, errlen)
                    : tcp_listen(l, err, errlen);
    if (l->ev == NULL) {
        free(l->addr);
        free(l);
        return NULL;
    }
    if (is_unix)
        l->unix_path = xstrdup(addr + 5);
    evconnlistener_set_error_cb(l->ev, accept_error_cb);
    l->retry = evtimer_new(proxy.base, retry_cb, l);
    return l;
}

void listener_free(struct listener *l)
{
    if (l == NULL)
        return;
    evconnlistener_free(l->ev);
    event_free(l->retry);
    if (l->unix_path != NULL) {
        struct stat st;

        /* another listener (a pool added by the same reload) may have
         * taken the name since: its file stays */
        if (lstat(l->unix_path, &st) == 0 && st.st_dev == l->unix_dev &&
            st.st_ino == l->unix_ino)
            unlink(l->unix_path);
        free(l->unix_path);
    }
    free(l->addr);
    free(l);
}
