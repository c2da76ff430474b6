/*
 * hashmap.h — string-keyed hash table (internal).
 *
 * Keys are copied; values are borrowed pointers the caller owns.  Used
 * for sessions by JID, users, hosts, components and pending iqs, so that
 * routing a stanza never scans every session.  Keys are hashed with
 * SipHash-2-4 under a random per-process key (util/siphash.h): remote
 * parties choose many keys (JIDs, resources) and must not be able to
 * choose colliding ones.
 */
#ifndef TERN_HASHMAP_H
#define TERN_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hashmap hashmap_t;

hashmap_t *hashmap_new(void);
/* Frees the table and its key copies, not the values. */
void hashmap_free(hashmap_t **m);
void *hashmap_get(const hashmap_t *m, const char *key);
/* Insert or replace.  0, or -1 on allocation failure. */
int hashmap_put(hashmap_t *m, const char *key, void *value);
/* Remove and return the value (NULL if absent). */
void *hashmap_remove(hashmap_t *m, const char *key);
size_t hashmap_count(const hashmap_t *m);
/* Visit every entry; fn may not modify the map.  Stops when fn returns non-zero. */
void hashmap_foreach(const hashmap_t *m, int (*fn)(void *ctx, const char *key, void *value),
                     void *ctx);
/* The keyed hash of a string, as the table uses it. */
uint64_t hash_str(const char *s);

#endif
