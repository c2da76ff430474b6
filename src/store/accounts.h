/*
 * accounts.h — create, change and delete accounts (internal).
 *
 * Shared by ternd and ternctl so both derive SCRAM credentials the same
 * way.  Passwords are turned into salted SCRAM keys for every hash and
 * never stored or logged.
 */
#ifndef TERN_ACCOUNTS_H
#define TERN_ACCOUNTS_H

#include "store/store.h"

/* `user` is prepared here (RFC 7622 localpart).  0, or -1 with *error_r:
 * "invalid username", "account exists", "no such account", "invalid password",
 * "storage error". */
int accounts_add(store_db_t *db, const char *host, const char *user, const char *password,
                 unsigned iterations, const char **error_r);
/* accounts_add in two steps, so that no transaction is held open while
 * keys are derived: _derive is CPU bound and touches no store (0, or -1
 * for an invalid password; creds wiped then), _add_derived stores them
 * (errors as accounts_add).  The caller wipes creds afterwards. */
int accounts_derive(const char *password, unsigned iterations,
                    scram_cred_t creds[SCRAM_HASH_COUNT]);
int accounts_add_derived(store_db_t *db, const char *host, const char *user,
                         const scram_cred_t creds[SCRAM_HASH_COUNT], const char **error_r);
/* accounts_passwd's second step, with keys from accounts_derive. */
int accounts_passwd_derived(store_db_t *db, const char *host, const char *user,
                            const scram_cred_t creds[SCRAM_HASH_COUNT], const char **error_r);
int accounts_passwd(store_db_t *db, const char *host, const char *user, const char *password,
                    unsigned iterations, const char **error_r);
/* 1 when `password` matches the stored keys of the prepared `user`, else 0.
 * Costs one key derivation (PBKDF2 with the stored iteration count). */
int accounts_check_password(store_db_t *db, const char *host, const char *user,
                            const char *password);
/* The same check in three steps, for the worker pool: _new reads the
 * stored keys (on the loop; NULL when there is no such account or no
 * memory), _run derives and compares (on any thread; it touches only the
 * check), _ok reads the verdict, _free wipes the copy of the password. */
typedef struct accounts_check accounts_check_t;
accounts_check_t *accounts_check_new(store_db_t *db, const char *host, const char *user,
                                     const char *password);
void accounts_check_run(void *check);
int accounts_check_ok(const accounts_check_t *check);
void accounts_check_free(accounts_check_t **check);
int accounts_delete(store_db_t *db, const char *host, const char *user, const char **error_r);

#endif
