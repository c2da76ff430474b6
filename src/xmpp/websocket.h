/*
 * websocket.h — XMPP over WebSocket (RFC 7395) on an upgraded transport
 * (internal).
 *
 * The layer between the transport and the XMPP framing: RFC 6455 frames
 * are read and written by wslay; each text message is one XML element,
 * handed to conn_feed() (an <open/> as the start of a stream document, a
 * <close/> as its end); each element conn writes goes out as one text
 * message (conn_framing_t).  Binary messages end the connection with close
 * code 1003, messages over the size limit with 1009; pings are answered,
 * and the stream's keepalive is a ping of our own.
 */
#ifndef TERN_WEBSOCKET_H
#define TERN_WEBSOCKET_H

#include <stddef.h>

#include "xmpp/conn.h"

struct event_base;
struct evbuffer;
struct transport;

/* An XMPP stream on `t`, whose HTTP handshake was answered (101); `rest`
 * holds the bytes that followed the request (taken; handled from the
 * loop).  The stream's idle timeout is `idle_ms` (a ping at half).  NULL on
 * failure: the caller still owns `t` and should destroy it. */
conn_t *ws_conn_new(struct event_base *base, struct transport *t, const char *peer,
                    const conn_ops_t *ops, void *data, const xml_stream_limits_t *limits,
                    long long idle_ms, size_t max_message, struct evbuffer *rest);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2) into
 * `out` (at least 29 bytes).  0, or -1 when the key is not 16 bytes in
 * base64. */
int ws_accept_key(const char *key, char *out, size_t outlen);

/* Whether a comma-separated header value lists `token` (case-insensitive). */
int ws_header_has_token(const char *value, const char *token);

#endif
