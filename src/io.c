#include "io.h"

#include <errno.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxy.h"
#include "util.h"

static TAILQ_HEAD(, io_out) flush_list = TAILQ_HEAD_INITIALIZER(flush_list);
static struct event *flush_ev;

static void want_flush(struct io_out *o)
{
    if (o->listed || o->waiting)
        return;          /* already queued, or libevent writes as the socket allows */
    o->listed = 1;
    TAILQ_INSERT_TAIL(&flush_list, o, link);
    event_active(flush_ev, EV_TIMEOUT, 0);
}

static void output_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    RZ_UNUSED(buf);
    if (info->n_added > 0)
        want_flush(arg);
}

/* A socket bufferevent keeps the front of its output frozen so that only
 * it drains it; we are now the one writing. */
static void write_out(struct evbuffer *out, evutil_socket_t fd)
{
    evbuffer_unfreeze(out, 1);
    (void)evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
}

/* Write what is queued. A full socket (or an error, which libevent then
 * reports through the event callback) hands the rest to the write event. */
static void flush_one(struct io_out *o)
{
    struct evbuffer *out = bufferevent_get_output(o->bev);
    evutil_socket_t fd = bufferevent_getfd(o->bev);

    if (fd >= 0 && evbuffer_get_length(out) > 0)
        write_out(out, fd);
    if (evbuffer_get_length(out) > 0) {
        o->waiting = 1;
        bufferevent_enable(o->bev, EV_WRITE);
        return;
    }
    if (o->drained != NULL)
        o->drained(o->arg);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct io_out *o;

    RZ_UNUSED(fd);
    RZ_UNUSED(what);
    RZ_UNUSED(arg);
    /* A drained() callback may queue more (and even detach others): take
     * one at a time from the head. */
    while ((o = TAILQ_FIRST(&flush_list)) != NULL) {
        TAILQ_REMOVE(&flush_list, o, link);
        o->listed = 0;
        flush_one(o);
    }
}

void io_init(void)
{
    flush_ev = event_new(proxy.base, -1, 0, flush_cb, NULL);
}

void io_free(void)
{
    if (flush_ev != NULL)
        event_free(flush_ev);
    flush_ev = NULL;
}

void io_out_attach(struct io_out *o, struct bufferevent *bev, size_t low,
                   void (*drained)(void *arg), void *arg)
{
    o->bev = bev;
    o->low = low;
    o->drained = drained;
    o->arg = arg;
    o->listed = 0;
    o->waiting = 0;
    bufferevent_disable(bev, EV_WRITE);
    bufferevent_setwatermark(bev, EV_WRITE, low, 0);
    evbuffer_add_cb(bufferevent_get_output(bev), output_changed, o);
}

void io_out_detach(struct io_out *o)
{
    if (o->listed)
        TAILQ_REMOVE(&flush_list, o, link);
    o->listed = 0;
    if (o->bev != NULL)
        evbuffer_remove_cb(bufferevent_get_output(o->bev), output_changed, o);
    o->bev = NULL;
}

void io_out_written(struct io_out *o)
{
    if (o->bev == NULL || evbuffer_get_length(bufferevent_get_output(o->bev)) > 0)
        return;
    o->waiting = 0;
    bufferevent_disable(o->bev, EV_WRITE);
}
