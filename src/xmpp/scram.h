/*
 * scram.h — SCRAM (RFC 5802, RFC 7677) server side and key derivation.
 *
 * Pure computation: no I/O, no storage, no event loop.  The SASL layer
 * feeds client messages in and sends the returned server messages out.
 * Channel binding data (tls-exporter, tls-server-end-point) is supplied by
 * the caller, who owns the TLS connection.  Used by the server, ternctl
 * and the unit tests.
 */
#ifndef TERN_SCRAM_H
#define TERN_SCRAM_H

#include <stddef.h>

typedef enum {
    SCRAM_SHA1 = 0,
    SCRAM_SHA256 = 1,
    SCRAM_SHA512 = 2,
    SCRAM_HASH_COUNT = 3
} scram_hash_t;

#define SCRAM_MAX_KEY  64 /* SHA-512 output */
#define SCRAM_MAX_SALT 64

/* What is stored per user and hash: never the password. */
typedef struct scram_cred {
    scram_hash_t hash;
    unsigned iterations;
    unsigned char salt[SCRAM_MAX_SALT];
    size_t salt_len;
    unsigned char stored_key[SCRAM_MAX_KEY];
    unsigned char server_key[SCRAM_MAX_KEY];
} scram_cred_t;

size_t scram_hash_len(scram_hash_t h);
/* "SCRAM-SHA-256" -> SCRAM_SHA256, plus_r set for the "-PLUS" names. -1 if unknown. */
int scram_mech_parse(const char *mech, scram_hash_t *h, int *plus_r);
const char *scram_mech_name(scram_hash_t h, int plus);

/* Derive salt/keys from a password (SASLprep'd per RFC 5802 §2.2 using
 * PRECIS OpaqueString).  A random salt of 16 bytes is made when `salt`
 * is NULL.  Returns 0 or -1 (bad password string, crypto failure).
 * Preparation as implemented: printable ASCII is used as is; otherwise
 * the password must be UTF-8, non-ASCII spaces become U+0020, the result
 * is NFKC-normalized (as SASLprep, RFC 4013) and control characters or an
 * empty result are refused.  Any iteration count >= 1 is accepted. */
int scram_derive(scram_hash_t h, const char *password, const unsigned char *salt, size_t salt_len,
                 unsigned iterations, scram_cred_t *out);

/* Server exchange for one authentication attempt. */
typedef struct scram_server scram_server_t;

typedef enum {
    SCRAM_CONTINUE = 0, /* send *out as a challenge, wait for the next client message */
    SCRAM_SUCCESS = 1,  /* send *out as additional data with <success/> */
    SCRAM_FAIL = -1     /* send <failure/> with *failure_r (RFC 6120 §6.5 condition) */
} scram_status_t;

/* Channel-binding types offered by this connection (may be 0 on plain TCP). */
#define SCRAM_CB_TLS_EXPORTER         1u
#define SCRAM_CB_TLS_SERVER_END_POINT 2u

typedef struct scram_cb_data {
    unsigned offered;              /* SCRAM_CB_* bits this connection supports */
    const unsigned char *exporter; /* RFC 9266 tls-exporter value (32 bytes) */
    size_t exporter_len;
    const unsigned char *end_point; /* RFC 5929 tls-server-end-point hash */
    size_t end_point_len;
    /* The server offered -PLUS mechanisms: a client answering "y" (it supports
     * binding but thinks the server does not) must fail (RFC 5802 §6). */
    int plus_advertised;
    /* XEP-0474: mechanism names offered on this stream (NULL-terminated),
     * from which the downgrade-protection attribute of server-first is made
     * together with the channel-binding types in `offered`. NULL = skip. */
    const char *const *offered_mechs;
} scram_cb_data_t;

/* Look up the credentials for an authcid (already-prepped username).
 * Returns 0 and fills *cred, or -1 if there is no such user: the exchange
 * then continues with fake credentials and fails at the end. */
typedef int (*scram_lookup_fn)(void *ctx, const char *username, scram_hash_t h, scram_cred_t *cred);

scram_server_t *scram_server_new(scram_hash_t h, int plus, const scram_cb_data_t *cb,
                                 scram_lookup_fn lookup, void *lookup_ctx);
void scram_server_free(scram_server_t **s);

/* Process a client message (raw bytes, already base64-decoded).
 * *out is set to a malloc'd server message (caller frees; may be NULL/0 length).
 * On SCRAM_FAIL *failure_r is "not-authorized", "malformed-request",
 * "invalid-mechanism", "encryption-required", …
 *
 * Clarifications (scram.c):
 *  - Messages over 4096 bytes or containing NUL fail "malformed-request".
 *  - An empty message before client-first (no initial response) is
 *    answered once with SCRAM_CONTINUE and an empty challenge.
 *  - Syntax errors, an "m=" extension, bad "=XX" escapes, "p=" with a
 *    non-PLUS mechanism and "n"/"y" with a -PLUS mechanism fail
 *    "malformed-request"; "p=" on a connection offering no binding at all
 *    fails "encryption-required"; a "p=" type not offered fails
 *    "malformed-request" (see scram_server_cb_refused); "y" while -PLUS
 *    is advertised, wrong binding data, a wrong nonce, a wrong proof and
 *    an unknown user fail "not-authorized"; an authzid that is not UTF-8
 *    without controls fails "invalid-authzid"; internal errors fail
 *    "temporary-auth-failure".
 *  - On SCRAM_FAIL *out is NULL.  Any step after SUCCESS or FAIL fails. */
scram_status_t scram_server_step(scram_server_t *s, const char *in, size_t in_len, char **out,
                                 size_t *out_len, const char **failure_r);
/* The authenticated username after SCRAM_SUCCESS (NULL before that). */
const char *scram_server_username(const scram_server_t *s);
/* The authzid the client asked for (NULL if none). */
const char *scram_server_authzid(const scram_server_t *s);
/* After a failure on a "p=" channel-binding type this connection does not
 * support (e.g. tls-unique, undefined on TLS 1.3; RFC 5802 §7
 * unsupported-channel-binding-type): the requested name, at most 31
 * characters; NULL otherwise.  Such a failure says nothing about the
 * password. */
const char *scram_server_cb_refused(const scram_server_t *s);
/* The username the client sent (unprepared), once client-first was parsed;
 * NULL before.  For logs only: it is not authenticated. */
const char *scram_server_authcid(const scram_server_t *s);

/* Client side, for tests and tern-bench: compute client-final from the
 * exchange.  Exposed so the RFC test vectors can be checked both ways. */
int scram_client_proof(scram_hash_t h, const char *password, const unsigned char *salt,
                       size_t salt_len, unsigned iterations, const char *auth_message,
                       unsigned char *proof_out, unsigned char *server_sig_out);

/* base64 helpers (tern_base64_*, strict).  Return malloc'd buffers, NULL on error.
 * b64_encode output is NUL-terminated, without line breaks.  b64_decode is
 * strict: padded, no whitespace, canonical trailing bits; "" decodes to a
 * non-NULL buffer with *out_len == 0. */
char *b64_encode(const unsigned char *in, size_t len);
unsigned char *b64_decode(const char *in, size_t len, size_t *out_len);

/* ---- tests only ------------------------------------------------------
 * Use `suffix` as the server part of the nonce instead of random data, so
 * that the RFC test vectors can be replayed.  Call before the first step.
 * Never call this outside tests/. */
void scram_server_set_nonce_for_test(scram_server_t *s, const char *suffix);

#endif
