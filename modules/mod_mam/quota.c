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
 * The count and the read of the oldest ids run off the event loop
 * (tern_archive_query_async, with no session); the delete is a write, on
 * the loop in the write batch.
 * Must not: count or scan per message, or touch anybody else's archive.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mam.h"

#define QUOTA_USERS_CACHED 100000 /* users counted in memory before the counts start over */

/* A trim on its way: the user whose archive is counted, then read. */
typedef struct trim {
    char *user;
} trim_t;

static void trim_free(trim_t *t)
{
    free(t->user);
    free(t);
}

/* The oldest `excess` + 1 items were read: everything strictly before the
 * last of them goes (a write: on the loop, in the write batch). */
static void on_oldest(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                      const tern_archive_result_t *res)
{
    (void)s;
    trim_t *t = ctx;
    mam_state_t *st = tern_get_data(m);
    if (res != NULL && st != NULL) {
        long gone = -1;
        if (res->rc > 0) {
            tern_archive_query_t del = {.before_id = res->items[res->rc - 1].id};
            gone = tern_archive_delete(st->archive, t->user, &del);
        }
        if (gone < 0)
            tern_log(m, TERN_LOG_WARN, "could not keep the archive of %s within max_items",
                     t->user);
        else
            tern_log(m, TERN_LOG_DEBUG, "archive of %s over %ld messages: %ld oldest deleted",
                     t->user, st->max_items, gone);
    }
    trim_free(t);
}

/* The archive was counted: when it holds more than max_items, read the
 * ids up to the first message to keep. */
static void on_count(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                     const tern_archive_result_t *res)
{
    (void)s;
    trim_t *t = ctx;
    mam_state_t *st = tern_get_data(m);
    if (res == NULL || st == NULL || (res->rc >= 0 && res->count <= st->max_items)) {
        trim_free(t);
        return;
    }
    if (res->rc >= 0) {
        /* The first message to keep: everything strictly before it goes. */
        tern_archive_query_t q = {.limit = (unsigned)(res->count - st->max_items) + 1};
        if (tern_archive_query_async(m, NULL, st->archive, t->user, &q, NULL, on_oldest, t) == 0)
            return;
    }
    tern_log(m, TERN_LOG_WARN, "could not keep the archive of %s within max_items", t->user);
    trim_free(t);
}

/* Delete the oldest of `user`'s messages beyond max_items, off the loop:
 * the count and the read of the oldest ids go to the store's workers.
 * 0, or -1 when it could not start. */
static int trim(tern_module_ctx_t *m, mam_state_t *st, const char *user)
{
    trim_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->user = strdup(user)) == NULL) {
        free(t);
        return -1;
    }
    tern_archive_query_t one = {.limit = 1};
    tern_archive_count_t all = {.q = NULL, .max = 0, .index_of = 0};
    if (tern_archive_query_async(m, NULL, st->archive, user, &one, &all, on_count, t) < 0) {
        trim_free(t);
        return -1;
    }
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
