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
int accounts_passwd(store_db_t *db, const char *host, const char *user, const char *password,
                    unsigned iterations, const char **error_r);
/* 1 when `password` matches the stored keys of the prepared `user`, else 0.
 * Costs one key derivation (PBKDF2 with the stored iteration count). */
int accounts_check_password(store_db_t *db, const char *host, const char *user,
                            const char *password);
int accounts_delete(store_db_t *db, const char *host, const char *user, const char **error_r);

#endif
