/*
 * store_checkpoint.c — WAL checkpoints on a thread of their own.
 *
 * A checkpoint copies the write-ahead log into the database file and
 * syncs it to disk: milliseconds of I/O that must not stall the event
 * loop.  The loop's connection therefore never checkpoints; after each
 * commit its WAL hook wakes this thread once the log has grown past a
 * threshold, and the thread runs a PASSIVE checkpoint (which never
 * blocks writers) on its own connection.  It also checkpoints every few
 * seconds when idle, and once more when stopped.
 */
#include "store/store_checkpoint.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define WAKE_PAGES   1000 /* WAL pages that make the loop wake the thread */
#define IDLE_SECONDS 5

struct checkpointer {
    sqlite3 *conn; /* the thread's own connection */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int pending, stop;
    int signalled_at; /* log size when the thread was last woken (loop side) */
};

static void *run(void *arg)
{
    checkpointer_t *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        if (!c->pending) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += IDLE_SECONDS;
            pthread_cond_timedwait(&c->wake, &c->lock, &until);
        }
        c->pending = 0;
        pthread_mutex_unlock(&c->lock);
        sqlite3_wal_checkpoint_v2(c->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* The loop's connection after a commit: `pages` frames in the log. */
static int on_wal(void *arg, sqlite3 *db, const char *name, int pages)
{
    checkpointer_t *c = arg;
    (void)db;
    (void)name;
    if (pages < c->signalled_at)
        c->signalled_at = 0; /* the log started over */
    if (pages - c->signalled_at >= WAKE_PAGES && pthread_mutex_trylock(&c->lock) == 0) {
        c->signalled_at = pages;
        c->pending = 1;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
    }
    return SQLITE_OK;
}

checkpointer_t *checkpointer_start(sqlite3 *main_conn)
{
    const char *path = sqlite3_db_filename(main_conn, "main");
    if (!path || !*path)
        return NULL; /* in-memory database: nothing to checkpoint */
    checkpointer_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (sqlite3_open_v2(path, &c->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(c->conn, 5000);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        goto fail;
    }
    sqlite3_wal_autocheckpoint(main_conn, 0);
    sqlite3_wal_hook(main_conn, on_wal, c);
    return c;
fail:
    sqlite3_close(c->conn);
    free(c);
    return NULL;
}

void checkpointer_stop(checkpointer_t **cp, sqlite3 *main_conn)
{
    if (!cp || !*cp)
        return;
    checkpointer_t *c = *cp;
    sqlite3_wal_hook(main_conn, NULL, NULL);
    pthread_mutex_lock(&c->lock);
    c->stop = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    sqlite3_wal_checkpoint_v2(c->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    sqlite3_close(c->conn);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
    *cp = NULL;
}
