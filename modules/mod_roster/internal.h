/*
 * internal.h — what the files of mod_roster share (never installed).
 *
 *   mod.c           descriptor, options, instances per host, the "roster" service
 *   items.c         roster items: the record kept per contact, versions
 *   roster.c        jabber:iq:roster get/set/remove, pushes, versioning (RFC 6121 §2)
 *   presence.c      subscriptions (§3, Appendix A), presence (§4), session slots
 *   actions.c       subscription changes other modules make for users (the
 *                   write functions of roster_api.h)
 *   lastactivity.c  XEP-0012 §3 last activity of accounts, last unavailable presence
 */
#ifndef MOD_ROSTER_INTERNAL_H
#define MOD_ROSTER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <tern/module.h>

#include "../roster_api.h"

#define NS_ROSTER      "jabber:iq:roster"
#define NS_ROSTERVER   "urn:xmpp:features:rosterver"
#define NS_PREAPPROVAL "urn:xmpp:features:pre-approval"
#define NS_DELAY       "urn:xmpp:delay"
#define NS_LAST        "jabber:iq:last"

/* Longest status text kept with a pending subscription request or a
 * last unavailable presence (bytes). */
#define ROSTER_MAX_STATUS 1024

/* One loaded instance: mod_roster on one host. */
typedef struct rhost {
    tern_module_ctx_t *m;
    const char *name;       /* the host, tern_host(m) */
    tern_store_t *items;    /* MAP: user -> contact bare JID -> item record */
    tern_store_t *versions; /* KV: user -> roster version (decimal) */
    tern_store_t *last;     /* KV: user -> last unavailable (lastactivity.c) */
    long long max_items;
    long long max_name;
    long long max_group;
    int versioning;
    unsigned long push_seq; /* ids of roster pushes */
    struct rhost *next;
} rhost_t;

/* mod.c: the instance of a host, NULL when mod_roster is not loaded there. */
rhost_t *rhost_find(const char *host);
/* The first loaded instance (then ->next), for work over every host. */
rhost_t *rhost_first(void);

/* ---- items.c ---------------------------------------------------------- */

/* RFC 6121 §2.1.2: one contact of a user, plus what the server keeps of
 * the subscription state machine (Appendix A). */
typedef struct ritem {
    char *jid;           /* the contact's bare JID (the map key) */
    char *name;          /* NULL when none */
    unsigned sub;        /* roster_sub_t bits */
    unsigned ask : 1;    /* pending out: ask='subscribe' */
    unsigned in : 1;     /* pending in: a request the user has not answered */
    unsigned appr : 1;   /* pre-approved (§3.4): approved='true' */
    unsigned hidden : 1; /* not in the user's roster: kept only for a pending-in request */
    char *status;        /* status text of the pending-in request, NULL when none */
    char **groups;
    size_t ngroups;
} ritem_t;

ritem_t *item_new(const char *jid);
void item_free(ritem_t **it);
/* Replace the groups/name/status; 0 or -1 (allocation). */
int item_set_name(ritem_t *it, const char *name);
int item_add_group(ritem_t *it, const char *group);
void item_clear_groups(ritem_t *it);
int item_set_status(ritem_t *it, const char *status);
int item_has_group(const ritem_t *it, const char *group);
/* Nothing left worth keeping: a hidden item with no pending request. */
int item_is_empty(const ritem_t *it);

/* 1 found (*out set, caller frees), 0 absent, -1 storage error. */
int item_get(rhost_t *h, const char *user, const char *contact, ritem_t **out);
int item_put(rhost_t *h, const char *user, const ritem_t *it);
int item_del(rhost_t *h, const char *user, const char *contact);
/* Calls fn for each stored item (hidden ones too) in JID order; fn returns
 * non-zero to stop.  Returns how many items fn saw, or -1. */
int items_foreach(rhost_t *h, const char *user, int (*fn)(void *ctx, const ritem_t *it), void *ctx);
/* The same walk over the entries of a tern_map_foreach_async result. */
int items_foreach_result(const tern_map_result_t *res, int (*fn)(void *ctx, const ritem_t *it),
                         void *ctx);
/* Items of the roster the user sees (not hidden), or -1. */
long items_count_visible(rhost_t *h, const char *user);
/* Stored requests that are not roster items (hidden), or -1. */
long items_count_hidden(rhost_t *h, const char *user);
/* Append <item/> for `it` to a <query xmlns='jabber:iq:roster'/>. */
tern_xml_t *item_to_xml(const ritem_t *it, tern_xml_t *query);

/* The roster version (RFC 6121 §2.6) into buf: "0" for a roster never
 * changed.  bump: a new version, stored, never equal to an earlier one. */
void roster_version(rhost_t *h, const char *user, char *buf, size_t len);
int roster_bump(rhost_t *h, const char *user, char *buf, size_t len);

/* ---- roster.c --------------------------------------------------------- */

int roster_on_get(tern_module_ctx_t *m, tern_event_t *ev);
int roster_on_set(tern_module_ctx_t *m, tern_event_t *ev);
/* Store `it` (or delete it when `removed` or it is empty), bump the version
 * and push the item to the user's interested resources (§2.1.6) when it is
 * visible, or was.  `was_visible`: the item was in the roster before. */
int roster_commit(rhost_t *h, const char *user, ritem_t *it, int removed, int was_visible);
/* Store `it` (delete it when empty) after a change the roster does not
 * show (a pending-in request): no version, no push. */
int roster_store(rhost_t *h, const char *user, const ritem_t *it);

/* ---- presence.c ------------------------------------------------------- */

/* Per-session state, in the session slot of the host's module context. */
typedef struct psess {
    int interested;       /* requested the roster (§2.1.6) */
    tern_xml_t *presence; /* last broadcast available presence (own copy), NULL if unavailable */
    char *unavail_status; /* status of the last broadcast unavailable presence */
    char **directed;      /* JIDs that got directed available presence (§4.6) */
    size_t ndirected;
} psess_t;

psess_t *psess_get(rhost_t *h, tern_session_t *s, int create);

int presence_on_self(tern_module_ctx_t *m, tern_event_t *ev);
int presence_on_pre(tern_module_ctx_t *m, tern_event_t *ev);
int presence_on_bare(tern_module_ctx_t *m, tern_event_t *ev);
int presence_on_full(tern_module_ctx_t *m, tern_event_t *ev);
int presence_on_closed(tern_module_ctx_t *m, tern_event_t *ev);
int presence_on_user_deleted(tern_module_ctx_t *m, tern_event_t *ev);

/* 1 when user's roster has room for one more item (§2.3.3: max_items). */
int presence_room_for_one(rhost_t *h, const char *user);
/* A.2.3, §3.1.5: the contact of `it` (stored or new; `visible`: it was in
 * the roster) becomes subscribed to user's presence: 'from' stored and
 * pushed, pending request and pre-approval cleared, then `answer` (a
 * copy, from the user's bare JID) or a new <presence type='subscribed'/>
 * and the presence of the user's available resources routed to it. */
void presence_grant(rhost_t *h, const char *user, ritem_t *it, int visible,
                    const tern_xml_t *answer);
/* Route <presence type=TYPE from=FROM to=TO/> (status optional). */
void presence_send_type(rhost_t *h, const char *from, const char *to, const char *type,
                        const char *status);
/* Route the current presence of each available resource of `user` to `to`. */
int presence_send_available(rhost_t *h, const char *user, const char *to);
/* Route unavailable presence from each available resource of `user` to `to`. */
void presence_send_unavailable(rhost_t *h, const char *user, const char *to);

/* ---- actions.c -------------------------------------------------------- */

/* The write functions of roster_api.h (see there). */
int actions_approve(const char *host, const char *user, const char *contact, int request_in_hand,
                    const char **error_r);
int actions_subscribe(const char *host, const char *user, const char *contact,
                      const char **error_r);
int actions_subscribe_both(const char *host, const char *user, const char *contact,
                           const char **error_r);

/* ---- lastactivity.c --------------------------------------------------- */

int last_on_get(tern_module_ctx_t *m, tern_event_t *ev);
/* Remember that `user` went offline now with this status ("" for none). */
void last_record(rhost_t *h, const char *user, const char *status);
/* 1 and *when_s / *status_r (caller frees) when known, 0 when not, -1 error. */
int last_lookup(rhost_t *h, const char *user, int64_t *when_s, char **status_r);

/* ---- small helpers (mod.c) ---------------------------------------------- */

/* The bare JID of user@h->name into buf. */
const char *user_bare(const rhost_t *h, const char *user, char *buf, size_t len);
/* A copy of at most `max` bytes of s, cut at a UTF-8 boundary; NULL for NULL. */
char *str_cut(const char *s, size_t max);

#endif
