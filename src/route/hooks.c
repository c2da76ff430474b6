/*
 * hooks.c — the event table of one host: name -> sorted handler list.
 *
 * Event names are hashed with FNV-1a, not the keyed hash of hashmap.c:
 * the table holds only names that modules registered, so a name chosen
 * by a remote party (an iq payload's namespace) can at worst land in the
 * bucket of a few registered events and cost a few compares; it cannot
 * grow a chain.  FNV-1a is fed byte by byte, so a name given in parts
 * hashes as cheaply as a whole one.
 */
#include "route/hooks.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct handler {
    struct handler *next;
    tern_handler_fn fn;
    int priority;
    tern_module_ctx_t *owner;
} handler_t;

struct hooks_event {
    struct hooks_event *next;
    uint64_t hash;
    handler_t *handlers;
    char name[];
};
typedef struct hooks_event event_t;

struct hooks {
    struct hooks_event *buckets[256];
    struct hooks_event *slots[HOOKS_SLOTS]; /* hooks_fire_slot, interned on first use */
};

#define BUCKET(hash) ((hash)&255u)

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME  1099511628211ULL

/* FNV-1a of the NUL-terminated `s`, continuing from `h`. */
static uint64_t fnv_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * FNV_PRIME;
    return h;
}

static uint64_t event_hash(const char *name)
{
    return fnv_str(FNV_OFFSET, name);
}

/* Is the `len` bytes at s one of the words of list? */
static int word_in(const char *s, size_t len, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == len && memcmp(s, *list, len) == 0)
            return 1;
    return 0;
}

/* NS:NAME of an iq payload: NAME after the last ':', both non-empty, no
 * '/' in NAME, no space or control character anywhere. */
static int payload_valid(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || colon[1] == '\0' || strchr(colon, '/'))
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

int hooks_event_valid(const char *event)
{
    static const char *const fixed[] = {"message/offline",
                                        "session/bound",
                                        "session/closed",
                                        "session/detached",
                                        "session/resumed",
                                        "session/idle",
                                        "user/created",
                                        "user/deleted",
                                        "server/started",
                                        "server/stopping",
                                        "stream-features/unauth",
                                        "stream-features/auth",
                                        "session/in",
                                        "session/out",
                                        NULL};
    static const char *const kinds[] = {"message", "presence", "iq", NULL};
    static const char *const dests[] = {"host", "bare", "full", "self", NULL};
    static const char *const in_dests[] = {"bare", "full", NULL};
    static const char *const iq_dests[] = {"host", "bare", "full", "self", "unauth", NULL};
    if (!event)
        return 0;
    for (size_t i = 0; fixed[i]; i++)
        if (strcmp(event, fixed[i]) == 0)
            return 1;
    const char *slash = strchr(event, '/');
    if (!slash)
        return 0;
    size_t kind_len = (size_t)(slash - event);
    const char *dest = slash + 1;
    if (kind_len == 6 && memcmp(event, "stream", 6) == 0)
        return payload_valid(dest); /* stream/NS:NAME */
    if ((kind_len == 6 && memcmp(event, "iq-get", 6) == 0) ||
        (kind_len == 6 && memcmp(event, "iq-set", 6) == 0)) {
        const char *end = strchr(dest, '/');
        return end && word_in(dest, (size_t)(end - dest), iq_dests) && payload_valid(end + 1);
    }
    const char *const *allowed = dests;
    if (strncmp(event, "pre-", 4) == 0) {
        event += 4;
        kind_len -= 4;
    } else if (strncmp(event, "in-", 3) == 0) {
        event += 3;
        kind_len -= 3;
        allowed = in_dests;
    }
    return word_in(event, kind_len, kinds) && word_in(dest, strlen(dest), allowed);
}

hooks_t *hooks_new(void)
{
    return calloc(1, sizeof(hooks_t));
}

void hooks_free(hooks_t **hp)
{
    hooks_t *h = *hp;
    if (!h)
        return;
    for (size_t i = 0; i < 256; i++) {
        event_t *e = h->buckets[i];
        while (e) {
            event_t *next = e->next;
            handler_t *hd = e->handlers;
            while (hd) {
                handler_t *hn = hd->next;
                free(hd);
                hd = hn;
            }
            free(e);
            e = next;
        }
    }
    free(h);
    *hp = NULL;
}

static event_t *find_event(const hooks_t *h, const char *name, uint64_t hash)
{
    for (event_t *e = h->buckets[BUCKET(hash)]; e; e = e->next)
        if (e->hash == hash && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* The entry of `name`, made without handlers when absent; NULL when out
 * of memory.  Entries live until hooks_free. */
static event_t *intern_event(hooks_t *h, const char *name)
{
    uint64_t hash = event_hash(name);
    event_t *e = find_event(h, name, hash);
    if (!e) {
        size_t len = strlen(name);
        e = calloc(1, sizeof(*e) + len + 1);
        if (!e)
            return NULL;
        memcpy(e->name, name, len + 1);
        e->hash = hash;
        e->next = h->buckets[BUCKET(hash)];
        h->buckets[BUCKET(hash)] = e;
    }
    return e;
}

hooks_event_t *hooks_event(hooks_t *h, const char *name)
{
    return intern_event(h, name);
}

int hooks_add(hooks_t *h, const char *name, tern_handler_fn fn, int priority,
              tern_module_ctx_t *owner)
{
    event_t *e = intern_event(h, name);
    if (!e)
        return -1;
    handler_t *hd = calloc(1, sizeof(*hd));
    if (!hd)
        return -1;
    hd->fn = fn;
    hd->priority = priority;
    hd->owner = owner;
    handler_t **p = &e->handlers;
    while (*p && (*p)->priority >= priority)
        p = &(*p)->next;
    hd->next = *p;
    *p = hd;
    return 0;
}

void hooks_remove_owner(hooks_t *h, tern_module_ctx_t *owner)
{
    for (size_t i = 0; i < 256; i++)
        for (event_t *e = h->buckets[i]; e; e = e->next) {
            handler_t **p = &e->handlers;
            while (*p) {
                if ((*p)->owner == owner) {
                    handler_t *dead = *p;
                    *p = dead->next;
                    free(dead);
                } else {
                    p = &(*p)->next;
                }
            }
        }
}

/* Does `name` equal parts joined by seps? */
static int name_matches(const char *name, const char *const *parts, int n, const char *seps)
{
    for (int i = 0; i < n; i++) {
        for (const char *p = parts[i]; *p; p++, name++)
            if (*name != *p)
                return 0;
        if (i + 1 < n) {
            if (*name != seps[i])
                return 0;
            name++;
        }
    }
    return *name == '\0';
}

/* Run the handlers from `hd` on until one takes the event. */
static int run_from(handler_t *hd, tern_event_t *ev)
{
    for (; hd; hd = hd->next)
        if (hd->fn(hd->owner, ev) == TERN_HANDLED)
            return TERN_HANDLED;
    return TERN_PASS;
}

static int run(event_t *e, tern_event_t *ev)
{
    return run_from(e->handlers, ev);
}

int hooks_event_hooked(const hooks_event_t *e)
{
    return e && e->handlers;
}

int hooks_event_fire(const hooks_event_t *e, tern_event_t *ev)
{
    return e && e->handlers ? run_from(e->handlers, ev) : TERN_PASS;
}

int hooks_fire_after(hooks_t *h, const char *name, const tern_module_ctx_t *owner, tern_event_t *ev)
{
    event_t *e = find_event(h, name, event_hash(name));
    if (!e)
        return TERN_PASS;
    handler_t *start = e->handlers;
    for (handler_t *hd = e->handlers; hd; hd = hd->next)
        if (hd->owner == owner) {
            start = hd->next;
            break;
        }
    return run_from(start, ev);
}

int hooks_fire_parts(hooks_t *h, const char *const *parts, int n, const char *seps,
                     tern_event_t *ev)
{
    /* The hash of the joined name, fed in pieces. */
    uint64_t hash = FNV_OFFSET;
    for (int i = 0; i < n; i++) {
        hash = fnv_str(hash, parts[i]);
        if (i + 1 < n)
            hash = (hash ^ (unsigned char)seps[i]) * FNV_PRIME;
    }
    for (event_t *e = h->buckets[BUCKET(hash)]; e; e = e->next)
        if (e->hash == hash && name_matches(e->name, parts, n, seps))
            return run(e, ev);
    return TERN_PASS;
}

int hooks_fire_slot(hooks_t *h, unsigned slot, const char *a, const char *b, tern_event_t *ev)
{
    event_t *e = slot < HOOKS_SLOTS ? h->slots[slot] : NULL;
    if (!e) {
        const char *parts[2] = {a, b};
        size_t la = strlen(a), lb = strlen(b);
        char *name = malloc(la + lb + 2);
        if (name) {
            memcpy(name, a, la);
            name[la] = '/';
            memcpy(name + la + 1, b, lb + 1);
            e = intern_event(h, name);
            free(name);
        }
        if (!e || slot >= HOOKS_SLOTS)
            return hooks_fire_parts(h, parts, 2, "/", ev);
        h->slots[slot] = e;
    }
    return e->handlers ? run(e, ev) : TERN_PASS;
}

int hooks_fire(hooks_t *h, const char *name, tern_event_t *ev)
{
    event_t *e = find_event(h, name, event_hash(name));
    return e ? run(e, ev) : TERN_PASS;
}

int hooks_has(hooks_t *h, const char *name)
{
    event_t *e = find_event(h, name, event_hash(name));
    return e && e->handlers;
}
