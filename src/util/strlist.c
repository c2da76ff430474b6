/*
 * strlist.c — the string list of the public API (include/tern/strlist.h).
 *
 * Owns the strings in a list and their array; nothing else.  No I/O.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tern/strlist.h>

int tern_strlist_add(tern_strlist_t *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        if (cap > SIZE_MAX / sizeof(char *))
            return -1;
        char **v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    if ((l->v[l->n] = strdup(s)) == NULL)
        return -1;
    l->n++;
    return 0;
}

int tern_strlist_add_unique(tern_strlist_t *l, const char *s)
{
    return tern_strlist_has(l, s) ? 0 : tern_strlist_add(l, s);
}

int tern_strlist_has(const tern_strlist_t *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

void tern_strlist_remove(tern_strlist_t *l, size_t i)
{
    if (i >= l->n)
        return;
    free(l->v[i]);
    l->v[i] = l->v[--l->n];
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void tern_strlist_sort(tern_strlist_t *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(char *), cmp_str);
}

void tern_strlist_clear(tern_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (tern_strlist_t){0};
}
