/*
 * conn.h — one XMPP stream over a byte transport (internal).
 *
 * The framing layer: owns the incremental parser, the stream header and
 * its restarts (STARTTLS, SASL), the close tag and stream errors, and
 * hands stanzas to the stream type (c2s, component) through conn_ops_t.
 * The bytes come from a transport_t (net/transport.h: socket, TLS, rate
 * limit, idle timer, output queue written once per loop turn, slow-reader
 * limit) through its callbacks; conn calls the transport down, never the
 * other way.  flow.c holds senders back for it and paces bulk output.
 * A connection is never freed from inside one of its own callbacks:
 * closing marks it and the free happens once the callback returns and
 * output is flushed.
 */
#ifndef TERN_CONN_H
#define TERN_CONN_H

#include <event2/util.h>
#include <openssl/ssl.h>
#include <tern/xml.h>

#include "tls/tls.h"
#include "xml/xml_stream.h"

struct event_base;
struct event;
struct evbuffer;
struct transport;
struct sockaddr;
typedef struct conn conn_t;

typedef struct conn_ops {
    const char *kind; /* "c2s", "component": for logs */
    void (*on_open)(conn_t *c, const char *name, const char *ns, const char **attrs);
    void (*on_stanza)(conn_t *c, tern_xml_t *stanza); /* borrowed */
    void (*on_idle)(conn_t *c);                       /* no input for half the idle timeout */
    /* The stream is ending (either side): stop routing to it.  Runs once,
     * before the last bytes are flushed. */
    void (*on_closing)(conn_t *c);
    void (*send_header)(conn_t *c); /* before a stream error when none was sent */
    void (*on_free)(conn_t *c);
    /* TLS is up (handshake done); on a connection we opened, conn_tls_verify()
     * says how the peer's certificate fared.  NULL allowed (c2s and
     * components need nothing here). */
    void (*on_secure)(conn_t *c);
} conn_ops_t;

struct conn {
    struct conn *prev, *next; /* all connections, for shutdown */
    struct event_base *base;
    struct transport *t; /* the bytes: NULL only while conn_new() runs */
    const conn_ops_t *ops;
    void *data;
    xml_stream_t *xs;
    xml_stream_limits_t limits;
    const char *stream_ns; /* namespace of stanzas on this stream */
    char peer[64];         /* "1.2.3.4:5678" / "[::1]:5678" */
    int header_sent;
    int closing; /* no more input is processed */
    /* How the stream ended: "" when the connection was lost (or timed
     * out), "close" for a </stream:stream> from either side, else the
     * stream error condition we sent ("connection-timeout" included). */
    char ended_with[40];
    int idle_strikes;
    size_t max_output;      /* bytes queued for a slow reader before we give up */
    struct conn_flow *flow; /* flow control (flow.c); NULL until first needed */
    int never_held;         /* serves many users (a component): not held for one */
    /* Input held (conn_input_hold): stanzas already parsed from the same
     * read wait here, in order, until it is released (RFC 6120 §10.1). */
    int held;
    struct deferred_stanza *deferred, *deferred_tail;
    int close_deferred;        /* the peer's </stream:stream> came after them */
    struct event *drain_event; /* hands the waiting stanzas on from the loop */
    /* RFC 7395: a layer frames each element itself (conn_new_framed()). */
    const struct conn_framing *framing;
    void *framing_ctx;
    struct evbuffer *scratch; /* one element, before the framing takes it */
};

/* A framing layer between the transport and the XMPP stream (WebSocket,
 * RFC 7395).  The stream then writes no prolog, no <stream:stream> and no
 * </stream:stream>: the stream role writes <open/> and conn writes
 * <close/> (NS_FRAMING), every element goes out on its own through
 * send(), stanzas carry their xmlns, and whitespace keepalives become
 * ping().  The layer feeds the unwrapped input to conn_feed() (an <open/>
 * as the start tag of a document, <close/> as its end tag). */
typedef struct conn_framing {
    /* Frame the element in `msg` (and empty `msg`) into the transport's
     * output queue.  0, or -1 on failure (the connection is dropped). */
    int (*send)(void *ctx, struct evbuffer *msg);
    /* Keepalive (instead of a whitespace); NULL = none. */
    void (*ping)(void *ctx);
    /* The stream ended: end the framing (a close frame), then the
     * transport (transport_close()). */
    void (*close)(void *ctx);
} conn_framing_t;

#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"

/* Wrap an accepted, non-blocking socket (the listener accepts it so).  `ssl` non-NULL = direct TLS
 * (handshake first).  NULL on failure. */
conn_t *conn_new(struct event_base *base, evutil_socket_t fd, const char *peer,
                 const conn_ops_t *ops, void *data, SSL *ssl, const xml_stream_limits_t *limits,
                 long long idle_ms);
/* Open an XMPP stream to `addr` (an address; names are resolved elsewhere),
 * for streams the server starts itself (server-to-server).  `ssl` (from
 * tls_client_ssl(), or NULL) = direct TLS.  Output written at once (the
 * stream header) waits until the connection, and the TLS handshake, are
 * up.  A failure to connect ends in ops->on_closing() and ops->on_free()
 * from the loop.  `peer` names the other side in logs.  NULL when no socket
 * could be made (`ssl` is freed). */
conn_t *conn_connect(struct event_base *base, const struct sockaddr *addr, int addrlen,
                     const char *peer, const conn_ops_t *ops, void *data, SSL *ssl,
                     const xml_stream_limits_t *limits, long long idle_ms);
/* An XMPP stream on a transport that a framing layer owns (the layer
 * forwards the transport's callbacks to conn_transport_ops() with the
 * conn as context).  NULL on failure (the transport is left alone). */
conn_t *conn_new_framed(struct event_base *base, struct transport *t, const char *peer,
                        const conn_ops_t *ops, void *data, const xml_stream_limits_t *limits,
                        const conn_framing_t *framing, void *framing_ctx);
/* The transport callbacks of a conn, for a framing layer to forward. */
const struct transport_ops *conn_transport_ops(void);
/* Whether a framing layer frames this stream (RFC 7395). */
int conn_framed(const conn_t *c);
/* How the peer's certificate fared, on a connection with client-side TLS
 * (TLS_VERIFY_PENDING until the handshake ends). */
tls_verify_t conn_tls_verify(const conn_t *c);
/* The SSL of the connection once TLS is up (or being negotiated), else NULL. */
SSL *conn_ssl(const conn_t *c);
/* Feed bytes of the stream to the parser, as if read from the transport:
 * the entry point for a layer that unwraps the XMPP bytes from frames of
 * its own (RFC 7395 WebSocket messages).  0, or -1 once the stream failed
 * or stopped (a stream error was sent, the close tag came, STARTTLS). */
int conn_feed(conn_t *c, const char *data, size_t len);
/* Begin TLS after the current input is handled and the queued output is
 * written; bytes the client pipelined after <starttls/> are discarded
 * (RFC 6120 §5.4.3.3).  `ssl` from tls_server_ssl() answers a client; one
 * from tls_client_ssl() (after the peer's <proceed/>) makes us the client:
 * write the new stream header from ops->on_secure(), not before. */
void conn_starttls(conn_t *c, SSL *ssl);
/* A new stream document follows (after SASL success). */
void conn_restart_stream(conn_t *c);
void conn_write(conn_t *c, const char *data, size_t len);
void conn_write_str(conn_t *c, const char *s);
void conn_send(conn_t *c, const tern_xml_t *node);
/* Bulk output (archive pages, offline messages): held back in order while
 * c's queue is over its soft mark, written as it drains (flow.c). */
void conn_send_paced(conn_t *c, tern_xml_t *node);
/* Send <stream:error> (after a header if none was sent) and close. */
void conn_stream_error(conn_t *c, const char *condition, const char *text);
/* Send </stream:stream> and close once the output is flushed. */
void conn_close(conn_t *c);
/* Drop the connection now; the memory is freed from the loop, never
 * under the caller's feet. */
void conn_destroy(conn_t *c);
void conn_set_idle(conn_t *c, long long ms);
/* Close every connection with `condition` (shutdown). */
void conn_close_all(const char *condition);

/* Calls around the handling of each read of input (every stanza in it),
 * and before output goes to the connection whose input is being handled:
 * the server batches its storage writes in between and commits them
 * before anything is acknowledged to their sender.  Any may be NULL. */
typedef struct conn_input_hooks {
    void (*begin)(void);
    void (*flush)(void);
    void (*end)(void);
} conn_input_hooks_t;
void conn_set_input_hooks(const conn_input_hooks_t *hooks);
size_t conn_count(void);
/* Connections that read or wrote in the last second: the others hold no
 * TLS buffers and no parser. */
size_t conn_busy_count(void);

/* For flow.c.  Bytes queued for the socket. */
size_t conn_queued(const conn_t *c);
/* Stop reading `c` until conn_input_release(); stanzas already parsed
 * from the read in progress (and the peer's close tag) wait, in order. */
void conn_input_hold(conn_t *c);
/* Hand on the stanzas that waited (from the loop, not from inside this
 * call), then read `c` again unless the rate limit or flow control still
 * holds it. */
void conn_input_release(conn_t *c);
/* Serialize `node` into c's queue with no flow check; 0, or -1 when `c`
 * was dropped. */
int conn_serialize(conn_t *c, const tern_xml_t *node);
/* Drop `c` as a slow reader, saying why in the log. */
void conn_slow_reader(conn_t *c, const char *why);

#endif
