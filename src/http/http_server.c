/*
 * http_server.c — HTTP/1.1 connections, requests and answers.
 *
 * The transport (net/transport.h) hands up bytes; they wait in `in` until
 * the parser (libhttp-parser) takes them.  The parser is paused at the end
 * of each request, so a pipelined request stays in `in` until the answer
 * to the one before was queued; then parsing resumes (from the loop when
 * the answer came later than the call that dispatched the request).
 *
 * Timers: one per connection.  Between requests it is the idle timeout;
 * from the first byte of a request until its last, the request deadline
 * (a slow client gets 408 and the connection closes); while a handler
 * holds the request, none.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"
#include "util/siphash.h"
#include "net/transport.h"

#define MAX_HEADERS     100
#define RATE_SLOTS      4096
#define PARSE_MAX_CHUNK 65536
#define LINGER_MS       2000 /* input dropped after an error answer, before the close */

typedef struct http_conn http_conn_t;

typedef struct header {
    char *name, *value;
} header_t;

struct tern_http_request {
    http_conn_t *hc;
    const tern_http_route_t *route; /* a copy kept by the route table */
    char method[16];
    char *url, *path, *query;
    header_t headers[MAX_HEADERS];
    size_t n_headers;
    char host[256];
    char client[64];
    struct evbuffer *body;
    struct evbuffer *out_headers;
    size_t body_len;
    int streaming;  /* the route takes the body in chunks */
    int answered;   /* tern_http_respond() ran */
    int dispatched; /* on_request ran */
    int keep_alive;
    int head;
    int status; /* 404/405 found at the headers: answered once the request is in */
    void *data; /* the handler's */
};

struct http_conn {
    struct http_conn *prev, *next;
    struct transport *t;
    struct event *timer;
    struct event *resume_ev;
    http_parser parser;
    struct evbuffer *in;
    tern_http_request_t *req; /* being parsed or waiting for its answer */
    char peer[80];
    char peer_ip[64];
    int port;
    int secure;
    int via_proxy;
    int served;
    int in_request; /* bytes of a request came, not all of it yet */
    int waiting;    /* a complete request waits for its answer */
    int error;      /* status to answer after the parser stopped (413, 431) */
    int closing;
    int upgraded;
    int processing;
    size_t header_bytes;
    int last_was_value; /* header callbacks: a value came last */
    int need_reset;     /* answered: a fresh parser for the next request */
    int lingering;      /* answered an error: input is read and dropped until closed */
    int paused;         /* not read while a request waits and much more is queued */
};

static http_settings_t settings = {
    .max_header_size = 8192,
    .max_body_size = 1024 * 1024,
    .request_timeout_ms = 10000,
    .idle_timeout_ms = 60000,
    .max_requests_per_connection = 100,
};
static http_conn_t *all;
static size_t n_conns;

/* ---- routes ---- */

typedef struct route {
    struct route *next;
    tern_http_route_t r;
    char *method, *path;
    char *host; /* the module's host, preferred for requests to it; NULL = any */
    size_t path_len;
    void *owner;
} route_t;

static route_t *routes;

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int http_route_add(const tern_http_route_t *route, void *owner, const char *host)
{
    if (!route || !route->path || route->path[0] != '/' || !route->on_request)
        return -1;
    size_t len = strlen(route->path);
    while (len > 1 && route->path[len - 1] == '/')
        len--;
    for (route_t *r = routes; r; r = r->next)
        if (same_str(r->method, route->method) && same_str(r->host, host) && r->path_len == len &&
            strncmp(r->path, route->path, len) == 0)
            return -1;
    route_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->r = *route;
    r->path = strdup(route->path);
    r->method = route->method ? strdup(route->method) : NULL;
    r->host = host ? strdup(host) : NULL;
    if (!r->path || (route->method && !r->method) || (host && !r->host)) {
        free(r->path);
        free(r->method);
        free(r->host);
        free(r);
        return -1;
    }
    r->path_len = strlen(r->path);
    /* "/x/" and "/x" mean the same subtree */
    while (r->path_len > 1 && r->path[r->path_len - 1] == '/')
        r->path[--r->path_len] = '\0';
    r->r.path = r->path;
    r->r.method = r->method;
    r->owner = owner;
    r->next = routes;
    routes = r;
    return 0;
}

static void route_free(route_t *r)
{
    free(r->path);
    free(r->method);
    free(r->host);
    free(r);
}

void http_route_remove_owner(void *owner)
{
    route_t **p = &routes;
    while (*p) {
        route_t *r = *p;
        if (r->owner == owner) {
            /* A request it holds loses its handler: answered 503 at once. */
            for (http_conn_t *hc = all; hc; hc = hc->next)
                if (hc->req && hc->req->route == &r->r) {
                    hc->req->route = NULL;
                    if (hc->req->dispatched && !hc->req->answered)
                        tern_http_respond(hc->req, 503, "text/plain", "503 Service Unavailable\n",
                                          24);
                }
            *p = r->next;
            route_free(r);
        } else {
            p = &r->next;
        }
    }
}

void http_routes_clear(void)
{
    while (routes) {
        route_t *r = routes;
        routes = r->next;
        route_free(r);
    }
}

static int path_matches(const route_t *r, const char *path)
{
    if (r->path_len == 1)
        return path[0] == '/';
    return strncmp(path, r->path, r->path_len) == 0 &&
           (path[r->path_len] == '\0' || path[r->path_len] == '/');
}

/* Among routes for the same path: the one of the host asked for, then
 * one for any host, then another host's; a named method before any. */
static size_t route_score(const route_t *r, const char *host)
{
    size_t h = !r->host ? 2 : host && strcasecmp(r->host, host) == 0 ? 3 : 1;
    return r->path_len * 8 + h * 2 + (r->method ? 1 : 0);
}

const tern_http_route_t *http_route_find(const char *method, const char *path, const char *host,
                                         int *status)
{
    const route_t *best = NULL, *other = NULL;
    size_t best_score = 0;
    for (const route_t *r = routes; r; r = r->next) {
        if (!path_matches(r, path))
            continue;
        int method_ok = !r->method || strcmp(r->method, method) == 0 ||
                        (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
        if (method_ok) {
            size_t score = route_score(r, host);
            if (!best || score > best_score) {
                best = r;
                best_score = score;
            }
        } else if (!other || r->path_len > other->path_len) {
            other = r;
        }
    }
    if (best && (!other || best->path_len >= other->path_len)) {
        *status = 200;
        return &best->r;
    }
    *status = other ? 405 : 404;
    return NULL;
}

/* ---- settings, addresses, rate ---- */

void http_set_settings(const http_settings_t *s)
{
    settings = *s;
}

int http_addr_in(const char *ip, const char *const *list)
{
    unsigned char a[16], b[16];
    int fa = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (!list || inet_pton(fa, ip, a) != 1)
        return 0;
    for (size_t i = 0; list[i]; i++) {
        int fb = strchr(list[i], ':') ? AF_INET6 : AF_INET;
        if (fa == fb && inet_pton(fb, list[i], b) == 1 && memcmp(a, b, fa == AF_INET ? 4 : 16) == 0)
            return 1;
    }
    return 0;
}

/* Copy one address out of a header item: strip spaces, quotes, brackets
 * and a port; 0 when it is an IP address. */
static int clean_addr(const char *s, size_t len, char *out, size_t outlen)
{
    while (len && (*s == ' ' || *s == '\t' || *s == '"')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '"'))
        len--;
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *a = buf;
    if (a[0] == '[') { /* [v6] or [v6]:port */
        char *close = strchr(a, ']');
        if (!close)
            return -1;
        *close = '\0';
        a++;
    } else if (strchr(a, ':') && strchr(a, ':') == strrchr(a, ':')) {
        *strchr(a, ':') = '\0'; /* v4:port */
    }
    unsigned char bin[16];
    if (inet_pton(AF_INET, a, bin) != 1 && inet_pton(AF_INET6, a, bin) != 1)
        return -1;
    if (strlen(a) >= outlen)
        return -1;
    snprintf(out, outlen, "%s", a);
    return 0;
}

/* The addresses of the list, right to left: the first that is no trusted
 * proxy is the client. */
static int rightmost_untrusted(char addrs[][64], size_t n, const char *const *trusted, char *out,
                               size_t outlen)
{
    for (size_t i = n; i-- > 0;) {
        if (!http_addr_in(addrs[i], trusted) || i == 0) {
            snprintf(out, outlen, "%s", addrs[i]);
            return 0;
        }
    }
    return -1;
}

int http_forwarded_client(const char *xff, const char *forwarded, const char *const *trusted,
                          char *out, size_t outlen)
{
    char addrs[16][64];
    size_t n = 0;
    if (forwarded) { /* RFC 7239: for=... in each comma-separated element */
        const char *p = forwarded;
        while (*p && n < 16) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            for (size_t i = 0; i + 4 <= len; i++) {
                if (strncasecmp(p + i, "for=", 4) == 0 &&
                    (i == 0 || p[i - 1] == ';' || p[i - 1] == ' ')) {
                    const char *v = p + i + 4;
                    size_t vl = 0;
                    while (i + 4 + vl < len && v[vl] != ';')
                        vl++;
                    if (clean_addr(v, vl, addrs[n], sizeof(addrs[n])) == 0)
                        n++;
                    break;
                }
            }
            p += len;
            if (*p == ',')
                p++;
        }
        if (n)
            return rightmost_untrusted(addrs, n, trusted, out, outlen);
    }
    if (xff) {
        const char *p = xff;
        while (*p && n < 16) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            if (clean_addr(p, len, addrs[n], sizeof(addrs[n])) == 0)
                n++;
            p += len;
            if (*p == ',')
                p++;
        }
        if (n)
            return rightmost_untrusted(addrs, n, trusted, out, outlen);
    }
    return -1;
}

/* Requests per second per client address: token buckets in a fixed table
 * indexed by a keyed hash of the address (two addresses sharing a slot
 * share a bucket; the table stays small whatever the clients). */
typedef struct rate_slot {
    double tokens;
    long long at_ms;
} rate_slot_t;
static rate_slot_t *rate_table;
static unsigned char rate_key[SIPHASH_KEY_LEN];

static int rate_take(struct event_base *base, const char *ip)
{
    if (settings.requests_per_second <= 0)
        return 0;
    if (!rate_table) {
        rate_table = calloc(RATE_SLOTS, sizeof(*rate_table));
        if (!rate_table)
            return 0;
        evutil_secure_rng_get_bytes(rate_key, sizeof(rate_key));
    }
    uint64_t h = siphash24(rate_key, ip, strlen(ip));
    rate_slot_t *s = &rate_table[h % RATE_SLOTS];
    struct timeval tv;
    event_base_gettimeofday_cached(base, &tv);
    long long now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    double rate = (double)settings.requests_per_second, burst = rate * 10;
    if (s->at_ms == 0)
        s->tokens = burst;
    else
        s->tokens += (double)(now - s->at_ms) * rate / 1000.0;
    if (s->tokens > burst)
        s->tokens = burst;
    s->at_ms = now;
    if (s->tokens < 1)
        return -1;
    s->tokens -= 1;
    return 0;
}

/* ---- requests ---- */

static void req_free(tern_http_request_t *req)
{
    if (!req)
        return;
    free(req->url);
    for (size_t i = 0; i < req->n_headers; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    if (req->body)
        evbuffer_free(req->body);
    if (req->out_headers)
        evbuffer_free(req->out_headers);
    free(req);
}

static tern_http_request_t *req_new(http_conn_t *hc)
{
    tern_http_request_t *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->hc = hc;
    snprintf(req->client, sizeof(req->client), "%s", hc->peer_ip);
    return req;
}

const char *http_reason(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 416:
        return "Range Not Satisfiable";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    }
    return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

/* ---- connections ---- */

static int process(http_conn_t *hc);
static int parse_some(http_conn_t *hc);

static void arm_timer(http_conn_t *hc, long long ms)
{
    if (!hc->timer)
        return;
    if (ms <= 0) {
        event_del(hc->timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(hc->timer, &tv);
}

static void conn_close(http_conn_t *hc)
{
    if (hc->closing)
        return;
    hc->closing = 1;
    arm_timer(hc, 0);
    transport_close(hc->t);
}

/* Write an answer for the current request (headers from the request's
 * out_headers) and go on with the next one. */
static void write_answer(http_conn_t *hc, tern_http_request_t *req, int status,
                         const char *content_type, const char *body, size_t len, int close)
{
    struct evbuffer *out = transport_output(hc->t);
    int keep = !close && req && req->keep_alive && !hc->closing &&
               hc->served + 1 < settings.max_requests_per_connection;
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n", status,
                        http_reason(status), len);
    if (content_type)
        evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
    if (req && req->out_headers)
        evbuffer_add_buffer(out, req->out_headers);
    if (!keep)
        evbuffer_add_printf(out, "Connection: close\r\n");
    evbuffer_add(out, "\r\n", 2);
    if (len && !(req && req->head))
        evbuffer_add(out, body, len);
    log_info("http %s: %s %s %d", req ? req->client : hc->peer_ip, req ? req->method : "-",
             req && req->path ? req->path : "-", status);
    if (transport_queue_output(hc->t) < 0)
        return;
    hc->served++;
    if (req) {
        if (hc->req == req)
            hc->req = NULL;
        req_free(req);
    }
    hc->waiting = 0;
    hc->in_request = 0;
    if (!keep && hc->lingering) {
        evbuffer_drain(hc->in, evbuffer_get_length(hc->in));
        arm_timer(hc, LINGER_MS);
        return;
    }
    if (!keep) {
        conn_close(hc);
        return;
    }
    arm_timer(hc, settings.idle_timeout_ms);
    if (hc->paused) {
        hc->paused = 0;
        transport_resume_input(hc->t);
    }
    hc->need_reset = 1; /* not here: the parser may be running (a handler answered at once) */
    if (!hc->processing && evbuffer_get_length(hc->in) && hc->resume_ev)
        event_active(hc->resume_ev, 0, 0); /* the next pipelined request, from the loop */
}

/* An error ends the connection.  What the client is still sending is read
 * and dropped for a moment before the close: closing with unread input
 * would reset the connection, and the client could lose the answer. */
static void error_answer(http_conn_t *hc, int status)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));
    tern_http_request_t *req = hc->req;
    hc->req = NULL;
    if (req)
        req->keep_alive = 0;
    hc->lingering = 1;
    write_answer(hc, req, status, "text/plain; charset=utf-8", body, (size_t)n, 1);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    http_conn_t *hc = arg;
    (void)fd;
    (void)what;
    if (hc->closing || hc->upgraded)
        return;
    if (hc->lingering) {
        conn_close(hc);
        return;
    }
    if (hc->in_request && !hc->waiting) {
        log_info("http %s: request not complete in time", hc->peer);
        error_answer(hc, 408);
    } else if (!hc->waiting) {
        conn_close(hc); /* idle between requests */
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)process(arg);
}

/* ---- the parser's callbacks ---- */

static int count_header(http_conn_t *hc, size_t len)
{
    hc->header_bytes += len;
    if (hc->header_bytes > settings.max_header_size) {
        hc->error = 431;
        return -1;
    }
    return 0;
}

static int p_begin(http_parser *p)
{
    http_conn_t *hc = p->data;
    if (!hc->req && !(hc->req = req_new(hc)))
        return -1;
    if (!hc->in_request) {
        hc->in_request = 1;
        arm_timer(hc, settings.request_timeout_ms);
    }
    return 0;
}

static int append(char **s, const char *at, size_t len)
{
    size_t old = *s ? strlen(*s) : 0;
    char *n = realloc(*s, old + len + 1);
    if (!n)
        return -1;
    memcpy(n + old, at, len);
    n[old + len] = '\0';
    *s = n;
    return 0;
}

static int p_url(http_parser *p, const char *at, size_t len)
{
    http_conn_t *hc = p->data;
    if (count_header(hc, len) < 0)
        return -1;
    return append(&hc->req->url, at, len);
}

static int p_field(http_parser *p, const char *at, size_t len)
{
    http_conn_t *hc = p->data;
    tern_http_request_t *req = hc->req;
    if (count_header(hc, len) < 0)
        return -1;
    if (req->n_headers == 0 || hc->last_was_value) {
        if (req->n_headers == MAX_HEADERS) {
            hc->error = 431;
            return -1;
        }
        req->n_headers++;
    }
    hc->last_was_value = 0;
    return append(&req->headers[req->n_headers - 1].name, at, len);
}

static int p_value(http_parser *p, const char *at, size_t len)
{
    http_conn_t *hc = p->data;
    tern_http_request_t *req = hc->req;
    if (count_header(hc, len) < 0 || req->n_headers == 0)
        return -1;
    hc->last_was_value = 1;
    return append(&req->headers[req->n_headers - 1].value, at, len);
}

static void dispatch(http_conn_t *hc)
{
    tern_http_request_t *req = hc->req;
    req->dispatched = 1;
    req->route->on_request(req, req->route->arg);
}

static int p_headers_done(http_parser *p)
{
    http_conn_t *hc = p->data;
    tern_http_request_t *req = hc->req;
    for (size_t i = 0; i < req->n_headers; i++)
        if (!req->headers[i].value && !(req->headers[i].value = strdup("")))
            return -1;
    snprintf(req->method, sizeof(req->method), "%s", http_method_str(p->method));
    req->head = p->method == HTTP_HEAD;
    req->keep_alive = http_should_keep_alive(p);
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (!req->url || http_parser_parse_url(req->url, strlen(req->url), 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
        hc->error = 400;
        return -1;
    }
    /* path and query as NUL-terminated strings inside url */
    req->path = req->url + u.field_data[UF_PATH].off;
    if (u.field_set & (1 << UF_QUERY)) {
        req->query = req->url + u.field_data[UF_QUERY].off;
        req->query[u.field_data[UF_QUERY].len] = '\0';
    }
    req->path[u.field_data[UF_PATH].len] = '\0';
    const char *host = tern_http_header(req, "Host");
    if (host) {
        size_t n = 0;
        if (host[0] == '[') {
            while (host[n] && host[n] != ']')
                n++;
            if (host[n] == ']')
                n++;
        } else {
            while (host[n] && host[n] != ':')
                n++;
        }
        if (n >= sizeof(req->host))
            n = sizeof(req->host) - 1;
        for (size_t i = 0; i < n; i++)
            req->host[i] = (char)tolower((unsigned char)host[i]);
        req->host[n] = '\0';
    }
    if (hc->via_proxy)
        http_forwarded_client(tern_http_header(req, "X-Forwarded-For"),
                              tern_http_header(req, "Forwarded"), settings.trusted_proxies,
                              req->client, sizeof(req->client));
    if (rate_take(transport_base(hc->t), req->client) < 0) {
        hc->error = 429;
        return -1;
    }
    int status;
    req->route = http_route_find(req->method, req->path, req->host, &status);
    if (!req->route) { /* answered at the end: the connection carries on */
        req->status = status;
        if (p->content_length != ULLONG_MAX && p->content_length > settings.max_body_size) {
            hc->error = 413;
            return -1;
        }
        return 0;
    }
    if (req->route->on_body) {
        req->streaming = 1;
        if (req->route->max_body > 0 && p->content_length != ULLONG_MAX &&
            p->content_length > (unsigned long long)req->route->max_body) {
            hc->error = 413;
            return -1;
        }
        dispatch(hc);
        if (hc->req != req || hc->closing)
            return -1; /* answered (and freed) before the body: skip it */
    } else if (p->content_length != ULLONG_MAX && p->content_length > settings.max_body_size) {
        hc->error = 413;
        return -1;
    }
    return 0;
}

static int p_body(http_parser *p, const char *at, size_t len)
{
    http_conn_t *hc = p->data;
    tern_http_request_t *req = hc->req;
    if (!req)
        return -1; /* answered already (its module went away) */
    req->body_len += len;
    if (req->status) { /* 404 or 405: the body is dropped */
        if (req->body_len <= settings.max_body_size)
            return 0;
        hc->error = 413;
        return -1;
    }
    if (req->streaming) {
        arm_timer(hc, settings.request_timeout_ms); /* a slow body: time per chunk */
        if (!req->route)
            return -1;
        if (req->route->max_body > 0 && req->body_len > (size_t)req->route->max_body) {
            hc->error = 413;
            return -1;
        }
        int rc = req->route->on_body(req, at, len, req->route->arg);
        if (hc->req != req) /* answered: req is gone */
            return -1;
        if (rc < 0) {
            hc->error = 500;
            return -1;
        }
        return 0;
    }
    if (req->body_len > settings.max_body_size) {
        hc->error = 413;
        return -1;
    }
    if (!req->body && !(req->body = evbuffer_new()))
        return -1;
    return evbuffer_add(req->body, at, len);
}

static int p_complete(http_parser *p)
{
    http_conn_t *hc = p->data;
    tern_http_request_t *req = hc->req;
    if (!req)
        return -1;
    hc->waiting = 1;
    arm_timer(hc, 0);
    http_parser_pause(p, 1);
    if (req->status) {
        char body[64];
        int n = snprintf(body, sizeof(body), "%d %s\n", req->status, http_reason(req->status));
        write_answer(hc, req, req->status, "text/plain; charset=utf-8", body, (size_t)n, 0);
        return 0;
    }
    if (req->streaming) {
        int rc = req->route ? req->route->on_body(req, NULL, 0, req->route->arg) : -1;
        if (rc < 0 && hc->req == req)
            error_answer(hc, 500);
    } else {
        dispatch(hc);
    }
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = p_begin,
    .on_url = p_url,
    .on_header_field = p_field,
    .on_header_value = p_value,
    .on_headers_complete = p_headers_done,
    .on_body = p_body,
    .on_message_complete = p_complete,
};

/* Parse what waits in `in`.  0 to go on, -1 when the connection stopped
 * or waits for an answer. */
static int parse_some(http_conn_t *hc)
{
    size_t avail = evbuffer_get_length(hc->in);
    if (avail == 0)
        return -1;
    size_t chunk = avail > PARSE_MAX_CHUNK ? PARSE_MAX_CHUNK : avail;
    const char *data = (const char *)evbuffer_pullup(hc->in, (ev_ssize_t)chunk);
    if (!data)
        return -1;
    if (hc->need_reset) {
        http_parser_init(&hc->parser, HTTP_REQUEST);
        hc->parser.data = hc;
        hc->header_bytes = 0;
        hc->last_was_value = 0;
        hc->error = 0;
        hc->need_reset = 0;
    }
    if (!hc->req && !hc->in_request &&
        p_begin(&hc->parser) < 0) { /* deadline from the first byte */
        conn_close(hc);
        return -1;
    }
    size_t n = http_parser_execute(&hc->parser, &parser_settings, data, chunk);
    enum http_errno err = HTTP_PARSER_ERRNO(&hc->parser);
    if (hc->upgraded)
        return -1; /* the request took the connection; `in` was handed on */
    evbuffer_drain(hc->in, n);
    if (err == HPE_PAUSED) {
        if (hc->waiting) /* not yet answered: the next request waits */
            return -1;
        return 0;
    }
    if (err != HPE_OK) {
        if (hc->lingering || hc->closing || (hc->req && hc->req->answered))
            return -1;
        if (!hc->closing && !hc->waiting)
            error_answer(hc, hc->error ? hc->error : 400);
        return -1;
    }
    if (hc->parser.upgrade && !hc->waiting) {
        error_answer(hc, 400); /* an upgrade nobody took */
        return -1;
    }
    return n == 0 ? -1 : 0;
}

static void conn_free(http_conn_t *hc)
{
    if (hc->req) {
        tern_http_request_t *req = hc->req;
        hc->req = NULL;
        if (req->dispatched && !req->answered && req->route && req->route->on_abort)
            req->route->on_abort(req, req->route->arg);
        req_free(req);
    }
    if (hc->timer)
        event_free(hc->timer);
    if (hc->resume_ev)
        event_free(hc->resume_ev);
    if (hc->in)
        evbuffer_free(hc->in);
    if (hc->prev)
        hc->prev->next = hc->next;
    else if (all == hc)
        all = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    n_conns--;
    free(hc);
}

/* 1 when the connection was upgraded (and hc freed), else 0. */
static int process(http_conn_t *hc)
{
    if (hc->processing)
        return 0;
    hc->processing = 1;
    while (!hc->closing && !hc->lingering && !hc->upgraded && !hc->waiting && parse_some(hc) == 0)
        ;
    hc->processing = 0;
    if (hc->upgraded) {
        conn_free(hc);
        return 1;
    }
    return 0;
}

/* ---- the transport's callbacks ---- */

static int tr_data(void *ctx, const char *data, size_t len)
{
    http_conn_t *hc = ctx;
    if (hc->closing)
        return -1;
    if (hc->lingering)
        return 0; /* dropped */
    if (evbuffer_add(hc->in, data, len) < 0) {
        conn_close(hc);
        return -1;
    }
    /* A client that sends far more than a request's worth while one
     * waits for its answer is not read until the answer went out. */
    if (process(hc))
        return 0; /* upgraded: the new owner reads on */
    if (hc->waiting && evbuffer_get_length(hc->in) > settings.max_header_size + PARSE_MAX_CHUNK) {
        hc->paused = 1;
        transport_pause_input(hc->t); /* until the answer */
        return -1;
    }
    return hc->closing ? -1 : 0;
}

static void tr_close(void *ctx, transport_reason_t reason)
{
    http_conn_t *hc = ctx;
    (void)reason;
    hc->closing = 1;
    arm_timer(hc, 0);
}

static void tr_free(void *ctx)
{
    conn_free(ctx);
}

static const transport_ops_t http_ops = {
    .on_data = tr_data,
    .on_close = tr_close,
    .on_free = tr_free,
};

void http_accept(struct event_base *base, evutil_socket_t fd, const char *peer, SSL *ssl, int port)
{
    http_conn_t *hc = calloc(1, sizeof(*hc));
    if (!hc || !(hc->in = evbuffer_new())) {
        free(hc);
        if (ssl)
            SSL_free(ssl);
        evutil_closesocket(fd);
        return;
    }
    snprintf(hc->peer, sizeof(hc->peer), "%s", peer);
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    if (peer[0] == '[' && n >= 2) {
        peer++;
        n -= 2;
    }
    snprintf(hc->peer_ip, sizeof(hc->peer_ip), "%.*s", (int)n, peer);
    hc->port = port;
    hc->secure = ssl != NULL;
    hc->via_proxy = http_addr_in(hc->peer_ip, settings.trusted_proxies);
    http_parser_init(&hc->parser, HTTP_REQUEST);
    hc->parser.data = hc;
    hc->timer = evtimer_new(base, on_timer, hc);
    hc->resume_ev = event_new(base, -1, 0, on_resume, hc);
    transport_params_t params = {
        .kind = "http", .peer = hc->peer, .idle_ms = 0, .max_output = 4 * 1024 * 1024};
    hc->next = all;
    if (all)
        all->prev = hc;
    all = hc;
    n_conns++;
    hc->t = transport_new(base, fd, ssl, &params, &http_ops, hc);
    if (!hc->t || !hc->timer || !hc->resume_ev) {
        if (hc->t)
            transport_destroy(hc->t); /* frees hc from the loop */
        else
            conn_free(hc);
        return;
    }
    arm_timer(hc, settings.idle_timeout_ms);
}

size_t http_conn_count(void)
{
    return n_conns;
}

void http_close_all(void)
{
    for (http_conn_t *hc = all; hc; hc = hc->next)
        if (!hc->closing)
            conn_close(hc);
}

/* The owner of an upgraded transport until the caller sets its own: it
 * reads nothing, and frees nothing of ours. */
static int orphan_data(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return -1;
}

static void orphan_close(void *ctx, transport_reason_t reason)
{
    (void)ctx;
    (void)reason;
}

static void orphan_free(void *ctx)
{
    (void)ctx;
}

static const transport_ops_t orphan_ops = {
    .on_data = orphan_data, .on_close = orphan_close, .on_free = orphan_free};

struct transport *http_upgrade(tern_http_request_t *req, const char *headers, struct evbuffer *rest)
{
    http_conn_t *hc = req->hc;
    if (!hc->parser.upgrade || hc->closing) {
        tern_http_respond(req, 400, "text/plain", "400 Bad Request\n", 16);
        return NULL;
    }
    struct transport *t = hc->t;
    struct evbuffer *out = transport_output(t);
    evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", headers);
    if (transport_queue_output(t) < 0) {
        hc->closing = 1;
        return NULL;
    }
    log_info("http %s: %s %s 101", req->client, req->method, req->path);
    /* What followed the request is the new protocol's: the parser stopped
     * at the end of the request (paused), so it is all still in `in`
     * after the bytes it took. */
    struct evbuffer_ptr end = evbuffer_search(hc->in, "\r\n\r\n", 4, NULL);
    size_t skip = 4;
    if (end.pos < 0) {
        end = evbuffer_search(hc->in, "\n\n", 2, NULL);
        skip = 2;
    }
    if (end.pos >= 0)
        evbuffer_drain(hc->in, (size_t)end.pos + skip);
    evbuffer_add_buffer(rest, hc->in);
    hc->req = NULL;
    req_free(req);
    hc->upgraded = 1;
    transport_set_owner(t, "http", &orphan_ops, NULL);
    arm_timer(hc, 0);
    if (!hc->processing)
        conn_free(hc);
    return t;
}

/* ---- the request API ---- */

const char *tern_http_method(const tern_http_request_t *req)
{
    return req->method;
}

const char *tern_http_path(const tern_http_request_t *req)
{
    return req->path;
}

const char *tern_http_query(const tern_http_request_t *req)
{
    return req->query;
}

const char *tern_http_header(const tern_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value ? req->headers[i].value : "";
    return NULL;
}

const char *tern_http_host(const tern_http_request_t *req)
{
    return req->host;
}

const char *tern_http_client(const tern_http_request_t *req)
{
    return req->client;
}

int tern_http_secure(const tern_http_request_t *req)
{
    return req->hc->secure;
}

int http_request_port(const tern_http_request_t *req)
{
    return req->hc->port;
}

const char *http_request_peer(const tern_http_request_t *req)
{
    return req->hc->peer;
}

int http_request_via_proxy(const tern_http_request_t *req)
{
    return req->hc->via_proxy;
}

const char *tern_http_body(const tern_http_request_t *req, size_t *len)
{
    size_t n = req->body ? evbuffer_get_length(req->body) : 0;
    if (len)
        *len = n;
    if (!n)
        return "";
    return (const char *)evbuffer_pullup(req->body, -1);
}

void tern_http_set_data(tern_http_request_t *req, void *data)
{
    req->data = data;
}

void *tern_http_data(const tern_http_request_t *req)
{
    return req->data;
}

int tern_http_add_header(tern_http_request_t *req, const char *name, const char *value)
{
    if (req->answered || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -1;
    if (!req->out_headers && !(req->out_headers = evbuffer_new()))
        return -1;
    return evbuffer_add_printf(req->out_headers, "%s: %s\r\n", name, value) < 0 ? -1 : 0;
}

int tern_http_respond(tern_http_request_t *req, int status, const char *content_type,
                      const char *body, size_t len)
{
    http_conn_t *hc = req->hc;
    if (req->answered)
        return -1;
    req->answered = 1;
    if (hc->closing) {
        if (hc->req == req)
            hc->req = NULL;
        req_free(req);
        return -1;
    }
    /* Answered before its body came (streaming route): the body is not
     * read, so the connection cannot carry another request. */
    int close = req->streaming && !hc->waiting;
    if (close)
        hc->lingering = 1;
    write_answer(hc, req, status, content_type, body, len, close);
    return 0;
}
