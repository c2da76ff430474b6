/*
 * moderate.c — message moderation (XEP-0425): a moderator asks the room to
 * retract an occupant's groupchat message, named by the stanza id the
 * room gave it (ids.c).  Both versions of the request are understood:
 *   v0.3+ <moderate xmlns='urn:xmpp:message-moderate:1' id='SID'>
 *            <retract xmlns='urn:xmpp:message-retract:1'/><reason/>
 *   v0.2  <apply-to xmlns='urn:xmpp:fasten:0' id='SID'>
 *            <moderate xmlns='urn:xmpp:message-moderate:0'><retract/>...
 * The room then sends every occupant one message carrying both forms of
 * the retraction (the XEP-0424 <retract/> and the older <apply-to/>),
 * with a plain-text body and a XEP-0428 fallback marker for clients that
 * know neither, and replaces the message in its history with a tombstone
 * (<retracted/> with <moderated by=''/>, no body).  Others than
 * moderators get forbidden; an id the room does not hold, item-not-found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "muc.h"

#define NS_MOD0    NS_MODERATE0
#define NS_MOD1    NS_MODERATE1
#define NS_RETR0   "urn:xmpp:message-retract:0"
#define NS_RETR1   "urn:xmpp:message-retract:1"
#define NS_FASTEN  "urn:xmpp:fasten:0"
#define NS_FALLBCK "urn:xmpp:fallback:0"

static void now_stamp(char *buf, size_t len)
{
    time_t t = (time_t)(tern_now_us() / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The room's stanza id on a message it sent, or NULL. */
static const char *room_sid(const muc_room_t *r, const tern_xml_t *msg)
{
    for (tern_xml_t *c = tern_xml_first_element(msg); c; c = tern_xml_next_element(c))
        if (tern_xml_is(c, "stanza-id", NS_SID)) {
            const char *by = tern_xml_attr(c, "by");
            if (by && strcmp(by, r->jid) == 0)
                return tern_xml_attr(c, "id");
        }
    return NULL;
}

static muc_hist_t *hist_find(muc_room_t *r, const char *sid)
{
    for (size_t i = 0; i < r->hist_n; i++) {
        muc_hist_t *h = &r->hist[(r->hist_head + i) % r->hist_cap];
        const char *id = h->msg ? room_sid(r, h->msg) : NULL;
        if (id && strcmp(id, sid) == 0)
            return h;
    }
    return NULL;
}

/* XEP-0425 v0.3 inside <retract/> or <retracted/> `parent`: who moderated
 * (<moderated by><occupant-id/></moderated>), then the reason if any. */
static void add_moderated(tern_xml_t *parent, const char *by, const char *by_oid,
                          const char *reason)
{
    tern_xml_t *md = tern_xml_add_child(parent, "moderated", NS_MOD1);
    if (md) {
        tern_xml_set_attr(md, "by", by);
        tern_xml_t *o = tern_xml_add_child(md, "occupant-id", NS_OCCUPANT_ID);
        if (o)
            tern_xml_set_attr(o, "id", by_oid);
    }
    if (reason)
        muc_add_text_child(parent, "reason", NS_RETR1, reason);
}

/* XEP-0425 §tombstones: the message without its content: from, type, id,
 * its stanza id, occupant id and delay, and what became of it. */
static tern_xml_t *tombstone(const tern_xml_t *old, const char *by, const char *by_oid,
                             const char *reason, const char *stamp)
{
    tern_xml_t *t = tern_xml_new("message", TERN_NS_CLIENT);
    if (!t)
        return NULL;
    static const char *const attrs[] = {"from", "type", "id"};
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
        if (tern_xml_attr(old, attrs[i]))
            tern_xml_set_attr(t, attrs[i], tern_xml_attr(old, attrs[i]));
    tern_xml_t *rd = tern_xml_add_child(t, "retracted", NS_RETR1);
    if (rd) {
        tern_xml_set_attr(rd, "stamp", stamp);
        add_moderated(rd, by, by_oid, reason);
    }
    for (tern_xml_t *c = tern_xml_first_element(old); c; c = tern_xml_next_element(c))
        if (tern_xml_is(c, "stanza-id", NS_SID) || tern_xml_is(c, "occupant-id", NS_OCCUPANT_ID) ||
            tern_xml_is(c, "delay", NS_DELAY))
            tern_xml_copy_into(t, c);
    return t;
}

/* The retraction the room sends to everyone, in both versions. */
static tern_xml_t *announcement(const muc_room_t *r, const char *sid, const char *by,
                                const char *by_oid, const char *reason)
{
    tern_xml_t *m = tern_xml_new("message", TERN_NS_CLIENT);
    if (!m)
        return NULL;
    char id[MUC_ID_LEN];
    tern_xml_set_attr(m, "from", r->jid);
    tern_xml_set_attr(m, "type", "groupchat");
    if (ids_new_stanza_id(id) == 0)
        tern_xml_set_attr(m, "id", id);
    /* XEP-0425 v0.3 with XEP-0424 v1 */
    tern_xml_t *rt = tern_xml_add_child(m, "retract", NS_RETR1);
    if (rt) {
        tern_xml_set_attr(rt, "id", sid);
        add_moderated(rt, by, by_oid, reason);
    }
    /* XEP-0425 v0.2 (XEP-0422 fastening) */
    tern_xml_t *ap = tern_xml_add_child(m, "apply-to", NS_FASTEN);
    if (ap) {
        tern_xml_set_attr(ap, "id", sid);
        tern_xml_t *md = tern_xml_add_child(ap, "moderated", NS_MOD0);
        if (md) {
            tern_xml_set_attr(md, "by", by);
            tern_xml_add_child(md, "retract", NS_RETR0);
            if (reason)
                muc_add_text_child(md, "reason", NS_MOD0, reason);
        }
    }
    /* XEP-0424 §fallback: what clients that know neither show. */
    muc_add_text_child(m, "body", TERN_NS_CLIENT,
                       "A moderator retracted a message, but your client does not support that.");
    tern_xml_t *fb = tern_xml_add_child(m, "fallback", NS_FALLBCK);
    if (fb)
        tern_xml_set_attr(fb, "for", NS_RETR1);
    if (ids_new_stanza_id(id) == 0) {
        tern_xml_t *s = tern_xml_add_child(m, "stanza-id", NS_SID);
        if (s) {
            tern_xml_set_attr(s, "id", id);
            tern_xml_set_attr(s, "by", r->jid);
        }
    }
    return m;
}

static int moderate(tern_module_ctx_t *m, tern_event_t *ev, const char *sid, tern_xml_t *req)
{
    muc_t *mu = muc_get(m);
    muc_room_t *r = room_find(mu, ev->to->local);
    if (!r || (r->locked && room_aff(mu, r, ev->from->bare) != AFF_OWNER)) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such room");
        return TERN_HANDLED;
    }
    muc_occ_t *o = occ_by_full(r, ev->from->full);
    if (!o || o->role != ROLE_MODERATOR) {
        tern_reply_error(m, ev, "auth", "forbidden", "Only moderators may moderate messages");
        return TERN_HANDLED;
    }
    if (!sid || !*sid || !tern_xml_child(req, "retract", NULL)) {
        tern_reply_error(m, ev, "modify", "bad-request", "Name a message and ask to retract it");
        return TERN_HANDLED;
    }
    muc_hist_t *h = hist_find(r, sid);
    if (!h) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such message in this room");
        return TERN_HANDLED;
    }
    tern_xml_t *re = tern_xml_child(req, "reason", NULL);
    const char *reason = re ? tern_xml_text(re) : NULL;
    char by[3072], oid[MUC_OID_LEN] = "", stamp[32];
    snprintf(by, sizeof(by), "%s/%s", r->jid, o->nick);
    ids_occupant_id(mu, r->jid, o->bare, oid);
    now_stamp(stamp, sizeof(stamp));
    tern_xml_t *t = tombstone(h->msg, by, oid, reason, stamp);
    tern_xml_t *ann = announcement(r, sid, by, oid, reason);
    if (!t || !ann) {
        tern_xml_unref(t);
        tern_xml_unref(ann);
        tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
        return TERN_HANDLED;
    }
    tern_xml_freeze(t);
    size_t len = 0;
    free(tern_xml_to_string(t, &len));
    archive_replace(mu, r, sid, t, h->when_us);
    tern_xml_unref(h->msg);
    h->msg = t;
    h->chars = len;
    tern_iq_answer(m, ev, tern_iq_result(ev), 1);
    muc_vec_t to = {0};
    occ_collect_all(r, &to);
    if (to.n)
        tern_route_fanout(m, ann, to.v, to.n);
    muc_vec_free(&to);
    tern_xml_unref(ann);
    return TERN_HANDLED;
}

/* XEP-0425 v0.3: <moderate xmlns='urn:xmpp:message-moderate:1' id=''>. */
int muc_on_moderate(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_t *req = tern_xml_first_element(ev->stanza);
    return moderate(m, ev, tern_xml_attr(req, "id"), req);
}

/* XEP-0425 v0.2: <apply-to xmlns='urn:xmpp:fasten:0' id=''><moderate/>. */
int muc_on_moderate_fasten(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_t *ap = tern_xml_first_element(ev->stanza);
    tern_xml_t *req = tern_xml_child(ap, "moderate", NS_MOD0);
    if (!req)
        return TERN_PASS;
    return moderate(m, ev, tern_xml_attr(ap, "id"), req);
}
