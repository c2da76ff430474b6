/*
 * disco.c — discovery of the service and its rooms (XEP-0045 §6):
 * the service's identity conference/text and its features (§6.1), the
 * public rooms in its disco#items (§6.3), a room's features and its
 * muc#roominfo form (§6.4, §15.5.4).  Answers only; changes nothing.
 */
#include <stdio.h>
#include <string.h>

#include "muc.h"

int muc_on_disco_info_host(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_t *query = tern_xml_child(ev->stanza, "query", NS_DISCO_INFO);
    if (query && tern_xml_attr(query, "node")) {
        tern_reply_error(m, ev, "cancel", "item-not-found", NULL);
        return TERN_HANDLED;
    }
    tern_xml_t *res = tern_iq_result(ev);
    tern_xml_t *q = res ? tern_xml_add_child(res, "query", NS_DISCO_INFO) : NULL;
    if (q)
        tern_disco_fill(m, q);
    return tern_iq_answer(m, ev, res, q != NULL);
}

typedef struct {
    tern_xml_t *q;
} items_ctx_t;

static int add_room(void *ctx, const char *key, void *value)
{
    (void)key;
    items_ctx_t *c = ctx;
    const muc_room_t *r = value;
    if (!r->cfg.public_room || r->locked)
        return 0;
    tern_xml_t *it = tern_xml_add_child(c->q, "item", NS_DISCO_ITEM);
    if (it) {
        tern_xml_set_attr(it, "jid", r->jid);
        tern_xml_set_attr(it, "name", r->cfg.name);
    }
    return 0;
}

int muc_on_disco_items_host(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    tern_xml_t *res = tern_iq_result(ev);
    tern_xml_t *q = res ? tern_xml_add_child(res, "query", NS_DISCO_ITEM) : NULL;
    if (q) {
        items_ctx_t c = {q};
        tern_table_foreach(mu->rooms, add_room, &c);
    }
    return tern_iq_answer(m, ev, res, q != NULL);
}

static void feature(tern_xml_t *q, const char *var)
{
    tern_xml_t *f = tern_xml_add_child(q, "feature", NS_DISCO_INFO);
    if (f)
        tern_xml_set_attr(f, "var", var);
}

static muc_room_t *visible_room(muc_t *mu, tern_event_t *ev)
{
    muc_room_t *r = room_find(mu, ev->to->local);
    if (!r || (r->locked && room_aff(mu, r, ev->from->bare) != AFF_OWNER)) {
        tern_reply_error(mu->m, ev, "cancel", "item-not-found", "No such room");
        return NULL;
    }
    return r;
}

int muc_on_disco_info_room(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    if (ev->to->resource) { /* an occupant: not ours to describe */
        tern_reply_error(m, ev, "cancel", "service-unavailable", NULL);
        return TERN_HANDLED;
    }
    muc_room_t *r = visible_room(mu, ev);
    if (!r)
        return TERN_HANDLED;
    tern_xml_t *res = tern_iq_result(ev);
    tern_xml_t *q = res ? tern_xml_add_child(res, "query", NS_DISCO_INFO) : NULL;
    if (!q)
        return tern_iq_answer(m, ev, res, 0);
    tern_xml_t *id = tern_xml_add_child(q, "identity", NS_DISCO_INFO);
    if (id) {
        tern_xml_set_attr(id, "category", "conference");
        tern_xml_set_attr(id, "type", "text");
        tern_xml_set_attr(id, "name", r->cfg.name);
    }
    feature(q, NS_DISCO_INFO);
    feature(q, NS_DISCO_ITEM);
    feature(q, NS_MUC);
    feature(q, r->cfg.public_room ? "muc_public" : "muc_hidden");
    feature(q, r->cfg.members_only ? "muc_membersonly" : "muc_open");
    feature(q, r->cfg.password_protected ? "muc_passwordprotected" : "muc_unsecured");
    feature(q, r->cfg.moderated ? "muc_moderated" : "muc_unmoderated");
    feature(q, r->cfg.nonanonymous ? "muc_nonanonymous" : "muc_semianonymous");
    feature(q, r->cfg.persistent ? "muc_persistent" : "muc_temporary");
    feature(q, NS_SID);
    feature(q, NS_OCCUPANT_ID);
    feature(q, NS_SELF_PING);
    feature(q, NS_MODERATE0);
    feature(q, NS_MODERATE1);
    if (archive_enabled(mu, r))
        feature(q, NS_MAM);
    feature(q, NS_VCARD);
    tern_xml_t *x = tern_xml_add_child(q, "x", NS_DATA);
    if (x) {
        char buf[32];
        tern_xml_set_attr(x, "type", "result");
        form_add_field(x, "FORM_TYPE", "hidden", NULL, NS_MUC_INFO);
        form_add_field(x, "muc#roomconfig_roomname", "text-single", "Name", r->cfg.name);
        form_add_field(x, "muc#roominfo_description", "text-single", "Description", r->cfg.desc);
        form_add_field(x, "muc#roominfo_subject", "text-single", "Subject",
                       r->subject ? r->subject : "");
        snprintf(buf, sizeof(buf), "%zu", r->n_occ);
        form_add_field(x, "muc#roominfo_occupants", "text-single", "Number of occupants", buf);
        form_add_field(x, "muc#roomconfig_changesubject", "boolean",
                       "Occupants may change the subject", r->cfg.change_subject ? "1" : "0");
        char hash[41];
        if (avatar_hash(mu, r, hash) == 0) /* XEP-0486 §3 */
            form_add_field(x, "muc#roominfo_avatarhash", "text-multi", "Avatar hash", hash);
    }
    return tern_iq_answer(m, ev, res, 1);
}

/* §6.5: occupants are not listed (that would defeat anonymity). */
int muc_on_disco_items_room(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    if (ev->to->resource) {
        tern_reply_error(m, ev, "cancel", "service-unavailable", NULL);
        return TERN_HANDLED;
    }
    if (!visible_room(mu, ev))
        return TERN_HANDLED;
    tern_xml_t *res = tern_iq_result(ev);
    tern_xml_t *q = res ? tern_xml_add_child(res, "query", NS_DISCO_ITEM) : NULL;
    return tern_iq_answer(m, ev, res, q != NULL);
}
