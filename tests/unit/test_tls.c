/*
 * test_tls.c — unit tests for src/tls/tls.c.
 *
 * Makes self-signed certificates for "a.test" (default) and "b.test" in a
 * temporary folder, builds a tls_server_t and runs real TLS handshakes in
 * memory (a BIO pair per connection, both ends driven from one loop, no
 * threads or sockets).  Covers SNI selection, protocol floor, ALPN
 * (RFC 7301 §3.2 / XEP-0368), channel binding (RFC 9266, RFC 5929 §4.1),
 * ticket resumption, configuration errors and the certificate generator.
 * A small PKI made here (root, intermediate, leaves) tests the checks of a
 * peer server's certificate (RFC 6125 §6, XEP-0178) from both sides, on
 * TLS 1.2 and 1.3, and SNI picking a certificate that covers the name.
 */
#include "tls/tls.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static char dir[64];
static char a_crt[128], a_key[128], b_crt[128], b_key[128], l_crt[128], l_key[128];

/* One in-memory connection: client and server ends plus handshake outcome. */
typedef struct conn {
    SSL *c, *s;
    int ok;                /* both ends finished the handshake */
    unsigned long s_error; /* first OpenSSL error seen on the server side */
} conn_t;

/* Client context limited to [minv, maxv]; 0 = library default. */
static SSL_CTX *client_ctx(int minv, int maxv)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    if (minv && minv < TLS1_2_VERSION) {
        /* OpenSSL 3 refuses TLS < 1.2 at security level >= 1; lower it so
         * the client really sends an old ClientHello for the server to refuse. */
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    }
    if (minv)
        SSL_CTX_set_min_proto_version(ctx, minv);
    if (maxv)
        SSL_CTX_set_max_proto_version(ctx, maxv);
    return ctx;
}

/* Drive both ends until each finishes or one fails. */
static int pump(conn_t *k)
{
    int cdone = 0, sdone = 0;

    for (int i = 0; i < 50 && !(cdone && sdone); i++) {
        if (!cdone) {
            int r = SSL_do_handshake(k->c);
            if (r == 1) {
                cdone = 1;
            } else {
                int e = SSL_get_error(k->c, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    return 0;
            }
        }
        if (!sdone) {
            int r = SSL_do_handshake(k->s);
            if (r == 1) {
                sdone = 1;
            } else {
                int e = SSL_get_error(k->s, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    k->s_error = ERR_peek_error();
                    return 0;
                }
            }
        }
    }
    return cdone && sdone;
}

/* Connect a new client SSL on `cctx` (optional SNI name, ALPN wire list,
 * resumption session) to tls_server_ssl(t, server_alpn) without starting
 * the handshake; k->c or k->s stays NULL on failure. */
static void conn_setup(conn_t *k, tls_server_t *t, SSL_CTX *cctx, const char *sni,
                       const unsigned char *alpn, unsigned alpn_len, const char *server_alpn,
                       SSL_SESSION *sess)
{
    BIO *cb = NULL, *sb = NULL;

    memset(k, 0, sizeof *k);
    ERR_clear_error();
    k->c = SSL_new(cctx);
    k->s = tls_server_ssl(t, server_alpn);
    if (!k->c || !k->s || !BIO_new_bio_pair(&cb, 0, &sb, 0))
        return;
    SSL_set_bio(k->c, cb, cb);
    SSL_set_bio(k->s, sb, sb);
    SSL_set_connect_state(k->c);
    SSL_set_accept_state(k->s);
    if (sni)
        SSL_set_tlsext_host_name(k->c, sni);
    if (alpn)
        SSL_set_alpn_protos(k->c, alpn, alpn_len);
    if (sess)
        SSL_set_session(k->c, sess);
}

/* conn_setup() and the whole handshake. */
static void conn_open(conn_t *k, tls_server_t *t, SSL_CTX *cctx, const char *sni,
                      const unsigned char *alpn, unsigned alpn_len, const char *server_alpn,
                      SSL_SESSION *sess)
{
    conn_setup(k, t, cctx, sni, alpn, alpn_len, server_alpn, sess);
    if (k->c && k->s)
        k->ok = pump(k);
    ERR_clear_error();
}

static void conn_close(conn_t *k)
{
    SSL_free(k->c);
    SSL_free(k->s);
    k->c = k->s = NULL;
}

/* Let the client read what the server sent after the handshake (TLS 1.3
 * NewSessionTicket), close cleanly (SSL_free after an unclean close marks
 * the session non-resumable) and return its resumable session. */
static SSL_SESSION *client_session(conn_t *k)
{
    unsigned char b[16];

    (void)SSL_read(k->c, b, sizeof b); /* processes tickets, then WANT_READ */
    (void)SSL_shutdown(k->c);
    ERR_clear_error();
    return SSL_get1_session(k->c);
}

/* CN of the certificate the client received ("" if none). */
static const char *peer_cn(SSL *c, char *buf, int len)
{
    X509 *x = SSL_get0_peer_certificate(c);

    buf[0] = '\0';
    if (x)
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, len);
    return buf;
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

    if (f)
        fclose(f);
    return x;
}

/* SHA-256 of the DER encoding of the certificate in `path`. */
static int cert_sha256(const char *path, unsigned char out[32])
{
    X509 *x = read_cert(path);
    unsigned char *der = NULL;
    int len = x ? i2d_X509(x, &der) : -1;
    unsigned int mdlen = 0;
    int ok =
        len > 0 && EVP_Digest(der, (size_t)len, out, &mdlen, EVP_sha256(), NULL) && mdlen == 32;

    OPENSSL_free(der);
    X509_free(x);
    return ok;
}

/* A reload drops the server's contexts while a connection accepted with
 * them has not yet read the ClientHello: its handshake, SNI switch
 * included, still completes on the contexts it started with. */
static void test_outlives_reload(const tls_cert_spec_t *specs)
{
    char err[512] = "";
    tls_server_t *t = tls_server_new(specs, 2, NULL, NULL, err, sizeof err);
    SSL_CTX *cctx = client_ctx(0, 0);
    conn_t k, k2;
    char cn[64];

    CHECK(t != NULL && cctx != NULL);
    if (!t || !cctx)
        return;
    conn_setup(&k, t, cctx, "b.test", NULL, 0, "xmpp-client", NULL);
    conn_setup(&k2, t, cctx, "a.test", NULL, 0, NULL, NULL);
    CHECK(k.c && k.s && k2.c && k2.s);
    tls_server_free(&t); /* the server's reference goes; the SSLs keep theirs */
    CHECK(t == NULL);
    if (k.c && k.s) {
        k.ok = pump(&k);
        CHECK(k.ok);
        CHECK_STR(peer_cn(k.c, cn, sizeof cn), "b.test");
    }
    conn_close(&k);
    if (k2.c && k2.s) {
        k2.ok = pump(&k2);
        CHECK(k2.ok);
        CHECK_STR(peer_cn(k2.c, cn, sizeof cn), "a.test");
    }
    conn_close(&k2);
    SSL_CTX_free(cctx);
}

static void test_self_signed(void)
{
    struct stat st;

    snprintf(a_crt, sizeof a_crt, "%s/a.crt", dir);
    snprintf(a_key, sizeof a_key, "%s/a.key", dir);
    snprintf(b_crt, sizeof b_crt, "%s/b.crt", dir);
    snprintf(b_key, sizeof b_key, "%s/b.key", dir);
    snprintf(l_crt, sizeof l_crt, "%s/l.crt", dir);
    snprintf(l_key, sizeof l_key, "%s/l.key", dir);

    /* A pre-existing, world-readable key file must end up 0600. */
    FILE *f = fopen(a_key, "w");
    if (f)
        fclose(f);
    chmod(a_key, 0644);

    CHECK(tls_make_self_signed("a.test", a_crt, a_key, 30) == 0);
    CHECK(tls_make_self_signed("b.test", b_crt, b_key, 30) == 0);
    CHECK(tls_make_self_signed("localhost", l_crt, l_key, 1) == 0);
    CHECK(stat(a_key, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(b_key, &st) == 0 && (st.st_mode & 0777) == 0600);

    X509 *x = read_cert(b_crt);
    CHECK(x != NULL);
    if (x) {
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
        CHECK_STR(cn, "b.test");
        CHECK(X509_check_host(x, "b.test", 0, 0, NULL) == 1);
        CHECK(X509_check_host(x, "a.test", 0, 0, NULL) != 1);
        CHECK(X509_get_version(x) == X509_VERSION_3);
        CHECK(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
        CHECK(X509_cmp_current_time(X509_get0_notAfter(x)) > 0);
        CHECK(X509_get_signature_nid(x) == NID_ecdsa_with_SHA256);
        X509_free(x);
    }
    x = read_cert(l_crt);
    CHECK(x != NULL);
    if (x) {
        CHECK(X509_check_host(x, "localhost", 0, 0, NULL) == 1);
        CHECK(X509_check_ip_asc(x, "127.0.0.1", 0) == 1);
        CHECK(X509_check_ip_asc(x, "::1", 0) == 1);
        X509_free(x);
    }

    /* Bad host names and lifetimes are refused before touching files. */
    CHECK(tls_make_self_signed("a.test,DNS:evil", l_crt, l_key, 30) == -1);
    CHECK(tls_make_self_signed("", l_crt, l_key, 30) == -1);
    CHECK(tls_make_self_signed("a.test", l_crt, l_key, 0) == -1);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/x.key", dir);
    CHECK(tls_make_self_signed("a.test", l_crt, bad, 30) == -1);
    ERR_clear_error();
}

static void test_sni(tls_server_t *t)
{
    SSL_CTX *cctx = client_ctx(0, 0);
    conn_t k;
    char cn[64];

    conn_open(&k, t, cctx, "b.test", NULL, 0, NULL, NULL);
    CHECK(k.ok);
    CHECK_STR(peer_cn(k.c, cn, sizeof cn), "b.test");
    CHECK_STR(tls_sni(k.s), "b.test");
    conn_close(&k);

    conn_open(&k, t, cctx, "B.Test", NULL, 0, NULL, NULL); /* case-insensitive */
    CHECK(k.ok);
    CHECK_STR(peer_cn(k.c, cn, sizeof cn), "b.test");
    conn_close(&k);

    conn_open(&k, t, cctx, "c.test", NULL, 0, NULL, NULL); /* unknown: default */
    CHECK(k.ok);
    CHECK_STR(peer_cn(k.c, cn, sizeof cn), "a.test");
    CHECK_STR(tls_sni(k.s), "c.test");
    conn_close(&k);

    conn_open(&k, t, cctx, NULL, NULL, 0, NULL, NULL); /* no SNI: default */
    CHECK(k.ok);
    CHECK_STR(peer_cn(k.c, cn, sizeof cn), "a.test");
    CHECK(tls_sni(k.s) == NULL);
    conn_close(&k);

    SSL_CTX_free(cctx);
}

static void test_versions(tls_server_t *t)
{
    conn_t k;

    SSL_CTX *old = client_ctx(TLS1_1_VERSION, TLS1_1_VERSION);
    conn_open(&k, t, old, "a.test", NULL, 0, NULL, NULL);
    CHECK(!k.ok);
    CHECK(ERR_GET_REASON(k.s_error) == SSL_R_UNSUPPORTED_PROTOCOL);
    conn_close(&k);
    SSL_CTX_free(old);

    SSL_CTX *v12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    conn_open(&k, t, v12, "a.test", NULL, 0, NULL, NULL);
    CHECK(k.ok);
    CHECK(SSL_version(k.s) == TLS1_2_VERSION);
    const SSL_CIPHER *ciph = SSL_get_current_cipher(k.s);
    /* Only ECDHE + AEAD suites are on offer for TLS 1.2. */
    CHECK(ciph && SSL_CIPHER_get_kx_nid(ciph) == NID_kx_ecdhe && SSL_CIPHER_is_aead(ciph));
    conn_close(&k);
    SSL_CTX_free(v12);

    /* A TLS 1.2 client with only CBC suites finds nothing in common. */
    SSL_CTX *cbc = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(cbc, "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA");
    conn_open(&k, t, cbc, "a.test", NULL, 0, NULL, NULL);
    CHECK(!k.ok);
    conn_close(&k);
    SSL_CTX_free(cbc);
}

static void test_exporter(tls_server_t *t)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    unsigned char sv[64], cl[32];
    conn_t k;

    SSL_CTX *v13 = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    conn_open(&k, t, v13, "b.test", NULL, 0, NULL, NULL);
    CHECK(k.ok);
    CHECK(SSL_version(k.s) == TLS1_3_VERSION);
    CHECK(tls_cb_exporter(k.s, sv, sizeof sv) == 32);
    CHECK(SSL_export_keying_material(k.c, cl, 32, label, sizeof label - 1, NULL, 0, 0) == 1);
    CHECK(memcmp(sv, cl, 32) == 0);
    CHECK(tls_cb_exporter(k.s, sv, 16) == 0); /* buffer too small */
    conn_close(&k);
    SSL_CTX_free(v13);

    /* TLS 1.2 with extended master secret (the default): available. */
    SSL_CTX *ems = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    conn_open(&k, t, ems, "a.test", NULL, 0, NULL, NULL);
    CHECK(k.ok);
    CHECK(tls_cb_exporter(k.s, sv, sizeof sv) == 32);
    CHECK(SSL_export_keying_material(k.c, cl, 32, label, sizeof label - 1, NULL, 0, 0) == 1);
    CHECK(memcmp(sv, cl, 32) == 0);
    conn_close(&k);
    SSL_CTX_free(ems);

    /* TLS 1.2 without extended master secret: unavailable (RFC 9266 §3). */
    SSL_CTX *noems = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    SSL_CTX_set_options(noems, SSL_OP_NO_EXTENDED_MASTER_SECRET);
    conn_open(&k, t, noems, "a.test", NULL, 0, NULL, NULL);
    CHECK(k.ok);
    CHECK(tls_cb_exporter(k.s, sv, sizeof sv) == 0);
    conn_close(&k);
    SSL_CTX_free(noems);

    /* Before any handshake: nothing. */
    SSL *fresh = tls_server_ssl(t, NULL);
    CHECK(fresh && tls_cb_exporter(fresh, sv, sizeof sv) == 0);
    SSL_free(fresh);
}

static void test_end_point(tls_server_t *t)
{
    unsigned char want_a[32], want_b[32], got[64];
    SSL_CTX *cctx = client_ctx(0, 0);
    conn_t k;

    CHECK(cert_sha256(a_crt, want_a));
    CHECK(cert_sha256(b_crt, want_b));

    conn_open(&k, t, cctx, "b.test", NULL, 0, NULL, NULL);
    CHECK(k.ok);
    CHECK(tls_cb_server_end_point(k.s, got, sizeof got) == 32);
    CHECK(memcmp(got, want_b, 32) == 0);
    CHECK(tls_cb_server_end_point(k.s, got, 16) == 0); /* buffer too small */
    conn_close(&k);

    conn_open(&k, t, cctx, "unknown.test", NULL, 0, NULL, NULL);
    CHECK(k.ok);
    CHECK(tls_cb_server_end_point(k.s, got, sizeof got) == 32);
    CHECK(memcmp(got, want_a, 32) == 0);
    conn_close(&k);

    SSL_CTX_free(cctx);
}

/* The end-point hash follows the certificate's signature hash: re-sign a's
 * certificate with ECDSA-SHA384 and expect a 48-byte SHA-384 binding. */
static void test_end_point_sha384(void)
{
    char crt[160], err[512];
    X509 *x = read_cert(a_crt);
    FILE *f = fopen(a_key, "r");
    EVP_PKEY *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    int ok = 0;

    if (f)
        fclose(f);
    snprintf(crt, sizeof crt, "%s/a384.crt", dir);
    if (x && key && X509_sign(x, key, EVP_sha384()) && (f = fopen(crt, "w")) != NULL) {
        ok = PEM_write_X509(f, x);
        fclose(f);
    }
    CHECK(ok);

    unsigned char *der = NULL, want[48], got[64];
    unsigned int mdlen = 0;
    int len = x ? i2d_X509(x, &der) : -1;
    CHECK(len > 0 && EVP_Digest(der, (size_t)len, want, &mdlen, EVP_sha384(), NULL) && mdlen == 48);
    OPENSSL_free(der);

    const tls_cert_spec_t spec[] = {{"a.test", crt, a_key}};
    tls_server_t *t = tls_server_new(spec, 1, NULL, NULL, err, sizeof err);
    CHECK(t != NULL);
    if (t) {
        SSL_CTX *cctx = client_ctx(0, 0);
        conn_t k;
        conn_open(&k, t, cctx, NULL, NULL, 0, NULL, NULL);
        CHECK(k.ok);
        CHECK(tls_cb_server_end_point(k.s, got, sizeof got) == 48);
        CHECK(memcmp(got, want, 48) == 0);
        CHECK(tls_cb_server_end_point(k.s, got, 32) == 0);
        conn_close(&k);
        SSL_CTX_free(cctx);
        tls_server_free(&t);
    }
    unlink(crt);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void test_alpn(tls_server_t *t)
{
    static const unsigned char xmpp[] = "\x02h2\x0bxmpp-client";
    static const unsigned char h2[] = "\x02h2";
    SSL_CTX *cctx = client_ctx(0, 0);
    const unsigned char *sel = NULL;
    unsigned sel_len = 0;
    conn_t k;

    conn_open(&k, t, cctx, "b.test", xmpp, sizeof xmpp - 1, "xmpp-client", NULL);
    CHECK(k.ok);
    SSL_get0_alpn_selected(k.c, &sel, &sel_len);
    CHECK(sel_len == 11 && sel && memcmp(sel, "xmpp-client", 11) == 0);
    conn_close(&k);

    conn_open(&k, t, cctx, "b.test", h2, sizeof h2 - 1, "xmpp-client", NULL);
    CHECK(!k.ok);
    CHECK(ERR_GET_REASON(k.s_error) == SSL_R_NO_APPLICATION_PROTOCOL);
    conn_close(&k);

    conn_open(&k, t, cctx, "b.test", NULL, 0, "xmpp-client", NULL); /* no ALPN at all */
    CHECK(k.ok);
    SSL_get0_alpn_selected(k.c, &sel, &sel_len);
    CHECK(sel_len == 0);
    conn_close(&k);

    /* No requirement on this listener (STARTTLS): any ALPN, nothing selected. */
    conn_open(&k, t, cctx, "a.test", h2, sizeof h2 - 1, NULL, NULL);
    CHECK(k.ok);
    SSL_get0_alpn_selected(k.c, &sel, &sel_len);
    CHECK(sel_len == 0);
    conn_close(&k);

    /* TLS 1.2 path too. */
    SSL_CTX *v12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    conn_open(&k, t, v12, "a.test", h2, sizeof h2 - 1, "xmpp-client", NULL);
    CHECK(!k.ok);
    conn_close(&k);
    SSL_CTX_free(v12);

    CHECK(tls_server_ssl(t, "") == NULL);
    SSL_CTX_free(cctx);
}

static void test_resumption(tls_server_t *t)
{
    const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    char cn[64];

    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        SSL_CTX *cctx = client_ctx(versions[i], versions[i]);
        conn_t k;

        conn_open(&k, t, cctx, "b.test", NULL, 0, NULL, NULL);
        CHECK(k.ok);
        SSL_SESSION *sess = client_session(&k);
        CHECK(sess != NULL && SSL_SESSION_is_resumable(sess));
        conn_close(&k);

        conn_open(&k, t, cctx, "b.test", NULL, 0, NULL, sess);
        CHECK(k.ok);
        CHECK(SSL_session_reused(k.s) == 1);
        CHECK_STR(tls_sni(k.s), "b.test");
        CHECK_STR(peer_cn(k.c, cn, sizeof cn), "b.test");
        unsigned char ep[32], want[32];
        CHECK(tls_cb_server_end_point(k.s, ep, sizeof ep) == 32 && cert_sha256(b_crt, want) &&
              memcmp(ep, want, 32) == 0);
        conn_close(&k);
        SSL_SESSION_free(sess);
        SSL_CTX_free(cctx);
    }
}

static void test_custom_ciphers(void)
{
    const tls_cert_spec_t spec[] = {{"a.test", a_crt, a_key}};
    char err[256];
    conn_t k;

    tls_server_t *t = tls_server_new(spec, 1, "ECDHE-ECDSA-CHACHA20-POLY1305",
                                     "TLS_CHACHA20_POLY1305_SHA256", err, sizeof err);
    CHECK(t != NULL);
    if (!t)
        return;
    SSL_CTX *v12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    conn_open(&k, t, v12, NULL, NULL, 0, NULL, NULL);
    CHECK(k.ok);
    CHECK_STR(SSL_get_cipher_name(k.s), "ECDHE-ECDSA-CHACHA20-POLY1305");
    conn_close(&k);
    SSL_CTX_free(v12);

    SSL_CTX *v13 = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    conn_open(&k, t, v13, NULL, NULL, 0, NULL, NULL);
    CHECK(k.ok);
    CHECK_STR(SSL_get_cipher_name(k.s), "TLS_CHACHA20_POLY1305_SHA256");
    conn_close(&k);
    SSL_CTX_free(v13);
    tls_server_free(&t);
    CHECK(t == NULL);
}

static void test_errors(void)
{
    char err[512], missing[160];
    tls_server_t *t;

    snprintf(missing, sizeof missing, "%s/nope.key", dir);
    const tls_cert_spec_t nokey[] = {{"a.test", a_crt, a_key}, {"b.test", b_crt, missing}};
    t = tls_server_new(nokey, 2, NULL, NULL, err, sizeof err);
    CHECK(t == NULL);
    CHECK(strstr(err, missing) != NULL);
    CHECK(strstr(err, "No such file") != NULL);

    snprintf(missing, sizeof missing, "%s/nope.crt", dir);
    const tls_cert_spec_t nocrt[] = {{"a.test", missing, a_key}};
    t = tls_server_new(nocrt, 1, NULL, NULL, err, sizeof err);
    CHECK(t == NULL);
    CHECK(strstr(err, missing) != NULL);

    const tls_cert_spec_t mismatch[] = {{"a.test", a_crt, b_key}};
    err[0] = '\0';
    t = tls_server_new(mismatch, 1, NULL, NULL, err, sizeof err);
    CHECK(t == NULL);
    CHECK(err[0] != '\0');
    CHECK(strstr(err, b_key) != NULL);

    const tls_cert_spec_t good[] = {{"a.test", a_crt, a_key}};
    t = tls_server_new(good, 1, "NO-SUCH-CIPHER", NULL, err, sizeof err);
    CHECK(t == NULL);
    CHECK(strstr(err, "NO-SUCH-CIPHER") != NULL);

    t = tls_server_new(good, 1, NULL, "TLS_NO_SUCH_SUITE", err, sizeof err);
    CHECK(t == NULL);
    CHECK(strstr(err, "TLS_NO_SUCH_SUITE") != NULL);

    t = tls_server_new(good, 0, NULL, NULL, err, sizeof err);
    CHECK(t == NULL && err[0] != '\0');

    const tls_cert_spec_t nohost[] = {{NULL, a_crt, a_key}};
    t = tls_server_new(nohost, 1, NULL, NULL, err, sizeof err);
    CHECK(t == NULL && err[0] != '\0');

    /* Tiny buffer: truncated, still terminated. */
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    t = tls_server_new(nokey, 2, NULL, NULL, tiny, sizeof tiny);
    CHECK(t == NULL && memchr(tiny, '\0', sizeof tiny) != NULL);
    CHECK(tls_server_new(nokey, 2, NULL, NULL, NULL, 0) == NULL);

    tls_server_free(NULL);
    CHECK(tls_server_ssl(NULL, NULL) == NULL);
    CHECK(tls_sni(NULL) == NULL);
}

/* ---- peer certificates (RFC 6125 §6, XEP-0178) ---------------------------- */

/* A test PKI: a root CA (trusted), an intermediate CA it signs, and leaf
 * certificates the intermediate signs, each written with the intermediate
 * after it (a "full chain") so the peer's chain is really used. */
static EVP_PKEY *root_key, *int_key;
static X509 *root_crt, *int_crt;
static char ca_crt[128], ca_dir[128], int_pem[128];

/* One leaf certificate to make: CN (NULL = none), subjectAltName in
 * openssl.cnf syntax (NULL = no extension), extendedKeyUsage (NULL =
 * none), validity in days from now, self-signed instead of CA-issued. */
typedef struct leafopt {
    const char *cn, *san, *eku;
    long from_days, to_days;
    int self_signed;
} leafopt_t;

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for `key`, issued by `issuer` with `issuer_key` (itself
 * when issuer is NULL). */
static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn, int ca,
                       const leafopt_t *o)
{
    static long serial = 1;
    X509 *x = X509_new();
    int ok = x != NULL;

    ok = ok && X509_set_version(x, X509_VERSION_3) &&
         ASN1_INTEGER_set(X509_get_serialNumber(x), serial++) &&
         X509_time_adj_ex(X509_getm_notBefore(x), o ? (int)o->from_days : -1, 0, NULL) &&
         X509_time_adj_ex(X509_getm_notAfter(x), o ? (int)o->to_days : 30, 0, NULL) &&
         X509_set_pubkey(x, key);
    if (ok && cn)
        ok = X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                        (const unsigned char *)cn, -1, -1, 0);
    if (ok && !cn) /* keep the subject unique without a CN */
        ok = X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_ASC,
                                        (const unsigned char *)"Tern tests", -1, -1, 0);
    ok = ok && X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
    if (ok && ca)
        ok = add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE") &&
             add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (ok && !ca)
        ok = add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,digitalSignature");
    if (ok && o && o->san)
        ok = add_ext(x, issuer ? issuer : x, NID_subject_alt_name, o->san);
    if (ok && o && o->eku)
        ok = add_ext(x, issuer ? issuer : x, NID_ext_key_usage, o->eku);
    ok = ok && add_ext(x, x, NID_subject_key_identifier, "hash") &&
         X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_pem(const char *path, X509 *a, X509 *b, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    int ok = f && (!a || PEM_write_X509(f, a)) && (!b || PEM_write_X509(f, b)) &&
             (!key || PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));

    if (f && fclose(f) != 0)
        ok = 0;
    return ok;
}

/* The root and intermediate CAs; ca.crt holds the root, ca.d/ the root
 * under its subject hash (what `openssl rehash` makes). */
static int make_pki(void)
{
    char link[200];

    root_key = EVP_EC_gen("P-256");
    int_key = EVP_EC_gen("P-256");
    if (!root_key || !int_key)
        return 0;
    root_crt = make_cert(root_key, NULL, NULL, "Tern Test Root", 1, NULL);
    int_crt = make_cert(int_key, root_crt, root_key, "Tern Test Intermediate", 1, NULL);
    if (!root_crt || !int_crt)
        return 0;
    snprintf(ca_crt, sizeof ca_crt, "%s/ca.crt", dir);
    snprintf(int_pem, sizeof int_pem, "%s/int.crt", dir);
    snprintf(ca_dir, sizeof ca_dir, "%s/ca.d", dir);
    snprintf(link, sizeof link, "%s/%08lx.0", ca_dir, X509_subject_name_hash(root_crt));
    return write_pem(ca_crt, root_crt, NULL, NULL) && write_pem(int_pem, int_crt, NULL, NULL) &&
           mkdir(ca_dir, 0700) == 0 && write_pem(link, root_crt, NULL, NULL);
}

/* Leaf certificate (followed by the intermediate unless self-signed) in
 * `crt`, its key in `key`. */
static int make_leaf(const leafopt_t *o, const char *crt, const char *key)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = k ? make_cert(k, o->self_signed ? NULL : int_crt, o->self_signed ? NULL : int_key,
                            o->cn, 0, o)
                : NULL;
    int ok = x && write_pem(crt, x, o->self_signed ? NULL : int_crt, NULL) &&
             write_pem(key, NULL, NULL, k);

    X509_free(x);
    EVP_PKEY_free(k);
    return ok;
}

/* Connect client `c` and server `s` over a BIO pair and run the handshake. */
static void conn_pair(conn_t *k, SSL *c, SSL *s)
{
    BIO *cb = NULL, *sb = NULL;

    memset(k, 0, sizeof *k);
    ERR_clear_error();
    k->c = c;
    k->s = s;
    if (!c || !s || !BIO_new_bio_pair(&cb, 0, &sb, 0))
        return;
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    k->ok = pump(k);
    ERR_clear_error();
}

typedef struct peer_case {
    const char *what;
    leafopt_t leaf;
    const char *domain;
    tls_verify_t want;        /* tls_peer_verify(), either side */
    tls_verify_t want_client; /* tls_client_ssl_for_server(); PENDING = same as want */
} peer_case_t;

#define DAYS_OK -1, 30
static const peer_case_t peer_cases[] = {
    {"DNS-ID", {NULL, "DNS:peer.test", NULL, DAYS_OK, 0}, "peer.test", TLS_VERIFY_OK, 0},
    {"DNS-ID, other case",
     {NULL, "DNS:Peer.TEST", NULL, DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_OK,
     0},
    {"wildcard", {NULL, "DNS:*.peer.test", NULL, DAYS_OK, 0}, "chat.peer.test", TLS_VERIFY_OK, 0},
    {"wildcard, two labels deep",
     {NULL, "DNS:*.peer.test", NULL, DAYS_OK, 0},
     "a.chat.peer.test",
     TLS_VERIFY_WRONG_NAME,
     0},
    {"wildcard, not the parent",
     {NULL, "DNS:*.peer.test", NULL, DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_WRONG_NAME,
     0},
    {"partial-label wildcard",
     {NULL, "DNS:ch*.peer.test", NULL, DAYS_OK, 0},
     "chat.peer.test",
     TLS_VERIFY_WRONG_NAME,
     0},
    {"SRV-ID",
     {NULL, "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.peer.test", NULL, DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_OK,
     0},
    {"SRV-ID of the client service",
     {NULL, "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-client.peer.test", NULL, DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_WRONG_NAME,
     0},
    {"XmppAddr",
     {NULL, "otherName:1.3.6.1.5.5.7.8.5;UTF8:peer.test", NULL, DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_OK,
     0},
    {"XmppAddr of a user",
     {NULL, "otherName:1.3.6.1.5.5.7.8.5;UTF8:admin@peer.test", NULL, DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_WRONG_NAME,
     0},
    {"CN only", {"peer.test", NULL, NULL, DAYS_OK, 0}, "peer.test", TLS_VERIFY_OK, 0},
    {"CN ignored beside a SAN",
     {"peer.test", "DNS:other.test", NULL, DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_WRONG_NAME,
     0},
    {"CN ignored beside an SRV-ID",
     {"peer.test", "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.other.test", NULL, DAYS_OK,
      0},
     "peer.test",
     TLS_VERIFY_WRONG_NAME,
     0},
    {"wrong name",
     {"other.test", "DNS:other.test", NULL, DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_WRONG_NAME,
     0},
    {"expired", {NULL, "DNS:peer.test", NULL, -30, -1, 0}, "peer.test", TLS_VERIFY_EXPIRED, 0},
    {"not yet valid",
     {NULL, "DNS:peer.test", NULL, 1, 30, 0},
     "peer.test",
     TLS_VERIFY_NOT_YET_VALID,
     0},
    {"self-signed",
     {NULL, "DNS:peer.test", NULL, DAYS_OK, 1},
     "peer.test",
     TLS_VERIFY_UNTRUSTED,
     0},
    {"serverAuth only",
     {NULL, "DNS:peer.test", "serverAuth", DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_OK,
     0},
    {"clientAuth only",
     {NULL, "DNS:peer.test", "clientAuth", DAYS_OK, 0},
     "peer.test",
     TLS_VERIFY_OK,
     TLS_VERIFY_FAILED /* a TLS server needs serverAuth */},
};

/* One case, both sides, at protocol `version`. */
static void test_peer_case(tls_client_t *trust, tls_server_t *ours, const peer_case_t *pc,
                           int version)
{
    char crt[160], key[160], err[512];
    conn_t k;
    int before = check_failed;

    snprintf(crt, sizeof crt, "%s/peer.crt", dir);
    snprintf(key, sizeof key, "%s/peer.key", dir);
    CHECK(make_leaf(&pc->leaf, crt, key));

    /* We are the server; the peer connects with its certificate. */
    SSL_CTX *cctx = client_ctx(version, version);
    CHECK(cctx && SSL_CTX_use_certificate_chain_file(cctx, crt) == 1 &&
          SSL_CTX_use_PrivateKey_file(cctx, key, SSL_FILETYPE_PEM) == 1);
    SSL *s = tls_server_ssl(ours, NULL);
    tls_request_peer_cert(s);
    conn_pair(&k, SSL_new(cctx), s);
    CHECK(k.ok);
    CHECK(SSL_version(k.s) == version);
    CHECK(tls_peer_verify(trust, k.s, pc->domain) == pc->want);
    conn_close(&k);
    SSL_CTX_free(cctx);

    /* We are the client; the peer serves the certificate for the domain. */
    const tls_cert_spec_t spec[] = {{pc->domain, crt, key}};
    tls_server_t *theirs = tls_server_new(spec, 1, NULL, NULL, err, sizeof err);
    CHECK(theirs != NULL);
    if (theirs) {
        tls_verify_t wc = pc->want_client ? pc->want_client : pc->want;
        SSL *c = tls_client_ssl(trust, pc->domain, 0, NULL);
        SSL_set_max_proto_version(c, version);
        conn_pair(&k, c, tls_server_ssl(theirs, NULL));
        CHECK(k.ok);
        CHECK(tls_peer_verify(trust, k.c, pc->domain) == pc->want);
        conn_close(&k);

        c = tls_client_ssl_for_server(trust, pc->domain, 0, NULL);
        SSL_set_max_proto_version(c, version);
        conn_pair(&k, c, tls_server_ssl(theirs, NULL));
        CHECK(k.ok);
        CHECK(tls_verify_result(k.c) == wc);
        conn_close(&k);

        /* require_valid: the handshake succeeds exactly when the check does. */
        c = tls_client_ssl_for_server(trust, pc->domain, 1, NULL);
        SSL_set_max_proto_version(c, version);
        conn_pair(&k, c, tls_server_ssl(theirs, NULL));
        CHECK(k.ok == (wc == TLS_VERIFY_OK));
        conn_close(&k);
        tls_server_free(&theirs);
    }
    if (check_failed != before)
        fprintf(stderr, "  in case \"%s\", TLS %s\n", pc->what,
                version == TLS1_3_VERSION ? "1.3" : "1.2");
    unlink(crt);
    unlink(key);
}

/* The server side asks for a certificate without requiring one or naming
 * CAs, whichever host's context SNI picks. */
static void test_peer_no_cert(tls_client_t *trust, tls_server_t *ours, int version)
{
    SSL_CTX *cctx = client_ctx(version, version);
    conn_t k;

    SSL *s = tls_server_ssl(ours, NULL);
    CHECK(tls_peer_verify(trust, s, "peer.test") == TLS_VERIFY_PENDING); /* no handshake yet */
    tls_request_peer_cert(s);
    SSL *c = SSL_new(cctx);
    SSL_set_tlsext_host_name(c, "b.test");
    conn_pair(&k, c, s);
    CHECK(k.ok);
    CHECK(SSL_version(k.s) == version);
    CHECK(tls_peer_verify(trust, k.s, "peer.test") == TLS_VERIFY_NO_CERT);
    const STACK_OF(X509_NAME) *cas = SSL_get0_peer_CA_list(k.c);
    CHECK(cas == NULL || sk_X509_NAME_num(cas) == 0);
    CHECK(tls_peer_verify(NULL, k.s, "peer.test") == TLS_VERIFY_FAILED);
    CHECK(tls_peer_verify(trust, k.s, "") == TLS_VERIFY_FAILED);
    conn_close(&k);
    SSL_CTX_free(cctx);
}

/* After an SNI switch to another host's context the request still holds:
 * the peer's certificate reaches tls_peer_verify(). */
static void test_peer_sni(tls_client_t *trust, tls_server_t *ours)
{
    static const leafopt_t o = {NULL, "DNS:peer.test", NULL, DAYS_OK, 0};
    char crt[160], key[160];

    snprintf(crt, sizeof crt, "%s/peer.crt", dir);
    snprintf(key, sizeof key, "%s/peer.key", dir);
    CHECK(make_leaf(&o, crt, key));
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        SSL_CTX *cctx = client_ctx(v, v);
        conn_t k;
        char cn[64];
        CHECK(cctx && SSL_CTX_use_certificate_chain_file(cctx, crt) == 1 &&
              SSL_CTX_use_PrivateKey_file(cctx, key, SSL_FILETYPE_PEM) == 1);
        SSL *c = SSL_new(cctx);
        SSL_set_tlsext_host_name(c, "b.test");
        SSL *s = tls_server_ssl(ours, NULL);
        tls_request_peer_cert(s);
        conn_pair(&k, c, s);
        CHECK(k.ok);
        CHECK_STR(peer_cn(k.c, cn, sizeof cn), "b.test");
        CHECK(tls_peer_verify(trust, k.s, "peer.test") == TLS_VERIFY_OK);
        SSL_SESSION *sess = client_session(&k);
        conn_close(&k);

        /* A session offered again is not resumed: a resumed session keeps
         * the peer's certificate but not its chain, which the check needs. */
        c = SSL_new(cctx);
        SSL_set_tlsext_host_name(c, "b.test");
        if (sess)
            SSL_set_session(c, sess);
        s = tls_server_ssl(ours, NULL);
        tls_request_peer_cert(s);
        conn_pair(&k, c, s);
        CHECK(k.ok);
        CHECK(SSL_session_reused(k.s) == 0);
        CHECK(tls_peer_verify(trust, k.s, "peer.test") == TLS_VERIFY_OK);
        conn_close(&k);
        SSL_SESSION_free(sess);
        SSL_CTX_free(cctx);
    }
    unlink(crt);
    unlink(key);
}

static void test_peer(void)
{
    char err[512] = "";
    const tls_cert_spec_t specs[] = {{"a.test", a_crt, a_key}, {"b.test", b_crt, b_key}};

    CHECK(make_pki());
    tls_client_t *trust = tls_client_new(ca_crt, err, sizeof err);
    tls_server_t *ours = tls_server_new(specs, 2, NULL, NULL, err, sizeof err);
    CHECK(trust != NULL && ours != NULL);
    if (trust && ours) {
        for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
            for (size_t i = 0; i < sizeof peer_cases / sizeof peer_cases[0]; i++)
                test_peer_case(trust, ours, &peer_cases[i], v);
            test_peer_no_cert(trust, ours, v);
        }
        test_peer_sni(trust, ours);
    }
    tls_client_free(&trust);

    /* A folder of hashed CA files is a trust store too. */
    trust = tls_client_new(ca_dir, err, sizeof err);
    CHECK(trust != NULL);
    if (trust && ours) {
        test_peer_case(trust, ours, &peer_cases[0], TLS1_3_VERSION);
        test_peer_case(trust, ours, &peer_cases[16], TLS1_3_VERSION); /* self-signed */
    }
    tls_client_free(&trust);
    tls_server_free(&ours);
}

/* A name no spec has gets the first certificate covering it (a service or
 * component domain under the host's wildcard), else the default. */
static void test_sni_covering(void)
{
    static const leafopt_t wild = {"svc.test", "DNS:svc.test,DNS:*.svc.test", NULL, DAYS_OK, 0};
    char crt[160], key[160], err[512], cn[64];
    SSL_CTX *cctx = client_ctx(0, 0);
    conn_t k;

    snprintf(crt, sizeof crt, "%s/wild.crt", dir);
    snprintf(key, sizeof key, "%s/wild.key", dir);
    CHECK(make_leaf(&wild, crt, key));
    const tls_cert_spec_t specs[] = {{"a.test", a_crt, a_key}, {"svc.test", crt, key}};
    tls_server_t *t = tls_server_new(specs, 2, NULL, NULL, err, sizeof err);
    CHECK(t != NULL);
    if (t) {
        conn_open(&k, t, cctx, "conference.svc.test", NULL, 0, NULL, NULL);
        CHECK(k.ok);
        CHECK_STR(peer_cn(k.c, cn, sizeof cn), "svc.test");
        conn_close(&k);
        conn_open(&k, t, cctx, "a.b.svc.test", NULL, 0, NULL, NULL); /* not covered */
        CHECK(k.ok);
        CHECK_STR(peer_cn(k.c, cn, sizeof cn), "a.test");
        conn_close(&k);
        tls_server_free(&t);
    }
    SSL_CTX_free(cctx);
    unlink(crt);
    unlink(key);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/tern-tls-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }

    test_self_signed();
    const tls_cert_spec_t specs[] = {{"a.test", a_crt, a_key}, {"b.test", b_crt, b_key}};
    char err[512] = "";
    tls_server_t *t = tls_server_new(specs, 2, NULL, NULL, err, sizeof err);
    CHECK(t != NULL);
    if (!t)
        fprintf(stderr, "tls_server_new: %s\n", err);
    if (t) {
        test_sni(t);
        test_versions(t);
        test_exporter(t);
        test_end_point(t);
        test_alpn(t);
        test_resumption(t);
        tls_server_free(&t);
    }
    test_outlives_reload(specs);
    test_end_point_sha384();
    test_custom_ciphers();
    test_errors();
    test_peer();
    test_sni_covering();

    const char *files[] = {a_crt, a_key, b_crt, b_key, l_crt, l_key};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    char link[200];
    if (root_crt) {
        snprintf(link, sizeof link, "%s/%08lx.0", ca_dir, X509_subject_name_hash(root_crt));
        unlink(link);
    }
    rmdir(ca_dir);
    unlink(ca_crt);
    unlink(int_pem);
    X509_free(root_crt);
    X509_free(int_crt);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(int_key);
    rmdir(dir);
    return check_summary();
}
