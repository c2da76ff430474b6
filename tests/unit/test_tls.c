/*
 * test_tls.c — unit tests for src/tls/tls.c.
 *
 * Makes self-signed certificates for "a.test" (default) and "b.test" in a
 * temporary folder, builds a tls_server_t and runs real TLS handshakes in
 * memory (a BIO pair per connection, both ends driven from one loop, no
 * threads or sockets).  Covers SNI selection, protocol floor, ALPN
 * (RFC 7301 §3.2 / XEP-0368), channel binding (RFC 9266, RFC 5929 §4.1),
 * ticket resumption, configuration errors and the certificate generator.
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

    const char *files[] = {a_crt, a_key, b_crt, b_key, l_crt, l_key};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(dir);
    return check_summary();
}
