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
 * Host names match SNI case-insensitively; the first spec for a name wins.
 * A name no spec has gets the first certificate that covers it by a DNS-ID
 * or a wildcard (e.g. a component's domain under "*.example.org"), else
 * the default. */
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

/* ---- client side (outgoing connections) ---- */

typedef struct tls_client tls_client_t;

/* The outcome of checking a peer's certificate (client side, or either
 * side with tls_peer_verify()). */
typedef enum {
    TLS_VERIFY_PENDING,       /* no handshake finished yet */
    TLS_VERIFY_OK,            /* chain to a trusted CA, valid now, name matches */
    TLS_VERIFY_WRONG_NAME,    /* the certificate is not for the host we asked for */
    TLS_VERIFY_EXPIRED,       /* a certificate of the chain has expired */
    TLS_VERIFY_NOT_YET_VALID, /* ... or is not valid yet */
    TLS_VERIFY_UNTRUSTED,     /* no chain to a CA of the trust store (self-signed, unknown CA) */
    TLS_VERIFY_NO_CERT,       /* the peer sent no certificate */
    TLS_VERIFY_FAILED,        /* any other reason (revoked, bad signature, bad usage...) */
} tls_verify_t;

/* A client context trusting the CAs in `ca_file` (PEM; or a folder of
 * hashed CA files as `openssl rehash` makes them), or the system's
 * default trust store when `ca_file` is NULL.  TLS 1.2 minimum, the same
 * ciphers as the server side.  NULL on failure, the reason in errbuf. */
tls_client_t *tls_client_new(const char *ca_file, char *errbuf, size_t errlen);
/* Drop the context and set *c to NULL; SSLs made from it stay usable. */
void tls_client_free(tls_client_t **c);

/* A new SSL in connect state for a connection to `host`: SNI names `host`
 * and the peer's certificate must name it (RFC 6125 via X509_VERIFY_PARAM;
 * wildcards only as a whole left-most label).  `require_valid` non-zero:
 * a failed check fails the handshake; zero: the handshake goes on and the
 * outcome is only reported (tls_verify_result()), for callers that
 * authenticate the peer another way.  `alpn` (or NULL) is offered.
 * NULL on failure.  For a connection to an XMPP server use
 * tls_client_ssl_for_server(), which also accepts an SRV-ID or XmppAddr. */
SSL *tls_client_ssl(tls_client_t *c, const char *host, int require_valid, const char *alpn);
/* tls_client_ssl() for a connection to the XMPP server `domain`
 * (server-to-server): the certificate may name it by a DNS-ID, an SRV-ID
 * (_xmpp-server.DOMAIN) or an XmppAddr, and by its CN only when it has no
 * subjectAltName (RFC 6125 §6, XEP-0178 §4), the same name rules as
 * tls_peer_verify(); chain and dates as tls_client_ssl() checks them
 * (purpose serverAuth).  tls_verify_result() reports the outcome.
 * Either this, or tls_client_ssl(..., require_valid = 0) followed by
 * tls_peer_verify() once the handshake is done, gives the same verdict
 * on the name. */
SSL *tls_client_ssl_for_server(tls_client_t *c, const char *domain, int require_valid,
                               const char *alpn);

/* The outcome of the certificate check of a client-side `ssl` whose
 * handshake finished or failed. */
tls_verify_t tls_verify_result(const SSL *ssl);
/* A short English description ("certificate has expired"). */
const char *tls_verify_str(tls_verify_t v);

/* ---- peers that are servers (server-to-server) ---- */

/* Ask the peer of a server-side `ssl` (before its handshake) for a
 * certificate, without requiring one and without failing the handshake
 * over it: a connecting server may authenticate with it (SASL EXTERNAL,
 * XEP-0178) or else by dialback.  Works on TLS 1.2 and 1.3; the request
 * names no CA (any certificate will do), and still holds when SNI switches
 * the SSL to another host's context.  The peer's certificate, if any, is
 * then read by tls_peer_verify().  Such a connection is never resumed
 * (a resumed session would lack the peer's chain): every handshake is a
 * full one. */
void tls_request_peer_cert(SSL *ssl);
/* Check the certificate the peer of `ssl` presented (either side, once the
 * handshake is done) as the certificate of the XMPP server `domain`
 * (RFC 6125, XEP-0178): a chain to the trust store of `trust`, valid now,
 * for any purpose (a serverAuth-only certificate is accepted from a
 * connecting server), naming `domain` by a DNS-ID (a wildcard only as the
 * whole left-most label, for exactly one label), an SRV-ID
 * (_xmpp-server.DOMAIN) or an XmppAddr (id-on-xmppAddr) equal to `domain`,
 * or by its CN only when the certificate has no subjectAltName at all.
 * Names are compared ASCII case-insensitively, IDNs as the A-labels given
 * (callers pass the domain in A-labels).  `trust` is only read for its
 * trust store.  Returns TLS_VERIFY_OK, _NO_CERT (none sent), _UNTRUSTED,
 * _EXPIRED, _NOT_YET_VALID, _WRONG_NAME (checked after chain and dates),
 * _PENDING (handshake not finished) or _FAILED (anything else, also bad
 * arguments).  Do not resume (SSL_set_session) a client-side session you
 * check this way: a resumed session lacks the peer's chain. */
tls_verify_t tls_peer_verify(tls_client_t *trust, SSL *ssl, const char *domain);

#endif
