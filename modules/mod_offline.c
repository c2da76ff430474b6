/*
 * mod_offline — offline message storage (XEP-0160), with XEP-0203 delay
 * stamps and XEP-0334 hints.
 *
 * Owns what happens to a message the core could not deliver: the core fires
 * "message/offline" for a normal or chat message to an account with no
 * available resource of non-negative priority (RFC 6121 §8.5.2.1.1, and
 * §8.5.3.2.1 for a full JID that fell back to the bare JID).  This module
 * then either stores the message (returns HANDLED), drops it silently
 * (HANDLED, nothing stored), or passes (the core bounces it with
 * service-unavailable, so the sender learns it was not kept):
 *   - types error, groupchat and headline are never stored (XEP-0160 §3);
 *     the core does not fire the event for them, and this module passes;
 *   - a message with nothing for a user who comes back later (only chat
 *     states, XEP-0085 §5.8, and such markers as <thread/>, receipt
 *     requests, <markable/>, stanza ids, hints, delays): dropped silently,
 *     unless it carries <store xmlns='urn:xmpp:hints'/> (XEP-0334 §4.4);
 *     with <no-store/> too (nothing was lost, so no error either);
 *   - <no-store xmlns='urn:xmpp:hints'/> (XEP-0334 §4.2): pass;
 *     <no-permanent-store/> does not forbid this temporary storage;
 *   - a full queue (option max_messages, XEP-0160 §2 step 3): pass;
 *   - anything else is stored: a body (so a XEP-0308 correction), a
 *     subject, a XEP-0184 receipt or XEP-0333 chat marker, an encrypted
 *     payload, and any payload this module does not know.
 * Storage is one archive item per message in the "offline" archive store
 * (with = the sender's bare JID), written before the event returns: the
 * store commits at once, so a message the server has taken survives a
 * crash of the server.
 *
 * Delivery (XEP-0160 §2 step 5): the first time a session sends broadcast
 * presence that makes it available with non-negative priority, the stored
 * messages are read off the event loop (tern_archive_query_async) and,
 * once read, go to that session, oldest first, exactly as they were
 * received plus <delay/>; each is deleted once handed to the session.  So
 * they arrive after the presence was handled (broadcast, probes) and after
 * the answer to anything the session asked for before (a roster).  A
 * session that goes unavailable or negative, before or after, gets the
 * same chance again when it comes back.
 *
 * Must not: deliver to a negative-priority session (RFC 6121 §8.5.2.2), or
 * delete a message that was not handed to a still-bound session.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>
#include <time.h>

#include "hints.h"

#define NS_DELAY      "urn:xmpp:delay"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_RECEIPTS   "urn:xmpp:receipts"
#define NS_MARKERS    "urn:xmpp:chat-markers:0"
#define NS_SID        "urn:xmpp:sid:0"

#define MAX_ITEM_ID 64 /* longest stanza id kept as the archive item id */

/* Module data. */
typedef struct offline {
    tern_store_t *store;
    long max_messages;
    unsigned long long ids;    /* for generated item ids */
    struct inflight *inflight; /* users whose messages are being read */
} offline_t;

static const tern_option_t options[] = {
    {.name = "max_messages",
     .type = TERN_OPT_INT,
     .def = "500",
     .doc = "Most messages kept for one user. Beyond it, senders get "
            "`service-unavailable`.",
     .min = 1,
     .max = 1000000},
    {.name = NULL},
};

/* The value of a session slot once the session had its messages, and
 * while they are being read for it. */
static char delivered_mark, pending_mark;

/* XEP-0160 §3: only normal (or no type) and chat messages are stored. */
static int storable_type(const tern_xml_t *st)
{
    const char *type = tern_xml_attr(st, "type");
    return type == NULL || strcmp(type, "normal") == 0 || strcmp(type, "chat") == 0;
}

/* Whether `el` is worth nothing to a user who reads it later on its own:
 * XEP-0085 chat states, <thread/>, XEP-0334 hints, XEP-0359 ids, a
 * XEP-0184 <request/>, a XEP-0333 <markable/>, a XEP-0203 delay. */
static int transient_child(const tern_xml_t *el)
{
    const char *ns = el->ns != NULL ? el->ns : "";
    return strcmp(ns, NS_CHATSTATES) == 0 || strcmp(ns, TERN_NS_HINTS) == 0 ||
           strcmp(ns, NS_SID) == 0 || strcmp(ns, NS_DELAY) == 0 ||
           tern_xml_is(el, "thread", TERN_NS_CLIENT) || tern_xml_is(el, "request", NS_RECEIPTS) ||
           tern_xml_is(el, "markable", NS_MARKERS);
}

/* Whether the message carries anything beyond transient children (a body,
 * a subject, a receipt, a marker, an encrypted payload, any other payload). */
static int has_content(const tern_xml_t *st)
{
    for (const tern_xml_t *el = tern_xml_first_element(st); el != NULL;
         el = tern_xml_next_element(el))
        if (!transient_child(el))
            return 1;
    return 0;
}

/* XEP-0082 date-time in UTC with milliseconds: "2024-05-01T10:00:00.123Z". */
static void format_stamp(int64_t when_us, char *buf, size_t size)
{
    time_t secs = (time_t)(when_us / 1000000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, size, "1970-01-01T00:00:00Z");
        return;
    }
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", date, (int)((when_us % 1000000) / 1000));
}

/* A copy of the message with <delay from=HOST stamp=WHEN>Offline
 * Storage</delay> added (XEP-0160 §2, XEP-0203 §3), or NULL. */
static tern_xml_t *stamped_copy(tern_module_ctx_t *m, const tern_xml_t *st, int64_t when_us)
{
    static const char reason[] = "Offline Storage";
    char stamp[48];
    tern_xml_t *copy = tern_xml_copy(st);
    tern_xml_t *delay = copy != NULL ? tern_xml_add_child(copy, "delay", NS_DELAY) : NULL;
    if (delay == NULL) {
        if (copy != NULL)
            tern_xml_unref(copy);
        return NULL;
    }
    format_stamp(when_us, stamp, sizeof stamp);
    tern_xml_set_attr(delay, "from", tern_host(m));
    tern_xml_set_attr(delay, "stamp", stamp);
    tern_xml_add_text(delay, reason, sizeof reason - 1);
    return copy;
}

/* Append the serialized message to `user`'s queue.  The item id is the
 * stanza's id when it has a short one, else (or when that id is taken) a
 * generated one.  0, or -1 when the store refused it. */
static int store_message(offline_t *o, const char *user, const char *with, const char *stanza_id,
                         int64_t when_us, const char *data, size_t len)
{
    if (stanza_id != NULL && *stanza_id != '\0' && strlen(stanza_id) <= MAX_ITEM_ID &&
        tern_archive_append(o->store, user, stanza_id, when_us, with, data, len) == 0)
        return 0;
    char id[48];
    snprintf(id, sizeof id, "off-%" PRIx64 "-%llx", (uint64_t)when_us, ++o->ids);
    return tern_archive_append(o->store, user, id, when_us, with, data, len);
}

/* "message/offline": store, drop or pass as the file comment says. */
static int on_offline(tern_module_ctx_t *m, tern_event_t *ev)
{
    offline_t *o = tern_get_data(m);
    tern_xml_t *st = ev->stanza;
    const char *user = ev->to->local;
    if (o == NULL || user == NULL || !storable_type(st))
        return TERN_PASS;
    if (!has_content(st) && !hint_store(st))
        return TERN_HANDLED; /* XEP-0085 §5.8, XEP-0160 §3: not stored, no error */
    if (hint_no_store(st))
        return TERN_PASS; /* XEP-0334 §4.2: the sender learns it was not kept */

    long queued = tern_archive_count(o->store, user, NULL);
    if (queued < 0) {
        tern_log(m, TERN_LOG_ERROR, "cannot count the offline messages of %s", user);
        return TERN_PASS;
    }
    if (queued >= o->max_messages) {
        tern_log(m, TERN_LOG_INFO, "offline queue of %s is full (%ld)", user, queued);
        return TERN_PASS; /* XEP-0160 §2 step 3 */
    }

    int64_t when_us = tern_now_us();
    tern_xml_t *copy = stamped_copy(m, st, when_us);
    size_t len = 0;
    char *data = copy != NULL ? tern_xml_to_string(copy, &len) : NULL;
    int rc = -1;
    if (data != NULL)
        rc = store_message(o, user, ev->from->bare, tern_xml_attr(st, "id"), when_us, data, len);
    free(data);
    if (copy != NULL)
        tern_xml_unref(copy);
    if (rc != 0) {
        tern_log(m, TERN_LOG_ERROR, "cannot store an offline message for %s", user);
        return TERN_PASS;
    }
    return TERN_HANDLED;
}

/* One delivery run: the session, how to recognise it later, and the ids
 * of the items handed to it. */
typedef struct delivery {
    tern_module_ctx_t *m;
    tern_session_t *session;
    char *full; /* its full JID: the session's own copy goes when it is unbound */
    char **ids; /* NULL-terminated */
    size_t n, cap;
} delivery_t;

/* A read of a user's messages on its way (tern_archive_query_async). */
typedef struct inflight {
    struct inflight *next, *prev;
    char *user;
    uint64_t serial; /* of the session it is for */
} inflight_t;

/* Whether the session we deliver to is still bound (a slow reader can be
 * closed by a send; what was sent after that never left). */
static int still_bound(const delivery_t *d)
{
    return tern_session_find(d->m, d->full) == d->session;
}

/* Remember `id` as delivered; 0, or -1 when out of memory. */
static int remember(delivery_t *d, const char *id)
{
    if (d->n + 1 >= d->cap) {
        size_t cap = d->cap != 0 ? d->cap * 2 : 32;
        char **ids = realloc(d->ids, cap * sizeof *ids);
        if (ids == NULL)
            return -1;
        d->ids = ids;
        d->cap = cap;
    }
    if ((d->ids[d->n] = strdup(id)) == NULL)
        return -1;
    d->ids[++d->n] = NULL;
    return 0;
}

/* Hand one stored message to the session.  An item that cannot be parsed
 * stays stored (and is logged).  1 when delivery is to stop (the session
 * went away), else 0. */
static int deliver_item(delivery_t *d, const tern_archive_item_t *item)
{
    tern_xml_t *msg = tern_xml_parse(item->data, item->len);
    if (msg == NULL) {
        tern_log(d->m, TERN_LOG_WARN, "offline message %s for %s cannot be read; kept", item->id,
                 d->full);
        return 0;
    }
    tern_session_send(d->session, msg);
    tern_xml_unref(msg);
    if (!still_bound(d))
        return 1; /* not sent: it stays stored */
    if (remember(d, item->id) < 0) {
        tern_log(d->m, TERN_LOG_ERROR, "out of memory delivering offline messages to %s", d->full);
        return 1; /* sent but not remembered: delivered again next time */
    }
    return 0;
}

static const inflight_t *user_in_flight(const offline_t *o, const char *user)
{
    for (const inflight_t *f = o->inflight; f != NULL; f = f->next)
        if (strcmp(f->user, user) == 0)
            return f;
    return NULL;
}

static void inflight_free(offline_t *o, inflight_t *f)
{
    if (o != NULL) { /* NULL: unloaded, the list went with the module's data */
        if (f->prev != NULL)
            f->prev->next = f->next;
        else
            o->inflight = f->next;
        if (f->next != NULL)
            f->next->prev = f->prev;
    }
    free(f->user);
    free(f);
}

/* The user's messages were read (tern_archive_query_async): XEP-0160 §2
 * step 5, send them to `s`, oldest first, then delete those that were
 * sent.  Nothing is sent when the session closed, or went unavailable or
 * negative meanwhile (its slot is no longer the pending mark): the
 * messages stay for the next chance.  The session may be closed by a
 * send (a slow reader): its JID goes then, so it is copied first. */
static void on_read(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                    const tern_archive_result_t *res)
{
    offline_t *o = tern_get_data(m);
    inflight_t *f = ctx;
    const tern_jid_t *jid = s != NULL ? tern_session_jid(s) : NULL;
    if (o == NULL || res == NULL || jid == NULL || tern_session_get(s, m) != &pending_mark) {
        inflight_free(o, f);
        return;
    }
    tern_session_set(s, m, &delivered_mark, NULL);
    if (res->rc < 0)
        tern_log(m, TERN_LOG_ERROR, "cannot read the offline messages of %s", f->user);
    delivery_t d = {.m = m, .session = s, .full = strdup(jid->full)};
    for (int i = 0; d.full != NULL && i < res->rc; i++)
        if (deliver_item(&d, &res->items[i]) != 0)
            break;
    if (d.n > 0) { /* the store logs a failure; the ids are copied */
        tern_archive_query_t q = {.ids = (const char *const *)d.ids};
        if (tern_archive_delete_async(m, NULL, o->store, f->user, &q, NULL, NULL) < 0)
            tern_log(m, TERN_LOG_ERROR, "cannot delete %zu delivered offline messages of %s", d.n,
                     f->user);
        else
            tern_log(m, TERN_LOG_DEBUG, "delivered %zu offline messages to %s", d.n, d.full);
    }
    for (size_t i = 0; i < d.n; i++)
        free(d.ids[i]);
    free(d.ids);
    free(d.full);
    inflight_free(o, f);
}

/* Start reading the stored messages of the session's user off the loop;
 * on_read delivers them.  One read per user at a time: a second session
 * that becomes available meanwhile gets nothing (the first takes all, as
 * when they come one after the other); the same session, back available
 * before its read came, waits for that read. */
static void deliver_all(tern_module_ctx_t *m, offline_t *o, tern_session_t *s, const char *user)
{
    const inflight_t *busy = user_in_flight(o, user);
    if (busy != NULL) {
        int same = busy->serial == tern_session_serial(s);
        tern_session_set(s, m, same ? &pending_mark : &delivered_mark, NULL);
        return;
    }
    inflight_t *f = calloc(1, sizeof *f);
    if (f == NULL || (f->user = strdup(user)) == NULL) {
        free(f);
        tern_log(m, TERN_LOG_ERROR, "out of memory reading the offline messages of %s", user);
        return;
    }
    f->serial = tern_session_serial(s);
    tern_session_set(s, m, &pending_mark, NULL);
    if (tern_archive_query_async(m, s, o->store, user, NULL, NULL, on_read, f) < 0) {
        tern_session_set(s, m, NULL, NULL);
        tern_log(m, TERN_LOG_ERROR, "cannot read the offline messages of %s", user);
        inflight_free(NULL, f);
        return;
    }
    f->next = o->inflight;
    if (o->inflight != NULL)
        o->inflight->prev = f;
    o->inflight = f;
}

/* "pre-presence/self": a session's broadcast presence (the core has already
 * set its availability and priority).  Delivers once per stretch of
 * non-negative availability; never stops the presence. */
static int on_presence(tern_module_ctx_t *m, tern_event_t *ev)
{
    offline_t *o = tern_get_data(m);
    tern_session_t *s = ev->origin;
    const tern_jid_t *jid = s != NULL ? tern_session_jid(s) : NULL;
    if (o == NULL || jid == NULL || jid->local == NULL || tern_xml_attr(ev->stanza, "to") != NULL)
        return TERN_PASS; /* not broadcast presence */
    if (!tern_session_available(s) || tern_session_priority(s) < 0) {
        if (tern_session_get(s, m) != NULL)
            tern_session_set(s, m, NULL, NULL); /* RFC 6121 §8.5.2.2: not now; later again */
        return TERN_PASS;
    }
    if (tern_session_get(s, m) != NULL) /* delivered, or on its way */
        return TERN_PASS;
    deliver_all(m, o, s, jid->local);
    return TERN_PASS;
}

static int load(tern_module_ctx_t *m)
{
    tern_store_t *store = tern_store(m, "offline", TERN_STORE_ARCHIVE);
    if (store == NULL) {
        tern_log(m, TERN_LOG_ERROR, "cannot open the offline store");
        return -1;
    }
    offline_t *o = calloc(1, sizeof *o);
    if (o == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    o->store = store;
    o->max_messages = (long)tern_opt_int(m, "max_messages");
    tern_add_feature(m, "msgoffline"); /* XEP-0160 §4 */
    if (tern_hook(m, "message/offline", on_offline, 0) != 0 ||
        tern_hook(m, "pre-presence/self", on_presence, 10) != 0) {
        free(o);
        return -1;
    }
    tern_set_data(m, o);
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    free(tern_get_data(m));
    tern_set_data(m, NULL);
}

/* A reload changed the options: take the new limit for what comes next. */
static int reconfigure(tern_module_ctx_t *m)
{
    offline_t *st = tern_get_data(m);
    st->max_messages = (long)tern_opt_int(m, "max_messages");
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "offline",
    .description = "Stores messages for offline users and delivers them later (XEP-0160)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
