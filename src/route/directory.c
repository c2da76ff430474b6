/*
 * directory.c — session locations, answered from the local tables.
 *
 * Must not: keep state of its own (the tables are the truth on this node)
 * or hand out DIR_REMOTE before a networked directory exists.
 */
#include "route/directory.h"

#include <string.h>

static void local_location(tern_session_t *s, dir_location_t *loc)
{
    memset(loc, 0, sizeof(*loc));
    loc->where = DIR_LOCAL;
    loc->session = s;
    loc->serial = s->serial;
    loc->detached = s->detached;
}

dir_where_t directory_find_full(const char *full, dir_location_t *loc)
{
    tern_session_t *s = full ? sessions_find_full(full) : NULL;
    if (!s) {
        memset(loc, 0, sizeof(*loc));
        return DIR_NONE;
    }
    local_location(s, loc);
    return DIR_LOCAL;
}

size_t directory_foreach_bare(const char *bare, int (*fn)(void *ctx, const dir_location_t *loc),
                              void *ctx)
{
    user_sessions_t *u = bare ? sessions_find_bare(bare) : NULL;
    size_t n = 0;
    tern_session_t *next;
    for (tern_session_t *s = u ? u->first : NULL; s; s = next) {
        next = s->next_of_user;
        dir_location_t loc;
        local_location(s, &loc);
        n++;
        if (fn(ctx, &loc))
            break;
    }
    return n;
}

int directory_has_bare(const char *bare)
{
    return bare && sessions_find_bare(bare) != NULL;
}
