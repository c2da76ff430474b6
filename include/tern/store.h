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
 * documented otherwise.  The reads on hot paths also have _async forms
 * (end of this file) that keep the event loop free while they run.
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

/* ---- asynchronous reads ---------------------------------------------------
 *
 * The calls above run on the event loop: while one reads, nobody is
 * served.  The reads on the hot paths (offline messages at login, archive
 * pages, a roster) have _async forms whose result comes back later, on
 * the loop, to a callback:
 *
 *  - the call returns 0, and done(m, s, ctx, result) then runs exactly
 *    once, on the loop, never before the call returned; or it returns -1
 *    (bad arguments, out of memory) and done never runs;
 *  - `s` is the session the read is for (NULL: none).  When it closes
 *    before the result is delivered, or when the module `m` is unloaded
 *    first, done runs with result == NULL (and s == NULL): nothing is
 *    to be sent, only ctx to be freed.  On unload that happens at once,
 *    while the module's code is still loaded but after its unload()
 *    ran: done must not use module data that unload() freed;
 *  - results for one session come back in the order the calls were
 *    made (a roster asked for before the offline messages arrives first);
 *    what the module sends synchronously meanwhile may overtake them;
 *  - the result (items, strings) is valid only during done: copy what
 *    is kept;
 *  - a read sees every write made before the call (whatever the backend:
 *    SQLite commits the pending write batch first, which only makes the
 *    "committed before acknowledged" rule hold sooner), and maybe writes
 *    made after it;
 *  - result->rc < 0 is an error: result->error is "item-not-found" (an
 *    after_id/before_id not in the archive, as for the sync calls) or
 *    "storage error".
 *
 * While a session has a read pending, the server stops reading its input
 * (stanzas already read in the same chunk are still handled), so its
 * next stanzas come after the answer and a client pipelining queries is
 * paced by their answers.
 *
 * Why a worker: the SQLite backend runs these reads on the server's
 * worker threads (a queue of their own, taken first, and one thread that
 * never derives keys), each with a read-only connection of its own (WAL lets
 * readers run beside the loop's writer), in one read transaction per
 * call, so a count and a page agree.  An archive page of a few hundred
 * items costs a millisecond or two of SQLite and copying; a count over a
 * big archive costs far more: on the loop that was time nobody else was
 * served.  Measured (ASan build, shared 2-core machine): a 20-item page
 * or a 50-item roster is answered within a few tenths of a millisecond
 * of the time it took on the loop (the hand-over to a thread and back),
 * while twelve queries counting a 400 000-item archive no longer stall
 * other users (worst ping 2.6 s before, under 0.07 s after).  A commit
 * of the write batch in WAL mode (synchronous=NORMAL) does not sync the
 * disk, so committing it before a read costs microseconds.  Inside an
 * explicit transaction, or with a database in memory, the read runs on
 * the loop at call time instead (it must see uncommitted writes); the
 * result is still delivered later.  Without a worker pool (tools, some
 * tests) likewise.  A networked backend (PostgreSQL) would send the
 * query from the loop and call done when the answer arrives. */
struct tern_module_ctx;
struct tern_session;

/* What an archive read returns (tern_archive_query_async). */
typedef struct tern_archive_result {
    int rc;                           /* items read (the size of `items`), or -1 */
    const char *error;                /* when rc < 0: "item-not-found" or "storage error" */
    const tern_archive_item_t *items; /* in query order (reverse: newest first) */
    long count;                       /* with a count request: the count, else -1 */
    long index;                       /* with a count request and rc > 0: see below, else -1 */
} tern_archive_result_t;

/* Counts made in the same snapshot as the page (XEP-0059 count and
 * index): count = the items matching q (NULL: all), ignoring its limit,
 * counted up to max (<= 0: no bound; a result of max means "max or
 * more"); index = the same count with q's before_id replaced by the id of
 * items[index_of] (clamped to the last item read): how many of q's items
 * come before that one. */
typedef struct tern_archive_count {
    const tern_archive_query_t *q;
    long max;
    unsigned index_of;
} tern_archive_count_t;

typedef void (*tern_archive_done_t)(struct tern_module_ctx *m, struct tern_session *s, void *ctx,
                                    const tern_archive_result_t *result);

/* tern_archive_query, off the loop: the items matching q (copied; strings
 * NUL-terminated), plus the counts of `count` (NULL: none).  q, count and
 * their strings are copied: they need not outlive the call. */
TERN_API int tern_archive_query_async(struct tern_module_ctx *m, struct tern_session *s,
                                      tern_store_t *st, const char *user,
                                      const tern_archive_query_t *q,
                                      const tern_archive_count_t *count, tern_archive_done_t done,
                                      void *ctx);

/* tern_archive_delete with its answer later: result->rc is the number
 * deleted, or -1 (result->items is NULL, count and index -1).  A write:
 * it is made whether or not `s` is still there when done runs (done then
 * gets s == NULL and result == NULL all the same, and on unload); done may
 * be NULL.  SQLite makes it at once, on the loop, in the write batch. */
TERN_API int tern_archive_delete_async(struct tern_module_ctx *m, struct tern_session *s,
                                       tern_store_t *st, const char *user,
                                       const tern_archive_query_t *q, tern_archive_done_t done,
                                       void *ctx);

/* What a map walk returns (tern_map_foreach_async). */
typedef struct tern_map_entry {
    const char *key;
    const char *data; /* NUL-terminated */
    size_t len;
} tern_map_entry_t;

typedef struct tern_map_result {
    int rc;                          /* entries read, or -1 */
    const char *error;               /* when rc < 0: "storage error" */
    const tern_map_entry_t *entries; /* in key order */
} tern_map_result_t;

typedef void (*tern_map_done_t)(struct tern_module_ctx *m, struct tern_session *s, void *ctx,
                                const tern_map_result_t *result);

/* tern_map_foreach, off the loop: every key of `user` (a roster). */
TERN_API int tern_map_foreach_async(struct tern_module_ctx *m, struct tern_session *s,
                                    tern_store_t *st, const char *user, tern_map_done_t done,
                                    void *ctx);

#endif
