/*
 * occupants.c — presence in rooms (XEP-0045 §7.1, §7.6, §7.14, §7.2.x):
 * entering (with the errors of §7.2), leaving, nickname changes, presence
 * updates, several sessions of one user under one nick, and the presence
 * broadcasts with their status codes (§15.2.2).  Room state belongs to
 * rooms.c; this file only adds and removes occupants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muc.h"

muc_occ_t *occ_by_full(const muc_room_t *r, const char *full)
{
    return full ? tern_table_get(r->by_full, full) : NULL;
}

muc_occ_t *occ_by_nick(const muc_room_t *r, const char *nick)
{
    return nick ? tern_table_get(r->by_nick, nick) : NULL;
}

int occ_jid_visible(const muc_room_t *r, const muc_occ_t *to)
{
    return r->cfg.nonanonymous || to->role == ROLE_MODERATOR;
}

void occ_collect_all(const muc_room_t *r, muc_vec_t *to)
{
    for (const muc_occ_t *p = r->first; p; p = p->next)
        for (size_t i = 0; i < p->fulls.n; i++)
            muc_vec_add(to, p->fulls.v[i]);
}

static void add_code(tern_xml_t *x, int code)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%d", code);
    tern_xml_t *s = tern_xml_add_child(x, "status", NS_MUC_USER);
    if (s)
        tern_xml_set_attr(s, "code", buf);
}

/* The presence of o as occupants see it: from room/nick, its last show
 * and status, and <x muc#user><item/>codes</x>. */
static tern_xml_t *occ_presence(const muc_room_t *r, const muc_occ_t *o, const char *type,
                                int with_jid, const int *codes, size_t ncodes, const int *more,
                                size_t nmore, const char *nick_new, const char *actor,
                                const char *reason, const tern_xml_t *extra)
{
    tern_xml_t *p = tern_xml_new("presence", TERN_NS_CLIENT);
    if (!p)
        return NULL;
    size_t len = strlen(r->jid) + strlen(o->nick) + 2;
    char *from = malloc(len);
    if (from) {
        snprintf(from, len, "%s/%s", r->jid, o->nick);
        tern_xml_set_attr(p, "from", from);
        free(from);
    }
    if (type)
        tern_xml_set_attr(p, "type", type);
    else if (o->pres)
        for (tern_xml_t *c = tern_xml_first_element(o->pres); c; c = tern_xml_next_element(c))
            if (!tern_xml_is(c, "x", NS_MUC) && !tern_xml_is(c, "x", NS_MUC_USER))
                tern_xml_copy_into(p, c);
    tern_xml_t *x = tern_xml_add_child(p, "x", NS_MUC_USER);
    tern_xml_t *item = x ? tern_xml_add_child(x, "item", NS_MUC_USER) : NULL;
    if (item) {
        tern_xml_set_attr(item, "affiliation", aff_name(room_aff(r->mu, r, o->bare)));
        tern_xml_set_attr(item, "role", type ? "none" : role_name(o->role));
        if (with_jid && o->fulls.n)
            tern_xml_set_attr(item, "jid", o->fulls.v[0]);
        if (nick_new)
            tern_xml_set_attr(item, "nick", nick_new);
        if (actor) {
            tern_xml_t *a = tern_xml_add_child(item, "actor", NS_MUC_USER);
            if (a)
                tern_xml_set_attr(a, "nick", actor);
        }
        if (reason && *reason) {
            tern_xml_t *e = tern_xml_add_child(item, "reason", NS_MUC_USER);
            if (e)
                tern_xml_add_text(e, reason, strlen(reason));
        }
    }
    ids_add_occupant_id(r, o->bare, p); /* XEP-0421 */
    if (x && extra)
        tern_xml_copy_into(x, extra);
    for (size_t i = 0; x && i < ncodes; i++)
        add_code(x, codes[i]);
    for (size_t i = 0; x && i < nmore; i++)
        add_code(x, more[i]);
    return p;
}

static void send_to(muc_t *mu, tern_xml_t *st, muc_vec_t *to)
{
    if (st && to->n)
        tern_route_fanout(mu->m, st, to->v, to->n);
    if (st)
        tern_xml_unref(st);
}

/* Admins see the affiliation with the room's own view; server admins
 * that own every room by policy show as owners once they are in it. */
void occ_broadcast(muc_t *mu, muc_room_t *r, muc_occ_t *o, const char *type, const int *codes,
                   size_t ncodes, const int *self_codes, size_t nself, const char *nick_new,
                   const char *actor, const char *reason, const tern_xml_t *extra)
{
    muc_vec_t with = {0}, without = {0}, self = {0};
    for (muc_occ_t *p = r->first; p; p = p->next) {
        if (p == o)
            continue;
        muc_vec_t *v = occ_jid_visible(r, p) ? &with : &without;
        for (size_t i = 0; i < p->fulls.n; i++)
            muc_vec_add(v, p->fulls.v[i]);
    }
    for (size_t i = 0; i < o->fulls.n; i++)
        muc_vec_add(&self, o->fulls.v[i]);
    if (with.n)
        send_to(mu,
                occ_presence(r, o, type, 1, codes, ncodes, NULL, 0, nick_new, actor, reason, extra),
                &with);
    if (without.n)
        send_to(mu,
                occ_presence(r, o, type, 0, codes, ncodes, NULL, 0, nick_new, actor, reason, extra),
                &without);
    int sc[8];
    size_t n = 0;
    sc[n++] = 110;
    for (size_t i = 0; i < nself && n < 8; i++)
        sc[n++] = self_codes[i];
    if (self.n)
        send_to(mu,
                occ_presence(r, o, type, 1, codes, ncodes, sc, n, nick_new, actor, reason, extra),
                &self);
    muc_vec_free(&with);
    muc_vec_free(&without);
    muc_vec_free(&self);
}

static void occ_free(muc_room_t *r, muc_occ_t *o)
{
    for (size_t i = 0; i < o->fulls.n; i++)
        tern_table_remove(r->by_full, o->fulls.v[i]);
    tern_table_remove(r->by_nick, o->nick);
    if (o->prev)
        o->prev->next = o->next;
    else
        r->first = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        r->last = o->prev;
    r->n_occ--;
    occ_destroy(o);
}

void occ_invalidate(muc_occ_t *o)
{
    for (int i = 0; i < 2; i++)
        if (o->cache[i]) {
            tern_xml_unref(o->cache[i]);
            o->cache[i] = NULL;
        }
}

void occ_destroy(muc_occ_t *o)
{
    occ_invalidate(o);
    free(o->nick);
    free(o->bare);
    tern_strlist_clear(&o->fulls);
    if (o->pres)
        tern_xml_unref(o->pres);
    free(o);
}

void occ_remove(muc_t *mu, muc_room_t *r, muc_occ_t *o, int code, const char *actor,
                const char *reason)
{
    int codes[1] = {code};
    occ_broadcast(mu, r, o, "unavailable", codes, code ? 1 : 0, NULL, 0, NULL, actor, reason, NULL);
    occ_free(r, o);
}

void occ_changed(muc_t *mu, muc_room_t *r, muc_occ_t *o, const char *actor, const char *reason)
{
    occ_invalidate(o);
    occ_broadcast(mu, r, o, NULL, NULL, 0, NULL, 0, NULL, actor, reason, NULL);
}

void room_status_message(muc_t *mu, muc_room_t *r, const int *codes, size_t n)
{
    tern_xml_t *msg = tern_xml_new("message", TERN_NS_CLIENT);
    if (!msg)
        return;
    tern_xml_set_attr(msg, "from", r->jid);
    tern_xml_set_attr(msg, "type", "groupchat");
    tern_xml_t *x = tern_xml_add_child(msg, "x", NS_MUC_USER);
    for (size_t i = 0; x && i < n; i++)
        add_code(x, codes[i]);
    muc_vec_t to = {0};
    occ_collect_all(r, &to);
    send_to(mu, msg, &to);
    muc_vec_free(&to);
}

/* Keep a copy of the client's presence (its show, status, caps). */
static void occ_keep_presence(muc_occ_t *o, const tern_xml_t *stanza)
{
    tern_xml_t *copy = tern_xml_copy(stanza);
    if (!copy)
        return;
    if (o->pres)
        tern_xml_unref(o->pres);
    o->pres = copy;
    occ_invalidate(o);
}

/* Every present occupant's presence, to the one session `full` of a new occupant. */
static void send_others_to(muc_t *mu, muc_room_t *r, const muc_occ_t *self, const char *full)
{
    muc_vec_t to = {0};
    muc_vec_add(&to, full);
    int visible = occ_jid_visible(r, self);
    for (muc_occ_t *p = r->first; p; p = p->next) {
        if (p == self)
            continue;
        if (!p->cache[visible])
            p->cache[visible] =
                occ_presence(r, p, NULL, visible, NULL, 0, NULL, 0, NULL, NULL, NULL, NULL);
        if (p->cache[visible])
            tern_route_fanout(mu->m, p->cache[visible], to.v, to.n);
    }
    muc_vec_free(&to);
}

/* §7.2: the checks before entering, in the XEP's order; 0 or an error sent. */
static int join_refused(muc_t *mu, tern_event_t *ev, muc_room_t *r, int aff, const char *nick,
                        tern_xml_t *x)
{
    tern_module_ctx_t *m = mu->m;
    const char *bare = ev->from->bare;
    if (r->locked && aff != AFF_OWNER) {
        tern_reply_error(m, ev, "cancel", "item-not-found",
                         "This room is locked until its owner configures it");
        return 1;
    }
    if (aff == AFF_OUTCAST) {
        tern_reply_error(m, ev, "auth", "forbidden", "You are banned from this room");
        return 1;
    }
    muc_occ_t *holder = occ_by_nick(r, nick);
    if (holder && strcmp(holder->bare, bare) != 0) {
        tern_reply_error(m, ev, "cancel", "conflict", "That nickname is already in use");
        return 1;
    }
    if (r->cfg.members_only && aff < AFF_MEMBER) {
        tern_reply_error(m, ev, "auth", "registration-required", "This room is members-only");
        return 1;
    }
    if (r->cfg.password_protected && aff < AFF_OWNER) {
        tern_xml_t *pw = x ? tern_xml_child(x, "password", NS_MUC) : NULL;
        if (!pw || strcmp(tern_xml_text(pw), r->cfg.password ? r->cfg.password : "") != 0) {
            tern_reply_error(m, ev, "auth", "not-authorized",
                             pw ? "Wrong password" : "This room needs a password");
            return 1;
        }
    }
    long max = r->cfg.max_occupants ? r->cfg.max_occupants : mu->max_occupants;
    if (!holder && max > 0 && (long)r->n_occ >= max && aff < AFF_ADMIN) {
        tern_reply_error(m, ev, "wait", "service-unavailable", "This room is full");
        return 1;
    }
    return 0;
}

/* §10.1.1: may this user create a room here? */
static int may_create(muc_t *mu, tern_event_t *ev)
{
    if (tern_is_admin(mu->m, ev->from->bare))
        return 1;
    switch (mu->create) {
    case CREATE_ANYONE:
        break;
    case CREATE_LOCAL:
        if (!tern_is_local_host(mu->m, ev->from->domain))
            return 0;
        break;
    default:
        return 0;
    }
    return mu->max_rooms_per_user <= 0 ||
           (long)room_count_owned(mu, ev->from->bare) < mu->max_rooms_per_user;
}

static void join(muc_t *mu, tern_event_t *ev, muc_room_t *r, const char *nick)
{
    tern_module_ctx_t *m = mu->m;
    const char *full = ev->from->full;
    tern_xml_t *x = tern_xml_child(ev->stanza, "x", NS_MUC);
    int created = 0;
    if (!r) {
        if (!may_create(mu, ev)) {
            tern_reply_error(m, ev, "cancel", "not-allowed",
                             "You may not create rooms on this service");
            return;
        }
        r = room_new(mu, ev->to->local, ev->from->bare);
        if (!r) {
            tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
            return;
        }
        created = 1;
    }
    int aff = room_aff(mu, r, ev->from->bare);
    if (!created && join_refused(mu, ev, r, aff, nick, x))
        return;
    muc_occ_t *o = occ_by_nick(r, nick);
    if (o) { /* another session of the same user under the same nick */
        if (tern_strlist_add(&o->fulls, full) != 0 || tern_table_put(r->by_full, full, o) != 0) {
            tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
            return;
        }
        send_others_to(mu, r, o, full);
        muc_vec_t to = {0};
        muc_vec_add(&to, full);
        int sc[3];
        size_t n = 0;
        sc[n++] = 110;
        if (r->cfg.nonanonymous)
            sc[n++] = 100;
        send_to(mu, occ_presence(r, o, NULL, 1, NULL, 0, sc, n, NULL, NULL, NULL, NULL), &to);
        muc_vec_free(&to);
        history_send(mu, r, full, x ? tern_xml_child(x, "history", NS_MUC) : NULL);
        subject_send(mu, r, full);
        return;
    }
    o = calloc(1, sizeof(*o));
    if (!o || !(o->nick = strdup(nick)) || !(o->bare = strdup(ev->from->bare)) ||
        tern_strlist_add(&o->fulls, full) != 0) {
        if (o) {
            free(o->nick);
            free(o->bare);
            free(o);
        }
        if (created)
            room_free(mu, &r);
        tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
        return;
    }
    o->role = room_default_role(r, aff);
    occ_keep_presence(o, ev->stanza);
    tern_table_put(r->by_nick, nick, o);
    tern_table_put(r->by_full, full, o);
    send_others_to(mu, r, o, full);
    o->prev = r->last;
    if (r->last)
        r->last->next = o;
    else
        r->first = o;
    r->last = o;
    r->n_occ++;
    int sc[4];
    size_t n = 0;
    if (r->cfg.nonanonymous)
        sc[n++] = 100;
    if (created)
        sc[n++] = 201;
    /* §7.2.9 / 210: the service changed the nick (stringprep) */
    const char *to_attr = tern_xml_attr(ev->stanza, "to");
    const char *slash = to_attr ? strchr(to_attr, '/') : NULL;
    if (slash && strcmp(slash + 1, nick) != 0)
        sc[n++] = 210;
    occ_broadcast(mu, r, o, NULL, NULL, 0, sc, n, NULL, NULL, NULL, NULL);
    history_send(mu, r, full, x ? tern_xml_child(x, "history", NS_MUC) : NULL);
    subject_send(mu, r, full);
}

/* §7.6: the occupant asks for another nick. */
static void change_nick(muc_t *mu, tern_event_t *ev, muc_room_t *r, muc_occ_t *o, const char *nick)
{
    muc_occ_t *holder = occ_by_nick(r, nick);
    if (holder) {
        tern_reply_error(mu->m, ev, "cancel", "conflict", "That nickname is already in use");
        return;
    }
    int code = 303;
    occ_broadcast(mu, r, o, "unavailable", &code, 1, NULL, 0, nick, NULL, NULL, NULL);
    char *nn = strdup(nick);
    if (!nn)
        return;
    tern_table_remove(r->by_nick, o->nick);
    free(o->nick);
    o->nick = nn;
    occ_invalidate(o);
    tern_table_put(r->by_nick, nn, o);
    occ_keep_presence(o, ev->stanza);
    occ_broadcast(mu, r, o, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL, NULL);
}

/* §7.14: one session leaves; the occupant goes with its last session. */
void occ_leave(muc_t *mu, muc_room_t *r, muc_occ_t *o, const char *full, int code)
{
    if (o->fulls.n > 1) {
        muc_vec_t to = {0};
        muc_vec_add(&to, full);
        int self = 110;
        send_to(mu,
                occ_presence(r, o, "unavailable", 1, &code, code ? 1 : 0, &self, 1, NULL, NULL,
                             NULL, NULL),
                &to);
        muc_vec_free(&to);
        for (size_t i = 0; i < o->fulls.n; i++)
            if (strcmp(o->fulls.v[i], full) == 0) {
                tern_strlist_remove(&o->fulls, i);
                break;
            }
        tern_table_remove(r->by_full, full);
        occ_invalidate(o); /* the real JID shown may have been this one */
        return;
    }
    occ_remove(mu, r, o, code, NULL, NULL);
    room_maybe_gc(mu, r);
}

int muc_on_presence(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    const char *type = tern_xml_attr(ev->stanza, "type");
    const char *nick = ev->to->resource;
    if (!ev->to->local) {
        if (!type)
            tern_reply_error(m, ev, "modify", "jid-malformed", "Join a room: room@service/nick");
        return TERN_HANDLED;
    }
    muc_room_t *r = room_find(mu, ev->to->local);
    muc_occ_t *o = r ? occ_by_full(r, ev->from->full) : NULL;
    if (type && (strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0)) {
        if (o) /* an error bounced from the occupant's address: it is gone (333) */
            occ_leave(mu, r, o, ev->from->full, strcmp(type, "error") == 0 ? 333 : 0);
        return TERN_HANDLED;
    }
    if (type)
        return TERN_HANDLED; /* subscriptions and probes mean nothing to a room */
    if (!nick || !*nick) {
        tern_reply_error(m, ev, "modify", "jid-malformed", "A nickname is needed to join");
        return TERN_HANDLED;
    }
    if (o) {
        if (strcmp(o->nick, nick) == 0) { /* a presence update (§7.7) */
            occ_keep_presence(o, ev->stanza);
            occ_broadcast(mu, r, o, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL, NULL);
        } else {
            change_nick(mu, ev, r, o, nick);
        }
        return TERN_HANDLED;
    }
    join(mu, ev, r, nick);
    return TERN_HANDLED;
}

int muc_on_presence_bare(tern_module_ctx_t *m, tern_event_t *ev)
{
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (!type)
        tern_reply_error(m, ev, "modify", "jid-malformed", "A nickname is needed to join");
    return TERN_HANDLED;
}
