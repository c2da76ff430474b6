/*
 * s2s_int.h — what s2s.c, s2s_in.c and s2s_out.c share (internal to
 * src/stream).
 */
#ifndef TERN_S2S_INT_H
#define TERN_S2S_INT_H

#include <stddef.h>
#include <tern/module.h>

#include "net/resolver.h"
#include "tls/tls.h"
#include "stream/s2s.h"

#define NS_SERVER        "jabber:server"
#define NS_DIALBACK      "jabber:server:dialback"
#define NS_DIALBACK_FEAT "urn:xmpp:features:dialback"
#define NS_BIDI          "urn:xmpp:bidi"
#define NS_BIDI_FEAT     "urn:xmpp:features:bidi"

struct conn;

typedef struct s2s_shared {
    tls_client_t *trust; /* checks peers' certificates */
    char secret[65];     /* dialback secret (configured, or random per start) */
    char old_secret[65]; /* the one before the last reload that changed it, or "" */
    int secret_configured;
    long long n_conns; /* open s2s streams, both directions */
    int started;
} s2s_shared_t;

extern s2s_shared_t s2s;

/* Whether `list` (NULL-terminated prepared domains) holds `domain`. */
int s2s_listed(const char *const *list, const char *domain);
/* The allow/deny lists: 1 when we federate with `remote`. */
int s2s_allowed(const char *remote);
/* Whether `remote` may authenticate with dialback when its certificate
 * checked as `v`: always with a valid one, else when certificates are not
 * required or the domain is in dialback_only. */
int s2s_dialback_allowed(const char *remote, tls_verify_t v);
long long s2s_now_ms(void);
/* A peer's token (stream id, dialback key) safe to echo: 1..128 of
 * [A-Za-z0-9._-]. */
int s2s_token_ok(const char *s);
/* Whether `key` is our dialback key for (receiving, originating, id), with
 * the secret or the one it replaced. */
int s2s_key_ok(const char *receiving, const char *originating, const char *id, const char *key);
const char *s2s_verify_words(tls_verify_t v);

/* s2s_out.c */
int s2s_out_route(tern_xml_t *stanza, const tern_jid_t *to);
/* Ask the authoritative server of `orig` whether `key` is the key of
 * stream `in_id` (ours, from `orig` to `recv`): the answer comes through
 * s2s_in_verified(). */
void s2s_out_verify(const char *recv, const char *orig, const char *in_id, const char *key);
/* XEP-0288: incoming stream `c` authenticated `remote` towards `local` and
 * asked for bidirectionality: our stanzas for the pair may go on it. */
void s2s_out_bidi_attach(const char *local, const char *remote, struct conn *c);
/* `c` is closing: it carries nothing more. */
void s2s_out_bidi_detach(struct conn *c);
/* The authoritative server's answer for a pair the peer asked for on our
 * bidirectional stream with id `id` (from s2s_in_verified()). */
void s2s_out_peer_verified(const char *id, const char *orig, const char *recv, const char *type,
                           const char *condition);
/* The peer's answer (db:result with a type) on stream `c` to a pair of
 * ours piggybacked on it; 1 when it was one. */
int s2s_out_rider_answer(struct conn *c, tern_xml_t *el, const char *type);
/* Whether our pair (local, remote) rides, authenticated, on stream `c`
 * (then the peer may send for the inverse pair on it: XEP-0288). */
int s2s_out_rides(const struct conn *c, const char *local, const char *remote);
/* Append to buf (of `len`, `n` used) " local->remote" for each pair of ours
 * that goes on incoming stream `c` (bidi, or piggybacked); the new length
 * (it may reach len: the text is cut). */
size_t s2s_out_pairs_on(const struct conn *c, char *buf, size_t len, size_t n);
void s2s_out_list(void (*fn)(void *arg, const s2s_info_t *info), void *arg);
size_t s2s_out_close(const char *remote);
void s2s_out_stop(void);
/* Read our certificates again for the next connections (reload). */
void s2s_out_forget_certificates(void);

/* s2s_in.c: `type` is "valid", "invalid" or "error" (with `condition`). */
void s2s_in_verified(const char *in_id, const char *orig, const char *recv, const char *type,
                     const char *condition);
/* An incoming bidirectional stream (XEP-0288) authenticated for `remote`
 * that may carry more of our pairs by dialback, and its id; or NULL. */
struct conn *s2s_in_bidi_carrier(const char *remote, const char **stream_id);
void s2s_in_list(void (*fn)(void *arg, const s2s_info_t *info), void *arg);
size_t s2s_in_close(const char *remote);
void s2s_in_stop(void);

#endif
