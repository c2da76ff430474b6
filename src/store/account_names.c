/*
 * account_names.c — which accounts exist, answered from memory (see
 * account_names.h).
 *
 * Owns one set of "user@host" keys for the daemon's database, the
 * data_version it was read at, and at most one re-read of it on a worker
 * thread.  While a re-read runs, the changes this process makes are noted
 * (a journal) and played onto the new set when it arrives, so that none
 * is lost between the worker's snapshot and the swap.
 * Must not: answer "no such account" from memory after another process
 * wrote to the database; touch the set from a worker thread.
 */
#include "store/account_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/hashmap.h"
#include "util/log.h"
#include "util/workers.h"

/* Least time between two re-reads of the set (a batch of accounts added
 * by another process commits many times): meanwhile, names not in the
 * set are looked up in the database. */
#define REREAD_MIN_MS 2000

static char present; /* the value of every key (a hash map value is never NULL) */

typedef struct change {
    char *key;
    int added;
} change_t;

/* A re-read of the set on a worker: its own table until it is back. */
typedef struct reread {
    store_db_t *db;
    hashmap_t *set;
    int failed;
    worker_job_t *worker;
} reread_t;

static struct {
    store_db_t *db;    /* NULL: not loaded, checks go to the database */
    hashmap_t *set;    /* "user@host" -> &present */
    long long version; /* db's data_version when the set was whole */
    int stale;         /* another process wrote since: misses ask the db */
    reread_t *reread;  /* a re-read on its way, or NULL */
    long long reread_version;
    long long reread_at_ms;
    change_t *journal; /* our changes since the re-read's snapshot was asked */
    size_t njournal, cjournal;
} names;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "user@host" into buf; NULL when it does not fit. */
static const char *key_of(char *buf, size_t len, const char *host, const char *user)
{
    int n = snprintf(buf, len, "%s@%s", user, host);
    return n > 0 && (size_t)n < len ? buf : NULL;
}

static int add_name(void *ctx, const char *host, const char *user)
{
    reread_t *r = ctx;
    char buf[2100];
    const char *key = key_of(buf, sizeof(buf), host, user);
    if (key == NULL || hashmap_put(r->set, key, &present) < 0) {
        r->failed = 1;
        return 1;
    }
    return 0;
}

static void journal_clear(void)
{
    for (size_t i = 0; i < names.njournal; i++)
        free(names.journal[i].key);
    free(names.journal);
    names.journal = NULL;
    names.njournal = names.cjournal = 0;
}

/* Note a change for the re-read on its way.  When it cannot be noted,
 * the re-read's set would miss it: the set stays stale instead. */
static void journal_note(const char *key, int added)
{
    if (names.reread == NULL)
        return;
    if (names.njournal == names.cjournal) {
        size_t cap = names.cjournal != 0 ? names.cjournal * 2 : 16;
        change_t *j = realloc(names.journal, cap * sizeof(*j));
        if (j == NULL) {
            names.reread->failed = 1;
            return;
        }
        names.journal = j;
        names.cjournal = cap;
    }
    if ((names.journal[names.njournal].key = strdup(key)) == NULL) {
        names.reread->failed = 1;
        return;
    }
    names.journal[names.njournal++].added = added;
}

static void reread_free(reread_t *r)
{
    hashmap_free(&r->set);
    free(r);
}

/* ---- the re-read on a worker ---------------------------------------------- */

static void reread_work(void *arg)
{
    reread_t *r = arg;
    store_db_t *reader = store_reader_take(r->db);
    if (reader == NULL || store_read_begin(reader) < 0) {
        r->failed = 1;
    } else {
        if (store_account_foreach(reader, NULL, add_name, r) < 0)
            r->failed = 1;
        store_read_end(reader);
    }
    if (reader != NULL)
        store_reader_give(r->db, reader);
}

/* Back on the loop: play our changes onto the new set and take it, unless
 * it failed or was given up (then the set stays stale: misses still ask
 * the database, and a later miss tries again). */
static void reread_done(void *arg, worker_end_t how)
{
    reread_t *r = arg;
    if (names.reread != r) { /* given up (account_names_free) */
        reread_free(r);
        return;
    }
    names.reread = NULL;
    for (size_t i = 0; how == WORKER_DONE && !r->failed && i < names.njournal; i++) {
        if (!names.journal[i].added)
            hashmap_remove(r->set, names.journal[i].key);
        else if (hashmap_put(r->set, names.journal[i].key, &present) < 0)
            r->failed = 1;
    }
    journal_clear();
    if (how != WORKER_DONE || r->failed) {
        log_warn("accounts: the account names could not be read again; "
                 "unknown names are looked up in the database meanwhile");
        reread_free(r);
        return;
    }
    hashmap_t *old = names.set;
    names.set = r->set;
    r->set = old;
    names.version = names.reread_version;
    names.stale = 0;
    log_info("accounts: %zu account names read again after a write by another process",
             hashmap_count(names.set));
    reread_free(r);
}

/* Start a re-read of the set, unless one runs or one started lately. */
static void reread_start(void)
{
    long long now = now_ms();
    if (names.reread != NULL ||
        (names.reread_at_ms != 0 && now - names.reread_at_ms < REREAD_MIN_MS))
        return;
    names.reread_at_ms = now;
    /* The version first: a write after it makes the new set stale again. */
    long long v = store_data_version(names.db);
    if (v < 0 || store_read_prepare(names.db) != 0)
        return; /* the reader would not see everything: stay stale */
    reread_t *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->set = hashmap_new()) == NULL) {
        free(r);
        return;
    }
    r->db = names.db;
    names.reread = r;
    names.reread_version = v;
    if ((r->worker = workers_submit_short(reread_work, reread_done, r)) == NULL) {
        names.reread = NULL; /* no pool (tests, tools): stay stale */
        journal_clear();
        reread_free(r);
    }
}

/* ---- the calls ----------------------------------------------------------------- */

int account_names_load(store_db_t *db)
{
    account_names_free();
    reread_t r = {.db = db, .set = hashmap_new()};
    long long v = store_data_version(db);
    if (r.set == NULL || v < 0 || store_account_foreach(db, NULL, add_name, &r) < 0 || r.failed) {
        hashmap_free(&r.set);
        log_warn("accounts: account names not held in memory; every check reads the database");
        return -1;
    }
    names.db = db;
    names.set = r.set;
    names.version = v;
    names.stale = 0;
    return 0;
}

void account_names_free(void)
{
    if (names.reread != NULL) {
        workers_cancel(&names.reread->worker); /* reread_done frees it */
        names.reread = NULL;
    }
    journal_clear();
    hashmap_free(&names.set);
    names.db = NULL;
    names.stale = 0;
    names.reread_at_ms = 0;
}

int account_names_exists(store_db_t *db, const char *host, const char *user)
{
    char buf[2100];
    const char *key = host != NULL && user != NULL ? key_of(buf, sizeof(buf), host, user) : NULL;
    if (db == NULL || db != names.db || names.set == NULL || key == NULL)
        return store_account_exists(db, host, user);
    if (hashmap_get(names.set, key) != NULL)
        return 1;
    if (!names.stale) {
        long long v = store_data_version(db);
        if (v == names.version)
            return 0;
        names.stale = 1; /* another process wrote: it may have added this one */
    }
    int exists = store_account_exists(db, host, user);
    if (exists == 1 && hashmap_put(names.set, key, &present) == 0)
        journal_note(key, 1);
    reread_start();
    return exists;
}

void account_names_added(store_db_t *db, const char *host, const char *user)
{
    char buf[2100];
    const char *key = key_of(buf, sizeof(buf), host, user);
    if (db != names.db || names.set == NULL)
        return;
    if (key == NULL || hashmap_put(names.set, key, &present) < 0) {
        names.stale = 1; /* not held: a miss asks the database */
        return;
    }
    journal_note(key, 1);
}

void account_names_removed(store_db_t *db, const char *host, const char *user)
{
    char buf[2100];
    const char *key = key_of(buf, sizeof(buf), host, user);
    if (db != names.db || names.set == NULL || key == NULL)
        return;
    hashmap_remove(names.set, key);
    journal_note(key, 0);
}

size_t account_names_count(int *stale_r)
{
    if (stale_r != NULL)
        *stale_r = names.set == NULL || names.stale;
    return names.set != NULL ? hashmap_count(names.set) : 0;
}
