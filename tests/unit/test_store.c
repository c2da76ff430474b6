/*
 * test_store.c — unit tests of src/store/store_sqlite.c: opening (WAL,
 * file mode, schema version, refusing a newer schema), accounts and their
 * credentials, account deletion wiping the user's data, key-value and map
 * stores with binary values, the archive with 50 000 items (paging by id
 * and time must stay fast), re-entrant callbacks and durability across a
 * reopen and a kill -9.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/accounts.h"
#include "store/store.h"

#include "check.h"

#define N_ITEMS 50000
#define T0      1700000000000000LL /* a base time in µs */
#define HOST    "example.org"
#define MAX_MS  50.0

static char dir[64];
static char path[128];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Run one SQL statement on a separate connection; the first column of
 * the first row is copied to out (if given).  0 or -1. */
static int raw_sql(const char *sql, char *out, size_t out_len)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *s = NULL;
    int ret = -1;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
        goto out;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && out != NULL) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        snprintf(out, out_len, "%s", t != NULL ? (const char *)t : "");
    }
    ret = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
out:
    sqlite3_finalize(s);
    sqlite3_close(h);
    return ret;
}

/* ---- open -------------------------------------------------------------- */

static store_db_t *open_db(void)
{
    const char *why = NULL;
    store_db_t *db = store_open(path, &why);
    if (db == NULL)
        fprintf(stderr, "store_open: %s\n", why != NULL ? why : "(null)");
    return db;
}

static void test_open(store_db_t *db)
{
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    CHECK((sb.st_mode & 0777) == 0600);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    CHECK(stat(wal, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK(store_schema_version(db) == 1);
    char mode[32] = "";
    CHECK(raw_sql("PRAGMA journal_mode", mode, sizeof(mode)) == 0);
    CHECK_STR(mode, "wal");

    const char *why = NULL;
    CHECK(store_open("/nonexistent-dir-for-tern/x.db", &why) == NULL);
    CHECK(why != NULL);
    CHECK(store_open(NULL, &why) == NULL);

    /* Handles: same arguments, same handle; any difference, another. */
    tern_store_t *a = store_get(db, HOST, "vcard", STORE_KV);
    CHECK(a != NULL);
    CHECK(store_get(db, HOST, "vcard", STORE_KV) == a);
    CHECK(store_get(db, HOST, "vcard", STORE_MAP) != a);
    CHECK(store_get(db, "other.org", "vcard", STORE_KV) != a);
    CHECK(store_get(db, HOST, "pep", STORE_KV) != a);
    CHECK(store_get(db, HOST, "x", (store_kind_t)9) == NULL);
}

/* ---- accounts ------------------------------------------------------------ */

static const size_t key_len[SCRAM_HASH_COUNT] = {20, 32, 64};

static void make_creds(scram_cred_t c[SCRAM_HASH_COUNT], int seed)
{
    memset(c, 0, sizeof(scram_cred_t) * SCRAM_HASH_COUNT);
    for (int h = 0; h < SCRAM_HASH_COUNT; h++) {
        c[h].hash = (scram_hash_t)h;
        c[h].iterations = 4096u + (unsigned)(seed * 10 + h);
        c[h].salt_len = 16;
        for (size_t i = 0; i < SCRAM_MAX_SALT; i++)
            c[h].salt[i] = (unsigned char)(i < 16 ? seed + h + i : 0);
        for (size_t i = 0; i < key_len[h]; i++) {
            c[h].stored_key[i] = (unsigned char)(seed * 3 + h + i);
            c[h].server_key[i] = (unsigned char)(seed * 7 + h + i + 1);
        }
    }
}

static int same_cred(const scram_cred_t *a, const scram_cred_t *b)
{
    size_t k = key_len[a->hash];
    return a->hash == b->hash && a->iterations == b->iterations && a->salt_len == b->salt_len &&
           memcmp(a->salt, b->salt, a->salt_len) == 0 &&
           memcmp(a->stored_key, b->stored_key, k) == 0 &&
           memcmp(a->server_key, b->server_key, k) == 0;
}

typedef struct {
    char list[512];
    int calls, stop_after;
} acc_list_t;

static int collect_account(void *ctx, const char *host, const char *user)
{
    acc_list_t *l = ctx;
    size_t n = strlen(l->list);
    snprintf(l->list + n, sizeof(l->list) - n, "%s%s@%s", n ? " " : "", user, host);
    return ++l->calls == l->stop_after;
}

static void test_accounts(store_db_t *db)
{
    scram_cred_t c1[SCRAM_HASH_COUNT], c2[SCRAM_HASH_COUNT], got;
    make_creds(c1, 1);
    make_creds(c2, 2);
    int exists = -1;

    CHECK(store_account_exists(db, HOST, "alice") == 0);
    CHECK(store_account_create(db, HOST, "alice", c1, &exists) == 0);
    CHECK(exists == 0);
    CHECK(store_account_exists(db, HOST, "alice") == 1);
    CHECK(store_account_exists(db, "other.org", "alice") == 0);
    CHECK(store_account_create(db, HOST, "alice", c2, &exists) == -1);
    CHECK(exists == 1);
    for (int h = 0; h < SCRAM_HASH_COUNT; h++) {
        memset(&got, 0xaa, sizeof(got));
        CHECK(store_account_get_cred(db, HOST, "alice", (scram_hash_t)h, &got) == 0);
        CHECK(same_cred(&got, &c1[h])); /* the failed create changed nothing */
    }
    CHECK(store_account_get_cred(db, HOST, "nobody", SCRAM_SHA256, &got) == -1);
    CHECK(store_account_get_cred(db, HOST, "alice", SCRAM_HASH_COUNT, &got) == -1);

    CHECK(store_account_set_creds(db, HOST, "alice", c2) == 0);
    for (int h = 0; h < SCRAM_HASH_COUNT; h++) {
        CHECK(store_account_get_cred(db, HOST, "alice", (scram_hash_t)h, &got) == 0);
        CHECK(same_cred(&got, &c2[h]));
    }
    CHECK(store_account_set_creds(db, HOST, "nobody", c2) == -1);
    CHECK(store_account_exists(db, HOST, "nobody") == 0);

    /* Bad credentials (hash out of place) are refused, nothing created. */
    scram_cred_t bad[SCRAM_HASH_COUNT];
    make_creds(bad, 3);
    bad[1].hash = SCRAM_SHA1;
    CHECK(store_account_create(db, HOST, "carol", bad, &exists) == -1);
    CHECK(exists == 0);
    CHECK(store_account_exists(db, HOST, "carol") == 0);

    /* foreach: sorted by host then user. */
    CHECK(store_account_create(db, HOST, "bob", c1, NULL) == 0);
    CHECK(store_account_create(db, "a.example", "zed", c1, NULL) == 0);
    CHECK(store_account_create(db, "a.example", "amy", c1, NULL) == 0);
    CHECK(store_account_create(db, "other.org", "alice", c1, NULL) == 0);
    acc_list_t l = {.stop_after = -1};
    CHECK(store_account_foreach(db, NULL, collect_account, &l) == 0);
    CHECK_STR(l.list, "amy@a.example zed@a.example alice@example.org bob@example.org "
                      "alice@other.org");
    memset(&l, 0, sizeof(l));
    l.stop_after = -1;
    CHECK(store_account_foreach(db, HOST, collect_account, &l) == 0);
    CHECK_STR(l.list, "alice@example.org bob@example.org");
    memset(&l, 0, sizeof(l));
    l.stop_after = 2;
    CHECK(store_account_foreach(db, NULL, collect_account, &l) == 0);
    CHECK(l.calls == 2);
}

/* The account functions of src/store/accounts.c: the username is
 * prepared, and each refusal says why. */
static void test_accounts_api(store_db_t *db)
{
    const char *err = NULL;
    CHECK(accounts_add(db, HOST, "Dave", "secret", 4096, &err) == 0);
    CHECK(store_account_exists(db, HOST, "dave") == 1);
    CHECK(accounts_add(db, HOST, "dave", "other", 4096, &err) == -1);
    CHECK_STR(err, "account exists");
    CHECK(accounts_add(db, HOST, "bad user", "secret", 4096, &err) == -1);
    CHECK_STR(err, "invalid username");
    CHECK(accounts_add(db, HOST, NULL, "secret", 4096, &err) == -1);
    CHECK_STR(err, "invalid username");
    CHECK(accounts_add(db, HOST, "erin", "", 4096, &err) == -1);
    CHECK_STR(err, "invalid password");
    CHECK(store_account_exists(db, HOST, "erin") == 0);
    CHECK(accounts_add(db, HOST, "erin", "", 4096, NULL) == -1);
    CHECK(accounts_check_password(db, HOST, "dave", "secret") == 1);

    CHECK(accounts_passwd(db, HOST, "DAVE", "new", 4096, &err) == 0);
    CHECK(accounts_check_password(db, HOST, "dave", "new") == 1);
    CHECK(accounts_check_password(db, HOST, "dave", "secret") == 0);
    CHECK(accounts_passwd(db, HOST, "nobody", "new", 4096, &err) == -1);
    CHECK_STR(err, "no such account");
    CHECK(accounts_passwd(db, HOST, "dave", "", 4096, &err) == -1);
    CHECK_STR(err, "invalid password");

    scram_cred_t creds[SCRAM_HASH_COUNT];
    CHECK(accounts_derive("third", 4096, creds) == 0);
    CHECK(accounts_passwd_derived(db, HOST, "dave", creds, &err) == 0);
    CHECK(accounts_check_password(db, HOST, "dave", "third") == 1);
    CHECK(accounts_passwd_derived(db, HOST, "nobody", creds, &err) == -1);
    CHECK_STR(err, "no such account");
    CHECK(accounts_add_derived(db, HOST, "Frank", creds, &err) == 0);
    CHECK(accounts_check_password(db, HOST, "frank", "third") == 1);
    CHECK(accounts_add_derived(db, HOST, "frank", creds, &err) == -1);
    CHECK_STR(err, "account exists");

    CHECK(accounts_delete(db, HOST, "Frank", &err) == 0);
    CHECK(store_account_exists(db, HOST, "frank") == 0);
    CHECK(accounts_delete(db, HOST, "frank", &err) == -1);
    CHECK_STR(err, "no such account");
    CHECK(accounts_delete(db, HOST, "bad user", &err) == -1);
    CHECK_STR(err, "invalid username");
    CHECK(accounts_delete(db, HOST, "dave", NULL) == 0);
}

/* Account deletion removes the user's rows everywhere on that host only. */
static void test_account_delete(store_db_t *db)
{
    tern_store_t *kv = store_get(db, HOST, "vcard", STORE_KV);
    tern_store_t *map = store_get(db, HOST, "pep", STORE_MAP);
    tern_store_t *ar = store_get(db, HOST, "offline", STORE_ARCHIVE);
    tern_store_t *kv_other = store_get(db, "other.org", "vcard", STORE_KV);
    const char *users[] = {"alice", "bob"};
    for (int i = 0; i < 2; i++) {
        CHECK(tern_kv_set(kv, users[i], "v", 1) == 0);
        CHECK(tern_map_set(map, users[i], "k1", "m", 1) == 0);
        CHECK(tern_map_set(map, users[i], "k2", "m", 1) == 0);
        CHECK(tern_archive_append(ar, users[i], "id1", 0, "x@y", "a", 1) == 0);
        CHECK(tern_archive_append(ar, users[i], "id2", 0, "x@y", "a", 1) == 0);
    }
    CHECK(tern_kv_set(kv_other, "alice", "o", 1) == 0);

    CHECK(store_account_delete(db, HOST, "alice") == 0);
    CHECK(store_account_exists(db, HOST, "alice") == 0);
    scram_cred_t got;
    for (int h = 0; h < SCRAM_HASH_COUNT; h++)
        CHECK(store_account_get_cred(db, HOST, "alice", (scram_hash_t)h, &got) == -1);
    char n[32];
    CHECK(raw_sql("SELECT count(*) FROM credentials WHERE host = 'example.org' AND user = 'alice'",
                  n, sizeof(n)) == 0);
    CHECK_STR(n, "0");

    tern_blob_t b = {0};
    CHECK(tern_kv_get(kv, "alice", &b) == 0);
    CHECK(tern_map_get(map, "alice", "k1", &b) == 0);
    CHECK(tern_archive_count(ar, "alice", NULL) == 0);
    /* bob and alice@other.org are untouched */
    CHECK(store_account_exists(db, HOST, "bob") == 1);
    CHECK(store_account_exists(db, "other.org", "alice") == 1);
    CHECK(store_account_get_cred(db, "other.org", "alice", SCRAM_SHA1, &got) == 0);
    CHECK(tern_kv_get(kv, "bob", &b) == 1);
    free(b.data);
    CHECK(tern_kv_get(kv_other, "alice", &b) == 1);
    free(b.data);
    CHECK(tern_map_get(map, "bob", "k2", &b) == 1);
    free(b.data);
    CHECK(tern_archive_count(ar, "bob", NULL) == 2);
    CHECK(tern_archive_delete(ar, "bob", NULL) == 2);
    /* deleting a missing account is harmless */
    CHECK(store_account_delete(db, HOST, "nobody") == 0);
}

/* The server's deletion (store_defer_purges): the account and 500 items
 * at once, the rest through store_purge_step; a new account of the same
 * name never inherits what is left. */
static void test_deferred_purge(store_db_t *db)
{
    tern_store_t *ar = store_get(db, HOST, "mam", STORE_ARCHIVE);
    scram_cred_t c[SCRAM_HASH_COUNT];
    make_creds(c, 7);
    CHECK(store_account_create(db, HOST, "pu", c, NULL) == 0);
    CHECK(store_account_create(db, HOST, "pv", c, NULL) == 0);
    CHECK(store_begin(db) == 0);
    char id[16];
    for (int i = 0; i < 1200; i++) {
        snprintf(id, sizeof(id), "p%d", i);
        CHECK(tern_archive_append(ar, "pu", id, 0, "x@y", "a", 1) == 0);
        CHECK(i >= 600 || tern_archive_append(ar, "pv", id, 0, "x@y", "a", 1) == 0);
    }
    CHECK(store_commit(db) == 0);
    store_defer_purges(db);
    CHECK(store_purge_step(db, 500) == 0); /* nothing pending */
    CHECK(store_account_delete(db, HOST, "pu") == 0);
    CHECK(store_account_exists(db, HOST, "pu") == 0);
    CHECK(tern_archive_count(ar, "pu", NULL) == 700);
    CHECK(store_account_delete(db, HOST, "pv") == 0);
    CHECK(tern_archive_count(ar, "pv", NULL) == 100);
    CHECK(store_purge_step(db, 500) == 1); /* pu: 200 left */
    CHECK(tern_archive_count(ar, "pu", NULL) == 200);
    CHECK(store_account_create(db, HOST, "pu", c, NULL) == 0); /* inherits nothing */
    CHECK(tern_archive_count(ar, "pu", NULL) == 0);
    CHECK(store_purge_step(db, 500) == 0); /* pv: the last 100 */
    CHECK(tern_archive_count(ar, "pv", NULL) == 0);
    CHECK(store_account_delete(db, HOST, "pu") == 0);
}

/* ---- key-value ----------------------------------------------------------- */

static void test_kv(store_db_t *db)
{
    tern_store_t *st = store_get(db, HOST, "private", STORE_KV);
    tern_store_t *st2 = store_get(db, HOST, "prefs", STORE_KV);
    tern_blob_t b = {0};
    static const char bin[] = {'a', '\0', 'b', '\0', '\0', 'c'};

    CHECK(tern_kv_get(st, "u", &b) == 0);
    CHECK(tern_kv_set(st, "u", bin, sizeof(bin)) == 0);
    CHECK(tern_kv_get(st, "u", &b) == 1);
    CHECK(b.len == sizeof(bin) && memcmp(b.data, bin, sizeof(bin)) == 0);
    CHECK(b.data != NULL && b.data[b.len] == '\0');
    free(b.data);
    CHECK(tern_kv_get(st2, "u", &b) == 0); /* other store, same user */
    CHECK(tern_kv_get(st, "v", &b) == 0);  /* other user */

    CHECK(tern_kv_set(st, "u", "<new/>", 6) == 0);
    CHECK(tern_kv_get(st, "u", &b) == 1);
    CHECK(b.len == 6);
    CHECK_STR(b.data, "<new/>");
    free(b.data);

    CHECK(tern_kv_set(st, "", "host", 4) == 0); /* the host itself */
    CHECK(tern_kv_get(st, "", &b) == 1);
    CHECK_STR(b.data, "host");
    free(b.data);

    CHECK(tern_kv_set(st, "u", "", 0) == 0); /* empty value is a value */
    b.data = NULL;
    CHECK(tern_kv_get(st, "u", &b) == 1);
    CHECK(b.len == 0 && b.data != NULL && b.data[0] == '\0');
    free(b.data);

    CHECK(tern_kv_set(st, "u", NULL, 0) == 0); /* delete */
    CHECK(tern_kv_get(st, "u", &b) == 0);
    CHECK(tern_kv_set(st, "u", NULL, 0) == 0); /* delete again */

    tern_store_t *map = store_get(db, HOST, "private", STORE_MAP);
    CHECK(tern_kv_get(map, "u", &b) == -1); /* wrong kind */
    CHECK(strstr(store_last_error(db), "wrong kind") != NULL);
    CHECK(tern_kv_get(NULL, "u", &b) == -1);
}

/* ---- map ----------------------------------------------------------------- */

typedef struct {
    char keys[256];
    size_t total_len;
    int calls, stop_after;
} map_walk_t;

static int walk_map(void *ctx, const char *key, const char *data, size_t len)
{
    map_walk_t *w = ctx;
    (void)data;
    size_t n = strlen(w->keys);
    snprintf(w->keys + n, sizeof(w->keys) - n, "%s%s", n ? "," : "", key);
    w->total_len += len;
    return ++w->calls == w->stop_after;
}

static void test_map(store_db_t *db)
{
    tern_store_t *st = store_get(db, HOST, "pubsub", STORE_MAP);
    tern_blob_t b = {0};
    static const char bin[] = {'\0', 'x', '\0'};

    CHECK(tern_map_set(st, "u", "c", "3", 1) == 0);
    CHECK(tern_map_set(st, "u", "a", "1", 1) == 0);
    CHECK(tern_map_set(st, "u", "b", bin, sizeof(bin)) == 0);
    CHECK(tern_map_set(st, "w", "z", "9", 1) == 0);
    CHECK(tern_map_get(st, "u", "b", &b) == 1);
    CHECK(b.len == 3 && memcmp(b.data, bin, 3) == 0 && b.data[3] == '\0');
    free(b.data);
    CHECK(tern_map_get(st, "u", "z", &b) == 0);
    CHECK(tern_map_get(st, "u", NULL, &b) == -1);

    map_walk_t w = {.stop_after = -1};
    CHECK(tern_map_foreach(st, "u", walk_map, &w) == 0);
    CHECK_STR(w.keys, "a,b,c");
    CHECK(w.total_len == 5);
    /* a slice at a time: after a key, at most `limit` keys */
    memset(&w, 0, sizeof(w));
    w.stop_after = -1;
    CHECK(tern_map_foreach_after(st, "u", NULL, 2, walk_map, &w) == 2);
    CHECK_STR(w.keys, "a,b");
    memset(&w, 0, sizeof(w));
    w.stop_after = -1;
    CHECK(tern_map_foreach_after(st, "u", "b", 2, walk_map, &w) == 1); /* fewer: the end */
    CHECK_STR(w.keys, "c");
    memset(&w, 0, sizeof(w));
    w.stop_after = -1;
    CHECK(tern_map_foreach_after(st, "u", "c", 2, walk_map, &w) == 0);

    CHECK(tern_map_set(st, "u", "a", "one", 3) == 0);
    CHECK(tern_map_get(st, "u", "a", &b) == 1);
    CHECK_STR(b.data, "one");
    free(b.data);

    CHECK(tern_map_set(st, "u", "b", NULL, 0) == 0);
    CHECK(tern_map_get(st, "u", "b", &b) == 0);
    memset(&w, 0, sizeof(w));
    w.stop_after = 1;
    CHECK(tern_map_foreach(st, "u", walk_map, &w) == 0);
    CHECK_STR(w.keys, "a");
    memset(&w, 0, sizeof(w));
    w.stop_after = -1;
    CHECK(tern_map_foreach(st, "nobody", walk_map, &w) == 0);
    CHECK(w.calls == 0);
}

/* ---- archive ------------------------------------------------------------- */

/* Item i: id "m%05d", time T0 + (i / 10) ms (ten items share each time, so
 * the order within a time is the append order), with a/b/c@x in turn. */
static int64_t item_time(int i)
{
    return T0 + (int64_t)(i / 10) * 1000;
}

static const char *item_with(int i)
{
    static const char *const w[] = {"a@x", "b@x", "c@x"};
    return w[i % 3];
}

typedef struct {
    int n;
    int first, last; /* item numbers */
    int ordered;     /* each step in the expected direction */
    int reverse;
    int prev;
    int bad_data;
    const char *with_only;
    int bad_with;
    tern_store_t *reenter; /* query the store from inside the callback */
    long reenter_count;
} got_t;

static int count_items(void *ctx, const tern_archive_item_t *it)
{
    (void)it;
    ++*(int *)ctx;
    return 0;
}

static int on_item(void *ctx, const tern_archive_item_t *it)
{
    got_t *g = ctx;
    int i = atoi(it->id + 1);
    char expect[32];
    snprintf(expect, sizeof(expect), "<m n='%d'/>", i);
    if (it->len != strlen(expect) || memcmp(it->data, expect, it->len) != 0 ||
        it->when_us != item_time(i))
        g->bad_data++;
    if (g->with_only != NULL && strcmp(it->with, g->with_only) != 0)
        g->bad_with++;
    if (g->n == 0)
        g->first = i;
    else if (g->reverse ? i >= g->prev : i <= g->prev)
        g->ordered = 0;
    g->prev = g->last = i;
    g->n++;
    if (g->reenter != NULL) { /* runs the same statement as the outer query */
        tern_archive_query_t inner = {.limit = 3};
        int calls = 0;
        g->reenter_count = tern_archive_query(g->reenter, "u", &inner, count_items, &calls);
        if (calls != 3)
            g->reenter_count = -1;
    }
    return 0;
}

static int run_query(tern_store_t *st, const char *user, const tern_archive_query_t *q, got_t *g)
{
    memset(g, 0, sizeof(*g));
    g->ordered = 1;
    g->reverse = q != NULL && q->reverse;
    g->with_only = q != NULL ? q->with : NULL;
    return tern_archive_query(st, user, q, on_item, g);
}

static int stop_at_3(void *ctx, const tern_archive_item_t *it)
{
    (void)it;
    return ++*(int *)ctx == 3;
}

static void test_archive(store_db_t *db)
{
    tern_store_t *st = store_get(db, HOST, "mam", STORE_ARCHIVE);
    tern_store_t *st2 = store_get(db, HOST, "muc", STORE_ARCHIVE);
    char id[16], data[32];

    double t = now_ms();
    CHECK(store_begin(db) == 0);
    int fails = 0;
    for (int i = 0; i < N_ITEMS; i++) {
        snprintf(id, sizeof(id), "m%05d", i);
        int len = snprintf(data, sizeof(data), "<m n='%d'/>", i);
        fails +=
            tern_archive_append(st, "u", id, item_time(i), item_with(i), data, (size_t)len) != 0;
    }
    CHECK(store_commit(db) == 0);
    CHECK(fails == 0);
    printf("append %d items in one transaction: %.0f ms\n", N_ITEMS, now_ms() - t);
    /* another user and another store with the same ids */
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof(id), "m%05d", i);
        int len = snprintf(data, sizeof(data), "<m n='%d'/>", i);
        CHECK(tern_archive_append(st, "v", id, item_time(i), item_with(i), data, (size_t)len) == 0);
        CHECK(tern_archive_append(st2, "u", id, item_time(i), item_with(i), data, (size_t)len) ==
              0);
    }
    CHECK(tern_archive_append(st, "u", "m00007", 0, "", "dup", 3) == -1); /* id taken */
    char mismatched[32] = "";
    CHECK(raw_sql("SELECT count(*) FROM archive WHERE seq != rid", mismatched,
                  sizeof(mismatched)) == 0);
    CHECK_STR(mismatched, "0");

    got_t g;
    tern_archive_query_t q = {0};

    /* after_id near the end, limit 50 */
    q.after_id = "m49900";
    q.limit = 50;
    t = now_ms();
    CHECK(run_query(st, "u", &q, &g) == 50);
    double ms_after = now_ms() - t;
    CHECK(g.first == 49901 && g.last == 49950 && g.ordered && g.bad_data == 0);
    CHECK(ms_after < MAX_MS);

    /* before_id + reverse: the page just before an item, newest first */
    memset(&q, 0, sizeof(q));
    q.before_id = "m00100";
    q.limit = 50;
    q.reverse = 1;
    t = now_ms();
    CHECK(run_query(st, "u", &q, &g) == 50);
    double ms_before = now_ms() - t;
    CHECK(g.first == 99 && g.last == 50 && g.ordered && g.bad_data == 0);
    CHECK(ms_before < MAX_MS);

    /* last page */
    memset(&q, 0, sizeof(q));
    q.limit = 10;
    q.reverse = 1;
    t = now_ms();
    CHECK(run_query(st, "u", &q, &g) == 10);
    double ms_last = now_ms() - t;
    CHECK(g.first == N_ITEMS - 1 && g.last == N_ITEMS - 10 && g.ordered);
    CHECK(ms_last < MAX_MS);

    /* after_id and before_id in the middle of a group sharing one time */
    memset(&q, 0, sizeof(q));
    q.after_id = "m25003";
    q.before_id = "m25017";
    CHECK(run_query(st, "u", &q, &g) == 13);
    CHECK(g.first == 25004 && g.last == 25016 && g.ordered);

    /* page through everything by after_id, 50 at a time */
    t = now_ms();
    int pages = 0, seen = 0, in_order = 1;
    memset(&q, 0, sizeof(q));
    q.limit = 50;
    char last_id[16] = "";
    for (;;) {
        int n = run_query(st, "u", &q, &g);
        if (n <= 0)
            break;
        if (g.first != seen || !g.ordered)
            in_order = 0;
        seen += n;
        pages++;
        snprintf(last_id, sizeof(last_id), "m%05d", g.last);
        q.after_id = last_id;
    }
    double ms_pages = now_ms() - t;
    CHECK(seen == N_ITEMS && in_order && pages == N_ITEMS / 50);
    printf("archive of %d: after_id page %.2f ms, before_id reverse page %.2f ms, last page "
           "%.2f ms, all %d pages %.0f ms (%.3f ms/page)\n",
           N_ITEMS, ms_after, ms_before, ms_last, pages, ms_pages, ms_pages / pages);

    /* with filter */
    memset(&q, 0, sizeof(q));
    q.with = "b@x";
    q.after_id = "m40000";
    q.limit = 20;
    CHECK(run_query(st, "u", &q, &g) == 20);
    CHECK(g.first == 40003 && g.bad_with == 0 && g.ordered);
    q.limit = 0;
    q.after_id = NULL;
    t = now_ms();
    CHECK(tern_archive_count(st, "u", &q) == 16667); /* i % 3 == 1 */
    double ms_count = now_ms() - t;
    q.reverse = 1;
    q.limit = 5;
    CHECK(run_query(st, "u", &q, &g) == 5);
    CHECK(g.first == 49999 && g.last == 49987); /* the last five b@x items */
    CHECK(g.bad_with == 0 && g.ordered);
    q.with = "nobody@x";
    CHECK(run_query(st, "u", &q, &g) == 0);

    /* start/end (inclusive) */
    memset(&q, 0, sizeof(q));
    q.start_us = item_time(1000); /* items 1000.. */
    q.end_us = item_time(1999);   /* ..1999 */
    CHECK(run_query(st, "u", &q, &g) == 1000);
    CHECK(g.first == 1000 && g.last == 1999 && g.ordered && g.bad_data == 0);
    CHECK(tern_archive_count(st, "u", &q) == 1000);
    q.limit = 7; /* count ignores limit */
    CHECK(tern_archive_count(st, "u", &q) == 1000);
    q.after_id = "m01500"; /* combined with after_id */
    CHECK(tern_archive_count(st, "u", &q) == 499);
    q.after_id = "m00005"; /* an after_id before start: start wins */
    CHECK(run_query(st, "u", &q, &g) == 7);
    CHECK(g.first == 1000);
    q.after_id = NULL;
    q.start_us = item_time(N_ITEMS) + 1; /* nothing after the end */
    q.end_us = 0;
    CHECK(run_query(st, "u", &q, &g) == 0);

    /* ids filter: unknown and repeated ids are ignored, order is archive order */
    static const char *const ids[] = {"m40000", "m00005", "nope", "m00003", "m00005", NULL};
    memset(&q, 0, sizeof(q));
    q.ids = ids;
    CHECK(run_query(st, "u", &q, &g) == 3);
    CHECK(g.first == 3 && g.last == 40000 && g.ordered && g.bad_data == 0);
    q.reverse = 1;
    CHECK(run_query(st, "u", &q, &g) == 3);
    CHECK(g.first == 40000 && g.last == 3 && g.ordered);
    q.limit = 2;
    CHECK(run_query(st, "u", &q, &g) == 2);
    CHECK(g.first == 40000 && g.last == 5);
    CHECK(tern_archive_count(st, "u", &q) == 3);
    q.with = "c@x"; /* 5 % 3 == 2 */
    CHECK(run_query(st, "u", &q, &g) == 1);
    CHECK(g.first == 5);
    q.with = NULL;
    q.after_id = "m00004";
    CHECK(tern_archive_count(st, "u", &q) == 2);

    /* unknown after_id / before_id: -1 (item-not-found) */
    memset(&q, 0, sizeof(q));
    q.after_id = "nope";
    CHECK(run_query(st, "u", &q, &g) == -1);
    CHECK(strstr(store_last_error(db), "item-not-found") != NULL);
    CHECK(tern_archive_count(st, "u", &q) == -1);
    CHECK(tern_archive_delete(st, "u", &q) == -1);
    q.after_id = NULL;
    q.before_id = "m00001"; /* exists for u, not for w */
    CHECK(run_query(st, "w", &q, &g) == -1);
    CHECK(run_query(st, "u", &q, &g) == 1);

    /* count ignores limit; other user and other store are separate */
    memset(&q, 0, sizeof(q));
    q.limit = 3;
    CHECK(tern_archive_count(st, "u", &q) == N_ITEMS);
    CHECK(tern_archive_count(st, "u", NULL) == N_ITEMS);
    CHECK(tern_archive_count(st, "v", NULL) == 20);
    CHECK(tern_archive_count(st2, "u", NULL) == 20);
    CHECK(run_query(st, "v", NULL, &g) == 20);
    /* a bounded count stops at its bound; a bound above the count is exact */
    CHECK(tern_archive_count_max(st, "u", NULL, 100) == 100);
    CHECK(tern_archive_count_max(st, "u", &q, N_ITEMS + 1) == N_ITEMS);
    CHECK(tern_archive_count_max(st, "v", NULL, 0) == 20);

    /* fn stopping early; fn re-entering the same handle */
    int calls = 0;
    CHECK(tern_archive_query(st, "u", NULL, stop_at_3, &calls) == 3);
    memset(&q, 0, sizeof(q));
    q.limit = 2;
    memset(&g, 0, sizeof(g));
    g.ordered = 1;
    g.reenter = st;
    CHECK(tern_archive_query(st, "v", &q, on_item, &g) == 2);
    CHECK(g.n == 2 && g.reenter_count == 3);

    /* delete by query (ignores limit and reverse) */
    memset(&q, 0, sizeof(q));
    q.with = "c@x";
    q.start_us = item_time(0);
    q.end_us = item_time(299); /* items 0..299, a third of them c@x */
    q.limit = 1;
    q.reverse = 1;
    CHECK(tern_archive_delete(st, "u", &q) == 100);
    CHECK(tern_archive_count(st, "u", &q) == 0);
    CHECK(tern_archive_count(st, "u", NULL) == N_ITEMS - 100);
    memset(&q, 0, sizeof(q));
    q.ids = ids; /* m00005 was c@x and is gone: m00003, m40000 left */
    CHECK(tern_archive_delete(st, "u", &q) == 2);
    CHECK(tern_archive_count(st, "u", NULL) == N_ITEMS - 102);

    /* expire: everything older than item 500's time, every user */
    long before_u = tern_archive_count(st, "u", NULL);
    memset(&q, 0, sizeof(q));
    q.end_us = item_time(500) - 1;
    long old_u = tern_archive_count(st, "u", &q);
    CHECK(old_u == 399); /* 0..499 minus the 100 c@x deleted, minus m00003 */
    t = now_ms();
    /* in batches, oldest first: 150, 150, then what is left */
    CHECK(tern_archive_expire_some(st, item_time(500), 150) == 150);
    memset(&q, 0, sizeof(q));
    q.end_us = item_time(100);
    CHECK(tern_archive_count(st, "u", &q) == 0); /* the oldest went first */
    CHECK(tern_archive_expire_some(st, item_time(500), 150) == 150);
    CHECK(tern_archive_expire(st, item_time(500)) == old_u + 20 - 300);
    CHECK(tern_archive_expire_some(st, item_time(500), 150) == 0);
    double ms_expire = now_ms() - t;
    CHECK(tern_archive_count(st, "u", NULL) == before_u - old_u);
    CHECK(tern_archive_count(st, "v", NULL) == 0);
    CHECK(tern_archive_count(st2, "u", NULL) == 20); /* other store untouched */
    printf("count (with filter) %.2f ms, expire %.2f ms\n", ms_count, ms_expire);

    /* the appended time defaults to now; empty and NULL values */
    CHECK(tern_archive_append(st2, "z", "now", 0, NULL, NULL, 0) == 0);
    memset(&g, 0, sizeof(g));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000;
    memset(&q, 0, sizeof(q));
    q.start_us = now - 60 * 1000000LL;
    CHECK(tern_archive_count(st2, "z", &q) == 1);

    /* wrong kind */
    CHECK(tern_archive_count(store_get(db, HOST, "mam", STORE_KV), "u", NULL) == -1);
}

/* ---- durability ---------------------------------------------------------- */

static void test_reopen(void)
{
    store_db_t *db = open_db();
    CHECK(db != NULL);
    if (db == NULL)
        return;
    CHECK(store_schema_version(db) == 1);
    CHECK(store_account_exists(db, HOST, "bob") == 1);
    tern_blob_t b = {0};
    CHECK(tern_kv_get(store_get(db, HOST, "vcard", STORE_KV), "bob", &b) == 1);
    free(b.data);
    CHECK(tern_map_get(store_get(db, HOST, "pubsub", STORE_MAP), "u", "a", &b) == 1);
    CHECK(b.data != NULL && strcmp(b.data, "one") == 0);
    free(b.data);
    tern_store_t *st = store_get(db, HOST, "mam", STORE_ARCHIVE);
    CHECK(tern_archive_count(st, "u", NULL) > 49000);
    store_close(&db);
    CHECK(db == NULL);
    store_close(&db); /* harmless */
}

/* A process killed right after committing loses nothing. */
static void test_kill9(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        store_db_t *db = store_open(path, NULL);
        if (db == NULL)
            _exit(2);
        tern_store_t *kv = store_get(db, HOST, "crash", STORE_KV);
        tern_store_t *ar = store_get(db, HOST, "crash", STORE_ARCHIVE);
        if (tern_kv_set(kv, "k", "survived", 8) < 0 ||
            tern_archive_append(ar, "k", "c1", 0, "", "x", 1) < 0)
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    store_db_t *db = open_db();
    CHECK(db != NULL);
    if (db == NULL)
        return;
    tern_blob_t b = {0};
    CHECK(tern_kv_get(store_get(db, HOST, "crash", STORE_KV), "k", &b) == 1);
    CHECK(b.data != NULL && strcmp(b.data, "survived") == 0);
    free(b.data);
    CHECK(tern_archive_count(store_get(db, HOST, "crash", STORE_ARCHIVE), "k", NULL) == 1);
    store_close(&db);
}

/* A writer waits (busy timeout) for another process's transaction. */
static void test_busy_wait(void)
{
    store_db_t *db = open_db(); /* opened first: opening writes (migration check) */
    CHECK(db != NULL);
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    pid_t pid = fork();
    if (pid == 0) { /* never touches the parent's connection */
        close(pipefd[0]);
        store_db_t *cdb = store_open(path, NULL);
        if (cdb == NULL || store_begin(cdb) < 0 ||
            tern_kv_set(store_get(cdb, HOST, "busy", STORE_KV), "x", "child", 5) < 0)
            _exit(2);
        if (write(pipefd[1], "l", 1) != 1) /* holding the write lock */
            _exit(3);
        usleep(300 * 1000);
        _exit(store_commit(cdb) == 0 ? 0 : 4);
    }
    close(pipefd[1]);
    char c = 0;
    CHECK(read(pipefd[0], &c, 1) == 1 && c == 'l');
    close(pipefd[0]);
    if (db != NULL) {
        tern_store_t *kv = store_get(db, HOST, "busy", STORE_KV);
        double t = now_ms();
        CHECK(tern_kv_set(kv, "y", "parent", 6) == 0); /* waits for the child */
        double waited = now_ms() - t;
        CHECK(waited > 100 && waited < 2000);
        printf("waited %.0f ms for the other writer\n", waited);
        tern_blob_t b = {0};
        CHECK(tern_kv_get(kv, "x", &b) == 1);
        CHECK(b.data != NULL && strcmp(b.data, "child") == 0);
        free(b.data);
        store_close(&db);
    }
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The server's short busy timeout: a write gives up after it instead of
 * waiting for the other writer (300 ms here) as tools do. */
static void test_busy_timeout_short(void)
{
    store_db_t *db = open_db();
    CHECK(db != NULL);
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        store_db_t *cdb = store_open(path, NULL);
        if (cdb == NULL || store_begin(cdb) < 0 ||
            tern_kv_set(store_get(cdb, HOST, "busy", STORE_KV), "x2", "child", 5) < 0)
            _exit(2);
        if (write(pipefd[1], "l", 1) != 1)
            _exit(3);
        usleep(600 * 1000);
        _exit(store_commit(cdb) == 0 ? 0 : 4);
    }
    close(pipefd[1]);
    char c = 0;
    CHECK(read(pipefd[0], &c, 1) == 1 && c == 'l');
    close(pipefd[0]);
    if (db != NULL) {
        store_set_busy_timeout(db, 50);
        double t = now_ms();
        CHECK(tern_kv_set(store_get(db, HOST, "busy", STORE_KV), "y2", "parent", 6) < 0);
        double waited = now_ms() - t;
        CHECK(waited >= 40 && waited < 400);
        printf("gave up after %.0f ms\n", waited);
        store_close(&db);
    }
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Transactions: rollback undoes, nesting works. */
static void test_transactions(void)
{
    store_db_t *db = open_db();
    CHECK(db != NULL);
    if (db == NULL)
        return;
    tern_store_t *kv = store_get(db, HOST, "tx", STORE_KV);
    tern_blob_t b = {0};
    CHECK(store_begin(db) == 0);
    CHECK(tern_kv_set(kv, "a", "1", 1) == 0);
    CHECK(store_begin(db) == 0);
    CHECK(tern_kv_set(kv, "b", "2", 1) == 0);
    CHECK(store_rollback(db) == 0); /* inner only */
    CHECK(store_commit(db) == 0);
    CHECK(tern_kv_get(kv, "a", &b) == 1);
    free(b.data);
    CHECK(tern_kv_get(kv, "b", &b) == 0);
    CHECK(store_begin(db) == 0);
    CHECK(tern_kv_set(kv, "c", "3", 1) == 0);
    CHECK(store_rollback(db) == 0);
    CHECK(tern_kv_get(kv, "c", &b) == 0);
    CHECK(store_commit(db) == -1); /* nothing to commit */
    /* account creation inside a caller's transaction */
    scram_cred_t c[SCRAM_HASH_COUNT];
    make_creds(c, 5);
    CHECK(store_begin(db) == 0);
    CHECK(store_account_create(db, HOST, "txuser", c, NULL) == 0);
    CHECK(store_rollback(db) == 0);
    CHECK(store_account_exists(db, HOST, "txuser") == 0);
    store_close(&db);
}

/* A database written by a newer version is refused. */
static void test_future_version(void)
{
    CHECK(raw_sql("UPDATE tern_schema SET version = 99", NULL, 0) == 0);
    const char *why = NULL;
    store_db_t *db = store_open(path, &why);
    CHECK(db == NULL);
    CHECK(why != NULL && strstr(why, "newer") != NULL);
    if (why != NULL)
        printf("future schema refused: %s\n", why);
    store_close(&db);
    CHECK(raw_sql("UPDATE tern_schema SET version = 1", NULL, 0) == 0);
    db = open_db();
    CHECK(db != NULL);
    store_close(&db);

    /* not a database at all */
    char junk[160];
    snprintf(junk, sizeof(junk), "%s/junk.db", dir);
    FILE *f = fopen(junk, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("this is not an SQLite database, not at all, really not.\n", f);
        fclose(f);
    }
    CHECK(store_open(junk, &why) == NULL);
    CHECK(why != NULL);
    unlink(junk);
}

/* An in-memory database works too (for other tests). */
static void test_memory(void)
{
    const char *why = NULL;
    store_db_t *db = store_open(":memory:", &why);
    CHECK(db != NULL);
    if (db == NULL)
        return;
    CHECK(store_schema_version(db) == 1);
    tern_blob_t b = {0};
    tern_store_t *kv = store_get(db, HOST, "m", STORE_KV);
    CHECK(tern_kv_set(kv, "u", "x", 1) == 0);
    CHECK(tern_kv_get(kv, "u", &b) == 1);
    free(b.data);
    store_close(&db);
}

static void remove_dir(void)
{
    static const char *const files[] = {"tern.db", "tern.db-wal", "tern.db-shm"};
    char p[160];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tern-store-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/tern.db", dir);

    store_db_t *db = open_db();
    CHECK(db != NULL);
    if (db != NULL) {
        test_open(db);
        test_accounts(db);
        test_accounts_api(db);
        test_account_delete(db);
        test_deferred_purge(db);
        test_kv(db);
        test_map(db);
        test_archive(db);
        store_close(&db);
        test_reopen();
        test_kill9();
        test_busy_wait();
        test_busy_timeout_short();
        test_transactions();
        test_future_version();
    }
    test_memory();
    remove_dir();
    return check_summary();
}
