/*
 * tern/strlist.h — a growable list of malloc'd strings for modules.
 *
 * For the small lists modules keep (JIDs a session sent presence to,
 * disco features to sort and hash).  Start from `tern_strlist_t l = {0};`
 * and end with tern_strlist_clear(&l).  Lookups are linear: keep large
 * or per-user sets in a tern_table_t (tern/table.h) instead.
 */
#ifndef TERN_STRLIST_H
#define TERN_STRLIST_H

#include <stddef.h>

#include <tern/defs.h>

typedef struct tern_strlist {
    char **v;   /* v[0..n-1], each malloc'd; owned by the list */
    size_t n;   /* strings in the list */
    size_t cap; /* room in v */
} tern_strlist_t;

/* Append a copy of `s`.  0, or -1 when out of memory (list unchanged). */
TERN_API int tern_strlist_add(tern_strlist_t *l, const char *s);

/* Append a copy of `s` unless an equal string is there.  0 (added or
 * already there), or -1 when out of memory (list unchanged). */
TERN_API int tern_strlist_add_unique(tern_strlist_t *l, const char *s);

/* Whether a string equal to `s` (strcmp) is in the list: 1 or 0. */
TERN_API int tern_strlist_has(const tern_strlist_t *l, const char *s);

/* Free and remove the i-th string (i < n); the last one takes its place,
 * so the order changes. */
TERN_API void tern_strlist_remove(tern_strlist_t *l, size_t i);

/* Sort by strcmp (byte order, "i;octet"). */
TERN_API void tern_strlist_sort(tern_strlist_t *l);

/* Free every string and the array; the list is empty and reusable. */
TERN_API void tern_strlist_clear(tern_strlist_t *l);

#endif
