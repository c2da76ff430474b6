/*
 * store_sqlite.c — the SQLite backend of tern/store.h and store/store.h.
 *
 * Owns the database connection and everything done with it: creating the
 * file (mode 0600), the connection settings (WAL, synchronous=NORMAL,
 * foreign keys, busy timeout), the versioned schema and its migrations,
 * the cache of prepared statements, the tern_store_t handles given to
 * modules, the accounts with their SCRAM credentials, and the key-value,
 * map and archive stores.
 *
 * Rules kept here:
 *  - No SQL is ever built from data: every statement is a constant string,
 *    prepared once (SQLITE_PREPARE_PERSISTENT), cached on the db or on the
 *    handle, and reset after each use.  If a callback re-enters the store
 *    while a cached statement is still running, a temporary copy is
 *    prepared for the inner call.
 *  - Every query is served by an index (see MIGRATION_1).  Equality
 *    columns of an index are ordered host, user, store so that the same
 *    index also serves "everything of this user" when an account is
 *    deleted; the order of equality columns does not matter to lookups.
 *  - Archive items are ordered by (when_us, seq), seq being the insertion
 *    sequence (a copy of the rowid, kept as a real column because SQLite
 *    only uses real index columns for row-value ranges such as
 *    (when_us, seq) > (?, ?)).  after_id/before_id are resolved to their
 *    (when_us, seq) position; start/end become positions too, so every
 *    archive query is one index range.
 *  - A store_db_t is used by one thread at a time.  Reads handed to the
 *    worker pool (the tern_*_async calls) run on readers: store_db_t
 *    values of their own, each a connection with query_only set, kept
 *    idle on the main db between reads (see store_read_prepare).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/store_checkpoint.h"

#define BUSY_TIMEOUT_MS 2000
#define ERR_LEN         256

/* ---- schema ------------------------------------------------------------ */

/* Version 1: the initial schema.  Times are microseconds since the epoch. */
#define MIGRATION_1                                                                                \
    "CREATE TABLE accounts ("                                                                      \
    " host TEXT NOT NULL, user TEXT NOT NULL, created_us INTEGER NOT NULL,"                        \
    " PRIMARY KEY (host, user)) WITHOUT ROWID;"                                                    \
    "CREATE TABLE credentials ("                                                                   \
    " host TEXT NOT NULL, user TEXT NOT NULL, hash INTEGER NOT NULL,"                              \
    " iterations INTEGER NOT NULL, salt BLOB NOT NULL,"                                            \
    " stored_key BLOB NOT NULL, server_key BLOB NOT NULL,"                                         \
    " PRIMARY KEY (host, user, hash),"                                                             \
    " FOREIGN KEY (host, user) REFERENCES accounts (host, user) ON DELETE CASCADE"                 \
    ") WITHOUT ROWID;"                                                                             \
    "CREATE TABLE kv ("                                                                            \
    " host TEXT NOT NULL, store TEXT NOT NULL, user TEXT NOT NULL, value BLOB NOT NULL);"          \
    "CREATE UNIQUE INDEX kv_key ON kv (host, user, store);"                                        \
    "CREATE TABLE map ("                                                                           \
    " host TEXT NOT NULL, store TEXT NOT NULL, user TEXT NOT NULL, mkey TEXT NOT NULL,"            \
    " value BLOB NOT NULL);"                                                                       \
    "CREATE UNIQUE INDEX map_key ON map (host, user, store, mkey);"                                \
    "CREATE TABLE archive ("                                                                       \
    " rid INTEGER PRIMARY KEY, seq INTEGER NOT NULL,"                                              \
    " host TEXT NOT NULL, store TEXT NOT NULL, user TEXT NOT NULL, id TEXT NOT NULL,"              \
    " when_us INTEGER NOT NULL, with_jid TEXT NOT NULL, value BLOB NOT NULL);"                     \
    "CREATE UNIQUE INDEX archive_id ON archive (host, user, store, id);"                           \
    "CREATE INDEX archive_time ON archive (host, user, store, when_us, seq);"                      \
    "CREATE INDEX archive_with ON archive (host, user, store, with_jid, when_us, seq);"            \
    "CREATE INDEX archive_expire ON archive (host, store, when_us);"

/* Migration steps in order: migrations[i] takes the schema from version i
 * to i + 1.  Append only; never edit a released step. */
static const char *const migrations[] = {MIGRATION_1};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- statements ---------------------------------------------------------- */

/* Statements of the db (accounts, transactions). */
enum {
    DB_BEGIN,
    DB_COMMIT,
    DB_ROLLBACK,
    DB_SAVEPOINT,
    DB_RELEASE,
    DB_ROLLBACK_TO,
    DB_VERSION,
    DB_ACC_EXISTS,
    DB_ACC_INSERT,
    DB_ACC_DELETE,
    DB_ACC_ALL,
    DB_ACC_HOST,
    DB_CRED_SET,
    DB_CRED_GET,
    DB_CRED_DELETE,
    DB_USER_KV_DELETE,
    DB_USER_MAP_DELETE,
    DB_USER_ARCHIVE_DELETE,
    DB_USER_ARCHIVE_DELETE_SOME,
    DB_STMT_COUNT
};

static const char *const db_sql[DB_STMT_COUNT] = {
    [DB_BEGIN] = "BEGIN IMMEDIATE",
    [DB_COMMIT] = "COMMIT",
    [DB_ROLLBACK] = "ROLLBACK",
    [DB_SAVEPOINT] = "SAVEPOINT tern_nested",
    [DB_RELEASE] = "RELEASE tern_nested",
    [DB_ROLLBACK_TO] = "ROLLBACK TO tern_nested",
    [DB_VERSION] = "SELECT version FROM tern_schema WHERE id = 1",
    [DB_ACC_EXISTS] = "SELECT 1 FROM accounts WHERE host = ?1 AND user = ?2",
    [DB_ACC_INSERT] = "INSERT INTO accounts (host, user, created_us) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT DO NOTHING",
    [DB_ACC_DELETE] = "DELETE FROM accounts WHERE host = ?1 AND user = ?2",
    [DB_ACC_ALL] = "SELECT host, user FROM accounts ORDER BY host, user",
    [DB_ACC_HOST] = "SELECT host, user FROM accounts WHERE host = ?1 ORDER BY user",
    [DB_CRED_SET] = "INSERT INTO credentials"
                    " (host, user, hash, iterations, salt, stored_key, server_key)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    " ON CONFLICT (host, user, hash) DO UPDATE SET"
                    " iterations = excluded.iterations, salt = excluded.salt,"
                    " stored_key = excluded.stored_key, server_key = excluded.server_key",
    [DB_CRED_GET] = "SELECT iterations, salt, stored_key, server_key FROM credentials"
                    " WHERE host = ?1 AND user = ?2 AND hash = ?3",
    [DB_CRED_DELETE] = "DELETE FROM credentials WHERE host = ?1 AND user = ?2",
    [DB_USER_KV_DELETE] = "DELETE FROM kv WHERE host = ?1 AND user = ?2",
    [DB_USER_MAP_DELETE] = "DELETE FROM map WHERE host = ?1 AND user = ?2",
    [DB_USER_ARCHIVE_DELETE] = "DELETE FROM archive WHERE host = ?1 AND user = ?2",
    /* through archive_id, whose first columns are (host, user) */
    [DB_USER_ARCHIVE_DELETE_SOME] = "DELETE FROM archive WHERE rid IN (SELECT rid FROM archive"
                                    " WHERE host = ?1 AND user = ?2 LIMIT ?3)",
};

/* Statements of a handle.  Parameters: ?1 host, ?2 store name, ?3 user
 * (or the expiry time for ST_AR_EXPIRE); archive ranges use ?4..?7 for
 * the exclusive bounds (lo_when, lo_seq) and (hi_when, hi_seq), ?8 for
 * "with" and ?9 for the limit. */
enum {
    ST_KV_GET,
    ST_KV_SET,
    ST_KV_DEL,
    ST_MAP_GET,
    ST_MAP_SET,
    ST_MAP_DEL,
    ST_MAP_EACH,
    ST_MAP_EACH_AFTER,
    ST_AR_APPEND,
    ST_AR_FIND,
    ST_AR_BY_RID,
    ST_AR_DEL_RID,
    ST_AR_QUERY, /* each query statement is followed by its reverse variant */
    ST_AR_QUERY_DESC,
    ST_AR_QUERY_W,
    ST_AR_QUERY_W_DESC,
    ST_AR_COUNT,
    ST_AR_COUNT_W,
    ST_AR_DELETE,
    ST_AR_DELETE_W,
    ST_AR_EXPIRE,
    ST_STMT_COUNT
};

#define SCOPE     "host = ?1 AND store = ?2 AND user = ?3"
#define RANGE     SCOPE " AND (when_us, seq) > (?4, ?5) AND (when_us, seq) < (?6, ?7)"
#define ITEM_COLS "SELECT id, when_us, with_jid, value FROM archive WHERE "
#define ASC       " ORDER BY when_us, seq LIMIT ?9"
#define DESC      " ORDER BY when_us DESC, seq DESC LIMIT ?9"

static const char *const st_sql[ST_STMT_COUNT] = {
    [ST_KV_GET] = "SELECT value FROM kv WHERE " SCOPE,
    [ST_KV_SET] = "INSERT INTO kv (host, store, user, value) VALUES (?1, ?2, ?3, ?4)"
                  " ON CONFLICT (host, user, store) DO UPDATE SET value = excluded.value",
    [ST_KV_DEL] = "DELETE FROM kv WHERE " SCOPE,
    [ST_MAP_GET] = "SELECT value FROM map WHERE " SCOPE " AND mkey = ?4",
    [ST_MAP_SET] = "INSERT INTO map (host, store, user, mkey, value) VALUES (?1, ?2, ?3, ?4, ?5)"
                   " ON CONFLICT (host, user, store, mkey) DO UPDATE SET value = excluded.value",
    [ST_MAP_DEL] = "DELETE FROM map WHERE " SCOPE " AND mkey = ?4",
    [ST_MAP_EACH] = "SELECT mkey, value FROM map WHERE " SCOPE " ORDER BY mkey",
    [ST_MAP_EACH_AFTER] = "SELECT mkey, value FROM map WHERE " SCOPE " AND mkey > ?4"
                          " ORDER BY mkey LIMIT ?5",
    /* seq = rid = one past the largest rowid (an O(log n) lookup, done
     * twice in one statement: both see the table before the insert).  A
     * single-row VALUES insert, unlike INSERT ... SELECT, needs no
     * statement journal inside a transaction (10x faster bulk appends). */
    [ST_AR_APPEND] = "INSERT INTO archive"
                     " (rid, seq, host, store, user, id, when_us, with_jid, value) VALUES"
                     " ((SELECT ifnull(max(rid), 0) + 1 FROM archive),"
                     " (SELECT ifnull(max(rid), 0) + 1 FROM archive),"
                     " ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_AR_FIND] = "SELECT when_us, seq, with_jid, rid FROM archive WHERE " SCOPE " AND id = ?4",
    [ST_AR_BY_RID] = ITEM_COLS SCOPE " AND rid = ?4",
    [ST_AR_DEL_RID] = "DELETE FROM archive WHERE " SCOPE " AND rid = ?4",
    [ST_AR_QUERY] = ITEM_COLS RANGE ASC,
    [ST_AR_QUERY_DESC] = ITEM_COLS RANGE DESC,
    [ST_AR_QUERY_W] = ITEM_COLS RANGE " AND with_jid = ?8" ASC,
    [ST_AR_QUERY_W_DESC] = ITEM_COLS RANGE " AND with_jid = ?8" DESC,
    /* ?9 bounds the count (-1: none): a count reads every row it counts */
    [ST_AR_COUNT] = "SELECT count(*) FROM (SELECT 1 FROM archive WHERE " RANGE " LIMIT ?9)",
    [ST_AR_COUNT_W] =
        "SELECT count(*) FROM (SELECT 1 FROM archive WHERE " RANGE " AND with_jid = ?8 LIMIT ?9)",
    [ST_AR_DELETE] = "DELETE FROM archive WHERE " RANGE,
    [ST_AR_DELETE_W] = "DELETE FROM archive WHERE " RANGE " AND with_jid = ?8",
    /* the oldest ?4 items (-1: all) before ?3, through archive_expire */
    [ST_AR_EXPIRE] = "DELETE FROM archive WHERE rid IN (SELECT rid FROM archive"
                     " WHERE host = ?1 AND store = ?2 AND when_us < ?3 ORDER BY when_us LIMIT ?4)",
};

struct tern_store {
    store_db_t *db;
    tern_store_t *next;
    store_kind_t kind;
    char *host;
    char *name;
    sqlite3_stmt *stmt[ST_STMT_COUNT]; /* prepared on first use */
};

/* A deleted account whose archive items are still being removed. */
typedef struct purge {
    struct purge *next;
    char *host, *user;
} purge_t;

struct store_db {
    sqlite3 *sql;
    int defer_purges; /* store_defer_purges: big archives go stepwise */
    purge_t *purges;  /* ... these, oldest first */
    tern_store_t *stores;
    int tx_depth;                 /* store_begin nesting */
    checkpointer_t *checkpointer; /* NULL: SQLite checkpoints on commit */
    int batching;                 /* inside store_batch_begin/end */
    int batch_open;               /* the outermost transaction is the batch's */
    unsigned batch_writes;        /* writes in the open batch */
    sqlite3_stmt *stmt[DB_STMT_COUNT];
    char err[ERR_LEN];            /* last error, for store_last_error */
    int64_t busy_since;           /* store_set_busy_timeout: this spell of waiting began */
    int64_t busy_budget_ms;       /* ... and may last this long */
    char *path;                   /* the file (NULL in memory): readers open it too */
    int is_reader;                /* a reader (store_reader_take), not the main db */
    store_db_t *next_idle;        /* a reader: in its main db's idle list */
    pthread_mutex_t readers_lock; /* the main db: guards idle_readers */
    store_db_t *idle_readers;
};

/* Pending purges of deleted accounts (store_purge_step). */
static void purge_free(purge_t *p);
static void purge_forget(store_db_t *db, const char *host, const char *user);
static int delete_user_rows(store_db_t *db, int which, const char *host, const char *user);

/* ---- errors -------------------------------------------------------------- */

static void set_errf(store_db_t *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_errf(store_db_t *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof(db->err), fmt, ap);
    va_end(ap);
}

/* Record the connection's last error message. */
static void set_sql_err(store_db_t *db)
{
    set_errf(db, "%s", db->sql ? sqlite3_errmsg(db->sql) : "out of memory");
}

const char *store_last_error(store_db_t *db)
{
    return db != NULL ? db->err : "no database";
}

/* ---- statement helpers ------------------------------------------------- */

/* The statement for `sql`: *slot when idle (preparing it on first use).
 * When *slot is running (a callback re-entered the store), a temporary
 * statement is prepared instead; stmt_release finalizes it.  NULL on error. */
static sqlite3_stmt *stmt_acquire(store_db_t *db, sqlite3_stmt **slot, const char *sql)
{
    if (*slot != NULL && !sqlite3_stmt_busy(*slot))
        return *slot;
    sqlite3_stmt *s = NULL;
    unsigned flags = *slot == NULL ? SQLITE_PREPARE_PERSISTENT : 0;
    if (sqlite3_prepare_v3(db->sql, sql, -1, flags, &s, NULL) != SQLITE_OK) {
        set_sql_err(db);
        sqlite3_finalize(s);
        return NULL;
    }
    if (*slot == NULL)
        *slot = s;
    return s;
}

/* Reset a statement from stmt_acquire (or finalize a temporary one). */
static void stmt_release(sqlite3_stmt *const *slot, sqlite3_stmt *s)
{
    if (s == NULL)
        return;
    if (s == *slot) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    } else {
        sqlite3_finalize(s);
    }
}

static sqlite3_stmt *db_stmt(store_db_t *db, int which)
{
    return stmt_acquire(db, &db->stmt[which], db_sql[which]);
}

static void db_release(store_db_t *db, int which, sqlite3_stmt *s)
{
    stmt_release(&db->stmt[which], s);
}

static sqlite3_stmt *st_stmt(tern_store_t *st, int which)
{
    return stmt_acquire(st->db, &st->stmt[which], st_sql[which]);
}

static void st_release(tern_store_t *st, int which, sqlite3_stmt *s)
{
    stmt_release(&st->stmt[which], s);
}

/* Bind helpers: 0 or -1.  Strings and blobs are bound without copy: they
 * must outlive the step (they always do: bindings are cleared on release). */
static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return sqlite3_bind_text(s, i, v != NULL ? v : "", -1, SQLITE_STATIC) == SQLITE_OK ? 0 : -1;
}

static int bind_blob(sqlite3_stmt *s, int i, const void *v, size_t len)
{
    int rc = len == 0 ? sqlite3_bind_zeroblob(s, i, 0)
                      : sqlite3_bind_blob64(s, i, v, (sqlite3_uint64)len, SQLITE_STATIC);
    return rc == SQLITE_OK ? 0 : -1;
}

static int bind_int64(sqlite3_stmt *s, int i, int64_t v)
{
    return sqlite3_bind_int64(s, i, (sqlite3_int64)v) == SQLITE_OK ? 0 : -1;
}

/* Bind ?1 host and ?2 store name of a handle, and ?3 user unless NULL. */
static int bind_scope(sqlite3_stmt *s, const tern_store_t *st, const char *user)
{
    if (bind_text(s, 1, st->host) < 0 || bind_text(s, 2, st->name) < 0)
        return -1;
    return user != NULL ? bind_text(s, 3, user) : 0;
}

static int db_exec(store_db_t *db, int which, int record);

#define BATCH_MAX_WRITES 512

/* Before a write: join the batch while batching (opening it outside any
 * transaction), or commit a batch left open when not.  Should BEGIN fail,
 * the write runs on its own. */
static void batch_before_write(store_db_t *db)
{
    if (db->batch_open && !db->batching)
        store_batch_flush(db);
    if (db->tx_depth == 0) /* a write transaction begins: wait for a RESTART checkpoint */
        checkpointer_gate(db->checkpointer);
    if (db->batching && db->tx_depth == 0 && db_exec(db, DB_BEGIN, 0) == 0) {
        db->tx_depth = 1;
        db->batch_open = 1;
        db->batch_writes = 0;
    }
}

/* Step a statement that returns no rows (all writes do).  0 or -1. */
static int step_done(store_db_t *db, sqlite3_stmt *s)
{
    batch_before_write(db);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    if (rc < 0)
        set_sql_err(db);
    else
        db->busy_since = 0; /* the lock was ours: a new spell may wait again */
    if (db->batch_open && ++db->batch_writes >= BATCH_MAX_WRITES && db->tx_depth == 1)
        store_batch_flush(db);
    return rc;
}

/* Copy column `col` (a blob) into a malloc'd, NUL-terminated buffer. */
static int blob_out(store_db_t *db, sqlite3_stmt *s, int col, tern_blob_t *out)
{
    const void *p = sqlite3_column_blob(s, col);
    int n = sqlite3_column_bytes(s, col);
    if (p == NULL && n > 0) {
        set_sql_err(db);
        return -1;
    }
    char *data = malloc((size_t)n + 1);
    if (data == NULL) {
        set_errf(db, "out of memory");
        return -1;
    }
    if (n > 0)
        memcpy(data, p, (size_t)n);
    data[n] = '\0';
    out->data = data;
    out->len = (size_t)n;
    return 0;
}

/* A blob column for a callback: never NULL ("" when empty). */
static const char *blob_col(sqlite3_stmt *s, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(s, col);
    *len = (size_t)sqlite3_column_bytes(s, col);
    return p != NULL ? (const char *)p : "";
}

static const char *text_col(sqlite3_stmt *s, int col)
{
    const unsigned char *p = sqlite3_column_text(s, col);
    return p != NULL ? (const char *)p : "";
}

/* Run a cached db statement that takes no parameters.  When `record` is
 * 0 a failure leaves the recorded error alone (used on rollback paths). */
static int db_exec(store_db_t *db, int which, int record)
{
    sqlite3_stmt *s = db_stmt(db, which);
    if (s == NULL)
        return -1;
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    if (rc < 0 && record)
        set_sql_err(db);
    if (rc == 0 && which == DB_BEGIN)
        db->busy_since = 0; /* the lock was ours (see budget_busy) */
    db_release(db, which, s);
    return rc;
}

/* Run constant SQL (possibly several statements) once: open/migrations. */
static int exec_once(store_db_t *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db->sql, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    set_errf(db, "%s", msg != NULL ? msg : sqlite3_errmsg(db->sql));
    sqlite3_free(msg);
    return -1;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- transactions ---------------------------------------------------------- */

/* The outermost level is BEGIN IMMEDIATE (takes the write lock at once, so
 * read-then-write sequences never fail with a stale snapshot); inner
 * levels are savepoints, so an inner rollback undoes only its own work. */
int store_begin(store_db_t *db)
{
    if (db->batch_open && db->tx_depth == 1)
        store_batch_flush(db); /* an explicit transaction is never part of a batch */
    if (db->tx_depth == 0)
        checkpointer_gate(db->checkpointer);
    if (db_exec(db, db->tx_depth == 0 ? DB_BEGIN : DB_SAVEPOINT, 1) < 0)
        return -1;
    db->tx_depth++;
    return 0;
}

void store_batch_begin(store_db_t *db)
{
    if (db)
        db->batching = 1;
}

int store_batch_end(store_db_t *db)
{
    if (!db)
        return 0;
    db->batching = 0;
    return db->batch_open;
}

int store_batch_flush(store_db_t *db)
{
    if (!db || !db->batch_open || db->tx_depth != 1)
        return 0;
    db->batch_open = 0;
    return store_commit(db);
}

int store_rollback(store_db_t *db)
{
    if (db->tx_depth <= 0) {
        set_errf(db, "no transaction");
        return -1;
    }
    int rc = 0;
    /* SQLite may already have rolled back on its own (I/O error, full disk). */
    if (!sqlite3_get_autocommit(db->sql)) {
        if (db->tx_depth == 1)
            rc = db_exec(db, DB_ROLLBACK, 0);
        else if (db_exec(db, DB_ROLLBACK_TO, 0) < 0 || db_exec(db, DB_RELEASE, 0) < 0)
            rc = -1;
    }
    db->tx_depth--;
    return rc;
}

int store_commit(store_db_t *db)
{
    if (db->tx_depth <= 0) {
        set_errf(db, "no transaction");
        return -1;
    }
    if (db_exec(db, db->tx_depth == 1 ? DB_COMMIT : DB_RELEASE, 1) < 0) {
        store_rollback(db);
        return -1;
    }
    db->tx_depth--;
    return 0;
}

/* ---- open, migrate, close ------------------------------------------------ */

static int is_memory_path(const char *path)
{
    return strcmp(path, ":memory:") == 0;
}

/* Create the database file with mode 0600 if it does not exist yet, so
 * that SQLite (and its -wal/-shm files, which copy the database's mode)
 * never makes it readable by others.  An existing file is left alone. */
static int create_file(const char *path, char *why, size_t why_len)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return 0;
        snprintf(why, why_len, "cannot create the database file: %s", strerror(errno));
        return -1;
    }
    int rc = fchmod(fd, 0600); /* exactly 0600 whatever the umask */
    close(fd);
    if (rc < 0) {
        snprintf(why, why_len, "cannot set the database file mode: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Current version from tern_schema (0 when empty), or -1. */
static int read_version(store_db_t *db)
{
    sqlite3_stmt *s = db_stmt(db, DB_VERSION);
    if (s == NULL)
        return -1;
    int v = 0;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    else if (rc != SQLITE_DONE) {
        set_sql_err(db);
        v = -1;
    }
    db_release(db, DB_VERSION, s);
    return v;
}

static int write_version(store_db_t *db, int version)
{
    sqlite3_stmt *s = NULL;
    const char *sql = "INSERT INTO tern_schema (id, version) VALUES (1, ?1)"
                      " ON CONFLICT (id) DO UPDATE SET version = excluded.version";
    if (sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL) != SQLITE_OK) {
        set_sql_err(db);
        return -1;
    }
    int rc = -1;
    if (sqlite3_bind_int(s, 1, version) == SQLITE_OK)
        rc = step_done(db, s);
    else
        set_sql_err(db);
    sqlite3_finalize(s);
    return rc;
}

/* Bring the schema to SCHEMA_VERSION, one transaction per step (re-reading
 * the version inside each, in case another process migrates too).  A
 * database newer than this code is refused. */
static int migrate(store_db_t *db)
{
    if (exec_once(db, "CREATE TABLE IF NOT EXISTS tern_schema ("
                      " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)") < 0)
        return -1;
    for (;;) {
        if (store_begin(db) < 0)
            return -1;
        int v = read_version(db);
        if (v < 0)
            goto fail;
        if (v > SCHEMA_VERSION) {
            set_errf(db, "database schema version %d is newer than this server supports (%d)", v,
                     SCHEMA_VERSION);
            goto fail;
        }
        if (v == SCHEMA_VERSION)
            return store_commit(db);
        if (exec_once(db, migrations[v]) < 0 || write_version(db, v + 1) < 0)
            goto fail;
        if (store_commit(db) < 0)
            return -1;
    }
fail:
    store_rollback(db);
    return -1;
}

/* Run a pragma and, when `expect` is set, check its (case-insensitive)
 * single-row answer. */
static int pragma(store_db_t *db, const char *sql, const char *expect, const char *expect2)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db->sql, sql, -1, &s, NULL) != SQLITE_OK) {
        set_sql_err(db);
        return -1;
    }
    int rc = sqlite3_step(s);
    int ret = 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        set_sql_err(db);
        ret = -1;
    } else if (expect != NULL) {
        const char *got = rc == SQLITE_ROW ? text_col(s, 0) : "";
        if (strcasecmp(got, expect) != 0 && (expect2 == NULL || strcasecmp(got, expect2) != 0)) {
            set_errf(db, "%s: got \"%s\"", sql, got);
            ret = -1;
        }
    }
    sqlite3_finalize(s);
    return ret;
}

store_db_t *store_open(const char *path, const char **error_r)
{
    static char why[ERR_LEN]; /* valid until the next store_open */
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    *error_r = NULL;
    if (path == NULL || path[0] == '\0') {
        *error_r = "no database path";
        return NULL;
    }
    if (!is_memory_path(path) && create_file(path, why, sizeof(why)) < 0) {
        *error_r = why;
        return NULL;
    }
    store_db_t *db = calloc(1, sizeof(*db));
    if (db == NULL || (!is_memory_path(path) && (db->path = strdup(path)) == NULL)) {
        free(db);
        *error_r = "out of memory";
        return NULL;
    }
    pthread_mutex_init(&db->readers_lock, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &db->sql, flags, NULL) != SQLITE_OK) {
        set_sql_err(db);
        goto fail;
    }
    sqlite3_extended_result_codes(db->sql, 1);
    sqlite3_busy_timeout(db->sql, BUSY_TIMEOUT_MS);
    if (pragma(db, "PRAGMA journal_mode = WAL", "wal", is_memory_path(path) ? "memory" : NULL) <
            0 ||
        pragma(db, "PRAGMA synchronous = NORMAL", NULL, NULL) < 0 ||
        pragma(db, "PRAGMA foreign_keys = ON", NULL, NULL) < 0 || migrate(db) < 0)
        goto fail;
    return db;
fail:
    snprintf(why, sizeof(why), "%s", db->err[0] != '\0' ? db->err : "cannot open the database");
    store_close(&db);
    *error_r = why;
    return NULL;
}

int store_checkpoint_in_background(store_db_t *db)
{
    if (db == NULL || db->checkpointer != NULL)
        return 0;
    db->checkpointer = checkpointer_start(db->sql);
    return db->checkpointer != NULL ? 0 : -1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The busy handler of store_set_busy_timeout: one budget of waiting per
 * spell of contention, not per statement.  A stanza may make several
 * writes; once one has waited the budget out, the others fail at once
 * until a statement gets the lock again (step_done resets the spell). */
static int budget_busy(void *arg, int tries)
{
    store_db_t *db = arg;
    int64_t now = mono_ms();
    if (db->busy_since == 0)
        db->busy_since = now;
    (void)tries;
    if (now - db->busy_since >= db->busy_budget_ms)
        return 0;
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
    return 1;
}

void store_set_busy_timeout(store_db_t *db, int ms)
{
    if (db == NULL)
        return;
    db->busy_budget_ms = ms;
    db->busy_since = 0;
    sqlite3_busy_handler(db->sql, budget_busy, db);
}

void store_close(store_db_t **dbp)
{
    if (dbp == NULL || *dbp == NULL)
        return;
    store_db_t *db = *dbp;
    store_batch_flush(db);                  /* a batch left open is committed, not lost */
    while (store_purge_step(db, 10000) > 0) /* deleted accounts go wholly */
        ;
    while (db->purges != NULL) { /* after an error: what is left stays */
        purge_t *p = db->purges;
        db->purges = p->next;
        purge_free(p);
    }
    tern_store_t *st = db->stores;
    while (st != NULL) {
        tern_store_t *next = st->next;
        for (int i = 0; i < ST_STMT_COUNT; i++)
            sqlite3_finalize(st->stmt[i]);
        free(st->host);
        free(st->name);
        free(st);
        st = next;
    }
    for (int i = 0; i < DB_STMT_COUNT; i++)
        sqlite3_finalize(db->stmt[i]);
    if (!db->is_reader) { /* first: the main connection, last out, cleans the log up */
        while (db->idle_readers != NULL) { /* every reader was given back */
            store_db_t *r = db->idle_readers;
            db->idle_readers = r->next_idle;
            store_close(&r);
        }
        pthread_mutex_destroy(&db->readers_lock);
    }
    checkpointer_stop(&db->checkpointer, db->sql);
    sqlite3_close(db->sql); /* rolls back an unfinished transaction */
    free(db->path);
    free(db);
    *dbp = NULL;
}

/* ---- readers (reads off the loop) ------------------------------------------ */

int store_read_prepare(store_db_t *db)
{
    if (db == NULL || db->path == NULL)
        return 1;
    if (db->batch_open && db->tx_depth == 1)
        return store_batch_flush(db) < 0 ? -1 : 0;
    return db->tx_depth > 0 ? 1 : 0; /* writes a reader cannot see yet */
}

/* A new reader of `path`: a connection that may only read. */
static store_db_t *reader_open(const char *path)
{
    store_db_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->is_reader = 1;
    if (sqlite3_open_v2(path, &r->sql, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(r->sql, "PRAGMA query_only = ON", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(r->sql);
        free(r);
        return NULL;
    }
    sqlite3_extended_result_codes(r->sql, 1);
    sqlite3_busy_timeout(r->sql, BUSY_TIMEOUT_MS);
    return r;
}

store_db_t *store_reader_take(store_db_t *db)
{
    if (db == NULL || db->path == NULL || db->is_reader)
        return NULL;
    pthread_mutex_lock(&db->readers_lock);
    store_db_t *r = db->idle_readers;
    if (r != NULL)
        db->idle_readers = r->next_idle;
    pthread_mutex_unlock(&db->readers_lock);
    return r != NULL ? r : reader_open(db->path);
}

void store_reader_give(store_db_t *db, store_db_t *reader)
{
    if (db == NULL || reader == NULL)
        return;
    pthread_mutex_lock(&db->readers_lock);
    reader->next_idle = db->idle_readers;
    db->idle_readers = reader;
    pthread_mutex_unlock(&db->readers_lock);
}

tern_store_t *store_reader_handle(store_db_t *reader, const tern_store_t *st)
{
    if (reader == NULL || st == NULL)
        return NULL;
    return store_get(reader, st->host, st->name, st->kind);
}

int store_read_begin(store_db_t *reader)
{
    return exec_once(reader, "BEGIN");
}

void store_read_end(store_db_t *reader)
{
    if (!sqlite3_get_autocommit(reader->sql))
        sqlite3_exec(reader->sql, "COMMIT", NULL, NULL, NULL);
}

int store_schema_version(store_db_t *db)
{
    return db != NULL ? read_version(db) : -1;
}

/* ---- handles ------------------------------------------------------------- */

tern_store_t *store_get(store_db_t *db, const char *host, const char *name, store_kind_t kind)
{
    if (db == NULL || host == NULL || name == NULL ||
        (kind != STORE_KV && kind != STORE_MAP && kind != STORE_ARCHIVE))
        return NULL;
    for (tern_store_t *st = db->stores; st != NULL; st = st->next)
        if (st->kind == kind && strcmp(st->host, host) == 0 && strcmp(st->name, name) == 0)
            return st;
    tern_store_t *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->host = strdup(host)) == NULL || (st->name = strdup(name)) == NULL) {
        if (st != NULL)
            free(st->host);
        free(st);
        set_errf(db, "out of memory");
        return NULL;
    }
    st->db = db;
    st->kind = kind;
    st->next = db->stores;
    db->stores = st;
    return st;
}

/* A handle usable as `kind`; records an error otherwise. */
static int check_kind(tern_store_t *st, store_kind_t kind)
{
    if (st == NULL)
        return -1;
    if (st->kind != kind) {
        set_errf(st->db, "store \"%s\" used as the wrong kind", st->name);
        return -1;
    }
    return 0;
}

/* ---- accounts ------------------------------------------------------------ */

/* Key length of each hash (RFC 5802 / RFC 7677): what is stored and checked. */
static size_t cred_key_len(scram_hash_t h)
{
    switch (h) {
    case SCRAM_SHA1:
        return 20;
    case SCRAM_SHA256:
        return 32;
    case SCRAM_SHA512:
        return 64;
    default:
        return 0;
    }
}

int store_account_exists(store_db_t *db, const char *host, const char *user)
{
    if (db == NULL || host == NULL || user == NULL)
        return -1;
    sqlite3_stmt *s = db_stmt(db, DB_ACC_EXISTS);
    if (s == NULL)
        return -1;
    int ret = -1;
    if (bind_text(s, 1, host) == 0 && bind_text(s, 2, user) == 0) {
        int rc = sqlite3_step(s);
        ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    }
    if (ret < 0)
        set_sql_err(db);
    db_release(db, DB_ACC_EXISTS, s);
    return ret;
}

long long store_data_version(store_db_t *db)
{
    sqlite3_stmt *s = NULL;
    if (db == NULL || sqlite3_prepare_v2(db->sql, "PRAGMA data_version", -1, &s, NULL) != SQLITE_OK)
        return -1;
    long long v = sqlite3_step(s) == SQLITE_ROW ? (long long)sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    return v;
}

/* Store (insert or replace) the credentials of every hash; inside a
 * transaction of the caller.  creds[i] must be for hash i. */
static int write_creds(store_db_t *db, const char *host, const char *user,
                       const scram_cred_t creds[SCRAM_HASH_COUNT])
{
    for (int i = 0; i < SCRAM_HASH_COUNT; i++) {
        const scram_cred_t *c = &creds[i];
        size_t klen = cred_key_len(c->hash);
        if ((int)c->hash != i || klen == 0 || c->salt_len > SCRAM_MAX_SALT || c->iterations == 0) {
            set_errf(db, "invalid credentials for hash %d", i);
            return -1;
        }
        sqlite3_stmt *s = db_stmt(db, DB_CRED_SET);
        if (s == NULL)
            return -1;
        int rc = -1;
        if (bind_text(s, 1, host) == 0 && bind_text(s, 2, user) == 0 &&
            bind_int64(s, 3, (int64_t)c->hash) == 0 && bind_int64(s, 4, c->iterations) == 0 &&
            bind_blob(s, 5, c->salt, c->salt_len) == 0 &&
            bind_blob(s, 6, c->stored_key, klen) == 0 && bind_blob(s, 7, c->server_key, klen) == 0)
            rc = step_done(db, s);
        else
            set_sql_err(db);
        db_release(db, DB_CRED_SET, s);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Insert the account row: 1 inserted, 0 already there, -1 error. */
static int insert_account(store_db_t *db, const char *host, const char *user)
{
    sqlite3_stmt *s = db_stmt(db, DB_ACC_INSERT);
    if (s == NULL)
        return -1;
    int ret = -1;
    if (bind_text(s, 1, host) == 0 && bind_text(s, 2, user) == 0 &&
        bind_int64(s, 3, now_us()) == 0) {
        if (step_done(db, s) == 0)
            ret = sqlite3_changes(db->sql) > 0 ? 1 : 0;
    } else {
        set_sql_err(db);
    }
    db_release(db, DB_ACC_INSERT, s);
    return ret;
}

int store_account_create(store_db_t *db, const char *host, const char *user,
                         const scram_cred_t creds[SCRAM_HASH_COUNT], int *exists_r)
{
    if (exists_r != NULL)
        *exists_r = 0;
    if (db == NULL || host == NULL || user == NULL || creds == NULL)
        return -1;
    if (store_begin(db) < 0)
        return -1;
    int r = insert_account(db, host, user);
    /* A name deleted moments ago may still have archive items waiting for
     * store_purge_step (or left by a stop in between): a new account never
     * inherits them.  One index seek when there are none. */
    if (r == 1 && delete_user_rows(db, DB_USER_ARCHIVE_DELETE, host, user) < 0)
        r = -1;
    else if (r == 1)
        purge_forget(db, host, user);
    if (r == 0) {
        set_errf(db, "account exists");
        if (exists_r != NULL)
            *exists_r = 1;
    }
    if (r <= 0 || write_creds(db, host, user, creds) < 0) {
        store_rollback(db);
        return -1;
    }
    return store_commit(db);
}

int store_account_set_creds(store_db_t *db, const char *host, const char *user,
                            const scram_cred_t creds[SCRAM_HASH_COUNT])
{
    if (db == NULL || host == NULL || user == NULL || creds == NULL)
        return -1;
    if (store_begin(db) < 0)
        return -1;
    int exists = store_account_exists(db, host, user);
    if (exists == 0)
        set_errf(db, "no such account");
    if (exists <= 0 || write_creds(db, host, user, creds) < 0) {
        store_rollback(db);
        return -1;
    }
    return store_commit(db);
}

int store_account_get_cred(store_db_t *db, const char *host, const char *user, scram_hash_t h,
                           scram_cred_t *cred)
{
    size_t klen = cred_key_len(h);
    if (db == NULL || host == NULL || user == NULL || cred == NULL || klen == 0)
        return -1;
    sqlite3_stmt *s = db_stmt(db, DB_CRED_GET);
    if (s == NULL)
        return -1;
    int ret = -1;
    if (bind_text(s, 1, host) < 0 || bind_text(s, 2, user) < 0 || bind_int64(s, 3, h) < 0) {
        set_sql_err(db);
        goto out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        set_errf(db, "no such account");
        goto out;
    }
    if (rc != SQLITE_ROW) {
        set_sql_err(db);
        goto out;
    }
    const void *salt = sqlite3_column_blob(s, 1);
    size_t salt_len = (size_t)sqlite3_column_bytes(s, 1);
    const void *stored = sqlite3_column_blob(s, 2);
    const void *server = sqlite3_column_blob(s, 3);
    sqlite3_int64 iter = sqlite3_column_int64(s, 0);
    if (salt_len > SCRAM_MAX_SALT || (salt == NULL && salt_len > 0) || stored == NULL ||
        server == NULL || (size_t)sqlite3_column_bytes(s, 2) != klen ||
        (size_t)sqlite3_column_bytes(s, 3) != klen || iter < 1 || iter > UINT32_MAX) {
        set_errf(db, "corrupt credentials for %s@%s", user, host);
        goto out;
    }
    memset(cred, 0, sizeof(*cred));
    cred->hash = h;
    cred->iterations = (unsigned)iter;
    cred->salt_len = salt_len;
    if (salt_len > 0)
        memcpy(cred->salt, salt, salt_len);
    memcpy(cred->stored_key, stored, klen);
    memcpy(cred->server_key, server, klen);
    ret = 0;
out:
    db_release(db, DB_CRED_GET, s);
    return ret;
}

/* Run one of the (host, user) delete statements. */
static int delete_user_rows(store_db_t *db, int which, const char *host, const char *user)
{
    sqlite3_stmt *s = db_stmt(db, which);
    if (s == NULL)
        return -1;
    int rc = -1;
    if (bind_text(s, 1, host) == 0 && bind_text(s, 2, user) == 0)
        rc = step_done(db, s);
    else
        set_sql_err(db);
    db_release(db, which, s);
    return rc;
}

/* Delete up to `max` archive items of (host, user): how many, or -1. */
static long delete_user_archive_some(store_db_t *db, const char *host, const char *user, long max)
{
    sqlite3_stmt *s = db_stmt(db, DB_USER_ARCHIVE_DELETE_SOME);
    if (s == NULL)
        return -1;
    long n = -1;
    if (bind_text(s, 1, host) == 0 && bind_text(s, 2, user) == 0 && bind_int64(s, 3, max) == 0) {
        if (step_done(db, s) == 0)
            n = (long)sqlite3_changes(db->sql);
    } else {
        set_sql_err(db);
    }
    db_release(db, DB_USER_ARCHIVE_DELETE_SOME, s);
    return n;
}

static void purge_free(purge_t *p)
{
    free(p->host);
    free(p->user);
    free(p);
}

/* Remember that (host, user) still has archive items to remove.  0 or -1. */
static int purge_add(store_db_t *db, const char *host, const char *user)
{
    purge_t *p = calloc(1, sizeof(*p)), **tail = &db->purges;
    if (p == NULL || (p->host = strdup(host)) == NULL || (p->user = strdup(user)) == NULL) {
        if (p != NULL)
            purge_free(p);
        set_errf(db, "out of memory");
        return -1;
    }
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = p;
    return 0;
}

/* Forget a pending purge of (host, user), if any. */
static void purge_forget(store_db_t *db, const char *host, const char *user)
{
    for (purge_t **pp = &db->purges; *pp != NULL; pp = &(*pp)->next) {
        purge_t *p = *pp;
        if (strcmp(p->host, host) == 0 && strcmp(p->user, user) == 0) {
            *pp = p->next;
            purge_free(p);
            return;
        }
    }
}

void store_defer_purges(store_db_t *db)
{
    if (db != NULL)
        db->defer_purges = 1;
}

int store_purge_step(store_db_t *db, long max)
{
    if (db == NULL || db->purges == NULL)
        return 0;
    purge_t *p = db->purges;
    long n = delete_user_archive_some(db, p->host, p->user, max);
    if (n >= 0 && n < max) { /* this one is done */
        db->purges = p->next;
        purge_free(p);
    }
    return n < 0 ? -1 : db->purges != NULL;
}

/* Deletes the credentials, the account and the user's rows of every kv,
 * map and archive store of the host, all or nothing.  Deleting an account
 * that does not exist succeeds (and still wipes any data of that user).
 * With store_defer_purges, an archive bigger than PURGE_NOW items loses
 * the rest through store_purge_step: the account is gone at once, its
 * history a little later. */
#define PURGE_NOW 500
int store_account_delete(store_db_t *db, const char *host, const char *user)
{
    static const int steps[] = {DB_CRED_DELETE, DB_ACC_DELETE, DB_USER_KV_DELETE,
                                DB_USER_MAP_DELETE, DB_USER_ARCHIVE_DELETE};
    size_t n_steps = sizeof(steps) / sizeof(steps[0]) - (db != NULL && db->defer_purges);
    if (db == NULL || host == NULL || user == NULL)
        return -1;
    if (store_begin(db) < 0)
        return -1;
    for (size_t i = 0; i < n_steps; i++) {
        if (delete_user_rows(db, steps[i], host, user) < 0) {
            store_rollback(db);
            return -1;
        }
    }
    long gone = db->defer_purges ? delete_user_archive_some(db, host, user, PURGE_NOW) : 0;
    if (gone < 0 || (gone == PURGE_NOW && purge_add(db, host, user) < 0)) {
        store_rollback(db);
        return -1;
    }
    if (store_commit(db) < 0) {
        if (gone == PURGE_NOW)
            purge_forget(db, host, user);
        return -1;
    }
    return 0;
}

/* fn returning non-zero stops the walk (the call still returns 0). */
int store_account_foreach(store_db_t *db, const char *host,
                          int (*fn)(void *ctx, const char *host, const char *user), void *ctx)
{
    if (db == NULL || fn == NULL)
        return -1;
    int which = host != NULL ? DB_ACC_HOST : DB_ACC_ALL;
    sqlite3_stmt *s = db_stmt(db, which);
    if (s == NULL)
        return -1;
    int ret = 0, rc;
    if (host != NULL && bind_text(s, 1, host) < 0) {
        set_sql_err(db);
        ret = -1;
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, text_col(s, 0), text_col(s, 1)) != 0)
            goto out;
    if (rc != SQLITE_DONE) {
        set_sql_err(db);
        ret = -1;
    }
out:
    db_release(db, which, s);
    return ret;
}

/* ---- key-value ----------------------------------------------------------- */

/* Shared by kv and map get: run `which` (scope + optional ?4 key). */
static int get_value(tern_store_t *st, int which, const char *user, const char *key,
                     tern_blob_t *out)
{
    sqlite3_stmt *s = st_stmt(st, which);
    if (s == NULL)
        return -1;
    int ret = -1;
    if (bind_scope(s, st, user) < 0 || (key != NULL && bind_text(s, 4, key) < 0)) {
        set_sql_err(st->db);
        goto out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        ret = blob_out(st->db, s, 0, out) == 0 ? 1 : -1;
    else if (rc == SQLITE_DONE)
        ret = 0;
    else
        set_sql_err(st->db);
out:
    st_release(st, which, s);
    return ret;
}

/* Shared write: run `which` with the scope, optional ?4 key and the value
 * (at ?4 or ?5); with data NULL, a delete statement without value. */
static int put_value(tern_store_t *st, int which, const char *user, const char *key,
                     const char *data, size_t len)
{
    sqlite3_stmt *s = st_stmt(st, which);
    if (s == NULL)
        return -1;
    int rc = -1;
    int vi = key != NULL ? 5 : 4;
    if (bind_scope(s, st, user) == 0 && (key == NULL || bind_text(s, 4, key) == 0) &&
        (data == NULL || bind_blob(s, vi, data, len) == 0))
        rc = step_done(st->db, s);
    else
        set_sql_err(st->db);
    st_release(st, which, s);
    return rc;
}

TERN_API int tern_kv_get(tern_store_t *st, const char *user, tern_blob_t *out)
{
    if (check_kind(st, STORE_KV) < 0 || out == NULL)
        return -1;
    return get_value(st, ST_KV_GET, user != NULL ? user : "", NULL, out);
}

TERN_API int tern_kv_set(tern_store_t *st, const char *user, const char *data, size_t len)
{
    if (check_kind(st, STORE_KV) < 0)
        return -1;
    return put_value(st, data != NULL ? ST_KV_SET : ST_KV_DEL, user != NULL ? user : "", NULL, data,
                     len);
}

/* ---- map ----------------------------------------------------------------- */

TERN_API int tern_map_get(tern_store_t *st, const char *user, const char *key, tern_blob_t *out)
{
    if (check_kind(st, STORE_MAP) < 0 || key == NULL || out == NULL)
        return -1;
    return get_value(st, ST_MAP_GET, user != NULL ? user : "", key, out);
}

/* data == NULL deletes the key (like tern_kv_set). */
TERN_API int tern_map_set(tern_store_t *st, const char *user, const char *key, const char *data,
                          size_t len)
{
    if (check_kind(st, STORE_MAP) < 0 || key == NULL)
        return -1;
    return put_value(st, data != NULL ? ST_MAP_SET : ST_MAP_DEL, user != NULL ? user : "", key,
                     data, len);
}

/* The walk of tern_map_foreach and tern_map_foreach_after: keys after
 * `after` ("" = all), at most `limit` rows (-1 = all).  The number of
 * rows passed to fn, or -1. */
static long map_walk(tern_store_t *st, int which, const char *user, const char *after, long limit,
                     int (*fn)(void *, const char *, const char *, size_t), void *ctx)
{
    if (check_kind(st, STORE_MAP) < 0 || fn == NULL)
        return -1;
    sqlite3_stmt *s = st_stmt(st, which);
    if (s == NULL)
        return -1;
    long n = 0;
    int rc;
    if (bind_scope(s, st, user != NULL ? user : "") < 0 ||
        (which == ST_MAP_EACH_AFTER && /* a copy: fn may rewrite `after` (a cursor) */
         (sqlite3_bind_text(s, 4, after, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
          bind_int64(s, 5, limit) < 0))) {
        set_sql_err(st->db);
        n = -1;
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        size_t len;
        const char *data = blob_col(s, 1, &len);
        n++;
        if (fn(ctx, text_col(s, 0), data, len) != 0)
            goto out;
    }
    if (rc != SQLITE_DONE) {
        set_sql_err(st->db);
        n = -1;
    }
out:
    st_release(st, which, s);
    return n;
}

/* Keys are ordered bytewise (SQLite BINARY collation). */
TERN_API int tern_map_foreach(tern_store_t *st, const char *user,
                              int (*fn)(void *ctx, const char *key, const char *data, size_t len),
                              void *ctx)
{
    return map_walk(st, ST_MAP_EACH, user, NULL, -1, fn, ctx) < 0 ? -1 : 0;
}

TERN_API long
tern_map_foreach_after(tern_store_t *st, const char *user, const char *after, long limit,
                       int (*fn)(void *ctx, const char *key, const char *data, size_t len),
                       void *ctx)
{
    return map_walk(st, ST_MAP_EACH_AFTER, user, after != NULL ? after : "", limit > 0 ? limit : -1,
                    fn, ctx);
}

/* ---- archive ------------------------------------------------------------- */

/* A position in the archive order; items lie strictly between lo and hi. */
typedef struct {
    int64_t when, seq;
} ar_pos_t;

typedef struct {
    ar_pos_t lo, hi;
} ar_range_t;

/* One item selected by the ids filter. */
typedef struct {
    ar_pos_t pos;
    int64_t rid;
} ar_hit_t;

static int pos_cmp(ar_pos_t a, ar_pos_t b)
{
    if (a.when != b.when)
        return a.when < b.when ? -1 : 1;
    return a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0;
}

/* Look an id up: 1 found (*pos, *rid, *with_ok = matches `with` or with
 * is NULL), 0 unknown, -1 error. */
static int ar_find(tern_store_t *st, const char *user, const char *id, const char *with,
                   ar_pos_t *pos, int64_t *rid, int *with_ok)
{
    sqlite3_stmt *s = st_stmt(st, ST_AR_FIND);
    if (s == NULL)
        return -1;
    int ret = -1;
    if (bind_scope(s, st, user) < 0 || bind_text(s, 4, id) < 0) {
        set_sql_err(st->db);
        goto out;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        pos->when = sqlite3_column_int64(s, 0);
        pos->seq = sqlite3_column_int64(s, 1);
        if (with_ok != NULL)
            *with_ok = with == NULL || strcmp(text_col(s, 2), with) == 0;
        if (rid != NULL)
            *rid = sqlite3_column_int64(s, 3);
        ret = 1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    } else {
        set_sql_err(st->db);
    }
out:
    st_release(st, ST_AR_FIND, s);
    return ret;
}

/* Turn start/end/after_id/before_id into one exclusive range.  seq is
 * always >= 1, so (t, 0) is "just before anything at t".  -1 on error or
 * when after_id/before_id is unknown (item-not-found for the caller). */
static int ar_range(tern_store_t *st, const char *user, const tern_archive_query_t *q,
                    ar_range_t *r)
{
    r->lo = (ar_pos_t){INT64_MIN, INT64_MIN};
    r->hi = (ar_pos_t){INT64_MAX, INT64_MAX};
    if (q == NULL)
        return 0;
    if (q->start_us != 0)
        r->lo = (ar_pos_t){q->start_us, 0};
    if (q->end_us != 0)
        r->hi = (ar_pos_t){q->end_us, INT64_MAX};
    const char *ids[2] = {q->after_id, q->before_id};
    for (int i = 0; i < 2; i++) {
        if (ids[i] == NULL)
            continue;
        ar_pos_t p;
        int found = ar_find(st, user, ids[i], NULL, &p, NULL, NULL);
        if (found < 0)
            return -1;
        if (found == 0) {
            set_errf(st->db, "item-not-found: no archive item \"%s\"", ids[i]);
            return -1;
        }
        if (i == 0 && pos_cmp(p, r->lo) > 0)
            r->lo = p;
        if (i == 1 && pos_cmp(p, r->hi) < 0)
            r->hi = p;
    }
    return 0;
}

static int in_range(const ar_range_t *r, ar_pos_t p)
{
    return pos_cmp(p, r->lo) > 0 && pos_cmp(p, r->hi) < 0;
}

/* Bind scope, range (?4..?7) and the optional with (?8). */
static int bind_range(sqlite3_stmt *s, const tern_store_t *st, const char *user,
                      const ar_range_t *r, const char *with)
{
    if (bind_scope(s, st, user) < 0 || bind_int64(s, 4, r->lo.when) < 0 ||
        bind_int64(s, 5, r->lo.seq) < 0 || bind_int64(s, 6, r->hi.when) < 0 ||
        bind_int64(s, 7, r->hi.seq) < 0)
        return -1;
    return with != NULL ? bind_text(s, 8, with) : 0;
}

static int hit_cmp(const void *a, const void *b)
{
    return pos_cmp(((const ar_hit_t *)a)->pos, ((const ar_hit_t *)b)->pos);
}

/* The ids filter: look every id up, keep those matching the range and the
 * with filter, in archive order without duplicates.  *hits is malloc'd.
 * Returns the count, or -1. */
static long ar_collect_ids(tern_store_t *st, const char *user, const tern_archive_query_t *q,
                           const ar_range_t *r, ar_hit_t **hits)
{
    size_t n = 0;
    while (q->ids[n] != NULL)
        n++;
    *hits = malloc((n > 0 ? n : 1) * sizeof(**hits));
    if (*hits == NULL) {
        set_errf(st->db, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        ar_hit_t h;
        int with_ok = 0;
        int found = ar_find(st, user, q->ids[i], q->with, &h.pos, &h.rid, &with_ok);
        if (found < 0) {
            free(*hits);
            *hits = NULL;
            return -1;
        }
        if (found && with_ok && in_range(r, h.pos))
            (*hits)[k++] = h;
    }
    qsort(*hits, k, sizeof(**hits), hit_cmp);
    size_t u = 0; /* drop duplicates (the same id listed twice) */
    for (size_t i = 0; i < k; i++)
        if (u == 0 || (*hits)[u - 1].rid != (*hits)[i].rid)
            (*hits)[u++] = (*hits)[i];
    return (long)u;
}

TERN_API int tern_archive_append(tern_store_t *st, const char *user, const char *id,
                                 int64_t when_us, const char *with, const char *data, size_t len)
{
    if (check_kind(st, STORE_ARCHIVE) < 0 || id == NULL || (data == NULL && len > 0))
        return -1;
    sqlite3_stmt *s = st_stmt(st, ST_AR_APPEND);
    if (s == NULL)
        return -1;
    int rc = -1;
    if (bind_scope(s, st, user != NULL ? user : "") == 0 && bind_text(s, 4, id) == 0 &&
        bind_int64(s, 5, when_us != 0 ? when_us : now_us()) == 0 && bind_text(s, 6, with) == 0 &&
        bind_blob(s, 7, data, len) == 0)
        rc = step_done(st->db, s);
    else
        set_sql_err(st->db);
    st_release(st, ST_AR_APPEND, s);
    return rc;
}

/* Pass the current row of an item statement to fn; its return value. */
static int ar_emit(sqlite3_stmt *s, int (*fn)(void *ctx, const tern_archive_item_t *item),
                   void *ctx)
{
    if (fn == NULL)
        return 0;
    tern_archive_item_t item;
    item.id = text_col(s, 0);
    item.when_us = sqlite3_column_int64(s, 1);
    item.with = text_col(s, 2);
    item.data = blob_col(s, 3, &item.len);
    return fn(ctx, &item);
}

/* Query through the ids filter: hits in order, limit applied, each item
 * fetched by rowid. */
static int ar_query_ids(tern_store_t *st, const char *user, const tern_archive_query_t *q,
                        const ar_range_t *r, int (*fn)(void *, const tern_archive_item_t *),
                        void *ctx)
{
    ar_hit_t *hits;
    long n = ar_collect_ids(st, user, q, r, &hits);
    if (n < 0)
        return -1;
    long take = q->limit != 0 && (long)q->limit < n ? (long)q->limit : n;
    int count = 0;
    for (long i = 0; i < take; i++) {
        const ar_hit_t *h = &hits[q->reverse ? n - 1 - i : i];
        sqlite3_stmt *s = st_stmt(st, ST_AR_BY_RID);
        if (s == NULL) {
            count = -1;
            break;
        }
        int rc = bind_scope(s, st, user) == 0 && bind_int64(s, 4, h->rid) == 0 ? sqlite3_step(s)
                                                                               : SQLITE_ERROR;
        int stop = 0;
        if (rc == SQLITE_ROW) {
            count++;
            stop = ar_emit(s, fn, ctx);
        } else if (rc != SQLITE_DONE) { /* SQLITE_DONE: deleted meanwhile by fn */
            set_sql_err(st->db);
            count = -1;
        }
        st_release(st, ST_AR_BY_RID, s);
        if (count < 0 || stop)
            break;
    }
    free(hits);
    return count;
}

/* What every archive query, count and deletion starts with: the store's
 * kind checked, NULL user and query read as "" and "everything", and
 * the query's bounds as one range.  0, or -1. */
static int ar_prepare(tern_store_t *st, const char **user, const tern_archive_query_t **q,
                      ar_range_t *r)
{
    static const tern_archive_query_t all = {0};
    if (check_kind(st, STORE_ARCHIVE) < 0)
        return -1;
    if (*q == NULL)
        *q = &all;
    if (*user == NULL)
        *user = "";
    return ar_range(st, *user, *q, r);
}

/* fn returning non-zero stops the query; the item it was given counts. */
TERN_API int tern_archive_query(tern_store_t *st, const char *user, const tern_archive_query_t *q,
                                int (*fn)(void *ctx, const tern_archive_item_t *item), void *ctx)
{
    ar_range_t r;
    if (ar_prepare(st, &user, &q, &r) < 0)
        return -1;
    if (q->ids != NULL)
        return ar_query_ids(st, user, q, &r, fn, ctx);

    int which = (q->with != NULL ? ST_AR_QUERY_W : ST_AR_QUERY) + (q->reverse ? 1 : 0);
    sqlite3_stmt *s = st_stmt(st, which);
    if (s == NULL)
        return -1;
    int count = 0, rc;
    if (bind_range(s, st, user, &r, q->with) < 0 ||
        bind_int64(s, 9, q->limit != 0 ? (int64_t)q->limit : -1) < 0) {
        set_sql_err(st->db);
        count = -1;
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        count++;
        if (ar_emit(s, fn, ctx) != 0)
            goto out;
    }
    if (rc != SQLITE_DONE) {
        set_sql_err(st->db);
        count = -1;
    }
out:
    st_release(st, which, s);
    return count;
}

TERN_API long tern_archive_count(tern_store_t *st, const char *user, const tern_archive_query_t *q)
{
    return tern_archive_count_max(st, user, q, 0);
}

TERN_API long tern_archive_count_max(tern_store_t *st, const char *user,
                                     const tern_archive_query_t *q, long max)
{
    ar_range_t r;
    if (ar_prepare(st, &user, &q, &r) < 0)
        return -1;
    if (q->ids != NULL) {
        ar_hit_t *hits;
        long n = ar_collect_ids(st, user, q, &r, &hits);
        free(hits);
        return n;
    }
    int which = q->with != NULL ? ST_AR_COUNT_W : ST_AR_COUNT;
    sqlite3_stmt *s = st_stmt(st, which);
    if (s == NULL)
        return -1;
    long n = -1;
    if (bind_range(s, st, user, &r, q->with) == 0 && bind_int64(s, 9, max > 0 ? max : -1) == 0 &&
        sqlite3_step(s) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(s, 0);
    else
        set_sql_err(st->db);
    st_release(st, which, s);
    return n;
}

/* Delete the items of the ids filter one by one, in one transaction. */
static long ar_delete_ids(tern_store_t *st, const char *user, const tern_archive_query_t *q,
                          const ar_range_t *r)
{
    if (store_begin(st->db) < 0)
        return -1;
    ar_hit_t *hits;
    long n = ar_collect_ids(st, user, q, r, &hits), deleted = 0;
    for (long i = 0; i < n; i++) {
        sqlite3_stmt *s = st_stmt(st, ST_AR_DEL_RID);
        int rc = -1;
        if (s != NULL && bind_scope(s, st, user) == 0 && bind_int64(s, 4, hits[i].rid) == 0)
            rc = step_done(st->db, s);
        else if (s != NULL)
            set_sql_err(st->db);
        if (rc == 0)
            deleted += sqlite3_changes(st->db->sql);
        st_release(st, ST_AR_DEL_RID, s);
        if (rc < 0) {
            n = -1;
            break;
        }
    }
    free(hits);
    if (n < 0) {
        store_rollback(st->db);
        return -1;
    }
    return store_commit(st->db) == 0 ? deleted : -1;
}

TERN_API long tern_archive_delete(tern_store_t *st, const char *user, const tern_archive_query_t *q)
{
    ar_range_t r;
    if (ar_prepare(st, &user, &q, &r) < 0)
        return -1;
    if (q->ids != NULL)
        return ar_delete_ids(st, user, q, &r);
    int which = q->with != NULL ? ST_AR_DELETE_W : ST_AR_DELETE;
    sqlite3_stmt *s = st_stmt(st, which);
    if (s == NULL)
        return -1;
    long n = -1;
    if (bind_range(s, st, user, &r, q->with) == 0) {
        if (step_done(st->db, s) == 0)
            n = (long)sqlite3_changes64(st->db->sql);
    } else {
        set_sql_err(st->db);
    }
    st_release(st, which, s);
    return n;
}

TERN_API long tern_archive_expire(tern_store_t *st, int64_t before_us)
{
    return tern_archive_expire_some(st, before_us, 0);
}

TERN_API long tern_archive_expire_some(tern_store_t *st, int64_t before_us, long max)
{
    if (check_kind(st, STORE_ARCHIVE) < 0)
        return -1;
    sqlite3_stmt *s = st_stmt(st, ST_AR_EXPIRE);
    if (s == NULL)
        return -1;
    long n = -1;
    if (bind_scope(s, st, NULL) == 0 && bind_int64(s, 3, before_us) == 0 &&
        bind_int64(s, 4, max > 0 ? max : -1) == 0) {
        if (step_done(st->db, s) == 0)
            n = (long)sqlite3_changes64(st->db->sql);
    } else {
        set_sql_err(st->db);
    }
    st_release(st, ST_AR_EXPIRE, s);
    return n;
}
