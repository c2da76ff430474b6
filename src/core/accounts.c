/*
 * accounts.c — create, change and delete accounts (see accounts.h).
 *
 * Owns the one place where a password becomes stored credentials: the
 * username is prepared (RFC 7622 §3.3, PRECIS UsernameCaseMapped), a
 * SCRAM credential with its own random salt is derived for every hash
 * and handed to the store.  Never stores, logs or copies the password;
 * the derived keys are wiped from memory once stored.  Checking that the
 * host is one of ours is the caller's job.  Key derivation is CPU bound:
 * the daemon calls these from its worker pool, never from the loop.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <tern/jid.h>
#include "core/accounts.h"

#define DEFAULT_ITERATIONS 4096

/* Derive credentials for every SCRAM hash from `password`, each with a
 * fresh random salt.  0, or -1 when the password is not a valid
 * OpaqueString (or crypto fails); creds are wiped on failure. */
static int derive_all(const char *password, unsigned iterations,
                      scram_cred_t creds[SCRAM_HASH_COUNT])
{
    if (password == NULL || password[0] == '\0')
        return -1;
    if (iterations == 0)
        iterations = DEFAULT_ITERATIONS;
    for (int h = 0; h < SCRAM_HASH_COUNT; h++) {
        if (scram_derive((scram_hash_t)h, password, NULL, 0, iterations, &creds[h]) < 0) {
            OPENSSL_cleanse(creds, sizeof(scram_cred_t) * SCRAM_HASH_COUNT);
            return -1;
        }
    }
    return 0;
}

/* Prepare `user` as a localpart; malloc'd, or NULL with *error_r set. */
static char *prep_user(const char *user, const char **error_r)
{
    char *local = user != NULL ? tern_jid_prep_local(user) : NULL;
    if (local == NULL)
        *error_r = "invalid username";
    return local;
}

int accounts_add(store_db_t *db, const char *host, const char *user, const char *password,
                 unsigned iterations, const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    char *local = prep_user(user, error_r);
    if (local == NULL)
        return -1;

    scram_cred_t creds[SCRAM_HASH_COUNT];
    int ret = -1;
    if (derive_all(password, iterations, creds) < 0) {
        *error_r = "invalid password";
        goto out;
    }
    int exists = 0;
    if (store_account_create(db, host, local, creds, &exists) < 0)
        *error_r = exists ? "account exists" : "storage error";
    else
        ret = 0;
    OPENSSL_cleanse(creds, sizeof(creds));
out:
    free(local);
    return ret;
}

int accounts_passwd(store_db_t *db, const char *host, const char *user, const char *password,
                    unsigned iterations, const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    char *local = prep_user(user, error_r);
    if (local == NULL)
        return -1;

    scram_cred_t creds[SCRAM_HASH_COUNT];
    int ret = -1;
    int exists = store_account_exists(db, host, local);
    if (exists < 0) {
        *error_r = "storage error";
        goto out;
    }
    if (exists == 0) {
        *error_r = "no such account";
        goto out;
    }
    if (derive_all(password, iterations, creds) < 0) {
        *error_r = "invalid password";
        goto out;
    }
    if (store_account_set_creds(db, host, local, creds) < 0)
        *error_r = "storage error";
    else
        ret = 0;
    OPENSSL_cleanse(creds, sizeof(creds));
out:
    free(local);
    return ret;
}

int accounts_delete(store_db_t *db, const char *host, const char *user, const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    char *local = prep_user(user, error_r);
    if (local == NULL)
        return -1;

    int ret = -1;
    int exists = store_account_exists(db, host, local);
    if (exists < 0)
        *error_r = "storage error";
    else if (exists == 0)
        *error_r = "no such account";
    else if (store_account_delete(db, host, local) < 0)
        *error_r = "storage error";
    else
        ret = 0;
    free(local);
    return ret;
}

int accounts_check_password(store_db_t *db, const char *host, const char *user,
                            const char *password)
{
    scram_cred_t stored, given;
    int ok = store_account_get_cred(db, host, user, SCRAM_SHA256, &stored) == 0 &&
             scram_derive(SCRAM_SHA256, password, stored.salt, stored.salt_len, stored.iterations,
                          &given) == 0 &&
             CRYPTO_memcmp(given.stored_key, stored.stored_key, scram_hash_len(SCRAM_SHA256)) == 0;
    OPENSSL_cleanse(&given, sizeof(given));
    return ok;
}
