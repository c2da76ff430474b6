/*
 * tern/table.h — an in-memory table from strings to pointers, for the
 * caches and indexes modules keep (the server's own, used for sessions
 * and routing).  Keys are copied; values belong to the caller.  Lookups
 * are O(1): use it instead of scanning lists per stanza.  Keys are hashed
 * with SipHash-2-4 under a random per-process key, so that remote parties
 * cannot choose colliding keys.
 */
#ifndef TERN_TABLE_H
#define TERN_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <tern/defs.h>

typedef struct tern_table tern_table_t;

/* NULL on allocation failure. */
TERN_API tern_table_t *tern_table_new(void);
/* Frees the table and its key copies, not the values; sets *t to NULL. */
TERN_API void tern_table_free(tern_table_t **t);
TERN_API void *tern_table_get(const tern_table_t *t, const char *key);
/* Insert or replace.  0, or -1 on allocation failure. */
TERN_API int tern_table_put(tern_table_t *t, const char *key, void *value);
/* Remove and return the value (NULL if absent). */
TERN_API void *tern_table_remove(tern_table_t *t, const char *key);
TERN_API size_t tern_table_count(const tern_table_t *t);
/* Visit every entry; fn may not change the table.  Stops when fn returns
 * non-zero. */
TERN_API void tern_table_foreach(const tern_table_t *t,
                                 int (*fn)(void *ctx, const char *key, void *value), void *ctx);
/* The table's keyed hash of a string, for a module that must keep a table
 * of its own shape: never hash network-chosen keys with a public function. */
TERN_API uint64_t tern_hash_str(const char *s);

#endif
