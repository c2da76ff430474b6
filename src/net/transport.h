/*
 * transport.h — a byte stream over TCP, with or without TLS (internal).
 *
 * Owns the socket and its events, TLS (server side and client side, direct
 * or started later), the read rate limit, the idle timer, the output queue
 * written once per turn of the event loop, the warm list (quiet transports
 * free their TLS buffers), the output limit for slow readers, close_notify
 * and a destroy that is never under the caller's feet.
 *
 * It knows nothing of XML or XMPP.  The layer above (the framing: an XMPP
 * stream today, later RFC 7395 WebSocket or a server-to-server stream) sees
 * only bytes:
 *  - input goes up through transport_ops_t.on_data(), one call per read,
 *    the bytes borrowed for the call (no copy is made on the way);
 *  - output goes down by appending to transport_output() and calling
 *    transport_queue_output(); the transport writes it once per loop turn.
 * A framing that needs its own framing of bytes (WebSocket frames carrying
 * XMPP stanzas) sits between the two: it takes on_data() from the
 * transport, decodes messages, and hands their payload to the XMPP framing
 * layer's own entry point (conn_feed() in xmpp/conn.h); the XMPP framing
 * never assumes its bytes came straight from a socket.  On the way out
 * such a layer frames each message: the XMPP framing serializes a stanza
 * into a scratch evbuffer and the layer appends its frame header and then
 * the scratch buffer with evbuffer_add_buffer() (which moves the chains, no
 * copy).  A server-to-server stream is the XMPP framing again, on a
 * transport from transport_connect() with client-side TLS.
 *
 * Calls go one way: the framing calls transport_*(); the transport calls
 * back only through the function pointers of transport_ops_t.  It includes
 * nothing from src/xmpp, src/route or src/core except util/log.h (logging).
 *
 * Life cycle: transport_close() writes what is queued, then frees;
 * transport_destroy() drops at once.  Either way ops->on_close() runs once
 * when the transport stops reading, and ops->on_free() runs once, from the
 * event loop and never from inside a call the framing made, just before
 * the memory goes.
 */
#ifndef TERN_TRANSPORT_H
#define TERN_TRANSPORT_H

#include <stddef.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "tls/tls.h"

struct event_base;
struct evbuffer;
struct sockaddr;
typedef struct transport transport_t;

/* Why a transport stopped (on_close). */
typedef enum {
    TRANSPORT_CLOSED_LOCAL,   /* transport_close() / transport_destroy() */
    TRANSPORT_CLOSED_PEER,    /* end of the TCP stream, or TLS close_notify */
    TRANSPORT_ERROR,          /* the socket failed (reset, write error) */
    TRANSPORT_TLS_ERROR,      /* TLS failed: handshake (see transport_tls_verify()) or record */
    TRANSPORT_SLOW_READER,    /* output passed the limit */
    TRANSPORT_CONNECT_FAILED, /* an outgoing connect did not succeed */
} transport_reason_t;

typedef struct transport_ops {
    /* `len` (> 0) bytes of input, borrowed for the call.  Return 0 to go on
     * reading, -1 to stop reading for this wake-up (the framing failed or
     * stopped; it closes the transport itself if it means to). */
    int (*on_data)(void *ctx, const char *data, size_t len);
    /* Around the reads of one wake-up (several calls of on_data when TLS
     * read ahead).  Either may be NULL. */
    void (*on_input_begin)(void *ctx);
    void (*on_input_end)(void *ctx);
    /* Whether the framing lets the transport read now (flow control);
     * NULL = always.  Consulted whenever reading would resume. */
    int (*may_read)(void *ctx);
    /* Queued output was taken by the socket (some or all of it). */
    void (*on_drained)(void *ctx);
    /* No input for the idle period (transport_set_idle()).  The timer is
     * re-armed: it fires again after another idle period. */
    void (*on_idle)(void *ctx);
    /* The transport is quiet (nothing read or written for a second): the
     * framing may free what it can rebuild on the next byte (a parser). */
    void (*on_quiet)(void *ctx);
    /* An outgoing connect succeeded (transport_connect()); NULL allowed. */
    void (*on_connected)(void *ctx);
    /* TLS started by transport_starttls() replaced the plain stream: input
     * from now on is a new byte stream (for XMPP, a new stream document).
     * Return -1 to destroy the transport.  NULL allowed. */
    int (*on_tls_start)(void *ctx);
    /* The TLS handshake finished; for a client-side SSL the peer's
     * certificate check is in transport_tls_verify().  NULL allowed. */
    void (*on_tls_ready)(void *ctx);
    /* The transport stopped reading for good (once, whatever the reason;
     * also from transport_close()/transport_destroy() themselves). */
    void (*on_close)(void *ctx, transport_reason_t reason);
    /* Just before the transport's memory is freed (from the loop). */
    void (*on_free)(void *ctx);
} transport_ops_t;

typedef struct transport_params {
    const char *kind;  /* for logs ("c2s", "component", "s2s-out"); static */
    const char *peer;  /* for logs, copied ("1.2.3.4:5678") */
    long long idle_ms; /* on_idle() after this long without input; 0 = never */
    size_t max_output; /* bytes queued for a slow reader before closing */
} transport_params_t;

/* Wrap a connected, non-blocking socket (accepted by a listener, or one end
 * of a socketpair).  `ssl` non-NULL = direct TLS, handshake first: an SSL
 * in connect state (SSL_set_connect_state(), e.g. from tls_client_ssl())
 * is the client side, any other the server side (accept state).  Takes
 * `fd` and `ssl` even on failure.  Reading starts at once.  NULL on
 * failure. */
transport_t *transport_new(struct event_base *base, evutil_socket_t fd, SSL *ssl,
                           const transport_params_t *params, const transport_ops_t *ops, void *ctx);

/* Open a non-blocking TCP connection to `addr` (an address: names are
 * resolved elsewhere).  ops->on_connected() runs once TCP is up; with
 * `ssl` (client side, from tls_client_ssl()) the TLS handshake follows at
 * once and on_tls_ready() says when it is done.  A failure, or no answer
 * within params->idle_ms (when > 0), ends in on_close(TRANSPORT_CONNECT_FAILED)
 * and on_free(), from the loop.  Output queued before that waits.  NULL
 * when the socket cannot even be made (nothing is called back then; `ssl`
 * is freed). */
transport_t *transport_connect(struct event_base *base, const struct sockaddr *addr, int addrlen,
                               SSL *ssl, const transport_params_t *params,
                               const transport_ops_t *ops, void *ctx);

/* Begin TLS with `ssl` (taken) once the queued output is written (the
 * <proceed/> answer, or our <starttls/> on the client side).  No more input
 * is read until then; bytes already read are the framing's to drop
 * (RFC 6120 §5.4.3.3).  ops->on_tls_start() runs as TLS takes over. */
void transport_starttls(transport_t *t, SSL *ssl);

/* The output queue: append, then transport_queue_output().  Never NULL. */
struct evbuffer *transport_output(transport_t *t);
/* Bytes appended: check the slow-reader limit and write at the end of this
 * loop turn.  0, or -1 when the transport was destroyed (over the limit;
 * on_close() ran with TRANSPORT_SLOW_READER). */
int transport_queue_output(transport_t *t);
/* Bytes queued and not yet taken by the socket (or TLS). */
size_t transport_queued(const transport_t *t);
/* The queue may hold this much before transport_queue_output() fails. */
size_t transport_max_output(const transport_t *t);

/* Stop reading until transport_resume_input(). */
void transport_pause_input(transport_t *t);
/* Read again, unless the rate limit or ops->may_read() still holds it. */
void transport_resume_input(transport_t *t);
void transport_set_idle(transport_t *t, long long ms);

/* Write what is queued, then free (after a grace period at most).
 * on_close(TRANSPORT_CLOSED_LOCAL) runs now unless it already ran. */
void transport_close(transport_t *t);
/* Drop now (queued output is lost); the memory is freed from the loop. */
void transport_destroy(transport_t *t);
/* Drop as a slow reader, logging `why`. */
void transport_slow_reader(transport_t *t, const char *why);

/* Whether the transport stopped reading for good / is about to be freed. */
int transport_closing(const transport_t *t);
int transport_dying(const transport_t *t);

/* The SSL once TLS is up or being negotiated, else NULL. */
SSL *transport_ssl(const transport_t *t);
/* For a client-side SSL: the check of the peer's certificate, once the
 * handshake finished or failed (TLS_VERIFY_PENDING before). */
tls_verify_t transport_tls_verify(const transport_t *t);

/* Hand the transport to another framing (an HTTP connection upgraded to
 * WebSocket): its callbacks go to `ops` and `ctx` from now on, and `kind`
 * (static) names it in logs.  The old owner is not called again. */
void transport_set_owner(transport_t *t, const char *kind, const transport_ops_t *ops, void *ctx);

/* The event base, for the framing's own timers. */
struct event_base *transport_base(const transport_t *t);
/* Transports that read or wrote in the last second (the warm list). */
size_t transport_busy_count(void);

#endif
