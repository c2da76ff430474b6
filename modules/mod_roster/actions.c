/*
 * actions.c — subscription changes other modules make on a user's behalf
 * (the write functions of roster_api.h: approve, subscribe,
 * subscribe_both).
 *
 * Owns no protocol of its own: each function takes the path of
 * presence.c's state machine that the matching presence from the user's
 * client would take (RFC 6121 Appendix A), so rosters, pushes and the
 * stanzas the contacts get are the same.  Nothing here blocks; rosters are
 * read and written before anything is routed, as in presence.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Set *error_r when the caller asked for it; returns -1. */
static int fail(const char **error_r, const char *error)
{
    if (error_r != NULL)
        *error_r = error;
    return -1;
}

/* The instance of `host` for an existing account `user`, and the prepared
 * bare JID of `contact` (a new JID the caller frees), or NULL with
 * *error_r.  The contact may not be the user. */
static rhost_t *prepare(const char *host, const char *user, const char *contact, tern_jid_t **cj,
                        const char **error_r)
{
    *cj = NULL;
    rhost_t *h = rhost_find(host);
    if (h == NULL) {
        fail(error_r, "no roster on this host");
        return NULL;
    }
    if (user == NULL || !tern_user_exists(h->m, user)) {
        fail(error_r, "no such account");
        return NULL;
    }
    char bare[1100];
    tern_jid_t *j = contact != NULL ? tern_jid_new(contact, NULL) : NULL;
    if (j == NULL || j->resource != NULL ||
        strcmp(j->bare, user_bare(h, user, bare, sizeof(bare))) == 0) {
        tern_jid_free(&j);
        fail(error_r, "invalid JID");
        return NULL;
    }
    *cj = j;
    return h;
}

/* roster_api_t.approve: the user's <presence type='subscribed'/> (outbound
 * A.2.3 or §3.4), or with the request in hand, what the inbound request
 * meets after that (A.3.1). */
int actions_approve(const char *host, const char *user, const char *contact, int request_in_hand,
                    const char **error_r)
{
    tern_jid_t *cj = NULL;
    rhost_t *h = prepare(host, user, contact, &cj, error_r);
    if (h == NULL)
        return -1;
    ritem_t *it = NULL;
    int rc = item_get(h, user, cj->bare, &it);
    int visible = it != NULL && !it->hidden;
    if (rc < 0) {
        rc = fail(error_r, "storage error");
    } else if (visible && (it->sub & ROSTER_SUB_FROM)) {
        /* A.3.1: subscribed already; a request gets its answer again. */
        if (request_in_hand) {
            char bare[1100];
            presence_send_type(h, user_bare(h, user, bare, sizeof(bare)), cj->bare, "subscribed",
                               NULL);
            presence_send_available(h, user, cj->bare);
        }
        rc = 1;
    } else if (!visible && !presence_room_for_one(h, user)) {
        rc = fail(error_r, "roster full");
    } else if (it == NULL && (it = item_new(cj->bare)) == NULL) {
        rc = fail(error_r, "storage error");
    } else if (it->in || request_in_hand) {
        presence_grant(h, user, it, visible, NULL);
        rc = 1;
    } else {
        /* §3.4: kept until the contact asks. */
        if (!it->appr || !visible) {
            it->appr = 1;
            it->hidden = 0;
            if (roster_commit(h, user, it, 0, visible) < 0)
                rc = fail(error_r, "storage error");
        }
        if (rc >= 0)
            rc = 0;
    }
    item_free(&it);
    tern_jid_free(&cj);
    return rc;
}

/* roster_api_t.subscribe: the user's <presence type='subscribe'/>
 * (outbound A.2.1, §3.1.2). */
int actions_subscribe(const char *host, const char *user, const char *contact, const char **error_r)
{
    tern_jid_t *cj = NULL;
    rhost_t *h = prepare(host, user, contact, &cj, error_r);
    if (h == NULL)
        return -1;
    ritem_t *it = NULL;
    int rc = item_get(h, user, cj->bare, &it);
    int visible = it != NULL && !it->hidden;
    if (rc < 0) {
        rc = fail(error_r, "storage error");
    } else if (visible && (it->sub & ROSTER_SUB_TO)) {
        rc = 0; /* subscribed already */
    } else if (!visible && !presence_room_for_one(h, user)) {
        rc = fail(error_r, "roster full");
    } else if (it == NULL && (it = item_new(cj->bare)) == NULL) {
        rc = fail(error_r, "storage error");
    } else {
        rc = 0;
        if (!visible || !it->ask) {
            it->ask = 1;
            it->hidden = 0;
            if (roster_commit(h, user, it, 0, visible) < 0)
                rc = fail(error_r, "storage error");
        }
        if (rc == 0) {
            char bare[1100];
            presence_send_type(h, user_bare(h, user, bare, sizeof(bare)), cj->bare, "subscribe",
                               NULL);
        }
    }
    item_free(&it);
    tern_jid_free(&cj);
    return rc;
}

/* One side of subscribe_both: the item of `contact` in user's roster. */
typedef struct side {
    rhost_t *h;
    const char *user;
    char bare[1100]; /* user's bare JID */
    ritem_t *it;
    int visible;
} side_t;

/* Read the item (a new one if absent) and check there is room; 0 or -1. */
static int side_load(side_t *s, const char *contact, const char **error_r)
{
    if (item_get(s->h, s->user, contact, &s->it) < 0)
        return fail(error_r, "storage error");
    s->visible = s->it != NULL && !s->it->hidden;
    if (!s->visible && !presence_room_for_one(s->h, s->user))
        return fail(error_r, "roster full");
    if (s->it == NULL && (s->it = item_new(contact)) == NULL)
        return fail(error_r, "storage error");
    return 0;
}

/* Settle the item at 'both' and push it when that changed anything. */
static int side_commit(side_t *s)
{
    ritem_t *it = s->it;
    if (s->visible && it->sub == ROSTER_SUB_BOTH && !it->ask && !it->in && !it->appr)
        return 0;
    it->sub = ROSTER_SUB_BOTH;
    it->ask = it->in = it->appr = it->hidden = 0;
    item_set_status(it, NULL);
    return roster_commit(s->h, s->user, it, 0, s->visible);
}

/* roster_api_t.subscribe_both: both handshakes at once (A.2.1, A.3.1,
 * A.2.3, A.3.3 on each side) without asking either user. */
int actions_subscribe_both(const char *host, const char *user, const char *contact,
                           const char **error_r)
{
    tern_jid_t *cj = NULL;
    side_t a = {.user = user}, b = {0};
    int rc = -1;
    if ((a.h = prepare(host, user, contact, &cj, error_r)) == NULL)
        return -1;
    b.user = cj->local;
    if (b.user == NULL) {
        fail(error_r, "invalid JID"); /* a server is no account */
    } else if ((b.h = rhost_find(cj->domain)) == NULL) {
        fail(error_r, "no roster on this host");
    } else if (!tern_user_exists(b.h->m, b.user)) {
        fail(error_r, "no such account");
    } else {
        user_bare(a.h, a.user, a.bare, sizeof(a.bare));
        user_bare(b.h, b.user, b.bare, sizeof(b.bare));
        if (side_load(&a, b.bare, error_r) == 0 && side_load(&b, a.bare, error_r) == 0) {
            rc = side_commit(&a) == 0 && side_commit(&b) == 0 ? 0 : fail(error_r, "storage error");
        }
        if (rc == 0) {
            /* §3.1.5: each side then gets the other's current presence. */
            presence_send_available(a.h, a.user, b.bare);
            presence_send_available(b.h, b.user, a.bare);
        }
    }
    item_free(&a.it);
    item_free(&b.it);
    tern_jid_free(&cj);
    return rc;
}
