/*
 * account_names.h — which accounts exist, answered from memory (internal).
 *
 * The router asks "is there such an account" for every stanza to a user
 * with no session (RFC 6121 §8.5.1: deliver or store offline, else
 * bounce); asking the database each time was a read on the event loop.
 * The daemon loads the names of every account of its database once at
 * start-up (account_names_load) and keeps them current: accounts.c tells
 * this file of every account it creates or deletes on that database.
 *
 * Another process (ternctl adduser, adduser-batch) may add accounts to
 * the database while the daemon runs.  A name found in memory is an
 * account; a name not found is "no such account" only while the
 * database's data_version (store_data_version) is the one the set was
 * read at: after a write by another process, a name not found is looked
 * up in the database (as before) and the set is read again on a worker
 * thread.  So a "no such account" is never stale; a "yes" can be, for an
 * account another process deleted directly, which ternctl does only when
 * no daemon answers on the admin socket.
 *
 * Memory: one hash table entry per account, its key "user@host" copied:
 * 6.4 MB per 100 000 accounts of 22-byte "user@host" keys, about 42
 * bytes plus the key's length each (measured: doc/performance.md).
 * Loop thread only.
 */
#ifndef TERN_ACCOUNT_NAMES_H
#define TERN_ACCOUNT_NAMES_H

#include <stddef.h>

#include "store/store.h"

/* Read every account name of `db` (on the loop, at start-up: one scan).
 * From then on db's account checks are answered here.  0, or -1 (the
 * checks then go to the database, as without this file). */
int account_names_load(store_db_t *db);
/* Forget the names (at shutdown, before the db closes). */
void account_names_free(void);

/* 1 when local@host is an account of db, 0 when not, -1 on a storage
 * error.  From memory, but as described above after another process
 * wrote to the database.  Without a load for db: store_account_exists. */
int account_names_exists(store_db_t *db, const char *host, const char *user);

/* The account was created / deleted on db by this process (accounts.c). */
void account_names_added(store_db_t *db, const char *host, const char *user);
void account_names_removed(store_db_t *db, const char *host, const char *user);

/* How many names are held, and whether a database lookup is needed for
 * names not held (another process wrote since the last read).  For
 * status and tests. */
size_t account_names_count(int *stale_r);

#endif
