/*
 * roster_api.h — the "roster" service of mod_roster, for other modules.
 *
 * mod_roster owns the users' rosters and presence subscriptions (RFC 6121
 * §2, §3).  A module that needs to know who may see a user's presence
 * (PEP's 'presence' access model and its notifications, blocking, privacy)
 * lists "roster" in its .depends and asks for the table in load():
 *
 *     static const char *const depends[] = {"roster", NULL};
 *     const roster_api_t *roster = tern_require(m, ROSTER_SERVICE);
 *     if (roster->subscription(tern_host(m), "juliet", "romeo@example.net")
 *         & ROSTER_SUB_FROM) ... romeo may see juliet's presence ...
 *
 * Rules for every function:
 *  - `host` is the user's host (tern_host(m) for a module on that host);
 *    `user` is a prepared localpart; `contact` is a bare JID ("a@b" or a
 *    bare domain "b"), compared after JID preparation.
 *  - They read the stored roster only: they never send stanzas, never
 *    block, and may be called from any handler.
 *  - A host where mod_roster is not loaded answers like an empty roster.
 *
 * Where the presence this module sends goes (for modules that filter it,
 * like blocking): broadcast, probes, probe answers and unavailable-on-
 * logout are sent with tern_route() from the user's JID, so they fire
 * "pre-presence/DEST" on the user's host (ev->origin NULL) whatever the
 * recipient, and then, for a recipient of a local host, "in-presence/DEST"
 * on that host before mod_roster answers anything there.  A filter drops
 * them by returning TERN_HANDLED.  Probes a user's login causes go as
 * <presence type='probe'/> from the user's bare JID to each contact's
 * bare JID.
 */
#ifndef TERN_MODULES_ROSTER_API_H
#define TERN_MODULES_ROSTER_API_H

#include <tern/module.h>

#define ROSTER_SERVICE "roster"

/* The priority mod_roster hooks its presence and iq events with.  Filters
 * that must run before it use a higher number. */
#define ROSTER_PRIORITY 0

/* RFC 6121 §2.1.2.5: the 'subscription' of a roster item, as bits. */
typedef enum {
    ROSTER_SUB_NONE = 0, /* neither sees the other's presence (or no item) */
    ROSTER_SUB_TO = 1,   /* the user receives the contact's presence */
    ROSTER_SUB_FROM = 2, /* the contact receives the user's presence */
    ROSTER_SUB_BOTH = 3  /* ROSTER_SUB_TO | ROSTER_SUB_FROM */
} roster_sub_t;

typedef struct roster_api {
    /* The subscription of `contact` in the roster of user@host;
     * ROSTER_SUB_NONE also when the contact is not in the roster. */
    roster_sub_t (*subscription)(const char *host, const char *user, const char *contact);

    /* 1 when `contact` is an item of user@host's roster (whatever its
     * subscription, pending requests included), else 0. */
    int (*in_roster)(const char *host, const char *user, const char *contact);

    /* 1 when `contact` is subscribed to the presence of user@host, i.e. the
     * user's item has subscription 'from' or 'both' (XEP-0060 §4.5 'presence'
     * access model; XEP-0163 §4.3 notifications go to such contacts), else
     * 0.  A user is always subscribed to themselves: contact == the user's
     * own bare JID answers 1. */
    int (*is_subscribed_to)(const char *host, const char *user, const char *contact);

    /* 1 when `group` is one of the <group/>s of `contact`'s item in
     * user@host's roster (privacy lists, XEP-0016 type='group'), else 0. */
    int (*in_group)(const char *host, const char *user, const char *contact, const char *group);

    /* Calls fn for each item of user@host's roster, in JID order: the
     * contact's bare JID, its subscription, its name (NULL when none).  fn
     * returns non-zero to stop.  Returns the number of items passed to fn,
     * or -1 on a storage error.  The strings live for the call of fn only. */
    int (*foreach)(const char *host, const char *user,
                   int (*fn)(void *ctx, const char *contact, roster_sub_t sub, const char *name),
                   void *ctx);

    /* The last broadcast presence (RFC 6121 §4.2, §4.4) the session sent,
     * with 'from' its full JID and no 'to'; NULL when the session is not
     * available.  Borrowed: valid until the session sends presence again or
     * ends; tern_xml_copy() it to keep it.  For blocking (XEP-0191 §3.4: on
     * unblock, send the user's current presence to the contact). */
    const tern_xml_t *(*session_presence)(const tern_session_t *s);
} roster_api_t;

#endif
