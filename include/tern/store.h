/*
 * tern/store.h — the storage API modules use (never SQLite directly).
 *
 * Three kinds of store, each named by the module and scoped to one host:
 *  - key-value: one value per user            (vcard, private XML, prefs)
 *  - map:       many keys per user             (PEP nodes, MUC affiliations)
 *  - archive:   a list of items per user, ordered by time, each with a
 *               stable id, a time and a "with" JID  (offline, MAM)
 * Values are opaque bytes (usually serialized XML).  A "user" of "" means
 * the host itself.  Every call returns quickly: stores are indexed and use
 * prepared statements.  Functions return 0 on success and -1 on error unless
 * documented otherwise.
 */
#ifndef TERN_STORE_H
#define TERN_STORE_H

#include <tern/defs.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tern_store tern_store_t; /* one handle = one (host, name, kind) */

typedef struct tern_blob {
    char *data; /* malloc'd, NUL-terminated for convenience */
    size_t len;
} tern_blob_t;

/* key-value.  get: 1 found (*out filled, caller frees out->data), 0 absent, -1 error. */
TERN_API int tern_kv_get(tern_store_t *st, const char *user, tern_blob_t *out);
/* data == NULL deletes. */
TERN_API int tern_kv_set(tern_store_t *st, const char *user, const char *data, size_t len);

/* map.  set with data == NULL deletes the key. */
TERN_API int tern_map_get(tern_store_t *st, const char *user, const char *key, tern_blob_t *out);
TERN_API int tern_map_set(tern_store_t *st, const char *user, const char *key, const char *data,
                          size_t len);
/* Calls fn for each key of `user` in key order; fn returns non-zero to stop. */
TERN_API int tern_map_foreach(tern_store_t *st, const char *user,
                              int (*fn)(void *ctx, const char *key, const char *data, size_t len),
                              void *ctx);
/* The same walk a slice at a time (one index range): the keys after
 * `after` (NULL or "": from the first), at most `limit` of them (<= 0:
 * all).  Returns how many were passed to fn, or -1; fewer than `limit`
 * means the walk is over.  For long walks on the event loop, a slice per
 * turn of the loop. */
TERN_API long
tern_map_foreach_after(tern_store_t *st, const char *user, const char *after, long limit,
                       int (*fn)(void *ctx, const char *key, const char *data, size_t len),
                       void *ctx);

/* archive. */
typedef struct tern_archive_item {
    const char *id;   /* stable id given at append */
    int64_t when_us;  /* microseconds since the epoch */
    const char *with; /* bare JID of the other party ("" if none) */
    const char *data;
    size_t len;
} tern_archive_item_t;

typedef struct tern_archive_query {
    const char *with;       /* NULL = any */
    int64_t start_us;       /* 0 = no lower bound (inclusive) */
    int64_t end_us;         /* 0 = no upper bound (inclusive) */
    const char *after_id;   /* items strictly after this id, NULL = none */
    const char *before_id;  /* items strictly before this id, NULL = none */
    const char *const *ids; /* only these ids (NULL-terminated), NULL = all */
    unsigned limit;         /* 0 = no limit */
    int reverse;            /* newest first (for "last page" queries) */
} tern_archive_query_t;

/* Append an item; `id` must be unique per (store, user).  `when_us` 0 = now. */
TERN_API int tern_archive_append(tern_store_t *st, const char *user, const char *id,
                                 int64_t when_us, const char *with, const char *data, size_t len);
/* Calls fn for each matching item in order (oldest first, or newest first
 * with q->reverse).  Returns the number of items passed to fn, or -1.
 * Order is by time, then by order of append.  fn returning non-zero stops
 * the query.  q NULL = all items.  For query, count and delete, an
 * after_id/before_id that is not in the archive makes the call return -1
 * (report item-not-found); unknown entries of `ids` are simply skipped. */
TERN_API int tern_archive_query(tern_store_t *st, const char *user, const tern_archive_query_t *q,
                                int (*fn)(void *ctx, const tern_archive_item_t *item), void *ctx);
/* Number of items matching q (ignoring limit), or -1.  Costs a read of
 * every item counted: on the event loop, prefer tern_archive_count_max. */
TERN_API long tern_archive_count(tern_store_t *st, const char *user, const tern_archive_query_t *q);
/* The same, counting no further than `max` (max <= 0: no bound): a
 * result of `max` means "max or more". */
TERN_API long tern_archive_count_max(tern_store_t *st, const char *user,
                                     const tern_archive_query_t *q, long max);
/* Delete matching items (ignoring limit/reverse); q NULL = all of user's.
 * Returns the number deleted, or -1. */
TERN_API long tern_archive_delete(tern_store_t *st, const char *user,
                                  const tern_archive_query_t *q);
/* Delete items older than `before_us` for every user of this store.
 * Returns the number deleted, or -1.  One statement however many items
 * go: on the event loop, prefer tern_archive_expire_some. */
TERN_API long tern_archive_expire(tern_store_t *st, int64_t before_us);
/* The same for at most `max` of them, oldest first (max <= 0: all); call
 * again, on a later turn of the loop, while it returns `max`. */
TERN_API long tern_archive_expire_some(tern_store_t *st, int64_t before_us, long max);

#endif
