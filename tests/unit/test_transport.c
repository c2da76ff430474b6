/*
 * test_transport.c — unit tests for src/net/transport.c and the client
 * side of src/tls/tls.c.
 *
 * Transports over a socketpair or loopback TCP, driven by a private
 * event_base: bytes both ways, the output queue written at the end of the
 * loop turn, close (graceful and by the peer), the slow-reader limit,
 * outgoing connects (success and refusal), STARTTLS on both sides, direct
 * TLS on an outgoing connect, and the check of the server's certificate
 * against a test CA made here with the OpenSSL API: the right name passes;
 * a wrong name, an expired certificate and one from an untrusted CA fail
 * with their reason.
 */
#include "net/transport.h"
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static struct event_base *base;

/* One end: what its callbacks saw. */
typedef struct end {
    transport_t *t;
    char got[65536];
    size_t n;
    int drained, connected, tls_start, tls_ready, closed, freed;
    transport_reason_t reason;
    tls_verify_t verify; /* at on_close or on_tls_ready */
} end_t;

static int e_data(void *ctx, const char *data, size_t len)
{
    end_t *e = ctx;
    if (e->n + len <= sizeof(e->got)) {
        memcpy(e->got + e->n, data, len);
        e->n += len;
    }
    return 0;
}

static void e_drained(void *ctx)
{
    ((end_t *)ctx)->drained++;
}

static void e_connected(void *ctx)
{
    ((end_t *)ctx)->connected++;
}

static int e_tls_start(void *ctx)
{
    ((end_t *)ctx)->tls_start++;
    return 0;
}

static void e_tls_ready(void *ctx)
{
    end_t *e = ctx;
    e->tls_ready++;
    e->verify = transport_tls_verify(e->t);
}

static void e_close(void *ctx, transport_reason_t reason)
{
    end_t *e = ctx;
    e->closed++;
    e->reason = reason;
    e->verify = transport_tls_verify(e->t);
}

static void e_free(void *ctx)
{
    ((end_t *)ctx)->freed++;
}

static const transport_ops_t ops = {
    .on_data = e_data,
    .on_drained = e_drained,
    .on_connected = e_connected,
    .on_tls_start = e_tls_start,
    .on_tls_ready = e_tls_ready,
    .on_close = e_close,
    .on_free = e_free,
};

static const transport_params_t params = {
    .kind = "test", .peer = "pair", .idle_ms = 0, .max_output = 1 << 20};

/* Run the loop until *flag reaches `want` (or two seconds pass). */
static void run_until(const int *flag, int want)
{
    for (int i = 0; i < 2000 && *flag < want; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        if (*flag < want)
            usleep(1000);
    }
}

static void run_until_bytes(const end_t *e, size_t want)
{
    for (int i = 0; i < 2000 && e->n < want; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        if (e->n < want)
            usleep(1000);
    }
}

static void pair_fds(int fd[2])
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0);
    evutil_make_socket_nonblocking(fd[0]);
    evutil_make_socket_nonblocking(fd[1]);
}

static void put(transport_t *t, const char *s)
{
    evbuffer_add(transport_output(t), s, strlen(s));
    CHECK(transport_queue_output(t) == 0);
}

static int got_is(const end_t *e, const char *s)
{
    return e->n == strlen(s) && memcmp(e->got, s, e->n) == 0;
}

/* Bytes both ways; the queue leaves at the end of the turn, in order. */
static void test_bytes_and_close(void)
{
    int fd[2];
    pair_fds(fd);
    end_t a = {0}, b = {0};
    a.t = transport_new(base, fd[0], NULL, &params, &ops, &a);
    b.t = transport_new(base, fd[1], NULL, &params, &ops, &b);
    CHECK(a.t && b.t);
    if (!a.t || !b.t)
        return;
    put(a.t, "hello ");
    put(a.t, "world");
    CHECK(transport_queued(a.t) == 11); /* nothing written before the loop runs */
    run_until_bytes(&b, 11);
    CHECK(got_is(&b, "hello world"));
    CHECK(transport_queued(a.t) == 0);
    CHECK(a.drained == 1); /* both pieces left in one write */
    put(b.t, "back");
    run_until_bytes(&a, 4);
    CHECK(got_is(&a, "back"));

    /* A graceful close writes what is queued first; the peer sees the end. */
    put(a.t, "bye");
    transport_close(a.t);
    CHECK(a.closed == 1 && a.reason == TRANSPORT_CLOSED_LOCAL);
    CHECK(a.freed == 0); /* never under the caller's feet */
    run_until(&b.closed, 1);
    CHECK(b.n == 11 + 3 && memcmp(b.got + 11, "bye", 3) == 0);
    CHECK(b.closed == 1 && b.reason == TRANSPORT_CLOSED_PEER);
    run_until(&b.freed, 1);
    run_until(&a.freed, 1);
    CHECK(a.freed == 1 && b.freed == 1);
    CHECK(a.closed == 1 && b.closed == 1);
}

/* Output past max_output closes the transport as a slow reader. */
static void test_slow_reader(void)
{
    int fd[2];
    pair_fds(fd);
    end_t a = {0};
    transport_params_t p = params;
    p.max_output = 100;
    a.t = transport_new(base, fd[0], NULL, &p, &ops, &a);
    CHECK(a.t != NULL);
    if (!a.t)
        return;
    char big[200];
    memset(big, 'x', sizeof(big));
    evbuffer_add(transport_output(a.t), big, sizeof(big));
    CHECK(transport_queue_output(a.t) == -1);
    CHECK(a.closed == 1 && a.reason == TRANSPORT_SLOW_READER);
    CHECK(transport_dying(a.t));
    run_until(&a.freed, 1);
    CHECK(a.freed == 1);
    close(fd[1]);
}

/* A listening loopback socket; its port in *port. */
static int listen_loopback(struct sockaddr_in *sin)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(*sin);
    CHECK(bind(l, (struct sockaddr *)sin, sizeof(*sin)) == 0);
    CHECK(listen(l, 4) == 0);
    CHECK(getsockname(l, (struct sockaddr *)sin, &len) == 0);
    evutil_make_socket_nonblocking(l);
    return l;
}

static int accept_one(int l)
{
    for (int i = 0; i < 2000; i++) {
        int fd = accept(l, NULL, NULL);
        if (fd >= 0) {
            evutil_make_socket_nonblocking(fd);
            return fd;
        }
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
    return -1;
}

/* transport_connect(): output queued early waits for the connection. */
static void test_connect(void)
{
    struct sockaddr_in sin;
    int l = listen_loopback(&sin);
    end_t c = {0}, s = {0};
    c.t = transport_connect(base, (struct sockaddr *)&sin, sizeof(sin), NULL, &params, &ops, &c);
    CHECK(c.t != NULL);
    if (!c.t)
        return;
    put(c.t, "early");
    int fd = accept_one(l);
    CHECK(fd >= 0);
    s.t = transport_new(base, fd, NULL, &params, &ops, &s);
    run_until(&c.connected, 1);
    CHECK(c.connected == 1);
    run_until_bytes(&s, 5);
    CHECK(got_is(&s, "early"));
    put(s.t, "reply");
    run_until_bytes(&c, 5);
    CHECK(got_is(&c, "reply"));
    transport_destroy(c.t);
    transport_destroy(s.t);
    run_until(&c.freed, 1);
    run_until(&s.freed, 1);
    CHECK(c.freed == 1 && s.freed == 1);

    /* Nobody listens any more: the failure comes back from the loop. */
    close(l);
    end_t f = {0};
    f.t = transport_connect(base, (struct sockaddr *)&sin, sizeof(sin), NULL, &params, &ops, &f);
    CHECK(f.t != NULL);
    CHECK(f.closed == 0);
    run_until(&f.freed, 1);
    CHECK(f.closed == 1 && f.reason == TRANSPORT_CONNECT_FAILED && f.connected == 0);
    CHECK(f.freed == 1);
}

/* ---- a test CA made here ---- */

static char dir[64], ca_file[128], other_ca_file[128];
static EVP_PKEY *ca_key, *other_key, *srv_key;
static X509 *ca_cert, *other_cert, *good_cert, *expired_cert, *stranger_cert;

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    CHECK(ext != NULL);
    if (ext) {
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
}

/* A certificate for `name` with `key`, valid from `from_s` to `to_s`
 * seconds from now, signed by issuer/issuer_key (NULL: self-signed CA). */
static X509 *make_cert(const char *name, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       long from_s, long to_s)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), to_s);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    if (!issuer) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        char san[128];
        snprintf(san, sizeof(san), "DNS:%s", name);
        add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
        add_ext(x, issuer, NID_subject_alt_name, san);
        add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
    }
    CHECK(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        PEM_write_X509(f, x);
        fclose(f);
    }
}

static void make_pki(void)
{
    snprintf(dir, sizeof dir, "/tmp/tern-transport-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", dir);
    snprintf(other_ca_file, sizeof other_ca_file, "%s/other.pem", dir);
    ca_key = EVP_EC_gen("P-256");
    other_key = EVP_EC_gen("P-256");
    srv_key = EVP_EC_gen("P-256");
    ca_cert = make_cert("Test CA", ca_key, NULL, NULL, -3600, 86400);
    other_cert = make_cert("Other CA", other_key, NULL, NULL, -3600, 86400);
    good_cert = make_cert("good.test", srv_key, ca_cert, ca_key, -3600, 86400);
    expired_cert = make_cert("good.test", srv_key, ca_cert, ca_key, -2 * 86400, -86400);
    stranger_cert = make_cert("good.test", srv_key, other_cert, other_key, -3600, 86400);
    write_pem(ca_file, ca_cert);
    write_pem(other_ca_file, other_cert);
}

static void free_pki(void)
{
    X509 *certs[] = {ca_cert, other_cert, good_cert, expired_cert, stranger_cert};
    for (size_t i = 0; i < sizeof certs / sizeof certs[0]; i++)
        X509_free(certs[i]);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(srv_key);
    unlink(ca_file);
    unlink(other_ca_file);
    rmdir(dir);
}

/* A server-side SSL presenting `cert`. */
static SSL *server_ssl(X509 *cert)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, srv_key);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL keeps its reference */
    return ssl;
}

/* Direct TLS over a socketpair: the server presents `cert`, the client
 * asks for `name`.  Returns the client's outcome; *client_closed whether
 * its handshake failed. */
static tls_verify_t tls_pair(tls_client_t *tc, X509 *cert, const char *name, int require,
                             int *client_closed)
{
    int fd[2];
    pair_fds(fd);
    end_t c = {0}, s = {0};
    SSL *cssl = tls_client_ssl(tc, name, require, NULL);
    CHECK(cssl != NULL);
    s.t = transport_new(base, fd[0], server_ssl(cert), &params, &ops, &s);
    c.t = transport_new(base, fd[1], cssl, &params, &ops, &c);
    CHECK(c.t && s.t);
    if (!c.t || !s.t)
        return TLS_VERIFY_FAILED;
    for (int i = 0; i < 2000 && !c.tls_ready && !c.closed; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(500);
    }
    if (c.tls_ready && !c.closed) {
        CHECK(transport_ssl(c.t) != NULL);
        put(c.t, "<ping/>");
        run_until_bytes(&s, 7);
        CHECK(got_is(&s, "<ping/>"));
        transport_close(c.t);
    }
    if (!s.closed)
        transport_destroy(s.t);
    run_until(&c.freed, 1);
    run_until(&s.freed, 1);
    CHECK(c.freed == 1 && s.freed == 1);
    *client_closed = c.tls_ready == 0;
    return c.verify;
}

static void test_verify(void)
{
    char err[256];
    tls_client_t *tc = tls_client_new(ca_file, err, sizeof err);
    CHECK(tc != NULL);
    if (!tc)
        return;
    int failed = 0;
    CHECK(tls_pair(tc, good_cert, "good.test", 1, &failed) == TLS_VERIFY_OK);
    CHECK(!failed);
    CHECK(tls_pair(tc, good_cert, "GOOD.test", 1, &failed) == TLS_VERIFY_OK);
    CHECK(!failed);
    CHECK(tls_pair(tc, good_cert, "evil.test", 1, &failed) == TLS_VERIFY_WRONG_NAME);
    CHECK(failed);
    CHECK(tls_pair(tc, expired_cert, "good.test", 1, &failed) == TLS_VERIFY_EXPIRED);
    CHECK(failed);
    CHECK(tls_pair(tc, stranger_cert, "good.test", 1, &failed) == TLS_VERIFY_UNTRUSTED);
    CHECK(failed);
    /* Report only: the handshake completes and the reason is still given. */
    CHECK(tls_pair(tc, good_cert, "evil.test", 0, &failed) == TLS_VERIFY_WRONG_NAME);
    CHECK(!failed);
    CHECK(tls_pair(tc, stranger_cert, "good.test", 0, &failed) == TLS_VERIFY_UNTRUSTED);
    CHECK(!failed);
    tls_client_free(&tc);
    CHECK(tc == NULL);

    /* Another trust store: our CA's certificate is the stranger now. */
    tc = tls_client_new(other_ca_file, err, sizeof err);
    CHECK(tc != NULL);
    CHECK(tls_pair(tc, good_cert, "good.test", 1, &failed) == TLS_VERIFY_UNTRUSTED);
    CHECK(tls_pair(tc, stranger_cert, "good.test", 1, &failed) == TLS_VERIFY_OK);
    tls_client_free(&tc);

    /* The system's default trust store loads; a missing CA file is an error. */
    tc = tls_client_new(NULL, err, sizeof err);
    CHECK(tc != NULL);
    tls_client_free(&tc);
    CHECK(tls_client_new("/nonexistent/ca.pem", err, sizeof err) == NULL);
    CHECK(strstr(err, "/nonexistent/ca.pem") != NULL);
    CHECK_STR(tls_verify_str(TLS_VERIFY_EXPIRED), "certificate has expired");
}

/* Plain bytes, then STARTTLS on both sides, then bytes over TLS. */
static void test_starttls(void)
{
    char err[256];
    tls_client_t *tc = tls_client_new(ca_file, err, sizeof err);
    CHECK(tc != NULL);
    if (!tc)
        return;
    int fd[2];
    pair_fds(fd);
    end_t c = {0}, s = {0};
    s.t = transport_new(base, fd[0], NULL, &params, &ops, &s);
    c.t = transport_new(base, fd[1], NULL, &params, &ops, &c);
    put(c.t, "<starttls/>");
    run_until_bytes(&s, 11);
    put(s.t, "<proceed/>");
    transport_starttls(s.t, server_ssl(good_cert)); /* after <proceed/> leaves */
    CHECK(transport_ssl(s.t) == NULL);
    run_until_bytes(&c, 10);
    CHECK(got_is(&c, "<proceed/>"));
    transport_starttls(c.t, tls_client_ssl(tc, "good.test", 1, NULL));
    run_until(&c.tls_ready, 1);
    CHECK(c.tls_start == 1 && s.tls_start == 1);
    CHECK(c.tls_ready == 1 && c.verify == TLS_VERIFY_OK);
    put(c.t, "secret");
    run_until_bytes(&s, 11 + 6);
    CHECK(s.n == 17 && memcmp(s.got + 11, "secret", 6) == 0);
    CHECK(transport_ssl(s.t) != NULL && SSL_is_init_finished(transport_ssl(s.t)));
    /* Closing sends close_notify: the peer sees a clean end. */
    transport_close(s.t);
    run_until(&c.closed, 1);
    CHECK(c.reason == TRANSPORT_CLOSED_PEER);
    run_until(&c.freed, 1);
    run_until(&s.freed, 1);
    CHECK(c.freed == 1 && s.freed == 1);
    tls_client_free(&tc);
}

/* Direct TLS on an outgoing connect. */
static void test_connect_tls(void)
{
    char err[256];
    tls_client_t *tc = tls_client_new(ca_file, err, sizeof err);
    struct sockaddr_in sin;
    int l = listen_loopback(&sin);
    end_t c = {0}, s = {0};
    c.t = transport_connect(base, (struct sockaddr *)&sin, sizeof(sin),
                            tls_client_ssl(tc, "good.test", 1, NULL), &params, &ops, &c);
    CHECK(c.t != NULL);
    if (!c.t)
        return;
    put(c.t, "over tls");
    int fd = accept_one(l);
    s.t = transport_new(base, fd, server_ssl(good_cert), &params, &ops, &s);
    run_until_bytes(&s, 8);
    CHECK(got_is(&s, "over tls"));
    CHECK(c.connected == 1 && c.tls_ready == 1 && c.verify == TLS_VERIFY_OK);
    transport_destroy(c.t);
    transport_destroy(s.t);
    run_until(&c.freed, 1);
    run_until(&s.freed, 1);
    close(l);
    tls_client_free(&tc);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as ternd does: a closed peer is an error return */
    base = event_base_new();
    test_bytes_and_close();
    test_slow_reader();
    test_connect();
    make_pki();
    test_verify();
    test_starttls();
    test_connect_tls();
    free_pki();
    event_base_free(base);
    return check_summary();
}
