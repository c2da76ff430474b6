/*
 * link.h — the byte pipe under one tern-bench client (link.c): a
 * non-blocking TCP connection, optionally TLS, with output written once
 * per loop turn.
 */
#ifndef TERN_BENCH_LINK_H
#define TERN_BENCH_LINK_H

#include <event2/util.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

struct event;
struct event_base;
struct evbuffer;

typedef struct link_ops {
    void (*on_connected)(void *ctx); /* TCP up, or later the TLS handshake done */
    void (*on_data)(void *ctx, const char *data, size_t len);
    void (*on_error)(void *ctx, const char *why); /* once; the link is dead */
    void (*on_drained)(void *ctx);                /* everything queued was written; may be NULL */
} link_ops_t;

typedef struct link {
    int fd;
    SSL *ssl;
    struct event *read_ev, *write_ev;
    struct evbuffer *out;
    const link_ops_t *ops;
    void *ctx;
    struct link *flush_prev, *flush_next;
    int ssl_retry_len;
    unsigned flush_queued : 1, connecting : 1, handshaking : 1, failed : 1;
    unsigned read_wants_write : 1, write_wants_read : 1, reading_off : 1;
} link_t;

/* Start a non-blocking connect of `fd` (already bound, options set).
 * -1 with errno when it fails at once. */
int link_connect(link_t *l, struct event_base *base, int fd, const struct sockaddr *to,
                 socklen_t to_len, const link_ops_t *ops, void *ctx);
/* TLS on the connected socket from now on (STARTTLS or direct TLS);
 * on_connected is called again once the handshake is done. */
int link_start_tls(link_t *l, SSL *ssl);
void link_send(link_t *l, const char *data, size_t len);
void link_vsendf(link_t *l, const char *fmt, va_list ap);
void link_stop_reading(link_t *l);
/* Stop all traffic at once, without telling the client. */
void link_abort(link_t *l);
/* Free the events, buffer and TLS session; the socket is the caller's. */
void link_free(link_t *l);
/* At the end of the process: the shared flush event. */
void link_shutdown(void);

#endif
