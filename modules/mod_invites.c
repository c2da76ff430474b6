/*
 * mod_invites — invitation tokens for account creation (XEP-0401, XEP-0445).
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
 * Tokens are made by `ternctl invite` (the URIs of XEP-0401 §5.4 and §5.1) straight
 * into the "invites" map store of the host; this module only reads and
 * deletes them, and sweeps out expired ones every hour.  A roster token
 * (xmpp:USER@HOST?roster;preauth=T;ibr=y) creates an account like any
 * other; the mutual subscription XEP-0401 §5.5 asks for after it needs a
 * roster module and is not done here.  The XEP-0050 commands of XEP-0401
 * §3 are not offered.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#include "invites_api.h"

#define NS_PARS      "urn:xmpp:pars:0"
#define NS_IBR_TOKEN "urn:xmpp:ibr-token:0"
#define NS_STANZAS   "urn:ietf:params:xml:ns:xmpp-stanzas"
#define TOKEN_MAX    128                /* longer tokens are not ours: no lookup */
#define PURGE_MS     (60LL * 60 * 1000) /* expired tokens are swept hourly */
#define USERNAME_MAX 1024               /* a localpart has at most 1023 bytes */

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

static void consume(const invites_api_t *api, tern_session_t *s, const char *local)
{
    invites_t *iv = self_of(api);
    const preauth_t *pa = tern_session_get(s, iv->m);
    if (pa == NULL)
        return;
    invite_t inv;
    if (find_invite(iv, pa->token, &inv) == 1)
        tern_log(iv->m, TERN_LOG_INFO, "invitation%s%s used for %s", inv.creator[0] ? " by " : "",
                 inv.creator, local);
    if (tern_map_set(iv->store, "", pa->token, NULL, 0) < 0)
        tern_log(iv->m, TERN_LOG_ERROR, "cannot delete a used invitation");
    tern_session_set(s, iv->m, NULL, NULL); /* frees pa */
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

/* ---- housekeeping -------------------------------------------------------- */

typedef struct purge_walk {
    int64_t now;
    char **keys;
    size_t n, cap;
} purge_walk_t;

static int collect_expired(void *ctx, const char *key, const char *data, size_t len)
{
    purge_walk_t *w = ctx;
    invite_t inv;
    parse_invite(data, len, &inv);
    if (!expired(&inv, w->now))
        return 0;
    if (w->n == w->cap) {
        size_t cap = w->cap != 0 ? w->cap * 2 : 16;
        char **keys = realloc(w->keys, cap * sizeof *keys);
        if (keys == NULL)
            return 1; /* the rest waits for the next sweep */
        w->keys = keys;
        w->cap = cap;
    }
    if ((w->keys[w->n] = strdup(key)) != NULL)
        w->n++;
    return 0;
}

/* Delete expired tokens (their usernames are free again). */
static void purge(tern_module_ctx_t *m, void *arg)
{
    invites_t *iv = arg;
    purge_walk_t w = {.now = tern_now_us()};
    tern_map_foreach(iv->store, "", collect_expired, &w);
    for (size_t i = 0; i < w.n; i++) {
        tern_map_set(iv->store, "", w.keys[i], NULL, 0);
        free(w.keys[i]);
    }
    free(w.keys);
    if (w.n > 0)
        tern_log(m, TERN_LOG_INFO, "%zu expired invitation%s deleted", w.n, w.n == 1 ? "" : "s");
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
        tern_hook(m, "iq-set/unauth/" NS_PARS ":preauth", on_preauth, 0) != 0) {
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
    .description = "Invitation tokens for account creation (XEP-0401, XEP-0445)",
    .depends = depends,
    .load = load,
    .unload = unload,
};
