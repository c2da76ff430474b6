/*
 * hashmap.c — chained hash table with string keys, doubling at load 1,
 * and its public face for modules (tern/table.h).
 */
#include "util/hashmap.h"

#include <stdlib.h>
#include <string.h>
#include <tern/table.h>

#include "util/siphash.h"

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    void *value;
    char key[];
} entry_t;

struct hashmap {
    entry_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

uint64_t hash_str(const char *s)
{
    return siphash24(hash_key(), s, strlen(s));
}

hashmap_t *hashmap_new(void)
{
    hashmap_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

void hashmap_free(hashmap_t **mp)
{
    hashmap_t *m = *mp;
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry_t *e = m->buckets[i];
        while (e) {
            entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
    *mp = NULL;
}

static entry_t **find_slot(const hashmap_t *m, const char *key, uint64_t h)
{
    entry_t **slot = &m->buckets[h & (m->nbuckets - 1)];
    while (*slot && ((*slot)->hash != h || strcmp((*slot)->key, key) != 0))
        slot = &(*slot)->next;
    return slot;
}

void *hashmap_get(const hashmap_t *m, const char *key)
{
    entry_t **slot = find_slot(m, key, hash_str(key));
    return *slot ? (*slot)->value : NULL;
}

/* Double the bucket array; on allocation failure keep the old one. */
static void grow(hashmap_t *m)
{
    size_t n = m->nbuckets * 2;
    entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry_t *e = m->buckets[i];
        while (e) {
            entry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

int hashmap_put(hashmap_t *m, const char *key, void *value)
{
    uint64_t h = hash_str(key);
    entry_t **slot = find_slot(m, key, h);
    if (*slot) {
        (*slot)->value = value;
        return 0;
    }
    size_t klen = strlen(key);
    entry_t *e = malloc(sizeof(*e) + klen + 1);
    if (!e)
        return -1;
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = value;
    e->next = NULL;
    *slot = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return 0;
}

void *hashmap_remove(hashmap_t *m, const char *key)
{
    entry_t **slot = find_slot(m, key, hash_str(key));
    entry_t *e = *slot;
    if (!e)
        return NULL;
    void *value = e->value;
    *slot = e->next;
    free(e);
    m->count--;
    return value;
}

size_t hashmap_count(const hashmap_t *m)
{
    return m->count;
}

void hashmap_foreach(const hashmap_t *m, int (*fn)(void *ctx, const char *key, void *value),
                     void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry_t *e = m->buckets[i]; e; e = e->next)
            if (fn(ctx, e->key, e->value))
                return;
}

/* ---- tern/table.h: the same table for modules ----------------------------- */

struct tern_table {
    hashmap_t *map;
};

TERN_API tern_table_t *tern_table_new(void)
{
    tern_table_t *t = malloc(sizeof(*t));
    if (t && !(t->map = hashmap_new())) {
        free(t);
        t = NULL;
    }
    return t;
}

TERN_API void tern_table_free(tern_table_t **t)
{
    if (!t || !*t)
        return;
    hashmap_free(&(*t)->map);
    free(*t);
    *t = NULL;
}

TERN_API void *tern_table_get(const tern_table_t *t, const char *key)
{
    return hashmap_get(t->map, key);
}

TERN_API int tern_table_put(tern_table_t *t, const char *key, void *value)
{
    return hashmap_put(t->map, key, value);
}

TERN_API void *tern_table_remove(tern_table_t *t, const char *key)
{
    return hashmap_remove(t->map, key);
}

TERN_API uint64_t tern_hash_str(const char *s)
{
    return hash_str(s);
}

TERN_API size_t tern_table_count(const tern_table_t *t)
{
    return hashmap_count(t->map);
}

TERN_API void tern_table_foreach(const tern_table_t *t,
                                 int (*fn)(void *ctx, const char *key, void *value), void *ctx)
{
    hashmap_foreach(t->map, fn, ctx);
}
