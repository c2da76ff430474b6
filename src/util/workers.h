/*
 * workers.h — a small pool of threads for CPU-bound work (internal).
 *
 * The event loop must never wait for seconds of key derivation (PBKDF2
 * with up to 10 M iterations).  Such work is handed to the pool as a job:
 * `work` runs on a worker thread and must touch nothing the loop owns
 * (no store, no session: only its own copy of the inputs); `done` then
 * runs on the loop with the results.  A job whose owner went away (a
 * session closed meanwhile) is cancelled: `done` still runs, with
 * WORKER_CANCELLED, and must only free the job's data.
 */
#ifndef TERN_WORKERS_H
#define TERN_WORKERS_H

#include <event2/event.h>

typedef struct worker_job worker_job_t;

/* How a job ends, as told to its `done`. */
typedef enum {
    WORKER_DONE = 0,      /* `work` ran: the results are there */
    WORKER_CANCELLED = 1, /* the owner cancelled it: free the data only */
    WORKER_NOT_RUN = 2    /* the pool stopped before `work` ran; owner still there */
} worker_end_t;

typedef void (*worker_fn)(void *arg);
typedef void (*worker_done_fn)(void *arg, worker_end_t how);

/* Start `threads` workers (and one more for short jobs only) whose
 * results come back on `base`.  0 or -1. */
int workers_start(struct event_base *base, int threads);
/* Join the workers (after the job each is running); every job not yet
 * delivered gets its `done` (WORKER_NOT_RUN when it never ran). */
void workers_stop(void);
/* Queue a job; the handle stays valid until `done` runs.  NULL when the
 * pool is not running (tools, tests: the caller works inline) or out of
 * memory. */
worker_job_t *workers_submit(worker_fn work, worker_done_fn done, void *arg);
/* The same for a job of milliseconds (a store read): it never waits
 * behind long jobs (see workers.c). */
worker_job_t *workers_submit_short(worker_fn work, worker_done_fn done, void *arg);
/* On the loop: the owner no longer wants the result (see above); *job
 * becomes NULL.  Safe with a NULL or already-cleared handle. */
void workers_cancel(worker_job_t **job);

#endif
