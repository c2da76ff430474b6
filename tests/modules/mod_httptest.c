/*
 * mod_httptest.c — a module built only for the tests (never installed):
 * paths on the HTTP server through tern/http.h, for
 * tests/integration/test_websocket.py.
 *
 *  POST /test/echo       the body held in memory comes back, with the
 *                        client's address in X-Client;
 *  PUT  /test/upload     the body streamed in chunks (at most 100000
 *                        bytes): "N bytes, sum S"; X-Refuse: 1 gets 403
 *                        before the body;
 *  GET  /test/later      answered 300 ms later (a long poll), "later".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <tern/http.h>
#include <tern/module.h>

typedef struct upload {
    size_t n;
    unsigned long sum;
} upload_t;

static void echo(tern_http_request_t *req, void *arg)
{
    (void)arg;
    size_t len;
    const char *body = tern_http_body(req, &len);
    tern_http_add_header(req, "X-Client", tern_http_client(req));
    tern_http_respond(req, 200, "text/plain", body, len);
}

static void upload_start(tern_http_request_t *req, void *arg)
{
    (void)arg;
    if (tern_http_header(req, "X-Refuse")) {
        tern_http_respond(req, 403, "text/plain", "refused\n", 8);
        return;
    }
    tern_http_set_data(req, calloc(1, sizeof(upload_t)));
}

static int upload_body(tern_http_request_t *req, const char *data, size_t len, void *arg)
{
    (void)arg;
    upload_t *u = tern_http_data(req);
    if (!u)
        return -1;
    if (data) {
        u->n += len;
        for (size_t i = 0; i < len; i++)
            u->sum += (unsigned char)data[i];
        return 0;
    }
    char out[64];
    int n = snprintf(out, sizeof(out), "%zu bytes, sum %lu", u->n, u->sum);
    free(u);
    tern_http_set_data(req, NULL);
    tern_http_respond(req, 201, "text/plain", out, (size_t)n);
    return 0;
}

static void upload_abort(tern_http_request_t *req, void *arg)
{
    (void)arg;
    free(tern_http_data(req));
}

typedef struct later {
    tern_http_request_t *req;
    tern_timer_t *timer;
} later_t;

static void later_fire(tern_module_ctx_t *m, void *arg)
{
    (void)m;
    later_t *l = arg;
    if (l->req) {
        tern_http_set_data(l->req, NULL);
        tern_http_respond(l->req, 200, "text/plain", "later", 5);
    }
    free(l);
}

static tern_module_ctx_t *self;

static void later_start(tern_http_request_t *req, void *arg)
{
    (void)arg;
    later_t *l = calloc(1, sizeof(*l));
    if (!l || !(l->timer = tern_timer_add(self, 300, 0, later_fire, l))) {
        free(l);
        tern_http_respond(req, 500, NULL, NULL, 0);
        return;
    }
    l->req = req;
    tern_http_set_data(req, l);
}

static void later_abort(tern_http_request_t *req, void *arg)
{
    (void)arg;
    later_t *l = tern_http_data(req);
    if (l)
        l->req = NULL; /* the timer frees it */
}

static int load(tern_module_ctx_t *m)
{
    self = m;
    static const tern_http_route_t routes[] = {
        {.method = "POST", .path = "/test/echo", .on_request = echo},
        {.method = "PUT",
         .path = "/test/upload",
         .on_request = upload_start,
         .on_body = upload_body,
         .on_abort = upload_abort,
         .max_body = 100000},
        {.method = "GET",
         .path = "/test/later",
         .on_request = later_start,
         .on_abort = later_abort},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (tern_http_register(m, &routes[i]) != 0)
            return -1;
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "httptest",
    .description = "test only: paths on the HTTP server",
    .load = load,
};
