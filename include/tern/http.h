/*
 * tern/http.h — paths on the HTTP server (the http and https listeners).
 *
 * A module registers a path like it hooks an event: a method, a path and
 * a handler.  The server parses the request (request line, headers, body
 * within the limits of the `http:` section), finds the route with the
 * longest matching path and calls its handler with a request object; the
 * handler answers with tern_http_respond(), at once or later (a long
 * poll), once per request.  Requests on one connection are answered in
 * order: the next one is not read before the current one is answered.
 *
 * A path "/upload" matches "/upload" and everything under "/upload/"; the
 * longest registered path wins.  A path that matches with another method
 * only gets 405; none at all, 404.
 *
 * Bodies: without on_body, the body is held in memory (up to
 * http.max_body_size, 413 beyond) and on_request runs when it is
 * complete (tern_http_body()).  With on_body, on_request runs as soon as
 * the headers are in (it may answer at once, e.g. 403, and the body is
 * then skipped), then on_body runs for each chunk as it arrives, and once
 * more with data NULL and len 0 at the end; the route's max_body (0: no
 * limit but the size the client announced) bounds it.
 *
 * Routes go away with the module (unload, reload).  Paths are shared by
 * all listeners; a module loaded on several hosts may register the same
 * path on each, and a request goes to the one of the host its Host header
 * names (else to one of them).  tern_http_host() says which one the
 * client asked for.
 */
#ifndef TERN_HTTP_H
#define TERN_HTTP_H

#include <stddef.h>
#include <tern/defs.h>

typedef struct tern_module_ctx tern_module_ctx_t;
typedef struct tern_http_request tern_http_request_t;

typedef struct tern_http_route {
    const char *method; /* "GET", "POST", "PUT"...; NULL = any */
    const char *path;   /* "/upload": itself and what is under "/upload/" */
    /* The request is complete (or, with on_body, its headers are). */
    void (*on_request)(tern_http_request_t *req, void *arg);
    /* A chunk of the body (borrowed); data NULL at the end.  Return 0, or
     * -1 to give up (answer first, else the client gets 500). */
    int (*on_body)(tern_http_request_t *req, const char *data, size_t len, void *arg);
    /* The client went away before the answer (a long poll); NULL allowed.
     * The request is gone after this call. */
    void (*on_abort)(tern_http_request_t *req, void *arg);
    long long max_body; /* with on_body: bytes allowed (413 beyond); 0 = no limit */
    void *arg;
} tern_http_route_t;

/* Register a route (copied; the strings must outlive the module).  0, or
 * -1 when the path does not start with '/' or the same method and path
 * are taken on this module's host. */
TERN_API int tern_http_register(tern_module_ctx_t *m, const tern_http_route_t *route);

/* The request.  Strings are the server's, valid until the answer. */
TERN_API const char *tern_http_method(const tern_http_request_t *req);
TERN_API const char *tern_http_path(const tern_http_request_t *req);  /* without the query */
TERN_API const char *tern_http_query(const tern_http_request_t *req); /* after '?', or NULL */
/* A header by name (case-insensitive), the first of that name, or NULL. */
TERN_API const char *tern_http_header(const tern_http_request_t *req, const char *name);
/* The Host header without a port, lowercase; "" when none. */
TERN_API const char *tern_http_host(const tern_http_request_t *req);
/* The client's address: the peer's, or the one a trusted proxy named. */
TERN_API const char *tern_http_client(const tern_http_request_t *req);
/* 1 over TLS (https listener), else 0. */
TERN_API int tern_http_secure(const tern_http_request_t *req);
/* The body held in memory (routes without on_body); `len` may be NULL. */
TERN_API const char *tern_http_body(const tern_http_request_t *req, size_t *len);

/* The handler's own pointer for this request (a streamed body's state);
 * NULL until set.  Freeing it is the handler's (at the end, or on_abort). */
TERN_API void tern_http_set_data(tern_http_request_t *req, void *data);
TERN_API void *tern_http_data(const tern_http_request_t *req);

/* A header for the answer (before tern_http_respond()).  0 or -1. */
TERN_API int tern_http_add_header(tern_http_request_t *req, const char *name, const char *value);
/* Answer with `status` and `len` bytes of `body` (copied; NULL with len 0
 * for none) of `content_type` (NULL = none).  The request is gone after
 * this call.  0, or -1 when the client went away. */
TERN_API int tern_http_respond(tern_http_request_t *req, int status, const char *content_type,
                               const char *body, size_t len);

#endif
