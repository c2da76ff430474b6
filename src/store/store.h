/*
 * store.h — the core's side of storage (internal).
 *
 * Opens the backend (SQLite today), hands out tern_store_t handles to
 * modules, keeps user accounts (SCRAM credentials only) and removes every
 * trace of a user on deletion.  The schema is versioned and migrated on
 * open.  Only the core includes this header.
 */
#ifndef TERN_STORE_INTERNAL_H
#define TERN_STORE_INTERNAL_H

#include <tern/store.h>
#include "xmpp/scram.h"

typedef struct store_db store_db_t;

typedef enum { STORE_KV = 1, STORE_MAP = 2, STORE_ARCHIVE = 3 } store_kind_t;

/* Open (creating if needed) the database at `path`, set WAL and
 * synchronous=NORMAL, run migrations.  NULL and *error_r on failure
 * (including a database whose schema is newer than this code).  A new
 * file is created with mode 0600.  One thread at a time per db. */
store_db_t *store_open(const char *path, const char **error_r);
void store_close(store_db_t **db);

/* A store handle for (host, name, kind); owned by the db, valid until
 * store_close.  The same arguments return the same handle. */
tern_store_t *store_get(store_db_t *db, const char *host, const char *name, store_kind_t kind);

/* Accounts.  `user` is a prepared localpart. */
int store_account_exists(store_db_t *db, const char *host, const char *user); /* 1/0/-1 */
/* A number that changes whenever another connection (another process:
 * ternctl) commits to the database, and only then: SQLite's data_version
 * of db's own connection.  Cheap (no table is read).  >= 0, or -1. */
long long store_data_version(store_db_t *db);
/* Create with credentials for every hash; -1 if it exists (*exists_r = 1) or on error. */
int store_account_create(store_db_t *db, const char *host, const char *user,
                         const scram_cred_t creds[SCRAM_HASH_COUNT], int *exists_r);
/* Replace the credentials of an existing account (password change). */
int store_account_set_creds(store_db_t *db, const char *host, const char *user,
                            const scram_cred_t creds[SCRAM_HASH_COUNT]);
/* 0 and *cred filled, or -1 when there is no such account/hash. */
int store_account_get_cred(store_db_t *db, const char *host, const char *user, scram_hash_t h,
                           scram_cred_t *cred);
/* Delete the account and all its data in every store of the host. */
int store_account_delete(store_db_t *db, const char *host, const char *user);
/* The server's way (store_account_delete): a big archive of a deleted
 * account is removed PURGE_NOW items at a time by store_purge_step,
 * which the loop calls between other work; returns 1 while some is
 * left, 0 when none, -1 on error.  store_close finishes the job, and a
 * new account of the same name never sees what is left. */
void store_defer_purges(store_db_t *db);
int store_purge_step(store_db_t *db, long max);
/* Calls fn for each account of host (all hosts when host is NULL), sorted. */
int store_account_foreach(store_db_t *db, const char *host,
                          int (*fn)(void *ctx, const char *host, const char *user), void *ctx);

/* Current schema version (for tests and `ternctl status`). */
int store_schema_version(store_db_t *db);

/* The message of the last failure on `db` (never NULL).  store_open's
 * *error_r stays valid until the next store_open. */
const char *store_last_error(store_db_t *db);

/* Group writes in one transaction (e.g. a bulk import): begin, then commit
 * or rollback.  Calls nest (inner levels are savepoints); the store's own
 * multi-statement operations use them too.  0 or -1. */
/* Move WAL checkpoints (and their disk syncs) to a thread of their own,
 * off the event loop (the server does; tools need not).  0, or -1 when
 * they stay inline. */
int store_checkpoint_in_background(store_db_t *db);

/* How long writes wait for another process's write lock before they
 * fail (store_open sets BUSY_TIMEOUT_MS per statement, 2 s, fit for
 * tools).  The server's loop sets a short one, and it is one budget per
 * spell of contention, not per statement: while the loop waits, nobody
 * is served. */
void store_set_busy_timeout(store_db_t *db, int ms);

/* Write batching.  While batching is on, writes made outside any
 * transaction join one transaction (the batch), opened by the first of
 * them; it stays open after store_batch_end() until store_batch_flush()
 * commits it, so that the writes of many reads share one commit.  A
 * write or store_begin() with batching off commits an open batch first;
 * so does the 512th write of a batch.  The caller commits the batch
 * before anything it holds is acknowledged to a peer. */
void store_batch_begin(store_db_t *db);
/* Batching off; 1 when a batch is left open (to flush soon), else 0. */
int store_batch_end(store_db_t *db);
/* Commit the open batch, if any.  0, or -1 (its writes are lost). */
int store_batch_flush(store_db_t *db);

/* Reads off the event loop (the worker side of the tern_*_async calls).
 * A reader is a read-only connection to the same database, used by one
 * thread at a time; the db keeps the idle ones for reuse.  WAL lets a
 * reader run while the loop writes, and a reader sees every transaction
 * committed before its snapshot begins.
 *
 * store_read_prepare, on the loop before a read is handed to a worker:
 * commits the open batch (so that the reader sees every write made so
 * far: committing early keeps the "committed before acknowledged" rule).
 * Returns 0 when a reader will see everything, 1 when the read must run
 * on the loop's own connection instead (an explicit transaction is open,
 * or the database is in memory), -1 when the batch cannot be committed. */
int store_read_prepare(store_db_t *db);
/* Any thread: an idle reader of db (opening one when none is idle), or
 * NULL (in-memory database, or the open failed: see the log of the
 * caller).  Give it back with store_reader_give. */
store_db_t *store_reader_take(store_db_t *db);
void store_reader_give(store_db_t *db, store_db_t *reader);
/* On the reader's thread: the reader's handle for the store `st` (of the
 * main db), or NULL. */
tern_store_t *store_reader_handle(store_db_t *reader, const tern_store_t *st);
/* A read snapshot on a reader: several reads between begin and end see
 * the same state.  0 or -1. */
int store_read_begin(store_db_t *reader);
void store_read_end(store_db_t *reader);

int store_begin(store_db_t *db);
int store_commit(store_db_t *db);
int store_rollback(store_db_t *db);

#endif
