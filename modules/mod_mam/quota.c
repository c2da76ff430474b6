/*
 * quota.c — the most messages one user's archive keeps (max_items).
 *
 * Owns the rolling quota: once a user's archive holds more than max_items
 * messages, the oldest go, as with expire_after (XEP-0313 §3.2: only the
 * oldest, so no gaps appear).  Counting an archive walks its index, so it
 * is not done per message: a user's archive is counted at its first
 * message after start, then every tenth of the quota, and may pass the
 * quota by that much in between.  Nothing is refused: the message that
 * brings the archive over is archived and delivered as any other.
 * Must not: count or scan per message, or touch anybody else's archive.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mam.h"

#define QUOTA_USERS_CACHED 100000 /* users counted in memory before the counts start over */

typedef struct oldest {
    char id[128];
} oldest_t;

static int keep_id(void *ctx, const tern_archive_item_t *it)
{
    oldest_t *o = ctx;
    snprintf(o->id, sizeof o->id, "%s", it->id);
    return 0;
}

/* Delete the oldest of `user`'s messages beyond max_items.  0, or -1. */
static int trim(tern_module_ctx_t *m, mam_state_t *st, const char *user)
{
    long count = tern_archive_count(st->archive, user, NULL);
    if (count < 0)
        return -1;
    if (count <= st->max_items)
        return 0;
    long excess = count - st->max_items;
    /* The first message to keep: everything strictly before it goes. */
    tern_archive_query_t q = {.limit = (unsigned)excess + 1};
    oldest_t o = {{0}};
    if (tern_archive_query(st->archive, user, &q, keep_id, &o) < 0 || o.id[0] == '\0')
        return -1;
    tern_archive_query_t del = {.before_id = o.id};
    long gone = tern_archive_delete(st->archive, user, &del);
    if (gone < 0)
        return -1;
    tern_log(m, TERN_LOG_DEBUG, "archive of %s over %ld messages: %ld oldest deleted", user,
             st->max_items, gone);
    return 0;
}

void mam_quota_appended(tern_module_ctx_t *m, mam_state_t *st, const char *user)
{
    if (st->max_items <= 0)
        return;
    long step = st->max_items / 10 > 0 ? st->max_items / 10 : 1;
    if (st->quota_counts != NULL && tern_table_count(st->quota_counts) >= QUOTA_USERS_CACHED)
        tern_table_free(&st->quota_counts); /* all are counted again, once each */
    if (st->quota_counts == NULL && (st->quota_counts = tern_table_new()) == NULL)
        return;
    /* Stored as appends since the last count + 1; absent: never counted. */
    uintptr_t since = (uintptr_t)tern_table_get(st->quota_counts, user);
    if (since != 0 && (long)since < step) {
        tern_table_put(st->quota_counts, user, (void *)(since + 1)); /* replaces: no allocation */
        return;
    }
    if (trim(m, st, user) < 0)
        tern_log(m, TERN_LOG_WARN, "could not keep the archive of %s within max_items", user);
    tern_table_put(st->quota_counts, user, (void *)(uintptr_t)1);
}

void mam_quota_forget(mam_state_t *st, const char *user)
{
    if (st->quota_counts == NULL)
        return;
    if (user != NULL)
        tern_table_remove(st->quota_counts, user);
    else
        tern_table_free(&st->quota_counts);
}
