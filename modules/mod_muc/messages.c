/*
 * messages.c — messages in rooms: groupchat fan-out (serialized once with
 * tern_route_fanout), the subject (§8.1), private messages between
 * occupants (§7.5), mediated invitations and declines (§7.8), voice
 * requests (§7.13, §8.6) and the in-memory history sent on entering
 * (§7.2.15, with XEP-0203 <delay/>).  history_record() is the one place
 * every kept groupchat message passes: an archive (MAM) hooks there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "muc.h"

static void occ_jid(const muc_room_t *r, const char *nick, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", r->jid, nick);
}

static void send_vec(muc_t *mu, tern_xml_t *st, muc_vec_t *to)
{
    if (st && to->n)
        tern_route_fanout(mu->m, st, to->v, to->n);
}

static void stamp(int64_t us, char *buf, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t parse_stamp(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000000;
}

void history_clear(muc_room_t *r)
{
    for (size_t i = 0; i < r->hist_n; i++) {
        muc_hist_t *h = &r->hist[(r->hist_head + i) % r->hist_cap];
        tern_xml_unref(h->msg);
        h->msg = NULL;
    }
    r->hist_n = r->hist_head = 0;
}

/* Keep `msg` (as the room sent it) for history on join.  The single place
 * where a room's messages are recorded: archiving hooks in here. */
static void history_record(muc_room_t *r, const tern_xml_t *msg)
{
    history_push(r, msg, tern_now_us());
}

void history_push(muc_room_t *r, const tern_xml_t *msg, int64_t now)
{
    if (!r->hist_cap)
        return;
    tern_xml_t *h = tern_xml_copy(msg);
    if (!h)
        return;
    char ts[32];
    stamp(now, ts, sizeof(ts));
    tern_xml_t *d = tern_xml_add_child(h, "delay", NS_DELAY);
    if (d) {
        tern_xml_set_attr(d, "from", r->jid);
        tern_xml_set_attr(d, "stamp", ts);
    }
    tern_xml_freeze(h);
    size_t len = 0;
    char *s = tern_xml_to_string(h, &len);
    free(s);
    muc_hist_t *slot;
    if (r->hist_n == r->hist_cap) {
        slot = &r->hist[r->hist_head];
        tern_xml_unref(slot->msg);
        r->hist_head = (r->hist_head + 1) % r->hist_cap;
    } else {
        slot = &r->hist[(r->hist_head + r->hist_n) % r->hist_cap];
        r->hist_n++;
    }
    slot->msg = h;
    slot->when_us = now;
    slot->chars = len;
}

static long attr_long(const tern_xml_t *el, const char *name, long def)
{
    const char *v = el ? tern_xml_attr(el, name) : NULL;
    if (!v || !*v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 0 ? def : n;
}

/* §7.2.15: the newest messages within every limit the client gave. */
void history_send(muc_t *mu, muc_room_t *r, const char *full, tern_xml_t *history)
{
    long maxchars = attr_long(history, "maxchars", -1);
    long maxstanzas = attr_long(history, "maxstanzas", -1);
    long seconds = attr_long(history, "seconds", -1);
    int64_t since = history ? parse_stamp(tern_xml_attr(history, "since")) : -1;
    int64_t now = tern_now_us();
    size_t take = 0, chars = 0;
    for (size_t i = r->hist_n; i > 0; i--) {
        const muc_hist_t *h = &r->hist[(r->hist_head + i - 1) % r->hist_cap];
        if (maxstanzas >= 0 && (long)take >= maxstanzas)
            break;
        if (maxchars >= 0 && (long)(chars + h->chars) > maxchars)
            break;
        if (seconds >= 0 && h->when_us < now - (int64_t)seconds * 1000000)
            break;
        if (since >= 0 && h->when_us < since)
            break;
        chars += h->chars;
        take++;
    }
    muc_vec_t to = {0};
    muc_vec_add(&to, full);
    for (size_t i = r->hist_n - take; i < r->hist_n; i++)
        send_vec(mu, r->hist[(r->hist_head + i) % r->hist_cap].msg, &to);
    muc_vec_free(&to);
}

/* §7.2.16: the subject comes last, empty when there is none. */
void subject_send(muc_t *mu, muc_room_t *r, const char *full)
{
    tern_xml_t *msg = tern_xml_new("message", TERN_NS_CLIENT);
    if (!msg)
        return;
    char from[3072];
    if (r->subject_nick && *r->subject_nick)
        occ_jid(r, r->subject_nick, from, sizeof(from));
    else
        snprintf(from, sizeof(from), "%s", r->jid);
    tern_xml_set_attr(msg, "from", from);
    tern_xml_set_attr(msg, "type", "groupchat");
    tern_xml_t *s = tern_xml_add_child(msg, "subject", TERN_NS_CLIENT);
    if (s && r->subject)
        tern_xml_add_text(s, r->subject, strlen(r->subject));
    muc_vec_t to = {0};
    muc_vec_add(&to, full);
    send_vec(mu, msg, &to);
    muc_vec_free(&to);
    tern_xml_unref(msg);
}

/* The client's message as the room sends it: from room/nick, no 'to'. */
static tern_xml_t *as_room(const muc_room_t *r, const muc_occ_t *o, const tern_xml_t *stanza)
{
    tern_xml_t *msg = tern_xml_copy(stanza);
    if (!msg)
        return NULL;
    char from[3072];
    occ_jid(r, o->nick, from, sizeof(from));
    tern_xml_set_attr(msg, "from", from);
    tern_xml_del_attr(msg, "to");
    return msg;
}

static void groupchat(muc_t *mu, tern_event_t *ev, muc_room_t *r)
{
    muc_occ_t *o = occ_by_full(r, ev->from->full);
    if (!o) {
        tern_reply_error(mu->m, ev, "modify", "not-acceptable",
                         "Only occupants may send messages to the room");
        return;
    }
    tern_xml_t *subject = tern_xml_child(ev->stanza, "subject", TERN_NS_CLIENT);
    tern_xml_t *body = tern_xml_child(ev->stanza, "body", TERN_NS_CLIENT);
    if (o->role < ROLE_PARTICIPANT) {
        tern_reply_error(mu->m, ev, "auth", "forbidden", "Visitors may not speak in this room");
        return;
    }
    if (subject && !body) { /* §8.1 */
        if (o->role != ROLE_MODERATOR && !r->cfg.change_subject) {
            tern_reply_error(mu->m, ev, "auth", "forbidden",
                             "Only moderators may change the subject");
            return;
        }
        free(r->subject);
        free(r->subject_nick);
        r->subject = strdup(tern_xml_text(subject));
        r->subject_nick = strdup(o->nick);
        if (r->cfg.persistent)
            persist_save(mu, r);
    }
    tern_xml_t *msg = as_room(r, o, ev->stanza);
    if (!msg)
        return;
    char sid[MUC_ID_LEN];
    ids_stamp_message(r, o->bare, msg, sid);
    /* The watchers (archive) see it before anyone gets it. */
    for (size_t i = 0; i < mu->n_watchers; i++)
        mu->watchers[i].fn(mu->watchers[i].who, r->jid, o->nick, o->bare, msg, mu->watchers[i].arg);
    if (body) {
        history_record(r, msg);
        archive_record(mu, r, msg, sid, 0);
    }
    muc_vec_t to = {0};
    occ_collect_all(r, &to);
    send_vec(mu, msg, &to);
    muc_vec_free(&to);
    tern_xml_unref(msg);
}

/* §7.8.2: a mediated invitation; §7.8.3 (decline) goes back to the inviter. */

/* A mediated invitation or decline (XEP-0045 §7.8.2, §7.8.3) from the
 * room to `to`: <x><WHAT from=sender>, with the reason `orig` carried.
 * *x_r (when asked) is the <x/> for more children.  NULL when memory is
 * short. */
static tern_xml_t *mediated(const muc_room_t *r, const tern_event_t *ev, const char *to,
                            const char *what, const tern_xml_t *orig, tern_xml_t **x_r)
{
    tern_xml_t *msg = tern_xml_new("message", TERN_NS_CLIENT);
    if (!msg)
        return NULL;
    tern_xml_set_attr(msg, "from", r->jid);
    tern_xml_set_attr(msg, "to", to);
    tern_xml_t *x = tern_xml_add_child(msg, "x", NS_MUC_USER);
    tern_xml_t *el = x ? tern_xml_add_child(x, what, NS_MUC_USER) : NULL;
    if (el) {
        tern_xml_set_attr(el, "from", ev->from->bare);
        tern_xml_t *reason = tern_xml_child(orig, "reason", NULL);
        if (reason)
            tern_xml_copy_into(el, reason);
    }
    if (x_r)
        *x_r = x;
    return msg;
}

static void invite(muc_t *mu, tern_event_t *ev, muc_room_t *r, tern_xml_t *inv)
{
    const char *to = tern_xml_attr(inv, "to");
    tern_jid_t *jid = to ? tern_jid_new(to, NULL) : NULL;
    if (!jid) {
        tern_reply_error(mu->m, ev, "modify", "jid-malformed", "The invitee's address is wrong");
        return;
    }
    muc_occ_t *o = occ_by_full(r, ev->from->full);
    int aff = room_aff(mu, r, ev->from->bare);
    if (!o) {
        tern_reply_error(mu->m, ev, "modify", "not-acceptable", "Only occupants may invite");
    } else if (r->cfg.members_only && aff < AFF_ADMIN && !r->cfg.allow_invites) {
        tern_reply_error(mu->m, ev, "auth", "forbidden", "Only admins may invite to this room");
    } else {
        if (r->cfg.members_only && room_aff_stored(r, jid->bare) == AFF_NONE) {
            room_set_aff(r, jid->bare, AFF_MEMBER); /* §7.8.2: the invitee becomes a member */
            if (r->cfg.persistent)
                persist_save(mu, r);
        }
        tern_xml_t *x = NULL;
        tern_xml_t *msg = mediated(r, ev, jid->full, "invite", inv, &x);
        if (msg) {
            if (x && r->cfg.password_protected && r->cfg.password) {
                tern_xml_t *pw = tern_xml_add_child(x, "password", NS_MUC_USER);
                if (pw)
                    tern_xml_add_text(pw, r->cfg.password, strlen(r->cfg.password));
            }
            tern_xml_t *b = tern_xml_add_child(msg, "body", TERN_NS_CLIENT);
            if (b) {
                char text[3072];
                snprintf(text, sizeof(text), "%s invites you to the room %s", ev->from->bare,
                         r->jid);
                tern_xml_add_text(b, text, strlen(text));
            }
            tern_route(mu->m, msg);
            tern_xml_unref(msg);
        }
    }
    tern_jid_free(&jid);
}

static void decline(muc_t *mu, muc_room_t *r, tern_event_t *ev, tern_xml_t *dec)
{
    const char *to = tern_xml_attr(dec, "to");
    tern_jid_t *jid = to ? tern_jid_new(to, NULL) : NULL;
    if (!jid)
        return;
    tern_xml_t *msg = mediated(r, ev, jid->full, "decline", dec, NULL);
    if (msg) {
        tern_route(mu->m, msg);
        tern_xml_unref(msg);
    }
    tern_jid_free(&jid);
}

/* §7.13: a visitor asks for voice: the form goes to the moderators.
 * §8.6: a moderator's answer with muc#request_allow grants it. */
static void voice_request(muc_t *mu, tern_event_t *ev, muc_room_t *r, tern_xml_t *form)
{
    muc_occ_t *o = occ_by_full(r, ev->from->full);
    if (!o) {
        tern_reply_error(mu->m, ev, "modify", "not-acceptable", "Only occupants may ask");
        return;
    }
    if (o->role == ROLE_MODERATOR && form_value(form, "muc#request_allow")) {
        muc_occ_t *t = occ_by_nick(r, form_value(form, "muc#roomnick"));
        if (t && t->role == ROLE_VISITOR && form_bool(form, "muc#request_allow", 0)) {
            t->role = ROLE_PARTICIPANT;
            occ_changed(mu, r, t, o->nick, NULL);
        }
        return;
    }
    if (o->role != ROLE_VISITOR)
        return;
    tern_xml_t *msg = tern_xml_new("message", TERN_NS_CLIENT);
    if (!msg)
        return;
    tern_xml_set_attr(msg, "from", r->jid);
    tern_xml_t *x = tern_xml_add_child(msg, "x", NS_DATA);
    if (x) {
        tern_xml_set_attr(x, "type", "form");
        tern_xml_t *t = tern_xml_add_child(x, "title", NS_DATA);
        if (t)
            tern_xml_add_text(t, "Voice request", 13);
        form_add_field(x, "FORM_TYPE", "hidden", NULL, NS_MUC_REQ);
        form_add_field(x, "muc#role", "list-single", "Requested role", "participant");
        form_add_field(x, "muc#jid", "jid-single", "User ID", o->fulls.v[0]);
        form_add_field(x, "muc#roomnick", "text-single", "Room Nickname", o->nick);
        form_add_field(x, "muc#request_allow", "boolean", "Grant voice to this person?", "false");
    }
    muc_vec_t to = {0};
    for (muc_occ_t *p = r->first; p; p = p->next)
        if (p->role == ROLE_MODERATOR)
            for (size_t i = 0; i < p->fulls.n; i++)
                muc_vec_add(&to, p->fulls.v[i]);
    send_vec(mu, msg, &to);
    muc_vec_free(&to);
    tern_xml_unref(msg);
}

/* A message the room sent bounced from an occupant's address: that
 * session is gone (its client went away without leaving, its server is
 * unreachable), so it leaves with 333 rather than stay a ghost. */
static void bounced(muc_t *mu, tern_event_t *ev)
{
    muc_room_t *r = room_find(mu, ev->to->local);
    muc_occ_t *o = r ? occ_by_full(r, ev->from->full) : NULL;
    if (o)
        occ_leave(mu, r, o, ev->from->full, 333);
}

int muc_on_room_message(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (type && strcmp(type, "error") == 0) {
        bounced(mu, ev);
        return TERN_HANDLED;
    }
    muc_room_t *r = room_find(mu, ev->to->local);
    if (!r || (r->locked && room_aff(mu, r, ev->from->bare) != AFF_OWNER)) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such room");
        return TERN_HANDLED;
    }
    if (type && strcmp(type, "groupchat") == 0) {
        groupchat(mu, ev, r);
        return TERN_HANDLED;
    }
    tern_xml_t *x = tern_xml_child(ev->stanza, "x", NS_MUC_USER);
    tern_xml_t *inv = x ? tern_xml_child(x, "invite", NS_MUC_USER) : NULL;
    tern_xml_t *dec = x ? tern_xml_child(x, "decline", NS_MUC_USER) : NULL;
    tern_xml_t *form = tern_xml_child(ev->stanza, "x", NS_DATA);
    if (inv)
        invite(mu, ev, r, inv);
    else if (dec)
        decline(mu, r, ev, dec);
    else if (form && form_type(form) && strcmp(form_type(form), NS_MUC_REQ) == 0)
        voice_request(mu, ev, r, form);
    else
        tern_reply_error(m, ev, "modify", "bad-request",
                         "Messages to the room must be of type groupchat");
    return TERN_HANDLED;
}

/* §7.5: a private message to room/nick goes to every session of that occupant. */
int muc_on_private_message(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (type && strcmp(type, "error") == 0) {
        bounced(mu, ev);
        return TERN_HANDLED;
    }
    muc_room_t *r = room_find(mu, ev->to->local);
    if (!r) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such room");
        return TERN_HANDLED;
    }
    if (type && strcmp(type, "groupchat") == 0) {
        tern_reply_error(m, ev, "modify", "bad-request",
                         "Groupchat messages go to the room, not to an occupant");
        return TERN_HANDLED;
    }
    muc_occ_t *from = occ_by_full(r, ev->from->full);
    if (!from) {
        tern_reply_error(m, ev, "modify", "not-acceptable",
                         "Only occupants may send private messages");
        return TERN_HANDLED;
    }
    muc_occ_t *to = occ_by_nick(r, ev->to->resource);
    if (!to) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such occupant");
        return TERN_HANDLED;
    }
    tern_xml_t *msg = as_room(r, from, ev->stanza);
    if (!msg)
        return TERN_HANDLED;
    if (!tern_xml_child(msg, "x", NS_MUC_USER))
        tern_xml_add_child(msg, "x", NS_MUC_USER);
    muc_vec_t v = {0};
    for (size_t i = 0; i < to->fulls.n; i++)
        muc_vec_add(&v, to->fulls.v[i]);
    send_vec(mu, msg, &v);
    muc_vec_free(&v);
    tern_xml_unref(msg);
    return TERN_HANDLED;
}
