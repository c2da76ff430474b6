/*
 * test_http.c — unit tests of the pure parts of the HTTP server and the
 * WebSocket handshake: path routing (longest path, method, 404/405,
 * subtree boundaries, removal by owner), the client address behind
 * trusted proxies (X-Forwarded-For, Forwarded), address lists, the
 * Sec-WebSocket-Accept value (RFC 6455 §1.3's example) and header tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "xmpp/websocket.h"
#include "check.h"

static void on_req(tern_http_request_t *req, void *arg)
{
    (void)req;
    (void)arg;
}

static int a, b, c, d;

static void test_routing(void)
{
    tern_http_route_t r1 = {.method = "GET", .path = "/files", .on_request = on_req, .arg = &a};
    tern_http_route_t r2 = {.method = "PUT", .path = "/files/", .on_request = on_req, .arg = &b};
    tern_http_route_t r3 = {.method = NULL, .path = "/files/big", .on_request = on_req, .arg = &c};
    tern_http_route_t r4 = {.method = "GET", .path = "/", .on_request = on_req, .arg = &d};
    CHECK(http_route_add(&r1, NULL, NULL) == 0);
    CHECK(http_route_add(&r2, &b, NULL) == 0);
    CHECK(http_route_add(&r3, &c, NULL) == 0);
    CHECK(http_route_add(&r1, NULL, NULL) == -1); /* same method and path */
    tern_http_route_t bad = {.method = "GET", .path = "files", .on_request = on_req};
    CHECK(http_route_add(&bad, NULL, NULL) == -1);

    int status = 0;
    const tern_http_route_t *r = http_route_find("GET", "/files", NULL, &status);
    CHECK(r && r->arg == &a && status == 200);
    r = http_route_find("GET", "/files/x/y", NULL, &status);
    CHECK(r && r->arg == &a);
    r = http_route_find("HEAD", "/files/x", NULL, &status); /* HEAD goes where GET goes */
    CHECK(r && r->arg == &a);
    r = http_route_find("PUT", "/files/x", NULL, &status); /* "/files/" is "/files" */
    CHECK(r && r->arg == &b);
    r = http_route_find("DELETE", "/files/x", NULL, &status);
    CHECK(!r && status == 405);
    r = http_route_find("DELETE", "/files/big/1", NULL, &status); /* any method, longer path */
    CHECK(r && r->arg == &c);
    r = http_route_find("GET", "/filesystem", NULL, &status); /* not under /files */
    CHECK(!r && status == 404);
    CHECK(http_route_add(&r4, NULL, NULL) == 0);
    r = http_route_find("GET", "/filesystem", NULL, &status); /* "/" takes everything */
    CHECK(r && r->arg == &d);
    r = http_route_find("POST", "/filesystem", NULL, &status);
    CHECK(!r && status == 405);

    /* The same path for two hosts: each gets its own; a third host gets
     * one of them. */
    static int ha, hb;
    tern_http_route_t up_a = {.method = "PUT", .path = "/up", .on_request = on_req, .arg = &ha};
    tern_http_route_t up_b = {.method = "PUT", .path = "/up/", .on_request = on_req, .arg = &hb};
    CHECK(http_route_add(&up_a, &ha, "a.test") == 0);
    CHECK(http_route_add(&up_b, &hb, "b.test") == 0);
    CHECK(http_route_add(&up_b, &hb, "b.test") == -1);
    r = http_route_find("PUT", "/up/1", "a.test", &status);
    CHECK(r && r->arg == &ha);
    r = http_route_find("PUT", "/up/1", "B.TEST", &status);
    CHECK(r && r->arg == &hb);
    r = http_route_find("PUT", "/up/1", "c.test", &status);
    CHECK(r && (r->arg == &ha || r->arg == &hb));
    http_route_remove_owner(&ha);
    r = http_route_find("PUT", "/up/1", "a.test", &status);
    CHECK(r && r->arg == &hb);
    http_route_remove_owner(&hb);

    http_route_remove_owner(&b);
    r = http_route_find("PUT", "/files/x", NULL, &status);
    CHECK(!r && status == 405);
    http_routes_clear();
    r = http_route_find("GET", "/files", NULL, &status);
    CHECK(!r && status == 404);
}

static void test_forwarded(void)
{
    const char *trusted[] = {"127.0.0.1", "10.0.0.2", "::1", NULL};
    char out[64] = "";
    CHECK(http_forwarded_client("203.0.113.7", NULL, trusted, out, sizeof out) == 0);
    CHECK_STR(out, "203.0.113.7");
    /* the right-most address that is no proxy of ours: a client cannot
     * forge its way past the proxies by sending its own header */
    CHECK(http_forwarded_client("1.2.3.4, 203.0.113.7, 10.0.0.2", NULL, trusted, out, sizeof out) ==
          0);
    CHECK_STR(out, "203.0.113.7");
    CHECK(http_forwarded_client(NULL, "for=192.0.2.60;proto=http;by=203.0.113.43", trusted, out,
                                sizeof out) == 0);
    CHECK_STR(out, "192.0.2.60");
    CHECK(http_forwarded_client(NULL, "for=\"[2001:db8:cafe::17]:4711\"", trusted, out,
                                sizeof out) == 0);
    CHECK_STR(out, "2001:db8:cafe::17");
    CHECK(http_forwarded_client(NULL, "For=198.51.100.17, for=10.0.0.2", trusted, out,
                                sizeof out) == 0);
    CHECK_STR(out, "198.51.100.17");
    /* Forwarded wins over X-Forwarded-For */
    CHECK(http_forwarded_client("1.1.1.1", "for=2.2.2.2", trusted, out, sizeof out) == 0);
    CHECK_STR(out, "2.2.2.2");
    strcpy(out, "kept");
    CHECK(http_forwarded_client("unknown, not-an-ip", "for=_hidden", trusted, out, sizeof out) ==
          -1);
    CHECK_STR(out, "kept");
    CHECK(http_forwarded_client(NULL, NULL, trusted, out, sizeof out) == -1);
    /* only proxies: the left-most is the best we know */
    CHECK(http_forwarded_client("10.0.0.2, 127.0.0.1", NULL, trusted, out, sizeof out) == 0);
    CHECK_STR(out, "10.0.0.2");
}

static void test_addr_in(void)
{
    const char *list[] = {"127.0.0.1", "2001:db8::1", NULL};
    CHECK(http_addr_in("127.0.0.1", list));
    CHECK(http_addr_in("2001:0db8:0::1", list)); /* compared as addresses */
    CHECK(!http_addr_in("127.0.0.2", list));
    CHECK(!http_addr_in("nonsense", list));
    CHECK(!http_addr_in("127.0.0.1", NULL));
}

static void test_websocket_handshake(void)
{
    char out[64];
    /* RFC 6455 §1.3 */
    CHECK(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out, sizeof out) == 0);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(ws_accept_key("c2hvcnQ=", out, sizeof out) == -1); /* not 16 bytes */
    CHECK(ws_accept_key("!!!", out, sizeof out) == -1);
    CHECK(ws_header_has_token("keep-alive, Upgrade", "upgrade"));
    CHECK(ws_header_has_token("xmpp", "xmpp"));
    CHECK(ws_header_has_token("chat , xmpp ", "xmpp"));
    CHECK(!ws_header_has_token("xmpp-2", "xmpp"));
    CHECK(!ws_header_has_token("", "xmpp"));
    CHECK_STR(http_reason(431), "Request Header Fields Too Large");
}

int main(void)
{
    test_routing();
    test_forwarded();
    test_addr_in();
    test_websocket_handshake();
    return check_summary();
}
