/*
 * sessions.c — session objects, their link to a stream and the queue that
 * holds their stanzas while they have none, and the tables of bound
 * sessions: full JID -> session and bare JID -> the user's sessions.
 *
 * Must not: know about sockets or streams (only the link's callbacks), or
 * route stanzas itself: what a detached session cannot take goes to the
 * host's message/offline event or back to the sender as an error.
 */
#include "route/sessions.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "util/log.h"
#include "route/hooks.h"
#include "route/host.h"
#include "route/router.h"
#include "xmpp/stanza.h"

typedef struct session_slot {
    struct session_slot *next;
    const tern_module_ctx_t *owner;
    void *data;
    void (*free_fn)(void *);
} session_slot_t;

typedef struct queued {
    struct queued *next;
    tern_xml_t *stanza; /* our reference */
    size_t bytes;
} queued_t;

struct session_queue {
    queued_t *head, *tail;
    size_t count, bytes;
};

static hashmap_t *by_full;
static hashmap_t *by_bare;
static size_t n_detached;
static size_t queue_max = 256;
static size_t queue_max_bytes = 256 * 1024;

int sessions_init(void)
{
    by_full = hashmap_new();
    by_bare = hashmap_new();
    return by_full && by_bare ? 0 : -1;
}

static int free_user(void *ctx, const char *key, void *value)
{
    user_sessions_t *u = value;
    free(u->bare);
    free(u);
    return 0;
}

static void queue_free(session_queue_t **qp);
static void session_free(tern_session_t *s);

/* At shutdown: detached sessions are the table's to free. */
static int free_detached(void *ctx, const char *key, void *value)
{
    tern_session_t *s = value;
    if (s->detached) {
        queue_free(&s->queue);
        sessions_free_slots(s);
        session_free(s);
    }
    return 0;
}

void sessions_free_all(void)
{
    if (by_full)
        hashmap_foreach(by_full, free_detached, NULL);
    n_detached = 0;
    if (by_bare)
        hashmap_foreach(by_bare, free_user, NULL);
    hashmap_free(&by_full);
    hashmap_free(&by_bare);
}

tern_session_t *sessions_find_full(const char *full)
{
    return hashmap_get(by_full, full);
}

user_sessions_t *sessions_find_bare(const char *bare)
{
    return hashmap_get(by_bare, bare);
}

size_t sessions_count(void)
{
    return by_full ? hashmap_count(by_full) : 0;
}

/* A random resource: 12 characters from RAND_bytes. */
static void random_resource(char *buf, size_t len)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[16];
    RAND_bytes(rnd, sizeof(rnd));
    size_t n = len - 1 < 12 ? len - 1 : 12;
    for (size_t i = 0; i < n; i++)
        buf[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    buf[n] = '\0';
}

int sessions_bind(tern_session_t *s, const char *local, const char *resource, cfg_conflict_t policy,
                  size_t max_per_user, const char **error_r)
{
    char generated[16];
    if (!resource || !*resource) {
        random_resource(generated, sizeof(generated));
        resource = generated;
    }
    const char *why = NULL;
    tern_jid_t *jid = tern_jid_from_parts(local, s->host->name, resource, &why);
    if (!jid) {
        *error_r = "bad-request";
        return -1;
    }
    tern_session_t *old = hashmap_get(by_full, jid->full);
    if (old && old->detached) {
        /* Its client is gone: most likely it is this one, back without
         * resuming.  The old session ends (its queue goes undelivered). */
        log_info("resource conflict on %s: ending the detached session", jid->full);
        sessions_end(&old);
    }
    if (old && policy == CONFLICT_REFUSE) {
        tern_jid_free(&jid);
        *error_r = "conflict";
        return -1;
    }
    /* RFC 6120 §7.6.2.1: the account has reached its limit of connected
     * resources.  A kick-old replacement does not add one. */
    user_sessions_t *have = hashmap_get(by_bare, jid->bare);
    if (!old && max_per_user && have && have->count >= max_per_user) {
        log_info("%s: refused, %s already has %zu sessions (limits.max_sessions_per_user)",
                 jid->full, jid->bare, have->count);
        tern_jid_free(&jid);
        *error_r = "resource-constraint";
        return -1;
    }
    if (old) {
        /* RFC 6120 §7.7.2.2: the server terminates the older session. */
        log_info("resource conflict on %s: closing the older session", jid->full);
        old->link.close(old, "conflict");
        sessions_unbind(old);
    }
    user_sessions_t *u = hashmap_get(by_bare, jid->bare);
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u || !(u->bare = strdup(jid->bare)) || hashmap_put(by_bare, u->bare, u) < 0) {
            if (u)
                free(u->bare);
            free(u);
            tern_jid_free(&jid);
            *error_r = "internal-server-error";
            return -1;
        }
    }
    if (hashmap_put(by_full, jid->full, s) < 0) {
        tern_jid_free(&jid);
        *error_r = "internal-server-error";
        return -1;
    }
    static uint64_t next_serial;
    s->serial = ++next_serial;
    s->jid = jid;
    s->user = u;
    s->next_of_user = u->first;
    u->first = s;
    u->count++;
    return 0;
}

void sessions_unbind(tern_session_t *s)
{
    if (!s->jid)
        return;
    if (s->detached)
        n_detached--;
    if (hashmap_get(by_full, s->jid->full) == s)
        hashmap_remove(by_full, s->jid->full);
    user_sessions_t *u = s->user;
    if (u) {
        tern_session_t **p = &u->first;
        while (*p && *p != s)
            p = &(*p)->next_of_user;
        if (*p)
            *p = s->next_of_user;
        if (--u->count == 0) {
            hashmap_remove(by_bare, u->bare);
            free(u->bare);
            free(u);
        }
    }
    s->user = NULL;
    s->next_of_user = NULL;
    sessions_free_slots(s);
    tern_jid_free(&s->jid);
}

size_t sessions_count_detached(void)
{
    return n_detached;
}

tern_session_t *sessions_new(struct host *host, const session_link_t *link, const char *peer_ip)
{
    tern_session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->host = host;
    if (link)
        s->link = *link;
    if (peer_ip)
        snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", peer_ip);
    return s;
}

static void session_free(tern_session_t *s)
{
    tern_jid_free(&s->jid);
    free(s);
}

static void queue_free(session_queue_t **qp)
{
    session_queue_t *q = *qp;
    if (!q)
        return;
    while (q->head) {
        queued_t *e = q->head;
        q->head = e->next;
        tern_xml_unref(e->stanza);
        free(e);
    }
    free(q);
    *qp = NULL;
}

/* A stanza the session could not take (see sessions_detach for the rules).
 * `st` is borrowed. */
static void undelivered(tern_session_t *s, tern_xml_t *st)
{
    stanza_kind_t kind = stanza_kind(st);
    const char *type = stanza_type(st);
    if (kind == STANZA_MESSAGE && (strcmp(type, "normal") == 0 || strcmp(type, "chat") == 0)) {
        /* RFC 6121 §8.5.3.2.1: the user's other available resources of
         * non-negative priority, if any, take it. */
        int given = 0;
        for (tern_session_t *o = s->user ? s->user->first : NULL; o; o = o->next_of_user)
            if (o != s && !o->detached && o->available && o->priority >= 0) {
                sessions_deliver(o, st);
                given = 1;
            }
        if (given)
            return;
        const char *from_s = tern_xml_attr(st, "from");
        const char *to_s = tern_xml_attr(st, "to");
        tern_jid_t *from = from_s ? tern_jid_new(from_s, NULL) : NULL;
        tern_jid_t *to = to_s ? tern_jid_new(to_s, NULL) : NULL;
        int handled = 0;
        if (from && to && to->local && s->host && strcmp(to->domain, s->host->name) == 0) {
            tern_event_t ev = {.stanza = st, .from = from, .to = to};
            handled = hooks_fire(s->host->hooks, "message/offline", &ev) == TERN_HANDLED;
        }
        tern_jid_free(&from);
        tern_jid_free(&to);
        if (!handled)
            router_bounce(st, "cancel", "service-unavailable", NULL);
    } else if ((kind == STANZA_MESSAGE && strcmp(type, "groupchat") == 0) ||
               (kind == STANZA_IQ && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0))) {
        router_bounce(st, "cancel", "service-unavailable", NULL);
    }
}

void sessions_undelivered(tern_session_t *s, tern_xml_t *stanza)
{
    undelivered(s, stanza);
}

/* About the serialized size of `st`: names, attributes and text. */
static size_t stanza_bytes(const tern_xml_t *st)
{
    size_t n = 0;
    const tern_xml_t *x = st;
    for (;;) {
        if (x->name) {
            n += 2 * strlen(x->name) + 5;
            for (const tern_xml_attr_t *at = x->attrs; at; at = at->next)
                n += strlen(at->name) + strlen(at->value) + 4;
        } else {
            n += x->text_len;
        }
        if (x->name && x->children) {
            x = x->children;
            continue;
        }
        while (x != st && !x->next)
            x = x->parent;
        if (x == st)
            return n;
        x = x->next;
    }
}

/* Queue `st` (borrowed) on detached `s`, making room by sending the oldest
 * the undelivered way. */
static void enqueue(tern_session_t *s, tern_xml_t *st)
{
    size_t bytes = stanza_bytes(st);
    if (!s->jid || bytes > queue_max_bytes) {
        undelivered(s, st);
        return;
    }
    if (!s->queue && !(s->queue = calloc(1, sizeof(*s->queue)))) {
        undelivered(s, st);
        return;
    }
    queued_t *e = malloc(sizeof(*e));
    if (!e) {
        undelivered(s, st);
        return;
    }
    session_queue_t *q = s->queue;
    while (q->head && (q->count + 1 > queue_max || q->bytes + bytes > queue_max_bytes)) {
        queued_t *old = q->head;
        q->head = old->next;
        if (!q->head)
            q->tail = NULL;
        q->count--;
        q->bytes -= old->bytes;
        undelivered(s, old->stanza);
        tern_xml_unref(old->stanza);
        free(old);
    }
    e->next = NULL;
    e->stanza = tern_xml_ref(st);
    e->bytes = bytes;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->count++;
    q->bytes += bytes;
}

void sessions_set_queue_limits(size_t max_stanzas, size_t max_bytes)
{
    if (max_stanzas)
        queue_max = max_stanzas;
    if (max_bytes)
        queue_max_bytes = max_bytes;
}

size_t sessions_queued(const tern_session_t *s, size_t *bytes_r)
{
    if (bytes_r)
        *bytes_r = s->queue ? s->queue->bytes : 0;
    return s->queue ? s->queue->count : 0;
}

void sessions_deliver(tern_session_t *s, tern_xml_t *stanza)
{
    if (s->detached)
        enqueue(s, stanza);
    else
        s->link.deliver(s, stanza);
}

void sessions_send(tern_session_t *s, tern_xml_t *stanza)
{
    if (s->detached)
        enqueue(s, stanza);
    else if (s->link.send)
        s->link.send(s, stanza);
    else
        s->link.deliver(s, stanza);
}

void sessions_close(tern_session_t *s, const char *condition)
{
    if (s->detached)
        sessions_end(&s);
    else
        s->link.close(s, condition);
}

int sessions_hold_input(tern_session_t *s)
{
    if (s == NULL || s->detached || s->link.hold == NULL || s->link.release == NULL)
        return 0;
    s->link.hold(s);
    return 1;
}

void sessions_release_input(tern_session_t *s)
{
    if (s != NULL && !s->detached && s->link.release != NULL)
        s->link.release(s);
}

static void fire(tern_session_t *s, const char *event)
{
    if (!s->host)
        return;
    tern_event_t ev = {.session = s, .from = s->jid};
    hooks_fire(s->host->hooks, event, &ev);
}

int sessions_detach(tern_session_t *s)
{
    if (!s->jid || s->detached)
        return -1;
    s->detached = 1;
    memset(&s->link, 0, sizeof(s->link));
    n_detached++;
    log_info("session %s detached from its stream", s->jid->full);
    fire(s, "session/detached");
    return 0;
}

int sessions_attach(tern_session_t *s, const session_link_t *link)
{
    if (!s->detached || !s->jid || !link || !link->deliver || !link->close)
        return -1;
    s->detached = 0;
    s->link = *link;
    n_detached--;
    log_info("session %s attached to a new stream", s->jid->full);
    /* Flushed from a list of our own: if the new stream goes away while
     * it writes (and the session is detached again), the rest queues. */
    session_queue_t *q = s->queue;
    s->queue = NULL;
    while (q && q->head) {
        queued_t *e = q->head;
        q->head = e->next;
        sessions_send(s, e->stanza);
        tern_xml_unref(e->stanza);
        free(e);
    }
    free(q);
    fire(s, "session/resumed");
    return 0;
}

void sessions_end(tern_session_t **sp)
{
    tern_session_t *s = *sp;
    if (!s)
        return;
    *sp = NULL;
    if (s->jid)
        fire(s, "session/closed");
    /* While still bound, so that the user's other sessions are found
     * (and after what session/closed handlers sent the undelivered way,
     * which came first). */
    session_queue_t *q = s->queue;
    s->queue = NULL;
    while (q && q->head) {
        queued_t *e = q->head;
        q->head = e->next;
        undelivered(s, e->stanza);
        tern_xml_unref(e->stanza);
        free(e);
    }
    free(q);
    if (s->jid)
        sessions_unbind(s);
    queue_free(&s->queue); /* anything given to it meanwhile: too late */
    sessions_free_slots(s);
    session_free(s);
}

/* Every session, bound or not, that holds module data: a module that goes
 * away drops its data from each of them. */
static tern_session_t *slotted;

static void slotted_add(tern_session_t *s)
{
    s->slotted_prev = NULL;
    s->slotted_next = slotted;
    if (slotted)
        slotted->slotted_prev = s;
    slotted = s;
}

static void slotted_remove(tern_session_t *s)
{
    if (s->slotted_prev)
        s->slotted_prev->slotted_next = s->slotted_next;
    else if (slotted == s)
        slotted = s->slotted_next;
    if (s->slotted_next)
        s->slotted_next->slotted_prev = s->slotted_prev;
    s->slotted_prev = s->slotted_next = NULL;
}

void *sessions_slot_get(const tern_session_t *s, const tern_module_ctx_t *owner)
{
    for (const session_slot_t *sl = s->slots; sl; sl = sl->next)
        if (sl->owner == owner)
            return sl->data;
    return NULL;
}

int sessions_slot_set(tern_session_t *s, const tern_module_ctx_t *owner, void *data,
                      void (*free_fn)(void *))
{
    session_slot_t *sl = s->slots;
    while (sl && sl->owner != owner)
        sl = sl->next;
    if (!sl) {
        sl = calloc(1, sizeof(*sl));
        if (!sl)
            return -1;
        sl->owner = owner;
        if (!s->slots)
            slotted_add(s);
        sl->next = s->slots;
        s->slots = sl;
    } else if (sl->free_fn && sl->data && sl->data != data) {
        sl->free_fn(sl->data);
    }
    sl->data = data;
    sl->free_fn = free_fn;
    return 0;
}

void *sessions_slot_take(tern_session_t *s, const tern_module_ctx_t *owner)
{
    session_slot_t **p = &s->slots;
    while (*p && (*p)->owner != owner)
        p = &(*p)->next;
    session_slot_t *sl = *p;
    if (!sl)
        return NULL;
    void *data = sl->data;
    *p = sl->next;
    free(sl);
    if (!s->slots)
        slotted_remove(s);
    return data;
}

void sessions_free_slots(tern_session_t *s)
{
    if (s->slots)
        slotted_remove(s);
    while (s->slots) {
        session_slot_t *sl = s->slots;
        s->slots = sl->next;
        if (sl->free_fn && sl->data)
            sl->free_fn(sl->data);
        free(sl);
    }
}

void sessions_drop_owner(const tern_module_ctx_t *owner)
{
    tern_session_t *next;
    for (tern_session_t *s = slotted; s; s = next) {
        next = s->slotted_next;
        session_slot_t **p = &s->slots;
        while (*p) {
            session_slot_t *sl = *p;
            if (sl->owner == owner) {
                *p = sl->next;
                if (sl->free_fn && sl->data)
                    sl->free_fn(sl->data);
                free(sl);
            } else {
                p = &sl->next;
            }
        }
        if (!s->slots)
            slotted_remove(s);
    }
}
