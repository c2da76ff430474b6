/*
 * persist.c — persistent rooms in the module's map storage (user "" of
 * the service domain, one key per room: its localpart).  A room is kept
 * as one element:
 *   <room xmlns='urn:tern:muc:0' creator='JID'>
 *     <config name='' desc='' password='' persistent='1' public='1' .../>
 *     <subject nick='NICK'>TEXT</subject>
 *     <aff jid='JID' a='owner'/>...
 *   </room>
 * written whenever its configuration, affiliations or subject change, read
 * back at load.  Occupants and history are not kept: clients rejoin.
 */
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "muc.h"

#define NS_STORE "urn:tern:muc:0"

typedef struct {
    const char *name;
    size_t off;
} flag_t;

static const flag_t flags[] = {
    {"persistent", offsetof(muc_config_t, persistent)},
    {"public", offsetof(muc_config_t, public_room)},
    {"membersonly", offsetof(muc_config_t, members_only)},
    {"moderated", offsetof(muc_config_t, moderated)},
    {"passwordprotected", offsetof(muc_config_t, password_protected)},
    {"nonanonymous", offsetof(muc_config_t, nonanonymous)},
    {"changesubject", offsetof(muc_config_t, change_subject)},
    {"allowinvites", offsetof(muc_config_t, allow_invites)},
};

static int save_aff(void *ctx, const char *key, void *value)
{
    tern_xml_t *a = tern_xml_add_child(ctx, "aff", NS_STORE);
    if (a) {
        tern_xml_set_attr(a, "jid", key);
        tern_xml_set_attr(a, "a", aff_name((int)((intptr_t)value - 2)));
    }
    return 0;
}

void persist_save(muc_t *mu, const muc_room_t *r)
{
    if (!mu->store || r->locked)
        return;
    tern_xml_t *el = tern_xml_new("room", NS_STORE);
    if (!el)
        return;
    if (r->creator)
        tern_xml_set_attr(el, "creator", r->creator);
    tern_xml_t *c = tern_xml_add_child(el, "config", NS_STORE);
    char buf[32];
    if (c) {
        tern_xml_set_attr(c, "name", r->cfg.name);
        tern_xml_set_attr(c, "desc", r->cfg.desc);
        tern_xml_set_attr(c, "password", r->cfg.password);
        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
            tern_xml_set_attr(c, flags[i].name,
                              *(const int *)((const char *)&r->cfg + flags[i].off) ? "1" : "0");
        snprintf(buf, sizeof(buf), "%ld", r->cfg.max_occupants);
        tern_xml_set_attr(c, "maxusers", buf);
        snprintf(buf, sizeof(buf), "%ld", r->cfg.history_len);
        tern_xml_set_attr(c, "history", buf);
    }
    if (r->subject) {
        tern_xml_t *s = tern_xml_add_child(el, "subject", NS_STORE);
        if (s) {
            tern_xml_set_attr(s, "nick", r->subject_nick ? r->subject_nick : "");
            tern_xml_add_text(s, r->subject, strlen(r->subject));
        }
    }
    tern_table_foreach(r->affs, save_aff, el);
    size_t len = 0;
    char *data = tern_xml_to_string(el, &len);
    tern_xml_unref(el);
    if (!data || tern_map_set(mu->store, "", r->local, data, len) != 0)
        tern_log(mu->m, TERN_LOG_ERROR, "muc: cannot store room %s", r->jid);
    free(data);
}

void persist_remove(muc_t *mu, const muc_room_t *r)
{
    if (mu->store && tern_map_set(mu->store, "", r->local, NULL, 0) != 0)
        tern_log(mu->m, TERN_LOG_ERROR, "muc: cannot remove stored room %s", r->jid);
}

static long attr_num(const tern_xml_t *el, const char *name, long def)
{
    const char *v = tern_xml_attr(el, name);
    return v ? strtol(v, NULL, 10) : def;
}

static void set(char **dst, const char *v)
{
    char *s = strdup(v ? v : "");
    if (s) {
        free(*dst);
        *dst = s;
    }
}

static int load_one(void *ctx, const char *key, const char *data, size_t len)
{
    muc_t *mu = ctx;
    tern_xml_t *el = tern_xml_parse(data, len);
    if (!el || !tern_xml_is(el, "room", NS_STORE)) {
        tern_log(mu->m, TERN_LOG_WARN, "muc: stored room %s is unreadable; skipped", key);
        if (el)
            tern_xml_unref(el);
        return 0;
    }
    muc_room_t *r = room_new(mu, key, NULL);
    if (!r) {
        tern_xml_unref(el);
        return 0;
    }
    const char *creator = tern_xml_attr(el, "creator");
    if (creator)
        r->creator = strdup(creator);
    tern_xml_t *c = tern_xml_child(el, "config", NS_STORE);
    if (c) {
        set(&r->cfg.name, tern_xml_attr(c, "name"));
        set(&r->cfg.desc, tern_xml_attr(c, "desc"));
        set(&r->cfg.password, tern_xml_attr(c, "password"));
        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
            const char *v = tern_xml_attr(c, flags[i].name);
            if (v)
                *(int *)((char *)&r->cfg + flags[i].off) = strcmp(v, "1") == 0;
        }
        r->cfg.max_occupants = attr_num(c, "maxusers", r->cfg.max_occupants);
        room_set_history_len(r, attr_num(c, "history", r->cfg.history_len));
    }
    r->cfg.persistent = 1;
    tern_xml_t *s = tern_xml_child(el, "subject", NS_STORE);
    if (s) {
        r->subject = strdup(tern_xml_text(s));
        r->subject_nick = strdup(tern_xml_attr(s, "nick") ? tern_xml_attr(s, "nick") : "");
    }
    for (tern_xml_t *a = tern_xml_first_element(el); a; a = tern_xml_next_element(a)) {
        if (!tern_xml_is(a, "aff", NS_STORE))
            continue;
        const char *jid = tern_xml_attr(a, "jid");
        int aff = aff_parse(tern_xml_attr(a, "a"));
        if (jid && aff >= AFF_OUTCAST)
            room_set_aff(r, jid, aff);
    }
    tern_xml_unref(el);
    return 0;
}

int persist_load_all(muc_t *mu)
{
    if (!mu->store)
        return 0;
    return tern_map_foreach(mu->store, "", load_one, mu) < 0 ? -1 : 0;
}
