/*
 * io: batched writes for bufferevent outputs.
 *
 * Left to itself, a socket bufferevent registers its write event every time
 * its output goes from empty to non-empty and removes it once drained: two
 * epoll_ctl calls per request and reply, more than the read and the write
 * themselves. Instead, a connection attached here keeps EV_WRITE disabled;
 * appending to its output puts it on a list, and once the callbacks of this
 * loop iteration have run, one writev per connection sends everything
 * queued (many clients' requests to a shared backend in one write). Only a
 * socket that cannot take it all gets its write event back until it drains.
 */
#ifndef RZ_IO_H
#define RZ_IO_H

#include <stddef.h>
#include <sys/queue.h>

struct bufferevent;

struct io_out {
    struct bufferevent *bev;
    size_t low;                      /* drained() once output is at or below this */
    void (*drained)(void *arg);      /* what the bufferevent's write callback would do */
    void *arg;
    int listed;                      /* on the flush list */
    int waiting;                     /* EV_WRITE enabled: the socket was full */
    TAILQ_ENTRY(io_out) link;
};

void io_init(void);
void io_free(void);

/* Take over the writes of bev. drained(arg) is called when a flush leaves
 * at most `low` bytes; the bufferevent's own write callback must call
 * io_out_written() (it only runs while the socket was full). */
void io_out_attach(struct io_out *o, struct bufferevent *bev, size_t low,
                   void (*drained)(void *arg), void *arg);
/* Before bufferevent_free(). */
void io_out_detach(struct io_out *o);
/* From the bufferevent's write callback: libevent wrote what was left. */
void io_out_written(struct io_out *o);

#endif
