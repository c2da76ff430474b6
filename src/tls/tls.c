/*
 * tls.c — OpenSSL server contexts, SNI/ALPN selection, channel binding and
 * self-signed certificates.
 *
 * Owns: one SSL_CTX per configured certificate (the first is the default and
 * the only one SSLs are created from; the others are swapped in by the SNI
 * callback), the per-SSL ALPN requirement (kept in SSL ex_data), the
 * reference count that keeps a context set alive while any connection
 * accepted with it still exists (a reload replaces the server's set, but a
 * handshake in progress finishes on the set it started with), extraction
 * of RFC 9266 / RFC 5929 channel-binding data, and writing a self-signed
 * certificate + key pair.  Knows nothing of sockets, libevent or XMPP
 * streams: callers wrap the SSL returned by tls_server_ssl() themselves.
 *
 * Policy (BCP 195 / RFC 9325 §4):
 *  - TLS 1.2 minimum; no compression (§3.3), no renegotiation.
 *  - TLS 1.2 ciphers: ECDHE key exchange with an AEAD (AES-GCM or
 *    ChaCha20-Poly1305) only; TLS 1.3 suites are OpenSSL's defaults (all
 *    AEAD).  Since every suite offered is forward-secret and AEAD, the
 *    client's preference order is honoured (SSL_OP_CIPHER_SERVER_PREFERENCE
 *    is left off) so that, e.g., phones without AES hardware can pick
 *    ChaCha20.
 *  - Resumption uses session tickets only (RFC 5077 / RFC 8446 §4.6.1); the
 *    stateful server-side session cache is off, which keeps memory flat.
 *  - Read and write buffers are kept while a connection is busy and freed
 *    by its owner once it is quiet (SSL_free_buffers, see net/transport.c):
 *    thousands of idle XMPP sessions hold none, and a busy one does not
 *    allocate two 16 KiB buffers per record as SSL_MODE_RELEASE_BUFFERS
 *    would make it.
 *  - Client side (outgoing connections): one context per trust store (a CA
 *    file, or the system's default paths); each SSL sends SNI and checks
 *    the peer's chain and name (RFC 6125), failing the handshake or only
 *    reporting the outcome, as the caller asks.
 *  - Peers that are servers (XEP-0178): the server side may ask for a
 *    certificate without requiring one (naming no CA); either side checks
 *    the peer's certificate after the handshake against a client context's
 *    trust store, for any purpose, with the XMPP name rules (DNS-ID, SRV-ID,
 *    XmppAddr; CN only without subjectAltName).
 */
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* TLS 1.2 default: ECDHE + AEAD only (RFC 9325 §4.2). */
#define TLS_DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"

/* Session id context for the server (only matters if the internal cache or
 * client certificates are ever enabled; set so resumption never fails on it). */
static const unsigned char tls_sid_ctx[] = "tern";

typedef struct tls_host {
    char *host;   /* SNI name this context serves */
    SSL_CTX *ctx; /* configured server context */
} tls_host_t;

struct tls_server {
    tls_host_t *hosts; /* hosts[0] is the default */
    size_t n;
    unsigned refs; /* the creator's, plus one per SSL made from it */
};

static void tls_server_release(tls_server_t *t);

/* ---- ex_data index for the per-SSL ALPN requirement ---------------------- */

static CRYPTO_ONCE tls_alpn_once = CRYPTO_ONCE_STATIC_INIT;
static int tls_alpn_idx = -1;
static int tls_server_idx = -1; /* the tls_server_t an SSL was made from */

/* ex_data destructor: the ALPN string is a private copy owned by the SSL. */
static void tls_alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    OPENSSL_free(ptr);
}

/* ex_data destructor: an SSL going away drops its reference on the
 * context set it was made from (SSL_free runs it on the event loop). */
static void tls_server_ref_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                                void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (ptr)
        tls_server_release(ptr);
}

static void tls_alpn_init(void)
{
    tls_alpn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_alpn_free);
    tls_server_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_server_ref_free);
}

/* The SSL ex_data index holding the wanted ALPN protocol, or -1. */
static int tls_alpn_index(void)
{
    if (!CRYPTO_THREAD_run_once(&tls_alpn_once, tls_alpn_init) || tls_server_idx < 0)
        return -1;
    return tls_alpn_idx;
}

/* ---- error reporting ----------------------------------------------------- */

/* Human-readable reason of one queued OpenSSL error: system errors (failed
 * fopen etc.) carry an errno, which OpenSSL only describes as "system lib". */
static const char *tls_reason(unsigned long e)
{
    if (e == 0)
        return NULL;
    if (ERR_SYSTEM_ERROR(e))
        return strerror(ERR_GET_REASON(e));
    return ERR_reason_error_string(e);
}

/* Format into errbuf (if any), then append ": <reason>" for the first and
 * last entries of the OpenSSL error queue (the first is usually the root
 * cause, e.g. "No such file or directory"; the last the operation that
 * failed, skipped when it only says which library passed the error up).
 * Clears the queue. */
static void tls_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tls_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    unsigned long first = ERR_get_error(), last = first, e;

    while ((e = ERR_get_error()) != 0)
        last = e;
    if (!errbuf || errlen == 0)
        return;

    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= errlen)
        return;

    const char *r1 = tls_reason(first);
    /* "PEM lib", "system lib"...: a library merely passing an error up. */
    int rl = ERR_GET_REASON(last);
    int passthrough = (rl & ERR_RFLAG_COMMON) && (rl & ((1 << ERR_RFLAGS_OFFSET) - 1)) < 256;
    const char *r2 = last != first && !passthrough ? tls_reason(last) : NULL;
    if (r1)
        len += snprintf(errbuf + len, errlen - (size_t)len, ": %s", r1);
    if (r2 && (!r1 || strcmp(r1, r2) != 0) && (size_t)len < errlen)
        snprintf(errbuf + len, errlen - (size_t)len, ": %s", r2);
    if (!r1 && !r2 && first)
        snprintf(errbuf + len, errlen - (size_t)len, ": OpenSSL error %lx", first);
}

/* ---- SNI (RFC 6066 §3) and ALPN (RFC 7301) callbacks --------------------- */

/* Servername callback, installed on the default context: switch the SSL to
 * the context whose host equals the SNI name (ASCII case-insensitive, as DNS
 * names are), else to the first whose certificate covers the name (a
 * DNS-ID or wildcard, X509_check_host).  Other names and absent SNI keep
 * the default certificate;
 * returning OK either way keeps the name so tls_sni() can report it.  The
 * host table is the one of the set the SSL was made from (its ex_data,
 * which holds a reference), never a set a reload may have freed since. */
static int tls_sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)arg;
    const tls_server_t *t = tls_server_idx >= 0 ? SSL_get_ex_data(ssl, tls_server_idx) : NULL;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

    if (!name || !t)
        return SSL_TLSEXT_ERR_OK;
    size_t i;
    for (i = 0; i < t->n; i++) /* first matching spec wins */
        if (strcasecmp(t->hosts[i].host, name) == 0)
            break;
    /* No spec for the name (a component's domain, say): the first
     * certificate that covers it, by a DNS-ID or a wildcard. */
    for (size_t j = 0; i == t->n && j < t->n; j++) {
        X509 *x = SSL_CTX_get0_certificate(t->hosts[j].ctx);
        if (x && X509_check_host(x, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1)
            i = j;
    }
    if (i > 0 && i < t->n && SSL_set_SSL_CTX(ssl, t->hosts[i].ctx) == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN select callback, installed on every context (after an SNI switch
 * OpenSSL consults the new context's callback).  The protocol this SSL
 * requires lives in its ex_data: no requirement => no ALPN answer; offered
 * => select it; client offered ALPN but not ours => fatal
 * no_application_protocol (RFC 7301 §3.2, XEP-0368).  Only called when the
 * client sent the extension, so clients without ALPN are accepted. */
static int tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    int idx = tls_alpn_index();
    const char *want = idx >= 0 ? SSL_get_ex_data(ssl, idx) : NULL;

    if (!want)
        return SSL_TLSEXT_ERR_NOACK;
    size_t wlen = strlen(want);
    /* `in` is the client's ProtocolNameList: 1-byte length + name, repeated. */
    for (unsigned int i = 0; i < inlen;) {
        unsigned int plen = in[i];
        if (plen == 0 || plen > inlen - i - 1)
            break; /* malformed (OpenSSL already rejects these) */
        if (plen == wlen && memcmp(in + i + 1, want, wlen) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)plen;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + plen;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* ---- contexts ------------------------------------------------------------ */

/* One fully configured server context for `spec`, or NULL with errbuf set. */
static SSL_CTX *tls_ctx_new(const tls_cert_spec_t *spec, const char *ciphers,
                            const char *ciphersuites, char *errbuf, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_err(errbuf, errlen, "SSL_CTX_new");
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        tls_err(errbuf, errlen, "cannot require TLS 1.2");
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, tls_sid_ctx, sizeof tls_sid_ctx - 1);

    const char *cl = ciphers ? ciphers : TLS_DEFAULT_CIPHERS;
    if (!SSL_CTX_set_cipher_list(ctx, cl)) {
        tls_err(errbuf, errlen, "invalid TLS 1.2 cipher list \"%s\"", cl);
        goto fail;
    }
    if (ciphersuites && !SSL_CTX_set_ciphersuites(ctx, ciphersuites)) {
        tls_err(errbuf, errlen, "invalid TLS 1.3 ciphersuites \"%s\"", ciphersuites);
        goto fail;
    }

    if (!spec->certificate || !spec->key) {
        tls_err(errbuf, errlen, "%s: certificate and key paths are required",
                spec->host ? spec->host : "(no host)");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, spec->certificate) != 1) {
        tls_err(errbuf, errlen, "cannot load certificate %s", spec->certificate);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, spec->key, SSL_FILETYPE_PEM) != 1) {
        tls_err(errbuf, errlen, "cannot load key %s", spec->key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_err(errbuf, errlen, "key %s does not match certificate %s", spec->key,
                spec->certificate);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

tls_server_t *tls_server_new(const tls_cert_spec_t *specs, size_t n, const char *ciphers,
                             const char *ciphersuites, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    ERR_clear_error();
    if (!specs || n == 0) {
        tls_err(errbuf, errlen, "no TLS certificate configured");
        return NULL;
    }
    if (tls_alpn_index() < 0) {
        tls_err(errbuf, errlen, "cannot allocate SSL ex_data index");
        return NULL;
    }

    tls_server_t *t = calloc(1, sizeof *t);
    if (!t || !(t->hosts = calloc(n, sizeof *t->hosts))) {
        free(t);
        tls_err(errbuf, errlen, "out of memory");
        return NULL;
    }
    t->refs = 1;
    for (size_t i = 0; i < n; i++) {
        if (!specs[i].host || !specs[i].host[0]) {
            tls_err(errbuf, errlen, "certificate %s: no host name",
                    specs[i].certificate ? specs[i].certificate : "(none)");
            goto fail;
        }
        if (!(t->hosts[i].host = strdup(specs[i].host))) {
            tls_err(errbuf, errlen, "out of memory");
            goto fail;
        }
        t->n = i + 1; /* so tls_server_free releases what exists */
        t->hosts[i].ctx = tls_ctx_new(&specs[i], ciphers, ciphersuites, errbuf, errlen);
        if (!t->hosts[i].ctx)
            goto fail;
    }
    /* Only the default context sees the ClientHello's SNI first. */
    SSL_CTX_set_tlsext_servername_callback(t->hosts[0].ctx, tls_sni_cb);
    return t;

fail:
    tls_server_free(&t);
    return NULL;
}

/* Drop one reference; the last one frees the contexts and the host table. */
static void tls_server_release(tls_server_t *t)
{
    if (--t->refs > 0)
        return;
    for (size_t i = 0; i < t->n; i++) {
        SSL_CTX_free(t->hosts[i].ctx);
        free(t->hosts[i].host);
    }
    free(t->hosts);
    free(t);
}

void tls_server_free(tls_server_t **tp)
{
    if (!tp || !*tp)
        return;
    tls_server_release(*tp);
    *tp = NULL;
}

/* A server-side SSL on the default context.  `alpn` is copied into the SSL's
 * ex_data (freed with the SSL); it must be 1..255 bytes (RFC 7301 §3.1).
 * The SSL holds a reference on `t` (in its ex_data, dropped by SSL_free),
 * so the SNI callback can read `t` however long the handshake waits for
 * the ClientHello, even after the caller has freed its own reference.
 * NULL on failure. */
SSL *tls_server_ssl(tls_server_t *t, const char *alpn)
{
    if (!t || t->n == 0)
        return NULL;
    if (alpn && (alpn[0] == '\0' || strlen(alpn) > 255))
        return NULL;
    int idx = tls_alpn_index();
    if (idx < 0)
        return NULL;
    SSL *ssl = SSL_new(t->hosts[0].ctx);
    if (!ssl)
        return NULL;
    if (!SSL_set_ex_data(ssl, tls_server_idx, t)) {
        SSL_free(ssl);
        return NULL;
    }
    t->refs++;
    if (alpn) {
        char *copy = OPENSSL_strdup(alpn);
        if (!copy || !SSL_set_ex_data(ssl, idx, copy)) {
            OPENSSL_free(copy);
            SSL_free(ssl); /* drops the reference taken above */
            return NULL;
        }
    }
    return ssl;
}

const char *tls_sni(SSL *ssl)
{
    return ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

/* ---- client side ---------------------------------------------------------- */

struct tls_client {
    SSL_CTX *ctx;
};

tls_client_t *tls_client_new(const char *ca_file, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    ERR_clear_error();
    tls_client_t *c = calloc(1, sizeof(*c));
    if (!c) {
        tls_err(errbuf, errlen, "out of memory");
        return NULL;
    }
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) {
        tls_err(errbuf, errlen, "SSL_CTX_new");
        goto fail;
    }
    if (!SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION)) {
        tls_err(errbuf, errlen, "cannot require TLS 1.2");
        goto fail;
    }
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!SSL_CTX_set_cipher_list(c->ctx, TLS_DEFAULT_CIPHERS)) {
        tls_err(errbuf, errlen, "invalid TLS 1.2 cipher list");
        goto fail;
    }
    /* A folder is read the OpenSSL way: files named by subject hash
     * (`openssl rehash` / c_rehash), looked up when a chain needs them. */
    struct stat st;
    int is_dir = ca_file && stat(ca_file, &st) == 0 && S_ISDIR(st.st_mode);
    int ok = !ca_file ? SSL_CTX_set_default_verify_paths(c->ctx)
             : is_dir ? SSL_CTX_load_verify_locations(c->ctx, NULL, ca_file)
                      : SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL);
    if (ok != 1) {
        tls_err(errbuf, errlen, "cannot load the trusted CAs from %s",
                ca_file ? ca_file : "the system's default paths");
        goto fail;
    }
    return c;

fail:
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    free(c);
    return NULL;
}

void tls_client_free(tls_client_t **cp)
{
    if (!cp || !*cp)
        return;
    SSL_CTX_free((*cp)->ctx); /* each SSL keeps its own reference */
    free(*cp);
    *cp = NULL;
}

SSL *tls_client_ssl(tls_client_t *c, const char *host, int require_valid, const char *alpn)
{
    if (!c || !host || !*host)
        return NULL;
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        return NULL;
    /* RFC 6125 §6.4: the reference identity is the DNS name we asked for;
     * no partial-label wildcards. */
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1)
        goto fail;
    if (alpn) {
        size_t n = strlen(alpn);
        unsigned char wire[256];
        if (n == 0 || n > 255)
            goto fail;
        wire[0] = (unsigned char)n;
        memcpy(wire + 1, alpn, n);
        if (SSL_set_alpn_protos(ssl, wire, (unsigned)n + 1) != 0)
            goto fail;
    }
    /* Without SSL_VERIFY_PEER the chain and name are still checked and the
     * outcome kept for tls_verify_result(); only the handshake goes on. */
    SSL_set_verify(ssl, require_valid ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    SSL_set_connect_state(ssl);
    return ssl;

fail:
    SSL_free(ssl);
    return NULL;
}

/* Our reading of an X509_V_ERR_* code (X509_V_OK reads as OK). */
static tls_verify_t tls_map_x509_error(long r)
{
    switch (r) {
    case X509_V_OK:
        return TLS_VERIFY_OK;
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return TLS_VERIFY_WRONG_NAME;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CRL_HAS_EXPIRED:
        return TLS_VERIFY_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return TLS_VERIFY_NOT_YET_VALID;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return TLS_VERIFY_UNTRUSTED;
    default:
        return TLS_VERIFY_FAILED;
    }
}

tls_verify_t tls_verify_result(const SSL *ssl)
{
    if (!ssl)
        return TLS_VERIFY_PENDING;
    long r = SSL_get_verify_result(ssl);
    if (r == X509_V_OK) {
        if (!SSL_is_init_finished(ssl))
            return TLS_VERIFY_PENDING;
        return SSL_get0_peer_certificate(ssl) ? TLS_VERIFY_OK : TLS_VERIFY_NO_CERT;
    }
    return tls_map_x509_error(r);
}

const char *tls_verify_str(tls_verify_t v)
{
    switch (v) {
    case TLS_VERIFY_PENDING:
        return "not checked yet";
    case TLS_VERIFY_OK:
        return "ok";
    case TLS_VERIFY_WRONG_NAME:
        return "certificate is for another name";
    case TLS_VERIFY_EXPIRED:
        return "certificate has expired";
    case TLS_VERIFY_NOT_YET_VALID:
        return "certificate is not valid yet";
    case TLS_VERIFY_UNTRUSTED:
        return "certificate is not signed by a trusted authority";
    case TLS_VERIFY_NO_CERT:
        return "no certificate";
    default:
        return "certificate check failed";
    }
}

/* ---- channel binding ----------------------------------------------------- */

/* RFC 9266 §2: tls-exporter = TLS-Exporter("EXPORTER-Channel-Binding", "",
 * 32), i.e. an empty context (use_context = 0 is what RFC 8446 §7.5 calls
 * the empty context for TLS 1.3).  Per RFC 9266 §3 / RFC 7627 it is only
 * unique on TLS 1.3 or TLS 1.2 with the extended master secret; otherwise
 * (and before the handshake completes) 0. */
size_t tls_cb_exporter(SSL *ssl, unsigned char *out, size_t outlen)
{
    static const char label[] = "EXPORTER-Channel-Binding";

    if (!ssl || !out || outlen < 32 || !SSL_is_init_finished(ssl))
        return 0;
    if (SSL_version(ssl) != TLS1_3_VERSION && SSL_get_extms_support(ssl) != 1)
        return 0;
    if (SSL_export_keying_material(ssl, out, 32, label, sizeof label - 1, NULL, 0, 0) != 1) {
        ERR_clear_error();
        return 0;
    }
    return 32;
}

/* RFC 5929 §4.1: hash of our certificate's DER, using the hash function of
 * the certificate's signature algorithm, with MD5 and SHA-1 replaced by
 * SHA-256.  Signature algorithms with no single hash (Ed25519, Ed448) leave
 * the binding undefined: 0. */
size_t tls_cb_server_end_point(SSL *ssl, unsigned char *out, size_t outlen)
{
    X509 *cert = ssl ? SSL_get_certificate(ssl) : NULL;
    int mdnid = NID_undef;

    if (!cert || !out)
        return 0;
    if (!X509_get_signature_info(cert, &mdnid, NULL, NULL, NULL) || mdnid == NID_undef) {
        ERR_clear_error();
        return 0;
    }
    if (mdnid == NID_md5 || mdnid == NID_sha1 || mdnid == NID_md5_sha1)
        mdnid = NID_sha256;
    const EVP_MD *md = EVP_get_digestbynid(mdnid);
    if (!md || EVP_MD_get_size(md) <= 0 || (size_t)EVP_MD_get_size(md) > outlen)
        return 0;
    unsigned int len = 0;
    if (!X509_digest(cert, md, out, &len)) {
        ERR_clear_error();
        return 0;
    }
    return len;
}

/* ---- self-signed certificates -------------------------------------------- */

/* Host names for certificates: ASCII LDH + dots (A-labels for IDNs), which
 * also keeps the subjectAltName config string below unambiguous. */
static int tls_host_ok(const char *host)
{
    size_t len = host ? strlen(host) : 0;

    if (len == 0 || len > 253 || host[0] == '.' || host[0] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* Add one X.509v3 extension given in openssl.cnf syntax. */
static int tls_add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext)
        return 0;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* Open `path` for writing (create or truncate) with exactly `mode`; the
 * fchmod also tightens a pre-existing file before anything is written. */
static FILE *tls_open_out(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return NULL;
    if (fchmod(fd, mode) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

/* Self-signed leaf certificate for `host` (RFC 5280): P-256 key, random
 * positive 127-bit serial (§4.1.2.2), valid from an hour ago (clock skew) for
 * `days`, CN=host (omitted if longer than the 64-character CN limit) and
 * subjectAltName DNS:host (plus IP 127.0.0.1 and ::1 for "localhost"),
 * signed with ECDSA-SHA256.  The key is written first, PKCS#8 PEM, mode
 * 0600; the certificate PEM with mode 0644.  Existing files are overwritten.
 * On failure -1 with errno (file errors) or the OpenSSL error queue set. */
int tls_make_self_signed(const char *host, const char *cert_path, const char *key_path, int days)
{
    int rc = -1;
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    BIGNUM *bn = NULL;
    FILE *f = NULL;
    char san[300];
    unsigned char serial[16];

    if (!tls_host_ok(host) || !cert_path || !key_path || days <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (!(pkey = EVP_EC_gen("P-256")) || !(x = X509_new()))
        goto out;

    if (RAND_bytes(serial, sizeof serial) != 1)
        goto out;
    serial[0] &= 0x7f; /* positive */
    serial[0] |= 0x40; /* and nonzero, full length */
    if (!(bn = BN_bin2bn(serial, sizeof serial, NULL)) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        goto out;

    if (!X509_set_version(x, X509_VERSION_3) || !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) || !X509_set_pubkey(x, pkey))
        goto out;

    X509_NAME *name = X509_get_subject_name(x);
    if (strlen(host) <= 64 && !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                          (const unsigned char *)host, -1, -1, 0))
        goto out;
    if (!X509_set_issuer_name(x, name))
        goto out;

    if (strcasecmp(host, "localhost") == 0)
        snprintf(san, sizeof san, "DNS:%s,IP:127.0.0.1,IP:::1", host);
    else
        snprintf(san, sizeof san, "DNS:%s", host);
    /* SAN is critical when the subject is empty (RFC 5280 §4.2.1.6). */
    if (strlen(host) > 64) {
        char crit[320];
        snprintf(crit, sizeof crit, "critical,%s", san);
        if (!tls_add_ext(x, NID_subject_alt_name, crit))
            goto out;
    } else if (!tls_add_ext(x, NID_subject_alt_name, san)) {
        goto out;
    }
    if (!tls_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
        !tls_add_ext(x, NID_key_usage, "critical,digitalSignature") ||
        !tls_add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !tls_add_ext(x, NID_subject_key_identifier, "hash"))
        goto out;

    if (!X509_sign(x, pkey, EVP_sha256()))
        goto out;

    if (!(f = tls_open_out(key_path, 0600)))
        goto out;
    if (!PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL))
        goto out;
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    if (!(f = tls_open_out(cert_path, 0644)))
        goto out;
    if (!PEM_write_X509(f, x))
        goto out;
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    f = NULL;
    rc = 0;

out:
    if (f)
        fclose(f);
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

/* ---- peers that are servers (RFC 6125 §6, XEP-0178) ---------------------- */

/* Handshake-time verify callback of a server-side SSL that asked for a
 * certificate: accept whatever the peer sends (or nothing); the verdict is
 * tls_peer_verify()'s, once the stream knows which domain the peer claims. */
static int tls_accept_any_cert(int ok, X509_STORE_CTX *ctx)
{
    (void)ok;
    (void)ctx;
    return 1;
}

/* The CertificateRequest names no CA (TLS 1.2: an empty
 * certificate_authorities list, which RFC 5246 §7.4.4 reads as "any";
 * TLS 1.3: no certificate_authorities extension, RFC 8446 §4.2.4): the
 * trust store is usually the system's, whose ~140 names would add several
 * kilobytes to every handshake, and a server has one certificate per
 * domain to send whatever we list.  Nothing here sets a CA list on the
 * SSL or its contexts, so OpenSSL sends none. */
void tls_request_peer_cert(SSL *ssl)
{
    if (!ssl)
        return;
    SSL_set_verify(ssl, SSL_VERIFY_PEER, tls_accept_any_cert);
    /* No resumption (tickets off; the stateful cache is off too): a resumed
     * session brings back the peer's certificate but not its chain, so
     * tls_peer_verify() could not find the path to a trusted CA. */
    SSL_set_options(ssl, SSL_OP_NO_TICKET);
}

/* ASCII case-insensitive equality of a length-counted name from a
 * certificate with the NUL-terminated `ref`; names with an embedded NUL
 * never match. */
static int tls_name_eq(const unsigned char *p, size_t len, const char *ref)
{
    if (memchr(p, '\0', len) || strlen(ref) != len)
        return 0;
    return strncasecmp((const char *)p, ref, len) == 0;
}

/* RFC 6125 §6.4.1-§6.4.3: does the presented DNS name `p` (from a dNSName
 * or a CN) name `domain`?  ASCII case-insensitive; IDNs are compared as
 * the A-labels they are written in.  A wildcard is accepted only as the
 * whole left-most label ("*.example.com"), followed by at least two
 * labels, and matches exactly one non-empty label. */
static int tls_dns_match(const unsigned char *p, size_t len, const char *domain)
{
    if (len > 0 && p[len - 1] == '.') /* absolute form */
        len--;
    if (len >= 2 && p[0] == '*' && p[1] == '.') {
        const unsigned char *rest = p + 2;
        size_t rlen = len - 2;
        if (rlen == 0 || !memchr(rest, '.', rlen) || memchr(rest, '*', rlen))
            return 0;
        const char *dot = strchr(domain, '.');
        if (!dot || dot == domain) /* one label, and not an empty one */
            return 0;
        return tls_name_eq(rest, rlen, dot + 1);
    }
    if (memchr(p, '*', len))
        return 0; /* partial-label wildcards are not accepted */
    return tls_name_eq(p, len, domain);
}

/* SRV-ID (RFC 4985, RFC 6125 §6.5.1; XEP-0178 §4): "_xmpp-server.DOMAIN". */
static int tls_srv_match(const ASN1_STRING *v, const char *domain)
{
    static const char service[] = "_xmpp-server.";
    const unsigned char *p = ASN1_STRING_get0_data(v);
    size_t len = (size_t)ASN1_STRING_length(v);

    if (len <= sizeof service - 1 || strncasecmp((const char *)p, service, sizeof service - 1) != 0)
        return 0;
    return tls_name_eq(p + sizeof service - 1, len - (sizeof service - 1), domain);
}

/* Whether the leaf certificate `x` names the XMPP server `domain`: a DNS-ID,
 * an SRV-ID or an XmppAddr (RFC 6120 §13.7.1.4, XEP-0178 §4) in its
 * subjectAltName; a CN only when it has no subjectAltName at all (RFC 6125
 * §6.4.4).  The XmppAddr is compared byte for byte but for ASCII case: this
 * layer does no stringprep, and a server's domain is normally ASCII. */
static int tls_cert_names(X509 *x, const char *domain)
{
    int crit = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);

    if (gens) {
        int found = 0;
        for (int i = 0; i < sk_GENERAL_NAME_num(gens) && !found; i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
            if (g->type == GEN_DNS) {
                const ASN1_IA5STRING *s = g->d.dNSName;
                found =
                    tls_dns_match(ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s), domain);
            } else if (g->type == GEN_OTHERNAME) {
                int nid = OBJ_obj2nid(g->d.otherName->type_id);
                const ASN1_TYPE *v = g->d.otherName->value;
                if (nid == NID_SRVName && v && v->type == V_ASN1_IA5STRING)
                    found = tls_srv_match(v->value.ia5string, domain);
                else if (nid == NID_XmppAddr && v && v->type == V_ASN1_UTF8STRING)
                    found = tls_name_eq(ASN1_STRING_get0_data(v->value.utf8string),
                                        (size_t)ASN1_STRING_length(v->value.utf8string), domain);
            }
        }
        GENERAL_NAMES_free(gens);
        return found;
    }
    if (crit != -1)
        return 0; /* a subjectAltName is there but unreadable (or repeated) */

    const X509_NAME *subj = X509_get_subject_name(x);
    for (int i = -1; (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
        const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, cn);
        int ok = len > 0 && tls_dns_match(utf8, (size_t)len, domain);
        OPENSSL_free(utf8);
        if (ok)
            return 1;
    }
    return 0;
}

/* Chain (against the trust store of `trust`, for any purpose), dates, then
 * name.  On the server side OpenSSL's peer chain leaves out the leaf; on
 * the client side it starts with it: either way it is only the untrusted
 * pool X509_verify_cert() builds the path from. */
tls_verify_t tls_peer_verify(tls_client_t *trust, SSL *ssl, const char *domain)
{
    if (!trust || !ssl || !domain || !*domain)
        return TLS_VERIFY_FAILED;
    if (!SSL_is_init_finished(ssl))
        return TLS_VERIFY_PENDING;
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    if (!leaf)
        return TLS_VERIFY_NO_CERT;

    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    tls_verify_t v = TLS_VERIFY_FAILED;
    if (!vctx ||
        !X509_STORE_CTX_init(vctx, SSL_CTX_get_cert_store(trust->ctx), leaf,
                             SSL_get_peer_cert_chain(ssl)) ||
        !X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_ANY))
        goto out;
    if (X509_verify_cert(vctx) != 1) {
        v = tls_map_x509_error(X509_STORE_CTX_get_error(vctx));
        if (v == TLS_VERIFY_OK) /* failed without saying why */
            v = TLS_VERIFY_FAILED;
        goto out;
    }
    v = tls_cert_names(leaf, domain) ? TLS_VERIFY_OK : TLS_VERIFY_WRONG_NAME;

out:
    X509_STORE_CTX_free(vctx);
    ERR_clear_error();
    return v;
}

/* Verify callback of a client SSL to an XMPP server: where OpenSSL's DNS-ID
 * check (SSL_set1_host) finds no match, an SRV-ID or XmppAddr for the same
 * domain will do; the error is cleared so tls_verify_result() reports the
 * rest of the check (dates, chain) as usual. */
static int tls_server_name_cb(int ok, X509_STORE_CTX *ctx)
{
    if (ok || X509_STORE_CTX_get_error(ctx) != X509_V_ERR_HOSTNAME_MISMATCH)
        return ok;
    const char *host = X509_VERIFY_PARAM_get0_host(X509_STORE_CTX_get0_param(ctx), 0);
    X509 *leaf = X509_STORE_CTX_get0_cert(ctx);
    if (!host || !leaf || !tls_cert_names(leaf, host))
        return 0;
    X509_STORE_CTX_set_error(ctx, X509_V_OK);
    return 1;
}

SSL *tls_client_ssl_for_server(tls_client_t *c, const char *domain, int require_valid,
                               const char *alpn)
{
    SSL *ssl = tls_client_ssl(c, domain, require_valid, alpn);
    if (!ssl)
        return NULL;
    /* RFC 6125 §6.4.4: no CN when the certificate has any subjectAltName;
     * the callback reads the CN of a certificate with none. */
    SSL_set_hostflags(ssl,
                      X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    SSL_set_verify(ssl, require_valid ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, tls_server_name_cb);
    return ssl;
}
