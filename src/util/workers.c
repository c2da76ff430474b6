/*
 * workers.c — the worker pool (see workers.h).
 *
 * Owns the threads, the queue of jobs waiting for a thread, and the list
 * of finished jobs waiting for the loop.  A worker that finishes a job
 * appends it to that list and, when the list was empty, writes one byte
 * to a pipe; the loop's read event on the pipe takes the whole list and
 * runs each job's `done`.  `cancelled` is written only on the loop and
 * read by a worker only to skip work nobody wants any more.  Short jobs
 * (store reads, workers_submit_short) have a queue of their own, taken
 * first by every thread, and one thread that takes only them: seconds of
 * key derivation on every other thread never keep a read waiting.  Never runs
 * a job's `done` on a worker thread, never blocks the loop (the pipe is
 * non-blocking; the lock is held only to move list pointers).
 */
#include "util/workers.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 16

struct worker_job {
    worker_job_t *next;
    worker_fn work;
    worker_done_fn done;
    void *arg;
    atomic_int cancelled;
    int ran;
};

typedef struct {
    worker_job_t *head, *tail;
} job_list_t;

static struct {
    int running;
    pthread_t threads[MAX_THREADS];
    int n_threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job_list_t queue, shorts, finished;
    int stop;
    int pipe_r, pipe_w;
    struct event *ev;
} pool = {.pipe_r = -1, .pipe_w = -1};

static void list_push(job_list_t *l, worker_job_t *j)
{
    j->next = NULL;
    if (l->tail != NULL)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static worker_job_t *list_pop(job_list_t *l)
{
    worker_job_t *j = l->head;
    if (j != NULL) {
        l->head = j->next;
        if (l->head == NULL)
            l->tail = NULL;
    }
    return j;
}

/* A thread: short jobs first; `arg` non-NULL: short jobs only. */
static void *worker_main(void *arg)
{
    int shorts_only = arg != NULL;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stop && pool.shorts.head == NULL && (shorts_only || pool.queue.head == NULL))
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stop)
            break;
        worker_job_t *j = list_pop(pool.shorts.head != NULL ? &pool.shorts : &pool.queue);
        pthread_mutex_unlock(&pool.lock);
        if (!atomic_load(&j->cancelled)) {
            j->work(j->arg);
            j->ran = 1;
        }
        pthread_mutex_lock(&pool.lock);
        int was_empty = pool.finished.head == NULL;
        list_push(&pool.finished, j);
        if (was_empty) {
            char b = 1;
            ssize_t n = write(pool.pipe_w, &b, 1);
            (void)n; /* full pipe: the loop is already woken */
        }
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Run `done` for each job of a list taken off the pool, and free them. */
static void deliver(worker_job_t *j)
{
    while (j != NULL) {
        worker_job_t *next = j->next;
        j->done(j->arg, atomic_load(&j->cancelled) ? WORKER_CANCELLED
                        : j->ran                   ? WORKER_DONE
                                                   : WORKER_NOT_RUN);
        free(j);
        j = next;
    }
}

/* The pipe is readable: take every finished job and deliver it. */
static void on_finished(evutil_socket_t fd, short what, void *unused)
{
    (void)what;
    (void)unused;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&pool.lock);
    worker_job_t *list = pool.finished.head;
    pool.finished.head = pool.finished.tail = NULL;
    pthread_mutex_unlock(&pool.lock);
    deliver(list);
}

int workers_start(struct event_base *base, int threads)
{
    if (pool.running || base == NULL || threads < 1)
        return -1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    pool.pipe_r = fds[0];
    pool.pipe_w = fds[1];
    pool.ev = event_new(base, pool.pipe_r, EV_READ | EV_PERSIST, on_finished, NULL);
    if (pool.ev == NULL || event_add(pool.ev, NULL) < 0)
        goto fail;
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pool.stop = 0;
    pool.running = 1;
    for (int i = 0; i <= threads && i < MAX_THREADS; i++) { /* + one for short jobs */
        if (pthread_create(&pool.threads[i], NULL, worker_main, i == threads ? &pool : NULL) != 0)
            break;
        pool.n_threads++;
    }
    if (pool.n_threads > 0)
        return 0;
    pool.running = 0;
    pthread_cond_destroy(&pool.wake);
    pthread_mutex_destroy(&pool.lock);
fail:
    if (pool.ev != NULL)
        event_free(pool.ev);
    pool.ev = NULL;
    close(pool.pipe_r);
    close(pool.pipe_w);
    pool.pipe_r = pool.pipe_w = -1;
    return -1;
}

void workers_stop(void)
{
    if (!pool.running)
        return;
    pthread_mutex_lock(&pool.lock);
    pool.stop = 1;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.n_threads; i++)
        pthread_join(pool.threads[i], NULL);
    pool.n_threads = 0;
    worker_job_t *finished = pool.finished.head, *queued = pool.queue.head;
    worker_job_t *shorts = pool.shorts.head;
    pool.finished.head = pool.finished.tail = NULL;
    pool.queue.head = pool.queue.tail = NULL;
    pool.shorts.head = pool.shorts.tail = NULL;
    pool.running = 0; /* a `done` that submits again is refused */
    deliver(finished);
    deliver(shorts);
    deliver(queued);
    event_free(pool.ev);
    pool.ev = NULL;
    close(pool.pipe_r);
    close(pool.pipe_w);
    pool.pipe_r = pool.pipe_w = -1;
    pthread_cond_destroy(&pool.wake);
    pthread_mutex_destroy(&pool.lock);
}

static worker_job_t *submit(job_list_t *to, worker_fn work, worker_done_fn done, void *arg)
{
    if (!pool.running || work == NULL || done == NULL)
        return NULL;
    worker_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&pool.lock);
    list_push(to, j);
    pthread_cond_broadcast(&pool.wake); /* the short-jobs thread may not take it */
    pthread_mutex_unlock(&pool.lock);
    return j;
}

worker_job_t *workers_submit(worker_fn work, worker_done_fn done, void *arg)
{
    return submit(&pool.queue, work, done, arg);
}

worker_job_t *workers_submit_short(worker_fn work, worker_done_fn done, void *arg)
{
    return submit(&pool.shorts, work, done, arg);
}

void workers_cancel(worker_job_t **job)
{
    if (job == NULL || *job == NULL)
        return;
    atomic_store(&(*job)->cancelled, 1);
    *job = NULL;
}
