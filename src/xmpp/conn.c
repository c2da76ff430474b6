/*
 * conn.c — stream connections on libevent bufferevents.
 *
 * Input is read in bounded chunks and fed to the stream parser; a token
 * bucket limits how fast one peer can make us parse.  Output that a slow
 * reader lets pile up beyond max_output closes the connection instead of
 * growing without bound.
 */
#include "xmpp/conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "xmpp/stanza.h"

#define READ_CHUNK     16384
#define CLOSE_GRACE_MS 2000

static conn_t *all_conns;
static size_t n_conns;
static struct ev_token_bucket_cfg *read_bucket;
static conn_input_hooks_t input_hooks;
static conn_t *reading; /* the connection whose input is being handled */

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

size_t conn_count(void)
{
    return n_conns;
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

static void setup_bev(conn_t *c)
{
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    conn_set_idle(c, c->idle_ms);
}

conn_t *conn_new(struct event_base *base, evutil_socket_t fd, const char *peer,
                 const conn_ops_t *ops, void *data, SSL *ssl, const xml_stream_limits_t *limits,
                 long long idle_ms)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->ops = ops;
    c->data = data;
    c->limits = *limits;
    c->idle_ms = idle_ms;
    c->stream_ns = TERN_NS_CLIENT;
    c->max_output = limits->max_stanza_bytes * 4 + 1024 * 1024;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    if (ssl) {
        c->bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        c->ssl = ssl;
    } else {
        c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    c->xs = xml_stream_new(&xs_callbacks, c, &c->limits);
    if (!c->bev || !c->xs) {
        if (c->bev)
            bufferevent_free(c->bev);
        else {
            if (ssl)
                SSL_free(ssl);
            evutil_closesocket(fd);
        }
        xml_stream_free(&c->xs);
        free(c);
        return NULL;
    }
    if (!read_bucket) {
        /* 256 KiB/s sustained per connection, bursts up to 1 MiB. */
        struct timeval tick = {1, 0};
        read_bucket = ev_token_bucket_cfg_new(256 * 1024, 1024 * 1024, EV_RATE_LIMIT_MAX,
                                              EV_RATE_LIMIT_MAX, &tick);
    }
    if (read_bucket)
        bufferevent_set_rate_limit(c->bev, read_bucket);
    setup_bev(c);
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
    if (c->close_timer)
        event_free(c->close_timer);
    if (c->starttls_ssl)
        SSL_free(c->starttls_ssl);
    bufferevent_free(c->bev);
    xml_stream_free(&c->xs);
    free(c);
    if (n_conns == 0 && read_bucket) {
        ev_token_bucket_cfg_free(read_bucket);
        read_bucket = NULL;
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
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (!c->close_timer)
        c->close_timer = evtimer_new(bufferevent_get_base(c->bev), close_timeout, c);
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
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_destroy(c);
        return;
    }
    c->close_timer = evtimer_new(bufferevent_get_base(c->bev), close_timeout, c);
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
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) + len > c->max_output) {
        log_info("%s %s: reader too slow, %zu bytes queued: closing", c->ops->kind, c->peer,
                 evbuffer_get_length(out));
        conn_destroy(c);
        return;
    }
    bufferevent_write(c->bev, data, len);
}

void conn_write_str(conn_t *c, const char *s)
{
    conn_write(c, s, strlen(s));
}

void conn_send(conn_t *c, const tern_xml_t *node)
{
    if (c->closing)
        return;
    struct evbuffer *tmp = evbuffer_new();
    if (!tmp)
        return;
    if (xml_serialize(node, c->stream_ns, tmp) == 0) {
        before_output(c);
        size_t len = evbuffer_get_length(tmp);
        struct evbuffer *out = bufferevent_get_output(c->bev);
        if (evbuffer_get_length(out) + len > c->max_output) {
            log_info("%s %s: reader too slow: closing", c->ops->kind, c->peer);
            conn_destroy(c);
        } else {
            evbuffer_add_buffer(out, tmp);
        }
    }
    evbuffer_free(tmp);
}

void conn_stream_error(conn_t *c, const char *condition, const char *text)
{
    if (c->closing)
        return;
    if (!c->header_sent && c->ops->send_header)
        c->ops->send_header(c);
    struct evbuffer *out = bufferevent_get_output(c->bev);
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
    if (ms > 0) {
        long long half = ms / 2;
        struct timeval tv = {half / 1000, (half % 1000) * 1000};
        bufferevent_set_timeouts(c->bev, &tv, NULL);
    } else {
        bufferevent_set_timeouts(c->bev, NULL, NULL);
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

/* The plain socket's own buffers go: <proceed/> is written out at once and
 * the socket gets a TLS bufferevent of its own, which keeps one buffer
 * pair per connection instead of two.  Should <proceed/> not leave at
 * once, TLS is layered as a filter on top instead. */
static struct bufferevent *tls_on_socket(conn_t *c, SSL *ssl)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_unfreeze(out, 1); /* the bufferevent keeps its front frozen for itself */
    while (evbuffer_get_length(out) > 0 && evbuffer_write(out, fd) > 0)
        continue;
    evbuffer_freeze(out, 1);
    struct event_base *base = bufferevent_get_base(c->bev);
    if (evbuffer_get_length(out) > 0)
        return bufferevent_openssl_filter_new(base, c->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                              BEV_OPT_CLOSE_ON_FREE);
    struct bufferevent *tls = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!tls)
        return NULL;
    if (read_bucket)
        bufferevent_set_rate_limit(tls, read_bucket);
    bufferevent_setfd(c->bev, -1); /* the socket stays open, now with `tls` */
    bufferevent_free(c->bev);
    c->bev = tls;
    return tls;
}

/* Switch the connection to TLS and start a new parser. */
static void begin_tls(conn_t *c)
{
    SSL *ssl = c->starttls_ssl;
    c->starttls_ssl = NULL;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t junk = evbuffer_get_length(in);
    if (junk) {
        log_info("c2s %s: %zu bytes pipelined after <starttls/> discarded", c->peer, junk);
        evbuffer_drain(in, junk);
    }
    struct bufferevent *tls = tls_on_socket(c, ssl);
    xml_stream_free(&c->xs);
    c->xs = xml_stream_new(&xs_callbacks, c, &c->limits);
    if (!tls || !c->xs) {
        if (!tls)
            SSL_free(ssl);
        else
            c->bev = tls;
        conn_destroy(c);
        return;
    }
    c->bev = tls;
    c->ssl = ssl;
    c->header_sent = 0;
    setup_bev(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char chunk[READ_CHUNK];
    c->idle_strikes = 0;
    reading = c;
    if (input_hooks.begin)
        input_hooks.begin();
    while (!c->closing && !c->starttls_ssl && evbuffer_get_length(in) > 0) {
        int n = evbuffer_remove(in, chunk, sizeof(chunk));
        if (n <= 0)
            break;
        if (xml_stream_feed(c->xs, chunk, (size_t)n) < 0)
            break;
    }
    if (input_hooks.end)
        input_hooks.end();
    reading = NULL;
    if (c->starttls_ssl && !c->closing)
        begin_tls(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    conn_t *c = arg;
    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_destroy(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    conn_t *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && !c->closing) {
        bufferevent_enable(bev, EV_READ);
        if (c->idle_strikes++ == 0 && c->ops->on_idle) {
            c->ops->on_idle(c);
        } else {
            log_info("%s %s: idle timeout", c->ops->kind, c->peer);
            conn_stream_error(c, "connection-timeout", NULL);
        }
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        if (e)
            log_info("%s %s: TLS error: %s", c->ops->kind, c->peer, ERR_reason_error_string(e));
    }
    /* EOF or error: the peer is gone. */
    log_debug("%s %s: connection closed", c->ops->kind, c->peer);
    conn_destroy(c);
}
