/*
 * mod_blocking — XEP-0191 Blocking Command.
 *
 * Owns each user's blocklist (the map store "blocklist": key = a prepared
 * JID, full, bare, domain/resource or domain; empty value), the three
 * commands a user sends to their own account (§3.2 retrieve, §3.3 block,
 * §3.4/§3.5 unblock one or all) with their pushes to the sessions that
 * asked for the list, and the enforcement of the list:
 *  - inbound, from a blocked JID to the user (§3.3), whatever its origin
 *    (a local client or module, a component, later a remote server):
 *    presence is dropped, a chat/normal message and an iq get/set are
 *    answered with <service-unavailable/> (so the user looks offline),
 *    anything else is dropped.  Hooks "in-KIND/bare|full", which the core
 *    fires on the user's host before any other event, so that nothing
 *    another module answers for the account (disco#info, PEP, vCard, last
 *    activity) reaches a blocked JID either;
 *  - outbound, from the user's client to a blocked JID (§3.3), whatever the
 *    destination (local, other virtual host, component, remote): the
 *    stanza is not routed; a message or iq get/set comes back to the
 *    client as <not-acceptable/> with
 *    <blocked xmlns='urn:xmpp:blocking:errors'/>, presence and errors are
 *    dropped.  Hooks "pre-KIND/host|bare|full" on the user's host;
 *  - what modules route on the user's behalf to a blocked JID (mod_roster's
 *    presence broadcasts, probes and probe answers, PEP notifications) is
 *    dropped on the same "pre-" events (ev->origin NULL), but for errors:
 *    the answers this module and the core give to blocked JIDs;
 *  - on block, the blocked contacts that could see the user's presence get
 *    <presence type='unavailable'/> from each of the user's resources; on
 *    unblock, the subscribed ones get the current presence (§3.3, §3.4).
 *    Who may see presence comes from the "roster" service (roster_api.h)
 *    when mod_roster is loaded, and from the directed presence (RFC 6121
 *    §4.6) each session sent, which this module tracks in a session slot.
 * A list is read from storage once and then kept in memory (dropped when
 * it changes or the account is deleted): the filters run on every stanza.
 * Items match as XEP-0191 §6 (after XEP-0016) says: a full JID only itself,
 * a bare JID any of its resources, domain/resource only that, and a domain
 * itself, everything at it and every subdomain of it.  A user's own
 * account and the user's server are never blocked.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>
#include <tern/strlist.h>
#include <tern/table.h>

#include "roster_api.h"

#define NS_BLOCKING        "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"
#define NS_STANZAS         "urn:ietf:params:xml:ns:xmpp-stanzas"
#define STORE_NAME         "blocklist"
#define FILTER_PRIORITY    1000   /* ahead of the other "pre-" handlers */
#define MAX_DIRECTED       256    /* directed presence recipients tracked per session */
#define MAX_CACHED         100000 /* blocklists kept in memory before the cache starts over */

/* Module data. */
typedef struct block_state {
    tern_store_t *store;
    tern_table_t *cache; /* user -> jid_list_t: the stored blocklists read so far */
    long long max_items;
    unsigned long long pushes; /* for push ids */
} block_state_t;

/* A small list of distinct JID strings. */
typedef tern_strlist_t jid_list_t;

/* Session slot. */
typedef struct block_session {
    int interested;      /* retrieved the blocklist: gets the pushes (§3.3) */
    jid_list_t directed; /* got directed available presence (at most MAX_DIRECTED) */
} block_session_t;

static const tern_option_t options[] = {
    {.name = "max_items",
     .type = TERN_OPT_INT,
     .def = "1000",
     .doc = "Most JIDs one user may block; 0 = no limit. A block that would go "
            "beyond it is refused with `policy-violation` and changes nothing.",
     .min = 0,
     .max = 1000000},
    {.name = NULL},
};

/* ---- matching --------------------------------------------------------------- */

static int part_eq(const char *a, size_t alen, const char *b)
{
    return b != NULL && strlen(b) == alen && memcmp(a, b, alen) == 0;
}

/* XEP-0191 §6 (JID Matching): whether `item` (a prepared JID string as
 * stored) covers `peer`.  Prepared parts compare with plain bytes. */
static int item_matches(const char *item, const tern_jid_t *peer)
{
    const char *slash = strchr(item, '/');
    const char *at = memchr(item, '@', slash != NULL ? (size_t)(slash - item) : strlen(item));
    const char *domain = at != NULL ? at + 1 : item;
    size_t dlen = slash != NULL ? (size_t)(slash - domain) : strlen(domain);
    if (at != NULL) /* user@domain[/resource] */
        return part_eq(item, (size_t)(at - item), peer->local) &&
               part_eq(domain, dlen, peer->domain) &&
               (slash == NULL ||
                (peer->resource != NULL && strcmp(slash + 1, peer->resource) == 0));
    if (slash != NULL) /* domain/resource */
        return peer->local == NULL && part_eq(domain, dlen, peer->domain) &&
               peer->resource != NULL && strcmp(slash + 1, peer->resource) == 0;
    /* domain: itself, anything at it, and its subdomains */
    size_t plen = strlen(peer->domain);
    return plen == dlen ? memcmp(peer->domain, domain, dlen) == 0
                        : plen > dlen && peer->domain[plen - dlen - 1] == '.' &&
                              memcmp(peer->domain + plen - dlen, domain, dlen) == 0;
}

/* ---- the blocklists in memory -------------------------------------------- */

static int collect_key(void *ctx, const char *key, const char *data, size_t len)
{
    return tern_strlist_add_unique(ctx, key) < 0;
}

static int free_cached(void *ctx, const char *key, void *value)
{
    tern_strlist_clear(value);
    free(value);
    return 0;
}

static void cache_clear(block_state_t *st)
{
    if (st->cache == NULL)
        return;
    tern_table_foreach(st->cache, free_cached, NULL);
    tern_table_free(&st->cache);
}

/* Forget what was read of `user`'s list (it changed, or the account went). */
static void cache_forget(block_state_t *st, const char *user)
{
    jid_list_t *l = st->cache != NULL ? tern_table_remove(st->cache, user) : NULL;
    if (l != NULL) {
        tern_strlist_clear(l);
        free(l);
    }
}

/* `user`'s blocklist, read from storage once and then kept: the filters
 * run on every stanza and must not query the database each time.  NULL on
 * a storage or memory error. */
static const jid_list_t *blocklist(block_state_t *st, const char *user)
{
    jid_list_t *l = st->cache != NULL ? tern_table_get(st->cache, user) : NULL;
    if (l != NULL)
        return l;
    if (st->cache != NULL && tern_table_count(st->cache) >= MAX_CACHED)
        cache_clear(st); /* simple bound: start over */
    if (st->cache == NULL && (st->cache = tern_table_new()) == NULL)
        return NULL;
    if ((l = calloc(1, sizeof *l)) == NULL)
        return NULL;
    if (tern_map_foreach(st->store, user, collect_key, l) < 0 ||
        tern_table_put(st->cache, user, l) < 0) {
        tern_strlist_clear(l);
        free(l);
        return NULL;
    }
    return l;
}

/* Whether user@host blocked `peer`.  Never the user's own account nor the
 * server itself.  A storage error lets the stanza through (and is logged):
 * a broken disk must not silence every account. */
static int is_blocked(tern_module_ctx_t *m, const char *user, const tern_jid_t *peer)
{
    block_state_t *st = tern_get_data(m);
    if (st == NULL || user == NULL || peer == NULL)
        return 0;
    if (strcmp(peer->domain, tern_host(m)) == 0 &&
        (peer->local == NULL || strcmp(peer->local, user) == 0))
        return 0; /* the server itself, or the user's own account */
    const jid_list_t *l = blocklist(st, user);
    if (l == NULL) {
        tern_log(m, TERN_LOG_ERROR, "cannot read the blocklist of %s", user);
        return 0;
    }
    for (size_t i = 0; i < l->n; i++)
        if (item_matches(l->v[i], peer))
            return 1;
    return 0;
}

/* The localpart when `j` is an account of this module's host, else NULL. */
static const char *local_user(tern_module_ctx_t *m, const tern_jid_t *j)
{
    return j != NULL && j->local != NULL && strcmp(j->domain, tern_host(m)) == 0 ? j->local : NULL;
}

static int has_type(const tern_xml_t *stanza, const char *type)
{
    const char *t = tern_xml_attr(stanza, "type");
    return t != NULL && strcmp(t, type) == 0;
}

static int is_kind(const tern_xml_t *stanza, const char *kind)
{
    return strcmp(stanza->name, kind) == 0;
}

/* ---- session slots ---------------------------------------------------------- */

static void free_session(void *p)
{
    block_session_t *bs = p;
    tern_strlist_clear(&bs->directed);
    free(bs);
}

static block_session_t *session_slot(tern_module_ctx_t *m, tern_session_t *s, int create)
{
    block_session_t *bs = s != NULL ? tern_session_get(s, m) : NULL;
    if (bs == NULL && s != NULL && create && (bs = calloc(1, sizeof *bs)) != NULL) {
        tern_session_set(s, m, bs, free_session);
        bs = tern_session_get(s, m); /* NULL when the core could not keep it */
    }
    return bs;
}

/* RFC 6121 §4.6: remember who got directed available presence from `s`, and
 * forget them when it sends them unavailable. */
static void track_directed(tern_module_ctx_t *m, tern_session_t *s, const tern_event_t *ev)
{
    int available = tern_xml_attr(ev->stanza, "type") == NULL;
    if (!available && !has_type(ev->stanza, "unavailable"))
        return; /* subscriptions, probes, errors */
    block_session_t *bs = session_slot(m, s, available);
    if (bs == NULL)
        return;
    for (size_t i = 0; i < bs->directed.n; i++)
        if (strcmp(bs->directed.v[i], ev->to->full) == 0) {
            if (!available)
                tern_strlist_remove(&bs->directed, i);
            return;
        }
    if (available && bs->directed.n < MAX_DIRECTED)
        tern_strlist_add_unique(&bs->directed, ev->to->full); /* out of memory: not tracked */
}

/* ---- stanzas ---------------------------------------------------------------- */

/* <presence type='unavailable' from=FROM to=TO/>, routed. */
static void send_unavailable(tern_module_ctx_t *m, const char *from, const char *to)
{
    tern_xml_t *p = tern_xml_new("presence", TERN_NS_CLIENT);
    if (p == NULL)
        return;
    tern_xml_set_attr(p, "type", "unavailable");
    tern_xml_set_attr(p, "from", from);
    tern_xml_set_attr(p, "to", to);
    tern_route(m, p);
    tern_xml_unref(p);
}

/* §3.3: the user's client learns that its stanza to a blocked JID was not
 * sent.  The error goes straight to the session: routed, it would come
 * "from" the blocked JID and be dropped as inbound traffic. */
static void bounce_blocked(const tern_event_t *ev)
{
    tern_xml_t *err = tern_xml_copy(ev->stanza);
    if (err == NULL)
        return;
    tern_xml_set_attr(err, "to", ev->from->full);
    tern_xml_set_attr(err, "from", ev->to->full);
    tern_xml_set_attr(err, "type", "error");
    tern_xml_t *e = tern_xml_add_child(err, "error", TERN_NS_CLIENT);
    if (e != NULL) {
        tern_xml_set_attr(e, "type", "cancel");
        tern_xml_add_child(e, "not-acceptable", NS_STANZAS);
        tern_xml_add_child(e, "blocked", NS_BLOCKING_ERRORS);
        tern_session_send(ev->origin, err);
    }
    tern_xml_unref(err);
}

/* Send the user's sessions that asked for the blocklist a <block/> or
 * <unblock/> push with `items` (none: unblock all).  §3.3, §3.4, §3.5. */
static void push(tern_module_ctx_t *m, const char *user, const char *what, const jid_list_t *items)
{
    block_state_t *st = tern_get_data(m);
    for (tern_session_t *s = tern_user_first_session(m, user); s != NULL;
         s = tern_session_next(s)) {
        block_session_t *bs = tern_session_get(s, m);
        if (bs == NULL || !bs->interested)
            continue;
        char id[40];
        snprintf(id, sizeof id, "block-push-%llu", ++st->pushes);
        tern_xml_t *iq = tern_xml_new("iq", TERN_NS_CLIENT);
        tern_xml_t *cmd = iq != NULL ? tern_xml_add_child(iq, what, NS_BLOCKING) : NULL;
        int ok = cmd != NULL;
        for (size_t i = 0; ok && i < items->n; i++) {
            tern_xml_t *item = tern_xml_add_child(cmd, "item", NULL);
            if ((ok = item != NULL))
                tern_xml_set_attr(item, "jid", items->v[i]);
        }
        if (ok) {
            tern_xml_set_attr(iq, "type", "set");
            tern_xml_set_attr(iq, "id", id);
            tern_xml_set_attr(iq, "to", tern_session_jid(s)->full);
            tern_session_send(s, iq);
        }
        tern_xml_unref(iq);
    }
}

/* ---- presence on block and unblock ---------------------------------------- */

typedef struct roster_ctx {
    const jid_list_t *items;
    jid_list_t *out;
    int failed;
} roster_ctx_t;

/* Roster contacts that receive the user's presence and that one of the
 * items without a resource covers. */
static int roster_pick(void *ctx, const char *contact, roster_sub_t sub, const char *name)
{
    roster_ctx_t *rc = ctx;
    if (!(sub & ROSTER_SUB_FROM))
        return 0;
    tern_jid_t *j = tern_jid_new(contact, NULL);
    for (size_t i = 0; j != NULL && i < rc->items->n; i++) {
        if (strchr(rc->items->v[i], '/') != NULL || !item_matches(rc->items->v[i], j))
            continue;
        rc->failed = tern_strlist_add_unique(rc->out, j->bare) < 0;
        break;
    }
    tern_jid_free(&j);
    return rc->failed;
}

/* The contacts in user's roster with a presence subscription that `items`
 * cover, added to `out`: bare JIDs, and an item itself when it names a
 * resource (of a subscribed contact).  Nothing without mod_roster. */
static void subscribed_contacts(tern_module_ctx_t *m, const char *user, const jid_list_t *items,
                                jid_list_t *out)
{
    const roster_api_t *roster = tern_require(m, ROSTER_SERVICE);
    if (roster == NULL || items->n == 0)
        return;
    roster_ctx_t rc = {.items = items, .out = out};
    (roster->foreach)(tern_host(m), user, roster_pick, &rc);
    for (size_t i = 0; i < items->n; i++) {
        tern_jid_t *j = strchr(items->v[i], '/') != NULL ? tern_jid_new(items->v[i], NULL) : NULL;
        if (j != NULL && roster->is_subscribed_to(tern_host(m), user, j->bare))
            tern_strlist_add_unique(out, j->full);
        tern_jid_free(&j);
    }
}

/* Whether one of `items` covers the JID `s`. */
static int any_matches(const jid_list_t *items, const char *s)
{
    tern_jid_t *j = tern_jid_new(s, NULL);
    int hit = 0;
    for (size_t i = 0; j != NULL && !hit && i < items->n; i++)
        hit = item_matches(items->v[i], j);
    tern_jid_free(&j);
    return hit;
}

/* §3.3: before `items` are stored, every contact they cover that sees the
 * user's presence gets unavailable presence from the user's resources:
 * subscribed contacts from every available resource, recipients of
 * directed presence from the resource that sent it (which forgets them). */
static void hide_presence(tern_module_ctx_t *m, const char *user, const jid_list_t *items)
{
    jid_list_t subscribed = {0};
    subscribed_contacts(m, user, items, &subscribed);
    for (tern_session_t *s = tern_user_first_session(m, user); s != NULL;
         s = tern_session_next(s)) {
        const char *from = tern_session_jid(s)->full;
        block_session_t *bs = tern_session_get(s, m);
        for (size_t i = 0; bs != NULL && i < bs->directed.n;) {
            const char *to = bs->directed.v[i];
            if (!any_matches(items, to)) {
                i++;
                continue;
            }
            if (!tern_strlist_has(&subscribed, to) || !tern_session_available(s))
                send_unavailable(m, from, to);
            tern_strlist_remove(&bs->directed, i);
        }
        for (size_t i = 0; tern_session_available(s) && i < subscribed.n; i++)
            send_unavailable(m, from, subscribed.v[i]);
    }
    tern_strlist_clear(&subscribed);
}

/* §3.4: after `items` were removed, subscribed contacts they covered get
 * the user's current presence from each available resource (only with
 * mod_roster, which knows both the subscriptions and that presence). */
static void show_presence(tern_module_ctx_t *m, const char *user, const jid_list_t *items)
{
    const roster_api_t *roster = tern_require(m, ROSTER_SERVICE);
    if (roster == NULL || roster->session_presence == NULL)
        return;
    jid_list_t contacts = {0};
    subscribed_contacts(m, user, items, &contacts);
    for (tern_session_t *s = tern_user_first_session(m, user); s != NULL;
         s = tern_session_next(s)) {
        const tern_xml_t *current = roster->session_presence(s);
        for (size_t i = 0; current != NULL && i < contacts.n; i++) {
            tern_xml_t *p = tern_xml_copy(current);
            if (p == NULL)
                continue;
            tern_xml_set_attr(p, "from", tern_session_jid(s)->full);
            tern_xml_set_attr(p, "to", contacts.v[i]);
            tern_route(m, p);
            tern_xml_unref(p);
        }
    }
    tern_strlist_clear(&contacts);
}

/* ---- the commands ----------------------------------------------------------- */

static int refuse(tern_module_ctx_t *m, const tern_event_t *ev, const char *type,
                  const char *condition, const char *text)
{
    tern_reply_error(m, ev, type, condition, text);
    return TERN_HANDLED;
}

static int add_item(void *ctx, const char *key, const char *data, size_t len)
{
    tern_xml_t *item = tern_xml_add_child(ctx, "item", NULL);
    if (item == NULL)
        return 1;
    tern_xml_set_attr(item, "jid", key);
    return 0;
}

/* §3.2: the list; the session now gets the pushes. */
static int on_blocklist(tern_module_ctx_t *m, tern_event_t *ev)
{
    block_state_t *st = tern_get_data(m);
    tern_xml_t *result = tern_iq_result(ev);
    tern_xml_t *list = result != NULL ? tern_xml_add_child(result, "blocklist", NS_BLOCKING) : NULL;
    if (list != NULL && tern_map_foreach(st->store, ev->from->local, add_item, list) < 0) {
        tern_xml_unref(result);
        return refuse(m, ev, "wait", "internal-server-error", NULL);
    }
    block_session_t *bs = session_slot(m, ev->origin, 1);
    if (bs != NULL)
        bs->interested = 1;
    return tern_iq_answer(m, ev, result, list != NULL && bs != NULL);
}

/* The prepared JIDs of the command's <item/>s, in `out`.  NULL when all are
 * valid, else the error condition to answer. */
static const char *read_items(const tern_event_t *ev, jid_list_t *out)
{
    const tern_xml_t *cmd = tern_xml_first_element(ev->stanza);
    for (const tern_xml_t *e = tern_xml_first_element(cmd); e != NULL;
         e = tern_xml_next_element(e)) {
        if (!tern_xml_is(e, "item", NS_BLOCKING))
            continue;
        const char *s = tern_xml_attr(e, "jid");
        if (s == NULL)
            return "bad-request"; /* §10.1: 'jid' is required */
        tern_jid_t *j = tern_jid_new(s, NULL);
        if (j == NULL)
            return "jid-malformed";
        int rc = tern_strlist_add_unique(out, j->full);
        tern_jid_free(&j);
        if (rc < 0)
            return "resource-constraint";
    }
    return NULL;
}

static int count_key(void *ctx, const char *key, const char *data, size_t len)
{
    (*(long long *)ctx)++;
    return 0;
}

/* §3.3: add the items; unavailable presence to the contacts they cover
 * first (once stored, the filters would drop it). */
static int on_block(tern_module_ctx_t *m, tern_event_t *ev)
{
    block_state_t *st = tern_get_data(m);
    const char *user = ev->from->local;
    jid_list_t items = {0}, fresh = {0};
    const char *bad = read_items(ev, &items);
    long long have = 0;
    int rc = 0;
    if (bad == NULL && items.n == 0)
        bad = "bad-request"; /* §3.3: at least one item */
    for (size_t i = 0; bad == NULL && i < items.n; i++) {
        tern_blob_t blob = {0};
        int found = tern_map_get(st->store, user, items.v[i], &blob);
        free(blob.data);
        if (found < 0 || (found == 0 && tern_strlist_add_unique(&fresh, items.v[i]) < 0))
            rc = -1;
    }
    if (bad == NULL && rc == 0 && st->max_items > 0 && fresh.n > 0 &&
        (rc = tern_map_foreach(st->store, user, count_key, &have)) == 0 &&
        have + (long long)fresh.n > st->max_items)
        bad = "policy-violation";
    if (bad == NULL && rc == 0)
        hide_presence(m, user, &fresh);
    for (size_t i = 0; bad == NULL && rc == 0 && i < fresh.n; i++)
        rc = tern_map_set(st->store, user, fresh.v[i], "", 0);
    cache_forget(st, user);
    if (bad == NULL && rc == 0) {
        tern_iq_answer(m, ev, tern_iq_result(ev), 1);
        push(m, user, "block", &items);
    } else if (bad != NULL) {
        refuse(m, ev, strcmp(bad, "resource-constraint") == 0 ? "wait" : "modify", bad,
               strcmp(bad, "policy-violation") == 0 ? "blocklist full" : NULL);
    } else {
        tern_log(m, TERN_LOG_ERROR, "cannot update the blocklist of %s", user);
        refuse(m, ev, "wait", "internal-server-error", NULL);
    }
    tern_strlist_clear(&items);
    tern_strlist_clear(&fresh);
    return TERN_HANDLED;
}

/* §3.4, §3.5: remove the items, or everything when none is given; then
 * the contacts see the user's presence again. */
static int on_unblock(tern_module_ctx_t *m, tern_event_t *ev)
{
    block_state_t *st = tern_get_data(m);
    const char *user = ev->from->local;
    jid_list_t items = {0}, removed = {0};
    const char *bad = read_items(ev, &items);
    int rc = 0;
    if (bad == NULL && items.n == 0) /* §3.5: unblock all */
        rc = tern_map_foreach(st->store, user, collect_key, &removed);
    for (size_t i = 0; bad == NULL && rc == 0 && i < items.n; i++)
        rc = tern_strlist_add_unique(&removed, items.v[i]);
    for (size_t i = 0; bad == NULL && rc == 0 && i < removed.n; i++)
        rc = tern_map_set(st->store, user, removed.v[i], NULL, 0);
    cache_forget(st, user);
    if (bad == NULL && rc == 0) {
        tern_iq_answer(m, ev, tern_iq_result(ev), 1);
        push(m, user, "unblock", &items);
        show_presence(m, user, &removed);
    } else if (bad != NULL) {
        refuse(m, ev, strcmp(bad, "resource-constraint") == 0 ? "wait" : "modify", bad, NULL);
    } else {
        tern_log(m, TERN_LOG_ERROR, "cannot update the blocklist of %s", user);
        refuse(m, ev, "wait", "internal-server-error", NULL);
    }
    tern_strlist_clear(&items);
    tern_strlist_clear(&removed);
    return TERN_HANDLED;
}

/* ---- enforcement ------------------------------------------------------------ */

/* §3.3: a stanza from `ev->from` that the recipient blocked.  Presence and
 * errors vanish; chat/normal messages and iq requests get the error an
 * offline account would give; groupchat and headline messages and iq
 * results vanish too (a bounce to a room could get the user kicked). */
static void refuse_inbound(tern_module_ctx_t *m, const tern_event_t *ev)
{
    const tern_xml_t *st = ev->stanza;
    int answer_it =
        is_kind(st, "message")
            ? !has_type(st, "error") && !has_type(st, "groupchat") && !has_type(st, "headline")
            : is_kind(st, "iq") && (has_type(st, "get") || has_type(st, "set"));
    if (answer_it)
        tern_reply_error(m, ev, "cancel", "service-unavailable", NULL);
}

/* "in-KIND/bare|full": a stanza for a user of this host, from anywhere,
 * before anything else sees it.  Dropped or refused when the recipient
 * blocked the sender. */
static int on_inbound(tern_module_ctx_t *m, tern_event_t *ev)
{
    const char *to_user = local_user(m, ev->to);
    if (to_user == NULL || !is_blocked(m, to_user, ev->from))
        return TERN_PASS;
    refuse_inbound(m, ev);
    return TERN_HANDLED;
}

/* "pre-KIND/host|bare|full": a stanza from a user of this host, before it
 * is routed anywhere.  From the user's client (ev->origin): refused as
 * §3.3 says when the recipient is blocked, else directed presence is
 * noted.  Routed by a module on the user's behalf (no origin): dropped
 * when the recipient is blocked, unless it is an error. */
static int on_outbound(tern_module_ctx_t *m, tern_event_t *ev)
{
    const char *user = local_user(m, ev->from);
    const tern_xml_t *st = ev->stanza;
    if (user == NULL)
        return TERN_PASS;
    if (ev->origin == NULL)
        return !has_type(st, "error") && is_blocked(m, user, ev->to) ? TERN_HANDLED : TERN_PASS;
    if (!is_blocked(m, user, ev->to)) {
        if (is_kind(st, "presence") && strcmp(ev->to->bare, ev->from->bare) != 0)
            track_directed(m, ev->origin, ev);
        return TERN_PASS;
    }
    if (is_kind(st, "message") ? !has_type(st, "error")
                               : is_kind(st, "iq") && (has_type(st, "get") || has_type(st, "set")))
        bounce_blocked(ev);
    return TERN_HANDLED;
}

/* "user/deleted": its stored list is gone, so is what we kept of it. */
static int on_user_deleted(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (ev->user != NULL)
        cache_forget(tern_get_data(m), ev->user);
    return TERN_PASS;
}

static int load(tern_module_ctx_t *m)
{
    static const char *const inbound[] = {"in-message/bare",  "in-message/full", "in-presence/bare",
                                          "in-presence/full", "in-iq/bare",      "in-iq/full"};
    static const char *const outbound[] = {
        "pre-message/host",  "pre-message/bare",  "pre-message/full",
        "pre-presence/host", "pre-presence/bare", "pre-presence/full",
        "pre-iq/host",       "pre-iq/bare",       "pre-iq/full"};
    block_state_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    st->max_items = tern_opt_int(m, "max_items");
    if ((st->store = tern_store(m, STORE_NAME, TERN_STORE_MAP)) == NULL) {
        tern_log(m, TERN_LOG_ERROR, "no storage");
        free(st);
        return -1;
    }
    tern_set_data(m, st);
    tern_add_feature(m, NS_BLOCKING);
    int rc = tern_hook(m, "iq-get/self/" NS_BLOCKING ":blocklist", on_blocklist, 0) |
             tern_hook(m, "iq-set/self/" NS_BLOCKING ":block", on_block, 0) |
             tern_hook(m, "iq-set/self/" NS_BLOCKING ":unblock", on_unblock, 0) |
             tern_hook(m, "user/deleted", on_user_deleted, 0);
    for (size_t i = 0; i < sizeof inbound / sizeof inbound[0]; i++)
        rc |= tern_hook(m, inbound[i], on_inbound, FILTER_PRIORITY);
    for (size_t i = 0; i < sizeof outbound / sizeof outbound[0]; i++)
        rc |= tern_hook(m, outbound[i], on_outbound, FILTER_PRIORITY);
    if (rc != 0) {
        tern_set_data(m, NULL);
        free(st);
        return -1;
    }
    return 0;
}

/* Session slots go with the module (the core frees them). */
static void unload(tern_module_ctx_t *m)
{
    block_state_t *st = tern_get_data(m);
    if (st != NULL)
        cache_clear(st);
    free(st);
    tern_set_data(m, NULL);
}

/* A reload changed the options: take the new limit for what comes next. */
static int reconfigure(tern_module_ctx_t *m)
{
    block_state_t *st = tern_get_data(m);
    st->max_items = tern_opt_int(m, "max_items");
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "blocking",
    .description = "Blocking Command: users block and unblock JIDs (XEP-0191)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
