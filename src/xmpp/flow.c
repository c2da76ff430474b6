/*
 * flow.c — output flow control between connections.
 *
 * Owns three things, all per connection and O(1) per stanza:
 *  - push-back: when output queued for a recipient passes the soft mark
 *    (half the output cap), the connection whose input produced it stops
 *    being read; it waits on that recipient's list and is read again once
 *    the recipient's queue drains below the low mark (a quarter of the
 *    cap).  A fast sender is thus held to the pace of its slowest
 *    recipient instead of getting that recipient disconnected.  A
 *    component serves many users and is never held for one of them: its
 *    recipients keep the output cap alone;
 *  - held stanzas: bulk output a module sends on its own (archive pages,
 *    offline messages) waits here, in order, and is serialized only while
 *    the recipient's queue is under the soft mark, so a page larger than
 *    the output cap reaches a client that reads slowly;
 *  - the stall timer: a recipient whose queue stays over the soft mark while
 *    its socket takes no byte for slow_reader_timeout is closed as a slow
 *    reader, which lets its senders go.
 * Must not: touch sockets or TLS (conn.c does), or scan connections.
 */
#include "xmpp/flow.h"

#include <event2/event.h>
#include <stdlib.h>

#include "util/log.h"
#include "xmpp/conn.h"

/* Held stanzas per connection before it counts as a slow reader. */
#define MAX_HELD 65536

typedef struct held {
    tern_xml_t *node;
    struct held *next;
} held_t;

struct conn_flow {
    conn_t *waits_on;              /* the recipient this connection waits for */
    conn_t *wait_prev, *wait_next; /* in waits_on's list of waiters */
    conn_t *waiters;               /* senders waiting for this one to drain */
    held_t *head, *tail;           /* stanzas not yet serialized, in order */
    size_t n_held;
    struct event *stall_timer;
    long long progress_ms; /* the socket last took bytes, or the stall began */
};

static long long stall_ms = 60 * 1000;

void flow_set_stall_ms(long long ms)
{
    stall_ms = ms;
}

static size_t soft_mark(const conn_t *c)
{
    return c->max_output / 2;
}

static size_t low_mark(const conn_t *c)
{
    return c->max_output / 4;
}

static long long clock_ms(const conn_t *c)
{
    struct timeval tv;
    event_base_gettimeofday_cached(c->base, &tv);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static conn_flow_t *get_flow(conn_t *c)
{
    if (!c->flow)
        c->flow = calloc(1, sizeof(*c->flow));
    return c->flow;
}

int flow_may_read(const conn_t *c)
{
    return !c->flow || !c->flow->waits_on;
}

static void stall_check(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    conn_flow_t *f = c->flow;
    if (stall_ms <= 0)
        return; /* a reload turned the timeout off */
    long long idle = clock_ms(c) - f->progress_ms;
    if (idle >= stall_ms || idle < 0) {
        conn_slow_reader(c, "no output taken for the slow reader timeout");
        return;
    }
    long long left = stall_ms - idle;
    struct timeval tv = {left / 1000, (left % 1000) * 1000};
    evtimer_add(f->stall_timer, &tv);
}

/* The queue of `c` is over the soft mark: start timing, unless already. */
static void stall_start(conn_t *c, conn_flow_t *f)
{
    if (stall_ms <= 0)
        return;
    if (!f->stall_timer)
        f->stall_timer = evtimer_new(c->base, stall_check, c);
    if (!f->stall_timer || evtimer_pending(f->stall_timer, NULL))
        return;
    f->progress_ms = clock_ms(c);
    struct timeval tv = {stall_ms / 1000, (stall_ms % 1000) * 1000};
    evtimer_add(f->stall_timer, &tv);
}

/* `src` stops reading until `dst` drains (one recipient at a time: a
 * sender released early meets the next full recipient on its next
 * stanza). */
static void wait_for(conn_t *src, conn_t *dst)
{
    if (!src || src->closing || src->never_held)
        return;
    conn_flow_t *sf = get_flow(src), *df = dst->flow;
    if (!sf || sf->waits_on)
        return;
    sf->waits_on = dst;
    sf->wait_prev = NULL;
    sf->wait_next = df->waiters;
    if (df->waiters)
        df->waiters->flow->wait_prev = src;
    df->waiters = src;
    conn_input_hold(src);
}

static void unlink_waiter(conn_t *w)
{
    conn_flow_t *wf = w->flow;
    conn_flow_t *df = wf->waits_on->flow;
    if (wf->wait_prev)
        wf->wait_prev->flow->wait_next = wf->wait_next;
    else
        df->waiters = wf->wait_next;
    if (wf->wait_next)
        wf->wait_next->flow->wait_prev = wf->wait_prev;
    wf->wait_prev = wf->wait_next = NULL;
    wf->waits_on = NULL;
}

static void release_waiters(conn_flow_t *f)
{
    while (f->waiters) {
        conn_t *w = f->waiters;
        unlink_waiter(w);
        conn_input_release(w);
    }
}

int flow_after_output(conn_t *dst, conn_t *src)
{
    if (conn_queued(dst) < soft_mark(dst))
        return 0;
    conn_flow_t *f = get_flow(dst);
    if (!f)
        return -1;
    stall_start(dst, f);
    wait_for(src, dst);
    return 0;
}

void flow_drained(conn_t *dst)
{
    conn_flow_t *f = dst->flow;
    if (!f)
        return;
    f->progress_ms = clock_ms(dst);
    if (conn_queued(dst) >= low_mark(dst))
        return;
    /* Held stanzas first: they were queued before the waiters' next ones. */
    while (f->head && conn_queued(dst) < soft_mark(dst)) {
        held_t *h = f->head;
        f->head = h->next;
        if (!f->head)
            f->tail = NULL;
        f->n_held--;
        int rc = conn_serialize(dst, h->node);
        tern_xml_unref(h->node);
        free(h);
        if (rc < 0)
            return; /* dst is being dropped */
    }
    if (conn_queued(dst) >= low_mark(dst))
        return;
    if (!f->head && f->stall_timer)
        evtimer_del(f->stall_timer);
    release_waiters(f);
}

int flow_send_paced(conn_t *dst, tern_xml_t *node, conn_t *src)
{
    conn_flow_t *f = dst->flow;
    if ((!f || !f->head) && conn_queued(dst) < soft_mark(dst))
        return conn_serialize(dst, node);
    f = get_flow(dst);
    held_t *h = f && f->n_held < MAX_HELD ? malloc(sizeof(*h)) : NULL;
    if (!h) {
        conn_slow_reader(dst, "too many stanzas held back");
        return -1;
    }
    h->node = tern_xml_ref(node);
    h->next = NULL;
    if (f->tail)
        f->tail->next = h;
    else
        f->head = h;
    f->tail = h;
    f->n_held++;
    stall_start(dst, f);
    wait_for(src, dst);
    return 0;
}

void flow_forget(conn_t *c)
{
    conn_flow_t *f = c->flow;
    if (!f)
        return;
    if (f->waits_on)
        unlink_waiter(c);
    release_waiters(f);
    while (f->head) {
        held_t *h = f->head;
        f->head = h->next;
        tern_xml_unref(h->node);
        free(h);
    }
    f->tail = NULL;
    f->n_held = 0;
    if (f->stall_timer)
        evtimer_del(f->stall_timer);
}

void flow_free(conn_t *c)
{
    if (!c->flow)
        return;
    flow_forget(c);
    if (c->flow->stall_timer)
        event_free(c->flow->stall_timer);
    free(c->flow);
    c->flow = NULL;
}
