/*
 * test_store_async.c — the asynchronous store calls (src/core/store_jobs.c
 * over the readers of src/store/store_sqlite.c).
 *
 * A real database file, event base, worker pool, host and two fake
 * sessions.  Checks that each callback runs exactly once and never before
 * the call returns; that a read sees writes still in the open write batch
 * and inside an explicit transaction; that counts and the index agree
 * with the page; that a session closing or the module unloading cancels
 * (result NULL); that results for one session come back in call order;
 * the error paths (unknown after_id, a store of the wrong kind); and the
 * same without a worker pool.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "core/module_api.h"
#include "core/modules.h"
#include "core/server.h"
#include "core/store_jobs.h"
#include "util/workers.h"
#include "route/router.h"
#include "route/sessions.h"
#include "store/store.h"

static tern_session_t *juliet, *romeo;
static tern_module_ctx_t mod;
static tern_store_t *ar, *map;

/* What one callback saw. */
typedef struct seen {
    int calls;
    int cancelled; /* result NULL */
    tern_session_t *s;
    int rc;
    char error[64];
    long count, index;
    char first[64], last[64];
    int order; /* position among the callbacks of a test */
} seen_t;

static int order_counter;

static void on_archive(tern_module_ctx_t *m, tern_session_t *s, void *ctx,
                       const tern_archive_result_t *res)
{
    seen_t *w = ctx;
    CHECK(m == &mod);
    w->calls++;
    w->s = s;
    w->order = ++order_counter;
    if (res == NULL) {
        w->cancelled = 1;
        return;
    }
    w->rc = res->rc;
    w->count = res->count;
    w->index = res->index;
    snprintf(w->error, sizeof w->error, "%s", res->error != NULL ? res->error : "");
    if (res->rc > 0 && res->items != NULL) { /* a delete has no items */
        snprintf(w->first, sizeof w->first, "%s", res->items[0].id);
        snprintf(w->last, sizeof w->last, "%s", res->items[res->rc - 1].id);
        CHECK(res->items[0].data[res->items[0].len] == '\0');
    }
}

static void on_map(tern_module_ctx_t *m, tern_session_t *s, void *ctx, const tern_map_result_t *res)
{
    seen_t *w = ctx;
    CHECK(m == &mod);
    w->calls++;
    w->s = s;
    w->order = ++order_counter;
    if (res == NULL) {
        w->cancelled = 1;
        return;
    }
    w->rc = res->rc;
    if (res->rc > 0) {
        snprintf(w->first, sizeof w->first, "%s", res->entries[0].key);
        snprintf(w->last, sizeof w->last, "%s=%s", res->entries[res->rc - 1].key,
                 res->entries[res->rc - 1].data);
    }
}

/* Run the loop until every job is delivered (or about 5 s went by). */
static void pump(void)
{
    for (int i = 0; i < 5000 && store_jobs_pending() > 0; i++) {
        event_base_loop(server.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
    event_base_loop(server.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Ten items m0..m9 for romeo, written in a batch left open (not yet
 * committed, as after a stanza was handled). */
static void fill_archive(void)
{
    store_batch_begin(server.db);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        CHECK(tern_archive_append(ar, "romeo", id, 1000 + i, "juliet@example.com", "<x/>", 4) == 0);
    }
    CHECK(store_batch_end(server.db) == 1); /* left open */
}

static void test_query_sees_batch(void)
{
    fill_archive();
    seen_t w = {0};
    tern_archive_query_t q = {.after_id = "m1", .limit = 4};
    tern_archive_count_t count = {.q = NULL, .max = 0, .index_of = 0};
    CHECK(tern_archive_query_async(&mod, romeo, ar, "romeo", &q, &count, on_archive, &w) == 0);
    CHECK(w.calls == 0); /* never before the call returns */
    pump();
    CHECK(w.calls == 1);
    CHECK(!w.cancelled);
    CHECK(w.s == romeo);
    CHECK(w.rc == 4);
    CHECK_STR(w.first, "m2");
    CHECK_STR(w.last, "m5");
    CHECK(w.count == 10);
    CHECK(w.index == 2); /* m0, m1 before m2 */

    /* Newest first; index of the oldest of three (items[2]); bounded count. */
    seen_t r = {0};
    tern_archive_query_t rq = {.reverse = 1, .limit = 3};
    tern_archive_count_t rc = {.q = NULL, .max = 5, .index_of = 2};
    CHECK(tern_archive_query_async(&mod, NULL, ar, "romeo", &rq, &rc, on_archive, &r) == 0);
    pump();
    CHECK(r.calls == 1 && r.s == NULL && !r.cancelled);
    CHECK(r.rc == 3);
    CHECK_STR(r.first, "m9");
    CHECK_STR(r.last, "m7");
    CHECK(r.count == 5); /* "5 or more" */
    CHECK(r.index == 5); /* m0..m6 is 7, bounded at 5 */
}

static void test_errors(void)
{
    seen_t w = {0};
    tern_archive_query_t q = {.after_id = "nope"};
    CHECK(tern_archive_query_async(&mod, romeo, ar, "romeo", &q, NULL, on_archive, &w) == 0);
    pump();
    CHECK(w.calls == 1 && w.rc == -1);
    CHECK_STR(w.error, "item-not-found");

    seen_t k = {0}; /* a map store used as an archive */
    CHECK(tern_archive_query_async(&mod, romeo, map, "romeo", NULL, NULL, on_archive, &k) == 0);
    pump();
    CHECK(k.calls == 1 && k.rc == -1);
    CHECK_STR(k.error, "storage error");

    /* Refused at once: done never runs. */
    CHECK(tern_archive_query_async(&mod, romeo, ar, "romeo", NULL, NULL, NULL, NULL) < 0);
    CHECK(tern_map_foreach_async(NULL, romeo, map, "romeo", on_map, &k) < 0);
    CHECK(tern_map_foreach_async(&mod, romeo, NULL, "romeo", on_map, &k) < 0);
    pump();
    CHECK(k.calls == 1);
}

static void test_map_and_order(void)
{
    store_batch_begin(server.db);
    CHECK(tern_map_set(map, "romeo", "b@x", "2", 1) == 0);
    CHECK(tern_map_set(map, "romeo", "a@x", "1", 1) == 0);
    CHECK(tern_map_set(map, "romeo", "c@x", "3", 1) == 0);
    store_batch_end(server.db);
    /* A roster then the offline messages, for one session: in that order,
     * many times over (the pool has two threads). */
    for (int round = 0; round < 50; round++) {
        seen_t a = {0}, b = {0}, c = {0};
        order_counter = 0;
        CHECK(tern_map_foreach_async(&mod, romeo, map, "romeo", on_map, &a) == 0);
        CHECK(tern_archive_query_async(&mod, romeo, ar, "romeo", NULL, NULL, on_archive, &b) == 0);
        CHECK(tern_map_foreach_async(&mod, romeo, map, "romeo", on_map, &c) == 0);
        pump();
        CHECK(a.calls == 1 && b.calls == 1 && c.calls == 1);
        CHECK(a.order == 1 && b.order == 2 && c.order == 3);
        if (round == 0) {
            CHECK(a.rc == 3);
            CHECK_STR(a.first, "a@x");
            CHECK_STR(a.last, "c@x=3");
            CHECK(b.rc == 10);
        }
    }
}

static void test_session_close(void)
{
    seen_t w = {0}, other = {0};
    CHECK(tern_archive_query_async(&mod, juliet, ar, "romeo", NULL, NULL, on_archive, &w) == 0);
    CHECK(tern_archive_query_async(&mod, romeo, ar, "romeo", NULL, NULL, on_archive, &other) == 0);
    sessions_unbind(juliet); /* closes before the result is in */
    pump();
    CHECK(w.calls == 1 && w.cancelled && w.s == NULL);
    CHECK(other.calls == 1 && !other.cancelled && other.rc == 10);
    const char *e = NULL;
    CHECK(sessions_bind(juliet, "juliet", "balcony", CONFLICT_KICK_OLD, 0, &e) == 0);
}

static void test_unload(void)
{
    seen_t w = {0}, m2 = {0};
    CHECK(tern_archive_query_async(&mod, romeo, ar, "romeo", NULL, NULL, on_archive, &w) == 0);
    CHECK(tern_map_foreach_async(&mod, NULL, map, "romeo", on_map, &m2) == 0);
    store_jobs_release(&mod);           /* what module_api_release does on unload */
    CHECK(w.calls == 1 && w.cancelled); /* told at once */
    CHECK(m2.calls == 1 && m2.cancelled);
    pump();
    CHECK(w.calls == 1 && m2.calls == 1); /* and never again */
    CHECK(store_jobs_pending() == 0);
}

static void test_transaction_and_delete(void)
{
    /* Inside an explicit transaction the read runs on the loop's own
     * connection: it sees the uncommitted write; still delivered later. */
    CHECK(store_begin(server.db) == 0);
    CHECK(tern_archive_append(ar, "romeo", "t1", 5000, "", "<y/>", 4) == 0);
    seen_t w = {0};
    tern_archive_query_t q = {.after_id = "m9"};
    CHECK(tern_archive_query_async(&mod, romeo, ar, "romeo", &q, NULL, on_archive, &w) == 0);
    CHECK(w.calls == 0);
    CHECK(store_commit(server.db) == 0);
    pump();
    CHECK(w.calls == 1 && w.rc == 1);
    CHECK_STR(w.first, "t1");

    seen_t d = {0};
    const char *ids[] = {"t1", "m0", NULL};
    tern_archive_query_t dq = {.ids = ids};
    CHECK(tern_archive_delete_async(&mod, romeo, ar, "romeo", &dq, on_archive, &d) == 0);
    CHECK(d.calls == 0);
    CHECK(tern_archive_count(ar, "romeo", NULL) == 9); /* made at once */
    pump();
    CHECK(d.calls == 1 && d.rc == 2);
    CHECK(tern_archive_delete_async(&mod, NULL, ar, "romeo", &dq, NULL, NULL) == 0);
    pump();
    CHECK(store_jobs_pending() == 0);
}

static void test_without_pool(void)
{
    workers_stop();
    seen_t w = {0};
    CHECK(tern_archive_query_async(&mod, romeo, ar, "romeo", NULL, NULL, on_archive, &w) == 0);
    CHECK(w.calls == 0);
    pump();
    CHECK(w.calls == 1 && w.rc == 9);
}

int main(void)
{
    static fixture_t fx;
    mod.host = fixture_start(&fx, NULL);
    CHECK(mod.host != NULL);
    CHECK(workers_start(server.base, 2) == 0);
    juliet = fixture_session(&fx, "juliet", "balcony");
    romeo = fixture_session(&fx, "romeo", "garden");
    CHECK(juliet != NULL && romeo != NULL);
    if (!juliet || !romeo)
        return check_summary();
    ar = store_get(server.db, "example.com", "offline", STORE_ARCHIVE);
    map = store_get(server.db, "example.com", "roster", STORE_MAP);
    CHECK(ar != NULL && map != NULL);

    if (mod.host && ar && map) {
        test_query_sees_batch();
        test_errors();
        test_map_and_order();
        test_session_close();
        test_unload();
        test_transaction_and_delete();
        test_without_pool();
        module_api_release(&mod);
    }

    workers_stop();
    fixture_stop(&fx);
    return check_summary();
}
