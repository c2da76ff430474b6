/*
 * mod_invites — invitation tokens: account creation and contacts
 * (XEP-0401, XEP-0445, XEP-0379).
 *
 * Owns the server side of pre-authenticated in-band registration:
 *  - the <register xmlns='urn:xmpp:ibr-token:0'/> stream feature before
 *    login (XEP-0445 §3);
 *  - <preauth xmlns='urn:xmpp:pars:0' token='...'/> from a client that has
 *    not logged in (XEP-0445 §4): an unknown or expired token gets
 *    item-not-found; a good one is remembered on the stream and answered
 *    with a result.  Expiry is checked only then;
 *  - the "invites" service (invites_api.h) through which mod_register lets
 *    such a stream create exactly one account, even with registration
 *    closed, and then deletes the token.  A token is not used up until an
 *    account exists (XEP-0445 §4), and the username it names is kept from
 *    everybody else until it expires (XEP-0445 §5).
 * and of user invitations (tokens of type "roster", made for an inviter):
 *  - an account created with one becomes a contact of the inviter, with
 *    subscription 'both' on both rosters (XEP-0401 §5.5);
 *  - a <presence type='subscribe'/> to the inviter carrying the token
 *    (XEP-0379 §3.4), from anyone, local or not, is approved for the
 *    inviter, who subscribes back (§3.5); the token is used up.  A token
 *    that is unknown, expired or not the inviter's changes nothing: the
 *    request goes on to the roster as usual (§4.1);
 *  - a token made with `ternctl invite --roster-only` (ibr=n) serves only
 *    subscriptions, never registration.
 * Both use the roster module's write functions (roster_api.h), looked up
 * when needed: without mod_roster on the host, user invitations only
 * create accounts.
 * Tokens are made by `ternctl invite` (the URIs of XEP-0401 §5.4 and §5.1)
 * straight into the "invites" map store of the host; this module only
 * reads and deletes them, sweeps out expired ones every hour and deletes
 * those of an inviter whose account is deleted.  The XEP-0050 commands of
 * XEP-0401 §3 are not offered (the server has no ad-hoc commands).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#include "invites_api.h"
#include "roster_api.h"

#define NS_PARS      "urn:xmpp:pars:0"
#define NS_IBR_TOKEN "urn:xmpp:ibr-token:0"
#define NS_STANZAS   "urn:ietf:params:xml:ns:xmpp-stanzas"
#define TOKEN_MAX    128                    /* longer tokens are not ours: no lookup */
#define PURGE_MS     (60LL * 60 * 1000)     /* expired tokens are swept hourly */
#define USERNAME_MAX 1024                   /* a localpart has at most 1023 bytes */
#define SUB_PRIORITY (ROSTER_PRIORITY + 10) /* subscriptions: before the roster takes them */

/* Module data; `api` first, so the service pointer is the module's. */
typedef struct invites {
    invites_api_t api;
    tern_module_ctx_t *m;
    tern_store_t *store;
    tern_timer_t *purge;
} invites_t;

/* What a stream presented: the token and the username it is limited to.
 * One malloc block, freed with plain free(): a stream that outlives this
 * module (a reload) keeps no pointer into its code. */
typedef struct preauth {
    char *username; /* prepared, or NULL for any; inside this block */
    char token[];
} preauth_t;

/* One stored invitation (see invites_api.h for the format). */
typedef struct invite {
    int64_t expires_us; /* 0 = never */
    int roster;         /* type=roster: a user invitation from `creator` */
    int no_ibr;         /* ibr=n: creates no account (subscriptions only) */
    char username[USERNAME_MAX];
    char creator[USERNAME_MAX * 3];
} invite_t;

/* ---- stored invitations ------------------------------------------------ */

/* Parse a stored value; unknown keys are skipped, over-long values cut
 * (they then match no prepared username). */
static void parse_invite(const char *data, size_t len, invite_t *out)
{
    memset(out, 0, sizeof *out);
    const char *end = data + len;
    while (data < end) {
        const char *nl = memchr(data, '\n', (size_t)(end - data));
        const char *eol = nl != NULL ? nl : end;
        const char *eq = memchr(data, '=', (size_t)(eol - data));
        if (eq != NULL) {
            size_t klen = (size_t)(eq - data), vlen = (size_t)(eol - eq - 1);
            const char *v = eq + 1;
            if (klen == 7 && memcmp(data, "expires", 7) == 0)
                out->expires_us = strtoll(v, NULL, 10);
            else if (klen == 8 && memcmp(data, "username", 8) == 0)
                snprintf(out->username, sizeof out->username, "%.*s", (int)vlen, v);
            else if (klen == 7 && memcmp(data, "creator", 7) == 0)
                snprintf(out->creator, sizeof out->creator, "%.*s", (int)vlen, v);
            else if (klen == 4 && memcmp(data, "type", 4) == 0)
                out->roster = vlen == 6 && memcmp(v, "roster", 6) == 0;
            else if (klen == 3 && memcmp(data, "ibr", 3) == 0)
                out->no_ibr = vlen == 1 && *v == 'n';
        }
        data = eol + 1;
    }
}

static int expired(const invite_t *inv, int64_t now)
{
    return inv->expires_us != 0 && now >= inv->expires_us;
}

/* 1 when a token may be looked up at all: 1..TOKEN_MAX of [A-Za-z0-9_-]. */
static int token_well_formed(const char *token)
{
    size_t n = 0;
    for (; token[n] != '\0'; n++) {
        char c = token[n];
        if (n >= TOKEN_MAX || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return n > 0;
}

/* Look `token` up: 1 found (*out filled), 0 unknown, -1 storage error. */
static int find_invite(invites_t *iv, const char *token, invite_t *out)
{
    tern_blob_t blob = {0};
    int rc = tern_map_get(iv->store, "", token, &blob);
    if (rc == 1) {
        parse_invite(blob.data, blob.len, out);
        free(blob.data);
    }
    return rc;
}

/* ---- the service -------------------------------------------------------- */

/* A preauth_t for `token` and `username` (prepared, or NULL); NULL when
 * out of memory. */
static preauth_t *preauth_new(const char *token, const char *username)
{
    size_t tlen = strlen(token) + 1, ulen = username != NULL ? strlen(username) + 1 : 0;
    preauth_t *pa = malloc(sizeof *pa + tlen + ulen);
    if (pa == NULL)
        return NULL;
    memcpy(pa->token, token, tlen);
    pa->username = username != NULL ? memcpy(pa->token + tlen, username, ulen) : NULL;
    return pa;
}

static invites_t *self_of(const invites_api_t *api)
{
    return (invites_t *)api;
}

/* The stream's accepted token, if it still exists: a token another
 * stream used up in the meantime is forgotten here. */
static preauth_t *live_preauth(invites_t *iv, tern_session_t *s)
{
    preauth_t *pa = tern_session_get(s, iv->m);
    if (pa == NULL)
        return NULL;
    tern_blob_t blob = {0};
    int rc = tern_map_get(iv->store, "", pa->token, &blob);
    free(blob.data);
    if (rc == 1)
        return pa;
    if (rc == 0)
        tern_session_set(s, iv->m, NULL, NULL);
    return NULL;
}

static int session_may_register(const invites_api_t *api, tern_session_t *s)
{
    return live_preauth(self_of(api), s) != NULL;
}

static const char *session_username(const invites_api_t *api, tern_session_t *s)
{
    const preauth_t *pa = tern_session_get(s, self_of(api)->m);
    return pa != NULL ? pa->username : NULL;
}

typedef struct reserved_walk {
    const char *local;
    const char *skip; /* the asking stream's own token, or NULL */
    int64_t now;
    int found;
} reserved_walk_t;

static int check_reserved(void *ctx, const char *key, const char *data, size_t len)
{
    reserved_walk_t *w = ctx;
    if (w->skip != NULL && strcmp(key, w->skip) == 0)
        return 0;
    invite_t inv;
    parse_invite(data, len, &inv);
    w->found = !expired(&inv, w->now) && strcmp(inv.username, w->local) == 0;
    return w->found;
}

static int username_reserved(const invites_api_t *api, tern_session_t *s, const char *local)
{
    invites_t *iv = self_of(api);
    const preauth_t *pa = tern_session_get(s, iv->m);
    reserved_walk_t w = {
        .local = local, .skip = pa != NULL ? pa->token : NULL, .now = tern_now_us()};
    tern_map_foreach(iv->store, "", check_reserved, &w);
    return w.found;
}

/* The roster service, or NULL (logged) when mod_roster is not on the host. */
static const roster_api_t *roster_of(invites_t *iv)
{
    const roster_api_t *roster = tern_require(iv->m, ROSTER_SERVICE);
    if (roster == NULL)
        tern_log(iv->m, TERN_LOG_WARN,
                 "module 'roster' is not enabled: invitations from users make no contacts");
    return roster;
}

/* The inviter's localpart (prepared) when `inv` is a user invitation from
 * an account of this host, else NULL; the caller frees it. */
static char *inviter_of(invites_t *iv, const invite_t *inv)
{
    tern_jid_t *j = inv->roster && inv->creator[0] ? tern_jid_new(inv->creator, NULL) : NULL;
    char *local = j != NULL && j->local != NULL && j->resource == NULL &&
                          strcmp(j->domain, tern_host(iv->m)) == 0
                      ? strdup(j->local)
                      : NULL;
    tern_jid_free(&j);
    return local;
}

/* XEP-0401 §5.5: the account `local` made with the user invitation `inv`
 * and the inviter become contacts, subscription 'both' on both sides. */
static void befriend(invites_t *iv, const invite_t *inv, const char *local)
{
    char *inviter = inviter_of(iv, inv);
    const roster_api_t *roster = inviter != NULL ? roster_of(iv) : NULL;
    char contact[USERNAME_MAX * 3];
    const char *error = NULL;
    snprintf(contact, sizeof contact, "%s@%s", local, tern_host(iv->m));
    if (roster != NULL && roster->subscribe_both(tern_host(iv->m), inviter, contact, &error) < 0)
        tern_log(iv->m, TERN_LOG_WARN, "cannot make %s a contact of %s: %s", contact, inv->creator,
                 error);
    free(inviter);
}

static void consume(const invites_api_t *api, tern_session_t *s, const char *local)
{
    invites_t *iv = self_of(api);
    const preauth_t *pa = tern_session_get(s, iv->m);
    if (pa == NULL)
        return;
    invite_t inv;
    int found = find_invite(iv, pa->token, &inv) == 1;
    if (found)
        tern_log(iv->m, TERN_LOG_INFO, "invitation%s%s used for %s", inv.creator[0] ? " by " : "",
                 inv.creator, local);
    if (tern_map_set(iv->store, "", pa->token, NULL, 0) < 0)
        tern_log(iv->m, TERN_LOG_ERROR, "cannot delete a used invitation");
    tern_session_set(s, iv->m, NULL, NULL); /* frees pa */
    if (found && inv.roster)
        befriend(iv, &inv, local);
}

/* ---- before login -------------------------------------------------------- */

/* Answer a pre-login iq on its stream: no 'to' (the client has no JID). */
static void reply(const tern_event_t *ev, const char *type, const char *condition, const char *text)
{
    tern_xml_t *r = tern_xml_new("iq", TERN_NS_CLIENT);
    if (r == NULL)
        return;
    const char *id = tern_xml_attr(ev->stanza, "id");
    tern_xml_set_attr(r, "type", condition != NULL ? "error" : "result");
    tern_xml_set_attr(r, "id", id != NULL ? id : "");
    tern_xml_t *err = condition != NULL ? tern_xml_add_child(r, "error", NULL) : NULL;
    if (err != NULL) {
        tern_xml_set_attr(err, "type", type);
        tern_xml_add_child(err, condition, NS_STANZAS);
        tern_xml_t *t = tern_xml_add_child(err, "text", NS_STANZAS);
        tern_xml_set_attr(t, "xml:lang", "en");
        tern_xml_add_text(t, text, strlen(text));
    }
    tern_session_send(ev->origin, r);
    tern_xml_unref(r);
}

/* XEP-0445 §3: this server takes invitation tokens. */
static int on_features(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_add_child(ev->stanza, "register", NS_IBR_TOKEN);
    return TERN_PASS;
}

/* XEP-0445 §4: check the token now (and only now for expiry); remember it
 * on the stream without using it up. */
static int on_preauth(tern_module_ctx_t *m, tern_event_t *ev)
{
    invites_t *iv = tern_get_data(m);
    static const char *const bad = "The provided token is invalid or expired";
    tern_xml_t *el = tern_xml_child(ev->stanza, "preauth", NS_PARS);
    const char *token = tern_xml_attr(el, "token");
    if (token == NULL) {
        reply(ev, "modify", "bad-request", "The token attribute is missing");
        return TERN_HANDLED;
    }
    invite_t inv;
    int rc = token_well_formed(token) ? find_invite(iv, token, &inv) : 0;
    if (rc < 0) {
        reply(ev, "wait", "internal-server-error", "Cannot read invitations now");
        return TERN_HANDLED;
    }
    if (rc == 1 && expired(&inv, tern_now_us())) {
        tern_map_set(iv->store, "", token, NULL, 0);
        rc = 0;
    }
    if (rc == 1 && inv.no_ibr) {
        tern_log(m, TERN_LOG_INFO, "invitation without registration presented by %s",
                 tern_session_peer_ip(ev->origin));
        rc = 0; /* XEP-0401 §5.1: no ibr=y, it creates no account */
    }
    if (rc == 0) {
        tern_log(m, TERN_LOG_INFO, "unknown or expired invitation token from %s",
                 tern_session_peer_ip(ev->origin));
        reply(ev, "cancel", "item-not-found", bad);
        return TERN_HANDLED;
    }
    preauth_t *pa = preauth_new(token, inv.username[0] != '\0' ? inv.username : NULL);
    if (pa == NULL) {
        reply(ev, "wait", "resource-constraint", "Try again later");
        return TERN_HANDLED;
    }
    tern_session_set(ev->origin, m, pa, free);
    reply(ev, NULL, NULL, NULL);
    return TERN_HANDLED;
}

/* ---- pre-authenticated subscriptions (XEP-0379) --------------------------- */

/* "presence/bare", "presence/full" before mod_roster: a subscription
 * request to an inviter carrying one of the inviter's tokens is approved
 * for the inviter, who asks back (XEP-0379 §3.4, §3.5); the token is used
 * up.  Anything else, a bad token included, goes on as usual (§4.1). */
static int on_subscribe(tern_module_ctx_t *m, tern_event_t *ev)
{
    invites_t *iv = tern_get_data(m);
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (type == NULL || strcmp(type, "subscribe") != 0 || ev->to == NULL || ev->to->local == NULL ||
        strcmp(ev->from->bare, ev->to->bare) == 0)
        return TERN_PASS;
    const char *token = tern_xml_attr(tern_xml_child(ev->stanza, "preauth", NS_PARS), "token");
    invite_t inv;
    if (token == NULL || !token_well_formed(token) || find_invite(iv, token, &inv) != 1 ||
        !inv.roster || strcmp(inv.creator, ev->to->bare) != 0)
        return TERN_PASS;
    if (expired(&inv, tern_now_us())) {
        tern_map_set(iv->store, "", token, NULL, 0);
        return TERN_PASS;
    }
    const roster_api_t *roster = roster_of(iv);
    const char *host = tern_host(m), *user = ev->to->local, *error = NULL;
    if (roster == NULL || roster->approve(host, user, ev->from->bare, 1, &error) < 0) {
        if (error != NULL)
            tern_log(m, TERN_LOG_WARN, "cannot approve %s for %s: %s", ev->from->bare, ev->to->bare,
                     error);
        return TERN_PASS; /* the token stays; the user decides */
    }
    if (tern_map_set(iv->store, "", token, NULL, 0) < 0)
        tern_log(m, TERN_LOG_ERROR, "cannot delete a used invitation");
    tern_log(m, TERN_LOG_INFO, "invitation by %s used by %s", ev->to->bare, ev->from->bare);
    if (roster->subscribe(host, user, ev->from->bare, &error) < 0)
        tern_log(m, TERN_LOG_WARN, "cannot subscribe %s to %s: %s", ev->to->bare, ev->from->bare,
                 error);
    return TERN_HANDLED;
}

/* ---- housekeeping -------------------------------------------------------- */

/* Collects the keys of the stored invitations `match` accepts. */
typedef struct match_walk {
    int (*match)(const invite_t *inv, const void *arg);
    const void *arg;
    char **keys;
    size_t n, cap;
} match_walk_t;

static int collect_match(void *ctx, const char *key, const char *data, size_t len)
{
    match_walk_t *w = ctx;
    invite_t inv;
    parse_invite(data, len, &inv);
    if (!w->match(&inv, w->arg))
        return 0;
    if (w->n == w->cap) {
        size_t cap = w->cap != 0 ? w->cap * 2 : 16;
        char **keys = realloc(w->keys, cap * sizeof *keys);
        if (keys == NULL)
            return 1; /* the rest waits for the next time */
        w->keys = keys;
        w->cap = cap;
    }
    if ((w->keys[w->n] = strdup(key)) != NULL)
        w->n++;
    return 0;
}

/* Delete the invitations `match` accepts; returns how many. */
static size_t delete_matching(invites_t *iv, int (*match)(const invite_t *inv, const void *arg),
                              const void *arg)
{
    match_walk_t w = {.match = match, .arg = arg};
    tern_map_foreach(iv->store, "", collect_match, &w);
    for (size_t i = 0; i < w.n; i++) {
        tern_map_set(iv->store, "", w.keys[i], NULL, 0);
        free(w.keys[i]);
    }
    free(w.keys);
    return w.n;
}

static int is_expired(const invite_t *inv, const void *now)
{
    return expired(inv, *(const int64_t *)now);
}

/* Delete expired tokens (their usernames are free again). */
static void purge(tern_module_ctx_t *m, void *arg)
{
    int64_t now = tern_now_us();
    size_t n = delete_matching(arg, is_expired, &now);
    if (n > 0)
        tern_log(m, TERN_LOG_INFO, "%zu expired invitation%s deleted", n, n == 1 ? "" : "s");
}

static int is_from(const invite_t *inv, const void *bare)
{
    return inv->roster && strcmp(inv->creator, bare) == 0;
}

/* "user/deleted": the invitations of a user who is gone go with them. */
static int on_user_deleted(tern_module_ctx_t *m, tern_event_t *ev)
{
    char bare[USERNAME_MAX * 3];
    if (ev->user == NULL)
        return TERN_PASS;
    snprintf(bare, sizeof bare, "%s@%s", ev->user, tern_host(m));
    size_t n = delete_matching(tern_get_data(m), is_from, bare);
    if (n > 0)
        tern_log(m, TERN_LOG_INFO, "%zu invitation%s by %s deleted with the account", n,
                 n == 1 ? "" : "s", bare);
    return TERN_PASS;
}

/* ---- life cycle ---------------------------------------------------------- */

static int load(tern_module_ctx_t *m)
{
    invites_t *iv = calloc(1, sizeof *iv);
    if (iv == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    iv->api = (invites_api_t){.session_may_register = session_may_register,
                              .session_username = session_username,
                              .username_reserved = username_reserved,
                              .consume = consume};
    iv->m = m;
    iv->store = tern_store(m, "invites", TERN_STORE_MAP);
    if (iv->store == NULL || tern_provide(m, INVITES_SERVICE, &iv->api) != 0 ||
        tern_hook(m, "stream-features/unauth", on_features, 0) != 0 ||
        tern_hook(m, "iq-set/unauth/" NS_PARS ":preauth", on_preauth, 0) != 0 ||
        tern_hook(m, "presence/bare", on_subscribe, SUB_PRIORITY) != 0 ||
        tern_hook(m, "presence/full", on_subscribe, SUB_PRIORITY) != 0 ||
        tern_hook(m, "user/deleted", on_user_deleted, 0) != 0) {
        tern_log(m, TERN_LOG_ERROR, "cannot set up invitations");
        free(iv);
        return -1;
    }
    iv->purge = tern_timer_add(m, PURGE_MS, 1, purge, iv);
    tern_set_data(m, iv);
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    invites_t *iv = tern_get_data(m);
    if (iv == NULL)
        return;
    tern_timer_cancel(&iv->purge);
    free(iv);
    tern_set_data(m, NULL);
}

static const char *const depends[] = {"register", NULL};

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "invites",
    .description = "Invitation tokens for accounts and contacts (XEP-0401, XEP-0445, XEP-0379)",
    .depends = depends,
    .load = load,
    .unload = unload,
};
