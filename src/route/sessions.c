/*
 * sessions.c — the tables of bound sessions: full JID -> session and
 * bare JID -> the user's sessions.
 */
#include "route/sessions.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "util/log.h"
#include "route/host.h"

typedef struct session_slot {
    struct session_slot *next;
    const tern_module_ctx_t *owner;
    void *data;
    void (*free_fn)(void *);
} session_slot_t;

static hashmap_t *by_full;
static hashmap_t *by_bare;

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

void sessions_free_all(void)
{
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
        old->close(old, "conflict");
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
