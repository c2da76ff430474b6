/*
 * transport.c — byte transports: socket, TLS, rate limit, idle timer and
 * output queue (see transport.h for the interface and its callbacks).
 *
 * Input: one persistent read event per socket (its timeout is the idle
 * check).  Each wake-up reads once from the socket (TLS reads ahead, so
 * several records cost one read) and hands the bytes to the framing; a
 * token bucket limits how fast one peer can make us parse.
 *
 * Output: the framing appends to `out` and the transport is put on the
 * flush list; once per loop turn, after the events of the turn, every
 * queued transport is written straight to its socket.  Only a socket that
 * refuses bytes gets a write event.  Output that piles up beyond
 * max_output closes the transport instead of growing without bound.
 *
 * Idle memory: a transport that read or wrote in the last second is on
 * the warm list, oldest first, and keeps its TLS buffers (and the framing
 * its parser); a timer takes the quiet ones off the list and frees both.
 * Freeing them after every record instead costs a busy connection several
 * large allocations per stanza; keeping them costs tens of KiB per idle one.
 *
 * Includes util/log.h for logging, and nothing else above src/tls.
 */
#include "net/transport.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/log.h"
#include "tls/tls_io.h"

#define READ_CHUNK     16384
#define CLOSE_GRACE_MS 2000
/* Read rate limit per transport: sustained bytes/s, and the burst. */
#define BUCKET_RATE  (256 * 1024)
#define BUCKET_BURST (1024 * 1024)
/* Quiet for this long: free the TLS buffers (and the framing's parser). */
#define WARM_MS 1000

struct transport {
    struct transport *flush_prev, *flush_next; /* with output to write this turn */
    int flush_queued;
    struct transport *warm_prev, *warm_next; /* holding TLS buffers or a parser */
    int warm;
    long long active_ms; /* last read or write, for the warm list */
    struct event_base *base;
    evutil_socket_t fd;
    struct event *read_ev;        /* persistent, with the idle timeout */
    struct event *write_ev;       /* one-shot, added when the socket is full */
    struct event *throttle_timer; /* reading resumes when the bucket refills */
    struct event *close_timer;
    struct evbuffer *out; /* plaintext not yet taken by the socket or TLS */
    SSL *ssl;             /* once TLS is up (or being negotiated) */
    SSL *starttls_ssl;    /* TLS to start once the queued output is out */
    SSL *connect_ssl;     /* direct TLS to start once connected */
    int tls_handshaking;
    int tls_client;       /* ssl is the client side: its peer's certificate is checked */
    tls_verify_t verify;  /* ... with this outcome */
    int tls_broken;       /* a TLS call failed fatally: no close_notify */
    int ssl_retry_len;    /* an SSL_write to repeat with the same length */
    int read_wants_write; /* TLS needs the socket writable to read on */
    int write_wants_read; /* ... or readable to write on */
    int reading_off;      /* throttled, held or closing: the read event is not pending */
    int connecting;       /* an outgoing connect is in progress */
    int connect_err;      /* connect() failed at once with this errno */
    long long tokens;     /* read rate limit: bytes we may still read now */
    long long tokens_at;  /* when they were counted, ms */
    const transport_ops_t *ops;
    void *ctx;
    const char *kind;
    char peer[64];
    int closing; /* no more input is read */
    int dying;   /* the free is scheduled */
    long long idle_ms;
    size_t max_output;
};

static size_t n_transports;
static struct event *flush_ev;
static transport_t *flush_list;
static transport_t *warm_head, *warm_tail;
static size_t n_warm;
static struct event *cool_ev;

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);
static void write_out(transport_t *t);
static void destroy_for(transport_t *t, transport_reason_t reason);

size_t transport_busy_count(void)
{
    return n_warm;
}

/* ---- the flush list: transports with output to write this turn ---- */

static void flush_all(evutil_socket_t fd, short what, void *arg)
{
    while (flush_list) {
        transport_t *t = flush_list;
        flush_list = t->flush_next;
        if (flush_list)
            flush_list->flush_prev = NULL;
        t->flush_next = t->flush_prev = NULL;
        t->flush_queued = 0;
        write_out(t);
    }
}

static void flush_remove(transport_t *t)
{
    if (!t->flush_queued)
        return;
    if (t->flush_prev)
        t->flush_prev->flush_next = t->flush_next;
    else
        flush_list = t->flush_next;
    if (t->flush_next)
        t->flush_next->flush_prev = t->flush_prev;
    t->flush_next = t->flush_prev = NULL;
    t->flush_queued = 0;
}

/* Write `t` at the end of this loop turn: the events already due run
 * first, so what they queue for the same socket leaves in one write. */
static void flush_later(transport_t *t)
{
    if (t->flush_queued || t->dying)
        return;
    t->flush_queued = 1;
    t->flush_prev = NULL;
    t->flush_next = flush_list;
    if (flush_list)
        flush_list->flush_prev = t;
    flush_list = t;
    event_active(flush_ev, 0, 0);
}

static long long now_ms(const transport_t *t)
{
    struct timeval tv;
    event_base_gettimeofday_cached(t->base, &tv);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- the warm list: transports that were active in the last WARM_MS ---- */

static void warm_remove(transport_t *t)
{
    if (!t->warm)
        return;
    if (t->warm_prev)
        t->warm_prev->warm_next = t->warm_next;
    else
        warm_head = t->warm_next;
    if (t->warm_next)
        t->warm_next->warm_prev = t->warm_prev;
    else
        warm_tail = t->warm_prev;
    t->warm_prev = t->warm_next = NULL;
    t->warm = 0;
    n_warm--;
}

static void cool_later(long long ms)
{
    if (ms < 100)
        ms = 100; /* release in batches, not one wake-up per transport */
    if (ms > WARM_MS)
        ms = WARM_MS; /* the clock went back */
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(cool_ev, &tv);
}

/* Move `t` to the young end of the warm list. */
static void warm_touch(transport_t *t)
{
    t->active_ms = now_ms(t);
    if (t->warm && !t->warm_next)
        return; /* already the youngest */
    warm_remove(t);
    t->warm = 1;
    n_warm++;
    t->warm_prev = warm_tail;
    if (warm_tail)
        warm_tail->warm_next = t;
    else
        warm_head = t;
    warm_tail = t;
    if (cool_ev && !evtimer_pending(cool_ev, NULL))
        cool_later(WARM_MS);
}

/* Free what a quiet transport can do without until its next byte. */
static void release_idle(transport_t *t)
{
    if (t->ops->on_quiet)
        t->ops->on_quiet(t->ctx);
    if (t->ssl && !t->tls_handshaking && !t->ssl_retry_len && !SSL_has_pending(t->ssl) &&
        evbuffer_get_length(t->out) == 0)
        SSL_free_buffers(t->ssl); /* refuses while it holds a partial record */
}

static void cool_down(evutil_socket_t fd, short what, void *arg)
{
    if (!warm_head)
        return;
    long long now = now_ms(warm_head);
    /* (A clock that went back makes the list's times useless: release.) */
    while (warm_head && (now - warm_head->active_ms >= WARM_MS || now < warm_head->active_ms)) {
        transport_t *t = warm_head;
        warm_remove(t);
        if (!t->dying)
            release_idle(t);
    }
    if (warm_head)
        cool_later(warm_head->active_ms + WARM_MS - now);
}

/* ---- reading ---- */

static void refill_tokens(transport_t *t)
{
    long long now = now_ms(t);
    long long gained = (now - t->tokens_at) * BUCKET_RATE / 1000;
    if (gained > 0 || now < t->tokens_at) {
        t->tokens = t->tokens + (gained > 0 ? gained : 0);
        if (t->tokens > BUCKET_BURST)
            t->tokens = BUCKET_BURST;
        t->tokens_at = now;
    }
}

static void reading_on(transport_t *t)
{
    if (!t->reading_off || t->closing || t->connecting ||
        (t->ops->may_read && !t->ops->may_read(t->ctx)))
        return;
    t->reading_off = 0;
    long long ms = t->idle_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    /* A common timeout (the connections share a few durations): libevent
     * re-arms it after every read, and for a common one that is a list
     * append instead of a heap update. */
    const struct timeval *common =
        ms > 0 ? event_base_init_common_timeout(event_get_base(t->read_ev), &tv) : NULL;
    event_add(t->read_ev, ms > 0 ? (common ? common : &tv) : NULL);
    /* TLS may hold records it read ahead: the socket will not tell. */
    if (t->ssl && SSL_has_pending(t->ssl))
        event_active(t->read_ev, EV_READ, 0);
}

static void reading_off(transport_t *t)
{
    if (t->reading_off)
        return;
    t->reading_off = 1;
    event_del(t->read_ev);
}

static void throttle_over(evutil_socket_t fd, short what, void *arg)
{
    transport_t *t = arg;
    refill_tokens(t);
    reading_on(t);
}

/* Over the rate limit: stop reading until the bucket holds bytes again. */
static void throttle(transport_t *t)
{
    if (!t->throttle_timer)
        t->throttle_timer = evtimer_new(t->base, throttle_over, t);
    if (!t->throttle_timer)
        return;
    /* Wake when a full chunk may be read, not for every few bytes. */
    long long wait_ms = (READ_CHUNK - t->tokens) * 1000 / BUCKET_RATE + 1;
    struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};
    reading_off(t);
    evtimer_add(t->throttle_timer, &tv);
}

/* Log a failed TLS call; the transport's TLS is broken from then on (no
 * close_notify may follow a fatal error). */
static void log_tls_error(transport_t *t, const char *during)
{
    t->tls_broken = 1;
    unsigned long e = ERR_get_error();
    if (t->tls_client && t->verify != TLS_VERIFY_OK && t->verify != TLS_VERIFY_PENDING)
        log_info("%s %s: TLS error during %s: %s", t->kind, t->peer, during,
                 tls_verify_str(t->verify));
    else if (e)
        log_info("%s %s: TLS error during %s: %s", t->kind, t->peer, during,
                 ERR_reason_error_string(e));
    else
        log_debug("%s %s: connection lost during %s", t->kind, t->peer, during);
    ERR_clear_error();
}

/* One read from the socket: > 0 bytes, 0 nothing now, -1 gone (*why says
 * how). */
static int read_some(transport_t *t, char *buf, size_t want, transport_reason_t *why)
{
    size_t got = 0;
    switch (tls_io_read(t->ssl, t->fd, buf, want, &got)) {
    case TLS_IO_OK:
        return (int)got;
    case TLS_IO_WANT_READ:
        return 0;
    case TLS_IO_WANT_WRITE:
        t->read_wants_write = 1;
        event_add(t->write_ev, NULL);
        return 0;
    case TLS_IO_CLOSED:
        log_debug("%s %s: %s", t->kind, t->peer,
                  t->ssl ? "TLS closed by the peer" : "connection closed");
        *why = TRANSPORT_CLOSED_PEER;
        return -1;
    default:
        if (t->ssl) {
            log_tls_error(t, "read");
            *why = TRANSPORT_TLS_ERROR;
        } else {
            log_debug("%s %s: connection closed", t->kind, t->peer);
            *why = TRANSPORT_ERROR;
        }
        return -1;
    }
}

static void start_tls(transport_t *t);

/* Hand what the socket has (and what TLS read ahead) to the framing. */
static void read_input(transport_t *t)
{
    char chunk[READ_CHUNK];
    if (t->reading_off)
        return; /* held by flow control; a wake-up queued before that */
    refill_tokens(t);
    if (t->tokens <= 0) {
        throttle(t);
        return;
    }
    if (t->ops->on_input_begin)
        t->ops->on_input_begin(t->ctx);
    long long budget = t->tokens;
    int gone = 0;
    transport_reason_t why = TRANSPORT_CLOSED_PEER;
    while (!t->closing && !t->starttls_ssl && !t->reading_off && budget > 0) {
        size_t want = budget < READ_CHUNK ? (size_t)budget : sizeof(chunk);
        int n = read_some(t, chunk, want, &why);
        if (n < 0)
            gone = 1;
        if (n <= 0)
            break;
        warm_touch(t);
        budget -= n;
        t->tokens -= n;
        if (t->ops->on_data(t->ctx, chunk, (size_t)n) < 0)
            break;
        /* Read again only what TLS already holds: the socket is level
         * triggered and wakes us for the rest. */
        if (!t->ssl || !SSL_has_pending(t->ssl))
            break;
    }
    if (t->ops->on_input_end)
        t->ops->on_input_end(t->ctx);
    if (gone) {
        destroy_for(t, why);
        return;
    }
    if (t->starttls_ssl && !t->closing) {
        start_tls(t);
        return;
    }
    if (t->reading_off)
        return; /* a recipient is full: flow control reads on later */
    if (!t->closing && t->tokens <= 0)
        throttle(t);
    else if (!t->closing && t->ssl && SSL_has_pending(t->ssl))
        event_active(t->read_ev, EV_READ, 0); /* the rest, after the others' turn */
}

/* ---- writing ---- */

/* Write what is queued until done or the socket is full. */
static void write_out(transport_t *t)
{
    if (t->dying || t->tls_handshaking || t->write_wants_read || t->connecting)
        return;
    if (t->ssl && evbuffer_get_length(t->out) > 0)
        warm_touch(t);
    size_t before = evbuffer_get_length(t->out);
    tls_io_t rc = tls_io_flush(t->ssl, t->fd, t->out, &t->ssl_retry_len);
    if ((rc == TLS_IO_OK || rc == TLS_IO_WANT_WRITE) && evbuffer_get_length(t->out) < before &&
        t->ops->on_drained) {
        t->ops->on_drained(t->ctx); /* may queue more: then written next */
        if (t->dying)
            return;
    }
    switch (rc) {
    case TLS_IO_OK:
        if (evbuffer_get_length(t->out) > 0) {
            flush_later(t);
            return;
        }
        break;
    case TLS_IO_WANT_WRITE:
        event_add(t->write_ev, NULL);
        return;
    case TLS_IO_WANT_READ:
        t->write_wants_read = 1;
        return;
    default:
        if (t->ssl)
            log_tls_error(t, "write");
        else
            log_debug("%s %s: connection lost while writing", t->kind, t->peer);
        destroy_for(t, t->ssl ? TRANSPORT_TLS_ERROR : TRANSPORT_ERROR);
        return;
    }
    /* All out. */
    if (t->starttls_ssl && !t->closing)
        start_tls(t);
    else if (t->closing)
        destroy_for(t, TRANSPORT_CLOSED_LOCAL);
}

void transport_slow_reader(transport_t *t, const char *why)
{
    if (t->dying)
        return;
    log_info("%s %s: reader too slow, %zu bytes queued (%s): closing", t->kind, t->peer,
             evbuffer_get_length(t->out), why);
    destroy_for(t, TRANSPORT_SLOW_READER);
}

struct evbuffer *transport_output(transport_t *t)
{
    return t->out;
}

int transport_queue_output(transport_t *t)
{
    if (t->dying)
        return -1;
    if (evbuffer_get_length(t->out) > t->max_output) {
        transport_slow_reader(t, "over the output limit");
        return -1;
    }
    flush_later(t);
    return 0;
}

size_t transport_queued(const transport_t *t)
{
    return evbuffer_get_length(t->out);
}

size_t transport_max_output(const transport_t *t)
{
    return t->max_output;
}

/* ---- TLS ---- */

static void handshake(transport_t *t)
{
    warm_touch(t);
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->tls_handshaking = 0;
        if (t->tls_client)
            t->verify = tls_verify_result(t->ssl);
        if (evbuffer_get_length(t->out) > 0)
            flush_later(t);
        if (SSL_has_pending(t->ssl))
            event_active(t->read_ev, EV_READ, 0);
        if (t->ops->on_tls_ready)
            t->ops->on_tls_ready(t->ctx);
        return;
    }
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return;
    case SSL_ERROR_WANT_WRITE:
        event_add(t->write_ev, NULL);
        return;
    default:
        if (t->tls_client)
            t->verify = tls_verify_result(t->ssl);
        log_tls_error(t, "the handshake");
        destroy_for(t, TRANSPORT_TLS_ERROR);
    }
}

static int attach_tls(transport_t *t, SSL *ssl)
{
    if (!SSL_set_fd(ssl, (int)t->fd))
        return -1;
    /* An SSL the caller put in connect state is the client side; any other
     * answers (tls_server_ssl() leaves the state to us). */
    if (SSL_is_server(ssl))
        SSL_set_accept_state(ssl);
    else
        t->tls_client = 1;
    /* One read takes every record the socket holds. */
    SSL_set_read_ahead(ssl, 1);
    t->ssl = ssl;
    t->tls_handshaking = 1;
    t->verify = TLS_VERIFY_PENDING;
    return 0;
}

/* The client speaks first in a handshake: start it from the loop, so no
 * callback runs under the caller's feet. */
static void kick_client_handshake(transport_t *t)
{
    if (t->tls_client && t->tls_handshaking)
        event_active(t->write_ev, EV_WRITE, 0);
}

/* After the queued output (<proceed/>) has left: TLS on the same socket. */
static void start_tls(transport_t *t)
{
    if (evbuffer_get_length(t->out) > 0) {
        reading_off(t); /* nothing is read until TLS starts */
        flush_later(t);
        return;
    }
    SSL *ssl = t->starttls_ssl;
    t->starttls_ssl = NULL;
    if (attach_tls(t, ssl) < 0) {
        SSL_free(ssl);
        destroy_for(t, TRANSPORT_TLS_ERROR);
        return;
    }
    if (t->ops->on_tls_start && t->ops->on_tls_start(t->ctx) < 0) {
        destroy_for(t, TRANSPORT_CLOSED_LOCAL);
        return;
    }
    reading_on(t);
    kick_client_handshake(t);
}

void transport_starttls(transport_t *t, SSL *ssl)
{
    if (t->dying || t->ssl || t->starttls_ssl) {
        SSL_free(ssl);
        return;
    }
    t->starttls_ssl = ssl;
    if (!t->connecting && evbuffer_get_length(t->out) == 0)
        flush_later(t); /* nothing to wait for: switch at the end of this turn */
}

SSL *transport_ssl(const transport_t *t)
{
    return t->ssl;
}

tls_verify_t transport_tls_verify(const transport_t *t)
{
    return t->verify;
}

/* ---- events ---- */

/* An outgoing connect finished (or failed, or timed out). */
static void connected(transport_t *t, short what)
{
    int err = t->connect_err;
    socklen_t len = sizeof(err);
    if (!err && (what & EV_TIMEOUT))
        err = ETIMEDOUT;
    if (!err && getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        log_info("%s %s: cannot connect: %s", t->kind, t->peer, strerror(err));
        destroy_for(t, TRANSPORT_CONNECT_FAILED);
        return;
    }
    t->connecting = 0;
    warm_touch(t);
    if (t->ops->on_connected)
        t->ops->on_connected(t->ctx);
    if (t->dying)
        return;
    if (t->connect_ssl) {
        SSL *ssl = t->connect_ssl;
        t->connect_ssl = NULL;
        if (attach_tls(t, ssl) < 0) {
            SSL_free(ssl);
            destroy_for(t, TRANSPORT_TLS_ERROR);
            return;
        }
    }
    reading_on(t);
    if (t->tls_handshaking)
        handshake(t);
    else if (t->starttls_ssl)
        start_tls(t);
    else if (evbuffer_get_length(t->out) > 0)
        flush_later(t);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    transport_t *t = arg;
    if (t->dying)
        return;
    if (what & EV_TIMEOUT) {
        if (!t->closing && t->ops->on_idle)
            t->ops->on_idle(t->ctx);
        return;
    }
    if (t->tls_handshaking) {
        handshake(t);
        return;
    }
    if (t->write_wants_read) {
        t->write_wants_read = 0;
        flush_later(t);
    }
    read_input(t);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    transport_t *t = arg;
    if (t->dying)
        return;
    if (t->connecting) {
        connected(t, what);
        return;
    }
    if (t->tls_handshaking) {
        handshake(t);
        return;
    }
    if (t->read_wants_write) {
        t->read_wants_write = 0;
        read_input(t);
    }
    write_out(t);
}

/* ---- life cycle ---- */

/* Before the socket closes, tell a TLS peer the stream ends here and not
 * because someone cut it (close_notify, RFC 8446 §6.1 / RFC 5246 §7.2.1),
 * whichever side ended the stream.  Only when all output went out: the
 * alert says nothing was lost, so a transport dropped with output still
 * queued (a too slow reader, the grace period over) ends without it.
 * The socket just took the rest, so the alert's few bytes fit; if they do
 * not, the alert is lost rather than waited for.  Never after a fatal TLS
 * error, during a handshake or with a record half written. */
static void send_close_notify(transport_t *t)
{
    if (!t->ssl || t->tls_broken || t->tls_handshaking || t->ssl_retry_len ||
        (t->out && evbuffer_get_length(t->out) > 0) || !SSL_is_init_finished(t->ssl) ||
        (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))
        return;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
}

/* Free what `t` holds (any part may be missing on a failed start), its
 * socket, and `t`. */
static void free_parts(transport_t *t)
{
    send_close_notify(t);
    if (t->close_timer)
        event_free(t->close_timer);
    if (t->throttle_timer)
        event_free(t->throttle_timer);
    if (t->read_ev)
        event_free(t->read_ev);
    if (t->write_ev)
        event_free(t->write_ev);
    if (t->out)
        evbuffer_free(t->out);
    if (t->starttls_ssl)
        SSL_free(t->starttls_ssl);
    if (t->connect_ssl)
        SSL_free(t->connect_ssl);
    if (t->ssl)
        SSL_free(t->ssl);
    if (t->fd >= 0)
        evutil_closesocket(t->fd);
    free(t);
}

/* A transport with its events and queue, not reading yet; takes `fd`.
 * NULL on failure (fd closed). */
static transport_t *make(struct event_base *base, evutil_socket_t fd,
                         const transport_params_t *params, const transport_ops_t *ops, void *ctx)
{
    transport_t *t = calloc(1, sizeof(*t));
    if (!t) {
        evutil_closesocket(fd);
        return NULL;
    }
    t->base = base;
    t->fd = fd;
    t->ops = ops;
    t->ctx = ctx;
    t->kind = params->kind ? params->kind : "connection";
    snprintf(t->peer, sizeof(t->peer), "%s", params->peer ? params->peer : "?");
    t->idle_ms = params->idle_ms;
    t->max_output = params->max_output ? params->max_output : 1024 * 1024;
    t->tokens = BUCKET_BURST;
    t->reading_off = 1;
    t->verify = TLS_VERIFY_PENDING;
    if (!flush_ev)
        flush_ev = event_new(base, -1, 0, flush_all, NULL);
    if (!cool_ev)
        cool_ev = evtimer_new(base, cool_down, NULL);
    t->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, t);
    t->write_ev = event_new(base, fd, EV_WRITE, on_writable, t);
    t->out = evbuffer_new();
    if (!flush_ev || !cool_ev || !t->read_ev || !t->write_ev || !t->out) {
        free_parts(t);
        return NULL;
    }
    t->tokens_at = now_ms(t);
    n_transports++;
    return t;
}

transport_t *transport_new(struct event_base *base, evutil_socket_t fd, SSL *ssl,
                           const transport_params_t *params, const transport_ops_t *ops, void *ctx)
{
    transport_t *t = make(base, fd, params, ops, ctx);
    if (!t) {
        if (ssl)
            SSL_free(ssl);
        return NULL;
    }
    if (ssl && attach_tls(t, ssl) < 0) {
        SSL_free(ssl);
        n_transports--;
        free_parts(t);
        return NULL;
    }
    reading_on(t);
    kick_client_handshake(t);
    return t;
}

transport_t *transport_connect(struct event_base *base, const struct sockaddr *addr, int addrlen,
                               SSL *ssl, const transport_params_t *params,
                               const transport_ops_t *ops, void *ctx)
{
    evutil_socket_t fd = socket(addr->sa_family, SOCK_STREAM, 0);
    if (fd < 0 || evutil_make_socket_nonblocking(fd) < 0 ||
        evutil_make_socket_closeonexec(fd) < 0) {
        if (fd >= 0)
            evutil_closesocket(fd);
        if (ssl)
            SSL_free(ssl);
        return NULL;
    }
    transport_t *t = make(base, fd, params, ops, ctx);
    if (!t) {
        if (ssl)
            SSL_free(ssl);
        return NULL;
    }
    t->connecting = 1;
    t->connect_ssl = ssl;
    long long ms = t->idle_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (connect(fd, addr, (socklen_t)addrlen) < 0 && errno != EINPROGRESS && errno != EINTR) {
        t->connect_err = errno ? errno : ECONNREFUSED;
        event_active(t->write_ev, EV_WRITE, 0); /* report it from the loop */
        return t;
    }
    event_add(t->write_ev, ms > 0 ? &tv : NULL);
    return t;
}

static void really_free(transport_t *t)
{
    if (t->ops->on_free)
        t->ops->on_free(t->ctx);
    n_transports--;
    flush_remove(t);
    warm_remove(t);
    free_parts(t);
    if (n_transports == 0 && flush_ev) {
        event_free(flush_ev);
        flush_ev = NULL;
    }
    if (n_transports == 0 && cool_ev) {
        event_free(cool_ev);
        cool_ev = NULL;
    }
}

static void close_timeout(evutil_socket_t fd, short what, void *arg)
{
    transport_t *t = arg;
    if (t->dying)
        really_free(t);
    else
        destroy_for(t, TRANSPORT_CLOSED_LOCAL);
}

/* Stop reading for good and tell the framing, once. */
static void mark_closing(transport_t *t, transport_reason_t reason)
{
    if (t->closing)
        return;
    t->closing = 1;
    if (t->ops->on_close)
        t->ops->on_close(t->ctx, reason);
}

static void destroy_for(transport_t *t, transport_reason_t reason)
{
    if (t->dying)
        return;
    mark_closing(t, reason);
    t->dying = 1;
    reading_off(t);
    event_del(t->write_ev);
    if (t->throttle_timer)
        event_del(t->throttle_timer);
    flush_remove(t);
    if (!t->close_timer)
        t->close_timer = evtimer_new(t->base, close_timeout, t);
    if (!t->close_timer) {
        really_free(t); /* out of memory: no safer choice left */
        return;
    }
    struct timeval now = {0, 0};
    evtimer_add(t->close_timer, &now);
}

void transport_destroy(transport_t *t)
{
    destroy_for(t, TRANSPORT_CLOSED_LOCAL);
}

void transport_close(transport_t *t)
{
    if (t->closing)
        return;
    mark_closing(t, TRANSPORT_CLOSED_LOCAL);
    reading_off(t);
    if (t->throttle_timer)
        event_del(t->throttle_timer);
    flush_remove(t);
    if (t->connecting) {
        destroy_for(t, TRANSPORT_CLOSED_LOCAL);
        return;
    }
    write_out(t); /* destroys the transport once all is out */
    if (t->dying)
        return;
    t->close_timer = evtimer_new(t->base, close_timeout, t);
    struct timeval tv = {CLOSE_GRACE_MS / 1000, (CLOSE_GRACE_MS % 1000) * 1000};
    if (t->close_timer)
        evtimer_add(t->close_timer, &tv);
    else
        destroy_for(t, TRANSPORT_CLOSED_LOCAL);
}

int transport_closing(const transport_t *t)
{
    return t->closing;
}

int transport_dying(const transport_t *t)
{
    return t->dying;
}

void transport_pause_input(transport_t *t)
{
    reading_off(t);
}

void transport_resume_input(transport_t *t)
{
    if (t->closing || (t->throttle_timer && evtimer_pending(t->throttle_timer, NULL)))
        return; /* closing, or the rate limit's timer reads on */
    reading_on(t);
}

void transport_set_idle(transport_t *t, long long ms)
{
    t->idle_ms = ms;
    if (!t->reading_off) {
        reading_off(t);
        reading_on(t);
    }
}

struct event_base *transport_base(const transport_t *t)
{
    return t->base;
}

void transport_set_owner(transport_t *t, const char *kind, const transport_ops_t *ops, void *ctx)
{
    t->kind = kind;
    t->ops = ops;
    t->ctx = ctx;
}
