/*
 * http.h — the HTTP/1.1 server on the byte transport (internal).
 *
 * One http connection per accepted socket of an http or https listener:
 * requests are parsed with libhttp-parser, one at a time (a pipelined
 * request waits for the answer to the one before), routed by path to the
 * handlers registered by the core and by modules (tern/http.h), and
 * answered in order on the kept-alive connection.  Limits (http_settings_t):
 * header bytes (431), body bytes (413), a deadline for a whole request once
 * its first byte came (408; slow clients), an idle timeout between
 * requests, requests per connection and per client address (429).  Errors
 * have small text bodies.  Behind a trusted proxy, X-Forwarded-For or
 * Forwarded names the client.
 *
 * A handler may take the connection over (WebSocket): http_upgrade()
 * writes the 101 answer and hands back the transport with the bytes that
 * followed the request.
 *
 * Layer: includes net, tls, config and util only.
 */
#ifndef TERN_HTTP_INTERNAL_H
#define TERN_HTTP_INTERNAL_H

#include <event2/util.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <tern/http.h>

struct event_base;
struct evbuffer;
struct transport;

typedef struct http_settings {
    size_t max_header_size;
    size_t max_body_size;
    long long request_timeout_ms;
    long long idle_timeout_ms;
    long long max_requests_per_connection;
    long long requests_per_second;      /* per client address; 0 = no limit */
    const char *const *trusted_proxies; /* NULL-terminated addresses, or NULL */
} http_settings_t;

/* Copied (the strings must stay until the next call). */
void http_set_settings(const http_settings_t *s);

/* Serve an accepted socket.  `ssl` non-NULL = https.  `peer` "1.2.3.4:5678". */
void http_accept(struct event_base *base, evutil_socket_t fd, const char *peer, SSL *ssl, int port);

/* Routes (the core's own with owner NULL, modules' with their context).
 * `host` (copied; NULL = any): the same method and path may be added once
 * per host, and a request goes to the route of the host it names (Host
 * header), else to one for any host, else to another host's.  -1 when
 * taken or malformed. */
int http_route_add(const tern_http_route_t *route, void *owner, const char *host);
void http_route_remove_owner(void *owner);
void http_routes_clear(void);
/* The route for method and path: NULL with *status 404 or 405. */
const tern_http_route_t *http_route_find(const char *method, const char *path, const char *host,
                                         int *status);

/* The listener port the request came on. */
int http_request_port(const tern_http_request_t *req);
/* The TCP peer, "1.2.3.4:5678" or "[::1]:5678" (not the proxy-named client). */
const char *http_request_peer(const tern_http_request_t *req);
/* Whether the TCP peer is a trusted proxy. */
int http_request_via_proxy(const tern_http_request_t *req);

/* Take the connection over: write "101 Switching Protocols" with the
 * `headers` given ("Name: value\r\n" lines), and return the transport,
 * with the bytes that followed the request moved to `rest`.  The request
 * and the http connection are gone; the caller sets the transport's new
 * owner (transport_set_owner()) before returning to the loop.  NULL when
 * the request cannot be upgraded (then answered with 400). */
struct transport *http_upgrade(tern_http_request_t *req, const char *headers,
                               struct evbuffer *rest);

/* Reason phrase of a status code ("Not Found"). */
const char *http_reason(int status);
/* Client address from X-Forwarded-For / Forwarded given by a trusted proxy
 * at `peer_ip`: the right-most address not itself a trusted proxy, written
 * to `out`.  0, or -1 when the headers name none (then `out` is untouched). */
int http_forwarded_client(const char *xff, const char *forwarded, const char *const *trusted,
                          char *out, size_t outlen);
/* Whether `ip` is in the NULL-terminated list. */
int http_addr_in(const char *ip, const char *const *list);

/* Open connections (for tests and stats). */
size_t http_conn_count(void);
/* Drop every connection (shutdown). */
void http_close_all(void);

#endif
