/*
 * store_checkpoint.c — WAL checkpoints on a thread of their own.
 *
 * A checkpoint copies the write-ahead log into the database file and
 * syncs it to disk: milliseconds of I/O that must not stall the event
 * loop.  The loop's connection therefore never checkpoints; after each
 * commit its WAL hook wakes this thread once the log has grown past a
 * threshold, and the thread runs a PASSIVE checkpoint (which never
 * blocks writers) on its own connection.
 *
 * Keeping the log bounded takes three more things:
 *  - the thread's connection reads the database once when opened: a
 *    connection that never read it has not opened the log, and SQLite
 *    then treats a checkpoint on it as a no-op;
 *  - under a flood of writes a PASSIVE checkpoint never catches up (new
 *    frames arrive while it copies, so the log is never wholly copied and
 *    the writer never starts it over).  When the log is still past
 *    HARD_PAGES after a PASSIVE checkpoint, the thread runs a RESTART
 *    checkpoint, which needs a moment without writers.  Busy-waiting for
 *    it would starve (the loop commits every few milliseconds and takes
 *    the lock again at once), so the thread closes a gate first: the
 *    loop's next transaction waits at checkpointer_gate() until the
 *    RESTART is over.  Right after a PASSIVE checkpoint few frames are
 *    left to copy, so that wait is short; it is the back-pressure that
 *    bounds the log when writes outpace the disk;
 *  - `PRAGMA journal_size_limit` on both connections, so that a log that
 *    starts over is truncated back to LOG_LIMIT bytes, and a TRUNCATE
 *    checkpoint (gated too) when idle (no wake-up for IDLE_SECONDS)
 *    empties it.
 * Once more when stopped.
 */
#include "store/store_checkpoint.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define WAKE_PAGES   1000 /* WAL pages that make the loop wake the thread */
#define HARD_PAGES   1000 /* past this, checkpoint with RESTART */
#define IDLE_SECONDS 5
#define LOG_LIMIT    "4194304" /* bytes a log is cut back to when it starts over */

struct checkpointer {
    sqlite3 *conn; /* the thread's own connection */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int pending, stop;
    int signalled_at;     /* log size when the thread was last woken (loop side) */
    pthread_mutex_t gate; /* held by the thread during a RESTART/TRUNCATE */
    atomic_int gate_closing;
};

/* The thread's busy handler during a gated checkpoint: retry every 200 us, for
 * RESTART_WAIT_US at most (the loop may be inside a transaction that
 * waits at nothing, or reading with a statement open). */
#define RESTART_WAIT_US 200000
static int restart_busy(void *arg, int tries)
{
    (void)arg;
    if ((long)tries * 200 >= RESTART_WAIT_US)
        return 0;
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
    return 1;
}

/* A RESTART or TRUNCATE checkpoint (they wait for writers) with the
 * gate closed (see the top of the file). */
static void gated(checkpointer_t *c, int mode)
{
    atomic_store(&c->gate_closing, 1);
    pthread_mutex_lock(&c->gate);
    sqlite3_busy_handler(c->conn, restart_busy, NULL);
    sqlite3_wal_checkpoint_v2(c->conn, NULL, mode, NULL, NULL);
    sqlite3_busy_timeout(c->conn, 5000);
    pthread_mutex_unlock(&c->gate);
    atomic_store(&c->gate_closing, 0);
}

void checkpointer_gate(checkpointer_t *c)
{
    if (c != NULL && atomic_load(&c->gate_closing)) {
        pthread_mutex_lock(&c->gate);
        pthread_mutex_unlock(&c->gate);
    }
}

/* One round: PASSIVE, then RESTART if the log is still too long (see
 * the top of the file); TRUNCATE when the loop was idle. */
static void checkpoint(checkpointer_t *c, int idle)
{
    int log = 0, done = 0;
    if (idle) {
        gated(c, SQLITE_CHECKPOINT_TRUNCATE);
        return;
    }
    if (sqlite3_wal_checkpoint_v2(c->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done) ==
            SQLITE_OK &&
        log >= HARD_PAGES)
        gated(c, SQLITE_CHECKPOINT_RESTART);
}

static void *run(void *arg)
{
    checkpointer_t *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        int idle = 0;
        if (!c->pending) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += IDLE_SECONDS;
            idle = pthread_cond_timedwait(&c->wake, &c->lock, &until) != 0 && !c->pending;
        }
        c->pending = 0;
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->lock);
        checkpoint(c, idle);
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
    /* Read once, so that the connection opens the log (see the top). */
    static const char limit[] = "PRAGMA journal_size_limit = " LOG_LIMIT;
    if (sqlite3_exec(c->conn, limit, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(c->conn, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(main_conn, limit, NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->gate, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->gate);
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
    sqlite3_wal_checkpoint_v2(c->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_close(c->conn);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->gate);
    pthread_mutex_destroy(&c->lock);
    free(c);
    *cp = NULL;
}
