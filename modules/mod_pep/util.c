/*
 * util.c — small helpers of mod_pep: a string map, ids and time stamps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/table.h>
#include <time.h>

#include "pep.h"

/* ---- string map ------------------------------------------------------- */

typedef struct strmap_entry {
    struct strmap_entry *next;
    void *value;
    char key[];
} strmap_entry_t;

struct strmap {
    strmap_entry_t **buckets;
    size_t n_buckets, count;
    void (*free_fn)(void *);
};

/* The server's keyed hash: node names and JIDs come from the network. */
static size_t hash_str(const char *s)
{
    return (size_t)tern_hash_str(s);
}

strmap_t *strmap_new(void (*free_fn)(void *))
{
    strmap_t *map = calloc(1, sizeof *map);
    if (map == NULL)
        return NULL;
    map->n_buckets = 64;
    map->buckets = calloc(map->n_buckets, sizeof map->buckets[0]);
    if (map->buckets == NULL) {
        free(map);
        return NULL;
    }
    map->free_fn = free_fn;
    return map;
}

void strmap_free(strmap_t **mapp)
{
    strmap_t *map = *mapp;
    if (map == NULL)
        return;
    for (size_t i = 0; i < map->n_buckets; i++) {
        strmap_entry_t *e = map->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            if (map->free_fn != NULL && e->value != NULL)
                map->free_fn(e->value);
            free(e);
        }
    }
    free(map->buckets);
    free(map);
    *mapp = NULL;
}

static strmap_entry_t **find_slot(const strmap_t *map, const char *key)
{
    strmap_entry_t **p = &map->buckets[hash_str(key) % map->n_buckets];
    while (*p != NULL && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

void *strmap_get(const strmap_t *map, const char *key)
{
    strmap_entry_t **p = map != NULL ? find_slot(map, key) : NULL;
    return p != NULL && *p != NULL ? (*p)->value : NULL;
}

/* Double the buckets when the load passes 2; failure only keeps chains long. */
static void grow(strmap_t *map)
{
    size_t n = map->n_buckets * 2;
    strmap_entry_t **b = calloc(n, sizeof b[0]);
    if (b == NULL)
        return;
    for (size_t i = 0; i < map->n_buckets; i++) {
        strmap_entry_t *e = map->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            size_t h = hash_str(e->key) % n;
            e->next = b[h];
            b[h] = e;
        }
    }
    free(map->buckets);
    map->buckets = b;
    map->n_buckets = n;
}

int strmap_put(strmap_t *map, const char *key, void *value)
{
    strmap_entry_t **p = find_slot(map, key);
    if (*p != NULL) {
        if (map->free_fn != NULL && (*p)->value != NULL && (*p)->value != value)
            map->free_fn((*p)->value);
        (*p)->value = value;
        return 0;
    }
    size_t len = strlen(key);
    strmap_entry_t *e = malloc(sizeof *e + len + 1);
    if (e == NULL)
        return -1;
    memcpy(e->key, key, len + 1);
    e->value = value;
    e->next = NULL;
    *p = e;
    if (++map->count > map->n_buckets * 2)
        grow(map);
    return 0;
}

int strmap_del(strmap_t *map, const char *key)
{
    strmap_entry_t **p = map != NULL ? find_slot(map, key) : NULL;
    if (p == NULL || *p == NULL)
        return 0;
    strmap_entry_t *e = *p;
    *p = e->next;
    if (map->free_fn != NULL && e->value != NULL)
        map->free_fn(e->value);
    free(e);
    map->count--;
    return 1;
}

size_t strmap_count(const strmap_t *map)
{
    return map != NULL ? map->count : 0;
}

size_t strmap_del_prefix(strmap_t *map, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);
    for (size_t i = 0; map != NULL && i < map->n_buckets; i++) {
        strmap_entry_t **p = &map->buckets[i];
        while (*p != NULL) {
            strmap_entry_t *e = *p;
            if (strncmp(e->key, prefix, plen) != 0) {
                p = &e->next;
                continue;
            }
            *p = e->next;
            if (map->free_fn != NULL && e->value != NULL)
                map->free_fn(e->value);
            free(e);
            map->count--;
            n++;
        }
    }
    return n;
}

int strmap_evict_one(strmap_t *map, const char *keep)
{
    for (size_t i = 0; map != NULL && i < map->n_buckets; i++)
        for (strmap_entry_t *e = map->buckets[i]; e != NULL; e = e->next)
            if (keep == NULL || strcmp(e->key, keep) != 0)
                return strmap_del(map, e->key);
    return 0;
}

/* ---- strings ------------------------------------------------------------- */

char *pep_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s == NULL)
        return NULL;
    memcpy(s, a, la);
    s[la] = '\n';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

void pep_new_id(char *buf, size_t len)
{
    static unsigned long counter;
    snprintf(buf, len, "%llx-%lx", (unsigned long long)tern_now_us(), ++counter);
}

void pep_stamp(int64_t us, char *buf, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
