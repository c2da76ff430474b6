/*
 * owner.c — what only owners do (XEP-0045 §10): the instant room
 * (§10.1.2, an empty <x type='submit'/>), the reserved room's
 * configuration form (§10.1.3, §10.2, FORM_TYPE muc#roomconfig, XEP-0004),
 * cancelling a new room, and destroying a room with an alternate venue
 * and a reason (§10.9).  Occupants hear of configuration changes by the
 * status codes of §10.2.1 (104, 172, 173) and of members-only removals
 * by 322.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muc.h"

static tern_xml_t *config_form(const muc_room_t *r, tern_xml_t *parent)
{
    tern_xml_t *x = tern_xml_add_child(parent, "x", NS_DATA);
    if (!x)
        return NULL;
    char buf[32];
    tern_xml_set_attr(x, "type", "form");
    tern_xml_t *t = tern_xml_add_child(x, "title", NS_DATA);
    if (t)
        tern_xml_add_text(t, "Room configuration", 18);
    form_add_field(x, "FORM_TYPE", "hidden", NULL, NS_MUC_CONFIG);
    form_add_field(x, "muc#roomconfig_roomname", "text-single", "Name", r->cfg.name);
    form_add_field(x, "muc#roomconfig_roomdesc", "text-single", "Description", r->cfg.desc);
    form_add_field(x, "muc#roomconfig_persistentroom", "boolean", "Persistent",
                   r->cfg.persistent ? "1" : "0");
    form_add_field(x, "muc#roomconfig_publicroom", "boolean", "Listed in the directory",
                   r->cfg.public_room ? "1" : "0");
    form_add_field(x, "muc#roomconfig_membersonly", "boolean", "Members only",
                   r->cfg.members_only ? "1" : "0");
    form_add_field(x, "muc#roomconfig_moderatedroom", "boolean", "Moderated",
                   r->cfg.moderated ? "1" : "0");
    form_add_field(x, "muc#roomconfig_changesubject", "boolean",
                   "Participants may change the subject", r->cfg.change_subject ? "1" : "0");
    form_add_field(x, "muc#roomconfig_allowinvites", "boolean", "Occupants may invite",
                   r->cfg.allow_invites ? "1" : "0");
    form_add_field(x, "muc#roomconfig_passwordprotectedroom", "boolean", "Password protected",
                   r->cfg.password_protected ? "1" : "0");
    form_add_field(x, "muc#roomconfig_roomsecret", "text-private", "Password", r->cfg.password);
    tern_xml_t *f =
        form_add_field(x, "muc#roomconfig_whois", "list-single", "Who may see real addresses",
                       r->cfg.nonanonymous ? "anyone" : "moderators");
    const char *opts[] = {"moderators", "anyone"};
    for (size_t i = 0; f && i < 2; i++) {
        tern_xml_t *o = tern_xml_add_child(f, "option", NS_DATA);
        tern_xml_t *v = o ? tern_xml_add_child(o, "value", NS_DATA) : NULL;
        if (v)
            tern_xml_add_text(v, opts[i], strlen(opts[i]));
    }
    snprintf(buf, sizeof(buf), "%ld", r->cfg.max_occupants);
    form_add_field(x, "muc#roomconfig_maxusers", "text-single", "Most occupants (0: no limit)",
                   buf);
    snprintf(buf, sizeof(buf), "%ld", r->cfg.history_len);
    form_add_field(x, "muc#maxhistoryfetch", "text-single", "Messages kept for history", buf);
    return x;
}

int muc_on_owner_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    muc_room_t *r = room_find(mu, ev->to->local);
    if (!r) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such room");
        return TERN_HANDLED;
    }
    if (room_aff(mu, r, ev->from->bare) != AFF_OWNER) {
        tern_reply_error(m, ev, "auth", "forbidden", "Only owners may configure the room");
        return TERN_HANDLED;
    }
    tern_xml_t *res = tern_iq_result(ev);
    tern_xml_t *q = res ? tern_xml_add_child(res, "query", NS_MUC_OWNER) : NULL;
    return tern_iq_answer(m, ev, res, q && config_form(r, q));
}

static void set_str(char **dst, const char *v)
{
    if (!v)
        return;
    char *s = strdup(v);
    if (!s)
        return;
    free(*dst);
    *dst = s;
}

static long parse_num(const char *v, long def, long max)
{
    if (!v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0)
        return -1;
    return n > max ? max : n;
}

/* Apply a submitted muc#roomconfig form; -1 with *text when a value is wrong. */
static int apply_form(muc_t *mu, muc_room_t *r, tern_xml_t *x, const char **text)
{
    const char *ft = form_type(x);
    if (ft && strcmp(ft, NS_MUC_CONFIG) != 0) {
        *text = "Not a room configuration form";
        return -1;
    }
    const char *whois = form_value(x, "muc#roomconfig_whois");
    if (whois && strcmp(whois, "anyone") != 0 && strcmp(whois, "moderators") != 0) {
        *text = "muc#roomconfig_whois is anyone or moderators";
        return -1;
    }
    long maxu = parse_num(form_value(x, "muc#roomconfig_maxusers"), r->cfg.max_occupants, 1000000);
    long hist = parse_num(form_value(x, "muc#maxhistoryfetch"), r->cfg.history_len, 1000);
    if (maxu < 0 || hist < 0) {
        *text = "Numbers must be whole and not negative";
        return -1;
    }
    muc_config_t *c = &r->cfg;
    set_str(&c->name, form_value(x, "muc#roomconfig_roomname"));
    set_str(&c->desc, form_value(x, "muc#roomconfig_roomdesc"));
    set_str(&c->password, form_value(x, "muc#roomconfig_roomsecret"));
    c->persistent = form_bool(x, "muc#roomconfig_persistentroom", c->persistent);
    c->public_room = form_bool(x, "muc#roomconfig_publicroom", c->public_room);
    c->members_only = form_bool(x, "muc#roomconfig_membersonly", c->members_only);
    c->moderated = form_bool(x, "muc#roomconfig_moderatedroom", c->moderated);
    c->change_subject = form_bool(x, "muc#roomconfig_changesubject", c->change_subject);
    c->allow_invites = form_bool(x, "muc#roomconfig_allowinvites", c->allow_invites);
    c->password_protected =
        form_bool(x, "muc#roomconfig_passwordprotectedroom", c->password_protected);
    if (whois)
        c->nonanonymous = strcmp(whois, "anyone") == 0;
    c->max_occupants = maxu;
    room_set_history_len(r, hist);
    (void)mu;
    return 0;
}

int muc_on_owner_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    muc_room_t *r = room_find(mu, ev->to->local);
    if (!r) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such room");
        return TERN_HANDLED;
    }
    if (room_aff(mu, r, ev->from->bare) != AFF_OWNER) {
        tern_reply_error(m, ev, "auth", "forbidden", "Only owners may configure the room");
        return TERN_HANDLED;
    }
    tern_xml_t *query = tern_xml_child(ev->stanza, "query", NS_MUC_OWNER);
    tern_xml_t *destroy = tern_xml_child(query, "destroy", NS_MUC_OWNER);
    if (destroy) {
        tern_xml_t *rs = tern_xml_child(destroy, "reason", NS_MUC_OWNER);
        char *reason = rs ? strdup(tern_xml_text(rs)) : NULL;
        const char *alt = tern_xml_attr(destroy, "jid");
        room_destroy(mu, &r, alt, reason);
        free(reason);
        return tern_iq_answer(m, ev, tern_iq_result(ev), 1);
    }
    tern_xml_t *x = tern_xml_child(query, "x", NS_DATA);
    const char *xtype = x ? tern_xml_attr(x, "type") : NULL;
    if (!xtype) {
        tern_reply_error(m, ev, "modify", "bad-request", "Send a form, or destroy");
        return TERN_HANDLED;
    }
    if (strcmp(xtype, "cancel") == 0) { /* §10.1.3: a new room that is cancelled goes */
        if (r->locked)
            room_destroy(mu, &r, NULL, NULL);
        return tern_iq_answer(m, ev, tern_iq_result(ev), 1);
    }
    if (strcmp(xtype, "submit") != 0) {
        tern_reply_error(m, ev, "modify", "bad-request", "The form must be submitted");
        return TERN_HANDLED;
    }
    int was_locked = r->locked;
    int was_nonanon = r->cfg.nonanonymous, was_members = r->cfg.members_only;
    int was_persistent = r->cfg.persistent;
    const char *text = NULL;
    if (tern_xml_first_element(x) && apply_form(mu, r, x, &text) != 0) {
        tern_reply_error(m, ev, "modify", "not-acceptable", text);
        return TERN_HANDLED;
    }
    r->locked = 0;
    if (r->cfg.persistent)
        persist_save(mu, r);
    else if (was_persistent)
        persist_remove(mu, r);
    tern_iq_answer(m, ev, tern_iq_result(ev), 1);
    if (!was_locked) {
        int codes[3];
        size_t n = 0;
        codes[n++] = 104;
        if (r->cfg.nonanonymous && !was_nonanon)
            codes[n++] = 172;
        if (!r->cfg.nonanonymous && was_nonanon)
            codes[n++] = 173;
        room_status_message(mu, r, codes, n);
    }
    if (r->cfg.members_only && !was_members) { /* §9.4: 322 for those now out */
        muc_occ_t *o = r->first;
        while (o) {
            muc_occ_t *next = o->next;
            if (room_aff(mu, r, o->bare) < AFF_MEMBER)
                occ_remove(mu, r, o, 322, NULL, NULL);
            o = next;
        }
    }
    room_maybe_gc(mu, r);
    return TERN_HANDLED;
}

/* Take every occupant out; each hears only of its own removal (the
 * others are off the list while its presence goes), with `code` (0: none)
 * and `extra` in its <x/>. */
void room_evict_all(muc_t *mu, muc_room_t *r, int code, const tern_xml_t *extra)
{
    muc_occ_t *o = r->first;
    r->first = r->last = NULL;
    while (o) {
        muc_occ_t *next = o->next;
        o->prev = o->next = NULL;
        r->first = r->last = o;
        occ_broadcast(mu, r, o, "unavailable", &code, code ? 1 : 0, NULL, 0, NULL, NULL, NULL,
                      extra);
        r->first = r->last = NULL;
        for (size_t i = 0; i < o->fulls.n; i++)
            tern_table_remove(r->by_full, o->fulls.v[i]);
        tern_table_remove(r->by_nick, o->nick);
        occ_destroy(o);
        o = next;
    }
    r->n_occ = 0;
}

void room_destroy(muc_t *mu, muc_room_t **rp, const char *alt, const char *reason)
{
    muc_room_t *r = *rp;
    tern_xml_t *d = tern_xml_new("destroy", NS_MUC_USER);
    if (d) {
        if (alt && *alt)
            tern_xml_set_attr(d, "jid", alt);
        if (reason && *reason) {
            tern_xml_t *e = tern_xml_add_child(d, "reason", NS_MUC_USER);
            if (e)
                tern_xml_add_text(e, reason, strlen(reason));
        }
    }
    /* §10.9: affiliation and role none, and the <destroy/> */
    tern_table_free(&r->affs);
    r->affs = tern_table_new();
    if (r->affs)
        room_evict_all(mu, r, 0, d);
    if (d)
        tern_xml_unref(d);
    persist_remove(mu, r);
    avatar_remove(mu, r);
    room_free(mu, rp);
}
