/*
 * tls.h — TLS contexts and per-connection TLS facts (internal).
 *
 * Builds one OpenSSL server context per certificate (TLS 1.2+, modern
 * ciphers, no compression or renegotiation), picks the host's context by
 * SNI, answers ALPN "xmpp-client" for direct TLS (XEP-0368), and extracts
 * channel-binding data for SCRAM-PLUS.  Knows nothing of XMPP streams.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

typedef struct tls_server tls_server_t;

typedef struct tls_cert_spec {
    const char *host;        /* domain this certificate serves (SNI name) */
    const char *certificate; /* PEM chain path */
    const char *key;         /* PEM key path */
} tls_cert_spec_t;

/* Build contexts for every spec; the first is the default when SNI names no
 * known host.  `ciphers` (TLS 1.2) and `ciphersuites` (TLS 1.3) may be NULL
 * for the built-in modern defaults.  NULL and *error_r (static or in
 * errbuf) on failure, e.g. unreadable file or key/cert mismatch.
 * (There is no error_r parameter: the message, naming the file and
 * OpenSSL's reason, is written to errbuf when errbuf is non-NULL.)
 * Host names match SNI case-insensitively; the first spec for a name wins. */
tls_server_t *tls_server_new(const tls_cert_spec_t *specs, size_t n, const char *ciphers,
                             const char *ciphersuites, char *errbuf, size_t errlen);
/* Drop the caller's reference and set *t to NULL.  The contexts are freed
 * once no SSL made by tls_server_ssl() from them remains either. */
void tls_server_free(tls_server_t **t);

/* A new SSL for an accepted connection.  `alpn` non-NULL = the protocol a
 * client must offer when it offers ALPN at all ("xmpp-client" on direct TLS).
 * `alpn` is copied (1..255 bytes).  The caller sets accept state and BIOs.
 * The SSL holds a reference on `t` until SSL_free(): a reload may free the
 * server's `t` while handshakes started with it are still in progress.
 * NULL on failure. */
SSL *tls_server_ssl(tls_server_t *t, const char *alpn);

/* The SNI name the client sent, or NULL. */
const char *tls_sni(SSL *ssl);

/* Channel binding (RFC 9266 tls-exporter, 32 bytes; only on TLS 1.3 or with
 * extended master secret) and RFC 5929 tls-server-end-point.  Return the
 * length written (0 when unavailable). */
size_t tls_cb_exporter(SSL *ssl, unsigned char *out, size_t outlen);
size_t tls_cb_server_end_point(SSL *ssl, unsigned char *out, size_t outlen);

/* Create a self-signed certificate and key for `host` (RSA 2048 or P-256),
 * valid for `days`; used by contrib/quickstart.sh via `ternctl cert` and by
 * tests.  0 or -1.  (The implementation uses P-256; the key file is mode
 * 0600; on -1, errno or the OpenSSL error queue says why.) */
int tls_make_self_signed(const char *host, const char *cert_path, const char *key_path, int days);

#endif
