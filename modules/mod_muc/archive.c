/*
 * archive.c — the archive of a room (XEP-0313 §"Querying a MUC archive"):
 * persistent rooms keep their groupchat messages in the module's archive
 * store (one archive per room, keyed by the room's JID), each under the
 * stanza id occupants got (ids.c), and occupants query it with
 * <query xmlns='urn:xmpp:mam:2'/> in an iq set to the room, paged with
 * RSM (XEP-0059).  Reads go through tern_archive_query_async, off the
 * loop.  Who may read: in a members-only room members, admins and owners;
 * in another room also its occupants; never outcasts.  What the archive
 * holds is what the room sent (from room/nick, with ids), never the real
 * JIDs of occupants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tern/store.h>

#include "muc.h"

#define NS_RSM     "http://jabber.org/protocol/rsm"
#define NS_FORWARD "urn:xmpp:forward:0"
#define MAX_PAGE   100 /* the most items of one page */
#define DEF_PAGE   20

int archive_enabled(const muc_t *mu, const muc_room_t *r)
{
    return mu->archive && mu->archive_on && r->cfg.persistent;
}

void archive_record(muc_t *mu, const muc_room_t *r, const tern_xml_t *msg, const char *sid,
                    int64_t when_us)
{
    if (!archive_enabled(mu, r) || !sid || !*sid)
        return;
    size_t len = 0;
    char *data = tern_xml_to_string(msg, &len);
    if (!data)
        return;
    if (tern_archive_append(mu->archive, r->jid, sid, when_us, tern_xml_attr(msg, "from"), data,
                            len) != 0)
        tern_log(mu->m, TERN_LOG_WARN, "muc: cannot archive a message of %s", r->jid);
    free(data);
}

void archive_replace(muc_t *mu, const muc_room_t *r, const char *sid, const tern_xml_t *msg,
                     int64_t when_us)
{
    if (!mu->archive)
        return;
    const char *ids[2] = {sid, NULL};
    tern_archive_query_t q = {.ids = ids};
    if (tern_archive_delete(mu->archive, r->jid, &q) <= 0)
        return; /* not archived */
    size_t len = 0;
    char *data = tern_xml_to_string(msg, &len);
    if (data)
        tern_archive_append(mu->archive, r->jid, sid, when_us, tern_xml_attr(msg, "from"), data,
                            len);
    free(data);
}

static int64_t parse_time(const char *s)
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

static void stamp(int64_t us, char *buf, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One query on its way: what the answer needs once the read is back. */
typedef struct arch_req {
    char *room, *to, *iq_id, *queryid;
    unsigned max;
    int last_page; /* reverse read: items come newest first */
} arch_req_t;

static void req_free(arch_req_t *q)
{
    if (!q)
        return;
    free(q->room);
    free(q->to);
    free(q->iq_id);
    free(q->queryid);
    free(q);
}

static void send_item(tern_module_ctx_t *m, const arch_req_t *q, const tern_archive_item_t *it)
{
    tern_xml_t *orig = tern_xml_parse(it->data, it->len);
    if (!orig)
        return;
    tern_xml_t *msg = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_t *res = msg ? tern_xml_add_child(msg, "result", NS_MAM) : NULL;
    tern_xml_t *fwd = res ? tern_xml_add_child(res, "forwarded", NS_FORWARD) : NULL;
    tern_xml_t *d = fwd ? tern_xml_add_child(fwd, "delay", NS_DELAY) : NULL;
    if (d) {
        char ts[32];
        stamp(it->when_us, ts, sizeof(ts));
        tern_xml_set_attr(d, "stamp", ts);
        tern_xml_set_attr(msg, "from", q->room);
        tern_xml_set_attr(msg, "to", q->to);
        tern_xml_set_attr(res, "id", it->id);
        if (q->queryid)
            tern_xml_set_attr(res, "queryid", q->queryid);
        /* the history's <delay/> is not part of the message */
        tern_xml_t *od = tern_xml_child(orig, "delay", NS_DELAY);
        if (od)
            tern_xml_unlink(od);
        tern_xml_copy_into(fwd, orig);
        tern_route(m, msg);
    }
    tern_xml_unref(msg);
    tern_xml_unref(orig);
}

static void iq_reply(tern_module_ctx_t *m, const arch_req_t *q, tern_xml_t *payload,
                     const char *error)
{
    tern_xml_t *iq = tern_xml_new("iq", TERN_NS_CLIENT);
    if (!iq)
        return;
    tern_xml_set_attr(iq, "from", q->room);
    tern_xml_set_attr(iq, "to", q->to);
    tern_xml_set_attr(iq, "id", q->iq_id);
    tern_xml_set_attr(iq, "type", error ? "error" : "result");
    if (error) {
        tern_xml_t *e = tern_xml_add_child(iq, "error", TERN_NS_CLIENT);
        if (e) {
            tern_xml_set_attr(e, "type", "cancel");
            tern_xml_add_child(e, error, "urn:ietf:params:xml:ns:xmpp-stanzas");
        }
    } else if (payload)
        tern_xml_copy_into(iq, payload);
    tern_route(m, iq);
    tern_xml_unref(iq);
}

static void on_read(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                    const tern_archive_result_t *res)
{
    (void)s;
    arch_req_t *q = ctx;
    if (!res) { /* the session or the module went */
        req_free(q);
        return;
    }
    if (res->rc < 0) {
        iq_reply(m, q, NULL,
                 res->error && strcmp(res->error, "item-not-found") == 0 ? "item-not-found"
                                                                         : "internal-server-error");
        req_free(q);
        return;
    }
    size_t n = (size_t)res->rc;
    int more = n > q->max;
    if (more)
        n = q->max;
    /* A last page was read newest first: send it oldest first. */
    const tern_archive_item_t *first = NULL, *last = NULL;
    for (size_t k = 0; k < n; k++) {
        size_t i = q->last_page ? n - 1 - k : k;
        send_item(m, q, &res->items[i]);
        if (!first)
            first = &res->items[i];
        last = &res->items[i];
    }
    tern_xml_t *fin = tern_xml_new("fin", NS_MAM);
    if (fin) {
        tern_xml_set_attr(fin, "complete", more ? "false" : "true");
        if (q->queryid)
            tern_xml_set_attr(fin, "queryid", q->queryid);
        tern_xml_t *set = tern_xml_add_child(fin, "set", NS_RSM);
        if (set && first) {
            muc_add_text_child(set, "first", NS_RSM, first->id);
            muc_add_text_child(set, "last", NS_RSM, last->id);
        }
        if (set && res->count >= 0) {
            char buf[32];
            snprintf(buf, sizeof(buf), "%ld", res->count);
            muc_add_text_child(set, "count", NS_RSM, buf);
        }
    }
    iq_reply(m, q, fin, NULL);
    tern_xml_unref(fin);
    req_free(q);
}

/* The value of field `var` of the query's form, or NULL. */
static const char *field(tern_xml_t *query, const char *var)
{
    tern_xml_t *x = tern_xml_child(query, "x", NS_DATA);
    return x ? form_value(x, var) : NULL;
}

static const char *rsm_text(tern_xml_t *set, const char *name, int *present)
{
    tern_xml_t *e = set ? tern_xml_child(set, name, NS_RSM) : NULL;
    if (present)
        *present = e != NULL;
    return e ? tern_xml_text(e) : NULL;
}

int muc_on_mam_query(tern_module_ctx_t *m, tern_event_t *ev)
{
    muc_t *mu = muc_get(m);
    muc_room_t *r = room_find(mu, ev->to->local);
    if (ev->to->resource || !r || (r->locked && room_aff(mu, r, ev->from->bare) != AFF_OWNER)) {
        tern_reply_error(m, ev, "cancel", "item-not-found", "No such room");
        return TERN_HANDLED;
    }
    int aff = room_aff(mu, r, ev->from->bare);
    int occupant = occ_by_full(r, ev->from->full) != NULL;
    if (aff == AFF_OUTCAST ||
        (r->cfg.members_only ? aff < AFF_MEMBER : !occupant && aff < AFF_MEMBER)) {
        tern_reply_error(m, ev, "auth", "forbidden",
                         r->cfg.members_only ? "Only members may read this room's archive"
                                             : "Only occupants may read this room's archive");
        return TERN_HANDLED;
    }
    if (!archive_enabled(mu, r)) {
        tern_reply_error(m, ev, "cancel", "feature-not-implemented", "This room keeps no archive");
        return TERN_HANDLED;
    }
    tern_xml_t *query = tern_xml_first_element(ev->stanza);
    tern_xml_t *set = tern_xml_child(query, "set", NS_RSM);
    const char *smax = rsm_text(set, "max", NULL);
    long max = smax && *smax ? strtol(smax, NULL, 10) : DEF_PAGE;
    if (max < 0 || max > MAX_PAGE)
        max = MAX_PAGE;
    int has_before = 0;
    const char *after = rsm_text(set, "after", NULL);
    const char *before = rsm_text(set, "before", &has_before);
    const char *start = field(query, "start"), *end = field(query, "end");
    tern_archive_query_t aq = {
        .with = field(query, "with"),
        .start_us = start ? parse_time(start) : 0,
        .end_us = end ? parse_time(end) : 0,
        .after_id = after && *after ? after : NULL,
        .before_id = before && *before ? before : NULL,
        .limit = (unsigned)max + 1,
        .reverse = has_before, /* RSM §2.5: <before/> pages back from the end */
    };
    if (aq.start_us < 0 || aq.end_us < 0) {
        tern_reply_error(m, ev, "modify", "bad-request", "Bad time in the query");
        return TERN_HANDLED;
    }
    arch_req_t *q = calloc(1, sizeof(*q));
    const char *qid = tern_xml_attr(query, "queryid");
    if (q) {
        q->room = strdup(r->jid);
        q->to = strdup(ev->from->full);
        q->iq_id = strdup(tern_xml_attr(ev->stanza, "id") ? tern_xml_attr(ev->stanza, "id") : "");
        q->queryid = qid ? strdup(qid) : NULL;
        q->max = (unsigned)max;
        q->last_page = has_before;
    }
    if (!q || !q->room || !q->to || !q->iq_id || (qid && !q->queryid)) {
        req_free(q);
        tern_reply_error(m, ev, "wait", "resource-constraint", NULL);
        return TERN_HANDLED;
    }
    tern_archive_query_t cq = aq;
    cq.after_id = cq.before_id = NULL;
    cq.limit = 0;
    cq.reverse = 0;
    tern_archive_count_t count = {.q = &cq, .max = 0, .index_of = 0};
    tern_session_t *s = tern_session_find(m, ev->from->full);
    if (tern_archive_query_async(m, s, mu->archive, r->jid, &aq, &count, on_read, q) != 0) {
        req_free(q);
        tern_reply_error(m, ev, "wait", "internal-server-error", NULL);
    }
    return TERN_HANDLED;
}

/* The newest items of an archive, newest first (parsed, without <delay/>). */
typedef struct fill {
    muc_room_t *r;
    tern_xml_t **msgs;
    int64_t *when;
    size_t n;
} fill_t;

static int keep_item(void *ctx, const tern_archive_item_t *it)
{
    fill_t *f = ctx;
    tern_xml_t *msg = tern_xml_parse(it->data, it->len);
    if (msg) {
        tern_xml_t *d = tern_xml_child(msg, "delay", NS_DELAY);
        if (d)
            tern_xml_unlink(d);
        f->msgs[f->n] = msg;
        f->when[f->n++] = it->when_us;
    }
    return f->n == f->r->hist_cap;
}

static int fill_one(void *ctx, const char *key, void *value)
{
    (void)key;
    muc_t *mu = ctx;
    muc_room_t *r = value;
    if (!archive_enabled(mu, r) || !r->hist_cap || r->hist_n)
        return 0;
    fill_t f = {.r = r,
                .msgs = calloc(r->hist_cap, sizeof(*f.msgs)),
                .when = calloc(r->hist_cap, sizeof(*f.when))};
    if (f.msgs && f.when) {
        tern_archive_query_t q = {.limit = (unsigned)r->hist_cap, .reverse = 1};
        tern_archive_query(mu->archive, r->jid, &q, keep_item, &f);
        for (size_t i = f.n; i > 0; i--) { /* oldest first */
            history_push(r, f.msgs[i - 1], f.when[i - 1]);
            tern_xml_unref(f.msgs[i - 1]);
        }
    }
    free(f.msgs);
    free(f.when);
    return 0;
}

/* At load, on the loop: a few dozen small reads per archived room, once. */
void archive_fill_histories(muc_t *mu)
{
    if (mu->archive && mu->archive_on)
        tern_table_foreach(mu->rooms, fill_one, mu);
}
