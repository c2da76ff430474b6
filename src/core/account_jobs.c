/*
 * account_jobs.c — account creation and password change for modules,
 * with the key derivation on the worker pool (tern_account_*_async).
 *
 * Owns the pending jobs.  The loop does the cheap checks and the store
 * writes; a worker only derives keys (and checks an old password) from
 * the job's own copies.  A job is tied to its session by a session slot
 * keyed by the job itself: when the session ends first, the slot's free
 * function marks the job orphaned and the result is dropped.  On module
 * unload, the module's jobs are orphaned too and their callback told at
 * once (module_api_release, while the module's code is still mapped).
 * Passwords and derived keys are wiped when a job is freed.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <tern/jid.h>

#include "store/accounts.h"
#include "core/account_jobs.h"
#include "route/hooks.h"
#include "core/modules.h"
#include "core/server.h"
#include "util/workers.h"
#include "route/sessions.h"

typedef enum { JOB_CREATE, JOB_PASSWD } job_kind_t;

typedef struct account_job {
    struct account_job *next, *prev; /* every pending job (module unload) */
    tern_module_ctx_t *m;            /* NULL once the module is gone */
    tern_session_t *s;               /* NULL once the session is gone */
    job_kind_t kind;
    char *local;    /* prepared localpart */
    char *password; /* wiped when freed */
    unsigned iterations;
    accounts_check_t *old; /* JOB_PASSWD with an old password */
    scram_cred_t creds[SCRAM_HASH_COUNT];
    int derived; /* worker: 0 ok, -1 invalid password */
    int old_ok;  /* worker: the old password matched */
    worker_job_t *worker;
    tern_account_done_t done;
    void *ctx;
} account_job_t;

static account_job_t *jobs;

/* Slots are keyed by an owner pointer; each job uses its own address. */
static const tern_module_ctx_t *slot_key(const account_job_t *j)
{
    return (const tern_module_ctx_t *)(const void *)j;
}

/* The session ended first (its slot is being freed): drop the result. */
static void session_gone(void *data)
{
    account_job_t *j = data;
    j->s = NULL;
    workers_cancel(&j->worker);
}

/* Take the job's slot off its session without calling session_gone. */
static void slot_clear(account_job_t *j)
{
    if (j->s == NULL)
        return;
    sessions_slot_take(j->s, slot_key(j));
    j->s = NULL;
}

static void job_free(account_job_t *j)
{
    if (j->prev != NULL)
        j->prev->next = j->next;
    else if (jobs == j)
        jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    slot_clear(j);
    accounts_check_free(&j->old);
    if (j->password != NULL) {
        OPENSSL_cleanse(j->password, strlen(j->password));
        free(j->password);
    }
    free(j->local);
    OPENSSL_cleanse(j->creds, sizeof(j->creds));
    free(j);
}

/* On a worker: check the old password if asked, derive the new keys. */
static void job_work(void *arg)
{
    account_job_t *j = arg;
    if (j->old != NULL) {
        accounts_check_run(j->old);
        j->old_ok = accounts_check_ok(j->old);
        if (!j->old_ok)
            return;
    }
    j->derived = accounts_derive(j->password, j->iterations, j->creds);
}

/* On the loop: store what the worker derived.  0, or -1 with *error_r. */
static int job_store(account_job_t *j, const char **error_r)
{
    if (j->old != NULL && !j->old_ok) {
        *error_r = "wrong password";
        return -1;
    }
    if (j->derived < 0) {
        *error_r = "invalid password";
        return -1;
    }
    if (server.db == NULL) {
        *error_r = "storage error";
        return -1;
    }
    const char *host = j->m->host->name;
    if (j->kind == JOB_PASSWD)
        return accounts_passwd_derived(server.db, host, j->local, j->creds, error_r);
    if (accounts_add_derived(server.db, host, j->local, j->creds, error_r) < 0)
        return -1;
    tern_event_t ev = {.user = j->local};
    hooks_fire(j->m->host->hooks, "user/created", &ev);
    return 0;
}

static void job_done(void *arg, worker_end_t how)
{
    account_job_t *j = arg;
    j->worker = NULL;
    tern_session_t *s = how == WORKER_DONE ? j->s : NULL;
    slot_clear(j);
    if (j->m != NULL) {
        const char *error = NULL;
        int rc = s != NULL ? job_store(j, &error) : -1;
        j->done(j->m, s, j->ctx, rc, error);
    }
    job_free(j);
}

/* Both calls: the checks at once, then the job. */
static int start(tern_module_ctx_t *m, tern_session_t *s, job_kind_t kind, const char *local,
                 const char *old_password, const char *password, tern_account_done_t done,
                 void *ctx, const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    *error_r = "storage error";
    if (m == NULL || s == NULL || done == NULL || server.db == NULL)
        return -1;
    if (password == NULL || password[0] == '\0') {
        *error_r = "invalid password";
        return -1;
    }
    char *user = local != NULL ? tern_jid_prep_local(local) : NULL;
    if (user == NULL) {
        *error_r = "invalid username";
        return -1;
    }
    int exists = store_account_exists(server.db, m->host->name, user);
    if (exists < 0 || exists == (kind == JOB_CREATE)) {
        *error_r = exists < 0 ? "storage error" : exists ? "account exists" : "no such account";
        free(user);
        return -1;
    }
    account_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        free(user);
        return -1;
    }
    j->m = m;
    j->kind = kind;
    j->local = user;
    j->iterations = (unsigned)server.cfg->scram_iterations;
    j->done = done;
    j->ctx = ctx;
    j->password = strdup(password);
    if (old_password != NULL)
        j->old = accounts_check_new(server.db, m->host->name, user, old_password);
    if (j->password == NULL || (old_password != NULL && j->old == NULL) ||
        sessions_slot_set(s, slot_key(j), j, session_gone) < 0) {
        job_free(j);
        return -1;
    }
    j->s = s;
    j->next = jobs;
    if (jobs != NULL)
        jobs->prev = j;
    jobs = j;
    j->worker = workers_submit(job_work, job_done, j);
    if (j->worker == NULL) { /* no pool (or no memory): derive here */
        job_work(j);
        job_done(j, WORKER_DONE);
    }
    return 0;
}

int tern_account_create_async(tern_module_ctx_t *m, tern_session_t *s, const char *local,
                              const char *password, tern_account_done_t done, void *ctx,
                              const char **error_r)
{
    return start(m, s, JOB_CREATE, local, NULL, password, done, ctx, error_r);
}

int tern_account_passwd_async(tern_module_ctx_t *m, tern_session_t *s, const char *local,
                              const char *old_password, const char *password,
                              tern_account_done_t done, void *ctx, const char **error_r)
{
    return start(m, s, JOB_PASSWD, local, old_password, password, done, ctx, error_r);
}

void account_jobs_release(tern_module_ctx_t *m)
{
    for (account_job_t *j = jobs; j != NULL; j = j->next) {
        if (j->m != m)
            continue;
        slot_clear(j);
        workers_cancel(&j->worker); /* job_done frees it later */
        j->m = NULL;
        j->done(m, NULL, j->ctx, -1, "unloaded");
    }
}
