/*
 * link.c — the byte pipe under one tern-bench client: TCP, then TLS.
 *
 * Owns the socket's events, the TLS session and the output queue.  What
 * a client sends during a turn of the event loop is written at the end of
 * that turn, straight to the socket, in one write (one TLS record when it
 * fits); only a socket that refuses bytes gets a write event.  Each read
 * takes what the socket holds (TLS reads ahead).  So the load tool spends
 * its core on the load, not on system calls, and cannot be the reason a
 * server looks slow.  What the bytes mean is client.c's business: it gets
 * them through link_ops_t.
 */
#include "link.h"
#include "tls/tls_io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384

static struct event *flush_ev;
static link_t *flush_list;

static void write_out(link_t *l);

static void flush_all(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    while (flush_list != NULL) {
        link_t *l = flush_list;
        flush_list = l->flush_next;
        if (flush_list != NULL)
            flush_list->flush_prev = NULL;
        l->flush_next = l->flush_prev = NULL;
        l->flush_queued = 0;
        write_out(l);
    }
}

static void flush_remove(link_t *l)
{
    if (!l->flush_queued)
        return;
    if (l->flush_prev != NULL)
        l->flush_prev->flush_next = l->flush_next;
    else
        flush_list = l->flush_next;
    if (l->flush_next != NULL)
        l->flush_next->flush_prev = l->flush_prev;
    l->flush_next = l->flush_prev = NULL;
    l->flush_queued = 0;
}

static void flush_later(link_t *l)
{
    if (l->flush_queued || l->failed)
        return;
    l->flush_queued = 1;
    l->flush_prev = NULL;
    l->flush_next = flush_list;
    if (flush_list != NULL)
        flush_list->flush_prev = l;
    flush_list = l;
    event_active(flush_ev, 0, 0);
}

/* The link is broken: tell the client once, and stop every event. */
static void broken(link_t *l, const char *why)
{
    if (l->failed)
        return;
    l->failed = 1;
    event_del(l->read_ev);
    event_del(l->write_ev);
    flush_remove(l);
    l->ops->on_error(l->ctx, why);
}

static void tls_broken(link_t *l, const char *during, int ssl_err)
{
    char why[200];
    unsigned long e = ERR_get_error();
    if (e != 0) {
        char buf[120];
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(why, sizeof(why), "TLS: %s", buf);
    } else if (ssl_err == SSL_ERROR_ZERO_RETURN || errno == 0) {
        snprintf(why, sizeof(why), "connection closed by the server");
    } else {
        snprintf(why, sizeof(why), "%s: %s", during, strerror(errno));
    }
    ERR_clear_error();
    broken(l, why);
}

static void handshake(link_t *l)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(l->ssl);
    if (r == 1) {
        l->handshaking = 0;
        l->ops->on_connected(l->ctx);
        if (!l->failed && evbuffer_get_length(l->out) > 0)
            flush_later(l);
        if (!l->failed && SSL_has_pending(l->ssl))
            event_active(l->read_ev, EV_READ, 0);
        return;
    }
    int e = SSL_get_error(l->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return;
    if (e == SSL_ERROR_WANT_WRITE) {
        event_add(l->write_ev, NULL);
        return;
    }
    tls_broken(l, "TLS handshake", e);
}

/* One read: > 0 bytes, 0 nothing now, -1 broken (reported). */
static int read_some(link_t *l, char *buf, size_t want)
{
    size_t got = 0;
    switch (tls_io_read(l->ssl, l->fd, buf, want, &got)) {
    case TLS_IO_OK:
        return (int)got;
    case TLS_IO_WANT_READ:
        return 0;
    case TLS_IO_WANT_WRITE:
        l->read_wants_write = 1;
        event_add(l->write_ev, NULL);
        return 0;
    case TLS_IO_CLOSED:
        if (l->ssl != NULL)
            tls_broken(l, "read", SSL_ERROR_ZERO_RETURN);
        else
            broken(l, "connection closed by the server");
        return -1;
    default:
        tls_broken(l, l->ssl != NULL ? "read" : "connection", SSL_ERROR_SYSCALL);
        return -1;
    }
}

static void read_input(link_t *l)
{
    char chunk[READ_CHUNK];
    while (!l->failed && !l->reading_off && !l->handshaking) {
        int n = read_some(l, chunk, sizeof(chunk));
        if (n <= 0)
            return;
        SSL *was = l->ssl;
        l->ops->on_data(l->ctx, chunk, (size_t)n);
        /* Again only for what TLS already holds; the socket wakes us for
         * the rest.  (A STARTTLS switch mid-chunk ends the loop too.) */
        if (l->ssl == NULL || l->ssl != was || !SSL_has_pending(l->ssl))
            return;
    }
}

static void write_out(link_t *l)
{
    if (l->failed || l->connecting || l->handshaking || l->write_wants_read)
        return;
    switch (tls_io_flush(l->ssl, l->fd, l->out, &l->ssl_retry_len)) {
    case TLS_IO_OK:
        break;
    case TLS_IO_WANT_WRITE:
        event_add(l->write_ev, NULL);
        return;
    case TLS_IO_WANT_READ:
        l->write_wants_read = 1;
        return;
    case TLS_IO_CLOSED:
        tls_broken(l, "write", SSL_ERROR_ZERO_RETURN);
        return;
    default:
        tls_broken(l, l->ssl != NULL ? "write" : "connection", SSL_ERROR_SYSCALL);
        return;
    }
    if (l->ops->on_drained != NULL)
        l->ops->on_drained(l->ctx);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_t *l = arg;
    if (l->failed)
        return;
    if (l->handshaking) {
        handshake(l);
        return;
    }
    if (l->write_wants_read) {
        l->write_wants_read = 0;
        flush_later(l);
    }
    read_input(l);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_t *l = arg;
    if (l->failed)
        return;
    if (l->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            char why[160];
            snprintf(why, sizeof(why), "connect: %s", strerror(err));
            broken(l, why);
            return;
        }
        l->connecting = 0;
        event_add(l->read_ev, NULL);
        l->ops->on_connected(l->ctx);
        if (!l->failed && evbuffer_get_length(l->out) > 0)
            flush_later(l);
        return;
    }
    if (l->handshaking) {
        handshake(l);
        return;
    }
    if (l->read_wants_write) {
        l->read_wants_write = 0;
        read_input(l);
    }
    write_out(l);
}

int link_connect(link_t *l, struct event_base *base, int fd, const struct sockaddr *to,
                 socklen_t to_len, const link_ops_t *ops, void *ctx)
{
    memset(l, 0, sizeof(*l));
    l->fd = fd;
    l->ops = ops;
    l->ctx = ctx;
    if (flush_ev == NULL)
        flush_ev = event_new(base, -1, 0, flush_all, NULL);
    l->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, l);
    l->write_ev = event_new(base, fd, EV_WRITE, on_writable, l);
    l->out = evbuffer_new();
    if (flush_ev == NULL || l->read_ev == NULL || l->write_ev == NULL || l->out == NULL) {
        errno = ENOMEM;
        return -1;
    }
    l->connecting = 1;
    if (connect(fd, to, to_len) < 0 && errno != EINPROGRESS)
        return -1;
    event_add(l->write_ev, NULL); /* writable = connected (or failed) */
    return 0;
}

int link_start_tls(link_t *l, SSL *ssl)
{
    if (!SSL_set_fd(ssl, l->fd))
        return -1;
    SSL_set_connect_state(ssl);
    SSL_set_read_ahead(ssl, 1);
    l->ssl = ssl;
    l->handshaking = 1;
    handshake(l); /* the client speaks first */
    return 0;
}

void link_send(link_t *l, const char *data, size_t len)
{
    if (l->out == NULL || l->failed)
        return;
    evbuffer_add(l->out, data, len);
    flush_later(l);
}

void link_vsendf(link_t *l, const char *fmt, va_list ap)
{
    if (l->out == NULL || l->failed)
        return;
    evbuffer_add_vprintf(l->out, fmt, ap);
    flush_later(l);
}

void link_abort(link_t *l)
{
    l->failed = 1;
    if (l->read_ev != NULL)
        event_del(l->read_ev);
    if (l->write_ev != NULL)
        event_del(l->write_ev);
    flush_remove(l);
}

void link_stop_reading(link_t *l)
{
    l->reading_off = 1;
    if (l->read_ev != NULL)
        event_del(l->read_ev);
}

void link_free(link_t *l)
{
    flush_remove(l);
    if (l->read_ev != NULL)
        event_free(l->read_ev);
    if (l->write_ev != NULL)
        event_free(l->write_ev);
    if (l->out != NULL)
        evbuffer_free(l->out);
    if (l->ssl != NULL)
        SSL_free(l->ssl);
    memset(l, 0, sizeof(*l));
    l->fd = -1;
}

void link_shutdown(void)
{
    if (flush_ev != NULL)
        event_free(flush_ev);
    flush_ev = NULL;
    flush_list = NULL;
}
