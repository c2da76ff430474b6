/*
 * test_account_names.c — src/store/account_names.c: account checks from
 * memory, kept by this process's creations and deletions, and never a
 * stale "no" after another connection (another process: ternctl) added
 * an account; the names are read again on a worker after such a write.
 */
#include <event2/event.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/account_names.h"
#include "store/accounts.h"
#include "store/store.h"
#include "util/workers.h"

#include "check.h"

#define HOST "example.org"

static char dir[64], path[128];

static int add(store_db_t *db, const char *user)
{
    const char *err = NULL;
    return accounts_add(db, HOST, user, "a-password", 1, &err);
}

static int stale(void)
{
    int s = -1;
    account_names_count(&s);
    return s;
}

static void test_own_changes(store_db_t *db)
{
    CHECK(add(db, "alice") == 0);
    CHECK(account_names_load(db) == 0);
    CHECK(account_names_count(NULL) == 1);
    CHECK(account_names_exists(db, HOST, "alice") == 1);
    CHECK(account_names_exists(db, HOST, "bob") == 0);
    CHECK(account_names_exists(db, "other.example", "alice") == 0);
    CHECK(stale() == 0);
    /* This process's creations and deletions: known at once, no lookup. */
    CHECK(add(db, "carol") == 0);
    CHECK(account_names_exists(db, HOST, "carol") == 1);
    const char *err = NULL;
    CHECK(accounts_delete(db, HOST, "carol", &err) == 0);
    CHECK(account_names_exists(db, HOST, "carol") == 0);
    CHECK(account_names_count(NULL) == 1);
    CHECK(stale() == 0);
}

/* Another connection adds accounts: never a stale "no". */
static void test_other_process(store_db_t *db, store_db_t *other, struct event_base *base)
{
    CHECK(add(other, "dave") == 0);
    CHECK(add(other, "frank") == 0);
    CHECK(account_names_exists(db, HOST, "dave") == 1); /* looked up; a re-read starts */
    CHECK(stale() == 1);
    CHECK(account_names_exists(db, HOST, "erin") == 0);
    CHECK(account_names_exists(db, HOST, "frank") == 1);
    /* A creation of ours while the re-read is on its way is kept. */
    CHECK(add(db, "gina") == 0);
    for (int i = 0; i < 5000 && stale(); i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
    CHECK(stale() == 0); /* read again */
    CHECK(account_names_count(NULL) == 4);
    CHECK(account_names_exists(db, HOST, "alice") == 1);
    CHECK(account_names_exists(db, HOST, "dave") == 1);
    CHECK(account_names_exists(db, HOST, "frank") == 1);
    CHECK(account_names_exists(db, HOST, "gina") == 1);
    CHECK(account_names_exists(db, HOST, "erin") == 0);
    CHECK(stale() == 0);
    /* A write after the re-read's snapshot: stale again, still right. */
    CHECK(add(other, "hank") == 0);
    CHECK(account_names_exists(db, HOST, "ivan") == 0);
    CHECK(stale() == 1);
    CHECK(account_names_exists(db, HOST, "hank") == 1);
}

/* 100 000 accounts: how long the start-up read takes (printed). */
static void test_many(store_db_t *db)
{
    sqlite3 *raw = NULL;
    CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
    CHECK(sqlite3_exec(raw, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_stmt *s = NULL;
    CHECK(sqlite3_prepare_v2(raw, "INSERT INTO accounts (host, user, created_us) VALUES (?, ?, 0)",
                             -1, &s, NULL) == SQLITE_OK);
    for (int i = 0; s != NULL && i < 100000; i++) {
        char user[32];
        snprintf(user, sizeof(user), "user%06d", i);
        sqlite3_bind_text(s, 1, HOST, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, user, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) != SQLITE_DONE)
            break;
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    CHECK(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(account_names_load(db) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(account_names_count(NULL) >= 100000);
    CHECK(account_names_exists(db, HOST, "user099999") == 1);
    CHECK(account_names_exists(db, HOST, "user100000") == 0);
    printf("  [%zu account names read in %.1f ms]\n", account_names_count(NULL),
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tern-names-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/tern.db", dir);
    const char *why = NULL;
    store_db_t *db = store_open(path, &why), *other = store_open(path, &why);
    struct event_base *base = event_base_new();
    CHECK(db != NULL && other != NULL && base != NULL);
    CHECK(base != NULL && workers_start(base, 1) == 0);
    if (db != NULL && other != NULL && base != NULL) {
        /* Without a load, checks go to the database. */
        CHECK(account_names_exists(db, HOST, "alice") == 0);
        test_own_changes(db);
        test_other_process(db, other, base);
        test_many(db);
    }
    account_names_free();
    workers_stop();
    if (base != NULL)
        event_base_free(base);
    store_close(&other);
    store_close(&db);
    static const char *const files[] = {"tern.db", "tern.db-wal", "tern.db-shm"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return check_summary();
}
