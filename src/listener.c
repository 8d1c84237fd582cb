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
    char *unix_path;             /* unlinked on close */
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
    struct stat st;

    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        snprintf(err, errlen, "unix socket path too long: %s", path);
        return -1;
    }
    strcpy(sun->sun_path, path);
    /* A socket file left by a previous run would make bind fail; anything
     * else at that path is not ours to remove. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
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

/*
 * bind, chmod to unixsocket-perm (mode; 0 leaves the umask's), then listen:
 * in this order no connection is accepted while the file still has the
 * umask's mode, which may be wider than the one asked for. On failure the
 * socket file is removed again.
 */
static struct evconnlistener *unix_listen(struct listener *l, const char *path, int mode,
                                          char *err, size_t errlen)
{
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    struct sockaddr_un sun;
    struct evconnlistener *ev = NULL;
    int fd;

    if (unix_sockaddr(path, &sun, err, errlen) < 0)
        return NULL;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->addr, strerror(errno));
        return NULL;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->addr, strerror(errno));
        close(fd);
        return NULL;
    }
    if (mode != 0 && chmod(path, (mode_t)mode) < 0)
        snprintf(err, errlen, "cannot set unixsocket-perm %03o on %s: %s", (unsigned)mode,
                 l->addr, strerror(errno));
    else if ((ev = evconnlistener_new(proxy.base, accept_cb, l, flags, LISTEN_BACKLOG,
                                      fd)) == NULL)
        snprintf(err, errlen, "cannot listen on %s: %s", l->addr, strerror(errno));
    if (ev == NULL) {
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
        unlink(l->unix_path);
        free(l->unix_path);
    }
    free(l->addr);
    free(l);
}
