/*
 * invites_api.h — the "invites" service mod_invites offers mod_register.
 *
 * A client that has not logged in may present an invitation token
 * (XEP-0445 §4: <preauth xmlns='urn:xmpp:pars:0' token='...'/>).  When
 * mod_invites accepts it, the stream may create exactly one account, even
 * where open registration is off.  mod_register asks this service on
 * every in-band registration:
 *
 *   const invites_api_t *inv = tern_require(m, INVITES_SERVICE);
 *   if (inv != NULL && inv->session_may_register(inv, session)) ...
 *
 * and calls consume() once the account exists.  The service is found at
 * event time, so neither module depends on the other's load order; when
 * mod_invites is not loaded tern_require returns NULL and only open
 * registration remains.
 *
 * Tokens live in mod_invites' map store "invites" on the host (user "",
 * key = the token); `ternctl invite` writes them.  The value is text, one
 * "key=value" per line (unknown keys are ignored):
 *   expires=MICROSECONDS   wall clock, since the epoch (0 = never)
 *   type=register|roster   XEP-0401 account creation / user invitation
 *   creator=JID            the inviter (roster) or who made it
 *   username=LOCALPART     the only account the token may create (optional;
 *                          prepared, as tern_jid_prep_local() returns it)
 *   ibr=n                  creates no account: a roster token for
 *                          subscriptions only (optional; XEP-0401 §5.1
 *                          without ibr=y)
 * A "roster" token is also used up by a subscription request carrying
 * it (XEP-0379), which mod_invites handles without this service.
 */
#ifndef TERN_MODULES_INVITES_API_H
#define TERN_MODULES_INVITES_API_H

#include <tern/module.h>

#define INVITES_SERVICE "invites"

typedef struct invites_api invites_api_t;
struct invites_api {
    /* 1 when `s` presented a valid token on this stream and that token
     * still exists (not used by another stream since), else 0.  Expiry is
     * checked when the token is presented, never again (XEP-0445 §4). */
    int (*session_may_register)(const invites_api_t *self, tern_session_t *s);
    /* The prepared username the session's token is restricted to, or NULL
     * when it allows any (valid until the next call on this session). */
    const char *(*session_username)(const invites_api_t *self, tern_session_t *s);
    /* 1 when `local` (prepared) is reserved by an unexpired token other than
     * the one `s` presented (XEP-0445 §5: reserved until it expires). */
    int (*username_reserved)(const invites_api_t *self, tern_session_t *s, const char *local);
    /* The account `local` was created with the session's token: delete the
     * token and forget it on `s`, so that it creates no second account.
     * For a user invitation the account and the inviter become contacts
     * (XEP-0401 §5.5: roster pushes, presence), when mod_roster is loaded. */
    void (*consume)(const invites_api_t *self, tern_session_t *s, const char *local);
};

#endif
