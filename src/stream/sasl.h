/*
 * sasl.h — SASL mechanisms for client streams (internal).
 *
 * Chooses what to offer (SCRAM-SHA-{1,256,512} and their -PLUS variants
 * when channel binding is available, PLAIN only over TLS and only when the
 * admin enabled it), runs one exchange on base64 payloads and checks the
 * authorization identity.  The XML of <auth/>, <challenge/>... is the
 * c2s stream's business.
 */
#ifndef TERN_SASL_H
#define TERN_SASL_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "store/store.h"

typedef struct sasl sasl_t;

typedef struct sasl_params {
    const char *host;
    store_db_t *db;
    SSL *ssl;        /* NULL on an unencrypted stream */
    int allow_plain; /* the admin enabled PLAIN (never offered without TLS) */
    int strict_cb;   /* refuse "y" while -PLUS is offered (RFC 5802 §6); the
                      * stream clears it once the client tried a -PLUS mechanism */
    /* PLAIN derives keys on the worker pool when this is set: sasl_step
     * then returns SASL_PENDING and the verdict comes later through
     * resume(resume_ctx, SASL_SUCCESS or SASL_FAILURE, failure), on the
     * loop, unless the sasl_t is freed first. */
    void (*resume)(void *ctx, int status, const char *failure);
    void *resume_ctx;
} sasl_params_t;

typedef enum {
    SASL_CONTINUE = 0,
    SASL_SUCCESS = 1,
    SASL_FAILURE = -1,
    SASL_PENDING = 2
} sasl_status_t;

#define SASL_MAX_MECHS 8
/* Fill `mechs` (NULL-terminated) with what this stream offers, strongest first. */
void sasl_mechanisms(const sasl_params_t *p, const char *mechs[SASL_MAX_MECHS]);
/* Channel-binding types this stream supports, as XEP-0440 names, NULL-terminated. */
void sasl_cb_types(const sasl_params_t *p, const char *types[3]);

/* Start `mech`; NULL with *failure_r ("invalid-mechanism", "encryption-required"...). */
sasl_t *sasl_start(const sasl_params_t *p, const char *mech, const char **failure_r);
/* One step: `in` is the element's base64 text ("=" or "" = empty).  *out is a
 * malloc'd base64 string for <challenge/> or <success/> (may be NULL). */
sasl_status_t sasl_step(sasl_t *s, const char *in, char **out, const char **failure_r);
/* After SASL_SUCCESS: the prepared localpart that authenticated. */
const char *sasl_username(const sasl_t *s);
const char *sasl_mech_name(const sasl_t *s);
/* After SASL_FAILURE: the channel-binding type the client asked for if the
 * stream does not support it (e.g. tls-unique on TLS 1.3), else NULL.  Such
 * a failure is no wrong password (RFC 5802 §7 unsupported-channel-binding-type). */
const char *sasl_cb_refused(const sasl_t *s);
/* The username the client sent, for logs (not authenticated); may be NULL. */
const char *sasl_authcid(const sasl_t *s);
void sasl_free(sasl_t **s);

#endif
