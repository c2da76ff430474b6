/*
 * conn.c — XMPP stream framing on a byte transport.
 *
 * Owns the stream parser, the stream header flag, restarts, the close tag,
 * stream errors and the idle strikes (a whitespace ping first, then
 * connection-timeout), and serializes stanzas straight into the
 * transport's output queue (no copy in between).  Everything about the
 * socket — TLS, rate limit, idle timer, output flushing once per loop
 * turn, the warm list, slow readers — is the transport's
 * (net/transport.c); the transport reports up through transport_ops_t.
 *
 * Input: the transport hands each read to conn_feed(), which parses it;
 * the input hooks bracket the reads of one wake-up.  Output: conn_write()
 * and conn_send() append to the transport's queue, then flow control
 * (flow.c) may hold the connection whose input produced it.
 */
#include "xmpp/conn.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "net/transport.h"
#include "xmpp/flow.h"
#include "xmpp/stanza.h"

static conn_t *all_conns;
static size_t n_conns;
static conn_input_hooks_t input_hooks;
static conn_t *reading; /* the connection whose input is being handled */

size_t conn_count(void)
{
    return n_conns;
}

size_t conn_busy_count(void)
{
    return transport_busy_count();
}

/* ---- the parser's callbacks ---- */

static void xs_open(void *ctx, const char *name, const char *ns, const char **attrs)
{
    conn_t *c = ctx;
    c->ops->on_open(c, name, ns, attrs);
}

typedef struct deferred_stanza {
    struct deferred_stanza *next;
    tern_xml_t *stanza;
} deferred_stanza_t;

/* Keep a stanza parsed while input is held; at most one read's worth
 * waits, since the transport stops reading when input is held. */
static void defer_stanza(conn_t *c, tern_xml_t *stanza)
{
    deferred_stanza_t *d = malloc(sizeof(*d));
    if (!d) {
        conn_stream_error(c, "resource-constraint", NULL);
        return;
    }
    d->next = NULL;
    d->stanza = tern_xml_ref(stanza);
    if (c->deferred_tail)
        c->deferred_tail->next = d;
    else
        c->deferred = d;
    c->deferred_tail = d;
}

static void free_deferred(conn_t *c)
{
    while (c->deferred) {
        deferred_stanza_t *d = c->deferred;
        c->deferred = d->next;
        tern_xml_unref(d->stanza);
        free(d);
    }
    c->deferred_tail = NULL;
}

static void xs_stanza(void *ctx, tern_xml_t *stanza)
{
    conn_t *c = ctx;
    if (c->held || c->deferred)
        defer_stanza(c, stanza); /* in-order processing: after what holds it */
    else if (!c->closing)
        c->ops->on_stanza(c, stanza);
    tern_xml_unref(stanza);
}

static void xs_close(void *ctx)
{
    conn_t *c = ctx;
    log_debug("%s %s closed its stream", c->ops->kind, c->peer);
    snprintf(c->ended_with, sizeof(c->ended_with), "close");
    if (c->deferred)
        c->close_deferred = 1; /* after the stanzas that came before it */
    else
        conn_close(c);
}

static void xs_error(void *ctx, const char *condition, const char *text)
{
    conn_t *c = ctx;
    log_info("%s %s: stream error %s (%s)", c->ops->kind, c->peer, condition, text ? text : "");
    conn_stream_error(c, condition, text);
}

static const xml_stream_callbacks_t xs_callbacks = {
    .on_open = xs_open, .on_stanza = xs_stanza, .on_close = xs_close, .on_error = xs_error};

/* ---- the transport's callbacks ---- */

int conn_feed(conn_t *c, const char *data, size_t len)
{
    if (c->closing)
        return -1;
    c->idle_strikes = 0;
    return xml_stream_feed(c->xs, data, len) < 0 ? -1 : 0;
}

static int tr_data(void *ctx, const char *data, size_t len)
{
    return conn_feed(ctx, data, len);
}

static void tr_input_begin(void *ctx)
{
    reading = ctx;
    if (input_hooks.begin)
        input_hooks.begin();
}

static void tr_input_end(void *ctx)
{
    if (input_hooks.end)
        input_hooks.end();
    reading = NULL;
}

static int tr_may_read(void *ctx)
{
    return flow_may_read(ctx);
}

static void tr_drained(void *ctx)
{
    flow_drained(ctx); /* may queue held stanzas: then written next */
}

static void tr_idle(void *ctx)
{
    conn_t *c = ctx;
    if (c->closing)
        return;
    if (c->idle_strikes++ == 0 && c->ops->on_idle) {
        c->ops->on_idle(c);
    } else {
        log_info("%s %s: idle timeout", c->ops->kind, c->peer);
        conn_stream_error(c, "connection-timeout", NULL);
    }
}

static void tr_quiet(void *ctx)
{
    conn_t *c = ctx;
    if (c->xs)
        xml_stream_park(c->xs);
}

/* TLS took over after STARTTLS: a new stream document, a new parser. */
static int tr_tls_start(void *ctx)
{
    conn_t *c = ctx;
    xml_stream_free(&c->xs);
    c->xs = xml_stream_new(&xs_callbacks, c, &c->limits);
    if (!c->xs)
        return -1;
    c->header_sent = 0;
    return 0;
}

/* The stream is ending (either side): mark closing and tell the stream
 * type once. */
static void tr_close(void *ctx, transport_reason_t reason)
{
    conn_t *c = ctx;
    (void)reason;
    if (c->closing)
        return;
    c->closing = 1;
    flow_forget(c); /* its senders read on; what was held back is dropped */
    if (c->xs)
        xml_stream_stop(c->xs);
    if (c->ops->on_closing)
        c->ops->on_closing(c);
}

/* Free c's parts (any may be missing on a failed start) and c. */
static void free_conn(conn_t *c)
{
    free_deferred(c);
    if (c->drain_event)
        event_free(c->drain_event);
    flow_free(c);
    xml_stream_free(&c->xs);
    if (c->scratch)
        evbuffer_free(c->scratch);
    free(c);
}

static void tr_free(void *ctx)
{
    conn_t *c = ctx;
    if (c->ops->on_free)
        c->ops->on_free(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        all_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    n_conns--;
    free_conn(c);
}

static void tr_tls_ready(void *ctx)
{
    conn_t *c = ctx;
    if (c->ops->on_secure && !c->closing)
        c->ops->on_secure(c);
}

static const transport_ops_t conn_tr_ops = {
    .on_data = tr_data,
    .on_input_begin = tr_input_begin,
    .on_input_end = tr_input_end,
    .may_read = tr_may_read,
    .on_drained = tr_drained,
    .on_idle = tr_idle,
    .on_quiet = tr_quiet,
    .on_tls_start = tr_tls_start,
    .on_tls_ready = tr_tls_ready,
    .on_close = tr_close,
    .on_free = tr_free,
};

/* ---- life cycle ---- */

/* A conn with its parser, not yet on a transport nor listed.  NULL when
 * out of memory. */
static conn_t *conn_alloc(struct event_base *base, const char *peer, const conn_ops_t *ops,
                          void *data, const xml_stream_limits_t *limits)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->limits = *limits;
    c->xs = xml_stream_new(&xs_callbacks, c, &c->limits);
    if (!c->xs) {
        free(c);
        return NULL;
    }
    c->base = base;
    c->ops = ops;
    c->data = data;
    c->stream_ns = TERN_NS_CLIENT;
    c->max_output = limits->max_stanza_bytes * 4 + 1024 * 1024;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    return c;
}

/* The transport's idle timer fires at half the idle timeout: the first
 * time the stream type pings, the second time the stream ends. */
static transport_params_t conn_params(const conn_t *c, long long idle_ms)
{
    transport_params_t p = {
        .kind = c->ops->kind, .peer = c->peer, .idle_ms = idle_ms / 2, .max_output = c->max_output};
    return p;
}

static void conn_link(conn_t *c)
{
    c->next = all_conns;
    if (all_conns)
        all_conns->prev = c;
    all_conns = c;
    n_conns++;
}

conn_t *conn_new(struct event_base *base, evutil_socket_t fd, const char *peer,
                 const conn_ops_t *ops, void *data, SSL *ssl, const xml_stream_limits_t *limits,
                 long long idle_ms)
{
    conn_t *c = conn_alloc(base, peer, ops, data, limits);
    if (!c) {
        if (ssl)
            SSL_free(ssl);
        evutil_closesocket(fd);
        return NULL;
    }
    transport_params_t params = conn_params(c, idle_ms);
    c->t = transport_new(base, fd, ssl, &params, &conn_tr_ops, c);
    if (!c->t) {
        free_conn(c);
        return NULL;
    }
    conn_link(c);
    return c;
}

conn_t *conn_connect(struct event_base *base, const struct sockaddr *addr, int addrlen,
                     const char *peer, const conn_ops_t *ops, void *data, SSL *ssl,
                     const xml_stream_limits_t *limits, long long idle_ms)
{
    conn_t *c = conn_alloc(base, peer, ops, data, limits);
    if (!c) {
        if (ssl)
            SSL_free(ssl);
        return NULL;
    }
    transport_params_t params = conn_params(c, idle_ms);
    c->t = transport_connect(base, addr, addrlen, ssl, &params, &conn_tr_ops, c);
    if (!c->t) {
        free_conn(c);
        return NULL;
    }
    conn_link(c);
    return c;
}

conn_t *conn_new_framed(struct event_base *base, struct transport *t, const char *peer,
                        const conn_ops_t *ops, void *data, const xml_stream_limits_t *limits,
                        const conn_framing_t *framing, void *framing_ctx)
{
    conn_t *c = conn_alloc(base, peer, ops, data, limits);
    if (!c)
        return NULL;
    if (!(c->scratch = evbuffer_new())) {
        free_conn(c);
        return NULL;
    }
    c->t = t;
    c->framing = framing;
    c->framing_ctx = framing_ctx;
    c->stream_ns = NULL; /* no stream around: every element carries its xmlns */
    conn_link(c);
    return c;
}

const transport_ops_t *conn_transport_ops(void)
{
    return &conn_tr_ops;
}

int conn_framed(const conn_t *c)
{
    return c->framing != NULL;
}

tls_verify_t conn_tls_verify(const conn_t *c)
{
    return transport_tls_verify(c->t);
}

void conn_destroy(conn_t *c)
{
    transport_destroy(c->t);
}

void conn_slow_reader(conn_t *c, const char *why)
{
    transport_slow_reader(c->t, why);
}

SSL *conn_ssl(const conn_t *c)
{
    return transport_ssl(c->t);
}

void conn_set_input_hooks(const conn_input_hooks_t *hooks)
{
    input_hooks = *hooks;
}

/* ---- output ---- */

/* Output to the connection being read may acknowledge what it sent. */
static void before_output(const conn_t *c)
{
    if (c == reading && input_hooks.flush)
        input_hooks.flush();
}

/* Bytes were appended to c's queue.  0, or -1 when `c` was dropped. */
static int queue_output(conn_t *c)
{
    if (transport_queue_output(c->t) < 0)
        return -1;
    if (flow_after_output(c, reading) < 0) {
        conn_slow_reader(c, "out of memory");
        return -1;
    }
    return 0;
}

/* Where an element is written: the transport's queue, or the scratch
 * buffer that the framing layer takes whole. */
static struct evbuffer *out_buf(conn_t *c)
{
    return c->framing ? c->scratch : transport_output(c->t);
}

/* Framed: hand the element in scratch to the framing layer.  0, or -1
 * when `c` was dropped. */
static int frame_out(conn_t *c)
{
    if (!c->framing || evbuffer_get_length(c->scratch) == 0)
        return 0;
    if (c->framing->send(c->framing_ctx, c->scratch) < 0) {
        evbuffer_drain(c->scratch, evbuffer_get_length(c->scratch));
        conn_destroy(c);
        return -1;
    }
    return 0;
}

static int all_space(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n')
            return 0;
    return 1;
}

void conn_write(conn_t *c, const char *data, size_t len)
{
    if (transport_dying(c->t))
        return;
    if (c->framing && all_space(data, len)) { /* a keepalive: no such thing between messages */
        if (c->framing->ping)
            c->framing->ping(c->framing_ctx);
        return;
    }
    before_output(c);
    if (evbuffer_add(out_buf(c), data, len) < 0) {
        conn_destroy(c);
        return;
    }
    if (frame_out(c) == 0)
        queue_output(c);
}

void conn_write_str(conn_t *c, const char *s)
{
    conn_write(c, s, strlen(s));
}

/* 0, or -1 when `c` was dropped. */
static int serialize_into(conn_t *c, const tern_xml_t *node)
{
    /* A stanza that fails half-way cannot be taken back from the stream. */
    if (xml_serialize(node, c->stream_ns, out_buf(c)) < 0) {
        log_info("%s %s: out of memory while sending: closing", c->ops->kind, c->peer);
        conn_destroy(c);
        return -1;
    }
    return frame_out(c);
}

int conn_serialize(conn_t *c, const tern_xml_t *node)
{
    if (serialize_into(c, node) < 0)
        return -1;
    return transport_queue_output(c->t);
}

void conn_send(conn_t *c, const tern_xml_t *node)
{
    if (c->closing)
        return;
    before_output(c);
    if (serialize_into(c, node) == 0)
        queue_output(c);
}

void conn_send_paced(conn_t *c, tern_xml_t *node)
{
    if (c->closing)
        return;
    before_output(c);
    flow_send_paced(c, node, reading);
}

size_t conn_queued(const conn_t *c)
{
    return transport_queued(c->t);
}

void conn_input_hold(conn_t *c)
{
    c->held = 1;
    transport_pause_input(c->t);
}

/* Hand on the stanzas that waited while input was held, as input of
 * their own (the input hooks bracket them), until input is held again. */
static void drain_deferred(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    (void)fd;
    (void)what;
    tr_input_begin(c);
    while (c->deferred && !c->held && !c->closing && flow_may_read(c)) {
        deferred_stanza_t *d = c->deferred;
        c->deferred = d->next;
        if (!c->deferred)
            c->deferred_tail = NULL;
        c->ops->on_stanza(c, d->stanza);
        tern_xml_unref(d->stanza);
        free(d);
    }
    tr_input_end(c);
    if (c->deferred || c->held || c->closing)
        return; /* the next release drains on */
    if (c->close_deferred)
        conn_close(c);
    else
        transport_resume_input(c->t);
}

void conn_input_release(conn_t *c)
{
    if (c->closing)
        return;
    c->held = 0;
    if (!c->deferred) {
        transport_resume_input(c->t);
        return;
    }
    /* From the loop, not from inside the caller (flow control walking its
     * lists, a store read's completion). */
    if (!c->drain_event)
        c->drain_event = event_new(c->base, -1, 0, drain_deferred, c);
    if (c->drain_event)
        event_active(c->drain_event, 0, 0);
    else
        conn_stream_error(c, "resource-constraint", NULL);
}

/* ---- the stream ---- */

void conn_stream_error(conn_t *c, const char *condition, const char *text)
{
    if (c->closing)
        return;
    snprintf(c->ended_with, sizeof(c->ended_with), "%s", condition);
    if (!c->header_sent && c->ops->send_header)
        c->ops->send_header(c);
    if (c->closing || transport_dying(c->t))
        return;
    struct evbuffer *out = out_buf(c);
    if (c->framing) /* a message of its own: the prefix is declared in it */
        evbuffer_add_printf(out, "<stream:error xmlns:stream='%s'>", NS_STREAM);
    else
        evbuffer_add_printf(out, "<stream:error>");
    evbuffer_add_printf(out, "<%s xmlns='%s'/>", condition, NS_STREAMS);
    if (text && *text) {
        evbuffer_add_printf(out, "<text xmlns='%s' xml:lang='en'>", NS_STREAMS);
        xml_escape(text, strlen(text), out);
        evbuffer_add_printf(out, "</text>");
    }
    if (!c->framing) {
        evbuffer_add_printf(out, "</stream:error></stream:stream>");
        transport_close(c->t); /* stop reading; free once the output is flushed */
        return;
    }
    evbuffer_add_printf(out, "</stream:error>");
    if (frame_out(c) < 0)
        return;
    evbuffer_add_printf(out, "<close xmlns='%s'/>", NS_FRAMING);
    if (frame_out(c) < 0)
        return;
    c->framing->close(c->framing_ctx);
}

void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    snprintf(c->ended_with, sizeof(c->ended_with), "close");
    if (c->framing) {
        if (c->header_sent)
            conn_write_str(c, "<close xmlns='" NS_FRAMING "'/>");
        if (!c->closing && !transport_dying(c->t))
            c->framing->close(c->framing_ctx);
        return;
    }
    if (c->header_sent)
        conn_write_str(c, "</stream:stream>");
    transport_close(c->t);
}

void conn_close_all(const char *condition)
{
    conn_t *next;
    for (conn_t *c = all_conns; c; c = next) {
        next = c->next;
        conn_stream_error(c, condition, NULL);
    }
}

void conn_set_idle(conn_t *c, long long ms)
{
    transport_set_idle(c->t, ms / 2);
}

void conn_restart_stream(conn_t *c)
{
    c->header_sent = 0;
    xml_stream_restart(c->xs);
}

void conn_starttls(conn_t *c, SSL *ssl)
{
    transport_starttls(c->t, ssl);
    xml_stream_stop(c->xs);
}
