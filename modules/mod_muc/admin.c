/*
 * admin.c — roles and affiliations through muc#admin (XEP-0045 §8, §9,
 * §10.3–§10.5): kick, voice grant and revoke, moderator grant, ban with
 * reason, member/admin/owner/outcast lists.  The rights checks follow the
 * XEP's tables (§5.1.1, §5.2.1); items of one request are applied in
 * order and the first refused one ends it with its error.
 */
#include <stdlib.h>
#include <string.h>

#include "muc.h"

typedef struct {
    const char *cond, *type, *text;
} refusal_t;

#define REFUSE(c, t, x)                                                                            \
    do {                                                                                           \
        why->cond = (c);                                                                           \
        why->type = (t);                                                                           \
        why->text = (x);                                                                           \
        return -1;                                                                                 \
    } while (0)

/* §8.2 kick, §8.3/8.4 voice, §9.6/9.7 moderator. */
static int set_role(muc_t *mu, muc_room_t *r, muc_occ_t *actor, int actor_aff, tern_xml_t *item,
                    int role, refusal_t *why)
{
    if (!actor || actor->role != ROLE_MODERATOR)
        REFUSE("forbidden", "auth", "Only moderators may change roles");
    muc_occ_t *t = occ_by_nick(r, tern_xml_attr(item, "nick"));
    if (!t)
        REFUSE("item-not-found", "cancel", "No occupant with that nickname");
    int t_aff = room_aff(mu, r, t->bare);
    if (role == ROLE_MODERATOR || (t->role == ROLE_MODERATOR && role != ROLE_MODERATOR)) {
        if (actor_aff < AFF_ADMIN)
            REFUSE("not-allowed", "cancel", "Only admins may grant or revoke moderation");
    }
    if (role < t->role && (t_aff >= AFF_ADMIN || t_aff > actor_aff))
        REFUSE("not-allowed", "cancel", "Occupants of that affiliation cannot be demoted");
    tern_xml_t *rs = tern_xml_child(item, "reason", NS_MUC_ADMIN);
    const char *reason = rs ? tern_xml_text(rs) : NULL;
    if (role == ROLE_NONE) {
        occ_remove(mu, r, t, 307, actor->nick, reason);
        return 0;
    }
    if (t->role != role) {
        t->role = role;
        occ_changed(mu, r, t, actor->nick, reason);
    }
    return 0;
}

/* §9.1 ban, §9.3/9.4 members, §10.3–§10.5 owners and admins. */
static int set_aff(muc_t *mu, muc_room_t *r, muc_occ_t *actor, int actor_aff, tern_xml_t *item,
                   int aff, refusal_t *why)
{
    const char *jid_s = tern_xml_attr(item, "jid");
    tern_jid_t *jid = jid_s ? tern_jid_new(jid_s, NULL) : NULL;
    if (!jid) {
        muc_occ_t *byn = occ_by_nick(r, tern_xml_attr(item, "nick"));
        jid = byn ? tern_jid_new(byn->bare, NULL) : NULL;
    }
    if (!jid)
        REFUSE("bad-request", "modify", "The item needs a jid");
    tern_jid_t *bare = tern_jid_bare(jid);
    tern_jid_free(&jid);
    if (!bare)
        REFUSE("jid-malformed", "modify", NULL);
    int cur = room_aff_stored(r, bare->bare);
    int rc = 0;
    if (actor_aff < AFF_ADMIN) {
        why->cond = "forbidden", why->type = "auth", why->text = "Only admins and owners may";
        rc = -1;
    } else if ((aff >= AFF_ADMIN || cur >= AFF_ADMIN) && actor_aff < AFF_OWNER) {
        why->cond = "not-allowed", why->type = "cancel";
        why->text = "Only owners may change admins and owners";
        rc = -1;
    } else if (cur == AFF_OWNER && aff != AFF_OWNER && room_count_aff(r, AFF_OWNER) <= 1) {
        why->cond = "conflict", why->type = "cancel", why->text = "A room needs an owner";
        rc = -1;
    }
    if (rc) {
        tern_jid_free(&bare);
        return rc;
    }
    room_set_aff(r, bare->bare, aff);
    if (r->cfg.persistent)
        persist_save(mu, r);
    tern_xml_t *rs = tern_xml_child(item, "reason", NS_MUC_ADMIN);
    const char *reason = rs ? tern_xml_text(rs) : NULL;
    const char *actor_nick = actor ? actor->nick : NULL;
    /* every occupant of that user (one per nick it uses) */
    muc_occ_t *t = r->first;
    while (t) {
        muc_occ_t *next = t->next;
        if (strcmp(t->bare, bare->bare) != 0) {
            t = next;
            continue;
        }
        if (aff == AFF_OUTCAST) {
            occ_remove(mu, r, t, 301, actor_nick, reason);
        } else if (r->cfg.members_only && aff < AFF_MEMBER) {
            occ_remove(mu, r, t, 321, actor_nick, reason);
        } else {
            int role = room_default_role(r, aff);
            if (aff < AFF_ADMIN && t->role == ROLE_MODERATOR && cur < AFF_ADMIN)
                role = ROLE_MODERATOR; /* a moderator by grant stays one */
            if (aff == AFF_MEMBER && t->role == ROLE_VISITOR)
                role = ROLE_PARTICIPANT;
            t->role = role;
            occ_changed(mu, r, t, actor_nick, reason);
        }
        t = next;
    }
    tern_jid_free(&bare);
    return 0;
}

int muc_on_admin_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    muc_room_t *r = room_find(mu, ev->to->local);
    if (!r) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such room");
        return TERN_HANDLED;
    }
    tern_xml_t *query = tern_xml_child(ev->stanza, "query", NS_MUC_ADMIN);
    muc_occ_t *actor = occ_by_full(r, ev->from->full);
    int actor_aff = room_aff(mu, r, ev->from->bare);
    refusal_t why = {0};
    int n = 0;
    for (tern_xml_t *item = tern_xml_first_element(query); item;
         item = tern_xml_next_element(item)) {
        if (!tern_xml_is(item, "item", NS_MUC_ADMIN))
            continue;
        n++;
        const char *role_s = tern_xml_attr(item, "role");
        const char *aff_s = tern_xml_attr(item, "affiliation");
        int rc;
        if (aff_s) {
            int aff = aff_parse(aff_s);
            if (aff < AFF_OUTCAST) {
                tern_reply_error(m, ev, "modify", "bad-request", "Unknown affiliation");
                return TERN_HANDLED;
            }
            rc = set_aff(mu, r, actor, actor_aff, item, aff, &why);
        } else if (role_s) {
            int role = role_parse(role_s);
            if (role < 0) {
                tern_reply_error(m, ev, "modify", "bad-request", "Unknown role");
                return TERN_HANDLED;
            }
            rc = set_role(mu, r, actor, actor_aff, item, role, &why);
        } else {
            tern_reply_error(m, ev, "modify", "bad-request", "An item needs a role or affiliation");
            return TERN_HANDLED;
        }
        if (rc) {
            tern_reply_error(m, ev, why.type, why.cond, why.text);
            return TERN_HANDLED;
        }
        /* the actor may have removed themself or been demoted */
        r = room_find(mu, ev->to->local);
        if (!r)
            break;
        actor = occ_by_full(r, ev->from->full);
        actor_aff = room_aff(mu, r, ev->from->bare);
    }
    if (!n) {
        tern_reply_error(m, ev, "modify", "bad-request", "No item");
        return TERN_HANDLED;
    }
    if (r)
        room_maybe_gc(mu, r);
    return tern_iq_answer(m, ev, tern_iq_result(ev), 1);
}

typedef struct {
    tern_xml_t *query;
    int aff;
} list_ctx_t;

static int list_aff(void *ctx, const char *key, void *value)
{
    list_ctx_t *c = ctx;
    if ((int)((intptr_t)value - 2) != c->aff)
        return 0;
    tern_xml_t *item = tern_xml_add_child(c->query, "item", NS_MUC_ADMIN);
    if (item) {
        tern_xml_set_attr(item, "affiliation", aff_name(c->aff));
        tern_xml_set_attr(item, "jid", key);
    }
    return 0;
}

/* §9.5 (members), §9.2 (outcasts), §10.5/§10.8 (owners, admins), §8.5/§9.8 (roles). */
int muc_on_admin_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    muc_room_t *r = room_find(mu, ev->to->local);
    if (!r) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such room");
        return TERN_HANDLED;
    }
    tern_xml_t *query = tern_xml_child(ev->stanza, "query", NS_MUC_ADMIN);
    tern_xml_t *item = tern_xml_child(query, "item", NS_MUC_ADMIN);
    const char *aff_s = item ? tern_xml_attr(item, "affiliation") : NULL;
    const char *role_s = item ? tern_xml_attr(item, "role") : NULL;
    int actor_aff = room_aff(mu, r, ev->from->bare);
    muc_occ_t *actor = occ_by_full(r, ev->from->full);
    int aff = aff_s ? aff_parse(aff_s) : -2;
    int role = role_s ? role_parse(role_s) : -1;
    if (aff < AFF_OUTCAST && role < 0) {
        tern_reply_error(m, ev, "modify", "bad-request", "Ask for an affiliation or a role");
        return TERN_HANDLED;
    }
    if (aff >= AFF_OUTCAST ? actor_aff < AFF_ADMIN : (!actor || actor->role != ROLE_MODERATOR)) {
        tern_reply_error(m, ev, "auth", "forbidden", "You may not see this list");
        return TERN_HANDLED;
    }
    tern_xml_t *res = tern_iq_result(ev);
    tern_xml_t *q = res ? tern_xml_add_child(res, "query", NS_MUC_ADMIN) : NULL;
    if (!q)
        return tern_iq_answer(m, ev, res, 0);
    if (aff >= AFF_OUTCAST) {
        list_ctx_t c = {q, aff};
        tern_table_foreach(r->affs, list_aff, &c);
    } else {
        for (muc_occ_t *o = r->first; o; o = o->next) {
            if (o->role != role)
                continue;
            tern_xml_t *it = tern_xml_add_child(q, "item", NS_MUC_ADMIN);
            if (!it)
                continue;
            tern_xml_set_attr(it, "nick", o->nick);
            tern_xml_set_attr(it, "role", role_name(o->role));
            tern_xml_set_attr(it, "affiliation", aff_name(room_aff(mu, r, o->bare)));
            tern_xml_set_attr(it, "jid", o->fulls.v[0]);
        }
    }
    return tern_iq_answer(m, ev, res, 1);
}
