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
 * A module that works without rosters (invites) does not list it and
 * calls tern_require() when it needs the table: NULL when mod_roster is
 * not loaded on its host.
 *
 * Rules for every function:
 *  - `host` is the user's host (tern_host(m) for a module on that host);
 *    `user` is a prepared localpart; `contact` is a bare JID ("a@b" or a
 *    bare domain "b"), compared after JID preparation.
 *  - The read functions (subscription ... session_presence) read the
 *    stored roster only: they never send stanzas, never block, and may be
 *    called from any handler.  A host where mod_roster is not loaded
 *    answers like an empty roster.
 *  - The write functions (approve, subscribe, subscribe_both) change
 *    rosters on the user's behalf, for modules that act for users
 *    (invitations: XEP-0379, XEP-0401).  They do what the matching
 *    presence from the user's client would do: store the item, push it
 *    to the user's interested resources (RFC 6121 §2.1.6) and route the
 *    subscription stanzas and presence with tern_route() (filters see
 *    them).  They never block and may be called from any handler,
 *    presence handlers included.  They return 0 or 1 as documented, or
 *    -1 with *error_r (when error_r is not NULL) set to a static text:
 *    "no roster on this host", "no such account", "invalid JID" (also
 *    the user's own JID), "roster full", "storage error".
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

    /* ---- write functions ---- */

    /* Let `contact` see user@host's presence, as the user's <presence
     * type='subscribed'/> would (RFC 6121 §3.1.5, §3.4).  When the contact
     * has asked -- its request is pending, or `request_in_hand` says the
     * caller holds its request (a "presence/bare" or "presence/full"
     * handler of higher priority than ROSTER_PRIORITY, which then returns
     * TERN_HANDLED instead of passing it on) -- the contact is subscribed
     * at once: the item gets 'from' (or 'both'), the user's resources a
     * push, and the contact <presence type='subscribed'/> then the
     * presence of each available resource of the user.  A contact already
     * subscribed gets the same answer again when the request is in hand,
     * else nothing happens.  Otherwise the approval is kept as a
     * pre-approval (approved='true', the item added if needed) and the
     * contact's next request is approved when it comes.  Returns 1 when
     * the contact is subscribed, 0 when pre-approved, -1 on error. */
    int (*approve)(const char *host, const char *user, const char *contact, int request_in_hand,
                   const char **error_r);

    /* Ask for `contact`'s presence on behalf of user@host, as the user's
     * <presence type='subscribe'/> would (RFC 6121 §3.1.2): the item gets
     * ask='subscribe' (added if needed, without name or group), the user's
     * resources a push, and the request is routed from the user's bare
     * JID.  Nothing is sent when the user is subscribed already.  Returns
     * 0, or -1 on error. */
    int (*subscribe)(const char *host, const char *user, const char *contact, const char **error_r);

    /* Make user@host and `contact`, both existing accounts on hosts of this
     * server where mod_roster is loaded, contacts of each other with
     * subscription 'both', without asking either (the caller has their
     * consent: an invitation).  Each item is added if needed (no name, no
     * group) and pending requests, pre-approvals and ask='subscribe'
     * between them are settled; each side's interested resources get a
     * push when its item changed.  Then, as after the subscribe/subscribed
     * exchange, each available resource of one side receives the current
     * presence of each available resource of the other.  Neither roster
     * changes unless both can (a full roster refuses).  Returns 0, or -1
     * on error. */
    int (*subscribe_both)(const char *host, const char *user, const char *contact,
                          const char **error_r);
} roster_api_t;

#endif
