/*
 * conn.c — stream connections: socket, TLS, parser and output queue.
 *
 * Input: one persistent read event per socket (its timeout is the idle
 * check).  Each wake-up reads once from the socket (TLS reads ahead, so
 * several records cost one read) and feeds the stream parser; a token
 * bucket limits how fast one peer can make us parse.
 *
 * Output: stanzas are queued in `out` and the connection is put on the
 * flush list; once per loop turn, after the events of the turn, every
 * queued connection is written straight to its socket.  Only a socket
 * that refuses bytes gets a write event.  Output past half of max_output
 * makes the connection that produced it wait (flow.c); output that still
 * piles up beyond max_output closes the connection instead of growing
 * without bound.
 *
 * Idle memory: a connection that read or wrote in the last second is on
 * the warm list, oldest first, and keeps its TLS buffers and its parser;
 * a timer takes the quiet ones off the list and frees both.  Freeing them
 * after every record instead costs a busy connection several large
 * allocations per stanza; keeping them costs tens of KiB per idle one.
 */
#include "xmpp/conn.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "tls/tls_io.h"
#include "xmpp/flow.h"
#include "xmpp/stanza.h"

#define READ_CHUNK     16384
#define CLOSE_GRACE_MS 2000
/* Read rate limit per connection: sustained bytes/s, and the burst. */
#define BUCKET_RATE  (256 * 1024)
#define BUCKET_BURST (1024 * 1024)
/* Quiet for this long: free the connection's TLS buffers and parser. */
#define WARM_MS 1000

static conn_t *all_conns;
static size_t n_conns;
static conn_input_hooks_t input_hooks;
static conn_t *reading; /* the connection whose input is being handled */
static struct event *flush_ev;
static conn_t *flush_list;
static conn_t *warm_head, *warm_tail;
static size_t n_warm;
static struct event *cool_ev;

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);
static void write_out(conn_t *c);

size_t conn_count(void)
{
    return n_conns;
}

size_t conn_busy_count(void)
{
    return n_warm;
}

static void xs_open(void *ctx, const char *name, const char *ns, const char **attrs)
{
    conn_t *c = ctx;
    c->ops->on_open(c, name, ns, attrs);
}

static void xs_stanza(void *ctx, tern_xml_t *stanza)
{
    conn_t *c = ctx;
    if (!c->closing)
        c->ops->on_stanza(c, stanza);
    tern_xml_unref(stanza);
}

static void xs_close(void *ctx)
{
    conn_t *c = ctx;
    log_debug("%s %s closed its stream", c->ops->kind, c->peer);
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

/* ---- the flush list: connections with output to write this turn ---- */

static void flush_all(evutil_socket_t fd, short what, void *arg)
{
    while (flush_list) {
        conn_t *c = flush_list;
        flush_list = c->flush_next;
        if (flush_list)
            flush_list->flush_prev = NULL;
        c->flush_next = c->flush_prev = NULL;
        c->flush_queued = 0;
        write_out(c);
    }
}

static void flush_remove(conn_t *c)
{
    if (!c->flush_queued)
        return;
    if (c->flush_prev)
        c->flush_prev->flush_next = c->flush_next;
    else
        flush_list = c->flush_next;
    if (c->flush_next)
        c->flush_next->flush_prev = c->flush_prev;
    c->flush_next = c->flush_prev = NULL;
    c->flush_queued = 0;
}

/* Write `c` at the end of this loop turn: the events already due run
 * first, so what they queue for the same socket leaves in one write. */
static void flush_later(conn_t *c)
{
    if (c->flush_queued || c->dying)
        return;
    c->flush_queued = 1;
    c->flush_prev = NULL;
    c->flush_next = flush_list;
    if (flush_list)
        flush_list->flush_prev = c;
    flush_list = c;
    event_active(flush_ev, 0, 0);
}

static long long now_ms(conn_t *c)
{
    struct timeval tv;
    event_base_gettimeofday_cached(event_get_base(c->read_ev), &tv);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- the warm list: connections that were active in the last WARM_MS ---- */

static void warm_remove(conn_t *c)
{
    if (!c->warm)
        return;
    if (c->warm_prev)
        c->warm_prev->warm_next = c->warm_next;
    else
        warm_head = c->warm_next;
    if (c->warm_next)
        c->warm_next->warm_prev = c->warm_prev;
    else
        warm_tail = c->warm_prev;
    c->warm_prev = c->warm_next = NULL;
    c->warm = 0;
    n_warm--;
}

static void cool_later(long long ms)
{
    if (ms < 100)
        ms = 100; /* release in batches, not one wake-up per connection */
    if (ms > WARM_MS)
        ms = WARM_MS; /* the clock went back */
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(cool_ev, &tv);
}

/* Move `c` to the young end of the warm list. */
static void warm_touch(conn_t *c)
{
    c->active_ms = now_ms(c);
    if (c->warm && !c->warm_next)
        return; /* already the youngest */
    warm_remove(c);
    c->warm = 1;
    n_warm++;
    c->warm_prev = warm_tail;
    if (warm_tail)
        warm_tail->warm_next = c;
    else
        warm_head = c;
    warm_tail = c;
    if (cool_ev && !evtimer_pending(cool_ev, NULL))
        cool_later(WARM_MS);
}

/* Free what a quiet connection can do without until its next byte. */
static void release_idle(conn_t *c)
{
    if (c->xs)
        xml_stream_park(c->xs);
    if (c->ssl && !c->tls_handshaking && !c->ssl_retry_len && !SSL_has_pending(c->ssl) &&
        evbuffer_get_length(c->out) == 0)
        SSL_free_buffers(c->ssl); /* refuses while it holds a partial record */
}

static void cool_down(evutil_socket_t fd, short what, void *arg)
{
    if (!warm_head)
        return;
    long long now = now_ms(warm_head);
    /* (A clock that went back makes the list's times useless: release.) */
    while (warm_head && (now - warm_head->active_ms >= WARM_MS || now < warm_head->active_ms)) {
        conn_t *c = warm_head;
        warm_remove(c);
        if (!c->dying)
            release_idle(c);
    }
    if (warm_head)
        cool_later(warm_head->active_ms + WARM_MS - now);
}

/* ---- reading ---- */

static void refill_tokens(conn_t *c)
{
    long long now = now_ms(c);
    long long gained = (now - c->tokens_at) * BUCKET_RATE / 1000;
    if (gained > 0 || now < c->tokens_at) {
        c->tokens = c->tokens + (gained > 0 ? gained : 0);
        if (c->tokens > BUCKET_BURST)
            c->tokens = BUCKET_BURST;
        c->tokens_at = now;
    }
}

static void reading_on(conn_t *c)
{
    if (!c->reading_off || c->closing || !flow_may_read(c))
        return;
    c->reading_off = 0;
    long long half = c->idle_ms / 2;
    struct timeval tv = {half / 1000, (half % 1000) * 1000};
    /* A common timeout (the connections share a few durations): libevent
     * re-arms it after every read, and for a common one that is a list
     * append instead of a heap update. */
    const struct timeval *common =
        c->idle_ms > 0 ? event_base_init_common_timeout(event_get_base(c->read_ev), &tv) : NULL;
    event_add(c->read_ev, c->idle_ms > 0 ? (common ? common : &tv) : NULL);
    /* TLS may hold records it read ahead: the socket will not tell. */
    if (c->ssl && SSL_has_pending(c->ssl))
        event_active(c->read_ev, EV_READ, 0);
}

static void reading_off(conn_t *c)
{
    if (c->reading_off)
        return;
    c->reading_off = 1;
    event_del(c->read_ev);
}

static void throttle_over(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    refill_tokens(c);
    reading_on(c);
}

/* Over the rate limit: stop reading until the bucket holds bytes again. */
static void throttle(conn_t *c)
{
    if (!c->throttle_timer)
        c->throttle_timer = evtimer_new(event_get_base(c->read_ev), throttle_over, c);
    if (!c->throttle_timer)
        return;
    /* Wake when a full chunk may be read, not for every few bytes. */
    long long wait_ms = (READ_CHUNK - c->tokens) * 1000 / BUCKET_RATE + 1;
    struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};
    reading_off(c);
    evtimer_add(c->throttle_timer, &tv);
}

/* Log a failed TLS call; the connection's TLS is broken from then on (no
 * close_notify may follow a fatal error). */
static void log_tls_error(conn_t *c, const char *during)
{
    c->tls_broken = 1;
    unsigned long e = ERR_get_error();
    if (e)
        log_info("%s %s: TLS error during %s: %s", c->ops->kind, c->peer, during,
                 ERR_reason_error_string(e));
    else
        log_debug("%s %s: connection lost during %s", c->ops->kind, c->peer, during);
    ERR_clear_error();
}

/* One read from the socket: > 0 bytes, 0 nothing now, -1 gone. */
static int read_some(conn_t *c, char *buf, size_t want)
{
    size_t got = 0;
    switch (tls_io_read(c->ssl, c->fd, buf, want, &got)) {
    case TLS_IO_OK:
        return (int)got;
    case TLS_IO_WANT_READ:
        return 0;
    case TLS_IO_WANT_WRITE:
        c->read_wants_write = 1;
        event_add(c->write_ev, NULL);
        return 0;
    case TLS_IO_CLOSED:
        log_debug("%s %s: %s", c->ops->kind, c->peer,
                  c->ssl ? "TLS closed by the peer" : "connection closed");
        return -1;
    default:
        if (c->ssl)
            log_tls_error(c, "read");
        else
            log_debug("%s %s: connection closed", c->ops->kind, c->peer);
        return -1;
    }
}

static void start_tls(conn_t *c);

/* Feed what the socket has (and what TLS read ahead) to the parser. */
static void read_input(conn_t *c)
{
    char chunk[READ_CHUNK];
    if (c->reading_off)
        return; /* held by flow control; a wake-up queued before that */
    refill_tokens(c);
    if (c->tokens <= 0) {
        throttle(c);
        return;
    }
    reading = c;
    if (input_hooks.begin)
        input_hooks.begin();
    long long budget = c->tokens;
    int gone = 0;
    while (!c->closing && !c->starttls_ssl && !c->reading_off && budget > 0) {
        size_t want = budget < READ_CHUNK ? (size_t)budget : sizeof(chunk);
        int n = read_some(c, chunk, want);
        if (n < 0)
            gone = 1;
        if (n <= 0)
            break;
        c->idle_strikes = 0;
        warm_touch(c);
        budget -= n;
        c->tokens -= n;
        if (xml_stream_feed(c->xs, chunk, (size_t)n) < 0)
            break;
        /* Read again only what TLS already holds: the socket is level
         * triggered and wakes us for the rest. */
        if (!c->ssl || !SSL_has_pending(c->ssl))
            break;
    }
    if (input_hooks.end)
        input_hooks.end();
    reading = NULL;
    if (gone) {
        conn_destroy(c);
        return;
    }
    if (c->starttls_ssl && !c->closing) {
        start_tls(c);
        return;
    }
    if (c->reading_off)
        return; /* a recipient is full: flow control reads on later */
    if (!c->closing && c->tokens <= 0)
        throttle(c);
    else if (!c->closing && c->ssl && SSL_has_pending(c->ssl))
        event_active(c->read_ev, EV_READ, 0); /* the rest, after the others' turn */
}

/* ---- writing ---- */

/* Write what is queued until done or the socket is full. */
static void write_out(conn_t *c)
{
    if (c->dying || c->tls_handshaking || c->write_wants_read)
        return;
    if (c->ssl && evbuffer_get_length(c->out) > 0)
        warm_touch(c);
    size_t before = evbuffer_get_length(c->out);
    int rc = tls_io_flush(c->ssl, c->fd, c->out, &c->ssl_retry_len);
    if ((rc == TLS_IO_OK || rc == TLS_IO_WANT_WRITE) && evbuffer_get_length(c->out) < before) {
        flow_drained(c); /* may queue held stanzas: then written next */
        if (c->dying)
            return;
    }
    switch (rc) {
    case TLS_IO_OK:
        if (evbuffer_get_length(c->out) > 0) {
            flush_later(c);
            return;
        }
        break;
    case TLS_IO_WANT_WRITE:
        event_add(c->write_ev, NULL);
        return;
    case TLS_IO_WANT_READ:
        c->write_wants_read = 1;
        return;
    default:
        if (c->ssl)
            log_tls_error(c, "write");
        else
            log_debug("%s %s: connection lost while writing", c->ops->kind, c->peer);
        conn_destroy(c);
        return;
    }
    /* All out. */
    if (c->starttls_ssl && !c->closing)
        start_tls(c);
    else if (c->closing)
        conn_destroy(c);
}

void conn_slow_reader(conn_t *c, const char *why)
{
    log_info("%s %s: reader too slow, %zu bytes queued (%s): closing", c->ops->kind, c->peer,
             evbuffer_get_length(c->out), why);
    conn_destroy(c);
}

/* 0, or -1 when `c` was dropped. */
static int queue_output(conn_t *c)
{
    if (evbuffer_get_length(c->out) > c->max_output) {
        conn_slow_reader(c, "over the output limit");
        return -1;
    }
    if (flow_after_output(c, reading) < 0) {
        conn_slow_reader(c, "out of memory");
        return -1;
    }
    flush_later(c);
    return 0;
}

/* ---- TLS ---- */

static void handshake(conn_t *c)
{
    warm_touch(c);
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_handshaking = 0;
        if (evbuffer_get_length(c->out) > 0)
            flush_later(c);
        if (SSL_has_pending(c->ssl))
            event_active(c->read_ev, EV_READ, 0);
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return;
    case SSL_ERROR_WANT_WRITE:
        event_add(c->write_ev, NULL);
        return;
    default:
        log_tls_error(c, "the handshake");
        conn_destroy(c);
    }
}

static int attach_tls(conn_t *c, SSL *ssl)
{
    if (!SSL_set_fd(ssl, (int)c->fd))
        return -1;
    SSL_set_accept_state(ssl);
    /* One read takes every record the socket holds. */
    SSL_set_read_ahead(ssl, 1);
    c->ssl = ssl;
    c->tls_handshaking = 1;
    return 0;
}

/* After <proceed/> has left: TLS on the same socket, a new parser. */
static void start_tls(conn_t *c)
{
    if (evbuffer_get_length(c->out) > 0) {
        reading_off(c); /* nothing is read until TLS starts */
        flush_later(c);
        return;
    }
    SSL *ssl = c->starttls_ssl;
    c->starttls_ssl = NULL;
    xml_stream_free(&c->xs);
    c->xs = xml_stream_new(&xs_callbacks, c, &c->limits);
    if (!c->xs || attach_tls(c, ssl) < 0) {
        if (!c->ssl)
            SSL_free(ssl);
        conn_destroy(c);
        return;
    }
    c->header_sent = 0;
    reading_on(c);
}

/* ---- events ---- */

static void on_idle_timeout(conn_t *c)
{
    if (c->closing)
        return;
    if (c->idle_strikes++ == 0 && c->ops->on_idle) {
        c->ops->on_idle(c);
    } else {
        log_info("%s %s: idle timeout", c->ops->kind, c->peer);
        conn_stream_error(c, "connection-timeout", NULL);
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    if (c->dying)
        return;
    if (what & EV_TIMEOUT) {
        on_idle_timeout(c);
        return;
    }
    if (c->tls_handshaking) {
        handshake(c);
        return;
    }
    if (c->write_wants_read) {
        c->write_wants_read = 0;
        flush_later(c);
    }
    read_input(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    if (c->dying)
        return;
    if (c->tls_handshaking) {
        handshake(c);
        return;
    }
    if (c->read_wants_write) {
        c->read_wants_write = 0;
        read_input(c);
    }
    write_out(c);
}

/* ---- life cycle ---- */

/* Before the socket closes, tell a TLS peer the stream ends here and not
 * because someone cut it (close_notify, RFC 8446 §6.1 / RFC 5246 §7.2.1),
 * whichever side ended the stream.  Only when all output went out: the
 * alert says nothing was lost, so a connection dropped with output still
 * queued (a too slow reader, the grace period over) ends without it.
 * The socket just took the rest, so the alert's few bytes fit; if they do
 * not, the alert is lost rather than waited for.  Never after a fatal TLS
 * error, during a handshake or with a record half written. */
static void send_close_notify(conn_t *c)
{
    if (!c->ssl || c->tls_broken || c->tls_handshaking || c->ssl_retry_len ||
        (c->out && evbuffer_get_length(c->out) > 0) || !SSL_is_init_finished(c->ssl) ||
        (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN))
        return;
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
}

/* Free what `c` holds (any part may be missing on a failed start), its
 * socket, and `c`. */
static void free_parts(conn_t *c)
{
    send_close_notify(c);
    if (c->close_timer)
        event_free(c->close_timer);
    if (c->throttle_timer)
        event_free(c->throttle_timer);
    flow_free(c);
    if (c->read_ev)
        event_free(c->read_ev);
    if (c->write_ev)
        event_free(c->write_ev);
    if (c->out)
        evbuffer_free(c->out);
    if (c->starttls_ssl)
        SSL_free(c->starttls_ssl);
    if (c->ssl)
        SSL_free(c->ssl);
    evutil_closesocket(c->fd);
    xml_stream_free(&c->xs);
    free(c);
}

conn_t *conn_new(struct event_base *base, evutil_socket_t fd, const char *peer,
                 const conn_ops_t *ops, void *data, SSL *ssl, const xml_stream_limits_t *limits,
                 long long idle_ms)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        if (ssl)
            SSL_free(ssl);
        evutil_closesocket(fd);
        return NULL;
    }
    c->fd = fd;
    c->ops = ops;
    c->data = data;
    c->limits = *limits;
    c->idle_ms = idle_ms;
    c->stream_ns = TERN_NS_CLIENT;
    c->max_output = limits->max_stanza_bytes * 4 + 1024 * 1024;
    c->tokens = BUCKET_BURST;
    c->reading_off = 1;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    if (!flush_ev)
        flush_ev = event_new(base, -1, 0, flush_all, NULL);
    if (!cool_ev)
        cool_ev = evtimer_new(base, cool_down, NULL);
    c->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->write_ev = event_new(base, fd, EV_WRITE, on_writable, c);
    c->out = evbuffer_new();
    c->xs = xml_stream_new(&xs_callbacks, c, &c->limits);
    if (!flush_ev || !cool_ev || !c->read_ev || !c->write_ev || !c->out || !c->xs ||
        (ssl && attach_tls(c, ssl) < 0)) {
        if (ssl && !c->ssl)
            SSL_free(ssl);
        free_parts(c);
        return NULL;
    }
    c->tokens_at = now_ms(c);
    reading_on(c);
    c->next = all_conns;
    if (all_conns)
        all_conns->prev = c;
    all_conns = c;
    n_conns++;
    return c;
}

static void really_free(conn_t *c)
{
    if (c->ops->on_free)
        c->ops->on_free(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        all_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    n_conns--;
    flush_remove(c);
    warm_remove(c);
    free_parts(c);
    if (n_conns == 0 && flush_ev) {
        event_free(flush_ev);
        flush_ev = NULL;
    }
    if (n_conns == 0 && cool_ev) {
        event_free(cool_ev);
        cool_ev = NULL;
    }
}

static void close_timeout(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    if (c->dying)
        really_free(c);
    else
        conn_destroy(c);
}

/* Mark closing and tell the stream type once. */
static void mark_closing(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    flow_forget(c); /* its senders read on; what was held back is dropped */
    if (c->xs)
        xml_stream_stop(c->xs);
    if (c->ops->on_closing)
        c->ops->on_closing(c);
}

void conn_destroy(conn_t *c)
{
    if (c->dying)
        return;
    mark_closing(c);
    c->dying = 1;
    reading_off(c);
    event_del(c->write_ev);
    if (c->throttle_timer)
        event_del(c->throttle_timer);
    flush_remove(c);
    if (!c->close_timer)
        c->close_timer = evtimer_new(event_get_base(c->read_ev), close_timeout, c);
    if (!c->close_timer) {
        really_free(c); /* out of memory: no safer choice left */
        return;
    }
    struct timeval now = {0, 0};
    evtimer_add(c->close_timer, &now);
}

/* Stop reading; free once the output is flushed, or after a grace period. */
static void finish(conn_t *c)
{
    if (c->closing)
        return;
    mark_closing(c);
    reading_off(c);
    if (c->throttle_timer)
        event_del(c->throttle_timer);
    flush_remove(c);
    write_out(c); /* destroys the connection once all is out */
    if (c->dying)
        return;
    c->close_timer = evtimer_new(event_get_base(c->read_ev), close_timeout, c);
    struct timeval tv = {CLOSE_GRACE_MS / 1000, (CLOSE_GRACE_MS % 1000) * 1000};
    if (c->close_timer)
        evtimer_add(c->close_timer, &tv);
    else
        conn_destroy(c);
}

void conn_set_input_hooks(const conn_input_hooks_t *hooks)
{
    input_hooks = *hooks;
}

/* Output to the connection being read may acknowledge what it sent. */
static void before_output(const conn_t *c)
{
    if (c == reading && input_hooks.flush)
        input_hooks.flush();
}

void conn_write(conn_t *c, const char *data, size_t len)
{
    if (c->dying)
        return;
    before_output(c);
    if (evbuffer_add(c->out, data, len) < 0) {
        conn_destroy(c);
        return;
    }
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
    if (xml_serialize(node, c->stream_ns, c->out) < 0) {
        log_info("%s %s: out of memory while sending: closing", c->ops->kind, c->peer);
        conn_destroy(c);
        return -1;
    }
    return 0;
}

int conn_serialize(conn_t *c, const tern_xml_t *node)
{
    if (serialize_into(c, node) < 0)
        return -1;
    if (evbuffer_get_length(c->out) > c->max_output) {
        conn_slow_reader(c, "over the output limit");
        return -1;
    }
    flush_later(c);
    return 0;
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
    return evbuffer_get_length(c->out);
}

void conn_input_hold(conn_t *c)
{
    reading_off(c);
}

void conn_input_release(conn_t *c)
{
    if (c->closing || (c->throttle_timer && evtimer_pending(c->throttle_timer, NULL)))
        return; /* closing, or the rate limit's timer reads on */
    reading_on(c);
}

void conn_stream_error(conn_t *c, const char *condition, const char *text)
{
    if (c->closing)
        return;
    if (!c->header_sent && c->ops->send_header)
        c->ops->send_header(c);
    struct evbuffer *out = c->out;
    evbuffer_add_printf(out, "<stream:error><%s xmlns='%s'/>", condition, NS_STREAMS);
    if (text && *text) {
        evbuffer_add_printf(out, "<text xmlns='%s' xml:lang='en'>", NS_STREAMS);
        xml_escape(text, strlen(text), out);
        evbuffer_add_printf(out, "</text>");
    }
    evbuffer_add_printf(out, "</stream:error></stream:stream>");
    finish(c);
}

void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    if (c->header_sent)
        conn_write_str(c, "</stream:stream>");
    finish(c);
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
    c->idle_ms = ms;
    if (!c->reading_off) {
        reading_off(c);
        reading_on(c);
    }
}

void conn_restart_stream(conn_t *c)
{
    c->header_sent = 0;
    xml_stream_restart(c->xs);
}

void conn_starttls(conn_t *c, SSL *ssl)
{
    c->starttls_ssl = ssl;
    xml_stream_stop(c->xs);
}
