/*
 * hooks.c — the event table of one host: name -> sorted handler list.
 */
#include "core/hooks.h"

#include <stdlib.h>
#include <string.h>

#include "core/hashmap.h"
#include "core/siphash.h"

typedef struct handler {
    struct handler *next;
    tern_handler_fn fn;
    int priority;
    tern_module_ctx_t *owner;
} handler_t;

typedef struct event {
    struct event *next;
    uint64_t hash;
    handler_t *handlers;
    char name[];
} event_t;

struct hooks {
    event_t *buckets[256];
};

#define BUCKET(hash) ((hash)&255u)

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

int hooks_add(hooks_t *h, const char *name, tern_handler_fn fn, int priority,
              tern_module_ctx_t *owner)
{
    uint64_t hash = hash_str(name);
    event_t *e = find_event(h, name, hash);
    if (!e) {
        size_t len = strlen(name);
        e = calloc(1, sizeof(*e) + len + 1);
        if (!e)
            return -1;
        memcpy(e->name, name, len + 1);
        e->hash = hash;
        e->next = h->buckets[BUCKET(hash)];
        h->buckets[BUCKET(hash)] = e;
    }
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
        size_t len = strlen(parts[i]);
        if (strncmp(name, parts[i], len) != 0)
            return 0;
        name += len;
        if (i + 1 < n) {
            if (*name != seps[i])
                return 0;
            name++;
        }
    }
    return *name == '\0';
}

static int run(event_t *e, tern_event_t *ev)
{
    for (handler_t *hd = e->handlers; hd; hd = hd->next)
        if (hd->fn(hd->owner, ev) == TERN_HANDLED)
            return TERN_HANDLED;
    return TERN_PASS;
}

int hooks_fire_parts(hooks_t *h, const char *const *parts, int n, const char *seps,
                     tern_event_t *ev)
{
    /* The same keyed hash as hash_str() of the joined name, fed in pieces. */
    siphash_t st;
    siphash_init(&st, hash_key());
    for (int i = 0; i < n; i++) {
        siphash_update(&st, parts[i], strlen(parts[i]));
        if (i + 1 < n)
            siphash_update(&st, &seps[i], 1);
    }
    uint64_t hash = siphash_final(&st);
    for (event_t *e = h->buckets[BUCKET(hash)]; e; e = e->next)
        if (e->hash == hash && name_matches(e->name, parts, n, seps))
            return run(e, ev);
    return TERN_PASS;
}

int hooks_fire(hooks_t *h, const char *name, tern_event_t *ev)
{
    event_t *e = find_event(h, name, hash_str(name));
    return e ? run(e, ev) : TERN_PASS;
}

int hooks_has(hooks_t *h, const char *name)
{
    event_t *e = find_event(h, name, hash_str(name));
    return e && e->handlers;
}
