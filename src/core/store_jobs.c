/*
 * store_jobs.c — the asynchronous store calls of tern/store.h
 * (tern_archive_query_async, tern_archive_delete_async,
 * tern_map_foreach_async).
 *
 * Owns the pending store jobs, in the order they were asked for.  The
 * loop copies the request, commits the write batch (store_read_prepare)
 * and hands the read to the worker pool; the worker takes a reader of
 * the store (a read-only connection), reads in one snapshot and copies
 * the results into the job; back on the loop the job waits until every
 * earlier job of the same session is delivered, then its callback runs.
 * When the read cannot go to a worker (no pool, an open transaction, a
 * database in memory) it runs on the loop at call time and is delivered
 * from a deferred event, so done never runs before the call returns.
 *
 * A job is tied to its session by a session slot keyed by the job: when
 * the session ends first, the slot's free function marks the job gone and
 * its callback gets a NULL result.  On module unload the module's jobs
 * are told at once (module_api_release) and freed when their worker is
 * through.
 *
 * While a session has a read pending, its connection is not read (as
 * when the read ran on the loop): its next stanzas wait, so nothing it
 * asks for later overtakes the answer, and a client that pipelines
 * queries is held to the pace of their answers instead of piling up jobs
 * and output.  Must not: run a module's callback on a worker thread, touch
 * the loop's connection from a worker, or call a callback twice.
 */
#include "core/store_jobs.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "core/server.h"
#include "util/workers.h"
#include "route/sessions.h"
#include "store/store.h"

typedef enum { OP_ARCHIVE_QUERY, OP_ARCHIVE_DELETE, OP_MAP_EACH } op_t;

/* A private copy of a query and its strings. */
typedef struct qcopy {
    tern_archive_query_t q;
    char *with, *after, *before;
    char **ids;
} qcopy_t;

typedef struct store_job {
    struct store_job *next, *prev; /* every pending job, in call order */
    tern_module_ctx_t *m;          /* NULL once the module was told it is gone */
    tern_session_t *s;             /* NULL: none, or gone */
    uint64_t serial;               /* the session's serial (ordering), 0: none */
    int gone;                      /* the session closed first */
    int finished;                  /* results are in: may be delivered */
    int on_loop;                   /* the worker could not read: read on the loop */
    op_t op;
    tern_store_t *st;
    char *user;
    qcopy_t q;
    int has_count;
    qcopy_t cq;
    long count_max;
    unsigned index_of;
    /* results */
    int rc, oom;
    long count, index;
    char error[256];
    tern_archive_item_t *items;
    tern_map_entry_t *entries;
    size_t n, cap;
    worker_job_t *worker;
    tern_archive_done_t archive_done;
    tern_map_done_t map_done;
    void *ctx;
} store_job_t;

static store_job_t *jobs, *jobs_tail;
static struct event *ready_ev; /* delivers jobs finished on the loop */

/* ---- copies ----------------------------------------------------------------- */

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    return src == NULL || (*dst = strdup(src)) != NULL ? 0 : -1;
}

static void qcopy_free(qcopy_t *c)
{
    free(c->with);
    free(c->after);
    free(c->before);
    for (size_t i = 0; c->ids != NULL && c->ids[i] != NULL; i++)
        free(c->ids[i]);
    free(c->ids);
    memset(c, 0, sizeof(*c));
}

/* Copy `src` (NULL: everything) into c.  0, or -1 when out of memory. */
static int qcopy_set(qcopy_t *c, const tern_archive_query_t *src)
{
    memset(c, 0, sizeof(*c));
    if (src == NULL)
        return 0;
    c->q = *src;
    if (dup_opt(&c->with, src->with) < 0 || dup_opt(&c->after, src->after_id) < 0 ||
        dup_opt(&c->before, src->before_id) < 0)
        goto fail;
    if (src->ids != NULL) {
        size_t n = 0;
        while (src->ids[n] != NULL)
            n++;
        if ((c->ids = calloc(n + 1, sizeof(*c->ids))) == NULL)
            goto fail;
        for (size_t i = 0; i < n; i++)
            if ((c->ids[i] = strdup(src->ids[i])) == NULL)
                goto fail;
    }
    c->q.with = c->with;
    c->q.after_id = c->after;
    c->q.before_id = c->before;
    c->q.ids = (const char *const *)c->ids;
    return 0;
fail:
    qcopy_free(c);
    return -1;
}

static void results_free(store_job_t *j)
{
    for (size_t i = 0; i < j->n; i++) {
        if (j->items != NULL) {
            free((char *)j->items[i].id);
            free((char *)j->items[i].with);
            free((char *)j->items[i].data);
        }
        if (j->entries != NULL) {
            free((char *)j->entries[i].key);
            free((char *)j->entries[i].data);
        }
    }
    free(j->items);
    free(j->entries);
    j->items = NULL;
    j->entries = NULL;
    j->n = j->cap = 0;
}

/* A malloc'd copy of len bytes, NUL-terminated. */
static char *dup_bytes(const char *p, size_t len)
{
    char *d = malloc(len + 1);
    if (d != NULL) {
        if (len > 0)
            memcpy(d, p, len);
        d[len] = '\0';
    }
    return d;
}

/* Room for one more result; 0 or -1. */
static int grow(store_job_t *j, size_t size, void **array)
{
    if (j->n < j->cap)
        return 0;
    size_t cap = j->cap != 0 ? j->cap * 2 : 16;
    void *a = realloc(*array, cap * size);
    if (a == NULL)
        return -1;
    *array = a;
    j->cap = cap;
    return 0;
}

static int collect_item(void *ctx, const tern_archive_item_t *it)
{
    store_job_t *j = ctx;
    void *array = j->items;
    if (grow(j, sizeof(*j->items), &array) < 0) {
        j->oom = 1;
        return 1;
    }
    j->items = array;
    tern_archive_item_t *c = &j->items[j->n];
    c->id = strdup(it->id);
    c->with = strdup(it->with);
    c->data = dup_bytes(it->data, it->len);
    c->when_us = it->when_us;
    c->len = it->len;
    j->n++; /* counted even when a copy failed: results_free frees it */
    if (c->id == NULL || c->with == NULL || c->data == NULL) {
        j->oom = 1;
        return 1;
    }
    return 0;
}

static int collect_entry(void *ctx, const char *key, const char *data, size_t len)
{
    store_job_t *j = ctx;
    void *array = j->entries;
    if (grow(j, sizeof(*j->entries), &array) < 0) {
        j->oom = 1;
        return 1;
    }
    j->entries = array;
    tern_map_entry_t *e = &j->entries[j->n];
    e->key = strdup(key);
    e->data = dup_bytes(data, len);
    e->len = len;
    j->n++;
    if (e->key == NULL || e->data == NULL) {
        j->oom = 1;
        return 1;
    }
    return 0;
}

/* ---- the read itself (worker or loop) ------------------------------------- */

/* Record a failure of the store `db` (or out of memory) in the job. */
static void job_fail(store_job_t *j, store_db_t *db)
{
    const char *why = j->oom ? "out of memory" : store_last_error(db);
    j->rc = -1;
    snprintf(j->error, sizeof(j->error), "%s", why);
    results_free(j);
}

/* Run the job's read (or delete) on handle h of db.  Touches only the
 * job and the store: safe on a worker with a reader. */
static void run_op(store_job_t *j, store_db_t *db, tern_store_t *h)
{
    j->count = j->index = -1;
    if (j->op == OP_MAP_EACH) {
        if (tern_map_foreach(h, j->user, collect_entry, j) < 0 || j->oom)
            job_fail(j, db);
        else
            j->rc = (int)j->n;
        return;
    }
    if (j->op == OP_ARCHIVE_DELETE) {
        long n = tern_archive_delete(h, j->user, &j->q.q); /* a zero query: all */
        if (n < 0)
            job_fail(j, db);
        else
            j->rc = n > INT32_MAX ? INT32_MAX : (int)n;
        return;
    }
    if (tern_archive_query(h, j->user, &j->q.q, collect_item, j) < 0 || j->oom) {
        job_fail(j, db);
        return;
    }
    j->rc = (int)j->n;
    if (!j->has_count)
        return;
    j->count = tern_archive_count_max(h, j->user, &j->cq.q, j->count_max);
    if (j->count >= 0 && j->n > 0) {
        tern_archive_query_t before = j->cq.q;
        size_t k = j->index_of < j->n ? j->index_of : j->n - 1;
        before.before_id = j->items[k].id;
        j->index = tern_archive_count_max(h, j->user, &before, j->count_max);
    }
    if (j->count < 0 || (j->n > 0 && j->index < 0))
        job_fail(j, db);
}

/* On a worker: read through a reader of the server's database. */
static void job_work(void *arg)
{
    store_job_t *j = arg;
    store_db_t *r = store_reader_take(server.db);
    tern_store_t *h = store_reader_handle(r, j->st);
    if (h == NULL || store_read_begin(r) < 0) {
        j->on_loop = 1; /* no reader: the loop reads when the job comes back */
    } else {
        run_op(j, r, h);
        store_read_end(r);
    }
    store_reader_give(server.db, r);
}

/* ---- delivery ---------------------------------------------------------------- */

static const tern_module_ctx_t *slot_key(const store_job_t *j)
{
    return (const tern_module_ctx_t *)(const void *)j;
}

/* The session ended first (its slot is being freed): the result goes. */
static void session_gone(void *data)
{
    store_job_t *j = data;
    j->s = NULL;
    j->gone = 1;
    workers_cancel(&j->worker);
}

/* Take the job's slot off its session without calling session_gone. */
static void slot_clear(store_job_t *j)
{
    if (j->s == NULL)
        return;
    sessions_slot_take(j->s, slot_key(j));
    j->s = NULL;
}

/* The slot that says "this session's input is held for its reads". */
static char hold_key;
#define HOLD_KEY ((const tern_module_ctx_t *)(const void *)&hold_key)

/* Stop handling the session's input while it has reads pending: through
 * its link (route/sessions.h), whatever the transport. */
static void hold_input(tern_session_t *s)
{
    if (s == NULL || sessions_slot_get(s, HOLD_KEY) != NULL)
        return;
    if (sessions_slot_set(s, HOLD_KEY, &hold_key, NULL) == 0 && !sessions_hold_input(s))
        sessions_slot_take(s, HOLD_KEY); /* detached, or a link that cannot hold */
}

/* Read the session again once no read of its but `except` is pending. */
static void release_input(tern_session_t *s, const store_job_t *except)
{
    if (s == NULL || sessions_slot_get(s, HOLD_KEY) == NULL)
        return;
    for (const store_job_t *j = jobs; j != NULL; j = j->next)
        if (j != except && j->s == s && j->op != OP_ARCHIVE_DELETE)
            return;
    sessions_slot_take(s, HOLD_KEY);
    sessions_release_input(s);
}

static void job_free(store_job_t *j)
{
    if (j->prev != NULL)
        j->prev->next = j->next;
    else if (jobs == j)
        jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    else if (jobs_tail == j)
        jobs_tail = j->prev;
    slot_clear(j);
    results_free(j);
    qcopy_free(&j->q);
    qcopy_free(&j->cq);
    free(j->user);
    free(j);
    if (jobs == NULL && ready_ev != NULL) {
        event_free(ready_ev);
        ready_ev = NULL;
    }
}

/* Call the module back (unless it was told already) and free the job. */
static void deliver(store_job_t *j)
{
    tern_session_t *s = j->s;
    int cancelled = j->gone;
    release_input(s, j); /* before the callback: it may end the session */
    slot_clear(j);
    if (j->m != NULL) {
        tern_module_ctx_t *m = j->m;
        if (j->rc < 0 && !cancelled && strncmp(j->error, "item-not-found", 14) != 0)
            log_error("storage: %s", j->error);
        if (j->op == OP_MAP_EACH) {
            tern_map_result_t res = {.rc = j->rc, .entries = j->entries};
            res.error = j->rc < 0 ? "storage error" : NULL;
            j->map_done(m, s, j->ctx, cancelled ? NULL : &res);
        } else if (j->archive_done != NULL) {
            tern_archive_result_t res = {
                .rc = j->rc, .items = j->items, .count = j->count, .index = j->index};
            if (j->rc < 0)
                res.error = strncmp(j->error, "item-not-found", 14) == 0 ? "item-not-found"
                                                                         : "storage error";
            j->archive_done(m, s, j->ctx, cancelled ? NULL : &res);
        }
    }
    job_free(j);
}

/* Whether an earlier job of the same session is still waiting. */
static int held_back(const store_job_t *j)
{
    if (j->serial == 0)
        return 0;
    for (const store_job_t *e = jobs; e != NULL && e != j; e = e->next)
        if (e->serial == j->serial)
            return 1;
    return 0;
}

/* Deliver every finished job that no earlier job of its session holds
 * back, in call order.  A callback may start new jobs (they go to the
 * end) or end sessions: the walk starts over after each delivery. */
static void deliver_ready(void)
{
    for (;;) {
        store_job_t *j = jobs;
        while (j != NULL && !(j->finished && !held_back(j)))
            j = j->next;
        if (j == NULL)
            return;
        deliver(j);
    }
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    deliver_ready();
}

/* Deliver later, from the loop (never under the caller's feet). */
static void schedule_delivery(void)
{
    if (ready_ev == NULL && server.base != NULL)
        ready_ev = event_new(server.base, -1, 0, on_ready, NULL);
    if (ready_ev != NULL)
        event_active(ready_ev, 0, 0);
}

/* Back from the worker pool, on the loop. */
static void job_done(void *arg, worker_end_t how)
{
    store_job_t *j = arg;
    j->worker = NULL;
    if (j->m != NULL && !j->gone && (how == WORKER_NOT_RUN || j->on_loop) && server.db != NULL)
        run_op(j, server.db, j->st); /* the worker could not: read here */
    j->finished = 1;
    deliver_ready();
}

/* ---- the calls ----------------------------------------------------------------- */

static store_job_t *job_new(tern_module_ctx_t *m, tern_session_t *s, op_t op, tern_store_t *st,
                            const char *user, const tern_archive_query_t *q)
{
    if (m == NULL || st == NULL || server.db == NULL)
        return NULL;
    store_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->m = m;
    j->op = op;
    j->st = st;
    if ((j->user = strdup(user != NULL ? user : "")) == NULL || qcopy_set(&j->q, q) < 0) {
        free(j->user);
        free(j);
        return NULL;
    }
    if (s != NULL) {
        j->serial = tern_session_serial(s);
        if (sessions_slot_set(s, slot_key(j), j, session_gone) < 0) {
            j->s = NULL;
            job_free(j);
            return NULL;
        }
        j->s = s;
    }
    return j;
}

/* Queue j (after the checks) and start its read. */
static void job_start(store_job_t *j)
{
    j->prev = jobs_tail;
    if (jobs_tail != NULL)
        jobs_tail->next = j;
    else
        jobs = j;
    jobs_tail = j;
    if (j->op != OP_ARCHIVE_DELETE) {
        hold_input(j->s);
        int where = store_read_prepare(server.db);
        if (where < 0) {
            job_fail(j, server.db);
        } else if (where == 0 &&
                   (j->worker = workers_submit_short(job_work, job_done, j)) != NULL) {
            return;
        } else {
            run_op(j, server.db, j->st);
        }
    } else {
        run_op(j, server.db, j->st); /* a write: the loop's connection, in the batch */
    }
    j->finished = 1;
    schedule_delivery();
}

int tern_archive_query_async(tern_module_ctx_t *m, tern_session_t *s, tern_store_t *st,
                             const char *user, const tern_archive_query_t *q,
                             const tern_archive_count_t *count, tern_archive_done_t done, void *ctx)
{
    if (done == NULL)
        return -1;
    store_job_t *j = job_new(m, s, OP_ARCHIVE_QUERY, st, user, q);
    if (j == NULL)
        return -1;
    if (count != NULL) {
        j->has_count = 1;
        j->count_max = count->max;
        j->index_of = count->index_of;
        if (qcopy_set(&j->cq, count->q) < 0) {
            job_free(j);
            return -1;
        }
    }
    j->archive_done = done;
    j->ctx = ctx;
    job_start(j);
    return 0;
}

int tern_archive_delete_async(tern_module_ctx_t *m, tern_session_t *s, tern_store_t *st,
                              const char *user, const tern_archive_query_t *q,
                              tern_archive_done_t done, void *ctx)
{
    store_job_t *j = job_new(m, s, OP_ARCHIVE_DELETE, st, user, q);
    if (j == NULL)
        return -1;
    j->archive_done = done;
    j->ctx = ctx;
    job_start(j);
    return 0;
}

int tern_map_foreach_async(tern_module_ctx_t *m, tern_session_t *s, tern_store_t *st,
                           const char *user, tern_map_done_t done, void *ctx)
{
    if (done == NULL)
        return -1;
    store_job_t *j = job_new(m, s, OP_MAP_EACH, st, user, NULL);
    if (j == NULL)
        return -1;
    j->map_done = done;
    j->ctx = ctx;
    job_start(j);
    return 0;
}

void store_jobs_release(tern_module_ctx_t *m)
{
    store_job_t *j = jobs, *next;
    for (; j != NULL; j = next) {
        next = j->next;
        if (j->m != m)
            continue;
        release_input(j->s, j);
        slot_clear(j);
        j->gone = 1;
        j->m = NULL;
        if (j->op == OP_MAP_EACH)
            j->map_done(m, NULL, j->ctx, NULL);
        else if (j->archive_done != NULL)
            j->archive_done(m, NULL, j->ctx, NULL);
        if (j->worker != NULL)
            workers_cancel(&j->worker); /* job_done frees it later */
        else if (j->finished)
            job_free(j); /* nothing else would: the loop may be stopping */
    }
}

size_t store_jobs_pending(void)
{
    size_t n = 0;
    for (const store_job_t *j = jobs; j != NULL; j = j->next)
        n++;
    return n;
}
