/*
 * scram.h — the client side of SASL SCRAM-SHA-1 and SCRAM-SHA-256
 * (RFC 5802, RFC 7677), without channel binding.
 *
 * Owns the three messages of the exchange and the check of the server's
 * signature.  Messages in and out are base64, as they travel in XMPP's
 * <auth/>, <challenge/>, <response/> and <success/>.
 */
#ifndef TERN_BENCH_SCRAM_H
#define TERN_BENCH_SCRAM_H

typedef struct scram scram_t;

/* mech: "SCRAM-SHA-1" or "SCRAM-SHA-256"; NULL for any other. */
scram_t *scram_new(const char *mech);
void scram_free(scram_t **s);
/* The client-first message for `user` (base64, malloc'd), or NULL. */
char *scram_client_first(scram_t *s, const char *user);
/* The client-final message answering the server-first (base64), or NULL
 * with *why set. */
char *scram_client_final(scram_t *s, const char *password, const char *server_first_b64,
                         const char **why);
/* 0 when the server-final message (base64) carries the right signature. */
int scram_check_server(scram_t *s, const char *server_final_b64, const char **why);

#endif
