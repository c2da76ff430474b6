/*
 * web.c — the core's paths on the HTTP server and the module API for paths.
 *
 *  - GET /xmpp-websocket: the RFC 6455 handshake checks (Upgrade,
 *    Sec-WebSocket-Version 13, the key, the `xmpp` subprotocol, the
 *    allowed origins, encryption), then the connection becomes an RFC 7395
 *    client stream (stream/c2s.c on xmpp/websocket.c);
 *  - GET /.well-known/host-meta and /.well-known/host-meta.json (XEP-0156):
 *    the WebSocket URL, readable from any origin (CORS);
 *  - tern_http_register() for modules (tern/http.h): their routes go with
 *    them (web_module_unload()).
 */
#include "core/web.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "core/modules.h"
#include "http/http.h"
#include "net/transport.h"
#include "route/host.h"
#include "stream/c2s.h"
#include "xml/xml_stream.h"
#include "xmpp/websocket.h"

#define WS_PATH "/xmpp-websocket"

static void answer_text(tern_http_request_t *req, int status, const char *text)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, http_reason(status), text);
    tern_http_respond(req, status, "text/plain; charset=utf-8", body, (size_t)n);
}

static int is_loopback(const char *ip)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, ip, b) == 1)
        return b[0] == 127;
    return strcmp(ip, "::1") == 0;
}

/* Whether a plain-text WebSocket counts as encrypted: the admin allows it
 * and the TCP peer is this machine or a trusted proxy (which ended TLS). */
static int considered_secure(const tern_http_request_t *req)
{
    if (tern_http_secure(req))
        return 1;
    if (!server.cfg->websocket.allow_insecure)
        return 0;
    return http_request_via_proxy(req) || is_loopback(tern_http_client(req));
}

static int origin_allowed(const char *origin)
{
    const char **list = server.cfg->websocket.origins;
    if (!list || !list[0])
        return 1;
    for (size_t i = 0; origin && list[i]; i++)
        if (strcmp(list[i], origin) == 0)
            return 1;
    return 0;
}

static void ws_request(tern_http_request_t *req, void *arg)
{
    (void)arg;
    if (!server.cfg->websocket.enabled) {
        answer_text(req, 404, "WebSocket is not enabled here");
        return;
    }
    const char *upgrade = tern_http_header(req, "Upgrade");
    const char *connection = tern_http_header(req, "Connection");
    if (!upgrade || !ws_header_has_token(upgrade, "websocket") || !connection ||
        !ws_header_has_token(connection, "upgrade")) {
        tern_http_add_header(req, "Upgrade", "websocket");
        answer_text(req, 426, "this is a WebSocket endpoint (RFC 7395)");
        return;
    }
    const char *version = tern_http_header(req, "Sec-WebSocket-Version");
    if (!version || strcmp(version, "13") != 0) { /* RFC 6455 §4.4 */
        tern_http_add_header(req, "Sec-WebSocket-Version", "13");
        answer_text(req, 426, "WebSocket version 13 is required");
        return;
    }
    const char *key = tern_http_header(req, "Sec-WebSocket-Key");
    char accept[64];
    if (!key || ws_accept_key(key, accept, sizeof(accept)) < 0) {
        answer_text(req, 400, "bad Sec-WebSocket-Key");
        return;
    }
    const char *proto = tern_http_header(req, "Sec-WebSocket-Protocol");
    if (!proto || !ws_header_has_token(proto, "xmpp")) { /* RFC 7395 §3.2 */
        answer_text(req, 400, "the xmpp subprotocol is required (Sec-WebSocket-Protocol: xmpp)");
        return;
    }
    if (!origin_allowed(tern_http_header(req, "Origin"))) {
        log_info("websocket %s: origin %s not allowed", tern_http_client(req),
                 tern_http_header(req, "Origin") ? tern_http_header(req, "Origin") : "(none)");
        answer_text(req, 403, "this origin may not connect");
        return;
    }
    int secure = considered_secure(req);
    if (!secure && server.cfg->require_encryption) {
        answer_text(req, 403, "use wss:// (TLS is required)");
        return;
    }
    char headers[256];
    snprintf(headers, sizeof(headers),
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
             "Sec-WebSocket-Protocol: xmpp\r\n",
             accept);
    char peer[80], client[64];
    int proxied = http_request_via_proxy(req);
    snprintf(peer, sizeof(peer), "%s", http_request_peer(req));
    snprintf(client, sizeof(client), "%s", tern_http_client(req));
    struct evbuffer *rest = evbuffer_new();
    if (!rest) {
        answer_text(req, 500, "out of memory");
        return;
    }
    struct transport *t = http_upgrade(req, headers, rest); /* req is gone */
    if (t && c2s_accept_websocket(t, peer, secure, proxied ? client : NULL, rest))
        transport_destroy(t);
    evbuffer_free(rest);
}

/* ---- XEP-0156 ---- */

static int host_header_ok(const char *h)
{
    if (!*h)
        return 0;
    for (; *h; h++)
        if (!isalnum((unsigned char)*h) && !strchr(".-:[]", *h))
            return 0;
    return 1;
}

static int first_https_port(void)
{
    for (size_t i = 0; i < server.cfg->n_listeners; i++)
        if (server.cfg->listeners[i].kind == LISTEN_HTTPS)
            return server.cfg->listeners[i].port;
    return 0;
}

/* The WebSocket URL a client should use, into `out`. */
static void ws_url(const tern_http_request_t *req, char *out, size_t len)
{
    if (server.cfg->websocket.public_url) {
        snprintf(out, len, "%s", server.cfg->websocket.public_url);
        return;
    }
    const char *host_hdr = tern_http_header(req, "Host");
    const char *name = tern_http_host(req);
    if (!host_header_ok(name))
        name = server.cfg->n_hosts ? server.cfg->hosts[0].name : "localhost";
    if (tern_http_secure(req) && host_hdr && host_header_ok(host_hdr)) {
        snprintf(out, len, "wss://%s" WS_PATH, host_hdr);
        return;
    }
    int port = first_https_port();
    if (port) {
        snprintf(out, len, "wss://%s:%d" WS_PATH, name, port);
        return;
    }
    snprintf(out, len, "ws://%s" WS_PATH, host_hdr && host_header_ok(host_hdr) ? host_hdr : name);
}

static void json_escape(const char *s, struct evbuffer *out)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(out, "\\%c", ch);
        else if (ch < 0x20)
            evbuffer_add_printf(out, "\\u%04x", ch);
        else
            evbuffer_add(out, s, 1);
    }
}

static void host_meta(tern_http_request_t *req, void *arg)
{
    int json = arg != NULL;
    char url[512];
    ws_url(req, url, sizeof(url));
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        answer_text(req, 500, "out of memory");
        return;
    }
    if (json) {
        evbuffer_add_printf(b, "{\"links\":[");
        if (server.cfg->websocket.enabled) {
            evbuffer_add_printf(b, "{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":\"");
            json_escape(url, b);
            evbuffer_add_printf(b, "\"}");
        }
        evbuffer_add_printf(b, "]}\n");
    } else {
        evbuffer_add_printf(b, "<?xml version='1.0' encoding='utf-8'?>\n"
                               "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n");
        if (server.cfg->websocket.enabled) {
            evbuffer_add_printf(b, "  <Link rel='urn:xmpp:alt-connections:websocket' href='");
            xml_escape(url, strlen(url), b);
            evbuffer_add_printf(b, "'/>\n");
        }
        evbuffer_add_printf(b, "</XRD>\n");
    }
    tern_http_add_header(req, "Access-Control-Allow-Origin", "*");
    size_t len = evbuffer_get_length(b);
    tern_http_respond(req, 200, json ? "application/json" : "application/xrd+xml; charset=utf-8",
                      (const char *)evbuffer_pullup(b, -1), len);
    evbuffer_free(b);
}

/* ---- set-up ---- */

void web_apply_settings(const tern_config_t *cfg)
{
    http_settings_t s = {
        .max_header_size = (size_t)cfg->http.max_header_size,
        .max_body_size = (size_t)cfg->http.max_body_size,
        .request_timeout_ms = cfg->http.request_timeout_ms,
        .idle_timeout_ms = cfg->http.idle_timeout_ms,
        .max_requests_per_connection = cfg->http.max_requests_per_connection,
        .requests_per_second = cfg->http.requests_per_second,
        .trusted_proxies = cfg->http.trusted_proxies,
    };
    http_set_settings(&s);
}

int web_start(void)
{
    static const tern_http_route_t core_routes[] = {
        {.method = "GET", .path = WS_PATH, .on_request = ws_request},
        {.method = "GET", .path = "/.well-known/host-meta", .on_request = host_meta},
        {.method = "GET",
         .path = "/.well-known/host-meta.json",
         .on_request = host_meta,
         .arg = (void *)1},
    };
    for (size_t i = 0; i < sizeof(core_routes) / sizeof(core_routes[0]); i++)
        if (http_route_add(&core_routes[i], NULL, NULL) < 0)
            return -1;
    return 0;
}

void web_close_connections(void)
{
    http_close_all();
}

void web_stop(void)
{
    http_close_all();
    http_routes_clear();
}

void web_module_unload(tern_module_ctx_t *m)
{
    http_route_remove_owner(m);
}

int tern_http_register(tern_module_ctx_t *m, const tern_http_route_t *route)
{
    if (http_route_add(route, m, m->host->name) < 0) {
        log_error("module '%s': cannot register path %s", m->desc->name,
                  route && route->path ? route->path : "(null)");
        return -1;
    }
    return 0;
}
