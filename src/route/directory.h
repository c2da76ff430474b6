/*
 * directory.h — where a client's sessions are (internal).
 *
 * "Where is the session with this full JID?" and "which sessions does this
 * bare JID have?", answered with locations: a session of this node (its
 * pointer), or, once several nodes share their sessions, another node's id
 * (DIR_REMOTE, never answered today).  Today the answers come from the
 * local session tables (route/sessions.h); a networked directory will
 * answer for the other nodes behind the same calls, so callers handle
 * every kind of location they can get.
 *
 * Callers: the router and the module API.  This layer calls down only,
 * into the session tables.
 */
#ifndef TERN_DIRECTORY_H
#define TERN_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include "route/sessions.h"

typedef enum {
    DIR_NONE = 0, /* no such session anywhere */
    DIR_LOCAL,    /* on this node: `session` */
    DIR_REMOTE    /* on node `node` (not answered yet) */
} dir_where_t;

typedef struct dir_location {
    dir_where_t where;
    tern_session_t *session; /* DIR_LOCAL: valid until the session ends */
    const char *node;        /* DIR_REMOTE: the node's id */
    uint64_t serial;         /* the session's serial (tern_session_serial) */
    int detached;            /* bound, with no stream for now */
} dir_location_t;

/* Where the bound session with this full JID is: DIR_NONE when none
 * (also written to *loc). */
dir_where_t directory_find_full(const char *full, dir_location_t *loc);
/* Call fn for each session of `bare`, local ones first, until fn returns
 * non-zero; returns how many were visited.  fn must not end sessions. */
size_t directory_foreach_bare(const char *bare, int (*fn)(void *ctx, const dir_location_t *loc),
                              void *ctx);
/* Whether `bare` has any bound session, on any node. */
int directory_has_bare(const char *bare);

#endif
